//! The image specification in `images/`: which repositories we trust (by pinned key), which
//! distributions images are built from, and what goes into each image. Loading validates
//! everything up front and names the file, line and key of any mistake.
//!
//! Repository locations are not part of the spec: they are site configuration (`site.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pgp::Keyring;

/// The spec could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{path}: {1}", path = .0.display())]
    Parse(PathBuf, String),
    #[error("{path}: {1}", path = .0.display())]
    Invalid(PathBuf, String),
    #[error("{path}: key file {key}: {2}", path = .0.display(), key = .1.display())]
    Key(PathBuf, PathBuf, String),
}

/// `repositories.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoriesFile {
    pub repositories: BTreeMap<String, RepositorySpec>,
}

/// A package repository, identified by the keys that sign it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositorySpec {
    pub description: String,
    pub keys: Vec<KeySpec>,
}

/// A pinned signing key: the file holding it and the fingerprint it must have.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    pub file: PathBuf,
    pub fingerprint: String,
}

/// `distributions.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributionsFile {
    pub distributions: BTreeMap<String, DistributionSpec>,
}

/// An operating system release images are built from: its sources and what
/// `/etc/os-release` says about it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DistributionSpec {
    pub os_release: OsRelease,
    pub sources: Vec<SourceSpec>,
}

/// The fields written to `/etc/os-release`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OsRelease {
    pub id: String,
    pub version_id: Option<String>,
    pub version_codename: String,
    pub pretty_name: String,
}

/// One suite of one repository.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub repository: String,
    pub suite: String,
    pub components: Vec<String>,
    /// Left out when the site configures no URI for the repository (otherwise an error).
    #[serde(default)]
    pub optional: bool,
}

/// `images.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesFile {
    /// Packages never installed, whatever depends on them.
    pub prune: Vec<Reasoned>,
    /// Path patterns dropped from every package (documentation and the like).
    pub drop: Vec<Reasoned>,
    /// Path patterns kept even when a drop pattern matches.
    pub keep: Vec<Reasoned>,
    /// Layers packages are grouped into by source package, in order; the rest form `libs`.
    pub layers: Vec<LayerSpec>,
    pub images: BTreeMap<String, ImageSpec>,
    pub postgresql: PostgresqlSpec,
}

/// A pattern (`*` matches any run of characters) with the reason it is listed.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Reasoned {
    pub pattern: String,
    pub reason: String,
}

/// A named layer and the source packages it holds.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LayerSpec {
    pub name: String,
    pub sources: Vec<String>,
}

/// What goes into one image. In the `postgresql` section, `$major` in any string is
/// replaced by the major version.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    pub description: String,
    /// Another image whose content this one starts from (its layers are shared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Distributions to build from, in order of preference: the first whose configured
    /// sources carry every required package is used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distributions: Vec<String>,
    /// Numeric `uid:gid` the image runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Packages added only where a source carries them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub optional_packages: Vec<String>,
    /// Packages pruned for this image only, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prune: Vec<Reasoned>,
    /// Path patterns dropped for this image only, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<Reasoned>,
    /// For the named packages, keep only paths under these prefixes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub only_paths: BTreeMap<String, Vec<String>>,
    /// Our binaries installed at `/usr/local/bin/<name>` from `--binaries DIR`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binaries: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directories: Vec<DirectorySpec>,
    /// The one shell allowed in the image, with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<ShellSpec>,
    /// OCI annotations (`org.opencontainers.image.*` keys without the prefix).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A directory the builder creates (what a maintainer script would have made).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DirectorySpec {
    pub path: String,
    /// Octal mode, e.g. `"0700"`.
    pub mode: String,
    /// Numeric `uid:gid`.
    pub owner: String,
}

/// The shell an image keeps: `/bin/sh` pointing at `package`'s binary.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ShellSpec {
    pub package: String,
    /// The binary `/bin/sh` links to, e.g. `/usr/bin/dash`.
    pub binary: String,
    pub reason: String,
}

/// The PostgreSQL operand images: one per major and flavor, named
/// `postgresql-<major>-<flavor>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresqlSpec {
    pub majors: Vec<u32>,
    pub flavors: BTreeMap<String, ImageSpec>,
}

/// The whole spec, loaded and checked.
#[derive(Debug, Clone)]
pub struct Spec {
    pub dir: PathBuf,
    pub repositories: BTreeMap<String, RepositorySpec>,
    pub distributions: BTreeMap<String, DistributionSpec>,
    pub prune: Vec<Reasoned>,
    pub drop: Vec<Reasoned>,
    pub keep: Vec<Reasoned>,
    pub layers: Vec<LayerSpec>,
    /// Every image by name, PostgreSQL ones expanded, each with `from` already merged in.
    pub images: BTreeMap<String, EffectiveImage>,
}

/// An image spec with its parents merged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveImage {
    pub name: String,
    /// The chain of parents, nearest last (their layers come first).
    pub parents: Vec<String>,
    /// The PostgreSQL major, for operand images.
    pub major: Option<u32>,
    pub spec: ImageSpec,
}

impl Spec {
    /// Loads `repositories.yaml`, `distributions.yaml` and `images.yaml` from `dir` and the
    /// pinned keys they name, checking each key's fingerprint at `now`.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let repos: RepositoriesFile = read_yaml(&dir.join("repositories.yaml"))?;
        let dists: DistributionsFile = read_yaml(&dir.join("distributions.yaml"))?;
        let images_path = dir.join("images.yaml");
        let images: ImagesFile = read_yaml(&images_path)?;

        let mut expanded = images.images.clone();
        for major in &images.postgresql.majors {
            for (flavor, template) in &images.postgresql.flavors {
                let name = format!("postgresql-{major}-{flavor}");
                let text =
                    serde_json::to_string(template).map_err(|e| Error::Invalid(images_path.clone(), e.to_string()))?;
                let concrete: ImageSpec = serde_json::from_str(&text.replace("$major", &major.to_string()))
                    .map_err(|e| Error::Invalid(images_path.clone(), e.to_string()))?;
                if expanded.insert(name.clone(), concrete).is_some() {
                    return Err(Error::Invalid(
                        images_path.clone(),
                        format!("image `{name}` is defined twice"),
                    ));
                }
            }
        }
        let mut effective = BTreeMap::new();
        for name in expanded.keys() {
            let image = merge(name, &expanded, &images_path)?;
            effective.insert(name.clone(), image);
        }
        let spec = Self {
            dir: dir.to_owned(),
            repositories: repos.repositories,
            distributions: dists.distributions,
            prune: images.prune,
            drop: images.drop,
            keep: images.keep,
            layers: images.layers,
            images: effective,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The keyring of a repository: its pinned keys, each checked against its fingerprint.
    pub fn keyring(&self, repository: &str, now: u64) -> Result<Keyring, Error> {
        let path = self.dir.join("repositories.yaml");
        let repo = self
            .repositories
            .get(repository)
            .ok_or_else(|| Error::Invalid(path.clone(), format!("unknown repository `{repository}`")))?;
        let mut ring = Keyring::default();
        for key in &repo.keys {
            let file = self.dir.join(&key.file);
            let bytes = std::fs::read(&file).map_err(|e| Error::Key(path.clone(), key.file.clone(), e.to_string()))?;
            let found =
                Keyring::read(&bytes, now).map_err(|e| Error::Key(path.clone(), key.file.clone(), e.to_string()))?;
            let want = key.fingerprint.replace(' ', "").to_ascii_uppercase();
            if found.fingerprints() != [want.clone()] {
                return Err(Error::Key(
                    path.clone(),
                    key.file.clone(),
                    format!("holds {:?}, the spec pins {want}", found.fingerprints()),
                ));
            }
            ring.extend(found);
        }
        Ok(ring)
    }

    fn validate(&self) -> Result<(), Error> {
        let repos = self.dir.join("repositories.yaml");
        let dists = self.dir.join("distributions.yaml");
        let images = self.dir.join("images.yaml");
        for (name, repo) in &self.repositories {
            if repo.keys.is_empty() {
                return Err(Error::Invalid(
                    repos,
                    format!("repositories.{name}.keys: at least one pinned key is required"),
                ));
            }
            for key in &repo.keys {
                let hex = key.fingerprint.replace(' ', "");
                if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::Invalid(
                        repos,
                        format!(
                            "repositories.{name}.keys: `{}` is not a 40-digit fingerprint",
                            key.fingerprint
                        ),
                    ));
                }
            }
        }
        for (name, dist) in &self.distributions {
            if dist.sources.is_empty() {
                return Err(Error::Invalid(dists, format!("distributions.{name}.sources: empty")));
            }
            for source in &dist.sources {
                if !self.repositories.contains_key(&source.repository) {
                    return Err(Error::Invalid(
                        dists,
                        format!(
                            "distributions.{name}.sources: unknown repository `{}`",
                            source.repository
                        ),
                    ));
                }
                if source.components.is_empty()
                    || !is_plain(&source.suite)
                    || !source.components.iter().all(|c| is_plain(c))
                {
                    return Err(Error::Invalid(
                        dists,
                        format!(
                            "distributions.{name}.sources: bad suite or components for `{}`",
                            source.suite
                        ),
                    ));
                }
            }
        }
        for reasoned in self.prune.iter().chain(&self.drop).chain(&self.keep) {
            if reasoned.reason.trim().is_empty() {
                return Err(Error::Invalid(
                    images.clone(),
                    format!("`{}` is listed without a reason", reasoned.pattern),
                ));
            }
        }
        for (name, image) in &self.images {
            let at = |field: &str| format!("images.{name}.{field}");
            let spec = &image.spec;
            if spec.distributions.is_empty() {
                return Err(Error::Invalid(
                    images,
                    format!("{}: at least one distribution is required", at("distributions")),
                ));
            }
            if let Some(d) = spec.distributions.iter().find(|d| !self.distributions.contains_key(*d)) {
                return Err(Error::Invalid(
                    images,
                    format!("{}: unknown distribution `{d}`", at("distributions")),
                ));
            }
            match spec.user.as_deref().map(parse_owner) {
                Some(Some((uid, _))) if uid != 0 => {}
                Some(Some(_)) => {
                    return Err(Error::Invalid(
                        images,
                        format!("{}: images never run as root", at("user")),
                    ));
                }
                _ => {
                    return Err(Error::Invalid(
                        images,
                        format!("{}: a numeric `uid:gid` is required", at("user")),
                    ));
                }
            }
            for dir in &spec.directories {
                if !dir.path.starts_with('/')
                    || dir.path.contains("..")
                    || parse_mode(&dir.mode).is_none()
                    || parse_owner(&dir.owner).is_none()
                {
                    return Err(Error::Invalid(
                        images,
                        format!(
                            "{}: bad entry for `{}` (absolute path, octal mode, numeric uid:gid)",
                            at("directories"),
                            dir.path
                        ),
                    ));
                }
            }
            for reasoned in spec.prune.iter().chain(&spec.drop) {
                if reasoned.reason.trim().is_empty() {
                    return Err(Error::Invalid(
                        images,
                        format!("{}: `{}` is listed without a reason", at("prune"), reasoned.pattern),
                    ));
                }
            }
            if let Some(shell) = spec
                .shell
                .as_ref()
                .filter(|s| !spec.packages.contains(&s.package) || s.reason.trim().is_empty())
            {
                return Err(Error::Invalid(
                    images,
                    format!(
                        "{}: the shell's package `{}` must be listed in packages, with a reason",
                        at("shell"),
                        shell.package
                    ),
                ));
            }
            if let Some(b) = spec.binaries.iter().find(|b| !is_plain(b)) {
                return Err(Error::Invalid(
                    images,
                    format!("{}: `{b}` is not a plain file name", at("binaries")),
                ));
            }
        }
        Ok(())
    }
}

/// A suite, component or binary name: no path separators or traversal.
fn is_plain(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b)) && s != "." && s != ".."
}

/// Parses a numeric `uid:gid`.
pub fn parse_owner(s: &str) -> Option<(u32, u32)> {
    let (u, g) = s.split_once(':')?;
    Some((u.parse().ok()?, g.parse().ok()?))
}

/// Parses an octal mode such as `0755`.
pub fn parse_mode(s: &str) -> Option<u32> {
    u32::from_str_radix(s, 8).ok().filter(|m| *m <= 0o7777)
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read(path.to_owned(), e))?;
    serde_saphyr::from_str(&text).map_err(|e| Error::Parse(path.to_owned(), e.to_string()))
}

/// Merges `name`'s parents into it: lists are concatenated parent-first, maps merged with the
/// child winning, single values inherited unless the child sets them.
fn merge(name: &str, all: &BTreeMap<String, ImageSpec>, path: &Path) -> Result<EffectiveImage, Error> {
    let mut chain = vec![name.to_owned()];
    let mut cursor = all.get(name).and_then(|s| s.from.clone());
    while let Some(parent) = cursor {
        if chain.contains(&parent) {
            return Err(Error::Invalid(
                path.to_owned(),
                format!("images.{name}.from: `{parent}` forms a cycle"),
            ));
        }
        let spec = all
            .get(&parent)
            .ok_or_else(|| Error::Invalid(path.to_owned(), format!("images.{name}.from: unknown image `{parent}`")))?;
        chain.push(parent);
        cursor = spec.from.clone();
    }
    chain.reverse();
    let mut out = ImageSpec::default();
    for link in &chain {
        let s = all.get(link).cloned().unwrap_or_default();
        out.description = s.description;
        out.from = s.from;
        if !s.distributions.is_empty() {
            out.distributions = s.distributions;
        }
        out.user = s.user.or(out.user);
        out.packages.extend(s.packages);
        out.optional_packages.extend(s.optional_packages);
        out.prune.extend(s.prune);
        out.drop.extend(s.drop);
        for (pkg, paths) in s.only_paths {
            out.only_paths.entry(pkg).or_default().extend(paths);
        }
        out.binaries.extend(s.binaries);
        if !s.entrypoint.is_empty() {
            out.entrypoint = s.entrypoint;
        }
        out.env.extend(s.env);
        out.directories.extend(s.directories);
        out.shell = s.shell.or(out.shell);
        out.annotations.extend(s.annotations);
    }
    let major = name
        .strip_prefix("postgresql-")
        .and_then(|rest| rest.split('-').next())
        .and_then(|m| m.parse().ok());
    let parents = chain.iter().take(chain.len().saturating_sub(1)).cloned().collect();
    Ok(EffectiveImage {
        name: name.to_owned(),
        parents,
        major,
        spec: out,
    })
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
pub fn matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return pattern == text;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = parts.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = rest.get(at + piece.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matching() {
        assert!(matches("perl", "perl"));
        assert!(!matches("perl", "perl-base"));
        assert!(matches("perl*", "perl-base"));
        assert!(matches("libllvm*", "libllvm19"));
        assert!(matches("usr/share/doc/*", "usr/share/doc/x/changelog.gz"));
        assert!(matches(
            "usr/share/locale/*/LC_MESSAGES/*",
            "usr/share/locale/de/LC_MESSAGES/postgres-17.mo"
        ));
        assert!(!matches(
            "usr/share/locale/*/LC_MESSAGES/*",
            "usr/share/locale/locale.alias"
        ));
        assert!(matches("*.a", "usr/lib/libx.a"));
        assert!(!matches("a*b*c", "abx"));
    }

    #[test]
    fn owners_and_modes() {
        assert_eq!(parse_owner("26:26"), Some((26, 26)));
        assert_eq!(parse_owner("postgres"), None);
        assert_eq!(parse_mode("1777"), Some(0o1777));
        assert_eq!(parse_mode("9"), None);
    }
}
