//! An ensemble as the user asks for it, its members, and the one function
//! that renders every member's `zoo.cfg` from it.
//!
//! Precedence of keys: zookube's defaults < the typed [`Settings`] < the
//! user's overrides < the keys zookube owns. Overriding an owned key is an
//! error that names the key.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::identity::{self, MAX_OBSERVERS, MAX_VOTERS, Myid, Role};
use crate::messages;
use crate::tls;
use crate::zoocfg::{ClientAddress, QuorumAddress, ServerEntry, ZooCfg};

/// The ports every member uses (the same in every pod).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub client: u16,
    /// The TLS client port (`secureClientPort`), with client TLS.
    pub secure_client: u16,
    pub quorum: u16,
    pub election: u16,
    pub admin: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            client: 2181,
            secure_client: 2281,
            quorum: 2888,
            election: 3888,
            admin: 8080,
        }
    }
}

/// The ZooKeeper settings users most often tune, with zookube's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `tickTime`, in milliseconds.
    pub tick_time_ms: u32,
    /// `initLimit`, in ticks.
    pub init_limit: u32,
    /// `syncLimit`, in ticks.
    pub sync_limit: u32,
    /// `maxClientCnxns` per client address; 0 means unlimited.
    pub max_client_cnxns: u32,
    /// `autopurge.snapRetainCount`.
    pub autopurge_snap_retain_count: u32,
    /// `autopurge.purgeInterval`, in hours; 0 disables purging.
    pub autopurge_purge_interval_hours: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tick_time_ms: 2000,
            init_limit: 10,
            sync_limit: 5,
            max_client_cnxns: 60,
            autopurge_snap_retain_count: 3,
            autopurge_purge_interval_hours: 1,
        }
    }
}

/// Where the members run, which decides their host names and data paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Pods of a StatefulSet: hosts are pod DNS names through the headless
    /// Service, data lives under `/data`, ports listen on every address.
    Kubernetes,
    /// Processes on one machine: member `myid` gets the loopback address
    /// `base + myid` (127.0.0.2 for myid 1 with the default base 127.0.0.1),
    /// keeps the standard ports on it, and keeps its data in
    /// `<data_root>/<myid>`, and its quorum TLS stores (when on) in
    /// `<tls_root>/<myid>`.
    Loopback {
        base: Ipv4Addr,
        data_root: String,
        tls_root: String,
    },
}

/// Where the data of a member lives in a pod.
pub const POD_DATA_DIR: &str = "/data";

/// The four-letter words zookube's probes need; user lists are extended.
pub const REQUIRED_FOUR_LETTER_WORDS: [&str; 4] = ["ruok", "srvr", "mntr", "conf"];

/// Keys that only zookube may set.
pub const OWNED_KEYS: [&str; 7] = [
    "dataDir",
    "dataLogDir",
    "clientPort",
    "dynamicConfigFile",
    "standaloneEnabled",
    "reconfigEnabled",
    "myid",
];

/// Whether zookube owns a key (the list above, and every `server.N`).
pub fn is_owned_key(key: &str) -> bool {
    OWNED_KEYS.contains(&key) || key.starts_with("server.")
}

/// An ensemble: what a `ZookeeperCluster` asks for, without Kubernetes types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsembleSpec {
    /// The cluster's name (StatefulSet, Services and pods are named after it).
    pub name: String,
    pub namespace: String,
    pub cluster_domain: String,
    pub voters: u32,
    pub observers: u32,
    pub ports: Ports,
    pub settings: Settings,
    /// Extra `zoo.cfg` keys from the user.
    pub overrides: BTreeMap<String, String>,
    pub placement: Placement,
    /// TLS on the quorum and election ports (`sslQuorum`), with PEM stores
    /// in [`EnsembleSpec::tls_dir`] (see [`crate::tls`]).
    pub quorum_tls: bool,
    /// TLS for clients on [`Ports::secure_client`], with the same stores.
    pub client_tls: Option<tls::ClientTls>,
}

/// One member of an ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub myid: Myid,
    pub role: Role,
    /// The ordinal within its StatefulSet.
    pub ordinal: u32,
    pub pod: String,
    /// How the other members reach it: a pod DNS name or a loopback address.
    pub host: String,
}

impl EnsembleSpec {
    /// A spec with zookube's defaults: 3 voters, no observers, standard ports.
    pub fn new(name: impl Into<String>, namespace: impl Into<String>) -> EnsembleSpec {
        EnsembleSpec {
            name: name.into(),
            namespace: namespace.into(),
            cluster_domain: "cluster.local".to_owned(),
            voters: 3,
            observers: 0,
            ports: Ports::default(),
            settings: Settings::default(),
            overrides: BTreeMap::new(),
            placement: Placement::Kubernetes,
            quorum_tls: false,
            client_tls: None,
        }
    }

    /// Every problem with this spec; empty when it can be rendered.
    pub fn problems(&self) -> Vec<SpecError> {
        let mut problems = Vec::new();
        if let Err(e) = check_name(&self.name) {
            problems.push(e);
        }
        if self.voters.is_multiple_of(2) {
            problems.push(SpecError::EvenVoters(self.voters));
        }
        if !(1..=MAX_VOTERS).contains(&self.voters) {
            problems.push(SpecError::VotersOutOfRange(self.voters));
        }
        if self.observers > MAX_OBSERVERS {
            problems.push(SpecError::ObserversOutOfRange(self.observers));
        }
        let mut ports = vec![
            ("client", self.ports.client),
            ("quorum", self.ports.quorum),
            ("election", self.ports.election),
            ("admin", self.ports.admin),
        ];
        if self.client_tls.is_some() {
            ports.push(("secure client", self.ports.secure_client));
        }
        for &(name, port) in &ports {
            if port == 0 {
                problems.push(SpecError::PortZero(name));
            }
        }
        let distinct: BTreeSet<u16> = ports.iter().map(|(_, p)| *p).collect();
        if distinct.len() != ports.len() {
            problems.push(SpecError::PortsNotDistinct);
        }
        let s = &self.settings;
        for (key, value) in [
            ("tickTime", s.tick_time_ms),
            ("initLimit", s.init_limit),
            ("syncLimit", s.sync_limit),
        ] {
            if value == 0 {
                problems.push(SpecError::ZeroSetting(key));
            }
        }
        for (key, value) in &self.overrides {
            let tls_key = (self.quorum_tls && tls::is_quorum_tls_key(key))
                || (self.client_tls.is_some() && tls::is_client_tls_key(key));
            if is_owned_key(key) || tls_key {
                problems.push(SpecError::OwnedKey(key.clone()));
            } else if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                problems.push(SpecError::BadKey(key.clone()));
            }
            if value.chars().any(char::is_control) {
                problems.push(SpecError::BadValue(key.clone()));
            }
        }
        problems
    }

    /// Fails with every problem at once.
    pub fn validate(&self) -> Result<(), SpecErrors> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SpecErrors(problems))
        }
    }

    /// Every member: the voters by ordinal, then the observers by ordinal.
    pub fn members(&self) -> Vec<Member> {
        let voters = (0..self.voters).map(|i| (Role::Voter, i));
        let observers = (0..self.observers).map(|i| (Role::Observer, i));
        voters
            .chain(observers)
            .filter_map(|(role, ordinal)| Myid::for_ordinal(role, ordinal).ok())
            .map(|myid| self.member(myid))
            .collect()
    }

    /// The member with this myid, whether or not the spec lists it.
    pub fn member(&self, myid: Myid) -> Member {
        Member {
            myid,
            role: myid.role(),
            ordinal: myid.ordinal(),
            pod: identity::pod_name(&self.name, myid),
            host: self.host(myid),
        }
    }

    /// The host other members use to reach this myid.
    pub fn host(&self, myid: Myid) -> String {
        match &self.placement {
            Placement::Kubernetes => {
                identity::pod_host(&self.name, &self.namespace, &self.cluster_domain, myid)
            }
            Placement::Loopback { base, .. } => loopback_address(*base, myid).to_string(),
        }
    }

    /// Whether members need key and trust stores (quorum or client TLS).
    pub fn uses_tls(&self) -> bool {
        self.quorum_tls || self.client_tls.is_some()
    }

    /// The folder of a member's TLS stores ([`tls::KEY_STORE`] and
    /// [`tls::TRUST_STORE`]): the same path in every pod.
    pub fn tls_dir(&self, myid: Myid) -> String {
        match &self.placement {
            Placement::Kubernetes => tls::POD_TLS_DIR.to_owned(),
            Placement::Loopback { tls_root, .. } => format!("{tls_root}/{myid}"),
        }
    }

    /// The server line of a member.
    pub fn server_entry(&self, member: &Member) -> ServerEntry {
        let client_host = match self.placement {
            Placement::Kubernetes => None,
            Placement::Loopback { .. } => Some(member.host.clone()),
        };
        ServerEntry {
            id: i64::from(member.myid),
            addresses: vec![QuorumAddress {
                host: member.host.clone(),
                quorum_port: self.ports.quorum,
                election_port: self.ports.election,
            }],
            role: member.role,
            client: Some(ClientAddress {
                host: client_host,
                port: self.ports.client,
            }),
            line: 0,
        }
    }

    /// The `zoo.cfg` of the member `myid`, listing every member of the spec.
    /// On Kubernetes every member gets the same bytes.
    pub fn zoo_cfg(&self, myid: Myid) -> Result<ZooCfg, SpecErrors> {
        self.zoo_cfg_with(myid, &self.members())
    }

    /// The `zoo.cfg` of the member `myid` with an explicit server list (a
    /// membership change renders configs that differ from the spec's).
    pub fn zoo_cfg_with(&self, myid: Myid, members: &[Member]) -> Result<ZooCfg, SpecErrors> {
        self.validate()?;
        let s = &self.settings;
        let mut keys: BTreeMap<String, String> = [
            ("tickTime", s.tick_time_ms.to_string()),
            ("initLimit", s.init_limit.to_string()),
            ("syncLimit", s.sync_limit.to_string()),
            ("maxClientCnxns", s.max_client_cnxns.to_string()),
            (
                "autopurge.snapRetainCount",
                s.autopurge_snap_retain_count.to_string(),
            ),
            (
                "autopurge.purgeInterval",
                s.autopurge_purge_interval_hours.to_string(),
            ),
            ("admin.serverPort", self.ports.admin.to_string()),
            ("quorumListenOnAllIPs", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();

        for (key, value) in &self.overrides {
            keys.insert(key.clone(), value.trim().to_owned());
        }

        let whitelist = keys
            .get("4lw.commands.whitelist")
            .map(String::as_str)
            .unwrap_or_default();
        keys.insert(
            "4lw.commands.whitelist".to_owned(),
            extend_whitelist(whitelist),
        );

        let data_dir = match &self.placement {
            Placement::Kubernetes => POD_DATA_DIR.to_owned(),
            Placement::Loopback { data_root, .. } => format!("{data_root}/{myid}"),
        };
        keys.insert("dataDir".to_owned(), data_dir);
        keys.insert("clientPort".to_owned(), self.ports.client.to_string());
        keys.insert("standaloneEnabled".to_owned(), "false".to_owned());
        keys.insert("reconfigEnabled".to_owned(), "true".to_owned());
        let dir = self.tls_dir(myid);
        if self.quorum_tls {
            for (key, value) in tls::quorum_keys(&dir) {
                keys.insert(key.to_owned(), value);
            }
        }
        if let Some(client_tls) = self.client_tls {
            for (key, value) in tls::client_keys(&dir, self.ports.secure_client, client_tls) {
                keys.insert(key.to_owned(), value);
            }
            if let Placement::Loopback { base, .. } = self.placement {
                keys.insert(
                    "secureClientPortAddress".to_owned(),
                    loopback_address(base, myid).to_string(),
                );
            }
        }
        if let Placement::Loopback { base, .. } = self.placement {
            // Many members share the machine: each binds only its own address.
            keys.insert("quorumListenOnAllIPs".to_owned(), "false".to_owned());
            keys.insert(
                "admin.serverAddress".to_owned(),
                loopback_address(base, myid).to_string(),
            );
        }

        Ok(ZooCfg {
            header: vec![
                format!(
                    "Rendered by zookube for ZookeeperCluster {}/{}; do not edit.",
                    self.namespace, self.name
                ),
                "The server list and every myid come from one function of the spec.".to_owned(),
            ],
            properties: keys,
            servers: members.iter().map(|m| self.server_entry(m)).collect(),
        })
    }
}

/// The loopback address of a member: `base + myid`.
pub fn loopback_address(base: Ipv4Addr, myid: Myid) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base).wrapping_add(u32::from(myid.get())))
}

/// A whitelist that contains the user's words and every required word.
fn extend_whitelist(current: &str) -> String {
    let words: Vec<&str> = current
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    if words.contains(&"*") {
        return "*".to_owned();
    }
    let mut all: BTreeSet<&str> = words.into_iter().collect();
    all.extend(REQUIRED_FOUR_LETTER_WORDS);
    all.into_iter().collect::<Vec<_>>().join(",")
}

/// The cluster name must make valid pod names (`<name>-observer-127`, 63
/// characters at most) and DNS labels.
fn check_name(name: &str) -> Result<(), SpecError> {
    let valid = !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(SpecError::BadName(name.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("replicas is {0}: {msg}", msg = messages::REPLICAS_ODD)]
    EvenVoters(u32),
    #[error("replicas is {0}: {msg}", msg = messages::REPLICAS_RANGE)]
    VotersOutOfRange(u32),
    #[error("observers is {0}: {msg}", msg = messages::OBSERVERS_RANGE)]
    ObserversOutOfRange(u32),
    #[error(
        "config key `{0}` is owned by zookube and cannot be overridden; remove it from the overrides"
    )]
    OwnedKey(String),
    #[error(
        "config key {0:?} is not a valid zoo.cfg key; use letters, digits, '.', '_' and '-' only"
    )]
    BadKey(String),
    #[error(
        "the value of config key `{0}` holds a control character such as a newline; write it on one line"
    )]
    BadValue(String),
    #[error(
        "name {0:?} is not a valid cluster name; use 1 to 40 lower-case letters, digits and '-', starting with a letter"
    )]
    BadName(String),
    #[error("the {0} port is 0; choose a port from 1 to 65535")]
    PortZero(&'static str),
    #[error(
        "the client, quorum, election and admin ports (and the secure client port, with client TLS) must all differ"
    )]
    PortsNotDistinct,
    #[error("`{0}` is 0; it must be at least 1")]
    ZeroSetting(&'static str),
}

/// All problems of a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct SpecErrors(pub Vec<SpecError>);

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(voters: u32, observers: u32) -> EnsembleSpec {
        EnsembleSpec {
            voters,
            observers,
            ..EnsembleSpec::new("zk", "prod")
        }
    }

    #[test]
    fn three_voters_render_the_expected_bytes() {
        let text = spec(3, 1).zoo_cfg(Myid::new(1).unwrap()).unwrap().render();
        let expected = "\
# Rendered by zookube for ZookeeperCluster prod/zk; do not edit.
# The server list and every myid come from one function of the spec.
4lw.commands.whitelist=conf,mntr,ruok,srvr
admin.serverPort=8080
autopurge.purgeInterval=1
autopurge.snapRetainCount=3
clientPort=2181
dataDir=/data
initLimit=10
maxClientCnxns=60
quorumListenOnAllIPs=true
reconfigEnabled=true
standaloneEnabled=false
syncLimit=5
tickTime=2000
server.1=zk-0.zk-headless.prod.svc.cluster.local:2888:3888:participant;2181
server.2=zk-1.zk-headless.prod.svc.cluster.local:2888:3888:participant;2181
server.3=zk-2.zk-headless.prod.svc.cluster.local:2888:3888:participant;2181
server.128=zk-observer-0.zk-headless.prod.svc.cluster.local:2888:3888:observer;2181
";
        assert_eq!(text, expected);
    }

    #[test]
    fn precedence_defaults_then_settings_then_overrides_then_owned() {
        let mut s = spec(1, 0);
        s.settings.tick_time_ms = 3000;
        s.overrides.insert("tickTime".into(), "4000".into());
        s.overrides
            .insert("4lw.commands.whitelist".into(), "stat, ruok".into());
        s.overrides
            .insert("globalOutstandingLimit".into(), "2000".into());
        let cfg = s.zoo_cfg(Myid::new(1).unwrap()).unwrap();
        assert_eq!(cfg.get("tickTime"), Some("4000"));
        assert_eq!(cfg.get("globalOutstandingLimit"), Some("2000"));
        assert_eq!(
            cfg.get("4lw.commands.whitelist"),
            Some("conf,mntr,ruok,srvr,stat")
        );
    }

    #[test]
    fn owned_keys_cannot_be_overridden() {
        for key in [
            "dataDir",
            "server.4",
            "reconfigEnabled",
            "myid",
            "clientPort",
        ] {
            let mut s = spec(3, 0);
            s.overrides.insert(key.into(), "x".into());
            let err = s.zoo_cfg(Myid::new(1).unwrap()).unwrap_err();
            assert_eq!(err.0, vec![SpecError::OwnedKey(key.into())]);
            assert!(err.to_string().contains(&format!("`{key}`")));
        }
    }

    #[test]
    fn invalid_specs_name_every_problem() {
        let mut s = spec(4, 101);
        s.name = "Bad_Name".into();
        s.ports.admin = 2181;
        let problems = s.problems();
        assert_eq!(
            problems,
            vec![
                SpecError::BadName("Bad_Name".into()),
                SpecError::EvenVoters(4),
                SpecError::ObserversOutOfRange(101),
                SpecError::PortsNotDistinct,
            ]
        );
        assert!(problems[1].to_string().contains("replicas must be odd"));
    }

    #[test]
    fn loopback_placement_gives_each_member_its_own_address_and_data() {
        let mut s = spec(3, 1);
        s.placement = Placement::Loopback {
            base: Ipv4Addr::new(127, 0, 0, 1),
            data_root: "/tmp/zk".into(),
            tls_root: "/tmp/tls".into(),
        };
        let cfg = s.zoo_cfg(Myid::new(2).unwrap()).unwrap();
        assert_eq!(cfg.get("dataDir"), Some("/tmp/zk/2"));
        assert_eq!(cfg.get("quorumListenOnAllIPs"), Some("false"));
        assert_eq!(cfg.get("admin.serverAddress"), Some("127.0.0.3"));
        assert_eq!(
            cfg.server(128).unwrap().to_string(),
            "server.128=127.0.0.129:2888:3888:observer;127.0.0.129:2181"
        );
    }
}
