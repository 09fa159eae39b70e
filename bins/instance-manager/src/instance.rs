//! `instance …`: the commands that run inside the postgres container (and its jobs).

pub mod backup;
pub mod base_backup;
pub mod config;
pub mod http;
pub mod init;
pub mod join;
pub mod listener;
pub mod metrics;
pub mod postmaster;
pub mod restore;
pub mod retention;
pub mod run;

use std::net::SocketAddr;
use std::path::PathBuf;

/// The `instance` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum InstanceCommand {
    /// Create a primary's data directory: initdb, application owner and database, post-init SQL.
    Init(init::InitArgs),
    /// Clone a replica's data directory from the primary (pg_basebackup, certificate auth).
    Join(join::JoinArgs),
    /// Create a primary's data directory from a base backup and the WAL archived after it, in
    /// the object store of `bootstrap.recovery.source`, up to the recovery target; promoted onto
    /// a new timeline (the full-recovery job).
    Restore(restore::RestoreArgs),
    /// Run as PID 1: configure, start and supervise PostgreSQL; serve status on 8000.
    Run(run::RunArgs),
    /// Print this instance's status (GET /pg/status on the local status server) as JSON.
    Status(StatusArgs),
}

/// `instance status` options.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// The status server.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub address: SocketAddr,
    /// The CA that signed the server certificate.
    #[arg(long, default_value = "/controller/certificates/server-ca.crt")]
    pub ca_file: PathBuf,
    /// The Cluster (the certificate is issued for `<cluster>-rw`).
    #[arg(long, env = "CLUSTER_NAME")]
    pub cluster_name: String,
}

/// `instance status` failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("failed to read {}", .path.display())]
    Ca { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Client(#[from] cnpg_instance_api::client::Error),
    #[error("failed to write the status")]
    Write(#[source] std::io::Error),
}

/// `instance status`: the JSON, pretty, on stdout.
pub async fn status(args: &StatusArgs) -> Result<(), StatusError> {
    use std::io::Write as _;
    let ca = std::fs::read_to_string(&args.ca_file).map_err(|source| StatusError::Ca {
        path: args.ca_file.clone(),
        source,
    })?;
    let client = cnpg_instance_api::client::Client::new(&ca, &format!("{}-rw", args.cluster_name), None)?;
    let status: serde_json::Value = client.get_json(args.address, cnpg_instance_api::paths::STATUS).await?;
    let pretty = serde_json::to_string_pretty(&status).map_err(|e| StatusError::Write(e.into()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{pretty}").map_err(StatusError::Write)
}
