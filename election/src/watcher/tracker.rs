//! The watcher's memory of leadership over time: the current leader and its
//! phase (elected, establishing, established), when it became known, and
//! how many elections and leader changes the watcher has seen.
//!
//! An election is counted when it *ends*: when a leader becomes known that
//! differs from the last one, or the same leader in a newer epoch after it
//! had been established. Losing sight of the leader and finding the same
//! leader in the same epoch again (a member that answered late, a
//! connection of ours that broke) is not an election, so a flapping view
//! cannot inflate the count.

use std::time::{Duration, Instant};

use super::leader::Conclusion;

/// How far a leader has come (§3.7, §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A quorum follows it in the epoch of its election.
    Elected,
    /// It leads in a new epoch that not every follower has reported yet.
    Establishing,
    /// A quorum follows it in a new epoch.
    Established,
}

/// The quorum-backed leader as the watcher knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    pub leader: i64,
    pub peer_epoch: i64,
    pub phase: Phase,
    /// When the watcher first knew this leader.
    pub since: Instant,
    /// The newest epoch known before this leader's election; `None` when
    /// the watcher knew none (it started under this leader).
    pub epoch_before: Option<i64>,
}

/// A change worth a log line (and, for some, a metric).
#[derive(Debug, Clone, PartialEq)]
pub enum LeaderEvent {
    /// The quorum-backed leader is no longer known.
    Lost { leader: i64, peer_epoch: i64 },
    /// A leader became known.
    Known {
        leader: i64,
        peer_epoch: i64,
        phase: Phase,
        /// The last leader known before, if any.
        previous: Option<i64>,
        /// Whether this ends an election (see the module comment).
        election: bool,
        /// How long the watcher was without a leader before it, when it
        /// saw that election start.
        election_duration: Option<Duration>,
    },
    /// The same leader moved on: elected → establishing → established.
    PhaseChanged {
        leader: i64,
        peer_epoch: i64,
        phase: Phase,
    },
}

#[derive(Debug, Default)]
pub(crate) struct Tracker {
    current: Option<Leadership>,
    /// The last leader known, kept while none is.
    last: Option<Leadership>,
    /// Since when no leader has been known, when the watcher saw it go (or
    /// saw a quorum LOOKING before it ever knew one).
    gap_since: Option<Instant>,
    /// The newest epoch LOOKING voters reported during the gap.
    looking_epoch: Option<i64>,
    pub(crate) elections: u64,
    pub(crate) leader_changes: u64,
}

fn phase(peer_epoch: i64, epoch_before: Option<i64>, establishing: bool) -> Phase {
    if establishing {
        Phase::Establishing
    } else if epoch_before.is_none_or(|before| peer_epoch > before) {
        // Without an earlier epoch to compare with (the watcher started
        // under this leader), a quorum-backed leader is taken as established:
        // the elected-but-not-established window lasts a fraction of a second.
        Phase::Established
    } else {
        Phase::Elected
    }
}

impl Tracker {
    pub(crate) fn current(&self) -> Option<Leadership> {
        self.current
    }

    /// When the current election (leaderless stretch) was first seen.
    pub(crate) fn election_since(&self) -> Option<Instant> {
        self.gap_since.filter(|_| self.current.is_none())
    }

    /// Whether a leader was known and is now lost.
    pub(crate) fn lost_leader(&self) -> bool {
        self.current.is_none() && self.last.is_some()
    }

    pub(crate) fn update(&mut self, conclusion: &Conclusion, now: Instant) -> Option<LeaderEvent> {
        match *conclusion {
            Conclusion::Leader {
                leader,
                peer_epoch,
                establishing,
            } => self.leader(leader, peer_epoch, establishing, now),
            Conclusion::NoLeader {
                looking_quorum,
                looking_peer_epoch,
                ..
            } => {
                self.looking_epoch = self.looking_epoch.max(looking_peer_epoch);
                if let Some(lost) = self.current.take() {
                    self.last = Some(lost);
                    self.gap_since = Some(now);
                    self.looking_epoch = looking_peer_epoch;
                    return Some(LeaderEvent::Lost {
                        leader: lost.leader,
                        peer_epoch: lost.peer_epoch,
                    });
                }
                if self.last.is_none() && looking_quorum {
                    self.gap_since.get_or_insert(now);
                }
                None
            }
        }
    }

    fn leader(
        &mut self,
        leader: i64,
        peer_epoch: i64,
        establishing: bool,
        now: Instant,
    ) -> Option<LeaderEvent> {
        if let Some(current) = self.current.as_mut().filter(|c| c.leader == leader) {
            if peer_epoch < current.peer_epoch {
                return None; // an older reply than one already seen
            }
            let reelected = peer_epoch > current.peer_epoch && current.phase == Phase::Established;
            if !reelected {
                let next = phase(peer_epoch, current.epoch_before, establishing);
                if (next, peer_epoch) == (current.phase, current.peer_epoch) {
                    return None;
                }
                current.phase = next;
                current.peer_epoch = peer_epoch;
                return Some(LeaderEvent::PhaseChanged {
                    leader,
                    peer_epoch,
                    phase: next,
                });
            }
            // The same leader won a new election without the watcher seeing
            // it go: count it, with no duration.
            let before = current.peer_epoch;
            self.elections += 1;
            *current = Leadership {
                leader,
                peer_epoch,
                phase: phase(peer_epoch, Some(before), establishing),
                since: now,
                epoch_before: Some(before),
            };
            return Some(LeaderEvent::Known {
                leader,
                peer_epoch,
                phase: current.phase,
                previous: Some(leader),
                election: true,
                election_duration: None,
            });
        }

        // A leader other than the current one, or none was known.
        let replaced = self.current.take();
        let gap = if replaced.is_some() {
            None
        } else {
            self.gap_since
        };
        let previous = replaced.or(self.last);
        if let Some(prev) = previous.filter(|p| p.leader == leader && p.peer_epoch == peer_epoch) {
            // The same leader in the same epoch: the watcher lost sight of
            // it for a while; nothing was elected.
            let resumed = Leadership {
                phase: phase(peer_epoch, prev.epoch_before, establishing),
                ..prev
            };
            self.current = Some(resumed);
            self.gap_since = None;
            return Some(LeaderEvent::Known {
                leader,
                peer_epoch,
                phase: resumed.phase,
                previous: Some(leader),
                election: false,
                election_duration: None,
            });
        }
        let election = previous.is_some() || gap.is_some();
        if election {
            self.elections += 1;
        }
        if previous.is_some_and(|p| p.leader != leader) {
            self.leader_changes += 1;
        }
        let epoch_before = previous.map(|p| p.peer_epoch).max(self.looking_epoch);
        let known = Leadership {
            leader,
            peer_epoch,
            phase: phase(peer_epoch, epoch_before, establishing),
            since: now,
            epoch_before,
        };
        self.current = Some(known);
        self.gap_since = None;
        self.looking_epoch = None;
        Some(LeaderEvent::Known {
            leader,
            peer_epoch,
            phase: known.phase,
            previous: previous.map(|p| p.leader),
            election,
            election_duration: gap.filter(|_| election).map(|since| now - since),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leads(leader: i64, peer_epoch: i64) -> Conclusion {
        Conclusion::Leader {
            leader,
            peer_epoch,
            establishing: false,
        }
    }

    fn establishing(leader: i64, peer_epoch: i64) -> Conclusion {
        Conclusion::Leader {
            leader,
            peer_epoch,
            establishing: true,
        }
    }

    fn looking(peer_epoch: i64, quorum: bool) -> Conclusion {
        Conclusion::NoLeader {
            election_round: Some(2),
            looking_quorum: quorum,
            looking_peer_epoch: Some(peer_epoch),
            followers_believe: None,
        }
    }

    #[test]
    fn a_leader_kill_as_the_spec_observed_it() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut t = Tracker::default();
        // W1 at start: no earlier epoch, taken as established, no election.
        let first = t.update(&leads(3, 1), at(0)).unwrap();
        assert!(matches!(
            first,
            LeaderEvent::Known {
                phase: Phase::Established,
                election: false,
                previous: None,
                ..
            }
        ));
        // W2: 3 is killed; 1 and 2 are LOOKING.
        assert_eq!(
            t.update(&looking(1, true), at(100)),
            Some(LeaderEvent::Lost {
                leader: 3,
                peer_epoch: 1
            })
        );
        assert_eq!(t.election_since(), Some(at(100)));
        // W3: 2 elected in the old epoch.
        let known = t.update(&leads(2, 1), at(700)).unwrap();
        assert_eq!(
            known,
            LeaderEvent::Known {
                leader: 2,
                peer_epoch: 1,
                phase: Phase::Elected,
                previous: Some(3),
                election: true,
                election_duration: Some(Duration::from_millis(600)),
            }
        );
        // W4 then W5.
        assert_eq!(
            t.update(&establishing(2, 2), at(850)),
            Some(LeaderEvent::PhaseChanged {
                leader: 2,
                peer_epoch: 2,
                phase: Phase::Establishing
            })
        );
        assert_eq!(
            t.update(&leads(2, 2), at(900)),
            Some(LeaderEvent::PhaseChanged {
                leader: 2,
                peer_epoch: 2,
                phase: Phase::Established
            })
        );
        assert_eq!(t.update(&leads(2, 2), at(1900)), None);
        assert_eq!((t.elections, t.leader_changes), (1, 1));
        assert_eq!(t.current().unwrap().since, at(700));
    }

    #[test]
    fn losing_sight_of_the_same_leader_is_no_election() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        t.update(&leads(3, 4), t0);
        t.update(&looking(4, false), t0 + Duration::from_secs(1));
        let back = t.update(&leads(3, 4), t0 + Duration::from_secs(2)).unwrap();
        assert!(matches!(
            back,
            LeaderEvent::Known {
                election: false,
                phase: Phase::Established,
                ..
            }
        ));
        assert_eq!((t.elections, t.leader_changes), (0, 0));
        assert_eq!(t.current().unwrap().since, t0, "it led all along");
    }

    #[test]
    fn a_direct_change_counts_without_a_duration() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        t.update(&leads(3, 1), t0);
        let event = t.update(&leads(2, 2), t0 + Duration::from_secs(1)).unwrap();
        assert!(matches!(
            event,
            LeaderEvent::Known {
                election: true,
                election_duration: None,
                previous: Some(3),
                ..
            }
        ));
        assert_eq!((t.elections, t.leader_changes), (1, 1));
    }

    #[test]
    fn the_same_leader_reelected_in_a_new_epoch_counts_as_an_election() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        t.update(&leads(3, 1), t0);
        let event = t.update(&leads(3, 2), t0 + Duration::from_secs(5)).unwrap();
        assert!(matches!(
            event,
            LeaderEvent::Known {
                election: true,
                previous: Some(3),
                ..
            }
        ));
        assert_eq!((t.elections, t.leader_changes), (1, 0));
    }

    #[test]
    fn an_election_watched_from_the_start_counts() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        // One member rejoining (no quorum LOOKING) is not an election.
        t.update(&looking(0, false), t0);
        assert_eq!(t.election_since(), None);
        t.update(&looking(0, true), t0 + Duration::from_millis(10));
        let event = t
            .update(&leads(3, 0), t0 + Duration::from_millis(310))
            .unwrap();
        assert!(matches!(
            event,
            LeaderEvent::Known {
                election: true,
                previous: None,
                phase: Phase::Elected,
                election_duration: Some(d),
                ..
            } if d == Duration::from_millis(300)
        ));
        assert_eq!((t.elections, t.leader_changes), (1, 0));
        t.update(&leads(3, 1), t0 + Duration::from_millis(500));
        assert_eq!(t.current().unwrap().phase, Phase::Established);
        assert_eq!(t.elections, 1, "establishment is not another election");
    }

    #[test]
    fn an_older_reply_does_not_move_the_epoch_back() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        t.update(&leads(3, 5), t0);
        assert_eq!(t.update(&leads(3, 4), t0), None);
        assert_eq!(t.current().unwrap().peer_epoch, 5);
    }
}
