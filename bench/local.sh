#!/usr/bin/env bash
# `zk-operator local up` benchmark: wall time from `local up` to a
# quorum-backed leader for 3 and 5 voters, against the same ZooKeeper
# servers started by hand with the same configs (waiting for `srvr` to show
# a leader), repeated, with the ratio. Needs ZooKeeper and Java
# (scripts/install-deps). Extra arguments go to the benchmark, e.g.
# `bench/local.sh --runs 10 --sizes 3`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps
cargo build --release --locked -p zk-operator -p zk-sidecar -p zk-bench-local
exec target/release/bench-local --zk-operator target/release/zk-operator "$@"
