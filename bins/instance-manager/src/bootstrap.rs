//! Installing the instance manager into the pod's shared volume.

use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Owner rwx, group rx: the postgres container (same uid/gid) runs it, nobody else.
const MODE: u32 = 0o750;

/// Installing the binary failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to install into {}: name the file to write, not a directory", .0.display())]
    TargetIsDirectory(PathBuf),
    #[error("failed to read {}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("failed to write {}", .path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// Copies `source` to `target` with mode 0750 and returns the bytes copied.
///
/// The copy goes to a temporary file beside `target`, is flushed to disk and renamed over
/// `target`, so a container that starts while we copy never executes half a binary.
pub fn install(source: &Path, target: &Path) -> Result<u64, Error> {
    if target.is_dir() {
        return Err(Error::TargetIsDirectory(target.to_owned()));
    }
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Write { path, source }
    };
    let mut input = File::open(source).map_err(|source_err| Error::Read {
        path: source.to_owned(),
        source: source_err,
    })?;
    let temp = temp_path(target);
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(&temp)
        .map_err(write_err(&temp))?;
    let result = (|| {
        let bytes = io::copy(&mut input, &mut output)?;
        // The creation mode was filtered by the umask; set the exact mode on the open file.
        output.set_permissions(Permissions::from_mode(MODE))?;
        output.sync_all()?;
        std::fs::rename(&temp, target)?;
        Ok(bytes)
    })();
    if result.is_err() {
        // Best effort: the error that matters is the one we return.
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(write_err(target))
}

fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_bytes_with_mode_0750_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("src-bin");
        std::fs::write(&source, b"\x7fELF not really").unwrap();
        let target = dir.path().join("manager");
        std::fs::write(&target, b"an older manager").unwrap();

        let bytes = install(&source, &target).unwrap();

        assert_eq!(bytes, 15);
        assert_eq!(std::fs::read(&target).unwrap(), b"\x7fELF not really");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o750);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "only the source and the target remain: {names:?}");
    }

    #[test]
    fn a_directory_target_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = install(Path::new("/proc/self/exe"), dir.path()).unwrap_err();
        assert!(matches!(err, Error::TargetIsDirectory(_)));
        assert!(err.to_string().contains(&dir.path().display().to_string()));
    }

    #[test]
    fn a_missing_source_names_the_file_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("manager");
        let err = install(&dir.path().join("absent"), &target).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
        assert!(!target.exists());
    }
}
