//! `Backup` and `ScheduledBackup`.

use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A request for one backup of a cluster.
#[allow(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn repeats `type_` by design"
)]
#[serde_with::skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "postgresql.cnpg.io",
    version = "v1",
    kind = "Backup",
    namespaced,
    status = "BackupStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Backup is one backup of a Cluster",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster.name"),
    printcolumn(name = "Method", type_ = "string", json_path = ".spec.method"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Error", type_ = "string", json_path = ".status.error")
)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    pub cluster: LocalObjectReference,
    /// `primary` or `prefer-standby`.
    pub target: Option<String>,
    /// `barmanObjectStore` [default], `volumeSnapshot` or `plugin`.
    pub method: Option<String>,
    pub online: Option<bool>,
    pub online_configuration: Option<OnlineConfiguration>,
    /// For `method: plugin` (kept as given).
    #[serde(default)]
    #[schemars(schema_with = "crate::crds::preserved_object")]
    pub plugin_configuration: Option<serde_json::Value>,
}

/// How an online backup runs.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnlineConfiguration {
    /// Finish only once the WAL the backup needs is archived [true].
    pub wait_for_archive: Option<bool>,
    /// Checkpoint at once instead of spreading it [false].
    pub immediate_checkpoint: Option<bool>,
}

/// The observed state of a backup: where it is stored and the WAL it needs, as the instance
/// that took it reported.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    pub phase: Option<String>,
    pub started_at: Option<String>,
    pub stopped_at: Option<String>,
    pub error: Option<String>,
    pub method: Option<String>,
    pub online: Option<bool>,
    /// barman's backup ID.
    pub backup_id: Option<String>,
    pub backup_name: Option<String>,
    pub destination_path: Option<String>,
    pub server_name: Option<String>,
    #[serde(rename = "endpointURL")]
    pub endpoint_url: Option<String>,
    #[serde(rename = "endpointCA")]
    pub endpoint_ca: Option<k8s_openapi::api::core::v1::SecretKeySelector>,
    /// The store's credentials, as the Cluster named them when the backup was taken (Secret
    /// references, never values).
    #[serde(default)]
    #[schemars(schema_with = "crate::crds::preserved_object")]
    pub s3_credentials: Option<serde_json::Value>,
    #[serde(default)]
    #[schemars(schema_with = "crate::crds::preserved_object")]
    pub azure_credentials: Option<serde_json::Value>,
    #[serde(default)]
    #[schemars(schema_with = "crate::crds::preserved_object")]
    pub google_credentials: Option<serde_json::Value>,
    pub encryption: Option<String>,
    pub begin_wal: Option<String>,
    pub end_wal: Option<String>,
    #[serde(rename = "beginLSN")]
    pub begin_lsn: Option<String>,
    #[serde(rename = "endLSN")]
    pub end_lsn: Option<String>,
    pub major_version: Option<i32>,
}

/// Backups of a cluster on a schedule.
#[allow(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn repeats `type_` by design"
)]
#[serde_with::skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "postgresql.cnpg.io",
    version = "v1",
    kind = "ScheduledBackup",
    namespaced,
    status = "ScheduledBackupStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "ScheduledBackup takes Backups of a Cluster on a schedule",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster.name"),
    printcolumn(name = "Last Backup", type_ = "date", json_path = ".status.lastScheduleTime")
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledBackupSpec {
    /// Six cron fields with leading seconds (`0 0 0 * * *`), or a descriptor (`@daily`).
    pub schedule: String,
    #[x_kube(validation = Rule::new("self == oldSelf").message("cluster is immutable"))]
    pub cluster: LocalObjectReference,
    pub suspend: Option<bool>,
    /// Take a backup right away too.
    pub immediate: Option<bool>,
    /// `none` [default], `self` or `cluster`.
    pub backup_owner_reference: Option<String>,
    pub target: Option<String>,
    pub method: Option<String>,
    pub online: Option<bool>,
}

/// The observed state of a schedule.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledBackupStatus {
    pub last_check_time: Option<String>,
    pub last_schedule_time: Option<String>,
    pub next_schedule_time: Option<String>,
    pub error: Option<String>,
}
