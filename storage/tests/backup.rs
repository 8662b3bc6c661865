//! Online backup: exports taken while batches keep arriving are each a consistent copy
//! of one moment, and each restores.

mod common;
use aperture_storage::transfer::ExportLine;
use aperture_storage::*;
use common::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

const SHARDS: u32 = 24;
const PER_SHARD: u32 = 200;
/// Exports taken, after every 16th batch.
const EXPORTS: u32 = 4;

/// Shard `k` of scan `n`: 200 services of its own; rescans (n > 1) change a version
/// on every tenth, and leave out the shard's last service.
fn shard(scan: u32, k: u32) -> Vec<Observation> {
    (0..PER_SHARD)
        .filter(|i| scan == 1 || *i != PER_SHARD - 1)
        .map(|i| {
            let n = k * PER_SHARD + i;
            let ip = format!("198.18.{}.{}", n / 250, n % 250 + 1);
            let version = if scan > 1 && i % 10 == 0 {
                "9.6"
            } else {
                "9.2"
            };
            port(&ip, 22, Some(ssh("OpenSSH", version)))
        })
        .collect()
}

#[test]
fn exports_taken_during_ingest_are_consistent_and_restore() {
    let (_dir, store, t) = fresh();
    let store = Arc::new(store);
    let done = Arc::new(AtomicBool::new(false));
    // The writer waits at a few points until an export has begun there, then goes on
    // at once: each export starts mid-ingest and races the batches after it.
    let export_started = Arc::new(AtomicU32::new(0));
    let progress = Arc::new(AtomicU32::new(0));
    let writer = {
        let (store, t, done) = (store.clone(), t.clone(), done.clone());
        let (export_started, progress) = (export_started.clone(), progress.clone());
        std::thread::spawn(move || {
            let mut applied = 0u32;
            for scan in 1..=3u32 {
                let id = format!("s{scan}");
                let at = T0 + i64::from(scan) * HOUR;
                let coverage = Coverage {
                    targets: vec!["198.18.0.0/16".parse().expect("net")],
                    ports: vec![(22, 22)],
                    probes: ["syn".to_string()].into(),
                    domains: vec![],
                    udp_ports: Vec::new(),
                };
                store
                    .begin_scan(&t, &id, coverage, SHARDS, None, at)
                    .expect("begins");
                for k in 0..SHARDS {
                    let b = batch(&id, k, at + i64::from(k), shard(scan, k));
                    store.apply(&t, &b).expect("applies");
                    applied += 1;
                    progress.store(applied, Ordering::SeqCst);
                    if applied.is_multiple_of(16) && applied / 16 <= EXPORTS {
                        while export_started.load(Ordering::SeqCst) < applied / 16 {
                            std::thread::yield_now();
                        }
                    }
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut exports = Vec::new();
    for n in 1..=EXPORTS {
        while progress.load(Ordering::SeqCst) < 16 * n {
            std::thread::yield_now();
        }
        export_started.store(n, Ordering::SeqCst);
        let mut out = Vec::new();
        store.export_tenant(&t, &mut out).expect("exports");
        exports.push(out);
    }
    writer.join().expect("writer");
    assert!(done.load(Ordering::SeqCst));
    assert!(
        exports.windows(2).all(|w| w[0] != w[1]),
        "each export is a later moment than the one before"
    );
    for (i, export) in exports.iter().enumerate() {
        check_consistent(export, i);
        let target = tempfile::tempdir().expect("tempdir");
        let restored = Store::open(target.path()).expect("opens");
        let summary = restored
            .import_tenant(&mut export.as_slice(), None)
            .expect("restores");
        let restored_t = summary.tenant.expect("tenant");
        let mut again = Vec::new();
        restored
            .export_tenant(&restored_t, &mut again)
            .expect("exports the restored copy");
        assert_eq!(
            lines_without_header(export),
            lines_without_header(&again),
            "export {i}: the restored copy exports the same"
        );
    }
}

fn lines_without_header(export: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(export)
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// One moment: every scan's applied shards have their receipts and nothing more,
/// changes are numbered without gaps, each present service was seen by an applied
/// shard, and the exposure counters match the assets.
fn check_consistent(export: &[u8], i: usize) {
    let mut scans = Vec::new();
    let mut receipts = BTreeSet::new();
    let mut seqs = Vec::new();
    let mut present_services = 0u64;
    let mut day = None;
    for line in String::from_utf8_lossy(export).lines() {
        match serde_json::from_str::<ExportLine>(line).expect("an export line") {
            ExportLine::Scan(s) => scans.push(s),
            ExportLine::Receipt(r) => {
                receipts.insert((r.scan, r.shard));
            }
            ExportLine::Change(c) => seqs.push(c.seq),
            // Unknown counts as exposed: the scan could not tell it is gone.
            ExportLine::Asset(a)
                if a.kind == AssetKind::Service && a.status != AssetStatus::Absent =>
            {
                present_services += 1;
            }
            ExportLine::Day(d) => day = Some(d),
            _ => {}
        }
    }
    let mut want = BTreeSet::new();
    for s in &scans {
        for k in &s.shards_done {
            want.insert((s.id.clone(), *k));
        }
    }
    assert_eq!(
        receipts, want,
        "export {i}: receipts are the applied shards"
    );
    seqs.sort_unstable();
    assert!(
        seqs.iter().enumerate().all(|(n, s)| *s == n as u64),
        "export {i}: change numbers have a gap"
    );
    if let Some(d) = day {
        assert_eq!(d.services, present_services, "export {i}: counters");
    }
}
