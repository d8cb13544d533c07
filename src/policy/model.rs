//! The policy as data: the modes, the streams, the rules of `[defaults]` and of each
//! `[plugins.NAME]` table, each list entry with the key path that names it.
//!
//! These are the types the parser fills in and everything downstream reads (the
//! decisions, the suggestions, the pins): they sit below the parser and [`Policy`](super::Policy)
//! so that each of those can be read on its own. Values are kept as written (paths
//! unresolved); what they mean on a host is [`crate::grant`]'s to decide.

use crate::limits::{Limits, MIB};
use std::time::Duration;

/// The only policy format version.
pub const POLICY_VERSION: i64 = 1;

/// What the built-in policy is called where a file name would be.
pub const BUILTIN_NAME: &str = "<built-in>";

/// Rule 10: grants nothing but stdout and stderr, with the default limits.
pub const BUILTIN_TEXT: &str = "version = 1\n\n[defaults]\nstdio = [\"stdout\", \"stderr\"]\n";

/// Largest `stack` a policy may set: the host thread that runs a plugin must have more
/// stack than the wasm code may use, or running out of it aborts the process. `warden
/// run` calls plugins on its main thread (8 MiB by default on Linux), so 4 MiB leaves
/// the host half of it.
pub const MAX_STACK: u64 = 4 * MIB;

/// Largest `memory` or `max_output` a policy may set: a wasm32 memory cannot be larger.
pub const MAX_MEMORY: u64 = 4096 * MIB;

/// `mode`: enforce the policy, or only record what it would deny.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Grant the intersection only (the default).
    #[default]
    Enforce,
    /// Grant what the plugin declares; record would-be denials as `would_deny`.
    Audit,
}

impl Mode {
    /// The value as written in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

/// `on_denied`: what to do when a declared capability is denied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDenied {
    /// Run with the granted subset (the default).
    #[default]
    Run,
    /// Refuse to run at all.
    Refuse,
}

/// `isolation`: where a plugin's guest code runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// In a separate worker process that confines itself (filesystem rules and a
    /// syscall filter) before it runs any guest code (the default): an escape from the
    /// wasm runtime finds only what the policy granted.
    #[default]
    Process,
    /// In warden's own process: the fastest, with the wasm runtime as the only wall.
    InProcess,
}

impl Isolation {
    /// The value as written in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Process => "process",
            Isolation::InProcess => "in-process",
        }
    }
}

/// `confine`: what to do where the kernel cannot enforce all of a worker's confinement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confine {
    /// Enforce what the kernel offers and record what it did not (the default).
    #[default]
    BestEffort,
    /// Refuse to run where the kernel cannot enforce the filesystem rules and the
    /// syscall filter.
    Required,
}

impl Confine {
    /// The value as written in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Confine::BestEffort => "best-effort",
            Confine::Required => "required",
        }
    }
}

/// A standard stream a policy may grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard input.
    Stdin,
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// All streams, in order.
    pub const ALL: [Stream; 3] = [Stream::Stdin, Stream::Stdout, Stream::Stderr];

    /// The stream's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdin => "stdin",
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One list entry of a policy, with the key path that names it in decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<T> {
    /// Key path, e.g. `defaults.fs.deny[1]`.
    pub key: String,
    /// The value as written (paths unresolved).
    pub value: T,
}

/// Limits a table sets; unset ones come from `[defaults]`, then from [`Limits::default`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    /// `fuel`.
    pub fuel: Option<u64>,
    /// `memory`, in bytes.
    pub memory: Option<u64>,
    /// `stack`, in bytes.
    pub stack: Option<u64>,
    /// `timeout`.
    pub timeout: Option<Duration>,
    /// `max_output`, in bytes.
    pub max_output: Option<u64>,
    /// `net.max_requests`.
    pub max_requests: Option<u32>,
    /// `net.max_response`, in bytes.
    pub max_response: Option<u64>,
    /// `net.request_timeout`.
    pub request_timeout: Option<Duration>,
}

impl LimitOverrides {
    /// `base` with every limit this table sets replaced.
    pub fn apply(&self, base: &Limits) -> Limits {
        let mut limits = base.clone();
        if let Some(fuel) = self.fuel {
            limits.fuel = fuel;
        }
        if let Some(memory) = self.memory {
            limits.memory = memory;
        }
        if let Some(stack) = self.stack {
            // Bounded by MAX_STACK at parse time, so this always fits.
            limits.stack = usize::try_from(stack).unwrap_or(usize::MAX);
        }
        if let Some(timeout) = self.timeout {
            limits.timeout = timeout;
        }
        if let Some(max_output) = self.max_output {
            limits.max_output = max_output;
        }
        if let Some(max_requests) = self.max_requests {
            limits.max_requests = max_requests;
        }
        if let Some(max_response) = self.max_response {
            limits.max_response = max_response;
        }
        if let Some(request_timeout) = self.request_timeout {
            limits.request_timeout = request_timeout;
        }
        limits
    }
}

/// The rules of `[defaults]` or of one `[plugins.NAME]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// The table's key path: `defaults` or `plugins.NAME`.
    pub table: String,
    /// Limits the table sets.
    pub limits: LimitOverrides,
    /// `stdio`, when set (a plugin's list replaces the default one).
    pub stdio: Option<Vec<Entry<Stream>>>,
    /// `isolation`, when the table sets it (a plugin's replaces the default).
    pub isolation: Option<Entry<Isolation>>,
    /// `confine`, when the table sets it (a plugin's replaces the default).
    pub confine: Option<Entry<Confine>>,
    /// `fs.read`: directories that may be read.
    pub fs_read: Vec<Entry<String>>,
    /// `fs.write`: directories that may be written (and read).
    pub fs_write: Vec<Entry<String>>,
    /// `fs.deny`: directories never granted.
    pub fs_deny: Vec<Entry<String>>,
    /// `env.allow`: variable names or `*` globs that may be passed.
    pub env_allow: Vec<Entry<String>>,
    /// `env.deny`: variable names or `*` globs never passed.
    pub env_deny: Vec<Entry<String>>,
    /// `net.allow`: `scheme://host[:port]` destinations that may be reached.
    pub net_allow: Vec<Entry<crate::net::Endpoint>>,
    /// `net.deny`: hosts and address ranges never reached.
    pub net_deny: Vec<Entry<crate::net::HostPattern>>,
    /// `net.tls_roots`: PEM files of extra roots trusted for HTTPS (a private CA).
    pub net_tls_roots: Vec<Entry<String>>,
}

/// One `[plugins.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginTable {
    /// The plugin name it matches (the manifest's command name).
    pub name: String,
    /// `sha256`: the pinned digests of the `.wasm` file (one string, or a list during a
    /// rolling update); empty when the table pins nothing.
    pub sha256: Vec<Entry<[u8; 32]>>,
    /// `on_denied`, when the table sets it (it replaces `[defaults]`'s).
    pub on_denied: Option<Entry<OnDenied>>,
    /// The table's rules.
    pub rules: Rules,
}

/// `name` as a TOML key: bare when it can be, quoted otherwise (`plugins.file-reader`,
/// `plugins."my.tool"`), as `policy pin` and `policy suggest` write a plugin's table.
pub fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        name.to_owned()
    } else {
        // A basic string with every control and bidirectional character escaped:
        // Rust's `{:?}` writes `\u{1b}`, which is not TOML.
        crate::escape::toml_string(name)
    }
}
