//! The committed config a member carries in every notification (spec §3.5):
//! `server.N=…` lines, optional `group.`/`weight.` lines, and `version=<hex>`.
//! Parsed with zk-ensemble's `zoo.cfg` grammar; the raw bytes are kept so a
//! watcher can echo them exactly (§5.3).

use std::collections::BTreeSet;

use zk_ensemble::{Role, ZooCfg};

/// A member's committed quorum config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// The config's version (0 for a static config).
    pub version: u64,
    pub voters: BTreeSet<i64>,
    pub observers: BTreeSet<i64>,
    /// Hierarchical quorums (`group.`/`weight.`) are recognised, not yet
    /// supported for counting; majority rules are applied.
    pub hierarchical: bool,
    pub servers: ZooCfg,
    /// Exactly the bytes received.
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("config text is not UTF-8")]
    NotUtf8,
    #[error("config text: {0}")]
    Parse(String),
    #[error("config version {0:?} is not hexadecimal")]
    BadVersion(String),
}

impl QuorumConfig {
    pub fn parse(raw: &[u8]) -> Result<QuorumConfig, ConfigError> {
        let text = std::str::from_utf8(raw).map_err(|_| ConfigError::NotUtf8)?;
        let cfg = ZooCfg::parse(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let version = match cfg.get("version") {
            None => 0,
            Some(v) => {
                u64::from_str_radix(v, 16).map_err(|_| ConfigError::BadVersion(v.to_owned()))?
            }
        };
        let ids = |role| {
            cfg.servers
                .iter()
                .filter(|s| s.role == role)
                .map(|s| s.id)
                .collect()
        };
        Ok(QuorumConfig {
            version,
            voters: ids(Role::Voter),
            observers: ids(Role::Observer),
            hierarchical: cfg
                .properties
                .keys()
                .any(|k| k.starts_with("group.") || k.starts_with("weight.")),
            servers: cfg,
            raw: raw.to_vec(),
        })
    }

    /// Whether `sid` appears anywhere in this config (voter or observer).
    pub fn lists(&self, sid: i64) -> bool {
        self.voters.contains(&sid) || self.observers.contains(&sid)
    }

    /// The version as ZooKeeper writes it (lower-case hex, no `0x`).
    pub fn version_hex(&self) -> String {
        format!("{:x}", self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_captured_config() {
        let raw = b"server.1=127.0.0.1:2881:3881:participant\nserver.2=127.0.0.1:2882:3882:participant\nserver.3=127.0.0.1:2883:3883:participant\nserver.128=127.0.0.1:2884:3884:observer;2181\nversion=100000000";
        let cfg = QuorumConfig::parse(raw).unwrap();
        assert_eq!(cfg.version, 0x1_0000_0000);
        assert_eq!(cfg.voters, BTreeSet::from([1, 2, 3]));
        assert_eq!(cfg.observers, BTreeSet::from([128]));
        assert!(cfg.lists(128) && !cfg.lists(4));
        assert_eq!(cfg.version_hex(), "100000000");
        assert!(!cfg.hierarchical);
    }

    #[test]
    fn bad_versions_and_bytes_are_errors() {
        assert_eq!(
            QuorumConfig::parse(b"version=xyz"),
            Err(ConfigError::BadVersion("xyz".into()))
        );
        assert_eq!(
            QuorumConfig::parse(&[0xff, 0xfe]),
            Err(ConfigError::NotUtf8)
        );
        assert!(QuorumConfig::parse(b"server.1=a:1").is_err());
    }
}
