//! Reads a `ZookeeperCluster` from a YAML file, as `zk-operator render` and
//! `zk-operator local` do. Every error names where the problem is (a line
//! for YAML syntax, a field path otherwise) and the fix. Unknown fields are
//! errors here — the API server would silently drop them, and a typo such as
//! `replica: 5` should not quietly run three voters.

use std::fmt;

use kube::CustomResourceExt;
use serde_json::Value;

use crate::crd::{GROUP, VERSION, ZookeeperCluster};

/// Why a file does not hold one usable `ZookeeperCluster`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the file is not valid YAML: {0}")]
    Yaml(String),
    #[error(
        "the file holds no ZookeeperCluster (found: {found}); write one with `apiVersion: {GROUP}/{VERSION}` and `kind: ZookeeperCluster` (see examples/)"
    )]
    NoCluster { found: String },
    #[error("the file holds {0} ZookeeperClusters; keep one per file, or pick one with --name")]
    SeveralClusters(usize),
    #[error("no ZookeeperCluster named {0:?} in the file (found: {1})")]
    NoSuchName(String, String),
    #[error("apiVersion is {0:?}; this zk-operator reads `apiVersion: {GROUP}/{VERSION}`")]
    ApiVersion(String),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    UnknownFields(Vec<UnknownField>),
    #[error("{path}: {message}; see `kubectl explain zookeepercluster.{path}` or examples/")]
    Field { path: String, message: String },
}

/// A field the CRD does not have, with the closest one it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    pub path: String,
    pub suggestion: Option<String>,
}

impl fmt::Display for UnknownField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: unknown field", self.path)?;
        match &self.suggestion {
            Some(s) => write!(f, "; did you mean `{s}`?"),
            None => write!(f, "; remove it (see examples/ for the fields)"),
        }
    }
}

/// Parses the `ZookeeperCluster` in a YAML text (documents of other kinds,
/// such as a Namespace, are skipped). With `name`, picks that cluster from
/// a file that holds several.
pub fn parse_cluster(text: &str, name: Option<&str>) -> Result<ZookeeperCluster, ParseError> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| ParseError::Yaml(e.to_string()))?;
    let kind_of = |doc: &Value| doc.get("kind").and_then(Value::as_str).map(str::to_owned);
    let name_of = |doc: &Value| {
        doc.pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let clusters: Vec<&Value> = documents
        .iter()
        .filter(|d| kind_of(d).as_deref() == Some("ZookeeperCluster"))
        .collect();
    let names = || {
        clusters
            .iter()
            .map(|d| name_of(d).unwrap_or_else(|| "<no name>".to_owned()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let document = match (clusters.as_slice(), name) {
        ([], _) => {
            let found: Vec<String> = documents
                .iter()
                .filter(|d| !d.is_null())
                .map(|d| kind_of(d).unwrap_or_else(|| "a document without kind".to_owned()))
                .collect();
            let found = if found.is_empty() {
                "nothing".to_owned()
            } else {
                found.join(", ")
            };
            return Err(ParseError::NoCluster { found });
        }
        (_, Some(name)) => clusters
            .iter()
            .find(|d| name_of(d).as_deref() == Some(name))
            .ok_or_else(|| ParseError::NoSuchName(name.to_owned(), names()))?,
        ([one], None) => one,
        (several, None) => return Err(ParseError::SeveralClusters(several.len())),
    };

    let api_version = document
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if api_version != format!("{GROUP}/{VERSION}") {
        return Err(ParseError::ApiVersion(api_version.to_owned()));
    }
    let unknown = unknown_fields(document);
    if !unknown.is_empty() {
        return Err(ParseError::UnknownFields(unknown));
    }
    serde_path_to_error::deserialize((*document).clone()).map_err(|e| ParseError::Field {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Fields of `document` that the CRD's schema does not define.
fn unknown_fields(document: &Value) -> Vec<UnknownField> {
    let crd = ZookeeperCluster::crd();
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null);
    let mut unknown = Vec::new();
    if let Some(object) = document.as_object() {
        for (key, value) in object {
            match key.as_str() {
                // Checked by the API server, not by the CRD's schema.
                "apiVersion" | "kind" | "metadata" => {}
                _ => walk(&schema, key, value, key, &mut unknown),
            }
        }
    }
    unknown
}

/// Checks the field `key` (at `path`) against the properties of `parent`.
fn walk(parent: &Value, key: &str, value: &Value, path: &str, out: &mut Vec<UnknownField>) {
    let properties = parent.get("properties").and_then(Value::as_object);
    let schema = match properties.and_then(|p| p.get(key)) {
        Some(schema) => schema,
        None => match parent.get("additionalProperties") {
            Some(schema) if schema.is_object() => schema,
            _ if parent.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) => {
                return;
            }
            _ => {
                let candidates = properties.map(|p| p.keys().cloned().collect::<Vec<_>>());
                out.push(UnknownField {
                    path: path.to_owned(),
                    suggestion: candidates.and_then(|c| closest(key, &c)).map(|s| {
                        match path.rsplit_once('.') {
                            Some((head, _)) => format!("{head}.{s}"),
                            None => s,
                        }
                    }),
                });
                return;
            }
        },
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                walk(schema, k, v, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Object(map) = item {
                        for (k, v) in map {
                            walk(item_schema, k, v, &format!("{path}[{i}].{k}"), out);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// The candidate closest to `key`: equal ignoring case, or at most two edits away.
fn closest(key: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| {
            let distance = if c.eq_ignore_ascii_case(key) {
                0
            } else {
                edit_distance(&key.to_ascii_lowercase(), &c.to_ascii_lowercase())
            };
            (distance, c)
        })
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| c.clone())
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(current)
            };
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "apiVersion: zookube.io/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: zk\nspec:\n  replicas: 3\n";

    #[test]
    fn a_minimal_cluster_parses_with_defaults() {
        let cluster = parse_cluster(MINIMAL, None).unwrap();
        assert_eq!(cluster.metadata.name.as_deref(), Some("zk"));
        assert_eq!(cluster.spec.replicas, 3);
        assert_eq!(cluster.spec.observers, 0);
        assert_eq!(cluster.spec.storage.size.0, "10Gi");
    }

    #[test]
    fn other_documents_are_skipped() {
        let text =
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n---\n{MINIMAL}");
        assert!(parse_cluster(&text, None).is_ok());
    }

    #[test]
    fn a_typo_names_the_field_and_the_likely_one() {
        let text = MINIMAL.replace("replicas: 3", "replica: 5\n  config:\n    tickTim: 3000");
        let err = parse_cluster(&text, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.config.tickTim: unknown field; did you mean `spec.config.tickTime`?; spec.replica: unknown field; did you mean `spec.replicas`?"
        );
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let text = MINIMAL.replace("replicas: 3", "replicas: three");
        let err = parse_cluster(&text, None).unwrap_err();
        let ParseError::Field { path, message } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(path, "spec.replicas");
        assert!(message.contains("three"), "{message}");
    }

    #[test]
    fn extra_keys_and_pod_labels_are_free_form() {
        let text = MINIMAL.replace(
            "replicas: 3",
            "replicas: 3\n  config:\n    extra:\n      globalOutstandingLimit: \"2000\"\n  pod:\n    labels:\n      team: data",
        );
        let cluster = parse_cluster(&text, None).unwrap();
        assert_eq!(cluster.spec.config.extra["globalOutstandingLimit"], "2000");
    }

    #[test]
    fn the_wrong_api_version_or_kind_is_named() {
        let text = MINIMAL.replace("v1alpha1", "v1");
        assert_eq!(
            parse_cluster(&text, None).unwrap_err(),
            ParseError::ApiVersion("zookube.io/v1".into())
        );
        let text = MINIMAL.replace("ZookeeperCluster", "ZooKeeperCluster");
        assert!(matches!(
            parse_cluster(&text, None).unwrap_err(),
            ParseError::NoCluster { found } if found == "ZooKeeperCluster"
        ));
        assert!(matches!(
            parse_cluster("", None).unwrap_err(),
            ParseError::NoCluster { found } if found == "nothing"
        ));
    }

    #[test]
    fn several_clusters_need_a_name() {
        let two = format!(
            "{MINIMAL}---\n{}",
            MINIMAL.replace("name: zk", "name: other")
        );
        assert_eq!(
            parse_cluster(&two, None).unwrap_err(),
            ParseError::SeveralClusters(2)
        );
        let other = parse_cluster(&two, Some("other")).unwrap();
        assert_eq!(other.metadata.name.as_deref(), Some("other"));
        assert!(matches!(
            parse_cluster(&two, Some("nope")).unwrap_err(),
            ParseError::NoSuchName(..)
        ));
    }

    #[test]
    fn yaml_syntax_errors_carry_a_location() {
        let err = parse_cluster("spec:\n  replicas: [3\n", None).unwrap_err();
        let ParseError::Yaml(message) = err else {
            panic!("{err:?}")
        };
        assert!(message.contains("line"), "{message}");
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("replica", "replicas"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
