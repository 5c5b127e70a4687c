//! Drives zk-election's sans-IO watcher with tokio: carries out its actions
//! (one task per election connection, built on `transport::dial`), feeds it
//! inputs (frames, closed connections, the local probe's verdict, time), and
//! turns its events into log lines and metrics.
//!
//! A connection task only moves bytes: it dials, writes the preamble, reads
//! frames (a bad length prefix ends the connection, as it would on a member)
//! and writes the payloads the watcher asks for. A broken connection is
//! reported the moment the read fails, which is how a member's death is
//! noticed at once. A member may have two connections open for a while
//! (the watcher redials beside an unanswered one), so links are kept per
//! connection. The watcher's closes are abortive (a reset), so a poll the
//! member never received is dropped, not delivered after we have gone.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use zk_election::config::QuorumStores;
use zk_election::sasl::Credentials;
use zk_election::transport::{Connector, Security, TransportError, dial};
use zk_election::watcher::{Action, Event, Input, LeaderEvent, LinkError, LocalServer};
use zk_election::wire::{ElectionAddress, Preamble};

use super::probe::Signals;
use super::report::Shared;
use crate::metrics::Metrics;

/// The driver wakes at least this often, so `/livez` can tell it runs.
const HEARTBEAT: Duration = Duration::from_secs(5);

struct Link {
    outbox: mpsc::UnboundedSender<Out>,
    task: JoinHandle<()>,
}

/// What a connection task is told to do.
enum Out {
    Frame(Vec<u8>),
    /// Close with a reset, dropping whatever the member has not received.
    Reset,
}

pub(crate) struct Driver {
    shared: Arc<Mutex<Shared>>,
    metrics: Arc<Metrics>,
    signals: Signals,
    local: watch::Receiver<Option<LocalServer>>,
    inputs: mpsc::UnboundedReceiver<Input>,
    input_tx: mpsc::UnboundedSender<Input>,
    links: HashMap<(i64, u64), Link>,
    preamble: Preamble,
    connect_timeout: Duration,
    /// What every dial speaks besides plain TCP.
    security: Arc<DialSecurity>,
}

/// What the watcher's dials speak besides plain TCP, as `run` found it.
#[derive(Debug, Clone)]
pub(crate) struct DialSecurity {
    /// The stores of a TLS quorum, read again for every dial (rotation).
    pub(crate) tls: Option<QuorumStores>,
    /// The learner's credentials when members require quorum SASL.
    pub(crate) sasl: Option<Credentials>,
}

impl DialSecurity {
    /// The dial's security now: a connector from the stores as they are.
    fn now(&self) -> Result<Security, TransportError> {
        Ok(Security {
            tls: match &self.tls {
                None => None,
                Some(stores) => Some(Connector::load(stores)?),
            },
            sasl: self.sasl.clone(),
        })
    }
}

impl Driver {
    pub(crate) fn new(
        shared: Arc<Mutex<Shared>>,
        metrics: Arc<Metrics>,
        signals: Signals,
        local: watch::Receiver<Option<LocalServer>>,
        security: DialSecurity,
    ) -> Driver {
        let (input_tx, inputs) = mpsc::unbounded_channel();
        let (preamble, connect_timeout) = {
            let shared = lock(&shared);
            let config = shared.watcher.config();
            (config.preamble.clone(), config.connect_timeout)
        };
        Driver {
            shared,
            metrics,
            signals,
            local,
            inputs,
            input_tx,
            links: HashMap::new(),
            preamble,
            connect_timeout,
            security: Arc::new(security),
        }
    }

    pub(crate) async fn run(mut self) {
        self.step(None);
        loop {
            let deadline = lock(&self.shared).watcher.next_deadline();
            let wake = deadline
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + HEARTBEAT)
                .min(tokio::time::Instant::now() + HEARTBEAT);
            let input = tokio::select! {
                Some(input) = self.inputs.recv() => Some(input),
                changed = self.local.changed() => match changed {
                    Ok(()) => (*self.local.borrow_and_update()).map(Input::Local),
                    Err(_) => None,
                },
                () = tokio::time::sleep_until(wake) => Some(Input::Tick),
            };
            self.step(input);
        }
    }

    /// Gives the watcher one input, then carries out what it asks.
    fn step(&mut self, input: Option<Input>) {
        let now = Instant::now();
        let (actions, events, leader_known) = {
            let mut shared = lock(&self.shared);
            if let Some(input) = input {
                shared.watcher.handle(input, now);
            }
            shared.driver_beat = now;
            let actions = shared.watcher.take_actions();
            let events = shared.watcher.take_events();
            (actions, events, shared.watcher.view(now).leader.is_some())
        };
        self.signals.fast.store(!leader_known, Ordering::Relaxed);
        for action in actions {
            self.act(action);
        }
        for event in events {
            self.report(event);
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Connect { sid, conn, to } => {
                let (outbox, queue) = mpsc::unbounded_channel();
                let dial = Dial {
                    sid,
                    conn,
                    to,
                    preamble: self.preamble.clone(),
                    timeout: self.connect_timeout,
                    security: self.security.clone(),
                };
                let task = tokio::spawn(connection(dial, self.input_tx.clone(), queue));
                self.metrics.connected();
                // Tasks whose connection already ended leave their entry
                // behind; drop those of this member now.
                self.links.retain(|_, link| !link.task.is_finished());
                self.links.insert((sid, conn), Link { outbox, task });
            }
            Action::Send { sid, conn, payload } => {
                if let Some(link) = self.links.get(&(sid, conn)) {
                    // A task that already ended has reported why; the
                    // watcher drops its pending poll then.
                    let _ = link.outbox.send(Out::Frame(payload));
                }
                self.metrics.poll_sent();
            }
            Action::Close { sid, conn } => {
                if let Some(link) = self.links.remove(&(sid, conn))
                    && link.outbox.send(Out::Reset).is_err()
                {
                    link.task.abort();
                }
            }
        }
    }

    /// Log lines for every state change, leader change and member loss.
    fn report(&self, event: Event) {
        match event {
            Event::Connected { sid } => tracing::debug!(myid = sid, "election connection up"),
            Event::PollSent { sid, bootstrap } => {
                tracing::trace!(myid = sid, bootstrap, "poll sent");
            }
            Event::Reply { sid, vote } => {
                self.metrics.reply_received();
                tracing::trace!(myid = sid, ?vote, "reply");
            }
            Event::PollError {
                sid,
                reason,
                detail,
            } => {
                self.metrics.poll_error(reason);
                tracing::debug!(myid = sid, reason, detail, "poll error");
            }
            Event::Reachable { sid } => tracing::info!(myid = sid, "member reachable"),
            Event::Unreachable { sid, reason } => {
                tracing::warn!(myid = sid, reason, "member lost");
            }
            Event::StateChanged { sid, from, to } => tracing::info!(
                myid = sid,
                from = from.map_or("unknown", |s| s.as_str()),
                to = to.as_str(),
                "member state changed"
            ),
            Event::Leader(LeaderEvent::Lost { leader, peer_epoch }) => {
                self.signals.probe_now.notify_one();
                tracing::warn!(
                    leader,
                    peer_epoch,
                    "leader lost: no quorum-backed leader is known"
                );
            }
            Event::Leader(LeaderEvent::Known {
                leader,
                peer_epoch,
                phase,
                previous,
                election,
                election_duration,
            }) => {
                if let Some(duration) = election_duration {
                    self.metrics.election_finished(duration.as_secs_f64());
                }
                tracing::info!(
                    leader,
                    peer_epoch,
                    phase = ?phase,
                    previous,
                    election,
                    election_ms = election_duration.map(|d| d.as_millis() as u64),
                    "leader known"
                );
            }
            Event::Leader(LeaderEvent::PhaseChanged {
                leader,
                peer_epoch,
                phase,
            }) => tracing::info!(leader, peer_epoch, phase = ?phase, "leader phase changed"),
            Event::ConfigAdopted {
                version,
                voters,
                observers,
            } => tracing::info!(
                version = %format!("{version:x}"),
                ?voters,
                ?observers,
                "watching the members of a committed config"
            ),
            Event::Stopped(error) => {
                tracing::error!(error = %error, "the election watcher stopped");
            }
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a connection task dials.
struct Dial {
    sid: i64,
    conn: u64,
    to: ElectionAddress,
    preamble: Preamble,
    timeout: Duration,
    security: Arc<DialSecurity>,
}

impl Dial {
    /// Connects (TLS: with the stores as they are now), shakes hands and
    /// sends the preamble, within the timeout.
    async fn dial(&self) -> Result<zk_election::transport::Connection, TransportError> {
        let security = self.security.now()?;
        dial(&self.to, &self.preamble, self.timeout, &security).await
    }
}

/// One election connection: dial, then move frames both ways until either
/// side ends it.
async fn connection(
    dial: Dial,
    inputs: mpsc::UnboundedSender<Input>,
    mut outbox: mpsc::UnboundedReceiver<Out>,
) {
    let Dial { sid, conn, .. } = dial;
    let link_error = |e: TransportError| LinkError::new(e.reason(), e.to_string());
    let dialled = tokio::select! {
        dialled = dial.dial() => dialled,
        // Nothing is sent before `Connected`, so anything now is a close:
        // the dial is abandoned.
        _ = outbox.recv() => return,
    };
    let connection = match dialled {
        Ok(connection) => connection,
        Err(e) => {
            let _ = inputs.send(Input::ConnectFailed {
                sid,
                conn,
                error: link_error(e),
            });
            return;
        }
    };
    let _ = inputs.send(Input::Connected { sid, conn });
    let (mut reader, mut writer) = connection.split();
    let error = loop {
        tokio::select! {
            frame = reader.recv() => match frame {
                Ok(payload) => {
                    if inputs.send(Input::Received { sid, conn, payload }).is_err() {
                        return;
                    }
                }
                Err(e) => break link_error(e),
            },
            out = outbox.recv() => match out {
                Some(Out::Frame(payload)) => {
                    if let Err(e) = writer.send(&payload).await {
                        break link_error(e);
                    }
                }
                Some(Out::Reset) | None => {
                    writer.reset();
                    return;
                }
            },
        }
    };
    let _ = inputs.send(Input::Closed { sid, conn, error });
}
