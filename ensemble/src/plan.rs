//! The next step of a membership change or a rolling restart, decided from
//! what the user wants and what was observed — nothing else.
//!
//! [`next_step`] is the one planner behind both the Kubernetes operator and
//! `zk-operator local`; they differ only in how they observe the ensemble
//! (pods or processes, and the sidecars beside them) and how they carry a
//! step out (a StatefulSet's replicas and a pod deletion, or a process). The
//! planner keeps no state: every call looks at the ensemble afresh, so a
//! change that was interrupted — an operator restart, a spec edited again
//! half-way — resumes from where the ensemble really is.
//!
//! The rules, in the order they apply:
//!
//! 1. While a member is being deleted, wait: a deletion in flight is a step
//!    that has not finished.
//! 2. A member that runs but is neither in the committed config nor wanted
//!    (it was removed, or it was joining and the spec changed its mind) is
//!    stopped. It holds no vote, so no quorum is at stake. Only the highest
//!    ordinal of a role is stopped: a StatefulSet can remove only its last pod.
//! 3. Members the spec no longer wants leave through `reconfig remove`, one
//!    at a time: observers first, then leaving voters that are down, then
//!    voters from the highest myid, the leader last (its removal hands
//!    leadership to another voter). Refused while a remaining voter is down,
//!    or when the voters left after the removal would not hold a synced
//!    quorum (ZooKeeper would refuse the new config).
//! 4. Members the spec wants but the committed config lacks join one at a
//!    time, voters before observers, lowest myid first: the member starts
//!    with the committed server list plus its own line, so it joins as a
//!    non-voting follower that can never form a quorum of its own; once it
//!    is synced with the leader it is added with `reconfig add`. Refused
//!    while a voter is down.
//!    A joiner that runs an older revision than the spec's (the spec
//!    changed while it joined, or it is a leader handed over, below) is
//!    restarted first, so it is added on the wanted revision.
//! 5. Members that run an older revision (config hash, image, restart
//!    request) restart one at a time: stale members that are unhealthy
//!    first (a restart can only help them), then observers, then followers
//!    from the highest myid, the leader last; each must be synced again
//!    before the next goes. The leader is not restarted in place: it hands
//!    leadership over ([`Step::HandOver`]) — `reconfig remove` of the leader
//!    makes the voter it designates lead the next epoch without an
//!    election — and then, no longer committed but still wanted, it is a
//!    joiner of rule 4: restarted on the new revision, synced, added back.
//!    A single voter has nobody to hand over to and restarts in place.
//!
//! Every change needs the committed config and a quorum-backed leader, and
//! never takes the synced voters below a quorum.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::identity::{self, Myid, Role};
use crate::quorum;
use crate::spec::EnsembleSpec;
use crate::status::MemberState;
use crate::zoocfg::ZooCfg;

/// The ensemble the user asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The cluster's name, for messages (`zk-2`).
    pub cluster: String,
    pub voters: u32,
    pub observers: u32,
}

impl Desired {
    pub fn of(spec: &EnsembleSpec) -> Desired {
        Desired {
            cluster: spec.name.clone(),
            voters: spec.voters,
            observers: spec.observers,
        }
    }

    /// Whether the spec asks for this member.
    pub fn wants(&self, myid: Myid) -> bool {
        let count = match myid.role() {
            Role::Voter => self.voters,
            Role::Observer => self.observers,
        };
        myid.ordinal() < count
    }

    /// Every member the spec asks for, by myid.
    pub fn members(&self) -> BTreeMap<Myid, Role> {
        let voters = (0..self.voters).map(|i| (Role::Voter, i));
        let observers = (0..self.observers).map(|i| (Role::Observer, i));
        voters
            .chain(observers)
            .filter_map(|(role, i)| Myid::for_ordinal(role, i).ok())
            .map(|myid| (myid, myid.role()))
            .collect()
    }

    fn name(&self, myid: Myid) -> String {
        format!("{} (myid {myid})", identity::pod_name(&self.cluster, myid))
    }
}

/// The ensemble's committed configuration, as `/zookeeper/config` holds it:
/// its version and every server with its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The zxid of the reconfig that committed it (0 for a static config).
    pub version: u64,
    pub servers: BTreeMap<Myid, Role>,
}

/// Why `/zookeeper/config` could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("the committed config is not a dynamic config: {0}")]
    Parse(String),
    #[error("the committed config's version {0:?} is not a hex number")]
    Version(String),
    #[error(
        "the committed config lists server.{0}, outside the myids zookube uses (1 to 255); this ensemble was not configured by zookube"
    )]
    ForeignId(i64),
}

impl Membership {
    /// Reads the data of `/zookeeper/config` (`server.N=…` lines and
    /// `version=<hex>`).
    pub fn parse(text: &str) -> Result<Membership, MembershipError> {
        let mut cfg = ZooCfg::default();
        cfg.merge_dynamic(text)
            .map_err(|e| MembershipError::Parse(e.to_string()))?;
        let version = match cfg.get("version") {
            None => 0,
            Some(hex) => u64::from_str_radix(hex.trim(), 16)
                .map_err(|_| MembershipError::Version(hex.to_owned()))?,
        };
        let servers = cfg
            .servers
            .iter()
            .map(|s| {
                Myid::new(s.id)
                    .map(|myid| (myid, s.role))
                    .map_err(|_| MembershipError::ForeignId(s.id))
            })
            .collect::<Result<_, _>>()?;
        Ok(Membership { version, servers })
    }

    pub fn contains(&self, myid: Myid) -> bool {
        self.servers.contains_key(&myid)
    }

    /// The voters, by myid.
    pub fn voters(&self) -> Vec<Myid> {
        self.servers
            .iter()
            .filter(|(_, role)| **role == Role::Voter)
            .map(|(myid, _)| *myid)
            .collect()
    }

    /// The version as ZooKeeper writes it (`100000000`).
    pub fn version_hex(&self) -> String {
        format!("{:x}", self.version)
    }
}

/// One member whose pod (or local process) exists, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberObservation {
    pub myid: Myid,
    /// Its state as its sidecar (or another member's) reports it; `None`
    /// when nobody could tell.
    pub state: Option<MemberState>,
    /// Whether its server serves client requests (`srvr` gives a mode).
    pub serving: bool,
    /// The quorum-backed leader its sidecar reports.
    pub leader: Option<Myid>,
    /// Kubernetes' readiness of its pod (`true` where there is none).
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
    /// Runs the wanted revision (config hash, image, restart request).
    pub current: bool,
}

/// What the planner sees of the ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// `None` when the committed config could not be read.
    pub committed: Option<Membership>,
    /// The quorum-backed leader the sidecars agree on.
    pub leader: Option<Myid>,
    /// Every member whose pod or process exists.
    pub members: Vec<MemberObservation>,
}

/// How fit a member is to carry the ensemble through a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// It follows (or leads, or observes) the quorum-backed leader, serves
    /// clients and is ready.
    Synced,
    /// It runs but is not synced yet; the words say why.
    CatchingUp(&'static str),
    /// It does not run, or its server does not answer.
    Down,
}

/// The health of a member, `None` meaning no pod or process exists.
pub fn health(member: Option<&MemberObservation>, leader: Option<Myid>) -> Health {
    let Some(m) = member else {
        return Health::Down;
    };
    match m.state {
        _ if m.terminating => Health::Down,
        None | Some(MemberState::Down) => Health::Down,
        Some(MemberState::Looking) => Health::CatchingUp("is looking for a leader"),
        Some(_) if !m.serving => Health::CatchingUp("is syncing with the leader"),
        Some(_) if leader.is_none() || m.leader != leader => {
            Health::CatchingUp("does not report the quorum-backed leader yet")
        }
        Some(_) if !m.ready => Health::CatchingUp("is not ready"),
        Some(_) => Health::Synced,
    }
}

/// What a refused step would have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    ScaleUp,
    ScaleDown,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::ScaleUp => "scale-up",
            Change::ScaleDown => "scale-down",
        })
    }
}

/// Why nothing can be done now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// The committed config could not be read (no quorum, or no member
    /// answers).
    ConfigUnknown,
    /// No quorum-backed leader is known: an election is running.
    NoLeader,
    /// A member's deletion is still in flight.
    Terminating(Myid),
    /// A member is not synced yet (a joiner, a restarted member, a voter
    /// that must be synced before the ensemble changes).
    CatchingUp { myid: Myid, why: &'static str },
    /// A removed leader still leads: the hand-over has not finished.
    HandingOver(Myid),
}

/// Why a change is refused until the ensemble is healthy again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// These voters are down; changing the membership now could leave it
    /// without a quorum.
    MembersDown { change: Change, down: Vec<Myid> },
    /// The committed config gives a member another role than its myid's.
    RoleMismatch { myid: Myid, committed: Role },
}

/// The single next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The ensemble is as the spec asks.
    Done,
    /// Start a new member with a config listing `servers` (the committed
    /// ones and itself), so it joins as a non-voting member.
    Start {
        myid: Myid,
        servers: BTreeMap<Myid, Role>,
    },
    /// `reconfig add` of a synced joiner, expecting config `version`.
    Add {
        myid: Myid,
        role: Role,
        version: u64,
    },
    /// `reconfig remove`, expecting config `version`.
    Remove {
        myid: Myid,
        version: u64,
    },
    /// Stop a member that is no longer in the committed config.
    Stop {
        myid: Myid,
    },
    /// Restart a member so it runs the wanted revision.
    Restart {
        myid: Myid,
    },
    /// `reconfig remove` of the leader, expecting config `version`, so that
    /// the voter it designates leads without an election; the old leader
    /// then restarts and joins again (rule 4).
    HandOver {
        leader: Myid,
        version: u64,
    },
    Wait(Wait),
    Refuse(Refusal),
}

impl Step {
    /// Whether the step changes the ensemble.
    pub fn acts(&self) -> bool {
        !matches!(self, Step::Done | Step::Wait(_) | Step::Refuse(_))
    }

    /// The step in words, naming members as `zk-3 (myid 4)`.
    pub fn describe(&self, desired: &Desired) -> String {
        let name = |myid: &Myid| desired.name(*myid);
        match self {
            Step::Done => "the ensemble is as the spec asks".to_owned(),
            Step::Start { myid, servers } => format!(
                "start {} with the committed servers and itself ({}), to join as a non-voting member",
                name(myid),
                servers
                    .keys()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Step::Add { myid, role, .. } => {
                format!(
                    "add {} to the ensemble as {}",
                    name(myid),
                    role_words(*role)
                )
            }
            Step::Remove { myid, .. } => format!("remove {} from the ensemble", name(myid)),
            Step::Stop { myid } => format!("stop {}, which is no longer a member", name(myid)),
            Step::Restart { myid } => format!("restart {} on the new revision", name(myid)),
            Step::HandOver { leader, .. } => format!(
                "hand leadership over from {}: remove it from the ensemble, so that another voter leads without an election, then restart it and add it back",
                name(leader)
            ),
            Step::Wait(wait) => match wait {
                Wait::ConfigUnknown => {
                    "waiting to read the committed config from the ensemble".to_owned()
                }
                Wait::NoLeader => "waiting for a quorum-backed leader".to_owned(),
                Wait::Terminating(myid) => format!("waiting for {} to stop", name(myid)),
                Wait::CatchingUp { myid, why } => format!("waiting: {} {why}", name(myid)),
                Wait::HandingOver(myid) => {
                    format!("waiting for {} to hand leadership over", name(myid))
                }
            },
            Step::Refuse(refusal) => match refusal {
                Refusal::MembersDown { change, down } => format!(
                    "{change} refused: {} {} down; a membership change now could leave the ensemble without a quorum. Bring {} back and the {change} continues",
                    down.iter().map(name).collect::<Vec<_>>().join(", "),
                    if down.len() == 1 { "is" } else { "are" },
                    if down.len() == 1 { "it" } else { "them" },
                ),
                Refusal::RoleMismatch { myid, committed } => format!(
                    "the committed config lists {} as {}, but its myid makes it {}; zookube does not change a member's role in place — remove it from the ensemble by hand first",
                    name(myid),
                    role_words(*committed),
                    role_words(myid.role())
                ),
            },
        }
    }
}

fn role_words(role: Role) -> &'static str {
    match role {
        Role::Voter => "a voter",
        Role::Observer => "an observer",
    }
}

/// The single next step from what is wanted and what is observed.
pub fn next_step(desired: &Desired, observed: &Observation) -> Step {
    if let Some(m) = observed.members.iter().find(|m| m.terminating) {
        return Step::Wait(Wait::Terminating(m.myid));
    }
    let Some(committed) = &observed.committed else {
        return Step::Wait(Wait::ConfigUnknown);
    };
    if let Some((myid, role)) = committed.servers.iter().find(|(m, r)| m.role() != **r) {
        return Step::Refuse(Refusal::RoleMismatch {
            myid: *myid,
            committed: *role,
        });
    }
    let member = |myid: Myid| observed.members.iter().find(|m| m.myid == myid);
    let present: BTreeSet<Myid> = observed.members.iter().map(|m| m.myid).collect();
    let wanted = desired.members();

    // 2. Stop a member that is neither committed nor wanted, when it is the
    // last of its role.
    for role in [Role::Observer, Role::Voter] {
        let last = present.iter().rev().find(|m| m.role() == role);
        if let Some(&myid) = last
            && !committed.contains(myid)
            && !desired.wants(myid)
        {
            if observed.leader == Some(myid) {
                return Step::Wait(Wait::HandingOver(myid));
            }
            return Step::Stop { myid };
        }
    }

    let leaving: Vec<Myid> = committed
        .servers
        .keys()
        .filter(|m| !desired.wants(**m))
        .copied()
        .collect();
    let joining: Vec<Myid> = wanted
        .keys()
        .filter(|m| !committed.contains(**m))
        .copied()
        .collect();
    let stale: Vec<Myid> = observed
        .members
        .iter()
        .filter(|m| !m.current && committed.contains(m.myid) && desired.wants(m.myid))
        .map(|m| m.myid)
        .collect();
    if leaving.is_empty() && joining.is_empty() && stale.is_empty() {
        return Step::Done;
    }
    let Some(leader) = observed.leader else {
        return Step::Wait(Wait::NoLeader);
    };
    let health_of = |myid: Myid| health(member(myid), Some(leader));
    let voters = committed.voters();
    let staying_voters = || voters.iter().filter(|m| desired.wants(**m));
    let down: Vec<Myid> = staying_voters()
        .filter(|m| health_of(**m) == Health::Down)
        .copied()
        .collect();
    let catching_up = staying_voters().find_map(|m| match health_of(*m) {
        Health::CatchingUp(why) => Some(Wait::CatchingUp { myid: *m, why }),
        _ => None,
    });

    // 3. Removals: observers first, then voters from the highest myid, the
    // leader last.
    if !leaving.is_empty() {
        if !down.is_empty() {
            return Step::Refuse(Refusal::MembersDown {
                change: Change::ScaleDown,
                down,
            });
        }
        if let Some(wait) = catching_up {
            return Step::Wait(wait);
        }
        let observer = leaving.iter().rev().find(|m| m.role() == Role::Observer);
        let down_voter = leaving
            .iter()
            .rev()
            .find(|m| m.role() == Role::Voter && health_of(**m) == Health::Down);
        let follower = leaving
            .iter()
            .rev()
            .find(|m| m.role() == Role::Voter && **m != leader);
        let myid = observer
            .or(down_voter)
            .or(follower)
            .copied()
            .unwrap_or(leader);
        // ZooKeeper commits a new config only when a quorum of *its* voters
        // is synced: a leaving voter that is down would otherwise stall the
        // removal of another one (NewConfigNoQuorum) half-way.
        let remaining: Vec<Myid> = voters.iter().filter(|m| **m != myid).copied().collect();
        let (up, down): (Vec<Myid>, Vec<Myid>) = remaining
            .iter()
            .partition(|m| health_of(**m) != Health::Down);
        let needed = quorum::quorum_size(u32::try_from(remaining.len()).unwrap_or(u32::MAX));
        if u32::try_from(up.len()).unwrap_or(u32::MAX) < needed {
            return Step::Refuse(Refusal::MembersDown {
                change: Change::ScaleDown,
                down,
            });
        }
        return Step::Remove {
            myid,
            version: committed.version,
        };
    }

    // 4. Additions, one at a time, lowest myid (voters) first. A joiner
    // that runs an older revision is restarted first, whatever else is
    // down: it holds no vote. That is also how a leader that handed over
    // (rule 5) comes back, once its successor leads.
    if let Some(&joiner) = joining.iter().find(|m| present.contains(*m))
        && member(joiner).is_some_and(|m| !m.current)
    {
        if joiner == leader {
            return Step::Wait(Wait::HandingOver(joiner));
        }
        return Step::Restart { myid: joiner };
    }
    if let Some(&myid) = joining.first() {
        if !down.is_empty() {
            return Step::Refuse(Refusal::MembersDown {
                change: Change::ScaleUp,
                down,
            });
        }
        if let Some(wait) = catching_up {
            return Step::Wait(wait);
        }
        // A joiner that already runs (one at a time, so at most one unless
        // the spec changed its mind) is added once synced.
        if let Some(&joiner) = joining.iter().find(|m| present.contains(*m)) {
            return match health_of(joiner) {
                Health::Synced => Step::Add {
                    myid: joiner,
                    role: joiner.role(),
                    version: committed.version,
                },
                Health::CatchingUp(why) => Step::Wait(Wait::CatchingUp { myid: joiner, why }),
                Health::Down => Step::Wait(Wait::CatchingUp {
                    myid: joiner,
                    why: "has started but its server does not answer yet",
                }),
            };
        }
        let mut servers = committed.servers.clone();
        servers.insert(myid, myid.role());
        return Step::Start { myid, servers };
    }

    // 5. Restarts, one at a time, the leader last. A stale member that is
    // down holds up nothing, and its new revision may be what it needs to
    // run (a fixed image or setting): it goes first.
    if let Some(&myid) = stale
        .iter()
        .rev()
        .find(|m| **m != leader && health_of(**m) == Health::Down)
    {
        return Step::Restart { myid };
    }
    // Each member is synced before the next goes: the one restarted last,
    // and any other.
    let unsynced = wanted.keys().find_map(|m| match health_of(*m) {
        Health::Synced => None,
        Health::CatchingUp(why) => Some(Wait::CatchingUp { myid: *m, why }),
        Health::Down => Some(Wait::CatchingUp {
            myid: *m,
            why: "is down",
        }),
    });
    if let Some(wait) = unsynced {
        return Step::Wait(wait);
    }
    // Every wanted member is synced now and the voters are the spec's odd
    // number n, so a restart leaves n - 1 >= n / 2 + 1 synced voters for
    // n >= 3 (a single voter cannot restart without a pause at all).
    let observer = stale.iter().rev().find(|m| m.role() == Role::Observer);
    let follower = stale
        .iter()
        .rev()
        .find(|m| m.role() == Role::Voter && **m != leader);
    match observer.or(follower) {
        Some(&myid) => Step::Restart { myid },
        // Every remaining voter is synced, so the voters without the
        // leader still hold a synced quorum of their own config.
        None if voters.len() >= 3 => Step::HandOver {
            leader,
            version: committed.version,
        },
        None => Step::Restart { myid: leader },
    }
}

/// The servers a member that starts now must list: the committed ones, a
/// joiner that runs but is not added yet, and the member the step starts.
/// On Kubernetes this is the ConfigMap's server list, shared by every pod;
/// a restarted member then learns any newer committed config from the
/// leader.
pub fn configured_servers(
    desired: &Desired,
    observed: &Observation,
    step: &Step,
) -> Option<BTreeMap<Myid, Role>> {
    let mut servers = observed.committed.as_ref()?.servers.clone();
    // A wanted member stays listed while its pod is being replaced (a
    // leader that handed over, a stale joiner): its next pod copies this
    // list at start and must find itself in it.
    for m in &observed.members {
        if desired.wants(m.myid) {
            servers.entry(m.myid).or_insert(m.myid.role());
        }
    }
    if let Step::Start { myid, .. } = step {
        servers.insert(*myid, myid.role());
    }
    Some(servers)
}

#[cfg(test)]
mod tests;
