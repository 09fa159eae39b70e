//! Site configuration: where each repository of the spec lives. Either a YAML file
//!
//! ```yaml
//! repositories:
//!   debian: { uri: https://mirror.example.org/debian }
//!   debian-security: { uri: https://mirror.example.org/debian-security }
//!   pgdg: { uri: https://pg.example.org/pub/repos/apt, allow_expired: [] }
//! ```
//!
//! or `host-apt`: the Debian URIs of this machine's apt sources. Trust never comes from here:
//! signatures are always checked against the keys pinned in the spec.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::debian::control::paragraphs;

/// The site could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{path}: {1}", path = .0.display())]
    Parse(PathBuf, String),
    #[error("{origin}: repository `{repository}`: {problem}")]
    Uri {
        origin: String,
        repository: String,
        problem: String,
    },
    #[error("this machine's apt sources name no Debian repository (looked in {0})")]
    NoHostSources(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteFile {
    repositories: BTreeMap<String, SiteRepository>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteRepository {
    uri: String,
    /// Suites whose expired `Valid-Until` is accepted (a frozen mirror); recorded in reports.
    #[serde(default)]
    allow_expired: Vec<String>,
}

/// Where repositories live, and which stale suites the site knowingly accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Site {
    /// Where this configuration came from, for messages.
    pub origin: String,
    /// Repository name → base URI (no trailing slash).
    pub uris: BTreeMap<String, String>,
    /// `(repository, suite)` pairs whose expired Valid-Until is accepted.
    pub allow_expired: BTreeSet<(String, String)>,
}

impl Site {
    /// Reads a site file.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Read(path.to_owned(), e))?;
        let file: SiteFile = serde_saphyr::from_str(&text).map_err(|e| Error::Parse(path.to_owned(), e.to_string()))?;
        let mut site = Site {
            origin: path.display().to_string(),
            ..Site::default()
        };
        for (name, repo) in file.repositories {
            site.insert(&name, &repo.uri)?;
            for suite in repo.allow_expired {
                site.allow_expired.insert((name.clone(), suite));
            }
        }
        Ok(site)
    }

    /// Reads this machine's apt sources (`/etc/apt/sources.list` and `sources.list.d/`).
    pub fn from_host_apt() -> Result<Self, Error> {
        Self::from_apt_dir(Path::new("/etc/apt"))
    }

    /// Reads the apt sources under `etc_apt` (a directory laid out like `/etc/apt`).
    pub fn from_apt_dir(etc_apt: &Path) -> Result<Self, Error> {
        let mut files = vec![etc_apt.join("sources.list")];
        if let Ok(dir) = std::fs::read_dir(etc_apt.join("sources.list.d")) {
            let mut extra: Vec<PathBuf> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            extra.sort();
            files.extend(extra);
        }
        let mut entries = Vec::new();
        for file in &files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            match file.extension().and_then(|e| e.to_str()) {
                Some("sources") => entries.extend(deb822_entries(&text)),
                Some("list") => entries.extend(one_line_entries(&text)),
                _ => {}
            }
        }
        let mut site = Site {
            origin: format!("apt sources in {}", etc_apt.display()),
            ..Site::default()
        };
        for (uri, suites) in entries {
            let Some(repository) = classify(&suites) else {
                continue;
            };
            if !site.uris.contains_key(repository) {
                site.insert(repository, &uri)?;
            }
        }
        if site.uris.is_empty() {
            return Err(Error::NoHostSources(etc_apt.display().to_string()));
        }
        Ok(site)
    }

    /// Accepts an expired Valid-Until for one suite of one repository.
    pub fn allow_expired(&mut self, repository: &str, suite: &str) {
        self.allow_expired.insert((repository.to_owned(), suite.to_owned()));
    }

    fn insert(&mut self, name: &str, uri: &str) -> Result<(), Error> {
        let problem = |p: &str| Error::Uri {
            origin: self.origin.clone(),
            repository: name.to_owned(),
            problem: p.to_owned(),
        };
        let parsed = reqwest::Url::parse(uri).map_err(|e| problem(&format!("`{uri}` is not a URI: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https" | "file") {
            return Err(problem("only http, https and file URIs are supported"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(problem("credentials do not belong in a URI"));
        }
        self.uris.insert(name.to_owned(), uri.trim_end_matches('/').to_owned());
        Ok(())
    }
}

/// Which spec repository a set of apt suites belongs to.
fn classify(suites: &[String]) -> Option<&'static str> {
    if suites.iter().any(|s| s.ends_with("-pgdg") || s.contains("-pgdg-")) {
        Some("pgdg")
    } else if suites.iter().any(|s| s.ends_with("-security")) {
        Some("debian-security")
    } else if !suites.is_empty() {
        Some("debian")
    } else {
        None
    }
}

fn deb822_entries(text: &str) -> Vec<(String, Vec<String>)> {
    let Ok(paragraphs) = paragraphs(text) else {
        return Vec::new();
    };
    paragraphs
        .iter()
        .filter(|p| p.get("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb")))
        .filter(|p| p.get("Enabled").is_none_or(|e| !e.eq_ignore_ascii_case("no")))
        .filter_map(|p| {
            let uri = p.get("URIs")?.split_whitespace().next()?.to_owned();
            let suites = p.get("Suites")?.split_whitespace().map(str::to_owned).collect();
            Some((uri, suites))
        })
        .collect()
}

fn one_line_entries(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let rest = line.strip_prefix("deb ")?.trim();
            // Options in brackets come first: `deb [signed-by=...] uri suite components`.
            let rest = match rest.strip_prefix('[') {
                Some(opts) => opts.split_once(']')?.1.trim(),
                None => rest,
            };
            let mut words = rest.split_whitespace();
            Some((words.next()?.to_owned(), vec![words.next()?.to_owned()]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_deb822_and_one_line_sources() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
             Types: deb\nURIs: http://mirror.test/debian-security/\nSuites: bookworm-security\nComponents: main\n\n\
             Types: deb\nURIs: http://disabled.test/debian\nSuites: trixie\nEnabled: no\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/pg.list"),
            "# comment\ndeb [arch=amd64] https://pg.test/apt bookworm-pgdg main\n",
        )
        .unwrap();
        let site = Site::from_apt_dir(dir.path()).unwrap();
        assert_eq!(site.uris["debian"], "http://mirror.test/debian");
        assert_eq!(site.uris["debian-security"], "http://mirror.test/debian-security");
        assert_eq!(site.uris["pgdg"], "https://pg.test/apt");
    }

    #[test]
    fn no_sources_is_an_error_naming_where_we_looked() {
        let dir = tempfile::tempdir().unwrap();
        let err = Site::from_apt_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }

    #[test]
    fn site_files_are_validated_with_the_bad_key_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.yaml");
        std::fs::write(&path, "repositories:\n  debian: { uri: ftp://x.test/debian }\n").unwrap();
        assert!(
            Site::from_file(&path)
                .unwrap_err()
                .to_string()
                .contains("only http, https and file")
        );
        std::fs::write(&path, "repositories:\n  debian: { url: http://x.test/debian }\n").unwrap();
        assert!(
            Site::from_file(&path)
                .unwrap_err()
                .to_string()
                .contains("unknown field `url`")
        );
        std::fs::write(&path, "repositories:\n  debian: { uri: 'http://u:p@x.test/debian' }\n").unwrap();
        assert!(Site::from_file(&path).unwrap_err().to_string().contains("credentials"));
        std::fs::write(
            &path,
            "repositories:\n  debian: { uri: 'http://x.test/debian/', allow_expired: [sid] }\n",
        )
        .unwrap();
        let site = Site::from_file(&path).unwrap();
        assert_eq!(site.uris["debian"], "http://x.test/debian");
        assert!(site.allow_expired.contains(&("debian".to_owned(), "sid".to_owned())));
    }
}
