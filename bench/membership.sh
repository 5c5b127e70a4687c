#!/usr/bin/env bash
# Membership benchmark: for each scenario (scale 3 -> 5, 5 -> 3, 1 -> 3,
# 3 -> 1 with the leader leaving, rolling restarts of 3 and 5 in which the
# leader hands over, and for reference the leader of 3 and of 5 stopped by
# SIGTERM or kill -9 and started again), the
# longest time without a quorum-backed leader and the number of leader
# changes, under a steady write load, through `zk-operator local` with real
# ZooKeeper servers. Needs ZooKeeper and Java (scripts/install-deps). Extra
# arguments go to the benchmark, e.g. `bench/membership.sh --runs 5`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p zk-operator -p zk-sidecar -p zk-bench-membership
exec target/release/zk-bench-membership --operator target/release/zk-operator "$@"
