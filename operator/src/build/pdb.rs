//! The PodDisruptionBudget that keeps voluntary disruptions (node drains,
//! cluster upgrades) from taking the voters below quorum.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use zk_ensemble::{Role, quorum};

use super::{labels, metadata, pdb_name};
use crate::cluster::ValidatedCluster;

/// At least a quorum of voters stays available. A single voter therefore
/// cannot be evicted at all: draining its node waits until the cluster is
/// scaled up or the budget is removed, rather than taking the ensemble down.
/// Members that are not ready may always be evicted: they hold up no quorum.
pub fn pod_disruption_budget(cluster: &ValidatedCluster) -> PodDisruptionBudget {
    // The voters of the config the members run, which differs from the
    // spec's while a membership change is under way.
    let min_available = quorum::quorum_size(cluster.members.voters());
    PodDisruptionBudget {
        metadata: metadata(
            cluster,
            pdb_name(&cluster.name),
            labels::member(&cluster.name, Role::Voter),
        ),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(
                i32::try_from(min_available).unwrap_or(i32::MAX),
            )),
            selector: Some(LabelSelector {
                match_labels: Some(labels::role_selector(&cluster.name, Role::Voter)),
                ..Default::default()
            }),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    }
}
