//! Service identification: banner in, product/version/CPE/risk out.
//!
//! Three sources, in order of trust:
//! 1. our rules (`rules/services.toml`, embedded at build time, or a file of the same
//!    format given by the user), see [`rules`];
//! 2. optionally, Rapid7 Recog XML fingerprints the user points us at (we do not ship
//!    them), see [`recog`];
//! 3. the protocol itself: a banner of a known protocol that nothing recognised is still
//!    an identification (service = protocol, no product), so exposure policy can act on it.
//!
//! Everything here is pure: no I/O except [`recog::load_recog_dir`], which reads the
//! directory it is given.

pub mod recog;
pub mod risk;
pub mod rules;

pub use recog::{load_recog_dir, RecogDb, RecogError, RecogStats};
pub use risk::{cleartext_auth, RiskClass};
pub use rules::{Rule, RuleError, Source, BUILTIN_RULES};

use crate::session::Banner;
use rules::{index_by_protocol, parse_rules, RuleMatch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Confidence given to a protocol-level identification (no product recognised).
pub const PROTOCOL_FALLBACK_CONFIDENCE: u8 = 10;

/// What produced an identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Origin {
    /// One of our TOML rules (builtin or user-supplied).
    Rule,
    /// A Recog fingerprint.
    Recog,
    /// Only the protocol was known.
    Protocol,
}

/// What a banner says about the service behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identification {
    /// Service name (`ssh`, `http`, `docker`, `elasticsearch`, ...).
    pub service: String,
    pub product: Option<String>,
    pub vendor: Option<String>,
    pub version: Option<String>,
    /// CPE 2.3 formatted string (Recog data may give the older `cpe:/` URI form).
    pub cpe: Option<String>,
    /// Operating system hint (`Debian`, `Ubuntu`, `Windows`, ...).
    pub os: Option<String>,
    /// 0..=100: how sure the source is of product and version.
    pub confidence: u8,
    pub risk: RiskClass,
    /// Credentials would cross the network in clear (see [`cleartext_auth`]).
    pub cleartext_auth: bool,
    /// Id of the rule or fingerprint that matched; None for the protocol fallback.
    pub rule_id: Option<String>,
    pub origin: Origin,
}

/// How our rules and a Recog database are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CombineMode {
    /// Our rules decide; Recog is consulted only when none of them matched. Our rules
    /// carry reviewed CPEs and risk classes, so they win even at equal confidence.
    #[default]
    OursFirst,
    /// Both are consulted and the higher confidence wins; ties go to our rules.
    BestConfidence,
}

/// A compiled rule set, optionally backed by a Recog database.
#[derive(Debug, Clone)]
pub struct Identifier {
    rules: Vec<Rule>,
    by_protocol: BTreeMap<String, Vec<usize>>,
    recog: Option<(RecogDb, CombineMode)>,
}

static BUILTIN: OnceLock<Result<Identifier, RuleError>> = OnceLock::new();

impl Identifier {
    /// The embedded rule set, parsed on first use and shared afterwards (clones share
    /// the compiled regexes). A parse error is returned, never a panic; the unit tests
    /// make sure there is none.
    pub fn builtin() -> Result<Identifier, RuleError> {
        BUILTIN
            .get_or_init(|| Identifier::from_toml_str(BUILTIN_RULES))
            .clone()
    }

    /// Parses a rules file in our TOML format.
    pub fn from_toml_str(text: &str) -> Result<Identifier, RuleError> {
        let rules = parse_rules(text)?;
        let by_protocol = index_by_protocol(&rules);
        Ok(Identifier {
            rules,
            by_protocol,
            recog: None,
        })
    }

    /// Adds the rules of another file (e.g. site-specific rules on top of the builtin
    /// set). Ids must stay unique across both.
    pub fn extend_from_toml_str(&mut self, text: &str) -> Result<(), RuleError> {
        let extra = parse_rules(text)?;
        for r in &extra {
            if self.rules.iter().any(|o| o.id() == r.id()) {
                return Err(RuleError::DuplicateId {
                    id: r.id().to_string(),
                });
            }
        }
        self.rules.extend(extra);
        self.by_protocol = index_by_protocol(&self.rules);
        Ok(())
    }

    /// Attaches a Recog database, used as [`CombineMode`] says.
    pub fn with_recog(mut self, db: RecogDb, mode: CombineMode) -> Identifier {
        self.recog = Some((db, mode));
        self
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Best identification for `banner`: our best rule (highest confidence, then most
    /// captures filled, then file order), Recog as configured, else the protocol
    /// fallback. `None` only for protocols we do not know at all.
    pub fn identify(&self, banner: &Banner) -> Option<Identification> {
        let ours = self.identify_rules(banner);
        let recog = match &self.recog {
            None => None,
            Some((_, CombineMode::OursFirst)) if ours.is_some() => None,
            Some((db, _)) => db.identify(banner),
        };
        let best = match (ours, recog) {
            (Some(o), Some(r)) if r.confidence > o.confidence => Some(r),
            (Some(o), _) => Some(o),
            (None, r) => r,
        };
        best.or_else(|| protocol_fallback(banner))
    }

    /// Our rules only (no Recog, no fallback).
    pub fn identify_rules(&self, banner: &Banner) -> Option<Identification> {
        let (rule, m) = self.ranked_matches(banner).into_iter().next()?;
        Some(rule_identification(rule, m, banner))
    }

    /// Every product recognised in the banner, best first, one entry per product: an
    /// http response often names a proxy, a server, a framework and an application.
    /// Recog (if attached) adds its answer when it names a product not already listed.
    /// Falls back to the protocol-level identification when nothing matched.
    pub fn identify_all(&self, banner: &Banner) -> Vec<Identification> {
        let mut out: Vec<Identification> = Vec::new();
        for (rule, m) in self.ranked_matches(banner) {
            let id = rule_identification(rule, m, banner);
            if id.product.is_some() && out.iter().any(|o| o.product == id.product) {
                continue;
            }
            out.push(id);
        }
        if let Some((db, _)) = &self.recog {
            if let Some(r) = db.identify(banner) {
                if !out
                    .iter()
                    .any(|o| o.product.is_some() && o.product == r.product)
                {
                    out.push(r);
                }
            }
        }
        if out.is_empty() {
            out.extend(protocol_fallback(banner));
        }
        out
    }

    /// All matching rules, best first: confidence, then captures filled, then file order.
    fn ranked_matches(&self, banner: &Banner) -> Vec<(&Rule, RuleMatch)> {
        let protocol = banner.protocol.to_ascii_lowercase();
        let Some(candidates) = self.by_protocol.get(&protocol) else {
            return Vec::new();
        };
        let mut found: Vec<(usize, &Rule, RuleMatch)> = candidates
            .iter()
            .filter_map(|&i| {
                let rule = self.rules.get(i)?;
                rule.apply(banner).map(|m| (i, rule, m))
            })
            .collect();
        found.sort_by(|(ia, a, ma), (ib, b, mb)| {
            (b.confidence(), mb.filled)
                .cmp(&(a.confidence(), ma.filled))
                .then(ia.cmp(ib))
        });
        found.into_iter().map(|(_, r, m)| (r, m)).collect()
    }
}

fn rule_identification(rule: &Rule, m: RuleMatch, banner: &Banner) -> Identification {
    Identification {
        service: rule.service().to_string(),
        product: m.product,
        vendor: m.vendor,
        version: m.version,
        cpe: m.cpe,
        os: m.os,
        confidence: rule.confidence(),
        risk: rule.risk(),
        cleartext_auth: cleartext_auth(banner),
        rule_id: Some(rule.id().to_string()),
        origin: Origin::Rule,
    }
}

/// Service = protocol, nothing else known. Only for a banner that carries what the
/// protocol's session positively recognised (its text or fields): a protocol name
/// alone, such as the one a port number suggests or the session that happened to be
/// tried, is a guess, and a guess names no service and derives no risk class.
pub fn protocol_fallback(banner: &Banner) -> Option<Identification> {
    let protocol = banner.protocol.trim().to_ascii_lowercase();
    if !risk::is_known_protocol(&protocol) || !has_evidence(banner) {
        return None;
    }
    Some(Identification {
        risk: RiskClass::from_protocol(&protocol),
        service: protocol,
        product: None,
        vendor: None,
        version: None,
        cpe: None,
        os: None,
        confidence: PROTOCOL_FALLBACK_CONFIDENCE,
        cleartext_auth: cleartext_auth(banner),
        rule_id: None,
        origin: Origin::Protocol,
    })
}

/// Whether a banner holds anything a session recognised, beyond its protocol's name.
pub fn has_evidence(banner: &Banner) -> bool {
    !banner.text.trim().is_empty() || !banner.fields.is_empty()
}

#[cfg(test)]
mod tests;
