//! Network partitions between the members of a [`LoopbackEnsemble`], made
//! the way a pod network has them: each member (its server and its sidecar)
//! sends from its own loopback address, and a partition drops the packets
//! between two groups of addresses.
//!
//! On loopback every connection leaves from 127.0.0.1 unless the program
//! binds, and neither ZooKeeper nor the sidecar does; so each member's
//! processes run in a cgroup of their own and an iptables SNAT rule gives
//! their connections the member's address as source (a pod's IP). A
//! partition is then a pair of DROP rules per pair of members, in the
//! mangle table's PREROUTING chain, which sees every loopback packet with
//! the member addresses it carries on the wire (after the source NAT,
//! before replies are translated back). The test process itself is in no
//! member's cgroup: its `srvr` probes, HTTP requests and clients reach
//! every member throughout.
//!
//! Needs root, a cgroup2 hierarchy and iptables with the `cgroup` match.
//! Every chain, rule and cgroup is named after this process and removed
//! when the [`Network`] is dropped (also when a test fails); leftovers of a
//! process that was killed are removed by the next [`Network::new`].
//!
//! ```no_run
//! # fn demo(zk: &zk_process::Installation) -> Result<(), String> {
//! let mut ensemble = zk_testkit::LoopbackEnsemble::new(zk, 3, 0);
//! ensemble.enable_partitions()?; // before any process starts
//! ensemble.start_all();
//! let one = zk_ensemble::Myid::new(1).unwrap();
//! let rest: Vec<_> = ensemble.myids().into_iter().filter(|m| *m != one).collect();
//! ensemble.partition(&[&[one], &rest])?;
//! ensemble.heal()?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use zk_ensemble::Myid;

/// The prefix of every chain and cgroup this module makes.
const PREFIX: &str = "zkt";

/// Member cgroups, their source NAT, and the partition rules of one
/// ensemble.
#[derive(Debug)]
pub(crate) struct Network {
    /// The cgroup2 mount.
    root: PathBuf,
    /// This ensemble's name: its cgroup folder and its chains.
    name: String,
    addresses: BTreeMap<Myid, Ipv4Addr>,
}

impl Network {
    /// Makes the cgroups and the source NAT for `addresses`.
    pub(crate) fn new(addresses: BTreeMap<Myid, Ipv4Addr>) -> Result<Network, String> {
        let root = cgroup2_root()?;
        remove_leftovers(&root);
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{PREFIX}{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let network = Network {
            root,
            name,
            addresses,
        };
        network.install()?;
        Ok(network)
    }

    fn install(&self) -> Result<(), String> {
        for table_chain in [("nat", "POSTROUTING"), ("mangle", "PREROUTING")] {
            let (table, hook) = table_chain;
            iptables(&["-t", table, "-N", &self.name])?;
            iptables(&["-t", table, "-I", hook, "-j", &self.name])?;
        }
        for (myid, address) in &self.addresses {
            let group = self.group(*myid);
            fs::create_dir_all(self.root.join(&group))
                .map_err(|e| format!("create the cgroup {group}: {e}"))?;
            iptables(&[
                "-t",
                "nat",
                "-A",
                &self.name,
                "-m",
                "cgroup",
                "--path",
                &group,
                "-j",
                "SNAT",
                "--to-source",
                &address.to_string(),
            ])?;
        }
        Ok(())
    }

    /// The cgroup of member `myid`, relative to the cgroup2 root.
    fn group(&self, myid: Myid) -> String {
        format!("{}/m{myid}", self.name)
    }

    /// `command`, run inside member `myid`'s cgroup: a shell moves itself
    /// there and then becomes the program, so every socket the program
    /// opens belongs to the member.
    pub(crate) fn wrap(&self, myid: Myid, command: &Command) -> Command {
        let procs = self.root.join(self.group(myid)).join("cgroup.procs");
        let mut wrapped = Command::new("/bin/sh");
        wrapped
            .arg("-c")
            .arg(r#"echo $$ > "$0" && exec "$@""#)
            .arg(procs)
            .arg(command.get_program())
            .args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            wrapped.current_dir(dir);
        }
        wrapped
    }

    /// Drops every packet between a member of one group and a member of
    /// another, both ways, until [`Network::heal`]. Members in no group
    /// keep talking to everyone.
    pub(crate) fn partition(&self, groups: &[&[Myid]]) -> Result<(), String> {
        self.heal()?;
        for (i, a) in groups.iter().enumerate() {
            for b in &groups[i + 1..] {
                for x in *a {
                    for y in *b {
                        let (x, y) = (self.address(*x)?, self.address(*y)?);
                        for (from, to) in [(x, y), (y, x)] {
                            iptables(&[
                                "-t",
                                "mangle",
                                "-A",
                                &self.name,
                                "-s",
                                &from.to_string(),
                                "-d",
                                &to.to_string(),
                                "-j",
                                "DROP",
                            ])?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes every partition rule.
    pub(crate) fn heal(&self) -> Result<(), String> {
        iptables(&["-t", "mangle", "-F", &self.name])
    }

    fn address(&self, myid: Myid) -> Result<Ipv4Addr, String> {
        self.addresses
            .get(&myid)
            .copied()
            .ok_or_else(|| format!("member {myid} is not in this network"))
    }
}

impl Drop for Network {
    /// Call after every member's processes are gone (a cgroup with a
    /// process in it cannot be removed).
    fn drop(&mut self) {
        remove(&self.root, &self.name);
    }
}

/// Removes the chains and cgroups of `name`, ignoring what is not there.
fn remove(root: &Path, name: &str) {
    for (table, hook) in [("nat", "POSTROUTING"), ("mangle", "PREROUTING")] {
        let _ = iptables(&["-t", table, "-D", hook, "-j", name]);
        let _ = iptables(&["-t", table, "-F", name]);
        let _ = iptables(&["-t", table, "-X", name]);
    }
    let dir = root.join(name);
    if let Ok(entries) = fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let _ = fs::remove_dir(entry.path());
        }
    }
    let _ = fs::remove_dir(&dir);
}

/// Removes what a killed test process of this module left behind: cgroups
/// named after a process that no longer runs, and their chains.
fn remove_leftovers(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('x').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove(root, &name);
        }
    }
}

/// Where the cgroup2 hierarchy is mounted (`/sys/fs/cgroup` on a
/// cgroup2-only host, `/sys/fs/cgroup/unified` on a hybrid one).
fn cgroup2_root() -> Result<PathBuf, String> {
    let mounts = fs::read_to_string("/proc/self/mounts")
        .map_err(|e| format!("read /proc/self/mounts: {e}"))?;
    mounts
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.get(2) == Some(&"cgroup2"))
        .and_then(|fields| fields.get(1).map(PathBuf::from))
        .ok_or_else(|| "no cgroup2 hierarchy is mounted; partitions need one".to_owned())
}

fn iptables(args: &[&str]) -> Result<(), String> {
    let output = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| format!("run iptables (partitions need it, as root): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Why partitions cannot be made here, or `None` when they can: the test
/// must run as root with iptables and a cgroup2 hierarchy.
pub fn unavailable() -> Option<String> {
    let uid = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned))
        });
    if uid.as_deref() != Some("0") {
        return Some("partitions need root (iptables and cgroups)".to_owned());
    }
    if let Err(e) = cgroup2_root() {
        return Some(e);
    }
    match Command::new("iptables").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        Ok(_) | Err(_) => {
            Some("iptables is not installed (apt-get install -y iptables)".to_owned())
        }
    }
}
