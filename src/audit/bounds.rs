//! How much the log takes: the largest record, the records one run may write of
//! each kind, the longest texts they carry, and the space reserved on the log's file
//! system for a run's closing records.
//!
//! These numbers are what the writer (which reserves [`CLOSING_RESERVE`] when it
//! appends a `run_start`), the run handle and the closing records' budget agree on;
//! they sit below all three.
//!
//! # Security
//!
//! Every bound here stands between a plugin and the log: a plugin chooses how much it
//! tries, how long its paths and error texts are, and can fill the disk, and none of
//! that may cost the log a run's `run_end`.

/// Largest record the log takes, in bytes: half of how far back a writer looks for the
/// chain head ([`crate::audit::chain::MAX_TAIL_SCAN`]), so a record can never hide it.
pub const MAX_RECORD_BYTES: usize = 8 * 1024 * 1024;

/// `runtime_deny` records one run may write; the rest are counted in `run_end`
/// (`runtime_denials_dropped`).
pub const MAX_LOGGED_DENIALS: usize = 32;

/// `effect` records of `Sleep` effects one run may write; `run_end` counts and sums
/// every sleep (`sleeps`, `slept_ms`). Requests are not capped here: every request
/// gets its own record (a call makes at most
/// [`crate::runtime::instance::MAX_EFFECT_ROUNDS`] effects), and sleeps never take
/// the place of one.
pub const MAX_LOGGED_SLEEPS: usize = 16;

/// `access` records one run may write (audit mode); the rest are counted in `run_end`
/// (`accesses_dropped`). Their paths are cut at [`MAX_ACCESS_PATH`] bytes.
pub const MAX_LOGGED_ACCESSES: usize = 64;

/// Longest path an `access` record keeps, in bytes.
pub const MAX_ACCESS_PATH: usize = 1024;

/// Bytes reserved on the log's file system, beyond its end, when `run_start` is
/// written: room for what the run writes after the plugin ran, so that a plugin that
/// fills the disk cannot erase its own `runtime_deny`, `effect` and `run_end` records.
///
/// [`AuditRun::run_finished`](super::AuditRun::run_finished) keeps to it by construction: it measures each closing
/// record as it will be written (redacted and escaped) and writes them within this
/// many bytes, `limit_exceeded` and `run_end` set aside first, then in this order of
/// importance: requests that passed every check (sent, or about to be), runtime
/// denials, other requests, accesses, sleeps; what does not fit is counted in
/// `run_end`. The first group always fits: a call makes at most 256 requests, and a
/// request's record is at most 10 KiB (a URL cut at 2 KiB, a reason cut at 512 bytes
/// and 4 header names cut at 32, each byte of those escaped at most six-fold and each
/// string grown by redaction at most [`super::redact::MAX_GROWTH`] bytes, the
/// plugin's name and a version cut at 64 bytes) besides the paths of the module and
/// the policy, which the host chooses: under 3 MiB for 256 when each of those paths
/// is under 1 KiB.
pub const CLOSING_RESERVE: u64 = 4 * 1024 * 1024;

/// Bytes a record's line takes besides its `plugin`, `policy` and event fields: `v`,
/// `ts`, `seq`, `event`, `run_id`, `prev`, the braces and the newline (about 210).
pub(super) const RECORD_HEAD: u64 = 256;

/// Longest error text a record carries (wasmtime's messages include backtraces, whose
/// function names the plugin chose); longer text is cut and marked.
pub const MAX_ERROR_TEXT: usize = 16 * 1024;

/// `text` cut to [`MAX_ERROR_TEXT`] bytes at a character boundary, marked when cut.
pub(super) fn bounded(text: &str) -> std::borrow::Cow<'_, str> {
    crate::escape::cut(text, MAX_ERROR_TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_is_bounded_at_a_character_boundary() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(MAX_ERROR_TEXT);
        let cut = bounded(&long);
        assert!(cut.ends_with("...[cut]"));
        assert!(cut.len() <= MAX_ERROR_TEXT + 8);
    }
}
