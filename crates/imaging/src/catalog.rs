//! `ClusterImageCatalog` (postgresql.cnpg.io/v1) files: one catalog per flavor and operating
//! system, each entry a major pinned by digest. Written whole and atomically; an entry whose
//! digest did not change keeps its exact text, so an unchanged run leaves the file
//! byte-identical.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Reading or writing a catalog file failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("failed to write {}", .0.display())]
    Write(PathBuf, #[source] std::io::Error),
    #[error("{path}: {1}", path = .0.display())]
    Parse(PathBuf, String),
}

/// A ClusterImageCatalog, as CloudNativePG defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterImageCatalog {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: CatalogSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSpec {
    pub images: Vec<CatalogImage>,
}

/// One major and its image, `repository:tag@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogImage {
    pub major: u32,
    pub image: String,
}

impl CatalogImage {
    /// The digest the entry pins.
    pub fn digest(&self) -> Option<&str> {
        self.image.rsplit_once('@').map(|(_, d)| d)
    }
}

impl ClusterImageCatalog {
    /// A catalog named `postgresql-<flavor>-<os>` with CloudNativePG's labels.
    pub fn new(flavor: &str, os: &str, publisher: &str, date: &str, mut images: Vec<CatalogImage>) -> Self {
        images.sort_by_key(|i| i.major);
        let labels = BTreeMap::from([
            ("images.cnpg.io/date".to_owned(), date.to_owned()),
            ("images.cnpg.io/family".to_owned(), "postgresql".to_owned()),
            ("images.cnpg.io/os".to_owned(), os.to_owned()),
            ("images.cnpg.io/publisher".to_owned(), publisher.to_owned()),
            ("images.cnpg.io/type".to_owned(), flavor.to_owned()),
        ]);
        Self {
            api_version: "postgresql.cnpg.io/v1".to_owned(),
            kind: "ClusterImageCatalog".to_owned(),
            metadata: Metadata {
                name: format!("postgresql-{flavor}-{os}"),
                labels,
            },
            spec: CatalogSpec { images },
        }
    }
}

/// Reads the catalogs of a file (YAML documents separated by `---`); none if it is absent.
pub fn read(path: &Path) -> Result<Vec<ClusterImageCatalog>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::Read(path.to_owned(), e)),
    };
    text.split("\n---\n")
        .map(|doc| doc.trim_start_matches("---\n"))
        .filter(|doc| !doc.trim().is_empty())
        .map(|doc| serde_saphyr::from_str(doc).map_err(|e| Error::Parse(path.to_owned(), e.to_string())))
        .collect()
}

/// The file text of `catalogs`, sorted by name.
pub fn render(catalogs: &[ClusterImageCatalog]) -> Result<String, Error> {
    let mut sorted = catalogs.to_vec();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out = String::new();
    for catalog in &sorted {
        out.push_str("---\n");
        out.push_str(
            &serde_saphyr::to_string(catalog).map_err(|e| Error::Parse(PathBuf::from("(catalog)"), e.to_string()))?,
        );
    }
    Ok(out)
}

/// Writes `text` to `path` atomically, and only if it differs from what is there.
pub fn write(path: &Path, text: &str) -> Result<bool, Error> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let werr = |e| Error::Write(path.to_owned(), e);
    std::fs::create_dir_all(dir).map_err(werr)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(werr)?;
    temp.write_all(text.as_bytes()).map_err(werr)?;
    temp.as_file().sync_all().map_err(werr)?;
    temp.persist(path).map_err(|e| Error::Write(path.to_owned(), e.error))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_reads_back_with_quoted_dates() {
        let c = ClusterImageCatalog::new(
            "minimal",
            "trixie",
            "cnpg-rs",
            "20261127",
            vec![CatalogImage {
                major: 17,
                image: "r.test/p/postgresql-minimal-trixie:17.12-20261127@sha256:ab".into(),
            }],
        );
        let text = render(std::slice::from_ref(&c)).unwrap();
        assert!(text.contains("name: postgresql-minimal-trixie"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.yaml");
        assert!(write(&path, &text).unwrap());
        assert!(!write(&path, &text).unwrap(), "unchanged text is not rewritten");
        let back = read(&path).unwrap();
        assert_eq!(back, vec![c]);
        assert_eq!(back[0].metadata.labels["images.cnpg.io/date"], "20261127");
        assert_eq!(back[0].spec.images[0].digest(), Some("sha256:ab"));
    }
}
