//! Group commit: threads that need their records on disk at about the same moment
//! share one `fdatasync` ([`super::AuditLog::sync_data`]).
//!
//! A caller whose records the `fdatasync` under way does not cover waits for it, and
//! then, if nothing covers it yet, leads the next one, which covers every record
//! appended by the time it starts. On its own that keeps runs that sync twice
//! (`sync_each_run`: after `run_start` and after the closing records) out of step:
//! while one thread's `fdatasync` runs, the other appends and waits; when it ends,
//! the waiter leads the next at once, covering only itself, and the thread just
//! released appends a moment later, too late for it. Each `fdatasync` then serves one
//! thread, and two threads run no faster than one. So a leader first lets the runs
//! that will sync soon (those [`GroupCommit::join`]ed and not yet waiting here) reach
//! this point, for at most half as long as the last `fdatasync` took (and never more
//! than [`MAX_GATHER`]): the threads fall into step, and one `fdatasync` serves them
//! all. A lone run never waits.

use super::AuditError;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The longest a leader waits for other runs before it starts an `fdatasync`.
pub(super) const MAX_GATHER: Duration = Duration::from_micros(200);

/// The state of one log's group commit.
#[derive(Debug, Default)]
pub(super) struct GroupCommit {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Records appended (by this handle) that an `fdatasync` has covered.
    synced: u64,
    /// An `fdatasync` is under way.
    running: bool,
    /// `fdatasync`s issued.
    fsyncs: u64,
    /// Runs under way that will sync ([`GroupCommit::join`]).
    active: usize,
    /// Callers inside [`GroupCommit::sync`].
    arrived: usize,
    /// How long the last `fdatasync` took.
    last: Duration,
}

/// A run that will sync, counted while it lasts ([`GroupCommit::join`]).
#[derive(Debug)]
pub(crate) struct SyncingRun<'a>(&'a GroupCommit);

impl Drop for SyncingRun<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.active = state.active.saturating_sub(1);
        self.0.changed.notify_all();
    }
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a run that will sync until the returned guard is dropped.
    pub fn join(&self) -> SyncingRun<'_> {
        self.lock().active += 1;
        SyncingRun(self)
    }

    /// `fdatasync`s issued.
    pub fn fsyncs(&self) -> u64 {
        self.lock().fsyncs
    }

    /// Returns once records up to `ticket` (a count of records appended) are covered
    /// by an `fdatasync`, leading one (`fsync`) when none under way covers them;
    /// `appended` says how many records are appended now.
    pub fn sync(
        &self,
        ticket: u64,
        appended: impl Fn() -> u64,
        fsync: impl FnOnce() -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        let mut state = self.lock();
        state.arrived += 1;
        self.changed.notify_all();
        let result = loop {
            if state.synced >= ticket {
                break Ok(());
            }
            if !state.running {
                let deadline = Instant::now() + (state.last / 2).min(MAX_GATHER);
                while state.active > state.arrived && !state.running && state.synced < ticket {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    state = self
                        .changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                if state.running || state.synced >= ticket {
                    continue;
                }
                state.running = true;
                drop(state);
                let covers = appended();
                let started = Instant::now();
                let result = fsync();
                let took = started.elapsed();
                state = self.lock();
                state.running = false;
                if result.is_ok() {
                    state.synced = state.synced.max(covers);
                    state.fsyncs += 1;
                    state.last = took;
                }
                break result;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        };
        state.arrived -= 1;
        self.changed.notify_all();
        result
    }
}
