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

fn tls(connector: Connector) -> transport::Security {
    transport::Security {
        tls: Some(connector),
        sasl: None,
    }
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
    let names = zk_ensemble::tls::LOOPBACK_CALLER.map(str::to_owned);
    let leaf = other.issue(&names, SystemTime::now()).expect("a leaf");
    let folder = tempfile::tempdir().expect("a folder");
    zk_process::stores::write_stores(folder.path(), &other.key_store(&leaf), ca.cert_pem())
        .expect("stores");
    let foreign = Connector::load(&QuorumStores {
        key_store: folder.path().join(KEY_STORE),
        trust_store: folder.path().join(TRUST_STORE),
    })
    .expect("a connector");

    let mut kept = Vec::new();
    for myid in ensemble.myids() {
        let to = election_address(&ensemble, myid);
        let wait = transport::CONNECT_TIMEOUT;
        // The control: with the member's own stores a caller is answered.
        let own = Connector::load(&QuorumStores {
            key_store: Path::new(&ensemble.spec.tls_dir(myid)).join(KEY_STORE),
            trust_store: Path::new(&ensemble.spec.tls_dir(myid)).join(TRUST_STORE),
        })
        .expect("the member's stores");
        let mut trusted = transport::dial(&to, &watcher_preamble(), wait, &tls(own))
            .await
            .expect("a trusted caller connects");
        trusted.send(&watcher_bootstrap(0)).await.expect("a poll");
        let reply = tokio::time::timeout(wait, trusted.recv_notification())
            .await
            .expect("a reply in time")
            .expect("a frame")
            .expect("a notification");
        assert_eq!(reply.leader, i64::from(leader), "member {myid}: {reply:?}");
        // Kept open (see `answers`); the next caller of this sid replaces it.
        kept.push(trusted);
        refused(transport::dial(&to, &watcher_preamble(), wait, &transport::Security::PLAIN).await)
            .await;
        refused(transport::dial(&to, &watcher_preamble(), wait, &tls(foreign.clone())).await).await;
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

/// A caller with `connector`'s certificate and trust: the connection when
/// member `myid` answers its poll, the error otherwise. The caller keeps
/// an answered connection open: a member that sent its reply may still
/// look up the connection for the caller's sid, and one closed meanwhile
/// makes it log `Invalid server id` (the watcher never closes there
/// either). A member replaces the connection itself when the same sid
/// connects again.
async fn answers(
    ensemble: &LoopbackEnsemble,
    myid: Myid,
    connector: &Connector,
) -> Result<transport::Connection, String> {
    let to = election_address(ensemble, myid);
    let wait = Duration::from_secs(5);
    let mut connection = transport::dial(&to, &watcher_preamble(), wait, &tls(connector.clone()))
        .await
        .map_err(|e| format!("member {myid}: {e}"))?;
    connection
        .send(&watcher_bootstrap(0))
        .await
        .map_err(|e| format!("member {myid}: {e}"))?;
    let reply = tokio::time::timeout(wait, connection.recv_notification()).await;
    match reply {
        Ok(Ok(Ok(_))) => Ok(connection),
        Ok(Ok(Err(e))) => Err(format!("member {myid}: a bad reply: {e}")),
        Ok(Err(e)) => Err(format!("member {myid}: {e}")),
        Err(_) => Err(format!("member {myid}: no reply within {wait:?}")),
    }
}

/// A caller's stores in a folder of their own: a certificate from
/// `issuer` for the addresses a loopback caller comes from, trusting
/// `trusted`.
fn caller(folder: &Path, issuer: &Authority, trusted: &[&Authority]) -> Connector {
    let names = zk_ensemble::tls::LOOPBACK_CALLER.map(str::to_owned);
    let leaf = issuer.issue(&names, SystemTime::now()).expect("a leaf");
    let trust: String = trusted.iter().map(|ca| ca.cert_pem()).collect();
    zk_process::stores::write_stores(folder, &issuer.key_store(&leaf), &trust).expect("stores");
    Connector::load(&QuorumStores {
        key_store: folder.join(KEY_STORE),
        trust_store: folder.join(TRUST_STORE),
    })
    .expect("a connector")
}

#[tokio::test]
async fn quorum_certificates_rotate_to_a_new_ca_with_no_restart_and_no_election() {
    let Some((mut ensemble, old, leader)) = tls_ensemble().await else {
        return;
    };
    let epoch = ensemble.srvr(leader).await.expect("srvr").zxid >> 32;
    let pids: Vec<Option<u32>> = ensemble.myids().iter().map(|m| ensemble.pid(*m)).collect();
    let new = Authority::generate(
        &ensemble.spec.namespace,
        &ensemble.spec.name,
        SystemTime::now(),
    )
    .expect("a new CA");
    let folder = tempfile::tempdir().expect("a folder");
    let open = std::sync::Mutex::new(Vec::new());
    let every_member = |what: &'static str, connector: Connector, want: bool| {
        let (ensemble, open) = (&ensemble, &open);
        async move {
            eventually(what, WAIT, || async {
                for myid in ensemble.myids() {
                    match answers(ensemble, myid, &connector).await {
                        Ok(connection) => {
                            open.lock().expect("open connections").push(connection);
                            if !want {
                                return Err(format!("member {myid} answered"));
                            }
                        }
                        Err(e) if want => return Err(e),
                        Err(_) => {}
                    }
                }
                Ok(())
            })
            .await;
        }
    };

    // One store per step, and the next step only once every member
    // answers with it (see `zk_process::stores`).
    // 1. Every member trusts both CAs (still presenting the old one's
    //    certificate): a caller with the new CA's certificate is answered.
    for myid in ensemble.myids() {
        ensemble.rotate_trust_store(myid, &[&old, &new]);
    }
    let new_caller = caller(&folder.path().join("new"), &new, &[&old]);
    every_member("every member to trust the new CA", new_caller, true).await;

    // 2. Every member presents a certificate of the new CA: a caller that
    //    trusts only the new CA is answered.
    for myid in ensemble.myids() {
        ensemble.rotate_key_store(myid, &new);
    }
    let strict = caller(&folder.path().join("strict"), &new, &[&new]);
    every_member(
        "every member to present the new CA's certificate",
        strict,
        true,
    )
    .await;

    // 3. The old CA is dropped: its certificates are refused.
    for myid in ensemble.myids() {
        ensemble.rotate_trust_store(myid, &[&new]);
    }
    let stale = caller(&folder.path().join("stale"), &old, &[&new]);
    every_member("every member to refuse the old CA", stale, false).await;

    // No server restarted, no election ran, every sidecar still agrees.
    let now: Vec<Option<u32>> = ensemble.myids().iter().map(|m| ensemble.pid(*m)).collect();
    assert_eq!(now, pids, "no server restarted");
    assert_eq!(ensemble.srvr(leader).await.expect("srvr").zxid >> 32, epoch);
    sidecars_agree_with_srvr(&ensemble, leader).await;

    // New connections run on the new certificates alone: a follower
    // killed and started again rejoins the same leader, and every sidecar
    // (which reads its member's stores for every dial) reaches it again.
    let follower = ensemble
        .myids()
        .into_iter()
        .find(|m| *m != leader)
        .expect("a follower");
    ensemble.kill(follower);
    ensemble.start(follower);
    eventually("the follower to rejoin", WAIT, || async {
        match ensemble.srvr(follower).await {
            Ok(srvr) if srvr.mode == Mode::Follower => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    sidecars_agree_with_srvr(&ensemble, leader).await;
    assert_eq!(ensemble.srvr(leader).await.expect("srvr").zxid >> 32, epoch);
    assert_no_harm(&ensemble);
}
