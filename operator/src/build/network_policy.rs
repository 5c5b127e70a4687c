//! The NetworkPolicy `<name>` over a cluster's member pods, for namespaces
//! that deny ingress by default. It admits exactly what an ensemble needs:
//! members to each other on the quorum and election ports (the sidecars'
//! election watchers included: they run in the member pods), clients to the
//! client port, the operator to the sidecar's port (`/v1/status`) and the
//! client port (`reconfig`), and Prometheus to the sidecar's port.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{SIDECAR_PORT, labels, metadata, network_policy_name};
use crate::cluster::{NetworkPolicySettings, ValidatedCluster};
use crate::crd::NetworkPeer;

/// The NetworkPolicy of a cluster, or `None` when `spec.networkPolicy` is
/// not enabled.
pub fn network_policy(cluster: &ValidatedCluster) -> Option<NetworkPolicy> {
    let settings = cluster.network_policy.as_ref()?;
    let members = LabelSelector {
        match_labels: Some(labels::cluster_selector(&cluster.name)),
        ..Default::default()
    };
    Some(NetworkPolicy {
        metadata: metadata(
            cluster,
            network_policy_name(&cluster.name),
            labels::common(&cluster.name),
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(members.clone()),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(ingress_rules(cluster, settings, members)),
            ..Default::default()
        }),
    })
}

/// One rule per kind of peer; a kind with no peers gets no rule (a rule
/// without `from` would admit everyone).
fn ingress_rules(
    cluster: &ValidatedCluster,
    settings: &NetworkPolicySettings,
    members: LabelSelector,
) -> Vec<NetworkPolicyIngressRule> {
    let ports = cluster.ensemble.ports;
    let member = NetworkPolicyPeer {
        pod_selector: Some(members),
        ..Default::default()
    };
    [
        (vec![member], vec![ports.quorum, ports.election]),
        (peers(&settings.clients), vec![ports.client]),
        (
            peers(std::slice::from_ref(&settings.operator)),
            vec![SIDECAR_PORT, ports.client],
        ),
        (peers(&settings.prometheus), vec![SIDECAR_PORT]),
    ]
    .into_iter()
    .filter(|(from, _)| !from.is_empty())
    .map(|(from, ports)| NetworkPolicyIngressRule {
        from: Some(from),
        ports: Some(ports.into_iter().map(tcp).collect()),
    })
    .collect()
}

fn peers(peers: &[NetworkPeer]) -> Vec<NetworkPolicyPeer> {
    peers
        .iter()
        .map(|p| NetworkPolicyPeer {
            namespace_selector: p.namespace_selector.clone(),
            pod_selector: p.pod_selector.clone(),
            ..Default::default()
        })
        .collect()
}

fn tcp(port: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(port))),
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    }
}
