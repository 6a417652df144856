//! Which IP addresses a guarded request may not reach.
//!
//! IPv4 is checked against a table of special-purpose ranges. IPv6 is allow-by-exception the
//! other way round: only global unicast (2000::/3) may pass, minus its special sub-ranges, so a
//! range we forgot to list is refused rather than reachable. IPv6 forms that carry an IPv4
//! address (mapped, NAT64, 6to4, Teredo) are judged by the IPv4 address inside.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockReason {
    /// The refused range, e.g. `loopback 127.0.0.0/8`.
    pub range: &'static str,
    /// For IPv6 addresses that embed an IPv4 address: how, and which IPv4 address was judged.
    pub embedded: Option<(&'static str, Ipv4Addr)>,
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            None => write!(f, "{}", self.range),
            Some((form, v4)) => write!(f, "{} (via the {form} form of {v4})", self.range),
        }
    }
}

impl BlockReason {
    fn plain(range: &'static str) -> Self {
        Self {
            range,
            embedded: None,
        }
    }
}

/// IPv4 ranges that are never public destinations. Earlier entries win, so the specific
/// metadata and broadcast addresses are named before the ranges that contain them.
const V4_BLOCKED: &[(Ipv4Addr, u8, &str)] = &[
    (
        Ipv4Addr::new(169, 254, 169, 254),
        32,
        "cloud metadata endpoint 169.254.169.254",
    ),
    (
        Ipv4Addr::new(100, 100, 100, 200),
        32,
        "cloud metadata endpoint 100.100.100.200",
    ),
    (
        Ipv4Addr::new(255, 255, 255, 255),
        32,
        "broadcast 255.255.255.255",
    ),
    (
        Ipv4Addr::new(0, 0, 0, 0),
        8,
        "unspecified/\"this network\" 0.0.0.0/8",
    ),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private 10.0.0.0/8"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "carrier-grade NAT 100.64.0.0/10",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback 127.0.0.0/8"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "link-local 169.254.0.0/16",
    ),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private 172.16.0.0/12"),
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        "IETF protocol assignments 192.0.0.0/24",
    ),
    (
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        "documentation 192.0.2.0/24",
    ),
    (
        Ipv4Addr::new(192, 88, 99, 0),
        24,
        "6to4 relay anycast 192.88.99.0/24",
    ),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private 192.168.0.0/16"),
    (
        Ipv4Addr::new(198, 18, 0, 0),
        15,
        "benchmarking 198.18.0.0/15",
    ),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "documentation 198.51.100.0/24",
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        "documentation 203.0.113.0/24",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast 224.0.0.0/4"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved 240.0.0.0/4"),
];

/// Special-purpose ranges checked after the embedded-IPv4 forms, first match wins.
const V6_BLOCKED: &[(Ipv6Addr, u8, &str)] = &[
    (
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
        128,
        "cloud metadata endpoint fd00:ec2::254",
    ),
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified ::"),
    (Ipv6Addr::LOCALHOST, 128, "loopback ::1"),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "local-use NAT64 64:ff9b:1::/48",
    ),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),
        8,
        "reserved ::/8 (includes IPv4-compatible ::/96)",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only 100::/64",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation 2001:db8::/32",
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignments 2001::/23",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation 3fff::/20",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique-local fc00::/7",
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        "link-local fe80::/10",
    ),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        "site-local fec0::/10",
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        "multicast ff00::/8",
    ),
];

/// Returns why `ip` must not be contacted, or `None` if it is a public address.
pub fn blocked_reason(ip: IpAddr) -> Option<BlockReason> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4).map(BlockReason::plain),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    V4_BLOCKED
        .iter()
        .find(|(net, prefix, _)| {
            same_prefix(u128::from(bits), u128::from(u32::from(*net)), 32, *prefix)
        })
        .map(|(_, _, name)| *name)
}

fn v6_reason(ip: Ipv6Addr) -> Option<BlockReason> {
    let bits = u128::from(ip);
    for (form, v4) in embedded_v4(ip) {
        if let Some(range) = v4_reason(v4) {
            return Some(BlockReason {
                range,
                embedded: Some((form, v4)),
            });
        }
    }
    if is_embedding_form(ip) {
        // Mapped, NAT64, 6to4 and Teredo addresses whose IPv4 part is public are as reachable
        // as that IPv4 address; the table below would otherwise refuse some of them wholesale.
        return None;
    }
    if let Some((_, _, name)) = V6_BLOCKED
        .iter()
        .find(|(net, prefix, _)| same_prefix(bits, u128::from(*net), 128, *prefix))
    {
        return Some(BlockReason::plain(name));
    }
    if !same_prefix(
        bits,
        u128::from(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0)),
        128,
        3,
    ) {
        return Some(BlockReason::plain(
            "reserved (outside global unicast 2000::/3)",
        ));
    }
    None
}

/// The IPv4 addresses an IPv6 address carries, with the name of the form that carries them.
fn embedded_v4(ip: Ipv6Addr) -> Vec<(&'static str, Ipv4Addr)> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return vec![("IPv4-mapped ::ffff:0:0/96", v4)];
    }
    if same_prefix(
        bits,
        u128::from(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0)),
        128,
        96,
    ) {
        return vec![("NAT64 64:ff9b::/96", low32)];
    }
    if same_prefix(
        bits,
        u128::from(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0)),
        128,
        16,
    ) {
        return vec![("6to4 2002::/16", Ipv4Addr::from((bits >> 80) as u32))];
    }
    if same_prefix(
        bits,
        u128::from(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0)),
        128,
        32,
    ) {
        // Teredo: bits 32..64 are the server, the last 32 bits the client address inverted.
        // The client is where traffic ends up; the server is checked too, to be safe.
        let server = Ipv4Addr::from((bits >> 64) as u32);
        let client = Ipv4Addr::from(!((bits & 0xffff_ffff) as u32));
        return vec![("Teredo 2001::/32", client), ("Teredo 2001::/32", server)];
    }
    Vec::new()
}

fn is_embedding_form(ip: Ipv6Addr) -> bool {
    !embedded_v4(ip).is_empty()
}

/// Whether the first `prefix` bits of two `width`-bit numbers agree.
fn same_prefix(a: u128, b: u128, width: u32, prefix: u8) -> bool {
    let prefix = u32::from(prefix).min(width);
    if prefix == 0 {
        return true;
    }
    let shift = width - prefix;
    (a >> shift) == (b >> shift)
}

/// Whether `ip` lies in `network/prefix` (both the same family; IPv4-mapped IPv6 addresses are
/// compared as IPv4).
pub(crate) fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (ip.to_canonical(), network.to_canonical()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => same_prefix(
            u128::from(u32::from(a)),
            u128::from(u32::from(b)),
            32,
            prefix,
        ),
        (IpAddr::V6(a), IpAddr::V6(b)) => same_prefix(u128::from(a), u128::from(b), 128, prefix),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Option<String> {
        let ip: IpAddr = s.parse().expect("valid IP");
        blocked_reason(ip).map(|r| r.to_string())
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(reason(ip), None, "{ip}");
        }
    }

    #[test]
    fn special_ipv4_ranges_are_named() {
        let cases = [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("10.1.2.3", "private 10.0.0.0/8"),
            ("172.16.0.1", "private 172.16.0.0/12"),
            ("172.31.255.255", "private 172.16.0.0/12"),
            ("192.168.1.1", "private 192.168.0.0/16"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.255", "carrier-grade NAT"),
            ("169.254.169.254", "cloud metadata endpoint 169.254.169.254"),
            ("169.254.1.1", "link-local"),
            ("100.100.100.200", "cloud metadata endpoint 100.100.100.200"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("192.0.0.170", "IETF"),
        ];
        for (ip, needle) in cases {
            let got = reason(ip).unwrap_or_default();
            assert!(got.contains(needle), "{ip}: {got}");
        }
    }

    #[test]
    fn special_ipv6_ranges_are_named() {
        let cases = [
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fd00:ec2::254", "cloud metadata endpoint fd00:ec2::254"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("::127.0.0.1", "reserved ::/8"),
            ("fec0::1", "site-local"),
            ("4000::1", "outside global unicast"),
            ("100::1", "discard-only"),
            ("64:ff9b:1::1", "local-use NAT64"),
        ];
        for (ip, needle) in cases {
            let got = reason(ip).unwrap_or_default();
            assert!(got.contains(needle), "{ip}: {got}");
        }
    }

    #[test]
    fn ipv6_forms_embedding_ipv4_are_judged_by_the_ipv4_address() {
        let cases = [
            ("::ffff:127.0.0.1", "loopback", "IPv4-mapped"),
            ("0:0:0:0:0:ffff:a9fe:a9fe", "metadata", "IPv4-mapped"),
            ("2002:a9fe:a9fe::", "metadata", "6to4"),
            ("64:ff9b::a9fe:a9fe", "metadata", "NAT64"),
            ("64:ff9b::10.0.0.1", "private", "NAT64"),
            // Teredo: client 192.0.2.45 (the inverse of 3fff:fdd2) is a documentation address.
            (
                "2001:0000:4136:e378:8000:63bf:3fff:fdd2",
                "documentation",
                "Teredo",
            ),
        ];
        for (ip, range, form) in cases {
            let got = reason(ip).unwrap_or_default();
            assert!(got.contains(range) && got.contains(form), "{ip}: {got}");
        }
    }

    #[test]
    fn network_membership() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("valid IP");
        assert!(in_network(ip("10.1.2.3"), ip("10.0.0.0"), 8));
        assert!(!in_network(ip("11.1.2.3"), ip("10.0.0.0"), 8));
        assert!(in_network(ip("::ffff:10.1.2.3"), ip("10.0.0.0"), 8));
        assert!(in_network(ip("fd00::1"), ip("fd00::"), 8));
        assert!(!in_network(ip("10.0.0.1"), ip("fd00::"), 8));
        assert!(in_network(ip("1.2.3.4"), ip("0.0.0.0"), 0));
    }
}
