//! zookube end to end, on a real Kubernetes with the operator installed in
//! the cluster from `charts/zookube` and images built for this run.
//!
//! Every test here is ignored in the normal test run: each needs the
//! cluster that `tests/e2e/run` starts (it sets `ZOOKUBE_E2E_KUBECONFIG`
//! and runs them with `--ignored`, one at a time). See the README, "End to
//! end".

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;

use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use zk_e2e::checks::{self, longest_gap, lost_writes, parse_write_log};
use zk_e2e::examples::{self, ClusterSetting, FULL, MINIMAL, fit_for_cluster};
use zk_e2e::poll::{self, note};
use zk_e2e::scenario::{
    FIRST_HEALTHY, SCALE, SETTLE, Scenario, cleanup_namespace, fresh_namespace, refusal,
};
use zk_e2e::zkcli::now_ms;
use zk_e2e::{Error, Result, cluster, ensure, operator};
use zk_ensemble::Role;
use zk_ensemble::identity::{self, Myid};
use zk_ensemble::messages::REPLICAS_ODD;
use zk_operator::crd::{RetentionPolicy, ZookeeperCluster, messages};
use zk_operator::status::INVALID_SPEC;

/// Where the tests keep their znodes.
const ROOT: &str = "/zookube-e2e";
/// Written before the leader goes; read after every change.
const MARKER: &str = "/zookube-e2e/marker";
/// The writer's znodes.
const WRITES: &str = "/zookube-e2e/writes";

/// The longest time without an acknowledged write allowed while scaling.
/// Each write is a fresh `zkCli.sh` (a JVM start, about a second), an
/// attempt that hits a member on its way out fails within the 5 s session
/// timeout, and adding or removing a voter by `reconfig` needs no election.
/// Losing the quorum — restarting the members together, or removing one
/// before the new config is committed — costs pod restarts and an election,
/// well over this.
const MAX_WRITE_GAP_MS: u64 = 20_000;

fn setting(namespace: &str) -> ClusterSetting {
    ClusterSetting {
        namespace: namespace.to_owned(),
        sidecar_image: cluster::sidecar_image(),
        zookeeper_image: cluster::zookeeper_image(),
        cpu_request: cluster::cpu_request(),
    }
}

fn marker_value() -> String {
    format!("written-before-the-leader-went-{}", now_ms())
}

#[tokio::test]
#[ignore = "needs the cluster of tests/e2e/run"]
async fn api_server_accepts_the_examples_and_refuses_even_replicas() -> Result<()> {
    let started = Instant::now();
    let client = cluster::connect().await?;
    let namespace = "zk-e2e-validation";
    fresh_namespace(&client, namespace, started).await?;
    let clusters: Api<ZookeeperCluster> = Api::namespaced(client.clone(), namespace);

    // Every example as written (only its namespace changed) passes the
    // real API server's schema and CEL rules.
    for example in examples::ALL {
        let mut cluster = example.cluster()?;
        cluster.metadata.namespace = Some(namespace.to_owned());
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        clusters
            .create(&dry_run, &cluster)
            .await
            .map_err(|e| Error::Check(format!("examples/{}: {e}", example.file)))?;
        note(started, format!("examples/{} accepted", example.file));
    }

    // An even number of voters is refused at admission, with the rule's words.
    for replicas in [2, 4] {
        let mut cluster = MINIMAL.cluster()?;
        cluster.metadata.namespace = Some(namespace.to_owned());
        cluster.spec.replicas = replicas;
        let refused = refusal(clusters.create(&PostParams::default(), &cluster).await)?;
        ensure(
            refused.code == 422 && refused.message.contains(REPLICAS_ODD),
            || format!("replicas {replicas} was refused with {refused:?}"),
        )?;
        note(
            started,
            format!("replicas {replicas} refused: {}", refused.message),
        );
    }
    let stored = clusters.list(&ListParams::default()).await?.items;
    ensure(stored.is_empty(), || {
        format!("{} clusters were stored", stored.len())
    })?;

    cleanup_namespace(&client, namespace, started).await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the cluster of tests/e2e/run"]
async fn full_example_with_observers_survives_the_loss_of_its_leader() -> Result<()> {
    let started = Instant::now();
    let client = cluster::connect().await?;
    let cluster = fit_for_cluster(FULL.cluster()?, &setting("zk-e2e-full"));
    let (voters, observers) = (5, 2);
    let s = Scenario::apply(client.clone(), cluster, started).await?;

    let first = s
        .wait_healthy(voters, observers, FIRST_HEALTHY, |_| Ok(()))
        .await?;
    // ZooKeeper itself agrees with the status and the sidecars.
    s.wait_srvr_agrees(voters, observers, &first).await?;
    let marker = marker_value();
    s.zk.create(ROOT, "zookube-e2e").await?;
    s.zk.create(MARKER, &marker).await?;
    // Applications find the ensemble through the discovery ConfigMap, and
    // an observer's metrics, scraped by its IP, name the leader.
    s.discovery_serves(MARKER, &marker).await?;
    let observer = identity::pod_name(
        &s.name,
        Myid::for_ordinal(Role::Observer, 0).map_err(|e| Error::Check(e.to_string()))?,
    );
    let scraped = s.scrape_leader(&observer).await?;
    ensure(scraped == first.myid, || {
        format!(
            "{observer}'s /metrics says leader {scraped}, the status {}",
            first.myid
        )
    })?;

    let after = s.delete_leader(voters, observers, &first).await?;
    s.wait_srvr_agrees(voters, observers, &after).await?;
    s.zk.expect_data(MARKER, &marker).await?;

    // The example says `whenDeleted: Retain`.
    s.delete_keeping_volumes().await?;

    cleanup_namespace(&client, &s.namespace, started).await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the cluster of tests/e2e/run"]
async fn minimal_example_survives_losing_its_leader_pod_and_process_and_scales_3_5_3_through_operator_crashes()
-> Result<()> {
    let started = Instant::now();
    let client = cluster::connect().await?;
    let cluster = fit_for_cluster(MINIMAL.cluster()?, &setting("zk-e2e-minimal"));
    let s = Scenario::apply(client.clone(), cluster, started).await?;

    // Ready, leader and epoch as the sidecars say, the leader labelled.
    let first = s.wait_healthy(3, 0, FIRST_HEALTHY, |_| Ok(())).await?;

    // Data written through the client Service survives the leader's pod.
    let marker = marker_value();
    s.zk.create(ROOT, "zookube-e2e").await?;
    s.zk.create(MARKER, &marker).await?;
    s.delete_leader(3, 0, &first).await?;
    s.zk.expect_data(MARKER, &marker).await?;

    // `kubectl scale` 3 → 5 → 3 under a steady stream of writes.
    s.zk.create(WRITES, "zookube-e2e").await?;
    let writer =
        s.zk.start_writer(WRITES, Duration::from_secs(30 * 60))
            .await?;
    writer.wait_for_acks(3, 0).await?;
    let first_voter = Myid::for_ordinal(Role::Voter, 0).map_err(|e| Error::Check(e.to_string()))?;
    let voters = s.watch_voters(&identity::pod_name(&s.name, first_voter));
    let from = now_ms();
    let scaled = s.scale(5).await?;
    ensure(
        scaled.spec.and_then(|spec| spec.replicas) == Some(5),
        || "the scale subresource did not take replicas 5".to_owned(),
    )?;

    // Halfway, once the ensemble has taken its fourth voter, the operator
    // replica that holds the Lease is killed as a crash would (SIGKILL: no
    // release, nothing finished). Whoever holds the Lease next finishes
    // the change from what it reads, one member at a time.
    poll::until(started, "the fourth voter to join", SCALE, || async {
        match voters.seen().last() {
            Some(last) if last.len() >= 4 => Ok(()),
            last => Err(format!("voters {last:?}")),
        }
    })
    .await?;
    let crash = OperatorCrash::now(&client, started, &voters).await?;
    s.wait_healthy(5, 0, SCALE, |_| Ok(())).await?;
    crash.was_restarted(&client, started).await?;
    s.zk.expect_data(MARKER, &marker).await?;

    // And again on the way down, once the fifth voter has left.
    s.scale(3).await?;
    poll::until(started, "the fifth voter to leave", SCALE, || async {
        let seen = voters.seen();
        match seen.last() {
            Some(last) if last.len() == 4 && seen.iter().any(|v| v.len() == 5) => Ok(()),
            last => Err(format!("voters {last:?}")),
        }
    })
    .await?;
    let crash = OperatorCrash::now(&client, started, &voters).await?;
    let settled = s.wait_healthy(3, 0, SCALE, |_| Ok(())).await?;
    crash.was_restarted(&client, started).await?;
    let to = now_ms();
    let steps = checks::one_voter_at_a_time(&voters.stop()).map_err(Error::Check)?;
    note(started, format!("the voters went {steps:?}"));
    ensure(
        steps.first().map(Vec::len) == Some(3) && steps.len() == 5,
        || format!("the voters went {steps:?}, not 3 → 4 → 5 → 4 → 3"),
    )?;
    writer.wait_for_acks(3, to).await?;

    // The leader's ZooKeeper killed in place (its container restarts, the
    // pod stays): another voter leads, the writes go on, none is lost.
    s.kill_leader_in_place(3, 0, &settled).await?;
    writer.wait_for_acks(3, now_ms()).await?;
    let log = parse_write_log(&writer.log().await?);
    writer.stop().await?;

    let present = s.zk.children(WRITES).await?;
    let lost = lost_writes(&log.acked, &present);
    ensure(lost.is_empty(), || {
        format!(
            "{} of {} acknowledged writes are gone: {lost:?}",
            lost.len(),
            log.acked.len()
        )
    })?;
    let gap = longest_gap(&log.acked, from, to).ok_or_else(|| {
        Error::Check("the writes do not cover the whole scale from 3 to 5 and back".to_owned())
    })?;
    note(
        started,
        format!(
            "while scaling 3 → 5 → 3 ({} s): {} writes acknowledged, {} failed, the longest gap {gap} ms",
            (to - from) / 1000,
            log.acked.len(),
            log.failed.len()
        ),
    );
    ensure(gap <= MAX_WRITE_GAP_MS, || {
        format!(
            "no write was acknowledged for {gap} ms while scaling (at most {MAX_WRITE_GAP_MS} ms)"
        )
    })?;
    s.zk.expect_data(MARKER, &marker).await?;

    // An even size through the scale subresource is refused with the CEL
    // rule's words, and changes nothing.
    let refused = refusal(s.scale(4).await)?;
    ensure(
        refused.code == 422 && refused.message.contains(REPLICAS_ODD),
        || format!("kubectl scale --replicas=4 was refused with {refused:?}"),
    )?;
    note(started, format!("replicas 4 refused: {}", refused.message));
    let replicas = s.clusters.get(&s.name).await?.spec.replicas;
    ensure(replicas == 3, || format!("spec.replicas is {replicas}"))?;

    // Deleting the cluster removes its children; the volumes stay
    // (`whenDeleted` defaults to Retain), those of members 4 and 5 too
    // (`whenScaled` defaults to Retain).
    let claims = s.claims().await?;
    ensure(claims.len() == 5, || {
        format!("expected the volumes of 5 members, found {claims:?}")
    })?;
    s.delete_keeping_volumes().await?;

    cleanup_namespace(&client, &s.namespace, started).await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the cluster of tests/e2e/run"]
async fn a_settings_change_rolls_one_member_at_a_time_the_leader_last() -> Result<()> {
    let started = Instant::now();
    let client = cluster::connect().await?;
    let mut cluster = fit_for_cluster(MINIMAL.cluster()?, &setting("zk-e2e-roll"));
    cluster.metadata.name = Some("roll".to_owned());
    cluster.spec.storage.when_deleted = Some(RetentionPolicy::Delete);
    let s = Scenario::apply(client.clone(), cluster, started).await?;
    let first = s.wait_healthy(3, 0, FIRST_HEALTHY, |_| Ok(())).await?;
    let marker = marker_value();
    s.zk.create(ROOT, "zookube-e2e").await?;
    s.zk.create(MARKER, &marker).await?;

    // A new zoo.cfg setting: every member restarts once, one at a time,
    // the leader last, and the data stays.
    let patch = serde_json::json!({ "spec": { "config": { "maxClientCnxns": 100 } } });
    let order = s.roll_setting(3, patch, &first).await?;
    note(started, format!("restarted in the order {order:?}"));
    // The leader handed leadership over before its pod went.
    let uid = s
        .clusters
        .get(&s.name)
        .await?
        .metadata
        .uid
        .unwrap_or_default();
    let events = s.events(&uid).await.map_err(Error::Check)?;
    let handed = events
        .iter()
        .find(|(reason, _)| reason == "LeaderHandedOver")
        .ok_or_else(|| Error::Check(format!("no LeaderHandedOver Event; Events: {events:?}")))?;
    ensure(handed.1.contains(&first.pod), || {
        format!(
            "the hand-over names another member than the leader {}: {handed:?}",
            first.pod
        )
    })?;
    note(started, format!("LeaderHandedOver: {}", handed.1));
    let after = s.wait_healthy(3, 0, SETTLE, |_| Ok(())).await?;
    s.wait_srvr_agrees(3, 0, &after).await?;
    s.zk.expect_data(MARKER, &marker).await?;

    // `whenDeleted: Delete`: the volumes go with the cluster.
    let claims = s.claims().await?;
    ensure(claims.len() == 3, || {
        format!("expected 3 volumes, found {claims:?}")
    })?;
    s.delete_cluster().await?;
    let what = "the volumes to go with the cluster (whenDeleted: Delete)";
    let s = &s;
    poll::until(started, what, SETTLE, || async move {
        let left = s.claims().await.map_err(|e| e.to_string())?;
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("left: {left:?}"))
        }
    })
    .await?;

    cleanup_namespace(&client, &s.namespace, started).await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the cluster of tests/e2e/run"]
async fn edits_the_statefulset_api_would_refuse_are_refused_or_explained_and_change_nothing()
-> Result<()> {
    let started = Instant::now();
    let client = cluster::connect().await?;
    let mut cluster = fit_for_cluster(MINIMAL.cluster()?, &setting("zk-e2e-edit"));
    cluster.metadata.name = Some("edit".to_owned());
    cluster.spec.storage.when_deleted = Some(RetentionPolicy::Delete);
    let s = Scenario::apply(client.clone(), cluster, started).await?;
    let first = s.wait_healthy(3, 0, FIRST_HEALTHY, |_| Ok(())).await?;

    // Unchanged, the cluster costs a reconcile its pod list: the children
    // and the super user's Secret come from the operator's caches (the
    // touch is an edit, so the cluster itself is read once).
    let cost = s.unchanged_reconcile_cost().await?;
    note(
        started,
        format!("one unchanged reconcile asked the API server {cost:?}"),
    );
    let children: Vec<_> = cost
        .iter()
        .filter(|((_, resource), _)| operator::CHILDREN.contains(&resource.as_str()))
        .collect();
    ensure(children.is_empty(), || {
        format!("an unchanged cluster's reconcile read or wrote its children: {children:?}")
    })?;
    ensure(
        cost.get(&("list".to_owned(), "pods".to_owned()))
            .is_some_and(|n| *n >= 1),
        || format!("the reconcile listed no pods: {cost:?}"),
    )?;

    // Adding a StorageClass after creation: the API server itself refuses
    // it (a rule on the always-present storage object, so it holds when
    // the field appears), with the rule's words.
    let patch = serde_json::json!({ "spec": { "storage": { "storageClassName": "local" } } });
    let refused = refusal(
        s.clusters
            .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    )?;
    ensure(
        refused.code == 422 && refused.message.contains(messages::STORAGE_CLASS_IMMUTABLE),
        || format!("adding storageClassName was refused with {refused:?}"),
    )?;
    note(
        started,
        format!("storageClassName refused: {}", refused.message),
    );

    // A pod label with a space: the CRD admits it, the StatefulSet API
    // would not. The operator says which field and how to fix it, in a
    // condition and an Event, and changes nothing; `kubectl get zk` stays
    // true.
    let patch = serde_json::json!({ "spec": { "pod": { "labels": { "team": "platform a" } } } });
    s.clusters
        .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let message = invalid_spec_named(&s, "spec.pod.labels", started).await?;
    note(started, format!("InvalidSpec: {message}"));
    s.observe(3, 0).await.map_err(Error::Check)?;
    let labels = s.member_pods().await?;
    ensure(
        labels.iter().all(|p| {
            p.metadata
                .labels
                .as_ref()
                .is_none_or(|l| !l.contains_key("team"))
        }),
        || "a member pod got the invalid label".to_owned(),
    )?;

    // Taking the label back clears the condition; the ensemble never moved.
    let patch = serde_json::json!({ "spec": { "pod": { "labels": null } } });
    s.clusters
        .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let after = s.wait_healthy(3, 0, SETTLE, |_| Ok(())).await?;
    let cluster = s.clusters.get(&s.name).await?;
    let invalid = cluster
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .any(|c| c.type_ == INVALID_SPEC && c.status == "True");
    ensure(!invalid, || {
        "InvalidSpec is still True after the fix".to_owned()
    })?;
    ensure(after.peer_epoch == first.peer_epoch, || {
        format!("the leader changed ({first:?} -> {after:?}) though nothing was applied")
    })?;

    // TLS, which the CRD admits (examples/tls.yaml) and the operator does
    // not yet run on Kubernetes: refused by name, nothing changes, and
    // taking it back clears the condition.
    let patch = serde_json::json!({ "spec": { "tls": { "quorum": {}, "client": {} } } });
    s.clusters
        .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let message = invalid_spec_named(&s, "spec.tls", started).await?;
    ensure(message.contains("zk-operator local"), || {
        format!("the refusal does not say where TLS runs: {message}")
    })?;
    s.observe(3, 0).await.map_err(Error::Check)?;
    let patch = serde_json::json!({ "spec": { "tls": null } });
    s.clusters
        .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let after_tls = s.wait_healthy(3, 0, SETTLE, |_| Ok(())).await?;
    ensure(after_tls.peer_epoch == first.peer_epoch, || {
        format!("the leader changed ({first:?} -> {after_tls:?}) though TLS was refused")
    })?;

    s.delete_cluster().await?;
    cleanup_namespace(&client, &s.namespace, started).await;
    Ok(())
}

/// Waits for an `InvalidSpec` condition and Event naming `field`; the
/// condition's message.
async fn invalid_spec_named(s: &Scenario, field: &str, started: Instant) -> Result<String> {
    let what = format!("an InvalidSpec condition and Event naming {field}");
    poll::until(started, &what, SETTLE, || async move {
        let cluster = s.clusters.get(&s.name).await.map_err(|e| e.to_string())?;
        let status = cluster.status.unwrap_or_default();
        let condition = status
            .conditions
            .iter()
            .find(|c| c.type_ == INVALID_SPEC && c.status == "True")
            .ok_or("no InvalidSpec condition yet")?;
        if !condition.message.contains(field) {
            return Err(format!("InvalidSpec says {:?}", condition.message));
        }
        let events = s.events(&cluster.metadata.uid.unwrap_or_default()).await?;
        events
            .iter()
            .find(|(reason, note)| reason == "InvalidSpec" && note.contains(field))
            .ok_or(format!(
                "no InvalidSpec Event naming {field}; Events: {events:?}"
            ))?;
        Ok(condition.message.clone())
    })
    .await
}

/// The CRD as checked in: what `kubectl apply` of the README installs.
const CRD_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../crds/zookeepercluster.yaml"
);

#[tokio::test]
#[ignore = "needs the cluster of tests/e2e/run"]
async fn the_crd_upgrades_in_place_by_the_readme_and_a_new_field_then_works() -> Result<()> {
    let started = Instant::now();
    let client = cluster::connect().await?;
    // An older release's CRD, installed by Helm: this one without
    // spec.networkPolicy (the newest field), owned by the manager "helm".
    let mut older = serde_json::to_value(<ZookeeperCluster as kube::CustomResourceExt>::crd())
        .map_err(|e| Error::Check(e.to_string()))?;
    let spec = &mut older["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let removed = spec["properties"]
        .as_object_mut()
        .and_then(|p| p.remove("networkPolicy"));
    ensure(removed.is_some(), || {
        "the CRD has no spec.networkPolicy to leave out".to_owned()
    })?;
    let older_file = std::env::temp_dir().join(format!("zookube-e2e-older-crd-{}.json", now_ms()));
    std::fs::write(&older_file, older.to_string()).map_err(|e| Error::Check(e.to_string()))?;
    let older_path = older_file.to_string_lossy().into_owned();
    let outcome = crd_upgrade(&client, &older_path, started).await;
    let _ = std::fs::remove_file(&older_file);
    // Whatever happened, leave the CRD under test installed.
    let restored = cluster::kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        CRD_FILE,
    ])
    .await;
    outcome?;
    restored.map_err(Error::Check)?;
    Ok(())
}

async fn crd_upgrade(client: &kube::Client, older: &str, started: Instant) -> Result<()> {
    let crd = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cluster::kubectl(&args).await.map_err(Error::Check)
        }
    };
    crd(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "helm",
        "-f",
        older,
    ])
    .await?;
    note(
        started,
        "installed an older CRD (no spec.networkPolicy) as Helm would own it",
    );

    let mut cluster = fit_for_cluster(MINIMAL.cluster()?, &setting("zk-e2e-crd"));
    cluster.metadata.name = Some("upgraded".to_owned());
    cluster.spec.replicas = 1;
    cluster.spec.network_policy.enabled = true;
    let s = Scenario::apply(client.clone(), cluster, started).await?;
    let stored = s.clusters.get(&s.name).await?;
    ensure(!stored.spec.network_policy.enabled, || {
        "the older CRD kept spec.networkPolicy, which it does not know".to_owned()
    })?;
    note(
        started,
        "under the older CRD, spec.networkPolicy was dropped (pruned) as unknown",
    );
    s.wait_healthy(1, 0, FIRST_HEALTHY, |_| Ok(())).await?;

    // The README's upgrade: apply the new CRD before `helm upgrade`.
    // Without --force-conflicts it is refused: Helm owns the old schema.
    let plain = cluster::kubectl(&["apply", "--server-side", "-f", CRD_FILE]).await;
    ensure(
        plain.as_ref().is_err_and(|e| e.contains("conflict")),
        || format!("applying the new CRD over Helm's without --force-conflicts gave {plain:?}"),
    )?;
    // A watch opened before the new CRD, as the operator's is. On
    // Kubernetes 1.36 it can deliver the edit below with the new field
    // pruned, under the edit's own resourceVersion, just before it closes
    // (the old schema's storage still serves it; see
    // operator/src/controller/cache.rs). The operator must act on the
    // field either way; what this watch saw is reported.
    let version = s.clusters.get(&s.name).await?.resource_version();
    let watch = s
        .clusters
        .watch(
            &WatchParams::default().timeout(60),
            version.as_deref().unwrap_or("0"),
        )
        .await?;
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let watching = tokio::spawn({
        let delivered = delivered.clone();
        async move {
            let mut watch = std::pin::pin!(watch);
            while let Some(Ok(WatchEvent::Modified(c))) = watch.next().await {
                let seen = (c.resource_version(), c.spec.network_policy.enabled);
                delivered
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(seen);
            }
        }
    });
    crd(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        CRD_FILE,
    ])
    .await?;
    note(started, "applied the new CRD as the README says");

    // The cluster created under the old CRD is still read and reconciled,
    // and the new field now holds.
    // The API server serves a new schema a moment after the apply
    // returns; until then the field is still pruned.
    let patch = serde_json::json!({ "spec": { "networkPolicy": { "enabled": true } } });
    let (clusters, name, patch) = (&s.clusters, s.name.as_str(), &patch);
    let holds = poll::until(
        started,
        "spec.networkPolicy.enabled to hold",
        SETTLE,
        || async move {
            let patched = clusters
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(|e| e.to_string())?;
            patched
                .spec
                .network_policy
                .enabled
                .then(|| patched.resource_version().unwrap_or_default())
                .ok_or_else(|| "the API server still drops spec.networkPolicy".to_owned())
        },
    )
    .await?;
    note(started, "after the upgrade, spec.networkPolicy holds");
    let policies: Api<k8s_openapi::api::networking::v1::NetworkPolicy> =
        Api::namespaced(client.clone(), &s.namespace);
    let name = zk_operator::build::network_policy_name(&s.name);
    let (policies, name) = (&policies, name.as_str());
    poll::until(
        started,
        "the operator to create the NetworkPolicy",
        SETTLE,
        || async move {
            policies
                .get_opt(name)
                .await
                .map_err(|e| e.to_string())?
                .map(|_| ())
                .ok_or_else(|| format!("no NetworkPolicy {name} yet"))
        },
    )
    .await?;
    watching.abort();
    let delivered = delivered
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let pruned = delivered
        .iter()
        .any(|(v, enabled)| v.as_deref() == Some(holds.as_str()) && !enabled);
    note(
        started,
        format!(
            "the operator created the NetworkPolicy; a watch opened before the CRD apply delivered {delivered:?} (version {holds} {})",
            if pruned {
                "pruned: the case the operator reads live"
            } else {
                "as stored"
            }
        ),
    );
    s.wait_healthy(1, 0, SETTLE, |_| Ok(())).await?;
    s.delete_cluster().await?;
    cleanup_namespace(client, &s.namespace, started).await;
    Ok(())
}

/// The operator replica that held the Lease, killed as a crash would
/// (SIGKILL: no release, nothing finished), and the replicas' restart
/// counts before.
struct OperatorCrash {
    holder: String,
    restarts_before: Vec<(Option<String>, i32)>,
}

impl OperatorCrash {
    async fn now(
        client: &kube::Client,
        started: Instant,
        voters: &zk_e2e::scenario::VoterWatch,
    ) -> Result<OperatorCrash> {
        let holder = operator::lease_holder(client)
            .await?
            .ok_or_else(|| Error::Check("no operator replica holds the Lease".to_owned()))?;
        let restarts_before = operator_restarts(client).await?;
        operator::kill(client, &holder).await?;
        note(
            started,
            format!(
                "killed the operator replica {holder} (it held the Lease) with voters {:?}",
                voters.seen().last()
            ),
        );
        Ok(OperatorCrash {
            holder,
            restarts_before,
        })
    }

    /// Checks that the kill took: the killed replica's container restarted.
    async fn was_restarted(&self, client: &kube::Client, started: Instant) -> Result<()> {
        let now_holding = operator::lease_holder(client).await?;
        let restarted = operator_restarts(client).await?;
        note(
            started,
            format!(
                "the change was finished under the Lease of {now_holding:?}; operator restarts before {:?}, after {restarted:?}",
                self.restarts_before
            ),
        );
        ensure(restarted != self.restarts_before, || {
            format!(
                "the kill of {} left the operator pods as they were: {restarted:?}",
                self.holder
            )
        })
    }
}

async fn operator_restarts(client: &kube::Client) -> Result<Vec<(Option<String>, i32)>> {
    Ok(operator::pods(client)
        .await?
        .iter()
        .map(|p| (p.metadata.name.clone(), operator::restarts(p)))
        .collect())
}
