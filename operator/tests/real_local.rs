//! `zk-operator local` end to end on real ZooKeeper servers and real
//! sidecars: up → a quorum-backed leader → kill the leader → a new one →
//! start the old leader again → it follows → down leaves no process; and
//! the failures a newcomer meets with a running or half-started ensemble.

mod local_support;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use local_support::{Local, assert_failure, assert_success, is_running, pids, text};
use serde_json::Value;
use zk_process::Mode;
use zk_testkit::eventually;

fn leader(status: &Value) -> Option<u64> {
    status["leader"].as_u64()
}

fn member(status: &Value, myid: u64) -> Value {
    status["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["myid"] == myid))
        .cloned()
        .unwrap_or(Value::Null)
}

/// What ZooKeeper itself says a member is (`srvr`).
async fn srvr_mode(local: &Local, myid: u8) -> Result<Mode, String> {
    let addr = SocketAddr::new(local.host(myid).into(), 2181);
    zk_process::fourlw::srvr(addr, Duration::from_secs(1))
        .await
        .map(|s| s.mode)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn up_kill_the_leader_start_it_again_and_down_leaves_nothing_running() {
    if zk_testkit::zookeeper().is_none() {
        return;
    }
    local_support::sidecar_built();
    let local = Local::new("lifecycle", "  replicas: 3\n");
    let up = local.up();
    let table = text(&up.stdout);
    assert!(table.contains("LEADING"), "{table}");
    assert!(
        table.contains(&format!("{}:2181", local.host(1))),
        "{table}"
    );

    // The leader the sidecars report is the one ZooKeeper reports.
    let status = local.status().expect("status after up");
    let first = leader(&status).expect("a leader right after up") as u8;
    assert_eq!(srvr_mode(&local, first).await, Ok(Mode::Leader));
    let members = status["members"].as_array().expect("members");
    assert_eq!(members.len(), 3);
    for m in members {
        let myid = m["myid"].as_u64().expect("a myid") as u8;
        assert_eq!(m["role"], "voter");
        assert_eq!(m["client"], format!("{}:2181", local.host(myid)));
        let want = if myid == first {
            "LEADING"
        } else {
            "FOLLOWING"
        };
        assert_eq!(m["state"], want, "{m}");
    }
    let mut all_pids = pids(&status);
    assert_eq!(all_pids.len(), 6, "{status}");

    // Kill the leader: the others elect a new one, and say so.
    let kill = local.run(&["kill", &first.to_string()]);
    assert_success(&kill, "local kill");
    let second = eventually(
        "a new leader after the kill",
        Duration::from_secs(30),
        || async {
            let status = local.status()?;
            match leader(&status) {
                Some(l)
                    if l != u64::from(first)
                        && member(&status, u64::from(first))["state"] == "DOWN" =>
                {
                    Ok(l as u8)
                }
                other => Err(format!("leader {other:?} in {status}")),
            }
        },
    )
    .await;
    // The sidecars may learn of the new leader before it serves.
    eventually(
        "the new leader to serve",
        Duration::from_secs(10),
        || async {
            match srvr_mode(&local, second).await? {
                Mode::Leader => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    // Start it again: it rejoins as a follower of the new leader.
    let start = local.run(&["start", &first.to_string()]);
    assert_success(&start, "local start");
    let status = local.status().expect("status after start");
    assert_eq!(leader(&status), Some(u64::from(second)), "{status}");
    let rejoined = member(&status, u64::from(first));
    assert_eq!(rejoined["state"], "FOLLOWING", "{status}");
    assert_eq!(rejoined["leader"], u64::from(second), "{status}");
    assert_eq!(srvr_mode(&local, first).await, Ok(Mode::Follower));
    all_pids.extend(pids(&status));

    // Down stops every process it started (the killed one was already gone).
    let down = local.run(&["down"]);
    assert_success(&down, "local down");
    let left: Vec<u64> = all_pids
        .iter()
        .copied()
        .filter(|p| is_running(*p))
        .collect();
    assert!(left.is_empty(), "still running after down: {left:?}");
    for myid in 1..=3 {
        let client = SocketAddr::new(local.host(myid).into(), 2181);
        assert!(
            zk_process::ensure_port_free(client).is_ok(),
            "{client} still taken"
        );
    }
    assert_failure(
        &local.run(&["down"]),
        1,
        &["nothing is running", "\"lifecycle\""],
    );
    assert_failure(&local.run(&["status"]), 1, &["nothing is running"]);
}

#[tokio::test]
async fn a_crashed_sidecar_is_brought_back_by_start_and_its_server_is_left_alone() {
    if zk_testkit::zookeeper().is_none() {
        return;
    }
    local_support::sidecar_built();
    let local = Local::new("crashed", "  replicas: 3\n");
    local.up();
    let before = member(&local.status().expect("status"), 2);
    let server = before["server"]["pid"].as_u64().expect("a server pid");
    let sidecar = before["sidecar"]["pid"].as_u64().expect("a sidecar pid");
    zk_process::signal(
        u32::try_from(sidecar).expect("a pid"),
        zk_process::Signal::SIGKILL,
    )
    .expect("kill the sidecar");
    eventually(
        "the sidecar to be gone",
        Duration::from_secs(10),
        || async {
            if is_running(sidecar) {
                Err(format!("{sidecar} still runs"))
            } else {
                Ok(())
            }
        },
    )
    .await;

    let start = local.run(&["start", "2"]);
    assert_success(&start, "local start of a member whose sidecar crashed");
    let after = member(&local.status().expect("status"), 2);
    assert_eq!(
        after["server"]["pid"].as_u64(),
        Some(server),
        "the server was left alone: {after}"
    );
    let restarted = after["sidecar"]["pid"].as_u64().expect("a new sidecar");
    assert!(restarted != sidecar && is_running(restarted), "{after}");
    assert!(
        matches!(after["state"].as_str(), Some("FOLLOWING" | "LEADING")),
        "the new sidecar reports its server: {after}"
    );

    // With both running there is nothing to start.
    assert_failure(
        &local.run(&["start", "2"]),
        1,
        &["and its sidecar are already running", "kill 2"],
    );
}

#[tokio::test]
async fn a_second_up_is_refused_while_the_first_runs() {
    if zk_testkit::zookeeper().is_none() {
        return;
    }
    local_support::sidecar_built();
    let local = Local::new("single", "  replicas: 1\n");
    local.up();
    let base = local.base.to_string();
    let file = local.file.display().to_string();
    let again = local.run(&["up", "-f", &file, "--base", &base]);
    assert_failure(
        &again,
        1,
        &["\"single\" is already running", "zk-operator local down"],
    );
    // The refusal changed nothing: the first ensemble still leads.
    let status = local.status().expect("status");
    assert_eq!(leader(&status), Some(1), "{status}");
    assert_eq!(pids(&status).len(), 2);
}

#[tokio::test]
async fn a_port_in_use_is_named_with_its_member_and_nothing_starts() {
    if zk_testkit::zookeeper().is_none() {
        return;
    }
    local_support::sidecar_built();
    let local = Local::new("ports", "  replicas: 3\n");
    let taken = SocketAddr::new(local.host(2).into(), 3888);
    let _squatter = TcpListener::bind(taken).expect("bind the election port of myid 2");
    let base = local.base.to_string();
    let file = local.file.display().to_string();
    let up = local.run(&["up", "-f", &file, "--base", &base]);
    assert_failure(
        &up,
        1,
        &[
            &format!(
                "ports-1 (myid 2) on {}: port 3888 (election) is already in use",
                local.host(2)
            ),
            "--base",
        ],
    );
    assert_failure(&local.run(&["down"]), 1, &["no local ensemble"]);
}

#[tokio::test]
async fn a_member_that_cannot_start_shows_its_log_and_nothing_is_left_running() {
    if zk_testkit::zookeeper().is_none() {
        return;
    }
    local_support::sidecar_built();
    let local = Local::new("broken", "  replicas: 3\n  jvmFlags: -XX:+NoSuchOption\n");
    let base = local.base.to_string();
    let file = local.file.display().to_string();
    let up = local.run(&["up", "-f", &file, "--base", &base]);
    assert_failure(
        &up,
        1,
        &[
            "its ZooKeeper server exited with status 1",
            "Unrecognized VM option 'NoSuchOption'",
            "zookeeper.log",
            "down --purge",
        ],
    );
    let state = std::fs::read_to_string(local.ensemble_dir().join("state.json")).expect("state");
    let state: Value = serde_json::from_str(&state).expect("state json");
    let recorded: Vec<&Value> = state["members"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| [&m["serverProcess"], &m["sidecarProcess"]])
        .filter(|p| !p.is_null())
        .collect();
    assert!(recorded.is_empty(), "processes left recorded: {recorded:?}");
    assert_failure(&local.run(&["down"]), 1, &["nothing is running"]);
}
