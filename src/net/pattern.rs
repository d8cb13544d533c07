//! The network patterns of policies and manifests: `scheme://host[:port]` allow
//! entries, deny entries, and declared endpoints (`POLICY.md` rule 7).
//!
//! Host names are normalized exactly as request URLs are (the WHATWG host parser of
//! the `url` crate: lower case, IDNA to ASCII, numeric IPv4 spellings to dotted
//! quads, a trailing dot dropped), so a pattern and a request are always compared in
//! the same form. An IPv4 address carried in an IPv6 form is compared as that IPv4
//! address ([`super::address::canonical`]).

use super::address::canonical;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// A URL scheme warden performs requests for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The scheme's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port a URL of this scheme uses when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `http` or `https` (case-insensitive), else `None`.
    pub fn parse(text: &str) -> Option<Scheme> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

/// Why a network entry (`net.allow`, `net.deny`) or a declared host does not parse.
/// Each message names the text and says what to write instead; a policy error puts the
/// entry's key before it (`` `net.allow[0]`: ... ``).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The host is empty.
    #[error("has no host")]
    NoHost,
    /// A CIDR range where only a host may be.
    #[error("`{text}` is a range, but only a host is allowed here")]
    RangeNotAllowed {
        /// The entry.
        text: String,
    },
    /// Something with a `/` that is not a CIDR range.
    #[error("`{text}` is not a CIDR range like `10.0.0.0/8`")]
    NotRange {
        /// The entry.
        text: String,
    },
    /// A range with host bits set (`10.0.0.1/8`).
    #[error("`{text}` has bits set past its prefix length; write `{network}`")]
    RangeHostBits {
        /// The entry.
        text: String,
        /// The range it should be written as.
        network: IpNet,
    },
    /// `*.` before an address.
    #[error("`{text}`: `*.` goes before a DNS name, not an address")]
    WildcardAddress {
        /// The entry.
        text: String,
    },
    /// A `*` that is not a leading `*.`.
    #[error(
        "`{text}` has a `*` that is not a leading `*.`; write `*.example.com` for every subdomain"
    )]
    Wildcard {
        /// The entry.
        text: String,
    },
    /// A name with an empty label (`a..b`, `.a`).
    #[error("`{text}` is not a host name (it has an empty label)")]
    EmptyLabel {
        /// The host.
        text: String,
    },
    /// A name with a character no DNS name holds (after percent-decoding).
    #[error(
        "`{text}` is not a host name: `{}` is not a letter, digit, `-`, `_` or `.`",
        .character.escape_default()
    )]
    HostCharacter {
        /// The host.
        text: String,
        /// The first such character.
        character: char,
    },
    /// Neither a host name nor an address, as the WHATWG host parser says.
    #[error("`{text}` is not a host name or address ({reason})")]
    NotHost {
        /// The host.
        text: String,
        /// The parser's words.
        reason: String,
    },
    /// A port that is not a number from 1 to 65535.
    #[error("`{text}` is not a port (1 to 65535)")]
    NotPort {
        /// The port as written.
        text: String,
    },
    /// A port range whose low end is above its high end.
    #[error("the port range `{text}` is upside down; write `{high}..{low}`")]
    PortsUpsideDown {
        /// The range as written.
        text: String,
        /// Its first number.
        low: u16,
        /// Its second number.
        high: u16,
    },
    /// An allow entry without `scheme://`.
    #[error("`{text}` has no scheme; write it as `https://{text}` or `http://{text}`")]
    NoScheme {
        /// The entry.
        text: String,
    },
    /// A scheme other than `http` and `https`.
    #[error("`{scheme}` is not a scheme warden performs requests for; use `http` or `https`")]
    UnknownScheme {
        /// The scheme as written.
        scheme: String,
    },
    /// An allow entry with `user@`.
    #[error("`{text}` names a user; allow entries are `scheme://host[:port]`")]
    User {
        /// The entry.
        text: String,
    },
    /// An allow entry with a path.
    #[error("`{text}` has a path; allow entries are `scheme://host[:port]`, nothing after")]
    Path {
        /// The entry.
        text: String,
    },
    /// `[` without `]`.
    #[error("`{text}` opens `[` but never closes it")]
    UnclosedBracket {
        /// The host and port.
        text: String,
    },
    /// Something after `[address]` that is not `:port`.
    #[error("`{after}` after `{host}` is not `:port`")]
    AfterAddress {
        /// The bracketed address.
        host: String,
        /// What follows it.
        after: String,
    },
    /// An IPv6 address outside brackets, where a port may follow.
    #[error("`{text}`: write an IPv6 address in brackets, like `[2001:db8::1]:443`")]
    UnbracketedIpv6 {
        /// The host and port.
        text: String,
    },
    /// A deny entry with a scheme.
    #[error(
        "`{text}` has a scheme; deny entries are hosts (`*.corp.example`) and ranges (`10.0.0.0/8`), denied on every scheme and port: write `{host}`"
    )]
    DenyScheme {
        /// The entry.
        text: String,
        /// The entry without its scheme.
        host: String,
    },
}

/// The host part of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this DNS name (normalized, no trailing dot).
    Name(String),
    /// `*.name`: any name under `name` (not `name` itself).
    Subdomains(String),
    /// Exactly this address.
    Ip(IpAddr),
    /// Any address in this range.
    Range(IpNet),
}

impl HostPattern {
    /// Parses a host, `*.name`, an IP literal (IPv6 in brackets or not) or, when
    /// `ranges` is true, a CIDR range.
    ///
    /// # Errors
    ///
    /// A [`PatternError`] saying what is wrong with `text`, for a policy error or a
    /// denial.
    pub fn parse(text: &str, ranges: bool) -> Result<HostPattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::NoHost);
        }
        if text.contains('/') {
            if !ranges {
                return Err(PatternError::RangeNotAllowed { text: text.into() });
            }
            let bare = text.trim_start_matches('[').replacen(']', "", 1);
            let net: IpNet = bare
                .parse()
                .map_err(|_| PatternError::NotRange { text: text.into() })?;
            if net.trunc() != net {
                return Err(PatternError::RangeHostBits {
                    text: text.into(),
                    network: net.trunc(),
                });
            }
            return Ok(HostPattern::Range(net));
        }
        if let Some(rest) = text.strip_prefix("*.") {
            return match parse_host(rest)? {
                HostPattern::Name(name) => Ok(HostPattern::Subdomains(name)),
                _ => Err(PatternError::WildcardAddress { text: text.into() }),
            };
        }
        if text.contains('*') {
            return Err(PatternError::Wildcard { text: text.into() });
        }
        parse_host(text)
    }

    /// Whether every host this pattern's `other` stands for is one this pattern
    /// stands for.
    pub fn covers(&self, other: &HostPattern) -> bool {
        use HostPattern::*;
        match (self, other) {
            (Name(a), Name(b)) => a == b,
            (Subdomains(a), Name(b)) => is_under(b, a),
            (Subdomains(a), Subdomains(b)) => a == b || is_under(b, a),
            (Ip(a), Ip(b)) => canonical(*a) == canonical(*b),
            (Range(n), Ip(b)) => n.contains(b) || n.contains(&canonical(*b)),
            (Range(n), Range(m)) => n.contains(m),
            _ => false,
        }
    }

    /// Whether some host stands for both patterns.
    pub fn overlaps(&self, other: &HostPattern) -> bool {
        self.covers(other) || other.covers(self)
    }

    /// Whether this pattern is `localhost`, a name under it, or `*.localhost`: names
    /// that stand for loopback and nothing else
    /// ([`super::address::is_loopback_name`]).
    pub fn is_loopback_name(&self) -> bool {
        match self {
            HostPattern::Name(n) => super::address::is_loopback_name(n),
            HostPattern::Subdomains(n) => n == "localhost" || super::address::is_loopback_name(n),
            HostPattern::Ip(_) | HostPattern::Range(_) => false,
        }
    }

    /// Whether this pattern names `ip` or a range holding it literally.
    pub fn names_address(&self, ip: IpAddr) -> bool {
        self.covers(&HostPattern::Ip(ip))
    }

    /// The hosts both patterns stand for, or `None` when they share none. Host
    /// patterns nest (a name, the subdomains of a name, an address, a CIDR range):
    /// two that overlap have the narrower one as their intersection.
    pub fn intersect(&self, other: &HostPattern) -> Option<HostPattern> {
        if self.covers(other) {
            Some(other.clone())
        } else if other.covers(self) {
            Some(self.clone())
        } else {
            None
        }
    }
}

/// Whether `name` is a subdomain of `parent`.
fn is_under(name: &str, parent: &str) -> bool {
    name.len() > parent.len() + 1
        && name.ends_with(parent)
        && name.as_bytes()[name.len() - parent.len() - 1] == b'.'
}

/// One host through the WHATWG host parser.
fn parse_host(text: &str) -> Result<HostPattern, PatternError> {
    let bracketed;
    let input = if text.contains(':') && !text.starts_with('[') {
        bracketed = format!("[{text}]");
        bracketed.as_str()
    } else {
        text
    };
    match url::Host::parse(input) {
        Ok(url::Host::Domain(d)) => {
            let name = d.strip_suffix('.').unwrap_or(&d);
            if name.is_empty()
                || name.contains("..")
                || name.starts_with('.')
                || name.ends_with('.')
            {
                Err(PatternError::EmptyLabel { text: text.into() })
            } else if let Some(character) = name
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            {
                // What the WHATWG parser lets through but no DNS name holds (`*` from
                // `%2a`, `%` from `%25`): refused, so an entry means what it shows.
                Err(PatternError::HostCharacter {
                    text: text.into(),
                    character,
                })
            } else {
                Ok(HostPattern::Name(name.to_owned()))
            }
        }
        Ok(url::Host::Ipv4(ip)) => Ok(HostPattern::Ip(IpAddr::V4(ip))),
        Ok(url::Host::Ipv6(ip)) => Ok(HostPattern::Ip(IpAddr::V6(ip))),
        Err(e) => Err(PatternError::NotHost {
            text: text.into(),
            reason: e.to_string(),
        }),
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Name(n) => f.write_str(n),
            HostPattern::Subdomains(n) => write!(f, "*.{n}"),
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            HostPattern::Ip(ip) => write!(f, "{ip}"),
            HostPattern::Range(IpNet::V6(net)) => write!(f, "[{net}]"),
            HostPattern::Range(net) => write!(f, "{net}"),
        }
    }
}

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Lowest port.
    pub low: u16,
    /// Highest port.
    pub high: u16,
}

impl Ports {
    /// Every port, 1 to 65535 (`*`).
    pub const ALL: Ports = Ports {
        low: 1,
        high: u16::MAX,
    };

    /// Exactly `port`.
    pub fn one(port: u16) -> Ports {
        Ports {
            low: port,
            high: port,
        }
    }

    /// Whether `port` is in the range.
    pub fn contains(self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }

    /// Whether every port of `other` is in the range.
    pub fn covers(self, other: Ports) -> bool {
        self.low <= other.low && other.high <= self.high
    }

    /// The ports in both ranges, or `None` when they share none.
    pub fn intersect(self, other: Ports) -> Option<Ports> {
        let low = self.low.max(other.low);
        let high = self.high.min(other.high);
        (low <= high).then_some(Ports { low, high })
    }

    fn parse(text: &str) -> Result<Ports, PatternError> {
        let number = |t: &str| {
            t.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| PatternError::NotPort { text: t.into() })
        };
        if text == "*" {
            return Ok(Ports::ALL);
        }
        if let Some((a, b)) = text.split_once("..") {
            let (low, high) = (number(a)?, number(b)?);
            if low > high {
                return Err(PatternError::PortsUpsideDown {
                    text: text.into(),
                    low,
                    high,
                });
            }
            return Ok(Ports { low, high });
        }
        number(text).map(Ports::one)
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else if self.low == 1 && self.high == u16::MAX {
            f.write_str("*")
        } else {
            write!(f, "{}..{}", self.low, self.high)
        }
    }
}

/// `scheme://host[:port]`: an allow entry, or a declared endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The scheme.
    pub scheme: Scheme,
    /// The host, `*.name`, address or (allow entries only) range.
    pub host: HostPattern,
    /// The ports.
    pub ports: Ports,
    /// Whether no port was written (the scheme's default port is meant).
    pub default_port: bool,
}

impl Endpoint {
    /// Parses an allow entry `scheme://host[:port]`: `port` is a number, `*` or
    /// `a..b`; `host` is a name, `*.name`, an address or a CIDR range.
    ///
    /// # Errors
    ///
    /// A [`PatternError`] saying what is wrong, for a policy error.
    pub fn parse_allow(text: &str) -> Result<Endpoint, PatternError> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| PatternError::NoScheme { text: text.into() })?;
        let scheme = Scheme::parse(scheme).ok_or_else(|| PatternError::UnknownScheme {
            scheme: scheme.into(),
        })?;
        if rest.contains('@') {
            return Err(PatternError::User { text: text.into() });
        }
        let (host, port) = split_port(rest)?;
        if host.contains('/') && (host.starts_with('[') || !host.contains(':')) {
            // A range; anything after it that is not a prefix length is a path.
            let (_, len) = host.rsplit_once('/').unwrap_or(("", ""));
            let len = len.trim_end_matches(']');
            if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PatternError::Path { text: text.into() });
            }
        }
        let host = HostPattern::parse(host, true)?;
        let (ports, default_port) = match port {
            None => (Ports::one(scheme.default_port()), true),
            Some(p) => (Ports::parse(p)?, false),
        };
        Ok(Endpoint {
            scheme,
            host,
            ports,
            default_port,
        })
    }

    /// Whether every request this endpoint's `other` stands for is one this one
    /// stands for.
    pub fn covers(&self, other: &Endpoint) -> bool {
        self.scheme == other.scheme
            && self.host.covers(&other.host)
            && self.ports.covers(other.ports)
    }

    /// The requests both endpoints stand for (same scheme, the narrower host, the
    /// common ports), or `None` when they share none. Always shown with its port.
    pub fn intersect(&self, other: &Endpoint) -> Option<Endpoint> {
        if self.scheme != other.scheme {
            return None;
        }
        Some(Endpoint {
            scheme: self.scheme,
            host: self.host.intersect(&other.host)?,
            ports: self.ports.intersect(other.ports)?,
            default_port: false,
        })
    }

    /// A declared `NetPattern` read as `POLICY.md` rule 7 reads it, with the SDK's
    /// meaning: no port is **any** port (sen-plugin-api: "None = any port").
    ///
    /// # Errors
    ///
    /// Why it is no endpoint warden performs requests for: `tcp` (no raw sockets), a
    /// host that does not parse, or a range where a host belongs.
    pub fn declared(n: &crate::abi::NetPattern) -> Result<Endpoint, DeclaredError> {
        let scheme = match n.protocol {
            crate::abi::NetProtocol::Https => Scheme::Https,
            crate::abi::NetProtocol::Http => Scheme::Http,
            crate::abi::NetProtocol::Tcp => return Err(DeclaredError::Tcp),
        };
        let host = match HostPattern::parse(&n.host, true) {
            Ok(HostPattern::Range(_)) => return Err(DeclaredError::Range),
            Ok(host) => host,
            Err(problem) => return Err(DeclaredError::Host(problem)),
        };
        let ports = match n.port {
            Some(0) => return Err(DeclaredError::PortZero),
            Some(port) => Ports::one(port),
            None => Ports::ALL,
        };
        Ok(Endpoint {
            scheme,
            host,
            ports,
            default_port: false,
        })
    }
}

/// Why a declared `NetPattern` is no endpoint warden performs requests for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclaredError {
    /// `tcp`: warden offers no raw sockets.
    Tcp,
    /// The host is a CIDR range.
    Range,
    /// Port 0, which no request can use.
    PortZero,
    /// The host does not parse.
    Host(PatternError),
}

/// Splits `host[:port]` (with `[v6]` hosts); the host keeps its brackets.
fn split_port(rest: &str) -> Result<(&str, Option<&str>), PatternError> {
    if rest.starts_with('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| PatternError::UnclosedBracket { text: rest.into() })?;
        let (host, after) = rest.split_at(close + 1);
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(PatternError::AfterAddress {
                    host: host.into(),
                    after: after.into(),
                }),
            },
        };
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Ok((host, Some(port))),
        Some(_) => Err(PatternError::UnbracketedIpv6 { text: rest.into() }),
        None => Ok((rest, None)),
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if !self.default_port {
            write!(f, ":{}", self.ports)?;
        }
        Ok(())
    }
}

/// A declared endpoint as `inspect`, `explain` and the records show it, in the form
/// an allow entry would take: `http://host:8080`, `https://api.example.com:*` (no
/// port declared: any port), `tcp://host:22`; a host that does not parse is shown as
/// declared.
pub fn declared_url(n: &crate::abi::NetPattern) -> String {
    if let Ok(endpoint) = Endpoint::declared(n) {
        return endpoint.to_string();
    }
    let scheme = match n.protocol {
        crate::abi::NetProtocol::Https => "https",
        crate::abi::NetProtocol::Http => "http",
        crate::abi::NetProtocol::Tcp => "tcp",
    };
    let port = n.port.map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{}{port}", n.host)
}

/// Parses a deny entry: a host, `*.name`, an address or a CIDR range (no scheme, no
/// port: a denied destination is denied on every port).
///
/// # Errors
///
/// A [`PatternError`] saying what is wrong, for a policy error.
pub fn parse_deny(text: &str) -> Result<HostPattern, PatternError> {
    if let Some((_, rest)) = text.split_once("://") {
        return Err(PatternError::DenyScheme {
            text: text.into(),
            host: rest.trim_end_matches('/').into(),
        });
    }
    HostPattern::parse(text, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(text: &str) -> Endpoint {
        Endpoint::parse_allow(text).unwrap()
    }

    #[test]
    fn allow_entries_parse_and_display_in_one_form() {
        for (text, shown) in [
            ("https://api.example.com", "https://api.example.com"),
            ("HTTPS://API.Example.COM.", "https://api.example.com"),
            (
                "https://*.tiles.example:8443",
                "https://*.tiles.example:8443",
            ),
            ("http://127.0.0.1:8000..8100", "http://127.0.0.1:8000..8100"),
            ("http://10.0.0.0/8:*", "http://10.0.0.0/8:*"),
            ("http://[::1]:80", "http://[::1]:80"),
            ("http://[fd00::/8]", "http://[fd00::/8]"),
            ("http://2130706433", "http://127.0.0.1"),
        ] {
            assert_eq!(allow(text).to_string(), shown, "{text}");
        }
    }

    #[test]
    fn bad_allow_entries_say_what_is_wrong() {
        for (text, says) in [
            ("api.example.com", "has no scheme"),
            ("ftp://x.example", "not a scheme"),
            ("https://x.example:9..1", "upside down"),
            ("https://10.0.0.1/8", "bits set"),
            ("https://10.0.0.0/33", "not a CIDR"),
            ("https://x.example/path", "has a path"),
            ("https://x.example:0", "not a port"),
            ("https://a*.example", "leading `*.`"),
            ("https://user@x.example", "names a user"),
        ] {
            let e = Endpoint::parse_allow(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn intersections_take_the_narrower_host_and_the_common_ports() {
        let meet = |a: &str, b: &str| allow(a).intersect(&allow(b)).map(|e| e.to_string());
        assert_eq!(
            meet("http://127.0.0.1:*", "http://127.0.0.1:8000").as_deref(),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(
            meet(
                "http://127.0.0.1:8000..9000",
                "http://127.0.0.0/8:8500..9500"
            )
            .as_deref(),
            Some("http://127.0.0.1:8500..9000")
        );
        assert_eq!(
            meet("https://*.example.com", "https://api.example.com:*").as_deref(),
            Some("https://api.example.com:443")
        );
        assert_eq!(meet("http://127.0.0.1:80", "http://127.0.0.1:81"), None);
        assert_eq!(meet("http://127.0.0.1", "https://127.0.0.1"), None);
        assert_eq!(meet("https://a.example", "https://b.example"), None);
        // Every intersection is covered by both sides.
        let (a, b) = (
            allow("http://10.0.0.0/8:1..100"),
            allow("http://10.1.0.0/16:50..65535"),
        );
        let both = a.intersect(&b).unwrap();
        assert!(a.covers(&both) && b.covers(&both));
    }

    #[test]
    fn a_declaration_without_a_port_is_any_port() {
        use crate::abi::{NetPattern, NetProtocol};
        let n = |host: &str, port, protocol| NetPattern {
            host: host.into(),
            port,
            protocol,
        };
        let any = Endpoint::declared(&n("127.0.0.1", None, NetProtocol::Http)).unwrap();
        assert_eq!(any.ports, Ports::ALL);
        assert_eq!(any.to_string(), "http://127.0.0.1:*");
        assert_eq!(
            declared_url(&n("API.example.com", Some(8443), NetProtocol::Https)),
            "https://api.example.com:8443"
        );
        assert_eq!(
            declared_url(&n("127.0.0.1", Some(22), NetProtocol::Tcp)),
            "tcp://127.0.0.1:22"
        );
        assert_eq!(
            Endpoint::declared(&n("10.0.0.0/8", None, NetProtocol::Http)),
            Err(DeclaredError::Range)
        );
        assert_eq!(
            Endpoint::declared(&n("x", Some(0), NetProtocol::Http)),
            Err(DeclaredError::PortZero)
        );
    }

    #[test]
    fn coverage_follows_names_ranges_and_ports() {
        let wild = allow("https://*.example.com:*");
        assert!(wild.covers(&allow("https://api.example.com:8443")));
        assert!(wild.covers(&allow("https://*.api.example.com")));
        assert!(!wild.covers(&allow("https://example.com")));
        assert!(!wild.covers(&allow("https://evilexample.com")));
        assert!(!wild.covers(&allow("http://api.example.com")));
        let range = allow("http://10.0.0.0/8:80");
        assert!(range.covers(&allow("http://10.1.2.3")));
        assert!(range.covers(&allow("http://[::ffff:10.1.2.3]")));
        assert!(!range.covers(&allow("http://10.1.2.3:81")));
        assert!(
            parse_deny("*.corp.example")
                .unwrap()
                .overlaps(&HostPattern::Name("a.corp.example".into()))
        );
        assert!(parse_deny("https://x.example").is_err());
    }
}
