//! The `Release` file of a suite (read from a verified `InRelease`): what the suite is, until
//! when it may be used, and the SHA-256 of every index it lists.

use std::collections::BTreeMap;

use super::Error;
use super::control::paragraphs;

/// An index file named by a Release, with its hash and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    pub sha256: String,
    pub size: u64,
}

/// The fields of a Release we use.
#[derive(Debug, Clone)]
pub struct Release {
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub date: Option<u64>,
    pub valid_until: Option<u64>,
    pub acquire_by_hash: bool,
    /// `No-Support-for-Architecture-all: Packages`: `all` packages are listed in every
    /// architecture's index, so the `binary-all` index must not be read as well.
    pub all_in_arch_indexes: bool,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    pub files: BTreeMap<String, IndexFile>,
}

impl Release {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let paragraphs = paragraphs(text)?;
        let p = paragraphs
            .first()
            .ok_or_else(|| Error::Release("empty Release file".into()))?;
        let words = |name: &str| -> Vec<String> {
            p.get(name)
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        let mut files = BTreeMap::new();
        for line in p
            .get("SHA256")
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let mut parts = line.split_whitespace();
            let (Some(hash), Some(size), Some(path), None) = (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(Error::Release(format!("bad SHA256 line `{line}`")));
            };
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Release(format!("bad SHA256 hash in `{line}`")));
            }
            let size = size
                .parse()
                .map_err(|_| Error::Release(format!("bad size in `{line}`")))?;
            files.insert(
                path.to_owned(),
                IndexFile {
                    sha256: hash.to_ascii_lowercase(),
                    size,
                },
            );
        }
        if files.is_empty() {
            return Err(Error::Release("the Release lists no SHA256 hashes".into()));
        }
        let date = |name: &str| {
            p.get(name)
                .map(|d| parse_date(d).ok_or_else(|| Error::Release(format!("bad {name} `{d}`"))))
                .transpose()
        };
        Ok(Self {
            suite: p.get("Suite").map(str::to_owned),
            codename: p.get("Codename").map(str::to_owned),
            date: date("Date")?,
            valid_until: date("Valid-Until")?,
            acquire_by_hash: p.get("Acquire-By-Hash").is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            all_in_arch_indexes: p.get("No-Support-for-Architecture-all") == Some("Packages"),
            architectures: words("Architectures"),
            components: words("Components"),
            files,
        })
    }
}

/// Parses an RFC 2822 date as Release files write it (`Sat, 11 Jul 2026 10:16:37 UTC`).
pub fn parse_date(text: &str) -> Option<u64> {
    let text = text.split_once(',').map_or(text, |(_, rest)| rest).trim();
    let mut parts = text.split_whitespace();
    let day: u32 = parts.next()?.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| Some(*m) == parts.clone().next())?;
    parts.next();
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|n| n.parse::<u32>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    let offset_secs: i64 = match parts.next().unwrap_or("UTC") {
        "UTC" | "GMT" | "Z" => 0,
        zone => {
            let sign = match zone.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: i64 = zone.get(1..)?.parse().ok()?;
            sign * ((digits / 100) * 3600 + (digits % 100) * 60)
        }
    };
    if day == 0 || day > 31 || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, u32::try_from(month).ok()? + 1, day);
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s) - offset_secs;
    u64::try_from(secs).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates_as_release_files_write_them() {
        assert_eq!(parse_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(parse_date("Sat, 11 Jul 2026 10:16:37 UTC"), Some(1_783_764_997));
        assert_eq!(parse_date("Sat, 29 Feb 2020 12:00:00 +0100"), Some(1_582_974_000));
        assert_eq!(parse_date("someday"), None);
    }

    #[test]
    fn parses_fields_and_hashes() {
        let text = "Suite: stable\nCodename: trixie\nDate: Sat, 21 Nov 2026 09:15:44 UTC\nValid-Until: Sat, 28 Nov 2026 09:15:44 UTC\nAcquire-By-Hash: yes\nArchitectures: amd64 arm64\nComponents: main contrib\nSHA256:\n 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 1234 main/binary-amd64/Packages.xz\n";
        let r = Release::parse(text).unwrap();
        assert_eq!(r.codename.as_deref(), Some("trixie"));
        assert!(r.acquire_by_hash);
        assert_eq!(r.architectures, ["amd64", "arm64"]);
        assert_eq!(r.valid_until.unwrap() - r.date.unwrap(), 7 * 86_400);
        assert_eq!(r.files["main/binary-amd64/Packages.xz"].size, 1234);
    }

    #[test]
    fn a_release_without_hashes_or_with_bad_lines_is_refused() {
        assert!(Release::parse("Suite: x\n").is_err());
        assert!(Release::parse("Suite: x\nSHA256:\n nothex 12 a\n").is_err());
    }
}
