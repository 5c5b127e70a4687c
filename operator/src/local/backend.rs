//! The local ensemble as something to act on, one member at a time: prepare
//! a member with a given config (what a pod's init container does), start
//! its ZooKeeper server and its sidecar, stop them, signal the server, read
//! the sidecars. `up`, `start` and `down` are sequences of these steps, and
//! a membership change (`local scale`, `local restart`) applies its plan's
//! steps through the same calls: [`LocalEnsemble::start_member`] with the
//! member's new config, [`LocalEnsemble::stop_member`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant, SystemTime};

use zk_ensemble::tls::{self, Authority};
use zk_ensemble::{Myid, SidecarStatus, ZooCfg};
use zk_process::install::write_logging_config;
use zk_process::{Installation, Signal, stores};

use super::error::LocalError;
use super::plan::{Layout, MemberPlan, MemberTls};
use super::process::{self, Liveness, ProcessRecord};
use super::state::{LocalState, MemberRecord};
use crate::sidecar_client::SidecarClient;

/// What starts members: a ZooKeeper installation (and Java) and the
/// `zk-sidecar` binary.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub install: Installation,
    pub sidecar: PathBuf,
}

/// The environment variable that names the `zk-sidecar` binary (as for
/// zk-testkit).
pub const SIDECAR_ENV: &str = "ZK_SIDECAR";

/// How long a stopping process has between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

impl Launcher {
    /// Finds ZooKeeper, Java and `zk-sidecar`, or says how to install them.
    pub fn discover() -> Result<Launcher, LocalError> {
        let install = Installation::discover().map_err(LocalError::ZooKeeper)?;
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf));
        let sidecar = find_sidecar(
            std::env::var_os(SIDECAR_ENV),
            exe_dir.as_deref(),
            std::env::var_os("PATH"),
        )
        .map_err(|looked| LocalError::SidecarMissing { looked })?;
        Ok(Launcher { install, sidecar })
    }
}

/// The `zk-sidecar` binary: `$ZK_SIDECAR`, else the one beside zk-operator
/// (where Cargo builds both), else the first on `PATH`. On failure, where
/// it looked.
pub fn find_sidecar(
    env: Option<OsString>,
    exe_dir: Option<&Path>,
    path: Option<OsString>,
) -> Result<PathBuf, Vec<String>> {
    const NAME: &str = "zk-sidecar";
    if let Some(env) = env.filter(|v| !v.is_empty()) {
        let path = PathBuf::from(env);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(vec![format!("at {SIDECAR_ENV}={}", path.display())])
        };
    }
    let mut looked = Vec::new();
    if let Some(dir) = exe_dir {
        let beside = dir.join(NAME);
        if beside.is_file() {
            return Ok(beside);
        }
        looked.push(format!("beside zk-operator in {}", dir.display()));
    }
    if let Some(found) = path.as_ref().and_then(|p| {
        std::env::split_paths(p)
            .map(|d| d.join(NAME))
            .find(|c| c.is_file())
    }) {
        return Ok(found);
    }
    looked.push("on PATH".to_owned());
    Err(looked)
}

/// A local ensemble: its files, its recorded state, and the processes this
/// command started (kept so that their exit status can be read).
#[derive(Debug)]
pub struct LocalEnsemble {
    pub layout: Layout,
    pub state: LocalState,
    children: Vec<Child>,
}

impl LocalEnsemble {
    pub fn new(layout: Layout, state: LocalState) -> LocalEnsemble {
        LocalEnsemble {
            layout,
            state,
            children: Vec::new(),
        }
    }

    /// The ensemble recorded in `layout`, if any.
    pub fn open(layout: Layout) -> Result<Option<LocalEnsemble>, LocalError> {
        let state = LocalState::load(&layout.state_file())?;
        Ok(state.map(|state| LocalEnsemble::new(layout, state)))
    }

    pub fn save(&self) -> Result<(), LocalError> {
        Ok(self.state.save(&self.layout.state_file())?)
    }

    pub fn record(&self, myid: Myid) -> Result<&MemberRecord, LocalError> {
        self.state
            .member(myid)
            .ok_or_else(|| LocalError::NoSuchMember {
                myid,
                listed: self.state.myid_list(),
            })
    }

    fn record_mut(&mut self, myid: Myid) -> Result<&mut MemberRecord, LocalError> {
        let listed = self.state.myid_list();
        self.state
            .member_mut(myid)
            .ok_or(LocalError::NoSuchMember { myid, listed })
    }

    /// Writes the member's rendered `zoo.cfg` and runs `zk-sidecar init` on
    /// it, exactly as the pod's init container: the myid is written (or a
    /// foreign one refused) and the config copied where ZooKeeper may
    /// rewrite it. The member is added to the state if it is new, and its
    /// revision recorded.
    pub fn prepare(&mut self, launcher: &Launcher, member: &MemberPlan) -> Result<(), LocalError> {
        let config = self.layout.config_file(member.myid);
        let conf_dir = self.layout.conf_dir(member.myid);
        let write = |path: &Path| {
            let path = path.to_owned();
            move |source| LocalError::Write { path, source }
        };
        if let Some(dir) = config.parent() {
            fs::create_dir_all(dir).map_err(write(dir))?;
        }
        fs::write(&config, &member.zoo_cfg).map_err(write(&config))?;
        write_logging_config(&conf_dir).map_err(write(&conf_dir))?;
        if let Some(tls) = &member.tls {
            self.write_tls_stores(tls)?;
        }
        let output = Command::new(&launcher.sidecar)
            .arg("init")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&member.data_dir)
            .args(["--ordinal", &member.ordinal.to_string()])
            .args(["--role", &member.role.to_string()])
            .arg("--conf-dir")
            .arg(&conf_dir)
            .output()
            .map_err(|source| LocalError::Spawn {
                what: format!("{} init", launcher.sidecar.display()),
                source,
            })?;
        if !output.status.success() {
            let text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            return Err(LocalError::Init {
                name: member.name.clone(),
                myid: member.myid,
                output: text,
            });
        }
        if self.state.member(member.myid).is_none() {
            self.state.members.push(MemberRecord::of(member));
            self.state.members.sort_by_key(|m| m.myid);
        }
        let revision = member.revision(&self.state.jvm_flags, self.state.restart.as_deref());
        self.record_mut(member.myid)?.revision = Some(revision);
        Ok(())
    }

    /// The cluster's CA: the one in the ensemble folder, or a new one made
    /// and kept there (its key readable by its owner only).
    fn authority(&self) -> Result<Authority, LocalError> {
        let (cert_file, key_file) = (self.layout.ca_cert_file(), self.layout.ca_key_file());
        let (namespace, name) = (&self.state.namespace, &self.state.cluster);
        let tls = |source: zk_ensemble::tls::TlsError| LocalError::Tls(source.to_string());
        if key_file.is_file() {
            let read = |file: &Path| {
                fs::read_to_string(file).map_err(|source| LocalError::Read {
                    file: file.to_owned(),
                    source,
                })
            };
            return Authority::load(&read(&cert_file)?, &read(&key_file)?).map_err(tls);
        }
        let ca = Authority::generate(namespace, name, SystemTime::now()).map_err(tls)?;
        let dir = cert_file.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)
            .and_then(|()| stores::replace(&key_file, &ca.key_pem(), 0o600))
            .and_then(|()| stores::replace(&cert_file, ca.cert_pem(), 0o644))
            .map_err(|source| LocalError::Write {
                path: dir.to_owned(),
                source,
            })?;
        Ok(ca)
    }

    /// Issues the member a certificate from the cluster's CA and writes its
    /// key store and trust store where its config names them (its server
    /// is not running). With client TLS, the first member also writes a
    /// client's certificate for the user.
    fn write_tls_stores(&self, tls: &MemberTls) -> Result<(), LocalError> {
        let ca = self.authority()?;
        let issue = |names: &[String]| {
            ca.issue(names, SystemTime::now())
                .map_err(|e| LocalError::Tls(e.to_string()))
        };
        let leaf = issue(&tls.names)?;
        let written = |path: &Path| {
            let path = path.to_owned();
            move |source| LocalError::Write { path, source }
        };
        stores::write_stores(&tls.dir, &ca.key_store(&leaf), ca.cert_pem())
            .map_err(written(&tls.dir))?;
        let client = self.layout.client_tls_dir();
        if tls.client && !client.join("tls.key").is_file() {
            let leaf = issue(&tls::LOOPBACK_CALLER.map(str::to_owned))?;
            fs::create_dir_all(&client)
                .and_then(|()| stores::replace(&client.join("ca.crt"), ca.cert_pem(), 0o644))
                .and_then(|()| stores::replace(&client.join("tls.crt"), &leaf.cert_pem, 0o644))
                .and_then(|()| stores::replace(&client.join("tls.key"), &leaf.key_pem, 0o600))
                // The same as PEM stores, which Java clients read.
                .and_then(|()| stores::write_stores(&client, &ca.key_store(&leaf), ca.cert_pem()))
                .map_err(written(&client))?;
        }
        Ok(())
    }

    /// Starts the member's ZooKeeper server on its prepared config.
    pub fn start_server(&mut self, launcher: &Launcher, myid: Myid) -> Result<(), LocalError> {
        let conf_dir = self.layout.conf_dir(myid);
        let mut command = launcher.install.server_command(
            &conf_dir,
            &conf_dir.join("zoo.cfg"),
            &self.state.jvm_flags,
        );
        command.current_dir(self.layout.member_dir(myid));
        let log = self.layout.server_log(myid);
        let (child, record) =
            process::spawn(&mut command, &log, SERVER).map_err(|source| LocalError::Spawn {
                what: format!(
                    "the ZooKeeper server of myid {myid} ({})",
                    launcher.install.origin
                ),
                source,
            })?;
        self.children.push(child);
        self.record_mut(myid)?.server_process = Some(record);
        self.save()
    }

    /// Starts `zk-sidecar run` beside the member, on the config its server
    /// runs on, listening on the member's address at the sidecar port.
    pub fn start_sidecar(&mut self, launcher: &Launcher, myid: Myid) -> Result<(), LocalError> {
        let listen = self.record(myid)?.sidecar;
        let data_dir = self.data_dir(myid);
        let mut command = Command::new(&launcher.sidecar);
        command
            .args(["--log-format", "text", "run", "--config"])
            .arg(self.layout.conf_dir(myid).join("zoo.cfg"))
            .arg("--myid-file")
            .arg(data_dir.join("myid"))
            .arg("--listen")
            .arg(listen.to_string())
            // The watcher advertises the member's own loopback address.
            .env_remove("POD_IP")
            .current_dir(self.layout.member_dir(myid));
        let log = self.layout.sidecar_log(myid);
        let (child, record) =
            process::spawn(&mut command, &log, SIDECAR).map_err(|source| LocalError::Spawn {
                what: format!("{} run", launcher.sidecar.display()),
                source,
            })?;
        self.children.push(child);
        self.record_mut(myid)?.sidecar_process = Some(record);
        self.save()
    }

    /// The member's data folder: `dataDir` in its rendered config.
    pub fn data_dir(&self, myid: Myid) -> PathBuf {
        fs::read_to_string(self.layout.config_file(myid))
            .ok()
            .and_then(|text| ZooCfg::parse(&text).ok())
            .and_then(|cfg| cfg.get("dataDir").map(PathBuf::from))
            .unwrap_or_else(|| self.layout.data_root().join(myid.to_string()))
    }

    /// Prepares and starts one member: init, the server, and once the
    /// server listens, its sidecar (so the sidecar's first dials find it),
    /// unless its sidecar still runs from before.
    pub async fn start_member(
        &mut self,
        launcher: &Launcher,
        member: &MemberPlan,
        timeout: Duration,
    ) -> Result<(), LocalError> {
        self.prepare(launcher, member)?;
        self.start_server(launcher, member.myid)?;
        self.await_listening(&[member.myid], timeout).await?;
        if self.sidecar_alive(member.myid) {
            Ok(())
        } else {
            self.start_sidecar(launcher, member.myid)
        }
    }

    /// Drops the record of the member's sidecar if that process has exited
    /// (so that starting the member starts a new one instead of reporting
    /// the old one's exit).
    pub fn forget_exited_sidecar(&mut self, myid: Myid) -> Result<(), LocalError> {
        let record = self.record_mut(myid)?;
        if record
            .sidecar_process
            .as_ref()
            .is_some_and(|p| !p.liveness().is_alive())
        {
            record.sidecar_process = None;
            self.save()?;
        }
        Ok(())
    }

    /// Whether the member's sidecar runs (or is paused).
    pub fn sidecar_alive(&self, myid: Myid) -> bool {
        self.state
            .member(myid)
            .and_then(|m| m.sidecar_process.as_ref())
            .is_some_and(|p| p.liveness().is_alive())
    }

    /// Stops the member's sidecar and server, keeping its files. Returns
    /// what was running.
    pub fn stop_member(&mut self, myid: Myid) -> Result<Vec<ProcessRecord>, LocalError> {
        let record = self.record(myid)?;
        let processes: Vec<&ProcessRecord> = record.processes().collect();
        let stopped = process::stop_all(&processes, STOP_GRACE);
        let record = self.record_mut(myid)?;
        record.server_process = None;
        record.sidecar_process = None;
        self.reap();
        self.save()?;
        Ok(stopped)
    }

    /// Stops every process of the ensemble: the sidecars first (so none
    /// reports its own server's shutdown as a failure), then the servers.
    pub fn stop_all(&mut self) -> Result<Vec<ProcessRecord>, LocalError> {
        let sidecars: Vec<&ProcessRecord> = self
            .state
            .members
            .iter()
            .filter_map(|m| m.sidecar_process.as_ref())
            .collect();
        let mut stopped = process::stop_all(&sidecars, STOP_GRACE);
        let servers: Vec<&ProcessRecord> = self
            .state
            .members
            .iter()
            .filter_map(|m| m.server_process.as_ref())
            .collect();
        stopped.extend(process::stop_all(&servers, STOP_GRACE));
        for member in &mut self.state.members {
            member.server_process = None;
            member.sidecar_process = None;
        }
        self.reap();
        self.save()?;
        Ok(stopped)
    }

    /// Sends `signal` to the member's ZooKeeper server.
    pub fn signal_server(&self, myid: Myid, signal: Signal) -> Result<ProcessRecord, LocalError> {
        let record = self.record(myid)?;
        let server = record
            .server_process
            .as_ref()
            .filter(|p| p.liveness().is_alive())
            .ok_or_else(|| LocalError::NotRunning {
                name: record.name.clone(),
                myid,
            })?;
        server.signal(signal).map_err(|source| LocalError::Signal {
            pid: server.pid,
            source,
        })?;
        Ok(server.clone())
    }

    /// The liveness of the member's server and sidecar (`None`: never
    /// started, or stopped by `local`).
    pub fn liveness(&self, myid: Myid) -> (Option<Liveness>, Option<Liveness>) {
        self.state.member(myid).map_or((None, None), |m| {
            (
                m.server_process.as_ref().map(ProcessRecord::liveness),
                m.sidecar_process.as_ref().map(ProcessRecord::liveness),
            )
        })
    }

    /// The first of `myids` whose server or sidecar has exited since it was
    /// started, as an error with the tail of its log.
    pub fn exited(&mut self, myids: &[Myid]) -> Result<(), LocalError> {
        for myid in myids {
            let Some(member) = self.state.member(*myid) else {
                continue;
            };
            let checks = [
                (member.server_process.clone(), self.layout.server_log(*myid)),
                (
                    member.sidecar_process.clone(),
                    self.layout.sidecar_log(*myid),
                ),
            ];
            let name = member.name.clone();
            for (process, log) in checks {
                let Some(process) = process.filter(|p| !p.liveness().is_alive()) else {
                    continue;
                };
                let how = self
                    .exit_status(process.pid)
                    .map_or_else(|| "exited".to_owned(), describe_exit);
                return Err(LocalError::Exited {
                    name,
                    myid: *myid,
                    program: process.program,
                    how,
                    tail: log_tail(&log, LOG_TAIL),
                    log,
                });
            }
        }
        Ok(())
    }

    fn exit_status(&mut self, pid: u32) -> Option<ExitStatus> {
        self.children
            .iter_mut()
            .find(|c| c.id() == pid)
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Reads the exit status of children that have exited, so they do not
    /// linger as zombies while this command runs.
    fn reap(&mut self) {
        self.children
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
    }

    /// Waits until the servers of `myids` answer `ruok` on their client
    /// ports; fails at once when one exits.
    pub async fn await_listening(
        &mut self,
        myids: &[Myid],
        timeout: Duration,
    ) -> Result<(), LocalError> {
        let deadline = Instant::now() + timeout;
        let mut waiting: Vec<Myid> = myids.to_vec();
        while !waiting.is_empty() {
            self.exited(&waiting)?;
            let mut still = Vec::new();
            for myid in waiting {
                let client = self.record(myid)?.client;
                if zk_process::fourlw::ruok(client, Duration::from_millis(500))
                    .await
                    .is_err()
                {
                    still.push(myid);
                }
            }
            waiting = still;
            if let Some(myid) = waiting.first().filter(|_| Instant::now() >= deadline) {
                let record = self.record(*myid)?;
                let log = self.layout.server_log(*myid);
                return Err(LocalError::NotListening {
                    name: record.name.clone(),
                    myid: *myid,
                    client: record.client,
                    timeout_secs: timeout.as_secs(),
                    tail: log_tail(&log, LOG_TAIL),
                    log,
                });
            }
            if !waiting.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Every member's sidecar status (or why it could not be read), read
    /// at once.
    pub async fn read_sidecars(
        &self,
        client: &SidecarClient,
    ) -> BTreeMap<Myid, Result<SidecarStatus, String>> {
        let reads = self.state.members.iter().map(|m| async move {
            let ip = m.sidecar.ip().to_string();
            let status = client
                .status(&ip, m.sidecar.port())
                .await
                .map_err(|e| e.to_string());
            (m.myid, status)
        });
        futures::future::join_all(reads).await.into_iter().collect()
    }
}

/// What the processes are called in messages and the state file.
pub const SERVER: &str = "ZooKeeper server";
pub const SIDECAR: &str = "sidecar";

/// How many log lines a failure shows.
pub const LOG_TAIL: usize = 15;

/// "exited with status 1", "was killed by signal 9".
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "exited".to_owned(),
    }
}

/// The last `n` non-empty lines of a log file.
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_default();
    tail(&text, n)
}

/// The last `n` non-empty lines of `text`.
pub fn tail(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sidecar_is_found_by_variable_then_beside_then_on_path() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let other = dir.path().join("other");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&other).unwrap();
        let path = Some(std::env::join_paths([&other]).unwrap());

        let looked = find_sidecar(None, Some(&bin), path.clone()).unwrap_err();
        assert_eq!(looked.len(), 2);
        assert!(looked[0].contains("beside zk-operator"), "{looked:?}");

        fs::write(other.join("zk-sidecar"), "").unwrap();
        assert_eq!(
            find_sidecar(None, Some(&bin), path.clone()).unwrap(),
            other.join("zk-sidecar")
        );
        fs::write(bin.join("zk-sidecar"), "").unwrap();
        assert_eq!(
            find_sidecar(None, Some(&bin), path.clone()).unwrap(),
            bin.join("zk-sidecar")
        );
        let named = other.join("zk-sidecar").into_os_string();
        assert_eq!(
            find_sidecar(Some(named), Some(&bin), path.clone()).unwrap(),
            other.join("zk-sidecar")
        );
        let missing = dir.path().join("nope").into_os_string();
        assert!(find_sidecar(Some(missing), Some(&bin), path).is_err());
    }

    #[test]
    fn the_tail_skips_blank_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), ["b", "c"]);
        assert_eq!(tail("a\n", 5), ["a"]);
        assert!(tail("", 5).is_empty());
    }

    #[test]
    fn exits_are_described_in_words() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(1 << 8)),
            "exited with status 1"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            "was killed by signal 9"
        );
    }
}
