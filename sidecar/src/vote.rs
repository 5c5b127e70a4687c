//! `zk-sidecar vote`: a voting Rust peer. It takes part in ZooKeeper's
//! leader election on the election port of its own `server.N` line, with
//! zk-election's FastLeaderElection (`zk_election::peer`), logs every state
//! change, and serves `/v1/status`, `/metrics`, `/livez` and `/readyz`
//! through the sidecar's shared HTTP module.
//!
//! It keeps no transaction log: its vote is `--zxid` (0) and `--peer-epoch`
//! (0), the profile of spec §4.10. It does not speak Zab, so it can stand in
//! for a member in an election, not replace a ZooKeeper server.
//!
//! This module owns the start-up checks and the translation of the peer's
//! status into the shared [`SidecarStatus`] document.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tracing::info;
use zk_election::peer::{self, Change, PeerConfig, PeerConfigError, PeerStatus};
use zk_election::wire::ServerState;
use zk_ensemble::status::{ElectionStatus, LeaderPhase, MemberStatus, QuorumStatus, format_zxid};
use zk_ensemble::{MemberState, Myid, Role, SidecarStatus, ZooCfg};

use crate::config::{self, LoadError};
use crate::http::{self, Health, Verdict};
use crate::metrics::Metrics;

#[derive(Debug, clap::Args)]
pub(crate) struct VoteArgs {
    /// The member's zoo.cfg (a dynamicConfigFile it names is followed).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The myid file of the member this peer votes as.
    #[arg(long, value_name = "FILE")]
    myid_file: PathBuf,
    /// Where to serve /livez, /readyz, /v1/status and /metrics. `[::]`
    /// takes IPv4 and IPv6 (IPv4 alone where the host has no IPv6).
    #[arg(long, value_name = "ADDR", default_value = "[::]:8081")]
    listen: SocketAddr,
    /// The zxid of this peer's vote (it keeps no log). Never -1: 3.6+
    /// members ignore such votes.
    #[arg(long, value_name = "N", default_value_t = 0)]
    zxid: i64,
    /// The peer epoch of this peer's vote.
    #[arg(long, value_name = "N", default_value_t = 0)]
    peer_epoch: i64,
}

/// Why `vote` will not start: each names the fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VoteError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{0}")]
    Myid(String),
    #[error("--{flag} {value} is negative; a vote's {flag} is 0 or more (§4.10)")]
    Negative { flag: &'static str, value: i64 },
    #[error("{}: {source}", config.display())]
    Peer {
        config: PathBuf,
        #[source]
        source: PeerConfigError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot take part in the election: {0}")]
    Election(std::io::Error),
}

impl VoteError {
    fn exit_code(&self) -> u8 {
        match self {
            VoteError::Load(e) => e.exit_code(),
            VoteError::Listen { .. } | VoteError::Election(_) => 2,
            _ => 1,
        }
    }
}

/// Entry point of the subcommand.
pub(crate) fn run(args: &VoteArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(VoteError::Election)
        .and_then(|runtime| runtime.block_on(serve(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Everything `vote` needs, checked.
struct Plan {
    peer: PeerConfig,
    role: Role,
    cfg: ZooCfg,
    config_version: u64,
}

fn prepare(args: &VoteArgs) -> Result<Plan, VoteError> {
    for (flag, value) in [("zxid", args.zxid), ("peer-epoch", args.peer_epoch)] {
        if value < 0 {
            return Err(VoteError::Negative { flag, value });
        }
    }
    let cfg = config::load(&args.config)?;
    let myid = Myid::parse_file(&config::read(&args.myid_file)?)
        .map_err(|e| VoteError::Myid(format!("{}: {e}", args.myid_file.display())))?;
    let config_version = config::config_version(&cfg);
    let peer = PeerConfig::from_zoo_cfg(
        &cfg,
        config_version,
        i64::from(myid),
        args.zxid,
        args.peer_epoch,
    )
    .map_err(|source| VoteError::Peer {
        config: args.config.clone(),
        source,
    })?;
    let role = cfg
        .server(i64::from(myid))
        .map_or(Role::Voter, |server| server.role);
    Ok(Plan {
        peer,
        role,
        cfg,
        config_version,
    })
}

async fn serve(args: &VoteArgs) -> Result<(), VoteError> {
    let plan = prepare(args)?;
    let listening = zk_process::listen(args.listen).map_err(|source| VoteError::Listen {
        addr: args.listen,
        source,
    })?;
    let listener = listening.listener;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(VoteHealth {
        view: Mutex::new(View::new(&plan)),
    });
    info!(
        myid = plan.peer.settings.myid,
        role = %plan.role,
        http = %args.listen,
        "zk-sidecar vote starting"
    );

    let reporter = health.clone();
    let recorder = metrics.clone();
    let mut election = tokio::spawn(peer::run(plan.peer, move |status, change| {
        if let Change::Decided(decision) = change {
            recorder.election_finished(decision.took.as_secs_f64());
        }
        reporter.update(status, change);
    }));
    let router = http::router(health, metrics);
    let mut server = tokio::spawn(http::serve(listener, router, http::shutdown_signal()));
    tokio::select! {
        ended = &mut election => {
            server.abort();
            match ended {
                Ok(Err(e)) => Err(VoteError::Election(e)),
                Ok(Ok(())) => Ok(()),
                Err(e) => Err(VoteError::Election(std::io::Error::other(e))),
            }
        }
        served = &mut server => {
            election.abort();
            info!("zk-sidecar vote stopping");
            match served {
                Ok(Ok(())) => Ok(()),
                Ok(Err(source)) => Err(VoteError::Listen { addr: args.listen, source }),
                Err(e) => Err(VoteError::Election(std::io::Error::other(e))),
            }
        }
    }
}

/// What `/v1/status` is built from.
#[derive(Debug)]
struct View {
    role: Role,
    /// (myid, host) of every member of the config.
    members: Vec<(i64, String, Role)>,
    voters: Vec<u64>,
    config_version: u64,
    peer: Option<PeerStatus>,
    /// When we last went LOOKING after having had a leader.
    looking_since: Option<SystemTime>,
}

impl View {
    fn new(plan: &Plan) -> View {
        let mut members: Vec<(i64, String, Role)> = plan
            .cfg
            .servers
            .iter()
            .map(|s| (s.id, s.host().to_owned(), s.role))
            .collect();
        members.sort();
        View {
            role: plan.role,
            voters: plan
                .peer
                .config
                .voters
                .iter()
                .filter_map(|v| u64::try_from(*v).ok())
                .collect(),
            members,
            config_version: plan.config_version,
            peer: None,
            looking_since: None,
        }
    }

    fn status(&self) -> SidecarStatus {
        status_of(self)
    }
}

/// The peer's view as the shared status document.
fn status_of(view: &View) -> SidecarStatus {
    let peer = view.peer.as_ref();
    let state = peer.map_or(MemberState::Looking, |p| p.state.into());
    let leader = peer
        .and_then(|p| p.leader)
        .and_then(|l| u64::try_from(l).ok());
    let settled = leader.is_some();
    let connected = |sid: i64| peer.is_some_and(|p| p.connected.contains(&sid) || p.myid == sid);
    let reachable_voters = view
        .voters
        .iter()
        .filter(|v| i64::try_from(**v).is_ok_and(connected))
        .count();
    let n = u32::try_from(view.voters.len()).unwrap_or(u32::MAX);
    SidecarStatus {
        myid: peer.and_then(|p| u64::try_from(p.myid).ok()).unwrap_or(0),
        role: view.role,
        state,
        leader,
        // A Rust peer does not establish epochs (no Zab): a decision is all
        // there is, and the phase is "elected".
        leader_phase: settled.then_some(LeaderPhase::Elected),
        peer_epoch: peer.map(|p| p.peer_epoch),
        election_epoch: peer.map(|p| p.election_epoch),
        zxid: peer.map(|p| format_zxid(p.zxid)),
        serving: None,
        quorum: QuorumStatus {
            size: zk_ensemble::quorum::quorum_size(n),
            voters: view.voters.clone(),
            reachable: u32::try_from(reachable_voters).unwrap_or(u32::MAX),
            established: settled,
        },
        members: view
            .members
            .iter()
            .map(|(sid, host, role)| {
                let me = peer.is_some_and(|p| p.myid == *sid);
                MemberStatus {
                    myid: u64::try_from(*sid).unwrap_or(0),
                    host: host.clone(),
                    role: *role,
                    state: me.then_some(state),
                    leader: if me { leader } else { None },
                    peer_epoch: peer.filter(|_| me).map(|p| p.peer_epoch),
                    election_epoch: peer.filter(|_| me).map(|p| p.election_epoch),
                    reachable: connected(*sid),
                    last_reply_age_seconds: None,
                    error: None,
                }
            })
            .collect(),
        leader_since: peer
            .filter(|_| settled)
            .and_then(|p| p.leader_since)
            .map(|t| humantime::format_rfc3339_millis(t).to_string()),
        elections: peer.map_or(0, |p| p.elections),
        leader_changes: peer.map_or(0, |p| p.leader_changes),
        config_version: Some(format!("{:x}", view.config_version)),
        election: (!settled).then(|| ElectionStatus {
            since: view
                .looking_since
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            round: peer.map(|p| p.election_epoch),
            followers_believe: None,
        }),
        error: None,
    }
}

/// The HTTP side of `vote`.
#[derive(Debug)]
struct VoteHealth {
    view: Mutex<View>,
}

impl VoteHealth {
    fn with<T>(&self, f: impl FnOnce(&View) -> T) -> T {
        f(&self.view.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn update(&self, status: &PeerStatus, change: Change<'_>) {
        let mut view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        let was_settled = view.peer.as_ref().is_some_and(|p| p.leader.is_some());
        if matches!(change, Change::State) && status.state == ServerState::Looking && was_settled {
            view.looking_since = Some(SystemTime::now());
        }
        view.peer = Some(status.clone());
    }
}

impl Health for VoteHealth {
    fn status(&self) -> SidecarStatus {
        self.with(View::status)
    }

    /// The peer's loop runs while the process does; an election in
    /// progress is not a failure.
    fn liveness(&self) -> Verdict {
        Verdict::from_reasons(Vec::new())
    }

    /// Ready once the peer knows a leader (it follows, leads or observes).
    fn readiness(&self) -> Verdict {
        let status = self.status();
        let reasons = if status.state.is_settled() {
            Vec::new()
        } else {
            vec![format!(
                "the peer is {} (no leader decided yet)",
                status.state
            )]
        };
        Verdict::from_reasons(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(peer: Option<PeerStatus>) -> View {
        View {
            role: Role::Voter,
            members: vec![
                (1, "10.0.0.1".into(), Role::Voter),
                (2, "10.0.0.2".into(), Role::Voter),
                (3, "10.0.0.3".into(), Role::Voter),
            ],
            voters: vec![1, 2, 3],
            config_version: 0x1_0000_0000,
            peer,
            looking_since: None,
        }
    }

    fn peer(state: ServerState, leader: Option<i64>) -> PeerStatus {
        PeerStatus {
            myid: 2,
            voter: true,
            state,
            leader,
            peer_epoch: 1,
            election_epoch: 4,
            zxid: 0,
            elections: 2,
            leader_changes: 1,
            leader_since: Some(SystemTime::UNIX_EPOCH),
            connected: vec![3],
        }
    }

    #[test]
    fn a_follower_reports_its_leader_and_the_reachable_quorum() {
        let status = status_of(&view(Some(peer(ServerState::Following, Some(3)))));
        assert_eq!(
            (status.myid, status.state, status.leader),
            (2, MemberState::Following, Some(3))
        );
        assert_eq!(
            (status.peer_epoch, status.election_epoch),
            (Some(1), Some(4))
        );
        assert_eq!(status.quorum.size, 2);
        assert_eq!(status.quorum.reachable, 2, "itself and 3");
        assert!(status.quorum.established);
        assert_eq!(status.config_version.as_deref(), Some("100000000"));
        assert_eq!(
            status.leader_since.as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert!(status.election.is_none());
        let reachable: Vec<bool> = status.members.iter().map(|m| m.reachable).collect();
        assert_eq!(reachable, [false, true, true]);
        // The JSON field names the issue asks for.
        let json = serde_json::to_value(&status).unwrap();
        for key in ["myid", "state", "leader", "peerEpoch", "electionEpoch"] {
            assert!(json.get(key).is_some(), "{key} in {json}");
        }
        assert_eq!(json["state"], "FOLLOWING");
    }

    #[test]
    fn a_looking_peer_has_no_leader_and_is_not_ready() {
        let health = VoteHealth {
            view: Mutex::new(view(Some(peer(ServerState::Following, Some(3))))),
        };
        health.update(&peer(ServerState::Looking, None), Change::State);
        let status = health.status();
        assert_eq!((status.state, status.leader), (MemberState::Looking, None));
        assert!(status.leader_since.is_none());
        let election = status.election.unwrap();
        assert_eq!(election.round, Some(4));
        assert!(election.since.is_some(), "it saw the leader go");
        assert!(!health.readiness().ok);
        assert!(
            health.liveness().ok,
            "an election is not a liveness failure"
        );
    }

    #[test]
    fn negative_votes_are_refused_before_anything_starts() {
        let args = VoteArgs {
            config: PathBuf::from("/nonexistent/zoo.cfg"),
            myid_file: PathBuf::from("/nonexistent/myid"),
            listen: "127.0.0.1:0".parse().unwrap(),
            zxid: -1,
            peer_epoch: 0,
        };
        let error = prepare(&args).err().unwrap();
        assert_eq!(
            error.to_string(),
            "--zxid -1 is negative; a vote's zxid is 0 or more (§4.10)"
        );
        assert_eq!(error.exit_code(), 1);
    }
}
