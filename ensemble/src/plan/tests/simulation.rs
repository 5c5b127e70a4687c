//! The planner driven against a model ensemble until it converges, for every
//! pair of sizes (voters 1, 3, 5, 7; observers 0 to 2), every leader, with and
//! without a pending roll, and with the spec changed again after each step.
//! The model checks the safety rules on every step it is given.

use super::*;

/// A running member of the model.
#[derive(Debug, Clone, Copy)]
struct Running {
    current: bool,
    /// Observations left until it is synced.
    catching_up: u8,
}

#[derive(Debug)]
struct Model {
    committed: BTreeMap<Myid, Role>,
    version: u64,
    running: BTreeMap<Myid, Running>,
    leader: Myid,
    /// The leader the sidecars report: they learn of a hand-over one
    /// observation late.
    reported: Myid,
    leader_changes: u32,
    restarts: BTreeMap<Myid, u32>,
}

impl Model {
    fn new(voters: u32, observers: u32, leader: Myid, stale: bool) -> Model {
        let members = want(voters, observers).members();
        Model {
            running: members
                .keys()
                .map(|m| {
                    (
                        *m,
                        Running {
                            current: !stale,
                            catching_up: 0,
                        },
                    )
                })
                .collect(),
            committed: members,
            version: VERSION,
            leader,
            reported: leader,
            leader_changes: 0,
            restarts: BTreeMap::new(),
        }
    }

    fn observe(&mut self) -> Observation {
        let observed = Observation {
            committed: Some(Membership {
                version: self.version,
                servers: self.committed.clone(),
            }),
            leader: Some(self.reported),
            members: self
                .running
                .iter()
                .map(|(myid, r)| {
                    let state = if *myid == self.leader {
                        MemberState::Leading
                    } else if self.committed.get(myid) == Some(&Role::Observer) {
                        MemberState::Observing
                    } else {
                        MemberState::Following
                    };
                    MemberObservation {
                        myid: *myid,
                        state: Some(state),
                        serving: r.catching_up == 0,
                        leader: Some(self.reported),
                        ready: r.catching_up == 0,
                        terminating: false,
                        current: r.current,
                    }
                })
                .collect(),
        };
        // Time passes between two looks.
        for r in self.running.values_mut() {
            r.catching_up = r.catching_up.saturating_sub(1);
        }
        self.reported = self.leader;
        observed
    }

    fn synced(&self, myid: Myid) -> bool {
        self.running.get(&myid).is_some_and(|r| r.catching_up == 0)
    }

    fn voters(&self) -> Vec<Myid> {
        self.committed
            .iter()
            .filter(|(_, r)| **r == Role::Voter)
            .map(|(m, _)| *m)
            .collect()
    }

    /// Carries a step out, checking the rules it must respect.
    fn apply(&mut self, desired: &Desired, step: &Step) {
        let staying_synced = || {
            self.voters()
                .iter()
                .filter(|m| desired.wants(**m))
                .all(|m| self.synced(*m))
        };
        match step {
            Step::Done | Step::Wait(_) => {}
            Step::Refuse(refusal) => panic!("refused a healthy ensemble: {refusal:?}"),
            Step::Start { myid, servers } => {
                assert!(!self.running.contains_key(myid), "{myid} runs already");
                let joiners = self
                    .running
                    .keys()
                    .filter(|m| !self.committed.contains_key(*m) && desired.wants(**m))
                    .count();
                assert_eq!(joiners, 0, "a second joiner while one is not added");
                let mut expected = self.committed.clone();
                expected.insert(*myid, myid.role());
                assert_eq!(servers, &expected, "the joiner's config");
                assert!(staying_synced(), "start while a voter is not synced");
                self.running.insert(
                    *myid,
                    Running {
                        current: true,
                        catching_up: 2,
                    },
                );
            }
            Step::Add {
                myid,
                role,
                version,
            } => {
                assert_eq!(*version, self.version, "a stale expected version");
                assert!(self.synced(*myid), "added {myid} before it synced");
                assert!(staying_synced(), "add while a voter is not synced");
                assert_eq!(*role, myid.role());
                self.committed.insert(*myid, *role);
                self.version += 1;
            }
            Step::Remove { myid, version } => {
                assert_eq!(*version, self.version, "a stale expected version");
                assert!(staying_synced(), "remove while a voter is not synced");
                if *myid == self.leader {
                    let others = self
                        .voters()
                        .into_iter()
                        .filter(|m| *m != *myid && !desired.wants(*m))
                        .count();
                    assert_eq!(others, 0, "the leader removed before other leaving voters");
                }
                let observers_left = self
                    .committed
                    .keys()
                    .any(|m| m.role() == Role::Observer && !desired.wants(*m));
                assert!(
                    myid.role() == Role::Observer || !observers_left,
                    "a voter removed before the leaving observers"
                );
                self.committed.remove(myid);
                self.version += 1;
                if *myid == self.leader {
                    // The hand-over: the designated leader takes over.
                    self.leader = self.voters()[0];
                    self.leader_changes += 1;
                }
            }
            Step::Stop { myid } => {
                assert!(!self.committed.contains_key(myid), "stopped a member");
                let last = self.running.keys().rev().find(|m| m.role() == myid.role());
                assert_eq!(last, Some(myid), "stopped below the last ordinal");
                assert_ne!(*myid, self.leader, "stopped the leader");
                self.running.remove(myid);
            }
            Step::HandOver { leader, version } => {
                assert_eq!(*leader, self.leader, "handed over from a follower");
                assert_eq!(*version, self.version, "a stale expected version");
                assert!(self.voters().len() >= 3, "nobody to hand over to");
                assert!(staying_synced(), "hand-over while a voter is not synced");
                let stale_others = self
                    .running
                    .iter()
                    .filter(|(m, r)| *m != leader && !r.current)
                    .count();
                assert_eq!(
                    stale_others, 0,
                    "the leader handed over before the others rolled"
                );
                self.committed.remove(leader);
                self.version += 1;
                self.leader = self.voters()[0];
                self.leader_changes += 1;
            }
            Step::Restart { myid } => {
                let joiner = !self.committed.contains_key(myid);
                assert!(
                    !joiner || desired.wants(*myid),
                    "restarted {myid}, neither committed nor wanted"
                );
                assert!(
                    *myid != self.leader || self.voters().len() == 1,
                    "restarted the leader in place instead of handing over"
                );
                if !joiner {
                    // A joiner holds no vote; anyone else must leave the
                    // others synced.
                    let others_synced = self
                        .running
                        .keys()
                        .filter(|m| *m != myid)
                        .all(|m| self.synced(*m));
                    assert!(others_synced, "restarted {myid} while another syncs");
                }
                *self.restarts.entry(*myid).or_default() += 1;
                self.running.insert(
                    *myid,
                    Running {
                        current: true,
                        catching_up: 2,
                    },
                );
            }
        }
    }

    /// Steps until the planner says done; panics if it takes too long.
    fn converge(&mut self, desired: &Desired) {
        for _ in 0..300 {
            let observed = self.observe();
            let step = next_step(desired, &observed);
            if step == Step::Done {
                self.check_converged(desired);
                return;
            }
            self.apply(desired, &step);
        }
        panic!("no convergence to {desired:?}: {self:?}");
    }

    fn check_converged(&self, desired: &Desired) {
        assert_eq!(self.committed, desired.members(), "committed");
        assert_eq!(
            self.running.keys().copied().collect::<Vec<_>>(),
            desired.members().into_keys().collect::<Vec<_>>(),
            "running"
        );
        assert!(self.running.values().all(|r| r.current), "all current");
    }
}

const VOTERS: [u32; 4] = [1, 3, 5, 7];
const OBSERVERS: [u32; 3] = [0, 1, 2];

fn sizes() -> impl Iterator<Item = (u32, u32)> {
    VOTERS
        .into_iter()
        .flat_map(|v| OBSERVERS.into_iter().map(move |o| (v, o)))
}

#[test]
fn every_size_change_converges_safely_with_one_leader_change_at_most_per_cause() {
    let mut runs = 0;
    for (from_v, from_o) in sizes() {
        for (to_v, to_o) in sizes() {
            for leader in 1..=from_v {
                for stale in [false, true] {
                    let leader = id(u8::try_from(leader).unwrap());
                    let desired = want(to_v, to_o);
                    let mut model = Model::new(from_v, from_o, leader, stale);
                    model.converge(&desired);
                    // The leader changes once if it leaves, once more if a
                    // roll is pending (a single voter restarts in place),
                    // never otherwise.
                    let leaves = u32::from(!desired.wants(leader));
                    let rolls = u32::from(stale && to_v > 1);
                    assert_eq!(
                        model.leader_changes,
                        leaves + rolls,
                        "{from_v}+{from_o} -> {to_v}+{to_o}, leader {leader}, stale {stale}"
                    );
                    assert!(model.restarts.values().all(|n| *n == 1), "{model:?}");
                    runs += 1;
                }
            }
        }
    }
    // Leaders 1..=v for each start: (1 + 3 + 5 + 7) x 3 observer counts,
    // times 12 targets, with and without a roll.
    assert_eq!(runs, 48 * 12 * 2);
}

#[test]
fn a_spec_changed_again_after_any_step_still_converges_safely() {
    for (from_v, from_o) in sizes() {
        for (mid_v, mid_o) in sizes() {
            for (to_v, to_o) in [(1, 0), (3, 1), (5, 0), (7, 2)] {
                for steps in [1, 2, 3, 5, 8] {
                    let mut model = Model::new(from_v, from_o, id(1), false);
                    let first = want(mid_v, mid_o);
                    for _ in 0..steps {
                        let observed = model.observe();
                        let step = next_step(&first, &observed);
                        model.apply(&first, &step);
                    }
                    model.converge(&want(to_v, to_o));
                }
            }
        }
    }
}
