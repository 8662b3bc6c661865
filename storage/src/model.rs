//! The records the store keeps: tenants, assets with their current facts, change events,
//! scans with what they covered, and the batches results arrive in.
//!
//! Times are Unix milliseconds (UTC) throughout.

use crate::keys::{AssetKey, AssetKind, TenantId};
use aperture_fingerprints::dns::observation::{NameObservation, ZoneObservation};
use aperture_fingerprints::PortObservation;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

pub type Millis = i64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created: Millis,
}

/// Whether an asset is there now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AssetStatus {
    Present,
    /// A completed scan that covered it did not see it (or its name stopped resolving).
    Absent,
    /// The last look could not tell (time-out, resolver failure); never taken as gone.
    Unknown,
}

impl AssetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AssetStatus::Present => "present",
            AssetStatus::Absent => "absent",
            AssetStatus::Unknown => "unknown",
        }
    }
}

/// One asset and its current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Asset {
    pub key: AssetKey,
    pub kind: AssetKind,
    pub status: AssetStatus,
    /// The latest facts, flattened to field → value so that changes are per field. Fields
    /// that change on every connection (ids, clocks, timings) are not facts.
    pub facts: BTreeMap<String, String>,
    pub first_seen: Millis,
    pub last_seen: Millis,
    pub last_changed: Millis,
    pub times_seen: u64,
    /// The scan that last saw it (or found it unknown).
    pub last_scan: String,
    /// Numbers of this asset's change events, oldest first: its history.
    pub changes: Vec<u64>,
}

impl Asset {
    pub fn fact(&self, field: &str) -> Option<&str> {
        self.facts.get(field).map(String::as_str)
    }

    /// The stored form: postcard, not JSON. Asset records are the one record every
    /// observation reads and writes; decoding JSON was an eighth of ingest time.
    pub(crate) fn encode(&self) -> crate::error::Result<Vec<u8>> {
        postcard::to_allocvec(self).map_err(|e| crate::StoreError::Corrupt(e.to_string()))
    }

    pub(crate) fn decode(bytes: &[u8]) -> crate::error::Result<Asset> {
        postcard::from_bytes(bytes)
            .map_err(|e| crate::StoreError::Corrupt(format!("asset record: {e}")))
    }
}

/// What happened to an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "change")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ChangeKind {
    /// First seen, or seen again after it had disappeared.
    Appeared,
    Changed {
        field: String,
        old: Option<String>,
        new: Option<String>,
    },
    Disappeared,
}

/// One change event. Numbers are per tenant, dense and increasing: the change feed's cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    pub seq: u64,
    pub at: Millis,
    pub asset: AssetKey,
    pub scan: String,
    #[serde(flatten)]
    pub kind: ChangeKind,
}

/// What a scan looks at: a TCP service is covered when its address is in `targets`, its
/// port in `ports` and the scan ran a port probe; a UDP service likewise with
/// `udp_ports` and the `udp` probe; a domain when it is, or is under, one of `domains`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Coverage {
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub targets: Vec<IpNet>,
    /// Inclusive ranges.
    pub ports: Vec<(u16, u16)>,
    /// `syn`, `connect`, `grab`, `dns`, `udp`.
    pub probes: BTreeSet<String>,
    pub domains: Vec<String>,
    /// UDP ports, inclusive ranges. A covered UDP service that stays silent is not gone
    /// (UDP answers only what it understands): only ICMP port unreachable says so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub udp_ports: Vec<(u16, u16)>,
}

impl Coverage {
    pub fn port_probe(&self) -> bool {
        self.probes.contains("syn") || self.probes.contains("connect")
    }

    pub fn covers_service(&self, ip: IpAddr, port: u16) -> bool {
        self.port_probe()
            && self.ports.iter().any(|&(lo, hi)| (lo..=hi).contains(&port))
            && self.targets.iter().any(|net| net.contains(&ip))
    }

    /// Whether the scan probed UDP ports.
    pub fn udp_probe(&self) -> bool {
        self.probes.contains("udp") && !self.udp_ports.is_empty()
    }

    pub fn covers_udp(&self, ip: IpAddr, port: u16) -> bool {
        self.udp_probe()
            && self
                .udp_ports
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&port))
            && self.targets.iter().any(|net| net.contains(&ip))
    }

    pub fn covers_domain(&self, name: &str) -> bool {
        self.domains.iter().any(|zone| {
            let zone = zone.trim_end_matches('.');
            name == zone
                || name
                    .strip_suffix(zone)
                    .is_some_and(|head| head.ends_with('.'))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ScanState {
    Running,
    /// Every shard was applied: absences it implies have been recorded.
    Completed,
    /// Stopped before the end: covers nothing, so nothing it missed is marked gone.
    Cancelled,
}

/// A scan and how far its results have arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Scan {
    pub id: String,
    pub created: Millis,
    pub coverage: Coverage,
    pub shards: u32,
    pub shards_done: BTreeSet<u32>,
    pub state: ScanState,
    pub completed: Option<Millis>,
    /// Observations applied so far.
    pub observations: u64,
    /// Why it was run, e.g. the finding a verification scan checks.
    pub purpose: Option<String>,
    /// While every shard is in and the scan is marking what it covered but did not see:
    /// how far that has gone. It runs in chunks, each its own commit, so the store's
    /// writer is never held for long; a restart resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
    /// Hosts this scan covered that had services on record but never answered it (from
    /// some vantage): their services were left `unknown`, not marked gone.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub silent_hosts: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where a completing scan's sweep is: the covered net it is in, the last address it
/// finished there, and the time its results carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sweep {
    pub net: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub after: Option<IpAddr>,
    pub at: Millis,
}

/// One result of a scan, as the mapper produces them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "observation", rename_all = "lowercase")]
// Boxing the port variant would add an allocation per observation on the ingest path to
// save memory only in the rarer name/zone batches.
#[allow(clippy::large_enum_variant)]
pub enum Observation {
    Port(PortObservation),
    Name(NameObservation),
    Zone(ZoneObservation),
    /// The scan could not tell whether this asset is there (probe send failure, grab
    /// time-out): it must not be marked gone by this scan.
    Unknown {
        asset: AssetKey,
        reason: String,
    },
}

/// The results of one (scan, shard), applied all or nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub scan: String,
    pub shard: u32,
    pub at: Millis,
    /// What the shard covered: positions `[start, end)` of the scan's permutation of
    /// its addresses × ports (absent for a DNS shard, which covers the scan's domains).
    #[serde(default)]
    pub range: Option<(u64, u64)>,
    pub observations: Vec<Observation>,
}

/// What applying a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Applied {
    /// False when this (scan, shard) had been applied before: nothing changed.
    pub fresh: bool,
    pub observations: u64,
    pub changes: u64,
    /// The scan completed with this batch.
    pub completed_scan: bool,
}

/// A batch's receipt: makes replays no-ops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    pub scan: String,
    pub shard: u32,
    /// The shard's positions in the scan's permutation, when it was a port shard.
    #[serde(default)]
    pub range: Option<(u64, u64)>,
    pub applied: Millis,
    pub observations: u64,
    pub changes: u64,
    /// Who observed it, when a remote worker ran the shard: every observation of the
    /// shard carries this vantage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vantage: Option<Vantage>,
}

/// Where a shard's probes came from: the worker that ran it and its source address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Vantage {
    pub worker: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub source: Option<IpAddr>,
}

/// Exposed hosts and services on one day (the shrinkage curve), as at the last batch
/// applied that day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayCount {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub hosts: u64,
    pub services: u64,
}

/// One page of a listing; `next` is the cursor of the following page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// The UTC day of a time, `YYYY-MM-DD`.
pub fn day_string(at: Millis) -> String {
    let mut text = aperture_fingerprints::cert::rfc3339(at.div_euclid(1000));
    text.truncate(10);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_records_round_trip_and_garbage_is_an_error() {
        let asset = Asset {
            key: "service:198.18.0.7:22/tcp".parse().expect("key"),
            kind: AssetKind::Service,
            status: AssetStatus::Unknown,
            facts: [("product".to_owned(), "OpenSSH".to_owned())].into(),
            first_seen: -5,
            last_seen: 7,
            last_changed: 6,
            times_seen: 3,
            last_scan: "s-1".into(),
            changes: vec![0, 9, 12],
        };
        let bytes = asset.encode().expect("encodes");
        assert_eq!(Asset::decode(&bytes).expect("decodes"), asset);
        assert!(Asset::decode(&bytes[..bytes.len() / 2]).is_err());
        assert!(Asset::decode(b"{\"key\":1}").is_err());
    }

    #[test]
    fn days_render_as_utc_dates() {
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(day_string(1_700_000_000_123), "2023-11-14");
        assert_eq!(day_string(951_782_400_000), "2000-02-29");
        assert_eq!(day_string(-1), "1969-12-31");
    }

    #[test]
    fn coverage_of_services_and_zones() {
        let cov = Coverage {
            targets: vec!["198.18.0.0/24".parse().expect("net")],
            ports: vec![(20, 25), (443, 443)],
            probes: ["syn".to_owned()].into(),
            domains: vec!["example.com".into()],
            udp_ports: Vec::new(),
        };
        let ip = "198.18.0.9".parse().expect("ip");
        assert!(!cov.covers_udp(ip, 22));
        let both = Coverage {
            probes: ["syn".to_owned(), "udp".to_owned()].into(),
            udp_ports: vec![(53, 53)],
            ..cov.clone()
        };
        assert!(both.covers_udp(ip, 53) && !both.covers_udp(ip, 22) && both.covers_service(ip, 22));
        assert!(cov.covers_service(ip, 22));
        assert!(cov.covers_service(ip, 443));
        assert!(!cov.covers_service(ip, 80));
        assert!(!cov.covers_service("198.18.1.9".parse().expect("ip"), 22));
        assert!(cov.covers_domain("example.com"));
        assert!(cov.covers_domain("a.b.example.com"));
        assert!(!cov.covers_domain("badexample.com"));
        let dns_only = Coverage {
            probes: ["dns".to_owned()].into(),
            ..cov
        };
        assert!(!dns_only.covers_service(ip, 22));
    }
}
