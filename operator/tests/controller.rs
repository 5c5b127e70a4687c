//! The reconcile loop against the in-memory API server (tests/support):
//! a new cluster, an unchanged one, drift, an invalid spec, a deleted
//! cluster, a failing API server, sidecars that report a leader, a replica
//! that loses the leader Lease mid-reconcile, and the whole Controller with
//! its watches.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::Method;
use kube::runtime::controller::Action;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use support::admin::FakeAdmin;
use support::{FakeApi, Logged};
use zk_ensemble::messages;
use zk_operator::cluster::{self, Defaults};
use zk_operator::controller::{self, Context, Error, Scope};
use zk_operator::crd::ZookeeperCluster;
use zk_operator::leader::Mandate;
use zk_operator::metrics::Metrics;
use zk_operator::test_support::Cluster;
use zk_testkit::eventually;

const NS: &str = "/api/v1/namespaces/default";
const APPS: &str = "/apis/apps/v1/namespaces/default";
const CLUSTER: &str = "/apis/zookube.io/v1alpha1/namespaces/default/zookeeperclusters/zk";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn context(client: kube::Client) -> Arc<Context> {
    context_with(client, FakeAdmin::unreachable())
}

fn context_with(client: kube::Client, admin: FakeAdmin) -> Arc<Context> {
    context_under(client, admin, Mandate::always())
}

fn context_under(client: kube::Client, admin: FakeAdmin, mandate: Mandate) -> Arc<Context> {
    let metrics = Metrics::register(&mut Registry::default());
    Arc::new(
        Context::new(
            client,
            Defaults::default(),
            metrics,
            Some("zk-operator-0".into()),
        )
        .with_admin(Arc::new(admin))
        .with_mandate(mandate),
    )
}

/// A fake API server holding `cluster`, and a context using it.
fn start(cluster: &ZookeeperCluster) -> (FakeApi, Arc<Context>) {
    let (fake, client) = FakeApi::start();
    fake.insert(CLUSTER, serde_json::to_value(cluster).unwrap());
    (fake, context(client))
}

/// The cluster as the API server holds it now (with the status written).
fn stored(fake: &FakeApi) -> ZookeeperCluster {
    serde_json::from_value(fake.get(CLUSTER).unwrap()).unwrap()
}

fn writes(log: &[Logged]) -> Vec<String> {
    log.iter()
        .filter(|r| r.is_write())
        .map(ToString::to_string)
        .collect()
}

async fn reconcile(cluster: &ZookeeperCluster, ctx: &Arc<Context>) -> Result<Action, Error> {
    controller::reconcile(Arc::new(cluster.clone()), ctx.clone()).await
}

#[tokio::test]
async fn a_new_cluster_gets_its_children_configuration_first() {
    let cluster = Cluster::test().build();
    let (fake, ctx) = start(&cluster);
    let action = reconcile(&cluster, &ctx).await.unwrap();
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(10)),
        "still changing"
    );

    let log = fake.log();
    assert_eq!(
        writes(&log),
        vec![
            // The super user's Secret, created once: pods need its digest.
            format!("POST {NS}/secrets"),
            format!("PATCH {NS}/configmaps/zk-config"),
            format!("PATCH {NS}/configmaps/zk-client"),
            format!("PATCH {NS}/services/zk-headless"),
            format!("PATCH {NS}/services/zk-client"),
            format!("PATCH {APPS}/statefulsets/zk"),
            "PATCH /apis/policy/v1/namespaces/default/poddisruptionbudgets/zk".to_owned(),
            format!("PATCH {CLUSTER}/status"),
        ]
    );
    for request in log.iter().filter(|r| r.method == Method::PATCH) {
        assert_eq!(request.query["fieldManager"], "zk-operator", "{request}");
        assert_eq!(request.query["force"], "true", "{request}");
        if !request.path.ends_with("/status") {
            let owner = &request.body["metadata"]["ownerReferences"][0];
            assert_eq!(
                owner["uid"],
                cluster.metadata.uid.clone().unwrap(),
                "{request}"
            );
            assert_eq!(owner["controller"], true, "{request}");
        }
    }
    // What the API server now holds is what `zk-operator render` prints.
    let validated = cluster::validate(&cluster).unwrap();
    let children = zk_operator::build::children(&validated);
    let stored_cfg = fake.get(&format!("{NS}/configmaps/zk-config")).unwrap();
    assert_eq!(
        stored_cfg["data"]["zoo.cfg"],
        children.config.data.as_ref().unwrap()["zoo.cfg"]
    );

    let status = stored(&fake).status.unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        status.selector.as_deref(),
        Some(
            "app.kubernetes.io/component=voter,app.kubernetes.io/instance=zk,app.kubernetes.io/name=zookeeper"
        )
    );
    assert_eq!(status.config_hash, Some(validated.config.hash));
    let progressing = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(progressing.reason, "CreatingMembers");
}

#[tokio::test]
async fn reconciling_an_unchanged_cluster_writes_nothing() {
    let cluster = Cluster::test().observers(1).build();
    let (fake, ctx) = start(&cluster);
    reconcile(&cluster, &ctx).await.unwrap();
    fake.clear_log();

    reconcile(&stored(&fake), &ctx).await.unwrap();
    let log = fake.log();
    assert_eq!(writes(&log), Vec::<String>::new());
    assert!(!log.is_empty(), "it did look");
}

#[tokio::test]
async fn drift_is_corrected_and_only_there() {
    let cluster = Cluster::test().build();
    let (fake, client) = FakeApi::start();
    fake.insert(CLUSTER, serde_json::to_value(&cluster).unwrap());
    let ctx = context_with(client, FakeAdmin::committed(&[1, 2, 3]));
    reconcile(&cluster, &ctx).await.unwrap();
    // Someone scales the StatefulSet by hand.
    let path = format!("{APPS}/statefulsets/zk");
    let mut sts = fake.get(&path).unwrap();
    sts["spec"]["replicas"] = json!(4);
    fake.insert(&path, sts);
    fake.clear_log();

    reconcile(&stored(&fake), &ctx).await.unwrap();
    assert_eq!(writes(&fake.log()), vec![format!("PATCH {path}")]);
    assert_eq!(fake.get(&path).unwrap()["spec"]["replicas"], 3);
}

#[tokio::test]
async fn a_setting_the_user_removes_is_removed_from_the_child() {
    let cluster = Cluster::test()
        .with(|s| {
            s.pod.node_selector.insert("disk".into(), "ssd".into());
        })
        .build();
    let (fake, ctx) = start(&cluster);
    reconcile(&cluster, &ctx).await.unwrap();
    let path = format!("{APPS}/statefulsets/zk");
    let node_selector = |fake: &FakeApi| {
        fake.get(&path).unwrap()["spec"]["template"]["spec"]["nodeSelector"].clone()
    };
    assert_eq!(node_selector(&fake), json!({"disk": "ssd"}));

    let mut changed = stored(&fake);
    changed.spec.pod.node_selector.clear();
    changed.metadata.generation = Some(2);
    reconcile(&changed, &ctx).await.unwrap();
    assert_eq!(node_selector(&fake), Value::Null);
}

#[tokio::test]
async fn an_invalid_spec_sets_the_condition_emits_an_event_and_touches_no_child() {
    // Written before the CRD had its rule, or with validation off.
    let cluster = Cluster::test().replicas(4).build();
    let (fake, ctx) = start(&cluster);
    let action = reconcile(&cluster, &ctx).await.unwrap();
    assert_eq!(action, Action::await_change());

    let log = fake.log();
    let touched: Vec<String> = log
        .iter()
        .filter(|r| !r.path.starts_with(CLUSTER) && !r.path.starts_with(EVENTS))
        .map(ToString::to_string)
        .collect();
    assert_eq!(touched, Vec::<String>::new(), "no child read or written");
    assert_eq!(
        writes(&log),
        vec![format!("PATCH {CLUSTER}/status"), format!("POST {EVENTS}")]
    );
    let event = &log.last().unwrap().body;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "InvalidSpec");
    assert_eq!(event["regarding"]["name"], "zk");
    assert_eq!(
        event["note"],
        format!("spec.replicas = 4: {}", messages::REPLICAS_ODD)
    );
    let status = stored(&fake).status.unwrap();
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "InvalidSpec")
        .unwrap();
    assert_eq!(condition.status, "True");
    assert_eq!(condition.observed_generation, Some(1));

    // Looking again changes nothing and says nothing new.
    fake.clear_log();
    reconcile(&stored(&fake), &ctx).await.unwrap();
    assert_eq!(writes(&fake.log()), Vec::<String>::new());

    // Invalid in another way: a new Event in its own words, not another
    // count on the first one (whose note would stay the first problem's).
    let mut other = stored(&fake);
    other.spec.replicas = 3;
    other.spec.tls.quorum = Some(zk_operator::crd::QuorumTlsSpec {});
    other.metadata.generation = Some(2);
    fake.clear_log();
    reconcile(&other, &ctx).await.unwrap();
    let log = fake.log();
    assert_eq!(
        writes(&log),
        vec![format!("PATCH {CLUSTER}/status"), format!("POST {EVENTS}")]
    );
    let note = log.last().unwrap().body["note"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(note.starts_with("spec.tls: "), "{note}");
}

#[tokio::test]
async fn a_deleted_cluster_is_left_to_the_garbage_collector() {
    let mut cluster = Cluster::test().build();
    cluster.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let (fake, ctx) = start(&cluster);
    fake.clear_log();
    let action = reconcile(&cluster, &ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(fake.log().is_empty(), "{:?}", fake.log());
}

#[tokio::test]
async fn a_failing_api_server_is_retried_with_backoff_and_reported() {
    let cluster = Cluster::test().build();
    let (fake, ctx) = start(&cluster);
    fake.fail(Method::PATCH, &format!("{NS}/configmaps/zk-config"), 500);
    let err = reconcile(&cluster, &ctx).await.unwrap_err();
    assert_eq!(err.category(), "apply");
    assert!(
        err.to_string()
            .starts_with("cannot apply ConfigMap zk-config: "),
        "{err}"
    );
    assert!(
        !fake
            .log()
            .iter()
            .any(|r| r.is_write() && r.path.contains("statefulsets")),
        "nothing applied after the failed step"
    );

    let cluster = Arc::new(cluster);
    let delays: Vec<Action> = (0..3)
        .map(|_| controller::error_policy(cluster.clone(), &err, ctx.clone()))
        .collect();
    assert_eq!(
        delays,
        [5, 10, 20]
            .map(|s| Action::requeue(Duration::from_secs(s)))
            .to_vec()
    );
    let event = eventually("the ApplyFailed event", Duration::from_secs(5), || {
        let log = fake.log();
        async move {
            log.iter()
                .find(|r| r.path == EVENTS && r.method == Method::POST)
                .map(|r| r.body.clone())
                .ok_or_else(|| "no event yet".to_owned())
        }
    })
    .await;
    assert_eq!(event["reason"], "ApplyFailed");
    assert_eq!(event["type"], "Warning");

    // A success resets the back-off.
    let (fake2, ctx2) = start(&cluster);
    drop(fake2);
    reconcile(&cluster, &ctx2).await.unwrap();
    assert_eq!(
        controller::error_policy(cluster.clone(), &err, ctx2.clone()),
        Action::requeue(Duration::from_secs(5))
    );
}

#[tokio::test]
async fn scaling_observers_to_zero_removes_their_statefulset() {
    let cluster = Cluster::test().observers(2).build();
    let (fake, client) = FakeApi::start();
    fake.insert(CLUSTER, serde_json::to_value(&cluster).unwrap());
    // The ensemble's committed config has no observer (left already, or
    // never started).
    let ctx = context_with(client, FakeAdmin::committed(&[1, 2, 3]));
    reconcile(&cluster, &ctx).await.unwrap();
    let observers = format!("{APPS}/statefulsets/zk-observer");
    assert!(fake.get(&observers).is_some());

    let mut scaled = stored(&fake);
    scaled.spec.observers = 0;
    fake.clear_log();
    reconcile(&scaled, &ctx).await.unwrap();
    assert!(fake.get(&observers).is_none());
    assert!(writes(&fake.log()).contains(&format!("DELETE {observers}")));
}

#[tokio::test]
async fn a_statefulset_zookube_does_not_control_is_never_deleted() {
    let cluster = Cluster::test().build();
    let (fake, ctx) = start(&cluster);
    let observers = format!("{APPS}/statefulsets/zk-observer");
    fake.insert(
        &observers,
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "zk-observer", "namespace": "default"}, "spec": {}}),
    );
    reconcile(&cluster, &ctx).await.unwrap();
    assert!(fake.get(&observers).is_some());
}

/// A sidecar answering `/v1/status` with `document`.
async fn fake_sidecar(document: Value) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route(
        "/v1/status",
        get(move || {
            let document = document.clone();
            async move { axum::Json(document) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn sidecar_document(myid: u64, state: &str) -> Value {
    json!({
        "myid": myid, "role": "voter", "state": state, "leader": 2, "peerEpoch": 5, "electionEpoch": 1,
        "members": watched(&[1, 2, 3])
    })
}

/// The members a sidecar's watcher follows: those of the committed config.
fn watched(myids: &[u8]) -> Value {
    myids
        .iter()
        .map(|m| json!({"myid": m, "host": format!("zk-{}", m - 1), "role": "voter", "reachable": true}))
        .collect()
}

/// A running, ready member pod as the StatefulSet controller makes it
/// from the default cluster's template.
fn member_pod(name: &str, hash: &str, sidecar: SocketAddr) -> Value {
    let validated = cluster::validate(&Cluster::test().build()).unwrap();
    let sts = zk_operator::build::stateful_set(&validated, zk_ensemble::Role::Voter);
    let template = zk_operator::build::template_hash(&sts).unwrap().to_owned();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "default",
            "labels": {
                "app.kubernetes.io/name": "zookeeper", "app.kubernetes.io/instance": "zk",
                "app.kubernetes.io/managed-by": "zookube", "app.kubernetes.io/component": "voter"
            },
            "annotations": {"zookube.io/config-hash": hash, "zookube.io/template-hash": template}
        },
        "spec": {"containers": [
            {"name": "zookeeper"},
            {"name": "sidecar", "ports": [{"name": "sidecar", "containerPort": sidecar.port()}]}
        ]},
        "status": {"phase": "Running", "podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

#[tokio::test]
async fn sidecars_report_the_leader_and_pods_get_their_role() {
    let cluster = Cluster::test().build();
    let (fake, ctx) = start(&cluster);
    let hash = cluster::validate(&cluster).unwrap().config.hash;
    for (ordinal, state) in ["FOLLOWING", "LEADING", "FOLLOWING"].iter().enumerate() {
        let myid = u64::try_from(ordinal).unwrap() + 1;
        let sidecar = fake_sidecar(sidecar_document(myid, state)).await;
        fake.insert(
            &format!("{NS}/pods/zk-{ordinal}"),
            member_pod(&format!("zk-{ordinal}"), &hash, sidecar),
        );
    }

    let action = reconcile(&cluster, &ctx).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(60)), "stable");

    let roles: BTreeMap<String, Value> = (0..3)
        .map(|i| {
            let pod = fake.get(&format!("{NS}/pods/zk-{i}")).unwrap();
            (
                format!("zk-{i}"),
                pod["metadata"]["labels"]["zookube.io/role"].clone(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        BTreeMap::from([
            ("zk-0".to_owned(), json!("follower")),
            ("zk-1".to_owned(), json!("leader")),
            ("zk-2".to_owned(), json!("follower")),
        ])
    );
    let status = stored(&fake).status.unwrap();
    assert_eq!(status.leader.as_ref().map(|l| l.pod.as_str()), Some("zk-1"));
    assert_eq!(status.peer_epoch, Some(5));
    assert_eq!((status.replicas, status.ready_replicas), (3, 3));
    let available = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Available")
        .unwrap();
    assert_eq!(available.status, "True");
    let event = fake
        .log()
        .into_iter()
        .find(|r| r.path == EVENTS)
        .expect("an event")
        .body;
    assert_eq!(event["reason"], "LeaderElected");
    assert_eq!(event["note"], "zk-1 leads in peer epoch 5");

    // Nothing changed: nothing is written, no event repeats.
    fake.clear_log();
    reconcile(&stored(&fake), &ctx).await.unwrap();
    assert_eq!(writes(&fake.log()), Vec::<String>::new());

    // Nor when the watch has not yet delivered the status written: the
    // cluster in hand is still the one without it.
    fake.clear_log();
    reconcile(&cluster, &ctx).await.unwrap();
    assert_eq!(
        writes(&fake.log()),
        Vec::<String>::new(),
        "from a stale cache"
    );
}

#[tokio::test]
async fn pods_zookube_does_not_manage_are_left_alone() {
    let cluster = Cluster::test().build();
    let (fake, ctx) = start(&cluster);
    // Another chart's ZooKeeper, also called zk, in the same namespace.
    let sidecar = fake_sidecar(sidecar_document(1, "LEADING")).await;
    let mut foreign = member_pod("zk-0", "x", sidecar);
    foreign["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("app.kubernetes.io/managed-by");
    fake.insert(&format!("{NS}/pods/zk-0"), foreign);
    reconcile(&cluster, &ctx).await.unwrap();
    assert!(!writes(&fake.log()).iter().any(|w| w.contains("/pods/")));
    let status = stored(&fake).status.unwrap();
    assert_eq!(status.leader, None);
    assert_eq!(status.replicas, 0);
}

#[tokio::test]
async fn the_controller_watches_its_objects_and_stops_gracefully() {
    let (fake, client) = FakeApi::start();
    let cluster = Cluster::test().build();
    fake.insert(CLUSTER, serde_json::to_value(&cluster).unwrap());
    let ctx = context(client);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(controller::run(ctx, Scope::Cluster, async {
        let _ = stopped.await;
    }));

    eventually("the status to be written", Duration::from_secs(10), || {
        let log = fake.log();
        async move {
            log.iter()
                .any(|r| r.path == format!("{CLUSTER}/status"))
                .then_some(())
                .ok_or_else(|| format!("{} requests", log.len()))
        }
    })
    .await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("graceful shutdown")
        .unwrap();

    let log = fake.log();
    let watched = |path: &str| {
        log.iter()
            .filter(|r| r.path == path && r.query.get("watch").map(String::as_str) == Some("true"))
            .map(|r| r.query.get("labelSelector").cloned().unwrap_or_default())
            .next()
    };
    let managed = Some("app.kubernetes.io/managed-by=zookube".to_owned());
    assert_eq!(watched("/api/v1/configmaps"), managed);
    assert_eq!(watched("/api/v1/services"), managed);
    assert_eq!(watched("/apis/apps/v1/statefulsets"), managed);
    assert_eq!(watched("/apis/policy/v1/poddisruptionbudgets"), managed);
    assert_eq!(
        watched("/api/v1/pods"),
        Some("app.kubernetes.io/name=zookeeper,app.kubernetes.io/managed-by=zookube".to_owned())
    );
    assert_eq!(
        watched("/apis/zookube.io/v1alpha1/zookeeperclusters"),
        Some(String::new())
    );
}

#[tokio::test]
async fn a_namespaced_controller_looks_only_in_its_namespace() {
    let (fake, client) = FakeApi::start();
    let ctx = context(client);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(controller::run(
        ctx,
        Scope::Namespace("team-a".into()),
        async {
            let _ = stopped.await;
        },
    ));
    eventually("the watches", Duration::from_secs(10), || {
        let log = fake.log();
        async move {
            (log.iter().filter(|r| r.query.contains_key("watch")).count() >= 6)
                .then_some(())
                .ok_or_else(|| format!("{log:?}"))
        }
    })
    .await;
    stop.send(()).unwrap();
    run.await.unwrap();
    assert!(
        fake.log()
            .iter()
            .all(|r| r.path.contains("/namespaces/team-a/")),
        "{:?}",
        fake.log()
    );
}

// Membership changes and rolling restarts, one reconcile (one planner step)
// at a time: the order of object changes and reconfigs, and the refusal
// while degraded. The ensemble is a FakeAdmin (its committed config) and
// fake sidecars (each member's state and leader).

/// A synced member's sidecar document: serving, following `leader` (or
/// leading when it is the leader), or down.
fn member_document(myid: u8, leader: u8, down: bool) -> Value {
    let state = match (down, myid == leader) {
        (true, _) => "DOWN",
        (false, true) => "LEADING",
        (false, false) => "FOLLOWING",
    };
    json!({
        "myid": myid, "role": "voter", "state": state,
        "leader": if down { Value::Null } else { json!(leader) },
        "peerEpoch": 5, "electionEpoch": 1, "serving": !down
    })
}

/// Voter pods for `myids`, from `cluster`'s current template, each with a
/// sidecar reporting `leader` (members in `down` report DOWN).
async fn voters(fake: &FakeApi, cluster: &ZookeeperCluster, myids: &[u8], leader: u8, down: &[u8]) {
    let validated = cluster::validate(cluster).unwrap();
    let sts = zk_operator::build::stateful_set(&validated, zk_ensemble::Role::Voter);
    let template = zk_operator::build::template_hash(&sts).unwrap().to_owned();
    for myid in myids {
        let sidecar = fake_sidecar(member_document(*myid, leader, down.contains(myid))).await;
        let name = format!("zk-{}", myid - 1);
        let mut pod = member_pod(&name, &validated.config.hash, sidecar);
        pod["metadata"]["annotations"]["zookube.io/template-hash"] = json!(template);
        fake.insert(&format!("{NS}/pods/{name}"), pod);
    }
}

fn voter_replicas(fake: &FakeApi) -> i64 {
    fake.get(&format!("{APPS}/statefulsets/zk")).unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

fn listed_servers(fake: &FakeApi) -> Vec<u8> {
    let cm = fake.get(&format!("{NS}/configmaps/zk-config")).unwrap();
    let cfg = cm["data"]["zoo.cfg"].as_str().unwrap().to_owned();
    cfg.lines()
        .filter_map(|l| l.strip_prefix("server."))
        .filter_map(|l| l.split('=').next())
        .map(|n| n.parse().unwrap())
        .collect()
}

fn events(fake: &FakeApi) -> Vec<(String, String)> {
    fake.log()
        .into_iter()
        .filter(|r| r.path == EVENTS && r.is_write())
        .map(|r| {
            (
                r.body["reason"].as_str().unwrap_or_default().to_owned(),
                r.body["note"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A cluster of `replicas` whose ensemble committed `committed`, its
/// children applied, and its spec then changed to `next`.
async fn running(replicas: i32, committed: &[u8]) -> (FakeApi, Arc<Context>, FakeAdmin) {
    let before = Cluster::test().replicas(replicas).build();
    let (fake, client) = FakeApi::start();
    fake.insert(CLUSTER, serde_json::to_value(&before).unwrap());
    let admin = FakeAdmin::committed(committed);
    let ctx = context_with(client, admin.clone());
    reconcile(&before, &ctx).await.unwrap();
    (fake, ctx, admin)
}

#[tokio::test]
async fn scale_up_lists_the_joiner_then_starts_its_pod_then_adds_it_one_at_a_time() {
    let (fake, ctx, admin) = running(3, &[1, 2, 3]).await;
    let five = Cluster::test().replicas(5).generation(2).build();
    fake.insert(CLUSTER, serde_json::to_value(&five).unwrap());
    voters(&fake, &five, &[1, 2, 3], 2, &[]).await;

    // Start myid 4: the ConfigMap lists it before its pod can exist.
    fake.clear_log();
    reconcile(&five, &ctx).await.unwrap();
    let order = writes(&fake.log());
    let config = order
        .iter()
        .position(|w| w.ends_with("/configmaps/zk-config"));
    let sts = order.iter().position(|w| w.ends_with("/statefulsets/zk"));
    assert!(config.is_some() && config < sts, "{order:?}");
    assert_eq!(listed_servers(&fake), vec![1, 2, 3, 4]);
    assert_eq!(voter_replicas(&fake), 4, "one member at a time");
    assert!(admin.log().is_empty(), "not added before it is synced");
    assert!(events(&fake).iter().any(|(r, _)| r == "MemberStarting"));

    // Its pod syncs as a non-voting follower: `reconfig add`, nothing else.
    voters(&fake, &five, &[4], 2, &[]).await;
    reconcile(&five, &ctx).await.unwrap();
    assert_eq!(admin.servers(), vec![1, 2, 3, 4]);
    assert_eq!(admin.log().len(), 1);
    assert!(
        admin.log()[0].starts_with("add server.4="),
        "{:?}",
        admin.log()
    );
    assert_eq!(voter_replicas(&fake), 4);

    // Then myid 5 the same way.
    reconcile(&five, &ctx).await.unwrap();
    let st = stored(&fake).status.unwrap();
    assert_eq!(
        listed_servers(&fake),
        vec![1, 2, 3, 4, 5],
        "{:?}",
        st.conditions
    );
    assert_eq!(voter_replicas(&fake), 5);
    voters(&fake, &five, &[5], 2, &[]).await;
    reconcile(&five, &ctx).await.unwrap();
    assert_eq!(admin.servers(), vec![1, 2, 3, 4, 5]);
    let status = stored(&fake).status.unwrap();
    let progressing = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(progressing.reason, "ScalingUp", "{progressing:?}");
}

#[tokio::test]
async fn scale_down_removes_through_reconfig_before_the_pod_goes_and_the_leader_last() {
    // Myid 5 leads: it must leave last, after handing leadership over.
    let (fake, ctx, admin) = running(5, &[1, 2, 3, 4, 5]).await;
    let three = Cluster::test().replicas(3).generation(2).build();
    fake.insert(CLUSTER, serde_json::to_value(&three).unwrap());
    voters(&fake, &three, &[1, 2, 3, 4, 5], 5, &[]).await;

    reconcile(&three, &ctx).await.unwrap();
    assert_eq!(admin.log(), vec!["remove 4"]);
    assert_eq!(voter_replicas(&fake), 5, "no pod goes before it left");

    reconcile(&three, &ctx).await.unwrap();
    assert_eq!(admin.log(), vec!["remove 4", "remove 5"]);
    assert_eq!(voter_replicas(&fake), 5);

    // The removed leader still leads until the hand-over shows: wait.
    reconcile(&three, &ctx).await.unwrap();
    assert_eq!(voter_replicas(&fake), 5);

    // Myid 1 leads now: the StatefulSet shrinks one pod at a time.
    voters(&fake, &three, &[1, 2, 3, 4, 5], 1, &[]).await;
    reconcile(&three, &ctx).await.unwrap();
    assert_eq!(voter_replicas(&fake), 4);
    fake.remove(&format!("{NS}/pods/zk-4"));
    reconcile(&three, &ctx).await.unwrap();
    assert_eq!(voter_replicas(&fake), 3);
    fake.remove(&format!("{NS}/pods/zk-3"));
    reconcile(&three, &ctx).await.unwrap();
    assert_eq!(voter_replicas(&fake), 3);
    assert_eq!(listed_servers(&fake), vec![1, 2, 3]);
    assert_eq!(admin.log().len(), 2, "{:?}", admin.log());
}

#[tokio::test]
async fn scale_down_is_refused_while_a_staying_voter_is_down_with_a_condition_and_one_event() {
    let (fake, ctx, admin) = running(5, &[1, 2, 3, 4, 5]).await;
    let three = Cluster::test().replicas(3).generation(2).build();
    fake.insert(CLUSTER, serde_json::to_value(&three).unwrap());
    voters(&fake, &three, &[1, 2, 3, 4, 5], 1, &[2]).await;

    fake.clear_log();
    reconcile(&three, &ctx).await.unwrap();
    assert!(admin.log().is_empty());
    assert_eq!(voter_replicas(&fake), 5);
    let status = stored(&fake).status.unwrap();
    let progressing = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "ChangeRefused")
    );
    assert!(
        progressing
            .message
            .starts_with("scale-down refused: zk-1 (myid 2) is down"),
        "{}",
        progressing.message
    );
    let refusals = |fake: &FakeApi| {
        events(fake)
            .into_iter()
            .filter(|(reason, _)| reason == "ChangeRefused")
            .count()
    };
    assert_eq!(refusals(&fake), 1, "{:?}", events(&fake));

    // While it lasts, the refusal is not announced again.
    fake.clear_log();
    reconcile(&stored(&fake), &ctx).await.unwrap();
    assert_eq!(refusals(&fake), 0, "{:?}", events(&fake));
}

#[tokio::test]
async fn a_settings_change_restarts_followers_one_at_a_time_and_hands_the_leadership_over_last() {
    let (fake, ctx, admin) = running(3, &[1, 2, 3]).await;
    let old = Cluster::test().build();
    voters(&fake, &old, &[1, 2, 3], 2, &[]).await;
    let changed = Cluster::test()
        .generation(2)
        .with(|s| s.jvm_flags = Some("-Xmx512m".into()))
        .build();
    fake.insert(CLUSTER, serde_json::to_value(&changed).unwrap());
    let deletes = |fake: &FakeApi| -> Vec<String> {
        fake.log()
            .into_iter()
            .filter(|r| r.method == Method::DELETE)
            .map(|r| r.path.rsplit('/').next().unwrap().to_owned())
            .collect()
    };

    // The followers restart one at a time, from the highest myid.
    let mut deleted = Vec::new();
    for _ in 0..2 {
        fake.clear_log();
        reconcile(&changed, &ctx).await.unwrap();
        let gone = deletes(&fake);
        assert_eq!(gone.len(), 1, "one pod per step: {gone:?}");
        // Until it is back and synced on the new template, nothing else goes.
        reconcile(&changed, &ctx).await.unwrap();
        assert_eq!(deletes(&fake).len(), 1);
        let myid: u8 = gone[0].trim_start_matches("zk-").parse::<u8>().unwrap() + 1;
        voters(&fake, &changed, &[myid], 2, &[]).await;
        deleted.push(gone[0].clone());
    }
    assert_eq!(deleted, vec!["zk-2", "zk-0"]);
    assert!(admin.log().is_empty(), "a follower restarts in place");

    // The leader (zk-1) is not restarted in place: it is removed, so that
    // the voter it designates leads without an election.
    fake.clear_log();
    reconcile(&changed, &ctx).await.unwrap();
    assert_eq!(admin.log(), vec!["remove 2"]);
    assert!(deletes(&fake).is_empty(), "{:?}", deletes(&fake));
    assert!(
        events(&fake)
            .iter()
            .any(|(reason, note)| reason == "LeaderHandedOver" && note.contains("zk-1")),
        "{:?}",
        events(&fake)
    );
    // It stays in the server list its next pod reads.
    assert_eq!(listed_servers(&fake), vec![1, 2, 3]);

    // No longer committed but still wanted, it is restarted on the new
    // template (zk-2 leads now) and added back once it has synced.
    voters(&fake, &changed, &[1, 3], 3, &[]).await;
    voters(&fake, &old, &[2], 3, &[]).await;
    fake.clear_log();
    reconcile(&changed, &ctx).await.unwrap();
    assert_eq!(deletes(&fake), vec!["zk-1"]);
    assert_eq!(
        admin.log(),
        vec!["remove 2"],
        "not added before it restarts"
    );
    voters(&fake, &changed, &[2], 3, &[]).await;
    fake.clear_log();
    reconcile(&changed, &ctx).await.unwrap();
    assert!(deletes(&fake).is_empty());
    assert_eq!(admin.log().len(), 2, "{:?}", admin.log());
    assert!(
        admin.log()[1].starts_with("add server.2="),
        "{:?}",
        admin.log()
    );
    assert_eq!(admin.servers(), vec![1, 2, 3]);

    fake.clear_log();
    reconcile(&changed, &ctx).await.unwrap();
    assert!(deletes(&fake).is_empty());
    assert_eq!(admin.log().len(), 2, "the roll is done");
}

#[tokio::test]
async fn a_pod_that_has_just_gone_is_not_labelled_and_the_reconcile_completes() {
    let cluster = Cluster::test().build();
    let (fake, ctx) = start(&cluster);
    let hash = cluster::validate(&cluster).unwrap().config.hash;
    for (ordinal, state) in ["FOLLOWING", "LEADING", "FOLLOWING"].iter().enumerate() {
        let myid = u64::try_from(ordinal).unwrap() + 1;
        let sidecar = fake_sidecar(sidecar_document(myid, state)).await;
        fake.insert(
            &format!("{NS}/pods/zk-{ordinal}"),
            member_pod(&format!("zk-{ordinal}"), &hash, sidecar),
        );
    }
    // zk-0 is deleted between the list and its label patch.
    fake.fail(Method::PATCH, &format!("{NS}/pods/zk-0"), 404);

    reconcile(&cluster, &ctx).await.unwrap();
    let label_patches: Vec<Logged> = fake
        .log()
        .into_iter()
        .filter(|r| r.method == Method::PATCH && r.path.contains("/pods/"))
        .collect();
    assert_eq!(label_patches.len(), 3, "{label_patches:?}");
    // A merge patch of the label alone: it cannot create a pod that is gone.
    let leader = label_patches
        .iter()
        .find(|r| r.path.ends_with("/pods/zk-1"))
        .unwrap();
    assert_eq!(
        leader.body,
        json!({"metadata": {"labels": {"zookube.io/role": "leader"}}})
    );
    assert_eq!(
        fake.get(&format!("{NS}/pods/zk-1")).unwrap()["metadata"]["labels"]["zookube.io/role"],
        "leader"
    );
    assert!(stored(&fake).status.is_some(), "the status is written");
}

#[tokio::test]
async fn a_stale_role_label_is_removed_with_null() {
    let cluster = Cluster::test().build();
    let (fake, ctx) = start(&cluster);
    let hash = cluster::validate(&cluster).unwrap().config.hash;
    // A looking member still labelled leader from before.
    let sidecar = fake_sidecar(json!({
        "myid": 1, "role": "voter", "state": "LOOKING", "leader": null, "peerEpoch": 5, "electionEpoch": 2
    }))
    .await;
    let mut pod = member_pod("zk-0", &hash, sidecar);
    pod["metadata"]["labels"]["zookube.io/role"] = json!("leader");
    fake.insert(&format!("{NS}/pods/zk-0"), pod);

    reconcile(&cluster, &ctx).await.unwrap();
    let patch = fake
        .log()
        .into_iter()
        .find(|r| r.method == Method::PATCH && r.path.ends_with("/pods/zk-0"))
        .expect("the label is removed");
    assert_eq!(
        patch.body,
        json!({"metadata": {"labels": {"zookube.io/role": null}}})
    );
    let labels = &fake.get(&format!("{NS}/pods/zk-0")).unwrap()["metadata"]["labels"];
    assert_eq!(labels["zookube.io/role"], Value::Null);
    assert_eq!(
        labels["app.kubernetes.io/instance"], "zk",
        "other labels stay"
    );
}

#[tokio::test]
async fn a_cluster_that_cannot_be_read_is_reported_and_the_others_are_reconciled() {
    let (fake, client) = FakeApi::start();
    let good = Cluster::test().build();
    fake.insert(CLUSTER, serde_json::to_value(&good).unwrap());
    // Stored before the CRD refused it: the operator cannot read it.
    let bad_path = "/apis/zookube.io/v1alpha1/namespaces/default/zookeeperclusters/bad";
    let mut bad = serde_json::to_value(Cluster::test().name("bad").build()).unwrap();
    bad["metadata"]["uid"] = json!("uid-bad");
    bad["spec"]["storage"] = json!({"size": null});
    fake.insert(bad_path, bad);
    let ctx = context(client);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(controller::run(ctx, Scope::Cluster, async {
        let _ = stopped.await;
    }));

    let event = eventually(
        "an Event about the bad cluster",
        Duration::from_secs(10),
        || {
            let log = fake.log();
            async move {
                log.iter()
                    .find(|r| r.path == EVENTS && r.body["regarding"]["name"] == "bad")
                    .map(|r| r.body.clone())
                    .ok_or_else(|| format!("{} requests", log.len()))
            }
        },
    )
    .await;
    eventually("the good cluster's status", Duration::from_secs(10), || {
        let log = fake.log();
        async move {
            log.iter()
                .any(|r| r.path == format!("{CLUSTER}/status"))
                .then_some(())
                .ok_or_else(|| format!("{} requests", log.len()))
        }
    })
    .await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("graceful shutdown")
        .unwrap();

    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "InvalidSpec");
    assert_eq!(event["regarding"]["kind"], "ZookeeperCluster");
    assert_eq!(event["regarding"]["uid"], "uid-bad");
    let note = event["note"].as_str().unwrap();
    assert!(note.starts_with("spec.storage.size: "), "{note}");
    assert!(
        !fake
            .log()
            .iter()
            .any(|r| r.path.contains("/bad") && r.is_write())
    );
}

fn condition(fake: &FakeApi, type_: &str) -> (String, String, String) {
    let status = stored(fake).status.unwrap();
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_}: {:?}", status.conditions));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[tokio::test]
async fn a_refused_statefulset_degrades_the_cluster_instead_of_stalling_it() {
    let cluster = Cluster::test().build();
    let (fake, ctx) = start(&cluster);
    let sts = format!("{APPS}/statefulsets/zk");
    fake.fail(Method::PATCH, &sts, 422);

    let action = reconcile(&cluster, &ctx)
        .await
        .expect("a refusal is no error");
    assert_ne!(action, Action::await_change());
    let order = writes(&fake.log());
    assert!(
        order.contains(
            &"PATCH /apis/policy/v1/namespaces/default/poddisruptionbudgets/zk".to_owned()
        ),
        "the other children are applied: {order:?}"
    );
    let (status, reason, message) = condition(&fake, "Degraded");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "StatefulSetRefused")
    );
    assert!(
        message.starts_with("StatefulSet zk: injected failure"),
        "{message}"
    );
    let refusals = |fake: &FakeApi| {
        events(fake)
            .into_iter()
            .filter(|(reason, _)| reason == "StatefulSetRefused")
            .collect::<Vec<_>>()
    };
    let announced = refusals(&fake);
    assert_eq!(announced.len(), 1, "{:?}", events(&fake));
    assert_eq!(announced[0].1, message);

    // While it lasts: no new Event.
    fake.clear_log();
    reconcile(&stored(&fake), &ctx).await.unwrap();
    assert_eq!(refusals(&fake), Vec::new());

    // Once the apply goes through, the condition clears.
    fake.heal();
    reconcile(&stored(&fake), &ctx).await.unwrap();
    let (_, reason, _) = condition(&fake, "Degraded");
    assert_eq!(reason, "NoQuorum", "no member runs yet");
    assert!(fake.get(&sts).is_some());
}

#[tokio::test]
async fn a_transient_apply_failure_is_still_an_error() {
    let cluster = Cluster::test().build();
    let (fake, ctx) = start(&cluster);
    fake.fail(Method::PATCH, &format!("{APPS}/statefulsets/zk"), 503);
    let err = reconcile(&cluster, &ctx).await.unwrap_err();
    assert_eq!(err.category(), "apply");
    assert!(stored(&fake).status.is_none(), "no status written");
}

#[tokio::test]
async fn a_reconcile_stops_where_it_is_when_the_lease_is_lost_and_none_starts_without_it() {
    let (leading_tx, leading) = tokio::sync::watch::channel(true);
    let three = Cluster::test().replicas(3).build();
    let (fake, client) = FakeApi::start();
    fake.insert(CLUSTER, serde_json::to_value(&three).unwrap());
    let admin = FakeAdmin::committed(&[1, 2, 3]);
    let ctx = context_under(client, admin.clone(), Mandate::while_leading(leading));
    reconcile(&three, &ctx).await.unwrap();
    let five = Cluster::test().replicas(5).generation(2).build();
    fake.insert(CLUSTER, serde_json::to_value(&five).unwrap());
    voters(&fake, &five, &[1, 2, 3], 2, &[]).await;
    reconcile(&five, &ctx).await.unwrap();
    assert_eq!(voter_replicas(&fake), 4, "myid 4 is starting");

    // Myid 4 has synced: the next reconcile asks the ensemble to add it,
    // and the ensemble does not answer yet.
    voters(&fake, &five, &[4], 2, &[]).await;
    admin.stall();
    let in_flight = tokio::spawn(controller::reconcile(Arc::new(five.clone()), ctx.clone()));
    eventually(
        "the reconcile to wait on the ensemble",
        Duration::from_secs(5),
        || {
            let log = admin.log();
            async move {
                log.iter()
                    .any(|l| l.starts_with("stalled"))
                    .then_some(())
                    .ok_or(format!("{log:?}"))
            }
        },
    )
    .await;
    let written = writes(&fake.log());

    // The Lease is lost: the reconcile ends at once, and nothing more is
    // asked of the ensemble or written to the API server.
    leading_tx.send(false).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("the reconcile went on after the Lease was lost")
        .unwrap();
    assert_eq!(ended.unwrap(), Action::await_change());
    let asked = admin.log();
    assert_eq!(
        asked.iter().filter(|l| l.starts_with("stalled")).count(),
        1,
        "{asked:?}"
    );
    assert_eq!(
        writes(&fake.log()),
        written,
        "written after the Lease was lost"
    );

    // Without the Lease a reconcile does not start: no request at all.
    fake.clear_log();
    let idle = reconcile(&five, &ctx).await.unwrap();
    assert_eq!(idle, Action::await_change());
    assert!(fake.log().is_empty(), "{:?}", writes(&fake.log()));
    assert_eq!(admin.log(), asked);
}

/// The cluster as a watch on the old schema's storage delivers it right
/// after the CRD is replaced: the stored version, with `spec.networkPolicy`
/// pruned (see `controller::cache`).
fn pruned(stored: Value) -> Arc<kube::api::DynamicObject> {
    let mut watched = stored;
    watched["spec"]
        .as_object_mut()
        .unwrap()
        .remove("networkPolicy");
    Arc::new(serde_json::from_value(watched).unwrap())
}

#[tokio::test]
async fn a_cluster_the_watch_delivers_pruned_is_reconciled_as_the_server_holds_it() {
    let mut cluster = Cluster::test().build();
    cluster.spec.network_policy.enabled = true;
    let (fake, ctx) = start(&cluster);
    let policies = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies";
    let policy_writes = |fake: &FakeApi| {
        fake.log()
            .iter()
            .filter(|r| r.is_write() && r.path.starts_with(policies))
            .count()
    };

    controller::reconcile_watched(pruned(fake.get(CLUSTER).unwrap()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(
        policy_writes(&fake),
        1,
        "the NetworkPolicy the stored spec asks for: {:?}",
        writes(&fake.log())
    );

    // The version the status write made, delivered pruned again: this
    // replica's copy of it answers, and the NetworkPolicy stays.
    fake.clear_log();
    controller::reconcile_watched(pruned(fake.get(CLUSTER).unwrap()), ctx.clone())
        .await
        .unwrap();
    let log = fake.log();
    assert!(
        !log.iter()
            .any(|r| r.path == CLUSTER && r.method == Method::GET),
        "read the cluster again: {:?}",
        log.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    assert_eq!(policy_writes(&fake), 0, "{:?}", writes(&log));
}
