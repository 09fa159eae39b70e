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
    let root = std::env::var_os("CNPG_RS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/cnpg-rs"));
    root.join("image-cache")
}

fn options(only: &[&str], out: Target) -> Options {
    let mut site = Site::from_host_apt().expect("this machine's apt sources name a Debian mirror");
    // This machine's unstable mirror is frozen; accepting it is the site's explicit choice.
    site.allow_expired("debian", "sid");
    let spec = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../images"));
    let mut options = Options::new(spec, site, cache(), out);
    options.only = only.iter().map(|s| s.to_string()).collect();
    options
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_17_minimal_is_complete_and_rebuilds_to_the_same_digest() {
    let work = tempfile::tempdir().unwrap();
    let mut first = options(&["postgresql-17-minimal"], Target::Oci(work.path().join("a")));
    first.locks_to = Some(work.path().join("locks"));
    let a = build(&first).await.unwrap();
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

    let mut second = options(&["postgresql-17-minimal"], Target::Oci(work.path().join("b")));
    second.locks_from = Some(work.path().join("locks"));
    let b = build(&second).await.unwrap();
    assert_eq!(image.digest, b.images[0].digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn base_is_built_for_amd64_and_arm64_from_the_same_spec() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("oci");
    let mut opts = options(&["base"], Target::Oci(layout.clone()));
    opts.architectures = vec!["amd64".into(), "arm64".into()];
    let report = build(&opts).await.unwrap();
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
    let report = build(&options(
        &["postgresql-17-minimal"],
        Target::DockerArchive(archive.clone()),
    ))
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
    run(Command::new("docker").args([
        "run",
        "-d",
        "--name",
        &name,
        "--read-only",
        "--user",
        "26:26",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
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
