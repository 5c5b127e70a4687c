//! Quorum verifiers (spec §7): which sids vote, with what weight, and when a
//! set of sids is a quorum. Majority (`QuorumMaj`) and hierarchical
//! (`QuorumHierarchical`); [`Verifiers`] adds the reconfig rule that a
//! decision needs a quorum in the committed config and, when one with a
//! higher version is pending, in that one too (`SyncedLearnerTracker`).

use std::collections::{BTreeMap, BTreeSet};

/// One config's quorum rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumVerifier {
    /// More than half of the voters.
    Majority { voters: BTreeSet<i64> },
    /// More than half of the weighted groups, each satisfied by more than
    /// half of its weight (§7.2).
    Hierarchical {
        /// group id → its voters (disjoint).
        groups: BTreeMap<i64, BTreeSet<i64>>,
        /// voter → weight (1 unless `weight.<sid>` says otherwise).
        weights: BTreeMap<i64, u64>,
    },
}

impl QuorumVerifier {
    pub fn majority(voters: impl IntoIterator<Item = i64>) -> QuorumVerifier {
        QuorumVerifier::Majority {
            voters: voters.into_iter().collect(),
        }
    }

    /// Whether `sid` votes in this config.
    pub fn is_voter(&self, sid: i64) -> bool {
        match self {
            QuorumVerifier::Majority { voters } => voters.contains(&sid),
            QuorumVerifier::Hierarchical { weights, .. } => weights.contains_key(&sid),
        }
    }

    /// The voters of this config.
    pub fn voters(&self) -> BTreeSet<i64> {
        match self {
            QuorumVerifier::Majority { voters } => voters.clone(),
            QuorumVerifier::Hierarchical { weights, .. } => weights.keys().copied().collect(),
        }
    }

    /// The weight `totalOrderPredicate` checks (§4.2): 1 for every id under
    /// majority rules (as `QuorumMaj.getWeight`); the configured weight under
    /// hierarchical rules, and 0 for an id without one (Java would throw).
    pub fn weight(&self, sid: i64) -> u64 {
        match self {
            QuorumVerifier::Majority { .. } => 1,
            QuorumVerifier::Hierarchical { weights, .. } => weights.get(&sid).copied().unwrap_or(0),
        }
    }

    /// Whether `sids` is a quorum; sids that do not vote here count for
    /// nothing (`SyncedLearnerTracker.addAck` filters them first).
    pub fn contains_quorum(&self, sids: &BTreeSet<i64>) -> bool {
        match self {
            QuorumVerifier::Majority { voters } => {
                let present = sids.intersection(voters).count();
                let (Ok(present), Ok(n)) = (u32::try_from(present), u32::try_from(voters.len()))
                else {
                    return false;
                };
                zk_ensemble::quorum::is_quorum(present, n)
            }
            QuorumVerifier::Hierarchical { groups, weights } => {
                let weight = |sid: &i64| weights.get(sid).copied().unwrap_or(0);
                let weighted_groups = groups
                    .values()
                    .filter(|members| members.iter().map(weight).sum::<u64>() > 0)
                    .count();
                let satisfied = groups
                    .values()
                    .filter(|members| {
                        let total: u64 = members.iter().map(weight).sum();
                        let present: u64 = members.intersection(sids).map(weight).sum();
                        total > 0 && present > total / 2
                    })
                    .count();
                !sids.is_empty() && satisfied > weighted_groups / 2
            }
        }
    }
}

/// The verifiers an election counts against: the committed config's and,
/// during a reconfig, the pending one's when its version is higher
/// (`FastLeaderElection.getVoteTracker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifiers {
    pub committed: QuorumVerifier,
    pub committed_version: u64,
    pub pending: Option<(QuorumVerifier, u64)>,
}

impl Verifiers {
    pub fn new(committed: QuorumVerifier, version: u64) -> Verifiers {
        Verifiers {
            committed,
            committed_version: version,
            pending: None,
        }
    }

    fn counted(&self) -> impl Iterator<Item = &QuorumVerifier> {
        let pending = self
            .pending
            .as_ref()
            .filter(|(_, version)| *version > self.committed_version)
            .map(|(verifier, _)| verifier);
        std::iter::once(&self.committed).chain(pending)
    }

    /// `validVoter`: a voter of the committed or the pending config.
    pub fn is_voter(&self, sid: i64) -> bool {
        self.committed.is_voter(sid) || self.pending.as_ref().is_some_and(|(v, _)| v.is_voter(sid))
    }

    /// Every voter of the committed and the pending config
    /// (`getCurrentAndNextConfigVoters`): whom a broadcast goes to.
    pub fn voters(&self) -> BTreeSet<i64> {
        let mut all = self.committed.voters();
        if let Some((pending, _)) = &self.pending {
            all.extend(pending.voters());
        }
        all
    }

    /// The weight of a candidate, from the committed config.
    pub fn weight(&self, sid: i64) -> u64 {
        self.committed.weight(sid)
    }

    /// `hasAllQuorums`: a quorum in every counted config.
    pub fn has_all_quorums(&self, sids: &BTreeSet<i64>) -> bool {
        self.counted()
            .all(|verifier| verifier.contains_quorum(sids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(sids: &[i64]) -> BTreeSet<i64> {
        sids.iter().copied().collect()
    }

    fn hierarchical(groups: &[&[i64]], weights: &[(i64, u64)]) -> QuorumVerifier {
        let mut all = BTreeMap::new();
        for members in groups {
            for sid in *members {
                all.insert(*sid, 1);
            }
        }
        all.extend(weights.iter().copied());
        QuorumVerifier::Hierarchical {
            groups: groups
                .iter()
                .zip(1..)
                .map(|(members, gid)| (gid, set(members)))
                .collect(),
            weights: all,
        }
    }

    /// Spec §9.4, every row.
    #[test]
    fn section_9_4_quorum_checks() {
        let maj3 = QuorumVerifier::majority([1, 2, 3]);
        assert!(maj3.contains_quorum(&set(&[1, 3])));
        assert!(!maj3.contains_quorum(&set(&[3])));
        let maj4 = QuorumVerifier::majority([1, 2, 3, 4]);
        assert!(!maj4.contains_quorum(&set(&[1, 2])));
        let maj5 = QuorumVerifier::majority(1..=5);
        assert!(maj5.contains_quorum(&set(&[2, 4, 5])));
        // Observer 128 is not a voter, so it is not counted.
        assert!(!maj3.contains_quorum(&set(&[1, 128])));

        let nine = hierarchical(&[&[1, 2, 3], &[4, 5, 6], &[7, 8, 9]], &[]);
        assert!(nine.contains_quorum(&set(&[1, 2, 4, 5])));
        assert!(!nine.contains_quorum(&set(&[1, 2, 3, 4])));

        let weighted = hierarchical(&[&[1, 2, 3]], &[(1, 2), (2, 1), (3, 1)]);
        assert!(!weighted.contains_quorum(&set(&[2, 3])));
        assert!(weighted.contains_quorum(&set(&[1, 2])));

        let mut reconfig = Verifiers::new(maj3.clone(), 1);
        reconfig.pending = Some((QuorumVerifier::majority(1..=5), 2));
        assert!(!reconfig.has_all_quorums(&set(&[1, 2])));
        assert!(reconfig.has_all_quorums(&set(&[1, 2, 3])));
        assert_eq!(reconfig.voters(), set(&[1, 2, 3, 4, 5]));
        // A pending config with a lower version is not counted.
        reconfig.pending = Some((QuorumVerifier::majority(1..=5), 0));
        assert!(reconfig.has_all_quorums(&set(&[1, 2])));
    }

    #[test]
    fn weights_follow_the_rule_of_each_kind() {
        let maj = QuorumVerifier::majority([1, 2, 3]);
        assert_eq!((maj.weight(1), maj.weight(99)), (1, 1));
        let h = hierarchical(&[&[1, 2, 3]], &[(3, 0)]);
        assert_eq!((h.weight(1), h.weight(3), h.weight(99)), (1, 0, 0));
        // A group of weight 0 is not counted among the groups.
        let zero_group = hierarchical(&[&[1, 2, 3], &[4]], &[(4, 0)]);
        assert!(zero_group.contains_quorum(&set(&[1, 2])));
        assert!(!zero_group.contains_quorum(&set(&[])));
    }
}
