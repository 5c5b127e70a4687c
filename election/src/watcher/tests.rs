//! The watcher driven by a simulated ensemble whose members answer as a 3.5+
//! server answers a non-voter (§3.6): at once, with their live state, their
//! current vote, their logical clock and their own committed config.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::wire::{VERSION_WITH_CONFIG, watcher_bootstrap};

const S: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

fn config_text(members: &[i64], version: &str, tag: i64) -> Vec<u8> {
    // `tag` makes each member's bytes differ (as line order may in real
    // replies), so echoes can be traced to the member that sent them.
    let mut lines: Vec<String> = members
        .iter()
        .map(|id| {
            let role = if *id >= 128 {
                "observer"
            } else {
                "participant"
            };
            format!("server.{id}=127.0.0.{id}:2888:3888:{role};2181")
        })
        .collect();
    lines.rotate_left(usize::try_from(tag).unwrap_or(0) % members.len());
    lines.push(format!("version={version}"));
    lines.join("\n").into_bytes()
}

#[derive(Debug, Clone)]
struct Fake {
    state: ServerState,
    leader: i64,
    peer_epoch: i64,
    election_epoch: i64,
    config: Vec<u8>,
    /// Accepts connections.
    up: bool,
    /// Reads but never answers (a paused process: its kernel still accepts
    /// connections and takes bytes in).
    silent: bool,
    /// Cut off from the watcher by a partition: nothing gets through.
    cut: bool,
    /// How long it takes to answer a poll.
    latency: Duration,
}

impl Fake {
    fn answer(&self) -> Vec<u8> {
        Notification {
            state: self.state,
            leader: self.leader,
            zxid: 0,
            election_epoch: self.election_epoch,
            peer_epoch: self.peer_epoch,
            version: VERSION_WITH_CONFIG,
            config: Some(self.config.clone()),
        }
        .encode()
        .unwrap()
    }
}

/// Three voters, 3 leading in epoch 1.
fn ensemble() -> BTreeMap<i64, Fake> {
    (1..=3)
        .map(|sid| {
            let state = if sid == 3 {
                ServerState::Leading
            } else {
                ServerState::Following
            };
            (
                sid,
                Fake {
                    state,
                    leader: 3,
                    peer_epoch: 1,
                    election_epoch: 1,
                    config: config_text(&[1, 2, 3], "0", sid),
                    up: true,
                    silent: false,
                    cut: false,
                    latency: Duration::ZERO,
                },
            )
        })
        .collect()
}

/// The config file of an ensemble with these members.
fn initial(sids: &[i64]) -> QuorumConfig {
    QuorumConfig::parse(&config_text(sids, "0", 0)).unwrap()
}

fn myid(id: i64) -> Myid {
    Myid::new(id).unwrap()
}

fn config() -> WatcherConfig {
    WatcherConfig::new(myid(1), Some(ElectionAddress::new("127.0.0.1", 3888)))
}

/// A dial into a partition: its SYN is retransmitted 1 s and 3 s after it
/// was first sent, and it fails at the watcher's connect time-out (2 s).
const SYN_RETRIES: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(3)];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// When bytes sent at `sent` and not yet acknowledged are retransmitted:
/// 200 ms, then doubling (Linux on loopback). The first at or after `now`.
fn next_retransmission(sent: Instant, now: Instant) -> Instant {
    let mut rto = 200 * MS;
    let mut at = sent + rto;
    while at < now {
        rto *= 2;
        at += rto;
    }
    at
}

/// The watcher and simulated members, modelled as ZooKeeper's connection
/// manager behaves towards a watcher's sid: a member answers on the newest
/// connection it accepted (accepting one closes the one before); when it
/// must answer and holds none, a real member logs `Invalid server id`
/// (recorded in `harm`).
struct Sim {
    w: Watcher,
    now: Instant,
    fakes: BTreeMap<i64, Fake>,
    /// The watcher's open connections, per member, oldest first.
    open: BTreeMap<i64, Vec<u64>>,
    /// The connection each member answers on.
    answers_on: BTreeMap<i64, u64>,
    /// Connections a paused member has not accepted yet.
    backlog: BTreeMap<i64, Vec<u64>>,
    /// Dials waiting on a partition: (first SYN, sid, conn).
    dialing: Vec<(Instant, i64, u64)>,
    /// Polls sent into a partition, not acknowledged: (sent, sid, conn).
    in_transit: Vec<(Instant, i64, u64)>,
    /// Answers a slow member still owes: (due, sid).
    owed: Vec<(Instant, i64)>,
    /// Every Send, with when and on which connection.
    sent: Vec<(Instant, i64, u64, Vec<u8>)>,
    /// Polls a silent member has read and not answered yet, per sid.
    unanswered: BTreeMap<i64, usize>,
    /// What a real member would have logged from the harm list.
    harm: Vec<String>,
    events: Vec<Event>,
    connects: Vec<(Instant, i64)>,
}

impl Sim {
    fn new(fakes: BTreeMap<i64, Fake>, config: WatcherConfig) -> Sim {
        let now = Instant::now();
        let sids: Vec<i64> = fakes.keys().copied().collect();
        let w = Watcher::new(config, &initial(&sids), now).unwrap();
        let mut sim = Sim {
            w,
            now,
            fakes,
            open: BTreeMap::new(),
            answers_on: BTreeMap::new(),
            backlog: BTreeMap::new(),
            dialing: Vec::new(),
            in_transit: Vec::new(),
            owed: Vec::new(),
            sent: Vec::new(),
            unanswered: BTreeMap::new(),
            harm: Vec::new(),
            events: Vec::new(),
            connects: Vec::new(),
        };
        sim.pump();
        sim
    }

    /// The watcher's newest open connection to `sid`.
    fn current(&self, sid: i64) -> u64 {
        *self.open[&sid].last().unwrap()
    }

    fn is_open(&self, sid: i64, conn: u64) -> bool {
        self.open.get(&sid).is_some_and(|c| c.contains(&conn))
    }

    fn forget(&mut self, sid: i64, conn: u64) {
        if let Some(conns) = self.open.get_mut(&sid) {
            conns.retain(|c| *c != conn);
            if conns.is_empty() {
                self.open.remove(&sid);
            }
        }
    }

    /// Carries out the watcher's actions as the simulated members would
    /// react, until there are none left.
    fn pump(&mut self) {
        loop {
            self.events.extend(self.w.take_events());
            let actions = self.w.take_actions();
            if actions.is_empty() {
                break;
            }
            for action in actions {
                match action {
                    Action::Connect { sid, conn, to } => {
                        assert_eq!(to, ElectionAddress::new(format!("127.0.0.{sid}"), 3888));
                        let open = self.open.get(&sid).map_or(0, Vec::len);
                        assert!(open < 2, "at most two connections per member");
                        assert!(
                            !self.dialing.iter().any(|d| d.1 == sid),
                            "one dial at a time per member"
                        );
                        self.connects.push((self.now, sid));
                        let fake = &self.fakes[&sid];
                        if fake.cut {
                            self.dialing.push((self.now, sid, conn));
                        } else if fake.up {
                            self.established(sid, conn);
                        } else {
                            let error = LinkError::new("connect", "connection refused");
                            self.w
                                .handle(Input::ConnectFailed { sid, conn, error }, self.now);
                        }
                    }
                    Action::Send { sid, conn, payload } => {
                        assert!(self.is_open(sid, conn), "send on an open connection");
                        self.sent.push((self.now, sid, conn, payload));
                        if self.fakes[&sid].cut {
                            self.in_transit.push((self.now, sid, conn));
                        } else {
                            self.deliver(sid);
                        }
                    }
                    Action::Close { sid, conn } => {
                        if let Some(i) = self.dialing.iter().position(|d| d.2 == conn) {
                            self.dialing.remove(i); // abandoned
                            continue;
                        }
                        assert!(self.is_open(sid, conn), "close an open connection");
                        self.forget(sid, conn);
                        // A reset: what the member has not received is gone.
                        self.in_transit.retain(|t| t.2 != conn);
                        if let Some(b) = self.backlog.get_mut(&sid) {
                            b.retain(|c| *c != conn);
                        }
                        if !self.fakes[&sid].cut && self.answers_on.get(&sid) == Some(&conn) {
                            self.answers_on.remove(&sid);
                        }
                    }
                }
            }
        }
    }

    /// A connection to `sid` is up as far as the watcher's kernel knows.
    fn established(&mut self, sid: i64, conn: u64) {
        self.open.entry(sid).or_default().push(conn);
        self.w.handle(Input::Connected { sid, conn }, self.now);
        if self.fakes[&sid].silent {
            self.backlog.entry(sid).or_default().push(conn);
        } else {
            self.accept(sid, conn);
        }
    }

    /// The member accepts `conn` and closes the connection it held before.
    fn accept(&mut self, sid: i64, conn: u64) {
        if let Some(old) = self.answers_on.insert(sid, conn)
            && old != conn
            && self.is_open(sid, old)
        {
            self.forget(sid, old);
            let error = LinkError::new("closed", "replaced by the member");
            self.w.handle(
                Input::Closed {
                    sid,
                    conn: old,
                    error,
                },
                self.now,
            );
        }
    }

    /// A poll reaches member `sid`.
    fn deliver(&mut self, sid: i64) {
        let fake = &self.fakes[&sid];
        if fake.silent {
            *self.unanswered.entry(sid).or_default() += 1;
        } else if fake.latency > Duration::ZERO {
            self.owed.push((self.now + fake.latency, sid));
        } else {
            self.answer(sid);
        }
    }

    /// Member `sid` answers a poll it read.
    fn answer(&mut self, sid: i64) {
        match self.answers_on.get(&sid).copied() {
            Some(conn) if self.is_open(sid, conn) => {
                let payload = self.fakes[&sid].answer();
                self.w
                    .handle(Input::Received { sid, conn, payload }, self.now);
            }
            // Reset by the watcher during a partition: the answer is lost
            // and the member's connection breaks.
            Some(_) => {
                self.answers_on.remove(&sid);
            }
            None => self.harm.push(format!(
                "member {sid}: Invalid server id (an answer with no connection) at {:?}",
                self.now
            )),
        }
    }

    /// When the simulated network or members next do something by
    /// themselves.
    fn next_sim_event(&self) -> Option<Instant> {
        let dials = self.dialing.iter().map(|(t0, sid, _)| {
            let syn = SYN_RETRIES
                .iter()
                .map(|d| *t0 + *d)
                .find(|at| *at >= self.now && !self.fakes[sid].cut);
            syn.unwrap_or(*t0 + CONNECT_TIMEOUT)
                .min(*t0 + CONNECT_TIMEOUT)
        });
        let resent = self
            .in_transit
            .iter()
            .filter(|t| !self.fakes[&t.1].cut)
            .map(|(sent, _, _)| next_retransmission(*sent, self.now));
        let owed = self.owed.iter().map(|(due, _)| *due);
        dials.chain(resent).chain(owed).min()
    }

    /// Carries out what the network and members do at `now`.
    fn fire_sim_events(&mut self) {
        let now = self.now;
        for (t0, sid, conn) in std::mem::take(&mut self.dialing) {
            let through = !self.fakes[&sid].cut
                && SYN_RETRIES.iter().any(|d| t0 + *d == now)
                && t0 + CONNECT_TIMEOUT > now;
            if through {
                self.established(sid, conn);
            } else if now >= t0 + CONNECT_TIMEOUT {
                let error = LinkError::new("connect_timeout", "connecting timed out");
                self.w
                    .handle(Input::ConnectFailed { sid, conn, error }, now);
            } else {
                self.dialing.push((t0, sid, conn));
            }
        }
        for (sent, sid, conn) in std::mem::take(&mut self.in_transit) {
            if !self.fakes[&sid].cut && next_retransmission(sent, now) == now {
                if self.is_open(sid, conn) {
                    self.deliver(sid);
                }
            } else {
                self.in_transit.push((sent, sid, conn));
            }
        }
        let (due, later) = std::mem::take(&mut self.owed)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.owed = later;
        for (_, sid) in due {
            self.answer(sid);
        }
        self.pump();
    }

    /// Lets time pass, ticking at every deadline.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        loop {
            let watcher = self.w.next_deadline();
            let sim = self.next_sim_event();
            let Some(next) = [watcher, sim]
                .into_iter()
                .flatten()
                .min()
                .filter(|d| *d <= until)
            else {
                break;
            };
            assert!(next >= self.now, "a deadline in the past would spin");
            self.now = next;
            if sim == Some(next) {
                self.fire_sim_events();
            }
            if watcher == Some(next) {
                self.w.handle(Input::Tick, self.now);
                self.pump();
            }
        }
        self.now = until;
        self.w.handle(Input::Tick, self.now);
        self.pump();
    }

    /// The member's process dies: its connections break at once.
    fn kill(&mut self, sid: i64) {
        self.fakes.get_mut(&sid).unwrap().up = false;
        self.answers_on.remove(&sid);
        self.backlog.remove(&sid);
        self.unanswered.remove(&sid);
        for conn in self.open.remove(&sid).unwrap_or_default() {
            let error = LinkError::new("closed", "closed by the member");
            self.w.handle(Input::Closed { sid, conn, error }, self.now);
        }
        self.pump();
    }

    /// A paused member resumes: it accepts the connections waiting for it
    /// and answers the polls it read meanwhile.
    fn resume(&mut self, sid: i64) {
        self.fakes.get_mut(&sid).unwrap().silent = false;
        for conn in self.backlog.remove(&sid).unwrap_or_default() {
            self.accept(sid, conn);
        }
        let answers = self.unanswered.remove(&sid).unwrap_or(0);
        for _ in 0..answers {
            self.answer(sid);
        }
        self.pump();
    }

    /// A paused member resumes in the other order: it answers the polls it
    /// read meanwhile on the connection it still holds, then sends once more
    /// to the watcher's sid (as ZooKeeper may, for example on leaving the
    /// leader's role), and only then accepts the connections waiting for it.
    fn resume_answering_first(&mut self, sid: i64) {
        self.fakes.get_mut(&sid).unwrap().silent = false;
        let answers = self.unanswered.remove(&sid).unwrap_or(0);
        for _ in 0..answers {
            self.answer(sid);
            self.pump();
        }
        self.answer(sid);
        self.pump();
        for conn in self.backlog.remove(&sid).unwrap_or_default() {
            self.accept(sid, conn);
        }
        self.pump();
    }

    /// A partition between the watcher and `sid` starts or ends.
    fn cut(&mut self, sid: i64, cut: bool) {
        self.fakes.get_mut(&sid).unwrap().cut = cut;
    }

    fn set(&mut self, sid: i64, state: ServerState, leader: i64, peer_epoch: i64, ee: i64) {
        let f = self.fakes.get_mut(&sid).unwrap();
        (f.state, f.leader, f.peer_epoch, f.election_epoch) = (state, leader, peer_epoch, ee);
    }

    fn leader(&self) -> Option<(i64, i64, Phase)> {
        self.w
            .view(self.now)
            .leader
            .map(|l| (l.leader, l.peer_epoch, l.phase))
    }

    fn polls_to(&self, sid: i64) -> Vec<&(Instant, i64, u64, Vec<u8>)> {
        self.sent.iter().filter(|s| s.1 == sid).collect()
    }
}

#[test]
fn polls_bootstrap_first_then_echo_that_members_own_config() {
    let mut sim = Sim::new(ensemble(), config());
    sim.advance(3 * S);
    for sid in 1..=3 {
        let polls = sim.polls_to(sid);
        assert_eq!(polls.len(), 4, "at 0, 1, 2 and 3 s");
        assert_eq!(polls[0].3, watcher_bootstrap(0), "bootstrap first");
        for poll in &polls[1..] {
            let n = Notification::decode(&poll.3).unwrap();
            assert_eq!(n.state, ServerState::Looking);
            assert_eq!(
                (n.leader, n.zxid, n.peer_epoch),
                (i64::MIN, i64::MIN, i64::MIN)
            );
            assert_eq!(
                n.config.unwrap(),
                sim.fakes[&sid].config,
                "member {sid}'s own bytes"
            );
        }
    }
    assert_eq!(sim.leader(), Some((3, 1, Phase::Established)));
    // A new connection starts with a bootstrap again.
    sim.kill(2);
    sim.fakes.get_mut(&2).unwrap().up = true;
    sim.advance(3 * S);
    let first = sim.polls_to(2)[0].2;
    let after: Vec<_> = sim
        .polls_to(2)
        .into_iter()
        .filter(|p| p.2 != first)
        .collect();
    assert_eq!(after[0].3, watcher_bootstrap(0));
    assert!(after.len() >= 2);
}

#[test]
fn never_two_polls_in_flight_nor_closer_than_the_interval() {
    // Random schedules of pauses, kills, restarts, elections and local
    // states; the rate rules must hold in every one (D11).
    let mut harms = 0;
    for seed in 0..300u64 {
        let mut rng = schedule::Jitter::new(seed);
        let mut sim = Sim::new(ensemble(), config());
        for _ in 0..60 {
            let r = rng.next();
            let sid = 1 + (rng.next() * 3.0) as i64;
            match (r * 8.0) as u32 {
                0 => sim.kill(sid),
                1 => sim.fakes.get_mut(&sid).unwrap().up = true,
                2 => sim.fakes.get_mut(&sid).unwrap().silent = true,
                3 => sim.resume(sid),
                4 => sim.set(sid, ServerState::Looking, sid, 1, 2),
                5 => {
                    let local = [
                        LocalServer::Serving,
                        LocalServer::NotServing,
                        LocalServer::Down,
                    ][(rng.next() * 3.0) as usize];
                    sim.w.handle(Input::Local(local), sim.now);
                    sim.pump();
                }
                _ => {}
            }
            sim.advance(Duration::from_millis((rng.next() * 2500.0) as u64));
        }
        for sid in 1..=3 {
            let polls = sim.polls_to(sid);
            for pair in polls.windows(2) {
                let gap = pair[1].0 - pair[0].0;
                assert!(gap >= S, "seed {seed}: member {sid} polled {gap:?} apart");
            }
        }
        harms += sim.harm.len();
    }
    assert_eq!(harms, 0, "answers a member had no connection for");
}

#[test]
fn a_killed_leader_is_noticed_at_once_and_its_successor_counted() {
    let mut sim = Sim::new(ensemble(), config());
    sim.advance(2 * S);
    assert_eq!(sim.leader(), Some((3, 1, Phase::Established)));
    sim.events.clear();
    sim.kill(3);
    assert!(sim.events.contains(&Event::Unreachable {
        sid: 3,
        reason: "closed by the member".into()
    }));
    assert!(sim.events.contains(&Event::Leader(LeaderEvent::Lost {
        leader: 3,
        peer_epoch: 1
    })));
    assert_eq!(
        sim.leader(),
        None,
        "no leader the moment its connection breaks"
    );
    // Members 1 and 2 elect 2 (§9.5 W2 → W3 → W5).
    sim.set(1, ServerState::Looking, 3, 1, 2);
    sim.set(2, ServerState::Looking, 3, 1, 2);
    sim.advance(S);
    assert!(matches!(
        sim.w.view(sim.now).conclusion,
        Conclusion::NoLeader {
            election_round: Some(2),
            ..
        }
    ));
    sim.set(1, ServerState::Following, 2, 1, 2);
    sim.set(2, ServerState::Leading, 2, 1, 2);
    sim.advance(S);
    assert_eq!(sim.leader(), Some((2, 1, Phase::Elected)));
    sim.set(1, ServerState::Following, 2, 2, 2);
    sim.set(2, ServerState::Leading, 2, 2, 2);
    sim.advance(S);
    assert_eq!(sim.leader(), Some((2, 2, Phase::Established)));
    let view = sim.w.view(sim.now);
    assert_eq!((view.elections, view.leader_changes), (1, 1));
    // The dead member is redialled with back-off: 1 s, 2 s, 4 s, 8 s (±25 %).
    let killed_at = sim.now - 3 * S;
    sim.advance(20 * S);
    let mut dials = vec![killed_at];
    dials.extend(
        sim.connects
            .iter()
            .filter(|(at, sid)| *sid == 3 && *at > killed_at)
            .map(|(at, _)| *at),
    );
    let gaps: Vec<f64> = dials
        .windows(2)
        .map(|p| (p[1] - p[0]).as_secs_f64())
        .collect();
    assert!(gaps.len() >= 4, "{gaps:?}");
    for (gap, base) in gaps.iter().zip([1.0, 2.0, 4.0, 8.0]) {
        assert!((0.75 * base..=1.25 * base).contains(gap), "{gaps:?}");
    }
}

#[test]
fn a_paused_member_is_unreachable_then_back_and_is_not_flooded() {
    let mut sim = Sim::new(ensemble(), config());
    sim.advance(2 * S);
    sim.fakes.get_mut(&1).unwrap().silent = true;
    sim.events.clear();
    sim.advance(3 * S);
    assert!(
        sim.events.iter().any(|e| matches!(e,
            Event::Unreachable { sid: 1, reason } if reason.contains("no reply to a poll within 2.0 s"))),
        "{:?}",
        sim.events
    );
    assert_eq!(
        sim.leader(),
        Some((3, 1, Phase::Established)),
        "2 and 3 still form a quorum"
    );
    sim.advance(20 * S);
    // Re-polls of a silent member spread out: far fewer than one a second.
    assert!(
        sim.unanswered[&1] <= 5,
        "{} polls queued",
        sim.unanswered[&1]
    );
    sim.events.clear();
    sim.resume(1);
    assert!(sim.events.contains(&Event::Reachable { sid: 1 }));
    // Back to one poll a second.
    let before = sim.polls_to(1).len();
    sim.advance(3 * S);
    assert!(sim.polls_to(1).len() - before >= 2);
}

#[test]
fn a_silent_peer_is_dropped_and_redialled_after_the_silence_limit() {
    let mut sim = Sim::new(ensemble(), config());
    sim.advance(S);
    sim.fakes.get_mut(&2).unwrap().silent = true;
    let dials_before = sim.connects.iter().filter(|c| c.1 == 2).count();
    sim.advance(40 * S);
    let dials_after = sim.connects.iter().filter(|c| c.1 == 2).count();
    assert!(dials_after > dials_before, "the connection was replaced");
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::PollError {
            sid: 2,
            reason: "silent",
            ..
        }
    )));
}

#[test]
fn while_waiting_for_the_local_member_polls_are_held_then_sent_at_once() {
    let mut sim = Sim::new(ensemble(), config());
    sim.w.handle(Input::Local(LocalServer::Serving), sim.now);
    sim.advance(2 * S + 500 * MS);
    // The leader dies; the probe has not looked yet, so the last word is
    // still "serving": the hold starts anyway.
    sim.kill(3);
    sim.set(1, ServerState::Looking, 3, 1, 2);
    sim.set(2, ServerState::Looking, 3, 1, 2);
    let held_from = sim.now;
    sim.advance(100 * MS);
    sim.w.handle(Input::Local(LocalServer::Serving), sim.now); // a stale look
    sim.pump();
    sim.advance(100 * MS);
    sim.w.handle(Input::Local(LocalServer::NotServing), sim.now);
    sim.pump();
    sim.advance(1000 * MS);
    let during: Vec<_> = sim
        .sent
        .iter()
        .filter(|s| s.0 > held_from && s.1 != 3)
        .collect();
    assert!(during.is_empty(), "held for twice the interval: {during:?}");
    assert!(sim.now - held_from >= S, "the polls would have been due");
    // The local member serves again: both survivors are polled at once.
    sim.set(1, ServerState::Following, 2, 2, 2);
    sim.set(2, ServerState::Leading, 2, 2, 2);
    sim.w.handle(Input::Local(LocalServer::Serving), sim.now);
    sim.pump();
    assert_eq!(sim.leader(), Some((2, 2, Phase::Established)));
}

#[test]
fn garbage_on_an_election_port_is_a_reason_not_a_crash() {
    let mut sim = Sim::new(ensemble(), config());
    let conn = sim.current(1);
    sim.events.clear();
    sim.w.handle(
        Input::Received {
            sid: 1,
            conn,
            payload: b"HTTP/1.1 400 Bad Request\r\n".to_vec(),
        },
        sim.now,
    );
    sim.pump();
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::PollError {
            sid: 1,
            reason: "notification_size",
            ..
        }
    )));
    // Inputs of a connection that is gone are ignored.
    sim.kill(1);
    sim.events.clear();
    let payload = sim.fakes[&2].answer();
    sim.w.handle(
        Input::Received {
            sid: 1,
            conn,
            payload,
        },
        sim.now,
    );
    assert!(sim.w.take_events().is_empty());
}

#[test]
fn a_newer_config_adds_and_drops_members() {
    let mut sim = Sim::new(ensemble(), config());
    sim.advance(S);
    sim.fakes.insert(
        4,
        Fake {
            config: config_text(&[1, 2, 3, 4, 5], "100000001", 4),
            ..sim.fakes[&1].clone()
        },
    );
    sim.fakes.insert(5, sim.fakes[&4].clone());
    for sid in 1..=3 {
        sim.fakes.get_mut(&sid).unwrap().config = config_text(&[1, 2, 3, 4, 5], "100000001", sid);
    }
    sim.advance(2 * S);
    let view = sim.w.view(sim.now);
    assert_eq!(view.config_version, Some(0x1_0000_0001));
    assert_eq!(view.voters, BTreeSet::from([1, 2, 3, 4, 5]));
    assert!(sim.open.contains_key(&4) && sim.open.contains_key(&5));
    // An older config from one member changes nothing.
    sim.fakes.get_mut(&1).unwrap().config = config_text(&[1, 2, 3], "0", 9);
    sim.advance(2 * S);
    assert_eq!(sim.w.view(sim.now).voters.len(), 5);
    // Member 5 leaves.
    for sid in 1..=4 {
        sim.fakes.get_mut(&sid).unwrap().config = config_text(&[1, 2, 3, 4], "100000002", sid);
    }
    sim.advance(2 * S);
    assert!(!sim.open.contains_key(&5), "closed");
    assert_eq!(sim.w.view(sim.now).members.len(), 4);
}

#[test]
fn a_config_that_lists_the_watchers_sid_stops_it() {
    let mut sim = Sim::new(ensemble(), config());
    sim.advance(S);
    let sid = sim.w.config().sid;
    sim.fakes.get_mut(&2).unwrap().config =
        format!("server.1=a:1:2:participant\nserver.{sid}=b:1:2:participant\nversion=5")
            .into_bytes();
    sim.advance(2 * S);
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e, Event::Stopped(WatcherError::SidCollision { .. })))
    );
    assert!(sim.open.is_empty(), "every connection closed");
    let sent = sim.sent.len();
    sim.advance(10 * S);
    assert_eq!(sim.sent.len(), sent, "nothing more is sent");
    assert!(sim.w.view(sim.now).stopped.is_some());
    assert_eq!(sim.w.next_deadline(), None);
}

#[test]
fn refuses_to_start_with_a_sid_or_preamble_that_could_hurt_a_member() {
    let now = Instant::now();
    let watcher_sid = crate::watcher_sid(myid(1));
    assert_eq!(
        Watcher::new(config(), &initial(&[1, 2, watcher_sid]), now).unwrap_err(),
        WatcherError::SidCollision {
            sid: watcher_sid,
            version: None
        }
    );
    assert!(matches!(
        Watcher::new(config(), &initial(&[1, watcher_sid + 1]), now),
        Err(WatcherError::SidNotAbove { .. })
    ));
    let named = WatcherConfig::new(
        myid(1),
        Some(ElectionAddress::new("zk-0.zk-headless", 3888)),
    );
    assert!(matches!(
        Watcher::new(named, &initial(&[1]), now),
        Err(WatcherError::NotIpLiteral(_))
    ));
    let observers_only = QuorumConfig::parse(b"server.128=a:1:2:observer\nversion=0").unwrap();
    assert_eq!(
        Watcher::new(config(), &observers_only, now).unwrap_err(),
        WatcherError::NoVoters
    );
    let legacy = WatcherConfig::new(myid(3), None);
    assert_eq!(
        legacy.preamble.encode().unwrap(),
        0x4000_0000_0000_0003i64.to_be_bytes().to_vec()
    );
    let mut w = Watcher::new(legacy, &initial(&[1]), now).unwrap();
    assert!(matches!(
        w.take_actions()[..],
        [Action::Connect {
            sid: 1,
            conn: 1,
            ..
        }]
    ));
}

#[test]
fn the_poll_interval_is_never_below_250_ms() {
    let c = config().with_poll_interval(Duration::from_millis(10));
    assert_eq!(c.poll_interval, MIN_POLL_INTERVAL);
    assert_eq!(c.fresh_for, Duration::from_secs(2));
    let c = config().with_poll_interval(Duration::from_secs(2));
    assert_eq!(c.fresh_for, Duration::from_secs(6));
}

#[test]
fn observers_are_polled_and_shown_but_never_counted() {
    let mut fakes = ensemble();
    for sid in 1..=3 {
        fakes.get_mut(&sid).unwrap().config = config_text(&[1, 2, 3, 128], "0", sid);
    }
    // The watcher starts from a config file that has the observer too.
    fakes.insert(
        128,
        Fake {
            state: ServerState::Observing,
            config: config_text(&[1, 2, 3, 128], "0", 128),
            ..fakes[&1].clone()
        },
    );
    let mut sim = Sim::new(fakes, config());
    sim.advance(2 * S);
    let view = sim.w.view(sim.now);
    let observer = view.members.iter().find(|m| m.target.sid == 128).unwrap();
    assert!(observer.reachable);
    assert_eq!(observer.vote.unwrap().state, ServerState::Observing);
    assert_eq!(view.voters, BTreeSet::from([1, 2, 3]));
    sim.kill(1);
    sim.kill(2);
    assert_eq!(sim.leader(), None, "the observer is no quorum");
}

#[test]
fn with_its_own_server_down_it_first_polls_when_elections_lately_ended() {
    let mut sim = Sim::new(ensemble(), config());
    sim.w.handle(Input::Local(LocalServer::Serving), sim.now);
    sim.advance(2 * S + 500 * MS);
    // A first election, seen beside a live member: 3 dies, 2 leads 400 ms on.
    sim.kill(3);
    sim.set(1, ServerState::Looking, 3, 1, 2);
    sim.set(2, ServerState::Looking, 3, 1, 2);
    sim.advance(100 * MS);
    sim.w.handle(Input::Local(LocalServer::NotServing), sim.now);
    sim.advance(300 * MS);
    sim.set(1, ServerState::Following, 2, 2, 2);
    sim.set(2, ServerState::Leading, 2, 2, 2);
    sim.w.handle(Input::Local(LocalServer::Serving), sim.now);
    sim.pump();
    sim.advance(S);
    assert_eq!(sim.leader(), Some((2, 2, Phase::Established)));
    let took = sim.events.iter().find_map(|e| match e {
        Event::Leader(LeaderEvent::Known {
            election_duration: Some(d),
            ..
        }) => Some(*d),
        _ => None,
    });
    let took = took.expect("the first election's duration");
    // 3 rejoins; then the watcher's own server, 2, the leader, dies.
    let f = sim.fakes.get_mut(&3).unwrap();
    (f.up, f.state, f.leader, f.peer_epoch) = (true, ServerState::Following, 2, 2);
    sim.advance(5 * S);
    sim.w.handle(Input::Local(LocalServer::Down), sim.now);
    sim.kill(2);
    let lost = sim.now;
    sim.set(1, ServerState::Looking, 2, 2, 3);
    sim.set(3, ServerState::Looking, 2, 2, 3);
    sim.events.clear();
    sim.advance(took - 100 * MS);
    sim.set(1, ServerState::Following, 3, 3, 3);
    sim.set(3, ServerState::Leading, 3, 3, 3);
    sim.advance(2 * S);
    assert_eq!(sim.leader().map(|l| l.0), Some(3));
    let first_polls: Vec<Instant> = [1, 3]
        .iter()
        .filter_map(|sid| {
            sim.sent
                .iter()
                .find(|s| s.1 == *sid && s.0 > lost)
                .map(|s| s.0)
        })
        .collect();
    assert!(
        first_polls.iter().all(|at| *at >= lost + took),
        "{first_polls:?} vs {took:?}"
    );
    assert!(
        !sim.events
            .iter()
            .any(|e| matches!(e, Event::Reply { vote, .. } if vote.state == ServerState::Looking)),
        "no poll was spent on a LOOKING reply"
    );
}

#[test]
fn poll_slots_are_fixed_places_in_each_interval() {
    let origin = Instant::now();
    let slot = PollSlot {
        origin,
        offset: 10 * MS,
    };
    assert_eq!(slot.next(origin, S), origin + 10 * MS);
    assert_eq!(slot.next(origin + 10 * MS, S), origin + 10 * MS);
    assert_eq!(slot.next(origin + 11 * MS, S), origin + S + 10 * MS);
    assert_eq!(slot.next(origin + 3 * S, S), origin + 3 * S + 10 * MS);
    // On the wall clock: the origin is a whole second, the offset myid/256.
    let wall = std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
    let s = PollSlot::on_wall_clock(myid(64), S, origin + S, wall);
    assert_eq!(s.origin, origin + 750 * MS);
    assert_eq!(s.offset, 250 * MS);
}

#[test]
fn with_a_slot_regular_polls_keep_to_it_and_sidecars_stagger() {
    let origin = Instant::now();
    let mut sims: Vec<Sim> = [1, 2]
        .iter()
        .map(|id| {
            let mut c = WatcherConfig::new(myid(*id), None);
            c.slot = Some(PollSlot {
                origin,
                offset: S.mul_f64(*id as f64 / 256.0),
            });
            Sim::new(ensemble(), c)
        })
        .collect();
    for sim in &mut sims {
        // Timers fire a little late: tick 300 µs after every deadline.
        let until = sim.now + 5 * S;
        while let Some(deadline) = sim.w.next_deadline().filter(|d| *d <= until) {
            sim.now = deadline + Duration::from_micros(300);
            sim.w.handle(Input::Tick, sim.now);
            sim.pump();
        }
    }
    for (i, sim) in sims.iter().enumerate() {
        let offset = S.mul_f64((i + 1) as f64 / 256.0);
        let polls = sim.polls_to(3);
        assert!(polls.len() >= 5, "one poll a second: {}", polls.len());
        // After the bootstrap (sent at once), every poll is on the slot
        // (give or take the late timers).
        for poll in &polls[1..] {
            let into = (poll.0 - origin).as_nanos() % S.as_nanos();
            let late = into - offset.as_nanos();
            assert!(late < SLOT_TOLERANCE.as_nanos(), "{late} ns after its slot");
        }
    }
    // The random schedules keep the rate rules with slots too.
    for seed in 0..50u64 {
        let mut rng = schedule::Jitter::new(seed);
        let mut c = config();
        c.slot = Some(PollSlot {
            origin,
            offset: 4 * MS,
        });
        let mut sim = Sim::new(ensemble(), c);
        for _ in 0..40 {
            let sid = 1 + (rng.next() * 3.0) as i64;
            match (rng.next() * 5.0) as u32 {
                0 => sim.kill(sid),
                1 => sim.fakes.get_mut(&sid).unwrap().up = true,
                2 => sim.set(sid, ServerState::Looking, sid, 1, 2),
                _ => {}
            }
            sim.advance(Duration::from_millis((rng.next() * 2500.0) as u64));
        }
        for sid in 1..=3 {
            for pair in sim.polls_to(sid).windows(2) {
                assert!(pair[1].0 - pair[0].0 >= S, "seed {seed}");
            }
        }
    }
}

#[test]
fn a_member_is_not_lost_while_an_answer_is_still_awaited() {
    let mut c = config();
    c.fresh_for = 1500 * MS; // shorter than a held or slotted spacing can be
    let mut sim = Sim::new(ensemble(), c);
    sim.advance(2 * S + 100 * MS);
    sim.events.clear();
    // The poll of 3 s is answered 1.8 s late (within the 2 s time-out).
    sim.fakes.get_mut(&1).unwrap().silent = true;
    sim.advance(1700 * MS);
    sim.advance(MS);
    sim.resume(1);
    assert!(
        !sim.events
            .iter()
            .any(|e| matches!(e, Event::Unreachable { sid: 1, .. })),
        "{:?}",
        sim.events
    );
    // Without a poll in flight, a reply older than fresh_for no longer counts.
    sim.kill(2);
    sim.kill(3);
    assert_eq!(sim.leader(), None);
}

/// Three voters still electing, as at an ensemble's first start.
fn electing() -> BTreeMap<i64, Fake> {
    let mut fakes = ensemble();
    for (sid, f) in &mut fakes {
        (f.state, f.leader) = (ServerState::Looking, *sid);
    }
    fakes
}

#[test]
fn at_start_the_first_polls_wait_for_the_local_server_to_serve() {
    let mut c = config();
    c.local_probe = true;
    let mut sim = Sim::new(electing(), c);
    let started = sim.now;
    sim.w.handle(Input::Local(LocalServer::NotServing), sim.now);
    sim.advance(400 * MS);
    assert!(sim.sent.is_empty(), "LOOKING replies are not worth a poll");
    // The election ends and the local server serves: every member is
    // polled at once, and the replies name the leader.
    sim.fakes = ensemble();
    sim.w.handle(Input::Local(LocalServer::Serving), sim.now);
    sim.pump();
    assert_eq!(sim.sent.len(), 3);
    assert_eq!(sim.leader(), Some((3, 1, Phase::Established)));
    assert_eq!(sim.now - started, 400 * MS);
}

#[test]
fn at_start_a_local_server_that_does_not_serve_delays_polls_one_interval_at_most() {
    let mut c = config();
    c.local_probe = true;
    let mut sim = Sim::new(electing(), c);
    let started = sim.now;
    sim.w.handle(Input::Local(LocalServer::NotServing), sim.now);
    sim.advance(3 * S);
    let first = sim.sent.iter().map(|s| s.0).min().expect("polled");
    assert_eq!(first - started, S);
    // Members are shown (LOOKING) although no leader is known.
    let view = sim.w.view(sim.now);
    assert!(view.members.iter().all(|m| m.reachable), "{view:?}");
    assert_eq!(sim.leader(), None);

    // A local server that is down, or a watcher without a probe, polls at once.
    let mut c = config();
    c.local_probe = true;
    let mut sim = Sim::new(electing(), c);
    sim.w.handle(Input::Local(LocalServer::Down), sim.now);
    sim.pump();
    assert_eq!(sim.sent.len(), 3);
    let sim = Sim::new(electing(), config());
    assert_eq!(sim.sent.len(), 3);
}

#[test]
fn before_a_leader_is_known_polls_do_not_wait_for_the_slot() {
    let mut c = config();
    let origin = Instant::now();
    c.slot = Some(PollSlot {
        origin,
        offset: 900 * MS,
    });
    let mut sim = Sim::new(electing(), c);
    let started = sim.now;
    sim.advance(200 * MS);
    sim.fakes = ensemble();
    sim.advance(S);
    // The second poll goes one interval after the bootstrap, not on the
    // slot after it; with a leader known, polls keep to the slot again.
    let polls = sim.polls_to(3);
    assert_eq!(polls[1].0 - started, S);
    assert!(
        matches!(sim.leader(), Some((3, 1, _))),
        "{:?}",
        sim.leader()
    );
    sim.advance(3 * S);
    for poll in &sim.polls_to(3)[2..] {
        let into = (poll.0 - origin).as_nanos() % S.as_nanos();
        assert!(into >= (900 * MS).as_nanos(), "on the slot: {into} ns");
    }
}

/// Lets time pass in small steps until `done` holds; how long that took.
fn until(sim: &mut Sim, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> Option<Duration> {
    let from = sim.now;
    while sim.now - from <= limit {
        if done(sim) {
            return Some(sim.now - from);
        }
        sim.advance(10 * MS);
    }
    None
}

#[test]
fn after_a_partition_heals_the_watcher_beside_its_server_knows_the_leader_at_once() {
    // The pod of member 1 (its server and this watcher) is cut off from 2
    // and 3, the leader, for 15 s; member 1 stops serving, then follows
    // again soon after the network is back.
    let mut sim = Sim::new(ensemble(), config());
    sim.w.handle(Input::Local(LocalServer::Serving), sim.now);
    sim.advance(3 * S);
    assert_eq!(sim.leader(), Some((3, 1, Phase::Established)));
    sim.cut(2, true);
    sim.cut(3, true);
    sim.advance(2 * S);
    sim.set(1, ServerState::Looking, 1, 1, 2);
    sim.w.handle(Input::Local(LocalServer::NotServing), sim.now);
    sim.advance(13 * S);
    assert_eq!(sim.leader(), None, "no quorum in sight");
    sim.cut(2, false);
    sim.cut(3, false);
    sim.advance(700 * MS);
    sim.set(1, ServerState::Following, 3, 1, 1);
    sim.w.handle(Input::Local(LocalServer::Serving), sim.now);
    sim.pump();
    let took = until(&mut sim, 10 * S, |sim| sim.leader().is_some());
    // At most the rest of a dial under way (its SYN is sent again 1 s after
    // it started) or a new dial at once.
    assert!(
        took.is_some_and(|t| t <= S),
        "the leader is known {took:?} after the local server serves again"
    );
    assert_eq!(sim.leader(), Some((3, 1, Phase::Established)));
    assert_eq!(sim.harm, Vec::<String>::new());
    // Once answered, each member is down to one connection again.
    sim.advance(3 * S);
    assert!(
        sim.open.values().all(|conns| conns.len() == 1),
        "{:?}",
        sim.open
    );
}

#[test]
fn a_member_that_stops_answering_is_redialled_beside_its_unanswered_connection() {
    // Without a local server to hint that the network is back, a member
    // cut off for 15 s is heard again within a few seconds of the heal, not
    // at TCP's next retransmission of the unanswered poll.
    let mut sim = Sim::new(ensemble(), config());
    sim.advance(3 * S);
    sim.cut(2, true);
    // The poll of 4 s goes unanswered; at 6 s 2 is dialled again.
    sim.advance(3500 * MS);
    assert_eq!(
        sim.open[&2].len(),
        1,
        "the unanswered connection stays open"
    );
    assert!(
        sim.connects.iter().filter(|c| c.1 == 2).count() == 2,
        "and 2 is dialled again beside it: {:?}",
        sim.connects
    );
    sim.advance(12 * S);
    sim.cut(2, false);
    let took = until(&mut sim, 30 * S, |sim| {
        sim.w
            .view(sim.now)
            .members
            .iter()
            .any(|m| m.target.sid == 2 && m.reachable)
    });
    assert!(
        took.is_some_and(|t| t <= 5 * S),
        "member 2 answers again {took:?} after the heal"
    );
    assert_eq!(sim.harm, Vec::<String>::new());
}

#[test]
fn a_paused_member_is_redialled_once_and_never_left_without_a_connection_to_answer_on() {
    let mut sim = Sim::new(ensemble(), config());
    sim.advance(2 * S);
    sim.fakes.get_mut(&1).unwrap().silent = true;
    sim.advance(10 * S);
    assert_eq!(sim.open[&1].len(), 2, "redialled beside the unanswered one");
    assert_eq!(
        sim.connects.iter().filter(|c| c.1 == 1).count(),
        2,
        "only once while it stays silent"
    );
    sim.resume(1);
    assert_eq!(sim.open[&1].len(), 1, "the member closed the old one");
    sim.advance(2 * S);
    assert!(sim.w.view(sim.now).members[0].reachable);
    assert_eq!(sim.harm, Vec::<String>::new());
}

#[test]
fn a_paused_member_that_answers_on_the_old_connection_before_accepting_the_new_keeps_it() {
    let mut sim = Sim::new(ensemble(), config());
    sim.advance(2 * S);
    sim.fakes.get_mut(&1).unwrap().silent = true;
    sim.advance(3 * S);
    assert_eq!(sim.open[&1].len(), 2, "redialled beside the unanswered one");
    sim.resume_answering_first(1);
    assert_eq!(sim.open[&1].len(), 1, "the member closed the old one");
    sim.advance(2 * S);
    assert!(sim.w.view(sim.now).members[0].reachable);
    assert_eq!(sim.harm, Vec::<String>::new());
}

#[test]
fn a_member_that_leaves_the_config_keeps_its_connection_until_it_answers() {
    // Member 3 answers a little late; the config that removes it arrives
    // (in member 1's reply) while a poll to it is unanswered.
    let mut fakes = ensemble();
    fakes.get_mut(&3).unwrap().latency = 50 * MS;
    let mut sim = Sim::new(fakes, config());
    sim.advance(2 * S + 100 * MS);
    for sid in 1..=3 {
        sim.fakes.get_mut(&sid).unwrap().config = config_text(&[1, 2], "100000001", sid);
    }
    sim.set(2, ServerState::Leading, 2, 2, 2);
    sim.set(1, ServerState::Following, 2, 2, 2);
    sim.advance(S);
    assert_eq!(sim.w.view(sim.now).voters, BTreeSet::from([1, 2]));
    assert!(!sim.open.contains_key(&3), "closed after it answered");
    assert_eq!(sim.harm, Vec::<String>::new());
}

#[test]
fn the_local_server_serving_again_redials_only_members_waiting_to_be_dialled() {
    // At a sidecar's start its server begins to serve while the first
    // polls are still on their way: nothing is dialled again then (a second
    // connection would make the member replace the one it is answering on).
    let mut fakes = ensemble();
    for f in fakes.values_mut() {
        f.latency = 50 * MS;
    }
    let mut sim = Sim::new(fakes, config());
    sim.w.handle(Input::Local(LocalServer::NotServing), sim.now);
    sim.advance(10 * MS);
    assert_eq!(sim.sent.len(), 3, "the first polls are out");
    sim.w.handle(Input::Local(LocalServer::Serving), sim.now);
    sim.pump();
    sim.advance(2 * S);
    assert_eq!(
        sim.connects.len(),
        3,
        "one dial per member: {:?}",
        sim.connects
    );
    assert_eq!(sim.harm, Vec::<String>::new());
    // A member down and waiting out its back-off is dialled at once.
    sim.kill(2);
    sim.w.handle(Input::Local(LocalServer::NotServing), sim.now);
    sim.fakes.get_mut(&2).unwrap().up = true;
    sim.advance(100 * MS);
    let dials = sim.connects.len();
    sim.w.handle(Input::Local(LocalServer::Serving), sim.now);
    sim.pump();
    assert_eq!(
        sim.connects.len(),
        dials + 1,
        "member 2 dialled again at once"
    );
}
