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
///
/// Formatted once per millisecond per thread: the calls of a busy host come many to a
/// millisecond, and each record of a run asks.
pub(crate) fn timestamp(time: SystemTime) -> String {
    const LAST: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    thread_local! {
        static LAST_STAMP: std::cell::RefCell<(u128, String)> =
            const { std::cell::RefCell::new((u128::MAX, String::new())) };
    }
    let since = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .min(Duration::from_secs(LAST));
    let format = || humantime::format_rfc3339_millis(UNIX_EPOCH + since).to_string();
    let millis = since.as_millis();
    LAST_STAMP
        .try_with(|last| {
            let mut last = last.try_borrow_mut().ok()?;
            if last.0 != millis {
                *last = (millis, format());
            }
            Some(last.1.clone())
        })
        .ok()
        .flatten()
        .unwrap_or_else(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_formatted_once_per_millisecond_is_the_stamp_of_each_time() {
        let base = UNIX_EPOCH + Duration::from_millis(1_796_000_000_123);
        let times = [
            base,
            base + Duration::from_micros(400),
            base + Duration::from_micros(1_000),
            base + Duration::from_micros(999),
            base - Duration::from_secs(3_600),
            UNIX_EPOCH,
            UNIX_EPOCH - Duration::from_secs(1),
            UNIX_EPOCH + Duration::from_secs(300_000_000_000),
            base,
        ];
        let expected = [
            "2026-11-30T00:53:20.123Z",
            "2026-11-30T00:53:20.123Z",
            "2026-11-30T00:53:20.124Z",
            "2026-11-30T00:53:20.123Z",
            "2026-11-29T23:53:20.123Z",
            "1970-01-01T00:00:00.000Z",
            "1970-01-01T00:00:00.000Z",
            "9999-12-31T23:59:59.000Z",
            "2026-11-30T00:53:20.123Z",
        ];
        for (time, expected) in times.into_iter().zip(expected) {
            assert_eq!(timestamp(time), expected, "{time:?}");
        }
    }
}
