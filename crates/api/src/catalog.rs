//! `ImageCatalog` (namespaced) and `ClusterImageCatalog` (cluster-scoped): PostgreSQL majors
//! and the images that run them.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The images of a catalog.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogSpec {
    pub images: Vec<CatalogImage>,
}

/// One major and its image.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct CatalogImage {
    #[schemars(range(min = 10))]
    pub major: i32,
    pub image: String,
}

/// Majors and images, for the clusters of one namespace.
#[allow(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn repeats `type_` by design"
)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "postgresql.cnpg.io",
    version = "v1",
    kind = "ImageCatalog",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    doc = "ImageCatalog maps PostgreSQL majors to images for the clusters of one namespace",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
pub struct ImageCatalogSpec {
    #[serde(flatten)]
    pub catalog: CatalogSpec,
}

/// Majors and images, for every namespace.
#[allow(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn repeats `type_` by design"
)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "postgresql.cnpg.io",
    version = "v1",
    kind = "ClusterImageCatalog",
    derive = "PartialEq",
    derive = "Default",
    doc = "ClusterImageCatalog maps PostgreSQL majors to images for every namespace",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
pub struct ClusterImageCatalogSpec {
    #[serde(flatten)]
    pub catalog: CatalogSpec,
}
