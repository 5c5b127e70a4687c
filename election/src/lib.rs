//! zk-election: ZooKeeper's leader election protocol (the election port,
//! usually 3888) — wire codec, the FastLeaderElection state machine, and a
//! transport that real ZooKeeper servers accept. See
//! `docs/zk-election-protocol.md` in the shared design documents.

#![warn(clippy::unwrap_used)]
