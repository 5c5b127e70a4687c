//! `zk-sidecar`: runs beside every ZooKeeper member. One binary, one
//! subcommand per mode.

#![warn(clippy::unwrap_used)]

mod check;
mod config;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The zookube sidecar: guards a member's identity, watches ZooKeeper's
/// election, and reports health and metrics.
#[derive(Debug, Parser)]
#[command(name = "zk-sidecar", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate one member's zoo.cfg and myid file.
    Check(check::CheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check::run(&args),
    }
}
