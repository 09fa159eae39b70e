//! `instance restore` (the full-recovery job): a new primary's data directory from a base
//! backup in the object store of `bootstrap.recovery.source`, in barman-cloud's layout
//! (ours or barman-cloud-backup's), then the WAL archived after it replayed by a temporary
//! server up to the recovery target and promoted onto a new timeline.
//!
//! The backup is streamed into a staging directory beside the data directory and renamed
//! into place only once the whole tarball was read and matched the store's checksum, so a
//! failed download leaves no data directory behind and the job can simply run again. The
//! recovered cluster archives to its own path, and refuses a path that already holds WAL (the
//! source's, or another cluster's): two clusters writing one archive corrupt each other's
//! history.

use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cnpg_api::cluster::RecoveryTarget;
use cnpg_backup::archive::Settings;
use cnpg_backup::base::{self, DataCompression};
use cnpg_backup::info::BackupInfo;
use cnpg_objectstore::Store;
use tokio::sync::mpsc;

use super::config;
use super::postmaster::{Postmaster, StartOptions};
use crate::db::Db;
use crate::k8s::{ClusterApi, KubeArgs};
use crate::layout::{Layout, write_if_changed};
use crate::process::Reaper;

/// `instance restore` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub layout: Layout,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// How long recovery may take before the job gives up.
    #[arg(long, default_value = "86400")]
    pub recovery_timeout_seconds: u64,
}

/// Restore failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("refusing to restore: {} already holds a data directory", .0.display())]
    Exists(PathBuf),
    #[error("failed to prepare the instance's files")]
    Write(#[from] crate::layout::WriteError),
    #[error(transparent)]
    Kube(#[from] crate::k8s::Error),
    #[error(transparent)]
    Location(#[from] cnpg_backup::Error),
    #[error(transparent)]
    Settings(#[from] crate::wal::Error),
    #[error(transparent)]
    Store(#[from] cnpg_objectstore::Error),
    #[error(transparent)]
    Catalog(#[from] super::base_backup::Error),
    #[error(
        "{destination} (server {server}) already holds WAL: refusing to archive this cluster's WAL into another's; \
         give spec.backup.barmanObjectStore an empty path or another serverName"
    )]
    ArchiveNotEmpty { destination: String, server: String },
    #[error("{0}")]
    NoBackup(String),
    #[error("{key}: {problem}")]
    Backup { key: String, problem: String },
    #[error("failed to unpack the backup into {}", .0.display())]
    Unpack(PathBuf, #[source] io::Error),
    #[error("failed to start the reaper")]
    Reaper(#[source] io::Error),
    #[error("the recovery server failed; its log ends:\n{log}")]
    Start {
        source: super::postmaster::Error,
        log: String,
    },
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    #[error("recovery ended without reaching the target ({exit}); the server's log ends:\n{log}")]
    Recovery { exit: String, log: String },
    #[error("recovery did not finish within {0:?}")]
    Timeout(Duration),
    #[error("the recovery server did not stop cleanly ({0})")]
    Stop(String),
}

/// A backup chosen to restore.
#[derive(Debug)]
struct Chosen {
    id: String,
    info: BackupInfo,
    data_key: String,
    compression: DataCompression,
}

/// Runs `instance restore`.
pub async fn restore(args: &RestoreArgs) -> Result<(), Error> {
    let layout = &args.layout;
    if layout.pg_data.join("PG_VERSION").exists() {
        return Err(Error::Exists(layout.pg_data.clone()));
    }
    layout.create_dirs()?;
    let api = ClusterApi::new(args.kube.clone())?;
    let materials = api.materials().await?;
    let (mut source, backup_id) = api.recovery_source(&materials.cluster).await?;
    let mut target = materials
        .cluster
        .spec
        .bootstrap
        .as_ref()
        .and_then(|b| b.recovery.as_ref())
        .and_then(|r| r.recovery_target.clone())
        .unwrap_or_default();
    if target.backup_id.is_none() {
        target.backup_id = backup_id;
    }

    // This cluster's own archive must start empty.
    if let Some(own) = &materials.archive {
        let location = own.location()?;
        let store = crate::wal::store(own, &location.bucket)?;
        if store.any_under(&format!("{}wals/", location.root())).await? {
            return Err(Error::ArchiveNotEmpty {
                destination: own.destination.clone(),
                server: own.server.clone(),
            });
        }
    }
    config::write_archive_settings(layout, &materials)?;
    let location = source.location()?;
    let store = crate::wal::store(&source, &location.bucket)?;
    let chosen = choose(&store, &source, &target).await?;
    // wal-restore reads the source's store, fetching ahead with the backup's segment size.
    source.segment_size = chosen.info.get("xlog_segment_size").and_then(|s| s.parse().ok());
    let recovery_file = layout.controller_dir.join(cnpg_backup::archive::RECOVERY_FILE_NAME);
    config::write_settings(&recovery_file, &source)?;
    tracing::info!(
        backup = chosen.id,
        destination = source.destination,
        server = source.server,
        "restoring base backup"
    );
    unpack(&store, &chosen, &layout.pg_data).await?;

    let outcome = recover(args, &materials, &target).await;
    // Whatever happened, WAL is read from the Cluster's own store from now on, and what was
    // fetched ahead for this recovery is of no use to it.
    if let Err(e) = std::fs::remove_file(&recovery_file) {
        tracing::warn!(error = %e, "failed to remove the recovery source's settings");
    }
    match std::fs::remove_dir_all(layout.controller_dir.join(crate::wal::RESTORE_SPOOL)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            tracing::warn!(error = %e, "failed to remove the segments fetched ahead");
        }
        _ => {}
    }
    outcome
}

/// The backup to restore: the one `backupID` names, or the latest that ended before the
/// target time or LSN, or the latest.
async fn choose(store: &Store, source: &Settings, target: &RecoveryTarget) -> Result<Chosen, Error> {
    let all = super::base_backup::stored_backups(store, &source.location()?).await?;
    let where_ = format!("{} (server {})", source.destination, source.server);
    let picked = if let Some(id) = &target.backup_id {
        all.into_iter()
            .find(|(i, _)| i == id)
            .ok_or_else(|| Error::NoBackup(format!("backup {id} is not in {where_}")))?
    } else if let Some(time) = &target.target_time {
        let time = cnpg_backup::info::parse_time(time).ok_or_else(|| {
            Error::NoBackup(format!(
                "targetTime {time:?} cannot be compared with backups: write it as RFC 3339"
            ))
        })?;
        all.into_iter()
            .rfind(|(_, info)| {
                info.get("end_time")
                    .and_then(cnpg_backup::info::parse_time)
                    .is_some_and(|end| end <= time)
            })
            .ok_or_else(|| Error::NoBackup(format!("no backup in {where_} ended before {time}")))?
    } else if let Some(lsn) = target.target_lsn.as_deref().and_then(base::parse_lsn) {
        all.into_iter()
            .rfind(|(_, info)| {
                info.get("end_xlog")
                    .and_then(base::parse_lsn)
                    .is_some_and(|end| end <= lsn)
            })
            .ok_or_else(|| {
                Error::NoBackup(format!(
                    "no backup in {where_} ended before LSN {}",
                    base::format_lsn(lsn)
                ))
            })?
    } else {
        all.into_iter()
            .next_back()
            .ok_or_else(|| Error::NoBackup(format!("{where_} holds no complete backup")))?
    };
    let (id, info) = picked;
    let folder = source.location()?.base_backup(&id);
    if info.get("tablespaces").is_some() {
        return Err(Error::Backup {
            key: format!("{folder}backup.info"),
            problem: "the backup has tablespaces; restoring tablespaces is not supported yet".into(),
        });
    }
    let objects = store.list(&folder).await?;
    let (data_key, compression) = [DataCompression::None, DataCompression::Gzip]
        .into_iter()
        .map(|c| (format!("{folder}{}", base::data_name(c)), c))
        .find(|(key, _)| objects.iter().any(|o| o.key == *key))
        .ok_or_else(|| Error::Backup {
            key: folder.clone(),
            problem: format!(
                "no data.tar or data.tar.gz (found {}): other compressions are not read yet",
                objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>().join(", ")
            ),
        })?;
    Ok(Chosen {
        id,
        info,
        data_key,
        compression,
    })
}

/// Chunks from the download, read as one stream by the unpacking thread.
struct ChannelReader {
    chunks: mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        let chunk = self.current.split_to(n);
        buf.get_mut(..n)
            .ok_or_else(|| io::Error::other("short buffer"))?
            .copy_from_slice(&chunk);
        Ok(n)
    }
}

/// Streams the backup's tarball into `<pgdata>.restoring`, then renames it to `pgdata` once
/// it was read whole and matched the store's checksum.
async fn unpack(store: &Store, chosen: &Chosen, pgdata: &Path) -> Result<(), Error> {
    let mut staging = pgdata.as_os_str().to_owned();
    staging.push(".restoring");
    let staging = PathBuf::from(staging);
    let fail = |e: io::Error| Error::Unpack(staging.clone(), e);
    match std::fs::remove_dir_all(&staging) {
        Ok(()) => tracing::info!(dir = %staging.display(), "removed an earlier attempt's files"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    std::fs::DirBuilder::new().mode(0o700).create(&staging).map_err(fail)?;
    let mut download = store.get_stream(&chosen.data_key).await?.ok_or_else(|| Error::Backup {
        key: chosen.data_key.clone(),
        problem: "listed but gone".into(),
    })?;
    let (tx, rx) = mpsc::channel::<bytes::Bytes>(8);
    let dir = staging.clone();
    let compression = chosen.compression;
    let unpacker = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader {
            chunks: rx,
            current: bytes::Bytes::new(),
        };
        match compression {
            DataCompression::None => unpack_tar(reader, &dir),
            DataCompression::Gzip => unpack_tar(flate2::read::GzDecoder::new(reader), &dir),
        }
    });
    let downloaded = async {
        while let Some(chunk) = download.chunk().await? {
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
        Ok::<_, Error>(())
    }
    .await;
    drop(tx);
    let unpacked = unpacker
        .await
        .map_err(|e| fail(io::Error::other(e.to_string())))
        .and_then(|r| r.map_err(fail));
    downloaded?;
    unpacked?;

    // What a base backup leaves out, PostgreSQL needs back empty; this is a primary-to-be.
    for dir in ["pg_wal", "pg_wal/archive_status"] {
        match std::fs::DirBuilder::new().mode(0o700).create(staging.join(dir)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(e)),
        }
    }
    for file in ["standby.signal", "postmaster.pid"] {
        match std::fs::remove_file(staging.join(file)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e)),
        }
    }
    std::fs::rename(&staging, pgdata).map_err(|e| Error::Unpack(pgdata.to_owned(), e))?;
    write_if_changed(&pgdata.join("recovery.signal"), b"", 0o600)?;
    tracing::info!(
        backup = chosen.id,
        begin_wal = chosen.info.get("begin_wal").unwrap_or_default(),
        end_wal = chosen.info.get("end_wal").unwrap_or_default(),
        "base backup unpacked"
    );
    Ok(())
}

/// Unpacks a tarball into `dir`: regular files and directories only, each inside `dir`.
fn unpack_tar(reader: impl Read, dir: &Path) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        let path = entry.path()?.into_owned();
        // The directory itself (`./`) keeps the 0700 it was created with, whatever the
        // tarball says: PostgreSQL refuses a data directory others can read.
        if kind.is_dir() && path.components().all(|c| c == std::path::Component::CurDir) {
            continue;
        }
        if !(kind.is_file() || kind.is_dir()) {
            return Err(io::Error::other(format!(
                "{} is a {kind:?}: a backup holds only files and directories",
                path.display()
            )));
        }
        if !entry.unpack_in(dir)? {
            return Err(io::Error::other(format!(
                "{} points outside the data directory",
                path.display()
            )));
        }
    }
    // Drain what follows the archive's end, so the checksum covers every byte.
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    Ok(())
}

/// Replays WAL up to the target on a server reachable through its socket alone, promotes,
/// and stops it.
async fn recover(args: &RestoreArgs, materials: &crate::k8s::Materials, target: &RecoveryTarget) -> Result<(), Error> {
    let layout = &args.layout;
    let manager = layout.paths().manager.display().to_string();
    // Peer access for the manager's own user over the socket, nothing else.
    let hba = layout.tmp().join("recovery-hba.conf");
    write_if_changed(&hba, b"local all postgres peer\n", 0o600)?;
    let mut settings: Vec<(String, String)> = vec![
        ("unix_socket_directories".into(), layout.sockets().display().to_string()),
        ("hba_file".into(), hba.display().to_string()),
        ("ssl".into(), "off".into()),
        ("log_directory".into(), layout.logs().display().to_string()),
        ("restore_command".into(), format!("{manager} wal-restore %f %p")),
        ("recovery_target_action".into(), "promote".into()),
    ];
    if materials.archive.is_some() {
        settings.push(("archive_mode".into(), "on".into()));
        settings.push(("archive_command".into(), format!("{manager} wal-archive %p")));
    } else {
        settings.push(("archive_mode".into(), "off".into()));
    }
    let mut set = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            settings.push((name.to_owned(), value));
        }
    };
    set("recovery_target_time", target.target_time.clone());
    set("recovery_target_lsn", target.target_lsn.clone());
    set("recovery_target_xid", target.target_xid.clone());
    set("recovery_target_name", target.target_name.clone());
    set("recovery_target_timeline", target.target_tli.clone());
    set(
        "recovery_target",
        (target.target_immediate == Some(true)).then(|| "immediate".to_owned()),
    );
    set(
        "recovery_target_inclusive",
        (target.exclusive == Some(true)).then(|| "off".to_owned()),
    );
    let reaper = Reaper::start().map_err(Error::Reaper)?;
    let options = StartOptions {
        listen_addresses: Some(String::new()),
        settings,
    };
    let budget = Duration::from_secs(args.recovery_timeout_seconds);
    let started = tokio::time::Instant::now();
    let mut server = Postmaster::start(&reaper, layout, &options, budget)
        .await
        .map_err(|source| Error::Start {
            source,
            log: log_tail(&layout.logs()),
        })?;
    tracing::info!("recovery server up: replaying WAL up to the target");
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if let Some(exit) = server.try_exit() {
            return Err(Error::Recovery {
                exit: exit.to_string(),
                log: log_tail(&layout.logs()),
            });
        }
        let promoted = async {
            let db = Db::connect(&layout.sockets(), "postgres").await?;
            Ok::<_, crate::db::Error>(!db.in_recovery().await?)
        }
        .await;
        if matches!(promoted, Ok(true)) {
            break;
        }
        if started.elapsed() > budget {
            let _ = server.stop_fast(Duration::from_secs(60)).await;
            return Err(Error::Timeout(budget));
        }
    }
    let timeline = async {
        let db = Db::connect(&layout.sockets(), "postgres").await?;
        db.status().await
    }
    .await?
    .timeline;
    tracing::info!(timeline, "recovered and promoted");
    match server.stop_fast(Duration::from_secs(120)).await {
        Some(exit) if exit.success() => Ok(()),
        other => Err(Error::Stop(
            other.map_or_else(|| "no exit status".into(), |e| e.to_string()),
        )),
    }
}

/// The last lines PostgreSQL wrote to its newest log file in `dir`, for an error message.
fn log_tail(dir: &Path) -> String {
    let newest = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.path()
                .extension()
                .is_some_and(|x| x == "log" || x == "csv" || x == "json")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    let Some(text) = newest.and_then(|e| std::fs::read_to_string(e.path()).ok()) else {
        return format!("(nothing in {})", dir.display());
    };
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(20)..)
        .unwrap_or_default()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tarball_with_a_link_or_a_way_out_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = |name: &str, kind: tar::EntryType| {
            let mut builder = tar::Builder::new(Vec::new());
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_size(0);
            header.set_mode(0o600);
            if kind == tar::EntryType::Symlink {
                header.set_link_name("/etc").unwrap();
            }
            // Written raw: the builder itself refuses `..`.
            if let Some(gnu) = header.as_gnu_mut() {
                gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            }
            header.set_cksum();
            builder.append(&header, io::empty()).unwrap();
            builder.into_inner().unwrap()
        };
        let err = unpack_tar(tarball("pg_wal", tar::EntryType::Symlink).as_slice(), dir.path()).unwrap_err();
        assert!(err.to_string().contains("only files and directories"), "{err}");
        let err = unpack_tar(tarball("../escaped", tar::EntryType::Regular).as_slice(), dir.path());
        assert!(err.is_err());
        assert!(!dir.path().parent().unwrap().join("escaped").exists());
        unpack_tar(tarball("PG_VERSION", tar::EntryType::Regular).as_slice(), dir.path()).unwrap();
        assert!(dir.path().join("PG_VERSION").is_file());
    }
}
