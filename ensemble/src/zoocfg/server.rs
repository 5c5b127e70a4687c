//! `server.<myid>=…` lines, in every form ZooKeeper 3.4 – 3.9 accepts:
//!
//! ```text
//! server.1=zk-0.zk-headless:2888:3888                         (3.4: client port from clientPort=)
//! server.1=zk-0.zk-headless:2888:3888:participant;2181        (3.5+)
//! server.4=10.0.0.4:2888:3888:observer;10.0.0.4:2181          (client address and port)
//! server.5=[fd00::5]:2888:3888|10.0.0.5:2888:3888:participant  (3.6+ multi-address, IPv6)
//! ```

use std::fmt;

use crate::identity::Role;

/// One quorum/election endpoint of a server (a server line may list several,
/// separated by `|`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuorumAddress {
    /// A host name, an IPv4 literal, or an IPv6 literal without brackets.
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
}

/// Where a server accepts client connections (`;[host:]port`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientAddress {
    /// `None` means every address (`0.0.0.0`), as ZooKeeper reads `;2181`.
    pub host: Option<String>,
    pub port: u16,
}

/// A parsed or rendered `server.N` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEntry {
    /// The server id as written. ZooKeeper reads any `long`; zookube's
    /// validation accepts 1..=255.
    pub id: i64,
    pub addresses: Vec<QuorumAddress>,
    pub role: Role,
    pub client: Option<ClientAddress>,
    /// The line it came from (1-based), or 0 when rendered.
    pub line: usize,
}

impl ServerEntry {
    /// The `server.N` key.
    pub fn key(&self) -> String {
        format!("server.{}", self.id)
    }

    /// The value side of the line, in ZooKeeper 3.5+ form.
    pub fn value(&self) -> String {
        let addresses: Vec<String> = self
            .addresses
            .iter()
            .map(|a| format!("{}:{}:{}", bracket(&a.host), a.quorum_port, a.election_port))
            .collect();
        let mut value = format!("{}:{}", addresses.join("|"), self.role.learner_type());
        if let Some(client) = &self.client {
            match &client.host {
                Some(host) => value.push_str(&format!(";{}", host_port(host, client.port))),
                None => value.push_str(&format!(";{}", client.port)),
            }
        }
        value
    }

    /// The host of the first address (the one ZooKeeper dials first).
    pub fn host(&self) -> &str {
        self.addresses.first().map_or("", |a| a.host.as_str())
    }

    /// Parses the value of a `server.<id>` key.
    pub fn parse(id: i64, value: &str, line: usize) -> Result<ServerEntry, ServerLineError> {
        let (server_part, client_part) = match value.split(';').collect::<Vec<_>>()[..] {
            [server] => (server, None),
            [server, client] => (server, Some(client)),
            _ => return Err(ServerLineError::Form),
        };
        let mut role = None;
        let mut addresses = Vec::new();
        for address in server_part.split('|') {
            let parts = split_with_leading_host(address.trim())?;
            let (host, quorum, election, kind) = match &parts[..] {
                [h, q, e] => (h, q, e, None),
                [h, q, e, t] => (h, q, e, Some(t)),
                _ => return Err(ServerLineError::Form),
            };
            if host.is_empty() {
                return Err(ServerLineError::Form);
            }
            if let Some(kind) = kind {
                let parsed = match kind.to_ascii_lowercase().as_str() {
                    "participant" => Role::Voter,
                    "observer" => Role::Observer,
                    _ => return Err(ServerLineError::UnknownType((*kind).to_owned())),
                };
                if role.is_some_and(|r| r != parsed) {
                    return Err(ServerLineError::Form);
                }
                role = Some(parsed);
            }
            addresses.push(QuorumAddress {
                host: (*host).to_owned(),
                quorum_port: parse_port(quorum)?,
                election_port: parse_port(election)?,
            });
        }
        let client = client_part
            .map(|client| {
                let parts = split_with_leading_host(client.trim())?;
                match &parts[..] {
                    [port] => Ok(ClientAddress {
                        host: None,
                        port: parse_port(port)?,
                    }),
                    [host, port] => Ok(ClientAddress {
                        host: Some((*host).to_owned()),
                        port: parse_port(port)?,
                    }),
                    _ => Err(ServerLineError::Form),
                }
            })
            .transpose()?;
        Ok(ServerEntry {
            id,
            addresses,
            role: role.unwrap_or(Role::Voter),
            client,
            line,
        })
    }
}

impl fmt::Display for ServerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key(), self.value())
    }
}

/// `host:port`, with an IPv6 literal in brackets (`[fd00::5]:2181`), as
/// ZooKeeper, URIs and socket-address parsers all read it.
pub fn host_port(host: &str, port: u16) -> String {
    format!("{}:{port}", bracket(host))
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// `host:a:b` split on `:`, where the host may be a bracketed IPv6 literal.
fn split_with_leading_host(text: &str) -> Result<Vec<&str>, ServerLineError> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, tail) = rest.split_once(']').ok_or(ServerLineError::Form)?;
        let mut parts = vec![host];
        if !tail.is_empty() {
            parts.extend(
                tail.strip_prefix(':')
                    .ok_or(ServerLineError::Form)?
                    .split(':'),
            );
        }
        Ok(parts)
    } else {
        Ok(text.split(':').collect())
    }
}

fn parse_port(text: &str) -> Result<u16, ServerLineError> {
    let value: i64 = text
        .trim()
        .parse()
        .map_err(|_| ServerLineError::PortNotANumber(text.to_owned()))?;
    u16::try_from(value)
        .ok()
        .filter(|p| *p >= 1)
        .ok_or(ServerLineError::PortOutOfRange(value))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerLineError {
    #[error(
        "a server line must read host:quorumPort:electionPort[:participant|observer][;[clientHost:]clientPort], with several host:port:port parts joined by |"
    )]
    Form,
    #[error("unknown server type {0:?}; use participant or observer")]
    UnknownType(String),
    #[error("port {0:?} is not a number")]
    PortNotANumber(String),
    #[error("port {0} is outside 1..=65535")]
    PortOutOfRange(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> ServerEntry {
        ServerEntry::parse(1, value, 1).unwrap()
    }

    #[test]
    fn host_and_port_join_with_brackets_around_ipv6() {
        let cases = [
            ("zk-0.zk-headless", 2181, "zk-0.zk-headless:2181"),
            ("10.0.0.7", 8081, "10.0.0.7:8081"),
            ("fd00::7", 8081, "[fd00::7]:8081"),
            ("::1", 2181, "[::1]:2181"),
        ];
        for (host, port, joined) in cases {
            assert_eq!(host_port(host, port), joined);
        }
        let parsed: std::net::SocketAddr = host_port("fd00::7", 8081).parse().unwrap();
        assert_eq!(parsed.port(), 8081);
    }

    #[test]
    fn three_four_style_line() {
        let entry = parse("zk-0.zk-headless:2888:3888");
        assert_eq!(entry.role, Role::Voter);
        assert_eq!(entry.client, None);
        assert_eq!(entry.host(), "zk-0.zk-headless");
        assert_eq!(entry.value(), "zk-0.zk-headless:2888:3888:participant");
    }

    #[test]
    fn three_five_style_lines_round_trip() {
        for value in [
            "zk-0.zk-headless.ns.svc.cluster.local:2888:3888:participant;2181",
            "10.0.0.4:2888:3888:observer;10.0.0.4:2181",
            "[fd00::5]:2888:3888|10.0.0.5:2888:3888:participant",
            "[fd00::5]:2888:3888:participant;[fd00::5]:2181",
        ] {
            assert_eq!(parse(value).value(), value);
        }
    }

    #[test]
    fn observer_and_client_address() {
        let entry = parse("10.0.0.4:2888:3888:observer;10.0.0.4:2182");
        assert_eq!(entry.role, Role::Observer);
        assert_eq!(
            entry.client,
            Some(ClientAddress {
                host: Some("10.0.0.4".into()),
                port: 2182
            })
        );
    }

    #[test]
    fn malformed_lines() {
        let err = |v| ServerEntry::parse(1, v, 1).unwrap_err();
        assert_eq!(err("host:2888"), ServerLineError::Form);
        assert_eq!(
            err("host:2888:3888:voter"),
            ServerLineError::UnknownType("voter".into())
        );
        assert_eq!(
            err("host:70000:3888"),
            ServerLineError::PortOutOfRange(70000)
        );
        assert_eq!(err("host:0:3888"), ServerLineError::PortOutOfRange(0));
        assert_eq!(
            err("host:x:3888"),
            ServerLineError::PortNotANumber("x".into())
        );
        assert_eq!(err("host:1:2;3;4"), ServerLineError::Form);
        assert_eq!(err("[fd00::1:1:2"), ServerLineError::Form);
    }
}
