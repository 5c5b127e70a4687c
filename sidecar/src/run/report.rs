//! What `run` reports: the state the loops share, and the pure functions
//! that turn it into the `/v1/status` document, the `/readyz` verdict and the
//! `/livez` verdict.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use zk_election::watcher::{Conclusion, LocalServer, MemberView, Phase, View, Watcher};
use zk_election::wire::ServerState;
use zk_ensemble::status::{
    ElectionStatus, LeaderPhase, MemberState, MemberStatus, QuorumStatus, format_zxid,
};
use zk_ensemble::{Myid, Role, SidecarStatus, quorum};
use zk_process::{Mode, Srvr};

use crate::http::{Health, Verdict};

/// The latest answers of the local server.
#[derive(Debug, Default)]
pub(crate) struct LocalState {
    pub(crate) srvr: Option<(Instant, SrvrOutcome)>,
    /// The last `imok`.
    pub(crate) imok_at: Option<Instant>,
    /// Why the last `ruok` failed, until one succeeds.
    pub(crate) ruok_error: Option<String>,
}

/// What `srvr` said.
#[derive(Debug, Clone)]
pub(crate) enum SrvrOutcome {
    Serving(Srvr),
    /// "This ZooKeeper instance is not currently serving requests".
    NotServing,
    /// No answer, or not one we understand.
    Failed(String),
}

impl SrvrOutcome {
    pub(crate) fn local_server(&self) -> LocalServer {
        match self {
            SrvrOutcome::Serving(_) => LocalServer::Serving,
            SrvrOutcome::NotServing => LocalServer::NotServing,
            SrvrOutcome::Failed(_) => LocalServer::Down,
        }
    }
}

/// The `/livez` settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    pub(crate) started: Instant,
    pub(crate) startup_grace: Duration,
    pub(crate) window: Duration,
}

/// The longest a loop may go without running before `/livez` fails.
const LOOP_STALL: Duration = Duration::from_secs(15);

/// Everything the loops share with the HTTP handlers.
#[derive(Debug)]
pub(crate) struct Shared {
    myid: Myid,
    role: Role,
    pub(crate) watcher: Watcher,
    pub(crate) local: LocalState,
    pub(crate) driver_beat: Instant,
    pub(crate) probe_beat: Instant,
    liveness: Liveness,
}

impl Shared {
    pub(crate) fn new(myid: Myid, role: Role, watcher: Watcher, liveness: Liveness) -> Shared {
        Shared {
            myid,
            role,
            watcher,
            local: LocalState::default(),
            driver_beat: liveness.started,
            probe_beat: liveness.started,
            liveness,
        }
    }

    pub(crate) fn status(&self, now: Instant) -> SidecarStatus {
        status(
            self.myid,
            self.role,
            &self.watcher.view(now),
            &self.local,
            now,
        )
    }
}

/// The `Health` of `run`: every answer is computed from [`Shared`] at the
/// moment it is asked.
pub(crate) struct RunHealth(pub(crate) Arc<Mutex<Shared>>);

impl RunHealth {
    fn with<T>(&self, f: impl FnOnce(&Shared) -> T) -> T {
        let shared = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&shared)
    }
}

impl Health for RunHealth {
    fn status(&self) -> SidecarStatus {
        self.with(|s| s.status(Instant::now()))
    }

    fn liveness(&self) -> Verdict {
        self.with(|s| liveness(s, Instant::now()))
    }

    fn readiness(&self) -> Verdict {
        self.with(|s| readiness(&s.status(Instant::now())))
    }
}

/// The wall-clock time of an instant in the past.
fn wall(at: Instant, now: Instant) -> SystemTime {
    SystemTime::now() - now.saturating_duration_since(at)
}

fn rfc3339(at: Instant, now: Instant) -> String {
    humantime::format_rfc3339_millis(wall(at, now)).to_string()
}

fn member_state(state: ServerState) -> MemberState {
    state.into()
}

fn sid(id: i64) -> Option<u64> {
    u64::try_from(id).ok()
}

/// The local member's state: `DOWN` when its server does not answer; what
/// `srvr` says while it serves; otherwise (or when a reply on the election
/// port is newer) what the member itself said to the watcher.
pub(crate) fn local_state(
    local: &LocalState,
    own: Option<&MemberView>,
    now: Instant,
) -> MemberState {
    let reply = own.filter(|m| m.reachable).and_then(|m| {
        let age = m.reply_age?;
        Some((member_state(m.vote?.state), now.checked_sub(age)?))
    });
    match &local.srvr {
        None => reply.map_or(MemberState::Down, |(state, _)| state),
        Some((_, SrvrOutcome::Failed(_))) => MemberState::Down,
        Some((_, SrvrOutcome::NotServing)) => {
            reply.map_or(MemberState::Looking, |(state, _)| state)
        }
        Some((at, SrvrOutcome::Serving(srvr))) => match reply {
            Some((state, replied)) if replied > *at => state,
            _ => match srvr.mode {
                Mode::Leader | Mode::Standalone => MemberState::Leading,
                Mode::Follower => MemberState::Following,
                Mode::Observer => MemberState::Observing,
                Mode::ReadOnly => MemberState::Looking,
            },
        },
    }
}

/// The `/v1/status` document.
pub(crate) fn status(
    myid: Myid,
    role: Role,
    view: &View,
    local: &LocalState,
    now: Instant,
) -> SidecarStatus {
    let own = view
        .members
        .iter()
        .find(|m| m.target.sid == i64::from(myid));
    let voters: Vec<u64> = view.voters.iter().filter_map(|v| sid(*v)).collect();
    let voters_reachable = view
        .members
        .iter()
        .filter(|m| m.reachable && view.voters.contains(&m.target.sid))
        .count();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let serving = local
        .srvr
        .as_ref()
        .map(|(_, s)| matches!(s, SrvrOutcome::Serving(_)));
    let zxid = match &local.srvr {
        Some((_, SrvrOutcome::Serving(srvr))) => Some(format_zxid(srvr.zxid)),
        _ => None,
    };
    let election = match (&view.leader, &view.conclusion) {
        (
            None,
            Conclusion::NoLeader {
                election_round,
                followers_believe,
                ..
            },
        ) => Some(ElectionStatus {
            since: view.election_since.map(|at| rfc3339(at, now)),
            round: *election_round,
            followers_believe: followers_believe.and_then(sid),
        }),
        _ => None,
    };
    SidecarStatus {
        myid: u64::from(myid),
        role,
        state: local_state(local, own, now),
        leader: view.leader.and_then(|l| sid(l.leader)),
        leader_phase: view.leader.map(|l| match l.phase {
            Phase::Elected => LeaderPhase::Elected,
            Phase::Establishing => LeaderPhase::Establishing,
            Phase::Established => LeaderPhase::Established,
        }),
        peer_epoch: view.leader.map(|l| l.peer_epoch),
        election_epoch: own
            .filter(|m| m.reachable)
            .and_then(|m| m.vote)
            .map(|v| v.election_epoch),
        zxid,
        serving,
        quorum: QuorumStatus {
            size: quorum::quorum_size(count(voters.len())),
            voters,
            reachable: count(voters_reachable),
            established: view.leader.is_some(),
        },
        members: view.members.iter().map(member).collect(),
        leader_since: view.leader.map(|l| rfc3339(l.since, now)),
        elections: view.elections,
        leader_changes: view.leader_changes,
        config_version: view.config_version.map(|v| format!("{v:x}")),
        election,
        error: view.stopped.as_ref().map(ToString::to_string),
    }
}

fn member(m: &MemberView) -> MemberStatus {
    let vote = m.vote.filter(|_| m.reachable);
    MemberStatus {
        myid: sid(m.target.sid).unwrap_or(0),
        host: m.target.host.clone(),
        role: m.target.role,
        state: vote.map(|v| member_state(v.state)),
        leader: vote.and_then(|v| sid(v.leader)),
        peer_epoch: vote.map(|v| v.peer_epoch),
        election_epoch: vote.map(|v| v.election_epoch),
        reachable: m.reachable,
        last_reply_age_seconds: m
            .reply_age
            .map(|age| (age.as_secs_f64() * 1000.0).round() / 1000.0),
        error: m.error.clone(),
    }
}

/// `/readyz`: the local member follows, leads or observes, and its server
/// serves client requests. Whether the watcher knows a quorum-backed leader
/// right now does not decide it: a serving follower or leader has one (it
/// stops serving within `syncLimit` ticks of losing it), and the watcher's
/// view goes blank for a moment on every reconfig, when ZooKeeper drops
/// the election connections — a probe failing then would take a serving
/// member out of its Service. The leader is named as a reason only beside
/// another one, to say why the member does not serve.
pub(crate) fn readiness(status: &SidecarStatus) -> Verdict {
    let mut reasons = Vec::new();
    if let Some(error) = &status.error {
        reasons.push(format!("the election watcher stopped: {error}"));
    }
    match status.state {
        MemberState::Down => reasons.push("the local server does not answer".to_owned()),
        state if !state.is_settled() => {
            reasons.push(format!(
                "the local member is {state}, not FOLLOWING, LEADING or OBSERVING"
            ));
        }
        _ => {}
    }
    let serving = status.state.is_settled() && status.serving == Some(true);
    if status.leader.is_none() && !serving {
        let mut why = "no quorum-backed leader is known".to_owned();
        if let Some(election) = &status.election {
            if let Some(round) = election.round {
                why.push_str(&format!(" (an election is running, round {round})"));
            }
            if let Some(believed) = election.followers_believe {
                why.push_str(&format!(
                    " (followers name {believed}, which does not confirm that it leads)"
                ));
            }
        }
        reasons.push(why);
    }
    if status.state != MemberState::Down && status.serving != Some(true) {
        reasons.push("the local server does not serve client requests yet".to_owned());
    }
    Verdict::from_reasons(reasons)
}

/// `/livez`: the loops run, and the local server answers `imok` (after the
/// start-up grace). An election never makes it fail: `ruok` is answered
/// while a member is LOOKING.
pub(crate) fn liveness(shared: &Shared, now: Instant) -> Verdict {
    let mut reasons = Vec::new();
    let stalled = |beat: Instant| now.saturating_duration_since(beat) > LOOP_STALL;
    if stalled(shared.driver_beat) {
        reasons.push("the election watcher's loop has stalled".to_owned());
    }
    if stalled(shared.probe_beat) {
        reasons.push("the local probe's loop has stalled".to_owned());
    }
    let l = shared.liveness;
    let in_grace = now.saturating_duration_since(l.started) < l.startup_grace;
    let answered_within = shared
        .local
        .imok_at
        .is_some_and(|at| now.saturating_duration_since(at) <= l.window);
    if !in_grace && !answered_within {
        let mut why = format!(
            "the local server has not answered ruok with imok for {} s",
            l.window.as_secs()
        );
        if let Some(error) = &shared.local.ruok_error {
            why.push_str(&format!(" ({error})"));
        }
        reasons.push(why);
    }
    Verdict::from_reasons(reasons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use zk_election::watcher::{Leadership, Target, Vote};

    fn view(leader: Option<(i64, i64)>) -> View {
        let now = Instant::now();
        View {
            leader: leader.map(|(leader, peer_epoch)| test_leadership(leader, peer_epoch, now)),
            election_since: None,
            conclusion: Conclusion::NoLeader {
                election_round: Some(4),
                looking_quorum: true,
                looking_peer_epoch: Some(1),
                followers_believe: None,
            },
            members: (1..=3)
                .map(|sid| MemberView {
                    target: Target {
                        sid,
                        host: format!("10.0.0.{sid}"),
                        election_port: 3888,
                        role: Role::Voter,
                    },
                    connected: true,
                    reachable: sid != 2,
                    vote: Some(Vote {
                        state: if sid == 3 {
                            ServerState::Leading
                        } else {
                            ServerState::Following
                        },
                        leader: 3,
                        peer_epoch: 1,
                        election_epoch: 7,
                    }),
                    zxid: Some(0),
                    reply_age: Some(Duration::from_millis(300)),
                    error: (sid == 2).then(|| "no reply".to_owned()),
                })
                .collect(),
            voters: BTreeSet::from([1, 2, 3]),
            config_version: Some(0x1_0000_0000),
            elections: 2,
            leader_changes: 1,
            stopped: None,
        }
    }

    fn test_leadership(leader: i64, peer_epoch: i64, since: Instant) -> Leadership {
        Leadership {
            leader,
            peer_epoch,
            phase: Phase::Established,
            since,
            epoch_before: None,
        }
    }

    fn serving(mode: Mode) -> LocalState {
        LocalState {
            srvr: Some((
                Instant::now() - Duration::from_secs(5),
                SrvrOutcome::Serving(Srvr {
                    version: "3.8.0".into(),
                    mode,
                    zxid: 0x1_0000_0002,
                    outstanding: 0,
                    connections: 1,
                    node_count: 5,
                }),
            )),
            imok_at: Some(Instant::now()),
            ruok_error: None,
        }
    }

    fn myid(n: i64) -> Myid {
        Myid::new(n).unwrap()
    }

    #[test]
    fn a_settled_follower_is_ready_and_reports_the_leader() {
        let s = status(
            myid(1),
            Role::Voter,
            &view(Some((3, 1))),
            &serving(Mode::Follower),
            Instant::now(),
        );
        assert_eq!(s.state, MemberState::Following);
        assert_eq!((s.leader, s.peer_epoch), (Some(3), Some(1)));
        assert_eq!(s.election_epoch, Some(7));
        assert_eq!(s.zxid.as_deref(), Some("0x100000002"));
        assert_eq!(
            s.quorum,
            QuorumStatus {
                size: 2,
                voters: vec![1, 2, 3],
                reachable: 2,
                established: true
            }
        );
        assert_eq!(
            s.members[1].state, None,
            "an unreachable member's state is unknown"
        );
        assert_eq!(s.members[1].error.as_deref(), Some("no reply"));
        assert_eq!(s.config_version.as_deref(), Some("100000000"));
        assert!(s.election.is_none());
        assert_eq!(
            readiness(&s),
            Verdict {
                ok: true,
                reasons: vec![]
            }
        );
    }

    #[test]
    fn readiness_follows_the_local_server_not_the_watchers_view_of_the_leader() {
        // (case, the leader the watcher knows, what srvr says, ready)
        let cases = [
            (
                "follower, leader known",
                Some((3, 1)),
                Some(Mode::Follower),
                true,
            ),
            // A reconfig drops every election connection: the watcher
            // knows no leader for a moment while srvr still serves.
            ("follower, leader unknown", None, Some(Mode::Follower), true),
            ("leader, leader unknown", None, Some(Mode::Leader), true),
            ("observer, leader unknown", None, Some(Mode::Observer), true),
            (
                "read-only, leader unknown",
                None,
                Some(Mode::ReadOnly),
                false,
            ),
            ("not serving, leader known", Some((3, 1)), None, false),
        ];
        for (case, leader, mode, want) in cases {
            let mut v = view(leader);
            // The member's own election reply is older than srvr's answer.
            v.members[0].reachable = false;
            let local = mode.map_or_else(
                || LocalState {
                    srvr: Some((Instant::now(), SrvrOutcome::NotServing)),
                    ..LocalState::default()
                },
                serving,
            );
            let s = status(myid(1), Role::Voter, &v, &local, Instant::now());
            let verdict = readiness(&s);
            assert_eq!(verdict.ok, want, "{case}: {:?}", verdict.reasons);
        }
    }

    #[test]
    fn not_ready_says_why() {
        let local = LocalState {
            srvr: Some((
                Instant::now(),
                SrvrOutcome::Failed("connection refused".into()),
            )),
            ..LocalState::default()
        };
        let s = status(myid(1), Role::Voter, &view(None), &local, Instant::now());
        assert_eq!(s.state, MemberState::Down);
        assert_eq!(s.election.as_ref().and_then(|e| e.round), Some(4));
        let verdict = readiness(&s);
        assert!(!verdict.ok);
        assert_eq!(
            verdict.reasons,
            vec![
                "the local server does not answer".to_owned(),
                "no quorum-backed leader is known (an election is running, round 4)".to_owned(),
            ]
        );
        let looking = LocalState {
            srvr: Some((Instant::now(), SrvrOutcome::NotServing)),
            ..LocalState::default()
        };
        let mut v = view(Some((3, 1)));
        v.members[0].reachable = false;
        let s = status(myid(1), Role::Voter, &v, &looking, Instant::now());
        assert_eq!(s.state, MemberState::Looking);
        assert_eq!(
            readiness(&s).reasons,
            vec![
                "the local member is LOOKING, not FOLLOWING, LEADING or OBSERVING".to_owned(),
                "the local server does not serve client requests yet".to_owned()
            ]
        );
    }

    #[test]
    fn a_newer_election_reply_beats_an_older_srvr() {
        let mut v = view(None);
        v.members[0].vote = Some(Vote {
            state: ServerState::Looking,
            leader: 3,
            peer_epoch: 1,
            election_epoch: 8,
        });
        // srvr said follower 5 s ago; the member said LOOKING 0.3 s ago.
        let s = status(
            myid(1),
            Role::Voter,
            &v,
            &serving(Mode::Follower),
            Instant::now(),
        );
        assert_eq!(s.state, MemberState::Looking);
        // An older reply does not override a newer srvr.
        v.members[0].reply_age = Some(Duration::from_secs(9));
        let s = status(
            myid(1),
            Role::Voter,
            &v,
            &serving(Mode::Follower),
            Instant::now(),
        );
        assert_eq!(s.state, MemberState::Following);
    }

    #[test]
    fn liveness_has_a_grace_and_ignores_elections() {
        let now = Instant::now();
        let config = zk_election::watcher::WatcherConfig::new(myid(1), None);
        let initial =
            zk_election::config::QuorumConfig::parse(b"server.1=127.0.0.1:2888:3888:participant")
                .unwrap();
        let watcher = Watcher::new(config, &initial, now).unwrap();
        let liveness = Liveness {
            started: now,
            startup_grace: Duration::from_secs(60),
            window: Duration::from_secs(30),
        };
        let mut shared = Shared::new(myid(1), Role::Voter, watcher, liveness);
        assert!(
            super::liveness(&shared, now + Duration::from_secs(10)).ok,
            "in the grace"
        );
        let later = now + Duration::from_secs(61);
        shared.driver_beat = later;
        shared.probe_beat = later;
        shared.local.ruok_error = Some("connection refused".into());
        let verdict = super::liveness(&shared, later);
        assert_eq!(
            verdict.reasons,
            vec![
                "the local server has not answered ruok with imok for 30 s (connection refused)"
                    .to_owned()
            ]
        );
        // LOOKING, no leader, but imok: alive.
        shared.local.imok_at = Some(later);
        shared.local.srvr = Some((later, SrvrOutcome::NotServing));
        assert!(super::liveness(&shared, later).ok);
        let stalled = later + Duration::from_secs(20);
        shared.local.imok_at = Some(stalled);
        assert_eq!(
            super::liveness(&shared, stalled).reasons,
            vec![
                "the election watcher's loop has stalled".to_owned(),
                "the local probe's loop has stalled".to_owned()
            ]
        );
    }
}
