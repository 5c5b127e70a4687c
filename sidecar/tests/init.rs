//! `zk-sidecar init`: the identity guard of a pod's init container, on the
//! volumes a pod can meet.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use zk_ensemble::{EnsembleSpec, Myid};

fn rendered_config(dir: &Path) -> std::path::PathBuf {
    let cfg = EnsembleSpec::new("zk", "prod")
        .zoo_cfg(Myid::new(1).unwrap())
        .unwrap()
        .render();
    let path = dir.join("zoo.cfg");
    fs::write(&path, cfg).unwrap();
    path
}

fn init(config: &Path, data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zk-sidecar"))
        .arg("init")
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("POD_INDEX")
        .env("HOSTNAME", "laptop")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_fresh_volume_gets_the_myid_of_the_ordinal() {
    let dir = tempfile::tempdir().unwrap();
    let config = rendered_config(dir.path());
    let data = dir.path().join("data");
    let out = init(&config, &data, &[], &[("POD_INDEX", "2")]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(fs::read_to_string(data.join("myid")).unwrap(), "3\n");
    assert!(stdout.contains("wrote myid 3"), "{stdout}");
    // No temporary file is left behind.
    assert_eq!(fs::read_dir(&data).unwrap().count(), 1);

    // The host name's suffix when there is no POD_INDEX; the flag wins.
    let other = dir.path().join("other");
    let out = init(&config, &other, &[], &[("HOSTNAME", "zk-1")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    assert_eq!(fs::read_to_string(other.join("myid")).unwrap(), "2\n");
    let flagged = dir.path().join("flagged");
    let out = init(
        &config,
        &flagged,
        &["--ordinal", "0"],
        &[("POD_INDEX", "2")],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(fs::read_to_string(flagged.join("myid")).unwrap(), "1\n");
}

#[test]
fn a_matching_volume_is_accepted_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let config = rendered_config(dir.path());
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("myid"), "2").unwrap(); // as a hand-made file may be
    let out = init(&config, &data, &["--ordinal", "1"], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("already holds myid 2"), "{stdout}");
    assert_eq!(fs::read_to_string(data.join("myid")).unwrap(), "2");
}

#[test]
fn another_members_volume_is_refused_and_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let config = rendered_config(dir.path());
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("myid"), "3\n").unwrap();
    let out = init(&config, &data, &["--ordinal", "0"], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("already holds myid 3"), "{stderr}");
    assert!(
        stderr.contains("this pod is myid 1 (voter ordinal 0)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&data.display().to_string()),
        "names the volume: {stderr}"
    );
    assert_eq!(fs::read_to_string(data.join("myid")).unwrap(), "3\n");

    fs::write(data.join("myid"), "garbage").unwrap();
    let out = init(&config, &data, &["--ordinal", "0"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("already holds myid \"garbage\""));
    assert_eq!(fs::read_to_string(data.join("myid")).unwrap(), "garbage");
}

#[test]
fn a_myid_missing_from_the_config_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = rendered_config(dir.path());
    let data = dir.path().join("data");
    let out = init(&config, &data, &["--ordinal", "5"], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("myid 6 is not in the server list (listed: 1, 2, 3)"),
        "{stderr}"
    );
    assert!(!data.join("myid").exists());

    // An observer ordinal maps to myid 128+, which this config lacks too.
    let out = init(
        &config,
        &data,
        &["--ordinal", "0", "--role", "observer"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("myid 128 is not in the server list"));
}

#[test]
fn unreadable_inputs_exit_2_and_bad_ordinals_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = init(
        &dir.path().join("missing.cfg"),
        &data,
        &["--ordinal", "0"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("cannot read"));

    let config = rendered_config(dir.path());
    let out = init(&config, &data, &[], &[("POD_INDEX", "x")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("POD_INDEX=\"x\" is not a pod ordinal")
    );
    let out = init(&config, &data, &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("pass --ordinal or set POD_INDEX"),
        "{}",
        text(&out).1
    );
}

#[test]
fn the_config_is_copied_to_a_writable_place_and_a_rewritten_copy_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let config = rendered_config(dir.path());
    let data = dir.path().join("data");
    let conf = dir.path().join("conf");
    let args = ["--ordinal", "0", "--conf-dir", conf.to_str().unwrap()];
    let out = init(&config, &data, &args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let copy = conf.join("zoo.cfg");
    assert_eq!(fs::read(&copy).unwrap(), fs::read(&config).unwrap());
    assert!(!fs::metadata(&copy).unwrap().permissions().readonly());

    // ZooKeeper rewrote the copy at its first start (as 3.5+ does with
    // reconfigEnabled); the next start of the pod replaces it.
    fs::write(
        &copy,
        format!(
            "dataDir=/data\ndynamicConfigFile={}\n",
            conf.join("zoo.cfg.dynamic.100000000").display()
        ),
    )
    .unwrap();
    fs::write(
        conf.join("zoo.cfg.dynamic.100000000"),
        "server.1=a:2888:3888:participant;2181",
    )
    .unwrap();
    let out = init(&config, &data, &args, &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("ZooKeeper had rewritten it"), "{stdout}");
    assert_eq!(fs::read(&copy).unwrap(), fs::read(&config).unwrap());
    assert!(
        conf.join("zoo.cfg.dynamic.100000000").exists(),
        "ZooKeeper's files are kept"
    );
}

#[test]
fn a_config_with_a_dynamic_file_is_copied_self_contained() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("zoo.cfg.dynamic.100000000"),
        "server.1=a:2888:3888:participant;2181\nserver.2=b:2888:3888:participant;2181\nserver.3=c:2888:3888:participant;2181",
    )
    .unwrap();
    let config = dir.path().join("zoo.cfg");
    fs::write(
        &config,
        "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/data\ndynamicConfigFile=zoo.cfg.dynamic.100000000\n",
    )
    .unwrap();
    let conf = dir.path().join("conf");
    let out = init(
        &config,
        &dir.path().join("data"),
        &["--ordinal", "2", "--conf-dir", conf.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let copy = fs::read_to_string(conf.join("zoo.cfg")).unwrap();
    assert!(!copy.contains("dynamicConfigFile"), "{copy}");
    assert!(
        copy.contains("server.3=c:2888:3888:participant;2181"),
        "{copy}"
    );
}
