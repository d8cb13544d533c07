#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

//! warden's integration tests, built into one binary (as wasmtime does) so that
//! wasmtime is linked once.
//!
//! - [`hostile`]: hand-written WAT plugins that attack the loader and the runtime;
//! - [`plugins`]: the example plugins built with `sen-plugin-sdk` 0.8;
//! - [`cli`]: the `warden` binary's commands and exit codes.

mod cli;
mod common;
mod hostile;
mod plugins;
