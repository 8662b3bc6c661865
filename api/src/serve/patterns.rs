//! The text formats of the API (`format` in the description) and the one pattern each,
//! written once here and set on every schema of that format when the description is
//! served. The tests below hold each pattern to the parser the server really uses:
//! a spelling matches the pattern exactly when the server accepts it.

// The address grammars live with the other published patterns (`aperture_notify::patterns`,
// whose URL rule needs IPv6 too).
use aperture_notify::{ipv4_text as v4, ipv6_text as v6};

/// A prefix length as the ipnet crate reads it: up to two (IPv4) or three (IPv6)
/// decimal digits, leading zeros allowed.
macro_rules! v4_prefix {
    () => {
        r"/(3[0-2]|[0-2]?[0-9])"
    };
}

macro_rules! v6_prefix {
    () => {
        r"/(12[0-8]|1[01][0-9]|0?[0-9]?[0-9])"
    };
}

/// `cidr`: an IPv4 or IPv6 network with its prefix length.
pub const CIDR: &str = concat!("^(", v4!(), v4_prefix!(), "|", v6!(), v6_prefix!(), ")$");

/// `seed-cidr`: a network of the discovery loop's seeds, a /16 or smaller (IPv6: /112).
pub const SEED_CIDR: &str = concat!(
    "^(",
    v4!(),
    r"/(1[6-9]|2[0-9]|3[0-2])",
    "|",
    v6!(),
    r"/(11[2-9]|12[0-8])",
    ")$"
);

/// `ip-or-cidr`: an address, or a network with its prefix length.
pub const IP_OR_CIDR: &str = concat!(
    "^(",
    v4!(),
    "(",
    v4_prefix!(),
    ")?|",
    v6!(),
    "(",
    v6_prefix!(),
    ")?)$"
);

/// `asset-key`: `host:ADDR`, `service:ADDR:PORT/tcp` or `/udp` (`[v6]:PORT`; `/tcp` may
/// be left out), `domain:NAME` or `certificate:SHA256`.
pub const ASSET_KEY: &str = concat!(
    "^(host:(",
    v4!(),
    "|",
    v6!(),
    ")|service:(",
    v4!(),
    r"|\[",
    v6!(),
    r"\]):(0|[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])(/(tcp|udp))?",
    r"|domain:[A-Za-z0-9_*-]{1,63}(\.[A-Za-z0-9_*-]{1,63})*",
    r"|certificate:[0-9a-fA-F]{64})$"
);

/// `domain-glob`: a sanction's domain, a name or a glob of ASCII labels (`*` for any).
pub const DOMAIN_GLOB: &str = r"^[A-Za-z0-9_*-]{1,63}(\.[A-Za-z0-9_*-]{1,63})*$";

/// Every format whose values the server checks with a pattern-shaped rule.
pub const FORMATS: &[(&str, &str)] = &[
    ("cidr", CIDR),
    ("seed-cidr", SEED_CIDR),
    ("ip-or-cidr", IP_OR_CIDR),
    ("asset-key", ASSET_KEY),
    ("domain-glob", DOMAIN_GLOB),
];

/// Sets each schema's `pattern` from its `format`, everywhere in the description.
pub fn apply(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let pattern = map
                .get("format")
                .and_then(|f| f.as_str())
                .and_then(|f| FORMATS.iter().find(|(name, _)| *name == f))
                .map(|(_, p)| *p);
            if let Some(p) = pattern {
                map.insert("pattern".into(), p.into());
                if p == DOMAIN_GLOB {
                    map.insert("maxLength".into(), 253.into());
                }
            }
            map.values_mut().for_each(apply);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(apply),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn re(p: &str) -> regex::Regex {
        regex::Regex::new(p).expect("pattern compiles")
    }

    /// A small deterministic generator (no dependency needed for a test's variety).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Spellings of one address: every `::` placement over a zero run, leading zeros,
    /// upper case, and the dotted-IPv4 tail.
    fn spellings(a: Ipv6Addr, rng: &mut Rng) -> Vec<String> {
        let g = a.segments();
        let hex = |x: u16, rng: &mut Rng| match rng.below(3) {
            0 => format!("{x:x}"),
            1 => format!("{x:04x}"),
            _ => format!("{x:X}"),
        };
        let mut out = vec![a.to_string()];
        for start in 0..8 {
            for end in start + 1..=8 {
                if g[start..end].iter().all(|&x| x == 0) {
                    let head: Vec<String> = g[..start].iter().map(|&x| hex(x, rng)).collect();
                    let tail: Vec<String> = g[end..].iter().map(|&x| hex(x, rng)).collect();
                    out.push(format!("{}::{}", head.join(":"), tail.join(":")));
                    if end <= 6 {
                        let [a, b, c, d] = [g[6] >> 8, g[6] & 0xff, g[7] >> 8, g[7] & 0xff];
                        let mid: Vec<String> = g[end..6].iter().map(|&x| hex(x, rng)).collect();
                        let sep = if mid.is_empty() { "" } else { ":" };
                        out.push(format!(
                            "{}::{}{sep}{a}.{b}.{c}.{d}",
                            head.join(":"),
                            mid.join(":")
                        ));
                    }
                }
            }
        }
        let full: Vec<String> = g[..6].iter().map(|&x| hex(x, rng)).collect();
        out.push(format!(
            "{}:{}.{}.{}.{}",
            full.join(":"),
            g[6] >> 8,
            g[6] & 0xff,
            g[7] >> 8,
            g[7] & 0xff
        ));
        out
    }

    /// Near misses: one character inserted, removed or replaced.
    fn mutate(s: &str, rng: &mut Rng) -> String {
        let mut c: Vec<char> = s.chars().collect();
        let alphabet = [':', '.', '0', '1', 'f', 'g', '/', '9', '[', ']', '%'];
        let at = rng.below(c.len() as u64 + 1) as usize;
        match rng.below(3) {
            0 => c.insert(at, alphabet[rng.below(alphabet.len() as u64) as usize]),
            1 if at < c.len() => {
                c.remove(at);
            }
            _ if at < c.len() => c[at] = alphabet[rng.below(alphabet.len() as u64) as usize],
            _ => c.push(':'),
        }
        c.into_iter().collect()
    }

    fn addresses(rng: &mut Rng) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..400 {
            // Zero runs are what make spellings differ: draw groups mostly zero.
            let mut g = [0u16; 8];
            for x in g.iter_mut() {
                if rng.below(2) == 0 {
                    *x = rng.below(0x10000) as u16;
                }
            }
            out.extend(spellings(Ipv6Addr::from(g), rng));
            let v4 = Ipv4Addr::from(rng.next() as u32);
            out.push(v4.to_string());
            out.push(format!("0{v4}"));
        }
        out.extend(["::", "::1", "1::", "::ffff:1.2.3.4", "64:ff9b::192.0.2.1"].map(String::from));
        let n = out.len();
        for i in 0..n * 3 {
            let m = mutate(&out[i % n], rng);
            out.push(m);
        }
        out
    }

    #[test]
    fn the_ip_or_cidr_pattern_is_what_the_server_parses() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let pat = re(IP_OR_CIDR);
        let mut checked = 0;
        for a in addresses(&mut rng) {
            let prefix = ["", "/0", "/24", "/32", "/33", "/64", "/128", "/129", "/08"]
                [rng.below(9) as usize];
            let s = format!("{a}{prefix}");
            let server = s.parse::<IpAddr>().is_ok() || s.parse::<ipnet::IpNet>().is_ok();
            assert_eq!(
                pat.is_match(&s),
                server,
                "{s:?}: pattern and parser disagree"
            );
            checked += 1;
        }
        assert!(checked > 10_000, "{checked} spellings");
    }

    #[test]
    fn the_cidr_pattern_is_what_the_server_parses() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let pat = re(CIDR);
        for a in addresses(&mut rng) {
            let prefix = ["/0", "/24", "/32", "/33", "/64", "/128", "/129", "/08", ""]
                [rng.below(9) as usize];
            let s = format!("{a}{prefix}");
            let server = s.parse::<ipnet::IpNet>().is_ok();
            assert_eq!(
                pat.is_match(&s),
                server,
                "{s:?}: pattern and parser disagree"
            );
        }
    }

    #[test]
    fn the_seed_cidr_pattern_is_what_discovery_takes() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let pat = re(SEED_CIDR);
        for a in addresses(&mut rng) {
            let prefix = [
                "/15", "/16", "/24", "/32", "/111", "/112", "/128", "/016", "",
            ][rng.below(9) as usize];
            let s = format!("{a}{prefix}");
            let server = s
                .parse::<ipnet::IpNet>()
                .is_ok_and(|n| n.prefix_len() + 16 >= n.max_prefix_len());
            assert_eq!(pat.is_match(&s), server, "{s:?}: pattern and rule disagree");
        }
    }

    #[test]
    fn the_asset_key_pattern_is_what_the_server_parses() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        let pat = re(ASSET_KEY);
        let mut keys = Vec::new();
        for a in addresses(&mut rng) {
            keys.push(format!("host:{a}"));
            let port = ["0", "22", "080", "65535", "65536", ""][rng.below(6) as usize];
            let suffix = ["", "/tcp", "/tc", "/udp", "/UDP"][rng.below(5) as usize];
            if a.contains(':') {
                keys.push(format!("service:[{a}]:{port}{suffix}"));
                keys.push(format!("service:[{a}%1]:{port}"));
            } else {
                keys.push(format!("service:{a}:{port}{suffix}"));
            }
        }
        keys.push(format!("certificate:{}", "ab".repeat(32)));
        keys.push(format!("certificate:{}", "ab".repeat(31)));
        for k in keys {
            let server = k.parse::<aperture_storage::AssetKey>().is_ok();
            assert_eq!(
                pat.is_match(&k),
                server,
                "{k:?}: pattern and parser disagree"
            );
        }
    }
}
