//! Which files make one audit log, and what they are called: `PATH` itself, its
//! rotated files (`PATH.YYYY-MM-DD[-HH]` by period, `PATH.YYYY-MM-DD-HH-MM-SS[-N]` by
//! size) and the lock file `.NAME.lock` that guards the choice among them.
//!
//! [`Rotation`] says how a log grows into a set; [`log_set`] lists a set, oldest first;
//! the writer names its next file here ([`rotated_path`], [`unused_rotated_path`]),
//! and the readers, `verify`, `show`, `summary` and `suggest`, find the files here.
//! Both sides use this one naming, so a file one writes is a file the others read.

use super::error::AuditError;
use std::path::{Path, PathBuf};

/// How often the log rotates (`--audit-rotate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Rotation {
    /// One file, `PATH` (the default).
    #[default]
    Never,
    /// `PATH.YYYY-MM-DD-HH`, UTC.
    Hourly,
    /// `PATH.YYYY-MM-DD`, UTC.
    Daily,
    /// `PATH`, moved to `PATH.YYYY-MM-DD-HH-MM-SS[-N]` (UTC) when the next record
    /// would take it past this many bytes.
    Size(u64),
}

impl Rotation {
    /// The accepted values, for messages.
    pub const VALUES: &'static str = "never, hourly, daily, size:SIZE (like size:64MiB)";

    /// The value as written on the command line.
    pub fn as_str(self) -> String {
        match self {
            Rotation::Never => "never".into(),
            Rotation::Hourly => "hourly".into(),
            Rotation::Daily => "daily".into(),
            Rotation::Size(bytes) => format!("size:{bytes}"),
        }
    }

    /// The file-name suffix for a record stamped `ts` (RFC 3339 UTC), if this rotation
    /// uses one.
    pub(super) fn stamp(self, ts: &[u8]) -> Option<String> {
        let date = ts.get(..10).and_then(|d| std::str::from_utf8(d).ok())?;
        match self {
            Rotation::Never | Rotation::Size(_) => None,
            Rotation::Daily => Some(date.to_owned()),
            Rotation::Hourly => {
                let hour = ts.get(11..13).and_then(|h| std::str::from_utf8(h).ok())?;
                Some(format!("{date}-{hour}"))
            }
        }
    }
}

impl std::fmt::Display for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// A rotation name that is not one of [`Rotation::VALUES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rotation `{0}`: write never, hourly, daily, or size:SIZE (like size:64MiB)")]
pub struct UnknownRotation(pub String);

impl std::str::FromStr for Rotation {
    type Err = UnknownRotation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "never" => Ok(Rotation::Never),
            "hourly" => Ok(Rotation::Hourly),
            "daily" => Ok(Rotation::Daily),
            other => match other
                .strip_prefix("size:")
                .map(str::parse::<bytesize::ByteSize>)
            {
                Some(Ok(size)) if size.as_u64() >= 4096 => Ok(Rotation::Size(size.as_u64())),
                _ => Err(UnknownRotation(other.to_owned())),
            },
        }
    }
}

/// Whether `suffix` is a stamp some rotation writes: `YYYY-MM-DD[-HH]`, or, for a
/// size bound, `YYYY-MM-DD-HH-MM-SS` with an optional `-N`.
pub(super) fn is_stamp(suffix: &str) -> bool {
    if suffix.len() > 19
        && suffix.is_char_boundary(19)
        && is_time_stamp(&suffix[..19])
        && (suffix.len() == 19
            || suffix[19..].strip_prefix('-').is_some_and(|n| {
                !n.is_empty() && n.len() <= 6 && n.bytes().all(|b| b.is_ascii_digit())
            }))
    {
        return true;
    }
    is_time_stamp(suffix) || is_hour_stamp(suffix)
}

fn stamp_shape(s: &str, pattern: &str) -> bool {
    s.len() == pattern.len()
        && s.bytes().zip(pattern.bytes()).all(|(c, p)| {
            if p == b'9' {
                c.is_ascii_digit()
            } else {
                c == p
            }
        })
}

pub(super) fn is_time_stamp(s: &str) -> bool {
    stamp_shape(s, "9999-99-99-99-99-99")
}

/// `YYYY-MM-DD[-HH]`.
fn is_hour_stamp(suffix: &str) -> bool {
    stamp_shape(suffix, "9999-99-99") || stamp_shape(suffix, "9999-99-99-99")
}

/// A log file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read audit log `{path}`: {source}")]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// The rotated files of the log at `base` (oldest first), then `base` itself, those
/// that exist.
///
/// # Errors
///
/// [`ReadError`] when the folder cannot be listed.
pub fn log_set(base: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let error = |source| ReadError {
        path: base.to_path_buf(),
        source,
    };
    let Some(name) = base.file_name().and_then(|n| n.to_str()) else {
        return Ok(vec![base.to_path_buf()]);
    };
    let folder = match base.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut rotated: Vec<(String, PathBuf)> = match std::fs::read_dir(&folder) {
        Ok(entries) => entries
            .filter_map(|e| {
                let e = e.ok()?;
                let file = e.file_name().into_string().ok()?;
                let stamp = file.strip_prefix(name)?.strip_prefix('.')?;
                is_stamp(stamp).then(|| (stamp.to_owned(), e.path()))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(error(e)),
    };
    // By the numbers in the stamp: `2026-01-02` before `2026-01-02-05` (its hourly
    // files), `...-13` before `...-13-2` before `...-13-10` (size rotation): oldest
    // first.
    let numbers =
        |stamp: &str| -> Vec<u64> { stamp.split('-').map(|n| n.parse().unwrap_or(0)).collect() };
    rotated.sort_by_cached_key(|(stamp, _)| numbers(stamp));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if base.exists() {
        files.push(base.to_path_buf());
    }
    Ok(files)
}

/// `.NAME.lock` next to `path`.
pub(super) fn lock_path_for(path: &Path) -> Result<PathBuf, AuditError> {
    let name = path
        .file_name()
        .ok_or_else(|| AuditError::NotAFile { path: path.into() })?;
    let mut lock_name = std::ffi::OsString::from(".");
    lock_name.push(name);
    lock_name.push(".lock");
    Ok(path.with_file_name(lock_name))
}

/// `PATH.STAMP`.
pub(super) fn rotated_path(base: &Path, stamp: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(".");
    name.push(stamp);
    PathBuf::from(name)
}

/// `PATH.YYYY-MM-DD-HH-MM-SS` for the record stamped `ts`, or, when a file moved
/// aside earlier sorts at or after that (the same second, or a clock that went back),
/// that file's stamp with the next `-N`: a new file always sorts last, so retention
/// never takes it for an old one.
pub(super) fn unused_rotated_path(base: &Path, ts: &[u8]) -> PathBuf {
    let ts = String::from_utf8_lossy(ts);
    let ours: String = ts
        .chars()
        .take(19)
        .map(|c| if c.is_ascii_digit() { c } else { '-' })
        .collect();
    let ours = if is_time_stamp(&ours) {
        ours
    } else {
        "0000-00-00-00-00-00".to_owned()
    };
    let key =
        |stamp: &str| -> Vec<u64> { stamp.split('-').map(|n| n.parse().unwrap_or(0)).collect() };
    let newest = log_set(base)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let stamp = name
                .strip_prefix(base.file_name()?.to_str()?)?
                .strip_prefix('.')?;
            stamp
                .get(..19)
                .is_some_and(is_time_stamp)
                .then(|| stamp.to_owned())
        })
        .max_by_key(|stamp| key(stamp));
    let stamp = match newest {
        Some(newest) if key(&newest) >= key(&ours) => {
            let n = newest
                .get(20..)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            format!("{}-{}", newest.get(..19).unwrap_or(&ours), n + 1)
        }
        _ => ours,
    };
    rotated_path(base, &stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_names_and_values() {
        let ts = b"2024-03-05T07:08:09.123Z";
        assert_eq!(Rotation::Hourly.stamp(ts).as_deref(), Some("2024-03-05-07"));
        assert_eq!(Rotation::Daily.stamp(ts).as_deref(), Some("2024-03-05"));
        assert_eq!(Rotation::Never.stamp(ts), None);
        assert_eq!("hourly".parse::<Rotation>(), Ok(Rotation::Hourly));
        assert_eq!(
            "weekly".parse::<Rotation>().unwrap_err().to_string(),
            "unknown rotation `weekly`: write never, hourly, daily, or size:SIZE (like size:64MiB)"
        );
        assert_eq!(
            "size:64MiB".parse::<Rotation>(),
            Ok(Rotation::Size(64 * 1024 * 1024))
        );
        assert!(
            "size:12".parse::<Rotation>().is_err(),
            "too small to hold a record"
        );
        assert!(is_stamp("2024-03-05") && is_stamp("2024-03-05-07"));
        assert!(is_stamp("2024-03-05-07-08-09") && is_stamp("2024-03-05-07-08-09-12"));
        assert!(!is_stamp("2024-03-05.gz") && !is_stamp("lock"));
        assert!(!is_stamp("2024-03-05-07-08-09-x") && !is_stamp("2024-03-05-07-08"));
    }

    #[test]
    fn a_log_set_is_its_rotated_files_oldest_first_then_itself() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("audit.jsonl");
        for name in [
            "audit.jsonl.2026-12-02",
            "audit.jsonl.2026-12-01",
            "audit.jsonl.2026-12-01-05",
            "audit.jsonl.bak",
            "audit.jsonl.2026-12-01-05-10-11-10",
            "audit.jsonl.2026-12-01-05-10-11-2",
            "audit.jsonl.2026-12-01-05-10-11",
            "audit.jsonl",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let names: Vec<String> = log_set(&base)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "audit.jsonl.2026-12-01",
                "audit.jsonl.2026-12-01-05",
                "audit.jsonl.2026-12-01-05-10-11",
                "audit.jsonl.2026-12-01-05-10-11-2",
                "audit.jsonl.2026-12-01-05-10-11-10",
                "audit.jsonl.2026-12-02",
                "audit.jsonl"
            ]
        );
    }
}
