//! The two ConfigMaps: `<name>-config` (what every member runs on) and
//! `<name>-client` (what applications read to find the ensemble).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{
    JAVA_SECURITY_KEY, LOGBACK_KEY, ZOO_CFG_KEY, client_name, config_map_name, labels, metadata,
};
use crate::cluster::ValidatedCluster;

/// ZooKeeper's logging: INFO and above to standard output, where the
/// kubelet collects it; nothing written to disk.
pub const LOGBACK_XML: &str = r#"<configuration>
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="CONSOLE"/></root>
</configuration>
"#;

/// The JVM's cache of resolved names, off. A pod that restarts comes back
/// with another IP under the same name, and the JVM keeps a name it
/// resolved for 30 s (one it could not resolve, while the pod had no IP,
/// for 10 s). ZooKeeper resolves a member's name again before it connects
/// to it as leader, but from that cache: a follower that looked the member
/// up before its restart connected to the old IP, or to nothing, when the
/// member came to lead (a leader handed over to the member restarted last,
/// measured on a real cluster: 20 s without a leader, until initLimit ran
/// out and a new election began).
pub const JAVA_SECURITY: &str = "networkaddress.cache.ttl=0\nnetworkaddress.cache.negative.ttl=0\n";

/// The files of `<name>-config` that are the same for every cluster, by
/// key: listed once, so the ConfigMap and its hash cannot disagree.
pub const FIXED_FILES: [(&str, &str); 2] = [
    (LOGBACK_KEY, LOGBACK_XML),
    (JAVA_SECURITY_KEY, JAVA_SECURITY),
];

/// The ConfigMap key with every member's `host:port`.
pub const MEMBERS_KEY: &str = "ZOOKEEPER_CONNECT";
/// The ConfigMap key with the client Service's `host:port`.
pub const SERVICE_KEY: &str = "ZOOKEEPER_SERVICE";

/// `<name>-config`: `zoo.cfg` from `zk-ensemble`, and the
/// [`FIXED_FILES`] (logging, the JVM's security properties). The init
/// container copies `zoo.cfg` to `/conf`.
pub fn config_map(cluster: &ValidatedCluster) -> ConfigMap {
    ConfigMap {
        metadata: metadata(
            cluster,
            config_map_name(&cluster.name),
            labels::common(&cluster.name),
        ),
        data: Some(
            std::iter::once((ZOO_CFG_KEY, cluster.config.zoo_cfg.as_str()))
                .chain(FIXED_FILES)
                .map(|(key, text)| (key.to_owned(), text.to_owned()))
                .collect(),
        ),
        ..Default::default()
    }
}

/// `<name>-client`: connection strings for applications, as keys that
/// also work with `envFrom`.
pub fn client_config_map(cluster: &ValidatedCluster) -> ConfigMap {
    let (members, service) = connect_strings(cluster);
    ConfigMap {
        metadata: metadata(
            cluster,
            client_name(&cluster.name),
            labels::common(&cluster.name),
        ),
        data: Some(BTreeMap::from([
            (MEMBERS_KEY.to_owned(), members),
            (SERVICE_KEY.to_owned(), service),
        ])),
        ..Default::default()
    }
}

/// The connection strings of a cluster: every member (voters, then
/// observers) as `host:port,…`, and the client Service as `host:port`.
pub fn connect_strings(cluster: &ValidatedCluster) -> (String, String) {
    let ensemble = &cluster.ensemble;
    let port = ensemble.ports.client;
    let members = ensemble
        .members()
        .iter()
        .map(|m| format!("{}:{port}", m.host))
        .collect::<Vec<_>>()
        .join(",");
    let service = format!(
        "{}.{}.svc.{}:{port}",
        client_name(&cluster.name),
        cluster.namespace,
        ensemble.cluster_domain
    );
    (members, service)
}
