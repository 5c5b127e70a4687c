//! The reconcile loop: a kube-rs `Controller` over `ZookeeperCluster`s that
//! owns their ConfigMaps, Services, StatefulSets, PodDisruptionBudgets and
//! NetworkPolicies and
//! watches their pods. Errors are counted by category, published as Events,
//! and retried with exponential back-off per cluster.

mod apply;
mod cache;
mod error;
mod events;
mod reconcile;
mod triggers;
mod watched;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::DynamicObject;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{debug, error, info, warn};

pub use apply::{holds, up_to_date};
use cache::{Cache, Caches};
pub use error::Error;
pub use reconcile::reconcile_cluster;
pub use watched::Unreadable;

use crate::build::{FIELD_MANAGER, labels};
use crate::cluster::Defaults;
use crate::crd::{ZookeeperCluster, ZookeeperClusterStatus};
use crate::leader::Mandate;
use crate::metrics::Metrics;
use crate::reconfig::{EnsembleAdmin, ZkAdmin};
use crate::sidecar_client::SidecarClient;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub defaults: Defaults,
    pub metrics: Metrics,
    pub events: events::Events,
    pub sidecars: SidecarClient,
    /// Reads and changes ensembles' membership (`reconfig`).
    pub admin: Arc<dyn EnsembleAdmin>,
    /// Whether this replica may act; a reconcile stops when it is lost.
    pub mandate: Mandate,
    /// The children as the controller's watches hold them.
    caches: Caches,
    /// Consecutive failures per cluster, for the back-off.
    failures: Mutex<HashMap<ObjectRef<ZookeeperCluster>, u32>>,
    /// The status this replica last wrote for each cluster (see
    /// [`newest_status`]). A deleted cluster's entry stays until the
    /// replica restarts: one status, a few hundred bytes.
    written: Mutex<HashMap<ObjectRef<ZookeeperCluster>, Written>>,
}

/// A status this replica wrote, and the `resourceVersion` of the cluster
/// it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub based_on: Option<String>,
    pub status: ZookeeperClusterStatus,
}

/// The status a reconcile starts from: the cluster's own, unless the
/// cluster in hand is still the very version this replica wrote a status
/// over — the watch has not delivered the write yet — and then the status
/// written. Conditions and Events are decided by comparing with it, so a
/// stale cache neither repeats an Event nor moves a transition time.
pub fn newest_status<'a>(
    cluster: &'a ZookeeperCluster,
    written: Option<&'a Written>,
) -> Option<&'a ZookeeperClusterStatus> {
    match written {
        Some(w) if w.based_on == cluster.metadata.resource_version => Some(&w.status),
        _ => cluster.status.as_ref(),
    }
}

impl Context {
    /// `instance` names this operator replica in Events (its pod name).
    pub fn new(
        client: Client,
        defaults: Defaults,
        metrics: Metrics,
        instance: Option<String>,
    ) -> Context {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance,
        };
        Context {
            events: events::Events::new(client.clone(), reporter),
            client,
            defaults,
            metrics,
            sidecars: SidecarClient::new(),
            admin: Arc::new(ZkAdmin::new()),
            mandate: Mandate::always(),
            caches: Caches::default(),
            failures: Mutex::default(),
            written: Mutex::default(),
        }
    }

    /// The same context with another way to reach ensembles (tests use a
    /// recording fake).
    pub fn with_admin(mut self, admin: Arc<dyn EnsembleAdmin>) -> Context {
        self.admin = admin;
        self
    }

    /// The same context acting only while `mandate` holds (the operator
    /// with a leader Lease).
    pub fn with_mandate(mut self, mandate: Mandate) -> Context {
        self.mandate = mandate;
        self
    }

    /// Counts a failure of `cluster` and returns how many came before it.
    fn failed(&self, cluster: &ObjectRef<ZookeeperCluster>) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let count = failures.entry(cluster.clone()).or_insert(0);
        let before = *count;
        *count = count.saturating_add(1);
        before
    }

    /// The status last written for `cluster`, if any.
    fn written(&self, cluster: &ObjectRef<ZookeeperCluster>) -> Option<Written> {
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(cluster)
            .cloned()
    }

    fn remember(&self, cluster: ObjectRef<ZookeeperCluster>, written: Written) {
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cluster, written);
    }

    fn succeeded(&self, cluster: &ObjectRef<ZookeeperCluster>) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(cluster);
    }
}

/// Reconciles one cluster, counting and timing it. The reconcile stops at
/// its next await once the mandate is lost (or does not start without
/// one): the replica that now holds the Lease reconciles the cluster from
/// what it reads, and this one must not act beside it.
pub async fn reconcile(cluster: Arc<ZookeeperCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    let result = tokio::select! {
        biased;
        () = ctx.mandate.lost() => {
            warn!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), "the leader Lease is lost: the reconcile stops here");
            return Ok(Action::await_change());
        }
        result = reconcile_cluster(&cluster, &ctx) => result,
    };
    if result.is_ok() {
        ctx.succeeded(&ObjectRef::from(cluster.as_ref()));
    }
    result
}

/// Reconciles one watched object as the API server holds it (see
/// [`cache::Clusters`]): the typed cluster, or — when it cannot be read — a
/// Warning Event on it saying which field to fix. Only a new spec can fix
/// it, so nothing is retried until it changes.
pub async fn reconcile_watched(
    watched: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &watched.namespace().unwrap_or_default(),
        &watched::api_resource(),
    );
    let current = ctx
        .caches
        .clusters
        .current(&api, &watched)
        .await
        .map_err(|source| Error::Read {
            kind: ZookeeperCluster::kind(&()).into_owned(),
            name: watched.name_any(),
            source,
        })?;
    let Some(object) = current else {
        debug!(cluster = %watched.name_any(), "gone");
        return Ok(Action::await_change());
    };
    match watched::typed(&object) {
        Ok(cluster) => reconcile(Arc::new(cluster), ctx).await,
        Err(unreadable) => {
            error!(cluster = %object.name_any(), namespace = ?object.namespace(), %unreadable, "cannot read the cluster");
            let reference = object.object_ref(&watched::api_resource());
            publish_about(
                &ctx,
                &reference,
                EventType::Warning,
                "InvalidSpec",
                unreadable.to_string(),
            )
            .await;
            Ok(Action::await_change())
        }
    }
}

/// After a failed reconcile: count it, say so in an Event, and try again
/// after an exponentially growing delay.
pub fn error_policy(cluster: Arc<ZookeeperCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    failed(
        ObjectRef::from(cluster.as_ref()),
        cluster.object_ref(&()),
        error,
        &ctx,
    )
}

/// [`error_policy`] for a watched object (only a readable one fails).
fn error_policy_object(object: Arc<DynamicObject>, error: &Error, ctx: Arc<Context>) -> Action {
    let mut key = ObjectRef::new(&object.name_any());
    if let Some(namespace) = object.namespace() {
        key = key.within(&namespace);
    }
    failed(
        key,
        object.object_ref(&watched::api_resource()),
        error,
        &ctx,
    )
}

fn failed(
    key: ObjectRef<ZookeeperCluster>,
    reference: ObjectReference,
    error: &Error,
    ctx: &Context,
) -> Action {
    ctx.metrics.reconcile_failed(error.category());
    let attempt = ctx.failed(&key);
    let delay = backoff(attempt);
    warn!(cluster = %key.name, namespace = ?key.namespace, %error, ?delay, "reconcile failed");
    let event = reconcile::failure_event(error);
    let recorder = ctx.events.recorder(&event);
    tokio::spawn(async move {
        if let Err(e) = recorder.publish(&event, &reference).await {
            warn!(error = %e, "cannot publish an Event");
        }
    });
    Action::requeue(delay)
}

/// 5 s after the first failure, doubling up to 5 minutes.
pub fn backoff(previous_failures: u32) -> Duration {
    let seconds = 5u64.saturating_mul(1u64 << previous_failures.min(16));
    Duration::from_secs(seconds.min(300))
}

/// Events carry at most 1 kB of text.
pub(crate) fn truncate_note(mut note: String) -> String {
    const MAX: usize = 1000;
    if note.len() > MAX {
        let mut end = MAX;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push('…');
    }
    note
}

/// Publishes an Event about a cluster; a failure is logged, never fatal.
pub(crate) async fn publish(
    ctx: &Context,
    cluster: &ZookeeperCluster,
    type_: EventType,
    reason: &str,
    note: String,
) {
    publish_about(ctx, &cluster.object_ref(&()), type_, reason, note).await;
}

async fn publish_about(
    ctx: &Context,
    reference: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate_note(note)),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    ctx.events.publish(&event, reference).await;
}

/// The cluster a member pod belongs to, from its labels.
pub fn pod_to_cluster(pod: Pod) -> Option<ObjectRef<ZookeeperCluster>> {
    let cluster = pod.labels().get(labels::INSTANCE)?;
    Some(ObjectRef::new(cluster).within(&pod.namespace()?))
}

/// Where the controller looks.
#[derive(Debug, Clone, Default)]
pub enum Scope {
    /// Every namespace.
    #[default]
    Cluster,
    /// One namespace only.
    Namespace(String),
}

fn api<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Scope::Cluster => Api::all(client.clone()),
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
    }
}

/// A watch of one owned kind that also fills its cache (see [`cache`]).
fn owned<K>(
    client: &Client,
    scope: &Scope,
    config: &watcher::Config,
    cache: &Cache<K>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    cache.attach(store);
    watcher(api::<K>(client, scope), config.clone())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
}

/// Runs the controller until `shutdown` resolves; reconciles in flight then
/// finish before it returns, unless the mandate was lost (then they have
/// already stopped, see [`reconcile`]).
pub async fn run(
    ctx: Arc<Context>,
    scope: Scope,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let managed = watcher::Config::default().labels(&labels::managed_selector());
    let members = watcher::Config::default().labels(&format!(
        "{}={},{}",
        labels::NAME,
        labels::APP,
        labels::managed_selector()
    ));
    // Untyped, so that one cluster the operator cannot read does not fail
    // the list of all of them (see `watched`).
    let clusters: Api<DynamicObject> = match &scope {
        Scope::Cluster => Api::all_with(client.clone(), &watched::api_resource()),
        Scope::Namespace(ns) => Api::namespaced_with(client.clone(), ns, &watched::api_resource()),
    };
    let caches = &ctx.caches;
    let mut pod_triggers = triggers::PodTriggers::default();
    let pods = watcher(api::<Pod>(&client, &scope), members)
        .default_backoff()
        .filter_map(move |event| {
            std::future::ready(event.map(|e| pod_triggers.admit(e)).transpose())
        });
    Controller::new_with(
        clusters,
        watcher::Config::default().any_semantic(),
        watched::api_resource(),
    )
    .with_config(ControllerConfig::default().debounce(Duration::from_millis(500)))
    .owns_stream(owned(&client, &scope, &managed, &caches.config_maps))
    .owns_stream(owned(&client, &scope, &managed, &caches.services))
    .owns_stream(owned(&client, &scope, &managed, &caches.stateful_sets))
    .owns_stream(owned(
        &client,
        &scope,
        &managed,
        &caches.pod_disruption_budgets,
    ))
    .owns_stream(owned(&client, &scope, &managed, &caches.network_policies))
    .watches_stream(pods, |pod| pod_to_cluster(pod).map(ObjectRef::erase))
    .graceful_shutdown_on(shutdown)
    .run(reconcile_watched, error_policy_object, ctx)
    .for_each(|result| async move {
        match result {
            Ok((cluster, action)) => info!(%cluster, ?action, "reconciled"),
            Err(e) => warn!(error = %e, "controller"),
        }
    })
    .await;
    info!("controller stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_seconds_to_five_minutes() {
        let delays: Vec<u64> = (0..9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX).as_secs(), 300);
    }

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        let note = truncate_note("é".repeat(600));
        assert!(note.len() <= 1003);
        assert!(note.ends_with('…'));
        assert_eq!(truncate_note("short".into()), "short");
    }

    #[test]
    fn a_reconcile_starts_from_the_status_written_until_the_watch_delivers_it() {
        let cluster = |rv: &str, epoch: Option<i64>| {
            let mut c = crate::test_support::Cluster::test().build();
            c.metadata.resource_version = Some(rv.to_owned());
            c.status = Some(ZookeeperClusterStatus {
                peer_epoch: epoch,
                ..Default::default()
            });
            c
        };
        let written = Written {
            based_on: Some("7".to_owned()),
            status: ZookeeperClusterStatus {
                peer_epoch: Some(3),
                ..Default::default()
            },
        };
        let epoch = |c: &ZookeeperCluster, w: Option<&Written>| {
            newest_status(c, w).and_then(|s| s.peer_epoch)
        };
        let cases = [
            (
                "the cached version the status was written over",
                cluster("7", None),
                Some(&written),
                Some(3),
            ),
            (
                "a newer version, with the write",
                cluster("8", Some(3)),
                Some(&written),
                Some(3),
            ),
            (
                "a newer version, changed since",
                cluster("9", Some(1)),
                Some(&written),
                Some(1),
            ),
            ("nothing written", cluster("7", None), None, None),
        ];
        for (case, c, w, want) in cases {
            assert_eq!(epoch(&c, w), want, "{case}");
        }
    }

    #[test]
    fn every_category_is_listed() {
        let err = Error::Encode {
            what: "x".into(),
            source: serde_json::from_str::<u8>("x").unwrap_err(),
        };
        assert!(Error::CATEGORIES.contains(&err.category()));
    }
}
