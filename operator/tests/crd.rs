//! The checked-in CRD (`crds/zookeepercluster.yaml`, and its copy in the
//! Helm chart) is exactly what `zk-operator crd` prints. Regenerate both with
//! `ZOOKUBE_BLESS=1 cargo test -p zk-operator --test crd`.

use std::fs;
use std::path::Path;
use std::process::Command;

use zk_operator::crd;

#[test]
fn the_checked_in_crds_are_current() {
    let yaml = crd::crd_yaml().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in [
        "crds/zookeepercluster.yaml",
        "charts/zookube/crds/zookeepercluster.yaml",
    ] {
        let path = repo.join(file);
        if std::env::var_os("ZOOKUBE_BLESS").is_some() {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &yaml).unwrap();
        }
        assert!(
            fs::read_to_string(&path).unwrap_or_default() == yaml,
            "{file} is stale: run `ZOOKUBE_BLESS=1 cargo test -p zk-operator --test crd`"
        );
    }
}

#[test]
fn zk_operator_crd_prints_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_zk-operator"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        crd::crd_yaml().unwrap()
    );
}

#[test]
fn the_crd_has_the_agreed_names_and_subresources() {
    let crd: serde_json::Value = serde_saphyr::from_str(&crd::crd_yaml().unwrap()).unwrap();
    let spec = &crd["spec"];
    assert_eq!(crd["metadata"]["name"], "zookeeperclusters.zookube.io");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["shortNames"][0], "zk");
    let version = &spec["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(
        version["subresources"]["scale"],
        serde_json::json!({
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector"
        })
    );
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.get("priority").is_none())
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, vec!["Replicas", "Ready", "Leader", "Epoch", "Age"]);
}
