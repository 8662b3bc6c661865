//! What domain enumeration reports: one object per name, one per zone. Part of the
//! JSONL contract of `aperture domains` (schema in the README).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// How a name was found. A name found several ways lists each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Seed,
    Wordlist,
    Axfr,
    Certificate,
    Cname,
    Ptr,
    Srv,
    Mx,
    Ns,
}

/// What the resolver said about a name. `Unknown` (SERVFAIL, REFUSED, time-out) never
/// means the name is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "reason")]
pub enum NameStatus {
    Resolved,
    /// The name exists but has no address records (other types, or children only).
    NoData,
    NxDomain,
    Unknown(String),
}

/// Something worth a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum DnsFinding {
    /// The zone can be transferred by anyone: its whole content is public.
    OpenZoneTransfer {
        zone: String,
        server: String,
        records: usize,
    },
    /// A CNAME whose target does not exist: whoever registers the target takes the name over.
    DanglingCname { name: String, target: String },
    /// A CNAME chain that returns to itself.
    CnameLoop { name: String, chain: Vec<String> },
    /// A CNAME chain longer than we follow.
    CnameTooLong { name: String, chain: Vec<String> },
    /// Every label under this zone level resolves (answers listed); matches are filtered.
    Wildcard { zone: String, answers: Vec<String> },
    /// The name points at an address that answered on no scanned port.
    DanglingAddress { name: String, address: IpAddr },
}

/// One discovered name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameObservation {
    /// Always "name": lets one JSONL stream carry names and zones.
    #[serde(rename = "type")]
    pub kind: String,
    /// ASCII (punycode) form.
    pub name: String,
    /// Display form (IDN decoded); equal to `name` for ASCII names.
    pub unicode: String,
    /// The seed zone it belongs to; absent for related names outside every seed zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Outside every seed zone: recorded, never scanned.
    pub related: bool,
    #[serde(flatten)]
    pub status: NameStatus,
    /// Record type → values in zone-file presentation.
    pub records: BTreeMap<String, Vec<String>>,
    /// A and AAAA at the end of any CNAME chain.
    pub addresses: Vec<IpAddr>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub cname_chain: Vec<String>,
    pub found_by: BTreeSet<Source>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub findings: Vec<DnsFinding>,
}

/// Zone transfer attempt against one name server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AxfrAttempt {
    pub server: String,
    /// `allowed`, `refused`, `failed`.
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub records: usize,
}

/// One seed zone: its own records and what the enumeration found about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneObservation {
    /// Always "zone".
    #[serde(rename = "type")]
    pub kind: String,
    pub zone: String,
    pub unicode: String,
    pub records: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spf: Option<super::Spf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dmarc: Option<super::Dmarc>,
    pub axfr: Vec<AxfrAttempt>,
    /// Zone levels answering every label, with their answers.
    pub wildcards: BTreeMap<String, Vec<String>>,
    pub findings: Vec<DnsFinding>,
    pub names_found: usize,
    /// Wordlist candidates dropped because they only matched a wildcard.
    pub wildcard_filtered: u64,
    /// Candidates the resolver could not answer (SERVFAIL, REFUSED, time-out).
    pub unknown: u64,
}
