//! `scripts/bench.sh images`: the in-process image pipeline on this machine's mirror with a
//! warm cache. Cold builds (empty cache) and whole-command timings are measured by the script.
//!
//! - `plan/postgresql-18-minimal`: verify the sources, parse their indexes, resolve, lock.
//! - `warm_build/postgresql-18-minimal`: from a lock and cached packages to a written layout.
//! - `no_change_rebuild/postgresql-18-minimal`: the same into a layout that already has it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup: a failure aborts the measurement"
)]

use std::path::PathBuf;
use std::time::Duration;

use cnpg_imaging::fetch::Fetcher;
use cnpg_imaging::layout::Target;
use cnpg_imaging::pipeline::{Options, build};
use cnpg_imaging::plan::Planner;
use cnpg_imaging::site::Site;
use cnpg_imaging::spec::Spec;
use criterion::{Criterion, criterion_group, criterion_main};

const IMAGE: &str = "postgresql-18-minimal";

fn options(locks_from: Option<PathBuf>, locks_to: Option<PathBuf>) -> Options {
    let mut site = Site::from_host_apt().expect("this machine's apt sources name a Debian mirror");
    site.allow_expired("debian", "sid");
    let cache = std::env::var_os("CNPG_RS_CACHE")
        .map(PathBuf::from)
        .expect("CNPG_RS_CACHE (scripts/bench.sh sets it)");
    // Where the bench runs, not where it was compiled: clones may share a target directory.
    let spec =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("../images");
    let mut options = Options::new(spec, site, cache.join("image-cache"));
    options.only = vec![IMAGE.into()];
    options.locks_from = locks_from;
    options.locks_to = locks_to;
    options
}

fn images(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let locks = work.path().join("locks");
    // Warm the cache and write the lock once.
    runtime
        .block_on(build(
            &options(None, Some(locks.clone())),
            &Target::Oci(work.path().join("warmup")),
        ))
        .unwrap();

    let mut group = c.benchmark_group("images");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(60))
        .warm_up_time(Duration::from_secs(1));

    let base = options(None, None);
    let spec = Spec::load(&base.spec_dir).unwrap();
    let fetcher = Fetcher::new(&base.cache_dir).unwrap();
    group.bench_function(format!("plan/{IMAGE}"), |b| {
        b.iter(|| {
            let mut planner = Planner::new(&spec, &base.site, &fetcher, base.now);
            runtime.block_on(planner.plan(IMAGE, "amd64", None)).unwrap()
        });
    });

    let mut round = 0u32;
    group.bench_function(format!("warm_build/{IMAGE}"), |b| {
        b.iter(|| {
            round += 1;
            let out = Target::Oci(work.path().join(format!("fresh-{round}")));
            runtime
                .block_on(build(&options(Some(locks.clone()), None), &out))
                .unwrap()
        });
    });

    let same = Target::Oci(work.path().join("same"));
    group.bench_function(format!("no_change_rebuild/{IMAGE}"), |b| {
        b.iter(|| {
            runtime
                .block_on(build(&options(Some(locks.clone()), None), &same))
                .unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, images);
criterion_main!(benches);
