//! The CustomResourceDefinitions of every kind, as the YAML files under `deploy/crds/`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt as _;

use crate::{Backup, Cluster, ClusterImageCatalog, ImageCatalog, Pooler, ScheduledBackup};

/// Rendering a CRD failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to render the CRD of {0}")]
pub struct Error(String, #[source] serde_saphyr::ser::Error);

/// Every CRD, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        Backup::crd(),
        Cluster::crd(),
        ClusterImageCatalog::crd(),
        ImageCatalog::crd(),
        Pooler::crd(),
        ScheduledBackup::crd(),
    ]
}

/// `(file name, YAML)` of every CRD: `postgresql.cnpg.io_<plural>.yaml`.
pub fn files() -> Result<Vec<(String, String)>, Error> {
    all()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let plural = name.split('.').next().unwrap_or_default().to_owned();
            let yaml = serde_saphyr::to_string(&crd).map_err(|e| Error(name.clone(), e))?;
            Ok((format!("postgresql.cnpg.io_{plural}.yaml"), yaml))
        })
        .collect()
}

/// The schema of a field the API keeps as free-form JSON: an object whose fields the API
/// server keeps as they are (a structural schema needs a type; validation reads the fields).
pub fn preserved_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
