//! Random fault schedules from a seed, and the invariants every schedule
//! must satisfy once the network is healed and a quorum of voters is up:
//!
//! 1. every live voter has decided, all on the same leader, and that leader
//!    is live and LEADING; every live observer is OBSERVING it;
//! 2. nobody changed state for the last stretch of the run (it is stable);
//! 3. every voter's last change came within [`Schedule::voter_bound`] of the
//!    heal, and every observer's within [`Schedule::observer_bound`];
//! 4. no voter decided, by its own round's agreement, on a vote that its own
//!    initial vote beats, and no vote that decided an election is beaten by
//!    the initial vote of a voter that supported it in that round.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use super::{Conditions, Rng, Sim};
use crate::fle::{Reason, Settings};
use crate::quorum::{QuorumVerifier, Verifiers};
use crate::wire::ServerState;

/// One step of a schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Start(i64),
    Crash(i64),
    Partition(Vec<Vec<i64>>),
    Heal,
    Reset(i64, i64),
    Conditions(Conditions),
}

/// A random scenario: who takes part, what happens when, and when the
/// network is healed for good.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub seed: u64,
    pub voters: Vec<i64>,
    pub observers: Vec<i64>,
    /// (sid, zxid, peer epoch) of every peer.
    pub peers: Vec<(i64, i64, i64)>,
    pub ops: Vec<(Duration, Op)>,
    /// From here on: no faults, calm network, a quorum of voters live.
    pub heal_at: Duration,
    /// How long the run continues after the observers' bound, to see that
    /// nothing changes any more.
    pub quiet: Duration,
}

/// The timing the simulated peers use: `tickTime` 500 ms and `syncLimit` 4,
/// as the real-ZooKeeper tests use, with ZooKeeper's 200 ms finalizeWait and
/// 60 s notification back-off.
pub fn timing() -> Settings {
    Settings {
        tick: Duration::from_millis(500),
        leader_timeout: Duration::from_millis(2000),
        ..Settings::new(0, Verifiers::new(QuorumVerifier::majority([]), 0))
    }
}

impl Schedule {
    /// How long after the heal every live voter has settled for good.
    ///
    /// At the heal every connection comes back and replays its last message,
    /// so settled members answer the LOOKING ones at once. Left: a stale
    /// leader is given up after the leader timeout, and steps down after it;
    /// a vote that reached a peer while it was still settled is answered,
    /// not kept, and is only sent again when its sender's notification
    /// interval expires, which by then may be the full 60 s; then one
    /// election with its finalize window. So 60 s, three leader timeouts
    /// and 5 s of rounds: 71 s with the simulated timing.
    pub fn voter_bound() -> Duration {
        let t = timing();
        t.max_notification_interval + 3 * t.leader_timeout + Duration::from_secs(5)
    }

    /// How long after the heal every live observer has settled: nobody
    /// sends to a non-voter unasked, so it learns the leader at its next
    /// poll, at most the 60 s notification interval after the voters settle.
    pub fn observer_bound() -> Duration {
        Schedule::voter_bound() + timing().max_notification_interval
    }

    /// A random schedule for `seed`.
    pub fn random(seed: u64) -> Schedule {
        let mut rng = Rng::new(seed);
        let voter_count = *rng.pick(&[1, 2, 3, 3, 3, 5, 5, 7]).unwrap_or(&3);
        let observer_count = *rng.pick(&[0, 0, 0, 1, 2]).unwrap_or(&0);
        let voters: Vec<i64> = (1..=voter_count).collect();
        let observers: Vec<i64> = (0..observer_count).map(|i| 128 + i).collect();
        let all: Vec<i64> = voters.iter().chain(&observers).copied().collect();
        // Votes: mostly Rust-like (zxid 0, small epochs), sometimes with logs.
        let peers = all
            .iter()
            .map(|sid| {
                let epoch = rng.below(3) as i64;
                let zxid = if rng.chance(0.3) {
                    (epoch << 32) | rng.below(4) as i64
                } else {
                    0
                };
                (*sid, zxid, epoch)
            })
            .collect();

        let mut ops = Vec::new();
        // Everyone starts within the first two seconds, in random order.
        let mut order = all.clone();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let stagger = *rng.pick(&[0u64, 5, 50, 150, 400, 1000]).unwrap_or(&0);
        for (i, sid) in order.iter().enumerate() {
            let jitter = rng.below(stagger + 1);
            ops.push((
                Duration::from_millis(i as u64 * stagger + jitter),
                Op::Start(*sid),
            ));
        }

        // A chaotic stretch, possibly empty.
        let chaos = Duration::from_millis(rng.below(40_000));
        if rng.chance(0.5) {
            ops.push((
                Duration::ZERO,
                Op::Conditions(Conditions {
                    min_delay: Duration::from_micros(100),
                    max_delay: Duration::from_millis(1 + rng.below(300)),
                    loss: if rng.chance(0.5) {
                        rng.below(30) as f64 / 100.0
                    } else {
                        0.0
                    },
                    reorder: rng.chance(0.5),
                }),
            ));
        }
        let faults = if chaos.is_zero() { 0 } else { rng.below(12) };
        let mut alive: BTreeSet<i64> = all.iter().copied().collect();
        let mut times: Vec<Duration> = (0..faults)
            .map(|_| Duration::from_millis(rng.below(chaos.as_millis() as u64 + 1)))
            .collect();
        times.sort();
        for at in times {
            match rng.below(5) {
                0 | 1 => {
                    if let Some(sid) = rng.pick(&all) {
                        if alive.remove(sid) {
                            ops.push((at, Op::Crash(*sid)));
                        } else {
                            alive.insert(*sid);
                            ops.push((at, Op::Start(*sid)));
                        }
                    }
                }
                2 => {
                    let mut groups = vec![Vec::new(), Vec::new()];
                    for sid in &all {
                        groups[rng.below(2) as usize].push(*sid);
                    }
                    ops.push((at, Op::Partition(groups)));
                }
                3 => ops.push((at, Op::Heal)),
                _ => {
                    if let (Some(a), Some(b)) = (rng.pick(&all), rng.pick(&all))
                        && a != b
                    {
                        ops.push((at, Op::Reset(*a, *b)));
                    }
                }
            }
        }
        // Stable: starts keep their order before equal-time faults.
        ops.sort_by_key(|(at, _)| *at);

        // The heal: calm network, no partition, and enough voters restarted
        // for a quorum (some crashed peers stay down).
        let heal_at = chaos + Duration::from_millis(2000);
        ops.push((heal_at, Op::Heal));
        ops.push((heal_at, Op::Conditions(Conditions::calm())));
        let quorum = voters.len() / 2 + 1;
        let mut live_voters = voters.iter().filter(|v| alive.contains(v)).count();
        for sid in &all {
            if alive.contains(sid) {
                continue;
            }
            let is_voter = voters.contains(sid);
            if (is_voter && live_voters < quorum) || rng.chance(0.5) {
                ops.push((heal_at, Op::Start(*sid)));
                live_voters += usize::from(is_voter);
            }
        }
        Schedule {
            seed,
            voters,
            observers,
            peers,
            ops,
            heal_at,
            quiet: Duration::from_secs(10),
        }
    }

    pub fn verifiers(&self) -> Verifiers {
        Verifiers::new(QuorumVerifier::majority(self.voters.iter().copied()), 0)
    }

    /// Runs the schedule; the outcome says what held and what did not.
    pub fn run(&self) -> Outcome {
        self.run_with(|_| {})
    }

    /// Runs the schedule with a hook to adjust the simulator first.
    pub fn run_with(&self, prepare: impl FnOnce(&mut Sim)) -> Outcome {
        let mut sim = Sim::new(self.seed, &self.verifiers(), &timing(), &self.peers);
        prepare(&mut sim);
        for (at, op) in &self.ops {
            sim.run_until(*at);
            match op {
                Op::Start(sid) => sim.start(*sid),
                Op::Crash(sid) => sim.crash(*sid),
                Op::Partition(groups) => sim.partition(groups),
                Op::Heal => sim.heal(),
                Op::Reset(a, b) => sim.reset_connection(*a, *b),
                Op::Conditions(c) => sim.conditions = c.clone(),
            }
        }
        sim.run_until(self.heal_at + Schedule::observer_bound() + self.quiet);
        let violations = check(&sim, self);
        Outcome { sim, violations }
    }
}

/// What a run ended with.
#[derive(Debug)]
pub struct Outcome {
    pub sim: Sim,
    pub violations: Vec<String>,
}

impl Outcome {
    /// How long after the heal the voters', and the observers', last state
    /// change came.
    pub fn settled_after(&self, schedule: &Schedule) -> (Duration, Duration) {
        let after = |sids: &[i64]| self.sim.last_change(sids).saturating_sub(schedule.heal_at);
        (after(&schedule.voters), after(&schedule.observers))
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: voters {:?}, observers {:?}, (sid, zxid, peerEpoch) {:?}",
            self.seed, self.voters, self.observers, self.peers
        )?;
        for (at, op) in &self.ops {
            writeln!(f, "  {:>8.3}s {op:?}", at.as_secs_f64())?;
        }
        write!(f, "  heal at {:.3}s", self.heal_at.as_secs_f64())
    }
}

/// Every invariant of the module docs that does not hold.
pub fn check(sim: &Sim, schedule: &Schedule) -> Vec<String> {
    let mut violations = Vec::new();
    let live_voters: Vec<i64> = schedule
        .voters
        .iter()
        .copied()
        .filter(|sid| sim.is_alive(*sid))
        .collect();
    let leaders: BTreeSet<Option<i64>> = live_voters
        .iter()
        .map(|sid| sim.election(*sid).and_then(|e| e.leader()))
        .collect();
    match leaders.iter().collect::<Vec<_>>()[..] {
        [Some(leader)] => {
            let leader = *leader;
            match sim.election(leader) {
                None => violations.push(format!("the leader {leader} is not live")),
                Some(e) if e.state() != ServerState::Leading => {
                    violations.push(format!("the leader {leader} is {}, not LEADING", e.state()))
                }
                Some(_) => {}
            }
            for sid in &schedule.observers {
                if let Some(e) = sim.election(*sid)
                    && (e.state() != ServerState::Observing || e.leader() != Some(leader))
                {
                    violations.push(format!(
                        "observer {sid} is {} with leader {:?}, not OBSERVING {leader}",
                        e.state(),
                        e.leader()
                    ));
                }
            }
        }
        _ => {
            let states: Vec<String> = live_voters
                .iter()
                .filter_map(|sid| {
                    let e = sim.election(*sid)?;
                    Some(format!("{sid}: {} {:?}", e.state(), e.leader()))
                })
                .collect();
            violations.push(format!(
                "live voters do not agree on one leader: {}",
                states.join(", ")
            ));
        }
    }
    for (class, sids, bound) in [
        ("voter", &schedule.voters, Schedule::voter_bound()),
        ("observer", &schedule.observers, Schedule::observer_bound()),
    ] {
        let last = sim.last_change(sids);
        if last > schedule.heal_at + bound {
            violations.push(format!(
                "a {class} changed state at {:.3}s, {:.3}s after the heal (bound {:.0}s)",
                last.as_secs_f64(),
                (last - schedule.heal_at).as_secs_f64(),
                bound.as_secs_f64()
            ));
        }
    }
    for decided in &sim.decisions {
        if decided.decision.reason != Reason::Finalized {
            continue;
        }
        let vote = decided.decision.vote.proposal();
        if decided.initial.beats(&vote, 1) {
            violations.push(format!(
                "{} finalized on {vote:?} at {:.3}s although its own initial vote {:?} is better",
                decided.sid,
                decided.at.as_secs_f64(),
                decided.initial
            ));
        }
        for supporter in &decided.decision.supporters {
            // A supporter that had itself joined this leader (rather than
            // agreed in the round) may legitimately have a better vote.
            let joined = sim.decisions.iter().any(|d| {
                d.sid == *supporter
                    && d.at <= decided.at
                    && d.decision.leader == vote.leader
                    && d.decision.reason != Reason::Finalized
            });
            if !joined
                && let Some(initial) = sim.initial_proposal(*supporter)
                && initial.beats(&vote, 1)
            {
                violations.push(format!(
                    "{} finalized on {vote:?} at {:.3}s supported by {supporter}, whose initial vote {initial:?} is better",
                    decided.sid,
                    decided.at.as_secs_f64()
                ));
            }
        }
    }
    violations
}
