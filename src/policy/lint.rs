//! Rule 9's warnings about a whole policy, legal but probably wrong: an allow list
//! under which no deny list of its kind applies, `net.allow` entries that add up
//! to every address ([`super::coverage`]), and `confine = "required"` where the plugin
//! runs in-process (there is no worker to confine). Each names the line and column of
//! the entry it is about.
//!
//! The parser warns about single values as it reads them (decimal units, a grant of
//! the whole filesystem); these look at the tables together, once parsing is done.

use super::error::PolicyError;
use super::model::{Confine, Isolation, Rules};
use super::parse::Parsed;

/// Rule 9's warnings about `parsed`, which was read from `file`.
pub(super) fn warnings(parsed: &Parsed, file: &str) -> Vec<PolicyError> {
    let mut out = Vec::new();
    allow_without_deny(parsed, file, &mut out);
    every_address(parsed, file, &mut out);
    confine_in_process(parsed, file, &mut out);
    out
}

/// `confine = "required"` in a table whose plugins run in-process: its own `isolation`,
/// or, for a plugin table that writes none, `[defaults]`'s. (`[defaults]` requiring
/// confinement while one plugin's table opts into `in-process` is a deliberate
/// exception, not a mistake.)
fn confine_in_process(parsed: &Parsed, file: &str, out: &mut Vec<PolicyError>) {
    let defaults = &parsed.defaults;
    let tables = std::iter::once((defaults, None))
        .chain(parsed.plugins.values().map(|t| (&t.rules, Some(defaults))));
    for (rules, inherited) in tables {
        let Some(confine) = rules
            .confine
            .as_ref()
            .filter(|c| c.value == Confine::Required)
        else {
            continue;
        };
        let Some(isolation) = rules
            .isolation
            .as_ref()
            .or_else(|| inherited.and_then(|d| d.isolation.as_ref()))
            .filter(|i| i.value == Isolation::InProcess)
        else {
            continue;
        };
        let Some(&(line, column)) = parsed.locations.get(&confine.key) else {
            continue;
        };
        out.push(PolicyError {
            file: file.to_owned(),
            line,
            column,
            message: format!(
                "`{}` = `required`: confine has no effect in-process (`{}` = `in-process`), so nothing is confined and nothing is refused; set `isolation = \"process\"` to run the plugin in a confined worker, or remove `confine`",
                confine.key, isolation.key
            ),
        });
    }
}

/// Rule 9: `net.allow` lists whose literals and ranges add up to every address
/// ([`super::coverage`]).
fn every_address(parsed: &Parsed, file: &str, out: &mut Vec<PolicyError>) {
    let mut found = super::coverage::every_address(&parsed.defaults, None);
    for table in parsed.plugins.values() {
        found.extend(super::coverage::every_address(
            &parsed.defaults,
            Some(&table.rules),
        ));
    }
    for warning in found {
        if let Some(&(line, column)) = parsed.locations.get(&warning.at) {
            out.push(PolicyError {
                file: file.to_owned(),
                line,
                column,
                message: warning.message,
            });
        }
    }
}

/// Rule 9: an allow list under which no deny list of its kind applies.
fn allow_without_deny(parsed: &Parsed, file: &str, out: &mut Vec<PolicyError>) {
    let tables: Vec<&Rules> = std::iter::once(&parsed.defaults)
        .chain(parsed.plugins.values().map(|t| &t.rules))
        .collect();
    for rules in tables {
        let own_or_default = |own: bool, default: bool| own || default;
        let kinds = [
            (
                "fs",
                [&rules.fs_read, &rules.fs_write]
                    .into_iter()
                    .flatten()
                    .next()
                    .map(|e| e.key.clone()),
                own_or_default(
                    !rules.fs_deny.is_empty(),
                    !parsed.defaults.fs_deny.is_empty(),
                ),
                "[\"~/.ssh\", \"~/.aws\", \"/etc\"]",
            ),
            (
                "env",
                rules.env_allow.first().map(|e| e.key.clone()),
                own_or_default(
                    !rules.env_deny.is_empty(),
                    !parsed.defaults.env_deny.is_empty(),
                ),
                "[\"*_TOKEN\", \"*SECRET*\", \"*PASSWORD*\"]",
            ),
            (
                "net",
                rules.net_allow.first().map(|e| e.key.clone()),
                own_or_default(
                    !rules.net_deny.is_empty(),
                    !parsed.defaults.net_deny.is_empty(),
                ),
                "[\"169.254.0.0/16\", \"10.0.0.0/8\"]",
            ),
        ];
        for (kind, first_allow, denied_somewhere, example) in kinds {
            let Some(first) = first_allow else { continue };
            if denied_somewhere {
                continue;
            }
            let Some(&(line, column)) = parsed.locations.get(&first) else {
                continue;
            };
            out.push(PolicyError {
                file: file.to_owned(),
                line,
                column,
                message: format!(
                    "`{first}` allows, but no `{kind}.deny` list applies to `[{}]`; add `[defaults.{kind}] deny = {example}` so that a broad allow can never reach what must stay private",
                    rules.table
                ),
            });
        }
    }
}
