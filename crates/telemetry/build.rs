//! Stamps the git commit into the build so `--version` names the exact source.
//!
//! `CNPG_RS_GIT_COMMIT` wins when set (release pipelines, builds from a tarball);
//! otherwise `git rev-parse` is asked; a build outside any checkout says `unknown`.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The git directory as a path relative to this package (`../../.git`), when it lies inside
/// the work tree; git itself answers with an absolute path from a subdirectory.
fn relative_git_dir() -> Option<PathBuf> {
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let git_dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    let inside = git_dir.strip_prefix(&top).ok()?.to_path_buf();
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let depth = manifest.strip_prefix(&top).ok()?.components().count();
    let mut rel = PathBuf::new();
    for _ in 0..depth {
        rel.push("..");
    }
    Some(rel.join(inside))
}

fn main() {
    println!("cargo:rerun-if-env-changed=CNPG_RS_GIT_COMMIT");
    let commit = std::env::var("CNPG_RS_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    // Rebuild when HEAD moves: HEAD itself (checkout), branch refs (commit) and packed refs.
    // Paths stay relative to this package: several clones may share one target directory,
    // and each must watch its own repository.
    if let Some(dir) = relative_git_dir() {
        // A path that does not exist counts as always changed: watch only real ones.
        for path in ["HEAD", "refs/heads", "packed-refs"]
            .map(|f| dir.join(f))
            .into_iter()
            .filter(|p| p.exists())
        {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    println!("cargo:rustc-env=CNPG_RS_GIT_COMMIT={commit}");
}
