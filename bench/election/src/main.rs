//! zk-bench-election: how long N peers take to elect a leader — Rust
//! `zk-sidecar vote` peers against real ZooKeeper servers with the same
//! topology, on this machine, in the same run. Run it with
//! `bench/election.sh` (it builds the release binaries first).
//!
//! Every run starts N fresh peers one after another (myid 1 first) on
//! loopback with the same rendered `zoo.cfg` (tickTime 500, syncLimit 4,
//! ZooKeeper's default finalizeWait of 200 ms on both sides) and reads, from
//! each peer's own log, when it started looking and when it decided. Two
//! times per run:
//!
//! * **from start**: from the moment the last process was spawned to the
//!   moment the last peer decided (what an operator waits for; includes the
//!   JVM's start-up);
//! * **election**: from the last peer's first LOOKING to the last decision
//!   (the election alone).
//!
//! Resident memory (VmRSS) of every peer process is read right after the
//! last decision.

#![warn(clippy::unwrap_used)]
#![allow(clippy::print_stdout)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use zk_process::Installation;
use zk_testkit::LoopbackEnsemble;

/// One run's numbers.
#[derive(Debug, Clone)]
struct Sample {
    from_start: Duration,
    election: Duration,
    /// Resident memory of each peer, KiB.
    rss_kib: Vec<u64>,
}

/// When one peer started looking and when it decided (wall clock).
#[derive(Debug, Clone, Copy)]
struct Timeline {
    looking: SystemTime,
    decided: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    ZooKeeper,
    Rust,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::ZooKeeper => "zookeeper",
            Side::Rust => "rust vote",
        }
    }
}

struct Args {
    runs: usize,
    sizes: Vec<u32>,
    sidecar: PathBuf,
}

fn args() -> Result<Args> {
    let mut args = Args {
        runs: 10,
        sizes: vec![3, 5, 7],
        sidecar: default_sidecar()?,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => args.runs = value()?.parse().context("--runs is a number")?,
            "--sizes" => {
                args.sizes = value()?
                    .split(',')
                    .map(|s| s.trim().parse().context("--sizes is like 3,5,7"))
                    .collect::<Result<_>>()?;
            }
            "--sidecar" => args.sidecar = PathBuf::from(value()?),
            "--help" | "-h" => {
                println!(
                    "usage: zk-bench-election [--runs N (10)] [--sizes 3,5,7] [--sidecar PATH]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}; see --help"),
        }
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(args)
}

/// `zk-sidecar` beside this binary (both are built into target/release).
fn default_sidecar() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("the benchmark's own path")?;
    Ok(exe.with_file_name("zk-sidecar"))
}

fn main() -> Result<()> {
    let args = args()?;
    let zk = Installation::discover().context("this benchmark needs a real ZooKeeper")?;
    if !args.sidecar.is_file() {
        bail!(
            "{} is missing; build it with `cargo build --release -p zk-sidecar` (bench/election.sh does)",
            args.sidecar.display()
        );
    }
    println!(
        "# Leader election: Rust `zk-sidecar vote` vs ZooKeeper ({} runs per size; tickTime 500 ms, finalizeWait 200 ms; ZooKeeper JVM flags {:?})\n",
        args.runs,
        zk_process::install::small_jvm_flags()
    );
    println!(
        "| peers | side | from start: median | p95 | election: median | p95 | RSS per peer: median |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut summary = Vec::new();
    for &n in &args.sizes {
        let mut results = Vec::new();
        for side in [Side::ZooKeeper, Side::Rust] {
            let mut samples = Vec::new();
            for run in 0..args.runs {
                let sample = match side {
                    Side::ZooKeeper => run_zookeeper(&zk, n),
                    Side::Rust => run_rust(&zk, &args.sidecar, n),
                }
                .with_context(|| format!("{} with {n} peers, run {}", side.name(), run + 1))?;
                samples.push(sample);
            }
            let from_start = stats(samples.iter().map(|s| s.from_start));
            let election = stats(samples.iter().map(|s| s.election));
            let rss = median_u64(samples.iter().flat_map(|s| s.rss_kib.iter().copied()));
            println!(
                "| {n} | {} | {} | {} | {} | {} | {:.1} MiB |",
                side.name(),
                ms(from_start.0),
                ms(from_start.1),
                ms(election.0),
                ms(election.1),
                rss as f64 / 1024.0
            );
            results.push((from_start, election, rss));
        }
        summary.push((n, results));
    }
    println!(
        "\n| peers | ratio zookeeper / rust, from start (median) | election (median) | memory |"
    );
    println!("|---|---|---|---|");
    for (n, results) in summary {
        let [
            (zk_start, zk_election, zk_rss),
            (rs_start, rs_election, rs_rss),
        ] = results[..]
        else {
            continue;
        };
        println!(
            "| {n} | {:.2}× | {:.2}× | {:.1}× |",
            zk_start.0.as_secs_f64() / rs_start.0.as_secs_f64().max(1e-9),
            zk_election.0.as_secs_f64() / rs_election.0.as_secs_f64().max(1e-9),
            zk_rss as f64 / (rs_rss as f64).max(1.0),
        );
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Median and p95 (nearest rank).
fn stats(values: impl Iterator<Item = Duration>) -> (Duration, Duration) {
    let mut v: Vec<Duration> = values.collect();
    v.sort();
    let rank = |p: f64| {
        let index = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1)) - 1;
        v.get(index).copied().unwrap_or_default()
    };
    (rank(0.5), rank(0.95))
}

fn median_u64(values: impl Iterator<Item = u64>) -> u64 {
    let mut v: Vec<u64> = values.collect();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

/// Real ZooKeeper: N JVMs started one after another.
fn run_zookeeper(zk: &Installation, n: u32) -> Result<Sample> {
    let mut ensemble = LoopbackEnsemble::new(zk, n, 0);
    // Log timestamps in UTC, to compare them with the spawn time.
    ensemble.jvm_flags.push("-Duser.timezone=UTC".to_owned());
    let myids = ensemble.myids();
    for myid in &myids {
        ensemble.start(*myid);
    }
    let last_start = SystemTime::now();
    let timelines = wait_for(|| {
        myids
            .iter()
            .map(|myid| zookeeper_timeline(&ensemble.log(*myid)))
            .collect()
    })?;
    let rss = myids
        .iter()
        .map(|myid| ensemble.pid(*myid).map_or(0, rss_kib))
        .collect();
    Ok(sample(last_start, &timelines, rss))
}

/// Rust peers: N `zk-sidecar vote` processes in place of the same
/// ensemble's members.
fn run_rust(zk: &Installation, sidecar: &Path, n: u32) -> Result<Sample> {
    let mut ensemble = LoopbackEnsemble::new(zk, n, 0);
    let myids = ensemble.myids();
    for myid in &myids {
        ensemble.start_vote(sidecar, *myid, &[]);
    }
    let last_start = SystemTime::now();
    let timelines = wait_for(|| {
        myids
            .iter()
            .map(|myid| rust_timeline(&ensemble.sidecar_log(*myid)))
            .collect()
    })?;
    let rss = myids
        .iter()
        .map(|myid| ensemble.sidecar_pid(*myid).map_or(0, rss_kib))
        .collect();
    Ok(sample(last_start, &timelines, rss))
}

fn sample(last_start: SystemTime, timelines: &[Timeline], rss_kib: Vec<u64>) -> Sample {
    let decided = timelines.iter().map(|t| t.decided).max();
    let looking = timelines.iter().map(|t| t.looking).max();
    let since = |from: Option<SystemTime>| {
        decided
            .zip(from)
            .and_then(|(d, f)| d.duration_since(f).ok())
            .unwrap_or_default()
    };
    Sample {
        from_start: since(Some(last_start)),
        election: since(looking),
        rss_kib,
    }
}

/// Polls until every peer has a timeline (60 s at most).
fn wait_for(mut timelines: impl FnMut() -> Vec<Option<Timeline>>) -> Result<Vec<Timeline>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all: Option<Vec<Timeline>> = timelines().into_iter().collect();
        if let Some(all) = all {
            return Ok(all);
        }
        if Instant::now() > deadline {
            bail!("not every peer decided within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A ZooKeeper log (log4j ISO8601, UTC): the first `- LOOKING` and the
/// first `- LEADING` / `- FOLLOWING` lines of `QuorumPeer`.
fn zookeeper_timeline(log: &str) -> Option<Timeline> {
    let at = |line: &str| {
        let stamp = line.get(..23)?.replace(',', ".");
        humantime::parse_rfc3339_weak(&stamp).ok()
    };
    let looking = log
        .lines()
        .find(|l| l.ends_with("] - LOOKING"))
        .and_then(at)?;
    let decided = log
        .lines()
        .find(|l| l.ends_with("] - LEADING") || l.ends_with("] - FOLLOWING"))
        .and_then(at)?;
    Some(Timeline { looking, decided })
}

/// A `zk-sidecar vote` log as zk-testkit writes it (tracing's text format,
/// possibly with colour codes): the first "state changed" to LOOKING and
/// the first "leader decided".
fn rust_timeline(log: &str) -> Option<Timeline> {
    let mut looking = None;
    for line in log.lines() {
        let line = strip_ansi(line);
        let at = || {
            line.split_whitespace()
                .next()
                .and_then(|t| humantime::parse_rfc3339(t).ok())
        };
        if looking.is_none() && line.contains(" state changed ") && line.contains(" state=LOOKING ")
        {
            looking = at();
        } else if line.contains(" leader decided ") {
            return Some(Timeline {
                looking: looking?,
                decided: at()?,
            });
        }
    }
    None
}

/// `text` without ANSI colour sequences (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A process's resident memory (VmRSS), KiB; 0 when it cannot be read.
fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timelines_are_read_from_both_logs() {
        let zk = "2026-11-22 03:43:47,808 [myid:2] - INFO  [QuorumPeer[myid=2](plain=127.0.0.3:2181)(secure=disabled):QuorumPeer@1455] - LOOKING\n\
                  2026-11-22 03:43:48,687 [myid:2] - INFO  [QuorumPeer[myid=2](plain=127.0.0.3:2181)(secure=disabled):QuorumPeer@1537] - FOLLOWING\n";
        let t = zookeeper_timeline(zk).unwrap();
        assert_eq!(
            t.decided.duration_since(t.looking).unwrap(),
            Duration::from_millis(879)
        );
        let rust = "\u{1b}[2m2026-11-22T03:43:47.800000Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m zk_election::peer: state changed myid=1 \u{1b}[3mstate\u{1b}[2m=\u{1b}[0mLOOKING leader=None\n\
                    2026-11-22T03:43:48.100500Z  INFO zk_election::peer: leader decided myid=1 leader=3\n";
        let t = rust_timeline(rust).unwrap();
        assert_eq!(
            t.decided.duration_since(t.looking).unwrap(),
            Duration::from_micros(300_500)
        );
        assert!(rust_timeline("nothing decided").is_none());
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let d = |ms| Duration::from_millis(ms);
        assert_eq!(stats((1..=20).map(d)), (d(10), d(19)));
        assert_eq!(stats([d(5)].into_iter()), (d(5), d(5)));
        assert_eq!(median_u64([3, 1, 2].into_iter()), 2);
    }
}
