//! A Rust election peer: the sans-IO [`Election`] driven by the [`Mesh`] and
//! tokio's clock. It is the engine of `zk-sidecar vote`: a voter (or, when
//! its myid is an observer in the config, a non-voter) on the election port
//! of its `server.N` line, byte-compatible with ZooKeeper 3.5–3.9 (§4.10).
//!
//! Everything it decides comes from the state machine; this module only
//! builds the settings from a member's `zoo.cfg`, moves events in and
//! actions out, and reports every change.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::{debug, info, warn};
use zk_ensemble::ZooCfg;

use crate::config::{ConfigError, ElectionSecurity, QuorumConfig, election_security};
use crate::fle::{Action, Decision, Election, Event, Settings};
use crate::quorum::Verifiers;
use crate::transport::{Mesh, MeshConfig, MeshEvent};
use crate::wire::{ElectionAddress, ServerState};

/// ZooKeeper's default `tickTime` when the config names none (ms).
const DEFAULT_TICK_TIME_MS: u64 = 3000;
/// zookube's default `syncLimit` when the config names none (ticks).
const DEFAULT_SYNC_LIMIT: u64 = 5;

/// Why a peer cannot start from a config.
#[derive(Debug, thiserror::Error)]
pub enum PeerConfigError {
    #[error(
        "myid {0} is not in the config's server list; add a server.{0}=host:quorumPort:electionPort line"
    )]
    NotListed(i64),
    #[error("{0}")]
    Unsupported(String),
    #[error("`{key}` is {value:?}; it must be a positive whole number")]
    BadNumber { key: &'static str, value: String },
    #[error("the config's server lines: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot resolve this member's election address {address}: {source}")]
    Resolve {
        address: String,
        #[source]
        source: io::Error,
    },
}

/// Everything a peer needs to run.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub settings: Settings,
    /// The committed config we send with every notification.
    pub config: QuorumConfig,
    pub mesh: MeshConfig,
}

impl PeerConfig {
    /// The peer `myid` of the member whose `zoo.cfg` (with its dynamic
    /// server lines merged) is `cfg`, at config version `version` (0 for a
    /// static config; the hex suffix of `zoo.cfg.dynamic.<version>`).
    /// `zxid` and `peer_epoch` make its vote (§4.10: 0 and the persisted epoch).
    pub fn from_zoo_cfg(
        cfg: &ZooCfg,
        version: u64,
        myid: i64,
        zxid: i64,
        peer_epoch: i64,
    ) -> Result<PeerConfig, PeerConfigError> {
        match election_security(cfg).map_err(PeerConfigError::Unsupported)? {
            ElectionSecurity {
                tls: None,
                sasl: None,
            } => {}
            _ => {
                return Err(PeerConfigError::Unsupported(
                    "the config sets sslQuorum=true or requires quorum SASL: a voting zk-election peer speaks plaintext only (spec §2.1, D14), and such members would refuse it; `zk-sidecar run` watches these quorums".to_owned(),
                ));
            }
        }
        let number = |key: &'static str, default: u64| match cfg.get(key) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| PeerConfigError::BadNumber {
                    key,
                    value: value.to_owned(),
                }),
        };
        let tick = Duration::from_millis(number("tickTime", DEFAULT_TICK_TIME_MS)?);
        let sync_limit = u32::try_from(number("syncLimit", DEFAULT_SYNC_LIMIT)?).map_err(|_| {
            PeerConfigError::BadNumber {
                key: "syncLimit",
                value: cfg.get("syncLimit").unwrap_or_default().to_owned(),
            }
        })?;
        let config = QuorumConfig::from_zoo_cfg(cfg, version)?;
        let me = cfg.server(myid).ok_or(PeerConfigError::NotListed(myid))?;
        let election_address = |entry: &zk_ensemble::zoocfg::ServerEntry| {
            entry
                .addresses
                .first()
                .map(|a| ElectionAddress::new(a.host.clone(), a.election_port))
        };
        let advertised = election_address(me).ok_or(PeerConfigError::NotListed(myid))?;
        let listen = if cfg
            .get("quorumListenOnAllIPs")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            SocketAddr::from(([0, 0, 0, 0], advertised.port))
        } else {
            resolve(&advertised)?
        };
        let peers: BTreeMap<i64, ElectionAddress> = cfg
            .servers
            .iter()
            .filter(|s| s.id != myid)
            .filter_map(|s| Some((s.id, election_address(s)?)))
            .collect();
        let mut settings =
            Settings::new(myid, Verifiers::new(config.quorum.clone(), config.version));
        settings.zxid = zxid;
        settings.peer_epoch = peer_epoch;
        settings.tick = tick;
        settings.leader_timeout =
            tick.checked_mul(sync_limit)
                .ok_or_else(|| PeerConfigError::BadNumber {
                    key: "syncLimit",
                    value: format!(
                        "{sync_limit} (× tickTime {} ms overflows)",
                        tick.as_millis()
                    ),
                })?;
        let mut mesh = MeshConfig::new(myid, listen, advertised, peers);
        mesh.preamble_timeout = settings.leader_timeout;
        Ok(PeerConfig {
            settings,
            config,
            mesh,
        })
    }
}

fn resolve(address: &ElectionAddress) -> Result<SocketAddr, PeerConfigError> {
    let error = |source| PeerConfigError::Resolve {
        address: address.to_string(),
        source,
    };
    (address.host.as_str(), address.port)
        .to_socket_addrs()
        .map_err(error)?
        .next()
        .ok_or_else(|| error(io::Error::new(io::ErrorKind::NotFound, "no address")))
}

/// What the peer reports after every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub myid: i64,
    pub voter: bool,
    pub state: ServerState,
    /// The leader we follow or are; `None` while LOOKING.
    pub leader: Option<i64>,
    /// The peer epoch of our current vote.
    pub peer_epoch: i64,
    /// The logical clock.
    pub election_epoch: i64,
    /// Our vote's zxid (what we were started with).
    pub zxid: i64,
    /// Elections decided since start.
    pub elections: u64,
    /// Decisions that named another leader than the one before.
    pub leader_changes: u64,
    /// When the current leader was decided.
    pub leader_since: Option<SystemTime>,
    /// The peers with an election connection up.
    pub connected: Vec<i64>,
}

impl PeerStatus {
    fn of(election: &Election) -> PeerStatus {
        PeerStatus {
            myid: election.myid(),
            voter: election.is_voter(),
            state: election.state(),
            leader: election.leader(),
            peer_epoch: election.current_vote().peer_epoch,
            election_epoch: election.logical_clock(),
            zxid: election.settings().zxid,
            elections: 0,
            leader_changes: 0,
            leader_since: None,
            connected: Vec::new(),
        }
    }
}

/// A change the peer reports: every state change, with the decision when
/// an election ended.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    State,
    Decided(&'a Decision),
    Connections,
}

/// Runs the peer until the future is dropped; returns only when the
/// election port cannot be bound. `report` sees the status after every
/// change.
pub async fn run(
    config: PeerConfig,
    report: impl FnMut(&PeerStatus, Change<'_>) + Send,
) -> io::Result<()> {
    let mesh = Mesh::bind(config.mesh.clone()).await?;
    info!(
        myid = config.settings.myid,
        election = %mesh.local_addr(),
        voters = ?config.config.voters,
        "election peer listening"
    );
    let origin = Instant::now();
    let (election, actions) = Election::start(config.settings.clone(), Duration::ZERO);
    let mut driver = Driver {
        status: PeerStatus::of(&election),
        election,
        mesh,
        config: config.config,
        last_leader: None,
        report,
    };
    driver.apply(actions);
    loop {
        let deadline = driver.election.next_deadline();
        let timer = async {
            match deadline {
                Some((timer, at)) => {
                    tokio::time::sleep_until(origin + at).await;
                    timer
                }
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            received = driver.mesh.recv() => match received {
                MeshEvent::Received { from, notification } => {
                    debug!(from, ?notification, "notification");
                    Event::Received { from, vote: (&notification).into() }
                }
                MeshEvent::Malformed { from, error } => {
                    warn!(from, %error, reason = error.reason(), "dropped a malformed notification");
                    continue;
                }
                MeshEvent::Connected { sid } => {
                    driver.connections_changed();
                    Event::Connected { sid }
                }
                MeshEvent::Disconnected { sid } => {
                    driver.connections_changed();
                    Event::Disconnected { sid }
                }
            },
            timer = timer => Event::Timer(timer),
        };
        let actions = driver.election.step(origin.elapsed(), event);
        driver.apply(actions);
    }
}

struct Driver<R> {
    election: Election,
    mesh: Mesh,
    config: QuorumConfig,
    status: PeerStatus,
    last_leader: Option<i64>,
    report: R,
}

impl<R: FnMut(&PeerStatus, Change<'_>)> Driver<R> {
    fn connections_changed(&mut self) {
        self.status.connected = self.mesh.connected();
        (self.report)(&self.status, Change::Connections);
    }

    /// Keeps the counters, refreshes the rest from the election.
    fn refresh(&mut self) {
        let kept = (
            self.status.elections,
            self.status.leader_changes,
            self.status.leader_since,
        );
        self.status = PeerStatus::of(&self.election);
        (
            self.status.elections,
            self.status.leader_changes,
            self.status.leader_since,
        ) = kept;
        self.status.connected = self.mesh.connected();
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, vote } => {
                    match vote.to_notification(&self.config.raw).encode() {
                        Ok(payload) => self.mesh.send(to, payload),
                        Err(e) => warn!(to, error = %e, "not sending a notification"),
                    }
                }
                Action::SetTimer { .. } => {} // read back through next_deadline
                Action::LeaderDecided(decision) => {
                    self.status.elections += 1;
                    if self.last_leader.is_some_and(|l| l != decision.leader) {
                        self.status.leader_changes += 1;
                    }
                    self.last_leader = Some(decision.leader);
                    self.status.leader_since = Some(SystemTime::now());
                    self.refresh();
                    info!(
                        myid = self.status.myid,
                        leader = decision.leader,
                        state = %decision.state,
                        took_ms = u64::try_from(decision.took.as_millis()).unwrap_or(u64::MAX),
                        supporters = ?decision.supporters,
                        election_epoch = self.status.election_epoch,
                        reason = decision.reason.as_str(),
                        "leader decided"
                    );
                    (self.report)(&self.status, Change::Decided(&decision));
                }
                Action::StateChanged { state, reason } => {
                    self.refresh();
                    info!(
                        myid = self.status.myid,
                        state = %state,
                        leader = ?self.status.leader,
                        peer_epoch = self.status.peer_epoch,
                        election_epoch = self.status.election_epoch,
                        reason = reason.as_str(),
                        "state changed"
                    );
                    (self.report)(&self.status, Change::State);
                }
            }
        }
    }
}
