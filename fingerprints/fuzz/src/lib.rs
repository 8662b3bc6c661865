//! What the fuzz targets share: how an input is cut into reads, and the output bounds
//! every parser promises whatever it was fed.

use aperture_fingerprints::session::{Banner, BANNER_CAP};

/// Cuts fuzz input into the reads a peer's bytes arrive in. Each read is a length byte
/// then that many bytes: `n` (0..=254) means `n + 1` bytes, `0xff` means a two-byte
/// little-endian length follows (a read of up to 64 KiB). A short tail is the last read.
#[derive(Debug)]
pub struct Reads<'a> {
    rest: &'a [u8],
}

impl<'a> Reads<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reads { rest: data }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

impl<'a> Iterator for Reads<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&first, mut rest) = self.rest.split_first()?;
        let len = if first == 0xff {
            let (lo, hi) = (rest.first().copied()?, rest.get(1).copied()?);
            rest = &rest[2..];
            usize::from(u16::from_le_bytes([lo, hi])).max(1)
        } else {
            usize::from(first) + 1
        };
        if rest.is_empty() {
            self.rest = rest;
            return None;
        }
        let (read, tail) = rest.split_at(len.min(rest.len()));
        self.rest = tail;
        Some(read)
    }
}

/// Encodes reads in the format [`Reads`] cuts (for the seed corpora).
pub fn encode_reads(reads: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in reads {
        for piece in r.chunks(usize::from(u16::MAX)) {
            if piece.len() <= 255 {
                out.push((piece.len() - 1) as u8);
            } else {
                out.push(0xff);
                out.extend_from_slice(&(piece.len() as u16).to_le_bytes());
            }
            out.extend_from_slice(piece);
        }
    }
    out
}

/// Output bounds every session keeps whatever it was fed (the same as the unit tests'
/// `assert_bounded`).
pub fn assert_banner_bounded(b: &Banner) {
    assert!(b.fields.len() <= 32, "{} fields", b.fields.len());
    assert!(
        b.text.len() <= 4 * BANNER_CAP,
        "banner text {} bytes",
        b.text.len()
    );
    assert!(b.protocol.len() <= 40, "protocol {:?}", b.protocol);
    for (k, v) in &b.fields {
        assert!(k.len() <= 40, "key {k:?}");
        assert!(v.len() <= 8192, "value of {k}: {} bytes", v.len());
    }
}

use aperture_fingerprints::identify::Identification;

/// Protocol names banners carry (those the rules and Recog mappings key on, and a few
/// they do not), picked by one input byte.
pub const PROTOCOLS: &[&str] = &[
    "http",
    "ssh",
    "dns",
    "smtp",
    "ftp",
    "mysql",
    "imap",
    "ldap",
    "redis",
    "pop3",
    "telnet",
    "vnc",
    "smb",
    "postgres",
    "rdp",
    "nats",
    "mssql",
    "mqtt",
    "mongodb",
    "memcached",
    "tls",
    "snmp",
    "unknown",
    "HTTP",
    "",
];

/// A banner from fuzz input: byte 0 picks the protocol, byte 1 STARTTLS; the rest is
/// the text, then `key`, `value` pairs, all separated by NUL bytes.
pub fn banner_from(data: &[u8]) -> Option<Banner> {
    let [proto, tls, rest @ ..] = data else {
        return None;
    };
    let mut parts = rest.split(|&b| b == 0).map(String::from_utf8_lossy);
    let text = parts.next().unwrap_or_default().into_owned();
    let mut fields = std::collections::BTreeMap::new();
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        fields.insert(k.into_owned(), v.into_owned());
    }
    Some(Banner {
        protocol: PROTOCOLS[usize::from(*proto) % PROTOCOLS.len()].to_string(),
        text,
        fields,
        starttls: [None, Some(false), Some(true)][usize::from(*tls) % 3],
    })
}

/// What identification derives from a banner stays bounded (templates are capped, and
/// so is each capture filled into them), whatever the banner or rules.
pub fn assert_identification_bounded(id: &Identification) {
    for (what, s) in [
        ("service", Some(&id.service)),
        ("product", id.product.as_ref()),
        ("vendor", id.vendor.as_ref()),
        ("version", id.version.as_ref()),
        ("cpe", id.cpe.as_ref()),
        ("os", id.os.as_ref()),
    ] {
        if let Some(s) = s {
            assert!(s.len() <= 16 * 1024, "{what} of {} bytes", s.len());
        }
    }
    assert!(id.confidence <= 100, "confidence {}", id.confidence);
}
