//! Downloads: plain fetches for signed metadata, and a content-addressed cache for everything
//! named by a hash (package indexes, .deb files). A file enters the cache only after its
//! SHA-256 (and size, when known) matched, and is checked again on every use.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use futures_util::StreamExt as _;

use crate::digest::{HashingWriter, sha256_file};

/// A download failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to fetch {url}")]
    Http { url: String, source: reqwest::Error },
    #[error("failed to fetch {url}: the server answered {status}")]
    Status { url: String, status: u16 },
    #[error("failed to read {url}")]
    File { url: String, source: std::io::Error },
    #[error("{what} from {url} is corrupt or tampered with: expected sha256 {expected}, got {actual}")]
    Checksum {
        what: String,
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{what} from {url} is larger than {limit} bytes, {reason}")]
    TooLarge {
        what: String,
        url: String,
        limit: u64,
        reason: &'static str,
    },
    #[error("failed to use the download cache at {}", .0.display())]
    Cache(PathBuf, #[source] std::io::Error),
    #[error("failed to set up the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("{what}: `{digest}` is not a SHA-256 (64 lowercase hexadecimal digits)")]
    BadDigest { what: String, digest: String },
}

impl Error {
    /// Worth retrying: connection problems and server-side errors, not 404 or bad content.
    fn is_transient(&self) -> bool {
        match self {
            Self::Http { source, .. } => {
                source.is_connect() || source.is_timeout() || source.is_request() || source.is_body()
            }
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Fetches over HTTP(S) or from `file://` URIs, with a verified download cache.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    cache: PathBuf,
    state: Option<PathBuf>,
}

impl Fetcher {
    pub fn new(cache: &Path) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("cnpg-rs-image-rebuilder/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::Client)?;
        std::fs::create_dir_all(cache.join("sha256")).map_err(|e| Error::Cache(cache.to_owned(), e))?;
        Ok(Self {
            client,
            cache: cache.to_owned(),
            state: None,
        })
    }

    /// Keeps what runs learn in `state` instead of the cache directory.
    #[must_use]
    pub fn with_state_dir(mut self, state: Option<PathBuf>) -> Self {
        self.state = state;
        self
    }

    /// The cache directory: downloads by SHA-256.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// Where what earlier runs learned is kept: the state directory, else the cache.
    pub fn state_dir(&self) -> &Path {
        self.state.as_deref().unwrap_or(&self.cache)
    }

    fn retry_policy() -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_times(3)
    }

    /// Fetches `url` into memory (small, signed metadata such as InRelease), refusing more
    /// than `limit` bytes as soon as they arrive.
    pub async fn fetch(&self, url: &str, limit: u64, what: &str) -> Result<Vec<u8>, Error> {
        (|| self.fetch_once(url, limit, what, "the most read for it"))
            .retry(Self::retry_policy())
            .when(Error::is_transient)
            .await
    }

    async fn fetch_once(&self, url: &str, limit: u64, what: &str, reason: &'static str) -> Result<Vec<u8>, Error> {
        if let Some(path) = url.strip_prefix("file://") {
            let file_error = |source| Error::File {
                url: url.to_owned(),
                source,
            };
            let len = tokio::fs::metadata(path).await.map_err(file_error)?.len();
            if len > limit {
                return Err(Error::TooLarge {
                    what: what.to_owned(),
                    url: url.to_owned(),
                    limit,
                    reason,
                });
            }
            return tokio::fs::read(path).await.map_err(file_error);
        }
        let response = self.client.get(url).send().await.map_err(|source| Error::Http {
            url: url.to_owned(),
            source,
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| Error::Http {
                url: url.to_owned(),
                source,
            })?;
            body.extend_from_slice(&chunk);
            if body.len() as u64 > limit {
                return Err(Error::TooLarge {
                    what: what.to_owned(),
                    url: url.to_owned(),
                    limit,
                    reason,
                });
            }
        }
        Ok(body)
    }

    /// The cache path of a blob with this digest.
    pub fn cache_path(&self, sha256: &str) -> PathBuf {
        self.cache.join("sha256").join(sha256)
    }

    /// Returns the cached, verified file with this SHA-256, downloading it from `url` first
    /// when the cache lacks it (or holds a corrupt copy). `what` names it in errors.
    pub async fn fetch_verified(
        &self,
        url: &str,
        sha256: &str,
        size: Option<u64>,
        what: &str,
    ) -> Result<PathBuf, Error> {
        // The digest names a file in the cache: nothing but hex may reach the path.
        if !crate::digest::is_sha256_hex(sha256) {
            return Err(Error::BadDigest {
                what: what.to_owned(),
                digest: sha256.to_owned(),
            });
        }
        let path = self.cache_path(sha256);
        if path.is_file() {
            let cached = path.clone();
            let (actual, _) = tokio::task::spawn_blocking(move || sha256_file(&cached))
                .await
                .map_err(|e| Error::Cache(path.clone(), std::io::Error::other(e)))?
                .map_err(|e| Error::Cache(path.clone(), e))?;
            if actual == sha256 {
                return Ok(path);
            }
            tracing::warn!(file = %path.display(), "cached file is corrupt; fetching it again");
            let _ = std::fs::remove_file(&path);
        }
        let limit = size.unwrap_or(u64::MAX);
        let body = (|| {
            self.fetch_once(
                url,
                limit,
                what,
                "the size its signed index announces: corrupt or tampered with",
            )
        })
        .retry(Self::retry_policy())
        .when(Error::is_transient)
        .await?;
        let mut temp = tempfile::NamedTempFile::new_in(&self.cache).map_err(|e| Error::Cache(self.cache.clone(), e))?;
        let mut writer = HashingWriter::new(temp.as_file_mut());
        writer
            .write_all(&body)
            .map_err(|e| Error::Cache(self.cache.clone(), e))?;
        let (_, actual, len) = writer.finish();
        if actual != sha256 || size.is_some_and(|s| s != len) {
            return Err(Error::Checksum {
                what: what.to_owned(),
                url: url.to_owned(),
                expected: sha256.to_owned(),
                actual,
            });
        }
        temp.persist(&path).map_err(|e| Error::Cache(path.clone(), e.error))?;
        Ok(path)
    }
}

/// Joins a base URI and a relative path with exactly one slash.
pub fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_digest_that_is_not_hex_never_reaches_a_path() {
        // A cached copy whose hash is wrong is deleted; with a path for a digest, the file
        // deleted would be any file the process can write.
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "keep me").unwrap();
        let fetcher = Fetcher::new(&dir.path().join("cache")).unwrap();
        let url = format!("file://{}", victim.display());
        let err = fetcher
            .fetch_verified(&url, "../../victim.txt", None, "a package")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadDigest { .. }), "{err}");
        assert!(err.to_string().contains("is not a SHA-256"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    }
}
