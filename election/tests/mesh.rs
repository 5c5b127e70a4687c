//! The voting mesh on real loopback sockets: the larger-sid rule, the
//! newest-wins outbox with its replay, strangers, and closed connections.

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use support::hex;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use zk_election::transport::{self, Mesh, MeshConfig, MeshEvent};
use zk_election::wire::{ElectionAddress, Notification, Preamble, ServerState, watcher_bootstrap};

const WAIT: Duration = Duration::from_secs(10);

/// Addresses `127.a.b.(1+sid)`:3888 for sids 1..=5, free for this test.
fn addresses() -> BTreeMap<i64, ElectionAddress> {
    let base = zk_testkit::loopback_base();
    (1..=5)
        .map(|sid| {
            let ip = std::net::Ipv4Addr::from(u32::from(base) + sid as u32);
            (sid, ElectionAddress::new(ip.to_string(), 3888))
        })
        .collect()
}

async fn mesh(sid: i64, addresses: &BTreeMap<i64, ElectionAddress>) -> Mesh {
    let me = &addresses[&sid];
    let ip: IpAddr = me.host.parse().unwrap();
    let peers = addresses
        .iter()
        .filter(|(other, _)| **other != sid)
        .map(|(other, a)| (*other, a.clone()))
        .collect();
    let mut config = MeshConfig::new(sid, SocketAddr::new(ip, me.port), me.clone(), peers);
    config.preamble_timeout = Duration::from_secs(1);
    Mesh::bind(config).await.unwrap()
}

fn note(leader: i64) -> Vec<u8> {
    Notification {
        state: ServerState::Looking,
        leader,
        zxid: 0,
        election_epoch: 1,
        peer_epoch: 0,
        version: 2,
        config: Some(b"server.1=127.0.0.1:2888:3888:participant\nversion=0".to_vec()),
    }
    .encode()
    .unwrap()
}

/// The next message, skipping connection events.
async fn next_message(mesh: &Mesh) -> (i64, Notification) {
    tokio::time::timeout(WAIT, async {
        loop {
            if let MeshEvent::Received { from, notification } = mesh.recv().await {
                return (from, notification);
            }
        }
    })
    .await
    .expect("a message")
}

async fn next_event(mesh: &Mesh, wanted: impl Fn(&MeshEvent) -> bool) -> MeshEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = mesh.recv().await;
            if wanted(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the event")
}

#[tokio::test]
async fn a_smaller_sid_is_called_back_and_one_connection_carries_both_ways() {
    let addresses = addresses();
    let one = mesh(1, &addresses).await;
    let two = mesh(2, &addresses).await;
    one.send(2, note(1));
    assert_eq!(next_message(&two).await.0, 1);
    two.send(1, note(2));
    assert_eq!(
        next_message(&one).await,
        (2, Notification::decode(&note(2)).unwrap())
    );
    assert_eq!(one.connected(), vec![2]);
    assert_eq!(two.connected(), vec![1]);
}

#[tokio::test]
async fn the_newest_message_wins_while_a_peer_is_away_and_the_last_is_replayed() {
    let addresses = addresses();
    let one = mesh(1, &addresses).await;
    // 3 is not up: both messages wait, the second replaces the first.
    one.send(3, note(10));
    one.send(3, note(11));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let three = mesh(3, &addresses).await;
    assert_eq!(next_message(&three).await.1.leader, 11);

    // 3 restarts: on the new connection 1 replays its last message first.
    drop(three);
    next_event(&one, |e| *e == MeshEvent::Disconnected { sid: 3 }).await;
    let three = mesh(3, &addresses).await;
    three.send(1, note(3));
    assert_eq!(
        next_message(&three).await,
        (1, Notification::decode(&note(11)).unwrap())
    );
    assert_eq!(next_message(&one).await.0, 3);
}

#[tokio::test]
async fn strangers_with_larger_sids_are_accepted_and_forgotten_when_they_leave() {
    let addresses = addresses();
    let two = mesh(2, &addresses).await;
    let watcher_sid = (1 << 62) + 7;
    let preamble = Preamble::V1 {
        sid: watcher_sid,
        address: ElectionAddress::new("10.0.0.9", 3888),
    };
    let mut watcher = transport::dial(&addresses[&2], &preamble, WAIT, &transport::Security::PLAIN)
        .await
        .unwrap();
    watcher.send(&watcher_bootstrap(0)).await.unwrap();
    let (from, poll) = next_message(&two).await;
    assert_eq!((from, poll.version), (watcher_sid, 0));
    two.send(watcher_sid, note(2));
    let reply = watcher.recv_notification().await.unwrap().unwrap();
    assert_eq!(reply.leader, 2);
    drop(watcher);
    next_event(&two, |e| *e == MeshEvent::Disconnected { sid: watcher_sid }).await;
    // Nothing is kept for a stranger that left, and nothing is dialled.
    two.send(watcher_sid, note(2));
    assert_eq!(two.connected(), Vec::<i64>::new());
}

#[tokio::test]
async fn bad_preambles_and_frames_close_only_their_own_connection() {
    let addresses = addresses();
    let two = mesh(2, &addresses).await;
    let target = (addresses[&2].host.as_str(), 3888);
    // Our own sid: refused.
    let mut own = TcpStream::connect(target).await.unwrap();
    own.write_all(&Preamble::Legacy { sid: 2 }.encode().unwrap())
        .await
        .unwrap();
    // A port out of range (D4): refused, the listener lives on.
    let mut p7 = TcpStream::connect(target).await.unwrap();
    p7.write_all(&hex(
        "ffffffffffff0000 4000000000000008 0000000f 3132372e302e302e313a3730303030",
    ))
    .await
    .unwrap();
    // A 36-byte frame from a stranger: reported, the connection stays.
    let mut stranger = TcpStream::connect(target).await.unwrap();
    stranger
        .write_all(&Preamble::Legacy { sid: 9 }.encode().unwrap())
        .await
        .unwrap();
    let mut frame = 36u32.to_be_bytes().to_vec();
    frame.extend([0u8; 36]);
    stranger.write_all(&frame).await.unwrap();
    let malformed = next_event(&two, |e| matches!(e, MeshEvent::Malformed { .. })).await;
    assert!(matches!(malformed, MeshEvent::Malformed { from: 9, .. }));
    // A frame length of 0 closes that connection only.
    stranger.write_all(&[0, 0, 0, 0]).await.unwrap();
    next_event(&two, |e| *e == MeshEvent::Disconnected { sid: 9 }).await;
    // The listener still works.
    let one = mesh(1, &addresses).await;
    one.send(2, note(1));
    assert_eq!(next_message(&two).await.0, 1);
}
