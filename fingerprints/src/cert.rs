//! What a certificate says, and what is wrong with it.
//!
//! Input is one DER certificate as a server sent it (hostile bytes); output is a flat,
//! serialisable summary that storage diffs and the exposure policy reads. The clock and
//! the expected host name are passed in, so the same bytes always summarise the same.

use crate::tls::hex;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::{PublicKey, RSAPublicKey};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// Why a certificate could not be summarised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("empty certificate")]
    Empty,
    #[error("malformed certificate: {0}")]
    Malformed(String),
}

/// Kind of subject public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KeyAlgorithm {
    Rsa,
    Ec,
    Ed25519,
    Ed448,
    Dsa,
    Unknown,
}

/// Subject alternative names by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectAltNames {
    pub dns: Vec<String>,
    /// Textual IPv4/IPv6 addresses.
    pub ip: Vec<String>,
    pub email: Vec<String>,
    pub uri: Vec<String>,
}

impl SubjectAltNames {
    fn len(&self) -> usize {
        self.dns.len() + self.ip.len() + self.email.len() + self.uri.len()
    }
}

/// SAN entries kept; certificates with thousands exist (shared hosting) and the DER
/// size already bounds them, this just keeps summaries of sane size.
pub const MAX_SANS: usize = 1024;

/// One certificate, summarised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSummary {
    /// RFC 4514 string (most specific RDN first).
    pub subject: String,
    pub subject_cn: Option<String>,
    pub issuer: String,
    pub issuer_cn: Option<String>,
    pub sans: SubjectAltNames,
    /// Serial number, lowercase hex of its DER content bytes.
    pub serial: String,
    /// X.509 version as printed (1, 2 or 3).
    pub version: u32,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_before_unix: i64,
    pub not_after: String,
    pub not_after_unix: i64,
    pub key_algorithm: KeyAlgorithm,
    /// RSA modulus bits, EC curve size, DSA key size (approximate), Ed25519 256.
    pub key_bits: Option<u32>,
    /// EC curve (`P-256`, `secp256k1`, `brainpoolP256r1`, or the OID).
    pub curve: Option<String>,
    /// OpenSSL-style name (`sha256WithRSAEncryption`, `ecdsa-with-SHA256`), or the OID.
    pub signature_algorithm: String,
    pub is_ca: bool,
    pub self_signed: bool,
    /// 0 for the leaf, as sent by the server.
    pub chain_position: usize,
    /// Lowercase hex SHA-256 of the DER.
    pub sha256: String,
    pub sha1: String,
    pub expired: bool,
    pub not_yet_valid: bool,
    /// Valid now but expiring within the given number of days.
    pub expiring_soon: bool,
    /// Whole days from `now` until `not_after` (negative once expired).
    pub days_until_expiry: i64,
    /// `None` when no host name was given.
    pub hostname_mismatch: Option<bool>,
    /// RSA < 2048 bits, EC < 224 bits, any DSA.
    pub weak_key: bool,
    /// Signed with SHA-1 or something weaker (MD5, MD4, MD2).
    pub sha1_signature: bool,
}

/// Summarises one DER certificate. `now_unix` is the clock to judge validity by;
/// `hostname` the name the client asked for (SNI / URL host), if any.
pub fn summarize(
    der: &[u8],
    chain_position: usize,
    now_unix: i64,
    hostname: Option<&str>,
    expiring_within_days: u32,
) -> Result<CertSummary, CertError> {
    if der.is_empty() {
        return Err(CertError::Empty);
    }
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
    // Trailing bytes after the certificate are ignored; fingerprints cover the
    // certificate alone, as `openssl x509 -fingerprint` does.
    let raw = cert.as_raw();

    let subject = rfc4514(cert.subject());
    let issuer = rfc4514(cert.issuer());
    let subject_cn = common_names(cert.subject()).into_iter().next();
    let issuer_cn = common_names(cert.issuer()).into_iter().next();
    let sans = subject_alt_names(&cert);

    let not_before_unix = cert.validity().not_before.timestamp();
    let not_after_unix = cert.validity().not_after.timestamp();

    let key = key_info(&cert);
    let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
    let signature_algorithm = signature_name(&sig_oid)
        .map(str::to_owned)
        .unwrap_or_else(|| sig_oid.clone());
    let sha1_signature = WEAK_SIGNATURE_OIDS.contains(&sig_oid.as_str());

    let expired = now_unix > not_after_unix;
    let not_yet_valid = now_unix < not_before_unix;
    let remaining = not_after_unix.saturating_sub(now_unix);
    let expiring_soon =
        !expired && remaining <= i64::from(expiring_within_days).saturating_mul(86_400);
    let days_until_expiry = remaining.div_euclid(86_400);

    let weak_key = match key.algorithm {
        KeyAlgorithm::Rsa => key.bits.is_some_and(|b| b < 2048),
        KeyAlgorithm::Ec => key.bits.is_some_and(|b| b < 224),
        KeyAlgorithm::Dsa => true,
        _ => false,
    };

    let hostname_mismatch =
        hostname.map(|h| !hostname_matches(h, &sans, &common_names(cert.subject())));

    Ok(CertSummary {
        self_signed: self_signed(&cert, &key),
        subject,
        subject_cn,
        issuer,
        issuer_cn,
        sans,
        serial: hex(cert.raw_serial()),
        version: cert.version().0 + 1,
        not_before: rfc3339(not_before_unix),
        not_before_unix,
        not_after: rfc3339(not_after_unix),
        not_after_unix,
        key_algorithm: key.algorithm,
        key_bits: key.bits,
        curve: key.curve,
        signature_algorithm,
        is_ca: cert.is_ca(),
        chain_position,
        sha256: hex(&Sha256::digest(raw)),
        sha1: hex(&Sha1::digest(raw)),
        expired,
        not_yet_valid,
        expiring_soon,
        days_until_expiry,
        hostname_mismatch,
        weak_key,
        sha1_signature,
    })
}

struct KeyInfo {
    algorithm: KeyAlgorithm,
    bits: Option<u32>,
    curve: Option<String>,
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_ED448: &str = "1.3.101.113";
const OID_DSA: &str = "1.2.840.10040.4.1";

fn key_info(cert: &X509Certificate<'_>) -> KeyInfo {
    let spki = cert.public_key();
    let oid = spki.algorithm.algorithm.to_id_string();
    match oid.as_str() {
        OID_RSA | OID_RSA_PSS => {
            // x509-parser's own key_size miscounts moduli without a leading zero byte,
            // so the bits are counted here.
            let bits = RSAPublicKey::from_der(&spki.subject_public_key.data)
                .ok()
                .and_then(|(_, k)| significant_bits(k.modulus));
            KeyInfo {
                algorithm: KeyAlgorithm::Rsa,
                bits,
                curve: None,
            }
        }
        OID_EC => {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let known = curve_oid.as_deref().and_then(curve_info);
            let bits = known.map(|(_, bits)| bits).or_else(|| match spki.parsed() {
                Ok(PublicKey::EC(point)) => u32::try_from(point.key_size()).ok().filter(|&b| b > 0),
                _ => None,
            });
            KeyInfo {
                algorithm: KeyAlgorithm::Ec,
                bits,
                curve: known.map(|(name, _)| name.to_owned()).or(curve_oid),
            }
        }
        OID_ED25519 => KeyInfo {
            algorithm: KeyAlgorithm::Ed25519,
            bits: Some(256),
            curve: None,
        },
        OID_ED448 => KeyInfo {
            algorithm: KeyAlgorithm::Ed448,
            bits: Some(456),
            curve: None,
        },
        OID_DSA => {
            // The public value y is just below p, so its length approximates the
            // size of p; DSA is flagged weak whatever the size.
            let bits = match spki.parsed() {
                Ok(PublicKey::DSA(y)) => significant_bits(y).map(round_up_to_byte_multiple),
                _ => None,
            };
            KeyInfo {
                algorithm: KeyAlgorithm::Dsa,
                bits,
                curve: None,
            }
        }
        _ => KeyInfo {
            algorithm: KeyAlgorithm::Unknown,
            bits: None,
            curve: None,
        },
    }
}

fn round_up_to_byte_multiple(bits: u32) -> u32 {
    bits.div_ceil(64) * 64
}

/// Bit length of a big-endian unsigned integer (leading zero bytes ignored).
fn significant_bits(bytes: &[u8]) -> Option<u32> {
    let start = bytes.iter().position(|&b| b != 0)?;
    let rest = bytes.get(start..)?;
    let len = u32::try_from(rest.len()).ok()?;
    let top = rest.first()?;
    Some((len - 1) * 8 + (8 - top.leading_zeros()))
}

/// Curve name and size for common named curves.
fn curve_info(oid: &str) -> Option<(&'static str, u32)> {
    Some(match oid {
        "1.2.840.10045.3.1.1" => ("P-192", 192),
        "1.3.132.0.33" => ("P-224", 224),
        "1.2.840.10045.3.1.7" => ("P-256", 256),
        "1.3.132.0.34" => ("P-384", 384),
        "1.3.132.0.35" => ("P-521", 521),
        "1.3.132.0.10" => ("secp256k1", 256),
        "1.3.36.3.3.2.8.1.1.7" => ("brainpoolP256r1", 256),
        "1.3.36.3.3.2.8.1.1.11" => ("brainpoolP384r1", 384),
        "1.3.36.3.3.2.8.1.1.13" => ("brainpoolP512r1", 512),
        "1.2.156.10197.1.301" => ("SM2", 256),
        _ => return None,
    })
}

/// Signature algorithms whose hash is SHA-1 or weaker.
const WEAK_SIGNATURE_OIDS: &[&str] = &[
    "1.2.840.113549.1.1.2", // md2WithRSAEncryption
    "1.2.840.113549.1.1.3", // md4WithRSAEncryption
    "1.2.840.113549.1.1.4", // md5WithRSAEncryption
    "1.2.840.113549.1.1.5", // sha1WithRSAEncryption
    "1.3.14.3.2.29",        // sha1WithRSA (OIW)
    "1.3.14.3.2.3",         // md5WithRSA (OIW)
    "1.2.840.10045.4.1",    // ecdsa-with-SHA1
    "1.2.840.10040.4.3",    // dsa-with-sha1
    "1.3.14.3.2.27",        // dsaWithSHA1 (OIW)
];

/// OpenSSL's names, which are what people search for.
fn signature_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "1.2.840.113549.1.1.2" => "md2WithRSAEncryption",
        "1.2.840.113549.1.1.3" => "md4WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption",
        "1.3.14.3.2.29" => "sha1WithRSA",
        "1.3.14.3.2.3" => "md5WithRSA",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.10040.4.3" => "dsaWithSHA1",
        "1.3.14.3.2.27" => "dsaWithSHA1-old",
        "2.16.840.1.101.3.4.3.1" => "dsa_with_SHA224",
        "2.16.840.1.101.3.4.3.2" => "dsa_with_SHA256",
        "1.3.101.112" => "ED25519",
        "1.3.101.113" => "ED448",
        "1.2.156.10197.1.501" => "SM2-with-SM3",
        _ => return None,
    })
}

/// Self-signed: issuer equals subject and the certificate's own key verifies its
/// signature. Where the signature cannot be checked (algorithm or key size the
/// verifier does not support — RSA-1024 with SHA-256, P-521, DSA…), the key
/// identifiers decide: an authority key id differing from the subject key id means
/// another key signed it.
fn self_signed(cert: &X509Certificate<'_>, key: &KeyInfo) -> bool {
    // Byte equality is the common case; RFC 5280 name matching is case-insensitive
    // for most strings, which the RFC 4514 rendering compared loosely approximates.
    let same_name = cert.subject().as_raw() == cert.issuer().as_raw()
        || rfc4514(cert.subject()).eq_ignore_ascii_case(&rfc4514(cert.issuer()));
    if !same_name {
        return false;
    }
    let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
    // ring verifies RSA from 1024 bits with SHA-1, from 2048 bits otherwise.
    let min_rsa = if sig_oid == "1.2.840.113549.1.1.5" || sig_oid == "1.3.14.3.2.29" {
        1024
    } else {
        2048
    };
    let verifiable = key.algorithm != KeyAlgorithm::Rsa
        || key.bits.is_some_and(|b| (min_rsa..=8192).contains(&b));
    if verifiable {
        match cert.verify_signature(None) {
            Ok(()) => return true,
            Err(x509_parser::error::X509Error::SignatureUnsupportedAlgorithm) => {}
            Err(_) => return false,
        }
    }
    let mut ski = None;
    let mut aki = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => ski = Some(id.0),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0);
            }
            _ => {}
        }
    }
    match (aki, ski) {
        (Some(a), Some(s)) => a == s,
        // Self-signed certificates commonly omit the AKI (RFC 5280 §4.2.1.1 allows it).
        _ => true,
    }
}

fn subject_alt_names(cert: &X509Certificate<'_>) -> SubjectAltNames {
    let mut sans = SubjectAltNames::default();
    for ext in cert.extensions() {
        // A malformed SAN extension parses as an error variant and is skipped; the
        // rest of the certificate is still summarised.
        let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() else {
            continue;
        };
        for name in &san.general_names {
            if sans.len() >= MAX_SANS {
                return sans;
            }
            match name {
                GeneralName::DNSName(s) => sans.dns.push((*s).to_owned()),
                GeneralName::RFC822Name(s) => sans.email.push((*s).to_owned()),
                GeneralName::URI(s) => sans.uri.push((*s).to_owned()),
                GeneralName::IPAddress(b) => sans.ip.push(ip_text(b)),
                _ => {}
            }
        }
    }
    sans
}

fn ip_text(bytes: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        std::net::Ipv4Addr::from(v4).to_string()
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        std::net::Ipv6Addr::from(v6).to_string()
    } else {
        // Name constraints use address+mask (8 or 32 bytes); anything else is junk.
        format!("#{}", hex(bytes))
    }
}

const OID_CN: &str = "2.5.4.3";

fn common_names(name: &X509Name<'_>) -> Vec<String> {
    name.iter_rdn()
        .flat_map(|rdn| rdn.iter())
        .filter(|atv| atv.attr_type().to_id_string() == OID_CN)
        .filter_map(attribute_text)
        .collect()
}

/// Short names RFC 4514 defines, plus a few everyone prints the same way.
fn attribute_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "2.5.4.5" => "serialNumber",
        "2.5.4.4" => "SN",
        "2.5.4.42" => "GN",
        "2.5.4.12" => "title",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.97" => "organizationIdentifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return None,
    })
}

/// The attribute value as text, for the string types certificates use.
fn attribute_text(atv: &AttributeTypeAndValue<'_>) -> Option<String> {
    use x509_parser::asn1_rs::Tag;
    let value = atv.attr_value();
    let data = value.data;
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => Some(String::from_utf8_lossy(data).into_owned()),
        // T.61 in practice carries Latin-1.
        Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        Tag::UniversalString => Some(
            data.chunks_exact(4)
                .map(|c| {
                    char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                        .unwrap_or(char::REPLACEMENT_CHARACTER)
                })
                .collect(),
        ),
        _ => None,
    }
}

/// RFC 4514: RDNs in reverse order, `,` between them, `+` inside multi-valued ones.
fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    let key = attribute_name(&oid).map(str::to_owned).unwrap_or(oid);
                    let value = match attribute_text(atv) {
                        Some(text) => escape_rfc4514(&text),
                        // Non-string values: '#' and hex of the value's content bytes.
                        None => format!("#{}", hex(atv.attr_value().data)),
                    };
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn escape_rfc4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, ch) in value.chars().enumerate() {
        match ch {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(ch);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// RFC 3339 UTC timestamp (`2025-01-31T23:59:59Z`) from Unix seconds.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 6125 host name check: DNS SANs when there are any, else the subject CNs; IP
/// addresses against IP SANs. A wildcard is only a whole left-most label (`*.a.b`),
/// matches exactly one label, and needs two labels after it.
pub fn hostname_matches(hostname: &str, sans: &SubjectAltNames, cns: &[String]) -> bool {
    let host = normalise(hostname);
    if host.is_empty() {
        return false;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        if !sans.ip.is_empty() {
            return sans
                .ip
                .iter()
                .any(|s| s.parse::<std::net::IpAddr>().is_ok_and(|a| a == ip));
        }
        // Legacy certificates put the address in the CN; accept it only when the
        // certificate has no SANs at all.
        return sans.dns.is_empty()
            && cns
                .iter()
                .any(|cn| cn.trim().parse::<std::net::IpAddr>().is_ok_and(|a| a == ip));
    }
    let patterns: Vec<&String> = if sans.dns.is_empty() {
        cns.iter().collect()
    } else {
        sans.dns.iter().collect()
    };
    patterns.iter().any(|p| dns_matches(&normalise(p), &host))
}

fn normalise(name: &str) -> String {
    let name = name.trim();
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

fn dns_matches(pattern: &str, host: &str) -> bool {
    if pattern.is_empty() || host.contains('*') {
        return false;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            if suffix.contains('*') || suffix.split('.').filter(|l| !l.is_empty()).count() < 2 {
                return false;
            }
            match host.split_once('.') {
                Some((label, rest)) => !label.is_empty() && rest == suffix,
                None => false,
            }
        }
        // Partial-label wildcards (`f*.example.com`) are not honoured, as browsers do.
        None => !pattern.contains('*') && pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn bits() {
        assert_eq!(significant_bits(&[0x00, 0x80, 0x00]), Some(16));
        assert_eq!(significant_bits(&[0x01]), Some(1));
        assert_eq!(significant_bits(&[0x00, 0x00]), None);
        assert_eq!(significant_bits(&[]), None);
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_rfc4514("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rfc4514(" lead"), "\\ lead");
        assert_eq!(escape_rfc4514("trail "), "trail\\ ");
        assert_eq!(escape_rfc4514("#x#"), "\\#x#");
        assert_eq!(escape_rfc4514("a\"b\\c<d>e;f"), "a\\\"b\\\\c\\<d\\>e\\;f");
        assert_eq!(escape_rfc4514("nul\0"), "nul\\00");
    }

    fn sans(dns: &[&str], ip: &[&str]) -> SubjectAltNames {
        SubjectAltNames {
            dns: dns.iter().map(|s| s.to_string()).collect(),
            ip: ip.iter().map(|s| s.to_string()).collect(),
            ..SubjectAltNames::default()
        }
    }

    #[test]
    fn hostname_rules() {
        let s = sans(&["www.example.com", "*.api.example.com"], &["192.0.2.7"]);
        let cn = vec!["ignored.example.com".to_string()];
        assert!(hostname_matches("www.example.com", &s, &cn));
        assert!(hostname_matches("WWW.Example.COM.", &s, &cn));
        assert!(hostname_matches("v1.api.example.com", &s, &cn));
        assert!(!hostname_matches("a.v1.api.example.com", &s, &cn));
        assert!(!hostname_matches("api.example.com", &s, &cn));
        assert!(
            !hostname_matches("ignored.example.com", &s, &cn),
            "CN ignored when DNS SANs exist"
        );
        assert!(hostname_matches("192.0.2.7", &s, &cn));
        assert!(!hostname_matches("192.0.2.8", &s, &cn));
        assert!(!hostname_matches("", &s, &cn));
        // CN fallback without DNS SANs.
        let none = SubjectAltNames::default();
        assert!(hostname_matches(
            "legacy.example.org",
            &none,
            &["Legacy.Example.org".into()]
        ));
        assert!(hostname_matches("10.1.2.3", &none, &["10.1.2.3".into()]));
        // Wildcards that must not match.
        assert!(!hostname_matches(
            "example.com",
            &sans(&["*.com"], &[]),
            &[]
        ));
        assert!(!hostname_matches(
            "foo.example.com",
            &sans(&["f*.example.com"], &[]),
            &[]
        ));
        assert!(!hostname_matches(
            "a.b.example.com",
            &sans(&["*.*.example.com"], &[]),
            &[]
        ));
        assert!(!hostname_matches(
            "*.example.com",
            &sans(&["*.example.com"], &[]),
            &[]
        ));
        assert!(hostname_matches(
            "x.example.com",
            &sans(&["*.example.com"], &[]),
            &[]
        ));
    }

    #[test]
    fn empty_and_garbage_input() {
        assert_eq!(summarize(&[], 0, 0, None, 30), Err(CertError::Empty));
        assert!(matches!(
            summarize(b"not a certificate", 0, 0, None, 30),
            Err(CertError::Malformed(_))
        ));
    }

    // ---- Certificates made with rcgen ----

    use rcgen::{
        date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType,
        SerialNumber, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
    };

    const JAN_2024: i64 = 1_704_067_200;
    const JAN_2025: i64 = 1_735_689_600;
    const JUN_2025: i64 = 1_748_736_000;
    const DEC_15_2025: i64 = 1_765_756_800;
    const JAN_2026: i64 = 1_767_225_600;
    const FEB_2026: i64 = 1_769_904_000;

    struct Pki {
        ca: Vec<u8>,
        leaf: Vec<u8>,
    }

    fn pki() -> Pki {
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).expect("ca key");
        let mut ca = CertificateParams::default();
        ca.distinguished_name = rcgen::DistinguishedName::new();
        ca.distinguished_name.push(DnType::CountryName, "US");
        ca.distinguished_name
            .push(DnType::OrganizationName, "Aperture Test CA");
        ca.distinguished_name
            .push(DnType::CommonName, "Aperture Test Root");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.not_before = date_time_ymd(2024, 1, 1);
        ca.not_after = date_time_ymd(2030, 1, 1);
        let ca_der = ca.self_signed(&ca_key).expect("ca").der().to_vec();
        let issuer = Issuer::new(ca, ca_key);

        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("leaf key");
        let mut leaf = CertificateParams::new(vec![
            "www.example.com".to_string(),
            "*.api.example.com".to_string(),
            "192.0.2.10".to_string(),
            "2001:db8::1".to_string(),
        ])
        .expect("params");
        leaf.subject_alt_names.push(SanType::Rfc822Name(
            "admin@example.com".try_into().expect("ia5"),
        ));
        leaf.subject_alt_names.push(SanType::URI(
            "https://example.com/".try_into().expect("ia5"),
        ));
        leaf.distinguished_name = rcgen::DistinguishedName::new();
        leaf.distinguished_name
            .push(DnType::OrganizationName, "Example, Inc.");
        leaf.distinguished_name
            .push(DnType::CommonName, "www.example.com");
        leaf.serial_number = Some(SerialNumber::from_slice(&[0x0a, 0x0b, 0x0c]));
        leaf.not_before = date_time_ymd(2025, 1, 1);
        leaf.not_after = date_time_ymd(2026, 1, 1);
        leaf.use_authority_key_identifier_extension = true;
        let leaf_der = leaf
            .signed_by(&leaf_key, &issuer)
            .expect("leaf")
            .der()
            .to_vec();
        Pki {
            ca: ca_der,
            leaf: leaf_der,
        }
    }

    #[test]
    fn ca_signed_leaf_every_field() {
        let pki = pki();
        let s = summarize(&pki.leaf, 0, JUN_2025, Some("www.example.com"), 30).expect("leaf");
        assert_eq!(s.subject, "CN=www.example.com,O=Example\\, Inc.");
        assert_eq!(s.subject_cn.as_deref(), Some("www.example.com"));
        assert_eq!(s.issuer, "CN=Aperture Test Root,O=Aperture Test CA,C=US");
        assert_eq!(s.issuer_cn.as_deref(), Some("Aperture Test Root"));
        assert_eq!(s.sans.dns, vec!["www.example.com", "*.api.example.com"]);
        assert_eq!(s.sans.ip, vec!["192.0.2.10", "2001:db8::1"]);
        assert_eq!(s.sans.email, vec!["admin@example.com"]);
        assert_eq!(s.sans.uri, vec!["https://example.com/"]);
        assert_eq!(s.serial, "0a0b0c");
        assert_eq!(s.version, 3);
        assert_eq!(s.not_before, "2025-01-01T00:00:00Z");
        assert_eq!(s.not_before_unix, JAN_2025);
        assert_eq!(s.not_after, "2026-01-01T00:00:00Z");
        assert_eq!(s.not_after_unix, JAN_2026);
        assert_eq!(s.key_algorithm, KeyAlgorithm::Ec);
        assert_eq!(s.key_bits, Some(256));
        assert_eq!(s.curve.as_deref(), Some("P-256"));
        // The CA's P-384 key signed it.
        assert_eq!(s.signature_algorithm, "ecdsa-with-SHA384");
        assert!(!s.is_ca);
        assert!(!s.self_signed);
        assert_eq!(s.chain_position, 0);
        assert_eq!(s.sha256, hex(&Sha256::digest(&pki.leaf)));
        assert_eq!(s.sha1, hex(&Sha1::digest(&pki.leaf)));
        assert_eq!(s.sha256.len(), 64);
        assert!(!s.expired && !s.not_yet_valid && !s.expiring_soon);
        assert_eq!(s.days_until_expiry, 214);
        assert_eq!(s.hostname_mismatch, Some(false));
        assert!(!s.weak_key);
        assert!(!s.sha1_signature);

        let check = |host: Option<&str>| {
            summarize(&pki.leaf, 0, JUN_2025, host, 30)
                .expect("leaf")
                .hostname_mismatch
        };
        assert_eq!(check(Some("v2.api.example.com")), Some(false));
        assert_eq!(check(Some("WWW.EXAMPLE.COM.")), Some(false));
        assert_eq!(check(Some("192.0.2.10")), Some(false));
        assert_eq!(check(Some("2001:db8:0:0::1")), Some(false));
        assert_eq!(check(Some("example.com")), Some(true));
        assert_eq!(check(Some("api.example.com")), Some(true));
        assert_eq!(check(Some("192.0.2.11")), Some(true));
        assert_eq!(check(None), None);
    }

    #[test]
    fn validity_window() {
        let pki = pki();
        let at = |now: i64| summarize(&pki.leaf, 0, now, None, 30).expect("leaf");
        let soon = at(DEC_15_2025);
        assert!(soon.expiring_soon && !soon.expired);
        assert_eq!(soon.days_until_expiry, 17);
        let expired = at(FEB_2026);
        assert!(expired.expired && !expired.expiring_soon);
        assert_eq!(expired.days_until_expiry, -31);
        let early = at(JAN_2024);
        assert!(early.not_yet_valid && !early.expired);
        // The edge: exactly at not_after is still valid.
        assert!(!at(JAN_2026).expired);
        assert!(at(JAN_2026 + 1).expired);
        // Zero days of warning: only expiry itself counts.
        let s = summarize(&pki.leaf, 0, DEC_15_2025, None, 0).expect("leaf");
        assert!(!s.expiring_soon);
    }

    #[test]
    fn ca_is_self_signed() {
        let pki = pki();
        let s = summarize(&pki.ca, 1, JUN_2025, None, 30).expect("ca");
        assert!(s.self_signed);
        assert!(s.is_ca);
        assert_eq!(s.chain_position, 1);
        assert_eq!(s.key_algorithm, KeyAlgorithm::Ec);
        assert_eq!(s.key_bits, Some(384));
        assert_eq!(s.curve.as_deref(), Some("P-384"));
        assert_eq!(s.signature_algorithm, "ecdsa-with-SHA384");
        assert_eq!(s.subject, s.issuer);
        assert!(s.sans.dns.is_empty());
    }

    #[test]
    fn expired_ed25519_self_signed_without_sans() {
        let key = KeyPair::generate_for(&PKCS_ED25519).expect("key");
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, "Legacy.Example.org");
        p.not_before = date_time_ymd(2015, 3, 1);
        p.not_after = date_time_ymd(2020, 3, 1);
        let der = p.self_signed(&key).expect("cert").der().to_vec();
        let s = summarize(&der, 0, JAN_2025, Some("legacy.example.org"), 30).expect("cert");
        assert!(s.expired);
        assert!(!s.expiring_soon);
        assert_eq!(s.not_after, "2020-03-01T00:00:00Z");
        assert_eq!(s.key_algorithm, KeyAlgorithm::Ed25519);
        assert_eq!(s.key_bits, Some(256));
        assert_eq!(s.signature_algorithm, "ED25519");
        assert!(s.self_signed);
        // No SANs: the CN decides.
        assert_eq!(s.hostname_mismatch, Some(false));
        let other = summarize(&der, 0, JAN_2025, Some("www.example.org"), 30).expect("cert");
        assert_eq!(other.hostname_mismatch, Some(true));
    }

    #[test]
    fn same_name_signed_by_other_key_is_not_self_signed() {
        let k1 = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("k1");
        let k2 = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("k2");
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "twin");
        let issuer = Issuer::from_params(&p, &k1);
        let der = p.signed_by(&k2, &issuer).expect("cert").der().to_vec();
        let s = summarize(&der, 0, JAN_2025, None, 30).expect("cert");
        assert_eq!(s.subject, s.issuer);
        assert!(!s.self_signed);
    }

    #[test]
    fn summary_serialises() {
        let pki = pki();
        let s = summarize(&pki.leaf, 0, JUN_2025, Some("www.example.com"), 30).expect("leaf");
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["key_algorithm"], "ec");
        assert_eq!(json["sans"]["ip"][0], "192.0.2.10");
        let back: CertSummary = serde_json::from_value(json).expect("back");
        assert_eq!(back, s);
    }

    // ---- Fixtures made with the openssl CLI (RSA/DSA keys, SHA-1, P-521) ----

    const NB: i64 = 1_795_505_488;
    const NA: i64 = 2_110_865_488;
    const NOW: i64 = 1_800_000_000;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn rsa_1024_is_weak() {
        let s =
            summarize(&fixture("rsa1024-sha256-selfsigned.der"), 0, NOW, None, 30).expect("cert");
        assert_eq!(s.subject, "CN=weak.example.test,O=Weak Key GmbH,C=DE");
        assert_eq!(s.issuer, s.subject);
        assert_eq!(s.serial, "1024");
        assert_eq!(s.key_algorithm, KeyAlgorithm::Rsa);
        assert_eq!(s.key_bits, Some(1024));
        assert!(s.weak_key);
        assert!(!s.sha1_signature);
        assert_eq!(s.signature_algorithm, "sha256WithRSAEncryption");
        // ring cannot verify RSA-1024/SHA-256; the key identifiers decide.
        assert!(s.self_signed);
        assert_eq!(s.not_before_unix, NB);
        assert_eq!(s.not_before, "2026-11-24T07:31:28Z");
        assert_eq!(s.not_after_unix, NA);
        assert_eq!(
            s.sha256,
            "9ce23e351f789b0999309076e803291e9472f2a57a85a5a48498b42e98391d6f"
        );
        assert_eq!(s.sha1, "e9696345f93dbbf81f0c0aaf0efde128926d4dae");
        assert_eq!(s.curve, None);
    }

    #[test]
    fn sha1_signature_is_flagged() {
        let s = summarize(
            &fixture("rsa2048-sha1-selfsigned.der"),
            0,
            NOW,
            Some("x.sha1.example.test"),
            30,
        )
        .expect("cert");
        assert!(s.sha1_signature);
        assert_eq!(s.signature_algorithm, "sha1WithRSAEncryption");
        assert_eq!(s.key_bits, Some(2048));
        assert!(!s.weak_key);
        assert!(s.self_signed, "verified with ring's legacy SHA-1 support");
        assert_eq!(s.serial, "05a1");
        assert_eq!(s.sans.dns, vec!["sha1.example.test", "*.sha1.example.test"]);
        assert_eq!(s.hostname_mismatch, Some(false));
        assert_eq!(
            s.sha256,
            "cfbbf6bb71bac9749a98efe1dadb5f48766467d2009afac829e561a3e1500b3b"
        );
        assert_eq!(s.sha1, "6f15e6dc0bca23f228e2164da6a62bdabae2ff31");
    }

    #[test]
    fn p521_and_dsa() {
        let ec = summarize(&fixture("ec-p521-selfsigned.der"), 0, NOW, None, 30).expect("ec");
        assert_eq!(ec.key_algorithm, KeyAlgorithm::Ec);
        assert_eq!(ec.curve.as_deref(), Some("P-521"));
        assert_eq!(ec.key_bits, Some(521));
        assert_eq!(ec.signature_algorithm, "ecdsa-with-SHA512");
        assert!(!ec.weak_key);
        assert!(ec.self_signed);
        assert_eq!(
            ec.sha256,
            "1384710e9d28f7a2917bd99f4f6320486446d12b6727b5fc970bf4a9908ee94b"
        );

        let dsa = summarize(&fixture("dsa2048-selfsigned.der"), 0, NOW, None, 30).expect("dsa");
        assert_eq!(dsa.key_algorithm, KeyAlgorithm::Dsa);
        assert_eq!(dsa.key_bits, Some(2048));
        assert!(dsa.weak_key);
        assert_eq!(dsa.signature_algorithm, "dsa_with_SHA256");
        assert!(dsa.self_signed);
        assert_eq!(dsa.sha1, "fbc992d19691891c48cc8fc1df6a3328219ab65b");
    }

    #[test]
    fn same_name_other_key_fallback() {
        // Subject equals issuer, but the AKI names another key, and RSA-1024 cannot be
        // checked by signature.
        let s = summarize(
            &fixture("rsa1024-same-name-other-key.der"),
            0,
            NOW,
            None,
            30,
        )
        .expect("cert");
        assert_eq!(s.subject, s.issuer);
        assert!(!s.self_signed);
    }

    #[test]
    fn trailing_bytes_do_not_change_fingerprints() {
        let der = fixture("rsa2048-sha1-selfsigned.der");
        let mut padded = der.clone();
        padded.extend_from_slice(b"junk");
        let a = summarize(&der, 0, NOW, None, 30).expect("a");
        let b = summarize(&padded, 0, NOW, None, 30).expect("b");
        assert_eq!(a, b);
    }

    #[test]
    fn truncated_certificates_are_errors() {
        let der = fixture("rsa2048-sha1-selfsigned.der");
        for n in [1, 4, 10, 100, der.len() - 1] {
            assert!(summarize(&der[..n], 0, NOW, None, 30).is_err(), "{n}");
        }
    }

    proptest::proptest! {
        #[test]
        fn random_der_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let _ = summarize(&bytes, 0, NOW, Some("a.example"), 30);
        }

        #[test]
        fn der_with_sequence_header_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024)) {
            // Get past the outer SEQUENCE check so the inner parsers see the noise.
            let mut der = vec![0x30, 0x82];
            der.extend_from_slice(&(body.len() as u16).to_be_bytes());
            der.extend_from_slice(&body);
            let _ = summarize(&der, 0, NOW, Some("a.example"), 30);
        }

        #[test]
        fn mutated_certificates_never_panic(
            which in 0usize..5,
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 1..6),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            host in "[a-z*.]{0,20}",
        ) {
            let names = [
                "rsa1024-sha256-selfsigned.der",
                "rsa2048-sha1-selfsigned.der",
                "ec-p521-selfsigned.der",
                "dsa2048-selfsigned.der",
                "rsa1024-same-name-other-key.der",
            ];
            let mut der = fixture(names[which]);
            for (i, b) in edits {
                let i = i.index(der.len());
                der[i] = b;
            }
            let n = cut.index(der.len() + 1).max(der.len() * 3 / 4);
            if let Ok(s) = summarize(&der[..n], 3, NOW, Some(&host), 30) {
                proptest::prop_assert_eq!(s.chain_position, 3);
                proptest::prop_assert!(s.sans.len() <= MAX_SANS);
            }
        }
    }
}
