//! A linearizability checker for one compare-and-set register, in the style
//! of Wing & Gong with Lowe's memoisation (what Knossos and porcupine do):
//! a depth-first search for an order of the operations that respects
//! real time (an operation that completed before another was invoked comes
//! first) and that the register's sequential model accepts, remembering
//! every (set of operations taken, register state) already explored.
//!
//! The register is a znode: its state is its data version; an operation is
//! ZooKeeper's `setData(path, data, expected_version)`, which succeeds (the
//! version becomes `expected + 1`) exactly when the version is `expected`,
//! and fails with `BadVersion` otherwise. An operation whose outcome is
//! unknown (a time-out, a lost connection) may have taken effect at any
//! moment after its invocation, or never.
//!
//! ```
//! use zk_testkit::linearizable::{Cas, Outcome, check};
//! let history = [
//!     Cas { invoke: 0, complete: Some(10), expected: 0, outcome: Outcome::Set },
//!     Cas { invoke: 5, complete: Some(20), expected: 0, outcome: Outcome::BadVersion },
//! ];
//! assert!(check(0, &history).is_ok());
//! ```

use std::collections::HashSet;

/// What a compare-and-set returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The version was `expected`; it is now `expected + 1`.
    Set,
    /// The version was not `expected`; nothing changed.
    BadVersion,
    /// Unknown: the request timed out or its connection was lost.
    Unknown,
}

/// One `setData` with an expected version, as a client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cas {
    /// When it was sent (any monotonic unit, for example µs since start).
    pub invoke: u64,
    /// When its answer arrived; `None` when there was none.
    pub complete: Option<u64>,
    pub expected: i64,
    pub outcome: Outcome,
}

/// Why a history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLinearizable {
    /// The most operations any order explained before getting stuck.
    pub longest_prefix: usize,
    /// The operations left unexplained at that point (indices into the
    /// history).
    pub stuck_at: Vec<usize>,
}

impl std::fmt::Display for NotLinearizable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no order of the operations fits the register: at best {} of them were explained, then none of {:?} could come next",
            self.longest_prefix, self.stuck_at
        )
    }
}

/// Whether `history`, on a register whose version starts at `initial`, is
/// linearizable.
pub fn check(initial: i64, history: &[Cas]) -> Result<(), NotLinearizable> {
    // Depth-first, with an explicit stack: a history of thousands of
    // operations would overflow a thread's stack by recursion.
    let mut seen: HashSet<(Vec<bool>, i64)> = HashSet::new();
    let mut best = (0, Vec::new());
    let root = vec![false; history.len()];
    if finished(history, &root) {
        return Ok(());
    }
    seen.insert((root.clone(), initial));
    let mut stack = vec![Frame::new(history, initial, root, 0)];
    while let Some(frame) = stack.last_mut() {
        let Some(&(i, version)) = frame.candidates.get(frame.next) else {
            if frame.count >= best.0 {
                best = (frame.count, open(&frame.taken));
            }
            stack.pop();
            continue;
        };
        frame.next += 1;
        let mut taken = frame.taken.clone();
        taken[i] = true;
        let count = frame.count + 1;
        if finished(history, &taken) {
            return Ok(());
        }
        if seen.insert((taken.clone(), version)) {
            stack.push(Frame::new(history, version, taken, count));
        }
    }
    Err(NotLinearizable {
        longest_prefix: best.0,
        stuck_at: best.1,
    })
}

/// The register's sequential model: the version after `op` at `version`,
/// or `None` when `op`'s outcome cannot happen there.
fn apply(version: i64, op: &Cas) -> Option<i64> {
    let matches = version == op.expected;
    match op.outcome {
        Outcome::Set if matches => Some(version + 1),
        Outcome::BadVersion if !matches => Some(version),
        Outcome::Unknown if matches => Some(version + 1),
        // An unknown outcome that could not have set anything changed
        // nothing; it needs no place in the order.
        Outcome::Set | Outcome::BadVersion | Outcome::Unknown => None,
    }
}

fn open(taken: &[bool]) -> Vec<usize> {
    (0..taken.len()).filter(|i| !taken[*i]).collect()
}

/// Every operation with an answer is placed; unknown ones left over never
/// took effect.
fn finished(history: &[Cas], taken: &[bool]) -> bool {
    history
        .iter()
        .zip(taken)
        .all(|(op, taken)| *taken || op.outcome == Outcome::Unknown)
}

/// One step of the search: the operations that may come next from here.
struct Frame {
    taken: Vec<bool>,
    count: usize,
    /// `(operation, version after it)`, tried in turn.
    candidates: Vec<(usize, i64)>,
    next: usize,
}

impl Frame {
    fn new(history: &[Cas], version: i64, taken: Vec<bool>, count: usize) -> Frame {
        let open = open(&taken);
        // Real time: the next operation must have been invoked before the
        // earliest answer among the operations still open.
        let horizon = open
            .iter()
            .filter_map(|i| history[*i].complete)
            .min()
            .unwrap_or(u64::MAX);
        let candidates = open
            .into_iter()
            .filter(|i| history[*i].invoke <= horizon)
            .filter_map(|i| apply(version, &history[i]).map(|next| (i, next)))
            .collect();
        Frame {
            taken,
            count,
            candidates,
            next: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(invoke: u64, complete: Option<u64>, expected: i64, outcome: Outcome) -> Cas {
        Cas {
            invoke,
            complete,
            expected,
            outcome,
        }
    }

    use Outcome::{BadVersion, Set, Unknown};

    #[test]
    fn known_linearizable_and_non_linearizable_histories() {
        let cases: Vec<(&str, Vec<Cas>, bool)> = vec![
            ("empty", vec![], true),
            ("one set", vec![op(0, Some(1), 0, Set)], true),
            (
                "a set from the wrong version",
                vec![op(0, Some(1), 5, Set)],
                false,
            ),
            (
                "two sets in turn",
                vec![op(0, Some(1), 0, Set), op(2, Some(3), 1, Set)],
                true,
            ),
            (
                "the second set finished first, and overlaps: it may go first",
                vec![op(0, Some(10), 1, Set), op(1, Some(5), 0, Set)],
                true,
            ),
            (
                "in real time the later set needs the earlier one's version",
                vec![op(0, Some(1), 1, Set), op(2, Some(3), 0, Set)],
                false,
            ),
            (
                "two concurrent sets from one version cannot both win",
                vec![op(0, Some(10), 0, Set), op(1, Some(10), 0, Set)],
                false,
            ),
            (
                "concurrent: one wins, the other is told bad version",
                vec![op(0, Some(10), 0, Set), op(1, Some(10), 0, BadVersion)],
                true,
            ),
            (
                "a bad version where nothing could have moved it",
                vec![op(0, Some(1), 0, BadVersion)],
                false,
            ),
            (
                "an unknown outcome that took effect explains a later set",
                vec![op(0, None, 0, Unknown), op(5, Some(6), 1, Set)],
                true,
            ),
            (
                "an unknown outcome may also never take effect",
                vec![op(0, None, 0, Unknown), op(5, Some(6), 0, Set)],
                true,
            ),
            (
                "an acknowledged set lost: a later set from the old version",
                vec![
                    op(0, Some(1), 0, Set),
                    op(2, Some(3), 1, Set),
                    op(4, Some(5), 1, Set),
                ],
                false,
            ),
            (
                "a stale success after a newer one completed",
                vec![
                    op(0, Some(1), 0, Set),
                    op(2, Some(3), 1, Set),
                    op(4, Some(5), 0, BadVersion),
                    op(6, Some(7), 1, Set),
                ],
                false,
            ),
        ];
        for (name, history, linearizable) in cases {
            assert_eq!(check(0, &history).is_ok(), linearizable, "{name}");
        }
    }

    #[test]
    fn a_history_of_thousands_of_operations_does_not_overflow_the_stack() {
        // The fault suite records about 3000; a recursive search overflowed
        // the test thread's stack on that many.
        let history: Vec<Cas> = (0..5_000u64)
            .map(|n| op(n * 2, Some(n * 2 + 1), i64::try_from(n).unwrap(), Set))
            .collect();
        assert!(check(0, &history).is_ok());
    }

    #[test]
    fn a_long_history_of_contending_clients_is_checked_quickly() {
        // Four clients, each op overlapping the others': 400 operations.
        let mut history = Vec::new();
        for round in 0..100u64 {
            let (t, version) = (round * 10, i64::try_from(round).unwrap());
            for c in 0..4u64 {
                let outcome = if c == round % 4 { Set } else { BadVersion };
                history.push(op(t + c, Some(t + 8), version, outcome));
            }
        }
        let started = std::time::Instant::now();
        assert!(check(0, &history).is_ok());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // The same with one success moved to a version that never was.
        history[201].expected = 77;
        history[201].outcome = Set;
        history[200].outcome = BadVersion;
        history[202].outcome = BadVersion;
        history[203].outcome = BadVersion;
        assert!(check(0, &history).is_err());
    }
}
