//! FastLeaderElection under the deterministic simulator: the seed scenarios,
//! then thousands of random fault schedules checked against the invariants
//! of `zk_election::sim::schedule`.
//!
//! A failing schedule prints its seed. Replay it, with the full trace, with
//! `ZK_SIM_SEED=<seed> cargo nextest run -p zk-election --test simulation`.
//! `ZK_SIM_SCHEDULES=<n>` changes how many random schedules run.

use std::time::{Duration, Instant};

use zk_election::fle::Reason;
use zk_election::quorum::{QuorumVerifier, Verifiers};
use zk_election::sim::schedule::{Schedule, timing};
use zk_election::sim::{Decided, Sim, Trace};
use zk_election::wire::ServerState;

const DEFAULT_SCHEDULES: u64 = 10_000;

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Fresh Rust-style peers (zxid 0, peer epoch 0) voting in a majority config.
fn fresh(voters: &[i64], observers: &[i64], seed: u64) -> Sim {
    let verifiers = Verifiers::new(QuorumVerifier::majority(voters.iter().copied()), 0);
    let peers: Vec<(i64, i64, i64)> = voters
        .iter()
        .chain(observers)
        .map(|sid| (*sid, 0, 0))
        .collect();
    Sim::new(seed, &verifiers, &timing(), &peers)
}

fn state_of(sim: &Sim, sid: i64) -> (ServerState, Option<i64>) {
    let e = sim.election(sid).expect("live");
    (e.state(), e.leader())
}

fn decisions_of(sim: &Sim, sid: i64) -> Vec<&Decided> {
    sim.decisions.iter().filter(|d| d.sid == sid).collect()
}

/// Seed scenario: three peers started one after another elect the highest
/// sid once the second round of notifications (everyone re-voting for 3)
/// has gone round.
#[test]
fn three_peers_started_one_after_another_elect_the_highest_sid() {
    for seed in 0..20 {
        let mut sim = fresh(&[1, 2, 3], &[], seed);
        for (i, sid) in [1, 2, 3].into_iter().enumerate() {
            sim.run_until(ms(50 * i as u64));
            sim.start(sid);
        }
        sim.run_until(ms(3000));
        for sid in [1, 2, 3] {
            let expected = if sid == 3 {
                ServerState::Leading
            } else {
                ServerState::Following
            };
            assert_eq!(state_of(&sim, sid), (expected, Some(3)), "seed {seed}");
            let decided = decisions_of(&sim, sid);
            assert_eq!(decided.len(), 1, "seed {seed}: one election each");
            assert_eq!(decided[0].decision.reason, Reason::Finalized);
            assert_eq!(decided[0].clock, 1, "one election round");
            // It took one finalize window after the last start, not more.
            assert!(
                decided[0].at < ms(100 + 200 + 50),
                "seed {seed}: {:?}",
                decided[0].at
            );
        }
        // Peer 1 voted for itself, then for 2, then for 3: the second
        // round of notifications carried 3.
        let votes_of_1: Vec<i64> = sim
            .trace()
            .filter_map(|(_, t)| match t {
                Trace::Send { from: 1, vote, .. } if vote.state == ServerState::Looking => {
                    Some(vote.leader)
                }
                _ => None,
            })
            .collect();
        let mut changes = votes_of_1.clone();
        changes.dedup();
        assert_eq!(changes, vec![1, 2, 3], "seed {seed}: {votes_of_1:?}");
    }
}

/// Seed scenario: a peer that joins after the election adopts the existing
/// leader, and nobody else starts a new election.
#[test]
fn a_late_joiner_adopts_the_existing_leader_without_a_new_election() {
    for seed in 0..20 {
        let mut sim = fresh(&[1, 2, 3], &[], seed);
        sim.start(1);
        sim.start(2);
        sim.run_until(ms(2000));
        assert_eq!(state_of(&sim, 2), (ServerState::Leading, Some(2)));
        let clocks = |sim: &Sim| [1, 2].map(|s| sim.election(s).unwrap().logical_clock());
        let before = clocks(&sim);
        let decisions_before = sim.decisions.len();

        sim.start(3);
        sim.run_until(ms(6000));
        assert_eq!(
            state_of(&sim, 3),
            (ServerState::Following, Some(2)),
            "seed {seed}"
        );
        let joined = decisions_of(&sim, 3);
        assert_eq!(joined.len(), 1);
        assert_ne!(joined[0].decision.reason, Reason::Finalized, "it joined");
        assert!(
            joined[0].at < ms(2000 + 50),
            "joined within ms: {:?}",
            joined[0].at
        );
        // 1 and 2 never left their states and kept their round.
        assert_eq!(clocks(&sim), before, "seed {seed}");
        assert_eq!(sim.decisions.len(), decisions_before + 1);
        assert_eq!(state_of(&sim, 1), (ServerState::Following, Some(2)));
        assert_eq!(state_of(&sim, 2), (ServerState::Leading, Some(2)));
    }
}

/// Seed scenario: after the leader crashes the rest elect the best remaining
/// vote, and the old leader, restarted, follows the new one.
#[test]
fn after_the_leader_crashes_the_rest_elect_the_best_remaining_vote() {
    for seed in 0..20 {
        let mut sim = fresh(&[1, 2, 3], &[128], seed);
        for sid in [1, 2, 3, 128] {
            sim.start(sid);
        }
        sim.run_until(ms(3000));
        assert_eq!(state_of(&sim, 3), (ServerState::Leading, Some(3)));
        assert_eq!(state_of(&sim, 128), (ServerState::Observing, Some(3)));

        sim.crash(3);
        sim.run_until(ms(6000));
        assert_eq!(
            state_of(&sim, 2),
            (ServerState::Leading, Some(2)),
            "seed {seed}"
        );
        assert_eq!(
            state_of(&sim, 1),
            (ServerState::Following, Some(2)),
            "seed {seed}"
        );
        assert_eq!(
            state_of(&sim, 128),
            (ServerState::Observing, Some(2)),
            "seed {seed}"
        );
        let second = decisions_of(&sim, 2);
        assert_eq!(second.len(), 2);
        // The crash is noticed at once (the connection closes). A vote that
        // reaches a peer before it notices is answered, not kept, and every
        // message restarts the silence timer, so the election may take a
        // couple of notification intervals (200 ms each) and a finalize
        // window (200 ms); ZooKeeper 3.8 took about 0.6 s (§8).
        assert!(
            second[1].at < ms(3000 + 1000),
            "seed {seed}: {:?}",
            second[1].at
        );

        sim.start(3);
        sim.run_until(ms(9000));
        assert_eq!(
            state_of(&sim, 3),
            (ServerState::Following, Some(2)),
            "seed {seed}"
        );
        assert_eq!(decisions_of(&sim, 2).len(), 2, "no new election on 2");
    }
}

/// A follower cut off from its leader without a closed connection gives up
/// after the leader timeout, and a leader cut off from its quorum steps down.
#[test]
fn silent_partitions_are_detected_by_the_timeouts() {
    let mut sim = fresh(&[1, 2, 3, 4, 5], &[], 7);
    for sid in 1..=5 {
        sim.start(sid);
    }
    sim.run_until(ms(3000));
    assert_eq!(state_of(&sim, 5), (ServerState::Leading, Some(5)));
    sim.partition(&[vec![4, 5], vec![1, 2, 3]]);
    sim.run_until(ms(3000 + 2500 + 1000));
    assert_eq!(state_of(&sim, 3), (ServerState::Leading, Some(3)));
    assert_eq!(state_of(&sim, 5).0, ServerState::Looking, "stepped down");
    assert_eq!(state_of(&sim, 4).0, ServerState::Looking);
    sim.heal();
    sim.run_until(ms(9000));
    for sid in [1, 2, 4, 5] {
        assert_eq!(state_of(&sim, sid), (ServerState::Following, Some(3)));
    }
}

fn report_failure(schedule: &Schedule, violations: &[String], trace: &str) -> String {
    format!(
        "simulation seed {} failed:\n  {}\n{schedule}\nlast events:\n{trace}\nreplay: ZK_SIM_SEED={} cargo nextest run -p zk-election --test simulation",
        schedule.seed,
        violations.join("\n  "),
        schedule.seed
    )
}

/// Thousands of random schedules: staggered starts, delay, reordering, loss,
/// partitions, connection resets, crashes and restarts, then a heal.
#[test]
fn random_fault_schedules_converge_on_one_live_leader() {
    if let Ok(seed) = std::env::var("ZK_SIM_SEED") {
        let seed: u64 = seed.parse().expect("ZK_SIM_SEED is a number");
        let schedule = Schedule::random(seed);
        let outcome = schedule.run_with(|sim| sim.keep_full_trace());
        eprintln!("{schedule}\n{}", outcome.sim.format_trace());
        assert!(
            outcome.violations.is_empty(),
            "{}",
            report_failure(&schedule, &outcome.violations, "(above)")
        );
        return;
    }
    let count: u64 = std::env::var("ZK_SIM_SCHEDULES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_SCHEDULES);
    let started = Instant::now();
    let (mut slowest_voters, mut slowest_observers) = ((Duration::ZERO, 0), (Duration::ZERO, 0));
    let mut messages = 0;
    for seed in 0..count {
        let schedule = Schedule::random(seed);
        let outcome = schedule.run();
        if !outcome.violations.is_empty() {
            panic!(
                "{}",
                report_failure(&schedule, &outcome.violations, &outcome.sim.format_trace())
            );
        }
        let (voters, observers) = outcome.settled_after(&schedule);
        if voters > slowest_voters.0 {
            slowest_voters = (voters, seed);
        }
        if observers > slowest_observers.0 {
            slowest_observers = (observers, seed);
        }
        messages += outcome.sim.messages_sent;
    }
    eprintln!(
        "{count} schedules in {:.1}s ({messages} messages); slowest to settle after the heal: voters {:.3}s (seed {}, bound {:.0}s), observers {:.3}s (seed {}, bound {:.0}s)",
        started.elapsed().as_secs_f64(),
        slowest_voters.0.as_secs_f64(),
        slowest_voters.1,
        Schedule::voter_bound().as_secs_f64(),
        slowest_observers.0.as_secs_f64(),
        slowest_observers.1,
        Schedule::observer_bound().as_secs_f64(),
    );
}
