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

/// Every `properties` path of the spec schema the API server stores `null`
/// at (`nullable: true`), as a list of keys (`[]` for an array's items).
fn nullable_paths(schema: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if schema["nullable"] == true {
        out.push(path.clone());
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (name, property) in properties {
            path.push(name.clone());
            nullable_paths(property, path, out);
            path.pop();
        }
    }
    if schema["items"].is_object() {
        path.push("[]".to_owned());
        nullable_paths(&schema["items"], path, out);
        path.pop();
    }
}

/// `value` with `null` at `path`, creating the objects (and one-element
/// arrays) on the way.
fn with_null_at(mut value: serde_json::Value, path: &[String]) -> serde_json::Value {
    fn set(value: &mut serde_json::Value, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            *value = serde_json::Value::Null;
            return;
        };
        if first == "[]" {
            if !value.is_array() {
                *value = serde_json::json!([{}]);
            }
            set(&mut value[0], rest);
        } else {
            if !value.is_object() {
                *value = serde_json::json!({});
            }
            set(&mut value[first.as_str()], rest);
        }
    }
    set(&mut value["spec"], path);
    value
}

#[test]
fn every_field_the_schema_lets_be_null_reads_as_absent() {
    // The API server keeps a `null` only where the schema says `nullable`;
    // the operator must then be able to read the object, or it cannot
    // list any cluster at all.
    let crd: serde_json::Value = serde_saphyr::from_str(&crd::crd_yaml().unwrap()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut paths = Vec::new();
    nullable_paths(spec, &mut Vec::new(), &mut paths);
    assert!(paths.len() > 10, "{paths:?}");
    let minimal = serde_json::json!({
        "apiVersion": "zookube.io/v1alpha1", "kind": "ZookeeperCluster",
        "metadata": {"name": "zk", "namespace": "default"}, "spec": {}
    });
    let unreadable: Vec<String> = paths
        .iter()
        .filter_map(|path| {
            let object = with_null_at(minimal.clone(), path);
            let error = serde_json::from_value::<crd::ZookeeperCluster>(object).err()?;
            // Other errors are the made-up parents' missing required fields.
            error
                .to_string()
                .contains("invalid type: null")
                .then(|| format!("spec.{}: {error}", path.join(".")))
        })
        .collect();
    assert_eq!(unreadable, Vec::<String>::new());
}
