//! `zk-operator`: the operator's command line.

#![warn(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::ExitCode;

use std::net::SocketAddr;

use clap::{Parser, Subcommand, ValueEnum};
use zk_operator::cluster::{self, Defaults};
use zk_operator::controller::Scope;
use zk_operator::run::{LeaseOptions, Options};
use zk_operator::{build, crd, render};

/// Runs ZooKeeper ensembles on Kubernetes, or on this machine.
#[derive(Debug, Parser)]
#[command(name = "zk-operator", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the operator: reconcile ZookeeperClusters until SIGTERM.
    Run(RunArgs),
    /// Print the ZookeeperCluster CustomResourceDefinition as YAML.
    Crd,
    /// Print, as multi-document YAML, the objects the operator would apply
    /// for the ZookeeperCluster in FILE (without owner references: a file
    /// has no uid). Exits 1 with every problem when the cluster is invalid.
    Render(RenderArgs),
    /// Run the ensemble of a ZookeeperCluster on this machine, without
    /// Kubernetes: real ZooKeeper servers and zk-sidecars on loopback.
    Local(zk_operator::local::LocalArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "ZOOKUBE_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Where to serve /metrics and /healthz.
    #[arg(long, env = "ZOOKUBE_METRICS_LISTEN", default_value = "[::]:8080")]
    metrics_listen: SocketAddr,
    /// The sidecar image for clusters that name none.
    #[arg(long, env = "ZOOKUBE_SIDECAR_IMAGE", default_value = crd::DEFAULT_SIDECAR_IMAGE)]
    sidecar_image: String,
    /// Elect a leader over a Lease, so that several replicas can run.
    #[arg(long, env = "ZOOKUBE_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// The name of the leader Lease.
    #[arg(long, env = "ZOOKUBE_LEASE_NAME", default_value = "zk-operator")]
    lease_name: String,
    /// The namespace of the leader Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Log format.
    #[arg(long, env = "ZOOKUBE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct RenderArgs {
    /// A YAML file holding a ZookeeperCluster.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: PathBuf,
    /// The namespace to render into, when the file names none.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Which ZookeeperCluster to render when FILE holds several.
    #[arg(long)]
    name: Option<String>,
    /// The sidecar image for clusters that name none.
    #[arg(long, env = "ZOOKUBE_SIDECAR_IMAGE", default_value = crd::DEFAULT_SIDECAR_IMAGE)]
    sidecar_image: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Crd => match crd::crd_yaml() {
            Ok(yaml) => emit(&yaml),
            Err(e) => fail(&format!("cannot write the CRD as YAML: {e}")),
        },
        Command::Render(args) => render_file(&args),
        Command::Local(args) => zk_operator::local::run(args),
    }
}

/// `render`: exit 0 with the objects, 1 when the cluster is invalid (every
/// problem on its own line), 2 when the file cannot be read.
fn render_file(args: &RenderArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let mut cluster = match cluster::parse_cluster(&text, args.name.as_deref()) {
        Ok(cluster) => cluster,
        Err(e) => return fail(&format!("{}: {e}", args.file.display())),
    };
    if let Some(namespace) = &args.namespace {
        cluster.metadata.namespace = Some(namespace.clone());
    }
    let defaults = Defaults {
        sidecar_image: args.sidecar_image.clone(),
    };
    let validated = match cluster::validate_for_kubernetes(&cluster, &defaults) {
        Ok(validated) => validated,
        Err(invalid) => {
            for problem in &invalid.problems {
                eprintln!("error: {problem}");
            }
            return ExitCode::FAILURE;
        }
    };
    match render::render_yaml(&build::children(&validated)) {
        Ok(yaml) => emit(&yaml),
        Err(e) => fail(&format!("cannot write the objects as YAML: {e}")),
    }
}

/// `run`: exit 0 after a graceful shutdown, 1 when the operator cannot start.
fn run(args: RunArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let options = Options {
        scope: args.namespace.map_or(Scope::Cluster, Scope::Namespace),
        metrics_addr: args.metrics_listen,
        defaults: Defaults {
            sidecar_image: args.sidecar_image,
        },
        lease: args.leader_election.then_some(LeaseOptions {
            name: args.lease_name,
            namespace: args.lease_namespace,
        }),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(zk_operator::run::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

/// Writes to standard output; a reader that went away (`| head`) is not an
/// error worth a message.
fn emit(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&format!("cannot write to standard output: {e}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
