//! `zoo.cfg` as ZooKeeper reads it, and as zookube writes it.
//!
//! [`ZooCfg::parse`] accepts what ZooKeeper 3.4 – 3.9 accepts (see
//! [`properties`] and [`server`]); [`ZooCfg::render`] writes the one canonical
//! form: header comments, then every key in sorted order, then the server
//! lines by myid. Rendering is deterministic, so a hash of the bytes can drive
//! restarts, and `render → parse → render` gives the same bytes.

mod properties;
pub mod server;

use std::collections::BTreeMap;

pub use server::{ClientAddress, QuorumAddress, ServerEntry, ServerLineError, host_port};

use crate::identity::Role;

/// The keys of a `zoo.cfg` and its server lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZooCfg {
    /// Comment lines at the top of the file (without the `# `).
    pub header: Vec<String>,
    /// Every key that is not a `server.N` line.
    pub properties: BTreeMap<String, String>,
    /// The server lines, in file order (rendered by myid).
    pub servers: Vec<ServerEntry>,
}

/// A line of a config file that ZooKeeper would not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    pub line: usize,
    pub kind: ParseErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("malformed \\u escape")]
    BadEscape,
    #[error(
        "`{key}`: the server id {id:?} is not a number; write server.<myid>, for example server.1"
    )]
    ServerIdNotANumber { key: String, id: String },
    #[error("`{key}`: {source}")]
    ServerLine {
        key: String,
        #[source]
        source: ServerLineError,
    },
    #[error(
        "`{key}` does not belong in a dynamic config file; it may hold only server.N, group.N, weight.N and version lines"
    )]
    NotDynamic { key: String },
}

/// Every unacceptable line of a file, in order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ParseErrors(pub Vec<ParseError>);

impl ZooCfg {
    /// Parses a `zoo.cfg`. Every bad line is reported, with its number.
    pub fn parse(text: &str) -> Result<ZooCfg, ParseErrors> {
        let mut cfg = ZooCfg::default();
        cfg.absorb(text, false)?;
        Ok(cfg)
    }

    /// Adds the server lines of the file that `dynamicConfigFile=` names.
    pub fn merge_dynamic(&mut self, text: &str) -> Result<(), ParseErrors> {
        self.absorb(text, true)
    }

    fn absorb(&mut self, text: &str, dynamic: bool) -> Result<(), ParseErrors> {
        let items = properties::read(text).map_err(|bad| {
            ParseErrors(vec![ParseError {
                line: bad.line,
                kind: ParseErrorKind::BadEscape,
            }])
        })?;
        let mut errors = Vec::new();
        let mut seen_entry = !self.properties.is_empty() || !self.servers.is_empty();
        for item in items {
            let entry = match item {
                properties::Item::Comment(text) => {
                    if !seen_entry && !dynamic {
                        self.header.push(text);
                    }
                    continue;
                }
                properties::Item::Entry(entry) => entry,
            };
            seen_entry = true;
            if let Some(id) = entry.key.strip_prefix("server.") {
                let Ok(id) = id.trim().parse::<i64>() else {
                    errors.push(ParseError {
                        line: entry.line,
                        kind: ParseErrorKind::ServerIdNotANumber {
                            key: entry.key.clone(),
                            id: id.to_owned(),
                        },
                    });
                    continue;
                };
                match ServerEntry::parse(id, &entry.value, entry.line) {
                    Ok(server) => self.servers.push(server),
                    Err(source) => errors.push(ParseError {
                        line: entry.line,
                        kind: ParseErrorKind::ServerLine {
                            key: entry.key,
                            source,
                        },
                    }),
                }
            } else if dynamic
                && !(entry.key.starts_with("group.")
                    || entry.key.starts_with("weight.")
                    || entry.key == "version")
            {
                errors.push(ParseError {
                    line: entry.line,
                    kind: ParseErrorKind::NotDynamic { key: entry.key },
                });
            } else {
                self.properties.insert(entry.key, entry.value);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ParseErrors(errors))
        }
    }

    /// The canonical text: header comments, sorted keys, servers by myid.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        for (key, value) in &self.properties {
            out.push_str(key);
            out.push('=');
            out.push_str(&properties::escape_value(value));
            out.push('\n');
        }
        let mut servers: Vec<&ServerEntry> = self.servers.iter().collect();
        servers.sort_by_key(|s| s.id);
        for server in servers {
            out.push_str(&server.to_string());
            out.push('\n');
        }
        out
    }

    /// The text of only the server lines, as a dynamic config file holds them.
    pub fn render_dynamic(&self) -> String {
        ZooCfg {
            servers: self.servers.clone(),
            ..ZooCfg::default()
        }
        .render()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// The path `dynamicConfigFile=` names, if any.
    pub fn dynamic_config_file(&self) -> Option<&str> {
        self.get("dynamicConfigFile").filter(|p| !p.is_empty())
    }

    /// The static `clientPort=` (3.4 style), if it is a valid port.
    pub fn static_client_port(&self) -> Option<u16> {
        self.get("clientPort")?.parse().ok().filter(|p| *p >= 1)
    }

    pub fn server(&self, id: i64) -> Option<&ServerEntry> {
        self.servers.iter().find(|s| s.id == id)
    }

    /// The client endpoint of a server: its own `;[host:]port`, else its host
    /// with the static `clientPort`.
    pub fn client_endpoint(&self, server: &ServerEntry) -> Option<(String, u16)> {
        match &server.client {
            Some(ClientAddress {
                host: Some(host),
                port,
            }) if host != "0.0.0.0" => Some((host.clone(), *port)),
            Some(ClientAddress { port, .. }) => Some((server.host().to_owned(), *port)),
            None => self
                .static_client_port()
                .map(|port| (server.host().to_owned(), port)),
        }
    }

    /// The voters (participants), by myid.
    pub fn voters(&self) -> Vec<&ServerEntry> {
        let mut voters: Vec<_> = self
            .servers
            .iter()
            .filter(|s| s.role == Role::Voter)
            .collect();
        voters.sort_by_key(|s| s.id);
        voters
    }

    /// The observers, by myid.
    pub fn observers(&self) -> Vec<&ServerEntry> {
        let mut observers: Vec<_> = self
            .servers
            .iter()
            .filter(|s| s.role == Role::Observer)
            .collect();
        observers.sort_by_key(|s| s.id);
        observers
    }

    /// Every listed server id, sorted and without repeats.
    pub fn server_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.servers.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE_FOUR: &str = "\
# classic
tickTime=2000
dataDir=/var/lib/zookeeper
clientPort=2181
initLimit=5
syncLimit=2
server.1=zoo1:2888:3888
server.2=zoo2:2888:3888
server.3=zoo3:2888:3888:observer
";

    #[test]
    fn parses_a_three_four_config() {
        let cfg = ZooCfg::parse(THREE_FOUR).unwrap();
        assert_eq!(cfg.header, vec!["classic".to_owned()]);
        assert_eq!(cfg.voters().len(), 2);
        assert_eq!(cfg.observers().len(), 1);
        let server2 = cfg.server(2).unwrap();
        assert_eq!(cfg.client_endpoint(server2), Some(("zoo2".into(), 2181)));
        assert_eq!(server2.line, 8);
    }

    #[test]
    fn bad_lines_are_all_reported_with_their_numbers() {
        let text = "tickTime=2000\nserver.x=a:1:2\nserver.2=a:1\nserver.3=a:1:2:leader\n";
        let errors = ZooCfg::parse(text).unwrap_err().0;
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4]);
        assert_eq!(
            errors[0].to_string(),
            "line 2: `server.x`: the server id \"x\" is not a number; write server.<myid>, for example server.1"
        );
    }

    #[test]
    fn dynamic_file_adds_server_lines() {
        let mut cfg =
            ZooCfg::parse("dataDir=/data\ndynamicConfigFile=/conf/zoo.cfg.dynamic.100000000\n")
                .unwrap();
        assert_eq!(
            cfg.dynamic_config_file(),
            Some("/conf/zoo.cfg.dynamic.100000000")
        );
        cfg.merge_dynamic(
            "server.1=a:2888:3888:participant;2181\nserver.2=b:2888:3888:participant;2181\n",
        )
        .unwrap();
        assert_eq!(cfg.server_ids(), vec![1, 2]);
        let err = cfg.merge_dynamic("tickTime=1\n").unwrap_err();
        assert_eq!(err.0[0].line, 1);
    }

    #[test]
    fn render_is_canonical() {
        let cfg = ZooCfg::parse(THREE_FOUR).unwrap();
        let text = cfg.render();
        assert_eq!(ZooCfg::parse(&text).unwrap().render(), text);
        assert!(text.starts_with("# classic\nclientPort=2181\ndataDir="));
        assert!(text.ends_with("server.3=zoo3:2888:3888:observer\n"));
    }
}
