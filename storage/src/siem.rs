//! SIEM export in the store: the log of finding steps, and each tenant's SIEM
//! destinations with their cursors.
//!
//! The export is two feeds of one tenant read side by side: the change feed (asset
//! appeared, changed, gone; numbered by `Change::seq`) and the log of finding steps
//! (opened, moved, closed), which this module writes in the same transaction as the
//! finding itself, so a step cannot be lost by a crash nor logged without its finding.
//! A cursor is a position in both: `<next change>.<next step>`. Event ids derive from
//! the positions (`<tenant>.c<seq>`, `<tenant>.f<seq>`), so a resend from a stored cursor
//! repeats the very same ids.
//!
//! Keys, under the tenant's `s` record: `l<seq>` a logged step, `n` the next step
//! number, `d<id>` a destination, `p<id>` its position (apart, so the exporter's cursor
//! writes never rewrite what the user configured).

use crate::error::{Result, StoreError};
use crate::ingest::read_counter;
use crate::keys::{self, Rec, TenantId};
use crate::model::{Change, ChangeKind, Millis};
use crate::outbox::validate_id;
use crate::policy::Finding;
use crate::store::{Store, Tx};
use aperture_notify::ocsf::{AssetChange, FindingStep, SiemBody, SiemEvent};
use aperture_notify::Severity;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

const LOG: u8 = b'l';
const COUNT: u8 = b'n';
const DEST: u8 = b'd';
const POS: u8 = b'p';

/// Longest text of a changed fact carried in an event (banners can be long).
pub const MAX_VALUE_CHARS: usize = 1024;
/// Destinations a tenant may have.
pub const MAX_DESTINATIONS: usize = 16;

fn sub_key(tenant: &TenantId, kind: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = keys::key(Rec::Siem, tenant, &[kind]);
    k.extend_from_slice(rest);
    k
}

fn log_key(tenant: &TenantId, seq: u64) -> Vec<u8> {
    sub_key(tenant, LOG, &seq.to_be_bytes())
}

/// A position in a tenant's export: the next change and the next finding step to send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    pub changes: u64,
    pub steps: u64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.changes, self.steps)
    }
}

impl FromStr for Cursor {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Cursor> {
        let bad = || {
            StoreError::Invalid(format!(
                "cursor {s:?}: give the next_cursor of an earlier answer (two numbers, \
                 as in 120.7), or leave it out to start at the beginning"
            ))
        };
        let (c, f) = s.split_once('.').ok_or_else(bad)?;
        let num = |t: &str| -> Result<u64> {
            if t.is_empty() || t.len() > 19 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse().map_err(|_| bad())
        };
        Ok(Cursor {
            changes: num(c)?,
            steps: num(f)?,
        })
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Cursor, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How events are written on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SiemFormat {
    /// RFC 5424 messages whose MSG is the OCSF JSON, octet-counted (RFC 6587 / 5425).
    Syslog,
    /// One OCSF JSON object per line (for collectors with a JSON-lines TCP input).
    Ocsf,
}

/// A SIEM receiver of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiemDestination {
    pub id: String,
    pub name: String,
    /// A host name or an IP address.
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// The CA certificate(s), PEM, that the receiver's certificate must chain to; none:
    /// the system's roots. Only with TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    pub format: SiemFormat,
    /// The syslog facility (0-23).
    pub facility: u8,
    /// Send finding events.
    pub findings: bool,
    /// Send change events.
    pub changes: bool,
    pub created: Millis,
    pub created_by: String,
}

/// Where a destination's export stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiemPosition {
    /// Everything before it was written to the receiver and flushed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "120.7"))]
    pub cursor: Cursor,
    /// Events written so far.
    pub sent: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent: Option<Millis>,
    /// The last failure (cleared by the next success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<Millis>,
    /// Failures in a row.
    #[serde(default)]
    pub failures: u32,
}

/// A destination and its position.
pub type Configured = (SiemDestination, SiemPosition);

/// A logged finding step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedStep {
    pub seq: u64,
    pub at: Millis,
    pub step: FindingStep,
}

fn severity(s: crate::policy::Severity) -> Severity {
    use crate::policy::Severity as P;
    match s {
        P::Info => Severity::Info,
        P::Low => Severity::Low,
        P::Medium => Severity::Medium,
        P::High => Severity::High,
        P::Critical => Severity::Critical,
    }
}

/// Step `i` of `f` as the log keeps it.
fn logged(seq: u64, f: &Finding, i: usize) -> Option<LoggedStep> {
    let t = f.transitions.get(i)?;
    Some(LoggedStep {
        seq,
        at: t.at,
        step: FindingStep {
            finding: f.id.clone(),
            rule: f.rule.name(),
            asset: f.asset.to_string(),
            title: f.title.clone(),
            severity: severity(f.severity),
            state: t.to.name(),
            from: t.from.map(|s| s.name()),
            actor: t.actor.name().to_owned(),
            comment: clip(&t.comment),
            opened: f.opened,
        },
    })
}

/// Logs the steps of `f` past its first `before` (what the transaction that changed it
/// added), in the same transaction.
pub(crate) fn log_steps(
    tx: &mut Tx<'_>,
    tenant: &TenantId,
    f: &Finding,
    before: usize,
) -> Result<()> {
    if f.transitions.len() <= before {
        return Ok(());
    }
    let count_key = sub_key(tenant, COUNT, b"");
    let mut seq = read_counter(tx, &count_key)?;
    for i in before..f.transitions.len() {
        if let Some(step) = logged(seq, f, i) {
            tx.put_json(log_key(tenant, seq), &step)?;
            seq += 1;
        }
    }
    tx.put(count_key, seq.to_be_bytes().to_vec());
    Ok(())
}

/// The marker, in the store's meta tree, of a store whose findings' earlier steps are in
/// the log.
const BACKFILLED: &[u8] = b"siem-steps-logged";
/// Steps written per commit while backfilling.
const BACKFILL_CHUNK: usize = 10_000;

/// Once per store, at open (nothing else writes yet): logs the steps of findings made
/// before the log existed, oldest first, so a destination that starts at the beginning
/// gets every finding of an upgraded store too. A tenant that has a log is left alone.
/// A crash midway repeats it from the start: the order, hence every number, is the same.
pub(crate) fn backfill(store: &Store, meta: &sled::Tree) -> Result<()> {
    if meta.contains_key(BACKFILLED)? {
        return Ok(());
    }
    for tenant in store.tenants()? {
        let t = &tenant.id;
        let count_key = sub_key(t, COUNT, b"");
        if store.data.contains_key(&count_key)? {
            continue;
        }
        // Only (time, finding, step): a large tenant's order fits in memory; the steps
        // themselves are read again chunk by chunk.
        let mut order: Vec<(Millis, String, usize)> = Vec::new();
        for item in store.data.scan_prefix(keys::prefix(Rec::Finding, t)) {
            let f: Finding = serde_json::from_slice(&item?.1)?;
            order.extend(
                f.transitions
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.at, f.id.clone(), i)),
            );
        }
        order.sort();
        let mut seq = 0u64;
        for chunk in order.chunks(BACKFILL_CHUNK) {
            let mut tx = store.tx();
            for (_, id, i) in chunk {
                let f: Option<Finding> =
                    store.get_json(&keys::key(Rec::Finding, t, id.as_bytes()))?;
                if let Some(step) = f.and_then(|f| logged(seq, &f, *i)) {
                    tx.put_json(log_key(t, seq), &step)?;
                    seq += 1;
                }
            }
            tx.commit()?;
        }
        let mut tx = store.tx();
        tx.put(count_key, seq.to_be_bytes().to_vec());
        tx.commit()?;
    }
    meta.insert(BACKFILLED, b"1".as_slice())?;
    store.durable()
}

/// An imported tenant whose export has no logged steps (written before the log existed):
/// its findings' steps, oldest first, staged with the import.
pub(crate) fn import_backfill(
    tx: &mut Tx<'_>,
    tenant: &TenantId,
    findings: &[Finding],
) -> Result<()> {
    let mut order: Vec<(Millis, &str, usize, &Finding)> = Vec::new();
    for f in findings {
        order.extend(
            f.transitions
                .iter()
                .enumerate()
                .map(|(i, s)| (s.at, f.id.as_str(), i, f)),
        );
    }
    order.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let mut seq = 0u64;
    for (_, _, i, f) in order {
        if let Some(step) = logged(seq, f, i) {
            tx.put_json(log_key(tenant, seq), &step)?;
            seq += 1;
        }
    }
    tx.put(sub_key(tenant, COUNT, b""), seq.to_be_bytes().to_vec());
    Ok(())
}

fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_VALUE_CHARS).collect();
    if text.chars().count() > MAX_VALUE_CHARS {
        out.push('…');
    }
    out
}

fn change_event(tenant: &TenantId, c: Change) -> SiemEvent {
    let (change, field, old, new) = match c.kind {
        ChangeKind::Appeared => ("appeared", None, None, None),
        ChangeKind::Disappeared => ("gone", None, None, None),
        ChangeKind::Changed { field, old, new } => (
            "changed",
            Some(field),
            old.map(|v| clip(&v)),
            new.map(|v| clip(&v)),
        ),
    };
    SiemEvent {
        id: format!("{tenant}.c{}", c.seq),
        tenant: tenant.to_string(),
        at: c.at,
        body: SiemBody::Change(AssetChange {
            seq: c.seq,
            asset_kind: c.asset.kind().as_str().to_owned(),
            ip: c.asset.address().map(|ip| ip.to_string()),
            asset: c.asset.to_string(),
            change: change.to_owned(),
            field,
            old,
            new,
            scan: c.scan,
        }),
    }
}

fn step_event(tenant: &TenantId, s: LoggedStep) -> SiemEvent {
    SiemEvent {
        id: format!("{tenant}.f{}", s.seq),
        tenant: tenant.to_string(),
        at: s.at,
        body: SiemBody::Finding(s.step),
    }
}

/// Which feeds an export reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feeds {
    pub findings: bool,
    pub changes: bool,
}

impl Store {
    /// The end of the tenant's export now: the cursor after everything.
    pub fn siem_end(&self, tenant: &TenantId) -> Result<Cursor> {
        Ok(Cursor {
            changes: self.change_count(tenant)?,
            steps: self.counter_at(&sub_key(tenant, COUNT, b""))?,
        })
    }

    fn counter_at(&self, key: &[u8]) -> Result<u64> {
        Ok(match self.data.get(key)? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("siem counter".into()))?,
            ),
            None => 0,
        })
    }

    /// Up to `limit` events after `cursor`, oldest first (the two feeds merged by time),
    /// and the cursor after them. A feed not chosen is skipped: its part of the cursor
    /// moves to its end.
    pub fn siem_events(
        &self,
        tenant: &TenantId,
        cursor: Cursor,
        limit: usize,
        feeds: Feeds,
    ) -> Result<(Vec<SiemEvent>, Cursor)> {
        let limit = limit.clamp(1, crate::query::MAX_PAGE);
        let end = self.siem_end(tenant)?;
        let mut next = Cursor {
            changes: cursor.changes.min(end.changes),
            steps: cursor.steps.min(end.steps),
        };
        let changes: Vec<Change> = if feeds.changes && next.changes < end.changes {
            self.changes_since(tenant, next.changes.checked_sub(1), limit)?
                .items
        } else {
            Vec::new()
        };
        if !feeds.changes {
            next.changes = end.changes;
        }
        let mut steps: Vec<LoggedStep> = Vec::new();
        if feeds.findings {
            let lo = log_key(tenant, next.steps);
            let hi = keys::prefix_end(&sub_key(tenant, LOG, b""));
            for item in self.data.range(lo..hi).take(limit) {
                let (_, v) = item?;
                steps.push(serde_json::from_slice(&v)?);
            }
        } else {
            next.steps = end.steps;
        }
        let mut out = Vec::with_capacity(limit);
        let (mut ci, mut si) = (changes.into_iter().peekable(), steps.into_iter().peekable());
        while out.len() < limit {
            let take_step = match (ci.peek(), si.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(c), Some(s)) => s.at <= c.at,
            };
            if take_step {
                let Some(s) = si.next() else { break };
                next.steps = s.seq + 1;
                out.push(step_event(tenant, s));
            } else {
                let Some(c) = ci.next() else { break };
                next.changes = c.seq + 1;
                out.push(change_event(tenant, c));
            }
        }
        Ok((out, next))
    }

    /// Events after `cursor` not yet exported.
    pub fn siem_backlog(&self, tenant: &TenantId, cursor: Cursor, feeds: Feeds) -> Result<u64> {
        let end = self.siem_end(tenant)?;
        let mut n = 0;
        if feeds.changes {
            n += end.changes.saturating_sub(cursor.changes);
        }
        if feeds.findings {
            n += end.steps.saturating_sub(cursor.steps);
        }
        Ok(n)
    }

    /// Creates a destination; its export starts at the beginning of the tenant's history
    /// (`from_now` false) or at its end.
    pub fn create_siem_destination(
        &self,
        tenant: &TenantId,
        d: &SiemDestination,
        from_now: bool,
    ) -> Result<SiemPosition> {
        validate_destination(d)?;
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let key = sub_key(tenant, DEST, d.id.as_bytes());
        if self.data.contains_key(&key)? {
            return Err(StoreError::Conflict(format!(
                "SIEM destination {} exists already: choose another id, or delete it first",
                d.id
            )));
        }
        if self.siem_destinations(tenant)?.len() >= MAX_DESTINATIONS {
            return Err(StoreError::Conflict(format!(
                "the tenant has {MAX_DESTINATIONS} SIEM destinations, the most it may have: delete one first"
            )));
        }
        let position = SiemPosition {
            cursor: if from_now {
                self.siem_end(tenant)?
            } else {
                Cursor::default()
            },
            ..SiemPosition::default()
        };
        let mut tx = self.tx();
        tx.put_json(key, d)?;
        tx.put_json(sub_key(tenant, POS, d.id.as_bytes()), &position)?;
        tx.commit()?;
        Ok(position)
    }

    /// The tenant's destinations with their positions.
    pub fn siem_destinations(&self, tenant: &TenantId) -> Result<Vec<Configured>> {
        let mut out = Vec::new();
        for item in self.data.scan_prefix(sub_key(tenant, DEST, b"")) {
            let (_, v) = item?;
            let d: SiemDestination = serde_json::from_slice(&v)?;
            let p = self
                .get_json(&sub_key(tenant, POS, d.id.as_bytes()))?
                .unwrap_or_default();
            out.push((d, p));
        }
        Ok(out)
    }

    pub fn siem_destination(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<(SiemDestination, SiemPosition)> {
        let d = self
            .get_json(&sub_key(tenant, DEST, id.as_bytes()))?
            .ok_or_else(|| StoreError::NotFound(format!("SIEM destination {id}")))?;
        let p = self
            .get_json(&sub_key(tenant, POS, id.as_bytes()))?
            .unwrap_or_default();
        Ok((d, p))
    }

    pub fn delete_siem_destination(&self, tenant: &TenantId, id: &str) -> Result<()> {
        let _w = self.write_lock();
        let key = sub_key(tenant, DEST, id.as_bytes());
        if !self.data.contains_key(&key)? {
            return Err(StoreError::NotFound(format!("SIEM destination {id}")));
        }
        let mut tx = self.tx();
        tx.delete(key);
        tx.delete(sub_key(tenant, POS, id.as_bytes()));
        tx.commit()
    }

    /// Records that the events from `from` to `to` were written and flushed. Refused
    /// (false) when the destination is gone or its cursor is no longer `from` (deleted
    /// and created again meanwhile): nothing is recorded then.
    pub fn siem_sent(
        &self,
        tenant: &TenantId,
        id: &str,
        from: Cursor,
        to: Cursor,
        events: u64,
        now: Millis,
    ) -> Result<bool> {
        let _w = self.write_lock();
        let pos_key = sub_key(tenant, POS, id.as_bytes());
        let Some(mut p) = self.get_json::<SiemPosition>(&pos_key)? else {
            return Ok(false);
        };
        if p.cursor != from {
            return Ok(false);
        }
        p.cursor = to;
        p.sent += events;
        p.last_sent = Some(now);
        p.last_error = None;
        p.failures = 0;
        let mut tx = self.tx();
        tx.put_json(pos_key, &p)?;
        tx.commit()?;
        Ok(true)
    }

    /// Records a failure; returns the failures in a row (0: the destination is gone).
    pub fn siem_failed(
        &self,
        tenant: &TenantId,
        id: &str,
        error: &str,
        now: Millis,
    ) -> Result<u32> {
        let _w = self.write_lock();
        let pos_key = sub_key(tenant, POS, id.as_bytes());
        let Some(mut p) = self.get_json::<SiemPosition>(&pos_key)? else {
            return Ok(0);
        };
        p.last_error = Some(clip(error));
        p.last_error_at = Some(now);
        p.failures = p.failures.saturating_add(1);
        let mut tx = self.tx();
        tx.put_json(pos_key, &p)?;
        tx.commit()?;
        Ok(p.failures)
    }

    /// Every logged step and destination of a tenant, for its export.
    pub(crate) fn siem_records(
        &self,
        tenant: &TenantId,
    ) -> Result<(Vec<LoggedStep>, Vec<Configured>)> {
        let mut steps = Vec::new();
        for item in self.data.scan_prefix(sub_key(tenant, LOG, b"")) {
            steps.push(serde_json::from_slice(&item?.1)?);
        }
        Ok((steps, self.siem_destinations(tenant)?))
    }
}

/// Stages an imported step.
pub(crate) fn import_step(tx: &mut Tx<'_>, tenant: &TenantId, s: &LoggedStep) -> Result<()> {
    tx.put_json(log_key(tenant, s.seq), s)?;
    let count_key = sub_key(tenant, COUNT, b"");
    if read_counter(tx, &count_key)? <= s.seq {
        tx.put(count_key, (s.seq + 1).to_be_bytes().to_vec());
    }
    Ok(())
}

/// Stages an imported destination.
pub(crate) fn import_destination(
    tx: &mut Tx<'_>,
    tenant: &TenantId,
    d: &SiemDestination,
    p: &SiemPosition,
) -> Result<()> {
    validate_destination(d)?;
    tx.put_json(sub_key(tenant, DEST, d.id.as_bytes()), d)?;
    tx.put_json(sub_key(tenant, POS, d.id.as_bytes()), p)
}

/// A destination's fields as the store accepts them; the message says what to fix.
pub fn validate_destination(d: &SiemDestination) -> Result<()> {
    validate_id("SIEM destination", &d.id)?;
    let bad = |m: String| Err(StoreError::Invalid(m));
    if d.name.trim().is_empty() || d.name.chars().count() > 200 {
        return bad("name: give the destination a name (1-200 characters)".into());
    }
    let host_ok = d.host.parse::<std::net::IpAddr>().is_ok()
        || (d.host.len() <= 253
            && d.host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    if !host_ok {
        return bad(format!(
            "host {:?}: give a host name (letters, digits, '-' and dots) or an IP address",
            d.host
        ));
    }
    if d.port == 0 {
        return bad("port: give the receiver's TCP port (1-65535)".into());
    }
    if d.facility > 23 {
        return bad(format!(
            "facility {}: syslog facilities are 0-23",
            d.facility
        ));
    }
    if d.ca_pem.is_some() && !d.tls {
        return bad(
            "ca_pem: a CA is only used with TLS; set tls to true or leave ca_pem out".into(),
        );
    }
    if !d.findings && !d.changes {
        return bad("findings, changes: choose at least one of them to send".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::AssetKey;
    use crate::policy::{self, Expected, PolicySettings, Rule};

    /// A store of before the log: findings with steps, no log, no marker. Opening it
    /// logs their steps, oldest first, once.
    #[test]
    fn opening_a_store_of_before_the_log_logs_its_findings_steps_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = TenantId::new("acme").expect("id");
        let mut ids = Vec::new();
        {
            let store = Store::open(dir.path()).expect("opens");
            store.create_tenant(&t, "Acme", 1_000).expect("tenant");
            let mut tx = store.tx();
            for (n, at) in [(2u16, 3_000), (1, 2_000)] {
                let asset = AssetKey::tcp("198.18.0.7".parse().expect("ip"), n);
                let e = Expected {
                    rule: Rule::Unsanctioned,
                    detail: String::new(),
                    severity: policy::Severity::High,
                    title: format!("port {n}"),
                    evidence: Default::default(),
                };
                let f = policy::open(&asset, &e, &PolicySettings::default(), at);
                ids.push(f.id.clone());
                tx.put_json(keys::key(Rec::Finding, &t, f.id.as_bytes()), &f)
                    .expect("staged");
            }
            tx.commit().expect("committed");
            // As an older aperture left it.
            let meta = store.db.open_tree("meta").expect("meta");
            meta.remove(BACKFILLED).expect("unmarked");
            store
                .data
                .remove(sub_key(&t, COUNT, b""))
                .expect("no count");
            for item in store.data.scan_prefix(sub_key(&t, LOG, b"")) {
                store.data.remove(item.expect("key").0).expect("no log");
            }
            assert_eq!(store.siem_end(&t).expect("end").steps, 0);
        }
        for _ in 0..2 {
            let store = Store::open(dir.path()).expect("reopens");
            let (events, end) = store
                .siem_events(
                    &t,
                    Cursor::default(),
                    100,
                    Feeds {
                        findings: true,
                        changes: false,
                    },
                )
                .expect("events");
            assert_eq!(end.steps, 2, "each finding's one step, once");
            let order: Vec<&str> = events
                .iter()
                .filter_map(|e| match &e.body {
                    SiemBody::Finding(f) => Some(f.finding.as_str()),
                    SiemBody::Change(_) => None,
                })
                .collect();
            // Oldest first: the finding opened at 2000 (the second made).
            assert_eq!(order, vec![ids[1].as_str(), ids[0].as_str()]);
        }
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_say_what_to_give() {
        let c: Cursor = "120.7".parse().expect("cursor");
        assert_eq!(
            c,
            Cursor {
                changes: 120,
                steps: 7
            }
        );
        assert_eq!(c.to_string(), "120.7");
        for bad in [
            "",
            "1",
            "1.",
            ".1",
            "a.b",
            "1.2.3",
            "-1.2",
            "99999999999999999999.1",
        ] {
            let e = bad.parse::<Cursor>().expect_err(bad).to_string();
            assert!(e.contains("next_cursor"), "{e}");
        }
    }
}
