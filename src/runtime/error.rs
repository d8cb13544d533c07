//! Typed errors of loading and running a plugin.
//!
//! Each error says which plugin (when its name is known), which guest call, and what
//! happened, and maps to one exit code of `CLI.md`. Messages that embed
//! guest-controlled text are escaped by the printer, not here.

use crate::abi::{AbiViolation, DecodeError, ManifestError};
use crate::limits::LimitKind;

/// The guest function warden was calling when something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestCall {
    /// Instantiation, including a start function.
    Instantiate,
    /// The reactor's `_initialize`.
    Initialize,
    /// `plugin_manifest`.
    Manifest,
    /// `plugin_alloc`.
    Alloc,
    /// `plugin_execute`.
    Execute,
    /// `plugin_resume`.
    Resume,
}

impl GuestCall {
    /// The export's name.
    pub fn export_name(self) -> &'static str {
        match self {
            GuestCall::Instantiate => "instantiation",
            GuestCall::Initialize => "_initialize",
            GuestCall::Manifest => "plugin_manifest",
            GuestCall::Alloc => "plugin_alloc",
            GuestCall::Execute => "plugin_execute",
            GuestCall::Resume => "plugin_resume",
        }
    }
}

/// What went wrong; see [`RuntimeError`] for the context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeErrorKind {
    /// The wasmtime engine could not be configured (a host problem).
    #[error("cannot set up the wasm engine: {message}")]
    Engine {
        /// wasmtime's message.
        message: String,
    },
    /// The bytes are not a valid WebAssembly module, or use a feature warden disables.
    #[error("not a valid WebAssembly module for warden: {message}")]
    Compile {
        /// wasmtime's message.
        message: String,
    },
    /// The module imports something warden does not provide.
    #[error(
        "imports `{module}::{name}`, which warden does not provide (plugins may import only `wasi_snapshot_preview1` functions)"
    )]
    UnsupportedImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// Linking failed for another reason (e.g. an import with the wrong type).
    #[error("cannot link the module against WASI: {message}")]
    Link {
        /// wasmtime's message.
        message: String,
    },
    /// A required export is missing.
    #[error(
        "does not export `{name}`, which the sen-plugin ABI v2 requires; build the plugin with sen-plugin-sdk 0.8"
    )]
    MissingExport {
        /// The missing export.
        name: &'static str,
    },
    /// An ABI export has the wrong type.
    #[error("exports `{name}` as {found}, but the ABI requires {expected}")]
    ExportSignature {
        /// The export.
        name: &'static str,
        /// What the ABI requires.
        expected: &'static str,
        /// What the module has.
        found: String,
    },
    /// The guest broke the memory part of the ABI.
    #[error("broke the ABI: {0}")]
    Abi(AbiViolation),
    /// The manifest is larger than the limit.
    #[error("returned a manifest of {len} bytes; the limit is {max} bytes")]
    ManifestTooLarge {
        /// Claimed length.
        len: u32,
        /// The limit.
        max: u64,
    },
    /// The manifest did not decode or validate.
    #[error("returned an invalid manifest: {0}")]
    Manifest(ManifestError),
    /// The execute result did not decode.
    #[error("returned an invalid result: {0}")]
    Result(DecodeError),
    /// The guest trapped.
    #[error("trapped: {message}")]
    Trap {
        /// The trap, as wasmtime describes it.
        message: String,
    },
    /// The guest ran into a hard limit.
    #[error("exceeded its {limit} limit of {value}{unit}; raise `{key}` in the policy if the plugin really needs more", unit = limit_unit(*.limit), key = .limit.policy_key())]
    Limit {
        /// Which limit.
        limit: LimitKind,
        /// The limit's value.
        value: u64,
    },
    /// The arguments are larger than the input limit.
    #[error("arguments encode to {len} bytes; the limit is {max} bytes")]
    ArgsTooLarge {
        /// Encoded length.
        len: usize,
        /// The limit.
        max: u64,
    },
    /// The guest asked for a host effect warden cannot resume it from.
    #[error("asked for a `{effect}` effect, but {why}")]
    EffectRefused {
        /// The effect's kind.
        effect: &'static str,
        /// Why the call cannot go on.
        why: &'static str,
    },
    /// The sandbox could not be built for this call.
    #[error("cannot build the sandbox: {message}")]
    Sandbox {
        /// What failed.
        message: String,
    },
    /// The guest broke the ABI or returned something invalid, as its worker reported
    /// it (the worker's words, checked and bounded by the parent).
    #[error("broke the ABI: {message}")]
    Invalid {
        /// What was wrong.
        message: String,
    },
    /// The worker process running the call died or misbehaved before it reported:
    /// killed by a signal (the seccomp filter's, the kernel's, warden's own for a
    /// malformed message), or exited. The worker is replaced for the next call.
    #[error("ran in a worker that died{}: {why}", signal_text(*.signal))]
    WorkerDied {
        /// The signal that ended it, if a signal did.
        signal: Option<i32>,
        /// What warden saw.
        why: String,
    },
    /// Every call slot of the host stayed busy until the call's deadline: the call
    /// never started. The host's load, not the plugin's doing.
    #[error(
        "waited its whole timeout of {timeout_ms} ms for one of the host's {slots} call slots; raise the host's `max_concurrent_calls` or lower its load"
    )]
    Busy {
        /// How many calls the host runs at once.
        slots: u32,
        /// The call's timeout, which the wait used up.
        timeout_ms: u64,
    },
    /// The worker process that would run the call could not be started or confined.
    #[error("cannot run in a confined worker: {message}")]
    Worker {
        /// What failed, and what to do.
        message: String,
    },
}

fn signal_text(signal: Option<i32>) -> String {
    match signal {
        Some(s) => format!(" (signal {s})"),
        None => String::new(),
    }
}

fn limit_unit(limit: LimitKind) -> &'static str {
    match limit {
        LimitKind::Fuel => " instructions",
        LimitKind::Table => " elements",
        LimitKind::Timeout => " ms",
        _ => " bytes",
    }
}

/// An error of loading or running a plugin, with its context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{kind}", self.context())]
pub struct RuntimeError {
    /// The plugin's declared name, once known.
    pub plugin: Option<String>,
    /// The guest call in progress, if any.
    pub call: Option<GuestCall>,
    /// What happened.
    pub kind: RuntimeErrorKind,
}

impl RuntimeError {
    /// An error of `kind`, in no particular call.
    pub(crate) fn new(kind: RuntimeErrorKind) -> Self {
        RuntimeError {
            plugin: None,
            call: None,
            kind,
        }
    }

    pub(crate) fn in_call(call: GuestCall, kind: RuntimeErrorKind) -> Self {
        RuntimeError {
            plugin: None,
            call: Some(call),
            kind,
        }
    }

    pub(crate) fn for_plugin(mut self, name: &str) -> Self {
        self.plugin = Some(name.to_owned());
        self
    }

    fn context(&self) -> String {
        let who = match &self.plugin {
            Some(name) => format!("plugin `{name}`"),
            None => "plugin".to_owned(),
        };
        match self.call {
            Some(call) => format!("{who} (in {}) ", call.export_name()),
            None => format!("{who} "),
        }
    }

    /// The limit this error reports, if it is a limit.
    pub fn limit(&self) -> Option<(LimitKind, u64)> {
        match self.kind {
            RuntimeErrorKind::Limit { limit, value } => Some((limit, value)),
            RuntimeErrorKind::Busy { slots, .. } => {
                Some((LimitKind::Concurrency, u64::from(slots)))
            }
            _ => None,
        }
    }

    /// The exit code ([`crate::exit`]) of this error.
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match &self.kind {
            RuntimeErrorKind::Engine { .. } => exit::INTERNAL,
            RuntimeErrorKind::Compile { .. }
            | RuntimeErrorKind::UnsupportedImport { .. }
            | RuntimeErrorKind::Link { .. }
            | RuntimeErrorKind::MissingExport { .. }
            | RuntimeErrorKind::ExportSignature { .. }
            | RuntimeErrorKind::Abi(_)
            | RuntimeErrorKind::ManifestTooLarge { .. }
            | RuntimeErrorKind::Manifest(_)
            | RuntimeErrorKind::Invalid { .. }
            | RuntimeErrorKind::Result(_) => exit::INVALID_PLUGIN,
            RuntimeErrorKind::Trap { .. } | RuntimeErrorKind::WorkerDied { .. } => exit::TRAP,
            RuntimeErrorKind::Worker { .. } => exit::INTERNAL,
            RuntimeErrorKind::Limit {
                limit: LimitKind::Timeout,
                ..
            } => exit::TIMEOUT,
            RuntimeErrorKind::Limit { .. } | RuntimeErrorKind::Busy { .. } => exit::LIMIT,
            RuntimeErrorKind::ArgsTooLarge { .. } => exit::USAGE,
            RuntimeErrorKind::EffectRefused { .. } => exit::REFUSED,
            RuntimeErrorKind::Sandbox { .. } => exit::NO_INPUT,
        }
    }

    /// The signal that ended the worker, for [`RuntimeErrorKind::WorkerDied`].
    pub fn worker_signal(&self) -> Option<i32> {
        match self.kind {
            RuntimeErrorKind::WorkerDied { signal, .. } => signal,
            _ => None,
        }
    }

    /// The `run_end` outcome for this error (`AUDIT.md`).
    pub fn outcome(&self) -> &'static str {
        use crate::exit;
        if matches!(self.kind, RuntimeErrorKind::WorkerDied { .. }) {
            return "worker_died";
        }
        match self.exit_code() {
            exit::INVALID_PLUGIN => "abi_violation",
            exit::TIMEOUT | exit::LIMIT => "limit",
            exit::REFUSED => "refused",
            _ => "trap",
        }
    }
}
