//! `zk-operator local up` of a cluster with `spec.tls` (quorum and client
//! TLS) on real ZooKeeper servers: a real ZooKeeper Java client writes over
//! TLS with the client certificate zookube wrote, another member serves the
//! write over TLS, a client without a certificate is refused, the plain
//! port still answers four-letter words, and every sidecar reports the
//! leader it watches over TLS.

mod local_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};

use local_support::{Local, text};
use zk_process::{Installation, Mode};

/// ZooKeeper's own command-line client (`ZooKeeperMain`) against `server`,
/// over TLS with the stores in `client` (none: no certificate, trusting
/// the CA only).
fn java_client(
    zk: &Installation,
    server: SocketAddr,
    client: &Path,
    certificate: bool,
    args: &[&str],
) -> Output {
    let classpath: Vec<String> = zk
        .classpath
        .iter()
        .map(|j| j.display().to_string())
        .collect();
    let mut command = Command::new(&zk.java);
    command
        .arg("-Dzookeeper.client.secure=true")
        .arg("-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty")
        .arg(format!(
            "-Dzookeeper.ssl.trustStore.location={}",
            client.join("truststore.pem").display()
        ))
        .arg("-Dzookeeper.ssl.trustStore.type=PEM");
    if certificate {
        command
            .arg(format!(
                "-Dzookeeper.ssl.keyStore.location={}",
                client.join("keystore.pem").display()
            ))
            .arg("-Dzookeeper.ssl.keyStore.type=PEM");
    }
    command
        .args(["-cp", &classpath.join(":")])
        .arg("org.apache.zookeeper.ZooKeeperMain")
        .args(["-timeout", "5000", "-server", &server.to_string()])
        .args(args)
        .output()
        .expect("run ZooKeeper's client")
}

#[tokio::test]
async fn a_tls_cluster_serves_tls_clients_with_a_certificate_and_refuses_those_without() {
    let Some(zk) = zk_testkit::zookeeper() else {
        return;
    };
    let local = Local::new(
        "secure",
        "  replicas: 3\n  tls:\n    quorum: {}\n    client:\n      clientAuth: Need\n",
    );
    let up = local.up();
    let stdout = text(&up.stdout);
    assert!(
        stdout.contains(&format!("TLS clients connect to {}:2281", local.host(1))),
        "{stdout}"
    );
    let client = local.ensemble_dir().join("tls/client");
    for file in [
        "tls.crt",
        "tls.key",
        "ca.crt",
        "keystore.pem",
        "truststore.pem",
    ] {
        assert!(
            client.join(file).is_file(),
            "{file} in {}",
            client.display()
        );
    }
    let tls = |myid: u8| SocketAddr::new(local.host(myid).into(), 2281);

    let create = java_client(
        &zk,
        tls(1),
        &client,
        true,
        &["create", "/over-tls", "hello"],
    );
    let out = text(&create.stdout) + &text(&create.stderr);
    assert!(
        create.status.success() && out.contains("Created /over-tls"),
        "{out}"
    );
    let get = java_client(&zk, tls(3), &client, true, &["get", "/over-tls"]);
    assert!(
        get.status.success() && text(&get.stdout).lines().any(|l| l == "hello"),
        "{}{}",
        text(&get.stdout),
        text(&get.stderr)
    );

    // Without a certificate (clientAuth Need) the handshake is refused.
    let refused = java_client(&zk, tls(2), &client, false, &["get", "/over-tls"]);
    let out = text(&refused.stdout) + &text(&refused.stderr);
    assert!(!out.lines().any(|l| l == "hello"), "{out}");
    assert!(out.contains("ConnectionLoss"), "{out}");

    // The plain port stays: four-letter words (the sidecar's probes).
    let mut leaders = 0;
    for myid in 1..=3u8 {
        let plain = SocketAddr::new(local.host(myid).into(), 2181);
        let srvr = zk_process::fourlw::srvr(plain, std::time::Duration::from_secs(2))
            .await
            .expect("srvr on the plain port");
        leaders += usize::from(srvr.mode == Mode::Leader);
    }
    assert_eq!(leaders, 1);
    let status = local.status().expect("status");
    let leader = status["leader"].as_u64().expect("a leader");
    for member in status["members"].as_array().expect("members") {
        assert_eq!(member["leader"].as_u64(), Some(leader), "{member}");
    }

    // Turning quorum TLS off cannot be rolled (a member without TLS and
    // one with it cannot reach each other): refused by name, nothing
    // restarted.
    let pids_before = local_support::pids(&status);
    let plain = local.dir.path().join("plain.yaml");
    std::fs::write(
        &plain,
        "apiVersion: zookube.io/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: secure\nspec:\n  replicas: 3\n",
    )
    .expect("write the plaintext cluster");
    let refused = local.run(&["apply", "-f", &plain.display().to_string()]);
    local_support::assert_failure(
        &refused,
        1,
        &["spec.tls.quorum cannot change on a running local ensemble"],
    );
    assert_eq!(
        local_support::pids(&local.status().expect("status")),
        pids_before
    );

    let harm = local.harm_lines();
    assert!(harm.is_empty(), "the servers logged harm: {harm:#?}");
}
