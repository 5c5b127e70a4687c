#!/usr/bin/env bash
# What zookube costs and how fast it is on a real cluster: this machine's
# one-node Kubernetes, with the operator installed in it by the e2e suite's
# steps (run `tests/e2e/run --provider shared --keep` first, or pass
# --install to do it here). Prints a table and writes
# bench/results/e2e-<time>.json.
#
#   bench/e2e.sh [--runs N] [--clusters N] [--install] [--cluster PATH]
#
# Measured:
#   - kubectl apply -> every voter Ready and the leader in status, for 3 and
#     5 voters (N runs each, median and max);
#   - leaderless time when the leader's pod is deleted (3 voters): from the
#     delete until a surviving member's sidecar names a new quorum-backed
#     leader, polled every 100 ms by pod IP (N runs);
#   - the operator's API requests per minute at steady state (its own
#     zookube_operator_api_requests_total, so the cluster's own pollers do
#     not count) and its resident memory (VmRSS of the leading replica), with
#     1 cluster and with --clusters N (default 20) unchanged clusters of one
#     voter each (twenty three-voter ensembles do not fit two cores);
#   - whether an unchanged cluster causes writes: the resourceVersion of the
#     cluster and of every child and pod, before and after a minute.
# Needs root (the cluster script), python3, and ../shared/k8s by default.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
many=20
install=false
cluster_script=../shared/k8s/cluster
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=${2:?--runs needs a number}; shift ;;
    --clusters) many=${2:?--clusters needs a number}; shift ;;
    --install) install=true ;;
    --cluster) cluster_script=${2:?--cluster needs a PATH}; shift ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

if $install; then
  tests/e2e/run --provider shared --cluster "$cluster_script" --keep -- no-test-matches-this
fi
eval "$("$cluster_script" env)"
zookeeper_image=$(scripts/build-images --print-ref zookeeper)
NS_PREFIX=bench-e2e
results=()
now() { date +%s.%N; }
log() { echo "bench/e2e [$(date +%T)]: $*" >&2; }

# cluster_yaml NAME NAMESPACE VOTERS: a minimal cluster on the local image,
# small enough that many fit on two cores.
cluster_yaml() {
  cat <<EOF
apiVersion: zookube.io/v1alpha1
kind: ZookeeperCluster
metadata: {name: $1, namespace: $2}
spec:
  replicas: $3
  image: $zookeeper_image
  jvmFlags: -Xms64m -Xmx128m
  resources:
    requests: {cpu: 10m, memory: 192Mi}
    limits: {memory: 512Mi}
  storage: {whenDeleted: Delete}
EOF
}

fresh_ns() {
  kubectl delete namespace "$1" --ignore-not-found --wait=true >/dev/null
  kubectl create namespace "$1" >/dev/null
}

ready_with_leader() { # NS NAME VOTERS
  local got
  got=$(kubectl -n "$1" get zk "$2" -o jsonpath='{.status.readyReplicas} {.status.leader.pod}' 2>/dev/null || true)
  [ "${got%% *}" = "$3" ] && [ -n "${got#* }" ] && [ "${got#* }" != "$got" ]
}

median() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.1f} (max {max(v):.1f}, n={len(v)})")' "$@"; }

# 1. kubectl apply -> Ready with a leader.
for voters in 3 5; do
  times=()
  for run in $(seq "$runs"); do
    ns=$NS_PREFIX-up
    fresh_ns "$ns"
    t0=$(now)
    cluster_yaml zk "$ns" "$voters" | kubectl apply -f - >/dev/null
    until ready_with_leader "$ns" zk "$voters"; do sleep 0.2; done
    t=$(python3 -c "print($(now) - $t0)")
    log "apply -> $voters voters Ready with a leader: ${t} s (run $run)"
    times+=("$t")
  done
  results+=("apply_to_ready_${voters}_voters_s=$(median "${times[@]}")")
done

# 2. Leaderless time when the leader's pod is deleted.
ns=$NS_PREFIX-up
gaps=()
for run in $(seq "$runs"); do
  fresh_ns "$ns"
  cluster_yaml zk "$ns" 3 | kubectl apply -f - >/dev/null
  until ready_with_leader "$ns" zk 3; do sleep 0.2; done
  gap=$(python3 bench/e2e_leaderless.py "$ns" zk)
  log "leader pod deleted: ${gap} s without a quorum-backed leader (run $run)"
  gaps+=("$gap")
done
results+=("leaderless_after_leader_pod_delete_s=$(median "${gaps[@]}")")
kubectl delete namespace "$ns" --wait=true >/dev/null

# 3 and 4. Steady state with 1 and with many clusters.
steady() { # COUNT
  local count=$1 i
  for i in $(seq "$count"); do
    fresh_ns "$NS_PREFIX-$i"
    cluster_yaml zk "$NS_PREFIX-$i" 1 | kubectl apply -f - >/dev/null
  done
  for i in $(seq "$count"); do
    until ready_with_leader "$NS_PREFIX-$i" zk 1; do sleep 1; done
  done
  log "$count clusters ready; letting them settle for 30 s"
  sleep 30
  python3 bench/e2e_steady.py "$count" "$NS_PREFIX"
}
results+=("steady_1_cluster=$(steady 1)")
results+=("steady_${many}_clusters=$(steady "$many")")
for i in $(seq "$many"); do kubectl delete namespace "$NS_PREFIX-$i" --wait=false >/dev/null; done

mkdir -p bench/results
out=bench/results/e2e-$(date +%Y%m%dT%H%M%S).json
python3 - "$out" "${results[@]}" <<'PY'
import json, sys
out, rows = sys.argv[1], sys.argv[2:]
data = dict(r.split("=", 1) for r in rows)
json.dump(data, open(out, "w"), indent=2)
for k, v in data.items():
    print(f"{k:45} {v}")
print(f"(written to {out})")
PY
