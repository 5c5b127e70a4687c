//! Membership changes and rolling restarts on real ZooKeeper servers through
//! `zk-operator local`, under a steady write load from a real ZooKeeper
//! client: no acknowledged write is lost, no two leaders are ever
//! quorum-backed at once (every member's `srvr` and `mntr` sampled every
//! 50 ms), every member's dynamic config agrees at the end, and every
//! sidecar reports the new membership. A `local scale` or `local restart`
//! killed with SIGKILL between steps finishes when it is run again.

mod local_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use local_support::{Local, ZK_OPERATOR, assert_failure, assert_success, pids, text};
use serde_json::Value;
use zk_ensemble::ZooCfg;
use zk_testkit::eventually;
use zk_testkit::load::{LeaderSampler, Timeline, WriteLoad, missing_writes};

/// Short ticks keep the scenarios quick; the sidecars' 1 s polls do not
/// depend on them.
const SETTINGS: &str = "  config:\n    tickTime: 250\n";

const LOAD_ROOT: &str = "/zookube-load";

/// `zk-operator local ARGS --dir …`, run without blocking the load and the
/// sampler.
async fn run(local: &Local, args: &[&str]) -> Output {
    command(local, args)
        .output()
        .await
        .expect("run zk-operator")
}

/// `zk-operator local ARGS --dir …`, not started yet.
fn command(local: &Local, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(ZK_OPERATOR);
    command
        .arg("local")
        .args(args)
        .arg("--dir")
        .arg(local.ensemble_dir())
        .env_remove("ZOOKUBE_LOCAL_DIR");
    command
}

/// Every address a member of this test may have (voters 1..=5, observer
/// 128), as `(myid, client address)`.
fn addresses(local: &Local) -> Vec<(u8, SocketAddr)> {
    [1, 2, 3, 4, 5, 128]
        .into_iter()
        .map(|myid| (myid, SocketAddr::new(local.host(myid).into(), 2181)))
        .collect()
}

fn connect_string(addresses: &[(u8, SocketAddr)]) -> String {
    addresses
        .iter()
        .map(|(_, a)| a.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A write load and a leader sampler over `local`'s addresses.
struct Watch {
    load: WriteLoad,
    sampler: LeaderSampler,
    connect: String,
}

impl Watch {
    async fn start(local: &Local) -> Watch {
        let addresses = addresses(local);
        let connect = connect_string(&addresses);
        let load = WriteLoad::start(&connect, LOAD_ROOT, Duration::from_millis(10))
            .await
            .expect("start the write load");
        let sampler = LeaderSampler::start(addresses, Duration::from_millis(50));
        Watch {
            load,
            sampler,
            connect,
        }
    }

    /// Stops both; fails on a lost acknowledged write or a split brain.
    async fn finish(self, what: &str) -> Timeline {
        let report = self.load.stop().await;
        let timeline = self.sampler.stop().await;
        assert!(
            report.acked.len() > 100,
            "{what}: the load barely ran ({} acknowledged, {} failed)",
            report.acked.len(),
            report.failed
        );
        let missing = missing_writes(&self.connect, LOAD_ROOT, &report.acked)
            .await
            .expect("read the writes back");
        assert!(
            missing.is_empty(),
            "{what}: {} of {} acknowledged writes are lost: {:?}",
            missing.len(),
            report.acked.len(),
            &missing[..missing.len().min(10)]
        );
        let split = timeline.split_brain();
        assert!(split.is_empty(), "{what}: two leaders at once: {split:?}");
        eprintln!(
            "{what}: {} writes acknowledged ({} failed), longest without a quorum-backed leader {} ms, {} leader changes, {} samples",
            report.acked.len(),
            report.failed,
            timeline.longest_without_leader().as_millis(),
            timeline.elections(),
            timeline.len()
        );
        timeline
    }
}

/// The dynamic config a member's server runs on: the file its rewritten
/// `zoo.cfg` names, as (server ids, version suffix).
fn dynamic_config(local: &Local, myid: u8) -> Result<(Vec<i64>, String), String> {
    let conf = local
        .ensemble_dir()
        .join("members")
        .join(myid.to_string())
        .join("conf");
    let cfg = std::fs::read_to_string(conf.join("zoo.cfg")).map_err(|e| e.to_string())?;
    let cfg = ZooCfg::parse(&cfg).map_err(|e| e.to_string())?;
    let file = cfg
        .dynamic_config_file()
        .ok_or_else(|| format!("myid {myid}: zoo.cfg names no dynamic file"))?;
    let path = Path::new(file);
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: {e}"))?;
    let mut dynamic = ZooCfg::default();
    dynamic.merge_dynamic(&text).map_err(|e| e.to_string())?;
    let version = file.rsplit('.').next().unwrap_or_default().to_owned();
    Ok((dynamic.server_ids(), version))
}

/// The members run, lead and follow as `voters` and `observers` say: one
/// leader every member follows, every sidecar reporting these voters, and
/// every member's dynamic config the same.
async fn assert_membership(local: &Local, voters: &[u8], observers: &[u8]) {
    let all: Vec<u8> = voters.iter().chain(observers).copied().collect();
    let expected_voters: Vec<u64> = voters.iter().map(|v| u64::from(*v)).collect();
    let status = eventually(
        "every sidecar to report the new membership and one leader",
        Duration::from_secs(30),
        || async {
            let status = local.status()?;
            let members = status["members"].as_array().cloned().unwrap_or_default();
            let myids: Vec<u64> = members.iter().filter_map(|m| m["myid"].as_u64()).collect();
            if myids != all.iter().map(|m| u64::from(*m)).collect::<Vec<_>>() {
                return Err(format!("members {myids:?}"));
            }
            let leader = status["leader"].as_u64().ok_or("no leader")?;
            for m in &members {
                if m["leader"].as_u64() != Some(leader) || m["serving"] != Value::Bool(true) {
                    return Err(format!("{m}"));
                }
                let sidecar = m["metrics"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches("http://")
                    .trim_end_matches("/metrics")
                    .parse::<SocketAddr>()
                    .map_err(|e| e.to_string())?;
                let doc = zk_testkit::http_get(sidecar, "/v1/status").await?;
                let doc: Value = serde_json::from_str(&doc.1).map_err(|e| e.to_string())?;
                let reported: Vec<u64> = doc["quorum"]["voters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .collect();
                if reported != expected_voters {
                    return Err(format!("{} reports voters {reported:?}", m["name"]));
                }
            }
            Ok(status)
        },
    )
    .await;
    let configs = eventually(
        "every member's dynamic config to agree",
        Duration::from_secs(10),
        || async {
            let configs: Vec<(Vec<i64>, String)> = all
                .iter()
                .map(|m| dynamic_config(local, *m))
                .collect::<Result<_, _>>()?;
            let distinct: BTreeSet<&(Vec<i64>, String)> = configs.iter().collect();
            if distinct.len() == 1 {
                Ok(configs)
            } else {
                Err(format!("{configs:?}"))
            }
        },
    )
    .await;
    let listed: Vec<i64> = all.iter().map(|m| i64::from(*m)).collect();
    assert_eq!(configs[0].0, listed, "the committed servers; {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_scale_3_5_3_under_write_load_loses_nothing_and_kept_data_rejoins() {
    if zk_testkit::zookeeper().is_none() {
        return;
    }
    let local = Local::new("grow", &format!("  replicas: 3\n{SETTINGS}"));
    local.up();
    let watch = Watch::start(&local).await;

    let even = run(&local, &["scale", "--replicas", "4"]).await;
    assert_failure(
        &even,
        1,
        &["spec.replicas = 4: replicas must be odd — 1, 3, 5, 7 …"],
    );

    let up = run(&local, &["scale", "--replicas", "5"]).await;
    assert_success(&up, "scale 3 -> 5");
    assert_membership(&local, &[1, 2, 3, 4, 5], &[]).await;
    let down = run(&local, &["scale", "--replicas", "3"]).await;
    assert_success(&down, "scale 5 -> 3");
    assert_membership(&local, &[1, 2, 3], &[]).await;
    watch.finish("3 -> 5 -> 3").await;

    // The removed members' processes are gone, their data kept (the
    // default volume policy) with their myid.
    let status = local.status().expect("status");
    assert_eq!(pids(&status).len(), 6, "{status}");
    let myid = std::fs::read_to_string(local.ensemble_dir().join("data/5/myid")).expect("myid 5");
    assert_eq!(myid.trim(), "5");

    // Scaled up again, the kept data comes back as the same members: each
    // joins from its old snapshot (ZooKeeper sends it what it missed) and
    // is added again; the writes made meanwhile are on every member.
    let files = |myid: u8| -> BTreeSet<String> {
        std::fs::read_dir(local.ensemble_dir().join(format!("data/{myid}/version-2")))
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let kept_files = files(5);
    assert!(!kept_files.is_empty(), "myid 5 kept its snapshot and log");
    let again = run(&local, &["scale", "--replicas", "5"]).await;
    assert_success(&again, "scale 3 -> 5 on the kept data");
    assert_membership(&local, &[1, 2, 3, 4, 5], &[]).await;
    assert!(
        files(5).is_superset(&kept_files),
        "myid 5 started from its kept data: {kept_files:?} -> {:?}",
        files(5)
    );
    let znodes = |myid: u8| {
        let addr = SocketAddr::new(local.host(myid).into(), 2181);
        znode_count(addr)
    };
    let leader = local.status().expect("status")["leader"]
        .as_u64()
        .and_then(|l| u8::try_from(l).ok())
        .expect("a leader");
    let leader = znodes(leader).await;
    for myid in [4u8, 5] {
        let kept = std::fs::read_to_string(local.ensemble_dir().join(format!("data/{myid}/myid")))
            .expect("myid file");
        assert_eq!(kept.trim(), myid.to_string());
        let mntr = znodes(myid).await;
        assert_eq!(mntr, leader, "myid {myid} holds what the leader holds");
    }
    // Every step dropped or added a member the sidecars were polling (the
    // joiner's own sidecar starts from a config its member is not yet in).
    let harm = local.harm_lines();
    assert!(harm.is_empty(), "the servers logged harm: {harm:#?}");
}

/// Runs `zk-operator local ARGS` and kills it with SIGKILL as soon as it
/// reports its first finished step (`done: …`), as a crash or a closed
/// terminal would; returns what it printed until then.
async fn killed_after_first_step(local: &Local, args: &[&str]) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut child = command(local, args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run zk-operator");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut seen = String::new();
    let first = tokio::time::timeout(Duration::from_secs(120), async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("done: ") {
                return true;
            }
        }
        false
    })
    .await;
    child.kill().await.expect("SIGKILL zk-operator");
    assert!(
        matches!(first, Ok(true)),
        "`local {}` finished no step before it was to be killed: {seen}",
        args.join(" ")
    );
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_or_restart_killed_between_steps_finishes_when_run_again() {
    if zk_testkit::zookeeper().is_none() {
        return;
    }
    let local = Local::new("crash", &format!("  replicas: 3\n{SETTINGS}"));
    local.up();

    // Up: killed once the first joiner is started, before it is added.
    let killed = killed_after_first_step(&local, &["scale", "--replicas", "5"]).await;
    let again = run(&local, &["scale", "--replicas", "5"]).await;
    assert_success(&again, &format!("scale 3 -> 5 again, after: {killed}"));
    assert!(
        text(&again.stderr).contains("done: "),
        "the kill left nothing to finish: {killed}"
    );
    assert_membership(&local, &[1, 2, 3, 4, 5], &[]).await;

    // Down: killed once the first member is removed, before it is stopped.
    let killed = killed_after_first_step(&local, &["scale", "--replicas", "3"]).await;
    let again = run(&local, &["scale", "--replicas", "3"]).await;
    assert_success(&again, &format!("scale 5 -> 3 again, after: {killed}"));
    assert!(
        text(&again.stderr).contains("done: "),
        "the kill left nothing to finish: {killed}"
    );
    assert_membership(&local, &[1, 2, 3], &[]).await;

    // A roll killed after its first restart: run again, it rolls to the end.
    let before = local.status().expect("status");
    let killed = killed_after_first_step(&local, &["restart"]).await;
    let again = run(&local, &["restart"]).await;
    assert_success(&again, &format!("restart again, after: {killed}"));
    assert_membership(&local, &[1, 2, 3], &[]).await;
    let after = local.status().expect("status");
    let old: BTreeSet<u64> = pids(&before).into_iter().collect();
    assert!(
        pids(&after).iter().all(|p| !old.contains(p)),
        "every member restarted: {before} {after}"
    );
    let harm = local.harm_lines();
    assert!(harm.is_empty(), "the servers logged harm: {harm:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_scale_1_3_1_with_an_observer_refused_while_the_staying_voter_is_down_not_a_leaving_one()
 {
    if zk_testkit::zookeeper().is_none() {
        return;
    }
    let local = Local::new("single", &format!("  replicas: 1\n{SETTINGS}"));
    local.up();
    let watch = Watch::start(&local).await;

    let up = run(&local, &["scale", "--replicas", "3", "--observers", "1"]).await;
    assert_success(&up, "scale 1 -> 3 and an observer");
    assert_membership(&local, &[1, 2, 3], &[128]).await;

    // The one voter that is to stay is down (the others elect a new
    // leader): nothing leaves, and the refusal names it.
    let kill = run(&local, &["kill", "1"]).await;
    assert_success(&kill, "kill myid 1");
    let refused = run(&local, &["scale", "--replicas", "1", "--observers", "0"]).await;
    assert_failure(
        &refused,
        1,
        &[
            "scale-down refused: single-0 (myid 1) is down",
            "Bring it back",
        ],
    );
    let start = run(&local, &["start", "1"]).await;
    assert_success(&start, "start myid 1 again");
    assert_membership(&local, &[1, 2, 3], &[128]).await;

    // A leaving voter that is down holds nothing up: it leaves first, so
    // the others keep a quorum of every config on the way.
    let kill = run(&local, &["kill", "2"]).await;
    assert_success(&kill, "kill myid 2");
    let down = run(&local, &["scale", "--replicas", "1", "--observers", "0"]).await;
    assert_success(&down, "scale 3 -> 1 and no observer, myid 2 down");
    let steps = text(&down.stderr);
    let removed: Vec<&str> = steps
        .lines()
        .filter_map(|l| l.split("done: remove ").nth(1))
        .collect();
    assert_eq!(
        removed,
        [
            "single-observer-0 (myid 128) from the ensemble",
            "single-1 (myid 2) from the ensemble",
            "single-2 (myid 3) from the ensemble"
        ],
        "{steps}"
    );
    assert_membership(&local, &[1], &[]).await;
    watch.finish("1 -> 3+1 -> 1").await;
    let harm = local.harm_lines();
    assert!(harm.is_empty(), "the servers logged harm: {harm:#?}");
}

/// How many znodes the server at `addr` holds (`mntr`).
async fn znode_count(addr: SocketAddr) -> Option<String> {
    let mntr = zk_process::fourlw::mntr(addr, Duration::from_secs(2))
        .await
        .expect("mntr");
    mntr.get("zk_znode_count").cloned()
}

/// The order in which a change restarted members, from its progress lines.
fn restarted(out: &Output) -> Vec<u64> {
    text(&out.stderr)
        .lines()
        .filter_map(|l| l.split("done: restart ").nth(1))
        .filter_map(|rest| rest.split("(myid ").nth(1))
        .filter_map(|rest| rest.split(')').next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// The members that handed leadership over, in order.
fn handed_over(out: &Output) -> Vec<u64> {
    text(&out.stderr)
        .lines()
        .filter_map(|l| l.split("done: hand leadership over from ").nth(1))
        .filter_map(|rest| rest.split("(myid ").nth(1))
        .filter_map(|rest| rest.split(')').next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_roll_restarts_each_member_once_and_the_leader_last() {
    if zk_testkit::zookeeper().is_none() {
        return;
    }
    let local = Local::new("roll", &format!("  replicas: 3\n{SETTINGS}"));
    local.up();
    let before = local.status().expect("status");
    let leader = before["leader"].as_u64().expect("a leader");
    let watch = Watch::start(&local).await;

    // A settings change reaches every member's config through a restart.
    let changed = local.dir.path().join("changed.yaml");
    std::fs::write(
        &changed,
        format!(
            "apiVersion: zookube.io/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: roll\nspec:\n  replicas: 3\n{SETTINGS}    extra:\n      globalOutstandingLimit: \"2000\"\n"
        ),
    )
    .expect("write the changed cluster");
    let apply = run(&local, &["apply", "-f", &changed.display().to_string()]).await;
    assert_success(&apply, "apply a settings change");
    let order = restarted(&apply);
    assert_eq!(order.len(), 3, "{}", text(&apply.stderr));
    assert_eq!(order.last(), Some(&leader), "the leader restarts last");
    assert_eq!(
        handed_over(&apply),
        vec![leader],
        "the leader hands over before it restarts: {}",
        text(&apply.stderr)
    );
    for myid in 1..=3u8 {
        let cfg = std::fs::read_to_string(
            local
                .ensemble_dir()
                .join(format!("members/{myid}/conf/zoo.cfg")),
        )
        .expect("zoo.cfg");
        assert!(cfg.contains("globalOutstandingLimit=2000"), "{cfg}");
    }
    assert_membership(&local, &[1, 2, 3], &[]).await;
    let after = local.status().expect("status");
    let old: BTreeSet<u64> = pids(&before).into_iter().collect();
    assert!(
        pids(&after).iter().all(|p| !old.contains(p)),
        "every member restarted: {before} {after}"
    );

    // Applying the same file again changes nothing.
    let again = run(&local, &["apply", "-f", &changed.display().to_string()]).await;
    assert_success(&again, "apply again");
    assert!(restarted(&again).is_empty(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("nothing to change"));

    // An explicit restart rolls again, the new leader last.
    let leader = after["leader"].as_u64().expect("a leader");
    let restart = run(&local, &["restart"]).await;
    assert_success(&restart, "local restart");
    let order = restarted(&restart);
    assert_eq!(order.len(), 3, "{}", text(&restart.stderr));
    assert_eq!(order.last(), Some(&leader), "the leader restarts last");
    assert_membership(&local, &[1, 2, 3], &[]).await;
    let timeline = watch.finish("roll twice").await;
    // Only the two leader restarts moved the leadership.
    assert_eq!(timeline.elections(), 2);
    let harm = local.harm_lines();
    assert!(harm.is_empty(), "the servers logged harm: {harm:#?}");
}

/// Quorum TLS through the same membership changes: every member's
/// certificate comes from the cluster's one CA (kept in the ensemble
/// folder, so a joiner's is signed by it too), every sidecar watches over
/// TLS, and a scale 3 → 5 → 3 and a roll with its hand-off lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_quorum_scales_3_5_3_and_rolls_under_write_load_with_every_sidecar_watching() {
    if zk_testkit::zookeeper().is_none() {
        return;
    }
    let local = Local::new(
        "secure",
        &format!("  replicas: 3\n  tls:\n    quorum: {{}}\n{SETTINGS}"),
    );
    local.up();
    let ca = std::fs::read_to_string(local.ensemble_dir().join("tls/ca/ca.pem")).expect("the CA");
    let watch = Watch::start(&local).await;
    let up = run(&local, &["scale", "--replicas", "5"]).await;
    assert_success(&up, "scale 3 -> 5");
    assert_membership(&local, &[1, 2, 3, 4, 5], &[]).await;
    let leader = local.status().expect("status")["leader"]
        .as_u64()
        .expect("a leader");
    let restart = run(&local, &["restart"]).await;
    assert_success(&restart, "local restart");
    assert_eq!(
        handed_over(&restart),
        vec![leader],
        "{}",
        text(&restart.stderr)
    );
    assert_membership(&local, &[1, 2, 3, 4, 5], &[]).await;
    let down = run(&local, &["scale", "--replicas", "3"]).await;
    assert_success(&down, "scale 5 -> 3");
    assert_membership(&local, &[1, 2, 3], &[]).await;
    watch.finish("TLS 3 -> 5, roll, 5 -> 3").await;

    for myid in 1..=5u8 {
        let member = local.ensemble_dir().join(format!("members/{myid}"));
        let cfg = std::fs::read_to_string(member.join("conf/zoo.cfg")).expect("zoo.cfg");
        assert!(cfg.contains("sslQuorum=true"), "member {myid}: {cfg}");
        let trust = local
            .ensemble_dir()
            .join(format!("tls/{myid}/truststore.pem"));
        assert_eq!(
            std::fs::read_to_string(trust).expect("trust store"),
            ca,
            "member {myid} trusts the cluster's one CA"
        );
        let log = std::fs::read_to_string(member.join("sidecar.log")).expect("sidecar log");
        assert!(log.contains("quorum_tls=true"), "sidecar {myid}: {log}");
    }
    let harm = local.harm_lines();
    assert!(harm.is_empty(), "the servers logged harm: {harm:#?}");
}
