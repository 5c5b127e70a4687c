//! One reconcile of one cluster: read → validate → build → apply → status.
//! The decisions live in [`crate::cluster`], [`crate::build`] and
//! [`crate::status`]; this file only moves objects between them and the API
//! server.

use std::collections::BTreeMap;
use std::fmt::Debug;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{debug, info, warn};
use zk_ensemble::plan::{self, Desired};
use zk_ensemble::{Role, identity};

use super::cache::Cached;
use super::{Context, Error, apply};
use crate::build::{self, FIELD_MANAGER, labels};
use crate::cluster::{self, ValidatedCluster};
use crate::crd::{ZookeeperCluster, ZookeeperClusterStatus};
use crate::status::{self, Notice, PodView, SidecarReading};
use crate::{membership, reconfig};

/// Reconciles one cluster and says when to look again.
pub async fn reconcile_cluster(cluster: &ZookeeperCluster, ctx: &Context) -> Result<Action, Error> {
    // Deletion is Kubernetes' garbage collector's job: every child has an
    // owner reference. Nothing is left to do, and writing now would race it.
    if cluster.metadata.deletion_timestamp.is_some() {
        debug!(cluster = %cluster.name_any(), "being deleted");
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let written = ctx.written(&ObjectRef::from(cluster));
    let previous = super::newest_status(cluster, written.as_ref());
    let validated = match cluster::validate_for_kubernetes(cluster, &ctx.defaults) {
        Ok(validated) => validated,
        Err(invalid) => {
            warn!(cluster = %cluster.name_any(), %invalid, "invalid spec; nothing changed");
            let status = status::invalid(previous, &invalid, cluster.metadata.generation, now);
            write_status(cluster, ctx, previous, &status).await?;
            // Only a new spec can fix it.
            return Ok(Action::await_change());
        }
    };

    let ns = validated.namespace.clone();
    let client = &ctx.client;
    // Read: what exists, the pods and their sidecars.
    let password = ensure_super_secret(ctx, &validated).await?;
    let current = read_current(ctx, &validated).await?;
    let pods = member_pods(ctx, &validated).await?;
    let sidecars = read_sidecars(ctx, &pods).await;

    // Decide: the planner's next step, when the objects alone do not show
    // the ensemble as the spec asks.
    let templates = membership::Templates {
        voter: build::template_hash(&build::stateful_set(&validated, Role::Voter))
            .map(str::to_owned),
        observer: build::template_hash(&build::stateful_set(&validated, Role::Observer))
            .map(str::to_owned),
    };
    let target = membership::target(&pods, validated.ensemble.ports.client, &password);
    let (observed, step, read_error) = if current.voter_pods.is_none()
        || membership::settled(&validated, &current, &pods, &sidecars, &templates)
    {
        (None, None, None)
    } else {
        let (committed, error) = match ctx.admin.read_config(&target).await {
            Ok(membership) => (Some(membership), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let observed = membership::observation(&validated, &pods, &sidecars, committed, &templates);
        let step = plan::next_step(&Desired::of(&validated.ensemble), &observed);
        (Some(observed), Some(step), error)
    };
    let members = membership::members(&validated, &current, observed.as_ref(), step.as_ref());
    let validated = validated.with_members(members);

    // Build and apply: configuration first, so a new pod starts from it.
    // A child the API server refuses is recorded and the others go on; no
    // StatefulSet is applied over a refused configuration (its new pods
    // would start from one that does not list them).
    let children = build::children(&validated);
    let mut refusals = Vec::new();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let config = applied(
        ensure(ctx, &config_maps, &children.config).await,
        &mut refusals,
    )?;
    applied(
        ensure(ctx, &config_maps, &children.client_config).await,
        &mut refusals,
    )?;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    applied(
        ensure(ctx, &services, &children.headless_service).await,
        &mut refusals,
    )?;
    applied(
        ensure(ctx, &services, &children.client_service).await,
        &mut refusals,
    )?;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    match &children.network_policy {
        Some(policy) => {
            applied(ensure(ctx, &policies, policy).await, &mut refusals)?;
        }
        None => {
            let name = build::network_policy_name(&validated.name);
            remove_owned(ctx, &policies, name, &validated, "networkPolicy disabled").await?;
        }
    }
    if config {
        let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        applied(
            ensure(ctx, &stateful_sets, &children.voters).await,
            &mut refusals,
        )?;
        match &children.observers {
            Some(observers) => {
                applied(ensure(ctx, &stateful_sets, observers).await, &mut refusals)?;
            }
            None => {
                let name = build::stateful_set_name(&validated.name, Role::Observer);
                remove_owned(
                    ctx,
                    &stateful_sets,
                    name,
                    &validated,
                    "observers scaled to 0",
                )
                .await?;
            }
        }
    }
    applied(
        ensure::<PodDisruptionBudget>(
            ctx,
            &Api::namespaced(client.clone(), &ns),
            &children.pod_disruption_budget,
        )
        .await,
        &mut refusals,
    )?;

    // Act: the step's own change, after the objects it relies on — so not
    // while any of them is refused.
    let desired = Desired::of(&validated.ensemble);
    let mut trouble = read_error;
    if let Some(step) = step.as_ref().filter(|_| refusals.is_empty()) {
        match carry_out(ctx, &validated, &target, step, &pods).await {
            Ok(()) => {}
            Err(Error::Reconfig { source, .. }) if source.is_transient() => {
                trouble = Some(source.to_string());
            }
            Err(e) => return Err(e),
        }
        announce(ctx, cluster, previous, step, &desired).await;
    }

    let observation = status::observe(&validated, &pods, &sidecars);
    label_pods(ctx, &ns, &observation).await?;
    let mut status = status::compute(&validated, &observation, previous, now);
    if let Some((active, reason, mut message)) = step
        .as_ref()
        .and_then(|s| membership::progressing(s, &desired))
    {
        if let Some(trouble) = trouble {
            message = format!("{message} ({trouble})");
        }
        status::set_condition(
            &mut status,
            previous,
            status::ConditionDraft {
                type_: status::PROGRESSING,
                status: active,
                reason,
                message,
            },
            validated.generation,
            now,
        );
    }
    if let Some(degraded) = status::refused(&refusals) {
        warn!(cluster = %validated.name, message = %degraded.message, "the API server refuses a child");
        status::set_condition(&mut status, previous, degraded, validated.generation, now);
    }
    write_status(cluster, ctx, previous, &status).await?;
    let requeue = match &step {
        Some(step) if *step != plan::Step::Done => membership::REQUEUE_STEP,
        _ => status::requeue_after(&status),
    };
    Ok(Action::requeue(requeue))
}

/// The super user's Secret: its password, after creating the Secret with a
/// new random one when it does not exist. It is never rewritten: the
/// servers run with the digest of the password it holds — so once read,
/// this replica keeps the password (per cluster UID) and reads it no more.
async fn ensure_super_secret(ctx: &Context, cluster: &ValidatedCluster) -> Result<String, Error> {
    let uid = cluster.owner.as_ref().map(|owner| owner.uid.as_str());
    if let Some(password) = uid.and_then(|uid| ctx.caches.password(uid)) {
        return Ok(password);
    }
    let password = read_or_create_super_secret(ctx, cluster).await?;
    if let Some(uid) = uid {
        ctx.caches.remember_password(uid, &password);
    }
    Ok(password)
}

async fn read_or_create_super_secret(
    ctx: &Context,
    cluster: &ValidatedCluster,
) -> Result<String, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &cluster.namespace);
    let name = build::super_secret_name(&cluster.name);
    let existing = api.get_opt(&name).await.map_err(|source| Error::Read {
        kind: "Secret".to_owned(),
        name: name.clone(),
        source,
    })?;
    if let Some(secret) = existing {
        return build::super_password(&secret).ok_or(Error::NoSuperPassword {
            name,
            cluster: cluster.name.clone(),
        });
    }
    let password = reconfig::generate_password();
    info!(%name, "creating the super user's Secret");
    api.create(
        &PostParams::default(),
        &build::super_secret(cluster, &password),
    )
    .await
    .map_err(|source| Error::Apply {
        kind: "Secret".to_owned(),
        name,
        source,
    })?;
    Ok(password)
}

/// The StatefulSets' sizes and the ConfigMap's servers before this
/// reconcile changes anything.
async fn read_current(
    ctx: &Context,
    cluster: &ValidatedCluster,
) -> Result<membership::Current, Error> {
    let ns = &cluster.namespace;
    let stateful_sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
    let replicas = |role: Role| {
        let api = stateful_sets.clone();
        let name = build::stateful_set_name(&cluster.name, role);
        async move {
            let sts: Option<StatefulSet> = read(ctx, &api, ns, &name).await?;
            Ok::<_, Error>(sts.map(|s| {
                s.spec
                    .and_then(|spec| spec.replicas)
                    .and_then(|r| u32::try_from(r).ok())
                    .unwrap_or(0)
            }))
        }
    };
    let voter_pods = replicas(Role::Voter).await?;
    let observer_pods = replicas(Role::Observer).await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let name = build::config_map_name(&cluster.name);
    let config = read(ctx, &config_maps, ns, &name).await?;
    let servers = config
        .and_then(|c| c.data)
        .and_then(|d| d.get(build::ZOO_CFG_KEY).cloned())
        .and_then(|text| membership::servers_of(&text));
    Ok(membership::Current {
        voter_pods,
        observer_pods,
        servers,
    })
}

/// Carries out the part of a step that is not an object: `reconfig`, or
/// deleting a pod for a restart.
async fn carry_out(
    ctx: &Context,
    cluster: &ValidatedCluster,
    target: &reconfig::Target,
    step: &plan::Step,
    pods: &[PodView],
) -> Result<(), Error> {
    let change = match step {
        plan::Step::Add { myid, version, .. } => Some(reconfig::Reconfig::Add {
            myid: *myid,
            line: cluster
                .ensemble
                .server_entry(&cluster.ensemble.member(*myid))
                .to_string(),
            version: *version,
        }),
        plan::Step::Remove { myid, version }
        | plan::Step::HandOver {
            leader: myid,
            version,
        } => Some(reconfig::Reconfig::Remove {
            myid: *myid,
            version: *version,
        }),
        plan::Step::Restart { myid } => {
            let name = identity::pod_name(&cluster.name, *myid);
            if pods.iter().any(|p| p.name == name) {
                info!(pod = %name, "restarting");
                let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &cluster.namespace);
                api.delete(&name, &DeleteParams::default())
                    .await
                    .map_err(|source| Error::Delete {
                        kind: "Pod".to_owned(),
                        name,
                        source,
                    })?;
            }
            None
        }
        _ => None,
    };
    if let Some(change) = change {
        info!(cluster = %cluster.name, ?change, "reconfig");
        ctx.admin
            .reconfig(target, &change)
            .await
            .map_err(|source| Error::Reconfig {
                cluster: cluster.name.clone(),
                source,
            })?;
    }
    Ok(())
}

/// An Event for every step that changes the ensemble, and one for a
/// refusal when it is new (not on every look while it lasts).
async fn announce(
    ctx: &Context,
    cluster: &ZookeeperCluster,
    previous: Option<&ZookeeperClusterStatus>,
    step: &plan::Step,
    desired: &Desired,
) {
    let reason = match step {
        plan::Step::Start { .. } => "MemberStarting",
        plan::Step::Add { .. } => "MemberAdded",
        plan::Step::Remove { .. } => "MemberRemoved",
        plan::Step::Stop { .. } => "MemberStopped",
        plan::Step::Restart { .. } => "MemberRestarted",
        plan::Step::HandOver { .. } => "LeaderHandedOver",
        plan::Step::Refuse(_) => "ChangeRefused",
        plan::Step::Done | plan::Step::Wait(_) => return,
    };
    let note = step.describe(desired);
    let (type_, repeated) = match step {
        plan::Step::Refuse(_) => (
            EventType::Warning,
            previous
                .into_iter()
                .flat_map(|s| s.conditions.iter())
                .any(|c| c.type_ == status::PROGRESSING && c.message.starts_with(&note)),
        ),
        _ => (EventType::Normal, false),
    };
    if !repeated {
        super::publish(ctx, cluster, type_, reason, note).await;
    }
}

/// A child of a cluster, through this replica's cache (see `cache`).
async fn read<K>(
    ctx: &Context,
    api: &Api<K>,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, Error>
where
    K: Cached + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    K::cache(&ctx.caches)
        .get(api, namespace, name)
        .await
        .map_err(|source| Error::Read {
            kind: K::kind(&()).into_owned(),
            name: name.to_owned(),
            source,
        })
}

/// Applies `desired` unless the object already is as zookube built it.
/// Returns the object as the API server holds it.
async fn ensure<K>(ctx: &Context, api: &Api<K>, desired: &K) -> Result<K, Error>
where
    K: Cached + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let kind = K::kind(&()).into_owned();
    let name = desired.name_any();
    let namespace = desired.namespace().unwrap_or_default();
    let current = read(ctx, api, &namespace, &name).await?;
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
    let written = api
        .patch(&name, &apply_params(), &Patch::Apply(desired))
        .await
        .map_err(|source| Error::Apply { kind, name, source })?;
    K::cache(&ctx.caches).wrote(&written);
    Ok(written)
}

/// Whether a child was applied; a refusal is recorded in `refusals`, any
/// other error returned.
fn applied<K>(
    result: Result<K, Error>,
    refusals: &mut Vec<status::Refusal>,
) -> Result<bool, Error> {
    match result {
        Ok(_) => Ok(true),
        Err(error) => {
            refusals.push(error.into_refusal()?);
            Ok(false)
        }
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Deletes a child the cluster no longer wants (the observers'
/// StatefulSet at 0 observers, the NetworkPolicy once disabled) — only one
/// this cluster controls.
async fn remove_owned<K>(
    ctx: &Context,
    api: &Api<K>,
    name: String,
    cluster: &ValidatedCluster,
    why: &str,
) -> Result<(), Error>
where
    K: Cached + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let kind = K::kind(&()).into_owned();
    let Some(existing) = read(ctx, api, &cluster.namespace, &name).await? else {
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
    info!(%kind, %name, "{why}: deleting it");
    K::cache(&ctx.caches).forget(&cluster.namespace, &name);
    api.delete(&name, &DeleteParams::default())
        .await
        .map(|_| ())
        .map_err(|source| Error::Delete { kind, name, source })
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

/// Sets or removes `zookube.io/role` where it is wrong, with a JSON merge
/// patch of that one label (`null` removes it). Unlike an apply, a patch
/// never creates the pod, and a pod that has gone since the list (404)
/// needs no label.
async fn label_pods(
    ctx: &Context,
    namespace: &str,
    observation: &status::Observation,
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    for (pod, label) in status::role_label_changes(observation) {
        let patch = labels::role_label_patch(label);
        debug!(%pod, ?label, "labelling");
        match api.patch(&pod, &params, &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {
                debug!(%pod, "gone before it was labelled");
            }
            Err(source) => {
                return Err(Error::LabelPod {
                    pod: pod.clone(),
                    source,
                });
            }
        }
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
    let written = api
        .patch_status(&name, &apply_params(), &Patch::Apply(&patch))
        .await
        .map_err(|source| Error::WriteStatus {
            cluster: name.clone(),
            source,
        })?;
    // The answer is the cluster as the server holds it now: the next
    // reconcile starts from it once the watch shows this version.
    if let Ok(object) = serde_json::to_value(&written).and_then(serde_json::from_value) {
        ctx.caches.clusters.wrote(object);
    }
    ctx.remember(
        ObjectRef::from(cluster),
        super::Written {
            based_on: cluster.metadata.resource_version.clone(),
            status: status.clone(),
        },
    );
    for notice in status::notices(previous, status) {
        let (type_, reason, note) = match notice {
            Notice::LeaderElected(note) => (EventType::Normal, "LeaderElected", note),
            Notice::QuorumLost(note) => (EventType::Warning, "QuorumLost", note),
            Notice::InvalidSpec(note) => (EventType::Warning, "InvalidSpec", note),
            Notice::Refused(reason, note) => (EventType::Warning, reason, note),
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
