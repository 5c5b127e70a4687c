//! TLS: the `zoo.cfg` keys that turn it on for the quorum and for
//! clients, the names a member's certificate must cover, and a cluster's
//! own certificate authority.
//!
//! Client TLS takes Netty's connection factory and a second client port
//! (`secureClientPort`, 2281): reusing the plain port's number fails with
//! "Address already in use" in ZooKeeper 3.8 (ZOOKEEPER-4276). The plain
//! port stays open, because four-letter words (the sidecar's probes) are
//! answered there only. Both use the member's one pair of stores.
//!
//! With `sslQuorum=true` ZooKeeper speaks TLS on the quorum and election
//! ports and requires a client certificate from every caller. A member
//! checks the *caller's* certificate against the caller's source address
//! (an IP SAN, or the name its reverse lookup gives), and a caller checks
//! the member's certificate against the host of the member's `server.N`
//! line. So a member's certificate names its own host and every address its
//! connections leave from; [`member_names`] decides which.
//!
//! The stores are PEM files (`ssl.quorum.keyStore.type=PEM`): the key
//! store holds the PKCS#8 private key followed by the certificate chain, the
//! trust store the CA certificates. ZooKeeper 3.8 refuses a SEC1 (`EC
//! PRIVATE KEY`) key without saying so: the member starts and never serves.
//!
//! [`Authority`] is the operator's own CA, one per cluster, built with
//! rcgen. Making keys takes randomness from the operating system; nothing
//! here reads or writes a file.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::identity::Myid;
use crate::spec::{EnsembleSpec, Placement};

/// The key store's file name in a member's TLS folder: key, then chain.
pub const KEY_STORE: &str = "keystore.pem";
/// The trust store's file name in a member's TLS folder: CA certificates.
pub const TRUST_STORE: &str = "truststore.pem";
/// Where a pod's stores live (an emptyDir the sidecar keeps current).
pub const POD_TLS_DIR: &str = "/tls";

/// The connection factory client TLS needs.
pub const NETTY_FACTORY: &str = "org.apache.zookeeper.server.NettyServerCnxnFactory";

/// Whether members ask TLS clients for a certificate (`ssl.clientAuth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// A client without a certificate is refused (ZooKeeper's default).
    #[default]
    Need,
    /// A certificate is asked for, and checked when given.
    Want,
    /// No certificate is asked for.
    None,
}

impl ClientAuth {
    /// The value of `ssl.clientAuth`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::Need => "need",
            ClientAuth::Want => "want",
            ClientAuth::None => "none",
        }
    }
}

/// Client TLS: a TLS port beside the plain one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientTls {
    pub auth: ClientAuth,
}

/// The keys client TLS sets, for the stores in `dir` and the TLS port
/// `port`. With the spec's `client_tls` on they are zookube's.
pub fn client_keys(dir: &str, port: u16, tls: ClientTls) -> Vec<(&'static str, String)> {
    vec![
        ("serverCnxnFactory", NETTY_FACTORY.to_owned()),
        ("secureClientPort", port.to_string()),
        ("ssl.keyStore.location", format!("{dir}/{KEY_STORE}")),
        ("ssl.keyStore.type", "PEM".to_owned()),
        ("ssl.trustStore.location", format!("{dir}/{TRUST_STORE}")),
        ("ssl.trustStore.type", "PEM".to_owned()),
        ("ssl.clientAuth", tls.auth.as_str().to_owned()),
    ]
}

/// Whether `key` is one that client TLS sets (or binds: the address of
/// the TLS port).
pub fn is_client_tls_key(key: &str) -> bool {
    key == "secureClientPortAddress"
        || client_keys("", 0, ClientTls::default())
            .iter()
            .any(|(k, _)| *k == key)
}

/// How long the operator's CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// How long a member's certificate is valid.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

/// The keys quorum TLS sets, for the stores in `dir`. With the spec's
/// `quorum_tls` on they are zookube's: an override of one is refused.
pub fn quorum_keys(dir: &str) -> Vec<(&'static str, String)> {
    vec![
        ("sslQuorum", "true".to_owned()),
        ("ssl.quorum.keyStore.location", format!("{dir}/{KEY_STORE}")),
        ("ssl.quorum.keyStore.type", "PEM".to_owned()),
        (
            "ssl.quorum.trustStore.location",
            format!("{dir}/{TRUST_STORE}"),
        ),
        ("ssl.quorum.trustStore.type", "PEM".to_owned()),
        // Re-read when a store is renamed over its path (rotation).
        ("sslQuorumReloadCertFiles", "true".to_owned()),
    ]
}

/// Whether `key` is one that quorum TLS sets.
pub fn is_quorum_tls_key(key: &str) -> bool {
    quorum_keys("").iter().any(|(k, _)| *k == key)
}

/// Where a caller on loopback comes from, as a certificate names it: an
/// unbound socket leaves from 127.0.0.1, whose reverse name is `localhost`.
pub const LOOPBACK_CALLER: [&str; 2] = ["127.0.0.1", "localhost"];

/// The names member `myid`'s quorum certificate covers. First its host as
/// the server list names it (callers verify that). Then where its own
/// connections come from, which the members it calls verify: on loopback
/// an unbound socket leaves from 127.0.0.1 (reverse name `localhost`); in a
/// pod from the pod IP, whose reverse name through the headless Service is
/// the pod's host name.
pub fn member_names(spec: &EnsembleSpec, myid: Myid) -> Vec<String> {
    let mut names = vec![spec.host(myid)];
    if let Placement::Loopback { .. } = spec.placement {
        names.extend(LOOPBACK_CALLER.map(str::to_owned));
    }
    names
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct TlsError {
    what: String,
    #[source]
    source: rcgen::Error,
}

fn failed(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> TlsError {
    let what = what.into();
    move |source| TlsError { what, source }
}

/// A certificate and its PKCS#8 private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a private key.
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

/// A cluster's certificate authority: signs every member's certificate.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

/// The CA's subject names the cluster and the CA's own key, so no two CAs
/// share a subject, not even a cluster's old and new one during a
/// rotation: in one ZooKeeper trust store the second would replace the
/// first.
fn ca_params(namespace: &str, name: &str, key: &KeyPair, now: SystemTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let id: String = params
        .key_identifier(key)
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "zookube");
    dn.push(
        DnType::CommonName,
        format!("zookube CA {namespace}/{name} {id}"),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + CA_VALIDITY).into();
    params
}

impl Authority {
    /// A new CA for the cluster `namespace/name`.
    pub fn generate(namespace: &str, name: &str, now: SystemTime) -> Result<Authority, TlsError> {
        let key = KeyPair::generate().map_err(failed("generating the CA key"))?;
        let params = ca_params(namespace, name, &key, now);
        let cert = params
            .self_signed(&key)
            .map_err(failed("signing the CA certificate"))?;
        Ok(Authority {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A CA from its certificate and key (as [`Authority::cert_pem`] and
    /// [`Authority::key_pem`] gave them).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Authority, TlsError> {
        let key = KeyPair::from_pem(key_pem).map_err(failed("reading the CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(failed("reading the CA certificate"))?;
        Ok(Authority {
            cert_pem: cert_pem.to_owned(),
            issuer,
        })
    }

    /// The CA certificate, PEM: the trust store's content.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A certificate for `names` (IP addresses become IP SANs), good for
    /// both ends of a quorum connection, valid from an hour ago (clock
    /// skew) for [`LEAF_VALIDITY`].
    pub fn issue(&self, names: &[String], now: SystemTime) -> Result<Issued, TlsError> {
        let what = || format!("issuing a certificate for {}", names.join(", "));
        let key = KeyPair::generate().map_err(failed(what()))?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(failed(what()))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "zookube");
        dn.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + LEAF_VALIDITY).into();
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(failed(what()))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A member's key store: its key, its certificate, then this CA's.
    pub fn key_store(&self, leaf: &Issued) -> String {
        format!("{}{}{}", leaf.key_pem, leaf.cert_pem, self.cert_pem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn quorum_tls_renders_pem_stores_in_the_members_folder_and_owns_its_keys() {
        let mut spec = EnsembleSpec::new("zk", "prod");
        spec.quorum_tls = true;
        let myid = Myid::new(2).expect("myid");
        let cfg = spec.zoo_cfg(myid).expect("renders");
        assert_eq!(cfg.get("sslQuorum"), Some("true"));
        assert_eq!(
            cfg.get("ssl.quorum.keyStore.location"),
            Some("/tls/keystore.pem")
        );
        assert_eq!(cfg.get("ssl.quorum.trustStore.type"), Some("PEM"));

        spec.placement = Placement::Loopback {
            base: Ipv4Addr::new(127, 0, 0, 1),
            data_root: "/z/data".into(),
            tls_root: "/z/tls".into(),
        };
        let cfg = spec.zoo_cfg(myid).expect("renders");
        assert_eq!(
            cfg.get("ssl.quorum.trustStore.location"),
            Some("/z/tls/2/truststore.pem")
        );

        spec.overrides
            .insert("ssl.quorum.keyStore.type".into(), "JKS".into());
        let errors = spec.zoo_cfg(myid).expect_err("an owned key");
        assert!(errors.to_string().contains("ssl.quorum.keyStore.type"));
        spec.quorum_tls = false;
        assert!(
            spec.zoo_cfg(myid).is_ok(),
            "without TLS the key is the user's"
        );
    }

    #[test]
    fn client_tls_opens_a_netty_tls_port_beside_the_plain_one_on_the_members_address() {
        let mut spec = EnsembleSpec::new("zk", "prod");
        spec.client_tls = Some(ClientTls {
            auth: ClientAuth::Want,
        });
        spec.placement = Placement::Loopback {
            base: Ipv4Addr::new(127, 0, 0, 1),
            data_root: "/z/data".into(),
            tls_root: "/z/tls".into(),
        };
        let myid = Myid::new(1).expect("myid");
        let cfg = spec.zoo_cfg(myid).expect("renders");
        assert_eq!(cfg.get("serverCnxnFactory"), Some(NETTY_FACTORY));
        assert_eq!(cfg.get("secureClientPort"), Some("2281"));
        assert_eq!(cfg.get("secureClientPortAddress"), Some("127.0.0.2"));
        assert_eq!(cfg.get("clientPort"), Some("2181"), "the plain port stays");
        assert_eq!(cfg.get("ssl.clientAuth"), Some("want"));
        assert_eq!(
            cfg.get("ssl.keyStore.location"),
            Some("/z/tls/1/keystore.pem")
        );
        assert_eq!(cfg.get("sslQuorum"), None, "the quorum is not TLS");

        spec.ports.secure_client = spec.ports.client;
        let errors = spec.zoo_cfg(myid).expect_err("one port twice");
        assert!(errors.to_string().contains("secure client"), "{errors}");
        spec.ports.secure_client = 2281;
        spec.overrides
            .insert("ssl.clientAuth".into(), "none".into());
        let errors = spec.zoo_cfg(myid).expect_err("an owned key");
        assert!(errors.to_string().contains("ssl.clientAuth"), "{errors}");
    }

    #[test]
    fn a_members_certificate_covers_its_host_and_where_its_connections_come_from() {
        let myid = Myid::new(1).expect("myid");
        let mut spec = EnsembleSpec::new("zk", "prod");
        assert_eq!(
            member_names(&spec, myid),
            ["zk-0.zk-headless.prod.svc.cluster.local"]
        );
        spec.placement = Placement::Loopback {
            base: Ipv4Addr::new(127, 0, 0, 1),
            data_root: "/d".into(),
            tls_root: "/t".into(),
        };
        assert_eq!(
            member_names(&spec, myid),
            ["127.0.0.2", "127.0.0.1", "localhost"]
        );
    }

    #[test]
    fn a_loaded_authority_issues_what_the_generated_one_did() {
        let now = SystemTime::now();
        let ca = Authority::generate("prod", "zk", now).expect("a CA");
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let key = ca.key_pem();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
        let again = Authority::load(ca.cert_pem(), &key).expect("loads");
        let leaf = again
            .issue(&["127.0.0.2".into(), "localhost".into()], now)
            .expect("issues");
        assert!(leaf.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let store = again.key_store(&leaf);
        assert_eq!(store.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(!format!("{leaf:?}{again:?}").contains("PRIVATE"));
    }
}
