//! A real three-voter ZooKeeper 3.8 ensemble whose members require quorum
//! SASL of every caller (`quorum.auth.serverRequireSasl=true`, DIGEST-MD5
//! from a JAAS file), with `zk-sidecar run --jaas-config` beside every
//! member: the sidecars log in as the learner and report the election as
//! `srvr` does; a caller with a wrong password is refused and harms
//! nothing; a sidecar given no JAAS file refuses to start, saying why.

use std::path::{Path, PathBuf};
use std::time::Duration;

use zk_election::sasl::Credentials;
use zk_election::transport::{self, Security};
use zk_election::wire::{ElectionAddress, Preamble};
use zk_ensemble::Myid;
use zk_ensemble::status::LeaderPhase;
use zk_process::Mode;
use zk_testkit::{LoopbackEnsemble, eventually};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_zk-sidecar"))
}

const WAIT: Duration = Duration::from_secs(60);

const JAAS: &str = r#"QuorumServer {
       org.apache.zookeeper.server.auth.DigestLoginModule required
       user_learner="s3cret";
};
QuorumLearner {
       org.apache.zookeeper.server.auth.DigestLoginModule required
       username="learner"
       password="s3cret";
};
"#;

/// An ensemble whose members require SASL of every caller and use it
/// among themselves; the JAAS file's path.
fn sasl_ensemble(zk: &zk_process::Installation) -> (LoopbackEnsemble, PathBuf) {
    let mut ensemble = LoopbackEnsemble::new(zk, 3, 0);
    let jaas = ensemble.path().join("jaas.conf");
    std::fs::write(&jaas, JAAS).expect("write the JAAS file");
    for (key, value) in [
        ("quorum.auth.enableSasl", "true"),
        ("quorum.auth.learnerRequireSasl", "true"),
        ("quorum.auth.serverRequireSasl", "true"),
    ] {
        ensemble.spec.overrides.insert(key.into(), value.into());
    }
    ensemble.jvm_flags.push(format!(
        "-Djava.security.auth.login.config={}",
        jaas.display()
    ));
    for myid in ensemble.myids() {
        ensemble.prepare(myid);
    }
    (ensemble, jaas)
}

#[tokio::test]
async fn sidecars_log_in_to_a_sasl_quorum_and_report_it_as_srvr_does() {
    let Some(zk) = zk_testkit::zookeeper() else {
        return;
    };
    let (mut ensemble, jaas) = sasl_ensemble(&zk);
    let cfg = std::fs::read_to_string(ensemble.config_path(Myid::new(1).expect("myid")))
        .expect("zoo.cfg");
    assert!(cfg.contains("quorum.auth.serverRequireSasl=true"), "{cfg}");

    // Without the JAAS file the sidecar cannot log in, and says so.
    let out = std::process::Command::new(binary())
        .arg("run")
        .arg("--config")
        .arg(ensemble.config_path(Myid::new(1).expect("myid")))
        .arg("--myid-file")
        .arg(ensemble.data_dir(Myid::new(1).expect("myid")).join("myid"))
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("ZOOKUBE_JAAS_CONFIG")
        .output()
        .expect("run zk-sidecar");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("--jaas-config"), "{stderr}");

    ensemble.start_all();
    let jaas = jaas.display().to_string();
    for myid in ensemble.myids() {
        ensemble.start_sidecar(binary(), myid, &["--jaas-config", &jaas]);
    }
    let leader = ensemble.wait_for_leader(WAIT).await;
    eventually("every sidecar to match srvr", WAIT, || async {
        let srvr = ensemble.srvr(leader).await.map_err(|e| e.to_string())?;
        for myid in ensemble.myids() {
            let status = ensemble.sidecar_status(myid).await?;
            let agrees = status.leader == Some(u64::from(leader))
                && status.peer_epoch == Some(srvr.zxid >> 32)
                && status.leader_phase == Some(LeaderPhase::Established)
                && status.quorum.reachable == 3;
            if !agrees {
                return Err(format!("sidecar {myid}: {status:?}"));
            }
        }
        Ok(())
    })
    .await;
    for myid in ensemble.myids() {
        let log = ensemble.sidecar_log(myid);
        assert!(log.contains("quorum_sasl=true"), "sidecar {myid}: {log}");
    }

    // A caller with the wrong password is refused before it can poll.
    let epoch = ensemble.srvr(leader).await.expect("srvr").zxid >> 32;
    let wrong = Security {
        tls: None,
        sasl: Some(Credentials {
            username: "learner".into(),
            password: "guess".into(),
        }),
    };
    let preamble = Preamble::V1 {
        sid: zk_election::watcher_sid(Myid::new(9).expect("myid")),
        address: ElectionAddress::new("127.0.0.1", 3888),
    };
    for myid in ensemble.myids() {
        let address = ensemble.election_addr(myid);
        let to = ElectionAddress::new(address.ip().to_string(), address.port());
        let refused = transport::dial(&to, &preamble, transport::CONNECT_TIMEOUT, &wrong).await;
        let error = refused.expect_err("a wrong password is refused");
        assert_eq!(error.reason(), "sasl", "member {myid}: {error}");
    }
    let mut modes = Vec::new();
    for myid in ensemble.myids() {
        modes.push(ensemble.srvr(myid).await.expect("srvr").mode);
    }
    assert_eq!(modes.iter().filter(|m| **m == Mode::Leader).count(), 1);
    assert_eq!(ensemble.srvr(leader).await.expect("srvr").zxid >> 32, epoch);
    let harm = ensemble.log_lines_containing(&zk_testkit::HARM);
    assert!(harm.is_empty(), "the servers logged harm: {harm:#?}");
}
