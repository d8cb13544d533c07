//! `net_request`: a plugin's URL (and the addresses its name resolves to) through the
//! per-request checks of rule 7, against a fixed set of declarations and entries. Also
//! any text as an allow or deny entry, which must print back as what it parsed to.
//!
//! Input: the URL text, then optionally a NUL byte and 17-byte address records (a
//! flag byte: IPv4 or IPv6, and the address bytes) standing for what a resolver
//! answered.
//!
//! Invariants: nothing panics; a URL that passes is under a granted declaration and
//! an allow entry, its scheme is http or https, and no deny entry names its host; a
//! set of addresses that passes holds no address in a deny range and no non-global
//! address an allow entry does not name literally (for that scheme and port), except
//! loopback for a loopback name (`localhost`, `*.localhost`) an allow entry names, and
//! a loopback name's addresses are all loopback.

use crate::net::address::{canonical, non_global};
use crate::net::gate::{NetAccess, NetGrant, record_url};
use crate::net::pattern::{Endpoint, HostPattern, Ports, parse_deny};
use crate::policy::Entry;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The declarations as granted: each within an allow entry, as the intersection of a
/// declaration with the allow entries makes every grant (`grant::net`), so that a URL
/// a grant covers is one an allow entry covers.
const DECLARED: &[&str] = &[
    "https://api.example.com",
    "http://127.0.0.1:8000",
    "https://*.example.org:8443",
    "http://[::1]:9000",
    "http://10.0.0.0/8:*",
    "http://localhost:7000",
    "http://*.localhost:7000..7001",
];
const ALLOW: &[&str] = &[
    "https://api.example.com",
    "http://127.0.0.1:8000..8001",
    "https://*.example.org:*",
    "http://[::1]:9000",
    "http://10.0.0.0/8:*",
    "http://localhost:7000",
    "http://*.localhost:7000..7001",
];
const DENY: &[&str] = &["*.corp.example.org", "10.1.0.0/16", "169.254.169.254"];

fn entry<T>(key: String, value: T) -> Entry<T> {
    Entry { key, value }
}

fn access() -> NetAccess {
    NetAccess {
        granted: DECLARED
            .iter()
            .filter_map(|d| Endpoint::parse_allow(d).ok())
            .map(|endpoint| NetGrant {
                endpoint,
                rule: "declared".into(),
            })
            .collect(),
        allow: ALLOW
            .iter()
            .enumerate()
            .filter_map(|(i, a)| Some(entry(format!("allow[{i}]"), Endpoint::parse_allow(a).ok()?)))
            .collect(),
        deny: DENY
            .iter()
            .enumerate()
            .filter_map(|(i, d)| Some(entry(format!("deny[{i}]"), parse_deny(d).ok()?)))
            .collect(),
        ..NetAccess::default()
    }
}

/// See the module docs.
pub fn net_request(data: &[u8]) {
    let (url_bytes, addr_bytes) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(url_bytes);

    // Any text as an entry: what parses prints back as itself.
    if let Ok(e) = Endpoint::parse_allow(&text) {
        let again = Endpoint::parse_allow(&e.to_string())
            .unwrap_or_else(|err| panic!("`{e}` (from {text:?}) does not parse back: {err}"));
        assert_eq!(again, e, "{text:?}");
    }
    if let Ok(h) = parse_deny(&text) {
        let again = parse_deny(&h.to_string())
            .unwrap_or_else(|err| panic!("`{h}` (from {text:?}) does not parse back: {err}"));
        assert_eq!(again, h, "{text:?}");
    }

    let net = access();
    let _ = record_url(&text, false);
    let _ = record_url(&text, true);
    let Ok(target) = net.check_url(&text) else {
        return;
    };
    let wanted = Endpoint {
        scheme: target.scheme,
        host: target.host.clone(),
        ports: Ports::one(target.port),
        default_port: false,
    };
    assert!(
        net.granted.iter().any(|g| g.endpoint.covers(&wanted)),
        "{text:?} passed outside every declaration"
    );
    assert!(
        net.allow.iter().any(|a| a.value.covers(&wanted)),
        "{text:?} passed with no allow entry"
    );
    assert!(
        !net.deny.iter().any(|d| d.value.covers(&target.host)),
        "{text:?} passed although a deny entry names its host"
    );

    let mut addrs: Vec<SocketAddr> = addr_bytes
        .chunks_exact(17)
        .map(|c| {
            let ip = if c[0] & 1 == 0 {
                IpAddr::V4(Ipv4Addr::new(c[1], c[2], c[3], c[4]))
            } else {
                let mut b = [0u8; 16];
                b.copy_from_slice(&c[1..17]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            SocketAddr::new(ip, target.port)
        })
        .collect();
    if let Some(ip) = target.literal() {
        addrs.insert(0, SocketAddr::new(ip, target.port));
    }
    if net.check_addresses(&target, &addrs).is_ok() {
        for a in &addrs {
            let ip = a.ip();
            assert!(
                !net.deny
                    .iter()
                    .any(|d| d.value.covers(&HostPattern::Ip(ip))),
                "{ip} passed although in a deny range ({text:?})"
            );
            if target.host.is_loopback_name() {
                assert!(
                    canonical(ip).is_loopback(),
                    "{ip} passed for the loopback name of {text:?}"
                );
                assert!(
                    net.allow.iter().any(|e| e.value.covers(&wanted)),
                    "loopback passed for {text:?} with no allow entry naming it"
                );
                continue;
            }
            if non_global(ip).is_some() {
                let literal = Endpoint {
                    scheme: target.scheme,
                    host: HostPattern::Ip(canonical(ip)),
                    ports: Ports::one(target.port),
                    default_port: false,
                };
                assert!(
                    net.allow.iter().any(|e| e.value.covers(&literal)
                        && matches!(e.value.host, HostPattern::Ip(_) | HostPattern::Range(_))),
                    "non-global {ip} passed with no allow entry naming it ({text:?})"
                );
            }
        }
    }
}
