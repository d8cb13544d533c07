//! The `policy check` warning about `net.allow` lists that reach every address
//! (`POLICY.md` rule 9: "very broad grants").
//!
//! One entry of `http://0.0.0.0/0:*` is easy to see; two of `http://0.0.0.0/1:*` and
//! `http://128.0.0.0/1:*` reach exactly as far. So the warning is about the **union**:
//! for each table's effective allow list (a plugin's own entries plus `[defaults]`'s),
//! scheme and port, the address literals and ranges that apply are aggregated
//! (`ipnet`), and when they add up to every IPv4 or every IPv6 address the entries
//! that do so are named. Literals and ranges are what count: they name private
//! addresses literally, so such a list reaches loopback, the LAN and cloud metadata.

use super::model::{Entry, Rules};
use crate::net::{Endpoint, HostPattern, Ports, Scheme};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// One list that reaches every address of a family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EveryAddress {
    /// The key of the entry to point at (the table's own first entry that counts).
    pub at: String,
    /// The warning, with the entries that add up and a fix.
    pub message: String,
}

/// The warnings for `[defaults]` (`own` is `None`) or for one plugin table, whose
/// effective list is its own entries plus `defaults`'. A plugin table is warned about
/// only when its own entries are needed to reach every address (else the warning is
/// `[defaults]`'s).
pub(crate) fn every_address(defaults: &Rules, own: Option<&Rules>) -> Vec<EveryAddress> {
    let mine: &[Entry<Endpoint>] = own.map_or(&defaults.net_allow, |o| &o.net_allow);
    let inherited: &[Entry<Endpoint>] = if own.is_some() {
        &defaults.net_allow
    } else {
        &[]
    };
    let mut out = Vec::new();
    for scheme in [Scheme::Http, Scheme::Https] {
        for family in [Family::V4, Family::V6] {
            let all: Vec<&Entry<Endpoint>> = mine.iter().chain(inherited).collect();
            // The set of entries that apply to a port only grows toward some entry's
            // lowest port, so those are the only ports to try.
            let found = all
                .iter()
                .filter(|e| e.value.scheme == scheme)
                .map(|e| e.value.ports.low)
                .find_map(|port| {
                    let applying: Vec<&Entry<Endpoint>> = all
                        .iter()
                        .copied()
                        .filter(|e| e.value.scheme == scheme && e.value.ports.contains(port))
                        .filter(|e| family.net(&e.value.host).is_some())
                        .collect();
                    let theirs: Vec<&Entry<Endpoint>> = applying
                        .iter()
                        .copied()
                        .filter(|e| inherited.iter().any(|i| std::ptr::eq(i, *e)))
                        .collect();
                    (family.covered(&applying) && !family.covered(&theirs))
                        .then_some((port, applying))
                });
            let Some((port, applying)) = found else {
                continue;
            };
            let Some(first_own) = applying
                .iter()
                .find(|e| !inherited.iter().any(|i| std::ptr::eq(i, **e)))
            else {
                continue;
            };
            out.push(EveryAddress {
                at: first_own.key.clone(),
                message: message(&applying, family, scheme, port),
            });
        }
    }
    out
}

fn message(applying: &[&Entry<Endpoint>], family: Family, scheme: Scheme, port: u16) -> String {
    let fix = "private ones included (it names them literally); allow the hosts or ranges the plugin needs";
    if let [one] = applying {
        return format!(
            "`{}` = `{}` reaches every address, {fix}",
            one.key, one.value
        );
    }
    let ports = applying
        .iter()
        .map(|e| e.value.ports)
        .try_fold(Ports::ALL, |acc, p| acc.intersect(p))
        .unwrap_or(Ports::one(port));
    let shown: Vec<String> = applying
        .iter()
        .take(6)
        .map(|e| format!("`{}` = `{}`", e.key, e.value))
        .collect();
    let more = applying.len().saturating_sub(shown.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "{}{more} together reach {} over {} (port {ports}), {}",
        shown.join(", "),
        family.name(),
        scheme.as_str(),
        fix.replace("(it names", "(they name")
    )
}

#[derive(Debug, Clone, Copy)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::V4 => "every IPv4 address",
            Family::V6 => "every IPv6 address",
        }
    }

    /// The range an allow entry's host names literally, in this family.
    fn net(self, host: &HostPattern) -> Option<IpNet> {
        let net = match host {
            HostPattern::Range(net) => *net,
            HostPattern::Ip(ip) => IpNet::from(*ip),
            HostPattern::Name(_) | HostPattern::Subdomains(_) => return None,
        };
        match (self, net) {
            (Family::V4, IpNet::V4(_)) | (Family::V6, IpNet::V6(_)) => Some(net),
            _ => None,
        }
    }

    /// Whether the entries' literals and ranges add up to the whole family.
    fn covered(self, entries: &[&Entry<Endpoint>]) -> bool {
        let nets: Vec<IpNet> = entries
            .iter()
            .filter_map(|e| self.net(&e.value.host))
            .collect();
        let whole = match self {
            Family::V4 => IpNet::V4(Ipv4Net::default()),
            Family::V6 => IpNet::V6(Ipv6Net::default()),
        };
        IpNet::aggregate(&nets).contains(&whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(table: &str, allow: &[&str]) -> Rules {
        Rules {
            table: table.into(),
            net_allow: allow
                .iter()
                .enumerate()
                .map(|(i, a)| Entry {
                    key: format!("{table}.net.allow[{i}]"),
                    value: Endpoint::parse_allow(a).unwrap(),
                })
                .collect(),
            ..Rules::default()
        }
    }

    #[test]
    fn halves_that_add_up_to_every_address_are_one_warning() {
        let none = rules("defaults", &[]);
        let halves = rules(
            "plugins.x",
            &[
                "http://0.0.0.0/1:*",
                "https://example.com",
                "http://128.0.0.0/1:*",
            ],
        );
        let found = every_address(&none, Some(&halves));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].at, "plugins.x.net.allow[0]");
        assert!(
            found[0]
                .message
                .contains("together reach every IPv4 address over http (port *)"),
            "{}",
            found[0].message
        );
        assert!(
            found[0]
                .message
                .contains("`plugins.x.net.allow[2]` = `http://128.0.0.0/1:*`")
        );
    }

    #[test]
    fn a_union_on_no_common_port_or_scheme_is_no_warning() {
        let none = rules("defaults", &[]);
        for allow in [
            ["http://0.0.0.0/1:80", "http://128.0.0.0/1:81"],
            ["http://0.0.0.0/1:*", "https://128.0.0.0/1:*"],
            ["http://0.0.0.0/1:*", "http://128.0.0.0/2:*"],
        ] {
            let found = every_address(&none, Some(&rules("plugins.x", &allow)));
            assert!(found.is_empty(), "{allow:?}: {found:?}");
        }
        // Port ranges that meet are a common port.
        let found = every_address(
            &none,
            Some(&rules(
                "plugins.x",
                &["http://0.0.0.0/1:1..100", "http://128.0.0.0/1:50..200"],
            )),
        );
        assert!(found[0].message.contains("port 50..100"), "{found:?}");
    }

    #[test]
    fn defaults_and_a_table_add_up_and_the_table_is_named() {
        let defaults = rules("defaults", &["http://[::/1]:*"]);
        assert!(every_address(&defaults, None).is_empty());
        let own = rules("plugins.x", &["http://[8000::/1]:*"]);
        let found = every_address(&defaults, Some(&own));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].at, "plugins.x.net.allow[0]");
        assert!(found[0].message.contains("every IPv6 address"));
        // Every address in `[defaults]` alone: the warning is the defaults', once.
        let broad = rules("defaults", &["http://0.0.0.0/0:*"]);
        assert_eq!(every_address(&broad, None).len(), 1);
        assert!(every_address(&broad, Some(&own)).is_empty());
        assert!(
            every_address(&broad, None)[0]
                .message
                .contains("reaches every address")
        );
    }
}
