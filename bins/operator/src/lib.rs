//! `operator`: Kubernetes operator for PostgreSQL clusters (postgresql.cnpg.io/v1).
//!
//! Reconciles Cluster, Pooler, Backup and ScheduledBackup objects, serves the admission webhooks on
//! 9443 and metrics on 8080. The controllers land with their issues (see the README); today the
//! binary generates the install manifests under `deploy/` from the API types.

use std::path::PathBuf;

use cnpg_telemetry::LogArgs;

pub mod manifests;
pub mod scheduled_backup;

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "operator",
    version = cnpg_telemetry::LONG_VERSION,
    about = "Kubernetes operator for PostgreSQL clusters (postgresql.cnpg.io/v1)"
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Regenerate deploy/: the CRDs from the API types, kustomization.yaml and install.yaml.
    /// With --check, change nothing and fail if the checked-in files differ.
    Manifests(ManifestsArgs),
}

/// `operator manifests`.
#[derive(Debug, clap::Args)]
pub struct ManifestsArgs {
    /// The deploy directory of the repository.
    #[arg(long, default_value = "deploy")]
    pub deploy_dir: PathBuf,
    /// Fail if a generated file differs from what is checked in, and write nothing.
    #[arg(long)]
    pub check: bool,
    /// Pin an image before generating: `name[:tag]@sha256:<digest>` replaces the digest of
    /// every reference to `name[:tag]` in the hand-written manifests. Repeatable.
    #[arg(long = "pin", value_name = "IMAGE@DIGEST")]
    pub pins: Vec<String>,
}

/// Runs a command.
pub fn run(cli: Cli) -> Result<(), manifests::Error> {
    match cli.command {
        Command::Manifests(args) => {
            if !args.pins.is_empty() {
                if args.check {
                    return Err(manifests::Error::BadPin("--pin with --check".into()));
                }
                let changed = manifests::pin(&args.deploy_dir, &args.pins)?;
                tracing::info!(files = changed, "moved image pins");
            }
            let generated = manifests::generate(&args.deploy_dir)?;
            if args.check {
                manifests::check(&args.deploy_dir, &generated)
            } else {
                manifests::write(&args.deploy_dir, &generated)?;
                tracing::info!(files = generated.len(), dir = %args.deploy_dir.display(), "wrote the generated manifests");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn every_flag_is_documented_and_version_names_the_commit() {
        super::Cli::command().debug_assert();
        let mut cmd = super::Cli::command();
        cmd.build();
        assert_eq!(cnpg_telemetry::cli_problems(&cmd), Vec::<String>::new());
    }
}
