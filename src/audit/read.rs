//! Reading audit logs back, for the commands that answer questions from them
//! (`audit show`, `audit summary`, `policy suggest`).
//!
//! [`log_set`] finds a log's rotated files (`PATH.YYYY-MM-DD[-HH]`, oldest first) and
//! the log itself; [`for_each_record`] hands each record to a closure, with its file,
//! line number and raw text (so `show --json` can emit it unchanged, and it still
//! verifies), and fails on the first line that is neither a record nor a torn one, so a
//! file that is not an audit log is never read as an empty one; [`parse_time`] reads
//! `--since`/`--until`.
//!
//! These readers trust nothing in the records: a field that is missing or of another
//! type is treated as absent. Whether the chain is intact is `audit verify`'s
//! question, not theirs.

pub use super::log_set::{ReadError, log_set};
use super::record::{Line, classify};
use std::io::BufRead as _;
use std::path::PathBuf;
use std::time::SystemTime;

/// One record read back.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    /// The file it is in.
    pub file: PathBuf,
    /// Its 1-based line number.
    pub line: usize,
    /// The line as written (without its `\n`).
    pub raw: String,
    /// The line parsed.
    pub value: serde_json::Value,
}

impl ReadRecord {
    /// A string field.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.value.get(key)?.as_str()
    }

    /// `plugin.name`.
    pub fn plugin(&self) -> Option<&str> {
        self.value.get("plugin")?.get("name")?.as_str()
    }

    /// `ts`, parsed.
    pub fn time(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(self.str("ts")?.trim_end_matches('Z')).ok()
    }
}

/// Calls `each` with every record (a JSON object with a string `event`) of `files`, in
/// order. Torn lines (the first bytes of a record, left by a writer that stopped
/// mid-line) are passed over.
///
/// # Errors
///
/// [`ReadError`] when a file cannot be opened or read; a [`ReadError`] whose `source`
/// is of kind [`std::io::ErrorKind::InvalidData`], naming the line, at the first line
/// that is neither a record nor a torn one (the file is not an audit log, or not only
/// one). The records before it have been passed to `each`.
pub fn for_each_record(
    files: &[PathBuf],
    mut each: impl FnMut(ReadRecord),
) -> Result<(), ReadError> {
    for path in files {
        let error = |source| ReadError {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(error)?;
        let reader = std::io::BufReader::new(file);
        for (i, line) in reader.split(b'\n').enumerate() {
            let bytes = line.map_err(error)?;
            let not_a_record = |reason: &str| {
                error(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("line {} is {reason}", i + 1),
                ))
            };
            // Lenient as the readers are: any JSON object with a string `event` is a
            // record; what it lacks is treated as absent.
            let value = match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(value) if value.get("event").is_some_and(serde_json::Value::is_string) => value,
                Ok(_) => {
                    return Err(not_a_record(
                        "JSON but not an audit record (it has no `event` string)",
                    ));
                }
                Err(_) => match classify(&bytes) {
                    Line::Fragment => continue,
                    Line::Foreign(reason) => return Err(not_a_record(reason)),
                    Line::Record(_) => return Err(not_a_record("not a JSON line")),
                },
            };
            let Ok(raw) = String::from_utf8(bytes) else {
                return Err(not_a_record("not UTF-8"));
            };
            each(ReadRecord {
                file: path.clone(),
                line: i + 1,
                raw,
                value,
            });
        }
    }
    Ok(())
}

/// Why a `--since`/`--until` value is not a time ([`parse_time`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// A duration ago that reaches before 1970.
    #[error("`{text}` ago is before the epoch; give a shorter duration or a date")]
    BeforeEpoch {
        /// The value.
        text: String,
    },
    /// None of the forms understood.
    #[error(
        "`{text}` is not a time: write RFC 3339 (`2026-12-01T08:00:00Z`, `2026-12-01T10:00:00+02:00`), a local date or time (`2026-12-01`, `2026-12-01T08:00`), a duration ago (`1h`, `30m`, `7d`), `today` or `yesterday`"
    )]
    NotATime {
        /// The value.
        text: String,
    },
}

/// Reads a time for `--since`/`--until`, relative to `now`:
///
/// - RFC 3339 with an offset: `2026-12-01T08:00:00Z`, `2026-12-01T10:00:00+02:00`;
/// - a date or a date and time without an offset (`2026-12-01`, `2026-12-01T08:00`),
///   `today` and `yesterday` (midnight): in the local time zone (`TZ`, else
///   `/etc/localtime`; UTC when neither names one);
/// - a duration ago: `1h`, `30m`, `2d`; or `now`.
///
/// Parsing and zone arithmetic are jiff's (daylight-saving days included).
///
/// # Errors
///
/// A [`TimeError`] saying what forms are understood.
pub fn parse_time(text: &str, now: SystemTime) -> Result<SystemTime, TimeError> {
    parse_time_in(text, now, &jiff::tz::TimeZone::system())
}

/// [`parse_time`] in the time zone `zone`.
fn parse_time_in(
    text: &str,
    now: SystemTime,
    zone: &jiff::tz::TimeZone,
) -> Result<SystemTime, TimeError> {
    let t = text.trim();
    let not_a_time = || TimeError::NotATime { text: t.into() };
    let midnight = |days_back: i64| -> Result<SystemTime, TimeError> {
        let today = jiff::Timestamp::try_from(now)
            .map_err(|_| not_a_time())?
            .to_zoned_datetime(zone.clone())
            .date();
        let day = today
            .checked_sub(jiff::Span::new().days(days_back))
            .map_err(|_| TimeError::BeforeEpoch { text: t.into() })?;
        start_of(day, zone).ok_or_else(not_a_time)
    };
    match t {
        "today" => return midnight(0),
        "yesterday" => return midnight(1),
        "now" => return Ok(now),
        _ => {}
    }
    if let Ok(ago) = humantime::parse_duration(t) {
        return now
            .checked_sub(ago)
            .ok_or_else(|| TimeError::BeforeEpoch { text: t.into() });
    }
    let at = match t.parse::<jiff::Timestamp>() {
        Ok(at) => at,
        // A date alone parses as its midnight.
        Err(_) => t
            .parse::<jiff::civil::DateTime>()
            .and_then(|local| zone.to_timestamp(local))
            .map_err(|_| not_a_time())?,
    };
    SystemTime::try_from(at).map_err(|_| not_a_time())
}

/// The first instant of `day` in `zone`.
fn start_of(day: jiff::civil::Date, zone: &jiff::tz::TimeZone) -> Option<SystemTime> {
    let zoned = day
        .to_zoned_datetime(zone.clone())
        .ok()?
        .start_of_day()
        .ok()?;
    SystemTime::try_from(zoned.timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_every_form() {
        let now = humantime::parse_rfc3339("2026-12-02T10:30:00Z").unwrap();
        let utc = jiff::tz::TimeZone::UTC;
        let at = |t: &str, zone: &jiff::tz::TimeZone| {
            humantime::format_rfc3339_seconds(parse_time_in(t, now, zone).unwrap()).to_string()
        };
        assert_eq!(at("1h", &utc), "2026-12-02T09:30:00Z");
        assert_eq!(at("now", &utc), "2026-12-02T10:30:00Z");
        assert_eq!(at("today", &utc), "2026-12-02T00:00:00Z");
        assert_eq!(at("yesterday", &utc), "2026-12-01T00:00:00Z");
        assert_eq!(at("2026-11-30", &utc), "2026-11-30T00:00:00Z");
        assert_eq!(at("2026-11-30T08:00:00Z", &utc), "2026-11-30T08:00:00Z");
        // An offset is honoured, whatever the local zone.
        let tokyo = jiff::tz::TimeZone::fixed(jiff::tz::offset(9));
        for zone in [&utc, &tokyo] {
            assert_eq!(
                at("2020-01-01T00:00:00+02:00", zone),
                "2019-12-31T22:00:00Z"
            );
            assert_eq!(
                at("2026-11-30T08:00:00.5-05:30", zone),
                "2026-11-30T13:30:00Z"
            );
        }
        // Dates, times without an offset and relative days are local: at 10:30 UTC it
        // is already 19:30 in Tokyo (UTC+9), whose day began at 15:00 UTC the day before.
        assert_eq!(at("today", &tokyo), "2026-12-01T15:00:00Z");
        assert_eq!(at("yesterday", &tokyo), "2026-11-30T15:00:00Z");
        assert_eq!(at("2026-11-30", &tokyo), "2026-11-29T15:00:00Z");
        assert_eq!(at("2026-11-30T08:00", &tokyo), "2026-11-29T23:00:00Z");
        for bad in ["last tuesday", "2026-13-01", "2026-12-01T25:00:00Z", ""] {
            assert_eq!(
                parse_time_in(bad, now, &utc),
                Err(TimeError::NotATime { text: bad.into() }),
                "{bad}"
            );
        }
    }

    #[test]
    fn torn_lines_are_passed_over_and_foreign_lines_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let record = r#"{"v":1,"ts":"2026-12-02T10:00:00.000Z","event":"run_end"}"#;
        let read = |text: &str| {
            let path = dir.path().join("log.jsonl");
            std::fs::write(&path, text).unwrap();
            let mut lines = Vec::new();
            let result = for_each_record(&[path], |r| lines.push(r.line));
            (lines, result)
        };
        // A torn line, in the middle or last, is what a stopped writer leaves.
        let (lines, result) = read(&format!(
            "{record}\n{}\n{record}\n{}",
            &record[..20],
            &record[..30]
        ));
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(lines, [1, 3]);
        for (text, bad) in [
            ("hello\n".to_owned(), 1),
            ("{\"a\":1}\n".to_owned(), 1),
            (format!("{record}\n[1,2]\n{record}\n"), 2),
            (format!("{record}\n\n"), 2),
        ] {
            let (lines, result) = read(&text);
            let e = result.expect_err(&text);
            assert_eq!(e.source.kind(), std::io::ErrorKind::InvalidData, "{text}");
            assert!(e.to_string().contains(&format!("line {bad} is ")), "{e}");
            assert_eq!(lines.len(), bad - 1, "{text}");
        }
    }
}
