//! `zk-sidecar check`: is this member's configuration one ZooKeeper will
//! start and zookube will run? The command to reach for when ZooKeeper
//! refuses to start.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use zk_election::config::{ElectionSecurity, election_security};
use zk_election::transport::tls::check_member;
use zk_ensemble::{Myid, ZooCfg, validate};

use crate::config;

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The member's zoo.cfg.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The member's myid file (in its data directory).
    #[arg(long, value_name = "FILE")]
    myid_file: PathBuf,
    /// The servers' JAAS file, checked for the learner's credentials when
    /// the members require quorum SASL (as `run --jaas-config`).
    #[arg(long, value_name = "FILE", env = "ZOOKUBE_JAAS_CONFIG")]
    jaas_config: Option<PathBuf>,
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
            if let Err(problem) = check_security(&cfg, s.myid, args.jaas_config.as_deref()) {
                eprintln!(
                    "error: {} is not a configuration zookube can run for myid {}:\n  - {problem}",
                    args.config.display(),
                    s.myid
                );
                return ExitCode::from(1);
            }
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

/// The election port's security as the config sets it: one the sidecar
/// can speak; with quorum TLS, stores that serve this member (the key is
/// PKCS#8 and belongs to the certificate, which chains to the trust store
/// and names the host of the member's server line); with quorum SASL
/// required, a JAAS file whose learner section the sidecar can log in with.
fn check_security(cfg: &ZooCfg, myid: Myid, jaas: Option<&Path>) -> Result<(), String> {
    let security = election_security(cfg)?;
    if let Some(sasl) = &security.sasl {
        let file = jaas.ok_or(
            "the members require quorum SASL (quorum.auth.serverRequireSasl=true): give the servers' JAAS file with --jaas-config FILE, as zk-sidecar run needs it",
        )?;
        let credentials =
            config::learner_credentials(file, &sasl.login_context).map_err(|e| e.to_string())?;
        println!(
            "ok: quorum SASL: {} logs the sidecar in as {:?} (section {})",
            file.display(),
            credentials.username,
            sasl.login_context
        );
    }
    match security {
        ElectionSecurity { tls: None, .. } => Ok(()),
        ElectionSecurity {
            tls: Some(stores), ..
        } => {
            let host = cfg
                .server(i64::from(myid))
                .map(|s| s.host().to_owned())
                .unwrap_or_default();
            check_member(&stores, &host).map_err(|e| format!("quorum TLS: {e}"))?;
            println!(
                "ok: quorum TLS: {} holds a PKCS#8 key and a certificate for {host} that {} trusts",
                stores.key_store.display(),
                stores.trust_store.display()
            );
            Ok(())
        }
    }
}
