//! Parsing what the user names as targets: addresses, CIDRs, ranges, hostnames, files.

use crate::error::SpecError;
use crate::intervals::IntervalSet;
use ipnet::IpNet;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;

/// One parsed target token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    V4(u32, u32),
    V6(u128, u128),
    /// Resolved later; each address it resolves to is checked like any other target.
    Host(String),
}

/// Parses one token (commas separate several): `1.2.3.4`, `1.2.3.0/24`,
/// `1.2.3.4-1.2.3.9`, `2001:db8::/120`, `example.org`.
pub fn parse_targets(token: &str) -> Result<Vec<Target>, SpecError> {
    token
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(parse_one)
        .collect()
}

fn err(input: &str, reason: impl Into<String>) -> SpecError {
    SpecError::Target {
        input: input.to_string(),
        reason: reason.into(),
    }
}

fn parse_one(t: &str) -> Result<Target, SpecError> {
    if let Some((addr, len)) = t.split_once('/') {
        let net: IpNet = t.parse().map_err(|_| {
            if addr.parse::<IpAddr>().is_err() {
                err(t, format!("{addr:?} is not an IP address"))
            } else {
                let max = if addr.contains(':') { 128 } else { 32 };
                err(
                    t,
                    format!("prefix length {len:?} is not a number from 0 to {max}"),
                )
            }
        })?;
        return Ok(match net {
            IpNet::V4(n) => Target::V4(n.network().into(), n.broadcast().into()),
            IpNet::V6(n) => Target::V6(n.network().into(), n.broadcast().into()),
        });
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(single(ip));
    }
    if let Some((a, b)) = t.split_once('-') {
        let (a, b) = (a.trim(), b.trim());
        if let (Ok(lo), Ok(hi)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
            return match (lo, hi) {
                (IpAddr::V4(lo), IpAddr::V4(hi)) if lo <= hi => {
                    Ok(Target::V4(lo.into(), hi.into()))
                }
                (IpAddr::V6(lo), IpAddr::V6(hi)) if lo <= hi => {
                    Ok(Target::V6(lo.into(), hi.into()))
                }
                (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                    Err(err(t, "range start is after its end"))
                }
                _ => Err(err(t, "a range cannot mix IPv4 and IPv6")),
            };
        }
        if a.parse::<IpAddr>().is_ok() || looks_numeric(b) {
            return Err(err(
                t,
                "a range is FIRST-LAST with two addresses of the same family",
            ));
        }
    }
    if looks_numeric(t) {
        return Err(err(
            t,
            "not a valid IPv4 address (four numbers 0-255 separated by dots)",
        ));
    }
    validate_hostname(t).map_err(|reason| err(t, reason))?;
    Ok(Target::Host(t.trim_end_matches('.').to_ascii_lowercase()))
}

fn single(ip: IpAddr) -> Target {
    match ip {
        IpAddr::V4(a) => Target::V4(a.into(), a.into()),
        IpAddr::V6(a) => Target::V6(a.into(), a.into()),
    }
}

fn looks_numeric(t: &str) -> bool {
    !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// RFC 1123 host names (letters, digits, hyphens; labels ≤ 63; name ≤ 253).
pub fn validate_hostname(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > 253 {
        return Err(format!(
            "name is {} bytes, over the 253 allowed",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label (two dots in a row)".into());
        }
        if label.len() > 63 {
            return Err(format!(
                "label {label:?} is {} bytes, over the 63 allowed",
                label.len()
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with a hyphen"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "{c:?} is not allowed in a host name (expected an address, CIDR, range or host name)"
            ));
        }
    }
    Ok(())
}

/// Reads targets from a reader (one or more per line, `#` starts a comment), streaming:
/// only the parsed intervals are kept, never the file. `origin` names the file in errors.
pub fn read_target_list(reader: impl Read, origin: &str) -> Result<Vec<Target>, SpecError> {
    let mut out = Vec::new();
    for (n, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(|source| SpecError::File {
            path: origin.to_string(),
            source,
        })?;
        let content = line.split('#').next().unwrap_or("");
        for token in content.split_whitespace() {
            let parsed = parse_targets(token).map_err(|e| match e {
                SpecError::Target { input, reason } => SpecError::Target {
                    input: format!("{origin}:{}: {input}", n + 1),
                    reason,
                },
                other => other,
            })?;
            out.extend(parsed);
        }
    }
    Ok(out)
}

/// Address families split into interval sets; host names kept aside for resolution.
#[derive(Debug, Default, Clone)]
pub struct TargetSet {
    pub v4: IntervalSet<u32>,
    pub v6: IntervalSet<u128>,
    pub hosts: Vec<String>,
}

impl TargetSet {
    pub fn add(&mut self, t: Target) {
        match t {
            Target::V4(a, b) => self.v4.insert(a, b),
            Target::V6(a, b) => self.v6.insert(a, b),
            Target::Host(h) => {
                if !self.hosts.contains(&h) {
                    self.hosts.push(h)
                }
            }
        }
    }

    pub fn add_ip(&mut self, ip: IpAddr) {
        self.add(single(ip));
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty() && self.hosts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(t: &str) -> Target {
        let mut v = parse_targets(t).expect("parses");
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(one("1.2.3.4"), Target::V4(0x01020304, 0x01020304));
        assert_eq!(one("10.0.0.0/30"), Target::V4(0x0a000000, 0x0a000003));
        assert_eq!(one("10.0.0.5/30"), Target::V4(0x0a000004, 0x0a000007));
        assert_eq!(one("1.2.3.4-1.2.3.9"), Target::V4(0x01020304, 0x01020309));
        assert_eq!(one("::1"), Target::V6(1, 1));
        assert_eq!(
            one("2001:db8::/126"),
            Target::V6(0x2001_0db8u128 << 96, (0x2001_0db8u128 << 96) + 3)
        );
        assert_eq!(one("Example.ORG."), Target::Host("example.org".into()));
        assert_eq!(parse_targets("1.1.1.1,2.2.2.2").expect("parses").len(), 2);
    }

    #[test]
    fn refusals_say_why() {
        for (input, needle) in [
            ("10.0.0.0/33", "prefix length"),
            ("10.0.0.256", "not a valid IPv4"),
            ("1.2.3.9-1.2.3.4", "after its end"),
            ("1.2.3.4-::1", "mix"),
            ("1.2.3.4-foo", "FIRST-LAST"),
            ("bad host!", "not allowed"),
            ("300.1.1.1/8", "not an IP address"),
        ] {
            let e = parse_targets(input).expect_err(input).to_string();
            assert!(e.contains(needle), "{input}: {e}");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(parse_targets(&long)
            .expect_err("long")
            .to_string()
            .contains("63"));
    }

    #[test]
    fn list_files_name_the_line() {
        let text = "# targets\n10.0.0.1 10.0.0.2\n\n10.0.0.0/33\n";
        let e = read_target_list(text.as_bytes(), "t.txt").expect_err("bad line");
        assert!(e.to_string().contains("t.txt:4"), "{e}");
        let ok = read_target_list("1.1.1.1 # one\n2.2.2.0/31\n".as_bytes(), "t").expect("parses");
        assert_eq!(ok.len(), 2);
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC{0,80}") {
            let _ = parse_targets(&s);
        }

        #[test]
        fn every_v4_address_round_trips(a in any::<u32>()) {
            let text = std::net::Ipv4Addr::from(a).to_string();
            prop_assert_eq!(one(&text), Target::V4(a, a));
        }
    }
}
