//! `instance join`: a new replica's data directory, cloned from the primary with
//! `pg_basebackup` as `streaming_replica`, authenticated by its client certificate alone and
//! verifying the primary against the cluster CA (`sslmode=verify-ca`).

use std::process::Command;

use cnpg_postgres::conf::{self, Upstream};

use super::config::{self, Replication};
use crate::k8s::{ClusterApi, KubeArgs};
use crate::layout::Layout;
use crate::process::Reaper;

/// `instance join` options.
#[derive(Debug, Clone, clap::Args)]
pub struct JoinArgs {
    #[command(flatten)]
    pub layout: Layout,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The primary to clone (default `<cluster>-rw`).
    #[arg(long)]
    pub parent_node: Option<String>,
}

/// Join failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("refusing to join: {} already holds a data directory", .0.display())]
    Exists(std::path::PathBuf),
    #[error("failed to prepare the instance's directories")]
    Dirs(#[from] crate::layout::WriteError),
    #[error(transparent)]
    Kube(#[from] crate::k8s::Error),
    #[error("failed to start the reaper")]
    Reaper(#[source] std::io::Error),
    #[error("pg_basebackup failed")]
    Basebackup(#[source] crate::process::Error),
}

/// Runs `instance join`.
pub async fn join(args: &JoinArgs) -> Result<(), Error> {
    let layout = &args.layout;
    if layout.pg_data.join("PG_VERSION").exists() {
        return Err(Error::Exists(layout.pg_data.clone()));
    }
    layout.create_dirs()?;
    let api = ClusterApi::new(args.kube.clone())?;
    let materials = api.materials().await?;
    config::write_certificates(layout, &materials)?;
    let reaper = Reaper::start().map_err(Error::Reaper)?;
    let upstream = Upstream {
        host: args
            .parent_node
            .clone()
            .unwrap_or_else(|| format!("{}-rw", args.kube.cluster_name)),
        slot: None,
        ..Replication {
            primary_host: String::new(),
            pod_name: args.kube.pod_name.clone(),
        }
        .upstream()
    };
    let conninfo = conf::primary_conninfo(&upstream, &layout.paths());
    let mut basebackup = Command::new(layout.program("pg_basebackup"));
    basebackup
        .arg("-D")
        .arg(&layout.pg_data)
        .args(["--dbname", &conninfo])
        .args(["--wal-method", "stream", "--checkpoint", "fast", "--no-password"])
        .env("TMPDIR", layout.tmp());
    reaper.output(&mut basebackup).await.map_err(Error::Basebackup)?;
    // A clone is a replica until the Cluster says otherwise.
    crate::layout::write_if_changed(&layout.pg_data.join("standby.signal"), b"", 0o600)?;
    tracing::info!(pgdata = %layout.pg_data.display(), primary = upstream.host, "replica cloned");
    Ok(())
}
