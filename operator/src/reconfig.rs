//! Who changes an ensemble's membership: zookube itself, through a ZooKeeper
//! client session (the `zookeeper-client` crate) authenticated as ZooKeeper's
//! `super` user — never `skipACL`. The operator (and `local`) generates the
//! password once per cluster; the servers only ever see its digest, through
//! `-Dzookeeper.DigestAuthenticationProvider.superDigest` (on Kubernetes from
//! a Secret, never from the ConfigMap).
//!
//! [`EnsembleAdmin`] reads the committed config and applies one incremental
//! `reconfig` with the expected version the planner saw
//! ([`zk_ensemble::plan`]), so a config that changed meanwhile is never
//! overwritten. ZooKeeper drops every client when a removed leader hands
//! over, often before the answer arrives: a lost answer is settled by
//! reading the config again.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use futures::future::BoxFuture;
use sha1::{Digest, Sha1};
use zk_ensemble::Myid;
use zk_ensemble::plan::{Membership, MembershipError};
use zookeeper_client as zk;

/// The ZooKeeper user whose digest the servers accept as `super`.
pub const SUPER_USER: &str = "super";

/// The system property that gives a server the super user's digest.
pub const SUPER_DIGEST_PROPERTY: &str = "zookeeper.DigestAuthenticationProvider.superDigest";

/// How long connecting (and each request) may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A new random password: 32 bytes, base64 (URL-safe, no padding).
pub fn generate_password() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `super:<base64(sha1("super:<password>"))>`, as ZooKeeper's
/// `DigestAuthenticationProvider.generateDigest` computes it.
pub fn super_digest(password: &str) -> String {
    let sha = Sha1::digest(format!("{SUPER_USER}:{password}").as_bytes());
    format!(
        "{SUPER_USER}:{}",
        base64::engine::general_purpose::STANDARD.encode(sha)
    )
}

/// The JVM flag that makes a server accept the digest.
pub fn super_digest_flag(digest: &str) -> String {
    format!("-D{SUPER_DIGEST_PROPERTY}={digest}")
}

/// One membership change, with the config version it expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconfig {
    /// Adds the server line (`server.4=…:participant;…`) of `myid`.
    Add {
        myid: Myid,
        line: String,
        version: u64,
    },
    Remove {
        myid: Myid,
        version: u64,
    },
}

impl Reconfig {
    pub fn myid(&self) -> Myid {
        match self {
            Reconfig::Add { myid, .. } | Reconfig::Remove { myid, .. } => *myid,
        }
    }

    /// Whether `membership` shows the change done.
    pub fn applied(&self, membership: &Membership) -> bool {
        match self {
            Reconfig::Add { myid, .. } => membership.contains(*myid),
            Reconfig::Remove { myid, .. } => !membership.contains(*myid),
        }
    }
}

/// Where the ensemble is and how to authenticate.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port,host:port` of members that serve clients.
    pub connect: String,
    pub password: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("connect", &self.connect)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Why the committed config could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum ReconfigError {
    #[error("cannot connect to the ensemble at {connect}: {source}")]
    Connect {
        connect: String,
        #[source]
        source: zk::Error,
    },
    #[error("no answer from the ensemble at {connect} within {}s", TIMEOUT.as_secs())]
    Timeout { connect: String },
    #[error("no member runs to connect to")]
    NoMembers,
    #[error(
        "the ensemble does not accept zookube's super password: its servers run without the digest of the current password (restart them through zookube so they pick it up)"
    )]
    NotSuper,
    #[error("cannot read the committed config: {0}")]
    Read(#[source] zk::Error),
    #[error(transparent)]
    Config(#[from] MembershipError),
    #[error(
        "the committed config changed (it is no longer version {expected:x}); the next step is planned afresh"
    )]
    Changed { expected: u64 },
    #[error("another reconfiguration is in progress; trying again shortly")]
    InProgress,
    #[error(
        "ZooKeeper refused the new config: fewer than a quorum of its voters are synced with the leader"
    )]
    NoQuorum,
    #[error("the servers refuse reconfiguration (reconfigEnabled is false)")]
    Disabled,
    #[error("ZooKeeper refused the change: {0}")]
    Refused(#[source] zk::Error),
}

impl ReconfigError {
    /// A bounded label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            ReconfigError::Connect { .. }
            | ReconfigError::Timeout { .. }
            | ReconfigError::NoMembers => "connect",
            ReconfigError::NotSuper => "not_super",
            ReconfigError::Read(_) | ReconfigError::Config(_) => "read_config",
            ReconfigError::Changed { .. } | ReconfigError::InProgress => "conflict",
            ReconfigError::NoQuorum => "no_quorum",
            ReconfigError::Disabled | ReconfigError::Refused(_) => "refused",
        }
    }

    /// Whether trying again soon, after planning afresh, may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            ReconfigError::NotSuper | ReconfigError::Disabled | ReconfigError::Config(_)
        )
    }
}

/// Reads and changes an ensemble's membership. The operator's tests use a
/// recording fake; everything else uses [`ZkAdmin`].
pub trait EnsembleAdmin: Send + Sync {
    /// The committed config, read after a `sync` so it is the leader's.
    fn read_config<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Membership, ReconfigError>>;

    /// Applies one change and returns the new committed config.
    fn reconfig<'a>(
        &'a self,
        target: &'a Target,
        change: &'a Reconfig,
    ) -> BoxFuture<'a, Result<Membership, ReconfigError>>;
}

/// [`EnsembleAdmin`] over a real ZooKeeper session, kept between calls for
/// the same target (creating a session is itself a write to the ensemble).
#[derive(Default)]
pub struct ZkAdmin {
    session: Mutex<Option<(Target, zk::Client)>>,
}

impl ZkAdmin {
    pub fn new() -> ZkAdmin {
        ZkAdmin::default()
    }

    async fn client(&self, target: &Target) -> Result<zk::Client, ReconfigError> {
        if let Some((t, client)) = self.cached()
            && &t == target
            && !client.state().is_terminated()
        {
            return Ok(client);
        }
        if target.connect.is_empty() {
            return Err(ReconfigError::NoMembers);
        }
        let auth = format!("{SUPER_USER}:{}", target.password);
        // Each member is tried once: a member that is not there fails the
        // look, which the caller repeats, rather than holding it up.
        let connect = zk::Client::connector()
            .with_session_timeout(TIMEOUT)
            .with_connection_timeout(Duration::from_secs(2))
            .with_auth("digest", auth.as_bytes())
            .with_fail_eagerly()
            .connect(&target.connect);
        let client = tokio::time::timeout(TIMEOUT, connect)
            .await
            .map_err(|_| ReconfigError::Timeout {
                connect: target.connect.clone(),
            })?
            .map_err(|source| ReconfigError::Connect {
                connect: target.connect.clone(),
                source,
            })?;
        *self.lock() = Some((target.clone(), client.clone()));
        Ok(client)
    }

    /// A wrong password is no error to ZooKeeper: the session is merely
    /// someone else. Only the list of identities tells (reading the config
    /// needs none; changing it does).
    async fn check_super(&self, target: &Target, client: &zk::Client) -> Result<(), ReconfigError> {
        let users = bounded(target, client.list_auth_users())
            .await?
            .map_err(ReconfigError::Read)?;
        if users.iter().any(|u| u.scheme() == SUPER_USER) {
            Ok(())
        } else {
            Err(ReconfigError::NotSuper)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Target, zk::Client)>> {
        self.session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cached(&self) -> Option<(Target, zk::Client)> {
        self.lock().clone()
    }

    fn forget(&self) {
        *self.lock() = None;
    }

    async fn read(&self, target: &Target) -> Result<Membership, ReconfigError> {
        let client = self.client(target).await?;
        let read = async {
            client.sync("/zookeeper/config").await?;
            client.get_config().await
        };
        match bounded(target, read).await? {
            Ok((data, _)) => Ok(Membership::parse(&String::from_utf8_lossy(&data))?),
            Err(e) => {
                self.forget();
                Err(ReconfigError::Read(e))
            }
        }
    }

    async fn change(
        &self,
        target: &Target,
        change: &Reconfig,
    ) -> Result<Membership, ReconfigError> {
        let client = self.client(target).await?;
        self.check_super(target, &client).await?;
        let leaving = match change {
            Reconfig::Remove { myid, .. } => myid.to_string(),
            Reconfig::Add { .. } => String::new(),
        };
        let (joinings, leavings, version): (Vec<&str>, Vec<&str>, u64) = match change {
            Reconfig::Add { line, version, .. } => (vec![line.as_str()], vec![], *version),
            Reconfig::Remove { version, .. } => (vec![], vec![leaving.as_str()], *version),
        };
        let update = zk::EnsembleUpdate::Incremental {
            joinings: joinings.into_iter(),
            leavings: leavings.into_iter(),
        };
        let expected = i64::try_from(version).unwrap_or(i64::MAX);
        let answer = bounded(target, client.update_ensemble(update, Some(expected))).await;
        let error = match answer {
            Ok(Ok((data, _))) => return Ok(Membership::parse(&String::from_utf8_lossy(&data))?),
            Ok(Err(e)) => e,
            Err(timeout) => {
                self.forget();
                return self.settle(target, change, timeout).await;
            }
        };
        match error {
            zk::Error::BadVersion => Err(ReconfigError::Changed { expected: version }),
            zk::Error::UnexpectedErrorCode(-14) => Err(ReconfigError::InProgress),
            zk::Error::UnexpectedErrorCode(-13) => Err(ReconfigError::NoQuorum),
            zk::Error::NoAuth => Err(ReconfigError::NotSuper),
            zk::Error::ReconfigDisabled => Err(ReconfigError::Disabled),
            zk::Error::ConnectionLoss | zk::Error::SessionExpired | zk::Error::ClientClosed => {
                self.forget();
                self.settle(target, change, ReconfigError::Refused(error))
                    .await
            }
            other => Err(ReconfigError::Refused(other)),
        }
    }

    /// The answer was lost (a leader hand-over drops every client): read
    /// the config again, a few times while the ensemble settles, and judge.
    async fn settle(
        &self,
        target: &Target,
        change: &Reconfig,
        lost: ReconfigError,
    ) -> Result<Membership, ReconfigError> {
        let mut last = lost;
        for _ in 0..20 {
            match self.read(target).await {
                Ok(membership) if change.applied(&membership) => return Ok(membership),
                Ok(_) => {
                    return Err(ReconfigError::Changed {
                        expected: match change {
                            Reconfig::Add { version, .. } | Reconfig::Remove { version, .. } => {
                                *version
                            }
                        },
                    });
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(last)
    }
}

async fn bounded<T>(target: &Target, future: impl Future<Output = T>) -> Result<T, ReconfigError> {
    tokio::time::timeout(TIMEOUT, future)
        .await
        .map_err(|_| ReconfigError::Timeout {
            connect: target.connect.clone(),
        })
}

impl EnsembleAdmin for ZkAdmin {
    fn read_config<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Membership, ReconfigError>> {
        Box::pin(self.read(target))
    }

    fn reconfig<'a>(
        &'a self,
        target: &'a Target,
        change: &'a Reconfig,
    ) -> BoxFuture<'a, Result<Membership, ReconfigError>> {
        Box::pin(self.change(target, change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_zookeepers() {
        // `java … DigestAuthenticationProvider super:password` prints
        // `super:password->super:DyNYQEQvajljsxlhf5uS4PJ9R28=`.
        assert_eq!(
            super_digest("password"),
            "super:DyNYQEQvajljsxlhf5uS4PJ9R28="
        );
        assert_eq!(
            super_digest_flag("super:x"),
            "-Dzookeeper.DigestAuthenticationProvider.superDigest=super:x"
        );
    }

    #[test]
    fn passwords_are_long_random_and_shell_safe() {
        let a = generate_password();
        assert_eq!(a.len(), 43);
        assert_ne!(a, generate_password());
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn a_change_is_judged_by_the_config_read_afterwards() {
        let one = Myid::new(1).unwrap();
        let four = Myid::new(4).unwrap();
        let membership = Membership::parse("server.1=a:1:2\nversion=1").unwrap();
        let add = Reconfig::Add {
            myid: four,
            line: "server.4=d:1:2".into(),
            version: 1,
        };
        assert!(!add.applied(&membership));
        assert!(
            Reconfig::Remove {
                myid: four,
                version: 1
            }
            .applied(&membership)
        );
        assert!(
            !Reconfig::Remove {
                myid: one,
                version: 1
            }
            .applied(&membership)
        );
        let target = Target {
            connect: "a:2181".into(),
            password: "secret".into(),
        };
        assert!(!format!("{target:?}").contains("secret"));
    }
}
