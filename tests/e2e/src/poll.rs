//! Waiting for a condition on the cluster.
//!
//! `zk_testkit::eventually` polls every 50 ms, which suits loopback servers;
//! here every check is several API requests (and sidecar reads through the
//! API server), so the suite polls once per [`EVERY`] and says on stderr
//! what it is waiting for whenever the observation changes — a CI log then
//! shows where a slow step spent its time.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How often a condition is checked.
pub const EVERY: Duration = Duration::from_secs(2);

/// Prints a line of progress, prefixed with the time since the test began.
pub fn note(started: Instant, message: impl AsRef<str>) {
    eprintln!(
        "[e2e {:>6.1}s] {}",
        started.elapsed().as_secs_f64(),
        message.as_ref()
    );
}

/// Checks `check` every [`EVERY`] until it yields a value; after `timeout`,
/// fails with `what` and the last reason it gave. An API error counts as a
/// reason to look again (the API server of a busy node can time out).
pub async fn until<T, F, Fut>(
    started: Instant,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    note(started, format!("waiting for {what}"));
    loop {
        match check().await {
            Ok(value) => {
                note(started, format!("done: {what}"));
                return Ok(value);
            }
            Err(seen) => {
                if Instant::now() >= deadline {
                    return Err(Error::Timeout {
                        what: what.to_owned(),
                        after: timeout,
                        last: seen,
                    });
                }
                if seen != last {
                    note(started, format!("  … {seen}"));
                    last = seen;
                }
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}
