//! The lock: everything an image is built from, and nothing that changes by itself. The same
//! lock built by the same version of the tool gives the same image digest.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::resolve::Pruned;
use crate::spec::{DirectorySpec, OsRelease, Reasoned, ShellSpec};

/// The lock format version; bumped when its meaning changes.
pub const LOCK_VERSION: u32 = 1;

/// A lock could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read lock {}", .0.display())]
    Read(std::path::PathBuf, #[source] std::io::Error),
    #[error("failed to write lock {}", .0.display())]
    Write(std::path::PathBuf, #[source] std::io::Error),
    #[error("lock {path}: {1}", path = .0.display())]
    Parse(std::path::PathBuf, String),
}

/// One image for one architecture, fully determined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub lock_version: u32,
    pub image: String,
    pub architecture: String,
    pub distribution: String,
    pub os_release: OsRelease,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<u32>,
    pub config: ConfigSpec,
    /// Package layers, bottom first.
    pub layers: Vec<LockedLayer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binaries: Vec<LockedBinary>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<Pruned>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable_optional: Vec<String>,
}

/// The image configuration the spec asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    pub description: String,
    pub user: String,
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directories: Vec<DirectorySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<ShellSpec>,
}

/// Which package paths are dropped or kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRules {
    pub drop: Vec<Reasoned>,
    pub keep: Vec<Reasoned>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub only_paths: BTreeMap<String, Vec<String>>,
}

/// A layer and the packages in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedLayer {
    pub name: String,
    /// The file rules of the image that introduced the layer, so a shared layer comes out
    /// the same in every image that has it.
    pub rules: FileRules,
    pub packages: Vec<LockedPackage>,
}

/// A package pinned by its exact file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub sha256: String,
    pub size: u64,
    pub source: String,
    pub source_version: String,
    pub repository: String,
    pub filename: String,
}

/// One of our binaries, pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedBinary {
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

impl Lock {
    /// Every package, bottom layer first.
    pub fn packages(&self) -> impl Iterator<Item = &LockedPackage> {
        self.layers.iter().flat_map(|l| l.packages.iter())
    }

    /// `name old → new` for every package older here than in `previous` (same name).
    pub fn downgrades_from(&self, previous: &Lock) -> Vec<String> {
        let before: std::collections::BTreeMap<&str, &str> = previous
            .packages()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        self.packages()
            .filter_map(|p| {
                let was = before.get(p.name.as_str())?;
                (crate::debian::version::compare(&p.version, was) == std::cmp::Ordering::Less)
                    .then(|| format!("{} {was} → {}", p.name, p.version))
            })
            .collect()
    }

    /// The canonical file name: `<image>.<arch>.lock.json`.
    pub fn file_name(image: &str, arch: &str) -> String {
        format!("{image}.{arch}.lock.json")
    }

    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Read(path.to_owned(), e))?;
        let lock: Self = serde_json::from_str(&text).map_err(|e| Error::Parse(path.to_owned(), e.to_string()))?;
        if lock.lock_version != LOCK_VERSION {
            return Err(Error::Parse(
                path.to_owned(),
                format!("lock_version {} is not {LOCK_VERSION}", lock.lock_version),
            ));
        }
        // Digests become cache paths: a lock is outside input like any other file.
        let bad = lock
            .packages()
            .map(|p| (&p.name, &p.sha256))
            .chain(lock.binaries.iter().map(|b| (&b.name, &b.sha256)))
            .find(|(_, sha256)| !crate::digest::is_sha256_hex(sha256));
        if let Some((name, sha256)) = bad {
            return Err(Error::Parse(
                path.to_owned(),
                format!("{name}: sha256 `{sha256}` is not 64 lowercase hexadecimal digits"),
            ));
        }
        Ok(lock)
    }

    /// Writes the lock as pretty JSON (stable: every map is ordered).
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| Error::Parse(path.to_owned(), e.to_string()))?;
        text.push('\n');
        std::fs::write(path, text).map_err(|e| Error::Write(path.to_owned(), e))
    }
}
