//! What ZooKeeper itself says inside a member pod, read as a person would:
//! `srvr` through `kubectl exec` into the `zookeeper` container (bash's
//! `/dev/tcp` to the pod's own client port; neither image ships `nc`).

use tokio::process::Command;
use zk_operator::build::ZOOKEEPER_CONTAINER;
use zk_process::fourlw::Srvr;

use crate::cluster;

/// A bash line that asks the local server one four-letter word.
pub fn four_letter_script(word: &str, client_port: u16) -> String {
    format!("exec 3<>/dev/tcp/127.0.0.1/{client_port}; printf {word} >&3; cat <&3")
}

/// `kubectl exec` into the member's `zookeeper` container and `srvr`.
pub async fn srvr(namespace: &str, pod: &str, client_port: u16) -> Result<Srvr, String> {
    let kubeconfig = std::env::var(cluster::ENV_KUBECONFIG)
        .map_err(|_| format!("{} is not set", cluster::ENV_KUBECONFIG))?;
    let output = Command::new("kubectl")
        .args(["--kubeconfig", &kubeconfig, "--request-timeout", "20s"])
        .args([
            "-n",
            namespace,
            "exec",
            pod,
            "-c",
            ZOOKEEPER_CONTAINER,
            "--",
        ])
        .args(["bash", "-c", &four_letter_script("srvr", client_port)])
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("{pod}: cannot run kubectl exec: {e}"))?;
    let answer = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{pod}: kubectl exec … srvr failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Srvr::parse(&answer).ok_or_else(|| format!("{pod}: srvr answered {answer:?}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_four_letter_word_goes_to_the_pods_own_client_port() {
        assert_eq!(
            super::four_letter_script("srvr", 2181),
            "exec 3<>/dev/tcp/127.0.0.1/2181; printf srvr >&3; cat <&3"
        );
    }
}
