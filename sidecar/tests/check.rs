//! `zk-sidecar check`: exit codes and messages for the configs people bring
//! when ZooKeeper refuses to start.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use zk_ensemble::{EnsembleSpec, Myid};

fn check(dir: &Path, cfg: &str, myid: &str) -> Output {
    fs::write(dir.join("zoo.cfg"), cfg).unwrap();
    fs::write(dir.join("myid"), myid).unwrap();
    Command::new(env!("CARGO_BIN_EXE_zk-sidecar"))
        .arg("check")
        .arg("--config")
        .arg(dir.join("zoo.cfg"))
        .arg("--myid-file")
        .arg(dir.join("myid"))
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const SETTINGS: &str = "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/data\n";

#[test]
fn a_rendered_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = EnsembleSpec::new("zk", "prod")
        .zoo_cfg(Myid::new(2).unwrap())
        .unwrap()
        .render();
    let out = check(dir.path(), &cfg, "2\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok: myid 2 is a voter in an ensemble of 3 voters and 0 observers (quorum 2, tolerates 1 failed voter)\n"
    );
}

#[test]
fn a_myid_missing_from_the_list_names_both_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{SETTINGS}server.1=a:2888:3888;2181\nserver.2=b:2888:3888;2181\nserver.3=c:2888:3888;2181\n"
    );
    let out = check(dir.path(), &cfg, "5");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("myid 5 is not in the server list (listed: 1, 2, 3)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_even_voter_count_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{SETTINGS}server.1=a:2888:3888;2181\nserver.2=b:2888:3888;2181\nserver.3=c:2888:3888;2181\nserver.4=d:2888:3888;2181\n"
    );
    let out = check(dir.path(), &cfg, "1");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("lists 4 voters (1, 2, 3, 4)"), "{err}");
    assert!(
        err.contains("an even ensemble tolerates no more failures than the odd one below it"),
        "{err}"
    );
}

#[test]
fn a_three_four_style_config_is_understood() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "# ZooKeeper 3.4 style\n{SETTINGS}clientPort = 2181\nserver.1=zoo1:2888:3888\nserver.2=zoo2:2888:3888\nserver.3=zoo3:2888:3888\nserver.4=zoo4:2888:3888:observer\n"
    );
    let out = check(dir.path(), &cfg, "4");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("ok: myid 4 is an observer in an ensemble of 3 voters and 1 observers")
    );
}

#[test]
fn a_dynamic_config_file_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("zoo.cfg.dynamic.100000000"),
        "server.1=a:2888:3888:participant;2181\nserver.2=b:2888:3888:participant;2181\nserver.3=c:2888:3888:participant;2181\n",
    )
    .unwrap();
    let cfg = format!("{SETTINGS}dynamicConfigFile=zoo.cfg.dynamic.100000000\n");
    let out = check(dir.path(), &cfg, "3");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = check(dir.path(), &cfg, "9");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("myid 9 is not in the server list"));
}

#[test]
fn a_missing_file_exits_2_and_a_bad_line_exits_1_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zk-sidecar"))
        .args([
            "check",
            "--config",
            "/nonexistent/zoo.cfg",
            "--myid-file",
            "/nonexistent/myid",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read /nonexistent/zoo.cfg"));

    let out = check(dir.path(), &format!("{SETTINGS}server.1=a:2888\n"), "1");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("line 5: `server.1`: a server line must read"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_readme_example_is_the_current_rendering() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/check");
    let rendered = EnsembleSpec::new("zk", "default")
        .zoo_cfg(Myid::new(1).unwrap())
        .unwrap()
        .render();
    if std::env::var_os("ZOOKUBE_BLESS").is_some() {
        fs::write(example.join("zoo.cfg"), &rendered).unwrap();
    }
    assert_eq!(
        fs::read_to_string(example.join("zoo.cfg")).unwrap_or_default(),
        rendered,
        "examples/check/zoo.cfg is stale: run `ZOOKUBE_BLESS=1 cargo test -p zk-sidecar --test check` to regenerate it"
    );
    assert_eq!(fs::read_to_string(example.join("myid")).unwrap(), "1\n");
}
