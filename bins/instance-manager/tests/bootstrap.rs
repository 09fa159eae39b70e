//! `instance-manager bootstrap` as the init container runs it: the copy it leaves behind is a
//! working instance manager, and the run is logged as JSON.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

#[test]
fn bootstrap_installs_a_runnable_copy_of_itself_and_logs_json() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("manager");

    let out = Command::new(env!("CARGO_BIN_EXE_instance-manager"))
        .args(["bootstrap", target.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // stderr is a pipe here, so the log line is JSON.
    let log: serde_json::Value = serde_json::from_slice(out.stderr.trim_ascii()).unwrap();
    assert_eq!(log["message"], "instance manager installed");
    assert_eq!(log["path"].as_str().unwrap(), target.to_str().unwrap());

    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777, 0o750);
    let version = Command::new(&target).arg("--version").output().unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    assert_eq!(
        version.trim(),
        format!("instance-manager {}", cnpg_telemetry::LONG_VERSION)
    );
}

#[test]
fn bootstrap_into_a_directory_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_instance-manager"))
        .args(["--log-format", "text", "bootstrap", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("name the file to write, not a directory"), "{stderr}");
    assert!(stderr.contains(dir.path().to_str().unwrap()), "{stderr}");
}
