//! The clusters as the controller watches them: untyped objects, each made
//! a [`ZookeeperCluster`] on its own. A typed watch fails the whole list
//! when one object cannot be read (one stored before the CRD refused what
//! it holds), which stops every cluster; this way only that one is
//! reported, on itself, and the others are reconciled.

use kube::api::{ApiResource, DynamicObject};

use crate::crd::ZookeeperCluster;

/// `ZookeeperCluster` as an untyped resource: the same group, version,
/// kind and plural, so owner references and watches match the typed ones.
pub fn api_resource() -> ApiResource {
    ApiResource::erase::<ZookeeperCluster>(&())
}

/// Why a watched object is not a readable `ZookeeperCluster`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path}: {problem}; zookube cannot read this cluster and leaves it alone until the field is fixed (`kubectl edit zk/{name}`: give it a valid value or remove it)"
)]
pub struct Unreadable {
    /// The field, as `spec.storage.size`.
    pub path: String,
    /// What is wrong with it, in serde's words.
    pub problem: String,
    /// The cluster's name.
    pub name: String,
}

/// The typed cluster, or the field that keeps it from being one.
pub fn typed(object: &DynamicObject) -> Result<ZookeeperCluster, Unreadable> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let unreadable = |path: String, problem: String| Unreadable {
        path,
        problem,
        name: name.clone(),
    };
    let value = serde_json::to_value(object)
        .map_err(|e| unreadable("(the object)".to_owned(), e.to_string()))?;
    serde_path_to_error::deserialize::<_, ZookeeperCluster>(value)
        .map_err(|e| unreadable(e.path().to_string(), e.inner().to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::test_support::Cluster;

    fn object(change: impl FnOnce(&mut Value)) -> DynamicObject {
        let mut value = serde_json::to_value(Cluster::test().build()).unwrap();
        change(&mut value);
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_readable_object_is_the_typed_cluster() {
        let cluster = Cluster::test().build();
        assert_eq!(typed(&object(|_| {})), Ok(cluster));
    }

    #[test]
    fn an_unreadable_object_names_its_field() {
        let cases: [(&str, Value, &str, &str); 3] = [
            (
                "a null the old schema allowed",
                json!({"storage": {"size": null}}),
                "spec.storage.size",
                "invalid type: null",
            ),
            (
                "a wrong type",
                json!({"replicas": "three"}),
                "spec.replicas",
                "invalid type: string \"three\"",
            ),
            (
                "a wrong enum",
                json!({"imagePullPolicy": "Sometimes"}),
                "spec.imagePullPolicy",
                "unknown variant `Sometimes`",
            ),
        ];
        for (case, spec, path, problem) in cases {
            let error = typed(&object(|v| v["spec"] = spec)).unwrap_err();
            assert_eq!(error.path, path, "{case}");
            assert!(error.problem.starts_with(problem), "{case}: {error}");
            assert_eq!(error.name, "zk", "{case}");
            let message = error.to_string();
            assert!(message.starts_with(&format!("{path}: ")), "{message}");
            assert!(message.contains("kubectl edit zk/zk"), "{message}");
        }
    }

    #[test]
    fn the_untyped_resource_is_the_typed_one() {
        let resource = api_resource();
        assert_eq!(resource.api_version, "zookube.io/v1alpha1");
        assert_eq!(resource.kind, "ZookeeperCluster");
        assert_eq!(resource.plural, "zookeeperclusters");
    }
}
