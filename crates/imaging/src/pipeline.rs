//! `build`: spec → locks → verified packages → images → scan → sink, for every image asked
//! for. Nothing is written to the output unless every image was built and passed its scan.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::assemble::{self, assemble};
use crate::fetch::{self, Fetcher, join};
use crate::image::{self, PlatformImage};
use crate::layout::{self, Built, Target};
use crate::lock::{self, Lock};
use crate::plan::{self, Planned, Planner};
use crate::progress::Progress;
use crate::repo::Provenance;
use crate::sbom;
use crate::scan::{self, Verdict};
use crate::site::Site;
use crate::spec::{self, Spec};

/// What to build and where to.
#[derive(Debug, Clone)]
pub struct Options {
    pub spec_dir: PathBuf,
    pub site: Site,
    /// Image names; empty means every image of the spec.
    pub only: Vec<String>,
    pub cache_dir: PathBuf,
    /// Where what earlier runs learned is kept (the newest `Release` date seen per suite, so
    /// a replayed older one is refused): a directory that outlives the run. The cache
    /// directory when not set.
    pub state_dir: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub binaries: Option<PathBuf>,
    pub architectures: Vec<String>,
    /// Build from these locks instead of resolving.
    pub locks_from: Option<PathBuf>,
    /// Write the locks used here. Locks already there are the previous build's: a package
    /// older now than in them is refused, unless `allow_downgrade`.
    pub locks_to: Option<PathBuf>,
    /// Build even when a package is older than in the previous locks or the published image
    /// (refused by default: a mirror serving older packages, or a replayed index).
    pub allow_downgrade: bool,
    /// Report images this site cannot build instead of failing.
    pub skip_unavailable: bool,
    /// The current time, for signature and Valid-Until checks.
    pub now: u64,
    /// SOURCE_DATE_EPOCH: the newest timestamp any image may carry.
    pub source_date_epoch: Option<u64>,
    /// The identity of the building tool (version and commit), part of every build key.
    pub tool: String,
}

impl Options {
    /// Options building every image of the spec in `spec_dir` for amd64, now, with everything
    /// else off; set the other fields as needed.
    pub fn new(spec_dir: PathBuf, site: Site, cache_dir: PathBuf) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        Self {
            spec_dir,
            site,
            only: Vec::new(),
            cache_dir,
            state_dir: None,
            report: None,
            binaries: None,
            architectures: vec!["amd64".to_owned()],
            locks_from: None,
            locks_to: None,
            allow_downgrade: false,
            skip_unavailable: false,
            now,
            source_date_epoch: None,
            tool: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The build failed; nothing was written to the output.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] spec::Error),
    #[error(transparent)]
    Plan(#[from] plan::Error),
    #[error(transparent)]
    Lock(#[from] lock::Error),
    #[error(transparent)]
    Fetch(#[from] fetch::Error),
    #[error("image {image}")]
    Assemble { image: String, source: assemble::Error },
    #[error("image {image}")]
    Image { image: String, source: image::Error },
    #[error(transparent)]
    Layout(#[from] layout::Error),
    #[error("unknown image `{0}` (known: {1})")]
    UnknownImage(String, String),
    #[error("this site cannot build: {}", .0.join("; "))]
    Unavailable(Vec<String>),
    #[error("the scan failed for {}: see the findings above", .0.join(", "))]
    ScanFailed(Vec<String>),
    #[error("package {package} is in a lock but its repository `{repository}` has no URI in the site")]
    NoUri { package: String, repository: String },
    #[error("failed to write the report {}", .0.display())]
    Report(PathBuf, #[source] std::io::Error),
    #[error("image {image}: failed to make its SBOM")]
    Sbom { image: String, source: sbom::Error },
    #[error("failed to read cached package {}", .0.display())]
    Cache(PathBuf, #[source] std::io::Error),
    #[error(
        "image {image}: downgrade refused, packages older than in {against}: {packages} (a mirror serving older packages, or a replayed index; --allow-downgrade accepts it)"
    )]
    Downgrade {
        image: String,
        against: String,
        packages: String,
    },
}

/// The report of one build (`--report FILE`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: String,
    pub output: String,
    pub images: Vec<ImageReport>,
    pub skipped: Vec<Skipped>,
    pub sources: Vec<Provenance>,
}

/// One image of the report. Sizes and counts are those of its first platform.
#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    pub image: String,
    pub digest: String,
    pub distribution: String,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    pub packages: usize,
    pub scan: &'static str,
    pub findings: Vec<scan::Finding>,
    pub platforms: Vec<PlatformReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformReport {
    pub architecture: String,
    pub digest: String,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    pub packages: usize,
    pub layers: Vec<LayerReport>,
    /// Paths whose setuid/setgid bits the builder removed.
    pub stripped_setid: Vec<String>,
    pub unavailable_optional: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub name: String,
    pub digest: String,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub image: String,
    pub reason: String,
}

/// One platform image with what built it and what the scanner said.
type Outcome = (Lock, PlatformImage, Verdict, Vec<String>);

/// Everything a build made, in memory: nothing is written yet.
#[derive(Debug)]
pub struct Produced {
    pub built: Vec<Built>,
    pub locks: Vec<Lock>,
    /// SBOM artifacts: (image, architecture, artifact).
    pub sboms: Vec<(String, String, sbom::Artifact)>,
    pub report: Report,
}

/// Runs a build and writes the images to `out`, then the SBOMs beside them, the locks and
/// the report. Nothing is written unless every image was built and passed its scan.
pub async fn build(options: &Options, out: &Target) -> Result<Report, Error> {
    let mut produced = produce(options).await?;
    produced.report.output = out.to_string();
    let artifacts: Vec<&sbom::Artifact> = produced.sboms.iter().map(|(_, _, a)| a).collect();
    layout::write(out, &produced.built, &artifacts)?;
    if let Target::Oci(dir) = out {
        let sbom_dir = dir.with_file_name(format!(
            "{}.sbom",
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "oci".into())
        ));
        std::fs::create_dir_all(&sbom_dir).map_err(|e| Error::Report(sbom_dir.clone(), e))?;
        for (image, arch, artifact) in &produced.sboms {
            let path = sbom_dir.join(format!("{image}.{arch}.spdx.json"));
            std::fs::write(&path, &artifact.spdx.bytes).map_err(|e| Error::Report(path.clone(), e))?;
        }
    }
    write_locks(options, &produced.locks)?;
    write_report(options, &produced.report)?;
    Ok(produced.report)
}

/// Writes the locks used, when asked to.
pub fn write_locks(options: &Options, locks: &[Lock]) -> Result<(), Error> {
    if let Some(dir) = &options.locks_to {
        std::fs::create_dir_all(dir).map_err(|e| Error::Report(dir.clone(), e))?;
        for lock in locks {
            lock.write(&dir.join(Lock::file_name(&lock.image, &lock.architecture)))?;
        }
    }
    Ok(())
}

/// Builds and scans every image asked for, in memory. On a failed scan the report (if asked
/// for) is written and the build fails.
pub async fn produce(options: &Options) -> Result<Produced, Error> {
    let locked = lock_all(options).await?;
    produce_from(options, locked).await
}

/// The locks of every image asked for, and what could not be planned.
#[derive(Debug)]
pub struct Locked {
    pub locks: Vec<Lock>,
    pub unavailable: Vec<Skipped>,
    pub sources: Vec<Provenance>,
}

/// Reads or resolves the lock of every image and architecture asked for; fails on an image
/// this site cannot build unless `skip_unavailable`.
pub async fn lock_all(options: &Options) -> Result<Locked, Error> {
    let spec = Spec::load(&options.spec_dir)?;
    let names = select(&spec, &options.only)?;
    let fetcher = Fetcher::new(&options.cache_dir)?.with_state_dir(options.state_dir.clone());
    let mut planner = Planner::new(&spec, &options.site, &fetcher, options.now);
    let mut locks: Vec<Lock> = Vec::new();
    let mut unavailable = Vec::new();
    for name in &names {
        for arch in &options.architectures {
            if let Some(dir) = &options.locks_from {
                locks.push(Lock::read(&dir.join(Lock::file_name(name, arch)))?);
                continue;
            }
            match planner.plan(name, arch, options.binaries.as_deref()).await? {
                Planned::Locked(lock) => {
                    refuse_downgrade(options, &lock)?;
                    locks.push(*lock);
                }
                Planned::Unavailable(reason) => {
                    tracing::warn!(image = %name, arch = %arch, %reason, "image not buildable here");
                    unavailable.push(Skipped {
                        image: format!("{name} ({arch})"),
                        reason,
                    });
                }
            }
        }
    }
    if !unavailable.is_empty() && !options.skip_unavailable {
        return Err(Error::Unavailable(
            unavailable
                .iter()
                .map(|s| format!("{}: {}", s.image, s.reason))
                .collect(),
        ));
    }
    Ok(Locked {
        locks,
        unavailable,
        sources: planner.provenance.into_values().collect(),
    })
}

/// Compares a fresh lock with the previous build's, kept in `locks_to`.
fn refuse_downgrade(options: &Options, lock: &Lock) -> Result<(), Error> {
    let Some(dir) = options.locks_to.as_ref().filter(|_| !options.allow_downgrade) else {
        return Ok(());
    };
    let path = dir.join(Lock::file_name(&lock.image, &lock.architecture));
    if !path.exists() {
        return Ok(());
    }
    let previous = Lock::read(&path)?;
    let found = lock.downgrades_from(&previous);
    if found.is_empty() {
        return Ok(());
    }
    Err(Error::Downgrade {
        image: lock.image.clone(),
        against: path.display().to_string(),
        packages: found.join(", "),
    })
}

/// The build key of an image: the digest of the tool's identity and every lock of the image.
/// The same key means the same image, bit for bit, so a builder may skip rebuilding it.
pub fn build_key(tool: &str, locks: &[&Lock]) -> String {
    let mut text = tool.to_owned();
    for lock in locks {
        text.push('\n');
        text.push_str(&serde_json::to_string(lock).unwrap_or_default());
    }
    format!("sha256:{}", crate::digest::sha256_hex(text.as_bytes()))
}

/// Builds and scans the images of `locked`.
pub async fn produce_from(options: &Options, locked: Locked) -> Result<Produced, Error> {
    let Locked {
        locks,
        unavailable,
        sources,
    } = locked;
    let fetcher = Fetcher::new(&options.cache_dir)?.with_state_dir(options.state_dir.clone());

    // 2. Every package file, verified against the lock, fetched once.
    let debs = fetch_packages(&fetcher, &options.site, &locks).await?;

    // 3. Images, scanned before anything is written.
    let mut by_image: BTreeMap<String, Vec<Outcome>> = BTreeMap::new();
    for lock in &locks {
        let assembled =
            assemble(lock, &debs, options.binaries.as_deref(), options.source_date_epoch).map_err(|source| {
                Error::Assemble {
                    image: lock.image.clone(),
                    source,
                }
            })?;
        let platform = image::build(lock, &assembled).map_err(|source| Error::Image {
            image: lock.image.clone(),
            source,
        })?;
        let verdict = scan::scan(&assembled.tree, &platform.image_config);
        tracing::info!(image = %lock.image, arch = %lock.architecture, digest = %platform.manifest.descriptor.digest, compressed = platform.compressed_bytes(), scan = verdict.scan, "image built");
        by_image
            .entry(lock.image.clone())
            .or_default()
            .push((lock.clone(), platform, verdict, assembled.stripped));
    }
    let mut failed = Vec::new();
    let mut built = Vec::new();
    let mut reports = Vec::new();
    for (name, platforms) in by_image {
        for (lock, _, verdict, _) in &platforms {
            if !verdict.passed() {
                for finding in &verdict.findings {
                    tracing::error!(image = %name, arch = %lock.architecture, code = finding.code, level = ?finding.level, title = finding.title, details = ?finding.details, "scan finding");
                }
                failed.push(format!("{name} ({})", lock.architecture));
            }
        }
        let Some((first_lock, _, first_verdict, _)) = platforms.first() else {
            continue;
        };
        let first_lock = first_lock.clone();
        let first_verdict = first_verdict.clone();
        let created = platforms
            .first()
            .map(|p| p.1.image_config.created.clone())
            .unwrap_or_default();
        let images: Vec<PlatformImage> = platforms.iter().map(|p| p.1.clone()).collect();
        let mut index_annotations = image::annotations(&first_lock, &created);
        let image_locks: Vec<&Lock> = platforms.iter().map(|p| &p.0).collect();
        index_annotations.insert(
            image::ANNOTATION_BUILD_KEY.to_owned(),
            build_key(&options.tool, &image_locks),
        );
        let index = image::index(&images, index_annotations).map_err(|source| Error::Image {
            image: name.clone(),
            source,
        })?;
        let platform_reports: Vec<PlatformReport> = platforms
            .iter()
            .map(|(lock, p, _, stripped)| PlatformReport {
                architecture: lock.architecture.clone(),
                digest: p.manifest.descriptor.digest.clone(),
                compressed_bytes: p.compressed_bytes(),
                uncompressed_bytes: p.uncompressed_bytes(),
                packages: lock.packages().count(),
                layers: p
                    .layers
                    .iter()
                    .map(|l| LayerReport {
                        name: l.name.clone(),
                        digest: l.digest.clone(),
                        compressed_bytes: l.blob.len() as u64,
                        uncompressed_bytes: l.uncompressed_size,
                    })
                    .collect(),
                stripped_setid: stripped.clone(),
                unavailable_optional: lock.unavailable_optional.clone(),
            })
            .collect();
        let first = platform_reports.first();
        reports.push(ImageReport {
            image: name.clone(),
            digest: index.descriptor.digest.clone(),
            distribution: first_lock.distribution.clone(),
            compressed_bytes: first.map_or(0, |p| p.compressed_bytes),
            uncompressed_bytes: first.map_or(0, |p| p.uncompressed_bytes),
            packages: first.map_or(0, |p| p.packages),
            scan: if platforms.iter().all(|p| p.2.passed()) {
                "pass"
            } else {
                "fail"
            },
            findings: first_verdict.findings,
            platforms: platform_reports,
        });
        let tag = tag(first_lock
            .config
            .annotations
            .get("version")
            .map_or("latest", String::as_str));
        built.push(Built {
            name,
            tag,
            index,
            platforms: images,
        });
    }
    let report = Report {
        tool: env!("CARGO_PKG_VERSION").to_owned(),
        output: String::new(),
        images: reports,
        skipped: unavailable,
        sources,
    };
    if !failed.is_empty() {
        write_report(options, &report)?;
        return Err(Error::ScanFailed(failed));
    }
    let mut sboms = Vec::new();
    for image in &built {
        for platform in &image.platforms {
            let Some(lock) = locks
                .iter()
                .find(|l| l.image == image.name && l.architecture == platform.architecture)
            else {
                continue;
            };
            let artifact = sbom::artifact(lock, platform).map_err(|source| Error::Sbom {
                image: image.name.clone(),
                source,
            })?;
            sboms.push((image.name.clone(), platform.architecture.clone(), artifact));
        }
    }
    Ok(Produced {
        built,
        locks,
        sboms,
        report,
    })
}

/// Writes the report, when asked to.
pub fn write_report(options: &Options, report: &Report) -> Result<(), Error> {
    let Some(path) = &options.report else { return Ok(()) };
    let mut text =
        serde_json::to_vec_pretty(report).map_err(|e| Error::Report(path.clone(), std::io::Error::other(e)))?;
    text.push(b'\n');
    std::fs::write(path, text).map_err(|e| Error::Report(path.clone(), e))
}

/// The images to build: those named (each must exist), or all.
fn select(spec: &Spec, only: &[String]) -> Result<Vec<String>, Error> {
    if only.is_empty() {
        return Ok(spec.images.keys().cloned().collect());
    }
    for name in only {
        if !spec.images.contains_key(name) {
            let known = spec.images.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(Error::UnknownImage(name.clone(), known));
        }
    }
    Ok(only.to_vec())
}

/// The tag of an image: its version annotation, made acceptable to registries.
pub fn tag_of(lock: &Lock) -> String {
    tag(lock.config.annotations.get("version").map_or("latest", String::as_str))
}

/// A tag from a version: characters a registry refuses become `-`.
pub fn tag(version: &str) -> String {
    version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Downloads (or finds in the cache) every package of `locks`, four at a time.
async fn fetch_packages(fetcher: &Fetcher, site: &Site, locks: &[Lock]) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let mut wanted: BTreeMap<String, (String, u64, String)> = BTreeMap::new();
    for lock in locks {
        for p in lock.packages() {
            let base = site.uris.get(&p.repository).ok_or_else(|| Error::NoUri {
                package: p.name.clone(),
                repository: p.repository.clone(),
            })?;
            wanted.insert(
                p.sha256.clone(),
                (join(base, &p.filename), p.size, format!("{} {}", p.name, p.version)),
            );
        }
    }
    let total: u64 = wanted.values().map(|w| w.1).sum();
    let progress = Arc::new(Progress::new("packages", wanted.len(), total));
    let permits = Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = tokio::task::JoinSet::new();
    for (sha256, (url, size, what)) in wanted {
        let (fetcher, progress, permits) = (fetcher.clone(), progress.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let path = fetcher.fetch_verified(&url, &sha256, Some(size), &what).await?;
            progress.done(&what, size);
            Ok::<_, fetch::Error>((sha256, path))
        });
    }
    let mut paths = BTreeMap::new();
    while let Some(result) = tasks.join_next().await {
        let (sha256, path) = result.map_err(|e| Error::Cache(PathBuf::from("(task)"), std::io::Error::other(e)))??;
        paths.insert(sha256, path);
    }
    let mut out = BTreeMap::new();
    for (sha256, path) in paths {
        let bytes = std::fs::read(&path).map_err(|e| Error::Cache(path.clone(), e))?;
        // The cache verified it on the way in; check again: it is about to become an image.
        if crate::digest::sha256_hex(&bytes) != sha256 {
            return Err(Error::Fetch(fetch::Error::Checksum {
                what: path.display().to_string(),
                url: "cache".into(),
                expected: sha256,
                actual: crate::digest::sha256_hex(&bytes),
            }));
        }
        out.insert(sha256, bytes);
    }
    Ok(out)
}
