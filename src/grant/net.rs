//! The network part of the intersection (`POLICY.md` rule 7): one declared
//! `NetPattern` against the `net.allow` and `net.deny` entries that apply to the plugin.
//!
//! A declaration is read with the SDK's meaning (no port = any port). It is granted
//! when at least one allow entry overlaps it and no deny entry covers its host whole;
//! what the plugin may then reach is the **intersection**, declared ∩ allowed, one
//! endpoint per overlapping allow entry (`reach`, shown by `explain` and recorded in
//! the `grant` record). A deny entry that covers only part of the declared host stays
//! in force per request ([`crate::net::NetAccess::check_url`] and
//! [`crate::net::NetAccess::check_addresses`]).
//!
//! # Security
//!
//! A declaration is hostile input: it is never widened. Each granted endpoint is a
//! subset of both the declaration and one allow entry, and its rule is that entry's
//! key, so a request is let through only where both agree. In audit mode the part of
//! the declaration no allow entry covers is in effect too, recorded `would_deny` in
//! the reason and under the rule `none`, as audit mode grants every other declared
//! item.

use super::decision::{Capability, Decision, Grant, GrantKind, NO_RULE, Outcome, policy_denial};
use super::rules::Effective;
use crate::abi::NetPattern;
use crate::net::pattern::DeclaredError;
use crate::net::{Endpoint, NetGrant};
use crate::policy::Mode;

/// Decides one declared endpoint. Also returns the endpoint, when it is one warden
/// performs requests for, for the per-request checks (a request under a denied
/// declaration is refused with that denial's rule).
pub(super) fn decide_net(
    n: &NetPattern,
    rules: &Effective<'_>,
    mode: Mode,
) -> (Decision, Option<Endpoint>) {
    let mut d = Decision::undecided(
        Capability::Net,
        crate::net::pattern::declared_url(n),
        Outcome::Denied,
    );
    let declared = match Endpoint::declared(n) {
        Ok(endpoint) => endpoint,
        Err(problem) => {
            d.reason = match problem {
                DeclaredError::Tcp => "warden offers no raw sockets (WASI preview 1 has none, and warden performs only http and https requests for a plugin); denied in every mode".into(),
                DeclaredError::Range => "the declared host is a range; declare a host".into(),
                DeclaredError::PortZero => "the declared port is 0, which no request can use; declare a port from 1 to 65535, or none for any port".into(),
                DeclaredError::Host(problem) => format!("the declared host {problem}"),
            };
            return (d, None);
        }
    };
    let any_port = if n.port.is_none() {
        " (no port declared: any port, as the SDK means it)"
    } else {
        ""
    };
    if let Some(deny) = rules
        .net_deny
        .iter()
        .find(|e| e.value.covers(&declared.host))
    {
        d.rule = deny.key.clone();
        d.named = true;
        d.reason = format!(
            "`{}` is never reached (`{}` is denied; deny beats allow, in every mode)",
            declared.host, deny.value
        );
        return (d, Some(declared));
    }
    let reach = intersection(&declared, rules);
    let mut grants: Vec<NetGrant> = reach
        .iter()
        .map(|(endpoint, rule)| NetGrant {
            endpoint: endpoint.clone(),
            rule: rule.clone(),
        })
        .collect();
    // Parts of the declared host a deny entry names: refused request by request.
    let minus: Vec<String> = rules
        .net_deny
        .iter()
        .filter(|e| e.value.overlaps(&declared.host))
        .map(|e| format!("`{}` (`{}`)", e.value, e.key))
        .collect();
    let minus = if minus.is_empty() {
        String::new()
    } else {
        format!(", minus {}", minus.join(", "))
    };
    let whole = reach.iter().any(|(e, _)| e.covers(&declared));
    if let Some((_, first_rule)) = reach.first() {
        d.rule = first_rule.clone();
        d.outcome = Outcome::Granted;
        // With one part the rule column names its entry; with several, each part
        // says which entry it comes from.
        let (shown, entries) = match reach.as_slice() {
            [(e, _)] => (format!("`{e}`"), "the allow entry"),
            parts => (
                parts
                    .iter()
                    .map(|(e, rule)| format!("`{e}` (`{rule}`)"))
                    .collect::<Vec<_>>()
                    .join(", "),
                "the allow entries",
            ),
        };
        d.reason = format!(
            "may reach {shown}{minus}, where the declaration{any_port} and {entries} meet; each request is still checked when it is made"
        );
        if !whole && mode == Mode::Audit {
            // Audit mode grants what is declared; the rest is what enforce would deny.
            grants.push(NetGrant {
                endpoint: declared.clone(),
                rule: NO_RULE.into(),
            });
            d.reason.push_str(&format!(
                "; audit mode: the rest of `{declared}` too, which enforce mode would deny"
            ));
        }
    } else {
        let table = &rules.table;
        // The entry is the declaration itself, which every request under it needs; a
        // declaration of any port is best narrowed to the port the plugin uses.
        let fix = if n.port.is_none() {
            format!("`\"{declared}\"` (any port; or name the one port it needs instead of `*`)")
        } else {
            format!("`\"{declared}\"`")
        };
        d.reason = format!(
            "no `net.allow` entry covers it, or any part of it{any_port}; add {fix} to `net.allow` of `[{table}]`"
        );
        d.outcome = policy_denial(mode);
        if d.outcome == Outcome::WouldDeny {
            grants.push(NetGrant {
                endpoint: declared.clone(),
                rule: NO_RULE.into(),
            });
        }
    }
    if d.outcome != Outcome::Denied {
        d.reach = grants.iter().map(|g| g.endpoint.to_string()).collect();
        d.grant = Some(Grant {
            kind: GrantKind::Net(grants),
        });
    }
    (d, Some(declared))
}

/// declared ∩ each allow entry that overlaps it, with that entry's key; a part another
/// part already holds is left out.
fn intersection(declared: &Endpoint, rules: &Effective<'_>) -> Vec<(Endpoint, String)> {
    let mut reach: Vec<(Endpoint, String)> = Vec::new();
    for allow in &rules.net_allow {
        let Some(part) = declared.intersect(&allow.value) else {
            continue;
        };
        if reach.iter().any(|(held, _)| held.covers(&part)) {
            continue;
        }
        reach.retain(|(held, _)| !part.covers(held));
        reach.push((part, allow.key.clone()));
    }
    reach
}

#[cfg(test)]
mod tests {
    use crate::abi::{Capabilities, NetPattern, NetProtocol};
    use crate::grant::{Decision, Host, Outcome, decide};
    use crate::policy::Policy;

    fn declared(protocol: NetProtocol, host: &str, port: Option<u16>) -> NetPattern {
        NetPattern {
            host: host.into(),
            port,
            protocol,
        }
    }

    /// The decision for one declared endpoint under a policy whose `[plugins.p]` has
    /// `table`, and the per-request checks it leads to.
    fn decided(n: NetPattern, table: &str) -> (Decision, crate::net::NetAccess) {
        let policy = Policy::parse("t.toml", &format!("version = 1\n{table}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let caps = Capabilities {
            net: vec![n],
            ..Capabilities::default()
        };
        let d = decide(&caps, "p", [0; 32], &policy, &Host::default());
        let sandbox = crate::sandbox::Sandbox::from_decisions(&d);
        (d.items()[0].clone(), sandbox.net().clone())
    }

    fn allows(net: &crate::net::NetAccess, url: &str) -> bool {
        net.check_url(url).is_ok()
    }

    #[test]
    fn no_port_is_any_port_and_the_allow_entry_decides_it() {
        let (d, net) = decided(
            declared(NetProtocol::Http, "127.0.0.1", None),
            "[plugins.p]\nnet.allow = [\"http://127.0.0.1:8000\"]\n",
        );
        assert_eq!(d.outcome(), Outcome::Granted);
        assert_eq!(d.request(), "http://127.0.0.1:*");
        assert_eq!(d.reach(), ["http://127.0.0.1:8000"]);
        assert_eq!(d.rule(), "plugins.p.net.allow[0]");
        assert!(
            d.reason().contains("may reach `http://127.0.0.1:8000`"),
            "{}",
            d.reason()
        );
        assert!(d.reason().contains("any port"), "{}", d.reason());
        assert!(allows(&net, "http://127.0.0.1:8000/x"));
        assert!(!allows(&net, "http://127.0.0.1/"));
        assert!(!allows(&net, "http://127.0.0.1:8001/"));
        let record = serde_json::to_value(&d).unwrap();
        assert_eq!(
            record["reach"],
            serde_json::json!(["http://127.0.0.1:8000"])
        );
    }

    #[test]
    fn each_overlapping_allow_entry_adds_its_part() {
        let (d, net) = decided(
            declared(NetProtocol::Http, "127.0.0.1", None),
            "[plugins.p]\nnet.allow = [\"http://127.0.0.1:8000\", \"http://127.0.0.0/8:9000..9100\", \"https://127.0.0.1\"]\n[defaults]\nnet.allow = [\"http://127.0.0.1:8000..8001\"]\n",
        );
        assert_eq!(
            d.reach(),
            ["http://127.0.0.1:9000..9100", "http://127.0.0.1:8000..8001"]
        );
        assert!(allows(&net, "http://127.0.0.1:9050/"));
        assert!(allows(&net, "http://127.0.0.1:8001/"));
        assert!(!allows(&net, "https://127.0.0.1/"), "another scheme");
        // The narrower side wins on each part: host from the declaration, ports from
        // the entry, and the other way round.
        let (d, _) = decided(
            declared(NetProtocol::Http, "127.0.0.1", Some(8000)),
            "[plugins.p]\nnet.allow = [\"http://127.0.0.0/8:*\"]\n",
        );
        assert_eq!(d.reach(), ["http://127.0.0.1:8000"]);
        let (d, net) = decided(
            declared(NetProtocol::Https, "*.example.com", None),
            "[plugins.p]\nnet.allow = [\"https://api.example.com\"]\n",
        );
        assert_eq!(d.reach(), ["https://api.example.com:443"]);
        assert!(!allows(&net, "https://www.example.com/"));
    }

    #[test]
    fn a_deny_entry_denies_what_it_covers_whole_and_is_checked_per_request_otherwise() {
        let (d, _) = decided(
            declared(NetProtocol::Https, "api.corp.example", None),
            "[defaults]\nnet.deny = [\"*.corp.example\"]\n[plugins.p]\nnet.allow = [\"https://*.corp.example:*\"]\n",
        );
        assert_eq!(d.outcome(), Outcome::Denied);
        assert_eq!(d.rule(), "defaults.net.deny[0]");
        assert!(d.reach().is_empty());
        let (d, net) = decided(
            declared(NetProtocol::Https, "*.example.com", None),
            "[defaults]\nnet.deny = [\"*.corp.example.com\"]\n[plugins.p]\nnet.allow = [\"https://*.example.com\"]\n",
        );
        assert_eq!(d.outcome(), Outcome::Granted);
        assert!(
            d.reason()
                .contains("minus `*.corp.example.com` (`defaults.net.deny[0]`)"),
            "{}",
            d.reason()
        );
        assert!(allows(&net, "https://api.example.com/"));
        assert_eq!(
            net.check_url("https://a.corp.example.com/")
                .unwrap_err()
                .rule,
            "defaults.net.deny[0]"
        );
    }

    #[test]
    fn nothing_overlapping_is_denied_or_in_audit_mode_granted_as_declared() {
        let table = "[plugins.p]\nnet.allow = [\"http://127.0.0.1:8000\"]\n";
        let (d, net) = decided(declared(NetProtocol::Http, "10.0.0.1", None), table);
        assert_eq!(d.outcome(), Outcome::Denied);
        assert!(d.reach().is_empty());
        assert!(
            d.reason()
                .contains("add `\"http://10.0.0.1:*\"` (any port; or name the one port it needs instead of `*`) to `net.allow` of `[plugins.p]`"),
            "{}",
            d.reason()
        );
        assert!(!allows(&net, "http://10.0.0.1/"));
        let audit = format!("mode = \"audit\"\n{table}");
        let (d, _) = decided(declared(NetProtocol::Http, "10.0.0.1", None), &audit);
        assert_eq!(d.outcome(), Outcome::WouldDeny);
        assert_eq!(d.reach(), ["http://10.0.0.1:*"]);
        // Audit mode, part allowed: the rest of the declaration is in effect too.
        let (d, net) = decided(declared(NetProtocol::Http, "127.0.0.1", None), &audit);
        assert_eq!(d.outcome(), Outcome::Granted);
        assert_eq!(d.reach(), ["http://127.0.0.1:8000", "http://127.0.0.1:*"]);
        assert_eq!(
            net.check_url("http://127.0.0.1:8000/").unwrap().rule,
            "plugins.p.net.allow[0]"
        );
        assert_eq!(net.check_url("http://127.0.0.1:9/").unwrap().rule, "none");
    }

    #[test]
    fn tcp_ranges_and_port_zero_are_no_endpoints() {
        let table = "[plugins.p]\nnet.allow = [\"http://0.0.0.0/0:*\"]\n";
        for (n, says) in [
            (
                declared(NetProtocol::Tcp, "127.0.0.1", Some(22)),
                "no raw sockets",
            ),
            (
                declared(NetProtocol::Http, "10.0.0.0/8", None),
                "is a range",
            ),
            (
                declared(NetProtocol::Http, "127.0.0.1", Some(0)),
                "port is 0",
            ),
        ] {
            let (d, net) = decided(n, table);
            assert_eq!(d.outcome(), Outcome::Denied);
            assert!(d.reason().contains(says), "{}", d.reason());
            assert!(net.granted.is_empty());
        }
    }
}
