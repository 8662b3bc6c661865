//! Which operations reports a tenant receives on schedule, and who gets them by mail.
//! Kept beside the tenant's policy settings (same record family, its own key): both are
//! the tenant's settings.
//!
//! A mailed report is a delivery in the alert outbox (`outbox.rs`): retried with backoff,
//! a dead letter when it runs out of attempts, replayable, and never lost across a
//! restart, like any alert.

use crate::error::StoreError;
use crate::keys::{self, Rec, TenantId};
use crate::outbox::{queue_key, sub_key, Delivery, CHANNEL};
use crate::store::{Store, Tx};
use crate::Millis;
use aperture_notify::channel::plain_address;
use aperture_notify::{Channel, ChannelKind, Event, EventKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

type Result<T> = std::result::Result<T, StoreError>;

/// Languages a report can be written in.
pub const REPORT_LANGS: &[&str] = &["en", "zh-CN"];
/// Most addresses a report is mailed to.
pub const MAX_RECIPIENTS: usize = 50;
/// The `rule` of a report's delivery in the outbox.
pub const REPORT_RULE: &str = "reports";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportSchedule {
    /// A report of the last day, made once a day.
    #[serde(default)]
    pub daily: bool,
    /// Of the last 7 days, made once a week.
    #[serde(default)]
    pub weekly: bool,
    /// Of the last 30 days, made every 30 days.
    #[serde(default)]
    pub monthly: bool,
    /// `en` or `zh-CN`.
    #[serde(default = "default_lang")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^(en|zh-CN)$"))]
    pub lang: String,
    /// Who receives every scheduled report (and those made with `mail: true`) by
    /// e-mail: plain addresses like `ciso@example.com`, at most 50. Needs `channel`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// The id of one of the tenant's e-mail alert channels: reports go through its SMTP
    /// relay, STARTTLS and login, from its sender address. Needs `recipients`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The time of day (`HH:MM`, on the clock of `tz`) scheduled reports are made at,
    /// e.g. `07:00`. Without it a report is made when the last one is a period old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The IANA time zone of `at` (`Asia/Shanghai`, `Europe/Berlin`; UTC when left out):
    /// "daily at 07:00" stays 07:00 on the tenant's wall clock when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
}

fn default_lang() -> String {
    "en".to_owned()
}

impl Default for ReportSchedule {
    fn default() -> Self {
        ReportSchedule {
            daily: false,
            weekly: false,
            monthly: false,
            lang: default_lang(),
            recipients: Vec::new(),
            channel: None,
            at: None,
            tz: None,
        }
    }
}

impl ReportSchedule {
    /// Whether reports are mailed: recipients and a channel.
    pub fn mails(&self) -> bool {
        self.channel.is_some() && !self.recipients.is_empty()
    }

    /// What needs no store: the language and the addresses.
    pub fn validate(&self) -> Result<()> {
        if !REPORT_LANGS.contains(&self.lang.as_str()) {
            return Err(StoreError::Invalid(format!(
                "lang {:?}: use one of {}",
                self.lang,
                REPORT_LANGS.join(", ")
            )));
        }
        if self.recipients.len() > MAX_RECIPIENTS {
            return Err(StoreError::Invalid(format!(
                "recipients: give at most {MAX_RECIPIENTS} addresses (a mailing list's address counts as one)"
            )));
        }
        if let Some(bad) = self.recipients.iter().find(|a| !plain_address(a)) {
            return Err(StoreError::Invalid(format!(
                "recipients: {:?} is not a plain address; give addresses like ciso@example.com",
                aperture_notify::event::clean(bad, 80)
            )));
        }
        match (&self.at, &self.tz) {
            (None, Some(_)) => {
                return Err(StoreError::Invalid(
                    "tz: give at too (the time of day reports are made at, e.g. 07:00), or leave tz out".into(),
                ))
            }
            (Some(at), tz) => {
                aperture_notify::rule::last_time_of_day(tz.as_deref(), at, 0)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?;
            }
            (None, None) => {}
        }
        match (&self.channel, self.recipients.is_empty()) {
            (Some(_), true) => Err(StoreError::Invalid(
                "recipients: give at least one address to mail reports to, or leave channel out"
                    .into(),
            )),
            (None, false) => Err(StoreError::Invalid(
                "channel: name the e-mail alert channel (its id) whose SMTP relay sends the reports"
                    .into(),
            )),
            _ => Ok(()),
        }
    }
}

impl ReportSchedule {
    /// Whether a scheduled report covering `days` days is due at `now`, the last one of
    /// its period made at `last`. Without `at`: when the last is `days` old (or there is
    /// none). With `at`: at the time of day on the tenant's clock — the first report at
    /// the first such time (within the hour after it), then once the last one is older
    /// than the period less half a day (a day of 23 or 25 hours does not skip one; a
    /// report made late after an outage is followed by the next on time).
    pub fn due(&self, days: i64, last: Option<Millis>, now: Millis) -> bool {
        const DAY: Millis = 86_400_000;
        let Some(at) = &self.at else {
            return last.is_none_or(|l| now - l >= days * DAY);
        };
        let Ok(slot) = aperture_notify::rule::last_time_of_day(self.tz.as_deref(), at, now) else {
            return false;
        };
        match last {
            None => now - slot < 3_600_000,
            Some(l) => l < slot - (days * DAY - DAY / 2),
        }
    }
}

/// The schedule as a transaction sees it.
pub(crate) fn schedule_in(tx: &Tx<'_>, tenant: &TenantId) -> Result<ReportSchedule> {
    Ok(tx
        .get_json(&keys::key(Rec::Settings, tenant, b"reports"))?
        .unwrap_or_default())
}

/// The outbox event of report `report` of `tenant`: its id, and so the mail's
/// Message-ID, follows from the report's, so a mail sent again is recognisably the same.
pub fn report_event(
    tenant: &TenantId,
    report: &str,
    title: &str,
    recipients: &[String],
    now: Millis,
) -> Event {
    let mut detail = BTreeMap::new();
    detail.insert("report".to_owned(), report.to_owned());
    detail.insert("to".to_owned(), recipients.join(", "));
    Event {
        id: format!("{tenant}.report-{report}"),
        kind: EventKind::Report,
        tenant: tenant.to_string(),
        at: now,
        title: title.to_owned(),
        severity: None,
        asset: None,
        finding: None,
        detail,
    }
}

impl Store {
    pub fn report_schedule(&self, tenant: &TenantId) -> Result<ReportSchedule> {
        self.require_tenant(tenant)?;
        Ok(self
            .get_json(&keys::key(Rec::Settings, tenant, b"reports"))?
            .unwrap_or_default())
    }

    /// Sets the schedule; its channel must be one of the tenant's e-mail channels.
    /// Nothing changes when anything is wrong.
    pub fn set_report_schedule(&self, tenant: &TenantId, s: &ReportSchedule) -> Result<()> {
        s.validate()?;
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let mut tx = self.tx();
        if let Some(id) = &s.channel {
            let ch: Option<Channel> =
                tx.get_json(&sub_key(tenant, Rec::Alerting, CHANNEL, id.as_bytes()))?;
            match ch {
                None => {
                    return Err(StoreError::Invalid(format!(
                        "channel: this tenant has no channel {:?}; create an e-mail channel first (POST …/alerts/channels with kind email)",
                        aperture_notify::event::clean(id, 64)
                    )))
                }
                Some(c) if c.kind != ChannelKind::Email => {
                    return Err(StoreError::Invalid(format!(
                        "channel: {id} is a {} channel; reports are mailed, so name a channel of kind email",
                        c.kind.name()
                    )))
                }
                Some(_) => {}
            }
        }
        tx.put_json(keys::key(Rec::Settings, tenant, b"reports"), s)?;
        tx.commit()
    }

    /// Queues the mail of report `report` to `recipients` through e-mail channel
    /// `channel`, due at `due`, in one durable commit. The sender reads the report's
    /// files when it is due; until then the mail waits in the outbox like an alert.
    pub fn enqueue_report_mail(
        &self,
        tenant: &TenantId,
        channel: &str,
        event: &Event,
        due: Millis,
        now: Millis,
    ) -> Result<Delivery> {
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let mut tx = self.tx();
        let ch: Option<Channel> =
            tx.get_json(&sub_key(tenant, Rec::Alerting, CHANNEL, channel.as_bytes()))?;
        if ch.is_none_or(|c| c.kind != ChannelKind::Email) {
            return Err(StoreError::Invalid(format!(
                "channel: this tenant has no e-mail channel {channel:?} any more; set the report schedule's channel again"
            )));
        }
        let d = Delivery {
            id: format!("{}.{channel}", event.id),
            channel: channel.to_owned(),
            rule: REPORT_RULE.to_owned(),
            group: None,
            event: event.clone(),
            attempts: 0,
            due,
            created: now,
            last_error: None,
        };
        tx.put_json(queue_key(tenant, due, &d.id), &d)?;
        tx.commit()?;
        Ok(d)
    }

    /// Makes a waiting delivery due at `now` (a report mail queued before its report
    /// was printed, now that it is). False when it is no longer waiting.
    pub fn delivery_due_now(&self, tenant: &TenantId, d: &Delivery, now: Millis) -> Result<bool> {
        let _w = self.write_lock();
        let mut tx = self.tx();
        let old = queue_key(tenant, d.due, &d.id);
        let Some(mut current) = tx.get_json::<Delivery>(&old)? else {
            return Ok(false);
        };
        tx.delete(old);
        current.due = now;
        tx.put_json(queue_key(tenant, now, &current.id), &current)?;
        tx.commit()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Millis = 3_600_000;
    const DAY: Millis = 24 * H;
    /// 2026-03-27 00:00 UTC: two days before Berlin's clocks go forward.
    const MAR27: Millis = 1_774_569_600_000;

    #[test]
    fn daily_at_seven_follows_the_tenants_clock_through_a_change() {
        let s = ReportSchedule {
            daily: true,
            at: Some("07:00".into()),
            tz: Some("Europe/Berlin".into()),
            ..ReportSchedule::default()
        };
        s.validate().expect("valid");
        // 27 March, 07:00 CET = 06:00 UTC: the first report waits for it.
        assert!(!s.due(1, None, MAR27 + 5 * H));
        assert!(s.due(1, None, MAR27 + 6 * H));
        assert!(
            !s.due(1, None, MAR27 + 8 * H),
            "the first waits for the next 07:00"
        );
        let made = MAR27 + 6 * H;
        assert!(!s.due(1, Some(made), MAR27 + 12 * H));
        // 28 March 06:00 UTC (07:00 CET) again.
        assert!(!s.due(1, Some(made), MAR27 + DAY + 5 * H));
        assert!(s.due(1, Some(made), MAR27 + DAY + 6 * H));
        // 29 March, clocks forward: 07:00 CEST is 05:00 UTC, 23 hours after the last.
        let made = MAR27 + DAY + 6 * H;
        assert!(!s.due(1, Some(made), MAR27 + 2 * DAY + 4 * H));
        assert!(s.due(1, Some(made), MAR27 + 2 * DAY + 5 * H));
        // A week: due seven days on, not before.
        assert!(!s.due(7, Some(made), MAR27 + 7 * DAY + 5 * H));
        assert!(s.due(7, Some(made), MAR27 + 8 * DAY + 5 * H));
    }

    #[test]
    fn without_a_time_of_day_a_report_is_due_a_period_after_the_last() {
        let s = ReportSchedule::default();
        assert!(s.due(1, None, MAR27));
        assert!(!s.due(7, Some(MAR27), MAR27 + 6 * DAY));
        assert!(s.due(7, Some(MAR27), MAR27 + 7 * DAY));
    }

    #[test]
    fn bad_times_and_zones_are_refused_naming_the_field() {
        for (s, want) in [
            (
                ReportSchedule {
                    at: Some("7am".into()),
                    ..ReportSchedule::default()
                },
                "at \"7am\"",
            ),
            (
                ReportSchedule {
                    at: Some("07:00".into()),
                    tz: Some("Shanghai".into()),
                    ..ReportSchedule::default()
                },
                "Asia/Shanghai",
            ),
            (
                ReportSchedule {
                    tz: Some("Asia/Shanghai".into()),
                    ..ReportSchedule::default()
                },
                "tz: give at too",
            ),
            (
                ReportSchedule {
                    recipients: vec!["ciso@example.com\r\nBcc: x@y.z".into()],
                    channel: Some("mail".into()),
                    ..ReportSchedule::default()
                },
                "recipients",
            ),
        ] {
            let e = s.validate().expect_err(want).to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
