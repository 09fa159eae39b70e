//! The contract of the instance manager's HTTP server on port 8000, shared by the operator
//! (which polls every instance) and the instance manager (which serves it).
//!
//! Field names follow CloudNativePG's `/pg/status` JSON, so tools written for it read ours.
//! The client speaks TLS 1.3 only and verifies the instance's certificate against the cluster
//! CA *and* the service name it was issued for (`<cluster>-rw`): instances are reached by pod
//! address, but the certificate still has to be the cluster's server certificate.

pub mod client;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// The port the instance manager serves status on.
pub const STATUS_PORT: u16 = 8000;
/// The port the instance manager serves Prometheus metrics on.
pub const METRICS_PORT: u16 = 9187;

/// Paths on port 8000.
pub mod paths {
    /// Liveness: the instance manager runs and PostgreSQL is running or being rewound.
    pub const HEALTHZ: &str = "/healthz";
    /// Readiness: PostgreSQL accepts connections.
    pub const READYZ: &str = "/readyz";
    /// Startup: PostgreSQL has started and accepts connections.
    pub const STARTUPZ: &str = "/startupz";
    /// The instance's status as JSON ([`super::InstanceStatus`]).
    pub const STATUS: &str = "/pg/status";
    /// `pg_controldata` output; requires the operator's client certificate.
    pub const CONTROLDATA: &str = "/pg/controldata";
    /// Online backup mode for volume snapshots: GET the state, POST
    /// [`super::StartBackup`], PUT [`super::StopBackup`]; requires the operator's client
    /// certificate.
    pub const BACKUP: &str = "/pg/mode/backup";
    /// A base backup to the Cluster's object store: GET the state of the current or last one,
    /// POST [`super::TakeBackup`] to start one; requires the operator's client certificate.
    pub const BASE_BACKUP: &str = "/pg/backup";
}

/// POST `/pg/backup`: take a base backup of this instance and upload it, with the WAL it
/// needs archived, to the object store of `spec.backup.barmanObjectStore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TakeBackup {
    /// The Backup's name; the backup label.
    pub backup_name: String,
    /// Checkpoint at once instead of spreading it.
    #[serde(default)]
    pub immediate_checkpoint: bool,
    /// Finish only once the last WAL segment the backup needs is archived (the default).
    #[serde(default = "yes")]
    pub wait_for_archive: bool,
}

fn yes() -> bool {
    true
}

/// Where a base backup stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BaseBackupPhase {
    /// No base backup since the instance manager started.
    #[default]
    Idle,
    /// Copying and uploading.
    Running,
    /// Stored: `backup.info` is written and the backup is listed.
    Completed,
    /// `error` says why; nothing is listed for it.
    Failed,
}

/// The answer of every `/pg/backup` call: the current (or last) base backup, in the terms of
/// a Backup's status.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaseBackupStatus {
    pub backup_name: Option<String>,
    pub phase: BaseBackupPhase,
    /// barman's backup ID (the start time, `YYYYMMDDTHHMMSS`).
    pub backup_id: Option<String>,
    pub destination_path: Option<String>,
    pub server_name: Option<String>,
    pub begin_wal: Option<String>,
    pub end_wal: Option<String>,
    #[serde(rename = "beginLSN")]
    pub begin_lsn: Option<String>,
    #[serde(rename = "endLSN")]
    pub end_lsn: Option<String>,
    /// RFC 3339.
    pub started_at: Option<String>,
    pub stopped_at: Option<String>,
    pub error: Option<String>,
}

/// POST `/pg/mode/backup`: put the instance in backup mode (`pg_backup_start`) on a session
/// the instance manager holds until the backup is stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartBackup {
    /// The Backup's name; the backup label.
    pub backup_name: String,
    /// Checkpoint at once instead of spreading it.
    #[serde(default)]
    pub immediate_checkpoint: bool,
    /// On stop, wait until the last WAL segment is archived.
    #[serde(default)]
    pub wait_for_archive: bool,
}

/// PUT `/pg/mode/backup`: end backup mode (`pg_backup_stop`) for the named backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopBackup {
    pub backup_name: String,
}

/// Where an online backup stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BackupPhase {
    /// No backup since the instance manager started.
    #[default]
    Idle,
    /// In backup mode: take the snapshot now.
    Started,
    /// Backup mode ended; the label and tablespace map are in the status.
    Completed,
    /// Starting or stopping failed; `error` says why.
    Failed,
}

/// The answer of every `/pg/mode/backup` call: the current (or last) backup.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    pub backup_name: Option<String>,
    pub phase: BackupPhase,
    /// `pg_backup_start`'s LSN.
    pub begin_lsn: Option<String>,
    /// `pg_backup_stop`'s LSN.
    pub end_lsn: Option<String>,
    /// The `backup_label` file to store with the snapshot.
    pub label_file: Option<String>,
    /// The `tablespace_map` file to store with the snapshot (empty without tablespaces).
    pub spcmap_file: Option<String>,
    pub error: Option<String>,
}

/// One instance's state, as `/pg/status` reports it.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// The pod (instance) name.
    pub pod_name: String,
    /// WAL position written (primary) or replayed (replica), `X/Y` notation.
    pub current_lsn: Option<String>,
    /// Last WAL position received from the primary (replicas).
    pub received_lsn: Option<String>,
    /// Last WAL position replayed (replicas).
    pub replay_lsn: Option<String>,
    /// The database system identifier; equal on every member of a cluster.
    #[serde(rename = "systemID")]
    pub system_id: Option<String>,
    pub is_primary: bool,
    #[serde(default)]
    pub replay_paused: bool,
    /// A setting changed that only a restart applies.
    #[serde(default)]
    pub pending_restart: bool,
    #[serde(default)]
    pub is_wal_receiver_active: bool,
    #[serde(default)]
    pub is_pg_rewind_running: bool,
    /// `cnpg.config_sha256` as the running server loaded it.
    pub loaded_configuration_hash: Option<String>,
    #[serde(rename = "timeLineID")]
    pub timeline_id: Option<u32>,
    /// Streaming replicas connected to this instance (primary).
    #[serde(default)]
    pub replication_info: Vec<ReplicationInfo>,
    /// Physical replication slots on this instance.
    #[serde(default)]
    pub replication_slots_info: Vec<SlotInfo>,
    /// `server_version` of the running PostgreSQL.
    pub postgres_version: Option<String>,
    pub instance_manager_version: String,
    pub instance_arch: String,
    /// Whether PostgreSQL accepts connections.
    #[serde(default)]
    pub is_pod_ready: bool,
    /// Whether this instance archives WAL (`archive_mode` on, or `always` on a replica).
    #[serde(default, rename = "isArchivingWAL")]
    pub is_archiving_wal: bool,
    /// The last WAL file archived, and when (`pg_stat_archiver`).
    #[serde(rename = "lastArchivedWAL")]
    pub last_archived_wal: Option<String>,
    #[serde(rename = "lastArchivedWALTime")]
    pub last_archived_wal_time: Option<String>,
    /// The last WAL file whose archiving failed, and when.
    #[serde(rename = "lastFailedWAL")]
    pub last_failed_wal: Option<String>,
    #[serde(rename = "lastFailedWALTime")]
    pub last_failed_wal_time: Option<String>,
    /// WAL files waiting to be archived (`.ready` in `pg_wal/archive_status`).
    #[serde(default)]
    pub ready_wal_files: u64,
    /// Why the status is incomplete, when it is.
    pub error: Option<String>,
}

/// One row of `pg_stat_replication`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationInfo {
    pub application_name: String,
    pub state: String,
    /// `sent_lsn`.
    pub received_lsn: Option<String>,
    pub write_lsn: Option<String>,
    pub flush_lsn: Option<String>,
    pub replay_lsn: Option<String>,
    pub sync_state: String,
    pub sync_priority: i32,
}

/// One row of `pg_replication_slots`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotInfo {
    pub slot_name: String,
    pub slot_type: String,
    pub active: bool,
    pub restart_lsn: Option<String>,
    pub wal_status: Option<String>,
}

/// `/pg/controldata`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlData {
    /// `pg_controldata`'s output.
    pub data: String,
}
