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

fn main() {
    println!("cargo:rerun-if-env-changed=CNPG_RS_GIT_COMMIT");
    let commit = std::env::var("CNPG_RS_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    // Rebuild when HEAD moves: HEAD itself (checkout), branch refs (commit) and packed refs.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let dir = PathBuf::from(dir);
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
