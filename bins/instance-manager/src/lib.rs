//! `instance-manager`: PID 1 of every PostgreSQL container.
//!
//! The pod's `bootstrap-controller` init container runs `bootstrap`, which copies this binary
//! into the volume shared with the `postgres` container. Jobs run `instance init` (a new
//! primary) or `instance join` (a new replica); the postgres container runs `instance run`,
//! which reads the Cluster and its Secrets from the API, writes certificates and
//! configuration, starts and supervises `postgres`, promotes and demotes it as the Cluster's
//! `targetPrimary` says, and serves its status on port 8000. PostgreSQL calls back into
//! `wal-archive` and `wal-restore`.

mod bootstrap;
mod db;
mod instance;
mod k8s;
mod layout;
mod process;
mod wal;

use std::path::PathBuf;

use cnpg_telemetry::LogArgs;

pub use instance::InstanceCommand;

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
    /// Commands run in the postgres container and its jobs.
    #[command(subcommand)]
    Instance(Box<InstanceCommand>),
    /// PostgreSQL's archive_command: uploads the file to the Cluster's object store in
    /// barman-cloud's layout, succeeding once the store holds exactly its bytes; with no object
    /// store configured, WAL is kept by the replication slots and wal_keep_size alone and the
    /// segment counts as archived.
    WalArchive {
        /// Where the caller would like logs (accepted for compatibility; logs go to stderr).
        #[arg(long)]
        log_destination: Option<PathBuf>,
        /// The segment's path, relative to PGDATA.
        path: PathBuf,
    },
    /// PostgreSQL's restore_command: fetches the file from the Cluster's object store (any
    /// compression barman gives it that we read: none or gzip); exit 1 when it is not there
    /// (or no object store is configured), which PostgreSQL reads as "not archived".
    WalRestore {
        /// Where the caller would like logs (accepted for compatibility; logs go to stderr).
        #[arg(long)]
        log_destination: Option<PathBuf>,
        /// The segment's name.
        name: String,
        /// Where PostgreSQL wants it.
        path: PathBuf,
    },
}

/// A command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to find this binary's own path")]
    CurrentExe(#[source] std::io::Error),
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::Error),
    #[error("failed to start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("instance init failed")]
    Init(#[source] Box<instance::init::Error>),
    #[error("instance join failed")]
    Join(#[source] Box<instance::join::Error>),
    #[error("instance restore failed")]
    Restore(#[source] Box<instance::restore::Error>),
    #[error("instance run failed")]
    Run(#[source] Box<instance::run::Error>),
    #[error("instance status failed")]
    Status(#[source] Box<instance::StatusError>),
    #[error("archiving {} failed", .0.display())]
    WalArchive(PathBuf, #[source] Box<wal::Error>),
    #[error("restoring {0} failed")]
    WalRestore(String, #[source] Box<wal::Error>),
    /// restore_command's "not found": PostgreSQL streams or waits instead.
    #[error("{0} is not in the object store")]
    NotArchived(String),
}

/// The WAL helpers PostgreSQL calls for every segment answer at once, without logging, when no
/// object store is configured: every segment counts as archived and none can be restored (exit
/// 1 is how restore_command says "not found", and PostgreSQL then streams the WAL instead).
pub fn wal_helper_exit(command: &Command) -> Option<std::process::ExitCode> {
    match command {
        Command::WalArchive { .. } if wal::settings_file().is_none() => Some(std::process::ExitCode::SUCCESS),
        Command::WalRestore { .. } if wal::restore_settings_file().is_none() => Some(std::process::ExitCode::FAILURE),
        _ => None,
    }
}

/// Runs `work` on a runtime of one thread: what a WAL helper, one process per file, needs.
fn one_thread<F: std::future::Future>(work: F) -> Result<F::Output, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    Ok(runtime.block_on(work))
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
        Command::WalArchive { path, .. } => {
            let Some(settings) = wal::settings_file() else {
                return Ok(());
            };
            let outcome = one_thread(wal::archive(&settings, &path))?;
            wal::record_outcome(&settings, outcome.as_ref().err());
            let key = outcome.map_err(|e| Error::WalArchive(path.clone(), Box::new(e)))?;
            tracing::info!(file = %path.display(), %key, "archived");
            Ok(())
        }
        Command::WalRestore { name, path, .. } => {
            let Some(settings) = wal::restore_settings_file() else {
                return Err(Error::NotArchived(name));
            };
            let found = one_thread(wal::restore(&settings, &name, &path))?
                .map_err(|e| Error::WalRestore(name.clone(), Box::new(e)))?;
            if !found {
                return Err(Error::NotArchived(name));
            }
            tracing::info!(%name, "restored");
            Ok(())
        }
        Command::Instance(command) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(Error::Runtime)?;
            runtime.block_on(async move {
                match *command {
                    InstanceCommand::Init(args) => {
                        instance::init::init(&args).await.map_err(|e| Error::Init(Box::new(e)))
                    }
                    InstanceCommand::Join(args) => {
                        instance::join::join(&args).await.map_err(|e| Error::Join(Box::new(e)))
                    }
                    InstanceCommand::Restore(args) => instance::restore::restore(&args)
                        .await
                        .map_err(|e| Error::Restore(Box::new(e))),
                    InstanceCommand::Run(args) => instance::run::run(args).await.map_err(|e| Error::Run(Box::new(e))),
                    InstanceCommand::Status(args) => {
                        instance::status(&args).await.map_err(|e| Error::Status(Box::new(e)))
                    }
                }
            })
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
