//! `zk-operator`: the operator's command line.

#![warn(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use zk_operator::cluster::{self, Defaults};
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
    /// Print the ZookeeperCluster CustomResourceDefinition as YAML.
    Crd,
    /// Print, as multi-document YAML, the objects the operator would apply
    /// for the ZookeeperCluster in FILE.
    Render(RenderArgs),
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
        Command::Crd => match crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("cannot write the CRD as YAML: {e}")),
        },
        Command::Render(args) => render_file(&args),
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
    let validated = match cluster::validate_with(&cluster, &defaults) {
        Ok(validated) => validated,
        Err(invalid) => {
            for problem in &invalid.problems {
                eprintln!("error: {problem}");
            }
            return ExitCode::FAILURE;
        }
    };
    match render::render_yaml(&build::children(&validated)) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("cannot write the objects as YAML: {e}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
