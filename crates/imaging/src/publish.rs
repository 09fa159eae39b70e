//! `rebuild`: build and scan every image, push what changed to a registry with its SBOM, then
//! write the ClusterImageCatalog of pinned digests and a run report. The catalog is written
//! only when every push succeeded; a failed run leaves it exactly as it was.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::catalog::{self, CatalogImage, ClusterImageCatalog};
use crate::image::ANNOTATION_BUILD_KEY;
use crate::lock::Lock;
use crate::oci::{Index, MEDIA_INDEX, MEDIA_MANIFEST, MEDIA_SPDX, Manifest, rfc3339};
use crate::pipeline::{self, Options, Produced, Skipped};
use crate::registry::{self, Counters, Pusher};

/// What to publish and where.
#[derive(Debug)]
pub struct PublishOptions {
    pub build: Options,
    pub pusher: Pusher,
    pub catalog_out: PathBuf,
    /// `images.cnpg.io/publisher` of the catalogs.
    pub publisher: String,
}

/// Publishing failed; the catalog was not touched.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Build(#[from] pipeline::Error),
    #[error("image {image}")]
    Push {
        image: String,
        source: Box<registry::Error>,
    },
    #[error(transparent)]
    Catalog(#[from] catalog::Error),
    #[error("image {image}: the previous version's lock is unreadable")]
    PreviousLock { image: String, source: serde_json::Error },
}

/// The run report (`--report FILE`).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub tool: String,
    pub registry: String,
    pub catalog: String,
    pub catalog_changed: bool,
    pub images: Vec<ImageRun>,
    pub skipped: Vec<Skipped>,
    pub blobs_uploaded: u64,
    pub bytes_uploaded: u64,
}

/// One image of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ImageRun {
    pub image: String,
    pub repository: String,
    pub digest: String,
    pub previous_digest: Option<String>,
    /// The digest the registry's moving tag pointed at when it was not the one our last
    /// catalog recorded (someone else pushed there); the tag now points at ours again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unexpected_registry_digest: Option<String>,
    pub changed: bool,
    pub tags: Vec<String>,
    pub bytes_uploaded: u64,
    pub blobs_uploaded: u64,
    pub blobs_mounted: u64,
    pub packages: PackageDiff,
}

/// How the packages of an image changed since the version it replaces.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PackageDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub upgraded: Vec<Upgrade>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Upgrade {
    pub package: String,
    pub from: String,
    pub to: String,
}

/// Where an image goes: `postgresql-<flavor>-<os>` for operands (one catalog each), its own
/// name otherwise.
fn repository(name: &str, lock: &Lock) -> String {
    match (lock.major, name.rsplit_once('-')) {
        (Some(_), Some((_, flavor))) => format!("postgresql-{flavor}-{}", lock.os_release.version_codename),
        _ => name.to_owned(),
    }
}

/// `17.12` → [`17`, `17.12`]; the dated tag is added on change.
fn moving_tags(version: &str) -> Vec<String> {
    let major = version.split(['.', '-']).next().unwrap_or(version).to_owned();
    if major == version {
        vec![major]
    } else {
        vec![major, version.to_owned()]
    }
}

/// The catalog entry of an operand image: kept verbatim from the previous catalog when it
/// pins the same digest; else naming the dated tag of this change, or the version tag.
fn catalog_entry(
    previous: &[ClusterImageCatalog],
    catalog: &str,
    major: u32,
    repository: &str,
    digest: &str,
    tag: &str,
) -> CatalogImage {
    previous
        .iter()
        .filter(|c| c.metadata.name == catalog)
        .flat_map(|c| c.spec.images.iter())
        .find(|e| e.major == major && e.digest() == Some(digest))
        .cloned()
        .unwrap_or_else(|| CatalogImage {
            major,
            image: format!("{repository}:{tag}@{digest}"),
        })
}

/// The digest the catalog `catalog` of `previous` pins for `major`.
fn recorded_digest(previous: &[ClusterImageCatalog], catalog: &str, major: u32) -> Option<String> {
    previous
        .iter()
        .filter(|c| c.metadata.name == catalog)
        .flat_map(|c| c.spec.images.iter())
        .find(|e| e.major == major)
        .and_then(|e| e.digest())
        .map(str::to_owned)
}

/// Runs the whole daily job.
pub async fn rebuild(options: &PublishOptions) -> Result<RunReport, Error> {
    let pusher = &options.pusher;
    let today: String = rfc3339(options.build.now)
        .chars()
        .take(10)
        .filter(|c| *c != '-')
        .collect();
    let previous_catalogs = catalog::read(&options.catalog_out)?;
    let mut runs = Vec::new();
    let mut entries: BTreeMap<(String, String), Vec<CatalogImage>> = BTreeMap::new();

    // 1. Locks. An image whose registry version was built from the same locks by the same
    //    tool is bit-for-bit what we would build: it is not built again.
    let locked = pipeline::lock_all(&options.build).await?;
    let all_locks = locked.locks.clone();
    let mut by_image: BTreeMap<String, Vec<&Lock>> = BTreeMap::new();
    for lock in &locked.locks {
        by_image.entry(lock.image.clone()).or_default().push(lock);
    }
    let mut to_build = Vec::new();
    // Image → (what the registry's tag held, what our catalog recorded), where they differ.
    let mut unexpected_digests: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut previous_locks: BTreeMap<(String, String), Option<Vec<u8>>> = BTreeMap::new();
    for (name, locks) in &by_image {
        let Some(lock) = locks.first() else { continue };
        let repo = repository(name, lock);
        let fail = |source: registry::Error| Error::Push {
            image: name.clone(),
            source: Box::new(source),
        };
        let tag = pipeline::tag_of(lock);
        let current = pusher
            .digest(&repo, moving_tags(&tag).last().map_or("latest", String::as_str))
            .await
            .map_err(fail)?;
        let key = pipeline::build_key(&options.build.tool, locks);
        // What our own last catalog pinned for this image, if it is an operand. The registry
        // is not trusted to say what we published: an image planted at the moving tag, with
        // our build key copied into its annotations, must not pass for ours.
        let recorded = lock.major.and_then(|major| {
            let flavor = name.rsplit_once('-').map_or("", |(_, f)| f);
            let catalog = format!("postgresql-{flavor}-{}", lock.os_release.version_codename);
            recorded_digest(&previous_catalogs, &catalog, major)
        });
        let unexpected = match (&current, &recorded) {
            (Some(found), Some(ours)) if found != ours => {
                tracing::warn!(image = %name, registry = %found, catalog = %ours, "the registry's tag points at an image our last catalog did not record: building over it");
                Some(found.clone())
            }
            _ => None,
        };
        // The image to compare with: ours when we recorded one, else whatever the tag holds.
        let current = match (unexpected, &recorded) {
            (Some(found), Some(ours)) => {
                unexpected_digests.insert(name.clone(), (found, ours.clone()));
                recorded.clone()
            }
            _ => current,
        };
        let same = match (&current, &recorded) {
            // Ours, and the tag still points at it: unchanged if built from the same locks.
            (Some(digest), Some(_)) if !unexpected_digests.contains_key(name) => pusher
                .manifest(&repo, digest, &[MEDIA_INDEX])
                .await
                .map_err(fail)?
                .and_then(|bytes| serde_json::from_slice::<Index>(&bytes).ok())
                .is_some_and(|index| index.annotations.get(ANNOTATION_BUILD_KEY) == Some(&key)),
            // Not an operand we recorded (the operator, the pooler, the rebuilder, or a first
            // run): built again, which costs little since the same locks give the same digest
            // and an image the registry already holds is not pushed again.
            _ => false,
        };
        // Before anything is built or pushed: no package may go back in version.
        if let (false, Some(digest)) = (same, &current) {
            for lock in locks {
                let old = previous_lock(pusher, &repo, digest, &lock.architecture)
                    .await
                    .map_err(fail)?;
                let found = downgrades(&old, lock, name)?;
                if !found.is_empty() && !options.build.allow_downgrade {
                    return Err(Error::Build(pipeline::Error::Downgrade {
                        image: name.clone(),
                        against: "the published image".into(),
                        packages: found.join(", "),
                    }));
                }
                previous_locks.insert((name.clone(), lock.architecture.clone()), old);
            }
        }
        match (same, current) {
            (true, Some(digest)) => {
                tracing::info!(image = %name, %digest, "unchanged: built from the same locks by the same tool");
                if let Some(major) = lock.major {
                    let flavor = name.rsplit_once('-').map_or("", |(_, f)| f).to_owned();
                    let os = lock.os_release.version_codename.clone();
                    let catalog = format!("postgresql-{flavor}-{os}");
                    let entry = catalog_entry(&previous_catalogs, &catalog, major, &pusher.name(&repo), &digest, &tag);
                    entries.entry((flavor, os)).or_default().push(entry);
                }
                runs.push(ImageRun {
                    image: name.clone(),
                    repository: pusher.name(&repo),
                    digest: digest.clone(),
                    previous_digest: Some(digest),
                    unexpected_registry_digest: None,
                    changed: false,
                    tags: Vec::new(),
                    bytes_uploaded: 0,
                    blobs_uploaded: 0,
                    blobs_mounted: 0,
                    packages: PackageDiff::default(),
                });
            }
            _ => to_build.extend(locks.iter().map(|l| (*l).clone())),
        }
    }

    // 2. Build, scan and push the rest.
    let locked = pipeline::Locked {
        locks: to_build,
        unavailable: locked.unavailable,
        sources: locked.sources,
    };
    let Produced {
        built,
        locks,
        sboms,
        report: build_report,
    } = pipeline::produce_from(&options.build, locked).await?;
    for image in &built {
        let Some(lock) = locks.iter().find(|l| l.image == image.name) else {
            continue;
        };
        let repo = repository(&image.name, lock);
        let fail = |source: registry::Error| Error::Push {
            image: image.name.clone(),
            source: Box::new(source),
        };
        let counters = Counters::default();
        let digest = image.index.descriptor.digest.clone();
        let tags = moving_tags(&image.tag);
        let unexpected = unexpected_digests.remove(&image.name);
        // What this image replaces: our recorded one where someone else took the tag.
        let previous = match &unexpected {
            Some((_, ours)) => Some(ours.clone()),
            None => pusher
                .digest(&repo, tags.last().map_or("latest", String::as_str))
                .await
                .map_err(fail)?,
        };

        // Blobs and manifests, unless the registry already has this exact image.
        if pusher.digest(&repo, &digest).await.map_err(fail)?.is_none() {
            for platform in &image.platforms {
                for layer in &platform.layers {
                    pusher
                        .ensure_blob(&repo, &layer.digest, &layer.blob, &counters)
                        .await
                        .map_err(fail)?;
                }
                let config = &platform.config;
                pusher
                    .ensure_blob(&repo, &config.descriptor.digest, &config.bytes, &counters)
                    .await
                    .map_err(fail)?;
                let manifest = &platform.manifest;
                pusher
                    .put_manifest(&repo, &manifest.descriptor.digest, manifest)
                    .await
                    .map_err(fail)?;
            }
            pusher.put_manifest(&repo, &digest, &image.index).await.map_err(fail)?;
        }
        // SBOMs, as referrers of each platform manifest.
        for (_, _, artifact) in sboms.iter().filter(|(name, _, _)| name == &image.name) {
            let manifest = &artifact.manifest;
            if pusher
                .digest(&repo, &manifest.descriptor.digest)
                .await
                .map_err(fail)?
                .is_none()
            {
                for blob in [&artifact.empty, &artifact.spdx, &artifact.lock] {
                    pusher
                        .ensure_blob(&repo, &blob.descriptor.digest, &blob.bytes, &counters)
                        .await
                        .map_err(fail)?;
                }
                pusher
                    .put_manifest(&repo, &manifest.descriptor.digest, manifest)
                    .await
                    .map_err(fail)?;
            }
            if let Some(subject) = artifact.subject() {
                let mut d = manifest.descriptor.clone();
                d.artifact_type = Some(MEDIA_SPDX.to_owned());
                pusher.add_referrer(&repo, subject, &d).await.map_err(fail)?;
            }
        }
        // Tags: the moving ones follow the digest; a dated one marks each change.
        let changed = previous.as_deref() != Some(digest.as_str());
        let mut pushed_tags = Vec::new();
        for tag in &tags {
            if pusher.tag(&repo, tag, &image.index).await.map_err(fail)? {
                pushed_tags.push(tag.clone());
            }
        }
        let mut entry_tag = image.tag.clone();
        if changed {
            let base = format!("{}-{today}", image.tag);
            let mut candidate = base.clone();
            let mut n = 1;
            // A dated tag is immutable: never move one that points elsewhere.
            while let Some(existing) = pusher.digest(&repo, &candidate).await.map_err(fail)? {
                if existing == digest {
                    break;
                }
                n += 1;
                candidate = format!("{base}.{n}");
            }
            pusher.tag(&repo, &candidate, &image.index).await.map_err(fail)?;
            pushed_tags.push(candidate.clone());
            entry_tag = candidate;
        }
        let packages = match (&previous, changed) {
            (Some(prev), true) => {
                let key = (image.name.clone(), lock.architecture.clone());
                let old = match previous_locks.remove(&key) {
                    Some(old) => old,
                    None => previous_lock(pusher, &repo, prev, &lock.architecture)
                        .await
                        .map_err(fail)?,
                };
                diff(&old, lock, &image.name)?
            }
            _ => PackageDiff::default(),
        };
        if let Some(major) = lock.major {
            let flavor = image.name.rsplit_once('-').map_or("", |(_, f)| f).to_owned();
            let os = lock.os_release.version_codename.clone();
            let catalog = format!("postgresql-{flavor}-{os}");
            let entry = catalog_entry(
                &previous_catalogs,
                &catalog,
                major,
                &pusher.name(&repo),
                &digest,
                &entry_tag,
            );
            entries.entry((flavor, os)).or_default().push(entry);
        }
        tracing::info!(image = %image.name, repository = %pusher.name(&repo), %digest, changed, blobs = counters.blobs_uploaded.load(Ordering::Relaxed), "published");
        runs.push(ImageRun {
            image: image.name.clone(),
            repository: pusher.name(&repo),
            digest,
            previous_digest: previous,
            unexpected_registry_digest: unexpected.map(|(found, _)| found),
            changed,
            tags: pushed_tags,
            bytes_uploaded: counters.bytes_uploaded.load(Ordering::Relaxed),
            blobs_uploaded: counters.blobs_uploaded.load(Ordering::Relaxed),
            blobs_mounted: counters.blobs_mounted.load(Ordering::Relaxed),
            packages,
        });
    }
    runs.sort_by(|a, b| a.image.cmp(&b.image));

    // 3. Every push succeeded: now the catalog.
    let mut catalogs = Vec::new();
    for ((flavor, os), images) in entries {
        let name = format!("postgresql-{flavor}-{os}");
        let previous = previous_catalogs.iter().find(|c| c.metadata.name == name);
        let mut sorted = images.clone();
        sorted.sort_by_key(|i| i.major);
        let unchanged = previous.is_some_and(|p| p.spec.images == sorted);
        let date = match previous {
            Some(p) if unchanged => p
                .metadata
                .labels
                .get("images.cnpg.io/date")
                .cloned()
                .unwrap_or_else(|| today.clone()),
            _ => today.clone(),
        };
        catalogs.push(ClusterImageCatalog::new(
            &flavor,
            &os,
            &options.publisher,
            &date,
            images,
        ));
    }
    // Catalogs of this file that this run did not build stay as they were.
    for previous in &previous_catalogs {
        if !catalogs.iter().any(|c| c.metadata.name == previous.metadata.name) {
            catalogs.push(previous.clone());
        }
    }
    let text = catalog::render(&catalogs)?;
    let catalog_changed = catalog::write(&options.catalog_out, &text)?;
    pipeline::write_locks(&options.build, &all_locks)?;
    Ok(RunReport {
        tool: options.build.tool.clone(),
        registry: pusher.target.to_string(),
        catalog: options.catalog_out.display().to_string(),
        catalog_changed,
        blobs_uploaded: runs.iter().map(|r| r.blobs_uploaded).sum(),
        bytes_uploaded: runs.iter().map(|r| r.bytes_uploaded).sum(),
        images: runs,
        skipped: build_report.skipped,
    })
}

/// The lock of the image `digest` replaces, read from its SBOM in the registry (none if the
/// previous image has no SBOM we can find).
async fn previous_lock(
    pusher: &Pusher,
    repo: &str,
    digest: &str,
    arch: &str,
) -> Result<Option<Vec<u8>>, registry::Error> {
    let Some(index) = pusher.manifest(repo, digest, &[MEDIA_INDEX]).await? else {
        return Ok(None);
    };
    let Ok(index) = serde_json::from_slice::<Index>(&index) else {
        return Ok(None);
    };
    let want = crate::oci::Platform::from_debian(arch).architecture;
    let Some(platform) = index
        .manifests
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(|p| p.architecture == want))
    else {
        return Ok(None);
    };
    let Some(referrers) = pusher
        .manifest(repo, &platform.digest.replace(':', "-"), &[MEDIA_INDEX])
        .await?
    else {
        return Ok(None);
    };
    let Ok(referrers) = serde_json::from_slice::<Index>(&referrers) else {
        return Ok(None);
    };
    for sbom in referrers
        .manifests
        .iter()
        .filter(|d| d.artifact_type.as_deref() == Some(MEDIA_SPDX))
    {
        let Some(manifest) = pusher.manifest(repo, &sbom.digest, &[MEDIA_MANIFEST]).await? else {
            continue;
        };
        let Ok(manifest) = serde_json::from_slice::<Manifest>(&manifest) else {
            continue;
        };
        if let Some(layer) = manifest.layers.iter().find(|l| l.media_type == crate::oci::MEDIA_LOCK) {
            return Ok(Some(pusher.blob(repo, &layer.digest).await?));
        }
    }
    Ok(None)
}

fn parse_previous(bytes: &[u8], image: &str) -> Result<Lock, Error> {
    serde_json::from_slice(bytes).map_err(|source| Error::PreviousLock {
        image: image.to_owned(),
        source,
    })
}

/// `name old → new` for every package of `lock` older than in the `previous` lock.
fn downgrades(previous: &Option<Vec<u8>>, lock: &Lock, image: &str) -> Result<Vec<String>, Error> {
    let Some(bytes) = previous else { return Ok(Vec::new()) };
    Ok(lock.downgrades_from(&parse_previous(bytes, image)?))
}

fn diff(previous: &Option<Vec<u8>>, lock: &Lock, image: &str) -> Result<PackageDiff, Error> {
    let Some(bytes) = previous else {
        return Ok(PackageDiff::default());
    };
    let old = parse_previous(bytes, image)?;
    let before: BTreeMap<&str, &str> = old.packages().map(|p| (p.name.as_str(), p.version.as_str())).collect();
    let after: BTreeMap<&str, &str> = lock.packages().map(|p| (p.name.as_str(), p.version.as_str())).collect();
    let mut out = PackageDiff::default();
    for (name, version) in &after {
        match before.get(name) {
            None => out.added.push(format!("{name} {version}")),
            Some(old) if old != version => out.upgraded.push(Upgrade {
                package: (*name).to_owned(),
                from: (*old).to_owned(),
                to: (*version).to_owned(),
            }),
            Some(_) => {}
        }
    }
    out.removed = before
        .iter()
        .filter(|(n, _)| !after.contains_key(*n))
        .map(|(n, v)| format!("{n} {v}"))
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_tags_are_major_and_version() {
        assert_eq!(moving_tags("17.12"), ["17", "17.12"]);
        assert_eq!(moving_tags("0.1.0"), ["0", "0.1.0"]);
        assert_eq!(moving_tags("18"), ["18"]);
    }
}
