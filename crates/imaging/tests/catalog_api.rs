//! The ClusterImageCatalog the rebuilder writes is one the API accepts: it reads as our API type
//! without losing a field, passes the catalog validation, and a server with our CRDs stores it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use cnpg_imaging::catalog::{self, CatalogImage, ClusterImageCatalog};
use cnpg_testkit::apiserver::{ApiServer, Options};
use kube::api::{Api, Patch, PatchParams};

#[tokio::test]
async fn the_written_catalog_is_a_valid_cluster_image_catalog() {
    let digest = |n: u32| format!("sha256:{}", format!("{n:x}").repeat(64).get(..64).unwrap().to_owned());
    let images = [18, 15, 17]
        .map(|major| CatalogImage {
            major,
            image: format!("cnpg-rs/postgresql-minimal-trixie:{major}@{}", digest(major)),
        })
        .to_vec();
    let text = catalog::render(&[ClusterImageCatalog::new(
        "minimal", "trixie", "cnpg-rs", "20261127", images,
    )])
    .unwrap();
    let document = text.trim_start_matches("---\n");

    let value: serde_json::Value = serde_saphyr::from_str(document).unwrap();
    let typed: cnpg_api::ClusterImageCatalog = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        value,
        "every field is known to the API type"
    );
    assert_eq!(cnpg_api::validation::catalog(&typed.spec.catalog), Vec::new());
    assert_eq!(
        typed.spec.catalog.images.iter().map(|i| i.major).collect::<Vec<_>>(),
        [15, 17, 18]
    );

    let server = ApiServer::start_with(Options {
        crds: cnpg_api::crds::all(),
        ..Options::default()
    })
    .unwrap();
    let api: Api<cnpg_api::ClusterImageCatalog> = Api::all(server.client().unwrap());
    let stored = api
        .patch(
            "postgresql-minimal-trixie",
            &PatchParams::apply("image-rebuilder"),
            &Patch::Apply(&value),
        )
        .await
        .unwrap();
    assert_eq!(stored.spec, typed.spec);
    assert_eq!(stored.metadata.labels.unwrap()["images.cnpg.io/type"], "minimal");
}
