//! A deterministic simulator: N [`Election`]s on a simulated election
//! network, driven by one seed. Virtual time, no threads, no sockets: the
//! same seed always gives the same run, so any failure replays exactly.
//!
//! The network copies the transport's rules where they shape what an
//! election sees: one connection per pair, in-order delivery on it, the
//! per-peer [`Outbox`] (newest wins, the last message replayed on a new
//! connection), `Disconnected` when a peer's process dies or a connection is
//! reset. On top it adds what a hostile network does: random delay, reordering
//! across and (optionally) within connections, lost messages (which take
//! their connection down with them, as on TCP), silent partitions, crashes
//! and restarts.
//!
//! [`schedule`] builds random fault schedules from a seed and checks the
//! election's invariants on each.

pub mod schedule;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fmt;
use std::time::Duration;

use crate::fle::{Action, Decision, Election, Event, Reason, Settings, Timer};
use crate::quorum::Verifiers;
use crate::transport::Outbox;
use crate::vote::{Proposal, Vote};
use crate::wire::ServerState;

/// SplitMix64: tiny, fast and fixed forever, so a seed printed today replays
/// the same schedule in any later build.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros() as u64;
        lo + Duration::from_micros(self.below(span + 1))
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }
}

/// How the network treats messages right now.
#[derive(Debug, Clone, PartialEq)]
pub struct Conditions {
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Probability that a message is lost, and with it its connection.
    pub loss: f64,
    /// Whether messages on one connection may overtake each other.
    pub reorder: bool,
}

impl Conditions {
    /// A calm LAN: 0.1–2 ms, in order, nothing lost.
    pub fn calm() -> Conditions {
        Conditions {
            min_delay: Duration::from_micros(100),
            max_delay: Duration::from_millis(2),
            loss: 0.0,
            reorder: false,
        }
    }
}

/// One line of the trace kept for failure reports.
#[derive(Debug, Clone)]
pub enum Trace {
    Op(String),
    Send {
        from: i64,
        to: i64,
        vote: Vote,
    },
    Lost {
        from: i64,
        to: i64,
    },
    Deliver {
        from: i64,
        to: i64,
        vote: Vote,
    },
    State {
        sid: i64,
        state: ServerState,
        reason: Reason,
        clock: i64,
    },
    Decided {
        sid: i64,
        leader: i64,
        reason: Reason,
    },
}

/// A decision as the simulator saw it.
#[derive(Debug, Clone)]
pub struct Decided {
    pub at: Duration,
    pub sid: i64,
    pub decision: Decision,
    /// The decider's vote at the start of that election.
    pub initial: Proposal,
    /// The logical clock of the decider right after deciding.
    pub clock: i64,
}

#[derive(Debug)]
struct Peer {
    settings: Settings,
    election: Option<Election>,
    incarnation: u32,
    last_change: Duration,
}

#[derive(Debug, Default)]
struct Link {
    outbox: Outbox<Vote>,
    up: bool,
    /// Bumped whenever the connection goes down: what was in flight is lost.
    generation: u64,
    last_arrival: Duration,
}

#[derive(Debug, Clone)]
enum Pending {
    Deliver {
        from: i64,
        to: i64,
        vote: Vote,
        generation: u64,
    },
    Timer {
        sid: i64,
        incarnation: u32,
        timer: Timer,
    },
    Connection {
        sid: i64,
        incarnation: u32,
        peer: i64,
        up: bool,
    },
}

#[derive(Debug)]
struct Scheduled {
    at: Duration,
    seq: u64,
    pending: Pending,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The simulated ensemble and its network.
pub struct Sim {
    now: Duration,
    rng: Rng,
    pub conditions: Conditions,
    peers: BTreeMap<i64, Peer>,
    links: BTreeMap<(i64, i64), Link>,
    /// Partition group per sid; peers in different groups cannot talk.
    groups: BTreeMap<i64, u32>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    trace: VecDeque<(Duration, Trace)>,
    trace_limit: usize,
    pub decisions: Vec<Decided>,
    pub messages_sent: u64,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("now", &self.now)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// An ensemble of the given peers (not started), all sharing `timing`
    /// (whose myid, zxid and peer epoch are replaced per peer).
    pub fn new(
        seed: u64,
        verifiers: &Verifiers,
        timing: &Settings,
        peers: &[(i64, i64, i64)],
    ) -> Sim {
        let mut sim = Sim {
            now: Duration::ZERO,
            rng: Rng::new(seed ^ 0x5eed_0000_0000_0000),
            conditions: Conditions::calm(),
            peers: BTreeMap::new(),
            links: BTreeMap::new(),
            groups: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            trace: VecDeque::new(),
            trace_limit: 400,
            decisions: Vec::new(),
            messages_sent: 0,
        };
        for &(myid, zxid, peer_epoch) in peers {
            let settings = Settings {
                myid,
                zxid,
                peer_epoch,
                verifiers: verifiers.clone(),
                ..timing.clone()
            };
            sim.peers.insert(
                myid,
                Peer {
                    settings,
                    election: None,
                    incarnation: 0,
                    last_change: Duration::ZERO,
                },
            );
        }
        let sids: Vec<i64> = sim.peers.keys().copied().collect();
        for a in &sids {
            for b in &sids {
                if a != b {
                    sim.links.insert((*a, *b), Link::default());
                }
            }
        }
        sim
    }

    /// Keep the whole trace instead of the last 400 lines (for replays).
    pub fn keep_full_trace(&mut self) {
        self.trace_limit = usize::MAX;
    }

    pub fn now(&self) -> Duration {
        self.now
    }

    pub fn sids(&self) -> Vec<i64> {
        self.peers.keys().copied().collect()
    }

    pub fn is_alive(&self, sid: i64) -> bool {
        self.peers.get(&sid).is_some_and(|p| p.election.is_some())
    }

    pub fn election(&self, sid: i64) -> Option<&Election> {
        self.peers.get(&sid)?.election.as_ref()
    }

    /// The initial proposal of a peer (its vote at the start of an election).
    pub fn initial_proposal(&self, sid: i64) -> Option<Proposal> {
        let peer = self.peers.get(&sid)?;
        let voter = peer.settings.verifiers.is_voter(sid);
        Some(if voter {
            Proposal {
                leader: sid,
                zxid: peer.settings.zxid,
                peer_epoch: peer.settings.peer_epoch,
            }
        } else {
            Proposal::NULL
        })
    }

    /// When any of the live peers among `sids` last changed state.
    pub fn last_change(&self, sids: &[i64]) -> Duration {
        sids.iter()
            .filter_map(|sid| self.peers.get(sid))
            .filter(|p| p.election.is_some())
            .map(|p| p.last_change)
            .max()
            .unwrap_or_default()
    }

    pub fn trace(&self) -> impl Iterator<Item = &(Duration, Trace)> {
        self.trace.iter()
    }

    fn record(&mut self, entry: Trace) {
        if self.trace.len() >= self.trace_limit {
            self.trace.pop_front();
        }
        self.trace.push_back((self.now, entry));
    }

    fn schedule(&mut self, at: Duration, pending: Pending) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            pending,
        }));
    }

    fn reachable(&self, a: i64, b: i64) -> bool {
        self.is_alive(a)
            && self.is_alive(b)
            && self.groups.get(&a).copied().unwrap_or(0)
                == self.groups.get(&b).copied().unwrap_or(0)
    }

    // ---- operations -------------------------------------------------------

    /// Starts (or restarts) a peer's process: a fresh election (logical
    /// clock 0), fresh outboxes, and connections to every reachable peer,
    /// on which those peers replay their last message (§2.7).
    pub fn start(&mut self, sid: i64) {
        let Some(peer) = self.peers.get_mut(&sid) else {
            return;
        };
        if peer.election.is_some() {
            return;
        }
        peer.incarnation += 1;
        let (election, actions) = Election::start(peer.settings.clone(), self.now);
        peer.election = Some(election);
        peer.last_change = self.now;
        self.record(Trace::Op(format!("start {sid}")));
        for other in self.sids() {
            if other != sid
                && let Some(link) = self.links.get_mut(&(sid, other))
            {
                link.outbox = Outbox::default();
            }
        }
        self.apply(sid, actions);
        self.reconnect_all();
    }

    /// Kills a peer's process. Its peers see the connection close shortly
    /// after; everything it had queued is gone.
    pub fn crash(&mut self, sid: i64) {
        let Some(peer) = self.peers.get_mut(&sid) else {
            return;
        };
        if peer.election.take().is_none() {
            return;
        }
        self.record(Trace::Op(format!("crash {sid}")));
        for other in self.sids() {
            if other == sid {
                continue;
            }
            for key in [(sid, other), (other, sid)] {
                if let Some(link) = self.links.get_mut(&key)
                    && link.up
                {
                    link.up = false;
                    link.generation += 1;
                }
            }
            if self.is_alive(other) {
                let delay = self
                    .rng
                    .between(Duration::from_micros(50), Duration::from_millis(5));
                let incarnation = self.peers[&other].incarnation;
                self.schedule(
                    self.now + delay,
                    Pending::Connection {
                        sid: other,
                        incarnation,
                        peer: sid,
                        up: false,
                    },
                );
            }
        }
    }

    /// Splits the peers into groups that cannot reach each other. Silent:
    /// nobody is told, messages across are lost or wait in the outboxes.
    pub fn partition(&mut self, groups: &[Vec<i64>]) {
        self.record(Trace::Op(format!("partition {groups:?}")));
        self.groups.clear();
        for (index, group) in groups.iter().enumerate() {
            for sid in group {
                self.groups.insert(*sid, index as u32 + 1);
            }
        }
        let keys: Vec<(i64, i64)> = self.links.keys().copied().collect();
        for (a, b) in keys {
            if !self.reachable(a, b)
                && let Some(link) = self.links.get_mut(&(a, b))
                && link.up
            {
                link.up = false;
                link.generation += 1;
            }
        }
        self.reconnect_all();
    }

    /// Ends every partition; connections come back with their replays.
    pub fn heal(&mut self) {
        self.record(Trace::Op("heal".to_owned()));
        self.groups.clear();
        self.reconnect_all();
    }

    /// Resets the connection between `a` and `b`: both see it close, what
    /// was in flight is lost, and it comes back a little later.
    pub fn reset_connection(&mut self, a: i64, b: i64) {
        if !self.reachable(a, b) {
            return;
        }
        self.record(Trace::Op(format!("reset {a}-{b}")));
        for (x, y) in [(a, b), (b, a)] {
            if let Some(link) = self.links.get_mut(&(x, y)) {
                link.up = false;
                link.generation += 1;
            }
            let incarnation = self.peers[&x].incarnation;
            let closed = self.now + Duration::from_micros(100);
            self.schedule(
                closed,
                Pending::Connection {
                    sid: x,
                    incarnation,
                    peer: y,
                    up: false,
                },
            );
            let back = closed
                + self
                    .rng
                    .between(Duration::from_millis(1), Duration::from_millis(50));
            self.schedule(
                back,
                Pending::Connection {
                    sid: x,
                    incarnation,
                    peer: y,
                    up: true,
                },
            );
        }
    }

    /// Brings up every connection that may be up and is not, replaying.
    fn reconnect_all(&mut self) {
        let keys: Vec<(i64, i64)> = self.links.keys().copied().collect();
        for (a, b) in keys {
            if self.reachable(a, b) && !self.links[&(a, b)].up {
                self.link_up(a, b);
            }
        }
    }

    fn link_up(&mut self, from: i64, to: i64) {
        let Some(link) = self.links.get_mut(&(from, to)) else {
            return;
        };
        link.up = true;
        link.last_arrival = self.now;
        if let Some(vote) = link.outbox.first_on_new_connection() {
            self.transmit(from, to, vote);
        }
        let incarnation = self.peers[&to].incarnation;
        self.schedule(
            self.now,
            Pending::Connection {
                sid: to,
                incarnation,
                peer: from,
                up: true,
            },
        );
    }

    // ---- running ----------------------------------------------------------

    /// Runs every event up to and including `until`, then sets the clock there.
    pub fn run_until(&mut self, until: Duration) {
        while let Some(Reverse(next)) = self.queue.peek() {
            if next.at > until {
                break;
            }
            let Some(Reverse(next)) = self.queue.pop() else {
                break;
            };
            self.now = self.now.max(next.at);
            self.dispatch(next.pending);
        }
        self.now = self.now.max(until);
    }

    fn dispatch(&mut self, pending: Pending) {
        match pending {
            Pending::Deliver {
                from,
                to,
                vote,
                generation,
            } => {
                let current = self.links.get(&(from, to)).map(|l| (l.up, l.generation));
                if current != Some((true, generation)) {
                    return; // the connection it travelled on is gone
                }
                self.record(Trace::Deliver { from, to, vote });
                self.step(to, Event::Received { from, vote });
            }
            Pending::Timer {
                sid,
                incarnation,
                timer,
            } => {
                if self.peers.get(&sid).map(|p| p.incarnation) == Some(incarnation) {
                    self.step(sid, Event::Timer(timer));
                }
            }
            Pending::Connection {
                sid,
                incarnation,
                peer,
                up,
            } => {
                if self.peers.get(&sid).map(|p| p.incarnation) != Some(incarnation) {
                    return;
                }
                if up {
                    if self.reachable(sid, peer) {
                        // A reset connection coming back.
                        if !self.links[&(peer, sid)].up {
                            self.link_up(peer, sid);
                        }
                        self.step(sid, Event::Connected { sid: peer });
                    }
                } else {
                    self.step(sid, Event::Disconnected { sid: peer });
                }
            }
        }
    }

    fn step(&mut self, sid: i64, event: Event) {
        let now = self.now;
        let Some(election) = self.peers.get_mut(&sid).and_then(|p| p.election.as_mut()) else {
            return;
        };
        let actions = election.step(now, event);
        self.apply(sid, actions);
    }

    fn apply(&mut self, sid: i64, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, vote } => self.send(sid, to, vote),
                Action::SetTimer { timer, at } => {
                    let incarnation = self.peers[&sid].incarnation;
                    self.schedule(
                        at,
                        Pending::Timer {
                            sid,
                            incarnation,
                            timer,
                        },
                    );
                }
                Action::StateChanged { state, reason } => {
                    let clock = self.election(sid).map_or(0, Election::logical_clock);
                    if let Some(peer) = self.peers.get_mut(&sid) {
                        peer.last_change = self.now;
                    }
                    self.record(Trace::State {
                        sid,
                        state,
                        reason,
                        clock,
                    });
                }
                Action::LeaderDecided(decision) => {
                    self.record(Trace::Decided {
                        sid,
                        leader: decision.leader,
                        reason: decision.reason,
                    });
                    let initial = self.initial_proposal(sid).unwrap_or(Proposal::NULL);
                    let clock = self.election(sid).map_or(0, Election::logical_clock);
                    self.decisions.push(Decided {
                        at: self.now,
                        sid,
                        decision,
                        initial,
                        clock,
                    });
                }
            }
        }
    }

    fn send(&mut self, from: i64, to: i64, vote: Vote) {
        self.messages_sent += 1;
        self.record(Trace::Send { from, to, vote });
        let Some(link) = self.links.get_mut(&(from, to)) else {
            return; // not a member of the simulated ensemble
        };
        link.outbox.push(vote);
        if link.up
            && let Some(vote) = link.outbox.take()
        {
            self.transmit(from, to, vote);
        }
    }

    fn transmit(&mut self, from: i64, to: i64, vote: Vote) {
        if self.conditions.loss > 0.0 && self.rng.chance(self.conditions.loss) {
            // TCP loses nothing on a live connection: a message is lost
            // only with its connection, and the outbox replays it on the
            // next one.
            self.record(Trace::Lost { from, to });
            self.reset_connection(from, to);
            return;
        }
        let delay = self
            .rng
            .between(self.conditions.min_delay, self.conditions.max_delay);
        let reorder = self.conditions.reorder;
        let now = self.now;
        let Some(link) = self.links.get_mut(&(from, to)) else {
            return;
        };
        let mut at = now + delay;
        if !reorder {
            at = at.max(link.last_arrival);
        }
        link.last_arrival = link.last_arrival.max(at);
        let generation = link.generation;
        self.schedule(
            at,
            Pending::Deliver {
                from,
                to,
                vote,
                generation,
            },
        );
    }

    /// A readable dump of the kept trace.
    pub fn format_trace(&self) -> String {
        let mut out = String::new();
        for (at, entry) in &self.trace {
            out.push_str(&format!(
                "{:>10.3}s {}\n",
                at.as_secs_f64(),
                describe(entry)
            ));
        }
        out
    }
}

fn describe(entry: &Trace) -> String {
    let vote = |v: &Vote| {
        format!(
            "{} leader={} zxid={:#x} ee={} pe={}",
            v.state, v.leader, v.zxid, v.election_epoch, v.peer_epoch
        )
    };
    match entry {
        Trace::Op(op) => format!("== {op}"),
        Trace::Send { from, to, vote: v } => format!("{from} -> {to}: {}", vote(v)),
        Trace::Lost { from, to } => format!("{from} -> {to}: lost"),
        Trace::Deliver { from, to, vote: v } => format!("{to} <- {from}: {}", vote(v)),
        Trace::State {
            sid,
            state,
            reason,
            clock,
        } => format!("{sid} is {state} (clock {clock}): {}", reason.as_str()),
        Trace::Decided {
            sid,
            leader,
            reason,
        } => format!("{sid} decided leader {leader}: {}", reason.as_str()),
    }
}
