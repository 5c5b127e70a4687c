//! `zk-operator local` refusals that need no ZooKeeper: an invalid cluster
//! gets the CRD's own message, commands on a folder without an ensemble say
//! so, and a missing Java is named with how to install it.

mod local_support;

use std::fs;

use local_support::{Local, assert_failure};
use zk_ensemble::messages;

#[test]
fn an_even_ensemble_is_refused_with_the_crd_message_and_nothing_is_written() {
    let local = Local::new("even", "  replicas: 4\n");
    let file = local.file.display().to_string();
    let up = local.run(&["up", "-f", &file]);
    assert_failure(
        &up,
        1,
        &[&format!(
            "error: spec.replicas = 4: {}",
            messages::REPLICAS_ODD
        )],
    );
    assert!(!local.ensemble_dir().exists());
}

#[test]
fn commands_on_a_folder_without_an_ensemble_say_how_to_start_one() {
    let local = Local::new("none", "  replicas: 3\n");
    for args in [
        &["down"][..],
        &["status"],
        &["kill", "1"],
        &["start", "1"],
        &["logs", "1"],
    ] {
        let out = local.run(args);
        assert_failure(&out, 1, &["no local ensemble", "zk-operator local up -f"]);
    }
}

#[test]
fn a_bad_myid_or_signal_is_a_usage_error() {
    let local = Local::new("usage", "  replicas: 3\n");
    let out = local.run(&["kill", "0"]);
    assert_failure(&out, 2, &["myid"]);
    let out = local.run(&["kill", "1", "--signal", "HUP"]);
    assert_failure(&out, 2, &["KILL", "STOP", "CONT"]);
}

#[test]
fn an_unreadable_file_exits_2_and_a_typo_names_the_field() {
    let local = Local::new("typo", "  replica: 3\n");
    let missing = local.dir.path().join("missing.yaml").display().to_string();
    assert_failure(
        &local.run(&["up", "-f", &missing]),
        2,
        &["cannot read", "missing.yaml"],
    );
    let file = local.file.display().to_string();
    assert_failure(
        &local.run(&["up", "-f", &file]),
        1,
        &["spec.replica: unknown field; did you mean `spec.replicas`?"],
    );
}

#[test]
fn missing_java_is_named_with_how_to_install_it() {
    let local = Local::new("nojava", "  replicas: 1\n");
    // A ZooKeeper release folder, but no Java anywhere.
    let home = local.dir.path().join("apache-zookeeper");
    fs::create_dir_all(home.join("lib")).unwrap();
    fs::write(home.join("lib/zookeeper-3.9.4.jar"), "").unwrap();
    let empty = local.dir.path().join("empty-path");
    fs::create_dir_all(&empty).unwrap();
    let file = local.file.display().to_string();
    let out = local.run_with(
        &["up", "-f", &file],
        &[
            ("ZOOKEEPER_HOME", &home.display().to_string()),
            ("JAVA_HOME", ""),
            ("PATH", &empty.display().to_string()),
        ],
    );
    assert_failure(
        &out,
        1,
        &[
            "Java is not installed",
            "apt-get install -y default-jre-headless",
            "scripts/install-deps",
        ],
    );
}
