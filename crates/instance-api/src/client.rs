//! An HTTPS client for port 8000: TLS 1.3, the server verified against the cluster CA and the
//! name its certificate was issued for, optionally presenting a client certificate (the
//! operator's, for the endpoints that require it).

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Method;
use hyper_util::rt::TokioIo;
use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslMethod, SslVersion};
use openssl::x509::X509;
use tokio_openssl::SslStream;

use crate::{BackupStatus, BaseBackupStatus, InstanceStatus, StartBackup, StopBackup, TakeBackup};

/// A request to an instance failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid TLS material: {0}")]
    Tls(#[from] openssl::error::ErrorStack),
    #[error("failed to connect to {addr}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("TLS handshake with {addr} failed (is it the cluster's server certificate?)")]
    Handshake {
        addr: SocketAddr,
        source: openssl::ssl::Error,
    },
    #[error("HTTP exchange with {addr} failed")]
    Http { addr: SocketAddr, source: hyper::Error },
    #[error("invalid request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("{addr}{path} answered {status}: {body}")]
    Status {
        addr: SocketAddr,
        path: String,
        status: u16,
        body: String,
    },
    #[error("{addr} answered with JSON we cannot read")]
    Json {
        addr: SocketAddr,
        source: serde_json::Error,
    },
}

/// A client for one cluster's instances.
#[derive(Clone)]
pub struct Client {
    connector: SslConnector,
    server_name: String,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server_name", &self.server_name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A client certificate and its key, PEM.
#[derive(Clone, Copy)]
pub struct Identity<'a> {
    pub certificate: &'a str,
    pub key: &'a str,
}

impl std::fmt::Debug for Identity<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

impl Client {
    /// Trusts `ca_pem` only, expects certificates issued for `server_name` (`<cluster>-rw`).
    pub fn new(ca_pem: &str, server_name: &str, identity: Option<Identity<'_>>) -> Result<Self, Error> {
        let mut builder = SslConnector::builder(SslMethod::tls_client())?;
        builder.set_min_proto_version(Some(SslVersion::TLS1_3))?;
        // Only the cluster CA: a certificate from any public CA must not pass.
        let mut store = openssl::x509::store::X509StoreBuilder::new()?;
        for ca in X509::stack_from_pem(ca_pem.as_bytes())? {
            store.add_cert(ca)?;
        }
        builder.set_verify_cert_store(store.build())?;
        if let Some(identity) = identity {
            let certificate = X509::from_pem(identity.certificate.as_bytes())?;
            let key = PKey::private_key_from_pem(identity.key.as_bytes())?;
            builder.set_certificate(&certificate)?;
            builder.set_private_key(&key)?;
        }
        Ok(Self {
            connector: builder.build(),
            server_name: server_name.to_owned(),
            timeout: Duration::from_secs(5),
        })
    }

    /// The same client with another per-request deadline.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// GET `path`: the status code and the body.
    pub async fn get(&self, addr: SocketAddr, path: &str) -> Result<(u16, Bytes), Error> {
        self.request(addr, Method::GET, path, Bytes::new()).await
    }

    /// `method` `path` with `body`: the status code and the body.
    pub async fn request(
        &self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), Error> {
        tokio::time::timeout(self.timeout, self.exchange(addr, method, path, body))
            .await
            .map_err(|_| Error::Timeout {
                addr,
                timeout: self.timeout,
            })?
    }

    async fn exchange(&self, addr: SocketAddr, method: Method, path: &str, body: Bytes) -> Result<(u16, Bytes), Error> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| Error::Connect { addr, source })?;
        let ssl = self.connector.configure()?.into_ssl(&self.server_name)?;
        let mut tls = SslStream::new(ssl, tcp)?;
        Pin::new(&mut tls)
            .connect()
            .await
            .map_err(|source| Error::Handshake { addr, source })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|source| Error::Http { addr, source })?;
        let driver = tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.server_name);
        if !body.is_empty() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|source| Error::Http { addr, source })?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|source| Error::Http { addr, source })?
            .to_bytes();
        driver.abort();
        Ok((status, body))
    }

    /// GET `path` and parse a JSON answer; any status but 200 is an error carrying the body.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, addr: SocketAddr, path: &str) -> Result<T, Error> {
        self.json(addr, Method::GET, path, Bytes::new()).await
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<T, Error> {
        let (status, body) = self.request(addr, method, path, body).await?;
        if status != 200 {
            return Err(Error::Status {
                addr,
                path: path.to_owned(),
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        serde_json::from_slice(&body).map_err(|source| Error::Json { addr, source })
    }

    /// `/pg/status`.
    pub async fn status(&self, addr: SocketAddr) -> Result<InstanceStatus, Error> {
        self.get_json(addr, crate::paths::STATUS).await
    }

    /// Puts the instance in backup mode (operator certificate).
    pub async fn start_backup(&self, addr: SocketAddr, start: &StartBackup) -> Result<BackupStatus, Error> {
        let body = serde_json::to_vec(start).map_err(|source| Error::Json { addr, source })?;
        self.json(addr, Method::POST, crate::paths::BACKUP, body.into()).await
    }

    /// Ends backup mode (operator certificate); the status carries the backup label.
    pub async fn stop_backup(&self, addr: SocketAddr, stop: &StopBackup) -> Result<BackupStatus, Error> {
        let body = serde_json::to_vec(stop).map_err(|source| Error::Json { addr, source })?;
        self.json(addr, Method::PUT, crate::paths::BACKUP, body.into()).await
    }

    /// The current or last backup (operator certificate).
    pub async fn backup_status(&self, addr: SocketAddr) -> Result<BackupStatus, Error> {
        self.get_json(addr, crate::paths::BACKUP).await
    }

    /// Starts a base backup to the object store (operator certificate); it runs in the
    /// background: poll [`Self::base_backup_status`].
    pub async fn take_backup(&self, addr: SocketAddr, request: &TakeBackup) -> Result<BaseBackupStatus, Error> {
        let body = serde_json::to_vec(request).map_err(|source| Error::Json { addr, source })?;
        self.json(addr, Method::POST, crate::paths::BASE_BACKUP, body.into())
            .await
    }

    /// The current or last base backup (operator certificate).
    pub async fn base_backup_status(&self, addr: SocketAddr) -> Result<BaseBackupStatus, Error> {
        self.get_json(addr, crate::paths::BASE_BACKUP).await
    }
}
