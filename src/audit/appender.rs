//! Who appends a record: the thread that emits it, or `tracing-appender`'s worker.
//!
//! The log has one [`ChainWriter`], shared by the threads that emit records and the
//! non-blocking worker. An [`Appender`] hands a record to the writer on the emitting
//! thread when that costs no wait, and to the worker's queue otherwise, keeping the
//! records of each thread in order; the [`QueuedWriter`] is the worker's end.

use super::writer::ChainWriter;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// How long an emitter waits for the writer another thread of this process holds
/// before it hands its record to the worker instead.
const BRIEF_WAIT: std::time::Duration = std::time::Duration::from_micros(100);

/// The log's one [`ChainWriter`], shared by the threads that emit records and
/// `tracing-appender`'s non-blocking worker.
///
/// A record is appended by the thread that emits it when it can take the writer and
/// the file's lock at once and nothing waits in the worker's queue: no hand-off and
/// no wake-up of another thread (on this 2-core VM a hand-off and its confirmation
/// cost ~30 µs of each audited call), and a failure is known to the emitter at once.
/// Otherwise (another thread or process is appending, or records are queued, which
/// must keep their order) it goes through the worker's queue.
pub(crate) struct Appender {
    chain: Mutex<ChainWriter>,
    /// Messages sent to the worker and not yet handled by it; decremented under
    /// `chain`'s lock, so "zero while holding the lock" means none is outstanding.
    queued: AtomicU64,
}

impl Appender {
    pub fn new(chain: ChainWriter) -> Arc<Self> {
        Arc::new(Appender {
            chain: Mutex::new(chain),
            queued: AtomicU64::new(0),
        })
    }

    /// Appends `message` (a record) now if that can be done without waiting long and
    /// without overtaking a queued message; `false` when it must be queued instead.
    pub fn try_append_now(&self, message: &[u8]) -> bool {
        let Some(mut chain) = self.take_briefly() else {
            return false;
        };
        self.queued.load(Ordering::Acquire) == 0 && chain.append_now(message)
    }

    /// The writer, if it is free now or within [`BRIEF_WAIT`] while nothing is queued.
    ///
    /// Another thread of this process holds it only for one append (a few µs), so
    /// waiting that long is cheaper than the hand-off to the worker and the wake-up
    /// that confirms it; but the worker may hold it while it waits for a lock another
    /// process holds, so the wait is bounded, never a blocking `lock`.
    fn take_briefly(&self) -> Option<std::sync::MutexGuard<'_, ChainWriter>> {
        let mut start = None;
        loop {
            match self.chain.try_lock() {
                Ok(chain) => return Some(chain),
                Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => {
                    let start = *start.get_or_insert_with(std::time::Instant::now);
                    if self.queued.load(Ordering::Acquire) != 0 || start.elapsed() > BRIEF_WAIT {
                        return None;
                    }
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Counts a message about to be sent to the worker.
    pub fn enqueue(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// Runs `f` with the writer if no message is outstanding and the writer is free
    /// right now; `None` otherwise. Never waits: the worker may hold the writer while
    /// it waits for a lock another process holds, and only the queued barrier's wait
    /// is bounded.
    pub fn when_idle<R>(&self, f: impl FnOnce(&ChainWriter) -> R) -> Option<R> {
        let chain = self.take_briefly()?;
        (self.queued.load(Ordering::Acquire) == 0).then(|| f(&chain))
    }

    /// The writer end handed to `tracing-appender`'s worker.
    pub fn worker(self: &Arc<Self>) -> QueuedWriter {
        QueuedWriter(Arc::clone(self))
    }
}

/// The worker's end of an [`Appender`]: handles one queued message per `write`.
pub(crate) struct QueuedWriter(Arc<Appender>);

impl io::Write for QueuedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut chain = self.0.chain.lock().unwrap_or_else(PoisonError::into_inner);
        let written = chain.write(buf);
        let _ = self
            .0
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
