//! `instance run`: PID 1 of the postgres container. One control loop, woken by a change to
//! the Cluster (a watch), a timer, PostgreSQL ending, or SIGTERM:
//!
//! 1. read the Cluster and its Secrets; write the certificates;
//! 2. decide the role: primary if the Cluster's `targetPrimary` names this instance;
//! 3. not running: a former primary is rewound against the new one first; then the files are
//!    written for the role and `postgres` started;
//! 4. running: a replica that became the target promotes (once the old primary stopped
//!    streaming to it) and records itself as `currentPrimary`; a primary that is no longer the
//!    target stops, to come back as a replica; otherwise changed files are reloaded;
//! 5. on the primary: `streaming_replica`, the passwords (as verifiers) and the HA slots.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cnpg_api::cluster::Cluster;
use cnpg_api::fencing::Fenced;
use cnpg_postgres::conf::{self, Role};
use cnpg_postgres::password;
use futures_util::StreamExt as _;
use kube::api::{WatchEvent, WatchParams};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

use super::config::{self, Replication};
use super::http::{self, Phase, Shared};
use super::metrics::{self, Exporter};
use super::postmaster::{Postmaster, StartOptions};
use crate::db::{self, Db};
use crate::k8s::{ClusterApi, KubeArgs, Materials};
use crate::layout::Layout;
use crate::process::{Exit, Reaper};

/// `instance run` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub layout: Layout,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Overrides `listen_addresses` (`*` by default).
    #[arg(long)]
    pub listen_addresses: Option<String>,
    /// Where the status server listens (TLS, the cluster's server certificate).
    #[arg(long, default_value = "0.0.0.0:8000")]
    pub status_address: SocketAddr,
    /// Where the Prometheus exporter listens.
    #[arg(long, default_value = "0.0.0.0:9187")]
    pub metrics_address: SocketAddr,
    /// Serve the exporter over TLS with the cluster's server certificate
    /// (`monitoring.tls.enabled`).
    #[arg(long)]
    pub metrics_port_tls: bool,
    /// How replicas reach the primary (default `<cluster>-rw`, the Service that follows it).
    #[arg(long, env = "CNPG_PRIMARY_HOST")]
    pub primary_host: Option<String>,
    /// Seconds between two passes when nothing changes.
    #[arg(long, default_value_t = 10)]
    pub resync_seconds: u64,
}

/// `instance run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no data directory at {}: `instance init` or `instance join` creates it", .0.display())]
    NoData(std::path::PathBuf),
    #[error("failed to prepare the instance's directories")]
    Dirs(#[from] crate::layout::WriteError),
    #[error(transparent)]
    Config(#[from] config::Error),
    #[error(transparent)]
    Kube(#[from] crate::k8s::Error),
    #[error("failed to install signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("failed to find the name of user {0}")]
    User(u32),
    #[error("failed to start the status server on {address}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("postgres ended unexpectedly ({0}); the container restarts it")]
    PostgresEnded(String),
}

/// One pass failed; the loop logs it and tries again.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Kube(#[from] crate::k8s::Error),
    #[error(transparent)]
    Config(#[from] config::Error),
    #[error(transparent)]
    Write(#[from] crate::layout::WriteError),
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error(transparent)]
    Start(#[from] super::postmaster::Error),
    #[error("failed to compute a password verifier")]
    Password(#[from] password::Error),
    #[error("pg_rewind failed")]
    Rewind(#[source] crate::process::Error),
}

struct Instance {
    args: RunArgs,
    api: ClusterApi,
    reaper: Reaper,
    shared: Arc<Shared>,
    exporter: Arc<Exporter>,
    major: u32,
    os_user: String,
    postmaster: Option<Postmaster>,
    /// The Cluster's `cnpg.io/fencedInstances` names this instance: PostgreSQL stays stopped.
    fenced: bool,
}

/// This process's user name, from /etc/passwd. Read directly, not through getpwuid: in a static
/// binary that goes through NSS, which loads the *image's* glibc modules into ours, and glibc
/// supports that only with the very version the binary was linked with.
fn os_user() -> Result<String, Error> {
    // /proc/self belongs to the process's effective user.
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").map_err(|_| Error::User(u32::MAX))?);
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|_| Error::User(uid))?;
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id: u32 = fields.nth(1)?.parse().ok()?;
            (id == uid).then(|| name.to_owned())
        })
        .ok_or(Error::User(uid))
}

/// Runs `instance run` until SIGTERM (Ok) or a failure the container must restart for.
pub async fn run(args: RunArgs) -> Result<(), Error> {
    let layout = args.layout.clone();
    if !layout.pg_data.join("PG_VERSION").exists() {
        return Err(Error::NoData(layout.pg_data.clone()));
    }
    layout.create_dirs()?;
    let major = config::major(&layout.pg_data)?;
    let reaper = Reaper::start().map_err(Error::Signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(Error::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(Error::Signals)?;
    let api = ClusterApi::new(args.kube.clone())?;
    let shared = Arc::new(Shared::new(args.kube.pod_name.clone(), layout.clone(), reaper.clone()));
    tokio::spawn(http::serve(bind(args.status_address).await?, Arc::clone(&shared)));
    let exporter = Arc::new(Exporter::new(layout.clone()));
    let metrics_tls = args.metrics_port_tls.then(|| layout.clone());
    tokio::spawn(metrics::serve(
        bind(args.metrics_address).await?,
        Arc::clone(&exporter),
        metrics_tls,
    ));
    let changed = Arc::new(Notify::new());
    tokio::spawn(watch_cluster(api.clone(), Arc::clone(&changed)));
    tokio::spawn(super::retention::hourly(
        layout.controller_dir.join(cnpg_backup::archive::FILE_NAME),
        layout.sockets(),
    ));
    let mut instance = Instance {
        os_user: os_user()?,
        args,
        api,
        reaper,
        shared,
        exporter,
        major,
        postmaster: None,
        fenced: false,
    };
    let mut resync = tokio::time::interval(Duration::from_secs(instance.args.resync_seconds.max(1)));
    let mut cluster: Option<Cluster> = None;
    loop {
        match instance.pass().await {
            Ok(seen) => cluster = Some(seen),
            Err(e) => tracing::warn!(error = %cnpg_telemetry::error_chain(&e), "reconcile pass failed; retrying"),
        }
        tokio::select! {
            _ = resync.tick() => {}
            () = changed.notified() => {}
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            exit = wait(&mut instance.postmaster) => {
                instance.shared.set_phase(Phase::Stopped);
                return Err(Error::PostgresEnded(exit.map_or_else(|| "no exit status".into(), |e| e.to_string())));
            }
        }
    }
    if let Some(postmaster) = instance.postmaster.take() {
        let spec = cluster.map(|c| c.spec).unwrap_or_default();
        let smart = Duration::from_secs(u64::try_from(spec.smart_shutdown_timeout()).unwrap_or(180));
        let total = Duration::from_secs(u64::try_from(spec.stop_delay()).unwrap_or(1800));
        instance.shared.set_phase(Phase::Stopping);
        let exit = postmaster.shutdown(smart, total).await;
        tracing::info!(exit = ?exit, "instance manager stopping");
    }
    Ok(())
}

async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| Error::Listen { address, source })
}

async fn wait(postmaster: &mut Option<Postmaster>) -> Option<Exit> {
    match postmaster {
        Some(p) => p.wait().await,
        None => std::future::pending().await,
    }
}

/// Wakes the loop whenever the Cluster changes; restarts the watch when it ends.
async fn watch_cluster(api: ClusterApi, changed: Arc<Notify>) {
    let name = api.args.cluster_name.clone();
    let mut retry = tokio::time::interval(Duration::from_secs(2));
    loop {
        retry.tick().await;
        let Ok(current) = api.clusters.get(&name).await else {
            continue;
        };
        let version = current.metadata.resource_version.unwrap_or_default();
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(290);
        let Ok(stream) = api.clusters.watch(&params, &version).await else {
            continue;
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Added(_) | WatchEvent::Modified(_) | WatchEvent::Deleted(_)) => changed.notify_one(),
                Ok(WatchEvent::Bookmark(_)) => {}
                Ok(WatchEvent::Error(_)) | Err(_) => break,
            }
        }
    }
}

impl Instance {
    fn layout(&self) -> &Layout {
        &self.args.layout
    }

    fn replication(&self) -> Replication {
        Replication {
            primary_host: self
                .args
                .primary_host
                .clone()
                .unwrap_or_else(|| format!("{}-rw", self.args.kube.cluster_name)),
            pod_name: self.args.kube.pod_name.clone(),
        }
    }

    /// What the configuration refers to; the listen address goes into the file (not on the
    /// command line), so a reload compares like with like and reports no false pending restart.
    fn paths(&self) -> cnpg_postgres::paths::Paths {
        let mut paths = self.layout().paths();
        if let Some(listen) = &self.args.listen_addresses {
            paths.listen_addresses.clone_from(listen);
        }
        paths
    }

    /// Writes PGDATA's configuration for `role` (only what changed).
    fn write_config(&self, materials: &Materials, role: &Role) -> Result<config::Written, config::Error> {
        config::write(self.layout(), &self.paths(), materials, self.major, role, &self.os_user)
    }

    fn start_options(&self) -> StartOptions {
        StartOptions::default()
    }

    /// Follows the fencing annotation: stops PostgreSQL (fast, immediate after
    /// `switchoverDelay`) when this instance is fenced, and reports whether it is, in which
    /// case the pass ends here (certificates are still kept current; the configuration and the
    /// instance's role are left alone until the fence is lifted). A malformed annotation
    /// changes nothing.
    async fn fence(&mut self, cluster: &Cluster) -> bool {
        let fenced = match Fenced::from_annotations(cluster.metadata.annotations.as_ref()) {
            Ok(fenced) => fenced.contains(&self.args.kube.pod_name),
            Err(e) => {
                tracing::warn!(error = %cnpg_telemetry::error_chain(&e), fenced = self.fenced, "fencing left as it is");
                self.fenced
            }
        };
        if fenced != self.fenced {
            tracing::info!(fenced, "fencing changed");
        }
        self.fenced = fenced;
        self.exporter.set_fenced(fenced);
        if !fenced {
            return false;
        }
        if let Some(postmaster) = self.postmaster.take() {
            self.shared.set_phase(Phase::Stopping);
            let budget = Duration::from_secs(u64::try_from(cluster.spec.switchover_delay()).unwrap_or(3600));
            let exit = postmaster.stop_fast(budget).await;
            tracing::info!(?exit, "fenced: PostgreSQL stopped");
        }
        self.shared.set_phase(Phase::Fenced);
        true
    }

    /// One pass of the loop; returns the Cluster it acted on.
    async fn pass(&mut self) -> Result<Cluster, PassError> {
        let materials = self.api.materials().await?;
        let status = materials.cluster.status.clone().unwrap_or_default();
        self.shared
            .set_operator_fingerprint(status.operator_certificate_fingerprint.clone());
        let certificates_changed = config::write_certificates(self.layout(), &materials)?;
        if config::write_archive_settings(self.layout(), &materials)? {
            tracing::info!(archiving = materials.archive.is_some(), "WAL archive settings written");
        }
        self.load_queries(&materials.cluster).await;
        let me = self.args.kube.pod_name.clone();
        let target = status.target_primary.clone().or_else(|| status.current_primary.clone());
        let primary = match &target {
            Some(target) => *target == me,
            // Nobody designated yet: a data directory that is no replica's is the primary.
            None => !config::is_replica(self.layout()),
        };
        if self.fence(&materials.cluster).await {
            return Ok(materials.cluster);
        }
        let role = if primary {
            Role::Primary
        } else {
            Role::Replica(self.replication().upstream())
        };

        let Some(_) = &self.postmaster else {
            if !primary && !config::is_replica(self.layout()) {
                // A former primary: follow the new one only once it has promoted.
                if status.current_primary != target {
                    tracing::info!(?target, "waiting for the new primary to promote before rewinding");
                    return Ok(materials.cluster);
                }
                self.rewind().await?;
            }
            self.write_config(&materials, &role)?;
            self.shared.set_phase(Phase::Starting);
            let started = Postmaster::start(
                &self.reaper,
                self.layout(),
                &self.start_options(),
                Duration::from_secs(u64::try_from(materials.cluster.spec.start_delay()).unwrap_or(3600)),
            )
            .await;
            let started = started.inspect_err(|_| self.shared.set_phase(Phase::Stopped))?;
            self.postmaster = Some(started);
            self.shared.set_phase(Phase::Running);
            return Ok(materials.cluster);
        };

        let mut db = Db::connect(&self.layout().sockets(), "postgres").await?;
        let in_recovery = db.in_recovery().await?;
        if primary && in_recovery {
            return self.promote(&db, &materials, &role).await.map(|()| materials.cluster);
        }
        if !primary && !in_recovery && target.is_some() {
            self.demote(&materials).await;
            return Ok(materials.cluster);
        }
        let written = self.write_config(&materials, &role)?;
        if written.changed || certificates_changed {
            db.reload().await?;
            tracing::info!(hash = written.hash, "configuration reloaded");
        }
        if !in_recovery {
            self.primary_duties(&mut db, &materials).await?;
            if status.current_primary.as_deref() != Some(me.as_str()) {
                self.record_primary().await?;
            }
        }
        Ok(materials.cluster)
    }

    async fn load_queries(&self, cluster: &Cluster) {
        let mut queries = BTreeMap::new();
        for (source, text) in self.api.monitoring_queries(cluster).await {
            match cnpg_postgres::monitoring::parse(&text) {
                Ok(parsed) => queries.extend(parsed),
                Err(e) => {
                    tracing::warn!(source, error = %cnpg_telemetry::error_chain(&e), "monitoring queries ignored")
                }
            }
        }
        self.exporter.set_queries(queries);
    }

    async fn promote(&mut self, db: &Db, materials: &Materials, role: &Role) -> Result<(), PassError> {
        let status = db.status().await?;
        if status.wal_receiver_active {
            tracing::info!("designated primary: waiting for the former primary to stop streaming");
            return Ok(());
        }
        tracing::info!("promoting");
        self.shared.set_phase(Phase::Promoting);
        let promoted = db.promote().await;
        self.shared.set_phase(Phase::Running);
        if !promoted? {
            tracing::warn!("promotion did not finish within 60 s; will check again");
            return Ok(());
        }
        // The control file names the new timeline only after a checkpoint: without it a
        // pg_rewind against this server finds "the same timeline" and rewinds nothing.
        db.execute("CHECKPOINT").await?;
        // standby.signal is gone now (removing it earlier makes the end of recovery fail).
        self.write_config(materials, role)?;
        db.reload().await?;
        self.record_primary().await?;
        tracing::info!("promoted");
        Ok(())
    }

    async fn record_primary(&self) -> Result<(), PassError> {
        let mut status = BTreeMap::new();
        status.insert("currentPrimary", serde_json::json!(self.args.kube.pod_name));
        status.insert(
            "currentPrimaryTimestamp",
            serde_json::json!(jiff::Timestamp::now().to_string()),
        );
        self.api.patch_status(status).await?;
        Ok(())
    }

    /// A primary that is no longer the target stops (fast, bounded by `switchoverDelay`); the
    /// next pass rewinds it and starts it as a replica.
    async fn demote(&mut self, materials: &Materials) {
        let Some(postmaster) = self.postmaster.take() else {
            return;
        };
        tracing::info!("no longer the designated primary: stopping to rejoin as a replica");
        self.shared.set_phase(Phase::Stopping);
        let budget = u64::try_from(materials.cluster.spec.switchover_delay()).unwrap_or(3600);
        let exit = postmaster.stop_fast(Duration::from_secs(budget)).await;
        self.shared.set_phase(Phase::Stopped);
        tracing::info!(exit = ?exit, "former primary stopped");
    }

    async fn rewind(&mut self) -> Result<(), PassError> {
        let layout = self.layout().clone();
        let conninfo = conf::primary_conninfo(&self.replication().upstream(), &self.paths());
        self.shared.set_phase(Phase::Rewinding);
        let mut cmd = std::process::Command::new(layout.program("pg_rewind"));
        cmd.arg("--target-pgdata")
            .arg(&layout.pg_data)
            .args(["--source-server", &conninfo])
            .env("TMPDIR", layout.tmp());
        let result = self.reaper.output(&mut cmd).await;
        self.shared.set_phase(Phase::Stopped);
        let output = result.map_err(PassError::Rewind)?;
        tracing::info!(
            output = output.stdout.trim(),
            detail = output.stderr.trim(),
            "pg_rewind done"
        );
        Ok(())
    }

    async fn primary_duties(&self, db: &mut Db, materials: &Materials) -> Result<(), PassError> {
        db.ensure_streaming_replica().await?;
        db.ensure_metrics_exporter(metrics::ROLE, metrics::CONNECTION_LIMIT)
            .await?;
        let superuser = materials.superuser.as_ref();
        match (db.stored_password("postgres").await?, superuser) {
            (Some(stored), Some(wanted)) => {
                let current = stored.as_deref().unwrap_or_default();
                if !password::matches(wanted.expose(), "postgres", current) {
                    let verifier = password::verifier(wanted.expose(), "postgres", self.major)?;
                    db.set_password("postgres", Some(&verifier)).await?;
                    tracing::info!(role = "postgres", "password set from the superuser Secret");
                }
            }
            (Some(Some(_)), None) => {
                db.set_password("postgres", None).await?;
                tracing::info!(role = "postgres", "password removed: superuser access is disabled");
            }
            _ => {}
        }
        if let Some((user, wanted)) = &materials.app
            && let Some(stored) = db.stored_password(user).await?
            && !password::matches(wanted.expose(), user, stored.as_deref().unwrap_or_default())
        {
            let verifier = password::verifier(wanted.expose(), user, self.major)?;
            db.set_password(user, Some(&verifier)).await?;
            tracing::info!(role = user, "password set from the application Secret");
        }
        let me = &self.args.kube.pod_name;
        let slots: Vec<String> = instance_names(&materials.cluster)
            .iter()
            .filter(|name| *name != me)
            .map(|name| conf::slot_name(db::SLOT_PREFIX, name))
            .collect();
        db.reconcile_slots(&slots).await?;
        if materials.archive.is_some() {
            self.report_archiving(db, &materials.cluster).await?;
        }
        Ok(())
    }

    /// The Cluster's `ContinuousArchiving` condition, as the primary's archiver sees it: False
    /// with why the last attempt failed while failures are newer than successes, True once a
    /// file was archived since. Written only when it changes.
    async fn report_archiving(&self, db: &Db, cluster: &Cluster) -> Result<(), PassError> {
        let (failing, archived) = db.archiver().await?;
        let (status, reason, message) = if failing {
            let why = std::fs::read_to_string(self.layout().controller_dir.join(cnpg_backup::archive::ERROR_FILE_NAME))
                .unwrap_or_default();
            let why: String = why.trim().chars().take(1024).collect();
            let message = if why.is_empty() {
                "WAL archiving failed; PostgreSQL keeps the files and retries".to_owned()
            } else {
                format!("WAL archiving failed: {why}")
            };
            ("False", "ContinuousArchivingFailing", message)
        } else if archived {
            (
                "True",
                "ContinuousArchivingSuccess",
                "Continuous archiving is working".to_owned(),
            )
        } else {
            return Ok(());
        };
        let current = cluster
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == CONTINUOUS_ARCHIVING));
        if current.is_some_and(|c| c.status == status && c.reason == reason && c.message == message) {
            return Ok(());
        }
        let condition = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: CONTINUOUS_ARCHIVING.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: cluster.metadata.generation,
            last_transition_time: match current {
                Some(c) if c.status == status => c.last_transition_time.clone(),
                _ => k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
            },
        };
        tracing::info!(status, reason, "ContinuousArchiving condition");
        self.api.set_condition(cluster, condition).await?;
        Ok(())
    }
}

/// The Cluster condition that tells whether WAL archiving works.
const CONTINUOUS_ARCHIVING: &str = "ContinuousArchiving";

/// The cluster's instances: `status.instanceNames`, else `<cluster>-1` … `<cluster>-N`.
fn instance_names(cluster: &Cluster) -> Vec<String> {
    if let Some(names) = cluster.status.as_ref().and_then(|s| s.instance_names.clone()) {
        return names;
    }
    let name = cluster.metadata.name.clone().unwrap_or_default();
    (1..=cluster.spec.instances()).map(|i| format!("{name}-{i}")).collect()
}
