//! Moving a store of the previous release (`aperture-store-2`) to this layout in place,
//! when [`Store::open`](crate::Store::open) finds one.
//!
//! Store 2 kept a record per host and per service and an index key per (field, value,
//! asset). Store 3 keeps one record per host with its services and indexes as posting
//! runs. Everything else (domains, certificates, links, change blocks, scans, receipts,
//! findings, ...) is the same. Every step can be repeated: the schema key says
//! `aperture-store-2-to-3` until the end, and a migration cut short by a crash starts
//! again from what is left of the old keys, then rebuilds the postings from scratch.

use crate::error::Result;
use crate::ingest::index_entries;
use crate::keys::{self, AssetKey, Rec};
use crate::model::Asset;
use crate::postings::{self, Delta};
use crate::records::{host_record_key, HostRecord};
use crate::store::{Store, STORE_SCHEMA};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The schema key while a migration runs.
pub(crate) const MIGRATING: &str = "aperture-store-2-to-3";
const SCHEMA_KEY: &[u8] = b"schema";
/// Hosts per sled batch while regrouping.
const HOSTS_PER_BATCH: usize = 1024;
/// Assets whose postings are gathered before they are written.
const POSTINGS_PER_FLUSH: usize = 100_000;

pub(crate) fn from_store_2(store: &Store, meta: &sled::Tree) -> Result<()> {
    meta.insert(SCHEMA_KEY, MIGRATING.as_bytes())?;
    store.durable()?;
    for tenant in store.tenants()? {
        let t = &tenant.id;
        regroup_hosts(store, t)?;
        // The old index keys go; postings are rebuilt from the records.
        for prefix in [keys::prefix(Rec::Index, t), keys::prefix(Rec::Posting, t)] {
            let mut batch = sled::Batch::default();
            for item in store.data.scan_prefix(&prefix) {
                batch.remove(item?.0);
            }
            store.data.apply_batch(batch)?;
        }
        let mut delta = Delta::default();
        let mut gathered = 0usize;
        for kind in crate::query::KIND_ORDER {
            let mut failed = None;
            store.walk_kind(t, kind, None, None, &mut |a: Asset| {
                for term in index_entries(&a) {
                    delta.adds.entry(term).or_default().push(a.key.to_bytes());
                }
                gathered += 1;
                if gathered.is_multiple_of(POSTINGS_PER_FLUSH) {
                    if let Err(e) = write_postings(store, t, &mut delta) {
                        failed = Some(e);
                        return false;
                    }
                }
                true
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
        }
        write_postings(store, t, &mut delta)?;
    }
    meta.insert(SCHEMA_KEY, STORE_SCHEMA.as_bytes())?;
    store.durable()
}

fn write_postings(store: &Store, t: &crate::TenantId, delta: &mut Delta) -> Result<()> {
    let terms = postings::write(&store.db, &store.data, t, &delta.adds, true)?;
    delta.adds.clear();
    store.merge_postings(&terms)
}

/// Old host (`h`) and service (`s`) records of a tenant into host records, a batch of
/// hosts at a time, each host's new record and the removal of its old ones together.
fn regroup_hosts(store: &Store, t: &crate::TenantId) -> Result<()> {
    let asset_prefix = keys::prefix(Rec::Asset, t);
    let mut lo = asset_prefix.clone();
    lo.push(b'h');
    let mut hi = asset_prefix.clone();
    hi.push(b's' + 1);
    loop {
        let mut records: BTreeMap<IpAddr, HostRecord> = BTreeMap::new();
        let mut batch = sled::Batch::default();
        for item in store.data.range(lo.clone()..hi.clone()) {
            let (k, v) = item?;
            let key = AssetKey::from_bytes(k.get(asset_prefix.len()..).unwrap_or_default())?;
            let Some(ip) = key.address() else {
                continue;
            };
            if !records.contains_key(&ip) && records.len() == HOSTS_PER_BATCH {
                break;
            }
            records.entry(ip).or_default().set(Asset::decode(&v)?)?;
            batch.remove(k);
        }
        if records.is_empty() {
            return Ok(());
        }
        for (ip, mut record) in records {
            // A host's services may sit after the batch's cut (all `h` keys sort before
            // all `s` keys): gather them now so each host is regrouped at once.
            let mut sprefix = asset_prefix.clone();
            sprefix.extend_from_slice(&AssetKey::tcp(ip, 0).to_bytes());
            sprefix.truncate(sprefix.len() - 2);
            for item in store.data.scan_prefix(&sprefix) {
                let (k, v) = item?;
                record.set(Asset::decode(&v)?)?;
                batch.remove(k);
            }
            if let Some(existing) = store.host_record(t, ip)? {
                // A run cut short had regrouped part of this host already.
                let services: Vec<Asset> = existing.services(ip).collect::<Result<_>>()?;
                for a in existing.host(ip)?.into_iter().chain(services) {
                    if record.get(&a.key)?.is_none() {
                        record.set(a)?;
                    }
                }
            }
            batch.insert(host_record_key(t, ip), record.encode()?);
        }
        store.data.apply_batch(batch)?;
    }
}
