//! Election notifications (spec §3): the only message on the election port.
//!
//! Decoding follows a 3.5+ server exactly (§3.2): 28-byte frames (≤ 3.3),
//! 40-byte frames (3.4.6+, version treated as 0), and 44 + L frames (3.5+,
//! version 2 and the committed config). Everything else is an error, and no
//! length is trusted before it is checked against the frame.
//!
//! Encoding offers only what may be sent: the 44 + L form with a non-empty
//! config, and the two watcher polls of §5.3 (the 40-byte bootstrap and the
//! echo of a member's own config).

use std::fmt;

use super::{DecodeError, EncodeError, PACKET_MAX_SIZE, read_i32, read_i64};

/// A member's state, numbered as `QuorumPeer.ServerState` (§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerState {
    Looking = 0,
    Following = 1,
    Leading = 2,
    Observing = 3,
}

impl ServerState {
    pub fn from_wire(value: i32) -> Option<ServerState> {
        match value {
            0 => Some(ServerState::Looking),
            1 => Some(ServerState::Following),
            2 => Some(ServerState::Leading),
            3 => Some(ServerState::Observing),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Looking => "LOOKING",
            ServerState::Following => "FOLLOWING",
            ServerState::Leading => "LEADING",
            ServerState::Observing => "OBSERVING",
        }
    }
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ServerState> for zk_ensemble::MemberState {
    fn from(state: ServerState) -> Self {
        match state {
            ServerState::Looking => zk_ensemble::MemberState::Looking,
            ServerState::Following => zk_ensemble::MemberState::Following,
            ServerState::Leading => zk_ensemble::MemberState::Leading,
            ServerState::Observing => zk_ensemble::MemberState::Observing,
        }
    }
}

/// The vote placeholder of observers and watchers: it never wins (§4.1).
pub const NULL_VOTE: i64 = i64::MIN;

/// The format version of every 3.5+ notification.
pub const VERSION_WITH_CONFIG: i32 = 2;

/// One election notification as it travels (without the length prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub state: ServerState,
    /// The proposed (or, in a settled member's reply, the current) leader.
    pub leader: i64,
    pub zxid: i64,
    pub election_epoch: i64,
    pub peer_epoch: i64,
    /// 0 for 28- and 40-byte frames; 2 for 3.5+.
    pub version: i32,
    /// The sender's committed config text (§3.5), present when version > 1.
    pub config: Option<Vec<u8>>,
}

impl Notification {
    /// Decodes a frame's payload.
    pub fn decode(payload: &[u8]) -> Result<Notification, DecodeError> {
        let n = payload.len();
        let field = |offset| read_i64(payload, offset).ok_or(DecodeError::Size(n));
        if n < 28 || (n > 28 && n < 40) || (n > 40 && n < 44) {
            return Err(DecodeError::Size(n));
        }
        let raw_state = read_i32(payload, 0).ok_or(DecodeError::Size(n))?;
        let state =
            ServerState::from_wire(raw_state).ok_or(DecodeError::UnknownState(raw_state))?;
        let leader = field(4)?;
        let zxid = field(12)?;
        let election_epoch = field(20)?;
        if n == 28 {
            return Ok(Notification {
                state,
                leader,
                zxid,
                election_epoch,
                peer_epoch: zxid >> 32,
                version: 0,
                config: None,
            });
        }
        let peer_epoch = field(28)?;
        // A 40-byte frame carries version 1, which 3.5+ readers skip (§3.1).
        let version = if n == 40 {
            0
        } else {
            read_i32(payload, 36).ok_or(DecodeError::Size(n))?
        };
        let config = if version > 1 {
            let len = read_i32(payload, 40).ok_or(DecodeError::Size(n))?;
            let len = usize::try_from(len)
                .ok()
                .filter(|l| *l <= n - 44)
                .ok_or(DecodeError::ConfigLength(len))?;
            Some(payload[44..44 + len].to_vec())
        } else {
            None
        };
        Ok(Notification {
            state,
            leader,
            zxid,
            election_epoch,
            peer_epoch,
            version,
            config,
        })
    }

    /// The 44 + L payload with version 2. A config must be present and not
    /// empty (D2: an empty config kills a 3.5+ member's receiver thread).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let config = self
            .config
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or(EncodeError::EmptyConfig)?;
        if 44 + config.len() > PACKET_MAX_SIZE {
            return Err(EncodeError::FrameLength(44 + config.len()));
        }
        let len =
            i32::try_from(config.len()).map_err(|_| EncodeError::FrameLength(config.len()))?;
        let mut out = Vec::with_capacity(44 + config.len());
        out.extend_from_slice(&(self.state as i32).to_be_bytes());
        out.extend_from_slice(&self.leader.to_be_bytes());
        out.extend_from_slice(&self.zxid.to_be_bytes());
        out.extend_from_slice(&self.election_epoch.to_be_bytes());
        out.extend_from_slice(&self.peer_epoch.to_be_bytes());
        out.extend_from_slice(&VERSION_WITH_CONFIG.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(config);
        Ok(out)
    }

    /// The config text, if any, as UTF-8 (lossy for display only).
    pub fn config_text(&self) -> Option<String> {
        self.config
            .as_deref()
            .map(|c| String::from_utf8_lossy(c).into_owned())
    }
}

/// The watcher's first poll on a connection (§5.3, spec vector N1): 40 bytes,
/// LOOKING, null vote, no config to parse.
pub fn watcher_bootstrap(election_epoch: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    out.extend_from_slice(&(ServerState::Looking as i32).to_be_bytes());
    out.extend_from_slice(&NULL_VOTE.to_be_bytes());
    out.extend_from_slice(&NULL_VOTE.to_be_bytes());
    out.extend_from_slice(&election_epoch.to_be_bytes());
    out.extend_from_slice(&NULL_VOTE.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    out
}

/// A watcher's steady-state poll (§5.3, spec vector N3): LOOKING, null vote,
/// and exactly the config bytes this member sent in its latest reply.
pub fn watcher_echo(election_epoch: i64, member_config: &[u8]) -> Result<Vec<u8>, EncodeError> {
    Notification {
        state: ServerState::Looking,
        leader: NULL_VOTE,
        zxid: NULL_VOTE,
        election_epoch,
        peer_epoch: NULL_VOTE,
        version: VERSION_WITH_CONFIG,
        config: Some(member_config.to_vec()),
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{frame, hex, split_frame};

    const N2_CONFIG: &str = "7365727665722e313d3132372e302e302e313a323838313a333838313a7061727469636970616e740a7365727665722e323d3132372e302e302e313a323838323a333838323a7061727469636970616e740a7365727665722e333d3132372e302e302e313a323838333a333838333a7061727469636970616e740a76657273696f6e3d30";

    fn unframe(vector: &str) -> Vec<u8> {
        let bytes = hex(vector);
        let (payload, used) = split_frame(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        payload.to_vec()
    }

    #[test]
    fn n1_watcher_bootstrap() {
        let n1 = "00000028 00000000 8000000000000000 8000000000000000 0000000000000001 8000000000000000 00000001";
        assert_eq!(frame(&watcher_bootstrap(1)).unwrap(), hex(n1));
        let decoded = Notification::decode(&unframe(n1)).unwrap();
        assert_eq!(decoded.version, 0, "a 40-byte frame decodes as version 0");
        assert_eq!(decoded.peer_epoch, NULL_VOTE);
    }

    #[test]
    fn n2_reply_captured_from_zookeeper() {
        let n2 = format!(
            "000000b0 00000002 0000000000000003 0000000000000000 0000000000000001 0000000000000001 00000002 00000084 {N2_CONFIG}"
        );
        let n = Notification::decode(&unframe(&n2)).unwrap();
        assert_eq!(
            (
                n.state,
                n.leader,
                n.zxid,
                n.election_epoch,
                n.peer_epoch,
                n.version
            ),
            (ServerState::Leading, 3, 0, 1, 1, 2)
        );
        let text = n.config_text().unwrap();
        assert!(text.starts_with("server.1=127.0.0.1:2881:3881:participant\n"));
        assert!(text.ends_with("version=0"));
        assert_eq!(frame(&n.encode().unwrap()).unwrap(), hex(&n2));
    }

    #[test]
    fn n3_watcher_echo() {
        let n3 = format!(
            "000000b0 00000000 8000000000000000 8000000000000000 0000000000000000 8000000000000000 00000002 00000084 {N2_CONFIG}"
        );
        let echo = watcher_echo(0, &hex(N2_CONFIG)).unwrap();
        assert_eq!(frame(&echo).unwrap(), hex(&n3));
    }

    #[test]
    fn n4_looking_reply_with_a_stale_vote() {
        let n4 = format!(
            "000000b0 00000000 0000000000000003 0000000000000000 0000000000000002 0000000000000001 00000002 00000084 {N2_CONFIG}"
        );
        let n = Notification::decode(&unframe(&n4)).unwrap();
        assert_eq!(
            (n.state, n.leader, n.election_epoch),
            (ServerState::Looking, 3, 2)
        );
    }

    #[test]
    fn n5_rust_voter_broadcast() {
        let config = "server.1=10.0.0.1:2888:3888:participant\nserver.2=10.0.0.2:2888:3888:participant\nserver.3=10.0.0.3:2888:3888:participant\nversion=100000000";
        let n = Notification {
            state: ServerState::Looking,
            leader: 3,
            zxid: 0x1_0000_0002,
            election_epoch: 4,
            peer_epoch: 1,
            version: 2,
            config: Some(config.as_bytes().to_vec()),
        };
        let n5 = "000000b5 00000000 0000000000000003 0000000100000002 0000000000000004 0000000000000001 00000002 00000089 7365727665722e313d31302e302e302e313a323838383a333838383a7061727469636970616e740a7365727665722e323d31302e302e302e323a323838383a333838383a7061727469636970616e740a7365727665722e333d31302e302e302e333a323838383a333838383a7061727469636970616e740a76657273696f6e3d313030303030303030";
        assert_eq!(frame(&n.encode().unwrap()).unwrap(), hex(n5));
        assert_eq!(Notification::decode(&unframe(n5)).unwrap(), n);
    }

    #[test]
    fn n6_twenty_eight_bytes_derive_the_peer_epoch() {
        let n = Notification::decode(&unframe(
            "0000001c 00000001 0000000000000003 0000000500000010 0000000000000007",
        ))
        .unwrap();
        assert_eq!(
            (n.state, n.peer_epoch, n.version),
            (ServerState::Following, 5, 0)
        );
    }

    #[test]
    fn n7_thirty_six_bytes_are_dropped() {
        let n7 = unframe(
            "00000024 00000000 0000000000000002 0000000300000004 0000000000000009 0000000000000003",
        );
        assert_eq!(Notification::decode(&n7), Err(DecodeError::Size(36)));
    }

    #[test]
    fn n8_empty_config_decodes_but_is_never_sent() {
        let n = Notification::decode(&unframe(
            "0000002c 00000000 8000000000000000 8000000000000000 0000000000000000 8000000000000000 00000002 00000000",
        ))
        .unwrap();
        assert_eq!(n.config, Some(vec![]));
        assert_eq!(n.encode(), Err(EncodeError::EmptyConfig));
        assert_eq!(watcher_echo(0, b""), Err(EncodeError::EmptyConfig));
    }

    #[test]
    fn more_decoder_cases_of_section_9_2() {
        // A 40-byte frame whose last int is 2 is still version 0, no config.
        let mut forty = watcher_bootstrap(1);
        forty[36..40].copy_from_slice(&2i32.to_be_bytes());
        let n = Notification::decode(&forty).unwrap();
        assert_eq!((n.version, n.config), (0, None));
        // 48 bytes, version 2, L = 100: malformed.
        let mut bad = vec![0u8; 48];
        bad[36..40].copy_from_slice(&2i32.to_be_bytes());
        bad[40..44].copy_from_slice(&100i32.to_be_bytes());
        assert_eq!(
            Notification::decode(&bad),
            Err(DecodeError::ConfigLength(100))
        );
        bad[40..44].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            Notification::decode(&bad),
            Err(DecodeError::ConfigLength(-1))
        );
        // An unknown state.
        let mut unknown = watcher_bootstrap(1);
        unknown[0..4].copy_from_slice(&7i32.to_be_bytes());
        assert_eq!(
            Notification::decode(&unknown),
            Err(DecodeError::UnknownState(7))
        );
        // Version ≤ 1 in a long frame: no config read; trailing bytes ignored.
        let mut long = vec![0u8; 60];
        long[36..40].copy_from_slice(&1i32.to_be_bytes());
        assert_eq!(Notification::decode(&long).unwrap().config, None);
    }
}
