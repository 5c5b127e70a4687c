//! The operator's own metrics and the HTTP server that serves them
//! (`/metrics` in OpenMetrics text, `/healthz`). Every label is bounded:
//! `category` takes the values of [`crate::controller::Error::category`],
//! `verb` and `resource` those of [`crate::api_requests::classify`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::api_requests::RequestLabels;

/// The label of `zookube_operator_reconcile_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub category: &'static str,
}

/// Every metric the operator exports, all prefixed `zookube_operator_`.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// `zookube_operator_reconciles_total`
    pub reconciles: Counter,
    /// `zookube_operator_reconcile_errors_total{category}`
    pub errors: Family<ErrorLabels, Counter>,
    /// `zookube_operator_reconcile_duration_seconds`
    pub duration: Histogram,
    /// `zookube_operator_leader`: 1 while this replica holds the lease.
    pub leader: Gauge,
    /// `zookube_operator_api_requests_total{verb, resource}`: every request
    /// to the Kubernetes API (see [`crate::api_requests`]).
    pub api_requests: Family<RequestLabels, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            reconciles: Counter::default(),
            errors: Family::default(),
            // 10 ms to about 40 s: a reconcile reads several objects and
            // waits up to 2 s for unresponsive sidecars.
            duration: Histogram::new(exponential_buckets(0.01, 2.0, 13)),
            leader: Gauge::default(),
            api_requests: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("zookube_operator");
        r.register(
            "reconciles",
            "Reconciles of ZookeeperClusters started",
            metrics.reconciles.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconciles that failed, by error category",
            metrics.errors.clone(),
        );
        r.register_with_unit(
            "reconcile_duration",
            "How long a reconcile took",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        r.register(
            "leader",
            "1 while this operator replica holds the leader lease and reconciles",
            metrics.leader.clone(),
        );
        r.register(
            "api_requests",
            "Requests to the Kubernetes API, by verb and resource",
            metrics.api_requests.clone(),
        );
        metrics
    }

    /// Counts a reconcile and times it until the guard is dropped.
    pub fn reconcile_started(&self) -> ReconcileTimer {
        self.reconciles.inc();
        ReconcileTimer {
            duration: self.duration.clone(),
            start: Instant::now(),
        }
    }

    pub fn reconcile_failed(&self, category: &'static str) {
        self.errors.get_or_create(&ErrorLabels { category }).inc();
    }
}

/// Observes the reconcile's duration when dropped, whichever way it ends.
pub struct ReconcileTimer {
    duration: Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.duration.observe(self.start.elapsed().as_secs_f64());
    }
}

/// The content type of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `/metrics` and `/healthz`.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(registry)
}

async fn serve_metrics(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Serves [`router`] on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(registry))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the metrics address (`[::]` takes IPv4 and IPv6), naming it in
/// the error.
pub fn bind(addr: SocketAddr) -> std::io::Result<zk_process::Listening> {
    zk_process::listen(addr).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} for /metrics: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get_text(addr: SocketAddr, path: &str) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        (code, head.to_owned(), body.to_owned())
    }

    #[test]
    fn the_dashboard_alerts_and_readme_name_only_what_the_operator_exports() {
        use zk_testkit::monitoring::{Exposition, check_names};
        let mut registry = Registry::default();
        // A labelled family shows in the exposition once it has a child.
        let metrics = Metrics::register(&mut registry);
        metrics.reconcile_failed("apply");
        metrics
            .api_requests
            .get_or_create(&crate::api_requests::RequestLabels {
                verb: "get",
                resource: "pods".to_owned(),
            })
            .inc();
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        let operator_owns = |name: &str| name.starts_with("zookube_operator_");
        if let Err(problems) = check_names("zk-operator", &Exposition::parse(&text), operator_owns)
        {
            panic!("{problems}");
        }
    }

    #[tokio::test]
    async fn metrics_are_served_with_their_agreed_names() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        drop(metrics.reconcile_started());
        metrics.reconcile_failed("apply");
        metrics.leader.set(1);
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap().listener;
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Arc::new(registry), async {
            let _ = stopped.await;
        }));

        let (code, head, body) = get_text(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(head.contains(OPENMETRICS), "{head}");
        for line in [
            "zookube_operator_reconciles_total 1\n",
            "zookube_operator_reconcile_errors_total{category=\"apply\"} 1\n",
            "zookube_operator_reconcile_duration_seconds_count 1\n",
            "zookube_operator_leader 1\n",
        ] {
            assert!(body.contains(line), "{line} in\n{body}");
        }
        assert_eq!(get_text(addr, "/healthz").await.0, 200);
        assert_eq!(get_text(addr, "/nope").await.0, 404);

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
