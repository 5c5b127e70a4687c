//! `zk-operator run`: the metrics server, leader election and the
//! controller, wired together with one shutdown signal. Only the replica
//! that holds the Lease reconciles; the other waits, serving `/healthz` and
//! `/metrics`, and takes over when the Lease is released or goes silent.

use std::net::SocketAddr;
use std::sync::Arc;

use kube::Client;
use kube::api::{Api, ListParams};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::api_requests::CountRequests;
use crate::cluster::Defaults;
use crate::controller::{self, Context, Scope};
use crate::crd::ZookeeperCluster;
use crate::leader::{self, LeaseLock, Mandate, Timing};
use crate::metrics::{self, Metrics};

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub scope: Scope,
    pub metrics_addr: SocketAddr,
    pub defaults: Defaults,
    /// `None`: reconcile without leader election (one replica only).
    pub lease: Option<LeaseOptions>,
}

#[derive(Debug, Clone)]
pub struct LeaseOptions {
    pub name: String,
    /// Where the Lease lives; the client's default namespace when absent.
    pub namespace: Option<String>,
}

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "cannot configure a Kubernetes client: {0}; run in a pod with a service account, or point KUBECONFIG at a kubeconfig"
    )]
    Client(#[source] kube::Error),
    #[error(
        "cannot configure a Kubernetes client: {0}; run in a pod with a service account, or point KUBECONFIG at a kubeconfig"
    )]
    Config(#[source] kube::config::InferConfigError),
    #[error("{0}")]
    Listen(#[source] std::io::Error),
    #[error("cannot install the signal handler: {0}")]
    Signals(#[source] std::io::Error),
    #[error(
        "the ZookeeperCluster CRD is not installed: apply it with `kubectl apply --server-side -f crds/zookeepercluster.yaml`, or install the Helm chart"
    )]
    CrdMissing,
    #[error(
        "not allowed to list ZookeeperClusters{0}: the operator's ServiceAccount needs the RBAC of the Helm chart (charts/zookube/templates/rbac.yaml)"
    )]
    Forbidden(String),
}

/// Fails fast, with the fix, when the API server cannot serve the operator
/// at all; any other error is left to the controller's retries.
async fn preflight(client: &Client, scope: &Scope) -> Result<(), RunError> {
    let (api, place): (Api<ZookeeperCluster>, String) = match scope {
        Scope::Cluster => (Api::all(client.clone()), String::new()),
        Scope::Namespace(ns) => (
            Api::namespaced(client.clone(), ns),
            format!(" in namespace {ns}"),
        ),
    };
    // Metadata only: a cluster whose spec cannot be read is the
    // controller's to report, not a reason to stop here.
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Err(kube::Error::Api(status)) if status.code == 404 => Err(RunError::CrdMissing),
        Err(kube::Error::Api(status)) if status.code == 403 => Err(RunError::Forbidden(place)),
        Err(e) => {
            warn!(error = %e, "cannot list ZookeeperClusters yet; retrying in the controller");
            Ok(())
        }
        Ok(_) => Ok(()),
    }
}

/// Runs until SIGTERM or SIGINT; in-flight reconciles finish first.
pub async fn run(options: Options) -> Result<(), RunError> {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let config = kube::Config::infer().await.map_err(RunError::Config)?;
    let client = kube::client::ClientBuilder::try_from(config)
        .map_err(RunError::Client)?
        .with_layer(&CountRequests::new(metrics.api_requests.clone()))
        .build();
    preflight(&client, &options.scope).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(RunError::Signals)?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = {
        let stop_rx = stop_rx.clone();
        move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        }
    };

    let listening = metrics::bind(options.metrics_addr).map_err(RunError::Listen)?;
    info!(addr = %listening.addr, "serving /metrics and /healthz");
    let server = tokio::spawn(metrics::serve(
        listening.listener,
        Arc::new(registry),
        stopped(),
    ));

    let identity = leader::identity();
    let ctx = Context::new(
        client.clone(),
        options.defaults.clone(),
        metrics.clone(),
        Some(identity.clone()),
    );
    match &options.lease {
        None => {
            metrics.leader.set(1);
            controller::run(Arc::new(ctx), options.scope.clone(), stopped()).await;
        }
        Some(lease) => {
            let namespace = lease
                .namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned());
            info!(%identity, lease = %lease.name, %namespace, "waiting for the leader Lease");
            let lock = LeaseLock::new(
                client,
                &namespace,
                &lease.name,
                &identity,
                Timing::default(),
            );
            let (leading_tx, leading_rx) = watch::channel(false);
            let ctx = Arc::new(ctx.with_mandate(Mandate::while_leading(leading_rx.clone())));
            let elector = tokio::spawn(lock.run(leading_tx, stopped()));
            lead_while_elected(ctx, &options.scope, leading_rx, stop_rx, stopped).await;
            let _ = elector.await;
        }
    }
    metrics.leader.set(0);
    match server.await {
        Ok(Err(e)) => warn!(error = %e, "the metrics server failed"),
        Err(e) => warn!(error = %e, "the metrics server panicked"),
        Ok(Ok(())) => {}
    }
    info!("stopped");
    Ok(())
}

/// Runs the controller each time this replica becomes leader, and stops it
/// when leadership ends or the process shuts down.
async fn lead_while_elected<S, F>(
    ctx: Arc<Context>,
    scope: &Scope,
    mut leading: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
    stopped: S,
) where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + Sync + 'static,
{
    loop {
        tokio::select! {
            became = leading.wait_for(|leading| *leading) => {
                if became.is_err() {
                    return; // the elector ended: shutting down
                }
            }
            () = stopped() => return,
        }
        info!("leading: reconciling");
        ctx.metrics.leader.set(1);
        let mut lost = leading.clone();
        let shutdown = stopped();
        let until = async move {
            tokio::select! {
                _ = lost.wait_for(|leading| !*leading) => {}
                () = shutdown => {}
            }
        };
        controller::run(ctx.clone(), scope.clone(), until).await;
        ctx.metrics.leader.set(0);
        if *stop.borrow() {
            return;
        }
        if !*leading.borrow() {
            warn!("lost the leader Lease: standing by");
        }
    }
}
