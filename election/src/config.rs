//! The committed config a member carries in every notification (spec §3.5):
//! `server.N=…` lines, optional `group.`/`weight.` lines, and `version=<hex>`.
//! Parsed with zk-ensemble's `zoo.cfg` grammar; the raw bytes are kept so a
//! watcher can echo them exactly (§5.3). A voting Rust peer renders its own
//! from its `zoo.cfg` ([`QuorumConfig::from_zoo_cfg`]) in the same form.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use zk_ensemble::{Role, ZooCfg};

use crate::quorum::QuorumVerifier;

/// A member's committed quorum config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// The config's version (0 for a static config).
    pub version: u64,
    pub voters: BTreeSet<i64>,
    pub observers: BTreeSet<i64>,
    /// Whether `group.`/`weight.` lines make the quorums hierarchical.
    pub hierarchical: bool,
    /// The quorum rule these lines define.
    pub quorum: QuorumVerifier,
    pub servers: ZooCfg,
    /// Exactly the bytes received (or rendered).
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
    #[error("hierarchical quorum: {0}")]
    Hierarchical(String),
    #[error("the config lists no participant (voter)")]
    NoVoters,
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
        let voters: BTreeSet<i64> = ids(Role::Voter);
        let hierarchical = cfg
            .properties
            .keys()
            .any(|k| k.starts_with("group.") || k.starts_with("weight."));
        let quorum = if hierarchical {
            hierarchical_verifier(&cfg, &voters)?
        } else {
            QuorumVerifier::majority(voters.iter().copied())
        };
        Ok(QuorumConfig {
            version,
            observers: ids(Role::Observer),
            voters,
            hierarchical,
            quorum,
            servers: cfg,
            raw: raw.to_vec(),
        })
    }

    /// The config a member with this `zoo.cfg` (server lines merged from its
    /// dynamic file) and config `version` sends, in ZooKeeper's own form:
    /// server lines by sid, then `group.`/`weight.` lines, then `version=`,
    /// joined by `\n` with no trailing newline. A config without a voter is
    /// refused: sent to a member it would kill its receiver thread (D2).
    pub fn from_zoo_cfg(cfg: &ZooCfg, version: u64) -> Result<QuorumConfig, ConfigError> {
        let mut lines: Vec<String> = Vec::new();
        let mut servers: Vec<_> = cfg.servers.iter().collect();
        servers.sort_by_key(|s| s.id);
        lines.extend(servers.iter().map(|s| s.to_string()));
        lines.extend(
            cfg.properties
                .iter()
                .filter(|(k, _)| k.starts_with("group.") || k.starts_with("weight."))
                .map(|(k, v)| format!("{k}={v}")),
        );
        lines.push(format!("version={version:x}"));
        let config = QuorumConfig::parse(lines.join("\n").as_bytes())?;
        if config.voters.is_empty() {
            return Err(ConfigError::NoVoters);
        }
        Ok(config)
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

/// How members expect to be spoken to on their election ports (spec §2.1,
/// D14), as their `zoo.cfg` says. Both `None`: plain TCP, no exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElectionSecurity {
    /// TLS (`sslQuorum=true`) with the PEM stores the config names; the
    /// caller presents the key store's certificate.
    pub tls: Option<QuorumStores>,
    /// Quorum SASL that members require of every caller
    /// (`quorum.auth.serverRequireSasl=true`): a DIGEST-MD5 exchange right
    /// after the preamble. With SASL enabled but not required, a caller
    /// that does not start one is let through, so none is run.
    pub sasl: Option<QuorumSasl>,
}

/// What a caller needs for quorum SASL: the JAAS section whose
/// credentials it logs in with (`quorum.auth.learner.saslLoginContext`,
/// default `QuorumLearner`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumSasl {
    pub login_context: String,
}

/// A member's quorum PEM stores (`ssl.quorum.keyStore.location`,
/// `ssl.quorum.trustStore.location`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStores {
    /// The PKCS#8 private key followed by the certificate chain.
    pub key_store: PathBuf,
    /// The CA certificates a member's certificate must chain to.
    pub trust_store: PathBuf,
}

/// The election-port security of `cfg`, or why a watcher cannot take part:
/// stores that are not PEM, an encrypted key, no host name verification.
/// Plaintext against a TLS port would only fill every member's log with
/// handshake failures, so callers refuse to start; the message names the
/// key and the fix.
pub fn election_security(cfg: &ZooCfg) -> Result<ElectionSecurity, String> {
    let on = |key: &str| {
        cfg.get(key)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    };
    let sasl =
        (on("quorum.auth.enableSasl") && on("quorum.auth.serverRequireSasl")).then(|| QuorumSasl {
            login_context: cfg
                .get("quorum.auth.learner.saslLoginContext")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .unwrap_or(crate::sasl::LEARNER_CONTEXT)
                .to_owned(),
        });
    if !on("sslQuorum") {
        return Ok(ElectionSecurity { tls: None, sasl });
    }
    let store = |what: &str| -> Result<PathBuf, String> {
        let key = format!("ssl.quorum.{what}.location");
        let location = cfg
            .get(&key)
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| {
                format!("the config sets sslQuorum=true but no `{key}`; name the PEM file")
            })?;
        let type_key = format!("ssl.quorum.{what}.type");
        // ZooKeeper infers a missing type from the file's extension.
        let kind = cfg.get(&type_key).map(str::trim).map_or_else(
            || {
                Path::new(location)
                    .extension()
                    .map(|e| e.to_string_lossy().to_ascii_uppercase())
                    .unwrap_or_default()
            },
            str::to_ascii_uppercase,
        );
        if kind != "PEM" {
            return Err(format!(
                "`{type_key}` is {kind:?} for {location}: zk-sidecar reads PEM stores only; set `{type_key}=PEM` with a PEM file (spec.tls renders them)"
            ));
        }
        let password = format!("ssl.quorum.{what}.password");
        if what == "keyStore" && cfg.get(&password).is_some_and(|p| !p.trim().is_empty()) {
            return Err(format!(
                "`{password}` is set: zk-sidecar cannot read an encrypted private key; use an unencrypted PKCS#8 key in a file only the pod can read"
            ));
        }
        Ok(PathBuf::from(location))
    };
    let key_store = store("keyStore")?;
    let trust_store = store("trustStore")?;
    if cfg
        .get("ssl.quorum.hostnameVerification")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
    {
        return Err("the config sets ssl.quorum.hostnameVerification=false: zk-sidecar always checks a member's certificate against the host of its server line; give the certificates those names and remove the key".to_owned());
    }
    Ok(ElectionSecurity {
        tls: Some(QuorumStores {
            key_store,
            trust_store,
        }),
        sasl,
    })
}

/// `QuorumHierarchical`'s reading of `group.<gid>=a:b:c` and
/// `weight.<sid>=w`: groups are disjoint, every voter is in one, and a voter
/// without a weight line weighs 1.
fn hierarchical_verifier(
    cfg: &ZooCfg,
    voters: &BTreeSet<i64>,
) -> Result<QuorumVerifier, ConfigError> {
    let bad = |what: String| ConfigError::Hierarchical(what);
    let number = |key: &str, text: &str| {
        text.trim()
            .parse::<i64>()
            .map_err(|_| bad(format!("`{key}`: {text:?} is not a number")))
    };
    let mut groups: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    let mut group_of: BTreeMap<i64, i64> = BTreeMap::new();
    let mut weights: BTreeMap<i64, u64> = BTreeMap::new();
    for (key, value) in &cfg.properties {
        if let Some(gid) = key.strip_prefix("group.") {
            let gid = number(key, gid)?;
            for sid in value.split(':') {
                let sid = number(key, sid)?;
                if group_of.insert(sid, gid).is_some() {
                    return Err(bad(format!("server {sid} is in more than one group")));
                }
                groups.entry(gid).or_default().insert(sid);
            }
        } else if let Some(sid) = key.strip_prefix("weight.") {
            let weight = number(key, value)?;
            let weight = u64::try_from(weight)
                .map_err(|_| bad(format!("`{key}`: weight {weight} is negative")))?;
            weights.insert(number(key, sid)?, weight);
        }
    }
    let mut voter_weights = BTreeMap::new();
    for voter in voters {
        if !group_of.contains_key(voter) {
            return Err(bad(format!("server {voter} is in no group")));
        }
        voter_weights.insert(*voter, weights.get(voter).copied().unwrap_or(1));
    }
    Ok(QuorumVerifier::Hierarchical {
        groups,
        weights: voter_weights,
    })
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
        assert_eq!(cfg.quorum, QuorumVerifier::majority([1, 2, 3]));
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

    #[test]
    fn hierarchical_configs_give_weights_and_groups() {
        let raw = b"server.1=a:1:2:participant\nserver.2=b:1:2:participant\nserver.3=c:1:2:participant\ngroup.1=1:2:3\nweight.1=2\nversion=0";
        let cfg = QuorumConfig::parse(raw).unwrap();
        assert!(cfg.hierarchical);
        assert_eq!((cfg.quorum.weight(1), cfg.quorum.weight(2)), (2, 1));
        assert!(cfg.quorum.contains_quorum(&BTreeSet::from([1, 2])));
        assert!(!cfg.quorum.contains_quorum(&BTreeSet::from([2, 3])));

        let ungrouped =
            b"server.1=a:1:2:participant\nserver.2=b:1:2:participant\ngroup.1=1\nversion=0";
        assert_eq!(
            QuorumConfig::parse(ungrouped),
            Err(ConfigError::Hierarchical("server 2 is in no group".into()))
        );
        let twice = b"server.1=a:1:2:participant\ngroup.1=1\ngroup.2=1\nversion=0";
        assert!(matches!(
            QuorumConfig::parse(twice),
            Err(ConfigError::Hierarchical(_))
        ));
    }

    #[test]
    fn election_security_reads_pem_stores_and_names_what_it_cannot_speak() {
        let plain = |text: &str| election_security(&ZooCfg::parse(text).unwrap());
        let none = ElectionSecurity::default();
        assert_eq!(plain("sslQuorum=false"), Ok(none.clone()));
        assert_eq!(plain("portUnification=true"), Ok(none.clone()));
        assert_eq!(
            plain("quorum.auth.enableSasl=true"),
            Ok(none),
            "not required"
        );
        let required = "quorum.auth.enableSasl=true\nquorum.auth.serverRequireSasl=true\n";
        assert_eq!(
            plain(required).map(|s| s.sasl),
            Ok(Some(QuorumSasl {
                login_context: "QuorumLearner".into()
            }))
        );
        let named = format!("{required}quorum.auth.learner.saslLoginContext=Mine\n");
        assert_eq!(
            plain(&named).map(|s| s.sasl.map(|s| s.login_context)),
            Ok(Some("Mine".into()))
        );
        let stores = "sslQuorum=true\nssl.quorum.keyStore.location=/t/k.pem\nssl.quorum.trustStore.location=/t/ca.pem\n";
        assert_eq!(
            plain(stores),
            Ok(ElectionSecurity {
                tls: Some(QuorumStores {
                    key_store: "/t/k.pem".into(),
                    trust_store: "/t/ca.pem".into(),
                }),
                sasl: None,
            })
        );
        let refused = [
            ("sslQuorum=true\n", "ssl.quorum.keyStore.location"),
            (
                "sslQuorum=true\nssl.quorum.keyStore.location=/t/k.jks\nssl.quorum.trustStore.location=/t/ca.pem\n",
                "PEM stores only",
            ),
            (
                &format!("{stores}ssl.quorum.trustStore.type=PKCS12\n"),
                "ssl.quorum.trustStore.type=PEM",
            ),
            (
                &format!("{stores}ssl.quorum.keyStore.password=s3cret\n"),
                "encrypted private key",
            ),
            (
                &format!("{stores}ssl.quorum.hostnameVerification=false\n"),
                "hostnameVerification",
            ),
        ];
        for (text, named) in refused {
            let why = plain(text).expect_err(text);
            assert!(why.contains(named), "{text}: {why}");
        }
    }

    #[test]
    fn a_rendered_config_is_what_zookeeper_sends() {
        let zoo_cfg = ZooCfg::parse(
            "tickTime=2000\nserver.3=10.0.0.3:2888:3888\nserver.1=10.0.0.1:2888:3888:participant\nserver.2=10.0.0.2:2888:3888:participant\n",
        )
        .unwrap();
        let cfg = QuorumConfig::from_zoo_cfg(&zoo_cfg, 0x1_0000_0000).unwrap();
        // The config of spec vector N5, byte for byte.
        assert_eq!(
            String::from_utf8(cfg.raw.clone()).unwrap(),
            "server.1=10.0.0.1:2888:3888:participant\nserver.2=10.0.0.2:2888:3888:participant\nserver.3=10.0.0.3:2888:3888:participant\nversion=100000000"
        );
        assert_eq!(cfg.voters, BTreeSet::from([1, 2, 3]));

        let observers_only = ZooCfg::parse("server.128=10.0.0.9:2888:3888:observer\n").unwrap();
        assert_eq!(
            QuorumConfig::from_zoo_cfg(&observers_only, 0),
            Err(ConfigError::NoVoters)
        );
    }
}
