//! A real three-voter ZooKeeper 3.8 ensemble whose quorum speaks TLS
//! (`sslQuorum=true`, PEM stores from zookube's CA), with `zk-sidecar run`
//! beside every member: the sidecars report the election exactly as with a
//! plaintext quorum, callers the members must not trust are refused and
//! harm nothing, and no server logs a line of the harm list.

use std::path::Path;
use std::time::{Duration, SystemTime};

use zk_election::config::QuorumStores;
use zk_election::transport::{self, Connector};
use zk_election::wire::{ElectionAddress, Preamble, watcher_bootstrap};
use zk_ensemble::Myid;
use zk_ensemble::status::LeaderPhase;
use zk_ensemble::tls::{Authority, KEY_STORE, TRUST_STORE};
use zk_process::Mode;
use zk_testkit::{LoopbackEnsemble, eventually};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_zk-sidecar"))
}

const WAIT: Duration = Duration::from_secs(60);

fn assert_no_harm(ensemble: &LoopbackEnsemble) {
    let harm = ensemble.log_lines_containing(&zk_testkit::HARM);
    assert!(harm.is_empty(), "the servers logged harm: {harm:#?}");
}

/// Every sidecar reports ZooKeeper's leader, in the epoch `srvr` gives,
/// as established, with every member reachable over TLS.
async fn sidecars_agree_with_srvr(ensemble: &LoopbackEnsemble, leader: Myid) {
    eventually("every sidecar to match srvr", WAIT, || async {
        let srvr = ensemble.srvr(leader).await.map_err(|e| e.to_string())?;
        if srvr.mode != Mode::Leader {
            return Err(format!("{leader} no longer leads: {srvr:?}"));
        }
        for myid in ensemble.myids() {
            let status = ensemble.sidecar_status(myid).await?;
            let agrees = status.leader == Some(u64::from(leader))
                && status.peer_epoch == Some(srvr.zxid >> 32)
                && status.leader_phase == Some(LeaderPhase::Established)
                && status.members.iter().all(|m| m.reachable)
                && status.quorum.reachable == 3;
            if !agrees {
                return Err(format!("sidecar {myid}: {status:?}"));
            }
        }
        Ok(())
    })
    .await;
}

async fn tls_ensemble() -> Option<(LoopbackEnsemble, Authority, Myid)> {
    let zk = zk_testkit::zookeeper()?;
    let mut ensemble = LoopbackEnsemble::new(&zk, 3, 0);
    let ca = ensemble.enable_quorum_tls();
    let cfg = std::fs::read_to_string(ensemble.config_path(Myid::new(1).expect("myid")))
        .expect("zoo.cfg");
    assert!(cfg.contains("sslQuorum=true"), "{cfg}");
    ensemble.start_all();
    for myid in ensemble.myids() {
        ensemble.start_sidecar(binary(), myid, &["--startup-grace", "5s"]);
    }
    let leader = ensemble.wait_for_leader(WAIT).await;
    sidecars_agree_with_srvr(&ensemble, leader).await;
    Some((ensemble, ca, leader))
}

fn watcher_preamble() -> Preamble {
    Preamble::V1 {
        sid: zk_election::watcher_sid(Myid::new(9).expect("myid")),
        address: ElectionAddress::new("127.0.0.1", 3888),
    }
}

fn election_address(ensemble: &LoopbackEnsemble, myid: Myid) -> ElectionAddress {
    let address = ensemble.election_addr(myid);
    ElectionAddress::new(address.ip().to_string(), address.port())
}

/// A caller that speaks and is not answered: the member closes the
/// connection (or the handshake fails) and sends no notification.
async fn refused(connection: Result<transport::Connection, transport::TransportError>) {
    let Ok(mut connection) = connection else {
        return;
    };
    let _ = connection.send(&watcher_bootstrap(0)).await;
    let answer = tokio::time::timeout(Duration::from_secs(10), connection.recv()).await;
    match answer {
        Ok(Ok(frame)) => panic!("a member answered a caller it must refuse: {frame:?}"),
        Ok(Err(_)) => {}
        Err(_) => panic!("a member kept a refused caller's connection open for 10 s"),
    }
}

#[tokio::test]
async fn a_tls_quorum_elects_and_every_sidecar_reports_it_as_srvr_does() {
    let Some((ensemble, _ca, leader)) = tls_ensemble().await else {
        return;
    };
    for myid in ensemble.myids() {
        let status = ensemble.sidecar_status(myid).await.expect("status");
        assert_eq!(status.quorum.voters, vec![1, 2, 3]);
        let (code, body) = ensemble.sidecar_get(myid, "/readyz").await.expect("readyz");
        assert_eq!(code, 200, "sidecar {myid}: {body}");
        let log = ensemble.sidecar_log(myid);
        assert!(log.contains("quorum_tls=true"), "sidecar {myid}: {log}");
    }
    assert_eq!(ensemble.wait_for_leader(WAIT).await, leader);
    assert_no_harm(&ensemble);
}

#[tokio::test]
async fn a_plaintext_caller_and_a_caller_from_another_ca_are_refused_and_harm_nothing() {
    let Some((ensemble, ca, leader)) = tls_ensemble().await else {
        return;
    };
    let epoch = ensemble.srvr(leader).await.expect("srvr").zxid >> 32;

    // Another CA's certificate, for the right names, trusting our CA: only
    // the member's check of the caller can refuse it.
    let other = Authority::generate("elsewhere", "zk", SystemTime::now()).expect("a CA");
    let names = ["127.0.0.1".to_owned(), "localhost".to_owned()];
    let leaf = other.issue(&names, SystemTime::now()).expect("a leaf");
    let folder = tempfile::tempdir().expect("a folder");
    zk_process::stores::write_stores(folder.path(), &other.key_store(&leaf), ca.cert_pem())
        .expect("stores");
    let foreign = Connector::load(&QuorumStores {
        key_store: folder.path().join(KEY_STORE),
        trust_store: folder.path().join(TRUST_STORE),
    })
    .expect("a connector");

    for myid in ensemble.myids() {
        let to = election_address(&ensemble, myid);
        let wait = transport::CONNECT_TIMEOUT;
        // The control: with the member's own stores a caller is answered.
        let own = Connector::load(&QuorumStores {
            key_store: Path::new(&ensemble.spec.quorum_tls_dir(myid)).join(KEY_STORE),
            trust_store: Path::new(&ensemble.spec.quorum_tls_dir(myid)).join(TRUST_STORE),
        })
        .expect("the member's stores");
        let mut trusted = transport::dial(&to, &watcher_preamble(), wait, Some(&own))
            .await
            .expect("a trusted caller connects");
        trusted.send(&watcher_bootstrap(0)).await.expect("a poll");
        let reply = tokio::time::timeout(wait, trusted.recv_notification())
            .await
            .expect("a reply in time")
            .expect("a frame")
            .expect("a notification");
        assert_eq!(reply.leader, i64::from(leader), "member {myid}: {reply:?}");
        trusted.writer.reset();
        refused(transport::dial(&to, &watcher_preamble(), wait, None).await).await;
        refused(transport::dial(&to, &watcher_preamble(), wait, Some(&foreign)).await).await;
    }

    // Nothing changed: the same leader in the same epoch, every sidecar
    // still agreeing, nothing harmful in any log.
    sidecars_agree_with_srvr(&ensemble, leader).await;
    assert_eq!(ensemble.srvr(leader).await.expect("srvr").zxid >> 32, epoch);
    let mut states = Vec::new();
    for myid in ensemble.myids() {
        states.push(ensemble.srvr(myid).await.expect("srvr").mode);
    }
    assert_eq!(
        states.iter().filter(|m| **m == Mode::Leader).count(),
        1,
        "{states:?}"
    );
    assert_no_harm(&ensemble);
}
