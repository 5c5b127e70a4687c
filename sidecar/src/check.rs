//! `zk-sidecar check`: is this member's configuration one ZooKeeper will
//! start and zookube will run? The command to reach for when ZooKeeper
//! refuses to start.

use std::path::PathBuf;
use std::process::ExitCode;

use zk_ensemble::validate;

use crate::config;

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The member's zoo.cfg.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The member's myid file (in its data directory).
    #[arg(long, value_name = "FILE")]
    myid_file: PathBuf,
}

/// Exit 0 when valid, 1 when invalid (every problem on stderr), 2 when a
/// file cannot be read.
pub(crate) fn run(args: &CheckArgs) -> ExitCode {
    let loaded =
        config::load(&args.config).and_then(|cfg| Ok((cfg, config::read(&args.myid_file)?)));
    let (cfg, myid) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    match validate(&cfg, &myid) {
        Ok(s) => {
            println!(
                "ok: myid {} is {} in an ensemble of {} voters and {} observers (quorum {}, tolerates {} failed voter{})",
                s.myid,
                match s.role {
                    zk_ensemble::Role::Voter => "a voter",
                    zk_ensemble::Role::Observer => "an observer",
                },
                s.voters,
                s.observers,
                s.quorum,
                s.tolerated_failures,
                if s.tolerated_failures == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!(
                "error: {} is not a valid configuration for the member whose myid file is {}:",
                args.config.display(),
                args.myid_file.display()
            );
            for problem in problems {
                eprintln!("  - {problem}");
            }
            ExitCode::from(1)
        }
    }
}
