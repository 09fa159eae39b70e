//! Nothing machine-specific is committed: no package-mirror host (mirrors are configuration,
//! read from the machine's apt sources at run time) and no absolute path of this machine.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::path::Path;

use cnpg_conformance::{read, repo_root, tracked_files};

/// Hosts named by this machine's apt sources (one-line and deb822 formats).
fn apt_mirror_hosts() -> Vec<String> {
    let mut files = vec![Path::new("/etc/apt/sources.list").to_path_buf()];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(dir.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    let mut hosts: Vec<String> = files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|word| word.split_once("://").map(|(_, rest)| rest.to_owned()))
                .filter_map(|rest| rest.split('/').next().map(str::to_owned))
                .filter(|host| host.contains('.'))
                .collect::<Vec<_>>()
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

#[test]
fn no_mirror_host_or_machine_path_is_committed() {
    let root = repo_root();
    let mut needles = apt_mirror_hosts();
    // The checkout's own path, and the directory holding it unless that is a system-wide one
    // (a clone in /tmp must not forbid every /tmp/ in the sources).
    needles.push(format!("{}/", root.display()));
    let shared = [
        "/", "/tmp", "/var/tmp", "/home", "/root", "/srv", "/opt", "/mnt", "/var/lib",
    ];
    if let Some(parent) = root.parent().filter(|p| !shared.iter().any(|s| p == &Path::new(s))) {
        needles.push(format!("{}/", parent.display()));
    }
    let mut hits = Vec::new();
    for file in tracked_files().unwrap() {
        if file.ends_with("Cargo.lock") {
            continue;
        }
        let Ok(text) = read(&file) else { continue }; // binary files
        for needle in &needles {
            if text.contains(needle.as_str()) {
                hits.push(format!("{} contains {needle}", file.display()));
            }
        }
    }
    assert!(hits.is_empty(), "{hits:#?}");
}
