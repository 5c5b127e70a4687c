//! zk-operator: turns a `ZookeeperCluster` into a working ensemble.
//!
//! The reconcile loop is a pipeline: read (I/O) → [`cluster::validate`]
//! (pure) → [`build`] (pure) → apply (I/O) → status (pure decisions, I/O
//! writes). `zk-operator render` and `local` run the same validate and build
//! steps without an API server.

#![warn(clippy::unwrap_used)]

pub mod build;
pub mod cluster;
pub mod crd;
pub mod render;
pub mod test_support;
