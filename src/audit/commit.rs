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
//!
//! Two details keep them in step. A caller that an `fdatasync` covered but that has
//! not woken up yet no longer counts as waiting, else a leader would take it for
//! the run it waits for and start alone. And a caller waiting for another's
//! `fdatasync` polls for its end (yielding the core) instead of sleeping, for about
//! as long as the last one took: a sleeping thread wakes tens of µs after it is told,
//! which is just long enough for the next `fdatasync` to start without it. With both,
//! two threads share nearly every `fdatasync` (4,410 for 4,200 runs of two syncs
//! each, against 5,539 before).

use super::AuditError;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The longest a leader waits for other runs before it starts an `fdatasync`.
pub(super) const MAX_GATHER: Duration = Duration::from_micros(200);

/// The longest a caller polls for another's `fdatasync` to end before it sleeps.
const MAX_POLL: Duration = Duration::from_millis(1);

/// How many callers poll at once: one core is left to the threads that run, so
/// that many callers waiting together never crowd them out (the others sleep).
static POLLERS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
});

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
    /// The tickets of the callers inside [`GroupCommit::sync`] (one per caller).
    waiting: Vec<u64>,
    /// How long the last `fdatasync` took.
    last: Duration,
    /// `fdatasync`s that ended, failed or not.
    ended: u64,
    /// Callers polling for the end of an `fdatasync` ([`GroupCommit::wait_for_fsync`]).
    polling: usize,
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
        state.waiting.push(ticket);
        self.changed.notify_all();
        let result = loop {
            if state.synced >= ticket {
                break Ok(());
            }
            if !state.running {
                let deadline = Instant::now() + (state.last / 2).min(MAX_GATHER);
                while state.active > state.uncovered() && !state.running && state.synced < ticket {
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
                state.ended = state.ended.wrapping_add(1);
                if result.is_ok() {
                    state.synced = state.synced.max(covers);
                    state.fsyncs += 1;
                    state.last = took;
                }
                break result;
            }
            state = self.wait_for_fsync(state);
        };
        if let Some(mine) = state.waiting.iter().position(|t| *t == ticket) {
            state.waiting.swap_remove(mine);
        }
        self.changed.notify_all();
        result
    }

    /// Waits while another caller's `fdatasync` runs: polls for its end, yielding the
    /// core to anything runnable, for about as long as the last one took (at most
    /// [`MAX_POLL`]), then sleeps until told. A thread asleep on an idle core wakes
    /// tens of µs after it is told (more on a virtual machine), and that gap is when
    /// the next run misses the `fdatasync` it could have shared: the threads fall
    /// out of step again.
    fn wait_for_fsync<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let ended = state.ended;
        if state.polling < *POLLERS {
            state.polling += 1;
            let budget = state.last.saturating_mul(2).min(MAX_POLL);
            let start = Instant::now();
            while state.running && state.ended == ended && start.elapsed() < budget {
                drop(state);
                std::thread::yield_now();
                state = self.lock();
            }
            state.polling -= 1;
        }
        if state.running && state.ended == ended {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state
    }
}

impl State {
    /// Callers waiting for records no `fdatasync` has covered yet. A caller an
    /// `fdatasync` covered but that has not woken up yet is not one: counting it
    /// would end a leader's wait for a run that is still to come.
    fn uncovered(&self) -> usize {
        self.waiting.iter().filter(|t| **t > self.synced).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_covered_but_not_yet_awake_is_not_waited_for() {
        let state = State {
            waiting: vec![3, 5, 4],
            synced: 4,
            ..State::default()
        };
        // Tickets 3 and 4 are covered; only the caller of 5 still waits for one.
        assert_eq!(state.uncovered(), 1);
    }
}
