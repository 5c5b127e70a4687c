//! The CRD's CEL rules, evaluated without a cluster (kube's `cel` feature),
//! and their agreement with the operator's own validation: whatever a rule
//! refuses at admission, `cluster::validate` refuses with the same message.

use kube::CustomResourceExt;
use kube::core::cel::{self, Validator};
use serde_json::{Value, json};
use zk_ensemble::messages as ensemble_messages;
use zk_operator::cluster;
use zk_operator::crd::{ZookeeperCluster, messages};
use zk_operator::test_support::Cluster;

/// The messages of the rules `cluster` breaks, as the API server would list them.
fn cel_messages(cluster: &ZookeeperCluster) -> Vec<String> {
    match cel::validate_cel(cluster) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

/// The messages `cluster::validate` gives.
fn operator_messages(cluster: &ZookeeperCluster) -> Vec<String> {
    match cluster::validate(cluster) {
        Ok(_) => Vec::new(),
        Err(invalid) => invalid.problems.into_iter().map(|p| p.message).collect(),
    }
}

/// A rule refuses `cluster` with exactly `expected`, and the operator agrees.
#[track_caller]
fn refused(cluster: Cluster, expected: &[&str]) {
    let cluster = cluster.build();
    let mut cel = cel_messages(&cluster);
    cel.sort();
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(cel, want, "CEL");
    let mut operator = operator_messages(&cluster);
    operator.sort();
    assert_eq!(operator, want, "operator");
}

#[track_caller]
fn admitted(cluster: Cluster) {
    let cluster = cluster.build();
    assert_eq!(cel_messages(&cluster), Vec::<String>::new(), "CEL");
    assert_eq!(
        operator_messages(&cluster),
        Vec::<String>::new(),
        "operator"
    );
}

#[test]
fn odd_replicas_from_1_to_15_are_admitted() {
    for replicas in [1, 3, 5, 7, 9, 11, 13, 15] {
        admitted(Cluster::test().replicas(replicas));
    }
}

#[test]
fn even_replicas_are_refused_with_the_reason() {
    for replicas in [2, 4, 6, 14] {
        refused(
            Cluster::test().replicas(replicas),
            &[ensemble_messages::REPLICAS_ODD],
        );
    }
}

#[test]
fn replicas_outside_1_to_15_are_refused() {
    refused(
        Cluster::test().replicas(17),
        &[ensemble_messages::REPLICAS_RANGE],
    );
    refused(
        Cluster::test().replicas(0),
        &[
            ensemble_messages::REPLICAS_ODD,
            ensemble_messages::REPLICAS_RANGE,
        ],
    );
    refused(
        Cluster::test().replicas(-1),
        &[
            ensemble_messages::REPLICAS_ODD,
            ensemble_messages::REPLICAS_RANGE,
        ],
    );
}

#[test]
fn observers_from_0_to_100_are_admitted() {
    for observers in [0, 1, 100] {
        admitted(Cluster::test().observers(observers));
    }
    for observers in [-1, 101] {
        refused(
            Cluster::test().observers(observers),
            &[ensemble_messages::OBSERVERS_RANGE],
        );
    }
}

#[test]
fn extra_keys_zookube_owns_are_refused() {
    for key in [
        "dataDir",
        "dataLogDir",
        "clientPort",
        "dynamicConfigFile",
        "standaloneEnabled",
        "reconfigEnabled",
        "myid",
        "server.1",
        "server.200",
    ] {
        refused(
            Cluster::test().with(|s| {
                s.config.extra.insert(key.into(), "x".into());
            }),
            &[ensemble_messages::EXTRA_OWNED],
        );
    }
    admitted(Cluster::test().with(|s| {
        s.config
            .extra
            .insert("serverCnxnFactory".into(), "x".into());
        s.config
            .extra
            .insert("jute.maxbuffer".into(), "4194304".into());
    }));
}

#[test]
fn pod_labels_zookube_sets_are_refused() {
    refused(
        Cluster::test().with(|s| {
            s.pod
                .labels
                .insert("app.kubernetes.io/instance".into(), "other".into());
        }),
        &[messages::POD_LABELS_OWNED],
    );
    admitted(Cluster::test().with(|s| {
        s.pod.labels.insert("team".into(), "data".into());
    }));
}

#[test]
fn ports_must_differ_and_keep_8081_free() {
    refused(
        Cluster::test().with(|s| s.ports.quorum = 3888),
        &[messages::PORTS_DISTINCT],
    );
    refused(
        Cluster::test().with(|s| s.ports.admin = 8081),
        &[messages::PORTS_DISTINCT],
    );
    admitted(Cluster::test().with(|s| s.ports.admin = 9090));
}

#[test]
fn names_longer_than_40_characters_are_refused() {
    refused(
        Cluster::test().name(&"z".repeat(41)),
        &[messages::NAME_LENGTH],
    );
    admitted(Cluster::test().name(&"z".repeat(40)));
}

/// The messages of the transition rules (with `oldSelf`) that updating
/// `old` to `new` breaks; they run only on updates.
fn update_messages(new: Cluster, old: Cluster) -> Vec<String> {
    match cel::validate_cel_update(&new.build(), &old.build()) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

fn class(name: Option<&str>) -> Cluster {
    Cluster::test().with(|s| s.storage.storage_class_name = name.map(str::to_owned))
}

fn size(size: &str) -> Cluster {
    Cluster::test().with(|s| s.storage.size.0 = size.to_owned())
}

#[test]
fn storage_size_is_fixed_at_creation() {
    assert_eq!(
        update_messages(size("20Gi"), size("10Gi")),
        vec![messages::STORAGE_SIZE_IMMUTABLE]
    );
    assert_eq!(
        update_messages(size("10Gi"), size("10Gi")),
        Vec::<String>::new()
    );
    assert_eq!(
        update_messages(Cluster::test().replicas(5), Cluster::test()),
        Vec::<String>::new(),
        "scaling is an update too"
    );
}

/// The StatefulSet's volume claim template takes the class as it is at
/// creation; the API server refuses every later change to it, including
/// setting one that was not set and removing one that was (which a rule on
/// the optional field itself would not see).
#[test]
fn storage_class_is_fixed_at_creation_whether_set_or_not() {
    let cases = [
        ("added", None, Some("fast"), true),
        ("removed", Some("fast"), None, true),
        ("changed", Some("fast"), Some("slow"), true),
        ("kept", Some("fast"), Some("fast"), false),
        ("never set", None, None, false),
    ];
    for (case, old, new, refused) in cases {
        let want = if refused {
            vec![messages::STORAGE_CLASS_IMMUTABLE.to_owned()]
        } else {
            Vec::new()
        };
        assert_eq!(update_messages(class(new), class(old)), want, "{case}");
    }
}

/// Every rule in the CRD, with the schema node it is attached to.
fn rules(node: &Value, path: &str, out: &mut Vec<(String, String, Value)>) {
    if let Some(list) = node
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in list {
            let text = rule["rule"].as_str().unwrap_or_default().to_owned();
            // A rule without a message says only "failed rule: …".
            assert!(rule["message"].is_string(), "{path}: {text} has no message");
            out.push((path.to_owned(), text, node.clone()));
        }
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            rules(child, &format!("{path}.{name}"), out);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = node.get(key).filter(|c| c.is_object()) {
            rules(child, &format!("{path}[*]"), out);
        }
    }
}

#[test]
fn every_rule_has_a_message_and_fits_the_cost_budget() {
    let crd = serde_json::to_value(ZookeeperCluster::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut found = Vec::new();
    rules(schema, "", &mut found);
    let paths: Vec<&str> = found.iter().map(|(path, _, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "",
            ".spec.config.extra",
            ".spec.networkPolicy.clients[*]",
            ".spec.networkPolicy.operator",
            ".spec.networkPolicy.prometheus[*]",
            ".spec.observers",
            ".spec.pod.labels",
            ".spec.ports",
            ".spec.replicas",
            ".spec.replicas",
            ".spec.storage",
            ".spec.storage",
        ]
    );
    for (path, rule, node) in &found {
        let compiled = cel::compile_schema(node);
        // (kube-cel's scope check misreads comprehension variables such as
        // `k` in `self.all(k, …)`, so only the cost is checked here; the
        // tests above evaluate every rule.)
        let warnings = cel::estimate_rule_cost(rule, &compiled);
        assert!(warnings.is_empty(), "{path}: {rule}: {warnings:?}");
    }
}

#[test]
fn the_examples_are_admitted() {
    for name in ["minimal", "full", "tls"] {
        let path = format!("{}/../examples/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let cluster = cluster::parse_cluster(&text, None).unwrap();
        assert_eq!(cel_messages(&cluster), Vec::<String>::new(), "{name}");
        cluster::validate(&cluster).unwrap();
    }
}

/// The whole-object validator, as `validate_cel` uses it, also sees a
/// cluster written as plain JSON (what `kubectl apply` sends).
#[test]
fn raw_json_is_checked_like_typed_clusters() {
    let crd = serde_json::to_value(ZookeeperCluster::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let object = json!({
        "apiVersion": "zookube.io/v1alpha1",
        "kind": "ZookeeperCluster",
        "metadata": {"name": "zk"},
        "spec": {"replicas": 2}
    });
    let errors = Validator::new()
        .validate(schema, &object, None)
        .unwrap_err();
    assert_eq!(errors[0].message, ensemble_messages::REPLICAS_ODD);
    assert_eq!(errors[0].field_path, "spec.replicas");
}

#[test]
fn a_network_policy_peer_without_a_selector_is_refused() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use zk_operator::crd::NetworkPeer;
    let pods = NetworkPeer {
        pod_selector: Some(LabelSelector::default()),
        ..Default::default()
    };
    let namespaces = NetworkPeer {
        namespace_selector: Some(LabelSelector::default()),
        ..Default::default()
    };
    admitted(Cluster::test().with(|s| {
        s.network_policy.enabled = true;
        s.network_policy.clients = Some(vec![pods.clone(), namespaces.clone()]);
        s.network_policy.operator = Some(namespaces.clone());
        s.network_policy.prometheus = vec![pods.clone()];
    }));
    for change in [
        (|s: &mut zk_operator::crd::ZookeeperClusterSpec| {
            s.network_policy.clients = Some(vec![NetworkPeer::default()])
        }) as fn(&mut _),
        |s| s.network_policy.operator = Some(NetworkPeer::default()),
        |s| s.network_policy.prometheus = vec![NetworkPeer::default()],
    ] {
        refused(
            Cluster::test().with(change),
            &[messages::NETWORK_PEER_EMPTY],
        );
    }
}
