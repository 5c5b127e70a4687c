//! Benchmark of `zk-sidecar run` beside a real three-voter ZooKeeper
//! ensemble on loopback (run it with `bench/sidecar.sh`):
//!
//! * leader-change detection latency: kill -9 the leader, again and again;
//!   from the moment a surviving server's `srvr` first reports the new
//!   leader to the moment each sidecar's `/v1/status` reports it (both read
//!   every 10 ms), median and p95 over the kills, for the sidecars beside
//!   surviving members and for all sidecars (the one beside the dead member
//!   included);
//! * the sidecars' resident memory and CPU, idle and during an election,
//!   beside the ZooKeeper servers' own in the same run;
//! * `/metrics` requests per second under a concurrent keep-alive load,
//!   beside ZooKeeper's own AdminServer `/commands/monitor` in the same run.
//!
//! With `--quorum tls` the quorum speaks TLS and the sidecars watch over
//! it; run both to compare.
//!
//! It also reads `zookube_watcher_polls_total` to show the sidecars never
//! poll a member more than once a second.

#![warn(clippy::unwrap_used)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use zk_ensemble::Myid;
use zk_process::Mode;
use zk_testkit::LoopbackEnsemble;

type Result<T> = std::result::Result<T, String>;

#[derive(Debug)]
struct Args {
    sidecar: PathBuf,
    kills: usize,
    idle: Duration,
    load: Duration,
    connections: usize,
    /// zookube's default timings (tickTime 2000, initLimit 10, syncLimit 5)
    /// instead of the test ensembles' fast ones (500, 10, 4).
    zookube_timings: bool,
    /// Quorum TLS (`sslQuorum=true`, stores from a fresh CA): the sidecars
    /// watch the election over TLS.
    quorum_tls: bool,
}

fn args() -> Result<Args> {
    let mut args = Args {
        sidecar: zk_testkit::sidecar_binary(),
        kills: 20,
        idle: Duration::from_secs(30),
        load: Duration::from_secs(10),
        connections: 32,
        zookube_timings: true,
        quorum_tls: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--sidecar" => args.sidecar = PathBuf::from(value()?),
            "--kills" => {
                args.kills = usize::try_from(number(value()?)?).map_err(|e| e.to_string())?
            }
            "--idle-seconds" => args.idle = Duration::from_secs(number(value()?)?),
            "--load-seconds" => args.load = Duration::from_secs(number(value()?)?),
            "--connections" => {
                args.connections = usize::try_from(number(value()?)?).map_err(|e| e.to_string())?;
            }
            "--timings" => {
                args.zookube_timings = match value()?.as_str() {
                    "zookube" => true,
                    "fast" => false,
                    other => return Err(format!("--timings {other:?}: use zookube or fast")),
                };
            }
            "--quorum" => {
                args.quorum_tls = match value()?.as_str() {
                    "tls" => true,
                    "plain" => false,
                    other => return Err(format!("--quorum {other:?}: use plain or tls")),
                };
            }
            "--help" | "-h" => {
                println!(
                    "bench-sidecar [--sidecar PATH] [--kills N (20)] [--idle-seconds S (30)] [--load-seconds S (10)] [--connections N (32)] [--timings zookube|fast (zookube)] [--quorum plain|tls (plain)]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = bench().await {
        eprintln!("bench-sidecar: {e}");
        std::process::exit(1);
    }
}

async fn bench() -> Result<()> {
    let args = args()?;
    let zk = zk_process::Installation::discover().map_err(|e| e.to_string())?;
    let mut ensemble = LoopbackEnsemble::new(&zk, 3, 0);
    if args.zookube_timings {
        ensemble.spec.settings = zk_ensemble::Settings::default();
        for myid in ensemble.myids() {
            ensemble.prepare(myid);
        }
    }
    if args.quorum_tls {
        ensemble.enable_quorum_tls();
    }
    let s = &ensemble.spec.settings;
    println!(
        "timings: tickTime {} ms, initLimit {}, syncLimit {}; quorum {}",
        s.tick_time_ms,
        s.init_limit,
        s.sync_limit,
        if args.quorum_tls { "TLS" } else { "plaintext" }
    );
    ensemble.start_all();
    for myid in ensemble.myids() {
        ensemble.start_sidecar(&args.sidecar, myid, &[]);
    }
    let leader = ensemble.wait_for_leader(Duration::from_secs(60)).await;
    settled(&ensemble, leader).await?;
    println!(
        "ensemble of 3 voters up, leader {leader}; sidecar {}",
        args.sidecar.display()
    );
    let started = Instant::now();
    let polls_before = total_polls(&ensemble).await?;

    // Idle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = usage(&ensemble, args.idle).await?;
    println!("\n## Idle, over {} s", args.idle.as_secs());
    idle.print();

    // /metrics under load, and ZooKeeper's own monitoring endpoint.
    let target = ensemble.myids()[0];
    println!(
        "\n## HTTP throughput, {} keep-alive connections for {} s",
        args.connections,
        args.load.as_secs()
    );
    let metrics = load(
        ensemble.sidecar_addr(target),
        "/metrics",
        args.connections,
        args.load,
    )
    .await;
    metrics.print("zk-sidecar GET /metrics");
    let admin = SocketAddr::new(ensemble.client_addr(target).ip(), ensemble.spec.ports.admin);
    let monitor = load(admin, "/commands/monitor", args.connections, args.load).await;
    if monitor.requests > 0 {
        monitor.print("ZooKeeper AdminServer GET /commands/monitor");
        println!(
            "ratio: the sidecar serves {:.1}x the requests per second of ZooKeeper's AdminServer",
            metrics.rps() / monitor.rps()
        );
    } else {
        // Debian's package has no Jetty, so no AdminServer: compare with
        // ZooKeeper's other monitoring endpoint, `mntr` on the client port
        // (one connection per request, as four-letter words work).
        println!("(ZooKeeper's AdminServer does not answer here: no Jetty in this installation)");
        let mntr = load_mntr(ensemble.client_addr(target), args.connections, args.load).await;
        mntr.print("ZooKeeper mntr (four-letter word)");
        if mntr.requests > 0 {
            println!(
                "ratio: the sidecar serves {:.1}x the requests per second of ZooKeeper's mntr",
                metrics.rps() / mntr.rps()
            );
        }
    }
    // The load generator's requests settle before the kills start.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Leader kills.
    println!("\n## Leader-change detection over {} kills", args.kills);
    let mut kills = Vec::new();
    let mut election_cpu = Vec::new();
    let mut seed = u64::from(std::process::id());
    for n in 1..=args.kills {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // A random phase against the sidecars' once-a-second polls.
        tokio::time::sleep(Duration::from_millis((seed >> 33) % 1000)).await;
        let (kill, cpu) = kill_leader(&mut ensemble).await?;
        println!(
            "kill {n:>2}: leader {} -> {}; srvr after {:>4} ms; sidecars (ms after srvr): {}",
            kill.old,
            kill.new,
            kill.srvr_after.as_millis(),
            kill.sidecars
                .iter()
                .map(|(myid, ms)| format!(
                    "{myid}:{ms:+.0}{}",
                    if *myid == kill.old { "(dead)" } else { "" }
                ))
                .collect::<Vec<_>>()
                .join(" ")
        );
        election_cpu.extend(cpu);
        kills.push(kill);
        ensemble.start(kills.last().map(|k| k.old).ok_or("no kill")?);
        let leader = ensemble.wait_for_leader(Duration::from_secs(60)).await;
        settled(&ensemble, leader).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let survivors: Vec<f64> = kills.iter().map(|k| k.worst(false)).collect();
    let all: Vec<f64> = kills.iter().map(|k| k.worst(true)).collect();
    let srvr: Vec<f64> = kills
        .iter()
        .map(|k| k.srvr_after.as_secs_f64() * 1000.0)
        .collect();
    println!(
        "\nfrom the kill to srvr showing the new leader: {}",
        summary(&srvr)
    );
    println!(
        "every sidecar beside a surviving member, after srvr: {}",
        summary(&survivors)
    );
    println!(
        "every sidecar (the dead member's too), after srvr:   {}",
        summary(&all)
    );
    let cpu_mean = election_cpu.iter().sum::<f64>() / election_cpu.len().max(1) as f64;
    let cpu_max = election_cpu.iter().copied().fold(0.0, f64::max);
    println!(
        "sidecar CPU in the 3 s after a kill (the benchmark reads its /v1/status every 10 ms meanwhile): mean {cpu_mean:.2} %, max {cpu_max:.2} % of a core"
    );
    let mut peak = 0;
    for myid in ensemble.myids() {
        if let Some(pid) = ensemble.sidecar_pid(myid) {
            peak = peak.max(proc_status_kib(pid, "VmHWM:").unwrap_or(0));
        }
    }
    println!(
        "sidecar peak resident memory over the whole run: {:.1} MiB",
        peak as f64 / 1024.0
    );

    if let Some(keep) = std::env::var_os("BENCH_KEEP") {
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(ensemble.path())
            .arg(&keep)
            .status()
            .map_err(|e| e.to_string())?;
        println!(
            "logs copied to {} ({status})",
            PathBuf::from(keep).display()
        );
    }
    let polls_after = total_polls(&ensemble).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let members = ensemble.myids().len() as f64;
    println!(
        "polls per member per second, per sidecar (at most 1): {:.2}",
        (polls_after - polls_before) / elapsed / members / members
    );
    Ok(())
}

/// Waits until every sidecar reports `leader` and reaches every member.
async fn settled(ensemble: &LoopbackEnsemble, leader: Myid) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ok = true;
        for myid in ensemble.myids() {
            match ensemble.sidecar_status(myid).await {
                Ok(s) if s.leader == Some(u64::from(leader)) && s.quorum.reachable == 3 => {}
                _ => ok = false,
            }
        }
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the sidecars did not settle on leader {leader}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Kill {
    old: Myid,
    new: Myid,
    srvr_after: Duration,
    /// Per sidecar: ms from srvr's report to the sidecar's (negative: the
    /// sidecar knew first, from the members' election replies).
    sidecars: BTreeMap<Myid, f64>,
}

impl Kill {
    fn worst(&self, with_dead: bool) -> f64 {
        self.sidecars
            .iter()
            .filter(|(myid, _)| with_dead || **myid != self.old)
            .map(|(_, ms)| *ms)
            .fold(f64::MIN, f64::max)
    }
}

/// Kills the leader and times who learns the new one when. Returns the
/// sidecars' CPU (% of a core) over the 3 s after the kill.
async fn kill_leader(ensemble: &mut LoopbackEnsemble) -> Result<(Kill, Vec<f64>)> {
    let old = ensemble.wait_for_leader(Duration::from_secs(30)).await;
    let sidecar_pids: Vec<u32> = ensemble
        .myids()
        .iter()
        .filter_map(|m| ensemble.sidecar_pid(*m))
        .collect();
    let ticks_before: Vec<u64> = sidecar_pids.iter().filter_map(|p| cpu_ticks(*p)).collect();
    let killed = Instant::now();
    ensemble.kill(old);
    let cpu = {
        let pids = sidecar_pids.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            pids.iter()
                .zip(ticks_before)
                .filter_map(|(pid, before)| {
                    Some((cpu_ticks(*pid)? - before) as f64 / ticks_per_second() / 3.0 * 100.0)
                })
                .collect::<Vec<f64>>()
        })
    };
    let ensemble = &*ensemble;
    let survivors: Vec<Myid> = ensemble.myids().into_iter().filter(|m| *m != old).collect();
    let srvr = async {
        loop {
            for myid in &survivors {
                if ensemble
                    .srvr(*myid)
                    .await
                    .is_ok_and(|s| s.mode == Mode::Leader)
                {
                    return (killed.elapsed(), *myid);
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let sidecar = |myid: Myid| async move {
        loop {
            if let Ok(status) = ensemble.sidecar_status(myid).await
                && let Some(leader) = status.leader.filter(|l| *l != u64::from(old))
            {
                return (myid, killed.elapsed(), leader);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let all = futures_join(ensemble.myids().into_iter().map(sidecar).collect());
    let ((srvr_after, new), reports) =
        tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(srvr, all) })
            .await
            .map_err(|_| format!("no new leader reported within 20 s of killing {old}"))?;
    let mut sidecars = BTreeMap::new();
    for (myid, after, leader) in reports {
        if leader != u64::from(new) {
            return Err(format!(
                "sidecar {myid} reported leader {leader}, srvr says {new}"
            ));
        }
        sidecars.insert(
            myid,
            (after.as_secs_f64() - srvr_after.as_secs_f64()) * 1000.0,
        );
    }
    let cpu = cpu.await.map_err(|e| e.to_string())?;
    Ok((
        Kill {
            old,
            new,
            srvr_after,
            sidecars,
        },
        cpu,
    ))
}

/// Runs futures concurrently on this task and collects their outputs.
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

fn summary(values: &[f64]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
        sorted.get(i).copied().unwrap_or(f64::NAN)
    };
    format!(
        "median {:.0} ms, p95 {:.0} ms, min {:.0} ms, max {:.0} ms (n = {})",
        rank(0.5),
        rank(0.95),
        sorted.first().copied().unwrap_or(f64::NAN),
        sorted.last().copied().unwrap_or(f64::NAN),
        sorted.len()
    )
}

async fn total_polls(ensemble: &LoopbackEnsemble) -> Result<f64> {
    let mut total = 0.0;
    for myid in ensemble.myids() {
        let (_, body) = ensemble.sidecar_get(myid, "/metrics").await?;
        total += body
            .lines()
            .find_map(|l| {
                l.strip_prefix("zookube_watcher_polls_total ")?
                    .parse::<f64>()
                    .ok()
            })
            .ok_or("no zookube_watcher_polls_total")?;
    }
    Ok(total)
}

// ---- process statistics (/proc) ----

fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

struct Usage {
    /// (what, rss MiB, cpu % of a core)
    rows: Vec<(String, f64, f64)>,
}

impl Usage {
    fn print(&self) {
        for (what, rss, cpu) in &self.rows {
            println!("{what:<28} resident {rss:>7.1} MiB   CPU {cpu:>6.2} % of a core");
        }
        let mean = |prefix: &str, pick: fn(&(String, f64, f64)) -> f64| {
            let v: Vec<f64> = self
                .rows
                .iter()
                .filter(|r| r.0.starts_with(prefix))
                .map(pick)
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let (srss, scpu) = (mean("sidecar", |r| r.1), mean("sidecar", |r| r.2));
        let (zrss, zcpu) = (mean("zookeeper", |r| r.1), mean("zookeeper", |r| r.2));
        println!(
            "ratio sidecar / ZooKeeper server: memory {:.3}, CPU {:.3}",
            srss / zrss,
            if zcpu > 0.0 { scpu / zcpu } else { f64::NAN }
        );
    }
}

/// Resident memory at the end and CPU over `window`, of every sidecar and
/// every ZooKeeper server.
async fn usage(ensemble: &LoopbackEnsemble, window: Duration) -> Result<Usage> {
    let mut pids = Vec::new();
    for myid in ensemble.myids() {
        pids.push((
            format!("sidecar {myid}"),
            ensemble.sidecar_pid(myid).ok_or("no sidecar")?,
        ));
        pids.push((
            format!("zookeeper {myid}"),
            ensemble.pid(myid).ok_or("no server")?,
        ));
    }
    let before: Vec<u64> = pids
        .iter()
        .map(|(_, p)| cpu_ticks(*p).unwrap_or(0))
        .collect();
    tokio::time::sleep(window).await;
    let hz = ticks_per_second();
    let rows = pids
        .iter()
        .zip(before)
        .map(|((what, pid), before)| {
            let cpu = (cpu_ticks(*pid).unwrap_or(0).saturating_sub(before)) as f64
                / hz
                / window.as_secs_f64()
                * 100.0;
            let rss = proc_status_kib(*pid, "VmRSS:").unwrap_or(0) as f64 / 1024.0;
            (what.clone(), rss, cpu)
        })
        .collect();
    Ok(Usage { rows })
}

// ---- a keep-alive HTTP/1.1 load generator ----

struct Load {
    requests: u64,
    errors: u64,
    seconds: f64,
    latencies: Vec<Duration>,
}

impl Load {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn print(&self, what: &str) {
        if self.requests == 0 {
            println!("{what}: no successful request ({} errors)", self.errors);
            return;
        }
        let mut l = self.latencies.clone();
        l.sort();
        let at =
            |p: f64| l[((p * l.len() as f64) as usize).min(l.len() - 1)].as_secs_f64() * 1000.0;
        println!(
            "{what}: {:.0} requests/s, latency p50 {:.2} ms, p99 {:.2} ms, {} errors",
            self.rps(),
            at(0.5),
            at(0.99),
            self.errors
        );
    }
}

impl Load {
    /// Adds up the load generators' latencies and errors.
    async fn gather(
        tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, u64)>>,
        started: Instant,
    ) -> Load {
        let mut result = Load {
            requests: 0,
            errors: 0,
            seconds: 0.0,
            latencies: Vec::new(),
        };
        for task in tasks {
            if let Ok((latencies, errors)) = task.await {
                result.requests += latencies.len() as u64;
                result.errors += errors;
                result.latencies.extend(latencies);
            }
        }
        result.seconds = started.elapsed().as_secs_f64();
        result
    }
}

async fn load(addr: SocketAddr, path: &str, connections: usize, duration: Duration) -> Load {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let mut stream = BufReader::new(stream);
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    match request(&mut stream, addr, &path).await {
                        Ok(()) => latencies.push(sent.elapsed()),
                        Err(_) => {
                            errors += 1;
                            break;
                        }
                    }
                }
            }
            (latencies, errors)
        }));
    }
    Load::gather(tasks, started).await
}

/// `mntr` as fast as `connections` clients can ask it.
async fn load_mntr(addr: SocketAddr, connections: usize, duration: Duration) -> Load {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                match zk_process::fourlw::mntr(addr, Duration::from_secs(2)).await {
                    Ok(numbers) if !numbers.is_empty() => latencies.push(sent.elapsed()),
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    Load::gather(tasks, started).await
}

/// One GET on a kept-alive connection; the body is read and dropped.
async fn request(
    stream: &mut BufReader<tokio::net::TcpStream>,
    addr: SocketAddr,
    path: &str,
) -> Result<()> {
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream
        .get_mut()
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    let mut status = 0;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        if stream
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?
            == 0
        {
            return Err("closed".into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if status == 0 {
            status = l
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
        } else if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
        }
    }
    if chunked {
        loop {
            line.clear();
            stream
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|e| e.to_string())?;
            let mut chunk = vec![0; size + 2];
            stream
                .read_exact(&mut chunk)
                .await
                .map_err(|e| e.to_string())?;
            if size == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0; length.ok_or("no content length")?];
        stream
            .read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
    }
    if status == 200 {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}
