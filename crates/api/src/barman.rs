//! `barmanObjectStore` (in `spec.backup` and in `externalClusters`) read as a type: the API
//! keeps it as free-form JSON, so what the WAL archiver and the backup code rely on is read
//! and checked here. S3-compatible stores only for now: Azure and Google configurations are
//! accepted by the schema and refused by validation with that reason.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A key of a Secret in the Cluster's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SecretKey {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub key: String,
}

/// `s3Credentials`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Credentials {
    pub access_key_id: Option<SecretKey>,
    pub secret_access_key: Option<SecretKey>,
    pub region: Option<SecretKey>,
    pub session_token: Option<SecretKey>,
    #[serde(rename = "inheritFromIAMRole")]
    pub inherit_from_iam_role: Option<bool>,
}

/// `wal`: how WAL files are stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalOptions {
    pub compression: Option<String>,
    pub encryption: Option<String>,
    pub max_parallel: Option<i64>,
}

/// `data`: how base backups are stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataOptions {
    pub compression: Option<String>,
    pub encryption: Option<String>,
    pub jobs: Option<i64>,
    pub immediate_checkpoint: Option<bool>,
}

/// `barmanObjectStore`, the fields we read; others (tags, additional command arguments) are
/// kept by the API as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStore {
    #[serde(default)]
    pub destination_path: String,
    #[serde(rename = "endpointURL")]
    pub endpoint_url: Option<String>,
    #[serde(rename = "endpointCA")]
    pub endpoint_ca: Option<SecretKey>,
    pub server_name: Option<String>,
    pub s3_credentials: Option<S3Credentials>,
    pub azure_credentials: Option<serde_json::Value>,
    pub google_credentials: Option<serde_json::Value>,
    pub wal: Option<WalOptions>,
    pub data: Option<DataOptions>,
    pub tags: Option<BTreeMap<String, String>>,
    pub history_tags: Option<BTreeMap<String, String>>,
}

/// `wal.compression` values (CloudNativePG's enum).
pub const WAL_COMPRESSIONS: &[&str] = &["bzip2", "gzip", "lz4", "snappy", "xz", "zstd"];
/// `data.compression` values.
pub const DATA_COMPRESSIONS: &[&str] = &["bzip2", "gzip", "lz4", "snappy"];
/// `wal.encryption` and `data.encryption` values.
pub const ENCRYPTIONS: &[&str] = &["AES256", "aws:kms"];

impl ObjectStore {
    /// Reads the free-form JSON the API holds.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, String> {
        Self::deserialize(value).map_err(|e| e.to_string())
    }

    /// The server name in the store: `serverName`, else the cluster's name.
    pub fn server<'a>(&'a self, cluster: &'a str) -> &'a str {
        self.server_name.as_deref().filter(|s| !s.is_empty()).unwrap_or(cluster)
    }

    /// The Secrets this configuration reads, by name (for the instance's Role).
    pub fn secret_names(&self) -> Vec<String> {
        let credentials = self.s3_credentials.as_ref();
        let mut names: Vec<String> = [
            credentials.and_then(|c| c.access_key_id.as_ref()),
            credentials.and_then(|c| c.secret_access_key.as_ref()),
            credentials.and_then(|c| c.region.as_ref()),
            credentials.and_then(|c| c.session_token.as_ref()),
            self.endpoint_ca.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|s| s.name.clone())
        .collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cloudnativepgs_shape_and_names_what_it_needs() {
        let store = ObjectStore::from_value(&serde_json::json!({
            "destinationPath": "s3://backups/pg",
            "endpointURL": "https://s3.internal:9000",
            "endpointCA": {"name": "s3-ca", "key": "ca.crt"},
            "s3Credentials": {
                "accessKeyId": {"name": "s3", "key": "ACCESS_KEY_ID"},
                "secretAccessKey": {"name": "s3", "key": "SECRET_ACCESS_KEY"},
                "region": {"name": "s3-region", "key": "REGION"},
            },
            "wal": {"compression": "gzip", "maxParallel": 8},
            "tags": {"team": "db"},
        }))
        .unwrap();
        assert_eq!(store.server("pg"), "pg");
        assert_eq!(store.secret_names(), ["s3", "s3-ca", "s3-region"]);
        assert_eq!(store.wal.as_ref().and_then(|w| w.max_parallel), Some(8));
        let named = ObjectStore {
            server_name: Some("old-pg".into()),
            ..store
        };
        assert_eq!(named.server("pg"), "old-pg");
        assert!(ObjectStore::from_value(&serde_json::json!({"wal": {"maxParallel": "eight"}})).is_err());
    }
}
