//! A real ZooKeeper client inside the cluster: `zkCli.sh` of the cluster's
//! own ZooKeeper image, run in a short-lived pod in the cluster's namespace
//! and connected through the client Service (`<name>-client`), as an
//! application would be. `zkCli.sh` exits non-zero when a command fails and
//! prints `Created <path>` for a create, the data for a `get` and `[a, b]`
//! for an `ls` (checked against ZooKeeper 3.8's and 3.9's client).
//!
//! The writer is the same image running a loop of creates; its log says
//! which writes ZooKeeper acknowledged and when (see [`WRITER_SCRIPT`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, LogParams, PostParams};

use crate::poll;
use crate::{Error, Result};

/// The label of every client pod (so a kept cluster shows what the suite ran).
pub const CLIENT_LABEL: (&str, &str) = ("app.kubernetes.io/name", "zookube-e2e-client");

/// The container of a client pod.
const CONTAINER: &str = "zkcli";

/// How long one `zkCli.sh` command may take, connection included; a client
/// that cannot connect fails within this rather than retrying forever.
const SESSION_TIMEOUT_MS: &str = "5000";

/// How long a one-command client pod may live (scheduling, and pulling the
/// image when a node does not have it yet, included).
const COMMAND_DEADLINE: Duration = Duration::from_secs(180);

/// The writer: one `create` after another, each a fresh `zkCli.sh` through
/// the client Service, logging `ACK <name> <ms>` when ZooKeeper answered
/// `Created`, and `FAIL <name> <ms>` otherwise (a failed create may still
/// have been applied; only acknowledged ones must survive). `<ms>` is when
/// the attempt ended, in milliseconds since the Unix epoch.
pub const WRITER_SCRIPT: &str = r#"set -u
i=0
while true; do
  i=$((i + 1))
  name="w$i"
  if out=$(timeout 20 zkCli.sh -timeout "$TIMEOUT_MS" -server "$SERVER" create "$ROOT/$name" "$i" 2>&1) &&
     printf '%s\n' "$out" | grep -qxF "Created $ROOT/$name"; then
    echo "ACK $name $(date +%s%3N)"
  else
    echo "FAIL $name $(date +%s%3N)"
  fi
done
"#;

/// What a one-command client pod printed, and how it ended.
#[derive(Debug, Clone)]
pub struct CliRun {
    pub exit_code: Option<i32>,
    pub output: String,
}

impl CliRun {
    /// Whether some line of the output is exactly `line`.
    pub fn has_line(&self, line: &str) -> bool {
        self.output.lines().any(|l| l.trim_end() == line)
    }

    pub fn tail(&self) -> String {
        let lines: Vec<&str> = self.output.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }
}

/// A ZooKeeper client for one cluster.
#[derive(Clone)]
pub struct ZkClient {
    pods: Api<Pod>,
    image: String,
    /// `<name>-client:<client port>`: the client Service.
    server: String,
    started: Instant,
}

impl ZkClient {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        server: String,
        image: String,
        started: Instant,
    ) -> ZkClient {
        ZkClient {
            pods: Api::namespaced(client, namespace),
            image,
            server,
            started,
        }
    }

    fn pod(&self, prefix: &str, command: Vec<String>, env: &[(&str, &str)], deadline: i64) -> Pod {
        let mut env: Vec<EnvVar> = env
            .iter()
            .map(|(name, value)| EnvVar {
                name: (*name).to_owned(),
                value: Some((*value).to_owned()),
                ..Default::default()
            })
            .collect();
        env.push(EnvVar {
            name: "SERVER".to_owned(),
            value: Some(self.server.clone()),
            ..Default::default()
        });
        Pod {
            metadata: ObjectMeta {
                generate_name: Some(format!("{prefix}-")),
                labels: Some(BTreeMap::from([(
                    CLIENT_LABEL.0.to_owned(),
                    CLIENT_LABEL.1.to_owned(),
                )])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some("Never".to_owned()),
                active_deadline_seconds: Some(deadline),
                termination_grace_period_seconds: Some(1),
                automount_service_account_token: Some(false),
                containers: vec![Container {
                    name: CONTAINER.to_owned(),
                    image: Some(self.image.clone()),
                    image_pull_policy: Some("IfNotPresent".to_owned()),
                    // Not the image's entrypoint, which would write a server
                    // configuration first.
                    command: Some(command),
                    env: Some(env),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The same client, connected through `server` instead (a connect
    /// string of its own, such as the discovery ConfigMap's).
    pub fn through(&self, server: String) -> ZkClient {
        ZkClient {
            server,
            ..self.clone()
        }
    }

    /// Runs `zkCli.sh <args>` against the client Service in a pod of its
    /// own and returns what it printed once it has exited.
    pub async fn run(&self, args: &[&str]) -> Result<CliRun> {
        let mut command: Vec<String> = ["zkCli.sh", "-timeout", SESSION_TIMEOUT_MS, "-server"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        command.push(self.server.clone());
        command.extend(args.iter().map(|s| (*s).to_owned()));
        self.run_pod("zkcli", command, &args.join(" ")).await
    }

    /// Runs a bash script in a pod of the cluster's ZooKeeper image (bash,
    /// coreutils and the ZooKeeper client, nothing else) and returns what it
    /// printed once it has exited. `$SERVER` is this client's server.
    pub async fn script(&self, prefix: &str, script: &str) -> Result<CliRun> {
        let command = vec!["bash".to_owned(), "-c".to_owned(), script.to_owned()];
        self.run_pod(prefix, command, prefix).await
    }

    async fn run_pod(&self, prefix: &str, command: Vec<String>, what: &str) -> Result<CliRun> {
        let deadline = i64::try_from(COMMAND_DEADLINE.as_secs()).unwrap_or(i64::MAX);
        let pod = self
            .pods
            .create(
                &PostParams::default(),
                &self.pod(prefix, command, &[], deadline),
            )
            .await?;
        let name = pod.metadata.name.unwrap_or_default();
        let finished = self.wait_finished(&name, what).await;
        let output = self.log(&name).await;
        let _ = self.pods.delete(&name, &DeleteParams::default()).await;
        let exit_code = finished?;
        Ok(CliRun {
            exit_code,
            output: output?,
        })
    }

    async fn wait_finished(&self, name: &str, what: &str) -> Result<Option<i32>> {
        let what = format!("{what} ({name})");
        let pods = &self.pods;
        poll::until(self.started, &what, COMMAND_DEADLINE, || async move {
            let pod = pods.get(name).await.map_err(|e| e.to_string())?;
            let status = pod.status.unwrap_or_default();
            match status.phase.as_deref() {
                Some("Succeeded" | "Failed") => Ok(status
                    .container_statuses
                    .unwrap_or_default()
                    .iter()
                    .find_map(|c| c.state.as_ref()?.terminated.as_ref())
                    .map(|t| t.exit_code)),
                phase => Err(format!("{name} is {}", phase.unwrap_or("unscheduled"))),
            }
        })
        .await
    }

    async fn log(&self, name: &str) -> Result<String> {
        let params = LogParams {
            container: Some(CONTAINER.to_owned()),
            ..Default::default()
        };
        Ok(self.pods.logs(name, &params).await?)
    }

    /// `create path data`, which must be acknowledged.
    pub async fn create(&self, path: &str, data: &str) -> Result<()> {
        let run = self.run(&["create", path, data]).await?;
        if run.exit_code == Some(0) && run.has_line(&format!("Created {path}")) {
            Ok(())
        } else {
            Err(Error::Check(format!(
                "create {path} through {} was not acknowledged (exit {:?}):\n{}",
                self.server,
                run.exit_code,
                run.tail()
            )))
        }
    }

    /// `get path`, whose data must be `expected`.
    pub async fn expect_data(&self, path: &str, expected: &str) -> Result<()> {
        let run = self.run(&["get", path]).await?;
        if run.exit_code == Some(0) && run.has_line(expected) {
            Ok(())
        } else {
            Err(Error::Check(format!(
                "get {path} through {} did not return {expected:?} (exit {:?}):\n{}",
                self.server,
                run.exit_code,
                run.tail()
            )))
        }
    }

    /// `ls path`: its children.
    pub async fn children(&self, path: &str) -> Result<Vec<String>> {
        let run = self.run(&["ls", path]).await?;
        match crate::checks::parse_ls(&run.output) {
            Some(children) if run.exit_code == Some(0) => Ok(children),
            _ => Err(Error::Check(format!(
                "ls {path} through {} failed (exit {:?}):\n{}",
                self.server,
                run.exit_code,
                run.tail()
            ))),
        }
    }

    /// Starts the writer under `root` (which must exist).
    pub async fn start_writer(&self, root: &str, lifetime: Duration) -> Result<Writer> {
        let command = vec!["bash".to_owned(), "-c".to_owned(), WRITER_SCRIPT.to_owned()];
        let env = [("ROOT", root), ("TIMEOUT_MS", SESSION_TIMEOUT_MS)];
        let deadline = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        let pod = self
            .pods
            .create(
                &PostParams::default(),
                &self.pod("zk-writer", command, &env, deadline),
            )
            .await?;
        Ok(Writer {
            client: self.clone(),
            name: pod.metadata.name.unwrap_or_default(),
        })
    }
}

/// A running writer pod.
pub struct Writer {
    client: ZkClient,
    pub name: String,
}

impl Writer {
    /// Everything it has logged so far.
    pub async fn log(&self) -> Result<String> {
        self.client.log(&self.name).await
    }

    /// Waits until it has logged `count` acknowledged writes that ended at
    /// or after `since_ms`.
    pub async fn wait_for_acks(&self, count: usize, since_ms: u64) -> Result<()> {
        let what = format!("{count} acknowledged writes from {}", self.name);
        poll::until(
            self.client.started,
            &what,
            Duration::from_secs(120),
            || async move {
                let log = self.log().await.map_err(|e| e.to_string())?;
                let parsed = crate::checks::parse_write_log(&log);
                let acked = parsed.acked.iter().filter(|w| w.at_ms >= since_ms).count();
                if acked >= count {
                    Ok(())
                } else {
                    Err(format!(
                        "{acked} acknowledged, {} failed so far",
                        parsed.failed.len()
                    ))
                }
            },
        )
        .await
    }

    /// Stops it.
    pub async fn stop(self) -> Result<()> {
        self.client
            .pods
            .delete(&self.name, &DeleteParams::default())
            .await?;
        Ok(())
    }
}

/// Milliseconds since the Unix epoch, on the same clock as the writer's
/// `date +%s%3N` (the nodes are on this machine).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
