//! When the watcher may poll a member and when it may dial again: the
//! danger list's rate rules (D11: one poll in flight, one per interval, no
//! faster during elections; D12: reconnect with back-off) as pure
//! functions of time.

use std::time::{Duration, Instant};

/// The shortest poll interval the watcher accepts (§5.3).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The longest a member that does not answer waits between re-polls.
pub const MAX_REPOLL_SPACING: Duration = Duration::from_secs(30);

/// The spacing between two polls of one member.
///
/// * normally the interval;
/// * twice the interval while the watcher waits for its own member to
///   settle in an election (`hold`): the poll it saves is then available
///   the moment the local server serves again, which is when replies
///   become worth having;
/// * doubling per unanswered poll (up to 30 s) while a member is silent, so
///   a paused member does not find a queue of polls when it resumes.
pub(crate) fn poll_spacing(interval: Duration, unanswered: u32, hold: bool) -> Duration {
    if unanswered > 0 {
        interval
            .saturating_mul(1 << unanswered.min(16))
            .min(MAX_REPOLL_SPACING)
            .max(interval)
    } else if hold {
        interval.saturating_mul(2)
    } else {
        interval
    }
}

/// When the next poll may be sent (never before `last_poll + spacing`).
pub(crate) fn next_poll_at(
    last_poll: Option<Instant>,
    interval: Duration,
    unanswered: u32,
    hold: bool,
    now: Instant,
) -> Instant {
    last_poll.map_or(now, |last| last + poll_spacing(interval, unanswered, hold))
}

/// The delay before the `failures`-th consecutive reconnect: `min`,
/// doubling, capped at `max`, then spread by ±25 % with `jitter` in [0, 1).
pub(crate) fn reconnect_delay(
    failures: u32,
    min: Duration,
    max: Duration,
    jitter: f64,
) -> Duration {
    let base = min
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(max);
    base.mul_f64(0.75 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A small deterministic generator for jitter (SplitMix64), so the watcher
/// stays a pure function of its inputs and seed.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    /// A number in [0, 1).
    pub(crate) fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn polls_are_spaced_by_the_interval_and_never_faster() {
        let t0 = Instant::now();
        assert_eq!(next_poll_at(None, S, 0, false, t0), t0);
        assert_eq!(next_poll_at(Some(t0), S, 0, false, t0), t0 + S);
        assert_eq!(next_poll_at(Some(t0), S, 0, true, t0), t0 + 2 * S);
        for unanswered in 0..40 {
            for hold in [false, true] {
                let spacing = poll_spacing(S, unanswered, hold);
                assert!(spacing >= S, "{unanswered} {hold}");
                assert!(spacing <= MAX_REPOLL_SPACING);
            }
        }
        assert_eq!(poll_spacing(S, 1, false), 2 * S);
        assert_eq!(poll_spacing(S, 3, false), 8 * S);
        assert_eq!(poll_spacing(S, 9, false), MAX_REPOLL_SPACING);
    }

    #[test]
    fn reconnects_back_off_from_one_to_thirty_seconds_with_jitter() {
        let max = Duration::from_secs(30);
        let delays: Vec<Duration> = (1..=8).map(|n| reconnect_delay(n, S, max, 0.5)).collect();
        assert_eq!(delays[0], S);
        assert_eq!(delays[1], 2 * S);
        assert_eq!(delays[4], 16 * S);
        assert_eq!(delays[5], max);
        assert_eq!(delays[7], max);
        assert_eq!(reconnect_delay(1, S, max, 0.0), S.mul_f64(0.75));
        assert_eq!(
            reconnect_delay(6, S, max, 0.999_999),
            max.mul_f64(1.249_999_5)
        );
    }

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let mut j = Jitter::new(7);
        let draws: Vec<f64> = (0..1000).map(|_| j.next()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let mean = draws.iter().sum::<f64>() / 1000.0;
        assert!((0.4..0.6).contains(&mean), "{mean}");
        assert_ne!(Jitter::new(1).next(), Jitter::new(2).next());
    }
}
