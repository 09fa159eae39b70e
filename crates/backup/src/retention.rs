//! `retentionPolicy` (`30d`, `4w`, `3m`) as barman's recovery window: every point in time
//! within the window must stay recoverable. The backups that ended inside it are kept, and so
//! is the newest one that ended before it (recovering to the window's first moment starts
//! there); older backups are obsolete, and so is the WAL before the oldest backup kept.
//! Timeline history files are never obsolete.

use crate::WalFile;

/// A recovery window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Days(u32),
    Weeks(u32),
    Months(u32),
}

impl Window {
    /// `<n>d`, `<n>w` or `<n>m`, n from 1.
    pub fn parse(policy: &str) -> Result<Self, String> {
        let bad = || format!("retentionPolicy {policy:?} must read like 30d, 4w or 3m");
        let (number, unit) = policy.split_at(policy.len().saturating_sub(1));
        let n: u32 = number.parse().map_err(|_| bad())?;
        if n == 0 || number.starts_with(['0', '+']) {
            return Err(bad());
        }
        match unit {
            "d" => Ok(Self::Days(n)),
            "w" => Ok(Self::Weeks(n)),
            "m" => Ok(Self::Months(n)),
            _ => Err(bad()),
        }
    }

    /// The oldest moment that must stay recoverable at `now` (calendar months, in UTC).
    pub fn start(self, now: jiff::Timestamp) -> Result<jiff::Timestamp, String> {
        let span = match self {
            Self::Days(n) => jiff::Span::new().days(i64::from(n)),
            Self::Weeks(n) => jiff::Span::new().weeks(i64::from(n)),
            Self::Months(n) => jiff::Span::new().months(i64::from(n)),
        };
        now.to_zoned(jiff::tz::TimeZone::UTC)
            .checked_sub(span)
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string())
    }
}

/// A stored backup, as far as retention cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: String,
    pub end_time: jiff::Timestamp,
    pub begin_wal: String,
}

/// What retention removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Backup IDs no point in the window needs.
    pub obsolete: Vec<String>,
    /// WAL before this segment (the oldest kept backup's first) is obsolete.
    pub wal_before: Option<String>,
}

/// The plan for `backups` (any order) at `now`. No backups, nothing obsolete.
pub fn plan(backups: &[Stored], window: Window, now: jiff::Timestamp) -> Result<Plan, String> {
    let start = window.start(now)?;
    let mut sorted: Vec<&Stored> = backups.iter().collect();
    sorted.sort_by(|a, b| (a.end_time, &a.id).cmp(&(b.end_time, &b.id)));
    // The newest backup that ended before the window is where its first moment is recovered
    // from; every backup after it is kept too.
    let first_kept = sorted.iter().rposition(|b| b.end_time < start).unwrap_or(0);
    let Some(oldest_kept) = sorted.get(first_kept) else {
        return Ok(Plan::default());
    };
    Ok(Plan {
        obsolete: sorted
            .get(..first_kept)
            .unwrap_or_default()
            .iter()
            .map(|b| b.id.clone())
            .collect(),
        wal_before: Some(oldest_kept.begin_wal.clone()),
    })
}

/// Whether the WAL file stored as `name` (without its compression suffix) comes before the
/// segment `before`, by position in the WAL stream whatever the timeline; history files never
/// do.
pub fn wal_is_before(name: &str, before: &str) -> bool {
    let position = |n: &str| n.get(8..24).map(str::to_owned);
    match WalFile::parse(name) {
        Ok(WalFile::History(_)) | Err(_) => false,
        Ok(wal) => match (position(wal.name()), position(before)) {
            (Some(mine), Some(limit)) => mine < limit,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn stored(id: &str, end: &str, begin_wal: &str) -> Stored {
        Stored {
            id: id.into(),
            end_time: at(end),
            begin_wal: begin_wal.into(),
        }
    }

    #[test]
    fn windows_read_like_cloudnativepg_and_count_calendar_months() {
        assert_eq!(Window::parse("30d"), Ok(Window::Days(30)));
        assert_eq!(Window::parse("4w"), Ok(Window::Weeks(4)));
        assert_eq!(Window::parse("3m"), Ok(Window::Months(3)));
        for bad in ["", "d", "0d", "07d", "+3d", "3y", "-1d", "3 d"] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
        let now = at("2026-05-31T12:00:00Z");
        assert_eq!(Window::Months(3).start(now).unwrap(), at("2026-02-28T12:00:00Z"));
        assert_eq!(Window::Weeks(1).start(now).unwrap(), at("2026-05-24T12:00:00Z"));
    }

    #[test]
    fn keeps_the_window_and_the_backup_before_it() {
        let now = at("2026-12-01T00:00:00Z");
        let backups = [
            stored("20261001T000000", "2026-10-01T00:10:00Z", "000000010000000000000002"),
            stored("20261025T000000", "2026-10-25T00:10:00Z", "000000010000000000000010"),
            stored("20261115T000000", "2026-11-15T00:10:00Z", "000000020000000000000020"),
            stored("20261028T000000", "2026-10-28T00:10:00Z", "000000010000000000000012"),
        ];
        let plan = plan(&backups, Window::Days(30), now).unwrap();
        // The window starts 2026-11-01: the backup of 10-28 is kept to recover its first
        // moment, so 10-01 and 10-25 are obsolete, with the WAL before 10-28's first segment.
        assert_eq!(plan.obsolete, ["20261001T000000", "20261025T000000"]);
        assert_eq!(plan.wal_before.as_deref(), Some("000000010000000000000012"));
        // All inside the window: nothing obsolete.
        let recent = plan_of(&backups[2..3], now);
        assert!(recent.obsolete.is_empty());
        assert_eq!(plan_of(&[], now), Plan::default());
    }

    fn plan_of(backups: &[Stored], now: jiff::Timestamp) -> Plan {
        plan(backups, Window::Days(30), now).unwrap()
    }

    #[test]
    fn wal_before_a_segment_by_position_history_never() {
        let limit = "000000020000000000000012";
        assert!(wal_is_before("000000010000000000000011", limit));
        assert!(wal_is_before("000000010000000000000003.00000028.backup", limit));
        assert!(wal_is_before("000000010000000000000011.partial", limit));
        assert!(!wal_is_before("000000020000000000000012", limit));
        assert!(!wal_is_before("000000010000000100000000", limit));
        assert!(!wal_is_before("00000001.history", limit));
        assert!(!wal_is_before("not-wal", limit));
    }
}
