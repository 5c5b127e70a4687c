//! Does this member's `zoo.cfg` and `myid` make a server that ZooKeeper will
//! start, in an ensemble zookube is willing to run? Every problem names the
//! fix; all of them are reported at once.

use std::collections::BTreeMap;
use std::fmt;

use crate::identity::{IdentityError, Myid};
use crate::messages;
use crate::quorum;
use crate::zoocfg::ZooCfg;

/// One reason a member's configuration is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The myid file is unreadable as a myid.
    MyidFile(IdentityError),
    /// The member's own myid is not among the server lines.
    MyidNotListed {
        myid: i64,
        listed: Vec<i64>,
    },
    NoVoters,
    EvenVoters {
        voters: Vec<i64>,
    },
    DuplicateMyid {
        myid: i64,
        lines: Vec<usize>,
    },
    /// A server line's id is outside 1..=255.
    ServerIdOutOfRange {
        id: i64,
        line: usize,
    },
    /// Two endpoints bind the same host and port.
    SameAddress {
        endpoint: String,
        first: (i64, &'static str),
        second: (i64, &'static str),
    },
    /// A server line has no client port and there is no `clientPort=`.
    NoClientPort {
        myid: i64,
    },
    /// A setting that ZooKeeper needs is missing or not a positive number.
    BadSetting {
        key: &'static str,
        value: Option<String>,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::MyidFile(e) => write!(f, "{e}"),
            Problem::MyidNotListed { myid, listed } => write!(
                f,
                "myid {myid} is not in the server list (listed: {}); ZooKeeper would stop with \"My id {myid} not in the peer list\". Add server.{myid} to the config or fix the myid file",
                list(listed)
            ),
            Problem::NoVoters => write!(
                f,
                "the config lists no voters; add server.N lines with :participant (or no type) for 1, 3 or 5 voters"
            ),
            Problem::EvenVoters { voters } => write!(
                f,
                "the config lists {} voters ({}); {}. Use {} or {} voters",
                voters.len(),
                list(voters),
                messages::REPLICAS_ODD,
                voters.len() - 1,
                voters.len() + 1
            ),
            Problem::DuplicateMyid { myid, lines } => write!(
                f,
                "server.{myid} is listed more than once (lines {}); keep one line per myid",
                lines
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Problem::ServerIdOutOfRange { id, line } => write!(
                f,
                "line {line}: server.{id} has a myid outside 1..=255; ZooKeeper and zookube accept only 1 to 255"
            ),
            Problem::SameAddress {
                endpoint,
                first,
                second,
            } => write!(
                f,
                "{endpoint} is used twice: as the {} port of server.{} and as the {} port of server.{}; give each server its own host or port",
                first.1, first.0, second.1, second.0
            ),
            Problem::NoClientPort { myid } => write!(
                f,
                "server.{myid} has no client port: add ;2181 to its line or set clientPort=2181"
            ),
            Problem::BadSetting { key, value: None } => {
                write!(
                    f,
                    "`{key}` is not set; ZooKeeper needs it (for example {key}={})",
                    example(key)
                )
            }
            Problem::BadSetting {
                key,
                value: Some(v),
            } => write!(
                f,
                "`{key}={v}` is not a positive whole number; set it like {key}={}",
                example(key)
            ),
        }
    }
}

fn example(key: &str) -> &'static str {
    match key {
        "tickTime" => "2000",
        "initLimit" => "10",
        "syncLimit" => "5",
        _ => "/data",
    }
}

fn list(ids: &[i64]) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The facts `check` prints about a valid member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub myid: Myid,
    pub role: crate::identity::Role,
    pub voters: usize,
    pub observers: usize,
    pub quorum: u32,
    pub tolerated_failures: u32,
}

/// Checks a parsed config (with its dynamic file merged) and the contents of
/// the member's myid file, as an ensemble someone writes by hand: an even
/// number of voters is refused.
pub fn validate(cfg: &ZooCfg, myid_file: &str) -> Result<Summary, Vec<Problem>> {
    checked(cfg, myid_file, Voters::MustBeOdd)
}

/// Checks a member's config as [`validate`] does, except that an even number
/// of voters is accepted: a membership change moves one voter at a time, so
/// the configuration ZooKeeper commits between 3 and 5 voters lists 4, and a
/// member that starts (or restarts) then must start from it.
pub fn validate_member(cfg: &ZooCfg, myid_file: &str) -> Result<Summary, Vec<Problem>> {
    checked(cfg, myid_file, Voters::AnyCount)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Voters {
    MustBeOdd,
    AnyCount,
}

fn checked(cfg: &ZooCfg, myid_file: &str, voter_count: Voters) -> Result<Summary, Vec<Problem>> {
    let mut problems = Vec::new();
    let myid = Myid::parse_file(myid_file)
        .map_err(|e| problems.push(Problem::MyidFile(e)))
        .ok();

    let mut lines_by_id: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for server in &cfg.servers {
        lines_by_id.entry(server.id).or_default().push(server.line);
        if Myid::new(server.id).is_err() {
            problems.push(Problem::ServerIdOutOfRange {
                id: server.id,
                line: server.line,
            });
        }
    }
    for (myid, lines) in &lines_by_id {
        if lines.len() > 1 {
            problems.push(Problem::DuplicateMyid {
                myid: *myid,
                lines: lines.clone(),
            });
        }
    }

    let voters: Vec<i64> = cfg.voters().iter().map(|s| s.id).collect();
    if voters.is_empty() {
        problems.push(Problem::NoVoters);
    } else if voter_count == Voters::MustBeOdd && voters.len().is_multiple_of(2) {
        problems.push(Problem::EvenVoters { voters });
    }

    if let Some(myid) = myid {
        let listed = cfg.server_ids();
        if !listed.contains(&i64::from(myid)) {
            problems.push(Problem::MyidNotListed {
                myid: i64::from(myid),
                listed,
            });
        }
    }

    problems.extend(address_clashes(cfg));
    for server in &cfg.servers {
        if cfg.client_endpoint(server).is_none() {
            problems.push(Problem::NoClientPort { myid: server.id });
        }
    }
    for key in ["tickTime", "initLimit", "syncLimit"] {
        match cfg.get(key) {
            Some(v) if v.parse::<u32>().is_ok_and(|n| n > 0) => {}
            value => problems.push(Problem::BadSetting {
                key,
                value: value.map(str::to_owned),
            }),
        }
    }

    match myid {
        Some(myid) if problems.is_empty() => {
            let role = cfg
                .server(i64::from(myid))
                .map_or(myid.role(), |server| server.role);
            let voters = cfg.voters().len();
            let count = u32::try_from(voters).unwrap_or(u32::MAX);
            Ok(Summary {
                myid,
                role,
                voters,
                observers: cfg.observers().len(),
                quorum: quorum::quorum_size(count),
                tolerated_failures: quorum::tolerated_failures(count),
            })
        }
        _ => Err(problems),
    }
}

/// Endpoints that two servers (or two ports of one server) would both bind.
fn address_clashes(cfg: &ZooCfg) -> Vec<Problem> {
    let mut owners: BTreeMap<(String, u16), (i64, &'static str)> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut claim = |host: &str, port: u16, owner: (i64, &'static str)| {
        let key = (host.to_ascii_lowercase(), port);
        match owners.get(&key) {
            Some(first) if *first != owner => problems.push(Problem::SameAddress {
                endpoint: crate::zoocfg::host_port(host, port),
                first: *first,
                second: owner,
            }),
            Some(_) => {}
            None => {
                owners.insert(key, owner);
            }
        }
    };
    let mut servers: Vec<_> = cfg.servers.iter().collect();
    servers.sort_by_key(|s| (s.id, s.line));
    let mut seen = std::collections::BTreeSet::new();
    for server in servers {
        if !seen.insert(server.id) {
            continue; // a duplicate line is reported once, as a duplicate
        }
        for address in &server.addresses {
            claim(&address.host, address.quorum_port, (server.id, "quorum"));
            claim(
                &address.host,
                address.election_port,
                (server.id, "election"),
            );
        }
        if let Some((host, port)) = cfg.client_endpoint(server) {
            claim(&host, port, (server.id, "client"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cfg: &str, myid: &str) -> Result<Summary, Vec<String>> {
        let cfg = ZooCfg::parse(cfg).unwrap();
        validate(&cfg, myid).map_err(|ps| ps.iter().map(ToString::to_string).collect())
    }

    const BASE: &str = "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/data\n";

    fn with_servers(lines: &str) -> String {
        format!("{BASE}{lines}")
    }

    #[test]
    fn a_valid_three_voter_member() {
        let cfg = with_servers(
            "server.1=a:2888:3888:participant;2181\nserver.2=b:2888:3888;2181\nserver.3=c:2888:3888;2181\nserver.128=d:2888:3888:observer;2181\n",
        );
        let summary = check(&cfg, "2\n").unwrap();
        assert_eq!(summary.voters, 3);
        assert_eq!(summary.observers, 1);
        assert_eq!(summary.quorum, 2);
        assert_eq!(summary.tolerated_failures, 1);
    }

    #[test]
    fn a_member_may_start_from_an_even_config_between_two_odd_ones() {
        let four = with_servers(
            "server.1=a:2888:3888;2181\nserver.2=b:2888:3888;2181\nserver.3=c:2888:3888;2181\nserver.4=d:2888:3888;2181\n",
        );
        let cfg = ZooCfg::parse(&four).unwrap();
        let summary = validate_member(&cfg, "4").unwrap();
        assert_eq!((summary.voters, summary.quorum), (4, 3));
        // Written by hand, the same list is refused; other problems still are.
        assert!(matches!(
            validate(&cfg, "4").unwrap_err()[..],
            [Problem::EvenVoters { .. }]
        ));
        assert!(matches!(
            validate_member(&cfg, "5").unwrap_err()[..],
            [Problem::MyidNotListed { .. }]
        ));
    }

    /// Each bad input with the words its message must contain.
    #[test]
    fn bad_inputs_and_their_messages() {
        let three =
            "server.1=a:2888:3888;2181\nserver.2=b:2888:3888;2181\nserver.3=c:2888:3888;2181\n";
        let table: Vec<(String, &str, Vec<&str>)> = vec![
            (
                with_servers(three),
                "4",
                vec![
                    "myid 4 is not in the server list (listed: 1, 2, 3)",
                    "My id 4 not in the peer list",
                ],
            ),
            (
                with_servers("server.1=a:2888:3888;2181\nserver.2=b:2888:3888;2181\n"),
                "1",
                vec![
                    "lists 2 voters (1, 2)",
                    "replicas must be odd",
                    "Use 1 or 3 voters",
                ],
            ),
            (
                with_servers("server.128=a:2888:3888:observer;2181\n"),
                "128",
                vec!["lists no voters"],
            ),
            (
                with_servers(
                    "server.1=a:2888:3888;2181\nserver.1=b:2888:3888;2181\nserver.2=c:2888:3888;2181\n",
                ),
                "1",
                vec!["server.1 is listed more than once (lines 5, 6)"],
            ),
            (
                with_servers(
                    "server.1=a:2888:3888;2181\nserver.2=a:2888:3889;2182\nserver.3=c:2888:3888;2181\n",
                ),
                "1",
                vec![
                    "a:2888 is used twice: as the quorum port of server.1 and as the quorum port of server.2",
                ],
            ),
            (
                with_servers(
                    "server.1=a:2888:3888;2181\nserver.2=b:2888:3888;2181\nserver.300=c:2888:3888;2181\n",
                ),
                "1",
                vec!["line 7: server.300 has a myid outside 1..=255"],
            ),
            (
                with_servers(three),
                "one",
                vec!["holds \"one\", not a number"],
            ),
            (with_servers(three), "0", vec!["myid 0 is outside 1..=255"]),
            (
                "server.1=a:2888:3888;2181\n".to_owned(),
                "1",
                vec!["`tickTime` is not set", "`initLimit` is not set"],
            ),
            (
                with_servers("server.1=a:2888:3888\n"),
                "1",
                vec!["server.1 has no client port: add ;2181"],
            ),
        ];
        for (cfg, myid, expected) in table {
            let problems = check(&cfg, myid).expect_err(&cfg).join("\n");
            for words in expected {
                assert!(problems.contains(words), "{words:?} not in:\n{problems}");
            }
        }
    }

    #[test]
    fn a_three_four_config_with_client_port() {
        let cfg = with_servers(
            "clientPort=2181\nserver.1=a:2888:3888\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n",
        );
        assert_eq!(check(&cfg, "3").unwrap().voters, 3);
    }

    #[test]
    fn a_port_outside_the_range_is_a_parse_error_with_its_line() {
        let err = ZooCfg::parse(&with_servers("server.1=a:65536:3888;2181\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 5: `server.1`: port 65536 is outside 1..=65535"
        );
    }
}
