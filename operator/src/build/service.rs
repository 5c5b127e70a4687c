//! The two Services: the headless one that gives every member a stable DNS
//! name, and the one clients connect through.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use zk_ensemble::identity;

use super::{
    CLIENT_PORT_NAME, ELECTION_PORT_NAME, QUORUM_PORT_NAME, client_name, labels, metadata,
};
use crate::cluster::ValidatedCluster;

/// `<name>-headless`: the quorum and election ports of every member. It
/// publishes members that are not ready, because a member becomes ready only
/// once it has found the others through these very names.
pub fn headless_service(cluster: &ValidatedCluster) -> Service {
    let ports = cluster.ensemble.ports;
    Service {
        metadata: metadata(
            cluster,
            identity::headless_service_name(&cluster.name),
            labels::common(&cluster.name),
        ),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(labels::cluster_selector(&cluster.name)),
            ports: Some(vec![
                port(QUORUM_PORT_NAME, ports.quorum),
                port(ELECTION_PORT_NAME, ports.election),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `<name>-client`: the client port of every ready member, voters and
/// observers alike.
pub fn client_service(cluster: &ValidatedCluster) -> Service {
    Service {
        metadata: metadata(
            cluster,
            client_name(&cluster.name),
            labels::common(&cluster.name),
        ),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(labels::cluster_selector(&cluster.name)),
            ports: Some(vec![port(CLIENT_PORT_NAME, cluster.ensemble.ports.client)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn port(name: &str, number: u16) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: i32::from(number),
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    }
}
