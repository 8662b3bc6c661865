//! X.509 certificate summaries from arbitrary DER (the leaf and chain a TLS server
//! sends). Byte 0 picks the host name checked against the names; the rest is DER.
#![no_main]

use aperture_fingerprints::cert::{hostname_matches, rfc3339, summarize, CertSummary};
use libfuzzer_sys::fuzz_target;

/// 2026-12-07, so validity math runs on real dates.
const NOW: i64 = 1_796_601_600;

fuzz_target!(|data: &[u8]| {
    let [pick, der @ ..] = data else {
        return;
    };
    let host = match pick % 4 {
        0 => None,
        1 => Some("www.example.test"),
        2 => Some("192.0.2.1"),
        _ => Some("*.xn--bcher-kva.example"),
    };
    let position = usize::from(pick / 4);
    if let Some(head) = der.get(..8) {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(head);
        let _ = rfc3339(i64::from_le_bytes(raw));
    }
    if let Ok(s) = summarize(der, position, NOW, host, u32::from(*pick) * 30) {
        assert_eq!(s.chain_position, position);
        assert_eq!(s.sha256.len(), 64);
        assert_eq!(s.sha1.len(), 40);
        let _ = rfc3339(s.not_before_unix);
        // Stored and served as JSON: it must come back the same.
        let json = serde_json::to_string(&s).expect("summary serialises");
        let back: CertSummary = serde_json::from_str(&json).expect("summary deserialises");
        assert_eq!(back, s);
        let cns: Vec<String> = s.subject_cn.iter().cloned().collect();
        for h in ["example.test", "a.b.example.test", "", "*", "::1"] {
            let _ = hostname_matches(h, &s.sans, &cns);
        }
    }
});
