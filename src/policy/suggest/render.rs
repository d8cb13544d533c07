//! Writing a suggestion as TOML: each value with [`toml_string`], each comment with
//! [`escape_line`], so nothing a log holds can add a key or a table (see the parent
//! module's `# Security`).

use super::evidence::{Evidence, PluginSuggestion};
use crate::escape::{escape_line, toml_string};
use std::collections::BTreeMap;
use std::fmt::Write as _;

impl PluginSuggestion {
    /// The table as TOML, with comments naming the evidence.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        let first = self
            .runs
            .iter()
            .map(|(_, t)| t)
            .min()
            .cloned()
            .unwrap_or_default();
        let last = self
            .runs
            .iter()
            .map(|(_, t)| t)
            .max()
            .cloned()
            .unwrap_or_default();
        let ids: Vec<&str> = self
            .runs
            .iter()
            .take(4)
            .map(|(id, _)| id.as_str())
            .collect();
        let more = self.runs.len().saturating_sub(ids.len());
        let _ = writeln!(
            out,
            "# {}: from {} audit-mode run{} between {} and {}",
            escape_line(&self.name),
            self.runs.len(),
            if self.runs.len() == 1 { "" } else { "s" },
            escape_line(&first),
            escape_line(&last)
        );
        let _ = writeln!(
            out,
            "# runs: {}{}",
            escape_line(&ids.join(", ")),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
        let _ = writeln!(out, "[plugins.{}]", crate::policy::toml_key(&self.name));
        let digests: Vec<String> = self.sha256.iter().map(|d| toml_string(d)).collect();
        match digests.as_slice() {
            [] => {}
            [one] => {
                let _ = writeln!(out, "sha256 = {one}  # the module these runs loaded");
            }
            many => {
                let _ = writeln!(
                    out,
                    "sha256 = [{}]  # every module these runs loaded",
                    many.join(", ")
                );
            }
        }
        let total = self.runs.len();
        let list = |out: &mut String, key: &str, items: &BTreeMap<String, Evidence>| {
            if items.is_empty() {
                return;
            }
            let _ = writeln!(out, "{key} = [");
            entries(out, items, total);
            let _ = writeln!(out, "]");
        };
        list(&mut out, "fs.read", &self.fs_read);
        list(&mut out, "fs.write", &self.fs_write);
        list(&mut out, "fs.deny", &self.fs_deny);
        list(&mut out, "env.allow", &self.env_allow);
        list(&mut out, "env.deny", &self.env_deny);
        if self.stdio.is_empty() {
            let _ = writeln!(out, "stdio = []  # no run used a stream");
        } else {
            list(&mut out, "stdio", &self.stdio);
        }
        if !self.net_allow.is_empty() || !self.refused.is_empty() {
            let _ = writeln!(out, "net.allow = [");
            entries(&mut out, &self.net_allow, total);
            self.refused_lines(&mut out);
            let _ = writeln!(out, "]");
        }
        list(&mut out, "net.deny", &self.net_deny);
        if !self.unused.is_empty() {
            let _ = writeln!(
                out,
                "# declared but used by no run (not granted; enforce mode denies them):"
            );
            for item in &self.unused {
                let by_name = if self.denied_by_name.contains(item) {
                    " (denied by name above)"
                } else if item.starts_with("stdio ") {
                    " (left out of `stdio` above)"
                } else {
                    ""
                };
                let _ = writeln!(out, "#   {}{by_name}", escape_line(item));
            }
        }
        out
    }
}

impl PluginSuggestion {
    /// The refused requests, as commented lines of the `net.allow` list: an allow
    /// entry to uncomment, with the reason, where one would let them through; the
    /// rule and the reason otherwise.
    fn refused_lines(&self, out: &mut String) {
        let total = self.runs.len();
        for r in self.refused.values() {
            let uses: Vec<&str> = r.uses.iter().map(String::as_str).collect();
            let tried = format!(
                "tried {} in {} of {total} runs",
                uses.join(", "),
                r.runs.len()
            );
            if r.allow.is_empty() {
                let comment = format!("{tried}, refused by `{}`: {}", r.rule, r.why);
                let _ = writeln!(out, "    # {}", escape_line(&comment));
                continue;
            }
            let both = if r.allow.len() > 1 {
                " (uncomment both entries: the name, and the address it resolved to)"
            } else {
                ""
            };
            for entry in &r.allow {
                let comment = format!("{tried}: {}; allow it only if you mean to{both}", r.why);
                let _ = writeln!(
                    out,
                    "    # {},  # {}",
                    toml_string(entry),
                    escape_line(&comment)
                );
            }
        }
    }
}

/// The lines of a list's entries, each with a comment naming its evidence.
fn entries(out: &mut String, items: &BTreeMap<String, Evidence>, total: usize) {
    for (value, e) in items {
        let uses: Vec<&str> = e.uses.iter().map(String::as_str).collect();
        let comment = if let Some(from) = &e.kept_from {
            let mut comment = format!("kept from the audit policy: {from}");
            if !e.runs.is_empty() {
                let _ = write!(
                    comment,
                    "; withheld {} in {} of {total} runs",
                    uses.join(", "),
                    e.runs.len()
                );
            }
            comment
        } else if e.unused {
            format!(
                "declared `{}`, used by no run: denied by name, so enforce runs do not report it",
                e.declared
            )
        } else {
            let declared = if e.declared.starts_with("withheld") {
                format!("{} in ", e.declared)
            } else if e.declared != *value {
                format!("declared `{}`; ", e.declared)
            } else {
                String::new()
            };
            format!(
                "{declared}{}{} of {total} runs{}",
                if e.declared.starts_with("withheld") {
                    ""
                } else {
                    "used by "
                },
                e.runs.len(),
                if uses.is_empty() {
                    String::new()
                } else {
                    format!(": {}", uses.join(", "))
                }
            )
        };
        // Log text (plugin-chosen paths and URLs) in a comment: escaped, so a newline
        // can never end the comment and start a key.
        let _ = writeln!(
            out,
            "    {},  # {}",
            toml_string(value),
            escape_line(&comment)
        );
    }
}

/// The whole suggestion as a policy file `policy check` accepts.
pub fn render_toml(source: &str, suggestions: &[PluginSuggestion]) -> String {
    let mut out = format!(
        "# warden policy suggest, from {}\n# Review each table, then merge it into your policy.\nversion = 1\n",
        escape_line(source)
    );
    for s in suggestions {
        out.push('\n');
        out.push_str(&s.to_toml());
    }
    out
}
