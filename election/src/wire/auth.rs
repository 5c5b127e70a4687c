//! Quorum SASL's packets (`QuorumAuthPacket`, spec §2.1): what a caller
//! and a member exchange right after the preamble when the members require
//! SASL (`quorum.auth.serverRequireSasl=true`). A packet is a jute record,
//! unframed: the magic `0x5f2435013501edcc` (i64, negative), the status
//! (i32) and the token (an i32 length, -1 for none, then the bytes).

use super::DecodeError;

/// The first eight bytes of every auth packet.
pub const AUTH_MAGIC: i64 = 0x5f24_3501_3501_edcc_u64 as i64;

/// The longest token accepted from a member. A DIGEST-MD5 challenge or
/// `rspauth` is a few hundred bytes.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Where the exchange stands, as the packet says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStatus {
    InProgress,
    Success,
    Error,
}

impl AuthStatus {
    fn wire(self) -> i32 {
        match self {
            AuthStatus::InProgress => 0,
            AuthStatus::Success => 1,
            AuthStatus::Error => -1,
        }
    }

    fn from_wire(value: i32) -> Option<AuthStatus> {
        match value {
            0 => Some(AuthStatus::InProgress),
            1 => Some(AuthStatus::Success),
            -1 => Some(AuthStatus::Error),
            _ => None,
        }
    }
}

/// One packet of the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPacket {
    pub status: AuthStatus,
    /// `None` is the jute null buffer (length -1).
    pub token: Option<Vec<u8>>,
}

impl AuthPacket {
    /// The bytes, as ZooKeeper's `BinaryOutputArchive` writes them.
    pub fn encode(&self) -> Vec<u8> {
        let token = self.token.as_deref();
        let mut bytes = Vec::with_capacity(16 + token.map_or(0, <[u8]>::len));
        bytes.extend_from_slice(&AUTH_MAGIC.to_be_bytes());
        bytes.extend_from_slice(&self.status.wire().to_be_bytes());
        match token {
            None => bytes.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(token) => {
                // A token this side makes is a few hundred bytes.
                let len = i32::try_from(token.len()).unwrap_or(i32::MAX);
                bytes.extend_from_slice(&len.to_be_bytes());
                bytes.extend_from_slice(token);
            }
        }
        bytes
    }

    /// The packet at the start of `buf` and the bytes it took, `None` when
    /// more bytes are needed. A wrong magic, an unknown status or a token
    /// longer than [`MAX_TOKEN_LEN`] is an error (the connection closes).
    pub fn decode(buf: &[u8]) -> Result<Option<(AuthPacket, usize)>, DecodeError> {
        let Some(head) = buf.get(..16) else {
            return Ok(None);
        };
        let (magic, rest) = head.split_at(8);
        let (status, len) = rest.split_at(4);
        let magic = i64::from_be_bytes(magic.try_into().unwrap_or_default());
        if magic != AUTH_MAGIC {
            return Err(DecodeError::AuthMagic(magic));
        }
        let status = i32::from_be_bytes(status.try_into().unwrap_or_default());
        let status = AuthStatus::from_wire(status).ok_or(DecodeError::AuthStatus(status))?;
        let len = i32::from_be_bytes(len.try_into().unwrap_or_default());
        if len == -1 {
            return Ok(Some((
                AuthPacket {
                    status,
                    token: None,
                },
                16,
            )));
        }
        let size = usize::try_from(len)
            .ok()
            .filter(|n| *n <= MAX_TOKEN_LEN)
            .ok_or(DecodeError::AuthTokenLength(len))?;
        let Some(token) = buf.get(16..16 + size) else {
            return Ok(None);
        };
        let packet = AuthPacket {
            status,
            token: Some(token.to_vec()),
        };
        Ok(Some((packet, 16 + size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_and_bad_bytes_are_named() {
        let packet = AuthPacket {
            status: AuthStatus::InProgress,
            token: Some(b"realm".to_vec()),
        };
        let bytes = packet.encode();
        assert_eq!(
            &bytes[..8],
            &[0x5f, 0x24, 0x35, 0x01, 0x35, 0x01, 0xed, 0xcc]
        );
        assert_eq!(AuthPacket::decode(&bytes), Ok(Some((packet, bytes.len()))));
        for short in 0..bytes.len() {
            assert_eq!(AuthPacket::decode(&bytes[..short]), Ok(None), "{short}");
        }
        let empty = AuthPacket {
            status: AuthStatus::Success,
            token: None,
        };
        assert_eq!(AuthPacket::decode(&empty.encode()), Ok(Some((empty, 16))));

        let mut wrong = bytes.clone();
        wrong[0] = 0;
        assert!(matches!(
            AuthPacket::decode(&wrong),
            Err(DecodeError::AuthMagic(_))
        ));
        let mut status = bytes.clone();
        status[11] = 7;
        assert_eq!(AuthPacket::decode(&status), Err(DecodeError::AuthStatus(7)));
        let mut long = bytes;
        long[12..16].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            AuthPacket::decode(&long),
            Err(DecodeError::AuthTokenLength(i32::MAX))
        );
    }
}
