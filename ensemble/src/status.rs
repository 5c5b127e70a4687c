//! The sidecar's `GET /v1/status` document, defined once so that the sidecar
//! that writes it, and the operator and `local` that read it, agree.
//!
//! ```json
//! {
//!   "myid": 1, "role": "voter", "state": "FOLLOWING",
//!   "leader": 3, "leaderPhase": "established", "peerEpoch": 2, "electionEpoch": 0,
//!   "zxid": "0x200000004", "serving": true,
//!   "quorum": { "size": 2, "voters": [1, 2, 3], "reachable": 3, "established": true },
//!   "members": [
//!     { "myid": 1, "host": "zk-0.zk-headless.ns.svc.cluster.local", "role": "voter",
//!       "state": "FOLLOWING", "leader": 3, "peerEpoch": 2, "electionEpoch": 0,
//!       "reachable": true, "lastReplyAgeSeconds": 0.4, "error": null }
//!   ],
//!   "leaderSince": "2026-11-22T10:00:00Z", "elections": 1, "leaderChanges": 1,
//!   "configVersion": "100000000"
//! }
//! ```
//!
//! Numbers that can exceed 2^53 (zxids) are hex strings; everything else is
//! a JSON number. Absent knowledge is `null`, never a made-up value.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::identity::Role;

/// A member's state in ZooKeeper's words, or `DOWN` when its own server does
/// not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MemberState {
    Looking,
    Following,
    Leading,
    Observing,
    Down,
}

impl MemberState {
    pub const ALL: [MemberState; 5] = [
        MemberState::Looking,
        MemberState::Following,
        MemberState::Leading,
        MemberState::Observing,
        MemberState::Down,
    ];

    /// FOLLOWING, LEADING or OBSERVING: the member has a leader and serves.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            MemberState::Following | MemberState::Leading | MemberState::Observing
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Looking => "LOOKING",
            MemberState::Following => "FOLLOWING",
            MemberState::Leading => "LEADING",
            MemberState::Observing => "OBSERVING",
            MemberState::Down => "DOWN",
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MemberState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MemberState::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown member state {s:?}"))
    }
}

/// How far the quorum-backed leader has come (spec §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaderPhase {
    /// A quorum follows it in the epoch it was elected in.
    Elected,
    /// It leads and has moved to a new epoch that not every follower has
    /// reported yet.
    Establishing,
    /// A quorum follows it in a new epoch.
    Established,
}

/// The quorum as the sidecar sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuorumStatus {
    /// How many voters form a quorum.
    pub size: u32,
    /// The voters' myids, from the newest config seen.
    pub voters: Vec<u64>,
    /// How many voters answered recently.
    pub reachable: u32,
    /// Whether a quorum-backed leader is known.
    pub established: bool,
}

/// One member of the ensemble, as the sidecar's watcher saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    pub myid: u64,
    pub host: String,
    pub role: Role,
    /// `null` when the member has not answered recently.
    pub state: Option<MemberState>,
    /// The leader in the member's current vote (stale while it is LOOKING).
    pub leader: Option<u64>,
    pub peer_epoch: Option<i64>,
    pub election_epoch: Option<i64>,
    pub reachable: bool,
    pub last_reply_age_seconds: Option<f64>,
    /// Why the member is unreachable, when it is.
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /v1/status` of `zk-sidecar run` and `zk-sidecar vote`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarStatus {
    /// The myid of the member this sidecar runs beside (or votes as).
    pub myid: u64,
    pub role: Role,
    /// The local member's state; `DOWN` when its server does not answer.
    pub state: MemberState,
    /// The quorum-backed leader's myid, or `null` while none is known.
    pub leader: Option<u64>,
    #[serde(default)]
    pub leader_phase: Option<LeaderPhase>,
    /// The leader's peer epoch (the epoch it leads in).
    pub peer_epoch: Option<i64>,
    /// The local member's logical clock; for display only, it is not monotonic.
    pub election_epoch: Option<i64>,
    /// The local server's last zxid, as hex (`0x…`).
    #[serde(default)]
    pub zxid: Option<String>,
    /// Whether the local server serves client requests (`srvr` answers with
    /// a mode rather than "not currently serving requests"); `null` when it
    /// was not asked.
    #[serde(default)]
    pub serving: Option<bool>,
    #[serde(default)]
    pub quorum: QuorumStatus,
    #[serde(default)]
    pub members: Vec<MemberStatus>,
    /// When the current leader became known (RFC 3339, UTC).
    #[serde(default)]
    pub leader_since: Option<String>,
    /// Elections seen since the sidecar started.
    #[serde(default)]
    pub elections: u64,
    /// Times the leader's myid changed since the sidecar started.
    #[serde(default)]
    pub leader_changes: u64,
    /// The version of the newest committed config seen (hex, as ZooKeeper
    /// writes it).
    #[serde(default)]
    pub config_version: Option<String>,
    /// While no quorum-backed leader is known: what the sidecar sees of the
    /// election; `null` while a leader is known.
    #[serde(default)]
    pub election: Option<ElectionStatus>,
    /// Why the sidecar cannot report at all (for example its watcher
    /// stopped on a sid collision); `null` normally.
    #[serde(default)]
    pub error: Option<String>,
}

/// What the sidecar sees of an election in progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ElectionStatus {
    /// When the sidecar lost the last leader (RFC 3339, UTC), if it saw it go.
    #[serde(default)]
    pub since: Option<String>,
    /// The highest election epoch among LOOKING voters (the round).
    #[serde(default)]
    pub round: Option<i64>,
    /// The leader most FOLLOWING voters name while it does not itself
    /// confirm that it leads (a leader the sidecar cannot reach).
    #[serde(default)]
    pub followers_believe: Option<u64>,
}

/// Formats a zxid as ZooKeeper's tools do: `0x` and lower-case hex.
pub fn format_zxid(zxid: i64) -> String {
    format!("{zxid:#x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("status.rs")
            .split("//! ```json\n")
            .nth(1)
            .and_then(|rest| rest.split("//! ```").next())
            .unwrap()
            .lines()
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let status: SidecarStatus = serde_json::from_str(&doc).unwrap();
        assert_eq!(status.leader, Some(3));
        assert_eq!(status.members[0].state, Some(MemberState::Following));
        assert_eq!(status.leader_phase, Some(LeaderPhase::Established));
        assert_eq!((status.serving, status.leader_changes), (Some(true), 1));
        let again: SidecarStatus =
            serde_json::from_str(&serde_json::to_string(&status).unwrap()).unwrap();
        assert_eq!(again, status);
    }

    #[test]
    fn zxids_are_hex() {
        assert_eq!(format_zxid(0x1_0000_0002), "0x100000002");
        assert_eq!(format_zxid(0), "0x0");
    }
}
