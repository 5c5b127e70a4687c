//! `zk-operator local`: the ensemble of a `ZookeeperCluster` on this
//! machine, without Kubernetes: each member is a real ZooKeeper server and
//! a `zk-sidecar run` beside it, on its own loopback address with the
//! standard ports, its `zoo.cfg` rendered by the operator's own code and its
//! data folder prepared by `zk-sidecar init`, as in a pod.
//!
//! [`plan`] decides (pure), [`backend`] acts on the machine one member at a
//! time, [`state`] records what runs, [`view`] shows it, and [`commands`]
//! strings these together into `up`, `status`, `kill`, `start`, `logs` and
//! `down`; [`change`] drives `scale`, `restart` and `apply` through the
//! membership planner the operator uses.

pub mod backend;
pub mod change;
pub mod commands;
pub mod error;
pub mod plan;
pub mod process;
pub mod state;
pub mod view;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use zk_ensemble::Myid;

pub use error::LocalError;

/// Where a local ensemble lives unless `--dir` says otherwise (git-ignored).
pub const DEFAULT_DIR: &str = ".zookube";

/// Run the ensemble of a ZookeeperCluster on this machine: real ZooKeeper
/// servers and zk-sidecars on loopback addresses.
#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    /// The folder that holds the local ensemble: configs, data, logs and
    /// process ids.
    #[arg(long, global = true, value_name = "DIR", env = "ZOOKUBE_LOCAL_DIR", default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    #[command(subcommand)]
    pub command: LocalCommand,
}

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Start the ensemble of a ZookeeperCluster file and wait for its
    /// quorum-backed leader; the members keep running in the background.
    Up(UpArgs),
    /// Show the leader and every member's state, from the sidecars.
    Status(StatusArgs),
    /// Send a signal to a member's ZooKeeper server (default KILL).
    Kill(KillArgs),
    /// Start a member's ZooKeeper server (and its sidecar) again, and wait
    /// until it has rejoined.
    Start(StartArgs),
    /// Print a member's ZooKeeper log (or its sidecar's).
    Logs(LogsArgs),
    /// Stop every process `local` started, and only those; keep the data
    /// unless --purge.
    Down(DownArgs),
    /// Change the number of voters (and observers) one member at a time
    /// through ZooKeeper's reconfig, never below a quorum.
    Scale(ScaleArgs),
    /// Restart every member one at a time, each synced before the next, the
    /// leader last.
    Restart(ChangeArgs),
    /// Run the ensemble as FILE now describes it: members added or removed
    /// one at a time, then members whose settings changed restarted one at
    /// a time, the leader last.
    Apply(ApplyArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("size").required(true).multiple(true).args(["replicas", "observers"])))]
pub struct ScaleArgs {
    /// The number of voters: odd, from 1 to 15.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub replicas: Option<i32>,
    /// The number of observers: from 0 to 100.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub observers: Option<i32>,
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(Debug, clap::Args)]
pub struct ChangeArgs {
    /// How long the whole change may take; run the command again to resume.
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A YAML file holding the ZookeeperCluster (the one `up` ran, changed).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Which ZookeeperCluster to take when FILE holds several.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// A YAML file holding a ZookeeperCluster (the same as for `kubectl apply`).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Which ZookeeperCluster to run when FILE holds several.
    #[arg(long)]
    pub name: Option<String>,
    /// Advanced: member myid listens on BASE + myid (127.0.0.2, 127.0.0.3, …
    /// and 127.0.0.129 on for observers with the default). Give a second
    /// ensemble another block, such as 127.0.1.1, and its own --dir.
    #[arg(long, value_name = "IP", default_value_t = plan::DEFAULT_BASE)]
    pub base: Ipv4Addr,
    /// How long to wait for a quorum-backed leader.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// `table` for people, `json` for scripts.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// The member's myid (the MYID column of `local status`).
    #[arg(value_parser = parse_myid)]
    pub myid: Myid,
    /// KILL (crash it), TERM (shut it down), STOP (pause it) or CONT (resume it).
    #[arg(long, value_enum, ignore_case = true, default_value_t = SignalName::Kill)]
    pub signal: SignalName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignalName {
    #[value(name = "KILL")]
    Kill,
    #[value(name = "TERM")]
    Term,
    #[value(name = "STOP")]
    Stop,
    #[value(name = "CONT")]
    Cont,
}

impl SignalName {
    /// `SIGKILL`, `SIGTERM`, `SIGSTOP`, `SIGCONT`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalName::Kill => "SIGKILL",
            SignalName::Term => "SIGTERM",
            SignalName::Stop => "SIGSTOP",
            SignalName::Cont => "SIGCONT",
        }
    }

    pub fn signal(self) -> zk_process::Signal {
        use zk_process::Signal;
        match self {
            SignalName::Kill => Signal::SIGKILL,
            SignalName::Term => Signal::SIGTERM,
            SignalName::Stop => Signal::SIGSTOP,
            SignalName::Cont => Signal::SIGCONT,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// The member's myid.
    #[arg(value_parser = parse_myid)]
    pub myid: Myid,
    /// How long to wait until it has rejoined.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The member's myid.
    #[arg(value_parser = parse_myid)]
    pub myid: Myid,
    /// The sidecar's log instead of ZooKeeper's.
    #[arg(long)]
    pub sidecar: bool,
    /// Only the last N lines.
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub lines: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// Also delete the ensemble's data, configs and logs.
    #[arg(long)]
    pub purge: bool,
}

fn parse_myid(text: &str) -> Result<Myid, String> {
    let value: i64 = text.trim().parse().map_err(|_| {
        format!(
            "{text:?} is not a myid; use a number from the MYID column of `{} status`",
            program()
        )
    })?;
    Myid::new(value).map_err(|e| e.to_string())
}

/// Runs a `local` command: exit 0 on success, 1 on failure (2 when the
/// cluster file cannot be read), the reason on stderr.
pub fn run(args: LocalArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&LocalError::Runtime(e)),
    };
    match runtime.block_on(commands::dispatch(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(error: &LocalError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(error.exit_code())
}

/// The environment variable through which a wrapper (scripts/local) names
/// itself, so that the commands messages suggest are ones the user can type.
pub const PROGRAM_ENV: &str = "ZOOKUBE_LOCAL_PROGRAM";

/// How the user runs `local` commands: `zk-operator local`, or the wrapper
/// that set [`PROGRAM_ENV`].
pub fn program() -> String {
    std::env::var(PROGRAM_ENV)
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "zk-operator local".to_owned())
}

/// A path for messages: relative to the working directory when it is
/// under it (`.zookube/members/1/zookeeper.log`), else as it is.
pub fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}
