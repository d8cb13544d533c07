//! What every part of the runtime shares: the state a store carries for one call
//! ([`StoreState`]), the WASI module name, the epoch tick, where a module's ABI
//! exports are, and how a host wrapper calls wasmtime-wasi on the caller's store.
//!
//! This is the bottom of `runtime`: the loader, the instance, the WASI wrappers
//! ([`super::shadow`], [`super::deadline`]) all build on it and none of them on each
//! other's internals, so each reads on its own.

use super::limiter::GuestLimiter;
use super::observed::ShadowState;
use super::output::CappedOutput;
use crate::limits::Limits;
use std::time::{Duration, Instant};
use wasmtime::{AsContextMut as _, Caller, Extern, ModuleExport};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
// The trait wasmtime-wasi's own linker entries use to hand over `hostcall_fuel`:
// public but undocumented (see `super::shadow`); the version is pinned exactly.
use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1 as _;
use wiggle::GuestMemory;

/// How often the epoch ticker advances the engine's epoch: the wall-clock limit's
/// resolution.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The WASI module plugins may import from.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Where each ABI export lives in a module, resolved once per load.
#[derive(Clone, Copy)]
pub(crate) struct AbiExports {
    pub memory: ModuleExport,
    pub manifest: ModuleExport,
    pub alloc: ModuleExport,
    pub dealloc: ModuleExport,
    pub execute: ModuleExport,
    pub resume: Option<ModuleExport>,
    pub initialize: Option<ModuleExport>,
}

/// What a store carries for one call.
pub struct StoreState {
    pub(crate) wasi: WasiP1Ctx,
    pub(super) limiter: GuestLimiter,
    pub(super) stdout: Option<CappedOutput>,
    pub(super) stderr: Option<CappedOutput>,
    pub(crate) shadow: ShadowState,
    /// When the wall-clock limit of this store's call runs out (`None`: a limit too
    /// far away to name). Host calls that wait end by then
    /// ([`super::deadline`]); wasm code is stopped by the epoch deadline.
    pub(crate) deadline: Option<Instant>,
}

impl StoreState {
    /// A state with no WASI grants at all, whose deadline is `limits.timeout` from
    /// now.
    pub(crate) fn bare(limits: &Limits) -> Self {
        StoreState {
            wasi: WasiCtxBuilder::new().build_p1(),
            limiter: GuestLimiter::new(limits.memory, limits.table_elements),
            stdout: None,
            stderr: None,
            shadow: ShadowState::new(0),
            deadline: Instant::now().checked_add(limits.timeout),
        }
    }
}

/// Runs `call` with the store's WASI context and the calling plugin's memory, the way
/// wasmtime-wasi's own linker functions do (`hostcall_fuel` handed over first).
///
/// # Errors
///
/// When the calling instance exports no memory named `memory` (the loader refuses
/// such plugins before they run) or only a shared one (the loader refuses those too).
#[inline]
pub(crate) fn with_wasi<R>(
    caller: &mut Caller<'_, StoreState>,
    call: impl FnOnce(&mut WasiP1Ctx, &mut GuestMemory<'_>) -> R,
) -> wasmtime::Result<R> {
    let fuel = caller.as_context_mut().hostcall_fuel();
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        wasmtime::bail!("the plugin exports no unshared memory named `memory` for WASI to use");
    };
    let (bytes, state) = memory.data_and_store_mut(&mut *caller);
    state.wasi.set_hostcall_fuel(fuel);
    Ok(call(&mut state.wasi, &mut GuestMemory::Unshared(bytes)))
}
