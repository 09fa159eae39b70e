//! The static-analysis gate rejects what SECURITY.md says it rejects, naming the cause.
//!
//! Each test builds a one-crate probe workspace that inherits this repository's lint set,
//! clippy.toml and deny.toml, plants one mistake, and runs the same tool the gate runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cnpg_conformance::{read, repo_root};

/// The `[workspace.lints.*]` tables of the root manifest, verbatim.
fn workspace_lints() -> String {
    let manifest = read("Cargo.toml").unwrap();
    let mut keep = false;
    let mut out = String::new();
    for line in manifest.lines() {
        if line.starts_with('[') {
            keep = line.starts_with("[workspace.lints");
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(out.contains("unwrap_used"), "no lint tables found in Cargo.toml");
    out
}

struct Probe {
    dir: tempfile::TempDir,
}

impl Probe {
    fn new(dependencies: &str, lib_rs: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let workspace = format!(
            "[workspace]\nmembers = [\"probe\"]\nresolver = \"3\"\n\n{}",
            workspace_lints()
        );
        std::fs::write(root.join("Cargo.toml"), workspace).unwrap();
        for file in ["clippy.toml", "deny.toml"] {
            std::fs::copy(repo_root().join(file), root.join(file)).unwrap();
        }
        std::fs::create_dir_all(root.join("probe/src")).unwrap();
        let manifest = format!(
            "[package]\nname = \"probe\"\nversion = \"0.0.0\"\nedition = \"2024\"\nlicense = \"Apache-2.0\"\npublish = false\n\n\
             [dependencies]\n{dependencies}\n\n[lints]\nworkspace = true\n"
        );
        std::fs::write(root.join("probe/Cargo.toml"), manifest).unwrap();
        std::fs::write(root.join("probe/src/lib.rs"), lib_rs).unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cargo(&self, args: &[&str]) -> Output {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Command::new(cargo)
            .args(args)
            .current_dir(self.path())
            .env("CARGO_TARGET_DIR", self.path().join("target"))
            .output()
            .unwrap()
    }

    /// Runs clippy exactly as scripts/lint.sh does and returns its failure output.
    fn clippy_failure(&self) -> String {
        let out = self.cargo(&["clippy", "--quiet", "--all-targets", "--", "-D", "warnings"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "clippy accepted the probe:\n{stderr}");
        stderr
    }
}

#[test]
fn unwrap_in_library_code_fails_the_gate_naming_the_lint() {
    let probe = Probe::new("", "pub fn port(s: &str) -> u16 {\n    s.parse().unwrap()\n}\n");
    let stderr = probe.clippy_failure();
    assert!(
        stderr.contains("clippy::unwrap-used") || stderr.contains("clippy::unwrap_used"),
        "{stderr}"
    );
    assert!(
        stderr.contains("src/lib.rs:2"),
        "the message points at the line: {stderr}"
    );
}

#[test]
fn unsafe_block_fails_the_gate_naming_the_lint() {
    let probe = Probe::new("", "pub fn zero() -> u32 {\n    unsafe { core::mem::zeroed() }\n}\n");
    let stderr = probe.clippy_failure();
    assert!(stderr.contains("usage of an `unsafe` block"), "{stderr}");
    assert!(
        stderr.contains("unsafe_code") || stderr.contains("unsafe-code"),
        "{stderr}"
    );
}

#[test]
fn a_banned_method_fails_the_gate_with_its_reason() {
    let probe = Probe::new(
        "",
        "pub fn scratch() -> std::path::PathBuf {\n    std::env::temp_dir()\n}\n",
    );
    let stderr = probe.clippy_failure();
    assert!(stderr.contains("disallowed"), "{stderr}");
    assert!(
        stderr.contains("a shared, predictable path"),
        "the reason from clippy.toml is shown: {stderr}"
    );
}

#[test]
fn a_randomly_ordered_map_fails_the_gate_with_its_reason() {
    let probe = Probe::new("", "pub type Index = std::collections::HashMap<String, u32>;\n");
    let stderr = probe.clippy_failure();
    assert!(stderr.contains("iteration order is random"), "{stderr}");
}

#[test]
fn the_same_code_without_the_mistake_passes_the_gate() {
    // Guards the two tests above: the probe itself must be clean, so their failures can
    // only come from the planted mistake.
    let probe = Probe::new("", "pub fn port(s: &str) -> Option<u16> {\n    s.parse().ok()\n}\n");
    let out = probe.cargo(&["clippy", "--quiet", "--all-targets", "--", "-D", "warnings"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The directory holding the advisory database clone(s), as scripts/setup.sh prepares it.
fn advisory_dbs() -> PathBuf {
    let cache = std::env::var_os("CNPG_RS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/cnpg-rs"));
    cache.join("advisory-dbs")
}

#[test]
fn a_dependency_with_a_known_advisory_fails_the_audit_naming_it() {
    // smallvec 1.6.0: RUSTSEC-2021-0003, buffer overflow in insert_many.
    let probe = Probe::new("smallvec = \"=1.6.0\"", "pub use smallvec;\n");
    // `fetch`, not only a lockfile: the offline audit reads the crate's metadata from the
    // local registry cache, which is empty on a fresh machine.
    let fetch = probe.cargo(&["fetch", "--quiet"]);
    assert!(fetch.status.success(), "{}", String::from_utf8_lossy(&fetch.stderr));

    let dbs = advisory_dbs();
    let mut deny = Command::new("cargo");
    deny.arg("deny");
    if dbs.join("advisory-db-3157b0e258782691/.git").is_dir() {
        deny.arg("--offline");
    }
    let out = deny
        .args(["check", "advisories"])
        .current_dir(probe.path())
        .env("CNPG_RS_ADVISORY_DBS", &dbs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("no such command"),
        "cargo-deny is missing: scripts/setup.sh installs it\n{stderr}"
    );
    assert!(!out.status.success(), "the audit accepted smallvec 1.6.0:\n{stderr}");
    assert!(stderr.contains("RUSTSEC-2021-0003"), "{stderr}");
}

#[test]
fn every_workspace_member_inherits_the_lint_set() {
    let manifest = read("Cargo.toml").unwrap();
    let members: Vec<&str> = manifest
        .lines()
        .skip_while(|l| !l.starts_with("members"))
        .skip(1)
        .take_while(|l| !l.starts_with(']'))
        .filter_map(|l| l.trim().trim_end_matches(',').strip_prefix('"')?.strip_suffix('"'))
        .collect();
    assert!(members.len() >= 4, "members not found: {members:?}");
    for member in members {
        let text = read(format!("{member}/Cargo.toml")).unwrap();
        assert!(
            text.contains("[lints]\nworkspace = true"),
            "{member}/Cargo.toml does not opt into the workspace lints"
        );
    }
}
