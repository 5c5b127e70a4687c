use zk_ensemble::status::{MemberStatus as SeenMember, QuorumStatus};

use super::*;
use crate::cluster::validate;
use crate::test_support::Cluster;

fn cluster(voters: i32, observers: i32) -> ValidatedCluster {
    Cluster::validated(voters, observers)
}

fn ts(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

/// A ready pod that runs the current configuration.
fn pod(cluster: &ValidatedCluster, name: &str) -> PodView {
    PodView {
        name: name.to_owned(),
        ready: true,
        sidecar: Some(("10.0.0.1".to_owned(), 8081)),
        role_label: None,
        config_hash: Some(cluster.config.hash.clone()),
        template_hash: None,
        terminating: false,
    }
}

fn pods(cluster: &ValidatedCluster) -> Vec<PodView> {
    cluster
        .ensemble
        .members()
        .iter()
        .map(|m| pod(cluster, &m.pod))
        .collect()
}

fn sidecar(myid: u64, state: MemberState, leader: Option<u64>, epoch: i64) -> SidecarStatus {
    SidecarStatus {
        myid,
        role: Role::of(Myid::new(i64::try_from(myid).unwrap()).unwrap()),
        state,
        leader,
        leader_phase: None,
        peer_epoch: leader.map(|_| epoch),
        election_epoch: None,
        zxid: None,
        serving: None,
        quorum: QuorumStatus::default(),
        members: Vec::new(),
        leader_since: None,
        elections: 0,
        leader_changes: 0,
        config_version: None,
        election: None,
        error: None,
    }
}

/// A healthy three-voter ensemble led by myid 2 in peer epoch 5.
fn healthy(cluster: &ValidatedCluster) -> BTreeMap<String, SidecarReading> {
    cluster
        .ensemble
        .members()
        .iter()
        .map(|m| {
            let id = u64::from(m.myid);
            let state = match (m.role, id) {
                (Role::Observer, _) => MemberState::Observing,
                (_, 2) => MemberState::Leading,
                _ => MemberState::Following,
            };
            (m.pod.clone(), Ok(sidecar(id, state, Some(2), 5)))
        })
        .collect()
}

fn condition<'a>(status: &'a ZookeeperClusterStatus, type_: &str) -> &'a Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

#[test]
fn a_healthy_ensemble_reports_its_leader_and_epoch() {
    let c = cluster(3, 1);
    let obs = observe(&c, &pods(&c), &healthy(&c));
    let status = compute(&c, &obs, None, ts(0));
    assert_eq!(
        status.leader,
        Some(LeaderStatus {
            myid: 2,
            pod: "zk-1".into()
        })
    );
    assert_eq!(status.peer_epoch, Some(5));
    assert_eq!((status.replicas, status.ready_replicas), (3, 3));
    assert_eq!((status.observers, status.ready_observers), (1, 1));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.config_hash.as_deref(), Some(c.config.hash.as_str()));
    let states: Vec<(&str, Option<&str>, bool)> = status
        .members
        .iter()
        .map(|m| (m.pod.as_str(), m.state.as_deref(), m.ready))
        .collect();
    assert_eq!(
        states,
        vec![
            ("zk-0", Some("FOLLOWING"), true),
            ("zk-1", Some("LEADING"), true),
            ("zk-2", Some("FOLLOWING"), true),
            ("zk-observer-0", Some("OBSERVING"), true),
        ]
    );
    let available = condition(&status, AVAILABLE);
    assert_eq!(available.status, "True");
    assert_eq!(
        available.message,
        "zk-1 (myid 2) leads in peer epoch 5; 3 of 3 voters ready (quorum 2)"
    );
    assert_eq!(condition(&status, PROGRESSING).status, "False");
    assert_eq!(condition(&status, DEGRADED).status, "False");
    assert_eq!(condition(&status, INVALID_SPEC).status, "False");
    assert_eq!(requeue_after(&status), REQUEUE_STABLE);
}

#[test]
fn pods_are_labelled_by_role() {
    let c = cluster(3, 1);
    let obs = observe(&c, &pods(&c), &healthy(&c));
    let changes = role_label_changes(&obs);
    let shown: Vec<(&str, Option<&str>)> = changes
        .iter()
        .map(|(pod, l)| (pod.as_str(), l.map(RoleLabel::as_str)))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("zk-0", Some("follower")),
            ("zk-1", Some("leader")),
            ("zk-2", Some("follower")),
            ("zk-observer-0", Some("observer")),
        ]
    );
}

#[test]
fn labels_already_right_are_left_alone_and_stale_ones_removed() {
    let c = cluster(3, 0);
    let mut pods = pods(&c);
    pods[0].role_label = Some("leader".into()); // zk-0 led before
    pods[1].role_label = Some("leader".into());
    pods[2].role_label = Some("follower".into());
    let mut readings = healthy(&c);
    // zk-0 is electing: it is no longer a follower of anyone.
    readings.insert("zk-0".into(), Ok(sidecar(1, MemberState::Looking, None, 0)));
    let obs = observe(&c, &pods, &readings);
    assert_eq!(role_label_changes(&obs), vec![("zk-0".to_owned(), None)]);
}

#[test]
fn without_a_leader_no_voter_is_labelled() {
    let c = cluster(3, 0);
    let readings = c
        .ensemble
        .members()
        .iter()
        .map(|m| {
            (
                m.pod.clone(),
                Ok(sidecar(u64::from(m.myid), MemberState::Looking, None, 0)),
            )
        })
        .collect();
    let obs = observe(&c, &pods(&c), &readings);
    assert_eq!(obs.leader, None);
    assert!(role_label_changes(&obs).is_empty(), "nothing to remove");
    let status = compute(&c, &obs, None, ts(0));
    let available = condition(&status, AVAILABLE);
    assert_eq!(
        (available.status.as_str(), available.reason.as_str()),
        ("False", "NoLeader")
    );
    let degraded = condition(&status, DEGRADED);
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "NoQuorum")
    );
    assert_eq!(requeue_after(&status), REQUEUE_CHANGING);
}

#[test]
fn the_newest_epoch_wins_over_a_stale_leader() {
    let a = sidecar(1, MemberState::Following, Some(1), 4);
    let b = sidecar(2, MemberState::Leading, Some(2), 5);
    let c = sidecar(3, MemberState::Following, Some(1), 4);
    assert_eq!(
        quorum_leader(&[&a, &b, &c]),
        Some(ObservedLeader {
            myid: Myid::new(2).unwrap(),
            peer_epoch: Some(5)
        })
    );
    assert_eq!(quorum_leader(&[]), None);
}

#[test]
fn an_unreachable_sidecar_is_named_and_others_speak_for_its_member() {
    let c = cluster(3, 0);
    let mut readings = healthy(&c);
    readings.insert("zk-2".into(), Err("timed out after 2s".into()));
    if let Some(Ok(s)) = readings.get_mut("zk-0") {
        s.members.push(SeenMember {
            myid: 3,
            host: "zk-2.zk-headless.default.svc.cluster.local".into(),
            role: Role::Voter,
            state: Some(MemberState::Following),
            leader: Some(2),
            peer_epoch: Some(5),
            election_epoch: None,
            reachable: true,
            last_reply_age_seconds: Some(0.5),
            error: None,
        });
    }
    let obs = observe(&c, &pods(&c), &readings);
    let zk2 = &obs.members[2];
    assert_eq!(zk2.state, Some(MemberState::Following));
    assert_eq!(zk2.sidecar_error.as_deref(), Some("timed out after 2s"));
    let status = compute(&c, &obs, None, ts(0));
    assert_eq!(condition(&status, AVAILABLE).status, "True");
    let degraded = condition(&status, DEGRADED);
    assert_eq!(degraded.status, "True");
    assert_eq!(
        degraded.message,
        "zk-2's sidecar did not answer (timed out after 2s)"
    );
}

#[test]
fn too_few_ready_voters_is_not_available_even_with_a_leader() {
    let c = cluster(3, 0);
    let mut pods = pods(&c);
    pods[0].ready = false;
    pods[2].ready = false;
    let obs = observe(&c, &pods, &healthy(&c));
    let status = compute(&c, &obs, None, ts(0));
    let available = condition(&status, AVAILABLE);
    assert_eq!(available.reason, "TooFewReadyVoters");
    assert_eq!(available.message, "1 of 3 voters ready; a quorum needs 2");
    assert_eq!(status.ready_replicas, 1);
}

#[test]
fn a_new_cluster_is_progressing_while_pods_are_created() {
    let c = cluster(3, 0);
    let obs = observe(&c, &[], &BTreeMap::new());
    let status = compute(&c, &obs, None, ts(0));
    let progressing = condition(&status, PROGRESSING);
    assert_eq!(progressing.status, "True");
    assert_eq!(progressing.reason, "CreatingMembers");
    assert_eq!(progressing.message, "waiting for zk-0, zk-1, zk-2");
    assert_eq!((status.replicas, status.ready_replicas), (0, 0));
    assert_eq!(status.members.len(), 3);
    assert_eq!(requeue_after(&status), REQUEUE_CHANGING);
}

#[test]
fn pods_on_an_older_configuration_are_pending_a_restart() {
    let c = cluster(3, 0);
    let mut pods = pods(&c);
    pods[1].config_hash = Some("0123456789abcdef".into());
    let obs = observe(&c, &pods, &healthy(&c));
    let status = compute(&c, &obs, None, ts(0));
    let progressing = condition(&status, PROGRESSING);
    assert_eq!(progressing.reason, "RestartPending");
    assert!(
        progressing
            .message
            .starts_with("zk-1 run an older configuration")
    );
}

#[test]
fn pods_beyond_the_spec_are_shown_while_they_leave() {
    let c = cluster(3, 0);
    let mut pods = pods(&c);
    pods.push(pod(&c, "zk-3"));
    pods.push(pod(&c, "zk-4"));
    let obs = observe(&c, &pods, &healthy(&c));
    let status = compute(&c, &obs, None, ts(0));
    assert_eq!(status.replicas, 5, "the pods that still exist");
    assert_eq!(status.members.len(), 5);
    let progressing = condition(&status, PROGRESSING);
    assert_eq!(progressing.reason, "RemovingMembers");
    assert_eq!(progressing.message, "zk-3, zk-4 still running");
}

#[test]
fn an_unchanged_cluster_gets_an_identical_status() {
    let c = cluster(3, 0);
    let obs = observe(&c, &pods(&c), &healthy(&c));
    let first = compute(&c, &obs, None, ts(0));
    let second = compute(&c, &obs, Some(&first), ts(60));
    assert_eq!(first, second);
    assert!(notices(Some(&first), &second).is_empty());
}

#[test]
fn transition_times_move_only_when_a_condition_flips() {
    let c = cluster(3, 0);
    let first = compute(&c, &observe(&c, &pods(&c), &healthy(&c)), None, ts(0));
    let mut down = pods(&c);
    down[0].ready = false;
    let second = compute(&c, &observe(&c, &down, &healthy(&c)), Some(&first), ts(30));
    assert_eq!(
        condition(&second, AVAILABLE).last_transition_time,
        Time(ts(0)),
        "still available"
    );
    assert_eq!(
        condition(&second, DEGRADED).last_transition_time,
        Time(ts(30))
    );
}

#[test]
fn leader_changes_and_quorum_loss_are_noticed() {
    let c = cluster(3, 0);
    let before = compute(&c, &observe(&c, &pods(&c), &healthy(&c)), None, ts(0));
    assert_eq!(
        notices(None, &before),
        vec![Notice::LeaderElected("zk-1 leads in peer epoch 5".into())]
    );

    let mut readings = healthy(&c);
    for s in readings.values_mut().flatten() {
        s.leader = Some(3);
        s.peer_epoch = Some(6);
    }
    let after = compute(
        &c,
        &observe(&c, &pods(&c), &readings),
        Some(&before),
        ts(10),
    );
    assert_eq!(
        notices(Some(&before), &after),
        vec![Notice::LeaderElected(
            "zk-2 leads in peer epoch 6 (was zk-1 in peer epoch 5)".into()
        )]
    );

    let lost = compute(
        &c,
        &observe(&c, &pods(&c), &BTreeMap::new()),
        Some(&after),
        ts(20),
    );
    assert!(matches!(
        notices(Some(&after), &lost).as_slice(),
        [Notice::QuorumLost(_)]
    ));
}

#[test]
fn an_invalid_spec_keeps_the_last_observation_and_says_why() {
    let c = cluster(3, 0);
    let before = compute(&c, &observe(&c, &pods(&c), &healthy(&c)), None, ts(0));
    let problems = validate(&Cluster::test().replicas(4).generation(2).build()).unwrap_err();
    let status = invalid(Some(&before), &problems, Some(2), ts(5));
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.leader, before.leader, "the ensemble still runs");
    let condition = condition(&status, INVALID_SPEC);
    assert_eq!(condition.status, "True");
    assert!(
        condition
            .message
            .contains(zk_ensemble::messages::REPLICAS_ODD)
    );
    assert_eq!(condition.observed_generation, Some(2));
    assert_eq!(
        notices(Some(&before), &status),
        vec![Notice::InvalidSpec(condition.message.clone())]
    );
    // The same problem again is no news.
    let again = invalid(Some(&status), &problems, Some(2), ts(9));
    assert_eq!(again, status);
    assert!(notices(Some(&status), &again).is_empty());
}

#[test]
fn pod_names_map_back_to_myids() {
    let id = |pod| myid_of_pod("zk", pod).map(Myid::get);
    assert_eq!(id("zk-0"), Some(1));
    assert_eq!(id("zk-observer-2"), Some(130));
    assert_eq!(id("other-0"), None);
    assert_eq!(id("zk-x"), None);
    assert_eq!(
        myid_of_pod("zk-observer", "zk-observer-1").map(Myid::get),
        Some(2)
    );
}

#[test]
fn a_pod_view_reads_readiness_ip_port_and_labels() {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "zk-1",
            "labels": {"zookube.io/role": "leader"},
            "annotations": {"zookube.io/config-hash": "abc"}
        },
        "spec": {"containers": [
            {"name": "zookeeper"},
            {"name": "sidecar", "ports": [{"name": "sidecar", "containerPort": 9000}]}
        ]},
        "status": {
            "phase": "Running",
            "podIP": "10.1.2.3",
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .unwrap();
    let view = PodView::of(&pod);
    assert!(view.ready);
    assert_eq!(view.sidecar, Some(("10.1.2.3".into(), 9000)));
    assert_eq!(view.role_label.as_deref(), Some("leader"));
    assert_eq!(view.config_hash.as_deref(), Some("abc"));
    let pending: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "zk-2"},
        "status": {"phase": "Pending", "podIP": "10.1.2.4"}
    }))
    .unwrap();
    assert_eq!(PodView::of(&pending).sidecar, None, "nothing listens yet");
}

fn refusal(kind: &str, name: &str, message: &str) -> Refusal {
    Refusal {
        kind: kind.into(),
        name: name.into(),
        message: message.into(),
    }
}

#[test]
fn a_refused_child_degrades_the_cluster_named_by_its_kind() {
    let cases = [
        (vec![], None),
        (
            vec![refusal("StatefulSet", "zk", "spec: Forbidden")],
            Some("StatefulSetRefused"),
        ),
        (
            vec![
                refusal("ConfigMap", "zk-config", "too big"),
                refusal("PodDisruptionBudget", "zk", "denied"),
            ],
            Some("ConfigMapRefused"),
        ),
        (
            vec![refusal("Service", "zk-client", "x")],
            Some("ServiceRefused"),
        ),
        (
            vec![refusal("PodDisruptionBudget", "zk", "x")],
            Some("PodDisruptionBudgetRefused"),
        ),
    ];
    for (refusals, reason) in cases {
        let draft = refused(&refusals);
        assert_eq!(draft.as_ref().map(|d| d.reason), reason, "{refusals:?}");
        if let Some(draft) = draft {
            assert_eq!(draft.type_, DEGRADED);
            assert!(draft.status);
            for r in &refusals {
                let named = format!("{} {}: {}", r.kind, r.name, r.message);
                assert!(draft.message.contains(&named), "{}", draft.message);
            }
        }
    }
}

#[test]
fn a_refusal_is_announced_once_while_it_lasts() {
    let c = cluster(3, 0);
    let healthy_status = compute(&c, &observe(&c, &pods(&c), &healthy(&c)), None, ts(0));
    let refuse = |previous: &ZookeeperClusterStatus, message: &str, at: i64| {
        let mut status = previous.clone();
        let draft = refused(&[refusal("StatefulSet", "zk", message)]).unwrap();
        set_condition(&mut status, Some(previous), draft, Some(1), ts(at));
        status
    };
    let first = refuse(&healthy_status, "spec: Forbidden", 10);
    assert!(matches!(
        notices(Some(&healthy_status), &first).as_slice(),
        [Notice::Refused("StatefulSetRefused", m)] if m.starts_with("StatefulSet zk: spec: Forbidden")
    ));
    let same = refuse(&first, "spec: Forbidden", 20);
    assert!(notices(Some(&first), &same).is_empty());
    let other = refuse(&same, "quota exceeded", 30);
    assert_eq!(notices(Some(&same), &other).len(), 1);
    // Cleared by an ordinary status once the apply succeeds.
    let cleared = compute(
        &c,
        &observe(&c, &pods(&c), &healthy(&c)),
        Some(&other),
        ts(40),
    );
    assert_eq!(condition(&cleared, DEGRADED).status, "False");
    assert!(notices(Some(&other), &cleared).is_empty());
}
