//! What a local ensemble is, decided purely from a validated cluster: one
//! loopback address per member (`base + myid`, so 127.0.0.2, 127.0.0.3, …
//! for the voters and 127.0.0.129 on for the observers), the standard ports
//! on it exactly as in a pod, every member's `zoo.cfg` rendered by
//! `zk-ensemble` as for Kubernetes, and where each member's files live in
//! the ensemble's folder ([`Layout`]). Nothing here touches the machine.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use zk_ensemble::spec::loopback_address;
use zk_ensemble::{EnsembleSpec, Member, Myid, Placement, Role, SpecErrors, ZooCfg};
use zk_process::install::small_jvm_flags;

use crate::build::SIDECAR_PORT;
use crate::cluster::ValidatedCluster;

/// Members get `base + myid`: 127.0.0.2 for myid 1. 127.0.0.1 itself is
/// left to whatever else runs on the machine.
pub const DEFAULT_BASE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// The files of a local ensemble, all under one folder:
///
/// ```text
/// <dir>/state.json               what runs: members, pids, start times
/// <dir>/cluster.yaml             the ZookeeperCluster it runs (`scale` and `apply` change it)
/// <dir>/super-password           zookube's ZooKeeper super user (for `reconfig`)
/// <dir>/data/<myid>/             the member's dataDir (myid, snapshots, logs)
/// <dir>/tls/ca/, tls/<myid>/      with TLS: the cluster's CA, each member's PEM stores
/// <dir>/tls/client/              with client TLS: a client's tls.crt, tls.key, ca.crt (and as PEM stores)
/// <dir>/members/<myid>/config/   zoo.cfg as rendered (a pod's /config)
/// <dir>/members/<myid>/conf/     the copy ZooKeeper runs on and rewrites (/conf)
/// <dir>/members/<myid>/zookeeper.log, sidecar.log
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }

    pub fn cluster_file(&self) -> PathBuf {
        self.root.join("cluster.yaml")
    }

    /// The zookube super user's password (mode 0600); the servers know
    /// only its digest.
    pub fn super_password_file(&self) -> PathBuf {
        self.root.join("super-password")
    }

    /// The data root of [`Placement::Loopback`]: member data goes to
    /// `<data_root>/<myid>`.
    pub fn data_root(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The TLS root of [`Placement::Loopback`]: member stores go to
    /// `<tls_root>/<myid>`, the cluster's CA to `<tls_root>/ca`.
    pub fn tls_root(&self) -> PathBuf {
        self.root.join("tls")
    }

    /// The cluster's CA certificate (PEM).
    pub fn ca_cert_file(&self) -> PathBuf {
        self.tls_root().join("ca").join("ca.pem")
    }

    /// The cluster's CA key (PKCS#8 PEM, mode 0600).
    pub fn ca_key_file(&self) -> PathBuf {
        self.tls_root().join("ca").join("ca-key.pem")
    }

    /// With client TLS, a client's certificate, key and the CA, as
    /// cert-manager names them (`tls.crt`, `tls.key`, `ca.crt`), and the
    /// same as PEM stores for Java clients (`keystore.pem`, `truststore.pem`).
    pub fn client_tls_dir(&self) -> PathBuf {
        self.tls_root().join("client")
    }

    pub fn members_root(&self) -> PathBuf {
        self.root.join("members")
    }

    pub fn member_dir(&self, myid: Myid) -> PathBuf {
        self.members_root().join(myid.to_string())
    }

    /// The rendered `zoo.cfg`, as the pod's read-only `/config` holds it.
    pub fn config_file(&self, myid: Myid) -> PathBuf {
        self.member_dir(myid).join("config").join("zoo.cfg")
    }

    /// The writable folder `zk-sidecar init --conf-dir` fills, as the pod's `/conf`.
    pub fn conf_dir(&self, myid: Myid) -> PathBuf {
        self.member_dir(myid).join("conf")
    }

    pub fn server_log(&self, myid: Myid) -> PathBuf {
        self.member_dir(myid).join("zookeeper.log")
    }

    pub fn sidecar_log(&self, myid: Myid) -> PathBuf {
        self.member_dir(myid).join("sidecar.log")
    }
}

/// A local ensemble: every member's address, ports and rendered config.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalPlan {
    pub cluster: String,
    pub namespace: String,
    pub base: Ipv4Addr,
    /// The cluster's ensemble with [`Placement::Loopback`].
    pub ensemble: EnsembleSpec,
    /// zookube's small local heap, then the cluster's `jvmFlags` (which win).
    pub jvm_flags: Vec<String>,
    pub members: Vec<MemberPlan>,
}

/// One member of a local ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPlan {
    pub myid: Myid,
    pub role: Role,
    pub ordinal: u32,
    /// The pod it would be on Kubernetes (`zk-0`); the member's name here.
    pub name: String,
    pub host: Ipv4Addr,
    /// Its `zoo.cfg`, rendered by the same function as the operator's.
    pub zoo_cfg: String,
    /// The `dataDir` its config names.
    pub data_dir: PathBuf,
    /// Every port it listens on, named: the ZooKeeper ports and the sidecar's.
    pub ports: Vec<(&'static str, SocketAddr)>,
    /// With quorum or client TLS: where its PEM stores go, and the names its
    /// certificate covers.
    pub tls: Option<MemberTls>,
}

/// A member's TLS: the folder its config names for the stores, and the
/// names its certificate covers (`zk_ensemble::tls::member_names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberTls {
    pub dir: PathBuf,
    pub names: Vec<String>,
    /// Client TLS is on: users get a client certificate too.
    pub client: bool,
}

impl MemberPlan {
    pub fn client(&self) -> SocketAddr {
        self.port("client")
    }

    /// The TLS client port, with client TLS.
    pub fn secure_client(&self) -> Option<SocketAddr> {
        self.ports
            .iter()
            .find(|(n, _)| *n == "secure client")
            .map(|(_, a)| *a)
    }

    pub fn sidecar(&self) -> SocketAddr {
        self.port("sidecar")
    }

    fn port(&self, name: &str) -> SocketAddr {
        self.ports
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(SocketAddr::new(IpAddr::V4(self.host), 0), |(_, a)| *a)
    }
}

/// The metrics URL of a sidecar.
pub fn metrics_url(sidecar: SocketAddr) -> String {
    format!("http://{sidecar}/metrics")
}

/// Why a cluster cannot run locally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "--base {base}: member myid {myid} would get {address}, outside 127.0.0.0/8; choose a base such as 127.0.1.1 whose members' addresses (base + myid) stay on loopback"
    )]
    BaseNotLoopback {
        base: Ipv4Addr,
        myid: Myid,
        address: String,
    },
    #[error(transparent)]
    Render(#[from] SpecErrors),
}

/// The address of member `myid` when it stays on loopback.
fn member_address(base: Ipv4Addr, myid: Myid) -> Result<Ipv4Addr, PlanError> {
    let address = u32::from(base)
        .checked_add(u32::from(myid.get()))
        .map(Ipv4Addr::from);
    match address {
        Some(a) if a.octets()[0] == 127 && base.octets()[0] == 127 => {
            debug_assert_eq!(a, loopback_address(base, myid));
            Ok(a)
        }
        _ => Err(PlanError::BaseNotLoopback {
            base,
            myid,
            address: address.map_or_else(|| "an overflow".to_owned(), |a| a.to_string()),
        }),
    }
}

impl LocalPlan {
    /// The local ensemble of `cluster`, its members at `base + myid`, its
    /// files under `layout` (whose root should be absolute: ZooKeeper reads
    /// `dataDir` relative to its own working directory).
    pub fn new(
        cluster: &ValidatedCluster,
        base: Ipv4Addr,
        layout: &Layout,
    ) -> Result<LocalPlan, PlanError> {
        let mut ensemble = cluster.ensemble.clone();
        ensemble.placement = Placement::Loopback {
            base,
            data_root: layout.data_root().display().to_string(),
            tls_root: layout.tls_root().display().to_string(),
        };
        let all = ensemble.members();
        let members = all
            .iter()
            .map(|member| member_plan(&ensemble, base, member.myid, &all))
            .collect::<Result<Vec<_>, _>>()?;
        let mut jvm_flags = small_jvm_flags();
        if let Some(extra) = &cluster.jvm_flags {
            jvm_flags.extend(extra.split_whitespace().map(str::to_owned));
        }
        Ok(LocalPlan {
            cluster: cluster.name.clone(),
            namespace: cluster.namespace.clone(),
            base,
            ensemble,
            jvm_flags,
            members,
        })
    }

    pub fn member(&self, myid: Myid) -> Option<&MemberPlan> {
        self.members.iter().find(|m| m.myid == myid)
    }

    /// Member `myid` configured with the server list `servers` rather than
    /// the spec's: a membership change starts and restarts members with the
    /// committed servers (see `zk_ensemble::plan::configured_servers`).
    /// The member need not be in the spec (one being removed).
    pub fn member_with(
        &self,
        myid: Myid,
        servers: &BTreeMap<Myid, Role>,
    ) -> Result<MemberPlan, PlanError> {
        let members: Vec<Member> = servers.keys().map(|m| self.ensemble.member(*m)).collect();
        member_plan(&self.ensemble, self.base, myid, &members)
    }
}

/// One member at `base + myid`, its config listing `members`.
fn member_plan(
    ensemble: &EnsembleSpec,
    base: Ipv4Addr,
    myid: Myid,
    members: &[Member],
) -> Result<MemberPlan, PlanError> {
    let member = ensemble.member(myid);
    let host = member_address(base, myid)?;
    let cfg = ensemble.zoo_cfg_with(myid, members)?;
    let data_dir = cfg.get("dataDir").map(PathBuf::from).unwrap_or_default();
    let ports = ensemble.ports;
    let at = |port| SocketAddr::new(IpAddr::V4(host), port);
    let mut plan = MemberPlan {
        myid,
        role: member.role,
        ordinal: member.ordinal,
        name: member.pod,
        host,
        zoo_cfg: cfg.render(),
        data_dir,
        tls: ensemble.uses_tls().then(|| MemberTls {
            dir: PathBuf::from(ensemble.tls_dir(myid)),
            names: zk_ensemble::tls::member_names(ensemble, myid),
            client: ensemble.client_tls.is_some(),
        }),
        ports: vec![
            ("client", at(ports.client)),
            ("quorum", at(ports.quorum)),
            ("election", at(ports.election)),
            ("admin", at(ports.admin)),
            ("sidecar", at(SIDECAR_PORT)),
        ],
    };
    if ensemble.client_tls.is_some() {
        plan.ports
            .insert(1, ("secure client", at(ports.secure_client)));
    }
    Ok(plan)
}

impl MemberPlan {
    /// What a member runs, as a short hash: its config without the server
    /// list (membership changes through `reconfig`, never a restart), the
    /// JVM flags, and the last restart request. A member whose recorded
    /// revision differs is restarted by the next membership change.
    pub fn revision(&self, jvm_flags: &[String], restart: Option<&str>) -> String {
        let config = ZooCfg::parse(&self.zoo_cfg).map_or_else(
            |_| self.zoo_cfg.clone(),
            |mut cfg| {
                cfg.servers.clear();
                cfg.render()
            },
        );
        let flags = jvm_flags.join(" ");
        crate::cluster::short_hash(&[
            config.as_bytes(),
            flags.as_bytes(),
            restart.unwrap_or_default().as_bytes(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{parse_cluster, validate};

    fn cluster(spec: &str) -> ValidatedCluster {
        let yaml = format!(
            "apiVersion: zookube.io/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: zk\nspec:\n{spec}"
        );
        validate(&parse_cluster(&yaml, None).unwrap()).unwrap()
    }

    fn plan(spec: &str, base: Ipv4Addr) -> LocalPlan {
        LocalPlan::new(&cluster(spec), base, &Layout::new("/x/.zookube")).unwrap()
    }

    #[test]
    fn voters_from_127_0_0_2_and_observers_from_127_0_0_129_on_standard_ports() {
        let plan = plan("  replicas: 3\n  observers: 1\n", DEFAULT_BASE);
        let hosts: Vec<(u8, String, String)> = plan
            .members
            .iter()
            .map(|m| (m.myid.get(), m.name.clone(), m.client().to_string()))
            .collect();
        assert_eq!(
            hosts,
            vec![
                (1, "zk-0".into(), "127.0.0.2:2181".into()),
                (2, "zk-1".into(), "127.0.0.3:2181".into()),
                (3, "zk-2".into(), "127.0.0.4:2181".into()),
                (128, "zk-observer-0".into(), "127.0.0.129:2181".into()),
            ]
        );
        let observer = &plan.members[3];
        assert_eq!(observer.role, Role::Observer);
        assert_eq!(observer.sidecar().to_string(), "127.0.0.129:8081");
        assert_eq!(
            metrics_url(observer.sidecar()),
            "http://127.0.0.129:8081/metrics"
        );
        let ports: Vec<String> = plan.members[0]
            .ports
            .iter()
            .map(|(name, addr)| format!("{name} {addr}"))
            .collect();
        assert_eq!(
            ports,
            [
                "client 127.0.0.2:2181",
                "quorum 127.0.0.2:2888",
                "election 127.0.0.2:3888",
                "admin 127.0.0.2:8080",
                "sidecar 127.0.0.2:8081"
            ]
        );
    }

    #[test]
    fn configs_are_the_operators_rendering_with_loopback_hosts_and_local_data() {
        let plan = plan(
            "  replicas: 3\n  config:\n    tickTime: 500\n",
            DEFAULT_BASE,
        );
        let member = plan.member(Myid::new(2).unwrap()).unwrap();
        assert_eq!(member.data_dir, Path::new("/x/.zookube/data/2"));
        let cfg = &member.zoo_cfg;
        assert!(cfg.contains("tickTime=500\n"), "{cfg}");
        assert!(cfg.contains("dataDir=/x/.zookube/data/2\n"), "{cfg}");
        assert!(
            cfg.contains("server.3=127.0.0.4:2888:3888:participant;127.0.0.4:2181\n"),
            "{cfg}"
        );
        assert!(cfg.contains("quorumListenOnAllIPs=false\n"), "{cfg}");
        // Identity comes from the same function as on Kubernetes: only the
        // hosts and the data folder differ from the ConfigMap's zoo.cfg.
        let operator = cluster("  replicas: 3\n  config:\n    tickTime: 500\n")
            .config
            .zoo_cfg;
        let servers = |text: &str| text.lines().filter(|l| l.starts_with("server.")).count();
        assert_eq!(servers(cfg), servers(&operator));
    }

    #[test]
    fn another_base_moves_every_member() {
        let plan = plan("  replicas: 5\n", Ipv4Addr::new(127, 0, 1, 1));
        let clients: Vec<String> = plan.members.iter().map(|m| m.host.to_string()).collect();
        assert_eq!(
            clients,
            [
                "127.0.1.2",
                "127.0.1.3",
                "127.0.1.4",
                "127.0.1.5",
                "127.0.1.6"
            ]
        );
    }

    #[test]
    fn a_base_whose_members_leave_loopback_is_refused() {
        let layout = Layout::new("/x");
        let three = cluster("  replicas: 3\n");
        for base in [
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(127, 255, 255, 254),
        ] {
            let err = LocalPlan::new(&three, base, &layout).unwrap_err();
            assert!(err.to_string().contains("127.0.1.1"), "{err}");
        }
        let err = LocalPlan::new(&three, Ipv4Addr::new(255, 255, 255, 254), &layout).unwrap_err();
        assert!(matches!(err, PlanError::BaseNotLoopback { .. }), "{err}");
    }

    #[test]
    fn jvm_flags_keep_the_local_heap_small_unless_the_cluster_says_otherwise() {
        let plan = plan("  replicas: 1\n  jvmFlags: -Xmx512m  -Dx=y\n", DEFAULT_BASE);
        assert_eq!(plan.jvm_flags[..2], ["-Xms32m", "-Xmx256m"]);
        assert_eq!(
            plan.jvm_flags[plan.jvm_flags.len() - 2..],
            ["-Xmx512m", "-Dx=y"]
        );
    }
}
