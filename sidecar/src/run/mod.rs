//! `zk-sidecar run`: the sidecar beside a real ZooKeeper member. It watches
//! the ensemble's election as a non-voting participant (spec §5, through
//! zk-election's sans-IO watcher), probes its own server with four-letter
//! words, and serves `/livez`, `/readyz`, `/v1/status` and `/metrics`.
//!
//! This module owns the start-up checks (what `run` refuses to do, and why)
//! and wires the three loops together: [`driver`] (election connections),
//! [`probe`] (the local server) and the HTTP server, which reads what
//! [`report`] builds from both.

mod driver;
mod probe;
mod report;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zk_election::config::{ElectionSecurity, QuorumConfig, election_security};
use zk_election::transport::Connector;
use zk_election::watcher::{PollSlot, Watcher, WatcherConfig};
use zk_election::wire::ElectionAddress;
use zk_ensemble::zoocfg::host_port;
use zk_ensemble::{Myid, Role, ZooCfg};

use crate::config::{self, LoadError};
use crate::http;
use crate::metrics::Metrics;

pub(crate) use report::Shared;

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The member's zoo.cfg (a dynamicConfigFile it names is followed).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The member's myid file.
    #[arg(long, value_name = "FILE")]
    myid_file: PathBuf,
    /// Where to serve /livez, /readyz, /v1/status and /metrics. `[::]`
    /// takes IPv4 and IPv6 (IPv4 alone where the host has no IPv6).
    #[arg(long, value_name = "ADDR", default_value = "[::]:8081")]
    listen: SocketAddr,
    /// The IP address the watcher advertises in its preamble (the pod's IP;
    /// never dialled). Default: the local member's election host when it is
    /// an IP address, else none, and the legacy 8-byte preamble is sent.
    #[arg(long, value_name = "IP", env = "POD_IP")]
    advertise: Option<IpAddr>,
    /// The servers' JAAS file (`java.security.auth.login.config`), read for
    /// the learner's credentials when the members require quorum SASL
    /// (`quorum.auth.serverRequireSasl=true`).
    #[arg(long, value_name = "FILE", env = "ZOOKUBE_JAAS_CONFIG")]
    jaas_config: Option<PathBuf>,
    /// Time between two polls of one member (at least 250 ms).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// Time between two probes of the local server while all is well (it
    /// is probed every 100 ms while an election runs).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    probe_interval: Duration,
    /// How long after start /livez passes even if the local server does not
    /// answer yet.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    startup_grace: Duration,
    /// /livez fails when the local server has not answered `ruok` for this
    /// long (after the start-up grace).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    liveness_window: Duration,
}

/// Why `run` will not start: each names the fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{0}")]
    Myid(String),
    #[error(
        "myid {myid} is not in the server list of {} (listed: {listed}); this sidecar has no member to run beside. Fix the myid file or the config",
        config.display()
    )]
    NotListed {
        config: PathBuf,
        myid: Myid,
        listed: String,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("quorum TLS: {0}")]
    Tls(#[source] zk_election::transport::TlsError),
    #[error("cannot watch the ensemble: {0}")]
    Watcher(#[from] zk_election::watcher::WatcherError),
    #[error("the local server's client address {0}: {1}")]
    ClientAddress(String, String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl RunError {
    fn exit_code(&self) -> u8 {
        match self {
            RunError::Load(e) => e.exit_code(),
            RunError::Listen { .. } => 2,
            _ => 1,
        }
    }
}

/// Where the local server takes client connections: its server line's
/// client host when it names one, else loopback (the sidecar shares the
/// pod's network namespace).
pub(crate) fn local_client(cfg: &ZooCfg, myid: Myid) -> Option<(String, u16)> {
    let server = cfg.server(i64::from(myid))?;
    let port = server
        .client
        .as_ref()
        .map(|c| c.port)
        .or_else(|| cfg.static_client_port())?;
    let host = server
        .client
        .as_ref()
        .and_then(|c| c.host.clone())
        .or_else(|| cfg.get("clientPortAddress").map(str::to_owned))
        .filter(|h| !matches!(h.as_str(), "0.0.0.0" | "::" | ""))
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    Some((host, port))
}

/// The address the preamble advertises: the flag (the pod IP), else the
/// local member's election host when it is an IP literal (loopback
/// ensembles), else none (the legacy preamble).
pub(crate) fn advertised(
    flag: Option<IpAddr>,
    cfg: &ZooCfg,
    myid: Myid,
) -> Option<ElectionAddress> {
    let server = cfg.server(i64::from(myid))?;
    let address = server.addresses.first()?;
    let ip = flag.or_else(|| address.host.parse().ok())?;
    Some(ElectionAddress::new(ip.to_string(), address.election_port))
}

/// Everything `run` needs, checked.
struct Plan {
    myid: Myid,
    role: Role,
    watcher: Watcher,
    local_client: SocketAddr,
    /// TLS stores and SASL credentials, when the quorum wants them.
    security: driver::DialSecurity,
}

async fn prepare(args: &RunArgs, now: Instant) -> Result<Plan, RunError> {
    let cfg = config::load(&args.config)?;
    let myid = Myid::parse_file(&config::read(&args.myid_file)?)
        .map_err(|e| RunError::Myid(format!("{}: {e}", args.myid_file.display())))?;
    let Some(server) = cfg.server(i64::from(myid)) else {
        return Err(RunError::NotListed {
            config: args.config.clone(),
            myid,
            listed: cfg
                .server_ids()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let role = server.role;
    let ElectionSecurity { tls, sasl } = election_security(&cfg).map_err(RunError::Unsupported)?;
    if let Some(stores) = &tls {
        // Refuse bad stores at the start, by name; later dials read them
        // again, so a rotated store is used from then on.
        Connector::load(stores).map_err(RunError::Tls)?;
    }
    let sasl = match (sasl, &args.jaas_config) {
        (None, _) => None,
        (Some(_), None) => return Err(RunError::Unsupported(
            "the members require quorum SASL (quorum.auth.serverRequireSasl=true): give zk-sidecar the servers' JAAS file with --jaas-config FILE (or ZOOKUBE_JAAS_CONFIG), whose learner section it logs in with".to_owned(),
        )),
        (Some(sasl), Some(file)) => Some(config::learner_credentials(file, &sasl.login_context)?),
    };
    let mut config = WatcherConfig::new(myid, advertised(args.advertise, &cfg, myid))
        .with_poll_interval(args.poll_interval);
    config.local_probe = true;
    config.slot = Some(PollSlot::on_wall_clock(
        myid,
        config.poll_interval,
        now,
        std::time::SystemTime::now(),
    ));
    let initial = QuorumConfig::from_zoo_cfg(&cfg, config::config_version(&cfg))
        .map_err(|e| RunError::Unsupported(format!("{}: {e}", args.config.display())))?;
    let watcher = Watcher::new(config, &initial, now)?;
    let (host, port) = local_client(&cfg, myid).ok_or_else(|| {
        RunError::ClientAddress(
            format!("server.{myid}"),
            "the config gives it no client port; add ;2181 to its line or set clientPort".into(),
        )
    })?;
    let local_client = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| RunError::ClientAddress(host_port(&host, port), e.to_string()))?
        .next()
        .ok_or_else(|| RunError::ClientAddress(host_port(&host, port), "no address".into()))?;
    Ok(Plan {
        myid,
        role,
        watcher,
        local_client,
        security: driver::DialSecurity { tls, sasl },
    })
}

pub(crate) fn run(args: &RunArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn serve(args: &RunArgs) -> Result<(), RunError> {
    let started = Instant::now();
    let plan = prepare(args, started).await?;
    let listening = zk_process::listen(args.listen).map_err(|source| RunError::Listen {
        addr: args.listen,
        source,
    })?;
    let listener = listening.listener;
    let watcher_config = plan.watcher.config().clone();
    tracing::info!(
        myid = plan.myid.get(),
        role = %plan.role,
        watcher_sid = watcher_config.sid,
        preamble = ?watcher_config.preamble,
        poll_interval_ms = watcher_config.poll_interval.as_millis() as u64,
        local_client = %plan.local_client,
        quorum_tls = plan.security.tls.is_some(),
        quorum_sasl = plan.security.sasl.is_some(),
        listen = %listening.addr,
        "zk-sidecar run started"
    );
    let shared = Arc::new(Mutex::new(Shared::new(
        plan.myid,
        plan.role,
        plan.watcher,
        report::Liveness {
            started,
            startup_grace: args.startup_grace,
            window: args.liveness_window,
        },
    )));
    let metrics = Arc::new(Metrics::new());
    let signals = probe::Signals::default();
    let (local_tx, local_rx) = tokio::sync::watch::channel(None);
    let probe = probe::Probe {
        addr: plan.local_client,
        interval: args.probe_interval,
        shared: shared.clone(),
        metrics: metrics.clone(),
        signals: signals.clone(),
        local: local_tx,
    };
    let driver = driver::Driver::new(
        shared.clone(),
        metrics.clone(),
        signals,
        local_rx,
        plan.security.clone(),
    );
    let health: Arc<dyn http::Health> = Arc::new(report::RunHealth(shared));
    let router = http::router(health, metrics);
    let shutdown = http::shutdown_signal();
    tokio::select! {
        () = driver.run() => {}
        () = probe.run() => {}
        served = http::serve(listener, router, shutdown) => {
            if let Err(e) = served {
                tracing::error!(error = %e, "the HTTP server failed");
            }
        }
    }
    tracing::info!("zk-sidecar run stopping");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> ZooCfg {
        ZooCfg::parse(&format!(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\n{extra}\nserver.1=10.0.0.1:2888:3888:participant;2181\nserver.2=zk-1.zk-headless:2888:3888;10.0.0.2:2182\nserver.3=10.0.0.3:2888:3889\n"
        ))
        .unwrap()
    }

    fn id(n: i64) -> Myid {
        Myid::new(n).unwrap()
    }

    #[test]
    fn the_local_client_address_is_loopback_unless_the_line_names_a_host() {
        let c = cfg("clientPort=2181");
        assert_eq!(local_client(&c, id(1)), Some(("127.0.0.1".into(), 2181)));
        assert_eq!(local_client(&c, id(2)), Some(("10.0.0.2".into(), 2182)));
        assert_eq!(local_client(&c, id(3)), Some(("127.0.0.1".into(), 2181)));
        assert_eq!(local_client(&cfg(""), id(3)), None);
        assert_eq!(local_client(&c, id(9)), None);
        let bound = cfg("clientPort=2181\nclientPortAddress=10.9.9.9");
        assert_eq!(local_client(&bound, id(3)), Some(("10.9.9.9".into(), 2181)));
        let v6 = ZooCfg::parse(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\nserver.1=[fd00::1]:2888:3888:participant;[fd00::1]:2181\nserver.2=[fd00::2]:2888:3888:participant;[::]:2181\n",
        )
        .unwrap();
        assert_eq!(local_client(&v6, id(1)), Some(("fd00::1".into(), 2181)));
        assert_eq!(
            local_client(&v6, id(2)),
            Some(("127.0.0.1".into(), 2181)),
            "every address: loopback"
        );
        assert_eq!(host_port("fd00::1", 2181), "[fd00::1]:2181");
    }

    #[test]
    fn the_preamble_advertises_an_ip_literal_or_nothing() {
        let c = cfg("");
        let pod_ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            advertised(Some(pod_ip), &c, id(2)),
            Some(ElectionAddress::new("10.1.2.3", 3888))
        );
        assert_eq!(
            advertised(None, &c, id(3)),
            Some(ElectionAddress::new("10.0.0.3", 3889))
        );
        // A host name is never advertised: the legacy preamble is used.
        assert_eq!(advertised(None, &c, id(2)), None);
    }
}
