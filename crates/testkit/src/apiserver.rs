//! The Kubernetes API stand-in: an in-process HTTPS server speaking the real REST protocol for
//! the kinds our components use, so the operator and its tests talk to something that behaves
//! like an API server where none can run.
//!
//! What it does, as the real server does it: create/get/list/watch/update/patch/delete with
//! resource versions and 409 conflicts, `generateName`, namespaces that must exist, label and
//! field selectors, paginated lists, watch streams resumable from a resource version (410 when
//! too old) with bookmarks, status subresources, `metadata.generation`, finalizers and
//! deletion timestamps, owner-reference garbage collection, JSON merge / strategic merge / JSON
//! patch, server-side apply with field managers and conflicts, CRDs registered on creation,
//! custom resources pruned and validated against their structural schema and CEL rules (422
//! naming the field), admission through the webhook configurations it stores, bearer-token
//! authentication, and discovery. Every request is recorded (verb, group, resource,
//! subresource, namespace, name) so tests can compare a component's calls with its RBAC.
//!
//! What it leaves out: authorization (every authenticated call is allowed), built-in
//! controllers (no Pods from Deployments, no kubelet), strategic-merge list semantics beyond
//! merge keys, list-type maps in server-side apply (lists are atomic), field selectors limited
//! per kind (any field path works), `pattern` in schemas.

#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing: reading a missing key gives Null, and writes only touch objects whose shape http::shape checked on entry"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};
use serde_json::Value;

mod admission;
mod discovery;
mod error;
mod http;
mod patch;
mod resources;
mod schema;
mod selectors;
mod store;
mod watch;

/// One request a client made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordedRequest {
    /// The RBAC verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    pub group: String,
    pub version: String,
    /// The plural resource name.
    pub resource: String,
    /// `status`, or empty.
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

/// How to start the stand-in.
#[derive(Debug, Clone)]
pub struct Options {
    /// CRDs created at start (more can be created through the API).
    pub crds: Vec<CustomResourceDefinition>,
    /// How often an idle watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// How many events watches can resume from; older resource versions get 410 Gone.
    pub history: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            crds: Vec::new(),
            bookmark_interval: Duration::from_millis(500),
            history: 10_000,
        }
    }
}

/// A running stand-in; stops when dropped.
pub struct ApiServer {
    address: SocketAddr,
    ca_pem: String,
    state: Arc<http::State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn key() -> anyhow::Result<PKey<Private>> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
}

/// A throwaway CA and a server certificate it signed, valid for a day: for the stand-in and
/// for the servers tests put behind it (webhooks).
pub struct TestTls {
    pub ca: X509,
    pub certificate: X509,
    pub key: PKey<Private>,
}

impl std::fmt::Debug for TestTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestTls").finish_non_exhaustive()
    }
}

impl TestTls {
    /// A certificate for `dns_names` and 127.0.0.1.
    pub fn new(dns_names: &[&str]) -> anyhow::Result<Self> {
        let serial = || -> anyhow::Result<_> {
            let mut n = BigNum::new()?;
            n.rand(127, MsbOption::MAYBE_ZERO, false)?;
            Ok(n.to_asn1_integer()?)
        };
        let name = |cn: &str| -> anyhow::Result<_> {
            let mut b = X509NameBuilder::new()?;
            b.append_entry_by_text("CN", cn)?;
            Ok(b.build())
        };
        let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(1)?);
        let ca_key = key()?;
        let mut ca = X509::builder()?;
        let (ca_serial, ca_name) = (serial()?, name("cnpg-rs test CA")?);
        ca.set_version(2)?;
        ca.set_serial_number(&ca_serial)?;
        ca.set_subject_name(&ca_name)?;
        ca.set_issuer_name(&ca_name)?;
        ca.set_pubkey(&ca_key)?;
        ca.set_not_before(&not_before)?;
        ca.set_not_after(&not_after)?;
        ca.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        ca.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
        ca.sign(&ca_key, MessageDigest::sha256())?;
        let ca = ca.build();
        let server_key = key()?;
        let mut server = X509::builder()?;
        let (server_serial, server_name) = (serial()?, name(dns_names.first().copied().unwrap_or("localhost"))?);
        server.set_version(2)?;
        server.set_serial_number(&server_serial)?;
        server.set_subject_name(&server_name)?;
        server.set_issuer_name(ca.subject_name())?;
        server.set_pubkey(&server_key)?;
        server.set_not_before(&not_before)?;
        server.set_not_after(&not_after)?;
        let mut san = SubjectAlternativeName::new();
        san.ip("127.0.0.1");
        for dns in dns_names {
            san.dns(dns);
        }
        let san = san.build(&server.x509v3_context(Some(&ca), None))?;
        server.append_extension(san)?;
        server.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
        server.sign(&ca_key, MessageDigest::sha256())?;
        Ok(Self {
            ca,
            certificate: server.build(),
            key: server_key,
        })
    }

    /// The CA, PEM.
    pub fn ca_pem(&self) -> anyhow::Result<String> {
        Ok(String::from_utf8(self.ca.to_pem()?)?)
    }

    /// A TLS acceptor serving the certificate (TLS 1.3 only).
    pub fn acceptor(&self) -> anyhow::Result<SslAcceptor> {
        let mut acceptor = SslAcceptor::mozilla_modern_v5(SslMethod::tls_server())?;
        acceptor.set_private_key(&self.key)?;
        acceptor.set_certificate(&self.certificate)?;
        acceptor.add_extra_chain_cert(self.ca.clone())?;
        acceptor.check_private_key()?;
        Ok(acceptor.build())
    }
}

fn token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    openssl::rand::rand_bytes(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: Arc<SslAcceptor>,
    state: Arc<http::State>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => return,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let acceptor = Arc::clone(&acceptor);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else {
                return;
            };
            let Ok(mut stream) = tokio_openssl::SslStream::new(ssl, tcp) else {
                return;
            };
            if std::pin::Pin::new(&mut stream).accept().await.is_err() {
                return;
            }
            let service = hyper::service::service_fn(move |request| http::handle(Arc::clone(&state), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

impl ApiServer {
    /// Starts a stand-in with no custom resources.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(Options::default())
    }

    /// Starts a stand-in on a free loopback port.
    pub fn start_with(options: Options) -> anyhow::Result<Self> {
        let tls = TestTls::new(&["localhost"])?;
        let acceptor = Arc::new(tls.acceptor()?);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("failed to bind the stand-in to loopback")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let mut store = store::Store::new(resources::builtin(), options.history);
        let crd_resource = store
            .resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .context("CRDs are served")?;
        for crd in &options.crds {
            let object = serde_json::to_value(crd)?;
            store
                .create(&crd_resource, "", object, "cnpg-rs-testkit", false)
                .map_err(|e| anyhow::anyhow!(e.message))?;
            store.register(resources::from_crd(crd));
        }
        let state = Arc::new(http::State {
            store: Mutex::new(store),
            token: token()?,
            services: Arc::default(),
            requests: Mutex::default(),
            bookmark_interval: options.bookmark_interval,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (shutdown, receiver) = tokio::sync::oneshot::channel();
        let serving = Arc::clone(&state);
        let thread = std::thread::Builder::new().name("api-stand-in".into()).spawn(move || {
            runtime.block_on(async move {
                // Registering a bound loopback socket with the runtime does not fail in practice;
                // if it did, every request would fail to connect, naming the address.
                if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                    serve(listener, acceptor, serving, receiver).await;
                }
            });
        })?;
        Ok(Self {
            address,
            ca_pem: tls.ca_pem()?,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.address)
    }

    /// The CA that signed the server certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token every request must carry.
    pub fn token(&self) -> &str {
        &self.state.token
    }

    /// A kube client configuration for this server.
    pub fn kube_config(&self) -> anyhow::Result<kube::Config> {
        let mut config = kube::Config::new(self.url().parse()?);
        let der = X509::from_pem(self.ca_pem.as_bytes())?.to_der()?;
        config.root_cert = Some(vec![der]);
        config.auth_info.token = Some(self.state.token.clone().into());
        config.default_namespace = "default".into();
        Ok(config)
    }

    /// A kube client for this server.
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        Ok(kube::Client::try_from(self.kube_config()?)?)
    }

    /// Makes webhooks that name Service `name` in `namespace` reach `address`.
    pub fn register_service(&self, name: &str, namespace: &str, address: SocketAddr) {
        if let Ok(mut services) = self.state.services.lock() {
            services.insert((name.to_owned(), namespace.to_owned()), address);
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        if let Ok(mut r) = self.state.requests.lock() {
            r.clear();
        }
    }

    /// An object as stored (for assertions without a client).
    pub fn object(&self, group: &str, version: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let store = self.state.store.lock().ok()?;
        let resource = store.resource(group, version, plural)?;
        store.get(&resource, namespace, name).ok()
    }
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
