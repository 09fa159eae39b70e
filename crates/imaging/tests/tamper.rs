//! The tamper table: everything someone between the repository's signing key and us (a mirror,
//! the network, the registry) could change, done to a repository and a registry that already
//! published once. Each case must fail `build` and `rebuild` with a message naming the cause,
//! before anything is written to the output or pushed, leaving the catalog byte-identical.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

mod support;

use std::path::{Path, PathBuf};

use cnpg_imaging::layout::Target;
use cnpg_imaging::pipeline::{Options, build};
use cnpg_imaging::publish::{PublishOptions, RunReport, rebuild};
use cnpg_imaging::registry::{Credentials, Password, Pusher};
use cnpg_telemetry::error_chain;
use cnpg_testkit::debrepo::DebRepo;
use cnpg_testkit::registry::Registry;
use support::{SUITE, now, operand, operand_images_yaml, repository};

/// A repository and a registry after a first publication, with an upstream update since
/// (PostgreSQL 99 went from 99.1-1 to 99.1-2) that nobody built yet.
struct Stage {
    registry: Registry,
    repo: DebRepo,
    spec: tempfile::TempDir,
    work: tempfile::TempDir,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn flip_last_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

impl Stage {
    async fn new() -> Self {
        let registry = Registry::start().unwrap();
        let repo = repository(vec![operand(98, "98.1-1"), operand(99, "99.1-1")]);
        repo.publish(SUITE, now() - 7200, 2 * 86_400, None).unwrap();
        let spec = repo.spec(SUITE, &operand_images_yaml()).unwrap();
        let stage = Self {
            registry,
            repo,
            spec,
            work: tempfile::tempdir().unwrap(),
        };
        stage.rebuild().await.expect("the first publication");
        copy_dir(&stage.dists(), &stage.work.path().join("dists-first"));
        let mut stage = stage;
        stage.repo.add(operand(99, "99.1-2")).unwrap();
        stage.repo.publish(SUITE, now() - 3600, 2 * 86_400, None).unwrap();
        stage
    }

    fn dists(&self) -> PathBuf {
        self.repo.root().join(format!("dists/{SUITE}"))
    }

    fn catalog(&self) -> PathBuf {
        self.work.path().join("catalog.yaml")
    }

    fn options(&self) -> Options {
        let mut options = support::options(&self.repo, self.spec.path(), &self.work.path().join("cache"));
        options.only = vec!["postgresql-98-minimal".into(), "postgresql-99-minimal".into()];
        options.locks_to = Some(self.work.path().join("locks"));
        options.state_dir = Some(self.work.path().join("state"));
        options
    }

    async fn rebuild(&self) -> Result<RunReport, cnpg_imaging::publish::Error> {
        self.rebuild_with(self.options()).await
    }

    fn pusher(&self) -> Pusher {
        Pusher::new(
            format!("{}/cnpg", self.registry.host()).parse().unwrap(),
            Some(Credentials {
                username: self.registry.user.clone(),
                password: Password::new(self.registry.password.clone()),
            }),
            Some(std::fs::read(self.registry.ca_file()).unwrap()),
        )
    }

    async fn rebuild_with(&self, build: Options) -> Result<RunReport, cnpg_imaging::publish::Error> {
        rebuild(&PublishOptions {
            build,
            pusher: self.pusher(),
            catalog_out: self.catalog(),
            publisher: "cnpg-rs-tests".into(),
        })
        .await
    }

    fn locks(&self) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = std::fs::read_dir(self.work.path().join("locks"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// `rebuild` (and `build`, unless `registry_only`) must fail saying every one of `says`,
    /// with nothing written, pushed or changed.
    async fn refused(&self, says: &[&str], registry_only: bool) {
        let catalog = std::fs::read(self.catalog()).unwrap();
        let writes = self.registry.writes();
        let locks = self.locks();
        let check = |what: &str, message: &str| {
            for needle in says {
                assert!(message.contains(needle), "{what} does not say `{needle}`: {message}");
            }
        };
        if !registry_only {
            let out = self.work.path().join("oci");
            let err = build(&self.options(), &Target::Oci(out.clone()))
                .await
                .expect_err("build must fail");
            check("build", &error_chain(&err));
            assert!(!out.exists(), "build wrote its output before failing");
        }
        let err = self.rebuild().await.expect_err("rebuild must fail");
        check("rebuild", &error_chain(&err));
        assert_eq!(
            self.registry.writes(),
            writes,
            "rebuild pushed something:\n{}",
            self.registry.log()
        );
        assert_eq!(std::fs::read(self.catalog()).unwrap(), catalog, "the catalog changed");
        assert_eq!(self.locks(), locks, "the locks changed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsigned_inrelease() {
    let stage = Stage::new().await;
    std::fs::copy(stage.dists().join("Release"), stage.dists().join("InRelease")).unwrap();
    stage
        .refused(&[&format!("dists/{SUITE}/InRelease"), "not signed"], false)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inrelease_signed_with_another_key() {
    let stage = Stage::new().await;
    let intruder = stage
        .repo
        .gpg
        .generate("Intruder <i@example.org>", "ed25519", "1y", None)
        .unwrap();
    stage
        .repo
        .publish(SUITE, now() - 1800, 86_400, Some(&intruder))
        .unwrap();
    stage
        .refused(&["InRelease", "not a pinned signing key", &intruder], false)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_in_inrelease() {
    let stage = Stage::new().await;
    let path = stage.dists().join("InRelease");
    let text = std::fs::read_to_string(&path).unwrap();
    // The first hex digit of the Packages hash, inside the signed text.
    let at = text.find("SHA256:\n ").unwrap() + "SHA256:\n ".len();
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&path, bytes).unwrap();
    stage
        .refused(
            &[
                "InRelease",
                "signature check failed",
                "names a pinned key but does not hold",
            ],
            false,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_signed_for_another_suite() {
    let stage = Stage::new().await;
    stage.repo.publish("testing", now() - 1800, 86_400, None).unwrap();
    let testing = stage.repo.root().join("dists/testing/InRelease");
    std::fs::copy(testing, stage.dists().join("InRelease")).unwrap();
    stage
        .refused(&[&format!("dists/{SUITE}/InRelease"), "is signed for suite"], false)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_in_packages() {
    let stage = Stage::new().await;
    flip_last_byte(&stage.dists().join("main/binary-amd64/Packages"));
    stage.refused(&["main/binary-amd64/Packages", "tampered"], false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_in_a_package() {
    let stage = Stage::new().await;
    flip_last_byte(&stage.repo.root().join("pool/main/postgresql-99_99.1-2_amd64.deb"));
    stage.refused(&["postgresql-99 99.1-2", "tampered"], false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_packages_entry_served_with_another_genuine_file() {
    let stage = Stage::new().await;
    let pool = stage.repo.root().join("pool/main");
    std::fs::copy(
        pool.join("postgresql-98_98.1-1_amd64.deb"),
        pool.join("postgresql-99_99.1-2_amd64.deb"),
    )
    .unwrap();
    stage.refused(&["postgresql-99 99.1-2", "tampered"], false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_whose_valid_until_passed() {
    let stage = Stage::new().await;
    stage.repo.publish(SUITE, now() - 10 * 86_400, 86_400, None).unwrap();
    stage.refused(&["InRelease", "expired", "Valid-Until"], false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_older_release_of_the_same_suite() {
    let stage = Stage::new().await;
    stage.rebuild().await.expect("the update is published");
    // The mirror serves the first publication again: validly signed, not expired, older.
    std::fs::remove_dir_all(stage.dists()).unwrap();
    copy_dir(&stage.work.path().join("dists-first"), &stage.dists());
    stage.refused(&["InRelease", "replayed", "older"], false).await;

    // The memory is in the state directory, not the cache: the daily job starts with an empty
    // cache volume and its state on a persistent one, and still refuses the replay.
    let mut fresh = stage.options();
    fresh.cache_dir = stage.work.path().join("fresh-cache");
    let err = build(&fresh, &Target::Oci(stage.work.path().join("oci")))
        .await
        .expect_err("build must fail");
    let message = error_chain(&err);
    assert!(message.contains("replayed") && message.contains("older"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_downgraded_package_version() {
    let mut stage = Stage::new().await;
    stage.rebuild().await.expect("the update is published");
    // A newer, validly signed index that no longer lists 99.1-2: the resolver falls back.
    stage.repo.withdraw("postgresql-99", "99.1-2");
    stage.repo.publish(SUITE, now() - 1800, 86_400, None).unwrap();
    stage
        .refused(&["downgrade refused", "postgresql-99 99.1-2 → 99.1-1"], false)
        .await;

    // A fresh machine (no cache, no locks) remembers nothing but the registry: the image
    // published there is what the new one may not be older than.
    let writes = stage.registry.writes();
    let mut fresh = stage.options();
    fresh.locks_to = None;
    fresh.cache_dir = stage.work.path().join("fresh-cache");
    let err = stage.rebuild_with(fresh).await.expect_err("rebuild must fail");
    let message = error_chain(&err);
    assert!(
        message.contains("older than in the published image") && message.contains("99.1-2 → 99.1-1"),
        "{message}"
    );
    assert_eq!(stage.registry.writes(), writes, "nothing pushed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_serving_a_blob_that_does_not_match_its_digest() {
    let mut stage = Stage::new().await;
    stage.rebuild().await.expect("the update is published");
    // The previous image's lock, which rebuild reads back before pushing a change, is
    // altered in the registry's storage: same length, one byte different.
    let mut altered = 0;
    for data in stage.registry.blob_files() {
        let text = std::fs::read_to_string(&data).unwrap_or_default();
        if text.contains("\"lock_version\"") && text.contains("\"99.1-2\"") {
            std::fs::write(&data, text.replacen("test operand", "test operanD", 1)).unwrap();
            altered += 1;
        }
    }
    assert!(altered > 0, "no lock blob found in the registry's storage");
    stage.repo.add(operand(99, "99.1-3")).unwrap();
    stage.repo.publish(SUITE, now() - 1800, 86_400, None).unwrap();
    stage.refused(&["postgresql-99-minimal", "igest"], true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inrelease_larger_than_apt_reads() {
    let stage = Stage::new().await;
    // A mirror answering with an endless InRelease: refused at apt's 10 MB, before parsing.
    let inrelease = stage.dists().join("InRelease");
    let mut huge = std::fs::read(&inrelease).unwrap();
    huge.resize(
        usize::try_from(cnpg_imaging::repo::MAX_INRELEASE_BYTES).unwrap() + 1,
        b'\n',
    );
    std::fs::write(&inrelease, huge).unwrap();
    stage.refused(&["InRelease", "larger than 10485760 bytes"], false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_whose_digest_is_a_path() {
    let stage = Stage::new().await;
    // A lock handed to `build --locks` names a file outside the cache as a package's digest;
    // a corrupt cached copy is deleted and fetched again, so the file would be deleted.
    let victim = stage.work.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let evil = stage.work.path().join("evil-locks");
    copy_dir(&stage.work.path().join("locks"), &evil);
    let mut planted = 0;
    for entry in std::fs::read_dir(&evil).unwrap() {
        let path = entry.unwrap().path();
        let mut lock: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        lock["layers"][0]["packages"][0]["sha256"] = "../../victim.txt".into();
        std::fs::write(&path, serde_json::to_vec(&lock).unwrap()).unwrap();
        planted += 1;
    }
    assert!(planted > 0);
    let mut options = stage.options();
    options.locks_from = Some(evil);
    options.locks_to = None;
    let out = stage.work.path().join("oci");
    let err = build(&options, &Target::Oci(out.clone()))
        .await
        .expect_err("build must fail");
    let message = error_chain(&err);
    assert!(
        message.contains("../../victim.txt") && message.contains("not 64 lowercase hexadecimal digits"),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_planted_at_the_moving_tag_with_our_build_key_is_built_over() {
    use cnpg_imaging::oci::{Blob, Index, MEDIA_INDEX};

    let stage = Stage::new().await;
    let published = stage.rebuild().await.expect("the update is published");
    let ours = published
        .images
        .iter()
        .find(|i| i.image == "postgresql-99-minimal")
        .unwrap()
        .clone();
    // Someone who can push copies our image index with our build key, changes an annotation,
    // and moves the moving tags (all but the dated one, pushed last) to it.
    let pusher = stage.pusher();
    let repo = ours.repository.rsplit('/').next().unwrap();
    let moving = &ours.tags[..ours.tags.len() - 1];
    assert!(!moving.is_empty(), "{ours:#?}");
    let bytes = pusher
        .manifest(repo, &ours.digest, &[MEDIA_INDEX])
        .await
        .unwrap()
        .unwrap();
    let mut index: Index = serde_json::from_slice(&bytes).unwrap();
    index.annotations.insert("org.example.planted".into(), "yes".into());
    let planted = Blob::json(&index, MEDIA_INDEX).unwrap();
    pusher
        .put_manifest(repo, &planted.descriptor.digest, &planted)
        .await
        .unwrap();
    for tag in moving {
        assert!(pusher.tag(repo, tag, &planted).await.unwrap());
    }
    let catalog = std::fs::read(stage.catalog()).unwrap();

    // The next run does not take the registry's word: the tags point at our image again.
    let next = stage.rebuild().await.expect("rebuild over the planted image");
    let run = next.images.iter().find(|i| i.image == ours.image).unwrap();
    assert_eq!(
        run.unexpected_registry_digest.as_deref(),
        Some(planted.descriptor.digest.as_str()),
        "{run:#?}"
    );
    assert_eq!(run.digest, ours.digest, "the same locks give our same image");
    assert!(!run.changed && run.blobs_uploaded == 0, "{run:#?}");
    for tag in moving {
        assert_eq!(
            pusher.digest(repo, tag).await.unwrap().as_deref(),
            Some(ours.digest.as_str()),
            "tag {tag}"
        );
    }
    assert_eq!(
        std::fs::read(stage.catalog()).unwrap(),
        catalog,
        "the catalog still pins ours"
    );
}
