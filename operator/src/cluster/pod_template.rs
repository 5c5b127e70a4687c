//! What the API server would refuse in the pod template zookube builds from
//! a cluster: label and annotation syntax, resource requests above their
//! limits, and malformed tolerations. No CEL rule checks these (the schema
//! of the Kubernetes types does not), so without this a typo surfaces only
//! as a StatefulSet the API server refuses; here it is an `InvalidSpec`
//! naming the field and the fix. The rules are Kubernetes' own
//! (`apimachinery/pkg/util/validation`, `core/v1` validation).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{FieldProblem, quantity_value};
use crate::crd::ZookeeperClusterSpec;

/// The longest label value, and the longest name part of a key.
const MAX_NAME: usize = 63;
/// The longest key prefix (a DNS subdomain).
const MAX_PREFIX: usize = 253;
/// The most bytes all annotations of an object may hold together.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// Every problem of the pod template's metadata, resources and tolerations.
pub(super) fn problems(spec: &ZookeeperClusterSpec) -> Vec<FieldProblem> {
    let pod = &spec.pod;
    let mut problems = label_problems("spec.pod.labels", &pod.labels);
    problems.extend(label_problems("spec.pod.nodeSelector", &pod.node_selector));
    problems.extend(annotation_problems(
        "spec.pod.annotations",
        &pod.annotations,
    ));
    problems.extend(resource_problems("spec.resources", spec.resources.as_ref()));
    problems.extend(resource_problems(
        "spec.sidecar.resources",
        spec.sidecar.resources.as_ref(),
    ));
    for (i, toleration) in pod.tolerations.iter().enumerate() {
        problems.extend(toleration_problems(
            &format!("spec.pod.tolerations[{i}]"),
            toleration,
        ));
    }
    problems
}

/// The path of one entry of a map field: `spec.pod.labels["team"]`.
pub(super) fn entry(field: &str, key: &str) -> String {
    format!("{field}[{key:?}]")
}

fn label_problems(field: &str, labels: &BTreeMap<String, String>) -> Vec<FieldProblem> {
    labels
        .iter()
        .filter_map(|(key, value)| {
            let why = key_problem(key).or_else(|| label_value_problem(value))?;
            Some(FieldProblem::new(
                entry(field, key),
                Some(format!("{value:?}")),
                why,
            ))
        })
        .collect()
}

fn annotation_problems(field: &str, annotations: &BTreeMap<String, String>) -> Vec<FieldProblem> {
    // Kubernetes checks annotation keys in lower case.
    let mut problems: Vec<FieldProblem> = annotations
        .keys()
        .filter_map(|key| {
            let why = key_problem(&key.to_lowercase())?;
            Some(FieldProblem::new(entry(field, key), None, why))
        })
        .collect();
    let bytes: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_ANNOTATIONS_BYTES {
        problems.push(FieldProblem::new(
            field,
            Some(format!("{bytes} bytes")),
            "annotations may hold at most 256 KiB together; move large values into a ConfigMap",
        ));
    }
    problems
}

/// Why `key` is not a label or annotation key: an optional DNS-subdomain
/// prefix and `/`, then a name of at most 63 characters.
pub fn key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Some(format!(
            "the key's prefix {prefix:?} must be a DNS subdomain (lower-case letters, digits, '-' and '.', at most {MAX_PREFIX} characters, such as example.com) followed by a single '/'"
        ));
    }
    if name.is_empty() || name.len() > MAX_NAME || !is_name(name) {
        return Some(format!(
            "the key's name {name:?} must be 1 to {MAX_NAME} characters: letters, digits, '-', '_' and '.', starting and ending with a letter or digit (with an optional prefix such as example.com/)"
        ));
    }
    None
}

/// Why `value` is not a label value: empty, or at most 63 characters that
/// a name may hold.
pub fn label_value_problem(value: &str) -> Option<String> {
    (value.len() > MAX_NAME || !(value.is_empty() || is_name(value))).then(|| {
        format!(
            "a label value must be at most {MAX_NAME} characters: letters, digits, '-', '_' and '.', starting and ending with a letter or digit (or empty)"
        )
    })
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_name(name: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_alphanumeric();
    name.starts_with(alphanumeric)
        && name.ends_with(alphanumeric)
        && name
            .chars()
            .all(|c| alphanumeric(c) || matches!(c, '-' | '_' | '.'))
}

/// RFC 1123 subdomain: dot-separated labels of lower-case letters, digits
/// and '-', each starting and ending with a letter or digit.
fn is_dns_subdomain(name: &str) -> bool {
    let label_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= MAX_PREFIX
        && name.split('.').all(|label| {
            label.starts_with(label_char)
                && label.ends_with(label_char)
                && label.chars().all(|c| label_char(c) || c == '-')
        })
}

/// Quantities that are not quantities or are negative, and requests above
/// their limits (compared by value: `1536Mi` equals `1.5Gi`).
fn resource_problems(field: &str, resources: Option<&ResourceRequirements>) -> Vec<FieldProblem> {
    let Some(resources) = resources else {
        return Vec::new();
    };
    let empty = BTreeMap::new();
    let requests = resources.requests.as_ref().unwrap_or(&empty);
    let limits = resources.limits.as_ref().unwrap_or(&empty);
    let mut problems = Vec::new();
    let mut values = |kind: &str, map: &BTreeMap<String, Quantity>| -> BTreeMap<String, f64> {
        let mut values = BTreeMap::new();
        for (name, quantity) in map {
            let path = entry(&format!("{field}.{kind}"), name);
            match quantity_value(&quantity.0) {
                Some(value) if value >= 0.0 => {
                    values.insert(name.clone(), value);
                }
                Some(_) => problems.push(FieldProblem::new(
                    path,
                    Some(quantity.0.clone()),
                    "a resource quantity cannot be negative",
                )),
                None => problems.push(FieldProblem::new(
                    path,
                    Some(quantity.0.clone()),
                    "not a Kubernetes quantity; write it like 500m, 2 or 1Gi",
                )),
            }
        }
        values
    };
    let requested = values("requests", requests);
    let limited = values("limits", limits);
    for (name, request) in &requested {
        if let Some(limit) = limited.get(name)
            && request > limit
        {
            problems.push(FieldProblem::new(
                entry(&format!("{field}.requests"), name),
                Some(requests[name].0.clone()),
                format!(
                    "must not exceed {field}.limits[{name:?}] = {}; raise the limit or lower the request",
                    limits[name].0
                ),
            ));
        }
    }
    problems
}

/// The effects a taint, and so a toleration, may name ("" for all).
const EFFECTS: [&str; 4] = ["", "NoSchedule", "PreferNoSchedule", "NoExecute"];

/// What the API server refuses in one toleration.
pub fn toleration_problems(field: &str, toleration: &Toleration) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    let key = toleration.key.as_deref().unwrap_or_default();
    let operator = toleration.operator.as_deref().unwrap_or("Equal");
    let value = toleration.value.as_deref().unwrap_or_default();
    let effect = toleration.effect.as_deref().unwrap_or_default();
    let problem = |name: &str, value: &str, message: &str| {
        FieldProblem::new(
            format!("{field}.{name}"),
            Some(format!("{value:?}")),
            message,
        )
    };
    if !key.is_empty()
        && let Some(why) = key_problem(key)
    {
        problems.push(problem("key", key, &why));
    }
    match operator {
        "Exists" if !value.is_empty() => problems.push(problem(
            "value",
            value,
            "a toleration with operator Exists matches any value; remove value, or use operator Equal",
        )),
        "Exists" => {}
        "Equal" if key.is_empty() => problems.push(problem(
            "operator",
            operator,
            "a toleration without a key matches every taint only with operator Exists; set a key or use operator Exists",
        )),
        "Equal" => {
            if let Some(why) = label_value_problem(value) {
                problems.push(problem("value", value, &why));
            }
        }
        _ => problems.push(problem(
            "operator",
            operator,
            "operator must be Exists or Equal (the default)",
        )),
    }
    if !EFFECTS.contains(&effect) {
        problems.push(problem(
            "effect",
            effect,
            "effect must be NoSchedule, PreferNoSchedule or NoExecute, or empty for all",
        ));
    }
    if let Some(seconds) = toleration.toleration_seconds
        && effect != "NoExecute"
    {
        problems.push(problem(
            "tolerationSeconds",
            &seconds.to_string(),
            "tolerationSeconds applies only to effect NoExecute; set effect: NoExecute or remove tolerationSeconds",
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_and_annotation_keys() {
        let cases = [
            ("team", true),
            ("app.kubernetes.io/part-of", true),
            ("example.com/Team_1.x", true),
            ("a", true),
            (&"k".repeat(63), true),
            (&"k".repeat(64), false),
            ("", false),
            ("-team", false),
            ("team-", false),
            ("data science", false),
            ("example.com/", false),
            ("/team", false),
            ("Example.com/team", false),
            ("example.com/a/b", false),
            ("exa_mple.com/team", false),
            ("-example.com/team", false),
        ];
        for (key, valid) in cases {
            assert_eq!(key_problem(key).is_none(), valid, "{key:?}");
        }
        let long_prefix = format!("{}.com/team", "a".repeat(250));
        assert!(key_problem(&long_prefix).is_some());
    }

    #[test]
    fn label_values() {
        let cases = [
            ("", true),
            ("data", true),
            ("v1.2_3-x", true),
            ("A", true),
            (&"v".repeat(63), true),
            (&"v".repeat(64), false),
            ("data science", false),
            ("-data", false),
            ("data.", false),
            ("a/b", false),
        ];
        for (value, valid) in cases {
            assert_eq!(label_value_problem(value).is_none(), valid, "{value:?}");
        }
    }

    #[test]
    fn annotation_keys_are_checked_in_lower_case_and_values_only_by_size() {
        let annotations = BTreeMap::from([
            (
                "Example.com/Team".to_owned(),
                "any text / at all".to_owned(),
            ),
            ("bad key".to_owned(), String::new()),
        ]);
        let found = annotation_problems("spec.pod.annotations", &annotations);
        let fields: Vec<&str> = found.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, vec![r#"spec.pod.annotations["bad key"]"#]);
        let huge = BTreeMap::from([("big".to_owned(), "x".repeat(MAX_ANNOTATIONS_BYTES))]);
        assert_eq!(annotation_problems("a", &huge).len(), 1);
    }

    fn resources(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> ResourceRequirements {
        let map = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
                    .collect(),
            )
        };
        ResourceRequirements {
            requests: map(requests),
            limits: map(limits),
            ..Default::default()
        }
    }

    #[test]
    fn requests_may_not_exceed_limits_by_value() {
        type Pairs = &'static [(&'static str, &'static str)];
        let cases: [(Pairs, Pairs, &[&str]); 8] = [
            (&[("memory", "1Gi")], &[("memory", "2Gi")], &[]),
            (&[("memory", "1536Mi")], &[("memory", "1.5Gi")], &[]),
            (&[("cpu", "500m")], &[("cpu", "0.5")], &[]),
            (&[("cpu", "1")], &[], &[]),
            (&[], &[("cpu", "1")], &[]),
            (
                &[("memory", "2Gi")],
                &[("memory", "2G")],
                &[r#"r.requests["memory"]"#],
            ),
            (&[("cpu", "lots")], &[], &[r#"r.requests["cpu"]"#]),
            (&[], &[("cpu", "-1")], &[r#"r.limits["cpu"]"#]),
        ];
        for (requests, limits, want) in cases {
            let found = resource_problems("r", Some(&resources(requests, limits)));
            let fields: Vec<&str> = found.iter().map(|p| p.field.as_str()).collect();
            assert_eq!(fields, want, "{requests:?} {limits:?}");
        }
        let found = resource_problems(
            "spec.resources",
            Some(&resources(&[("memory", "4Gi")], &[("memory", "2Gi")])),
        );
        assert_eq!(
            found[0].to_string(),
            r#"spec.resources.requests["memory"] = 4Gi: must not exceed spec.resources.limits["memory"] = 2Gi; raise the limit or lower the request"#
        );
    }

    fn toleration(
        key: Option<&str>,
        operator: Option<&str>,
        value: Option<&str>,
        effect: Option<&str>,
        seconds: Option<i64>,
    ) -> Toleration {
        Toleration {
            key: key.map(str::to_owned),
            operator: operator.map(str::to_owned),
            value: value.map(str::to_owned),
            effect: effect.map(str::to_owned),
            toleration_seconds: seconds,
        }
    }

    #[test]
    fn tolerations_the_api_server_accepts() {
        let d = Some("dedicated");
        let cases = [
            (
                "equal",
                toleration(d, None, Some("zk"), Some("NoSchedule"), None),
                vec![],
            ),
            (
                "exists",
                toleration(d, Some("Exists"), None, None, None),
                vec![],
            ),
            (
                "all taints",
                toleration(None, Some("Exists"), None, None, None),
                vec![],
            ),
            (
                "eviction grace",
                toleration(d, Some("Exists"), None, Some("NoExecute"), Some(300)),
                vec![],
            ),
            (
                "exists with a value",
                toleration(d, Some("Exists"), Some("zk"), None, None),
                vec!["t.value"],
            ),
            (
                "unknown operator",
                toleration(d, Some("In"), Some("zk"), None, None),
                vec!["t.operator"],
            ),
            (
                "unknown effect",
                toleration(d, None, Some("zk"), Some("NoRun"), None),
                vec!["t.effect"],
            ),
            (
                "seconds without NoExecute",
                toleration(d, Some("Exists"), None, Some("NoSchedule"), Some(60)),
                vec!["t.tolerationSeconds"],
            ),
            (
                "seconds without an effect",
                toleration(d, Some("Exists"), None, None, Some(60)),
                vec!["t.tolerationSeconds"],
            ),
            (
                "equal without a key",
                toleration(None, Some("Equal"), Some("zk"), None, None),
                vec!["t.operator"],
            ),
            (
                "a bad key",
                toleration(Some("bad key"), Some("Exists"), None, None, None),
                vec!["t.key"],
            ),
            (
                "a bad value",
                toleration(d, None, Some("z k"), None, None),
                vec!["t.value"],
            ),
        ];
        for (case, toleration, want) in cases {
            let found = toleration_problems("t", &toleration);
            let fields: Vec<&str> = found.iter().map(|p| p.field.as_str()).collect();
            assert_eq!(fields, want, "{case}: {found:?}");
        }
    }
}
