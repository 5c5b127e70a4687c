//! What `local up` and `local status` show: every member's state as the
//! sidecars' `/v1/status` documents report it (the documents, and the
//! leader rule, the operator uses for a cluster's status), together with
//! what `local` knows of its processes; as a table for people and as JSON
//! for scripts. Pure: the caller reads the sidecars and `/proc`.

use std::collections::BTreeMap;

use serde::Serialize;
use zk_ensemble::status::LeaderPhase;
use zk_ensemble::{MemberState, Myid, Role, SidecarStatus};

use super::plan::metrics_url;
use super::process::Liveness;
use super::state::LocalState;
use crate::status::{quorum_leader, seen_by_others};

/// The whole ensemble (`local status -o json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalView {
    pub cluster: String,
    pub namespace: String,
    /// The quorum-backed leader's myid, `null` while none is known.
    pub leader: Option<u64>,
    /// Its name (`zk-1`).
    pub leader_name: Option<String>,
    /// The epoch it leads in.
    pub peer_epoch: Option<i64>,
    pub members: Vec<MemberView>,
}

/// One member.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub myid: u64,
    pub name: String,
    pub role: Role,
    /// LOOKING, FOLLOWING, LEADING, OBSERVING, or DOWN; `null` when nobody
    /// can tell.
    pub state: Option<MemberState>,
    /// The leader its sidecar reports.
    pub leader: Option<u64>,
    /// How far that leader has come (`elected` in the epoch of its
    /// election, then `established` in the new epoch it leads in).
    pub leader_phase: Option<LeaderPhase>,
    pub peer_epoch: Option<i64>,
    /// Whether its server serves client requests (`srvr` answers with a
    /// mode), as its sidecar last saw; `null` when unknown.
    pub serving: Option<bool>,
    /// Where clients connect (`host:port`).
    pub client: String,
    pub metrics: String,
    pub server: ProcessView,
    pub sidecar: SidecarView,
    /// Why its sidecar could not be read, when it could not.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessView {
    pub pid: Option<u32>,
    /// `running`, `paused`, `exited`, or `stopped` (by `local down`, or never started).
    pub process: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarView {
    /// Where it serves `/livez`, `/readyz`, `/v1/status` and `/metrics`.
    pub address: String,
    pub pid: Option<u32>,
    pub process: &'static str,
}

/// What `local` knows of a member's two processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Processes {
    pub server: Option<(u32, Liveness)>,
    pub sidecar: Option<(u32, Liveness)>,
}

fn process_word(process: Option<(u32, Liveness)>) -> &'static str {
    process.map_or("stopped", |(_, l)| l.as_str())
}

/// Puts the state file, the processes and the sidecars' documents together.
pub fn view(
    state: &LocalState,
    processes: &BTreeMap<Myid, Processes>,
    readings: &BTreeMap<Myid, Result<SidecarStatus, String>>,
) -> LocalView {
    let answered: Vec<&SidecarStatus> = readings.values().filter_map(|r| r.as_ref().ok()).collect();
    let leader = quorum_leader(&answered);
    let members = state
        .members
        .iter()
        .map(|m| {
            let procs = processes.get(&m.myid).copied().unwrap_or_default();
            let own = readings.get(&m.myid);
            let server_up = procs.server.is_some_and(|(_, l)| l.is_alive());
            let state = match own {
                // What we know for certain beats what anyone reports.
                _ if !server_up => Some(MemberState::Down),
                Some(Ok(status)) => Some(status.state),
                _ => seen_by_others(m.myid, &answered),
            };
            let status = own.and_then(|r| r.as_ref().ok());
            MemberView {
                myid: u64::from(m.myid),
                name: m.name.clone(),
                role: m.role,
                state,
                leader: status.and_then(|s| s.leader),
                leader_phase: status.and_then(|s| s.leader_phase),
                peer_epoch: status.and_then(|s| s.peer_epoch),
                serving: status.and_then(|s| s.serving),
                client: m.client.to_string(),
                metrics: metrics_url(m.sidecar),
                server: ProcessView {
                    pid: procs.server.map(|(pid, _)| pid),
                    process: process_word(procs.server),
                },
                sidecar: SidecarView {
                    address: m.sidecar.to_string(),
                    pid: procs.sidecar.map(|(pid, _)| pid),
                    process: process_word(procs.sidecar),
                },
                error: own.and_then(|r| r.as_ref().err().cloned()),
            }
        })
        .collect();
    LocalView {
        cluster: state.cluster.clone(),
        namespace: state.namespace.clone(),
        leader: leader.map(|l| u64::from(l.myid)),
        leader_name: leader.and_then(|l| {
            state
                .members
                .iter()
                .find(|m| m.myid == l.myid)
                .map(|m| m.name.clone())
        }),
        peer_epoch: leader.and_then(|l| l.peer_epoch),
        members,
    }
}

impl LocalView {
    /// One line: who leads, and how many voters serve.
    pub fn headline(&self) -> String {
        let voters: Vec<&MemberView> = self
            .members
            .iter()
            .filter(|m| m.role == Role::Voter)
            .collect();
        let serving = voters.iter().filter(|m| serves(m)).count();
        let leader = match (&self.leader_name, self.leader) {
            (Some(name), Some(myid)) => format!(
                "leader {name} (myid {myid}){}",
                self.peer_epoch
                    .map(|e| format!(" in peer epoch {e}"))
                    .unwrap_or_default()
            ),
            _ => "no quorum-backed leader known".to_owned(),
        };
        format!(
            "{}: {leader}; {serving} of {} voters serving",
            self.cluster,
            voters.len()
        )
    }

    /// The member table: member, myid, role, state, leader, epoch, client
    /// address, metrics URL.
    pub fn table(&self) -> String {
        let dash = || "-".to_owned();
        let mut rows = vec![
            [
                "MEMBER", "MYID", "ROLE", "STATE", "LEADER", "EPOCH", "CLIENT", "METRICS",
            ]
            .map(str::to_owned)
            .to_vec(),
        ];
        for m in &self.members {
            rows.push(vec![
                m.name.clone(),
                m.myid.to_string(),
                m.role.to_string(),
                state_words(m),
                m.leader.map_or_else(dash, |l| l.to_string()),
                m.peer_epoch.map_or_else(dash, |e| e.to_string()),
                m.client.clone(),
                m.metrics.clone(),
            ]);
        }
        columns(&rows)
    }

    /// A short line for progress while `up` waits: each member's state.
    pub fn progress(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let state = match m.state {
                    Some(MemberState::Down) | None => "starting".to_owned(),
                    Some(state) => state.to_string(),
                };
                format!("{} {state}", m.name)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether a quorum-backed leader is known and every member whose
    /// server runs serves clients, is settled, and reports that leader in
    /// its epoch.
    pub fn agreed(&self) -> bool {
        self.leader.is_some()
            && self
                .members
                .iter()
                .filter(|m| m.server.process == "running")
                .all(|m| self.agrees(m))
    }

    /// Whether member `myid` has rejoined: a quorum-backed leader is known
    /// and the member serves clients, is settled, and reports that leader in
    /// its epoch. A restarted member's sidecar can still hold the vote from
    /// before the crash (`LEADING`, the old epoch) until the server speaks
    /// again; that is not a rejoin.
    pub fn rejoined(&self, myid: Myid) -> bool {
        self.leader.is_some() && self.member(myid).is_some_and(|m| self.agrees(m))
    }

    /// Whether a member is settled, serving, and follows (or is) the
    /// quorum-backed leader in its epoch, established: right after an
    /// election the votes still carry the epoch the election was held in
    /// (0 on a new ensemble) until the leader's new epoch reaches them.
    fn agrees(&self, m: &MemberView) -> bool {
        let leads = m.state == Some(MemberState::Leading);
        m.leader_phase == Some(LeaderPhase::Established)
            && m.state.is_some_and(MemberState::is_settled)
            && m.serving == Some(true)
            && m.leader == self.leader
            && m.peer_epoch == self.peer_epoch
            && leads == (self.leader == Some(m.myid))
    }

    /// A member's view by myid.
    pub fn member(&self, myid: Myid) -> Option<&MemberView> {
        self.members.iter().find(|m| m.myid == u64::from(myid))
    }
}

/// Whether a member serves: it follows, leads or observes, and its sidecar
/// does not say its server refuses clients (a member on a full volume
/// follows between failed syncs, never serving).
fn serves(m: &MemberView) -> bool {
    m.state.is_some_and(MemberState::is_settled) && m.serving != Some(false)
}

/// The STATE cell: the state, and why a member is down or does not serve
/// when `local` knows.
fn state_words(m: &MemberView) -> String {
    let state = m.state.map_or_else(|| "?".to_owned(), |s| s.to_string());
    match m.server.process {
        "running" if m.state.is_some_and(MemberState::is_settled) && !serves(m) => {
            format!("{state} (not serving)")
        }
        "running" => state,
        why => format!("{state} ({why})"),
    }
}

/// Left-aligned columns, two spaces apart, no trailing spaces.
fn columns(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            line.join("  ").trim_end().to_owned() + "\n"
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use zk_ensemble::status::{MemberStatus, QuorumStatus};

    use super::*;

    fn state() -> LocalState {
        crate::local::state::three_voters()
    }

    fn id(n: i64) -> Myid {
        Myid::new(n).unwrap()
    }

    fn status(myid: u64, state: MemberState, leader: Option<u64>, epoch: i64) -> SidecarStatus {
        SidecarStatus {
            myid,
            role: Role::Voter,
            state,
            leader,
            leader_phase: Some(LeaderPhase::Established),
            peer_epoch: Some(epoch),
            election_epoch: Some(1),
            zxid: None,
            serving: Some(true),
            quorum: QuorumStatus::default(),
            members: Vec::new(),
            leader_since: None,
            elections: 1,
            leader_changes: 1,
            config_version: None,
            election: None,
            error: None,
        }
    }

    fn running(pid: u32) -> Processes {
        Processes {
            server: Some((pid, Liveness::Running)),
            sidecar: Some((pid + 100, Liveness::Running)),
        }
    }

    #[test]
    fn a_healthy_ensemble_names_its_leader_in_table_and_json() {
        let processes = (1..=3).map(|n| (id(n), running(n as u32))).collect();
        let readings = BTreeMap::from([
            (id(1), Ok(status(1, MemberState::Following, Some(3), 1))),
            (id(2), Ok(status(2, MemberState::Following, Some(3), 1))),
            (id(3), Ok(status(3, MemberState::Leading, Some(3), 1))),
        ]);
        let view = view(&state(), &processes, &readings);
        assert_eq!(view.leader, Some(3));
        assert_eq!(
            view.headline(),
            "zk: leader zk-2 (myid 3) in peer epoch 1; 3 of 3 voters serving"
        );
        assert_eq!(
            view.table(),
            "\
MEMBER  MYID  ROLE   STATE      LEADER  EPOCH  CLIENT          METRICS
zk-0    1     voter  FOLLOWING  3       1      127.0.0.2:2181  http://127.0.0.2:8081/metrics
zk-1    2     voter  FOLLOWING  3       1      127.0.0.3:2181  http://127.0.0.3:8081/metrics
zk-2    3     voter  LEADING    3       1      127.0.0.4:2181  http://127.0.0.4:8081/metrics
"
        );
        assert!(view.agreed());
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["leader"], 3);
        assert_eq!(json["members"][0]["client"], "127.0.0.2:2181");
        assert_eq!(json["members"][0]["state"], "FOLLOWING");
        assert_eq!(json["members"][0]["role"], "voter");
        assert_eq!(json["members"][2]["server"]["pid"], 3);
        assert_eq!(json["members"][2]["sidecar"]["process"], "running");
    }

    #[test]
    fn a_killed_leader_is_down_and_the_newest_leadership_wins() {
        let mut processes: BTreeMap<Myid, Processes> =
            (1..=3).map(|n| (id(n), running(n as u32))).collect();
        processes.insert(
            id(3),
            Processes {
                server: Some((3, Liveness::Exited)),
                sidecar: Some((103, Liveness::Running)),
            },
        );
        let mut stale = status(3, MemberState::Leading, Some(3), 1);
        stale.state = MemberState::Down;
        let readings = BTreeMap::from([
            (id(1), Ok(status(1, MemberState::Following, Some(2), 2))),
            (id(2), Ok(status(2, MemberState::Leading, Some(2), 2))),
            (id(3), Ok(stale)),
        ]);
        let view = view(&state(), &processes, &readings);
        assert_eq!(view.leader, Some(2));
        assert_eq!(view.peer_epoch, Some(2));
        let row = view.table().lines().nth(3).unwrap().to_owned();
        assert!(
            row.starts_with("zk-2    3     voter  DOWN (exited)"),
            "{row}"
        );
        assert_eq!(view.member(id(3)).unwrap().server.process, "exited");
        // The dead member does not hold up agreement; a lagging one does.
        assert!(view.agreed());
        let mut lagging = readings.clone();
        lagging.insert(id(1), Ok(status(1, MemberState::Following, Some(2), 1)));
        assert!(!super::view(&state(), &processes, &lagging).agreed());
        let mut syncing = status(2, MemberState::Leading, Some(2), 2);
        syncing.serving = Some(false);
        let mut not_serving = readings.clone();
        not_serving.insert(id(2), Ok(syncing));
        assert!(!super::view(&state(), &processes, &not_serving).agreed());
        assert_eq!(
            view.headline(),
            "zk: leader zk-1 (myid 2) in peer epoch 2; 2 of 3 voters serving"
        );
    }

    #[test]
    fn a_restarted_member_has_rejoined_only_when_it_serves_under_the_new_leader() {
        let processes = (1..=3).map(|n| (id(n), running(n as u32))).collect();
        let leader_two = |own: SidecarStatus| {
            BTreeMap::from([
                (id(1), Ok(status(1, MemberState::Following, Some(2), 2))),
                (id(2), Ok(status(2, MemberState::Leading, Some(2), 2))),
                (id(3), Ok(own)),
            ])
        };
        let mut pre_crash = status(3, MemberState::Leading, Some(2), 2);
        pre_crash.serving = Some(false);
        let mut syncing = status(3, MemberState::Following, Some(2), 2);
        syncing.serving = Some(false);
        let cases = [
            (
                "follows the new leader and serves",
                status(3, MemberState::Following, Some(2), 2),
                true,
            ),
            ("the vote from before the crash", pre_crash, false),
            ("still syncing", syncing, false),
            (
                "still looking",
                status(3, MemberState::Looking, None, 2),
                false,
            ),
            (
                "an older epoch",
                status(3, MemberState::Following, Some(2), 1),
                false,
            ),
            (
                "claims to lead beside the leader",
                status(3, MemberState::Leading, Some(2), 2),
                false,
            ),
        ];
        for (case, own, want) in cases {
            let view = view(&state(), &processes, &leader_two(own));
            assert_eq!(view.leader, Some(2), "{case}");
            assert_eq!(view.rejoined(id(3)), want, "{case}");
        }
    }

    #[test]
    fn a_new_ensemble_agrees_only_once_its_leaders_new_epoch_is_established() {
        // Right after the first election every vote says epoch 0; the
        // leader's epoch 1 reaches the sidecars a moment later. The table
        // `up` prints waits for that (it showed EPOCH 0, `status` 1).
        let processes = (1..=3).map(|n| (id(n), running(n as u32))).collect();
        let readings = |phase: LeaderPhase, epoch: i64| {
            BTreeMap::from_iter((1..=3).map(|n| {
                let state = if n == 3 {
                    MemberState::Leading
                } else {
                    MemberState::Following
                };
                let mut s = status(n, state, Some(3), epoch);
                s.leader_phase = Some(phase);
                (id(n as i64), Ok(s))
            }))
        };
        for (phase, epoch, agreed) in [
            (LeaderPhase::Elected, 0, false),
            (LeaderPhase::Establishing, 1, false),
            (LeaderPhase::Established, 1, true),
        ] {
            let view = view(&state(), &processes, &readings(phase, epoch));
            assert_eq!(view.agreed(), agreed, "{phase:?} in epoch {epoch}");
        }
    }

    #[test]
    fn a_silent_sidecar_leaves_the_state_to_the_other_watchers() {
        let processes = (1..=3).map(|n| (id(n), running(n as u32))).collect();
        let mut one = status(1, MemberState::Following, Some(3), 1);
        one.members.push(MemberStatus {
            myid: 2,
            host: "127.0.0.3".into(),
            role: Role::Voter,
            state: Some(MemberState::Following),
            leader: Some(3),
            peer_epoch: Some(1),
            election_epoch: Some(1),
            reachable: true,
            last_reply_age_seconds: Some(0.5),
            error: None,
        });
        let readings = BTreeMap::from([
            (id(1), Ok(one)),
            (id(2), Err("cannot connect: refused".to_owned())),
        ]);
        let view = view(&state(), &processes, &readings);
        let two = view.member(id(2)).unwrap();
        assert_eq!(two.state, Some(MemberState::Following));
        assert_eq!(two.error.as_deref(), Some("cannot connect: refused"));
        assert_eq!(view.member(id(3)).unwrap().state, None);
        assert_eq!(
            view.progress(),
            "zk-0 FOLLOWING, zk-1 FOLLOWING, zk-2 starting"
        );
    }

    #[test]
    fn a_member_that_follows_but_does_not_serve_is_not_counted_and_says_so() {
        // A member on a full volume: between failed syncs it follows, and
        // its sidecar says its server refuses clients.
        let processes = (1..=3).map(|n| (id(n), running(n as u32))).collect();
        let mut full = status(1, MemberState::Following, Some(3), 1);
        full.serving = Some(false);
        let readings = BTreeMap::from([
            (id(1), Ok(full)),
            (id(2), Ok(status(2, MemberState::Following, Some(3), 1))),
            (id(3), Ok(status(3, MemberState::Leading, Some(3), 1))),
        ]);
        let view = view(&state(), &processes, &readings);
        assert_eq!(
            view.headline(),
            "zk: leader zk-2 (myid 3) in peer epoch 1; 2 of 3 voters serving"
        );
        let table = view.table();
        let row = table.lines().nth(1).unwrap();
        assert!(
            row.starts_with("zk-0    1     voter  FOLLOWING (not serving)  3"),
            "{table}"
        );
        assert!(
            table.lines().nth(2).unwrap().contains("  FOLLOWING  "),
            "{table}"
        );
    }

    #[test]
    fn a_stopped_ensemble_shows_every_member_down() {
        let view = view(&state(), &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(view.leader, None);
        assert!(view.headline().contains("no quorum-backed leader known"));
        assert!(view.table().contains("DOWN (stopped)"), "{}", view.table());
    }
}
