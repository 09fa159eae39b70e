//! The shipped spec loads, and mistakes in a spec are reported with the file and key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cnpg_imaging::spec::Spec;

fn shipped() -> PathBuf {
    // Where the test runs, not where it was compiled: clones may share a target directory.
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("../../images")
}

/// A copy of the shipped spec with `edit` applied to one file; returns the load error.
fn broken(file: &str, edit: impl FnOnce(String) -> String) -> String {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&shipped(), dir.path());
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
    let err = Spec::load(dir.path()).map(|_| ()).and_then(|()| {
        let spec = Spec::load(dir.path())?;
        for repo in spec.repositories.keys() {
            spec.keyring(repo, now())?;
        }
        Ok(())
    });
    err.expect_err("the edited spec must be refused").to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn the_shipped_spec_loads_with_every_pinned_key() {
    let spec = Spec::load(&shipped()).unwrap();
    for repo in spec.repositories.keys() {
        assert!(!spec.keyring(repo, now()).unwrap().fingerprints().is_empty());
    }
    for name in ["base", "operator", "instance-manager", "pgbouncer", "image-rebuilder"] {
        assert!(spec.images.contains_key(name), "{name}");
    }
    for major in [15, 16, 17, 18] {
        for flavor in ["minimal", "standard"] {
            let image = &spec.images[&format!("postgresql-{major}-{flavor}")];
            assert_eq!(image.spec.user.as_deref(), Some("26:26"));
            assert!(image.spec.env["PATH"].starts_with(&format!("/usr/lib/postgresql/{major}/bin:")));
            assert_eq!(image.parents.first().map(String::as_str), Some("base"));
        }
    }
}

#[test]
fn an_unknown_key_is_named_with_its_file_and_line() {
    let err = broken("images.yaml", |t| {
        t.replacen("    user: \"65532:65532\"", "    usr: \"65532:65532\"", 1)
    });
    assert!(
        err.contains("images.yaml") && err.contains("unknown field `usr`"),
        "{err}"
    );
}

#[test]
fn an_image_running_as_root_is_refused() {
    let err = broken("images.yaml", |t| {
        t.replacen("user: \"65532:65532\"", "user: \"0:0\"", 1)
    });
    assert!(
        err.contains("images.base.user") && err.contains("never run as root"),
        "{err}"
    );
}

#[test]
fn a_prune_entry_without_a_reason_is_refused() {
    let err = broken("images.yaml", |t| {
        t.replacen(
            "reason: no interpreters in our images; only Debian's maintainer scripts and wrappers need Perl",
            "reason: \"\"",
            1,
        )
    });
    assert!(err.contains("`perl` is listed without a reason"), "{err}");
}

#[test]
fn a_key_file_with_another_fingerprint_is_refused() {
    let err = broken("repositories.yaml", |t| {
        t.replacen(
            "B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8",
            "0000000000000000000000000000000000000000",
            1,
        )
    });
    assert!(
        err.contains("keys/pgdg.asc") && err.contains("0000000000000000000000000000000000000000"),
        "{err}"
    );
}

#[test]
fn an_unknown_distribution_or_parent_is_refused() {
    let err = broken("images.yaml", |t| {
        t.replacen("distributions: [trixie, bookworm, sid]", "distributions: [jessie]", 1)
    });
    assert!(err.contains("unknown distribution `jessie`"), "{err}");
    let err = broken("images.yaml", |t| t.replacen("from: base", "from: nothing", 1));
    assert!(err.contains("unknown image `nothing`"), "{err}");
}
