//! Why the audit log could not do its job.
//!
//! Every variant maps to exit code 74 (`CLI.md`): when warden cannot record what it
//! does, it does not run plugins.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// An audit log failure: what happened, to which file, what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The log (or its directory, or its lock file) cannot be opened or created.
    #[error(
        "cannot open the audit log `{}`: {source}; choose a writable file with `--audit-log` or `WARDEN_AUDIT_LOG`",
        .path.display()
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The path exists but is not a regular file (a directory, a FIFO, a device).
    #[error(
        "the audit log `{}` is not a regular file; choose a file with `--audit-log`",
        .path.display()
    )]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// No audit log path was given and none of the variables that place the default
    /// one is set.
    #[error("no audit log path: pass --audit-log, or set WARDEN_AUDIT_LOG, XDG_STATE_HOME or HOME")]
    NoPath,
    /// The path is a symlink, which warden does not follow: whoever can write the
    /// folder that holds it could point it at a file of their choosing.
    #[error(
        "the audit log `{}` is a symlink, which warden does not follow (it leads to `{}`); name the real file with `--audit-log`",
        .path.display(), .target.display()
    )]
    Symlink {
        /// The path.
        path: PathBuf,
        /// Where the link leads.
        target: PathBuf,
    },
    /// The file cannot be locked, so concurrent writers could break the chain.
    #[error(
        "cannot lock the audit log `{}`: {source}; keep the log on a local file system that supports `flock`",
        .path.display()
    )]
    Lock {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The file's last line is neither an audit record nor a torn one.
    #[error(
        "`{}` is not a warden audit log: {reason}; run `warden audit verify` on it, or choose another file",
        .path.display()
    )]
    NotAnAuditLog {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// Reading the chain head or appending a record failed.
    #[error(
        "cannot write to the audit log `{}`: {source}; the record was not appended, so warden stops",
        .path.display()
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The writer did not confirm the records in time (another process may hold the
    /// lock, or the disk hangs).
    #[error(
        "the audit log `{}` did not confirm its records within {} s (another process may hold its lock); warden stops because it cannot record what it does",
        .path.display(), .waited.as_secs()
    )]
    Timeout {
        /// The file.
        path: PathBuf,
        /// How long warden waited.
        waited: Duration,
    },
    /// The background writer is gone.
    #[error("the audit writer of `{}` stopped; records can no longer be written", .path.display())]
    Stopped {
        /// The file.
        path: PathBuf,
    },
    /// The `tracing` configuration filtered the audit events out. No longer returned:
    /// records go to the writer directly, and no `tracing` configuration can filter
    /// them out (the variant stays for callers that match on it).
    #[error(
        "audit records were filtered out by the tracing configuration (events with target `warden::audit` at INFO must stay enabled); warden refuses to run without its audit log"
    )]
    Filtered,
    /// No random run id could be drawn.
    #[error("cannot draw a random run id from the operating system: {message}")]
    Random {
        /// The error.
        message: String,
    },
    /// A record's fields could not be serialized.
    #[error("cannot serialize the `{event}` record: {message}")]
    Record {
        /// The event.
        event: &'static str,
        /// serde's message.
        message: String,
    },
    /// A decision passed to `grant`/`deny` tried to set a field the log reserves.
    #[error("the `{event}` record cannot take a field named `{field}`: the log sets it itself")]
    ReservedField {
        /// The event.
        event: &'static str,
        /// The offending field.
        field: String,
    },
}

impl AuditError {
    /// The exit code ([`crate::exit`]): always [`crate::exit::AUDIT`].
    pub fn exit_code(&self) -> u8 {
        crate::exit::AUDIT
    }

    pub(crate) fn open(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AuditError::Open {
            path: path.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn lock(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AuditError::Lock {
            path: path.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AuditError::Write {
            path: path.into(),
            source: Arc::new(source),
        }
    }
}
