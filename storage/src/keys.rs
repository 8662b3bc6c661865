//! Names of things in the store: tenants, asset keys, and the byte keys of the one sled
//! tree everything lives in.
//!
//! Every record key starts with a one-letter record type and the tenant, so a tenant's
//! data is a set of prefixes (queries cannot wander into another tenant's records) and a
//! tenant's assets sort by kind, then address, then port — an address or CIDR filter is a
//! key range.

use crate::error::StoreError;
pub use aperture_fingerprints::Proto;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// A tenant's id: 1–63 of `a-z 0-9 -`, not starting with `-`. Short and plain because it
/// appears in every key and in URLs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantId(String);

impl TenantId {
    pub fn new(id: &str) -> Result<TenantId, StoreError> {
        let ok = !id.is_empty()
            && id.len() <= 63
            && !id.starts_with('-')
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(TenantId(id.to_owned()))
        } else {
            Err(StoreError::Invalid(format!(
                "tenant id {id:?}: use 1-63 characters of a-z, 0-9 and '-', not starting with '-'"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TenantId::new(&s)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The four kinds of asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AssetKind {
    Host,
    Service,
    Domain,
    Certificate,
}

impl AssetKind {
    fn tag(self) -> u8 {
        match self {
            AssetKind::Host => b'h',
            AssetKind::Service => b's',
            AssetKind::Domain => b'd',
            AssetKind::Certificate => b'c',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AssetKind::Host => "host",
            AssetKind::Service => "service",
            AssetKind::Domain => "domain",
            AssetKind::Certificate => "certificate",
        }
    }
}

impl FromStr for AssetKind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "host" => Ok(AssetKind::Host),
            "service" => Ok(AssetKind::Service),
            "domain" => Ok(AssetKind::Domain),
            "certificate" => Ok(AssetKind::Certificate),
            _ => Err(StoreError::Invalid(format!(
                "asset kind {s:?}: use host, service, domain or certificate"
            ))),
        }
    }
}

/// The stable identity of an asset. Its text form (`service:198.18.0.7:443/tcp`,
/// `service:198.18.0.7:53/udp`, `domain:www.example.com`, `certificate:<sha256>`,
/// `host:198.18.0.7`) is what users and URLs see; the byte form orders addresses
/// numerically and domains by reversed labels, so a zone's names are one key range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AssetKey {
    Host(IpAddr),
    /// Address, port, transport. TCP keys are what they were before UDP arrived (text
    /// `…/tcp`, bytes `s<addr><port>`); a UDP key appends `u` to the bytes, so stores
    /// written before need no migration and TCP 53 and UDP 53 of a host are two assets
    /// that sort next to each other.
    Service(IpAddr, u16, Proto),
    /// ASCII (punycode), lowercase, no trailing dot.
    Domain(String),
    /// Lowercase hex SHA-256 of the DER.
    Certificate(String),
}

impl AssetKey {
    pub fn kind(&self) -> AssetKind {
        match self {
            AssetKey::Host(_) => AssetKind::Host,
            AssetKey::Service(..) => AssetKind::Service,
            AssetKey::Domain(_) => AssetKind::Domain,
            AssetKey::Certificate(_) => AssetKind::Certificate,
        }
    }

    pub fn address(&self) -> Option<IpAddr> {
        match self {
            AssetKey::Host(ip) | AssetKey::Service(ip, ..) => Some(*ip),
            _ => None,
        }
    }

    pub fn port(&self) -> Option<u16> {
        match self {
            AssetKey::Service(_, port, _) => Some(*port),
            _ => None,
        }
    }

    /// The transport of a service; `None` for other kinds.
    pub fn proto(&self) -> Option<Proto> {
        match self {
            AssetKey::Service(_, _, proto) => Some(*proto),
            _ => None,
        }
    }

    /// A TCP service (every service key before UDP).
    pub fn tcp(ip: IpAddr, port: u16) -> AssetKey {
        AssetKey::Service(ip, port, Proto::Tcp)
    }

    pub fn udp(ip: IpAddr, port: u16) -> AssetKey {
        AssetKey::Service(ip, port, Proto::Udp)
    }

    pub fn domain(name: &str) -> Result<AssetKey, StoreError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
            });
        if ok {
            Ok(AssetKey::Domain(name))
        } else {
            Err(StoreError::Invalid(format!(
                "domain {name:?}: give an ASCII (punycode) name of dot-separated labels"
            )))
        }
    }

    pub fn certificate(sha256: &str) -> Result<AssetKey, StoreError> {
        let sha = sha256.to_ascii_lowercase();
        if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(AssetKey::Certificate(sha))
        } else {
            Err(StoreError::Invalid(format!(
                "certificate {sha256:?}: give the 64 hex digits of its SHA-256"
            )))
        }
    }

    /// Byte form, ordered as described on the type.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        out.push(self.kind().tag());
        match self {
            AssetKey::Host(ip) => out.extend_from_slice(&ip_bytes(*ip)),
            AssetKey::Service(ip, port, proto) => {
                out.extend_from_slice(&ip_bytes(*ip));
                out.extend_from_slice(&port.to_be_bytes());
                if *proto == Proto::Udp {
                    out.push(UDP_TAG);
                }
            }
            AssetKey::Domain(name) => out.extend_from_slice(reversed_labels(name).as_bytes()),
            AssetKey::Certificate(sha) => out.extend_from_slice(sha.as_bytes()),
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<AssetKey, StoreError> {
        let bad = || StoreError::Corrupt(format!("asset key {bytes:02x?}"));
        let (&tag, rest) = bytes.split_first().ok_or_else(bad)?;
        match tag {
            b'h' => Ok(AssetKey::Host(ip_from(rest).ok_or_else(bad)?)),
            b's' => {
                let (ip, port) = rest.split_at_checked(16).ok_or_else(bad)?;
                let (port, proto) = match port {
                    [a, b] => ([*a, *b], Proto::Tcp),
                    [a, b, UDP_TAG] => ([*a, *b], Proto::Udp),
                    _ => return Err(bad()),
                };
                Ok(AssetKey::Service(
                    ip_from(ip).ok_or_else(bad)?,
                    u16::from_be_bytes(port),
                    proto,
                ))
            }
            b'd' => {
                let text = std::str::from_utf8(rest).map_err(|_| bad())?;
                Ok(AssetKey::Domain(reversed_labels(text)))
            }
            b'c' => {
                let text = std::str::from_utf8(rest).map_err(|_| bad())?;
                Ok(AssetKey::Certificate(text.to_owned()))
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for AssetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssetKey::Host(ip) => write!(f, "host:{ip}"),
            AssetKey::Service(IpAddr::V6(ip), port, proto) => {
                write!(f, "service:[{ip}]:{port}/{proto}")
            }
            AssetKey::Service(ip, port, proto) => write!(f, "service:{ip}:{port}/{proto}"),
            AssetKey::Domain(name) => write!(f, "domain:{name}"),
            AssetKey::Certificate(sha) => write!(f, "certificate:{sha}"),
        }
    }
}

impl FromStr for AssetKey {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            StoreError::Invalid(format!(
                "asset {s:?}: write host:ADDR, service:ADDR:PORT/tcp (or /udp), domain:NAME or certificate:SHA256"
            ))
        };
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "host" => Ok(AssetKey::Host(rest.parse().map_err(|_| bad())?)),
            "service" => {
                // `ADDR:PORT` or `[V6]:PORT`, the port in decimal without leading zeros and
                // no zone index: one spelling per port, as the API's pattern says. The bare
                // form is TCP: every key before UDP, and URLs that leave the '/' out.
                let (rest, proto) = match rest.strip_suffix("/udp") {
                    Some(r) => (r, Proto::Udp),
                    None => (rest.strip_suffix("/tcp").unwrap_or(rest), Proto::Tcp),
                };
                let (addr, port) = rest.rsplit_once(':').ok_or_else(bad)?;
                if port.is_empty()
                    || (port.len() > 1 && port.starts_with('0'))
                    || !port.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(bad());
                }
                let port: u16 = port.parse().map_err(|_| bad())?;
                let ip: IpAddr = match addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
                    Some(v6) => IpAddr::V6(v6.parse().map_err(|_| bad())?),
                    None => IpAddr::V4(addr.parse().map_err(|_| bad())?),
                };
                Ok(AssetKey::Service(ip, port, proto))
            }
            "domain" => AssetKey::domain(rest),
            "certificate" => AssetKey::certificate(rest),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for AssetKey {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AssetKey> for String {
    fn from(k: AssetKey) -> String {
        k.to_string()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for AssetKey {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "host:ADDR, service:ADDR:PORT/tcp, service:ADDR:PORT/udp, domain:NAME or certificate:SHA256",
            ))
            .examples(["service:198.18.1.20:22/tcp"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for AssetKey {}

/// The byte after a service key's port that makes it UDP (TCP keys end at the port).
const UDP_TAG: u8 = b'u';

/// IPv4 as IPv4-mapped IPv6, so both families share one ordered 16-byte space.
pub fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

pub(crate) fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    let octets: [u8; 16] = bytes.try_into().ok()?;
    let v6 = Ipv6Addr::from(octets);
    Some(match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    })
}

/// `www.example.com` ↔ `com.example.www` (its own inverse).
pub fn reversed_labels(name: &str) -> String {
    let mut labels: Vec<&str> = name.split('.').collect();
    labels.reverse();
    labels.join(".")
}

/// Record types: the first byte of every key in the data tree.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rec {
    Tenant,
    Asset,
    /// Secondary index entries of the store before posting runs (`aperture-store-2`);
    /// only migration reads them, to delete them.
    Index,
    /// Posting runs: the secondary indexes (see `postings`).
    Posting,
    /// Link between two assets (both directions are stored).
    Link,
    /// A block of change events: the changes one batch made, keyed by its first number.
    Changes,
    /// Per-tenant counters (change numbers, present counts).
    Counter,
    /// Receipt of an applied (scan, shard) batch.
    Receipt,
    Scan,
    /// Exposed hosts and services per day.
    Day,
    Sanction,
    Finding,
    /// Asset → its findings.
    FindingByAsset,
    /// Findings claimed fixed, awaiting a verifying scan.
    Awaiting,
    /// Policy settings of a tenant.
    Settings,
    /// Verification scans requested by "fixed" claims.
    Verification,
    /// A tenant's authorised scope.
    Scope,
    /// Scan jobs of the service.
    Job,
    Schedule,
    /// The policy's time index: when each asset's evaluation next changes by time
    /// alone (expiries, zombie periods, risk acceptances), and each asset's entry.
    PolicyDue,
    /// Policy work: re-evaluations queued by sanction and settings edits, and the
    /// active findings by rule and detail that find what such edits touch.
    PolicyWork,
    /// Hosts a running scan heard, per vantage (see `evidence`).
    Heard,
    /// Alert deliveries waiting (by due time) and dead letters (see `outbox`).
    Outbox,
    /// Alert channels and rules of a tenant.
    Alerting,
    /// Discovery: candidates outside scope and how assets were first found.
    Candidate,
    /// Discovery: the loop's settings and state.
    Loop,
    /// SIEM export: the log of finding steps, destinations and their cursors (`siem`).
    Siem,
    /// The asset ledger: the client's attributes of an asset (see `ledger`).
    Ledger,
}

impl Rec {
    fn tag(self) -> u8 {
        match self {
            Rec::Tenant => b'T',
            Rec::Asset => b'A',
            Rec::Index => b'I',
            Rec::Posting => b'U',
            Rec::Link => b'L',
            Rec::Changes => b'C',
            Rec::Counter => b'N',
            Rec::Receipt => b'R',
            Rec::Scan => b'S',
            Rec::Day => b'D',
            Rec::Sanction => b'Z',
            Rec::Finding => b'F',
            Rec::FindingByAsset => b'G',
            Rec::Awaiting => b'W',
            Rec::Settings => b'P',
            Rec::Verification => b'V',
            Rec::Scope => b'O',
            Rec::Job => b'J',
            Rec::Schedule => b'Y',
            Rec::PolicyDue => b'E',
            Rec::PolicyWork => b'Q',
            Rec::Heard => b'H',
            Rec::Outbox => b'B',
            Rec::Alerting => b'K',
            Rec::Candidate => b'X',
            Rec::Loop => b'M',
            Rec::Siem => b's',
            Rec::Ledger => b'a',
        }
    }
}

/// `<type><tenant>\0`: the prefix of every record of one type for one tenant.
pub(crate) fn prefix(rec: Rec, tenant: &TenantId) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.0.len() + 48);
    k.push(rec.tag());
    k.extend_from_slice(tenant.0.as_bytes());
    k.push(0);
    k
}

pub(crate) fn key(rec: Rec, tenant: &TenantId, rest: &[u8]) -> Vec<u8> {
    let mut k = prefix(rec, tenant);
    k.extend_from_slice(rest);
    k
}

pub(crate) fn asset(tenant: &TenantId, asset: &AssetKey) -> Vec<u8> {
    key(Rec::Asset, tenant, &asset.to_bytes())
}

/// The first key after every key that starts with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_and_bytes_round_trip() {
        for text in [
            "host:198.18.0.7",
            "service:198.18.0.7:443/tcp",
            "service:[2001:db8::1]:22/tcp",
            "service:198.18.0.7:53/udp",
            "service:[2001:db8::1]:161/udp",
            "domain:www.example.com",
            "certificate:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        ] {
            let key: AssetKey = text.parse().expect("valid key");
            assert_eq!(key.to_string(), text);
            assert_eq!(AssetKey::from_bytes(&key.to_bytes()).expect("decodes"), key);
        }
    }

    #[test]
    fn bad_keys_and_tenants_say_what_to_write() {
        for bad in [
            "",
            "host:",
            "service:1.2.3.4",
            "service:1.2.3.4:53/sctp",
            "service:1.2.3.4:53/udp/tcp",
            "port:1",
            "domain:a..b",
            "certificate:zz",
        ] {
            let err = bad.parse::<AssetKey>().expect_err(bad).to_string();
            assert!(err.contains("write") || err.contains("give"), "{err}");
        }
        for bad in ["", "-a", "A", "a b", &"x".repeat(64)] {
            assert!(TenantId::new(bad).is_err(), "{bad}");
        }
        assert!(TenantId::new("acme-1").is_ok());
    }

    #[test]
    fn zones_are_key_ranges() {
        let apex = AssetKey::domain("example.com").expect("name").to_bytes();
        let www = AssetKey::domain("www.example.com")
            .expect("name")
            .to_bytes();
        let other = AssetKey::domain("example.org").expect("name").to_bytes();
        assert!(www.starts_with(&apex));
        assert!(!other.starts_with(&apex));
    }

    #[test]
    fn tcp_keys_are_unchanged_and_udp_keys_are_distinct() {
        let ip: IpAddr = "198.18.0.1".parse().expect("ip");
        let tcp = AssetKey::tcp(ip, 53);
        // The bytes and text every store and URL had before UDP.
        let mut before = vec![b's'];
        before.extend_from_slice(&ip_bytes(ip));
        before.extend_from_slice(&53u16.to_be_bytes());
        assert_eq!(tcp.to_bytes(), before);
        assert_eq!(tcp.to_string(), "service:198.18.0.1:53/tcp");
        for text in ["service:198.18.0.1:53", "service:198.18.0.1:53/tcp"] {
            assert_eq!(text.parse::<AssetKey>().expect("tcp"), tcp);
        }
        let udp: AssetKey = "service:198.18.0.1:53/udp".parse().expect("udp");
        assert_eq!(udp, AssetKey::udp(ip, 53));
        assert_ne!(udp, tcp);
        assert_ne!(udp.to_bytes(), tcp.to_bytes());
        assert_eq!(udp.proto(), Some(Proto::Udp));
        assert_eq!(udp.kind(), AssetKind::Service);
        // Same kind range, next to each other: a service listing walks both.
        assert!(udp.to_bytes().starts_with(&tcp.to_bytes()));
        assert!(udp.to_bytes() < AssetKey::tcp(ip, 54).to_bytes());
        assert!(AssetKey::from_bytes(&[&tcp.to_bytes()[..], b"x"].concat()).is_err());
        let json = serde_json::to_string(&udp).expect("json");
        assert_eq!(json, "\"service:198.18.0.1:53/udp\"");
    }

    proptest! {
        #[test]
        fn service_keys_sort_like_address_then_port(a: u32, b: u32, pa: u16, pb: u16) {
            let ka = AssetKey::tcp(IpAddr::V4(a.into()), pa);
            let kb = AssetKey::tcp(IpAddr::V4(b.into()), pb);
            prop_assert_eq!(ka.to_bytes().cmp(&kb.to_bytes()), (a, pa).cmp(&(b, pb)));
        }

        #[test]
        fn every_service_key_round_trips(a: u32, p: u16, udp: bool) {
            let proto = if udp { Proto::Udp } else { Proto::Tcp };
            let k = AssetKey::Service(IpAddr::V4(a.into()), p, proto);
            prop_assert_eq!(AssetKey::from_bytes(&k.to_bytes()).expect("bytes"), k.clone());
            prop_assert_eq!(k.to_string().parse::<AssetKey>().expect("text"), k.clone());
            prop_assert_eq!(k.to_bytes().cmp(&AssetKey::tcp(IpAddr::V4(a.into()), p).to_bytes()),
                k.cmp(&AssetKey::tcp(IpAddr::V4(a.into()), p)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
            let _ = AssetKey::from_bytes(&bytes);
        }
    }
}
