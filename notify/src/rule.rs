//! Rules: which events go to which channels, at once or in a digest, and not during
//! quiet hours.

use crate::event::{Event, EventKind, Severity};
use crate::NotifyError;
use chrono::{NaiveDateTime, TimeZone, Timelike};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// Hours in which nothing is sent; what falls in them waits for their end. `start` and
/// `end` are `HH:MM` on the clock of `tz` (an IANA zone such as `Asia/Shanghai` or
/// `Europe/Berlin`, which follows daylight saving time) or, without `tz`, of the fixed
/// `utc_offset` (`+08:00`, `-05:00`, `Z`); a window whose end is before its start spans
/// midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuietHours {
    pub start: String,
    pub end: String,
    /// A fixed offset; `tz` is the better choice where clocks change.
    #[serde(default = "utc")]
    pub utc_offset: String,
    /// An IANA time zone name (`Asia/Shanghai`, `Europe/Berlin`, `America/New_York`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
}

/// An IANA time zone by name, or what to give instead.
pub fn parse_tz(field: &str, name: &str) -> Result<Tz, NotifyError> {
    name.parse::<Tz>().map_err(|_| {
        NotifyError::Invalid(format!(
            "{field} {:?}: give an IANA time zone name such as Asia/Shanghai or Europe/Berlin",
            crate::event::clean(name, 60)
        ))
    })
}

/// The first instant at which the wall clock of `tz` reads `local`: the earlier of two
/// when clocks go back, and the end of the gap when `local` is skipped as they go
/// forward.
pub fn local_instant(tz: Tz, local: NaiveDateTime) -> i64 {
    for skip in 0..=180 {
        if let Some(t) = tz
            .from_local_datetime(&(local + chrono::Duration::minutes(skip)))
            .earliest()
        {
            return t.timestamp_millis();
        }
    }
    // No zone skips three hours; were one to, UTC is the nearest honest answer.
    local.and_utc().timestamp_millis()
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
        if let Some(tz) = &self.tz {
            parse_tz("quiet hours tz", tz)?;
            if offset_minutes(&self.utc_offset) != Ok(0) {
                return Err(NotifyError::Invalid(
                    "quiet hours: give tz (e.g. Europe/Berlin) or utc_offset, not both".into(),
                ));
            }
        }
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
        if let Some(tz) = self.tz.as_deref().and_then(|n| n.parse::<Tz>().ok()) {
            return release_in(tz, start, end, at);
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

/// The last instant at or before `now` at which the wall clock of zone `tz` (UTC when
/// none) read `at` (`HH:MM`): when a report scheduled "daily at 07:00 Asia/Shanghai" was
/// last due. Errors name the field (`at`, `tz`) and what to give.
pub fn last_time_of_day(tz: Option<&str>, at: &str, now: i64) -> Result<i64, NotifyError> {
    let minute = clock_minutes(at, "at").map_err(|_| {
        NotifyError::Invalid(format!(
            "at {:?}: give the time of day as HH:MM, e.g. 07:00",
            crate::event::clean(at, 20)
        ))
    })?;
    let tz = match tz {
        Some(name) => parse_tz("tz", name)?,
        None => Tz::UTC,
    };
    let bad = || NotifyError::Invalid(format!("time {now} is out of range"));
    let local = tz.timestamp_millis_opt(now).single().ok_or_else(bad)?;
    let today = local.date_naive();
    let yesterday = today.pred_opt().ok_or_else(bad)?;
    for day in [today, yesterday] {
        let wall = day
            .and_hms_opt((minute / 60) as u32, (minute % 60) as u32, 0)
            .ok_or_else(bad)?;
        let t = local_instant(tz, wall);
        if t <= now {
            return Ok(t);
        }
    }
    Err(bad())
}

/// [`QuietHours::release`] on the clock of a zone with daylight saving time: the window
/// is read on the local date of `at`, and its end is the instant the local clock first
/// shows it.
fn release_in(tz: Tz, start: i64, end: i64, at: i64) -> i64 {
    let Some(local) = tz.timestamp_millis_opt(at).single() else {
        return at;
    };
    let minute = i64::from(local.hour() * 60 + local.minute());
    let today = local.date_naive();
    let end_day = if start < end {
        if minute >= start && minute < end {
            today
        } else {
            return at;
        }
    } else if minute >= start {
        match today.succ_opt() {
            Some(d) => d,
            None => return at,
        }
    } else if minute < end {
        today
    } else {
        return at;
    };
    let Some(end_local) = end_day.and_hms_opt((end / 60) as u32, (end % 60) as u32, 0) else {
        return at;
    };
    local_instant(tz, end_local).max(at)
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
        if self.events.is_empty()
            || self
                .events
                .iter()
                .any(|e| matches!(e, EventKind::Test | EventKind::Report))
        {
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
            tz: None,
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
            tz: None,
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

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        chrono::Utc
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("a valid UTC time")
            .timestamp_millis()
    }

    fn zone(tz: &str, start: &str, end: &str) -> QuietHours {
        let q = QuietHours {
            start: start.into(),
            end: end.into(),
            utc_offset: "Z".into(),
            tz: Some(tz.into()),
        };
        q.validate().expect("valid");
        q
    }

    #[test]
    fn quiet_hours_follow_a_named_zone_across_daylight_saving_changes() {
        // Asia/Shanghai has no DST: the same as +08:00.
        let sh = zone("Asia/Shanghai", "22:00", "07:00");
        assert_eq!(sh.release(utc(2026, 3, 1, 15, 0)), utc(2026, 3, 1, 23, 0));
        // Berlin, night of the spring change (29 March 2026, 02:00 CET → 03:00 CEST):
        // 00:00 CET is quiet until 07:00 CEST, which is 05:00 UTC, not 06:00.
        let be = zone("Europe/Berlin", "22:00", "07:00");
        assert_eq!(be.release(utc(2026, 3, 28, 23, 0)), utc(2026, 3, 29, 5, 0));
        // The evening before, on winter time: 22:30 CET → 07:00 CEST next morning.
        assert_eq!(be.release(utc(2026, 3, 28, 21, 30)), utc(2026, 3, 29, 5, 0));
        // A normal winter night: 07:00 CET is 06:00 UTC.
        assert_eq!(be.release(utc(2026, 1, 10, 23, 0)), utc(2026, 1, 11, 6, 0));
        // The autumn change (25 October 2026, 03:00 CEST → 02:00 CET): 23:00 CEST
        // waits for 07:00 CET, 06:00 UTC.
        assert_eq!(
            be.release(utc(2026, 10, 24, 21, 0)),
            utc(2026, 10, 25, 6, 0)
        );
        // Daytime is not quiet, in summer either.
        let noon = utc(2026, 7, 1, 10, 0);
        assert_eq!(be.release(noon), noon);
        // A window ending in the skipped hour ends when the clock jumps (03:00 CEST).
        let gap = zone("Europe/Berlin", "01:00", "02:30");
        assert_eq!(gap.release(utc(2026, 3, 29, 0, 30)), utc(2026, 3, 29, 1, 0));
        // New York springs forward on 8 March 2026: 07:00 EDT is 11:00 UTC.
        let ny = zone("America/New_York", "22:00", "07:00");
        assert_eq!(ny.release(utc(2026, 3, 8, 4, 0)), utc(2026, 3, 8, 11, 0));
        assert_eq!(ny.release(utc(2026, 3, 7, 4, 0)), utc(2026, 3, 7, 12, 0));
    }

    #[test]
    fn unknown_zones_and_two_clocks_are_refused_with_an_example() {
        let mut q = zone("Europe/Berlin", "22:00", "07:00");
        q.tz = Some("Mars/Olympus_Mons".into());
        let e = q.validate().expect_err("unknown zone").to_string();
        assert!(
            e.contains("quiet hours tz") && e.contains("Asia/Shanghai"),
            "{e}"
        );
        q.tz = Some("Europe/Berlin".into());
        q.utc_offset = "+01:00".into();
        let e = q.validate().expect_err("both").to_string();
        assert!(e.contains("not both"), "{e}");
        // Stored rules of before keep reading: no tz, an offset.
        let old: QuietHours =
            serde_json::from_str(r#"{"start":"22:00","end":"07:00","utc_offset":"+08:00"}"#)
                .expect("old form");
        assert_eq!(old.tz, None);
        old.validate().expect("valid");
    }

    #[test]
    fn a_time_of_day_in_a_zone_is_found_across_clock_changes() {
        // 07:00 in Shanghai is 23:00 UTC the day before.
        let at = |now| last_time_of_day(Some("Asia/Shanghai"), "07:00", now).expect("ok");
        assert_eq!(at(utc(2026, 3, 2, 0, 0)), utc(2026, 3, 1, 23, 0));
        assert_eq!(at(utc(2026, 3, 1, 22, 59)), utc(2026, 2, 28, 23, 0));
        // Berlin, the morning clocks went forward: 07:00 CEST is 05:00 UTC.
        let be = |now| last_time_of_day(Some("Europe/Berlin"), "07:00", now).expect("ok");
        assert_eq!(be(utc(2026, 3, 29, 12, 0)), utc(2026, 3, 29, 5, 0));
        assert_eq!(be(utc(2026, 3, 28, 12, 0)), utc(2026, 3, 28, 6, 0));
        // Without a zone: UTC.
        assert_eq!(
            last_time_of_day(None, "07:00", utc(2026, 3, 29, 12, 0)).expect("ok"),
            utc(2026, 3, 29, 7, 0)
        );
        let e = last_time_of_day(Some("Berlin"), "07:00", 0).expect_err("zone");
        assert!(e.to_string().contains("tz \"Berlin\""), "{e}");
        let e = last_time_of_day(None, "7am", 0).expect_err("time");
        assert!(e.to_string().starts_with("at "), "{e}");
    }
}
