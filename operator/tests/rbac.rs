//! The Helm chart's RBAC against what the operator really does: every
//! request the operator makes in these scenarios must be allowed by a rule
//! of `charts/zookube/templates/rbac.yaml`, and every rule there carries a
//! comment saying why it exists.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use support::FakeApi;
use support::admin::FakeAdmin;
use zk_operator::cluster::Defaults;
use zk_operator::controller::{self, Context, Scope};
use zk_operator::leader::{LeaseLock, Timing};
use zk_operator::metrics::Metrics;
use zk_operator::test_support::Cluster;
use zk_testkit::eventually;

const RBAC: &str = include_str!("../../charts/zookube/templates/rbac.yaml");
const CLUSTER: &str = "/apis/zookube.io/v1alpha1/namespaces/default/zookeeperclusters/zk";

/// (API group, resource, verb)
type Permission = (String, String, String);

/// The rules of the chart's roles. Template lines are dropped, which only
/// widens a rule (a `resourceNames` list), never narrows it.
fn chart_rules() -> Vec<Value> {
    RBAC.split("\n---")
        .map(|doc| {
            doc.lines()
                .filter(|l| !l.contains("{{"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter_map(|doc| serde_saphyr::from_str::<Value>(&doc).ok())
        .filter_map(|doc| doc.get("rules").cloned())
        .flat_map(|rules| rules.as_array().cloned().unwrap_or_default())
        .collect()
}

fn allowed(rules: &[Value], (group, resource, verb): &Permission) -> bool {
    let has = |rule: &Value, key: &str, want: &str| {
        rule[key]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i == want || i == "*"))
    };
    rules.iter().any(|rule| {
        has(rule, "apiGroups", group)
            && has(rule, "resources", resource)
            && has(rule, "verbs", verb)
    })
}

/// The permission a request needs.
fn permission(request: &support::Logged) -> Permission {
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => ((*group).to_owned(), rest),
        _ => panic!("unexpected path {}", request.path),
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] => rest,
        rest => rest,
    };
    let (resource, named) = match rest {
        [resource] => ((*resource).to_owned(), false),
        [resource, _name] => ((*resource).to_owned(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => panic!("unexpected path {}", request.path),
    };
    let watching = request.query.get("watch").map(String::as_str) == Some("true");
    let verb = match (&request.method, named, watching) {
        (&Method::GET, _, true) => "watch",
        (&Method::GET, true, _) => "get",
        (&Method::GET, false, _) => "list",
        (&Method::POST, _, _) => "create",
        (&Method::PUT, _, _) => "update",
        (&Method::PATCH, _, _) => "patch",
        (&Method::DELETE, _, _) => "delete",
        (method, _, _) => panic!("unexpected method {method}"),
    };
    (group, resource, verb.to_owned())
}

fn context(client: kube::Client) -> Arc<Context> {
    // The ensemble's committed config: the three voters, no observer.
    Arc::new(
        Context::new(
            client,
            Defaults::default(),
            Metrics::register(&mut Registry::default()),
            None,
        )
        .with_admin(Arc::new(FakeAdmin::committed(&[1, 2, 3]))),
    )
}

/// A sidecar answering `/v1/status` for `myid`, led by myid 2.
async fn sidecar(myid: u64) -> u16 {
    let state = if myid == 2 { "LEADING" } else { "FOLLOWING" };
    let document = json!({"myid": myid, "role": "voter", "state": state, "leader": 2,
                          "peerEpoch": 1, "electionEpoch": 1, "serving": true});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = axum::Router::new().route(
        "/v1/status",
        axum::routing::get(move || {
            let document = document.clone();
            async move { axum::Json(document) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

/// Every permission the operator used across the scenarios.
async fn permissions_used() -> BTreeSet<Permission> {
    let (fake, client) = FakeApi::start();
    let ctx = context(client.clone());

    // The whole controller: lists and watches, then a first reconcile.
    let cluster = Cluster::test()
        .observers(1)
        .with(|s| s.network_policy.enabled = true)
        .build();
    fake.insert(CLUSTER, serde_json::to_value(&cluster).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(controller::run(ctx.clone(), Scope::Cluster, async {
        let _ = stopped.await;
    }));
    eventually("a reconcile", Duration::from_secs(10), || {
        let log = fake.log();
        async move {
            log.iter()
                .any(|r| r.path.ends_with("/zk/status"))
                .then_some(())
                .ok_or_else(|| "no status yet".to_owned())
        }
    })
    .await;
    stop.send(()).unwrap();
    run.await.unwrap();

    // A member pod to label; observers scaled away and the NetworkPolicy
    // turned off (deletes); an invalid spec (an Event).
    fake.insert(
        "/api/v1/namespaces/default/pods/zk-observer-0",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "zk-observer-0", "namespace": "default",
               "labels": {"app.kubernetes.io/name": "zookeeper", "app.kubernetes.io/instance": "zk",
                          "app.kubernetes.io/managed-by": "zookube"}}}),
    );
    let mut stored: zk_operator::crd::ZookeeperCluster =
        serde_json::from_value(fake.get(CLUSTER).unwrap()).unwrap();
    controller::reconcile(Arc::new(stored.clone()), ctx.clone())
        .await
        .unwrap();
    stored.spec.observers = 0;
    stored.spec.network_policy.enabled = false;
    controller::reconcile(Arc::new(stored.clone()), ctx.clone())
        .await
        .unwrap();
    stored.spec.replicas = 4;
    controller::reconcile(Arc::new(stored), ctx.clone())
        .await
        .unwrap();

    // A rolling restart of another cluster: its voters run an older
    // template; one is deleted.
    let other = Cluster::test().name("zk2").build();
    fake.insert(
        "/apis/zookube.io/v1alpha1/namespaces/default/zookeeperclusters/zk2",
        serde_json::to_value(&other).unwrap(),
    );
    controller::reconcile(Arc::new(other.clone()), ctx.clone())
        .await
        .unwrap();
    for ordinal in 0..3u64 {
        let port = sidecar(ordinal + 1).await;
        fake.insert(
            &format!("/api/v1/namespaces/default/pods/zk2-{ordinal}"),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": format!("zk2-{ordinal}"), "namespace": "default",
                                "labels": {"app.kubernetes.io/name": "zookeeper", "app.kubernetes.io/instance": "zk2",
                                           "app.kubernetes.io/managed-by": "zookube"},
                                "annotations": {"zookube.io/template-hash": "older"}},
                   "spec": {"containers": [{"name": "sidecar", "ports": [{"name": "sidecar", "containerPort": port}]}]},
                   "status": {"phase": "Running", "podIP": "127.0.0.1",
                              "conditions": [{"type": "Ready", "status": "True"}]}}),
        );
    }
    let other: zk_operator::crd::ZookeeperCluster = serde_json::from_value(
        fake.get("/apis/zookube.io/v1alpha1/namespaces/default/zookeeperclusters/zk2")
            .unwrap(),
    )
    .unwrap();
    controller::reconcile(Arc::new(other), ctx.clone())
        .await
        .unwrap();

    // Leader election: create, then take over (get and update).
    let mut a = LeaseLock::new(
        client.clone(),
        "zookube-system",
        "zookube-zk-operator",
        "a",
        Timing::default(),
    );
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(a.try_acquire_or_renew().await.unwrap());
    a.release().await.unwrap();

    fake.log().iter().map(permission).collect()
}

#[tokio::test]
async fn every_request_the_operator_makes_is_allowed_by_the_chart() {
    let rules = chart_rules();
    assert!(rules.len() >= 9, "{rules:?}");
    let used = permissions_used().await;
    let denied: Vec<&Permission> = used.iter().filter(|p| !allowed(&rules, p)).collect();
    assert!(denied.is_empty(), "the chart's RBAC denies {denied:?}");
    // Sanity: the scenarios did exercise the interesting verbs.
    for expected in [
        ("apps", "statefulsets", "delete"),
        ("networking.k8s.io", "networkpolicies", "watch"),
        ("networking.k8s.io", "networkpolicies", "patch"),
        ("networking.k8s.io", "networkpolicies", "delete"),
        ("", "pods", "patch"),
        ("", "pods", "delete"),
        ("", "secrets", "get"),
        ("", "secrets", "create"),
        ("events.k8s.io", "events", "create"),
        ("coordination.k8s.io", "leases", "update"),
        ("zookube.io", "zookeeperclusters", "watch"),
        ("zookube.io", "zookeeperclusters/status", "patch"),
    ] {
        let p = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2.to_owned(),
        );
        assert!(used.contains(&p), "{p:?} not exercised");
    }
}

#[test]
fn every_rule_says_why_it_is_there() {
    let lines: Vec<&str> = RBAC.lines().collect();
    let mut rules = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("- apiGroups:") {
            rules += 1;
            assert!(
                i > 0 && lines[i - 1].trim_start().starts_with('#'),
                "the rule on line {} has no comment above it",
                i + 1
            );
        }
    }
    assert!(rules >= 9);
}

#[test]
fn the_chart_releases_this_version() {
    let chart = include_str!("../../charts/zookube/Chart.yaml");
    let chart: Value = serde_saphyr::from_str(chart).unwrap();
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(chart["version"], env!("CARGO_PKG_VERSION"));
}
