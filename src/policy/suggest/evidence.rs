//! What a suggestion is made of: the evidence for each item ([`Evidence`]), the
//! suggestion for one plugin ([`PluginSuggestion`]), the requests a check refused
//! ([`RefusedAttempt`]), and the two readings of a recorded request that both the
//! collection of runs and `intent` make. Below both, so that neither imports the
//! other's parent.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Why one item is in the suggestion: the runs that used it and what they used.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evidence {
    /// The item as the plugin declared it.
    pub declared: String,
    /// A deny entry kept from the audit policy: its key and the policy file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_from: Option<String>,
    /// Run ids that used it.
    pub runs: BTreeSet<String>,
    /// A few of the uses (paths under the directory, URLs), for the comment.
    pub uses: BTreeSet<String>,
    /// A deny entry for a declared item no run used: the policy denies it by name,
    /// so enforce runs do not count it as a denial to look at.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unused: bool,
}

/// The suggestion for one plugin.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PluginSuggestion {
    /// The plugin's declared name.
    pub name: String,
    /// The audit-mode runs the suggestion is made from: (run id, time of `run_start`).
    pub runs: Vec<(String, String)>,
    /// Module digests loaded by those runs.
    pub sha256: BTreeSet<String>,
    /// `fs.read`: host directory -> evidence.
    pub fs_read: BTreeMap<String, Evidence>,
    /// `fs.write`: host directory -> evidence.
    pub fs_write: BTreeMap<String, Evidence>,
    /// `env.allow`: declared pattern -> evidence (the names passed).
    pub env_allow: BTreeMap<String, Evidence>,
    /// `fs.deny`: the audit policy's entries, kept.
    pub fs_deny: BTreeMap<String, Evidence>,
    /// `env.deny`: the audit policy's patterns, kept (evidence: the names each
    /// withheld in the runs), and any name a deny list withheld in the runs that no
    /// kept pattern matches, so the table alone passes no more than the runs got.
    pub env_deny: BTreeMap<String, Evidence>,
    /// `net.deny`: the audit policy's entries, kept.
    pub net_deny: BTreeMap<String, Evidence>,
    /// The policy files the runs were decided under, as their records name them.
    pub audit_policies: BTreeSet<AuditPolicy>,
    /// `stdio`: stream -> evidence.
    pub stdio: BTreeMap<String, Evidence>,
    /// `net.allow`: declared endpoint -> evidence (the URLs requested).
    pub net_allow: BTreeMap<String, Evidence>,
    /// Declared items no run used (`capability request`).
    pub unused: BTreeSet<String>,
    /// Those of [`PluginSuggestion::unused`] a deny entry of the suggestion names
    /// (`fs.deny`, `env.deny`, `net.deny`, marked [`Evidence::unused`]); the others
    /// cannot be denied by name without denying something a run used.
    pub denied_by_name: BTreeSet<String>,
    /// Requests the runs made that a check refused, by destination and rule: shown
    /// as comments, with the allow entries that would let them through when one can.
    pub refused: BTreeMap<String, RefusedAttempt>,
    /// The host path of each declared directory (`capability request` -> path).
    #[serde(skip)]
    pub(super) declared_paths: BTreeMap<String, String>,
}

/// A policy file as a run's records name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AuditPolicy {
    /// Where it was (absolute), or `<built-in>`.
    pub path: String,
    /// Hex SHA-256 of its text, when recorded.
    pub sha256: Option<String>,
}

/// Requests to one destination that one rule refused in the runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RefusedAttempt {
    /// The declared endpoint the requests fell under, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared: Option<String>,
    /// The rule that refused them.
    pub rule: String,
    /// Why, in words (`127.0.0.1 is a loopback (127.0.0.0/8) address`).
    pub why: String,
    /// The allow entries that would let them through, when allow entries can (a
    /// non-global address): a suggestion, never granted.
    pub allow: Vec<String>,
    /// Run ids that made them.
    pub runs: BTreeSet<String>,
    /// A few of the URLs.
    pub uses: BTreeSet<String>,
}

/// The declared endpoint in effect in the run that covers `destination`, as recorded
/// and as parsed.
pub(super) fn declared_net(
    decisions: &[serde_json::Value],
    destination: &crate::net::Endpoint,
) -> Option<(String, crate::net::Endpoint)> {
    decisions
        .iter()
        .filter(|d| {
            matches!(
                d.get("outcome").and_then(|o| o.as_str()),
                Some("granted" | "would_deny")
            ) && d.get("capability").and_then(|c| c.as_str()) == Some("net")
        })
        .filter_map(|d| d.get("request").and_then(|r| r.as_str()))
        .find_map(|r| {
            let ep = crate::net::Endpoint::parse_allow(r).ok()?;
            ep.covers(destination).then(|| (r.to_owned(), ep))
        })
}

/// The endpoint a recorded URL (`scheme://host:port/path`) went to.
pub(super) fn destination_endpoint(url: &str) -> Option<crate::net::Endpoint> {
    crate::net::Endpoint::parse_allow(crate::net::effects::destination_of(url)?).ok()
}
