//! `zk-operator run` as a process, against the in-memory API server served
//! over HTTP: two replicas, one Lease, one of them reconciling; SIGTERM
//! hands over at once and exits 0.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::FakeApi;
use zk_operator::test_support::Cluster;
use zk_testkit::eventually;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/zookube-system/leases/zk-operator";
const CLUSTER: &str = "/apis/zookube.io/v1alpha1/namespaces/default/zookeeperclusters/zk";

fn kubeconfig(dir: &Path, server: std::net::SocketAddr) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{server}\nusers:\n- name: operator\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: operator\ncurrent-context: fake\n"
        ),
    )
    .unwrap();
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Replica {
    child: Child,
    metrics: u16,
}

impl Replica {
    fn start(kubeconfig: &Path, name: &str) -> Replica {
        let metrics = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_zk-operator"))
            .args(["run", "--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", "zookube-system")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Replica { child, metrics }
    }

    /// The value of `zookube_operator_leader` (None while not serving).
    async fn leading(&self) -> Option<bool> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics))
            .await
            .ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await.ok()?;
        let line = text
            .lines()
            .find(|l| l.starts_with("zookube_operator_leader "))?;
        Some(line.ends_with(" 1"))
    }

    fn terminate(&self) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        kill(pid, Signal::SIGTERM).unwrap();
    }

    async fn exit_code(mut self) -> Option<i32> {
        eventually("the operator to exit", Duration::from_secs(15), || {
            let status = self.child.try_wait().unwrap();
            async move { status.ok_or_else(|| "still running".to_owned()) }
        })
        .await
        .code()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn holder(fake: &FakeApi) -> Option<String> {
    fake.get(LEASE)?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn without_the_crd_the_operator_says_how_to_install_it() {
    let fake = FakeApi::default();
    fake.fail(
        http::Method::GET,
        "/apis/zookube.io/v1alpha1/zookeeperclusters",
        404,
    );
    let server = fake.serve_http().await;
    let dir = tempfile::tempdir().unwrap();
    // Asynchronously: the fake API server runs on this test's runtime.
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_zk-operator"))
        .args(["run", "--metrics-listen", "127.0.0.1:0"])
        .env("KUBECONFIG", kubeconfig(dir.path(), server))
        .env("POD_NAMESPACE", "zookube-system")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("zk-operator exits")
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kubectl apply --server-side -f crds/zookeepercluster.yaml"),
        "{stderr}"
    );
}

#[tokio::test]
async fn two_replicas_one_leader_and_a_clean_handover() {
    let fake = FakeApi::default();
    let server = fake.serve_http().await;
    fake.insert(
        CLUSTER,
        serde_json::to_value(Cluster::test().build()).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig(dir.path(), server);

    let a = Replica::start(&kubeconfig, "operator-a");
    eventually("operator-a to lead", Duration::from_secs(20), || {
        let holder = holder(&fake);
        async move {
            (holder.as_deref() == Some("operator-a"))
                .then_some(())
                .ok_or_else(|| format!("holder {holder:?}"))
        }
    })
    .await;
    let b = Replica::start(&kubeconfig, "operator-b");

    eventually("the cluster's status", Duration::from_secs(20), || {
        let status = fake.get(CLUSTER).map(|c| c["status"].clone());
        async move {
            status
                .filter(|s| s["observedGeneration"] == 1)
                .map(|_| ())
                .ok_or_else(|| "no status yet".to_owned())
        }
    })
    .await;
    eventually(
        "both replicas to report",
        Duration::from_secs(20),
        || async {
            match (a.leading().await, b.leading().await) {
                (Some(true), Some(false)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(holder(&fake).as_deref(), Some("operator-a"));

    a.terminate();
    assert_eq!(a.exit_code().await, Some(0), "a graceful exit");
    eventually(
        "operator-b to take over the released Lease",
        Duration::from_secs(10),
        || {
            let holder = holder(&fake);
            async move {
                (holder.as_deref() == Some("operator-b"))
                    .then_some(())
                    .ok_or_else(|| format!("holder {holder:?}"))
            }
        },
    )
    .await;
    eventually(
        "operator-b to reconcile",
        Duration::from_secs(10),
        || async {
            b.leading()
                .await
                .filter(|leading| *leading)
                .map(|_| ())
                .ok_or_else(|| "not leading".to_owned())
        },
    )
    .await;
    b.terminate();
    assert_eq!(b.exit_code().await, Some(0));
    assert_eq!(holder(&fake), None, "released on the way out");
}
