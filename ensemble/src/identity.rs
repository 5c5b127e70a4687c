//! Who a member is: its role, its myid, its pod and its host name.
//!
//! This module is the only place that maps a StatefulSet ordinal to a myid and
//! back. Every server line, every `myid` file and every pod name is derived
//! from these functions, so "My id N not in the peer list" cannot happen.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The first myid given to an observer. Voters use `1..OBSERVER_MYID_BASE`.
pub const OBSERVER_MYID_BASE: u8 = 128;

/// The largest number of voters zookube runs. Even a 15-voter ensemble is
/// slow to commit; larger read capacity comes from observers.
pub const MAX_VOTERS: u32 = 15;

/// The largest number of observers zookube runs (their myids are 128..=227).
pub const MAX_OBSERVERS: u32 = 100;

/// Whether a member votes (a ZooKeeper "participant") or only follows the
/// leader and serves reads (an "observer").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Voter,
    Observer,
}

impl Role {
    /// The word ZooKeeper uses in a server line (`:participant` / `:observer`).
    pub fn learner_type(self) -> &'static str {
        match self {
            Role::Voter => "participant",
            Role::Observer => "observer",
        }
    }

    /// The role a myid belongs to under zookube's identity rule.
    pub fn of(myid: Myid) -> Role {
        if myid.get() >= OBSERVER_MYID_BASE {
            Role::Observer
        } else {
            Role::Voter
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Voter => "voter",
            Role::Observer => "observer",
        })
    }
}

impl FromStr for Role {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "voter" | "participant" => Ok(Role::Voter),
            "observer" => Ok(Role::Observer),
            other => Err(IdentityError::UnknownRole(other.to_owned())),
        }
    }
}

/// A ZooKeeper server id as zookube allows it: `1..=255`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Myid(u8);

impl Myid {
    /// A myid from any integer, refusing values ZooKeeper's docs and zookube
    /// do not allow.
    pub fn new(value: i64) -> Result<Myid, IdentityError> {
        u8::try_from(value)
            .ok()
            .filter(|v| *v >= 1)
            .map(Myid)
            .ok_or(IdentityError::MyidOutOfRange(value))
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// The myid of the member with this role and StatefulSet ordinal:
    /// voter `i` is `i + 1`, observer `i` is `128 + i`.
    pub fn for_ordinal(role: Role, ordinal: u32) -> Result<Myid, IdentityError> {
        let (base, limit) = match role {
            Role::Voter => (1, u32::from(OBSERVER_MYID_BASE) - 1),
            Role::Observer => (u32::from(OBSERVER_MYID_BASE), 255),
        };
        base.checked_add(ordinal)
            .filter(|id| *id <= limit)
            .and_then(|id| u8::try_from(id).ok())
            .map(Myid)
            .ok_or(IdentityError::OrdinalOutOfRange { role, ordinal })
    }

    /// The StatefulSet ordinal of this myid (the inverse of [`Myid::for_ordinal`]).
    pub fn ordinal(self) -> u32 {
        match Role::of(self) {
            Role::Voter => u32::from(self.0) - 1,
            Role::Observer => u32::from(self.0 - OBSERVER_MYID_BASE),
        }
    }

    pub fn role(self) -> Role {
        Role::of(self)
    }

    /// Reads the contents of a `myid` file: a decimal number, surrounding
    /// whitespace allowed (ZooKeeper trims it too).
    pub fn parse_file(contents: &str) -> Result<Myid, IdentityError> {
        let trimmed = contents.trim();
        let value: i64 = trimmed
            .parse()
            .map_err(|_| IdentityError::MyidNotANumber(trimmed.chars().take(40).collect()))?;
        Myid::new(value)
    }

    /// The bytes zookube writes into a `myid` file.
    pub fn file_contents(self) -> String {
        format!("{}\n", self.0)
    }
}

impl fmt::Display for Myid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Myid> for u64 {
    fn from(id: Myid) -> u64 {
        u64::from(id.0)
    }
}

impl From<Myid> for i64 {
    fn from(id: Myid) -> i64 {
        i64::from(id.0)
    }
}

impl TryFrom<u64> for Myid {
    type Error = IdentityError;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Myid::new(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

/// The StatefulSet that holds the members of a role.
pub fn statefulset_name(cluster: &str, role: Role) -> String {
    match role {
        Role::Voter => cluster.to_owned(),
        Role::Observer => format!("{cluster}-observer"),
    }
}

/// The pod of a member: `<cluster>-<i>` for voters, `<cluster>-observer-<i>`
/// for observers.
pub fn pod_name(cluster: &str, myid: Myid) -> String {
    format!(
        "{}-{}",
        statefulset_name(cluster, myid.role()),
        myid.ordinal()
    )
}

/// The headless Service that gives every member a stable DNS name. The one
/// function that decides it.
pub fn headless_service_name(cluster: &str) -> String {
    format!("{cluster}-headless")
}

/// The DNS name of a member's pod through the headless Service.
pub fn pod_host(cluster: &str, namespace: &str, cluster_domain: &str, myid: Myid) -> String {
    format!(
        "{}.{}.{}.svc.{}",
        pod_name(cluster, myid),
        headless_service_name(cluster),
        namespace,
        cluster_domain
    )
}

/// The ordinal at the end of a pod's host name (`zk-2` → 2,
/// `zk-observer-0` → 0), as a StatefulSet names its pods.
pub fn ordinal_from_hostname(hostname: &str) -> Result<u32, IdentityError> {
    let short = hostname.split('.').next().unwrap_or(hostname);
    short
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .ok_or_else(|| IdentityError::NoOrdinalInHostname(hostname.to_owned()))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("myid {0} is outside 1..=255; ZooKeeper and zookube accept only 1 to 255")]
    MyidOutOfRange(i64),
    #[error(
        "the myid file holds {0:?}, not a number; it must hold one decimal number from 1 to 255"
    )]
    MyidNotANumber(String),
    #[error(
        "{role} ordinal {ordinal} has no myid: voters may use ordinals 0..=126 (myid 1..=127), observers 0..=127 (myid 128..=255)"
    )]
    OrdinalOutOfRange { role: Role, ordinal: u32 },
    #[error("unknown role {0:?}; use \"voter\" or \"observer\"")]
    UnknownRole(String),
    #[error(
        "cannot take an ordinal from the host name {0:?}: it does not end in -<number>; pass --ordinal or set POD_INDEX"
    )]
    NoOrdinalInHostname(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voter_and_observer_ordinals_map_to_disjoint_myids() {
        assert_eq!(Myid::for_ordinal(Role::Voter, 0).unwrap().get(), 1);
        assert_eq!(Myid::for_ordinal(Role::Voter, 14).unwrap().get(), 15);
        assert_eq!(Myid::for_ordinal(Role::Observer, 0).unwrap().get(), 128);
        assert_eq!(Myid::for_ordinal(Role::Observer, 127).unwrap().get(), 255);
        assert!(Myid::for_ordinal(Role::Voter, 127).is_err());
        assert!(Myid::for_ordinal(Role::Observer, 128).is_err());
    }

    #[test]
    fn ordinal_is_the_inverse_of_for_ordinal() {
        for role in [Role::Voter, Role::Observer] {
            for ordinal in 0..100 {
                let id = Myid::for_ordinal(role, ordinal).unwrap();
                assert_eq!((id.role(), id.ordinal()), (role, ordinal));
            }
        }
    }

    #[test]
    fn pod_names_and_hosts() {
        let voter = Myid::new(3).unwrap();
        let observer = Myid::new(129).unwrap();
        assert_eq!(pod_name("zk", voter), "zk-2");
        assert_eq!(pod_name("zk", observer), "zk-observer-1");
        assert_eq!(
            pod_host("zk", "prod", "cluster.local", voter),
            "zk-2.zk-headless.prod.svc.cluster.local"
        );
    }

    #[test]
    fn myid_file_parsing() {
        assert_eq!(Myid::parse_file(" 7\n").unwrap().get(), 7);
        assert_eq!(
            Myid::parse_file("seven").unwrap_err(),
            IdentityError::MyidNotANumber("seven".into())
        );
        assert_eq!(
            Myid::parse_file("0").unwrap_err(),
            IdentityError::MyidOutOfRange(0)
        );
        assert_eq!(
            Myid::parse_file("256").unwrap_err(),
            IdentityError::MyidOutOfRange(256)
        );
    }

    #[test]
    fn ordinal_from_hostnames() {
        assert_eq!(ordinal_from_hostname("zk-2").unwrap(), 2);
        assert_eq!(
            ordinal_from_hostname("zk-observer-11.zk-headless").unwrap(),
            11
        );
        assert!(ordinal_from_hostname("laptop").is_err());
    }
}
