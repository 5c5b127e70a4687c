//! The operator replicas the chart runs: which one holds the leader Lease,
//! and killing one as a crash would (SIGKILL from the node, [`node::kill`]),
//! so it neither releases the Lease nor finishes what it was doing.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use crate::{Error, Result, cluster, node};

/// The chart's operator pods.
const SELECTOR: &str = "app.kubernetes.io/name=zk-operator";

/// The operator's container in its pod.
const CONTAINER: &str = "operator";

/// The operator replicas' pods.
pub async fn pods(client: &kube::Client) -> Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &cluster::operator_namespace());
    Ok(api
        .list(&ListParams::default().labels(SELECTOR))
        .await?
        .items)
}

/// The name of the leader Lease, as the operator's pod spec gives it.
fn lease_name(pods: &[Pod]) -> Option<String> {
    pods.iter()
        .filter_map(|p| p.spec.as_ref())
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.env.iter().flatten())
        .find(|e| e.name == "ZOOKUBE_LEASE_NAME")
        .and_then(|e| e.value.clone())
}

/// Who holds the leader Lease now (a pod name), if anyone.
pub async fn lease_holder(client: &kube::Client) -> Result<Option<String>> {
    let pods = pods(client).await?;
    let name = lease_name(&pods).ok_or_else(|| {
        Error::Check("no operator pod names its leader Lease (ZOOKUBE_LEASE_NAME)".to_owned())
    })?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &cluster::operator_namespace());
    Ok(leases
        .get(&name)
        .await?
        .spec
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}

/// How many times the operator container of `pod` has been restarted.
pub fn restarts(pod: &Pod) -> i32 {
    node::restarts(pod, CONTAINER)
}

/// Kills the operator process of the pod `name` with SIGKILL.
pub async fn kill(client: &kube::Client, name: &str) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &cluster::operator_namespace());
    node::kill(&api.get(name).await?, CONTAINER, "zk-operator").await
}

/// The port of the operator's `/metrics` (the chart's `metrics.port`).
const METRICS_PORT: u16 = 8080;

/// The operator's metrics page of pod `name`, read through the API
/// server's pod proxy (so the read is not one of the operator's requests).
pub async fn metrics(client: &kube::Client, name: &str) -> Result<String> {
    let path = format!(
        "/api/v1/namespaces/{}/pods/{name}:{METRICS_PORT}/proxy/metrics",
        cluster::operator_namespace()
    );
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| Error::Check(format!("cannot build the metrics request: {e}")))?;
    Ok(client.request_text(request).await?)
}

/// A request the operator counts: (verb, resource).
pub type Request = (String, String);

/// `zookube_operator_api_requests_total` of a metrics page, by request.
pub fn api_requests(page: &str) -> BTreeMap<Request, u64> {
    let label = |labels: &str, key: &str| {
        labels
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim_matches('"').to_owned())
    };
    page.lines()
        .filter_map(|line| line.strip_prefix("zookube_operator_api_requests_total{"))
        .filter_map(|rest| {
            let (labels, value) = rest.split_once("} ")?;
            let count = value.trim().parse::<f64>().ok()?;
            // Counters are whole numbers.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let count = count as u64;
            Some(((label(labels, "verb")?, label(labels, "resource")?), count))
        })
        .collect()
}

/// Reconciles finished, from the duration histogram's count.
pub fn reconciles_done(page: &str) -> Option<u64> {
    page.lines()
        .find_map(|line| line.strip_prefix("zookube_operator_reconcile_duration_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
}

/// The requests `after` counts beyond `before`.
pub fn requests_since(
    before: &BTreeMap<Request, u64>,
    after: &BTreeMap<Request, u64>,
) -> BTreeMap<Request, u64> {
    after
        .iter()
        .map(|(r, n)| {
            (
                r.clone(),
                n.saturating_sub(before.get(r).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The kinds a cluster owns (and its super user's Secret): what an
/// unchanged cluster's reconcile must read from the operator's caches.
pub const CHILDREN: [&str; 6] = [
    "configmaps",
    "services",
    "statefulsets",
    "poddisruptionbudgets",
    "networkpolicies",
    "secrets",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_counters_are_read_by_verb_and_resource() {
        let page = "# HELP zookube_operator_api_requests_total Requests\n\
zookube_operator_api_requests_total{verb=\"get\",resource=\"configmaps\"} 4\n\
zookube_operator_api_requests_total{verb=\"list\",resource=\"pods\"} 12\n\
zookube_operator_reconcile_duration_seconds_count 9\n\
zookube_operator_reconcile_duration_seconds_sum 0.4\n";
        let counts = api_requests(page);
        let key = |v: &str, r: &str| (v.to_owned(), r.to_owned());
        assert_eq!(counts.get(&key("get", "configmaps")), Some(&4));
        assert_eq!(counts.get(&key("list", "pods")), Some(&12));
        assert_eq!(counts.len(), 2);
        assert_eq!(reconciles_done(page), Some(9));
        let later = api_requests(&page.replace("} 12", "} 13"));
        assert_eq!(
            requests_since(&counts, &later),
            BTreeMap::from([(key("list", "pods"), 1)])
        );
    }
}
