//! Repository-level checks, run as this crate's integration tests: the static-analysis gate
//! really rejects what it promises to, every pipeline step calls a script, the README and
//! SECURITY.md stay true, and no machine path or package-mirror host is committed.
//!
//! The library only locates the repository and lists its tracked files; each test file under
//! `tests/` holds one family of checks. No runtime, no network.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A repository fact could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to run git ls-files in {}", .0.display())]
    Git(PathBuf, #[source] std::io::Error),
    #[error("git ls-files failed: {0}")]
    GitStatus(String),
    #[error("failed to read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
}

/// The root of the repository (the workspace directory) the tests run in. Read at run time:
/// clones of the repository may share one target directory, so a path compiled into the
/// test binary could name another clone.
pub fn repo_root() -> PathBuf {
    // This crate lives at <root>/crates/conformance; cargo and nextest run tests with
    // CARGO_MANIFEST_DIR set, and from the package directory.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.clone(), Path::to_path_buf)
}

/// Paths of the files git tracks or would track (untracked but not ignored), relative to the root.
pub fn tracked_files() -> Result<Vec<PathBuf>, Error> {
    let root = repo_root();
    let out = Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(&root)
        .output()
        .map_err(|e| Error::Git(root.clone(), e))?;
    if !out.status.success() {
        return Err(Error::GitStatus(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    let mut files: Vec<PathBuf> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .filter(|p| root.join(p).is_file())
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// Reads a repository file as text.
pub fn read(relative: impl AsRef<Path>) -> Result<String, Error> {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).map_err(|e| Error::Read(path, e))
}
