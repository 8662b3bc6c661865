//! Turning raw grab results into the reported facts: parse HTTP, hash the favicon,
//! summarise certificates, identify the product. All parsing is `fingerprints`' code.

use super::{GrabTarget, Grabbed};
use aperture_fingerprints::cert::summarize;
use aperture_fingerprints::http_facts::{favicon_hash, parse_response, Parsed};
use aperture_fingerprints::identify::Identifier;
use aperture_fingerprints::report::{GrabStats, HttpReport, ServiceReport, TlsReport};

fn http_facts(bytes: &[u8]) -> Option<aperture_fingerprints::http_facts::HttpFacts> {
    match parse_response(bytes) {
        Ok(Parsed::Complete { facts, .. }) => Some(facts),
        Ok(Parsed::Incomplete { partial }) => partial,
        Err(_) => None,
    }
}

/// The favicon hash, only for a 200 answer with a body (a 404 page is not an icon).
fn favicon(bytes: &[u8]) -> Option<i32> {
    let facts = http_facts(bytes)?;
    if facts.status != 200 || facts.body_length == 0 {
        return None;
    }
    let body_start = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let body = bytes.get(body_start..)?;
    // Chunked or truncated bodies would hash differently from what browsers fetch.
    (body.len() == facts.body_length).then(|| favicon_hash(body))
}

/// `now_unix` dates the certificate checks; `expiring_days` is the "expiring soon" window.
pub fn report(
    g: &Grabbed,
    target: &GrabTarget,
    now_unix: i64,
    expiring_days: u32,
    identifier: Option<&Identifier>,
) -> ServiceReport {
    let mut r = ServiceReport {
        banner: g.banner.clone(),
        grab: GrabStats {
            connections: g.attempts + g.extra_connections,
            silent: g.silent,
            millis: g.elapsed.as_millis() as u64,
        },
        ..ServiceReport::default()
    };
    if let Some(b) = &g.banner {
        if b.protocol != "unknown" {
            r.service = Some(b.protocol.clone());
        }
        if let Some(id) = identifier.and_then(|i| i.identify(b)) {
            r.service = Some(id.service);
            r.product = id.product;
            r.vendor = id.vendor;
            r.version = id.version;
            r.cpe = id.cpe;
            r.os = id.os;
            r.risk = Some(id.risk);
            r.cleartext_auth = id.cleartext_auth && g.tls.as_ref().is_none_or(|t| !t.starttls);
            r.confidence = Some(id.confidence);
            r.rule = id.rule_id;
        }
    }
    if let Some(t) = &g.tls {
        r.tls = Some(TlsReport {
            version: t.version.clone(),
            cipher: t.cipher.clone(),
            alpn: t.alpn.clone(),
            sni: t.sni.clone(),
            legacy: t.legacy,
            starttls: t.starttls,
            jarm: g.jarm.clone(),
            error: t.error.clone(),
            certificate_errors: Vec::new(),
        });
        // Mismatch is judged against the name we asked for, else the address we dialled.
        let name = t
            .sni
            .clone()
            .or_else(|| target.hostname.clone())
            .unwrap_or_else(|| target.ip.to_string());
        for (position, der) in t.chain.iter().enumerate() {
            match summarize(der, position, now_unix, Some(&name), expiring_days) {
                Ok(summary) => r.certificate.push(summary),
                Err(e) => {
                    if let Some(tls) = r.tls.as_mut() {
                        tls.certificate_errors
                            .push(format!("certificate {position}: {e}"));
                    }
                }
            }
        }
    }
    r.unauth = g.unauth.clone();
    if let Some(bytes) = &g.http_response {
        if let Some(facts) = http_facts(bytes) {
            r.http = Some(HttpReport {
                facts,
                favicon_hash: g.favicon_response.as_deref().and_then(favicon),
            });
        }
    }
    r
}
