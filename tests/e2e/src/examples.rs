//! The `examples/` clusters the suite applies, and the fields it must change
//! to run them on the cluster under test.
//!
//! The files are compiled in, so the suite always tests the examples of the
//! same commit, and a test (`every_example_is_in_the_suite`) fails when an
//! example is added without being listed here.

use zk_operator::cluster::{parse_cluster, quantity_value};
use zk_operator::crd::ZookeeperCluster;

use crate::{Error, Result};

/// One file of `examples/`.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// Its name under `examples/`.
    pub file: &'static str,
    pub text: &'static str,
}

/// The smallest useful ensemble: three voters with every default.
pub const MINIMAL: Example = Example {
    file: "minimal.yaml",
    text: include_str!("../../../examples/minimal.yaml"),
};

/// Every field set: five voters, two observers, settings, pod placement.
pub const FULL: Example = Example {
    file: "full.yaml",
    text: include_str!("../../../examples/full.yaml"),
};

/// Quorum and client TLS: the API server admits it; the operator refuses
/// it on Kubernetes (`InvalidSpec` on `spec.tls`) until it mounts
/// certificates, which the suite checks on a running cluster.
pub const TLS: Example = Example {
    file: "tls.yaml",
    text: include_str!("../../../examples/tls.yaml"),
};

/// Every example, in the order the suite runs them.
pub const ALL: [Example; 3] = [MINIMAL, FULL, TLS];

impl Example {
    /// The cluster as written in the file.
    pub fn cluster(&self) -> Result<ZookeeperCluster> {
        parse_cluster(self.text, None)
            .map_err(|e| Error::Check(format!("examples/{}: {e}", self.file)))
    }
}

/// What a run on a given cluster supplies that an example cannot know.
#[derive(Debug, Clone, Default)]
pub struct ClusterSetting {
    /// The namespace for an example that names none.
    pub namespace: String,
    /// The sidecar image built for this run.
    pub sidecar_image: Option<String>,
    /// The ZooKeeper image, on a cluster that cannot pull the official one.
    pub zookeeper_image: Option<String>,
    /// The most CPU a container may request, on a small cluster.
    pub cpu_request: Option<String>,
}

/// The example as the suite applies it. Only what the cluster under test
/// cannot provide changes; every other field is applied as written:
///
/// - `storage.storageClassName` is dropped: the test clusters have one
///   class, their default (kind's `standard`, this machine's `local`). The
///   size stays (neither provisioner enforces it).
/// - `sidecar.image`, when the example names one, becomes the image built
///   for this run: the published tag is not the code under test.
/// - `image` becomes [`ClusterSetting::zookeeper_image`] when there is one
///   (this machine's cluster pulls nothing).
/// - A CPU request above [`ClusterSetting::cpu_request`] is lowered to it
///   (the full example's seven members ask 500m each; this machine's node
///   has two cores). Memory and limits stay.
/// - A cluster without a namespace goes to [`ClusterSetting::namespace`].
pub fn fit_for_cluster(
    mut cluster: ZookeeperCluster,
    setting: &ClusterSetting,
) -> ZookeeperCluster {
    cluster.spec.storage.storage_class_name = None;
    if let (Some(_), Some(image)) = (&cluster.spec.sidecar.image, &setting.sidecar_image) {
        cluster.spec.sidecar.image = Some(image.clone());
    }
    if let Some(image) = &setting.zookeeper_image {
        cluster.spec.image = Some(image.clone());
    }
    if let Some(cap) = &setting.cpu_request {
        for resources in [
            &mut cluster.spec.resources,
            &mut cluster.spec.sidecar.resources,
        ]
        .into_iter()
        .flatten()
        {
            if let Some(cpu) = resources.requests.as_mut().and_then(|r| r.get_mut("cpu")) {
                let above = match (quantity_value(&cpu.0), quantity_value(cap)) {
                    (Some(written), Some(cap)) => written > cap,
                    _ => false,
                };
                if above {
                    cpu.0.clone_from(cap);
                }
            }
        }
    }
    if cluster.metadata.namespace.is_none() {
        cluster.metadata.namespace = Some(setting.namespace.clone());
    }
    cluster
}

#[cfg(test)]
mod tests {
    use super::*;
    use zk_operator::cluster::{Defaults, validate_with};
    use zk_operator::{build, render};

    fn kind() -> ClusterSetting {
        ClusterSetting {
            namespace: "zk-e2e".to_owned(),
            sidecar_image: Some("ghcr.io/zookube/zk-sidecar:e2e-1".to_owned()),
            ..Default::default()
        }
    }

    fn shared() -> ClusterSetting {
        ClusterSetting {
            zookeeper_image: Some("zookube.local/zookeeper:3.8.0-debian12".to_owned()),
            cpu_request: Some("50m".to_owned()),
            ..kind()
        }
    }

    #[test]
    fn every_example_is_in_the_suite() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("examples/")
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".yaml"))
            .collect();
        files.sort();
        let mut listed: Vec<&str> = ALL.iter().map(|e| e.file).collect();
        listed.sort();
        assert_eq!(files, listed, "list every example in examples::ALL");
    }

    #[test]
    fn the_full_example_keeps_every_field_but_class_and_sidecar_image() {
        let written = FULL.cluster().unwrap();
        let fitted = fit_for_cluster(written.clone(), &kind());
        assert_eq!(fitted.spec.storage.storage_class_name, None);
        assert_eq!(
            fitted.spec.sidecar.image.as_deref(),
            Some("ghcr.io/zookube/zk-sidecar:e2e-1")
        );
        assert_eq!(fitted.metadata.namespace, written.metadata.namespace);

        let mut expected = written.spec.clone();
        expected.storage.storage_class_name = None;
        expected.sidecar.image = fitted.spec.sidecar.image.clone();
        assert_eq!(fitted.spec, expected);
    }

    #[test]
    fn the_minimal_example_gets_a_namespace_and_keeps_the_operators_sidecar() {
        let fitted = fit_for_cluster(MINIMAL.cluster().unwrap(), &kind());
        assert_eq!(fitted.metadata.namespace.as_deref(), Some("zk-e2e"));
        assert_eq!(fitted.spec.sidecar.image, None);
        assert_eq!(fitted.spec, MINIMAL.cluster().unwrap().spec);
    }

    #[test]
    fn on_a_small_cluster_only_the_image_and_cpu_requests_change() {
        let written = FULL.cluster().unwrap();
        let fitted = fit_for_cluster(written.clone(), &shared());
        assert_eq!(
            fitted.spec.image.as_deref(),
            Some("zookube.local/zookeeper:3.8.0-debian12")
        );
        let cpu = |r: &Option<k8s_openapi::api::core::v1::ResourceRequirements>| {
            r.as_ref().unwrap().requests.as_ref().unwrap()["cpu"]
                .0
                .clone()
        };
        // 500m is lowered to the cap; the sidecar's 20m is below it and stays.
        assert_eq!(cpu(&fitted.spec.resources), "50m");
        assert_eq!(cpu(&fitted.spec.sidecar.resources), "20m");
        let memory = |r: &Option<k8s_openapi::api::core::v1::ResourceRequirements>| {
            r.as_ref().unwrap().requests.as_ref().unwrap()["memory"]
                .0
                .clone()
        };
        assert_eq!(
            memory(&fitted.spec.resources),
            memory(&written.spec.resources)
        );

        let mut expected = fit_for_cluster(written, &kind()).spec;
        expected.image = fitted.spec.image.clone();
        expected.resources = fitted.spec.resources.clone();
        assert_eq!(fitted.spec, expected);
        // Defaults (no resources written) are the operator's and stay so.
        let minimal = fit_for_cluster(MINIMAL.cluster().unwrap(), &shared());
        assert_eq!(minimal.spec.resources, None);
    }

    /// The dry check: what the suite applies is what `zk-operator render`
    /// accepts (the same validation and builders), so a broken example
    /// fails here, in seconds, rather than on a cluster.
    #[test]
    fn every_example_the_suite_applies_renders() {
        let defaults = Defaults {
            sidecar_image: "ghcr.io/zookube/zk-sidecar:e2e-1".to_owned(),
        };
        for (example, setting) in ALL
            .into_iter()
            .flat_map(|example| [(example, kind()), (example, shared())])
        {
            let fitted = fit_for_cluster(example.cluster().unwrap(), &setting);
            let validated = validate_with(&fitted, &defaults)
                .unwrap_or_else(|invalid| panic!("examples/{}: {invalid:?}", example.file));
            let yaml = render::render_yaml(&build::children(&validated)).unwrap();
            assert!(
                yaml.contains("kind: StatefulSet"),
                "examples/{}",
                example.file
            );
        }
    }
}
