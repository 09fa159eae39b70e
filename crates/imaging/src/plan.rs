//! Planning: for one image and architecture, choose the distribution, load and verify its
//! sources, resolve the image and each of its parents, and write it all down as a [`Lock`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use crate::digest::sha256_file;
use crate::fetch::Fetcher;
use crate::lock::{ConfigSpec, FileRules, LOCK_VERSION, Lock, LockedBinary, LockedLayer, LockedPackage};
use crate::pgp::Keyring;
use crate::repo::{self, Provenance};
use crate::resolve::{self, Universe};
use crate::site::Site;
use crate::spec::{self, EffectiveImage, Spec, matches};

/// Planning failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown image `{0}` (see images.yaml)")]
    UnknownImage(String),
    #[error(
        "distribution `{distribution}` needs repository `{repository}`, which the site ({origin}) does not configure"
    )]
    SiteMissing {
        distribution: String,
        repository: String,
        origin: String,
    },
    #[error(transparent)]
    Spec(#[from] spec::Error),
    #[error(transparent)]
    Repo(#[from] repo::Error),
    #[error("image {image} on {distribution}")]
    Resolve {
        image: String,
        distribution: String,
        source: Box<resolve::Error>,
    },
    #[error("failed to read binary {}", .0.display())]
    Binary(std::path::PathBuf, #[source] std::io::Error),
}

/// The outcome for one image: a lock, or why this site cannot build it.
#[derive(Debug, Clone)]
pub enum Planned {
    Locked(Box<Lock>),
    Unavailable(String),
}

/// Plans images, loading each distribution's sources once.
#[derive(Debug)]
pub struct Planner<'a> {
    spec: &'a Spec,
    site: &'a Site,
    fetcher: &'a Fetcher,
    now: u64,
    keyrings: BTreeMap<String, Keyring>,
    universes: BTreeMap<(String, String), Arc<Universe>>,
    /// What every loaded source's signed metadata said, by (repository, suite, arch).
    pub provenance: BTreeMap<(String, String, String), Provenance>,
}

impl<'a> Planner<'a> {
    pub fn new(spec: &'a Spec, site: &'a Site, fetcher: &'a Fetcher, now: u64) -> Self {
        Self {
            spec,
            site,
            fetcher,
            now,
            keyrings: BTreeMap::new(),
            universes: BTreeMap::new(),
            provenance: BTreeMap::new(),
        }
    }

    /// The packages of `distribution` for `arch`, every source verified.
    pub async fn universe(&mut self, distribution: &str, arch: &str) -> Result<Arc<Universe>, Error> {
        let key = (distribution.to_owned(), arch.to_owned());
        if let Some(u) = self.universes.get(&key) {
            return Ok(u.clone());
        }
        let dist = self
            .spec
            .distributions
            .get(distribution)
            .ok_or_else(|| Error::UnknownImage(format!("distribution {distribution}")))?
            .clone();
        let mut loads = Vec::new();
        for source in &dist.sources {
            let Some(uri) = self.site.uris.get(&source.repository) else {
                if source.optional {
                    tracing::debug!(distribution, repository = %source.repository, "optional source not configured by the site");
                    continue;
                }
                return Err(Error::SiteMissing {
                    distribution: distribution.to_owned(),
                    repository: source.repository.clone(),
                    origin: self.site.origin.clone(),
                });
            };
            if !self.keyrings.contains_key(&source.repository) {
                let ring = self.spec.keyring(&source.repository, self.now)?;
                self.keyrings.insert(source.repository.clone(), ring);
            }
            let ring = self.keyrings.get(&source.repository).cloned().unwrap_or_default();
            let allow_expired = self
                .site
                .allow_expired
                .contains(&(source.repository.clone(), source.suite.clone()));
            let (fetcher, now, uri, source) = (self.fetcher, self.now, uri.clone(), source.clone());
            loads.push(async move { repo::load(fetcher, &source, &uri, &ring, arch, now, allow_expired).await });
        }
        let sources = futures_util::future::try_join_all(loads).await?;
        for s in &sources {
            let p = s.provenance.clone();
            self.provenance
                .insert((p.repository.clone(), p.suite.clone(), arch.to_owned()), p);
            tracing::info!(repository = %s.provenance.repository, suite = %s.provenance.suite, arch, packages = s.packages.len(), signed_by = %s.provenance.signed_by, "source verified");
        }
        let universe = Arc::new(Universe::new(sources));
        self.universes.insert(key, universe.clone());
        Ok(universe)
    }

    /// Plans `image` for `arch`. `binaries` is where our release binaries are.
    pub async fn plan(&mut self, image: &str, arch: &str, binaries: Option<&Path>) -> Result<Planned, Error> {
        let effective = self
            .spec
            .images
            .get(image)
            .ok_or_else(|| Error::UnknownImage(image.to_owned()))?
            .clone();
        let locked_binaries = match (effective.spec.binaries.is_empty(), binaries) {
            (true, _) => Vec::new(),
            (false, None) => {
                return Ok(Planned::Unavailable(
                    "needs our release binaries (--binaries DIR)".into(),
                ));
            }
            (false, Some(dir)) => {
                let mut out = Vec::new();
                for name in &effective.spec.binaries {
                    let path = dir.join(name);
                    let head = read_head(&path).map_err(|e| Error::Binary(path.clone(), e))?;
                    if crate::elf::machine(&head) != crate::elf::machine_of(arch) {
                        return Ok(Planned::Unavailable(format!(
                            "binary {} is not built for {arch}",
                            path.display()
                        )));
                    }
                    let (sha256, size) = sha256_file(&path).map_err(|e| Error::Binary(path.clone(), e))?;
                    out.push(LockedBinary {
                        name: name.clone(),
                        sha256,
                        size,
                    });
                }
                out
            }
        };
        let mut tried = Vec::new();
        for distribution in &effective.spec.distributions {
            let universe = self.universe(distribution, arch).await?;
            if let Some(missing) = effective.spec.packages.iter().find(|p| !universe.has(p)) {
                tried.push(format!("{distribution} lacks {missing}"));
                continue;
            }
            let lock = self.lock(&effective, distribution, arch, &universe, locked_binaries)?;
            return Ok(Planned::Locked(Box::new(lock)));
        }
        Ok(Planned::Unavailable(format!(
            "no configured source carries its packages ({})",
            tried.join(", ")
        )))
    }

    fn lock(
        &self,
        image: &EffectiveImage,
        distribution: &str,
        arch: &str,
        universe: &Universe,
        binaries: Vec<LockedBinary>,
    ) -> Result<Lock, Error> {
        let mut chain: Vec<EffectiveImage> = Vec::new();
        for parent in &image.parents {
            chain.push(
                self.spec
                    .images
                    .get(parent)
                    .ok_or_else(|| Error::UnknownImage(parent.clone()))?
                    .clone(),
            );
        }
        chain.push(image.clone());

        let mut placed: BTreeSet<String> = BTreeSet::new();
        let mut layers = Vec::new();
        let mut last = None;
        for level in &chain {
            let prune: Vec<_> = self.spec.prune.iter().chain(&level.spec.prune).cloned().collect();
            let resolution = resolve::resolve(universe, &level.spec.packages, &level.spec.optional_packages, &prune)
                .map_err(|source| Error::Resolve {
                    image: level.name.clone(),
                    distribution: distribution.to_owned(),
                    source: Box::new(source),
                })?;
            let rules = FileRules {
                drop: self.spec.drop.iter().chain(&level.spec.drop).cloned().collect(),
                keep: self.spec.keep.clone(),
                only_paths: level.spec.only_paths.clone(),
            };
            let mut groups: BTreeMap<usize, Vec<LockedPackage>> = BTreeMap::new();
            for key in &resolution.packages {
                let pkg = universe.get(*key);
                if !placed.insert(pkg.name.clone()) {
                    continue;
                }
                let group = self
                    .spec
                    .layers
                    .iter()
                    .position(|l| l.sources.iter().any(|s| matches(s, &pkg.source)))
                    .map_or(0, |i| i + 1);
                let (s, _) = *key;
                let repository = universe
                    .sources
                    .get(s)
                    .map(|src| src.source.repository.clone())
                    .unwrap_or_default();
                groups.entry(group).or_default().push(LockedPackage {
                    name: pkg.name.clone(),
                    version: pkg.version.clone(),
                    architecture: pkg.architecture.clone(),
                    sha256: pkg.sha256.clone(),
                    size: pkg.size,
                    source: pkg.source.clone(),
                    source_version: pkg.source_version.clone(),
                    repository,
                    filename: pkg.filename.clone(),
                });
            }
            for (group, packages) in groups {
                let group_name = match group.checked_sub(1).and_then(|i| self.spec.layers.get(i)) {
                    Some(layer) => layer.name.as_str(),
                    None => "libs",
                };
                layers.push(LockedLayer {
                    name: format!("{}:{group_name}", level.name),
                    rules: rules.clone(),
                    packages,
                });
            }
            last = Some(resolution);
        }
        let resolution = last.ok_or_else(|| Error::UnknownImage(image.name.clone()))?;
        let dist = self
            .spec
            .distributions
            .get(distribution)
            .ok_or_else(|| Error::UnknownImage(distribution.to_owned()))?;
        let spec = &image.spec;
        let mut annotations = spec.annotations.clone();
        annotations
            .entry("description".into())
            .or_insert_with(|| spec.description.clone());
        annotations
            .entry("source".into())
            .or_insert_with(|| env!("CARGO_PKG_REPOSITORY").to_owned());
        let version = match image.major {
            Some(major) => layers
                .iter()
                .flat_map(|l| &l.packages)
                .find(|p| p.name == format!("postgresql-{major}"))
                .map(|p| upstream(&p.version)),
            None => None,
        };
        annotations.insert(
            "version".into(),
            version.unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
        );
        Ok(Lock {
            lock_version: LOCK_VERSION,
            image: image.name.clone(),
            architecture: arch.to_owned(),
            distribution: distribution.to_owned(),
            os_release: dist.os_release.clone(),
            major: image.major,
            config: ConfigSpec {
                description: spec.description.clone(),
                user: spec.user.clone().unwrap_or_default(),
                env: spec.env.clone(),
                entrypoint: spec.entrypoint.clone(),
                annotations,
                directories: spec.directories.clone(),
                shell: spec.shell.clone(),
            },
            layers,
            binaries,
            pruned: resolution.pruned,
            unavailable_optional: resolution.unavailable_optional,
        })
    }
}

/// The first bytes of a file (enough for an ELF header).
fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut head = Vec::with_capacity(64);
    std::fs::File::open(path)?.take(64).read_to_end(&mut head)?;
    Ok(head)
}

/// The upstream part of a Debian version: `1:17.6-0+deb13u1` → `17.6`.
pub fn upstream(version: &str) -> String {
    let no_epoch = version.split_once(':').map_or(version, |(_, v)| v);
    no_epoch.rsplit_once('-').map_or(no_epoch, |(u, _)| u).to_owned()
}
