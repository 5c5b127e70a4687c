//! Rust election peers on loopback sockets, in one process: the seed
//! scenarios through the real mesh and tokio's clock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use zk_election::peer::{self, Change, PeerConfig, PeerStatus};
use zk_election::transport;
use zk_election::wire::{ElectionAddress, Preamble, ServerState, watcher_bootstrap, watcher_echo};
use zk_ensemble::ZooCfg;
use zk_testkit::eventually;

const WAIT: Duration = Duration::from_secs(15);

/// A zoo.cfg with `voters` voters and `observers` observers (myid 128+) on
/// `127.a.b.(1+myid)`, tickTime 500 and syncLimit 4 as the real-ZooKeeper
/// tests use.
fn zoo_cfg(voters: i64, observers: i64) -> ZooCfg {
    let base = zk_testkit::loopback_base();
    let host = |myid: i64| std::net::Ipv4Addr::from(u32::from(base) + myid as u32);
    let mut text = String::from("tickTime=500\ninitLimit=10\nsyncLimit=4\n");
    for myid in 1..=voters {
        text.push_str(&format!(
            "server.{myid}={}:2888:3888:participant\n",
            host(myid)
        ));
    }
    for i in 0..observers {
        let myid = 128 + i;
        text.push_str(&format!(
            "server.{myid}={}:2888:3888:observer\n",
            host(myid)
        ));
    }
    ZooCfg::parse(&text).unwrap()
}

/// A running peer and what it last reported.
struct Running {
    task: JoinHandle<()>,
    status: Arc<Mutex<Option<PeerStatus>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn start(cfg: &ZooCfg, myid: i64) -> Running {
    let config = PeerConfig::from_zoo_cfg(cfg, 0, myid, 0, 0).unwrap();
    let status = Arc::new(Mutex::new(None));
    let seen = status.clone();
    let task = tokio::spawn(async move {
        peer::run(config, move |s: &PeerStatus, _: Change<'_>| {
            *seen.lock().unwrap() = Some(s.clone());
        })
        .await
        .unwrap();
    });
    Running { task, status }
}

fn state(peers: &BTreeMap<i64, Running>, myid: i64) -> Option<(ServerState, Option<i64>)> {
    let status = peers[&myid].status.lock().unwrap().clone()?;
    Some((status.state, status.leader))
}

async fn wait_for(peers: &BTreeMap<i64, Running>, expected: &[(i64, ServerState, i64)]) {
    eventually("the expected states", WAIT, || async {
        let now: Vec<_> = expected
            .iter()
            .map(|(myid, _, _)| (*myid, state(peers, *myid)))
            .collect();
        let wanted: Vec<_> = expected
            .iter()
            .map(|(myid, s, l)| (*myid, Some((*s, Some(*l)))))
            .collect();
        if now == wanted {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_elect_3_then_2_and_3_rejoins_as_a_follower() {
    use ServerState::{Following, Leading, Observing};
    let cfg = zoo_cfg(3, 1);
    let mut peers = BTreeMap::new();
    for myid in [1, 2, 3, 128] {
        peers.insert(myid, start(&cfg, myid));
    }
    wait_for(
        &peers,
        &[
            (1, Following, 3),
            (2, Following, 3),
            (3, Leading, 3),
            (128, Observing, 3),
        ],
    )
    .await;

    // A watcher (§5) observes Rust peers as it observes ZooKeeper: the
    // bootstrap and an echo are answered with the peer's state, current vote
    // and config.
    let follower = PeerConfig::from_zoo_cfg(&cfg, 0, 1, 0, 0).unwrap();
    let preamble = Preamble::V1 {
        sid: (1 << 62) + 1,
        address: ElectionAddress::new("127.0.0.1", 3888),
    };
    let mut watcher = transport::dial(
        &follower.mesh.advertised,
        &preamble,
        WAIT,
        &transport::Security::PLAIN,
    )
    .await
    .unwrap();
    watcher.send(&watcher_bootstrap(0)).await.unwrap();
    let reply = watcher.recv_notification().await.unwrap().unwrap();
    assert_eq!((reply.state, reply.leader), (ServerState::Following, 3));
    assert_eq!(reply.config.as_deref(), Some(&follower.config.raw[..]));
    watcher
        .send(&watcher_echo(0, &follower.config.raw).unwrap())
        .await
        .unwrap();
    let reply = watcher.recv_notification().await.unwrap().unwrap();
    assert_eq!(
        (reply.state, reply.leader, reply.election_epoch),
        (ServerState::Following, 3, 1)
    );
    drop(watcher);

    peers.remove(&3); // killed: its connections close
    wait_for(
        &peers,
        &[(1, Following, 2), (2, Leading, 2), (128, Observing, 2)],
    )
    .await;
    let elections_of_2 = peers[&2].status.lock().unwrap().as_ref().unwrap().elections;

    peers.insert(3, start(&cfg, 3));
    wait_for(
        &peers,
        &[(1, Following, 2), (2, Leading, 2), (3, Following, 2)],
    )
    .await;
    let status_2 = peers[&2].status.lock().unwrap().clone().unwrap();
    assert_eq!(status_2.elections, elections_of_2, "no new election on 2");
    assert_eq!(status_2.leader_changes, 1);
}
