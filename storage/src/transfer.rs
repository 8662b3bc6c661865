//! A tenant's data as JSON Lines: for backups, for moving a tenant between stores, and
//! for crossing a schema change. Indexes, counters and change blocks are not exported;
//! import rebuilds them from the records, so an export is also a repair.

use crate::error::{Result, StoreError};
use crate::findings::VerificationRequest;
use crate::ingest::{change_block_key, counter_key, index_entries, link_prefix, receipt_key};
use crate::keys::{self, AssetKey, AssetKind, Rec, TenantId};
use crate::model::{Asset, AssetStatus, Change, DayCount, Receipt, Scan, Tenant};
use crate::outbox::{sub_key, CHANNEL, RULE};
use crate::policy::{Finding, PolicySettings, Sanction};
use crate::store::{Store, PREVIOUS_SCHEMA, STORE_SCHEMA};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};

/// The longest line an import reads (an asset's facts and history stay far below it).
pub const MAX_LINE: usize = 16 << 20;

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ExportLine {
    /// First line: what wrote the file.
    Export {
        schema: String,
        tenant: TenantId,
    },
    Tenant(Tenant),
    Settings(PolicySettings),
    Sanction(Sanction),
    Scan(Scan),
    Receipt(Receipt),
    Asset(Asset),
    Link {
        from: AssetKey,
        to: AssetKey,
    },
    Change(Change),
    Day(DayCount),
    Finding(Finding),
    Verification(VerificationRequest),
    Scope(crate::access::Scope),
    Job(crate::access::ScanJob),
    Schedule(crate::access::Schedule),
    /// A finding step of the SIEM export's log.
    #[serde(rename = "siem_step")]
    SiemStep(crate::siem::LoggedStep),
    /// A SIEM destination and how far its export went.
    #[serde(rename = "siem_destination")]
    SiemDestination {
        destination: crate::siem::SiemDestination,
        position: crate::siem::SiemPosition,
    },
    /// The client's attributes of one asset (the ledger).
    Ledger(crate::ledger::LedgerEntry),
    /// An alert channel without its secrets (URL, signing secret, e-mail password):
    /// imported with `needs_secret`, it sends nothing until they are given again.
    Channel(aperture_notify::Channel),
    #[serde(rename = "alert_rule")]
    AlertRule(aperture_notify::AlertRule),
    /// Which reports the tenant gets, and who receives them by mail.
    #[serde(rename = "report_settings")]
    ReportSettings(crate::reporting::ReportSchedule),
    /// Scan windows, blackouts and the rate cap.
    Windows(crate::windows::TenantWindows),
    /// Numbering state that records alone do not give.
    Counters {
        policy: u64,
        sanctions: u64,
        #[serde(default)]
        scans: u64,
        #[serde(default)]
        schedules: u64,
    },
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    pub tenant: Option<TenantId>,
    pub lines: u64,
    pub assets: u64,
    pub changes: u64,
    pub findings: u64,
}

impl Store {
    /// Writes every record of a tenant; returns the number of lines. The export is a
    /// consistent copy of one moment: it holds the store's writer while it reads, so
    /// batches wait (and the service keeps answering reads) — an online backup.
    pub fn export_tenant(&self, tenant: &TenantId, out: &mut dyn Write) -> Result<u64> {
        let _w = self.write_lock();
        let t = self.require_tenant(tenant)?;
        let mut lines = 0u64;
        let mut emit = |line: &ExportLine| -> Result<()> {
            serde_json::to_writer(&mut *out, line)?;
            out.write_all(b"\n")
                .map_err(|e| StoreError::Invalid(format!("writing the export: {e}")))?;
            lines += 1;
            Ok(())
        };
        emit(&ExportLine::Export {
            schema: STORE_SCHEMA.to_owned(),
            tenant: tenant.clone(),
        })?;
        emit(&ExportLine::Tenant(t))?;
        if let Some(s) = self.get_json::<PolicySettings>(&keys::key(Rec::Settings, tenant, b""))? {
            emit(&ExportLine::Settings(s))?;
        }
        let records = |rec: Rec| self.data.scan_prefix(keys::prefix(rec, tenant));
        for item in records(Rec::Sanction) {
            emit(&ExportLine::Sanction(serde_json::from_slice(&item?.1)?))?;
        }
        for item in records(Rec::Scan) {
            emit(&ExportLine::Scan(serde_json::from_slice(&item?.1)?))?;
        }
        for item in records(Rec::Receipt) {
            emit(&ExportLine::Receipt(serde_json::from_slice(&item?.1)?))?;
        }
        for kind in crate::query::KIND_ORDER {
            let mut failed = None;
            self.walk_kind(
                tenant,
                kind,
                None,
                None,
                &mut |a| match emit(&ExportLine::Asset(a)) {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                },
            )?;
            if let Some(e) = failed {
                return Err(e);
            }
        }
        // Every link, also those whose ends are not assets (yet): a certificate's names.
        let link_prefix_len = keys::prefix(Rec::Link, tenant).len();
        for item in records(Rec::Link) {
            let (k, _) = item?;
            let rest = k.get(link_prefix_len..).unwrap_or_default();
            let (&len, rest) = rest
                .split_first()
                .ok_or_else(|| StoreError::Corrupt("link key".into()))?;
            let (from, to) = rest
                .split_at_checked(usize::from(len))
                .ok_or_else(|| StoreError::Corrupt("link key".into()))?;
            emit(&ExportLine::Link {
                from: AssetKey::from_bytes(from)?,
                to: AssetKey::from_bytes(to)?,
            })?;
        }
        for item in records(Rec::Changes) {
            let block: Vec<Change> = serde_json::from_slice(&item?.1)?;
            for c in block {
                emit(&ExportLine::Change(c))?;
            }
        }
        for item in records(Rec::Day) {
            emit(&ExportLine::Day(serde_json::from_slice(&item?.1)?))?;
        }
        for item in records(Rec::Finding) {
            emit(&ExportLine::Finding(serde_json::from_slice(&item?.1)?))?;
        }
        for item in records(Rec::Verification) {
            emit(&ExportLine::Verification(serde_json::from_slice(&item?.1)?))?;
        }
        if let Some(scope) = self.get_json(&keys::key(Rec::Scope, tenant, b""))? {
            emit(&ExportLine::Scope(scope))?;
        }
        for item in records(Rec::Job) {
            emit(&ExportLine::Job(serde_json::from_slice(&item?.1)?))?;
        }
        for item in records(Rec::Schedule) {
            emit(&ExportLine::Schedule(serde_json::from_slice(&item?.1)?))?;
        }
        let (steps, destinations) = self.siem_records(tenant)?;
        for s in steps {
            emit(&ExportLine::SiemStep(s))?;
        }
        for (destination, position) in destinations {
            emit(&ExportLine::SiemDestination {
                destination,
                position,
            })?;
        }
        for item in records(Rec::Ledger) {
            emit(&ExportLine::Ledger(serde_json::from_slice(&item?.1)?))?;
        }
        for c in self.channels(tenant)? {
            emit(&ExportLine::Channel(c.without_secrets()))?;
        }
        for r in self.alert_rules(tenant)? {
            emit(&ExportLine::AlertRule(r))?;
        }
        if let Some(s) = self.get_json(&keys::key(Rec::Settings, tenant, b"reports"))? {
            emit(&ExportLine::ReportSettings(s))?;
        }
        if let Some(w) = self.get_json(&crate::windows::windows_key(tenant))? {
            emit(&ExportLine::Windows(w))?;
        }
        let counter = |name: &str| self.counter(tenant, name);
        emit(&ExportLine::Counters {
            policy: counter("policy")?,
            sanctions: counter("sanctions")?,
            scans: counter("scan")?,
            schedules: counter("schedule")?,
        })?;
        Ok(lines)
    }

    /// Reads an export into this store, all or nothing. The tenant must not exist here;
    /// `rename` imports it under another id (e.g. to compare with the original).
    pub fn import_tenant(
        &self,
        input: &mut dyn BufRead,
        rename: Option<&TenantId>,
    ) -> Result<Imported> {
        let _w = self.write_lock();
        let mut tx = self.tx();
        let mut summary = Imported::default();
        let mut tenant: Option<TenantId> = None;
        let mut changes: Vec<Change> = Vec::new();
        // An export written before the SIEM log existed has findings and no logged
        // steps: the steps are rebuilt from the findings.
        let (mut findings, mut logged_steps) = (Vec::new(), false);
        let (mut hosts, mut services) = (0u64, 0u64);
        let mut line_no = 0u64;
        let mut postings = crate::postings::Delta::default();
        let mut raw = Vec::new();
        let mut buf = String::new();
        loop {
            raw.clear();
            // A line is read through a cap, so a file without newlines cannot take all
            // memory before it is refused.
            let n = (&mut *input)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut raw)
                .map_err(|e| StoreError::Invalid(format!("reading the import: {e}")))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if raw.len() > MAX_LINE {
                return Err(StoreError::Invalid(format!(
                    "import line {line_no} is longer than {MAX_LINE} bytes: not an export; nothing was imported"
                )));
            }
            buf.clear();
            buf.push_str(std::str::from_utf8(&raw).map_err(|_| {
                StoreError::Invalid(format!(
                    "import line {line_no} is not UTF-8: not an export; nothing was imported"
                ))
            })?);
            if buf.trim().is_empty() {
                continue;
            }
            let line: ExportLine = serde_json::from_str(&buf).map_err(|e| {
                StoreError::Invalid(format!("import line {line_no}: {e}; nothing was imported"))
            })?;
            summary.lines += 1;
            let t = match (&tenant, &line) {
                (
                    None,
                    ExportLine::Export {
                        schema,
                        tenant: from,
                    },
                ) => {
                    // The export format does not follow the record layout: exports of
                    // the previous schema read the same.
                    if schema != STORE_SCHEMA && schema != PREVIOUS_SCHEMA {
                        return Err(StoreError::Invalid(format!(
                            "the export has schema {schema}, this store reads {STORE_SCHEMA} and {PREVIOUS_SCHEMA}; nothing was imported"
                        )));
                    }
                    let id = rename.cloned().unwrap_or_else(|| from.clone());
                    if self.data.contains_key(keys::key(Rec::Tenant, &id, b""))? {
                        return Err(StoreError::Conflict(format!(
                            "tenant {id} exists in this store: import under another id, or into an empty store"
                        )));
                    }
                    tenant = Some(id);
                    continue;
                }
                (None, _) => return Err(StoreError::Invalid(
                    "an export starts with its {\"type\":\"export\"} line; nothing was imported"
                        .into(),
                )),
                (Some(t), _) => t.clone(),
            };
            match line {
                ExportLine::Export { .. } => {
                    return Err(StoreError::Invalid(format!(
                        "import line {line_no}: a second export header; nothing was imported"
                    )))
                }
                ExportLine::Tenant(mut x) => {
                    x.id = t.clone();
                    tx.put_json(keys::key(Rec::Tenant, &t, b""), &x)?;
                }
                ExportLine::Settings(s) => tx.put_json(keys::key(Rec::Settings, &t, b""), &s)?,
                ExportLine::Sanction(s) => {
                    tx.put_json(keys::key(Rec::Sanction, &t, s.id.as_bytes()), &s)?
                }
                ExportLine::Scan(s) => {
                    tx.put_json(keys::key(Rec::Scan, &t, s.id.as_bytes()), &s)?
                }
                ExportLine::Receipt(r) => tx.put_json(receipt_key(&t, &r.scan, r.shard), &r)?,
                ExportLine::Asset(a) => {
                    summary.assets += 1;
                    if a.status != AssetStatus::Absent {
                        match a.kind {
                            AssetKind::Host => hosts += 1,
                            AssetKind::Service => services += 1,
                            _ => {}
                        }
                    }
                    for term in index_entries(&a) {
                        postings
                            .adds
                            .entry(term)
                            .or_default()
                            .push(a.key.to_bytes());
                    }
                    tx.put_asset(&t, &a)?;
                }
                ExportLine::Link { from, to } => {
                    let mut k = link_prefix(&t, &from);
                    k.extend_from_slice(&to.to_bytes());
                    tx.put(k, Vec::new());
                }
                ExportLine::Change(c) => changes.push(c),
                ExportLine::Day(d) => tx.put_json(keys::key(Rec::Day, &t, d.day.as_bytes()), &d)?,
                ExportLine::Finding(f) => {
                    summary.findings += 1;
                    let a = f.asset.to_bytes();
                    let mut rest = vec![a.len() as u8];
                    rest.extend_from_slice(&a);
                    rest.extend_from_slice(f.id.as_bytes());
                    tx.put(keys::key(Rec::FindingByAsset, &t, &rest), Vec::new());
                    if f.state == crate::policy::FindingState::Fixed {
                        tx.put(keys::key(Rec::Awaiting, &t, f.id.as_bytes()), Vec::new());
                    }
                    tx.put_json(keys::key(Rec::Finding, &t, f.id.as_bytes()), &f)?;
                    findings.push(f);
                }
                ExportLine::Verification(v) => {
                    tx.put_json(keys::key(Rec::Verification, &t, v.id.as_bytes()), &v)?
                }
                ExportLine::Scope(s) => tx.put_json(keys::key(Rec::Scope, &t, b""), &s)?,
                ExportLine::Job(mut j) => {
                    j.tenant = t.clone();
                    tx.put_json(keys::key(Rec::Job, &t, j.id.as_bytes()), &j)?
                }
                ExportLine::Schedule(s) => {
                    tx.put_json(keys::key(Rec::Schedule, &t, s.id.as_bytes()), &s)?
                }
                ExportLine::SiemStep(s) => {
                    logged_steps = true;
                    crate::siem::import_step(&mut tx, &t, &s)?
                }
                ExportLine::SiemDestination {
                    destination,
                    position,
                } => crate::siem::import_destination(&mut tx, &t, &destination, &position)?,
                ExportLine::Ledger(e) => tx.put_json(crate::ledger::entry_key(&t, &e.asset), &e)?,
                ExportLine::Channel(c) => {
                    crate::outbox::validate_id("channel", &c.id)?;
                    let k = sub_key(&t, Rec::Alerting, CHANNEL, c.id.as_bytes());
                    tx.put_json(k, &c.without_secrets())?
                }
                ExportLine::AlertRule(r) => {
                    crate::outbox::validate_id("rule", &r.id)?;
                    tx.put_json(sub_key(&t, Rec::Alerting, RULE, r.id.as_bytes()), &r)?
                }
                ExportLine::ReportSettings(s) => {
                    tx.put_json(keys::key(Rec::Settings, &t, b"reports"), &s)?
                }
                ExportLine::Windows(w) => tx.put_json(crate::windows::windows_key(&t), &w)?,
                ExportLine::Counters {
                    policy,
                    sanctions,
                    scans,
                    schedules,
                } => {
                    for (name, n) in [
                        ("policy", policy),
                        ("sanctions", sanctions),
                        ("scan", scans),
                        ("schedule", schedules),
                    ] {
                        tx.put(counter_key(&t, name), n.to_be_bytes().to_vec());
                    }
                }
            }
        }
        let Some(t) = tenant else {
            return Err(StoreError::Invalid(
                "the import is empty: give a file written by export".into(),
            ));
        };
        changes.sort_by_key(|c| c.seq);
        for (i, c) in changes.iter().enumerate() {
            if c.seq != i as u64 {
                return Err(StoreError::Invalid(format!(
                    "the export's change events are not numbered 0..{}: change {} is missing; nothing was imported",
                    changes.len(),
                    i
                )));
            }
        }
        summary.changes = changes.len() as u64;
        if !logged_steps {
            crate::siem::import_backfill(&mut tx, &t, &findings)?;
        }
        for block in changes.chunks(512) {
            if let Some(first) = block.first() {
                tx.put_json(change_block_key(&t, first.seq), &block.to_vec())?;
            }
        }
        tx.put(
            counter_key(&t, "changes"),
            summary.changes.to_be_bytes().to_vec(),
        );
        tx.put(counter_key(&t, "hosts"), hosts.to_be_bytes().to_vec());
        tx.put(counter_key(&t, "services"), services.to_be_bytes().to_vec());
        let terms = self.commit_with_postings(&t, tx, &postings)?;
        drop(_w);
        self.merge_postings(&terms)?;
        summary.tenant = Some(t);
        Ok(summary)
    }
}
