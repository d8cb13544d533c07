//! The intersection: what a plugin declares, what the policy allows, one decision per
//! declared item (`POLICY.md` rules 1-8).
//!
//! [`decide`] takes the declared [`Capabilities`], the plugin's name and digest, a
//! validated [`Policy`] and the [`Host`] facts (working directory, home, environment)
//! and returns [`Decisions`]: for each declared item an outcome (`granted`, `denied`,
//! or `would_deny` in audit mode), the key path of the rule that decided it, a reason a
//! person can act on, and the host and guest paths. It opens nothing and changes
//! nothing; it reads the filesystem to canonicalize paths and opens (read-only) the
//! directories it decides about.
//!
//! A granted item carries a [`Grant`], which only this module can construct. The
//! sandbox ([`crate::sandbox::Sandbox::from_decisions`]) is built from grants alone, so
//! nothing reaches a plugin that a decision did not grant.
//!
//! # Security
//!
//! This is where a plugin's declarations (hostile input) meet the operator's policy.
//! Every declared item is granted whole or denied: never widened, never silently
//! narrowed (a network declaration is granted as its intersection with the allow
//! entries, which its decision shows as `reach`: the `net` module). Deny
//! entries beat allow entries; paths are canonicalized on both sides before they are
//! compared; a declared directory that contains a denied one is denied, since a
//! preopened directory cannot hide part of its subtree. Each declared directory is
//! opened once, without following any symlink, and every check runs on where that
//! descriptor really is; a grant holds that descriptor, and the sandbox gets it, so no
//! path is looked up again between the check and the plugin (the `open` module).

pub mod env;
mod net;
mod open;

use crate::abi::{Capabilities, PathPattern};
use crate::limits::Limits;
use crate::paths;
use crate::policy::{Entry, Mode, OnDenied, Policy, Rules, Stream};
use env::EnvPattern;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The rule key of a decision no rule made.
pub const NO_RULE: &str = "none";

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

/// Proof that [`decide`] granted an item, holding exactly what the sandbox needs.
/// Only this module constructs one.
#[derive(Clone)]
pub struct Grant {
    kind: GrantKind,
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
    pub dev: u64,
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
    capability: Capability,
    request: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    host_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    guest_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recursive: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    withheld: Vec<Withheld>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reach: Vec<String>,
    rule: String,
    reason: String,
    outcome: Outcome,
    #[serde(skip)]
    grant: Option<Grant>,
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

/// The facts about the host a decision depends on.
#[derive(Clone, Default)]
pub struct Host {
    /// What relative paths resolve against (absolute).
    pub workdir: PathBuf,
    /// What `~` means, if known.
    pub home: Option<PathBuf>,
    /// The host environment (names and values; only names are ever recorded).
    pub env: Vec<(String, String)>,
    /// The audit log this run writes, when it is not one of the default places
    /// (`--audit-log`): protected like warden's own state (`builtin.protected`).
    pub audit_log: Option<PathBuf>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("workdir", &self.workdir)
            .field("home", &self.home)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("audit_log", &self.audit_log)
            .finish()
    }
}

impl Host {
    /// This process's home (`$HOME`) and environment, with `workdir` made absolute.
    /// Variables whose name or value is not UTF-8 are left out (they could not be
    /// passed to a plugin anyway).
    pub fn from_process(workdir: &Path) -> Host {
        Host {
            workdir: std::path::absolute(workdir).unwrap_or_else(|_| workdir.to_path_buf()),
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            audit_log: None,
        }
    }

    /// This host, with `log` (made absolute against the current directory) as the
    /// audit log of the run, which no plugin may then reach.
    pub fn with_audit_log(mut self, log: &Path) -> Host {
        self.audit_log = Some(std::path::absolute(log).unwrap_or_else(|_| log.to_path_buf()));
        self
    }
}

/// Every decision about one plugin under one policy.
#[derive(Debug, Clone)]
pub struct Decisions {
    plugin: String,
    sha256: [u8; 32],
    table: Option<String>,
    mode: Mode,
    on_denied: OnDenied,
    limits: Limits,
    items: Vec<Decision>,
    refusal: Option<Refusal>,
    net: crate::net::NetAccess,
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

/// A resolved fs entry of the policy.
struct PathRule<'p> {
    entry: &'p Entry<String>,
    /// Expanded and normalized; `None` when it cannot be resolved (`~` without HOME).
    lexical: Option<PathBuf>,
    /// Canonical (or canonical ancestor plus the rest).
    effective: Option<PathBuf>,
    problem: Option<paths::ExpandError>,
}

impl<'p> PathRule<'p> {
    fn resolve(entry: &'p Entry<String>, host: &Host) -> Self {
        match paths::expand(&entry.value, &host.workdir, host.home.as_deref()) {
            Ok(expanded) => {
                let lexical = paths::normalize(&expanded);
                let effective = paths::effective(&lexical).ok();
                PathRule {
                    entry,
                    lexical: Some(lexical),
                    effective,
                    problem: None,
                }
            }
            Err(problem) => PathRule {
                entry,
                lexical: None,
                effective: None,
                problem: Some(problem),
            },
        }
    }

    /// Every form of this entry that a deny check compares with.
    fn forms(&self) -> impl Iterator<Item = &Path> {
        self.lexical
            .iter()
            .chain(&self.effective)
            .map(PathBuf::as_path)
    }
}

/// The effective rules for one plugin: `[defaults]` plus its table.
struct Effective<'p> {
    /// Allow entries for reads (own read, own write, default read, default write).
    read: Vec<PathRule<'p>>,
    /// Allow entries for writes (own write, default write).
    write: Vec<PathRule<'p>>,
    deny: Vec<PathRule<'p>>,
    env_allow: Vec<(&'p Entry<String>, EnvPattern)>,
    env_deny: Vec<(&'p Entry<String>, EnvPattern)>,
    /// The stdio list in force and the key that set it.
    stdio: Option<(&'p str, &'p [Entry<Stream>])>,
    /// `net.allow` entries (own first, then `[defaults]`).
    net_allow: Vec<&'p Entry<crate::net::Endpoint>>,
    /// `net.deny` entries of both tables.
    net_deny: Vec<&'p Entry<crate::net::HostPattern>>,
    /// `net.tls_roots` of both tables, resolved.
    tls_roots: Vec<PathBuf>,
    /// The plugin table, when one applies.
    own: Option<&'p Rules>,
}

impl<'p> Effective<'p> {
    fn new(defaults: &'p Rules, own: Option<&'p Rules>, host: &Host) -> Self {
        let resolve = |entries: &'p [Entry<String>]| -> Vec<PathRule<'p>> {
            entries.iter().map(|e| PathRule::resolve(e, host)).collect()
        };
        let mut read = Vec::new();
        let mut write = Vec::new();
        let mut deny = resolve(&defaults.fs_deny);
        let mut env_allow = Vec::new();
        let mut env_deny = compile(&defaults.env_deny);
        if let Some(own) = own {
            read.extend(resolve(&own.fs_read));
            read.extend(resolve(&own.fs_write));
            write.extend(resolve(&own.fs_write));
            deny.extend(resolve(&own.fs_deny));
            env_allow.extend(compile(&own.env_allow));
            env_deny.extend(compile(&own.env_deny));
        }
        read.extend(resolve(&defaults.fs_read));
        read.extend(resolve(&defaults.fs_write));
        write.extend(resolve(&defaults.fs_write));
        env_allow.extend(compile(&defaults.env_allow));
        let stdio = match own.and_then(|o| o.stdio.as_deref()) {
            Some(list) => own.map(|o| (o.table.as_str(), list)),
            None => defaults
                .stdio
                .as_deref()
                .map(|list| (defaults.table.as_str(), list)),
        };
        let tables: Vec<&'p Rules> = own.into_iter().chain([defaults]).collect();
        let net_allow = tables.iter().flat_map(|t| &t.net_allow).collect();
        let net_deny = tables.iter().flat_map(|t| &t.net_deny).collect();
        let tls_roots = tables
            .iter()
            .flat_map(|t| &t.net_tls_roots)
            .filter_map(|e| paths::expand(&e.value, &host.workdir, host.home.as_deref()).ok())
            .map(|p| paths::normalize(&p))
            .collect();
        Effective {
            read,
            write,
            deny,
            env_allow,
            env_deny,
            stdio,
            net_allow,
            net_deny,
            tls_roots,
            own,
        }
    }
}

/// Compiles policy env patterns; the parser has already rejected any that would fail.
fn compile(entries: &[Entry<String>]) -> Vec<(&Entry<String>, EnvPattern)> {
    entries
        .iter()
        .filter_map(|e| Some((e, EnvPattern::new(&e.value).ok()?)))
        .collect()
}

/// Decides every item `capabilities` declares for plugin `name` (whose file has SHA-256
/// `sha256`) under `policy`, on `host`.
pub fn decide(
    capabilities: &Capabilities,
    name: &str,
    sha256: [u8; 32],
    policy: &Policy,
    host: &Host,
) -> Decisions {
    let found = hex::encode(sha256);
    let toml_name = crate::policy::toml_key(name);
    let mut refusal = None;
    let table = match policy.plugin(name) {
        Some(t) => match t.sha256.as_slice() {
            pins if !pins.is_empty() && !pins.iter().any(|p| p.value == sha256) => {
                let expected: Vec<String> = pins.iter().map(|p| hex::encode(p.value)).collect();
                refusal = Some(Refusal::PinMismatch {
                    rule: match pins {
                        [one] => one.key.clone(),
                        _ => format!("plugins.{toml_name}.sha256"),
                    },
                    expected: expected.join(" or "),
                    found: found.clone(),
                });
                None
            }
            [] if policy.require_digest() => {
                refusal = Some(Refusal::DigestRequired {
                    rule: "defaults.require_digest".into(),
                    what: format!("`[plugins.{toml_name}]` has no `sha256`"),
                    name: toml_name.clone(),
                    found: found.clone(),
                });
                None
            }
            _ => Some(t),
        },
        None if policy.require_digest() => {
            refusal = Some(Refusal::DigestRequired {
                rule: "defaults.require_digest".into(),
                what: format!("the policy has no `[plugins.{toml_name}]` table"),
                name: toml_name.clone(),
                found: found.clone(),
            });
            None
        }
        None => None,
    };
    let own = table.map(|t| &t.rules);
    let limits = {
        let base = policy.default_limits();
        own.map_or(base.clone(), |o| o.limits.apply(&base))
    };
    let rules = Effective::new(policy.defaults(), own, host);
    let mode = policy.mode();
    let mut items = Vec::new();
    let protected = protected_paths(host, policy.file());
    for p in &capabilities.fs_read {
        items.push(decide_dir(p, false, &rules, host, &protected, mode));
    }
    for p in &capabilities.fs_write {
        items.push(decide_dir(p, true, &rules, host, &protected, mode));
    }
    resolve_guest_conflicts(&mut items);
    for pattern in &capabilities.env_read {
        items.push(decide_env(pattern, &rules, host, mode));
    }
    let s = capabilities.stdio;
    for (declared, stream) in [
        (s.stdin, Stream::Stdin),
        (s.stdout, Stream::Stdout),
        (s.stderr, Stream::Stderr),
    ] {
        if declared {
            items.push(decide_stream(stream, &rules, mode));
        }
    }
    let mut net = crate::net::NetAccess {
        allow: rules.net_allow.iter().map(|e| (*e).clone()).collect(),
        deny: rules.net_deny.iter().map(|e| (*e).clone()).collect(),
        tls: crate::net::client::Tls::new(rules.tls_roots.clone()),
        log_query: policy.log_args(),
        max_requests_rule: if own.is_some_and(|o| o.limits.max_requests.is_some()) {
            format!("{}.net.max_requests", own.map_or("", |o| o.table.as_str()))
        } else if policy.defaults().limits.max_requests.is_some() {
            "defaults.net.max_requests".into()
        } else {
            "builtin.max_requests".into()
        },
        ..Default::default()
    };
    for n in &capabilities.net {
        let (decision, endpoint) = net::decide_net(n, &rules, mode);
        if let Some(endpoint) = endpoint
            && decision.grant.is_none()
        {
            net.denied.push((endpoint, decision.rule.clone()));
        }
        items.push(decision);
    }
    // A plugin table's `on_denied` replaces the default (rule 2).
    let (on_denied, on_denied_rule) = match table.and_then(|t| t.on_denied.as_ref()) {
        Some(own) => (own.value, own.key.clone()),
        None => (policy.on_denied(), "defaults.on_denied".to_owned()),
    };
    if refusal.is_none() && mode == Mode::Enforce && on_denied == OnDenied::Refuse {
        let denied: Vec<&Decision> = items
            .iter()
            .filter(|d| d.outcome == Outcome::Denied)
            .collect();
        if let Some(first) = denied.first() {
            refusal = Some(Refusal::Denied {
                rule: on_denied_rule,
                count: denied.len(),
                first: first.request.clone(),
                first_reason: first.reason.clone(),
            });
        }
    }
    Decisions {
        plugin: name.to_owned(),
        sha256,
        table: table.map(|t| t.rules.table.clone()),
        mode,
        on_denied,
        limits,
        items,
        refusal,
        net,
    }
}

/// The outcome for an item the policy denies: denied, or granted anyway in audit mode.
fn policy_denial(mode: Mode) -> Outcome {
    match mode {
        Mode::Enforce => Outcome::Denied,
        Mode::Audit => Outcome::WouldDeny,
    }
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

/// The `rule` of a denial that protects warden's own state (audit log, module cache,
/// the policy file).
pub const PROTECTED_RULE: &str = "builtin.protected";

/// The `rule` of a denial that protects the kernel's interfaces (`/proc`, `/sys`,
/// `/dev`): through them a plugin would read the host's environment
/// (`/proc/self/environ`), its memory (`/proc/self/mem`), other processes and devices.
pub const SYSTEM_RULE: &str = "builtin.system";

/// The kernel's interfaces that no plugin may reach ([`SYSTEM_RULE`]).
pub const SYSTEM_PATHS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// A path no policy can grant, and which built-in rule protects it.
#[derive(Clone)]
struct Protected {
    rule: &'static str,
    what: &'static str,
    path: PathBuf,
}

/// What no policy can grant: warden's own state (the compiled-module cache, the default
/// audit log directory and `$WARDEN_AUDIT_LOG`, as this host's environment places them,
/// the run's own audit log ([`Host::audit_log`]) and the policy file the decisions are
/// made under ([`Policy::file`])) and the kernel's interfaces ([`SYSTEM_PATHS`]).
fn protected_paths(host: &Host, policy_file: Option<&Path>) -> Vec<Protected> {
    let var = |k: &str| {
        host.env
            .iter()
            .find(|(name, v)| name == k && !v.is_empty())
            .map(|(_, v)| PathBuf::from(v))
            .filter(|p| p.is_absolute())
    };
    let home = host.home.clone();
    let mut out: Vec<Protected> = SYSTEM_PATHS
        .iter()
        .map(|system| Protected {
            rule: SYSTEM_RULE,
            what: "the kernel's interface",
            path: PathBuf::from(system),
        })
        .collect();
    let mut state = |what, path| {
        out.push(Protected {
            rule: PROTECTED_RULE,
            what,
            path,
        })
    };
    if let Some(cache) = var("XDG_CACHE_HOME").or_else(|| home.as_ref().map(|h| h.join(".cache"))) {
        state("warden's own compiled-module cache", cache.join("warden"));
    }
    if let Some(dir) =
        var("XDG_STATE_HOME").or_else(|| home.as_ref().map(|h| h.join(".local/state")))
    {
        state(
            "warden's own state directory (audit log)",
            dir.join("warden"),
        );
    }
    if let Some(log) = var("WARDEN_AUDIT_LOG") {
        state("warden's own audit log", log);
    }
    if let Some(log) = &host.audit_log {
        state("warden's own audit log", log.clone());
    }
    if let Some(policy) = policy_file {
        // A plugin that could write the policy could grant itself anything next time.
        state("the policy file", policy.to_path_buf());
    }
    // Each as given and as resolved (the longest existing ancestor canonicalized: a
    // rotated log's base path, a cache not yet created, may not exist, and a symlink
    // above them must not hide them). More forms only deny more.
    let mut forms = Vec::with_capacity(out.len() * 2);
    for p in out {
        if let Ok(resolved) = paths::effective(&p.path)
            && resolved != p.path
        {
            forms.push(Protected {
                path: resolved,
                ..p.clone()
            });
        }
        forms.push(p);
    }
    forms
}

fn decide_dir(
    declared: &PathPattern,
    write: bool,
    rules: &Effective<'_>,
    host: &Host,
    protected: &[Protected],
    mode: Mode,
) -> Decision {
    let raw = declared.pattern.as_str();
    let capability = if write {
        Capability::FsWrite
    } else {
        Capability::FsRead
    };
    let mut d = Decision::undecided(capability, raw.to_owned(), Outcome::Denied);
    d.recursive = Some(declared.recursive);
    let lexical = match paths::expand(raw, &host.workdir, host.home.as_deref()) {
        Ok(p) => paths::normalize(&p),
        Err(problem) => {
            d.reason = problem.to_string();
            return d;
        }
    };
    let guest = paths::guest_path(raw, &lexical);
    d.guest_path = Some(guest.clone());
    // The directory is opened once, without following any symlink, and every check
    // below runs on where that descriptor really is (`open` module docs).
    let opened = directory(raw, &lexical);
    let effective = match &opened {
        Ok(o) => Some(o.real_path.clone()),
        Err(_) => paths::effective(&lexical).ok(),
    };
    d.host_path = Some(show(effective.as_deref().unwrap_or(&lexical)));
    // Deny entries compare with the lexical form too: more denial is safe.
    let forms: Vec<&Path> = std::iter::once(lexical.as_path())
        .chain(effective.as_deref())
        .collect();
    let denial = deny_verdict(raw, &forms, rules);
    match (opened, denial) {
        // What does not exist, or is not a directory, cannot be granted in any mode.
        (Err(problem), Some(denial)) => {
            d.rule = denial.rule;
            d.reason = format!("{}; also {problem}", denial.reason);
        }
        (Err(problem), None) => d.reason = problem,
        (Ok(opened), denial) => {
            let real = &opened.real_path;
            // A deny entry denies in every mode; only a missing allow is audit mode's
            // to grant anyway.
            let by_deny_list = denial.is_some();
            let verdict = denial.unwrap_or_else(|| allow_verdict(raw, real, write, rules));
            d.outcome = if verdict.allowed {
                Outcome::Granted
            } else if by_deny_list {
                Outcome::Denied
            } else {
                policy_denial(mode)
            };
            d.rule = verdict.rule;
            d.reason = verdict.reason;
            // Built-in protections, last: the policy's own verdict names its rule when
            // it denies; what it would grant (in audit mode too) is denied here.
            if d.outcome != Outcome::Denied
                && let Some(protected) = protected
                    .iter()
                    .find(|p| forms.iter().any(|f| paths::overlaps(f, &p.path)))
            {
                d.outcome = Outcome::Denied;
                d.rule = protected.rule.into();
                d.reason = format!(
                    "`{raw}` resolves to `{}`, which overlaps {} `{}`; no policy can grant it",
                    show(real),
                    protected.what,
                    show(&protected.path)
                );
                return d;
            }
            if d.outcome == Outcome::Granted && !declared.recursive {
                d.reason.push_str(
                    "; declared non-recursive, but a preopened directory exposes its whole subtree",
                );
            }
            if d.outcome != Outcome::Denied {
                d.grant = Some(Grant {
                    kind: GrantKind::Dir(DirGrant {
                        host_path: opened.real_path,
                        dir: std::sync::Arc::new(opened.dir),
                        guest_path: guest,
                        writable: write,
                        dev: opened.dev,
                        ino: opened.ino,
                    }),
                });
            }
        }
    }
    d
}

/// What the policy says about one declared directory.
struct Verdict {
    allowed: bool,
    rule: String,
    reason: String,
}

/// The declared directory itself, canonicalized and then opened without following any
/// symlink ([`open::open_decided`]), or why it cannot be granted.
fn directory(raw: &str, lexical: &Path) -> Result<open::Opened, String> {
    let canonical = std::fs::canonicalize(lexical).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "`{raw}` resolves to `{}`, which does not exist; create the directory or fix the plugin's declaration",
            show(lexical)
        ),
        _ => format!("`{raw}` cannot be resolved: {e}"),
    })?;
    // Only for a clear message: the decision itself rests on the descriptor below.
    if std::fs::metadata(&canonical).is_ok_and(|m| !m.is_dir()) {
        return Err(format!(
            "`{raw}` resolves to `{}`, which is not a directory; only directories can be granted",
            show(&canonical)
        ));
    }
    open::open_decided(&canonical).map_err(|e| format!("`{raw}`: {e}"))
}

/// The first deny entry that any form of the declared path is equal to, inside, or
/// contains; or, failing that, a deny entry that cannot be resolved (fail closed).
fn deny_verdict(raw: &str, forms: &[&Path], rules: &Effective<'_>) -> Option<Verdict> {
    let hit = rules.deny.iter().find_map(|r| {
        forms.iter().find_map(|f| {
            r.forms()
                .find(|x| paths::overlaps(f, x))
                .map(|x| (r, *f, x))
        })
    });
    if let Some((rule, declared, denied)) = hit {
        let relation = if declared == denied {
            "is"
        } else if declared.starts_with(denied) {
            "is inside"
        } else {
            "contains"
        };
        return Some(Verdict {
            allowed: false,
            rule: rule.entry.key.clone(),
            reason: format!(
                "`{raw}` resolves to `{}`, which {relation} `{}`, denied by `{}` (`{}`){}",
                show(declared),
                show(denied),
                rule.entry.key,
                rule.entry.value,
                if relation == "contains" {
                    "; a preopened directory cannot hide part of its subtree"
                } else {
                    ""
                }
            ),
        });
    }
    rules
        .deny
        .iter()
        .find(|r| r.problem.is_some())
        .map(|r| Verdict {
            allowed: false,
            rule: r.entry.key.clone(),
            reason: format!(
                "deny entry `{}` cannot be checked: {}",
                r.entry.key,
                r.problem
                    .as_ref()
                    .map_or("it does not resolve".to_owned(), ToString::to_string)
            ),
        })
}

/// The first allow entry of the right kind that `canonical` is equal to or inside.
fn allow_verdict(raw: &str, canonical: &Path, write: bool, rules: &Effective<'_>) -> Verdict {
    let allows = if write { &rules.write } else { &rules.read };
    if let Some(rule) = covering(allows, canonical) {
        let inside = if rule.effective.as_deref() == Some(canonical) {
            "the directory"
        } else {
            "inside the directory"
        };
        return Verdict {
            allowed: true,
            rule: rule.entry.key.clone(),
            reason: format!(
                "`{raw}` resolves to `{}`, {inside} that `{}` (`{}`) allows; {}",
                show(canonical),
                rule.entry.key,
                rule.entry.value,
                if write { "read-write" } else { "read-only" }
            ),
        };
    }
    let table = rules
        .own
        .map_or("plugins.NAME".to_owned(), |o| o.table.clone());
    let reason = match covering(&rules.read, canonical).filter(|_| write) {
        Some(r) => format!(
            "`{raw}` resolves to `{}`, which `{}` lets the plugin read but no `fs.write` entry lets it write; add it to `{table}.fs.write` to allow writing",
            show(canonical),
            r.entry.key
        ),
        None => format!(
            "`{raw}` resolves to `{}`, which is inside no `fs.{}` entry; add it to `{table}.fs.{}` to grant it",
            show(canonical),
            if write { "write" } else { "read` or `fs.write" },
            if write { "write" } else { "read" }
        ),
    };
    Verdict {
        allowed: false,
        rule: NO_RULE.into(),
        reason,
    }
}

/// The first allow entry whose directory is `canonical` or contains it.
fn covering<'r, 'p>(allows: &'r [PathRule<'p>], canonical: &Path) -> Option<&'r PathRule<'p>> {
    allows.iter().find(|r| {
        r.effective
            .as_deref()
            .is_some_and(|a| canonical.starts_with(a))
    })
}

/// Two granted directories may not share a guest path unless they are the same host
/// directory (then the sandbox opens it once); the later one is denied.
fn resolve_guest_conflicts(items: &mut [Decision]) {
    let mut seen: Vec<(String, PathBuf, String)> = Vec::new();
    for d in items.iter_mut() {
        let Some(GrantKind::Dir(g)) = d.grant.as_ref().map(|g| &g.kind) else {
            continue;
        };
        let clash = seen
            .iter()
            .find(|(guest, host, _)| *guest == g.guest_path && *host != g.host_path)
            .map(|(guest, host, request)| (guest.clone(), host.clone(), request.clone()));
        match clash {
            Some((guest, host, request)) => {
                d.grant = None;
                d.outcome = Outcome::Denied;
                d.rule = NO_RULE.into();
                d.reason = format!(
                    "guest path `{guest}` is already granted for `{request}` (`{}`); two directories cannot appear at one guest path",
                    show(&host)
                );
            }
            None => seen.push((g.guest_path.clone(), g.host_path.clone(), d.request.clone())),
        }
    }
}

fn decide_env(raw: &str, rules: &Effective<'_>, host: &Host, mode: Mode) -> Decision {
    let mut d = Decision::undecided(Capability::Env, raw.to_owned(), Outcome::Denied);
    d.names = Some(Vec::new());
    let declared = match EnvPattern::new(raw) {
        Ok(p) => p,
        Err(problem) => {
            d.reason = format!("`{raw}` {problem}");
            return d;
        }
    };
    let mut matched: Vec<&(String, String)> = host
        .env
        .iter()
        .filter(|(k, _)| declared.matches(k))
        .collect();
    matched.sort();
    matched.dedup_by(|a, b| a.0 == b.0);
    // Rule 5: decided per variable. A name a deny pattern matches is withheld (and
    // said so, with the rule); every other matched name is passed.
    type Vars<'h> = Vec<&'h (String, String)>;
    let (passed, withheld): (Vars<'_>, Vars<'_>) = matched
        .into_iter()
        .partition(|(k, _)| !rules.env_deny.iter().any(|(_, x)| x.matches(k)));
    let names: Vec<String> = passed.iter().map(|(k, _)| k.clone()).collect();
    d.names = Some(names.clone());
    d.withheld = withheld
        .iter()
        .filter_map(|(k, _)| {
            let (entry, _) = rules.env_deny.iter().find(|(_, x)| x.matches(k))?;
            Some(Withheld {
                name: k.clone(),
                rule: entry.key.clone(),
            })
        })
        .collect();
    let summary = {
        let mut text = if names.is_empty() {
            "passes no variable (none it matches is set on the host)".to_owned()
        } else {
            format!(
                "passes {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        if !d.withheld.is_empty() {
            if names.is_empty() {
                text = "passes no variable".to_owned();
            }
            let list: Vec<String> = d
                .withheld
                .iter()
                .map(|w| format!("`{}` (`{}`)", w.name, w.rule))
                .collect();
            text.push_str(&format!("; withholds {}", list.join(", ")));
        }
        text
    };

    if let Some((entry, _)) = rules.env_deny.iter().find(|(_, x)| x.covers(&declared)) {
        // Denied in every mode: deny lists stay in force in audit mode too.
        d.rule = entry.key.clone();
        d.reason = format!(
            "every name `{raw}` can match is denied by `{}` (`{}`)",
            entry.key, entry.value
        );
        d.names = Some(Vec::new());
        d.withheld.clear();
        return d;
    }
    if let Some((entry, _)) = rules.env_allow.iter().find(|(_, p)| p.covers(&declared)) {
        d.rule = entry.key.clone();
        let what = if raw.contains('*') {
            format!("every name `{raw}` can match")
        } else {
            format!("`{raw}`")
        };
        d.reason = format!(
            "`{}` (`{}`) allows {what}; {summary}",
            entry.key, entry.value
        );
        d.outcome = Outcome::Granted;
    } else {
        let table = rules
            .own
            .map_or("plugins.NAME".to_owned(), |o| o.table.clone());
        let partly = rules
            .env_allow
            .iter()
            .find(|(_, p)| declared.covers(p))
            .map(|(e, _)| format!(" (`{}` allows only part of it)", e.key))
            .unwrap_or_default();
        d.reason = format!(
            "no `env.allow` pattern covers every name `{raw}` can match{partly}; add `{raw}` to `{table}.env.allow` to grant it"
        );
        d.outcome = policy_denial(mode);
        if d.outcome == Outcome::WouldDeny {
            d.reason = format!("{}; audit mode {summary}", d.reason);
        }
    }
    if d.outcome != Outcome::Denied {
        d.grant = Some(Grant {
            kind: GrantKind::Env(passed.into_iter().cloned().collect()),
        });
    } else {
        d.names = Some(Vec::new());
        d.withheld.clear();
    }
    d
}

fn decide_stream(stream: Stream, rules: &Effective<'_>, mode: Mode) -> Decision {
    let mut d = Decision::undecided(
        Capability::Stdio,
        stream.as_str().to_owned(),
        policy_denial(mode),
    );
    match rules.stdio {
        Some((table, list)) => match list.iter().find(|e| e.value == stream) {
            Some(entry) => {
                d.outcome = Outcome::Granted;
                d.rule = entry.key.clone();
                d.reason = format!("`{}` lists `{}`", entry.key, stream.as_str());
            }
            None => {
                d.reason = format!(
                    "`{table}.stdio` does not list `{}`; the stream is closed (reads see EOF, writes go nowhere)",
                    stream.as_str()
                );
            }
        },
        None => {
            d.reason = format!(
                "no `stdio` list grants `{}`; the stream is closed (reads see EOF, writes go nowhere)",
                stream.as_str()
            );
        }
    }
    if d.outcome != Outcome::Denied {
        d.grant = Some(Grant {
            kind: GrantKind::Stream(stream),
        });
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{NetPattern, NetProtocol, StdioCapability};

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
    }

    /// root/{data/sub, out, vault, file}, as workdir and home.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for d in ["data/sub", "out", "vault"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("file"), "x").unwrap();
        Fixture { _dir: dir, root }
    }

    impl Fixture {
        fn host(&self, env: &[(&str, &str)]) -> Host {
            Host {
                workdir: self.root.clone(),
                home: Some(self.root.clone()),
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                audit_log: None,
            }
        }
    }

    fn policy(text: &str) -> Policy {
        Policy::parse("t.toml", text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn dirs(read: &[&str], write: &[&str]) -> Capabilities {
        let p = |s: &&str| PathPattern {
            pattern: s.to_string(),
            recursive: true,
        };
        Capabilities {
            fs_read: read.iter().map(p).collect(),
            fs_write: write.iter().map(p).collect(),
            ..Capabilities::default()
        }
    }

    fn one(caps: &Capabilities, text: &str, host: &Host) -> Decision {
        let d = decide(caps, "p", [0; 32], &policy(text), host);
        assert_eq!(d.items().len(), 1, "{d:#?}");
        d.items()[0].clone()
    }

    #[test]
    fn warden_state_is_denied_in_every_mode() {
        let dir = tempfile::tempdir().unwrap();
        let home = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(home.join(".cache/warden")).unwrap();
        std::fs::create_dir_all(home.join("logs")).unwrap();
        for mode in ["enforce", "audit"] {
            let text = format!("version = 1\nmode = \"{mode}\"\n[defaults]\nfs.write = [\"~\"]\n");
            let policy = Policy::parse("p.toml", &text).unwrap();
            let host = Host {
                workdir: home.clone(),
                home: Some(home.clone()),
                env: vec![(
                    "WARDEN_AUDIT_LOG".into(),
                    home.join("logs/audit.jsonl").display().to_string(),
                )],
                audit_log: None,
            };
            for declared in ["~", "~/.cache", "~/logs"] {
                let caps = Capabilities {
                    fs_write: vec![PathPattern {
                        pattern: declared.into(),
                        recursive: true,
                    }],
                    ..Capabilities::default()
                };
                let decisions = decide(&caps, "p", [0; 32], &policy, &host);
                let d = &decisions.items()[0];
                assert_eq!(d.outcome(), Outcome::Denied, "{mode} {declared}");
                assert_eq!(d.rule(), PROTECTED_RULE, "{mode} {declared}");
            }
        }
    }

    #[test]
    fn the_runs_own_audit_log_is_protected_wherever_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for sub in ["logs", "other"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let text = "version = 1\n[defaults]\nfs.write = [\".\"]\n";
        std::os::unix::fs::symlink(root.join("logs"), root.join("link")).unwrap();
        let host = Host {
            workdir: root.clone(),
            home: None,
            env: Vec::new(),
            audit_log: None,
        };
        // Named directly, and through a symlinked directory before the file exists
        // (a rotating log's base path never does).
        for log in ["logs/audit.jsonl", "link/audit.jsonl"] {
            let host = host.clone().with_audit_log(&root.join(log));
            for (declared, outcome) in [
                ("./logs", Outcome::Denied),
                ("./link", Outcome::Denied),
                (".", Outcome::Denied),
                ("./other", Outcome::Granted),
            ] {
                let d = one(&dirs(&[], &[declared]), text, &host);
                assert_eq!(d.outcome(), outcome, "{log} {declared}: {d:#?}");
                if outcome == Outcome::Denied {
                    assert_eq!(d.rule(), PROTECTED_RULE, "{log} {declared}");
                    assert!(d.reason().contains("audit log"), "{}", d.reason());
                }
            }
        }
    }

    #[test]
    fn deny_beats_allow_whether_equal_inside_or_containing() {
        let f = fixture();
        let host = f.host(&[]);
        for (deny, declared, relation) in [
            ("./data", "./data", "which is `"),
            ("./data", "./data/sub", "which is inside"),
            ("./data/sub", "./data", "which contains"),
        ] {
            let text = format!(
                "version = 1\n[defaults]\nfs.read = [\".\"]\n[plugins.p]\nfs.deny = [{deny:?}]\n"
            );
            let d = one(&dirs(&[declared], &[]), &text, &host);
            assert_eq!(d.outcome(), Outcome::Denied, "{d:#?}");
            assert_eq!(d.rule(), "plugins.p.fs.deny[0]");
            assert!(d.reason().contains(relation), "{}", d.reason());
            assert!(d.grant().is_none());
        }
    }

    #[test]
    fn write_covers_read_but_read_does_not_cover_write() {
        let f = fixture();
        let host = f.host(&[]);
        let text = "version = 1\n[plugins.p]\nfs.write = [\"./out\"]\nfs.read = [\"./data\"]\n";
        let d = decide(
            &dirs(&["./out"], &["./data", "./out"]),
            "p",
            [0; 32],
            &policy(text),
            &host,
        );
        let items = d.items();
        assert_eq!(items[0].outcome(), Outcome::Granted);
        assert_eq!(items[0].rule(), "plugins.p.fs.write[0]");
        assert_eq!(items[1].outcome(), Outcome::Denied);
        assert_eq!(items[1].rule(), NO_RULE);
        assert!(
            items[1]
                .reason()
                .contains("lets the plugin read but no `fs.write` entry")
        );
        assert_eq!(items[2].outcome(), Outcome::Granted);
        assert_eq!(
            items[2].host_path(),
            Some(f.root.join("out").to_str().unwrap())
        );
        assert_eq!(items[2].guest_path(), Some("/out"));
    }

    #[test]
    fn only_existing_directories_are_granted() {
        let f = fixture();
        let host = f.host(&[]);
        let text = "version = 1\n[plugins.p]\nfs.read = [\".\"]\n";
        let d = one(&dirs(&["./file"], &[]), text, &host);
        assert_eq!(d.outcome(), Outcome::Denied);
        assert!(d.reason().contains("is not a directory"));
        let d = one(&dirs(&["./nope"], &[]), text, &host);
        assert!(d.reason().contains("does not exist"));
        // Not even audit mode grants what does not exist.
        let audit = "version = 1\nmode = \"audit\"\n";
        let d = one(&dirs(&["./nope"], &[]), audit, &host);
        assert_eq!(d.outcome(), Outcome::Denied);
        assert!(!d.is_in_effect());
    }

    #[test]
    fn audit_mode_grants_what_it_would_deny_but_never_what_a_deny_list_denies() {
        let f = fixture();
        let host = f.host(&[("AWS_SECRET", "s")]);
        let text = "version = 1\nmode = \"audit\"\n[defaults]\nfs.deny = [\"./vault\"]\nenv.deny = [\"AWS_*\"]\n";
        let mut caps = dirs(&["./vault", "./data"], &[]);
        caps.env_read = vec!["AWS_*".into()];
        caps.stdio.stdin = true;
        caps.net.push(NetPattern {
            host: "example.com".into(),
            port: Some(443),
            protocol: NetProtocol::Https,
        });
        let d = decide(&caps, "p", [0; 32], &policy(text), &host);
        let outcomes: Vec<(Outcome, &str, bool)> = d
            .items()
            .iter()
            .map(|i| (i.outcome(), i.rule(), i.is_in_effect()))
            .collect();
        assert_eq!(
            outcomes,
            [
                (Outcome::Denied, "defaults.fs.deny[0]", false),
                (Outcome::WouldDeny, NO_RULE, true),
                (Outcome::Denied, "defaults.env.deny[0]", false),
                (Outcome::WouldDeny, NO_RULE, true),
                (Outcome::WouldDeny, NO_RULE, true),
            ]
        );
        assert_eq!(d.items()[4].request(), "https://example.com:443");
        assert!(d.refusal().is_none());
    }

    #[test]
    fn identity_pins_and_require_digest_refuse() {
        let f = fixture();
        let host = f.host(&[]);
        let pin = "11".repeat(32);
        let text =
            format!("version = 1\n[plugins.p]\nsha256 = \"{pin}\"\nfs.read = [\"./data\"]\n");
        let caps = dirs(&["./data"], &[]);
        let d = decide(&caps, "p", [0x11; 32], &policy(&text), &host);
        assert!(d.refusal().is_none());
        assert_eq!(d.table(), Some("plugins.p"));
        assert_eq!(d.items()[0].outcome(), Outcome::Granted);

        let d = decide(&caps, "p", [0x22; 32], &policy(&text), &host);
        let r = d.refusal().unwrap();
        assert_eq!(r.rule(), "plugins.p.sha256");
        assert!(r.to_string().contains(&"22".repeat(32)));
        // The mismatched table grants nothing.
        assert_eq!(d.table(), None);
        assert_eq!(d.items()[0].outcome(), Outcome::Denied);

        let strict =
            "version = 1\n[defaults]\nrequire_digest = true\n[plugins.p]\nfs.read = [\"./data\"]\n";
        let d = decide(&caps, "p", [0; 32], &policy(strict), &host);
        assert_eq!(d.refusal().unwrap().rule(), "defaults.require_digest");
        let d = decide(&caps, "other", [0; 32], &policy(strict), &host);
        assert!(
            d.refusal()
                .unwrap()
                .to_string()
                .contains("no `[plugins.other]` table")
        );
    }

    #[test]
    fn on_denied_refuse_refuses_any_denial_in_enforce_mode_only() {
        let f = fixture();
        let host = f.host(&[]);
        let caps = dirs(&["./vault"], &[]);
        let text = "version = 1\n[defaults]\non_denied = \"refuse\"\n";
        let d = decide(&caps, "p", [0; 32], &policy(text), &host);
        assert_eq!(d.refusal().unwrap().rule(), "defaults.on_denied");
        let audit = format!("mode = \"audit\"\n{text}");
        let d = decide(&caps, "p", [0; 32], &policy(&audit), &host);
        assert!(d.refusal().is_none());
        let d = decide(&Capabilities::default(), "p", [0; 32], &policy(text), &host);
        assert!(d.refusal().is_none());
    }

    #[test]
    fn a_plugin_stdio_list_replaces_the_default() {
        let f = fixture();
        let host = f.host(&[]);
        let caps = Capabilities {
            stdio: StdioCapability {
                stdin: true,
                stdout: true,
                stderr: true,
            },
            ..Capabilities::default()
        };
        let text = "version = 1\n[defaults]\nstdio = [\"stdout\", \"stderr\"]\n[plugins.p]\nstdio = [\"stdin\"]\n";
        let d = decide(&caps, "p", [0; 32], &policy(text), &host);
        let got: Vec<(&str, Outcome, &str)> = d
            .items()
            .iter()
            .map(|i| (i.request(), i.outcome(), i.rule()))
            .collect();
        assert_eq!(
            got,
            [
                ("stdin", Outcome::Granted, "plugins.p.stdio[0]"),
                ("stdout", Outcome::Denied, NO_RULE),
                ("stderr", Outcome::Denied, NO_RULE),
            ]
        );
        assert!(
            d.items()[1]
                .reason()
                .contains("`plugins.p.stdio` does not list `stdout`")
        );
        let d = decide(&caps, "q", [0; 32], &policy(text), &host);
        assert_eq!(d.items()[1].rule(), "defaults.stdio[0]");
    }

    #[test]
    fn env_patterns_are_decided_per_variable() {
        let f = fixture();
        let host = f.host(&[("APP_A", "1"), ("APP_B", "2"), ("HOME", "/h")]);
        let text =
            "version = 1\n[defaults]\nenv.allow = [\"APP_*\", \"HOME\"]\nenv.deny = [\"APP_B\"]\n";
        let env = |patterns: &[&str]| Capabilities {
            env_read: patterns.iter().map(|s| s.to_string()).collect(),
            ..Capabilities::default()
        };
        let d = one(&env(&["APP_A"]), text, &host);
        assert_eq!(
            (d.outcome(), d.rule()),
            (Outcome::Granted, "defaults.env.allow[0]")
        );
        assert_eq!(d.names(), Some(&["APP_A".to_string()][..]));
        // Every name `APP_B` can match is denied.
        let d = one(&env(&["APP_B"]), text, &host);
        assert_eq!(
            (d.outcome(), d.rule()),
            (Outcome::Denied, "defaults.env.deny[0]")
        );
        assert!(d.reason().starts_with("every name"));
        // Rule 5: `APP_*` is granted, passes `APP_A` and withholds `APP_B`, naming
        // the deny rule; whether a secret happens to be set changes nothing else.
        let d = one(&env(&["APP_*"]), text, &host);
        assert_eq!(
            (d.outcome(), d.rule()),
            (Outcome::Granted, "defaults.env.allow[0]")
        );
        assert_eq!(d.names(), Some(&["APP_A".to_string()][..]));
        assert_eq!(
            d.withheld(),
            [Withheld {
                name: "APP_B".into(),
                rule: "defaults.env.deny[0]".into()
            }]
        );
        assert!(
            d.reason()
                .contains("withholds `APP_B` (`defaults.env.deny[0]`)"),
            "{}",
            d.reason()
        );
        let Some(GrantKind::Env(vars)) = d.grant().map(Grant::kind) else {
            panic!("no env grant")
        };
        assert_eq!(vars, &[("APP_A".to_string(), "1".to_string())]);
        // `*` is wider than any allow pattern.
        let d = one(&env(&["*"]), text, &f.host(&[("HOME", "/h")]));
        assert_eq!((d.outcome(), d.rule()), (Outcome::Denied, NO_RULE));
        assert!(
            d.reason().contains("allows only part of it"),
            "{}",
            d.reason()
        );
        // Granted when nothing denied is set.
        let host = f.host(&[("APP_A", "1")]);
        let d = one(&env(&["APP_*"]), text, &host);
        assert_eq!(d.outcome(), Outcome::Granted);
    }

    #[test]
    fn a_tilde_deny_without_home_denies_every_directory() {
        let f = fixture();
        let mut host = f.host(&[]);
        host.home = None;
        let text = "version = 1\n[defaults]\nfs.read = [\".\"]\nfs.deny = [\"~/.ssh\"]\n";
        let d = one(&dirs(&["./data"], &[]), text, &host);
        assert_eq!(
            (d.outcome(), d.rule()),
            (Outcome::Denied, "defaults.fs.deny[0]")
        );
        assert!(d.reason().contains("HOME is not set"), "{}", d.reason());
    }

    #[test]
    fn two_directories_cannot_share_a_guest_path() {
        let f = fixture();
        std::fs::create_dir_all(f.root.join("home/data")).unwrap();
        let mut host = f.host(&[]);
        host.home = Some(f.root.join("home"));
        let text = "version = 1\n[defaults]\nfs.read = [\".\"]\n";
        // Same host directory at the same guest path: both granted (opened once).
        let d = decide(
            &dirs(&["./data", "data/"], &[]),
            "p",
            [0; 32],
            &policy(text),
            &host,
        );
        assert!(d.items().iter().all(|i| i.outcome() == Outcome::Granted));
        // `./data` and `~/data` are both `/data` to the plugin: the second is denied.
        let d = decide(
            &dirs(&["./data", "~/data"], &[]),
            "p",
            [0; 32],
            &policy(text),
            &host,
        );
        assert_eq!(d.items()[0].outcome(), Outcome::Granted);
        assert_eq!(d.items()[1].guest_path(), Some("/data"));
        assert_eq!(d.items()[1].outcome(), Outcome::Denied);
        assert!(
            d.items()[1]
                .reason()
                .contains("guest path `/data` is already granted")
        );
    }

    #[test]
    fn per_plugin_limits_replace_the_defaults() {
        let f = fixture();
        let text = "version = 1\n[defaults]\nfuel = 5\nmemory = \"1 MiB\"\n[plugins.p]\nfuel = 7\nstack = \"2 MiB\"\n";
        let d = decide(
            &Capabilities::default(),
            "p",
            [0; 32],
            &policy(text),
            &f.host(&[]),
        );
        assert_eq!(d.limits().fuel, 7);
        assert_eq!(d.limits().memory, 1 << 20);
        assert_eq!(d.limits().stack, 2 << 20);
        assert_eq!(d.limits().timeout, Limits::default().timeout);
    }

    #[test]
    fn decisions_serialize_with_the_audit_record_fields() {
        let f = fixture();
        let host = f.host(&[("HOME", "/h")]);
        let text = "version = 1\n[defaults]\nfs.read = [\"./data\"]\nenv.allow = [\"HOME\"]\n";
        let mut caps = dirs(&["./data"], &[]);
        caps.fs_read[0].recursive = false;
        caps.env_read = vec!["HOME".into()];
        let d = decide(&caps, "p", [0; 32], &policy(text), &host);
        let fs = serde_json::to_value(&d.items()[0]).unwrap();
        let keys: Vec<&str> = fs.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "capability",
                "guest_path",
                "host_path",
                "outcome",
                "reason",
                "recursive",
                "request",
                "rule"
            ]
        );
        assert_eq!(fs["capability"], "fs_read");
        assert_eq!(fs["recursive"], false);
        assert!(
            fs["reason"]
                .as_str()
                .unwrap()
                .contains("declared non-recursive")
        );
        let env = serde_json::to_value(&d.items()[1]).unwrap();
        assert_eq!(env["names"], serde_json::json!(["HOME"]));
        assert!(!env.to_string().contains("/h\""), "a value leaked: {env}");
        assert!(
            !format!("{d:?}").contains("\"/h\""),
            "a value leaked into Debug"
        );
    }
}
