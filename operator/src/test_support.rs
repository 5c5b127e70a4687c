//! Builders that make tests read like the behaviour they pin:
//! `Cluster::test().replicas(5).observers(1).build()`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::cluster::ValidatedCluster;
use crate::crd::{ZookeeperCluster, ZookeeperClusterSpec};

/// A `ZookeeperCluster` under construction; starts as the minimal example
/// (`zk` in `default`, 3 voters) with a uid and generation 1, as the API
/// server would return it.
#[derive(Debug, Clone)]
pub struct Cluster(ZookeeperCluster);

impl Cluster {
    pub fn test() -> Cluster {
        let mut cluster = ZookeeperCluster::new("zk", ZookeeperClusterSpec::default());
        cluster.metadata = ObjectMeta {
            name: Some("zk".to_owned()),
            namespace: Some("default".to_owned()),
            uid: Some("5a3f0c1e-0000-4000-8000-000000000001".to_owned()),
            generation: Some(1),
            ..Default::default()
        };
        Cluster(cluster)
    }

    pub fn name(mut self, name: &str) -> Cluster {
        self.0.metadata.name = Some(name.to_owned());
        self
    }

    pub fn namespace(mut self, namespace: &str) -> Cluster {
        self.0.metadata.namespace = Some(namespace.to_owned());
        self
    }

    pub fn replicas(mut self, replicas: i32) -> Cluster {
        self.0.spec.replicas = replicas;
        self
    }

    pub fn observers(mut self, observers: i32) -> Cluster {
        self.0.spec.observers = observers;
        self
    }

    pub fn generation(mut self, generation: i64) -> Cluster {
        self.0.metadata.generation = Some(generation);
        self
    }

    /// Without a uid, as in a file given to `zk-operator render`.
    pub fn without_uid(mut self) -> Cluster {
        self.0.metadata.uid = None;
        self
    }

    /// Changes the spec in place.
    pub fn with(mut self, change: impl FnOnce(&mut ZookeeperClusterSpec)) -> Cluster {
        change(&mut self.0.spec);
        self
    }

    pub fn build(self) -> ZookeeperCluster {
        self.0
    }

    /// The test cluster with these voters and observers, validated.
    pub fn validated(voters: i32, observers: i32) -> ValidatedCluster {
        crate::cluster::validate(
            &Cluster::test()
                .replicas(voters)
                .observers(observers)
                .build(),
        )
        .expect("a valid test cluster")
    }
}
