#!/usr/bin/env bash
# Leader election benchmark: time for N = 3, 5, 7 peers to decide, and their
# resident memory, Rust `zk-sidecar vote` peers vs real ZooKeeper servers
# with the same topology, on this machine, in one run. Needs ZooKeeper and
# Java (scripts/install-deps). Extra arguments go to the benchmark, e.g.
# `bench/election.sh --runs 20 --sizes 3,5`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p zk-sidecar -p zk-bench-election
exec target/release/zk-bench-election "$@"
