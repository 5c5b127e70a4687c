//! Reads a member's sidecar: `GET http://<pod IP>:<sidecar port>/v1/status`,
//! with short time-outs and a bounded body, so a hung or hostile pod slows a
//! reconcile by at most [`TIMEOUT`] and can never crash the operator. The
//! operator never speaks the election protocol; this is all it asks.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use zk_ensemble::status::SidecarStatus;

/// The whole exchange (connect, request, body) must finish within this.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Connecting alone.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// A status document is a few kilobytes; anything larger is refused.
pub const MAX_BODY: usize = 1 << 20;

/// The path of the sidecar's status document.
pub const STATUS_PATH: &str = "/v1/status";

/// Why a sidecar's status could not be read. Messages go into conditions.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer within {}s", TIMEOUT.as_secs())]
    Timeout,
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("the answer is larger than {MAX_BODY} bytes or was cut off")]
    Body,
    #[error("the answer is not a status document: {0}")]
    Json(String),
    #[error("bad address {0}")]
    Address(String),
}

/// An HTTP/1 client for sidecars, shared by every reconcile.
#[derive(Clone, Debug)]
pub struct SidecarClient {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for SidecarClient {
    fn default() -> Self {
        SidecarClient::new()
    }
}

impl SidecarClient {
    pub fn new() -> SidecarClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            // Connections are short-lived: pod IPs change, and a pooled
            // connection to a dead pod would only cost a time-out.
            .pool_max_idle_per_host(0)
            .build(connector);
        SidecarClient { client }
    }

    /// The status document of the sidecar at `ip:port`.
    pub async fn status(&self, ip: &str, port: u16) -> Result<SidecarStatus, ProbeError> {
        tokio::time::timeout(TIMEOUT, self.fetch(ip, port))
            .await
            .map_err(|_| ProbeError::Timeout)?
    }

    async fn fetch(&self, ip: &str, port: u16) -> Result<SidecarStatus, ProbeError> {
        let uri = status_uri(ip, port)?;
        let response = self
            .client
            .get(uri)
            .await
            .map_err(|e| ProbeError::Connect(error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(ProbeError::Status(response.status().as_u16()));
        }
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|_| ProbeError::Body)?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| ProbeError::Json(e.to_string()))
    }
}

/// The status URI of the sidecar at a pod IP (an IPv6 one in brackets).
fn status_uri(ip: &str, port: u16) -> Result<http::Uri, ProbeError> {
    let bad = || ProbeError::Address(ip.to_owned());
    let ip: std::net::IpAddr = ip.parse().map_err(|_| bad())?;
    let address = zk_ensemble::zoocfg::host_port(&ip.to_string(), port);
    format!("http://{address}{STATUS_PATH}")
        .parse()
        .map_err(|_| bad())
}

/// An error and its causes on one line ("client error (Connect): tcp
/// connect error: Connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::routing::get;
    use zk_ensemble::{MemberState, Role};

    use super::*;

    async fn serve(router: Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    const DOC: &str = r#"{"myid": 2, "role": "voter", "state": "LEADING", "leader": 2, "peerEpoch": 7, "electionEpoch": 3}"#;

    #[test]
    fn an_ipv6_pod_ip_goes_in_brackets() {
        let cases = [
            ("10.1.2.3", "http://10.1.2.3:8081/v1/status"),
            ("fd00::1:2", "http://[fd00::1:2]:8081/v1/status"),
            ("FD00:0::3", "http://[fd00::3]:8081/v1/status"),
        ];
        for (ip, uri) in cases {
            assert_eq!(status_uri(ip, 8081).unwrap().to_string(), uri, "{ip}");
        }
        assert!(matches!(
            status_uri("zk-0.zk-headless", 8081),
            Err(ProbeError::Address(_))
        ));
    }

    #[tokio::test]
    async fn reads_a_status_document() {
        let addr = serve(Router::new().route(STATUS_PATH, get(|| async { DOC }))).await;
        let status = SidecarClient::new()
            .status("127.0.0.1", addr.port())
            .await
            .unwrap();
        assert_eq!(status.myid, 2);
        assert_eq!(status.role, Role::Voter);
        assert_eq!(status.state, MemberState::Leading);
        assert_eq!(status.peer_epoch, Some(7));
    }

    #[tokio::test]
    async fn a_hung_sidecar_costs_at_most_the_time_out() {
        let addr = serve(Router::new().route(
            STATUS_PATH,
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                DOC
            }),
        ))
        .await;
        let started = std::time::Instant::now();
        let err = SidecarClient::new()
            .status("127.0.0.1", addr.port())
            .await
            .unwrap_err();
        assert!(matches!(err, ProbeError::Timeout), "{err}");
        assert!(started.elapsed() < TIMEOUT + Duration::from_secs(1));
    }

    #[tokio::test]
    async fn bad_answers_are_errors_not_panics() {
        let addr = serve(
            Router::new()
                .route("/v1/status", get(|| async { "{\"myid\": \"two\"" }))
                .route("/other", get(|| async { "" })),
        )
        .await;
        let client = SidecarClient::new();
        assert!(matches!(
            client.status("127.0.0.1", addr.port()).await,
            Err(ProbeError::Json(_))
        ));
        let huge =
            serve(Router::new().route(STATUS_PATH, get(|| async { "x".repeat(MAX_BODY + 1) })))
                .await;
        assert!(matches!(
            client.status("127.0.0.1", huge.port()).await,
            Err(ProbeError::Body)
        ));
        let missing = serve(Router::new()).await;
        assert!(matches!(
            client.status("127.0.0.1", missing.port()).await,
            Err(ProbeError::Status(404))
        ));
        assert!(matches!(
            client.status("not an ip", 1).await,
            Err(ProbeError::Address(_))
        ));
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = SidecarClient::new()
            .status("127.0.0.1", port)
            .await
            .unwrap_err();
        assert!(matches!(err, ProbeError::Connect(_)), "{err}");
        assert!(err.to_string().contains("refused"), "{err}");
    }
}
