//! The children as the controller's own watches hold them, so that a
//! reconcile of an unchanged cluster reads nothing from the API server but
//! its pods.
//!
//! A watch cache lags the API server, and a membership step decided from a
//! version the cache has not caught up with (a ConfigMap that does not yet
//! list the joiner this replica just added) would undo the step. So the
//! cache answers for an object only when it holds the very version this
//! replica last read from the server or wrote itself; anything else — the
//! first read after a start or a hand-over, a change by someone else, a
//! write whose event has not arrived — is read from the server, and that
//! read is what the cache must then match. A change the cache has not
//! delivered yet is invisible either way (the server would have answered
//! the same a moment earlier), and its watch event reconciles again.
//!
//! The clusters themselves follow the same rule, for another reason: the
//! API server can deliver a watch event that holds a cluster as an older
//! schema of the CRD reads it. When the CRD is replaced, the watch on the
//! old schema's storage stays open a moment and sends the next edit with
//! every field that schema does not know pruned — under the edit's real
//! `resourceVersion` — before it closes (seen on Kubernetes 1.36: `kubectl
//! apply` a CRD that adds `spec.networkPolicy`, merge-patch the field on,
//! and the open watch delivers the patched version with the field gone).
//! Held in the store, that copy would be reconciled as the spec until the
//! cluster changed again. So a watched cluster is reconciled from the copy
//! this replica last read or wrote itself, and is read afresh whenever the
//! watch shows a version that copy is not.
//!
//! The super user's password is kept in memory per cluster: the Secret is
//! never rewritten (see `ensure_super_secret`), so it is read once per
//! cluster and replica.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};

use futures::FutureExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// What this replica last knew of one object from the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// It existed at this `resourceVersion`.
    Version(String),
    /// It did not exist.
    Absent,
}

/// Whether the cache may answer for an object: it is synced (`ready`),
/// and it holds exactly what this replica last knew from the server
/// (`cached` is the cached object's `resourceVersion`, `None` when the
/// cache has no such object).
pub fn answers(ready: bool, seen: Option<&Seen>, cached: Option<Option<&str>>) -> bool {
    match (ready, seen, cached) {
        (false, _, _) | (_, None, _) => false,
        (true, Some(Seen::Version(known)), Some(Some(version))) => known == version,
        (true, Some(Seen::Absent), None) => true,
        _ => false,
    }
}

/// One kind's watch cache and what this replica last knew of each object.
pub struct Cache<K: Resource<DynamicType = ()> + 'static> {
    store: Mutex<Option<Store<K>>>,
    seen: Mutex<HashMap<ObjectRef<K>, Seen>>,
}

impl<K: Resource<DynamicType = ()> + 'static> Default for Cache<K> {
    fn default() -> Self {
        Cache {
            store: Mutex::default(),
            seen: Mutex::default(),
        }
    }
}

impl<K> Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    /// Reads from `store` from now on (the controller's watch fills it).
    pub fn attach(&self, store: Store<K>) {
        *self.store.lock().unwrap_or_else(PoisonError::into_inner) = Some(store);
    }

    /// The object, from the cache when it answers (see [`answers`]), else
    /// from the API server.
    pub async fn get(&self, api: &Api<K>, namespace: &str, name: &str) -> kube::Result<Option<K>> {
        let key = ObjectRef::new(name).within(namespace);
        if let Some(answer) = self.lookup(&key) {
            return Ok(answer);
        }
        let live = api.get_opt(name).await?;
        self.saw(&key, live.as_ref());
        Ok(live)
    }

    /// Records an object as the API server returned it after a write.
    pub fn wrote(&self, object: &K) {
        let key =
            ObjectRef::new(&object.name_any()).within(&object.namespace().unwrap_or_default());
        self.saw(&key, Some(object));
    }

    /// Forgets what this replica knew of an object (after deleting it: it
    /// may linger while it is finalized), so the next read goes live.
    pub fn forget(&self, namespace: &str, name: &str) {
        let key = ObjectRef::new(name).within(namespace);
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }

    fn lookup(&self, key: &ObjectRef<K>) -> Option<Option<K>> {
        let store = self
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let ready = store
            .wait_until_ready()
            .now_or_never()
            .is_some_and(|r| r.is_ok());
        let cached = store.get(key);
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned();
        let version = cached.as_ref().map(|o| o.resource_version());
        let version = version.as_ref().map(|v| v.as_deref());
        answers(ready, seen.as_ref(), version).then(|| cached.map(|o| (*o).clone()))
    }

    fn saw(&self, key: &ObjectRef<K>, object: Option<&K>) {
        let seen = match object.and_then(|o| o.resource_version()) {
            Some(version) => Seen::Version(version),
            None if object.is_some() => {
                // Without a version it cannot be matched: read it live.
                self.seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(key);
                return;
            }
            None => Seen::Absent,
        };
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), seen);
    }
}

/// The clusters as this replica last read them from the API server or
/// wrote them, by namespace and name (see the module docs for why the
/// watch's own copy is not enough).
#[derive(Default)]
pub struct Clusters {
    copies: Mutex<HashMap<(String, String), DynamicObject>>,
}

impl Clusters {
    /// The cluster the watch delivered (`watched`), as the API server holds
    /// it: this replica's copy when it is the very version watched, else
    /// read from `api` (and kept). `None` when it is gone.
    pub async fn current(
        &self,
        api: &Api<DynamicObject>,
        watched: &DynamicObject,
    ) -> kube::Result<Option<DynamicObject>> {
        let key = key_of(watched);
        let copy = self.copy(&key);
        let known = copy
            .as_ref()
            .and_then(|c| c.metadata.resource_version.clone())
            .map(Seen::Version);
        let version = watched.metadata.resource_version.as_deref();
        // The copy stands in for the cached object: its version is what
        // the watch must show, and then the copy (not the watched object,
        // which may be pruned) is the answer.
        if let Some(copy) = copy.filter(|_| answers(true, known.as_ref(), Some(version))) {
            return Ok(Some(copy));
        }
        let live = api.get_opt(&key.1).await?;
        let mut copies = self.copies.lock().unwrap_or_else(PoisonError::into_inner);
        match &live {
            Some(object) => copies.insert(key, object.clone()),
            None => copies.remove(&key),
        };
        Ok(live)
    }

    /// Keeps a cluster as the API server returned it after a write.
    pub fn wrote(&self, object: DynamicObject) {
        self.copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key_of(&object), object);
    }

    fn copy(&self, key: &(String, String)) -> Option<DynamicObject> {
        self.copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }
}

fn key_of(object: &DynamicObject) -> (String, String) {
    (
        object.metadata.namespace.clone().unwrap_or_default(),
        object.metadata.name.clone().unwrap_or_default(),
    )
}

/// The caches of every kind a cluster owns, the clusters themselves, and
/// the super users' passwords. An entry per object this replica has read;
/// a deleted cluster's entries stay until the replica restarts (a few dozen
/// bytes each, and the cluster's own copy a few kilobytes).
#[derive(Default)]
pub struct Caches {
    pub config_maps: Cache<ConfigMap>,
    pub services: Cache<Service>,
    pub stateful_sets: Cache<StatefulSet>,
    pub pod_disruption_budgets: Cache<PodDisruptionBudget>,
    pub network_policies: Cache<NetworkPolicy>,
    pub clusters: Clusters,
    /// Super user passwords by cluster UID (a cluster deleted and created
    /// again under its name has a new UID and a new Secret).
    passwords: Mutex<HashMap<String, String>>,
}

/// The cache of one kind, so generic code can find it.
pub trait Cached: Resource<DynamicType = ()> + Sized + 'static {
    fn cache(caches: &Caches) -> &Cache<Self>;
}

macro_rules! cached {
    ($($kind:ty => $field:ident),* $(,)?) => {
        $(impl Cached for $kind {
            fn cache(caches: &Caches) -> &Cache<Self> {
                &caches.$field
            }
        })*
    };
}

cached! {
    ConfigMap => config_maps,
    Service => services,
    StatefulSet => stateful_sets,
    PodDisruptionBudget => pod_disruption_budgets,
    NetworkPolicy => network_policies,
}

impl Caches {
    pub fn password(&self, cluster_uid: &str) -> Option<String> {
        self.passwords
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(cluster_uid)
            .cloned()
    }

    pub fn remember_password(&self, cluster_uid: &str, password: &str) {
        self.passwords
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cluster_uid.to_owned(), password.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_answers_only_with_what_this_replica_last_knew() {
        let v = |s: &str| Seen::Version(s.to_owned());
        // (case, cache synced, what this replica knew, the cached version, answers)
        type Case<'a> = (&'a str, bool, Option<Seen>, Option<Option<&'a str>>, bool);
        let cases: [Case<'_>; 9] = [
            (
                "the version last read",
                true,
                Some(v("7")),
                Some(Some("7")),
                true,
            ),
            (
                "known absent, still absent",
                true,
                Some(Seen::Absent),
                None,
                true,
            ),
            (
                "never read live by this replica",
                true,
                None,
                Some(Some("7")),
                false,
            ),
            ("never read, not cached", true, None, None, false),
            (
                "cache not synced yet",
                false,
                Some(v("7")),
                Some(Some("7")),
                false,
            ),
            (
                "own write not delivered yet",
                true,
                Some(v("8")),
                Some(Some("7")),
                false,
            ),
            (
                "changed by someone else",
                true,
                Some(v("7")),
                Some(Some("9")),
                false,
            ),
            ("deleted by someone else", true, Some(v("7")), None, false),
            (
                "created by someone else",
                true,
                Some(Seen::Absent),
                Some(Some("3")),
                false,
            ),
        ];
        for (case, ready, seen, cached, want) in cases {
            assert_eq!(answers(ready, seen.as_ref(), cached), want, "{case}");
        }
    }

    #[test]
    fn a_cached_object_without_a_version_is_never_an_answer() {
        assert!(!answers(true, Some(&Seen::Absent), Some(None)));
        assert!(!answers(true, Some(&Seen::Version("1".into())), Some(None)));
    }
}
