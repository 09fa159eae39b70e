//! What the WAL archiver and base backups need to reach the object store, resolved from the Cluster and its
//! Secrets by `instance run` and handed to `wal-archive` (a process PostgreSQL starts per
//! segment) in a file only the instance's user can read. Credentials never go through a
//! command line or an environment variable, and `Debug` never prints them.

use serde::{Deserialize, Serialize};

use crate::{Compression, Error, Location};

/// The file's name, in the controller directory beside the instance manager.
pub const FILE_NAME: &str = "wal-archive.json";

/// Why the last `wal-archive` failed (removed by the next success), for the Cluster's
/// `ContinuousArchiving` condition.
pub const ERROR_FILE_NAME: &str = "wal-archive.error";

/// The recovery source's settings while `instance restore` runs: `wal-restore` reads WAL from
/// there instead of the Cluster's own store.
pub const RECOVERY_FILE_NAME: &str = "wal-restore.json";

/// Where and how WAL goes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `https://host[:port]`.
    pub endpoint: String,
    /// PEM of the endpoint's CA, beside the system's roots.
    pub ca_pem: Option<String>,
    /// `s3://bucket[/path]`.
    pub destination: String,
    /// The server name under the destination.
    pub server: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// `wal.compression`: none or `gzip` so far.
    pub compression: Option<String>,
    /// `data.compression` of base backups: none or `gzip` so far.
    #[serde(default)]
    pub data_compression: Option<String>,
    /// `wal.maxParallel`: WAL files archived at once (1 when unset).
    #[serde(default)]
    pub max_parallel: Option<u32>,
    /// `wal.encryption`: how the store encrypts WAL files (`AES256`, `aws:kms`).
    #[serde(default)]
    pub wal_encryption: Option<String>,
    /// `data.encryption`: how the store encrypts base backups.
    #[serde(default)]
    pub data_encryption: Option<String>,
    /// WAL segment size in bytes, when known (recovery: from the backup), for fetching the
    /// segments after the one asked for.
    #[serde(default)]
    pub segment_size: Option<u64>,
    /// `backup.retentionPolicy` (the Cluster's own store only).
    #[serde(default)]
    pub retention_policy: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("destination", &self.destination)
            .field("server", &self.server)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field("session_token", &self.session_token.as_ref().map(|_| "[redacted]"))
            .field("compression", &self.compression)
            .field("data_compression", &self.data_compression)
            .field("max_parallel", &self.max_parallel)
            .field("wal_encryption", &self.wal_encryption)
            .field("data_encryption", &self.data_encryption)
            .field("segment_size", &self.segment_size)
            .field("retention_policy", &self.retention_policy)
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub fn location(&self) -> Result<Location, Error> {
        Location::new(&self.destination, &self.server)
    }

    /// How segments are compressed; `None` for a compression not supported yet.
    pub fn compression(&self) -> Option<Compression> {
        match self.compression.as_deref() {
            None => Some(Compression::None),
            Some("gzip") => Some(Compression::Gzip),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secrets() {
        let settings = Settings {
            endpoint: "https://s3.internal:9000".into(),
            ca_pem: None,
            destination: "s3://b/p".into(),
            server: "pg".into(),
            region: "us-east-1".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI".into(),
            session_token: Some("FQoGZXIvYXdzE".into()),
            compression: Some("gzip".into()),
            data_compression: None,
            max_parallel: None,
            wal_encryption: None,
            data_encryption: None,
            segment_size: None,
            retention_policy: None,
        };
        let printed = format!("{settings:?}");
        assert!(
            !printed.contains("wJalrXUtnFEMI") && !printed.contains("FQoGZXIvYXdzE"),
            "{printed}"
        );
        assert_eq!(settings.compression(), Some(Compression::Gzip));
        assert_eq!(settings.location().unwrap().root(), "p/pg/");
        let text = serde_json::to_string(&settings).unwrap();
        assert_eq!(serde_json::from_str::<Settings>(&text).unwrap(), settings);
    }
}
