//! The labels zookube puts on everything it creates, and the selectors made
//! of them. The keys and values are fixed by the team brief; dashboards,
//! alerts and `kubectl get pods -l zookube.io/role=leader` rely on them.

use std::collections::BTreeMap;

use zk_ensemble::Role;

pub const NAME: &str = "app.kubernetes.io/name";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// Maintained by the operator on each pod: `leader`, `follower` or `observer`.
pub const ROLE: &str = "zookube.io/role";

/// The value of [`NAME`] on every object.
pub const APP: &str = "zookeeper";
/// The value of [`MANAGED_BY`] on every object.
pub const MANAGER: &str = "zookube";

/// The keys zookube sets itself; users may not set them in `spec.pod.labels`.
pub const OWNED: [&str; 5] = [NAME, INSTANCE, MANAGED_BY, COMPONENT, ROLE];

/// What [`ROLE`] says about a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleLabel {
    Leader,
    Follower,
    Observer,
}

impl RoleLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleLabel::Leader => "leader",
            RoleLabel::Follower => "follower",
            RoleLabel::Observer => "observer",
        }
    }
}

/// The labels of every object of a cluster.
pub fn common(cluster: &str) -> BTreeMap<String, String> {
    labels([(NAME, APP), (INSTANCE, cluster), (MANAGED_BY, MANAGER)])
}

/// The labels of a role's StatefulSet, pods and volumes.
pub fn member(cluster: &str, role: Role) -> BTreeMap<String, String> {
    let mut labels = common(cluster);
    labels.insert(COMPONENT.to_owned(), role.to_string());
    labels
}

/// Selects every member of a cluster, voters and observers.
pub fn cluster_selector(cluster: &str) -> BTreeMap<String, String> {
    labels([(NAME, APP), (INSTANCE, cluster)])
}

/// Selects the members of one role. A StatefulSet's selector is immutable,
/// so this must never change.
pub fn role_selector(cluster: &str, role: Role) -> BTreeMap<String, String> {
    let mut labels = cluster_selector(cluster);
    labels.insert(COMPONENT.to_owned(), role.to_string());
    labels
}

/// Selects every object zookube manages, in any cluster.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGER}")
}

/// A label map as a selector string: `k=v,k=v`, keys in order.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The JSON merge patch that sets a pod's [`ROLE`] to `label`, or removes
/// it (`null`), and touches nothing else of the pod.
pub fn role_label_patch(label: Option<RoleLabel>) -> serde_json::Value {
    serde_json::json!({ "metadata": { "labels": { ROLE: label.map(RoleLabel::as_str) } } })
}

fn labels<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_read_as_kubectl_expects() {
        assert_eq!(
            selector_string(&role_selector("zk", Role::Voter)),
            "app.kubernetes.io/component=voter,app.kubernetes.io/instance=zk,app.kubernetes.io/name=zookeeper"
        );
        assert_eq!(managed_selector(), "app.kubernetes.io/managed-by=zookube");
    }

    #[test]
    fn a_role_label_patch_sets_or_removes_that_label_only() {
        assert_eq!(
            role_label_patch(Some(RoleLabel::Leader)).to_string(),
            r#"{"metadata":{"labels":{"zookube.io/role":"leader"}}}"#
        );
        assert_eq!(
            role_label_patch(None).to_string(),
            r#"{"metadata":{"labels":{"zookube.io/role":null}}}"#
        );
    }

    #[test]
    fn the_crd_rule_refuses_exactly_the_owned_keys() {
        // crd::POD_LABELS_RULE spells these keys out for CEL.
        let rule = crate::crd::pod_labels_rule();
        for key in OWNED {
            assert!(rule.contains(&format!("!('{key}' in self)")), "{key}");
        }
        assert_eq!(rule.matches(" in self").count(), OWNED.len());
    }
}
