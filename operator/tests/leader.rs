//! Leader election against the in-memory API server: two operator replicas
//! share one Lease, and at most one of them leads.

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use support::FakeApi;
use tokio::sync::watch;
use zk_operator::leader::{LeaseLock, Timing};

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/zookube-system/leases/zk-operator";

fn timing() -> Timing {
    Timing {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    }
}

fn lock(client: &kube::Client, identity: &str) -> LeaseLock {
    LeaseLock::new(
        client.clone(),
        "zookube-system",
        "zk-operator",
        identity,
        timing(),
    )
}

fn lease(fake: &FakeApi) -> Lease {
    serde_json::from_value(fake.get(LEASE).unwrap()).unwrap()
}

fn holder(fake: &FakeApi) -> Option<String> {
    lease(fake).spec.unwrap().holder_identity
}

#[tokio::test(start_paused = true)]
async fn the_first_replica_creates_the_lease_and_the_second_follows() {
    let (fake, client) = FakeApi::start();
    let (mut a, mut b) = (lock(&client, "a"), lock(&client, "b"));
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    assert_eq!(holder(&fake).as_deref(), Some("a"));
    let spec = lease(&fake).spec.unwrap();
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert_eq!(spec.lease_transitions, Some(0));
}

#[tokio::test(start_paused = true)]
async fn a_renewing_holder_keeps_the_lease() {
    let (fake, client) = FakeApi::start();
    let (mut a, mut b) = (lock(&client, "a"), lock(&client, "b"));
    assert!(a.try_acquire_or_renew().await.unwrap());
    for _ in 0..10 {
        assert!(!b.try_acquire_or_renew().await.unwrap());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(a.try_acquire_or_renew().await.unwrap(), "renewal");
    }
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "50 s later, still a's"
    );
    assert_eq!(holder(&fake).as_deref(), Some("a"));
}

#[tokio::test(start_paused = true)]
async fn a_holder_renews_with_one_write_and_no_read() {
    let (fake, client) = FakeApi::start();
    let mut a = lock(&client, "a");
    assert!(a.try_acquire_or_renew().await.unwrap());
    fake.clear_log();
    for _ in 0..10 {
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(a.try_acquire_or_renew().await.unwrap(), "renewal");
    }
    let requests: Vec<_> = fake
        .log()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(requests, vec![format!("PUT {LEASE}"); 10]);
    let spec = lease(&fake).spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_transitions, Some(0));
}

#[tokio::test(start_paused = true)]
async fn a_silent_holder_loses_the_lease_after_its_duration() {
    let (fake, client) = FakeApi::start();
    let (mut a, mut b) = (lock(&client, "a"), lock(&client, "b"));
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    tokio::time::advance(Duration::from_secs(14)).await;
    assert!(!b.try_acquire_or_renew().await.unwrap(), "not yet");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(b.try_acquire_or_renew().await.unwrap(), "15 s of silence");
    assert_eq!(holder(&fake).as_deref(), Some("b"));
    assert_eq!(lease(&fake).spec.unwrap().lease_transitions, Some(1));
    // The old holder wakes up and finds b alive.
    assert!(!a.try_acquire_or_renew().await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn of_two_replicas_racing_for_a_lease_only_one_wins() {
    let (fake, client) = FakeApi::start();
    let (mut a, mut b) = (lock(&client, "a"), lock(&client, "b"));
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    tokio::time::advance(Duration::from_secs(20)).await;
    // a renews between b's read and b's write: b's write carries a stale
    // resourceVersion and is refused.
    fake.bump_after_next_get(LEASE);
    assert!(!b.try_acquire_or_renew().await.unwrap());
    assert_eq!(holder(&fake).as_deref(), Some("a"));
    let conflicts = fake
        .log()
        .iter()
        .filter(|r| r.method == http::Method::PUT && r.path == LEASE)
        .count();
    assert_eq!(conflicts, 1, "b tried once and lost");
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_at_once() {
    let (fake, client) = FakeApi::start();
    let (mut a, mut b) = (lock(&client, "a"), lock(&client, "b"));
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    a.release().await.unwrap();
    assert_eq!(holder(&fake), None);
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "no need to wait 15 s"
    );
    // Releasing a lease someone else holds changes nothing.
    a.release().await.unwrap();
    assert_eq!(holder(&fake).as_deref(), Some("b"));
}

#[tokio::test(start_paused = true)]
async fn two_running_replicas_never_lead_together_and_hand_over_on_shutdown() {
    let (_fake, client) = FakeApi::start();
    let (tx_a, rx_a) = watch::channel(false);
    let (tx_b, rx_b) = watch::channel(false);
    let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
    let a = tokio::spawn(lock(&client, "a").run(tx_a, async {
        let _ = stopped_a.await;
    }));
    // b starts a little later, so a is first.
    tokio::time::advance(Duration::from_millis(100)).await;
    let b = tokio::spawn(lock(&client, "b").run(tx_b, std::future::pending()));

    for _ in 0..30 {
        tokio::time::advance(Duration::from_secs(1)).await;
        tokio::task::yield_now().await;
        assert!(!(*rx_a.borrow() && *rx_b.borrow()), "two leaders");
    }
    assert!(*rx_a.borrow(), "a leads");
    assert!(!*rx_b.borrow());

    stop_a.send(()).unwrap();
    a.await.unwrap();
    assert!(!*rx_a.borrow(), "a stopped leading");
    let mut rx = rx_b.clone();
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|leading| *leading))
        .await
        .expect("b takes over within a retry period, not a lease duration")
        .unwrap();
    drop(rx_b);
    drop(rx);
    b.await.unwrap();
}
