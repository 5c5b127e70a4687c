//! Runs the real `zk-operator local` binary against a folder and a block of
//! loopback addresses of its own, so tests run beside each other and beside
//! a user's ensemble. Dropping a [`Local`] runs `local down`, so a failed
//! test leaves no process behind; it first prints the tail of every log.
#![allow(dead_code, clippy::print_stderr)]

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The `zk-operator` binary Cargo built for these tests.
pub const ZK_OPERATOR: &str = env!("CARGO_BIN_EXE_zk-operator");

/// A local ensemble's folder, address block and cluster file.
pub struct Local {
    pub dir: tempfile::TempDir,
    pub base: Ipv4Addr,
    pub file: PathBuf,
}

impl Local {
    /// A folder holding `cluster.yaml` with `spec` (YAML lines under
    /// `spec:`), and a fresh loopback block.
    pub fn new(name: &str, spec: &str) -> Local {
        let dir = tempfile::Builder::new()
            .prefix("zk-local-")
            .tempdir()
            .expect("a temporary folder");
        let file = dir.path().join("cluster.in.yaml");
        fs::write(
            &file,
            format!(
                "apiVersion: zookube.io/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: {name}\nspec:\n{spec}"
            ),
        )
        .expect("write the cluster file");
        Local {
            dir,
            base: zk_testkit::loopback_base(),
            file,
        }
    }

    pub fn ensemble_dir(&self) -> PathBuf {
        self.dir.path().join("ensemble")
    }

    /// `zk-operator local ARGS --dir <its folder>`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// As [`Local::run`], with extra environment variables.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(ZK_OPERATOR);
        command
            .arg("local")
            .args(args)
            .arg("--dir")
            .arg(self.ensemble_dir())
            .env_remove("ZOOKUBE_LOCAL_DIR");
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().expect("run zk-operator")
    }

    /// `local up -f <file> --base <block>`, which must succeed.
    pub fn up(&self) -> Output {
        let base = self.base.to_string();
        let file = self.file.display().to_string();
        let out = self.run(&["up", "-f", &file, "--base", &base]);
        assert_success(&out, "local up");
        out
    }

    /// `local status -o json`, parsed.
    pub fn status(&self) -> Result<Value, String> {
        let out = self.run(&["status", "-o", "json"]);
        if !out.status.success() {
            return Err(text(&out.stderr));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", text(&out.stdout)))
    }

    /// The address of member `myid`.
    pub fn host(&self, myid: u8) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + u32::from(myid))
    }

    /// Lines of any member's ZooKeeper log that are harm while members
    /// join and leave ([`zk_testkit::harm_during_membership_changes`]), as
    /// `(member folder, line)`.
    pub fn harm_lines(&self) -> Vec<(String, String)> {
        let Ok(entries) = fs::read_dir(self.ensemble_dir().join("members")) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let member = entry.file_name().to_string_lossy().into_owned();
            let log = fs::read_to_string(entry.path().join("zookeeper.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            for line in zk_testkit::harm_during_membership_changes(&log) {
                // What the member did just before, for whoever reads a
                // failure: the line alone rarely says why.
                if let Some(at) = lines.iter().position(|l| *l == line) {
                    eprintln!("--- member {member}'s log before a harm line ---");
                    for before in &lines[at.saturating_sub(40)..=at] {
                        eprintln!("{before}");
                    }
                }
                found.push((member.clone(), line.to_owned()));
            }
        }
        found
    }

    fn print_logs(&self) {
        let members = self.ensemble_dir().join("members");
        let Ok(entries) = fs::read_dir(&members) else {
            return;
        };
        for entry in entries.flatten() {
            for log in ["zookeeper.log", "sidecar.log"] {
                let path = entry.path().join(log);
                let text = fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("--- last lines of {} ---", path.display());
                for line in &lines[lines.len().saturating_sub(25)..] {
                    eprintln!("{line}");
                }
            }
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        let _ = self.run(&["down", "--purge"]);
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Fails with the output unless the command exited with `code` and its
/// stderr contains every one of `needles`.
#[track_caller]
pub fn assert_failure(out: &Output, code: i32, needles: &[&str]) {
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}; stdout:\n{}\nstderr:\n{stderr}",
        text(&out.stdout)
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{needle:?} not in stderr:\n{stderr}"
        );
    }
}

/// Whether a process runs: it exists and is not a zombie (a zombie has
/// exited and only waits to be reaped by its parent). A process whose main
/// thread is a zombie while other threads still exit counts as running.
pub fn is_running(pid: u64) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let zombie = matches!(*fields.first()?, "Z" | "X");
            let threads: u64 = fields.get(17)?.parse().ok()?;
            Some(!zombie || threads > 1)
        })
        .unwrap_or(false)
}

/// Every pid `local status -o json` lists (servers and sidecars).
pub fn pids(status: &Value) -> Vec<u64> {
    status["members"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| [m["server"]["pid"].as_u64(), m["sidecar"]["pid"].as_u64()])
        .flatten()
        .collect()
}

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The sidecar binary must sit beside zk-operator (a workspace build puts
/// it there); say how to get it rather than fail obscurely.
pub fn sidecar_built() {
    let beside = Path::new(ZK_OPERATOR).with_file_name("zk-sidecar");
    assert!(
        beside.is_file() || std::env::var_os("ZK_SIDECAR").is_some(),
        "{} is missing: build it with `cargo build -p zk-sidecar` (scripts/test builds the whole workspace)",
        beside.display()
    );
}
