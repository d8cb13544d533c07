//! Where audit records meet `tracing`, and their timestamps.
//!
//! A record is composed once, by the run that emits it, straight into the message the
//! writer appends (`super::log`); it does not travel as a `tracing` event, whose
//! fields would be copied and framed again on the way. `tracing` stays the API for
//! diagnostics: each record emitted is also a `TRACE` event with target
//! [`AUDIT_TARGET`] and its `event` and `run_id` (never its other fields), which costs
//! nothing unless a subscriber wants it. The log's queue for records that cannot be
//! appended at once is still `tracing-appender`'s non-blocking writer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `tracing` target of the diagnostic event each audit record emits.
pub const AUDIT_TARGET: &str = "warden::audit";

/// `ts` for `time`: RFC 3339 UTC with milliseconds, clamped to what the format can say.
pub(crate) fn timestamp(time: SystemTime) -> String {
    const LAST: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .min(Duration::from_secs(LAST));
    humantime::format_rfc3339_millis(UNIX_EPOCH + secs).to_string()
}
