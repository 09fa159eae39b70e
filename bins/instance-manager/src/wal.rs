//! `wal-archive` and `wal-restore`: PostgreSQL's `archive_command` and `restore_command`, one
//! process per WAL file, reading the object store settings `instance run` leaves in
//! `wal-archive.json` beside this binary.
//!
//! Archiving puts the file at barman-cloud's key for it, compressed as `wal.compression`
//! says, and answers success only once the store confirmed exactly these bytes; a file already
//! there with the same bytes (a retry after a crash) counts as archived, one with other bytes
//! is never overwritten. Restoring finds the file under its key with whatever compression
//! suffix barman gave it. Without the settings file every segment counts as archived (WAL is
//! then kept by replication slots and `wal_keep_size` alone) and none can be restored.

use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use cnpg_backup::archive::Settings;
use cnpg_backup::{Compression, WalFile};
use cnpg_objectstore::{Config, Credentials, Secret, Store};

/// Archiving a file failed; PostgreSQL keeps it and calls again.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{path} holds no valid archive settings: {problem}", path = .0.display(), problem = .1)]
    Settings(PathBuf, String),
    #[error(transparent)]
    Name(#[from] cnpg_backup::Error),
    #[error("wal.compression {0:?} is not supported yet: use gzip or none")]
    Compression(String),
    #[error("failed to compress {0}")]
    Compress(String, #[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] cnpg_objectstore::Error),
    #[error("{key} is already archived with other content: refusing to overwrite it")]
    Different { key: String },
    #[error("{key}: compression {suffix:?} is not supported yet (gzip or none)")]
    CannotDecompress { key: String, suffix: String },
    #[error("failed to decompress {0}")]
    Decompress(String, #[source] std::io::Error),
    #[error("failed to write {}", .0.display())]
    Write(PathBuf, #[source] std::io::Error),
}

/// The settings file `instance run` writes, beside this binary; `None` when there is none
/// (no object store configured).
pub fn settings_file() -> Option<PathBuf> {
    beside_me(cnpg_backup::archive::FILE_NAME)
}

/// Where WAL is restored from: during `instance restore`, the recovery source's store
/// (`wal-restore.json`); otherwise the Cluster's own.
pub fn restore_settings_file() -> Option<PathBuf> {
    beside_me(cnpg_backup::archive::RECOVERY_FILE_NAME).or_else(settings_file)
}

/// Leaves why archiving failed beside the settings (0600), or removes it after a success:
/// `instance run` reports it in the Cluster's `ContinuousArchiving` condition. Best effort:
/// PostgreSQL learns the outcome from the exit status either way.
pub fn record_outcome(settings_file: &Path, error: Option<&Error>) {
    let Some(dir) = settings_file.parent() else {
        return;
    };
    let file = dir.join(cnpg_backup::archive::ERROR_FILE_NAME);
    let result = match error {
        Some(e) => crate::layout::write_if_changed(&file, cnpg_telemetry::error_chain(e).as_bytes(), 0o600)
            .map(drop)
            .map_err(|e| e.source),
        None => match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    };
    if let Err(e) = result {
        tracing::warn!(file = %file.display(), error = %e, "failed to record the archiving outcome");
    }
}

fn beside_me(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let file = exe.parent()?.join(name);
    file.is_file().then_some(file)
}

pub(crate) fn read_settings(file: &Path) -> Result<Settings, Error> {
    let text = std::fs::read(file).map_err(|e| Error::Read(file.to_owned(), e))?;
    serde_json::from_slice(&text).map_err(|e| Error::Settings(file.to_owned(), e.to_string()))
}

pub(crate) fn store(settings: &Settings, bucket: &str) -> Result<Store, Error> {
    Ok(Store::new(Config {
        endpoint: settings.endpoint.clone(),
        bucket: bucket.to_owned(),
        region: settings.region.clone(),
        credentials: Credentials {
            access_key_id: settings.access_key_id.clone(),
            secret_access_key: Secret::new(settings.secret_access_key.clone()),
            session_token: settings.session_token.clone().map(Secret::new),
        },
        ca_pem: settings.ca_pem.clone().map(String::into_bytes),
    })?)
}

fn compress(name: &str, bytes: Vec<u8>, compression: Compression) -> Result<Vec<u8>, Error> {
    match compression {
        Compression::None => Ok(bytes),
        Compression::Gzip => {
            // gzip with no file name and no time in its header: the same segment always gives
            // the same object, so a retry can tell "already archived" from "different".
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder
                .write_all(&bytes)
                .map_err(|e| Error::Compress(name.to_owned(), e))?;
            encoder.finish().map_err(|e| Error::Compress(name.to_owned(), e))
        }
        other => Err(Error::Compression(other.suffix().to_owned())),
    }
}

/// Where files archived ahead of PostgreSQL's asking are noted, beside the settings.
const SPOOL: &str = "wal-archive-spool";

/// Archives the file at `path` (relative to the data directory, PostgreSQL's `%p`). With
/// `wal.maxParallel` above 1, the next files PostgreSQL has ready are archived at the same
/// time and noted in the spool; when PostgreSQL then asks for one of those, it is done at
/// once. A note is written only after the store confirmed the file's bytes, so PostgreSQL
/// recycles nothing that is not stored.
pub async fn archive(settings_file: &Path, path: &Path) -> Result<String, Error> {
    let settings = read_settings(settings_file)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let wal = WalFile::parse(name)?;
    let compression = settings
        .compression()
        .ok_or_else(|| Error::Compression(settings.compression.clone().unwrap_or_default()))?;
    let location = settings.location()?;
    let key = location.wal_key(&wal, compression);
    let spool = settings_file.with_file_name(SPOOL);
    if std::fs::remove_file(spool.join(name)).is_ok() {
        return Ok(key);
    }
    let store = store(&settings, &location.bucket)?.with_encryption(settings.wal_encryption.clone());
    let ahead = ready_after(path, settings.max_parallel.unwrap_or(1).saturating_sub(1));
    let mut others = tokio::task::JoinSet::new();
    for next in ahead {
        let (store, location, spool) = (store.clone(), location.clone(), spool.clone());
        others.spawn(async move {
            let name = next.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            let stored = async {
                let wal = WalFile::parse(&name)?;
                archive_one(&store, &location.wal_key(&wal, compression), &next, compression).await
            }
            .await;
            match stored {
                Ok(()) => match spool_write(&spool, &name, b"") {
                    Ok(()) => tracing::info!(%name, "archived ahead of PostgreSQL (wal.maxParallel)"),
                    Err(e) => tracing::debug!(%name, error = %e, "failed to note a file archived ahead"),
                },
                // PostgreSQL asks for it again in its turn, and gets the error then.
                Err(e) => tracing::debug!(%name, error = %cnpg_telemetry::error_chain(&e), "archiving ahead failed"),
            }
        });
    }
    let result = archive_one(&store, &key, path, compression).await;
    while others.join_next().await.is_some() {}
    result.map(|()| key)
}

/// The next `n` files PostgreSQL has marked ready after `path`, oldest first (history
/// files, which a promotion needs first, before segments).
fn ready_after(path: &Path, n: u32) -> Vec<PathBuf> {
    if n == 0 {
        return Vec::new();
    }
    let Some(dir) = path.parent() else {
        return Vec::new();
    };
    let me = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let mut ready: Vec<String> = std::fs::read_dir(dir.join("archive_status"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".ready").map(str::to_owned))
        .filter(|name| name != me && WalFile::parse(name).is_ok())
        .collect();
    ready.sort_by_key(|name| (!name.ends_with(".history"), name.clone()));
    ready
        .into_iter()
        .take(usize::try_from(n).unwrap_or(usize::MAX))
        .map(|name| dir.join(name))
        .collect()
}

/// Writes `bytes` as `name` in the spool folder `spool` (0700, files 0600, whole or not at
/// all). Best effort for its callers: a file missing from the spool is simply done again.
fn spool_write(spool: &Path, name: &str, bytes: &[u8]) -> Result<(), crate::layout::WriteError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(spool)
        .map_err(|source| crate::layout::WriteError {
            path: spool.to_owned(),
            source,
        })?;
    crate::layout::write_if_changed(&spool.join(name), bytes, 0o600).map(drop)
}

/// Stores the file at `path` under `key`, compressed, and succeeds once the store holds
/// exactly those bytes (already there with them counts; with other bytes is an error).
async fn archive_one(store: &Store, key: &str, path: &Path, compression: Compression) -> Result<(), Error> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let raw = std::fs::read(path).map_err(|e| Error::Read(path.to_owned(), e))?;
    let body = compress(name, raw, compression)?;
    let attempt = || async {
        if let Some(existing) = store.get(key).await? {
            return if existing == body {
                Ok(())
            } else {
                Err(Error::Different { key: key.to_owned() })
            };
        }
        store.put(key, body.clone()).await.map_err(Error::from)
    };
    attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_times(3),
        )
        .when(|e| matches!(e, Error::Store(_)))
        .await
}

/// Where segments fetched ahead of PostgreSQL's asking wait, beside the settings.
pub const RESTORE_SPOOL: &str = "wal-restore-spool";

/// Restores WAL file `name` from the store to `dest` (relative to the data directory,
/// PostgreSQL's `%p`): whatever compression barman or we gave it, written whole (a temporary
/// file, then a rename). `Ok(false)` when the store does not have it. With `wal.maxParallel`
/// above 1 and the segment size known (recovery), the segments after it are fetched at the
/// same time into the spool, where PostgreSQL's next calls find them.
pub async fn restore(settings_file: &Path, name: &str, dest: &Path) -> Result<bool, Error> {
    let settings = read_settings(settings_file)?;
    let spool = settings_file.with_file_name(RESTORE_SPOOL);
    let spooled = spool.join(name);
    if let Ok(bytes) = std::fs::read(&spooled) {
        crate::layout::write_if_changed(dest, &bytes, 0o600).map_err(|e| Error::Write(dest.to_owned(), e.source))?;
        let _ = std::fs::remove_file(&spooled);
        return Ok(true);
    }
    let wal = WalFile::parse(name)?;
    let location = settings.location()?;
    let store = store(&settings, &location.bucket)?;
    let mut ahead = tokio::task::JoinSet::new();
    if let (WalFile::Segment(_), Some(size), Some(parallel)) = (&wal, settings.segment_size, settings.max_parallel) {
        let mut next = name.to_owned();
        for _ in 1..parallel {
            let Some(following) = cnpg_backup::next_segment(&next, size) else {
                break;
            };
            next = following.clone();
            let (store, location, spool) = (store.clone(), location.clone(), spool.clone());
            ahead.spawn(async move {
                let fetched = async {
                    let wal = WalFile::parse(&following)?;
                    fetch(&store, &location, &wal).await
                }
                .await;
                match fetched {
                    Ok(Some(bytes)) => {
                        if spool_write(&spool, &following, &bytes).is_ok() {
                            tracing::info!(name = following, "restored ahead of PostgreSQL (wal.maxParallel)");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(name = following, error = %cnpg_telemetry::error_chain(&e), "fetching ahead failed"),
                }
            });
        }
    }
    let fetched = fetch(&store, &location, &wal).await;
    while ahead.join_next().await.is_some() {}
    let Some(bytes) = fetched? else {
        return Ok(false);
    };
    // Whole or not at all: a temporary file beside it, then a rename.
    crate::layout::write_if_changed(dest, &bytes, 0o600).map_err(|e| Error::Write(dest.to_owned(), e.source))?;
    Ok(true)
}

/// The bytes of `wal` in the store, decompressed; None when it is not there.
async fn fetch(store: &Store, location: &cnpg_backup::Location, wal: &WalFile) -> Result<Option<Vec<u8>>, Error> {
    let plain = location.wal_key(wal, Compression::None);
    let found = store.list(&plain).await?;
    // The object itself, or it with a compression suffix: nothing else that shares the prefix
    // (the backup label of a backup that started in this segment does).
    let Some(object) = found.iter().find(|o| {
        o.key
            .strip_prefix(plain.as_str())
            .is_some_and(|suffix| Compression::from_suffix(suffix).is_some())
    }) else {
        return Ok(None);
    };
    let Some(bytes) = store.get(&object.key).await? else {
        return Ok(None);
    };
    let bytes = match Compression::from_key(&object.key) {
        Compression::None => bytes,
        Compression::Gzip => {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes.as_slice()), &mut out)
                .map_err(|e| Error::Decompress(object.key.clone(), e))?;
            out
        }
        other => {
            return Err(Error::CannotDecompress {
                key: object.key.clone(),
                suffix: other.suffix().to_owned(),
            });
        }
    };
    Ok(Some(bytes))
}
