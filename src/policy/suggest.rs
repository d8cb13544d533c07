//! `warden policy suggest`: the narrowest `[plugins.NAME]` table that would have let
//! every observed audit-mode run do what it did (like `audit2allow` or `aa-logprof`,
//! but from a tamper-evident log).
//!
//! The evidence is what audit mode records ([`crate::runtime::Access`] records, one per
//! path, stream or effect a run really used) next to the decisions of the same load
//! (`grant`/`deny` with `would_deny`):
//!
//! - a directory goes in when a run opened something under it: the declared
//!   directory that covered the use (its preopen, the most specific declared item
//!   that holds it), in `fs.write` when a use wrote, else in `fs.read`; as the host
//!   path it resolved to;
//! - an env pattern goes in when it was declared and passed a variable (reads of the
//!   environment cannot be observed; a pattern that passed nothing is left out);
//! - a stream goes in when the plugin wrote it (or read stdin);
//! - a network endpoint goes in when a request to it passed its address check (its
//!   `effect` record lists `address` in `checked`; in a log from before `checked`
//!   existed, when it was performed): the declared endpoint that covered it, with
//!   the port used when the declaration named none (any port);
//! - `sha256` pins every module digest the runs loaded (a list when several);
//! - the deny lists of the audit policy (`fs.deny`, `env.deny`, `net.deny` of its
//!   `[defaults]` and of the plugin's table) are kept ([`PluginSuggestion::keep_denials`]),
//!   so the table alone withholds at least what the audit runs were denied; a
//!   variable a deny pattern withheld in the runs is listed under that pattern.
//!
//! What was declared but not used is listed in a comment, not granted, and denied by
//! name where a deny entry can say so without denying anything a run used (`intent`):
//! enforce runs then count no denial the administrator has not written down. A
//! request a check refused (a loopback address, which audit mode never reaches unless
//! named) is shown as a commented allow entry with the reason, never granted. Only
//! runs under `mode = "audit"` count; enforce-mode runs carry no evidence of use.
//!
//! # Security
//!
//! A log is text anyone who can write it chose. Every value taken from it is written
//! with [`crate::escape::toml_string`] (control and bidirectional characters as
//! `\uXXXX`), every comment with [`crate::escape::escape_line`]: nothing in a log can
//! add a key or a table, or reach the terminal raw.

mod evidence;
mod intent;
mod render;

pub use evidence::{AuditPolicy, Evidence, PluginSuggestion, RefusedAttempt};
pub use render::render_toml;

use evidence::{declared_net, destination_endpoint};

use crate::audit::read::ReadRecord;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What one load/run left in the log.
#[derive(Debug, Default)]
struct RunFacts {
    plugin: Option<String>,
    sha256: Option<String>,
    mode: Option<String>,
    policy: Option<AuditPolicy>,
    load: Option<String>,
    started: Option<String>,
    decisions: Vec<serde_json::Value>,
    accesses: Vec<serde_json::Value>,
    effects: Vec<serde_json::Value>,
}

/// Collects the records of a log and makes the suggestions.
#[derive(Debug, Default)]
pub struct Suggester {
    runs: HashMap<String, RunFacts>,
    order: Vec<String>,
}

impl Suggester {
    /// An empty collector.
    pub fn new() -> Suggester {
        Suggester::default()
    }

    /// Takes one record into account.
    pub fn add(&mut self, record: &ReadRecord) {
        let Some(run_id) = record.str("run_id") else {
            return;
        };
        if !self.runs.contains_key(run_id) {
            self.order.push(run_id.to_owned());
        }
        let facts = self.runs.entry(run_id.to_owned()).or_default();
        let v = &record.value;
        if let Some(name) = record.plugin() {
            facts.plugin = Some(name.to_owned());
        }
        if let Some(sha) = v.pointer("/plugin/sha256").and_then(|s| s.as_str()) {
            facts.sha256 = Some(sha.to_owned());
        }
        if let Some(mode) = v.pointer("/policy/mode").and_then(|s| s.as_str()) {
            facts.mode = Some(mode.to_owned());
        }
        if let Some(path) = v.pointer("/policy/path").and_then(|s| s.as_str()) {
            facts.policy = Some(AuditPolicy {
                path: path.to_owned(),
                sha256: v
                    .pointer("/policy/sha256")
                    .and_then(|s| s.as_str())
                    .map(str::to_owned),
            });
        }
        match record.str("event") {
            Some("grant" | "deny") => facts.decisions.push(v.clone()),
            Some("access") => facts.accesses.push(v.clone()),
            Some("effect") => facts.effects.push(v.clone()),
            Some("run_start") => {
                facts.started = record.str("ts").map(str::to_owned);
                facts.load = v.get("load").and_then(|l| l.as_str()).map(str::to_owned);
            }
            _ => {}
        }
    }

    /// One suggestion per plugin that had an audit-mode run, by name; only `plugin`'s
    /// when given.
    pub fn suggestions(&self, plugin: Option<&str>) -> Vec<PluginSuggestion> {
        let mut out: BTreeMap<String, PluginSuggestion> = BTreeMap::new();
        for run_id in &self.order {
            let Some(run) = self.runs.get(run_id) else {
                continue;
            };
            let Some(started) = &run.started else {
                continue;
            };
            // A later call of a loaded plugin: its decisions are the load's.
            let load = run
                .load
                .as_ref()
                .and_then(|l| self.runs.get(l))
                .unwrap_or(run);
            let name = run.plugin.as_ref().or(load.plugin.as_ref());
            let mode = run.mode.as_ref().or(load.mode.as_ref());
            let (Some(name), Some("audit")) = (name, mode.map(String::as_str)) else {
                continue;
            };
            if plugin.is_some_and(|p| p != name) {
                continue;
            }
            let s = out.entry(name.clone()).or_insert_with(|| PluginSuggestion {
                name: name.clone(),
                ..PluginSuggestion::default()
            });
            s.runs.push((run_id.clone(), started.clone()));
            if let Some(sha) = run.sha256.as_ref().or(load.sha256.as_ref()) {
                s.sha256.insert(sha.clone());
            }
            if let Some(policy) = run.policy.as_ref().or(load.policy.as_ref()) {
                s.audit_policies.insert(policy.clone());
            }
            take_run(s, run_id, &load.decisions, &run.accesses, &run.effects);
        }
        for s in out.values_mut() {
            let used: BTreeSet<String> = s
                .fs_read
                .values()
                .chain(s.fs_write.values())
                .chain(s.env_allow.values())
                .chain(s.stdio.values())
                .chain(s.net_allow.values())
                .map(|e| e.declared.clone())
                .chain(s.refused.values().filter_map(|r| r.declared.clone()))
                .collect();
            s.unused.retain(|item| {
                let request = item.split_once(' ').map_or(item.as_str(), |(_, r)| r);
                !used.contains(request)
            });
            intent::deny_unused(s);
        }
        out.into_values().collect()
    }
}

fn take_run(
    s: &mut PluginSuggestion,
    run_id: &str,
    decisions: &[serde_json::Value],
    accesses: &[serde_json::Value],
    effects: &[serde_json::Value],
) {
    let text =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let in_effect = |d: &&serde_json::Value| {
        matches!(
            d.get("outcome").and_then(|o| o.as_str()),
            Some("granted" | "would_deny")
        )
    };
    for d in decisions {
        if let (Some(cap), Some(request)) = (text(d, "capability"), text(d, "request")) {
            let item = format!("{cap} {request}");
            if let Some(path) = text(d, "host_path") {
                s.declared_paths.insert(item.clone(), path);
            }
            s.unused.insert(item);
        }
    }
    let note = |map: &mut BTreeMap<String, Evidence>,
                key: String,
                declared: String,
                used: Option<String>| {
        let e = map.entry(key).or_default();
        e.declared = declared;
        e.runs.insert(run_id.to_owned());
        if let Some(u) = used
            && e.uses.len() < 3
        {
            e.uses.insert(u);
        }
    };
    for a in accesses {
        let call = text(a, "call").unwrap_or_default();
        let path = text(a, "path").unwrap_or_default();
        let write = a.get("write").and_then(|w| w.as_bool()).unwrap_or(false);
        match call.as_str() {
            "stdin" | "stdout" | "stderr" => {
                note(&mut s.stdio, call.clone(), call.clone(), None);
            }
            "http_get" | "http_post" => {}
            _ => {
                let Some(preopen) = text(a, "preopen") else {
                    continue;
                };
                // The declaration whose preopen the use was under; write when the
                // use wrote and the declaration may write.
                let covering: Vec<&serde_json::Value> = decisions
                    .iter()
                    .filter(in_effect)
                    .filter(|d| text(d, "guest_path").as_deref() == Some(preopen.as_str()))
                    .collect();
                let writable = covering
                    .iter()
                    .find(|d| text(d, "capability").as_deref() == Some("fs_write"));
                let chosen = if write {
                    writable.or(covering.first())
                } else {
                    covering.first()
                };
                let Some(d) = chosen else { continue };
                let host = text(d, "host_path").unwrap_or_default();
                let declared = text(d, "request").unwrap_or_default();
                let shown = text(a, "host_path").unwrap_or(path);
                let cap = text(d, "capability").unwrap_or_default();
                if write && cap == "fs_write" {
                    note(&mut s.fs_write, host, declared, Some(shown));
                } else {
                    note(&mut s.fs_read, host, declared, Some(shown));
                }
            }
        }
    }
    // A directory both read and written is in `fs.write` only (write covers read).
    let written: Vec<String> = s.fs_write.keys().cloned().collect();
    for w in written {
        if let Some(read) = s.fs_read.remove(&w)
            && let Some(e) = s.fs_write.get_mut(&w)
        {
            e.runs.extend(read.runs);
            e.uses.extend(
                read.uses
                    .into_iter()
                    .take(3usize.saturating_sub(e.uses.len())),
            );
        }
    }
    for d in decisions.iter().filter(in_effect) {
        if text(d, "capability").as_deref() != Some("env") {
            continue;
        }
        let names: Vec<String> = d
            .get("names")
            .and_then(|n| n.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if let (false, Some(pattern)) = (names.is_empty(), text(d, "request")) {
            for n in names {
                note(&mut s.env_allow, pattern.clone(), pattern.clone(), Some(n));
            }
            let withheld = d.get("withheld").and_then(|w| w.as_array());
            for w in withheld.into_iter().flatten() {
                if let (Some(name), Some(rule)) = (text(w, "name"), text(w, "rule")) {
                    note(
                        &mut s.env_deny,
                        name.clone(),
                        format!("withheld by `{rule}`"),
                        None,
                    );
                }
            }
        }
    }
    intent::take_refused(s, run_id, decisions, effects);
    for e in effects {
        // Only a destination whose address check passed: a request that failed
        // before it (a deadline, a name that did not resolve) proves nothing about
        // the address, which enforce mode might refuse (loopback, metadata).
        if !passed_address_check(e) {
            continue;
        }
        let Some(url) = text(e, "url") else { continue };
        let Some(destination) = destination_endpoint(&url) else {
            continue;
        };
        if let Some((declared, endpoint)) = declared_net(decisions, &destination) {
            // A declaration of several ports (none declared: any port) goes in with
            // the port the run used.
            let allow = if endpoint.ports.low == endpoint.ports.high {
                declared.clone()
            } else {
                crate::net::Endpoint {
                    ports: destination.ports,
                    default_port: false,
                    ..endpoint
                }
                .to_string()
            };
            note(&mut s.net_allow, allow, declared, Some(url));
        }
    }
}

/// Whether an `effect` record shows its request passed the address check: `address`
/// in `checked`; in a record without `checked` (a log from before it existed), an
/// outcome of `performed`.
fn passed_address_check(e: &serde_json::Value) -> bool {
    match e.get("checked") {
        Some(checked) => checked
            .as_array()
            .is_some_and(|c| c.iter().any(|x| x.as_str() == Some("address"))),
        None => e.get("outcome").and_then(|o| o.as_str()) == Some("performed"),
    }
}

impl PluginSuggestion {
    /// Keeps the deny lists of `policy`, an audit policy these runs were decided
    /// under: `fs.deny`, `env.deny` and `net.deny` of its `[defaults]` and of the
    /// plugin's own table. A variable a deny list withheld in the runs becomes
    /// evidence of the kept pattern that matches it (a name no kept pattern matches
    /// stays denied by name).
    pub fn keep_denials(&mut self, policy: &super::Policy) {
        let source = policy
            .file()
            .map_or_else(|| policy.path().to_owned(), |f| f.display().to_string());
        let tables =
            std::iter::once(policy.defaults()).chain(policy.plugin(&self.name).map(|t| &t.rules));
        for rules in tables {
            for e in &rules.fs_deny {
                keep(&mut self.fs_deny, e.value.clone(), &e.key, &source);
            }
            for e in &rules.env_deny {
                keep(&mut self.env_deny, e.value.clone(), &e.key, &source);
            }
            for e in &rules.net_deny {
                keep(&mut self.net_deny, e.value.to_string(), &e.key, &source);
            }
        }
        let names: Vec<String> = self
            .env_deny
            .iter()
            .filter(|(_, e)| e.kept_from.is_none() && !e.unused)
            .map(|(name, _)| name.clone())
            .collect();
        for name in names {
            let pattern = self
                .env_deny
                .iter()
                .filter(|(_, e)| e.kept_from.is_some())
                .map(|(p, _)| p)
                .find(|p| super::env::EnvPattern::new(p).is_ok_and(|pat| pat.matches(&name)))
                .cloned();
            let Some(pattern) = pattern else { continue };
            if let Some(withheld) = self.env_deny.remove(&name)
                && let Some(kept) = self.env_deny.get_mut(&pattern)
            {
                kept.runs.extend(withheld.runs);
                if kept.uses.len() < 3 {
                    kept.uses.insert(name);
                }
            }
        }
    }
}

/// A deny entry of the audit policy into `map`, once (the first key that has it).
fn keep(map: &mut BTreeMap<String, Evidence>, value: String, key: &str, source: &str) {
    let e = map.entry(value.clone()).or_default();
    if e.kept_from.is_none() {
        e.kept_from = Some(format!("`{key}` of `{source}`"));
        e.declared = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: serde_json::Value) -> ReadRecord {
        ReadRecord {
            file: "log".into(),
            line: 1,
            raw: v.to_string(),
            value: v,
        }
    }

    /// Strings from a log anyone could have edited cannot add keys or tables to the
    /// suggestion: values are TOML strings, comments are escaped to one line.
    #[test]
    fn hostile_log_text_cannot_inject_toml() {
        let evil = "x\"]\n[plugins.evil]\nfs.write = [\"/\"]\n#\u{7f}\u{1b}";
        let policy = serde_json::json!({"path": "p", "mode": "audit"});
        let plugin = serde_json::json!({"name": "good", "sha256": evil});
        let mut s = Suggester::new();
        for v in [
            serde_json::json!({"run_id": "r1", "ts": evil, "event": "policy_loaded", "policy": policy}),
            serde_json::json!({"run_id": "r1", "ts": evil, "event": "grant", "plugin": plugin, "policy": policy,
                "capability": "fs_read", "request": evil, "host_path": evil, "guest_path": "/data", "outcome": "would_deny"}),
            serde_json::json!({"run_id": "r1", "ts": evil, "event": "grant", "plugin": plugin, "policy": policy,
                "capability": "env", "request": evil, "names": [evil], "withheld": [{"name": evil, "rule": evil}], "outcome": "granted"}),
            serde_json::json!({"run_id": "r1", "ts": evil, "event": "run_start", "plugin": plugin, "policy": policy}),
            serde_json::json!({"run_id": "r1", "ts": evil, "event": "access", "plugin": plugin, "policy": policy,
                "call": "path_open", "path": evil, "host_path": evil, "preopen": "/data", "write": false}),
            serde_json::json!({"run_id": "r1", "ts": evil, "event": "access", "plugin": plugin, "policy": policy,
                "call": "stdout", "path": "stdout", "write": true}),
            serde_json::json!({"run_id": "r1", "ts": evil, "event": "effect", "plugin": plugin, "policy": policy,
                "kind": "http_get", "url": format!("http://127.0.0.1:80/{evil}"), "outcome": "denied",
                "rule": "builtin.net.non_global", "reason": evil, "address": "127.0.0.1:80"}),
            serde_json::json!({"run_id": "r1", "ts": evil, "event": "effect", "plugin": plugin, "policy": policy,
                "kind": "http_get", "url": evil, "outcome": "denied", "rule": evil, "reason": evil}),
        ] {
            s.add(&rec(v));
        }
        let suggestions = s.suggestions(None);
        assert_eq!(suggestions[0].refused.len(), 2);
        assert_eq!(suggestions.len(), 1);
        let text = render_toml(evil, &suggestions);
        let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
        let plugins = table["plugins"].as_table().unwrap();
        assert_eq!(plugins.keys().collect::<Vec<_>>(), ["good"], "{text}");
        let good = plugins["good"].as_table().unwrap();
        assert_eq!(good["fs"]["read"][0].as_str(), Some(evil));
        assert!(!text.contains('\u{7f}') && !text.contains('\u{1b}'));
        // A refused request is a comment, never an entry.
        assert!(
            text.contains("    # \"http://127.0.0.1:80\",  # tried http://127.0.0.1:80/x"),
            "{text}"
        );
        assert!(
            good.get("net")
                .is_some_and(|n| n["allow"].as_array().is_some_and(Vec::is_empty))
        );
    }

    /// A suggestion is the narrowest grant the runs needed: where the plugin runs
    /// (`isolation`, `confine`) stays the policy's to say, so none is suggested, even
    /// from an audit policy that sets them.
    #[test]
    fn isolation_and_confine_are_never_suggested() {
        let policy = serde_json::json!({"path": "p", "mode": "audit"});
        let plugin = serde_json::json!({"name": "good", "sha256": "00"});
        let mut s = Suggester::new();
        for v in [
            serde_json::json!({"run_id": "r1", "ts": "t", "event": "run_start", "plugin": plugin, "policy": policy}),
            serde_json::json!({"run_id": "r1", "ts": "t", "event": "access", "plugin": plugin, "policy": policy,
                "call": "stdout", "path": "stdout", "write": true}),
        ] {
            s.add(&rec(v));
        }
        let audit = crate::policy::Policy::parse(
            "p",
            "version = 1\nmode = \"audit\"\n[defaults]\nisolation = \"in-process\"\nconfine = \"required\"\nenv.deny = [\"*_TOKEN\"]\n[plugins.good]\nisolation = \"process\"\n",
        )
        .unwrap();
        let mut suggestions = s.suggestions(None);
        assert_eq!(suggestions.len(), 1);
        suggestions[0].keep_denials(&audit);
        let text = render_toml("log", &suggestions);
        let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
        let good = table["plugins"]["good"].as_table().unwrap();
        assert_eq!(good["env"]["deny"][0].as_str(), Some("*_TOKEN"), "{text}");
        assert!(
            !good.contains_key("isolation") && !good.contains_key("confine"),
            "{text}"
        );
    }
}
