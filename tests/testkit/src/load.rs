//! A steady write load from a real ZooKeeper client (the `zookeeper-client`
//! crate), and a timeline of who leads, sampled from every member's `srvr`
//! and `mntr`: what the membership tests assert on and `bench/membership`
//! reports.
//!
//! A leader counts as quorum-backed in a sample when `srvr` says `leader`,
//! `mntr` says it is in the broadcast phase, and its synced voters (synced
//! followers minus non-voting ones, plus itself) are a majority of its
//! voters (`zk_quorum_size`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use zk_process::Mode;
use zookeeper_client as zk;

/// Every request of the load gives up after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes one znode after another under a root, recording every write
/// ZooKeeper acknowledged.
pub struct WriteLoad {
    stop: Arc<AtomicBool>,
    task: JoinHandle<LoadReport>,
}

/// What the load did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The paths of the writes ZooKeeper acknowledged, in order.
    pub acked: Vec<String>,
    /// The zxid each of them was created in (`czxid`), beside `acked`: a
    /// write reported lost can be looked up in the servers' transaction
    /// logs.
    pub acked_zxids: Vec<i64>,
    /// Writes that failed (connection lost mid-write: they may or may not
    /// have been applied, and are not counted as acknowledged).
    pub failed: u64,
}

async fn connect(connect: &str) -> Result<zk::Client, String> {
    let client = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .with_connection_timeout(Duration::from_secs(1))
        .connect(connect);
    tokio::time::timeout(Duration::from_secs(30), client)
        .await
        .map_err(|_| format!("no session with {connect} within 30 s"))?
        .map_err(|e| format!("cannot connect to {connect}: {e}"))
}

impl WriteLoad {
    /// Starts writing `<root>/w-<n>` every `pause` through a client of
    /// `connect` (every address a member may ever have: the client skips
    /// those that do not answer).
    pub async fn start(connect: &str, root: &str, pause: Duration) -> Result<WriteLoad, String> {
        let client = connect_retrying(connect).await?;
        let acl = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match client.create(root, b"", &acl).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(format!("cannot create {root}: {e}")),
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let connect = connect.to_owned();
        let root = root.to_owned();
        let task = tokio::spawn(async move {
            let mut report = LoadReport::default();
            let mut client = client;
            let mut n: u64 = 0;
            while !flag.load(Ordering::Relaxed) {
                n += 1;
                let path = format!("{root}/w-{n:08}");
                let acl = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                let write = client.create(&path, n.to_string().as_bytes(), &acl);
                match tokio::time::timeout(REQUEST_TIMEOUT, write).await {
                    Ok(Ok((stat, _))) => {
                        report.acked.push(path);
                        report.acked_zxids.push(stat.czxid);
                    }
                    Ok(Err(zk::Error::SessionExpired | zk::Error::ClientClosed)) => {
                        report.failed += 1;
                        if let Ok(fresh) = connect_retrying(&connect).await {
                            client = fresh;
                        }
                    }
                    Ok(Err(_)) | Err(_) => report.failed += 1,
                }
                tokio::time::sleep(pause).await;
            }
            report
        });
        Ok(WriteLoad { stop, task })
    }

    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

async fn connect_retrying(connect: &str) -> Result<zk::Client, String> {
    let mut last = String::new();
    for _ in 0..5 {
        match self::connect(connect).await {
            Ok(client) => return Ok(client),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last)
}

/// The acknowledged writes that a fresh client, after a `sync`, cannot find.
pub async fn missing_writes(
    connect: &str,
    root: &str,
    acked: &[String],
) -> Result<Vec<String>, String> {
    let client = connect_retrying(connect).await?;
    let read = async {
        client.sync(root).await?;
        client.list_children(root).await
    };
    let children = tokio::time::timeout(REQUEST_TIMEOUT, read)
        .await
        .map_err(|_| format!("no answer listing {root}"))?
        .map_err(|e| format!("cannot list {root}: {e}"))?;
    let present: BTreeSet<String> = children
        .into_iter()
        .map(|c| format!("{root}/{c}"))
        .collect();
    Ok(acked
        .iter()
        .filter(|p| !present.contains(*p))
        .cloned()
        .collect())
}

/// A leader seen in one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderSample {
    pub myid: u8,
    /// The epoch of its zxid (its peer epoch).
    pub epoch: i64,
    pub quorum_backed: bool,
}

/// One look at every member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// When the round started, after the sampler started.
    pub at: Duration,
    pub leaders: Vec<LeaderSample>,
}

/// Samples every member's `srvr` (and the leaders' `mntr`) until stopped.
pub struct LeaderSampler {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Timeline>,
}

impl LeaderSampler {
    /// Samples the members at `(myid, client address)` every `interval`.
    pub fn start(members: Vec<(u8, SocketAddr)>, interval: Duration) -> LeaderSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut rounds = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let at = started.elapsed();
                let looks = members.iter().map(|(myid, addr)| look(*myid, *addr));
                let leaders = futures::future::join_all(looks)
                    .await
                    .into_iter()
                    .flatten()
                    .collect();
                rounds.push(Round { at, leaders });
                tokio::time::sleep(interval).await;
            }
            Timeline { rounds }
        });
        LeaderSampler { stop, task }
    }

    pub async fn stop(self) -> Timeline {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

/// The member at `addr` if it leads, and whether a quorum backs it.
async fn look(myid: u8, addr: SocketAddr) -> Option<LeaderSample> {
    let timeout = Duration::from_millis(300);
    let srvr = zk_process::fourlw::srvr(addr, timeout).await.ok()?;
    if srvr.mode != Mode::Leader {
        return None;
    }
    let mntr = zk_process::fourlw::mntr(addr, timeout).await.ok();
    let quorum_backed = mntr.is_some_and(|m| {
        let number = |key: &str| m.get(key).and_then(|v| v.parse::<u64>().ok());
        let broadcast = m
            .get("zk_peer_state")
            .is_some_and(|s| s.contains("broadcast"));
        match (
            number("zk_synced_followers"),
            number("zk_synced_non_voting_followers"),
            number("zk_quorum_size"),
        ) {
            (Some(synced), Some(non_voting), Some(voters)) => {
                broadcast && synced.saturating_sub(non_voting) + 1 > voters / 2
            }
            _ => false,
        }
    });
    // A leader that a committed reconfig removed keeps its followers (and
    // `mntr` its counts) for up to a tick while its designated successor
    // already leads the next epoch; it can commit nothing more. Only a
    // leader its own config lists as a voter counts.
    let quorum_backed = quorum_backed
        && zk_process::fourlw::four_letter_word(addr, "conf", timeout)
            .await
            .is_ok_and(|conf| lists_as_voter(&conf, myid));
    Some(LeaderSample {
        myid,
        epoch: srvr.zxid >> 32,
        quorum_backed,
    })
}

/// Whether `conf` output lists `myid` as a voter in its membership.
fn lists_as_voter(conf: &str, myid: u8) -> bool {
    let prefix = format!("server.{myid}=");
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix(&prefix))
        .any(|entry| {
            !entry
                .split(';')
                .next()
                .unwrap_or_default()
                .ends_with(":observer")
        })
}

/// Who led when.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub rounds: Vec<Round>,
}

impl Timeline {
    /// The quorum-backed leaders of a round.
    fn backed(round: &Round) -> Vec<LeaderSample> {
        round
            .leaders
            .iter()
            .filter(|l| l.quorum_backed)
            .copied()
            .collect()
    }

    /// The longest stretch between two rounds that saw a quorum-backed
    /// leader with only rounds without one in between (from the last round
    /// with a leader to the next), or the whole run when none was seen.
    pub fn longest_without_leader(&self) -> Duration {
        let mut longest = Duration::ZERO;
        let mut last_led: Option<Duration> = None;
        let mut gap = false;
        for round in &self.rounds {
            if Self::backed(round).is_empty() {
                gap = true;
                continue;
            }
            if gap && let Some(since) = last_led {
                longest = longest.max(round.at.saturating_sub(since));
            }
            gap = false;
            last_led = Some(round.at);
        }
        if last_led.is_none() {
            return self.rounds.last().map_or(Duration::ZERO, |r| r.at);
        }
        longest
    }

    /// How many times the quorum-backed leader (myid and epoch) changed.
    pub fn elections(&self) -> usize {
        let mut changes = 0;
        let mut current: Option<(u8, i64)> = None;
        for round in &self.rounds {
            if let Some(l) = Self::backed(round).iter().max_by_key(|l| l.epoch) {
                let now = (l.myid, l.epoch);
                if current.is_some_and(|c| c != now) {
                    changes += 1;
                }
                current = Some(now);
            }
        }
        changes
    }

    /// Rounds in which two members were quorum-backed leaders at once,
    /// and epochs led by two different members: both would be split brain.
    pub fn split_brain(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut by_epoch: std::collections::BTreeMap<i64, u8> = Default::default();
        for round in &self.rounds {
            let backed = Self::backed(round);
            if backed.len() > 1 {
                problems.push(format!("at {:?}: {backed:?}", round.at));
            }
            for l in round.leaders.iter().filter(|l| l.quorum_backed) {
                let first = *by_epoch.entry(l.epoch).or_insert(l.myid);
                if first != l.myid {
                    problems.push(format!(
                        "epoch {} led by myid {first} and by myid {} (at {:?})",
                        l.epoch, l.myid, round.at
                    ));
                }
            }
        }
        problems
    }

    /// How many rounds were taken.
    pub fn len(&self) -> usize {
        self.rounds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rounds.is_empty()
    }
}

/// Clients contending on one znode with compare-and-set writes
/// (`setData` with the version each just read), every operation recorded
/// with its invoke and complete times for [`crate::linearizable::check`].
pub struct CasLoad {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Vec<crate::linearizable::Cas>>>,
    started: Instant,
}

impl CasLoad {
    /// Creates `path` (version 0) and starts `clients` clients on it, each
    /// pausing `pause` between operations.
    pub async fn start(
        connect: &str,
        path: &str,
        clients: usize,
        pause: Duration,
    ) -> Result<CasLoad, String> {
        let admin = connect_retrying(connect).await?;
        let acl = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        admin
            .create(path, b"0", &acl)
            .await
            .map_err(|e| format!("cannot create the register {path}: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let client = connect_retrying(connect).await?;
            let (flag, connect, path) = (stop.clone(), connect.to_owned(), path.to_owned());
            tasks.push(tokio::spawn(async move {
                cas_client(client, &connect, &path, &flag, pause, started).await
            }));
        }
        Ok(CasLoad {
            stop,
            tasks,
            started,
        })
    }

    /// Stops the clients; every operation they made, in no particular order.
    pub async fn stop(self) -> Vec<crate::linearizable::Cas> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(task.await.unwrap_or_default());
        }
        all
    }

    /// When the clients started (the origin of the operations' times).
    pub fn started(&self) -> Instant {
        self.started
    }
}

async fn cas_client(
    mut client: zk::Client,
    connect: &str,
    path: &str,
    stop: &AtomicBool,
    pause: Duration,
    started: Instant,
) -> Vec<crate::linearizable::Cas> {
    use crate::linearizable::{Cas, Outcome};
    let micros =
        |at: Instant| u64::try_from(at.duration_since(started).as_micros()).unwrap_or(u64::MAX);
    let mut history = Vec::new();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(pause).await;
        let Ok(Ok((_, stat))) = tokio::time::timeout(REQUEST_TIMEOUT, client.get_data(path)).await
        else {
            if let Ok(fresh) = connect_retrying(connect).await {
                client = fresh;
            }
            continue;
        };
        n += 1;
        let invoke = Instant::now();
        let write = client.set_data(path, n.to_string().as_bytes(), Some(stat.version));
        let (complete, outcome) = match tokio::time::timeout(REQUEST_TIMEOUT, write).await {
            Ok(Ok(_)) => (Some(micros(Instant::now())), Outcome::Set),
            Ok(Err(zk::Error::BadVersion)) => (Some(micros(Instant::now())), Outcome::BadVersion),
            Ok(Err(_)) | Err(_) => (None, Outcome::Unknown),
        };
        history.push(Cas {
            invoke: micros(invoke),
            complete,
            expected: i64::from(stat.version),
            outcome,
        });
        if outcome == Outcome::Unknown
            && let Ok(fresh) = connect_retrying(connect).await
        {
            client = fresh;
        }
    }
    history
}

/// Acknowledged writes whose creation order (their `czxid`) differs from
/// the order the client had them acknowledged, as `(earlier, later)`.
pub async fn out_of_order(
    connect: &str,
    acked: &[String],
) -> Result<Vec<(String, String)>, String> {
    let client = connect_retrying(connect).await?;
    let mut zxids = Vec::with_capacity(acked.len());
    for path in acked {
        let stat = tokio::time::timeout(REQUEST_TIMEOUT, client.check_stat(path))
            .await
            .map_err(|_| format!("no answer about {path}"))?
            .map_err(|e| format!("cannot read {path}: {e}"))?;
        zxids.push(stat.map(|s| s.czxid));
    }
    Ok(acked
        .windows(2)
        .zip(zxids.windows(2))
        .filter(|(_, z)| matches!((z[0], z[1]), (Some(a), Some(b)) if a >= b))
        .map(|(p, _)| (p[0].clone(), p[1].clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_counts_only_while_its_config_lists_it_as_a_voter() {
        let conf = "clientPort=2181\nmembership: \nserver.1=127.0.0.2:2888:3888:participant;127.0.0.2:2181\nserver.128=127.0.0.129:2888:3888:observer;127.0.0.129:2181\nversion=100000003\n";
        assert!(lists_as_voter(conf, 1));
        assert!(!lists_as_voter(conf, 128), "an observer");
        assert!(!lists_as_voter(conf, 3), "removed by a reconfig");
        assert!(!lists_as_voter(conf, 12), "server.1 is not server.12");
    }

    fn round(ms: u64, leaders: &[(u8, i64, bool)]) -> Round {
        Round {
            at: Duration::from_millis(ms),
            leaders: leaders
                .iter()
                .map(|(myid, epoch, quorum_backed)| LeaderSample {
                    myid: *myid,
                    epoch: *epoch,
                    quorum_backed: *quorum_backed,
                })
                .collect(),
        }
    }

    #[test]
    fn gaps_elections_and_split_brain_are_read_from_the_rounds() {
        let timeline = Timeline {
            rounds: vec![
                round(0, &[(1, 1, true)]),
                round(100, &[(1, 1, true)]),
                round(200, &[(1, 1, false)]),
                round(300, &[]),
                round(400, &[(2, 2, true)]),
                round(500, &[(2, 2, true), (1, 1, false)]),
            ],
        };
        assert_eq!(
            timeline.longest_without_leader(),
            Duration::from_millis(300)
        );
        assert_eq!(timeline.elections(), 1);
        assert!(timeline.split_brain().is_empty());
        let split = Timeline {
            rounds: vec![round(0, &[(1, 1, true), (2, 1, true)])],
        };
        assert_eq!(split.split_brain().len(), 2);
        let never = Timeline {
            rounds: vec![round(0, &[]), round(700, &[])],
        };
        assert_eq!(never.longest_without_leader(), Duration::from_millis(700));
    }
}
