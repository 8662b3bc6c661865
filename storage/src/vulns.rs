//! The vulnerability data: CVEs from NVD's feeds and CISA's catalogue of known exploited
//! vulnerabilities, imported offline, kept once for all tenants, and read by the policy's
//! `vulnerable-version` rule.
//!
//! It lives in a sled tree of its own (`vulndb`), outside every tenant's keys:
//! - `c<CVE id>` → the CVE (postcard);
//! - `p<vendor:product>\0<CVE id>` → (): the CVEs whose vulnerable configurations name a
//!   product, so a service's evaluation reads only those;
//! - `k<CVE id>` → its KEV entry (postcard);
//! - `m` → [`VulnDbStatus`] (JSON); `i` → an import in progress.
//!
//! An import validates every file before it writes anything: one bad record and nothing
//! is stored. It then writes in chunks (one sled batch of 200k CVEs would hold gigabytes),
//! with `i` set until the last chunk: an interrupted import says so, and running it again
//! completes it, because a CVE replaces the stored one only when its `lastModified` is
//! newer (so re-importing the same or an older feed changes nothing). Finally it queues,
//! in every tenant, the re-evaluation of the services whose CPE names a product whose
//! CVEs changed.

use crate::error::{Result, StoreError};
use crate::keys::{AssetKey, AssetKind, TenantId};
use crate::model::{Asset, AssetStatus, Millis};
use crate::policy::{Expected, PolicySettings, Reach, Rule, Severity};
use crate::postings;
use crate::store::Store;
use aperture_vulndb::matching::{match_cve, Service};
use aperture_vulndb::{assess, Confidence, Cpe, Cve, Feed, KevEntry};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

const TREE: &str = "vulndb";
const CVE: u8 = b'c';
const PRODUCT: u8 = b'p';
const KEV: u8 = b'k';
const META: &[u8] = b"m";
const IN_PROGRESS: &[u8] = b"i";
/// CVEs written per sled batch.
const CHUNK: usize = 2000;
/// CVE ids listed in a finding's evidence at most.
const LISTED: usize = 50;

/// One import at a time per process (a data directory has one process).
static IMPORTING: parking_lot::Mutex<()> = parking_lot::const_mutex(());

/// What the store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VulnDbStatus {
    pub cves: u64,
    pub kev_entries: u64,
    pub imports: u64,
    pub last_import: Option<Millis>,
    /// The newest NVD feed timestamp imported.
    pub nvd_timestamp: Option<String>,
    pub kev_catalog_version: Option<String>,
    /// An import stopped before its end: run it again to complete it.
    #[serde(default)]
    pub interrupted: bool,
}

/// What one import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VulnImport {
    pub files: Vec<ImportedFile>,
    pub cves_added: u64,
    pub cves_updated: u64,
    /// Records already stored with the same or a newer `lastModified`.
    pub cves_unchanged: u64,
    pub kev_added: u64,
    pub kev_updated: u64,
    pub kev_unchanged: u64,
    /// Products (`vendor:product`) whose CVEs changed.
    pub products_changed: u64,
    /// Tenants with services of those products, queued for re-evaluation.
    pub tenants_queued: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportedFile {
    pub name: String,
    /// `nvd` or `kev`.
    pub format: String,
    pub records: u64,
}

fn key(tag: u8, rest: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(rest.len() + 1);
    k.push(tag);
    k.extend_from_slice(rest.as_bytes());
    k
}

fn product_prefix(product: &str) -> Vec<u8> {
    let mut k = key(PRODUCT, product);
    k.push(0);
    k
}

fn product_entry(product: &str, id: &str) -> Vec<u8> {
    let mut k = product_prefix(product);
    k.extend_from_slice(id.as_bytes());
    k
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| StoreError::Corrupt(format!("encoding: {e}")))
}

/// CVEs already read by one policy run, by product: a run evaluates many services of
/// the same few products.
#[derive(Default)]
pub(crate) struct Cache {
    tree: Option<sled::Tree>,
    products: std::collections::HashMap<String, Rc<Vec<Cve>>>,
    kev: Option<Rc<BTreeMap<String, KevEntry>>>,
}

/// The `cpe` index term of an asset: its CPE's `vendor:product`.
pub(crate) fn cpe_term(a: &Asset) -> Option<String> {
    if a.kind != AssetKind::Service {
        return None;
    }
    Cpe::parse(a.fact("cpe")?).ok().map(|c| c.product_key())
}

impl Store {
    fn vulndb(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree(TREE)?)
    }

    pub fn vulndb_status(&self) -> Result<VulnDbStatus> {
        let tree = self.vulndb()?;
        let mut status: VulnDbStatus = match tree.get(META)? {
            Some(v) => serde_json::from_slice(&v)?,
            None => VulnDbStatus::default(),
        };
        status.interrupted = tree.contains_key(IN_PROGRESS)?;
        Ok(status)
    }

    /// Imports feed files (`(name, bytes)`; each an NVD CVE 2.0 feed or a KEV
    /// catalogue, told apart by content). All are validated before anything is written;
    /// a bad one is refused with its name and the record at fault.
    ///
    /// Files are read from `files` one at a time and dropped once parsed; a file that
    /// cannot be read fails the import like a bad one.
    pub fn import_vulndb<I>(&self, files: I, now: Millis) -> Result<VulnImport>
    where
        I: IntoIterator<Item = (String, std::io::Result<Vec<u8>>)>,
    {
        let mut report = VulnImport::default();
        let mut cves: BTreeMap<String, Cve> = BTreeMap::new();
        let mut kev: BTreeMap<String, KevEntry> = BTreeMap::new();
        let mut nvd_timestamp: Option<String> = None;
        let mut catalog: Option<String> = None;
        for (name, bytes) in files {
            let bytes = bytes.map_err(|e| {
                StoreError::Invalid(format!("{name}: cannot read it: {e}; nothing was imported"))
            })?;
            let feed = aperture_vulndb::parse(&bytes)
                .map_err(|e| StoreError::Invalid(format!("{name}: {e}; nothing was imported")))?;
            drop(bytes);
            report.files.push(ImportedFile {
                name,
                format: match feed {
                    Feed::Nvd { .. } => "nvd".into(),
                    Feed::Kev { .. } => "kev".into(),
                },
                records: feed.len() as u64,
            });
            match feed {
                Feed::Nvd {
                    timestamp,
                    cves: list,
                } => {
                    if timestamp > nvd_timestamp {
                        nvd_timestamp = timestamp;
                    }
                    for c in list {
                        match cves.get(&c.id) {
                            Some(have) if have.last_modified >= c.last_modified => {}
                            _ => {
                                cves.insert(c.id.clone(), c);
                            }
                        }
                    }
                }
                Feed::Kev {
                    catalog_version,
                    entries,
                } => {
                    catalog = Some(catalog_version);
                    for e in entries {
                        kev.insert(e.cve_id.clone(), e);
                    }
                }
            }
        }
        let _one = IMPORTING.lock();
        let tree = self.vulndb()?;
        tree.insert(IN_PROGRESS, now.to_be_bytes().to_vec())?;
        let mut changed_products: BTreeSet<String> = BTreeSet::new();
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        for (id, cve) in &cves {
            let old: Option<Cve> = match tree.get(key(CVE, id))? {
                Some(v) => Some(decode(id, &v)?),
                None => None,
            };
            if old
                .as_ref()
                .is_some_and(|o| o.last_modified >= cve.last_modified)
            {
                report.cves_unchanged += 1;
                continue;
            }
            let new_products = cve.products();
            match &old {
                Some(o) => {
                    report.cves_updated += 1;
                    let old_products = o.products();
                    for p in old_products.difference(&new_products) {
                        batch.remove(product_entry(p, id));
                    }
                    changed_products.extend(old_products);
                }
                None => report.cves_added += 1,
            }
            for p in &new_products {
                batch.insert(product_entry(p, id), Vec::new());
            }
            changed_products.extend(new_products);
            batch.insert(key(CVE, id), encode(cve)?);
            pending += 1;
            if pending == CHUNK {
                tree.apply_batch(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        for (id, entry) in &kev {
            let old: Option<KevEntry> = match tree.get(key(KEV, id))? {
                Some(v) => Some(decode(id, &v)?),
                None => None,
            };
            if old.as_ref() == Some(entry) {
                report.kev_unchanged += 1;
                continue;
            }
            if old.is_some() {
                report.kev_updated += 1;
            } else {
                report.kev_added += 1;
            }
            // The KEV flag changes the findings of the products the CVE names.
            match cves.get(id) {
                Some(c) => changed_products.extend(c.products()),
                None => {
                    if let Some(v) = tree.get(key(CVE, id))? {
                        changed_products.extend(decode::<Cve>(id, &v)?.products());
                    }
                }
            }
            batch.insert(key(KEV, id), encode(entry)?);
            pending += 1;
            if pending == CHUNK {
                tree.apply_batch(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        let mut status = self.vulndb_status()?;
        status.cves += report.cves_added;
        status.kev_entries += report.kev_added;
        status.imports += 1;
        status.last_import = Some(now);
        if nvd_timestamp > status.nvd_timestamp {
            status.nvd_timestamp = nvd_timestamp;
        }
        if catalog.is_some() {
            status.kev_catalog_version = catalog;
        }
        status.interrupted = false;
        batch.insert(META, serde_json::to_vec(&status)?);
        batch.remove(IN_PROGRESS);
        tree.apply_batch(batch)?;
        self.durable()?;
        report.products_changed = changed_products.len() as u64;
        report.tenants_queued = self.queue_products(&changed_products)?;
        Ok(report)
    }

    /// Queues, in each tenant with services of the products, their re-evaluation.
    fn queue_products(&self, products: &BTreeSet<String>) -> Result<u64> {
        if products.is_empty() {
            return Ok(0);
        }
        let mut queued = 0;
        for t in self.tenants()? {
            let mut present = Vec::new();
            {
                let _gate = self.postings_gate.read().unwrap_or_else(|p| p.into_inner());
                for p in products {
                    let term = postings::term_prefix(&t.id, "cpe", p);
                    if postings::candidates(&self.data, &term, None)?
                        .next()
                        .is_some()
                    {
                        present.push(p.clone());
                    }
                }
            }
            if present.is_empty() {
                continue;
            }
            let _w = self.write_lock();
            let mut tx = self.tx();
            crate::findings::queue(&mut tx, &t.id, Reach::CpeProducts { products: present })?;
            tx.commit()?;
            queued += 1;
        }
        Ok(queued)
    }

    /// The KEV catalogue (about a thousand entries), read once per `cache`.
    fn kev_entries(&self, cache: &mut Cache) -> Result<Rc<BTreeMap<String, KevEntry>>> {
        if let Some(k) = &cache.kev {
            return Ok(k.clone());
        }
        let mut all = BTreeMap::new();
        for item in self.vulndb()?.scan_prefix([KEV]) {
            let (k, v) = item?;
            let id = String::from_utf8_lossy(k.get(1..).unwrap_or_default()).into_owned();
            let entry: KevEntry = decode(&id, &v)?;
            all.insert(id, entry);
        }
        let all = Rc::new(all);
        cache.kev = Some(all.clone());
        Ok(all)
    }

    /// The CVEs naming a product, decoded, through `cache`.
    fn product_cves(&self, cache: &mut Cache, product: &str) -> Result<Rc<Vec<Cve>>> {
        if let Some(hit) = cache.products.get(product) {
            return Ok(hit.clone());
        }
        let tree = match &cache.tree {
            Some(t) => t.clone(),
            None => {
                let t = self.vulndb()?;
                cache.tree = Some(t.clone());
                t
            }
        };
        let prefix = product_prefix(product);
        let mut list = Vec::new();
        for item in tree.scan_prefix(&prefix) {
            let (k, _) = item?;
            let id =
                String::from_utf8_lossy(k.get(prefix.len()..).unwrap_or_default()).into_owned();
            if let Some(v) = tree.get(key(CVE, &id))? {
                list.push(decode(&id, &v)?);
            }
        }
        let list = Rc::new(list);
        cache.products.insert(product.to_owned(), list.clone());
        Ok(list)
    }

    /// The `vulnerable-version` finding a service deserves, if any.
    pub(crate) fn vulnerable_version(
        &self,
        asset: &Asset,
        settings: &PolicySettings,
        cache: &mut Cache,
    ) -> Result<Option<Expected>> {
        if asset.kind != AssetKind::Service || asset.status == AssetStatus::Absent {
            return Ok(None);
        }
        let Some(cpe) = asset.fact("cpe") else {
            return Ok(None);
        };
        let Some(svc) = Service::from_facts(cpe, asset.fact("version"), asset.fact("os")) else {
            return Ok(None);
        };
        let cves = self.product_cves(cache, &svc.cpe.product_key())?;
        let mut matched = Vec::new();
        for cve in cves.iter() {
            if let Some(d) = match_cve(cve, &svc) {
                matched.push((cve.clone(), d));
            }
        }
        if matched.is_empty() {
            return Ok(None);
        }
        let kev = self.kev_entries(cache)?;
        let pairs: Vec<_> = matched.iter().map(|(c, d)| (c, d.clone())).collect();
        let Some(a) = assess(&svc, &pairs, |id| kev.get(id)) else {
            return Ok(None);
        };
        let severity = match (&a.top, a.severity) {
            (None, _) => settings.severity(Rule::VulnerableVersion),
            (_, aperture_vulndb::Severity::Critical) => Severity::Critical,
            (_, aperture_vulndb::Severity::High) => Severity::High,
            (_, aperture_vulndb::Severity::Medium) => Severity::Medium,
            (_, aperture_vulndb::Severity::Low) => Severity::Low,
        };
        let label = asset.key.to_string();
        let product = asset.fact("product").unwrap_or(&svc.cpe.product);
        let version = asset.fact("version").unwrap_or(&svc.version);
        let mut listed: Vec<String> = a.cves.iter().take(LISTED).cloned().collect();
        if a.cves.len() > LISTED {
            listed.push(format!("and {} more", a.cves.len() - LISTED));
        }
        let mut evidence: BTreeMap<String, String> = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            evidence.insert(k.to_owned(), v);
        };
        put("cves", listed.join(", "));
        put("cve_count", a.cves.len().to_string());
        put("cpe", cpe.to_owned());
        put("version", version.to_owned());
        put("matched_version", svc.version.clone());
        put("kev", (!a.kev.is_empty()).to_string());
        if !a.kev.is_empty() {
            put("kev_cves", a.kev.join(", "));
        }
        let mut title = format!(
            "{label} runs {product} {version}, affected by {} known vulnerabilit{}",
            a.cves.len(),
            if a.cves.len() == 1 { "y" } else { "ies" }
        );
        if let Some((id, s)) = &a.top {
            put("top_cve", id.clone());
            put("cvss", s.score_text());
            put("cvss_version", s.version.as_str().to_owned());
            put("cvss_vector", s.vector.clone());
            if let Some((_, d)) = matched.iter().find(|(c, _)| &c.id == id) {
                put("top_cve_affected", d.range.clone());
            }
            title.push_str(&format!(" (highest: {id}, CVSS {})", s.score_text()));
        }
        if !a.kev.is_empty() {
            title.push_str("; known exploited (CISA KEV)");
        }
        put(
            "confidence",
            match a.confidence {
                Confidence::High => "high".to_owned(),
                Confidence::Lowered => "lowered".to_owned(),
            },
        );
        if !a.caveats.is_empty() {
            put("caveat", a.caveats.join("; "));
        }
        Ok(Some(Expected {
            rule: Rule::VulnerableVersion,
            detail: String::new(),
            severity,
            title,
            evidence,
        }))
    }
}

/// One chunk of the services of a tenant whose CPE names one of `products`, found in the
/// `cpe` postings. `after` holds where it stopped: the product's position (u32) and
/// the last asset key done.
pub(crate) fn reach_page(
    store: &Store,
    tenant: &TenantId,
    products: &[String],
    after: &mut Option<Vec<u8>>,
    chunk: usize,
) -> Result<(Vec<AssetKey>, bool)> {
    let (mut at, mut last): (usize, Option<Vec<u8>>) = match after.as_deref() {
        Some(b) if b.len() >= 4 => {
            let mut n = [0u8; 4];
            n.copy_from_slice(&b[..4]);
            let rest = &b[4..];
            (
                u32::from_be_bytes(n) as usize,
                (!rest.is_empty()).then(|| rest.to_vec()),
            )
        }
        _ => (0, None),
    };
    let mut keys = Vec::new();
    let mut more = false;
    let _gate = store
        .postings_gate
        .read()
        .unwrap_or_else(|p| p.into_inner());
    'products: while let Some(p) = products.get(at) {
        let term = postings::term_prefix(tenant, "cpe", p);
        for k in postings::candidates(&store.data, &term, last.as_deref())? {
            let k = k?;
            if keys.len() == chunk {
                more = true;
                break 'products;
            }
            keys.push(AssetKey::from_bytes(&k)?);
            last = Some(k);
        }
        at += 1;
        last = None;
    }
    let mut next = (at as u32).to_be_bytes().to_vec();
    next.extend_from_slice(last.as_deref().unwrap_or_default());
    *after = Some(next);
    Ok((keys, more))
}
