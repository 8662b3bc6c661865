//! Alerts in the store: each tenant's channels and rules, and the durable outbox of
//! deliveries.
//!
//! An event becomes deliveries in the same transaction as the change that causes it (a
//! finding opening, an asset appearing, a scan failing), so a `kill -9` can lose neither
//! the change nor its alert. A delivery stays in the outbox until the sender marks it
//! delivered; a crash between sending and marking sends it again, with the same id, for
//! the receiver to drop. Deliveries are keyed by when they are due, so the sender reads
//! only what is due now.

use crate::error::{Result, StoreError};
use crate::keys::{self, AssetKey, Rec, TenantId};
use crate::policy::{self, Finding, FindingState};
use crate::store::{Store, Tx};
use crate::Millis;
use aperture_notify::{AlertRule, Channel, Event, EventKind, Severity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub(crate) const CHANNEL: u8 = b'c';
pub(crate) const RULE: u8 = b'r';
const QUEUE: u8 = b'q';
const DEAD: u8 = b'd';
/// Markers of overdue findings already alerted: `<finding id>@<due>`.
const OVERDUE: u8 = b'o';

/// One event on its way to one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// `<event id>.<channel id>`: what the receiver sees as the event id, the same on
    /// every attempt.
    pub id: String,
    pub channel: String,
    pub rule: String,
    /// Deliveries of one digest share this and go out as one message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub event: Event,
    pub attempts: u32,
    pub due: Millis,
    pub created: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

pub(crate) fn sub_key(tenant: &TenantId, rec: Rec, kind: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = keys::key(rec, tenant, &[kind]);
    k.extend_from_slice(rest);
    k
}

pub(crate) fn queue_key(tenant: &TenantId, due: Millis, id: &str) -> Vec<u8> {
    let mut rest = (due.max(0) as u64).to_be_bytes().to_vec();
    rest.extend_from_slice(id.as_bytes());
    sub_key(tenant, Rec::Outbox, QUEUE, &rest)
}

fn dead_key(tenant: &TenantId, id: &str) -> Vec<u8> {
    sub_key(tenant, Rec::Outbox, DEAD, id.as_bytes())
}

fn invalid(e: aperture_notify::NotifyError) -> StoreError {
    StoreError::Invalid(e.to_string())
}

/// Ids users give channels and rules: short, plain, safe in URLs and keys.
pub fn validate_id(what: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} id {id:?}: use 1-64 characters of letters, digits, '-' and '_'"
        )))
    }
}

/// Stages the deliveries of `event` for every rule of the tenant it matches (one per
/// channel, however many rules name it). `rules`, when given, are the tenant's rules as
/// the caller already read them (an ingest batch reads them once).
pub(crate) fn enqueue(
    tx: &mut Tx<'_>,
    tenant: &TenantId,
    event: &Event,
    rules: Option<&[AlertRule]>,
    now: Millis,
) -> Result<usize> {
    let read;
    let rules = match rules {
        Some(r) => r,
        None => {
            read = rules_in(tx, tenant)?;
            &read
        }
    };
    let mut channels: Vec<&str> = Vec::new();
    let mut staged = 0;
    for rule in rules.iter().filter(|r| r.matches(event)) {
        let (due, group) = rule.schedule(now);
        for ch in &rule.channels {
            if channels.contains(&ch.as_str()) {
                continue;
            }
            channels.push(ch);
            let d = Delivery {
                id: format!("{}.{ch}", event.id),
                channel: ch.clone(),
                rule: rule.id.clone(),
                group: group.clone(),
                event: event.clone(),
                attempts: 0,
                due,
                created: now,
                last_error: None,
            };
            tx.put_json(queue_key(tenant, due, &d.id), &d)?;
            staged += 1;
        }
    }
    Ok(staged)
}

/// The tenant's rules as a transaction sees them.
pub(crate) fn rules_in(tx: &Tx<'_>, tenant: &TenantId) -> Result<Vec<AlertRule>> {
    let prefix = sub_key(tenant, Rec::Alerting, RULE, b"");
    tx.scan_prefix(&prefix)?
        .into_iter()
        .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
        .collect()
}

/// The event of a finding, with an id unique to this step of its story.
fn finding_event(kind: EventKind, tag: &str, tenant: &TenantId, f: &Finding, now: Millis) -> Event {
    let mut detail = BTreeMap::new();
    detail.insert("rule".to_owned(), f.rule.name());
    detail.insert("state".to_owned(), f.state.name());
    if let Some(t) = f.transitions.last() {
        detail.insert("why".to_owned(), t.comment.clone());
    }
    if let Some(days) = f.evidence.get("not_after").and_then(|t| days_left(t, now)) {
        detail.insert("days_left".to_owned(), days.to_string());
    }
    Event {
        id: format!("{tenant}.{tag}-{}-{}", f.id, f.transitions.len()),
        kind,
        tenant: tenant.to_string(),
        at: now,
        title: f.title.clone(),
        severity: Some(severity(f.severity)),
        asset: Some(f.asset.to_string()),
        finding: Some(f.id.clone()),
        detail,
    }
}

fn severity(s: policy::Severity) -> Severity {
    match s {
        policy::Severity::Info => Severity::Info,
        policy::Severity::Low => Severity::Low,
        policy::Severity::Medium => Severity::Medium,
        policy::Severity::High => Severity::High,
        policy::Severity::Critical => Severity::Critical,
    }
}

/// Whole days from `now` to a `YYYY-MM-DD…` date (the certificate facts' form).
fn days_left(date: &str, now: Millis) -> Option<i64> {
    let y: i64 = date.get(0..4)?.parse().ok()?;
    let m: i64 = date.get(5..7)?.parse().ok()?;
    let d: i64 = date.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days - now.div_euclid(86_400_000))
}

/// A finding the policy just opened.
pub(crate) fn finding_opened(
    tx: &mut Tx<'_>,
    tenant: &TenantId,
    f: &Finding,
    now: Millis,
) -> Result<()> {
    enqueue(
        tx,
        tenant,
        &finding_event(EventKind::FindingOpened, "fo", tenant, f, now),
        None,
        now,
    )?;
    if f.rule == policy::Rule::CertificateExpiring {
        let e = finding_event(EventKind::CertificateExpiring, "ce", tenant, f, now);
        enqueue(tx, tenant, &e, None, now)?;
    }
    Ok(())
}

/// A finding the policy moved from `was`: reopened, or a "fixed" claim decided.
pub(crate) fn finding_moved(
    tx: &mut Tx<'_>,
    tenant: &TenantId,
    was: FindingState,
    f: &Finding,
    now: Millis,
) -> Result<()> {
    if was == f.state {
        return Ok(());
    }
    if was == FindingState::Fixed
        && matches!(f.state, FindingState::ClosedVerified | FindingState::Open)
    {
        let mut e = finding_event(EventKind::VerificationResult, "vr", tenant, f, now);
        let verdict = if f.state == FindingState::Open {
            "still-exposed"
        } else {
            "fixed"
        };
        e.detail.insert("result".into(), verdict.into());
        e.title = format!("verification: {verdict}: {}", f.title);
        enqueue(tx, tenant, &e, None, now)?;
    } else if !was.is_active() && f.state == FindingState::Open {
        finding_opened(tx, tenant, f, now)?;
    }
    Ok(())
}

/// A new asset, seen first by `scan`; `seq` is its change number.
pub(crate) fn asset_new(
    tx: &mut Tx<'_>,
    tenant: &TenantId,
    asset: &AssetKey,
    scan: &str,
    seq: u64,
    rules: &[AlertRule],
    now: Millis,
) -> Result<()> {
    if !rules
        .iter()
        .any(|r| r.enabled && r.events.contains(&EventKind::AssetNew))
    {
        return Ok(());
    }
    let mut detail = BTreeMap::new();
    detail.insert("scan".to_owned(), scan.to_owned());
    let e = Event {
        id: format!("{tenant}.an-{seq}"),
        kind: EventKind::AssetNew,
        tenant: tenant.to_string(),
        at: now,
        title: format!("new {}", asset.kind().as_str()),
        severity: None,
        asset: Some(asset.to_string()),
        finding: None,
        detail,
    };
    enqueue(tx, tenant, &e, Some(rules), now).map(|_| ())
}

/// A scan job that failed.
pub(crate) fn scan_failed(
    tx: &mut Tx<'_>,
    tenant: &TenantId,
    scan: &str,
    error: &str,
    now: Millis,
) -> Result<()> {
    let mut detail = BTreeMap::new();
    detail.insert("scan".to_owned(), scan.to_owned());
    detail.insert("error".to_owned(), error.to_owned());
    let e = Event {
        id: format!("{tenant}.sf-{scan}"),
        kind: EventKind::ScanFailed,
        tenant: tenant.to_string(),
        at: now,
        title: format!("scan {scan} failed"),
        severity: None,
        asset: None,
        finding: None,
        detail,
    };
    enqueue(tx, tenant, &e, None, now).map(|_| ())
}

impl Store {
    pub fn channels(&self, tenant: &TenantId) -> Result<Vec<Channel>> {
        self.list(&sub_key(tenant, Rec::Alerting, CHANNEL, b""))
    }

    pub fn channel(&self, tenant: &TenantId, id: &str) -> Result<Channel> {
        self.get_json(&sub_key(tenant, Rec::Alerting, CHANNEL, id.as_bytes()))?
            .ok_or_else(|| StoreError::NotFound(format!("channel {id}")))
    }

    /// Creates a channel; refuses an id in use.
    pub fn create_channel(&self, tenant: &TenantId, channel: &Channel) -> Result<()> {
        validate_id("channel", &channel.id)?;
        channel.validate().map_err(invalid)?;
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let key = sub_key(tenant, Rec::Alerting, CHANNEL, channel.id.as_bytes());
        if self.data.contains_key(&key)? {
            return Err(StoreError::Conflict(format!(
                "channel {} exists already: choose another id, or delete it first",
                channel.id
            )));
        }
        let mut tx = self.tx();
        tx.put_json(key, channel)?;
        tx.commit()
    }

    /// Gives a channel new settings (its secrets again after an import, a new URL or
    /// relay); its kind stays, as do the rules and report settings that name it.
    pub fn replace_channel(&self, tenant: &TenantId, channel: &Channel) -> Result<Channel> {
        channel.validate().map_err(invalid)?;
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let key = sub_key(tenant, Rec::Alerting, CHANNEL, channel.id.as_bytes());
        let mut tx = self.tx();
        let old: Channel = tx
            .get_json(&key)?
            .ok_or_else(|| StoreError::NotFound(format!("channel {}", channel.id)))?;
        // The body is well formed; the stored channel's kind is what it conflicts with.
        if old.kind != channel.kind {
            return Err(StoreError::Conflict(format!(
                "kind: channel {} is of kind {}; a channel's kind cannot change (create a new channel instead)",
                channel.id,
                old.kind.name()
            )));
        }
        let new = Channel {
            created: old.created,
            created_by: old.created_by,
            needs_secret: false,
            ..channel.clone()
        };
        tx.put_json(key, &new)?;
        tx.commit()?;
        Ok(new)
    }

    /// Deletes a channel no rule names.
    pub fn delete_channel(&self, tenant: &TenantId, id: &str) -> Result<()> {
        let _w = self.write_lock();
        let key = sub_key(tenant, Rec::Alerting, CHANNEL, id.as_bytes());
        if !self.data.contains_key(&key)? {
            return Err(StoreError::NotFound(format!("channel {id}")));
        }
        let mut tx = self.tx();
        let users: Vec<String> = rules_in(&tx, tenant)?
            .into_iter()
            .filter(|r| r.channels.iter().any(|c| c == id))
            .map(|r| r.id)
            .collect();
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "channel {id} is used by rules {}: change or delete them first",
                users.join(", ")
            )));
        }
        if crate::reporting::schedule_in(&tx, tenant)?
            .channel
            .as_deref()
            == Some(id)
        {
            return Err(StoreError::Conflict(format!(
                "channel {id} mails the tenant's reports: name another channel in PUT …/reports/schedule first"
            )));
        }
        tx.delete(key);
        tx.commit()
    }

    pub fn alert_rules(&self, tenant: &TenantId) -> Result<Vec<AlertRule>> {
        self.list(&sub_key(tenant, Rec::Alerting, RULE, b""))
    }

    pub fn alert_rule(&self, tenant: &TenantId, id: &str) -> Result<AlertRule> {
        self.get_json(&sub_key(tenant, Rec::Alerting, RULE, id.as_bytes()))?
            .ok_or_else(|| StoreError::NotFound(format!("rule {id}")))
    }

    /// Creates or replaces a rule (`create` refuses an id in use); its channels must
    /// exist.
    pub fn put_alert_rule(&self, tenant: &TenantId, rule: &AlertRule, create: bool) -> Result<()> {
        validate_id("rule", &rule.id)?;
        rule.validate().map_err(invalid)?;
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let key = sub_key(tenant, Rec::Alerting, RULE, rule.id.as_bytes());
        let exists = self.data.contains_key(&key)?;
        if create && exists {
            return Err(StoreError::Conflict(format!(
                "rule {} exists already: choose another id, or PUT to change it",
                rule.id
            )));
        }
        if !create && !exists {
            return Err(StoreError::NotFound(format!("rule {}", rule.id)));
        }
        for ch in &rule.channels {
            let ck = sub_key(tenant, Rec::Alerting, CHANNEL, ch.as_bytes());
            if !self.data.contains_key(&ck)? {
                // The rule is well formed; the tenant's state lacks the channel.
                return Err(StoreError::Conflict(format!(
                    "channels: this tenant has no channel {ch:?}; create it first (POST …/alerts/channels)"
                )));
            }
        }
        let mut tx = self.tx();
        tx.put_json(key, rule)?;
        tx.commit()
    }

    pub fn delete_alert_rule(&self, tenant: &TenantId, id: &str) -> Result<()> {
        let _w = self.write_lock();
        let key = sub_key(tenant, Rec::Alerting, RULE, id.as_bytes());
        if !self.data.contains_key(&key)? {
            return Err(StoreError::NotFound(format!("rule {id}")));
        }
        let mut tx = self.tx();
        tx.delete(key);
        tx.commit()
    }

    /// Enqueues `event` by the tenant's rules, durably; returns the deliveries staged.
    pub fn enqueue_event(&self, tenant: &TenantId, event: &Event, now: Millis) -> Result<usize> {
        let _w = self.write_lock();
        let mut tx = self.tx();
        let n = enqueue(&mut tx, tenant, event, None, now)?;
        if n > 0 {
            tx.commit()?;
        }
        Ok(n)
    }

    /// Alerts findings that passed their deadline by `now` (once per finding and
    /// deadline), for tenants with a rule that asks for `finding.overdue`. Deadlines pass
    /// with time alone, so this runs periodically rather than on a change; the marker of
    /// each alerted finding is written in the same commit as its deliveries.
    pub fn enqueue_overdue(&self, tenant: &TenantId, now: Millis) -> Result<usize> {
        let rules = self.alert_rules(tenant)?;
        if !rules
            .iter()
            .any(|r| r.enabled && r.events.contains(&EventKind::FindingOverdue))
        {
            return Ok(0);
        }
        // Candidates without the writer's lock: a large tenant's walk holds up nobody.
        let mut candidates = Vec::new();
        for item in self.data.scan_prefix(keys::prefix(Rec::Finding, tenant)) {
            let (_, v) = item?;
            let f: Finding = serde_json::from_slice(&v)?;
            if let (true, Some(due)) = (f.overdue(now), f.due) {
                let marker = sub_key(
                    tenant,
                    Rec::Alerting,
                    OVERDUE,
                    format!("{}@{due}", f.id).as_bytes(),
                );
                if !self.data.contains_key(&marker)? {
                    candidates.push((f, due, marker));
                }
            }
        }
        if candidates.is_empty() {
            return Ok(0);
        }
        let _w = self.write_lock();
        let mut tx = self.tx();
        let mut n = 0;
        for (f, due, marker) in candidates {
            if tx.get(&marker)?.is_some() {
                continue;
            }
            let mut e = finding_event(EventKind::FindingOverdue, "od", tenant, &f, now);
            e.id = format!("{tenant}.od-{}-{due}", f.id);
            e.detail.insert("due".into(), due.to_string());
            enqueue(&mut tx, tenant, &e, Some(&rules), now)?;
            tx.put(marker, Vec::new());
            n += 1;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Deliveries of every tenant due at `now`, oldest first, at most `limit`.
    pub fn due_deliveries(&self, now: Millis, limit: usize) -> Result<Vec<(TenantId, Delivery)>> {
        let mut out = Vec::new();
        for t in self.tenants()? {
            let lo = sub_key(&t.id, Rec::Outbox, QUEUE, b"");
            let hi = queue_key(&t.id, now.saturating_add(1), "");
            for item in self.data.range(lo..hi) {
                let (_, v) = item?;
                out.push((t.id.clone(), serde_json::from_slice(&v)?));
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Deliveries waiting (due or not) of a tenant.
    pub fn pending_deliveries(&self, tenant: &TenantId) -> Result<Vec<Delivery>> {
        self.list(&sub_key(tenant, Rec::Outbox, QUEUE, b""))
    }

    /// Marks deliveries done: gone from the outbox, in one durable commit.
    pub fn delivered(&self, done: &[(TenantId, Delivery)]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let _w = self.write_lock();
        let mut tx = self.tx();
        for (t, d) in done {
            tx.delete(queue_key(t, d.due, &d.id));
        }
        tx.commit()
    }

    /// Records failed attempts: each delivery is due again at its `next` time, or, after
    /// `max_attempts`, becomes a dead letter. Returns how many died.
    pub fn failed(
        &self,
        failures: &[(TenantId, Delivery, String, Millis)],
        max_attempts: u32,
    ) -> Result<usize> {
        if failures.is_empty() {
            return Ok(0);
        }
        let _w = self.write_lock();
        let mut tx = self.tx();
        let mut dead = 0;
        for (t, d, error, next) in failures {
            let old = queue_key(t, d.due, &d.id);
            // Deleted meanwhile (a replay of the same id raced it): nothing to update.
            if tx.get(&old)?.is_none() {
                continue;
            }
            tx.delete(old);
            let mut d = d.clone();
            d.attempts += 1;
            d.last_error = Some(error.chars().take(500).collect());
            if d.attempts >= max_attempts {
                tx.put_json(dead_key(t, &d.id), &d)?;
                dead += 1;
            } else {
                d.due = *next;
                tx.put_json(queue_key(t, d.due, &d.id), &d)?;
            }
        }
        tx.commit()?;
        Ok(dead)
    }

    pub fn dead_letters(&self, tenant: &TenantId) -> Result<Vec<Delivery>> {
        self.list(&sub_key(tenant, Rec::Outbox, DEAD, b""))
    }

    /// Puts a dead letter back in the outbox, due now, with its attempts reset.
    pub fn replay_dead_letter(&self, tenant: &TenantId, id: &str, now: Millis) -> Result<Delivery> {
        let _w = self.write_lock();
        let key = dead_key(tenant, id);
        let mut tx = self.tx();
        let mut d: Delivery = tx
            .get_json(&key)?
            .ok_or_else(|| StoreError::NotFound(format!("dead letter {id}")))?;
        tx.delete(key);
        d.attempts = 0;
        d.due = now;
        tx.put_json(queue_key(tenant, now, &d.id), &d)?;
        tx.commit()?;
        Ok(d)
    }

    fn list<T: serde::de::DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for item in self.data.scan_prefix(prefix) {
            let (_, v) = item?;
            out.push(serde_json::from_slice(&v)?);
        }
        Ok(out)
    }
}
