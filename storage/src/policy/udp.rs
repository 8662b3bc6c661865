//! The UDP exposure rules: open DNS resolvers, amplifiers and SNMP answering the
//! default community. Each reads facts the UDP probe stored on the service (see
//! `crate::facts::service`), so a rescan that no longer sees the fact closes the
//! finding as verified, and one that hears nothing (UDP silence) leaves it alone.

use super::{Expected, PolicySettings, Rule};
use crate::model::Asset;

/// The default of [`PolicySettings::amplifier_factor`]: replies ten times the request.
pub const DEFAULT_AMPLIFIER_FACTOR: u32 = 10;

/// The most an amplification threshold may be.
pub const MAX_AMPLIFIER_FACTOR: u32 = 10_000;

pub(super) fn default_amplifier_factor() -> u32 {
    DEFAULT_AMPLIFIER_FACTOR
}

/// The UDP findings a present service deserves.
pub(super) fn expected(asset: &Asset, settings: &PolicySettings, label: &str) -> Vec<Expected> {
    let mut out = Vec::new();
    let mut add = |rule: Rule, title: String, evidence: Vec<(&str, String)>| {
        out.push(Expected {
            rule,
            detail: String::new(),
            severity: settings.severity(rule),
            title,
            evidence: evidence
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        });
    };
    let fact = |k: &str| asset.fact(k).unwrap_or_default().to_owned();
    // The probe asks `version.bind` with recursion desired: a server that offers
    // recursion (RA) in a reply it did not refuse will resolve any name for anyone who
    // can reach it — an authoritative-only server clears RA, an access-controlled
    // resolver refuses.
    if asset.fact("protocol") == Some("dns")
        && asset.fact("udp.recursion_available") == Some("true")
        && !matches!(asset.fact("udp.rcode"), Some("REFUSED") | None)
    {
        add(
            Rule::OpenResolver,
            format!("{label} resolves names for anyone (recursion offered to the scanner)"),
            vec![
                ("recursion_available", "true".into()),
                ("rcode", fact("udp.rcode")),
                ("product", fact("product")),
            ],
        );
    }
    if let Some(x100) = asset.fact("amplification").and_then(hundredths) {
        let threshold = u64::from(settings.amplifier_factor.max(1)) * 100;
        if x100 >= threshold {
            let ratio = fact("amplification");
            add(
                Rule::Amplifier,
                format!(
                    "{label} ({}) answers a small request with {ratio}× the bytes: a reflection amplifier",
                    asset.fact("protocol").unwrap_or("udp")
                ),
                vec![
                    ("amplification", ratio),
                    ("threshold", settings.amplifier_factor.to_string()),
                    ("protocol", fact("protocol")),
                ],
            );
        }
    }
    if asset.fact("udp.community_accepted") == Some("true")
        && asset.fact("udp.community") == Some("public")
    {
        add(
            Rule::SnmpDefaultCommunity,
            format!("{label} answers SNMP with the default community \"public\""),
            vec![
                ("community", "public".into()),
                ("snmp_version", fact("udp.snmp_version")),
                ("sys_descr", fact("udp.sys_descr")),
            ],
        );
    }
    out
}

/// `34.07` → 3407; `None` for anything else.
fn hundredths(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    let whole: u64 = whole.parse().ok()?;
    let frac: u64 = match frac.len() {
        1 => frac.parse::<u64>().ok()? * 10,
        2 => frac.parse().ok()?,
        _ => return None,
    };
    whole.checked_mul(100)?.checked_add(frac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::AssetKey;
    use crate::model::AssetStatus;

    fn service(facts: &[(&str, &str)]) -> Asset {
        let key: AssetKey = "service:198.18.0.53:53/udp".parse().expect("key");
        Asset {
            kind: key.kind(),
            key,
            status: AssetStatus::Present,
            facts: facts
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            first_seen: 1,
            last_seen: 1,
            last_changed: 1,
            times_seen: 1,
            last_scan: "s".into(),
            changes: Vec::new(),
        }
    }

    fn rules(facts: &[(&str, &str)], settings: &PolicySettings) -> Vec<Rule> {
        expected(&service(facts), settings, "x")
            .into_iter()
            .map(|e| e.rule)
            .collect()
    }

    #[test]
    fn each_rule_needs_its_positive_fact() {
        let s = PolicySettings::default();
        let resolver = [
            ("protocol", "dns"),
            ("udp.recursion_available", "true"),
            ("udp.rcode", "NOERROR"),
            ("amplification", "2.10"),
        ];
        assert_eq!(rules(&resolver, &s), vec![Rule::OpenResolver]);
        let refused = [
            ("protocol", "dns"),
            ("udp.recursion_available", "true"),
            ("udp.rcode", "REFUSED"),
        ];
        assert!(rules(&refused, &s).is_empty());
        let authoritative = [
            ("protocol", "dns"),
            ("udp.recursion_available", "false"),
            ("udp.rcode", "NOERROR"),
        ];
        assert!(rules(&authoritative, &s).is_empty());
        let snmp = [
            ("protocol", "snmp"),
            ("udp.community", "public"),
            ("udp.community_accepted", "true"),
        ];
        assert_eq!(rules(&snmp, &s), vec![Rule::SnmpDefaultCommunity]);
        let other_community = [
            ("protocol", "snmp"),
            ("udp.community", "private"),
            ("udp.community_accepted", "true"),
        ];
        assert!(rules(&other_community, &s).is_empty());
    }

    #[test]
    fn amplification_is_compared_with_the_tenants_threshold() {
        let s = PolicySettings::default();
        assert_eq!(s.amplifier_factor, 10);
        assert!(rules(&[("amplification", "9.99")], &s).is_empty());
        assert_eq!(
            rules(&[("amplification", "10.00")], &s),
            vec![Rule::Amplifier]
        );
        assert_eq!(
            rules(&[("amplification", "250.5")], &s),
            vec![Rule::Amplifier]
        );
        let strict = PolicySettings {
            amplifier_factor: 3,
            ..PolicySettings::default()
        };
        assert_eq!(
            rules(&[("amplification", "3.00")], &strict),
            vec![Rule::Amplifier]
        );
        for garbage in ["", "x", "1.234", "-5.00", "99999999999999999999.00"] {
            assert!(
                rules(&[("amplification", garbage)], &strict).is_empty(),
                "{garbage}"
            );
        }
        let e = expected(
            &service(&[("amplification", "12.50"), ("protocol", "ssdp")]),
            &s,
            "k",
        );
        assert_eq!(e[0].evidence["amplification"], "12.50");
        assert_eq!(e[0].severity, crate::policy::Severity::High);
    }
}
