//! Loading and running plugins under hard limits.
//!
//! - [`loader`]: one engine and linker per [`Loader`], one compile per load, the
//!   import/export checks and the manifest read.
//! - [`instance`]: a fresh store and WASI context per call; [`PluginInstance::run`].
//! - [`limiter`], [`output`]: memory/table ceilings and capped stdout/stderr.
//! - [`store`]: what a store carries for one call, and the names the runtime shares;
//! - [`observed`]: what a plugin tried past its grants, and used (audit mode);
//! - [`shadow`]: wrappers around the WASI path functions that record what a plugin
//!   tried past its grants, and refuse symlinks that lead out.
//! - [`deadline`]: wrappers around the WASI functions that wait (`poll_oneoff`,
//!   `fd_read`) that end every wait by the call's deadline.
//! - [`error`]: typed errors with the plugin, the call and the exit code.
//!
//! # Security
//!
//! The module, the manifest and every value a guest returns are untrusted. Every call,
//! the manifest read and any start function included, runs with fuel, an epoch
//! deadline, a memory ceiling, a stack ceiling and output caps in force; a host call
//! that waits ends by the same deadline ([`deadline`]).

pub mod deadline;
pub mod error;
#[cfg(feature = "escape-simulator")]
pub mod escape_sim;
pub mod instance;
pub mod limiter;
pub mod loader;
pub mod observed;
pub mod output;
pub mod shadow;
pub mod store;

pub use error::{GuestCall, RuntimeError, RuntimeErrorKind};
pub use instance::{PluginInstance, RunReport};
pub use loader::{
    KEEP_RESIDENT_MEMORY, KEEP_RESIDENT_TABLE, LoadedPlugin, Loader, LoaderConfig, POOL_SLOTS,
    engine_config,
};
pub use observed::{Access, Accesses, Refusal, RuntimeDenials, RuntimeDeny};
