//! Our own ClientHello bytes.
//!
//! No RNG lives here: the random, the session id and any key share are passed in, so
//! the same options always give the same bytes (tests compare them byte for byte, and
//! JARM's hash must not depend on them anyway).

use super::{TLS1_0, TLS1_2};

/// Handshake type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
/// Record content type for handshake messages.
const HANDSHAKE: u8 = 22;
/// The largest plaintext fragment a record may carry (RFC 8446 §5.1).
const MAX_FRAGMENT: usize = 1 << 14;

/// Extension code points used by the builders.
pub mod ext {
    pub const SERVER_NAME: u16 = 0x0000;
    pub const MAX_FRAGMENT_LENGTH: u16 = 0x0001;
    pub const STATUS_REQUEST: u16 = 0x0005;
    pub const SUPPORTED_GROUPS: u16 = 0x000a;
    pub const EC_POINT_FORMATS: u16 = 0x000b;
    pub const SIGNATURE_ALGORITHMS: u16 = 0x000d;
    pub const ALPN: u16 = 0x0010;
    pub const EXTENDED_MASTER_SECRET: u16 = 0x0017;
    pub const SESSION_TICKET: u16 = 0x0023;
    pub const SUPPORTED_VERSIONS: u16 = 0x002b;
    pub const PSK_KEY_EXCHANGE_MODES: u16 = 0x002d;
    pub const KEY_SHARE: u16 = 0x0033;
    pub const RENEGOTIATION_INFO: u16 = 0xff01;
}

/// One extension, already encoded (type and body; the length is added when written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub kind: u16,
    pub data: Vec<u8>,
}

impl Extension {
    pub fn new(kind: u16, data: Vec<u8>) -> Self {
        Extension { kind, data }
    }
}

/// One entry of a TLS 1.3 `key_share` extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyShareEntry {
    pub group: u16,
    pub key_exchange: Vec<u8>,
}

/// What a ClientHello offers. `Default` is a plain TLS 1.2 hello with no suites; the
/// presets ([`legacy_options`]) fill it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloOptions {
    /// Version in the record header. 0x0301 is what browsers send: some old servers
    /// drop records that claim a newer version than they know.
    pub record_version: u16,
    /// `legacy_version` / `client_version` in the hello body: the highest offered
    /// (without `supported_versions`).
    pub client_version: u16,
    pub random: [u8; 32],
    /// At most 32 bytes are sent.
    pub session_id: Vec<u8>,
    pub cipher_suites: Vec<u16>,
    /// Empty means the mandatory `null` method alone.
    pub compression_methods: Vec<u8>,
    /// Off: no extensions block at all, as SSLv3-era clients sent it (some old stacks
    /// reject any extension).
    pub extensions: bool,
    /// Host name for SNI. IP literals and empty names are not sent (RFC 6066 §3).
    pub sni: Option<String>,
    pub alpn: Vec<Vec<u8>>,
    pub supported_groups: Vec<u16>,
    pub ec_point_formats: Vec<u8>,
    pub signature_algorithms: Vec<u16>,
    /// Empty: no `supported_versions` extension (TLS ≤ 1.2 hello).
    pub supported_versions: Vec<u16>,
    pub key_shares: Vec<KeyShareEntry>,
    pub psk_key_exchange_modes: Vec<u8>,
    pub extended_master_secret: bool,
    pub renegotiation_info: bool,
    pub session_ticket: bool,
    pub status_request: bool,
    /// Appended after the extensions above, verbatim.
    pub extra_extensions: Vec<Extension>,
}

impl Default for HelloOptions {
    fn default() -> Self {
        HelloOptions {
            record_version: TLS1_0,
            client_version: TLS1_2,
            random: [0; 32],
            session_id: Vec::new(),
            cipher_suites: Vec::new(),
            compression_methods: Vec::new(),
            extensions: true,
            sni: None,
            alpn: Vec::new(),
            supported_groups: Vec::new(),
            ec_point_formats: Vec::new(),
            signature_algorithms: Vec::new(),
            supported_versions: Vec::new(),
            key_shares: Vec::new(),
            psk_key_exchange_modes: Vec::new(),
            extended_master_secret: false,
            renegotiation_info: false,
            session_ticket: false,
            status_request: false,
            extra_extensions: Vec::new(),
        }
    }
}

/// Cipher suites of the legacy hello: modern first (so a server that honours client
/// order still picks something sane), then everything an old server might be limited
/// to — CBC, DHE/DSS, Camellia/SEED/IDEA, 3DES, RC4, single DES and export suites.
/// Anonymous and NULL suites are left out: they carry no certificate.
pub const LEGACY_CIPHER_SUITES: &[u16] = &[
    0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0x009e, 0x009f, 0xccaa, // AEAD
    0xc023, 0xc027, 0xc024, 0xc028, 0xc009, 0xc013, 0xc00a, 0xc014, // ECDHE CBC
    0x0067, 0x006b, 0x0033, 0x0039, 0x0040, 0x006a, 0x0032, 0x0038, 0x00a2, 0x00a3, // DHE
    0x009c, 0x009d, 0x003c, 0x003d, 0x002f, 0x0035, // RSA kx
    0xc004, 0xc005, 0xc00e, 0xc00f, // static ECDH
    0x0030, 0x0031, 0x0036, 0x0037, // static DH
    0x0041, 0x0084, 0x0045, 0x0088, 0x0044, 0x0087, 0x0096, 0x009a,
    0x0007, // Camellia, SEED, IDEA
    0xc012, 0xc008, 0x0016, 0x0013, 0x000a, 0xc003, 0xc00d, 0x0010, 0x000d, // 3DES
    0xc011, 0xc007, 0xc002, 0xc00c, 0x0005, 0x0004, // RC4
    0x0015, 0x0012, 0x0009, // single DES
    0x0014, 0x0011, 0x0008, 0x0006, 0x0003, // export
    0x00ff, // TLS_EMPTY_RENEGOTIATION_INFO_SCSV, understood by servers that reject the extension
];

/// Signature algorithms of the legacy hello, SHA-1 and DSA included.
pub const LEGACY_SIGNATURE_ALGORITHMS: &[u16] = &[
    0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0402, 0x0203, 0x0201,
    0x0202, 0x0303, 0x0301, 0x0302,
];

/// x25519, P-256, P-384, P-521, and the old secp curves some appliances insist on.
pub const LEGACY_GROUPS: &[u16] = &[0x001d, 0x0017, 0x0018, 0x0019, 0x0016, 0x0015, 0x0013];

/// Options of [`legacy_hello`], for callers that want to vary one field.
pub fn legacy_options(sni: Option<&str>, random: [u8; 32]) -> HelloOptions {
    HelloOptions {
        record_version: TLS1_0,
        client_version: TLS1_2,
        random,
        cipher_suites: LEGACY_CIPHER_SUITES.to_vec(),
        sni: sni.map(str::to_owned),
        supported_groups: LEGACY_GROUPS.to_vec(),
        ec_point_formats: vec![0],
        signature_algorithms: LEGACY_SIGNATURE_ALGORITHMS.to_vec(),
        extended_master_secret: true,
        ..HelloOptions::default()
    }
}

/// A TLS 1.0–1.2 hello with a broad cipher list, to get a certificate from servers
/// that rustls cannot talk to. The server answers in plaintext up to ServerHelloDone.
pub fn legacy_hello(sni: Option<&str>, random: [u8; 32]) -> Vec<u8> {
    client_hello(&legacy_options(sni, random))
}

/// The complete ClientHello record(s) for these options.
pub fn client_hello(opts: &HelloOptions) -> Vec<u8> {
    encode_hello(opts, &standard_extensions(opts))
}

/// Extensions [`client_hello`] sends, in a fixed order.
pub fn standard_extensions(opts: &HelloOptions) -> Vec<Extension> {
    let mut list = Vec::new();
    if let Some(name) = opts.sni.as_deref().and_then(sni_host) {
        list.push(Extension::new(ext::SERVER_NAME, server_name_body(name)));
    }
    if opts.extended_master_secret {
        list.push(Extension::new(ext::EXTENDED_MASTER_SECRET, Vec::new()));
    }
    if opts.renegotiation_info {
        list.push(Extension::new(ext::RENEGOTIATION_INFO, vec![0]));
    }
    if !opts.supported_groups.is_empty() {
        list.push(Extension::new(
            ext::SUPPORTED_GROUPS,
            u16_list(&opts.supported_groups),
        ));
    }
    if !opts.ec_point_formats.is_empty() {
        list.push(Extension::new(
            ext::EC_POINT_FORMATS,
            u8_prefixed(&opts.ec_point_formats),
        ));
    }
    if opts.session_ticket {
        list.push(Extension::new(ext::SESSION_TICKET, Vec::new()));
    }
    if opts.status_request {
        // OCSP, no responder ids, no request extensions.
        list.push(Extension::new(ext::STATUS_REQUEST, vec![1, 0, 0, 0, 0]));
    }
    if !opts.alpn.is_empty() {
        list.push(Extension::new(ext::ALPN, alpn_body(&opts.alpn)));
    }
    if !opts.signature_algorithms.is_empty() {
        list.push(Extension::new(
            ext::SIGNATURE_ALGORITHMS,
            u16_list(&opts.signature_algorithms),
        ));
    }
    if !opts.key_shares.is_empty() {
        list.push(Extension::new(
            ext::KEY_SHARE,
            key_share_body(&opts.key_shares),
        ));
    }
    if !opts.psk_key_exchange_modes.is_empty() {
        list.push(Extension::new(
            ext::PSK_KEY_EXCHANGE_MODES,
            u8_prefixed(&opts.psk_key_exchange_modes),
        ));
    }
    if !opts.supported_versions.is_empty() {
        let mut body = Vec::new();
        for v in &opts.supported_versions {
            body.extend_from_slice(&v.to_be_bytes());
        }
        list.push(Extension::new(ext::SUPPORTED_VERSIONS, u8_prefixed(&body)));
    }
    list.extend(opts.extra_extensions.iter().cloned());
    list
}

/// Encodes the hello with exactly these extensions, in this order (JARM needs control
/// over every byte). The extension list is cut at the last one that still fits the
/// 16-bit length; if `opts.extensions` is false none is sent.
pub fn encode_hello(opts: &HelloOptions, extensions: &[Extension]) -> Vec<u8> {
    let mut body = Vec::with_capacity(512);
    body.extend_from_slice(&opts.client_version.to_be_bytes());
    body.extend_from_slice(&opts.random);
    let sid = &opts.session_id[..opts.session_id.len().min(32)];
    body.push(len_u8(sid.len()));
    body.extend_from_slice(sid);
    // 32767 suites fill the 16-bit length; nobody sends more.
    let suites = &opts.cipher_suites[..opts.cipher_suites.len().min(0x7fff)];
    body.extend_from_slice(&u16_list(suites));
    let compression: &[u8] = if opts.compression_methods.is_empty() {
        &[0]
    } else {
        &opts.compression_methods[..opts.compression_methods.len().min(255)]
    };
    body.extend_from_slice(&u8_prefixed(compression));
    if opts.extensions {
        let mut block = Vec::new();
        for e in extensions {
            let data = &e.data[..e.data.len().min(0xffff)];
            if block.len() + 4 + data.len() > 0xffff {
                break;
            }
            block.extend_from_slice(&e.kind.to_be_bytes());
            block.extend_from_slice(&len_u16(data.len()).to_be_bytes());
            block.extend_from_slice(data);
        }
        body.extend_from_slice(&len_u16(block.len()).to_be_bytes());
        body.extend_from_slice(&block);
    }

    let mut handshake = Vec::with_capacity(body.len() + 4);
    handshake.push(CLIENT_HELLO);
    handshake.extend_from_slice(&u24(body.len()));
    handshake.extend_from_slice(&body);

    // Larger than one record only with absurd options, but then split properly.
    let mut out = Vec::with_capacity(handshake.len() + 5);
    for chunk in handshake.chunks(MAX_FRAGMENT) {
        out.push(HANDSHAKE);
        out.extend_from_slice(&opts.record_version.to_be_bytes());
        out.extend_from_slice(&len_u16(chunk.len()).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// The name to put in SNI, if any: no IP literals, no empty name, no trailing dot.
fn sni_host(name: &str) -> Option<&str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let bracketless = name.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() || name.len() > 255 || bracketless.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    Some(name)
}

/// `server_name` body: list length, type host_name, name length, name.
pub fn server_name_body(host: &str) -> Vec<u8> {
    let name = &host.as_bytes()[..host.len().min(0xffff - 5)];
    let mut out = Vec::with_capacity(name.len() + 5);
    out.extend_from_slice(&len_u16(name.len() + 3).to_be_bytes());
    out.push(0);
    out.extend_from_slice(&len_u16(name.len()).to_be_bytes());
    out.extend_from_slice(name);
    out
}

/// ALPN body; names longer than 255 bytes or empty cannot be encoded and are skipped.
pub fn alpn_body(protocols: &[Vec<u8>]) -> Vec<u8> {
    let mut list = Vec::new();
    for p in protocols {
        if p.is_empty() || p.len() > 255 || list.len() + 1 + p.len() > 0xfff0 {
            continue;
        }
        list.push(len_u8(p.len()));
        list.extend_from_slice(p);
    }
    let mut out = Vec::with_capacity(list.len() + 2);
    out.extend_from_slice(&len_u16(list.len()).to_be_bytes());
    out.extend_from_slice(&list);
    out
}

fn key_share_body(entries: &[KeyShareEntry]) -> Vec<u8> {
    let mut list = Vec::new();
    for e in entries {
        let key = &e.key_exchange[..e.key_exchange.len().min(0x7fff)];
        if list.len() + 4 + key.len() > 0xfff0 {
            break;
        }
        list.extend_from_slice(&e.group.to_be_bytes());
        list.extend_from_slice(&len_u16(key.len()).to_be_bytes());
        list.extend_from_slice(key);
    }
    let mut out = Vec::with_capacity(list.len() + 2);
    out.extend_from_slice(&len_u16(list.len()).to_be_bytes());
    out.extend_from_slice(&list);
    out
}

/// A 16-bit-length-prefixed list of u16 values.
fn u16_list(values: &[u16]) -> Vec<u8> {
    let values = &values[..values.len().min(0x7fff)];
    let mut out = Vec::with_capacity(values.len() * 2 + 2);
    out.extend_from_slice(&len_u16(values.len() * 2).to_be_bytes());
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

/// An 8-bit-length-prefixed byte string (cut at 255 bytes).
fn u8_prefixed(bytes: &[u8]) -> Vec<u8> {
    let bytes = &bytes[..bytes.len().min(255)];
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.push(len_u8(bytes.len()));
    out.extend_from_slice(bytes);
    out
}

// Callers cut every slice to the field's range before encoding its length; saturating
// keeps a mistake from wrapping into a short length that would desynchronise the peer.
fn len_u8(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

fn len_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn u24(n: usize) -> [u8; 3] {
    let n = u32::try_from(n).unwrap_or(0x00ff_ffff).min(0x00ff_ffff);
    let b = n.to_be_bytes();
    [b[1], b[2], b[3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{TLS1_1, TLS1_3};
    use proptest::prelude::*;
    use tls_parser::{
        parse_tls_extensions, parse_tls_plaintext, TlsExtension, TlsMessage, TlsMessageHandshake,
    };

    /// Parses our record with tls-parser and returns (record version, hello version,
    /// random, session id, suites, compression, raw extensions).
    #[allow(clippy::type_complexity)]
    fn reparse(
        bytes: &[u8],
    ) -> (
        u16,
        u16,
        Vec<u8>,
        Vec<u8>,
        Vec<u16>,
        Vec<u8>,
        Option<Vec<u8>>,
    ) {
        let (rest, record) = parse_tls_plaintext(bytes).expect("record parses");
        assert!(rest.is_empty(), "trailing bytes after the record");
        assert_eq!(record.msg.len(), 1);
        let TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)) = &record.msg[0] else {
            panic!("not a ClientHello: {:?}", record.msg[0]);
        };
        (
            record.hdr.version.0,
            ch.version.0,
            ch.random.to_vec(),
            ch.session_id.map(<[u8]>::to_vec).unwrap_or_default(),
            ch.ciphers.iter().map(|c| c.0).collect(),
            ch.comp.iter().map(|c| c.0).collect(),
            ch.ext.map(<[u8]>::to_vec),
        )
    }

    #[test]
    fn legacy_hello_structure() {
        let random = [7u8; 32];
        let bytes = legacy_hello(Some("old.example.net"), random);
        let (rv, cv, rnd, sid, suites, comp, exts) = reparse(&bytes);
        assert_eq!(rv, 0x0301);
        assert_eq!(cv, 0x0303);
        assert_eq!(rnd, random.to_vec());
        assert!(sid.is_empty());
        assert_eq!(suites, LEGACY_CIPHER_SUITES.to_vec());
        // RC4, 3DES and plain RSA CBC must be offered: that is the point of this hello.
        for s in [0x0004, 0x0005, 0x000a, 0x002f, 0x0035, 0x0009] {
            assert!(suites.contains(&s), "{s:04x} missing");
        }
        assert_eq!(comp, vec![0]);
        let exts = exts.expect("extensions present");
        let (rest, parsed) = parse_tls_extensions(&exts).expect("extensions parse");
        assert!(rest.is_empty());
        assert!(parsed.iter().any(
            |e| matches!(e, TlsExtension::SNI(v) if v.len() == 1 && v[0].1 == b"old.example.net")
        ));
        assert!(parsed
            .iter()
            .any(|e| matches!(e, TlsExtension::EllipticCurves(_))));
        assert!(parsed
            .iter()
            .any(|e| matches!(e, TlsExtension::SignatureAlgorithms(_))));
        assert!(!parsed
            .iter()
            .any(|e| matches!(e, TlsExtension::SupportedVersions(_))));
    }

    #[test]
    fn legacy_hello_without_sni_and_with_ip() {
        for sni in [
            None,
            Some("192.0.2.1"),
            Some("2001:db8::1"),
            Some("[::1]"),
            Some(""),
        ] {
            let bytes = legacy_hello(sni, [0; 32]);
            let (.., exts) = reparse(&bytes);
            let exts = exts.expect("extensions");
            let (_, parsed) = parse_tls_extensions(&exts).expect("parse");
            assert!(
                !parsed.iter().any(|e| matches!(e, TlsExtension::SNI(_))),
                "{sni:?} sent as SNI"
            );
        }
    }

    #[test]
    fn sni_trailing_dot_is_stripped() {
        let bytes = legacy_hello(Some("www.example.org."), [0; 32]);
        let (.., exts) = reparse(&bytes);
        let exts = exts.expect("extensions");
        let (_, parsed) = parse_tls_extensions(&exts).expect("parse");
        assert!(parsed
            .iter()
            .any(|e| matches!(e, TlsExtension::SNI(v) if v[0].1 == b"www.example.org")));
    }

    #[test]
    fn tls13_hello_with_alpn_key_share_and_versions() {
        let opts = HelloOptions {
            record_version: TLS1_0,
            client_version: TLS1_2,
            random: [1; 32],
            session_id: vec![9; 32],
            cipher_suites: vec![0x1301, 0x1302, 0xc02f],
            sni: Some("h.example".into()),
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            supported_groups: vec![0x001d],
            signature_algorithms: vec![0x0804, 0x0403],
            supported_versions: vec![TLS1_3, TLS1_2],
            key_shares: vec![KeyShareEntry {
                group: 0x001d,
                key_exchange: vec![5; 32],
            }],
            psk_key_exchange_modes: vec![1],
            ..HelloOptions::default()
        };
        let bytes = client_hello(&opts);
        let (_, _, _, sid, suites, _, exts) = reparse(&bytes);
        assert_eq!(sid, vec![9; 32]);
        assert_eq!(suites, vec![0x1301, 0x1302, 0xc02f]);
        let exts = exts.expect("extensions");
        let (rest, parsed) = parse_tls_extensions(&exts).expect("parse");
        assert!(rest.is_empty());
        assert!(parsed.iter().any(|e| matches!(e, TlsExtension::ALPN(v)
            if v == &vec![&b"h2"[..], &b"http/1.1"[..]])));
        assert!(parsed
            .iter()
            .any(|e| matches!(e, TlsExtension::SupportedVersions(v)
            if v.iter().map(|x| x.0).collect::<Vec<_>>() == vec![TLS1_3, TLS1_2])));
        assert!(parsed
            .iter()
            .any(|e| matches!(e, TlsExtension::KeyShare(_))));
        assert!(parsed
            .iter()
            .any(|e| matches!(e, TlsExtension::PskExchangeModes(v) if v == &vec![1])));
    }

    #[test]
    fn no_extensions_block_when_disabled() {
        let opts = HelloOptions {
            record_version: 0x0300,
            client_version: TLS1_1,
            cipher_suites: vec![0x000a],
            extensions: false,
            sni: Some("x.example".into()),
            ..HelloOptions::default()
        };
        let bytes = client_hello(&opts);
        let (rv, cv, _, _, suites, _, exts) = reparse(&bytes);
        assert_eq!((rv, cv), (0x0300, TLS1_1));
        assert_eq!(suites, vec![0x000a]);
        assert!(exts.is_none());
        // 5 record + 4 handshake + 2 + 32 + 1 + 2 + 2 + 2 bytes, nothing else.
        assert_eq!(bytes.len(), 5 + 4 + 2 + 32 + 1 + 2 + 2 + 2);
    }

    #[test]
    fn oversized_hello_is_split_into_records() {
        let opts = HelloOptions {
            cipher_suites: (0..0x7fffu16).collect(),
            extra_extensions: vec![Extension::new(0xfe00, vec![0xab; 20_000])],
            ..HelloOptions::default()
        };
        let bytes = client_hello(&opts);
        // Walk the records and rebuild the handshake message.
        let mut pos = 0;
        let mut hs = Vec::new();
        while pos < bytes.len() {
            assert_eq!(bytes[pos], 22);
            let len = usize::from(u16::from_be_bytes([bytes[pos + 3], bytes[pos + 4]]));
            assert!(len <= MAX_FRAGMENT);
            hs.extend_from_slice(&bytes[pos + 5..pos + 5 + len]);
            pos += 5 + len;
        }
        assert_eq!(pos, bytes.len());
        let body_len = u32::from_be_bytes([0, hs[1], hs[2], hs[3]]) as usize;
        assert_eq!(body_len + 4, hs.len());
    }

    proptest! {
        #[test]
        fn any_options_encode_to_parseable_hello(
            rv in any::<u16>(),
            cv in any::<u16>(),
            random in any::<[u8; 32]>(),
            sid in proptest::collection::vec(any::<u8>(), 0..40),
            suites in proptest::collection::vec(any::<u16>(), 0..200),
            sni in proptest::option::of("[a-z0-9.-]{0,80}"),
            alpn in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..5),
            groups in proptest::collection::vec(any::<u16>(), 0..20),
            versions in proptest::collection::vec(any::<u16>(), 0..10),
            extensions in any::<bool>(),
        ) {
            let opts = HelloOptions {
                record_version: rv,
                client_version: cv,
                random,
                session_id: sid.clone(),
                cipher_suites: suites.clone(),
                sni,
                alpn,
                supported_groups: groups,
                supported_versions: versions,
                extensions,
                ..HelloOptions::default()
            };
            let bytes = client_hello(&opts);
            let (prv, pcv, prnd, psid, psuites, _, exts) = reparse(&bytes);
            prop_assert_eq!(prv, rv);
            prop_assert_eq!(pcv, cv);
            prop_assert_eq!(prnd, random.to_vec());
            prop_assert_eq!(psid, sid[..sid.len().min(32)].to_vec());
            prop_assert_eq!(psuites, suites);
            if let Some(exts) = exts {
                prop_assert!(extensions);
                // Generic walk: every extension length must land exactly on the end.
                let mut pos = 0;
                while pos < exts.len() {
                    prop_assert!(pos + 4 <= exts.len());
                    let len = usize::from(u16::from_be_bytes([exts[pos + 2], exts[pos + 3]]));
                    pos += 4 + len;
                }
                prop_assert_eq!(pos, exts.len());
            } else {
                prop_assert!(!extensions);
            }
        }
    }
}
