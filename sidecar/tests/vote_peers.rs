//! Three `zk-sidecar vote` peers on loopback reproduce the seed scenarios,
//! observed through `/v1/status`: started one after another they elect 3;
//! with 3 killed, 1 and 2 elect 2; 3 restarted follows 2 without a new
//! election. `/metrics` counts the elections.

use std::path::Path;
use std::time::Duration;

use zk_ensemble::{MemberState, Myid, SidecarStatus};
use zk_testkit::{LoopbackEnsemble, eventually};

const WAIT: Duration = Duration::from_secs(20);

fn sidecar() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_zk-sidecar"))
}

fn myid(id: i64) -> Myid {
    Myid::new(id).unwrap()
}

/// Waits until each listed peer reports (state, leader).
async fn wait_for(ensemble: &LoopbackEnsemble, expected: &[(i64, MemberState, u64)]) {
    eventually("the expected states in /v1/status", WAIT, || async {
        let mut seen = Vec::new();
        for (id, _, _) in expected {
            let status = ensemble.sidecar_status(myid(*id)).await?;
            seen.push((*id, status.state, status.leader));
        }
        let wanted: Vec<_> = expected
            .iter()
            .map(|(i, s, l)| (*i, *s, Some(*l)))
            .collect();
        if seen == wanted {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    })
    .await;
}

async fn status(ensemble: &LoopbackEnsemble, id: i64) -> SidecarStatus {
    ensemble.sidecar_status(myid(id)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_vote_peers_elect_lose_and_regain_a_leader() {
    use MemberState::{Following, Leading};
    // The ensemble only renders configs and addresses; no ZooKeeper runs.
    let Some(zk) = zk_testkit::zookeeper() else {
        return;
    };
    let mut ensemble = LoopbackEnsemble::new(&zk, 3, 0);
    for id in 1..=3 {
        ensemble.start_vote(sidecar(), myid(id), &[]);
    }
    wait_for(
        &ensemble,
        &[(1, Following, 3), (2, Following, 3), (3, Leading, 3)],
    )
    .await;
    let first = status(&ensemble, 1).await;
    assert_eq!((first.peer_epoch, first.election_epoch), (Some(0), Some(1)));
    assert!(first.quorum.established);

    ensemble.stop_sidecar(myid(3));
    wait_for(&ensemble, &[(1, Following, 2), (2, Leading, 2)]).await;
    let leader = status(&ensemble, 2).await;
    assert_eq!((leader.elections, leader.leader_changes), (2, 1));

    ensemble.start_vote(sidecar(), myid(3), &[]);
    wait_for(
        &ensemble,
        &[(1, Following, 2), (2, Leading, 2), (3, Following, 2)],
    )
    .await;
    let after = status(&ensemble, 2).await;
    assert_eq!(after.elections, 2, "no new election on 2");
    assert_eq!(after.election_epoch, leader.election_epoch);

    let (code, metrics) = ensemble.sidecar_get(myid(2), "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("zookube_elections_total 2"), "{metrics}");
    assert!(metrics.contains("zookube_leader_myid 2"), "{metrics}");
    assert!(
        metrics.contains("zookube_member_state{state=\"LEADING\"} 1"),
        "{metrics}"
    );
    let (ready, _) = ensemble.sidecar_get(myid(3), "/readyz").await.unwrap();
    assert_eq!(ready, 200);
}

#[test]
fn vote_refuses_a_myid_outside_the_config_and_a_tls_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zoo.cfg");
    let myid = dir.path().join("myid");
    let vote = |cfg: &str, id: &str| {
        std::fs::write(&config, cfg).unwrap();
        std::fs::write(&myid, id).unwrap();
        std::process::Command::new(sidecar())
            .args(["vote", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--myid-file")
            .arg(&myid)
            .output()
            .unwrap()
    };
    let servers = "tickTime=500\nsyncLimit=4\nserver.1=127.0.0.1:2888:3888:participant\n";
    let out = vote(servers, "7");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("myid 7 is not in the config's server list"),
        "{stderr}"
    );
    let out = vote(&format!("{servers}sslQuorum=true\n"), "1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("sslQuorum=true"), "{stderr}");
}
