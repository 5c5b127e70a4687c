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
        .env_remove("ZOOKUBE_JAAS_CONFIG")
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

/// A member's quorum TLS stores are checked before ZooKeeper starts on
/// them: ZooKeeper itself starts on a SEC1 key and never serves, and finds
/// a certificate for the wrong host only on its first connection.
#[test]
fn quorum_tls_stores_are_checked_for_the_member_they_serve() {
    use std::time::SystemTime;
    use zk_ensemble::tls::{Authority, KEY_STORE, TRUST_STORE, member_names};

    let dir = tempfile::tempdir().unwrap();
    let mut spec = EnsembleSpec::new("zk", "prod");
    spec.quorum_tls = true;
    spec.placement = zk_ensemble::Placement::Loopback {
        base: std::net::Ipv4Addr::new(127, 0, 0, 1),
        data_root: dir.path().join("data").display().to_string(),
        tls_root: dir.path().join("tls").display().to_string(),
    };
    let one = Myid::new(1).unwrap();
    let cfg = spec.zoo_cfg(one).unwrap().render();
    let stores = Path::new(&spec.tls_dir(one)).to_owned();
    let now = SystemTime::now();
    let ca = Authority::generate("prod", "zk", now).unwrap();
    let leaf = ca.issue(&member_names(&spec, one), now).unwrap();
    let write = |key_store: &str, trust_store: &str| {
        zk_process::stores::write_stores(&stores, key_store, trust_store).unwrap();
    };

    write(&ca.key_store(&leaf), ca.cert_pem());
    let out = check(dir.path(), &cfg, "1");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok: quorum TLS:"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let other_member = ca
        .issue(&member_names(&spec, Myid::new(2).unwrap()), now)
        .unwrap();
    let other_ca = Authority::generate("elsewhere", "zk", now).unwrap();
    let mismatched = format!("{}{}", other_member.key_pem, leaf.cert_pem);
    let sec1 = ca.key_store(&leaf).replace("PRIVATE KEY", "EC PRIVATE KEY");
    let cases = [
        (
            ca.key_store(&other_member),
            ca.cert_pem().to_owned(),
            "does not serve 127.0.0.2",
        ),
        (
            ca.key_store(&leaf),
            other_ca.cert_pem().to_owned(),
            "does not serve 127.0.0.2",
        ),
        (mismatched, ca.cert_pem().to_owned(), "KeyMismatch"),
        (sec1, ca.cert_pem().to_owned(), "not PKCS#8"),
        (
            leaf.cert_pem.clone(),
            ca.cert_pem().to_owned(),
            "holds no private key",
        ),
    ];
    for (key_store, trust_store, named) in cases {
        write(&key_store, &trust_store);
        let out = check(dir.path(), &cfg, "1");
        assert_eq!(out.status.code(), Some(1), "{named}: {}", stderr(&out));
        assert!(stderr(&out).contains(named), "{named}: {}", stderr(&out));
    }
    fs::remove_file(stores.join(KEY_STORE)).unwrap();
    let out = check(dir.path(), &cfg, "1");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(KEY_STORE), "{}", stderr(&out));
    assert!(stores.join(TRUST_STORE).is_file());
}

/// With quorum SASL required, `check` wants the JAAS file the sidecar will
/// log in with, and names what is missing from it.
#[test]
fn quorum_sasl_wants_a_jaas_file_with_the_learners_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}quorum.auth.enableSasl=true\nquorum.auth.serverRequireSasl=true\n",
        EnsembleSpec::new("zk", "prod")
            .zoo_cfg(Myid::new(1).unwrap())
            .unwrap()
            .render()
    );
    let out = check(dir.path(), &cfg, "1");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--jaas-config"), "{}", stderr(&out));

    let jaas = dir.path().join("jaas.conf");
    let with = |text: &str| {
        fs::write(&jaas, text).unwrap();
        fs::write(dir.path().join("zoo.cfg"), &cfg).unwrap();
        fs::write(dir.path().join("myid"), "1").unwrap();
        Command::new(env!("CARGO_BIN_EXE_zk-sidecar"))
            .arg("check")
            .arg("--config")
            .arg(dir.path().join("zoo.cfg"))
            .arg("--myid-file")
            .arg(dir.path().join("myid"))
            .arg("--jaas-config")
            .arg(&jaas)
            .output()
            .unwrap()
    };
    let out = with("QuorumServer { x required user_learner=\"pw\"; };\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no section QuorumLearner"),
        "{}",
        stderr(&out)
    );
    let out = with(
        "QuorumLearner { org.apache.zookeeper.server.auth.DigestLoginModule required username=\"learner\" password=\"pw\"; };\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("logs the sidecar in as \"learner\""),
        "{stdout}"
    );
    assert!(!stdout.contains("pw"), "never the password: {stdout}");
}
