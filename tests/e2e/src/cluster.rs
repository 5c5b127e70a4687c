//! The connection to the kind cluster, and what `tests/kind/run` tells the
//! tests through the environment.
//!
//! The suite deletes pods, scales ensembles and deletes clusters, so it never
//! reads `~/.kube/config` or `KUBECONFIG`: it uses only the kubeconfig the
//! script wrote for the cluster it created, and refuses a context that is
//! not a kind cluster's.

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::{Error, Result};

/// The kubeconfig of the kind cluster (written by `kind create cluster
/// --kubeconfig`).
pub const ENV_KUBECONFIG: &str = "ZOOKUBE_KIND_KUBECONFIG";

/// The sidecar image built for this run (`ghcr.io/zookube/zk-sidecar:<tag>`).
/// The chart makes it the operator's default; examples that name a sidecar
/// image of their own get this one instead (see
/// [`crate::examples::fit_for_kind`]).
pub const ENV_SIDECAR_IMAGE: &str = "ZOOKUBE_KIND_SIDECAR_IMAGE";

/// kind names the contexts of its clusters `kind-<cluster name>`.
pub fn is_kind_context(context: &str) -> bool {
    context
        .strip_prefix("kind-")
        .is_some_and(|name| !name.is_empty())
}

/// The context a kubeconfig would use.
pub fn current_context(config: &Kubeconfig) -> Option<&str> {
    config.current_context.as_deref()
}

/// A client for the kind cluster named by [`ENV_KUBECONFIG`].
pub async fn connect() -> Result<Client> {
    let path = std::env::var(ENV_KUBECONFIG).map_err(|_| Error::NotConfigured)?;
    let bad = |reason: String| Error::Kubeconfig {
        path: path.clone(),
        reason,
    };
    let kubeconfig = Kubeconfig::read_from(&path).map_err(|e| bad(e.to_string()))?;
    let context = current_context(&kubeconfig).unwrap_or_default().to_owned();
    if !is_kind_context(&context) {
        return Err(Error::NotKind { context });
    }
    let options = KubeConfigOptions {
        context: Some(context),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| bad(e.to_string()))?;
    Client::try_from(config).map_err(Error::Kube)
}

/// The sidecar image of this run, when the script named one.
pub fn sidecar_image() -> Option<String> {
    std::env::var(ENV_SIDECAR_IMAGE)
        .ok()
        .filter(|image| !image.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kind_contexts_are_accepted() {
        assert!(is_kind_context("kind-zookube-e2e"));
        assert!(!is_kind_context("kind-"));
        assert!(!is_kind_context("production"));
        assert!(!is_kind_context("gke_project_zone_kind-lookalike"));
        assert!(!is_kind_context(""));
    }

    #[test]
    fn the_context_comes_from_the_kubeconfig() {
        let config: Kubeconfig = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "current-context": "kind-zookube-e2e",
            "clusters": [], "contexts": [], "users": []
        }))
        .expect("a kubeconfig");
        assert_eq!(current_context(&config), Some("kind-zookube-e2e"));
    }
}
