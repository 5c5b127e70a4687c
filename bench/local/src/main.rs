//! bench-local: how long `zk-operator local up` takes to give a
//! quorum-backed leader, against starting the same ZooKeeper servers by
//! hand with the same configs and waiting for `srvr` to show a leader, on
//! this machine, in the same run. Run it with `bench/local.sh` (it builds
//! the release binaries first).
//!
//! Each size (3 and 5 voters by default) runs `--runs` times on each side,
//! the sides alternating which goes first. Both sides start from empty data
//! folders with the configs `local` renders (the cluster's defaults:
//! tickTime 2000, the standard ports on one loopback address per member)
//! and the same JVM flags.
//!
//! * **by hand**: write each `zoo.cfg` and `myid`, spawn every server
//!   (`java … QuorumPeerMain`), poll `srvr` on every member every 50 ms;
//!   done when one answers `Mode: leader` (it then serves).
//! * **zookube**: spawn `zk-operator local up`; done when it returns (a
//!   quorum-backed leader known and every member serving). Meanwhile the
//!   benchmark polls every sidecar's `/v1/status` and every member's `srvr`
//!   every 50 ms, to also report when the first sidecar named the leader
//!   and when ZooKeeper itself had one in the same run.

#![warn(clippy::unwrap_used)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::json;
use zk_operator::cluster::{parse_cluster, validate};
use zk_operator::local::plan::{Layout, LocalPlan};
use zk_operator::sidecar_client::SidecarClient;
use zk_process::install::write_logging_config;
use zk_process::{Installation, Mode};

/// Wall time from start to a quorum-backed leader: `zk-operator local up`
/// vs the same ZooKeeper servers started by hand.
#[derive(Debug, Parser)]
struct Args {
    /// The zk-operator binary (zk-sidecar must sit beside it).
    #[arg(long, default_value = "target/release/zk-operator")]
    zk_operator: PathBuf,
    /// Runs per side and size.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Ensemble sizes (voters), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "3,5")]
    sizes: Vec<u32>,
    /// The loopback block both sides use (members at BASE + myid).
    #[arg(long, default_value = "127.0.200.1")]
    base: Ipv4Addr,
    /// Give up on one start after this long.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Where to write the JSON results (default bench/results/local-<time>.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One zookube run.
#[derive(Debug, Clone, Copy)]
struct Zookube {
    /// `local up` returned.
    up: Duration,
    /// The first sidecar named a quorum-backed leader.
    sidecar_leader: Option<Duration>,
    /// A member's `srvr` first said `leader`.
    srvr_leader: Option<Duration>,
}

const POLL: Duration = Duration::from_millis(50);

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.zk_operator.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p zk-operator -p zk-sidecar` (bench/local.sh does)",
            args.zk_operator.display()
        );
    }
    let install = Installation::discover()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timeout = Duration::from_secs(args.timeout_secs);
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "bench-local: {} runs per side and size, {} cores, ZooKeeper from {}",
        args.runs, cpus, install.origin
    );
    let mut results = Vec::new();
    for &size in &args.sizes {
        let mut by_hand = Vec::new();
        let mut zookube = Vec::new();
        for run in 0..args.runs {
            // Alternate which side goes first, so neither always gets the
            // warmer page cache.
            let order = if run % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for zookube_side in order {
                if zookube_side {
                    let sample = runtime.block_on(zookube_run(&args, size, timeout))?;
                    eprintln!(
                        "  {size} voters, run {}: zookube up {:.2} s (sidecar leader {}, srvr leader {})",
                        run + 1,
                        sample.up.as_secs_f64(),
                        secs(sample.sidecar_leader),
                        secs(sample.srvr_leader)
                    );
                    zookube.push(sample);
                } else {
                    let took = runtime.block_on(by_hand_run(&args, &install, size, timeout))?;
                    eprintln!(
                        "  {size} voters, run {}: by hand {:.2} s",
                        run + 1,
                        took.as_secs_f64()
                    );
                    by_hand.push(took);
                }
            }
        }
        let hand = median(&by_hand);
        let up = median(&zookube.iter().map(|z| z.up).collect::<Vec<_>>());
        let sidecar = median(
            &zookube
                .iter()
                .filter_map(|z| z.sidecar_leader)
                .collect::<Vec<_>>(),
        );
        results.push(json!({
            "voters": size,
            "runs": args.runs,
            "byHandSeconds": seconds(&by_hand),
            "zookubeUpSeconds": seconds(&zookube.iter().map(|z| z.up).collect::<Vec<_>>()),
            "zookubeSidecarLeaderSeconds": seconds(&zookube.iter().filter_map(|z| z.sidecar_leader).collect::<Vec<_>>()),
            "zookubeSrvrLeaderSeconds": seconds(&zookube.iter().filter_map(|z| z.srvr_leader).collect::<Vec<_>>()),
            "medianByHand": hand.as_secs_f64(),
            "medianZookubeUp": up.as_secs_f64(),
            "medianZookubeSidecarLeader": sidecar.as_secs_f64(),
            "ratioUp": up.as_secs_f64() / hand.as_secs_f64(),
            "ratioSidecarLeader": sidecar.as_secs_f64() / hand.as_secs_f64(),
        }));
        println!();
        println!(
            "{size} voters ({} runs each; median [min … max], seconds)",
            args.runs
        );
        println!("  by hand, srvr shows a leader        {}", spread(&by_hand));
        println!(
            "  zookube, first sidecar names it     {}",
            spread(
                &zookube
                    .iter()
                    .filter_map(|z| z.sidecar_leader)
                    .collect::<Vec<_>>()
            )
        );
        println!(
            "  zookube, `local up` returns         {}",
            spread(&zookube.iter().map(|z| z.up).collect::<Vec<_>>())
        );
        println!(
            "  (ZooKeeper's own leader, same runs  {})",
            spread(
                &zookube
                    .iter()
                    .filter_map(|z| z.srvr_leader)
                    .collect::<Vec<_>>()
            )
        );
        println!(
            "  ratio of medians: leader named {:.2}, up returns {:.2} (aim: under 1.20)",
            sidecar.as_secs_f64() / hand.as_secs_f64(),
            up.as_secs_f64() / hand.as_secs_f64(),
        );
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("bench/results/local-{now}.json"))
    });
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(
        &out,
        serde_json::to_string_pretty(&json!({ "cpus": cpus, "results": results }))?,
    )?;
    println!("\nresults: {}", out.display());
    Ok(())
}

fn cluster_yaml(size: u32) -> String {
    format!(
        "apiVersion: zookube.io/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: bench\nspec:\n  replicas: {size}\n"
    )
}

/// Member addresses of an ensemble of `size` voters at `base`.
fn clients(base: Ipv4Addr, size: u32) -> Vec<SocketAddr> {
    (1..=size)
        .map(|myid| SocketAddr::new(Ipv4Addr::from(u32::from(base) + myid).into(), 2181))
        .collect()
}

/// Whether any member's `srvr` says `leader`.
async fn srvr_leader(clients: &[SocketAddr]) -> bool {
    for client in clients {
        if let Ok(srvr) = zk_process::fourlw::srvr(*client, Duration::from_millis(200)).await
            && srvr.mode == Mode::Leader
        {
            return true;
        }
    }
    false
}

async fn zookube_run(args: &Args, size: u32, timeout: Duration) -> Result<Zookube> {
    let dir = tempfile::Builder::new().prefix("bench-local-").tempdir()?;
    let file = dir.path().join("cluster.yaml");
    fs::write(&file, cluster_yaml(size))?;
    let ensemble = dir.path().join("ensemble");
    let local = |verb: &str| {
        let mut command = Command::new(&args.zk_operator);
        command.args(["local", verb, "--dir"]).arg(&ensemble);
        command
    };
    let clients = clients(args.base, size);
    let sidecars: Vec<SocketAddr> = clients
        .iter()
        .map(|c| SocketAddr::new(c.ip(), 8081))
        .collect();
    let http = SidecarClient::new();

    let started = Instant::now();
    let mut up = local("up")
        .arg("-f")
        .arg(&file)
        .args(["--base", &args.base.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("start zk-operator local up")?;
    let mut sample = Zookube {
        up: Duration::ZERO,
        sidecar_leader: None,
        srvr_leader: None,
    };
    let status = loop {
        if let Some(status) = up.try_wait()? {
            sample.up = started.elapsed();
            break status;
        }
        if sample.sidecar_leader.is_none() {
            for sidecar in &sidecars {
                let ip = sidecar.ip().to_string();
                if let Ok(status) = http.status(&ip, sidecar.port()).await
                    && status.leader.is_some()
                {
                    sample.sidecar_leader = Some(started.elapsed());
                    break;
                }
            }
        }
        if sample.srvr_leader.is_none() && srvr_leader(&clients).await {
            sample.srvr_leader = Some(started.elapsed());
        }
        if started.elapsed() > timeout {
            let _ = up.kill();
            break up.wait()?;
        }
        tokio::time::sleep(POLL).await;
    };
    let stderr = read_all(&mut up);
    let down = local("down").arg("--purge").output()?;
    if !status.success() {
        bail!("zk-operator local up failed ({status}):\n{stderr}");
    }
    if !down.status.success() {
        bail!(
            "zk-operator local down failed:\n{}",
            String::from_utf8_lossy(&down.stderr)
        );
    }
    // `up` returned with a leader, so the sidecars had one by then.
    sample.sidecar_leader = sample.sidecar_leader.or(Some(sample.up));
    Ok(sample)
}

fn read_all(child: &mut Child) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut text);
    }
    text
}

/// The same servers, configs and JVM flags as `local up`, started by hand.
async fn by_hand_run(
    args: &Args,
    install: &Installation,
    size: u32,
    timeout: Duration,
) -> Result<Duration> {
    let dir = tempfile::Builder::new().prefix("bench-hand-").tempdir()?;
    let layout = Layout::new(dir.path());
    let cluster =
        validate(&parse_cluster(&cluster_yaml(size), None)?).map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan = LocalPlan::new(&cluster, args.base, &layout)?;
    for member in &plan.members {
        let conf = layout.conf_dir(member.myid);
        write_logging_config(&conf)?;
        fs::write(conf.join("zoo.cfg"), &member.zoo_cfg)?;
        fs::create_dir_all(&member.data_dir)?;
        fs::write(member.data_dir.join("myid"), member.myid.file_contents())?;
    }
    let clients: Vec<SocketAddr> = plan.members.iter().map(|m| m.client()).collect();
    let started = Instant::now();
    let mut servers = Vec::new();
    for member in &plan.members {
        let conf = layout.conf_dir(member.myid);
        let log = fs::File::create(layout.member_dir(member.myid).join("zookeeper.log"))?;
        let child = install
            .server_command(&conf, &conf.join("zoo.cfg"), &plan.jvm_flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        servers.push(child);
    }
    let result = loop {
        if srvr_leader(&clients).await {
            break Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            break Err(anyhow::anyhow!(
                "no leader by hand within {timeout:?}; logs in {}",
                dir.path().display()
            ));
        }
        tokio::time::sleep(POLL).await;
    };
    for server in &mut servers {
        let _ = server.kill();
        let _ = server.wait();
    }
    wait_ports_free(
        &plan
            .members
            .iter()
            .flat_map(|m| m.ports.iter().map(|(_, a)| *a))
            .collect::<Vec<_>>(),
    );
    if result.is_err() {
        let _ = dir.keep();
    }
    result
}

/// Waits (briefly) until no listener holds the ports, so the next run can
/// bind them.
fn wait_ports_free(ports: &[SocketAddr]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && ports
            .iter()
            .any(|p| zk_process::ensure_port_free(*p).is_err())
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

fn spread(samples: &[Duration]) -> String {
    let min = samples.iter().min().copied().unwrap_or_default();
    let max = samples.iter().max().copied().unwrap_or_default();
    format!(
        "{:.2} [{:.2} … {:.2}]",
        median(samples).as_secs_f64(),
        min.as_secs_f64(),
        max.as_secs_f64()
    )
}

fn seconds(samples: &[Duration]) -> Vec<f64> {
    samples.iter().map(Duration::as_secs_f64).collect()
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
}
