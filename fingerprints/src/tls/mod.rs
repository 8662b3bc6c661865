//! TLS without a TLS library: our own ClientHello bytes, a bounded parser of the
//! server's first flight, and JARM.
//!
//! rustls refuses TLS 1.0/1.1 and old cipher suites, yet those servers are exactly the
//! exposures worth reporting, so the certificate and the negotiated parameters are read
//! here from the plaintext handshake. Everything is I/O-free: the driver in `mapper`
//! sends what [`hello`] and [`jarm`] build and feeds what it receives to [`record`].

pub mod grab;
pub mod hello;
pub mod jarm;
pub mod record;
pub mod suites;

pub use grab::LegacyTlsSession;
pub use hello::{client_hello, legacy_hello, HelloOptions};
pub use jarm::{jarm_hash, jarm_probes, jarm_read_server_hello};
pub use record::{parse_server_flight, Flight, ServerFlight};

/// Protocol version numbers as they appear on the wire.
pub const SSL3: u16 = 0x0300;
pub const TLS1_0: u16 = 0x0301;
pub const TLS1_1: u16 = 0x0302;
pub const TLS1_2: u16 = 0x0303;
pub const TLS1_3: u16 = 0x0304;

/// Human name of a wire version (`TLSv1.2`), as OpenSSL and nmap print it.
pub fn version_name(version: u16) -> Option<&'static str> {
    match version {
        0x0002 => Some("SSLv2"),
        SSL3 => Some("SSLv3"),
        TLS1_0 => Some("TLSv1.0"),
        TLS1_1 => Some("TLSv1.1"),
        TLS1_2 => Some("TLSv1.2"),
        TLS1_3 => Some("TLSv1.3"),
        // Drafts of 1.3 were deployed for a while (0x7f00 | draft number).
        0x7f00..=0x7fff => Some("TLSv1.3-draft"),
        _ => None,
    }
}

/// GREASE values (RFC 8701): servers must ignore them, so they probe tolerance.
pub const GREASE: [u16; 16] = [
    0x0a0a, 0x1a1a, 0x2a2a, 0x3a3a, 0x4a4a, 0x5a5a, 0x6a6a, 0x7a7a, 0x8a8a, 0x9a9a, 0xaaaa, 0xbaba,
    0xcaca, 0xdada, 0xeaea, 0xfafa,
];

/// Whether a 16-bit code point is a GREASE value.
pub fn is_grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && (value >> 8) == (value & 0xff)
}

/// Lowercase hex, used by the fingerprints and the JARM strings.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_values_are_recognised() {
        for g in GREASE {
            assert!(is_grease(g), "{g:04x}");
        }
        assert!(!is_grease(0x0a1a));
        assert!(!is_grease(0xc02f));
        assert!(!is_grease(0x0000));
    }

    #[test]
    fn version_names() {
        assert_eq!(version_name(TLS1_2), Some("TLSv1.2"));
        assert_eq!(version_name(SSL3), Some("SSLv3"));
        assert_eq!(version_name(0x7f17), Some("TLSv1.3-draft"));
        assert_eq!(version_name(0x0305), None);
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
    }
}
