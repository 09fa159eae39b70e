//! ScheduledBackup schedules, read the way CloudNativePG reads them (robfig/cron v1): six
//! fields with leading seconds (`sec min hour dom month dow`), the weekday optional (five
//! fields), weekdays 0–6 with Sunday 0 or their names, `?` for "any", the descriptors
//! `@yearly` … `@hourly`, and `@every <duration>`.

use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<Cron>),
    /// `@every`: at this interval from the previous run.
    Every(Duration),
}

/// Parses a schedule, or says what is wrong with it.
pub fn parse(expression: &str) -> Result<Schedule, String> {
    let expression = expression.trim();
    if let Some(interval) = expression.strip_prefix("@every ") {
        let duration = parse_duration(interval.trim())?;
        if duration < Duration::from_secs(1) {
            return Err("an @every interval must be at least one second".into());
        }
        return Ok(Schedule::Every(duration));
    }
    let pattern = if expression.starts_with('@') {
        match expression {
            "@yearly" | "@annually" => "0 0 0 1 1 *".to_owned(),
            "@monthly" => "0 0 0 1 * *".to_owned(),
            "@weekly" => "0 0 0 * * 0".to_owned(),
            "@daily" | "@midnight" => "0 0 0 * * *".to_owned(),
            "@hourly" => "0 0 * * * *".to_owned(),
            other => return Err(format!("unknown descriptor `{other}`")),
        }
    } else {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        match fields.len() {
            6 => fields.join(" "),
            // The weekday is optional.
            5 => format!("{} *", fields.join(" ")),
            n => {
                return Err(format!(
                    "expected 6 fields (seconds minutes hours day-of-month month day-of-week), got {n}"
                ));
            }
        }
    };
    // An empty list element (`,`, `1,,2`) would leave a field matching nothing: croner then
    // searches years of minutes for a run that never comes.
    if pattern
        .split_whitespace()
        .any(|field| field.split(',').any(str::is_empty))
    {
        return Err("a field has an empty list element".into());
    }
    if pattern.contains(['L', 'W', '#']) && !pattern.to_ascii_uppercase().contains("WED") {
        return Err("`L`, `W` and `#` are not supported".into());
    }
    // robfig numbers weekdays 0-6; croner would take 7 as Sunday too.
    let dow = pattern.split_whitespace().nth(5).unwrap_or_default();
    if dow.split([',', '-', '/']).any(|t| t == "7") {
        return Err("day-of-week ranges from 0 (Sunday) to 6".into());
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .build();
    let cron = parser.parse(&pattern).map_err(|e| e.to_string())?;
    // A schedule that never fires (30 February) is a mistake to report now, not a backup
    // that silently never happens. Finding that out is a bounded search: milliseconds.
    let reference = jiff::Timestamp::UNIX_EPOCH.to_zoned(jiff::tz::TimeZone::UTC);
    cron.find_next_occurrence(&reference, false)
        .map_err(|_| "the schedule never fires (no date matches every field)".to_owned())?;
    Ok(Schedule::Cron(Box::new(cron)))
}

/// The first run strictly after `after`, as robfig/cron computes it (UTC, whole seconds):
/// `@every` adds its interval (whole seconds) to `after` without its fraction of a second.
/// None if the schedule has no run left.
pub fn next_after(schedule: &Schedule, after: jiff::Timestamp) -> Option<jiff::Timestamp> {
    match schedule {
        Schedule::Every(interval) => {
            let whole = jiff::Timestamp::from_second(after.as_second()).ok()?;
            let step = i64::try_from(interval.as_secs()).ok()?;
            whole.checked_add(jiff::SignedDuration::from_secs(step)).ok()
        }
        Schedule::Cron(cron) => cron
            .find_next_occurrence(&after.to_zoned(jiff::tz::TimeZone::UTC), false)
            .ok()
            .map(|next| next.timestamp()),
    }
}

/// A Go-style duration: `90s`, `1h30m`, `1.5h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration such as 1h30m");
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(bad)?;
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_cloudnativepg_accepts() {
        for ok in [
            "0 0 0 * * *",
            "0 30 2 * * SUN",
            "0 0 0 ? * 1",
            "0 0 0 * * 0",
            "0 0 12 * *",
            "@daily",
            "@every 1h30m",
            "*/30 * * * * *",
            "0 0 0 1 JAN *",
        ] {
            assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok).err());
        }
    }

    #[test]
    fn refuses_what_it_would_misread() {
        for (bad, why) in [
            ("0 0 0 * * 7", "0 (Sunday) to 6"),
            ("0 0 0 * * 5-7", "0 (Sunday) to 6"),
            ("0 0 0 L * *", "not supported"),
            ("@every 500ms", "at least one second"),
            ("@every soon", "not a duration"),
            ("@fortnightly", "unknown descriptor"),
            ("0 0 0 * * * 2026", "got 7"),
            ("0 0 0 *", "got 4"),
            // Found by the cron_schedule fuzz target: an empty seconds list hung the search
            // for the next run (fuzz/regressions/cron_schedule/).
            (", * * * 02 0", "empty list element"),
            ("0 0,,5 * * * *", "empty list element"),
            ("0 0 0 30 2 *", "never fires"),
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    /// CloudNativePG schedules and the next run robfig/cron v1 gives them after Tuesday
    /// 2026-12-01 10:17:42.5 UTC: the table the parser was chosen by.
    #[test]
    fn next_runs_are_robfigs() {
        let from: jiff::Timestamp = "2026-12-01T10:17:42.5Z".parse().unwrap();
        let table = [
            ("0 0 0 * * *", "2026-12-02T00:00:00Z"),
            ("0 30 2 * * SUN", "2026-12-06T02:30:00Z"),
            ("0 0 0 ? * 1", "2026-12-07T00:00:00Z"),
            ("0 0 0 * * 0", "2026-12-06T00:00:00Z"),
            ("0 0 12 * *", "2026-12-01T12:00:00Z"),
            ("@daily", "2026-12-02T00:00:00Z"),
            ("@midnight", "2026-12-02T00:00:00Z"),
            ("@hourly", "2026-12-01T11:00:00Z"),
            ("@weekly", "2026-12-06T00:00:00Z"),
            ("@monthly", "2027-01-01T00:00:00Z"),
            ("@yearly", "2027-01-01T00:00:00Z"),
            ("*/30 * * * * *", "2026-12-01T10:18:00Z"),
            ("0 */15 * * * *", "2026-12-01T10:30:00Z"),
            ("30 5 10 * * *", "2026-12-02T10:05:30Z"),
            ("0 0 22 * * 1-5", "2026-12-01T22:00:00Z"),
            ("0 0 3 * * SAT,SUN", "2026-12-05T03:00:00Z"),
            ("0 0 0 15 * *", "2026-12-15T00:00:00Z"),
            ("0 0 0 31 * *", "2026-12-31T00:00:00Z"),
            ("0 0 0 29 2 *", "2028-02-29T00:00:00Z"),
            ("0 0 */6 * * *", "2026-12-01T12:00:00Z"),
            ("0 0 0 1 */3 *", "2027-01-01T00:00:00Z"),
            ("0 0 0 1 JAN *", "2027-01-01T00:00:00Z"),
            ("0 0 0 * DEC MON", "2026-12-07T00:00:00Z"),
            // Day of month and day of week both restricted: either one matches (robfig, like
            // Vixie cron), so the next Monday comes before the next 1st.
            ("0 0 0 1 * 1", "2026-12-07T00:00:00Z"),
            ("0 17 10 * * *", "2026-12-02T10:17:00Z"),
            ("42 17 10 * * *", "2026-12-02T10:17:42Z"),
            ("@every 1h30m", "2026-12-01T11:47:42Z"),
            ("@every 90s", "2026-12-01T10:19:12Z"),
        ];
        assert!(table.len() >= 20);
        for (expression, expected) in table {
            let schedule = parse(expression).unwrap();
            let next = next_after(&schedule, from).unwrap();
            assert_eq!(next.to_string(), expected, "{expression}");
        }
    }

    #[test]
    fn weekdays_count_from_sunday() {
        let Schedule::Cron(cron) = parse("0 0 0 * * 1").unwrap() else {
            panic!()
        };
        // 2026-11-27 is a Friday: the next run is Monday 2026-11-30.
        let friday = "2026-11-27T12:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::UTC);
        let next = cron.find_next_occurrence(&friday, false).unwrap();
        assert_eq!(next.date().to_string(), "2026-11-30");
    }
}
