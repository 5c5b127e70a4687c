//! Rust election code against real ZooKeeper 3.8 servers on loopback: the
//! watcher profile's bytes (§5.3, through this crate's dial primitive and
//! codec) learn what `srvr` says; a Rust voter standing in for one member of
//! a 3-voter ensemble counts in a real server's election, both when its vote
//! wins and when it supports the real server's; and nothing we send makes a
//! real server log harm (§6). (`zk-sidecar run`'s own tests cover the full
//! watcher, with its state machine, against real servers.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use zk_election::peer::{self, Change, PeerConfig, PeerStatus};
use zk_election::transport::{self, Connection};
use zk_election::wire::{
    ElectionAddress, Notification, Preamble, ServerState, watcher_bootstrap, watcher_echo,
};
use zk_ensemble::{Myid, ZooCfg};
use zk_process::Mode;
use zk_testkit::{LoopbackEnsemble, eventually};

const WAIT: Duration = Duration::from_secs(30);

fn myid(id: i64) -> Myid {
    Myid::new(id).expect("a valid myid")
}

/// A Rust voter in place of member `id`, with that member's zoo.cfg.
struct RustVoter {
    task: JoinHandle<()>,
    seen: Arc<Mutex<Vec<PeerStatus>>>,
}

impl RustVoter {
    fn start(ensemble: &LoopbackEnsemble, id: i64) -> RustVoter {
        let text = std::fs::read_to_string(ensemble.config_path(myid(id))).unwrap();
        let cfg = ZooCfg::parse(&text).unwrap();
        let config = PeerConfig::from_zoo_cfg(&cfg, 0, id, 0, 0).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            peer::run(config, move |status: &PeerStatus, _: Change<'_>| {
                log.lock().unwrap().push(status.clone());
            })
            .await
            .unwrap();
        });
        RustVoter { task, seen }
    }

    /// Whether the voter was ever in `state` with `leader`.
    fn was(&self, state: ServerState, leader: i64) -> bool {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.state == state && s.leader == Some(leader))
    }
}

impl Drop for RustVoter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The real member's log line saying it decided, once it is there.
async fn decision_line(ensemble: &LoopbackEnsemble, id: i64, needle: &str) -> String {
    eventually(&format!("member {id} to log {needle:?}"), WAIT, || async {
        ensemble
            .log(myid(id))
            .lines()
            .find(|line| line.contains(needle))
            .map(str::to_owned)
            .ok_or_else(|| "not yet".to_owned())
    })
    .await
}

/// The `Notification:` lines a real member logged for messages from `sid`.
fn notifications_from(ensemble: &LoopbackEnsemble, id: i64, sid: i64) -> Vec<String> {
    let needle = format!("n.sid:{sid}, ");
    ensemble
        .log(myid(id))
        .lines()
        .filter(|line| line.contains("Notification:") && line.contains(&needle))
        .map(str::to_owned)
        .collect()
}

/// Beyond the watcher's harm list: a voter never sends an old message form
/// (the watcher's 40-byte bootstrap is one, on purpose), and never a config
/// with a higher version (D1).
const VOTER_HARM: [&str; 2] = ["Backward compatibility mode", "Received version:"];

fn assert_no_harm(ensemble: &LoopbackEnsemble, extra: &[&str]) {
    let harm = ensemble.log_lines_containing(&zk_testkit::HARM);
    assert!(harm.is_empty(), "the servers logged harm: {harm:#?}");
    let harm = ensemble.log_lines_containing(extra);
    assert!(harm.is_empty(), "the servers logged harm: {harm:#?}");
}

/// One poll of the watcher profile: the 40-byte bootstrap on a fresh
/// connection, else the echo of the member's own last config.
async fn poll(connection: &mut Connection, last: Option<&Notification>) -> Notification {
    let poll = match last.and_then(|n| n.config.as_deref()) {
        Some(config) => watcher_echo(0, config).unwrap(),
        None => watcher_bootstrap(0),
    };
    connection.send(&poll).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), connection.recv_notification())
        .await
        .expect("a reply within 5 s")
        .unwrap()
        .unwrap()
}

/// A watcher (sid 2^62 + 9, V1 preamble, bootstrap then echoes) sees every
/// member's state, leader and peer epoch as `srvr` has them.
#[tokio::test]
async fn the_watcher_profile_learns_what_srvr_says() {
    let Some(zk) = zk_testkit::zookeeper() else {
        return;
    };
    let mut ensemble = LoopbackEnsemble::new(&zk, 3, 0);
    ensemble.start_all();
    let leader = ensemble.wait_for_leader(WAIT).await;
    let preamble = Preamble::V1 {
        sid: zk_election::watcher_sid(myid(9)),
        address: ElectionAddress::new("127.0.0.1", 3888),
    };
    let mut connections = Vec::new();
    for id in ensemble.myids() {
        let address = ensemble.election_addr(id);
        let to = ElectionAddress::new(address.ip().to_string(), address.port());
        let connection = transport::dial(
            &to,
            &preamble,
            transport::CONNECT_TIMEOUT,
            &transport::Security::PLAIN,
        )
        .await
        .unwrap();
        connections.push((id, connection, None::<Notification>));
    }
    let connections = Arc::new(tokio::sync::Mutex::new(connections));
    let ensemble = &ensemble;
    eventually("every member's reply to agree with srvr", WAIT, || {
        let connections = connections.clone();
        async move {
            // The epoch the leader leads in, once established (§3.7).
            let srvr = ensemble.srvr(leader).await.map_err(|e| e.to_string())?;
            let epoch = srvr.zxid >> 32;
            let mut wrong = Vec::new();
            for (id, connection, last) in connections.lock().await.iter_mut() {
                let reply = poll(connection, last.as_ref()).await;
                let mode = ensemble.srvr(*id).await.map_err(|e| e.to_string())?.mode;
                let state = match mode {
                    Mode::Leader => ServerState::Leading,
                    _ => ServerState::Following,
                };
                let seen = (reply.state, reply.leader, reply.peer_epoch);
                if seen != (state, i64::from(leader), epoch) {
                    wrong.push(format!(
                        "member {id}: {seen:?}, srvr {mode:?} epoch {epoch}"
                    ));
                }
                *last = Some(reply);
            }
            if wrong.is_empty() {
                Ok(())
            } else {
                // The next poll of a member comes no sooner than 250 ms (D11).
                tokio::time::sleep(Duration::from_millis(250)).await;
                Err(wrong.join("; "))
            }
        }
    })
    .await;
    assert_no_harm(ensemble, &["Received version:"]);
}

/// Member 1 is stopped, member 2 is real, member 3 is us. Our vote (3) beats
/// 2's, so 2 follows us: it could only decide because our LOOKING vote, as
/// it read it from our bytes, made a quorum with its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_server_follows_the_rust_voter_whose_vote_wins() {
    let Some(zk) = zk_testkit::zookeeper() else {
        return;
    };
    let mut ensemble = LoopbackEnsemble::new(&zk, 3, 0);
    ensemble.start(myid(2));
    let rust = RustVoter::start(&ensemble, 3);

    let decided = decision_line(&ensemble, 2, "FOLLOWING - LEADER ELECTION TOOK").await;
    let ours = notifications_from(&ensemble, 2, 3);
    assert!(
        ours.iter()
            .any(|l| l.contains("n.state:LOOKING, n.leader:3, n.round:0x1, n.peerEpoch:0x0, n.zxid:0x0, message format version:0x2, n.config version:0x0")),
        "member 2 read our vote exactly as sent: {ours:#?}\n(decided: {decided})"
    );
    eventually("the Rust voter to lead", WAIT, || async {
        rust.was(ServerState::Leading, 3)
            .then_some(())
            .ok_or_else(|| format!("{:?}", rust.seen.lock().unwrap().last()))
    })
    .await;
    assert_no_harm(&ensemble, &VOTER_HARM);
}

/// Member 3 is stopped, member 2 is real, member 1 is us. 2's vote beats
/// ours, so we vote for 2, and 2 becomes LEADING with our vote as the only
/// other one in its quorum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_server_leads_with_the_rust_voters_support() {
    let Some(zk) = zk_testkit::zookeeper() else {
        return;
    };
    let mut ensemble = LoopbackEnsemble::new(&zk, 3, 0);
    ensemble.start(myid(2));
    let rust = RustVoter::start(&ensemble, 1);

    decision_line(&ensemble, 2, "LEADING - LEADER ELECTION TOOK").await;
    let ours = notifications_from(&ensemble, 2, 1);
    assert!(
        ours.iter()
            .any(|l| l.contains("n.state:LOOKING, n.leader:2, ")),
        "member 2 counted our vote for it: {ours:#?}"
    );
    eventually("the Rust voter to follow 2", WAIT, || async {
        rust.was(ServerState::Following, 2)
            .then_some(())
            .ok_or_else(|| format!("{:?}", rust.seen.lock().unwrap().last()))
    })
    .await;
    // Let our follower polls reach the real leader for a few ticks.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_no_harm(&ensemble, &VOTER_HARM);
}
