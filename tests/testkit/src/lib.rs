//! zk-testkit: real ZooKeeper servers on loopback for tests, and the rule
//! that a test needing ZooKeeper fails in CI when it is missing.
//!
//! ```no_run
//! # async fn demo() {
//! let Some(zk) = zk_testkit::zookeeper() else { return };
//! let mut ensemble = zk_testkit::LoopbackEnsemble::new(&zk, 3, 0);
//! ensemble.start_all();
//! let leader = ensemble.wait_for_leader(std::time::Duration::from_secs(30)).await;
//! # }
//! ```
//!
//! Each ensemble gets its own block of loopback addresses (`127.a.b.1+myid`),
//! so ensembles of parallel tests keep the standard ports without clashing.
//! Every process is killed when the ensemble is dropped; when a test fails,
//! the tail of each server's log is printed and the folder is kept.
//! [`load`] is a real client's write load and a sampled timeline of who
//! leads. [`monitoring`] holds the dashboard, the alerts and the README against the
//! metrics the code exports; [`prometheus`] runs a real Prometheus server;
//! [`volume`] is a small data volume a test can fill up.

#![allow(clippy::print_stderr)]

pub mod linearizable;
pub mod load;
pub mod monitoring;
mod network;
pub mod prometheus;
mod sidecar;
pub mod volume;

pub use sidecar::{SIDECAR_PORT, http_get, sidecar_binary};

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::fs;
use std::future::Future;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use zk_ensemble::tls::Authority;
use zk_ensemble::{EnsembleSpec, Myid, Placement};
use zk_process::install::{small_jvm_flags, write_logging_config};
use zk_process::{FourLetterError, Installation, Mode, Signal, Srvr};

/// Whether this run is CI's: `CI` is set to anything but `""`, `0` or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// Whether [`LoopbackEnsemble::enable_partitions`] can work here (root,
/// iptables, cgroup2). In CI a missing part fails the test; elsewhere the
/// test is skipped with a line on stderr saying so and why.
pub fn partitions_available() -> bool {
    match network::unavailable() {
        None => true,
        Some(why) if in_ci() => panic!("this test makes network partitions and CI is set: {why}"),
        Some(why) => {
            eprintln!(
                "SKIPPED: this test makes network partitions ({why}); CI is unset, so it is skipped"
            );
            false
        }
    }
}

/// A [`volume::SmallVolume`] over `path`, or `None` when the test should
/// be skipped: mounting one needs root. In CI that fails the test;
/// elsewhere the test is skipped with a line on stderr saying so and why.
pub fn small_volume(path: &Path, mib: u32) -> Option<volume::SmallVolume> {
    match volume::SmallVolume::mount(path, mib) {
        Ok(volume) => Some(volume),
        Err(why) if in_ci() => panic!("this test fills up a small volume and CI is set: {why}"),
        Err(why) => {
            eprintln!(
                "SKIPPED: this test fills up a small volume (a tmpfs: {why}); CI is unset, so it is skipped"
            );
            None
        }
    }
}

/// The ZooKeeper installation, or `None` when the test should be skipped.
///
/// In CI a missing ZooKeeper (or Java) fails the test. Elsewhere the test is
/// skipped with a line on stderr saying so and why.
pub fn zookeeper() -> Option<Installation> {
    match Installation::discover() {
        Ok(found) => Some(found),
        Err(e) if in_ci() => panic!("this test needs a real ZooKeeper server and CI is set: {e}"),
        Err(e) => {
            eprintln!(
                "SKIPPED: this test needs a real ZooKeeper server ({e}); CI is unset, so it is skipped"
            );
            None
        }
    }
}

/// Polls `check` every 50 ms until it yields a value, and panics naming
/// `what` (and the last observation) when `timeout` passes first.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A fresh `127.a.b.1` base address, different for every call in every
/// process (members then use `base + myid`).
pub fn loopback_base() -> Ipv4Addr {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = RandomState::new().hash_one((
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        Instant::now(),
    ));
    let [a, b, ..] = seed.to_le_bytes();
    // 127.0.x.x is left to `zk-operator local`.
    Ipv4Addr::new(127, a.max(1), b, 1)
}

/// One server process of a [`LoopbackEnsemble`].
#[derive(Debug)]
struct Server {
    child: Option<Child>,
    dir: PathBuf,
}

/// A real ZooKeeper ensemble on loopback, rendered by `zk-ensemble`.
#[derive(Debug)]
pub struct LoopbackEnsemble {
    pub spec: EnsembleSpec,
    install: Installation,
    dir: tempfile::TempDir,
    servers: BTreeMap<Myid, Server>,
    /// Extra JVM flags for every server (for example a super digest).
    pub jvm_flags: Vec<String>,
    /// `zk-sidecar run` processes beside members (see [`sidecar`]).
    sidecars: BTreeMap<Myid, sidecar::SidecarProcess>,
    /// Partitions between members (see [`LoopbackEnsemble::enable_partitions`]);
    /// last, so it is dropped after every process is gone.
    network: Option<network::Network>,
}

impl LoopbackEnsemble {
    /// Prepares (but does not start) an ensemble with `voters` voters and
    /// `observers` observers, with fast test timings (tickTime 500 ms).
    pub fn new(install: &Installation, voters: u32, observers: u32) -> LoopbackEnsemble {
        let dir = tempfile::Builder::new()
            .prefix("zk-testkit-")
            .tempdir()
            .expect("create a temporary folder");
        let mut spec = EnsembleSpec::new("test", "default");
        spec.voters = voters;
        spec.observers = observers;
        spec.settings.tick_time_ms = 500;
        spec.settings.init_limit = 10;
        spec.settings.sync_limit = 4;
        spec.placement = Placement::Loopback {
            base: free_loopback_base(&spec),
            data_root: dir.path().join("data").display().to_string(),
            tls_root: dir.path().join("tls").display().to_string(),
        };
        let mut ensemble = LoopbackEnsemble {
            spec,
            install: install.clone(),
            dir,
            servers: BTreeMap::new(),
            jvm_flags: small_jvm_flags(),
            sidecars: BTreeMap::new(),
            network: None,
        };
        for member in ensemble.spec.members() {
            ensemble.prepare(member.myid);
        }
        ensemble
    }

    /// Writes a member's `zoo.cfg`, logging config and `myid` file, rendered
    /// from the current spec. Call again after changing the spec.
    pub fn prepare(&mut self, myid: Myid) {
        let dir = self.dir.path().join(format!("member-{myid}"));
        let conf = dir.join("conf");
        write_logging_config(&conf).expect("write the logging config");
        let cfg = self.spec.zoo_cfg(myid).expect("the test spec renders");
        fs::write(conf.join("zoo.cfg"), cfg.render()).expect("write zoo.cfg");
        let data = self.data_dir(myid);
        fs::create_dir_all(&data).expect("create the data folder");
        fs::write(data.join("myid"), myid.file_contents()).expect("write myid");
        self.servers
            .entry(myid)
            .or_insert(Server { child: None, dir });
    }

    /// Turns quorum TLS on (`sslQuorum=true`, PEM stores): one new CA for
    /// the ensemble, every member's stores written from it, every config
    /// rendered again. Call before the servers start.
    pub fn enable_quorum_tls(&mut self) -> Authority {
        self.spec.quorum_tls = true;
        let ca = Authority::generate(&self.spec.namespace, &self.spec.name, SystemTime::now())
            .expect("a CA");
        for myid in self.myids() {
            self.write_quorum_stores(myid, &ca, &[&ca]);
            self.prepare(myid);
        }
        ca
    }

    /// Writes member `myid`'s stores while its server is down: a new
    /// certificate from `issuer`, and the certificates of `trusted` as the
    /// trust store. A running server takes one store at a time
    /// ([`LoopbackEnsemble::rotate_trust_store`], then
    /// [`LoopbackEnsemble::rotate_key_store`]; see `zk_process::stores`).
    pub fn write_quorum_stores(&self, myid: Myid, issuer: &Authority, trusted: &[&Authority]) {
        self.rotate_trust_store(myid, trusted);
        self.rotate_key_store(myid, issuer);
    }

    /// Replaces member `myid`'s trust store with the certificates of
    /// `trusted`, by rename-into-place.
    pub fn rotate_trust_store(&self, myid: Myid, trusted: &[&Authority]) {
        let trust: String = trusted.iter().map(|ca| ca.cert_pem()).collect();
        zk_process::stores::write_trust_store(Path::new(&self.spec.tls_dir(myid)), &trust)
            .expect("write the trust store");
    }

    /// Replaces member `myid`'s key store with a new certificate from
    /// `issuer`, by rename-into-place.
    pub fn rotate_key_store(&self, myid: Myid, issuer: &Authority) {
        let leaf = issuer
            .issue(
                &zk_ensemble::tls::member_names(&self.spec, myid),
                SystemTime::now(),
            )
            .expect("a member certificate");
        zk_process::stores::write_key_store(
            Path::new(&self.spec.tls_dir(myid)),
            &issuer.key_store(&leaf),
        )
        .expect("write the key store");
    }

    /// The folder all servers' files live in.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn myids(&self) -> Vec<Myid> {
        self.servers.keys().copied().collect()
    }

    pub fn conf_dir(&self, myid: Myid) -> PathBuf {
        self.server(myid).dir.join("conf")
    }

    pub fn config_path(&self, myid: Myid) -> PathBuf {
        self.conf_dir(myid).join("zoo.cfg")
    }

    pub fn data_dir(&self, myid: Myid) -> PathBuf {
        self.dir.path().join("data").join(myid.to_string())
    }

    pub fn log_path(&self, myid: Myid) -> PathBuf {
        self.server(myid).dir.join("zookeeper.log")
    }

    /// The member's client endpoint (`host:2181`).
    pub fn client_addr(&self, myid: Myid) -> SocketAddr {
        SocketAddr::new(
            self.spec.host(myid).parse().expect("a loopback address"),
            self.spec.ports.client,
        )
    }

    /// The member's election endpoint (`host:3888`).
    pub fn election_addr(&self, myid: Myid) -> SocketAddr {
        SocketAddr::new(
            self.spec.host(myid).parse().expect("a loopback address"),
            self.spec.ports.election,
        )
    }

    /// A client connect string for every member.
    pub fn connect_string(&self) -> String {
        self.myids()
            .iter()
            .map(|id| self.client_addr(*id).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts every member that is not running.
    pub fn start_all(&mut self) {
        for myid in self.myids() {
            if self.pid(myid).is_none() {
                self.start(myid);
            }
        }
    }

    /// Starts one member's server.
    pub fn start(&mut self, myid: Myid) {
        let conf = self.conf_dir(myid);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(myid))
            .expect("open the server log");
        let err = log.try_clone().expect("clone the log handle");
        let command = self
            .install
            .server_command(&conf, &conf.join("zoo.cfg"), &self.jvm_flags);
        let child = self
            .in_member_network(myid, command)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("start java");
        self.server_mut(myid).child = Some(child);
    }

    /// Lets [`LoopbackEnsemble::partition`] cut members off from each other
    /// (see the `network` module: root, iptables and cgroup2 needed). Call
    /// before starting any server or sidecar: each member's processes then
    /// run in a cgroup of their own and connect from the member's address,
    /// as from a pod's IP.
    pub fn enable_partitions(&mut self) -> Result<(), String> {
        let addresses = self
            .myids()
            .into_iter()
            .map(|myid| {
                let host = self.spec.host(myid);
                host.parse()
                    .map(|ip| (myid, ip))
                    .map_err(|e| format!("member {myid}'s host {host}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        self.network = Some(network::Network::new(addresses)?);
        Ok(())
    }

    /// Cuts every member of one group off from every member of the others,
    /// both ways (servers and sidecars alike), replacing any partition
    /// before. The test process still reaches everyone.
    pub fn partition(&self, groups: &[&[Myid]]) -> Result<(), String> {
        self.network()?.partition(groups)
    }

    /// Ends every partition.
    pub fn heal(&self) -> Result<(), String> {
        self.network()?.heal()
    }

    fn network(&self) -> Result<&network::Network, String> {
        self.network
            .as_ref()
            .ok_or_else(|| "call enable_partitions before starting the ensemble".to_owned())
    }

    /// `command` as member `myid` runs it: inside its network when
    /// partitions are enabled.
    pub(crate) fn in_member_network(
        &self,
        myid: Myid,
        command: std::process::Command,
    ) -> std::process::Command {
        match &self.network {
            Some(network) => network.wrap(myid, &command),
            None => command,
        }
    }

    /// The pid of a running member's server.
    pub fn pid(&self, myid: Myid) -> Option<u32> {
        self.servers.get(&myid)?.child.as_ref().map(Child::id)
    }

    /// Sends a signal (SIGSTOP, SIGCONT, …) to a member's server.
    pub fn signal(&self, myid: Myid, signal: Signal) {
        let pid = self.pid(myid).expect("the member is running");
        zk_process::signal(pid, signal).expect("signal the server");
    }

    /// Kills a member's server with SIGKILL and reaps it.
    pub fn kill(&mut self, myid: Myid) {
        if let Some(mut child) = self.server_mut(myid).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The member's `srvr` answer.
    pub async fn srvr(&self, myid: Myid) -> Result<Srvr, FourLetterError> {
        zk_process::fourlw::srvr(self.client_addr(myid), Duration::from_secs(1)).await
    }

    /// Every running member's `srvr` answer (errors included).
    pub async fn srvr_all(&self) -> BTreeMap<Myid, Result<Srvr, FourLetterError>> {
        let mut all = BTreeMap::new();
        for myid in self.myids() {
            if self.pid(myid).is_some() {
                all.insert(myid, self.srvr(myid).await);
            }
        }
        all
    }

    /// Waits until every running member serves, exactly one leads, and every
    /// other running voter follows it; returns the leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Myid {
        eventually(
            "one leader that every running member serves under",
            timeout,
            || async {
                let all = self.srvr_all().await;
                let mut leaders = Vec::new();
                for (myid, answer) in &all {
                    match answer {
                        Ok(s) if s.mode == Mode::Leader => leaders.push(*myid),
                        Ok(s) if matches!(s.mode, Mode::Follower | Mode::Observer) => {}
                        other => return Err(format!("member {myid}: {other:?}")),
                    }
                }
                match leaders[..] {
                    [leader] => Ok(leader),
                    _ => Err(format!("leaders {leaders:?} in {all:?}")),
                }
            },
        )
        .await
    }

    /// The member's log so far.
    pub fn log(&self, myid: Myid) -> String {
        fs::read_to_string(self.log_path(myid)).unwrap_or_default()
    }

    /// Log lines of any member that contain any of `needles`, as
    /// `(myid, line)`.
    pub fn log_lines_containing(&self, needles: &[&str]) -> Vec<(Myid, String)> {
        self.myids()
            .into_iter()
            .flat_map(|myid| {
                self.log(myid)
                    .lines()
                    .filter(|line| needles.iter().any(|n| line.contains(n)))
                    .map(|line| (myid, line.to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn server(&self, myid: Myid) -> &Server {
        self.servers
            .get(&myid)
            .unwrap_or_else(|| panic!("member {myid} was never prepared"))
    }

    fn server_mut(&mut self, myid: Myid) -> &mut Server {
        self.servers
            .get_mut(&myid)
            .unwrap_or_else(|| panic!("member {myid} was never prepared"))
    }
}

impl Drop for LoopbackEnsemble {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_sidecar_logs();
        }
        self.sidecars.clear();
        for myid in self.myids() {
            self.kill(myid);
        }
        if std::thread::panicking() {
            for myid in self.myids() {
                let log = self.log(myid);
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!("--- last lines of member {myid}'s log ---");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
            let kept = std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().expect("create a temporary folder"),
            )
            .keep();
            eprintln!("ensemble files kept in {}", kept.display());
        }
    }
}

/// A base whose members' election and client endpoints are all free.
fn free_loopback_base(spec: &EnsembleSpec) -> Ipv4Addr {
    let myids: Vec<Myid> = spec.members().iter().map(|m| m.myid).collect();
    for _ in 0..32 {
        let base = loopback_base();
        let free = myids.iter().all(|myid| {
            let host = zk_ensemble::spec::loopback_address(base, *myid);
            [spec.ports.client, spec.ports.election].iter().all(|port| {
                zk_process::ensure_port_free(SocketAddr::new(host.into(), *port)).is_ok()
            })
        });
        if free {
            return base;
        }
    }
    panic!("no free block of loopback addresses found")
}

/// Log lines a member writes when a peer's bytes hurt it (spec §6): parse
/// errors, dropped messages, a dead listener or receiver thread, a
/// reconfiguration or restarted election, dial-backs to a watcher's sid
/// (every watcher sid starts with the digits of 2^62). Scan with
/// [`LoopbackEnsemble::log_lines_containing`].
pub const HARM: [&str; 10] = [
    "Initial message parsing error",
    "Got a short response",
    "Skipping the processing of a partial / malformed response",
    "Something went wrong while processing config",
    "I won't be able to participate in leader election",
    "Exception occurred from thread",
    "restarting leader election",
    "Invalid server id: 461168601842738",
    "Cannot open channel to 461168601842738",
    "connection request from a server with our own ID",
];

/// ZooKeeper's own defects that leave one member without writes the
/// ensemble acknowledged, by a line the member logs when it happens, and
/// what each is. The fault suite finds them on Debian's ZooKeeper 3.8.0 (a
/// follower killed and restarted under write load); they are reported, not
/// blamed on zookube, and only on the member whose log shows them.
pub const ZOOKEEPER_DATA_DEFECTS: [(&str, &str); 1] = [(
    "because \"pif\" is null",
    "ZOOKEEPER-4394: a follower syncing with the leader by DIFF while proposals are in flight fails with a NullPointerException in Learner.syncWithLeader, follows again and serves with a hole in its data (ZooKeeper 3.8.0; fixed upstream by apache/zookeeper pull request 2152)",
)];

/// The known ZooKeeper data defect one member's log shows, if any.
pub fn zookeeper_data_defect(log: &str) -> Option<&'static str> {
    ZOOKEEPER_DATA_DEFECTS
        .iter()
        .find(|(line, _)| log.contains(line))
        .map(|(_, what)| *what)
}

/// The lines of one member's log that are harm while its membership
/// changes (a `local scale`, a roll): [`HARM`], less what a reconfig makes
/// ZooKeeper write by itself.
/// * "restarting leader election": a joiner learns the new config from its
///   peers while LOOKING.
/// * "Invalid server id: 2^62…" while the member's election subsystem is
///   being replaced (from "Leaving listener" until the new listener "is
///   accepting connections now" and the old election's "WorkerSender is
///   down"): every member drops every election connection when it applies
///   a reconfig, and a watcher's poll it had read just before is answered
///   after its connection is gone — by the old election's sender, which
///   stops only at its next look at its queue, after the new listener is
///   up. The watcher closed nothing.
pub fn harm_during_membership_changes(log: &str) -> Vec<&str> {
    let mut restarting = false;
    let (mut listening, mut old_sender_down) = (false, false);
    let mut found = Vec::new();
    for line in log.lines() {
        if line.contains("Leaving listener") {
            (restarting, listening, old_sender_down) = (true, false, false);
        } else if line.contains("is accepting connections now") {
            listening = true;
        } else if listening && line.contains("WorkerSender is down") {
            // Only one that stops after the new listener is up: an older
            // election's sender, replaced by a restart just before, may
            // stop in between.
            old_sender_down = true;
        }
        if listening && old_sender_down {
            restarting = false;
        }
        let excused = |needle: &&str| {
            needle.contains("restarting leader election")
                || (restarting && needle.starts_with("Invalid server id"))
        };
        if HARM
            .iter()
            .any(|needle| line.contains(needle) && !excused(needle))
        {
            found.push(line);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::{harm_during_membership_changes, zookeeper_data_defect};

    #[test]
    fn only_a_known_defects_own_line_names_it() {
        let npe =
            "java.lang.NullPointerException: Cannot read field \"hdr\" because \"pif\" is null";
        let cases: [(&str, bool); 3] = [
            (npe, true),
            (
                "WARN [QuorumPeer[myid=1]] - Exception when following the leader",
                false,
            ),
            ("", false),
        ];
        for (log, known) in cases {
            let found = zookeeper_data_defect(log);
            assert_eq!(found.is_some(), known, "{log:?}: {found:?}");
            if let Some(what) = found {
                assert!(what.starts_with("ZOOKEEPER-4394"), "{what}");
            }
        }
    }

    #[test]
    fn a_watchers_answer_lost_to_a_reconfig_restart_is_excused_nothing_else() {
        let invalid = "WARN [WorkerSender[myid=3]:QuorumCnxManager@780] - Invalid server id: 4611686018427387906 ";
        let cases: [(&str, Vec<&str>, usize); 8] = [
            ("outside a restart", vec![invalid], 1),
            (
                "inside a restart",
                vec![
                    "INFO - Leaving listener",
                    invalid,
                    "INFO - 3 is accepting connections now",
                ],
                0,
            ),
            (
                "the old election's last send, once the listener is back",
                vec![
                    "INFO - Leaving listener",
                    "INFO - 3 is accepting connections now",
                    invalid,
                    "INFO - WorkerSender is down",
                ],
                0,
            ),
            (
                "after the restart",
                vec![
                    "INFO - Leaving listener",
                    "INFO - 3 is accepting connections now",
                    "INFO - WorkerSender is down",
                    invalid,
                ],
                1,
            ),
            (
                "an older election's sender down before the listener is back",
                vec![
                    "INFO - Leaving listener",
                    "INFO - WorkerSender is down",
                    "INFO - 2 is accepting connections now",
                    invalid,
                    "INFO - WorkerSender is down",
                    invalid,
                ],
                1,
            ),
            (
                "the old sender down but the listener not back yet",
                vec![
                    "INFO - Leaving listener",
                    "INFO - WorkerSender is down",
                    invalid,
                    "INFO - 3 is accepting connections now",
                    "WARN - Cannot open channel to 4611686018427387906",
                ],
                1,
            ),
            (
                "a joiner's restart",
                vec!["INFO - restarting leader election"],
                0,
            ),
            (
                "a parse error inside a restart",
                vec![
                    "INFO - Leaving listener",
                    "WARN - Initial message parsing error!",
                ],
                1,
            ),
        ];
        for (name, lines, expected) in cases {
            let log = lines.join("\n");
            assert_eq!(
                harm_during_membership_changes(&log).len(),
                expected,
                "{name}"
            );
        }
    }
}
