//! The per-store resource limiter: linear memory, tables and instance counts.
//!
//! wasmtime asks the limiter before every `memory.grow` and table growth, including the
//! initial sizes at instantiation. Growth past the ceiling is refused with an error that
//! traps the guest at once, and the limiter remembers which ceiling was hit so the call
//! reports a memory limit rather than a generic trap.

use crate::limits::LimitKind;

/// A limit the guest ran into during the current call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitHit {
    /// Which limit.
    pub kind: LimitKind,
    /// The limit's value.
    pub value: u64,
}

/// Enforces the memory and table ceilings of one store.
#[derive(Debug)]
pub struct GuestLimiter {
    memory_bytes: usize,
    table_elements: usize,
    hit: Option<LimitHit>,
}

impl GuestLimiter {
    /// A limiter with the given ceilings.
    pub fn new(memory_bytes: u64, table_elements: usize) -> Self {
        GuestLimiter {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            table_elements,
            hit: None,
        }
    }

    /// The limit hit during this call, if any.
    pub fn hit(&self) -> Option<LimitHit> {
        self.hit
    }
}

impl wasmtime::ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.hit = Some(LimitHit {
                kind: LimitKind::Memory,
                value: self.memory_bytes as u64,
            });
            wasmtime::bail!(
                "linear memory would grow to {desired} bytes, past the limit of {} bytes",
                self.memory_bytes
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.hit = Some(LimitHit {
                kind: LimitKind::Table,
                value: self.table_elements as u64,
            });
            wasmtime::bail!(
                "a table would grow to {desired} elements, past the limit of {}",
                self.table_elements
            );
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        // The plugin; core wasm cannot instantiate anything itself.
        1
    }

    fn tables(&self) -> usize {
        // Rust's wasm32 output uses one function table; a few more cost nothing.
        8
    }

    fn memories(&self) -> usize {
        1
    }
}
