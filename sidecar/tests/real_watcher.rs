//! `zk-sidecar run` beside every member of a real three-voter ZooKeeper 3.8
//! ensemble on loopback: it reports what ZooKeeper reports, follows a leader
//! kill, notices paused and foreign members, and leaves no trace in the
//! servers' logs.

use std::path::Path;
use std::time::Duration;

use zk_ensemble::Myid;
use zk_ensemble::status::{LeaderPhase, MemberState};
use zk_process::{Mode, Signal};
use zk_testkit::{LoopbackEnsemble, eventually};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_zk-sidecar"))
}

fn assert_no_harm(ensemble: &LoopbackEnsemble) {
    let harm = ensemble.log_lines_containing(&zk_testkit::HARM);
    assert!(harm.is_empty(), "the servers logged harm: {harm:#?}");
}

/// A healthy ensemble with a sidecar beside each member, every sidecar
/// reporting ZooKeeper's leader.
async fn ensemble_with_sidecars() -> Option<(LoopbackEnsemble, Myid)> {
    let zk = zk_testkit::zookeeper()?;
    let mut ensemble = LoopbackEnsemble::new(&zk, 3, 0);
    ensemble.start_all();
    for myid in ensemble.myids() {
        ensemble.start_sidecar(binary(), myid, &["--startup-grace", "5s"]);
    }
    let leader = ensemble.wait_for_leader(Duration::from_secs(60)).await;
    ensemble
        .every_sidecar_reports(&ensemble.myids(), leader, Duration::from_secs(15))
        .await;
    eventually(
        "every sidecar to reach every member",
        Duration::from_secs(15),
        || async {
            for myid in ensemble.myids() {
                let status = ensemble.sidecar_status(myid).await?;
                if status.members.iter().any(|m| !m.reachable) {
                    return Err(format!("sidecar {myid}: {:?}", status.members));
                }
            }
            Ok(())
        },
    )
    .await;
    Some((ensemble, leader))
}

async fn metric(ensemble: &LoopbackEnsemble, myid: Myid, name: &str) -> f64 {
    let (code, body) = ensemble.sidecar_get(myid, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
}

#[tokio::test]
async fn reports_zookeepers_leader_and_epoch_and_is_ready() {
    let Some((ensemble, leader)) = ensemble_with_sidecars().await else {
        return;
    };
    // The leader's epoch as ZooKeeper has it: the high half of its zxid,
    // which a leader sets to its new epoch when it takes over.
    let srvr = ensemble.srvr(leader).await.unwrap();
    for myid in ensemble.myids() {
        let status = eventually(
            "the sidecar to match srvr",
            Duration::from_secs(10),
            || async {
                let status = ensemble.sidecar_status(myid).await?;
                let matches = status.leader == Some(u64::from(leader))
                    && status.peer_epoch == Some(srvr.zxid >> 32)
                    && status.leader_phase == Some(LeaderPhase::Established)
                    && status.serving == Some(true)
                    && status.quorum.reachable == 3;
                if matches {
                    Ok(status)
                } else {
                    Err(format!("{status:?}"))
                }
            },
        )
        .await;
        let answer = ensemble.srvr(myid).await.unwrap();
        let expected = if myid == leader {
            MemberState::Leading
        } else {
            MemberState::Following
        };
        assert_eq!(status.state, expected);
        assert_eq!(answer.mode == Mode::Leader, myid == leader);
        assert_eq!(status.quorum.voters, vec![1, 2, 3]);
        assert_eq!(status.members.len(), 3);
        for code_path in ["/readyz", "/livez"] {
            let (code, body) = ensemble.sidecar_get(myid, code_path).await.unwrap();
            assert_eq!(code, 200, "{code_path}: {body}");
        }
    }
    assert_no_harm(&ensemble);
}

#[tokio::test]
async fn follows_a_leader_kill_within_three_seconds() {
    let Some((mut ensemble, old)) = ensemble_with_sidecars().await else {
        return;
    };
    let survivors: Vec<Myid> = ensemble.myids().into_iter().filter(|m| *m != old).collect();
    let before: Vec<(f64, f64)> = {
        let mut v = Vec::new();
        for myid in &survivors {
            v.push((
                metric(&ensemble, *myid, "zookube_elections_total").await,
                metric(&ensemble, *myid, "zookube_leader_changes_total").await,
            ));
        }
        v
    };
    ensemble.kill(old);
    let new = eventually(
        "every surviving sidecar to report ZooKeeper's new leader",
        Duration::from_secs(3),
        || async {
            let mut leaders = Vec::new();
            for myid in &survivors {
                if ensemble
                    .srvr(*myid)
                    .await
                    .is_ok_and(|s| s.mode == Mode::Leader)
                {
                    leaders.push(*myid);
                }
            }
            let [new] = leaders[..] else {
                return Err(format!("srvr shows leaders {leaders:?}"));
            };
            for myid in &survivors {
                let status = ensemble.sidecar_status(*myid).await?;
                if status.leader != Some(u64::from(new)) {
                    return Err(format!("sidecar {myid} reports {:?}", status.leader));
                }
            }
            Ok(new)
        },
    )
    .await;
    assert_ne!(new, old);
    for (myid, (elections, changes)) in survivors.iter().zip(before) {
        let status = ensemble.sidecar_status(*myid).await.unwrap();
        assert!(status.elections >= 1, "{status:?}");
        assert!(metric(&ensemble, *myid, "zookube_elections_total").await > elections);
        assert!(metric(&ensemble, *myid, "zookube_leader_changes_total").await > changes);
        let dead = status
            .members
            .iter()
            .find(|m| m.myid == u64::from(old))
            .unwrap();
        assert!(!dead.reachable && dead.error.is_some(), "{dead:?}");
    }
    // The sidecar beside the dead server is not ready, and says why.
    let (code, body) = ensemble.sidecar_get(old, "/readyz").await.unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("the local server does not answer"), "{body}");
    let status = ensemble.sidecar_status(old).await.unwrap();
    assert_eq!(status.state, MemberState::Down);
    assert_no_harm(&ensemble);
}

#[tokio::test]
async fn a_paused_follower_is_unreachable_until_it_resumes() {
    let Some((ensemble, leader)) = ensemble_with_sidecars().await else {
        return;
    };
    let follower = *ensemble.myids().iter().find(|m| **m != leader).unwrap();
    let reach = |watcher: Myid, reachable: bool| {
        let ensemble = &ensemble;
        async move {
            let status = ensemble.sidecar_status(watcher).await?;
            let member = status
                .members
                .iter()
                .find(|m| m.myid == u64::from(follower))
                .ok_or("no such member")?;
            if member.reachable == reachable {
                Ok(member.error.clone())
            } else {
                Err(format!("{member:?}"))
            }
        }
    };
    ensemble.signal(follower, Signal::SIGSTOP);
    let error = eventually(
        "the paused follower to be unreachable",
        Duration::from_secs(10),
        || reach(leader, false),
    )
    .await;
    assert!(
        error.as_deref().is_some_and(|e| e.contains("no reply")),
        "{error:?}"
    );
    // The leader and the other follower still form a quorum.
    assert_eq!(
        ensemble.sidecar_status(leader).await.unwrap().leader,
        Some(u64::from(leader))
    );
    ensemble.signal(follower, Signal::SIGCONT);
    eventually(
        "the resumed follower to be reachable",
        Duration::from_secs(10),
        || reach(leader, true),
    )
    .await;
    eventually(
        "its own sidecar to be ready again",
        Duration::from_secs(15),
        || async {
            match ensemble.sidecar_get(follower, "/readyz").await? {
                (200, _) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_no_harm(&ensemble);
}

#[tokio::test]
async fn a_foreign_service_on_an_election_port_is_reported_not_fatal() {
    let Some(zk) = zk_testkit::zookeeper() else {
        return;
    };
    let mut ensemble = LoopbackEnsemble::new(&zk, 3, 0);
    let foreign = *ensemble.myids().last().unwrap();
    // Something else listens where member 3's election port should be: it
    // answers every connection with an HTTP error and hangs up.
    let listener = tokio::net::TcpListener::bind(ensemble.election_addr(foreign))
        .await
        .unwrap();
    let service = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let members: Vec<Myid> = ensemble
        .myids()
        .into_iter()
        .filter(|m| *m != foreign)
        .collect();
    for myid in &members {
        ensemble.start(*myid);
        ensemble.start_sidecar(binary(), *myid, &[]);
    }
    let leader = ensemble.wait_for_leader(Duration::from_secs(60)).await;
    ensemble
        .every_sidecar_reports(&members, leader, Duration::from_secs(15))
        .await;
    for myid in &members {
        let error = eventually(
            "member 3 reported unreachable with a reason",
            Duration::from_secs(10),
            || async {
                let status = ensemble.sidecar_status(*myid).await?;
                let member = status
                    .members
                    .iter()
                    .find(|m| m.myid == u64::from(foreign))
                    .ok_or("no member")?;
                match (&member.error, member.reachable) {
                    (Some(error), false) if error.contains("frame length") => Ok(error.clone()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
        assert!(
            error.contains("1213486160"),
            "HTTP read as a frame length: {error}"
        );
        assert!(zk_process::is_alive(ensemble.sidecar_pid(*myid).unwrap()));
    }
    service.abort();
    assert_no_harm(&ensemble);
}
