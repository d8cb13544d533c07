//! What a decision is made against: the [`Host`] facts (working directory, home,
//! environment, the run's audit log) and the policy's rules in force for one plugin,
//! `[defaults]` with its own table, resolved once for every declared item.
//!
//! Policy paths are expanded here (`~`, relative to the working directory) and
//! canonicalized where they exist; an entry that cannot be resolved keeps why, so that
//! a deny entry that cannot be checked denies (fail closed) instead of being skipped.

use crate::paths;
use crate::policy::env::EnvPattern;
use crate::policy::{Entry, Rules, Stream};
use std::path::{Path, PathBuf};

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

/// A resolved fs entry of the policy.
pub(super) struct PathRule<'p> {
    pub(super) entry: &'p Entry<String>,
    /// Expanded and normalized; `None` when it cannot be resolved (`~` without HOME).
    pub(super) lexical: Option<PathBuf>,
    /// Canonical (or canonical ancestor plus the rest).
    pub(super) effective: Option<PathBuf>,
    pub(super) problem: Option<paths::ExpandError>,
}

impl<'p> PathRule<'p> {
    pub(super) fn resolve(entry: &'p Entry<String>, host: &Host) -> Self {
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
    pub(super) fn forms(&self) -> impl Iterator<Item = &Path> {
        self.lexical
            .iter()
            .chain(&self.effective)
            .map(PathBuf::as_path)
    }
}

/// The effective rules for one plugin: `[defaults]` plus its table.
pub(super) struct Effective<'p> {
    /// Allow entries for reads (own read, own write, default read, default write).
    pub(super) read: Vec<PathRule<'p>>,
    /// Allow entries for writes (own write, default write).
    pub(super) write: Vec<PathRule<'p>>,
    pub(super) deny: Vec<PathRule<'p>>,
    pub(super) env_allow: Vec<(&'p Entry<String>, EnvPattern)>,
    pub(super) env_deny: Vec<(&'p Entry<String>, EnvPattern)>,
    /// The stdio list in force and the key that set it.
    pub(super) stdio: Option<(&'p str, &'p [Entry<Stream>])>,
    /// `net.allow` entries (own first, then `[defaults]`).
    pub(super) net_allow: Vec<&'p Entry<crate::net::Endpoint>>,
    /// `net.deny` entries of both tables.
    pub(super) net_deny: Vec<&'p Entry<crate::net::HostPattern>>,
    /// `net.tls_roots` of both tables, resolved.
    pub(super) tls_roots: Vec<PathBuf>,
    /// The plugin table, when one applies.
    pub(super) own: Option<&'p Rules>,
    /// The key of the plugin's table (`plugins.NAME`, its real name), whether or not
    /// the policy has one: where a denial's hint says to add an entry.
    pub(super) table: String,
}

impl<'p> Effective<'p> {
    pub(super) fn new(
        defaults: &'p Rules,
        own: Option<&'p Rules>,
        table: String,
        host: &Host,
    ) -> Self {
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
            table,
        }
    }
}

/// Compiles policy env patterns; the parser has already rejected any that would fail.
pub(super) fn compile(entries: &[Entry<String>]) -> Vec<(&Entry<String>, EnvPattern)> {
    entries
        .iter()
        .filter_map(|e| Some((e, EnvPattern::new(&e.value).ok()?)))
        .collect()
}
