//! `Pooler`: PgBouncer in front of a cluster's `-rw` or `-ro` service.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DeploymentStrategy;
use k8s_openapi::api::core::v1::{LocalObjectReference, PodTemplateSpec};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The desired state of a connection pooler.
#[allow(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn repeats `type_` by design"
)]
#[serde_with::skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "postgresql.cnpg.io",
    version = "v1",
    kind = "Pooler",
    namespaced,
    status = "PoolerStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Pooler runs PgBouncer for a Cluster",
    scale(spec_replicas_path = ".spec.instances", status_replicas_path = ".status.instances"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster.name"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type")
)]
#[serde(rename_all = "camelCase")]
pub struct PoolerSpec {
    /// The cluster to pool connections to.
    #[x_kube(validation = Rule::new("self == oldSelf").message("cluster is immutable"))]
    pub cluster: LocalObjectReference,
    /// `rw` [default], `ro` or `r`.
    #[serde(rename = "type")]
    pub pooler_type: Option<String>,
    /// Number of PgBouncer pods [1].
    pub instances: Option<i32>,
    pub template: Option<PodTemplateSpec>,
    pub pgbouncer: PgBouncerSpec,
    pub deployment_strategy: Option<DeploymentStrategy>,
    pub monitoring: Option<PoolerMonitoring>,
    pub service_account_name: Option<String>,
}

/// PgBouncer's configuration.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PgBouncerSpec {
    /// `session` [default] or `transaction`.
    pub pool_mode: Option<String>,
    #[serde(rename = "serverTLSSecret")]
    pub server_tls_secret: Option<LocalObjectReference>,
    #[serde(rename = "serverCASecret")]
    pub server_ca_secret: Option<LocalObjectReference>,
    #[serde(rename = "clientCASecret")]
    pub client_ca_secret: Option<LocalObjectReference>,
    #[serde(rename = "clientTLSSecret")]
    pub client_tls_secret: Option<LocalObjectReference>,
    pub auth_query_secret: Option<LocalObjectReference>,
    pub auth_query: Option<String>,
    /// PgBouncer parameters (only those PgBouncer allows to be set this way).
    pub parameters: Option<BTreeMap<String, String>>,
    #[serde(rename = "pg_hba")]
    pub pg_hba: Option<Vec<String>>,
    /// [false]
    pub paused: Option<bool>,
}

/// Pooler monitoring.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolerMonitoring {
    pub enable_pod_monitor: Option<bool>,
}

/// The observed state of a pooler.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolerStatus {
    pub instances: Option<i32>,
    /// `active`, `paused`, `inactive` or `failed`.
    pub phase: Option<String>,
    pub phase_reason: Option<String>,
    pub image: Option<String>,
}
