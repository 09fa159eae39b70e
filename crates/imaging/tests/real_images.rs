//! Images built from this machine's Debian mirror (its apt sources name it): complete,
//! reproducible, multi-platform, and runnable as non-root, read-only containers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use cnpg_imaging::layout::Target;
use cnpg_imaging::pipeline::{Options, build};
use cnpg_imaging::site::Site;
use cnpg_testkit::{run, wait_until};

fn cache() -> PathBuf {
    cnpg_testkit::cache_dir().join("image-cache")
}

fn options(only: &[&str]) -> Options {
    let mut site = Site::from_host_apt().expect("this machine's apt sources name a Debian mirror");
    // This machine's unstable mirror is frozen; accepting it is the site's explicit choice.
    site.allow_expired("debian", "sid");
    // Where the test runs, not where it was compiled: clones may share a target directory.
    let spec = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("../../images");
    let mut options = Options::new(spec, site, cache());
    options.only = only.iter().map(|s| s.to_string()).collect();
    options
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_17_minimal_is_complete_and_rebuilds_to_the_same_digest() {
    let work = tempfile::tempdir().unwrap();
    let mut first = options(&["postgresql-17-minimal"]);
    first.locks_to = Some(work.path().join("locks"));
    let a = build(&first, &Target::Oci(work.path().join("a"))).await.unwrap();
    let image = &a.images[0];
    // The scan includes the check that every ELF file finds its shared libraries: the prune
    // list (no perl, debconf, LLVM, ...) left nothing dangling.
    assert_eq!(image.scan, "pass", "{:#?}", image.findings);
    assert_eq!(image.distribution, "trixie");
    assert!(
        image.uncompressed_bytes < 150_000_000,
        "{} bytes",
        image.uncompressed_bytes
    );

    let mut second = options(&["postgresql-17-minimal"]);
    second.locks_from = Some(work.path().join("locks"));
    let b = build(&second, &Target::Oci(work.path().join("b"))).await.unwrap();
    assert_eq!(image.digest, b.images[0].digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn base_is_built_for_amd64_and_arm64_from_the_same_spec() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("oci");
    let mut opts = options(&["base"]);
    opts.architectures = vec!["amd64".into(), "arm64".into()];
    let report = build(&opts, &Target::Oci(layout.clone())).await.unwrap();
    let platforms: Vec<&str> = report.images[0]
        .platforms
        .iter()
        .map(|p| p.architecture.as_str())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let out = run(Command::new("skopeo")
            .args(["--override-arch", arch, "inspect", "--config"])
            .arg(format!("oci:{}:base", layout.display())))
        .unwrap();
        let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(config["architecture"], arch);
        assert_eq!(config["variant"].as_str(), variant);
        assert_eq!(config["config"]["User"], "65532:65532");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_runs_in_docker_read_only_as_uid_26_with_no_capabilities() {
    let info = Command::new("docker")
        .arg("info")
        .output()
        .expect("docker CLI missing: scripts/setup.sh installs docker.io");
    assert!(
        info.status.success(),
        "the Docker engine is not running: {}",
        String::from_utf8_lossy(&info.stderr)
    );
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("pg.tar");
    let report = build(
        &options(&["postgresql-17-minimal"]),
        &Target::DockerArchive(archive.clone()),
    )
    .await
    .unwrap();
    let loaded = run(Command::new("docker").args(["load", "-i"]).arg(&archive)).unwrap();
    let image = String::from_utf8(loaded.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Loaded image: ").map(str::to_owned))
        .expect("docker load names the image");
    assert!(image.starts_with("cnpg-rs/postgresql-17-minimal:17."), "{image}");

    let name = format!("cnpg-rs-test-{}", std::process::id());
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    run(Command::new("docker")
        .args(["run", "-d", "--name", &name])
        .args(cnpg_testkit::instances::docker_security())
        .args([
            "--tmpfs",
            "/var/lib/postgresql:uid=26,gid=26,mode=0700",
            "--tmpfs",
            "/var/run/postgresql:uid=26,gid=26,mode=0775",
            "--entrypoint",
            "/usr/bin/sh",
            &image,
            "-c",
            "initdb -D \"$PGDATA\" --auth=trust >/dev/null && exec postgres -D \"$PGDATA\" -c listen_addresses=",
        ]))
    .unwrap();
    let psql = |sql: &str| {
        Command::new("docker")
            .args([
                "exec",
                &name,
                "psql",
                "-h",
                "/var/run/postgresql",
                "-U",
                "postgres",
                "-Atc",
                sql,
            ])
            .output()
            .unwrap()
    };
    let ready = wait_until(Duration::from_secs(60), || psql("SELECT 1").status.success());
    let logs = Command::new("docker").args(["logs", &name]).output().unwrap();
    let version = psql("SELECT version()");
    let caps = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}",
            &name,
        ])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    let _ = Command::new("docker").args(["rmi", &image]).output();
    assert!(
        ready,
        "postgres did not come up: {}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    let version = String::from_utf8(version.stdout).unwrap();
    assert!(version.starts_with("PostgreSQL 17."), "{version}");
    assert_eq!(String::from_utf8(caps.stdout).unwrap().trim(), "true 26:26");
    assert_eq!(report.images[0].scan, "pass");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_reachable_image_is_published_and_a_rerun_uploads_nothing() {
    use cnpg_imaging::publish::{PublishOptions, rebuild};
    use cnpg_imaging::registry::{Credentials, Password, Pusher};
    let registry = cnpg_testkit::registry::Registry::start().unwrap();
    let work = tempfile::tempdir().unwrap();
    let catalog_path = work.path().join("catalog.yaml");
    let publish = |build: Options| PublishOptions {
        build,
        pusher: Pusher::new(
            format!("{}/cnpg-rs", registry.host()).parse().unwrap(),
            Some(Credentials {
                username: registry.user.clone(),
                password: Password::new(registry.password.clone()),
            }),
            Some(std::fs::read(registry.ca_file()).unwrap()),
        ),
        catalog_out: catalog_path.clone(),
        publisher: "cnpg-rs".into(),
    };
    // Every image, ours included: scripts/test.sh builds the static release binaries first.
    let binaries = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("../../out/bin");
    assert!(
        binaries.join("operator").is_file(),
        "{} lacks the release binaries: run scripts/build-release.sh",
        binaries.display()
    );
    let with_binaries = || {
        let mut build = options(&[]);
        build.skip_unavailable = true;
        build.binaries = Some(binaries.clone());
        build
    };
    let first = rebuild(&publish(with_binaries())).await.unwrap();
    let names: Vec<&str> = first.images.iter().map(|i| i.image.as_str()).collect();
    for expected in [
        "base",
        "operator",
        "instance-manager",
        "pgbouncer",
        "image-rebuilder",
        "postgresql-15-minimal",
        "postgresql-17-minimal",
        "postgresql-18-standard",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let catalogs = cnpg_imaging::catalog::read(&catalog_path).unwrap();
    let mut pinned = 0;
    for catalog in &catalogs {
        assert_eq!(catalog.kind, "ClusterImageCatalog");
        for entry in &catalog.spec.images {
            let (tagged, digest) = entry.image.rsplit_once('@').unwrap();
            let repository = tagged.rsplit_once(':').unwrap().0;
            let config = registry
                .skopeo_inspect(&format!("{repository}@{digest}"), &["--config"])
                .unwrap();
            assert_eq!(config["config"]["User"], "26:26", "{}", entry.image);
            assert!(entry.major >= 15, "{}", entry.major);
            pinned += 1;
        }
    }
    assert!(
        pinned >= 6,
        "every built PostgreSQL image is in a catalog: {catalogs:#?}"
    );

    let before = std::fs::read(&catalog_path).unwrap();
    let uploads = registry.blob_uploads();
    let second = rebuild(&publish(with_binaries())).await.unwrap();
    assert_eq!(second.blobs_uploaded, 0, "{second:#?}");
    assert_eq!(registry.blob_uploads(), uploads);
    assert_eq!(std::fs::read(&catalog_path).unwrap(), before);
}
