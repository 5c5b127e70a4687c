//! `zk-sidecar run` refuses to start, with a clear message and a non-zero
//! exit, when it could not watch safely.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const BASE: &str = "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/data\n\
    server.1=127.0.0.1:2888:3888;2181\nserver.2=127.0.0.2:2888:3888;2181\nserver.3=127.0.0.3:2888:3888;2181\n";

fn run(dir: &Path, cfg: &str, myid: &str) -> Output {
    fs::write(dir.join("zoo.cfg"), cfg).unwrap();
    fs::write(dir.join("myid"), myid).unwrap();
    Command::new(env!("CARGO_BIN_EXE_zk-sidecar"))
        .args([
            "--log-format",
            "text",
            "run",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(dir.join("zoo.cfg"))
        .arg("--myid-file")
        .arg(dir.join("myid"))
        .env_remove("ZOOKUBE_JAAS_CONFIG")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_tls_quorum_without_stores_and_a_sasl_quorum_without_credentials_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &format!("{BASE}sslQuorum=true\n"), "1");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("sslQuorum=true but no `ssl.quorum.keyStore.location`"),
        "{}",
        stderr(&out)
    );
    let out = run(
        dir.path(),
        &format!("{BASE}quorum.auth.enableSasl=true\nquorum.auth.serverRequireSasl=true\n"),
        "1",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--jaas-config"), "{}", stderr(&out));
}

#[test]
fn a_myid_not_in_the_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), BASE, "7");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("myid 7 is not in the server list")
            && stderr(&out).contains("listed: 1, 2, 3"),
        "{}",
        stderr(&out)
    );
    let out = run(dir.path(), BASE, "x");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a number"), "{}", stderr(&out));
}

#[test]
fn an_unreadable_config_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_zk-sidecar"))
        .args([
            "run",
            "--config",
            "/nonexistent/zoo.cfg",
            "--myid-file",
            "/nonexistent/myid",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read /nonexistent/zoo.cfg"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_config_listing_the_watchers_sid_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 2^62 + 1: the sid of the sidecar beside myid 1.
    let cfg = format!("{BASE}server.4611686018427387905=127.0.0.4:2888:3888;2181\n");
    let out = run(dir.path(), &cfg, "1");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("sid 4611686018427387905 is listed"),
        "{}",
        stderr(&out)
    );
}
