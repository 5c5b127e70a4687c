//! A real Prometheus scrapes a `zk-operator local` ensemble (real ZooKeeper
//! servers and sidecars) and the operator's metrics with zookube's own
//! scrape job (`monitoring/prometheus.yaml`) and alerting rules, and
//! answers through its HTTP API: the leader and epoch series carry the
//! labels the dashboard selects by and agree with `local status`; every
//! dashboard query runs and its template variables find the cluster; no
//! alert is pending on a healthy ensemble, and a killed follower makes the
//! quorum-at-risk, member-unreachable and own-server alerts pending.
//!
//! Debian's Prometheus is built without Kubernetes discovery, so the test
//! hands the job's relabelling, through file discovery, the labels that
//! Kubernetes discovery gives each pod: taken from the pod template the
//! operator builds for the same cluster.

mod local_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use local_support::{Local, assert_success};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use zk_operator::metrics::{self, Metrics};
use zk_testkit::eventually;
use zk_testkit::monitoring::{ALERTS, DASHBOARD, SCRAPE_CONFIG, repo_file, repo_root};
use zk_testkit::prometheus::{PrometheusServer, Sample};

/// How the stand-in operator pod looks to Kubernetes discovery (the chart's
/// Deployment: its selector labels and the scrape annotations).
const OPERATOR_NAMESPACE: &str = "zookube-system";
const OPERATOR_POD: &str = "zookube-7d9f6c5b4-x2x7q";

fn address(base: Ipv4Addr, offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + offset)
}

/// A label name as Kubernetes discovery writes it (`app.kubernetes.io/name`
/// → `app_kubernetes_io_name`).
fn sanitized(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The targets Kubernetes pod discovery yields for one pod: one per
/// container port (and one without a port for a container that declares
/// none), each with the pod's `__meta_kubernetes_*` labels.
fn pod_targets(namespace: &str, pod: &str, ip: Ipv4Addr, template: &PodTemplateSpec) -> Vec<Value> {
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels = BTreeMap::from([
        (
            "__meta_kubernetes_namespace".to_owned(),
            namespace.to_owned(),
        ),
        ("__meta_kubernetes_pod_name".to_owned(), pod.to_owned()),
        ("__meta_kubernetes_pod_ip".to_owned(), ip.to_string()),
        (
            "__meta_kubernetes_pod_phase".to_owned(),
            "Running".to_owned(),
        ),
        ("__meta_kubernetes_pod_ready".to_owned(), "true".to_owned()),
    ]);
    for (kind, map) in [("label", meta.labels), ("annotation", meta.annotations)] {
        for (key, value) in map.unwrap_or_default() {
            let key = sanitized(&key);
            labels.insert(format!("__meta_kubernetes_pod_{kind}_{key}"), value);
            labels.insert(
                format!("__meta_kubernetes_pod_{kind}present_{key}"),
                "true".to_owned(),
            );
        }
    }
    let spec = template.spec.clone().unwrap_or_default();
    let containers = spec
        .init_containers
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c, true))
        .chain(spec.containers.into_iter().map(|c| (c, false)));
    let mut targets = Vec::new();
    for (container, init) in containers {
        let mut labels = labels.clone();
        labels.insert(
            "__meta_kubernetes_pod_container_name".to_owned(),
            container.name.clone(),
        );
        labels.insert(
            "__meta_kubernetes_pod_container_init".to_owned(),
            init.to_string(),
        );
        let ports = container.ports.unwrap_or_default();
        if ports.is_empty() {
            targets.push(json!({"targets": [ip.to_string()], "labels": labels}));
        }
        for port in ports {
            let mut labels = labels.clone();
            labels.insert(
                "__meta_kubernetes_pod_container_port_name".to_owned(),
                port.name.unwrap_or_default(),
            );
            labels.insert(
                "__meta_kubernetes_pod_container_port_number".to_owned(),
                port.container_port.to_string(),
            );
            labels.insert(
                "__meta_kubernetes_pod_container_port_protocol".to_owned(),
                port.protocol.unwrap_or_else(|| "TCP".to_owned()),
            );
            let target = format!("{ip}:{}", port.container_port);
            targets.push(json!({"targets": [target], "labels": labels}));
        }
    }
    targets
}

/// The member pods as the operator builds them for the local cluster, at
/// the addresses `local` runs them on, and the operator pod.
fn discovered_targets(local: &Local, status: &Value, operator: SocketAddr) -> String {
    let text = std::fs::read_to_string(&local.file).expect("the cluster file");
    let cluster = zk_operator::cluster::parse_cluster(&text, None).expect("a cluster");
    let validated = zk_operator::cluster::validate(&cluster).expect("a valid cluster");
    let children = zk_operator::build::children(&validated);
    let voters = children.voters.spec.expect("a StatefulSet spec").template;
    let namespace = status["namespace"].as_str().expect("a namespace");
    let mut targets = Vec::new();
    for member in status["members"].as_array().expect("members") {
        let name = member["name"].as_str().expect("a member name");
        let ip: Ipv4Addr = member["client"]
            .as_str()
            .and_then(|c| c.split(':').next())
            .and_then(|host| host.parse().ok())
            .expect("a member address");
        let mut template = voters.clone();
        let labels = template
            .metadata
            .get_or_insert_default()
            .labels
            .get_or_insert_default();
        // What the StatefulSet controller adds to each pod.
        labels.insert(
            "statefulset.kubernetes.io/pod-name".to_owned(),
            name.to_owned(),
        );
        let ordinal = name.rsplit('-').next().unwrap_or_default();
        labels.insert(
            "apps.kubernetes.io/pod-index".to_owned(),
            ordinal.to_owned(),
        );
        targets.extend(pod_targets(namespace, name, ip, &template));
    }
    let operator_pod: PodTemplateSpec = serde_json::from_value(json!({
        "metadata": {
            "labels": {
                "app.kubernetes.io/name": "zk-operator",
                "app.kubernetes.io/instance": "zookube",
                "app.kubernetes.io/managed-by": "Helm",
                "app.kubernetes.io/part-of": "zookube",
            },
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": operator.port().to_string(),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": {"containers": [{
            "name": "operator",
            "ports": [{"name": "metrics", "containerPort": operator.port()}],
        }]},
    }))
    .expect("an operator pod");
    let std::net::IpAddr::V4(operator_ip) = operator.ip() else {
        panic!("the operator's metrics on IPv4, not {operator}");
    };
    targets.extend(pod_targets(
        OPERATOR_NAMESPACE,
        OPERATOR_POD,
        operator_ip,
        &operator_pod,
    ));
    serde_json::to_string_pretty(&targets).expect("targets as JSON")
}

/// zookube's scrape job and rules, as in `monitoring/prometheus.yaml`, with
/// file discovery in place of Kubernetes discovery and a 1 s interval.
fn prometheus_config() -> String {
    let mut config: Value = serde_saphyr::from_str(&repo_file(SCRAPE_CONFIG))
        .expect("monitoring/prometheus.yaml parses");
    config["global"] =
        json!({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"});
    config["rule_files"] = json!([repo_root().join(ALERTS)]);
    let jobs = config["scrape_configs"]
        .as_array_mut()
        .expect("scrape_configs");
    assert_eq!(jobs.len(), 1, "one job in {SCRAPE_CONFIG}");
    let job = jobs[0].as_object_mut().expect("a job");
    assert_eq!(job["job_name"], "zookube");
    assert!(
        job.remove("kubernetes_sd_configs").is_some(),
        "the job discovers pods"
    );
    job.insert(
        "file_sd_configs".to_owned(),
        json!([{"files": ["targets.json"], "refresh_interval": "1s"}]),
    );
    serde_json::to_string_pretty(&config).expect("the config as JSON")
}

fn series_by_pod(samples: &[Sample]) -> BTreeMap<String, f64> {
    samples
        .iter()
        .map(|s| (s.label("pod").unwrap_or("?").to_owned(), s.value))
        .collect()
}

/// Every panel query of the dashboard, with Grafana's variables filled in.
fn dashboard_queries(namespace: &str, cluster: &str) -> Vec<(String, String)> {
    let dashboard: Value =
        serde_json::from_str(&repo_file(DASHBOARD)).expect("the dashboard parses");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("an expr");
            let filled = expr
                .replace("$namespace", namespace)
                .replace("$cluster", cluster)
                .replace("$__rate_interval", "15s")
                .replace("$__range", "1m");
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            queries.push((title, filled));
        }
    }
    queries
}

/// The dashboard's `label_values(selector, label)` variables, filled in.
fn dashboard_variables(namespace: &str) -> Vec<(String, String, String)> {
    let dashboard: Value =
        serde_json::from_str(&repo_file(DASHBOARD)).expect("the dashboard parses");
    dashboard["templating"]["list"]
        .as_array()
        .expect("template variables")
        .iter()
        .filter_map(|var| {
            let query = var["query"]["query"].as_str()?;
            let inner = query.strip_prefix("label_values(")?.strip_suffix(')')?;
            let (selector, label) = inner.rsplit_once(',')?;
            Some((
                var["name"].as_str()?.to_owned(),
                selector.trim().replace("$namespace", namespace),
                label.trim().to_owned(),
            ))
        })
        .collect()
}

async fn alerts(
    server: &PrometheusServer,
) -> Result<Vec<(String, BTreeMap<String, String>, String)>, String> {
    let data = server.api("alerts").await?;
    Ok(data["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let labels: BTreeMap<String, String> = a["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let name = labels.get("alertname").cloned().unwrap_or_default();
            (
                name,
                labels,
                a["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

#[tokio::test]
async fn prometheus_scrapes_the_leader_and_epoch_that_local_status_reports() {
    if zk_testkit::zookeeper().is_none() {
        return;
    }
    let Some(prometheus) = zk_testkit::prometheus::binary() else {
        return;
    };
    local_support::sidecar_built();
    let local = Local::new("scraped", "  replicas: 3\n");
    local.up();
    let status = local.status().expect("status after up");
    let namespace = status["namespace"]
        .as_str()
        .expect("a namespace")
        .to_owned();
    let cluster = status["cluster"].as_str().expect("a cluster").to_owned();

    // The operator's metrics, served by its own module as a leading replica.
    let mut registry = Registry::default();
    let operator_metrics = Metrics::register(&mut registry);
    operator_metrics.leader.set(1);
    drop(operator_metrics.reconcile_started());
    let listener = metrics::bind(SocketAddr::new(address(local.base, 252).into(), 0))
        .expect("a port for the operator's metrics")
        .listener;
    let operator = listener.local_addr().expect("its address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator_server = tokio::spawn(metrics::serve(listener, Arc::new(registry), async {
        let _ = stopped.await;
    }));

    let server = PrometheusServer::start(
        &prometheus,
        address(local.base, 253),
        &[
            ("prometheus.yml", prometheus_config()),
            (
                "targets.json",
                discovered_targets(&local, &status, operator),
            ),
        ],
    )
    .await;
    let member_pods: BTreeSet<String> = status["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["name"].as_str().expect("a name").to_owned())
        .collect();

    // A few scrapes of every member, so rates have samples to work with.
    eventually("five scrapes of every sidecar", Duration::from_secs(60), || async {
        let counts = server
            .query(&format!(
                r#"count_over_time(zookube_leader_myid{{namespace="{namespace}", zookube_cluster="{cluster}"}}[1m])"#
            ))
            .await?;
        let pods: BTreeSet<String> = counts
            .iter()
            .filter(|s| s.value >= 5.0)
            .filter_map(|s| s.label("pod").map(str::to_owned))
            .collect();
        if pods == member_pods {
            Ok(())
        } else {
            Err(format!("{counts:?}; targets: {:?}", server.query("up").await))
        }
    })
    .await;

    // One target per pod, whatever its container ports; the sidecars carry
    // the dashboard's labels, the operator no cluster label.
    let up = server.query(r#"up{job="zookube"}"#).await.expect("up");
    assert_eq!(up.len(), member_pods.len() + 1, "{up:?}");
    for target in &up {
        assert_eq!(target.value, 1.0, "{target:?}");
        let pod = target.label("pod").expect("a pod label");
        if member_pods.contains(pod) {
            assert_eq!(
                target.label("namespace"),
                Some(namespace.as_str()),
                "{target:?}"
            );
            assert_eq!(
                target.label("zookube_cluster"),
                Some(cluster.as_str()),
                "{target:?}"
            );
            assert!(
                target
                    .label("instance")
                    .is_some_and(|i| i.ends_with(":8081")),
                "{target:?}"
            );
        } else {
            assert_eq!(pod, OPERATOR_POD, "{target:?}");
            assert_eq!(
                target.label("namespace"),
                Some(OPERATOR_NAMESPACE),
                "{target:?}"
            );
            assert_eq!(target.label("zookube_cluster"), None, "{target:?}");
        }
    }

    // The leader and epoch Prometheus stores are the ones `local status`
    // reports, member by member.
    let selector = format!(r#"namespace="{namespace}", zookube_cluster="{cluster}""#);
    let leader_pod = eventually("Prometheus to agree with local status", Duration::from_secs(20), || async {
        let status = local.status()?;
        let mut want_leader = BTreeMap::new();
        let mut want_epoch = BTreeMap::new();
        for m in status["members"].as_array().into_iter().flatten() {
            let name = m["name"].as_str().unwrap_or_default().to_owned();
            want_leader.insert(name.clone(), m["leader"].as_f64().unwrap_or(-1.0));
            want_epoch.insert(name, m["peerEpoch"].as_f64().unwrap_or(-1.0));
        }
        let leader = status["leader"].as_f64().ok_or("no leader in local status")?;
        if want_leader.values().any(|l| *l != leader) {
            return Err(format!("the members disagree: {status}"));
        }
        let leaders = series_by_pod(&server.query(&format!("zookube_leader_myid{{{selector}}}")).await?);
        let epochs = series_by_pod(&server.query(&format!("zookube_peer_epoch{{{selector}}}")).await?);
        let leading = server
            .query(&format!(r#"max by (pod) (zookube_member_state{{{selector}, state="LEADING"}}) == 1"#))
            .await?;
        let leader_name = status["leaderName"].as_str().unwrap_or_default().to_owned();
        let leading_pods: Vec<&str> = leading.iter().filter_map(|s| s.label("pod")).collect();
        if leaders == want_leader && epochs == want_epoch && leading_pods == [leader_name.as_str()] {
            Ok(leader_name)
        } else {
            Err(format!(
                "Prometheus: leader {leaders:?}, epoch {epochs:?}, LEADING {leading_pods:?}; local status: leader {want_leader:?}, epoch {want_epoch:?}, {leader_name}"
            ))
        }
    })
    .await;

    // The dashboard's variables find the cluster, and every panel query
    // runs; all but the ones that only count failures return series.
    for (variable, selector, label) in dashboard_variables(&namespace) {
        let values = server
            .label_values(&label, &selector)
            .await
            .unwrap_or_else(|e| panic!("variable {variable}: {e}"));
        let want = if label == "namespace" {
            &namespace
        } else {
            &cluster
        };
        assert!(
            values.contains(want),
            "variable {variable} ({selector}, {label}) offers {values:?}, not {want}"
        );
    }
    let only_failures = [
        "zookube_watcher_poll_errors_total",
        "zookube_operator_reconcile_errors_total",
    ];
    for (title, query) in dashboard_queries(&namespace, &cluster) {
        let result = server
            .query(&query)
            .await
            .unwrap_or_else(|e| panic!("panel {title:?}: {e}"));
        if !only_failures.iter().any(|name| query.contains(name)) {
            assert!(!result.is_empty(), "panel {title:?} shows nothing: {query}");
        }
    }

    // The rules load and evaluate, and none is pending on a healthy ensemble.
    eventually("every rule evaluated", Duration::from_secs(20), || async {
        let groups = server.api("rules").await?;
        let rules: Vec<&Value> = groups["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        let unhealthy: Vec<String> = rules
            .iter()
            .filter(|r| r["health"] != "ok")
            .map(|r| format!("{} {} {}", r["name"], r["health"], r["lastError"]))
            .collect();
        if rules.len() >= 8 && unhealthy.is_empty() {
            Ok(())
        } else {
            Err(format!("{unhealthy:?} of {}", rules.len()))
        }
    })
    .await;
    let healthy = alerts(&server).await.expect("alerts");
    assert!(
        healthy.is_empty(),
        "alerts on a healthy ensemble: {healthy:?}"
    );

    // Kill a follower's server: one voter short of three is exactly a
    // quorum, the member is unreachable, and its sidecar has no server.
    let follower = status["members"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] != leader_pod.as_str())
        .expect("a follower");
    let (myid, follower_pod) = (
        follower["myid"].to_string(),
        follower["name"].as_str().unwrap_or_default(),
    );
    assert_success(&local.run(&["kill", &myid]), "local kill");
    eventually(
        "the alerts of a lost follower to be pending",
        Duration::from_secs(30),
        || async {
            let now = alerts(&server).await?;
            let has = |name: &str, pod: Option<&str>| {
                now.iter().any(|(n, labels, _)| {
                    n == name
                        && labels.get("namespace") == Some(&namespace)
                        && labels.get("zookube_cluster") == Some(&cluster)
                        && pod.is_none_or(|p| labels.get("pod").map(String::as_str) == Some(p))
                })
            };
            let want = has("ZookubeQuorumAtRisk", None)
                && has("ZookubeMemberUnreachable", None)
                && has("ZookubeSidecarCannotReachServer", Some(follower_pod));
            if want && !has("ZookubeNoLeader", None) {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            }
        },
    )
    .await;

    drop(server);
    let _ = stop.send(());
    operator_server
        .await
        .expect("the operator's metrics server")
        .expect("it served");
}
