//! Whether a child needs applying. Server-side apply of an unchanged object
//! is harmless but not free; skipping it keeps a stable cluster quiet (no
//! writes at all) while still correcting drift.

use serde_json::Value;

use crate::build::APPLIED_HASH_ANNOTATION;
use crate::cluster::same_quantity;

/// A child is up to date when it was applied from the same desired object
/// (same [`APPLIED_HASH_ANNOTATION`]) and still holds every field zookube
/// sets, with the same values. Anything else — a new desired object, a field
/// someone changed or removed — calls for an apply.
pub fn up_to_date(desired: &Value, current: &Value) -> bool {
    let hash = |v: &Value| {
        v.pointer(&format!(
            "/metadata/annotations/{}",
            APPLIED_HASH_ANNOTATION.replace('/', "~1")
        ))
        .cloned()
    };
    hash(desired).is_some() && hash(desired) == hash(current) && holds(current, desired)
}

/// Whether `current` holds every field of `desired` with the same value.
/// Objects may carry more fields (the API server adds defaults and status);
/// lists must match element by element. Empty lists and maps in `desired`
/// match absent ones, as the API server drops them. Resource quantities
/// match by value: the server stores `1.5Gi` as `1536Mi`.
pub fn holds(current: &Value, desired: &Value) -> bool {
    holds_in(current, desired, false)
}

fn holds_in(current: &Value, desired: &Value, quantities: bool) -> bool {
    match (desired, current) {
        (Value::Object(want), Value::Object(have)) => want.iter().all(|(k, w)| match have.get(k) {
            Some(h) => holds_in(h, w, quantities || k == "requests" || k == "limits"),
            None => is_empty(w),
        }),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len()
                && want
                    .iter()
                    .zip(have)
                    .all(|(w, h)| holds_in(h, w, quantities))
        }
        (Value::String(want), Value::String(have)) if quantities => {
            want == have || same_quantity(want, have)
        }
        (want, Value::Null) => is_empty(want),
        (want, have) => want == have,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn with_hash(mut v: Value, hash: &str) -> Value {
        v["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] = json!(hash);
        v
    }

    #[test]
    fn server_defaults_and_status_do_not_count_as_drift() {
        let desired = with_hash(
            json!({"metadata": {"name": "zk"}, "spec": {"ports": [{"name": "client", "port": 2181}], "tolerations": []}}),
            "h1",
        );
        let current = with_hash(
            json!({
                "metadata": {"name": "zk", "uid": "u", "resourceVersion": "7"},
                "spec": {"ports": [{"name": "client", "port": 2181, "protocol": "TCP"}], "clusterIP": "10.0.0.1"},
                "status": {"loadBalancer": {}}
            }),
            "h1",
        );
        assert!(up_to_date(&desired, &current));
    }

    #[test]
    fn a_new_desired_object_or_drift_calls_for_an_apply() {
        let desired = with_hash(
            json!({"metadata": {"name": "zk"}, "spec": {"replicas": 3}}),
            "h2",
        );
        let applied_before = with_hash(
            json!({"metadata": {"name": "zk"}, "spec": {"replicas": 3}}),
            "h1",
        );
        assert!(
            !up_to_date(&desired, &applied_before),
            "the desired object changed"
        );
        let drifted = with_hash(
            json!({"metadata": {"name": "zk"}, "spec": {"replicas": 5}}),
            "h2",
        );
        assert!(!up_to_date(&desired, &drifted), "someone scaled it by hand");
        let shortened = with_hash(
            json!({"metadata": {"name": "zk"}, "spec": {"ports": [1]}}),
            "h2",
        );
        let two_ports = with_hash(
            json!({"metadata": {"name": "zk"}, "spec": {"ports": [1, 2]}}),
            "h2",
        );
        assert!(
            !up_to_date(&two_ports, &shortened),
            "a list lost an element"
        );
    }

    #[test]
    fn quantities_in_their_canonical_form_are_the_same() {
        let desired = json!({"resources": {"requests": {"cpu": "0.5", "memory": "1.5Gi"}}});
        let current = json!({"resources": {"requests": {"cpu": "500m", "memory": "1536Mi"}}});
        assert!(holds(&current, &desired));
        let changed = json!({"resources": {"requests": {"cpu": "600m", "memory": "1536Mi"}}});
        assert!(!holds(&changed, &desired));
        // Elsewhere, strings are strings.
        assert!(!holds(
            &json!({"labels": {"size": "500m"}}),
            &json!({"labels": {"size": "0.5"}})
        ));
    }

    #[test]
    fn an_object_without_the_annotation_is_always_applied() {
        let bare = json!({"metadata": {"name": "zk"}});
        assert!(!up_to_date(&bare, &bare));
    }
}
