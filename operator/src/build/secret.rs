//! The Secret `<name>-super`: zookube's ZooKeeper super user. The operator
//! creates it once with a random password and never rewrites it; the
//! servers get only the digest (through an environment variable expanded
//! into `-Dzookeeper.DigestAuthenticationProvider.superDigest`), and the
//! operator authenticates with the password to run `reconfig`. It is not
//! part of [`super::Children`]: `zk-operator render` has no password to
//! print.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::{labels, metadata};
use crate::cluster::ValidatedCluster;
use crate::reconfig::super_digest;

/// The key of the clear-text password (read by the operator only).
pub const SUPER_PASSWORD_KEY: &str = "password";
/// The key of the digest (`super:<base64 SHA-1>`) the servers accept.
pub const SUPER_DIGEST_KEY: &str = "digest";
/// The ZooKeeper container's variable holding the digest.
pub const SUPER_DIGEST_ENV: &str = "ZK_SUPER_DIGEST";

pub fn super_secret_name(cluster: &str) -> String {
    format!("{cluster}-super")
}

/// The Secret for `password`.
pub fn super_secret(cluster: &ValidatedCluster, password: &str) -> Secret {
    Secret {
        metadata: metadata(
            cluster,
            super_secret_name(&cluster.name),
            labels::common(&cluster.name),
        ),
        string_data: Some(BTreeMap::from([
            (SUPER_PASSWORD_KEY.to_owned(), password.to_owned()),
            (SUPER_DIGEST_KEY.to_owned(), super_digest(password)),
        ])),
        type_: Some("Opaque".to_owned()),
        ..Default::default()
    }
}

/// The password a Secret holds, if it holds one.
pub fn super_password(secret: &Secret) -> Option<String> {
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(SUPER_PASSWORD_KEY))
        .and_then(|b| String::from_utf8(b.0.clone()).ok());
    let from_string_data = || {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(SUPER_PASSWORD_KEY))
            .cloned()
    };
    from_data
        .or_else(from_string_data)
        .filter(|p| !p.is_empty())
}
