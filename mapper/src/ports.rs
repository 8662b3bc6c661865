//! Port specifications: `22,80,443`, `1000-2000`, `-` (all), and `--top-ports N`.

use crate::error::SpecError;

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
            return Err(err("UDP ports are not supported yet; list TCP ports".into()));
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
