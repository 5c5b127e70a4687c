//! A real Prometheus server (Debian's `prometheus` package) on a loopback
//! address, for tests of what Prometheus makes of zookube's metrics: it
//! scrapes, evaluates the alerting rules, and answers through its HTTP API.
//!
//! ```no_run
//! # async fn demo() {
//! let Some(binary) = zk_testkit::prometheus::binary() else { return };
//! let config = "global: {scrape_interval: 1s}\nscrape_configs: []\n";
//! let server = zk_testkit::prometheus::PrometheusServer::start(
//!     &binary,
//!     std::net::Ipv4Addr::new(127, 0, 0, 1),
//!     &[("prometheus.yml", config.to_owned())],
//! )
//! .await;
//! let up = server.query("up").await.unwrap();
//! # }
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{eventually, in_ci};

/// The `prometheus` binary: `$PROMETHEUS` when set, else `prometheus` on
/// `PATH`; `None` when the test should be skipped. In CI a missing
/// Prometheus fails the test; elsewhere the test is skipped with a line
/// saying so.
pub fn binary() -> Option<PathBuf> {
    let found = match std::env::var_os("PROMETHEUS") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
        None => std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("prometheus"))
                .find(|p| p.is_file())
        }),
    };
    match found {
        Some(path) => Some(path),
        None if in_ci() => panic!(
            "this test needs a real Prometheus server and CI is set: install Debian's `prometheus` package (scripts/install-deps does) or set PROMETHEUS"
        ),
        None => {
            eprintln!(
                "SKIPPED: this test needs a real Prometheus server (Debian's `prometheus` package, or PROMETHEUS=path); CI is unset, so it is skipped"
            );
            None
        }
    }
}

/// One instant-query result: a series' labels (with `__name__` when it
/// has one) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// A running Prometheus; killed when dropped (its log's tail is printed
/// first when the test is failing).
#[derive(Debug)]
pub struct PrometheusServer {
    child: Child,
    dir: tempfile::TempDir,
    /// Where its web UI and HTTP API listen.
    pub addr: SocketAddr,
}

impl PrometheusServer {
    /// Writes `files` (one of them `prometheus.yml`; relative paths in it
    /// resolve against the same folder) and starts Prometheus on a free
    /// port of `ip`; returns once it is ready.
    pub async fn start(binary: &Path, ip: Ipv4Addr, files: &[(&str, String)]) -> PrometheusServer {
        let dir = tempfile::Builder::new()
            .prefix("zk-prometheus-")
            .tempdir()
            .expect("a temporary folder");
        for (name, text) in files {
            fs::write(dir.path().join(name), text).expect("write a Prometheus file");
        }
        let addr = free_port(ip);
        let log = fs::File::create(dir.path().join("prometheus.log")).expect("a log file");
        let child = Command::new(binary)
            .current_dir(dir.path())
            .arg("--config.file=prometheus.yml")
            .arg("--storage.tsdb.path=data")
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let mut server = PrometheusServer { child, dir, addr };
        eventually("Prometheus to be ready", Duration::from_secs(30), || {
            let exited = server.child.try_wait().ok().flatten();
            let addr = server.addr;
            async move {
                if let Some(status) = exited {
                    panic!("Prometheus exited at start ({status})");
                }
                match get(addr, "/-/ready").await? {
                    (200, _) => Ok(()),
                    (code, body) => Err(format!("{code} {body}")),
                }
            }
        })
        .await;
        server
    }

    /// The folder holding its files, data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>`: the `data` of a successful answer, else the
    /// error Prometheus gave.
    pub async fn api(&self, path: &str) -> Result<serde_json::Value, String> {
        let (code, body) = get(self.addr, &format!("/api/v1/{path}")).await?;
        let mut answer: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{code} {e}: {body}"))?;
        if answer["status"] == "success" {
            Ok(answer["data"].take())
        } else {
            Err(format!(
                "{code} {}: {}",
                answer["errorType"], answer["error"]
            ))
        }
    }

    /// The values of `label` among the series `selector` matches (what
    /// Grafana's `label_values(selector, label)` offers).
    pub async fn label_values(&self, label: &str, selector: &str) -> Result<Vec<String>, String> {
        let data = self
            .api(&format!(
                "label/{label}/values?match[]={}",
                percent_encode(selector)
            ))
            .await?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect())
    }

    /// An instant query whose result is a vector (or a scalar, as one
    /// sample without labels).
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let data = self
            .api(&format!("query?query={}", percent_encode(promql)))
            .await
            .map_err(|e| format!("{promql}: {e}"))?;
        let value = |v: &serde_json::Value| -> Result<f64, String> {
            v[1].as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("{promql}: no value in {v}"))
        };
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|series| {
                    let labels = series["metric"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect();
                    Ok(Sample {
                        labels,
                        value: value(&series["value"])?,
                    })
                })
                .collect(),
            Some("scalar") => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: value(&data["result"])?,
            }]),
            other => Err(format!("{promql}: a {other:?} result")),
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("--- last lines of the Prometheus log ---");
            for line in &lines[lines.len().saturating_sub(30)..] {
                eprintln!("{line}");
            }
        }
    }
}

/// A port nobody listens on at `ip` (a private loopback address, so the
/// moment between this check and Prometheus binding it is safe enough).
fn free_port(ip: Ipv4Addr) -> SocketAddr {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
}

/// `GET path`, waiting up to 5 s (queries can be slow).
async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    crate::sidecar::http_get_within(addr, path, Duration::from_secs(5)).await
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            percent_encode(r#"max by (pod) (up{job="zk"}) == 1"#),
            "max%20by%20%28pod%29%20%28up%7Bjob%3D%22zk%22%7D%29%20%3D%3D%201"
        );
    }
}
