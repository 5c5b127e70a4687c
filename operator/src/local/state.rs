//! `<dir>/state.json`: what a local ensemble is and which processes `local`
//! started for it. Every command reads it; `up`, `start`, `kill` and `down`
//! rewrite it (atomically: a temporary file renamed over the old one). A
//! process is only ever signalled through its [`ProcessRecord`], so `down`
//! stops what `local` started and nothing else.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zk_ensemble::{Myid, Role};

use super::plan::{LocalPlan, MemberPlan};
use super::process::ProcessRecord;
use super::program;

/// Bumped when the file's meaning changes.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalState {
    pub format: u32,
    pub cluster: String,
    pub namespace: String,
    /// The file `up` read, as given.
    pub source: String,
    pub base: Ipv4Addr,
    /// JVM flags of every server.
    pub jvm_flags: Vec<String>,
    /// Seconds since the Unix epoch when `up` ran.
    pub started_at: u64,
    pub members: Vec<MemberRecord>,
    /// The servers a member started now lists: the committed config as the
    /// last membership change left it (empty: the spec's members).
    #[serde(default)]
    pub servers: Vec<Myid>,
    /// The last `local restart` request; part of every member's revision.
    #[serde(default)]
    pub restart: Option<String>,
}

/// One member: where it listens, and its processes while they run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRecord {
    pub myid: Myid,
    pub role: Role,
    pub name: String,
    pub client: SocketAddr,
    pub sidecar: SocketAddr,
    /// The ZooKeeper server, once started.
    #[serde(default)]
    pub server_process: Option<ProcessRecord>,
    #[serde(default)]
    pub sidecar_process: Option<ProcessRecord>,
    /// What its server was started with (see `MemberPlan::revision`).
    #[serde(default)]
    pub revision: Option<String>,
}

impl MemberRecord {
    pub fn of(plan: &MemberPlan) -> MemberRecord {
        MemberRecord {
            myid: plan.myid,
            role: plan.role,
            name: plan.name.clone(),
            client: plan.client(),
            sidecar: plan.sidecar(),
            server_process: None,
            sidecar_process: None,
            revision: None,
        }
    }

    /// Its processes that were started (running or not).
    pub fn processes(&self) -> impl Iterator<Item = &ProcessRecord> {
        self.sidecar_process
            .iter()
            .chain(self.server_process.iter())
    }
}

impl LocalState {
    pub fn new(plan: &LocalPlan, source: &str, started_at: u64) -> LocalState {
        LocalState {
            format: FORMAT,
            cluster: plan.cluster.clone(),
            namespace: plan.namespace.clone(),
            source: source.to_owned(),
            base: plan.base,
            jvm_flags: plan.jvm_flags.clone(),
            started_at,
            members: plan.members.iter().map(MemberRecord::of).collect(),
            servers: Vec::new(),
            restart: None,
        }
    }

    pub fn member(&self, myid: Myid) -> Option<&MemberRecord> {
        self.members.iter().find(|m| m.myid == myid)
    }

    pub fn member_mut(&mut self, myid: Myid) -> Option<&mut MemberRecord> {
        self.members.iter_mut().find(|m| m.myid == myid)
    }

    /// Every recorded process that still runs (or is paused).
    pub fn alive(&self) -> Vec<&ProcessRecord> {
        self.members
            .iter()
            .flat_map(MemberRecord::processes)
            .filter(|p| p.liveness().is_alive())
            .collect()
    }

    /// The myids, for messages: `1, 2, 3`.
    pub fn myid_list(&self) -> String {
        self.members
            .iter()
            .map(|m| m.myid.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The state in `file`, `None` when there is none.
    pub fn load(file: &Path) -> Result<Option<LocalState>, StateError> {
        let text = match fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    file: file.to_owned(),
                    source,
                });
            }
        };
        let state: LocalState = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            file: file.to_owned(),
            reason: e.to_string(),
        })?;
        if state.format != FORMAT {
            return Err(StateError::Corrupt {
                file: file.to_owned(),
                reason: format!(
                    "it was written in format {} by another zk-operator version (this one reads {FORMAT})",
                    state.format
                ),
            });
        }
        Ok(Some(state))
    }

    /// Writes the state to `file` atomically.
    pub fn save(&self, file: &Path) -> Result<(), StateError> {
        let write = |source| StateError::Write {
            file: file.to_owned(),
            source,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| write(io::Error::other(e)))?;
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir).map_err(write)?;
        }
        let tmp = file.with_extension("json.tmp");
        fs::write(&tmp, text + "\n").map_err(write)?;
        fs::rename(&tmp, file).map_err(write)
    }
}

/// Why the files of a stopped ensemble cannot be reused for another plan:
/// its data belongs to another cluster, or to members at other addresses or
/// with other myids, and ZooKeeper keeps the membership it committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Cluster { found: String, wanted: String },
    Base { found: Ipv4Addr, wanted: Ipv4Addr },
    Members { found: String, wanted: String },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Cluster { found, wanted } => {
                write!(f, "holds the local ensemble {found:?}, not {wanted:?}")
            }
            Mismatch::Base { found, wanted } => write!(
                f,
                "holds an ensemble started with --base {found}, not {wanted}; its members' committed configuration names the old addresses (start it with --base {found})"
            ),
            Mismatch::Members { found, wanted } => write!(
                f,
                "holds an ensemble of myids {found}, not {wanted}; its members committed that membership, and changing it takes a reconfiguration (start it with the replicas and observers it had, then change them with `{} scale`)",
                program()
            ),
        }
    }
}

impl LocalState {
    /// Whether the files this state describes can be reused for `plan`
    /// (`up` on a stopped ensemble, like pods on their volumes).
    pub fn mismatch(&self, plan: &LocalPlan) -> Option<Mismatch> {
        let wanted: Vec<Myid> = plan.members.iter().map(|m| m.myid).collect();
        let found: Vec<Myid> = self.members.iter().map(|m| m.myid).collect();
        let list = |ids: &[Myid]| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.cluster != plan.cluster {
            Some(Mismatch::Cluster {
                found: self.cluster.clone(),
                wanted: plan.cluster.clone(),
            })
        } else if self.base != plan.base {
            Some(Mismatch::Base {
                found: self.base,
                wanted: plan.base,
            })
        } else if found != wanted {
            Some(Mismatch::Members {
                found: list(&found),
                wanted: list(&wanted),
            })
        } else {
            None
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {}: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}: {source}", file.display())]
    Write {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} is not a state file this zk-operator can read ({reason}); stop any ZooKeeper it started by hand, then delete the folder",
        file.display()
    )]
    Corrupt { file: PathBuf, reason: String },
}

/// The state of a three-voter cluster `zk` as `up` records it (for tests).
#[cfg(test)]
pub(crate) fn three_voters() -> LocalState {
    use crate::cluster::{parse_cluster, validate};
    use crate::local::plan::{DEFAULT_BASE, Layout};
    let yaml = "apiVersion: zookube.io/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: zk\nspec:\n  replicas: 3\n";
    let cluster = validate(&parse_cluster(yaml, None).unwrap()).unwrap();
    let plan = LocalPlan::new(&cluster, DEFAULT_BASE, &Layout::new("/x")).unwrap();
    LocalState::new(&plan, "examples/minimal.yaml", 1_700_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{parse_cluster, validate};
    use crate::local::plan::{DEFAULT_BASE, Layout};

    fn state() -> LocalState {
        three_voters()
    }

    #[test]
    fn the_state_survives_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        assert!(LocalState::load(&file).unwrap().is_none());
        let mut state = state();
        state.members[1].server_process = Some(ProcessRecord {
            pid: 42,
            start_time: 7,
            program: "ZooKeeper server".into(),
        });
        state.save(&file).unwrap();
        assert_eq!(LocalState::load(&file).unwrap(), Some(state.clone()));
        assert_eq!(state.myid_list(), "1, 2, 3");
        let text = fs::read_to_string(&file).unwrap();
        assert!(text.contains("\"client\": \"127.0.0.3:2181\""), "{text}");
    }

    #[test]
    fn a_stopped_ensemble_is_reused_only_by_the_same_cluster_addresses_and_members() {
        let layout = Layout::new("/x");
        let plan = |name: &str, replicas: u32, base: Ipv4Addr| {
            let yaml = format!(
                "apiVersion: zookube.io/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n"
            );
            let cluster = validate(&parse_cluster(&yaml, None).unwrap()).unwrap();
            LocalPlan::new(&cluster, base, &layout).unwrap()
        };
        let old = state();
        assert_eq!(old.mismatch(&plan("zk", 3, DEFAULT_BASE)), None);
        let other = old.mismatch(&plan("other", 3, DEFAULT_BASE)).unwrap();
        assert!(
            other.to_string().contains("\"zk\", not \"other\""),
            "{other}"
        );
        let moved = old
            .mismatch(&plan("zk", 3, Ipv4Addr::new(127, 0, 1, 1)))
            .unwrap();
        assert!(moved.to_string().contains("--base 127.0.0.1"), "{moved}");
        let grown = old.mismatch(&plan("zk", 5, DEFAULT_BASE)).unwrap();
        assert_eq!(
            grown,
            Mismatch::Members {
                found: "1, 2, 3".into(),
                wanted: "1, 2, 3, 4, 5".into()
            }
        );
    }

    #[test]
    fn a_damaged_or_foreign_state_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        fs::write(&file, "{not json").unwrap();
        let err = LocalState::load(&file).unwrap_err();
        assert!(err.to_string().contains("state.json"), "{err}");
        let mut newer = state();
        newer.format = FORMAT + 1;
        newer.save(&file).unwrap();
        let err = LocalState::load(&file).unwrap_err();
        assert!(
            err.to_string().contains("another zk-operator version"),
            "{err}"
        );
    }
}
