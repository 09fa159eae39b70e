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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Labels and annotations every object of the cluster inherits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_metadata: Option<EmbeddedMetadata>,
    /// The PostgreSQL image, `repository:tag` or by digest. Exclusive with `imageCatalogRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// A major of an (Cluster)ImageCatalog. Exclusive with `imageName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_catalog_ref: Option<ImageCatalogRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<String>,
    /// UID the PostgreSQL processes run as [26].
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "postgresUID")]
    pub postgres_uid: Option<i64>,
    /// GID the PostgreSQL processes run as [26].
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "postgresGID")]
    pub postgres_gid: Option<i64>,
    /// Number of instances [1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub instances: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_sync_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sync_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<PostgresConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_slots: Option<ReplicationSlots>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Bootstrap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superuser_secret: Option<LocalObjectReference>,
    /// Manage the `postgres` password from a Secret [false].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_superuser_access: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatesConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_storage: Option<StorageConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_template: Option<ServiceAccountTemplate>,
    /// Seconds an instance may take to start [3600].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_delay: Option<i32>,
    /// Seconds an instance may take to stop [1800].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_delay: Option<i32>,
    /// Seconds of smart shutdown before a fast one [180].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart_shutdown_timeout: Option<i32>,
    /// Seconds a former primary may take to shut down during a switchover [3600].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switchover_delay: Option<i32>,
    /// Seconds to wait before failing over from an unhealthy primary [0].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_delay: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe_timeout: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<AffinityConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_volumes_size_limit: Option<EphemeralVolumesSizeLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// `unsupervised` [default] or `supervised`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_update_strategy: Option<String>,
    /// `restart` [default] or `switchover`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_update_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_maintenance_window: Option<NodeMaintenanceWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_clusters: Option<Vec<ExternalCluster>>,
    /// `error`, `warning`, `info` [default], `debug` or `trace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Vec<EnvFromSource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedConfiguration>,
    /// Seccomp profile of every container [RuntimeDefault].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Create PodDisruptionBudgets [true].
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "enablePDB")]
    pub enable_pdb: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("serviceAccountName is immutable"))]
    pub service_account_name: Option<String>,
}

/// Labels and annotations to copy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct EmbeddedMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, String>>,
    /// pg_hba.conf lines, placed after the operator's fixed rules and before the catch-all.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "pg_hba")]
    pub pg_hba: Option<Vec<String>>,
    /// pg_ident.conf lines.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "pg_ident")]
    pub pg_ident: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "shared_preload_libraries"
    )]
    pub shared_preload_libraries: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronous: Option<SynchronousReplicaConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_timeout: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_alter_system: Option<bool>,
}

/// Synchronous replication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SynchronousReplicaConfiguration {
    /// `any` or `first`.
    pub method: String,
    pub number: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_standby_names_from_cluster: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_names_pre: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_names_post: Option<Vec<String>>,
    /// `required` [default] or `preferred`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_durability: Option<String>,
}

/// Replication slots.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationSlots {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_availability: Option<HighAvailabilitySlots>,
    /// Seconds between slot updates [30].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_interval: Option<i32>,
}

/// Replication slots for high availability.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HighAvailabilitySlots {
    /// [true]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// [`_cnpg_`]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_prefix: Option<String>,
}

/// How the cluster is created: exactly one method.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initdb: Option<BootstrapInitDb>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<BootstrapRecovery>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "pg_basebackup")]
    pub pg_basebackup: Option<BootstrapPgBaseBackup>,
}

/// A new cluster from `initdb`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapInitDb {
    /// The application database [app].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Its owner [= database].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// A basic-auth Secret with the owner's credentials (generated when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_checksums: Option<bool>,
    /// [UTF8]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// [C]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale_collate: Option<String>,
    /// [C]
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "localeCType")]
    pub locale_ctype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icu_locale: Option<String>,
    /// WAL segment size in MB: a power of 2 from 1 to 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_segment_size: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "postInitSQL")]
    pub post_init_sql: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "postInitApplicationSQL")]
    pub post_init_application_sql: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "postInitTemplateSQL")]
    pub post_init_template_sql: Option<Vec<String>>,
}

/// A new cluster from a backup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapRecovery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_target: Option<RecoveryTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<LocalObjectReference>,
}

/// A Backup to recover from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSource {
    pub name: String,
}

/// Where point-in-time recovery stops.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryTarget {
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "targetTLI")]
    pub target_tli: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "targetXID")]
    pub target_xid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "targetLSN")]
    pub target_lsn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_immediate: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<bool>,
}

/// A new cluster cloned from another with `pg_basebackup`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapPgBaseBackup {
    /// The name of an external cluster.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<LocalObjectReference>,
}

/// Certificates the user provides instead of the generated ones.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "serverCASecret")]
    pub server_ca_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "serverTLSSecret")]
    pub server_tls_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "replicationTLSSecret")]
    pub replication_tls_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "clientCASecret")]
    pub client_ca_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "serverAltDNSNames")]
    pub server_alt_dns_names: Option<Vec<String>>,
}

/// A volume for PGDATA or WAL.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// A quantity such as `10Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// [true]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize_in_use_volumes: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc_template: Option<PersistentVolumeClaimSpec>,
}

/// Metadata for the generated ServiceAccount.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ServiceAccountTemplate {
    pub metadata: EmbeddedMetadata,
}

/// Scheduling.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AffinityConfiguration {
    /// [true]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_pod_anti_affinity: Option<bool>,
    /// [kubernetes.io/hostname]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// `preferred` [default] or `required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_anti_affinity_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_pod_anti_affinity: Option<PodAntiAffinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_pod_affinity: Option<PodAffinity>,
}

/// Size limits of the ephemeral volumes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EphemeralVolumesSizeLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_data: Option<String>,
}

/// Backups.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfiguration {
    /// How long backups are kept: `<n>d`, `<n>w` or `<n>m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<String>,
    /// `prefer-standby` [default] or `primary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barman_object_store: Option<serde_json::Value>,
}

/// Node maintenance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeMaintenanceWindow {
    /// [true]
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "reusePVC")]
    pub reuse_pvc: Option<bool>,
    /// [false]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<bool>,
}

/// Monitoring.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringConfiguration {
    /// [false]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_default_queries: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_queries_config_map: Option<Vec<ConfigMapKeySelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_queries_secret: Option<Vec<SecretKeySelector>>,
    /// [false]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_pod_monitor: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MonitoringTls {
    /// [false]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Another PostgreSQL server, for bootstrap or replica clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalCluster {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_parameters: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_cert: Option<SecretKeySelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_key: Option<SecretKeySelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_root_cert: Option<SecretKeySelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretKeySelector>,
}

/// Objects the operator manages inside PostgreSQL and around it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<RoleConfiguration>>,
}

/// A database role the operator keeps as declared.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleConfiguration {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `present` [default] or `absent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<LocalObjectReference>,
    /// [-1]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_roles: Option<Vec<String>>,
    /// [true]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherit: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_password: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superuser: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub createdb: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub createrole: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypassrls: Option<bool>,
}

/// The observed state of a cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_instances: Option<i32>,
    /// The label selector of the instance pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances_status: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_primary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_primary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_primary_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_primary_failing_since_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_primary_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "timelineID")]
    pub timeline_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "pvcCount")]
    pub pvc_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "healthyPVC")]
    pub healthy_pvc: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatesStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_resource_version: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_certificate_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "systemID")]
    pub system_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// The certificates in use and when they expire.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesStatus {
    #[serde(flatten)]
    pub configuration: CertificatesConfiguration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
