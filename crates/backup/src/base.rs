//! Base backups in barman-cloud's layout: the backup's ID, the WAL positions PostgreSQL's
//! backup label and `pg_backup_stop` give, and the `backup.info` that describes a finished
//! backup to barman's tools (`barman-cloud-backup-list`, `-restore`) and to our recovery.
//!
//! A backup is `base/<backupID>/data.tar[.gz]` (the data directory, `backup_label` last) and
//! `base/<backupID>/backup.info`, written after the data, so a listed backup is a whole one.

use crate::info::BackupInfo;

/// `data.tar`, with the suffix of its compression.
pub fn data_name(compression: DataCompression) -> &'static str {
    match compression {
        DataCompression::None => "data.tar",
        DataCompression::Gzip => "data.tar.gz",
    }
}

/// How the data tarball is compressed (`barmanObjectStore.data.compression`), as far as we
/// write it so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataCompression {
    None,
    Gzip,
}

impl DataCompression {
    /// From the API's value; None for one we do not write yet.
    pub fn from_spec(value: Option<&str>) -> Option<Self> {
        match value {
            None => Some(Self::None),
            Some("gzip") => Some(Self::Gzip),
            Some(_) => None,
        }
    }

    /// `compression=` in `backup.info`.
    fn info_value(self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Gzip => Some("gzip".into()),
        }
    }
}

/// A backup ID as barman makes them: the start time, `YYYYMMDDTHHMMSS` in UTC.
pub fn backup_id(start: jiff::Timestamp) -> String {
    start.strftime("%Y%m%dT%H%M%S").to_string()
}

/// Whether `id` is a backup ID we would make (and so safe in a key).
pub fn is_backup_id(id: &str) -> bool {
    id.len() == 15
        && id
            .bytes()
            .enumerate()
            .all(|(i, b)| if i == 8 { b == b'T' } else { b.is_ascii_digit() })
}

/// `X/Y` → the LSN.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    let high = u32::from_str_radix(high, 16).ok()?;
    let low = u32::from_str_radix(low, 16).ok()?;
    Some((u64::from(high) << 32) | u64::from(low))
}

pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// The name of segment number `segment` on `timeline`.
fn segment_file(timeline: u32, segment: u64, segment_size: u64) -> String {
    let per_log = 0x1_0000_0000 / segment_size.max(1);
    format!("{timeline:08X}{:08X}{:08X}", segment / per_log, segment % per_log)
}

/// The WAL segment that holds `lsn` (where a backup begins).
pub fn segment_of(timeline: u32, lsn: u64, segment_size: u64) -> String {
    segment_file(timeline, lsn / segment_size.max(1), segment_size)
}

/// The segment that holds the byte before `lsn` (where a backup ends: an end exactly on a
/// segment boundary needs only the segment before it, as `pg_walfile_name` says).
pub fn segment_before(timeline: u32, lsn: u64, segment_size: u64) -> String {
    segment_file(timeline, lsn.saturating_sub(1) / segment_size.max(1), segment_size)
}

/// What a backup label says of where the backup starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub start_lsn: u64,
    pub start_wal: String,
    pub timeline: u32,
}

/// Reads the `START WAL LOCATION` and `START TIMELINE` lines of a `backup_label`.
pub fn parse_label(text: &str) -> Result<Label, String> {
    let line = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .ok_or_else(|| format!("the backup label has no {name} line"))
    };
    // START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
    let location = line("START WAL LOCATION:")?;
    let (lsn, file) = location
        .split_once(" (file ")
        .ok_or_else(|| format!("START WAL LOCATION `{location}` is not `LSN (file NAME)`"))?;
    let start_lsn = parse_lsn(lsn).ok_or_else(|| format!("`{lsn}` is not an LSN"))?;
    let start_wal = file.trim_end_matches(')').to_owned();
    let timeline = line("START TIMELINE:")?;
    let timeline = timeline
        .parse()
        .map_err(|_| format!("START TIMELINE `{timeline}` is not a number"))?;
    if crate::WalFile::parse(&start_wal) != Ok(crate::WalFile::Segment(start_wal.clone())) {
        return Err(format!("`{start_wal}` is not a WAL segment name"));
    }
    Ok(Label {
        start_lsn,
        start_wal,
        timeline,
    })
}

/// What the server said about itself when the backup started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `server_version_num`.
    pub version: u32,
    pub system_id: String,
    pub segment_size: u64,
    pub pgdata: String,
    pub config_file: String,
    pub hba_file: String,
    pub ident_file: String,
}

/// A base backup that finished: everything its `backup.info` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub server: Server,
    pub label_file: String,
    pub label: Label,
    pub end_lsn: u64,
    pub begin_time: jiff::Timestamp,
    pub end_time: jiff::Timestamp,
    pub compression: DataCompression,
    /// Bytes of the data directory as stored before compression.
    pub size: u64,
}

/// A time as Python's `str(datetime)` writes an aware UTC one (how barman writes them).
fn python_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string()
}

impl Finished {
    pub fn end_wal(&self) -> String {
        segment_before(self.label.timeline, self.end_lsn, self.server.segment_size)
    }

    /// The `backup.info` barman-cloud-backup would write for it (status DONE).
    pub fn info(&self) -> BackupInfo {
        let s = &self.server;
        let offset = |lsn: u64| Some((lsn % s.segment_size.max(1)).to_string());
        let mut info = BackupInfo::default();
        info.set_string("backup_label", &self.label_file);
        info.set("begin_offset", offset(self.label.start_lsn));
        info.set("begin_time", Some(python_time(self.begin_time)));
        info.set("begin_wal", Some(self.label.start_wal.clone()));
        info.set("begin_xlog", Some(format_lsn(self.label.start_lsn)));
        info.set("compression", self.compression.info_value());
        info.set("config_file", Some(s.config_file.clone()));
        info.set("copy_stats", None);
        info.set("deduplicated_size", None);
        info.set("end_offset", offset(self.end_lsn));
        info.set("end_time", Some(python_time(self.end_time)));
        info.set("end_wal", Some(self.end_wal()));
        info.set("end_xlog", Some(format_lsn(self.end_lsn)));
        info.set("error", None);
        info.set("hba_file", Some(s.hba_file.clone()));
        info.set("ident_file", Some(s.ident_file.clone()));
        info.set("included_files", None);
        info.set("mode", None);
        info.set("pgdata", Some(s.pgdata.clone()));
        // barman-cloud-backup names every server `cloud` here; the real name is in the path.
        info.set("server_name", Some("cloud".into()));
        info.set("size", Some(self.size.to_string()));
        info.set("status", Some("DONE".into()));
        info.set("systemid", Some(s.system_id.clone()));
        info.set("tablespaces", None);
        info.set("timeline", Some(self.label.timeline.to_string()));
        info.set("version", Some(s.version.to_string()));
        info.set("xlog_segment_size", Some(s.segment_size.to_string()));
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABEL: &str = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-01 15:41:24 UTC\nLABEL: Barman backup cloud 20261201T154123\nSTART TIMELINE: 1\n";

    #[test]
    fn wal_positions_as_postgresql_names_them() {
        let mib16 = 16 * 1024 * 1024;
        assert_eq!(parse_lsn("0/2000028"), Some(0x200_0028));
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        for bad in ["", "0", "x/1", "0/100000000", "1/2/3"] {
            assert_eq!(parse_lsn(bad), None, "{bad}");
        }
        // pg_walfile_name('16/B374D848') on timeline 1, 16 MiB segments.
        assert_eq!(segment_of(1, 0x16_B374_D848, mib16), "0000000100000016000000B3");
        // An end on a boundary belongs to the segment before it; a begin to the one it opens.
        assert_eq!(segment_of(2, 0x300_0000, mib16), "000000020000000000000003");
        assert_eq!(segment_before(2, 0x300_0000, mib16), "000000020000000000000002");
        assert_eq!(segment_before(2, 0x300_0001, mib16), "000000020000000000000003");
        // 1 GiB segments: four per log file.
        assert_eq!(segment_of(1, 0x1_C000_0000, 1 << 30), "000000010000000100000003");
    }

    #[test]
    fn reads_the_start_of_a_backup_label_and_refuses_a_broken_one() {
        let label = parse_label(LABEL).unwrap();
        assert_eq!(
            label,
            Label {
                start_lsn: 0x200_0028,
                start_wal: "000000010000000000000002".into(),
                timeline: 1
            }
        );
        for bad in [
            "",
            "START WAL LOCATION: 0/2000028\nSTART TIMELINE: 1\n",
            "START WAL LOCATION: 0/2000028 (file ../../etc)\nSTART TIMELINE: 1\n",
            "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIMELINE: one\n",
        ] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backup_info_says_what_barman_cloud_backup_says() {
        let begin: jiff::Timestamp = "2026-12-01T15:41:23.934446Z".parse().unwrap();
        let end: jiff::Timestamp = "2026-12-01T15:41:26.769983Z".parse().unwrap();
        assert_eq!(backup_id(begin), "20261201T154123");
        assert!(is_backup_id("20261201T154123"));
        for bad in ["", "20261201154123", "2026120XT154123", "../20261201T15"] {
            assert!(!is_backup_id(bad), "{bad}");
        }
        let finished = Finished {
            server: Server {
                version: 150_018,
                system_id: "7714361168085293368".into(),
                segment_size: 16 * 1024 * 1024,
                pgdata: "/var/lib/postgresql/data/pgdata".into(),
                config_file: "/var/lib/postgresql/data/pgdata/postgresql.conf".into(),
                hba_file: "/var/lib/postgresql/data/pgdata/pg_hba.conf".into(),
                ident_file: "/var/lib/postgresql/data/pgdata/pg_ident.conf".into(),
            },
            label_file: LABEL.into(),
            label: parse_label(LABEL).unwrap(),
            end_lsn: 0x200_0100,
            begin_time: begin,
            end_time: end,
            compression: DataCompression::Gzip,
            size: 22_000_000,
        };
        let written = BackupInfo::parse(&finished.info().render()).unwrap();
        // Field by field what barman-cloud-backup 3.4 wrote for the same backup (info.rs).
        let barman = BackupInfo::parse(crate::info::tests::BARMAN_WROTE).unwrap();
        for key in [
            "backup_label",
            "begin_offset",
            "begin_time",
            "begin_wal",
            "begin_xlog",
            "config_file",
            "end_offset",
            "end_time",
            "end_wal",
            "end_xlog",
            "error",
            "hba_file",
            "ident_file",
            "pgdata",
            "server_name",
            "status",
            "systemid",
            "tablespaces",
            "timeline",
            "version",
            "xlog_segment_size",
        ] {
            assert_eq!(written.get(key), barman.get(key), "{key}");
        }
        assert_eq!(written.get("compression"), Some("gzip"));
        assert_eq!(written.get("size"), Some("22000000"));
        assert_eq!(data_name(finished.compression), "data.tar.gz");
        assert_eq!(DataCompression::from_spec(Some("bzip2")), None);
    }
}
