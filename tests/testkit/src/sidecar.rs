//! `zk-sidecar run` beside the members of a [`LoopbackEnsemble`] (or
//! `zk-sidecar vote` in place of members), and a small HTTP client for its
//! endpoints.
//!
//! ```no_run
//! # async fn demo(binary: &std::path::Path) {
//! let Some(zk) = zk_testkit::zookeeper() else { return };
//! let mut ensemble = zk_testkit::LoopbackEnsemble::new(&zk, 3, 0);
//! ensemble.start_all();
//! for myid in ensemble.myids() {
//!     ensemble.start_sidecar(binary, myid, &[]);
//! }
//! let status = ensemble.sidecar_status(ensemble.myids()[0]).await;
//! # }
//! ```
//!
//! Each sidecar listens on its member's loopback address at the standard
//! sidecar port (8081) and logs (as text) to a file beside the member's log;
//! the tail of every sidecar's log is printed when a test fails.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zk_ensemble::{Myid, SidecarStatus};

use crate::LoopbackEnsemble;

/// The sidecar's HTTP port (port name `sidecar`).
pub const SIDECAR_PORT: u16 = 8081;

/// A running `zk-sidecar run`.
#[derive(Debug)]
pub(crate) struct SidecarProcess {
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Drop for SidecarProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `zk-sidecar` binary: `$ZK_SIDECAR` when set, else the one Cargo
/// built beside the running test (`target/<profile>/zk-sidecar`). Tests in
/// the zk-sidecar package should pass `env!("CARGO_BIN_EXE_zk-sidecar")`.
pub fn sidecar_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ZK_SIDECAR") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> → target/<profile>/zk-sidecar
    exe.parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("zk-sidecar"))
        .expect("a target folder")
}

impl LoopbackEnsemble {
    /// Where member `myid`'s sidecar serves HTTP.
    pub fn sidecar_addr(&self, myid: Myid) -> SocketAddr {
        SocketAddr::new(
            self.spec.host(myid).parse().expect("a loopback address"),
            SIDECAR_PORT,
        )
    }

    pub fn sidecar_log_path(&self, myid: Myid) -> PathBuf {
        self.path()
            .join(format!("member-{myid}"))
            .join("sidecar.log")
    }

    /// The sidecar's log so far.
    pub fn sidecar_log(&self, myid: Myid) -> String {
        fs::read_to_string(self.sidecar_log_path(myid)).unwrap_or_default()
    }

    /// Starts `zk-sidecar run` beside member `myid` on its config and myid
    /// file, listening on [`LoopbackEnsemble::sidecar_addr`]. `extra` is
    /// appended to the `run` arguments (for example `--poll-interval`).
    pub fn start_sidecar(&mut self, binary: &Path, myid: Myid, extra: &[&str]) {
        self.spawn_sidecar(binary, "run", myid, extra);
    }

    /// Starts `zk-sidecar vote` as member `myid` (a voting Rust peer on that
    /// member's election port, so its server must not run), on the member's
    /// config and myid file, listening on [`LoopbackEnsemble::sidecar_addr`].
    /// It is stopped, logged and reported like a `run` sidecar.
    pub fn start_vote(&mut self, binary: &Path, myid: Myid, extra: &[&str]) {
        self.spawn_sidecar(binary, "vote", myid, extra);
    }

    fn spawn_sidecar(&mut self, binary: &Path, mode: &str, myid: Myid, extra: &[&str]) {
        self.stop_sidecar(myid);
        let log_path = self.sidecar_log_path(myid);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the sidecar log");
        let mut command = Command::new(binary);
        command
            .args(["--log-format", "text", mode, "--config"])
            .arg(self.config_path(myid))
            .arg("--myid-file")
            .arg(self.data_dir(myid).join("myid"))
            .arg("--listen")
            .arg(self.sidecar_addr(myid).to_string())
            .args(extra)
            .env_remove("POD_IP")
            .env("RUST_LOG", "info,zk_sidecar=debug");
        let child = self
            .in_member_network(myid, command)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        self.sidecars.insert(
            myid,
            SidecarProcess {
                child,
                log: log_path,
            },
        );
    }

    /// Kills member `myid`'s sidecar, if it runs.
    pub fn stop_sidecar(&mut self, myid: Myid) {
        self.sidecars.remove(&myid);
    }

    /// The pid of member `myid`'s sidecar.
    pub fn sidecar_pid(&self, myid: Myid) -> Option<u32> {
        self.sidecars.get(&myid).map(|s| s.child.id())
    }

    /// `GET path` on member `myid`'s sidecar.
    pub async fn sidecar_get(&self, myid: Myid, path: &str) -> Result<(u16, String), String> {
        http_get(self.sidecar_addr(myid), path).await
    }

    /// Member `myid`'s sidecar's `/v1/status`.
    pub async fn sidecar_status(&self, myid: Myid) -> Result<SidecarStatus, String> {
        let (code, body) = self.sidecar_get(myid, "/v1/status").await?;
        if code != 200 {
            return Err(format!("/v1/status answered {code}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{e} in {body}"))
    }

    /// Waits until every sidecar in `sidecars` reports `leader`.
    pub async fn every_sidecar_reports(&self, sidecars: &[Myid], leader: Myid, timeout: Duration) {
        crate::eventually(
            "every sidecar to report ZooKeeper's leader",
            timeout,
            || async {
                for myid in sidecars {
                    let status = self.sidecar_status(*myid).await?;
                    if status.leader != Some(u64::from(leader)) {
                        return Err(format!("sidecar {myid}: {status:?}"));
                    }
                }
                Ok(())
            },
        )
        .await;
    }

    /// A started ensemble of `voters` that [`LoopbackEnsemble::partition`]
    /// can cut apart, with `zk-sidecar run` (`binary`) beside every member;
    /// `None` when the test should be skipped (see [`crate::zookeeper`] and
    /// [`crate::partitions_available`]). A LOOKING server re-sends its
    /// notifications at most 1 s apart (60 s by default), so a member that
    /// was cut off rejoins about a second after the heal.
    pub fn partitionable_with_sidecars(binary: &Path, voters: u32) -> Option<LoopbackEnsemble> {
        let zk = crate::zookeeper()?;
        if !crate::partitions_available() {
            return None;
        }
        let mut ensemble = LoopbackEnsemble::new(&zk, voters, 0);
        ensemble
            .jvm_flags
            .push("-Dzookeeper.fastleader.maxNotificationInterval=1000".to_owned());
        ensemble
            .enable_partitions()
            .expect("set up the members' networks");
        ensemble.start_all();
        for myid in ensemble.myids() {
            ensemble.start_sidecar(binary, myid, &["--startup-grace", "5s"]);
        }
        Some(ensemble)
    }

    pub(crate) fn print_sidecar_logs(&self) {
        for (myid, sidecar) in &self.sidecars {
            let log = fs::read_to_string(&sidecar.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of member {myid}'s sidecar log ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A one-shot HTTP `GET` (2 s time-out): the status code and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    http_get_within(addr, path, Duration::from_secs(2)).await
}

/// A one-shot HTTP/1.0 `GET` that gives up after `timeout`.
pub(crate) async fn http_get_within(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        // HTTP/1.0: the server closes the connection after the answer and never
        // chunks it.
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("no HTTP head in {text:?}"))?;
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status code in {head:?}"))?;
        Ok((code, body.to_owned()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("GET http://{addr}{path} timed out"))?
}
