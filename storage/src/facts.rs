//! Observations flattened into facts: field → value maps whose differences are the
//! change events users read ("product version 9.2 → 9.6", "certificate a1… → 7f…").
//!
//! Only what describes the exposure is a fact. Values that differ on every connection
//! (MySQL connection ids, SMB clocks, HTTP dates and body hashes of dynamic pages, grab
//! timings, TTLs) would turn every rescan into noise, so they are left out here, in one
//! place.

use aperture_fingerprints::cert::CertSummary;
use aperture_fingerprints::dns::observation::ZoneObservation;
use aperture_fingerprints::dns::observation::{DnsFinding, NameObservation, NameStatus};
use aperture_fingerprints::report::ServiceReport;
use std::collections::BTreeMap;

pub type Facts = BTreeMap<String, String>;

/// Banner fields that change per connection.
const VOLATILE_BANNER_FIELDS: &[&str] = &[
    "connection_id",
    "system_time",
    "salt",
    "nonce",
    "date",
    "body_sha256",
    "body_length",
];

/// Facts of a service from its grab; `None` when the grab learned nothing (no grab run,
/// or the port stayed silent), in which case the service keeps the facts it had.
pub fn service(report: Option<&ServiceReport>) -> Option<Facts> {
    let report = report?;
    if report.grab.silent && report.banner.is_none() && report.tls.is_none() {
        return None;
    }
    let mut f = Facts::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            f.insert(k.to_owned(), v.to_owned());
        }
    };
    put("service", report.service.as_deref());
    put("product", report.product.as_deref());
    put("version", report.version.as_deref());
    put("cpe", report.cpe.as_deref());
    put("vendor", report.vendor.as_deref());
    put("os", report.os.as_deref());
    put("rule", report.rule.as_deref());
    put("risk", report.risk.map(|r| r.as_str()));
    if report.cleartext_auth {
        put("cleartext_auth", Some("true"));
    }
    // A host that accepts on every port: this one service stands for all of them. The
    // count depends on how the scan was cut in shards, so only the fact is kept.
    if report.answers_every_port.is_some() {
        put("answers_every_port", Some("true"));
    }
    if let Some(b) = &report.banner {
        put("protocol", Some(&b.protocol));
        // An HTTP head carries a Date header: its stable parts are the http.* facts.
        if !b.protocol.starts_with("http") {
            put("banner", Some(&b.text));
        }
        if let Some(st) = b.starttls {
            put("starttls", Some(if st { "true" } else { "false" }));
        }
        for (k, v) in &b.fields {
            if !VOLATILE_BANNER_FIELDS.contains(&k.as_str()) {
                put(&format!("banner.{k}"), Some(v));
            }
        }
    }
    if let Some(t) = &report.tls {
        put("tls.version", t.version.as_deref());
        put("tls.cipher", t.cipher.as_deref());
        put("tls.alpn", t.alpn.as_deref());
        put("tls.sni", t.sni.as_deref());
        put("tls.jarm", t.jarm.as_deref());
        if t.legacy {
            put("tls.legacy", Some("true"));
        }
        if t.starttls {
            put("tls.starttls", Some("true"));
        }
    }
    if let Some(leaf) = report.certificate.first() {
        put("certificate", Some(&leaf.sha256));
        if let Some(m) = leaf.hostname_mismatch {
            put(
                "certificate.hostname_mismatch",
                Some(if m { "true" } else { "false" }),
            );
        }
    }
    if let Some(h) = &report.http {
        let status = h.facts.status.to_string();
        put("http.status", Some(&status));
        put("http.title", h.facts.title.as_deref());
        put("http.server", h.facts.header("server"));
        put("http.redirect", h.facts.redirect.as_deref());
        let favicon = h.favicon_hash.map(|x| x.to_string());
        put("http.favicon_hash", favicon.as_deref());
    }
    if let Some(u) = &report.unauth {
        put("unauth.check", Some(&u.check));
        put("unauth.open", Some(if u.open { "true" } else { "false" }));
        put("unauth.evidence", Some(&u.evidence));
    }
    if let Some(u) = &report.udp {
        // The ratio, not the byte counts: the counts grow with the replies a pass lost
        // or got twice, the ratio is what the exposure is.
        put("protocol", Some(&u.protocol));
        let x = u.amplification_x100;
        put(
            "amplification",
            Some(&format!("{}.{:02}", x / 100, x % 100)),
        );
        for (k, v) in &u.facts {
            if !VOLATILE_UDP_FACTS.contains(&k.as_str()) {
                put(&format!("udp.{k}"), Some(v));
            }
        }
    }
    Some(f)
}

/// UDP reply facts that measure a reply rather than describe the service.
const VOLATILE_UDP_FACTS: &[&str] = &["control_reply_bytes"];

/// Facts of a leaf certificate. Validity flags are judged by the policy against its own
/// clock, from `not_after_unix`, so a certificate does not "change" by growing older.
pub fn certificate(c: &CertSummary) -> Facts {
    let mut f = Facts::new();
    f.insert("subject".into(), c.subject.clone());
    f.insert("issuer".into(), c.issuer.clone());
    if let Some(cn) = &c.subject_cn {
        f.insert("subject_cn".into(), cn.clone());
    }
    f.insert("sans".into(), c.sans.dns.join(" "));
    f.insert("serial".into(), c.serial.clone());
    f.insert("not_before".into(), c.not_before.clone());
    f.insert("not_after".into(), c.not_after.clone());
    f.insert("not_after_unix".into(), c.not_after_unix.to_string());
    let key_alg = serde_json::to_value(c.key_algorithm)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    f.insert("key_algorithm".into(), key_alg);
    if let Some(bits) = c.key_bits {
        f.insert("key_bits".into(), bits.to_string());
    }
    f.insert("signature_algorithm".into(), c.signature_algorithm.clone());
    f.insert("self_signed".into(), c.self_signed.to_string());
    f.insert("weak_key".into(), c.weak_key.to_string());
    f.insert("sha1_signature".into(), c.sha1_signature.to_string());
    f
}

/// What a name observation says about the name's existence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameVerdict {
    Exists,
    /// NXDOMAIN: the name is gone.
    Gone,
    /// SERVFAIL, REFUSED, time-out: keep what we knew.
    Unknown,
}

pub fn name_verdict(n: &NameObservation) -> NameVerdict {
    match n.status {
        NameStatus::Resolved | NameStatus::NoData => NameVerdict::Exists,
        NameStatus::NxDomain => NameVerdict::Gone,
        NameStatus::Unknown(_) => NameVerdict::Unknown,
    }
}

/// Facts of a resolved name. Zone-level facts (`zone.*`) of the same name are kept apart
/// and merged by the caller.
pub fn name(n: &NameObservation) -> Facts {
    let mut f = Facts::new();
    let status = match n.status {
        NameStatus::Resolved => "resolved",
        NameStatus::NoData => "nodata",
        NameStatus::NxDomain => "nxdomain",
        NameStatus::Unknown(_) => "unknown",
    };
    f.insert("dns.status".into(), status.into());
    for (rtype, values) in &n.records {
        let mut values = values.clone();
        values.sort();
        f.insert(format!("dns.{rtype}"), values.join(" "));
    }
    if !n.addresses.is_empty() {
        let mut addrs: Vec<String> = n.addresses.iter().map(|a| a.to_string()).collect();
        addrs.sort();
        f.insert("addresses".into(), addrs.join(" "));
    }
    if !n.cname_chain.is_empty() {
        f.insert("cname_chain".into(), n.cname_chain.join(" "));
    }
    if let Some(z) = &n.zone {
        f.insert("zone".into(), z.clone());
    }
    if n.related {
        f.insert("related".into(), "true".into());
    }
    if n.unicode != n.name {
        f.insert("unicode".into(), n.unicode.clone());
    }
    for finding in &n.findings {
        match finding {
            DnsFinding::DanglingCname { target, .. } => {
                f.insert("dangling_cname".into(), target.clone());
            }
            DnsFinding::CnameLoop { .. } => {
                f.insert("cname_loop".into(), "true".into());
            }
            DnsFinding::DanglingAddress { address, .. } => {
                f.insert("dangling_address".into(), address.to_string());
            }
            _ => {}
        }
    }
    f
}

/// Zone-level facts, all under `zone.`.
pub fn zone(z: &ZoneObservation) -> Facts {
    let mut f = Facts::new();
    let open: Vec<&str> = z
        .axfr
        .iter()
        .filter(|a| a.result == "allowed")
        .map(|a| a.server.as_str())
        .collect();
    if !open.is_empty() {
        f.insert("zone.axfr_open".into(), open.join(" "));
    }
    for (rtype, values) in &z.records {
        let mut values = values.clone();
        values.sort();
        f.insert(format!("zone.{rtype}"), values.join(" "));
    }
    if let Some(spf) = &z.spf {
        if let Ok(text) = serde_json::to_string(spf) {
            f.insert("zone.spf".into(), text);
        }
    }
    if let Some(dmarc) = &z.dmarc {
        if let Ok(text) = serde_json::to_string(dmarc) {
            f.insert("zone.dmarc".into(), text);
        }
    }
    if !z.wildcards.is_empty() {
        let levels: Vec<&str> = z.wildcards.keys().map(String::as_str).collect();
        f.insert("zone.wildcards".into(), levels.join(" "));
    }
    f
}

/// Replaces the facts in `old` that `new` speaks for: zone facts for a zone observation,
/// name facts for a name observation.
pub fn merge_part(old: &Facts, new: Facts, zone_part: bool) -> Facts {
    let mut merged: Facts = old
        .iter()
        .filter(|(k, _)| k.starts_with("zone.") != zone_part)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    merged.extend(new);
    merged
}

/// Field-by-field differences, in field order.
pub fn diff(old: &Facts, new: &Facts) -> Vec<(String, Option<String>, Option<String>)> {
    let mut out = Vec::new();
    for (k, v) in old {
        match new.get(k) {
            Some(nv) if nv == v => {}
            other => out.push((k.clone(), Some(v.clone()), other.cloned())),
        }
    }
    for (k, v) in new {
        if !old.contains_key(k) {
            out.push((k.clone(), None, Some(v.clone())));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aperture_fingerprints::session::Banner;

    #[test]
    fn volatile_fields_are_not_facts() {
        let mut banner = Banner {
            protocol: "mysql".into(),
            text: "5.5.5-10.11.6-MariaDB".into(),
            ..Default::default()
        };
        banner.fields.insert("connection_id".into(), "31".into());
        banner.fields.insert("version".into(), "10.11.6".into());
        let report = ServiceReport {
            product: Some("MariaDB".into()),
            banner: Some(banner),
            ..Default::default()
        };
        let f = service(Some(&report)).expect("facts");
        assert_eq!(f.get("banner.version").map(String::as_str), Some("10.11.6"));
        assert!(!f.keys().any(|k| k.contains("connection_id")));
    }

    #[test]
    fn silent_grabs_keep_old_facts() {
        let mut report = ServiceReport::default();
        report.grab.silent = true;
        assert_eq!(service(Some(&report)), None);
        assert_eq!(service(None), None);
    }

    #[test]
    fn a_host_that_accepts_everything_is_one_service_saying_so() {
        let report = ServiceReport {
            answers_every_port: Some(128),
            ..ServiceReport::default()
        };
        let f = service(Some(&report)).expect("facts");
        assert_eq!(
            f.get("answers_every_port").map(String::as_str),
            Some("true")
        );
        assert!(!f.contains_key("service"), "no protocol is claimed: {f:?}");
    }

    #[test]
    fn diffs_name_each_field() {
        let old: Facts = [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        let new: Facts = [("b".into(), "3".into()), ("c".into(), "4".into())].into();
        let d = diff(&old, &new);
        assert_eq!(
            d,
            vec![
                ("a".into(), Some("1".into()), None),
                ("b".into(), Some("2".into()), Some("3".into())),
                ("c".into(), None, Some("4".into())),
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn zone_and_name_facts_merge_without_clobbering() {
        let old: Facts = [
            ("zone.axfr_open".into(), "ns1".into()),
            ("dns.A".into(), "1".into()),
        ]
        .into();
        let merged = merge_part(&old, [("dns.A".into(), "2".into())].into(), false);
        assert_eq!(
            merged.get("zone.axfr_open").map(String::as_str),
            Some("ns1")
        );
        assert_eq!(merged.get("dns.A").map(String::as_str), Some("2"));
        let merged = merge_part(&merged, Facts::new(), true);
        assert!(!merged.contains_key("zone.axfr_open"));
    }
}
