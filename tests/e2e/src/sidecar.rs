//! A member's `/v1/status`, read the way a person with `kubectl` would:
//! through the API server's pod proxy
//! (`kubectl get --raw /api/v1/namespaces/NS/pods/POD:8081/proxy/v1/status`).
//!
//! The sidecar image is distroless — no shell, no curl — so there is
//! nothing to `exec`; the proxy needs no extra pod, no port-forward and no
//! route from the test machine to pod IPs.

use zk_ensemble::SidecarStatus;
use zk_operator::build::SIDECAR_PORT;
use zk_operator::sidecar_client::STATUS_PATH;

/// The API path of a pod's sidecar status.
pub fn status_path(namespace: &str, pod: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/pods/{pod}:{SIDECAR_PORT}/proxy{STATUS_PATH}")
}

/// Reads one sidecar's status; the error says which pod and why.
pub async fn status(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
) -> Result<SidecarStatus, String> {
    let request = http::Request::get(status_path(namespace, pod))
        .body(Vec::new())
        .map_err(|e| format!("{pod}: cannot build the request: {e}"))?;
    let text = client
        .request_text(request)
        .await
        .map_err(|e| format!("{pod}: the sidecar's status through the API proxy: {e}"))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{pod}: /v1/status is not a status document ({e}): {text}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_proxy_path_names_the_sidecar_port() {
        assert_eq!(
            super::status_path("data", "coordination-observer-1"),
            "/api/v1/namespaces/data/pods/coordination-observer-1:8081/proxy/v1/status"
        );
    }
}
