//! The tamper-evident audit log of `AUDIT.md`.
//!
//! - [`record`]: the schema: common fields, events, their fields;
//! - `json`: JSON text that no plugin-controlled string can break or disguise;
//! - [`redact`]: the run's granted values taken out of every string of every record
//!   (the one choke point), and of what `warden run` prints from them;
//! - [`chain`]: `seq` and `prev` (SHA-256 of the previous line), the chain head read
//!   back from a file;
//! - `bounds`: the largest record, what one run may write, the room reserved for a
//!   run's closing records;
//! - `log_set`: which files make one log and their names ([`Rotation`]);
//! - `writer`: lock, read head, append, unlock (one append routine for every record);
//!   rotation;
//! - `reserve`: the room for a run's closing records, reserved past the log's end;
//! - `appender`: the emitting thread or the worker, whichever appends without waiting;
//! - `layer`: records' timestamps, and the `tracing` event each record is for
//!   diagnostics;
//! - `prepared`: what is fixed for a loaded plugin's records (`plugin`, `policy`,
//!   `who`, `run_start`'s limits and confinement), composed once through its redactor;
//! - `log`: the public handle, [`AuditLog`] and [`AuditRun`];
//! - `closing`: a finished call's records, kept within the reserved room;
//! - `commit`: group commit, threads sharing one `fdatasync`;
//! - [`read`]: logs read back (rotated sets, records, times) for `audit show`,
//!   `audit summary` and `policy suggest`;
//! - [`query`]: `warden audit show` and `warden audit summary`;
//! - [`checkpoint`]: keys and signed checkpoints (`audit keygen`, `audit checkpoint`);
//! - [`verify`]: `warden audit verify`.
//!
//! ```no_run
//! use warden::audit::{AuditLog, PluginInfo, PolicyInfo, Rotation};
//! # fn main() -> Result<(), warden::audit::AuditError> {
//! let log = AuditLog::open("audit.jsonl", Rotation::Never)?; // exit 74 on error
//! let mut run = log.run()?;
//! run.policy_loaded(&PolicyInfo { path: "built-in".into(), sha256: None, mode: "enforce".into() })?;
//! // ... plugin_loaded, grant/deny per decision, run_start, run the plugin,
//! // run_finished(&report, exit_code) ...
//! drop(run);
//! log.finish()?; // everything appended and fsynced
//! # Ok(()) }
//! ```
//!
//! # Security
//!
//! Promises 1-5 of `AUDIT.md`: every record goes through one writer per process that
//! appends under an exclusive `flock` after reading the chain head from the file;
//! failures are reported to the caller, who must not run a plugin then; env values,
//! file contents, plugin output and (unless `log_args`) args are never given to the
//! log; every string of a run's records passes the run's [`Redactor`] and is written
//! by `json`.

mod appender;
mod bounds;
pub mod chain;
pub mod checkpoint;
mod closing;
mod commit;
mod error;
pub(crate) mod json;
pub(crate) mod layer;
mod log;
mod log_set;
mod prepared;
pub mod query;
pub mod read;
pub mod record;
pub mod redact;
mod reserve;
pub mod verify;
mod writer;

pub use bounds::{
    CLOSING_RESERVE, MAX_ERROR_TEXT, MAX_LOGGED_DENIALS, MAX_LOGGED_SLEEPS, MAX_RECORD_BYTES,
};
pub use error::AuditError;
pub use layer::AUDIT_TARGET;
pub use log::{AuditLog, AuditRun, RunStart, SYNC_TIMEOUT};
pub use log_set::{Rotation, UnknownRotation};
pub(crate) use prepared::Prepared;
pub use record::{
    Event, GENESIS, LimitsRecord, PluginInfo, PolicyInfo, RunEnd, RunOutcome, SCHEMA_VERSION,
};
pub use redact::Redactor;
pub use verify::{
    Break, BreakKind, CheckpointAt, CheckpointFileProblem, IncompleteRun, Location,
    SignedCheckpoint, UnsignedCheckpointFile, UnsignedTail, Verdict, VerifyError, VerifyOptions,
    VerifyReport, verify_files, verify_files_with,
};

/// The clock that stamps records: `SystemTime::now` unless a test gives another.
pub type Clock = std::sync::Arc<dyn Fn() -> std::time::SystemTime + Send + Sync>;
