//! A member's data volume fills up, on real ZooKeeper servers on loopback:
//! the member stops serving (ZooKeeper's `SyncThread` cannot write its
//! transaction log) and its sidecar says so — `/readyz` fails and
//! `/v1/status` stops calling it serving — while the others keep a leader
//! that their sidecars name and acknowledge every write. Once space is
//! freed the member serves again, by itself, with every acknowledged write.

use std::path::Path;
use std::time::{Duration, Instant};

use zk_ensemble::Myid;
use zk_process::Mode;
use zk_testkit::load::{WriteLoad, missing_writes};
use zk_testkit::{HARM, LoopbackEnsemble, eventually};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_zk-sidecar"))
}

const ROOT: &str = "/zookube-full-disk";

/// How long the volume stays full: several of the member's attempts to
/// sync with the leader, each of which fails to write.
const FULL_FOR: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_volume_fills_up_stops_serving_says_so_and_comes_back_whole() {
    let Some(zk) = zk_testkit::zookeeper() else {
        return;
    };
    let mut ensemble = LoopbackEnsemble::new(&zk, 3, 0);
    // Transaction log files grow 64 KiB at a time instead of 64 MiB, so a
    // full volume shows at the next few writes rather than after 64 MiB.
    ensemble
        .jvm_flags
        .push("-Dzookeeper.preAllocSize=64".to_owned());
    let full = Myid::new(1).expect("myid 1");
    let Some(volume) = zk_testkit::small_volume(&ensemble.data_dir(full), 16) else {
        return;
    };
    ensemble.start_all();
    for myid in ensemble.myids() {
        ensemble.start_sidecar(binary(), myid, &["--startup-grace", "5s"]);
    }
    let leader = ensemble.wait_for_leader(Duration::from_secs(30)).await;
    let everyone = ensemble.myids();
    ensemble
        .every_sidecar_reports(&everyone, leader, Duration::from_secs(15))
        .await;
    let load = WriteLoad::start(&ensemble.connect_string(), ROOT, Duration::from_millis(5))
        .await
        .expect("start the write load");

    let filled = volume.fill().expect("fill the volume");
    assert!(filled > 0, "the volume was full before the test filled it");
    let ensemble = &ensemble;
    eventually(
        "the member on the full volume to stop serving and its sidecar to say so",
        Duration::from_secs(30),
        || async move {
            let (code, body) = ensemble.sidecar_get(full, "/readyz").await?;
            let status = ensemble.sidecar_status(full).await?;
            if code == 503 && status.serving != Some(true) {
                Ok(())
            } else {
                Err(format!("/readyz {code} {body}; {status:?}"))
            }
        },
    )
    .await;
    assert!(
        ensemble.log(full).contains("No space left on device"),
        "the member stopped serving for another reason: see its log"
    );
    // While the volume stays full the member goes on trying (LOOKING, then
    // FOLLOWING until the sync fails to write): never ready meanwhile.
    let held = Instant::now();
    while held.elapsed() < FULL_FOR {
        let (code, body) = ensemble
            .sidecar_get(full, "/readyz")
            .await
            .unwrap_or_default();
        assert_ne!(code, 200, "ready on a full volume: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The others keep a leader, and their sidecars name the one srvr shows.
    let rest: Vec<Myid> = everyone.iter().copied().filter(|m| *m != full).collect();
    let now = eventually(
        "a leader among the members with space",
        Duration::from_secs(30),
        || async {
            for myid in &rest {
                if ensemble
                    .srvr(*myid)
                    .await
                    .is_ok_and(|s| s.mode == Mode::Leader)
                {
                    return Ok(*myid);
                }
            }
            Err("no leader among them".to_owned())
        },
    )
    .await;
    ensemble
        .every_sidecar_reports(&rest, now, Duration::from_secs(15))
        .await;

    // Space again: the member syncs and serves by itself.
    volume.free().expect("free the volume");
    eventually(
        "the member to serve again once space is freed",
        Duration::from_secs(60),
        || async move {
            let (code, body) = ensemble.sidecar_get(full, "/readyz").await?;
            let serving = ensemble
                .srvr(full)
                .await
                .is_ok_and(|s| matches!(s.mode, Mode::Follower | Mode::Leader));
            if code == 200 && serving {
                Ok(())
            } else {
                Err(format!("/readyz {code} {body}; serving {serving}"))
            }
        },
    )
    .await;
    let report = load.stop().await;
    assert!(
        report.acked.len() > 100,
        "the writes stopped while one member was full: {} acknowledged, {} failed",
        report.acked.len(),
        report.failed
    );
    // Every acknowledged write, read from the member that was full.
    let member = ensemble.client_addr(full).to_string();
    let missing = missing_writes(&member, ROOT, &report.acked)
        .await
        .expect("read the writes back");
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes are missing on member {full}: {:?}",
        missing.len(),
        report.acked.len(),
        &missing[..missing.len().min(10)]
    );
    let harm = ensemble.log_lines_containing(&HARM);
    assert!(harm.is_empty(), "the servers logged harm: {harm:#?}");
    drop(volume);
}
