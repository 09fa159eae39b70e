//! The Prometheus exporter on port 9187. Every scrape connects as `cnpg_metrics_exporter` (peer
//! authentication, member of pg_monitor: it reads statistics and nothing else), runs the
//! monitoring queries that apply to this instance with a statement timeout, and answers with
//! their samples plus the collector's own. A failing query is counted in
//! `cnpg_errors_total{query}` and the scrape goes on; an unreachable server is
//! `cnpg_collector_up 0`, never an error page.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cnpg_postgres::monitoring::{self, Kind, Query, Sample};
use hyper::{Request, StatusCode};
use tokio_postgres::{NoTls, SimpleQueryMessage};

use super::http::{reply, tls_accept};
use crate::layout::Layout;

/// The role the exporter connects as.
pub const ROLE: &str = "cnpg_metrics_exporter";
/// How long one statement may run.
const STATEMENT_TIMEOUT_MS: u32 = 5000;
/// How long a whole scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// The exporter's state across scrapes.
#[derive(Debug)]
pub struct Exporter {
    layout: Layout,
    queries: Mutex<Arc<BTreeMap<String, Query>>>,
    collections: AtomicU64,
    errors: Mutex<BTreeMap<String, (u64, bool)>>,
    fenced: AtomicBool,
}

impl Exporter {
    pub fn new(layout: Layout) -> Self {
        Self {
            layout,
            queries: Mutex::default(),
            collections: AtomicU64::new(0),
            errors: Mutex::default(),
            fenced: AtomicBool::new(false),
        }
    }

    /// A fenced instance exports `cnpg_collector_fencing_on 1` and nothing else.
    pub fn set_fenced(&self, fenced: bool) {
        self.fenced.store(fenced, Ordering::Relaxed);
    }

    /// Replaces the queries (the loop reads them from the Cluster's ConfigMaps and Secrets).
    pub fn set_queries(&self, queries: BTreeMap<String, Query>) {
        *self.queries.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(queries);
    }

    fn queries(&self) -> Arc<BTreeMap<String, Query>> {
        Arc::clone(&self.queries.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn count(&self, query: &str, failed: bool) {
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = errors.entry(query.to_owned()).or_insert((0, false));
        if failed {
            entry.0 += 1;
        }
        entry.1 = failed;
    }

    /// One scrape: the exposition text.
    pub async fn scrape(&self) -> String {
        let start = Instant::now();
        let total = self.collections.fetch_add(1, Ordering::Relaxed) + 1;
        let fenced = self.fenced.load(Ordering::Relaxed);
        let fencing_on = Sample {
            name: "cnpg_collector_fencing_on".into(),
            help: "1 if the instance is fenced".into(),
            kind: Kind::Gauge,
            labels: Vec::new(),
            value: if fenced { 1.0 } else { 0.0 },
        };
        if fenced {
            return monitoring::exposition(&[fencing_on]);
        }
        let mut samples = Vec::new();
        let up = tokio::time::timeout(SCRAPE_TIMEOUT, self.collect(&mut samples))
            .await
            .unwrap_or_else(|_| {
                tracing::warn!("metrics scrape exceeded {SCRAPE_TIMEOUT:?}");
                None
            });
        let gauge = |name: &str, help: &str, labels: Vec<(String, String)>, value: f64| Sample {
            name: format!("cnpg_collector_{name}"),
            help: help.to_owned(),
            kind: Kind::Gauge,
            labels,
            value,
        };
        if let Some(version) = &up {
            samples.push(gauge(
                "postgres_version",
                "PostgreSQL version (major.minor)",
                vec![("full".into(), version.clone())],
                version
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0),
            ));
        }
        samples.push(gauge(
            "up",
            "1 if PostgreSQL answered the exporter",
            Vec::new(),
            if up.is_some() { 1.0 } else { 0.0 },
        ));
        samples.push(gauge(
            "last_collection_error",
            "1 if the last scrape could not reach PostgreSQL",
            Vec::new(),
            if up.is_some() { 0.0 } else { 1.0 },
        ));
        samples.push(fencing_on);
        samples.push(Sample {
            name: "cnpg_collector_collections_total".into(),
            help: "Scrapes served".into(),
            kind: Kind::Counter,
            labels: Vec::new(),
            #[expect(clippy::cast_precision_loss, reason = "a scrape count stays far below 2^52")]
            value: total as f64,
        });
        for (query, (count, last)) in self.errors.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let labels = vec![("query".to_owned(), query.clone())];
            samples.push(Sample {
                name: "cnpg_errors_total".into(),
                help: "Failed runs of a monitoring query".into(),
                kind: Kind::Counter,
                labels: labels.clone(),
                #[expect(clippy::cast_precision_loss, reason = "an error count stays far below 2^52")]
                value: *count as f64,
            });
            samples.push(Sample {
                name: "cnpg_last_error".into(),
                help: "1 if the query failed in the last scrape".into(),
                kind: Kind::Gauge,
                labels,
                value: if *last { 1.0 } else { 0.0 },
            });
        }
        samples.push(gauge(
            "collection_duration_seconds",
            "Time the scrape took",
            Vec::new(),
            start.elapsed().as_secs_f64(),
        ));
        monitoring::exposition(&samples)
    }

    async fn connect(&self, dbname: &str) -> Option<tokio_postgres::Client> {
        let config = crate::db::socket_config(
            &self.layout.sockets(),
            ROLE,
            dbname,
            ROLE,
            &format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"),
        );
        match config.connect(NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                Some(client)
            }
            Err(e) => {
                tracing::debug!(error = %e, dbname, "exporter could not connect");
                None
            }
        }
    }

    /// Runs every applicable query; the server version when PostgreSQL answered.
    async fn collect(&self, samples: &mut Vec<Sample>) -> Option<String> {
        let main = self.connect("postgres").await?;
        let facts = main
            .simple_query(
                "SELECT current_setting('server_version'), current_setting('server_version_num'), pg_is_in_recovery()",
            )
            .await
            .ok()?;
        let row = facts.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })?;
        let version = row.get(0).unwrap_or_default().to_owned();
        let version_num: u32 = row.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        let primary = row.get(2) == Some("f");
        let mut databases: Option<Vec<String>> = None;
        let mut clients: BTreeMap<String, tokio_postgres::Client> = BTreeMap::new();
        for (name, query) in self.queries().iter() {
            if !query.applies(version_num, primary) {
                continue;
            }
            let targets: Vec<String> = if query.target_databases.is_empty() {
                vec!["postgres".to_owned()]
            } else if query.target_databases.iter().any(|d| d == "*") {
                if databases.is_none() {
                    databases = Some(all_databases(&main).await);
                }
                databases.clone().unwrap_or_default()
            } else {
                query.target_databases.clone()
            };
            let mut failed = false;
            for db in targets {
                if db != "postgres" && !clients.contains_key(&db) {
                    let Some(client) = self.connect(&db).await else {
                        failed = true;
                        continue;
                    };
                    clients.insert(db.clone(), client);
                }
                let client = if db == "postgres" {
                    Some(&main)
                } else {
                    clients.get(&db)
                };
                let Some(client) = client else { continue };
                match run(client, &query.query).await {
                    Ok((columns, rows)) => match monitoring::samples(name, query, &columns, &rows) {
                        Ok(found) => samples.extend(found),
                        Err(e) => {
                            tracing::warn!(query = name, error = e, "monitoring query does not match its metrics");
                            failed = true;
                        }
                    },
                    Err(e) => {
                        tracing::debug!(query = name, error = %e, "monitoring query failed");
                        failed = true;
                    }
                }
            }
            self.count(name, failed);
        }
        Some(version)
    }
}

async fn all_databases(client: &tokio_postgres::Client) -> Vec<String> {
    let Ok(messages) = client
        .simple_query("SELECT datname FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")
        .await
    else {
        return Vec::new();
    };
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect()
}

type Rows = (Vec<String>, Vec<Vec<Option<String>>>);

async fn run(client: &tokio_postgres::Client, sql: &str) -> Result<Rows, tokio_postgres::Error> {
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for message in client.simple_query(sql).await? {
        match message {
            SimpleQueryMessage::RowDescription(description) => {
                columns = description.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                if columns.is_empty() {
                    columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
                }
                rows.push((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect());
            }
            _ => {}
        }
    }
    Ok((columns, rows))
}

/// Serves `/metrics`: over plain HTTP (the exposition holds no secrets), or with `tls` (the
/// `--metrics-port-tls` of `monitoring.tls.enabled`) over TLS 1.3 with the cluster's server
/// certificate, as the status server does.
pub async fn serve(listener: tokio::net::TcpListener, exporter: Arc<Exporter>, tls: Option<Layout>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let exporter = Arc::clone(&exporter);
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => answer(tcp, exporter).await,
                Some(layout) => {
                    if let Some(stream) = tls_accept(&layout, tcp, false).await {
                        answer(stream, exporter).await;
                    }
                }
            }
        });
    }
}

/// Answers the HTTP requests of one connection.
async fn answer<S>(io: S, exporter: Arc<Exporter>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let exporter = Arc::clone(&exporter);
        async move {
            let response = if request.uri().path() == "/metrics" {
                reply(StatusCode::OK, "text/plain; version=0.0.4", exporter.scrape().await)
            } else {
                reply(StatusCode::NOT_FOUND, "text/plain", "not found\n")
            };
            Ok::<_, Infallible>(response)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}
