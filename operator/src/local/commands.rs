//! The `local` verbs, each a short sequence of [`LocalEnsemble`] steps:
//! read and validate the cluster as the operator does, check the machine,
//! act, and show the result. Output for people goes to stdout; progress
//! while waiting goes to stderr.

use std::collections::BTreeMap;
use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zk_ensemble::Myid;

use super::backend::{Launcher, LocalEnsemble};
use super::error::{LocalError, PortInUse};
use super::plan::{Layout, LocalPlan, MemberPlan};
use super::process::{self, ProcessRecord};
use super::state::LocalState;
use super::view::{self, LocalView, Processes};
use super::{
    DEFAULT_DIR, DownArgs, KillArgs, LocalArgs, LocalCommand, LogsArgs, Output, SignalName,
    StartArgs, StatusArgs, UpArgs, program, shown,
};
use crate::cluster::{self, ValidatedCluster};
use crate::sidecar_client::SidecarClient;

/// How often `up` and `start` read the sidecars while they wait.
pub(super) const POLL: Duration = Duration::from_millis(100);

/// How long `up` waits, once a quorum-backed leader is known, for every
/// member's sidecar to report it (sidecars poll once a second).
const AGREEMENT_GRACE: Duration = Duration::from_secs(5);

pub async fn dispatch(args: LocalArgs) -> Result<(), LocalError> {
    let root = std::path::absolute(&args.dir).map_err(|source| LocalError::Read {
        file: args.dir.clone(),
        source,
    })?;
    let cli = Cli {
        layout: Layout::new(root),
        dir_flag: dir_flag(&args.dir),
    };
    match &args.command {
        LocalCommand::Up(up_args) => cli.up(up_args).await,
        LocalCommand::Status(status_args) => cli.status(status_args).await,
        LocalCommand::Kill(kill_args) => cli.kill(kill_args),
        LocalCommand::Start(start_args) => cli.start(start_args).await,
        LocalCommand::Logs(logs_args) => cli.logs(logs_args),
        LocalCommand::Down(down_args) => cli.down(down_args),
        LocalCommand::Scale(scale_args) => cli.scale(scale_args).await,
        LocalCommand::Restart(restart_args) => cli.restart(restart_args).await,
        LocalCommand::Apply(apply_args) => cli.apply(apply_args).await,
    }
}

/// ` --dir DIR` when the user chose a folder, for the commands we suggest.
fn dir_flag(dir: &Path) -> String {
    if dir == Path::new(DEFAULT_DIR) {
        String::new()
    } else {
        format!(" --dir {}", dir.display())
    }
}

pub(super) struct Cli {
    pub(super) layout: Layout,
    pub(super) dir_flag: String,
}

impl Cli {
    /// `local up`.
    async fn up(&self, args: &UpArgs) -> Result<(), LocalError> {
        let started = Instant::now();
        let (text, cluster) = read_cluster(&args.file, args.name.as_deref())?;
        let plan = LocalPlan::new(&cluster, args.base, &self.layout)?;
        if let Some(existing) = LocalEnsemble::open(self.layout.clone())? {
            let alive = existing.state.alive().len();
            if alive > 0 {
                return Err(LocalError::AlreadyRunning {
                    dir: self.layout.root().to_owned(),
                    cluster: existing.state.cluster.clone(),
                    alive,
                    members: existing.state.myid_list(),
                });
            }
            if let Some(mismatch) = existing.state.mismatch(&plan) {
                return Err(LocalError::Reuse {
                    dir: self.layout.root().to_owned(),
                    mismatch,
                });
            }
        }
        let launcher = Launcher::discover()?;
        let busy = ports_in_use(&plan);
        if !busy.is_empty() {
            return Err(LocalError::PortsInUse(busy));
        }
        write_file(&self.layout.cluster_file(), &text)?;
        let mut state = LocalState::new(&plan, &args.file.display().to_string(), unix_now());
        // The super user that `scale`, `restart` and `apply` reconfigure as.
        super::change::enable_super(&self.layout, &mut state.jvm_flags)?;
        let mut ensemble = LocalEnsemble::new(self.layout.clone(), state);
        ensemble.save()?;
        eprintln!(
            "starting {} ZooKeeper servers from {} and a zk-sidecar beside each, in {}",
            plan.members.len(),
            launcher.install.origin,
            shown(self.layout.root())
        );
        let deadline = started + args.timeout;
        match bring_up(&mut ensemble, &launcher, &plan, deadline, args.timeout).await {
            Ok(view) => {
                println!(
                    "{}  (up in {:.1} s)\n",
                    view.headline(),
                    started.elapsed().as_secs_f64()
                );
                print!("{}", view.table());
                let connect: Vec<&str> = view.members.iter().map(|m| m.client.as_str()).collect();
                let leader = view.leader.unwrap_or(1);
                let d = &self.dir_flag;
                let p = program();
                println!("\nclients connect to {}", connect.join(","));
                let secure: Vec<String> = plan
                    .members
                    .iter()
                    .filter_map(|m| m.secure_client().map(|a| a.to_string()))
                    .collect();
                if !secure.is_empty() {
                    println!(
                        "TLS clients connect to {} with {}/{{tls.crt,tls.key,ca.crt}}",
                        secure.join(","),
                        shown(&self.layout.client_tls_dir())
                    );
                }
                println!(
                    "next: `{p} status{d}`, `{p} kill {leader}{d}` (the leader), `curl {}`, `{p} down{d}`",
                    view.members.first().map_or("", |m| m.metrics.as_str())
                );
                Ok(())
            }
            // The members run; the user may want to look at them.
            Err(e @ LocalError::NoLeader { .. }) => Err(e),
            Err(e) => {
                let _ = ensemble.stop_all();
                Err(LocalError::UpFailed {
                    error: Box::new(e),
                    dir: self.layout.root().to_owned(),
                    dir_flag: self.dir_flag.clone(),
                })
            }
        }
    }

    /// `local status`.
    async fn status(&self, args: &StatusArgs) -> Result<(), LocalError> {
        let ensemble = self.open()?;
        if ensemble.state.alive().is_empty() {
            return Err(self.nothing_running(&ensemble));
        }
        let view = read_view(&ensemble).await;
        match args.output {
            Output::Table => {
                println!("{}\n", view.headline());
                print!("{}", view.table());
                for (record, m) in ensemble.state.members.iter().zip(&view.members) {
                    if m.sidecar.process != "running" {
                        println!(
                            "{}: its sidecar is {}; see {}",
                            m.name,
                            m.sidecar.process,
                            shown(&self.layout.sidecar_log(record.myid))
                        );
                    }
                }
            }
            Output::Json => {
                let json = serde_json::to_string_pretty(&view)
                    .map_err(|e| LocalError::Runtime(std::io::Error::other(e)))?;
                println!("{json}");
            }
        }
        Ok(())
    }

    /// `local kill`.
    fn kill(&self, args: &KillArgs) -> Result<(), LocalError> {
        let ensemble = self.open()?;
        let name = ensemble.record(args.myid)?.name.clone();
        let server = ensemble.signal_server(args.myid, args.signal.signal())?;
        if matches!(args.signal, SignalName::Kill | SignalName::Term) {
            process::wait_until_exited(std::slice::from_ref(&server), Duration::from_secs(15));
        }
        let d = &self.dir_flag;
        let p = program();
        let myid = args.myid;
        let next = match args.signal {
            SignalName::Kill | SignalName::Term => format!(
                "`{p} status{d}` shows the ensemble without it; `{p} start {myid}{d}` starts it again"
            ),
            SignalName::Stop => {
                format!("it is paused; `{p} kill {myid} --signal CONT{d}` resumes it")
            }
            SignalName::Cont => format!("`{p} status{d}` shows it rejoining"),
        };
        println!(
            "sent {} to the ZooKeeper server of {name} (myid {myid}, pid {}); {next}",
            args.signal.as_str(),
            server.pid
        );
        Ok(())
    }

    /// `local start`.
    async fn start(&self, args: &StartArgs) -> Result<(), LocalError> {
        let started = Instant::now();
        let mut ensemble = self.open()?;
        let myid = args.myid;
        let record = ensemble.record(myid)?.clone();
        // A sidecar that died is restarted whatever its server does; the
        // server, if it still runs, is left alone.
        ensemble.forget_exited_sidecar(myid)?;
        let sidecar_alive = ensemble.sidecar_alive(myid);
        let server = record.server_process.as_ref();
        let launcher = Launcher::discover()?;
        match server.map(|s| (s.pid, s.liveness())) {
            Some((pid, process::Liveness::Running)) if sidecar_alive => {
                return Err(LocalError::AlreadyStarted {
                    name: record.name,
                    myid,
                    pid,
                });
            }
            Some((pid, process::Liveness::Paused)) => {
                return Err(LocalError::Paused {
                    name: record.name,
                    myid,
                    pid,
                });
            }
            Some((_, process::Liveness::Running)) => {
                ensemble.start_sidecar(&launcher, myid)?;
            }
            Some((_, process::Liveness::Exited)) | None => {
                let member = self.member_plan(&ensemble, myid)?;
                let busy = ports_in_use_of(&member, sidecar_alive);
                if !busy.is_empty() {
                    return Err(LocalError::PortsInUse(busy));
                }
                ensemble
                    .start_member(&launcher, &member, args.timeout)
                    .await?;
            }
        }
        let deadline = started + args.timeout;
        let mut progress = Progress::new(started);
        let client = SidecarClient::new();
        let view = loop {
            ensemble.exited(&[myid])?;
            let view = read_view_with(&ensemble, &client).await;
            let state = view.member(myid).and_then(|m| m.state);
            if view.rejoined(myid) {
                break view;
            }
            if Instant::now() >= deadline {
                progress.finish();
                return Err(LocalError::NotRejoined {
                    name: record.name,
                    myid,
                    timeout_secs: args.timeout.as_secs(),
                    state: state.map_or_else(|| "nothing".to_owned(), |s| s.to_string()),
                });
            }
            progress.show(&format!(
                "waiting for {} to rejoin: {}",
                record.name,
                view.progress()
            ));
            tokio::time::sleep(POLL).await;
        };
        progress.finish();
        println!(
            "{} (myid {myid}) rejoined in {:.1} s\n{}\n",
            record.name,
            started.elapsed().as_secs_f64(),
            view.headline()
        );
        print!("{}", view.table());
        Ok(())
    }

    /// `local logs`.
    fn logs(&self, args: &LogsArgs) -> Result<(), LocalError> {
        let ensemble = self.open()?;
        ensemble.record(args.myid)?;
        let (log, other) = if args.sidecar {
            (
                self.layout.sidecar_log(args.myid),
                format!(
                    "ZooKeeper's log: {}",
                    shown(&self.layout.server_log(args.myid))
                ),
            )
        } else {
            (
                self.layout.server_log(args.myid),
                format!(
                    "the sidecar's log: {} (`{} logs {} --sidecar{}`)",
                    shown(&self.layout.sidecar_log(args.myid)),
                    program(),
                    args.myid,
                    self.dir_flag
                ),
            )
        };
        let text = fs::read_to_string(&log).map_err(|source| LocalError::Read {
            file: log.clone(),
            source,
        })?;
        let lines: Vec<&str> = text.lines().collect();
        let from = args.lines.map_or(0, |n| lines.len().saturating_sub(n));
        let mut out = std::io::stdout().lock();
        for line in &lines[from..] {
            // A closed pipe (`| head`) ends the output quietly.
            if writeln!(out, "{line}").is_err() {
                return Ok(());
            }
        }
        eprintln!("({}; {other})", shown(&log));
        Ok(())
    }

    /// `local down`.
    fn down(&self, args: &DownArgs) -> Result<(), LocalError> {
        let Some(mut ensemble) = LocalEnsemble::open(self.layout.clone())? else {
            return Err(LocalError::NothingRunning {
                dir: self.layout.root().to_owned(),
                cluster: None,
            });
        };
        let running = ensemble.state.alive().len();
        if running == 0 && !args.purge {
            return Err(self.nothing_running(&ensemble));
        }
        let stopped = ensemble.stop_all()?;
        let cluster = ensemble.state.cluster.clone();
        if !stopped.is_empty() {
            println!("{}", stopped_words(&cluster, &stopped));
        }
        let p = program();
        if args.purge {
            purge(&self.layout)?;
            println!(
                "deleted the data, configs and logs of {cluster:?} in {}",
                shown(self.layout.root())
            );
        } else {
            println!(
                "data kept in {}: `{p} up -f {}{}` starts {cluster:?} again; `{p} down --purge{}` deletes it",
                shown(self.layout.root()),
                ensemble.state.source,
                self.dir_flag,
                self.dir_flag
            );
        }
        Ok(())
    }

    pub(super) fn open(&self) -> Result<LocalEnsemble, LocalError> {
        LocalEnsemble::open(self.layout.clone())?.ok_or_else(|| LocalError::NothingRunning {
            dir: self.layout.root().to_owned(),
            cluster: None,
        })
    }

    pub(super) fn nothing_running(&self, ensemble: &LocalEnsemble) -> LocalError {
        LocalError::NothingRunning {
            dir: self.layout.root().to_owned(),
            cluster: Some(ensemble.state.cluster.clone()),
        }
    }

    /// The member as the cluster renders it now, listing the servers the
    /// last membership change left (the spec's members before any).
    fn member_plan(&self, ensemble: &LocalEnsemble, myid: Myid) -> Result<MemberPlan, LocalError> {
        let (_, cluster) =
            read_cluster(&self.layout.cluster_file(), Some(&ensemble.state.cluster))?;
        let plan = LocalPlan::new(&cluster, ensemble.state.base, &self.layout)?;
        ensemble.record(myid)?;
        let servers: BTreeMap<Myid, zk_ensemble::Role> = if ensemble.state.servers.is_empty() {
            plan.members.iter().map(|m| (m.myid, m.role)).collect()
        } else {
            ensemble
                .state
                .servers
                .iter()
                .map(|m| (*m, m.role()))
                .collect()
        };
        Ok(plan.member_with(myid, &servers)?)
    }
}

/// Reads, parses and validates a cluster file exactly as `render` and the
/// operator do.
pub(super) fn read_cluster(
    file: &Path,
    name: Option<&str>,
) -> Result<(String, ValidatedCluster), LocalError> {
    let text = fs::read_to_string(file).map_err(|source| LocalError::Read {
        file: file.to_owned(),
        source,
    })?;
    let parsed = cluster::parse_cluster(&text, name).map_err(|error| LocalError::Parse {
        file: file.to_owned(),
        error,
    })?;
    let validated = cluster::validate(&parsed).map_err(LocalError::Invalid)?;
    Ok((text, validated))
}

/// Starts every member of `plan`: init, the servers, and once every server
/// listens, the sidecars; then waits for a quorum-backed leader.
async fn bring_up(
    ensemble: &mut LocalEnsemble,
    launcher: &Launcher,
    plan: &LocalPlan,
    deadline: Instant,
    timeout: Duration,
) -> Result<LocalView, LocalError> {
    let started = Instant::now();
    let myids: Vec<Myid> = plan.members.iter().map(|m| m.myid).collect();
    for member in &plan.members {
        ensemble.prepare(launcher, member)?;
    }
    for member in &plan.members {
        ensemble.start_server(launcher, member.myid)?;
    }
    let mut progress = Progress::new(started);
    progress.show("waiting for the servers to listen");
    let listening = ensemble
        .await_listening(&myids, deadline.saturating_duration_since(Instant::now()))
        .await;
    if let Err(e) = listening {
        progress.finish();
        return Err(e);
    }
    // The sidecars start once every server listens, so that their first
    // dials to the election ports find them (a refused dial backs off).
    for member in &plan.members {
        ensemble.start_sidecar(launcher, member.myid)?;
    }
    let client = SidecarClient::new();
    let mut leader_known: Option<Instant> = None;
    loop {
        if let Err(e) = ensemble.exited(&myids) {
            progress.finish();
            return Err(e);
        }
        let view = read_view_with(ensemble, &client).await;
        if view.leader.is_some() {
            let since = *leader_known.get_or_insert_with(Instant::now);
            // The table is worth a moment more: every sidecar reporting
            // the leader it follows, in the epoch it leads.
            if view.agreed() || since.elapsed() >= AGREEMENT_GRACE {
                progress.finish();
                return Ok(view);
            }
        }
        if Instant::now() >= deadline {
            progress.finish();
            return Err(LocalError::NoLeader {
                timeout_secs: timeout.as_secs(),
                table: view.table(),
            });
        }
        progress.show(&format!(
            "waiting for a quorum-backed leader: {}",
            view.progress()
        ));
        tokio::time::sleep(POLL).await;
    }
}

async fn read_view(ensemble: &LocalEnsemble) -> LocalView {
    read_view_with(ensemble, &SidecarClient::new()).await
}

pub(super) async fn read_view_with(ensemble: &LocalEnsemble, client: &SidecarClient) -> LocalView {
    let readings = ensemble.read_sidecars(client).await;
    let processes: BTreeMap<Myid, Processes> = ensemble
        .state
        .members
        .iter()
        .map(|m| {
            let of = |p: &ProcessRecord| (p.pid, p.liveness());
            let processes = Processes {
                server: m.server_process.as_ref().map(of),
                sidecar: m.sidecar_process.as_ref().map(of),
            };
            (m.myid, processes)
        })
        .collect();
    view::view(&ensemble.state, &processes, &readings)
}

/// Every port of every member that something else holds.
fn ports_in_use(plan: &LocalPlan) -> Vec<PortInUse> {
    plan.members
        .iter()
        .flat_map(|m| ports_in_use_of(m, false))
        .collect()
}

/// The member's ports that something else holds (its own sidecar's port is
/// skipped while that sidecar runs).
pub(super) fn ports_in_use_of(member: &MemberPlan, sidecar_running: bool) -> Vec<PortInUse> {
    member
        .ports
        .iter()
        .filter(|(port, _)| !(sidecar_running && *port == "sidecar"))
        .filter_map(|(port, addr)| {
            let error = zk_process::ensure_port_free(*addr).err()?;
            Some(PortInUse {
                name: member.name.clone(),
                myid: member.myid,
                port,
                addr: *addr,
                kind: error.kind(),
                error: error.to_string(),
            })
        })
        .collect()
}

fn stopped_words(cluster: &str, stopped: &[ProcessRecord]) -> String {
    let servers = stopped
        .iter()
        .filter(|p| p.program == super::backend::SERVER)
        .count();
    let sidecars = stopped.len() - servers;
    format!("stopped {cluster:?}: {servers} ZooKeeper servers and {sidecars} sidecars")
}

/// Deletes what `local` wrote in the folder, and the folder when that
/// leaves it empty (a folder the user named may hold other things).
fn purge(layout: &Layout) -> Result<(), LocalError> {
    let write = |path: PathBuf| move |source| LocalError::Write { path, source };
    for dir in [layout.data_root(), layout.members_root()] {
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(write(dir.clone()))?;
        }
    }
    for file in [
        layout.cluster_file(),
        layout.state_file(),
        layout.super_password_file(),
    ] {
        if file.exists() {
            fs::remove_file(&file).map_err(write(file.clone()))?;
        }
    }
    let _ = fs::remove_dir(layout.root());
    Ok(())
}

pub(super) fn write_file(path: &Path, text: &str) -> Result<(), LocalError> {
    let err = |source| LocalError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    fs::write(path, text).map_err(err)
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One line of progress on stderr: rewritten in place on a terminal,
/// printed when it changes otherwise (a log or a CI run).
pub(super) struct Progress {
    started: Instant,
    tty: bool,
    last: String,
    shown: bool,
}

impl Progress {
    pub(super) fn new(started: Instant) -> Progress {
        Progress {
            started,
            tty: std::io::stderr().is_terminal(),
            last: String::new(),
            shown: false,
        }
    }

    pub(super) fn show(&mut self, text: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        if self.tty {
            eprint!("\r\x1b[2K  {elapsed:4.1}s  {text}");
            self.shown = true;
        } else if text != self.last {
            eprintln!("  {elapsed:4.1}s  {text}");
        }
        self.last = text.to_owned();
    }

    pub(super) fn finish(&mut self) {
        if self.tty && self.shown {
            eprintln!();
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggested_commands_carry_a_chosen_folder() {
        assert_eq!(dir_flag(Path::new(".zookube")), "");
        assert_eq!(dir_flag(Path::new("/tmp/zk")), " --dir /tmp/zk");
    }

    #[test]
    fn stopped_processes_are_counted_by_kind() {
        let record = |program: &str| ProcessRecord {
            pid: 1,
            start_time: 1,
            program: program.to_owned(),
        };
        let stopped = [
            record(super::super::backend::SERVER),
            record(super::super::backend::SIDECAR),
            record(super::super::backend::SERVER),
        ];
        assert_eq!(
            stopped_words("zk", &stopped),
            "stopped \"zk\": 2 ZooKeeper servers and 1 sidecars"
        );
    }
}
