//! FastLeaderElection as a sans-IO state machine (spec §4), with the
//! WorkerReceiver reply table of §3.6 and the leader-loss rules a Rust peer
//! needs (§4.10). Events go in ([`Election::step`]), actions come out: send a
//! vote to a sid, set a timer, state changed, leader decided. No sockets,
//! clocks or tasks: the caller passes the time with every event, so the
//! tokio driver and the deterministic simulator run the same code.
//!
//! Shape, following `FastLeaderElection.lookForLeader`:
//! * LOOKING, collecting: every vote from a voter goes through the LOOKING /
//!   FOLLOWING / LEADING branches; silence for the notification interval
//!   re-broadcasts and doubles the interval (200 ms → 60 s).
//! * LOOKING, finalizing: a quorum agrees with our proposal; we decide once
//!   `finalizeWait` passes with no better vote. A better one sends us back to
//!   collecting; anything else is discarded and restarts the wait.
//! * FOLLOWING / LEADING / OBSERVING: answer LOOKING voters with our current
//!   vote, and watch the leader (§4.10): a follower polls its leader every
//!   tick and goes LOOKING when the connection to it closes, when it says
//!   LOOKING in a newer round, or when it has not answered for the leader
//!   timeout (`syncLimit × tickTime`); a leader steps down when a quorum has
//!   not polled it for that long.
//!
//! Two deliberate differences from ZooKeeper, both on the safe side:
//! * A non-voter concludes only from FOLLOWING/LEADING answers (§4.6 step 3).
//!   A real observer also counts LOOKING answers, whose votes are stale, and
//!   can follow a dead leader (§4.7 caveat).
//! * When the notification interval expires we always re-broadcast; the
//!   transport's newest-wins queues make that equivalent to ZooKeeper's
//!   choice between re-sending and `connectAll`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::quorum::Verifiers;
use crate::vote::{Proposal, Vote};
use crate::wire::{ServerState, VERSION_WITH_CONFIG};

/// What an election needs to know about its server and its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub myid: i64,
    /// The last logged zxid. Rust peers keep no log and use 0 (§4.10);
    /// never −1, which 3.6+ peers ignore.
    pub zxid: i64,
    /// The persisted current epoch.
    pub peer_epoch: i64,
    pub verifiers: Verifiers,
    /// `finalizeWait`: 200 ms.
    pub finalize_wait: Duration,
    /// `minNotificationInterval`: the first re-broadcast interval, 200 ms.
    pub min_notification_interval: Duration,
    /// `maxNotificationInterval`: where the doubling stops, 60 s.
    pub max_notification_interval: Duration,
    /// How often a settled peer polls its leader and a leader counts its
    /// followers: `tickTime`.
    pub tick: Duration,
    /// How long a leader may stay silent, or a quorum of followers may not
    /// poll, before a Rust peer gives up on the leadership: `syncLimit ×
    /// tickTime`.
    pub leader_timeout: Duration,
}

impl Settings {
    /// ZooKeeper's defaults, with `zoo_sample.cfg`'s tickTime 2000 ms and
    /// syncLimit 5; zxid and peer epoch 0.
    pub fn new(myid: i64, verifiers: Verifiers) -> Settings {
        Settings {
            myid,
            zxid: 0,
            peer_epoch: 0,
            verifiers,
            finalize_wait: Duration::from_millis(200),
            min_notification_interval: Duration::from_millis(200),
            max_notification_interval: Duration::from_secs(60),
            tick: Duration::from_millis(2000),
            leader_timeout: Duration::from_millis(10_000),
        }
    }
}

/// The election's timers; each has at most one deadline at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// LOOKING: the notification interval passed without a message.
    Notification,
    /// LOOKING: `finalizeWait` passed without a better vote.
    Finalize,
    /// Settled: poll the leader, count the followers.
    Tick,
}

impl Timer {
    const ALL: [Timer; 3] = [Timer::Notification, Timer::Finalize, Timer::Tick];

    fn index(self) -> usize {
        match self {
            Timer::Notification => 0,
            Timer::Finalize => 1,
            Timer::Tick => 2,
        }
    }
}

/// What happens to an election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A notification from `from`, decoded (the config is not needed here).
    Received { from: i64, vote: Vote },
    /// A connection to `sid` is up.
    Connected { sid: i64 },
    /// The connection to `sid` closed.
    Disconnected { sid: i64 },
    /// A deadline from [`Action::SetTimer`] has passed. Stale or early
    /// firings are ignored, so a driver may be sloppy.
    Timer(Timer),
}

/// What the election asks its driver to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this vote (as a notification with our config) to `to`.
    Send { to: i64, vote: Vote },
    /// Fire `timer` at `at` (replacing its earlier deadline).
    SetTimer { timer: Timer, at: Duration },
    /// Our state changed (every change, including back to LOOKING).
    StateChanged { state: ServerState, reason: Reason },
    /// An election ended.
    LeaderDecided(Decision),
}

/// Why the state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The election started.
    Started,
    /// A quorum agreed with our proposal and nothing better came within
    /// `finalizeWait`.
    Finalized,
    /// A quorum of our round follows a leader that said LEADING.
    FollowedRound,
    /// A quorum of settled members, from any round, names a leader that said
    /// LEADING: we joined an established leader (§4.6).
    JoinedEstablished,
    /// The connection to our leader closed.
    LeaderConnectionClosed,
    /// Our leader said LOOKING in a newer round.
    LeaderLooking,
    /// Our leader did not answer polls for the leader timeout.
    LeaderSilent,
    /// As leader, we were not polled by a quorum for the leader timeout.
    QuorumLost,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Started => "election started",
            Reason::Finalized => "a quorum agreed with our proposal",
            Reason::FollowedRound => "a quorum of this round follows the leader",
            Reason::JoinedEstablished => "joined an established leader",
            Reason::LeaderConnectionClosed => "the connection to the leader closed",
            Reason::LeaderLooking => "the leader started a new election",
            Reason::LeaderSilent => "the leader stopped answering",
            Reason::QuorumLost => "a quorum stopped following",
        }
    }
}

/// The outcome of one election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub leader: i64,
    /// LEADING, FOLLOWING or OBSERVING.
    pub state: ServerState,
    /// The new current vote.
    pub vote: Vote,
    pub reason: Reason,
    /// The sids whose votes formed the quorum.
    pub supporters: BTreeSet<i64>,
    /// From entering LOOKING to this decision.
    pub took: Duration,
}

/// Where a LOOKING election is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Collecting,
    Finalizing,
    Settled,
}

/// One server's FastLeaderElection.
#[derive(Debug, Clone)]
pub struct Election {
    settings: Settings,
    voter: bool,
    state: ServerState,
    phase: Phase,
    /// The logical clock (election epoch).
    clock: i64,
    proposal: Proposal,
    /// The outcome of the last election, or our own vote before the first;
    /// what settled servers and non-voters are told (§3.6, §3.7).
    current_vote: Vote,
    recvset: BTreeMap<i64, Vote>,
    outofelection: BTreeMap<i64, Vote>,
    notification_interval: Duration,
    deadlines: [Option<Duration>; 3],
    looking_since: Duration,
    settled_since: Duration,
    /// Following: when the leader last answered.
    leader_heard: Duration,
    /// Leading: when each follower last polled.
    followers_heard: BTreeMap<i64, Duration>,
    out: Vec<Action>,
}

impl Election {
    /// Starts the election subsystem at `now`: LOOKING, and the first
    /// broadcast.
    pub fn start(settings: Settings, now: Duration) -> (Election, Vec<Action>) {
        let voter = settings.verifiers.is_voter(settings.myid);
        // `QuorumPeer.startLeaderElection`: our own vote, in no round yet.
        let current_vote = Vote {
            leader: settings.myid,
            zxid: settings.zxid,
            election_epoch: -1,
            peer_epoch: settings.peer_epoch,
            state: ServerState::Looking,
            version: 0,
        };
        let mut election = Election {
            notification_interval: settings.min_notification_interval,
            settings,
            voter,
            state: ServerState::Looking,
            phase: Phase::Collecting,
            clock: 0,
            proposal: Proposal::NULL,
            current_vote,
            recvset: BTreeMap::new(),
            outofelection: BTreeMap::new(),
            deadlines: [None; 3],
            looking_since: now,
            settled_since: now,
            leader_heard: now,
            followers_heard: BTreeMap::new(),
            out: Vec::new(),
        };
        election.look_for_leader(now, Reason::Started);
        let actions = std::mem::take(&mut election.out);
        (election, actions)
    }

    /// Handles one event at `now` (monotonic time since any origin the
    /// driver chooses, never going backwards).
    pub fn step(&mut self, now: Duration, event: Event) -> Vec<Action> {
        match event {
            Event::Received { from, vote } => self.received(now, from, vote),
            Event::Connected { .. } => {}
            Event::Disconnected { sid } => {
                if self.follows(sid) {
                    self.look_for_leader(now, Reason::LeaderConnectionClosed);
                }
            }
            Event::Timer(timer) => self.timer(now, timer),
        }
        std::mem::take(&mut self.out)
    }

    pub fn myid(&self) -> i64 {
        self.settings.myid
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether we vote (a participant of the committed or pending config).
    pub fn is_voter(&self) -> bool {
        self.voter
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    /// The logical clock (election epoch).
    pub fn logical_clock(&self) -> i64 {
        self.clock
    }

    /// What we propose in the current election.
    pub fn proposal(&self) -> Proposal {
        self.proposal
    }

    /// The result of the last election (stale while LOOKING, §3.7).
    pub fn current_vote(&self) -> Vote {
        self.current_vote
    }

    /// The leader we follow or are, while settled.
    pub fn leader(&self) -> Option<i64> {
        (self.state != ServerState::Looking).then_some(self.current_vote.leader)
    }

    /// Our vote as we first cast it in every election (§4.1).
    pub fn initial_proposal(&self) -> Proposal {
        if self.voter {
            Proposal {
                leader: self.settings.myid,
                zxid: self.settings.zxid,
                peer_epoch: self.settings.peer_epoch,
            }
        } else {
            Proposal::NULL
        }
    }

    /// The earliest armed deadline, for drivers that keep one sleep.
    pub fn next_deadline(&self) -> Option<(Timer, Duration)> {
        Timer::ALL
            .iter()
            .filter_map(|t| self.deadlines[t.index()].map(|at| (*t, at)))
            .min_by_key(|(_, at)| *at)
    }

    // ---- entering and leaving LOOKING -------------------------------------

    /// `lookForLeader`'s start: a new round with our initial vote.
    fn look_for_leader(&mut self, now: Duration, reason: Reason) {
        self.state = ServerState::Looking;
        self.phase = Phase::Collecting;
        self.out.push(Action::StateChanged {
            state: ServerState::Looking,
            reason,
        });
        // Java's AtomicLong wraps; a peer can push our clock to i64::MAX.
        self.clock = self.clock.wrapping_add(1);
        self.recvset.clear();
        self.outofelection.clear();
        self.followers_heard.clear();
        self.proposal = self.initial_proposal();
        self.notification_interval = self.settings.min_notification_interval;
        self.looking_since = now;
        self.disarm(Timer::Tick);
        self.disarm(Timer::Finalize);
        self.broadcast();
        self.arm(Timer::Notification, now + self.notification_interval);
        // A single voter agrees with itself.
        self.check_round_agreement(now);
    }

    fn decide(&mut self, now: Duration, vote: Vote, reason: Reason, supporters: BTreeSet<i64>) {
        let state = if vote.leader == self.settings.myid {
            ServerState::Leading
        } else if self.voter {
            ServerState::Following
        } else {
            ServerState::Observing
        };
        self.state = state;
        self.phase = Phase::Settled;
        self.current_vote = vote;
        self.recvset.clear();
        self.outofelection.clear();
        self.disarm(Timer::Notification);
        self.disarm(Timer::Finalize);
        self.settled_since = now;
        self.leader_heard = now;
        self.followers_heard.clear();
        self.out.push(Action::LeaderDecided(Decision {
            leader: vote.leader,
            state,
            vote,
            reason,
            supporters,
            took: now.saturating_sub(self.looking_since),
        }));
        self.out.push(Action::StateChanged { state, reason });
        // The first poll waits a tick: sent now, it would restart a leader's
        // finalize window that is still open.
        self.arm(Timer::Tick, now + self.settings.tick);
    }

    // ---- receiving --------------------------------------------------------

    /// `WorkerReceiver.run` (§3.6), then the election proper.
    fn received(&mut self, now: Duration, from: i64, n: Vote) {
        if from == self.settings.myid {
            return; // our own votes never come back through the network
        }
        if !self.settings.verifiers.is_voter(from) {
            // A non-voter (observer, watcher): answer at once, keep nothing.
            let reply = Vote {
                state: self.state,
                election_epoch: self.clock,
                ..self.current_vote
            };
            self.send(from, reply);
            return;
        }
        if self.state == ServerState::Looking {
            if n.state == ServerState::Looking && n.election_epoch < self.clock {
                // Bring a lagging voter forward with our current proposal.
                self.send(
                    from,
                    Vote::new(self.proposal, self.clock, ServerState::Looking),
                );
            }
            self.election_message(now, from, n);
        } else {
            if n.state == ServerState::Looking {
                self.send(
                    from,
                    Vote {
                        state: self.state,
                        ..self.current_vote
                    },
                );
            }
            self.settled_message(now, from, n);
        }
    }

    /// A voter's message reaching `lookForLeader` (its receive queue).
    fn election_message(&mut self, now: Duration, from: i64, n: Vote) {
        if self.phase == Phase::Finalizing {
            if self.beats(&n.proposal(), &self.proposal) {
                // Put it back and return to the main loop.
                self.phase = Phase::Collecting;
                self.disarm(Timer::Finalize);
            } else {
                // Discarded; each message restarts the wait.
                self.arm(Timer::Finalize, now + self.settings.finalize_wait);
                return;
            }
        }
        self.arm(Timer::Notification, now + self.notification_interval);
        if !self.settings.verifiers.is_voter(n.leader) {
            return; // a vote for a non-voter
        }
        match n.state {
            ServerState::Looking => self.looking_vote(now, from, n),
            ServerState::Observing => {}
            ServerState::Following | ServerState::Leading => self.settled_vote(now, from, n),
        }
    }

    /// The LOOKING branch of `lookForLeader`.
    fn looking_vote(&mut self, now: Duration, from: i64, n: Vote) {
        if !self.voter {
            // A non-voter keeps the clock only; see the module docs.
            self.clock = self.clock.max(n.election_epoch);
            return;
        }
        if self.settings.zxid == -1 || n.zxid == -1 {
            return; // ZOOKEEPER-261 (3.6+)
        }
        if n.election_epoch > self.clock {
            self.clock = n.election_epoch;
            self.recvset.clear();
            let initial = self.initial_proposal();
            // Against our *initial* vote, not the current proposal.
            self.proposal = if self.beats(&n.proposal(), &initial) {
                n.proposal()
            } else {
                initial
            };
            self.broadcast();
        } else if n.election_epoch < self.clock {
            return;
        } else if self.beats(&n.proposal(), &self.proposal) {
            self.proposal = n.proposal();
            self.broadcast();
        }
        self.recvset.insert(
            from,
            Vote::new(n.proposal(), n.election_epoch, ServerState::Looking),
        );
        self.check_round_agreement(now);
    }

    /// Whether a quorum of this round agrees with our proposal; if so, start
    /// `finalizeWait`.
    fn check_round_agreement(&mut self, now: Duration) {
        if !self.voter || self.phase != Phase::Collecting {
            return;
        }
        let reference = Vote::new(self.proposal, self.clock, ServerState::Looking);
        if self.agreement(&self.recvset, &reference).is_some() {
            self.phase = Phase::Finalizing;
            self.disarm(Timer::Notification);
            self.arm(Timer::Finalize, now + self.settings.finalize_wait);
        }
    }

    /// The FOLLOWING / LEADING branches (`receivedFollowingNotification`,
    /// `receivedLeadingNotification` without the 3.8 two-voter oracle).
    fn settled_vote(&mut self, now: Duration, from: i64, n: Vote) {
        let reference = n; // keeps n's version, so §4.3 matches on leader alone
        if n.election_epoch == self.clock {
            self.recvset.insert(
                from,
                Vote::new(n.proposal(), n.election_epoch, n.state).with_version(0),
            );
            if let Some(supporters) = self.agreement(&self.recvset, &reference)
                && self.check_leader(&self.recvset, n.leader, n.election_epoch)
            {
                let vote = Vote::new(n.proposal(), n.election_epoch, ServerState::Looking);
                self.decide(now, vote, Reason::FollowedRound, supporters);
                return;
            }
        }
        self.outofelection.insert(from, n);
        if let Some(supporters) = self.agreement(&self.outofelection, &reference)
            && self.check_leader(&self.outofelection, n.leader, n.election_epoch)
        {
            self.clock = n.election_epoch;
            let vote = Vote::new(n.proposal(), n.election_epoch, ServerState::Looking);
            self.decide(now, vote, Reason::JoinedEstablished, supporters);
        }
    }

    /// A voter's message while we are FOLLOWING, LEADING or OBSERVING: the
    /// leader-loss rules of §4.10 (ZooKeeper ignores these).
    fn settled_message(&mut self, now: Duration, from: i64, n: Vote) {
        let leader = self.current_vote.leader;
        match self.state {
            ServerState::Following | ServerState::Observing if from == leader => {
                if n.state == ServerState::Leading && n.leader == leader {
                    self.leader_heard = now;
                } else if n.state == ServerState::Looking
                    && n.election_epoch > self.current_vote.election_epoch
                {
                    self.look_for_leader(now, Reason::LeaderLooking);
                }
            }
            ServerState::Leading
                if n.state == ServerState::Following && n.leader == self.settings.myid =>
            {
                self.followers_heard.insert(from, now);
                self.send(
                    from,
                    Vote {
                        state: ServerState::Leading,
                        ..self.current_vote
                    },
                );
            }
            _ => {}
        }
    }

    // ---- timers -----------------------------------------------------------

    fn timer(&mut self, now: Duration, timer: Timer) {
        match self.deadlines[timer.index()] {
            Some(at) if at <= now => self.disarm(timer),
            _ => return, // stale or early
        }
        match timer {
            Timer::Notification => {
                self.broadcast();
                self.notification_interval = self
                    .notification_interval
                    .saturating_mul(2)
                    .min(self.settings.max_notification_interval);
                self.arm(Timer::Notification, now + self.notification_interval);
                // ZooKeeper's own looped-back vote re-checks agreement here.
                self.check_round_agreement(now);
            }
            Timer::Finalize => {
                let reference = Vote::new(self.proposal, self.clock, ServerState::Looking);
                let supporters = self
                    .agreement(&self.recvset, &reference)
                    .unwrap_or_default();
                self.decide(now, reference, Reason::Finalized, supporters);
            }
            Timer::Tick => self.tick(now),
        }
    }

    fn tick(&mut self, now: Duration) {
        let timeout = self.settings.leader_timeout;
        match self.state {
            ServerState::Following | ServerState::Observing => {
                if now.saturating_sub(self.leader_heard) >= timeout {
                    self.look_for_leader(now, Reason::LeaderSilent);
                    return;
                }
                self.poll_leader();
            }
            ServerState::Leading => {
                let mut alive: BTreeSet<i64> = self
                    .followers_heard
                    .iter()
                    .filter(|(_, heard)| now.saturating_sub(**heard) < timeout)
                    .map(|(sid, _)| *sid)
                    .collect();
                alive.insert(self.settings.myid);
                if now.saturating_sub(self.settled_since) >= timeout
                    && !self.settings.verifiers.has_all_quorums(&alive)
                {
                    self.look_for_leader(now, Reason::QuorumLost);
                    return;
                }
            }
            ServerState::Looking => return,
        }
        self.arm(Timer::Tick, now + self.settings.tick);
    }

    // ---- helpers ----------------------------------------------------------

    fn follows(&self, sid: i64) -> bool {
        matches!(self.state, ServerState::Following | ServerState::Observing)
            && self.current_vote.leader == sid
    }

    /// A settled follower's poll: our current vote, to the leader.
    fn poll_leader(&mut self) {
        if matches!(self.state, ServerState::Following | ServerState::Observing) {
            let vote = Vote {
                state: self.state,
                ..self.current_vote
            };
            self.send(self.current_vote.leader, vote);
        }
    }

    /// `sendNotifications`: our proposal to every voter; our own vote is
    /// filed directly (ZooKeeper loops it back through its queue).
    fn broadcast(&mut self) {
        let vote = Vote::new(self.proposal, self.clock, ServerState::Looking);
        for sid in self.settings.verifiers.voters() {
            if sid == self.settings.myid {
                self.recvset.insert(sid, vote);
            } else {
                self.send(sid, vote);
            }
        }
    }

    fn send(&mut self, to: i64, vote: Vote) {
        self.out.push(Action::Send {
            to,
            vote: vote.with_version(VERSION_WITH_CONFIG),
        });
    }

    fn arm(&mut self, timer: Timer, at: Duration) {
        self.deadlines[timer.index()] = Some(at);
        self.out.push(Action::SetTimer { timer, at });
    }

    fn disarm(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    fn beats(&self, new: &Proposal, cur: &Proposal) -> bool {
        new.beats(cur, self.settings.verifiers.weight(new.leader))
    }

    /// The sids whose votes equal `reference` (§4.3), when they form a
    /// quorum in every counted config; `None` otherwise.
    fn agreement(&self, votes: &BTreeMap<i64, Vote>, reference: &Vote) -> Option<BTreeSet<i64>> {
        let agreeing: BTreeSet<i64> = votes
            .iter()
            .filter(|(_, vote)| reference.agrees_with(vote))
            .map(|(sid, _)| *sid)
            .collect();
        self.settings
            .verifiers
            .has_all_quorums(&agreeing)
            .then_some(agreeing)
    }

    /// `checkLeader` (§4.4): another leader must itself have said LEADING;
    /// ourselves only in the round we are in.
    fn check_leader(&self, votes: &BTreeMap<i64, Vote>, leader: i64, election_epoch: i64) -> bool {
        if leader != self.settings.myid {
            votes
                .get(&leader)
                .is_some_and(|v| v.state == ServerState::Leading)
        } else {
            self.clock == election_epoch
        }
    }
}

#[cfg(test)]
mod tests;
