use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use zk_ensemble::messages as ensemble_messages;

use super::*;
use crate::test_support::Cluster;

fn problems(cluster: Cluster) -> Vec<FieldProblem> {
    validate(&cluster.build())
        .expect_err("the cluster is invalid")
        .problems
}

fn fields(problems: &[FieldProblem]) -> Vec<(&str, &str)> {
    problems
        .iter()
        .map(|p| (p.field.as_str(), p.message.as_str()))
        .collect()
}

#[test]
fn the_minimal_cluster_gets_every_default() {
    let v = validate(&Cluster::test().build()).unwrap();
    assert_eq!((v.name.as_str(), v.namespace.as_str()), ("zk", "default"));
    assert_eq!((v.ensemble.voters, v.ensemble.observers), (3, 0));
    assert_eq!(v.ensemble.cluster_domain, "cluster.local");
    assert_eq!(v.zookeeper.image, "zookeeper:3.9.4");
    assert_eq!(v.sidecar.image, crd::DEFAULT_SIDECAR_IMAGE);
    assert_eq!(v.zookeeper.pull_policy, PullPolicy::IfNotPresent);
    assert_eq!(v.storage.size, Quantity("10Gi".into()));
    assert_eq!(v.storage.when_deleted, RetentionPolicy::Retain);
    assert_eq!(v.storage.when_scaled, RetentionPolicy::Retain);
    assert_eq!(v.config.hash.len(), 16);
    assert!(v.config.hash.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        v.config.zoo_cfg.contains(
            "server.3=zk-2.zk-headless.default.svc.cluster.local:2888:3888:participant;2181\n"
        ),
        "{}",
        v.config.zoo_cfg
    );
}

#[test]
fn quorum_tls_is_rendered_for_local_runs_and_refused_on_kubernetes_by_name() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/tls.yaml"))
            .expect("the TLS example");
    let cluster = parse_cluster(&text, None).expect("parses");
    let local = validate(&cluster).expect("valid for zk-operator local");
    assert!(local.ensemble.quorum_tls);
    assert!(
        local.config.zoo_cfg.contains("sslQuorum=true\n"),
        "{}",
        local.config.zoo_cfg
    );
    let refused =
        validate_for_kubernetes(&cluster, &Defaults::default()).expect_err("not on Kubernetes yet");
    assert_eq!(
        fields(&refused.problems),
        [("spec.tls", messages::TLS_LOCAL_ONLY)]
    );
    assert!(validate_for_kubernetes(&Cluster::test().build(), &Defaults::default()).is_ok());
}

#[test]
fn the_owner_reference_needs_a_uid() {
    let owner = validate(&Cluster::test().build()).unwrap().owner.unwrap();
    assert_eq!(owner.kind, "ZookeeperCluster");
    assert_eq!(owner.api_version, "zookube.io/v1alpha1");
    assert_eq!(owner.controller, Some(true));
    assert!(
        validate(&Cluster::test().without_uid().build())
            .unwrap()
            .owner
            .is_none()
    );
}

#[test]
fn typed_settings_reach_zoo_cfg_and_extra_keys_win() {
    let v = validate(
        &Cluster::test()
            .with(|s| {
                s.config.tick_time = Some(3000);
                s.config.init_limit = Some(20);
                s.config.max_client_cnxns = Some(0);
                s.config.autopurge_purge_interval = Some(0);
                s.config.extra.insert("syncLimit".into(), "7".into());
                s.config
                    .extra
                    .insert("globalOutstandingLimit".into(), "2000".into());
            })
            .build(),
    )
    .unwrap();
    for line in [
        "tickTime=3000\n",
        "initLimit=20\n",
        "syncLimit=7\n",
        "maxClientCnxns=0\n",
        "autopurge.purgeInterval=0\n",
        "globalOutstandingLimit=2000\n",
    ] {
        assert!(v.config.zoo_cfg.contains(line), "{line}");
    }
}

#[test]
fn the_sidecar_image_comes_from_the_cluster_then_the_operator() {
    let defaults = Defaults {
        sidecar_image: "registry.local/zk-sidecar:dev".into(),
    };
    let v = validate_with(&Cluster::test().build(), &defaults).unwrap();
    assert_eq!(v.sidecar.image, "registry.local/zk-sidecar:dev");
    let own = Cluster::test().with(|s| s.sidecar.image = Some("mine:1".into()));
    assert_eq!(
        validate_with(&own.build(), &defaults)
            .unwrap()
            .sidecar
            .image,
        "mine:1"
    );
}

#[test]
fn even_replicas_are_refused_with_the_cel_message() {
    let problems = problems(Cluster::test().replicas(4));
    assert_eq!(
        fields(&problems),
        vec![("spec.replicas", ensemble_messages::REPLICAS_ODD)]
    );
    assert_eq!(
        problems[0].to_string(),
        format!("spec.replicas = 4: {}", ensemble_messages::REPLICAS_ODD)
    );
}

#[test]
fn replicas_out_of_range_are_refused() {
    assert_eq!(
        fields(&problems(Cluster::test().replicas(17))),
        vec![("spec.replicas", ensemble_messages::REPLICAS_RANGE)]
    );
    assert_eq!(
        fields(&problems(Cluster::test().replicas(0))),
        vec![
            ("spec.replicas", ensemble_messages::REPLICAS_ODD),
            ("spec.replicas", ensemble_messages::REPLICAS_RANGE)
        ]
    );
    assert_eq!(
        fields(&problems(Cluster::test().replicas(-3))),
        vec![
            ("spec.replicas", ensemble_messages::REPLICAS_ODD),
            ("spec.replicas", ensemble_messages::REPLICAS_RANGE)
        ]
    );
}

#[test]
fn observers_out_of_range_are_refused() {
    for observers in [-1, 101] {
        assert_eq!(
            fields(&problems(Cluster::test().observers(observers))),
            vec![("spec.observers", ensemble_messages::OBSERVERS_RANGE)]
        );
    }
    assert!(validate(&Cluster::test().observers(100).build()).is_ok());
}

#[test]
fn keys_zookube_owns_are_refused_in_extra() {
    let problems = problems(Cluster::test().with(|s| {
        s.config.extra.insert("dataDir".into(), "/tmp".into());
        s.config.extra.insert("server.9".into(), "x:1:2".into());
    }));
    assert_eq!(
        fields(&problems),
        vec![
            ("spec.config.extra.dataDir", ensemble_messages::EXTRA_OWNED),
            ("spec.config.extra.server.9", ensemble_messages::EXTRA_OWNED),
        ]
    );
}

#[test]
fn malformed_extra_keys_and_values_are_named() {
    let problems = problems(Cluster::test().with(|s| {
        s.config.extra.insert("bad key".into(), "1".into());
        s.config
            .extra
            .insert("jute.maxbuffer".into(), "1\n2".into());
    }));
    assert_eq!(
        problems
            .iter()
            .map(|p| p.field.as_str())
            .collect::<Vec<_>>(),
        vec![
            "spec.config.extra.bad key",
            "spec.config.extra.jute.maxbuffer"
        ]
    );
}

#[test]
fn ports_must_differ_and_spare_the_sidecar() {
    for change in [
        (|s: &mut ZookeeperClusterSpec| s.ports.admin = 2181) as fn(&mut ZookeeperClusterSpec),
        |s| s.ports.admin = 8081,
    ] {
        assert_eq!(
            fields(&problems(Cluster::test().with(change))),
            vec![("spec.ports", messages::PORTS_DISTINCT)]
        );
    }
    let problems = problems(Cluster::test().with(|s| s.ports.client = 70000));
    assert_eq!(problems[0].field, "spec.ports.client");
}

#[test]
fn the_tls_client_port_is_a_port_of_its_own() {
    for port in [2181, 3888, 8081] {
        let problems = problems(Cluster::test().with(|s| {
            s.tls.client = Some(crd::ClientTlsSpec {
                port,
                ..Default::default()
            });
        }));
        assert_eq!(
            fields(&problems),
            vec![("spec.tls.client.port", messages::SECURE_CLIENT_PORT)],
            "{port}"
        );
    }
    let v = validate(
        &Cluster::test()
            .with(|s| s.tls.client = Some(Default::default()))
            .build(),
    )
    .expect("the default TLS port is free");
    assert_eq!(v.ensemble.ports.secure_client, 2281);
    assert!(v.config.zoo_cfg.contains("secureClientPort=2281\n"));
    assert!(v.config.zoo_cfg.contains("ssl.clientAuth=need\n"));
}

#[test]
fn owned_pod_labels_are_refused() {
    let problems = problems(Cluster::test().with(|s| {
        s.pod
            .labels
            .insert("zookube.io/role".into(), "leader".into());
        s.pod.labels.insert("team".into(), "data".into());
    }));
    assert_eq!(
        fields(&problems),
        vec![(
            r#"spec.pod.labels["zookube.io/role"]"#,
            messages::POD_LABELS_OWNED
        )]
    );
}

#[test]
fn settings_below_their_minimum_are_named_with_their_value() {
    let problems = problems(Cluster::test().with(|s| {
        s.config.tick_time = Some(0);
        s.config.max_client_cnxns = Some(-1);
        s.config.autopurge_snap_retain_count = Some(1);
    }));
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        vec![
            "spec.config.tickTime = 0: must be at least 1; remove it to use zookube's default",
            "spec.config.maxClientCnxns = -1: must be at least 0; remove it to use zookube's default",
            "spec.config.autopurgeSnapRetainCount = 1: must be at least 3; remove it to use zookube's default",
        ]
    );
}

#[test]
fn a_bad_storage_size_or_image_or_domain_is_named() {
    let problems = problems(Cluster::test().with(|s| {
        s.storage.size = Quantity("10GB".into());
        s.image = Some("zookeeper 3.9".into());
        s.cluster_domain = Some("Cluster.Local".into());
    }));
    assert_eq!(
        problems
            .iter()
            .map(|p| p.field.as_str())
            .collect::<Vec<_>>(),
        vec!["spec.storage.size", "spec.image", "spec.clusterDomain"]
    );
}

#[test]
fn names_must_make_valid_pod_names() {
    let long = "z".repeat(41);
    assert_eq!(
        fields(&problems(Cluster::test().name(&long))),
        vec![("metadata.name", messages::NAME_LENGTH)]
    );
    assert_eq!(
        problems(Cluster::test().name("Zk"))[0].field,
        "metadata.name"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let invalid = validate(
        &Cluster::test()
            .replicas(4)
            .observers(101)
            .with(|s| {
                s.config.extra.insert("clientPort".into(), "1".into());
            })
            .build(),
    )
    .unwrap_err();
    assert_eq!(invalid.problems.len(), 3);
    let text = invalid.to_string();
    assert!(text.contains(ensemble_messages::REPLICAS_ODD), "{text}");
    assert!(text.contains(ensemble_messages::OBSERVERS_RANGE), "{text}");
    assert!(text.contains(ensemble_messages::EXTRA_OWNED), "{text}");
}

#[test]
fn the_config_hash_follows_the_rendered_settings_only() {
    let hash = |c: Cluster| validate(&c.build()).unwrap().config.hash;
    let base = hash(Cluster::test());
    assert_eq!(base, hash(Cluster::test()), "rendering is deterministic");
    assert_eq!(
        base,
        hash(Cluster::test().with(|s| s.image = Some("zookeeper:3.9.3".into()))),
        "the image is not configuration"
    );
    assert_eq!(
        base,
        hash(Cluster::test().replicas(5)),
        "the server list changes through reconfig, without restarts"
    );
    assert_ne!(
        base,
        hash(Cluster::test().with(|s| s.config.tick_time = Some(3000)))
    );
    assert_ne!(base, hash(Cluster::test().namespace("prod")));
}

#[test]
fn config_hash_separates_names_from_contents() {
    assert_ne!(config_hash(&[("a", "bc")]), config_hash(&[("ab", "c")]));
}

#[test]
fn what_the_statefulset_api_would_refuse_is_named_with_its_field() {
    use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
    let quantities = |pairs: &[(&str, &str)]| {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
                .collect(),
        )
    };
    let found = problems(Cluster::test().with(|s| {
        s.pod.labels.insert("team".into(), "data science".into());
        s.pod.labels.insert("-team".into(), "data".into());
        s.pod
            .annotations
            .insert("example.com/a/b".into(), "x".into());
        s.resources = Some(ResourceRequirements {
            requests: quantities(&[("memory", "4Gi"), ("cpu", "1")]),
            limits: quantities(&[("memory", "2Gi"), ("cpu", "2")]),
            ..Default::default()
        });
        s.sidecar.resources = Some(ResourceRequirements {
            requests: quantities(&[("cpu", "500m")]),
            limits: quantities(&[("cpu", "0.1")]),
            ..Default::default()
        });
        s.pod.tolerations = vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            value: Some("zk".into()),
            ..Default::default()
        }];
    }));
    let fields: Vec<&str> = found.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            r#"spec.pod.labels["-team"]"#,
            r#"spec.pod.labels["team"]"#,
            r#"spec.pod.annotations["example.com/a/b"]"#,
            r#"spec.resources.requests["memory"]"#,
            r#"spec.sidecar.resources.requests["cpu"]"#,
            "spec.pod.tolerations[0].value",
        ],
        "{found:#?}"
    );
}
