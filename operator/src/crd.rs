//! The `ZookeeperCluster` custom resource (`zookube.io/v1alpha1`): its spec,
//! its status, and the CRD generated from them.
//!
//! The CEL rules here reject at admission what the operator would refuse
//! anyway; their messages are the ones in [`zk_ensemble::messages`] and
//! [`messages`], so `kubectl apply`, the `InvalidSpec` condition and
//! `zk-operator render` say the same words. The operator validates again
//! ([`crate::cluster::validate`]) because a cluster written before a rule
//! existed is never re-checked by the API server.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use zk_ensemble::messages as ensemble_messages;

/// The API group of every zookube resource.
pub const GROUP: &str = "zookube.io";
/// The version of `ZookeeperCluster` this operator serves and stores.
pub const VERSION: &str = "v1alpha1";

/// The default ZooKeeper image: the official image, a pinned 3.9 release.
pub const DEFAULT_ZOOKEEPER_IMAGE: &str = "zookeeper:3.9.4";

/// The sidecar image that matches this operator, used when the cluster and
/// the operator's `--sidecar-image` name none.
pub const DEFAULT_SIDECAR_IMAGE: &str =
    concat!("ghcr.io/zookube/zk-sidecar:", env!("CARGO_PKG_VERSION"));

/// The default size of each member's data volume.
pub const DEFAULT_STORAGE_SIZE: &str = "10Gi";

/// Where the operator runs by default (the chart's usual namespace): the
/// NetworkPolicy admits it from there unless `networkPolicy.operator` says otherwise.
pub const DEFAULT_OPERATOR_NAMESPACE: &str = "zookube-system";
/// The label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The label the chart's operator pods carry (`zookube.selectorLabels` in
/// `charts/zookube/templates/_helpers.tpl`).
pub const OPERATOR_POD_LABEL: (&str, &str) = ("app.kubernetes.io/name", "zk-operator");

/// The largest number of peers in `networkPolicy.clients` or
/// `networkPolicy.prometheus`; it bounds the cost of their CEL rule.
pub const MAX_NETWORK_PEERS: u32 = 32;

/// The largest number of `config.extra` keys; it bounds the cost of the CEL
/// rule that checks them (the API server refuses unbounded rules).
pub const MAX_EXTRA_KEYS: u32 = 256;

/// Messages of the rules that belong to the operator rather than to
/// `zk-ensemble` (they concern pods, not `zoo.cfg`).
pub mod messages {
    /// Why the cluster name is limited.
    pub const NAME_LENGTH: &str = "metadata.name must be at most 40 characters: pods are named <name>-observer-<n>, and every name must fit a 63-character DNS label";
    /// Why the four ports must differ.
    pub const TLS_LOCAL_ONLY: &str = "TLS runs with `zk-operator local` in this version; the operator does not yet mount certificates into pods, so remove spec.tls to run this cluster on Kubernetes";
    /// Why the TLS client port must be a port of its own.
    pub const SECURE_CLIENT_PORT: &str = "tls.client.port must differ from ports.client, ports.quorum, ports.election, ports.admin and 8081 (ZooKeeper 3.8 cannot open the TLS port on the plain port's number)";
    pub const PORTS_DISTINCT: &str = "ports.client, ports.quorum, ports.election and ports.admin must all differ, and none may be 8081, the sidecar's port";
    /// Why a data volume cannot be resized through the cluster.
    pub const STORAGE_SIZE_IMMUTABLE: &str = "storage.size cannot change after creation: a StatefulSet's volume claim templates are immutable; keep storage.size as it was and expand each PersistentVolumeClaim instead";
    /// Why a data volume cannot be moved to another class through the cluster.
    pub const STORAGE_CLASS_IMMUTABLE: &str = "storage.storageClassName cannot be set, changed or removed after creation: a StatefulSet's volume claim templates are immutable; keep it as it was (absent if it was), or move the data to a new cluster";
    /// Why some pod labels are refused.
    pub const POD_LABELS_OWNED: &str = "pod.labels must not set app.kubernetes.io/name, app.kubernetes.io/instance, app.kubernetes.io/managed-by, app.kubernetes.io/component or zookube.io/role: zookube sets them to find its members";
    /// Why a network-policy peer needs a selector.
    pub const NETWORK_PEER_EMPTY: &str = "a networkPolicy peer must set namespaceSelector, podSelector or both; to allow every pod of every namespace, set namespaceSelector: {}";
    /// Why a quantity is refused.
    pub const STORAGE_SIZE: &str =
        "storage.size must be a Kubernetes quantity such as 10Gi or 500Mi";
}

/// A ZooKeeper ensemble: an odd number of voters, optional observers, and
/// a sidecar in every pod that reports who leads and in which epoch.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "zookube.io",
    version = "v1alpha1",
    kind = "ZookeeperCluster",
    plural = "zookeeperclusters",
    shortname = "zk",
    category = "zookube",
    namespaced,
    status = "ZookeeperClusterStatus",
    derive = "PartialEq",
    doc = "A ZooKeeper ensemble run by zookube: an odd number of voters, optional observers, and a sidecar in every pod that takes part in the leader election as a watcher.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Voters asked for"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Voters whose pods are ready"
    ),
    printcolumn(
        name = "Observers",
        type_ = "integer",
        json_path = ".spec.observers",
        description = "Observers asked for",
        priority = "1"
    ),
    printcolumn(
        name = "Leader",
        type_ = "string",
        json_path = ".status.leader.pod",
        description = "The pod of the quorum-backed leader"
    ),
    printcolumn(
        name = "Epoch",
        type_ = "integer",
        json_path = ".status.peerEpoch",
        description = "The leader's peer epoch"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    validation = Rule::new("size(self.metadata.name) <= 40").message(messages::NAME_LENGTH)
)]
#[serde(rename_all = "camelCase")]
pub struct ZookeeperClusterSpec {
    /// The number of voters (ZooKeeper participants). Odd, from 1 to 15; a
    /// quorum is `replicas / 2 + 1`. Voter `i` is pod `<name>-i` with myid `i + 1`.
    #[serde(default = "default_replicas")]
    #[x_kube(validation = Rule::new("self % 2 == 1").message(ensemble_messages::REPLICAS_ODD))]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 15").message(ensemble_messages::REPLICAS_RANGE))]
    pub replicas: i32,

    /// The number of observers: non-voting members that serve reads. From 0
    /// to 100. Observer `i` is pod `<name>-observer-i` with myid `128 + i`.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 100").message(ensemble_messages::OBSERVERS_RANGE))]
    pub observers: i32,

    /// The ZooKeeper image (the official `zookeeper` image or one built like
    /// it: `zkServer.sh` on the PATH, running as uid 1000). Default
    /// `zookeeper:3.9.4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// When to pull the ZooKeeper image. Default `IfNotPresent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// CPU and memory for the ZooKeeper container. Default: requests 250m
    /// CPU and 1Gi memory, limit 2Gi memory (ZooKeeper's default heap is 1000 MB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Extra JVM flags for the ZooKeeper server, such as `-Xmx2g`; they come
    /// after zookube's own flags, so they win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jvm_flags: Option<String>,

    /// The zookube sidecar that runs in every pod.
    #[serde(default, skip_serializing_if = "SidecarSpec::is_empty")]
    pub sidecar: SidecarSpec,

    /// Each member's data volume.
    #[serde(default)]
    pub storage: StorageSpec,

    /// ZooKeeper settings; zookube renders them into `zoo.cfg`.
    #[serde(default, skip_serializing_if = "ZooKeeperConfig::is_empty")]
    pub config: ZooKeeperConfig,

    /// Where and how the member pods run.
    #[serde(default, skip_serializing_if = "PodSettings::is_empty")]
    pub pod: PodSettings,

    /// The ports every member listens on.
    #[serde(default, skip_serializing_if = "PortsSpec::is_default")]
    pub ports: PortsSpec,

    /// The cluster's DNS domain, used in member host names. Default `cluster.local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_domain: Option<String>,

    /// A NetworkPolicy that admits only the traffic an ensemble needs, for
    /// namespaces whose default is to deny ingress.
    #[serde(default, skip_serializing_if = "NetworkPolicySpec::is_default")]
    pub network_policy: NetworkPolicySpec,

    /// Transport security. Quorum TLS runs with `zk-operator local` in this
    /// version; the operator refuses it on Kubernetes (`InvalidSpec`) until
    /// it mounts certificates into the pods.
    #[serde(default, skip_serializing_if = "TlsSpec::is_default")]
    pub tls: TlsSpec,
}

fn default_replicas() -> i32 {
    3
}

/// The minimal cluster: three voters, everything else defaulted.
impl Default for ZookeeperClusterSpec {
    fn default() -> Self {
        ZookeeperClusterSpec {
            replicas: default_replicas(),
            observers: 0,
            image: None,
            image_pull_policy: None,
            resources: None,
            jvm_flags: None,
            sidecar: SidecarSpec::default(),
            storage: StorageSpec::default(),
            config: ZooKeeperConfig::default(),
            pod: PodSettings::default(),
            ports: PortsSpec::default(),
            cluster_domain: None,
            network_policy: NetworkPolicySpec::default(),
            tls: TlsSpec::default(),
        }
    }
}

/// When the kubelet pulls an image.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// The zookube sidecar container (and the init container, which runs the
/// same image).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSpec {
    /// The sidecar image. Default: the image that matches the operator's
    /// version (the operator's `--sidecar-image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// When to pull the sidecar image. Default `IfNotPresent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// CPU and memory for the sidecar. Default: requests 10m CPU and 32Mi
    /// memory, limit 128Mi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl SidecarSpec {
    fn is_empty(&self) -> bool {
        self == &SidecarSpec::default()
    }
}

/// Each member's data volume (a PersistentVolumeClaim per pod, mounted at
/// `/data`, holding `myid`, the snapshots and the transaction log).
// The rules sit on this always-present object, not on its fields: a
// transition rule on an optional field is skipped when the field appears or
// disappears, and the StatefulSet update would then be refused forever.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(fixed_at_creation("size")).message(messages::STORAGE_SIZE_IMMUTABLE))]
#[x_kube(validation = Rule::new(fixed_at_creation("storageClassName")).message(messages::STORAGE_CLASS_IMMUTABLE))]
pub struct StorageSpec {
    /// The size of each member's volume. Default `10Gi`. Fixed at creation:
    /// to grow a volume, expand its PersistentVolumeClaim.
    // Not nullable: kube marks every optional int-or-string property
    // `nullable`, and a stored `null` here could not be read back; without
    // it the API server drops a `null` and applies the default.
    #[serde(default = "default_storage_size")]
    #[schemars(extend("nullable" = false))]
    pub size: Quantity,

    /// The StorageClass of the volumes. Default: the cluster's default
    /// class. Fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// What happens to the volumes when the cluster is deleted: `Retain`
    /// (default; delete them yourself) or `Delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_deleted: Option<RetentionPolicy>,

    /// What happens to a member's volume when the cluster scales down past
    /// it: `Retain` (default; a member that comes back keeps its data and
    /// its myid) or `Delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_scaled: Option<RetentionPolicy>,
}

/// The CEL transition rule "the optional field `field` of this object is
/// as it was: present or absent as before, and the same value".
fn fixed_at_creation(field: &str) -> String {
    format!(
        "has(self.{field}) == has(oldSelf.{field}) && (!has(self.{field}) || self.{field} == oldSelf.{field})"
    )
}

fn default_storage_size() -> Quantity {
    Quantity(DEFAULT_STORAGE_SIZE.to_owned())
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec {
            size: default_storage_size(),
            storage_class_name: None,
            when_deleted: None,
            when_scaled: None,
        }
    }
}

/// Whether a member's volume outlives it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionPolicy {
    Retain,
    Delete,
}

impl RetentionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionPolicy::Retain => "Retain",
            RetentionPolicy::Delete => "Delete",
        }
    }
}

/// ZooKeeper settings. Unset fields take zookube's defaults; `extra` sets
/// any other `zoo.cfg` key (precedence: zookube's defaults < these fields <
/// `extra` < the keys zookube owns).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZooKeeperConfig {
    /// `tickTime` in milliseconds. Default 2000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tick_time: Option<i32>,

    /// `initLimit` in ticks: how long a follower may take to sync with the
    /// leader. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub init_limit: Option<i32>,

    /// `syncLimit` in ticks: how far a follower may fall behind. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub sync_limit: Option<i32>,

    /// `maxClientCnxns` per client IP address; 0 means unlimited. Default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_client_cnxns: Option<i32>,

    /// `autopurge.snapRetainCount`: snapshots kept by the purge task. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3))]
    pub autopurge_snap_retain_count: Option<i32>,

    /// `autopurge.purgeInterval` in hours; 0 disables purging. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub autopurge_purge_interval: Option<i32>,

    /// Any other `zoo.cfg` key, for example `globalOutstandingLimit: "2000"`.
    /// Keys zookube owns (`server.*`, `dataDir`, `dataLogDir`, `clientPort`,
    /// `dynamicConfigFile`, `standaloneEnabled`, `reconfigEnabled`, `myid`)
    /// are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = MAX_EXTRA_KEYS))]
    #[x_kube(validation = Rule::new(EXTRA_RULE).message(ensemble_messages::EXTRA_OWNED))]
    pub extra: BTreeMap<String, String>,
}

/// The CEL form of `zk_ensemble::spec::is_owned_key`; a test keeps the two
/// in step. `in` on a map is a key lookup, so only the `server.` prefix
/// needs a loop (bounded by `MAX_EXTRA_KEYS`).
const EXTRA_RULE: &str = "!('dataDir' in self) && !('dataLogDir' in self) && !('clientPort' in self) && !('dynamicConfigFile' in self) && !('standaloneEnabled' in self) && !('reconfigEnabled' in self) && !('myid' in self) && self.all(k, !k.startsWith('server.'))";

impl ZooKeeperConfig {
    fn is_empty(&self) -> bool {
        self == &ZooKeeperConfig::default()
    }
}

/// Where and how the member pods run. Applies to voters and observers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSettings {
    /// Labels added to every member pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new(POD_LABELS_RULE).message(messages::POD_LABELS_OWNED))]
    pub labels: BTreeMap<String, String>,

    /// Annotations added to every member pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Scheduling constraints. Default: prefer one member per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Tolerations of the member pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Node labels a member pod's node must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// The PriorityClass of the member pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// How members spread across zones or nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,

    /// Secrets for pulling private images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// The ServiceAccount of the member pods. Default: the namespace's
    /// `default` account, with no API token mounted (members never call the
    /// Kubernetes API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// The CEL form of "no label zookube sets itself" (see `build::labels`).
pub(crate) const POD_LABELS_RULE: &str = "!('app.kubernetes.io/name' in self) && !('app.kubernetes.io/instance' in self) && !('app.kubernetes.io/managed-by' in self) && !('app.kubernetes.io/component' in self) && !('zookube.io/role' in self)";

impl PodSettings {
    fn is_empty(&self) -> bool {
        self == &PodSettings::default()
    }
}

/// The ports of every member. The sidecar always listens on 8081.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(PORTS_RULE).message(messages::PORTS_DISTINCT))]
pub struct PortsSpec {
    /// Clients connect here (`clientPort`). Default 2181.
    #[serde(default = "default_client_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub client: i32,
    /// Followers connect to the leader here. Default 2888.
    #[serde(default = "default_quorum_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub quorum: i32,
    /// Leader election. Default 3888.
    #[serde(default = "default_election_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub election: i32,
    /// ZooKeeper's AdminServer (`admin.serverPort`). Default 8080.
    #[serde(default = "default_admin_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub admin: i32,
}

const PORTS_RULE: &str = "[self.client, self.quorum, self.election, self.admin].all(p, p != 8081) && self.client != self.quorum && self.client != self.election && self.client != self.admin && self.quorum != self.election && self.quorum != self.admin && self.election != self.admin";

fn default_client_port() -> i32 {
    2181
}
fn default_quorum_port() -> i32 {
    2888
}
fn default_election_port() -> i32 {
    3888
}
fn default_admin_port() -> i32 {
    8080
}

impl Default for PortsSpec {
    fn default() -> Self {
        PortsSpec {
            client: default_client_port(),
            quorum: default_quorum_port(),
            election: default_election_port(),
            admin: default_admin_port(),
        }
    }
}

impl PortsSpec {
    fn is_default(&self) -> bool {
        self == &PortsSpec::default()
    }
}

/// The NetworkPolicy `<name>` over the member pods. When enabled, members
/// reach each other on the quorum and election ports, `clients` the client
/// port, the operator the sidecar's port (8081) and the client port, and
/// `prometheus` the sidecar's port; nothing else reaches the members.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Whether zookube creates the NetworkPolicy. Default false; turning it
    /// off deletes the one zookube created.
    #[serde(default)]
    pub enabled: bool,

    /// Who may connect to the client port. Default: every pod of the
    /// cluster's namespace. An empty list admits no client but the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_NETWORK_PEERS))]
    pub clients: Option<Vec<NetworkPeer>>,

    /// The operator's pods, which read the sidecars (8081) and run
    /// `reconfig` on the client port. Default: pods labelled
    /// `app.kubernetes.io/name: zk-operator` in the namespace
    /// `zookube-system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<NetworkPeer>,

    /// Who may scrape the sidecars' metrics (8081), besides the operator.
    /// Default: nobody else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_NETWORK_PEERS))]
    pub prometheus: Vec<NetworkPeer>,
}

impl NetworkPolicySpec {
    fn is_default(&self) -> bool {
        self == &NetworkPolicySpec::default()
    }
}

/// TLS for the ensemble's connections.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// TLS on the quorum and election ports (`sslQuorum=true`): members
    /// present certificates signed by the cluster's own CA, which zookube
    /// makes, and refuse callers without one. The sidecars watch the
    /// election over TLS with their member's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<QuorumTlsSpec>,

    /// A TLS client port (`secureClientPort`) beside the plain one, with
    /// certificates from the same CA. The plain port stays open: ZooKeeper
    /// answers four-letter words (the sidecar's probes) only there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientTlsSpec>,
}

/// Client TLS.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientTlsSpec {
    /// The TLS client port. Default 2281; it must differ from the other
    /// ports (ZooKeeper 3.8 cannot share the plain port's number).
    #[serde(default = "default_secure_client_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Whether a client must present a certificate from the cluster's CA:
    /// `Need` (default), `Want` (checked when given) or `None`.
    #[serde(default)]
    pub client_auth: ClientAuthSpec,
}

fn default_secure_client_port() -> i32 {
    2281
}

impl Default for ClientTlsSpec {
    fn default() -> Self {
        ClientTlsSpec {
            port: default_secure_client_port(),
            client_auth: ClientAuthSpec::default(),
        }
    }
}

/// `ssl.clientAuth`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuthSpec {
    #[default]
    Need,
    Want,
    None,
}

impl TlsSpec {
    fn is_default(&self) -> bool {
        self == &TlsSpec::default()
    }
}

/// Quorum TLS with certificates from the cluster's own CA (`quorum: {}`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QuorumTlsSpec {}

/// Pods that may connect, as a NetworkPolicy peer selects them: the pods
/// matching `podSelector` in the namespaces matching `namespaceSelector`.
/// Without `namespaceSelector`, the cluster's own namespace; without
/// `podSelector`, every pod of the selected namespaces.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(NETWORK_PEER_RULE).message(messages::NETWORK_PEER_EMPTY))]
pub struct NetworkPeer {
    /// The namespaces, by their labels (every namespace has
    /// `kubernetes.io/metadata.name: <its name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// The pods, by their labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
}

const NETWORK_PEER_RULE: &str = "has(self.namespaceSelector) || has(self.podSelector)";

impl NetworkPeer {
    /// Whether the peer selects anything: a peer with neither selector is
    /// refused by the NetworkPolicy API.
    pub fn is_empty(&self) -> bool {
        self.namespace_selector.is_none() && self.pod_selector.is_none()
    }
}

/// What the operator last saw of the ensemble.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZookeeperClusterStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Voter pods that exist.
    #[serde(default)]
    pub replicas: i32,

    /// Voter pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Observer pods that exist.
    #[serde(default)]
    pub observers: i32,

    /// Observer pods that are ready.
    #[serde(default)]
    pub ready_observers: i32,

    /// The label selector of the voter pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// The quorum-backed leader, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderStatus>,

    /// The leader's peer epoch: it grows by one with every new leadership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_epoch: Option<i64>,

    /// Every member, voters by myid then observers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,

    /// `Available`, `Progressing`, `Degraded` and `InvalidSpec`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The SHA-256 (first 16 hex digits) of the rendered configuration; the
    /// same value annotates the pod template (`zookube.io/config-hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
}

/// The leader of the ensemble.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LeaderStatus {
    pub myid: i64,
    pub pod: String,
}

/// One member as the operator saw it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    pub myid: i64,
    pub pod: String,
    /// `voter` or `observer`.
    pub role: String,
    /// LOOKING, FOLLOWING, LEADING, OBSERVING or DOWN, as the member's own
    /// sidecar reports it; absent when the sidecar did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Whether the pod is ready (its sidecar's `/readyz` answers).
    pub ready: bool,
}

/// The CRD as YAML: what `zk-operator crd` prints and
/// `crds/zookeepercluster.yaml` holds.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let crd: CustomResourceDefinition = ZookeeperCluster::crd();
    serde_saphyr::to_string(&crd)
}

#[cfg(test)]
pub(crate) fn pod_labels_rule() -> &'static str {
    POD_LABELS_RULE
}

#[cfg(test)]
pub(crate) fn extra_rule() -> &'static str {
    EXTRA_RULE
}

#[cfg(test)]
mod tests {
    use zk_ensemble::spec::OWNED_KEYS;

    #[test]
    fn the_extra_rule_refuses_exactly_the_keys_zookube_owns() {
        let rule = super::extra_rule();
        for key in OWNED_KEYS {
            assert!(rule.contains(&format!("!('{key}' in self)")), "{key}");
        }
        assert_eq!(rule.matches(" in self)").count(), OWNED_KEYS.len());
        assert!(rule.contains("!k.startsWith('server.')"));
    }
}
