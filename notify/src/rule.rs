//! Rules: which events go to which channels, at once or in a digest, and not during
//! quiet hours.

use crate::event::{Event, EventKind, Severity};
use crate::NotifyError;
use serde::{Deserialize, Serialize};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// Hours in which nothing is sent; what falls in them waits for their end. `start` and
/// `end` are `HH:MM` on the clock of `utc_offset` (`+08:00`, `-05:00`, `Z`); a window
/// whose end is before its start spans midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuietHours {
    pub start: String,
    pub end: String,
    #[serde(default = "utc")]
    pub utc_offset: String,
}

fn utc() -> String {
    "Z".into()
}

fn clock_minutes(s: &str, what: &str) -> Result<i64, NotifyError> {
    let bad = || {
        NotifyError::Invalid(format!(
            "quiet hours {what} {s:?}: give a time of day as HH:MM, e.g. 22:00"
        ))
    };
    let b = s.as_bytes();
    let digit = |i: usize| {
        b.get(i)
            .filter(|c| c.is_ascii_digit())
            .map(|c| i64::from(c - b'0'))
    };
    let (Some(h1), Some(h2), Some(b':'), Some(m1), Some(m2), 5) = (
        digit(0),
        digit(1),
        b.get(2).copied(),
        digit(3),
        digit(4),
        b.len(),
    ) else {
        return Err(bad());
    };
    let (h, m) = (h1 * 10 + h2, m1 * 10 + m2);
    if h >= 24 || m >= 60 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn offset_minutes(s: &str) -> Result<i64, NotifyError> {
    if s == "Z" || s == "+00:00" || s == "UTC" {
        return Ok(0);
    }
    let bad = || {
        NotifyError::Invalid(format!(
            "quiet hours utc_offset {s:?}: give the time zone's offset as +HH:MM or -HH:MM (e.g. +08:00), or Z"
        ))
    };
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let minutes = clock_minutes(rest, "offset").map_err(|_| bad())?;
    if minutes > 14 * 60 {
        return Err(bad());
    }
    Ok(sign * minutes)
}

impl QuietHours {
    pub fn validate(&self) -> Result<(), NotifyError> {
        // start == end is an empty window (nothing is held) rather than an error: the
        // API's schema can state every rule of a field, but not "two fields differ".
        clock_minutes(&self.start, "start")?;
        clock_minutes(&self.end, "end")?;
        offset_minutes(&self.utc_offset)?;
        Ok(())
    }

    /// `at` itself when it is outside the window, else the instant the window ends.
    pub fn release(&self, at: i64) -> i64 {
        let (Ok(start), Ok(end), Ok(offset)) = (
            clock_minutes(&self.start, "start"),
            clock_minutes(&self.end, "end"),
            offset_minutes(&self.utc_offset),
        ) else {
            return at;
        };
        if start == end {
            return at;
        }
        let local = at + offset * MINUTE_MS;
        let day = local.div_euclid(DAY_MS) * DAY_MS;
        let minute = (local - day) / MINUTE_MS;
        let end_local = if start < end {
            if minute >= start && minute < end {
                day + end * MINUTE_MS
            } else {
                return at;
            }
        } else if minute >= start {
            day + DAY_MS + end * MINUTE_MS
        } else if minute < end {
            day + end * MINUTE_MS
        } else {
            return at;
        };
        end_local - offset * MINUTE_MS
    }
}

/// A rule of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertRule {
    pub id: String,
    pub name: String,
    pub events: Vec<EventKind>,
    /// Findings below this severity are not sent (events without a severity always are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
    /// For `certificate.expiring`: only certificates expiring within this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_days: Option<u32>,
    /// Ids of the tenant's channels.
    pub channels: Vec<String>,
    /// Gather events for this many minutes and send them as one message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    pub enabled: bool,
}

/// Event names as users write them, checked.
pub fn parse_events(names: &[String]) -> Result<Vec<EventKind>, NotifyError> {
    if names.is_empty() {
        return Err(NotifyError::Invalid(format!(
            "events: name at least one of {}",
            choices()
        )));
    }
    let mut out = Vec::new();
    for n in names {
        match EventKind::parse(n) {
            Some(k) if k != EventKind::Test => {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
            _ => {
                return Err(NotifyError::Invalid(format!(
                    "unknown event {n:?}: use one of {}",
                    choices()
                )))
            }
        }
    }
    Ok(out)
}

fn choices() -> String {
    EventKind::RULE_CHOICES
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl AlertRule {
    /// What a rule needs besides channels existing (the store checks those).
    pub fn validate(&self) -> Result<(), NotifyError> {
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(NotifyError::Invalid(
                "rule name: give 1-200 characters".into(),
            ));
        }
        if self.events.is_empty() || self.events.contains(&EventKind::Test) {
            return Err(NotifyError::Invalid(format!(
                "events: name at least one of {}",
                choices()
            )));
        }
        if self.channels.is_empty() || self.channels.len() > 20 {
            return Err(NotifyError::Invalid(
                "channels: name 1-20 channel ids of this tenant".into(),
            ));
        }
        if let Some(m) = self.digest_minutes {
            if m == 0 || m > 7 * 24 * 60 {
                return Err(NotifyError::Invalid(
                    "digest_minutes: give 1-10080 minutes, or leave it out to send at once".into(),
                ));
            }
        }
        if self.within_days == Some(0) {
            return Err(NotifyError::Invalid(
                "within_days: give a number of days of at least 1".into(),
            ));
        }
        if let Some(q) = &self.quiet_hours {
            q.validate()?;
        }
        Ok(())
    }

    pub fn matches(&self, event: &Event) -> bool {
        if !self.enabled || !self.events.contains(&event.kind) {
            return false;
        }
        if let (Some(min), Some(sev)) = (self.min_severity, event.severity) {
            if sev < min {
                return false;
            }
        }
        if event.kind == EventKind::CertificateExpiring {
            if let Some(within) = self.within_days {
                let left = event
                    .detail
                    .get("days_left")
                    .and_then(|d| d.parse::<i64>().ok());
                if left.is_some_and(|d| d > i64::from(within)) {
                    return false;
                }
            }
        }
        true
    }

    /// When an event arriving at `now` is to be sent, and the digest it joins (events of
    /// one digest are sent as one message).
    pub fn schedule(&self, now: i64) -> (i64, Option<String>) {
        let (at, group) = match self.digest_minutes {
            Some(m) => {
                let window = i64::from(m) * MINUTE_MS;
                let end = (now.div_euclid(window) + 1) * window;
                (end, Some(format!("{}-{end}", self.id)))
            }
            None => (now, None),
        };
        match &self.quiet_hours {
            Some(q) => (q.release(at), group),
            None => (at, group),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rule() -> AlertRule {
        AlertRule {
            id: "r1".into(),
            name: "high".into(),
            events: vec![EventKind::FindingOpened, EventKind::CertificateExpiring],
            min_severity: Some(Severity::High),
            within_days: Some(14),
            channels: vec!["c1".into()],
            digest_minutes: None,
            quiet_hours: None,
            enabled: true,
        }
    }

    fn event(kind: EventKind, sev: Option<Severity>) -> Event {
        Event {
            id: "e".into(),
            kind,
            tenant: "t".into(),
            at: 0,
            title: "x".into(),
            severity: sev,
            asset: None,
            finding: None,
            detail: BTreeMap::new(),
        }
    }

    #[test]
    fn severity_threshold_and_kinds_choose_events() {
        let r = rule();
        assert!(r.matches(&event(EventKind::FindingOpened, Some(Severity::Critical))));
        assert!(r.matches(&event(EventKind::FindingOpened, Some(Severity::High))));
        assert!(!r.matches(&event(EventKind::FindingOpened, Some(Severity::Medium))));
        assert!(!r.matches(&event(EventKind::AssetNew, None)));
        let mut cert = event(EventKind::CertificateExpiring, Some(Severity::High));
        cert.detail.insert("days_left".into(), "20".into());
        assert!(!r.matches(&cert));
        cert.detail.insert("days_left".into(), "3".into());
        assert!(r.matches(&cert));
        let off = AlertRule {
            enabled: false,
            ..rule()
        };
        assert!(!off.matches(&event(EventKind::FindingOpened, Some(Severity::Critical))));
    }

    #[test]
    fn unknown_events_are_refused_by_name() {
        let e =
            parse_events(&["finding.opened".into(), "finding.closed".into()]).expect_err("unknown");
        assert!(e.to_string().contains("finding.closed") && e.to_string().contains("asset.new"));
        assert!(parse_events(&["test".into()]).is_err());
        assert!(parse_events(&[]).is_err());
        assert_eq!(
            parse_events(&["asset.new".into(), "asset.new".into()]).expect("ok"),
            vec![EventKind::AssetNew]
        );
    }

    #[test]
    fn digests_gather_a_window_and_quiet_hours_defer_to_their_end() {
        let mut r = rule();
        r.digest_minutes = Some(10);
        let (at, group) = r.schedule(61 * MINUTE_MS);
        assert_eq!(at, 70 * MINUTE_MS);
        assert_eq!(group.as_deref(), Some("r1-4200000"));
        assert_eq!(r.schedule(69 * MINUTE_MS).1, group);
        // 22:00-07:00 at UTC+08:00: 15:00 UTC is 23:00 local → released at 07:00 local,
        // which is 23:00 UTC.
        let q = QuietHours {
            start: "22:00".into(),
            end: "07:00".into(),
            utc_offset: "+08:00".into(),
        };
        q.validate().expect("valid");
        let day = 20 * DAY_MS;
        assert_eq!(
            q.release(day + 15 * 60 * MINUTE_MS),
            day + 23 * 60 * MINUTE_MS
        );
        // 02:00 local (18:00 UTC) → 07:00 local the same morning (23:00 UTC).
        assert_eq!(
            q.release(day + 18 * 60 * MINUTE_MS),
            day + 23 * 60 * MINUTE_MS
        );
        // Noon local (04:00 UTC) is not quiet.
        assert_eq!(
            q.release(day + 4 * 60 * MINUTE_MS),
            day + 4 * 60 * MINUTE_MS
        );
        let bad = QuietHours {
            utc_offset: "Europe/Paris".into(),
            ..q.clone()
        };
        assert!(bad
            .validate()
            .expect_err("bad")
            .to_string()
            .contains("+HH:MM"));
        assert!(QuietHours {
            start: "25:00".into(),
            ..q
        }
        .validate()
        .is_err());
    }
}
