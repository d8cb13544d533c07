//! The innermost writer: lock, read the chain head, append, unlock.
//!
//! `ChainWriter` is the only code that appends to the log. It sits behind an
//! `Appender`: the thread that emits a record appends it itself when nothing is
//! queued and no lock is busy, and otherwise it goes through `tracing-appender`'s
//! non-blocking writer to the worker thread. It receives one message per record, or
//! per run's closing records (see `super::chain::Pending`), or per barrier. For each
//! message it
//!
//! 1. takes an exclusive `flock` on the file (with rotation, first on the lock file
//!    that guards the choice of file);
//! 2. finds the chain head: one `lseek` (a `statx` of size and blocks for a
//!    `run_start`; never a full `fstat`, which reads the file's times and so makes
//!    the next write update them) tells whether the file still has the length
//!    this writer left it at, and then nobody appended in between and the head it
//!    computed is used without reading; else it reads the head from the end of the
//!    file itself (other processes may have appended since), skipping a torn last
//!    line;
//! 3. for a `run_start`, makes sure the room for the run's closing records is
//!    reserved past the end of the file (`fallocate`, only when what this writer
//!    reserved before is used up or was lost: see `super::reserve`);
//! 4. appends `{…,"seq":N,…,"prev":"…",…}\n` for each record, chained, with one
//!    `write` (and, after a torn line, the `\n` that ends it), rolling the file back
//!    to its old length if the write fails part-way;
//! 5. unlocks.
//!
//! So any number of warden processes may append to one log, and the chain stays
//! valid across them and across rotated files.
//!
//! Size: lock, head, append and rotation are one protocol, every step under the same
//! locks, so they are read in one file; its unit tests (rotation across files and
//! writers, torn lines) stay beside it.
//!
//! # Rotation
//!
//! `never` appends to `PATH`. `hourly` and `daily` append to `PATH.YYYY-MM-DD-HH` and
//! `PATH.YYYY-MM-DD` (UTC, the names `tracing-appender`'s rolling appender uses),
//! choosing the file from the record's `ts` under the lock of `.NAME.lock` next to
//! `PATH`. The lock file also remembers the newest file written, so a clock that goes
//! back never sends a record to an older file. A new file continues the chain of the
//! newest older one. `size:N` appends to `PATH` and, under its lock, moves it to
//! `PATH.YYYY-MM-DD-HH-MM-SS[-N]` (a name that sorts after every earlier one) when
//! the next record would take it past N bytes; a writer whose open file was moved
//! aside by another process notices (the inode at `PATH` changed) and reopens `PATH`.
//! A file that is rotated (moved aside, or left behind by a new period) is never
//! written again: the room reserved past its end for closing records is released
//! then (cut to its own length under its lock), so it takes on disk what it holds.
//! With a retention count, the oldest files beyond it are deleted when a new one
//! starts. `tracing-appender`'s own `RollingFileAppender` is not used: it
//! reports failures on stderr and carries on (warden must fail closed), and each
//! process would pick its file outside any lock.

use super::chain::{self, Head, Pending, Tail, TailError};
use super::error::AuditError;
use super::log_set::{
    Rotation, is_stamp, lock_path_for, log_set, rotated_path, unused_rotated_path,
};
use super::reserve::{Reserve, reserve_closing_space, size_of};
use crate::files::{self, FileError};
use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// State shared by the writer thread and the `super::AuditLog` handle.
#[derive(Debug)]
pub(crate) struct Shared {
    path: PathBuf,
    error: Mutex<Option<AuditError>>,
    confirmed: Mutex<u64>,
    confirmed_changed: Condvar,
    appended: AtomicU64,
}

impl Shared {
    pub fn new(path: PathBuf) -> Arc<Self> {
        Arc::new(Shared {
            path,
            error: Mutex::new(None),
            confirmed: Mutex::new(0),
            confirmed_changed: Condvar::new(),
            appended: AtomicU64::new(0),
        })
    }

    /// Keeps the first failure; every later check reports it.
    pub fn fail(&self, error: AuditError) {
        let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(error);
        }
    }

    /// The first failure so far, if any.
    pub fn check(&self) -> Result<(), AuditError> {
        match &*self.error.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Records this writer appended.
    pub fn appended(&self) -> u64 {
        self.appended.load(Ordering::Acquire)
    }

    /// Waits until barrier `id` has passed through the writer.
    pub fn wait_for(&self, id: u64, timeout: Duration) -> Result<(), AuditError> {
        let deadline = Instant::now() + timeout;
        let mut confirmed = self
            .confirmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *confirmed < id {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(AuditError::Timeout {
                    path: self.path.clone(),
                    waited: timeout,
                });
            }
            confirmed = self
                .confirmed_changed
                .wait_timeout(confirmed, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Ok(())
    }

    fn confirm(&self, id: u64) {
        let mut confirmed = self
            .confirmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *confirmed = (*confirmed).max(id);
        self.confirmed_changed.notify_all();
    }
}

/// A log file to `fdatasync` ([`ChainWriter::sync_target`]).
pub(crate) struct SyncTarget {
    file: Arc<File>,
    path: PathBuf,
}

impl SyncTarget {
    /// `fdatasync`s the file: every record appended to it so far is on disk.
    pub fn sync_data(&self) -> Result<(), AuditError> {
        self.file
            .sync_data()
            .map_err(|e| AuditError::write(&self.path, e))
    }
}

/// Message kinds on the channel to the writer.
pub(crate) const MSG_RECORD: u8 = b'R';
/// A barrier: `B<id>` or `B<id>S` (also `fsync` the file).
pub(crate) const MSG_BARRIER: u8 = b'B';

/// An exclusive or shared `flock`, released on drop.
struct Locked<'a>(&'a File);

impl<'a> Locked<'a> {
    fn exclusive(file: &'a File, path: &Path) -> Result<Self, AuditError> {
        file.lock().map_err(|e| AuditError::lock(path, e))?;
        Ok(Locked(file))
    }

    /// The lock if it can be had without waiting (`None` when another holds it).
    fn try_exclusive(file: &'a File, path: &Path) -> Result<Option<Self>, AuditError> {
        match file.try_lock() {
            Ok(()) => Ok(Some(Locked(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(AuditError::lock(path, e)),
        }
    }

    /// [`Locked::exclusive`] when `wait`, else [`Locked::try_exclusive`].
    fn take(file: &'a File, path: &Path, wait: bool) -> Result<Option<Self>, AuditError> {
        if wait {
            Self::exclusive(file, path).map(Some)
        } else {
            Self::try_exclusive(file, path)
        }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Opens (creating with mode 0600, and its directory with 0700) a file to append
/// to and read from, through [`crate::files::open_append`]: never through a symlink,
/// created exclusively when new; refuses anything but a regular file.
fn open_append(path: &Path) -> Result<File, AuditError> {
    if let Some(parent) = path.parent() {
        files::create_dirs(parent, 0o700).map_err(|e| AuditError::open(parent, io_of(e)))?;
    }
    files::open_append(path, 0o600).map_err(|e| match e {
        FileError::Symlink { path, target } => AuditError::Symlink { path, target },
        FileError::NotAFile { path } => AuditError::NotAFile { path },
        other => AuditError::open(path, io_of(other)),
    })
}

/// The operating system's error inside `e`, or `e` itself as one.
fn io_of(e: FileError) -> io::Error {
    match e {
        FileError::Io { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}

fn tail_of(file: &File, path: &Path) -> Result<Tail, AuditError> {
    chain::scan_tail(file).map_err(|e| match e {
        TailError::Io(e) => AuditError::write(path, e),
        TailError::Foreign(what) => AuditError::NotAnAuditLog {
            path: path.into(),
            reason: format!("it ends with {what}"),
        },
    })
}

/// The file and its cached handle for the current rotation period.
struct Period {
    stamp: String,
    path: PathBuf,
    file: Arc<File>,
    known: Option<Known>,
}

/// The file's length right after this writer's last append, the head after it, and
/// the room this writer reserved past it.
#[derive(Debug, Clone)]
struct Known {
    len: u64,
    head: Head,
    reserve: Reserve,
}

enum Target {
    Single {
        path: PathBuf,
        file: Arc<File>,
        known: Option<Known>,
        /// With `Rotation::Size`: the most `path` may hold before it is moved aside.
        max_size: Option<u64>,
    },
    Rotating {
        base: PathBuf,
        rotation: Rotation,
        lock_path: PathBuf,
        lock: File,
        current: Option<Period>,
    },
}

/// The writer at the end of the non-blocking pipe.
pub(crate) struct ChainWriter {
    target: Target,
    shared: Arc<Shared>,
    line: Vec<u8>,
    /// How many rotated files to keep (the oldest beyond are deleted); `None`: all.
    keep: Option<usize>,
}

impl ChainWriter {
    /// Opens the log for `rotation` and checks, under its lock, that it can continue
    /// the chain: fail closed before anything runs.
    #[cfg(test)]
    pub fn open(
        path: &Path,
        rotation: Rotation,
        now_ts: &str,
        shared: Arc<Shared>,
    ) -> Result<Self, AuditError> {
        Self::open_keeping(path, rotation, None, now_ts, shared)
    }

    /// [`ChainWriter::open`], deleting the oldest rotated files beyond `keep`.
    pub fn open_keeping(
        path: &Path,
        rotation: Rotation,
        keep: Option<usize>,
        now_ts: &str,
        shared: Arc<Shared>,
    ) -> Result<Self, AuditError> {
        let target = match rotation {
            Rotation::Never | Rotation::Size(_) => {
                let file = open_append(path)?;
                {
                    let _lock = Locked::exclusive(&file, path)?;
                    tail_of(&file, path)?;
                }
                Target::Single {
                    path: path.into(),
                    file: Arc::new(file),
                    known: None,
                    max_size: match rotation {
                        Rotation::Size(bytes) => Some(bytes),
                        _ => None,
                    },
                }
            }
            Rotation::Hourly | Rotation::Daily => {
                let lock_path = lock_path_for(path)?;
                let lock = open_append(&lock_path)?;
                let mut current = None;
                {
                    let _lock = Locked::exclusive(&lock, &lock_path)?;
                    let (stamp, _) = choose_stamp(rotation, now_ts.as_bytes(), &lock, &lock_path)?;
                    let period = period(path, stamp, &mut current)?;
                    let _file_lock = Locked::exclusive(&period.file, &period.path)?;
                    tail_of(&period.file, &period.path)?;
                }
                Target::Rotating {
                    base: path.into(),
                    rotation,
                    lock_path,
                    lock,
                    current,
                }
            }
        };
        Ok(ChainWriter {
            target,
            shared,
            line: Vec::with_capacity(512),
            keep,
        })
    }

    /// Appends the records in `message` (one, or a run's closing records: all under
    /// one lock, with one `write`). Without `wait`, gives up (`Ok(false)`, nothing
    /// written) when a file lock is held by someone else.
    fn append(&mut self, message: &[u8], wait: bool) -> Result<bool, AuditError> {
        let malformed = || AuditError::Record {
            event: "unknown",
            message: "malformed message to the audit writer".into(),
        };
        let pending = Pending::parse_all(message).ok_or_else(malformed)?;
        let first = *pending.first().ok_or_else(malformed)?;
        let line = &mut self.line;
        let keep = self.keep;
        match &mut self.target {
            Target::Single {
                path,
                file,
                known,
                max_size: None,
            } => {
                let Some(_lock) = Locked::take(file, path, wait)? else {
                    return Ok(false);
                };
                append_locked(file, path, known, &pending, line, || Ok(None))
            }
            Target::Single {
                path,
                file,
                known,
                max_size: Some(max),
            } => {
                let Some(done) = append_sized(path, file, known, *max, keep, &pending, line, wait)?
                else {
                    return Ok(false);
                };
                Ok(done)
            }
            Target::Rotating {
                base,
                rotation,
                lock_path,
                lock,
                current,
            } => {
                let Some(_lock) = Locked::take(lock, lock_path, wait)? else {
                    return Ok(false);
                };
                let (stamp, newest) = choose_stamp(*rotation, first.ts, lock, lock_path)?;
                let new_period = current.as_ref().map(|p| &p.stamp) != Some(&stamp);
                let period = period(base, stamp, current)?;
                let Some(_file_lock) = Locked::take(&period.file, &period.path, wait)? else {
                    return Ok(false);
                };
                if new_period {
                    apply_retention(base, keep, Some(&period.path));
                }
                let stamp = &period.stamp;
                append_locked(
                    &period.file,
                    &period.path,
                    &mut period.known,
                    &pending,
                    line,
                    || head_before(base, Some(stamp)),
                )?;
                if newest.as_deref() != Some(period.stamp.as_str()) {
                    write_memo(lock, &period.stamp)
                        .map_err(|e| AuditError::write(&*lock_path, e))?;
                    // A newer file started: the one before it is never written again.
                    if let Some(older) = newest.as_deref() {
                        release_period(base, older);
                    }
                }
                Ok(())
            }
        }?;
        self.shared
            .appended
            .fetch_add(pending.len() as u64, Ordering::AcqRel);
        Ok(true)
    }

    /// Appends the record in `message` (`MSG_RECORD` first) if no other process holds
    /// the file's lock right now; `false` when nothing was done. A failure is kept in
    /// `Shared`, as for queued records.
    pub(super) fn append_now(&mut self, message: &[u8]) -> bool {
        let Some((&MSG_RECORD, record)) = message.split_first() else {
            return false;
        };
        match self.append(record, false) {
            Ok(done) => done,
            Err(e) => {
                self.shared.fail(e);
                true
            }
        }
    }

    fn barrier(&mut self, message: &[u8]) -> Result<(), AuditError> {
        let (digits, sync) = match message.strip_suffix(b"S") {
            Some(digits) => (digits, true),
            None => (message, false),
        };
        let id = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<u64>().ok());
        let result = if sync { self.sync_data() } else { Ok(()) };
        if let Some(id) = id {
            self.shared.confirm(id);
        }
        result
    }

    pub(crate) fn sync_data(&self) -> Result<(), AuditError> {
        match self.sync_target() {
            Some(target) => target.sync_data(),
            None => Ok(()),
        }
    }

    /// The file records go to now, to `fdatasync` without holding this writer (so that
    /// other threads go on appending meanwhile); `None` before the first period.
    pub(crate) fn sync_target(&self) -> Option<SyncTarget> {
        let (file, path) = match &self.target {
            Target::Single { path, file, .. } => (file, path),
            Target::Rotating {
                current: Some(period),
                ..
            } => (&period.file, &period.path),
            Target::Rotating { current: None, .. } => return None,
        };
        Some(SyncTarget {
            file: Arc::clone(file),
            path: path.clone(),
        })
    }
}

#[cfg(test)]
impl ChainWriter {
    /// The room this writer knows it reserved (a single file's).
    pub(super) fn reserve(&self) -> Option<Reserve> {
        match &self.target {
            Target::Single { known, .. } => known.as_ref().map(|k| k.reserve),
            Target::Rotating { .. } => None,
        }
    }

    /// The first failure so far.
    pub(super) fn check(&self) -> Result<(), AuditError> {
        self.shared.check()
    }
}

impl io::Write for ChainWriter {
    /// One call per message; failures are kept in `Shared` and reported by the
    /// handle, and the writer goes on with the next message.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = match buf.split_first() {
            Some((&MSG_RECORD, rest)) => self.append(rest, true).map(|_| ()),
            Some((&MSG_BARRIER, rest)) => self.barrier(rest),
            _ => Err(AuditError::Record {
                event: "unknown",
                message: "malformed message to the audit writer".into(),
            }),
        };
        if let Err(e) = result {
            self.shared.fail(e);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Appends to `PATH` under a size bound: takes the file's lock (reopening `PATH` when
/// another process moved the file aside meanwhile), moves `PATH` to
/// `PATH.YYYY-MM-DD-HH-MM-SS[-N]` when the record would take it past `max` bytes,
/// and continues the chain in a new `PATH`. `None` when the lock is busy and not
/// `wait`.
#[expect(clippy::too_many_arguments, reason = "the parts of one append")]
fn append_sized(
    path: &Path,
    file: &mut Arc<File>,
    known: &mut Option<Known>,
    max: u64,
    keep: Option<usize>,
    pending: &[Pending<'_>],
    line: &mut Vec<u8>,
    wait: bool,
) -> Result<Option<()>, AuditError> {
    use std::os::unix::fs::MetadataExt as _;
    loop {
        let Some(lock) = Locked::take(file, path, wait)? else {
            return Ok(None);
        };
        let ours = file.metadata().map_err(|e| AuditError::write(path, e))?;
        let current = std::fs::symlink_metadata(path).ok();
        if current.is_some_and(|c| c.ino() == ours.ino() && c.dev() == ours.dev()) {
            let estimate: u64 = pending
                .iter()
                .map(|p| (p.ts.len() + p.head.len() + p.tail.len() + 256) as u64)
                .sum();
            if ours.len() == 0 || ours.len().saturating_add(estimate) <= max {
                append_locked(file, path, known, pending, line, || head_before(path, None))?;
                return Ok(Some(()));
            }
            // Move the full file aside, still under its lock, and go on in a new one.
            let head = tail_of(file, path)?.head;
            release_reserve(file, path, ours.len());
            let ts = pending.first().map_or(&b""[..], |p| p.ts);
            let aside = unused_rotated_path(path, ts);
            // Never onto an existing name (a file or symlink planted there).
            files::rename_aside(path, &aside).map_err(|e| AuditError::write(path, io_of(e)))?;
            let fresh = open_append(path)?;
            drop(lock);
            *file = Arc::new(fresh);
            *known = None;
            let Some(_new_lock) = Locked::take(file, path, true)? else {
                return Ok(None);
            };
            append_locked(file, path, known, pending, line, || Ok(head))?;
            apply_retention(path, keep, None);
            return Ok(Some(()));
        }
        // Another process moved `PATH` aside: continue in the file now at `PATH`.
        drop(lock);
        *file = Arc::new(open_append(path)?);
        *known = None;
    }
}

/// Frees the room reserved past the end of a rotated file (see `super::reserve`),
/// which no record is appended to again: cuts it to `len`, its length read under its
/// lock (which the caller holds), so no byte changes and the blocks `fallocate`
/// reserved past the end are given back. Best effort: a file that keeps its reserve
/// is only larger on disk than its length.
fn release_reserve(file: &File, path: &Path, len: u64) {
    if let Err(e) = file.set_len(len) {
        tracing::warn!(file = %path.display(), error = %e, "cannot release the room reserved past the end of a rotated audit log file");
    }
}

/// [`release_reserve`] of the file of `base`'s set for `stamp`, the newest one before
/// the period that just started. The caller holds the rotation lock, so no writer
/// appends to it any more; its own lock is taken without waiting, and a file a reader
/// holds (a verify) keeps its reserve rather than stall the writers.
fn release_period(base: &Path, stamp: &str) {
    let path = rotated_path(base, stamp);
    let file = match files::open_existing_append(&path) {
        Ok(Some(file)) => file,
        // Deleted by retention.
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot open a rotated audit log file to release the room reserved past its end");
            return;
        }
    };
    let Ok(Some(_lock)) = Locked::take(&file, &path, false) else {
        return;
    };
    match size_of(&file) {
        Ok((len, _)) => release_reserve(&file, &path, len),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the length of a rotated audit log file");
        }
    }
}

/// Deletes the oldest rotated files of `base` beyond `keep` (never `current`).
/// Deletion is best effort: a file that cannot be removed stays, and is tried again
/// at the next rotation.
fn apply_retention(base: &Path, keep: Option<usize>, current: Option<&Path>) {
    let Some(keep) = keep else { return };
    let Ok(set) = log_set(base) else {
        return;
    };
    let rotated: Vec<&PathBuf> = set
        .iter()
        .filter(|p| p.as_path() != base && Some(p.as_path()) != current)
        .collect();
    // With a size bound, `PATH` is the current file; with a period, `current` is.
    let excess = rotated.len().saturating_sub(keep);
    for old in rotated.into_iter().take(excess) {
        if let Err(e) = std::fs::remove_file(old) {
            tracing::warn!(file = %old.display(), error = %e, "cannot delete an old audit log file");
        }
    }
}

/// Appends the record for `pending` to `file`, whose lock the caller holds, after
/// the head [`head_at`] finds (`previous` for a file that holds no record yet).
fn append_locked(
    file: &File,
    path: &Path,
    known: &mut Option<Known>,
    pending: &[Pending<'_>],
    line: &mut Vec<u8>,
    previous: impl FnOnce() -> Result<Option<Head>, AuditError>,
) -> Result<(), AuditError> {
    let starts = pending.iter().any(|p| p.head.starts_with(RUN_START_HEAD));
    let at = head_at(file, path, known, starts, previous)?;
    write_at(file, path, known, at, pending, line, false).map(|_| ())
}

/// Where the next record of a locked file goes: the file's length, the chain head the
/// record follows, and whether the last line is torn.
struct At {
    len: u64,
    head: Head,
    unterminated: bool,
    /// The room this writer reserved past `len` that still holds.
    reserve: Reserve,
}

/// Where the next record of `file` (whose lock the caller holds) goes: after the head
/// this writer left (`known`) when the file still has the length it left it at, else
/// after the head read from the file's tail, else, for a file that holds no record,
/// after `previous()`'s head or at genesis.
fn head_at(
    file: &File,
    path: &Path,
    known: &mut Option<Known>,
    with_blocks: bool,
    previous: impl FnOnce() -> Result<Option<Head>, AuditError>,
) -> Result<At, AuditError> {
    // One `lseek` (a `statx` for a `run_start`, which also needs the blocks that say
    // whether the reserve still holds) tells whether anyone else appended (or cut)
    // since this writer's last append: then the file's length is not the one it left.
    let (len, blocks) = if with_blocks {
        size_of(file).map(|(len, blocks)| (len, Some(blocks)))
    } else {
        rustix::fs::seek(file, rustix::fs::SeekFrom::End(0))
            .map(|len| (len, None))
            .map_err(io::Error::from)
    }
    .map_err(|e| AuditError::write(path, e))?;
    if let Some(k) = known.take().filter(|k| k.len == len) {
        let reserve = match blocks {
            Some(blocks) if blocks < k.reserve.blocks => Reserve::default(),
            _ => k.reserve,
        };
        return Ok(At {
            len,
            head: k.head,
            unterminated: false,
            reserve,
        });
    }
    let tail = tail_of(file, path)?;
    let head = match tail.head {
        Some(head) => head,
        None => previous()?.unwrap_or_else(Head::genesis),
    };
    Ok(At {
        len,
        head,
        unterminated: tail.unterminated,
        reserve: Reserve::default(),
    })
}

/// Writes the records of `pending` at `at`, chained one to the next, with one
/// `write` (after the `\n` that ends a torn line), `fsync`ing them when `sync`, and
/// remembers the new end in `known`. A `run_start` first makes sure the space of the
/// run's closing records is reserved. On failure the file is cut back to its old
/// length: the caller still holds the lock, so no partial line stays behind. Returns
/// where the first record (without `\n`) is in `line`.
fn write_at(
    file: &File,
    path: &Path,
    known: &mut Option<Known>,
    at: At,
    pending: &[Pending<'_>],
    line: &mut Vec<u8>,
    sync: bool,
) -> Result<std::ops::Range<usize>, AuditError> {
    line.clear();
    if at.unterminated {
        line.push(b'\n');
    }
    let mut head = at.head;
    let mut first = None;
    for record in pending {
        let start = line.len();
        chain::compose(record, &head, line);
        let range = start..line.len();
        head = Head {
            next_seq: head.next_seq.saturating_add(1),
            prev: chain::line_hash(&line[range.clone()]),
        };
        first.get_or_insert(range);
        line.push(b'\n');
    }
    let mut reserve = at.reserve;
    if pending.iter().any(|p| p.head.starts_with(RUN_START_HEAD)) {
        reserve = reserve_closing_space(file, path, at.len, line.len() as u64, reserve)?;
    }
    let written = (&*file)
        .write_all(line)
        .and_then(|()| if sync { file.sync_data() } else { Ok(()) });
    if let Err(e) = written {
        // Also frees what was reserved past the end: `known` is gone, so the next
        // `run_start` reserves again.
        let _ = file.set_len(at.len);
        return Err(AuditError::write(path, e));
    }
    *known = Some(Known {
        len: at.len + line.len() as u64,
        head,
        reserve,
    });
    Ok(first.unwrap_or(0..0))
}

/// How a `run_start` record's head begins ([`Pending::head`]).
const RUN_START_HEAD: &[u8] = b"\"event\":\"run_start\"";

/// Appends one record to the log at `base` (its newest file, for a rotated set) under
/// the locks every writer takes, its tail built by `make_tail` from the chain head it
/// will follow: for `audit checkpoint`, whose signature covers that very head.
/// Returns the line written (without `\n`) and the head it followed.
///
/// # Errors
///
/// [`AuditError`] when the log cannot be locked, read or written, or does not end with
/// a record.
pub(crate) fn append_at_head(
    base: &Path,
    ts: &str,
    event_head: &str,
    make_tail: impl FnOnce(&Head) -> String,
) -> Result<(String, Head), AuditError> {
    let lock_path = lock_path_for(base)?;
    let rotation_lock = if lock_path.exists() {
        Some(open_append(&lock_path)?)
    } else {
        None
    };
    let _rotation = match &rotation_lock {
        Some(lock) => Some(Locked::exclusive(lock, &lock_path)?),
        None => None,
    };
    let newest = log_set(base)
        .ok()
        .and_then(|set| set.last().cloned())
        .unwrap_or_else(|| base.to_path_buf());
    let file = open_append(&newest)?;
    let _lock = Locked::exclusive(&file, &newest)?;
    let at = head_at(&file, &newest, &mut None, false, || Ok(None))?;
    let head = at.head.clone();
    let tail = make_tail(&head);
    let pending = Pending {
        ts: ts.as_bytes(),
        head: event_head.as_bytes(),
        tail: tail.as_bytes(),
    };
    let mut line = Vec::new();
    let record = write_at(
        &file,
        &newest,
        &mut None,
        at,
        std::slice::from_ref(&pending),
        &mut line,
        true,
    )?;
    Ok((String::from_utf8_lossy(&line[record]).into_owned(), head))
}

/// The newest stamp written, as remembered in the lock file.
fn read_memo(lock: &File) -> Option<String> {
    let mut buf = [0u8; 32];
    let n = lock.read_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?.trim_end();
    is_stamp(text).then(|| text.to_owned())
}

fn write_memo(lock: &File, stamp: &str) -> io::Result<()> {
    lock.set_len(0)?;
    lock.write_all_at(format!("{stamp}\n").as_bytes(), 0)
}

/// The stamp for `ts`, never older than the newest file already written (which is
/// returned too).
fn choose_stamp(
    rotation: Rotation,
    ts: &[u8],
    lock: &File,
    lock_path: &Path,
) -> Result<(String, Option<String>), AuditError> {
    let stamp = rotation
        .stamp(ts)
        .ok_or_else(|| AuditError::NotAnAuditLog {
            path: lock_path.into(),
            reason: "a record without a usable timestamp".into(),
        })?;
    let newest = read_memo(lock);
    let chosen = match &newest {
        Some(newest) if *newest > stamp => newest.clone(),
        _ => stamp,
    };
    Ok((chosen, newest))
}

/// The open file for `stamp`, reusing the cached one.
fn period<'c>(
    base: &Path,
    stamp: String,
    current: &'c mut Option<Period>,
) -> Result<&'c mut Period, AuditError> {
    if current.as_ref().map(|p| &p.stamp) != Some(&stamp) {
        let path = rotated_path(base, &stamp);
        let file = Arc::new(open_append(&path)?);
        *current = Some(Period {
            stamp,
            path,
            file,
            known: None,
        });
    }
    current
        .as_mut()
        .ok_or_else(|| AuditError::Stopped { path: base.into() })
}

/// The chain head a new file of `base`'s set continues from: the head at the end of
/// the newest rotated file that holds a record and, with `before`, whose stamp sorts
/// before it (a new period's file); without, the newest moved aside (a new `PATH`
/// under a size bound).
///
/// # Errors
///
/// [`AuditError`] when the set cannot be listed or a file in it cannot be read, or
/// ends with something other than a record: a new file must not start a new chain
/// where it cannot see the old one's end.
fn head_before(base: &Path, before: Option<&str>) -> Result<Option<Head>, AuditError> {
    let set = log_set(base).map_err(|e| AuditError::write(&e.path, e.source))?;
    let name = base
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let older = |path: &Path| match before {
        None => true,
        Some(before) => path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(name)?.strip_prefix('.'))
            .is_some_and(|stamp| stamp < before),
    };
    for path in set.iter().rev().filter(|p| p.as_path() != base) {
        if !older(path) {
            continue;
        }
        let file = File::open(path).map_err(|e| AuditError::write(path, e))?;
        if let Some(head) = tail_of(&file, path)?.head {
            return Ok(Some(head));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verify::{Verdict, verify_files};

    fn message(ts: &str, n: u32) -> Vec<u8> {
        let mut msg = vec![MSG_RECORD];
        Pending::encode(
            ts,
            &format!(r#""event":"grant","run_id":"r{n}""#),
            r#","capability":"env""#,
            &mut msg,
        );
        msg
    }

    fn writer(path: &Path, rotation: Rotation, ts: &str) -> ChainWriter {
        ChainWriter::open(path, rotation, ts, Shared::new(path.into())).unwrap()
    }

    #[test]
    fn writers_in_turn_continue_one_chain_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("audit.jsonl");
        let mut a = writer(&base, Rotation::Hourly, "2024-03-05T13:00:00.000Z");
        let mut b = writer(&base, Rotation::Hourly, "2024-03-05T13:00:00.000Z");
        a.write_all(&message("2024-03-05T13:59:59.000Z", 0))
            .unwrap();
        b.write_all(&message("2024-03-05T13:59:59.500Z", 1))
            .unwrap();
        a.write_all(&message("2024-03-05T14:00:00.000Z", 2))
            .unwrap();
        // b's clock lags: its record still goes to the newest file.
        b.write_all(&message("2024-03-05T13:59:59.900Z", 3))
            .unwrap();
        b.write_all(&message("2024-03-05T15:30:00.000Z", 4))
            .unwrap();
        for w in [&a, &b] {
            w.shared.check().unwrap();
        }
        let files: Vec<PathBuf> = ["13", "14", "15"]
            .iter()
            .map(|h| rotated_path(&base, &format!("2024-03-05-{h}")))
            .collect();
        let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
        assert_eq!(
            files.iter().map(|f| lines(f)).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        let report = verify_files(&files).unwrap();
        assert_eq!(report.records, 5);
        assert!(matches!(report.verdict, Verdict::Ok), "{report:?}");
        assert!(!base.exists());
    }

    #[test]
    fn a_new_rotated_file_finds_the_chain_without_the_lock_memo() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("audit.jsonl");
        let mut a = writer(&base, Rotation::Daily, "2024-03-05T13:00:00.000Z");
        a.write_all(&message("2024-03-05T13:00:00.000Z", 0))
            .unwrap();
        drop(a);
        std::fs::remove_file(lock_path_for(&base).unwrap()).unwrap();
        let mut b = writer(&base, Rotation::Daily, "2024-03-06T01:00:00.000Z");
        b.write_all(&message("2024-03-06T01:00:00.000Z", 1))
            .unwrap();
        b.shared.check().unwrap();
        let files = [
            rotated_path(&base, "2024-03-05"),
            rotated_path(&base, "2024-03-06"),
        ];
        let report = verify_files(&files).unwrap();
        assert!(matches!(report.verdict, Verdict::Ok), "{report:?}");
        assert_eq!(report.records, 2);
    }

    #[test]
    fn a_torn_line_is_ended_and_the_chain_follows_the_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut w = writer(&path, Rotation::Never, "2024-03-05T13:00:00.000Z");
        w.write_all(&message("2024-03-05T13:00:00.000Z", 0))
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(br#"{"v":1,"ts":"2024-03-05T13:00:00.5"#)
            .unwrap();
        w.write_all(&message("2024-03-05T13:00:01.000Z", 1))
            .unwrap();
        w.shared.check().unwrap();
        let report = verify_files(std::slice::from_ref(&path)).unwrap();
        assert!(matches!(report.verdict, Verdict::Ok), "{report:?}");
        assert_eq!(report.records, 2);
        assert_eq!(report.torn_skipped.len(), 1);
        assert_eq!(report.torn_skipped[0].line, 2);
    }

    #[test]
    fn a_new_sized_file_continues_the_newest_rotated_record_or_fails() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("audit.jsonl");
        let size = Rotation::Size(1 << 20);
        // Two records, then moved aside as a rotation would; a newer rotated file that
        // holds no record yet; `PATH` empty, as another process leaves it.
        let mut w = writer(&base, size, "2024-03-05T13:00:00.000Z");
        for n in 0..2 {
            w.write_all(&message("2024-03-05T13:00:00.000Z", n))
                .unwrap();
        }
        w.shared.check().unwrap();
        drop(w);
        let older = rotated_path(&base, "2024-03-05-13-00-00");
        std::fs::rename(&base, &older).unwrap();
        std::fs::write(rotated_path(&base, "2024-03-05-13-00-01"), "").unwrap();
        std::fs::write(&base, "").unwrap();
        let mut w = writer(&base, size, "2024-03-05T13:00:02.000Z");
        w.write_all(&message("2024-03-05T13:00:02.000Z", 2))
            .unwrap();
        w.shared.check().unwrap();
        drop(w);
        let report = verify_files(&[older.clone(), base.clone()]).unwrap();
        assert!(matches!(report.verdict, Verdict::Ok), "{report:?}");
        assert_eq!(report.records, 3);

        // A newest rotated file that ends with something else: no second chain.
        std::fs::rename(&base, rotated_path(&base, "2024-03-05-13-00-02")).unwrap();
        std::fs::write(rotated_path(&base, "2024-03-05-13-00-03"), "not a record\n").unwrap();
        std::fs::write(&base, "").unwrap();
        let mut w = writer(&base, size, "2024-03-05T13:00:04.000Z");
        w.write_all(&message("2024-03-05T13:00:04.000Z", 3))
            .unwrap();
        assert!(
            matches!(w.shared.check(), Err(AuditError::NotAnAuditLog { .. })),
            "{:?}",
            w.shared.check()
        );
        assert_eq!(std::fs::read_to_string(&base).unwrap(), "");
    }

    #[test]
    fn the_records_of_one_message_are_chained_and_appended_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let ts = "2024-03-05T13:00:00.000Z";
        let mut w = writer(&path, Rotation::Never, ts);
        w.write_all(&message(ts, 0)).unwrap();
        let mut batch = message(ts, 1);
        for n in 2..5 {
            batch.extend_from_slice(&message(ts, n)[1..]);
        }
        w.write_all(&batch).unwrap();
        w.shared.check().unwrap();
        assert_eq!(w.shared.appended(), 5);
        let report = verify_files(std::slice::from_ref(&path)).unwrap();
        assert!(matches!(report.verdict, Verdict::Ok), "{report:?}");
        assert_eq!(report.records, 5);
        let text = std::fs::read_to_string(&path).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["run_id"].to_string())
            .collect();
        assert_eq!(ids, ["\"r0\"", "\"r1\"", "\"r2\"", "\"r3\"", "\"r4\""]);
    }

    #[test]
    fn opening_refuses_what_is_not_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let shared = || Shared::new(dir.path().into());
        let ts = "2024-03-05T13:00:00.000Z";
        let err = |p: &Path| {
            ChainWriter::open(p, Rotation::Never, ts, shared())
                .err()
                .unwrap()
        };
        assert!(matches!(
            err(dir.path()),
            AuditError::Open { .. } | AuditError::NotAFile { .. }
        ));
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello\n").unwrap();
        assert!(matches!(err(&text), AuditError::NotAnAuditLog { .. }));
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            err(&file.join("audit.jsonl")),
            AuditError::Open { .. }
        ));
    }
}
