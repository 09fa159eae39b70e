//! The kinds the stand-in serves: the built-in ones our components use, and custom resources
//! registered from their CustomResourceDefinitions.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Reads a built-in object as its k8s-openapi type and writes it back: a type error is refused,
/// unknown fields are dropped (the real server prunes them too).
pub(crate) type Normalize = fn(&Value) -> Result<Value, String>;

/// One served resource.
#[derive(Clone)]
pub(crate) struct Resource {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    pub status: bool,
    pub normalize: Option<Normalize>,
    /// The openAPIV3Schema of a custom resource, for pruning and validation.
    pub schema: Option<Value>,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `clusters.postgresql.cnpg.io`, `pods`: how messages name the resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Cluster.postgresql.cnpg.io`, `Pod`: how `Invalid` messages name the kind.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

fn normalize<T: DeserializeOwned + Serialize>(value: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

macro_rules! builtin {
    ($group:expr, $version:expr, $plural:expr, $kind:expr, $namespaced:expr, $status:expr, $ty:ty) => {
        Resource {
            group: $group.into(),
            version: $version.into(),
            plural: $plural.into(),
            kind: $kind.into(),
            namespaced: $namespaced,
            status: $status,
            normalize: Some(normalize::<$ty>),
            schema: None,
        }
    };
}

/// The built-in kinds, as the real server serves them (scope, status subresource).
pub(crate) fn builtin() -> Vec<Resource> {
    use k8s_openapi::api::{admissionregistration, apps, batch, coordination, core, events, networking, policy, rbac};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
    vec![
        builtin!("", "v1", "namespaces", "Namespace", false, true, core::v1::Namespace),
        builtin!("", "v1", "nodes", "Node", false, true, core::v1::Node),
        builtin!("", "v1", "configmaps", "ConfigMap", true, false, core::v1::ConfigMap),
        builtin!("", "v1", "secrets", "Secret", true, false, core::v1::Secret),
        builtin!("", "v1", "services", "Service", true, true, core::v1::Service),
        builtin!(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            false,
            core::v1::ServiceAccount
        ),
        builtin!("", "v1", "pods", "Pod", true, true, core::v1::Pod),
        builtin!(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
            true,
            core::v1::PersistentVolumeClaim
        ),
        builtin!("", "v1", "events", "Event", true, false, core::v1::Event),
        builtin!(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            true,
            apps::v1::Deployment
        ),
        builtin!("batch", "v1", "jobs", "Job", true, true, batch::v1::Job),
        builtin!("batch", "v1", "cronjobs", "CronJob", true, true, batch::v1::CronJob),
        builtin!(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
            true,
            policy::v1::PodDisruptionBudget
        ),
        builtin!(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            false,
            coordination::v1::Lease
        ),
        builtin!("events.k8s.io", "v1", "events", "Event", true, false, events::v1::Event),
        builtin!(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            true,
            false,
            networking::v1::NetworkPolicy
        ),
        builtin!(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            false,
            rbac::v1::Role
        ),
        builtin!(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            false,
            rbac::v1::RoleBinding
        ),
        builtin!(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            false,
            rbac::v1::ClusterRole
        ),
        builtin!(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            false,
            rbac::v1::ClusterRoleBinding
        ),
        builtin!(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            false,
            false,
            admissionregistration::v1::MutatingWebhookConfiguration
        ),
        builtin!(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            false,
            false,
            admissionregistration::v1::ValidatingWebhookConfiguration
        ),
        builtin!(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            true,
            apiextensions::v1::CustomResourceDefinition
        ),
    ]
}

/// The served versions of a CRD, as resources.
pub(crate) fn from_crd(crd: &CustomResourceDefinition) -> Vec<Resource> {
    let spec = &crd.spec;
    spec.versions
        .iter()
        .filter(|v| v.served)
        .map(|v| Resource {
            group: spec.group.clone(),
            version: v.name.clone(),
            plural: spec.names.plural.clone(),
            kind: spec.names.kind.clone(),
            namespaced: spec.scope == "Namespaced",
            status: v.subresources.as_ref().is_some_and(|s| s.status.is_some()),
            normalize: None,
            schema: v
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .and_then(|s| serde_json::to_value(s).ok()),
        })
        .collect()
}
