//! `zk-operator`: the operator's command line.

#![warn(clippy::unwrap_used)]

use clap::Parser;

/// Runs ZooKeeper ensembles on Kubernetes, or on this machine.
#[derive(Debug, Parser)]
#[command(name = "zk-operator", version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
