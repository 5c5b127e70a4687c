//! Structured logs (tracing) for the long-running modes, on stderr: one JSON
//! object per line by default (what log collectors in a cluster expect), or
//! text for people. `RUST_LOG` filters as usual; the default is `info`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Json,
    Text,
}

pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: escape codes in a log file (local's
        // sidecar.log, a pod's log) are noise to every reader.
        .with_ansi(std::io::stderr().is_terminal());
    // A second initialisation (tests) is harmless; keep the first.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
