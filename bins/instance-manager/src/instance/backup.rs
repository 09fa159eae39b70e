//! Online backup mode (`/pg/mode/backup`), for backups taken as volume snapshots: the operator
//! starts it, snapshots the volumes and stops it, and stores the `backup_label` (and
//! `tablespace_map`) it gets back with the snapshot. `pg_backup_start` and `pg_backup_stop`
//! must run on one session, so the instance manager holds that session in between; one backup
//! at a time, and if the session is lost PostgreSQL ends backup mode by itself.

use std::path::Path;

use cnpg_instance_api::{BackupPhase, BackupStatus, StartBackup, StopBackup};
use hyper::StatusCode;
use tokio::sync::Mutex;

use crate::db::Db;

/// The backup in progress (with its session) or the last one.
#[derive(Debug, Default)]
pub struct BackupMode {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    status: BackupStatus,
    session: Option<Db>,
    wait_for_archive: bool,
}

/// A refused or failed call: the HTTP status and why.
pub type Refusal = (StatusCode, String);

impl BackupMode {
    /// The current or last backup.
    pub async fn status(&self) -> BackupStatus {
        self.state.lock().await.status.clone()
    }

    /// Starts backup mode on a new session over `sockets`.
    pub async fn start(&self, sockets: &Path, request: &StartBackup) -> Result<BackupStatus, Refusal> {
        if request.backup_name.trim().is_empty() {
            return Err((StatusCode::BAD_REQUEST, "backupName is required".into()));
        }
        let mut state = self.state.lock().await;
        if state.status.phase == BackupPhase::Started {
            return Err((
                StatusCode::CONFLICT,
                format!(
                    "backup {} is in progress: stop it first",
                    state.status.backup_name.as_deref().unwrap_or_default()
                ),
            ));
        }
        let started = async {
            let db = Db::connect(sockets, "postgres").await?;
            let lsn = db
                .backup_start(&request.backup_name, request.immediate_checkpoint)
                .await?;
            Ok::<_, crate::db::Error>((db, lsn))
        }
        .await;
        state.wait_for_archive = request.wait_for_archive;
        state.status = BackupStatus {
            backup_name: Some(request.backup_name.clone()),
            ..BackupStatus::default()
        };
        match started {
            Ok((db, lsn)) => {
                tracing::info!(backup = request.backup_name, %lsn, "backup mode started");
                state.session = Some(db);
                state.status.phase = BackupPhase::Started;
                state.status.begin_lsn = Some(lsn);
                Ok(state.status.clone())
            }
            Err(e) => {
                let error = cnpg_telemetry::error_chain(&e);
                tracing::warn!(backup = request.backup_name, %error, "backup mode did not start");
                state.status.phase = BackupPhase::Failed;
                state.status.error = Some(error.clone());
                Err((StatusCode::INTERNAL_SERVER_ERROR, error))
            }
        }
    }

    /// Ends backup mode for the named backup; the status carries the files to keep.
    pub async fn stop(&self, request: &StopBackup) -> Result<BackupStatus, Refusal> {
        let mut state = self.state.lock().await;
        if state.status.phase != BackupPhase::Started
            || state.status.backup_name.as_deref() != Some(request.backup_name.as_str())
        {
            return Err((
                StatusCode::CONFLICT,
                format!("backup {} is not in progress", request.backup_name),
            ));
        }
        let Some(session) = state.session.take() else {
            return Err((StatusCode::CONFLICT, "the backup session is gone".into()));
        };
        match session.backup_stop(state.wait_for_archive).await {
            Ok((lsn, label, spcmap)) => {
                tracing::info!(backup = request.backup_name, %lsn, "backup mode stopped");
                state.status.phase = BackupPhase::Completed;
                state.status.end_lsn = Some(lsn);
                state.status.label_file = Some(label);
                state.status.spcmap_file = Some(spcmap);
                Ok(state.status.clone())
            }
            Err(e) => {
                let error = cnpg_telemetry::error_chain(&e);
                tracing::warn!(backup = request.backup_name, %error, "backup mode did not stop cleanly");
                state.status.phase = BackupPhase::Failed;
                state.status.error = Some(error.clone());
                Err((StatusCode::INTERNAL_SERVER_ERROR, error))
            }
        }
    }
}
