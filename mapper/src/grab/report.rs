//! Turning raw grab results into the reported facts: parse HTTP, hash the favicon,
//! summarise certificates, identify the product. All parsing is `fingerprints`' code.

use super::Grabbed;
use aperture_fingerprints::http_facts::{favicon_hash, parse_response, Parsed};
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

pub fn report(g: &Grabbed) -> ServiceReport {
    let mut r = ServiceReport {
        banner: g.banner.clone(),
        grab: GrabStats {
            connections: g.attempts,
            silent: g.silent,
            millis: g.elapsed.as_millis() as u64,
        },
        ..ServiceReport::default()
    };
    if let Some(b) = &g.banner {
        if b.protocol != "unknown" {
            r.service = Some(b.protocol.clone());
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
            jarm: None,
            error: t.error.clone(),
        });
    }
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
