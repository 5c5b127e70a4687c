use zk_ensemble::plan::Membership;
use zk_ensemble::status::QuorumStatus;
use zk_ensemble::{MemberState, SidecarStatus};

use super::*;
use crate::test_support::Cluster;

fn id(n: u8) -> Myid {
    Myid::new(i64::from(n)).unwrap()
}

fn cluster(voters: i32, observers: i32) -> ValidatedCluster {
    Cluster::validated(voters, observers)
}

fn templates() -> Templates {
    Templates {
        voter: Some("v1".into()),
        observer: Some("o1".into()),
    }
}

fn pod(name: &str, template: &str) -> PodView {
    PodView {
        name: name.to_owned(),
        ready: true,
        sidecar: Some(("10.0.0.7".to_owned(), 8081)),
        role_label: None,
        config_hash: None,
        template_hash: Some(template.to_owned()),
        terminating: false,
    }
}

fn servers(ids: &[u8]) -> BTreeMap<Myid, Role> {
    ids.iter().map(|n| (id(*n), id(*n).role())).collect()
}

fn current(voters: u32, observers: Option<u32>, listed: &[u8]) -> Current {
    Current {
        voter_pods: Some(voters),
        observer_pods: observers,
        servers: Some(servers(listed)),
    }
}

fn status(myid: u64, state: MemberState, leader: u64) -> SidecarStatus {
    SidecarStatus {
        myid,
        role: Role::Voter,
        state,
        leader: Some(leader),
        leader_phase: None,
        peer_epoch: Some(1),
        election_epoch: Some(1),
        zxid: None,
        serving: Some(true),
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

/// Sidecars of pods `zk-0` … `zk-{pods - 1}`, each watching the committed
/// config of `members`.
fn watching(members: &[u8], pods: u8) -> BTreeMap<String, SidecarReading> {
    (0..pods)
        .map(|i| {
            let mut s = status(u64::from(i) + 1, MemberState::Following, 1);
            s.members = members
                .iter()
                .map(|m| zk_ensemble::status::MemberStatus {
                    myid: u64::from(*m),
                    host: String::new(),
                    role: id(*m).role(),
                    state: Some(MemberState::Following),
                    leader: Some(1),
                    peer_epoch: Some(1),
                    election_epoch: Some(1),
                    reachable: true,
                    last_reply_age_seconds: None,
                    error: None,
                })
                .collect();
            (format!("zk-{i}"), Ok(s))
        })
        .collect()
}

#[test]
fn a_cluster_as_its_spec_asks_needs_no_look_at_the_ensemble() {
    let c = cluster(3, 0);
    let pods = vec![pod("zk-0", "v1"), pod("zk-1", "v1"), pod("zk-2", "v1")];
    // The objects show the spec, but the sidecars watch a committed config
    // without myid 3 (a joiner not added yet), or do not answer.
    assert!(!settled(
        &c,
        &current(3, None, &[1, 2, 3]),
        &pods,
        &watching(&[1, 2], 3),
        &templates()
    ));
    assert!(!settled(
        &c,
        &current(3, None, &[1, 2, 3]),
        &pods,
        &BTreeMap::new(),
        &templates()
    ));
    assert!(settled(
        &c,
        &current(3, None, &[1, 2, 3]),
        &pods,
        &watching(&[1, 2, 3], 3),
        &templates()
    ));
    // A pod the StatefulSet has yet to create needs nobody else.
    assert!(settled(
        &c,
        &current(3, None, &[1, 2, 3]),
        &pods[..2],
        &watching(&[1, 2, 3], 3),
        &templates()
    ));
    // A scale request, a stale pod, a pod beyond the spec, a ConfigMap
    // listing a joiner, a pod being deleted: each needs the planner.
    let mut five = cluster(5, 0);
    assert!(!settled(
        &five,
        &current(3, None, &[1, 2, 3]),
        &pods,
        &watching(&[1, 2, 3], 3),
        &templates()
    ));
    five = cluster(3, 0);
    let stale = vec![pod("zk-0", "v1"), pod("zk-1", "v0"), pod("zk-2", "v1")];
    assert!(!settled(
        &five,
        &current(3, None, &[1, 2, 3]),
        &stale,
        &watching(&[1, 2, 3], 3),
        &templates()
    ));
    let mut extra = pods.clone();
    extra.push(pod("zk-3", "v1"));
    assert!(!settled(
        &c,
        &current(3, None, &[1, 2, 3]),
        &extra,
        &watching(&[1, 2, 3], 3),
        &templates()
    ));
    assert!(!settled(
        &c,
        &current(3, None, &[1, 2, 3, 4]),
        &pods,
        &watching(&[1, 2, 3], 3),
        &templates()
    ));
    let mut going = pods.clone();
    going[0].terminating = true;
    assert!(!settled(
        &c,
        &current(3, None, &[1, 2, 3]),
        &going,
        &watching(&[1, 2, 3], 3),
        &templates()
    ));
    let with_observer = cluster(3, 1);
    assert!(!settled(
        &with_observer,
        &current(3, None, &[1, 2, 3]),
        &pods,
        &watching(&[1, 2, 3], 3),
        &templates()
    ));
}

#[test]
fn pods_and_sidecars_become_the_planners_members() {
    let c = cluster(3, 0);
    let mut pods = vec![pod("zk-0", "v1"), pod("zk-1", "v0"), pod("zk-2", "v1")];
    pods[2].ready = false;
    pods.push(pod("other-0", "v1"));
    let sidecars = BTreeMap::from([
        ("zk-0".to_owned(), Ok(status(1, MemberState::Leading, 1))),
        ("zk-1".to_owned(), Ok(status(2, MemberState::Following, 1))),
        ("zk-2".to_owned(), Err("no answer".to_owned())),
    ]);
    let committed = Membership {
        version: 7,
        servers: servers(&[1, 2, 3]),
    };
    let observed = observation(&c, &pods, &sidecars, Some(committed.clone()), &templates());
    assert_eq!(observed.leader, Some(id(1)));
    assert_eq!(observed.committed, Some(committed));
    let m: Vec<(u8, Option<MemberState>, bool, bool, bool)> = observed
        .members
        .iter()
        .map(|m| (m.myid.get(), m.state, m.serving, m.ready, m.current))
        .collect();
    assert_eq!(
        m,
        vec![
            (1, Some(MemberState::Leading), true, true, true),
            (2, Some(MemberState::Following), true, true, false),
            // Its sidecar did not answer: nobody else saw it either.
            (3, None, false, false, true),
        ]
    );
}

fn start(myid: u8) -> Step {
    let mut s = servers(&[1, 2, 3]);
    s.insert(id(myid), id(myid).role());
    Step::Start {
        myid: id(myid),
        servers: s,
    }
}

fn observed(committed: &[u8], running: &[u8]) -> Observation {
    Observation {
        committed: Some(Membership {
            version: 1,
            servers: servers(committed),
        }),
        leader: Some(id(1)),
        members: running
            .iter()
            .map(|n| zk_ensemble::plan::MemberObservation {
                myid: id(*n),
                state: Some(MemberState::Following),
                serving: true,
                leader: Some(id(1)),
                ready: true,
                terminating: false,
                current: true,
            })
            .collect(),
    }
}

#[test]
fn a_start_lists_the_joiner_before_its_pod_exists() {
    let c = cluster(5, 0);
    let now = current(3, None, &[1, 2, 3]);
    let seen = observed(&[1, 2, 3], &[1, 2, 3]);
    let members = members(&c, &now, Some(&seen), Some(&start(4)));
    assert_eq!(members.voter_pods, 4);
    assert_eq!(members.servers, servers(&[1, 2, 3, 4]));
    // The ConfigMap follows: the committed servers and the joiner.
    let built = c.with_members(members);
    assert!(
        built.config.zoo_cfg.contains(
            "server.4=zk-3.zk-headless.default.svc.cluster.local:2888:3888:participant;2181"
        ),
        "{}",
        built.config.zoo_cfg
    );
    assert!(!built.config.zoo_cfg.contains("server.5="));
}

#[test]
fn a_stop_shrinks_only_the_last_pod_and_the_config_drops_the_removed_member() {
    let c = cluster(3, 0);
    let now = current(5, None, &[1, 2, 3, 4, 5]);
    let seen = observed(&[1, 2, 3, 4], &[1, 2, 3, 4, 5]);
    let stop = Step::Stop { myid: id(5) };
    let members = members(&c, &now, Some(&seen), Some(&stop));
    assert_eq!(members.voter_pods, 4);
    assert_eq!(members.servers, servers(&[1, 2, 3, 4]));
    // The budget follows the voters the members run with.
    assert_eq!(members.voters(), 4);
}

#[test]
fn without_a_step_nothing_moves_and_a_new_cluster_gets_the_spec() {
    let c = cluster(5, 1);
    let now = current(3, None, &[1, 2, 3]);
    let held = members(&c, &now, None, None);
    assert_eq!((held.voter_pods, held.observer_pods), (3, 0));
    assert_eq!(held.servers, servers(&[1, 2, 3]));
    let fresh = members(&c, &Current::default(), None, None);
    assert_eq!(fresh, Members::of_spec(&c.ensemble));
    // A StatefulSet scaled by hand beyond the members the ConfigMap lists
    // comes back to them even while the ensemble cannot be read.
    let drifted = members(&c, &current(5, Some(2), &[1, 2, 3]), None, None);
    assert_eq!((drifted.voter_pods, drifted.observer_pods), (3, 0));
    // Done: the spec, whatever exists.
    let done = members(
        &c,
        &now,
        Some(&observed(&[1, 2, 3], &[])),
        Some(&Step::Done),
    );
    assert_eq!(done, Members::of_spec(&c.ensemble));
}

#[test]
fn the_configmaps_servers_are_read_back() {
    let c = cluster(3, 1);
    assert_eq!(
        servers_of(&c.config.zoo_cfg),
        Some(servers(&[1, 2, 3, 128]))
    );
    assert_eq!(servers_of("server.x=a:1:2\n"), None);
}

#[test]
fn the_ensemble_is_reached_on_every_running_pods_ip() {
    let mut pods = vec![pod("zk-0", "v1"), pod("zk-1", "v1"), pod("zk-2", "v1")];
    pods[1].sidecar = None;
    pods[2].sidecar = Some(("fd00::2".into(), 8081));
    let target = target(&pods, 2181, "pw");
    assert_eq!(target.connect, "10.0.0.7:2181,[fd00::2]:2181");
}

#[test]
fn steps_set_the_progressing_condition() {
    let desired = Desired {
        cluster: "zk".into(),
        voters: 5,
        observers: 0,
    };
    assert_eq!(progressing(&Step::Done, &desired), None);
    let (active, reason, message) = progressing(&start(4), &desired).unwrap();
    assert!(active);
    assert_eq!(reason, "ScalingUp");
    assert!(message.starts_with("start zk-3 (myid 4)"), "{message}");
    let refused = Step::Refuse(zk_ensemble::plan::Refusal::MembersDown {
        change: zk_ensemble::plan::Change::ScaleDown,
        down: vec![id(2)],
    });
    let (active, reason, _) = progressing(&refused, &desired).unwrap();
    assert!(!active);
    assert_eq!(reason, "ChangeRefused");
}
