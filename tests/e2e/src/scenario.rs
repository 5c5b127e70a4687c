//! The steps the end-to-end tests are made of, each asserted through the
//! Kubernetes API: apply a cluster in a fresh namespace, wait until it is
//! healthy (every pod ready, the status agreeing with every sidecar, the
//! role labels right), delete the leader's pod, scale through the scale
//! subresource, and delete the cluster.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Pod, Secret, Service,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Status;
use zk_ensemble::Role;
use zk_ensemble::identity;
use zk_operator::build::{self, labels};
use zk_operator::crd::{self, ZookeeperCluster};

use crate::checks::{self, Leadership};
use crate::poll::{self, note};
use crate::zkcli::ZkClient;
use crate::{Error, Result, ensure, member, node, operator, sidecar};

/// Set by `tests/e2e/run --keep`: leave every namespace as the test left
/// it, to look at with kubectl.
pub const ENV_KEEP: &str = "ZOOKUBE_E2E_KEEP";

/// The label of every namespace the suite creates.
const NAMESPACE_LABEL: (&str, &str) = ("app.kubernetes.io/part-of", "zookube-e2e");

/// How long a new ensemble may take to become healthy: pods scheduled,
/// volumes bound, images pulled where a node lacks them, JVMs started, a
/// leader elected, and the operator's status caught up.
pub const FIRST_HEALTHY: Duration = Duration::from_secs(8 * 60);
/// How long a change (a lost leader, a deleted cluster) may take to settle.
pub const SETTLE: Duration = Duration::from_secs(6 * 60);
/// How long scaling by two voters may take: members join one at a time,
/// each started, caught up and added by `reconfig` before the next (or
/// removed by `reconfig` before its pod goes).
pub const SCALE: Duration = Duration::from_secs(10 * 60);

/// One cluster under test.
pub struct Scenario {
    pub client: kube::Client,
    pub namespace: String,
    pub name: String,
    pub clusters: Api<ZookeeperCluster>,
    pub zk: ZkClient,
    pub started: Instant,
    /// The members' client port (`spec.ports.client`).
    pub client_port: u16,
}

/// Creates `namespace` afresh: one an earlier run left behind (with its
/// retained volumes) is deleted first, so no old data comes back.
pub async fn fresh_namespace(
    client: &kube::Client,
    namespace: &str,
    started: Instant,
) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(namespace).await?.is_some() {
        note(
            started,
            format!("deleting namespace {namespace} left by an earlier run"),
        );
        let _ = namespaces.delete(namespace, &DeleteParams::default()).await;
        let what = format!("namespace {namespace} to be gone");
        let namespaces = &namespaces;
        poll::until(started, &what, Duration::from_secs(5 * 60), || async move {
            match namespaces.get_opt(namespace).await {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err(format!("{namespace} is still terminating")),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
    }
    let fresh = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                NAMESPACE_LABEL.0.to_owned(),
                NAMESPACE_LABEL.1.to_owned(),
            )])),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces.create(&PostParams::default(), &fresh).await?;
    Ok(())
}

/// Deletes a namespace the suite created (without waiting), unless
/// [`ENV_KEEP`] is set.
pub async fn cleanup_namespace(client: &kube::Client, namespace: &str, started: Instant) {
    if std::env::var_os(ENV_KEEP).is_some() {
        note(
            started,
            format!("keeping namespace {namespace} ({ENV_KEEP} is set)"),
        );
        return;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(namespace, &DeleteParams::default()).await;
}

/// The message of an API server's refusal, or why there was none.
pub fn refusal(result: kube::Result<impl std::fmt::Debug>) -> Result<Box<Status>> {
    match result {
        Err(kube::Error::Api(status)) => Ok(status),
        Err(other) => Err(Error::Kube(other)),
        Ok(accepted) => Err(Error::Check(format!(
            "the API server accepted what it should refuse: {accepted:?}"
        ))),
    }
}

impl Scenario {
    /// Creates the cluster's namespace afresh and the cluster in it.
    pub async fn apply(
        client: kube::Client,
        cluster: ZookeeperCluster,
        started: Instant,
    ) -> Result<Scenario> {
        let namespace = cluster
            .metadata
            .namespace
            .clone()
            .ok_or_else(|| Error::Check("the cluster has no namespace".to_owned()))?;
        let name = cluster
            .metadata
            .name
            .clone()
            .ok_or_else(|| Error::Check("the cluster has no name".to_owned()))?;
        fresh_namespace(&client, &namespace, started).await?;
        let clusters: Api<ZookeeperCluster> = Api::namespaced(client.clone(), &namespace);
        note(
            started,
            format!(
                "applying ZookeeperCluster {namespace}/{name}: {} voters, {} observers",
                cluster.spec.replicas, cluster.spec.observers
            ),
        );
        clusters.create(&PostParams::default(), &cluster).await?;
        let image = cluster
            .spec
            .image
            .clone()
            .unwrap_or_else(|| crd::DEFAULT_ZOOKEEPER_IMAGE.to_owned());
        let server = format!(
            "{}:{}",
            build::client_name(&name),
            cluster.spec.ports.client
        );
        let zk = ZkClient::new(client.clone(), &namespace, server, image, started);
        let client_port = u16::try_from(cluster.spec.ports.client)
            .map_err(|_| Error::Check("spec.ports.client is not a port".to_owned()))?;
        Ok(Scenario {
            client_port,
            client,
            namespace,
            name,
            clusters,
            zk,
            started,
        })
    }

    /// One look at the ensemble: the status counts `voters` and
    /// `observers`, all ready, for the current generation; exactly the
    /// expected pods exist and are ready; the status agrees with every
    /// sidecar; the role labels match; every sidecar sees voters
    /// `1..=voters`.
    pub async fn observe(&self, voters: u32, observers: u32) -> Result<Leadership, String> {
        let cluster = self
            .clusters
            .get(&self.name)
            .await
            .map_err(|e| e.to_string())?;
        let status = cluster
            .status
            .clone()
            .ok_or("the cluster has no status yet")?;
        let generation = cluster.metadata.generation;
        if status.observed_generation != generation {
            return Err(format!(
                "the status is for generation {:?}, the spec is at {generation:?}",
                status.observed_generation
            ));
        }
        let counts = [
            status.replicas,
            status.ready_replicas,
            status.observers,
            status.ready_observers,
        ];
        let (v, o) = (i64::from(voters), i64::from(observers));
        if counts.map(i64::from) != [v, v, o, o] {
            return Err(format!(
                "status: {} voters ({} ready), {} observers ({} ready); waiting for {voters} and {observers}",
                counts[0], counts[1], counts[2], counts[3]
            ));
        }

        let expected = checks::expected_members(&self.name, voters, observers)?;
        let pods = self.member_pods().await.map_err(|e| e.to_string())?;
        let mut names: Vec<&str> = pods
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap_or(""))
            .collect();
        names.sort_unstable();
        let mut want_names: Vec<&str> = expected.iter().map(|(pod, _)| pod.as_str()).collect();
        want_names.sort_unstable();
        if names != want_names {
            return Err(format!("member pods {names:?}, expected {want_names:?}"));
        }
        for pod in &pods {
            let name = pod.metadata.name.as_deref().unwrap_or("");
            if pod.metadata.deletion_timestamp.is_some() {
                return Err(format!("{name} is terminating"));
            }
            if !is_ready(pod) {
                return Err(format!("{name} is not ready"));
            }
        }

        let mut sidecars = BTreeMap::new();
        for (pod, _) in &expected {
            let status = sidecar::status(&self.client, &self.namespace, pod).await?;
            sidecars.insert(pod.clone(), status);
        }
        let leadership = checks::status_agrees_with_sidecars(&self.name, &status, &sidecars)?;
        let role_labels: BTreeMap<String, Option<String>> = pods
            .iter()
            .map(|pod| {
                let label = pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(labels::ROLE).cloned());
                (pod.metadata.name.clone().unwrap_or_default(), label)
            })
            .collect();
        checks::role_labels_match(&self.name, &leadership.pod, &role_labels)?;
        let voter_myids: Vec<u64> = (1..=u64::from(voters)).collect();
        checks::voters_agree(&sidecars, &voter_myids)?;
        Ok(leadership)
    }

    /// Waits until [`Scenario::observe`] holds and `accept` agrees with the
    /// leadership it found.
    pub async fn wait_healthy(
        &self,
        voters: u32,
        observers: u32,
        timeout: Duration,
        accept: impl Fn(&Leadership) -> Result<(), String>,
    ) -> Result<Leadership> {
        let what = format!(
            "{}/{}: {voters} voters and {observers} observers ready, status agreeing with every sidecar",
            self.namespace, self.name
        );
        let accept = &accept;
        let leadership = poll::until(self.started, &what, timeout, || async move {
            let leadership = self.observe(voters, observers).await?;
            accept(&leadership)?;
            Ok(leadership)
        })
        .await?;
        note(
            self.started,
            format!(
                "leader myid {} ({}) in peer epoch {}",
                leadership.myid, leadership.pod, leadership.peer_epoch
            ),
        );
        Ok(leadership)
    }

    /// The cluster's member pods, voters and observers.
    pub async fn member_pods(&self) -> Result<Vec<Pod>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let selector = labels::selector_string(&labels::cluster_selector(&self.name));
        Ok(pods
            .list(&ListParams::default().labels(&selector))
            .await?
            .items)
    }

    /// Deletes the leader's pod and waits until the ensemble is healthy
    /// again with a new leader in a higher peer epoch, the pod recreated.
    pub async fn delete_leader(
        &self,
        voters: u32,
        observers: u32,
        before: &Leadership,
    ) -> Result<Leadership> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let old_uid = pods.get(&before.pod).await?.metadata.uid;
        note(
            self.started,
            format!("deleting the leader's pod {}", before.pod),
        );
        pods.delete(&before.pod, &DeleteParams::default()).await?;
        let after = self.wait_for_new_leader(voters, observers, before).await?;
        let new_uid = pods.get(&before.pod).await?.metadata.uid;
        ensure(new_uid != old_uid, || {
            format!("{} was not recreated (same uid)", before.pod)
        })?;
        Ok(after)
    }

    /// Waits until the cluster is healthy again under another leader than
    /// `before`, in a higher peer epoch.
    async fn wait_for_new_leader(
        &self,
        voters: u32,
        observers: u32,
        before: &Leadership,
    ) -> Result<Leadership> {
        self.wait_healthy(voters, observers, SETTLE, |now| {
            if now.myid == before.myid {
                Err(format!("myid {} still leads", now.myid))
            } else if now.peer_epoch <= before.peer_epoch {
                Err(format!(
                    "myid {} leads in peer epoch {}, not above {}",
                    now.myid, now.peer_epoch, before.peer_epoch
                ))
            } else {
                Ok(())
            }
        })
        .await
    }

    /// Kills the leader's ZooKeeper process with SIGKILL from the node, so
    /// the kubelet restarts its container in place (same pod, same IP,
    /// same volume): another voter leads in a newer epoch, and the member
    /// comes back and is ready again.
    pub async fn kill_leader_in_place(
        &self,
        voters: u32,
        observers: u32,
        before: &Leadership,
    ) -> Result<Leadership> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let pod = pods.get(&before.pod).await?;
        let restarts = node::restarts(&pod, build::ZOOKEEPER_CONTAINER);
        note(
            self.started,
            format!(
                "killing the leader's ZooKeeper ({}, myid {}) in place",
                before.pod, before.myid
            ),
        );
        node::kill(&pod, build::ZOOKEEPER_CONTAINER, "java").await?;
        let after = self.wait_for_new_leader(voters, observers, before).await?;
        let now = pods.get(&before.pod).await?;
        ensure(now.metadata.uid == pod.metadata.uid, || {
            format!(
                "{} was recreated; its container was to restart in place",
                before.pod
            )
        })?;
        let restarted = node::restarts(&now, build::ZOOKEEPER_CONTAINER);
        ensure(restarted == restarts + 1, || {
            format!(
                "the ZooKeeper container of {} restarted {} times, not once",
                before.pod,
                restarted - restarts
            )
        })?;
        Ok(after)
    }

    /// Samples the voters that `pod`'s sidecar sees (from the newest
    /// committed config) every half second, keeping each change; a read
    /// that fails is skipped. The pod must stay through the change.
    pub fn watch_voters(&self, pod: &str) -> VoterWatch {
        let seen: Arc<Mutex<Vec<Vec<u64>>>> = Arc::default();
        let (client, namespace, pod) =
            (self.client.clone(), self.namespace.clone(), pod.to_owned());
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(status) = sidecar::status(&client, &namespace, &pod).await {
                    let mut voters = status.quorum.voters.clone();
                    voters.sort_unstable();
                    let mut seen = sink
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if seen.last() != Some(&voters) {
                        seen.push(voters);
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        VoterWatch { seen, task }
    }

    /// `kubectl scale zk/NAME --replicas=N`: a merge patch of the scale
    /// subresource.
    pub async fn scale(&self, replicas: i32) -> kube::Result<Scale> {
        note(
            self.started,
            format!("scaling {} to {replicas} replicas", self.name),
        );
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        self.clusters
            .patch_scale(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
    }

    /// What `srvr` says inside every member pod agrees with `leadership`
    /// (awaited: a follower that has just synced may still be catching up).
    pub async fn wait_srvr_agrees(
        &self,
        voters: u32,
        observers: u32,
        leadership: &Leadership,
    ) -> Result<()> {
        let expected =
            checks::expected_members(&self.name, voters, observers).map_err(Error::Check)?;
        let what = format!(
            "srvr in every member pod to show leader {} in peer epoch {}",
            leadership.pod, leadership.peer_epoch
        );
        let expected = &expected;
        poll::until(self.started, &what, SETTLE, || async move {
            let mut answers = BTreeMap::new();
            for (pod, myid) in expected {
                let srvr = member::srvr(&self.namespace, pod, self.client_port).await?;
                answers.insert(pod.clone(), (myid.role(), srvr));
            }
            checks::srvr_agrees(leadership, &answers)
        })
        .await
    }

    /// An application's way in: the connect string of the discovery
    /// ConfigMap (`<name>-client`, key `ZOOKEEPER_CONNECT`) resolves and
    /// serves `path` with `data`.
    pub async fn discovery_serves(&self, path: &str, data: &str) -> Result<()> {
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = build::client_name(&self.name);
        let connect = config_maps
            .get(&name)
            .await?
            .data
            .and_then(|d| d.get("ZOOKEEPER_CONNECT").cloned())
            .ok_or_else(|| Error::Check(format!("ConfigMap {name} has no ZOOKEEPER_CONNECT")))?;
        note(self.started, format!("reading {path} through {connect}"));
        self.zk.through(connect).expect_data(path, data).await
    }

    /// Scrapes one member's `/metrics` as a Prometheus in the cluster would
    /// (an HTTP GET of the pod's IP and the annotated port, from another
    /// pod) and returns the leader it reports (`zookube_leader_myid`).
    pub async fn scrape_leader(&self, pod: &str) -> Result<u64> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let found = pods.get(pod).await?;
        let annotations = found.metadata.annotations.clone().unwrap_or_default();
        let port = annotations
            .get("prometheus.io/port")
            .cloned()
            .ok_or_else(|| Error::Check(format!("{pod} has no prometheus.io/port")))?;
        let path = annotations
            .get("prometheus.io/path")
            .cloned()
            .unwrap_or_else(|| "/metrics".to_owned());
        let ip = found
            .status
            .and_then(|s| s.pod_ip)
            .ok_or_else(|| Error::Check(format!("{pod} has no IP")))?;
        let script = format!(
            "exec 3<>/dev/tcp/{ip}/{port} && printf 'GET {path} HTTP/1.0\\r\\nHost: {ip}\\r\\n\\r\\n' >&3 && cat <&3"
        );
        let run = self.zk.script("scrape", &script).await?;
        let leader = checks::scraped_leader(&run.output).ok_or_else(|| {
            Error::Check(format!(
                "GET http://{ip}:{port}{path} gave no zookube_leader_myid:\n{}",
                run.tail()
            ))
        })?;
        note(
            self.started,
            format!("scraped http://{ip}:{port}{path} ({pod}): leader myid {leader}"),
        );
        Ok(leader)
    }

    /// Changes a setting and follows the roll the operator makes of it:
    /// every member pod is recreated exactly once, never two at a time, and
    /// the leader's pod last. Returns the order of the restarts.
    pub async fn roll_setting(
        &self,
        voters: u32,
        patch: serde_json::Value,
        before: &Leadership,
    ) -> Result<Vec<String>> {
        let expected = checks::expected_members(&self.name, voters, 0).map_err(Error::Check)?;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut first_uid = BTreeMap::new();
        for (pod, _) in &expected {
            first_uid.insert(pod.clone(), pods.get(pod).await?.metadata.uid);
        }
        note(self.started, format!("patching the spec: {patch}"));
        self.clusters
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let deadline = Instant::now() + SCALE;
        let mut order: Vec<String> = Vec::new();
        let mut most_down = 0;
        loop {
            let now = self.member_pods().await?;
            let mut down = 0;
            for (pod, _) in &expected {
                let current = now.iter().find(|p| p.metadata.name.as_deref() == Some(pod));
                let replaced = current.is_some_and(|p| p.metadata.uid != first_uid[pod]);
                if replaced && !order.contains(pod) {
                    note(self.started, format!("{pod} was restarted"));
                    order.push(pod.clone());
                }
                if !current.is_some_and(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none())
                {
                    down += 1;
                }
            }
            most_down = most_down.max(down);
            ensure(most_down <= 1, || {
                format!(
                    "{down} members were down at once during the roll (restarted so far: {order:?})"
                )
            })?;
            if order.len() == expected.len() && down == 0 {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Check(format!(
                    "the roll did not finish in {SCALE:?}: restarted {order:?} of {} members",
                    expected.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        ensure(order.last() == Some(&before.pod), || {
            format!(
                "the pods restarted in the order {order:?}; the leader {} must go last",
                before.pod
            )
        })?;
        Ok(order)
    }
    /// What one reconcile of this cluster, unchanged, costs the API
    /// server: the leading operator replica's requests while the cluster
    /// is touched (an annotation, which changes nothing the operator
    /// builds) and reconciled. The first touch lets a replica that took
    /// the Lease since read the children once; the second is measured.
    pub async fn unchanged_reconcile_cost(&self) -> Result<BTreeMap<operator::Request, u64>> {
        let mut cost = BTreeMap::new();
        for touch in ["warm", "measured"] {
            let holder = operator::lease_holder(&self.client)
                .await?
                .ok_or_else(|| Error::Check("no operator replica holds the Lease".to_owned()))?;
            let page = operator::metrics(&self.client, &holder).await?;
            let before = operator::api_requests(&page);
            let done = operator::reconciles_done(&page).unwrap_or(0);
            let patch = serde_json::json!({
                "metadata": { "annotations": { "zookube-e2e/touched": touch } }
            });
            self.clusters
                .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            let (client, holder) = (&self.client, holder.as_str());
            let page = poll::until(
                self.started,
                "a reconcile after the touch",
                Duration::from_secs(30),
                || async move {
                    let page = operator::metrics(client, holder)
                        .await
                        .map_err(|e| e.to_string())?;
                    match operator::reconciles_done(&page) {
                        Some(n) if n > done => Ok(page),
                        n => Err(format!(
                            "{holder} has finished {n:?} reconciles, {done} before the touch"
                        )),
                    }
                },
            )
            .await?;
            cost = operator::requests_since(&before, &operator::api_requests(&page));
        }
        Ok(cost)
    }

    /// The Events on the object with `uid`: reason and message, oldest first.
    pub async fn events(&self, uid: &str) -> Result<Vec<(String, String)>, String> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut found: Vec<Event> = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter(|e| {
                e.regarding
                    .as_ref()
                    .is_some_and(|r| r.uid.as_deref() == Some(uid))
            })
            .collect();
        found.sort_by_key(|e| e.metadata.creation_timestamp.clone());
        Ok(found
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect())
    }

    /// The PersistentVolumeClaims in the namespace, by name.
    pub async fn claims(&self) -> Result<Vec<String>> {
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let mut names: Vec<String> = claims
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// The children the operator made that still exist.
    async fn children_left(&self) -> Result<Vec<String>, String> {
        let mut left = Vec::new();
        let name = &self.name;
        let ns = &self.namespace;
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        for child in [build::config_map_name(name), build::client_name(name)] {
            if config_maps
                .get_opt(&child)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                left.push(format!("ConfigMap {child}"));
            }
        }
        let services: Api<Service> = Api::namespaced(self.client.clone(), ns);
        for child in [
            identity::headless_service_name(name),
            build::client_name(name),
        ] {
            if services
                .get_opt(&child)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                left.push(format!("Service {child}"));
            }
        }
        let stateful_sets: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        for role in [Role::Voter, Role::Observer] {
            let child = build::stateful_set_name(name, role);
            if stateful_sets
                .get_opt(&child)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                left.push(format!("StatefulSet {child}"));
            }
        }
        let budgets: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), ns);
        let child = build::pdb_name(name);
        if budgets
            .get_opt(&child)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            left.push(format!("PodDisruptionBudget {child}"));
        }
        // The super user's Secret (reconfig's credentials) goes with the
        // cluster: a later cluster of the same name gets a new password.
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let child = build::super_secret_name(name);
        if secrets
            .get_opt(&child)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            left.push(format!("Secret {child}"));
        }
        for pod in self.member_pods().await.map_err(|e| e.to_string())? {
            left.push(format!("Pod {}", pod.metadata.name.unwrap_or_default()));
        }
        Ok(left)
    }

    /// Deletes the cluster and checks that its volumes stay
    /// (`whenDeleted: Retain`).
    pub async fn delete_keeping_volumes(&self) -> Result<()> {
        let claims = self.claims().await?;
        self.delete_cluster().await?;
        let kept = self.claims().await?;
        ensure(kept == claims, || {
            format!("volumes before deletion {claims:?}, after {kept:?}; whenDeleted is Retain")
        })
    }

    /// Deletes the cluster and waits until it and every child the operator
    /// made (ConfigMaps, Services, StatefulSets, the budget, the super
    /// user's Secret, the pods) are
    /// gone. Volumes are not children: they follow `storage.whenDeleted`.
    pub async fn delete_cluster(&self) -> Result<()> {
        note(
            self.started,
            format!("deleting ZookeeperCluster {}", self.name),
        );
        self.clusters
            .delete(&self.name, &DeleteParams::background())
            .await?;
        let what = format!("{} and its children to be gone", self.name);
        poll::until(self.started, &what, SETTLE, || async move {
            if self
                .clusters
                .get_opt(&self.name)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                return Err(format!("ZookeeperCluster {} still exists", self.name));
            }
            let left = self.children_left().await?;
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("left: {}", left.join(", ")))
            }
        })
        .await
    }
}

/// What one member's sidecar said the voters were, sampled every half
/// second from [`Scenario::watch_voters`] until [`VoterWatch::stop`].
pub struct VoterWatch {
    seen: Arc<Mutex<Vec<Vec<u64>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl VoterWatch {
    /// The voter sets seen so far (only the changes).
    pub fn seen(&self) -> Vec<Vec<u64>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops sampling; the voter sets seen.
    pub fn stop(self) -> Vec<Vec<u64>> {
        self.task.abort();
        self.seen()
    }
}

/// The pod's `Ready` condition.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}
