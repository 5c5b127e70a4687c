//! Who leads, as a watcher may conclude it from members' replies (spec §5.5):
//! ZooKeeper's own rule for late joiners (`outofelection` plus
//! `checkLeader`, §4.6). A pure function of the fresh replies and the quorum
//! rule; the spec's vectors W1–W8 are its tests.

use std::collections::{BTreeMap, BTreeSet};

use crate::quorum::Verifiers;
use crate::wire::ServerState;

/// The fields of one member's latest reply that the rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    pub state: ServerState,
    /// The leader of the member's current vote (stale while it is LOOKING).
    pub leader: i64,
    pub peer_epoch: i64,
    pub election_epoch: i64,
}

/// What the replies say about leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conclusion {
    /// A quorum of voters follows `leader`, and `leader` says LEADING.
    Leader {
        leader: i64,
        /// The epoch the leader reports (its own peerEpoch).
        peer_epoch: i64,
        /// The quorum agrees on the leader but not yet on its epoch: the
        /// leader has moved to a new epoch that some followers have not
        /// reported yet (§5.5, the "establishing" window).
        establishing: bool,
    },
    /// No leader has quorum backing.
    NoLeader {
        /// The highest logical clock among LOOKING voters: the election's
        /// round, for display.
        election_round: Option<i64>,
        /// Whether the LOOKING voters alone form a quorum (an ensemble-wide
        /// election, not one member rejoining).
        looking_quorum: bool,
        /// The highest peerEpoch in LOOKING voters' (stale) votes: the epoch
        /// of the last election they completed.
        looking_peer_epoch: Option<i64>,
        /// The leader most FOLLOWING voters name when no LEADING reply
        /// confirms it (W8: "followers believe 3").
        followers_believe: Option<i64>,
    },
}

fn settled_behind(vote: &Vote, leader: i64) -> bool {
    matches!(vote.state, ServerState::Following | ServerState::Leading) && vote.leader == leader
}

/// The watcher's rule (§5.5) over the members' fresh replies.
///
/// LOOKING replies never count (their vote fields are stale, §3.7). A
/// member that says LEADING without a quorum behind it in its epoch is a
/// stale, partitioned leader and is not trusted.
pub fn conclude(replies: &BTreeMap<i64, Vote>, rule: &Verifiers) -> Conclusion {
    let candidates: Vec<(i64, i64)> = replies
        .iter()
        .filter(|(sid, v)| v.state == ServerState::Leading && v.leader == **sid)
        .map(|(sid, v)| (*sid, v.peer_epoch))
        .collect();
    let backing = |leader: i64, epoch: Option<i64>| -> BTreeSet<i64> {
        replies
            .iter()
            .filter(|(_, v)| settled_behind(v, leader) && epoch.is_none_or(|e| v.peer_epoch == e))
            .map(|(sid, _)| *sid)
            .collect()
    };
    for (leader, epoch) in &candidates {
        if rule.has_all_quorums(&backing(*leader, Some(*epoch))) {
            return Conclusion::Leader {
                leader: *leader,
                peer_epoch: *epoch,
                establishing: false,
            };
        }
    }
    for (leader, _) in &candidates {
        let behind = backing(*leader, None);
        if rule.has_all_quorums(&behind) {
            // A follower reports the new epoch only after its leader moved
            // to it, so the newest epoch among them is the leader's, even
            // when the leader's own reply is the older sample.
            let newest = behind
                .iter()
                .filter_map(|sid| replies.get(sid).map(|v| v.peer_epoch))
                .max();
            return Conclusion::Leader {
                leader: *leader,
                peer_epoch: newest.unwrap_or_default(),
                establishing: true,
            };
        }
    }
    let looking: BTreeMap<i64, &Vote> = replies
        .iter()
        .filter(|(sid, v)| v.state == ServerState::Looking && rule.is_voter(**sid))
        .map(|(sid, v)| (*sid, v))
        .collect();
    let mut believed: BTreeMap<i64, usize> = BTreeMap::new();
    for (sid, v) in replies {
        if v.state == ServerState::Following && rule.is_voter(*sid) {
            *believed.entry(v.leader).or_default() += 1;
        }
    }
    Conclusion::NoLeader {
        election_round: looking.values().map(|v| v.election_epoch).max(),
        looking_quorum: rule.has_all_quorums(&looking.keys().copied().collect()),
        looking_peer_epoch: looking.values().map(|v| v.peer_epoch).max(),
        followers_believe: believed
            .into_iter()
            .max_by_key(|(leader, count)| (*count, std::cmp::Reverse(*leader)))
            .map(|(leader, _)| leader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::QuorumVerifier;
    use ServerState::{Following as F, Leading as L, Looking as K};

    fn replies(votes: &[(i64, ServerState, i64, i64, i64)]) -> BTreeMap<i64, Vote> {
        votes
            .iter()
            .map(|&(sid, state, leader, peer_epoch, election_epoch)| {
                (
                    sid,
                    Vote {
                        state,
                        leader,
                        peer_epoch,
                        election_epoch,
                    },
                )
            })
            .collect()
    }

    fn three() -> Verifiers {
        Verifiers::new(QuorumVerifier::majority([1, 2, 3]), 0)
    }

    fn leader(leader: i64, peer_epoch: i64, establishing: bool) -> Conclusion {
        Conclusion::Leader {
            leader,
            peer_epoch,
            establishing,
        }
    }

    #[test]
    fn w1_a_settled_ensemble() {
        let r = replies(&[(1, F, 3, 1, 1), (2, F, 3, 1, 1), (3, L, 3, 1, 1)]);
        assert_eq!(conclude(&r, &three()), leader(3, 1, false));
    }

    #[test]
    fn w2_looking_members_name_no_leader() {
        let r = replies(&[(1, K, 3, 1, 2), (2, K, 3, 1, 2)]);
        assert_eq!(
            conclude(&r, &three()),
            Conclusion::NoLeader {
                election_round: Some(2),
                looking_quorum: true,
                looking_peer_epoch: Some(1),
                followers_believe: None,
            }
        );
    }

    #[test]
    fn w3_elected_in_the_old_epoch() {
        let r = replies(&[(1, F, 2, 1, 2), (2, L, 2, 1, 2)]);
        assert_eq!(conclude(&r, &three()), leader(2, 1, false));
    }

    #[test]
    fn w4_establishing_matches_on_the_leader_alone() {
        let r = replies(&[(1, F, 2, 1, 2), (2, L, 2, 2, 2)]);
        assert_eq!(conclude(&r, &three()), leader(2, 2, true));
    }

    #[test]
    fn establishing_reports_the_newest_epoch_behind_the_leader() {
        // The leader's reply was sampled before it moved to epoch 1, the
        // follower's after.
        let r = replies(&[(1, F, 2, 1, 2), (2, L, 2, 0, 2)]);
        assert_eq!(conclude(&r, &three()), leader(2, 1, true));
    }

    #[test]
    fn w5_established_in_the_new_epoch() {
        let r = replies(&[(1, F, 2, 2, 2), (2, L, 2, 2, 2)]);
        assert_eq!(conclude(&r, &three()), leader(2, 2, false));
    }

    #[test]
    fn w6_a_stale_partitioned_leader_is_not_trusted() {
        let r = replies(&[(1, F, 2, 2, 2), (2, L, 2, 2, 2), (3, L, 3, 1, 1)]);
        assert_eq!(conclude(&r, &three()), leader(2, 2, false));
    }

    #[test]
    fn w7_a_looking_member_does_not_stop_a_quorum() {
        let r = replies(&[(1, F, 3, 1, 1), (2, K, 3, 1, 2), (3, L, 3, 1, 1)]);
        assert_eq!(conclude(&r, &three()), leader(3, 1, false));
    }

    #[test]
    fn w8_followers_without_their_leader_name_no_leader() {
        let r = replies(&[(1, F, 3, 1, 1), (2, F, 3, 1, 1)]);
        assert_eq!(
            conclude(&r, &three()),
            Conclusion::NoLeader {
                election_round: None,
                looking_quorum: false,
                looking_peer_epoch: None,
                followers_believe: Some(3),
            }
        );
    }

    #[test]
    fn looking_replies_never_count_even_when_they_all_agree() {
        // §4.7's caveat: several LOOKING members share a stale vote for a
        // dead leader; a real observer may follow it, the watcher must not.
        let r = replies(&[(1, K, 3, 1, 2), (2, K, 3, 1, 2), (3, L, 3, 1, 1)]);
        assert!(matches!(
            conclude(&r, &three()),
            Conclusion::NoLeader { .. }
        ));
    }

    #[test]
    fn observers_replies_never_count() {
        let rule = three();
        // 128 is an observer: it is not in the voter set.
        let r = replies(&[(2, F, 3, 1, 1), (3, L, 3, 1, 1), (128, F, 3, 1, 1)]);
        assert_eq!(conclude(&r, &rule), leader(3, 1, false));
        let r = replies(&[(3, L, 3, 1, 1), (128, F, 3, 1, 1), (129, F, 3, 1, 1)]);
        assert!(matches!(conclude(&r, &rule), Conclusion::NoLeader { .. }));
    }

    #[test]
    fn a_pending_config_must_be_satisfied_too() {
        // §9.4: committed {1,2,3}, pending {1,2,3,4,5}: 1 and 2 following 2
        // are a quorum of the committed config only.
        let mut rule = three();
        rule.pending = Some((QuorumVerifier::majority(1..=5), 1));
        let r = replies(&[(1, F, 2, 1, 1), (2, L, 2, 1, 1)]);
        assert!(matches!(conclude(&r, &rule), Conclusion::NoLeader { .. }));
        let r = replies(&[(1, F, 2, 1, 1), (2, L, 2, 1, 1), (4, F, 2, 1, 1)]);
        assert_eq!(conclude(&r, &rule), leader(2, 1, false));
    }

    #[test]
    fn hierarchical_quorums_weigh_their_groups() {
        let cfg = crate::config::QuorumConfig::parse(
            b"server.1=a:1:2:participant\nserver.2=b:1:2:participant\nserver.3=c:1:2:participant\ngroup.1=1:2:3\nweight.1=2\nweight.2=1\nweight.3=1\nversion=0",
        )
        .unwrap();
        let rule = Verifiers::new(cfg.quorum, 0);
        // 2 and 3 weigh 2 of 4: not more than half.
        let r = replies(&[(2, F, 3, 1, 1), (3, L, 3, 1, 1)]);
        assert!(matches!(conclude(&r, &rule), Conclusion::NoLeader { .. }));
        let r = replies(&[(1, F, 3, 1, 1), (3, L, 3, 1, 1)]);
        assert_eq!(conclude(&r, &rule), leader(3, 1, false));
    }

    #[test]
    fn a_leader_naming_another_sid_is_no_candidate() {
        let r = replies(&[(1, F, 3, 1, 1), (2, F, 3, 1, 1), (3, L, 2, 1, 1)]);
        assert!(matches!(
            conclude(&r, &three()),
            Conclusion::NoLeader { .. }
        ));
    }
}
