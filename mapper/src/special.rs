//! IANA special-purpose address ranges (RFC 6890 registries), excluded by default.
//!
//! Scanning them is almost always a mistake (private space of someone else's network,
//! documentation prefixes, multicast); a scan opts in explicitly with `--allow-special`.

use crate::intervals::IntervalSet;
use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

/// (prefix, what it is) — the name appears in error messages.
pub const SPECIAL_V4: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\", RFC 791"),
    ("10.0.0.0/8", "private use, RFC 1918"),
    ("100.64.0.0/10", "shared address space, RFC 6598"),
    ("127.0.0.0/8", "loopback, RFC 1122"),
    ("169.254.0.0/16", "link local, RFC 3927"),
    ("172.16.0.0/12", "private use, RFC 1918"),
    ("192.0.0.0/24", "IETF protocol assignments, RFC 6890"),
    ("192.0.2.0/24", "documentation TEST-NET-1, RFC 5737"),
    ("192.168.0.0/16", "private use, RFC 1918"),
    ("198.18.0.0/15", "benchmarking, RFC 2544"),
    ("198.51.100.0/24", "documentation TEST-NET-2, RFC 5737"),
    ("203.0.113.0/24", "documentation TEST-NET-3, RFC 5737"),
    ("224.0.0.0/4", "multicast, RFC 5771"),
    (
        "240.0.0.0/4",
        "reserved and limited broadcast, RFC 1112/919",
    ),
];

pub const SPECIAL_V6: &[(&str, &str)] = &[
    ("::/128", "unspecified, RFC 4291"),
    ("::1/128", "loopback, RFC 4291"),
    ("::ffff:0:0/96", "IPv4-mapped, RFC 4291"),
    ("64:ff9b::/96", "IPv4-IPv6 translation, RFC 6052"),
    (
        "64:ff9b:1::/48",
        "local-use IPv4-IPv6 translation, RFC 8215",
    ),
    ("100::/64", "discard-only, RFC 6666"),
    ("2001::/23", "IETF protocol assignments, RFC 2928"),
    ("2001:db8::/32", "documentation, RFC 3849"),
    ("2002::/16", "6to4, RFC 3056"),
    ("fc00::/7", "unique local, RFC 4193"),
    ("fe80::/10", "link-local unicast, RFC 4291"),
    ("ff00::/8", "multicast, RFC 4291"),
];

fn v4_net(text: &str) -> Option<Ipv4Net> {
    text.parse().ok()
}

fn v6_net(text: &str) -> Option<Ipv6Net> {
    text.parse().ok()
}

pub fn special_v4() -> IntervalSet<u32> {
    IntervalSet::from_ranges(
        SPECIAL_V4
            .iter()
            .filter_map(|(n, _)| v4_net(n))
            .map(|n| (u32::from(n.network()), u32::from(n.broadcast()))),
    )
}

pub fn special_v6() -> IntervalSet<u128> {
    IntervalSet::from_ranges(
        SPECIAL_V6
            .iter()
            .filter_map(|(n, _)| v6_net(n))
            .map(|n| (u128::from(n.network()), u128::from(n.broadcast()))),
    )
}

/// The special range that holds `addr`, for error messages.
pub fn describe_v4(addr: Ipv4Addr) -> Option<(&'static str, &'static str)> {
    SPECIAL_V4
        .iter()
        .find(|(n, _)| v4_net(n).is_some_and(|net| net.contains(&addr)))
        .copied()
}

pub fn describe_v6(addr: Ipv6Addr) -> Option<(&'static str, &'static str)> {
    SPECIAL_V6
        .iter()
        .find(|(n, _)| v6_net(n).is_some_and(|net| net.contains(&addr)))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_prefix_parses() {
        assert!(SPECIAL_V4.iter().all(|(n, _)| v4_net(n).is_some()));
        assert!(SPECIAL_V6.iter().all(|(n, _)| v6_net(n).is_some()));
    }

    #[test]
    fn well_known_members() {
        let v4 = special_v4();
        for a in [
            "10.1.2.3",
            "127.0.0.1",
            "198.19.255.1",
            "255.255.255.255",
            "0.0.0.0",
        ] {
            let ip: Ipv4Addr = a.parse().expect("literal");
            assert!(v4.contains(u32::from(ip)), "{a} should be special");
        }
        for a in ["8.8.8.8", "1.1.1.1", "198.20.0.1", "100.128.0.1"] {
            let ip: Ipv4Addr = a.parse().expect("literal");
            assert!(!v4.contains(u32::from(ip)), "{a} should not be special");
        }
        assert_eq!(
            describe_v4("192.168.1.1".parse().expect("literal")).map(|d| d.0),
            Some("192.168.0.0/16")
        );
        let v6 = special_v6();
        assert!(v6.contains(u128::from("::1".parse::<Ipv6Addr>().expect("literal"))));
        assert!(!v6.contains(u128::from(
            "2606:4700::1".parse::<Ipv6Addr>().expect("literal")
        )));
    }
}
