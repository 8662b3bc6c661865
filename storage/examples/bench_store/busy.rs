//! The busy measurements, at the largest size: API mutations while a scan completes,
//! and an online export while ingest runs.

use crate::data::{mix, Layout, Variant};
use crate::stages::{ms, IngestResult, Latency, Res, Scanner, DAY, EPOCH_MS};
use aperture_storage::access::AuditRecord;
use aperture_storage::findings::{NewSanction, SanctionEdit};
use aperture_storage::policy::SanctionMatch;
use aperture_storage::{Store, TenantId};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// API clients making mutations while a scan completes, and each one's mean think time
/// between calls: ~50 calls/s in all, a busy API, not a flood that would keep the writer
/// from the scan.
const CLIENTS: usize = 4;
const THINK_TIME: Duration = Duration::from_millis(80);
/// Mutations timed on the idle store, for comparison.
const IDLE_MUTATIONS: usize = 60;
/// Shards the ingest thread applies before the export starts.
const SHARDS_BEFORE_EXPORT: usize = 3;

/// API mutations while a scan runs and completes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MutationResult {
    /// On the idle store, before the scan.
    pub idle: Latency,
    /// While the scan's ordinary shards applied.
    pub shards: Latency,
    /// Of those, mutations a shard overtook (it asked for the writer after the mutation
    /// did and got it first), and the most shards that overtook one mutation.
    pub overtaken: usize,
    pub most_overtakes: usize,
    /// While the final shard applied and its sweep marked the unseen services gone.
    pub sweep: Latency,
    /// Of those, mutations that saw more than one sweep chunk commit while they waited,
    /// and the most chunks that went first.
    pub sweep_overtaken: usize,
    pub sweep_most_overtakes: usize,
    /// Sweep chunk commits seen, and the time between two (a chunk's hold, give or take
    /// the 2 ms of polling and what ran between chunks).
    pub sweep_chunks: usize,
    pub chunk_interval: Latency,
    /// The same, per kind of mutation.
    pub sweep_by_kind: BTreeMap<String, Latency>,
    pub scan: IngestResult,
    pub final_shard_s: f64,
    /// Host records the sweep read, and its chunks (of `SWEEP_CHUNK` = 2048 records).
    pub swept_hosts: u64,
}

/// Online backup: an export while ingest runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportResult {
    pub seconds: f64,
    pub lines: u64,
    pub bytes: u64,
    /// Shards applied (completed) while the export ran.
    pub shards_during: usize,
    /// The longest shard apply that overlapped the export.
    pub longest_overlapping_ms: f64,
    /// Shard applies that did not overlap it.
    pub others: Latency,
    /// The ingest had shards left when the export started (else nothing was measured).
    pub overlapped: bool,
    pub scan: IngestResult,
}

/// One small API mutation, round-robin over three kinds.
struct Mutator<'a> {
    store: &'a Store,
    tenant: &'a TenantId,
    layout: &'a Layout,
    client: usize,
    n: usize,
    /// The tiny sanction created last, deleted by the next sanction edit.
    sanction: Option<String>,
}

const MUTATION_KINDS: [&str; 3] = ["create_tenant", "audit", "apply_sanction_edit (1 host)"];

impl Mutator<'_> {
    fn one(&mut self) -> Res<(&'static str, Duration)> {
        let i = self.n;
        self.n += 1;
        let kind = MUTATION_KINDS[i % 3];
        let now = EPOCH_MS + 3 * DAY;
        let t = Instant::now();
        match i % 3 {
            0 => {
                let id = TenantId::new(&format!("m{}x{i}", self.client))?;
                self.store.create_tenant(&id, "mutation", now)?;
            }
            1 => {
                self.store.audit(AuditRecord {
                    seq: 0,
                    at: now,
                    actor: "bench_store".to_owned(),
                    role: None,
                    tenant: Some(self.tenant.clone()),
                    action: "POST /v1/bench".to_owned(),
                    status: 200,
                    outcome: "ok".to_owned(),
                    source: "bench_store".to_owned(),
                })?;
            }
            _ => {
                let edit = match self.sanction.take() {
                    Some(id) => SanctionEdit::Delete { id },
                    None => {
                        let h = (mix(i as u64) % self.layout.hosts as u64) as usize;
                        let ip = IpAddr::V4(self.layout.host_ip(h));
                        SanctionEdit::Create(NewSanction {
                            matches: SanctionMatch {
                                net: Some(IpNet::from(ip)),
                                ..Default::default()
                            },
                            owner: "bench".to_owned(),
                            reason: "benchmark: one host".to_owned(),
                            ticket: None,
                            expires: None,
                        })
                    }
                };
                let (created, _) =
                    self.store
                        .apply_sanction_edit(self.tenant, edit, "bench_store", now)?;
                self.sanction = created.map(|s| s.id);
            }
        }
        Ok((kind, t.elapsed()))
    }
}

/// One mutation as its client saw it.
struct Timed {
    kind: &'static str,
    called: Instant,
    done: Instant,
}

/// One API client: waits a random think time (exponential, so that calls do not fall
/// into step with the shards), makes a mutation, again, until `stop` or `limit` calls.
fn run_client(
    mutator: &mut Mutator<'_>,
    stop: &AtomicBool,
    limit: usize,
    mut rng: u64,
) -> Res<Vec<Timed>> {
    let mut log = Vec::new();
    while !stop.load(Ordering::SeqCst) && log.len() < limit {
        rng = mix(rng);
        let u = (rng >> 11) as f64 / (1u64 << 53) as f64;
        std::thread::sleep(THINK_TIME.mul_f64(-(1.0 - u).ln()));
        let called = Instant::now();
        let (kind, _) = mutator.one()?;
        log.push(Timed {
            kind,
            called,
            done: Instant::now(),
        });
    }
    Ok(log)
}

/// A rescan that leaves ~10% of services unseen, with another thread making small API
/// mutations throughout; the final shard's sweep marks the unseen services gone in
/// chunks, each holding the writer. A third thread watches the scan's sweep cursor (a
/// lock-free read) to see when each chunk commits.
pub fn mutations_while_sweeping(scanner: &Scanner<'_>, layout: &Layout) -> Res<MutationResult> {
    let mut mutators: Vec<Mutator<'_>> = (0..CLIENTS)
        .map(|client| Mutator {
            store: scanner.store,
            tenant: scanner.tenant,
            layout,
            client,
            n: client,
            sanction: None,
        })
        .collect();
    let idle = run_client(
        &mut mutators[0],
        &AtomicBool::new(false),
        IDLE_MUTATIONS,
        mix(0x4d75_7461),
    )?;
    eprintln!("bench_store: rescan leaving 10% unseen, with API mutations alongside");
    let stop = AtomicBool::new(false);
    let scan_id = "bench-4";
    let (scan, log, chunks) = std::thread::scope(|s| -> Res<_> {
        let stop = &stop;
        let clients: Vec<_> = mutators
            .iter_mut()
            .enumerate()
            .map(|(c, m)| s.spawn(move || run_client(m, stop, usize::MAX, mix(c as u64 + 7))))
            .collect();
        let watcher = s.spawn(|| -> Res<Vec<Instant>> {
            let mut commits = Vec::new();
            let mut last = None;
            while !stop.load(Ordering::SeqCst) {
                if let Ok(scan) = scanner.store.scan(scanner.tenant, scan_id) {
                    let now = scan.sweep.map(|w| (w.net, w.after));
                    if now != last && last.is_some() {
                        commits.push(Instant::now());
                    }
                    last = now;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(commits)
        });
        let scan = scanner.scan(scan_id, EPOCH_MS + 3 * DAY, Variant::TenPercentUnseen, None);
        stop.store(true, Ordering::SeqCst);
        let mut log = Vec::new();
        for c in clients {
            log.extend(c.join().map_err(|_| "a mutating thread panicked")??);
        }
        let chunks = watcher
            .join()
            .map_err(|_| "the watching thread panicked")??;
        Ok((scan?, log, chunks))
    })?;
    let (final_start, final_end) = *scan.windows.last().ok_or("the scan had no shards")?;
    let latency = |t: &Timed| t.done - t.called;
    let mut shards = Vec::new();
    let mut sweep = Vec::new();
    let mut by_kind: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let (mut overtaken, mut most_overtakes) = (0, 0);
    let (mut sweep_overtaken, mut sweep_most) = (0, 0);
    for t in &log {
        if t.called < final_start {
            shards.push(latency(t));
            // Shards that called `apply` after this mutation was called and were done
            // before it: they got the writer first.
            let overtakes = scan
                .windows
                .iter()
                .filter(|(a, b)| *a > t.called && *b < t.done)
                .count();
            overtaken += usize::from(overtakes > 0);
            most_overtakes = most_overtakes.max(overtakes);
        } else if t.called < final_end {
            sweep.push(latency(t));
            by_kind
                .entry(t.kind.to_owned())
                .or_default()
                .push(latency(t));
            // The chunk holding the writer when it was called commits while it waits;
            // any further commit took the writer first.
            let commits = chunks
                .iter()
                .filter(|c| **c > t.called && **c < t.done)
                .count();
            let overtakes = commits.saturating_sub(1);
            sweep_overtaken += usize::from(overtakes > 0);
            sweep_most = sweep_most.max(overtakes);
        }
    }
    let holds: Vec<Duration> = chunks.windows(2).map(|w| w[1] - w[0]).collect();
    Ok(MutationResult {
        idle: Latency::of(&idle.iter().map(latency).collect::<Vec<_>>()),
        shards: Latency::of(&shards),
        overtaken,
        most_overtakes,
        sweep: Latency::of(&sweep),
        sweep_overtaken,
        sweep_most_overtakes: sweep_most,
        sweep_chunks: chunks.len(),
        chunk_interval: Latency::of(&holds),
        sweep_by_kind: by_kind
            .into_iter()
            .map(|(k, v)| (k, Latency::of(&v)))
            .collect(),
        final_shard_s: (final_end - final_start).as_secs_f64(),
        swept_hosts: layout.hosts as u64,
        scan: scan.result,
    })
}

/// Counts what the export writes and drops it: the export's cost is the store's reading
/// and encoding (what holds the writer), not this machine's disk.
struct CountingSink {
    bytes: u64,
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `export_tenant` of the tenant while another thread ingests a rescan of it.
pub fn export_while_ingesting(scanner: &Scanner<'_>) -> Res<ExportResult> {
    eprintln!("bench_store: export_tenant while a rescan ingests");
    let progress = AtomicUsize::new(0);
    let (scan, export) = std::thread::scope(|s| -> Res<_> {
        let ingest = s.spawn(|| {
            scanner.scan(
                "bench-5",
                EPOCH_MS + 4 * DAY,
                Variant::TenPercentUnseen,
                Some(&progress),
            )
        });
        while progress.load(Ordering::SeqCst) < SHARDS_BEFORE_EXPORT && !ingest.is_finished() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut sink = CountingSink { bytes: 0 };
        let start = Instant::now();
        let exported = scanner.store.export_tenant(scanner.tenant, &mut sink);
        let end = Instant::now();
        let scan = ingest.join().map_err(|_| "the ingest thread panicked")??;
        Ok((scan, (exported?, sink.bytes, start, end)))
    })?;
    let (lines, bytes, start, end) = export;
    let mut others = Vec::new();
    let mut longest = Duration::ZERO;
    let mut during = 0;
    for &(a, b) in &scan.windows {
        if b > start && a < end {
            longest = longest.max(b - a);
        } else {
            others.push(b - a);
        }
        if b > start && b < end {
            during += 1;
        }
    }
    let overlapped = scan.windows.last().is_some_and(|w| w.1 > start);
    Ok(ExportResult {
        seconds: (end - start).as_secs_f64(),
        lines,
        bytes,
        shards_during: during,
        longest_overlapping_ms: ms(longest),
        others: Latency::of(&others),
        overlapped,
        scan: scan.result,
    })
}
