//! One reconcile of one cluster: read → validate → build → apply → status.
//! The decisions live in [`crate::cluster`], [`crate::build`] and
//! [`crate::status`]; this file only moves objects between them and the API
//! server.

use std::collections::BTreeMap;
use std::fmt::Debug;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{debug, info, warn};
use zk_ensemble::Role;

use super::{Context, Error, apply};
use crate::build::{self, FIELD_MANAGER, labels};
use crate::cluster::{self, ValidatedCluster};
use crate::crd::{ZookeeperCluster, ZookeeperClusterStatus};
use crate::status::{self, Notice, PodView, SidecarReading};

/// Reconciles one cluster and says when to look again.
pub async fn reconcile_cluster(cluster: &ZookeeperCluster, ctx: &Context) -> Result<Action, Error> {
    // Deletion is Kubernetes' garbage collector's job: every child has an
    // owner reference. Nothing is left to do, and writing now would race it.
    if cluster.metadata.deletion_timestamp.is_some() {
        debug!(cluster = %cluster.name_any(), "being deleted");
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let previous = cluster.status.as_ref();
    let validated = match cluster::validate_with(cluster, &ctx.defaults) {
        Ok(validated) => validated,
        Err(invalid) => {
            warn!(cluster = %cluster.name_any(), %invalid, "invalid spec; nothing changed");
            let status = status::invalid(previous, &invalid, cluster.metadata.generation, now);
            write_status(cluster, ctx, previous, &status).await?;
            // Only a new spec can fix it.
            return Ok(Action::await_change());
        }
    };

    let children = build::children(&validated);
    let ns = validated.namespace.as_str();
    let client = &ctx.client;
    ensure::<ConfigMap>(&Api::namespaced(client.clone(), ns), &children.config).await?;
    ensure::<ConfigMap>(
        &Api::namespaced(client.clone(), ns),
        &children.client_config,
    )
    .await?;
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    ensure(&services, &children.headless_service).await?;
    ensure(&services, &children.client_service).await?;
    let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    ensure(&stateful_sets, &children.voters).await?;
    match &children.observers {
        Some(observers) => {
            ensure(&stateful_sets, observers).await?;
        }
        None => remove_observers(&stateful_sets, &validated).await?,
    }
    ensure::<PodDisruptionBudget>(
        &Api::namespaced(client.clone(), ns),
        &children.pod_disruption_budget,
    )
    .await?;

    let pods = member_pods(ctx, &validated).await?;
    let sidecars = read_sidecars(ctx, &pods).await;
    let observation = status::observe(&validated, &pods, &sidecars);
    label_pods(ctx, ns, &observation).await?;
    let status = status::compute(&validated, &observation, previous, now);
    write_status(cluster, ctx, previous, &status).await?;
    Ok(Action::requeue(status::requeue_after(&status)))
}

/// Applies `desired` unless the object already is as zookube built it.
/// Returns the object as the API server holds it.
async fn ensure<K>(api: &Api<K>, desired: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let kind = K::kind(&()).into_owned();
    let name = desired.name_any();
    let current = api.get_opt(&name).await.map_err(|source| Error::Read {
        kind: kind.clone(),
        name: name.clone(),
        source,
    })?;
    if let Some(current) = current {
        let encode = |v: &K| {
            serde_json::to_value(v).map_err(|source| Error::Encode {
                what: format!("{kind} {name}"),
                source,
            })
        };
        if apply::up_to_date(&encode(desired)?, &encode(&current)?) {
            return Ok(current);
        }
    }
    info!(%kind, %name, "applying");
    api.patch(&name, &apply_params(), &Patch::Apply(desired))
        .await
        .map_err(|source| Error::Apply { kind, name, source })
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Deletes the observers' StatefulSet of a cluster that no longer has
/// observers — only one this cluster controls.
async fn remove_observers(api: &Api<StatefulSet>, cluster: &ValidatedCluster) -> Result<(), Error> {
    let name = build::stateful_set_name(&cluster.name, Role::Observer);
    let read = |source| Error::Read {
        kind: "StatefulSet".to_owned(),
        name: name.clone(),
        source,
    };
    let Some(existing) = api.get_opt(&name).await.map_err(read)? else {
        return Ok(());
    };
    let ours = cluster.owner.as_ref().is_some_and(|owner| {
        existing
            .owner_references()
            .iter()
            .any(|r| r.uid == owner.uid && r.controller == Some(true))
    });
    if !ours {
        return Ok(());
    }
    info!(%name, "observers scaled to 0: deleting their StatefulSet");
    api.delete(&name, &DeleteParams::default())
        .await
        .map(|_| ())
        .map_err(|source| Error::Delete {
            kind: "StatefulSet".to_owned(),
            name,
            source,
        })
}

/// The pods of a cluster, voters and observers.
async fn member_pods(ctx: &Context, cluster: &ValidatedCluster) -> Result<Vec<PodView>, Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &cluster.namespace);
    // Managed-by too: another chart may also call its pods `zookeeper`.
    let mut selector = labels::cluster_selector(&cluster.name);
    selector.insert(labels::MANAGED_BY.to_owned(), labels::MANAGER.to_owned());
    let selector = labels::selector_string(&selector);
    let pods = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::ListPods {
            cluster: cluster.name.clone(),
            source,
        })?;
    Ok(pods.items.iter().map(PodView::of).collect())
}

/// Every running pod's sidecar status, read concurrently; each read gives
/// up after [`crate::sidecar_client::TIMEOUT`].
async fn read_sidecars(ctx: &Context, pods: &[PodView]) -> BTreeMap<String, SidecarReading> {
    let reads = pods.iter().filter_map(|pod| {
        let (ip, port) = pod.sidecar.clone()?;
        let name = pod.name.clone();
        Some(async move {
            let reading = ctx
                .sidecars
                .status(&ip, port)
                .await
                .map_err(|e| e.to_string());
            (name, reading)
        })
    });
    join_all(reads).await.into_iter().collect()
}

/// Sets or removes `zookube.io/role` where it is wrong. The label is the
/// only field of a pod zookube applies, so applying without it removes it.
async fn label_pods(
    ctx: &Context,
    namespace: &str,
    observation: &status::Observation,
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    for (pod, label) in status::role_label_changes(observation) {
        let mut metadata = json!({ "name": pod });
        if let Some(label) = label {
            metadata["labels"] = json!({ labels::ROLE: label.as_str() });
        }
        let patch = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": metadata });
        debug!(%pod, ?label, "labelling");
        api.patch(&pod, &apply_params(), &Patch::Apply(&patch))
            .await
            .map_err(|source| Error::LabelPod {
                pod: pod.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Writes the status when it changed, and publishes the Events the change
/// deserves.
async fn write_status(
    cluster: &ZookeeperCluster,
    ctx: &Context,
    previous: Option<&ZookeeperClusterStatus>,
    status: &ZookeeperClusterStatus,
) -> Result<(), Error> {
    if previous == Some(status) {
        return Ok(());
    }
    let name = cluster.name_any();
    let api: Api<ZookeeperCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": ZookeeperCluster::api_version(&()),
        "kind": ZookeeperCluster::kind(&()),
        "status": status,
    });
    api.patch_status(&name, &apply_params(), &Patch::Apply(&patch))
        .await
        .map_err(|source| Error::WriteStatus {
            cluster: name.clone(),
            source,
        })?;
    for notice in status::notices(previous, status) {
        let (type_, reason, note) = match notice {
            Notice::LeaderElected(note) => (EventType::Normal, "LeaderElected", note),
            Notice::QuorumLost(note) => (EventType::Warning, "QuorumLost", note),
            Notice::InvalidSpec(note) => (EventType::Warning, "InvalidSpec", note),
        };
        super::publish(ctx, cluster, type_, reason, note).await;
    }
    Ok(())
}

/// The Event of a failed reconcile.
pub fn failure_event(error: &Error) -> Event {
    Event {
        type_: EventType::Warning,
        reason: error.reason().to_owned(),
        note: Some(super::truncate_note(error.to_string())),
        action: "Reconcile".to_owned(),
        secondary: None,
    }
}
