//! The sen-plugin ABI v2 wire types, as warden decodes them.
//!
//! These mirror the guest SDK's types field for field (see `ABI.md`), but they are
//! warden's own: the host never links the guest's crates, and every type here is
//! decoded from hostile bytes, so each one is followed by [`super::validate`] before
//! anything else looks at it.
//!
//! Unknown fields are ignored, absent optional fields take their defaults, and both the
//! named-map form (`rmp_serde::to_vec_named`) and the array form (`rmp_serde::to_vec`)
//! decode to the same value.

use serde::{Deserialize, Serialize};

/// The only ABI version warden speaks.
pub const API_VERSION: u32 = 2;

/// What a plugin says about itself, returned by its `plugin_manifest` export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginManifest {
    /// ABI version; must be [`API_VERSION`].
    pub api_version: u32,
    /// The command the plugin implements.
    pub command: CommandSpec,
    /// What the plugin asks to touch. Absent means nothing.
    #[serde(default)]
    pub capabilities: Capabilities,
}

/// A command (or subcommand) with its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpec {
    /// Command name; also the key of the plugin's policy table.
    pub name: String,
    /// One-line description.
    pub about: String,
    /// Version string, free-form.
    #[serde(default)]
    pub version: Option<String>,
    /// Author, free-form.
    #[serde(default)]
    pub author: Option<String>,
    /// Arguments of this command.
    #[serde(default)]
    pub args: Vec<ArgSpec>,
    /// Nested subcommands.
    #[serde(default)]
    pub subcommands: Vec<CommandSpec>,
}

/// One argument of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgSpec {
    /// Argument name.
    pub name: String,
    /// `--long` form, if any.
    #[serde(default)]
    pub long: Option<String>,
    /// `-s` form, if any.
    #[serde(default)]
    pub short: Option<char>,
    /// Whether the argument must be given.
    #[serde(default)]
    pub required: bool,
    /// Help text.
    #[serde(default)]
    pub help: String,
    /// Placeholder shown in usage.
    #[serde(default)]
    pub value_name: Option<String>,
    /// Default value.
    #[serde(default)]
    pub default_value: Option<String>,
    /// Accepted values, if restricted.
    #[serde(default)]
    pub possible_values: Option<Vec<String>>,
}

/// What a plugin declares it needs. Every field defaults to empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Directories the plugin wants to read.
    #[serde(default)]
    pub fs_read: Vec<PathPattern>,
    /// Directories the plugin wants to write (and read).
    #[serde(default)]
    pub fs_write: Vec<PathPattern>,
    /// Environment variable names or `*` globs.
    #[serde(default)]
    pub env_read: Vec<String>,
    /// Network endpoints (never granted: WASI preview 1 has no sockets).
    #[serde(default)]
    pub net: Vec<NetPattern>,
    /// Standard streams.
    #[serde(default)]
    pub stdio: StdioCapability,
}

impl Capabilities {
    /// True when the plugin declares nothing at all.
    pub fn is_empty(&self) -> bool {
        self.fs_read.is_empty()
            && self.fs_write.is_empty()
            && self.env_read.is_empty()
            && self.net.is_empty()
            && !self.stdio.stdin
            && !self.stdio.stdout
            && !self.stdio.stderr
    }
}

/// A declared filesystem path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathPattern {
    /// The path as declared (`./data`, `~/cfg`, `/tmp/x`).
    pub pattern: String,
    /// Whether the plugin asked for the subtree (a preopen always exposes it).
    #[serde(default)]
    pub recursive: bool,
}

/// A declared network endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetPattern {
    /// Host name or pattern.
    pub host: String,
    /// Port, if restricted.
    #[serde(default)]
    pub port: Option<u16>,
    /// Protocol.
    #[serde(default)]
    pub protocol: NetProtocol,
}

/// Network protocol of a [`NetPattern`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetProtocol {
    /// HTTPS (the default).
    #[default]
    Https,
    /// Plain HTTP.
    Http,
    /// Raw TCP.
    Tcp,
}

/// Declared standard streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioCapability {
    /// Standard input.
    #[serde(default)]
    pub stdin: bool,
    /// Standard output.
    #[serde(default)]
    pub stdout: bool,
    /// Standard error.
    #[serde(default)]
    pub stderr: bool,
}

/// What `plugin_execute` (and `plugin_resume`) return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecuteResult {
    /// The command succeeded; the text is its output.
    Success(String),
    /// The command failed.
    Error(ExecuteError),
    /// The plugin asks the host to perform an effect and resume it.
    Effect(Effect),
}

/// A plugin's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecuteError {
    /// 1 = user error, 101 = system error (other values are passed through).
    pub code: u8,
    /// What went wrong, in the plugin's words.
    pub message: String,
}

/// A host effect a plugin may request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// HTTP GET.
    HttpGet {
        /// Effect id, echoed to `plugin_resume`.
        id: u32,
        /// Target URL.
        url: String,
        /// Request headers.
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    /// HTTP POST.
    HttpPost {
        /// Effect id, echoed to `plugin_resume`.
        id: u32,
        /// Target URL.
        url: String,
        /// Request body.
        body: String,
        /// Content type.
        #[serde(default)]
        content_type: Option<String>,
        /// Request headers.
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    /// Sleep for a while.
    Sleep {
        /// Effect id, echoed to `plugin_resume`.
        id: u32,
        /// How long.
        duration_ms: u64,
    },
}

impl Effect {
    /// The id the plugin gave this effect.
    pub fn id(&self) -> u32 {
        match self {
            Effect::HttpGet { id, .. } | Effect::HttpPost { id, .. } | Effect::Sleep { id, .. } => {
                *id
            }
        }
    }

    /// A short name for messages and audit records.
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::HttpGet { .. } => "http_get",
            Effect::HttpPost { .. } => "http_post",
            Effect::Sleep { .. } => "sleep",
        }
    }
}

/// The host's answer to an [`Effect`], passed to `plugin_resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EffectResult {
    /// An HTTP response.
    Http(HttpResponse),
    /// The sleep finished.
    SleepComplete,
    /// The effect failed or was refused.
    Error(String),
}

/// An HTTP response for [`EffectResult::Http`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: String,
    /// Headers.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}
