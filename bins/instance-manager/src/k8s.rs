//! What the instance manager reads from the Kubernetes API, with the pod's ServiceAccount
//! token: its Cluster, and the Secrets that hold its certificates and passwords. Nothing
//! secret is mounted into the pod: it arrives here, goes to 0600 files or straight into a
//! password verifier, and is never logged.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cnpg_api::cluster::Cluster;
use cnpg_pki::PrivateKeyPem;
use cnpg_postgres::password::Password;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};

/// The ConfigMap the operator copies into every cluster namespace.
pub const DEFAULT_QUERIES: &str = "cnpg-default-monitoring";

/// Who this instance is and how it reaches the API server.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeArgs {
    /// The Cluster this instance belongs to.
    #[arg(long, env = "CLUSTER_NAME")]
    pub cluster_name: String,
    /// The Cluster's namespace.
    #[arg(long, env = "NAMESPACE")]
    pub namespace: String,
    /// This instance's name (the pod's).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: String,
    /// The API server's URL; in a pod it comes from KUBERNETES_SERVICE_HOST and _PORT.
    #[arg(long, env = "CNPG_KUBERNETES_API_URL")]
    pub api_url: Option<String>,
    /// The projected ServiceAccount volume: `token` and `ca.crt`.
    #[arg(long, default_value = "/var/run/secrets/kubernetes.io/serviceaccount")]
    pub service_account_dir: PathBuf,
}

/// Talking to the API server failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to find the API server: set KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT or --api-url")]
    NoApiServer,
    #[error("failed to read {}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("failed to parse the API server CA in {}", .path.display())]
    Ca {
        path: PathBuf,
        source: openssl::error::ErrorStack,
    },
    #[error("failed to parse the API server URL {url:?}")]
    Url {
        url: String,
        source: hyper::http::uri::InvalidUri,
    },
    #[error("failed to build the Kubernetes client")]
    Client(#[source] kube::Error),
    #[error("failed to get {kind} {namespace}/{name}")]
    Get {
        kind: &'static str,
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    MissingKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("spec.backup.barmanObjectStore: {0}")]
    ObjectStore(String),
    #[error("failed to update the status of Cluster {namespace}/{name}")]
    Status {
        namespace: String,
        name: String,
        source: kube::Error,
    },
}

impl KubeArgs {
    fn url(&self) -> Result<String, Error> {
        if let Some(url) = &self.api_url {
            return Ok(url.clone());
        }
        let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| Error::NoApiServer)?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").map_err(|_| Error::NoApiServer)?;
        Ok(if host.contains(':') {
            format!("https://[{host}]:{port}")
        } else {
            format!("https://{host}:{port}")
        })
    }

    /// A client that trusts only the ServiceAccount CA and re-reads the (rotating) token file.
    pub fn client(&self) -> Result<kube::Client, Error> {
        let url = self.url()?;
        let ca_path = self.service_account_dir.join("ca.crt");
        let ca = std::fs::read(&ca_path).map_err(|source| Error::Read {
            path: ca_path.clone(),
            source,
        })?;
        let roots = openssl::x509::X509::stack_from_pem(&ca)
            .and_then(|certs| certs.iter().map(|c| c.to_der()).collect::<Result<Vec<_>, _>>())
            .map_err(|source| Error::Ca { path: ca_path, source })?;
        let mut config = kube::Config::new(url.parse().map_err(|source| Error::Url { url, source })?);
        config.root_cert = Some(roots);
        config.auth_info.token_file = Some(self.service_account_dir.join("token").display().to_string());
        config.default_namespace.clone_from(&self.namespace);
        kube::Client::try_from(config).map_err(Error::Client)
    }
}

/// The instance's view of the API: its Cluster and Secrets.
#[derive(Clone)]
pub struct ClusterApi {
    pub args: KubeArgs,
    pub clusters: Api<Cluster>,
    secrets: Api<Secret>,
    config_maps: Api<ConfigMap>,
    backups: Api<cnpg_api::backup::Backup>,
}

impl std::fmt::Debug for ClusterApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterApi")
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}

/// A TLS certificate with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPair {
    pub certificate: String,
    pub key: PrivateKeyPem,
}

/// Everything secret an instance needs, read in one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Materials {
    pub cluster: Cluster,
    pub server_ca: String,
    pub client_ca: String,
    pub server: TlsPair,
    pub replication: TlsPair,
    /// The `postgres` password when superuser access is enabled.
    pub superuser: Option<Password>,
    /// The application owner and password.
    pub app: Option<(String, Password)>,
    /// Where WAL is archived, when `spec.backup.barmanObjectStore` is set.
    pub archive: Option<cnpg_backup::archive::Settings>,
}

fn key(secret: &Secret, namespace: &str, name: &str, key: &str) -> Result<String, Error> {
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned());
    let from_string = || secret.string_data.as_ref().and_then(|d| d.get(key)).cloned();
    from_data.or_else(from_string).ok_or_else(|| Error::MissingKey {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        key: key.to_owned(),
    })
}

impl ClusterApi {
    pub fn new(args: KubeArgs) -> Result<Self, Error> {
        let client = args.client()?;
        Ok(Self {
            clusters: Api::namespaced(client.clone(), &args.namespace),
            secrets: Api::namespaced(client.clone(), &args.namespace),
            config_maps: Api::namespaced(client.clone(), &args.namespace),
            backups: Api::namespaced(client, &args.namespace),
            args,
        })
    }

    pub async fn cluster(&self) -> Result<Cluster, Error> {
        self.clusters
            .get(&self.args.cluster_name)
            .await
            .map_err(|source| Error::Get {
                kind: "Cluster",
                namespace: self.args.namespace.clone(),
                name: self.args.cluster_name.clone(),
                source,
            })
    }

    async fn secret(&self, name: &str) -> Result<Secret, Error> {
        self.secrets.get(name).await.map_err(|source| Error::Get {
            kind: "Secret",
            namespace: self.args.namespace.clone(),
            name: name.to_owned(),
            source,
        })
    }

    async fn secret_key(&self, name: &str, wanted: &str) -> Result<String, Error> {
        let secret = self.secret(name).await?;
        key(&secret, &self.args.namespace, name, wanted)
    }

    async fn pair(&self, name: &str) -> Result<TlsPair, Error> {
        let secret = self.secret(name).await?;
        let ns = &self.args.namespace;
        Ok(TlsPair {
            certificate: key(&secret, ns, name, "tls.crt")?,
            key: PrivateKeyPem::from(key(&secret, ns, name, "tls.key")?),
        })
    }

    /// The Cluster and every Secret it refers to.
    pub async fn materials(&self) -> Result<Materials, Error> {
        let cluster = self.cluster().await?;
        let name = &self.args.cluster_name;
        let certs = cluster.spec.certificates.clone().unwrap_or_default();
        let default_ca = format!("{name}-ca");
        let server_ca_secret = certs.server_ca_secret.clone().unwrap_or_else(|| default_ca.clone());
        let client_ca_secret = certs.client_ca_secret.clone().unwrap_or(default_ca);
        let server_ca = self.secret_key(&server_ca_secret, "ca.crt").await?;
        let client_ca = self.secret_key(&client_ca_secret, "ca.crt").await?;
        let server = self
            .pair(
                &certs
                    .server_tls_secret
                    .clone()
                    .unwrap_or_else(|| format!("{name}-server")),
            )
            .await?;
        let replication = self
            .pair(
                &certs
                    .replication_tls_secret
                    .clone()
                    .unwrap_or_else(|| format!("{name}-replication")),
            )
            .await?;
        let superuser = if cluster.spec.enable_superuser_access() {
            let secret = cluster
                .spec
                .superuser_secret
                .as_ref()
                .map_or_else(|| format!("{name}-superuser"), |s| s.name.clone());
            Some(Password::new(self.secret_key(&secret, "password").await?))
        } else {
            None
        };
        let initdb = cluster.spec.bootstrap.as_ref().and_then(|b| b.initdb.as_ref());
        let app_secret = initdb
            .and_then(|i| i.secret.as_ref())
            .map_or_else(|| format!("{name}-app"), |s| s.name.clone());
        let app = match self.secret(&app_secret).await {
            Ok(secret) => {
                let ns = &self.args.namespace;
                Some((
                    key(&secret, ns, &app_secret, "username")?,
                    Password::new(key(&secret, ns, &app_secret, "password")?),
                ))
            }
            // No application secret (a cluster bootstrapped without one) is not an error.
            Err(Error::Get {
                source: kube::Error::Api(status),
                ..
            }) if status.code == 404 => None,
            Err(e) => return Err(e),
        };
        let archive = self.archive_settings(&cluster).await?;
        Ok(Materials {
            cluster,
            server_ca,
            client_ca,
            server,
            replication,
            superuser,
            app,
            archive,
        })
    }

    async fn optional_key(&self, reference: Option<&cnpg_api::barman::SecretKey>) -> Result<Option<String>, Error> {
        match reference {
            Some(r) => Ok(Some(self.secret_key(&r.name, &r.key).await?)),
            None => Ok(None),
        }
    }

    /// The object store WAL goes to, with its credentials read from the Secrets the
    /// `barmanObjectStore` names.
    async fn archive_settings(&self, cluster: &Cluster) -> Result<Option<cnpg_backup::archive::Settings>, Error> {
        let Some(value) = cluster
            .spec
            .backup
            .as_ref()
            .and_then(|b| b.barman_object_store.as_ref())
        else {
            return Ok(None);
        };
        let name = cluster.metadata.name.clone().unwrap_or_default();
        let mut settings = self.store_settings(value, &name).await?;
        settings.retention_policy = cluster.spec.backup.as_ref().and_then(|b| b.retention_policy.clone());
        Ok(Some(settings))
    }

    /// Where the backup to recover from is, and which one it is: `bootstrap.recovery.backup`
    /// (a completed Backup: its store, server and backup ID, with the credentials it names) or
    /// `bootstrap.recovery.source` (its external cluster's `barmanObjectStore`, `serverName`
    /// defaulting to the entry's name; the backup chosen by the recovery target).
    pub async fn recovery_source(
        &self,
        cluster: &Cluster,
    ) -> Result<(cnpg_backup::archive::Settings, Option<String>), Error> {
        let recovery = cluster
            .spec
            .bootstrap
            .as_ref()
            .and_then(|b| b.recovery.as_ref())
            .ok_or_else(|| Error::ObjectStore("spec.bootstrap.recovery is not set".into()))?;
        if let Some(backup) = &recovery.backup {
            let found = self.backups.get(&backup.name).await.map_err(|source| Error::Get {
                kind: "Backup",
                namespace: self.args.namespace.clone(),
                name: backup.name.clone(),
                source,
            })?;
            let status = found.status.unwrap_or_default();
            let (Some("completed"), Some(id), Some(destination)) = (
                status.phase.as_deref(),
                status.backup_id.clone(),
                status.destination_path.clone(),
            ) else {
                return Err(Error::ObjectStore(format!(
                    "Backup {:?} is not a completed backup to an object store (phase {:?})",
                    backup.name, status.phase
                )));
            };
            let store = serde_json::json!({
                "destinationPath": destination,
                "serverName": status.server_name,
                "endpointURL": status.endpoint_url,
                "endpointCA": status.endpoint_ca,
                "s3Credentials": status.s3_credentials,
            });
            let server = status.server_name.clone().unwrap_or_default();
            return Ok((self.store_settings(&store, &server).await?, Some(id)));
        }
        let source = recovery.source.as_deref().unwrap_or_default();
        let store = cluster
            .spec
            .external_clusters
            .iter()
            .flatten()
            .find(|e| e.name == source)
            .and_then(|e| e.barman_object_store.as_ref())
            .ok_or_else(|| {
                Error::ObjectStore(format!(
                    "spec.bootstrap.recovery.source {source:?} names no external cluster with a barmanObjectStore"
                ))
            })?;
        Ok((self.store_settings(store, source).await?, None))
    }

    /// A `barmanObjectStore` resolved: its credentials and CA read from the Secrets it names.
    async fn store_settings(
        &self,
        value: &serde_json::Value,
        default_server: &str,
    ) -> Result<cnpg_backup::archive::Settings, Error> {
        let store = cnpg_api::barman::ObjectStore::from_value(value).map_err(Error::ObjectStore)?;
        let endpoint = store
            .endpoint_url
            .clone()
            .ok_or_else(|| Error::ObjectStore("endpointURL is required: name the S3-compatible endpoint".into()))?;
        let credentials = store.s3_credentials.clone().unwrap_or_default();
        let access_key_id = self
            .optional_key(credentials.access_key_id.as_ref())
            .await?
            .ok_or_else(|| Error::ObjectStore("s3Credentials.accessKeyId is required".into()))?;
        let secret_access_key = self
            .optional_key(credentials.secret_access_key.as_ref())
            .await?
            .ok_or_else(|| Error::ObjectStore("s3Credentials.secretAccessKey is required".into()))?;
        let region = self
            .optional_key(credentials.region.as_ref())
            .await?
            .unwrap_or_else(|| "us-east-1".to_owned());
        let session_token = self.optional_key(credentials.session_token.as_ref()).await?;
        let ca_pem = self.optional_key(store.endpoint_ca.as_ref()).await?;
        Ok(cnpg_backup::archive::Settings {
            endpoint,
            ca_pem,
            destination: store.destination_path.clone(),
            server: store.server(default_server).to_owned(),
            region: region.trim().to_owned(),
            access_key_id: access_key_id.trim().to_owned(),
            secret_access_key: secret_access_key.trim().to_owned(),
            session_token: session_token.map(|t| t.trim().to_owned()),
            compression: store.wal.as_ref().and_then(|w| w.compression.clone()),
            data_compression: store.data.as_ref().and_then(|d| d.compression.clone()),
            max_parallel: store
                .wal
                .as_ref()
                .and_then(|w| w.max_parallel)
                .and_then(|n| u32::try_from(n).ok()),
            wal_encryption: store.wal.as_ref().and_then(|w| w.encryption.clone()),
            data_encryption: store.data.as_ref().and_then(|d| d.encryption.clone()),
            segment_size: None,
            retention_policy: None,
        })
    }

    /// The monitoring query documents of `cluster`, named by where they came from: the
    /// default ConfigMap (unless disabled), then the custom ConfigMaps and Secrets. One that
    /// cannot be read is left out and logged; the others still count.
    pub async fn monitoring_queries(&self, cluster: &Cluster) -> Vec<(String, String)> {
        let monitoring = cluster.spec.monitoring.clone().unwrap_or_default();
        let mut maps: Vec<(String, String)> = Vec::new();
        if !monitoring.disable_default_queries.unwrap_or(false) {
            maps.push((DEFAULT_QUERIES.to_owned(), "queries".to_owned()));
        }
        maps.extend(
            monitoring
                .custom_queries_config_map
                .unwrap_or_default()
                .into_iter()
                .map(|r| (r.name, r.key)),
        );
        let mut out = Vec::new();
        for (name, key) in maps {
            match self.config_maps.get(&name).await {
                Ok(map) => match map.data.and_then(|d| d.get(&key).cloned()) {
                    Some(text) => out.push((format!("ConfigMap {name}/{key}"), text)),
                    None => tracing::warn!(config_map = name, key, "monitoring queries: no such key"),
                },
                Err(e) => tracing::warn!(config_map = name, error = %e, "monitoring queries unavailable"),
            }
        }
        for selector in monitoring.custom_queries_secret.unwrap_or_default() {
            match self.secret_key(&selector.name, &selector.key).await {
                Ok(text) => out.push((format!("Secret {}/{}", selector.name, selector.key), text)),
                Err(e) => tracing::warn!(secret = selector.name, error = %e, "monitoring queries unavailable"),
            }
        }
        out
    }

    /// Merges `status` fields into the Cluster's status.
    /// Sets one condition of `cluster` (as read), keeping the others; refused by the API server
    /// (409) when the Cluster changed meanwhile, so nobody's condition is lost.
    pub async fn set_condition(
        &self,
        cluster: &Cluster,
        condition: k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition,
    ) -> Result<(), Error> {
        let mut conditions: Vec<_> = cluster
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.type_ != condition.type_)
            .collect();
        conditions.push(condition);
        self.merge_status(&serde_json::json!({
            "metadata": {"resourceVersion": cluster.metadata.resource_version},
            "status": {"conditions": conditions},
        }))
        .await
    }

    pub async fn patch_status(&self, status: BTreeMap<&str, serde_json::Value>) -> Result<(), Error> {
        self.merge_status(&serde_json::json!({ "status": status })).await
    }

    /// A merge patch of the Cluster's status subresource.
    async fn merge_status(&self, patch: &serde_json::Value) -> Result<(), Error> {
        self.clusters
            .patch_status(&self.args.cluster_name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(|source| Error::Status {
                namespace: self.args.namespace.clone(),
                name: self.args.cluster_name.clone(),
                source,
            })
    }
}
