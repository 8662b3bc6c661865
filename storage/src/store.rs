//! Opening a store, its schema version, the write transaction, tenants and scans.
//!
//! Everything lives in one sled tree. A batch — host, domain and certificate records,
//! change events, counters, the scan's progress and the batch's receipt — is one
//! `Tree::apply_batch`: sled applies it atomically. The secondary indexes are posting
//! runs written beside it (see `postings`), which never need to be atomic with it.
//!
//! **Durable** means: `Tx::commit` returns only after sled's `flush` wrote the log
//! (`pwrite` + `sync_file_range`) *and* an `fdatasync` of sled's file made it survive
//! power loss, not only `kill -9` — `sync_file_range` alone neither flushes the disk's
//! cache nor the file's metadata (sled #1452). sled's own background flusher stays on:
//! it is what cleans old log segments.

use crate::error::{Result, StoreError};
use crate::keys::{self, AssetKey, Rec, TenantId};
use crate::model::{Asset, Coverage, Millis, Scan, ScanState, Tenant};
use crate::records::{host_record_key, own_record_key, HostRecord};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

/// Bumped when the record layout changes incompatibly.
pub const STORE_SCHEMA: &str = "aperture-store-3";
/// The schema a store of the previous release has; [`Store::open`] migrates it.
pub const PREVIOUS_SCHEMA: &str = "aperture-store-2";
const SCHEMA_KEY: &[u8] = b"schema";

/// Tuning for [`Store::open_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// How long to wait for the directory's lock. A store dropped in this process a
    /// moment ago still holds it while sled's threads wind down; another process
    /// holding it is refused once this runs out.
    pub lock_wait: std::time::Duration,
    /// zstd (level 1) on sled's log, for a new store: 4.7× less disk (bench-store), but
    /// ingest and the policy's writes take up to 2.5× as long. A store keeps the choice
    /// it was created with.
    pub compression: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 256 << 20,
            lock_wait: std::time::Duration::from_secs(5),
            compression: false,
        }
    }
}

/// Whether the sled directory at `path` was created compressed (its `conf` says).
fn stored_compression(path: &Path) -> Option<bool> {
    // The file ends in a binary checksum: read it as bytes.
    let conf = std::fs::read(path.join("conf")).ok()?;
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|l| l.strip_prefix("use_compression:"))
        .map(|v| v.trim() == "true")
}

/// sled reports a held lock only in its message (an `ErrorKind::Other` I/O error).
fn is_lock_held(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// A store in one directory. Cheap to share behind an `Arc`: reads run concurrently,
/// writes take turns.
#[derive(Debug)]
pub struct Store {
    pub(crate) db: sled::Db,
    pub(crate) data: sled::Tree,
    /// One writer at a time, served in arrival order: a fair lock, so a small API
    /// mutation waits for at most the batch or sweep chunk that holds it, never for a
    /// train of batches that keep overtaking it (std's mutex does not queue).
    writer: parking_lot::FairMutex<()>,
    /// Posting-run merges, one at a time.
    pub(crate) merging: Mutex<()>,
    /// Closed by a merge only while it deletes the runs it merged, so a listing never
    /// reads a term half-deleted.
    pub(crate) postings_gate: RwLock<()>,
    /// sled's log file, for the `fdatasync` that makes a commit durable.
    log_file: std::fs::File,
    path: PathBuf,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, &StoreOptions::default())
    }

    pub fn open_with(path: &Path, options: &StoreOptions) -> Result<Store> {
        // Every commit flushes (acknowledged means durable), so sled's own periodic
        // flusher only competes with ingest; throughput mode favours large batches.
        // The background flusher stays on (sled's default period): besides flushing it
        // is what reclaims log segments; every commit flushes and syncs by itself anyway.
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
            // sled fixes compression when a directory is created; follow what it chose.
            .use_compression(stored_compression(path).unwrap_or(options.compression))
            .compression_factor(1);
        let deadline = std::time::Instant::now() + options.lock_wait;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(e) if is_lock_held(&e) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::InUse(path.to_owned()));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let meta = db.open_tree("meta")?;
        let data = db.open_tree("data")?;
        let log_file = std::fs::OpenOptions::new()
            .read(true)
            .open(path.join("db"))
            .map_err(|e| {
                StoreError::Invalid(format!(
                    "cannot open sled's log file in {}: {e}",
                    path.display()
                ))
            })?;
        let store = Store {
            db,
            data,
            writer: parking_lot::FairMutex::new(()),
            merging: Mutex::new(()),
            postings_gate: RwLock::new(()),
            log_file,
            path: path.to_owned(),
        };
        match meta.get(SCHEMA_KEY)? {
            Some(found) if found.as_ref() == STORE_SCHEMA.as_bytes() => {}
            Some(found)
                if found.as_ref() == PREVIOUS_SCHEMA.as_bytes()
                    || found.as_ref() == crate::migrate::MIGRATING.as_bytes() =>
            {
                crate::migrate::from_store_2(&store, &meta)?;
            }
            Some(found) => {
                return Err(StoreError::SchemaMismatch {
                    path: path.to_owned(),
                    found: String::from_utf8_lossy(&found).into_owned(),
                    expected: STORE_SCHEMA.to_owned(),
                })
            }
            None if store.data.is_empty() && store.db.is_empty() => {
                meta.insert(SCHEMA_KEY, STORE_SCHEMA.as_bytes())?;
                store.durable()?;
            }
            None => return Err(StoreError::NotAStore(path.to_owned())),
        }
        crate::siem::backfill(&store, &meta)?;
        store.resume_completions()?;
        Ok(store)
    }

    /// Flushes sled's log and syncs it to the disk.
    pub(crate) fn durable(&self) -> Result<()> {
        self.db.flush()?;
        self.log_file.sync_data().map_err(|e| {
            StoreError::Sled(sled::Error::Io(std::io::Error::new(
                e.kind(),
                format!("syncing the store's log: {e}"),
            )))
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every write so far durable (each commit already does; this is for shutdown).
    pub fn flush(&self) -> Result<()> {
        self.durable()
    }

    /// Bytes sled occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// Sets the stored schema version; only for tests of the mismatch error.
    #[doc(hidden)]
    pub fn overwrite_schema_for_test(&self, version: &str) -> Result<()> {
        self.db
            .open_tree("meta")?
            .insert(SCHEMA_KEY, version.as_bytes())?;
        self.durable()
    }

    pub(crate) fn write_lock(&self) -> parking_lot::FairMutexGuard<'_, ()> {
        // A panic while holding the lock leaves nothing half-written (writes are staged
        // in a Tx until commit); parking_lot's lock is not poisoned by it.
        self.writer.lock()
    }

    pub(crate) fn tx(&self) -> Tx<'_> {
        Tx {
            store: self,
            writes: BTreeMap::new(),
        }
    }

    pub(crate) fn get_json<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.data.get(key)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// One asset as stored, from its host record or its own.
    pub(crate) fn load_asset(&self, tenant: &TenantId, key: &AssetKey) -> Result<Option<Asset>> {
        match key.address() {
            Some(ip) => match self.host_record(tenant, ip)? {
                Some(r) => r.get(key),
                None => Ok(None),
            },
            None => match self.data.get(own_record_key(tenant, key))? {
                Some(bytes) => Ok(Some(Asset::decode(&bytes)?)),
                None => Ok(None),
            },
        }
    }

    pub(crate) fn host_record(
        &self,
        tenant: &TenantId,
        ip: std::net::IpAddr,
    ) -> Result<Option<HostRecord>> {
        match self.data.get(host_record_key(tenant, ip))? {
            Some(bytes) => Ok(Some(HostRecord::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn require_tenant(&self, tenant: &TenantId) -> Result<Tenant> {
        self.get_json(&keys::key(Rec::Tenant, tenant, b""))?
            .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant}")))
    }

    /// Creates a tenant; refuses an id that exists.
    pub fn create_tenant(&self, id: &TenantId, name: &str, now: Millis) -> Result<Tenant> {
        let _w = self.write_lock();
        let key = keys::key(Rec::Tenant, id, b"");
        if self.data.contains_key(&key)? {
            return Err(StoreError::Conflict(format!("tenant {id} exists already")));
        }
        if name.chars().count() > 200 {
            return Err(StoreError::Invalid(
                "tenant name: give 1-200 characters".into(),
            ));
        }
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid(
                "tenant name: give 1-200 characters".into(),
            ));
        }
        let tenant = Tenant {
            id: id.clone(),
            name: name.to_owned(),
            created: now,
        };
        let mut tx = self.tx();
        tx.put_json(key, &tenant)?;
        tx.commit()?;
        Ok(tenant)
    }

    pub fn tenant(&self, id: &TenantId) -> Result<Tenant> {
        self.require_tenant(id)
    }

    pub fn tenants(&self) -> Result<Vec<Tenant>> {
        let mut out = Vec::new();
        for item in self.data.scan_prefix([b'T']) {
            let (_, v) = item?;
            out.push(serde_json::from_slice(&v)?);
        }
        Ok(out)
    }

    /// Registers a scan before its results arrive, with what it will cover and in how
    /// many shards. Registering the same scan again with the same plan is a no-op, so a
    /// coordinator that crashed mid-registration can simply repeat it.
    pub fn begin_scan(
        &self,
        tenant: &TenantId,
        id: &str,
        coverage: Coverage,
        shards: u32,
        purpose: Option<String>,
        now: Millis,
    ) -> Result<Scan> {
        validate_scan_id(id)?;
        if shards == 0 {
            return Err(StoreError::Invalid(
                "a scan needs at least one shard".into(),
            ));
        }
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let key = keys::key(Rec::Scan, tenant, id.as_bytes());
        if let Some(existing) = self.get_json::<Scan>(&key)? {
            if existing.coverage == coverage && existing.shards == shards {
                return Ok(existing);
            }
            return Err(StoreError::Conflict(format!(
                "scan {id} exists already with another plan: give the new scan a new id"
            )));
        }
        let scan = Scan {
            id: id.to_owned(),
            created: now,
            coverage,
            shards,
            shards_done: Default::default(),
            state: ScanState::Running,
            completed: None,
            observations: 0,
            purpose,
            sweep: None,
            silent_hosts: 0,
        };
        let mut tx = self.tx();
        tx.put_json(key, &scan)?;
        tx.commit()?;
        Ok(scan)
    }

    pub fn scan(&self, tenant: &TenantId, id: &str) -> Result<Scan> {
        self.get_json(&keys::key(Rec::Scan, tenant, id.as_bytes()))?
            .ok_or_else(|| StoreError::NotFound(format!("scan {id}")))
    }

    pub fn scans(&self, tenant: &TenantId) -> Result<Vec<Scan>> {
        let mut out = Vec::new();
        for item in self.data.scan_prefix(keys::prefix(Rec::Scan, tenant)) {
            let (_, v) = item?;
            out.push(serde_json::from_slice(&v)?);
        }
        Ok(out)
    }

    /// Stops taking results for a scan. A cancelled scan never marks anything gone:
    /// what it did not reach, it did not cover.
    pub fn cancel_scan(&self, tenant: &TenantId, id: &str) -> Result<Scan> {
        let _w = self.write_lock();
        let key = keys::key(Rec::Scan, tenant, id.as_bytes());
        let mut scan: Scan = self
            .get_json(&key)?
            .ok_or_else(|| StoreError::NotFound(format!("scan {id}")))?;
        match scan.state {
            ScanState::Running if scan.sweep.is_some() => Err(StoreError::Conflict(format!(
                "scan {id} has all its results and is marking what it did not see: it cannot be cancelled"
            ))),
            ScanState::Running => {
                scan.state = ScanState::Cancelled;
                let mut tx = self.tx();
                tx.put_json(key, &scan)?;
                tx.commit()?;
                Ok(scan)
            }
            ScanState::Cancelled => Ok(scan),
            ScanState::Completed => Err(StoreError::Conflict(format!(
                "scan {id} has completed and cannot be cancelled"
            ))),
        }
    }
}

pub(crate) fn validate_scan_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "scan id {id:?}: use 1-64 characters of letters, digits, '-', '_', '.', ':'"
        )))
    }
}

/// Staged writes, read back by later reads of the same transaction, applied as one sled
/// batch and flushed on commit.
pub(crate) struct Tx<'a> {
    store: &'a Store,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Tx<'_> {
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(staged) = self.writes.get(key) {
            return Ok(staged.clone());
        }
        Ok(self.store.data.get(key)?.map(|v| v.to_vec()))
    }

    pub fn get_json<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.get(key)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// One asset as this transaction sees it: the seam every reader of assets goes
    /// through, so the record layout lives in one place (`records`).
    pub fn asset(&self, tenant: &TenantId, key: &AssetKey) -> Result<Option<Asset>> {
        match key.address() {
            Some(ip) => match self.host_record(tenant, ip)? {
                Some(r) => r.get(key),
                None => Ok(None),
            },
            None => match self.get(&own_record_key(tenant, key))? {
                Some(bytes) => Ok(Some(Asset::decode(&bytes)?)),
                None => Ok(None),
            },
        }
    }

    pub fn host_record(
        &self,
        tenant: &TenantId,
        ip: std::net::IpAddr,
    ) -> Result<Option<HostRecord>> {
        match self.get(&host_record_key(tenant, ip))? {
            Some(bytes) => Ok(Some(HostRecord::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Stages an asset into its record (a host's record, or its own).
    pub fn put_asset(&mut self, tenant: &TenantId, asset: &Asset) -> Result<()> {
        match asset.key.address() {
            Some(ip) => {
                let mut record = self.host_record(tenant, ip)?.unwrap_or_default();
                record.set(asset.clone())?;
                self.put(host_record_key(tenant, ip), record.encode()?);
            }
            None => {
                let bytes = asset.encode()?;
                self.put(own_record_key(tenant, &asset.key), bytes);
            }
        }
        Ok(())
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub fn put_json<T: Serialize>(&mut self, key: Vec<u8>, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)?;
        self.put(key, bytes);
        Ok(())
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// Keys (with values) under `prefix`, stored and staged merged, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for item in self.store.data.scan_prefix(prefix) {
            let (k, v) = item?;
            merged.insert(k.to_vec(), Some(v.to_vec()));
        }
        for (k, v) in self.writes.range(prefix.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            merged.insert(k.clone(), v.clone());
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    /// Stored records in `[lo, hi)`, without this transaction's staged writes.
    pub fn store_range(&self, lo: &[u8], hi: &[u8]) -> sled::Iter {
        self.store.data.range(lo.to_vec()..hi.to_vec())
    }

    pub fn commit(self) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (k, v) in self.writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.store.data.apply_batch(batch)?;
        // Acknowledged means durable: nothing returns Ok before the log is on disk.
        self.store.durable()
    }
}
