//! Applying a batch of observations: compare with current state, write the new state and
//! the change events together, and — when the batch completes its scan — record what the
//! scan covered but no longer saw.
//!
//! A batch is one sled `apply_batch` (records, change events, counters, scan, receipt),
//! made durable before `apply` returns. Its index postings are written around it: the
//! additions before, the removals after (see `postings`). When the last shard is in,
//! the scan's sweep marks what it covered and did not see, in chunks that each commit
//! on their own, so that other writers get the store between chunks.

use crate::error::{Result, StoreError};
use crate::evidence;
use crate::facts::{self, Facts, NameVerdict};
use crate::keys::{self, AssetKey, AssetKind, Proto, Rec, TenantId};
use crate::model::{
    day_string, Applied, Asset, AssetStatus, Batch, Change, ChangeKind, DayCount, Millis,
    Observation, Receipt, Scan, ScanState, Sweep, Vantage,
};
use crate::postings::{self, Delta};
use crate::records::{self, host_record_key, HostRecord};
use crate::store::{validate_scan_id, Store, Tx};
use aperture_fingerprints::PortState;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Change events per stored block; a batch writes ⌈changes / this⌉ blocks. Small enough
/// that a leaf of blocks stays below sled's blob threshold (128 KiB per leaf written:
/// above it sled writes a file per leaf).
const CHANGES_PER_BLOCK: usize = 64;

/// Host records a completing scan's sweep reads per chunk (per hold of the writer).
pub(crate) const SWEEP_CHUNK: usize = 256;

/// Fields with a secondary index, so a filtered listing reads only what matches.
pub(crate) const INDEXED: &[&str] = &["service", "product", "risk"];

impl Store {
    /// Applies one (scan, shard) batch atomically and durably. Replaying a batch that was
    /// applied before changes nothing and says so (`fresh: false`). The batch that
    /// completes its scan also runs the scan's sweep before returning.
    pub fn apply(&self, tenant: &TenantId, batch: &Batch) -> Result<Applied> {
        self.apply_from(tenant, batch, None)
    }

    /// [`Store::apply`], recording the vantage (worker and source address) that observed
    /// the batch on its receipt.
    pub fn apply_from(
        &self,
        tenant: &TenantId,
        batch: &Batch,
        vantage: Option<&Vantage>,
    ) -> Result<Applied> {
        validate_scan_id(&batch.scan)?;
        let (applied, terms) = {
            let _w = self.write_lock();
            self.require_tenant(tenant)?;
            let scan_key = keys::key(Rec::Scan, tenant, batch.scan.as_bytes());
            let mut scan: Scan = self.get_json(&scan_key)?.ok_or_else(|| {
                StoreError::NotFound(format!(
                    "scan {}: register it with begin_scan before sending results",
                    batch.scan
                ))
            })?;
            let receipt_key = receipt_key(tenant, &batch.scan, batch.shard);
            if let Some(r) = self.get_json::<Receipt>(&receipt_key)? {
                let pending = scan.sweep.is_some();
                drop(_w);
                // A replay after a crash mid-sweep finishes the sweep.
                let completed = pending && self.run_sweep(tenant, &batch.scan)?;
                return Ok(Applied {
                    fresh: false,
                    observations: r.observations,
                    changes: 0,
                    completed_scan: completed,
                });
            }
            if batch.shard >= scan.shards {
                return Err(StoreError::Invalid(format!(
                    "shard {} of scan {}: the scan has shards 0-{}",
                    batch.shard,
                    batch.scan,
                    scan.shards - 1
                )));
            }
            if scan.state != ScanState::Running || scan.sweep.is_some() {
                return Err(StoreError::Conflict(format!(
                    "scan {} is {:?}: it takes no more results",
                    batch.scan, scan.state
                )));
            }

            let mut ing = Ingest::new(self.tx(), tenant.clone(), &scan, batch.at)?;
            ing.vantage = evidence::vantage_name(vantage);
            let mut observations = 0u64;
            for obs in &batch.observations {
                // A closed port is evidence that its host answers (see `evidence`), not
                // an observation of an asset.
                let evidence = matches!(obs, Observation::Port(p) if p.state != PortState::Open);
                observations += u64::from(!evidence);
                ing.observe(obs)?;
            }
            scan.shards_done.insert(batch.shard);
            scan.observations += observations;
            let all_in = scan.shards_done.len() as u32 == scan.shards;
            if all_in {
                if (scan.coverage.port_probe() || scan.coverage.udp_probe())
                    && !scan.coverage.targets.is_empty()
                {
                    scan.sweep = Some(Sweep {
                        net: 0,
                        after: None,
                        at: batch.at,
                    });
                } else {
                    scan.state = ScanState::Completed;
                    scan.completed = Some(batch.at);
                }
            }
            let (changes, delta) = ing.finish()?;
            let mut tx = ing.tx;
            tx.put_json(scan_key, &scan)?;
            tx.put_json(
                receipt_key,
                &Receipt {
                    scan: batch.scan.clone(),
                    shard: batch.shard,
                    range: batch.range,
                    applied: batch.at,
                    observations,
                    changes,
                    vantage: vantage.cloned(),
                },
            )?;
            let terms = self.commit_with_postings(tenant, tx, &delta)?;
            (
                Applied {
                    fresh: true,
                    observations,
                    changes,
                    completed_scan: all_in && scan.sweep.is_none(),
                },
                terms,
            )
        };
        self.merge_postings(&terms)?;
        let mut applied = applied;
        if !applied.completed_scan && self.scan(tenant, &batch.scan)?.sweep.is_some() {
            applied.completed_scan = self.run_sweep(tenant, &batch.scan)?;
        }
        Ok(applied)
    }

    /// Commits a transaction with its index postings around it: additions before (a
    /// crash after them leaves extra entries, which listings check away), removals after
    /// (a crash before them leaves stale entries, likewise). Returns the terms written.
    pub(crate) fn commit_with_postings(
        &self,
        tenant: &TenantId,
        tx: Tx<'_>,
        delta: &Delta,
    ) -> Result<Vec<Vec<u8>>> {
        let mut terms = postings::write(&self.db, &self.data, tenant, &delta.adds, true)?;
        tx.commit()?;
        terms.extend(postings::write(
            &self.db,
            &self.data,
            tenant,
            &delta.removes,
            false,
        )?);
        if !delta.removes.is_empty() {
            self.db.flush()?;
        }
        Ok(terms)
    }

    /// Merges the posting runs of `terms` where a level is full. Outside the writer lock:
    /// ingest goes on meanwhile.
    pub(crate) fn merge_postings(&self, terms: &[Vec<u8>]) -> Result<()> {
        if terms.is_empty() {
            return Ok(());
        }
        let _m = self.merging.lock().unwrap_or_else(|p| p.into_inner());
        postings::merge(&self.data, terms, &self.postings_gate)
    }

    /// Marks, chunk by chunk, what a scan whose every shard is in covered but did not
    /// see; completes the scan at the end. Returns whether this call completed it.
    pub(crate) fn run_sweep(&self, tenant: &TenantId, scan_id: &str) -> Result<bool> {
        loop {
            let (done, terms) = {
                let _w = self.write_lock();
                let scan_key = keys::key(Rec::Scan, tenant, scan_id.as_bytes());
                let Some(mut scan) = self.get_json::<Scan>(&scan_key)? else {
                    return Ok(false);
                };
                let Some(sweep) = scan.sweep.clone() else {
                    return Ok(false);
                };
                if scan.state != ScanState::Running {
                    return Ok(false);
                }
                let mut ing = Ingest::new(self.tx(), tenant.clone(), &scan, sweep.at)?;
                let next = ing.sweep_chunk(&scan, &sweep)?;
                let done = next.is_none();
                scan.silent_hosts += std::mem::take(&mut ing.silent_hosts);
                match next {
                    Some(n) => scan.sweep = Some(n),
                    None => {
                        evidence::forget(&mut ing.tx, tenant, scan_id)?;
                        scan.sweep = None;
                        scan.state = ScanState::Completed;
                        scan.completed = Some(sweep.at);
                    }
                }
                let (_, delta) = ing.finish()?;
                let mut tx = ing.tx;
                tx.put_json(scan_key, &scan)?;
                (done, self.commit_with_postings(tenant, tx, &delta)?)
            };
            self.merge_postings(&terms)?;
            if done {
                return Ok(true);
            }
        }
    }

    /// Finishes the sweeps a crash interrupted.
    pub(crate) fn resume_completions(&self) -> Result<()> {
        for tenant in self.tenants()? {
            for scan in self.scans(&tenant.id)? {
                if scan.sweep.is_some() {
                    self.run_sweep(&tenant.id, &scan.id)?;
                }
            }
        }
        Ok(())
    }
}

impl Store {
    /// Takes applied shards of a running scan back, so they can be applied again from
    /// another vantage (one whose probes were blocked saw too little). What they stored
    /// stays — it was observed; the rerun adds what the first run missed. Refused once
    /// the scan's completion began: a sweep may already have marked their absences.
    /// Returns the shards that were applied and now are not.
    pub fn reopen_shards(
        &self,
        tenant: &TenantId,
        scan_id: &str,
        shards: &[u32],
    ) -> Result<Vec<u32>> {
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let scan_key = keys::key(Rec::Scan, tenant, scan_id.as_bytes());
        let mut scan: Scan = self
            .get_json(&scan_key)?
            .ok_or_else(|| StoreError::NotFound(format!("scan {scan_id}")))?;
        if scan.state != ScanState::Running || scan.sweep.is_some() {
            return Err(StoreError::Conflict(format!(
                "scan {scan_id} is {:?}{}: its shards can no longer be rerun",
                scan.state,
                if scan.sweep.is_some() {
                    " and completing"
                } else {
                    ""
                }
            )));
        }
        let mut tx = self.tx();
        let mut reopened = Vec::new();
        for &shard in shards {
            if scan.shards_done.remove(&shard) {
                tx.delete(receipt_key(tenant, scan_id, shard));
                reopened.push(shard);
            }
        }
        tx.put_json(scan_key, &scan)?;
        tx.commit()?;
        Ok(reopened)
    }

    /// The applied shards of a scan, each with what it covered and what it stored.
    pub fn shards(&self, tenant: &TenantId, scan: &str) -> Result<Vec<Receipt>> {
        let mut prefix = scan.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self
            .data
            .scan_prefix(keys::key(Rec::Receipt, tenant, &prefix))
        {
            out.push(serde_json::from_slice(&item?.1)?);
        }
        Ok(out)
    }
}

pub(crate) fn receipt_key(tenant: &TenantId, scan: &str, shard: u32) -> Vec<u8> {
    let mut rest = scan.as_bytes().to_vec();
    rest.push(0);
    rest.extend_from_slice(&shard.to_be_bytes());
    keys::key(Rec::Receipt, tenant, &rest)
}

pub(crate) fn counter_key(tenant: &TenantId, name: &str) -> Vec<u8> {
    keys::key(Rec::Counter, tenant, name.as_bytes())
}

pub(crate) fn read_counter(tx: &Tx<'_>, key: &[u8]) -> Result<u64> {
    Ok(match tx.get(key)? {
        Some(v) => u64::from_be_bytes(
            v.as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt("counter".into()))?,
        ),
        None => 0,
    })
}

/// `L<tenant>\0<len><from><to>`: links are found from either end by prefix.
pub(crate) fn link_prefix(tenant: &TenantId, from: &AssetKey) -> Vec<u8> {
    let from = from.to_bytes();
    let mut rest = Vec::with_capacity(from.len() + 1);
    rest.push(from.len() as u8);
    rest.extend_from_slice(&from);
    keys::key(Rec::Link, tenant, &rest)
}

fn link_key(tenant: &TenantId, from: &AssetKey, to: &AssetKey) -> Vec<u8> {
    let mut k = link_prefix(tenant, from);
    k.extend_from_slice(&to.to_bytes());
    k
}

/// Index entries an asset should have: the indexed facts, its port, and its status when
/// not present (present is the common case, filtered by reading).
pub(crate) fn index_entries(a: &Asset) -> BTreeSet<postings::Term> {
    let mut out = BTreeSet::new();
    for field in INDEXED {
        if let Some(v) = a.facts.get(*field) {
            out.insert(((*field).to_owned(), v.to_ascii_lowercase()));
        }
    }
    // The CPE's vendor:product, so an import of vulnerability data finds the services
    // it concerns (see `crate::vulns`).
    if let Some(p) = crate::vulns::cpe_term(a) {
        out.insert(("cpe".to_owned(), p));
    }
    if let Some(port) = a.key.port() {
        out.insert(("port".to_owned(), port.to_string()));
    }
    if a.status != AssetStatus::Present {
        out.insert(("status".to_owned(), a.status.as_str().to_owned()));
    }
    out
}

pub(crate) fn change_block_key(tenant: &TenantId, first_seq: u64) -> Vec<u8> {
    keys::key(Rec::Changes, tenant, &first_seq.to_be_bytes())
}

/// One batch in progress: decoded assets it touched (with their state before), the change
/// events it made, and the present-asset counts.
pub(crate) struct Ingest<'a> {
    pub tx: Tx<'a>,
    tenant: TenantId,
    scan: String,
    /// When the scan began: an asset seen after that was seen during it (by it, or by
    /// another scan meanwhile), so its sweep leaves it alone.
    scan_created: Millis,
    at: Millis,
    assets: BTreeMap<AssetKey, Touched>,
    /// Host records read by this batch (once per host), with the sightings of
    /// unchanged services already applied; `dirty` are those so changed.
    hosts: BTreeMap<IpAddr, Option<HostRecord>>,
    dirty: BTreeSet<IpAddr>,
    changes: Vec<Change>,
    next_seq: u64,
    /// Certificates that may have lost their last present service in this batch.
    cert_candidates: BTreeSet<AssetKey>,
    /// Ports of hosts that opened (true) or closed (false) in this batch.
    host_ports: BTreeMap<IpAddr, BTreeMap<(u16, Proto), bool>>,
    /// Who observed this batch (see [`evidence`]), and the hosts it heard.
    vantage: String,
    heard: BTreeSet<IpAddr>,
    /// Hosts whose silent services a sweep left unknown rather than gone.
    silent_hosts: u64,
    /// The tenant's alert rules, read once per batch (`asset.new` events).
    alert_rules: Vec<aperture_notify::AlertRule>,
}

struct Touched {
    before: Option<Asset>,
    now: Asset,
}

impl<'a> Ingest<'a> {
    pub fn new(tx: Tx<'a>, tenant: TenantId, scan: &Scan, at: Millis) -> Result<Self> {
        let next_seq = read_counter(&tx, &counter_key(&tenant, "changes"))?;
        let alert_rules = crate::outbox::rules_in(&tx, &tenant)?;
        Ok(Ingest {
            alert_rules,
            tx,
            tenant,
            scan: scan.id.clone(),
            scan_created: scan.created,
            at,
            assets: BTreeMap::new(),
            hosts: BTreeMap::new(),
            dirty: BTreeSet::new(),
            changes: Vec::new(),
            next_seq,
            cert_candidates: BTreeSet::new(),
            host_ports: BTreeMap::new(),
            vantage: evidence::IN_PROCESS.to_owned(),
            heard: BTreeSet::new(),
            silent_hosts: 0,
        })
    }

    /// A host's record as this batch sees it.
    fn host_record(&mut self, ip: IpAddr) -> Result<Option<&mut HostRecord>> {
        if !self.hosts.contains_key(&ip) {
            let record = self.tx.host_record(&self.tenant, ip)?;
            self.hosts.insert(ip, record);
        }
        Ok(self.hosts.get_mut(&ip).and_then(Option::as_mut))
    }

    fn load(&mut self, key: &AssetKey) -> Result<Option<&mut Asset>> {
        if !self.assets.contains_key(key) {
            let stored = match key.address() {
                Some(ip) => match self.host_record(ip)? {
                    Some(r) => r.get(key)?,
                    None => None,
                },
                None => self.tx.asset(&self.tenant, key)?,
            };
            let Some(asset) = stored else {
                return Ok(None);
            };
            self.assets.insert(
                key.clone(),
                Touched {
                    before: Some(asset.clone()),
                    now: asset,
                },
            );
        }
        Ok(self.assets.get_mut(key).map(|t| &mut t.now))
    }

    fn record(&mut self, asset: &mut Asset, kind: ChangeKind) {
        let seq = self.next_seq;
        self.next_seq += 1;
        asset.changes.push(seq);
        self.changes.push(Change {
            seq,
            at: self.at,
            asset: asset.key.clone(),
            scan: self.scan.clone(),
            kind,
        });
    }

    /// The asset was seen; `new_facts` replaces its facts when given (a grab that learned
    /// nothing keeps what was known).
    fn see(&mut self, key: &AssetKey, new_facts: Option<Facts>) -> Result<()> {
        let (at, scan) = (self.at, self.scan.clone());
        let mut changes = Vec::new();
        match self.load(key)? {
            Some(asset) => {
                if asset.last_scan != scan {
                    asset.times_seen += 1;
                    asset.last_scan = scan;
                }
                asset.last_seen = asset.last_seen.max(at);
                if asset.status != AssetStatus::Present {
                    if asset.status == AssetStatus::Absent {
                        changes.push(ChangeKind::Appeared);
                    }
                    asset.status = AssetStatus::Present;
                }
                if let Some(new) = new_facts {
                    for (field, old, new) in facts::diff(&asset.facts, &new) {
                        changes.push(ChangeKind::Changed { field, old, new });
                    }
                    asset.facts = new;
                }
                if !changes.is_empty() {
                    asset.last_changed = at;
                }
                let mut asset = std::mem::replace(asset, placeholder(key));
                for c in changes {
                    self.record(&mut asset, c);
                }
                self.put_back(asset);
            }
            None => {
                let mut asset = Asset {
                    key: key.clone(),
                    kind: key.kind(),
                    status: AssetStatus::Present,
                    facts: new_facts.unwrap_or_default(),
                    first_seen: at,
                    last_seen: at,
                    last_changed: at,
                    times_seen: 1,
                    last_scan: scan,
                    changes: Vec::new(),
                };
                self.record(&mut asset, ChangeKind::Appeared);
                crate::outbox::asset_new(
                    &mut self.tx,
                    &self.tenant,
                    key,
                    &self.scan,
                    self.next_seq - 1,
                    &self.alert_rules,
                    at,
                )?;
                self.assets.insert(
                    key.clone(),
                    Touched {
                        before: None,
                        now: asset,
                    },
                );
            }
        }
        Ok(())
    }

    fn put_back(&mut self, asset: Asset) {
        if let Some(t) = self.assets.get_mut(&asset.key) {
            t.now = asset;
        }
    }

    /// The asset is gone (covered and not seen, or its name no longer exists).
    fn gone(&mut self, key: &AssetKey) -> Result<()> {
        let at = self.at;
        let Some(asset) = self.load(key)? else {
            return Ok(());
        };
        if asset.status == AssetStatus::Absent {
            return Ok(());
        }
        asset.status = AssetStatus::Absent;
        asset.last_changed = at;
        let mut asset = std::mem::replace(asset, placeholder(key));
        self.record(&mut asset, ChangeKind::Disappeared);
        self.put_back(asset);
        Ok(())
    }

    /// This scan could not tell: the asset keeps its facts, is not counted as seen, and
    /// this scan's completion will not mark it gone.
    fn unknown(&mut self, key: &AssetKey) -> Result<()> {
        let scan = self.scan.clone();
        if let Some(asset) = self.load(key)? {
            asset.last_scan = scan;
            if asset.status == AssetStatus::Present {
                asset.status = AssetStatus::Unknown;
            }
        }
        Ok(())
    }

    fn link(&mut self, a: &AssetKey, b: &AssetKey) {
        self.tx.put(link_key(&self.tenant, a, b), Vec::new());
        self.tx.put(link_key(&self.tenant, b, a), Vec::new());
    }

    fn unlink(&mut self, a: &AssetKey, b: &AssetKey) {
        self.tx.delete(link_key(&self.tenant, a, b));
        self.tx.delete(link_key(&self.tenant, b, a));
    }

    /// Notes a port of a host opening or closing; the host's port list is settled once
    /// per batch (one change event, not one per port).
    fn set_host_port(&mut self, ip: IpAddr, port: (u16, Proto), open: bool) -> Result<()> {
        self.host_ports.entry(ip).or_default().insert(port, open);
        if open {
            self.see(&AssetKey::Host(ip), None)?;
        }
        Ok(())
    }

    fn settle_hosts(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut self.host_ports);
        for (ip, ports) in pending {
            let key = AssetKey::Host(ip);
            if self.load(&key)?.is_none() {
                continue;
            }
            let Some(t) = self.assets.get(&key) else {
                continue;
            };
            // An absent host's last port list is history, not its current ports.
            let before = t
                .before
                .as_ref()
                .filter(|b| b.status != AssetStatus::Absent);
            let appeared_now = before.is_none();
            let mut set: BTreeSet<(u16, Proto)> = before
                .and_then(|b| b.facts.get("open_ports"))
                .map(|s| parse_ports(s))
                .unwrap_or_default();
            for (port, open) in ports {
                if open {
                    set.insert(port);
                } else {
                    set.remove(&port);
                }
            }
            if set.is_empty() {
                self.gone(&key)?;
                continue;
            }
            let text = join_ports(&set);
            let at = self.at;
            let Some(h) = self.load(&key)? else {
                continue;
            };
            let old = h.facts.get("open_ports").cloned();
            if old.as_deref() == Some(text.as_str()) && h.status == AssetStatus::Present {
                continue;
            }
            h.facts.insert("open_ports".into(), text.clone());
            if appeared_now {
                continue;
            }
            h.last_changed = at;
            let mut h = std::mem::replace(h, placeholder(&key));
            self.record(
                &mut h,
                ChangeKind::Changed {
                    field: "open_ports".into(),
                    old,
                    new: Some(text),
                },
            );
            self.put_back(h);
        }
        Ok(())
    }

    /// A UDP port that did not answer with data. ICMP port unreachable quoting our probe
    /// is the host saying nothing listens there: positive evidence, so a service on
    /// record there is gone now. Admin-prohibited says a filter stands in the way: the
    /// look could not tell. Both show that the host answers.
    fn udp_not_open(&mut self, p: &aperture_fingerprints::PortObservation) -> Result<()> {
        if self.host_record(p.ip)?.is_none() {
            return Ok(());
        }
        self.heard.insert(p.ip);
        let key = AssetKey::udp(p.ip, p.port);
        let scan = self.scan.clone();
        let Some(asset) = self.load(&key)? else {
            return Ok(());
        };
        if asset.status == AssetStatus::Absent || asset.last_scan == scan {
            return Ok(());
        }
        if p.state == PortState::Closed {
            self.gone(&key)?;
            self.set_host_port(p.ip, (p.port, Proto::Udp), false)?;
        } else {
            self.unknown(&key)?;
        }
        Ok(())
    }

    pub fn observe(&mut self, obs: &Observation) -> Result<()> {
        match obs {
            Observation::Port(p) => {
                if p.state != PortState::Open && p.proto == Proto::Udp {
                    return self.udp_not_open(p);
                }
                if p.state != PortState::Open {
                    // A closed port is covered-and-not-open; the scan's completion
                    // handles it like any port it did not see open. It is also the
                    // evidence that its host still answers, worth noting only for a
                    // host with assets to judge.
                    if self.host_record(p.ip)?.is_some() {
                        self.heard.insert(p.ip);
                    }
                    return Ok(());
                }
                self.heard.insert(p.ip);
                let key = AssetKey::Service(p.ip, p.port, p.proto);
                let report = p.service.as_ref();
                let mut new_facts = facts::service(report);
                let leaf = report.and_then(|r| r.certificate.first());
                // The common case of a rescan: a present service, same facts, no
                // certificate to follow. Only its sighting changes, in the record.
                if leaf.is_none() && !self.assets.contains_key(&key) {
                    let bytes = new_facts.as_ref().map(records::encode_facts).transpose()?;
                    self.host_record(p.ip)?;
                    // Fields borrowed apart: no copy of the scan id per observation.
                    let seen = match self.hosts.get_mut(&p.ip) {
                        Some(Some(r)) => {
                            r.seen_unchanged(p.port, p.proto, bytes.as_deref(), &self.scan, self.at)
                        }
                        _ => false,
                    };
                    if seen {
                        self.dirty.insert(p.ip);
                        return self.set_host_port(p.ip, (p.port, p.proto), true);
                    }
                }
                let old_cert = self
                    .load(&key)?
                    .and_then(|a| a.facts.get("certificate").cloned());
                if let (Some(f), None) = (new_facts.as_mut(), leaf) {
                    // A grab that learned the service but got no certificate this time
                    // (TLS failed) keeps the certificate it had: a failed handshake is
                    // not a removed certificate.
                    if let (Some(old), true) = (&old_cert, report.is_some_and(|r| r.tls.is_some()))
                    {
                        f.insert("certificate".into(), old.clone());
                    }
                }
                self.see(&key, new_facts)?;
                self.set_host_port(p.ip, (p.port, p.proto), true)?;
                if let Some(leaf) = leaf {
                    let cert = AssetKey::Certificate(leaf.sha256.clone());
                    self.see(&cert, Some(facts::certificate(leaf)))?;
                    self.link(&key, &cert);
                    // certificate → the names it vouches for (links only: a name is an
                    // asset once DNS enumeration finds it).
                    for name in leaf.sans.dns.iter().take(64) {
                        if let Ok(domain) = AssetKey::domain(name) {
                            self.link(&cert, &domain);
                        }
                    }
                    if let Some(old) = old_cert.filter(|o| *o != leaf.sha256) {
                        let old = AssetKey::Certificate(old);
                        self.unlink(&key, &old);
                        self.cert_candidates.insert(old);
                    }
                }
            }
            Observation::Name(n) => {
                let key = AssetKey::domain(&n.name)?;
                match facts::name_verdict(n) {
                    NameVerdict::Exists => {
                        let old = self
                            .load(&key)?
                            .map(|a| a.facts.clone())
                            .unwrap_or_default();
                        let merged = facts::merge_part(&old, facts::name(n), false);
                        self.see(&key, Some(merged))?;
                        // The name points where it resolves now: links to addresses it
                        // left go, so a domain filter does not follow stale records.
                        let before: Vec<IpAddr> = old
                            .get("addresses")
                            .map(|a| a.split(' ').filter_map(|x| x.parse().ok()).collect())
                            .unwrap_or_default();
                        for addr in before.iter().filter(|a| !n.addresses.contains(a)) {
                            self.unlink(&key, &AssetKey::Host(*addr));
                        }
                        for addr in &n.addresses {
                            self.link(&key, &AssetKey::Host(*addr));
                        }
                    }
                    NameVerdict::Gone => self.gone(&key)?,
                    NameVerdict::Unknown => self.unknown(&key)?,
                }
            }
            Observation::Zone(z) => {
                let key = AssetKey::domain(&z.zone)?;
                let old = self
                    .load(&key)?
                    .map(|a| a.facts.clone())
                    .unwrap_or_default();
                let merged = facts::merge_part(&old, facts::zone(z), true);
                self.see(&key, Some(merged))?;
            }
            Observation::Unknown { asset, .. } => self.unknown(asset)?,
        }
        Ok(())
    }

    /// One chunk of a completing scan's sweep: every service in up to [`SWEEP_CHUNK`]
    /// host records of the covered nets that the scan covered and that nobody saw since
    /// it began is gone, and so are hosts with no open port left and certificates no
    /// present service presents any more. Returns where the next chunk starts, or `None`
    /// when the sweep is done.
    pub fn sweep_chunk(&mut self, scan: &Scan, at: &Sweep) -> Result<Option<Sweep>> {
        let plen = keys::prefix(Rec::Asset, &self.tenant).len();
        let mut net_index = at.net;
        let mut after = at.after;
        let mut read = 0usize;
        let mut vantages: Option<BTreeSet<String>> = None;
        while let Some(net) = scan.coverage.targets.get(net_index as usize) {
            let (mut lo, hi) =
                records::host_record_range(&self.tenant, net.network(), net.broadcast());
            if let Some(a) = after {
                lo = host_record_key(&self.tenant, a);
                lo.push(0);
            }
            // (service, whether its host answered this scan from every vantage)
            let mut gone = Vec::new();
            let mut silent_udp = Vec::new();
            let mut last = None;
            for item in self.tx.store_range(&lo, &hi) {
                let (k, v) = item?;
                let ip = records::host_record_ip(k.get(plen..).unwrap_or_default())?;
                last = Some(ip);
                read += 1;
                let record = HostRecord::decode(&v)?;
                let first = gone.len();
                for (port, proto, status, last_scan) in record.service_states() {
                    if status == AssetStatus::Absent || last_scan == scan.id {
                        continue;
                    }
                    match proto {
                        Proto::Tcp if scan.coverage.covers_service(ip, port) => {
                            gone.push((AssetKey::tcp(ip, port), true));
                        }
                        // Silence from a UDP port proves nothing (a lost datagram, a
                        // daemon that ignores our probe): the look could not tell.
                        // Only ICMP port unreachable closes it (`udp_not_open`).
                        Proto::Udp
                            if status == AssetStatus::Present
                                && scan.coverage.covers_udp(ip, port) =>
                        {
                            silent_udp.push(AssetKey::udp(ip, port));
                        }
                        _ => {}
                    }
                }
                if gone.len() > first {
                    let heard = evidence::heard_by(&self.tx, &self.tenant, &scan.id, ip)?;
                    let vantages = match &vantages {
                        Some(v) => v,
                        None => vantages.insert(evidence::scan_vantages(
                            &self.tx,
                            &self.tenant,
                            &scan.id,
                            scan.shards,
                        )?),
                    };
                    if !evidence::conclusive(&heard, vantages) {
                        self.silent_hosts += 1;
                        for entry in gone.get_mut(first..).unwrap_or_default() {
                            entry.1 = false;
                        }
                    }
                }
                if read == SWEEP_CHUNK {
                    break;
                }
            }
            let (created, scan_id) = (self.scan_created, self.scan.clone());
            for key in silent_udp {
                if let Some(asset) = self.load(&key)? {
                    if asset.last_seen <= created && asset.last_scan != scan_id {
                        self.unknown(&key)?;
                    }
                }
            }
            for (key, answered) in gone {
                let Some(asset) = self.load(&key)? else {
                    continue;
                };
                // Seen since the scan began (by another scan meanwhile): not gone.
                if asset.last_seen > created || asset.last_scan == scan_id {
                    continue;
                }
                if !answered {
                    // Silence from the host: unreachable from this scan's vantage, which
                    // proves nothing about the service (see `evidence`).
                    self.unknown(&key)?;
                    continue;
                }
                self.gone(&key)?;
                if let AssetKey::Service(ip, port, proto) = key {
                    self.set_host_port(ip, (port, proto), false)?;
                }
                if let Some(sha) = self
                    .assets
                    .get(&key)
                    .and_then(|t| t.now.facts.get("certificate").cloned())
                {
                    self.cert_candidates.insert(AssetKey::Certificate(sha));
                }
            }
            if read == SWEEP_CHUNK {
                return Ok(Some(Sweep {
                    net: net_index,
                    after: last,
                    at: at.at,
                }));
            }
            net_index += 1;
            after = None;
        }
        Ok(None)
    }

    /// Certificates whose every linked service is gone or presents another one.
    fn retire_orphan_certificates(&mut self) -> Result<()> {
        let candidates = std::mem::take(&mut self.cert_candidates);
        for cert in candidates {
            let sha = match &cert {
                AssetKey::Certificate(s) => s.clone(),
                _ => continue,
            };
            let prefix = link_prefix(&self.tenant, &cert);
            let mut in_use = false;
            for (k, _) in self.tx.scan_prefix(&prefix)? {
                let Ok(svc) = AssetKey::from_bytes(k.get(prefix.len()..).unwrap_or_default())
                else {
                    continue;
                };
                if let Some(a) = self.load(&svc)? {
                    if a.status != AssetStatus::Absent
                        && a.facts.get("certificate").is_some_and(|c| *c == sha)
                    {
                        in_use = true;
                        break;
                    }
                }
            }
            if !in_use {
                self.gone(&cert)?;
            }
        }
        Ok(())
    }

    /// Stages every touched asset into its record, the change blocks, counters and the
    /// day's counts. Returns the number of change events and the index postings to write.
    pub fn finish(&mut self) -> Result<(u64, Delta)> {
        let heard = std::mem::take(&mut self.heard);
        let (tenant, scan) = (self.tenant.clone(), self.scan.clone());
        evidence::note(&mut self.tx, &tenant, &scan, &heard, &self.vantage)?;
        self.settle_hosts()?;
        self.retire_orphan_certificates()?;
        let tenant = self.tenant.clone();
        let mut host_delta = 0i64;
        let mut service_delta = 0i64;
        let mut delta = Delta::default();
        let mut host_records: BTreeMap<IpAddr, HostRecord> = BTreeMap::new();
        let touched = std::mem::take(&mut self.assets);
        for (key, t) in touched {
            let was_present = t
                .before
                .as_ref()
                .is_some_and(|b| b.status != AssetStatus::Absent);
            let is_present = t.now.status != AssetStatus::Absent;
            let count = i64::from(is_present) - i64::from(was_present);
            match key.kind() {
                AssetKind::Host => host_delta += count,
                AssetKind::Service => service_delta += count,
                _ => {}
            }
            // Index entries follow facts and status; a sighting changes neither.
            let unchanged = t
                .before
                .as_ref()
                .is_some_and(|b| b.status == t.now.status && b.facts == t.now.facts);
            if !unchanged {
                let old_index = t.before.as_ref().map(index_entries).unwrap_or_default();
                let new_index = index_entries(&t.now);
                for term in old_index.difference(&new_index) {
                    delta
                        .removes
                        .entry(term.clone())
                        .or_default()
                        .push(key.to_bytes());
                }
                for term in new_index.difference(&old_index) {
                    delta
                        .adds
                        .entry(term.clone())
                        .or_default()
                        .push(key.to_bytes());
                }
            }
            match key.address() {
                Some(ip) => {
                    let record = match host_records.entry(ip) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            let base = match self.hosts.remove(&ip) {
                                Some(r) => r,
                                None => self.tx.host_record(&tenant, ip)?,
                            };
                            e.insert(base.unwrap_or_default())
                        }
                    };
                    record.set(t.now)?;
                }
                None => self.tx.put_asset(&tenant, &t.now)?,
            }
        }
        for ip in std::mem::take(&mut self.dirty) {
            if let (false, Some(Some(r))) = (host_records.contains_key(&ip), self.hosts.remove(&ip))
            {
                host_records.insert(ip, r);
            }
        }
        for (ip, record) in host_records {
            self.tx.put(host_record_key(&tenant, ip), record.encode()?);
        }
        let changes = std::mem::take(&mut self.changes);
        let count = changes.len() as u64;
        for block in changes.chunks(CHANGES_PER_BLOCK) {
            if let Some(first) = block.first() {
                self.tx
                    .put_json(change_block_key(&tenant, first.seq), &block.to_vec())?;
            }
        }
        self.tx.put(
            counter_key(&tenant, "changes"),
            self.next_seq.to_be_bytes().to_vec(),
        );
        let hosts = self.bump(&counter_key(&tenant, "hosts"), host_delta)?;
        let services = self.bump(&counter_key(&tenant, "services"), service_delta)?;
        let day = day_string(self.at);
        self.tx.put_json(
            keys::key(Rec::Day, &tenant, day.as_bytes()),
            &DayCount {
                day,
                hosts,
                services,
            },
        )?;
        Ok((count, delta))
    }

    fn bump(&mut self, key: &[u8], delta: i64) -> Result<u64> {
        let now = read_counter(&self.tx, key)?.saturating_add_signed(delta);
        self.tx.put(key.to_vec(), now.to_be_bytes().to_vec());
        Ok(now)
    }
}

/// A host's `open_ports` fact: TCP ports bare (as before UDP), UDP ports as `53/udp`,
/// in port order.
fn join_ports(ports: &BTreeSet<(u16, Proto)>) -> String {
    ports
        .iter()
        .map(|(p, proto)| match proto {
            Proto::Tcp => p.to_string(),
            Proto::Udp => format!("{p}/udp"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_ports(text: &str) -> BTreeSet<(u16, Proto)> {
    text.split(' ')
        .filter_map(|t| match t.strip_suffix("/udp") {
            Some(p) => p.parse().ok().map(|p| (p, Proto::Udp)),
            None => t.parse().ok().map(|p| (p, Proto::Tcp)),
        })
        .collect()
}

fn placeholder(key: &AssetKey) -> Asset {
    Asset {
        key: key.clone(),
        kind: key.kind(),
        status: AssetStatus::Unknown,
        facts: Facts::new(),
        first_seen: 0,
        last_seen: 0,
        last_changed: 0,
        times_seen: 0,
        last_scan: String::new(),
        changes: Vec::new(),
    }
}
