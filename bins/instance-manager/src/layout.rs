//! Where an instance keeps its files, and how they are written: whole (temporary file, then
//! rename), with their final mode from creation, and only when the content changed, so
//! PostgreSQL never reads half a file and an unchanged Cluster causes no reload.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use cnpg_postgres::paths::Paths;

/// The instance's directories (CloudNativePG's layout by default).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Layout {
    /// The data directory.
    #[arg(long, env = "PGDATA", default_value = cnpg_postgres::paths::PGDATA)]
    pub pg_data: PathBuf,
    /// The scratch volume shared with the init container: certificates, sockets, logs.
    #[arg(long, default_value = "/controller")]
    pub controller_dir: PathBuf,
    /// Where `postgres`, `initdb`, `pg_basebackup` and `pg_rewind` are; found on PATH if unset.
    #[arg(long, env = "PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
}

/// A file could not be written or a directory created.
#[derive(Debug, thiserror::Error)]
#[error("failed to write {}", .path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl Layout {
    pub fn certificates(&self) -> PathBuf {
        self.controller_dir.join("certificates")
    }

    pub fn sockets(&self) -> PathBuf {
        self.controller_dir.join("run")
    }

    pub fn logs(&self) -> PathBuf {
        self.controller_dir.join("log")
    }

    pub fn tmp(&self) -> PathBuf {
        self.controller_dir.join("tmp")
    }

    /// The paths configuration files refer to (listening on every address).
    pub fn paths(&self) -> Paths {
        Paths {
            manager: self.controller_dir.join("manager"),
            certificates: self.certificates(),
            sockets: self.sockets(),
            logs: self.logs(),
            listen_addresses: "*".into(),
        }
    }

    /// Creates the scratch directories, private to the instance's user.
    pub fn create_dirs(&self) -> Result<(), WriteError> {
        for dir in [self.certificates(), self.sockets(), self.logs(), self.tmp()] {
            match DirBuilder::new().recursive(true).mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(source) => return Err(WriteError { path: dir, source }),
            }
        }
        Ok(())
    }

    /// A PostgreSQL program: from `--pg-bin-dir`, else the first on PATH.
    pub fn program(&self, name: &str) -> PathBuf {
        if let Some(dir) = &self.pg_bin_dir {
            return dir.join(name);
        }
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
            .unwrap_or_else(|| PathBuf::from(name))
    }
}

/// Writes `contents` to `path` with `mode` unless it already holds exactly that; true when it
/// wrote.
pub fn write_if_changed(path: &Path, contents: &[u8], mode: u32) -> Result<bool, WriteError> {
    let err = |source| WriteError {
        path: path.to_owned(),
        source,
    };
    if let (Ok(current), Ok(meta)) = (std::fs::read(path), std::fs::metadata(path))
        && current == contents
        && meta.permissions().mode() & 0o7777 == mode
    {
        return Ok(false);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.new-{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&temp)?;
        // The umask filtered the creation mode; set the exact one on the open file.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_once_with_the_mode_and_reports_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        assert!(write_if_changed(&path, b"key", 0o600).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!write_if_changed(&path, b"key", 0o600).unwrap());
        assert!(write_if_changed(&path, b"new key", 0o600).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"new key");
        assert!(
            write_if_changed(&path, b"new key", 0o644).unwrap(),
            "a mode change is a change"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }
}
