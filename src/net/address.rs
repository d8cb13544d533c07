//! Which IP addresses are globally routable (`POLICY.md` rule 7).
//!
//! [`non_global`] names the special-purpose range an address falls in, from the IANA
//! IPv4 and IPv6 special-purpose address registries, or `None` for an address that
//! is reachable on the public internet. An address with an IPv4 address inside
//! (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`,
//! 6to4 `2002::/16`) is judged by the IPv4 address it carries, so no spelling of
//! `127.0.0.1` passes as global.
//!
//! # Security
//!
//! This is what stands between a plugin's URL and the host's own network: loopback
//! services, the LAN, and cloud metadata endpoints (`169.254.169.254` is link-local,
//! `100.100.100.200` is in the CGNAT range, `fd00:ec2::254` is unique-local). A range
//! missing here is an SSRF hole, so the list errs on the side of "not global".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `name` (a host name as URLs and patterns hold it: lower case, no trailing
/// dot) is `localhost` or a name under it, which RFC 6761 reserves for loopback.
///
/// warden never looks such a name up ([`loopback_addresses`] stands for the lookup),
/// so no resolver, `/etc/hosts` line or DNS answer can send it anywhere else.
pub fn is_loopback_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// What a loopback name ([`is_loopback_name`]) resolves to: `127.0.0.1` and `::1`,
/// on `port`, in that order.
pub fn loopback_addresses(port: u16) -> Vec<SocketAddr> {
    vec![
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
    ]
}

/// The name of the non-global range `ip` falls in, or `None` when it is global.
pub fn non_global(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_global_v4(v4),
        IpAddr::V6(v6) => non_global_v6(v6),
    }
}

fn non_global_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let range = match (a, b, c) {
        (0, _, _) => "this-network (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared CGNAT (100.64.0.0/10)",
        (127, _, _) => "loopback (127.0.0.0/8)",
        (169, 254, _) => "link-local (169.254.0.0/16, cloud metadata)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) => "documentation (192.0.2.0/24)",
        (192, 88, 99) => "6to4 relay anycast (192.88.99.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (198, 51, 100) => "documentation (198.51.100.0/24)",
        (203, 0, 113) => "documentation (203.0.113.0/24)",
        (224..=239, _, _) => "multicast (224.0.0.0/4)",
        (240..=255, _, _) => "reserved (240.0.0.0/4, broadcast)",
        _ => return None,
    };
    Some(range)
}

fn non_global_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        // Judged by what it carries; its own range is named when the IPv4 is global
        // but the form still is not (IPv4-compatible addresses are deprecated).
        return non_global_v4(v4).or_else(|| {
            let s = ip.segments();
            (s[0] == 0 && s[5] == 0).then_some("IPv4-compatible (::/96, deprecated)")
        });
    }
    let s = ip.segments();
    let range = if ip.is_unspecified() {
        "unspecified (::)"
    } else if ip.is_loopback() {
        "loopback (::1)"
    } else if s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0 {
        "discard-only (100::/64)"
    } else if s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001 {
        "local-use NAT64 (64:ff9b:1::/48)"
    } else if s[0] == 0x2001 && s[1] < 0x0200 {
        "IETF protocol assignments (2001::/23)"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "documentation (2001:db8::/32)"
    } else if s[0] == 0x3fff && s[1] < 0x1000 {
        "documentation (3fff::/20)"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "unique-local (fc00::/7, cloud metadata)"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "link-local (fe80::/10)"
    } else if s[0] & 0xffc0 == 0xfec0 {
        "site-local (fec0::/10, deprecated)"
    } else if s[0] & 0xff00 == 0xff00 {
        "multicast (ff00::/8)"
    } else if s[0] & 0xe000 != 0x2000 {
        // Outside 2000::/3, the only block IANA allocates for global unicast.
        "not global unicast (outside 2000::/3)"
    } else {
        return None;
    };
    Some(range)
}

/// The IPv4 address an IPv6 address carries in one of the forms that reach it:
/// IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible (`::/96`, but not `::` or `::1`),
/// NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`, bits 16..48).
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(low(hi, lo)),
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

/// `ip` with an IPv4 address carried in an IPv6 form replaced by that IPv4 address,
/// so `::ffff:10.0.0.1` meets the same deny ranges as `10.0.0.1`.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(text: &str) -> Option<&'static str> {
        non_global(text.parse().unwrap())
    }

    #[test]
    fn every_spelling_of_a_private_address_is_not_global() {
        for text in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "64:ff9b:1::1",
        ] {
            assert!(judged(text).is_some(), "{text} passed as global");
        }
    }

    #[test]
    fn public_addresses_are_global() {
        for text in [
            "1.1.1.1",
            "8.8.8.8",
            "140.82.112.3",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(judged(text), None, "{text} was judged not global");
        }
    }

    #[test]
    fn only_localhost_and_names_under_it_are_loopback_names() {
        for name in ["localhost", "a.localhost", "x.y.localhost"] {
            assert!(is_loopback_name(name), "{name}");
        }
        for name in [
            "localhost.example",
            "notlocalhost",
            "localhost-x",
            "127.0.0.1",
            "ip6-localhost",
            "example.com",
        ] {
            assert!(!is_loopback_name(name), "{name}");
        }
        assert!(
            loopback_addresses(8000)
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8000)
        );
    }

    #[test]
    fn embedded_addresses_canonicalize_to_ipv4() {
        assert_eq!(
            canonical("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            canonical("2606:4700::1111".parse().unwrap()),
            "2606:4700::1111".parse::<IpAddr>().unwrap()
        );
    }
}
