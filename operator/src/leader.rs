//! Leader election over a `coordination.k8s.io/v1` Lease, so that two
//! operator replicas can run and only one reconciles.
//!
//! The algorithm is client-go's: read the Lease; a holder other than us
//! keeps it while its record keeps changing, and loses it once the record
//! has not changed for the lease duration *as measured by our own monotonic
//! clock* (no trust in other machines' clocks); every write is a replace
//! that carries the `resourceVersion` we read, so of two replicas racing for
//! the same Lease exactly one write succeeds. A leader that cannot renew for
//! the renew deadline (shorter than the lease duration) stops leading before
//! anyone else may start.
//!
//! Why not a crate: kube-lease-manager 0.13.1 supports kube 5, but it takes
//! over an expired Lease with an unconditional release followed by an
//! apply, which can erase a renewal that lands in between and leave two
//! replicas leading until their caches expire.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

/// Timing, as client-go's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a silent holder keeps the Lease.
    pub lease_duration: Duration,
    /// How long a leader keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// How often every replica tries.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What a replica should do with the Lease it just read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or the holder went silent: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it and is alive.
    Follow,
}

/// The pure rule: `unchanged_for` is how long the Lease record has looked
/// the same to us.
pub fn decide(
    spec: Option<&LeaseSpec>,
    identity: &str,
    unchanged_for: Duration,
    lease_duration: Duration,
) -> Decision {
    let holder = spec
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty());
    match holder {
        Some(holder) if holder == identity => Decision::Renew,
        Some(_) if unchanged_for < lease_duration => Decision::Follow,
        _ => Decision::Acquire,
    }
}

/// The parts of a Lease that change when its holder renews it: holder,
/// renew time, transitions.
type Record = Option<(Option<String>, Option<MicroTime>, Option<i32>)>;

fn record(spec: Option<&LeaseSpec>) -> Record {
    spec.map(|s| {
        (
            s.holder_identity.clone(),
            s.renew_time.clone(),
            s.lease_transitions,
        )
    })
}

/// `lease` renewed now by `identity`, taken over first when `acquire`.
fn renewed(mut lease: Lease, identity: &str, acquire: bool, duration_seconds: i32) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let wall_now = MicroTime(Timestamp::now());
    if acquire {
        spec.holder_identity = Some(identity.to_owned());
        spec.acquire_time = Some(wall_now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
    }
    spec.renew_time = Some(wall_now);
    spec.lease_duration_seconds = Some(duration_seconds);
    lease
}

/// One replica's view of the Lease.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// The last record seen, and when it was first seen like that.
    observed: Option<(Record, Instant)>,
    /// The Lease as this replica last wrote it while holding it: a renewal
    /// writes over it without reading first (the `resourceVersion` it
    /// carries makes the API server refuse it if anyone wrote since).
    held: Option<Lease>,
}

impl LeaseLock {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> LeaseLock {
        LeaseLock {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            observed: None,
            held: None,
        }
    }

    /// One round: creates, takes over or renews the Lease when this replica
    /// may. `Ok(true)` means this replica holds it now.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        if let Some(held) = self.held.take() {
            let now = Instant::now();
            if self
                .replace(
                    renewed(held, &self.identity, false, self.duration_seconds()),
                    now,
                )
                .await?
            {
                return Ok(true);
            }
            // Someone wrote it since: read it and decide again.
        }
        let now = Instant::now();
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            return self.create().await;
        };
        let seen = record(lease.spec.as_ref());
        let since = match &self.observed {
            Some((record, since)) if *record == seen => *since,
            _ => now,
        };
        self.observed = Some((seen, since));
        let decision = decide(
            lease.spec.as_ref(),
            &self.identity,
            now.duration_since(since),
            self.timing.lease_duration,
        );
        if decision == Decision::Follow {
            return Ok(false);
        }
        let acquire = decision == Decision::Acquire;
        let next = renewed(lease, &self.identity, acquire, self.duration_seconds());
        self.replace(next, now).await
    }

    async fn create(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_duration_seconds: Some(self.duration_seconds()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                self.observed = Some((record(created.spec.as_ref()), Instant::now()));
                self.held = Some(created);
                Ok(true)
            }
            // Another replica created it first.
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes `next`, which carries the `resourceVersion` it was read with:
    /// the API server refuses it if anyone wrote in between.
    async fn replace(&mut self, next: Lease, now: Instant) -> Result<bool, kube::Error> {
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(written) => {
                self.observed = Some((record(written.spec.as_ref()), now));
                self.held = Some(written);
                Ok(true)
            }
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up, so the other replica takes over at once instead
    /// of after the lease duration. Does nothing if someone else holds it.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        self.held = None;
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// Tries every retry period and publishes whether this replica leads,
    /// until `tx` has no receivers left or `shutdown` resolves; then
    /// releases the Lease if it holds it.
    pub async fn run(mut self, tx: watch::Sender<bool>, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut last_renewal: Option<Instant> = None;
        loop {
            // An attempt is bounded by the retry period, so that a request
            // the API server never answers cannot keep this replica leading
            // past its renew deadline.
            let attempt =
                tokio::time::timeout(self.timing.retry_period, self.try_acquire_or_renew()).await;
            let leading = match attempt {
                Ok(Ok(true)) => {
                    last_renewal = Some(Instant::now());
                    true
                }
                Ok(Ok(false)) => false,
                Ok(Err(e)) => {
                    warn!(lease = %self.name, error = %e, "cannot read or write the leader Lease");
                    still_leading(last_renewal, Instant::now(), self.timing.renew_deadline)
                }
                Err(_) => {
                    warn!(lease = %self.name, timeout = ?self.timing.retry_period, "the API server did not answer about the leader Lease in time");
                    still_leading(last_renewal, Instant::now(), self.timing.renew_deadline)
                }
            };
            if !leading {
                last_renewal = None;
            }
            let changed = tx.send_if_modified(|was| std::mem::replace(was, leading) != leading);
            if changed {
                info!(identity = %self.identity, leading, "leadership changed");
            }
            tokio::select! {
                () = tx.closed() => break,
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.timing.retry_period) => {}
            }
        }
        let _ = tx.send(false);
        if let Err(e) = self.release().await {
            warn!(lease = %self.name, error = %e, "cannot release the leader Lease");
        }
    }
}

/// Whether this replica may act on clusters: always when it runs without a
/// Lease, else only while it holds the Lease. Every reconcile runs under it
/// and stops at its next await the moment the mandate is lost, so a replica
/// that lost the Lease never runs a `reconfig` or deletes a pod after
/// another replica may have taken over.
#[derive(Debug, Clone)]
pub struct Mandate(Option<watch::Receiver<bool>>);

impl Mandate {
    /// A replica that runs alone, without a Lease.
    pub fn always() -> Mandate {
        Mandate(None)
    }

    /// A replica that acts while `leading` says it holds the Lease.
    pub fn while_leading(leading: watch::Receiver<bool>) -> Mandate {
        Mandate(Some(leading))
    }

    /// Whether this replica may act now.
    pub fn held(&self) -> bool {
        self.0.as_ref().is_none_or(|leading| *leading.borrow())
    }

    /// Resolves once this replica may no longer act (at once if it may not
    /// now); never without a Lease. An elector that ended leads nothing.
    pub async fn lost(&self) {
        match &self.0 {
            None => std::future::pending().await,
            Some(leading) => {
                let mut leading = leading.clone();
                let _ = leading.wait_for(|leading| !*leading).await;
            }
        }
    }
}

/// A leader whose renewals fail keeps leading only within the renew
/// deadline of its last success.
pub fn still_leading(
    last_renewal: Option<Instant>,
    now: Instant,
    renew_deadline: Duration,
) -> bool {
    last_renewal.is_some_and(|t| now.duration_since(t) < renew_deadline)
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// The identity of this replica: its pod name, else the host name.
pub fn identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("zk-operator-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            ..Default::default()
        }
    }

    const DURATION: Duration = Duration::from_secs(15);

    #[test]
    fn a_free_or_missing_lease_is_taken() {
        assert_eq!(
            decide(None, "a", Duration::ZERO, DURATION),
            Decision::Acquire
        );
        let released = LeaseSpec::default();
        assert_eq!(
            decide(Some(&released), "a", Duration::ZERO, DURATION),
            Decision::Acquire
        );
        let empty = held_by("");
        assert_eq!(
            decide(Some(&empty), "a", Duration::ZERO, DURATION),
            Decision::Acquire
        );
    }

    #[test]
    fn a_live_holder_keeps_it_and_a_silent_one_loses_it() {
        let b = held_by("b");
        assert_eq!(
            decide(Some(&b), "a", Duration::from_secs(14), DURATION),
            Decision::Follow
        );
        assert_eq!(
            decide(Some(&b), "a", Duration::from_secs(15), DURATION),
            Decision::Acquire
        );
    }

    #[test]
    fn the_holder_renews() {
        let a = held_by("a");
        assert_eq!(
            decide(Some(&a), "a", Duration::from_secs(99), DURATION),
            Decision::Renew
        );
    }

    #[test]
    fn a_leader_steps_down_before_anyone_may_take_over() {
        let timing = Timing::default();
        assert!(timing.renew_deadline < timing.lease_duration);
        let t0 = Instant::now();
        assert!(still_leading(
            Some(t0),
            t0 + Duration::from_secs(9),
            timing.renew_deadline
        ));
        assert!(!still_leading(
            Some(t0),
            t0 + Duration::from_secs(10),
            timing.renew_deadline
        ));
        assert!(!still_leading(None, t0, timing.renew_deadline));
    }

    #[tokio::test]
    async fn a_mandate_is_lost_when_leading_ends_or_the_elector_goes() {
        let alone = Mandate::always();
        assert!(alone.held());
        let never = tokio::time::timeout(Duration::from_millis(50), alone.lost()).await;
        assert!(never.is_err(), "a replica without a Lease never loses it");

        let (tx, rx) = watch::channel(true);
        let mandate = Mandate::while_leading(rx);
        assert!(mandate.held());
        let still = tokio::time::timeout(Duration::from_millis(50), mandate.lost()).await;
        assert!(still.is_err(), "held while leading");
        tx.send(false).unwrap();
        assert!(!mandate.held());
        mandate.lost().await;

        let (tx, rx) = watch::channel(true);
        let mandate = Mandate::while_leading(rx);
        drop(tx);
        mandate.lost().await;
    }
}
