//! The public handle: [`AuditLog`] (one open log, one background writer) and
//! [`AuditRun`] (the records of one load/run, sharing one `run_id`).
//!
//! Size: the handle and one method per record a run emits, with the unit tests of its
//! threading (shared fsyncs, queued records, a lock held elsewhere); the closing
//! records' budget is `closing`, the numbers `bounds`.

use super::appender::Appender;
use super::bounds::{MAX_RECORD_BYTES, bounded};
use super::chain::Pending;
use super::commit::{GroupCommit, SyncingRun};
use super::json;
use super::layer::{self, AUDIT_TARGET};
use super::log_set::Rotation;
use super::prepared::{Prepared, Redacted};
use super::record::{
    DeclaredFields, ErrorFields, Event, LimitFields, LimitsRecord, PluginInfo, PolicyInfo,
    RESERVED_FIELDS, RunEnd, RunStartArgs,
};
use super::redact::Redactor;
use super::writer::{ChainWriter, MSG_BARRIER, MSG_RECORD, Shared};
use super::{AuditError, Clock};
use crate::limits::{LimitKind, Limits};
use crate::runtime::RuntimeDeny;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// How long [`AuditLog::sync`] and [`AuditLog::finish`] wait for the writer by default
/// ([`AuditLog::set_sync_timeout`]).
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Messages queued for the writer thread at most; an emitter waits when it is full
/// (nothing is dropped). `tracing-appender`'s default of 128,000 allocates and
/// touches 5 MB at every open, a millisecond of every `warden run`; a run emits a
/// few messages, and the writer drains them as they come.
const QUEUED_MESSAGES: usize = 4096;

/// An open audit log.
///
/// Each record is composed once, by the [`AuditRun`] that emits it, into a message for
/// the one writer that appends to the file under its lock: on the emitting thread
/// when the writer and the file's lock are free and nothing is queued, else through
/// `tracing-appender`'s non-blocking writer (not lossy: a full queue makes the emitter
/// wait) to its worker thread. A run's closing records are one message: one lock, one
/// `write`. Each record is also a `tracing` event (target [`AUDIT_TARGET`], level
/// `TRACE`, `event` and `run_id` only), for diagnostics.
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
    clock: Clock,
    ids: RunIds,
    appender: Arc<Appender>,
    writer: NonBlocking,
    shared: Arc<Shared>,
    guard: Option<WorkerGuard>,
    barriers: AtomicU64,
    sync_timeout: Duration,
    group_commit: GroupCommit,
}

/// Random run ids: the operating system's randomness, drawn 64 ids at a time.
#[derive(Debug, Default)]
struct RunIds(Mutex<IdPool>);

#[derive(Debug, Default)]
struct IdPool {
    bytes: Vec<u8>,
    next: usize,
}

impl RunIds {
    const BATCH: usize = 64 * 16;

    /// 16 random bytes no other run of this handle had.
    fn draw(&self) -> Result<[u8; 16], AuditError> {
        let mut pool = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.next + 16 > pool.bytes.len() {
            let mut fresh = vec![0u8; Self::BATCH];
            getrandom::fill(&mut fresh).map_err(|e| AuditError::Random {
                message: e.to_string(),
            })?;
            *pool = IdPool {
                bytes: fresh,
                next: 0,
            };
        }
        let mut id = [0u8; 16];
        let start = pool.next;
        id.copy_from_slice(&pool.bytes[start..start + 16]);
        // Not kept once handed out.
        pool.bytes[start..start + 16].fill(0);
        pool.next += 16;
        Ok(id)
    }
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
            .buffered_lines_limit(QUEUED_MESSAGES)
            .thread_name("warden-audit")
            .finish(appender.worker());
        Ok(AuditLog {
            path,
            clock,
            ids: RunIds::default(),
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
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut id = String::with_capacity(32);
        for byte in self.ids.draw()? {
            id.push(char::from(DIGITS[usize::from(byte >> 4)]));
            id.push(char::from(DIGITS[usize::from(byte & 0xf)]));
        }
        Ok(self.run_of(id, Arc::default(), true))
    }

    /// Starts the records of a run of a loaded plugin: the load's `plugin`, `policy`,
    /// redactor and `run_start` fields, composed once ([`Prepared::for_load`]); a new
    /// random `run_id`, or the load's own (`run_id`) for its first run, which carries
    /// no `who` (the load's records did).
    ///
    /// # Errors
    ///
    /// [`AuditError::Random`] when the operating system has no randomness to give.
    pub(crate) fn run_prepared(
        &self,
        run_id: Option<String>,
        prepared: &Arc<Prepared>,
    ) -> Result<AuditRun<'_>, AuditError> {
        match run_id {
            Some(id) => Ok(self.run_of(id, Arc::clone(prepared), false)),
            None => {
                let mut run = self.run()?;
                run.prepared = Arc::clone(prepared);
                Ok(run)
            }
        }
    }

    fn run_of(&self, run_id: String, prepared: Arc<Prepared>, first: bool) -> AuditRun<'_> {
        // The ids are warden's own hex; anything else is escaped all the same.
        let run_id_json = if run_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            let mut quoted = String::with_capacity(run_id.len() + 2);
            quoted.push('"');
            quoted.push_str(&run_id);
            quoted.push('"');
            quoted
        } else {
            json::to_string(&run_id).unwrap_or_else(|_| "\"\"".into())
        };
        AuditRun {
            log: self,
            run_id,
            run_id_json,
            prepared,
            first: std::sync::atomic::AtomicBool::new(first),
        }
    }

    /// Waits until every record emitted so far is appended to the file and on disk
    /// (`fsync`), without stopping the writer.
    ///
    /// Group commit: when several threads sync at once, one `fsync` serves all of
    /// them. A caller whose records an `fsync` already in progress does not cover
    /// waits for it and then, if needed, leads the next one, which covers every record
    /// appended by the time it starts (see `commit`).
    ///
    /// # Errors
    ///
    /// The first failure of any record so far, or [`AuditError::Timeout`].
    pub fn sync_data(&self) -> Result<(), AuditError> {
        // This caller's records are appended first; `ticket` counts them in.
        self.barrier(false)?;
        let ticket = self.shared.appended();
        self.group_commit
            .sync(ticket, || self.shared.appended(), || self.barrier(true))?;
        self.shared.check()
    }

    /// Counts a run that will call [`AuditLog::sync_data`] until the guard is
    /// dropped: a caller about to lead an `fdatasync` lets such runs catch up first
    /// (briefly), so that one serves them all (see `commit`).
    pub(crate) fn syncing_run(&self) -> SyncingRun<'_> {
        self.group_commit.join()
    }

    /// How many `fsync`s [`AuditLog::sync_data`] has issued (group commit makes it
    /// fewer than its callers).
    pub fn fsyncs(&self) -> u64 {
        self.group_commit.fsyncs()
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
        // The `fdatasync` runs without holding the writer: other threads go on
        // appending meanwhile (group commit, [`AuditLog::sync_data`]).
        let idle = self
            .appender
            .when_idle(|chain| if fsync { chain.sync_target() } else { None });
        if let Some(target) = idle {
            if let Some(Err(e)) = target.map(|t| t.sync_data()) {
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

    /// Appends `records` of the run whose `run_id` (a JSON string) is given, stamped
    /// now, in order and as one message: one lock, one `write`. Each record is
    /// composed here, once, straight into the message the writer appends (a buffer
    /// this thread keeps): after `prev`, `who` (on the first, when given), the run's
    /// `common` parts, then the members of each of its parts. `tracing` hears of each
    /// (target [`AUDIT_TARGET`], level `TRACE`) for diagnostics, without its fields.
    fn emit(
        &self,
        run_id: &str,
        who: Option<&Redacted>,
        common: &str,
        records: &[(Event, &[&Redacted])],
    ) -> Result<(), AuditError> {
        self.shared.check()?;
        let ts = layer::timestamp((self.clock)());
        with_message_buffer(|message| {
            message.push(MSG_RECORD);
            let mut head = String::with_capacity(64);
            for (i, (event, parts)) in records.iter().enumerate() {
                head.clear();
                head.push_str("\"event\":\"");
                head.push_str(event.as_str());
                head.push_str("\",\"run_id\":");
                head.push_str(run_id);
                let body = Pending::encode_with(&ts, &head, message, |out| {
                    if let Some(who) = who.filter(|_| i == 0) {
                        out.extend_from_slice(b",\"who\":");
                        out.extend_from_slice(who.as_str().as_bytes());
                    }
                    out.extend_from_slice(common.as_bytes());
                    for members in parts.iter().map(|p| p.members()) {
                        if !members.is_empty() {
                            out.push(b',');
                            out.extend_from_slice(members.as_bytes());
                        }
                    }
                });
                check_body(*event, &message[body])?;
            }
            if !self.appender.try_append_now(message) {
                self.appender.enqueue();
                if self.writer.clone().write_all(message).is_err() {
                    self.shared.fail(AuditError::Stopped {
                        path: self.path.clone(),
                    });
                }
            }
            Ok(())
        })?;
        for (event, _) in records {
            tracing::trace!(target: AUDIT_TARGET, event = event.as_str(), run_id, "audit record");
        }
        self.shared.check()
    }
}

/// A record's body (what follows `prev`) as the log takes it: at most
/// [`MAX_RECORD_BYTES`], and, as serialized JSON is, without a raw control character
/// (the line separators among them: every one in a string is escaped).
fn check_body(event: Event, body: &[u8]) -> Result<(), AuditError> {
    if body.len() > MAX_RECORD_BYTES {
        return Err(AuditError::Record {
            event: event.as_str(),
            message: format!(
                "the record would be {} bytes; the log takes at most {MAX_RECORD_BYTES} (with `log_args = true`, pass smaller arguments)",
                body.len()
            ),
        });
    }
    if body.iter().fold(false, |raw, &b| raw | (b < 0x20)) {
        return Err(AuditError::Record {
            event: event.as_str(),
            message: "a raw control character in serialized JSON".into(),
        });
    }
    Ok(())
}

/// Runs `f` with an empty message buffer: the one this thread keeps (taken, and put
/// back after, so that a nested call simply gets a new one), so that a record is
/// composed without an allocation of its size each time. A buffer grown past
/// [`KEPT_MESSAGE`] is not kept.
fn with_message_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    thread_local! {
        static MESSAGE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }
    // Gone while the thread exits: a new buffer then.
    let mut buffer = MESSAGE.try_with(std::cell::Cell::take).unwrap_or_default();
    buffer.clear();
    let result = f(&mut buffer);
    if buffer.capacity() <= KEPT_MESSAGE {
        let _ = MESSAGE.try_with(|kept| kept.set(buffer));
    }
    result
}

/// The largest message buffer a thread keeps between records.
const KEPT_MESSAGE: usize = 64 * 1024;

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
    /// What the kernel enforces around the plugin's guest code.
    pub confinement: &'a crate::confinement::Confinement,
}

#[cfg(test)]
impl<'a> RunStart<'a> {
    /// A start with `args` (not logged) and `limits`, and no `load` record.
    pub(super) fn for_test(args: &'a [String], limits: &'a Limits) -> Self {
        static IN_PROCESS: std::sync::LazyLock<crate::confinement::Confinement> =
            std::sync::LazyLock::new(crate::confinement::Confinement::in_process);
        RunStart {
            args,
            load: None,
            log_args: false,
            limits,
            confinement: &IN_PROCESS,
        }
    }
}

/// The records of one load/run: all share its `run_id`, and once known its `plugin`
/// and `policy`; every string in them passes the run's [`Redactor`]
/// ([`AuditRun::set_redactor`]).
#[derive(Debug)]
pub struct AuditRun<'log> {
    log: &'log AuditLog,
    run_id: String,
    /// `run_id` as a JSON string.
    run_id_json: String,
    /// The run's redactor and what it composed of `plugin`, `policy`, `who` and the
    /// fixed fields of `run_start`.
    prepared: Arc<Prepared>,
    /// Whether the run's first record (which carries `who`) is still to come.
    pub(super) first: std::sync::atomic::AtomicBool,
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
        self.prepared = Arc::new(self.prepared.with_redactor(redactor));
    }

    /// The run's redactor.
    pub fn redactor(&self) -> &Redactor {
        self.prepared.redactor()
    }

    /// The run's redactor and fixed fragments.
    pub(super) fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// `fields` as JSON, through the run's redactor: the choke point every part of
    /// every record passes.
    pub(super) fn fields<T: Serialize + ?Sized>(
        &self,
        event: Event,
        fields: &T,
    ) -> Result<Redacted, AuditError> {
        self.prepared.fields(event, fields)
    }

    /// Emits `records` (each an event and the parts whose members follow the run's
    /// `plugin` and `policy`) as one message; the run's first record also carries
    /// `who`.
    fn emit_records(&self, records: &[(Event, &[&Redacted])]) -> Result<(), AuditError> {
        let common = self.prepared.common()?;
        let who = match records.first() {
            Some((event, _)) if self.first.swap(false, std::sync::atomic::Ordering::Relaxed) => {
                Some(self.prepared.who(*event)?)
            }
            _ => None,
        };
        self.log
            .emit(&self.run_id_json, who.as_deref(), common, records)
    }

    pub(super) fn emit_json(
        &self,
        event: Event,
        fields: Option<&Redacted>,
    ) -> Result<(), AuditError> {
        self.emit_records(&[(event, fields.as_slice())])
    }

    /// Appends `records`, in order, under one lock with one `write`: a run's closing
    /// records.
    pub(super) fn emit_all(&self, records: &[(Event, &Redacted)]) -> Result<(), AuditError> {
        let records = records
            .iter()
            .map(|(event, fields)| (*event, std::slice::from_ref(fields)))
            .collect::<Vec<_>>();
        self.emit_records(&records)
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
        self.prepared = Arc::new(self.prepared.with_policy(policy)?);
        Ok(())
    }

    /// Attaches `plugin` to this and every later record of the run.
    ///
    /// # Errors
    ///
    /// When it cannot be serialized.
    pub fn set_plugin(&mut self, plugin: &PluginInfo) -> Result<(), AuditError> {
        self.prepared = Arc::new(self.prepared.with_plugin(plugin)?);
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
        let keys: BTreeMap<String, serde::de::IgnoredAny> = serde_json::from_str(fields.as_str())
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
        // `load`, `args_count`, `args`, `limits`, `confinement`: what is the load's
        // own was composed once, with the load.
        let load = match start.load {
            Some(id) => Some(self.prepared.load(id)?),
            None => None,
        };
        let args = self.fields(
            Event::RunStart,
            &RunStartArgs {
                args_count: start.args.len(),
                args: start.log_args.then_some(start.args),
            },
        )?;
        let fixed = self
            .prepared
            .start(&LimitsRecord::from(start.limits), start.confinement)?;
        let (with_load, without_load);
        let parts: &[&Redacted] = match load.as_deref() {
            Some(load) => {
                with_load = [load, &args, &*fixed];
                &with_load
            }
            None => {
                without_load = [&args, &*fixed];
                &without_load
            }
        };
        self.emit_records(&[(Event::RunStart, parts)])?;
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
            confinement: &crate::confinement::Confinement::in_process(),
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

    /// A lock on `path` that another open file description holds, as another process
    /// would.
    fn held_elsewhere(path: &Path) -> std::fs::File {
        let other = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        other.lock().unwrap();
        other
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
        let other = held_elsewhere(&path);
        let first = log.run().unwrap();
        // Emitting does not wait for the lock: the record is queued for the worker.
        first.run_end(&RunEnd::refused(77, "test")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        std::thread::scope(|s| {
            let syncing = s.spawn(|| {
                let second = log.run().unwrap();
                // Must wait for the queued record, then follow it.
                second
                    .run_start(RunStart::for_test(&args, &limits))
                    .unwrap();
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
                            run.run_start(RunStart::for_test(&args, &limits)).unwrap();
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
        let other = held_elsewhere(&path);
        // The worker takes this record and waits for the lock, holding the writer.
        let first = log.run().unwrap();
        first.run_end(&RunEnd::refused(77, "test")).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let second = log.run().unwrap();
        let started = std::time::Instant::now();
        let err = second
            .run_start(RunStart::for_test(&args, &limits))
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
}
