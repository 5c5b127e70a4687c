//! The sidecar's Prometheus metrics (`GET /metrics`), shared by `run` and
//! `vote`. Every name is listed in the README; dashboards and alerts query
//! them, so renaming one is a breaking change.
//!
//! Gauges and the two election counters are brought up to date from the
//! [`SidecarStatus`] document right before each scrape ([`Metrics::observe`]),
//! so `/metrics` and `/v1/status` can never disagree. Events that the status
//! does not carry (election durations, poll errors, probe failures) are
//! recorded as they happen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use zk_ensemble::SidecarStatus;
use zk_ensemble::status::MemberState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WordLabel {
    word: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// Upper bounds of `zookube_election_duration_seconds`: a crash election on
/// an idle ensemble ends in well under a second; a silent leader takes
/// `tickTime × syncLimit` (10 s with the defaults) before it even starts.
const ELECTION_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0,
];

/// ZooKeeper's own `mntr` numbers the sidecar re-exports: `(mntr key,
/// metric name without the prefix, help, scale to base units)`.
const MNTR_GAUGES: [(&str, &str, &str, f64); 9] = [
    (
        "zk_avg_latency",
        "zookeeper_latency_avg_seconds",
        "The local server's average request latency (mntr zk_avg_latency).",
        1e-3,
    ),
    (
        "zk_max_latency",
        "zookeeper_latency_max_seconds",
        "The local server's largest request latency since its counters were reset (mntr zk_max_latency).",
        1e-3,
    ),
    (
        "zk_outstanding_requests",
        "zookeeper_outstanding_requests",
        "Requests queued at the local server (mntr zk_outstanding_requests).",
        1.0,
    ),
    (
        "zk_num_alive_connections",
        "zookeeper_alive_connections",
        "Client connections to the local server (mntr zk_num_alive_connections).",
        1.0,
    ),
    (
        "zk_znode_count",
        "zookeeper_znodes",
        "Znodes in the local server's data tree (mntr zk_znode_count).",
        1.0,
    ),
    (
        "zk_watch_count",
        "zookeeper_watches",
        "Watches set on the local server (mntr zk_watch_count).",
        1.0,
    ),
    (
        "zk_approximate_data_size",
        "zookeeper_data_bytes",
        "Approximate size of the local server's data tree (mntr zk_approximate_data_size).",
        1.0,
    ),
    (
        "zk_open_file_descriptor_count",
        "zookeeper_open_file_descriptors",
        "File descriptors the local server has open (mntr zk_open_file_descriptor_count).",
        1.0,
    ),
    (
        "zk_synced_followers",
        "zookeeper_synced_followers",
        "Followers in sync with the local server while it leads, else 0 (mntr zk_synced_followers).",
        1.0,
    ),
];

/// Every metric of the sidecar, registered once.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    member_state: Family<StateLabel, Gauge>,
    leader_myid: Gauge,
    peer_epoch: Gauge,
    election_epoch: Gauge,
    quorum_established: Gauge,
    members_reachable: Gauge,
    members: Gauge,
    voters: Gauge,
    voters_reachable: Gauge,
    quorum_size: Gauge,
    elections: Counter,
    leader_changes: Counter,
    election_duration: Histogram,
    poll_errors: Family<ReasonLabel, Counter>,
    polls: Counter,
    replies: Counter,
    connects: Counter,
    probe_failures: Family<WordLabel, Counter>,
    zookeeper_up: Gauge,
    mntr: BTreeMap<&'static str, (Gauge<f64, AtomicU64>, f64)>,
    /// What the counters were last brought up to (see [`Metrics::observe`]).
    seen_elections: AtomicU64,
    seen_leader_changes: AtomicU64,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("zookube");
        let member_state = Family::<StateLabel, Gauge>::default();
        registry.register(
            "member_state",
            "The local member's state, one-hot: LOOKING, FOLLOWING, LEADING, OBSERVING, or DOWN when its server does not answer.",
            member_state.clone(),
        );
        for state in MemberState::ALL {
            member_state
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(0);
        }
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let leader_myid = gauge(
            &mut registry,
            "leader_myid",
            "The myid of the quorum-backed leader; 0 while none is known.",
        );
        let peer_epoch = gauge(
            &mut registry,
            "peer_epoch",
            "The epoch the quorum-backed leader leads in (the last known one while none is known).",
        );
        let election_epoch = gauge(
            &mut registry,
            "election_epoch",
            "The local member's election epoch (logical clock). Not monotonic: it resets when the member restarts.",
        );
        let quorum_established = gauge(
            &mut registry,
            "quorum_established",
            "1 when a quorum-backed leader is known, else 0.",
        );
        let members_reachable = gauge(
            &mut registry,
            "members_reachable",
            "Members (voters and observers) that answered the watcher recently.",
        );
        // The totals beside the reachable counts let an alert say "a member
        // is unreachable" or "exactly a quorum is left" without knowing the
        // ensemble's size.
        let members = gauge(
            &mut registry,
            "members",
            "Members (voters and observers) in the newest config the sidecar knows.",
        );
        let voters = gauge(
            &mut registry,
            "voters",
            "Voters in the newest config the sidecar knows.",
        );
        let voters_reachable = gauge(
            &mut registry,
            "voters_reachable",
            "Voters that answered the watcher recently.",
        );
        let quorum_size = gauge(
            &mut registry,
            "quorum_size",
            "How many voters form a quorum.",
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let elections = counter(
            &mut registry,
            "elections",
            "Elections the sidecar saw end in a leader (a new leader, or a new epoch) since it started.",
        );
        let leader_changes = counter(
            &mut registry,
            "leader_changes",
            "Times the quorum-backed leader's myid changed since the sidecar started.",
        );
        let election_duration = Histogram::new(ELECTION_BUCKETS);
        registry.register(
            "election_duration_seconds",
            "From the moment the sidecar lost the quorum-backed leader to the moment it knew the next one.",
            election_duration.clone(),
        );
        let poll_errors = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "watcher_poll_errors",
            "Failed connections, unanswered polls and unusable replies on members' election ports, by reason.",
            poll_errors.clone(),
        );
        let polls = counter(
            &mut registry,
            "watcher_polls",
            "Polls sent to members' election ports (at most one per member per poll interval).",
        );
        let replies = counter(
            &mut registry,
            "watcher_replies",
            "Notifications received from members' election ports.",
        );
        let connects = counter(
            &mut registry,
            "watcher_connects",
            "Election-port connections the watcher opened.",
        );
        let probe_failures = Family::<WordLabel, Counter>::default();
        registry.register(
            "local_probe_failures",
            "Four-letter-word probes of the local server that failed (no answer, or not serving for srvr and mntr), by word.",
            probe_failures.clone(),
        );
        let zookeeper_up = gauge(
            &mut registry,
            "zookeeper_up",
            "1 when the local server answered `ruok` with `imok` at the last probe, else 0.",
        );
        let mut mntr = BTreeMap::new();
        for (key, name, help, scale) in MNTR_GAUGES {
            let g = Gauge::<f64, AtomicU64>::default();
            registry.register(name, help, g.clone());
            mntr.insert(key, (g, scale));
        }
        let build_info = Family::<VersionLabel, Gauge>::default();
        registry.register(
            "build_info",
            "Always 1; the label carries the sidecar's version.",
            build_info.clone(),
        );
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        Metrics {
            registry,
            member_state,
            leader_myid,
            peer_epoch,
            election_epoch,
            quorum_established,
            members_reachable,
            members,
            voters,
            voters_reachable,
            quorum_size,
            elections,
            leader_changes,
            election_duration,
            poll_errors,
            polls,
            replies,
            connects,
            probe_failures,
            zookeeper_up,
            mntr,
            seen_elections: AtomicU64::new(0),
            seen_leader_changes: AtomicU64::new(0),
        }
    }

    /// Brings the gauges and the election counters up to `status`.
    pub(crate) fn observe(&self, status: &SidecarStatus) {
        for state in MemberState::ALL {
            self.member_state
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(i64::from(state == status.state));
        }
        self.leader_myid
            .set(status.leader.map_or(0, |l| i64::try_from(l).unwrap_or(0)));
        if let Some(epoch) = status.peer_epoch {
            self.peer_epoch.set(epoch);
        }
        if let Some(epoch) = status.election_epoch {
            self.election_epoch.set(epoch);
        }
        self.quorum_established
            .set(i64::from(status.quorum.established));
        let reachable = status.members.iter().filter(|m| m.reachable).count();
        self.members_reachable
            .set(i64::try_from(reachable).unwrap_or(i64::MAX));
        self.members
            .set(i64::try_from(status.members.len()).unwrap_or(i64::MAX));
        self.voters
            .set(i64::try_from(status.quorum.voters.len()).unwrap_or(i64::MAX));
        self.voters_reachable
            .set(i64::from(status.quorum.reachable));
        self.quorum_size.set(i64::from(status.quorum.size));
        catch_up(&self.elections, &self.seen_elections, status.elections);
        catch_up(
            &self.leader_changes,
            &self.seen_leader_changes,
            status.leader_changes,
        );
    }

    /// An election the sidecar saw from its start to its end.
    pub(crate) fn election_finished(&self, seconds: f64) {
        self.election_duration.observe(seconds);
    }

    pub(crate) fn poll_error(&self, reason: &'static str) {
        self.poll_errors
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub(crate) fn poll_sent(&self) {
        self.polls.inc();
    }

    pub(crate) fn reply_received(&self) {
        self.replies.inc();
    }

    pub(crate) fn connected(&self) {
        self.connects.inc();
    }

    pub(crate) fn probe_failed(&self, word: &'static str) {
        self.probe_failures.get_or_create(&WordLabel { word }).inc();
    }

    pub(crate) fn zookeeper_up(&self, up: bool) {
        self.zookeeper_up.set(i64::from(up));
    }

    /// Re-exports the `mntr` numbers the sidecar knows (others are ignored).
    pub(crate) fn observe_mntr(&self, mntr: &BTreeMap<String, String>) {
        for (key, (gauge, scale)) in &self.mntr {
            if let Some(value) = mntr.get(*key).and_then(|v| v.parse::<f64>().ok()) {
                gauge.set(value * scale);
            } else if *key == "zk_synced_followers" {
                gauge.set(0.0); // only a leader reports it
            }
        }
    }

    /// The text exposition format.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Counters only go up: add what `total` gained since the last call.
fn catch_up(counter: &Counter, seen: &AtomicU64, total: u64) {
    let before = seen.fetch_max(total, Ordering::Relaxed);
    if total > before {
        counter.inc_by(total - before);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use zk_ensemble::Role;
    use zk_ensemble::status::{MemberStatus, QuorumStatus};

    pub(crate) fn status() -> SidecarStatus {
        SidecarStatus {
            myid: 1,
            role: Role::Voter,
            state: MemberState::Following,
            leader: Some(3),
            leader_phase: None,
            peer_epoch: Some(2),
            election_epoch: Some(0),
            zxid: None,
            serving: Some(true),
            quorum: QuorumStatus {
                size: 2,
                voters: vec![1, 2, 3],
                reachable: 2,
                established: true,
            },
            members: vec![MemberStatus {
                myid: 1,
                host: "a".into(),
                role: Role::Voter,
                state: Some(MemberState::Following),
                leader: Some(3),
                peer_epoch: Some(2),
                election_epoch: Some(0),
                reachable: true,
                last_reply_age_seconds: Some(0.1),
                error: None,
            }],
            leader_since: None,
            elections: 2,
            leader_changes: 1,
            config_version: None,
            election: None,
            error: None,
        }
    }

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in\n{text}"))
    }

    #[test]
    fn the_documented_names_are_exported_from_the_status() {
        let metrics = Metrics::new();
        metrics.observe(&status());
        metrics.election_finished(0.4);
        metrics.poll_error("connect");
        let text = metrics.encode();
        assert_eq!(
            line(&text, "zookube_member_state{state=\"FOLLOWING\"}"),
            "zookube_member_state{state=\"FOLLOWING\"} 1"
        );
        assert_eq!(
            line(&text, "zookube_member_state{state=\"DOWN\"}"),
            "zookube_member_state{state=\"DOWN\"} 0"
        );
        assert_eq!(line(&text, "zookube_leader_myid "), "zookube_leader_myid 3");
        assert_eq!(line(&text, "zookube_peer_epoch "), "zookube_peer_epoch 2");
        assert_eq!(
            line(&text, "zookube_quorum_established "),
            "zookube_quorum_established 1"
        );
        assert_eq!(
            line(&text, "zookube_members_reachable "),
            "zookube_members_reachable 1"
        );
        assert_eq!(line(&text, "zookube_members "), "zookube_members 1");
        assert_eq!(line(&text, "zookube_voters "), "zookube_voters 3");
        assert_eq!(
            line(&text, "zookube_voters_reachable "),
            "zookube_voters_reachable 2"
        );
        assert_eq!(line(&text, "zookube_quorum_size "), "zookube_quorum_size 2");
        assert_eq!(
            line(&text, "zookube_elections_total "),
            "zookube_elections_total 2"
        );
        assert_eq!(
            line(&text, "zookube_leader_changes_total "),
            "zookube_leader_changes_total 1"
        );
        assert_eq!(
            line(&text, "zookube_election_duration_seconds_count "),
            "zookube_election_duration_seconds_count 1"
        );
        assert_eq!(
            line(&text, "zookube_watcher_poll_errors_total{"),
            "zookube_watcher_poll_errors_total{reason=\"connect\"} 1"
        );
        assert!(line(&text, "zookube_build_info{").ends_with(" 1"));
    }

    #[test]
    fn the_dashboard_alerts_and_readme_name_only_what_the_sidecar_exports() {
        use zk_testkit::monitoring::{Exposition, check_names};
        let metrics = Metrics::new();
        // A labelled family shows in the exposition once it has a child.
        metrics.poll_error("connect");
        metrics.probe_failed("ruok");
        let exposition = Exposition::parse(&metrics.encode());
        let sidecar_owns = |name: &str| !name.starts_with("zookube_operator_");
        if let Err(problems) = check_names("zk-sidecar", &exposition, sidecar_owns) {
            panic!("{problems}");
        }
    }

    #[test]
    fn counters_follow_the_status_and_never_go_down() {
        let metrics = Metrics::new();
        let mut s = status();
        metrics.observe(&s);
        s.elections = 5;
        metrics.observe(&s);
        metrics.observe(&s);
        s.elections = 1; // a stale document must not lower a counter
        metrics.observe(&s);
        assert_eq!(metrics.elections.get(), 5);
        s.leader = None;
        s.quorum.established = false;
        metrics.observe(&s);
        assert_eq!(metrics.leader_myid.get(), 0);
        assert_eq!(metrics.peer_epoch.get(), 2, "the last known epoch stays");
    }

    #[test]
    fn mntr_numbers_are_in_base_units() {
        let metrics = Metrics::new();
        let mntr = zk_process::fourlw::parse_mntr(
            "zk_avg_latency\t1.5\nzk_max_latency\t12\nzk_outstanding_requests\t3\nzk_version\t3.8.0\n",
        );
        metrics.observe_mntr(&mntr);
        let text = metrics.encode();
        assert_eq!(
            line(&text, "zookube_zookeeper_latency_avg_seconds "),
            "zookube_zookeeper_latency_avg_seconds 0.0015"
        );
        assert_eq!(
            line(&text, "zookube_zookeeper_outstanding_requests "),
            "zookube_zookeeper_outstanding_requests 3.0"
        );
    }
}
