//! `backup.retentionPolicy` enforced on the Cluster's own store: after every base backup and
//! every hour on the primary, the backups no point of the recovery window needs are deleted
//! (`backup.info` first, so a half-deleted backup is never listed as whole), then the WAL
//! before the oldest backup kept (history files stay). The plan itself is
//! `cnpg_backup::retention`.

use std::time::Duration;

use cnpg_backup::archive::Settings;
use cnpg_backup::retention::{self, Stored, Window};
use cnpg_backup::{Compression, info};

/// Enforcing the policy failed (the next run tries again).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Policy(String),
    #[error(transparent)]
    Location(#[from] cnpg_backup::Error),
    #[error(transparent)]
    Settings(#[from] crate::wal::Error),
    #[error(transparent)]
    Store(#[from] cnpg_objectstore::Error),
    #[error("listing the stored backups failed")]
    Catalog(#[source] Box<super::base_backup::Error>),
}

/// What one run deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub backups: usize,
    pub wal_files: usize,
}

/// Applies the policy of `settings` (none: nothing) at `now`.
pub async fn enforce(settings: &Settings, now: jiff::Timestamp) -> Result<Deleted, Error> {
    let Some(policy) = settings.retention_policy.as_deref() else {
        return Ok(Deleted::default());
    };
    let window = Window::parse(policy).map_err(Error::Policy)?;
    let location = settings.location()?;
    let store = crate::wal::store(settings, &location.bucket)?;
    let stored: Vec<Stored> = super::base_backup::stored_backups(&store, &location)
        .await
        .map_err(|e| Error::Catalog(Box::new(e)))?
        .into_iter()
        .filter_map(|(id, info)| {
            Some(Stored {
                end_time: info.get("end_time").and_then(info::parse_time)?,
                begin_wal: info.get("begin_wal")?.to_owned(),
                id,
            })
        })
        .collect();
    let plan = retention::plan(&stored, window, now).map_err(Error::Policy)?;
    let mut deleted = Deleted::default();
    for id in &plan.obsolete {
        let folder = location.base_backup(id);
        store.delete(&format!("{folder}backup.info")).await?;
        for object in store.list(&folder).await? {
            store.delete(&object.key).await?;
        }
        deleted.backups += 1;
        tracing::info!(backup = id, policy, "obsolete backup deleted");
    }
    if let Some(limit) = &plan.wal_before {
        for object in store.list(&format!("{}wals/", location.root())).await? {
            let file = object.key.rsplit('/').next().unwrap_or_default();
            let name = file.strip_suffix(Compression::from_key(file).suffix()).unwrap_or(file);
            if retention::wal_is_before(name, limit) {
                store.delete(&object.key).await?;
                deleted.wal_files += 1;
            }
        }
    }
    if deleted != Deleted::default() {
        tracing::info!(
            backups = deleted.backups,
            wal_files = deleted.wal_files,
            policy,
            "retention policy applied"
        );
    }
    Ok(deleted)
}

/// Every hour, on the primary (PostgreSQL over `sockets` not in recovery), applies the
/// policy in the settings file `instance run` keeps.
pub async fn hourly(settings_file: std::path::PathBuf, sockets: std::path::PathBuf) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let primary = async {
            let db = crate::db::Db::connect(&sockets, "postgres").await.ok()?;
            db.in_recovery().await.ok()
        }
        .await
            == Some(false);
        if !primary || !settings_file.is_file() {
            continue;
        }
        let outcome = async {
            let settings = crate::wal::read_settings(&settings_file)?;
            enforce(&settings, jiff::Timestamp::now()).await
        }
        .await;
        if let Err(e) = outcome {
            tracing::warn!(error = %cnpg_telemetry::error_chain(&e), "retention policy not applied");
        }
    }
}
