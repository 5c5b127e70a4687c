"""Deletes the leader's pod of NAMESPACE/NAME and prints how many seconds
passed until a surviving member's sidecar named a new quorum-backed leader
(its /v1/status, read by pod IP every 100 ms). Part of bench/e2e.sh."""
import json, subprocess, sys, time, urllib.request

ns, name = sys.argv[1], sys.argv[2]


def kubectl(*args):
    return subprocess.run(["kubectl", "-n", ns, *args], check=True, capture_output=True, text=True).stdout


def status(ip):
    try:
        with urllib.request.urlopen(f"http://{ip}:8081/v1/status", timeout=0.5) as r:
            return json.load(r)
    except Exception:
        return None


cluster = json.loads(kubectl("get", "zk", name, "-o", "json"))
leader_pod = cluster["status"]["leader"]["pod"]
epoch = cluster["status"]["peerEpoch"]
pods = json.loads(kubectl("get", "pods", "-l", f"app.kubernetes.io/instance={name}", "-o", "json"))["items"]
survivors = [p["status"]["podIP"] for p in pods if p["metadata"]["name"] != leader_pod]
start = time.monotonic()
subprocess.Popen(["kubectl", "-n", ns, "delete", "pod", leader_pod, "--wait=false"], stdout=subprocess.DEVNULL)
deadline = start + 120
while time.monotonic() < deadline:
    for ip in survivors:
        s = status(ip)
        if s and s.get("leader") is not None and (s.get("peer_epoch") or s.get("peerEpoch") or 0) > epoch:
            print(f"{time.monotonic() - start:.2f}")
            sys.exit(0)
    time.sleep(0.1)
sys.exit("no new leader within 120 s")
