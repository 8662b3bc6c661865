//! Known-vulnerable versions, without I/O: the NVD CVE JSON 2.0 feeds and CISA's Known
//! Exploited Vulnerabilities catalogue parsed from bytes and validated ([`parse`]), an
//! index from (vendor, product) to the CVEs whose vulnerable configurations name it
//! ([`Index`]), the match of a service's CPE and version against those configurations
//! ([`matching`]), and what a match says ([`assess`]).
//!
//! The stored form of a CVE ([`Cve`]) keeps what matching and findings read and drops
//! the rest of the feed (references, weaknesses, change history).

pub mod cpe;
pub mod feed;
pub mod matching;
mod parse;
pub mod schema;
pub mod version;

pub use cpe::Cpe;
pub use matching::{assess, Assessment, Confidence, Index, MatchDetail, Severity};
pub use parse::{parse, Feed};

use serde::{Deserialize, Serialize};

/// What is wrong with a feed. The caller adds the file's name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error(
        "neither an NVD CVE 2.0 feed (\"format\": \"NVD_CVE\", \"version\": \"2.0\") nor a \
         CISA KEV catalogue (\"catalogVersion\"): {0}"
    )]
    UnknownFormat(String),
    #[error("{0}")]
    Header(String),
    /// Record `index` (0-based, in file order), with its CVE id when it got that far.
    #[error("record {index}{}: {detail}", id.as_ref().map(|i| format!(" ({i})")).unwrap_or_default())]
    Record {
        index: usize,
        id: Option<String>,
        detail: String,
    },
}

/// CVSS versions in order of preference: a CVE scored in several is judged by the
/// newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CvssVersion {
    V2,
    V30,
    V31,
    V40,
}

impl CvssVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            CvssVersion::V2 => "2.0",
            CvssVersion::V30 => "3.0",
            CvssVersion::V31 => "3.1",
            CvssVersion::V40 => "4.0",
        }
    }
}

/// A CVSS base score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cvss {
    pub version: CvssVersion,
    /// The base score in tenths (98 is 9.8): exact, and ordered.
    pub score_tenths: u8,
    pub vector: String,
}

impl Cvss {
    pub fn score_text(&self) -> String {
        format!("{}.{}", self.score_tenths / 10, self.score_tenths % 10)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    And,
    Or,
}

/// A version bound of a CPE match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    pub version: String,
    pub inclusive: bool,
}

/// One `cpeMatch` of a configuration node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpeMatch {
    /// False for a platform condition ("running on"), true for what is vulnerable.
    pub vulnerable: bool,
    pub cpe: Cpe,
    pub start: Option<Bound>,
    pub end: Option<Bound>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub operator: Operator,
    pub negate: bool,
    pub matches: Vec<CpeMatch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configuration {
    pub operator: Operator,
    pub negate: bool,
    pub nodes: Vec<Node>,
}

/// A CVE as stored: what matching and findings read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cve {
    pub id: String,
    pub published: String,
    /// NVD's `lastModified`; a record is replaced only by a newer one.
    pub last_modified: String,
    pub status: String,
    /// The English description, cut to [`SUMMARY_MAX`] characters.
    pub summary: String,
    pub cvss: Option<Cvss>,
    pub configurations: Vec<Configuration>,
}

pub const SUMMARY_MAX: usize = 400;

impl Cve {
    /// Rejected CVEs stay stored (a later feed may say why) but match nothing.
    pub fn is_rejected(&self) -> bool {
        self.status.eq_ignore_ascii_case("rejected")
    }

    /// `vendor:product` of every CPE a vulnerable match names: the index's keys.
    pub fn products(&self) -> std::collections::BTreeSet<String> {
        self.configurations
            .iter()
            .flat_map(|c| &c.nodes)
            .flat_map(|n| &n.matches)
            .filter(|m| m.vulnerable)
            .map(|m| m.cpe.product_key())
            .collect()
    }
}

/// An entry of CISA's Known Exploited Vulnerabilities catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KevEntry {
    pub cve_id: String,
    pub vendor_project: String,
    pub product: String,
    pub name: String,
    /// `YYYY-MM-DD`.
    pub date_added: String,
    pub due_date: String,
    pub required_action: String,
    /// `knownRansomwareCampaignUse` is "Known".
    pub ransomware: bool,
}

/// Whether `id` looks like a CVE id: `CVE-YYYY-NNNN…`.
pub fn is_cve_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, seq)) = rest.split_once('-') else {
        return false;
    };
    year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && (4..=19).contains(&seq.len())
        && seq.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests;
