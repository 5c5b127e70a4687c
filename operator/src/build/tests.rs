use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, PodSpec, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use super::*;
use crate::cluster::validate;
use crate::test_support::Cluster;

fn children_of(cluster: Cluster) -> Children {
    children(&validate(&cluster.build()).unwrap())
}

fn pod_spec(sts: &StatefulSet) -> &PodSpec {
    sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn container<'a>(spec: &'a PodSpec, name: &str) -> &'a Container {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap()
}

#[test]
fn configuration_is_applied_before_the_pods_that_mount_it() {
    let c = children_of(Cluster::test().observers(2));
    let order: Vec<(&str, &str)> = c
        .in_apply_order()
        .iter()
        .map(|child| (child.kind(), child.name()))
        .collect();
    assert_eq!(
        order,
        vec![
            ("ConfigMap", "zk-config"),
            ("ConfigMap", "zk-client"),
            ("Service", "zk-headless"),
            ("Service", "zk-client"),
            ("StatefulSet", "zk"),
            ("StatefulSet", "zk-observer"),
            ("PodDisruptionBudget", "zk"),
        ]
    );
    assert!(children_of(Cluster::test()).observers.is_none());
}

#[test]
fn every_child_is_owned_labelled_and_namespaced() {
    let c = children_of(Cluster::test().namespace("prod"));
    let metas = [
        &c.config.metadata,
        &c.client_config.metadata,
        &c.headless_service.metadata,
        &c.client_service.metadata,
        &c.voters.metadata,
        &c.pod_disruption_budget.metadata,
    ];
    for meta in metas {
        assert_eq!(meta.namespace.as_deref(), Some("prod"));
        let owners = meta.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].name, "zk");
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels[labels::MANAGED_BY], "zookube");
        assert_eq!(labels[labels::INSTANCE], "zk");
    }
}

#[test]
fn the_statefulset_lets_the_operator_order_restarts() {
    let c = children_of(Cluster::test().replicas(5));
    let spec = c.voters.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(5));
    assert_eq!(spec.service_name.as_deref(), Some("zk-headless"));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    assert_eq!(
        spec.update_strategy.as_ref().unwrap().type_.as_deref(),
        Some("OnDelete")
    );
    assert_eq!(
        labels::selector_string(spec.selector.match_labels.as_ref().unwrap()),
        "app.kubernetes.io/component=voter,app.kubernetes.io/instance=zk,app.kubernetes.io/name=zookeeper"
    );
}

#[test]
fn the_pod_template_carries_the_config_hash() {
    let v = validate(&Cluster::test().build()).unwrap();
    let sts = stateful_set(&v, Role::Voter);
    let meta = sts
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    assert_eq!(
        meta.annotations.as_ref().unwrap()[CONFIG_HASH_ANNOTATION],
        v.config.hash
    );
    // The template's labels match the selector.
    let selector = sts
        .spec
        .as_ref()
        .unwrap()
        .selector
        .match_labels
        .as_ref()
        .unwrap();
    let template_labels = meta.labels.as_ref().unwrap();
    assert!(
        selector
            .iter()
            .all(|(k, v)| template_labels.get(k) == Some(v))
    );
}

#[test]
fn the_init_container_gets_the_role_of_its_statefulset() {
    let c = children_of(Cluster::test().observers(1));
    for (sts, role) in [
        (&c.voters, "voter"),
        (c.observers.as_ref().unwrap(), "observer"),
    ] {
        let init = container(pod_spec(sts), INIT_CONTAINER);
        assert_eq!(
            init.command.as_ref().unwrap().join(" "),
            format!(
                "zk-sidecar init --config /config/zoo.cfg --data-dir /data --role {role} --conf-dir /conf"
            )
        );
    }
}

#[test]
fn the_init_container_reads_its_ordinal_from_the_pod_index_label() {
    let c = children_of(Cluster::test().observers(1));
    for sts in [&c.voters, c.observers.as_ref().unwrap()] {
        let spec = pod_spec(sts);
        let init = container(spec, INIT_CONTAINER);
        let env: Vec<(&str, Option<&str>)> = init
            .env
            .iter()
            .flatten()
            .map(|e| {
                let field = e.value_from.as_ref().and_then(|v| v.field_ref.as_ref());
                (e.name.as_str(), field.map(|f| f.field_path.as_str()))
            })
            .collect();
        assert_eq!(
            env,
            vec![(
                "POD_INDEX",
                Some("metadata.labels['apps.kubernetes.io/pod-index']")
            )]
        );
        // No --ordinal: without the label (before Kubernetes 1.28) the
        // variable is empty and `init` falls back to the host name.
        assert!(!init.command.iter().flatten().any(|arg| arg == "--ordinal"));
        // Only `init` reads the ordinal; the others read the myid it wrote.
        for name in [ZOOKEEPER_CONTAINER, SIDECAR_CONTAINER] {
            let other = container(spec, name);
            assert!(!other.env.iter().flatten().any(|e| e.name == "POD_INDEX"));
        }
    }
}

#[test]
fn containers_run_the_agreed_commands() {
    let c = children_of(Cluster::test());
    let spec = pod_spec(&c.voters);
    assert_eq!(
        container(spec, ZOOKEEPER_CONTAINER)
            .command
            .as_ref()
            .unwrap()
            .join(" "),
        "zkServer.sh start-foreground /conf/zoo.cfg"
    );
    let sidecar = container(spec, SIDECAR_CONTAINER);
    assert_eq!(
        sidecar.command.as_ref().unwrap().join(" "),
        "zk-sidecar run --config /conf/zoo.cfg --myid-file /data/myid --listen [::]:8081"
    );
    // `--advertise` defaults to $POD_IP.
    let pod_ip = &sidecar.env.as_ref().unwrap()[0];
    assert_eq!(pod_ip.name, "POD_IP");
    let source = pod_ip.value_from.as_ref().unwrap();
    assert_eq!(
        source.field_ref.as_ref().unwrap().field_path,
        "status.podIP"
    );
}

#[test]
fn every_mount_has_a_volume_and_every_probe_a_port_of_its_own_container() {
    let c = children_of(Cluster::test().observers(1));
    for sts in [&c.voters, c.observers.as_ref().unwrap()] {
        let spec = pod_spec(sts);
        let mut volumes: BTreeSet<&str> = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        volumes.extend(
            sts.spec
                .as_ref()
                .unwrap()
                .volume_claim_templates
                .iter()
                .flatten()
                .filter_map(|pvc| pvc.metadata.name.as_deref()),
        );
        // A number may be any container's port (the pod shares one network
        // namespace); a name resolves only among the probed container's own
        // ports — a kubelet fails the probe otherwise.
        let pod_ports: BTreeSet<i32> = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .map(|p| p.container_port)
            .collect();
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            for mount in c.volume_mounts.iter().flatten() {
                assert!(volumes.contains(mount.name.as_str()), "{}", mount.name);
            }
            let own_ports: BTreeSet<&str> = c
                .ports
                .iter()
                .flatten()
                .filter_map(|p| p.name.as_deref())
                .collect();
            let probes = [&c.liveness_probe, &c.readiness_probe, &c.startup_probe];
            for probe in probes.into_iter().flatten() {
                let port = probe
                    .http_get
                    .as_ref()
                    .map(|h| &h.port)
                    .or(probe.tcp_socket.as_ref().map(|t| &t.port))
                    .unwrap_or_else(|| panic!("a probe without a port: {probe:?}"));
                match port {
                    IntOrString::String(name) => assert!(
                        own_ports.contains(name.as_str()),
                        "container {} probes the port {name:?}, which it does not declare",
                        c.name
                    ),
                    IntOrString::Int(number) => assert!(
                        pod_ports.contains(number),
                        "container {} probes port {number}, which no container declares",
                        c.name
                    ),
                }
            }
        }
    }
    let spec = pod_spec(&c.voters);
    let zookeeper = container(spec, ZOOKEEPER_CONTAINER);
    let paths = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap()
    };
    assert_eq!(paths(&zookeeper.liveness_probe), "/livez");
    assert_eq!(paths(&zookeeper.startup_probe), "/livez");
    assert_eq!(paths(&zookeeper.readiness_probe), "/readyz");
}

#[test]
fn every_container_is_locked_down() {
    let c = children_of(Cluster::test());
    let spec = pod_spec(&c.voters);
    let pod = spec.security_context.as_ref().unwrap();
    assert_eq!(pod.run_as_non_root, Some(true));
    assert_eq!(pod.fs_group, Some(ZOOKEEPER_UID));
    assert_eq!(
        pod.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    assert_eq!(spec.automount_service_account_token, Some(false));
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_owned()][..]),
            "{}",
            c.name
        );
    }
}

#[test]
fn members_prefer_separate_nodes_unless_the_user_says_otherwise() {
    let c = children_of(Cluster::test());
    let affinity = pod_spec(&c.voters).affinity.as_ref().unwrap();
    let terms = affinity
        .pod_anti_affinity
        .as_ref()
        .unwrap()
        .preferred_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap();
    assert_eq!(
        terms[0].pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );

    let own = children_of(Cluster::test().with(|s| {
        s.pod.affinity = Some(Default::default());
        s.pod.tolerations = vec![Toleration {
            key: Some("dedicated".into()),
            ..Default::default()
        }];
    }));
    let spec = pod_spec(&own.voters);
    assert_eq!(spec.affinity, Some(Default::default()));
    assert_eq!(spec.tolerations.as_ref().unwrap().len(), 1);
    assert_eq!(pod_spec(&c.voters).tolerations, None, "no empty lists");
}

#[test]
fn user_pod_labels_and_annotations_are_added() {
    let c = children_of(Cluster::test().with(|s| {
        s.pod.labels.insert("team".into(), "data".into());
        s.pod
            .annotations
            .insert("example.com/owner".into(), "data".into());
    }));
    let meta = c
        .voters
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    assert_eq!(meta.labels.as_ref().unwrap()["team"], "data");
    assert_eq!(
        meta.annotations.as_ref().unwrap()["example.com/owner"],
        "data"
    );
}

#[test]
fn prometheus_finds_the_sidecars_metrics_unless_the_user_says_otherwise() {
    let c = children_of(Cluster::test().observers(1));
    for set in [&c.voters, c.observers.as_ref().unwrap()] {
        let annotations = set
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap();
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert_eq!(annotations["prometheus.io/port"], SIDECAR_PORT.to_string());
        assert_eq!(annotations["prometheus.io/path"], "/metrics");
    }
    let opted_out = children_of(Cluster::test().with(|s| {
        s.pod
            .annotations
            .insert("prometheus.io/scrape".into(), "false".into());
    }));
    let meta = opted_out.voters.spec.unwrap().template.metadata.unwrap();
    assert_eq!(meta.annotations.unwrap()["prometheus.io/scrape"], "false");
}

#[test]
fn the_budget_keeps_a_quorum_of_voters() {
    for (voters, quorum) in [(1, 1), (3, 2), (5, 3), (7, 4)] {
        let pdb = children_of(Cluster::test().replicas(voters)).pod_disruption_budget;
        let spec = pdb.spec.unwrap();
        assert_eq!(
            spec.min_available,
            Some(IntOrString::Int(quorum)),
            "{voters}"
        );
        assert_eq!(
            labels::selector_string(spec.selector.unwrap().match_labels.as_ref().unwrap()),
            "app.kubernetes.io/component=voter,app.kubernetes.io/instance=zk,app.kubernetes.io/name=zookeeper"
        );
    }
}

#[test]
fn members_find_each_other_before_they_are_ready() {
    let c = children_of(Cluster::test());
    let spec = c.headless_service.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    let ports: Vec<i32> = spec.ports.unwrap().iter().map(|p| p.port).collect();
    assert_eq!(ports, vec![2888, 3888]);
    let client = c.client_service.spec.unwrap();
    assert_eq!(client.ports.unwrap()[0].port, 2181);
    assert_eq!(client.publish_not_ready_addresses, None);
}

#[test]
fn the_client_config_map_lists_every_member_and_the_service() {
    let c = children_of(Cluster::test().namespace("prod").observers(1));
    let data = c.client_config.data.unwrap();
    assert_eq!(
        data["ZOOKEEPER_CONNECT"],
        "zk-0.zk-headless.prod.svc.cluster.local:2181,zk-1.zk-headless.prod.svc.cluster.local:2181,zk-2.zk-headless.prod.svc.cluster.local:2181,zk-observer-0.zk-headless.prod.svc.cluster.local:2181"
    );
    assert_eq!(
        data["ZOOKEEPER_SERVICE"],
        "zk-client.prod.svc.cluster.local:2181"
    );
}

#[test]
fn the_config_map_holds_what_the_containers_read() {
    let v = validate(&Cluster::test().build()).unwrap();
    let data = config_map(&v).data.unwrap();
    assert_eq!(data[ZOO_CFG_KEY], v.config.zoo_cfg);
    assert_eq!(data[LOGBACK_KEY], LOGBACK_XML);
    // No cache of resolved names: a restarted pod's new IP is what a
    // follower connects to when that pod comes to lead.
    assert_eq!(
        data[JAVA_SECURITY_KEY],
        "networkaddress.cache.ttl=0\nnetworkaddress.cache.negative.ttl=0\n"
    );
    let c = children(&v);
    let zookeeper = container(pod_spec(&c.voters), ZOOKEEPER_CONTAINER);
    let flags = zookeeper
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "SERVER_JVMFLAGS")
        .and_then(|e| e.value.clone())
        .unwrap();
    assert_eq!(
        flags,
        "-Dzookeeper.DigestAuthenticationProvider.superDigest=$(ZK_SUPER_DIGEST) -Dlogback.configurationFile=/config/logback.xml -Djava.security.properties=/config/java.security"
    );
    // The digest comes from the super user's Secret, defined before the
    // flags that expand it; the ConfigMap never holds it.
    let env = zookeeper.env.as_ref().unwrap();
    assert_eq!(env[0].name, "ZK_SUPER_DIGEST");
    let secret = env[0]
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("zk-super", "digest")
    );
    assert!(!data[ZOO_CFG_KEY].contains("superDigest"));
}

#[test]
fn user_jvm_flags_come_last() {
    let c = children_of(Cluster::test().with(|s| s.jvm_flags = Some(" -Xmx2g ".into())));
    let zookeeper = container(pod_spec(&c.voters), ZOOKEEPER_CONTAINER);
    let flags = zookeeper.env.as_ref().unwrap()[1].value.clone().unwrap();
    assert!(
        flags.ends_with("-Djava.security.properties=/config/java.security -Xmx2g"),
        "{flags}"
    );
}

#[test]
fn volume_retention_and_size_follow_the_spec() {
    use crate::crd::RetentionPolicy;
    let c = children_of(Cluster::test().with(|s| {
        s.storage.size = Quantity("50Gi".into());
        s.storage.storage_class_name = Some("fast".into());
        s.storage.when_deleted = Some(RetentionPolicy::Delete);
    }));
    let spec = c.voters.spec.as_ref().unwrap();
    let retention = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Delete"));
    assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
    let pvc = &spec.volume_claim_templates.as_ref().unwrap()[0];
    let pvc_spec = pvc.spec.as_ref().unwrap();
    assert_eq!(pvc_spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        pvc_spec
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"],
        Quantity("50Gi".into())
    );
}

#[test]
fn every_child_carries_the_hash_of_what_was_built() {
    let hash = |c: &Children| -> Vec<String> {
        c.in_apply_order()
            .iter()
            .map(|child| {
                let value = serde_json::to_value(child).unwrap();
                value["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let three = hash(&children_of(Cluster::test()));
    assert_eq!(three, hash(&children_of(Cluster::test())), "deterministic");
    let five = hash(&children_of(Cluster::test().replicas(5)));
    // Five voters change the config, the discovery map, the StatefulSet and
    // the budget; the Services stay as they were.
    let changed: Vec<bool> = three.iter().zip(&five).map(|(a, b)| a != b).collect();
    assert_eq!(changed, vec![true, true, false, false, true, true]);
}

fn with_policy(change: impl FnOnce(&mut crate::crd::NetworkPolicySpec)) -> Cluster {
    Cluster::test().with(|s| {
        s.network_policy.enabled = true;
        change(&mut s.network_policy);
    })
}

fn peer(namespace: Option<(&str, &str)>, pod: Option<(&str, &str)>) -> crate::crd::NetworkPeer {
    let select = |(k, v): (&str, &str)| LabelSelector {
        match_labels: Some([(k.to_owned(), v.to_owned())].into()),
        ..Default::default()
    };
    crate::crd::NetworkPeer {
        namespace_selector: namespace.map(select),
        pod_selector: pod.map(select),
    }
}

#[test]
fn the_network_policy_exists_only_when_enabled() {
    let c = children_of(Cluster::test());
    assert!(c.network_policy.is_none());
    assert!(
        c.in_apply_order()
            .iter()
            .all(|ch| ch.kind() != "NetworkPolicy")
    );

    let c = children_of(with_policy(|_| {}).observers(1));
    let order: Vec<&str> = c.in_apply_order().iter().map(|ch| ch.kind()).collect();
    let policy = order.iter().position(|k| *k == "NetworkPolicy").unwrap();
    let first_sts = order.iter().position(|k| *k == "StatefulSet").unwrap();
    assert!(policy < first_sts, "{order:?}");
    let np = c.network_policy.as_ref().unwrap();
    assert_eq!(np.metadata.name.as_deref(), Some("zk"));
    assert_eq!(np.metadata.namespace.as_deref(), Some("default"));
    assert!(np.metadata.owner_references.is_some());
    let spec = np.spec.as_ref().unwrap();
    // Voters and observers alike.
    assert_eq!(
        spec.pod_selector.as_ref().unwrap().match_labels,
        Some(labels::cluster_selector("zk"))
    );
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_owned()]));
}

/// An ingress rule as `(from, ports)`.
type Rule = (Value, Vec<i64>);

#[test]
fn the_network_policy_admits_what_an_ensemble_needs() {
    let members = json!([{"podSelector": {"matchLabels": {
        "app.kubernetes.io/instance": "zk", "app.kubernetes.io/name": "zookeeper"}}}]);
    let operator = json!([{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "zookube-system"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "zk-operator"}}}]);
    let same_namespace = json!([{"podSelector": {}}]);
    let monitoring = json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]);
    let apps = json!([{"podSelector": {"matchLabels": {"zk-client": "true"}}}]);
    let ops = json!([{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}},
        "podSelector": {"matchLabels": {"app": "zk-operator"}}}]);
    let cases: Vec<(&str, Cluster, Vec<Rule>)> = vec![
        (
            "defaults",
            with_policy(|_| {}),
            vec![
                (members.clone(), vec![2888, 3888]),
                (same_namespace.clone(), vec![2181]),
                (operator.clone(), vec![8081, 2181]),
            ],
        ),
        (
            "other ports",
            with_policy(|_| {}).with(|s| {
                s.ports.client = 12181;
                s.ports.quorum = 12888;
                s.ports.election = 13888;
            }),
            vec![
                (members.clone(), vec![12888, 13888]),
                (same_namespace.clone(), vec![12181]),
                (operator.clone(), vec![8081, 12181]),
            ],
        ),
        (
            "chosen clients, operator and prometheus",
            with_policy(|p| {
                p.clients = Some(vec![peer(None, Some(("zk-client", "true")))]);
                p.operator = Some(peer(
                    Some(("kubernetes.io/metadata.name", "ops")),
                    Some(("app", "zk-operator")),
                ));
                p.prometheus = vec![peer(
                    Some(("kubernetes.io/metadata.name", "monitoring")),
                    None,
                )];
            }),
            vec![
                (members.clone(), vec![2888, 3888]),
                (apps, vec![2181]),
                (ops, vec![8081, 2181]),
                (monitoring, vec![8081]),
            ],
        ),
        (
            "no clients: no rule, which would otherwise admit everyone",
            with_policy(|p| p.clients = Some(Vec::new())),
            vec![
                (members.clone(), vec![2888, 3888]),
                (operator.clone(), vec![8081, 2181]),
            ],
        ),
    ];
    for (case, cluster, expected) in cases {
        let c = children_of(cluster);
        let spec = c.network_policy.unwrap().spec.unwrap();
        let rules: Vec<Rule> = spec
            .ingress
            .unwrap()
            .into_iter()
            .map(|rule| {
                let ports = rule.ports.unwrap();
                assert!(
                    ports.iter().all(|p| p.protocol.as_deref() == Some("TCP")),
                    "{case}"
                );
                let ports = ports
                    .into_iter()
                    .map(|p| match p.port {
                        Some(IntOrString::Int(n)) => i64::from(n),
                        other => panic!("{case}: port {other:?}"),
                    })
                    .collect();
                (serde_json::to_value(rule.from.unwrap()).unwrap(), ports)
            })
            .collect();
        assert_eq!(rules, expected, "{case}");
    }
}
