#!/usr/bin/env bash
# The zk-sidecar benchmark, one command: builds the release binaries, then
# runs a real three-voter ZooKeeper ensemble on loopback with a sidecar
# beside each member and measures leader-change detection latency over
# repeated leader kills, the sidecars' memory and CPU, and /metrics
# throughput. Extra arguments go to bench-sidecar (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p zk-sidecar -p zk-bench-sidecar
exec target/release/bench-sidecar --sidecar target/release/zk-sidecar "$@"
