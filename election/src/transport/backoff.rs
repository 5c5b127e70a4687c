//! Exponential back-off with jitter for reconnecting: the mesh redials a
//! voter with it, and the watcher reconnects to members with it (§5.2: 1 s,
//! doubling, capped at 30 s, with jitter).

use std::time::Duration;

/// A back-off policy: `initial × 2^attempt`, capped at `max`, then scaled by
/// a random factor in `[1 − jitter, 1]` so peers do not retry in step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// The fraction of each delay that is random, in `0.0..=1.0`.
    pub jitter: f64,
}

impl Backoff {
    /// The watcher's policy (§5.2).
    pub const WATCHER: Backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(30),
        jitter: 0.5,
    };

    /// The voting mesh's policy: quick at first, never more than 5 s (the
    /// connect timeout) between tries.
    pub const MESH: Backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(5),
        jitter: 0.5,
    };

    /// The delay before retry number `attempt` (0-based), with `random` in
    /// `0.0..1.0` choosing the jitter. Pure, for tests.
    pub fn delay_with(&self, attempt: u32, random: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        let full = self.initial.saturating_mul(factor).min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        full.mul_f64(1.0 - jitter)
    }

    /// The delay before retry number `attempt`, with fresh jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, rand::random_range(0.0..1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_bounded_jitter() {
        let b = Backoff::WATCHER;
        let secs = |attempt| b.delay_with(attempt, 0.0).as_secs();
        assert_eq!(
            (0..8).map(secs).collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 30, 30, 30]
        );
        assert_eq!(b.delay_with(100, 0.0), Duration::from_secs(30));
        assert_eq!(b.delay_with(0, 1.0), Duration::from_millis(500));
        for attempt in 0..10 {
            let d = b.delay(attempt);
            assert!(d <= b.max && d >= b.delay_with(attempt, 1.0));
        }
    }
}
