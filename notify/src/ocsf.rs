//! SIEM events as OCSF JSON (Open Cybersecurity Schema Framework, schema 1.1.0).
//!
//! Two kinds of event leave Aperture for a SIEM:
//!
//! * **Finding events** — a finding opened, moved (acknowledged, in progress, claimed
//!   fixed, risk accepted, reopened…) or closed — are OCSF **Detection Finding**
//!   (`class_uid` 2004, category 2 "Findings"):
//!
//!   | Aperture                         | OCSF                                             |
//!   |----------------------------------|--------------------------------------------------|
//!   | first step of a finding (opened) | `activity_id` 1 Create                           |
//!   | closed-*, false-positive         | `activity_id` 3 Close                            |
//!   | any other step                   | `activity_id` 2 Update                           |
//!   | open                             | `status_id` 1 New                                |
//!   | acknowledged, in-progress, fixed | `status_id` 2 In Progress                        |
//!   | risk-accepted, false-positive    | `status_id` 3 Suppressed                         |
//!   | closed-verified/-sanctioned/-by-policy | `status_id` 4 Resolved                     |
//!   | severity info…critical           | `severity_id` 1 Informational … 5 Critical       |
//!   | finding id                       | `finding_info.uid`                               |
//!   | title                            | `finding_info.title`                             |
//!   | rule                             | `finding_info.analytic` (`type_id` 1 Rule)       |
//!   | asset                            | `resources[0]` (`uid` = asset key, `type`)       |
//!   | step's actor and comment         | `actor.user.name`, `comment`                     |
//!   | state, previous state            | `unmapped.state`, `unmapped.from`                |
//!
//! * **Change events** — an asset appeared, one of its facts changed, or it is gone — are
//!   OCSF **Device Inventory Info** (`class_uid` 5001, category 5 "Discovery",
//!   `activity_id` 2 Collect, `severity_id` 1 Informational): `device.ip` is the address
//!   of a host or service, `device.hostname` a domain's name; the change itself is in
//!   `unmapped` (`asset`, `asset_kind`, `change` = appeared / changed / gone, `field`,
//!   `old`, `new`, `scan`, `seq`).
//!
//! Both carry `metadata.uid` = the event id (stable: a repeat after a reconnect or a
//! crash has the same id, for the SIEM to drop), `metadata.tenant_uid`, `time` in Unix
//! milliseconds and `metadata.product` = Aperture. Text from scanned hosts is carried as
//! JSON strings; [`to_json`] writes pure ASCII (everything else as `\u` escapes), so a
//! line never breaks and no byte needs trust in the receiver's charset.

use crate::event::Severity;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One step of a finding's life, as the store logged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FindingStep {
    pub finding: String,
    pub rule: String,
    pub asset: String,
    pub title: String,
    pub severity: Severity,
    /// The state after the step (the policy's name: open, fixed, closed-verified…).
    pub state: String,
    /// The state before; none for the step that opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Who made the step ("aperture" for the policy).
    pub actor: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// Unix milliseconds: when the finding was opened.
    pub opened: i64,
}

/// One change of an asset, as the change feed has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssetChange {
    /// The change feed's number.
    pub seq: u64,
    pub asset: String,
    /// host, service, domain or certificate.
    pub asset_kind: String,
    /// The address of a host or service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// appeared, changed or gone.
    pub change: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
    pub scan: String,
}

/// What a SIEM event says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SiemBody {
    Finding(FindingStep),
    Change(AssetChange),
}

/// One event of the export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiemEvent {
    /// Stable: the same happening has the same id on every send.
    pub id: String,
    pub tenant: String,
    /// Unix milliseconds.
    pub at: i64,
    pub body: SiemBody,
}

pub const OCSF_VERSION: &str = "1.1.0";
pub const DETECTION_FINDING: u32 = 2004;
pub const DEVICE_INVENTORY_INFO: u32 = 5001;

pub fn severity_id(s: Severity) -> u8 {
    match s {
        Severity::Info => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

fn severity_name(id: u8) -> &'static str {
    match id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        5 => "Critical",
        _ => "Unknown",
    }
}

/// OCSF finding status of a policy state: (status_id, status).
pub fn status(state: &str) -> (u8, &'static str) {
    match state {
        "open" => (1, "New"),
        "acknowledged" | "in-progress" | "fixed" => (2, "In Progress"),
        "risk-accepted" | "false-positive" => (3, "Suppressed"),
        s if s.starts_with("closed") => (4, "Resolved"),
        _ => (99, "Other"),
    }
}

/// OCSF activity of a step: (activity_id, activity_name).
pub fn activity(step: &FindingStep) -> (u8, &'static str) {
    if step.from.is_none() {
        (1, "Create")
    } else if step.state.starts_with("closed") || step.state == "false-positive" {
        (3, "Close")
    } else {
        (2, "Update")
    }
}

fn metadata(e: &SiemEvent, product_version: &str) -> Value {
    json!({
        "version": OCSF_VERSION,
        "uid": e.id,
        "tenant_uid": e.tenant,
        "product": {
            "name": "Aperture",
            "vendor_name": "Aperture project",
            "version": product_version,
        },
    })
}

/// The OCSF object of an event.
pub fn to_ocsf(e: &SiemEvent, product_version: &str) -> Value {
    match &e.body {
        SiemBody::Finding(f) => {
            let (activity_id, activity_name) = activity(f);
            let (status_id, status_name) = status(&f.state);
            let sev = severity_id(f.severity);
            let kind = f.asset.split(':').next().unwrap_or_default();
            let mut v = json!({
                "class_uid": DETECTION_FINDING,
                "class_name": "Detection Finding",
                "category_uid": 2,
                "category_name": "Findings",
                "activity_id": activity_id,
                "activity_name": activity_name,
                "type_uid": DETECTION_FINDING * 100 + u32::from(activity_id),
                "time": e.at,
                "severity_id": sev,
                "severity": severity_name(sev),
                "status_id": status_id,
                "status": status_name,
                "message": f.title,
                "metadata": metadata(e, product_version),
                "finding_info": {
                    "uid": f.finding,
                    "title": f.title,
                    "types": [f.rule],
                    "created_time": f.opened,
                    "modified_time": e.at,
                    "analytic": {"name": f.rule, "uid": f.rule, "type_id": 1, "type": "Rule"},
                },
                "resources": [{"uid": f.asset, "name": f.asset, "type": kind}],
                "actor": {"user": {"name": f.actor}},
                "unmapped": {"state": f.state, "from": f.from},
            });
            if !f.comment.is_empty() {
                v["comment"] = json!(f.comment);
            }
            v
        }
        SiemBody::Change(c) => {
            let mut device = json!({"type_id": 0, "type": "Unknown"});
            if let Some(ip) = &c.ip {
                device["ip"] = json!(ip);
            }
            if c.asset_kind == "domain" {
                device["hostname"] = json!(c.asset.strip_prefix("domain:").unwrap_or(&c.asset));
            }
            json!({
                "class_uid": DEVICE_INVENTORY_INFO,
                "class_name": "Device Inventory Info",
                "category_uid": 5,
                "category_name": "Discovery",
                "activity_id": 2,
                "activity_name": "Collect",
                "type_uid": DEVICE_INVENTORY_INFO * 100 + 2,
                "time": e.at,
                "severity_id": 1,
                "severity": "Informational",
                "message": format!("{} {}", c.asset, c.change),
                "metadata": metadata(e, product_version),
                "device": device,
                "unmapped": c,
            })
        }
    }
}

/// JSON in pure ASCII: every character past 0x7f as a `\u` escape (UTF-16, as JSON
/// wants). Valid because serde_json only writes such characters inside strings.
pub fn to_json(v: &Value) -> String {
    let text = v.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn step(state: &str, from: Option<&str>) -> SiemEvent {
        SiemEvent {
            id: "acme.f7".into(),
            tenant: "acme".into(),
            at: 1_700_000_000_123,
            body: SiemBody::Finding(FindingStep {
                finding: "f0123".into(),
                rule: "unsanctioned_service".into(),
                asset: "service:198.18.0.7:5432/tcp".into(),
                title: "PostgreSQL \"db\"]\n\u{1b}[31m 数据库 😀".into(),
                severity: Severity::High,
                state: state.into(),
                from: from.map(str::to_owned),
                actor: "aperture".into(),
                comment: String::new(),
                opened: 1_699_999_999_000,
            }),
        }
    }

    #[test]
    fn a_finding_is_a_detection_finding_with_its_activity_status_and_severity() {
        let v = to_ocsf(&step("open", None), "0.1.0");
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["category_uid"], 2);
        assert_eq!(v["activity_id"], 1);
        assert_eq!(v["type_uid"], 200401);
        assert_eq!(v["severity_id"], 4);
        assert_eq!(v["status_id"], 1);
        assert_eq!(v["time"], 1_700_000_000_123i64);
        assert_eq!(v["finding_info"]["uid"], "f0123");
        assert_eq!(v["metadata"]["uid"], "acme.f7");
        assert_eq!(v["metadata"]["product"]["name"], "Aperture");
        assert_eq!(v["resources"][0]["type"], "service");
        let closed = to_ocsf(&step("closed-verified", Some("fixed")), "0.1.0");
        assert_eq!(
            (closed["activity_id"].clone(), closed["status_id"].clone()),
            (json!(3), json!(4))
        );
        let moved = to_ocsf(&step("risk-accepted", Some("open")), "0.1.0");
        assert_eq!(
            (moved["activity_id"].clone(), moved["status_id"].clone()),
            (json!(2), json!(3))
        );
        assert_eq!(moved["type_uid"], 200402);
        let working = to_ocsf(&step("in-progress", Some("acknowledged")), "0.1.0");
        assert_eq!(working["status_id"], 2);
        let wrong = to_ocsf(&step("false-positive", Some("open")), "0.1.0");
        assert_eq!(
            (wrong["activity_id"].clone(), wrong["status_id"].clone()),
            (json!(3), json!(3))
        );
    }

    #[test]
    fn a_change_is_device_inventory_info_with_the_change_unmapped() {
        let e = SiemEvent {
            id: "acme.c3".into(),
            tenant: "acme".into(),
            at: 5,
            body: SiemBody::Change(AssetChange {
                seq: 3,
                asset: "service:198.18.0.7:22/tcp".into(),
                asset_kind: "service".into(),
                ip: Some("198.18.0.7".into()),
                change: "changed".into(),
                field: Some("banner".into()),
                old: None,
                new: Some("SSH-2.0-x".into()),
                scan: "s1".into(),
            }),
        };
        let v = to_ocsf(&e, "0.1.0");
        assert_eq!(v["class_uid"], 5001);
        assert_eq!(v["type_uid"], 500102);
        assert_eq!(v["device"]["ip"], "198.18.0.7");
        assert_eq!(v["unmapped"]["field"], "banner");
        assert_eq!(v["metadata"]["uid"], "acme.c3");
    }

    #[test]
    fn json_is_ascii_and_round_trips_hostile_text() {
        let e = step("open", None);
        let v = to_ocsf(&e, "0.1.0");
        let text = to_json(&v);
        assert!(text.is_ascii(), "{text}");
        assert!(!text.contains('\n') && !text.contains('\u{1b}'));
        let back: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back, v);
    }
}
