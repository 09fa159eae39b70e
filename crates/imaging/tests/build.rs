//! `build` end to end against a repository the test signs itself: what comes out is accepted
//! by independent tools and reproducible; a missing dependency, a stale suite or a failed scan
//! aborts the build with a message naming the culprit, before anything is written. Tampering
//! with the inputs is the tamper table's (`tamper.rs`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

mod support;

use cnpg_telemetry::error_chain;

use std::process::Command;

use cnpg_imaging::layout::Target;
use cnpg_imaging::pipeline::{Error, build};
use cnpg_testkit::debrepo::TestPackage;
use cnpg_testkit::run;
use support::{SUITE, images_yaml, now, options, output, repository};

#[tokio::test(flavor = "multi_thread")]
async fn the_layout_is_read_by_skopeo_and_umoci_and_the_archive_by_skopeo() {
    let repo = repository(vec![]);
    let spec = repo.spec(SUITE, &images_yaml("")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let layout = output(&work);
    let report = build(
        &options(&repo, spec.path(), &work.path().join("cache")),
        &Target::Oci(layout.clone()),
    )
    .await
    .unwrap();
    assert_eq!(report.images.len(), 1);
    assert_eq!(report.images[0].scan, "pass");
    assert_eq!(report.images[0].packages, 2);
    // The setuid bit of the test tool was removed, and said so.
    assert_eq!(report.images[0].platforms[0].stripped_setid, ["usr/bin/tool"]);

    let inspect = run(Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:tool", layout.display())))
    .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        4,
        "skeleton, libs, tools, metadata"
    );

    let bundle = work.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:tool", layout.display()))
        .arg(&bundle))
    .unwrap();
    let rootfs = bundle.join("rootfs");
    let tool = std::fs::metadata(rootfs.join("usr/bin/tool")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&tool.permissions()) & 0o7777,
        0o755
    );
    assert!(
        rootfs.join("usr/share/doc/libc-test/copyright").exists(),
        "copyright files are kept"
    );
    assert!(
        !rootfs.join("usr/share/doc/libc-test/changelog.gz").exists(),
        "documentation is dropped"
    );
    assert!(
        std::fs::read_to_string(rootfs.join("var/lib/dpkg/status"))
            .unwrap()
            .contains("Package: tool\nStatus: install ok installed\n")
    );
    assert_eq!(
        std::fs::read_link(rootfs.join("bin")).unwrap().to_str(),
        Some("usr/bin")
    );
    let runtime: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime["process"]["user"]["uid"], 65532);

    let archive = work.path().join("tool.tar");
    build(
        &options(&repo, spec.path(), &work.path().join("cache")),
        &Target::DockerArchive(archive.clone()),
    )
    .await
    .unwrap();
    let inspect = run(Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("docker-archive:{}", archive.display())))
    .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
}

#[tokio::test(flavor = "multi_thread")]
async fn building_twice_from_the_same_lock_gives_identical_digests() {
    let repo = repository(vec![]);
    let spec = repo.spec(SUITE, &images_yaml("")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let locks = work.path().join("locks");
    let mut first = options(&repo, spec.path(), &work.path().join("cache-a"));
    first.locks_to = Some(locks.clone());
    let a = build(&first, &Target::Oci(work.path().join("a"))).await.unwrap();

    let mut second = options(&repo, spec.path(), &work.path().join("cache-b"));
    second.locks_from = Some(locks.clone());
    let b = build(&second, &Target::Oci(work.path().join("b"))).await.unwrap();
    assert_eq!(a.images[0].digest, b.images[0].digest);
    assert_eq!(a.images[0].platforms[0].digest, b.images[0].platforms[0].digest);

    // The digest does move with the inputs: a different SOURCE_DATE_EPOCH clamps timestamps.
    let mut third = options(&repo, spec.path(), &work.path().join("cache-a"));
    third.locks_from = Some(locks);
    third.source_date_epoch = Some(86_400);
    let c = build(&third, &Target::Oci(work.path().join("c"))).await.unwrap();
    assert_ne!(a.images[0].digest, c.images[0].digest);
}

/// Builds with `opts`, expects failure, checks nothing was written, returns the message.
async fn fails(opts: cnpg_imaging::pipeline::Options, out: &std::path::Path) -> String {
    let err = build(&opts, &Target::Oci(out.to_owned()))
        .await
        .expect_err("the build must fail");
    assert!(!out.exists(), "nothing may be written to the output after: {err}");
    error_chain(&err)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_dependency_aborts_naming_the_package_and_the_dependency() {
    let repo = repository(vec![TestPackage::new("extra", "1").depends("libmissing (>= 3)")]);
    let spec = repo
        .spec(
            SUITE,
            &images_yaml("").replace("packages: [tool]", "packages: [tool, extra]"),
        )
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let message = fails(options(&repo, spec.path(), work.path()), &output(&work)).await;
    assert!(
        message.contains("extra 1 amd64") && message.contains("libmissing (>= 3)"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_release_aborts_unless_the_site_accepts_that_suite() {
    let repo = repository(vec![]);
    repo.publish(SUITE, now() - 10 * 86_400, 86_400, None).unwrap();
    let spec = repo.spec(SUITE, &images_yaml("")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let message = fails(options(&repo, spec.path(), work.path()), &output(&work)).await;
    assert!(
        message.contains("InRelease") && message.contains("expired"),
        "{message}"
    );

    let mut accepting = options(&repo, spec.path(), work.path());
    accepting.site.allow_expired("test", SUITE);
    let report = build(&accepting, &Target::Oci(output(&work))).await.unwrap();
    assert!(
        report.sources[0].accepted_expired_since.is_some(),
        "the report records the exception"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pruning_a_needed_library_fails_the_scan_naming_it() {
    let repo = repository(vec![]);
    let spec = repo
        .spec(
            SUITE,
            &images_yaml("  - {pattern: libc-test, reason: testing the check}\n"),
        )
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let opts = options(&repo, spec.path(), work.path());
    let err = build(&opts, &Target::Oci(output(&work))).await.unwrap_err();
    assert!(matches!(err, Error::ScanFailed(_)), "{err}");
    assert!(!output(&work).exists());
    let mut with_report = opts;
    with_report.report = Some(work.path().join("report.json"));
    let _ = build(&with_report, &Target::Oci(output(&work))).await.unwrap_err();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("report.json")).unwrap()).unwrap();
    let details = report["images"][0]["findings"].to_string();
    assert!(
        details.contains("CNPG-DI-0008") && details.contains("/usr/bin/tool: needs libc.so.6"),
        "{details}"
    );
}
