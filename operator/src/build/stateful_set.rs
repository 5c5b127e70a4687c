//! The StatefulSets of a cluster (`<name>` for voters, `<name>-observer`
//! for observers) and their pods: `zk-sidecar init` writes `myid`, the
//! `zookeeper` container runs the server in the foreground, and
//! `zk-sidecar run` watches the election and answers the probes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector, SecurityContext, TCPSocketAction,
    Volume, VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use zk_ensemble::Role;

use super::secret::{SUPER_DIGEST_ENV, SUPER_DIGEST_KEY, super_secret_name};
use super::{
    ADMIN_PORT_NAME, CLIENT_PORT_NAME, CONF_DIR, CONF_VOLUME, CONFIG_DIR, CONFIG_HASH_ANNOTATION,
    CONFIG_VOLUME, DATA_DIR, DATA_VOLUME, ELECTION_PORT_NAME, INIT_CONTAINER, JAVA_SECURITY_KEY,
    LOGBACK_KEY, LOGS_DIR, LOGS_VOLUME, QUORUM_PORT_NAME, RESTARTED_AT_ANNOTATION,
    SIDECAR_CONTAINER, SIDECAR_PORT, SIDECAR_PORT_NAME, TEMPLATE_HASH_ANNOTATION, TMP_DIR,
    TMP_VOLUME, ZOO_CFG_KEY, ZOOKEEPER_CONTAINER, ZOOKEEPER_UID, config_map_name, labels, metadata,
    non_empty, stateful_set_name,
};
use crate::cluster::{ContainerSettings, ValidatedCluster};
use crate::reconfig::super_digest_flag;

/// The sidecar binary, found on the image's PATH.
const SIDECAR_BINARY: &str = "zk-sidecar";

/// The variable `zk-sidecar init` reads the pod's ordinal from.
const POD_INDEX_ENV: &str = "POD_INDEX";
/// The label the StatefulSet controller puts on each pod (Kubernetes 1.28
/// and later): the pod's ordinal, without parsing the host name. On older
/// clusters the label is absent, the variable is empty, and `init` falls
/// back to the host name's `-<ordinal>` suffix.
const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// Tells `kubectl logs` and `kubectl exec` which container to pick.
const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// The StatefulSet of one role.
///
/// - `podManagementPolicy: Parallel`: members start together; with
///   `OrderedReady` the first pod would wait for a readiness that needs a
///   quorum, which needs the pods not yet created.
/// - `updateStrategy: OnDelete`: a changed template (a new config hash, a
///   new image) restarts nothing by itself; the operator decides the order
///   of restarts, followers first and the leader last.
pub fn stateful_set(cluster: &ValidatedCluster, role: Role) -> StatefulSet {
    let name = stateful_set_name(&cluster.name, role);
    // Pods come and go one at a time during a membership change; the
    // reconcile loop sets how many exist (see `crate::membership`).
    let replicas = match role {
        Role::Voter => cluster.members.voter_pods,
        Role::Observer => cluster.members.observer_pods,
    };
    let storage = &cluster.storage;
    StatefulSet {
        metadata: metadata(cluster, name, labels::member(&cluster.name, role)),
        spec: Some(StatefulSetSpec {
            replicas: Some(i32::try_from(replicas).unwrap_or(i32::MAX)),
            service_name: Some(zk_ensemble::identity::headless_service_name(&cluster.name)),
            selector: LabelSelector {
                match_labels: Some(labels::role_selector(&cluster.name, role)),
                ..Default::default()
            },
            pod_management_policy: Some("Parallel".to_owned()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_owned()),
                ..Default::default()
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(storage.when_deleted.as_str().to_owned()),
                    when_scaled: Some(storage.when_scaled.as_str().to_owned()),
                },
            ),
            template: hashed(pod_template(cluster, role)),
            volume_claim_templates: Some(vec![data_volume_claim(cluster, role)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The template with [`TEMPLATE_HASH_ANNOTATION`]: the hash of everything
/// a running pod cannot pick up without a restart (image, settings through
/// the config hash, resources, flags, a restart request). A pod whose
/// annotation differs is restarted, one at a time, the leader last.
fn hashed(mut template: PodTemplateSpec) -> PodTemplateSpec {
    let hash = serde_json::to_vec(&template)
        .map(|bytes| crate::cluster::short_hash(&[&bytes]))
        .unwrap_or_default();
    template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(TEMPLATE_HASH_ANNOTATION.to_owned(), hash);
    template
}

/// The template hash a StatefulSet gives its pods.
pub fn template_hash(stateful_set: &StatefulSet) -> Option<&str> {
    stateful_set
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(TEMPLATE_HASH_ANNOTATION)
        .map(String::as_str)
}

fn data_volume_claim(cluster: &ValidatedCluster, role: Role) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_owned()),
            labels: Some(labels::member(&cluster.name, role)),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: cluster.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    cluster.storage.size.clone(),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_template(cluster: &ValidatedCluster, role: Role) -> PodTemplateSpec {
    let pod = &cluster.pod;
    let mut pod_labels = pod.labels.clone();
    pod_labels.extend(labels::member(&cluster.name, role));
    // The user's annotations come after the scrape annotations, so
    // `prometheus.io/scrape: "false"` on a cluster turns scraping off.
    let mut annotations = scrape_annotations();
    annotations.extend(pod.annotations.clone());
    annotations.insert(
        CONFIG_HASH_ANNOTATION.to_owned(),
        cluster.config.hash.clone(),
    );
    annotations.insert(
        DEFAULT_CONTAINER_ANNOTATION.to_owned(),
        ZOOKEEPER_CONTAINER.to_owned(),
    );
    if let Some(restart) = &cluster.restart {
        annotations.insert(RESTARTED_AT_ANNOTATION.to_owned(), restart.clone());
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(annotations),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            init_containers: Some(vec![init_container(cluster, role)]),
            containers: vec![zookeeper_container(cluster), sidecar_container(cluster)],
            volumes: Some(volumes(cluster)),
            security_context: Some(pod_security_context()),
            affinity: Some(
                pod.affinity
                    .clone()
                    .unwrap_or_else(|| spread_across_nodes(&cluster.name)),
            ),
            tolerations: non_empty(pod.tolerations.clone()),
            node_selector: non_empty(pod.node_selector.clone()),
            priority_class_name: pod.priority_class_name.clone(),
            topology_spread_constraints: non_empty(pod.topology_spread_constraints.clone()),
            image_pull_secrets: non_empty(pod.image_pull_secrets.clone()),
            service_account_name: pod.service_account_name.clone(),
            // Members never call the Kubernetes API.
            automount_service_account_token: Some(false),
            // Service links would add an environment variable per Service
            // in the namespace; ZooKeeper's scripts read none of them.
            enable_service_links: Some(false),
            ..Default::default()
        }),
    }
}

/// The conventional annotations by which a Prometheus that discovers pods
/// finds what to scrape: the sidecar's `/metrics`. (The chart's PodMonitor
/// finds the same port by its name.)
fn scrape_annotations() -> BTreeMap<String, String> {
    [
        ("prometheus.io/scrape", "true".to_owned()),
        ("prometheus.io/port", SIDECAR_PORT.to_string()),
        ("prometheus.io/path", "/metrics".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

/// `zk-sidecar init`: takes the ordinal from the pod's host name, writes
/// `myid` on first start, refuses a volume whose `myid` disagrees, and
/// copies `zoo.cfg` where ZooKeeper may rewrite it.
fn init_container(cluster: &ValidatedCluster, role: Role) -> Container {
    let config_file = format!("{CONFIG_DIR}/{ZOO_CFG_KEY}");
    let role = role.to_string();
    Container {
        name: INIT_CONTAINER.to_owned(),
        command: Some(strings(&[
            SIDECAR_BINARY,
            "init",
            "--config",
            &config_file,
            "--data-dir",
            DATA_DIR,
            "--role",
            &role,
            "--conf-dir",
            CONF_DIR,
        ])),
        env: Some(vec![field_env(
            POD_INDEX_ENV,
            &format!("metadata.labels['{POD_INDEX_LABEL}']"),
        )]),
        volume_mounts: Some(vec![
            mount(CONFIG_VOLUME, CONFIG_DIR, true),
            mount(CONF_VOLUME, CONF_DIR, false),
            mount(DATA_VOLUME, DATA_DIR, false),
        ]),
        ..container_basics(&cluster.sidecar)
    }
}

/// The ZooKeeper server in the foreground on `/conf/zoo.cfg`. The image's
/// entrypoint script is bypassed: it would write a `myid` of its own when
/// none exists.
fn zookeeper_container(cluster: &ValidatedCluster) -> Container {
    let ports = cluster.ensemble.ports;
    // The super user's digest comes from the Secret through an environment
    // variable that Kubernetes expands into the flag: never in a ConfigMap.
    let mut jvm_flags = format!(
        "{} -Dlogback.configurationFile={CONFIG_DIR}/{LOGBACK_KEY} -Djava.security.properties={CONFIG_DIR}/{JAVA_SECURITY_KEY}",
        super_digest_flag(&format!("$({SUPER_DIGEST_ENV})"))
    );
    if let Some(extra) = &cluster.jvm_flags {
        jvm_flags.push(' ');
        jvm_flags.push_str(extra.trim());
    }
    Container {
        name: ZOOKEEPER_CONTAINER.to_owned(),
        command: Some(strings(&[
            "zkServer.sh",
            "start-foreground",
            &format!("{CONF_DIR}/{ZOO_CFG_KEY}"),
        ])),
        env: Some(vec![
            EnvVar {
                name: SUPER_DIGEST_ENV.to_owned(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: super_secret_name(&cluster.name),
                        key: SUPER_DIGEST_KEY.to_owned(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            env("SERVER_JVMFLAGS", &jvm_flags),
            env("ZOO_LOG_DIR", LOGS_DIR),
        ]),
        ports: Some(vec![
            container_port(CLIENT_PORT_NAME, ports.client),
            container_port(QUORUM_PORT_NAME, ports.quorum),
            container_port(ELECTION_PORT_NAME, ports.election),
            container_port(ADMIN_PORT_NAME, ports.admin),
        ]),
        // Loading a large snapshot can take minutes: the startup probe
        // allows five before liveness takes over.
        startup_probe: Some(http_probe("/livez", 5, 60)),
        liveness_probe: Some(http_probe("/livez", 10, 6)),
        readiness_probe: Some(http_probe("/readyz", 5, 2)),
        volume_mounts: Some(vec![
            mount(CONFIG_VOLUME, CONFIG_DIR, true),
            mount(CONF_VOLUME, CONF_DIR, false),
            mount(DATA_VOLUME, DATA_DIR, false),
            mount(LOGS_VOLUME, LOGS_DIR, false),
            mount(TMP_VOLUME, TMP_DIR, false),
        ]),
        ..container_basics(&cluster.zookeeper)
    }
}

/// `zk-sidecar run`: the election watcher and the HTTP endpoints. It reads
/// the config ZooKeeper runs on and the `myid` the init container wrote.
fn sidecar_container(cluster: &ValidatedCluster) -> Container {
    Container {
        name: SIDECAR_CONTAINER.to_owned(),
        command: Some(strings(&[
            SIDECAR_BINARY,
            "run",
            "--config",
            &format!("{CONF_DIR}/{ZOO_CFG_KEY}"),
            "--myid-file",
            &format!("{DATA_DIR}/myid"),
            "--listen",
            // Both families: the pod IP may be IPv6 (or dual-stack).
            &format!("[::]:{SIDECAR_PORT}"),
        ])),
        // The watcher advertises the pod's address in its election preamble.
        env: Some(vec![field_env("POD_IP", "status.podIP")]),
        ports: Some(vec![container_port(SIDECAR_PORT_NAME, SIDECAR_PORT)]),
        // Only whether the sidecar's server answers at all: its `/livez`
        // speaks for the ZooKeeper container, which restarts on failure.
        liveness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String(SIDECAR_PORT_NAME.to_owned()),
                ..Default::default()
            }),
            period_seconds: Some(10),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount(CONF_VOLUME, CONF_DIR, true),
            mount(DATA_VOLUME, DATA_DIR, true),
        ]),
        ..container_basics(&cluster.sidecar)
    }
}

/// Image, pull policy, resources and the restricted security context every
/// container shares.
fn container_basics(settings: &ContainerSettings) -> Container {
    Container {
        image: Some(settings.image.clone()),
        image_pull_policy: Some(settings.pull_policy.as_str().to_owned()),
        resources: Some(settings.resources.clone()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs as the official image's `zookeeper` user; `fsGroup` makes the data
/// volume writable for it.
fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(ZOOKEEPER_UID),
        run_as_group: Some(ZOOKEEPER_UID),
        fs_group: Some(ZOOKEEPER_UID),
        fs_group_change_policy: Some("OnRootMismatch".to_owned()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Prefer one member per node, so one node failure costs at most one
/// member. Preferred, not required: a small cluster still schedules.
fn spread_across_nodes(cluster: &str) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        topology_key: "kubernetes.io/hostname".to_owned(),
                        label_selector: Some(LabelSelector {
                            match_labels: Some(labels::cluster_selector(cluster)),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn volumes(cluster: &ValidatedCluster) -> Vec<Volume> {
    let empty_dir = |name: &str| Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    };
    vec![
        Volume {
            name: CONFIG_VOLUME.to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(&cluster.name),
                ..Default::default()
            }),
            ..Default::default()
        },
        empty_dir(CONF_VOLUME),
        empty_dir(LOGS_VOLUME),
        empty_dir(TMP_VOLUME),
    ]
}

/// A probe of the ZooKeeper container answered by the sidecar. The port is
/// a number: a kubelet resolves a named probe port only among the probed
/// container's own ports, and `sidecar` is declared on the sidecar's
/// container (a name there fails every probe with `strconv.Atoi`).
fn http_probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(i32::from(SIDECAR_PORT)),
            ..Default::default()
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(2),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(port),
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..Default::default()
    }
}

/// A variable set from a field of the pod (downward API).
fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}
