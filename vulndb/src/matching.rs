//! Does a service's CPE and version fall in a CVE's vulnerable configurations?
//!
//! A service is one product at one version; a configuration may also name platforms
//! ("OpenSSH on Windows": an AND of a vulnerable node and a `vulnerable: false` node)
//! or other products. Those parts cannot be decided from one service, so each CPE match
//! is true, false or unknown: true or false when it names the service's vendor and
//! product (by the version), unknown when it names anything else. Nodes combine with
//! AND/OR and `negate` in three-valued logic (NVD's semantics, with unknown where it
//! cannot tell). A CVE matches when a configuration is not false and a `vulnerable: true`
//! match of the service's own product in it is true; when the configuration was only
//! unknown (a platform condition unchecked), the match says so.

use crate::cpe::{Cpe, ANY, NA};
use crate::version::{compare, split_distribution};
use crate::{Configuration, CpeMatch, Cve, KevEntry, Node, Operator};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    True,
    False,
    Unknown,
}

impl Truth {
    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Unknown => Truth::Unknown,
        }
    }

    fn combine(op: Operator, items: impl Iterator<Item = Truth>) -> Truth {
        let (mut any_true, mut any_false, mut any_unknown, mut n) = (false, false, false, 0);
        for t in items {
            n += 1;
            match t {
                Truth::True => any_true = true,
                Truth::False => any_false = true,
                Truth::Unknown => any_unknown = true,
            }
        }
        if n == 0 {
            return Truth::False;
        }
        match op {
            Operator::Or if any_true => Truth::True,
            Operator::Or if any_unknown => Truth::Unknown,
            Operator::Or => Truth::False,
            Operator::And if any_false => Truth::False,
            Operator::And if any_unknown => Truth::Unknown,
            Operator::And => Truth::True,
        }
    }
}

/// What a service is, for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub cpe: Cpe,
    /// The upstream version compared with the ranges.
    pub version: String,
    /// The distribution that packaged it, if known (see
    /// [`crate::version::split_distribution`]).
    pub distribution: Option<String>,
}

impl Service {
    /// From a service's facts: its CPE, its version (falling back on the CPE's), and the
    /// operating system identification named. None when there is no CPE or no version to
    /// compare (a service of unknown version is not judged).
    pub fn from_facts(cpe: &str, version: Option<&str>, os: Option<&str>) -> Option<Service> {
        let cpe = Cpe::parse(cpe).ok()?;
        let from_cpe = match (cpe.version.as_str(), cpe.update.as_str()) {
            (ANY | NA | "", _) => None,
            (v, ANY | NA | "") => Some(v.to_owned()),
            (v, u) => Some(format!("{v}{u}")),
        };
        let raw = version
            .map(str::to_owned)
            .filter(|v| !v.trim().is_empty())
            .or(from_cpe)?;
        let split = split_distribution(&raw, os);
        if !split.upstream.bytes().any(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Service {
            cpe,
            version: split.upstream,
            distribution: split.distribution,
        })
    }
}

/// How a CVE matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchDetail {
    /// The range or version that matched, as a user reads it (`< 9.3p2`, `= 9.2p1`).
    pub range: String,
    /// The configuration also names a platform or another product that one service
    /// cannot tell about.
    pub platform_unchecked: bool,
}

fn same_name(want: &str, have: &str) -> bool {
    want == ANY || want == have
}

/// The version part of one match against the service's version.
fn version_in(m: &CpeMatch, version: &str) -> bool {
    if m.start.is_some() || m.end.is_some() {
        let lower = m
            .start
            .as_ref()
            .is_none_or(|b| match compare(version, &b.version) {
                Ordering::Greater => true,
                Ordering::Equal => b.inclusive,
                Ordering::Less => false,
            });
        let upper = m
            .end
            .as_ref()
            .is_none_or(|b| match compare(version, &b.version) {
                Ordering::Less => true,
                Ordering::Equal => b.inclusive,
                Ordering::Greater => false,
            });
        // A range on top of a fixed version in the criteria is rare; both must hold.
        return lower && upper && (is_wild(&m.cpe.version) || exact(m, version));
    }
    if m.cpe.version == ANY {
        return true;
    }
    // NA: the product has no versions; a versioned service is not that.
    if m.cpe.version == NA {
        return false;
    }
    exact(m, version)
}

fn is_wild(v: &str) -> bool {
    v == ANY || v == NA
}

fn exact(m: &CpeMatch, version: &str) -> bool {
    let base = &m.cpe.version;
    match m.cpe.update.as_str() {
        NA => compare(version, base) == Ordering::Equal,
        ANY => {
            compare(version, base) == Ordering::Equal
                // `openssh:9.2:*` covers the portable releases 9.2p1, 9.2p2.
                || version
                    .strip_prefix(base.as_str())
                    .and_then(|rest| rest.strip_prefix('p'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        }
        update => compare(version, &format!("{base}{update}")) == Ordering::Equal,
    }
}

fn range_text(m: &CpeMatch) -> String {
    let mut parts = Vec::new();
    if let Some(b) = &m.start {
        parts.push(format!(
            "{} {}",
            if b.inclusive { ">=" } else { ">" },
            b.version
        ));
    }
    if let Some(b) = &m.end {
        parts.push(format!(
            "{} {}",
            if b.inclusive { "<=" } else { "<" },
            b.version
        ));
    }
    if parts.is_empty() {
        match (m.cpe.version.as_str(), m.cpe.update.as_str()) {
            (ANY, _) => "any version".to_owned(),
            (v, ANY | NA) => format!("= {v}"),
            (v, u) => format!("= {v} {u}"),
        }
    } else {
        parts.join(", ")
    }
}

struct Eval<'a> {
    svc: &'a Service,
    /// The first vulnerable match of the service's own product that held.
    hit: Option<&'a CpeMatch>,
}

impl<'a> Eval<'a> {
    fn cpe_match(&mut self, m: &'a CpeMatch, negated: bool) -> Truth {
        let c = &self.svc.cpe;
        let ours = same_name(&m.cpe.vendor, &c.vendor)
            && same_name(&m.cpe.product, &c.product)
            && (m.cpe.part == ANY || c.part == ANY || m.cpe.part == c.part);
        if !ours {
            return Truth::Unknown;
        }
        if version_in(m, &self.svc.version) {
            if m.vulnerable && !negated && self.hit.is_none() {
                self.hit = Some(m);
            }
            Truth::True
        } else {
            Truth::False
        }
    }

    fn node(&mut self, n: &'a Node, negated: bool) -> Truth {
        let negated = negated ^ n.negate;
        let t = Truth::combine(
            n.operator,
            n.matches.iter().map(|m| self.cpe_match(m, negated)),
        );
        if n.negate {
            t.not()
        } else {
            t
        }
    }

    fn configuration(&mut self, c: &'a Configuration) -> Truth {
        let t = Truth::combine(c.operator, c.nodes.iter().map(|n| self.node(n, c.negate)));
        if c.negate {
            t.not()
        } else {
            t
        }
    }
}

/// Whether `svc` is vulnerable to `cve`, and how.
pub fn match_cve(cve: &Cve, svc: &Service) -> Option<MatchDetail> {
    if cve.is_rejected() {
        return None;
    }
    let mut best: Option<MatchDetail> = None;
    for c in &cve.configurations {
        let mut e = Eval { svc, hit: None };
        let t = e.configuration(c);
        let Some(hit) = e.hit else {
            continue;
        };
        let detail = match t {
            Truth::True => MatchDetail {
                range: range_text(hit),
                platform_unchecked: false,
            },
            Truth::Unknown => MatchDetail {
                range: range_text(hit),
                platform_unchecked: true,
            },
            Truth::False => continue,
        };
        if !detail.platform_unchecked {
            return Some(detail);
        }
        best.get_or_insert(detail);
    }
    best
}

/// CVEs by the (vendor, product) their vulnerable configurations name.
#[derive(Debug, Default)]
pub struct Index {
    cves: Vec<Cve>,
    by_id: HashMap<String, u32>,
    by_product: HashMap<String, Vec<u32>>,
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    pub fn len(&self) -> usize {
        self.cves.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cves.is_empty()
    }

    /// Adds a CVE, or replaces the one of the same id if `cve` is newer. Returns whether
    /// it changed the index.
    pub fn insert(&mut self, cve: Cve) -> bool {
        if let Some(&at) = self.by_id.get(&cve.id) {
            let Some(old) = self.cves.get(at as usize) else {
                return false;
            };
            if old.last_modified >= cve.last_modified {
                return false;
            }
            for p in old.products() {
                if let Some(list) = self.by_product.get_mut(&p) {
                    list.retain(|i| *i != at);
                }
            }
            for p in cve.products() {
                self.by_product.entry(p).or_default().push(at);
            }
            if let Some(slot) = self.cves.get_mut(at as usize) {
                *slot = cve;
            }
            return true;
        }
        let at = self.cves.len() as u32;
        for p in cve.products() {
            self.by_product.entry(p).or_default().push(at);
        }
        self.by_id.insert(cve.id.clone(), at);
        self.cves.push(cve);
        true
    }

    pub fn get(&self, id: &str) -> Option<&Cve> {
        self.by_id.get(id).and_then(|i| self.cves.get(*i as usize))
    }

    /// The CVEs naming `vendor:product` (see [`crate::cpe::product_key`]).
    pub fn candidates<'a>(&'a self, product_key: &str) -> impl Iterator<Item = &'a Cve> + 'a {
        self.by_product
            .get(product_key)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|i| self.cves.get(*i as usize))
    }

    /// Every CVE `svc` matches.
    pub fn matches<'a>(&'a self, svc: &Service) -> Vec<(&'a Cve, MatchDetail)> {
        self.candidates(&svc.cpe.product_key())
            .filter_map(|c| match_cve(c, svc).map(|d| (c, d)))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// From a CVSS base score in tenths: >= 9 critical, >= 7 high, >= 4 medium.
    pub fn from_score(tenths: u8) -> Severity {
        match tenths {
            90.. => Severity::Critical,
            70..=89 => Severity::High,
            40..=69 => Severity::Medium,
            _ => Severity::Low,
        }
    }

    fn raised(self) -> Severity {
        match self {
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Confidence {
    /// The upstream version is in the range and nothing else was left unchecked.
    High,
    /// A distribution's package (which may carry a backported fix) or a platform
    /// condition one service cannot tell.
    Lowered,
}

/// What the matches of one service say: the finding's severity and evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub severity: Severity,
    /// CVE ids, highest score first, then by id.
    pub cves: Vec<String>,
    /// The highest-scoring CVE and its score.
    pub top: Option<(String, crate::Cvss)>,
    /// CVEs in CISA's catalogue of known exploited vulnerabilities.
    pub kev: Vec<String>,
    pub confidence: Confidence,
    /// Why confidence is lowered, in words, when it is.
    pub caveats: Vec<String>,
}

/// Judges a service's matches; `kev` says whether a CVE is in the KEV catalogue. None
/// when nothing matched.
pub fn assess<'a>(
    svc: &Service,
    matches: &[(&'a Cve, MatchDetail)],
    kev: impl Fn(&str) -> Option<&'a KevEntry>,
) -> Option<Assessment> {
    if matches.is_empty() {
        return None;
    }
    let mut sorted: Vec<&(&Cve, MatchDetail)> = matches.iter().collect();
    let score = |c: &Cve| c.cvss.as_ref().map_or(0, |s| s.score_tenths);
    sorted.sort_by(|a, b| {
        score(b.0)
            .cmp(&score(a.0))
            .then_with(|| a.0.id.cmp(&b.0.id))
    });
    let top = sorted
        .iter()
        .find_map(|(c, _)| c.cvss.clone().map(|s| (c.id.clone(), s)));
    let kev_ids: Vec<String> = sorted
        .iter()
        .filter(|(c, _)| kev(&c.id).is_some())
        .map(|(c, _)| c.id.clone())
        .collect();
    let mut severity = Severity::from_score(top.as_ref().map_or(0, |(_, s)| s.score_tenths));
    if !kev_ids.is_empty() {
        severity = severity.raised();
    }
    let mut caveats = Vec::new();
    if let Some(d) = &svc.distribution {
        caveats.push(format!(
            "matched on the upstream version {}; {d} may have backported the fix into its package",
            svc.version
        ));
    }
    let unchecked: Vec<&str> = sorted
        .iter()
        .filter(|(_, d)| d.platform_unchecked)
        .map(|(c, _)| c.id.as_str())
        .collect();
    if !unchecked.is_empty() {
        caveats.push(format!(
            "{} also depend on a platform or another product not checked",
            unchecked.join(", ")
        ));
    }
    Some(Assessment {
        severity,
        cves: sorted.iter().map(|(c, _)| c.id.clone()).collect(),
        top,
        kev: kev_ids,
        confidence: if caveats.is_empty() {
            Confidence::High
        } else {
            Confidence::Lowered
        },
        caveats,
    })
}
