//! What the intersection produces: one [`Decision`] per declared item, the
//! [`Grant`] proof a granted item carries, and [`Decisions`], everything decided about
//! one plugin under one policy.
//!
//! These types sit below the per-capability files (`fs`, `env`, `stdio`, `net`) that
//! fill them in and the `decide` loop that collects them, so each of those reads on
//! its own. A [`Grant`]'s contents are visible to `grant` alone: nothing outside it
//! can make one, so the sandbox, built from grants only, gets nothing a decision did
//! not grant.

use crate::limits::Limits;
use crate::policy::{Confine, Isolation, Mode, OnDenied, Stream};
use serde::Serialize;
use std::path::PathBuf;

/// The rule key of a decision no rule made.
pub const NO_RULE: &str = "none";

/// The rule key of a setting (`isolation`, `confine`) that neither the plugin's table
/// nor `[defaults]` writes: the built-in default decided it.
pub(crate) const DEFAULT_RULE: &str = "default";

/// The kind of a declared item (`AUDIT.md`'s `capability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// A directory to read.
    FsRead,
    /// A directory to write (and read).
    FsWrite,
    /// An environment variable name or glob.
    Env,
    /// A standard stream.
    Stdio,
    /// A network endpoint.
    Net,
}

impl Capability {
    /// The name used in records and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::FsRead => "fs_read",
            Capability::FsWrite => "fs_write",
            Capability::Env => "env",
            Capability::Stdio => "stdio",
            Capability::Net => "net",
        }
    }
}

/// What was decided for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The plugin gets it.
    Granted,
    /// The plugin does not get it.
    Denied,
    /// Audit mode: the policy would deny it, but the plugin gets it.
    WouldDeny,
}

impl Outcome {
    /// The name used in records and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Granted => "granted",
            Outcome::Denied => "denied",
            Outcome::WouldDeny => "would_deny",
        }
    }
}

/// Proof that [`decide`](super::decide) granted an item, holding exactly what the
/// sandbox needs. Only `grant` constructs one.
#[derive(Clone)]
pub struct Grant {
    pub(super) kind: GrantKind,
}

#[derive(Clone)]
pub(crate) enum GrantKind {
    Dir(DirGrant),
    Env(Vec<(String, String)>),
    Stream(Stream),
    /// A declared endpoint: the parts of it the plugin may reach (rule 7's
    /// intersection), each with the rule that lets it through.
    Net(Vec<crate::net::NetGrant>),
}

/// A granted directory: the directory itself, held open since the decision was made
/// about it, with its canonical host path and identity.
#[derive(Debug, Clone)]
pub(crate) struct DirGrant {
    pub dir: std::sync::Arc<cap_std::fs::Dir>,
    pub host_path: PathBuf,
    pub guest_path: String,
    pub writable: bool,
    // The directory's identity when it was opened: the fuzz oracle checks it against
    // what the host path names.
    #[cfg_attr(
        not(feature = "fuzzing"),
        expect(dead_code, reason = "read by the fuzz oracle")
    )]
    pub dev: u64,
    #[cfg_attr(
        not(feature = "fuzzing"),
        expect(dead_code, reason = "read by the fuzz oracle")
    )]
    pub ino: u64,
}

impl Grant {
    pub(crate) fn kind(&self) -> &GrantKind {
        &self.kind
    }
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            GrantKind::Dir(d) => f.debug_tuple("Grant").field(d).finish(),
            // Values never leave the host: not even into a debug print.
            GrantKind::Env(vars) => f
                .debug_tuple("Grant")
                .field(&vars.iter().map(|(k, _)| k).collect::<Vec<_>>())
                .finish(),
            GrantKind::Stream(s) => f.debug_tuple("Grant").field(s).finish(),
            GrantKind::Net(parts) => f
                .debug_tuple("Grant")
                .field(
                    &parts
                        .iter()
                        .map(|n| n.endpoint.to_string())
                        .collect::<Vec<_>>(),
                )
                .finish(),
        }
    }
}

/// The decision for one declared item. Serializes with exactly the fields of a
/// `grant`/`deny` audit record (`AUDIT.md`).
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub(super) capability: Capability,
    pub(super) request: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) host_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) guest_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) recursive: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) withheld: Vec<Withheld>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) reach: Vec<String>,
    pub(super) rule: String,
    pub(super) reason: String,
    pub(super) outcome: Outcome,
    #[serde(skip)]
    pub(super) named: bool,
    #[serde(skip)]
    pub(super) grant: Option<Grant>,
}

impl Decision {
    /// An item not decided yet: no rule, no reason, `outcome` until a rule says
    /// otherwise; each `decide_*` fills in what its capability knows.
    pub(crate) fn undecided(capability: Capability, request: String, outcome: Outcome) -> Self {
        Decision {
            capability,
            request,
            host_path: None,
            guest_path: None,
            recursive: None,
            names: None,
            withheld: Vec::new(),
            reach: Vec::new(),
            rule: NO_RULE.into(),
            reason: String::new(),
            outcome,
            named: false,
            grant: None,
        }
    }

    /// The kind of item.
    pub fn capability(&self) -> Capability {
        self.capability
    }
    /// The item as declared (a path, a variable pattern, a stream, an endpoint).
    pub fn request(&self) -> &str {
        &self.request
    }
    /// The host directory (canonical when it exists).
    pub fn host_path(&self) -> Option<&str> {
        self.host_path.as_deref()
    }
    /// Where the plugin sees the directory.
    pub fn guest_path(&self) -> Option<&str> {
        self.guest_path.as_deref()
    }
    /// Whether the plugin declared the directory recursive.
    pub fn recursive(&self) -> Option<bool> {
        self.recursive
    }
    /// Env: the host variable names the declared pattern passes (never values).
    pub fn names(&self) -> Option<&[String]> {
        self.names.as_deref()
    }
    /// Env: the host variables the declared pattern matches that a deny pattern
    /// withholds, each with that pattern's rule (rule 5).
    pub fn withheld(&self) -> &[Withheld] {
        &self.withheld
    }
    /// Net: what the plugin may reach (`scheme://host:port`), the intersection of the
    /// declaration with the allow entries (rule 7); empty when it gets nothing.
    pub fn reach(&self) -> &[String] {
        &self.reach
    }
    /// Key path of the deciding rule, or [`NO_RULE`].
    pub fn rule(&self) -> &str {
        &self.rule
    }
    /// Why, in words a person can act on.
    pub fn reason(&self) -> &str {
        &self.reason
    }
    /// The outcome.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }
    /// Whether a rule of the policy names this denial, so that it is what the
    /// administrator wrote rather than something missing: a deny entry that covers the
    /// item whole (a directory that is the entry or inside it; every name an env
    /// pattern can match; the declared host), or the plugin's own `stdio` list, which
    /// leaves the stream out. `warden run` does not count such a denial in its notice.
    /// Always false for an item the plugin gets.
    pub fn named_by_policy(&self) -> bool {
        self.named && self.outcome == Outcome::Denied
    }
    /// Whether the plugin gets the item (granted, or would-deny in audit mode).
    pub fn is_in_effect(&self) -> bool {
        self.grant.is_some()
    }
    /// The proof of grant, when the plugin gets the item.
    pub fn grant(&self) -> Option<&Grant> {
        self.grant.as_ref()
    }
}

/// A host variable a declared env pattern matches but a deny pattern withholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Withheld {
    /// The variable's name (never its value).
    pub name: String,
    /// The deny pattern's key path.
    pub rule: String,
}

/// Why a plugin must not run at all under a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The plugin's table pins another digest.
    #[error(
        "the plugin's SHA-256 is {found}, but `{rule}` pins {expected}: this is not the plugin the policy was written for"
    )]
    PinMismatch {
        /// `plugins.NAME.sha256`.
        rule: String,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        found: String,
    },
    /// `require_digest` is set and the plugin matches no pinned table.
    #[error(
        "`{rule}` is true and {what}; pin the plugin with `sha256 = \"{found}\"` in `[plugins.{name}]`"
    )]
    DigestRequired {
        /// `defaults.require_digest`.
        rule: String,
        /// What is missing.
        what: String,
        /// The plugin's name as a TOML key.
        name: String,
        /// The file's digest.
        found: String,
    },
    /// `on_denied = "refuse"` and something was denied.
    #[error(
        "`{rule}` is `refuse` and {count} declared item(s) were denied, the first `{first}` ({first_reason})"
    )]
    Denied {
        /// `defaults.on_denied`, or the plugin table's.
        rule: String,
        /// How many items were denied.
        count: usize,
        /// The first denied item's request.
        first: String,
        /// Why the first was denied.
        first_reason: String,
    },
}

impl Refusal {
    /// Key path of the rule that refuses.
    pub fn rule(&self) -> &str {
        match self {
            Refusal::PinMismatch { rule, .. }
            | Refusal::DigestRequired { rule, .. }
            | Refusal::Denied { rule, .. } => rule,
        }
    }
}

/// Every decision about one plugin under one policy.
#[derive(Debug, Clone)]
pub struct Decisions {
    pub(super) plugin: String,
    pub(super) sha256: [u8; 32],
    pub(super) table: Option<String>,
    pub(super) mode: Mode,
    pub(super) on_denied: OnDenied,
    pub(super) limits: Limits,
    pub(super) isolation: (Isolation, String),
    pub(super) confine: (Confine, String),
    pub(super) items: Vec<Decision>,
    pub(super) refusal: Option<Refusal>,
    pub(super) net: crate::net::NetAccess,
}

impl Decisions {
    /// The plugin's declared name.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }
    /// The plugin file's SHA-256.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }
    /// The plugin table that applied (`plugins.NAME`), if any.
    pub fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }
    /// The policy's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// What happens on a denial.
    pub fn on_denied(&self) -> OnDenied {
        self.on_denied
    }
    /// The limits every call runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    /// Where the plugin's guest code runs, and the rule that decided it:
    /// `plugins.NAME.isolation`, `defaults.isolation`, or `default` when neither is
    /// written.
    pub fn isolation(&self) -> (Isolation, &str) {
        (self.isolation.0, &self.isolation.1)
    }
    /// Whether a run needs the kernel to enforce all of its confinement, and the rule
    /// that decided it: `plugins.NAME.confine`, `defaults.confine`, or `default` when
    /// neither is written.
    pub fn confine(&self) -> (Confine, &str) {
        (self.confine.0, &self.confine.1)
    }
    /// One decision per declared item, in declaration order (fs_read, fs_write, env,
    /// stdio, net).
    pub fn items(&self) -> &[Decision] {
        &self.items
    }
    /// The items the plugin gets.
    pub fn grants(&self) -> impl Iterator<Item = &Grant> {
        self.items.iter().filter_map(|d| d.grant.as_ref())
    }
    /// Why the plugin must not run, if it must not.
    pub fn refusal(&self) -> Option<&Refusal> {
        self.refusal.as_ref()
    }
    /// What the per-request network checks need: the granted and denied
    /// declarations, and the `net` entries that apply to the plugin.
    pub fn net(&self) -> &crate::net::NetAccess {
        &self.net
    }
}

/// The outcome for an item the policy denies: denied, or granted anyway in audit mode.
pub(super) fn policy_denial(mode: Mode) -> Outcome {
    match mode {
        Mode::Enforce => Outcome::Denied,
        Mode::Audit => Outcome::WouldDeny,
    }
}
