//! The child objects of a cluster, built from a [`ValidatedCluster`] by one
//! pure function per Kubernetes kind. `zk-operator render` prints exactly
//! these; the reconcile loop applies exactly these, in [`Children::in_apply_order`].
//!
//! Names shared by two objects (a volume and its mount, a port and its
//! probe, a ConfigMap key and the file a container reads) are the constants
//! below, defined once.

mod config_map;
pub mod labels;
mod network_policy;
mod pdb;
pub mod secret;
mod service;
mod stateful_set;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use zk_ensemble::Role;
use zk_ensemble::identity;

use crate::cluster::ValidatedCluster;

pub use config_map::{
    FIXED_FILES, JAVA_SECURITY, LOGBACK_XML, client_config_map, config_map, connect_strings,
};
pub use network_policy::network_policy;
pub use pdb::pod_disruption_budget;
pub use secret::{super_password, super_secret, super_secret_name};
pub use service::{client_service, headless_service};
pub use stateful_set::{stateful_set, template_hash};

/// The field manager of every server-side apply zookube makes.
pub const FIELD_MANAGER: &str = "zk-operator";

/// The sidecar's HTTP port (`/livez`, `/readyz`, `/v1/status`, `/metrics`).
pub const SIDECAR_PORT: u16 = 8081;
/// The name of the sidecar's port; probes and the operator find it by name.
pub const SIDECAR_PORT_NAME: &str = "sidecar";
pub const CLIENT_PORT_NAME: &str = "client";
pub const QUORUM_PORT_NAME: &str = "quorum";
pub const ELECTION_PORT_NAME: &str = "election";
pub const ADMIN_PORT_NAME: &str = "admin";

/// The container that runs ZooKeeper.
pub const ZOOKEEPER_CONTAINER: &str = "zookeeper";
/// The container that runs `zk-sidecar run`.
pub const SIDECAR_CONTAINER: &str = "sidecar";
/// The init container that runs `zk-sidecar init`.
pub const INIT_CONTAINER: &str = "init";

/// The rendered configuration (ConfigMap `<name>-config`), read-only.
pub const CONFIG_VOLUME: &str = "config";
pub const CONFIG_DIR: &str = "/config";
/// A writable copy of the configuration: ZooKeeper rewrites its `zoo.cfg`
/// when reconfiguration is enabled, so it cannot run from the ConfigMap.
pub const CONF_VOLUME: &str = "conf";
pub const CONF_DIR: &str = "/conf";
/// The member's data volume: `myid`, snapshots, transaction log.
pub const DATA_VOLUME: &str = "data";
pub const DATA_DIR: &str = zk_ensemble::spec::POD_DATA_DIR;
/// ZooKeeper's log directory (the official image sets `ZOO_LOG_DIR=/logs`);
/// writable because the root filesystem is not.
pub const LOGS_VOLUME: &str = "logs";
pub const LOGS_DIR: &str = "/logs";
/// The JVM's temporary files.
pub const TMP_VOLUME: &str = "tmp";
pub const TMP_DIR: &str = "/tmp";

/// The ConfigMap key (and file name) of `zoo.cfg`.
pub const ZOO_CFG_KEY: &str = "zoo.cfg";
/// The ConfigMap key (and file name) of the logging configuration.
pub const LOGBACK_KEY: &str = "logback.xml";
/// The ConfigMap key (and file name) of the JVM's security properties.
pub const JAVA_SECURITY_KEY: &str = "java.security";

/// The pod-template annotation that carries the config hash, so a changed
/// configuration is visible on every pod.
pub const CONFIG_HASH_ANNOTATION: &str = "zookube.io/config-hash";

/// The pod-template annotation that carries the hash of the whole template
/// (config hash included): a pod created from another template is
/// restarted, one at a time, the leader last.
pub const TEMPLATE_HASH_ANNOTATION: &str = "zookube.io/template-hash";

/// The pod-template annotation that carries the cluster's restart request
/// ([`crate::cluster::RESTART_ANNOTATION`]), so a new request changes the
/// template hash.
pub const RESTARTED_AT_ANNOTATION: &str = "zookube.io/restart";

/// The hash of a child as zookube built it (every field but this one). The
/// reconcile loop leaves a child alone while this matches and the child
/// still holds every field zookube sets: quiet when stable, yet a field
/// zookube stops setting is removed by the next apply.
pub const APPLIED_HASH_ANNOTATION: &str = "zookube.io/applied-hash";

/// The uid and gid of the `zookeeper` user in the official image.
pub const ZOOKEEPER_UID: i64 = 1000;

/// The ConfigMap that holds `zoo.cfg`.
pub fn config_map_name(cluster: &str) -> String {
    format!("{cluster}-config")
}

/// The ConfigMap applications mount to find the ensemble, and the Service
/// clients connect through (two kinds, one name).
pub fn client_name(cluster: &str) -> String {
    format!("{cluster}-client")
}

/// The PodDisruptionBudget of the voters.
pub fn pdb_name(cluster: &str) -> String {
    cluster.to_owned()
}

/// The NetworkPolicy over the members.
pub fn network_policy_name(cluster: &str) -> String {
    cluster.to_owned()
}

/// Every child object of a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    pub config: ConfigMap,
    pub client_config: ConfigMap,
    pub headless_service: Service,
    pub client_service: Service,
    pub voters: StatefulSet,
    /// Absent when the cluster has no observers.
    pub observers: Option<StatefulSet>,
    pub pod_disruption_budget: PodDisruptionBudget,
    /// Absent unless `spec.networkPolicy.enabled`.
    pub network_policy: Option<NetworkPolicy>,
}

/// One child, borrowed, for code that handles every kind alike.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(untagged)]
pub enum Child<'a> {
    ConfigMap(&'a ConfigMap),
    Service(&'a Service),
    StatefulSet(&'a StatefulSet),
    PodDisruptionBudget(&'a PodDisruptionBudget),
    NetworkPolicy(&'a NetworkPolicy),
}

impl<'a> Child<'a> {
    pub fn kind(&self) -> &'static str {
        match self {
            Child::ConfigMap(_) => "ConfigMap",
            Child::Service(_) => "Service",
            Child::StatefulSet(_) => "StatefulSet",
            Child::PodDisruptionBudget(_) => "PodDisruptionBudget",
            Child::NetworkPolicy(_) => "NetworkPolicy",
        }
    }

    pub fn name(&self) -> &'a str {
        let meta = match self {
            Child::ConfigMap(o) => &o.metadata,
            Child::Service(o) => &o.metadata,
            Child::StatefulSet(o) => &o.metadata,
            Child::PodDisruptionBudget(o) => &o.metadata,
            Child::NetworkPolicy(o) => &o.metadata,
        };
        meta.name.as_deref().unwrap_or_default()
    }
}

/// Builds every child of a cluster.
pub fn children(cluster: &ValidatedCluster) -> Children {
    Children {
        config: stamped(config_map(cluster)),
        client_config: stamped(client_config_map(cluster)),
        headless_service: stamped(headless_service(cluster)),
        client_service: stamped(client_service(cluster)),
        voters: stamped(stateful_set(cluster, Role::Voter)),
        // Kept while observers leave one at a time.
        observers: (cluster.ensemble.observers > 0 || cluster.members.observer_pods > 0)
            .then(|| stamped(stateful_set(cluster, Role::Observer))),
        pod_disruption_budget: stamped(pod_disruption_budget(cluster)),
        network_policy: network_policy(cluster).map(stamped),
    }
}

/// Adds [`APPLIED_HASH_ANNOTATION`] to a child.
fn stamped<K: kube::Resource + Serialize>(mut child: K) -> K {
    if let Ok(bytes) = serde_json::to_vec(&child) {
        let hash = crate::cluster::short_hash(&[&bytes]);
        child
            .meta_mut()
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(APPLIED_HASH_ANNOTATION.to_owned(), hash);
    }
    child
}

impl Children {
    /// The order of creation: configuration before the pods that mount it,
    /// Services before the StatefulSets that name them, the NetworkPolicy
    /// before the pods it admits traffic to, the budget last.
    pub fn in_apply_order(&self) -> Vec<Child<'_>> {
        let mut order = vec![
            Child::ConfigMap(&self.config),
            Child::ConfigMap(&self.client_config),
            Child::Service(&self.headless_service),
            Child::Service(&self.client_service),
        ];
        if let Some(policy) = &self.network_policy {
            order.push(Child::NetworkPolicy(policy));
        }
        order.push(Child::StatefulSet(&self.voters));
        if let Some(observers) = &self.observers {
            order.push(Child::StatefulSet(observers));
        }
        order.push(Child::PodDisruptionBudget(&self.pod_disruption_budget));
        order
    }
}

/// The name of a role's StatefulSet.
pub fn stateful_set_name(cluster: &str, role: Role) -> String {
    identity::statefulset_name(cluster, role)
}

/// Metadata of a child: its name, the cluster's namespace and labels, and
/// the owner reference that lets Kubernetes delete it with the cluster.
fn metadata(
    cluster: &ValidatedCluster,
    name: String,
    labels: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(cluster.namespace.clone()),
        labels: Some(labels),
        owner_references: cluster.owner.clone().map(|o| vec![o]),
        ..Default::default()
    }
}

/// `None` for an empty collection: the API server drops empty lists and
/// maps, so sending them would make every comparison see a difference.
fn non_empty<T, C: IntoIterator<Item = T> + FromIterator<T>>(items: C) -> Option<C> {
    let mut items = items.into_iter().peekable();
    items.peek().is_some().then(|| items.collect())
}

#[cfg(test)]
mod tests;
