//! The local probe: `srvr`, `ruok` and `mntr` on the local server's client
//! port, each with a short time-out. Cheap reads that change nothing.
//!
//! Every second while all is well; every 100 ms while an election runs or
//! the local server does not serve, because the moment it serves again is
//! when the watcher's saved polls are worth sending (see the watcher's
//! hold). The client port is not the election port: probing it more often
//! costs the election nothing (D11 is about the election port's queue).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use zk_election::watcher::LocalServer;
use zk_process::FourLetterError;
use zk_process::fourlw;

use super::report::{Shared, SrvrOutcome};
use crate::metrics::Metrics;

/// A four-letter word that takes longer than this has failed.
const TIMEOUT: Duration = Duration::from_millis(500);
/// The probe interval while an election runs or the local server does not
/// serve.
const FAST_INTERVAL: Duration = Duration::from_millis(100);
/// `mntr` is asked at most this often (it only feeds metrics).
const MNTR_EVERY: Duration = Duration::from_secs(5);

/// How the watcher's driver steers the probe.
#[derive(Debug, Clone, Default)]
pub(crate) struct Signals {
    /// Probe now (the watcher just lost the leader).
    pub(crate) probe_now: Arc<Notify>,
    /// Probe fast (no quorum-backed leader is known).
    pub(crate) fast: Arc<AtomicBool>,
}

pub(crate) struct Probe {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) interval: Duration,
    pub(crate) shared: Arc<Mutex<Shared>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) signals: Signals,
    /// The latest verdict, for the watcher's driver.
    pub(crate) local: watch::Sender<Option<LocalServer>>,
}

fn outcome(result: Result<zk_process::Srvr, FourLetterError>) -> SrvrOutcome {
    match result {
        Ok(srvr) => SrvrOutcome::Serving(srvr),
        Err(FourLetterError::NotServing) => SrvrOutcome::NotServing,
        Err(e) => SrvrOutcome::Failed(e.to_string()),
    }
}

impl Probe {
    pub(crate) async fn run(self) {
        let mut last_ruok: Option<Instant> = None;
        let mut last_mntr: Option<Instant> = None;
        let mut last_local: Option<LocalServer> = None;
        loop {
            let srvr = outcome(fourlw::srvr(self.addr, TIMEOUT).await);
            let now = Instant::now();
            let ruok = if last_ruok.is_none_or(|at| now - at >= self.interval) {
                last_ruok = Some(now);
                Some(fourlw::ruok(self.addr, TIMEOUT).await)
            } else {
                None
            };
            let serving = matches!(srvr, SrvrOutcome::Serving(_));
            let mntr = if serving && last_mntr.is_none_or(|at| now - at >= MNTR_EVERY) {
                last_mntr = Some(now);
                Some(fourlw::mntr(self.addr, TIMEOUT).await)
            } else {
                None
            };
            let local = srvr.local_server();
            self.record(&srvr, ruok, mntr);
            if last_local != Some(local) {
                match &srvr {
                    SrvrOutcome::Serving(s) => {
                        tracing::info!(mode = ?s.mode, zxid = %zk_ensemble::status::format_zxid(s.zxid), "the local server serves");
                    }
                    SrvrOutcome::NotServing => {
                        tracing::info!(
                            "the local server answers but does not serve (an election or a sync is running)"
                        );
                    }
                    SrvrOutcome::Failed(e) => {
                        tracing::warn!(error = %e, "the local server does not answer");
                    }
                }
                last_local = Some(local);
            }
            self.local.send_replace(Some(local));
            let fast =
                self.signals.fast.load(Ordering::Relaxed) || local == LocalServer::NotServing;
            let wait = if fast {
                FAST_INTERVAL.min(self.interval)
            } else {
                self.interval
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.signals.probe_now.notified() => {}
            }
        }
    }

    fn record(
        &self,
        srvr: &SrvrOutcome,
        ruok: Option<Result<(), FourLetterError>>,
        mntr: Option<Result<std::collections::BTreeMap<String, String>, FourLetterError>>,
    ) {
        let now = Instant::now();
        if let SrvrOutcome::Failed(_) | SrvrOutcome::NotServing = srvr {
            self.metrics.probe_failed("srvr");
        }
        match &ruok {
            Some(Ok(())) => self.metrics.zookeeper_up(true),
            Some(Err(_)) => {
                self.metrics.zookeeper_up(false);
                self.metrics.probe_failed("ruok");
            }
            None => {}
        }
        match &mntr {
            Some(Ok(numbers)) => self.metrics.observe_mntr(numbers),
            Some(Err(_)) => self.metrics.probe_failed("mntr"),
            None => {}
        }
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.local.srvr = Some((now, srvr.clone()));
        match ruok {
            Some(Ok(())) => {
                shared.local.imok_at = Some(now);
                shared.local.ruok_error = None;
            }
            Some(Err(e)) => shared.local.ruok_error = Some(e.to_string()),
            None => {}
        }
        shared.probe_beat = now;
    }
}
