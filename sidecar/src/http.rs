//! The sidecar's HTTP endpoints, shared by `run` and `vote`:
//!
//! | path | answer |
//! |---|---|
//! | `GET /livez` | 200 `{"ok":true}`, or 503 `{"ok":false,"reasons":[…]}` |
//! | `GET /readyz` | the same shape |
//! | `GET /v1/status` | the [`SidecarStatus`] document |
//! | `GET /metrics` | Prometheus text (OpenMetrics) |
//!
//! Every handler is a cheap read of state the mode keeps current; nothing a
//! probe or a scrape does reaches the ensemble. A mode plugs in by
//! implementing [`Health`].

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use zk_ensemble::SidecarStatus;

use crate::metrics::Metrics;

/// The answer of a health endpoint: ok, or every reason it is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Verdict {
    pub(crate) ok: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) reasons: Vec<String>,
}

impl Verdict {
    /// Ok when there is no reason against.
    pub(crate) fn from_reasons(reasons: Vec<String>) -> Verdict {
        Verdict {
            ok: reasons.is_empty(),
            reasons,
        }
    }
}

/// What a mode (`run`, `vote`) tells its HTTP endpoints.
pub(crate) trait Health: Send + Sync + 'static {
    /// The current `/v1/status` document.
    fn status(&self) -> SidecarStatus;
    /// `/livez`: must never fail merely because an election is running.
    fn liveness(&self) -> Verdict;
    /// `/readyz`.
    fn readiness(&self) -> Verdict;
}

#[derive(Clone)]
struct App {
    health: Arc<dyn Health>,
    metrics: Arc<Metrics>,
}

/// The router of the four endpoints.
pub(crate) fn router(health: Arc<dyn Health>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics_text))
        .with_state(App { health, metrics })
}

/// Serves `router` on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn livez(State(app): State<App>) -> Response {
    verdict(&app.health.liveness())
}

async fn readyz(State(app): State<App>) -> Response {
    verdict(&app.health.readiness())
}

async fn status(State(app): State<App>) -> Response {
    axum::Json(app.health.status()).into_response()
}

async fn metrics_text(State(app): State<App>) -> Response {
    app.metrics.observe(&app.health.status());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

fn verdict(verdict: &Verdict) -> Response {
    let code = if verdict.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(verdict)).into_response()
}

/// Completes on SIGTERM (Kubernetes stopping the pod) or Ctrl-C: the
/// shutdown `run` and `vote` give [`serve`].
pub(crate) async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    struct Fixed {
        ready: Verdict,
    }

    impl Health for Fixed {
        fn status(&self) -> SidecarStatus {
            crate::metrics::tests::status()
        }
        fn liveness(&self) -> Verdict {
            Verdict::from_reasons(vec![])
        }
        fn readiness(&self) -> Verdict {
            self.ready.clone()
        }
    }

    async fn get(router: &Router, path: &str) -> (StatusCode, String) {
        let response = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let code = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (code, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn each_endpoint_answers_with_its_shape() {
        let health = Arc::new(Fixed {
            ready: Verdict::from_reasons(vec!["no quorum-backed leader is known".into()]),
        });
        let router = router(health, Arc::new(Metrics::new()));
        assert_eq!(
            get(&router, "/livez").await,
            (StatusCode::OK, r#"{"ok":true}"#.into())
        );
        assert_eq!(
            get(&router, "/readyz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"ok":false,"reasons":["no quorum-backed leader is known"]}"#.into()
            )
        );
        let (code, body) = get(&router, "/v1/status").await;
        assert_eq!(code, StatusCode::OK);
        let status: SidecarStatus = serde_json::from_str(&body).unwrap();
        assert_eq!(status.leader, Some(3));
        let (code, body) = get(&router, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("zookube_leader_myid 3\n"), "{body}");
        assert!(body.ends_with("# EOF\n"));
        assert_eq!(get(&router, "/nope").await.0, StatusCode::NOT_FOUND);
    }
}
