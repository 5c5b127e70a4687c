//! The `examples/` clusters the suite applies, and the fields it must change
//! to run them on kind.
//!
//! The files are compiled in, so the suite always tests the examples of the
//! same commit, and a test (`every_example_is_in_the_suite`) fails when an
//! example is added without being listed here.

use zk_operator::cluster::parse_cluster;
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

/// Every example, in the order the suite runs them.
pub const ALL: [Example; 2] = [MINIMAL, FULL];

impl Example {
    /// The cluster as written in the file.
    pub fn cluster(&self) -> Result<ZookeeperCluster> {
        parse_cluster(self.text, None)
            .map_err(|e| Error::Check(format!("examples/{}: {e}", self.file)))
    }
}

/// What a kind run supplies that an example cannot know.
#[derive(Debug, Clone, Default)]
pub struct KindSetting {
    /// The namespace for an example that names none.
    pub namespace: String,
    /// The sidecar image built for this run.
    pub sidecar_image: Option<String>,
}

/// The example as the suite applies it. Only what kind cannot provide
/// changes; every other field is applied as written:
///
/// - `storage.storageClassName` is dropped: kind has one class, `standard`
///   (its default), and no other class exists there. The size stays (kind's
///   local-path provisioner does not enforce it).
/// - `sidecar.image`, when the example names one, becomes the image built
///   for this run: the published tag is not the code under test.
/// - A cluster without a namespace goes to [`KindSetting::namespace`].
pub fn fit_for_kind(mut cluster: ZookeeperCluster, kind: &KindSetting) -> ZookeeperCluster {
    cluster.spec.storage.storage_class_name = None;
    if let (Some(_), Some(image)) = (&cluster.spec.sidecar.image, &kind.sidecar_image) {
        cluster.spec.sidecar.image = Some(image.clone());
    }
    if cluster.metadata.namespace.is_none() {
        cluster.metadata.namespace = Some(kind.namespace.clone());
    }
    cluster
}

#[cfg(test)]
mod tests {
    use super::*;
    use zk_operator::cluster::{Defaults, validate_with};
    use zk_operator::{build, render};

    fn kind() -> KindSetting {
        KindSetting {
            namespace: "zk-e2e".to_owned(),
            sidecar_image: Some("ghcr.io/zookube/zk-sidecar:e2e-1".to_owned()),
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
        let fitted = fit_for_kind(written.clone(), &kind());
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
        let fitted = fit_for_kind(MINIMAL.cluster().unwrap(), &kind());
        assert_eq!(fitted.metadata.namespace.as_deref(), Some("zk-e2e"));
        assert_eq!(fitted.spec.sidecar.image, None);
        assert_eq!(fitted.spec, MINIMAL.cluster().unwrap().spec);
    }

    /// The dry check: what the suite applies is what `zk-operator render`
    /// accepts (the same validation and builders), so a broken example
    /// fails here, in seconds, rather than on kind.
    #[test]
    fn every_example_the_suite_applies_renders() {
        let defaults = Defaults {
            sidecar_image: "ghcr.io/zookube/zk-sidecar:e2e-1".to_owned(),
        };
        for example in ALL {
            let fitted = fit_for_kind(example.cluster().unwrap(), &kind());
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
