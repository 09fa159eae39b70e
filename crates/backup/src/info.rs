//! `backup.info`: barman's description of one base backup, a `key=value` line per field,
//! sorted by key, `None` for an empty one, Python literals for the few fields barman reads
//! with `ast.literal_eval` (`backup_label`, `copy_stats`, `included_files`, `tablespaces`).
//! We write what barman's loader reads, and read what barman writes.

use std::collections::BTreeMap;

/// The fields of one `backup.info`, by key; a value of None is written `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupInfo {
    fields: BTreeMap<String, Option<String>>,
}

/// A line that is not `key=value`, or a Python string literal we cannot read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("backup.info line {line}: {problem}")]
pub struct Error {
    pub line: usize,
    pub problem: String,
}

/// A time as barman writes it in `backup.info` (`2026-12-01 15:41:23.934446+00:00`) or a user
/// in a recovery target (RFC 3339, or an offset of hours alone: `+00`).
pub fn parse_time(text: &str) -> Option<jiff::Timestamp> {
    let text = text.trim().replacen(' ', "T", 1);
    let with_minutes = |t: &str| {
        let (head, sign) = t.rfind(['+', '-']).map(|i| t.split_at(i))?;
        (sign.len() == 3).then(|| format!("{head}{sign}:00"))
    };
    text.parse()
        .ok()
        .or_else(|| with_minutes(&text).and_then(|t| t.parse().ok()))
}

/// `text` as a Python string literal, the way `repr()` writes one: single quotes unless the
/// text holds one and no double quote, `\\`, `\n`, `\r`, `\t` and other control characters
/// escaped.
pub fn python_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7F => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Reads a Python string literal as `repr()` writes it.
pub fn python_unrepr(literal: &str) -> Result<String, String> {
    let mut chars = literal.chars();
    let quote = chars
        .next()
        .filter(|q| *q == '\'' || *q == '"')
        .ok_or("not a quoted string")?;
    let mut out = String::new();
    loop {
        match chars.next().ok_or("an unterminated string")? {
            '\\' => match chars.next().ok_or("a dangling backslash")? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '\\' => out.push('\\'),
                '\'' => out.push('\''),
                '"' => out.push('"'),
                'x' => {
                    let hex: String = chars.by_ref().take(2).collect();
                    let code = u32::from_str_radix(&hex, 16).map_err(|_| format!("bad escape \\x{hex}"))?;
                    out.push(char::from_u32(code).ok_or("bad escape")?);
                }
                other => return Err(format!("unsupported escape \\{other}")),
            },
            c if c == quote => break,
            c => out.push(c),
        }
    }
    if chars.next().is_some() {
        return Err("text after the closing quote".into());
    }
    Ok(out)
}

impl BackupInfo {
    /// Parses a `backup.info` as barman's loader does: blank and `#` lines skipped, each other
    /// line split at its first `=`, both sides trimmed, `None` an empty value.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut fields = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once('=').ok_or_else(|| Error {
                line: i + 1,
                problem: "not key=value".into(),
            })?;
            let value = value.trim();
            fields.insert(key.trim().to_owned(), (value != "None").then(|| value.to_owned()));
        }
        Ok(Self { fields })
    }

    /// The raw value of `key` (Python literals still quoted).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(|v| v.as_deref())
    }

    /// A field read with `ast.literal_eval` as a string (`backup_label`).
    pub fn get_string(&self, key: &str) -> Result<Option<String>, String> {
        self.get(key).map(python_unrepr).transpose()
    }

    /// Sets `key` to `value` as written (None: `None`).
    pub fn set(&mut self, key: &str, value: Option<String>) {
        self.fields.insert(key.to_owned(), value);
    }

    /// Sets a field barman reads with `ast.literal_eval` to a string.
    pub fn set_string(&mut self, key: &str, value: &str) {
        self.set(key, Some(python_repr(value)));
    }

    /// The file, fields sorted by key as barman writes them.
    pub fn render(&self) -> String {
        self.fields
            .iter()
            .map(|(k, v)| format!("{k}={}\n", v.as_deref().unwrap_or("None")))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What barman-cloud-backup 3.4 wrote for a PostgreSQL 15 server (paths as in a pod).
    pub(crate) const BARMAN_WROTE: &str = "backup_label='START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\\nCHECKPOINT LOCATION: 0/2000060\\nBACKUP METHOD: streamed\\nBACKUP FROM: primary\\nSTART TIME: 2026-12-01 15:41:24 UTC\\nLABEL: Barman backup cloud 20261201T154123\\nSTART TIMELINE: 1\\n'
begin_offset=40
begin_time=2026-12-01 15:41:23.934446+00:00
begin_wal=000000010000000000000002
begin_xlog=0/2000028
compression=None
config_file=/var/lib/postgresql/data/pgdata/postgresql.conf
copy_stats={'total_time': 3.159862, 'number_of_workers': 2}
deduplicated_size=None
end_offset=256
end_time=2026-12-01 15:41:26.769983+00:00
end_wal=000000010000000000000002
end_xlog=0/2000100
error=None
hba_file=/var/lib/postgresql/data/pgdata/pg_hba.conf
ident_file=/var/lib/postgresql/data/pgdata/pg_ident.conf
included_files=None
mode=None
pgdata=/var/lib/postgresql/data/pgdata
server_name=cloud
size=None
status=DONE
systemid=7714361168085293368
tablespaces=None
timeline=1
version=150018
xlog_segment_size=16777216
";

    #[test]
    fn reads_what_barman_wrote_and_writes_it_back_the_same() {
        let info = BackupInfo::parse(BARMAN_WROTE).unwrap();
        assert_eq!(info.get("begin_wal"), Some("000000010000000000000002"));
        assert_eq!(info.get("size"), None);
        let label = info.get_string("backup_label").unwrap().unwrap();
        assert!(label.starts_with("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT"));
        assert_eq!(info.render(), BARMAN_WROTE, "same fields, same order, same literals");
    }

    #[test]
    fn reads_times_as_barman_and_users_write_them() {
        let expected: jiff::Timestamp = "2026-12-01T15:41:23.5Z".parse().unwrap();
        for text in [
            "2026-12-01 15:41:23.5+00:00",
            "2026-12-01T15:41:23.5Z",
            "2026-12-01 15:41:23.5+00",
            "2026-12-01 16:41:23.5+01",
        ] {
            assert_eq!(parse_time(text), Some(expected), "{text}");
        }
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn python_literals_round_trip() {
        for text in [
            "plain",
            "it's",
            "say \"hi\"",
            "both ' and \"",
            "tab\tline\nback\\slash",
            "\u{1}é",
        ] {
            let literal = python_repr(text);
            assert_eq!(python_unrepr(&literal).unwrap(), text, "{literal}");
        }
        assert_eq!(python_repr("it's"), "\"it's\"");
        assert_eq!(python_repr("a\nb"), "'a\\nb'");
        for bad in ["unquoted", "'open", "'a'b", "'\\q'"] {
            assert!(python_unrepr(bad).is_err(), "{bad}");
        }
        assert!(BackupInfo::parse("no equals sign\n").is_err());
        // A comment is a comment wherever its `#` starts, so what is rendered reads back the same.
        let commented = BackupInfo::parse("  # status=FAILED\nstatus=DONE\n").unwrap();
        assert_eq!(commented.render(), "status=DONE\n");
    }
}
