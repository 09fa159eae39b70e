//! The status server on port 8000: TLS 1.3 with the cluster's server certificate (a renewed
//! certificate is served from the next connection on, without a restart), within the
//! listener limits of `listener.rs`. Probes and
//! `/pg/status` are open, as the kubelet and the operator need them; `/pg/controldata` and
//! `/pg/mode/backup` (online backup mode for volume snapshots) and `/pg/backup` (a base backup
//! to the object store) require the operator's client certificate, pinned by the public-key fingerprint the operator published in the Cluster's
//! status.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use cnpg_instance_api::{ControlData, InstanceStatus, paths};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};

use super::backup::BackupMode;
use super::base_backup::BaseBackups;
use super::listener::{self, LIMITS, Tls};
use crate::db::Db;
use crate::layout::Layout;
use crate::process::Reaper;

/// What the instance is doing, for the probes and `/pg/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Stopped,
    Starting,
    Running,
    Promoting,
    Stopping,
    Rewinding,
    /// Stopped on purpose by the fencing annotation: alive, not ready.
    Fenced,
}

/// State shared between the control loop and the server.
#[derive(Debug)]
pub struct Shared {
    pod_name: String,
    layout: Layout,
    reaper: Reaper,
    phase: Mutex<Phase>,
    operator_fingerprint: Mutex<Option<String>>,
    backup: BackupMode,
    base_backups: BaseBackups,
}

impl Shared {
    pub fn new(pod_name: String, layout: Layout, reaper: Reaper) -> Self {
        Self {
            pod_name,
            layout,
            reaper,
            phase: Mutex::new(Phase::Stopped),
            operator_fingerprint: Mutex::new(None),
            backup: BackupMode::default(),
            base_backups: BaseBackups::default(),
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = phase;
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_operator_fingerprint(&self, fingerprint: Option<String>) {
        *self.operator_fingerprint.lock().unwrap_or_else(PoisonError::into_inner) = fingerprint;
    }

    fn operator_fingerprint(&self) -> Option<String> {
        self.operator_fingerprint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Accepts connections until the runtime ends, within the listener limits.
pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let tls = Arc::new(Tls::new(&shared.layout.certificates(), true));
    listener::run(listener, LIMITS, Some(tls), move |stream| {
        let shared = Arc::clone(&shared);
        async move {
            let client = stream
                .peer_certificate()
                .and_then(|c| c.to_pem().ok())
                .and_then(|pem| String::from_utf8(pem).ok())
                .and_then(|pem| cnpg_pki::public_key_fingerprint(&pem).ok());
            let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let shared = Arc::clone(&shared);
                let client = client.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let response = match Limited::new(body, MAX_BODY).collect().await {
                        Ok(body) => {
                            handle(
                                &shared,
                                client.as_deref(),
                                &parts.method,
                                parts.uri.path(),
                                &body.to_bytes(),
                            )
                            .await
                        }
                        Err(_) => reply(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "text/plain",
                            "request body too large or unreadable\n",
                        ),
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            listener::http1(stream, LIMITS, service).await;
        }
    })
    .await;
}

pub(crate) fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn json<T: serde::Serialize>(value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => reply(StatusCode::OK, "application/json", body),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e.to_string()),
    }
}

/// The largest request body read (the backup calls' JSON is well under it).
const MAX_BODY: usize = 64 * 1024;

async fn handle(
    shared: &Shared,
    client: Option<&str>,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Response<Full<Bytes>> {
    if path == paths::BACKUP {
        return match authorize(shared, client) {
            Err(response) => *response,
            Ok(()) => backup(shared, method, body).await,
        };
    }
    if path == paths::BASE_BACKUP {
        return match authorize(shared, client) {
            Err(response) => *response,
            Ok(()) => base_backup(shared, method, body).await,
        };
    }
    if method != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET is served here\n",
        );
    }
    match path {
        paths::HEALTHZ => reply(StatusCode::OK, "text/plain", "OK\n"),
        paths::READYZ | paths::STARTUPZ => {
            if shared.phase() == Phase::Running && accepts_connections(shared).await {
                reply(StatusCode::OK, "text/plain", "OK\n")
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "PostgreSQL is not ready\n",
                )
            }
        }
        paths::STATUS => json(&status(shared).await),
        paths::CONTROLDATA => match authorize(shared, client) {
            Err(response) => *response,
            Ok(()) => controldata(shared).await,
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, (StatusCode, String)> {
    serde_json::from_slice(body).map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid request body: {e}")))
}

/// `/pg/backup`: GET the state, POST start a base backup; PostgreSQL must be running.
async fn base_backup(shared: &Shared, method: &Method, body: &[u8]) -> Response<Full<Bytes>> {
    let result = match *method {
        Method::GET => Ok(shared.base_backups.status().await),
        Method::POST if shared.phase() != Phase::Running => {
            Err((StatusCode::SERVICE_UNAVAILABLE, "PostgreSQL is not running".to_owned()))
        }
        Method::POST => match parse(body) {
            Ok(request) => {
                let layout = &shared.layout;
                shared
                    .base_backups
                    .start(
                        layout.controller_dir.join(cnpg_backup::archive::FILE_NAME),
                        layout.sockets(),
                        layout.pg_data.clone(),
                        request,
                    )
                    .await
            }
            Err(refusal) => Err(refusal),
        },
        _ => Err((StatusCode::METHOD_NOT_ALLOWED, "GET or POST (start)".to_owned())),
    };
    match result {
        Ok(status) => json(&status),
        Err((code, why)) => reply(code, "text/plain", format!("{why}\n")),
    }
}

/// `/pg/mode/backup`: GET the state, POST start, PUT stop; PostgreSQL must be running.
async fn backup(shared: &Shared, method: &Method, body: &[u8]) -> Response<Full<Bytes>> {
    let result = match *method {
        Method::GET => Ok(shared.backup.status().await),
        Method::POST if shared.phase() != Phase::Running => {
            Err((StatusCode::SERVICE_UNAVAILABLE, "PostgreSQL is not running".to_owned()))
        }
        Method::POST => match parse(body) {
            Ok(start) => shared.backup.start(&shared.layout.sockets(), &start).await,
            Err(refusal) => Err(refusal),
        },
        Method::PUT => match parse(body) {
            Ok(stop) => shared.backup.stop(&stop).await,
            Err(refusal) => Err(refusal),
        },
        _ => Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "GET, POST (start) or PUT (stop)".to_owned(),
        )),
    };
    match result {
        Ok(status) => json(&status),
        Err((code, why)) => reply(code, "text/plain", format!("{why}\n")),
    }
}

/// The operator's pinned certificate, or the refusal: 401 without a certificate, 503 while no
/// fingerprint is published, 403 for any other certificate.
fn authorize(shared: &Shared, client: Option<&str>) -> Result<(), Box<Response<Full<Bytes>>>> {
    let Some(client) = client else {
        return Err(Box::new(reply(
            StatusCode::UNAUTHORIZED,
            "text/plain",
            "this endpoint requires the operator's client certificate\n",
        )));
    };
    match shared.operator_fingerprint() {
        None => Err(Box::new(reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the operator's certificate fingerprint is not known yet\n",
        ))),
        Some(pinned) if pinned.eq_ignore_ascii_case(client) => Ok(()),
        Some(_) => Err(Box::new(reply(
            StatusCode::FORBIDDEN,
            "text/plain",
            "this client certificate is not the operator's\n",
        ))),
    }
}

async fn accepts_connections(shared: &Shared) -> bool {
    let check = async {
        let db = Db::connect(&shared.layout.sockets(), "postgres").await.ok()?;
        db.in_recovery().await.ok()
    };
    matches!(tokio::time::timeout(Duration::from_secs(3), check).await, Ok(Some(_)))
}

async fn status(shared: &Shared) -> InstanceStatus {
    let mut status = InstanceStatus {
        pod_name: shared.pod_name.clone(),
        instance_manager_version: cnpg_telemetry::LONG_VERSION.to_owned(),
        instance_arch: std::env::consts::ARCH.to_owned(),
        is_pg_rewind_running: shared.phase() == Phase::Rewinding,
        ..InstanceStatus::default()
    };
    if shared.phase() == Phase::Fenced {
        status.error = Some("the instance is fenced".into());
        return status;
    }
    let query = async {
        let db = Db::connect(&shared.layout.sockets(), "postgres").await?;
        db.status().await
    };
    match tokio::time::timeout(Duration::from_secs(5), query).await {
        Ok(Ok(sql)) => {
            status.is_primary = !sql.in_recovery;
            status.current_lsn = sql.current_lsn;
            status.received_lsn = sql.received_lsn;
            status.replay_lsn = sql.replay_lsn;
            status.system_id = sql.system_id;
            status.timeline_id = sql.timeline;
            status.loaded_configuration_hash = sql.config_hash;
            status.postgres_version = sql.version;
            status.is_wal_receiver_active = sql.wal_receiver_active;
            status.replay_paused = sql.replay_paused;
            status.pending_restart = sql.pending_restart;
            status.replication_info = sql.replication;
            status.replication_slots_info = sql.slots;
            status.is_archiving_wal = sql.archiving;
            status.last_archived_wal = sql.last_archived_wal;
            status.last_archived_wal_time = sql.last_archived_time;
            status.last_failed_wal = sql.last_failed_wal;
            status.last_failed_wal_time = sql.last_failed_time;
            status.ready_wal_files =
                super::metrics::archive_status(&shared.layout.pg_data.join("pg_wal/archive_status")).0;
            status.is_pod_ready = shared.phase() == Phase::Running;
        }
        Ok(Err(e)) => status.error = Some(cnpg_telemetry::error_chain(&e)),
        Err(_) => status.error = Some("PostgreSQL did not answer within 5 s".into()),
    }
    status
}

async fn controldata(shared: &Shared) -> Response<Full<Bytes>> {
    let mut cmd = std::process::Command::new(shared.layout.program("pg_controldata"));
    cmd.arg("-D").arg(&shared.layout.pg_data);
    match shared.reaper.output(&mut cmd).await {
        Ok(output) => json(&ControlData { data: output.stdout }),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            cnpg_telemetry::error_chain(&e),
        ),
    }
}
