//! Which pod events are worth a reconcile. A reconcile reads a pod only
//! through [`PodView`] (readiness, sidecar address, role label, hashes,
//! termination), so a pod event that leaves that view as it was — the
//! kubelet's status bookkeeping, a restart counter, a condition other than
//! `Ready`, our own label patch seen again — changes nothing a reconcile
//! would decide, and is dropped here. Deletions and relists always pass.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::status::PodView;

/// The view of every pod last passed on, by UID.
#[derive(Debug, Default)]
pub struct PodTriggers {
    seen: HashMap<String, PodView>,
}

impl PodTriggers {
    /// The pod to reconcile for after `event`, if any.
    pub fn admit(&mut self, event: Event<Pod>) -> Option<Pod> {
        match event {
            Event::Apply(pod) | Event::InitApply(pod) => {
                let uid = pod.uid().unwrap_or_default();
                let view = PodView::of(&pod);
                let changed = self.seen.get(&uid) != Some(&view);
                self.seen.insert(uid, view);
                changed.then_some(pod)
            }
            Event::Delete(pod) => {
                self.seen.remove(&pod.uid().unwrap_or_default());
                Some(pod)
            }
            // A relist: what follows is every pod again, and pods deleted
            // meanwhile are not announced, so start over.
            Event::Init => {
                self.seen.clear();
                None
            }
            Event::InitDone => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodStatus};
    use kube::api::ObjectMeta;

    use super::*;

    fn pod(uid: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("zk-0".into()),
                uid: Some(uid.into()),
                resource_version: Some("1".into()),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some("10.0.0.7".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn with(mut pod: Pod, change: impl FnOnce(&mut Pod)) -> Pod {
        change(&mut pod);
        pod
    }

    #[test]
    fn only_events_that_change_what_a_reconcile_reads_pass() {
        let restarted = with(pod("a", true), |p| {
            p.metadata.resource_version = Some("2".into());
            p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
                name: "zookeeper".into(),
                restart_count: 1,
                ..Default::default()
            }]);
        });
        let other_condition = with(pod("a", true), |p| {
            let conditions = p.status.as_mut().unwrap().conditions.as_mut().unwrap();
            conditions.push(PodCondition {
                type_: "PodScheduled".into(),
                status: "True".into(),
                ..Default::default()
            });
        });
        let labelled = with(pod("a", true), |p| {
            p.metadata.labels = Some([("zookube.io/role".into(), "leader".into())].into());
        });
        let terminating = with(labelled.clone(), |p| {
            p.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ));
        });
        let cases: Vec<(&str, Event<Pod>, bool)> = vec![
            ("a new pod", Event::Apply(pod("a", false)), true),
            ("the same again", Event::Apply(pod("a", false)), false),
            ("it becomes ready", Event::Apply(pod("a", true)), true),
            ("a container restart count", Event::Apply(restarted), false),
            (
                "a condition other than Ready",
                Event::Apply(other_condition),
                false,
            ),
            ("its role label", Event::Apply(labelled.clone()), true),
            ("our own label seen again", Event::Apply(labelled), false),
            ("terminating", Event::Apply(terminating.clone()), true),
            ("deleted", Event::Delete(terminating), true),
            (
                "a pod of the same name, new UID",
                Event::Apply(pod("b", true)),
                true,
            ),
            ("a relist starts", Event::Init, false),
            (
                "every pod listed again",
                Event::InitApply(pod("b", true)),
                true,
            ),
            ("the relist ends", Event::InitDone, false),
        ];
        let mut triggers = PodTriggers::default();
        for (case, event, want) in cases {
            assert_eq!(triggers.admit(event).is_some(), want, "{case}");
        }
    }
}
