//! zk-kind: zookube's end-to-end suite on a kind cluster.
//!
//! `tests/kind/run` creates the cluster, builds the operator and sidecar
//! images from `docker/Dockerfile`, loads them, installs `charts/zookube`
//! and then runs `tests/kind.rs`, whose tests are ignored in the normal test
//! run because they need that cluster. This crate holds what they share:
//!
//! - [`kind`]: the connection, made only from the kubeconfig the script
//!   wrote and refused for any context that is not a kind cluster's;
//! - [`examples`]: which `examples/` clusters the suite applies, and the
//!   few fields it must change for kind;
//! - [`checks`]: pure decisions — does the status agree with the sidecars,
//!   do the role labels match, were acknowledged writes lost;
//! - [`sidecar`]: a member's `/v1/status`, read through the API server's pod
//!   proxy (the sidecar image is distroless: nothing to exec);
//! - [`zkcli`]: a real ZooKeeper client in the cluster — `zkCli.sh` of the
//!   cluster's own image in a short-lived pod, through the client Service;
//! - [`scenario`]: the steps the tests are made of (wait until healthy,
//!   delete the leader, scale, delete the cluster);
//! - [`poll`]: waiting for a condition on the API.

#![warn(clippy::unwrap_used)]

pub mod checks;
pub mod examples;
pub mod kind;
pub mod poll;
pub mod scenario;
pub mod sidecar;
pub mod zkcli;

use std::fmt;

/// Why a step of the suite failed.
#[derive(thiserror::Error)]
pub enum Error {
    #[error(
        "the kind suite needs {}: run it with tests/kind/run, which creates the cluster and sets it",
        kind::ENV_KUBECONFIG
    )]
    NotConfigured,
    #[error("cannot use the kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    #[error(
        "refusing to run against the context {context:?}: the suite deletes pods and clusters, so it runs only on a kind cluster (a context named kind-…)"
    )]
    NotKind { context: String },
    #[error("the Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("timed out after {after:?} waiting for {what}; last seen: {last}")]
    Timeout {
        what: String,
        after: std::time::Duration,
        last: String,
    },
    #[error("{0}")]
    Check(String),
}

/// Test functions return `Result<(), Error>`; a failure prints this, so it
/// reads as the message rather than as a derived `Debug`.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Fails a step with a message when `condition` does not hold.
pub fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<()> {
    if condition {
        Ok(())
    } else {
        Err(Error::Check(message()))
    }
}
