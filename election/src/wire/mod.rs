//! The election port's bytes (spec §2.2, §2.6, §3): preambles, frames and
//! notifications. One codec, used by the transport, the watcher and the
//! fuzz target. Big-endian, signed, as Java's `DataOutputStream` writes.
//! Decoding never panics and never allocates a length before checking it.

mod auth;
mod notification;
mod preamble;

pub use auth::{AUTH_MAGIC, AuthPacket, AuthStatus, MAX_TOKEN_LEN};

pub use notification::{
    NULL_VOTE, Notification, ServerState, VERSION_WITH_CONFIG, watcher_bootstrap, watcher_echo,
};
pub use preamble::{
    ElectionAddress, MAX_ADDRESS_LEN, OBSERVER_ID, PROTOCOL_V1, PROTOCOL_V2, Preamble,
};

/// The largest frame a member accepts (`PACKETMAXSIZE`, 512 KiB).
pub const PACKET_MAX_SIZE: usize = 524_288;

/// Why received bytes are not acceptable. Each closes the connection (preamble
/// and frame errors) or drops the message (notification errors), as a 3.5+
/// member would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown preamble version {0}")]
    UnknownVersion(i64),
    #[error("preamble sid {0} is negative or OBSERVER_ID")]
    BadSid(i64),
    #[error("the reserved OBSERVER_ID sid (i64::MAX)")]
    ObserverId,
    #[error("preamble address length {0} is outside 1..=2048")]
    AddressLength(i32),
    #[error("preamble address is not UTF-8")]
    NotUtf8,
    #[error("preamble address {0:?} is not host:port")]
    BadAddress(String),
    #[error("preamble address port {0} is outside 0..=65535")]
    PortOutOfRange(u32),
    #[error("frame length {0} is outside 1..=524288")]
    FrameLength(i32),
    #[error("a notification of {0} bytes is neither 28, 40 nor at least 44 bytes long")]
    Size(usize),
    #[error("notification state {0} is not LOOKING, FOLLOWING, LEADING or OBSERVING")]
    UnknownState(i32),
    #[error("notification config length {0} does not fit the frame")]
    ConfigLength(i32),
    #[error("an auth packet starts with {0:#x}, not the quorum auth magic")]
    AuthMagic(i64),
    #[error("auth packet status {0} is not 0, 1 or -1")]
    AuthStatus(i32),
    #[error("auth packet token length {0} is outside -1..=65536")]
    AuthTokenLength(i32),
}

impl DecodeError {
    /// A bounded name for metrics labels and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::UnknownVersion(_) => "preamble_version",
            DecodeError::BadSid(_) | DecodeError::ObserverId => "preamble_sid",
            DecodeError::AddressLength(_)
            | DecodeError::NotUtf8
            | DecodeError::BadAddress(_)
            | DecodeError::PortOutOfRange(_) => "preamble_address",
            DecodeError::FrameLength(_) => "frame_length",
            DecodeError::Size(_) => "notification_size",
            DecodeError::UnknownState(_) => "notification_state",
            DecodeError::ConfigLength(_) => "notification_config_length",
            DecodeError::AuthMagic(_)
            | DecodeError::AuthStatus(_)
            | DecodeError::AuthTokenLength(_) => "auth_packet",
        }
    }
}

/// Why we refuse to send something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("sid {0} may not be sent (negative, or OBSERVER_ID)")]
    BadSid(i64),
    #[error("the advertised address must be ASCII without spaces")]
    NotAscii,
    #[error("the advertised address {0:?} is not host:port with a port in 0..=65535")]
    BadAddress(String),
    #[error("the advertised address is {0} bytes; it must be 1..=2048")]
    AddressLength(usize),
    #[error(
        "a notification to ZooKeeper must carry a non-empty config (an empty one kills the receiver)"
    )]
    EmptyConfig,
    #[error("a frame of {0} bytes is outside 1..=524288")]
    FrameLength(usize),
}

/// Prefixes a payload with its length (§2.6).
pub fn frame(payload: &[u8]) -> Result<Vec<u8>, EncodeError> {
    if payload.is_empty() || payload.len() > PACKET_MAX_SIZE {
        return Err(EncodeError::FrameLength(payload.len()));
    }
    let len = i32::try_from(payload.len()).map_err(|_| EncodeError::FrameLength(payload.len()))?;
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Splits one frame off the start of `buf`: `Ok(None)` until it is complete,
/// an error as soon as the length prefix is out of range.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, DecodeError> {
    let Some(len) = read_i32(buf, 0) else {
        return Ok(None);
    };
    let size = usize::try_from(len)
        .ok()
        .filter(|l| (1..=PACKET_MAX_SIZE).contains(l))
        .ok_or(DecodeError::FrameLength(len))?;
    Ok(buf.get(4..4 + size).map(|payload| (payload, 4 + size)))
}

pub(crate) fn read_i64(buf: &[u8], offset: usize) -> Option<i64> {
    let bytes = buf.get(offset..offset.checked_add(8)?)?;
    Some(i64::from_be_bytes(bytes.try_into().ok()?))
}

pub(crate) fn read_i32(buf: &[u8], offset: usize) -> Option<i32> {
    let bytes = buf.get(offset..offset.checked_add(4)?)?;
    Some(i32::from_be_bytes(bytes.try_into().ok()?))
}

/// Test helper: hex with spaces (as the spec prints vectors) to bytes.
#[cfg(test)]
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_of_section_9_2() {
        assert_eq!(
            split_frame(&hex("00000000")),
            Err(DecodeError::FrameLength(0))
        );
        assert_eq!(
            split_frame(&hex("00080001")),
            Err(DecodeError::FrameLength(524_289))
        );
        assert_eq!(
            split_frame(&hex("ffffffff")),
            Err(DecodeError::FrameLength(-1))
        );
        assert_eq!(split_frame(&hex("000000")), Ok(None));
        assert_eq!(split_frame(&hex("00000002 aa")), Ok(None));
        assert_eq!(
            split_frame(&hex("00000002 aabb cc")),
            Ok(Some((&[0xaa, 0xbb][..], 6)))
        );
        assert_eq!(frame(&[]), Err(EncodeError::FrameLength(0)));
        assert_eq!(
            frame(&vec![0; PACKET_MAX_SIZE + 1]),
            Err(EncodeError::FrameLength(524_289))
        );
    }
}
