//! The connection to the cluster under test, and what `tests/e2e/run` tells
//! the tests through the environment.
//!
//! The suite deletes pods, scales ensembles and deletes clusters, so it never
//! reads `~/.kube/config` or `KUBECONFIG`: it uses only the kubeconfig the
//! script names, and refuses a context that is not one of the two kinds of
//! throwaway cluster the script makes (a kind cluster, or this machine's
//! one-node cluster).

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::{Error, Result};

/// The kubeconfig of the cluster under test.
pub const ENV_KUBECONFIG: &str = "ZOOKUBE_E2E_KUBECONFIG";

/// The sidecar image built for this run (`ghcr.io/zookube/zk-sidecar:<tag>`).
/// The chart makes it the operator's default; examples that name a sidecar
/// image of their own get this one instead (see
/// [`crate::examples::fit_for_cluster`]).
pub const ENV_SIDECAR_IMAGE: &str = "ZOOKUBE_E2E_SIDECAR_IMAGE";

/// The ZooKeeper image every member runs, when the cluster cannot pull the
/// official one (this machine's cluster pulls nothing: `scripts/build-images`
/// builds one from Debian's packages). Empty: the example's own, or the
/// operator's default.
pub const ENV_ZOOKEEPER_IMAGE: &str = "ZOOKUBE_E2E_ZOOKEEPER_IMAGE";

/// The most CPU one container of the suite's clusters may request, when the
/// cluster is small (this machine's is one node of two cores, and the full
/// example asks 500m for each of seven members). Empty: as written.
pub const ENV_CPU_REQUEST: &str = "ZOOKUBE_E2E_CPU_REQUEST";

/// The namespace the chart installed the operator into.
pub const ENV_OPERATOR_NAMESPACE: &str = "ZOOKUBE_E2E_OPERATOR_NAMESPACE";

/// The context of this machine's one-node cluster (the kubeconfig its
/// `cluster env` names).
pub const SHARED_CONTEXT: &str = "zk-cluster";

/// Whether the suite may run against `context`: kind names the contexts of
/// its clusters `kind-<cluster name>`; this machine's cluster is
/// [`SHARED_CONTEXT`].
pub fn is_test_context(context: &str) -> bool {
    context == SHARED_CONTEXT
        || context
            .strip_prefix("kind-")
            .is_some_and(|name| !name.is_empty())
}

/// The context a kubeconfig would use.
pub fn current_context(config: &Kubeconfig) -> Option<&str> {
    config.current_context.as_deref()
}

/// A client for the cluster named by [`ENV_KUBECONFIG`].
pub async fn connect() -> Result<Client> {
    let path = std::env::var(ENV_KUBECONFIG).map_err(|_| Error::NotConfigured)?;
    let bad = |reason: String| Error::Kubeconfig {
        path: path.clone(),
        reason,
    };
    let kubeconfig = Kubeconfig::read_from(&path).map_err(|e| bad(e.to_string()))?;
    let context = current_context(&kubeconfig).unwrap_or_default().to_owned();
    if !is_test_context(&context) {
        return Err(Error::NotATestCluster { context });
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

/// A setting of this run: unset or empty is none.
fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The sidecar image of this run, when the script named one.
pub fn sidecar_image() -> Option<String> {
    setting(ENV_SIDECAR_IMAGE)
}

/// The ZooKeeper image of this run, when the cluster needs its own.
pub fn zookeeper_image() -> Option<String> {
    setting(ENV_ZOOKEEPER_IMAGE)
}

/// The CPU request cap of this run, when the cluster is small.
pub fn cpu_request() -> Option<String> {
    setting(ENV_CPU_REQUEST)
}

/// Where the operator runs.
pub fn operator_namespace() -> String {
    setting(ENV_OPERATOR_NAMESPACE).unwrap_or_else(|| "zookube-system".to_owned())
}

/// Runs `kubectl` with `args` against the cluster under test; the error
/// carries what it printed.
pub async fn kubectl(args: &[&str]) -> Result<String, String> {
    let kubeconfig =
        std::env::var(ENV_KUBECONFIG).map_err(|_| format!("{ENV_KUBECONFIG} is not set"))?;
    let output = tokio::process::Command::new("kubectl")
        .args(["--kubeconfig", &kubeconfig, "--request-timeout", "20s"])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "kubectl {} failed ({}): {}",
            args.join(" "),
            output.status,
            text.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_throwaway_clusters_are_accepted() {
        assert!(is_test_context("kind-zookube-e2e"));
        assert!(is_test_context("zk-cluster"));
        assert!(!is_test_context("kind-"));
        assert!(!is_test_context("production"));
        assert!(!is_test_context("zk-cluster-prod"));
        assert!(!is_test_context("gke_project_zone_kind-lookalike"));
        assert!(!is_test_context(""));
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
