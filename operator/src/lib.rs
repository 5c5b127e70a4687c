//! zk-operator: turns a `ZookeeperCluster` into a working ensemble.
//!
//! The reconcile loop is a pipeline: read (I/O) → [`cluster::validate`]
//! (pure) → [`build`] (pure) → apply (I/O) → status (pure decisions, I/O
//! writes). `zk-operator render` and `local` run the same validate and build
//! steps without an API server.

#![warn(clippy::unwrap_used)]

pub mod build;
pub mod cluster;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod render;
pub mod run;
pub mod sidecar_client;
pub mod status;
pub mod test_support;
