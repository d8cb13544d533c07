//! The `tracing` side: audit records are events with target [`AUDIT_TARGET`], and
//! `AuditLayer` turns each into a message for the chain writer.
//!
//! The layer stamps `ts` (the moment of the event) and frames
//! `"event":…,"run_id":…` and the record's other fields; the writer adds `seq` and
//! `prev` when it appends (see `super::chain`). The other fields arrive as JSON that
//! `super::log::AuditRun` made through the run's redactor (`super::redact`), the one
//! way a run's record is serialized; `event`, `run_id` and `ts` are warden's own. Every other event and every span is
//! of no interest to the layer (`Interest::never`), so the `tracing` instrumentation
//! elsewhere (wasmtime-wasi's, for one) costs nothing here.

use super::appender::Appender;
use super::chain::Pending;
use super::writer::{MSG_RECORD, Shared};
use super::{AuditError, Clock};
use std::cell::Cell;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_appender::non_blocking::NonBlocking;
use tracing_subscriber::layer::{Context, Layer};

/// The `tracing` target of audit events.
pub const AUDIT_TARGET: &str = "warden::audit";

thread_local! {
    /// Set by the layer when it took an event on this thread, so the emitter can tell
    /// a record that was filtered out from one that went through.
    static DELIVERED: Cell<bool> = const { Cell::new(false) };
}

/// Clears the delivery flag before an event is emitted.
pub(crate) fn reset_delivered() {
    DELIVERED.with(|d| d.set(false));
}

/// Whether the layer took an event since `reset_delivered`.
pub(crate) fn delivered() -> bool {
    DELIVERED.with(Cell::get)
}

/// Writes audit events to the chain writer: at once when it is free (see
/// [`Appender`]), through the non-blocking pipe otherwise.
pub(crate) struct AuditLayer {
    appender: Arc<Appender>,
    writer: NonBlocking,
    shared: Arc<Shared>,
    clock: Clock,
}

impl AuditLayer {
    pub fn new(
        appender: Arc<Appender>,
        writer: NonBlocking,
        shared: Arc<Shared>,
        clock: Clock,
    ) -> Self {
        AuditLayer {
            appender,
            writer,
            shared,
            clock,
        }
    }
}

/// `ts` for `time`: RFC 3339 UTC with milliseconds, clamped to what the format can say.
pub(crate) fn timestamp(time: SystemTime) -> String {
    const LAST: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .min(Duration::from_secs(LAST));
    humantime::format_rfc3339_millis(UNIX_EPOCH + secs).to_string()
}

#[derive(Default)]
struct Fields {
    event: Option<String>,
    run_id: Option<String>,
    body: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let slot = match field.name() {
            "event" => &mut self.event,
            "run_id" => &mut self.run_id,
            "body" => &mut self.body,
            _ => return,
        };
        *slot = Some(value.to_owned());
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

impl<S: Subscriber> Layer<S> for AuditLayer {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.is_event() && metadata.target() == AUDIT_TARGET {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        metadata.is_event() && metadata.target() == AUDIT_TARGET
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != AUDIT_TARGET {
            return;
        }
        let ts = timestamp((self.clock)());
        let mut fields = Fields::default();
        event.record(&mut fields);
        let (Some(name), Some(run_id)) = (fields.event, fields.run_id) else {
            self.shared.fail(AuditError::Record {
                event: "unknown",
                message: "an audit event without `event` or `run_id`".into(),
            });
            return;
        };
        let head = match (
            super::json::to_string(&name),
            super::json::to_string(&run_id),
        ) {
            (Ok(name), Ok(run_id)) => format!(r#""event":{name},"run_id":{run_id}"#),
            (Err(e), _) | (_, Err(e)) => {
                self.shared.fail(AuditError::Record {
                    event: "unknown",
                    message: e.to_string(),
                });
                return;
            }
        };
        let body = fields.body.unwrap_or_default();
        let mut message = Vec::with_capacity(ts.len() + head.len() + body.len() + 3);
        message.push(MSG_RECORD);
        Pending::encode(&ts, &head, &body, &mut message);
        DELIVERED.with(|d| d.set(true));
        if self.appender.try_append_now(&message) {
            return;
        }
        self.appender.enqueue();
        if self.writer.clone().write_all(&message).is_err() {
            self.shared.fail(AuditError::Stopped {
                path: self.shared_path(),
            });
        }
    }
}

impl AuditLayer {
    fn shared_path(&self) -> std::path::PathBuf {
        self.shared.path().to_path_buf()
    }
}
