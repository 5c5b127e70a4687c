//! The connection primitive on real loopback sockets: what a dialler puts on
//! the wire, what an acceptor refuses, and the frame caps of §2.6.

mod support;

use std::time::Duration;

use support::hex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zk_election::transport::{self, TransportError};
use zk_election::wire::{
    DecodeError, ElectionAddress, EncodeError, Preamble, watcher_bootstrap, watcher_echo,
};

const SECOND: Duration = Duration::from_secs(1);

async fn bind() -> (TcpListener, ElectionAddress) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, ElectionAddress::new("127.0.0.1", port))
}

/// A plaintext dial with a one-second time-out.
async fn dial(
    address: &ElectionAddress,
    preamble: &Preamble,
) -> Result<transport::Connection, TransportError> {
    transport::dial(address, preamble, SECOND, &transport::Security::PLAIN).await
}

fn watcher_preamble() -> Preamble {
    Preamble::V1 {
        sid: (1 << 62) + 3,
        address: ElectionAddress::new("10.0.0.9", 3888),
    }
}

#[tokio::test]
async fn the_preamble_arrives_first_and_in_one_piece() {
    let (listener, address) = bind().await;
    let preamble = watcher_preamble();
    let dialled = tokio::spawn(async move {
        let mut connection = dial(&address, &preamble).await.unwrap();
        connection.send(&watcher_bootstrap(0)).await.unwrap();
        connection
    });
    let (mut stream, _) = listener.accept().await.unwrap();
    let _connection = dialled.await.unwrap();
    // A member reads the address with one read call (§2.2 step 4).
    let expected = watcher_preamble().encode().unwrap();
    let mut first = vec![0u8; expected.len()];
    let n = stream.read(&mut first).await.unwrap();
    assert!(n >= expected.len(), "the preamble came in {n} bytes, split");
    assert_eq!(&first[..expected.len()], &expected[..]);
}

#[tokio::test]
async fn dial_and_accept_exchange_notifications_both_ways() {
    let (listener, address) = bind().await;
    let accepted = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        transport::accept(stream, SECOND).await.unwrap()
    });
    let mut dialler = dial(&address, &watcher_preamble()).await.unwrap();
    dialler.send(&watcher_bootstrap(7)).await.unwrap();
    let (preamble, mut acceptor) = accepted.await.unwrap();
    assert_eq!(preamble, watcher_preamble());

    let poll = acceptor.recv_notification().await.unwrap().unwrap();
    assert_eq!(poll.election_epoch, 7);
    let config = b"server.1=127.0.0.1:2881:3881:participant\nversion=0";
    acceptor
        .send(&watcher_echo(1, config).unwrap())
        .await
        .unwrap();
    let reply = dialler.recv_notification().await.unwrap().unwrap();
    assert_eq!(reply.config.as_deref(), Some(&config[..]));
}

#[tokio::test]
async fn a_malformed_notification_is_dropped_but_the_connection_stays() {
    let (listener, address) = bind().await;
    let accepted = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        transport::accept(stream, SECOND).await.unwrap().1
    });
    let mut dialler = dial(&address, &Preamble::Legacy { sid: 5 }).await.unwrap();
    dialler.send(&[0u8; 36]).await.unwrap(); // §9.2 N7
    dialler.send(&watcher_bootstrap(1)).await.unwrap();
    let mut acceptor = accepted.await.unwrap();
    assert_eq!(
        acceptor.recv_notification().await.unwrap(),
        Err(DecodeError::Size(36))
    );
    assert!(acceptor.recv_notification().await.unwrap().is_ok());
}

/// Raw bytes to an acceptor, and the error it closes with.
async fn accept_raw(bytes: &[u8]) -> TransportError {
    let (listener, address) = bind().await;
    let mut raw = TcpStream::connect((address.host.as_str(), address.port))
        .await
        .unwrap();
    raw.write_all(bytes).await.unwrap();
    raw.shutdown().await.unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    match transport::accept(stream, SECOND).await {
        Ok((_, mut connection)) => connection.recv().await.unwrap_err(),
        Err(e) => e,
    }
}

#[tokio::test]
async fn acceptors_refuse_what_a_member_refuses() {
    // §9.1 P7: a port out of range (D4 on a member).
    let p7 = hex("ffffffffffff0000 4000000000000008 0000000f 3132372e302e302e313a3730303030");
    assert!(matches!(
        accept_raw(&p7).await,
        TransportError::Protocol(DecodeError::PortOutOfRange(70000))
    ));
    // OBSERVER_ID (§2.4).
    assert!(matches!(
        accept_raw(&hex("7fffffffffffffff")).await,
        TransportError::Protocol(DecodeError::ObserverId)
    ));
    // Frame lengths 0 and 524289 after a good legacy preamble (§9.2, D13).
    assert!(matches!(
        accept_raw(&hex("0000000000000005 00000000")).await,
        TransportError::Protocol(DecodeError::FrameLength(0))
    ));
    assert!(matches!(
        accept_raw(&hex("0000000000000005 00080001")).await,
        TransportError::Protocol(DecodeError::FrameLength(524_289))
    ));
    // A truncated preamble, then end of stream.
    assert!(matches!(
        accept_raw(&hex("ffffffffffff0000 0000000000000001 0000000d 3130")).await,
        TransportError::Closed
    ));
}

#[tokio::test]
async fn an_idle_dialler_is_cut_off_after_the_preamble_timeout() {
    let (listener, address) = bind().await;
    let _idle = TcpStream::connect((address.host.as_str(), address.port))
        .await
        .unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    let timeout = Duration::from_millis(100);
    assert!(matches!(
        transport::accept(stream, timeout).await,
        Err(TransportError::PreambleTimeout(t)) if t == timeout
    ));
}

#[tokio::test]
async fn nothing_is_dialled_with_a_preamble_that_would_hurt_a_member() {
    let (listener, address) = bind().await;
    let bad = Preamble::V1 {
        sid: i64::MAX,
        address: ElectionAddress::new("10.0.0.9", 3888),
    };
    assert!(matches!(
        dial(&address, &bad).await,
        Err(TransportError::Encode(EncodeError::BadSid(i64::MAX)))
    ));
    // No connection was attempted.
    let pending = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
    assert!(pending.is_err(), "a connection was made");
}

#[tokio::test]
async fn refused_connections_and_oversized_frames_are_errors() {
    let (listener, address) = bind().await;
    drop(listener);
    let refused = dial(&address, &watcher_preamble()).await.unwrap_err();
    assert_eq!(refused.reason(), "connection_refused");

    let (listener, address) = bind().await;
    let _accepted = tokio::spawn(async move { listener.accept().await });
    let mut dialler = dial(&address, &watcher_preamble()).await.unwrap();
    assert!(matches!(
        dialler.send(&vec![0; 524_289]).await,
        Err(TransportError::Encode(EncodeError::FrameLength(524_289)))
    ));
    assert!(matches!(
        dialler.send(&[]).await,
        Err(TransportError::Encode(EncodeError::FrameLength(0)))
    ));
}

#[tokio::test]
async fn recv_loses_nothing_when_a_timeout_cancels_it() {
    let (listener, address) = bind().await;
    let mut raw = TcpStream::connect((address.host.as_str(), address.port))
        .await
        .unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    raw.write_all(&hex("0000000000000005")).await.unwrap();
    let (_, mut acceptor) = transport::accept(stream, SECOND).await.unwrap();
    let frame = zk_election::wire::frame(&watcher_bootstrap(9)).unwrap();
    // Half a frame, a timed-out receive, then the rest.
    raw.write_all(&frame[..10]).await.unwrap();
    let short = Duration::from_millis(50);
    assert!(tokio::time::timeout(short, acceptor.recv()).await.is_err());
    raw.write_all(&frame[10..]).await.unwrap();
    let n = acceptor.recv_notification().await.unwrap().unwrap();
    assert_eq!(n.election_epoch, 9);
}
