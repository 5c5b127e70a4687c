//! The watcher of spec §5: a non-voting member of a real ensemble that
//! learns every member's state, vote, logical clock and peer epoch, and
//! concludes who leads, while leaving the ensemble undisturbed (§6).
//!
//! Sans-IO: [`Watcher::handle`] takes an [`Input`] (a connection came up or
//! went down, a frame arrived, the local server's state, time passed) with
//! the current instant, and leaves behind [`Action`]s for the I/O layer
//! (dial, send this notification, close) and [`Event`]s
//! for logs and metrics. It owns no sockets, clocks or tasks.
//!
//! What it guarantees towards the ensemble, whatever the inputs:
//! * one connection (and one dial) at a time per member, the preamble
//!   encoded once and checked (D4, D5, D10), a sid above every member's that
//!   no config lists (D6–D9; a config that lists it stops the watcher);
//!   while a member does not answer, one older connection may stay open
//!   beside the current one (see *Redialling* below);
//! * the 40-byte bootstrap first on every connection, then only echoes of
//!   that member's own latest config (D1, D2, D3);
//! * at most one poll in flight per member and never two polls to a member
//!   closer than the poll interval (at least 250 ms), elections or not (D11);
//! * reconnects after 1 s, doubling to 30 s, with jitter (D12); dials that
//!   never reached the member (timed out, refused) back off to 2 s at most.
//!
//! # Redialling, and never closing under an unanswered poll
//!
//! A member answers a watcher's poll through whichever election connection
//! it holds for the watcher's sid at that moment; when it holds none, it
//! tries to dial the watcher's sid and logs `Invalid server id` (on the harm
//! list). So the watcher never closes a connection on which a poll may
//! still be read and answered:
//! * a member that does not answer a poll within the reply time-out is
//!   dialled again *beside* the unanswered connection, which is kept open
//!   (*retired*). The member, once it accepts the new connection, replaces
//!   and closes the old one itself; the watcher closes the retired
//!   connection only after the member has answered on the new one. A reply
//!   on the retired connection keeps it open: the new one may be connected
//!   as far as this side knows (a paused member's kernel accepts for it)
//!   and still not accepted by the member, which then holds only the
//!   retired one to send on. On an unanswered link (a partition) TCP would otherwise
//!   deliver the next poll only at its next retransmission, many seconds
//!   after the network heals. At most one connection is retired per member;
//! * when the local server serves again after not serving (the network
//!   around this pod is back), every member waiting to be dialled again is
//!   dialled at once, its back-off forgotten; a dial under way is never
//!   abandoned;
//! * a member that leaves the committed config while a poll to it is
//!   unanswered keeps its connection until it answers or the reply time-out
//!   passes (*departing*);
//! * a redialled connection that stays unanswered for the silence limit
//!   is closed and dialled again, the retired one kept: while the retired
//!   connection is open, the member has not accepted the newer one, so it
//!   never answers there;
//! * every close asks the I/O layer for an abortive close, so bytes the
//!   member never received are dropped instead of being delivered after the
//!   watcher has gone.

mod leader;
mod schedule;
mod tracker;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use zk_ensemble::{Myid, Role, ZooCfg};

use crate::config::QuorumConfig;
use crate::quorum::Verifiers;
use crate::wire::{
    ElectionAddress, EncodeError, Notification, Preamble, ServerState, watcher_bootstrap,
    watcher_echo,
};

pub use leader::{Conclusion, Vote, conclude};
pub use schedule::{MAX_REPOLL_SPACING, MIN_POLL_INTERVAL};
pub use tracker::{LeaderEvent, Leadership, Phase};

/// A member the watcher polls: its sid and the election endpoint its server
/// line names (the first address of a multi-address line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub sid: i64,
    pub host: String,
    pub election_port: u16,
    pub role: Role,
}

impl Target {
    /// Every member of a config, by sid.
    pub fn all_from(cfg: &ZooCfg) -> Vec<Target> {
        let mut targets: Vec<Target> = cfg
            .servers
            .iter()
            .filter_map(|s| {
                let address = s.addresses.first()?;
                Some(Target {
                    sid: s.id,
                    host: address.host.clone(),
                    election_port: address.election_port,
                    role: s.role,
                })
            })
            .collect();
        targets.sort_by_key(|t| t.sid);
        targets.dedup_by_key(|t| t.sid);
        targets
    }
}

/// How the watcher behaves; [`WatcherConfig::new`] gives the spec's values.
#[derive(Debug, Clone, PartialEq)]
pub struct WatcherConfig {
    /// The watcher's sid (§5.1): `2^62 + myid`.
    pub sid: i64,
    /// What the watcher says first on every connection (V1 or legacy).
    pub preamble: Preamble,
    /// Time between two polls of one member (at least 250 ms; default 1 s).
    pub poll_interval: Duration,
    /// A poll unanswered for this long is given up, and the member counts
    /// as unreachable until it answers again.
    pub reply_timeout: Duration,
    /// A reply counts towards conclusions for this long (3 poll intervals).
    pub fresh_for: Duration,
    /// How long a dial may take (the I/O layer's connect time-out). Twice
    /// the default poll interval, shorter than the 5 s the protocol notes
    /// suggest: a dial that fails costs a member nothing (nothing reached
    /// it), and during a partition a shorter one means a fresh SYN soon
    /// after the network heals instead of a retransmission seconds away.
    pub connect_timeout: Duration,
    /// The first reconnect delay; it doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// A redialled connection on which nothing has been heard for this
    /// long is closed and dialled again (a peer that vanished without a
    /// reset, for example a deleted pod); only one the member has not
    /// accepted is ever closed this way (see the module docs).
    pub silence_limit: Duration,
    /// Seeds the reconnect jitter.
    pub seed: u64,
    /// Where in each interval this watcher's regular polls fall (see
    /// [`PollSlot`]); `None` polls whenever the interval has passed.
    pub slot: Option<PollSlot>,
    /// Whether the local server's state will be given ([`Input::Local`]).
    /// Then, until a first leader is known, the first poll of each member
    /// waits (at most one poll interval from the start) for the local
    /// server to be seen serving: before that, replies can only say
    /// LOOKING, and the poll they cost would delay the one that names the
    /// leader by a whole interval (D11).
    pub local_probe: bool,
}

/// A fixed place for regular polls within each poll interval, on the wall
/// clock: every `interval` after `origin + offset`. With `origin` at a
/// wall-clock multiple of the interval (what [`PollSlot::on_wall_clock`]
/// computes), the sidecars of one ensemble, each with its own offset, poll
/// in a fixed staggered order: never two at once (D11), and each one's poll
/// budget frees up at the same moments, so after an election they learn the
/// new leader together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSlot {
    pub origin: Instant,
    pub offset: Duration,
}

impl PollSlot {
    /// The slot of the watcher beside `myid`: `interval × myid / 256` into
    /// each interval (voters, myids 1–127, fall in its first half; observers
    /// in the second), measured from wall-clock multiples of `interval`.
    pub fn on_wall_clock(
        myid: Myid,
        interval: Duration,
        now: Instant,
        wall: std::time::SystemTime,
    ) -> PollSlot {
        let interval_ns = interval.as_nanos().max(1);
        let since_epoch = wall
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let into = u64::try_from(since_epoch % interval_ns).unwrap_or(0);
        PollSlot {
            origin: now.checked_sub(Duration::from_nanos(into)).unwrap_or(now),
            offset: interval.mul_f64(f64::from(myid.get()) / 256.0),
        }
    }

    /// The first slot at or after `t`.
    pub fn next(&self, t: Instant, interval: Duration) -> Instant {
        let start = self.origin + self.offset;
        let Some(past) = t.checked_duration_since(start) else {
            return start;
        };
        let interval_ns = interval.as_nanos().max(1);
        let slots = past.as_nanos().div_ceil(interval_ns);
        let at = u64::try_from(slots * interval_ns).unwrap_or(u64::MAX);
        start + Duration::from_nanos(at)
    }
}

impl WatcherConfig {
    /// The spec's profile for the sidecar beside `myid`: sid `2^62 + myid`,
    /// a V1 preamble advertising `advertise` (an IP literal and port), or
    /// the legacy 8-byte preamble when there is no address to advertise.
    pub fn new(myid: Myid, advertise: Option<ElectionAddress>) -> WatcherConfig {
        let sid = crate::watcher_sid(myid);
        let preamble = match advertise {
            Some(address) => Preamble::V1 { sid, address },
            None => Preamble::Legacy { sid },
        };
        WatcherConfig {
            sid,
            preamble,
            poll_interval: Duration::from_secs(1),
            reply_timeout: Duration::from_secs(2),
            fresh_for: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(2),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
            silence_limit: Duration::from_secs(30),
            seed: u64::from(myid.get()),
            slot: None,
            local_probe: false,
        }
    }

    /// Sets the poll interval (raised to 250 ms if lower) and the freshness
    /// that goes with it.
    pub fn with_poll_interval(mut self, interval: Duration) -> WatcherConfig {
        self.poll_interval = interval.max(MIN_POLL_INTERVAL);
        self.fresh_for = self.poll_interval.saturating_mul(3).max(self.reply_timeout);
        self
    }
}

/// Why the watcher will not start, or stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatcherError {
    #[error(
        "the watcher's sid {sid} is listed in the ensemble's config{}; two parties with one sid disconnect each other and take over each other's votes (spec D6), so the watcher stops",
        version.as_ref().map(|v| format!(" (version {v})")).unwrap_or_default()
    )]
    SidCollision { sid: i64, version: Option<String> },
    #[error(
        "server.{member} has a sid not below the watcher's sid {sid}; a member would close the watcher's connections and dial it back (spec D8), so the watcher stops"
    )]
    SidNotAbove { sid: i64, member: i64 },
    #[error("the watcher's sid {0} is not usable (it must be from 0 to 2^63 - 2)")]
    BadSid(i64),
    #[error(
        "the watcher must advertise an IP address, not {0:?}: a member would resolve a host name on its accept thread (spec §5.2)"
    )]
    NotIpLiteral(String),
    #[error("the preamble cannot be sent: {0}")]
    Preamble(#[from] EncodeError),
    #[error("the preamble's sid {preamble} differs from the watcher's sid {sid}")]
    PreambleSid { sid: i64, preamble: i64 },
    #[error("the config lists no voters to watch")]
    NoVoters,
}

/// Why a connection failed or ended: a bounded `reason` (for metrics) and
/// a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkError {
    pub reason: &'static str,
    pub detail: String,
}

impl LinkError {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> LinkError {
        LinkError {
            reason,
            detail: detail.into(),
        }
    }
}

/// What the local probe says about the member the watcher runs beside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalServer {
    /// It serves clients: it follows, leads or observes an established leader.
    Serving,
    /// It answers but does not serve (LOOKING, or syncing with a new leader).
    NotServing,
    /// It does not answer.
    Down,
}

/// Something that happened outside the watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The connection `conn` to member `sid` is up and its preamble written.
    Connected { sid: i64, conn: u64 },
    /// Dialling failed.
    ConnectFailed {
        sid: i64,
        conn: u64,
        error: LinkError,
    },
    /// A frame's payload arrived (the length prefix already checked).
    Received {
        sid: i64,
        conn: u64,
        payload: Vec<u8>,
    },
    /// The connection ended (closed by the member, reset, or a frame whose
    /// length is out of range).
    Closed {
        sid: i64,
        conn: u64,
        error: LinkError,
    },
    /// The local probe's latest answer.
    Local(LocalServer),
    /// Time passed (a deadline from [`Watcher::next_deadline`]).
    Tick,
}

/// What the I/O layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Dial `to` (within [`WatcherConfig::connect_timeout`]) and write the configured preamble in
    /// one write (`transport::dial`); answer with [`Input::Connected`] or
    /// [`Input::ConnectFailed`].
    Connect {
        sid: i64,
        conn: u64,
        to: ElectionAddress,
    },
    /// Send a notification payload (to be framed) on connection `conn`.
    Send {
        sid: i64,
        conn: u64,
        payload: Vec<u8>,
    },
    /// Close connection `conn` abortively (a reset: bytes the member has
    /// not received are dropped, never delivered later). The watcher never
    /// closes a dial still in progress; should one be, the I/O layer
    /// abandons it. No input is expected back.
    Close { sid: i64, conn: u64 },
}

/// Something worth a log line or a metric.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Connected {
        sid: i64,
    },
    PollSent {
        sid: i64,
        bootstrap: bool,
    },
    Reply {
        sid: i64,
        vote: Vote,
    },
    /// A failed dial, a broken connection, an unanswered poll, or a reply
    /// that could not be used.
    PollError {
        sid: i64,
        reason: &'static str,
        detail: String,
    },
    Reachable {
        sid: i64,
    },
    Unreachable {
        sid: i64,
        reason: String,
    },
    StateChanged {
        sid: i64,
        from: Option<ServerState>,
        to: ServerState,
    },
    Leader(LeaderEvent),
    /// A newer committed config was seen; the members to watch follow it.
    ConfigAdopted {
        version: u64,
        voters: Vec<i64>,
        observers: Vec<i64>,
    },
    /// The watcher stopped and closed every connection.
    Stopped(WatcherError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Idle { retry_at: Instant },
    Connecting,
    Up { since: Instant },
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    vote: Vote,
    zxid: i64,
    at: Instant,
}

#[derive(Debug)]
struct Member {
    target: Target,
    link: Link,
    /// The current connection's number (each dial gets a new one).
    conn: u64,
    /// An older connection left open after a redial, because a poll on it
    /// went unanswered and may still be answered; closed once the member
    /// answers again (see the module docs).
    retired: Option<u64>,
    /// Whether the member answered on the retired connection (while the new
    /// dial is still under way it is then the member's working one).
    retired_answered: bool,
    /// Dial again at once if the dial under way fails (the local server
    /// served again while it was under way).
    redial_at_once: bool,
    /// Whether the current connection has carried its bootstrap poll.
    bootstrapped: bool,
    last_poll: Option<Instant>,
    in_flight: Option<Instant>,
    /// Consecutive polls given up without an answer.
    unanswered: u32,
    /// Consecutive connections that failed or ended without an answer.
    failures: u32,
    reply: Option<Sample>,
    heard_at: Option<Instant>,
    /// This member's latest config bytes: what the next echo carries.
    echo: Option<Vec<u8>>,
    error: Option<String>,
    reachable: bool,
}

impl Member {
    fn new(target: Target, now: Instant) -> Member {
        Member {
            target,
            link: Link::Idle { retry_at: now },
            conn: 0,
            retired: None,
            retired_answered: false,
            redial_at_once: false,
            bootstrapped: false,
            last_poll: None,
            in_flight: None,
            unanswered: 0,
            failures: 0,
            reply: None,
            heard_at: None,
            echo: None,
            error: None,
            reachable: false,
        }
    }

    /// The connections the I/O layer holds open for this member (or is
    /// dialling).
    fn open_conns(&self) -> Vec<u64> {
        let current = (!matches!(self.link, Link::Idle { .. })).then_some(self.conn);
        current.into_iter().chain(self.retired).collect()
    }

    /// The latest reply, if it still counts: the connection is up, no poll
    /// went unanswered, and the reply is recent, or a later poll is still
    /// within its reply time-out (polls may be up to two intervals apart,
    /// on their slot or while held; waiting for an answer is not silence).
    fn fresh(&self, fresh_for: Duration, now: Instant) -> Option<&Sample> {
        // A retired connection that answered is up too (see `older_received`).
        let up = matches!(self.link, Link::Up { .. })
            || (self.retired.is_some() && self.retired_answered);
        self.reply.as_ref().filter(|s| {
            up && self.unanswered == 0
                && (now < s.at + fresh_for || self.in_flight.is_some_and(|sent| sent >= s.at))
        })
    }
}

/// How late a poll may leave after its slot and still count as on it.
const SLOT_TOLERANCE: Duration = Duration::from_millis(25);

/// How many election durations the watcher remembers.
const SETTLE_SAMPLES: usize = 5;

/// How polls are paced at a moment (see [`Watcher::pace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pace {
    /// Regular polls fall in this slot (while a leader is known).
    slot: Option<PollSlot>,
    /// Space polls out while the local member settles.
    hold: bool,
    /// `(when the leader was lost, not before)`: with no local server to
    /// watch, the first poll of each member after losing the leader waits
    /// until elections have lately taken to end; a reply before then would
    /// only say LOOKING and cost the poll that could have said who leads.
    deferred: Option<(Instant, Instant)>,
    /// Until when a member's first poll waits for the local server to serve
    /// (see [`WatcherConfig::local_probe`]).
    first_not_before: Option<Instant>,
}

impl Pace {
    /// When member `m` may be polled next (`fallback` if it never was).
    fn due(&self, m: &Member, interval: Duration, fallback: Instant) -> Instant {
        let due = schedule::next_poll_at(m.last_poll, interval, m.unanswered, self.hold, fallback);
        let due = match (self.slot, m.last_poll) {
            // A bootstrap goes at once; later regular polls keep to the slot.
            // A poll leaves a little after its slot (timers fire late), so
            // the next slot is sought from a little before a whole interval
            // on; the interval itself is still kept.
            (Some(slot), Some(_)) => slot
                .next(due.checked_sub(SLOT_TOLERANCE).unwrap_or(due), interval)
                .max(due),
            _ => due,
        };
        let due = match (self.first_not_before, m.last_poll) {
            (Some(not_before), None) => due.max(not_before),
            _ => due,
        };
        match self.deferred {
            Some((lost, not_before)) if m.last_poll.is_none_or(|last| last < lost) => {
                due.max(not_before)
            }
            _ => due,
        }
    }
}

/// One member as the watcher sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    pub target: Target,
    pub connected: bool,
    /// Connected, answering, and its last reply is fresh.
    pub reachable: bool,
    /// The latest reply, however old.
    pub vote: Option<Vote>,
    pub zxid: Option<i64>,
    pub reply_age: Option<Duration>,
    /// Why it is not reachable, when it is not.
    pub error: Option<String>,
}

/// Everything the watcher knows, for status documents.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub leader: Option<Leadership>,
    /// Since when the watcher has known no leader, when it saw one go.
    pub election_since: Option<Instant>,
    /// The rule's latest conclusion (with the election round and what
    /// followers believe while no leader is known).
    pub conclusion: Conclusion,
    pub members: Vec<MemberView>,
    pub voters: BTreeSet<i64>,
    /// The version of the newest committed config seen in a reply.
    pub config_version: Option<u64>,
    pub elections: u64,
    pub leader_changes: u64,
    pub stopped: Option<WatcherError>,
}

/// The connections to a member that left the committed config while a
/// poll to it was unanswered: closed when it answers or at `until`.
#[derive(Debug)]
struct Departing {
    sid: i64,
    conns: Vec<u64>,
    until: Instant,
}

/// The watcher's state machine.
#[derive(Debug)]
pub struct Watcher {
    config: WatcherConfig,
    members: BTreeMap<i64, Member>,
    departing: Vec<Departing>,
    /// The number the next dial gets (unique across members, so that a
    /// member that leaves and comes back never reuses a number).
    next_conn: u64,
    /// The quorum rule of the newest committed config seen.
    verifiers: Verifiers,
    config_version: Option<u64>,
    local: Option<LocalServer>,
    /// Whether the local server was seen not serving since the leader was
    /// lost (so that seeing it serve again means it has settled).
    local_left: bool,
    /// The durations of the last elections (see [`Watcher::settle_estimate`]).
    settle_times: VecDeque<Duration>,
    tracker: tracker::Tracker,
    conclusion: Conclusion,
    jitter: schedule::Jitter,
    actions: Vec<Action>,
    events: Vec<Event>,
    stopped: Option<WatcherError>,
    /// When the watcher was made.
    started: Instant,
    /// The instant of the latest input.
    now: Instant,
}

impl Watcher {
    /// A watcher of the members of `initial` (the member's own config
    /// file). Refuses a sid that breaks §5.1 and a preamble that could hurt a
    /// member (D4).
    pub fn new(
        config: WatcherConfig,
        initial: &QuorumConfig,
        now: Instant,
    ) -> Result<Watcher, WatcherError> {
        let targets = Target::all_from(&initial.servers);
        if config.sid < 0 || config.sid == i64::MAX {
            return Err(WatcherError::BadSid(config.sid));
        }
        if config.preamble.sid() != config.sid {
            return Err(WatcherError::PreambleSid {
                sid: config.sid,
                preamble: config.preamble.sid(),
            });
        }
        if initial.voters.is_empty() || targets.is_empty() {
            return Err(WatcherError::NoVoters);
        }
        check_sid(config.sid, targets.iter().map(|t| t.sid), None)?;
        if let Preamble::V1 { address, .. } = &config.preamble
            && !address.is_ip_literal()
        {
            return Err(WatcherError::NotIpLiteral(address.to_string()));
        }
        // Encoded once here so that a preamble that could hurt a member
        // (D4, D9, D10) stops the watcher before any connection is made.
        config.preamble.encode()?;
        let members = targets
            .into_iter()
            .map(|t| (t.sid, Member::new(t, now)))
            .collect();
        let jitter = schedule::Jitter::new(config.seed);
        let mut watcher = Watcher {
            config,
            members,
            departing: Vec::new(),
            next_conn: 1,
            verifiers: Verifiers::new(initial.quorum.clone(), initial.version),
            config_version: None,
            local: None,
            local_left: false,
            settle_times: VecDeque::new(),
            tracker: tracker::Tracker::default(),
            conclusion: Conclusion::NoLeader {
                election_round: None,
                looking_quorum: false,
                looking_peer_epoch: None,
                followers_believe: None,
            },
            jitter,
            actions: Vec::new(),
            events: Vec::new(),
            stopped: None,
            started: now,
            now,
        };
        watcher.step(now);
        Ok(watcher)
    }

    pub fn config(&self) -> &WatcherConfig {
        &self.config
    }

    /// Takes one input at `now`.
    pub fn handle(&mut self, input: Input, now: Instant) {
        if self.stopped.is_some() {
            return;
        }
        self.now = self.now.max(now);
        match input {
            Input::Connected { sid, conn } => {
                if let Some(m) = self.member_on(sid, conn, false) {
                    m.link = Link::Up { since: now };
                    m.redial_at_once = false;
                    m.bootstrapped = false;
                    m.unanswered = 0;
                    m.error = Some("connected; waiting for the first reply".to_owned());
                    self.events.push(Event::Connected { sid });
                }
            }
            Input::ConnectFailed { sid, conn, error } => {
                if self.member_on(sid, conn, false).is_some() {
                    self.link_down(sid, error, now);
                }
            }
            Input::Closed { sid, conn, error } => {
                if self.member_on(sid, conn, true).is_some() {
                    self.link_down(sid, error, now);
                } else {
                    self.older_closed(sid, conn);
                }
            }
            Input::Received { sid, conn, payload } => {
                if let Some(m) = self.member_on(sid, conn, true) {
                    // The member answered on the current connection, so it
                    // has replaced the retired one: whatever it still reads
                    // there it answers here.
                    if let Some(retired) = m.retired.take() {
                        self.actions.push(Action::Close { sid, conn: retired });
                    }
                    self.received(sid, &payload, now);
                } else {
                    self.older_received(sid, conn, &payload, now);
                }
            }
            Input::Local(local) => {
                let healed = local == LocalServer::Serving
                    && matches!(
                        self.local,
                        Some(LocalServer::NotServing | LocalServer::Down)
                    );
                self.local_left |= local == LocalServer::NotServing;
                self.local = Some(local);
                if healed {
                    self.redial_unanswering(now);
                }
            }
            Input::Tick => {}
        }
        if self.stopped.is_none() {
            self.step(now);
        }
    }

    /// The actions to carry out, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The events since the last call, in order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// When [`Input::Tick`] must be given next; `None` when only other
    /// inputs can change anything. Always after the last input's instant.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.stopped.is_some() {
            return None;
        }
        let pace = self.pace();
        let config = &self.config;
        self.members
            .values()
            .flat_map(|m| match m.link {
                Link::Idle { retry_at } => [Some(retry_at), None],
                Link::Connecting => [None, None],
                Link::Up { since } => [
                    Some(match m.in_flight {
                        Some(sent) => sent + config.reply_timeout,
                        None => pace.due(m, config.poll_interval, since),
                    }),
                    // A reply going stale changes reachability and perhaps
                    // the leader.
                    m.fresh(config.fresh_for, self.now)
                        .map(|s| s.at + config.fresh_for)
                        .filter(|stale| *stale > self.now),
                ],
            })
            .flatten()
            .chain(self.departing.iter().map(|d| d.until))
            .min()
    }

    /// What the watcher knows at `now`.
    pub fn view(&self, now: Instant) -> View {
        View {
            leader: self.tracker.current(),
            election_since: self.tracker.election_since(),
            conclusion: self.conclusion.clone(),
            members: self
                .members
                .values()
                .map(|m| MemberView {
                    target: m.target.clone(),
                    connected: matches!(m.link, Link::Up { .. }),
                    reachable: m.fresh(self.config.fresh_for, now).is_some(),
                    vote: m.reply.map(|s| s.vote),
                    zxid: m.reply.map(|s| s.zxid),
                    reply_age: m.reply.map(|s| now.saturating_duration_since(s.at)),
                    error: if m.fresh(self.config.fresh_for, now).is_some() {
                        None
                    } else {
                        Some(
                            m.error
                                .clone()
                                .unwrap_or_else(|| "no recent reply".to_owned()),
                        )
                    },
                })
                .collect(),
            voters: self.verifiers.voters(),
            config_version: self.config_version,
            elections: self.tracker.elections,
            leader_changes: self.tracker.leader_changes,
            stopped: self.stopped.clone(),
        }
    }

    /// The member for an input on connection `conn`, if that connection is
    /// still the current one (inputs from closed connections are dropped).
    fn member_on(&mut self, sid: i64, conn: u64, up: bool) -> Option<&mut Member> {
        self.members.get_mut(&sid).filter(|m| {
            m.conn == conn
                && if up {
                    matches!(m.link, Link::Up { .. })
                } else {
                    m.link == Link::Connecting
                }
        })
    }

    fn link_down(&mut self, sid: i64, error: LinkError, now: Instant) {
        let jitter = self.jitter.next();
        let Some(m) = self.members.get_mut(&sid) else {
            return;
        };
        m.failures = m.failures.saturating_add(1);
        // The back-off spares members the log lines of connections that
        // come and go (D12); a dial that timed out or was refused never
        // reached the member's process, so it backs off to 2 s at most and
        // a partition's end is found within a dial or two.
        let unseen = matches!(error.reason, "connect_timeout" | "connection_refused");
        let failures = if unseen {
            m.failures.min(2)
        } else {
            m.failures
        };
        let delay = if std::mem::take(&mut m.redial_at_once) {
            Duration::ZERO
        } else {
            schedule::reconnect_delay(
                failures,
                self.config.reconnect_min,
                self.config.reconnect_max,
                jitter,
            )
        };
        m.link = Link::Idle {
            retry_at: now + delay,
        };
        m.in_flight = None;
        m.unanswered = 0;
        m.error = Some(error.detail.clone());
        self.events.push(Event::PollError {
            sid,
            reason: error.reason,
            detail: error.detail,
        });
    }

    fn received(&mut self, sid: i64, payload: &[u8], now: Instant) {
        let notification = match Notification::decode(payload) {
            Ok(n) => n,
            Err(e) => {
                // As a 3.5+ member does: drop the message, keep the connection.
                self.events.push(Event::PollError {
                    sid,
                    reason: e.reason(),
                    detail: format!("an unusable reply: {e}"),
                });
                return;
            }
        };
        let vote = Vote {
            state: notification.state,
            leader: notification.leader,
            peer_epoch: notification.peer_epoch,
            election_epoch: notification.election_epoch,
        };
        let Some(m) = self.members.get_mut(&sid) else {
            return;
        };
        let before = m.reply.map(|s| s.vote.state);
        m.reply = Some(Sample {
            vote,
            zxid: notification.zxid,
            at: now,
        });
        m.heard_at = Some(now);
        m.in_flight = None;
        m.unanswered = 0;
        m.failures = 0;
        m.error = None;
        self.events.push(Event::Reply { sid, vote });
        if before != Some(vote.state) {
            self.events.push(Event::StateChanged {
                sid,
                from: before,
                to: vote.state,
            });
        }
        // An empty config is never echoed (D2): keep the last good one.
        if let Some(config) = notification.config.filter(|c| !c.is_empty())
            && m.echo.as_deref() != Some(config.as_slice())
        {
            m.echo = Some(config.clone());
            self.config_seen(sid, &config, now);
        }
    }

    /// A member's committed config changed (or was first seen).
    fn config_seen(&mut self, sid: i64, raw: &[u8], now: Instant) {
        let parsed = match QuorumConfig::parse(raw) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.events.push(Event::PollError {
                    sid,
                    reason: "config",
                    detail: format!("member {sid}'s config cannot be read: {e}"),
                });
                return;
            }
        };
        let listed = parsed.voters.iter().chain(&parsed.observers).copied();
        if let Err(e) = check_sid(self.config.sid, listed, Some(parsed.version_hex())) {
            self.stop(e);
            return;
        }
        if self.config_version.is_some_and(|v| parsed.version <= v) {
            return;
        }
        self.adopt(&parsed, now);
    }

    /// Follows a newer committed config: new members are dialled, members it
    /// no longer lists are dropped.
    fn adopt(&mut self, config: &QuorumConfig, now: Instant) {
        let targets = Target::all_from(&config.servers);
        if targets.is_empty() {
            return;
        }
        self.config_version = Some(config.version);
        self.verifiers = Verifiers::new(config.quorum.clone(), config.version);
        let listed: BTreeSet<i64> = targets.iter().map(|t| t.sid).collect();
        let gone: Vec<i64> = self
            .members
            .keys()
            .filter(|sid| !listed.contains(sid))
            .copied()
            .collect();
        for sid in gone {
            if let Some(m) = self.members.remove(&sid) {
                self.depart(m, now);
            }
        }
        for target in targets {
            match self.members.get_mut(&target.sid) {
                None => {
                    self.members.insert(target.sid, Member::new(target, now));
                }
                Some(m) if m.target != target => {
                    let moved = (m.target.host.as_str(), m.target.election_port)
                        != (target.host.as_str(), target.election_port);
                    m.target = target;
                    // A member whose address changed is a new process (a pod
                    // has one IP for its life): nothing there will answer
                    // the old connections.
                    if moved {
                        let sid = m.target.sid;
                        for conn in m.open_conns() {
                            self.actions.push(Action::Close { sid, conn });
                        }
                        m.retired = None;
                        m.link = Link::Idle { retry_at: now };
                        m.in_flight = None;
                    }
                }
                Some(_) => {}
            }
        }
        self.events.push(Event::ConfigAdopted {
            version: config.version,
            voters: config.voters.iter().copied().collect(),
            observers: config.observers.iter().copied().collect(),
        });
    }

    /// Keeps member `sid`'s current connection open as the retired one and
    /// dials it again: at once the first time since it last answered, else
    /// after the reconnect back-off (D12).
    fn retire(&mut self, sid: i64, now: Instant) {
        let jitter = self.jitter.next();
        let Some(m) = self.members.get_mut(&sid) else {
            return;
        };
        let delay = match m.failures {
            0 => Duration::ZERO,
            n => schedule::reconnect_delay(
                n,
                self.config.reconnect_min,
                self.config.reconnect_max,
                jitter,
            ),
        };
        m.failures = m.failures.saturating_add(1);
        m.retired = Some(m.conn);
        m.retired_answered = false;
        m.link = Link::Idle {
            retry_at: now + delay,
        };
        m.in_flight = None;
    }

    /// The local server serves again: the network around it is back, so
    /// every member waiting to be dialled again is dialled now, its back-off
    /// forgotten, and a dial under way that fails is repeated at once. (A
    /// dial under way is left to finish: abandoning one whose preamble got
    /// through would close the connection the member has just taken in
    /// place of the one it answers on.)
    fn redial_unanswering(&mut self, now: Instant) {
        for m in self.members.values_mut() {
            match m.link {
                Link::Idle { retry_at } if retry_at > now => {
                    m.failures = 0;
                    m.link = Link::Idle { retry_at: now };
                }
                Link::Connecting => m.redial_at_once = true,
                Link::Idle { .. } | Link::Up { .. } => {}
            }
        }
    }

    /// A member left the committed config: its connections close now, or,
    /// while a poll to it is unanswered, when it answers or its reply
    /// time-out passes.
    fn depart(&mut self, m: Member, now: Instant) {
        let sid = m.target.sid;
        let conns = m.open_conns();
        let until = m
            .in_flight
            .map_or(now, |sent| sent + self.config.reply_timeout);
        let departing = Departing { sid, conns, until };
        if until > now {
            self.departing.push(departing);
        } else {
            self.close_departed(departing);
        }
    }

    fn close_departed(&mut self, d: Departing) {
        for conn in d.conns {
            self.actions.push(Action::Close { sid: d.sid, conn });
        }
    }

    /// Connection `conn` to `sid`, not the current one, ended.
    fn older_closed(&mut self, sid: i64, conn: u64) {
        if let Some(m) = self.members.get_mut(&sid)
            && m.retired == Some(conn)
        {
            m.retired = None;
        }
        for d in &mut self.departing {
            if d.sid == sid {
                d.conns.retain(|c| *c != conn);
            }
        }
        self.departing.retain(|d| !d.conns.is_empty());
    }

    /// A reply on a connection that is not the current one: the answer to
    /// the poll that connection carried. A retired connection's reply is a
    /// fresh sample; a departing member has answered and may be closed.
    fn older_received(&mut self, sid: i64, conn: u64, payload: &[u8], now: Instant) {
        if let Some(i) = self
            .departing
            .iter()
            .position(|d| d.sid == sid && d.conns.contains(&conn))
        {
            let d = self.departing.remove(i);
            self.close_departed(d);
            return;
        }
        let Some(m) = self.members.get_mut(&sid) else {
            return;
        };
        if m.retired != Some(conn) {
            return;
        }
        // Taken as a reply, but the current connection's own poll (if any)
        // stays in flight: one answer, one poll.
        let in_flight = m.in_flight;
        // The retired connection stays open, and counts as up, until the
        // member replaces it (accepting the newer connection closes it) or
        // answers on the newer one. Whether the newer one is only being
        // dialled or already connected as far as this side's kernel knows,
        // the member may not have accepted it yet (a paused member's kernel
        // accepts for it): this is then the only connection it holds for
        // the watcher's sid, and closing it would leave the member nothing
        // to send on the next time it has something for this sid — it
        // would log `Invalid server id`. A dial is never abandoned either:
        // if its preamble got through, the member has already closed this
        // connection for it.
        m.retired_answered = true;
        self.received(sid, payload, now);
        if let Some(m) = self.members.get_mut(&sid) {
            m.in_flight = in_flight;
        }
    }

    fn stop(&mut self, error: WatcherError) {
        for (sid, m) in &self.members {
            for conn in m.open_conns() {
                self.actions.push(Action::Close { sid: *sid, conn });
            }
        }
        for d in std::mem::take(&mut self.departing) {
            for conn in d.conns {
                self.actions.push(Action::Close { sid: d.sid, conn });
            }
        }
        self.events.push(Event::Stopped(error.clone()));
        self.stopped = Some(error);
    }

    /// From the moment the watcher loses the leader until its own member,
    /// alive, has been seen to stop serving and serve again, it spaces polls
    /// out: replies in between say LOOKING, the next useful one comes when
    /// the local server serves again, and the poll saved is then free to go
    /// at once. A watcher whose own server is down has nothing to wait for.
    fn pace(&self) -> Pace {
        let deferred = match (self.tracker.election_since(), self.local) {
            (Some(lost), None | Some(LocalServer::Down)) if self.tracker.lost_leader() => {
                self.settle_estimate().map(|settle| (lost, lost + settle))
            }
            _ => None,
        };
        let never_led = self.tracker.current().is_none() && !self.tracker.lost_leader();
        let first_not_before = match self.local {
            None | Some(LocalServer::NotServing) if self.config.local_probe && never_led => {
                Some(self.started + self.config.poll_interval)
            }
            _ => None,
        };
        Pace {
            // Without a leader, polls follow events, not the slot.
            slot: self
                .config
                .slot
                .filter(|_| self.tracker.current().is_some()),
            hold: self.hold(),
            deferred,
            first_not_before,
        }
    }

    /// How long elections took here lately, from losing the leader to
    /// knowing the next one: the shortest of the last few (the others
    /// include waits for the poll interval).
    fn settle_estimate(&self) -> Option<Duration> {
        self.settle_times.iter().min().copied()
    }

    fn hold(&self) -> bool {
        self.tracker.lost_leader()
            && match self.local {
                None | Some(LocalServer::Down) => false,
                Some(LocalServer::NotServing) => true,
                // Still serving as far as the probe knows (it may not have
                // looked since the leader went): hold until it has been seen
                // leave and come back.
                Some(LocalServer::Serving) => !self.local_left,
            }
    }

    /// Runs the timers due at `now`, then re-evaluates reachability and the
    /// leader.
    fn step(&mut self, now: Instant) {
        let (done, waiting) = std::mem::take(&mut self.departing)
            .into_iter()
            .partition(|d| now >= d.until);
        self.departing = waiting;
        for d in done {
            self.close_departed(d);
        }
        loop {
            let pace = self.pace();
            let sids: Vec<i64> = self.members.keys().copied().collect();
            for sid in sids {
                self.step_member(sid, pace, now);
            }
            self.evaluate(now);
            // Losing or finding the leader changes the pace; polls that are
            // due under the new one go now. (The pace only tightens again by
            // losing the leader, so this settles on the second pass.)
            if self.pace() == pace || self.stopped.is_some() {
                break;
            }
        }
    }

    fn step_member(&mut self, sid: i64, pace: Pace, now: Instant) {
        let config = &self.config;
        let Some(m) = self.members.get_mut(&sid) else {
            return;
        };
        let since = match m.link {
            Link::Idle { retry_at } if now >= retry_at => {
                m.conn = self.next_conn;
                self.next_conn += 1;
                m.link = Link::Connecting;
                self.actions.push(Action::Connect {
                    sid,
                    conn: m.conn,
                    to: ElectionAddress::new(m.target.host.clone(), m.target.election_port),
                });
                return;
            }
            Link::Idle { .. } | Link::Connecting => return,
            Link::Up { since } => since,
        };
        if let Some(sent) = m.in_flight
            && now >= sent + config.reply_timeout
        {
            m.in_flight = None;
            m.unanswered = m.unanswered.saturating_add(1);
            let detail = format!(
                "no reply to a poll within {}",
                seconds(config.reply_timeout)
            );
            m.error = Some(detail.clone());
            self.events.push(Event::PollError {
                sid,
                reason: "no_reply",
                detail,
            });
            if m.retired.is_none() {
                self.retire(sid, now);
                return self.step_member(sid, pace, now);
            }
            // The retired connection is still open, so the member has not
            // accepted this one (accepting it closes the older): closing it
            // cannot leave the member without a connection to answer on.
            // The retired one stays until the member answers or drops it.
            let heard = m.heard_at.map_or(since, |h| h.max(since));
            if now >= heard + config.silence_limit {
                let (limit, conn) = (config.silence_limit, m.conn);
                self.actions.push(Action::Close { sid, conn });
                self.link_down(
                    sid,
                    LinkError::new(
                        "silent",
                        format!("nothing heard for {}; reconnecting", seconds(limit)),
                    ),
                    now,
                );
                return;
            }
        }
        let due = pace.due(m, config.poll_interval, now);
        if m.in_flight.is_some() || now < due {
            return;
        }
        let bootstrap = !m.bootstrapped || m.echo.is_none();
        let payload = match (&m.echo, bootstrap) {
            (Some(echo), false) => watcher_echo(0, echo).unwrap_or_else(|_| watcher_bootstrap(0)),
            _ => watcher_bootstrap(0),
        };
        m.bootstrapped = true;
        m.in_flight = Some(now);
        m.last_poll = Some(now);
        self.actions.push(Action::Send {
            sid,
            conn: m.conn,
            payload,
        });
        self.events.push(Event::PollSent { sid, bootstrap });
    }

    fn evaluate(&mut self, now: Instant) {
        let fresh_for = self.config.fresh_for;
        let mut replies = BTreeMap::new();
        for (sid, m) in self.members.iter_mut() {
            let fresh = m.fresh(fresh_for, now).copied();
            if let Some(sample) = fresh {
                replies.insert(*sid, sample.vote);
            }
            let reachable = fresh.is_some();
            if reachable != m.reachable {
                m.reachable = reachable;
                self.events.push(if reachable {
                    Event::Reachable { sid: *sid }
                } else {
                    Event::Unreachable {
                        sid: *sid,
                        reason: m
                            .error
                            .clone()
                            .unwrap_or_else(|| format!("no reply for {}", seconds(fresh_for))),
                    }
                });
            }
        }
        self.conclusion = conclude(&replies, &self.verifiers);
        if let Some(event) = self.tracker.update(&self.conclusion, now) {
            match event {
                LeaderEvent::Lost { .. } => self.local_left = false,
                LeaderEvent::Known {
                    election_duration: Some(took),
                    ..
                } => {
                    if self.settle_times.len() == SETTLE_SAMPLES {
                        self.settle_times.pop_front();
                    }
                    self.settle_times.push_back(took);
                }
                _ => {}
            }
            self.events.push(Event::Leader(event));
        }
    }
}

/// §5.1: the watcher's sid must be above every listed sid and equal to none.
fn check_sid(
    sid: i64,
    listed: impl IntoIterator<Item = i64>,
    version: Option<String>,
) -> Result<(), WatcherError> {
    for member in listed {
        if member == sid {
            return Err(WatcherError::SidCollision { sid, version });
        }
        if member > sid {
            return Err(WatcherError::SidNotAbove { sid, member });
        }
    }
    Ok(())
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests;
