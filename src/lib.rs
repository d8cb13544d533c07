//! warden: a policy-driven security sandbox for WebAssembly plugins.
//!
//! warden loads WASI preview-1 plugins that speak the sen-plugin ABI v2, intersects the
//! capabilities they declare with an operator's policy, and runs them with only that
//! intersection, under hard limits, writing every decision to a tamper-evident audit
//! log.
//!
//! The modules follow the trust boundaries:
//!
//! - [`abi`]: wire types, strict decoding, checked guest memory (guest-controlled input);
//! - [`limits`]: the ceilings every call runs under;
//! - [`policy`]: the operator's TOML policy, validated, with every error's line and column;
//! - [`grant`]: declared capabilities ∩ policy -> one decision per item (pure);
//! - [`sandbox`]: the opened directories, env allowlist and streams a plugin gets;
//! - [`net`]: the network effects warden performs for a plugin, checked per request;
//! - [`runtime`]: engine, linker, loader and per-call execution;
//! - [`cache`]: the compiled-module cache of the command line (the one `unsafe` block);
//! - [`audit`]: the tamper-evident audit log (records, hash chain, writer, verify);
//! - [`escape`]: the one way plugin-controlled text reaches a terminal or a JSON output;
//! - [`paths`]: path text as decisions resolve it (`~`, relative, `..`, canonical
//!   forms) and as the guest sees it;
//! - [`files`]: the one way warden creates or replaces a file (never through a symlink,
//!   keeping a replaced file's mode and owner);
//! - [`confinement`]: what the kernel enforces around a plugin's guest code;
//! - [`worker`]: the confined worker process guest code runs in under
//!   `isolation = "process"`, and the parent's side of its channel;
//! - [`host`]: the whole pipeline as one type an application embeds ([`Warden`]), and
//!   a directory of plugins called by command name ([`host::Registry`]);
//! - [`exit`]: the exit codes the `warden` command and the library's errors share.
//!
//! The `warden` command line is the binary's own (`src/main.rs`, `src/cli/`), not part
//! of this library.

#![deny(unsafe_code)]
// Unit tests write their fixtures with std; the library itself writes files only
// through `files` (`clippy.toml`), which the non-test build of every target checks.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod abi;
pub mod audit;
pub mod cache;
pub mod confinement;
pub mod escape;
pub mod exit;
pub mod files;
pub mod grant;
pub mod host;
pub mod limits;
pub mod net;
pub mod paths;
pub mod policy;
pub mod runtime;
pub mod sandbox;
pub mod worker;

// The fuzz targets' entry points, behind the `fuzzing` feature (the fuzz crate and the
// tests turn it on); hidden even then: it is no part of the library's API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use host::{Loaded, Plugin, Warden};
pub use limits::{LimitKind, Limits};
pub use runtime::{LoadedPlugin, Loader, LoaderConfig, PluginInstance, RunReport, RuntimeError};

/// The README's Rust examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
