//! ClientHellos encoded from hostile host names (SNI comes from user target lists,
//! DNS answers and certificate names): whatever the name, the legacy hello and the
//! ten JARM probes are well-formed TLS that an independent parser (tls-parser) reads
//! back as one ClientHello each.
#![no_main]

use aperture_fingerprints::tls::{jarm_probes, legacy_hello};
use libfuzzer_sys::fuzz_target;
use tls_parser::{parse_tls_message_handshake, TlsMessage, TlsMessageHandshake};

/// Reassembles the handshake carried by `bytes` (one or more handshake records).
fn handshake_of(bytes: &[u8]) -> Vec<u8> {
    let mut rest = bytes;
    let mut hs = Vec::new();
    while !rest.is_empty() {
        assert!(rest.len() >= 5, "truncated record header");
        assert_eq!(rest[0], 22, "not a handshake record");
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        assert!(len <= 1 << 14, "record of {len} bytes");
        assert!(rest.len() >= 5 + len, "record shorter than its length");
        hs.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
    }
    hs
}

fn assert_client_hello(bytes: &[u8], what: &str) {
    let hs = handshake_of(bytes);
    let (rest, msg) = parse_tls_message_handshake(&hs)
        .unwrap_or_else(|e| panic!("{what}: handshake does not parse: {e:?}"));
    assert!(rest.is_empty(), "{what}: bytes after the ClientHello");
    assert!(
        matches!(
            msg,
            TlsMessage::Handshake(TlsMessageHandshake::ClientHello(_))
        ),
        "{what}: not a ClientHello"
    );
}

fuzz_target!(|data: &[u8]| {
    let [a, b, name @ ..] = data else {
        return;
    };
    let host = String::from_utf8_lossy(name);
    let mut random = [0u8; 32];
    random[0] = *a;
    random[31] = *b;
    assert_client_hello(&legacy_hello(Some(&host), random), "legacy hello");
    let port = u16::from_be_bytes([*a, *b]);
    for (i, probe) in jarm_probes(&host, port, &random).iter().enumerate() {
        assert_client_hello(probe, &format!("JARM probe {i}"));
    }
});
