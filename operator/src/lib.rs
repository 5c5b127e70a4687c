//! zk-operator: turns a `ZookeeperCluster` into a working ensemble.
//!
//! The reconcile loop ([`controller`]) is a pipeline: read (I/O) →
//! [`cluster::validate`] (pure) → [`build`] (pure, one builder per kind) →
//! apply (I/O) → [`status`] (pure decisions from the pods and the sidecars'
//! `/v1/status`, read by [`sidecar_client`]; I/O writes). `zk-operator
//! render` ([`render`]) and `local` run the same validate and build steps
//! without an API server; [`cluster::parse_cluster`] reads their YAML.
//!
//! Around it: the CRD ([`crd`]), leader election over a Lease ([`leader`]),
//! metrics and `/healthz` ([`metrics`]), and `zk-operator run` ([`run`]).
//! Membership changes and rolling restarts follow `zk_ensemble::plan`
//! ([`membership`] maps its steps onto objects) and go through ZooKeeper's
//! `reconfig` as its super user ([`reconfig`]).

#![warn(clippy::unwrap_used)]

pub mod api_requests;
pub mod build;
pub mod cluster;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod local;
pub mod membership;
pub mod metrics;
pub mod reconfig;
pub mod render;
pub mod run;
pub mod sidecar_client;
pub mod status;
pub mod test_support;
