//! `Cluster`: a PostgreSQL cluster, with CloudNativePG's field names. Every field is optional
//! on the wire (so server-side apply owns only what a manager sets); the effective values,
//! defaults included, come from the accessor methods and [`crate::defaults`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, LocalObjectReference, NodeAffinity, PersistentVolumeClaimSpec, PodAffinity, PodAntiAffinity,
    PodSecurityContext, ResourceRequirements, SeccompProfile, SecurityContext, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The desired state of a PostgreSQL cluster.
#[allow(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn repeats `type_` by design"
)]
#[serde_with::skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "postgresql.cnpg.io",
    version = "v1",
    kind = "Cluster",
    namespaced,
    status = "ClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Cluster defines a PostgreSQL cluster: its instances, configuration, storage and security",
    scale(spec_replicas_path = ".spec.instances", status_replicas_path = ".status.instances", label_selector_path = ".status.selector"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Instances", type_ = "integer", json_path = ".status.instances", description = "Number of instances"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyInstances", description = "Number of ready instances"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase", description = "Cluster current status"),
    printcolumn(name = "Primary", type_ = "string", json_path = ".status.currentPrimary", description = "Primary pod"),
    validation = Rule::new("!(has(self.spec.imageName) && has(self.spec.imageCatalogRef))").message("imageName and imageCatalogRef are mutually exclusive"),
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    pub description: Option<String>,
    /// Labels and annotations every object of the cluster inherits.
    pub inherited_metadata: Option<EmbeddedMetadata>,
    /// The PostgreSQL image, `repository:tag` or by digest. Exclusive with `imageCatalogRef`.
    pub image_name: Option<String>,
    /// A major of an (Cluster)ImageCatalog. Exclusive with `imageName`.
    pub image_catalog_ref: Option<ImageCatalogRef>,
    pub image_pull_policy: Option<String>,
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    pub scheduler_name: Option<String>,
    /// UID the PostgreSQL processes run as [26].
    #[serde(rename = "postgresUID")]
    pub postgres_uid: Option<i64>,
    /// GID the PostgreSQL processes run as [26].
    #[serde(rename = "postgresGID")]
    pub postgres_gid: Option<i64>,
    /// Number of instances [1].
    #[schemars(range(min = 1))]
    pub instances: Option<i32>,
    pub min_sync_replicas: Option<i32>,
    pub max_sync_replicas: Option<i32>,
    pub postgresql: Option<PostgresConfiguration>,
    pub replication_slots: Option<ReplicationSlots>,
    pub bootstrap: Option<Bootstrap>,
    pub superuser_secret: Option<LocalObjectReference>,
    /// Manage the `postgres` password from a Secret [false].
    pub enable_superuser_access: Option<bool>,
    pub certificates: Option<CertificatesConfiguration>,
    pub storage: Option<StorageConfiguration>,
    pub wal_storage: Option<StorageConfiguration>,
    pub service_account_template: Option<ServiceAccountTemplate>,
    /// Seconds an instance may take to start [3600].
    pub start_delay: Option<i32>,
    /// Seconds an instance may take to stop [1800].
    pub stop_delay: Option<i32>,
    /// Seconds of smart shutdown before a fast one [180].
    pub smart_shutdown_timeout: Option<i32>,
    /// Seconds a former primary may take to shut down during a switchover [3600].
    pub switchover_delay: Option<i32>,
    /// Seconds to wait before failing over from an unhealthy primary [0].
    pub failover_delay: Option<i32>,
    pub liveness_probe_timeout: Option<i32>,
    pub affinity: Option<AffinityConfiguration>,
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    pub resources: Option<ResourceRequirements>,
    pub ephemeral_volumes_size_limit: Option<EphemeralVolumesSizeLimit>,
    pub priority_class_name: Option<String>,
    /// `unsupervised` [default] or `supervised`.
    pub primary_update_strategy: Option<String>,
    /// `restart` [default] or `switchover`.
    pub primary_update_method: Option<String>,
    pub backup: Option<BackupConfiguration>,
    pub node_maintenance_window: Option<NodeMaintenanceWindow>,
    pub monitoring: Option<MonitoringConfiguration>,
    pub external_clusters: Option<Vec<ExternalCluster>>,
    /// `error`, `warning`, `info` [default], `debug` or `trace`.
    pub log_level: Option<String>,
    pub env: Option<Vec<EnvVar>>,
    pub env_from: Option<Vec<EnvFromSource>>,
    pub managed: Option<ManagedConfiguration>,
    /// Seccomp profile of every container [RuntimeDefault].
    pub seccomp_profile: Option<SeccompProfile>,
    pub pod_security_context: Option<PodSecurityContext>,
    pub security_context: Option<SecurityContext>,
    /// Create PodDisruptionBudgets [true].
    #[serde(rename = "enablePDB")]
    pub enable_pdb: Option<bool>,
    #[x_kube(validation = Rule::new("self == oldSelf").message("serviceAccountName is immutable"))]
    pub service_account_name: Option<String>,
}

/// Labels and annotations to copy.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct EmbeddedMetadata {
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A reference to a major of an image catalog.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.kind == 'ImageCatalog' || self.kind == 'ClusterImageCatalog'").message("only image catalogs can be referenced"))]
#[x_kube(validation = Rule::new("self.apiGroup == 'postgresql.cnpg.io'").message("only postgresql.cnpg.io catalogs can be referenced"))]
pub struct ImageCatalogRef {
    pub api_group: String,
    pub kind: String,
    pub name: String,
    pub major: i32,
}

/// PostgreSQL configuration.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresConfiguration {
    pub parameters: Option<BTreeMap<String, String>>,
    /// pg_hba.conf lines, placed after the operator's fixed rules and before the catch-all.
    #[serde(rename = "pg_hba")]
    pub pg_hba: Option<Vec<String>>,
    /// pg_ident.conf lines.
    #[serde(rename = "pg_ident")]
    pub pg_ident: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "shared_preload_libraries"
    )]
    pub shared_preload_libraries: Option<Vec<String>>,
    pub synchronous: Option<SynchronousReplicaConfiguration>,
    pub promotion_timeout: Option<i32>,
    pub enable_alter_system: Option<bool>,
}

/// Synchronous replication.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SynchronousReplicaConfiguration {
    /// `any` or `first`.
    pub method: String,
    pub number: i32,
    pub max_standby_names_from_cluster: Option<i32>,
    pub standby_names_pre: Option<Vec<String>>,
    pub standby_names_post: Option<Vec<String>>,
    /// `required` [default] or `preferred`.
    pub data_durability: Option<String>,
}

/// Replication slots.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationSlots {
    pub high_availability: Option<HighAvailabilitySlots>,
    /// Seconds between slot updates [30].
    pub update_interval: Option<i32>,
}

/// Replication slots for high availability.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HighAvailabilitySlots {
    /// [true]
    pub enabled: Option<bool>,
    /// [`_cnpg_`]
    pub slot_prefix: Option<String>,
}

/// How the cluster is created: exactly one method.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    pub initdb: Option<BootstrapInitDb>,
    pub recovery: Option<BootstrapRecovery>,
    #[serde(rename = "pg_basebackup")]
    pub pg_basebackup: Option<BootstrapPgBaseBackup>,
}

/// A new cluster from `initdb`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapInitDb {
    /// The application database [app].
    pub database: Option<String>,
    /// Its owner [= database].
    pub owner: Option<String>,
    /// A basic-auth Secret with the owner's credentials (generated when absent).
    pub secret: Option<LocalObjectReference>,
    pub data_checksums: Option<bool>,
    /// [UTF8]
    pub encoding: Option<String>,
    /// [C]
    pub locale_collate: Option<String>,
    /// [C]
    #[serde(rename = "localeCType")]
    pub locale_ctype: Option<String>,
    pub locale: Option<String>,
    pub locale_provider: Option<String>,
    pub icu_locale: Option<String>,
    /// WAL segment size in MB: a power of 2 from 1 to 1024.
    pub wal_segment_size: Option<i32>,
    #[serde(rename = "postInitSQL")]
    pub post_init_sql: Option<Vec<String>>,
    #[serde(rename = "postInitApplicationSQL")]
    pub post_init_application_sql: Option<Vec<String>>,
    #[serde(rename = "postInitTemplateSQL")]
    pub post_init_template_sql: Option<Vec<String>>,
}

/// A new cluster from a backup.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapRecovery {
    pub backup: Option<BackupSource>,
    pub source: Option<String>,
    pub recovery_target: Option<RecoveryTarget>,
    pub database: Option<String>,
    pub owner: Option<String>,
    pub secret: Option<LocalObjectReference>,
}

/// A Backup to recover from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSource {
    pub name: String,
}

/// Where point-in-time recovery stops.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryTarget {
    /// The base backup to start from (barman's backup ID); by default the latest one that
    /// ends before the target.
    #[serde(rename = "backupID")]
    pub backup_id: Option<String>,
    #[serde(rename = "targetTLI")]
    pub target_tli: Option<String>,
    #[serde(rename = "targetXID")]
    pub target_xid: Option<String>,
    pub target_name: Option<String>,
    #[serde(rename = "targetLSN")]
    pub target_lsn: Option<String>,
    pub target_time: Option<String>,
    pub target_immediate: Option<bool>,
    pub exclusive: Option<bool>,
}

/// A new cluster cloned from another with `pg_basebackup`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapPgBaseBackup {
    /// The name of an external cluster.
    pub source: String,
    pub database: Option<String>,
    pub owner: Option<String>,
    pub secret: Option<LocalObjectReference>,
}

/// Certificates the user provides instead of the generated ones.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesConfiguration {
    #[serde(rename = "serverCASecret")]
    pub server_ca_secret: Option<String>,
    #[serde(rename = "serverTLSSecret")]
    pub server_tls_secret: Option<String>,
    #[serde(rename = "replicationTLSSecret")]
    pub replication_tls_secret: Option<String>,
    #[serde(rename = "clientCASecret")]
    pub client_ca_secret: Option<String>,
    #[serde(rename = "serverAltDNSNames")]
    pub server_alt_dns_names: Option<Vec<String>>,
}

/// A volume for PGDATA or WAL.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageConfiguration {
    pub storage_class: Option<String>,
    /// A quantity such as `10Gi`.
    pub size: Option<String>,
    /// [true]
    pub resize_in_use_volumes: Option<bool>,
    pub pvc_template: Option<PersistentVolumeClaimSpec>,
}

/// Metadata for the generated ServiceAccount.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ServiceAccountTemplate {
    pub metadata: EmbeddedMetadata,
}

/// Scheduling.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AffinityConfiguration {
    /// [true]
    pub enable_pod_anti_affinity: Option<bool>,
    /// [kubernetes.io/hostname]
    pub topology_key: Option<String>,
    pub node_selector: Option<BTreeMap<String, String>>,
    pub node_affinity: Option<NodeAffinity>,
    pub tolerations: Option<Vec<Toleration>>,
    /// `preferred` [default] or `required`.
    pub pod_anti_affinity_type: Option<String>,
    pub additional_pod_anti_affinity: Option<PodAntiAffinity>,
    pub additional_pod_affinity: Option<PodAffinity>,
}

/// Size limits of the ephemeral volumes.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EphemeralVolumesSizeLimit {
    pub shm: Option<String>,
    pub temporary_data: Option<String>,
}

/// Backups.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfiguration {
    /// How long backups are kept: `<n>d`, `<n>w` or `<n>m`.
    pub retention_policy: Option<String>,
    /// `prefer-standby` [default] or `primary`.
    pub target: Option<String>,
    /// Volume snapshot backups (kept as given; not taken yet).
    #[serde(default)]
    #[schemars(schema_with = "crate::crds::preserved_object")]
    pub volume_snapshot: Option<serde_json::Value>,
    /// Where base backups and WAL go, in barman-cloud's layout (S3-compatible stores).
    #[serde(default)]
    #[schemars(schema_with = "crate::crds::preserved_object")]
    pub barman_object_store: Option<serde_json::Value>,
}

/// Node maintenance.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeMaintenanceWindow {
    /// [true]
    #[serde(rename = "reusePVC")]
    pub reuse_pvc: Option<bool>,
    /// [false]
    pub in_progress: Option<bool>,
}

/// Monitoring.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringConfiguration {
    /// [false]
    pub disable_default_queries: Option<bool>,
    pub custom_queries_config_map: Option<Vec<ConfigMapKeySelector>>,
    pub custom_queries_secret: Option<Vec<SecretKeySelector>>,
    /// [false]
    pub enable_pod_monitor: Option<bool>,
    pub tls: Option<MonitoringTls>,
}

/// A key of a ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ConfigMapKeySelector {
    pub name: String,
    pub key: String,
}

/// A key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SecretKeySelector {
    pub name: String,
    pub key: String,
}

/// TLS on the metrics port.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MonitoringTls {
    /// [false]
    pub enabled: Option<bool>,
}

/// Another PostgreSQL server, for bootstrap or replica clusters.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalCluster {
    pub name: String,
    pub connection_parameters: Option<BTreeMap<String, String>>,
    pub ssl_cert: Option<SecretKeySelector>,
    pub ssl_key: Option<SecretKeySelector>,
    pub ssl_root_cert: Option<SecretKeySelector>,
    pub password: Option<SecretKeySelector>,
    /// Its backups and WAL, for `bootstrap.recovery.source` (same shape as
    /// `backup.barmanObjectStore`; `serverName` defaults to this entry's name).
    #[serde(default)]
    #[schemars(schema_with = "crate::crds::preserved_object")]
    pub barman_object_store: Option<serde_json::Value>,
}

/// Objects the operator manages inside PostgreSQL and around it.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedConfiguration {
    pub roles: Option<Vec<RoleConfiguration>>,
}

/// A database role the operator keeps as declared.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleConfiguration {
    pub name: String,
    pub comment: Option<String>,
    /// `present` [default] or `absent`.
    pub ensure: Option<String>,
    pub password_secret: Option<LocalObjectReference>,
    /// [-1]
    pub connection_limit: Option<i64>,
    pub valid_until: Option<String>,
    pub in_roles: Option<Vec<String>>,
    /// [true]
    pub inherit: Option<bool>,
    pub disable_password: Option<bool>,
    pub superuser: Option<bool>,
    pub createdb: Option<bool>,
    pub createrole: Option<bool>,
    pub login: Option<bool>,
    pub replication: Option<bool>,
    pub bypassrls: Option<bool>,
}

/// The observed state of a cluster.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub instances: Option<i32>,
    pub ready_instances: Option<i32>,
    /// The label selector of the instance pods (for the scale subresource).
    pub selector: Option<String>,
    pub instances_status: Option<BTreeMap<String, Vec<String>>>,
    pub instance_names: Option<Vec<String>>,
    pub current_primary: Option<String>,
    pub target_primary: Option<String>,
    pub current_primary_timestamp: Option<String>,
    pub current_primary_failing_since_timestamp: Option<String>,
    pub target_primary_timestamp: Option<String>,
    #[serde(rename = "timelineID")]
    pub timeline_id: Option<i64>,
    pub phase: Option<String>,
    pub phase_reason: Option<String>,
    pub write_service: Option<String>,
    pub read_service: Option<String>,
    pub image: Option<String>,
    #[serde(rename = "pvcCount")]
    pub pvc_count: Option<i32>,
    pub job_count: Option<i32>,
    #[serde(rename = "healthyPVC")]
    pub healthy_pvc: Option<Vec<String>>,
    pub certificates: Option<CertificatesStatus>,
    pub secrets_resource_version: Option<BTreeMap<String, String>>,
    pub operator_certificate_fingerprint: Option<String>,
    #[serde(rename = "systemID")]
    pub system_id: Option<String>,
    pub conditions: Option<Vec<Condition>>,
}

/// The certificates in use and when they expire.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesStatus {
    #[serde(flatten)]
    pub configuration: CertificatesConfiguration,
    pub expirations: Option<BTreeMap<String, String>>,
}

impl ClusterSpec {
    pub fn instances(&self) -> i32 {
        self.instances.unwrap_or(1)
    }

    pub fn postgres_uid(&self) -> i64 {
        self.postgres_uid.unwrap_or(26)
    }

    pub fn postgres_gid(&self) -> i64 {
        self.postgres_gid.unwrap_or(26)
    }

    pub fn enable_superuser_access(&self) -> bool {
        self.enable_superuser_access.unwrap_or(false)
    }

    pub fn enable_pdb(&self) -> bool {
        self.enable_pdb.unwrap_or(true)
    }

    pub fn start_delay(&self) -> i32 {
        self.start_delay.unwrap_or(3600)
    }

    pub fn stop_delay(&self) -> i32 {
        self.stop_delay.unwrap_or(1800)
    }

    pub fn smart_shutdown_timeout(&self) -> i32 {
        self.smart_shutdown_timeout.unwrap_or(180)
    }

    pub fn switchover_delay(&self) -> i32 {
        self.switchover_delay.unwrap_or(3600)
    }

    pub fn failover_delay(&self) -> i32 {
        self.failover_delay.unwrap_or(0)
    }
}

impl StorageConfiguration {
    /// The requested size: `size`, else the `storage` request of `pvcTemplate`.
    pub fn requested(&self) -> Option<&str> {
        self.size.as_deref().or_else(|| {
            let requests = self.pvc_template.as_ref()?.resources.as_ref()?.requests.as_ref()?;
            requests.get("storage").map(|q| q.0.as_str())
        })
    }
}
