//! `zk-sidecar run` beside every member of a real three-voter ZooKeeper 3.8
//! ensemble on loopback while the leader's "pod" (its server and its
//! sidecar, sending from its own address) is cut off from the others by a
//! network partition, and after the partition heals.

use std::path::Path;
use std::time::{Duration, Instant};

use zk_ensemble::Myid;
use zk_process::Mode;
use zk_testkit::{LoopbackEnsemble, eventually};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_zk-sidecar"))
}

/// How long the leader stays cut off: long enough that TCP's retransmission
/// of a poll sent into the partition is backed off to 12.8 s.
const PARTITION: Duration = Duration::from_secs(15);

/// How much later than its own server the cut-off member's sidecar may
/// know the leader again.
const AGREEMENT_BOUND: Duration = Duration::from_secs(1);

async fn sidecar_leader(ensemble: &LoopbackEnsemble, myid: Myid) -> Result<Option<u64>, String> {
    Ok(ensemble.sidecar_status(myid).await?.leader)
}

#[tokio::test]
async fn a_cut_off_leaders_sidecar_goes_unready_and_knows_the_new_leader_right_after_the_heal() {
    let Some(ensemble) = LoopbackEnsemble::partitionable_with_sidecars(binary(), 3) else {
        return;
    };
    let old = ensemble.wait_for_leader(Duration::from_secs(60)).await;
    let all = ensemble.myids();
    let rest: Vec<Myid> = all.iter().copied().filter(|m| *m != old).collect();
    ensemble
        .every_sidecar_reports(&all, old, Duration::from_secs(15))
        .await;

    ensemble
        .partition(&[&[old], &rest])
        .expect("cut the leader off");
    let cut = Instant::now();
    // The cut-off side stops claiming a leader and goes unready: its server
    // stops serving within syncLimit × tickTime (2 s), its watcher's replies
    // go stale within 3 poll intervals.
    let unready_after = eventually(
        "the cut-off member's sidecar to go unready and claim no leader",
        Duration::from_secs(15),
        || async {
            let leader = sidecar_leader(&ensemble, old).await?;
            let (code, body) = ensemble.sidecar_get(old, "/readyz").await?;
            match (leader, code) {
                (None, 503) => Ok(cut.elapsed()),
                _ => Err(format!("leader {leader:?}, /readyz {code} {body}")),
            }
        },
    )
    .await;
    let new = eventually(
        "the majority to elect a new leader",
        Duration::from_secs(30),
        || async {
            for myid in &rest {
                if let Ok(s) = ensemble.srvr(*myid).await
                    && s.mode == Mode::Leader
                {
                    return Ok(*myid);
                }
            }
            Err("no leader among the majority yet".to_owned())
        },
    )
    .await;
    ensemble
        .every_sidecar_reports(&rest, new, Duration::from_secs(15))
        .await;
    // Holding the fault for its stated length (not waiting for anything).
    tokio::time::sleep(PARTITION.saturating_sub(cut.elapsed())).await;

    ensemble.heal().expect("heal the partition");
    let healed = Instant::now();
    let (mut server_at, mut sidecar_at) = (None, None);
    while healed.elapsed() < Duration::from_secs(30)
        && (server_at.is_none() || sidecar_at.is_none())
    {
        if server_at.is_none()
            && ensemble
                .srvr(old)
                .await
                .is_ok_and(|s| s.mode == Mode::Follower)
        {
            server_at = Some(healed.elapsed());
        }
        if sidecar_at.is_none() && sidecar_leader(&ensemble, old).await == Ok(Some(u64::from(new)))
        {
            sidecar_at = Some(healed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "partition of leader {old} for {PARTITION:?}: its sidecar unready and leaderless {unready_after:?} after the cut; \
         after the heal its server followed {new} at {server_at:?}, its sidecar knew {new} at {sidecar_at:?}"
    );
    let (Some(server_at), Some(sidecar_at)) = (server_at, sidecar_at) else {
        panic!(
            "within 30 s of the heal: server following at {server_at:?}, sidecar knowing the leader at {sidecar_at:?}"
        );
    };
    assert!(
        sidecar_at.saturating_sub(server_at) <= AGREEMENT_BOUND,
        "the sidecar knew the leader {:?} after its own server followed it (bound {AGREEMENT_BOUND:?})",
        sidecar_at.saturating_sub(server_at)
    );
    let status = ensemble
        .sidecar_status(old)
        .await
        .expect("the sidecar's status");
    let srvr = ensemble.srvr(new).await.expect("the new leader's srvr");
    assert_eq!(
        status.peer_epoch,
        Some(srvr.zxid >> 32),
        "the epoch srvr shows"
    );
    let harm = ensemble.log_lines_containing(&zk_testkit::HARM);
    assert!(harm.is_empty(), "the servers logged harm: {harm:#?}");
}
