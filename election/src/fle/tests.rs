//! One rule per test: the reply table of §3.6, the LOOKING branch of §4.5,
//! finalizeWait and the back-off, the late-joiner rule of §4.6, non-voters,
//! and the Rust leader-loss rules of §4.10.

use std::time::Duration;

use super::*;
use crate::quorum::QuorumVerifier;

const WATCHER: i64 = (1 << 62) + 3;

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn p(leader: i64, zxid: i64, peer_epoch: i64) -> Proposal {
    Proposal {
        leader,
        zxid,
        peer_epoch,
    }
}

fn looking(leader: i64, election_epoch: i64) -> Vote {
    Vote::new(p(leader, 0, 0), election_epoch, ServerState::Looking).with_version(2)
}

fn settled(state: ServerState, leader: i64, election_epoch: i64) -> Vote {
    Vote::new(p(leader, 0, 0), election_epoch, state).with_version(2)
}

/// An election under test, with the time kept for it.
struct Peer {
    election: Election,
    now: Duration,
    last: Vec<Action>,
}

impl Peer {
    fn start(myid: i64, voters: &[i64]) -> Peer {
        Peer::start_with(myid, voters, |_| {})
    }

    fn start_with(myid: i64, voters: &[i64], adjust: impl FnOnce(&mut Settings)) -> Peer {
        let verifiers = Verifiers::new(QuorumVerifier::majority(voters.iter().copied()), 0);
        let mut settings = Settings::new(myid, verifiers);
        adjust(&mut settings);
        let (election, last) = Election::start(settings, Duration::ZERO);
        Peer {
            election,
            now: Duration::ZERO,
            last,
        }
    }

    fn at(&mut self, now: Duration) -> &mut Peer {
        self.now = now;
        self
    }

    fn receive(&mut self, from: i64, vote: Vote) -> &[Action] {
        self.last = self.election.step(self.now, Event::Received { from, vote });
        &self.last
    }

    fn event(&mut self, event: Event) -> &[Action] {
        self.last = self.election.step(self.now, event);
        &self.last
    }

    /// Fires a timer at its deadline.
    fn fire(&mut self, timer: Timer) -> &[Action] {
        let (_, at) = self
            .election
            .next_deadline()
            .filter(|(t, _)| *t == timer)
            .unwrap_or_else(|| panic!("{timer:?} is not the next deadline"));
        self.now = at;
        self.event(Event::Timer(timer))
    }

    fn sends(&self) -> Vec<(i64, Vote)> {
        sends(&self.last)
    }

    fn decided(&self) -> Option<Decision> {
        self.last.iter().find_map(|a| match a {
            Action::LeaderDecided(d) => Some(d.clone()),
            _ => None,
        })
    }

    fn timer_set(&self, timer: Timer) -> Option<Duration> {
        self.last.iter().rev().find_map(|a| match a {
            Action::SetTimer { timer: t, at } if *t == timer => Some(*at),
            _ => None,
        })
    }
}

fn sends(actions: &[Action]) -> Vec<(i64, Vote)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, vote } => Some((*to, *vote)),
            _ => None,
        })
        .collect()
}

/// Three voters: 1 and 2 elect 2 (2 is the peer under test).
fn elected_leader_2() -> Peer {
    let mut peer = Peer::start(2, &[1, 2, 3]);
    peer.at(ms(5)).receive(1, looking(2, 1));
    assert!(peer.timer_set(Timer::Finalize).is_some());
    peer.fire(Timer::Finalize);
    assert_eq!(peer.election.state(), ServerState::Leading);
    peer
}

#[test]
fn the_first_broadcast_goes_to_every_other_voter() {
    let peer = Peer::start(2, &[1, 2, 3]);
    assert_eq!(
        peer.sends(),
        vec![(1, looking(2, 1)), (3, looking(2, 1))],
        "our own vote is filed, not sent"
    );
    assert_eq!(peer.election.logical_clock(), 1);
    assert_eq!(peer.timer_set(Timer::Notification), Some(ms(200)));
    assert!(peer.last.contains(&Action::StateChanged {
        state: ServerState::Looking,
        reason: Reason::Started
    }));
}

// ---- the reply table of §3.6 -----------------------------------------------

#[test]
fn a_non_voter_is_answered_at_once_and_changes_nothing() {
    let mut peer = Peer::start(2, &[1, 2, 3]);
    let proposal = peer.election.proposal();
    let poll = Vote::new(Proposal::NULL, 0, ServerState::Looking);
    let actions = peer.at(ms(1)).receive(WATCHER, poll).to_vec();
    // State live, our current vote (our own, before any election), our clock.
    let reply = Vote {
        leader: 2,
        zxid: 0,
        election_epoch: 1,
        peer_epoch: 0,
        state: ServerState::Looking,
        version: 2,
    };
    assert_eq!(
        actions,
        vec![Action::Send {
            to: WATCHER,
            vote: reply
        }]
    );
    assert_eq!(peer.election.proposal(), proposal);

    // Settled: the live state and the current vote with our clock.
    let mut leader = elected_leader_2();
    let reply = leader.at(ms(300)).receive(WATCHER, poll).to_vec();
    assert_eq!(
        sends(&reply),
        vec![(WATCHER, settled(ServerState::Leading, 2, 1))]
    );
}

#[test]
fn a_lagging_looking_voter_is_brought_forward_with_our_proposal() {
    let mut peer = Peer::start(2, &[1, 2, 3]);
    peer.at(ms(1)).receive(3, looking(3, 4)); // adopt round 4 and vote 3
    peer.at(ms(2)).receive(1, looking(1, 2));
    assert_eq!(peer.sends(), vec![(1, looking(3, 4))]);
    // The same round gets no reply.
    peer.at(ms(3)).receive(1, looking(1, 4));
    assert_eq!(peer.sends(), vec![]);
}

#[test]
fn a_settled_member_answers_a_looking_voter_with_its_current_vote() {
    let mut leader = elected_leader_2();
    leader.at(ms(300)).receive(3, looking(3, 7));
    // The round of the current vote (1), not the asker's, and our state.
    assert_eq!(
        leader.sends(),
        vec![(3, settled(ServerState::Leading, 2, 1))]
    );
    assert_eq!(leader.election.state(), ServerState::Leading);
    // Settled to settled: ignored.
    leader
        .at(ms(301))
        .receive(3, settled(ServerState::Following, 1, 1));
    assert_eq!(leader.last, vec![]);
}

// ---- the LOOKING branch ----------------------------------------------------

#[test]
fn a_higher_round_is_adopted_and_judged_against_the_initial_vote() {
    let mut peer = Peer::start(2, &[1, 2, 3, 4, 5]);
    peer.at(ms(1)).receive(3, looking(3, 1));
    assert_eq!(peer.election.proposal(), p(3, 0, 0));
    // Round 5 proposes 1: worse than our *initial* vote 2, so we go back to
    // 2, not stay with 3.
    peer.at(ms(2)).receive(1, looking(1, 5));
    assert_eq!(peer.election.logical_clock(), 5);
    assert_eq!(peer.election.proposal(), p(2, 0, 0));
    let to: Vec<i64> = peer.sends().iter().map(|(to, _)| *to).collect();
    assert_eq!(to, vec![1, 3, 4, 5]);
    assert!(peer.sends().iter().all(|(_, vote)| *vote == looking(2, 5)));
}

#[test]
fn a_lower_round_does_not_count() {
    let mut peer = Peer::start(2, &[1, 2, 3, 4, 5]);
    peer.at(ms(1)).receive(3, looking(3, 4));
    peer.at(ms(2)).receive(1, looking(3, 3));
    assert!(
        peer.timer_set(Timer::Finalize).is_none(),
        "1's old vote is not counted"
    );
    peer.at(ms(3)).receive(1, looking(3, 4));
    assert!(peer.timer_set(Timer::Finalize).is_some());
}

#[test]
fn votes_for_non_voters_and_zxid_minus_one_are_dropped() {
    let mut peer = Peer::start(2, &[1, 2, 3]);
    peer.at(ms(1)).receive(1, looking(128, 1));
    assert_eq!(peer.election.proposal(), p(2, 0, 0));
    let minus_one = Vote::new(p(3, -1, 9), 1, ServerState::Looking).with_version(2);
    peer.at(ms(2)).receive(3, minus_one);
    assert_eq!(peer.election.proposal(), p(2, 0, 0), "ZOOKEEPER-261");
}

// ---- finalizeWait and the back-off -------------------------------------------

#[test]
fn finalize_waits_for_silence_and_gives_way_to_a_better_vote() {
    let mut peer = Peer::start(1, &[1, 2, 3]);
    peer.at(ms(10)).receive(2, looking(2, 1));
    assert_eq!(peer.timer_set(Timer::Finalize), Some(ms(210)));
    // A vote that is not better is discarded and restarts the wait.
    peer.at(ms(100)).receive(3, looking(2, 1));
    assert_eq!(peer.timer_set(Timer::Finalize), Some(ms(300)));
    // The first deadline is stale now.
    peer.at(ms(210)).event(Event::Timer(Timer::Finalize));
    assert_eq!(peer.decided(), None);
    // A better vote ends the wait and is adopted.
    peer.at(ms(250)).receive(3, looking(3, 1));
    assert_eq!(peer.election.proposal(), p(3, 0, 0));
    assert_eq!(peer.timer_set(Timer::Finalize), Some(ms(450)));
    peer.fire(Timer::Finalize);
    let decision = peer.decided().expect("decided");
    assert_eq!(
        (decision.leader, decision.state),
        (3, ServerState::Following)
    );
    assert_eq!(decision.reason, Reason::Finalized);
    assert_eq!(decision.supporters, [1, 3].into());
    assert_eq!(decision.took, ms(450));
    assert_eq!(peer.election.current_vote().election_epoch, 1);
}

#[test]
fn silence_re_broadcasts_with_a_doubling_interval_up_to_60_s() {
    let mut peer = Peer::start(1, &[1, 2, 3]);
    let mut intervals = Vec::new();
    let mut last = Duration::ZERO;
    for _ in 0..12 {
        let actions = peer.fire(Timer::Notification).to_vec();
        assert_eq!(sends(&actions).len(), 2, "re-sent to 2 and 3");
        intervals.push((peer.now - last).as_millis());
        last = peer.now;
    }
    assert_eq!(
        intervals,
        [
            200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000, 60000
        ]
    );
    // A message restarts the silence, at the current interval.
    peer.at(last + ms(10)).receive(2, looking(1, 1));
    assert_eq!(
        peer.timer_set(Timer::Notification),
        Some(last + ms(10) + ms(60_000))
    );
}

// ---- settled votes and the late joiner (§4.6) --------------------------------

#[test]
fn a_late_joiner_needs_a_quorum_of_others_and_the_leaders_own_word() {
    let mut joiner = Peer::start(3, &[1, 2, 3, 4, 5]);
    // Followers of 2, from round 7: not enough alone (checkLeader).
    joiner
        .at(ms(1))
        .receive(1, settled(ServerState::Following, 2, 7));
    joiner
        .at(ms(2))
        .receive(4, settled(ServerState::Following, 2, 7));
    assert_eq!(joiner.decided(), None);
    // The same answer again does not add up.
    joiner
        .at(ms(3))
        .receive(4, settled(ServerState::Following, 2, 7));
    assert_eq!(joiner.decided(), None);
    // The leader's own LEADING completes it: 1, 2, 4 are a quorum of 5.
    joiner
        .at(ms(4))
        .receive(2, settled(ServerState::Leading, 2, 7));
    let decision = joiner.decided().expect("joined");
    assert_eq!(decision.reason, Reason::JoinedEstablished);
    assert_eq!(decision.supporters, [1, 2, 4].into());
    assert_eq!(joiner.election.state(), ServerState::Following);
    assert_eq!(
        joiner.election.logical_clock(),
        7,
        "adopts the leader's round"
    );
}

#[test]
fn followers_without_their_leader_are_not_followed() {
    // §9.5 W8: both others follow 3, but 3 never said LEADING.
    let mut peer = Peer::start(2, &[1, 2, 3]);
    peer.at(ms(1))
        .receive(1, settled(ServerState::Following, 3, 1));
    peer.at(ms(2))
        .receive(3, settled(ServerState::Following, 3, 1));
    assert_eq!(peer.decided(), None);
    assert_eq!(peer.election.state(), ServerState::Looking);
}

#[test]
fn the_round_of_settled_votes_decides_by_leader_alone() {
    // Round 1, same as ours: 1 follows 3 and 3 leads, with another peer
    // epoch than the follower's (version 0 vs 2 makes §4.3 compare leaders).
    let mut peer = Peer::start(2, &[1, 2, 3]);
    peer.at(ms(1))
        .receive(1, settled(ServerState::Following, 3, 1));
    let mut leading = settled(ServerState::Leading, 3, 1);
    leading.peer_epoch = 1;
    peer.at(ms(2)).receive(3, leading);
    let decision = peer.decided().expect("decided");
    assert_eq!(decision.reason, Reason::FollowedRound);
    assert_eq!(decision.leader, 3);
}

// ---- non-voters (§4.7) -----------------------------------------------------

#[test]
fn a_non_voter_concludes_only_from_settled_answers() {
    let mut observer = Peer::start(128, &[1, 2, 3]);
    assert_eq!(observer.election.proposal(), Proposal::NULL);
    assert_eq!(
        observer
            .sends()
            .iter()
            .map(|(to, _)| *to)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // Stale LOOKING answers from two members sharing a dead leader's vote
    // (the §4.7 caveat): a real observer would follow 3; we do not.
    let stale = Vote::new(p(3, 0, 1), 2, ServerState::Looking).with_version(2);
    observer.at(ms(1)).receive(1, stale);
    observer.at(ms(2)).receive(2, stale);
    assert_eq!(observer.decided(), None);
    assert_eq!(observer.election.logical_clock(), 2, "the clock follows");
    observer
        .at(ms(3))
        .receive(1, settled(ServerState::Following, 2, 3));
    observer
        .at(ms(4))
        .receive(2, settled(ServerState::Leading, 2, 3));
    let decision = observer.decided().expect("decided");
    assert_eq!(decision.state, ServerState::Observing);
}

// ---- leader loss (§4.10) -------------------------------------------------------

fn follower_of_2() -> Peer {
    let mut peer = Peer::start(1, &[1, 2, 3]);
    peer.at(ms(1)).receive(2, looking(2, 1));
    peer.fire(Timer::Finalize);
    assert_eq!(peer.election.state(), ServerState::Following);
    peer
}

#[test]
fn a_follower_polls_its_leader_every_tick() {
    let mut peer = follower_of_2();
    let decided_at = peer.now;
    peer.fire(Timer::Tick);
    assert_eq!(peer.now, decided_at + ms(2000));
    assert_eq!(
        peer.sends(),
        vec![(2, settled(ServerState::Following, 2, 1))]
    );
    // A Rust leader answers the poll.
    let mut leader = elected_leader_2();
    leader
        .at(ms(400))
        .receive(1, settled(ServerState::Following, 2, 1));
    assert_eq!(
        leader.sends(),
        vec![(1, settled(ServerState::Leading, 2, 1))]
    );
}

#[test]
fn a_follower_looks_again_when_the_connection_to_its_leader_closes() {
    let mut peer = follower_of_2();
    peer.at(ms(500)).event(Event::Disconnected { sid: 3 });
    assert_eq!(peer.election.state(), ServerState::Following);
    peer.at(ms(600)).event(Event::Disconnected { sid: 2 });
    assert_eq!(peer.election.state(), ServerState::Looking);
    assert!(peer.last.contains(&Action::StateChanged {
        state: ServerState::Looking,
        reason: Reason::LeaderConnectionClosed
    }));
    assert_eq!(peer.election.logical_clock(), 2);
    // While LOOKING, non-voters still hear the old (stale) vote (§3.7).
    assert_eq!(peer.election.current_vote().leader, 2);
}

#[test]
fn a_follower_looks_again_when_its_leader_starts_a_new_round() {
    let mut peer = follower_of_2();
    // An old LOOKING (a replay from round 1) is answered, nothing more.
    peer.at(ms(500)).receive(2, looking(2, 1));
    assert_eq!(peer.election.state(), ServerState::Following);
    peer.at(ms(600)).receive(2, looking(2, 2));
    assert_eq!(peer.election.state(), ServerState::Looking);
}

#[test]
fn a_silent_leader_is_given_up_after_the_leader_timeout() {
    let mut peer = follower_of_2();
    let decided_at = peer.now;
    for _ in 0..4 {
        peer.fire(Timer::Tick);
        assert_eq!(peer.election.state(), ServerState::Following);
    }
    // The leader answers once; the timeout starts again from there.
    let answered = peer.now;
    peer.receive(2, settled(ServerState::Leading, 2, 1));
    peer.fire(Timer::Tick);
    assert_eq!(peer.election.state(), ServerState::Following);
    while peer.election.state() == ServerState::Following {
        peer.fire(Timer::Tick);
    }
    assert_eq!(peer.now, answered + ms(10_000));
    assert!(peer.now > decided_at + ms(10_000));
    assert!(peer.last.contains(&Action::StateChanged {
        state: ServerState::Looking,
        reason: Reason::LeaderSilent
    }));
}

#[test]
fn a_leader_steps_down_when_no_quorum_polls_it() {
    let mut leader = elected_leader_2();
    let decided_at = leader.now;
    // Follower 1 polls every tick: a quorum (1 and 2) is there.
    for _ in 0..8 {
        leader.fire(Timer::Tick);
        let now = leader.now;
        leader
            .at(now)
            .receive(1, settled(ServerState::Following, 2, 1));
    }
    assert_eq!(leader.election.state(), ServerState::Leading);
    // 1 goes quiet: after the leader timeout, it steps down.
    let quiet_from = leader.now;
    while leader.election.state() == ServerState::Leading {
        leader.fire(Timer::Tick);
    }
    assert!(leader.now >= quiet_from + ms(10_000));
    assert!(leader.now > decided_at);
    assert!(leader.last.contains(&Action::StateChanged {
        state: ServerState::Looking,
        reason: Reason::QuorumLost
    }));
}

#[test]
fn a_single_voter_elects_itself() {
    let mut peer = Peer::start(1, &[1]);
    assert!(peer.timer_set(Timer::Finalize).is_some());
    peer.fire(Timer::Finalize);
    assert_eq!(peer.election.state(), ServerState::Leading);
    // Alone, it is its own quorum and never steps down.
    for _ in 0..10 {
        peer.fire(Timer::Tick);
    }
    assert_eq!(peer.election.state(), ServerState::Leading);
}

#[test]
fn early_and_stale_timers_are_ignored() {
    let mut peer = Peer::start(1, &[1, 2, 3]);
    peer.at(ms(100)).event(Event::Timer(Timer::Notification));
    assert_eq!(peer.last, vec![], "early");
    peer.at(ms(100)).event(Event::Timer(Timer::Tick));
    assert_eq!(peer.last, vec![], "not armed");
}
