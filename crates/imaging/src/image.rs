//! From an assembled filesystem to an image: layers, config and manifest for one platform,
//! and the index gathering the platforms of one image.

use std::collections::BTreeMap;

use crate::assemble::Assembled;
use crate::layer::{self, Layer};
use crate::lock::Lock;
use crate::oci::{
    ANNOTATION_PREFIX, Blob, History, ImageConfig, Index, LABEL_SHELL, MEDIA_CONFIG, MEDIA_INDEX, MEDIA_LAYER_GZIP,
    MEDIA_MANIFEST, Manifest, Platform, RootFs, RunConfig, rfc3339,
};

/// Index annotation holding the image's build key (see `pipeline::build_key`).
pub const ANNOTATION_BUILD_KEY: &str = "io.cnpg-rs.image.build-key";

/// Building an image failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Layer(#[from] layer::Error),
    #[error("failed to serialize an image document")]
    Json(#[from] serde_json::Error),
}

/// One image for one platform.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    pub architecture: String,
    pub layers: Vec<Layer>,
    pub config: Blob,
    pub manifest: Blob,
    /// The config as a value, for the scanner.
    pub image_config: ImageConfig,
}

impl PlatformImage {
    pub fn compressed_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.blob.len() as u64).sum::<u64>() + self.config.descriptor.size
    }

    pub fn uncompressed_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.uncompressed_size).sum()
    }
}

/// The OCI annotations of an image (`org.opencontainers.image.*`).
pub fn annotations(lock: &Lock, created: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = lock
        .config
        .annotations
        .iter()
        .map(|(k, v)| (format!("{ANNOTATION_PREFIX}{k}"), v.clone()))
        .collect();
    out.insert(format!("{ANNOTATION_PREFIX}created"), created.to_owned());
    out
}

/// Writes the layers of `assembled` and the config and manifest around them.
pub fn build(lock: &Lock, assembled: &Assembled) -> Result<PlatformImage, Error> {
    let layers = layer::write_all(&assembled.tree, &assembled.layers)?;
    let created = rfc3339(assembled.epoch);
    let platform = Platform::from_debian(&lock.architecture);
    let annotations = annotations(lock, &created);
    let mut labels = annotations.clone();
    if let Some(shell) = &lock.config.shell {
        labels.insert(LABEL_SHELL.to_owned(), format!("{} ({})", shell.binary, shell.reason));
    }
    let image_config = ImageConfig {
        created: created.clone(),
        architecture: platform.architecture.clone(),
        variant: platform.variant.clone(),
        os: platform.os.clone(),
        config: RunConfig {
            user: lock.config.user.clone(),
            env: lock.config.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            entrypoint: (!lock.config.entrypoint.is_empty()).then(|| lock.config.entrypoint.clone()),
            labels,
            ..RunConfig::default()
        },
        rootfs: RootFs {
            kind: "layers".to_owned(),
            diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
        },
        history: layers
            .iter()
            .map(|l| History {
                created: created.clone(),
                created_by: format!("cnpg-rs image-rebuilder: layer {}", l.name),
                comment: None,
            })
            .collect(),
    };
    let config = Blob::json(&image_config, MEDIA_CONFIG)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_MANIFEST.to_owned(),
        artifact_type: None,
        config: config.descriptor.clone(),
        layers: layers
            .iter()
            .map(|l| crate::oci::Descriptor {
                media_type: MEDIA_LAYER_GZIP.to_owned(),
                artifact_type: None,
                digest: l.digest.clone(),
                size: l.blob.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            })
            .collect(),
        subject: None,
        annotations,
    };
    let manifest = Blob::json(&manifest, MEDIA_MANIFEST)?;
    Ok(PlatformImage {
        architecture: lock.architecture.clone(),
        layers,
        config,
        manifest,
        image_config,
    })
}

/// The index of one image over its platforms (in the order given).
pub fn index(platforms: &[PlatformImage], annotations: BTreeMap<String, String>) -> Result<Blob, Error> {
    let manifests = platforms
        .iter()
        .map(|p| {
            let mut d = p.manifest.descriptor.clone();
            d.platform = Some(Platform::from_debian(&p.architecture));
            d
        })
        .collect();
    let index = Index {
        schema_version: 2,
        media_type: Some(MEDIA_INDEX.to_owned()),
        manifests,
        annotations,
    };
    Ok(Blob::json(&index, MEDIA_INDEX)?)
}
