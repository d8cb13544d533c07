//! Host calls that wait end by the call's deadline.
//!
//! The wall-clock limit of a call is an epoch deadline (see [`super::loader`]): the
//! epoch ticker makes wasm code trap once it passes, but a host function that blocks
//! is not wasm code, and nothing interrupts it. Every store therefore also carries the
//! deadline as an [`Instant`] (`StoreState::deadline`, set with the epoch deadline
//! when the store is made, so it covers a start function, `_initialize`, the manifest
//! read and `plugin_execute` alike), and the preview-1 functions in which a guest can
//! make the host wait are shadowed (as in [`super::shadow`], through wasmtime-wasi's
//! own generated functions) by wrappers that end the wait by that instant:
//!
//! - `poll_oneoff`. With `allow_blocking_current_thread` (every warden store has it),
//!   wasmtime-wasi serves one relative clock subscription alone, of any clock, with
//!   `std::thread::sleep` for as long as the guest asks (up to 2^64 ns), which nothing
//!   can cut short. The wrapper reads that subscription itself (with wiggle's checked
//!   reads, as wasmtime-wasi does): a sleep that ends by the deadline goes to
//!   wasmtime-wasi unchanged; a longer one sleeps until the deadline and ends the call.
//!   Every other poll (absolute clocks, realtime clocks, several subscriptions,
//!   `fd_read` of stdin, `fd_write`) is wasmtime-wasi's future, which awaits its
//!   pollables on the tokio runtime of `in_tokio`, run under
//!   `tokio::time::timeout_at(deadline)`. That runtime is wasmtime-wasi's own
//!   (multi-threaded, with the time and I/O drivers, which its clock subscriptions
//!   need too) unless the embedder calls warden from inside a tokio runtime, which
//!   then must have its time driver enabled, as for wasmtime-wasi's own clocks.
//! - `fd_read`. Reading a granted stdin awaits a worker thread that reads the host's
//!   stdin, for as long as the host keeps it open and silent; the read runs under the
//!   same timeout. A read of a file is done in place (blocking on the disk, not on
//!   anyone) and ready at the first poll, so the timeout never fires for it.
//!
//! A call that reaches the deadline returns [`DeadlineReached`] to wasmtime, which
//! ends the guest call; [`super::instance`] reports it as the timeout limit exactly as
//! it reports the epoch interrupt (`RuntimeErrorKind::Limit` with
//! `LimitKind::Timeout`, exit code 124, `limit_exceeded` in the audit log). A wait that
//! ends by the deadline behaves as before: the guest gets its event.
//!
//! Nothing else in preview 1 waits on anything a guest controls: wasmtime-wasi's
//! `sched_yield` returns at once (it has nothing to yield to), the socket functions
//! are not implemented, stdout and stderr are warden's capped in-memory buffers (or
//! sinks when not granted), an ungranted stdin is empty, `fd_pread` of stdin fails
//! with `SPIPE`, and the clock, random and file functions do their work in place.
//!
//! # Security
//!
//! A plugin cannot outlive its wall-clock limit by waiting in the host: each wait it
//! can ask for ends by the deadline, and the call then fails as a timeout, so
//! `warden run` exits 124 with `limit_exceeded` and `run_end` in the audit log, and a
//! load (`warden inspect`, the manifest read) fails instead of hanging. The
//! subscription is read with checked bounds; a read that fails is left to
//! wasmtime-wasi, which answers it with an errno before waiting.
//!
//! Not bounded here, because the guest cannot create them: a FIFO or a device that
//! the host placed inside a granted directory blocks `path_open` (wasmtime-wasi opens
//! without `O_NONBLOCK`) and a blocking `fd_read`/`fd_write` of it in place, as the
//! host's own processes would. Grant directories that hold only regular files and
//! directories.

use super::store::{StoreState, WASI_MODULE, with_wasi};
use std::time::{Duration, Instant};
use wasmtime::{Caller, Linker};
// The functions and types wasmtime-wasi's own linker entries use: public but
// undocumented (see `super::shadow`); the version is pinned exactly in Cargo.toml.
use wasmtime_wasi::p1::types;
use wasmtime_wasi::p1::wasi_snapshot_preview1 as preview1;
use wasmtime_wasi::runtime::in_tokio;
use wiggle::{GuestMemory, GuestPtr};

/// The WASI functions this module wraps (also listed in [`super::shadow::SHADOWED`]).
pub const BOUNDED: [&str; 2] = ["poll_oneoff", "fd_read"];

/// A host call of the plugin's was still waiting when its call's wall-clock limit ran
/// out; the guest call ends, and is reported as the timeout limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the plugin's `{call}` was still waiting when the call's wall-clock limit ran out; the wait was cut there"
)]
pub struct DeadlineReached {
    /// The WASI function that was waiting.
    pub call: &'static str,
}

/// How long the only subscription at `subs` sleeps, when it is a relative clock
/// (wasmtime-wasi's `std::thread::sleep` case), read as wasmtime-wasi reads it.
/// `None` for anything else, and for a subscription that cannot be read (wasmtime-wasi
/// answers that with an errno, without waiting).
fn lone_relative_sleep(memory: &GuestMemory<'_>, subs: i32) -> Option<Duration> {
    let sub = memory
        .read(GuestPtr::<types::Subscription>::new(subs as u32))
        .ok()?;
    match sub.u {
        types::SubscriptionU::Clock(clock)
            if !clock
                .flags
                .contains(types::Subclockflags::SUBSCRIPTION_CLOCK_ABSTIME) =>
        {
            Some(Duration::from_nanos(clock.timeout))
        }
        _ => None,
    }
}

/// What `poll_oneoff` does about a lone relative sleep of `asked` with `left` before
/// the deadline.
#[derive(Debug, PartialEq, Eq)]
enum Sleep {
    /// It ends by the deadline: wasmtime-wasi sleeps it, as without warden.
    AsAsked,
    /// It would not: sleep `left`, then end the call at the deadline.
    Cut(Duration),
}

fn sleep_plan(asked: Duration, left: Duration) -> Sleep {
    if asked <= left {
        Sleep::AsAsked
    } else {
        Sleep::Cut(left)
    }
}

/// The error that ends a wait at the deadline.
#[cold]
fn reached(call: &'static str) -> wasmtime::Error {
    tracing::debug!(
        call,
        "a WASI call was still waiting at the deadline; ending the guest call"
    );
    wasmtime::Error::new(DeadlineReached { call })
}

/// Runs wasmtime-wasi's `future` to its end or to `deadline`, whichever comes first.
fn until<F: Future<Output = wasmtime::Result<i32>>>(
    call: &'static str,
    deadline: Option<Instant>,
    future: F,
) -> wasmtime::Result<i32> {
    match deadline {
        // The timer is made inside the runtime (`in_tokio`'s), not before entering it.
        Some(deadline) => {
            in_tokio(async move { tokio::time::timeout_at(deadline.into(), future).await })
                .map_err(|_elapsed| reached(call))?
        }
        None => in_tokio(future),
    }
}

/// Replaces `poll_oneoff` and `fd_read` in `linker` (which must already hold WASI
/// preview 1, and allow shadowing) with wrappers bounded by the store's deadline.
///
/// # Errors
///
/// When wasmtime rejects a definition.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        WASI_MODULE,
        "poll_oneoff",
        |mut caller: Caller<'_, StoreState>,
         subs: i32,
         events: i32,
         nsubscriptions: i32,
         nevents: i32|
         -> wasmtime::Result<i32> {
            let deadline = caller.data().deadline;
            with_wasi(&mut caller, |wasi, memory| {
                if let Some(deadline) = deadline
                    && nsubscriptions == 1
                    && let Some(asked) = lone_relative_sleep(memory, subs)
                {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if let Sleep::Cut(left) = sleep_plan(asked, left) {
                        std::thread::sleep(left);
                        return Err(reached("poll_oneoff"));
                    }
                    // wasmtime-wasi sleeps it in place, no longer than `left`.
                    return in_tokio(preview1::poll_oneoff(
                        wasi,
                        memory,
                        subs,
                        events,
                        nsubscriptions,
                        nevents,
                    ));
                }
                until(
                    "poll_oneoff",
                    deadline,
                    preview1::poll_oneoff(wasi, memory, subs, events, nsubscriptions, nevents),
                )
            })?
        },
    )?;
    linker.func_wrap(
        WASI_MODULE,
        "fd_read",
        |mut caller: Caller<'_, StoreState>,
         fd: i32,
         iovs: i32,
         iovs_len: i32,
         nread: i32|
         -> wasmtime::Result<i32> {
            let deadline = caller.data().deadline;
            if fd == 0 {
                // Audit mode records that the plugin read its stdin (`policy suggest`).
                caller
                    .data_mut()
                    .shadow
                    .used("stdin", "stdin".to_owned(), false);
            }
            with_wasi(&mut caller, |wasi, memory| {
                until(
                    "fd_read",
                    deadline,
                    preview1::fd_read(wasi, memory, fd, iovs, iovs_len, nread),
                )
            })?
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_is_cut_only_past_the_deadline() {
        let s = Duration::from_secs;
        assert_eq!(sleep_plan(s(1), s(2)), Sleep::AsAsked);
        assert_eq!(sleep_plan(s(2), s(2)), Sleep::AsAsked);
        assert_eq!(sleep_plan(Duration::ZERO, Duration::ZERO), Sleep::AsAsked);
        assert_eq!(sleep_plan(s(3), s(2)), Sleep::Cut(s(2)));
        assert_eq!(
            sleep_plan(Duration::from_nanos(u64::MAX), Duration::ZERO),
            Sleep::Cut(Duration::ZERO)
        );
    }

    /// Subscription layout of preview 1: userdata u64 at 0, tag u8 at 8, then the
    /// clock: id u32 at 16, timeout u64 at 24, precision u64 at 32, flags u16 at 40.
    fn clock_sub(memory: &mut [u8], at: usize, id: u32, timeout: u64, flags: u16) {
        memory[at..at + 8].copy_from_slice(&7u64.to_le_bytes());
        memory[at + 8] = 0;
        memory[at + 16..at + 20].copy_from_slice(&id.to_le_bytes());
        memory[at + 24..at + 32].copy_from_slice(&timeout.to_le_bytes());
        memory[at + 40..at + 42].copy_from_slice(&flags.to_le_bytes());
    }

    #[test]
    fn the_lone_relative_sleep_is_read_like_wasmtime_wasi_reads_it() {
        let mut bytes = vec![0u8; 256];
        clock_sub(&mut bytes, 64, 1, 3_600_000_000_000, 0);
        clock_sub(&mut bytes, 128, 0, 5, 0);
        clock_sub(&mut bytes, 192, 1, u64::MAX, 1); // absolute
        let memory = GuestMemory::Unshared(&mut bytes);
        assert_eq!(
            lone_relative_sleep(&memory, 64),
            Some(Duration::from_secs(3600))
        );
        // Realtime, relative: wasmtime-wasi sleeps it too.
        assert_eq!(
            lone_relative_sleep(&memory, 128),
            Some(Duration::from_nanos(5))
        );
        assert_eq!(lone_relative_sleep(&memory, 192), None);
        // Out of bounds, misaligned, past the end: left to wasmtime-wasi's errno.
        assert_eq!(lone_relative_sleep(&memory, 240), None);
        assert_eq!(lone_relative_sleep(&memory, 65), None);
        assert_eq!(lone_relative_sleep(&memory, -8), None);
        let mut fd_read = vec![0u8; 64];
        fd_read[8] = 1;
        assert_eq!(
            lone_relative_sleep(&GuestMemory::Unshared(&mut fd_read), 0),
            None
        );
    }
}
