//! Votes (spec §1, §4.2, §4.3): what a notification proposes, how two
//! proposals are ordered (`totalOrderPredicate`) and when two votes count as
//! the same vote (`Vote.equals`). Pure functions, no state.

use crate::wire::{Notification, ServerState, VERSION_WITH_CONFIG};

/// The (leader, zxid, peerEpoch) a server proposes. Ordered by
/// [`Proposal::beats`], never by `Ord`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Proposal {
    pub leader: i64,
    pub zxid: i64,
    pub peer_epoch: i64,
}

impl Proposal {
    /// The vote of an observer or other non-voter: it never wins (§4.1).
    pub const NULL: Proposal = Proposal {
        leader: i64::MIN,
        zxid: i64::MIN,
        peer_epoch: i64::MIN,
    };

    /// `totalOrderPredicate(new = self, cur)`: a candidate of non-zero
    /// weight, then the higher peer epoch, then the higher zxid, then the
    /// higher sid. Strict: no proposal beats itself. All comparisons signed.
    pub fn beats(&self, cur: &Proposal, weight_of_leader: u64) -> bool {
        weight_of_leader != 0
            && (self.peer_epoch, self.zxid, self.leader) > (cur.peer_epoch, cur.zxid, cur.leader)
    }
}

/// A vote as FastLeaderElection keeps and sends it (Java's `Vote` and the
/// fields of a notification without the config, which the election itself
/// never reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    pub leader: i64,
    pub zxid: i64,
    pub election_epoch: i64,
    pub peer_epoch: i64,
    pub state: ServerState,
    /// 0 for pre-3.5 forms (and votes the election files as version 0);
    /// 2 for 3.5+.
    pub version: i32,
}

impl Vote {
    pub fn new(proposal: Proposal, election_epoch: i64, state: ServerState) -> Vote {
        Vote {
            leader: proposal.leader,
            zxid: proposal.zxid,
            election_epoch,
            peer_epoch: proposal.peer_epoch,
            state,
            version: 0,
        }
    }

    pub fn proposal(&self) -> Proposal {
        Proposal {
            leader: self.leader,
            zxid: self.zxid,
            peer_epoch: self.peer_epoch,
        }
    }

    pub fn with_version(self, version: i32) -> Vote {
        Vote { version, ..self }
    }

    /// `Vote.equals`, which decides agreement (§4.3). A LOOKING vote on either
    /// side compares leader, zxid, election epoch and peer epoch. Two settled
    /// votes compare the leader alone when exactly one has a version above 0,
    /// and leader and peer epoch otherwise: zxid and election epoch
    /// legitimately differ between settled members (ZOOKEEPER-1732/-1805).
    pub fn agrees_with(&self, other: &Vote) -> bool {
        if self.state == ServerState::Looking || other.state == ServerState::Looking {
            (self.leader, self.zxid, self.election_epoch, self.peer_epoch)
                == (
                    other.leader,
                    other.zxid,
                    other.election_epoch,
                    other.peer_epoch,
                )
        } else if (self.version > 0) != (other.version > 0) {
            self.leader == other.leader
        } else {
            (self.leader, self.peer_epoch) == (other.leader, other.peer_epoch)
        }
    }

    /// The notification that carries this vote, with the sender's config.
    pub fn to_notification(&self, config: &[u8]) -> Notification {
        Notification {
            state: self.state,
            leader: self.leader,
            zxid: self.zxid,
            election_epoch: self.election_epoch,
            peer_epoch: self.peer_epoch,
            version: VERSION_WITH_CONFIG,
            config: Some(config.to_vec()),
        }
    }
}

impl From<&Notification> for Vote {
    fn from(n: &Notification) -> Vote {
        Vote {
            leader: n.leader,
            zxid: n.zxid,
            election_epoch: n.election_epoch,
            peer_epoch: n.peer_epoch,
            state: n.state,
            version: n.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::QuorumVerifier;

    fn p(leader: i64, zxid: i64, peer_epoch: i64) -> Proposal {
        Proposal {
            leader,
            zxid,
            peer_epoch,
        }
    }

    /// The winner among `votes` under the weights of `quorum`.
    fn winner(quorum: &QuorumVerifier, votes: &[Proposal]) -> i64 {
        let mut best = votes[0];
        for v in &votes[1..] {
            if v.beats(&best, quorum.weight(v.leader)) {
                best = *v;
            }
        }
        best.leader
    }

    /// Spec §9.3, O1–O8.
    #[test]
    fn section_9_3_vote_ordering() {
        let maj = QuorumVerifier::majority([1, 2, 3]);
        assert_eq!(winner(&maj, &[p(1, 0, 0), p(2, 0, 0), p(3, 0, 0)]), 3);
        assert_eq!(winner(&maj, &[p(1, 0, 1), p(2, 0, 1)]), 2);
        let o3 = [
            p(1, 0x5_0000_0010, 5),
            p(2, 0x5_0000_000f, 5),
            p(3, 0x4_0000_00ff, 4),
        ];
        assert_eq!(winner(&maj, &o3), 1);
        assert_eq!(
            winner(&maj, &o3.iter().rev().copied().collect::<Vec<_>>()),
            1
        );
        assert_eq!(
            winner(&maj, &[p(2, 0x5_0000_0030, 5), p(1, 0x5_0000_0020, 6)]),
            1
        );
        assert_eq!(
            winner(&maj, &[p(2, 0x3_0000_0007, 3), p(3, 0x3_0000_0007, 3)]),
            3
        );
        // O6: a weight-0 candidate never wins.
        let weighted = QuorumVerifier::Hierarchical {
            groups: [(1, [1, 4].into())].into(),
            weights: [(1, 1), (4, 0)].into(),
        };
        assert_eq!(
            winner(&weighted, &[p(1, 0x1_0000_0000, 1), p(4, 0x9_0000_0000, 9)]),
            1
        );
        // O7: the null vote never beats anything.
        assert!(!Proposal::NULL.beats(&p(1, 0, 0), 1));
        assert!(p(1, 0, 0).beats(&Proposal::NULL, 1));
        // O8: strict.
        let v = p(2, 7, 1);
        assert!(!v.beats(&v, 1));
    }

    #[test]
    fn agreement_follows_vote_equals() {
        let looking = Vote::new(p(3, 0, 1), 2, ServerState::Looking);
        let settled = |state, ee, zxid, peer_epoch, version| {
            Vote::new(p(3, zxid, peer_epoch), ee, state).with_version(version)
        };
        // LOOKING: every field but state and version.
        assert!(looking.agrees_with(&settled(ServerState::Following, 2, 0, 1, 0)));
        assert!(!looking.agrees_with(&settled(ServerState::Following, 3, 0, 1, 0)));
        // Settled, both version 0: leader and peer epoch; zxid and round ignored.
        let a = settled(ServerState::Following, 1, 5, 1, 0);
        assert!(a.agrees_with(&settled(ServerState::Leading, 9, 7, 1, 0)));
        assert!(!a.agrees_with(&settled(ServerState::Leading, 1, 5, 2, 0)));
        // Settled, exactly one with a version: leader only.
        assert!(a.agrees_with(&settled(ServerState::Leading, 1, 5, 2, 2)));
        // Both with a version: leader and peer epoch again.
        let b = settled(ServerState::Following, 1, 5, 1, 2);
        assert!(!b.agrees_with(&settled(ServerState::Leading, 1, 5, 2, 2)));
    }
}
