//! The per-request checks: is this URL, and then this address, one the plugin may
//! reach (`POLICY.md` rule 7)?
//!
//! [`NetAccess`] is built from the decisions alone (the declarations that were
//! granted, and the policy's `net.allow`/`net.deny` entries that applied to the
//! plugin). A request passes [`NetAccess::check_url`] (parsed by the WHATWG URL parser,
//! so every numeric spelling of an address is an address; scheme, host and port under
//! a granted declaration and an allow entry; no deny entry naming the host), then,
//! once its name is resolved, [`NetAccess::check_addresses`] (every address outside
//! the deny ranges and globally routable, unless an allow entry names it literally;
//! or loopback, for `localhost` and the names under it when an allow entry names
//! them, which warden never looks up: RFC 6761).
//!
//! # Security
//!
//! This is the boundary between a plugin's URL (hostile input) and the host's
//! network. The name is resolved once, by warden; the client is handed only the
//! addresses checked here (`net::client`), so a DNS answer that changes between
//! the check and the connection (rebinding) reaches nothing.

use super::address::{canonical, non_global};
use super::client::Tls;
use super::pattern::{Endpoint, HostPattern, Ports, Scheme};
use crate::policy::Entry;
use std::net::{IpAddr, SocketAddr};

/// Rule of a URL that does not parse, or names a user.
pub const RULE_URL: &str = "builtin.net.url";
/// Rule of a scheme other than `http` and `https`.
pub const RULE_SCHEME: &str = "builtin.net.scheme";
/// Rule of a request outside every declaration the plugin was granted.
pub const RULE_UNDECLARED: &str = "builtin.net.undeclared";
/// Rule of an address that is not globally routable.
pub const RULE_NON_GLOBAL: &str = "builtin.net.non_global";

/// A declaration the plugin was granted (or, in audit mode, would have been denied).
#[derive(Debug, Clone)]
pub struct NetGrant {
    /// The declared endpoint.
    pub endpoint: Endpoint,
    /// The allow entry that granted it (`None` in audit mode: `would_deny`).
    pub rule: String,
}

/// Everything the per-request checks need, built from one plugin's decisions.
#[derive(Debug, Clone, Default)]
pub struct NetAccess {
    /// Declarations the plugin may use.
    pub granted: Vec<NetGrant>,
    /// Declarations that were denied, with the rule that denied each: a request under
    /// one of them is refused with that rule.
    pub denied: Vec<(Endpoint, String)>,
    /// The allow entries that apply to the plugin (its own, then `[defaults]`).
    pub allow: Vec<Entry<Endpoint>>,
    /// The deny entries that apply to the plugin.
    pub deny: Vec<Entry<HostPattern>>,
    /// TLS settings: the system's roots plus the policy's `net.tls_roots`.
    pub tls: Tls,
    /// Whether records keep a URL's query and fragment (`[audit] log_args`).
    pub log_query: bool,
    /// The key that set `max_requests` (the rule of a request past it).
    pub max_requests_rule: String,
    /// The plugin's table (`plugins.NAME`), where a refusal's hint says to add an
    /// allow entry.
    pub table: String,
}

/// A request refused by a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The rule that refused it.
    pub rule: String,
    /// Why, in words for the plugin and the record.
    pub reason: String,
}

impl Refused {
    fn new(rule: impl Into<String>, reason: impl Into<String>) -> Refused {
        Refused {
            rule: rule.into(),
            reason: reason.into(),
        }
    }
}

/// A URL that passed [`NetAccess::check_url`].
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL, normalized.
    pub url: url::Url,
    /// Its scheme.
    pub scheme: Scheme,
    /// Its host: a name or an address.
    pub host: HostPattern,
    /// Its port (the scheme's default when the URL names none).
    pub port: u16,
    /// The rule that lets it through (the allow entry, or the declaration's rule).
    pub rule: String,
}

impl Target {
    /// The host as resolvers take it (no brackets), and as records show it.
    pub fn host_name(&self) -> String {
        match &self.host {
            HostPattern::Name(n) => n.clone(),
            HostPattern::Ip(ip) => ip.to_string(),
            other => other.to_string(),
        }
    }

    /// The address, when the URL names one and needs no lookup.
    pub fn literal(&self) -> Option<IpAddr> {
        match self.host {
            HostPattern::Ip(ip) => Some(ip),
            _ => None,
        }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            scheme: self.scheme,
            host: self.host.clone(),
            ports: Ports::one(self.port),
            default_port: false,
        }
    }
}

/// A URL as a record shows it, normalized (WHATWG, trailing dot of the host dropped):
/// scheme, host, port and path; the query and fragment only when `with_query`. `None`
/// when `raw` is not a URL with a host.
pub fn record_url(raw: &str, with_query: bool) -> Option<String> {
    let url = url::Url::parse(raw).ok()?;
    let host = match url.host()? {
        url::Host::Domain(d) => d.strip_suffix('.').unwrap_or(d).to_owned(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => format!("[{ip}]"),
    };
    let mut shown = format!(
        "{}://{host}:{}{}",
        url.scheme(),
        url.port_or_known_default().unwrap_or(0),
        url.path()
    );
    if with_query {
        if let Some(q) = url.query() {
            shown.push('?');
            shown.push_str(q);
        }
        if let Some(f) = url.fragment() {
            shown.push('#');
            shown.push_str(f);
        }
    }
    Some(shown)
}

impl NetAccess {
    /// Whether the plugin may use the network at all.
    pub fn is_empty(&self) -> bool {
        self.granted.is_empty()
    }

    /// Parses `raw` as a browser would and checks its scheme, host and port.
    ///
    /// # Errors
    ///
    /// [`Refused`] with the rule: a URL that does not parse or names a user
    /// ([`RULE_URL`]), a scheme other than http(s) ([`RULE_SCHEME`]), a host a deny
    /// entry names (that entry), a request under a denied declaration (its rule) or
    /// under none ([`RULE_UNDECLARED`]).
    pub fn check_url(&self, raw: &str) -> Result<Target, Refused> {
        let url =
            url::Url::parse(raw).map_err(|e| Refused::new(RULE_URL, format!("not a URL ({e})")))?;
        let scheme = Scheme::parse(url.scheme()).ok_or_else(|| {
            Refused::new(
                RULE_SCHEME,
                format!(
                    "scheme `{}`: warden performs http and https requests only",
                    url.scheme()
                ),
            )
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused::new(
                RULE_URL,
                "the URL carries a user name or password; send credentials in a header",
            ));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => {
                HostPattern::Name(d.strip_suffix('.').unwrap_or(d).to_owned())
            }
            Some(url::Host::Ipv4(ip)) => HostPattern::Ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => HostPattern::Ip(IpAddr::V6(ip)),
            None => return Err(Refused::new(RULE_URL, "the URL has no host")),
        };
        let port = url.port_or_known_default().unwrap_or(scheme.default_port());
        let mut target = Target {
            url,
            scheme,
            host,
            port,
            rule: String::new(),
        };
        if let Some(deny) = self.deny.iter().find(|d| d.value.covers(&target.host)) {
            return Err(Refused::new(
                &deny.key,
                format!("`{}` is denied by `{}`", target.host, deny.value),
            ));
        }
        let wanted = target.endpoint();
        let Some(grant) = self.granted.iter().find(|g| g.endpoint.covers(&wanted)) else {
            if let Some((declared, rule)) = self.denied.iter().find(|(e, _)| e.covers(&wanted)) {
                return Err(Refused::new(
                    rule,
                    format!("`{declared}` was declared but not granted"),
                ));
            }
            return Err(Refused::new(
                RULE_UNDECLARED,
                format!(
                    "`{}://{}:{port}` is outside every granted declaration{}",
                    scheme.as_str(),
                    target.host,
                    self.granted_list()
                ),
            ));
        };
        target.rule = self
            .allow
            .iter()
            .find(|a| a.value.covers(&wanted))
            .map_or_else(|| grant.rule.clone(), |a| a.key.clone());
        Ok(target)
    }

    fn granted_list(&self) -> String {
        if self.granted.is_empty() {
            return " (the plugin was granted none)".into();
        }
        let list: Vec<String> = self
            .granted
            .iter()
            .map(|g| g.endpoint.to_string())
            .collect();
        format!(" ({})", list.join(", "))
    }

    /// Checks every address `target`'s host resolved to: none may be in a deny range,
    /// and none may be non-global unless an allow entry names it, or a range holding
    /// it, literally (for this scheme and port). The one exception is a loopback name
    /// (`localhost`, a name under it): its loopback addresses pass when an allow entry
    /// names it by name; any other address of such a name is refused.
    ///
    /// # Errors
    ///
    /// [`Refused`] with the deny entry, or [`RULE_NON_GLOBAL`].
    pub fn check_addresses(&self, target: &Target, addrs: &[SocketAddr]) -> Result<(), Refused> {
        let loopback_name = target.host.is_loopback_name();
        let wanted = target.endpoint();
        for addr in addrs {
            let ip = addr.ip();
            let as_host = HostPattern::Ip(ip);
            if let Some(deny) = self.deny.iter().find(|d| d.value.covers(&as_host)) {
                return Err(Refused::new(
                    &deny.key,
                    format!("`{}` resolves to {ip}, in `{}`", target.host, deny.value),
                ));
            }
            if loopback_name && !canonical(ip).is_loopback() {
                return Err(Refused::new(
                    RULE_NON_GLOBAL,
                    format!(
                        "`{}` is a loopback name, which stands for loopback and nothing else, but it came to {ip}",
                        target.host
                    ),
                ));
            }
            let Some(range) = non_global(ip) else {
                continue;
            };
            let literal = Endpoint {
                host: HostPattern::Ip(canonical(ip)),
                ..wanted.clone()
            };
            let named = self.allow.iter().any(|a| {
                matches!(a.value.host, HostPattern::Ip(_) | HostPattern::Range(_))
                    && a.value.covers(&literal)
            });
            // `localhost` named by name is loopback (RFC 6761): the allow entry says
            // so as plainly as `127.0.0.1` would.
            let by_loopback_name =
                loopback_name && self.allow.iter().any(|a| a.value.covers(&wanted));
            if !named && !by_loopback_name {
                return Err(Refused::new(
                    RULE_NON_GLOBAL,
                    self.non_global_reason(target, ip, range, &literal),
                ));
            }
        }
        Ok(())
    }

    /// Why a non-global address is refused, with the allow entry that would let the
    /// request through: the loopback name itself, else the address (literally, as
    /// warden requires for a non-global address), in the plugin's own table.
    fn non_global_reason(
        &self,
        target: &Target,
        ip: IpAddr,
        range: &str,
        literal: &Endpoint,
    ) -> String {
        let entry = if target.host.is_loopback_name() {
            target.endpoint().to_string()
        } else {
            literal.to_string()
        };
        let came = match &target.host {
            HostPattern::Ip(_) => String::new(),
            name => format!(" (the name `{name}` resolved to it)"),
        };
        format!(
            "{ip} is a {range} address{came}, which warden reaches only when an allow entry names it: add `\"{entry}\"` to `net.allow` of `[{}]` if the plugin is meant to reach it",
            self.table
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<T>(key: &str, value: T) -> Entry<T> {
        Entry {
            key: key.into(),
            value,
        }
    }

    fn access(declared: &[&str], allow: &[&str], deny: &[&str]) -> NetAccess {
        NetAccess {
            granted: declared
                .iter()
                .map(|d| NetGrant {
                    endpoint: Endpoint::parse_allow(d).unwrap(),
                    rule: "test".into(),
                })
                .collect(),
            denied: vec![],
            allow: allow
                .iter()
                .enumerate()
                .map(|(i, a)| entry(&format!("allow[{i}]"), Endpoint::parse_allow(a).unwrap()))
                .collect(),
            deny: deny
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    entry(
                        &format!("deny[{i}]"),
                        super::super::pattern::parse_deny(d).unwrap(),
                    )
                })
                .collect(),
            tls: Tls::default(),
            log_query: false,
            max_requests_rule: "defaults.net.max_requests".into(),
            table: "plugins.p".into(),
        }
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn numeric_spellings_are_addresses_before_any_check() {
        let net = access(&["http://127.0.0.1:8000"], &["http://127.0.0.1:8000"], &[]);
        for url in [
            "http://2130706433:8000/",
            "http://0x7f.1:8000/",
            "http://0177.0.0.1:8000/x",
            "HTTP://127.0.0.1:8000",
        ] {
            let t = net.check_url(url).unwrap();
            assert_eq!(t.literal(), Some("127.0.0.1".parse().unwrap()), "{url}");
        }
        // The IPv4-mapped spelling is the same address, allowed literally.
        let t = net.check_url("http://[::ffff:127.0.0.1]:8000/").unwrap();
        assert!(
            net.check_addresses(&t, &[addr("[::ffff:127.0.0.1]:8000")])
                .is_ok()
        );
        let e = net
            .check_url("http://[::ffff:127.0.0.2]:8000/")
            .unwrap_err();
        assert_eq!(e.rule, RULE_UNDECLARED);
    }

    #[test]
    fn a_name_allowed_by_name_never_reaches_loopback() {
        let net = access(
            &["http://intranet.example:8000"],
            &["http://intranet.example:8000"],
            &[],
        );
        let t = net.check_url("HTTP://INTRANET.EXAMPLE.:8000/").unwrap();
        assert_eq!(t.host_name(), "intranet.example");
        let e = net
            .check_addresses(&t, &[addr("127.0.0.1:8000")])
            .unwrap_err();
        assert_eq!(e.rule, RULE_NON_GLOBAL);
        // The hint is the allow entry that works: the address, literally.
        assert!(
            e.reason
                .contains("add `\"http://127.0.0.1:8000\"` to `net.allow` of `[plugins.p]`"),
            "{}",
            e.reason
        );
        let e = net
            .check_addresses(&t, &[addr("[::ffff:10.0.0.1]:8000")])
            .unwrap_err();
        assert_eq!(e.rule, RULE_NON_GLOBAL);
        assert!(net.check_addresses(&t, &[addr("8.8.8.8:8000")]).is_ok());
    }

    /// `localhost` and the names under it, allowed by name, reach loopback and
    /// nothing else; another port, or no allow entry, still reach nothing.
    #[test]
    fn localhost_allowed_by_name_is_loopback_and_nothing_else() {
        let net = access(
            &["http://localhost:*", "http://*.localhost:*"],
            &["http://localhost:8000", "http://*.localhost:8000"],
            &[],
        );
        for url in ["http://LOCALHOST.:8000/", "http://api.localhost:8000/"] {
            let t = net.check_url(url).unwrap();
            let loopback = crate::net::address::loopback_addresses(8000);
            assert!(net.check_addresses(&t, &loopback).is_ok(), "{url}");
            for other in ["10.0.0.1:8000", "8.8.8.8:8000", "[fd00::1]:8000"] {
                let e = net.check_addresses(&t, &[addr(other)]).unwrap_err();
                assert_eq!(e.rule, RULE_NON_GLOBAL, "{url} {other}");
            }
        }
        // A port no allow entry names: loopback stays out of reach.
        let t = net.check_url("http://localhost:8001/").unwrap();
        let e = net
            .check_addresses(&t, &crate::net::address::loopback_addresses(8001))
            .unwrap_err();
        assert_eq!(e.rule, RULE_NON_GLOBAL);
        // In audit mode a declaration may be in effect with no allow entry: loopback
        // stays out of reach, and the hint names the entry that works.
        let mut audit = access(&["http://localhost:*"], &[], &[]);
        audit.granted[0].rule = crate::grant::NO_RULE.into();
        let t = audit.check_url("http://localhost:8000/").unwrap();
        let e = audit
            .check_addresses(&t, &[addr("127.0.0.1:8000")])
            .unwrap_err();
        assert_eq!(e.rule, RULE_NON_GLOBAL);
        assert!(
            e.reason
                .contains("add `\"http://localhost:8000\"` to `net.allow` of `[plugins.p]`"),
            "{}",
            e.reason
        );
        // A deny range still wins over the name.
        let denied = access(
            &["http://localhost:*"],
            &["http://localhost:*"],
            &["127.0.0.0/8"],
        );
        let t = denied.check_url("http://localhost:8000/").unwrap();
        let e = denied
            .check_addresses(&t, &crate::net::address::loopback_addresses(8000))
            .unwrap_err();
        assert_eq!(e.rule, "deny[0]");
    }

    #[test]
    fn deny_entries_win_by_name_and_by_range() {
        let net = access(
            &["https://*.example.com"],
            &["https://*.example.com"],
            &["*.corp.example.com", "8.8.0.0/16"],
        );
        assert_eq!(
            net.check_url("https://a.corp.example.com/")
                .unwrap_err()
                .rule,
            "deny[0]"
        );
        let t = net.check_url("https://api.example.com/").unwrap();
        assert_eq!(t.rule, "allow[0]");
        let e = net
            .check_addresses(&t, &[addr("1.1.1.1:443"), addr("8.8.4.4:443")])
            .unwrap_err();
        assert_eq!(e.rule, "deny[1]");
    }

    #[test]
    fn urls_outside_declarations_schemes_and_users_are_refused() {
        let net = access(
            &["https://api.example.com"],
            &["https://api.example.com"],
            &[],
        );
        assert_eq!(
            net.check_url("https://other.example.com/")
                .unwrap_err()
                .rule,
            RULE_UNDECLARED
        );
        assert_eq!(
            net.check_url("https://api.example.com:444/")
                .unwrap_err()
                .rule,
            RULE_UNDECLARED
        );
        assert_eq!(
            net.check_url("http://api.example.com/").unwrap_err().rule,
            RULE_UNDECLARED
        );
        assert_eq!(
            net.check_url("file:///etc/passwd").unwrap_err().rule,
            RULE_SCHEME
        );
        assert_eq!(
            net.check_url("https://u:p@api.example.com/")
                .unwrap_err()
                .rule,
            RULE_URL
        );
        assert_eq!(net.check_url("not a url").unwrap_err().rule, RULE_URL);
        assert_eq!(
            record_url("https://API.example.com./a?token=x#f", false).unwrap(),
            "https://api.example.com:443/a"
        );
    }
}
