//! `zk-sidecar`: runs beside every ZooKeeper member. One binary, one
//! subcommand per mode.

#![warn(clippy::unwrap_used)]

mod check;
mod config;
mod http;
mod init;
mod logging;
mod metrics;
mod run;
mod vote;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The zookube sidecar: guards a member's identity, watches ZooKeeper's
/// election, and reports health and metrics.
#[derive(Debug, Parser)]
#[command(name = "zk-sidecar", version)]
struct Cli {
    /// How `run` and `vote` write their logs (on stderr).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "json",
        env = "ZOOKUBE_LOG_FORMAT"
    )]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate one member's zoo.cfg and myid file.
    Check(check::CheckArgs),
    /// Derive this pod's myid, check it against the config, and write it to
    /// the data directory (refusing another member's volume).
    Init(init::InitArgs),
    /// Watch the ensemble's election beside a real member and serve
    /// /livez, /readyz, /v1/status and /metrics.
    Run(run::RunArgs),
    /// Take part in the election as a voting Rust peer on this member's
    /// election port, and serve /livez, /readyz, /v1/status and /metrics.
    Vote(vote::VoteArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Init(args) => init::run(&args),
        Command::Run(args) => {
            logging::init(cli.log_format);
            run::run(&args)
        }
        Command::Vote(args) => {
            logging::init(cli.log_format);
            vote::run(&args)
        }
    }
}
