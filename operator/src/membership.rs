//! The operator's side of a membership change or a rolling restart: what
//! the planner ([`zk_ensemble::plan`]) sees of a cluster's pods and
//! sidecars, and what its step means for the objects zookube applies —
//! which servers the ConfigMap's `zoo.cfg` lists and how many pods each
//! StatefulSet has. Pure: the reconcile loop reads and writes.
//!
//! How a step becomes objects:
//! - start member k: the ConfigMap lists the committed servers and k, then
//!   k's StatefulSet grows to k's ordinal + 1 (objects are applied in that
//!   order), so the new pod joins as a non-voting member;
//! - add or remove member k: `reconfig` (the ConfigMap follows on the next
//!   reconcile, from the committed config);
//! - stop member k: its StatefulSet shrinks to k's ordinal (its volume
//!   follows `storage.whenScaled`);
//! - restart member k: its pod is deleted and comes back from the current
//!   template (`updateStrategy: OnDelete`);
//! - hand leadership over from leader k: `reconfig remove` of k; k, still
//!   wanted, stays in the ConfigMap and is restarted and added back as a
//!   joiner.
//!
//! Restarts after a reconfig are correct because every pod's `/conf/zoo.cfg`
//! is copied from the ConfigMap at start (`zk-sidecar init --conf-dir`), and
//! the ConfigMap always lists the committed servers (plus a joiner): a
//! restarted member starts from the current membership and learns any newer
//! committed config from the leader. ZooKeeper's own dynamic files live in
//! the pod's `/conf` and go with the pod.

use std::collections::BTreeMap;
use std::time::Duration;

use zk_ensemble::plan::{Desired, MemberObservation, Membership, Observation, Step, Wait};
use zk_ensemble::zoocfg::host_port;
use zk_ensemble::{Myid, Role, ZooCfg};

use crate::cluster::{Members, ValidatedCluster};
use crate::reconfig::Target;
use crate::status::{PodView, SidecarReading, myid_of_pod, quorum_leader, seen_by_others};

/// How soon to look again while a change is under way: each step waits on
/// ZooKeeper (a member syncing, a hand-over), which takes seconds.
pub const REQUEUE_STEP: Duration = Duration::from_secs(2);

/// What exists of a cluster before this reconcile applies anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    /// The voters' StatefulSet's replicas; `None` when it does not exist.
    pub voter_pods: Option<u32>,
    pub observer_pods: Option<u32>,
    /// The servers the ConfigMap's `zoo.cfg` lists; `None` when it does not
    /// exist or cannot be read.
    pub servers: Option<BTreeMap<Myid, Role>>,
}

/// The servers a `zoo.cfg` lists.
pub fn servers_of(zoo_cfg: &str) -> Option<BTreeMap<Myid, Role>> {
    let cfg = ZooCfg::parse(zoo_cfg).ok()?;
    cfg.servers
        .iter()
        .map(|s| Myid::new(s.id).ok().map(|m| (m, s.role)))
        .collect()
}

/// The template hash each role's pods should carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Templates {
    pub voter: Option<String>,
    pub observer: Option<String>,
}

impl Templates {
    fn of(&self, role: Role) -> Option<&str> {
        match role {
            Role::Voter => self.voter.as_deref(),
            Role::Observer => self.observer.as_deref(),
        }
    }
}

/// Whether the cluster is as its spec asks by what the objects and the
/// sidecars show — the StatefulSets' sizes, the ConfigMap's servers, no pod
/// beyond the spec, every pod on the current template, and every pod's
/// sidecar watching exactly the spec's members — so the committed config
/// need not be read. A missing pod is the StatefulSet's to create.
///
/// The sidecars are needed because the ConfigMap lists a joiner before
/// `reconfig` adds it: after the last joiner starts, the objects alone look
/// finished while the ensemble has not committed it yet.
pub fn settled(
    cluster: &ValidatedCluster,
    current: &Current,
    pods: &[PodView],
    sidecars: &BTreeMap<String, SidecarReading>,
    templates: &Templates,
) -> bool {
    let spec = Members::of_spec(&cluster.ensemble);
    let observers_match = match current.observer_pods {
        None => spec.observer_pods == 0,
        Some(n) => n == spec.observer_pods,
    };
    let all_wanted = pods.iter().all(|p| {
        myid_of_pod(&cluster.name, &p.name).is_some_and(|m| spec.servers.contains_key(&m))
    });
    let committed_as_spec = pods.iter().all(|p| {
        sidecars
            .get(&p.name)
            .and_then(|r| r.as_ref().ok())
            .is_some_and(|status| {
                let watched: BTreeMap<Myid, Role> = status
                    .members
                    .iter()
                    .filter_map(|m| Some((Myid::try_from(m.myid).ok()?, m.role)))
                    .collect();
                watched == spec.servers
            })
    });
    current.voter_pods == Some(spec.voter_pods)
        && observers_match
        && committed_as_spec
        && current.servers.as_ref() == Some(&spec.servers)
        && all_wanted
        && pods.iter().all(|p| {
            let role = myid_of_pod(&cluster.name, &p.name).map(Myid::role);
            !p.terminating && role.is_some_and(|r| p.template_hash.as_deref() == templates.of(r))
        })
}

/// What the planner sees: one member per pod, its state as its own sidecar
/// reports it (else as other sidecars' watchers saw it), and the leader the
/// sidecars agree on.
pub fn observation(
    cluster: &ValidatedCluster,
    pods: &[PodView],
    sidecars: &BTreeMap<String, SidecarReading>,
    committed: Option<Membership>,
    templates: &Templates,
) -> Observation {
    let readings: Vec<&zk_ensemble::SidecarStatus> =
        sidecars.values().filter_map(|r| r.as_ref().ok()).collect();
    let members = pods
        .iter()
        .filter_map(|pod| {
            let myid = myid_of_pod(&cluster.name, &pod.name)?;
            let own = sidecars.get(&pod.name).and_then(|r| r.as_ref().ok());
            let state = match own {
                Some(status) => Some(status.state),
                None => seen_by_others(myid, &readings).filter(|_| pod.sidecar.is_some()),
            };
            Some(MemberObservation {
                myid,
                state,
                serving: own.and_then(|s| s.serving) == Some(true),
                leader: own
                    .and_then(|s| s.leader)
                    .and_then(|l| Myid::try_from(l).ok()),
                ready: pod.ready,
                terminating: pod.terminating,
                current: pod.template_hash.is_some()
                    && pod.template_hash.as_deref() == templates.of(myid.role()),
            })
        })
        .collect();
    Observation {
        committed,
        leader: quorum_leader(&readings).map(|l| l.myid),
        members,
    }
}

/// The members to build for `step`: the servers members must list now, and
/// each StatefulSet's size — what exists, grown by a start or shrunk by a
/// stop. Without a step nothing moves; when done, the spec's.
pub fn members(
    cluster: &ValidatedCluster,
    current: &Current,
    observed: Option<&Observation>,
    step: Option<&Step>,
) -> Members {
    let spec = Members::of_spec(&cluster.ensemble);
    let Some(voter_pods) = current.voter_pods else {
        // A new cluster: every member starts together from the spec's list.
        return spec;
    };
    if step == Some(&Step::Done) {
        // The committed config is the spec's: pods still missing are the
        // StatefulSets' to create, from the spec's list.
        return spec;
    }
    let desired = Desired::of(&cluster.ensemble);
    let servers = match (observed, step) {
        (Some(observed), Some(step)) => {
            zk_ensemble::plan::configured_servers(&desired, observed, step)
        }
        _ => None,
    }
    .or_else(|| current.servers.clone())
    .unwrap_or(spec.servers);
    let mut members = Members {
        servers,
        voter_pods,
        observer_pods: current.observer_pods.unwrap_or(0),
    };
    if step.is_none() {
        // The ensemble could not be read. Nothing moves, except that no
        // StatefulSet keeps more pods than the ConfigMap lists members (a
        // hand-made scale-up: such a pod could only crash on start).
        if let Some(listed) = &current.servers {
            for role in [Role::Voter, Role::Observer] {
                let cap = listed
                    .keys()
                    .filter(|m| m.role() == role)
                    .map(|m| m.ordinal() + 1)
                    .max()
                    .unwrap_or(0);
                let count = pods(&mut members, role);
                *count = (*count).min(cap);
            }
        }
    }
    match step {
        Some(Step::Start { myid, .. }) => {
            let count = pods(&mut members, myid.role());
            *count = (*count).max(myid.ordinal() + 1);
        }
        Some(Step::Stop { myid }) => {
            let count = pods(&mut members, myid.role());
            if *count == myid.ordinal() + 1 {
                *count = myid.ordinal();
            }
        }
        _ => {}
    }
    members
}

fn pods(members: &mut Members, role: Role) -> &mut u32 {
    match role {
        Role::Voter => &mut members.voter_pods,
        Role::Observer => &mut members.observer_pods,
    }
}

/// Where the operator reaches the ensemble: every running pod's IP at the
/// client port.
pub fn target(pods: &[PodView], client_port: u16, password: &str) -> Target {
    let connect = pods
        .iter()
        .filter(|p| !p.terminating)
        .filter_map(|p| p.sidecar.as_ref().map(|(ip, _)| ip))
        .map(|ip| host_port(ip, client_port))
        .collect::<Vec<_>>()
        .join(",");
    Target {
        connect,
        password: password.to_owned(),
    }
}

/// The `Progressing` condition a step gives: `(status, reason, message)`.
/// `None` when the ensemble is as asked (the pod-based condition stands).
pub fn progressing(step: &Step, desired: &Desired) -> Option<(bool, &'static str, String)> {
    let message = step.describe(desired);
    let reason = match step {
        Step::Done => return None,
        Step::Start { .. } | Step::Add { .. } => "ScalingUp",
        Step::Remove { .. } | Step::Stop { .. } => "ScalingDown",
        Step::Restart { .. } | Step::HandOver { .. } => "RollingRestart",
        Step::Wait(Wait::ConfigUnknown) => "WaitingForEnsemble",
        Step::Wait(Wait::NoLeader) => "WaitingForLeader",
        Step::Wait(_) => "WaitingForMember",
        Step::Refuse(_) => return Some((false, "ChangeRefused", message)),
    };
    Some((true, reason, message))
}

#[cfg(test)]
mod tests;
