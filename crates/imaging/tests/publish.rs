//! `rebuild` against a real registry (Debian's docker-registry, TLS with the test's CA,
//! htpasswd): pushes, SBOM referrers, tags, the catalog; a rerun with nothing changed uploads
//! nothing and leaves the catalog byte-identical; wrong credentials, an unreachable registry
//! and a registry failing halfway all fail the run and leave the catalog as it was.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

mod support;

use cnpg_telemetry::error_chain;

use std::path::Path;

use cnpg_imaging::catalog::{self, ClusterImageCatalog};
use cnpg_imaging::publish::{PublishOptions, RunReport, rebuild};
use cnpg_imaging::registry::{Credentials, Password, Pusher, Target};
use cnpg_testkit::debrepo::DebRepo;
use cnpg_testkit::registry::Registry;
use support::{SUITE, now, operand, operand_images_yaml, options, repository};

fn pusher(registry: &Registry, host: &str, password: &str) -> Pusher {
    let target: Target = format!("{host}/cnpg").parse().unwrap();
    let credentials = Credentials {
        username: registry.user.clone(),
        password: Password::new(password.to_owned()),
    };
    Pusher::new(
        target,
        Some(credentials),
        Some(std::fs::read(registry.ca_file()).unwrap()),
    )
}

async fn publish(
    repo: &DebRepo,
    spec: &Path,
    work: &Path,
    pusher: Pusher,
) -> Result<RunReport, cnpg_imaging::publish::Error> {
    let mut build = options(repo, spec, &work.join("cache"));
    build.only = vec!["postgresql-98-minimal".into(), "postgresql-99-minimal".into()];
    let options = PublishOptions {
        build,
        pusher,
        catalog_out: work.join("catalog.yaml"),
        publisher: "cnpg-rs-tests".into(),
    };
    rebuild(&options).await
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_then_a_rerun_uploads_nothing_and_a_change_moves_only_its_image() {
    let registry = Registry::start().unwrap();
    let mut repo = repository(vec![operand(98, "98.1-1"), operand(99, "99.1-1")]);
    let spec = repo.spec(SUITE, &operand_images_yaml()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let catalog_path = work.path().join("catalog.yaml");

    // First run: everything is new.
    let first = publish(
        &repo,
        spec.path(),
        work.path(),
        pusher(&registry, &registry.host(), &registry.password),
    )
    .await
    .unwrap();
    assert_eq!(first.images.len(), 2);
    assert!(
        first
            .images
            .iter()
            .all(|i| i.changed && i.blobs_uploaded > 0 && i.previous_digest.is_none()),
        "{first:#?}"
    );
    assert!(first.catalog_changed);
    let uploads = registry.blob_uploads();
    assert!(uploads > 0, "the access log shows the uploads:\n{}", registry.log());

    // The catalog: CloudNativePG's shape, every image pinned by a digest the registry serves.
    let catalogs = catalog::read(&catalog_path).unwrap();
    assert_eq!(catalogs.len(), 1);
    let c: &ClusterImageCatalog = &catalogs[0];
    assert_eq!(
        (c.api_version.as_str(), c.kind.as_str()),
        ("postgresql.cnpg.io/v1", "ClusterImageCatalog")
    );
    assert_eq!(c.metadata.name, "postgresql-minimal-test");
    assert_eq!(c.metadata.labels["images.cnpg.io/family"], "postgresql");
    assert_eq!(c.metadata.labels["images.cnpg.io/type"], "minimal");
    assert_eq!(c.metadata.labels["images.cnpg.io/os"], "test");
    assert_eq!(c.spec.images.iter().map(|i| i.major).collect::<Vec<_>>(), [98, 99]);
    for entry in &c.spec.images {
        let (tagged, digest) = entry.image.rsplit_once('@').unwrap();
        let by_digest = format!("{}@{digest}", tagged.rsplit_once(':').unwrap().0);
        let config = registry.skopeo_inspect(&by_digest, &["--config"]).unwrap();
        assert_eq!(config["config"]["User"], "26:26");
        assert_eq!(
            registry.skopeo_inspect(tagged, &[]).unwrap()["Digest"].as_str(),
            entry.digest(),
            "the dated tag names the same image"
        );
    }
    // Tags: major, major.minor (here the package version) and the dated one.
    let image = &first.images[0];
    assert!(image.tags.iter().any(|t| t.contains('-')), "{:?}", image.tags);

    // The SBOM is a referrer of each platform manifest (tag-schema fallback: this registry
    // has no referrers API).
    let index = registry
        .skopeo_inspect(&format!("{}@{}", image.repository, image.digest), &["--raw"])
        .unwrap();
    let platform = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let referrers = registry
        .skopeo_inspect(
            &format!("{}:{}", image.repository, platform.replace(':', "-")),
            &["--raw"],
        )
        .unwrap();
    assert_eq!(referrers["manifests"][0]["artifactType"], "application/spdx+json");

    // Second run, nothing changed upstream: nothing uploaded, catalog byte-identical.
    let before = std::fs::read(&catalog_path).unwrap();
    let second = publish(
        &repo,
        spec.path(),
        work.path(),
        pusher(&registry, &registry.host(), &registry.password),
    )
    .await
    .unwrap();
    assert!(
        second
            .images
            .iter()
            .all(|i| !i.changed && i.blobs_uploaded == 0 && i.bytes_uploaded == 0),
        "{second:#?}"
    );
    assert_eq!(second.blobs_uploaded, 0);
    assert_eq!(registry.blob_uploads(), uploads, "the registry saw no new upload");
    assert!(!second.catalog_changed);
    assert_eq!(
        std::fs::read(&catalog_path).unwrap(),
        before,
        "the catalog is byte-identical"
    );

    // A new version of one package: only its image changes, and the report says how.
    repo.add(operand(99, "99.1-2")).unwrap();
    repo.publish(SUITE, now(), 86_400, None).unwrap();
    let third = publish(
        &repo,
        spec.path(),
        work.path(),
        pusher(&registry, &registry.host(), &registry.password),
    )
    .await
    .unwrap();
    let (old, new) = (&third.images[0], &third.images[1]);
    assert!(!old.changed && old.blobs_uploaded == 0, "{old:#?}");
    assert!(
        new.changed && new.previous_digest.as_deref() == Some(first.images[1].digest.as_str()),
        "{new:#?}"
    );
    assert_eq!(new.packages.upgraded.len(), 1, "{:#?}", new.packages);
    assert_eq!(
        (
            new.packages.upgraded[0].from.as_str(),
            new.packages.upgraded[0].to.as_str()
        ),
        ("99.1-1", "99.1-2")
    );
    let catalogs = catalog::read(&catalog_path).unwrap();
    assert_eq!(
        catalogs[0].spec.images[0], c.spec.images[0],
        "the unchanged major keeps its exact entry"
    );
    assert_eq!(catalogs[0].spec.images[1].digest(), Some(new.digest.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_runs_leave_the_catalog_exactly_as_it_was() {
    let mut registry = Registry::start().unwrap();
    let mut repo = repository(vec![operand(98, "98.1-1"), operand(99, "99.1-1")]);
    let spec = repo.spec(SUITE, &operand_images_yaml()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let catalog_path = work.path().join("catalog.yaml");
    publish(
        &repo,
        spec.path(),
        work.path(),
        pusher(&registry, &registry.host(), &registry.password),
    )
    .await
    .unwrap();
    let catalog = std::fs::read(&catalog_path).unwrap();
    repo.add(operand(99, "99.1-2")).unwrap();
    repo.publish(SUITE, now(), 86_400, None).unwrap();

    // Wrong credentials.
    let err = publish(
        &repo,
        spec.path(),
        work.path(),
        pusher(&registry, &registry.host(), "wrong"),
    )
    .await
    .unwrap_err();
    let message = error_chain(&err);
    assert!(
        message.to_lowercase().contains("authorized") || message.contains("401"),
        "{message}"
    );
    assert_eq!(std::fs::read(&catalog_path).unwrap(), catalog);

    // Nobody listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = publish(
        &repo,
        spec.path(),
        work.path(),
        pusher(&registry, &format!("127.0.0.1:{closed}"), &registry.password),
    )
    .await
    .unwrap_err();
    assert!(
        error_chain(&err).contains(&format!("127.0.0.1:{closed}")),
        "{}",
        error_chain(&err)
    );
    assert_eq!(std::fs::read(&catalog_path).unwrap(), catalog);

    // Halfway: the unchanged image is checked and tagged fine, then the registry refuses the
    // changed one's blobs (read-only maintenance mode).
    registry.restart(true).unwrap();
    let err = publish(
        &repo,
        spec.path(),
        work.path(),
        pusher(&registry, &registry.host(), &registry.password),
    )
    .await
    .unwrap_err();
    let message = error_chain(&err);
    assert!(
        message.contains("postgresql-99-minimal") && message.contains("blob sha256:"),
        "names the image and blob: {message}"
    );
    assert!(message.contains("the registry answered"), "{message}");
    assert_eq!(
        std::fs::read(&catalog_path).unwrap(),
        catalog,
        "the catalog is untouched"
    );
}
