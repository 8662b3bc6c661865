//! The events alerts are made of.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What happened. The dotted name is the user's word for it (in rules and bodies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventKind {
    /// A finding opened (or reopened) at some severity.
    #[serde(rename = "finding.opened")]
    FindingOpened,
    /// An asset seen for the first time.
    #[serde(rename = "asset.new")]
    AssetNew,
    /// An active finding passed its remediation deadline.
    #[serde(rename = "finding.overdue")]
    FindingOverdue,
    /// A verification scan decided a "fixed" claim: confirmed or disproved.
    #[serde(rename = "verification.result")]
    VerificationResult,
    /// A certificate expires within the rule's number of days.
    #[serde(rename = "certificate.expiring")]
    CertificateExpiring,
    /// A scan job failed.
    #[serde(rename = "scan.failed")]
    ScanFailed,
    /// Sent by `POST …/channels/{id}/test` only; rules cannot choose it.
    #[serde(rename = "test")]
    Test,
    /// A generated operations report mailed to the tenant's report recipients (the
    /// report settings choose it, not rules).
    #[serde(rename = "report")]
    Report,
}

impl EventKind {
    pub const RULE_CHOICES: [EventKind; 6] = [
        EventKind::FindingOpened,
        EventKind::AssetNew,
        EventKind::FindingOverdue,
        EventKind::VerificationResult,
        EventKind::CertificateExpiring,
        EventKind::ScanFailed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::FindingOpened => "finding.opened",
            EventKind::AssetNew => "asset.new",
            EventKind::FindingOverdue => "finding.overdue",
            EventKind::VerificationResult => "verification.result",
            EventKind::CertificateExpiring => "certificate.expiring",
            EventKind::ScanFailed => "scan.failed",
            EventKind::Test => "test",
            EventKind::Report => "report",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        Self::RULE_CHOICES
            .into_iter()
            .chain([EventKind::Test])
            .find(|k| k.name() == s)
    }
}

/// Severities in the policy's order (the names are the policy's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One event. `id` is stable: the same happening always has the same id, so a receiver
/// that sees it twice (a delivery repeated after a crash) can drop the repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub id: String,
    pub kind: EventKind,
    pub tenant: String,
    /// Unix milliseconds.
    pub at: i64,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
    /// Further facts (rule, state, scan, error...), shown as `key: value` lines.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, String>,
}

/// Text from the store (titles carry names and banners of scanned hosts) made safe for a
/// one-line chat message: no control characters, bounded length.
pub fn clean(text: &str, max_chars: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max_chars)
        .collect();
    if text.chars().count() > max_chars {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name_and_serde() {
        for k in EventKind::RULE_CHOICES {
            assert_eq!(EventKind::parse(k.name()), Some(k));
            let json = serde_json::to_string(&k).expect("json");
            assert_eq!(json, format!("\"{}\"", k.name()));
        }
        assert_eq!(EventKind::parse("finding.closed"), None);
    }

    #[test]
    fn clean_removes_controls_and_bounds_length() {
        assert_eq!(clean("a\r\nb\x1b[31m", 100), "a  b [31m");
        assert_eq!(clean("abcdef", 3), "abc…");
    }
}
