//! What the administrator is asked to decide, beyond what the runs used: the requests
//! a check refused ([`take_refused`]), shown as commented allow entries with the
//! reason, and the declared items no run used, denied by name ([`deny_unused`]) so
//! that enforce runs under the adopted table count only denials nobody wrote down.
//!
//! # Security
//!
//! A refused request is never granted: its allow entry is a comment the administrator
//! must uncomment, with the reason next to it (a loopback or private address). A
//! denial by name only ever narrows the table, and is left out when it would deny
//! something a run used (a deny entry wins over every allow entry).

use super::evidence::{Evidence, PluginSuggestion, declared_net, destination_endpoint};
use crate::net::HostPattern;
use crate::net::address::{canonical, non_global};
use crate::net::gate::RULE_NON_GLOBAL;
use crate::policy::env::EnvPattern;
use std::net::SocketAddr;
use std::path::Path;

/// Takes the `denied` effects of one run into `s.refused`.
pub(super) fn take_refused(
    s: &mut PluginSuggestion,
    run_id: &str,
    decisions: &[serde_json::Value],
    effects: &[serde_json::Value],
) {
    let text =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    for e in effects {
        if text(e, "outcome").as_deref() != Some("denied") {
            continue;
        }
        let (Some(url), Some(rule)) = (text(e, "url"), text(e, "rule")) else {
            continue;
        };
        let destination = destination_endpoint(&url);
        let shown = crate::net::effects::destination_of(&url).unwrap_or(&url);
        let attempt = s.refused.entry(format!("{shown} {rule}")).or_default();
        attempt.rule.clone_from(&rule);
        attempt.runs.insert(run_id.to_owned());
        if attempt.uses.len() < 3 {
            attempt.uses.insert(url.clone());
        }
        attempt.declared = destination
            .as_ref()
            .and_then(|d| declared_net(decisions, d))
            .map(|(declared, _)| declared);
        let address = text(e, "address")
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .map(|a| a.ip());
        let range = address.and_then(|ip| Some((ip, non_global(ip)?)));
        match (rule == RULE_NON_GLOBAL, range, destination) {
            (true, Some((ip, range)), Some(destination)) => {
                attempt.why = format!("{ip} is a {range} address");
                // A loopback name, or the address itself, is named by one entry; any
                // other name needs the address named literally as well.
                attempt.allow = vec![destination.to_string()];
                if !matches!(destination.host, HostPattern::Ip(_))
                    && !destination.host.is_loopback_name()
                {
                    let literal = crate::net::Endpoint {
                        host: HostPattern::Ip(canonical(ip)),
                        ..destination
                    };
                    attempt.allow.push(literal.to_string());
                }
            }
            _ => {
                attempt.why = text(e, "reason").unwrap_or_else(|| "refused".into());
                attempt.allow.clear();
            }
        }
    }
}

/// Denies by name each declared item in `s.unused` that a deny entry can name without
/// touching what the runs used: a directory (by its host path) that is not, does not
/// hold and is not inside a suggested `fs.read`/`fs.write` directory; an env pattern
/// that shares no name with a suggested `env.allow` pattern; an endpoint's host that
/// no suggested or refused `net.allow` entry shares. A stream needs none: the table's
/// own `stdio` list leaves it out by name.
pub(super) fn deny_unused(s: &mut PluginSuggestion) {
    let unused: Vec<String> = s.unused.iter().cloned().collect();
    for item in unused {
        let Some((capability, request)) = item.split_once(' ') else {
            continue;
        };
        let evidence = Evidence {
            declared: request.to_owned(),
            unused: true,
            ..Evidence::default()
        };
        let denied = match capability {
            "fs_read" | "fs_write" => {
                let Some(path) = s.declared_paths.get(&item).cloned() else {
                    continue;
                };
                let touches = |allowed: &String| {
                    Path::new(allowed).starts_with(&path) || Path::new(&path).starts_with(allowed)
                };
                if s.fs_read.keys().chain(s.fs_write.keys()).any(touches) {
                    continue;
                }
                s.fs_deny.entry(path).or_insert(evidence);
                true
            }
            "env" => {
                let Ok(pattern) = EnvPattern::new(request) else {
                    continue;
                };
                let shares =
                    |allowed: &String| EnvPattern::new(allowed).is_ok_and(|a| a.overlaps(&pattern));
                if s.env_allow.keys().any(shares) {
                    continue;
                }
                s.env_deny.entry(request.to_owned()).or_insert(evidence);
                true
            }
            "net" => {
                let Ok(endpoint) = crate::net::Endpoint::parse_allow(request) else {
                    continue;
                };
                let host = endpoint.host;
                let mut allowed = s
                    .net_allow
                    .keys()
                    .chain(s.refused.values().flat_map(|r| &r.allow));
                if allowed.any(|a| {
                    crate::net::Endpoint::parse_allow(a).is_ok_and(|a| a.host.overlaps(&host))
                }) {
                    continue;
                }
                s.net_deny.entry(host.to_string()).or_insert(evidence);
                true
            }
            _ => false,
        };
        if denied {
            s.denied_by_name.insert(item);
        }
    }
}
