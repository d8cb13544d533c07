//! Answers to a reviewer's questions from the log: `warden audit show` (the records
//! that match a [`Filter`], as a table or unchanged) and `warden audit summary` (per
//! plugin: loads, runs by outcome and the loads that never ran, grants, denials and
//! audit mode's would-be denials by rule, runtime denials by call, the runs that hit
//! each limit, effects by destination and outcome).
//!
//! Everything here reads records as untrusted JSON (a field missing or of another type
//! is absent) and every string it shows goes through [`crate::escape::escape_line`].

use super::read::ReadRecord;
use crate::escape::escape_line;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

/// Which records `audit show` and `audit summary` take.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Records at or after this time.
    pub since: Option<SystemTime>,
    /// Records before this time.
    pub until: Option<SystemTime>,
    /// Records of this plugin (its declared name).
    pub plugin: Option<String>,
    /// Records of these events.
    pub events: Vec<String>,
    /// Records whose `outcome` is this (a `run_end`'s `success`, a decision's
    /// `denied`, an effect's `performed`, ...).
    pub outcome: Option<String>,
    /// Records of this run (its id, or a prefix of it of at least 8 digits).
    pub run: Option<String>,
}

impl Filter {
    /// Whether `record` is one the filter takes.
    pub fn matches(&self, record: &ReadRecord) -> bool {
        if self.since.is_some() || self.until.is_some() {
            let Some(t) = record.time() else {
                return false;
            };
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t >= u) {
                return false;
            }
        }
        if let Some(p) = &self.plugin
            && record.plugin() != Some(p.as_str())
        {
            return false;
        }
        if !self.events.is_empty()
            && !record
                .str("event")
                .is_some_and(|e| self.events.iter().any(|w| w == e))
        {
            return false;
        }
        if let Some(o) = &self.outcome
            && record.str("outcome") != Some(o.as_str())
        {
            return false;
        }
        if let Some(run) = &self.run
            && !record
                .str("run_id")
                .is_some_and(|id| id.starts_with(run.as_str()))
        {
            return false;
        }
        true
    }
}

/// The first `n` characters of `text` (a record's text may be anything: never cut
/// inside a character).
fn prefix(text: &str, n: usize) -> &str {
    text.char_indices().nth(n).map_or(text, |(i, _)| &text[..i])
}

fn get<'v>(v: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    v.pointer(path)
}

fn s(v: &serde_json::Value, path: &str) -> String {
    match get(v, path) {
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The table header of `audit show`.
pub const SHOW_HEADER: [&str; 5] = ["TIME", "RUN", "PLUGIN", "EVENT", "DETAIL"];

/// One line of `audit show`: time, run (first 8 digits), plugin, event, and the
/// fields that matter for that event. Every part escaped.
pub fn show_row(record: &ReadRecord) -> [String; 5] {
    let v = &record.value;
    let event = s(v, "/event");
    let detail = match event.as_str() {
        "policy_loaded" => format!("{} ({})", s(v, "/policy/path"), s(v, "/policy/mode")),
        "policy_rejected" | "plugin_rejected" => s(v, "/error"),
        "plugin_loaded" => {
            let sha = s(v, "/plugin/sha256");
            format!(
                "{} {} sha256 {}",
                s(v, "/plugin/version"),
                s(v, "/plugin/path"),
                prefix(&sha, 12)
            )
        }
        "grant" | "deny" => decision_detail(v),
        "run_start" => format!("{} args", s(v, "/args_count")),
        "runtime_deny" => format!(
            "{} {} under {} ({})",
            s(v, "/call"),
            s(v, "/path"),
            s(v, "/preopen"),
            s(v, "/errno")
        ),
        "limit_exceeded" => format!("{} {}", s(v, "/limit"), s(v, "/value")),
        "effect" => {
            let mut d = format!("{} {} {}", s(v, "/kind"), s(v, "/url"), s(v, "/outcome"));
            match s(v, "/status").as_str() {
                "" => d.push_str(&format!(" by {}", s(v, "/rule"))),
                status => d.push_str(&format!(" {status}")),
            }
            d
        }
        "access" => format!(
            "{} {}{}",
            s(v, "/call"),
            match s(v, "/host_path").as_str() {
                "" => s(v, "/path"),
                host => host.to_owned(),
            },
            if get(v, "/write").and_then(|w| w.as_bool()) == Some(true) {
                " (write)"
            } else {
                ""
            }
        ),
        "run_end" => format!(
            "{} exit {} in {} ms",
            s(v, "/outcome"),
            s(v, "/exit_code"),
            s(v, "/duration_ms")
        ),
        "checkpoint" => {
            let head = s(v, "/head");
            format!(
                "{} records, head {}, key {}",
                s(v, "/records"),
                prefix(&head, 12),
                s(v, "/key_id")
            )
        }
        _ => String::new(),
    };
    let detail = if get(v, "/who").is_some() {
        format!(
            "{detail}; by {} (uid {}) on {} in {}",
            s(v, "/who/user"),
            s(v, "/who/uid"),
            s(v, "/who/host"),
            s(v, "/who/cwd")
        )
    } else {
        detail
    };
    let run = s(v, "/run_id");
    [
        s(v, "/ts"),
        prefix(&run, 8).to_owned(),
        s(v, "/plugin/name"),
        event,
        detail,
    ]
    .map(|part| escape_line(&part))
}

/// A `grant` or `deny` record: what was decided, where a directory is on the host and
/// in the plugin, by which rule, and which variables and destinations it passes.
fn decision_detail(v: &serde_json::Value) -> String {
    let mut d = format!(
        "{} {} {}",
        s(v, "/outcome"),
        s(v, "/capability"),
        s(v, "/request")
    );
    for (path, word) in [("/host_path", "at"), ("/guest_path", "as")] {
        match s(v, path).as_str() {
            "" => {}
            p => d.push_str(&format!(" {word} {p}")),
        }
    }
    d.push_str(&format!(" by {}", s(v, "/rule")));
    let list = |path: &str, field: &str| -> Option<String> {
        let items = get(v, path)?.as_array()?;
        Some(
            items
                .iter()
                .map(|x| s(x, field))
                .collect::<Vec<_>>()
                .join(", "),
        )
    };
    match list("/names", "") {
        Some(names) if !names.is_empty() => d.push_str(&format!("; passes {names}")),
        // A granted pattern that no variable of the host matches passes nothing.
        Some(_) if s(v, "/outcome") != "denied" => d.push_str("; passes no variable"),
        _ => {}
    }
    if let Some(withheld) = list("/withheld", "/name").filter(|w| !w.is_empty()) {
        d.push_str(&format!("; withholds {withheld}"));
    }
    if let Some(reach) = list("/reach", "").filter(|r| !r.is_empty()) {
        d.push_str(&format!("; reaches {reach}"));
    }
    d
}

/// What `audit summary` says about one plugin.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PluginSummary {
    /// Loads: every load's `run_end` (the one of its first run, or the one that closed
    /// it without a run); runs after the first of a host that ran one load several
    /// times are not loads.
    pub loads: u64,
    /// Runs (a `run_start` was written, so the plugin's code was called) by `run_end`
    /// outcome.
    pub runs: BTreeMap<String, u64>,
    /// Loads that ended without a run (no `run_start`: `rejected`, `refused`,
    /// `unloaded`), by `run_end` outcome. Not runs.
    pub loads_not_run: BTreeMap<String, u64>,
    /// Granted items.
    pub grants: u64,
    /// Denied items (outcome `denied`) by rule.
    pub denials: BTreeMap<String, u64>,
    /// Items an audit-mode policy would deny (outcome `would_deny`: the plugin got
    /// them anyway), by rule.
    pub would_deny: BTreeMap<String, u64>,
    /// Runtime denials by WASI call.
    pub runtime_denials: BTreeMap<String, u64>,
    /// Runs that hit each limit: a `limit_exceeded` record, or an effect that a limit
    /// ended (`max_requests`, `max_response`, ...); a run counts once per limit.
    pub limits: BTreeMap<String, u64>,
    /// Effects by destination, then outcome.
    pub effects: BTreeMap<String, BTreeMap<String, u64>>,
    /// Distinct module digests seen.
    pub sha256: std::collections::BTreeSet<String>,
    /// Distinct users (`who.user`, else `uid N`) who ran it.
    pub users: std::collections::BTreeSet<String>,
}

/// `audit summary`: per plugin name (records with no plugin go under `-`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// By plugin name; `-` for loads that ended before a plugin was read.
    pub plugins: BTreeMap<String, PluginSummary>,
    /// Records read (after the filter).
    pub records: u64,
    /// Users per run id: `who` is on a run's first record, which names no plugin.
    #[serde(skip)]
    who: BTreeMap<String, String>,
    /// Run ids whose `run_start` was seen and whose `run_end` not yet: whether the run
    /// ran a load of its own (`false` for a run after the first of one load, whose
    /// `run_start` names that load).
    #[serde(skip)]
    started: HashMap<String, bool>,
    /// The limits each run hit so far, so that a run counts once per limit.
    #[serde(skip)]
    limits_hit: HashSet<(String, String)>,
}

impl Summary {
    /// Notes what a later record of `record`'s run needs: who ran it (its first record
    /// says), and whether it started (its `run_start`). Call it for every record, also
    /// those the filter leaves out, so that a plugin's runs name their users and a
    /// run whose `run_start` came before `--since` is still a run.
    pub fn note(&mut self, record: &ReadRecord) {
        let v = &record.value;
        if get(v, "/who").is_some() {
            let user = match s(v, "/who/user").as_str() {
                "" => format!("uid {}", s(v, "/who/uid")),
                u => u.to_owned(),
            };
            self.who.insert(s(v, "/run_id"), user);
        }
        if record.str("event") == Some("run_start") {
            let own_load = record.str("load").is_none();
            self.started.insert(s(v, "/run_id"), own_load);
        }
    }

    /// Counts `record` in.
    pub fn add(&mut self, record: &ReadRecord) {
        self.records += 1;
        self.note(record);
        let v = &record.value;
        let run = s(v, "/run_id");
        // A load that ended before its plugin was read (a rejected policy, a file that
        // is not a plugin) is counted under `-`.
        let name = match record.plugin() {
            Some(name) => name,
            None if record.str("event") == Some("run_end") => "-",
            None => return,
        };
        let p = self.plugins.entry(name.to_owned()).or_default();
        if let Some(user) = self.who.get(&run) {
            p.users.insert(user.clone());
        }
        let sha = s(v, "/plugin/sha256");
        if !sha.is_empty() {
            p.sha256.insert(sha);
        }
        let bump = |m: &mut BTreeMap<String, u64>, k: String| *m.entry(k).or_default() += 1;
        let mut limit = None;
        match s(v, "/event").as_str() {
            "run_end" => match self.started.remove(&run) {
                Some(own_load) => {
                    p.loads += u64::from(own_load);
                    bump(&mut p.runs, s(v, "/outcome"));
                }
                None => {
                    p.loads += 1;
                    bump(&mut p.loads_not_run, s(v, "/outcome"));
                }
            },
            "grant" | "deny" => match s(v, "/outcome").as_str() {
                "granted" => p.grants += 1,
                "would_deny" => bump(&mut p.would_deny, s(v, "/rule")),
                _ => bump(&mut p.denials, s(v, "/rule")),
            },
            "runtime_deny" => bump(&mut p.runtime_denials, s(v, "/call")),
            "limit_exceeded" => limit = Some(s(v, "/limit")),
            "effect" => {
                let url = s(v, "/url");
                let destination = crate::net::effects::destination_of(&url)
                    .map_or_else(|| s(v, "/kind"), str::to_owned);
                bump(p.effects.entry(destination).or_default(), s(v, "/outcome"));
                limit = Some(s(v, "/limit")).filter(|l| !l.is_empty());
            }
            _ => {}
        }
        if let Some(limit) = limit
            && self.limits_hit.insert((run, limit.clone()))
        {
            bump(&mut p.limits, limit);
        }
    }

    /// The summary as text, one block per plugin, every string escaped.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let list = |m: &BTreeMap<String, u64>| -> String {
            if m.is_empty() {
                return "none".into();
            }
            m.iter()
                .map(|(k, n)| format!("{} {n}", escape_line(k)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (name, p) in &self.plugins {
            let _ = writeln!(out, "{}", escape_line(name));
            let mut line = |label: &str, text: String| {
                let _ = writeln!(out, "  {label:<19} {text}");
            };
            let not_run: u64 = p.loads_not_run.values().sum();
            line(
                "loads",
                match not_run {
                    0 => p.loads.to_string(),
                    n => format!(
                        "{} ({n} ended without a run: {})",
                        p.loads,
                        list(&p.loads_not_run)
                    ),
                },
            );
            let runs: u64 = p.runs.values().sum();
            line(
                "runs",
                match runs {
                    0 => "0".into(),
                    n => format!("{n} ({})", list(&p.runs)),
                },
            );
            let users: Vec<String> = p.users.iter().map(|u| escape_line(u)).collect();
            if !users.is_empty() {
                line("run by", users.join(", "));
            }
            line("modules", p.sha256.len().to_string());
            line("grants", p.grants.to_string());
            line("denied by rule", list(&p.denials));
            line("would deny by rule", list(&p.would_deny));
            line("runtime denials", list(&p.runtime_denials));
            line("limits hit", list(&p.limits));
            if p.effects.is_empty() {
                line("effects", "none".into());
            }
            for (i, (destination, outcomes)) in p.effects.iter().enumerate() {
                line(
                    if i == 0 { "effects" } else { "" },
                    format!("{}: {}", escape_line(destination), list(outcomes)),
                );
            }
        }
        if self.plugins.is_empty() {
            out.push_str("no plugin records match\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: serde_json::Value) -> ReadRecord {
        ReadRecord {
            file: "log".into(),
            line: 1,
            raw: value.to_string(),
            value,
        }
    }

    /// A log anyone could have written to: multi-byte text where hex is expected and
    /// terminal controls in names are shown escaped, never cut inside a character.
    #[test]
    fn hostile_records_are_shown_escaped_and_never_panic() {
        let hostile = "é\u{1b}[2J\u{202e}".repeat(5);
        for event in [
            "plugin_loaded",
            "checkpoint",
            "effect",
            "grant",
            "deny",
            "run_start",
            "run_end",
            "x",
        ] {
            let r = record(serde_json::json!({
                "ts": hostile, "run_id": hostile, "event": event,
                "plugin": {"name": hostile, "sha256": hostile, "path": hostile},
                "head": hostile, "url": hostile, "withheld": [{"name": hostile}],
                "host_path": hostile, "guest_path": hostile, "names": [hostile, 7, null],
                "reach": [hostile, {"x": hostile}], "limit": hostile, "outcome": hostile,
                "rule": hostile, "load": hostile,
            }));
            let row = show_row(&r);
            for part in &row {
                assert!(
                    !part.contains('\u{1b}') && !part.contains('\u{202e}'),
                    "{part}"
                );
            }
            let mut summary = Summary::default();
            summary.add(&r);
            assert!(!summary.to_text().contains('\u{1b}'));
        }
    }

    #[test]
    fn filters_take_exactly_what_they_name() {
        let r = record(serde_json::json!({
            "ts": "2026-12-02T10:00:00.000Z", "run_id": "abcdef0123456789",
            "event": "run_end", "outcome": "limit", "plugin": {"name": "p"},
        }));
        let at = |t: &str| humantime::parse_rfc3339(t).ok();
        let yes = [
            Filter::default(),
            Filter {
                plugin: Some("p".into()),
                ..Filter::default()
            },
            Filter {
                events: vec!["deny".into(), "run_end".into()],
                ..Filter::default()
            },
            Filter {
                outcome: Some("limit".into()),
                ..Filter::default()
            },
            Filter {
                run: Some("abcdef01".into()),
                ..Filter::default()
            },
            Filter {
                since: at("2026-12-02T10:00:00Z"),
                until: at("2026-12-02T10:00:01Z"),
                ..Filter::default()
            },
        ];
        for f in &yes {
            assert!(f.matches(&r), "{f:?}");
        }
        let no = [
            Filter {
                plugin: Some("q".into()),
                ..Filter::default()
            },
            Filter {
                events: vec!["deny".into()],
                ..Filter::default()
            },
            Filter {
                outcome: Some("success".into()),
                ..Filter::default()
            },
            Filter {
                run: Some("abcdef1".into()),
                ..Filter::default()
            },
            Filter {
                since: at("2026-12-02T10:00:01Z"),
                ..Filter::default()
            },
            Filter {
                until: at("2026-12-02T10:00:00Z"),
                ..Filter::default()
            },
        ];
        for f in &no {
            assert!(!f.matches(&r), "{f:?}");
        }
    }
}
