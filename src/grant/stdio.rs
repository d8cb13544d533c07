//! The standard-stream part of the intersection (`POLICY.md` rule 6): one declared
//! stream against the `stdio` list in force (the plugin table's, else `[defaults]`').
//!
//! A stream that is not granted is closed, not taken away: reads see end of file and
//! writes go nowhere.

use super::decision::{Capability, Decision, Grant, GrantKind, Outcome, policy_denial};
use super::rules::Effective;
use crate::policy::{Mode, Stream};

pub(super) fn decide_stream(stream: Stream, rules: &Effective<'_>, mode: Mode) -> Decision {
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
                // The plugin's own list says which streams it gets: one it leaves out
                // is denied by name.
                d.named = rules.own.is_some_and(|o| o.stdio.is_some());
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
