//! From a `ZookeeperCluster` to a [`ValidatedCluster`]: the one input every
//! builder reads. Validation is pure and reports every problem at once, each
//! naming the field and the fix; the problems that a CEL rule also refuses
//! carry that rule's message word for word.
//!
//! `zk-operator run`, `zk-operator render` and `zk-operator local` all go
//! through [`validate`], so an even `replicas` reads the same everywhere.

mod parse;
mod pod_template;
mod quantity;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::Resource;
use sha2::{Digest, Sha256};
use zk_ensemble::identity::{MAX_OBSERVERS, MAX_VOTERS};
use zk_ensemble::spec::{SpecError, is_owned_key};
use zk_ensemble::tls::{ClientAuth, ClientTls};
use zk_ensemble::{EnsembleSpec, Myid, Ports, Role, Settings, messages as ensemble_messages};

use crate::build::labels;
use crate::crd::{
    self, ClientAuthSpec, NetworkPeer, NetworkPolicySpec, PodSettings, PullPolicy, RetentionPolicy,
    ZookeeperCluster, ZookeeperClusterSpec, messages,
};

pub use parse::{ParseError, parse_cluster};
pub use quantity::{is_quantity, quantity_value, same_quantity};

/// What the operator was started with and a cluster may leave unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// The sidecar image for clusters that name none.
    pub sidecar_image: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            sidecar_image: crd::DEFAULT_SIDECAR_IMAGE.to_owned(),
        }
    }
}

/// A cluster that passed validation, with every default filled in. Builders
/// read only this.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedCluster {
    pub name: String,
    pub namespace: String,
    /// The spec generation this was validated from (absent for a file).
    pub generation: Option<i64>,
    /// Makes the cluster the controller of every child; absent when the
    /// cluster has no uid yet (a file rendered by `zk-operator render`).
    pub owner: Option<OwnerReference>,
    /// The ensemble: members, ports and ZooKeeper settings.
    pub ensemble: EnsembleSpec,
    /// The rendered configuration and its hash.
    pub config: RenderedConfig,
    pub zookeeper: ContainerSettings,
    pub sidecar: ContainerSettings,
    pub storage: StorageSettings,
    /// Extra JVM flags for the ZooKeeper server.
    pub jvm_flags: Option<String>,
    /// Scheduling and metadata of the member pods, as the user gave them.
    pub pod: PodSettings,
    /// The value of the cluster's [`RESTART_ANNOTATION`]: changing it
    /// restarts every member, one at a time, the leader last.
    pub restart: Option<String>,
    /// Which members have pods and which servers `zoo.cfg` lists: the
    /// spec's, except while a membership change is under way (see
    /// [`ValidatedCluster::with_members`]).
    pub members: Members,
    /// The NetworkPolicy's peers, defaults filled in; absent when disabled.
    pub network_policy: Option<NetworkPolicySettings>,
}

/// Who may reach the members, besides the members themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkPolicySettings {
    /// Admitted to the client port; empty admits no client.
    pub clients: Vec<NetworkPeer>,
    /// Admitted to the sidecar's port and the client port.
    pub operator: NetworkPeer,
    /// Admitted to the sidecar's port.
    pub prometheus: Vec<NetworkPeer>,
}

/// The annotation on a `ZookeeperCluster` that requests a rolling restart
/// (`kubectl annotate zk/NAME zookube.io/restart="$(date)" --overwrite`).
pub const RESTART_ANNOTATION: &str = "zookube.io/restart";

/// The members that exist at a moment of a membership change: how many pods
/// each StatefulSet has, and the servers every member's `zoo.cfg` lists
/// (the committed config and a joiner; see `zk_ensemble::plan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    pub servers: BTreeMap<Myid, Role>,
    pub voter_pods: u32,
    pub observer_pods: u32,
}

impl Members {
    /// The members the spec asks for.
    pub fn of_spec(ensemble: &EnsembleSpec) -> Members {
        Members {
            servers: ensemble
                .members()
                .iter()
                .map(|m| (m.myid, m.role))
                .collect(),
            voter_pods: ensemble.voters,
            observer_pods: ensemble.observers,
        }
    }

    /// How many voters the servers list.
    pub fn voters(&self) -> u32 {
        let n = self.servers.values().filter(|r| **r == Role::Voter).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// The files of the config ConfigMap, rendered once for every member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedConfig {
    /// `zoo.cfg`, the same bytes for every member (identity comes from the
    /// myid file the init container writes).
    pub zoo_cfg: String,
    /// The SHA-256 of the ConfigMap's files without the server lines,
    /// first 16 hex digits.
    pub hash: String,
}

/// Image, pull policy and resources of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSettings {
    pub image: String,
    pub pull_policy: PullPolicy,
    pub resources: ResourceRequirements,
}

/// The data volume of every member.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageSettings {
    pub size: Quantity,
    pub storage_class_name: Option<String>,
    pub when_deleted: RetentionPolicy,
    pub when_scaled: RetentionPolicy,
}

/// One reason a cluster cannot be run: the field, its value when there is
/// one, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field's path, as `kubectl explain` spells it (`spec.replicas`).
    pub field: String,
    pub value: Option<String>,
    pub message: String,
}

impl FieldProblem {
    fn new(field: impl Into<String>, value: Option<String>, message: impl Into<String>) -> Self {
        FieldProblem {
            field: field.into(),
            value,
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{} = {}: {}", self.field, value, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// Every problem of a cluster that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidSpec {
    pub problems: Vec<FieldProblem>,
}

/// Validates a cluster with the built-in defaults.
pub fn validate(cluster: &ZookeeperCluster) -> Result<ValidatedCluster, InvalidSpec> {
    validate_with(cluster, &Defaults::default())
}

/// Validates a cluster to run on Kubernetes: [`validate_with`], and what
/// the operator cannot do there yet (quorum TLS: it does not mount
/// certificates into pods; `zk-operator local` runs it).
pub fn validate_for_kubernetes(
    cluster: &ZookeeperCluster,
    defaults: &Defaults,
) -> Result<ValidatedCluster, InvalidSpec> {
    let validated = validate_with(cluster, defaults)?;
    if validated.ensemble.uses_tls() {
        return Err(InvalidSpec {
            problems: vec![FieldProblem::new(
                "spec.tls",
                None,
                messages::TLS_LOCAL_ONLY,
            )],
        });
    }
    Ok(validated)
}

/// Validates a cluster, filling what it leaves unset from `defaults`.
pub fn validate_with(
    cluster: &ZookeeperCluster,
    defaults: &Defaults,
) -> Result<ValidatedCluster, InvalidSpec> {
    let spec = &cluster.spec;
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let namespace = cluster
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());

    let mut problems = admission_problems(&name, spec);
    let ensemble = ensemble_spec(&name, &namespace, spec);
    problems.extend(ensemble.problems().iter().filter_map(ensemble_problem));
    problems.extend(pod_problems(spec));
    problems.extend(pod_template::problems(spec));
    if !problems.is_empty() {
        return Err(InvalidSpec { problems });
    }

    let config = render_config(&ensemble).map_err(|e| InvalidSpec {
        problems: e.0.iter().filter_map(ensemble_problem).collect(),
    })?;

    Ok(ValidatedCluster {
        name,
        namespace,
        generation: cluster.metadata.generation,
        owner: cluster.controller_owner_ref(&()),
        config,
        zookeeper: ContainerSettings {
            image: spec
                .image
                .clone()
                .unwrap_or_else(|| crd::DEFAULT_ZOOKEEPER_IMAGE.to_owned()),
            pull_policy: spec.image_pull_policy.unwrap_or(PullPolicy::IfNotPresent),
            resources: spec
                .resources
                .clone()
                .unwrap_or_else(default_zookeeper_resources),
        },
        sidecar: ContainerSettings {
            image: spec
                .sidecar
                .image
                .clone()
                .unwrap_or_else(|| defaults.sidecar_image.clone()),
            pull_policy: spec
                .sidecar
                .image_pull_policy
                .unwrap_or(PullPolicy::IfNotPresent),
            resources: spec
                .sidecar
                .resources
                .clone()
                .unwrap_or_else(default_sidecar_resources),
        },
        storage: StorageSettings {
            size: spec.storage.size.clone(),
            storage_class_name: spec.storage.storage_class_name.clone(),
            when_deleted: spec.storage.when_deleted.unwrap_or(RetentionPolicy::Retain),
            when_scaled: spec.storage.when_scaled.unwrap_or(RetentionPolicy::Retain),
        },
        jvm_flags: spec.jvm_flags.clone().filter(|f| !f.trim().is_empty()),
        pod: spec.pod.clone(),
        restart: cluster
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RESTART_ANNOTATION))
            .cloned(),
        members: Members::of_spec(&ensemble),
        ensemble,
        network_policy: network_policy_settings(&spec.network_policy),
    })
}

/// The NetworkPolicy's peers: the spec's, or every pod of the cluster's
/// namespace for clients and the chart's operator pods for the operator.
fn network_policy_settings(spec: &NetworkPolicySpec) -> Option<NetworkPolicySettings> {
    spec.enabled.then(|| NetworkPolicySettings {
        clients: spec.clients.clone().unwrap_or_else(|| {
            vec![NetworkPeer {
                pod_selector: Some(LabelSelector::default()),
                ..Default::default()
            }]
        }),
        operator: spec.operator.clone().unwrap_or_else(default_operator_peer),
        prometheus: spec.prometheus.clone(),
    })
}

/// The chart's operator pods in `zookube-system`.
pub fn default_operator_peer() -> NetworkPeer {
    let (key, value) = crd::OPERATOR_POD_LABEL;
    NetworkPeer {
        namespace_selector: Some(match_labels(
            crd::NAMESPACE_NAME_LABEL,
            crd::DEFAULT_OPERATOR_NAMESPACE,
        )),
        pod_selector: Some(match_labels(key, value)),
    }
}

fn match_labels(key: &str, value: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(key.to_owned(), value.to_owned())])),
        ..Default::default()
    }
}

impl ValidatedCluster {
    /// The cluster with these members: the StatefulSets' replicas and the
    /// server list of `zoo.cfg`. The config hash stays: it covers the
    /// settings, not the servers, so a membership change restarts nothing.
    pub fn with_members(mut self, members: Members) -> ValidatedCluster {
        let servers: Vec<zk_ensemble::Member> = members
            .servers
            .keys()
            .map(|myid| self.ensemble.member(*myid))
            .collect();
        if let Ok(first) = Myid::for_ordinal(Role::Voter, 0)
            && let Ok(cfg) = self.ensemble.zoo_cfg_with(first, &servers)
        {
            self.config.zoo_cfg = cfg.render();
        }
        self.members = members;
        self
    }
}

/// The checks the CRD's CEL rules also make, with the same messages. The
/// API server runs the rules only on writes, so a cluster stored before a
/// rule existed reaches the operator unchecked.
fn admission_problems(name: &str, spec: &ZookeeperClusterSpec) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    if name.len() > 40 {
        problems.push(FieldProblem::new(
            "metadata.name",
            Some(name.to_owned()),
            messages::NAME_LENGTH,
        ));
    }
    let replicas = Some(spec.replicas.to_string());
    if spec.replicas % 2 != 1 {
        problems.push(FieldProblem::new(
            "spec.replicas",
            replicas.clone(),
            ensemble_messages::REPLICAS_ODD,
        ));
    }
    if !(1..=i64::from(MAX_VOTERS)).contains(&i64::from(spec.replicas)) {
        problems.push(FieldProblem::new(
            "spec.replicas",
            replicas,
            ensemble_messages::REPLICAS_RANGE,
        ));
    }
    if !(0..=i64::from(MAX_OBSERVERS)).contains(&i64::from(spec.observers)) {
        problems.push(FieldProblem::new(
            "spec.observers",
            Some(spec.observers.to_string()),
            ensemble_messages::OBSERVERS_RANGE,
        ));
    }
    for key in spec.config.extra.keys().filter(|k| is_owned_key(k)) {
        problems.push(FieldProblem::new(
            format!("spec.config.extra.{key}"),
            None,
            ensemble_messages::EXTRA_OWNED,
        ));
    }
    problems.extend(bound_problems(spec));
    let ports = &spec.ports;
    let all = [ports.client, ports.quorum, ports.election, ports.admin];
    let mut distinct = all.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if let Some(client) = &spec.tls.client
        && (all.contains(&client.port) || client.port == i32::from(crate::build::SIDECAR_PORT))
    {
        problems.push(FieldProblem::new(
            "spec.tls.client.port",
            Some(client.port.to_string()),
            messages::SECURE_CLIENT_PORT,
        ));
    }
    if distinct.len() != all.len() || all.contains(&i32::from(crate::build::SIDECAR_PORT)) {
        problems.push(FieldProblem::new(
            "spec.ports",
            Some(format!(
                "client {}, quorum {}, election {}, admin {}",
                ports.client, ports.quorum, ports.election, ports.admin
            )),
            messages::PORTS_DISTINCT,
        ));
    }
    for key in spec
        .pod
        .labels
        .keys()
        .filter(|k| labels::OWNED.contains(&k.as_str()))
    {
        problems.push(FieldProblem::new(
            pod_template::entry("spec.pod.labels", key),
            None,
            messages::POD_LABELS_OWNED,
        ));
    }
    problems.extend(network_peer_problems(&spec.network_policy));
    if !is_quantity(&spec.storage.size.0) {
        problems.push(FieldProblem::new(
            "spec.storage.size",
            Some(spec.storage.size.0.clone()),
            messages::STORAGE_SIZE,
        ));
    }
    problems
}

/// The peers with neither selector, which the CRD's rule refuses.
fn network_peer_problems(spec: &NetworkPolicySpec) -> Vec<FieldProblem> {
    let field = "spec.networkPolicy";
    let listed = |name: &str, peers: &[NetworkPeer]| -> Vec<String> {
        peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_empty())
            .map(|(i, _)| format!("{field}.{name}[{i}]"))
            .collect()
    };
    let mut empty = listed("clients", spec.clients.as_deref().unwrap_or_default());
    if spec.operator.as_ref().is_some_and(NetworkPeer::is_empty) {
        empty.push(format!("{field}.operator"));
    }
    empty.extend(listed("prometheus", &spec.prometheus));
    let mut problems: Vec<FieldProblem> = empty
        .into_iter()
        .map(|f| FieldProblem::new(f, None, messages::NETWORK_PEER_EMPTY))
        .collect();
    let clients = spec.clients.as_deref().unwrap_or_default();
    for (name, peers) in [("clients", clients), ("prometheus", &spec.prometheus)] {
        if peers.len() > crd::MAX_NETWORK_PEERS as usize {
            problems.push(FieldProblem::new(
                format!("{field}.{name}"),
                Some(format!("{} peers", peers.len())),
                format!("list at most {} peers", crd::MAX_NETWORK_PEERS),
            ));
        }
    }
    problems
}

/// The bounds the CRD's schema sets (`minimum`, `maximum`).
fn bound_problems(spec: &ZookeeperClusterSpec) -> Vec<FieldProblem> {
    let c = &spec.config;
    let settings = [
        ("tickTime", c.tick_time, 1),
        ("initLimit", c.init_limit, 1),
        ("syncLimit", c.sync_limit, 1),
        ("maxClientCnxns", c.max_client_cnxns, 0),
        ("autopurgeSnapRetainCount", c.autopurge_snap_retain_count, 3),
        ("autopurgePurgeInterval", c.autopurge_purge_interval, 0),
    ];
    let mut problems: Vec<FieldProblem> = settings
        .into_iter()
        .filter_map(|(key, value, min)| {
            let value = value.filter(|v| *v < min)?;
            Some(FieldProblem::new(
                format!("spec.config.{key}"),
                Some(value.to_string()),
                format!("must be at least {min}; remove it to use zookube's default"),
            ))
        })
        .collect();
    let p = &spec.ports;
    for (name, port) in [
        ("client", p.client),
        ("quorum", p.quorum),
        ("election", p.election),
        ("admin", p.admin),
    ] {
        if !(1..=65535).contains(&port) {
            problems.push(FieldProblem::new(
                format!("spec.ports.{name}"),
                Some(port.to_string()),
                "choose a port from 1 to 65535",
            ));
        }
    }
    problems
}

/// Checks of pod-level fields that no CEL rule makes.
fn pod_problems(spec: &ZookeeperClusterSpec) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    let images = [
        ("spec.image", spec.image.as_deref()),
        ("spec.sidecar.image", spec.sidecar.image.as_deref()),
    ];
    for (field, image) in images {
        if let Some(image) = image
            && (image.trim().is_empty() || image.chars().any(char::is_whitespace))
        {
            problems.push(FieldProblem::new(
                field,
                Some(format!("{image:?}")),
                "an image reference has no spaces, for example zookeeper:3.9.4; remove the field to use the default",
            ));
        }
    }
    if let Some(domain) = &spec.cluster_domain
        && !is_dns_name(domain)
    {
        problems.push(FieldProblem::new(
            "spec.clusterDomain",
            Some(domain.clone()),
            "the cluster domain is a DNS name such as cluster.local; remove the field to use cluster.local",
        ));
    }
    problems
}

/// The ensemble a cluster asks for. Values that do not fit are clamped to
/// 0 here; [`admission_problems`] has already named them.
fn ensemble_spec(name: &str, namespace: &str, spec: &ZookeeperClusterSpec) -> EnsembleSpec {
    let unsigned = |v: i32| u32::try_from(v).unwrap_or(0);
    let port = |v: i32| u16::try_from(v).unwrap_or(0);
    let defaults = Settings::default();
    let config = &spec.config;
    let setting = |v: Option<i32>, default: u32| v.map_or(default, unsigned);
    EnsembleSpec {
        cluster_domain: spec
            .cluster_domain
            .clone()
            .unwrap_or_else(|| "cluster.local".to_owned()),
        voters: unsigned(spec.replicas),
        observers: unsigned(spec.observers),
        ports: Ports {
            secure_client: spec
                .tls
                .client
                .as_ref()
                .map_or(Ports::default().secure_client, |c| port(c.port)),
            client: port(spec.ports.client),
            quorum: port(spec.ports.quorum),
            election: port(spec.ports.election),
            admin: port(spec.ports.admin),
        },
        settings: Settings {
            tick_time_ms: setting(config.tick_time, defaults.tick_time_ms),
            init_limit: setting(config.init_limit, defaults.init_limit),
            sync_limit: setting(config.sync_limit, defaults.sync_limit),
            max_client_cnxns: setting(config.max_client_cnxns, defaults.max_client_cnxns),
            autopurge_snap_retain_count: setting(
                config.autopurge_snap_retain_count,
                defaults.autopurge_snap_retain_count,
            ),
            autopurge_purge_interval_hours: setting(
                config.autopurge_purge_interval,
                defaults.autopurge_purge_interval_hours,
            ),
        },
        overrides: config.extra.clone(),
        quorum_tls: spec.tls.quorum.is_some(),
        client_tls: spec.tls.client.as_ref().map(|c| ClientTls {
            auth: match c.client_auth {
                ClientAuthSpec::Need => ClientAuth::Need,
                ClientAuthSpec::Want => ClientAuth::Want,
                ClientAuthSpec::None => ClientAuth::None,
            },
        }),
        ..EnsembleSpec::new(name, namespace)
    }
}

/// A problem `zk-ensemble` found, as a field problem of the custom
/// resource; `None` for the ones [`admission_problems`] reports already.
fn ensemble_problem(error: &SpecError) -> Option<FieldProblem> {
    let problem = match error {
        SpecError::EvenVoters(_)
        | SpecError::VotersOutOfRange(_)
        | SpecError::ObserversOutOfRange(_)
        | SpecError::OwnedKey(_)
        | SpecError::PortsNotDistinct
        | SpecError::PortZero(_)
        | SpecError::ZeroSetting(_) => return None,
        // A name that is only too long has its length reported already.
        SpecError::BadName(name) if name.len() > 40 => return None,
        SpecError::BadName(name) => FieldProblem::new(
            "metadata.name",
            Some(format!("{name:?}")),
            "use 1 to 40 lower-case letters, digits and '-', starting with a letter",
        ),
        SpecError::BadKey(key) => FieldProblem::new(
            format!("spec.config.extra.{key}"),
            None,
            "not a valid zoo.cfg key; use letters, digits, '.', '_' and '-' only",
        ),
        SpecError::BadValue(key) => FieldProblem::new(
            format!("spec.config.extra.{key}"),
            None,
            "the value holds a control character such as a newline; write it on one line",
        ),
    };
    Some(problem)
}

/// Renders `zoo.cfg` once (every member reads the same file on Kubernetes)
/// and hashes the ConfigMap's files. The hash leaves the server lines out:
/// members learn a new membership through `reconfig`, so a scale change
/// must not look like a change that needs restarts.
fn render_config(ensemble: &EnsembleSpec) -> Result<RenderedConfig, zk_ensemble::SpecErrors> {
    let first_voter = Myid::for_ordinal(zk_ensemble::Role::Voter, 0)
        .map_err(|_| zk_ensemble::SpecErrors(vec![SpecError::VotersOutOfRange(0)]))?;
    let cfg = ensemble.zoo_cfg(first_voter)?;
    let settings = zk_ensemble::ZooCfg {
        servers: Vec::new(),
        ..cfg.clone()
    }
    .render();
    let files: Vec<(&str, &str)> = std::iter::once((crate::build::ZOO_CFG_KEY, settings.as_str()))
        .chain(crate::build::FIXED_FILES)
        .collect();
    let hash = config_hash(&files);
    Ok(RenderedConfig {
        zoo_cfg: cfg.render(),
        hash,
    })
}

/// The hash of a set of files: SHA-256 over each name and its bytes, first
/// 16 hex digits. Equal files give equal hashes, so an unchanged spec never
/// changes the pod template.
pub fn config_hash(files: &[(&str, &str)]) -> String {
    let parts: Vec<&[u8]> = files
        .iter()
        .flat_map(|(name, bytes)| [name.as_bytes(), bytes.as_bytes()])
        .collect();
    short_hash(&parts)
}

/// SHA-256 over the parts (each followed by a zero byte, so `["a", "bc"]`
/// and `["ab", "c"]` differ), as the first 16 hex digits.
pub fn short_hash(parts: &[&[u8]]) -> String {
    let mut sha = Sha256::new();
    for part in parts {
        sha.update(part);
        sha.update([0]);
    }
    sha.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn default_zookeeper_resources() -> ResourceRequirements {
    resources(&[("cpu", "250m"), ("memory", "1Gi")], &[("memory", "2Gi")])
}

fn default_sidecar_resources() -> ResourceRequirements {
    resources(
        &[("cpu", "10m"), ("memory", "32Mi")],
        &[("memory", "128Mi")],
    )
}

fn resources(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> ResourceRequirements {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, Quantity> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
            .collect()
    };
    ResourceRequirements {
        requests: Some(map(requests)),
        limits: Some(map(limits)),
        ..Default::default()
    }
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

#[cfg(test)]
mod tests;
