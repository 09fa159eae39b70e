//! Image sinks and sources on disk: the OCI image layout directory (the default output) and
//! the docker archive (`docker load`). Both are written only when everything else succeeded,
//! and index files are replaced atomically.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::compress::Format;
use crate::deb;
use crate::image::PlatformImage;
use crate::oci::{ANNOTATION_REF_NAME, Blob, Descriptor, ImageConfig, Index, MEDIA_INDEX, MEDIA_MANIFEST, Manifest};
use crate::sbom::Artifact;
use crate::tree::{Kind, Node, Tree};

/// Reading or writing images on disk failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to write {}", .0.display())]
    Write(PathBuf, #[source] std::io::Error),
    #[error("failed to read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{path}: {1}", path = .0.display())]
    Invalid(PathBuf, String),
    #[error("{0}: unknown output; use oci:DIR or docker-archive:FILE")]
    Target(String),
    #[error("layer {layer}")]
    Layer { layer: String, source: deb::Error },
}

/// Where images go to or come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Oci(PathBuf),
    DockerArchive(PathBuf),
}

impl std::str::FromStr for Target {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.split_once(':') {
            Some(("oci", dir)) if !dir.is_empty() => Ok(Self::Oci(dir.into())),
            Some(("docker-archive", file)) if !file.is_empty() => Ok(Self::DockerArchive(file.into())),
            _ => Err(Error::Target(s.to_owned())),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Oci(dir) => write!(f, "oci:{}", dir.display()),
            Self::DockerArchive(file) => write!(f, "docker-archive:{}", file.display()),
        }
    }
}

/// A finished image: its index over platforms, and a tag for docker archives.
#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    pub tag: String,
    pub index: Blob,
    pub platforms: Vec<PlatformImage>,
}

/// Annotation on an SBOM entry of a layout's index naming the image it describes.
pub const ANNOTATION_SBOM_OF: &str = "io.cnpg-rs.sbom.of";

/// Writes `images` to `target`; an OCI layout also gets the SBOM `artifacts` (referrers of
/// the images' manifests).
pub fn write(target: &Target, images: &[Built], artifacts: &[&Artifact]) -> Result<(), Error> {
    match target {
        Target::Oci(dir) => write_oci(dir, images, artifacts),
        Target::DockerArchive(file) => write_docker_archive(file, images),
    }
}

fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let werr = |e| Error::Write(path.to_owned(), e);
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(werr)?;
    temp.write_all(bytes).map_err(werr)?;
    temp.as_file().sync_all().map_err(werr)?;
    temp.persist(path).map_err(|e| Error::Write(path.to_owned(), e.error))?;
    Ok(())
}

fn blob_path(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    root.join("blobs").join("sha256").join(hex)
}

/// Writes an OCI image layout, keeping the other images a previous run left in it.
pub fn write_oci(dir: &Path, images: &[Built], artifacts: &[&Artifact]) -> Result<(), Error> {
    std::fs::create_dir_all(dir.join("blobs/sha256")).map_err(|e| Error::Write(dir.to_owned(), e))?;
    let put = |digest: &str, bytes: &[u8]| -> Result<(), Error> {
        let path = blob_path(dir, digest);
        if path.metadata().is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok(());
        }
        write_file_atomically(&path, bytes)
    };
    for image in images {
        for platform in &image.platforms {
            for layer in &platform.layers {
                put(&layer.digest, &layer.blob)?;
            }
            put(&platform.config.descriptor.digest, &platform.config.bytes)?;
            put(&platform.manifest.descriptor.digest, &platform.manifest.bytes)?;
        }
        put(&image.index.descriptor.digest, &image.index.bytes)?;
    }
    for artifact in artifacts {
        for blob in [&artifact.empty, &artifact.spdx, &artifact.lock, &artifact.manifest] {
            put(&blob.descriptor.digest, &blob.bytes)?;
        }
    }
    write_file_atomically(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;

    let index_path = dir.join("index.json");
    let mut entries: BTreeMap<String, Descriptor> = BTreeMap::new();
    if let Ok(text) = std::fs::read(&index_path) {
        let existing: Index =
            serde_json::from_slice(&text).map_err(|e| Error::Invalid(index_path.clone(), e.to_string()))?;
        for d in existing.manifests {
            let name = d
                .annotations
                .get(ANNOTATION_REF_NAME)
                .cloned()
                .unwrap_or_else(|| d.digest.clone());
            entries.insert(name, d);
        }
    }
    let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
    // SBOMs of images being replaced go; the new ones come in below.
    entries.retain(|_, d| {
        d.annotations
            .get(ANNOTATION_SBOM_OF)
            .is_none_or(|of| !names.contains(&of.as_str()))
    });
    for image in images {
        let mut d = image.index.descriptor.clone();
        d.annotations.insert(ANNOTATION_REF_NAME.to_owned(), image.name.clone());
        entries.insert(image.name.clone(), d);
        for platform in &image.platforms {
            let subject = &platform.manifest.descriptor.digest;
            for artifact in artifacts.iter().filter(|a| a.subject() == Some(subject.as_str())) {
                let mut d = artifact.manifest.descriptor.clone();
                d.artifact_type = Some(crate::oci::MEDIA_SPDX.to_owned());
                d.annotations.insert(ANNOTATION_SBOM_OF.to_owned(), image.name.clone());
                entries.insert(d.digest.clone(), d);
            }
        }
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(MEDIA_INDEX.to_owned()),
        manifests: entries.into_values().collect(),
        annotations: BTreeMap::new(),
    };
    let bytes = serde_json::to_vec_pretty(&index).map_err(|e| Error::Invalid(index_path.clone(), e.to_string()))?;
    write_file_atomically(&index_path, &bytes)
}

/// Writes a docker archive of each image's first platform, tagged `cnpg-rs/<name>:<tag>`.
pub fn write_docker_archive(file: &Path, images: &[Built]) -> Result<(), Error> {
    let werr = |e| Error::Write(file.to_owned(), e);
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(werr)?;
    let temp = tempfile::NamedTempFile::new_in(dir).map_err(werr)?;
    let mut builder = tar::Builder::new(temp);
    let mut written = std::collections::BTreeSet::new();
    let mut manifest = Vec::new();
    let mut add = |builder: &mut tar::Builder<tempfile::NamedTempFile>, name: &str, bytes: &[u8]| {
        if !written.insert(name.to_owned()) {
            return Ok(());
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, bytes)
    };
    for image in images {
        let Some(platform) = image.platforms.first() else {
            continue;
        };
        let blob = |d: &str| format!("blobs/sha256/{}", d.strip_prefix("sha256:").unwrap_or(d));
        for layer in &platform.layers {
            add(&mut builder, &blob(&layer.digest), &layer.blob).map_err(werr)?;
        }
        let config = blob(&platform.config.descriptor.digest);
        add(&mut builder, &config, &platform.config.bytes).map_err(werr)?;
        manifest.push(serde_json::json!({
            "Config": config,
            "RepoTags": [format!("cnpg-rs/{}:{}", image.name, image.tag)],
            "Layers": platform.layers.iter().map(|l| blob(&l.digest)).collect::<Vec<_>>(),
        }));
    }
    let manifest = serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(file.to_owned(), e.to_string()))?;
    add(&mut builder, "manifest.json", &manifest).map_err(werr)?;
    let temp = builder.into_inner().map_err(werr)?;
    temp.as_file().sync_all().map_err(werr)?;
    temp.persist(file).map_err(|e| Error::Write(file.to_owned(), e.error))?;
    Ok(())
}

/// One platform image read back from disk, ready to scan.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// `name` or `name@arch`.
    pub name: String,
    pub config: ImageConfig,
    pub tree: Tree,
}

/// Reads every image of an OCI layout or docker archive.
pub fn read(target: &Target) -> Result<Vec<Loaded>, Error> {
    match target {
        Target::Oci(dir) => read_oci(dir),
        Target::DockerArchive(file) => read_docker_archive(file),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Invalid(path.to_owned(), e.to_string()))
}

fn read_oci(dir: &Path) -> Result<Vec<Loaded>, Error> {
    let blob = |digest: &str| -> Result<Vec<u8>, Error> {
        let path = blob_path(dir, digest);
        let bytes = std::fs::read(&path).map_err(|e| Error::Read(path.clone(), e))?;
        let actual = format!("sha256:{}", crate::digest::sha256_hex(&bytes));
        if actual != digest {
            return Err(Error::Invalid(
                path,
                format!("content does not match its name ({actual})"),
            ));
        }
        Ok(bytes)
    };
    let index_path = dir.join("index.json");
    let text = std::fs::read(&index_path).map_err(|e| Error::Read(index_path.clone(), e))?;
    let index: Index = read_json(&index_path, &text)?;
    let mut out = Vec::new();
    // Artifacts (SBOMs) are not images.
    for entry in index.manifests.iter().filter(|e| e.artifact_type.is_none()) {
        let name = entry
            .annotations
            .get(ANNOTATION_REF_NAME)
            .cloned()
            .unwrap_or_else(|| entry.digest.clone());
        let manifests: Vec<(String, Descriptor)> = if entry.media_type == MEDIA_INDEX {
            let inner: Index = read_json(&index_path, &blob(&entry.digest)?)?;
            inner
                .manifests
                .into_iter()
                .map(|d| {
                    (
                        format!(
                            "{name}@{}",
                            d.platform.as_ref().map_or("?", |p| p.architecture.as_str())
                        ),
                        d,
                    )
                })
                .collect()
        } else {
            vec![(name, entry.clone())]
        };
        for (name, descriptor) in manifests {
            if descriptor.media_type != MEDIA_MANIFEST {
                continue;
            }
            let manifest: Manifest = read_json(&index_path, &blob(&descriptor.digest)?)?;
            let config: ImageConfig = read_json(&index_path, &blob(&manifest.config.digest)?)?;
            let mut layers = Vec::new();
            for layer in &manifest.layers {
                layers.push((layer.digest.clone(), blob(&layer.digest)?));
            }
            out.push(Loaded {
                name,
                config,
                tree: merge_layers(&layers)?,
            });
        }
    }
    Ok(out)
}

fn read_docker_archive(file: &Path) -> Result<Vec<Loaded>, Error> {
    let rerr = |e| Error::Read(file.to_owned(), e);
    let mut members: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(file).map_err(rerr)?);
    for entry in archive.entries().map_err(rerr)? {
        let mut entry = entry.map_err(rerr)?;
        let name = entry
            .path()
            .map_err(rerr)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(rerr)?;
        members.insert(name, data);
    }
    let get = |name: &str| {
        members
            .get(name)
            .ok_or_else(|| Error::Invalid(file.to_owned(), format!("missing member {name}")))
    };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Vec<String>,
        layers: Vec<String>,
    }
    let entries: Vec<Entry> = read_json(file, get("manifest.json")?)?;
    let mut out = Vec::new();
    for entry in entries {
        let config: ImageConfig = read_json(file, get(&entry.config)?)?;
        let mut layers = Vec::new();
        for layer in &entry.layers {
            layers.push((layer.clone(), get(layer)?.clone()));
        }
        let name = entry.repo_tags.first().cloned().unwrap_or_else(|| entry.config.clone());
        out.push(Loaded {
            name,
            config,
            tree: merge_layers(&layers)?,
        });
    }
    Ok(out)
}

/// Applies layers in order, honouring whiteouts (`.wh.name`, `.wh..wh..opq`).
fn merge_layers(layers: &[(String, Vec<u8>)]) -> Result<Tree, Error> {
    let mut tree = Tree::default();
    for (index, (name, bytes)) in layers.iter().enumerate() {
        let format = if bytes.starts_with(&[0x1f, 0x8b]) {
            Format::Gzip
        } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Format::Zstd
        } else {
            Format::None
        };
        let reader = format.reader(bytes.as_slice()).map_err(|e| Error::Layer {
            layer: name.clone(),
            source: deb::Error::Unpack {
                member: name.clone(),
                source: e,
            },
        })?;
        let entries = deb::read_tar(name, reader).map_err(|source| Error::Layer {
            layer: name.clone(),
            source,
        })?;
        for entry in entries {
            let (dir, base) = entry.path.rsplit_once('/').unwrap_or(("", entry.path.as_str()));
            if base == ".wh..wh..opq" {
                let prefix = format!("{dir}/");
                tree.nodes.retain(|p, _| !p.starts_with(&prefix));
                continue;
            }
            if let Some(hidden) = base.strip_prefix(".wh.") {
                let target = if dir.is_empty() {
                    hidden.to_owned()
                } else {
                    format!("{dir}/{hidden}")
                };
                let prefix = format!("{target}/");
                tree.nodes.retain(|p, _| p != &target && !p.starts_with(&prefix));
                continue;
            }
            let kind = match entry.kind {
                deb::Kind::Dir => Kind::Dir,
                deb::Kind::File(data) => Kind::File(std::sync::Arc::new(data)),
                deb::Kind::Symlink(t) => Kind::Symlink(t),
                deb::Kind::Hardlink(t) => Kind::Hardlink(t),
            };
            tree.insert(
                &entry.path,
                Node {
                    kind,
                    mode: entry.mode,
                    uid: entry.uid,
                    gid: entry.gid,
                    mtime: entry.mtime,
                    layer: index,
                },
            );
        }
    }
    Ok(tree)
}
