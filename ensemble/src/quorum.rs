//! Majority-quorum arithmetic (ZooKeeper's `QuorumMaj`).
//!
//! Only voters count. A set of voters is a quorum when it holds more than
//! half of them; even ensemble sizes therefore tolerate no more failures than
//! the odd size below them, which is why zookube runs odd sizes only.

/// The number of voters that form a quorum: `n / 2 + 1`.
pub fn quorum_size(voters: u32) -> u32 {
    voters / 2 + 1
}

/// How many voters may fail while a quorum remains: `(n - 1) / 2`.
pub fn tolerated_failures(voters: u32) -> u32 {
    voters.saturating_sub(1) / 2
}

/// Whether `present` voters out of `voters` form a quorum.
pub fn is_quorum(present: u32, voters: u32) -> bool {
    voters > 0 && present >= quorum_size(voters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_of_the_protocol_spec() {
        // (voters, quorum, tolerated) from the spec's majority table.
        let table = [
            (1, 1, 0),
            (2, 2, 0),
            (3, 2, 1),
            (4, 3, 1),
            (5, 3, 2),
            (6, 4, 2),
            (7, 4, 3),
        ];
        for (n, q, f) in table {
            assert_eq!(quorum_size(n), q, "quorum of {n}");
            assert_eq!(tolerated_failures(n), f, "failures tolerated by {n}");
        }
    }

    #[test]
    fn an_even_size_tolerates_no_more_than_the_odd_size_below() {
        for k in 1..50 {
            assert_eq!(tolerated_failures(2 * k), tolerated_failures(2 * k - 1));
        }
    }

    #[test]
    fn quorum_membership() {
        assert!(is_quorum(2, 3));
        assert!(!is_quorum(1, 3));
        assert!(!is_quorum(2, 4));
        assert!(is_quorum(3, 5));
        assert!(!is_quorum(0, 0));
    }
}
