//! zk-operator: turns a `ZookeeperCluster` into a working ensemble.

#![warn(clippy::unwrap_used)]
