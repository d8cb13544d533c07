//! The public handle: [`AuditLog`] (one open log, one background writer) and
//! [`AuditRun`] (the records of one load/run, sharing one `run_id`).

use super::chain::PART_SEPARATOR;
use super::layer::{self, AUDIT_TARGET, AuditLayer};
use super::log_set::Rotation;
use super::record::{
    DeclaredFields, ErrorFields, Event, LimitFields, LimitsRecord, PluginInfo, PolicyInfo,
    RESERVED_FIELDS, RunEnd, RunOutcome, RunStartFields,
};
use super::redact::{self, Redactor};
use super::writer::{Appender, ChainWriter, MSG_BARRIER, Shared};
use super::{AuditError, Clock};
use crate::limits::{LimitKind, Limits};
use crate::runtime::{RunReport, RuntimeDeny};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use tracing::Dispatch;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::layer::SubscriberExt as _;

/// How long [`AuditLog::sync`] and [`AuditLog::finish`] wait for the writer by default
/// ([`AuditLog::set_sync_timeout`]).
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

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
/// [`AuditRun::run_finished`] keeps to it by construction: it measures each closing
/// record as it will be written (redacted and escaped) and writes them within this
/// many bytes, `limit_exceeded` and `run_end` set aside first, then in this order of
/// importance: requests that passed every check (sent, or about to be), runtime
/// denials, other requests, accesses, sleeps; what does not fit is counted in
/// `run_end`. The first group always fits: a call makes at most 256 requests, and a
/// request's record is at most 10 KiB (a URL cut at 2 KiB, a reason cut at 512 bytes
/// and 4 header names cut at 32, each byte of those escaped at most six-fold and each
/// string grown by redaction at most [`redact::MAX_GROWTH`] bytes, the plugin's name
/// and a version cut at 64 bytes) besides the paths of the module and the policy,
/// which the host chooses: under 3 MiB for 256 when each of those paths is under
/// 1 KiB.
pub const CLOSING_RESERVE: u64 = 4 * 1024 * 1024;

/// Bytes a record's line takes besides its `plugin`, `policy` and event fields: `v`,
/// `ts`, `seq`, `event`, `run_id`, `prev`, the braces and the newline (about 210).
const RECORD_HEAD: u64 = 256;

/// Longest error text a record carries (wasmtime's messages include backtraces, whose
/// function names the plugin chose); longer text is cut and marked.
pub const MAX_ERROR_TEXT: usize = 16 * 1024;

/// `text` cut to [`MAX_ERROR_TEXT`] bytes at a character boundary, marked when cut.
fn bounded(text: &str) -> std::borrow::Cow<'_, str> {
    crate::escape::cut(text, MAX_ERROR_TEXT)
}

/// An open audit log.
///
/// Records are `tracing` events (target `warden::audit`) that this handle's own
/// dispatcher hands to a layer, which gives them to the one writer that appends to
/// the file under its lock: on the emitting thread when the writer and the file's
/// lock are free and nothing is queued, else through `tracing-appender`'s non-blocking
/// writer (not lossy: a full queue makes the emitter wait) to its worker thread.
/// Emitting never waits for a lock another process holds; [`AuditLog::sync`] and
/// [`AuditLog::finish`] wait until everything emitted is appended, and report any
/// failure.
///
/// # Security
///
/// Fail closed: [`AuditLog::open`] checks, under the file's lock, that the log can be
/// opened for appending and that it ends with an audit record (or is empty), so a
/// plugin never runs when its records could not be written. Every emitter reports a
/// failure of any earlier record.
pub struct AuditLog {
    path: PathBuf,
    dispatch: Dispatch,
    appender: Arc<Appender>,
    writer: NonBlocking,
    shared: Arc<Shared>,
    guard: Option<WorkerGuard>,
    barriers: AtomicU64,
    sync_timeout: Duration,
    group_commit: GroupCommit,
}

/// The state of [`AuditLog::sync_data`]'s group commit.
#[derive(Debug, Default)]
struct GroupCommit {
    state: Mutex<CommitState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct CommitState {
    /// Records appended (by this handle) that an `fsync` has covered.
    synced: u64,
    /// An `fsync` is under way.
    running: bool,
    /// `fsync`s issued.
    fsyncs: u64,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (creating it, and its directory, if needed) the log at `path`.
    ///
    /// With rotation, records go to `PATH.YYYY-MM-DD[-HH]` and `.NAME.lock` next to
    /// `PATH` guards the choice of file.
    ///
    /// # Errors
    ///
    /// An [`AuditError`] (exit code 74) when the file cannot be created, opened for
    /// appending or locked, is not a regular file, or does not end with an audit
    /// record; nothing should run then.
    pub fn open(path: impl AsRef<Path>, rotation: Rotation) -> Result<Self, AuditError> {
        Self::open_with_clock(path, rotation, Arc::new(SystemTime::now))
    }

    /// Like [`AuditLog::open`] with the clock that stamps `ts` (and picks the rotated
    /// file) given, for tests and replays.
    ///
    /// # Errors
    ///
    /// As [`AuditLog::open`].
    pub fn open_with_clock(
        path: impl AsRef<Path>,
        rotation: Rotation,
        clock: Clock,
    ) -> Result<Self, AuditError> {
        Self::open_full(path, rotation, None, clock)
    }

    /// Like [`AuditLog::open`], deleting the oldest rotated files beyond `keep` (besides
    /// the one being written) each time a new file starts.
    ///
    /// # Errors
    ///
    /// As [`AuditLog::open`].
    pub fn open_keeping(
        path: impl AsRef<Path>,
        rotation: Rotation,
        keep: Option<usize>,
    ) -> Result<Self, AuditError> {
        Self::open_full(path, rotation, keep, Arc::new(SystemTime::now))
    }

    /// [`AuditLog::open_keeping`] with the clock given.
    ///
    /// # Errors
    ///
    /// As [`AuditLog::open`].
    pub fn open_full(
        path: impl AsRef<Path>,
        rotation: Rotation,
        keep: Option<usize>,
        clock: Clock,
    ) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let shared = Shared::new(path.clone());
        let now = layer::timestamp(clock());
        let chain = ChainWriter::open_keeping(&path, rotation, keep, &now, Arc::clone(&shared))?;
        let appender = Appender::new(chain);
        let (writer, guard) = NonBlockingBuilder::default()
            .lossy(false)
            .thread_name("warden-audit")
            .finish(appender.worker());
        let layer = AuditLayer::new(
            Arc::clone(&appender),
            writer.clone(),
            Arc::clone(&shared),
            clock,
        );
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
        Ok(AuditLog {
            path,
            dispatch,
            appender,
            writer,
            shared,
            guard: Some(guard),
            barriers: AtomicU64::new(0),
            sync_timeout: SYNC_TIMEOUT,
            group_commit: GroupCommit::default(),
        })
    }

    /// The path given to [`AuditLog::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long [`AuditLog::sync`], [`AuditLog::finish`] and `run_start` wait for
    /// records held up (for example by another process holding the log's lock) before
    /// they fail with [`AuditError::Timeout`]; [`SYNC_TIMEOUT`] unless set.
    pub fn set_sync_timeout(&mut self, timeout: Duration) {
        self.sync_timeout = timeout;
    }

    /// Starts the records of one load/run, with a fresh random `run_id`.
    ///
    /// # Errors
    ///
    /// [`AuditError::Random`] when the operating system has no randomness to give.
    pub fn run(&self) -> Result<AuditRun<'_>, AuditError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| AuditError::Random {
            message: e.to_string(),
        })?;
        Ok(AuditRun {
            log: self,
            run_id: hex::encode(id),
            plugin: None,
            policy: None,
            redactor: Arc::default(),
            first: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// Continues the records of the load whose `run_id` is `run_id` (the first run of
    /// a loaded plugin shares its load's id, so a load and its run read as one story).
    pub(crate) fn run_with_id(&self, run_id: String) -> AuditRun<'_> {
        AuditRun {
            log: self,
            run_id,
            plugin: None,
            policy: None,
            redactor: Arc::default(),
            // The load's records came first, with `who`.
            first: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Waits until every record emitted so far is appended to the file and on disk
    /// (`fsync`), without stopping the writer.
    ///
    /// Group commit: when several threads sync at once, one `fsync` serves all of
    /// them. A caller whose records an `fsync` already in progress does not cover
    /// waits for it and then, if needed, leads the next one, which covers every record
    /// appended by the time it starts.
    ///
    /// # Errors
    ///
    /// The first failure of any record so far, or [`AuditError::Timeout`].
    pub fn sync_data(&self) -> Result<(), AuditError> {
        // This caller's records are appended first; `ticket` counts them in.
        self.barrier(false)?;
        let ticket = self.shared.appended();
        let gate = &self.group_commit;
        let mut state = gate.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if state.synced >= ticket {
                drop(state);
                return self.shared.check();
            }
            if !state.running {
                state.running = true;
                drop(state);
                let covers = self.shared.appended();
                let result = self.barrier(true);
                let mut state = gate.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.running = false;
                if result.is_ok() {
                    state.synced = state.synced.max(covers);
                    state.fsyncs += 1;
                }
                gate.done.notify_all();
                return result;
            }
            state = gate
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// How many `fsync`s [`AuditLog::sync_data`] has issued (group commit makes it
    /// fewer than its callers).
    pub fn fsyncs(&self) -> u64 {
        self.group_commit
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fsyncs
    }

    /// Waits until every record emitted so far is appended to the file.
    ///
    /// # Errors
    ///
    /// The first failure of any record so far, or [`AuditError::Timeout`].
    pub fn sync(&self) -> Result<(), AuditError> {
        self.barrier(false)
    }

    /// Appends and `fsync`s every record, stops the writer, and returns how many
    /// records this handle appended. Call it before the process exits.
    ///
    /// # Errors
    ///
    /// The first failure of any record, or [`AuditError::Timeout`].
    pub fn finish(mut self) -> Result<u64, AuditError> {
        let result = self.barrier(true);
        drop(self.guard.take());
        result?;
        self.shared.check()?;
        Ok(self.shared.appended())
    }

    fn barrier(&self, fsync: bool) -> Result<(), AuditError> {
        self.shared.check()?;
        // Nothing queued: every record emitted is already appended.
        let idle = self
            .appender
            .when_idle(|chain| if fsync { chain.sync_data() } else { Ok(()) });
        if let Some(result) = idle {
            if let Err(e) = result {
                self.shared.fail(e);
            }
            return self.shared.check();
        }
        self.appender.enqueue();
        let id = self.barriers.fetch_add(1, Ordering::AcqRel) + 1;
        let message = format!(
            "{}{id}{}",
            MSG_BARRIER as char,
            if fsync { "S" } else { "" }
        );
        self.writer
            .clone()
            .write_all(message.as_bytes())
            .map_err(|_| AuditError::Stopped {
                path: self.path.clone(),
            })?;
        self.shared.wait_for(id, self.sync_timeout)?;
        self.shared.check()
    }

    fn emit(&self, event: Event, run_id: &str, body: &str) -> Result<(), AuditError> {
        self.shared.check()?;
        if body.len() > MAX_RECORD_BYTES {
            return Err(AuditError::Record {
                event: event.as_str(),
                message: format!(
                    "the record would be {} bytes; the log takes at most {MAX_RECORD_BYTES} (with `log_args = true`, pass smaller arguments)",
                    body.len()
                ),
            });
        }
        if body.as_bytes().contains(&PART_SEPARATOR) {
            return Err(AuditError::Record {
                event: event.as_str(),
                message: "a raw control character in serialized JSON".into(),
            });
        }
        layer::reset_delivered();
        tracing::dispatcher::with_default(&self.dispatch, || {
            tracing::event!(
                target: AUDIT_TARGET,
                tracing::Level::INFO,
                event = event.as_str(),
                run_id = run_id,
                body = body
            );
        });
        if !layer::delivered() {
            return Err(AuditError::Filtered);
        }
        self.shared.check()
    }
}

impl Drop for AuditLog {
    /// Without [`AuditLog::finish`], still waits (bounded) for the records emitted.
    fn drop(&mut self) {
        if self.guard.is_some() {
            let _ = self.barrier(true);
        }
    }
}

/// What `run_start` records.
#[derive(Debug, Clone, Copy)]
pub struct RunStart<'a> {
    /// The plugin's arguments (only their count is recorded unless `log_args`).
    pub args: &'a [String],
    /// The policy's `log_args`.
    pub log_args: bool,
    /// The limits the run is under.
    pub limits: &'a Limits,
    /// The `run_id` of the load whose decisions this run runs under, when the run has
    /// an id of its own (a plugin loaded once and run many times).
    pub load: Option<&'a str>,
}

/// The records of one load/run: all share its `run_id`, and once known its `plugin`
/// and `policy`; every string in them passes the run's [`Redactor`]
/// ([`AuditRun::set_redactor`]).
#[derive(Debug)]
pub struct AuditRun<'log> {
    log: &'log AuditLog,
    run_id: String,
    plugin: Option<PluginInfo>,
    policy: Option<PolicyInfo>,
    /// The run's granted values, taken out of every string of every record.
    redactor: Arc<Redactor>,
    /// Whether the run's first record (which carries `who`) is still to come.
    first: std::sync::atomic::AtomicBool,
}

/// A record's part (its fields, `plugin`, `policy`, `who`) serialized through the
/// run's redactor. Only [`AuditRun::fields`] makes one, and a record is emitted only
/// from these: no string reaches the log past the redactor.
#[derive(Debug)]
struct Redacted(String);

fn record_error(event: Event, e: serde_json::Error) -> AuditError {
    AuditError::Record {
        event: event.as_str(),
        message: e.to_string(),
    }
}

/// `{"a":1,"b":2}` -> `,"a":1,"b":2`.
fn push_members(body: &mut String, object: &str) {
    let inner = object
        .strip_prefix('{')
        .and_then(|o| o.strip_suffix('}'))
        .unwrap_or_default();
    if !inner.is_empty() {
        body.push(',');
        body.push_str(inner);
    }
}

impl AuditRun<'_> {
    /// The random 128-bit hex id of this run.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Sets the redactor of the run's granted values: every string of every record
    /// emitted from now on (the `plugin` and `policy` objects and `who` included)
    /// passes it after the record is composed and before it is serialized. Set it
    /// before any record that can carry a string the plugin chose (its name and
    /// version are in `plugin`).
    pub fn set_redactor(&mut self, redactor: Arc<Redactor>) {
        self.redactor = redactor;
    }

    /// The run's redactor.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// `fields` as JSON, through the run's redactor: the choke point every part of
    /// every record passes (only this makes a [`Redacted`]).
    fn fields<T: Serialize + ?Sized>(
        &self,
        event: Event,
        fields: &T,
    ) -> Result<Redacted, AuditError> {
        redact::to_json(fields, &self.redactor)
            .map(Redacted)
            .map_err(|e| record_error(event, e))
    }

    /// `,"plugin":{…},"policy":{…}` as every record of the run carries them.
    fn common(&self, event: Event) -> Result<String, AuditError> {
        let mut common = String::new();
        if let Some(plugin) = &self.plugin {
            common.push_str(",\"plugin\":");
            common.push_str(&self.fields(event, plugin)?.0);
        }
        if let Some(policy) = &self.policy {
            common.push_str(",\"policy\":");
            common.push_str(&self.fields(event, policy)?.0);
        }
        Ok(common)
    }

    fn emit_json(&self, event: Event, fields: Option<&Redacted>) -> Result<(), AuditError> {
        let mut body = String::new();
        if self.first.swap(false, std::sync::atomic::Ordering::Relaxed) {
            let who = self.fields(event, &crate::audit::record::Who::current())?;
            body.push_str(",\"who\":");
            body.push_str(&who.0);
        }
        body.push_str(&self.common(event)?);
        if let Some(fields) = fields {
            push_members(&mut body, &fields.0);
        }
        self.log.emit(event, &self.run_id, &body)
    }

    fn emit<T: Serialize + ?Sized>(&self, event: Event, fields: &T) -> Result<(), AuditError> {
        let fields = self.fields(event, fields)?;
        self.emit_json(event, Some(&fields))
    }

    /// Attaches `policy` to this and every later record of the run.
    ///
    /// # Errors
    ///
    /// When it cannot be serialized.
    pub fn set_policy(&mut self, policy: &PolicyInfo) -> Result<(), AuditError> {
        self.fields(Event::PolicyLoaded, policy)?;
        self.policy = Some(policy.clone());
        Ok(())
    }

    /// Attaches `plugin` to this and every later record of the run.
    ///
    /// # Errors
    ///
    /// When it cannot be serialized.
    pub fn set_plugin(&mut self, plugin: &PluginInfo) -> Result<(), AuditError> {
        self.fields(Event::PluginLoaded, plugin)?;
        self.plugin = Some(plugin.clone());
        Ok(())
    }

    /// `policy_loaded`.
    ///
    /// # Errors
    ///
    /// Any failure of this or an earlier record.
    pub fn policy_loaded(&mut self, policy: &PolicyInfo) -> Result<(), AuditError> {
        self.set_policy(policy)?;
        self.emit_json(Event::PolicyLoaded, None)
    }

    /// `policy_rejected`, with the error (which names line and column).
    ///
    /// # Errors
    ///
    /// Any failure of this or an earlier record.
    pub fn policy_rejected(&mut self, policy: &PolicyInfo, error: &str) -> Result<(), AuditError> {
        self.set_policy(policy)?;
        let error = &bounded(error);
        self.emit(Event::PolicyRejected, &ErrorFields { error })
    }

    /// `plugin_loaded`, with the capabilities as declared.
    ///
    /// # Errors
    ///
    /// Any failure of this or an earlier record.
    pub fn plugin_loaded<D: Serialize + ?Sized>(
        &mut self,
        plugin: &PluginInfo,
        declared: &D,
    ) -> Result<(), AuditError> {
        self.set_plugin(plugin)?;
        self.emit(Event::PluginLoaded, &DeclaredFields { declared })
    }

    /// `plugin_rejected`, with the error.
    ///
    /// # Errors
    ///
    /// Any failure of this or an earlier record.
    pub fn plugin_rejected(&mut self, plugin: &PluginInfo, error: &str) -> Result<(), AuditError> {
        self.set_plugin(plugin)?;
        let error = &bounded(error);
        self.emit(Event::PluginRejected, &ErrorFields { error })
    }

    /// `grant`: one declared item that was granted. The fields of `decision` (which
    /// must serialize as a map) become fields of the record.
    ///
    /// # Errors
    ///
    /// [`AuditError::ReservedField`] when `decision` has a field the log sets itself,
    /// [`AuditError::Record`] when it is not a map; any failure of an earlier record.
    pub fn grant<D: Serialize + ?Sized>(&self, decision: &D) -> Result<(), AuditError> {
        self.decision(Event::Grant, decision)
    }

    /// `deny`: one declared item that was denied (or would be, in audit mode); as
    /// [`AuditRun::grant`].
    ///
    /// # Errors
    ///
    /// As [`AuditRun::grant`].
    pub fn deny<D: Serialize + ?Sized>(&self, decision: &D) -> Result<(), AuditError> {
        self.decision(Event::Deny, decision)
    }

    fn decision<D: Serialize + ?Sized>(
        &self,
        event: Event,
        decision: &D,
    ) -> Result<(), AuditError> {
        let fields = self.fields(event, decision)?;
        let keys: BTreeMap<String, serde::de::IgnoredAny> = serde_json::from_str(&fields.0)
            .map_err(|_| AuditError::Record {
                event: event.as_str(),
                message: "the decision does not serialize as a map of fields".into(),
            })?;
        if let Some(field) = keys.keys().find(|k| RESERVED_FIELDS.contains(&k.as_str())) {
            return Err(AuditError::ReservedField {
                event: event.as_str(),
                field: field.clone(),
            });
        }
        self.emit_json(event, Some(&fields))
    }

    /// `run_start`, then waits until it and every record before it are appended: the
    /// plugin must not run unless this returns `Ok`.
    ///
    /// # Errors
    ///
    /// Any failure of this or an earlier record, or [`AuditError::Timeout`].
    pub fn run_start(&self, start: RunStart<'_>) -> Result<(), AuditError> {
        self.emit(
            Event::RunStart,
            &RunStartFields {
                load: start.load,
                args_count: start.args.len(),
                args: start.log_args.then_some(start.args),
                limits: LimitsRecord::from(start.limits),
            },
        )?;
        self.log.sync()
    }

    /// `runtime_deny`: the plugin tried to reach past its grants.
    ///
    /// # Errors
    ///
    /// Any failure of this or an earlier record.
    pub fn runtime_deny(&self, deny: &RuntimeDeny) -> Result<(), AuditError> {
        self.emit(Event::RuntimeDeny, deny)
    }

    /// `effect`: a host effect the plugin asked for.
    ///
    /// # Errors
    ///
    /// Any failure of this or an earlier record.
    pub fn effect(&self, effect: &crate::net::EffectRecord) -> Result<(), AuditError> {
        self.emit(Event::Effect, effect)
    }

    /// `limit_exceeded`.
    ///
    /// # Errors
    ///
    /// Any failure of this or an earlier record.
    pub fn limit_exceeded(&self, limit: LimitKind, value: u64) -> Result<(), AuditError> {
        self.emit(Event::LimitExceeded, &LimitFields { limit, value })
    }

    /// `run_end`.
    ///
    /// # Errors
    ///
    /// Any failure of this or an earlier record.
    pub fn run_end(&self, end: &RunEnd) -> Result<(), AuditError> {
        self.emit(Event::RunEnd, end)
    }

    /// Everything a finished call says: an `access` record for each use (audit mode),
    /// an `effect` record for each request and for the first [`MAX_LOGGED_SLEEPS`]
    /// sleeps, a `runtime_deny` for each of the first [`MAX_LOGGED_DENIALS`] denials,
    /// a `limit_exceeded` when a limit ended the call, and `run_end` with `exit_code`
    /// (which counts what was not written one by one, and every sleep).
    ///
    /// What one run adds to the log is bounded, so the space reserved for it before
    /// the plugin ran ([`CLOSING_RESERVE`]) holds it: each record is composed and
    /// measured before any is written, and they are kept within the reserve in the
    /// order its documentation gives. A plugin that fills the disk and then makes a
    /// thousand escape attempts still gets its `run_end`, and a request it sent is
    /// never pushed out by sleeps or denials.
    ///
    /// # Errors
    ///
    /// Any failure of these or an earlier record.
    pub fn run_finished(&self, report: &RunReport, exit_code: u8) -> Result<(), AuditError> {
        let shared = (self.common(Event::RunEnd)?.len() as u64)
            .saturating_add(RECORD_HEAD)
            .saturating_add(self.who_len(Event::RunEnd)?);
        let cost = |fields: &Redacted| shared.saturating_add(fields.0.len() as u64);

        let error = report.result.as_ref().err();
        let limit = error.and_then(|e| e.limit());
        let sleeps: Vec<&crate::net::EffectRecord> =
            report.effects.iter().filter(|e| is_sleep(e)).collect();
        let mut end = RunEnd {
            outcome: RunOutcome::of(&report.result),
            exit_code,
            fuel_consumed: report.fuel_consumed,
            duration_ms: (report.duration.as_secs_f64() * 1e6).round() / 1e3,
            output_bytes: report.output_bytes,
            error: error.map(|e| bounded(&e.to_string()).into_owned()),
            runtime_denials_dropped: None,
            effects_dropped: None,
            accesses_dropped: None,
            sleeps: (!sleeps.is_empty()).then_some(sleeps.len() as u64),
            slept_ms: (!sleeps.is_empty()).then(|| {
                sleeps
                    .iter()
                    .fold(0u64, |sum, e| sum.saturating_add(e.sleep_ms.unwrap_or(0)))
            }),
        };
        // `run_end` (at its longest: every count at its widest) and `limit_exceeded`
        // come out of the reserve first.
        let widest = RunEnd {
            runtime_denials_dropped: Some(u64::MAX),
            effects_dropped: Some(u64::MAX),
            accesses_dropped: Some(u64::MAX),
            ..end.clone()
        };
        let mut room = CLOSING_RESERVE.saturating_sub(cost(&self.fields(Event::RunEnd, &widest)?));
        let limit_fields = match limit {
            Some((limit, value)) => {
                let fields = self.fields(Event::LimitExceeded, &LimitFields { limit, value })?;
                room = room.saturating_sub(cost(&fields));
                Some(fields)
            }
            None => None,
        };

        // Every closing record, composed (and so redacted) now, in the order of
        // importance in which the reserve is shared out.
        let accesses = &report.accesses.recorded;
        let mut access_fields = Vec::new();
        for access in accesses.iter().take(MAX_LOGGED_ACCESSES) {
            let mut access = access.clone();
            access.path = crate::escape::cut(&access.path, MAX_ACCESS_PATH).into_owned();
            access.host_path = access
                .host_path
                .map(|p| crate::escape::cut(&p, MAX_ACCESS_PATH).into_owned());
            access_fields.push(Some(self.fields(Event::Access, &access)?));
        }
        let mut effect_fields = Vec::new();
        let mut logged_sleeps = 0;
        for effect in &report.effects {
            let logged = !is_sleep(effect) || {
                logged_sleeps += 1;
                logged_sleeps <= MAX_LOGGED_SLEEPS
            };
            effect_fields.push(if logged {
                Some(self.fields(Event::Effect, effect)?)
            } else {
                None
            });
        }
        let denials = &report.runtime_denials.recorded;
        let mut deny_fields = Vec::new();
        for deny in denials.iter().take(MAX_LOGGED_DENIALS) {
            deny_fields.push(Some(self.fields(Event::RuntimeDeny, deny)?));
        }
        let mut share = |slot: &mut Option<Redacted>| {
            if let Some(fields) = slot {
                let needed = cost(fields);
                if needed <= room {
                    room -= needed;
                } else {
                    *slot = None;
                }
            }
        };
        let share_effects =
            |wanted: fn(&crate::net::EffectRecord) -> bool,
             slots: &mut [Option<Redacted>],
             share: &mut dyn FnMut(&mut Option<Redacted>)| {
                for (effect, slot) in report.effects.iter().zip(slots) {
                    if wanted(effect) {
                        share(slot);
                    }
                }
            };
        share_effects(was_sent, &mut effect_fields, &mut share);
        deny_fields.iter_mut().for_each(&mut share);
        share_effects(
            |e| !is_sleep(e) && !was_sent(e),
            &mut effect_fields,
            &mut share,
        );
        access_fields.iter_mut().for_each(&mut share);
        share_effects(is_sleep, &mut effect_fields, &mut share);

        // Written in the log's order.
        for fields in access_fields.iter().flatten() {
            self.emit_json(Event::Access, Some(fields))?;
        }
        for fields in effect_fields.iter().flatten() {
            self.emit_json(Event::Effect, Some(fields))?;
        }
        for fields in deny_fields.iter().flatten() {
            self.emit_json(Event::RuntimeDeny, Some(fields))?;
        }
        if let Some(fields) = &limit_fields {
            self.emit_json(Event::LimitExceeded, Some(fields))?;
        }
        let unwritten = |slots: &[Option<Redacted>]| slots.iter().filter(|s| s.is_none()).count();
        let dropped = |n: u64| (n > 0).then_some(n);
        let requests_unwritten = report
            .effects
            .iter()
            .zip(&effect_fields)
            .filter(|(e, slot)| !is_sleep(e) && slot.is_none())
            .count();
        end.effects_dropped = dropped(requests_unwritten as u64);
        end.runtime_denials_dropped = dropped(
            report
                .runtime_denials
                .dropped
                .saturating_add((denials.len() - deny_fields.len()) as u64)
                .saturating_add(unwritten(&deny_fields) as u64),
        );
        end.accesses_dropped = dropped(
            report
                .accesses
                .dropped
                .saturating_add((accesses.len() - access_fields.len()) as u64)
                .saturating_add(unwritten(&access_fields) as u64),
        );
        self.run_end(&end)
    }

    /// Bytes `who` adds to the next record, when it is the run's first.
    fn who_len(&self, event: Event) -> Result<u64, AuditError> {
        if !self.first.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(0);
        }
        let who = self.fields(event, &crate::audit::record::Who::current())?;
        Ok(",\"who\":".len() as u64 + who.0.len() as u64)
    }
}

/// Whether `effect` is a `Sleep`.
fn is_sleep(effect: &crate::net::EffectRecord) -> bool {
    effect.kind == crate::net::effects::KIND_SLEEP
}

/// Whether `effect` is a request that passed every check (it was sent, or was about
/// to be when it failed).
fn was_sent(effect: &crate::net::EffectRecord) -> bool {
    effect.passed(crate::net::effects::CHECK_ADDRESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_syncing_at_once_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path().join("audit.jsonl"), Rotation::Never).unwrap();
        const THREADS: u64 = 8;
        const ROUNDS: u64 = 25;
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..ROUNDS {
                        let run = log.run().unwrap();
                        run.run_end(&RunEnd::refused(77, "x")).unwrap();
                        log.sync_data().unwrap();
                    }
                });
            }
        });
        let fsyncs = log.fsyncs();
        assert!((1..THREADS * ROUNDS).contains(&fsyncs), "{fsyncs} fsyncs");
        assert_eq!(log.finish().unwrap(), THREADS * ROUNDS);
    }

    #[test]
    fn handles_can_be_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<AuditLog>();
        shared::<AuditRun<'static>>();
    }

    #[test]
    fn error_text_is_bounded_at_a_character_boundary() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(MAX_ERROR_TEXT);
        let cut = bounded(&long);
        assert!(cut.ends_with("...[cut]"));
        assert!(cut.len() <= MAX_ERROR_TEXT + 8);
    }

    #[test]
    fn oversized_records_are_refused_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, Rotation::Never).unwrap();
        let run = log.run().unwrap();
        let args = vec!["x".repeat(MAX_RECORD_BYTES)];
        let start = RunStart {
            args: &args,
            load: None,
            log_args: true,
            limits: &Limits::default(),
        };
        assert!(matches!(
            run.run_start(start),
            Err(AuditError::Record { .. })
        ));
        let start = RunStart {
            log_args: false,
            load: None,
            ..start
        };
        run.run_start(start).unwrap();
        drop(run);
        assert_eq!(log.finish().unwrap(), 1);
    }

    fn limits_start<'a>(args: &'a [String], limits: &'a Limits) -> RunStart<'a> {
        RunStart {
            args,
            load: None,
            log_args: false,
            limits,
        }
    }

    /// The `run_id`s of the records in `path`, in file order.
    fn run_ids(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                v["run_id"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn a_record_that_meets_a_lock_held_elsewhere_is_queued_and_keeps_its_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, Rotation::Never).unwrap();
        let (args, limits) = (Vec::new(), Limits::default());
        // Another open file description holds the lock, as another process would.
        let other = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        other.lock().unwrap();
        let first = log.run().unwrap();
        // Emitting does not wait for the lock: the record is queued for the worker.
        first.run_end(&RunEnd::refused(77, "test")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        std::thread::scope(|s| {
            let syncing = s.spawn(|| {
                let second = log.run().unwrap();
                // Must wait for the queued record, then follow it.
                second.run_start(limits_start(&args, &limits)).unwrap();
                second.run_id().to_owned()
            });
            std::thread::sleep(Duration::from_millis(50));
            other.unlock().unwrap();
            let second = syncing.join().unwrap();
            assert_eq!(run_ids(&path), [first.run_id().to_owned(), second]);
        });
        drop(first);
        assert_eq!(log.finish().unwrap(), 2);
        let report = crate::audit::verify_files(&[&path]).unwrap();
        assert_eq!(report.verdict, crate::audit::Verdict::Ok);
    }

    #[test]
    fn threads_emitting_at_once_keep_one_chain_and_each_its_own_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, Rotation::Never).unwrap();
        let (args, limits) = (Vec::new(), Limits::default());
        let ids: Vec<String> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let run = log.run().unwrap();
                        for _ in 0..200 {
                            run.run_start(limits_start(&args, &limits)).unwrap();
                            run.run_end(&RunEnd::refused(77, "test")).unwrap();
                        }
                        run.run_id().to_owned()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert_eq!(log.finish().unwrap(), 4 * 400);
        let report = crate::audit::verify_files(&[&path]).unwrap();
        assert_eq!(report.verdict, crate::audit::Verdict::Ok);
        assert_eq!(report.records, 4 * 400);
        let text = std::fs::read_to_string(&path).unwrap();
        for id in ids {
            let events: Vec<String> = text
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter(|v| v["run_id"] == id.as_str())
                .map(|v| v["event"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(events.len(), 400);
            assert!(
                events
                    .chunks(2)
                    .all(|pair| pair == ["run_start", "run_end"]),
                "{id}: records out of order"
            );
        }
    }

    #[test]
    fn a_lock_held_elsewhere_for_good_ends_in_a_timeout_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path, Rotation::Never).unwrap();
        log.set_sync_timeout(Duration::from_millis(200));
        let (args, limits) = (Vec::new(), Limits::default());
        let other = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        other.lock().unwrap();
        // The worker takes this record and waits for the lock, holding the writer.
        let first = log.run().unwrap();
        first.run_end(&RunEnd::refused(77, "test")).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let second = log.run().unwrap();
        let started = std::time::Instant::now();
        let err = second
            .run_start(limits_start(&args, &limits))
            .expect_err("the plugin must not run");
        assert!(matches!(err, AuditError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        other.unlock().unwrap();
        drop((first, second));
        // The queued records and an fsync now: no 200 ms bound for those on a busy
        // machine.
        log.set_sync_timeout(SYNC_TIMEOUT);
        log.finish().unwrap();
        let report = crate::audit::verify_files(&[&path]).unwrap();
        assert_eq!(report.verdict, crate::audit::Verdict::Ok);
        assert_eq!(report.records, 2);
    }

    fn request(url: String, sent: bool) -> crate::net::EffectRecord {
        use crate::net::effects::{CHECK_ADDRESS, CHECK_URL, EffectOutcome};
        crate::net::EffectRecord {
            kind: "http_get",
            url: Some(url),
            address: sent.then(|| "127.0.0.1:8000".to_owned()),
            status: sent.then_some(200),
            bytes_out: 0,
            bytes_in: 0,
            duration_ms: 1.0,
            rule: "plugins.p.net.allow[0]".into(),
            checked: Some(if sent {
                vec![CHECK_URL, CHECK_ADDRESS]
            } else {
                vec![]
            }),
            outcome: if sent {
                EffectOutcome::Performed
            } else {
                EffectOutcome::Denied
            },
            reason: (!sent).then(|| "\u{1}".repeat(512)),
            limit: None,
            dropped_headers: Vec::new(),
            sleep_ms: None,
        }
    }

    fn sleep_record() -> crate::net::EffectRecord {
        crate::net::EffectRecord {
            kind: crate::net::effects::KIND_SLEEP,
            checked: None,
            url: None,
            address: None,
            status: None,
            reason: None,
            sleep_ms: Some(5),
            ..request(String::new(), true)
        }
    }

    fn report(effects: Vec<crate::net::EffectRecord>) -> RunReport {
        RunReport {
            result: Ok(crate::abi::ExecuteResult::Success("ok".into())),
            stdout: Vec::new(),
            stderr: Vec::new(),
            fuel_consumed: 1,
            duration: Duration::from_millis(1),
            output_bytes: 2,
            runtime_denials: crate::runtime::observed::RuntimeDenials::default(),
            effects,
            accesses: crate::runtime::observed::Accesses::default(),
        }
    }

    /// Runs `report` through `run_finished` after a `run_start`, and returns the
    /// records it wrote and how many bytes they took.
    fn finish(report: &RunReport) -> (Vec<serde_json::Value>, u64) {
        finish_with(report, Redactor::default(), &"v".repeat(4096)).0
    }

    /// [`finish`] with a redactor and a plugin version; also the closing lines.
    fn finish_with(
        report: &RunReport,
        redactor: Redactor,
        version: &str,
    ) -> ((Vec<serde_json::Value>, u64), Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, Rotation::Never).unwrap();
        let mut run = log.run().unwrap();
        run.set_redactor(Arc::new(redactor));
        run.set_plugin(&PluginInfo::new("p", Some(version.to_owned()), [7; 32]))
            .unwrap();
        let (args, limits) = (Vec::new(), Limits::default());
        run.run_start(limits_start(&args, &limits)).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        run.run_finished(report, 0).unwrap();
        drop(run);
        log.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let after = text.len() as u64;
        let records = text
            .lines()
            .skip(1)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let lines = text.lines().skip(1).map(str::to_owned).collect();
        ((records, after - before), lines)
    }

    #[test]
    fn a_request_record_is_at_most_ten_kib_besides_the_host_paths() {
        use crate::net::effects::{
            MAX_DROPPED_HEADERS, MAX_RECORDED_HEADER, MAX_RECORDED_REASON, MAX_RECORDED_URL,
        };
        // Every string at its longest, escaped six-fold where the plugin can make it
        // so, and full of a granted value whose marker is as long as markers get.
        let places = crate::audit::redact::MAX_REDACTIONS + 1;
        let worst = |fill: &str, len: usize| {
            let text = format!("{}{}", fill.repeat(len), "abcd".repeat(places));
            let cut = crate::escape::cut(&text, len).into_owned();
            format!("{}{}", &cut[..cut.len() - 8], "abcd".repeat(places))
        };
        let mut record = request(worst("a", MAX_RECORDED_URL), true);
        record.reason = Some(worst("\u{1}", MAX_RECORDED_REASON));
        record.dropped_headers = (0..MAX_DROPPED_HEADERS)
            .map(|_| worst("\u{1}", MAX_RECORDED_HEADER))
            .chain(["...[cut]".to_owned()])
            .collect();
        let redactor = Redactor::new([("N".repeat(200), "abcd")]);
        let version = worst("\u{1}", 4096);
        let ((records, _), lines) = finish_with(&report(vec![record]), redactor, &version);
        assert_eq!(records[0]["event"], "effect");
        assert!(lines[0].contains("<redacted:NNNN"), "{}", lines[0]);
        // The module and the policy have no paths here.
        assert!(lines[0].len() <= 10 * 1024, "{}", lines[0].len());
    }

    #[test]
    fn sleeps_never_take_the_place_of_a_request() {
        let mut effects: Vec<_> = (0..200).map(|_| sleep_record()).collect();
        effects.push(request("http://127.0.0.1:8000/".into(), true));
        let (records, _) = finish(&report(effects));
        let kinds: Vec<&str> = records
            .iter()
            .filter(|r| r["event"] == "effect")
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.len(), MAX_LOGGED_SLEEPS + 1);
        assert_eq!(kinds.last(), Some(&"http_get"));
        let end = records.last().unwrap();
        assert_eq!(end["event"], "run_end");
        assert_eq!(end["sleeps"], 200);
        assert_eq!(end["slept_ms"], 1000);
        assert!(end.get("effects_dropped").is_none(), "{end}");
    }

    #[test]
    fn every_request_of_a_call_is_recorded_within_the_reserve() {
        // 256 requests that passed every check, each with a URL of the longest kept.
        let url = format!("http://127.0.0.1:8000/{}", "a".repeat(4096));
        let url = crate::escape::cut(&url, crate::net::effects::MAX_RECORDED_URL).into_owned();
        let effects = (0..256).map(|_| request(url.clone(), true)).collect();
        let (records, bytes) = finish(&report(effects));
        let written = records.iter().filter(|r| r["event"] == "effect").count();
        assert_eq!(written, 256);
        assert!(bytes <= CLOSING_RESERVE, "{bytes}");
    }

    #[test]
    fn closing_records_that_would_not_fit_the_reserve_are_counted_sent_requests_first() {
        // Refused requests whose URLs escape to six bytes a byte, then sent ones, and
        // runtime denials of the longest escaped paths: more than the reserve holds.
        let wide = format!("http://x/{}", "\u{1}".repeat(2048));
        let mut effects: Vec<_> = (0..200).map(|_| request(wide.clone(), false)).collect();
        effects.extend((0..50).map(|i| request(format!("http://127.0.0.1:8000/{i}"), true)));
        effects.extend((0..4).map(|_| sleep_record()));
        let mut report = report(effects);
        let escaped = "\u{1}".repeat(crate::runtime::observed::MAX_DENIED_PATH);
        report.runtime_denials.recorded = (0..MAX_LOGGED_DENIALS)
            .map(|_| RuntimeDeny {
                call: "path_rename",
                path: escaped.clone(),
                target: Some(escaped.clone()),
                preopen: None,
                errno: crate::runtime::observed::Refusal::Perm,
                reason: None,
            })
            .collect();
        let (records, bytes) = finish(&report);
        let denials = records
            .iter()
            .filter(|r| r["event"] == "runtime_deny")
            .count();
        assert_eq!(denials, MAX_LOGGED_DENIALS);
        assert!(bytes <= CLOSING_RESERVE, "{bytes}");
        let effects: Vec<&serde_json::Value> =
            records.iter().filter(|r| r["event"] == "effect").collect();
        let sent = effects
            .iter()
            .filter(|e| e["kind"] == "http_get" && e["outcome"] == "performed")
            .count();
        let refused = effects.iter().filter(|e| e["outcome"] == "denied").count();
        assert_eq!(sent, 50);
        assert!(refused < 200, "{refused}");
        let end = records.last().unwrap();
        assert_eq!(end["event"], "run_end");
        assert_eq!(end["effects_dropped"], 200 - refused as u64, "{end}");
        assert_eq!(end["sleeps"], 4, "{end}");
        // Still in the call's order.
        let first_sent = effects.iter().position(|e| e["outcome"] == "performed");
        assert_eq!(first_sent, Some(refused));
    }
}
