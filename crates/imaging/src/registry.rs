//! Pushing images to an OCI registry (with oci-client): HEAD first and push nothing that is
//! there, cross-repository mounts where the registry allows, only the missing blobs otherwise,
//! manifests as the exact bytes we hashed, SBOM artifacts with the referrers tag-schema
//! fallback, and tags that move only when a digest changed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use base64::Engine as _;
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use reqwest::header::HeaderValue;

use crate::oci::{Blob, Descriptor, Index, MEDIA_INDEX};

/// A registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{0}` is not HOST[:PORT]/PREFIX")]
    Target(String),
    #[error("failed to read {}", .0.display())]
    Read(std::path::PathBuf, #[source] std::io::Error),
    #[error("{path}: {1}", path = .0.display())]
    AuthFile(std::path::PathBuf, String),
    #[error("failed to {action} {what} in {repository}; the registry answered")]
    Registry {
        action: &'static str,
        what: String,
        repository: String,
        source: OciDistributionError,
    },
    #[error("{0}: not valid JSON from the registry")]
    Json(String, #[source] serde_json::Error),
    #[error("`{0}` is not a sha256 digest: refused before it reaches a URL")]
    BadDigest(String),
}

/// A password: its `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

impl Password {
    pub fn new(secret: String) -> Self {
        Self(secret)
    }
}

/// Registry credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Password,
}

impl Credentials {
    /// The credentials for `host` in a docker `config.json` (the format of a
    /// `kubernetes.io/dockerconfigjson` Secret), if it has any.
    pub fn from_docker_config(path: &Path, host: &str) -> Result<Option<Self>, Error> {
        let text = std::fs::read(path).map_err(|e| Error::Read(path.to_owned(), e))?;
        Self::from_docker_config_bytes(&text, host, path)
    }

    /// The same, from the file's bytes (`path` names it in errors).
    pub fn from_docker_config_bytes(text: &[u8], host: &str, path: &Path) -> Result<Option<Self>, Error> {
        let config: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| Error::AuthFile(path.to_owned(), e.to_string()))?;
        let Some(auths) = config.get("auths").and_then(|a| a.as_object()) else {
            return Err(Error::AuthFile(path.to_owned(), "no `auths` object".into()));
        };
        let entry = auths.iter().find(|(key, _)| {
            let key = key.trim_start_matches("https://").trim_start_matches("http://");
            key.split('/').next() == Some(host)
        });
        let Some((_, entry)) = entry else { return Ok(None) };
        if let (Some(user), Some(pass)) = (
            entry.get("username").and_then(|v| v.as_str()),
            entry.get("password").and_then(|v| v.as_str()),
        ) {
            return Ok(Some(Self {
                username: user.to_owned(),
                password: Password(pass.to_owned()),
            }));
        }
        let auth = entry
            .get("auth")
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::AuthFile(path.to_owned(), format!("the entry for {host} has no auth")))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .map_err(|_| Error::AuthFile(path.to_owned(), format!("the auth of {host} is not base64")))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| Error::AuthFile(path.to_owned(), format!("the auth of {host} is not text")))?;
        let (user, pass) = decoded
            .split_once(':')
            .ok_or_else(|| Error::AuthFile(path.to_owned(), format!("the auth of {host} is not user:password")))?;
        Ok(Some(Self {
            username: user.to_owned(),
            password: Password(pass.to_owned()),
        }))
    }
}

/// `HOST[:PORT]/PREFIX`: where images go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub prefix: String,
}

impl std::str::FromStr for Target {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.contains("://") {
            return Err(Error::Target(s.to_owned()));
        }
        let (host, prefix) = s.split_once('/').ok_or_else(|| Error::Target(s.to_owned()))?;
        let prefix = prefix.trim_matches('/');
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c);
        if host.is_empty() || prefix.is_empty() || !prefix.chars().all(ok) || host.contains("://") {
            return Err(Error::Target(s.to_owned()));
        }
        Ok(Self {
            host: host.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.prefix)
    }
}

/// What a push sent.
#[derive(Debug, Default)]
pub struct Counters {
    pub blobs_uploaded: AtomicU64,
    pub bytes_uploaded: AtomicU64,
    pub blobs_mounted: AtomicU64,
}

/// A connection to one registry.
pub struct Pusher {
    client: Client,
    auth: RegistryAuth,
    pub target: Target,
    /// Blob digest → a repository of this registry known to hold it (for mounts).
    known: Mutex<BTreeMap<String, String>>,
    /// Repositories we already hold push credentials (or a token) for.
    authenticated: Mutex<std::collections::BTreeSet<String>>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("target", &self.target)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Registry "not found" answers, as opposed to failures.
fn not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|x| {
            matches!(
                x.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::BlobUnknown
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        _ => false,
    }
}

/// Worth retrying: the network or the registry's own trouble, not an answer.
fn transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(e) => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        _ => false,
    }
}

fn policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_times(4)
}

impl Pusher {
    pub fn new(target: Target, credentials: Option<Credentials>, ca_pem: Option<Vec<u8>>) -> Self {
        let mut config = oci_client::client::ClientConfig {
            protocol: oci_client::client::ClientProtocol::Https,
            read_timeout: Some(Duration::from_secs(120)),
            connect_timeout: Some(Duration::from_secs(20)),
            ..Default::default()
        };
        if let Some(pem) = ca_pem {
            config.extra_root_certificates.push(oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data: pem,
            });
        }
        let auth = match credentials {
            Some(c) => RegistryAuth::Basic(c.username, c.password.0),
            None => RegistryAuth::Anonymous,
        };
        Self {
            client: Client::new(config),
            auth,
            target,
            known: Mutex::new(BTreeMap::new()),
            authenticated: Mutex::new(std::collections::BTreeSet::new()),
        }
    }

    fn reference(&self, repository: &str, tag_or_digest: &str) -> Reference {
        let repo = format!("{}/{repository}", self.target.prefix);
        if tag_or_digest.starts_with("sha256:") {
            Reference::with_digest(self.target.host.clone(), repo, tag_or_digest.to_owned())
        } else {
            Reference::with_tag(self.target.host.clone(), repo, tag_or_digest.to_owned())
        }
    }

    /// The full name of a repository (`host/prefix/repository`).
    pub fn name(&self, repository: &str) -> String {
        format!("{}/{}/{repository}", self.target.host, self.target.prefix)
    }

    /// Gets push access to the reference's repository, once per repository.
    async fn authenticate(&self, reference: &Reference) -> Result<(), Error> {
        let repository = reference.repository().to_owned();
        if self.authenticated.lock().is_ok_and(|done| done.contains(&repository)) {
            return Ok(());
        }
        self.client
            .auth(reference, &self.auth, RegistryOperation::Push)
            .await
            .map_err(|source| Error::Registry {
                action: "authenticate to",
                what: self.target.host.clone(),
                repository: repository.clone(),
                source,
            })?;
        if let Ok(mut done) = self.authenticated.lock() {
            done.insert(repository);
        }
        Ok(())
    }

    /// The digest `tag_or_digest` points to in `repository`, if it exists.
    pub async fn digest(&self, repository: &str, tag_or_digest: &str) -> Result<Option<String>, Error> {
        let reference = self.reference(repository, tag_or_digest);
        let result = (|| self.client.fetch_manifest_digest(&reference, &self.auth))
            .retry(policy())
            .when(transient)
            .await;
        match result {
            Ok(digest) => Ok(Some(digest)),
            Err(e) if not_found(&e) => Ok(None),
            Err(source) => Err(Error::Registry {
                action: "look up",
                what: tag_or_digest.to_owned(),
                repository: self.name(repository),
                source,
            }),
        }
    }

    /// The raw manifest at `reference`, if it exists.
    pub async fn manifest(
        &self,
        repository: &str,
        tag_or_digest: &str,
        media: &[&str],
    ) -> Result<Option<Vec<u8>>, Error> {
        if tag_or_digest.contains(':') && !crate::digest::is_sha256_digest(tag_or_digest) {
            return Err(Error::BadDigest(tag_or_digest.to_owned()));
        }
        let reference = self.reference(repository, tag_or_digest);
        let result = (|| self.client.pull_manifest_raw(&reference, &self.auth, media))
            .retry(policy())
            .when(transient)
            .await;
        match result {
            Ok((bytes, _)) => Ok(Some(bytes.to_vec())),
            Err(e) if not_found(&e) => Ok(None),
            Err(source) => Err(Error::Registry {
                action: "fetch",
                what: tag_or_digest.to_owned(),
                repository: self.name(repository),
                source,
            }),
        }
    }

    /// A blob's bytes (verified against its digest by the client).
    pub async fn blob(&self, repository: &str, digest: &str) -> Result<Vec<u8>, Error> {
        if !crate::digest::is_sha256_digest(digest) {
            return Err(Error::BadDigest(digest.to_owned()));
        }
        let reference = self.reference(repository, digest);
        let mut out = Vec::new();
        self.client
            .pull_blob(&reference, digest, &mut out)
            .await
            .map_err(|source| Error::Registry {
                action: "fetch",
                what: format!("blob {digest}"),
                repository: self.name(repository),
                source,
            })?;
        Ok(out)
    }

    /// Makes sure `repository` holds `blob`: present already, mounted from a repository of
    /// this run that has it, or uploaded.
    pub async fn ensure_blob(
        &self,
        repository: &str,
        digest: &str,
        bytes: &[u8],
        counters: &Counters,
    ) -> Result<(), Error> {
        let reference = self.reference(repository, digest);
        let fail = |action, source| Error::Registry {
            action,
            what: format!("blob {digest}"),
            repository: self.name(repository),
            source,
        };
        let exists = (|| self.client.blob_exists(&reference, digest))
            .retry(policy())
            .when(transient)
            .await;
        if exists.map_err(|e| fail("check", e))? {
            self.remember(digest, repository);
            return Ok(());
        }
        self.authenticate(&reference).await?;
        let source_repo = self.known.lock().ok().and_then(|k| k.get(digest).cloned());
        if let Some(from) = source_repo.filter(|r| r != repository) {
            let source = self.reference(&from, digest);
            if self.client.mount_blob(&reference, &source, digest).await.is_ok() {
                counters.blobs_mounted.fetch_add(1, Ordering::Relaxed);
                self.remember(digest, repository);
                return Ok(());
            }
            // 202 or refusal: the registry will not mount; upload instead.
        }
        let data = bytes::Bytes::copy_from_slice(bytes);
        (|| self.client.push_blob(&reference, data.clone(), digest))
            .retry(policy())
            .when(transient)
            .await
            .map_err(|e| fail("upload", e))?;
        counters.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
        counters.bytes_uploaded.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.remember(digest, repository);
        Ok(())
    }

    fn remember(&self, digest: &str, repository: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.entry(digest.to_owned()).or_insert_with(|| repository.to_owned());
        }
    }

    /// Puts `blob` (a manifest or index) at `tag_or_digest` as exactly these bytes.
    pub async fn put_manifest(&self, repository: &str, tag_or_digest: &str, blob: &Blob) -> Result<(), Error> {
        let reference = self.reference(repository, tag_or_digest);
        self.authenticate(&reference).await?;
        let content_type = HeaderValue::from_str(&blob.descriptor.media_type)
            .map_err(|_| Error::Target(blob.descriptor.media_type.clone()))?;
        let body = bytes::Bytes::from(blob.bytes.clone());
        (|| {
            self.client
                .push_manifest_raw(&reference, body.clone(), content_type.clone())
        })
        .retry(policy())
        .when(transient)
        .await
        .map(|_| ())
        .map_err(|source| Error::Registry {
            action: "push",
            what: format!("manifest {tag_or_digest}"),
            repository: self.name(repository),
            source,
        })
    }

    /// Points `tag` at `blob` unless it already is; returns whether it moved.
    pub async fn tag(&self, repository: &str, tag: &str, blob: &Blob) -> Result<bool, Error> {
        if self.digest(repository, tag).await?.as_deref() == Some(blob.descriptor.digest.as_str()) {
            return Ok(false);
        }
        self.put_manifest(repository, tag, blob).await?;
        Ok(true)
    }

    /// Records `artifact` as a referrer of `subject` under the tag schema (`sha256-<hex>`),
    /// the fallback the distribution spec defines for registries without the referrers API.
    pub async fn add_referrer(&self, repository: &str, subject: &str, artifact: &Descriptor) -> Result<(), Error> {
        let tag = subject.replace(':', "-");
        let mut index = match self.manifest(repository, &tag, &[MEDIA_INDEX]).await? {
            Some(bytes) => serde_json::from_slice::<Index>(&bytes).map_err(|e| Error::Json(tag.clone(), e))?,
            None => Index {
                schema_version: 2,
                media_type: Some(MEDIA_INDEX.to_owned()),
                manifests: Vec::new(),
                annotations: BTreeMap::new(),
            },
        };
        if index.manifests.iter().any(|d| d.digest == artifact.digest) {
            return Ok(());
        }
        index.manifests.push(artifact.clone());
        index.manifests.sort_by(|a, b| a.digest.cmp(&b.digest));
        let blob = Blob::json(&index, MEDIA_INDEX).map_err(|e| Error::Json(tag.clone(), e))?;
        self.put_manifest(repository, &tag, &blob).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_refuse_schemes() {
        let t: Target = "127.0.0.1:5000/cnpg/images".parse().unwrap();
        assert_eq!((t.host.as_str(), t.prefix.as_str()), ("127.0.0.1:5000", "cnpg/images"));
        assert!("https://r.test/x".parse::<Target>().is_err());
        assert!("r.test".parse::<Target>().is_err());
        assert!("r.test/UPPER".parse::<Target>().is_err());
    }

    #[test]
    fn docker_config_credentials_in_both_forms_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("robot:s3cr3t");
        std::fs::write(&path, format!(r#"{{"auths":{{"https://r.test:5000":{{"auth":"{auth}"}},"other.test":{{"username":"u","password":"p"}}}}}}"#)).unwrap();
        let c = Credentials::from_docker_config(&path, "r.test:5000").unwrap().unwrap();
        assert_eq!(c.username, "robot");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert_eq!(
            Credentials::from_docker_config(&path, "other.test")
                .unwrap()
                .unwrap()
                .username,
            "u"
        );
        assert!(Credentials::from_docker_config(&path, "none.test").unwrap().is_none());
    }
}
