//! The fuzz targets on stable: every committed seed and every input that once crashed a target
//! (`fuzz/regressions/<target>/`, each named after what it broke) runs through the target's
//! body again, so a fixed finding stays fixed without nightly. Also checks that the list of
//! targets, the cargo-fuzz binaries and the corpus folders agree.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed assertion"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cnpg_fuzzing::TARGETS;
use cnpg_testkit::repository_root;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn every_target_has_a_binary_and_seeds_and_nothing_else_exists() {
    let fuzz = repository_root().join("fuzz");
    let names: BTreeSet<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names.len(), TARGETS.len(), "a target name repeats");

    let binaries: BTreeSet<String> = files(&fuzz.join("fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    for name in &names {
        assert!(binaries.contains(*name), "fuzz/fuzz_targets/{name}.rs is missing");
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        assert!(
            !files(&fuzz.join("corpus").join(name)).is_empty(),
            "fuzz/corpus/{name}/ has no seed"
        );
    }
    for binary in &binaries {
        assert!(
            names.contains(binary.as_str()),
            "fuzz/fuzz_targets/{binary}.rs is not in TARGETS"
        );
    }
    for dir in ["corpus", "regressions"] {
        for entry in std::fs::read_dir(fuzz.join(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(names.contains(name.as_str()), "fuzz/{dir}/{name} belongs to no target");
        }
    }
}

#[test]
fn seeds_and_past_crashes_run_clean_through_every_target() {
    let fuzz = repository_root().join("fuzz");
    let mut ran = 0;
    for target in TARGETS {
        for dir in ["corpus", "regressions"] {
            for input in files(&fuzz.join(dir).join(target.name)) {
                let data = std::fs::read(&input).unwrap();
                let outcome = std::panic::catch_unwind(|| (target.run)(&data));
                assert!(outcome.is_ok(), "{} fails on {}", target.name, input.display());
                ran += 1;
            }
        }
    }
    assert!(ran >= TARGETS.len(), "only {ran} inputs replayed");
}
