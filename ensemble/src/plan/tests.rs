use super::*;

fn id(n: u8) -> Myid {
    Myid::new(i64::from(n)).unwrap()
}

fn ids(ns: &[u8]) -> Vec<Myid> {
    ns.iter().map(|n| id(*n)).collect()
}

fn want(voters: u32, observers: u32) -> Desired {
    Desired {
        cluster: "zk".into(),
        voters,
        observers,
    }
}

const VERSION: u64 = 0x1_0000_0000;

/// A member that follows (leads, observes) `leader`, serves and is ready.
fn synced(myid: u8, leader: u8) -> MemberObservation {
    let state = match id(myid).role() {
        Role::Observer => MemberState::Observing,
        Role::Voter if myid == leader => MemberState::Leading,
        Role::Voter => MemberState::Following,
    };
    MemberObservation {
        myid: id(myid),
        state: Some(state),
        serving: true,
        leader: Some(id(leader)),
        ready: true,
        terminating: false,
        current: true,
    }
}

/// An ensemble whose committed config lists `members`, each running,
/// synced and current, led by `leader`.
fn ensemble(members: &[u8], leader: u8) -> Observation {
    Observation {
        committed: Some(Membership {
            version: VERSION,
            servers: members.iter().map(|n| (id(*n), id(*n).role())).collect(),
        }),
        leader: Some(id(leader)),
        members: members.iter().map(|n| synced(*n, leader)).collect(),
    }
}

/// Builder-style changes to an observation, so each case reads as the
/// situation it pins.
trait Situation {
    fn member(self, m: MemberObservation) -> Self;
    fn change(self, myid: u8, f: impl FnOnce(&mut MemberObservation)) -> Self;
    /// `myid` runs and is synced but is not in the committed config.
    fn running_uncommitted(self, myid: u8) -> Self;
    fn down(self, myid: u8) -> Self;
    fn catching_up(self, myid: u8) -> Self;
    fn stale(self, myids: &[u8]) -> Self;
    fn absent(self, myid: u8) -> Self;
    fn leader(self, leader: Option<u8>) -> Self;
}

impl Situation for Observation {
    fn member(mut self, m: MemberObservation) -> Self {
        self.members.retain(|o| o.myid != m.myid);
        self.members.push(m);
        self.members.sort_by_key(|m| m.myid);
        self
    }

    fn change(mut self, myid: u8, f: impl FnOnce(&mut MemberObservation)) -> Self {
        let m = self
            .members
            .iter_mut()
            .find(|m| m.myid == id(myid))
            .expect("the member runs");
        f(m);
        self
    }

    fn running_uncommitted(self, myid: u8) -> Self {
        let leader = self.leader.map_or(1, Myid::get);
        let mut m = synced(myid, leader);
        // Before `reconfig add` a joiner is a non-voting follower.
        m.state = Some(MemberState::Following);
        self.member(m)
    }

    fn down(self, myid: u8) -> Self {
        self.change(myid, |m| {
            m.state = Some(MemberState::Down);
            m.serving = false;
            m.ready = false;
        })
    }

    fn catching_up(self, myid: u8) -> Self {
        self.change(myid, |m| {
            m.serving = false;
            m.ready = false;
        })
    }

    fn stale(mut self, myids: &[u8]) -> Self {
        for m in &mut self.members {
            if myids.contains(&m.myid.get()) {
                m.current = false;
            }
        }
        self
    }

    fn absent(mut self, myid: u8) -> Self {
        self.members.retain(|m| m.myid != id(myid));
        self
    }

    fn leader(mut self, leader: Option<u8>) -> Self {
        self.leader = leader.map(id);
        self
    }
}

fn start(myid: u8, servers: &[u8]) -> Step {
    Step::Start {
        myid: id(myid),
        servers: servers.iter().map(|n| (id(*n), id(*n).role())).collect(),
    }
}

fn add(myid: u8) -> Step {
    Step::Add {
        myid: id(myid),
        role: id(myid).role(),
        version: VERSION,
    }
}

fn remove(myid: u8) -> Step {
    Step::Remove {
        myid: id(myid),
        version: VERSION,
    }
}

fn stop(myid: u8) -> Step {
    Step::Stop { myid: id(myid) }
}

fn restart(myid: u8) -> Step {
    Step::Restart { myid: id(myid) }
}

fn hand_over(leader: u8) -> Step {
    Step::HandOver {
        leader: id(leader),
        version: VERSION,
    }
}

fn catching(myid: u8, why: &'static str) -> Step {
    Step::Wait(Wait::CatchingUp {
        myid: id(myid),
        why,
    })
}

#[test]
fn the_table() {
    let syncing = "is syncing with the leader";
    let cases: Vec<(&str, Desired, Observation, Step)> = vec![
        // Steady.
        (
            "3 as asked",
            want(3, 0),
            ensemble(&[1, 2, 3], 2),
            Step::Done,
        ),
        ("1 as asked", want(1, 0), ensemble(&[1], 1), Step::Done),
        (
            "as asked, even without a leader: nothing to do",
            want(3, 0),
            ensemble(&[1, 2, 3], 2).leader(None),
            Step::Done,
        ),
        // 3 -> 5.
        (
            "3 -> 5 starts myid 4 with the committed servers and itself",
            want(5, 0),
            ensemble(&[1, 2, 3], 1),
            start(4, &[1, 2, 3, 4]),
        ),
        (
            "3 -> 5 waits while the joiner syncs",
            want(5, 0),
            ensemble(&[1, 2, 3], 1)
                .running_uncommitted(4)
                .catching_up(4),
            catching(4, syncing),
        ),
        (
            "3 -> 5 waits while the joiner is still looking",
            want(5, 0),
            ensemble(&[1, 2, 3], 1)
                .running_uncommitted(4)
                .change(4, |m| m.state = Some(MemberState::Looking)),
            catching(4, "is looking for a leader"),
        ),
        (
            "3 -> 5 waits while the joiner's server does not answer",
            want(5, 0),
            ensemble(&[1, 2, 3], 1).running_uncommitted(4).down(4),
            catching(4, "has started but its server does not answer yet"),
        ),
        (
            "3 -> 5 adds the synced joiner",
            want(5, 0),
            ensemble(&[1, 2, 3], 1).running_uncommitted(4),
            add(4),
        ),
        (
            "3 -> 5 starts myid 5 once 4 is a synced voter",
            want(5, 0),
            ensemble(&[1, 2, 3, 4], 1),
            start(5, &[1, 2, 3, 4, 5]),
        ),
        (
            "3 -> 5 waits for the voter just added to be synced before the next",
            want(5, 0),
            ensemble(&[1, 2, 3, 4], 1).catching_up(4),
            catching(4, syncing),
        ),
        (
            "3 -> 5 adds myid 5",
            want(5, 0),
            ensemble(&[1, 2, 3, 4], 1).running_uncommitted(5),
            add(5),
        ),
        (
            "3 -> 5 is done",
            want(5, 0),
            ensemble(&[1, 2, 3, 4, 5], 1),
            Step::Done,
        ),
        // 5 -> 3.
        (
            "5 -> 3 removes the highest myid first",
            want(3, 0),
            ensemble(&[1, 2, 3, 4, 5], 1),
            remove(5),
        ),
        (
            "5 -> 3 stops the removed member",
            want(3, 0),
            ensemble(&[1, 2, 3, 4], 1).running_uncommitted(5),
            stop(5),
        ),
        (
            "5 -> 3 stops the removed member even while a voter is down: it holds no vote",
            want(3, 0),
            ensemble(&[1, 2, 3, 4], 1).running_uncommitted(5).down(2),
            stop(5),
        ),
        (
            "5 -> 3 then removes myid 4",
            want(3, 0),
            ensemble(&[1, 2, 3, 4], 1),
            remove(4),
        ),
        // The leader among the members to remove.
        (
            "5 -> 3 with leader 5 removes 4 first",
            want(3, 0),
            ensemble(&[1, 2, 3, 4, 5], 5),
            remove(4),
        ),
        (
            "5 -> 3 with leader 5: 4 cannot stop before 5 (a StatefulSet removes its last pod), so the leader is removed",
            want(3, 0),
            ensemble(&[1, 2, 3, 5], 5).running_uncommitted(4),
            remove(5),
        ),
        (
            "a removed leader that still leads is not stopped: the hand-over has not finished",
            want(3, 0),
            ensemble(&[1, 2, 3], 5)
                .running_uncommitted(4)
                .running_uncommitted(5),
            Step::Wait(Wait::HandingOver(id(5))),
        ),
        (
            "after the hand-over the old leader stops",
            want(3, 0),
            ensemble(&[1, 2, 3], 2)
                .running_uncommitted(4)
                .running_uncommitted(5),
            stop(5),
        ),
        (
            "5 -> 3 with leader 4 removes 5 first, the leader last",
            want(3, 0),
            ensemble(&[1, 2, 3, 4, 5], 4),
            remove(5),
        ),
        (
            "5 -> 3 with leader 4, 5 gone: the leader goes",
            want(3, 0),
            ensemble(&[1, 2, 3, 4], 4),
            remove(4),
        ),
        // 1 -> 3 and 3 -> 1.
        (
            "1 -> 3 starts myid 2 with servers 1 and 2",
            want(3, 0),
            ensemble(&[1], 1),
            start(2, &[1, 2]),
        ),
        (
            "1 -> 3 adds 2",
            want(3, 0),
            ensemble(&[1], 1).running_uncommitted(2),
            add(2),
        ),
        (
            "1 -> 3 then starts 3",
            want(3, 0),
            ensemble(&[1, 2], 1),
            start(3, &[1, 2, 3]),
        ),
        (
            "3 -> 1 removes 3",
            want(1, 0),
            ensemble(&[1, 2, 3], 1),
            remove(3),
        ),
        (
            "3 -> 1 with leader 3 removes 2 first",
            want(1, 0),
            ensemble(&[1, 2, 3], 3),
            remove(2),
        ),
        (
            "3 -> 1 with leader 3, 2 removed: the leader hands over to 1",
            want(1, 0),
            ensemble(&[1, 3], 3).running_uncommitted(2),
            remove(3),
        ),
        // Observers.
        (
            "observers 0 -> 2 start 128 with its observer line",
            want(3, 2),
            ensemble(&[1, 2, 3], 1),
            start(128, &[1, 2, 3, 128]),
        ),
        (
            "observers 0 -> 2 add the synced observer",
            want(3, 2),
            ensemble(&[1, 2, 3], 1).running_uncommitted(128),
            add(128),
        ),
        (
            "voters join before observers",
            want(5, 1),
            ensemble(&[1, 2, 3], 1),
            start(4, &[1, 2, 3, 4]),
        ),
        (
            "observers 2 -> 0 remove the highest observer",
            want(3, 0),
            ensemble(&[1, 2, 3, 128, 129], 1),
            remove(129),
        ),
        (
            "observers leave before voters",
            want(3, 1),
            ensemble(&[1, 2, 3, 4, 5, 128, 129], 2),
            remove(129),
        ),
        (
            "a removed observer stops",
            want(3, 0),
            ensemble(&[1, 2, 3, 128], 1).running_uncommitted(129),
            stop(129),
        ),
        (
            "a down observer does not hold up voters' changes",
            want(5, 1),
            ensemble(&[1, 2, 3, 128], 1).down(128),
            start(4, &[1, 2, 3, 4, 128]),
        ),
        // Refusals while degraded.
        (
            "5 -> 3 is refused while a remaining voter is down",
            want(3, 0),
            ensemble(&[1, 2, 3, 4, 5], 1).down(2),
            Step::Refuse(Refusal::MembersDown {
                change: Change::ScaleDown,
                down: ids(&[2]),
            }),
        ),
        (
            "5 -> 3 is refused while a remaining voter's pod is missing",
            want(3, 0),
            ensemble(&[1, 2, 3, 4, 5], 1).absent(3),
            Step::Refuse(Refusal::MembersDown {
                change: Change::ScaleDown,
                down: ids(&[3]),
            }),
        ),
        (
            "5 -> 3 goes ahead when the down member is the one leaving",
            want(3, 0),
            ensemble(&[1, 2, 3, 4, 5], 1).down(5),
            remove(5),
        ),
        (
            "5 -> 3 removes a leaving member that is down first",
            want(3, 0),
            ensemble(&[1, 2, 3, 4, 5], 1).down(4),
            remove(4),
        ),
        (
            "3 -> 1 removes the down member first, so the others keep a quorum",
            want(1, 0),
            ensemble(&[1, 2, 3], 1).down(2),
            remove(2),
        ),
        (
            "3 -> 1 after the down member left: a quorum of 1 and 3 remains",
            want(1, 0),
            ensemble(&[1, 3], 1),
            remove(3),
        ),
        (
            "a removal that would leave no synced quorum is refused (a leader seen without one)",
            want(1, 0),
            ensemble(&[1, 2, 3, 4, 5], 1).down(2).down(3).down(4),
            Step::Refuse(Refusal::MembersDown {
                change: Change::ScaleDown,
                down: ids(&[2, 3]),
            }),
        ),
        (
            "5 -> 3 waits while a remaining voter catches up",
            want(3, 0),
            ensemble(&[1, 2, 3, 4, 5], 1).catching_up(3),
            catching(3, syncing),
        ),
        (
            "3 -> 5 is refused while a voter is down",
            want(5, 0),
            ensemble(&[1, 2, 3], 1).down(3),
            Step::Refuse(Refusal::MembersDown {
                change: Change::ScaleUp,
                down: ids(&[3]),
            }),
        ),
        (
            "3 -> 5 does not add a synced joiner while a voter is down",
            want(5, 0),
            ensemble(&[1, 2, 3], 1).running_uncommitted(4).down(2),
            Step::Refuse(Refusal::MembersDown {
                change: Change::ScaleUp,
                down: ids(&[2]),
            }),
        ),
        (
            "a member that answers nobody counts as down",
            want(3, 0),
            ensemble(&[1, 2, 3, 4, 5], 1).change(2, |m| m.state = None),
            Step::Refuse(Refusal::MembersDown {
                change: Change::ScaleDown,
                down: ids(&[2]),
            }),
        ),
        (
            "a member that follows another leader is not synced",
            want(5, 0),
            ensemble(&[1, 2, 3], 1).change(3, |m| m.leader = Some(id(2))),
            catching(3, "does not report the quorum-backed leader yet"),
        ),
        (
            "a pod that is not ready is not synced",
            want(5, 0),
            ensemble(&[1, 2, 3], 1).change(2, |m| m.ready = false),
            catching(2, "is not ready"),
        ),
        // Nothing is decided blind.
        (
            "no change without a leader",
            want(5, 0),
            ensemble(&[1, 2, 3], 1).leader(None),
            Step::Wait(Wait::NoLeader),
        ),
        (
            "no change without the committed config",
            want(5, 0),
            Observation {
                committed: None,
                ..ensemble(&[1, 2, 3], 1)
            },
            Step::Wait(Wait::ConfigUnknown),
        ),
        (
            "no change while a pod is being deleted",
            want(5, 0),
            ensemble(&[1, 2, 3], 1).change(2, |m| m.terminating = true),
            Step::Wait(Wait::Terminating(id(2))),
        ),
        (
            "a member listed in another role than its myid's is refused",
            want(3, 0),
            Observation {
                committed: Some(Membership {
                    version: VERSION,
                    servers: [(id(1), Role::Voter), (id(2), Role::Observer)].into(),
                }),
                ..ensemble(&[1, 2, 3], 1)
            },
            Step::Refuse(Refusal::RoleMismatch {
                myid: id(2),
                committed: Role::Observer,
            }),
        ),
        // Rolling restarts.
        (
            "a roll starts with the highest follower",
            want(3, 0),
            ensemble(&[1, 2, 3], 2).stale(&[1, 2, 3]),
            restart(3),
        ),
        (
            "a roll waits for the member restarted last to sync",
            want(3, 0),
            ensemble(&[1, 2, 3], 2).stale(&[1, 2]).catching_up(3),
            catching(3, syncing),
        ),
        (
            "a roll skips the leader while followers are stale",
            want(3, 0),
            ensemble(&[1, 2, 3], 2).stale(&[1, 2]),
            restart(1),
        ),
        (
            "a roll hands leadership over last, instead of restarting the leader",
            want(3, 0),
            ensemble(&[1, 2, 3], 2).stale(&[2]),
            hand_over(2),
        ),
        (
            "a hand-over waits while the removed leader still leads",
            want(3, 0),
            ensemble(&[1, 3], 2).running_uncommitted(2).stale(&[2]),
            Step::Wait(Wait::HandingOver(id(2))),
        ),
        (
            "once its successor leads, the old leader restarts as a joiner",
            want(3, 0),
            ensemble(&[1, 3], 1).running_uncommitted(2).stale(&[2]),
            restart(2),
        ),
        (
            "the old leader restarts even while a voter is down: it holds no vote",
            want(5, 0),
            ensemble(&[1, 3, 4, 5], 1)
                .running_uncommitted(2)
                .stale(&[2])
                .down(5),
            restart(2),
        ),
        (
            "the restarted old leader is added back once synced",
            want(3, 0),
            ensemble(&[1, 3], 1).running_uncommitted(2),
            add(2),
        ),
        (
            "a joiner the spec changed under is restarted before it is added",
            want(5, 0),
            ensemble(&[1, 2, 3], 1).running_uncommitted(4).stale(&[4]),
            restart(4),
        ),
        (
            "5 voters hand over too",
            want(5, 0),
            ensemble(&[1, 2, 3, 4, 5], 4).stale(&[4]),
            hand_over(4),
        ),
        (
            "observers restart before followers",
            want(3, 1),
            ensemble(&[1, 2, 3, 128], 1).stale(&[1, 2, 3, 128]),
            restart(128),
        ),
        (
            "a stale member that is down restarts first: its new revision may be its fix",
            want(3, 0),
            ensemble(&[1, 2, 3], 3).stale(&[1, 2, 3]).down(1),
            restart(1),
        ),
        (
            "a roll waits for a current member that is down",
            want(3, 0),
            ensemble(&[1, 2, 3], 3).stale(&[2, 3]).down(1),
            catching(1, "is down"),
        ),
        (
            "a roll waits for a leader",
            want(3, 0),
            ensemble(&[1, 2, 3], 3).stale(&[2, 3]).leader(None),
            Step::Wait(Wait::NoLeader),
        ),
        (
            "a single voter restarts: nothing can avoid the pause",
            want(1, 0),
            ensemble(&[1], 1).stale(&[1]),
            restart(1),
        ),
        (
            "a member being removed is not restarted",
            want(3, 0),
            ensemble(&[1, 2, 3, 4, 5], 1).stale(&[4, 5]),
            remove(5),
        ),
        // Replicas and image at once: membership first (new pods come up
        // on the new revision), then the old members roll.
        (
            "replicas and image at once grow first",
            want(5, 0),
            ensemble(&[1, 2, 3], 1).stale(&[1, 2, 3]),
            start(4, &[1, 2, 3, 4]),
        ),
        (
            "replicas and image at once roll once grown",
            want(5, 0),
            ensemble(&[1, 2, 3, 4, 5], 1).stale(&[1, 2, 3]),
            restart(3),
        ),
        (
            "replicas and image at once shrink first",
            want(3, 0),
            ensemble(&[1, 2, 3, 4, 5], 1).stale(&[1, 2, 3, 4, 5]),
            remove(5),
        ),
        // The spec changes again mid-way.
        (
            "3 -> 5 -> 3 mid-way: the joiner no longer wanted stops",
            want(3, 0),
            ensemble(&[1, 2, 3, 4], 1).running_uncommitted(5),
            stop(5),
        ),
        (
            "3 -> 5 -> 3 mid-way: the added member is removed",
            want(3, 0),
            ensemble(&[1, 2, 3, 4], 1),
            remove(4),
        ),
        (
            "5 -> 3 -> 5 mid-way: a removed member that still runs is added back",
            want(5, 0),
            ensemble(&[1, 2, 3, 5], 1).running_uncommitted(4),
            add(4),
        ),
        (
            "5 -> 3 -> 5 mid-way: the stopped member starts again",
            want(5, 0),
            ensemble(&[1, 2, 3, 4], 1),
            start(5, &[1, 2, 3, 4, 5]),
        ),
        (
            "3 -> 7 -> 5 mid-way: the next joiner is no longer started past the new size",
            want(5, 0),
            ensemble(&[1, 2, 3, 4, 5], 1).running_uncommitted(6),
            stop(6),
        ),
    ];
    let mut failures = Vec::new();
    for (name, desired, observed, expected) in &cases {
        let step = next_step(desired, observed);
        if &step != expected {
            failures.push(format!(
                "{name}:\n  expected {expected:?}\n  got      {step:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn steps_read_as_sentences_naming_pods() {
    let desired = want(3, 0);
    assert_eq!(
        start(4, &[1, 2, 3, 4]).describe(&desired),
        "start zk-3 (myid 4) with the committed servers and itself (1, 2, 3, 4), to join as a non-voting member"
    );
    assert_eq!(
        add(128).describe(&desired),
        "add zk-observer-0 (myid 128) to the ensemble as an observer"
    );
    assert_eq!(
        remove(5).describe(&desired),
        "remove zk-4 (myid 5) from the ensemble"
    );
    let refused = Step::Refuse(Refusal::MembersDown {
        change: Change::ScaleDown,
        down: ids(&[2]),
    });
    assert_eq!(
        refused.describe(&desired),
        "scale-down refused: zk-1 (myid 2) is down; a membership change now could leave the ensemble without a quorum. Bring it back and the scale-down continues"
    );
    assert!(refused.describe(&desired).contains("zk-1"));
    assert!(!refused.acts() && remove(5).acts() && !Step::Done.acts());
}

#[test]
fn the_committed_config_parses_as_zookeeper_writes_it() {
    let text = "server.1=127.0.0.2:2888:3888:participant;127.0.0.2:2181\nserver.2=127.0.0.3:2888:3888:participant;127.0.0.2:2181\nserver.128=127.0.0.129:2888:3888:observer;127.0.0.129:2181\nversion=10000002a";
    let membership = Membership::parse(text).unwrap();
    assert_eq!(membership.version, 0x1_0000_002a);
    assert_eq!(membership.version_hex(), "10000002a");
    assert_eq!(membership.voters(), ids(&[1, 2]));
    assert_eq!(membership.servers.get(&id(128)), Some(&Role::Observer));
    assert_eq!(
        Membership::parse("server.1=a:1:2\nversion=xyz"),
        Err(MembershipError::Version("xyz".into()))
    );
    assert_eq!(
        Membership::parse("server.300=a:1:2\n"),
        Err(MembershipError::ForeignId(300))
    );
    assert!(matches!(
        Membership::parse("tickTime=2000\n"),
        Err(MembershipError::Parse(_))
    ));
}

#[test]
fn configured_servers_are_the_committed_ones_the_joiner_and_the_one_starting() {
    let desired = want(5, 0);
    let observed = ensemble(&[1, 2, 3], 1).running_uncommitted(4);
    let servers = |step: &Step| {
        configured_servers(&desired, &observed, step)
            .unwrap()
            .into_keys()
            .collect::<Vec<_>>()
    };
    assert_eq!(servers(&add(4)), ids(&[1, 2, 3, 4]));
    assert_eq!(servers(&start(5, &[])), ids(&[1, 2, 3, 4, 5]));
    // A removed member that still runs is not listed: a restart of it must
    // not bring it back.
    let shrinking = ensemble(&[1, 2, 3], 1).running_uncommitted(4);
    assert_eq!(
        configured_servers(&want(3, 0), &shrinking, &stop(4))
            .unwrap()
            .into_keys()
            .collect::<Vec<_>>(),
        ids(&[1, 2, 3])
    );
    // A leader that handed over is restarted: while its pod terminates it
    // stays listed, so its next pod finds itself in the list.
    let mut restarting = ensemble(&[1, 2], 1).running_uncommitted(3);
    let old_leader = ids(&[3])[0];
    for m in &mut restarting.members {
        m.terminating = m.myid == old_leader;
    }
    assert_eq!(
        configured_servers(&want(3, 0), &restarting, &restart(3))
            .unwrap()
            .into_keys()
            .collect::<Vec<_>>(),
        ids(&[1, 2, 3])
    );
    let unknown = Observation {
        committed: None,
        ..observed.clone()
    };
    assert_eq!(configured_servers(&desired, &unknown, &Step::Done), None);
}

mod simulation;
