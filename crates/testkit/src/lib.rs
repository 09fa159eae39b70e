//! Test-only helpers for real components: nothing here ships. Each module drives one real
//! program from Debian's packages and fails with a message naming what is missing, never
//! skipping (scripts/setup.sh installs them). `apiserver` is the one stand-in: the Kubernetes
//! API server, which cannot run here.

pub mod apiserver;
pub mod debrepo;
pub mod gpg;
pub mod instances;
pub mod openpgp;
pub mod postgres;
pub mod proxy;
pub mod registry;
pub mod s3;

use std::process::{Command, Output};

use anyhow::{Context as _, bail};

/// Runs `cmd`, failing with its stderr when it does not succeed; names the program when it
/// cannot be started at all (not installed).
pub fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .with_context(|| format!("failed to start `{program}`: is it installed? (scripts/setup.sh installs it)"))?;
    if !out.status.success() {
        bail!(
            "`{program}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Writes `key.pem` and `cert.pem` into `dir`: a self-signed ECDSA P-256 certificate for
/// `common_name` with the subject alternative names `san` (`IP:127.0.0.1,DNS:localhost`),
/// valid two days, made by the `openssl` command (an implementation independent of ours).
pub fn self_signed(dir: &std::path::Path, common_name: &str, san: &str) -> anyhow::Result<()> {
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-days", "2", "-subj", &format!("/CN={common_name}")])
        .args(["-addext", &format!("subjectAltName={san}")])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem")))?;
    Ok(())
}

/// Polls `check` until it holds or `deadline` passes; returns whether it held. The one place
/// tests wait: on a condition, with a deadline, never on a guessed duration.
pub fn wait_until(deadline: std::time::Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + deadline;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        #[expect(
            clippy::disallowed_methods,
            reason = "the pause between two checks of a condition, not a synchronization"
        )]
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The repository's root, found at run time from this crate's manifest directory (clones may
/// share a target directory, so compile-time paths can point into another clone).
pub fn repository_root() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .and_then(|dir| {
            dir.ancestors()
                .find(|a| a.join("Cargo.lock").is_file() && a.join("deploy").is_dir())
                .map(std::path::Path::to_path_buf)
        })
        .unwrap_or_else(|| std::path::PathBuf::from("."))
}

/// The cache scripts/setup.sh fills (`CNPG_RS_CACHE`, default `~/.cache/cnpg-rs`): package
/// and image caches, tools, the advisory database.
pub fn cache_dir() -> std::path::PathBuf {
    std::env::var_os("CNPG_RS_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| std::path::PathBuf::from(home).join(".cache/cnpg-rs")))
        .unwrap_or_else(|| std::path::PathBuf::from(".cache/cnpg-rs"))
}
