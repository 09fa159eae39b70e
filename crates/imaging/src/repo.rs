//! Repository metadata for one distribution: for every configured source, the verified
//! `InRelease`, then the `Packages` indexes it lists, fetched by their signed SHA-256.

use std::path::Path;

use crate::compress::{Format, decompress};
use crate::debian::packages::{self, Package};
use crate::debian::release::Release;
use crate::fetch::{self, Fetcher, join};
use crate::pgp::{self, Keyring};
use crate::spec::SourceSpec;

/// The largest index we accept once decompressed (sid's is about 70 MB).
const MAX_INDEX_BYTES: u64 = 1 << 30;

/// The largest InRelease we read, as apt (Debian's are under 200 kB).
pub const MAX_INRELEASE_BYTES: u64 = 10 * 1024 * 1024;

/// Loading a source's metadata failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Fetch(#[from] fetch::Error),
    #[error("{url}: signature check failed")]
    Signature { url: String, source: pgp::Error },
    #[error("{url}: {problem}")]
    Release { url: String, problem: String },
    #[error("{url}: failed to read the index")]
    Index { url: String, source: std::io::Error },
    #[error("{url}")]
    Parse { url: String, source: crate::debian::Error },
}

/// What a source's `InRelease` established, kept for reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Provenance {
    pub repository: String,
    pub suite: String,
    pub uri: String,
    pub inrelease_sha256: String,
    pub signed_by: String,
    pub date: Option<u64>,
    /// Set when an expired `Valid-Until` was accepted because the site allows it.
    pub accepted_expired_since: Option<u64>,
}

/// One source's packages for one architecture.
#[derive(Debug, Clone)]
pub struct SourceIndex {
    pub provenance: Provenance,
    pub source: SourceSpec,
    pub packages: Vec<Package>,
}

/// Fetches and verifies one source: its InRelease against `keyring` at `now`, then every
/// index it lists for `arch` (and `all`).
pub async fn load(
    fetcher: &Fetcher,
    source: &SourceSpec,
    uri: &str,
    keyring: &Keyring,
    arch: &str,
    now: u64,
    allow_expired: bool,
) -> Result<SourceIndex, Error> {
    let url = join(uri, &format!("dists/{}/InRelease", source.suite));
    let raw = fetcher.fetch(&url, MAX_INRELEASE_BYTES, "InRelease").await?;
    let text = std::str::from_utf8(&raw).map_err(|_| Error::Release {
        url: url.clone(),
        problem: "not UTF-8 text".into(),
    })?;
    let verified = keyring.verify_cleartext(text, now).map_err(|source| Error::Signature {
        url: url.clone(),
        source,
    })?;
    let release = Release::parse(&verified.text).map_err(|source| Error::Parse {
        url: url.clone(),
        source,
    })?;

    // A signed Release for another suite must not stand in for this one (a replay).
    let names = [release.suite.as_deref(), release.codename.as_deref()];
    if !names.contains(&Some(source.suite.as_str())) {
        return Err(Error::Release {
            url,
            problem: format!("is signed for suite {names:?}, not `{}`", source.suite),
        });
    }
    let mut accepted_expired_since = None;
    if let Some(until) = release.valid_until.filter(|until| now > *until) {
        if !allow_expired {
            return Err(Error::Release {
                url,
                problem: format!(
                    "expired: Valid-Until {} is {} days ago (a stale or frozen mirror; a site may accept it with allow_expired)",
                    until,
                    (now - until) / 86_400
                ),
            });
        }
        tracing::warn!(%url, valid_until = until, "accepting an expired Release as the site allows");
        accepted_expired_since = Some(until);
    }
    remember_date(fetcher.state_dir(), source, release.date).map_err(|problem| Error::Release {
        url: url.clone(),
        problem,
    })?;

    let mut packages = Vec::new();
    for component in &source.components {
        let mut found = false;
        // Like apt: a separate `all` index only when the suite lists `all` among its
        // architectures and does not fold those packages into every architecture's index.
        let separate_all = release.architectures.iter().any(|a| a == "all") && !release.all_in_arch_indexes;
        let index_archs: &[&str] = if separate_all { &[arch, "all"] } else { &[arch] };
        for &index_arch in index_archs {
            let base = format!("{component}/binary-{index_arch}/Packages");
            let Some((name, file)) = ["xz", "gz", ""]
                .iter()
                .map(|ext| {
                    if ext.is_empty() {
                        base.clone()
                    } else {
                        format!("{base}.{ext}")
                    }
                })
                .find_map(|name| release.files.get(&name).map(|f| (name, f.clone())))
            else {
                continue;
            };
            found = true;
            // By hash when the suite offers it (immune to mirror update races), falling back
            // to the plain path as apt does when a mirror lacks the by-hash copy. Either way
            // the file must match the signed hash.
            let plain_url = join(uri, &format!("dists/{}/{name}", source.suite));
            let cached = if release.acquire_by_hash {
                let by_hash = format!(
                    "dists/{}/{component}/binary-{index_arch}/by-hash/SHA256/{}",
                    source.suite, file.sha256
                );
                match fetcher
                    .fetch_verified(&join(uri, &by_hash), &file.sha256, Some(file.size), &name)
                    .await
                {
                    Err(fetch::Error::Status { status: 404, .. }) => {
                        fetcher
                            .fetch_verified(&plain_url, &file.sha256, Some(file.size), &name)
                            .await?
                    }
                    other => other?,
                }
            } else {
                fetcher
                    .fetch_verified(&plain_url, &file.sha256, Some(file.size), &name)
                    .await?
            };
            let index_url = plain_url;
            let bytes = std::fs::read(&cached).map_err(|source| Error::Index {
                url: index_url.clone(),
                source,
            })?;
            let format = Format::from_name(&name).unwrap_or(Format::None);
            let text = decompress(format, &bytes, MAX_INDEX_BYTES).map_err(|source| Error::Index {
                url: index_url.clone(),
                source,
            })?;
            let text = String::from_utf8(text).map_err(|_| Error::Release {
                url: index_url.clone(),
                problem: "index is not UTF-8".into(),
            })?;
            packages.extend(packages::parse(&text).map_err(|source| Error::Parse {
                url: index_url.clone(),
                source,
            })?);
        }
        if !found {
            return Err(Error::Release {
                url,
                problem: format!("lists no Packages index for {component}/binary-{arch}"),
            });
        }
    }
    packages.retain(|p| p.architecture == arch || p.architecture == "all");
    Ok(SourceIndex {
        provenance: Provenance {
            repository: source.repository.clone(),
            suite: source.suite.clone(),
            uri: uri.to_owned(),
            inrelease_sha256: crate::digest::sha256_hex(&raw),
            signed_by: verified.signer,
            date: release.date,
            accepted_expired_since,
        },
        source: source.clone(),
        packages,
    })
}

/// Refuses a `Release` older than the newest one this cache has seen for the same repository
/// and suite (a mirror replaying yesterday's validly signed metadata, to keep a fix from us),
/// and remembers a newer one. The memory lives in `<state>/releases/` (the state directory,
/// else the cache); deleting a suite's file there accepts an older mirror on purpose.
fn remember_date(state: &Path, source: &SourceSpec, date: Option<u64>) -> Result<(), String> {
    let Some(date) = date else { return Ok(()) };
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let dir = state.join("releases");
    let file = dir.join(format!("{}_{}", safe(&source.repository), safe(&source.suite)));
    let seen = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    match seen {
        Some(newest) if date < newest => Err(format!(
            "replayed: its Date ({}) is older than the {} this cache saw before; a mirror serving older metadata is refused (delete {} to accept it on purpose)",
            crate::oci::rfc3339(date),
            crate::oci::rfc3339(newest),
            file.display()
        )),
        Some(newest) if date == newest => Ok(()),
        _ => {
            let write = || -> std::io::Result<()> {
                std::fs::create_dir_all(&dir)?;
                let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
                std::io::Write::write_all(&mut tmp, format!("{date}\n").as_bytes())?;
                tmp.persist(&file).map_err(|e| e.error)?;
                Ok(())
            };
            write().map_err(|e| format!("failed to remember its Date in {}: {e}", file.display()))
        }
    }
}
