//! zk-bench-membership: what zookube's membership changes and rolling
//! restarts cost the ensemble — the longest time without a quorum-backed
//! leader and the number of leader changes — measured on real ZooKeeper
//! servers through `zk-operator local`, under a steady write load (a real
//! ZooKeeper client writing a znode every 10 ms; every acknowledged write is
//! read back at the end). A rolling restart hands leadership over before the
//! leader restarts; for reference, the same numbers for the leader stopped
//! by `SIGTERM` or `kill -9` and started again (what a roll cost without the
//! hand-off), for 3 and 5 voters, on the same machine in the same run. Run
//! it with `bench/membership.sh` (it builds the release binaries first).
//!
//! Every member's `srvr` (and the leaders' `mntr`) is sampled every 50 ms;
//! a leader counts when it is in the broadcast phase with a majority of its
//! voters synced (see `zk_testkit::load`). A gap is measured from the last
//! sample that saw such a leader to the next one, so its resolution is the
//! sampling interval plus a round's duration.

#![warn(clippy::unwrap_used)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use zk_testkit::load::{LeaderSampler, WriteLoad, missing_writes};

/// One scenario's numbers in one run.
#[derive(Debug, Clone)]
struct Sample {
    gap: Duration,
    elections: usize,
    acked: usize,
    failed: u64,
    wall: Duration,
}

struct Bench {
    operator: PathBuf,
    /// Extra JVM flags for every server (the cluster's `jvmFlags`).
    jvm_flags: Option<String>,
}

/// A local ensemble in a folder and an address block of its own.
struct Ensemble<'a> {
    bench: &'a Bench,
    dir: tempfile::TempDir,
    base: Ipv4Addr,
}

const ROOT: &str = "/zookube-bench";

impl<'a> Ensemble<'a> {
    async fn up(bench: &'a Bench, replicas: u32) -> Result<Ensemble<'a>> {
        let dir = tempfile::Builder::new().prefix("zk-bench-").tempdir()?;
        let file = dir.path().join("cluster.yaml");
        let jvm_flags = bench
            .jvm_flags
            .as_ref()
            .map(|f| format!("  jvmFlags: {f:?}\n"))
            .unwrap_or_default();
        std::fs::write(
            &file,
            format!(
                "apiVersion: zookube.io/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: bench\nspec:\n  replicas: {replicas}\n{jvm_flags}  config:\n    tickTime: 250\n"
            ),
        )?;
        let ensemble = Ensemble {
            bench,
            dir,
            base: zk_testkit::loopback_base(),
        };
        let base = ensemble.base.to_string();
        let file = file.display().to_string();
        ensemble.run(&["up", "-f", &file, "--base", &base]).await?;
        Ok(ensemble)
    }

    async fn run(&self, args: &[&str]) -> Result<Output> {
        let out = tokio::process::Command::new(&self.bench.operator)
            .arg("local")
            .args(args)
            .arg("--dir")
            .arg(self.dir.path().join("ensemble"))
            .env_remove("ZOOKUBE_LOCAL_DIR")
            .output()
            .await
            .context("run zk-operator")?;
        if !out.status.success() {
            bail!(
                "zk-operator local {} failed:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }

    fn addresses(&self) -> Vec<(u8, SocketAddr)> {
        (1..=5)
            .map(|myid: u8| {
                let ip = Ipv4Addr::from(u32::from(self.base) + u32::from(myid));
                (myid, SocketAddr::new(ip.into(), 2181))
            })
            .collect()
    }

    async fn leader(&self) -> Result<u64> {
        let out = self.run(&["status", "-o", "json"]).await?;
        let status: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        status["leader"].as_u64().context("no leader")
    }

    /// Runs `change` under load and sampling, and measures it.
    async fn measure(&self, change: &[&[&str]]) -> Result<Sample> {
        let addresses = self.addresses();
        let connect = addresses
            .iter()
            .map(|(_, a)| a.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let load = WriteLoad::start(&connect, ROOT, Duration::from_millis(10))
            .await
            .map_err(anyhow::Error::msg)?;
        let sampler = LeaderSampler::start(addresses, Duration::from_millis(50));
        // A quiet second before and after, so the samples frame the change.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        for args in change {
            self.run(args).await?;
        }
        let wall = started.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let report = load.stop().await;
        let timeline = sampler.stop().await;
        let missing = missing_writes(&connect, ROOT, &report.acked)
            .await
            .map_err(anyhow::Error::msg)?;
        if !missing.is_empty() {
            bail!("{} acknowledged writes lost", missing.len());
        }
        let split = timeline.split_brain();
        if !split.is_empty() {
            bail!("two leaders at once: {split:?}");
        }
        Ok(Sample {
            gap: timeline.longest_without_leader(),
            elections: timeline.elections(),
            acked: report.acked.len(),
            failed: report.failed,
            wall,
        })
    }

    async fn down(self) {
        let _ = self.run(&["down", "--purge"]).await;
    }
}

/// The scenarios, each on a fresh ensemble: (name, voters at the start,
/// what to do first without measuring, what to measure).
async fn scenario(bench: &Bench, name: &str) -> Result<Sample> {
    let sample = match name {
        "scale 3 -> 5" => {
            let e = Ensemble::up(bench, 3).await?;
            let s = e.measure(&[&["scale", "--replicas", "5"]]).await;
            e.down().await;
            s?
        }
        "scale 5 -> 3" => {
            let e = Ensemble::up(bench, 5).await?;
            let s = e.measure(&[&["scale", "--replicas", "3"]]).await;
            e.down().await;
            s?
        }
        "scale 1 -> 3" => {
            let e = Ensemble::up(bench, 1).await?;
            let s = e.measure(&[&["scale", "--replicas", "3"]]).await;
            e.down().await;
            s?
        }
        "scale 3 -> 1, leader leaving" => {
            let e = Ensemble::up(bench, 3).await?;
            // Make a leaving member lead: kill myid 1 while it leads.
            if e.leader().await? == 1 {
                e.run(&["kill", "1"]).await?;
                e.run(&["start", "1"]).await?;
            }
            let leader = e.leader().await?;
            if leader == 1 {
                bail!("myid 1 still leads");
            }
            let s = e.measure(&[&["scale", "--replicas", "1"]]).await;
            e.down().await;
            s?
        }
        "rolling restart of 3, hand-off" => roll(bench, 3).await?,
        "rolling restart of 5, hand-off" => roll(bench, 5).await?,
        "SIGTERM the leader of 3, restart it" => restart_leader(bench, 3, "TERM").await?,
        "SIGTERM the leader of 5, restart it" => restart_leader(bench, 5, "TERM").await?,
        "kill -9 the leader of 3, restart it" => restart_leader(bench, 3, "KILL").await?,
        "kill -9 the leader of 5, restart it" => restart_leader(bench, 5, "KILL").await?,
        other => bail!("no scenario {other:?}"),
    };
    Ok(sample)
}

/// A rolling restart of `voters` (`local restart`): the leader hands
/// leadership over instead of being restarted in place.
async fn roll(bench: &Bench, voters: u32) -> Result<Sample> {
    let e = Ensemble::up(bench, voters).await?;
    let s = e.measure(&[&["restart"]]).await;
    e.down().await;
    s
}

/// For reference: the leader of `voters` stopped with `signal` (`KILL` or
/// `TERM`) and started again, as a roll would without the hand-off.
async fn restart_leader(bench: &Bench, voters: u32, signal: &str) -> Result<Sample> {
    let e = Ensemble::up(bench, voters).await?;
    let leader = e.leader().await?.to_string();
    let s = e
        .measure(&[&["kill", &leader, "--signal", signal], &["start", &leader]])
        .await;
    e.down().await;
    s
}

const SCENARIOS: [&str; 10] = [
    "scale 3 -> 5",
    "scale 5 -> 3",
    "scale 1 -> 3",
    "scale 3 -> 1, leader leaving",
    "rolling restart of 3, hand-off",
    "rolling restart of 5, hand-off",
    "SIGTERM the leader of 3, restart it",
    "SIGTERM the leader of 5, restart it",
    "kill -9 the leader of 3, restart it",
    "kill -9 the leader of 5, restart it",
];

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut runs = 3usize;
    let mut operator = PathBuf::from("target/release/zk-operator");
    let mut jvm_flags = None;
    let mut only = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--operator" => operator = PathBuf::from(args.next().context("--operator PATH")?),
            "--jvm-flags" => jvm_flags = Some(args.next().context("--jvm-flags FLAGS")?),
            "--only" => only = Some(args.next().context("--only TEXT")?),
            other => bail!(
                "unknown argument {other:?}; use --runs N, --jvm-flags FLAGS, --only TEXT (scenarios whose name contains it)"
            ),
        }
    }
    if !Path::new(&operator).is_file() {
        bail!("{} is missing; run bench/membership.sh", operator.display());
    }
    if let Some(flags) = &jvm_flags {
        println!("servers' extra JVM flags: {flags}");
    }
    let bench = Bench {
        operator,
        jvm_flags,
    };
    println!(
        "{runs} runs per scenario; a znode written every 10 ms; srvr/mntr of every member every 50 ms\n"
    );
    println!(
        "{:<40} {:>14} {:>14} {:>10} {:>12} {:>9}",
        "scenario", "gap median ms", "gap max ms", "elections", "writes ok", "wall s"
    );
    for name in SCENARIOS {
        if only.as_deref().is_some_and(|only| !name.contains(only)) {
            continue;
        }
        let mut samples = Vec::new();
        for _ in 0..runs {
            samples.push(
                scenario(&bench, name)
                    .await
                    .with_context(|| name.to_owned())?,
            );
        }
        let gaps: Vec<Duration> = samples.iter().map(|s| s.gap).collect();
        let max = gaps.iter().max().copied().unwrap_or_default();
        let elections: Vec<String> = samples.iter().map(|s| s.elections.to_string()).collect();
        let acked: usize = samples.iter().map(|s| s.acked).sum();
        let failed: u64 = samples.iter().map(|s| s.failed).sum();
        let wall = median(samples.iter().map(|s| s.wall).collect());
        println!(
            "{:<40} {:>14} {:>14} {:>10} {:>12} {:>9.1}",
            name,
            median(gaps).as_millis(),
            max.as_millis(),
            elections.join(","),
            format!("{acked}/{}", acked as u64 + failed),
            wall.as_secs_f64()
        );
    }
    println!("\nno acknowledged write was lost and no two leaders were quorum-backed at once");
    Ok(())
}
