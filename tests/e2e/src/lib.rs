//! zk-e2e: zookube's end-to-end suite on a real Kubernetes.
//!
//! `tests/e2e/run` starts a cluster (this machine's one-node Kubernetes, or
//! kind), builds the operator, sidecar and ZooKeeper images, makes them
//! available to it, installs the CRD and `charts/zookube`, and then runs
//! `tests/e2e.rs`, whose tests are ignored in the normal test run because
//! they need that cluster. This crate holds what they share:
//!
//! - [`cluster`]: the connection, made only from the kubeconfig the script
//!   names and refused for any context that is not a throwaway cluster's;
//! - [`examples`]: which `examples/` clusters the suite applies, and the
//!   few fields it must change for the cluster under test;
//! - [`checks`]: pure decisions — does the status agree with the sidecars,
//!   do the role labels match, were acknowledged writes lost;
//! - [`member`]: what ZooKeeper says inside a member pod (`srvr` through
//!   `kubectl exec`);
//! - [`operator`]: the operator replicas — who holds the leader Lease, and
//!   killing one as a crash would;
//! - [`node`]: killing a process in a container from the node (SIGKILL:
//!   the kubelet restarts the container in place);
//! - [`sidecar`]: a member's `/v1/status`, read through the API server's pod
//!   proxy (the sidecar image is distroless: nothing to exec);
//! - [`zkcli`]: a real ZooKeeper client in the cluster — `zkCli.sh` of the
//!   cluster's own image in a short-lived pod, through the client Service;
//! - [`scenario`]: the steps the tests are made of (wait until healthy,
//!   delete the leader, scale, delete the cluster);
//! - [`poll`]: waiting for a condition on the API.

#![warn(clippy::unwrap_used)]

pub mod checks;
pub mod cluster;
pub mod examples;
pub mod member;
pub mod node;
pub mod operator;
pub mod poll;
pub mod scenario;
pub mod sidecar;
pub mod zkcli;

use std::fmt;

/// Why a step of the suite failed.
#[derive(thiserror::Error)]
pub enum Error {
    #[error(
        "the e2e suite needs {}: run it with tests/e2e/run, which starts the cluster and sets it",
        cluster::ENV_KUBECONFIG
    )]
    NotConfigured,
    #[error("cannot use the kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    #[error(
        "refusing to run against the context {context:?}: the suite deletes pods and clusters, so it runs only on a kind cluster (a context named kind-…) or this machine's test cluster (context {})",
        cluster::SHARED_CONTEXT
    )]
    NotATestCluster { context: String },
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
