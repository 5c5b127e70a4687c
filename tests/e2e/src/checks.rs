//! The suite's decisions, as pure functions of what it read: does the
//! cluster's status agree with every sidecar, do the pods carry the right
//! `zookube.io/role`, does every sidecar see the same voters, and were any
//! acknowledged writes lost. Each returns the reason when the answer is no,
//! which is what a failing poll prints as "last seen".

use std::collections::BTreeMap;

use zk_ensemble::identity::{self, Myid};
use zk_ensemble::{MemberState, Role, SidecarStatus};
use zk_operator::build::labels::RoleLabel;
use zk_operator::crd::ZookeeperClusterStatus;
use zk_process::fourlw::{Mode, Srvr};

/// The quorum-backed leader that the status and every sidecar agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    pub myid: u64,
    pub pod: String,
    pub peer_epoch: i64,
}

/// The members a spec asks for: pod name and myid, voters then observers.
pub fn expected_members(
    cluster: &str,
    voters: u32,
    observers: u32,
) -> Result<Vec<(String, Myid)>, String> {
    let voters = (0..voters).map(|ordinal| (Role::Voter, ordinal));
    let observers = (0..observers).map(|ordinal| (Role::Observer, ordinal));
    voters
        .chain(observers)
        .map(|(role, ordinal)| {
            Myid::for_ordinal(role, ordinal)
                .map(|myid| (identity::pod_name(cluster, myid), myid))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// `status.leader` and `status.peerEpoch` are set, and every sidecar reports
/// the same leader and peer epoch; each sidecar is the member its pod name
/// says (myid by the identity rule) and is LEADING, FOLLOWING or OBSERVING
/// as its role and the leader say.
pub fn status_agrees_with_sidecars(
    cluster: &str,
    status: &ZookeeperClusterStatus,
    sidecars: &BTreeMap<String, SidecarStatus>,
) -> Result<Leadership, String> {
    let leader = status.leader.as_ref().ok_or("status.leader is not set")?;
    let peer_epoch = status.peer_epoch.ok_or("status.peerEpoch is not set")?;
    let leader_myid = u64::try_from(leader.myid)
        .map_err(|_| format!("status.leader.myid {} is negative", leader.myid))?;
    if !sidecars.contains_key(&leader.pod) {
        return Err(format!(
            "status.leader.pod {} is not a member pod",
            leader.pod
        ));
    }
    for (pod, sidecar) in sidecars {
        let myid = Myid::try_from(sidecar.myid)
            .map_err(|e| format!("{pod}: the sidecar reports myid {}: {e}", sidecar.myid))?;
        let own_pod = identity::pod_name(cluster, myid);
        if &own_pod != pod {
            return Err(format!(
                "{pod}: the sidecar reports myid {}, which is pod {own_pod}",
                sidecar.myid
            ));
        }
        if sidecar.leader != Some(leader_myid) || sidecar.peer_epoch != Some(peer_epoch) {
            return Err(format!(
                "{pod}: the sidecar reports leader {:?} in peer epoch {:?}; the status says {leader_myid} ({}) in {peer_epoch}",
                sidecar.leader, sidecar.peer_epoch, leader.pod
            ));
        }
        let expected = if *pod == leader.pod {
            MemberState::Leading
        } else if myid.role() == Role::Observer {
            MemberState::Observing
        } else {
            MemberState::Following
        };
        if sidecar.state != expected {
            return Err(format!(
                "{pod}: the sidecar reports {}, expected {expected}",
                sidecar.state
            ));
        }
    }
    Ok(Leadership {
        myid: leader_myid,
        pod: leader.pod.clone(),
        peer_epoch,
    })
}

/// The `zookube.io/role` each pod should carry.
pub fn expected_role_label(cluster: &str, pod: &str, leader_pod: &str) -> RoleLabel {
    if pod == leader_pod {
        RoleLabel::Leader
    } else if pod.starts_with(&format!(
        "{}-",
        identity::statefulset_name(cluster, Role::Observer)
    )) {
        RoleLabel::Observer
    } else {
        RoleLabel::Follower
    }
}

/// Only the leader's pod is labelled `leader`; voters `follower`, observers
/// `observer`. `pods` maps each pod to its `zookube.io/role` label.
pub fn role_labels_match(
    cluster: &str,
    leader_pod: &str,
    pods: &BTreeMap<String, Option<String>>,
) -> Result<(), String> {
    for (pod, label) in pods {
        let expected = expected_role_label(cluster, pod, leader_pod).as_str();
        if label.as_deref() != Some(expected) {
            return Err(format!(
                "{pod} is labelled zookube.io/role={}, expected {expected}",
                label.as_deref().unwrap_or("<none>")
            ));
        }
    }
    Ok(())
}

/// Every sidecar sees exactly these voters (from the newest committed
/// config): after a scale, the ensemble's own membership has changed too,
/// not just the number of pods.
pub fn voters_agree(
    sidecars: &BTreeMap<String, SidecarStatus>,
    expected: &[u64],
) -> Result<(), String> {
    for (pod, sidecar) in sidecars {
        let mut voters = sidecar.quorum.voters.clone();
        voters.sort_unstable();
        if voters != expected {
            return Err(format!(
                "{pod}: the sidecar sees voters {voters:?}, expected {expected:?}"
            ));
        }
    }
    Ok(())
}

/// The voter sets one sidecar reported over a change, in order: each set
/// must differ from the one before by exactly one voter — a `reconfig`
/// adds or removes one member at a time. Repeats and empty sets (no
/// committed config known while a reconfig reconnects) are skipped.
/// Returns the distinct sets.
pub fn one_voter_at_a_time(seen: &[Vec<u64>]) -> Result<Vec<Vec<u64>>, String> {
    let mut steps: Vec<Vec<u64>> = Vec::new();
    for set in seen.iter().filter(|s| !s.is_empty()) {
        let mut set = set.clone();
        set.sort_unstable();
        set.dedup();
        if steps.last() == Some(&set) {
            continue;
        }
        if let Some(last) = steps.last() {
            let added = set.iter().filter(|v| !last.contains(v)).count();
            let removed = last.iter().filter(|v| !set.contains(v)).count();
            if added + removed != 1 {
                return Err(format!(
                    "the voters went from {last:?} to {set:?}: not one member at a time (all seen: {steps:?})"
                ));
            }
        }
        steps.push(set);
    }
    Ok(steps)
}

/// One write attempt of the writer pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The znode's name under the writer's root.
    pub name: String,
    /// When the attempt ended, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// The writer pod's log: writes ZooKeeper acknowledged, and attempts that
/// failed (which may or may not have been applied).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteLog {
    pub acked: Vec<Write>,
    pub failed: Vec<Write>,
}

/// Reads the writer's `ACK <name> <ms>` and `FAIL <name> <ms>` lines
/// (see `zkcli::WRITER_SCRIPT`); other lines are ignored.
pub fn parse_write_log(text: &str) -> WriteLog {
    let mut log = WriteLog::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(kind), Some(name), Some(at), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let Ok(at_ms) = at.parse() else { continue };
        let write = Write {
            name: name.to_owned(),
            at_ms,
        };
        match kind {
            "ACK" => log.acked.push(write),
            "FAIL" => log.failed.push(write),
            _ => {}
        }
    }
    log
}

/// Acknowledged writes whose znode is not among `present`.
pub fn lost_writes(acked: &[Write], present: &[String]) -> Vec<String> {
    acked
        .iter()
        .filter(|write| !present.contains(&write.name))
        .map(|write| write.name.clone())
        .collect()
}

/// The longest time without an acknowledged write that overlaps the window
/// `[from_ms, to_ms]`, in milliseconds; `None` unless writes were
/// acknowledged both before (or at) `from_ms` and after (or at) `to_ms`, so
/// that the window is covered end to end.
pub fn longest_gap(acked: &[Write], from_ms: u64, to_ms: u64) -> Option<u64> {
    let mut times: Vec<u64> = acked.iter().map(|write| write.at_ms).collect();
    times.sort_unstable();
    let first = *times.first()?;
    let last = *times.last()?;
    if first > from_ms || last < to_ms {
        return None;
    }
    times
        .windows(2)
        .filter(|pair| pair[1] >= from_ms && pair[0] <= to_ms)
        .map(|pair| pair[1] - pair[0])
        .max()
        .or(Some(0))
}

/// The children `zkCli.sh ls` printed: its last line of the form `[a, b]`.
pub fn parse_ls(output: &str) -> Option<Vec<String>> {
    let list = output
        .lines()
        .map(str::trim)
        .rfind(|line| line.starts_with('[') && line.ends_with(']'))?;
    let inner = &list[1..list.len() - 1];
    Some(
        inner
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// What ZooKeeper itself says inside every member pod (`srvr`) agrees with
/// the leadership the status and the sidecars agree on: the leader's pod
/// says `Mode: leader` and its zxid is in the peer epoch; every other voter
/// says `follower`, every observer `observer`.
pub fn srvr_agrees(
    leadership: &Leadership,
    srvrs: &BTreeMap<String, (Role, Srvr)>,
) -> Result<(), String> {
    if !srvrs.contains_key(&leadership.pod) {
        return Err(format!("no srvr answer from the leader {}", leadership.pod));
    }
    for (pod, (role, srvr)) in srvrs {
        let expected = if *pod == leadership.pod {
            Mode::Leader
        } else if *role == Role::Observer {
            Mode::Observer
        } else {
            Mode::Follower
        };
        if srvr.mode != expected {
            return Err(format!(
                "{pod}: srvr says Mode {:?}, expected {expected:?} (leader {})",
                srvr.mode, leadership.pod
            ));
        }
    }
    let (_, leader) = &srvrs[&leadership.pod];
    let epoch = leader.zxid >> 32;
    if epoch != leadership.peer_epoch {
        return Err(format!(
            "{}: srvr's zxid {:#x} is in epoch {epoch}; the status says peer epoch {}",
            leadership.pod, leader.zxid, leadership.peer_epoch
        ));
    }
    Ok(())
}

/// The leader a scraped `/metrics` page reports (`zookube_leader_myid N`),
/// when the HTTP answer was a 200.
pub fn scraped_leader(page: &str) -> Option<u64> {
    let status = page.lines().next()?;
    if !(status.starts_with("HTTP/1.") && status.contains(" 200")) {
        return None;
    }
    page.lines().find_map(|line| {
        line.strip_prefix("zookube_leader_myid ")?
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zk_ensemble::status::QuorumStatus;
    use zk_operator::crd::LeaderStatus;

    fn sidecar(myid: u64, state: MemberState, leader: u64, epoch: i64) -> SidecarStatus {
        SidecarStatus {
            myid,
            role: if myid >= 128 {
                Role::Observer
            } else {
                Role::Voter
            },
            state,
            leader: Some(leader),
            leader_phase: None,
            peer_epoch: Some(epoch),
            election_epoch: Some(1),
            zxid: None,
            serving: Some(true),
            quorum: QuorumStatus {
                size: 2,
                voters: vec![1, 2, 3],
                reachable: 3,
                established: true,
            },
            members: vec![],
            leader_since: None,
            elections: 1,
            leader_changes: 1,
            config_version: None,
            election: None,
            error: None,
        }
    }

    fn status(leader: i64, epoch: i64) -> ZookeeperClusterStatus {
        ZookeeperClusterStatus {
            leader: Some(LeaderStatus {
                myid: leader,
                pod: format!("zk-{}", leader - 1),
            }),
            peer_epoch: Some(epoch),
            ..Default::default()
        }
    }

    fn healthy() -> BTreeMap<String, SidecarStatus> {
        BTreeMap::from([
            ("zk-0".to_owned(), sidecar(1, MemberState::Following, 2, 3)),
            ("zk-1".to_owned(), sidecar(2, MemberState::Leading, 2, 3)),
            ("zk-2".to_owned(), sidecar(3, MemberState::Following, 2, 3)),
            (
                "zk-observer-0".to_owned(),
                sidecar(128, MemberState::Observing, 2, 3),
            ),
        ])
    }

    #[test]
    fn members_follow_the_identity_rule() {
        let members = expected_members("zk", 3, 1).unwrap();
        let names: Vec<(&str, u8)> = members.iter().map(|(p, m)| (p.as_str(), m.get())).collect();
        assert_eq!(
            names,
            [
                ("zk-0", 1),
                ("zk-1", 2),
                ("zk-2", 3),
                ("zk-observer-0", 128)
            ]
        );
    }

    #[test]
    fn an_agreeing_ensemble_names_its_leader() {
        let leadership = status_agrees_with_sidecars("zk", &status(2, 3), &healthy()).unwrap();
        assert_eq!(
            leadership,
            Leadership {
                myid: 2,
                pod: "zk-1".to_owned(),
                peer_epoch: 3
            }
        );
    }

    #[test]
    fn a_status_without_leader_or_epoch_disagrees() {
        let mut no_leader = status(2, 3);
        no_leader.leader = None;
        let err = status_agrees_with_sidecars("zk", &no_leader, &healthy()).unwrap_err();
        assert!(err.contains("status.leader"), "{err}");
        let mut no_epoch = status(2, 3);
        no_epoch.peer_epoch = None;
        let err = status_agrees_with_sidecars("zk", &no_epoch, &healthy()).unwrap_err();
        assert!(err.contains("status.peerEpoch"), "{err}");
    }

    #[test]
    fn a_sidecar_with_another_epoch_or_leader_disagrees() {
        let mut sidecars = healthy();
        sidecars.get_mut("zk-2").unwrap().peer_epoch = Some(2);
        let err = status_agrees_with_sidecars("zk", &status(2, 3), &sidecars).unwrap_err();
        assert!(err.starts_with("zk-2:"), "{err}");

        let err = status_agrees_with_sidecars("zk", &status(3, 3), &healthy()).unwrap_err();
        assert!(err.contains("the status says 3 (zk-2)"), "{err}");
    }

    #[test]
    fn a_sidecar_in_the_wrong_pod_or_state_disagrees() {
        let mut swapped = healthy();
        swapped.get_mut("zk-0").unwrap().myid = 3;
        let err = status_agrees_with_sidecars("zk", &status(2, 3), &swapped).unwrap_err();
        assert!(err.contains("which is pod zk-2"), "{err}");

        let mut looking = healthy();
        looking.get_mut("zk-1").unwrap().state = MemberState::Following;
        let err = status_agrees_with_sidecars("zk", &status(2, 3), &looking).unwrap_err();
        assert!(err.contains("expected LEADING"), "{err}");
    }

    #[test]
    fn role_labels_name_one_leader() {
        let labels = |leader: &str| {
            BTreeMap::from([
                ("zk-0".to_owned(), Some("follower".to_owned())),
                ("zk-1".to_owned(), Some(leader.to_owned())),
                ("zk-2".to_owned(), Some("follower".to_owned())),
                ("zk-observer-0".to_owned(), Some("observer".to_owned())),
            ])
        };
        assert_eq!(role_labels_match("zk", "zk-1", &labels("leader")), Ok(()));
        let err = role_labels_match("zk", "zk-1", &labels("follower")).unwrap_err();
        assert_eq!(
            err,
            "zk-1 is labelled zookube.io/role=follower, expected leader"
        );
        let err = role_labels_match("zk", "zk-0", &labels("leader")).unwrap_err();
        assert!(err.starts_with("zk-0"), "{err}");
        let mut unlabelled = labels("leader");
        unlabelled.insert("zk-2".to_owned(), None);
        let err = role_labels_match("zk", "zk-1", &unlabelled).unwrap_err();
        assert!(err.contains("<none>"), "{err}");
    }

    #[test]
    fn voters_must_match_on_every_sidecar() {
        assert_eq!(voters_agree(&healthy(), &[1, 2, 3]), Ok(()));
        let err = voters_agree(&healthy(), &[1, 2, 3, 4, 5]).unwrap_err();
        assert!(err.contains("expected [1, 2, 3, 4, 5]"), "{err}");
    }

    #[test]
    fn the_write_log_separates_acknowledged_and_failed_writes() {
        let log = parse_write_log(
            "ACK w1 1000\nsome noise\nFAIL w2 2500\nACK w3 4000\nACK w4\nACK w5 x\n",
        );
        assert_eq!(
            log.acked,
            [
                Write {
                    name: "w1".into(),
                    at_ms: 1000
                },
                Write {
                    name: "w3".into(),
                    at_ms: 4000
                }
            ]
        );
        assert_eq!(log.failed.len(), 1);
        assert_eq!(
            lost_writes(&log.acked, &["w3".to_owned(), "w2".to_owned()]),
            ["w1"]
        );
    }

    #[test]
    fn the_longest_gap_covers_the_whole_window() {
        let at = |ms: &[u64]| -> Vec<Write> {
            ms.iter()
                .map(|&at_ms| Write {
                    name: format!("w{at_ms}"),
                    at_ms,
                })
                .collect()
        };
        let writes = at(&[0, 1_000, 2_000, 9_000, 10_000, 30_000]);
        assert_eq!(longest_gap(&writes, 1_500, 9_500), Some(7_000));
        // A gap that ends after the window still counts.
        assert_eq!(longest_gap(&writes, 1_500, 12_000), Some(20_000));
        // Nothing acknowledged after the window: it is not covered.
        assert_eq!(longest_gap(&writes, 1_500, 40_000), None);
        assert_eq!(longest_gap(&[], 0, 1), None);
    }

    #[test]
    fn ls_output_gives_the_children() {
        let output = "Connecting to zk-client:2181\nWATCHER::\n[w1, w10, w2]\n";
        assert_eq!(parse_ls(output).unwrap(), ["w1", "w10", "w2"]);
        assert_eq!(parse_ls("[]\n").unwrap(), Vec::<String>::new());
        assert_eq!(parse_ls("Node does not exist: /x\n"), None);
    }

    #[test]
    fn srvr_must_show_the_same_leader_in_the_same_epoch() {
        let srvr = |mode: Mode, epoch: i64| Srvr {
            version: "3.8.0".into(),
            mode,
            zxid: (epoch << 32) | 7,
            outstanding: 0,
            connections: 0,
            node_count: 5,
        };
        let leadership = Leadership {
            myid: 2,
            pod: "zk-1".into(),
            peer_epoch: 3,
        };
        let answers = |leader_epoch: i64, zk0: Mode| {
            BTreeMap::from([
                ("zk-0".to_owned(), (Role::Voter, srvr(zk0, 3))),
                (
                    "zk-1".to_owned(),
                    (Role::Voter, srvr(Mode::Leader, leader_epoch)),
                ),
                (
                    "zk-observer-0".to_owned(),
                    (Role::Observer, srvr(Mode::Observer, 3)),
                ),
            ])
        };
        assert_eq!(
            srvr_agrees(&leadership, &answers(3, Mode::Follower)),
            Ok(())
        );
        let err = srvr_agrees(&leadership, &answers(2, Mode::Follower)).unwrap_err();
        assert!(err.contains("epoch 2"), "{err}");
        let err = srvr_agrees(&leadership, &answers(3, Mode::Leader)).unwrap_err();
        assert!(err.starts_with("zk-0"), "{err}");
        let mut missing = answers(3, Mode::Follower);
        missing.remove("zk-1");
        assert!(srvr_agrees(&leadership, &missing).is_err());
    }

    #[test]
    fn a_scrape_gives_the_leader_only_from_a_good_answer() {
        let page = "HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\n# TYPE zookube_leader_myid gauge\nzookube_leader_myid 3\n";
        assert_eq!(scraped_leader(page), Some(3));
        assert_eq!(
            scraped_leader("HTTP/1.0 404 Not Found\r\n\r\nzookube_leader_myid 3\n"),
            None
        );
        assert_eq!(scraped_leader("HTTP/1.0 200 OK\r\n\r\n# nothing\n"), None);
        assert_eq!(scraped_leader(""), None);
    }

    #[test]
    fn voters_change_one_member_at_a_time() {
        let ok = |seen: &[&[u64]]| {
            let seen: Vec<Vec<u64>> = seen.iter().map(|s| s.to_vec()).collect();
            one_voter_at_a_time(&seen)
        };
        assert_eq!(
            ok(&[
                &[1, 2, 3],
                &[1, 2, 3],
                &[],
                &[3, 2, 1, 4],
                &[1, 2, 3, 4, 5],
                &[1, 2, 3, 4],
                &[1, 2, 3]
            ]),
            Ok(vec![
                vec![1, 2, 3],
                vec![1, 2, 3, 4],
                vec![1, 2, 3, 4, 5],
                vec![1, 2, 3, 4],
                vec![1, 2, 3]
            ])
        );
        assert_eq!(ok(&[]), Ok(vec![]));
        let two_at_once = ok(&[&[1, 2, 3], &[1, 2, 3, 4, 5]]).unwrap_err();
        assert!(
            two_at_once.contains("from [1, 2, 3] to [1, 2, 3, 4, 5]"),
            "{two_at_once}"
        );
        assert!(
            ok(&[&[1, 2, 3], &[1, 2, 4]]).is_err(),
            "a swap is two changes"
        );
    }
}
