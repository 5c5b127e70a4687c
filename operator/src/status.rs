//! What the operator reports about a cluster, decided purely from what it
//! observed: the pods (readiness, labels, config hash) and each member's
//! sidecar (`/v1/status`). Every decision here — who leads, which label a
//! pod carries, which conditions hold, when to look again — is a function of
//! its inputs and is unit-tested without an API server.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use zk_ensemble::identity::{self, Myid};
use zk_ensemble::status::SidecarStatus;
use zk_ensemble::{MemberState, Role, quorum};

use crate::build::labels::{self, RoleLabel};
use crate::build::{
    CONFIG_HASH_ANNOTATION, SIDECAR_CONTAINER, SIDECAR_PORT, SIDECAR_PORT_NAME,
    TEMPLATE_HASH_ANNOTATION,
};
use crate::cluster::{InvalidSpec, ValidatedCluster};
use crate::crd::{LeaderStatus, MemberStatus, ZookeeperClusterStatus};

/// Condition types.
pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const INVALID_SPEC: &str = "InvalidSpec";

/// How soon to look again while a cluster is changing or has no quorum.
pub const REQUEUE_CHANGING: Duration = Duration::from_secs(10);
/// How soon to look again when all is well: often enough to notice a leader
/// change that no pod event announces.
pub const REQUEUE_STABLE: Duration = Duration::from_secs(60);

/// A member pod as far as the status is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    /// The `Ready` condition (the sidecar's `/readyz` answers).
    pub ready: bool,
    /// Where the sidecar listens: the pod IP and its `sidecar` port.
    pub sidecar: Option<(String, u16)>,
    /// The `zookube.io/role` label it carries now.
    pub role_label: Option<String>,
    /// The config hash its template had when it was created.
    pub config_hash: Option<String>,
    /// The hash of the template it was created from.
    pub template_hash: Option<String>,
    /// Being deleted (a restart or a scale-down in progress).
    pub terminating: bool,
}

impl PodView {
    pub fn of(pod: &Pod) -> PodView {
        let meta = &pod.metadata;
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
        let ip = status.and_then(|s| s.pod_ip.clone()).filter(|_| running);
        let port = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == SIDECAR_CONTAINER))
            .and_then(|c| c.ports.as_ref())
            .and_then(|ports| {
                ports
                    .iter()
                    .find(|p| p.name.as_deref() == Some(SIDECAR_PORT_NAME))
            })
            .and_then(|p| u16::try_from(p.container_port).ok())
            .unwrap_or(SIDECAR_PORT);
        PodView {
            name: meta.name.clone().unwrap_or_default(),
            ready,
            sidecar: ip.map(|ip| (ip, port)),
            role_label: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::ROLE).cloned()),
            config_hash: meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(CONFIG_HASH_ANNOTATION).cloned()),
            template_hash: meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(TEMPLATE_HASH_ANNOTATION).cloned()),
            terminating: meta.deletion_timestamp.is_some(),
        }
    }
}

/// What reading one sidecar gave.
pub type SidecarReading = Result<SidecarStatus, String>;

/// One member as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedMember {
    pub myid: Myid,
    pub pod: String,
    /// Whether the spec asks for it (a pod beyond the spec is being removed).
    pub wanted: bool,
    pub pod_view: Option<PodView>,
    /// The member's state: its own sidecar's word, else what another
    /// sidecar's watcher saw of it.
    pub state: Option<MemberState>,
    /// Why its sidecar did not answer, when it did not.
    pub sidecar_error: Option<String>,
}

impl ObservedMember {
    pub fn ready(&self) -> bool {
        self.pod_view
            .as_ref()
            .is_some_and(|p| p.ready && !p.terminating)
    }

    pub fn role(&self) -> Role {
        self.myid.role()
    }
}

/// The quorum-backed leader as the sidecars report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservedLeader {
    pub myid: Myid,
    pub peer_epoch: Option<i64>,
}

/// Everything the status is computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub members: Vec<ObservedMember>,
    pub leader: Option<ObservedLeader>,
}

/// Puts pods and sidecar readings together with the members the spec asks
/// for. Pods of members beyond the spec (a scale-down in progress) are
/// listed too, after the wanted ones.
pub fn observe(
    cluster: &ValidatedCluster,
    pods: &[PodView],
    sidecars: &BTreeMap<String, SidecarReading>,
) -> Observation {
    let ensemble = &cluster.ensemble;
    let mut members: BTreeMap<Myid, (String, bool)> = ensemble
        .members()
        .into_iter()
        .map(|m| (m.myid, (m.pod, true)))
        .collect();
    for pod in pods {
        if let Some(myid) = myid_of_pod(&cluster.name, &pod.name) {
            members
                .entry(myid)
                .or_insert_with(|| (pod.name.clone(), false));
        }
    }
    let readings: Vec<&SidecarStatus> = sidecars.values().filter_map(|r| r.as_ref().ok()).collect();
    let members = members
        .into_iter()
        .map(|(myid, (pod, wanted))| {
            let own = sidecars.get(&pod);
            let state = match own {
                Some(Ok(status)) => Some(status.state),
                _ => seen_by_others(myid, &readings),
            };
            ObservedMember {
                myid,
                pod_view: pods.iter().find(|p| p.name == pod).cloned(),
                pod,
                wanted,
                state,
                sidecar_error: own.and_then(|r| r.as_ref().err().cloned()),
            }
        })
        .collect();
    Observation {
        members,
        leader: quorum_leader(&readings),
    }
}

/// The myid of a member pod, from its name (`<cluster>-<i>` or
/// `<cluster>-observer-<i>`).
pub fn myid_of_pod(cluster: &str, pod: &str) -> Option<Myid> {
    let (set, ordinal) = pod.rsplit_once('-')?;
    let ordinal: u32 = ordinal.parse().ok()?;
    let role = [Role::Voter, Role::Observer]
        .into_iter()
        .find(|role| identity::statefulset_name(cluster, *role) == set)?;
    Myid::for_ordinal(role, ordinal).ok()
}

/// The most recent state other sidecars' watchers report for `myid`
/// (used when its own sidecar does not answer).
pub fn seen_by_others(myid: Myid, readings: &[&SidecarStatus]) -> Option<MemberState> {
    readings
        .iter()
        .flat_map(|r| r.members.iter())
        .filter(|m| m.myid == u64::from(myid) && m.reachable)
        .filter_map(|m| {
            m.state
                .map(|s| (m.last_reply_age_seconds.unwrap_or(f64::MAX), s))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, state)| state)
}

/// The leader the sidecars agree on: among the quorum-backed leaders they
/// report, the one in the highest peer epoch (a newer leadership supersedes
/// an older one), and among equals the one most of them report.
pub fn quorum_leader(readings: &[&SidecarStatus]) -> Option<ObservedLeader> {
    let mut votes: BTreeMap<(Option<i64>, u64), usize> = BTreeMap::new();
    for r in readings {
        if let Some(leader) = r.leader {
            *votes.entry((r.peer_epoch, leader)).or_default() += 1;
        }
    }
    let ((peer_epoch, leader), _) = votes
        .into_iter()
        .max_by(|((ea, _), ca), ((eb, _), cb)| ea.cmp(eb).then(ca.cmp(cb)))?;
    let myid = Myid::new(i64::try_from(leader).ok()?).ok()?;
    Some(ObservedLeader { myid, peer_epoch })
}

/// The `zookube.io/role` label a member's pod should carry: `leader` for
/// the quorum-backed leader, `follower` for a voter that follows, `observer`
/// for an observer; none while a voter's state is unknown or it is looking
/// (a stale `leader` label would send people to the wrong pod).
pub fn role_label(member: &ObservedMember, leader: Option<ObservedLeader>) -> Option<RoleLabel> {
    match member.role() {
        Role::Observer => Some(RoleLabel::Observer),
        Role::Voter if leader.is_some_and(|l| l.myid == member.myid) => Some(RoleLabel::Leader),
        Role::Voter if member.state == Some(MemberState::Following) && leader.is_some() => {
            Some(RoleLabel::Follower)
        }
        Role::Voter => None,
    }
}

/// The pods whose role label must change, with the label they should carry.
pub fn role_label_changes(observation: &Observation) -> Vec<(String, Option<RoleLabel>)> {
    observation
        .members
        .iter()
        .filter_map(|m| {
            let pod = m.pod_view.as_ref().filter(|p| !p.terminating)?;
            let want = role_label(m, observation.leader);
            (pod.role_label.as_deref() != want.map(RoleLabel::as_str))
                .then(|| (pod.name.clone(), want))
        })
        .collect()
}

/// A child the API server refused to take as zookube built it (a 4xx on
/// its apply): retrying unchanged cannot help, so the cluster is reported
/// `Degraded` until the spec or the API server's rules change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The child's kind, as `StatefulSet`.
    pub kind: String,
    pub name: String,
    /// The API server's message.
    pub message: String,
}

/// The `Degraded` reasons of refused children, one per kind zookube applies.
pub const REFUSED_REASONS: [&str; 5] = [
    "ConfigMapRefused",
    "ServiceRefused",
    "StatefulSetRefused",
    "PodDisruptionBudgetRefused",
    "ApplyRefused",
];

fn refused_reason(kind: &str) -> &'static str {
    match kind {
        "ConfigMap" => REFUSED_REASONS[0],
        "Service" => REFUSED_REASONS[1],
        "StatefulSet" => REFUSED_REASONS[2],
        "PodDisruptionBudget" => REFUSED_REASONS[3],
        _ => REFUSED_REASONS[4],
    }
}

/// `Degraded` while children are refused: the reason names the first
/// one's kind, the message every one and the API server's words. It takes
/// the place of the `Degraded` [`conditions`] computes from the members.
pub fn refused(refusals: &[Refusal]) -> Option<ConditionDraft> {
    let first = refusals.first()?;
    let each: Vec<String> = refusals
        .iter()
        .map(|r| format!("{} {}: {}", r.kind, r.name, r.message))
        .collect();
    Some(ConditionDraft::new(
        DEGRADED,
        true,
        refused_reason(&first.kind),
        format!(
            "{} (the API server refuses what zookube applies; fix the spec field it names — membership changes wait until the apply succeeds)",
            each.join("; ")
        ),
    ))
}

/// A condition before it gets its times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionDraft {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl ConditionDraft {
    fn new(type_: &'static str, status: bool, reason: &'static str, message: String) -> Self {
        ConditionDraft {
            type_,
            status,
            reason,
            message,
        }
    }
}

/// `Available`, `Progressing`, `Degraded` and `InvalidSpec` (false) for a
/// valid cluster.
pub fn conditions(cluster: &ValidatedCluster, observation: &Observation) -> Vec<ConditionDraft> {
    let voters = cluster.ensemble.voters;
    let quorum = quorum::quorum_size(voters);
    let wanted = || observation.members.iter().filter(|m| m.wanted);
    let ready_voters = wanted()
        .filter(|m| m.role() == Role::Voter && m.ready())
        .count();
    let ready_voters = u32::try_from(ready_voters).unwrap_or(u32::MAX);

    let available = match observation.leader {
        Some(leader) if ready_voters >= quorum => ConditionDraft::new(
            AVAILABLE,
            true,
            "QuorumEstablished",
            format!(
                "{} (myid {}) leads{}; {ready_voters} of {voters} voters ready (quorum {quorum})",
                identity::pod_name(&cluster.name, leader.myid),
                leader.myid,
                epoch_words(leader.peer_epoch),
            ),
        ),
        Some(_) => ConditionDraft::new(
            AVAILABLE,
            false,
            "TooFewReadyVoters",
            format!("{ready_voters} of {voters} voters ready; a quorum needs {quorum}"),
        ),
        None => ConditionDraft::new(
            AVAILABLE,
            false,
            "NoLeader",
            format!(
                "no sidecar reports a quorum-backed leader; {ready_voters} of {voters} voters ready (quorum {quorum})"
            ),
        ),
    };

    let missing: Vec<&str> = wanted()
        .filter(|m| m.pod_view.is_none())
        .map(|m| m.pod.as_str())
        .collect();
    let leaving: Vec<&str> = observation
        .members
        .iter()
        .filter(|m| !m.wanted && m.pod_view.is_some())
        .map(|m| m.pod.as_str())
        .collect();
    let stale: Vec<&str> = wanted()
        .filter_map(|m| m.pod_view.as_ref())
        .filter(|p| p.config_hash.as_deref() != Some(cluster.config.hash.as_str()))
        .map(|p| p.name.as_str())
        .collect();
    let not_ready: Vec<&str> = wanted()
        .filter(|m| m.pod_view.is_some() && !m.ready())
        .map(|m| m.pod.as_str())
        .collect();
    let progressing = if !missing.is_empty() {
        ConditionDraft::new(
            PROGRESSING,
            true,
            "CreatingMembers",
            format!("waiting for {}", list(&missing)),
        )
    } else if !leaving.is_empty() {
        ConditionDraft::new(
            PROGRESSING,
            true,
            "RemovingMembers",
            format!("{} still running", list(&leaving)),
        )
    } else if !not_ready.is_empty() {
        ConditionDraft::new(
            PROGRESSING,
            true,
            "MembersNotReady",
            format!("waiting for {} to become ready", list(&not_ready)),
        )
    } else if !stale.is_empty() {
        ConditionDraft::new(
            PROGRESSING,
            true,
            "RestartPending",
            format!(
                "{} run an older configuration (config hash {} is current); they pick it up when restarted",
                list(&stale),
                cluster.config.hash
            ),
        )
    } else {
        ConditionDraft::new(
            PROGRESSING,
            false,
            "Stable",
            "every member runs the current configuration".to_owned(),
        )
    };

    let troubles: Vec<String> = wanted()
        .filter_map(|m| match (&m.pod_view, &m.sidecar_error, m.state) {
            (None, _, _) => Some(format!("{} does not exist", m.pod)),
            (Some(p), _, _) if !p.ready => Some(format!("{} is not ready", m.pod)),
            (_, Some(error), _) => Some(format!("{}'s sidecar did not answer ({error})", m.pod)),
            (_, _, Some(MemberState::Down | MemberState::Looking)) => Some(format!(
                "{} is {}",
                m.pod,
                m.state.map_or("unknown", MemberState::as_str)
            )),
            _ => None,
        })
        .collect();
    let degraded = if !available.status {
        ConditionDraft::new(DEGRADED, true, "NoQuorum", available.message.clone())
    } else if !troubles.is_empty() {
        ConditionDraft::new(DEGRADED, true, "MembersUnhealthy", troubles.join("; "))
    } else {
        ConditionDraft::new(
            DEGRADED,
            false,
            "AllMembersHealthy",
            format!("all {} members ready", wanted().count()),
        )
    };

    vec![
        available,
        progressing,
        degraded,
        ConditionDraft::new(INVALID_SPEC, false, "Valid", "the spec is valid".to_owned()),
    ]
}

fn epoch_words(peer_epoch: Option<i64>) -> String {
    peer_epoch.map_or(String::new(), |e| format!(" in peer epoch {e}"))
}

fn list(pods: &[&str]) -> String {
    pods.join(", ")
}

/// The status of a valid cluster.
pub fn compute(
    cluster: &ValidatedCluster,
    observation: &Observation,
    previous: Option<&ZookeeperClusterStatus>,
    now: Timestamp,
) -> ZookeeperClusterStatus {
    let count = |role: Role, ready: bool| -> i32 {
        let n = observation
            .members
            .iter()
            .filter(|m| m.role() == role && m.pod_view.is_some() && (!ready || m.ready()))
            .count();
        i32::try_from(n).unwrap_or(i32::MAX)
    };
    let generation = cluster.generation;
    ZookeeperClusterStatus {
        observed_generation: generation,
        replicas: count(Role::Voter, false),
        ready_replicas: count(Role::Voter, true),
        observers: count(Role::Observer, false),
        ready_observers: count(Role::Observer, true),
        selector: Some(labels::selector_string(&labels::role_selector(
            &cluster.name,
            Role::Voter,
        ))),
        leader: observation.leader.map(|l| LeaderStatus {
            myid: i64::from(l.myid),
            pod: identity::pod_name(&cluster.name, l.myid),
        }),
        peer_epoch: observation.leader.and_then(|l| l.peer_epoch),
        members: observation
            .members
            .iter()
            .map(|m| MemberStatus {
                myid: i64::from(m.myid),
                pod: m.pod.clone(),
                role: m.role().to_string(),
                state: m.state.map(|s| s.as_str().to_owned()),
                ready: m.ready(),
            })
            .collect(),
        conditions: merge_conditions(
            previous
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default(),
            conditions(cluster, observation),
            generation,
            now,
        ),
        config_hash: Some(cluster.config.hash.clone()),
    }
}

/// The status of a cluster whose spec is invalid: `InvalidSpec` is true and
/// names every problem; the rest of the previous status stays as it was
/// (its conditions keep the generation they describe).
pub fn invalid(
    previous: Option<&ZookeeperClusterStatus>,
    invalid: &InvalidSpec,
    generation: Option<i64>,
    now: Timestamp,
) -> ZookeeperClusterStatus {
    let previous = previous.cloned().unwrap_or_default();
    let draft = ConditionDraft::new(INVALID_SPEC, true, "InvalidSpec", invalid.to_string());
    let mut conditions: Vec<Condition> = previous
        .conditions
        .iter()
        .filter(|c| c.type_ != INVALID_SPEC)
        .cloned()
        .collect();
    conditions.extend(merge_conditions(
        &previous.conditions,
        vec![draft],
        generation,
        now,
    ));
    ZookeeperClusterStatus {
        observed_generation: generation,
        conditions,
        ..previous
    }
}

/// Conditions with times: `lastTransitionTime` moves only when a
/// condition's status flips, so an unchanged cluster gets an identical
/// status and no write.
pub fn merge_conditions(
    previous: &[Condition],
    drafts: Vec<ConditionDraft>,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    drafts
        .into_iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" };
            let since = previous
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map_or(Time(now), |c| c.last_transition_time.clone());
            Condition {
                type_: d.type_.to_owned(),
                status: status.to_owned(),
                reason: d.reason.to_owned(),
                message: d.message,
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// Replaces one condition of `status` (a membership change's
/// `Progressing`), keeping its transition time while its status holds.
pub fn set_condition(
    status: &mut ZookeeperClusterStatus,
    previous: Option<&ZookeeperClusterStatus>,
    draft: ConditionDraft,
    generation: Option<i64>,
    now: Timestamp,
) {
    let type_ = draft.type_;
    let merged = merge_conditions(
        previous
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default(),
        vec![draft],
        generation,
        now,
    );
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if let Some(condition) = merged.into_iter().next() {
                *existing = condition;
            }
        }
        None => status.conditions.extend(merged),
    }
}

/// Whether a condition is true in a status.
pub fn is_true(status: Option<&ZookeeperClusterStatus>, type_: &str) -> bool {
    status
        .into_iter()
        .flat_map(|s| s.conditions.iter())
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// When to look at a cluster again: soon while it changes or lacks a
/// quorum, rarely when it is stable.
pub fn requeue_after(status: &ZookeeperClusterStatus) -> Duration {
    if is_true(Some(status), PROGRESSING) || !is_true(Some(status), AVAILABLE) {
        REQUEUE_CHANGING
    } else {
        REQUEUE_STABLE
    }
}

/// Something worth an Event, decided by comparing two statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A new leader, or the same one in a new epoch.
    LeaderElected(String),
    /// The cluster was available and is not any more.
    QuorumLost(String),
    /// The spec became invalid, or invalid in a different way.
    InvalidSpec(String),
    /// The API server began refusing a child, or refuses it differently:
    /// the `Degraded` reason and message.
    Refused(&'static str, String),
}

/// The Events a status change deserves.
pub fn notices(
    previous: Option<&ZookeeperClusterStatus>,
    current: &ZookeeperClusterStatus,
) -> Vec<Notice> {
    let mut notices = Vec::new();
    let condition = |s: Option<&ZookeeperClusterStatus>, t: &str| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == t).cloned())
    };
    let invalid_now = condition(Some(current), INVALID_SPEC).filter(|c| c.status == "True");
    let invalid_before = condition(previous, INVALID_SPEC).filter(|c| c.status == "True");
    if let Some(now) = invalid_now {
        if invalid_before.map(|c| c.message) != Some(now.message.clone()) {
            notices.push(Notice::InvalidSpec(now.message));
        }
        return notices;
    }
    let leader_now = current
        .leader
        .as_ref()
        .map(|l| (l.pod.clone(), current.peer_epoch));
    let leader_before =
        previous.and_then(|p| p.leader.as_ref().map(|l| (l.pod.clone(), p.peer_epoch)));
    if let Some((pod, epoch)) = &leader_now
        && leader_now != leader_before
    {
        let was = match &leader_before {
            Some((before, before_epoch)) => {
                format!(" (was {before}{})", epoch_words(*before_epoch))
            }
            None => String::new(),
        };
        notices.push(Notice::LeaderElected(format!(
            "{pod} leads{}{was}",
            epoch_words(*epoch)
        )));
    }
    if let Some(now) = condition(Some(current), DEGRADED).filter(|c| c.status == "True")
        && let Some(reason) = REFUSED_REASONS.iter().find(|r| **r == now.reason)
    {
        let before = condition(previous, DEGRADED).filter(|c| c.status == "True");
        if before.map(|c| (c.reason, c.message)) != Some((now.reason.clone(), now.message.clone()))
        {
            notices.push(Notice::Refused(reason, now.message));
        }
    }
    if is_true(previous, AVAILABLE) && !is_true(Some(current), AVAILABLE) {
        let message = condition(Some(current), AVAILABLE)
            .map(|c| c.message)
            .unwrap_or_default();
        notices.push(Notice::QuorumLost(message));
    }
    notices
}

#[cfg(test)]
mod tests;
