//! `instance-manager`: PID 1 of every PostgreSQL container.
//!
//! The pod's `bootstrap-controller` init container runs `bootstrap`, which copies this binary
//! into the volume shared with the `postgres` container; the later commands (`instance init`,
//! `join`, `run`, `status`) run that copy. Commands land here as they are built.

mod bootstrap;

use std::path::PathBuf;

use cnpg_telemetry::LogArgs;

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "instance-manager",
    version = cnpg_telemetry::LONG_VERSION,
    about = "PID 1 of every PostgreSQL container: bootstrap, init, join, run"
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// What the instance manager is asked to do.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Copy this binary to TARGET with mode 0750, atomically (the bootstrap-controller init
    /// container's job: the postgres container then runs the copy).
    Bootstrap {
        /// File to write, for example /controller/manager.
        target: PathBuf,
    },
}

/// A command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to find this binary's own path")]
    CurrentExe(#[source] std::io::Error),
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::Error),
}

/// Runs one command to completion.
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Bootstrap { target } => {
            let source = std::env::current_exe().map_err(Error::CurrentExe)?;
            let bytes = bootstrap::install(&source, &target)?;
            tracing::info!(path = %target.display(), bytes, "instance manager installed");
            Ok(())
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
