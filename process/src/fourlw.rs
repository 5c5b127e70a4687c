//! ZooKeeper's four-letter words (`ruok`, `srvr`, `mntr`, `conf`) on the
//! client port: a bounded, time-limited client and parsers for the answers.
//!
//! These are cheap reads; nothing here changes a server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Answers larger than this are cut off (a `mntr` is a few KiB).
const MAX_ANSWER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FourLetterError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} did not answer `{word}` within {timeout:?}")]
    Timeout {
        addr: SocketAddr,
        word: String,
        timeout: Duration,
    },
    #[error("reading the answer to `{word}` from {addr}: {source}")]
    Io {
        addr: SocketAddr,
        word: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{word}` is not in the server's 4lw.commands.whitelist; add it to the config")]
    NotWhitelisted { word: String },
    #[error("the server is running but not serving requests (it has no quorum yet)")]
    NotServing,
    #[error("unexpected answer to `{word}`: {answer:?}")]
    Unexpected { word: String, answer: String },
}

/// Sends a four-letter word and reads the answer until the server closes the
/// connection, all within `timeout`.
pub async fn four_letter_word(
    addr: SocketAddr,
    word: &str,
    timeout: Duration,
) -> Result<String, FourLetterError> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|source| FourLetterError::Connect { addr, source })?;
        let io = |source| FourLetterError::Io {
            addr,
            word: word.to_owned(),
            source,
        };
        stream.write_all(word.as_bytes()).await.map_err(io)?;
        let mut answer = Vec::new();
        (&mut stream)
            .take(MAX_ANSWER as u64)
            .read_to_end(&mut answer)
            .await
            .map_err(io)?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| FourLetterError::Timeout {
            addr,
            word: word.to_owned(),
            timeout,
        })??;
    if answer.contains("is not executed because it is not in the whitelist") {
        return Err(FourLetterError::NotWhitelisted {
            word: word.to_owned(),
        });
    }
    if answer.contains("not currently serving requests") {
        return Err(FourLetterError::NotServing);
    }
    Ok(answer)
}

/// `ruok` answered `imok`: the server process is up (not necessarily serving).
pub async fn ruok(addr: SocketAddr, timeout: Duration) -> Result<(), FourLetterError> {
    let answer = four_letter_word(addr, "ruok", timeout).await?;
    if answer.trim() == "imok" {
        Ok(())
    } else {
        Err(FourLetterError::Unexpected {
            word: "ruok".into(),
            answer,
        })
    }
}

/// What `srvr` reports about a serving member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srvr {
    pub version: String,
    pub mode: Mode,
    pub zxid: i64,
    pub outstanding: u64,
    pub connections: u64,
    pub node_count: u64,
}

/// The `Mode:` line of `srvr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Leader,
    Follower,
    Observer,
    Standalone,
    ReadOnly,
}

impl Srvr {
    pub fn parse(answer: &str) -> Option<Srvr> {
        let field = |name: &str| {
            answer
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        let number = |name: &str| field(name).and_then(|v| v.parse().ok());
        let mode = match field("Mode:")? {
            "leader" => Mode::Leader,
            "follower" => Mode::Follower,
            "observer" => Mode::Observer,
            "standalone" => Mode::Standalone,
            "read-only" => Mode::ReadOnly,
            _ => return None,
        };
        let zxid = field("Zxid:")
            .and_then(|z| i64::from_str_radix(z.trim_start_matches("0x"), 16).ok())?;
        Some(Srvr {
            version: field("Zookeeper version:").unwrap_or_default().to_owned(),
            mode,
            zxid,
            outstanding: number("Outstanding:").unwrap_or(0),
            connections: number("Connections:").unwrap_or(0),
            node_count: number("Node count:").unwrap_or(0),
        })
    }
}

/// Asks `srvr` and parses it.
pub async fn srvr(addr: SocketAddr, timeout: Duration) -> Result<Srvr, FourLetterError> {
    let answer = four_letter_word(addr, "srvr", timeout).await?;
    Srvr::parse(&answer).ok_or(FourLetterError::Unexpected {
        word: "srvr".into(),
        answer,
    })
}

/// `mntr`: one `zk_<name>\t<value>` per line.
pub fn parse_mntr(answer: &str) -> BTreeMap<String, String> {
    answer
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Asks `mntr` and parses it.
pub async fn mntr(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<BTreeMap<String, String>, FourLetterError> {
    four_letter_word(addr, "mntr", timeout)
        .await
        .map(|a| parse_mntr(&a))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRVR: &str = "Zookeeper version: 3.8.0-${mvngit.commit.id}, built on 2024-12-29 17:54 UTC\n\
        Latency min/avg/max: 0/0.0/0\nReceived: 1\nSent: 0\nConnections: 1\nOutstanding: 0\n\
        Zxid: 0x100000002\nMode: leader\nNode count: 5\nProposal sizes last/min/max: -1/-1/-1\n";

    #[test]
    fn parses_srvr() {
        let s = Srvr::parse(SRVR).unwrap();
        assert_eq!(s.mode, Mode::Leader);
        assert_eq!(s.zxid, 0x1_0000_0002);
        assert_eq!(s.node_count, 5);
        assert!(s.version.starts_with("3.8.0"));
        assert_eq!(
            Srvr::parse("This ZooKeeper instance is not currently serving requests"),
            None
        );
    }

    #[test]
    fn parses_mntr() {
        let m = parse_mntr(
            "zk_version\t3.8.0\nzk_server_state\tfollower\nzk_outstanding_requests\t0\n",
        );
        assert_eq!(m["zk_server_state"], "follower");
        assert_eq!(m.len(), 3);
    }

    #[tokio::test]
    async fn a_silent_server_times_out_and_a_closed_port_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        let err = ruok(addr, Duration::from_millis(100)).await.unwrap_err();
        assert!(matches!(err, FourLetterError::Timeout { .. }), "{err}");
        held.abort();

        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = ruok(closed, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, FourLetterError::Connect { .. }), "{err}");
    }
}
