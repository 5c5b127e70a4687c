//! `zk-operator render` and the builders behind it: checked-in expected
//! output for the examples, and held-out clusters in which every pod must
//! find itself — with the right myid and role — in the server list.
//!
//! Regenerate the expected files with
//! `ZOOKUBE_BLESS=1 cargo test -p zk-operator --test render`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;
use zk_ensemble::identity::{self, Myid};
use zk_ensemble::{Role, ZooCfg, messages};
use zk_operator::{build, cluster, render};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Compares `actual` with the checked-in file, or rewrites it when
/// `ZOOKUBE_BLESS` is set.
#[track_caller]
fn expect_file(path: &Path, actual: &str) {
    if std::env::var_os("ZOOKUBE_BLESS").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, actual).unwrap();
    }
    let expected = fs::read_to_string(path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} is stale: run `ZOOKUBE_BLESS=1 cargo test -p zk-operator --test render` and review the diff",
        path.display()
    );
}

fn render_example(name: &str) -> String {
    let text = fs::read_to_string(repo().join(format!("examples/{name}.yaml"))).unwrap();
    let cluster = cluster::parse_cluster(&text, None).unwrap();
    let validated = cluster::validate(&cluster).unwrap();
    render::render_yaml(&build::children(&validated)).unwrap()
}

#[test]
fn the_minimal_example_renders_as_checked_in() {
    expect_file(
        &repo().join("operator/tests/expected/minimal.yaml"),
        &render_example("minimal"),
    );
}

#[test]
fn the_full_example_renders_as_checked_in() {
    expect_file(
        &repo().join("operator/tests/expected/full.yaml"),
        &render_example("full"),
    );
}

fn zk_operator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zk-operator"))
        .args(args)
        .env_remove("ZOOKUBE_SIDECAR_IMAGE")
        .output()
        .unwrap()
}

fn write_cluster(dir: &Path, name: &str, namespace: &str, voters: i32, observers: i32) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    fs::write(
        &path,
        format!(
            "apiVersion: zookube.io/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  replicas: {voters}\n  observers: {observers}\n"
        ),
    )
    .unwrap();
    path
}

/// The documents `zk-operator render` printed, by kind.
fn documents(stdout: &[u8]) -> Vec<Value> {
    serde_saphyr::from_multiple(std::str::from_utf8(stdout).unwrap()).unwrap()
}

fn of_kind<T: serde::de::DeserializeOwned>(docs: &[Value], kind: &str) -> Vec<T> {
    docs.iter()
        .filter(|d| d["kind"] == kind)
        .map(|d| serde_json::from_value(d.clone()).unwrap())
        .collect()
}

/// What `zk-sidecar init` does in a pod: the ordinal from the pod's host
/// name, the role from `--role`.
fn myid_of_pod(pod: &str, init_args: &[String]) -> Myid {
    let role_at = init_args.iter().position(|a| a == "--role").unwrap() + 1;
    let role: Role = init_args[role_at].parse().unwrap();
    Myid::for_ordinal(role, identity::ordinal_from_hostname(pod).unwrap()).unwrap()
}

#[test]
fn every_pod_finds_itself_in_the_server_list() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("zk", "default", 1, 0),
        ("zk", "default", 1, 2),
        ("coordination", "prod", 3, 0),
        ("coordination", "prod", 3, 2),
        ("kafka-zk", "team-a", 5, 0),
        ("kafka-zk", "team-a", 5, 2),
        ("a", "b", 7, 0),
        ("a", "b", 7, 2),
    ];
    for (name, namespace, voters, observers) in cases {
        let file = write_cluster(dir.path(), name, namespace, voters, observers);
        let out = zk_operator(&["render", "-f", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let docs = documents(&out.stdout);

        let config_maps: Vec<ConfigMap> = of_kind(&docs, "ConfigMap");
        let config = config_maps
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(&format!("{name}-config")))
            .unwrap();
        let zoo_cfg = ZooCfg::parse(&config.data.as_ref().unwrap()["zoo.cfg"]).unwrap();
        assert_eq!(
            zoo_cfg.servers.len(),
            usize::try_from(voters + observers).unwrap()
        );

        let stateful_sets: Vec<StatefulSet> = of_kind(&docs, "StatefulSet");
        assert_eq!(stateful_sets.len(), if observers > 0 { 2 } else { 1 });
        let mut pods_seen = 0;
        for sts in &stateful_sets {
            let sts_name = sts.metadata.name.clone().unwrap();
            assert_eq!(sts.metadata.namespace.as_deref(), Some(namespace));
            let sts_spec = sts.spec.as_ref().unwrap();
            let pod_spec = sts_spec.template.spec.as_ref().unwrap();
            let init = &pod_spec.init_containers.as_ref().unwrap()[0];
            let init_args = init.command.as_ref().unwrap();
            let service = sts_spec.service_name.as_deref().unwrap();
            for ordinal in 0..sts_spec.replicas.unwrap() {
                let pod = format!("{sts_name}-{ordinal}");
                let fqdn = format!("{pod}.{service}.{namespace}.svc.cluster.local");
                let myid = myid_of_pod(&pod, init_args);
                let server = zoo_cfg
                    .server(i64::from(myid))
                    .unwrap_or_else(|| panic!("{pod}: server.{myid} is missing"));
                assert_eq!(server.addresses[0].host, fqdn, "{pod}");
                assert_eq!(server.role, myid.role(), "{pod}");
                // zk-sidecar check's verdict on this pod's config and myid.
                let summary = zk_ensemble::validate(&zoo_cfg, &myid.file_contents())
                    .unwrap_or_else(|p| panic!("{pod}: {p:?}"));
                assert_eq!(summary.myid, myid);
                assert_eq!(summary.voters, usize::try_from(voters).unwrap());
                pods_seen += 1;
            }
        }
        assert_eq!(pods_seen, voters + observers, "{name}");
    }
}

#[test]
fn even_sizes_are_refused_with_the_rules_message() {
    let dir = tempfile::tempdir().unwrap();
    for voters in [2, 4, 6] {
        let file = write_cluster(dir.path(), "zk", "default", voters, 0);
        let out = zk_operator(&["render", "-f", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty(), "nothing is rendered");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            stderr,
            format!(
                "error: spec.replicas = {voters}: {}\n",
                messages::REPLICAS_ODD
            )
        );
    }
}

#[test]
fn render_honours_the_namespace_flag_and_reports_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_cluster(dir.path(), "zk", "default", 3, 0);
    let out = zk_operator(&["render", "-f", file.to_str().unwrap(), "-n", "other"]);
    assert!(out.status.success());
    let docs = documents(&out.stdout);
    assert!(docs.iter().all(|d| d["metadata"]["namespace"] == "other"));

    let out = zk_operator(&["render", "-f", "no-such-file.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-file.yaml"));
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(render_example("full"), render_example("full"));
}
