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
/// How long a serving verdict stands while `srvr` is only late (a time-out,
/// not a refusal or a "not serving"). A JVM paused by a collection, or a
/// node whose CPU is taken, is slow, not down: readiness that fell on one
/// late answer took every member of a three-member ensemble out of its
/// Service at once on a busy two-core node, and clients lost their
/// connections for nothing.
const SLOW_GRACE: Duration = Duration::from_secs(3);

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

/// The verdict to keep instead of a late answer: the last serving one
/// (with when it was seen), while it is younger than [`SLOW_GRACE`].
fn held(
    late: bool,
    last_serving: Option<&(Instant, SrvrOutcome)>,
    now: Instant,
) -> Option<(Instant, SrvrOutcome)> {
    last_serving
        .filter(|(at, _)| late && now.saturating_duration_since(*at) < SLOW_GRACE)
        .cloned()
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
        let mut last_serving: Option<(Instant, SrvrOutcome)> = None;
        loop {
            let asked = fourlw::srvr(self.addr, TIMEOUT).await;
            let now = Instant::now();
            let late = matches!(asked, Err(FourLetterError::Timeout { .. }));
            let fresh = outcome(asked);
            let failed = !matches!(fresh, SrvrOutcome::Serving(_));
            let (at, srvr) = match held(late, last_serving.as_ref(), now) {
                Some(kept) => {
                    tracing::debug!(?fresh, "`srvr` was late: the serving verdict stands");
                    kept
                }
                None => {
                    last_serving = (!failed).then(|| (now, fresh.clone()));
                    (now, fresh)
                }
            };
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
            self.record(at, &srvr, failed, ruok, mntr);
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

    /// Records the verdict `srvr`, seen at `at`; `failed` counts a `srvr`
    /// that failed now even when an earlier verdict stands.
    fn record(
        &self,
        at: Instant,
        srvr: &SrvrOutcome,
        failed: bool,
        ruok: Option<Result<(), FourLetterError>>,
        mntr: Option<Result<std::collections::BTreeMap<String, String>, FourLetterError>>,
    ) {
        let now = Instant::now();
        if failed {
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
        shared.local.srvr = Some((at, srvr.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_answer_keeps_a_recent_serving_verdict_and_nothing_else_does() {
        let t0 = Instant::now();
        // `held` looks only at the time; the outcome stands in for a
        // serving one.
        let serving = (t0, SrvrOutcome::Failed("stand-in".into()));
        let cases = [
            (
                "late, serving seen 1 s ago",
                true,
                Some(&serving),
                t0 + Duration::from_secs(1),
                true,
            ),
            (
                "late, serving seen 3 s ago",
                true,
                Some(&serving),
                t0 + SLOW_GRACE,
                false,
            ),
            ("late, never serving", true, None, t0, false),
            (
                "refused or not serving",
                false,
                Some(&serving),
                t0 + Duration::from_millis(10),
                false,
            ),
        ];
        for (case, late, last, now, kept) in cases {
            assert_eq!(held(late, last, now).is_some(), kept, "{case}");
        }
        assert_eq!(
            held(true, Some(&serving), t0).map(|(at, _)| at),
            Some(t0),
            "when it was seen"
        );
    }
}
