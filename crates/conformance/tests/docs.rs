//! The README's set-up section and SECURITY.md stay true to the repository.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::os::unix::fs::PermissionsExt as _;

use cnpg_conformance::{read, repo_root};

/// Command lines inside the fenced code blocks of the README section whose heading contains
/// `heading`.
fn commands_in_section(markdown: &str, heading: &str) -> Vec<String> {
    let mut in_section = false;
    let mut in_code = false;
    let mut commands = Vec::new();
    for line in markdown.lines() {
        if line.starts_with("## ") {
            in_section = line.to_lowercase().contains(heading);
            continue;
        }
        if !in_section {
            continue;
        }
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let line = line.trim();
        if in_code && !line.is_empty() && !line.starts_with('#') {
            commands.push(line.to_owned());
        }
    }
    commands
}

fn executable(path: &str) -> bool {
    std::fs::metadata(repo_root().join(path)).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[test]
fn readme_setup_has_exactly_the_two_commands_and_they_exist() {
    let readme = read("README.md").unwrap();
    let commands = commands_in_section(&readme, "set up");
    assert_eq!(
        commands,
        ["scripts/run-local.sh", "scripts/test.sh"],
        "README set-up section"
    );
    for command in &commands {
        assert!(executable(command), "{command} is not an executable file");
    }
    let ci = read(".ci/run").unwrap();
    assert!(ci.contains("scripts/test.sh"), ".ci/run must run scripts/test.sh");
}

/// Backticked references in the "Enforced by" cells of SECURITY.md's tables.
fn security_references(markdown: &str) -> Vec<(String, String)> {
    let mut refs = Vec::new();
    for line in markdown.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let (Some(claim), Some(enforced)) = (cells.first(), cells.last()) else {
            continue;
        };
        if cells.len() < 2 || claim.starts_with("---") || *claim == "Claim" {
            continue;
        }
        let mut found = false;
        for (i, part) in enforced.split('`').enumerate() {
            if i % 2 == 1 {
                refs.push((claim.to_string(), part.to_owned()));
                found = true;
            }
        }
        if !found {
            refs.push((claim.to_string(), enforced.to_string()));
        }
    }
    refs
}

/// A reference is `path` (must exist) or `path::name` (a Rust file must define `fn name`, any
/// other file must mention `name`), or the row says it is planned.
fn resolves(reference: &str) -> bool {
    if reference.to_lowercase().starts_with("planned") {
        return true;
    }
    let (path, item) = match reference.split_once("::") {
        Some((path, item)) => (path, Some(item)),
        None => (reference, None),
    };
    let Ok(text) = std::fs::read_to_string(repo_root().join(path)) else {
        return false;
    };
    match item {
        None => true,
        Some(item) if path.ends_with(".rs") => text.contains(&format!("fn {item}(")),
        Some(item) => text.contains(item),
    }
}

#[test]
fn every_security_claim_names_an_enforcement_that_exists() {
    let security = read("SECURITY.md").unwrap();
    let refs = security_references(&security);
    assert!(refs.len() >= 10, "SECURITY.md tables not found");
    let broken: Vec<_> = refs.iter().filter(|(_, r)| !resolves(r)).collect();
    assert!(
        broken.is_empty(),
        "claims whose enforcement does not exist: {broken:#?}"
    );
    for layer in ["## Code", "## Container", "## Cluster", "## Reporting a vulnerability"] {
        assert!(security.contains(layer), "SECURITY.md lacks the section {layer}");
    }
}

#[test]
fn the_reference_checker_rejects_what_does_not_exist() {
    assert!(resolves(
        "crates/conformance/tests/docs.rs::the_reference_checker_rejects_what_does_not_exist"
    ));
    assert!(!resolves("crates/conformance/tests/docs.rs::no_such_test_anywhere_xyz"));
    assert!(!resolves("scripts/no-such-script.sh"));
    assert!(resolves("planned (with the controllers)"));
}
