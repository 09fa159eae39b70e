//! Base backups to the object store (`/pg/backup`), in barman-cloud's layout so barman's own
//! tools list and restore them: `pg_backup_start` on a session held for the whole copy, the
//! data directory streamed as one tarball (optionally gzip) into a multipart upload while it is
//! read, `pg_backup_stop` (which, by default, waits until the last WAL segment the backup needs
//! is archived), the backup label appended as the tarball's last file, then `backup.info`.
//! `backup.info` is written last, so a backup barman lists is a whole one; a backup that fails
//! aborts its upload and leaves nothing listed.
//!
//! Memory is bounded by the part size times the parts in flight, whatever the database's size.

use std::io::{self, Read as _, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use cnpg_backup::Location;
use cnpg_backup::archive::Settings;
use cnpg_backup::base::{self, DataCompression, Finished};
use cnpg_backup::info::BackupInfo;
use cnpg_instance_api::{BaseBackupPhase, BaseBackupStatus, TakeBackup};
use cnpg_objectstore::{Part, Store, Upload};
use hyper::StatusCode;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::db::Db;

/// Parts start at 16 MiB and double every 2,000 parts, so the 10,000 parts S3 allows per
/// object hold about 1 TB while a small backup needs little memory.
fn part_size(number: usize) -> usize {
    (16 << 20) << (number / 2000).min(4)
}
/// Parts uploading at once, besides the one being filled and the one queued.
const PARTS_IN_FLIGHT: usize = 2;

/// A base backup failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no object store is configured (spec.backup.barmanObjectStore)")]
    NotConfigured,
    #[error(transparent)]
    Settings(#[from] crate::wal::Error),
    #[error("data.compression {0:?} is not supported yet: use gzip or none")]
    Compression(String),
    #[error(transparent)]
    Location(#[from] cnpg_backup::Error),
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    #[error(
        "the instance has {0} tablespace(s) besides the default ones; base backups of tablespaces are not supported yet"
    )]
    Tablespaces(i64),
    #[error("a backup with ID {0} is already stored")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] cnpg_objectstore::Error),
    #[error("failed to read the data directory for the backup")]
    Copy(#[source] io::Error),
    #[error("the backup label: {0}")]
    Label(String),
    #[error("the copy stopped before the backup ended")]
    Interrupted,
    #[error("{key}: {problem}")]
    Info { key: String, problem: String },
    #[error(transparent)]
    Retention(#[from] super::retention::Error),
}

/// The base backup in progress, or the last one.
#[derive(Debug, Default)]
pub struct BaseBackups {
    status: Arc<Mutex<BaseBackupStatus>>,
}

use super::backup::Refusal;

impl BaseBackups {
    pub async fn status(&self) -> BaseBackupStatus {
        self.status.lock().await.clone()
    }

    /// Starts a base backup in the background (one at a time) and returns its first status.
    pub async fn start(
        &self,
        settings_file: PathBuf,
        sockets: PathBuf,
        pgdata: PathBuf,
        request: TakeBackup,
    ) -> Result<BaseBackupStatus, Refusal> {
        if request.backup_name.trim().is_empty() {
            return Err((StatusCode::BAD_REQUEST, "backupName is required".into()));
        }
        let mut status = self.status.lock().await;
        if status.phase == BaseBackupPhase::Running {
            return Err((
                StatusCode::CONFLICT,
                format!(
                    "base backup {} is in progress",
                    status.backup_name.as_deref().unwrap_or_default()
                ),
            ));
        }
        let settings = read_settings(&settings_file).map_err(|e| match e {
            Error::NotConfigured => (StatusCode::CONFLICT, e.to_string()),
            other => (StatusCode::INTERNAL_SERVER_ERROR, cnpg_telemetry::error_chain(&other)),
        })?;
        let started = jiff::Timestamp::now();
        *status = BaseBackupStatus {
            backup_name: Some(request.backup_name.clone()),
            phase: BaseBackupPhase::Running,
            backup_id: Some(base::backup_id(started)),
            destination_path: Some(settings.destination.clone()),
            server_name: Some(settings.server.clone()),
            started_at: Some(started.to_string()),
            ..BaseBackupStatus::default()
        };
        let first = status.clone();
        drop(status);
        let shared = Arc::clone(&self.status);
        tokio::spawn(async move {
            let outcome = take(&settings, &sockets, &pgdata, &request, started).await;
            let mut status = shared.lock().await;
            status.stopped_at = Some(jiff::Timestamp::now().to_string());
            match outcome {
                Ok(finished) => {
                    tracing::info!(
                        backup = request.backup_name,
                        id = status.backup_id.as_deref().unwrap_or_default(),
                        size = finished.size,
                        "base backup stored"
                    );
                    status.phase = BaseBackupPhase::Completed;
                    status.begin_wal = Some(finished.label.start_wal.clone());
                    status.end_wal = Some(finished.end_wal());
                    status.begin_lsn = Some(base::format_lsn(finished.label.start_lsn));
                    status.end_lsn = Some(base::format_lsn(finished.end_lsn));
                }
                Err(e) => {
                    let error = cnpg_telemetry::error_chain(&e);
                    tracing::warn!(backup = request.backup_name, %error, "base backup failed");
                    status.phase = BaseBackupPhase::Failed;
                    status.error = Some(error);
                }
            }
        });
        Ok(first)
    }
}

fn read_settings(file: &Path) -> Result<Settings, Error> {
    if !file.is_file() {
        return Err(Error::NotConfigured);
    }
    Ok(crate::wal::read_settings(file)?)
}

/// Takes one base backup, start to `backup.info`.
pub async fn take(
    settings: &Settings,
    sockets: &Path,
    pgdata: &Path,
    request: &TakeBackup,
    started: jiff::Timestamp,
) -> Result<Finished, Error> {
    let compression = DataCompression::from_spec(settings.data_compression.as_deref())
        .ok_or_else(|| Error::Compression(settings.data_compression.clone().unwrap_or_default()))?;
    let location = settings.location()?;
    let store = crate::wal::store(settings, &location.bucket)?.with_encryption(settings.data_encryption.clone());
    let id = base::backup_id(started);
    let folder = location.base_backup(&id);
    if !store.list(&folder).await?.is_empty() {
        return Err(Error::Exists(id));
    }

    let session = Db::connect(sockets, "postgres").await?;
    let (server, tablespaces) = session.backup_server().await?;
    if tablespaces > 0 {
        return Err(Error::Tablespaces(tablespaces));
    }
    session
        .backup_start(&request.backup_name, request.immediate_checkpoint)
        .await?;
    tracing::info!(backup = request.backup_name, %id, "base backup started");

    let upload = store
        .start_upload(&format!("{folder}{}", base::data_name(compression)))
        .await?;
    let (parts_tx, parts_rx) = mpsc::channel::<Vec<u8>>(1);
    let (copied_tx, copied_rx) = oneshot::channel::<()>();
    let (label_tx, label_rx) = std::sync::mpsc::channel::<Option<(String, String)>>();
    let dir = pgdata.to_owned();
    let producer =
        tokio::task::spawn_blocking(move || write_tarball(&dir, compression, parts_tx, copied_tx, &label_rx));
    let uploader = tokio::spawn(upload_parts(upload.clone(), parts_rx));

    // The files are copied: end backup mode on the same session, then hand the label over.
    let stopped = match copied_rx.await {
        Ok(()) => session.backup_stop(request.wait_for_archive).await.map_err(Error::from),
        Err(_) => Err(Error::Interrupted),
    };
    let _ = label_tx.send(
        stopped
            .as_ref()
            .ok()
            .map(|(_, label, map)| (label.clone(), map.clone())),
    );
    let produced = producer
        .await
        .map_err(|_| Error::Interrupted)
        .and_then(|r| r.map_err(Error::Copy));
    let uploaded = uploader.await.map_err(|_| Error::Interrupted).and_then(|r| r);
    // The first cause, not its echoes: a failed upload stops the copy, which ends the backup.
    let outcome = async {
        let parts = uploaded?;
        let size = produced?;
        let (end_lsn, label_file, _) = stopped?;
        Ok::<_, Error>((end_lsn, label_file, size, parts))
    }
    .await;
    let (end_lsn, label_file, size, parts) = match outcome {
        Ok(done) => done,
        Err(e) => {
            if let Err(abort) = upload.abort().await {
                tracing::warn!(error = %cnpg_telemetry::error_chain(&abort), "failed to abort the backup's upload");
            }
            return Err(e);
        }
    };
    upload.complete(parts).await?;

    let finished = Finished {
        server,
        label: base::parse_label(&label_file).map_err(Error::Label)?,
        label_file,
        end_lsn: base::parse_lsn(&end_lsn).ok_or_else(|| Error::Label(format!("`{end_lsn}` is not an LSN")))?,
        begin_time: started,
        end_time: jiff::Timestamp::now(),
        compression,
        size,
    };
    store
        .put(&format!("{folder}backup.info"), finished.info().render().into_bytes())
        .await?;
    // A new backup can make older ones obsolete.
    super::retention::enforce(settings, jiff::Timestamp::now()).await?;
    Ok(finished)
}

/// The whole backups in the store (`backup.info` with status DONE), by ID (oldest first).
pub async fn stored_backups(store: &Store, location: &Location) -> Result<Vec<(String, BackupInfo)>, Error> {
    let base = format!("{}base/", location.root());
    let mut out = Vec::new();
    for object in store.list(&base).await? {
        let Some(id) = object
            .key
            .strip_prefix(base.as_str())
            .and_then(|rest| rest.strip_suffix("/backup.info"))
            .filter(|id| base::is_backup_id(id))
        else {
            continue;
        };
        let Some(bytes) = store.get(&object.key).await? else {
            continue;
        };
        let info = BackupInfo::parse(&String::from_utf8_lossy(&bytes)).map_err(|e| Error::Info {
            key: object.key.clone(),
            problem: e.to_string(),
        })?;
        if info.get("status") == Some("DONE") {
            out.push((id.to_owned(), info));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Uploads the parts as they come, a few at a time, each retried; the parts in order.
async fn upload_parts(upload: Upload, mut parts: mpsc::Receiver<Vec<u8>>) -> Result<Vec<Part>, Error> {
    let mut running = tokio::task::JoinSet::new();
    let mut done = Vec::new();
    let mut number = 0u32;
    while let Some(body) = parts.recv().await {
        number += 1;
        while running.len() >= PARTS_IN_FLIGHT {
            if let Some(result) = running.join_next().await {
                done.push(result.map_err(|_| Error::Interrupted)??);
            }
        }
        let upload = upload.clone();
        let body = bytes::Bytes::from(body);
        running.spawn(async move {
            let send = || upload.put_part(number, body.clone());
            send.retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(500))
                    .with_max_times(3),
            )
            .await
            .map_err(Error::from)
        });
    }
    while let Some(result) = running.join_next().await {
        done.push(result.map_err(|_| Error::Interrupted)??);
    }
    Ok(done)
}

/// Cuts the byte stream into parts for the uploader.
struct PartSink {
    buffer: Vec<u8>,
    /// Parts sent so far.
    sent: usize,
    parts: mpsc::Sender<Vec<u8>>,
}

impl PartSink {
    fn send(&mut self) -> io::Result<()> {
        self.sent += 1;
        let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(part_size(self.sent)));
        self.parts
            .blocking_send(part)
            .map_err(|_| io::Error::other("the upload stopped"))
    }
}

impl Write for PartSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let size = part_size(self.sent);
        let n = data.len().min(size.saturating_sub(self.buffer.len()));
        self.buffer.extend_from_slice(data.get(..n).unwrap_or_default());
        if self.buffer.len() >= size {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The tarball's bytes before compression: counted, then compressed or not.
struct Output {
    size: u64,
    inner: Compressed,
}

enum Compressed {
    Plain(PartSink),
    Gzip(Box<flate2::write::GzEncoder<PartSink>>),
}

impl Write for Output {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = match &mut self.inner {
            Compressed::Plain(sink) => sink.write(data)?,
            Compressed::Gzip(encoder) => encoder.write(data)?,
        };
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Output {
    /// Ends the compression and sends the last part.
    fn finish(self) -> io::Result<u64> {
        let mut sink = match self.inner {
            Compressed::Plain(sink) => sink,
            Compressed::Gzip(encoder) => encoder.finish()?,
        };
        // The rest, unless everything went out in whole parts already.
        if !sink.buffer.is_empty() || sink.sent == 0 {
            sink.send()?;
        }
        Ok(self.size)
    }
}

/// Writes the data directory as a tarball into parts; after the files, waits for the backup
/// label (None: the backup failed) and appends it. Returns the tarball's size.
fn write_tarball(
    pgdata: &Path,
    compression: DataCompression,
    parts: mpsc::Sender<Vec<u8>>,
    copied: oneshot::Sender<()>,
    label: &std::sync::mpsc::Receiver<Option<(String, String)>>,
) -> io::Result<u64> {
    let sink = PartSink {
        buffer: Vec::with_capacity(part_size(0)),
        sent: 0,
        parts,
    };
    let inner = match compression {
        DataCompression::None => Compressed::Plain(sink),
        DataCompression::Gzip => Compressed::Gzip(Box::new(flate2::write::GzEncoder::new(
            sink,
            flate2::Compression::fast(),
        ))),
    };
    let mut tar = tar::Builder::new(Output { size: 0, inner });
    tar.mode(tar::HeaderMode::Complete);
    tar.follow_symlinks(false);
    // The data directory itself first, as `./`, so a restore gets its mode (PostgreSQL
    // refuses a group- or world-accessible data directory).
    let metadata = std::fs::metadata(pgdata)?;
    let mut root = tar::Header::new_gnu();
    root.set_entry_type(tar::EntryType::Directory);
    root.set_mode(std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o750);
    root.set_mtime(mtime(&metadata));
    root.set_size(0);
    if let Some(name) = root.as_gnu_mut().and_then(|h| h.name.get_mut(..2)) {
        name.copy_from_slice(b"./");
    }
    root.set_cksum();
    tar.append(&root, io::empty())?;
    add_dir(&mut tar, pgdata, Path::new(""))?;
    // pg_control last, as pg_basebackup and barman copy it.
    add_file(&mut tar, &pgdata.join(PG_CONTROL), Path::new(PG_CONTROL))?;
    let _ = copied.send(());
    let Ok(Some((label, map))) = label.recv() else {
        return Err(io::Error::other("the backup did not end"));
    };
    let now = jiff::Timestamp::now().as_second().max(0).cast_unsigned();
    let mut files = vec![("backup_label", label)];
    if !map.is_empty() {
        files.push(("tablespace_map", map));
    }
    for (name, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o600);
        header.set_mtime(now);
        header.set_size(text.len() as u64);
        tar.append_data(&mut header, name, text.as_bytes())?;
    }
    tar.into_inner()?.finish()
}

const PG_CONTROL: &str = "global/pg_control";

/// Directories whose contents a base backup leaves out (PostgreSQL's own list for
/// `pg_basebackup`): they are recreated empty, or refilled from WAL.
const EMPTY_DIRS: &[&str] = &[
    "pg_wal",
    "pg_stat_tmp",
    "pg_replslot",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_subtrans",
];

/// Files a base backup leaves out, wherever they are.
fn skipped_file(name: &str) -> bool {
    matches!(
        name,
        "postmaster.pid"
            | "postmaster.opts"
            | "postgresql.auto.conf.tmp"
            | "current_logfiles.tmp"
            | "pg_internal.init"
            | "backup_label"
            | "tablespace_map"
            | "backup_manifest"
    ) || name.starts_with("pgsql_tmp")
}

/// Adds the directory `root/rel`'s entries (sorted), recursively; files that vanish while
/// being copied are left out (WAL replay recreates them), files that shrink are padded.
fn add_dir<W: Write>(tar: &mut tar::Builder<W>, root: &Path, rel: &Path) -> io::Result<()> {
    let mut entries: Vec<_> = match std::fs::read_dir(root.join(rel)) {
        Ok(entries) => entries.collect::<Result<_, _>>()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !rel.as_os_str().is_empty() => return Ok(()),
        Err(e) => return Err(e),
    };
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name();
        let path = rel.join(&name);
        let Some(text) = name.to_str() else {
            return Err(io::Error::other(format!("{} is not UTF-8", path.display())));
        };
        let metadata = match std::fs::symlink_metadata(entry.path()) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let top = rel.as_os_str().is_empty();
        if metadata.is_dir() || (top && text == "pg_wal" && metadata.file_type().is_symlink()) {
            // pg_wal on its own volume is a link: stored as the directory it stands for.
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o700);
            header.set_mtime(mtime(&metadata));
            header.set_size(0);
            tar.append_data(&mut header, &path, io::empty())?;
            if top && EMPTY_DIRS.contains(&text) {
                if text == "pg_wal" {
                    for sub in ["archive_status", "summaries"] {
                        if root.join(&path).join(sub).is_dir() {
                            tar.append_data(&mut header, path.join(sub), io::empty())?;
                        }
                    }
                }
                continue;
            }
            add_dir(tar, root, &path)?;
        } else if metadata.is_file() {
            if skipped_file(text) || path == Path::new(PG_CONTROL) {
                continue;
            }
            add_file(tar, &entry.path(), &path)?;
        } else if metadata.file_type().is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            let mut header = tar::Header::new_gnu();
            header.set_metadata_in_mode(&metadata, tar::HeaderMode::Complete);
            header.set_size(0);
            tar.append_link(&mut header, &path, target)?;
        }
        // Sockets and FIFOs are not data.
    }
    Ok(())
}

/// Adds one file as it is now; one that vanished is left out.
fn add_file<W: Write>(tar: &mut tar::Builder<W>, source: &Path, path: &Path) -> io::Result<()> {
    let file = match std::fs::File::open(source) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let metadata = file.metadata()?;
    let size = metadata.len();
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&metadata, tar::HeaderMode::Complete);
    header.set_size(size);
    // Exactly `size` bytes: what is there, zeros for what was truncated meanwhile.
    let data = file.take(size).chain(io::repeat(0)).take(size);
    tar.append_data(&mut header, path, data)
}

fn mtime(metadata: &std::fs::Metadata) -> u64 {
    metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_out_what_postgresql_leaves_out_of_a_base_backup() {
        for name in ["postmaster.pid", "pg_internal.init", "pgsql_tmp123.4", "backup_label"] {
            assert!(skipped_file(name), "{name}");
        }
        for name in [
            "PG_VERSION",
            "postgresql.conf",
            "pg_control",
            "16384",
            "postgresql.auto.conf",
        ] {
            assert!(!skipped_file(name), "{name}");
        }
    }
}
