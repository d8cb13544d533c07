// Tests write their fixtures (and plant symlinks) with std: `clippy.toml`'s
// disallowed methods are for the library, which writes only through `warden::files`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    missing_docs
)]

//! warden's integration tests, built into one binary (as wasmtime does) so that
//! wasmtime is linked once.
//!
//! - [`admin_loop`]: audit mode's deny lists and `access` records, `policy suggest`
//!   from audit runs to an enforce policy, `policy pin`, `policy check` warnings, the
//!   stderr line of a run that was denied something;
//! - [`hostile`]: hand-written WAT plugins that attack the loader and the runtime;
//! - [`blocking`]: WASI calls that wait (`poll_oneoff`, a silent stdin) end at the
//!   wall-clock limit, in every guest call and through `warden run`/`inspect`;
//! - [`network`]: network effects against loopback servers the tests start: allowed
//!   requests, SSRF attempts, the bounds, HTTPS with a private CA;
//! - [`plugins`]: the example plugins built with `sen-plugin-sdk` 0.8;
//! - [`cli`]: the `warden` binary's commands and exit codes;
//! - `confine` (with the `escape-simulator` feature): the second wall: a simulated
//!   escape from wasm in a confined worker cannot read, write, exec, connect, signal
//!   or reach the log beyond its grants, and a stuck or crashing worker is recorded;
//! - [`fuzz_inputs`]: committed fuzz seeds and crash regressions, replayed;
//! - [`policy`]: malformed policies rejected at their line and column, `policy check`;
//! - [`escape`]: escape attempts with real plugins against the policy engine's grants;
//! - [`properties`]: proptest invariants of the intersection over generated policies,
//!   declarations and directory trees;
//! - [`checkpoints`]: what a key and checkpoint files vouch for against a forger who
//!   can write the log: a chain rebuilt from seq 0, a log cut up to its newest
//!   checkpoint, a checkpoint file's unsigned fields, a checkpoint per host, the
//!   unsigned tail;
//! - [`hostile_logs`]: `audit verify`, `show`, `summary` and `policy suggest` on logs
//!   whose text paints the terminal: nothing raw reaches it, TOML values round-trip;
//! - [`load`]: calls beyond the host's `max_concurrent_calls` wait their turn within
//!   their timeout, or end as a `concurrency` limit, never a trap;
//! - [`redaction`]: granted values out of every record, `--json` and `-v` (URLs in
//!   every form, errors, paths); requests that sleeps cannot push out of the log; the
//!   checks an effect record claims; [`redaction_property`]: the same over every
//!   record kind, for generated values;
//! - [`reviewer_loop`]: `who`, one `run_end` per run id, `audit show` filters,
//!   `audit summary` against a hand count, checkpoints against a cut tail and a
//!   rebuilt chain, a rotated set missing its oldest file, a fleet;
//! - [`run_audit`]: `warden run` and its audit log end to end (8 processes, fail closed);
//! - [`killed`]: `warden run` killed at random points of 200 runs: every effect of a
//!   guest follows its `run_start`, and verify calls each cut run incomplete;
//! - [`runtime_deny`]: what plugins try past their grants at run time is recorded, and
//!   symlinks out of a grant are refused;
//! - [`safe_writes`]: files warden writes in folders others own: a planted symlink
//!   under `audit checkpoint`, a symlinked policy under `policy pin`, a secret key
//!   swapped while it is read; strict checkpoint signatures;
//! - [`audit`]: the audit log: fields, chain, tampering, torn lines, rotation, concurrent
//!   writers, limits and traps, hostile strings, secrets, failing closed, `audit verify`.

mod admin_loop;
mod audit;
mod blocking;
mod checkpoints;
mod cli;
mod common;
#[cfg(feature = "escape-simulator")]
mod confine;
mod escape;
mod fuzz_inputs;
mod host;
mod hostile;
mod hostile_logs;
mod killed;
mod load;
mod network;
mod plugins;
mod policy;
mod properties;
mod races;
mod redaction;
mod redaction_property;
mod reviewer_loop;
mod run_audit;
mod runtime_deny;
mod safe_writes;
