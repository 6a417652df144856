//! The operator's allow-list: hosts that may be reached even though they are private (an
//! internal API, a local model server). Entries are host names (`api.internal`), IP addresses
//! (`10.0.0.5`, `::1`, `[::1]`) or CIDR networks (`10.0.0.0/8`).

use super::ip::in_network;
use std::collections::HashSet;
use std::net::IpAddr;

#[derive(Debug, Clone, Default)]
pub(crate) struct AllowList {
    names: HashSet<String>,
    networks: Vec<(IpAddr, u8)>,
}

impl AllowList {
    pub(crate) fn new(entries: &[String]) -> Self {
        let mut list = Self::default();
        for entry in entries {
            let normalized = normalize_host(entry);
            if normalized.is_empty() {
                continue;
            }
            if let Some(network) = parse_network(&normalized) {
                list.networks.push(network);
            } else if normalized.contains('/') {
                // A host name cannot contain '/', so this entry could never match anything.
                tracing::warn!(entry = %entry, "ignoring malformed allow_hosts entry");
            } else {
                list.names.insert(normalized);
            }
        }
        list
    }

    /// Whether the URL host (a name or an IP literal) is allow-listed as written.
    pub(crate) fn allows_host(&self, host: &str) -> bool {
        let host = normalize_host(host);
        match host.parse::<IpAddr>() {
            Ok(ip) => self.allows_ip(ip),
            Err(_) => self.names.contains(&host),
        }
    }

    /// Whether a resolved or literal address is inside an allow-listed IP or network.
    pub(crate) fn allows_ip(&self, ip: IpAddr) -> bool {
        self.networks
            .iter()
            .any(|(network, prefix)| in_network(ip, *network, *prefix))
    }
}

/// Lower-cases, trims, drops IPv6 brackets and a trailing dot, so `Example.COM.`, `example.com`
/// and `[::1]` / `::1` compare equal.
pub(crate) fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// `ip` or `ip/prefix` with a prefix that fits the address family.
fn parse_network(entry: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match entry.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (entry, None),
    };
    let ip: IpAddr = normalize_host(addr).parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
    };
    Some((ip, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::new(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("valid IP")
    }

    #[test]
    fn names_match_case_insensitively_without_trailing_dot() {
        let allow = list(&["API.Internal.", "localhost"]);
        assert!(allow.allows_host("api.internal"));
        assert!(allow.allows_host("api.internal."));
        assert!(allow.allows_host("LOCALHOST"));
        assert!(!allow.allows_host("other.internal"));
        assert!(!allow.allows_ip(ip("127.0.0.1")));
    }

    #[test]
    fn ips_and_networks() {
        let allow = list(&["127.0.0.1", "[::1]", "10.0.0.0/8", "fd00::/8", "bad/99"]);
        assert!(allow.allows_host("127.0.0.1"));
        assert!(allow.allows_host("[::1]"));
        assert!(allow.allows_ip(ip("::ffff:127.0.0.1")));
        assert!(allow.allows_ip(ip("10.9.8.7")));
        assert!(allow.allows_ip(ip("fd12::1")));
        assert!(!allow.allows_ip(ip("127.0.0.2")));
        assert!(!allow.allows_ip(ip("192.168.0.1")));
        assert!(!allow.allows_host("bad"));
    }
}
