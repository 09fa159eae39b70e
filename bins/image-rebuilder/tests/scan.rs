//! `image-rebuilder scan` on layouts we did not build: a root image with a shell fails with
//! findings naming both; exit codes tell scripts the verdict.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::collections::BTreeMap;
use std::process::Command;

use cnpg_imaging::image::PlatformImage;
use cnpg_imaging::layer;
use cnpg_imaging::layout::{Built, Target, write};
use cnpg_imaging::oci::{
    Blob, Descriptor, ImageConfig, MEDIA_CONFIG, MEDIA_INDEX, MEDIA_LAYER_GZIP, MEDIA_MANIFEST, Manifest, RootFs,
    RunConfig,
};
use cnpg_imaging::tree::{Node, Tree};

/// An image with one layer holding `tree`, running as `user`.
fn image(name: &str, tree: &Tree, user: &str) -> Built {
    let layer = layer::write(tree, 0, "only").unwrap();
    let config = ImageConfig {
        created: "1970-01-01T00:00:00Z".into(),
        architecture: "amd64".into(),
        variant: None,
        os: "linux".into(),
        config: RunConfig {
            user: user.into(),
            ..RunConfig::default()
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.diff_id.clone()],
        },
        history: vec![],
    };
    let config_blob = Blob::json(&config, MEDIA_CONFIG).unwrap();
    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_MANIFEST.into(),
        artifact_type: None,
        config: config_blob.descriptor.clone(),
        layers: vec![Descriptor {
            media_type: MEDIA_LAYER_GZIP.into(),
            artifact_type: None,
            digest: layer.digest.clone(),
            size: layer.blob.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        }],
        subject: None,
        annotations: BTreeMap::new(),
    };
    let manifest = Blob::json(&manifest, MEDIA_MANIFEST).unwrap();
    let platform = PlatformImage {
        architecture: "amd64".into(),
        layers: vec![layer],
        config: config_blob,
        manifest,
        image_config: config,
    };
    let index = cnpg_imaging::image::index(std::slice::from_ref(&platform), BTreeMap::new()).unwrap();
    assert_eq!(index.descriptor.media_type, MEDIA_INDEX);
    Built {
        name: name.into(),
        tag: "test".into(),
        index,
        platforms: vec![platform],
    }
}

fn scan(target: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_image-rebuilder"))
        .args(["scan", target])
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn a_root_image_with_bash_fails_and_a_clean_one_passes_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = Tree::default();
    bad.insert("usr/bin/bash", Node::file(b"\x7fELF".to_vec(), 0o755, 0));
    let mut good = Tree::default();
    good.insert("etc/hostname", Node::file(b"x\n".to_vec(), 0o644, 0));

    let layout = dir.path().join("oci");
    write(
        &Target::Oci(layout.clone()),
        &[image("bad", &bad, "0"), image("good", &good, "65532:65532")],
        &[],
    )
    .unwrap();
    let (code, out) = scan(&format!("oci:{}", layout.display()));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("bad@amd64: fail") && out.contains("good@amd64: pass"),
        "{out}"
    );
    assert!(
        out.contains("CIS-DI-0001") && out.contains("CNPG-DI-0002") && out.contains("/usr/bin/bash"),
        "{out}"
    );

    let archive = dir.path().join("good.tar");
    write(
        &Target::DockerArchive(archive.clone()),
        &[image("good", &good, "65532:65532")],
        &[],
    )
    .unwrap();
    let (code, out) = scan(&format!("docker-archive:{}", archive.display()));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("cnpg-rs/good:test: pass"), "{out}");
}

#[test]
fn an_unreadable_target_is_an_error_naming_it() {
    let (code, _) = scan("oci:/nonexistent/layout");
    assert_eq!(code, Some(1));
    let out = Command::new(env!("CARGO_BIN_EXE_image-rebuilder"))
        .args(["scan", "tarball:x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad target is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("use oci:DIR or docker-archive:FILE"));
}
