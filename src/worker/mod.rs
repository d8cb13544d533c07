//! The second wall: under `isolation = "process"` a plugin's guest code runs in a
//! **worker process** that confines itself with the kernel before any guest code
//! runs, and warden's own process is the **broker**.
//!
//! Why a process: Landlock confines the calling thread and the threads it creates
//! later, and a thread is no security boundary: code that escaped wasm in one thread
//! can take over an unconfined sibling. warden's process has compiler, timer and
//! epoch threads by the time a guest runs, and it holds the audit log and the
//! network. A fresh worker confines itself on its only thread, first thing
//! (`confine`), and holds neither.
//!
//! - `parent`: the broker's side. `WorkerPool` starts workers from warden's own
//!   executable (`/proc/self/exe __worker`, or the program an application names),
//!   passes each the compiled module, the granted directories' descriptors
//!   (`SCM_RIGHTS`: opened and checked by the parent as always), limits, variables
//!   and streams; performs the effects a worker asks for; enforces the wall clock
//!   itself (`SIGKILL` at the deadline) and records a worker that dies.
//! - `child`: the worker's side: confine, load, run calls.
//! - `confine`: hardening, Landlock, seccomp-bpf.
//! - `wire`, `fds`: the messages and how they travel.
//!
//! # For an application that embeds warden
//!
//! A worker is the application's own executable started again with a hidden
//! argument: call [`main_if_worker`] first thing in `main`, so that such a start
//! becomes a worker and never reaches the application's own code. An application
//! that cannot do that names a `warden` executable to use instead
//! (`WardenBuilder::worker_program`, or the `WARDEN_WORKER` variable).
//!
//! # Security
//!
//! Everything a worker sends is hostile input (`wire`): bounded, strictly decoded,
//! checked field by field, and fuzzed (`worker_message`). The audit log, the cache,
//! the policy file and the network never reach a worker: it is started with an
//! empty environment, its standard output and error on `/dev/null`, every inherited
//! descriptor beyond them closed, and only the granted directories passed.

// The protocol and both sides of it are warden's own: an application sees only
// `main_if_worker` and how to name a worker executable.
mod child;
pub(crate) mod confine;
mod fds;
pub(crate) mod parent;
pub(crate) mod wire;

pub use parent::WORKER_ARG;
pub(crate) use parent::{Spawned, WorkerPool};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once [`main_if_worker`] has run in this process: its executable can be a
/// worker.
static SELF_CAN_BE_WORKER: AtomicBool = AtomicBool::new(false);

/// The variable naming the executable to start workers from, for an application
/// whose `main` does not call [`main_if_worker`].
pub const WORKER_PROGRAM_ENV: &str = "WARDEN_WORKER";

/// Makes this process a worker when warden started it as one, and never returns
/// then; otherwise returns at once (and notes that this executable can start
/// workers of its own).
///
/// Call it first thing in `main`, before any thread starts: a worker confines
/// itself on its only thread.
pub fn main_if_worker() {
    let mut args = std::env::args_os().skip(1);
    let is_worker = args.next().is_some_and(|a| a == WORKER_ARG)
        && args.next().is_none()
        && std::env::var_os(parent::WORKER_ENV).is_some();
    if is_worker {
        child::main();
    }
    SELF_CAN_BE_WORKER.store(true, Ordering::Release);
}

/// The executable to start workers from: `explicit` when given; this process's own
/// executable when its `main` called [`main_if_worker`]; the `WARDEN_WORKER`
/// variable's; otherwise an error that says what to do.
///
/// # Errors
///
/// A sentence naming the three ways to give one.
pub(crate) fn program(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(program) = explicit {
        return Ok(program.to_path_buf());
    }
    if SELF_CAN_BE_WORKER.load(Ordering::Acquire) {
        return Ok(PathBuf::from("/proc/self/exe"));
    }
    if let Some(program) = std::env::var_os(WORKER_PROGRAM_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(program));
    }
    #[cfg(test)]
    if let Some(program) = test_program() {
        return Ok(program);
    }
    Err(format!(
        "this process cannot start confined workers: call `warden::worker::main_if_worker()` \
         first in `main`, name a warden executable with `WardenBuilder::worker_program` or \
         `{WORKER_PROGRAM_ENV}`, or set `isolation = \"in-process\"` in the policy"
    ))
}

/// The library's own unit tests run in a test harness: they start workers from the
/// `warden` executable cargo builds beside it (`target/<profile>/warden`).
#[cfg(test)]
fn test_program() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let warden = exe.parent()?.parent()?.join("warden");
    warden.is_file().then_some(warden)
}
