//! The filesystem part of the intersection (`POLICY.md` rules 3, 4 and 8): one
//! declared directory against the `fs.read`, `fs.write` and `fs.deny` entries, and the
//! paths no policy can grant (warden's own state, the kernel's interfaces).
//!
//! A declared path is expanded, canonicalized and opened once, without following any
//! symlink ([`super::open`]); the deny entries, the allow entries and the built-in
//! protections are all checked against where that descriptor really is, and the grant
//! holds the descriptor itself.
//!
//! # Security
//!
//! A declared directory is hostile input. Deny entries beat allow entries and compare
//! with every form of the path (as written, resolved); a directory that contains a
//! denied one is denied, since a preopened directory cannot hide part of its subtree;
//! a deny entry that cannot be resolved denies; warden's own state and `/proc`, `/sys`
//! and `/dev` are denied in every mode; two directories never share a guest path.

use super::decision::{
    Capability, Decision, DirGrant, Grant, GrantKind, NO_RULE, Outcome, policy_denial,
};
use super::open;
use super::rules::{Effective, Host, PathRule};
use crate::abi::PathPattern;
use crate::paths;
use crate::policy::Mode;
use std::path::{Path, PathBuf};

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
pub(super) struct Protected {
    rule: &'static str,
    what: &'static str,
    path: PathBuf,
}

/// What no policy can grant: warden's own state (the compiled-module cache, the default
/// audit log directory and `$WARDEN_AUDIT_LOG`, as this host's environment places them,
/// the run's own audit log ([`Host::audit_log`]) and the policy file the decisions are
/// made under ([`Policy::file`])) and the kernel's interfaces ([`SYSTEM_PATHS`]).
pub(super) fn protected_paths(host: &Host, policy_file: Option<&Path>) -> Vec<Protected> {
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

pub(super) fn decide_dir(
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
            d.named = denial.named;
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
            d.named = verdict.named;
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
                d.named = false;
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
    /// A denial by a deny entry the path is, or is inside.
    named: bool,
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
            named: relation != "contains",
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
            named: false,
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
            named: false,
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
    let table = &rules.table;
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
        named: false,
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
pub(super) fn resolve_guest_conflicts(items: &mut [Decision]) {
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
