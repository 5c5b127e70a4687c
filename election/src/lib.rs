//! zk-election: ZooKeeper's leader election protocol (the election port,
//! usually 3888) — wire codec, the FastLeaderElection state machine, and a
//! transport that real ZooKeeper servers accept. The specification is the
//! project's `zk-election-protocol.md`; section numbers (§) refer to it.

#![warn(clippy::unwrap_used)]

pub mod config;
pub mod fle;
pub mod peer;
pub mod quorum;
pub mod sasl;
pub mod sim;
pub mod transport;
pub mod vote;
pub mod watcher;
pub mod wire;

/// The watcher sid of the sidecar beside member `myid`: `2^62 + myid`, larger
/// than every real member's sid and unique per sidecar (§5.1).
pub fn watcher_sid(myid: zk_ensemble::Myid) -> i64 {
    (1i64 << 62) + i64::from(myid)
}
