//! Killing a process in a container as a crash would — SIGKILL from the
//! node, so the program neither cleans up nor finishes what it was doing,
//! and the kubelet restarts the container in place (same pod, same IP).
//!
//! The kill comes from the node, not from inside the pod: there the program
//! is PID 1 of its PID namespace, and the kernel drops a SIGKILL sent to a
//! namespace's init from within it. The process is found by its
//! container's ID, which every container runtime's cgroup path carries
//! (`/k8s.io/<id>` here, `cri-containerd-<id>.scope` under systemd). On
//! this machine's cluster the node is this machine (the suite runs as root,
//! as the cluster script does); on kind the same script runs in the node's
//! container, through the command [`ENV_NODE_EXEC`] names.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use tokio::process::Command;

use crate::{Error, Result};

/// A command that runs its arguments on the node (`docker exec
/// zookube-e2e-control-plane` for kind); unset, they run here.
pub const ENV_NODE_EXEC: &str = "ZOOKUBE_E2E_NODE_EXEC";

/// Kills (SIGKILL) every process named `$2` of the container whose ID is
/// `$1` and prints how many.
const KILL_SCRIPT: &str = r#"id=$1; comm=$2; n=0
for d in /proc/[0-9]*; do
  [ "$(cat "$d/comm" 2>/dev/null)" = "$comm" ] || continue
  if grep -q -e "$id" "$d/cgroup" 2>/dev/null; then
    kill -9 "${d#/proc/}" && n=$((n + 1))
  fi
done
echo "$n""#;

/// The status of `pod`'s container `name`.
pub fn container<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == name))
}

/// How many times `pod`'s container `name` has been restarted.
pub fn restarts(pod: &Pod, name: &str) -> i32 {
    container(pod, name).map_or(0, |c| c.restart_count)
}

/// The runtime's ID of a container (`containerd://<id>` → `<id>`).
fn container_id(status: &ContainerStatus) -> Option<&str> {
    let id = status.container_id.as_deref()?;
    Some(id.split_once("://").map_or(id, |(_, id)| id)).filter(|id| !id.is_empty())
}

/// Kills the one process named `command` (its `comm`: `zk-operator`,
/// `java`) in `pod`'s container `name` with SIGKILL.
pub async fn kill(pod: &Pod, name: &str, command: &str) -> Result<()> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let id = container(pod, name)
        .and_then(container_id)
        .ok_or_else(|| Error::Check(format!("the {name} container of {pod_name} has no ID yet")))?
        .to_owned();
    let mut argv: Vec<String> = std::env::var(ENV_NODE_EXEC)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    argv.extend(["sh", "-c", KILL_SCRIPT, "sh", &id, command].map(str::to_owned));
    let output = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .await
        .map_err(|e| Error::Check(format!("cannot run {:?}: {e}", argv[0])))?;
    let killed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() && killed == "1" {
        return Ok(());
    }
    Err(Error::Check(format!(
        "killing {command} in the {name} container of {pod_name} (container {id}) on its node killed {killed:?} processes, not 1 \
         (the suite must run as root on the node's machine, or set {ENV_NODE_EXEC}): {}",
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_id_drops_the_runtime_prefix() {
        let status = |id: Option<&str>| ContainerStatus {
            container_id: id.map(str::to_owned),
            ..Default::default()
        };
        assert_eq!(
            container_id(&status(Some("containerd://19c7cb"))),
            Some("19c7cb")
        );
        assert_eq!(container_id(&status(Some("19c7cb"))), Some("19c7cb"));
        assert_eq!(container_id(&status(Some("containerd://"))), None);
        assert_eq!(container_id(&status(None)), None);
    }
}
