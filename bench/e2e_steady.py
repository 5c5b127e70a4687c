"""Steady state of COUNT unchanged clusters in namespaces PREFIX-1..COUNT:
the leading operator replica's API requests over a minute (its own
zookube_operator_api_requests_total, by verb), its resident memory, and how
many of the clusters' objects (the cluster, its children and pods) changed
their resourceVersion in that minute. Prints one JSON line. Part of
bench/e2e.sh."""
import glob, json, re, subprocess, sys, time, urllib.request

count, prefix = int(sys.argv[1]), sys.argv[2]
OPERATOR_NS = "zookube-system"
KINDS = "zookeeperclusters,statefulsets,services,configmaps,poddisruptionbudgets,secrets,pods"


def kubectl(*args):
    return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True).stdout


def metrics(ip):
    with urllib.request.urlopen(f"http://{ip}:8080/metrics", timeout=2) as r:
        return r.read().decode()


def leader():
    pods = json.loads(kubectl("-n", OPERATOR_NS, "get", "pods", "-l", "app.kubernetes.io/name=zk-operator", "-o", "json"))["items"]
    for p in pods:
        ip = p["status"].get("podIP")
        if ip and re.search(r"^zookube_operator_leader 1$", metrics(ip), re.M):
            return p["metadata"]["name"], ip
    sys.exit("no operator replica leads")


def requests(ip):
    by_verb = {}
    for m in re.finditer(r'^zookube_operator_api_requests_total\{(.*)\} (\d+)$', metrics(ip), re.M):
        verb = re.search(r'verb="([^"]+)"', m.group(1)).group(1)
        by_verb[verb] = by_verb.get(verb, 0) + int(m.group(2))
    return by_verb


def versions():
    seen = {}
    for i in range(1, count + 1):
        items = json.loads(kubectl("-n", f"{prefix}-{i}", "get", KINDS, "-o", "json"))["items"]
        for o in items:
            name = o["metadata"]["name"]
            if o["kind"] == "ConfigMap" and name in ("kube-root-ca.crt", "openshift-service-ca.crt"):
                continue
            seen[f"{prefix}-{i}/{o['kind']}/{name}"] = o["metadata"]["resourceVersion"]
    return seen


def rss_kib(pod):
    for environ in glob.glob("/proc/[0-9]*/environ"):
        try:
            if f"POD_NAME={pod}".encode() in open(environ, "rb").read().split(b"\0"):
                status = open(environ.replace("environ", "status")).read()
                return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
        except OSError:
            continue
    return None


name, ip = leader()
before, v0, t0 = requests(ip), versions(), time.monotonic()
time.sleep(60)
after, v1, t1 = requests(ip), versions(), time.monotonic()
minutes = (t1 - t0) / 60
per_minute = {verb: round((after.get(verb, 0) - before.get(verb, 0)) / minutes, 1) for verb in sorted(after)}
changed = sorted(k for k in v0 if v1.get(k) != v0[k])
print(json.dumps({
    "clusters": count,
    "api_requests_per_minute": round(sum(per_minute.values()), 1),
    "by_verb": per_minute,
    "operator_rss_mib": round((rss_kib(name) or 0) / 1024, 1),
    "objects": len(v0),
    "objects_changed_in_a_minute": changed,
}))
