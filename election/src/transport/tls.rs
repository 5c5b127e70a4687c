//! The election port over TLS (`sslQuorum=true`, spec §2.1): a connector
//! built from a member's quorum PEM stores, with rustls.
//!
//! A caller presents the key store's certificate (members require a client
//! certificate and check it against the caller's address) and verifies the
//! member's certificate against the CA certificates of the trust store and
//! the host of the member's `server.N` line. The stores are read again for
//! every [`Connector::load`], so a store renamed into place (rotation) is
//! used from the next connection on.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::TlsConnector;

use crate::config::QuorumStores;

/// Why the stores give no connector.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no certificate: {fix}")]
    NoCertificate { path: PathBuf, fix: &'static str },
    #[error(
        "{path} holds no private key: the key store is the PKCS#8 key (BEGIN PRIVATE KEY) followed by the certificate chain"
    )]
    NoKey { path: PathBuf },
    #[error(
        "the key in {path} is {kind}, not PKCS#8: ZooKeeper starts on such a key and never serves; convert it with `openssl pkcs8 -topk8 -nocrypt`"
    )]
    NotPkcs8 { path: PathBuf, kind: &'static str },
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Rustls {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the certificate in {path} does not serve {host} with the trust store: {source}")]
    NotForMember {
        host: String,
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{host:?} is not a host name or IP address a certificate can name")]
    BadHost { host: String },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem_error(path: &Path) -> impl Fn(rustls::pki_types::pem::Error) -> TlsError + '_ {
    move |e| TlsError::Pem {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// The certificates in a PEM file, in order.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(path))
}

/// The key store's PKCS#8 private key and certificate chain.
pub fn key_store(
    path: &Path,
) -> Result<(PrivateKeyDer<'static>, Vec<CertificateDer<'static>>), TlsError> {
    let bytes = read(path)?;
    let key = match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => key,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(pem_error(path)(e)),
    };
    let kind = match &key {
        PrivateKeyDer::Pkcs8(_) => None,
        PrivateKeyDer::Sec1(_) => Some("SEC1 (BEGIN EC PRIVATE KEY)"),
        PrivateKeyDer::Pkcs1(_) => Some("PKCS#1 (BEGIN RSA PRIVATE KEY)"),
        _ => Some("of an unknown kind"),
    };
    if let Some(kind) = kind {
        return Err(TlsError::NotPkcs8 {
            path: path.to_owned(),
            kind,
        });
    }
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(path))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
            fix: "put the member's certificate (and its chain) after the key",
        });
    }
    Ok((key, chain))
}

/// The trust store's CA certificates as rustls roots; an empty store is
/// refused by name.
fn trust_roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let cas = certificates(path)?;
    if cas.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
            fix: "the trust store is the CA certificates, PEM",
        });
    }
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots.add(ca).map_err(|source| TlsError::Rustls {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(roots)
}

/// Whether the stores serve member `host`: the key store's key belongs to
/// its first certificate, which chains to a CA of the trust store, is valid
/// now and names `host`. What `zk-sidecar check` asks before ZooKeeper
/// starts on them (ZooKeeper only finds out on the first connection).
pub fn check_member(stores: &QuorumStores, host: &str) -> Result<(), TlsError> {
    let (key, chain) = key_store(&stores.key_store)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::sign::CertifiedKey::from_der(chain.clone(), key, &provider).map_err(|source| {
        TlsError::Rustls {
            path: stores.key_store.clone(),
            source,
        }
    })?;
    let roots = trust_roots(&stores.trust_store)?;
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::Pem {
                path: stores.trust_store.clone(),
                reason: e.to_string(),
            })?;
    let name = ServerName::try_from(host.to_owned()).map_err(|_| TlsError::BadHost {
        host: host.to_owned(),
    })?;
    let (leaf, intermediates) = chain.split_first().ok_or_else(|| TlsError::NoCertificate {
        path: stores.key_store.clone(),
        fix: "put the member's certificate (and its chain) after the key",
    })?;
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
        .map(drop)
        .map_err(|source| TlsError::NotForMember {
            host: host.to_owned(),
            path: stores.key_store.clone(),
            source,
        })
}

/// A TLS client for members' election ports.
#[derive(Clone)]
pub struct Connector {
    inner: TlsConnector,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    /// Reads both stores and builds the client: TLS 1.2 or 1.3, the key
    /// store's certificate as the client certificate, the trust store's
    /// certificates as the only roots.
    pub fn load(stores: &QuorumStores) -> Result<Connector, TlsError> {
        let (key, chain) = key_store(&stores.key_store)?;
        let roots = trust_roots(&stores.trust_store)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_root_certificates(roots)
                    .with_client_auth_cert(chain, key)
            })
            .map_err(|source| TlsError::Rustls {
                path: stores.key_store.clone(),
                source,
            })?;
        Ok(Connector {
            inner: TlsConnector::from(Arc::new(config)),
        })
    }

    /// The handshake over `tcp`, verifying the member as `host`.
    pub(crate) async fn handshake(
        &self,
        host: &str,
        tcp: tokio::net::TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, HandshakeError> {
        let name = ServerName::try_from(host.to_owned()).map_err(|_| {
            HandshakeError::Host(TlsError::BadHost {
                host: host.to_owned(),
            })
        })?;
        self.inner
            .connect(name, tcp)
            .await
            .map_err(HandshakeError::Io)
    }
}

/// Why a handshake failed: the host cannot be named, or the exchange broke
/// (the member refused our certificate, we refused its certificate).
#[derive(Debug)]
pub(crate) enum HandshakeError {
    Host(TlsError),
    Io(std::io::Error),
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use zk_ensemble::tls::{Authority, KEY_STORE, TRUST_STORE};

    use super::*;

    fn stores(dir: &Path, key_store: &str, trust_store: &str) -> QuorumStores {
        zk_process::stores::write_stores(dir, key_store, trust_store).expect("stores");
        QuorumStores {
            key_store: dir.join(KEY_STORE),
            trust_store: dir.join(TRUST_STORE),
        }
    }

    /// During a rotation a member trusts the cluster's old and new CA at
    /// once; each signs for the member, and a reloaded CA still does.
    #[test]
    fn two_cas_of_one_cluster_in_one_trust_store_each_vouch_for_their_leaves() {
        let dir = tempfile::tempdir().expect("a folder");
        let now = SystemTime::now();
        let old = Authority::generate("prod", "zk", now).expect("a CA");
        let new = Authority::generate("prod", "zk", now).expect("a CA");
        let reloaded = Authority::load(new.cert_pem(), &new.key_pem()).expect("loads");
        let both = format!("{}{}", old.cert_pem(), new.cert_pem());
        let names = ["127.0.0.2".to_owned()];
        for ca in [&old, &new, &reloaded] {
            let leaf = ca.issue(&names, now).expect("a leaf");
            let stores = stores(dir.path(), &ca.key_store(&leaf), &both);
            check_member(&stores, "127.0.0.2").expect("trusted");
            Connector::load(&stores).expect("a connector");
            let wrong = check_member(&stores, "127.0.0.3").expect_err("another host");
            assert!(
                wrong.to_string().contains("does not serve 127.0.0.3"),
                "{wrong}"
            );
        }
        let leaf = old.issue(&names, now).expect("a leaf");
        let only_new = stores(dir.path(), &old.key_store(&leaf), new.cert_pem());
        assert!(
            check_member(&only_new, "127.0.0.2").is_err(),
            "the old CA is no longer trusted"
        );
    }
}
