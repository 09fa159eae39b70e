//! Shared by the build tests: a signed test repository with a tiny dynamically linked tool
//! and its C library, and the pipeline options to build from it.

#![allow(dead_code, reason = "shared by several test binaries, each using a part")]

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cnpg_imaging::pipeline::Options;
use cnpg_imaging::site::Site;
use cnpg_testkit::debrepo::{DebRepo, TestPackage};

pub const SUITE: &str = "stable";

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The images of the test spec: `tool` (a dynamic ELF plus its libc).
pub fn images_yaml(extra_prune: &str) -> String {
    format!(
        "prune:\n  - {{pattern: debconf*, reason: no maintainer scripts}}\n{extra_prune}\
         drop:\n  - {{pattern: usr/share/doc/*, reason: documentation}}\n\
         keep:\n  - {{pattern: usr/share/doc/*/copyright, reason: licenses}}\n\
         layers:\n  - {{name: tools, sources: [tool]}}\n\
         images:\n  tool:\n    description: a test image\n    distributions: [test]\n    user: \"65532:65532\"\n    packages: [tool]\n    env: {{PATH: /usr/bin}}\n    annotations: {{licenses: Apache-2.0}}\n\
         postgresql:\n  majors: []\n  flavors: {{}}\n"
    )
}

/// The images of the operand test spec: `postgresql-98-minimal` and `postgresql-99-minimal`,
/// each its major's package plus `tool`, catalogued like PostgreSQL images.
pub fn operand_images_yaml() -> String {
    images_yaml("").replace(
        "postgresql:\n  majors: []\n  flavors: {}\n",
        "postgresql:\n  majors: [98, 99]\n  flavors:\n    minimal:\n      description: test operand $major\n      distributions: [test]\n      user: \"26:26\"\n      packages: [postgresql-$major, tool]\n",
    )
}

/// The package standing in for PostgreSQL `major`, at `version`.
pub fn operand(major: u32, version: &str) -> TestPackage {
    TestPackage::new(&format!("postgresql-{major}"), version).file(
        &format!("/usr/lib/postgresql/{major}/bin/VERSION"),
        version.as_bytes(),
        0o644,
    )
}

/// A published repository with `libc-test` (the host's C library) and `tool` (the host's
/// `true`, which needs it), plus `extra` packages.
pub fn repository(extra: Vec<TestPackage>) -> DebRepo {
    let mut repo = DebRepo::new().unwrap();
    let libc = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
    let ld = std::fs::read("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2").unwrap();
    repo.add(
        TestPackage::new("libc-test", "2.0-1")
            .file("/usr/lib/x86_64-linux-gnu/libc.so.6", &libc, 0o755)
            .file("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", &ld, 0o755)
            .symlink(
                "/lib64/ld-linux-x86-64.so.2",
                "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            )
            .file("/usr/share/doc/libc-test/copyright", b"license text\n", 0o644)
            .file("/usr/share/doc/libc-test/changelog.gz", b"dropped\n", 0o644),
    )
    .unwrap();
    repo.add(
        TestPackage::new("tool", "1.0-1")
            .depends("libc-test (>= 2), debconf | debconf-2.0")
            .file("/bin/tool", &std::fs::read("/usr/bin/true").unwrap(), 0o4755),
    )
    .unwrap();
    for pkg in extra {
        repo.add(pkg).unwrap();
    }
    repo.publish(SUITE, now(), 86_400, None).unwrap();
    repo
}

/// Options building every image of `spec` from `repo`.
pub fn options(repo: &DebRepo, spec: &Path, cache: &Path) -> Options {
    let site_file = repo.site().unwrap();
    Options::new(
        spec.to_owned(),
        Site::from_file(site_file.path()).unwrap(),
        cache.to_owned(),
    )
}

/// A path inside `dir` that must not exist after a failed build.
pub fn output(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("oci")
}
