//! The tamper table's verdict as an operator sees it, through the binary: after a good run,
//! a package swapped on the mirror makes `image-rebuilder build` and `rebuild` exit non-zero,
//! log the package and the cause, write no output, push nothing and leave the catalog as it
//! was. (Every other tampering is in `crates/imaging/tests/tamper.rs`, on the same code.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::path::Path;
use std::process::{Command, Output};

use cnpg_testkit::debrepo::{DebRepo, TestPackage};
use cnpg_testkit::registry::Registry;

const IMAGES: &str = "prune: []\ndrop: []\nkeep: []\nlayers: []\n\
    images:\n  notes:\n    description: a test image\n    distributions: [test]\n    user: \"65532:65532\"\n    \
    packages: [notes]\n    annotations: {licenses: Apache-2.0}\n\
    postgresql:\n  majors: [98]\n  flavors:\n    minimal:\n      description: test operand $major\n      \
    distributions: [test]\n      user: \"26:26\"\n      packages: [postgresql-$major]\n";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn notes(version: &str) -> TestPackage {
    TestPackage::new("notes", version).file("/usr/share/notes/VERSION", version.as_bytes(), 0o644)
}

fn image_rebuilder(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_image-rebuilder"));
    cmd.args(args).args(["--log-format", "text"]);
    for (flag, path) in paths {
        cmd.arg(flag).arg(path);
    }
    cmd.output().unwrap()
}

#[test]
fn a_swapped_package_fails_both_commands_with_nothing_written_or_pushed() {
    let registry = Registry::start().unwrap();
    let mut repo = DebRepo::new().unwrap();
    repo.add(notes("1.0-1")).unwrap();
    repo.add(TestPackage::new("postgresql-98", "98.1-1").file("/usr/lib/postgresql/98/VERSION", b"98.1", 0o644))
        .unwrap();
    repo.publish("stable", now() - 3600, 86_400, None).unwrap();
    let spec = repo.spec("stable", IMAGES).unwrap();
    let site = repo.site().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (cache, catalog, auth) = (
        work.path().join("cache"),
        work.path().join("catalog.yaml"),
        work.path().join("auth.json"),
    );
    registry.docker_config(&auth, None).unwrap();
    let target = format!("{}/cnpg", registry.host());
    let ca = registry.ca_file();
    let common = [
        ("--spec", spec.path()),
        ("--site", site.path()),
        ("--cache-dir", cache.as_path()),
    ];
    let rebuild = || {
        let mut paths = common.to_vec();
        paths.extend_from_slice(&[
            ("--ca-file", ca.as_path()),
            ("--auth-file", auth.as_path()),
            ("--catalog-out", catalog.as_path()),
        ]);
        image_rebuilder(&["rebuild", "--registry", &target], &paths)
    };
    let first = rebuild();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));

    // Upstream publishes 1.0-2; the mirror serves another genuine package under its name.
    let swapped = repo.add(notes("1.0-2")).unwrap();
    repo.publish("stable", now() - 1800, 86_400, None).unwrap();
    let other = repo.add(notes("0.9-1")).unwrap();
    std::fs::copy(&other, &swapped).unwrap();

    let out = work.path().join("oci");
    let out_arg = format!("oci:{}", out.display());
    let build = image_rebuilder(&["build", "--out", &out_arg], &common);
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert_eq!(build.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("notes 1.0-2") && stderr.contains("tampered"),
        "{stderr}"
    );
    assert!(!out.exists(), "build wrote its output");

    let before = std::fs::read(&catalog).unwrap();
    let writes = registry.writes();
    let again = rebuild();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("notes 1.0-2") && stderr.contains("tampered"),
        "{stderr}"
    );
    assert_eq!(registry.writes(), writes, "rebuild pushed something");
    assert_eq!(std::fs::read(&catalog).unwrap(), before, "the catalog changed");
}
