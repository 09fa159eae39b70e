//! `instance init`: a new primary's data directory. `initdb` with peer access over the
//! socket only (the password rule comes later, in pg_hba.conf), then a temporary server on
//! the socket alone creates the application owner and database and runs the post-init SQL.
//! Passwords are not set here: `instance run` sets them from the Secrets, as verifiers.

use std::process::Command;
use std::time::Duration;

use postgres_protocol::escape::escape_identifier;

use super::postmaster::{Postmaster, StartOptions};
use crate::db::Db;
use crate::layout::Layout;
use crate::process::Reaper;

/// `instance init` options (CloudNativePG's flag names).
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub layout: Layout,
    /// The application database.
    #[arg(long, default_value = "app")]
    pub app_db_name: String,
    /// The application database's owner.
    #[arg(long, default_value = "app")]
    pub app_user: String,
    /// Turn on data checksums.
    #[arg(long)]
    pub data_checksums: bool,
    /// A separate WAL directory (walStorage).
    #[arg(long)]
    pub pg_wal: Option<std::path::PathBuf>,
    /// SQL run in the `postgres` database after init (repeatable).
    #[arg(long)]
    pub post_init_sql: Vec<String>,
    /// SQL run in the application database after init (repeatable).
    #[arg(long)]
    pub post_init_application_sql: Vec<String>,
}

/// Init failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("refusing to init: {} already holds a data directory", .0.display())]
    Exists(std::path::PathBuf),
    #[error("failed to prepare the instance's directories")]
    Dirs(#[from] crate::layout::WriteError),
    #[error("initdb failed")]
    Initdb(#[source] crate::process::Error),
    #[error("failed to start the temporary server")]
    Start(#[from] super::postmaster::Error),
    #[error("failed to create the application database")]
    Sql(#[from] crate::db::Error),
    #[error("the temporary server did not stop cleanly ({0})")]
    Stop(String),
}

/// Runs `instance init`.
pub async fn init(args: &InitArgs) -> Result<(), Error> {
    let layout = &args.layout;
    if layout.pg_data.join("PG_VERSION").exists() {
        return Err(Error::Exists(layout.pg_data.clone()));
    }
    layout.create_dirs()?;
    let reaper = Reaper::start().map_err(|source| {
        Error::Initdb(crate::process::Error::Spawn {
            program: "the reaper".into(),
            source,
        })
    })?;
    let mut initdb = Command::new(layout.program("initdb"));
    initdb
        .arg("-D")
        .arg(&layout.pg_data)
        .args([
            "--username",
            "postgres",
            "--auth-local",
            "peer",
            "--auth-host",
            "reject",
        ])
        .args(["--encoding", "UTF8", "--locale", "C.UTF-8", "--no-instructions"]);
    if args.data_checksums {
        initdb.arg("--data-checksums");
    }
    if let Some(wal) = &args.pg_wal {
        initdb.arg("--waldir").arg(wal);
    }
    initdb.env("TMPDIR", layout.tmp());
    reaper.output(&mut initdb).await.map_err(Error::Initdb)?;
    tracing::info!(pgdata = %layout.pg_data.display(), checksums = args.data_checksums, "initdb done");

    // Reachable through the socket only, while the application database is created.
    let options = StartOptions {
        listen_addresses: Some(String::new()),
        settings: vec![("unix_socket_directories".into(), layout.sockets().display().to_string())],
    };
    let server = Postmaster::start(&reaper, layout, &options, Duration::from_secs(60)).await?;
    let result = setup(args).await;
    let exit = server.stop_fast(Duration::from_secs(60)).await;
    result?;
    match exit {
        Some(exit) if exit.success() => Ok(()),
        other => Err(Error::Stop(
            other.map_or_else(|| "no exit status".into(), |e| e.to_string()),
        )),
    }
}

async fn setup(args: &InitArgs) -> Result<(), crate::db::Error> {
    let db = Db::connect(&args.layout.sockets(), "postgres").await?;
    let owner = escape_identifier(&args.app_user);
    db.execute(&format!("CREATE ROLE {owner} LOGIN")).await?;
    db.execute(&format!(
        "CREATE DATABASE {} OWNER {owner}",
        escape_identifier(&args.app_db_name)
    ))
    .await?;
    db.ensure_streaming_replica().await?;
    for sql in &args.post_init_sql {
        db.execute(sql).await?;
    }
    if !args.post_init_application_sql.is_empty() {
        let app = Db::connect_to(&args.layout.sockets(), "postgres", &args.app_db_name).await?;
        for sql in &args.post_init_application_sql {
            app.execute(sql).await?;
        }
    }
    tracing::info!(
        database = args.app_db_name,
        owner = args.app_user,
        "application database created"
    );
    Ok(())
}
