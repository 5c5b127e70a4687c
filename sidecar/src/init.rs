//! `zk-sidecar init`: the pod's identity guard, run as its init container.
//!
//! It derives the member's myid from the pod's ordinal with zk-ensemble's
//! identity rule, checks the config as `check` does (and that the myid is in
//! its server list) except that an even voter count is accepted (the
//! configuration ZooKeeper commits midway through a scale from 3 to 5), and writes `<data-dir>/myid` when the volume has none.
//! A volume that already holds another myid belongs to another member: it is
//! refused and never overwritten, because ZooKeeper would otherwise join the
//! ensemble as the wrong server with the wrong data.
//!
//! With `--conf-dir` it also copies the config to `<conf-dir>/zoo.cfg`, a
//! writable place, because ZooKeeper 3.5+ rewrites its own config. A copy
//! left there by an earlier start of the same pod is replaced: the mounted
//! config is the desired state, while the old copy is ZooKeeper's rewrite of
//! an older one (see [`install_config`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use zk_ensemble::{Myid, Role, ZooCfg, identity, validate_member};

use crate::config::{self, LoadError};

/// The environment variable the StatefulSet's pod-index label reaches the
/// pod through (downward API).
pub(crate) const POD_INDEX_ENV: &str = "POD_INDEX";

#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// The member's zoo.cfg (the mounted, read-only one).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The member's data directory (its persistent volume); `myid` goes here.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The pod's StatefulSet ordinal. Default: $POD_INDEX, else the `-N`
    /// suffix of the host name.
    #[arg(long, value_name = "N")]
    ordinal: Option<u32>,
    /// Whether this pod is a voter or an observer.
    #[arg(long, default_value = "voter", value_parser = parse_role)]
    role: Role,
    /// Copy the config to DIR/zoo.cfg, a writable place for ZooKeeper.
    #[arg(long, value_name = "DIR")]
    conf_dir: Option<PathBuf>,
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
        .map_err(|e: identity::IdentityError| e.to_string())
}

/// Why `init` refused; each maps to `check`'s exit codes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InitError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{0}")]
    Identity(String),
    #[error(
        "{} is not a valid configuration for myid {myid}:\n  - {}",
        config.display(),
        problems.join("\n  - ")
    )]
    Invalid {
        config: PathBuf,
        myid: Myid,
        problems: Vec<String>,
    },
    #[error(
        "the volume at {} already holds myid {found} in {}, but this pod is myid {expected} ({role} ordinal {ordinal}); refusing to start on another member's data. It was not changed. Attach this pod's own volume, or delete the file only if the volume really is this member's",
        data_dir.display(),
        data_dir.join("myid").display()
    )]
    Mismatch {
        data_dir: PathBuf,
        found: String,
        expected: Myid,
        role: Role,
        ordinal: u32,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl InitError {
    /// As `check`: 1 when the input is invalid or refused, 2 when a file
    /// cannot be read or written.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            InitError::Load(e) => e.exit_code(),
            InitError::Write { .. } => 2,
            InitError::Identity(_) | InitError::Invalid { .. } | InitError::Mismatch { .. } => 1,
        }
    }
}

pub(crate) fn run(args: &InitArgs) -> ExitCode {
    match init(args, &ProcessEnv) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Where the ordinal may come from besides the flag.
pub(crate) trait PodEnv {
    fn pod_index(&self) -> Option<String>;
    fn hostname(&self) -> Option<String>;
}

struct ProcessEnv;

impl PodEnv for ProcessEnv {
    fn pod_index(&self) -> Option<String> {
        std::env::var(POD_INDEX_ENV).ok()
    }

    fn hostname(&self) -> Option<String> {
        std::env::var("HOSTNAME")
            .ok()
            .or_else(|| fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
    }
}

/// The ordinal: the flag, else `POD_INDEX`, else the host name's suffix.
pub(crate) fn ordinal(flag: Option<u32>, env: &dyn PodEnv) -> Result<u32, String> {
    if let Some(ordinal) = flag {
        return Ok(ordinal);
    }
    if let Some(index) = env.pod_index().filter(|v| !v.trim().is_empty()) {
        return index.trim().parse().map_err(|_| {
            format!("{POD_INDEX_ENV}={index:?} is not a pod ordinal (a whole number from 0); fix the downward-API value or pass --ordinal")
        });
    }
    let hostname = env.hostname().ok_or_else(|| {
        format!("no ordinal: pass --ordinal, set {POD_INDEX_ENV}, or run in a pod whose host name ends in -<ordinal>")
    })?;
    identity::ordinal_from_hostname(&hostname).map_err(|e| e.to_string())
}

/// Does the whole job; returns the lines to print on success.
pub(crate) fn init(args: &InitArgs, env: &dyn PodEnv) -> Result<Vec<String>, InitError> {
    let ordinal = ordinal(args.ordinal, env).map_err(InitError::Identity)?;
    let myid =
        Myid::for_ordinal(args.role, ordinal).map_err(|e| InitError::Identity(e.to_string()))?;
    let cfg = config::load(&args.config)?;
    let summary =
        validate_member(&cfg, &myid.file_contents()).map_err(|problems| InitError::Invalid {
            config: args.config.clone(),
            myid,
            problems: problems.iter().map(ToString::to_string).collect(),
        })?;
    if summary.role != args.role {
        return Err(InitError::Invalid {
            config: args.config.clone(),
            myid,
            problems: vec![format!(
                "server.{myid} is listed as {} but this pod is {} {} (--role {}); the StatefulSet and the config disagree",
                role_words(summary.role),
                role_words(args.role),
                ordinal,
                args.role
            )],
        });
    }
    let mut lines = vec![write_myid(&args.data_dir, myid, args.role, ordinal)?];
    if let Some(conf_dir) = &args.conf_dir {
        lines.push(install_config(&args.config, &cfg, conf_dir)?);
    }
    Ok(lines)
}

fn role_words(role: Role) -> &'static str {
    match role {
        Role::Voter => "a voter",
        Role::Observer => "an observer",
    }
}

/// Writes `myid` when absent; accepts an equal one; refuses any other.
fn write_myid(data_dir: &Path, myid: Myid, role: Role, ordinal: u32) -> Result<String, InitError> {
    let path = data_dir.join("myid");
    match fs::read_to_string(&path) {
        Ok(existing) => {
            if Myid::parse_file(&existing).ok() == Some(myid) {
                Ok(format!(
                    "ok: {} already holds myid {myid} ({role} ordinal {ordinal})",
                    path.display()
                ))
            } else {
                Err(InitError::Mismatch {
                    data_dir: data_dir.to_owned(),
                    found: shown(&existing),
                    expected: myid,
                    role,
                    ordinal,
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(data_dir).map_err(|source| InitError::Write {
                path: data_dir.to_owned(),
                source,
            })?;
            write_atomically(&path, myid.file_contents().as_bytes(), None)?;
            Ok(format!(
                "ok: wrote myid {myid} to {} ({role} ordinal {ordinal})",
                path.display()
            ))
        }
        Err(source) => Err(InitError::Load(LoadError::Read { path, source })),
    }
}

/// A myid file's contents for a message: the number, or the text quoted.
fn shown(contents: &str) -> String {
    match Myid::parse_file(contents) {
        Ok(id) => id.to_string(),
        Err(_) => format!("{:?}", contents.trim().chars().take(40).collect::<String>()),
    }
}

/// Copies the config to `<conf_dir>/zoo.cfg`.
///
/// A config that names a `dynamicConfigFile` is copied with its server lines
/// merged in, so the copy stands alone. An existing `zoo.cfg` is replaced
/// atomically: it is ZooKeeper's rewrite of the config of an earlier start
/// (server lines moved to `zoo.cfg.dynamic.<version>`), and the mounted config
/// is what the operator wants now. ZooKeeper's other files (`zoo.cfg.bak`,
/// `zoo.cfg.dynamic.*`) are left alone; a member that rejoins learns the
/// ensemble's newest committed config from the leader.
fn install_config(source: &Path, cfg: &ZooCfg, conf_dir: &Path) -> Result<String, InitError> {
    let bytes = if cfg.dynamic_config_file().is_some() {
        let mut merged = cfg.clone();
        merged.properties.remove("dynamicConfigFile");
        merged.properties.remove("version");
        merged.render().into_bytes()
    } else {
        fs::read(source).map_err(|source_err| {
            InitError::Load(LoadError::Read {
                path: source.to_owned(),
                source: source_err,
            })
        })?
    };
    fs::create_dir_all(conf_dir).map_err(|source| InitError::Write {
        path: conf_dir.to_owned(),
        source,
    })?;
    let target = conf_dir.join("zoo.cfg");
    let previous = fs::read_to_string(&target).ok();
    write_atomically(&target, &bytes, Some(0o664))?;
    Ok(match previous {
        None => format!("ok: copied {} to {}", source.display(), target.display()),
        Some(old) if old.as_bytes() == bytes => {
            format!(
                "ok: {} already matches {}",
                target.display(),
                source.display()
            )
        }
        Some(old) => {
            let rewritten = ZooCfg::parse(&old)
                .ok()
                .and_then(|c| c.dynamic_config_file().map(str::to_owned));
            match rewritten {
                Some(dynamic) => format!(
                    "ok: replaced {} with {} (ZooKeeper had rewritten it at an earlier start to use {dynamic}; that file is kept)",
                    target.display(),
                    source.display()
                ),
                None => format!(
                    "ok: replaced {} with {}",
                    target.display(),
                    source.display()
                ),
            }
        }
    })
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it
/// over `path`, so a reader sees the old file or the new one, never half.
fn write_atomically(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), InitError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |source| InitError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".zk-sidecar-")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(err)?;
    }
    tmp.persist(path).map_err(|e| err(e.error))?;
    // The rename is durable once the directory is synced.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Env {
        index: Option<&'static str>,
        host: Option<&'static str>,
    }

    impl PodEnv for Env {
        fn pod_index(&self) -> Option<String> {
            self.index.map(str::to_owned)
        }
        fn hostname(&self) -> Option<String> {
            self.host.map(str::to_owned)
        }
    }

    #[test]
    fn the_ordinal_comes_from_the_flag_then_pod_index_then_the_host_name() {
        let all = Env {
            index: Some("4"),
            host: Some("zk-7"),
        };
        assert_eq!(ordinal(Some(1), &all), Ok(1));
        assert_eq!(ordinal(None, &all), Ok(4));
        let host_only = Env {
            index: None,
            host: Some("zk-observer-7.zk-headless"),
        };
        assert_eq!(ordinal(None, &host_only), Ok(7));
        let bad = Env {
            index: Some("two"),
            host: Some("zk-7"),
        };
        assert!(
            ordinal(None, &bad)
                .unwrap_err()
                .contains("POD_INDEX=\"two\"")
        );
        let nothing = Env {
            index: None,
            host: Some("laptop"),
        };
        assert!(
            ordinal(None, &nothing)
                .unwrap_err()
                .contains("pass --ordinal")
        );
    }
}
