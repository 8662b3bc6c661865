//! Port specifications: `22,80,443`, `1000-2000`, `-` (all), and `--top-ports N`; with
//! UDP, nmap's `U:53,161,T:22` (a prefix holds until the next one), `U:5300=dns` (probe
//! an unusual port with a named protocol) and `--udp` presets.

use crate::error::SpecError;
use aperture_fingerprints::udp::{UdpProto, ALL};
use std::collections::BTreeMap;

const RANKING: &str = include_str!("top_ports.txt");

/// Parses a port list. The result is sorted and de-duplicated.
pub fn parse_ports(input: &str) -> Result<Vec<u16>, SpecError> {
    let err = |reason: String| SpecError::Ports {
        input: input.to_string(),
        reason,
    };
    let spec = input.trim();
    if spec.is_empty() {
        return Err(err("empty list".into()));
    }
    if spec == "-" {
        return Ok((1..=65535).collect());
    }
    let mut bits = vec![false; 65536];
    for part in spec.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(err("empty item between commas".into()));
        }
        let part = part
            .strip_prefix("T:")
            .or_else(|| part.strip_prefix("t:"))
            .unwrap_or(part);
        if part.starts_with("U:") || part.starts_with("u:") {
            return Err(err(
                "UDP ports (U:) are scanned by `aperture scan` only; list TCP ports here".into(),
            ));
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (
                if a.is_empty() { Ok(1) } else { port(a) },
                if b.is_empty() { Ok(65535) } else { port(b) },
            ),
            None => (port(part), port(part)),
        };
        let (lo, hi) = (lo.map_err(&err)?, hi.map_err(&err)?);
        if lo > hi {
            return Err(err(format!("range {part:?} starts after it ends")));
        }
        for p in lo..=hi {
            bits[usize::from(p)] = true;
        }
    }
    Ok((1..=65535u16).filter(|&p| bits[usize::from(p)]).collect())
}

/// TCP and UDP ports of a scan, and the protocol chosen for UDP ports where the user
/// named one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSpec {
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
    pub udp_protocols: BTreeMap<u16, UdpProto>,
}

impl PortSpec {
    fn add_udp(&mut self, ports: impl IntoIterator<Item = u16>) {
        self.udp.extend(ports);
        self.udp.sort_unstable();
        self.udp.dedup();
    }
}

fn udp_names() -> String {
    let mut names: Vec<&str> = ALL.iter().map(|p| p.name()).collect();
    names.extend(["snmp1", "ntp-control"]);
    names.join(", ")
}

/// `-p` with protocol prefixes: `T:` (the default) and `U:` switch until the next one.
pub fn parse_port_spec(input: &str) -> Result<PortSpec, SpecError> {
    let err = |reason: String| SpecError::Ports {
        input: input.to_string(),
        reason,
    };
    let mut spec = PortSpec::default();
    let (mut tcp, mut udp) = (String::new(), String::new());
    let mut in_udp = false;
    let mut tcp_items = 0;
    for part in input.split(',').map(str::trim) {
        let mut part = part;
        if let Some(rest) = part.strip_prefix("U:").or_else(|| part.strip_prefix("u:")) {
            in_udp = true;
            part = rest;
        } else if let Some(rest) = part.strip_prefix("T:").or_else(|| part.strip_prefix("t:")) {
            in_udp = false;
            part = rest;
        }
        if !in_udp {
            tcp.push_str(part);
            tcp.push(',');
            tcp_items += 1;
            continue;
        }
        let (ports, proto) = match part.split_once('=') {
            Some((p, name)) => {
                let proto = UdpProto::from_name(name).ok_or_else(|| {
                    err(format!(
                        "unknown UDP protocol {name:?}; known: {}",
                        udp_names()
                    ))
                })?;
                (p, Some(proto))
            }
            None => (part, None),
        };
        let list = parse_ports(ports).map_err(|e| match e {
            SpecError::Ports { reason, .. } => err(format!("UDP {reason}")),
            other => other,
        })?;
        if let Some(proto) = proto {
            for &p in &list {
                spec.udp_protocols.insert(p, proto);
            }
        }
        udp.push_str(ports);
        udp.push(',');
        spec.add_udp(list);
    }
    if tcp_items > 0 || udp.is_empty() {
        let tcp = &tcp[..tcp.len().saturating_sub(1)];
        spec.tcp = parse_ports(tcp).map_err(|e| match e {
            SpecError::Ports { reason, .. } => err(reason),
            other => other,
        })?;
    }
    Ok(spec)
}

/// `--udp` presets: `common` (every protocol on its registered port), `amplifiers`
/// (those known to amplify), or protocol names; comma-separated.
pub fn udp_preset(input: &str) -> Result<Vec<u16>, SpecError> {
    let err = |reason: String| SpecError::Ports {
        input: format!("--udp {input}"),
        reason,
    };
    let mut ports = Vec::new();
    for name in input.split(',').map(str::trim) {
        match name.to_ascii_lowercase().as_str() {
            "" => return Err(err("empty preset name".into())),
            "common" | "all" => ports.extend(ALL.iter().map(|p| p.default_port())),
            "amplifiers" => ports.extend(
                [
                    UdpProto::Dns,
                    UdpProto::Ntp,
                    UdpProto::Snmp2c,
                    UdpProto::Ssdp,
                    UdpProto::NetbiosNs,
                    UdpProto::Memcached,
                    UdpProto::Coap,
                    UdpProto::Wsd,
                ]
                .map(|p| p.default_port()),
            ),
            other => match UdpProto::from_name(other) {
                Some(p) => ports.push(p.default_port()),
                None => {
                    return Err(err(format!(
                        "unknown UDP preset {name:?}; use common, amplifiers or a protocol: {}",
                        udp_names()
                    )))
                }
            },
        }
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

/// Adds a `--udp` preset to a spec.
pub fn add_udp_preset(spec: &mut PortSpec, preset: &str) -> Result<(), SpecError> {
    let ports = udp_preset(preset)?;
    spec.add_udp(ports);
    Ok(())
}

fn port(text: &str) -> Result<u16, String> {
    let n: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a port number"))?;
    match n {
        0 => Err("port 0 is not scannable; ports are 1-65535".into()),
        1..=65535 => Ok(n as u16),
        _ => Err(format!("port {n} is above 65535")),
    }
}

/// The full ranking: our curated list, then the remaining ports 1–1023, then the rest.
pub fn ranking() -> Vec<u16> {
    let mut seen = vec![false; 65536];
    let mut out = Vec::with_capacity(65535);
    let curated = RANKING
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .filter_map(|w| w.parse::<u16>().ok());
    for p in curated.chain(1..=1023).chain(1024..=65535) {
        if p != 0 && !seen[usize::from(p)] {
            seen[usize::from(p)] = true;
            out.push(p);
        }
    }
    out
}

/// The first `n` ports of the ranking, sorted.
pub fn top_ports(n: usize) -> Result<Vec<u16>, SpecError> {
    if n == 0 || n > 65535 {
        return Err(SpecError::Ports {
            input: format!("--top-ports {n}"),
            reason: "N must be from 1 to 65535".into(),
        });
    }
    let mut ports: Vec<u16> = ranking().into_iter().take(n).collect();
    ports.sort_unstable();
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        assert_eq!(parse_ports("443,80,80,22").expect("ok"), vec![22, 80, 443]);
        assert_eq!(parse_ports("1-3, 5").expect("ok"), vec![1, 2, 3, 5]);
        assert_eq!(parse_ports("-").expect("ok").len(), 65535);
        assert_eq!(parse_ports("65530-").expect("ok").len(), 6);
        assert_eq!(parse_ports("T:22").expect("ok"), vec![22]);
    }

    #[test]
    fn refusals_say_why() {
        for (input, needle) in [
            ("0", "port 0"),
            ("65536", "above 65535"),
            ("80,,443", "empty item"),
            ("http", "not a port"),
            ("90-80", "starts after"),
            ("", "empty"),
            ("U:53", "UDP"),
        ] {
            let e = parse_ports(input).expect_err(input).to_string();
            assert!(e.contains(needle), "{input}: {e}");
        }
    }

    #[test]
    fn tcp_and_udp_prefixes() {
        let s = parse_port_spec("U:53,161,T:22,80,U:5300=dns").expect("ok");
        assert_eq!(s.tcp, vec![22, 80]);
        assert_eq!(s.udp, vec![53, 161, 5300]);
        assert_eq!(s.udp_protocols.get(&5300), Some(&UdpProto::Dns));
        let s = parse_port_spec("u:123").expect("udp only");
        assert!(s.tcp.is_empty());
        assert_eq!(s.udp, vec![123]);
        assert_eq!(parse_port_spec("443").expect("tcp").tcp, vec![443]);
        for (input, needle) in [
            ("U:0", "port 0"),
            ("U:53,T:0", "port 0"),
            ("U:70000", "above 65535"),
            ("U:53=gopher", "unknown UDP protocol"),
            ("U:", "empty"),
            ("U:53,T:", "empty"),
        ] {
            let e = parse_port_spec(input).expect_err(input).to_string();
            assert!(e.contains(needle), "{input}: {e}");
        }
    }

    #[test]
    fn udp_presets() {
        assert_eq!(udp_preset("dns,ntp").expect("ok"), vec![53, 123]);
        assert_eq!(udp_preset("common").expect("ok").len(), ALL.len());
        assert!(udp_preset("amplifiers").expect("ok").contains(&11211));
        let e = udp_preset("dns,nope").expect_err("unknown").to_string();
        assert!(
            e.contains("unknown UDP preset") && e.contains("snmp"),
            "{e}"
        );
        assert!(udp_preset("").is_err());
    }

    #[test]
    fn ranking_is_a_permutation_of_all_ports() {
        let r = ranking();
        assert_eq!(r.len(), 65535);
        let mut sorted = r.clone();
        sorted.sort_unstable();
        assert!(sorted.iter().copied().eq(1..=65535));
        assert_eq!(&r[..4], &[80, 443, 22, 21]);
        let curated_words = RANKING
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(str::split_whitespace)
            .count();
        assert!(
            curated_words > 400,
            "the curated list should stay substantial"
        );
        assert!(RANKING
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(str::split_whitespace)
            .all(|w| w.parse::<u16>().is_ok_and(|p| p > 0)));
    }

    #[test]
    fn top_ports_bounds() {
        assert_eq!(top_ports(1).expect("ok"), vec![80]);
        assert_eq!(top_ports(100).expect("ok").len(), 100);
        assert_eq!(top_ports(65535).expect("ok").len(), 65535);
        assert!(top_ports(0).is_err());
        assert!(top_ports(65536).is_err());
    }
}
