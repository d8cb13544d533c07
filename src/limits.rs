//! Hard limits on what one plugin call may consume.
//!
//! Every guest call warden makes (the manifest read included) runs under one
//! [`Limits`]: fuel for instructions, a linear-memory ceiling, a wasm stack ceiling, a
//! wall-clock deadline, and ceilings on every message a plugin hands back. The defaults
//! are those of `POLICY.md`; a policy may override them per plugin.

use std::time::Duration;

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;

/// The ceilings applied to one guest call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Instructions per call (wasmtime fuel units).
    pub fuel: u64,
    /// Linear memory ceiling, in bytes.
    pub memory: u64,
    /// Wasm stack ceiling, in bytes. This one is a property of the engine, so it is
    /// fixed when the loader is built.
    pub stack: usize,
    /// Wall clock per call.
    pub timeout: Duration,
    /// Largest result message, and the most a plugin may write to stdout or stderr.
    pub max_output: u64,
    /// Largest manifest message.
    pub max_manifest: u64,
    /// Largest argument message the host will write into a guest.
    pub max_input: u64,
    /// Most elements in any table.
    pub table_elements: usize,
    /// Network effects (`HttpGet`, `HttpPost`) per call.
    pub max_requests: u32,
    /// Largest response body of one network effect, in bytes.
    pub max_response: u64,
    /// Longest one network effect may take (and never past `timeout`).
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 10_000_000,
            memory: 64 * MIB,
            stack: MIB as usize,
            timeout: Duration::from_secs(5),
            max_output: MIB,
            max_manifest: MIB,
            max_input: MIB,
            table_elements: 100_000,
            max_requests: 16,
            max_response: MIB,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Which limit a plugin ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// Fuel ran out.
    Fuel,
    /// Linear memory would have grown past the ceiling.
    Memory,
    /// A table would have grown past the ceiling.
    Table,
    /// The wasm stack overflowed.
    Stack,
    /// The wall clock ran out.
    Timeout,
    /// The result message was larger than `max_output`.
    Output,
    /// The plugin wrote more than `max_output` to stdout.
    Stdout,
    /// The plugin wrote more than `max_output` to stderr.
    Stderr,
    /// Every call slot of the host stayed busy until the call's deadline (the host's
    /// `max_concurrent_calls`, not a limit of the plugin's).
    Concurrency,
}

impl LimitKind {
    /// The policy key that sets this limit (for `Concurrency`, the host's setting).
    pub fn policy_key(self) -> &'static str {
        match self {
            LimitKind::Fuel => "fuel",
            LimitKind::Memory | LimitKind::Table => "memory",
            LimitKind::Stack => "stack",
            LimitKind::Timeout => "timeout",
            LimitKind::Output | LimitKind::Stdout | LimitKind::Stderr => "max_output",
            LimitKind::Concurrency => "max_concurrent_calls",
        }
    }

    /// The name used in messages and audit records.
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Fuel => "fuel",
            LimitKind::Memory => "memory",
            LimitKind::Table => "table",
            LimitKind::Stack => "stack",
            LimitKind::Timeout => "timeout",
            LimitKind::Output => "output",
            LimitKind::Stdout => "stdout",
            LimitKind::Stderr => "stderr",
            LimitKind::Concurrency => "concurrency",
        }
    }
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
