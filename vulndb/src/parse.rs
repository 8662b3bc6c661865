//! The two feed formats, detected from the document's own header fields and turned into
//! validated records. One bad record fails the whole feed, naming the record.

use crate::{
    is_cve_id, Bound, Configuration, Cpe, CpeMatch, Cve, Cvss, CvssVersion, FeedError, KevEntry,
    Node, Operator, SUMMARY_MAX,
};
use serde::de::{self, DeserializeOwned, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::marker::PhantomData;

/// A parsed, validated feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    Nvd {
        timestamp: Option<String>,
        cves: Vec<Cve>,
    },
    Kev {
        catalog_version: String,
        entries: Vec<KevEntry>,
    },
}

impl Feed {
    pub fn kind(&self) -> &'static str {
        match self {
            Feed::Nvd { .. } => "NVD CVE 2.0 feed",
            Feed::Kev { .. } => "CISA KEV catalogue",
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Feed::Nvd { cves, .. } => cves.len(),
            Feed::Kev { entries, .. } => entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The header fields that tell the formats apart; the records are skipped unread.
#[derive(Deserialize)]
struct Sniff {
    format: Option<IgnoredAnyString>,
    version: Option<IgnoredAnyString>,
    #[serde(rename = "catalogVersion")]
    catalog_version: Option<IgnoredAnyString>,
    #[allow(dead_code)]
    vulnerabilities: Option<IgnoredAny>,
}

/// A header value: a string if it is one (anything else is kept as None).
struct IgnoredAnyString(Option<String>);

impl<'de> Deserialize<'de> for IgnoredAnyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(IgnoredAnyString(v.as_str().map(str::to_owned)))
    }
}

fn text(v: &Option<IgnoredAnyString>) -> Option<&str> {
    v.as_ref().and_then(|s| s.0.as_deref())
}

/// Detects the format of `bytes` and parses it.
pub fn parse(bytes: &[u8]) -> Result<Feed, FeedError> {
    // NVD and CISA publish compressed copies too: say what to do with them.
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(FeedError::NotJson(
            "the file is gzip-compressed: decompress it first (gunzip)".into(),
        ));
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(FeedError::NotJson(
            "the file is a zip archive: extract the JSON file first (unzip)".into(),
        ));
    }
    let sniff: Sniff = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            FeedError::UnknownFormat("the top level is not an object".into())
        } else {
            FeedError::NotJson(e.to_string())
        }
    })?;
    match (text(&sniff.format), text(&sniff.version)) {
        (Some("NVD_CVE"), Some("2.0")) => parse_nvd(bytes),
        _ if text(&sniff.catalog_version).is_some() => parse_kev(bytes),
        (Some("NVD_CVE"), Some(v)) => Err(FeedError::UnknownFormat(format!(
            "NVD feed version {v:?}: only 2.0 is read (the 1.1 feeds were retired in 2023)"
        ))),
        (Some(f), _) => Err(FeedError::UnknownFormat(format!("format {f:?}"))),
        (None, _) => Err(FeedError::UnknownFormat(
            "no \"format\" or \"catalogVersion\" field".into(),
        )),
    }
}

/// A JSON array read one element at a time, so an element that does not parse is named
/// by its position.
struct Records<T>(Vec<T>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Records<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for V<T> {
            type Value = Records<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                loop {
                    let index = out.len();
                    match seq.next_element::<T>() {
                        Ok(Some(x)) => out.push(x),
                        Ok(None) => break,
                        Err(e) => {
                            // serde_json adds the position again to this error.
                            let mut text = e.to_string();
                            if let Some(at) = text.rfind(" at line ") {
                                text.truncate(at);
                            }
                            return Err(de::Error::custom(format!("record {index}: {text}")));
                        }
                    }
                }
                Ok(Records(out))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

fn json_err(e: serde_json::Error) -> FeedError {
    let text = e.to_string();
    // Errors raised inside a record start with "record N: ".
    if let Some(rest) = text.strip_prefix("record ") {
        if let Some((n, detail)) = rest.split_once(": ") {
            if let Ok(index) = n.parse() {
                return FeedError::Record {
                    index,
                    id: None,
                    detail: detail.to_owned(),
                };
            }
        }
    }
    FeedError::Header(text)
}

// ---- NVD CVE API 2.0 / feed 2.0 -------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NvdFile {
    timestamp: Option<String>,
    vulnerabilities: Records<NvdItem>,
}

#[derive(Deserialize)]
struct NvdItem {
    cve: RawCve,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCve {
    id: String,
    #[serde(default)]
    published: String,
    last_modified: String,
    #[serde(default)]
    vuln_status: String,
    #[serde(default)]
    descriptions: Vec<LangString>,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    configurations: Vec<RawConfig>,
}

#[derive(Deserialize)]
struct LangString {
    lang: String,
    value: String,
}

#[derive(Deserialize, Default)]
struct RawMetrics {
    #[serde(default, rename = "cvssMetricV40")]
    v40: Vec<RawMetric>,
    #[serde(default, rename = "cvssMetricV31")]
    v31: Vec<RawMetric>,
    #[serde(default, rename = "cvssMetricV30")]
    v30: Vec<RawMetric>,
    #[serde(default, rename = "cvssMetricV2")]
    v2: Vec<RawMetric>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMetric {
    #[serde(rename = "type", default)]
    kind: String,
    cvss_data: RawCvssData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCvssData {
    base_score: f64,
    #[serde(default)]
    vector_string: String,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    operator: Option<String>,
    #[serde(default)]
    negate: bool,
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNode {
    operator: String,
    #[serde(default)]
    negate: bool,
    cpe_match: Vec<RawMatch>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMatch {
    vulnerable: bool,
    criteria: String,
    version_start_including: Option<String>,
    version_start_excluding: Option<String>,
    version_end_including: Option<String>,
    version_end_excluding: Option<String>,
}

fn parse_nvd(bytes: &[u8]) -> Result<Feed, FeedError> {
    // `resultsPerPage` is not compared with the records: a file cut short does not parse
    // as JSON, and a shortened but whole file is a valid subset (the description says so).
    let file: NvdFile = serde_json::from_slice(bytes).map_err(json_err)?;
    let items = file.vulnerabilities.0;
    let mut cves = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let id = item.cve.id.clone();
        let cve = convert_cve(item.cve).map_err(|detail| FeedError::Record {
            index,
            id: Some(id),
            detail,
        })?;
        cves.push(cve);
    }
    Ok(Feed::Nvd {
        timestamp: file.timestamp,
        cves,
    })
}

/// `YYYY-MM-…`, 10 to 40 characters (the schema's pattern says the same).
fn is_timestamp(s: &str) -> bool {
    let c: Vec<char> = s.chars().collect();
    (10..=40).contains(&c.len())
        && c.iter().take(4).all(char::is_ascii_digit)
        && c.get(4) == Some(&'-')
        && c.get(7) == Some(&'-')
}

fn operator(s: &str) -> Result<Operator, String> {
    match s {
        "AND" => Ok(Operator::And),
        "OR" => Ok(Operator::Or),
        other => Err(format!("operator {other:?}: NVD writes AND or OR")),
    }
}

fn best_cvss(m: &RawMetrics) -> Result<Option<Cvss>, String> {
    for (version, list) in [
        (CvssVersion::V40, &m.v40),
        (CvssVersion::V31, &m.v31),
        (CvssVersion::V30, &m.v30),
        (CvssVersion::V2, &m.v2),
    ] {
        for metric in list {
            let s = metric.cvss_data.base_score;
            if !(0.0..=10.0).contains(&s) {
                return Err(format!(
                    "CVSS {} base score {s} is outside 0-10",
                    version.as_str()
                ));
            }
        }
        // NVD's own score (Primary) before a CNA's (Secondary).
        let chosen = list
            .iter()
            .find(|m| m.kind == "Primary")
            .or_else(|| list.first());
        if let Some(metric) = chosen {
            return Ok(Some(Cvss {
                version,
                score_tenths: (metric.cvss_data.base_score * 10.0).round() as u8,
                vector: metric.cvss_data.vector_string.chars().take(200).collect(),
            }));
        }
    }
    Ok(None)
}

fn bound(incl: Option<String>, excl: Option<String>, which: &str) -> Result<Option<Bound>, String> {
    match (incl, excl) {
        (Some(_), Some(_)) => Err(format!(
            "both version{which}Including and version{which}Excluding are given"
        )),
        (Some(v), None) => check_version(v, true),
        (None, Some(v)) => check_version(v, false),
        (None, None) => Ok(None),
    }
}

fn check_version(v: String, inclusive: bool) -> Result<Option<Bound>, String> {
    // Blank means spaces, tabs and line breaks only, as the schema's pattern says.
    if v.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r')) || v.chars().count() > 100 {
        return Err(format!("version bound {v:?} is empty or too long"));
    }
    Ok(Some(Bound {
        version: v,
        inclusive,
    }))
}

fn convert_cve(raw: RawCve) -> Result<Cve, String> {
    if !is_cve_id(&raw.id) {
        return Err(format!("id {:?} is not a CVE id (CVE-YYYY-NNNN)", raw.id));
    }
    if !is_timestamp(&raw.last_modified) {
        return Err(format!(
            "lastModified {:?} is not a timestamp (YYYY-MM-DDThh:mm:ss)",
            raw.last_modified
        ));
    }
    let cvss = best_cvss(&raw.metrics)?;
    let summary = raw
        .descriptions
        .iter()
        .find(|d| d.lang == "en")
        .or_else(|| raw.descriptions.first())
        .map(|d| d.value.chars().take(SUMMARY_MAX).collect())
        .unwrap_or_default();
    let mut configurations = Vec::with_capacity(raw.configurations.len());
    for (ci, c) in raw.configurations.into_iter().enumerate() {
        let mut nodes = Vec::with_capacity(c.nodes.len());
        for (ni, n) in c.nodes.into_iter().enumerate() {
            let mut matches = Vec::with_capacity(n.cpe_match.len());
            for (mi, m) in n.cpe_match.into_iter().enumerate() {
                let at = || format!("configuration {ci} node {ni} cpeMatch {mi}");
                let cpe = Cpe::parse(&m.criteria)
                    .map_err(|e| format!("{}: criteria {:?}: {e}", at(), m.criteria))?;
                let start = bound(
                    m.version_start_including,
                    m.version_start_excluding,
                    "Start",
                )
                .map_err(|e| format!("{}: {e}", at()))?;
                let end = bound(m.version_end_including, m.version_end_excluding, "End")
                    .map_err(|e| format!("{}: {e}", at()))?;
                matches.push(CpeMatch {
                    vulnerable: m.vulnerable,
                    cpe,
                    start,
                    end,
                });
            }
            nodes.push(Node {
                operator: operator(&n.operator)
                    .map_err(|e| format!("configuration {ci} node {ni}: {e}"))?,
                negate: n.negate,
                matches,
            });
        }
        configurations.push(Configuration {
            operator: match c.operator.as_deref() {
                Some(o) => operator(o).map_err(|e| format!("configuration {ci}: {e}"))?,
                None => Operator::Or,
            },
            negate: c.negate,
            nodes,
        });
    }
    Ok(Cve {
        id: raw.id,
        published: raw.published,
        last_modified: raw.last_modified,
        status: raw.vuln_status,
        summary,
        cvss,
        configurations,
    })
}

// ---- CISA KEV ----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KevFile {
    catalog_version: String,
    vulnerabilities: Records<RawKev>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKev {
    #[serde(rename = "cveID")]
    cve_id: String,
    #[serde(default)]
    vendor_project: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    vulnerability_name: String,
    date_added: String,
    #[serde(default)]
    due_date: String,
    #[serde(default)]
    required_action: String,
    #[serde(default)]
    known_ransomware_campaign_use: String,
}

fn parse_kev(bytes: &[u8]) -> Result<Feed, FeedError> {
    let file: KevFile = serde_json::from_slice(bytes).map_err(json_err)?;
    let items = file.vulnerabilities.0;
    let mut entries = Vec::with_capacity(items.len());
    for (index, k) in items.into_iter().enumerate() {
        let err = |detail: String| FeedError::Record {
            index,
            id: Some(k.cve_id.clone()),
            detail,
        };
        if !is_cve_id(&k.cve_id) {
            return Err(err(format!(
                "cveID {:?} is not a CVE id (CVE-YYYY-NNNN)",
                k.cve_id
            )));
        }
        if !is_timestamp(&k.date_added) {
            return Err(err(format!(
                "dateAdded {:?} is not a date (YYYY-MM-DD)",
                k.date_added
            )));
        }
        let cut = |s: &str| s.chars().take(300).collect::<String>();
        entries.push(KevEntry {
            ransomware: k
                .known_ransomware_campaign_use
                .eq_ignore_ascii_case("known"),
            vendor_project: cut(&k.vendor_project),
            product: cut(&k.product),
            name: cut(&k.vulnerability_name),
            date_added: k.date_added.clone(),
            due_date: cut(&k.due_date),
            required_action: cut(&k.required_action),
            cve_id: k.cve_id,
        });
    }
    Ok(Feed::Kev {
        catalog_version: file.catalog_version,
        entries,
    })
}
