//! Incremental parser of the server's first flight (ServerHello … ServerHelloDone).
//!
//! The driver passes every byte received so far; each call re-parses from the start.
//! That keeps the parser stateless (nothing to desynchronise) at a cost bounded by
//! [`MAX_HANDSHAKE_BYTES`]: the flight is small and parsing it is cheap.

use super::suites::cipher_name;
use super::{hex, TLS1_3};
use serde::Serialize;

/// Content types of TLS records.
const CT_CHANGE_CIPHER_SPEC: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPLICATION_DATA: u8 = 23;

/// Handshake message types a server sends before it needs our reply.
const HS_HELLO_REQUEST: u8 = 0;
const HS_SERVER_HELLO: u8 = 2;
const HS_NEW_SESSION_TICKET: u8 = 4;
const HS_CERTIFICATE: u8 = 11;
const HS_SERVER_KEY_EXCHANGE: u8 = 12;
const HS_CERTIFICATE_REQUEST: u8 = 13;
const HS_SERVER_HELLO_DONE: u8 = 14;
const HS_CERTIFICATE_STATUS: u8 = 22;

const EXT_ALPN: u16 = 0x0010;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;

/// Largest record payload accepted: 2^14 plaintext plus the 2048 bytes RFC 5246 allows
/// for compression/encryption expansion.
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;
/// Bound on the reassembled handshake bytes of one flight.
pub const MAX_HANDSHAKE_BYTES: usize = 64 * 1024;
/// Certificates kept from the chain; the rest are counted, not stored.
pub const MAX_CERTIFICATES: usize = 16;
/// Bound on records walked; a real flight is a handful, a hostile one could be empty
/// records forever.
pub const MAX_RECORDS: usize = 1024;
/// Warning alerts remembered.
const MAX_WARNINGS: usize = 8;

/// `SHA-256("HelloRetryRequest")`: a ServerHello with this random is a TLS 1.3 HRR.
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Where the parse of the bytes so far stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Flight {
    /// Valid so far; wait for more bytes.
    Incomplete,
    /// The plaintext part of the flight is complete (ServerHelloDone, or a TLS 1.3
    /// ServerHello after which everything is encrypted, or an abbreviated handshake).
    Complete(Box<ServerFlight>),
    /// The server answered with an alert (fatal, or close_notify) instead.
    Alert { level: u8, description: u8 },
    /// The first bytes are not a TLS handshake or alert record.
    NotTls,
    /// It looked like TLS but broke the protocol or a bound.
    Malformed(FlightError),
}

/// How a TLS-looking answer broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize)]
#[non_exhaustive]
pub enum FlightError {
    #[error("record header is invalid")]
    BadRecord,
    #[error("record longer than 2^14+2048 bytes")]
    RecordTooLong,
    #[error("more than {MAX_RECORDS} records")]
    TooManyRecords,
    #[error("handshake larger than {MAX_HANDSHAKE_BYTES} bytes")]
    HandshakeTooLarge,
    #[error("first handshake message is not a ServerHello")]
    UnexpectedMessage,
    #[error("ServerHello is malformed")]
    BadServerHello,
    #[error("Certificate message is malformed")]
    BadCertificate,
    #[error("alert record is malformed")]
    BadAlert,
    #[error("non-handshake record before the ServerHello")]
    UnexpectedRecord,
}

/// What the plaintext flight told us.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerFlight {
    /// Version of the first record header.
    pub record_version: u16,
    /// `legacy_version` of the ServerHello body.
    pub legacy_version: u16,
    /// Negotiated version: `supported_versions` when present, else `legacy_version`.
    pub version: u16,
    pub version_name: Option<&'static str>,
    #[serde(serialize_with = "as_hex")]
    pub random: [u8; 32],
    #[serde(serialize_with = "as_hex")]
    pub session_id: Vec<u8>,
    pub cipher_suite: u16,
    pub cipher_name: Option<&'static str>,
    pub compression: u8,
    /// Extension types of the ServerHello, in the server's order.
    pub extensions: Vec<u16>,
    /// Protocol selected by ALPN (lossy UTF-8).
    pub alpn: Option<String>,
    /// DER certificates, leaf first, at most [`MAX_CERTIFICATES`]. Not serialised:
    /// `cert::summarize` turns each into the facts worth storing.
    #[serde(skip)]
    pub certificates: Vec<Vec<u8>>,
    /// How many certificates the server sent (may exceed `certificates.len()`).
    pub certificate_count: usize,
    /// TLS 1.3 negotiated: the certificate is encrypted and absent here.
    pub tls13: bool,
    /// The ServerHello was a TLS 1.3 HelloRetryRequest.
    pub hello_retry_request: bool,
    pub server_key_exchange: bool,
    pub certificate_request: bool,
    /// A CertificateStatus (stapled OCSP) message was sent.
    pub ocsp_stapled: bool,
    /// The server resumed or otherwise skipped to ChangeCipherSpec (abbreviated
    /// handshake): no certificate follows in plaintext.
    pub abbreviated: bool,
    /// Descriptions of warning alerts received before the end of the flight.
    pub warnings: Vec<u8>,
}

fn as_hex<S: serde::Serializer, T: AsRef<[u8]>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(v.as_ref()))
}

/// Parses everything the server sent so far.
pub fn parse_server_flight(bytes: &[u8]) -> Flight {
    parse(bytes).0
}

/// What is known so far even if the flight is not complete — for a driver whose
/// connection closed or whose byte cap was reached before ServerHelloDone.
pub fn partial_server_flight(bytes: &[u8]) -> Option<ServerFlight> {
    match parse(bytes) {
        (Flight::Complete(f), _) => Some(*f),
        (_, partial) => partial,
    }
}

/// Standard name of an alert description (RFC 8446 §6, plus the TLS 1.0–1.2 ones).
pub fn alert_name(description: u8) -> Option<&'static str> {
    Some(match description {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return None,
    })
}

/// Whether a record header prefix could start a TLS record.
fn plausible_header(prefix: &[u8], first: bool) -> bool {
    let ct_ok = |ct: u8| {
        if first {
            // A server's first record is its hello or an alert.
            ct == CT_HANDSHAKE || ct == CT_ALERT
        } else {
            (CT_CHANGE_CIPHER_SPEC..=CT_APPLICATION_DATA).contains(&ct)
        }
    };
    match prefix {
        [] => true,
        [ct] => ct_ok(*ct),
        [ct, major] => ct_ok(*ct) && *major == 3,
        [ct, major, minor, ..] => ct_ok(*ct) && *major == 3 && *minor <= 4,
    }
}

/// State of one parse pass.
#[derive(Default)]
struct Pass {
    flight: Option<ServerFlight>,
    /// Reassembled handshake bytes, and how far messages have been consumed.
    hs: Vec<u8>,
    hs_pos: usize,
}

enum Step {
    Continue,
    Done(Flight),
}

pub(crate) fn parse(bytes: &[u8]) -> (Flight, Option<ServerFlight>) {
    let mut pass = Pass::default();
    let result = walk(bytes, &mut pass);
    (result, pass.flight)
}

fn walk(bytes: &[u8], pass: &mut Pass) -> Flight {
    let mut pos = 0usize;
    let mut records = 0usize;
    loop {
        let rest = bytes.get(pos..).unwrap_or_default();
        let first = records == 0;
        if rest.len() < 5 {
            if plausible_header(rest, first) {
                return Flight::Incomplete;
            }
            return if first {
                Flight::NotTls
            } else {
                Flight::Malformed(FlightError::BadRecord)
            };
        }
        if !plausible_header(&rest[..3], first) {
            return if first {
                Flight::NotTls
            } else {
                Flight::Malformed(FlightError::BadRecord)
            };
        }
        let ct = rest[0];
        let record_version = u16::from_be_bytes([rest[1], rest[2]]);
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len > MAX_RECORD_LEN {
            // A first "record" this long is some other protocol that happens to start
            // with 0x16 0x03.
            return if first {
                Flight::NotTls
            } else {
                Flight::Malformed(FlightError::RecordTooLong)
            };
        }
        records += 1;
        if records > MAX_RECORDS {
            return Flight::Malformed(FlightError::TooManyRecords);
        }
        let Some(payload) = rest.get(5..5 + len) else {
            return Flight::Incomplete;
        };
        pos += 5 + len;

        let step = match ct {
            CT_ALERT => on_alert(payload, pass),
            CT_HANDSHAKE => on_handshake(payload, record_version, pass),
            CT_CHANGE_CIPHER_SPEC | CT_APPLICATION_DATA => {
                // After a ServerHello, CCS means an abbreviated (resumed) handshake and
                // nothing more is plaintext; before one it is nonsense.
                match pass.flight.take() {
                    Some(mut f) => {
                        f.abbreviated = true;
                        Step::Done(Flight::Complete(Box::new(f)))
                    }
                    _ => Step::Done(Flight::Malformed(FlightError::UnexpectedRecord)),
                }
            }
            _ => Step::Done(Flight::Malformed(FlightError::BadRecord)),
        };
        if let Step::Done(flight) = step {
            return flight;
        }
    }
}

fn on_alert(payload: &[u8], pass: &mut Pass) -> Step {
    let [level, description, ..] = *payload else {
        return Step::Done(Flight::Malformed(FlightError::BadAlert));
    };
    // Warnings such as unrecognized_name do not end the handshake; close_notify does.
    if level == 1 && description != 0 {
        if let Some(f) = pass.flight.as_mut() {
            if f.warnings.len() < MAX_WARNINGS {
                f.warnings.push(description);
            }
        }
        return Step::Continue;
    }
    Step::Done(Flight::Alert { level, description })
}

fn on_handshake(payload: &[u8], record_version: u16, pass: &mut Pass) -> Step {
    if pass.hs.len() + payload.len() > MAX_HANDSHAKE_BYTES {
        return Step::Done(Flight::Malformed(FlightError::HandshakeTooLarge));
    }
    pass.hs.extend_from_slice(payload);
    loop {
        let avail = pass.hs.get(pass.hs_pos..).unwrap_or_default();
        let [msg_type, a, b, c, ..] = *avail else {
            return Step::Continue;
        };
        let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
        if len > MAX_HANDSHAKE_BYTES {
            return Step::Done(Flight::Malformed(FlightError::HandshakeTooLarge));
        }
        let Some(body) = avail.get(4..4 + len) else {
            return Step::Continue;
        };
        // Copy out so `pass` can be mutated while the message is handled; bounded by
        // MAX_HANDSHAKE_BYTES.
        let body = body.to_vec();
        pass.hs_pos += 4 + len;
        if let Step::Done(flight) = on_message(msg_type, &body, record_version, pass) {
            return Step::Done(flight);
        }
    }
}

fn on_message(msg_type: u8, body: &[u8], record_version: u16, pass: &mut Pass) -> Step {
    let Some(flight) = pass.flight.as_mut() else {
        // HelloRequest may precede anything and means nothing here.
        if msg_type == HS_HELLO_REQUEST {
            return Step::Continue;
        }
        if msg_type != HS_SERVER_HELLO {
            return Step::Done(Flight::Malformed(FlightError::UnexpectedMessage));
        }
        let Some(mut hello) = server_hello(body) else {
            return Step::Done(Flight::Malformed(FlightError::BadServerHello));
        };
        hello.record_version = record_version;
        let tls13 = hello.tls13;
        pass.flight = Some(hello);
        if tls13 {
            // Everything after a 1.3 ServerHello (or HRR) is encrypted or needs a new
            // ClientHello: the plaintext part is over.
            return finish(pass);
        }
        return Step::Continue;
    };
    match msg_type {
        HS_CERTIFICATE => {
            let Some((certs, count)) = certificate_list(body) else {
                return Step::Done(Flight::Malformed(FlightError::BadCertificate));
            };
            flight.certificates = certs;
            flight.certificate_count = count;
        }
        HS_SERVER_KEY_EXCHANGE => flight.server_key_exchange = true,
        HS_CERTIFICATE_REQUEST => flight.certificate_request = true,
        HS_CERTIFICATE_STATUS => flight.ocsp_stapled = true,
        HS_SERVER_HELLO_DONE => return finish(pass),
        // A ticket before CCS is part of an abbreviated handshake; the CCS ends it.
        HS_NEW_SESSION_TICKET | HS_HELLO_REQUEST => {}
        // A second ServerHello or anything else is not a valid flight; keep what we
        // have rather than failing, the certificate may already be here.
        _ => {}
    }
    Step::Continue
}

fn finish(pass: &mut Pass) -> Step {
    match pass.flight.take() {
        Some(f) => Step::Done(Flight::Complete(Box::new(f))),
        None => Step::Done(Flight::Malformed(FlightError::UnexpectedMessage)),
    }
}

/// A cursor over a byte slice whose reads fail instead of panicking.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.buf.get(..n)?, self.buf.get(n..)?);
        self.buf = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

fn server_hello(body: &[u8]) -> Option<ServerFlight> {
    let mut r = Reader { buf: body };
    let legacy_version = r.u16()?;
    let random: [u8; 32] = r.take(32)?.try_into().ok()?;
    let sid_len = usize::from(r.u8()?);
    if sid_len > 32 {
        return None;
    }
    let session_id = r.take(sid_len)?.to_vec();
    let cipher_suite = r.u16()?;
    let compression = r.u8()?;
    let mut flight = ServerFlight {
        legacy_version,
        version: legacy_version,
        random,
        session_id,
        cipher_suite,
        cipher_name: cipher_name(cipher_suite),
        compression,
        hello_retry_request: random == HRR_RANDOM,
        ..ServerFlight::default()
    };
    // Extensions are optional (SSLv3 and many TLS 1.0 servers send none).
    if !r.is_empty() {
        let ext_len = usize::from(r.u16()?);
        let mut exts = Reader {
            buf: r.take(ext_len)?,
        };
        while !exts.is_empty() {
            let kind = exts.u16()?;
            let len = usize::from(exts.u16()?);
            let data = exts.take(len)?;
            flight.extensions.push(kind);
            match kind {
                EXT_SUPPORTED_VERSIONS => {
                    if let [a, b] = *data {
                        flight.version = u16::from_be_bytes([a, b]);
                    }
                }
                EXT_ALPN => flight.alpn = alpn_selected(data),
                _ => {}
            }
        }
    }
    flight.tls13 = flight.version == TLS1_3
        || (0x7f00..=0x7fff).contains(&flight.version)
        || flight.hello_retry_request;
    flight.version_name = super::version_name(flight.version);
    Some(flight)
}

/// The one protocol name of a ServerHello ALPN extension.
fn alpn_selected(data: &[u8]) -> Option<String> {
    let mut r = Reader { buf: data };
    let list_len = usize::from(r.u16()?);
    let mut list = Reader {
        buf: r.take(list_len)?,
    };
    let name_len = usize::from(list.u8()?);
    let name = list.take(name_len)?;
    Some(String::from_utf8_lossy(name).into_owned())
}

/// TLS ≤ 1.2 Certificate body: a 24-bit list of 24-bit-length DER blobs. Returns the
/// first [`MAX_CERTIFICATES`] and the total count.
fn certificate_list(body: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    let mut r = Reader { buf: body };
    let total = r.u24()?;
    let mut list = Reader {
        buf: r.take(total)?,
    };
    let mut certs = Vec::new();
    let mut count = 0usize;
    while !list.is_empty() {
        let len = list.u24()?;
        let der = list.take(len)?;
        count += 1;
        if certs.len() < MAX_CERTIFICATES {
            certs.push(der.to_vec());
        }
    }
    Some((certs, count))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A record around `payload`.
    pub(crate) fn record(ct: u8, version: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![ct];
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// A handshake message.
    pub(crate) fn message(msg_type: u8, body: &[u8]) -> Vec<u8> {
        let len = body.len() as u32;
        let mut out = vec![msg_type];
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.extend_from_slice(body);
        out
    }

    pub(crate) fn server_hello_body(
        version: u16,
        suite: u16,
        extensions: Option<&[(u16, Vec<u8>)]>,
    ) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend_from_slice(&[0x42; 32]);
        b.push(32);
        b.extend_from_slice(&[0x11; 32]);
        b.extend_from_slice(&suite.to_be_bytes());
        b.push(0);
        if let Some(exts) = extensions {
            let mut block = Vec::new();
            for (kind, data) in exts {
                block.extend_from_slice(&kind.to_be_bytes());
                block.extend_from_slice(&(data.len() as u16).to_be_bytes());
                block.extend_from_slice(data);
            }
            b.extend_from_slice(&(block.len() as u16).to_be_bytes());
            b.extend_from_slice(&block);
        }
        b
    }

    pub(crate) fn certificate_body(certs: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for c in certs {
            list.extend_from_slice(&(c.len() as u32).to_be_bytes()[1..]);
            list.extend_from_slice(c);
        }
        let mut b = (list.len() as u32).to_be_bytes()[1..].to_vec();
        b.extend_from_slice(&list);
        b
    }

    /// A TLS 1.2 flight: hello (renegotiation_info, ALPN h2), two certs, SKE, done —
    /// all in one record, as OpenSSL sends it.
    pub(crate) fn tls12_flight() -> Vec<u8> {
        let alpn = vec![0, 3, 2, b'h', b'2'];
        let hello = server_hello_body(
            0x0303,
            0xc02f,
            Some(&[(0xff01, vec![0]), (0x0010, alpn), (0x000b, vec![1, 0])]),
        );
        let mut hs = message(2, &hello);
        hs.extend(message(
            11,
            &certificate_body(&[b"leaf-der-bytes", b"intermediate-der"]),
        ));
        hs.extend(message(12, &[3, 0, 0x17, 0]));
        hs.extend(message(14, &[]));
        record(22, 0x0303, &hs)
    }

    fn complete(f: Flight) -> ServerFlight {
        match f {
            Flight::Complete(f) => *f,
            other => panic!("not complete: {other:?}"),
        }
    }

    #[test]
    fn tls12_flight_in_one_record() {
        let f = complete(parse_server_flight(&tls12_flight()));
        assert_eq!(f.version, 0x0303);
        assert_eq!(f.version_name, Some("TLSv1.2"));
        assert_eq!(f.cipher_suite, 0xc02f);
        assert_eq!(f.cipher_name, Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"));
        assert_eq!(f.alpn.as_deref(), Some("h2"));
        assert_eq!(f.extensions, vec![0xff01, 0x0010, 0x000b]);
        assert_eq!(
            f.certificates,
            vec![b"leaf-der-bytes".to_vec(), b"intermediate-der".to_vec()]
        );
        assert_eq!(f.certificate_count, 2);
        assert!(f.server_key_exchange);
        assert!(!f.tls13);
        assert_eq!(f.session_id, vec![0x11; 32]);
        assert_eq!(f.random, [0x42; 32]);
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let bytes = tls12_flight();
        for n in 0..bytes.len() {
            assert_eq!(
                parse_server_flight(&bytes[..n]),
                Flight::Incomplete,
                "prefix {n}"
            );
        }
    }

    #[test]
    fn messages_spanning_records_and_one_message_per_record() {
        // Split the handshake stream into 7-byte records: every message spans records.
        let full = tls12_flight();
        let hs = &full[5..];
        let mut bytes = Vec::new();
        for chunk in hs.chunks(7) {
            bytes.extend(record(22, 0x0303, chunk));
        }
        let f = complete(parse_server_flight(&bytes));
        assert_eq!(f.certificates.len(), 2);
        assert_eq!(f.alpn.as_deref(), Some("h2"));
        for n in 0..bytes.len() {
            assert_eq!(parse_server_flight(&bytes[..n]), Flight::Incomplete, "{n}");
        }
    }

    #[test]
    fn sslv3_hello_without_extensions() {
        let mut hs = message(2, &server_hello_body(0x0300, 0x0005, None));
        hs.extend(message(11, &certificate_body(&[b"c"])));
        hs.extend(message(14, &[]));
        let f = complete(parse_server_flight(&record(22, 0x0300, &hs)));
        assert_eq!(f.version_name, Some("SSLv3"));
        assert_eq!(f.cipher_name, Some("TLS_RSA_WITH_RC4_128_SHA"));
        assert!(f.extensions.is_empty());
        assert_eq!(f.record_version, 0x0300);
    }

    #[test]
    fn tls13_server_hello_completes_without_certificates() {
        let key_share = {
            let mut v = vec![0x00, 0x1d, 0x00, 0x20];
            v.extend_from_slice(&[9; 32]);
            v
        };
        let hello = server_hello_body(
            0x0303,
            0x1301,
            Some(&[(0x002b, vec![0x03, 0x04]), (0x0033, key_share)]),
        );
        let mut bytes = record(22, 0x0303, &message(2, &hello));
        // The encrypted rest: CCS then application data.
        bytes.extend(record(20, 0x0303, &[1]));
        bytes.extend(record(23, 0x0303, &[0xaa; 100]));
        let f = complete(parse_server_flight(&bytes));
        assert!(f.tls13);
        assert_eq!(f.version, 0x0304);
        assert_eq!(f.legacy_version, 0x0303);
        assert_eq!(f.version_name, Some("TLSv1.3"));
        assert!(f.certificates.is_empty());
        assert_eq!(f.cipher_name, Some("TLS_AES_128_GCM_SHA256"));
    }

    #[test]
    fn hello_retry_request_is_tls13() {
        let mut hello = server_hello_body(0x0303, 0x1301, Some(&[(0x002b, vec![3, 4])]));
        hello[2..34].copy_from_slice(&HRR_RANDOM);
        let f = complete(parse_server_flight(&record(
            22,
            0x0303,
            &message(2, &hello),
        )));
        assert!(f.hello_retry_request && f.tls13);
    }

    #[test]
    fn fatal_alert_and_warnings() {
        let alert = record(21, 0x0301, &[2, 40]);
        assert_eq!(
            parse_server_flight(&alert),
            Flight::Alert {
                level: 2,
                description: 40
            }
        );
        assert_eq!(alert_name(40), Some("handshake_failure"));
        // close_notify ends the exchange even at warning level.
        assert_eq!(
            parse_server_flight(&record(21, 0x0303, &[1, 0])),
            Flight::Alert {
                level: 1,
                description: 0
            }
        );
        // A warning unrecognized_name, then the normal flight.
        let mut bytes = record(21, 0x0303, &[1, 112]);
        bytes.extend(tls12_flight());
        assert_eq!(parse_server_flight(&bytes[..7]), Flight::Incomplete);
        let f = complete(parse_server_flight(&bytes));
        assert_eq!(f.certificates.len(), 2);
        // Warning after the ServerHello is remembered.
        let full = tls12_flight();
        let hs = &full[5..];
        let split = 4 + (usize::from(hs[2]) << 8 | usize::from(hs[3]));
        let mut bytes = record(22, 0x0303, &hs[..split]);
        bytes.extend(record(21, 0x0303, &[1, 112]));
        bytes.extend(record(22, 0x0303, &hs[split..]));
        assert_eq!(complete(parse_server_flight(&bytes)).warnings, vec![112]);
        // Short alert record.
        assert_eq!(
            parse_server_flight(&record(21, 0x0303, &[2])),
            Flight::Malformed(FlightError::BadAlert)
        );
    }

    #[test]
    fn not_tls() {
        assert_eq!(
            parse_server_flight(b"SSH-2.0-OpenSSH_9.6\r\n"),
            Flight::NotTls
        );
        assert_eq!(
            parse_server_flight(b"HTTP/1.1 400 Bad Request\r\n"),
            Flight::NotTls
        );
        assert_eq!(parse_server_flight(&[0x16, 0x01]), Flight::NotTls);
        assert_eq!(parse_server_flight(&[0x16, 0x03, 0x09]), Flight::NotTls);
        // Application data first: not a handshake answer.
        assert_eq!(parse_server_flight(&[23, 3, 3, 0, 1, 0]), Flight::NotTls);
        // Absurd first record length.
        assert_eq!(parse_server_flight(&[22, 3, 1, 0xff, 0xff]), Flight::NotTls);
        assert_eq!(parse_server_flight(&[]), Flight::Incomplete);
        assert_eq!(parse_server_flight(&[22, 3]), Flight::Incomplete);
    }

    #[test]
    fn malformed_cases() {
        // First handshake message is a Certificate.
        let bytes = record(22, 0x0303, &message(11, &certificate_body(&[b"x"])));
        assert_eq!(
            parse_server_flight(&bytes),
            Flight::Malformed(FlightError::UnexpectedMessage)
        );
        // Session id length 33.
        let mut hello = server_hello_body(0x0303, 0xc02f, None);
        hello[34] = 33;
        assert_eq!(
            parse_server_flight(&record(22, 0x0303, &message(2, &hello))),
            Flight::Malformed(FlightError::BadServerHello)
        );
        // Certificate entry longer than its list.
        let mut hs = message(2, &server_hello_body(0x0303, 0xc02f, None));
        hs.extend(message(11, &[0, 0, 4, 0, 0, 9, 1]));
        assert_eq!(
            parse_server_flight(&record(22, 0x0303, &hs)),
            Flight::Malformed(FlightError::BadCertificate)
        );
        // Handshake message claiming 16 MiB.
        let bytes = record(22, 0x0303, &[2, 0xff, 0xff, 0xff]);
        assert_eq!(
            parse_server_flight(&bytes),
            Flight::Malformed(FlightError::HandshakeTooLarge)
        );
        // Garbage second record header.
        let mut bytes = record(
            22,
            0x0303,
            &message(2, &server_hello_body(0x0303, 0xc02f, None)),
        );
        bytes.extend_from_slice(&[0x99, 3, 3, 0, 0]);
        assert_eq!(
            parse_server_flight(&bytes),
            Flight::Malformed(FlightError::BadRecord)
        );
    }

    #[test]
    fn certificate_count_is_bounded() {
        let certs: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 10]).collect();
        let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
        let mut hs = message(2, &server_hello_body(0x0303, 0x002f, None));
        hs.extend(message(11, &certificate_body(&refs)));
        hs.extend(message(14, &[]));
        let f = complete(parse_server_flight(&record(22, 0x0303, &hs)));
        assert_eq!(f.certificates.len(), MAX_CERTIFICATES);
        assert_eq!(f.certificate_count, 40);
    }

    #[test]
    fn handshake_bound_is_enforced() {
        let big = vec![0u8; 20_000];
        let mut hs = message(2, &server_hello_body(0x0303, 0x002f, None));
        hs.extend(message(11, &certificate_body(&[&big, &big, &big, &big])));
        let mut bytes = Vec::new();
        for chunk in hs.chunks(16_384) {
            bytes.extend(record(22, 0x0303, chunk));
        }
        assert_eq!(
            parse_server_flight(&bytes),
            Flight::Malformed(FlightError::HandshakeTooLarge)
        );
        // What was learned before the bound is still available.
        let partial = partial_server_flight(&bytes).expect("hello seen");
        assert_eq!(partial.cipher_suite, 0x002f);
    }

    #[test]
    fn empty_records_are_bounded() {
        let mut bytes = Vec::new();
        for _ in 0..(MAX_RECORDS + 1) {
            bytes.extend(record(22, 0x0303, &[]));
        }
        assert_eq!(
            parse_server_flight(&bytes),
            Flight::Malformed(FlightError::TooManyRecords)
        );
    }

    #[test]
    fn abbreviated_handshake() {
        let mut bytes = record(
            22,
            0x0303,
            &message(2, &server_hello_body(0x0303, 0xc02f, None)),
        );
        assert_eq!(parse_server_flight(&bytes), Flight::Incomplete);
        assert!(partial_server_flight(&bytes).is_some());
        bytes.extend(record(20, 0x0303, &[1]));
        let f = complete(parse_server_flight(&bytes));
        assert!(f.abbreviated);
    }

    #[test]
    fn flight_serialises() {
        let f = complete(parse_server_flight(&tls12_flight()));
        let json = serde_json::to_value(&f).expect("serialise");
        assert_eq!(json["cipher_name"], "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
        assert_eq!(json["session_id"], "11".repeat(32));
        assert_eq!(json["certificate_count"], 2);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = parse_server_flight(&bytes);
            let _ = partial_server_flight(&bytes);
        }

        #[test]
        fn tls_looking_random_records_never_panic(
            records in proptest::collection::vec(
                (prop_oneof![Just(20u8), Just(21), Just(22), Just(23), any::<u8>()],
                 0u8..6,
                 proptest::collection::vec(any::<u8>(), 0..300)),
                0..12)
        ) {
            let mut bytes = Vec::new();
            for (ct, minor, payload) in records {
                bytes.extend(record(ct, 0x0300 | u16::from(minor), &payload));
            }
            if let Flight::Complete(f) = parse_server_flight(&bytes) {
                prop_assert!(f.certificates.len() <= MAX_CERTIFICATES);
            }
        }

        #[test]
        fn mutated_flights_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = tls12_flight();
            for (i, b) in edits {
                let i = i.index(bytes.len());
                bytes[i] = b;
            }
            let n = cut.index(bytes.len() + 1);
            let _ = parse_server_flight(&bytes[..n]);
            if let Flight::Complete(f) = parse_server_flight(&bytes) {
                prop_assert!(f.certificates.iter().map(Vec::len).sum::<usize>() <= bytes.len());
            }
        }

        #[test]
        fn hostile_lengths(
            len in any::<u16>(),
            hs_len in any::<u32>(),
            fill in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut payload = vec![2];
            payload.extend_from_slice(&hs_len.to_be_bytes()[1..]);
            payload.extend_from_slice(&fill);
            let mut bytes = vec![22, 3, 3];
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(&payload);
            let _ = parse_server_flight(&bytes);
        }
    }
}
