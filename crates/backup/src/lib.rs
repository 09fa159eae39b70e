//! Backups in barman-cloud's object layout, so that CloudNativePG users keep their backups and
//! barman's own tools can read ours. Pure: no client, no runtime.
//!
//! Data flow: a `destinationPath` (`s3://bucket/path`) and a server name give a [`Location`];
//! a file PostgreSQL hands to `archive_command` becomes a [`WalFile`], which has exactly one
//! object key there; base backups live under `base/<backupID>/`.
//!
//! ```text
//! <path>/<server>/wals/<timeline><log>/<segment>[.gz|.bz2|…]   segments, .partial, .backup
//! <path>/<server>/wals/<timeline>.history                       timeline history
//! <path>/<server>/base/<backupID>/backup.info                   base backups
//! <path>/<server>/base/<backupID>/data.tar[.gz|…]
//! ```
//! (Learned by running Debian's `barman-cli-cloud` 3.4 against an S3 server and listing
//! what it wrote.)

pub mod archive;
pub mod base;
pub mod info;
pub mod retention;

use std::fmt;

/// A destination or a file name could not be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("destinationPath `{0}` is not s3://BUCKET[/PATH]")]
    Destination(String),
    #[error("server name `{0}` is empty or holds `/`")]
    ServerName(String),
    #[error("`{0}` is not a WAL segment, partial segment, backup label or timeline history file")]
    WalName(String),
}

/// How a WAL file is compressed in the store, as `barmanObjectStore.wal.compression` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Snappy,
    Lz4,
    Xz,
    Zstd,
}

impl Compression {
    /// The file name suffix barman gives it.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Gzip => ".gz",
            Self::Bzip2 => ".bz2",
            Self::Snappy => ".snappy",
            Self::Lz4 => ".lz4",
            Self::Xz => ".xz",
            Self::Zstd => ".zst",
        }
    }

    /// The compression whose suffix is exactly `suffix` (`""` is none): how to tell a WAL
    /// file's own object from another file that merely starts with its name (the backup
    /// label `<segment>.<offset>.backup.gz` starts with `<segment>`).
    pub fn from_suffix(suffix: &str) -> Option<Self> {
        [
            Self::None,
            Self::Gzip,
            Self::Bzip2,
            Self::Snappy,
            Self::Lz4,
            Self::Xz,
            Self::Zstd,
        ]
        .into_iter()
        .find(|c| c.suffix() == suffix)
    }

    /// The compression a stored object's suffix announces.
    pub fn from_key(key: &str) -> Self {
        [Self::Gzip, Self::Bzip2, Self::Snappy, Self::Lz4, Self::Xz, Self::Zstd]
            .into_iter()
            .find(|c| key.ends_with(c.suffix()))
            .unwrap_or(Self::None)
    }
}

/// A file of `pg_wal` that gets archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalFile {
    /// `TTTTTTTTLLLLLLLLSSSSSSSS`: timeline, log and segment, 8 hex digits each.
    Segment(String),
    /// A segment's last, incomplete copy from an old timeline (`….partial`).
    Partial(String),
    /// The backup label PostgreSQL writes at the end of a base backup (`….XXXXXXXX.backup`).
    BackupLabel(String),
    /// A timeline's history (`TTTTTTTT.history`).
    History(String),
}

fn hex_digits(text: &str, n: usize) -> bool {
    text.len() == n && text.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

impl WalFile {
    /// Reads a file name (not a path); anything else is refused.
    pub fn parse(name: &str) -> Result<Self, Error> {
        let bad = || Error::WalName(name.to_owned());
        if hex_digits(name, 24) {
            return Ok(Self::Segment(name.to_owned()));
        }
        if let Some(segment) = name.strip_suffix(".partial") {
            return hex_digits(segment, 24)
                .then(|| Self::Partial(name.to_owned()))
                .ok_or_else(bad);
        }
        if let Some(label) = name.strip_suffix(".backup") {
            let ok = label
                .split_once('.')
                .is_some_and(|(segment, offset)| hex_digits(segment, 24) && hex_digits(offset, 8));
            return ok.then(|| Self::BackupLabel(name.to_owned())).ok_or_else(bad);
        }
        if let Some(timeline) = name.strip_suffix(".history") {
            return hex_digits(timeline, 8)
                .then(|| Self::History(name.to_owned()))
                .ok_or_else(bad);
        }
        Err(bad())
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Segment(n) | Self::Partial(n) | Self::BackupLabel(n) | Self::History(n) => n,
        }
    }

    /// The folder under `wals/` barman puts it in: the timeline and log of its segment, or
    /// none for a history file.
    fn folder(&self) -> Option<&str> {
        match self {
            Self::History(_) => None,
            other => other.name().get(..16),
        }
    }
}

impl fmt::Display for WalFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The segment after `segment` (`TTTTTTTTLLLLLLLLSSSSSSSS`) on its timeline, for segments
/// of `segment_size` bytes; None for a name that is not a segment's.
pub fn next_segment(segment: &str, segment_size: u64) -> Option<String> {
    if !hex_digits(segment, 24) || segment_size == 0 {
        return None;
    }
    let field = |range: std::ops::Range<usize>| segment.get(range).and_then(|t| u64::from_str_radix(t, 16).ok());
    let (timeline, log, seg) = (field(0..8)?, field(8..16)?, field(16..24)?);
    let per_log = 0x1_0000_0000 / segment_size;
    let (log, seg) = if seg + 1 >= per_log {
        (log + 1, 0)
    } else {
        (log, seg + 1)
    };
    (log <= 0xFFFF_FFFF).then(|| format!("{timeline:08X}{log:08X}{seg:08X}"))
}

/// Where one server's backups and WAL live in a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    /// The path inside the bucket, without leading or trailing `/` (may be empty).
    pub path: String,
    /// `barmanObjectStore.serverName`, the cluster's name by default.
    pub server: String,
}

impl Location {
    /// From `destinationPath` (`s3://bucket[/path]`) and the server name.
    pub fn new(destination: &str, server: &str) -> Result<Self, Error> {
        let bad = || Error::Destination(destination.to_owned());
        let rest = destination.strip_prefix("s3://").ok_or_else(bad)?;
        let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || path.split('/').any(|p| p == ".." || p == ".") {
            return Err(bad());
        }
        if server.is_empty() || server.contains('/') || server == ".." || server == "." {
            return Err(Error::ServerName(server.to_owned()));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            path: path.trim_matches('/').to_owned(),
            server: server.to_owned(),
        })
    }

    /// `<path>/<server>/` (or `<server>/` at the bucket's root).
    pub fn root(&self) -> String {
        if self.path.is_empty() {
            format!("{}/", self.server)
        } else {
            format!("{}/{}/", self.path, self.server)
        }
    }

    /// Where `wal` is stored with `compression`.
    pub fn wal_key(&self, wal: &WalFile, compression: Compression) -> String {
        let folder = wal.folder().map(|f| format!("{f}/")).unwrap_or_default();
        format!("{}wals/{folder}{}{}", self.root(), wal.name(), compression.suffix())
    }

    /// The folder of one base backup.
    pub fn base_backup(&self, backup_id: &str) -> String {
        format!("{}base/{backup_id}/", self.root())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_what_barman_cloud_wrote() {
        // Listed from a bucket barman-cloud-wal-archive 3.4 wrote to, `s3://bkt/p`, server `srv`.
        let location = Location::new("s3://bkt/p", "srv").unwrap();
        let cases = [
            (
                "000000010000000000000001",
                Compression::None,
                "p/srv/wals/0000000100000000/000000010000000000000001",
            ),
            (
                "000000010000000000000001",
                Compression::Bzip2,
                "p/srv/wals/0000000100000000/000000010000000000000001.bz2",
            ),
            (
                "000000010000000000000002.00000028.backup",
                Compression::None,
                "p/srv/wals/0000000100000000/000000010000000000000002.00000028.backup",
            ),
            ("00000002.history", Compression::None, "p/srv/wals/00000002.history"),
            (
                "000000020000000100000003.partial",
                Compression::None,
                "p/srv/wals/0000000200000001/000000020000000100000003.partial",
            ),
        ];
        for (name, compression, key) in cases {
            let wal = WalFile::parse(name).unwrap();
            assert_eq!(location.wal_key(&wal, compression), key);
            assert_eq!(Compression::from_key(key), compression);
        }
        assert_eq!(location.base_backup("20261201T154123"), "p/srv/base/20261201T154123/");
        assert_eq!(Compression::from_suffix(".gz"), Some(Compression::Gzip));
        assert_eq!(Compression::from_suffix(""), Some(Compression::None));
        assert_eq!(Compression::from_suffix(".00000028.backup.gz"), None);
        assert_eq!(Location::new("s3://bkt", "pg").unwrap().root(), "pg/");
        assert_eq!(Location::new("s3://bkt/a/b/", "pg").unwrap().root(), "a/b/pg/");
    }

    #[test]
    fn the_next_segment_rolls_over_into_the_next_log() {
        let mib16 = 16 * 1024 * 1024;
        assert_eq!(
            next_segment("0000000100000000000000FE", mib16).as_deref(),
            Some("0000000100000000000000FF")
        );
        assert_eq!(
            next_segment("0000000100000000000000FF", mib16).as_deref(),
            Some("000000010000000100000000")
        );
        // 1 GiB segments: four per log.
        assert_eq!(
            next_segment("000000020000000500000003", 1 << 30).as_deref(),
            Some("000000020000000600000000")
        );
        assert_eq!(next_segment("00000001.history", mib16), None);
    }

    #[test]
    fn refuses_what_is_not_a_wal_file_or_a_destination() {
        for bad in [
            "",
            "00000001000000000000001",
            "000000010000000000000001x",
            "000000010000000000000001.gz",
            "00000001000000000000000g",
            "000000010000000000000001.backup",
            "0000000A.history.partial",
            "../00000002.history",
            "archive_status",
        ] {
            assert_eq!(WalFile::parse(bad), Err(Error::WalName(bad.to_owned())), "{bad}");
        }
        for bad in ["bkt/p", "s3://", "s3:///p", "s3://b/../x", "gs://b/p"] {
            assert!(matches!(Location::new(bad, "pg"), Err(Error::Destination(_))), "{bad}");
        }
        for bad in ["", "a/b", ".."] {
            assert!(
                matches!(Location::new("s3://b", bad), Err(Error::ServerName(_))),
                "{bad}"
            );
        }
    }
}
