//! The fuzz targets' bodies: one function per parser that reads input we do not control, each
//! feeding it arbitrary bytes and checking what must hold whatever the input (no panic, no
//! unbounded allocation, and the target's own invariant, such as "an accepted pg_hba line is
//! one line of the file"). `fuzz/` (cargo-fuzz, nightly, outside the workspace) turns each
//! into a libFuzzer binary; `tests/corpus.rs` replays the committed seeds and every input that
//! ever failed through the same functions on stable, so a fixed finding stays fixed.
//!
//! A broken invariant panics: in a fuzz target that is the finding, not an error path.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a fuzz target reports a broken invariant by panicking: that is what the fuzzer looks for"
)]

pub mod api;
pub mod packages;
pub mod postgres;
pub mod registry;

/// A fuzz target: its name (the binary in `fuzz/fuzz_targets/`, the folders under
/// `fuzz/corpus/` and `fuzz/regressions/`) and its body.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "openpgp_keyring",
        run: packages::openpgp_keyring,
    },
    Target {
        name: "openpgp_cleartext",
        run: packages::openpgp_cleartext,
    },
    Target {
        name: "debian_release",
        run: packages::debian_release,
    },
    Target {
        name: "debian_packages",
        run: packages::debian_packages,
    },
    Target {
        name: "debian_version",
        run: packages::debian_version,
    },
    Target {
        name: "deb",
        run: packages::deb,
    },
    Target {
        name: "decompress",
        run: packages::decompress,
    },
    Target {
        name: "tar",
        run: packages::tar,
    },
    Target {
        name: "elf",
        run: packages::elf,
    },
    Target {
        name: "oci_manifest",
        run: registry::oci_manifest,
    },
    Target {
        name: "docker_config",
        run: registry::docker_config,
    },
    Target {
        name: "s3_listing",
        run: registry::s3_listing,
    },
    Target {
        name: "backup_info",
        run: registry::backup_info,
    },
    Target {
        name: "pg_hba",
        run: postgres::pg_hba,
    },
    Target {
        name: "pg_ident",
        run: postgres::pg_ident,
    },
    Target {
        name: "postgres_parameters",
        run: postgres::parameters,
    },
    Target {
        name: "monitoring_queries",
        run: postgres::monitoring_queries,
    },
    Target {
        name: "fencing_annotation",
        run: api::fencing_annotation,
    },
    Target {
        name: "cron_schedule",
        run: api::cron_schedule,
    },
    Target {
        name: "instance_status",
        run: api::instance_status,
    },
    Target {
        name: "admission_review",
        run: api::admission_review,
    },
];

/// Splits fuzz input into at most `n` text fields on NUL bytes (lossy UTF-8), so one input
/// can carry several strings, each free to hold line breaks.
pub fn fields(data: &[u8], n: usize) -> Vec<String> {
    data.splitn(n, |b| *b == 0)
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}
