//! The preamble ("initial message") a dialler sends once, right after the TCP
//! connection is up (spec §2.2): legacy (a bare sid), V1 (sid and one
//! `host:port`), V2 (sid and `host:port|host:port…`, 3.6+ only).
//!
//! The encoder refuses anything that could hurt a real member (D4: a bad port
//! kills its listener; D9: `OBSERVER_ID`; D10: bad lengths). The decoder
//! rejects every such input too, so a Rust acceptor is as strict as we are.

use std::fmt;
use std::net::IpAddr;

use super::{DecodeError, EncodeError, read_i32, read_i64};

/// The protocol version of a V1 preamble.
pub const PROTOCOL_V1: i64 = -65536;
/// The protocol version of a V2 (multi-address) preamble.
pub const PROTOCOL_V2: i64 = -65535;
/// The sid of pre-3.4 observers, which acceptors rename (§2.4). Never sent.
pub const OBSERVER_ID: i64 = i64::MAX;
/// The largest address string a 3.5.1+ server accepts.
pub const MAX_ADDRESS_LEN: usize = 2048;

/// A member's election endpoint as a preamble advertises it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ElectionAddress {
    /// A host name, a dotted IPv4 literal, or an IPv6 literal (unbracketed
    /// here; bracketed on the wire).
    pub host: String,
    pub port: u16,
}

impl ElectionAddress {
    pub fn new(host: impl Into<String>, port: u16) -> ElectionAddress {
        ElectionAddress {
            host: host.into(),
            port,
        }
    }

    /// Whether the host is an IP literal (what a watcher must advertise, so
    /// the member does no DNS lookup on its accept thread, §5.2).
    pub fn is_ip_literal(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }

    fn parse(text: &str) -> Result<ElectionAddress, DecodeError> {
        let bad = || DecodeError::BadAddress(text.chars().take(80).collect());
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, tail) = rest.split_once(']').ok_or_else(bad)?;
            (host, tail.strip_prefix(':').ok_or_else(bad)?)
        } else {
            let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
            if host.contains(':') {
                return Err(bad()); // an unbracketed IPv6 literal (§2.2 step 5)
            }
            (host, port)
        };
        if host.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let port: u32 = port.parse().map_err(|_| bad())?;
        let port = u16::try_from(port).map_err(|_| DecodeError::PortOutOfRange(port))?;
        Ok(ElectionAddress::new(host, port))
    }
}

impl fmt::Display for ElectionAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The first message on an election connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preamble {
    /// ZooKeeper ≤ 3.4: the sid alone.
    Legacy { sid: i64 },
    /// 3.5+: the sid and the sender's own election address.
    V1 { sid: i64, address: ElectionAddress },
    /// 3.6+ with `multiAddress.enabled`: several addresses.
    V2 {
        sid: i64,
        addresses: Vec<ElectionAddress>,
    },
}

impl Preamble {
    pub fn sid(&self) -> i64 {
        match self {
            Preamble::Legacy { sid } | Preamble::V1 { sid, .. } | Preamble::V2 { sid, .. } => *sid,
        }
    }

    /// The advertised addresses (none for legacy).
    pub fn addresses(&self) -> Vec<&ElectionAddress> {
        match self {
            Preamble::Legacy { .. } => Vec::new(),
            Preamble::V1 { address, .. } => vec![address],
            Preamble::V2 { addresses, .. } => addresses.iter().collect(),
        }
    }

    /// The bytes to send, in one write (§2.2 step 4).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let sid = self.sid();
        if sid < 0 || sid == OBSERVER_ID {
            return Err(EncodeError::BadSid(sid));
        }
        let (version, text) = match self {
            Preamble::Legacy { sid } => return Ok(sid.to_be_bytes().to_vec()),
            Preamble::V1 { address, .. } => (PROTOCOL_V1, address.to_string()),
            Preamble::V2 { addresses, .. } => {
                if addresses.is_empty() {
                    return Err(EncodeError::AddressLength(0));
                }
                let text: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                (PROTOCOL_V2, text.join("|"))
            }
        };
        if !text.is_ascii() || text.contains(char::is_whitespace) {
            return Err(EncodeError::NotAscii);
        }
        // Validate with the same rules a member applies before it is sent.
        for part in text.split('|') {
            ElectionAddress::parse(part).map_err(|_| EncodeError::BadAddress(part.to_owned()))?;
        }
        if text.is_empty() || text.len() > MAX_ADDRESS_LEN {
            return Err(EncodeError::AddressLength(text.len()));
        }
        let len = i32::try_from(text.len()).map_err(|_| EncodeError::AddressLength(text.len()))?;
        let mut out = Vec::with_capacity(20 + text.len());
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&sid.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(text.as_bytes());
        Ok(out)
    }

    /// Decodes a preamble from the start of `buf`. `Ok(None)` means more bytes
    /// are needed; `Ok(Some((preamble, used)))` gives the bytes it took.
    pub fn decode(buf: &[u8]) -> Result<Option<(Preamble, usize)>, DecodeError> {
        let Some(first) = read_i64(buf, 0) else {
            return Ok(None);
        };
        if first >= 0 {
            if first == OBSERVER_ID {
                return Err(DecodeError::ObserverId);
            }
            return Ok(Some((Preamble::Legacy { sid: first }, 8)));
        }
        if first != PROTOCOL_V1 && first != PROTOCOL_V2 {
            return Err(DecodeError::UnknownVersion(first));
        }
        let (Some(sid), Some(len)) = (read_i64(buf, 8), read_i32(buf, 16)) else {
            return Ok(None);
        };
        if sid < 0 || sid == OBSERVER_ID {
            return Err(DecodeError::BadSid(sid));
        }
        let len = usize::try_from(len)
            .ok()
            .filter(|l| (1..=MAX_ADDRESS_LEN).contains(l))
            .ok_or(DecodeError::AddressLength(len))?;
        let Some(bytes) = buf.get(20..20 + len) else {
            return Ok(None);
        };
        let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8)?;
        let preamble = if first == PROTOCOL_V1 {
            Preamble::V1 {
                sid,
                address: ElectionAddress::parse(text)?,
            }
        } else {
            Preamble::V2 {
                sid,
                addresses: text
                    .split('|')
                    .map(ElectionAddress::parse)
                    .collect::<Result<_, _>>()?,
            }
        };
        Ok(Some((preamble, 20 + len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::hex;

    fn decode_all(bytes: &[u8]) -> Result<Preamble, DecodeError> {
        let (preamble, used) = Preamble::decode(bytes)?.expect("complete");
        assert_eq!(used, bytes.len());
        Ok(preamble)
    }

    /// §9.1 P1–P6: each decodes and encodes back to the same bytes.
    #[test]
    fn spec_vectors_p1_to_p6() {
        let cases = [
            (
                "ffffffffffff0000 0000000000000001 0000000d 31302e302e302e313a33383838",
                Preamble::V1 {
                    sid: 1,
                    address: ElectionAddress::new("10.0.0.1", 3888),
                },
            ),
            (
                "ffffffffffff0000 0000000000000002 0000000e 3132372e302e302e313a33383832",
                Preamble::V1 {
                    sid: 2,
                    address: ElectionAddress::new("127.0.0.1", 3882),
                },
            ),
            (
                "ffffffffffff0000 4000000000000003 0000000d 31302e302e302e393a33383838",
                Preamble::V1 {
                    sid: (1 << 62) + 3,
                    address: ElectionAddress::new("10.0.0.9", 3888),
                },
            ),
            (
                "ffffffffffff0001 0000000000000004 0000001e 31302e302e302e343a333838387c3139322e3136382e302e343a33383838",
                Preamble::V2 {
                    sid: 4,
                    addresses: vec![
                        ElectionAddress::new("10.0.0.4", 3888),
                        ElectionAddress::new("192.168.0.4", 3888),
                    ],
                },
            ),
            (
                "ffffffffffff0000 0000000000000006 0000000e 5b666430303a3a365d3a33383838",
                Preamble::V1 {
                    sid: 6,
                    address: ElectionAddress::new("fd00::6", 3888),
                },
            ),
            ("0000000000000005", Preamble::Legacy { sid: 5 }),
        ];
        for (vector, expected) in cases {
            let bytes = hex(vector);
            assert_eq!(decode_all(&bytes).unwrap(), expected, "{vector}");
            assert_eq!(expected.encode().unwrap(), bytes, "{vector}");
        }
    }

    /// §9.1 P7 and the other rejections.
    #[test]
    fn spec_rejections() {
        let p7 = hex("ffffffffffff0000 4000000000000008 0000000f 3132372e302e302e313a3730303030");
        assert_eq!(decode_all(&p7), Err(DecodeError::PortOutOfRange(70000)));
        let v3 = hex("ffffffffffff0002 0000000000000001 0000000d 31302e302e302e313a33383838");
        assert_eq!(decode_all(&v3), Err(DecodeError::UnknownVersion(-65534)));
        let zero = hex("ffffffffffff0000 0000000000000001 00000000");
        assert_eq!(decode_all(&zero), Err(DecodeError::AddressLength(0)));
        let long = hex("ffffffffffff0000 0000000000000001 00000801");
        assert_eq!(decode_all(&long), Err(DecodeError::AddressLength(2049)));
        let observer_id = hex("7fffffffffffffff");
        assert_eq!(decode_all(&observer_id), Err(DecodeError::ObserverId));
        let bare_v6 = Preamble::V1 {
            sid: 1,
            address: ElectionAddress::new("fd00::1", 3888),
        }
        .encode()
        .unwrap();
        assert!(bare_v6.ends_with(b"[fd00::1]:3888"));
    }

    #[test]
    fn the_encoder_refuses_what_would_hurt_a_member() {
        let v1 = |host: &str, sid| Preamble::V1 {
            sid,
            address: ElectionAddress::new(host, 3888),
        };
        assert_eq!(
            v1("10.0.0.1", OBSERVER_ID).encode(),
            Err(EncodeError::BadSid(OBSERVER_ID))
        );
        assert_eq!(v1("10.0.0.1", -1).encode(), Err(EncodeError::BadSid(-1)));
        assert_eq!(v1("hôte", 1).encode(), Err(EncodeError::NotAscii));
        assert!(matches!(
            v1("a|b:1", 1).encode(),
            Err(EncodeError::BadAddress(_))
        ));
        assert_eq!(
            v1(&"h".repeat(2050), 1).encode(),
            Err(EncodeError::AddressLength(2055))
        );
        let empty_v2 = Preamble::V2 {
            sid: 1,
            addresses: vec![],
        };
        assert_eq!(empty_v2.encode(), Err(EncodeError::AddressLength(0)));
    }

    #[test]
    fn partial_input_asks_for_more() {
        let bytes = hex("ffffffffffff0000 0000000000000001 0000000d 31302e302e302e313a33383838");
        for cut in 0..bytes.len() {
            assert_eq!(Preamble::decode(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
    }
}
