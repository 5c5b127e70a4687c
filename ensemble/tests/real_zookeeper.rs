//! Configs rendered by zk-ensemble start real ZooKeeper 3.8 servers, which
//! elect exactly one leader.

use std::time::Duration;

use zk_process::Mode;
use zk_testkit::LoopbackEnsemble;

async fn exactly_one_leader(voters: u32, observers: u32) {
    let Some(zk) = zk_testkit::zookeeper() else {
        return;
    };
    let mut ensemble = LoopbackEnsemble::new(&zk, voters, observers);
    ensemble.start_all();
    let leader = ensemble.wait_for_leader(Duration::from_secs(60)).await;

    let answers = ensemble.srvr_all().await;
    let modes: Vec<(u8, Mode)> = answers
        .iter()
        .map(|(myid, s)| (myid.get(), s.as_ref().expect("every member serves").mode))
        .collect();
    let leaders = modes.iter().filter(|(_, m)| *m == Mode::Leader).count();
    assert_eq!(leaders, 1, "{modes:?}");
    for (myid, mode) in &modes {
        let expected = if *myid == leader.get() {
            Mode::Leader
        } else if *myid >= 128 {
            Mode::Observer
        } else {
            Mode::Follower
        };
        assert_eq!(*mode, expected, "member {myid} in {modes:?}");
    }
    // Members that dial each other at once keep one connection and drop the
    // other (the larger-sid rule); ZooKeeper logs that race at ERROR level.
    let startup_races = ["Failed to send last message"];
    let refused: Vec<(zk_ensemble::Myid, String)> = ensemble
        .log_lines_containing(&["not in the peer list", " ERROR "])
        .into_iter()
        .filter(|(_, line)| !startup_races.iter().any(|race| line.contains(race)))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
}

#[tokio::test]
async fn real_zookeeper_one_voter_leads_alone() {
    exactly_one_leader(1, 0).await;
}

#[tokio::test]
async fn real_zookeeper_three_voters_and_an_observer_elect_one_leader() {
    exactly_one_leader(3, 1).await;
}
