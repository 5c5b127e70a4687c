//! Every way a `local` command can fail, each with one message that says
//! what happened and what to do about it.

use std::net::SocketAddr;
use std::path::PathBuf;

use zk_ensemble::Myid;

use super::plan::PlanError;
use super::state::{Mismatch, StateError};
use super::{program, shown};
use crate::cluster::{InvalidSpec, ParseError};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot read {}: {source}", shown(file))]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {error}", shown(file))]
    Parse { file: PathBuf, error: ParseError },
    /// Printed one problem per line, as `zk-operator render` prints them.
    #[error("{}", .0.problems.iter().map(|p| format!("{p}")).collect::<Vec<_>>().join("\nerror: "))]
    Invalid(InvalidSpec),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("quorum TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{error}{hint}", error = .0, hint = install_hint(.0))]
    ZooKeeper(zk_process::DiscoverError),
    #[error(
        "zk-sidecar is not installed: looked for it {}. Build it with `cargo build -p zk-sidecar` (beside zk-operator in target/debug), or set ZK_SIDECAR to its path",
        looked.join(", ")
    )]
    SidecarMissing { looked: Vec<String> },
    #[error(
        "{}\nStop what listens there (`ss -ltnp` names it), or run this ensemble on other addresses: --base 127.0.1.1 --dir .zookube-2",
        ports_in_use(.0)
    )]
    PortsInUse(Vec<PortInUse>),
    #[error(
        "the local ensemble {cluster:?} is already running in {} ({alive} processes, members {members}); see it with `{p} status`, stop it with `{p} down`, or start another with --dir and --base",
        shown(dir),
        p = program()
    )]
    AlreadyRunning {
        dir: PathBuf,
        cluster: String,
        alive: usize,
        members: String,
    },
    #[error(
        "{} {mismatch}; or delete its files with `{p} down --purge`, or use another --dir",
        shown(dir),
        p = program()
    )]
    Reuse { dir: PathBuf, mismatch: Mismatch },
    #[error("{}", nothing_running(dir, cluster.as_deref()))]
    NothingRunning {
        dir: PathBuf,
        /// The cluster whose files are there, when there are some.
        cluster: Option<String>,
    },
    #[error("the local ensemble has no member with myid {myid} (its myids: {listed})")]
    NoSuchMember { myid: Myid, listed: String },
    #[error("`zk-sidecar init` refused {name} (myid {myid}):\n{output}")]
    Init {
        name: String,
        myid: Myid,
        output: String,
    },
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", shown(path))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{name} (myid {myid}): its {program} {how}. Last lines of {}:\n{}",
        shown(log),
        indent(tail)
    )]
    Exited {
        name: String,
        myid: Myid,
        program: String,
        how: String,
        log: PathBuf,
        tail: Vec<String>,
    },
    #[error(
        "{name} (myid {myid}): its ZooKeeper server did not answer `ruok` on {client} within {}s. Last lines of {}:\n{}",
        timeout_secs,
        shown(log),
        indent(tail)
    )]
    NotListening {
        name: String,
        myid: Myid,
        client: SocketAddr,
        timeout_secs: u64,
        log: PathBuf,
        tail: Vec<String>,
    },
    #[error(
        "{error}\nThe processes `up` had started are stopped; the files are kept in {} (`{p} down --purge{dir_flag}` deletes them)",
        shown(dir),
        p = program()
    )]
    UpFailed {
        error: Box<LocalError>,
        dir: PathBuf,
        dir_flag: String,
    },
    #[error(
        "no quorum-backed leader within {timeout_secs}s. The members keep running so that you can look: `{p} status`, `{p} logs MYID`; stop them with `{p} down`.\n{table}",
        p = program()
    )]
    NoLeader { timeout_secs: u64, table: String },
    #[error(
        "{name} (myid {myid}) did not rejoin within {timeout_secs}s (its sidecar says {state}); it keeps running: see `{p} logs {myid}`",
        p = program()
    )]
    NotRejoined {
        name: String,
        myid: Myid,
        timeout_secs: u64,
        state: String,
    },
    #[error(
        "the ZooKeeper server of {name} (myid {myid}) and its sidecar are already running (server pid {pid}); to start the server afresh, stop it first with `{p} kill {myid}`",
        p = program()
    )]
    AlreadyStarted { name: String, myid: Myid, pid: u32 },
    #[error(
        "the ZooKeeper server of {name} (myid {myid}) is paused (pid {pid}); resume it with `{p} kill {myid} --signal CONT`",
        p = program()
    )]
    Paused { name: String, myid: Myid, pid: u32 },
    #[error(
        "the ZooKeeper server of {name} (myid {myid}) is not running; start it with `{p} start {myid}`",
        p = program()
    )]
    NotRunning { name: String, myid: Myid },
    #[error("cannot signal pid {pid}: {source}")]
    Signal {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{reason}\n{table}")]
    Refused { reason: String, table: String },
    #[error(
        "the change did not finish within {timeout_secs}s; it stopped while {waiting}. Nothing is lost: running the same command again resumes it.\n{table}"
    )]
    NotConverged {
        timeout_secs: u64,
        waiting: String,
        table: String,
    },
    #[error("cannot change the membership: {0}")]
    Reconfig(#[from] crate::reconfig::ReconfigError),
    #[error(
        "cannot read zookube's ZooKeeper super password from {}: {source}. Ensembles started by an older zk-operator have none: `zk-operator local down` and `up` again",
        shown(file)
    )]
    NoSuperPassword {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{field} cannot change on a running local ensemble ({why}); `zk-operator local down` (the data is kept), then `up` with the new file"
    )]
    Immutable {
        field: &'static str,
        why: &'static str,
    },
}

impl LocalError {
    /// 2 when the input file cannot be read (as `render`), else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            LocalError::Read { .. } => 2,
            _ => 1,
        }
    }
}

/// A port a member needs that is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInUse {
    pub name: String,
    pub myid: Myid,
    pub port: &'static str,
    pub addr: SocketAddr,
    pub kind: std::io::ErrorKind,
    pub error: String,
}

impl std::fmt::Display for PortInUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let PortInUse {
            name,
            myid,
            port,
            addr,
            ..
        } = self;
        match self.kind {
            std::io::ErrorKind::AddrInUse => write!(
                f,
                "port {} ({port}) of {name} (myid {myid}) on {} is already in use",
                addr.port(),
                addr.ip()
            ),
            std::io::ErrorKind::AddrNotAvailable => write!(
                f,
                "{} ({name}, myid {myid}) is not an address of this machine: Linux answers on all of 127.0.0.0/8, other systems need an alias (macOS: `sudo ifconfig lo0 alias {} up`)",
                addr.ip(),
                addr.ip()
            ),
            _ => write!(
                f,
                "cannot listen on {addr} ({port} port of {name}, myid {myid}): {}",
                self.error
            ),
        }
    }
}

/// Busy ports, one line per member (`ports 2181 (client), 3888
/// (election) …`), and the other failures one per line.
pub fn ports_in_use(ports: &[PortInUse]) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut busy: Vec<(&PortInUse, Vec<String>)> = Vec::new();
    for port in ports {
        if port.kind != std::io::ErrorKind::AddrInUse {
            lines.push(port.to_string());
            continue;
        }
        let named = format!("{} ({})", port.addr.port(), port.port);
        match busy.iter_mut().find(|(p, _)| p.myid == port.myid) {
            Some((_, named_ports)) => named_ports.push(named),
            None => busy.push((port, vec![named])),
        }
    }
    let busy = busy.into_iter().map(|(p, named)| {
        let (noun, verb) = if named.len() == 1 {
            ("port", "is")
        } else {
            ("ports", "are")
        };
        format!(
            "{} (myid {}) on {}: {noun} {} {verb} already in use",
            p.name,
            p.myid,
            p.addr.ip(),
            named.join(", ")
        )
    });
    busy.chain(lines).collect::<Vec<_>>().join("\n")
}

/// What installs what is missing, where a script can.
fn install_hint(error: &zk_process::DiscoverError) -> &'static str {
    match error {
        zk_process::DiscoverError::BadHome(_) => "",
        _ => " (scripts/install-deps installs ZooKeeper and Java on Debian and Ubuntu)",
    }
}

fn nothing_running(dir: &std::path::Path, cluster: Option<&str>) -> String {
    match cluster {
        None => format!(
            "nothing to do: no local ensemble in {}; start one with `{} up -f examples/minimal.yaml` (or pass the --dir it was started with)",
            shown(dir),
            program()
        ),
        Some(cluster) => format!(
            "nothing is running in {}: every process of the local ensemble {cluster:?} has exited. Its data is kept: `{p} up -f FILE` starts it again, `{p} down --purge` deletes it",
            shown(dir),
            p = program()
        ),
    }
}

fn indent(lines: &[String]) -> String {
    if lines.is_empty() {
        return "  (the log is empty)".to_owned();
    }
    lines
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use super::*;

    fn port(myid: i64, name: &'static str, addr: &str, kind: ErrorKind) -> PortInUse {
        PortInUse {
            name: format!("zk-{}", myid - 1),
            myid: Myid::new(myid).unwrap(),
            port: name,
            addr: addr.parse().unwrap(),
            kind,
            error: "boom".into(),
        }
    }

    #[test]
    fn busy_ports_are_named_per_member_with_the_fix() {
        let err = LocalError::PortsInUse(vec![
            port(1, "client", "127.0.0.2:2181", ErrorKind::AddrInUse),
            port(1, "election", "127.0.0.2:3888", ErrorKind::AddrInUse),
            port(2, "sidecar", "127.0.0.3:8081", ErrorKind::AddrInUse),
            port(3, "client", "127.0.0.4:2181", ErrorKind::AddrNotAvailable),
        ]);
        assert_eq!(
            err.to_string(),
            "zk-0 (myid 1) on 127.0.0.2: ports 2181 (client), 3888 (election) are already in use\n\
             zk-1 (myid 2) on 127.0.0.3: port 8081 (sidecar) is already in use\n\
             127.0.0.4 (zk-2, myid 3) is not an address of this machine: Linux answers on all of 127.0.0.0/8, other systems need an alias (macOS: `sudo ifconfig lo0 alias 127.0.0.4 up`)\n\
             Stop what listens there (`ss -ltnp` names it), or run this ensemble on other addresses: --base 127.0.1.1 --dir .zookube-2"
        );
    }

    #[test]
    fn a_missing_installation_says_how_to_install_it() {
        let err = LocalError::ZooKeeper(zk_process::DiscoverError::NotInstalled);
        let text = err.to_string();
        assert!(text.contains("apt-get install -y zookeeper"), "{text}");
        assert!(text.contains("scripts/install-deps"), "{text}");
        let err = LocalError::ZooKeeper(zk_process::DiscoverError::BadHome("/x".into()));
        assert!(!err.to_string().contains("install-deps"));
    }
}
