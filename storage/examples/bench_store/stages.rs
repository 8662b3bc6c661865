//! The measurements: each stage runs in its own process on a fresh store and prints its
//! figures as JSON on stdout for the driver (`bench_store.rs`) to tabulate.

use crate::busy;
use crate::data::{
    mix, templates, Generator, Layout, Slot, Tally, Variant, COMMON_PRODUCT, FILTER_PORT, PRODUCTS,
    RARE_PRODUCT,
};
use aperture_fingerprints::report::ServiceReport;
use aperture_storage::findings::{NewSanction, SanctionEdit};
use aperture_storage::policy::SanctionMatch;
use aperture_storage::{AssetFilter, AssetKind, Batch, Millis, Store, StoreOptions, TenantId};
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// 2024-01-01T00:00:00Z: a fixed clock keeps runs comparable.
pub const EPOCH_MS: Millis = 1_704_067_200_000;
pub const HOUR: Millis = 3_600_000;
pub const DAY: Millis = 24 * HOUR;

/// What every stage needs to know.
#[derive(Debug, Clone)]
pub struct Common {
    pub batch: usize,
    pub ports_per_host: usize,
    pub cache_mib: u64,
    pub compression: bool,
    pub requests: usize,
    pub page: usize,
    pub seed: u64,
}

impl Common {
    pub fn open(&self, dir: &Path) -> Res<Store> {
        Ok(Store::open_with(
            dir,
            &StoreOptions {
                cache_bytes: self.cache_mib << 20,
                compression: self.compression,
                ..StoreOptions::default()
            },
        )?)
    }
}

/// Latency percentiles of a set of timings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(times: &[Duration]) -> Latency {
        let mut sorted = times.to_vec();
        sorted.sort_unstable();
        Latency {
            n: sorted.len(),
            p50_ms: ms(percentile(&sorted, 0.50)),
            p99_ms: ms(percentile(&sorted, 0.99)),
            max_ms: ms(sorted.last().copied().unwrap_or_default()),
        }
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One scan, as `Store::apply` saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IngestResult {
    pub observations: u64,
    pub changes: u64,
    /// Services the scan saw at another version / did not see.
    pub bumped: u64,
    pub missing: u64,
    pub shards: usize,
    pub apply_s: f64,
    pub generate_s: f64,
    /// CPU time of the process during the scan (sled's threads included).
    pub cpu_s: f64,
    /// Time the applying thread was runnable but had no CPU (other processes had it).
    pub cpu_wait_s: f64,
    pub batches: Latency,
    /// The shard that completes the scan, with its sweep.
    pub last_batch_ms: f64,
}

impl IngestResult {
    pub fn rate(&self) -> f64 {
        self.observations as f64 / self.apply_s.max(1e-9)
    }
}

/// A scan's result with what the concurrent measurements need.
pub struct ScanOut {
    pub result: IngestResult,
    pub tally: Tally,
    /// (start, end) of each shard's apply.
    pub windows: Vec<(Instant, Instant)>,
}

/// Runs scans of one tenant's estate.
pub struct Scanner<'a> {
    pub store: &'a Store,
    pub tenant: &'a TenantId,
    pub layout: &'a Layout,
    pub templates: &'a [Vec<ServiceReport>],
    pub batch: usize,
}

impl Scanner<'_> {
    /// One complete scan in shards of `batch` services; `progress` counts applied shards.
    pub fn scan(
        &self,
        id: &str,
        at: Millis,
        variant: Variant,
        progress: Option<&AtomicUsize>,
    ) -> Res<ScanOut> {
        let services = self.layout.services();
        let shards = services.div_ceil(self.batch);
        self.store.begin_scan(
            self.tenant,
            id,
            self.layout.coverage(),
            u32::try_from(shards)?,
            Some("bench_store".to_owned()),
            at,
        )?;
        let mut generator = Generator::new(self.layout, self.templates, variant);
        let mut batch = Batch {
            range: None,
            scan: id.to_owned(),
            shard: 0,
            at,
            observations: Vec::with_capacity(self.batch),
        };
        let mut result = IngestResult {
            shards,
            ..IngestResult::default()
        };
        let mut times = Vec::with_capacity(shards);
        let mut windows = Vec::with_capacity(shards);
        let (mut apply, mut generate) = (Duration::ZERO, Duration::ZERO);
        let mut last_report = Instant::now();
        let cpu_before = process_cpu_s();
        let mut cpu_wait = 0u64;
        for shard in 0..shards {
            let start = shard * self.batch;
            let end = (start + self.batch).min(services);
            batch.shard = u32::try_from(shard)?;
            let t = Instant::now();
            generator.fill(&mut batch, start, end);
            generate += t.elapsed();
            let (_, wait_before) = thread_sched();
            let t = Instant::now();
            let applied = self.store.apply(self.tenant, &batch)?;
            let done = Instant::now();
            cpu_wait += thread_sched().1.saturating_sub(wait_before);
            windows.push((t, done));
            times.push(done - t);
            apply += done - t;
            if let Some(p) = progress {
                p.fetch_add(1, Ordering::SeqCst);
            }
            if !applied.fresh {
                return Err(format!("{id} shard {shard} was taken as a replay").into());
            }
            if applied.completed_scan != (shard + 1 == shards) {
                return Err(format!("{id} shard {shard}: completed_scan is wrong").into());
            }
            result.observations += applied.observations;
            result.changes += applied.changes;
            if last_report.elapsed() > Duration::from_secs(10) || shard + 1 == shards {
                last_report = Instant::now();
                eprintln!(
                    "bench_store: {} {id}: {end}/{services} services, {:.0} obs/s",
                    self.tenant,
                    result.observations as f64 / apply.as_secs_f64().max(1e-9)
                );
            }
        }
        result.apply_s = apply.as_secs_f64();
        result.cpu_s = process_cpu_s() - cpu_before;
        result.cpu_wait_s = cpu_wait as f64 / 1e9;
        result.generate_s = generate.as_secs_f64();
        result.batches = Latency::of(&times);
        result.last_batch_ms = ms(times.last().copied().unwrap_or_default());
        result.bumped = generator.bumped;
        result.missing = generator.missing;
        Ok(ScanOut {
            result,
            tally: generator.tally,
            windows,
        })
    }
}

/// One listing's page latencies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListResult {
    pub name: String,
    /// Assets the listing holds, where the generator knows it.
    pub matching: Option<u64>,
    /// Every request.
    pub latency: Latency,
    /// Requests during which the thread never waited for a CPU (over 0.1 ms in all):
    /// the store's own latency, without the other processes of a shared machine.
    pub on_cpu: Latency,
    pub items_per_page: f64,
}

/// Times `requests` pages of each listing (unfiltered, CIDR, product common and rare,
/// port) at random cursors. A cursor is the key of the last asset of the previous page,
/// so any asset of the listing is one a client could hold: cursors are drawn from the
/// generator (a random matching asset; 1 in 16 requests is a first page) instead of
/// walking every listing first, which would take minutes at 10M assets.
pub fn list_latencies(
    store: &Store,
    tenant: &TenantId,
    layout: &Layout,
    tally: &Tally,
    common: &Common,
    rng: &mut u64,
) -> Res<Vec<ListResult>> {
    let product = |name: &str| PRODUCTS.iter().position(|p| p.product == name);
    let product_count =
        |name: &str| product(name).map(|i| tally.products.get(&i).copied().unwrap_or_default());
    let mut slots: Vec<Slot> = Vec::with_capacity(layout.ports_per_host);
    type Draw<'d> = Box<dyn FnMut(&mut u64, &mut Vec<Slot>) -> (AssetFilter, Option<String>) + 'd>;
    let first_page = |rng: &mut u64| -> bool {
        *rng = mix(*rng);
        rng.is_multiple_of(16)
    };
    let random_host = |rng: &mut u64| -> usize {
        *rng = mix(*rng);
        (*rng % layout.hosts as u64) as usize
    };
    let slash24 = |h: usize| {
        IpNet::V4(
            Ipv4Net::new(layout.host_ip(h), 24)
                .expect("/24 is a valid prefix")
                .trunc(),
        )
    };
    // A filter on a service field: a random service with it is the cursor.
    let by_slot = |filter: AssetFilter, want: Box<dyn Fn(&Slot) -> bool + 'static>| -> Draw<'_> {
        Box::new(move |rng: &mut u64, slots: &mut Vec<Slot>| {
            let cursor = if first_page(rng) {
                None
            } else {
                layout
                    .random_service(rng, &*want, slots)
                    .map(|(h, s)| layout.service_key(h, s.port).to_string())
            };
            (filter.clone(), cursor)
        })
    };
    let nginx = product(COMMON_PRODUCT).ok_or("no common product")?;
    let rare = product(RARE_PRODUCT).ok_or("no rare product")?;
    let listings: Vec<(&str, Option<u64>, Draw<'_>)> = vec![
        (
            "unfiltered",
            Some(layout.assets() as u64),
            Box::new(|rng: &mut u64, slots: &mut Vec<Slot>| {
                let h = random_host(rng);
                let cursor = if first_page(rng) {
                    None
                } else if rng.is_multiple_of(9) {
                    Some(layout.host_key(h).to_string())
                } else {
                    layout.host_slots(h, slots);
                    let s = slots[((*rng >> 32) % slots.len() as u64) as usize];
                    Some(layout.service_key(h, s.port).to_string())
                };
                (AssetFilter::default(), cursor)
            }),
        ),
        (
            "CIDR /24 (hosts, then services)",
            None,
            Box::new(|rng: &mut u64, slots: &mut Vec<Slot>| {
                let h = random_host(rng);
                *rng = mix(*rng);
                let cursor = match *rng % 4 {
                    0 => None,
                    1 => Some(layout.host_key(h).to_string()),
                    _ => {
                        layout.host_slots(h, slots);
                        let s = slots[((*rng >> 32) % slots.len() as u64) as usize];
                        Some(layout.service_key(h, s.port).to_string())
                    }
                };
                let filter = AssetFilter {
                    net: Some(slash24(h)),
                    ..Default::default()
                };
                (filter, cursor)
            }),
        ),
        (
            "CIDR /24, kind service",
            None,
            Box::new(|rng: &mut u64, slots: &mut Vec<Slot>| {
                let h = random_host(rng);
                let cursor = if first_page(rng) {
                    None
                } else {
                    layout.host_slots(h, slots);
                    let s = slots[((*rng >> 32) % slots.len() as u64) as usize];
                    Some(layout.service_key(h, s.port).to_string())
                };
                let filter = AssetFilter {
                    net: Some(slash24(h)),
                    kind: Some(AssetKind::Service),
                    ..Default::default()
                };
                (filter, cursor)
            }),
        ),
        (
            "product common (nginx, 22%)",
            product_count(COMMON_PRODUCT),
            by_slot(
                AssetFilter {
                    product: Some(COMMON_PRODUCT.to_owned()),
                    ..Default::default()
                },
                Box::new(move |s: &Slot| s.product == nginx),
            ),
        ),
        (
            "product rare (Dropbear sshd, 1%)",
            product_count(RARE_PRODUCT),
            by_slot(
                AssetFilter {
                    product: Some(RARE_PRODUCT.to_owned()),
                    ..Default::default()
                },
                Box::new(move |s: &Slot| s.product == rare),
            ),
        ),
        (
            "port 22",
            tally.ports.get(&FILTER_PORT).copied(),
            by_slot(
                AssetFilter {
                    port: Some(FILTER_PORT),
                    ..Default::default()
                },
                Box::new(|s: &Slot| s.port == FILTER_PORT),
            ),
        ),
    ];
    let mut out = Vec::new();
    for (name, matching, mut draw) in listings {
        let mut times = Vec::with_capacity(common.requests);
        let mut on_cpu = Vec::with_capacity(common.requests);
        let mut items = 0usize;
        for _ in 0..common.requests {
            let (filter, cursor) = draw(rng, &mut slots);
            let (_, wait_before) = thread_sched();
            let t = Instant::now();
            let page = store.list_assets(tenant, &filter, cursor.as_deref(), common.page)?;
            let took = t.elapsed();
            let waited = thread_sched().1.saturating_sub(wait_before);
            times.push(took);
            if waited < 100_000 {
                on_cpu.push(took);
            }
            items += page.items.len();
        }
        let latency = Latency::of(&times);
        eprintln!(
            "bench_store: {tenant} listing {name}: p99 {:.2} ms over {} pages",
            latency.p99_ms, latency.n
        );
        out.push(ListResult {
            name: name.to_owned(),
            matching,
            latency,
            on_cpu: Latency::of(&on_cpu),
            items_per_page: items as f64 / common.requests.max(1) as f64,
        });
    }
    Ok(out)
}

/// What a policy run did and how long it took.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PolicyResult {
    pub seconds: f64,
    /// CPU time of the process meanwhile.
    pub cpu_s: f64,
    pub assets_evaluated: u64,
    pub opened: u64,
    pub updated: u64,
    pub closed: u64,
    pub reopened: u64,
}

impl PolicyResult {
    fn of(run: &aperture_storage::findings::PolicyRun, took: Duration) -> PolicyResult {
        PolicyResult {
            seconds: took.as_secs_f64(),
            cpu_s: 0.0,
            assets_evaluated: run.assets_evaluated,
            opened: run.opened,
            updated: run.updated,
            closed: run.closed,
            reopened: run.reopened,
        }
    }
}

/// A sanction edit over a net of ~1% of the hosts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SanctionResult {
    pub net: String,
    pub hosts_in_net: u64,
    /// Assets (hosts and their services) in the net, as a share of all assets.
    pub asset_share: f64,
    pub run: PolicyResult,
}

/// Everything measured at one size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SizeResult {
    pub assets_asked: u64,
    pub hosts: u64,
    pub services: u64,
    pub nets: Vec<String>,
    pub scans: Vec<IngestResult>,
    pub policy: PolicyResult,
    pub sanction: SanctionResult,
    pub lists: Vec<ListResult>,
    pub disk_after_scan1: u64,
    pub disk_after_policy: u64,
    pub disk_after_scans: u64,
    pub rss_after_scan1_kib: u64,
    pub rss_after_policy_kib: u64,
    pub rss_after_scans_kib: u64,
    pub rss_peak_kib: u64,
    pub cache_mib: u64,
    pub mutations: Option<busy::MutationResult>,
    pub export: Option<busy::ExportResult>,
    pub wall_s: f64,
    pub load: (String, String),
}

/// The 1-minute load average, where /proc has it: other work on the machine skews
/// every figure here, so the report says how busy it was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// Peak resident set of this process so far (VmHWM), KiB.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or_default()
}

/// This thread's time on a CPU and time runnable but waiting for one (other processes
/// had the cores), ns, from /proc/thread-self/schedstat.
pub fn thread_sched() -> (u64, u64) {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u64>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or_default()
}

/// CPU time of the whole process (every thread, sled's included), seconds.
pub fn process_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name: state is field 3, utime 14, stime 15.
            let rest = s.get(s.rfind(')')? + 1..)?;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            // USER_HZ: 100 on every Linux this runs on.
            Some(ticks as f64 / 100.0)
        })
        .unwrap_or_default()
}

/// One tenant at `assets` assets: three scans, the policy, listings, a sanction edit;
/// with `busy`, also API mutations while a scan completes and an export while ingest
/// runs.
pub fn size_stage(common: &Common, dir: &Path, assets: usize, busy: bool) -> Res<SizeResult> {
    let started = Instant::now();
    let load_start = load_average();
    let layout = Layout::for_assets(assets, common.ports_per_host, common.seed)?;
    let templates = templates();
    let store = common.open(dir)?;
    let tenant = TenantId::new("bench")?;
    store.create_tenant(&tenant, "Storage benchmark", EPOCH_MS)?;
    let scanner = Scanner {
        store: &store,
        tenant: &tenant,
        layout: &layout,
        templates: &templates,
        batch: common.batch,
    };
    let mut out = SizeResult {
        assets_asked: assets as u64,
        hosts: layout.hosts as u64,
        services: layout.services() as u64,
        nets: layout.nets().iter().map(|n| n.to_string()).collect(),
        cache_mib: common.cache_mib,
        ..SizeResult::default()
    };

    let first = scanner.scan("bench-1", EPOCH_MS, Variant::Same, None)?;
    let (hosts_now, services_now) = store.exposed_now(&tenant)?;
    if (hosts_now, services_now) != (out.hosts, out.services) {
        return Err(format!(
            "after the first ingest the store counts {hosts_now} hosts and {services_now} \
             services; the estate has {} and {}",
            out.hosts, out.services
        )
        .into());
    }
    out.disk_after_scan1 = store.size_on_disk()?;
    out.rss_after_scan1_kib = peak_rss_kib();
    eprintln!("bench_store: {tenant}: run_policy after the first ingest");
    let cpu = process_cpu_s();
    let t = Instant::now();
    let run = store.run_policy(&tenant, EPOCH_MS + HOUR)?;
    out.policy = PolicyResult::of(&run, t.elapsed());
    out.policy.cpu_s = process_cpu_s() - cpu;
    out.disk_after_policy = store.size_on_disk()?;
    out.rss_after_policy_kib = peak_rss_kib();

    let second = scanner.scan("bench-2", EPOCH_MS + DAY, Variant::Same, None)?;
    if second.result.changes != 0 {
        return Err(format!(
            "the unchanged rescan wrote {} change events; it must write none",
            second.result.changes
        )
        .into());
    }
    let third = scanner.scan("bench-3", EPOCH_MS + 2 * DAY, Variant::Bumped, None)?;
    out.disk_after_scans = store.size_on_disk()?;
    out.rss_after_scans_kib = peak_rss_kib();
    out.scans = vec![first.result, second.result, third.result];

    let mut rng = mix(common.seed ^ 0x1157);
    out.lists = list_latencies(&store, &tenant, &layout, &first.tally, common, &mut rng)?;

    let (net, held) = layout.net_with_share(0.01);
    eprintln!("bench_store: {tenant}: sanction over {net} ({held} hosts)");
    let t = Instant::now();
    let (_, run) = store.apply_sanction_edit(
        &tenant,
        SanctionEdit::Create(NewSanction {
            matches: SanctionMatch {
                net: Some(IpNet::V4(net)),
                ..Default::default()
            },
            owner: "bench".to_owned(),
            reason: "benchmark: ~1% of hosts".to_owned(),
            ticket: None,
            expires: None,
        }),
        "bench_store",
        EPOCH_MS + 2 * DAY + HOUR,
    )?;
    out.sanction = SanctionResult {
        net: net.to_string(),
        hosts_in_net: held as u64,
        asset_share: held as f64 / layout.hosts as f64,
        run: PolicyResult::of(&run, t.elapsed()),
    };

    if busy {
        out.mutations = Some(busy::mutations_while_sweeping(&scanner, &layout)?);
        out.export = Some(busy::export_while_ingesting(&scanner)?);
    }
    out.rss_peak_kib = peak_rss_kib();
    out.wall_s = started.elapsed().as_secs_f64();
    out.load = (load_start, load_average());
    Ok(out)
}
