//! The environment part of the intersection (`POLICY.md` rule 5): one declared
//! variable name or glob against the `env.allow` and `env.deny` patterns, decided per
//! host variable.
//!
//! A declaration is granted when one allow pattern covers every name it can match and
//! no deny pattern covers it whole; the variables it then passes are the host's that
//! it matches, less those a deny pattern matches (each withheld with its rule).
//!
//! # Security
//!
//! Values never leave the host through a decision: a decision names variables, never
//! their values, and only the grant carries them, to the sandbox.

use super::decision::{Capability, Decision, Grant, GrantKind, Outcome, Withheld, policy_denial};
use super::rules::{Effective, Host};
use crate::policy::Mode;
use crate::policy::env::EnvPattern;

pub(super) fn decide_env(raw: &str, rules: &Effective<'_>, host: &Host, mode: Mode) -> Decision {
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
        d.named = true;
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
        let table = &rules.table;
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
