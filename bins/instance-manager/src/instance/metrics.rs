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

use super::http::reply;
use super::listener::{self, LIMITS, Tls};
use crate::layout::Layout;

/// `.ready` and `.done` files in `pg_wal/archive_status` (none when it cannot be read).
pub(crate) fn archive_status(dir: &std::path::Path) -> (u64, u64) {
    let mut counts = (0, 0);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".ready") {
            counts.0 += 1;
        } else if name.ends_with(".done") {
            counts.1 += 1;
        }
    }
    counts
}

/// The role the exporter connects as.
pub const ROLE: &str = "cnpg_metrics_exporter";
/// How long one statement may run.
const STATEMENT_TIMEOUT_MS: u32 = 5000;
/// How long a whole scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// `CONNECTION LIMIT` of the exporter's role. A collection holds at most two connections
/// (`postgres` and the database it is reading) and only one collection runs at a time; the
/// rest is room for connections a cancelled collection leaves closing.
pub const CONNECTION_LIMIT: i32 = 4;

/// The exporter's state across scrapes.
#[derive(Debug)]
pub struct Exporter {
    layout: Layout,
    queries: Mutex<Arc<BTreeMap<String, Query>>>,
    collections: AtomicU64,
    errors: Mutex<BTreeMap<String, (u64, bool)>>,
    fenced: AtomicBool,
    /// The collection running now: scrapes that arrive meanwhile share its result.
    flight: Mutex<Option<Arc<tokio::sync::OnceCell<Arc<str>>>>>,
}

impl Exporter {
    pub fn new(layout: Layout) -> Self {
        Self {
            layout,
            queries: Mutex::default(),
            collections: AtomicU64::new(0),
            errors: Mutex::default(),
            fenced: AtomicBool::new(false),
            flight: Mutex::default(),
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

    /// One scrape: the exposition text. One collection runs at a time: a scrape that arrives
    /// while one runs gets its result, so any number of concurrent scrapes costs PostgreSQL one
    /// collection's connections.
    pub async fn scrape(&self) -> Arc<str> {
        let flight = {
            let mut current = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
            match current.as_ref() {
                Some(running) if !running.initialized() => Arc::clone(running),
                _ => {
                    let fresh = Arc::new(tokio::sync::OnceCell::new());
                    *current = Some(Arc::clone(&fresh));
                    fresh
                }
            }
        };
        // If the scrape running the collection goes away (its client hung up), the next one
        // waiting takes the collection over.
        Arc::clone(
            flight
                .get_or_init(|| async { Arc::from(self.collect_exposition().await) })
                .await,
        )
    }

    async fn collect_exposition(&self) -> String {
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
        // WAL waiting to be archived (`ready`, growing while archiving fails) and archived but
        // not yet recycled (`done`), as CloudNativePG counts them.
        let (ready, done) = archive_status(&self.layout.pg_data.join("pg_wal/archive_status"));
        for (value, count) in [("ready", ready), ("done", done)] {
            samples.push(gauge(
                "pg_wal_archive_status",
                "Number of WAL segments in the archive status folder, by status",
                vec![("value".into(), value.into())],
                #[expect(clippy::cast_precision_loss, reason = "a file count stays far below 2^52")]
                {
                    count as f64
                },
            ));
        }
        samples.push(Sample {
            name: "cnpg_collector_collections_total".into(),
            help: "Collections run against PostgreSQL".into(),
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

    /// Runs every applicable query; the server version when PostgreSQL answered. Queries are
    /// run database by database, so besides `postgres` at most one other connection is open.
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
        let queries = self.queries();
        let mut databases: Option<Vec<String>> = None;
        let mut plan: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        let mut failed: BTreeMap<&str, bool> = BTreeMap::new();
        for (name, query) in queries.iter() {
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
            failed.insert(name, false);
            for db in targets {
                plan.entry(db).or_default().push(name);
            }
        }
        for (db, names) in &plan {
            let other = if db == "postgres" { None } else { self.connect(db).await };
            let client = if db == "postgres" { Some(&main) } else { other.as_ref() };
            for name in names {
                let (Some(client), Some(query)) = (client, queries.get(*name)) else {
                    failed.insert(name, true);
                    continue;
                };
                match run(client, &query.query).await {
                    Ok((columns, rows)) => match monitoring::samples(name, query, &columns, &rows) {
                        Ok(found) => samples.extend(found),
                        Err(e) => {
                            tracing::warn!(query = name, error = e, "monitoring query does not match its metrics");
                            failed.insert(name, true);
                        }
                    },
                    Err(e) => {
                        tracing::debug!(query = name, error = %e, "monitoring query failed");
                        failed.insert(name, true);
                    }
                }
            }
        }
        for (name, failed) in failed {
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
/// certificate, as the status server does; within the listener limits of `listener.rs`.
pub async fn serve(listener: tokio::net::TcpListener, exporter: Arc<Exporter>, tls: Option<Layout>) {
    let tls = tls.map(|layout| Arc::new(Tls::new(&layout.certificates(), false)));
    listener::run(listener, LIMITS, tls, move |stream| {
        let exporter = Arc::clone(&exporter);
        async move {
            let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let exporter = Arc::clone(&exporter);
                async move {
                    let response = if request.uri().path() == "/metrics" {
                        reply(
                            StatusCode::OK,
                            "text/plain; version=0.0.4",
                            exporter.scrape().await.to_string(),
                        )
                    } else {
                        reply(StatusCode::NOT_FOUND, "text/plain", "not found\n")
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            listener::http1(stream, LIMITS, service).await;
        }
    })
    .await;
}
