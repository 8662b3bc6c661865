//! Many tenants in one store: a small tenant timed alone and among them, and big
//! tenants' ingest and listings first and last.

use crate::data::{mix, templates, Layout, Tally, Variant};
use crate::stages::{
    list_latencies, load_average, peak_rss_kib, Common, IngestResult, ListResult, Res, Scanner,
    DAY, EPOCH_MS,
};
use aperture_storage::TenantId;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Many tenants in one store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TenantsResult {
    pub tenants: usize,
    pub tenant_assets: u64,
    pub small_assets: u64,
    /// The small tenant's listings with only itself in the store, then with every
    /// other tenant in it.
    pub small_alone: Vec<ListResult>,
    pub small_among: Vec<ListResult>,
    /// The first big tenant: its first ingest, unchanged rescan and listings right away
    /// (the store holds it and the small one).
    pub first: IngestResult,
    pub first_rescan: IngestResult,
    pub first_lists: Vec<ListResult>,
    /// The last big tenant, ingested into a store holding every other one.
    pub last: IngestResult,
    pub last_rescan: IngestResult,
    pub last_lists: Vec<ListResult>,
    /// First-ingest obs/s of every big tenant, in order.
    pub rates: Vec<f64>,
    pub ingest_s: f64,
    pub observations: u64,
    pub disk: u64,
    pub rss_peak_kib: u64,
    pub cache_mib: u64,
    pub wall_s: f64,
    pub load: (String, String),
}

/// A small tenant, then `tenants` tenants of `tenant_assets` each, in one store.
pub fn tenants_stage(
    common: &Common,
    dir: &Path,
    tenants: usize,
    tenant_assets: usize,
    small_assets: usize,
) -> Res<TenantsResult> {
    let started = Instant::now();
    let load_start = load_average();
    let templates = templates();
    let store = common.open(dir)?;
    let mut rng = mix(common.seed ^ 0x7e4a);
    let mut out = TenantsResult {
        tenants,
        tenant_assets: tenant_assets as u64,
        small_assets: small_assets as u64,
        cache_mib: common.cache_mib,
        ..TenantsResult::default()
    };

    let small = TenantId::new("small")?;
    store.create_tenant(&small, "Small tenant", EPOCH_MS)?;
    let small_layout = Layout::for_assets(small_assets, common.ports_per_host, common.seed ^ 1)?;
    let small_scanner = Scanner {
        store: &store,
        tenant: &small,
        layout: &small_layout,
        templates: &templates,
        batch: common.batch,
    };
    let small_scan = small_scanner.scan("small-1", EPOCH_MS, Variant::Same, None)?;
    out.small_alone = list_latencies(
        &store,
        &small,
        &small_layout,
        &small_scan.tally,
        common,
        &mut rng,
    )?;

    let mut last_layout = None;
    let mut last_tally = Tally::default();
    let ingest_started = Instant::now();
    for i in 0..tenants {
        let tenant = TenantId::new(&format!("t{i:03}"))?;
        store.create_tenant(&tenant, "Benchmark tenant", EPOCH_MS)?;
        // Same address layout in every tenant (tenants are apart by key prefix), other
        // products and versions.
        let layout = Layout::for_assets(
            tenant_assets,
            common.ports_per_host,
            mix(common.seed ^ (i as u64 + 2)),
        )?;
        let scanner = Scanner {
            store: &store,
            tenant: &tenant,
            layout: &layout,
            templates: &templates,
            batch: common.batch,
        };
        let scan = scanner.scan("scan-1", EPOCH_MS, Variant::Same, None)?;
        out.rates.push(scan.result.rate());
        out.observations += scan.result.observations;
        out.ingest_s += scan.result.apply_s;
        if i == 0 {
            out.first = scan.result.clone();
            out.first_rescan = scanner
                .scan("scan-2", EPOCH_MS + DAY, Variant::Same, None)?
                .result;
            out.first_lists =
                list_latencies(&store, &tenant, &layout, &scan.tally, common, &mut rng)?;
        }
        if i + 1 == tenants {
            out.last = scan.result.clone();
            out.last_rescan = scanner
                .scan("scan-2", EPOCH_MS + DAY, Variant::Same, None)?
                .result;
            last_tally = scan.tally;
            last_layout = Some((tenant, layout));
        }
        if i % 10 == 9 {
            eprintln!(
                "bench_store: {} tenants in, {:.0} s",
                i + 1,
                ingest_started.elapsed().as_secs_f64()
            );
        }
    }
    if let Some((tenant, layout)) = &last_layout {
        out.last_lists = list_latencies(&store, tenant, layout, &last_tally, common, &mut rng)?;
    }
    out.small_among = list_latencies(
        &store,
        &small,
        &small_layout,
        &small_scan.tally,
        common,
        &mut rng,
    )?;
    out.disk = store.size_on_disk()?;
    out.rss_peak_kib = peak_rss_kib();
    out.wall_s = started.elapsed().as_secs_f64();
    out.load = (load_start, load_average());
    Ok(out)
}
