//! Storage benchmark: ingest throughput, rescan throughput, list-page latency and disk
//! use of the sled store, on synthetic service observations. Used by scripts/bench-store.
//!
//!     bench_store [--observations N] [--batch B] [--dir DIR] [--keep] ...
//!
//! The targets are 198.18.0.0/15 addresses (the benchmarking range): nothing is ever
//! contacted, the addresses only shape the keys. Observations are generated one batch
//! at a time, deterministically from `--seed`, so every scan re-creates the same facts
//! without holding N observations in memory. Only `Store::apply` and
//! `Store::list_assets` are timed; generation is reported apart.
//!
//! Markdown goes to stdout, progress to stderr.

// The service binary uses the same allocator: sled's copy-on-write leaves make glibc's
// malloc the hot spot (40% of cycles in a profile of this benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use aperture_fingerprints::identify::RiskClass;
use aperture_fingerprints::report::{GrabStats, ServiceReport};
use aperture_fingerprints::session::Banner;
use aperture_fingerprints::{PortObservation, PortState, Probe, Proto, Reason};
use aperture_storage::{
    AssetFilter, AssetKey, AssetKind, Batch, ChangeKind, Coverage, Millis, Observation, Store,
    StoreOptions, TenantId,
};
use clap::Parser;
use ipnet::{IpNet, Ipv4Net};
use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

type Res<T> = Result<T, Box<dyn Error>>;

/// 198.18.0.0/15 holds this many addresses; hosts beyond it would leave the range.
const RANGE_ADDRESSES: usize = 1 << 17;
const RANGE_BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);
/// Odd, so multiplying by it permutes the range: hosts land scattered over the /15
/// (and batches write all over the key space) as a randomised scanner's results do.
const ADDRESS_STRIDE: u32 = 0x9e37_79b1;
/// 2024-01-01T00:00:00Z: a fixed clock keeps runs comparable.
const EPOCH_MS: Millis = 1_704_067_200_000;
const TARGET_FIRST_INGEST: f64 = 200_000.0;
const TARGET_RESCAN: f64 = 500_000.0;
const TARGET_P99_MS: f64 = 20.0;

#[derive(Debug, Parser)]
#[command(about = "Benchmark the sled-backed asset store on synthetic observations")]
struct Args {
    /// Service observations per scan.
    #[arg(long, default_value_t = 1_000_000)]
    observations: usize,
    /// Observations per shard (one `Store::apply` each).
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Store directory: removed first (only if empty or a sled store) and at the end.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Leave the store directory in place.
    #[arg(long)]
    keep: bool,
    /// Open ports per host; 198.18.0.0/15 holds 131,072 hosts, so 1M services need ≥ 8.
    #[arg(long, default_value_t = 8)]
    ports_per_host: usize,
    /// Timed list requests per filter.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Items per list page.
    #[arg(long, default_value_t = 100)]
    page: usize,
    /// Seconds each listing may spend walking, and again sampling, before it stops short.
    #[arg(long, default_value_t = 60)]
    list_budget: u64,
    /// sled page cache (StoreOptions::cache_bytes), MiB.
    #[arg(long, default_value_t = 256)]
    cache_mib: u64,
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
}

fn main() {
    let args = Args::parse();
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("aperture-bench-store"));
    if let Err(e) = prepare_dir(&dir) {
        // Nothing of ours is in the directory yet: it is left exactly as found.
        eprintln!("bench_store: {e}");
        std::process::exit(1);
    }
    let result = run(&args, &dir);
    if !args.keep && dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("bench_store: cannot remove {}: {e}", dir.display());
        }
    }
    if let Err(e) = result {
        eprintln!("bench_store: {e}");
        std::process::exit(1);
    }
}

/// Removes a previous run's store. Anything else in the way is refused rather than
/// deleted: `--dir` is user input and `remove_dir_all` does not forgive typos.
fn prepare_dir(dir: &Path) -> Res<()> {
    if !dir.exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(dir)?.next().is_none();
    if !empty && !dir.join("conf").is_file() {
        return Err(format!(
            "{} exists and is not a sled store: give an empty or new --dir",
            dir.display()
        )
        .into());
    }
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

/// One product as the grabber would identify it.
struct Product {
    service: &'static str,
    product: &'static str,
    vendor: &'static str,
    protocol: &'static str,
    risk: RiskClass,
    /// Share of services, per mille; the table sums to 1000.
    share: u32,
    /// Where it usually listens, in order of preference.
    ports: &'static [u16],
    versions: &'static [&'static str],
    /// `{v}` is replaced by the version.
    banner: &'static str,
    cpe: &'static str,
    os: Option<&'static str>,
    cleartext_auth: bool,
}

/// Roughly the mix an internet-facing estate shows: web and ssh dominate, a long tail
/// of mail, databases and file transfer, and one rare product for a selective filter.
const PRODUCTS: &[Product] = &[
    Product {
        service: "http",
        product: "nginx",
        vendor: "F5",
        protocol: "http",
        risk: RiskClass::Web,
        share: 220,
        ports: &[80, 443, 8080, 8443],
        versions: &["1.18.0", "1.22.1", "1.24.0", "1.26.2"],
        banner: "HTTP/1.1 200 OK\\r\\nServer: nginx/{v}\\r\\nContent-Type: text/html",
        cpe: "cpe:/a:f5:nginx:",
        os: None,
        cleartext_auth: false,
    },
    Product {
        service: "ssh",
        product: "OpenSSH",
        vendor: "OpenBSD",
        protocol: "ssh",
        risk: RiskClass::RemoteAdministration,
        share: 200,
        ports: &[22, 2222],
        versions: &["8.2p1", "8.9p1", "9.2p1", "9.6p1"],
        banner: "SSH-2.0-OpenSSH_{v}",
        cpe: "cpe:/a:openbsd:openssh:",
        os: Some("Linux"),
        cleartext_auth: false,
    },
    Product {
        service: "http",
        product: "Apache httpd",
        vendor: "Apache",
        protocol: "http",
        risk: RiskClass::Web,
        share: 180,
        ports: &[80, 443, 8080],
        versions: &["2.4.41", "2.4.52", "2.4.57", "2.4.62"],
        banner: "HTTP/1.1 200 OK\\r\\nServer: Apache/{v} (Ubuntu)\\r\\nContent-Type: text/html",
        cpe: "cpe:/a:apache:http_server:",
        os: Some("Linux"),
        cleartext_auth: false,
    },
    Product {
        service: "http",
        product: "Microsoft IIS httpd",
        vendor: "Microsoft",
        protocol: "http",
        risk: RiskClass::Web,
        share: 80,
        ports: &[80, 443],
        versions: &["8.5", "10.0"],
        banner: "HTTP/1.1 200 OK\\r\\nServer: Microsoft-IIS/{v}\\r\\nX-Powered-By: ASP.NET",
        cpe: "cpe:/a:microsoft:internet_information_services:",
        os: Some("Windows"),
        cleartext_auth: false,
    },
    Product {
        service: "smtp",
        product: "Postfix smtpd",
        vendor: "Postfix",
        protocol: "smtp",
        risk: RiskClass::Mail,
        share: 70,
        ports: &[25, 587],
        versions: &["3.5.18", "3.7.11", "3.8.6"],
        banner: "220 mail.example.test ESMTP Postfix ({v})",
        cpe: "cpe:/a:postfix:postfix:",
        os: Some("Linux"),
        cleartext_auth: false,
    },
    Product {
        service: "mysql",
        product: "MySQL",
        vendor: "Oracle",
        protocol: "mysql",
        risk: RiskClass::Database,
        share: 60,
        ports: &[3306],
        versions: &["5.7.44", "8.0.36", "8.0.39"],
        banner: "{v}-0ubuntu0.22.04.1",
        cpe: "cpe:/a:oracle:mysql:",
        os: Some("Linux"),
        cleartext_auth: false,
    },
    Product {
        service: "smtp",
        product: "Exim smtpd",
        vendor: "Exim",
        protocol: "smtp",
        risk: RiskClass::Mail,
        share: 50,
        ports: &[25, 465],
        versions: &["4.95", "4.96", "4.97"],
        banner: "220 mx.example.test ESMTP Exim {v}",
        cpe: "cpe:/a:exim:exim:",
        os: Some("Linux"),
        cleartext_auth: false,
    },
    Product {
        service: "imap",
        product: "Dovecot imapd",
        vendor: "Dovecot",
        protocol: "imap",
        risk: RiskClass::Mail,
        share: 50,
        ports: &[143, 993],
        versions: &["2.3.16", "2.3.19", "2.3.21"],
        banner: "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.",
        cpe: "cpe:/a:dovecot:dovecot:",
        os: Some("Linux"),
        cleartext_auth: true,
    },
    Product {
        service: "postgresql",
        product: "PostgreSQL",
        vendor: "PostgreSQL",
        protocol: "postgresql",
        risk: RiskClass::Database,
        share: 30,
        ports: &[5432],
        versions: &["13.14", "15.6", "16.2"],
        banner: "SFATAL VFATAL C28000 Mno pg_hba.conf entry for host (PostgreSQL {v})",
        cpe: "cpe:/a:postgresql:postgresql:",
        os: None,
        cleartext_auth: false,
    },
    Product {
        service: "ftp",
        product: "vsftpd",
        vendor: "vsftpd",
        protocol: "ftp",
        risk: RiskClass::FileTransfer,
        share: 30,
        ports: &[21],
        versions: &["3.0.3", "3.0.5"],
        banner: "220 (vsFTPd {v})",
        cpe: "cpe:/a:beasts:vsftpd:",
        os: Some("Unix"),
        cleartext_auth: true,
    },
    Product {
        service: "redis",
        product: "Redis key-value store",
        vendor: "Redis",
        protocol: "redis",
        risk: RiskClass::Cache,
        share: 20,
        ports: &[6379],
        versions: &["6.2.14", "7.0.15", "7.2.4"],
        banner: "$3500\\r\\n# Server\\r\\nredis_version:{v}\\r\\nredis_mode:standalone",
        cpe: "cpe:/a:redis:redis:",
        os: None,
        cleartext_auth: false,
    },
    Product {
        service: "ssh",
        product: "Dropbear sshd",
        vendor: "Matt Johnston",
        protocol: "ssh",
        risk: RiskClass::RemoteAdministration,
        share: 10,
        ports: &[22, 2222],
        versions: &["2020.81", "2022.83"],
        banner: "SSH-2.0-dropbear_{v}",
        cpe: "cpe:/a:matt_johnston:dropbear_ssh_server:",
        os: Some("Linux"),
        cleartext_auth: false,
    },
];

/// Filters of the latency runs: the most common product and the rare one.
const COMMON_PRODUCT: &str = "nginx";
const RARE_PRODUCT: &str = "Dropbear sshd";
const FILTER_PORT: u16 = 22;
/// Where a host's service goes when its product's usual ports are taken on that host.
const SPARE_PORT_BASE: u16 = 10_000;

/// The service reports a grab would produce, one per (product, version), cloned into
/// observations so that generating a batch formats nothing.
fn templates() -> Vec<Vec<ServiceReport>> {
    PRODUCTS
        .iter()
        .map(|p| {
            p.versions
                .iter()
                .map(|v| {
                    let mut fields = BTreeMap::new();
                    fields.insert("version".to_owned(), (*v).to_owned());
                    ServiceReport {
                        service: Some(p.service.to_owned()),
                        product: Some(p.product.to_owned()),
                        version: Some((*v).to_owned()),
                        cpe: Some(format!("{}{v}", p.cpe)),
                        vendor: Some(p.vendor.to_owned()),
                        os: p.os.map(str::to_owned),
                        risk: Some(p.risk),
                        cleartext_auth: p.cleartext_auth,
                        confidence: Some(90),
                        rule: Some(format!("builtin:{}", p.protocol)),
                        banner: Some(Banner {
                            protocol: p.protocol.to_owned(),
                            text: p.banner.replace("{v}", v),
                            fields,
                            starttls: match p.protocol {
                                "smtp" | "imap" | "ftp" => Some(true),
                                _ => None,
                            },
                        }),
                        tls: None,
                        certificate: Vec::new(),
                        http: None,
                        grab: GrabStats {
                            connections: 1,
                            silent: false,
                            millis: 40,
                        },
                    }
                })
                .collect()
        })
        .collect()
}

/// SplitMix64: deterministic per (host, slot) without a dependency or any state.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    port: u16,
    product: usize,
    version: usize,
    /// Scan 3 bumps this service's version.
    bumped: bool,
}

/// Where the synthetic services are: host `h` has `ports_per_host` services.
struct Layout {
    observations: usize,
    ports_per_host: usize,
    hosts: usize,
    seed: u64,
}

impl Layout {
    fn host_ip(&self, h: usize) -> Ipv4Addr {
        let offset = (h as u32).wrapping_mul(ADDRESS_STRIDE) & (RANGE_ADDRESSES as u32 - 1);
        Ipv4Addr::from(RANGE_BASE + offset)
    }

    fn host_slots(&self, h: usize, out: &mut Vec<Slot>) {
        out.clear();
        for slot in 0..self.ports_per_host {
            let r = mix(self.seed ^ ((h as u64) << 16) ^ slot as u64);
            let pick = (r & 0xffff) as u32 % 1000;
            let mut acc = 0;
            let product = PRODUCTS
                .iter()
                .position(|p| {
                    acc += p.share;
                    pick < acc
                })
                .unwrap_or(0);
            let p = &PRODUCTS[product];
            let port = p
                .ports
                .iter()
                .copied()
                .find(|port| out.iter().all(|s| s.port != *port))
                .unwrap_or(SPARE_PORT_BASE + slot as u16);
            out.push(Slot {
                port,
                product,
                version: ((r >> 16) & 0xffff) as usize % p.versions.len(),
                bumped: (r >> 32).is_multiple_of(100),
            });
        }
    }

    fn coverage(&self) -> Coverage {
        let mut ports: BTreeSet<u16> = PRODUCTS.iter().flat_map(|p| p.ports).copied().collect();
        ports.extend((0..self.ports_per_host as u16).map(|s| SPARE_PORT_BASE + s));
        Coverage {
            targets: vec![IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from(RANGE_BASE), 15).expect("/15 is a valid prefix"),
            )],
            ports: ports.into_iter().map(|p| (p, p)).collect(),
            probes: ["syn".to_owned(), "grab".to_owned()].into(),
            domains: Vec::new(),
        }
    }
}

/// Batch generator: walks observations in host order, one host's layout at a time.
struct Generator<'a> {
    layout: &'a Layout,
    templates: &'a [Vec<ServiceReport>],
    slots: Vec<Slot>,
    slots_host: Option<usize>,
}

impl Generator<'_> {
    /// Refills `batch` with observations `start..end`; returns how many were bumped.
    fn fill(&mut self, batch: &mut Batch, start: usize, end: usize, bump: bool) -> u64 {
        batch.observations.clear();
        let timestamp = UNIX_EPOCH + Duration::from_millis(batch.at as u64);
        let mut bumped = 0;
        for j in start..end {
            let h = j / self.layout.ports_per_host;
            if self.slots_host != Some(h) {
                self.layout.host_slots(h, &mut self.slots);
                self.slots_host = Some(h);
            }
            let s = self.slots[j % self.layout.ports_per_host];
            let versions = &self.templates[s.product];
            let version = if bump && s.bumped {
                bumped += 1;
                (s.version + 1) % versions.len()
            } else {
                s.version
            };
            batch.observations.push(Observation::Port(PortObservation {
                ip: IpAddr::V4(self.layout.host_ip(h)),
                port: s.port,
                proto: Proto::Tcp,
                state: PortState::Open,
                reason: Reason::SynAck,
                ttl: Some(54),
                timestamp,
                scan_id: batch.scan.clone(),
                probe: Probe::Syn,
                service: Some(versions[version].clone()),
            }));
        }
        bumped
    }
}

struct IngestRun {
    observations: u64,
    changes: u64,
    bumped: u64,
    apply: Duration,
    generate: Duration,
    batch_times: Vec<Duration>,
}

impl IngestRun {
    fn rate(&self) -> f64 {
        self.observations as f64 / self.apply.as_secs_f64()
    }
}

/// What every scan of the run shares.
struct Bench<'a> {
    store: &'a Store,
    tenant: &'a TenantId,
    layout: &'a Layout,
    templates: &'a [Vec<ServiceReport>],
    batch_size: usize,
}

fn ingest(bench: &Bench<'_>, scan: &str, at: Millis, bump: bool) -> Res<IngestRun> {
    let Bench {
        store,
        tenant,
        layout,
        templates,
        batch_size,
    } = *bench;
    let shards = layout.observations.div_ceil(batch_size);
    store.begin_scan(
        tenant,
        scan,
        layout.coverage(),
        u32::try_from(shards)?,
        Some("bench_store".to_owned()),
        at,
    )?;
    let mut generator = Generator {
        layout,
        templates,
        slots: Vec::with_capacity(layout.ports_per_host),
        slots_host: None,
    };
    let mut batch = Batch {
        range: None,
        scan: scan.to_owned(),
        shard: 0,
        at,
        observations: Vec::with_capacity(batch_size),
    };
    let mut run = IngestRun {
        observations: 0,
        changes: 0,
        bumped: 0,
        apply: Duration::ZERO,
        generate: Duration::ZERO,
        batch_times: Vec::with_capacity(shards),
    };
    for shard in 0..shards {
        let start = shard * batch_size;
        let end = (start + batch_size).min(layout.observations);
        batch.shard = u32::try_from(shard)?;
        let t = Instant::now();
        run.bumped += generator.fill(&mut batch, start, end, bump);
        run.generate += t.elapsed();
        let t = Instant::now();
        let applied = store.apply(tenant, &batch)?;
        let took = t.elapsed();
        run.apply += took;
        run.batch_times.push(took);
        if !applied.fresh {
            return Err(format!("{scan} shard {shard} was taken as a replay").into());
        }
        if applied.completed_scan != (shard + 1 == shards) {
            return Err(format!("{scan} shard {shard}: completed_scan is wrong").into());
        }
        run.observations += applied.observations;
        run.changes += applied.changes;
        if shard % 20 == 19 || shard + 1 == shards {
            eprintln!(
                "bench_store: {scan}: {end}/{} observations, {:.0} obs/s",
                layout.observations,
                run.rate()
            );
        }
    }
    Ok(run)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct ListRun {
    name: String,
    /// Matching assets seen by the walk (summed over the walked nets for CIDR filters).
    matching: usize,
    pages: usize,
    /// The walk ran out of budget before the last page.
    walk_cut: bool,
    walk: Duration,
    requests: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    mean_items: f64,
}

/// How the listings are sampled.
#[derive(Clone, Copy)]
struct ListSpec {
    page: usize,
    requests: usize,
    /// Per phase (walk, then requests) of each listing: a listing that scans far more
    /// than it returns would otherwise keep the run going for hours.
    budget: Duration,
}

/// Walks every page of each filter once (the cursors a client would hold), then times
/// page reads at cursors drawn from that walk.
fn list_latency(
    store: &Store,
    tenant: &TenantId,
    name: &str,
    filters: &[AssetFilter],
    spec: ListSpec,
    rng: &mut u64,
) -> Res<ListRun> {
    let mut pool: Vec<(usize, Option<String>)> = Vec::new();
    let mut matching = 0;
    let mut walk_cut = false;
    let t = Instant::now();
    'walk: for (i, filter) in filters.iter().enumerate() {
        let mut cursor: Option<String> = None;
        loop {
            if t.elapsed() > spec.budget && !pool.is_empty() {
                walk_cut = true;
                break 'walk;
            }
            let got = store.list_assets(tenant, filter, cursor.as_deref(), spec.page)?;
            matching += got.items.len();
            pool.push((i, cursor));
            match got.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    let walk = t.elapsed();
    let pages = pool.len();
    let mut times = Vec::with_capacity(spec.requests);
    let mut items = 0usize;
    let t = Instant::now();
    while times.len() < spec.requests && (times.is_empty() || t.elapsed() < spec.budget) {
        *rng = mix(*rng);
        let (i, cursor) = &pool[(*rng % pool.len() as u64) as usize];
        let started = Instant::now();
        let got = store.list_assets(tenant, &filters[*i], cursor.as_deref(), spec.page)?;
        times.push(started.elapsed());
        items += got.items.len();
    }
    times.sort_unstable();
    eprintln!(
        "bench_store: listing {name}: {matching} assets in {pages} pages{}, {} requests",
        if walk_cut { " (walk cut short)" } else { "" },
        times.len()
    );
    Ok(ListRun {
        name: name.to_owned(),
        matching,
        pages,
        walk_cut,
        walk,
        requests: times.len(),
        p50: percentile(&times, 0.50),
        p99: percentile(&times, 0.99),
        max: times.last().copied().unwrap_or_default(),
        mean_items: items as f64 / times.len().max(1) as f64,
    })
}

struct Feed {
    events: u64,
    json_bytes: u64,
    /// Events per (scan, asset kind, change kind).
    by_kind: BTreeMap<(String, &'static str, &'static str), u64>,
    /// Distinct assets scan 3 changed.
    scan3_assets: usize,
}

/// Reads the whole change feed through `changes_since`, as a consumer would.
fn read_feed(store: &Store, tenant: &TenantId, scan3: &str) -> Res<Feed> {
    let mut feed = Feed {
        events: 0,
        json_bytes: 0,
        by_kind: BTreeMap::new(),
        scan3_assets: 0,
    };
    let mut scan3_assets: BTreeSet<AssetKey> = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = store.changes_since(tenant, cursor, 1000)?;
        for c in &page.items {
            feed.events += 1;
            // Blocks are stored as JSON arrays of these, so this is the feed's payload
            // size give or take the brackets and commas.
            feed.json_bytes += serde_json::to_vec(c)?.len() as u64;
            let change = match c.kind {
                ChangeKind::Appeared => "appeared",
                ChangeKind::Changed { .. } => "changed",
                ChangeKind::Disappeared => "disappeared",
            };
            *feed
                .by_kind
                .entry((c.scan.clone(), c.asset.kind().as_str(), change))
                .or_default() += 1;
            if c.scan == scan3 {
                scan3_assets.insert(c.asset.clone());
            }
        }
        match page.next {
            Some(next) => cursor = Some(next.parse::<u64>()?),
            None => break,
        }
    }
    feed.scan3_assets = scan3_assets.len();
    Ok(feed)
}

/// Mean JSON size of up to 1000 stored records of one kind: what sled holds per asset
/// before its own overhead.
fn mean_record_bytes(store: &Store, tenant: &TenantId, kind: AssetKind) -> Res<f64> {
    let filter = AssetFilter {
        kind: Some(kind),
        ..Default::default()
    };
    let page = store.list_assets(tenant, &filter, None, 1000)?;
    let mut total = 0;
    for a in &page.items {
        total += serde_json::to_vec(a)?.len();
    }
    Ok(total as f64 / page.items.len().max(1) as f64)
}

/// The 1-minute load average, where /proc has it: other work on the machine skews
/// every figure here, so the report says how busy it was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn dir_bytes(dir: &Path) -> Res<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "missed"
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate_row(name: &str, r: &IngestRun) -> String {
    let mut times = r.batch_times.clone();
    times.sort_unstable();
    format!(
        "| {name} | {} | {} | {:.2} | {} | {:.1} | {:.1} | {:.1} | {:.2} |",
        thousands(r.observations),
        thousands(r.rate() as u64),
        r.apply.as_secs_f64(),
        thousands(r.changes),
        ms(percentile(&times, 0.5)),
        ms(times.last().copied().unwrap_or_default()),
        ms(r.batch_times.last().copied().unwrap_or_default()),
        r.generate.as_secs_f64(),
    )
}

fn run(args: &Args, dir: &Path) -> Res<()> {
    if args.observations == 0 || args.batch == 0 || args.ports_per_host == 0 {
        return Err("--observations, --batch and --ports-per-host must be positive".into());
    }
    let hosts = args.observations.div_ceil(args.ports_per_host);
    if hosts > RANGE_ADDRESSES || args.ports_per_host > 64 {
        return Err(format!(
            "{hosts} hosts do not fit in 198.18.0.0/15 ({RANGE_ADDRESSES} addresses): \
             raise --ports-per-host (1-64)"
        )
        .into());
    }
    let layout = Layout {
        observations: args.observations,
        ports_per_host: args.ports_per_host,
        hosts,
        seed: args.seed,
    };
    let load_before = load_average();
    let templates = templates();
    let store = Store::open_with(
        dir,
        &StoreOptions {
            cache_bytes: args.cache_mib << 20,
            ..StoreOptions::default()
        },
    )?;
    let tenant = TenantId::new("bench")?;
    store.create_tenant(&tenant, "Storage benchmark", EPOCH_MS)?;
    let day: Millis = 86_400_000;
    let bench = Bench {
        store: &store,
        tenant: &tenant,
        layout: &layout,
        templates: &templates,
        batch_size: args.batch,
    };
    let ing = |scan: &str, at: Millis, bump: bool| ingest(&bench, scan, at, bump);

    let first = ing("bench-1", EPOCH_MS, false)?;
    let (hosts_now, services_now) = store.exposed_now(&tenant)?;
    let second = ing("bench-2", EPOCH_MS + day, false)?;
    if second.changes != 0 {
        return Err(format!(
            "the unchanged rescan wrote {} change events; it must write none",
            second.changes
        )
        .into());
    }
    let third = ing("bench-3", EPOCH_MS + 2 * day, true)?;
    let disk = store.size_on_disk()?;
    let dir_size = dir_bytes(dir)?;

    eprintln!("bench_store: reading the change feed");
    let t = Instant::now();
    let feed = read_feed(&store, &tenant, "bench-3")?;
    let feed_time = t.elapsed();

    // Random /24s of the range: each filter is walked in full, then sampled.
    let mut rng = mix(args.seed ^ 0x1157);
    let nets: Vec<IpNet> = (0..64)
        .map(|_| {
            rng = mix(rng);
            let third_octet = (rng % 512) as u32;
            let net = Ipv4Net::new(Ipv4Addr::from(RANGE_BASE + (third_octet << 8)), 24)
                .expect("/24 is a valid prefix");
            IpNet::V4(net)
        })
        .collect();
    let net_filters = |kind: Option<AssetKind>| -> Vec<AssetFilter> {
        nets.iter()
            .map(|net| AssetFilter {
                net: Some(*net),
                kind,
                ..Default::default()
            })
            .collect()
    };
    let one = |f: AssetFilter| vec![f];
    let lists = [
        ("unfiltered", vec![AssetFilter::default()]),
        ("CIDR /24", net_filters(None)),
        (
            "CIDR /24, kind service",
            net_filters(Some(AssetKind::Service)),
        ),
        (
            "product common (nginx)",
            one(AssetFilter {
                product: Some(COMMON_PRODUCT.to_owned()),
                ..Default::default()
            }),
        ),
        (
            "product rare (Dropbear sshd)",
            one(AssetFilter {
                product: Some(RARE_PRODUCT.to_owned()),
                ..Default::default()
            }),
        ),
        (
            "port 22",
            one(AssetFilter {
                port: Some(FILTER_PORT),
                ..Default::default()
            }),
        ),
    ];
    let spec = ListSpec {
        page: args.page,
        requests: args.requests,
        budget: Duration::from_secs(args.list_budget),
    };
    let mut list_runs = Vec::new();
    for (name, filters) in &lists {
        list_runs.push(list_latency(
            &store, &tenant, name, filters, spec, &mut rng,
        )?);
    }
    let assets = hosts_now + services_now;
    if let Some(all) = list_runs.first().filter(|r| !r.walk_cut) {
        if all.matching as u64 != assets {
            return Err(format!(
                "the unfiltered listing has {} assets, the counters {assets}",
                all.matching
            )
            .into());
        }
    }

    println!(
        "# bench-store: sled store, {} service observations per scan",
        thousands(args.observations as u64)
    );
    println!();
    println!(
        "{} hosts × {} ports in 198.18.0.0/15 (never contacted), {} products, batches of {}, \
         sled cache {} MiB. Assets after the ingests: {} ({} hosts, {} services). \
         Times are `Store::apply` only (each apply commits and flushes); generation is apart. \
         {} CPUs; 1-minute load average {} at the start, {} at the end.",
        thousands(layout.hosts as u64),
        layout.ports_per_host,
        PRODUCTS.len(),
        thousands(args.batch as u64),
        args.cache_mib,
        thousands(assets),
        thousands(hosts_now),
        thousands(services_now),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        load_average(),
    );
    println!();
    println!("## Ingest");
    println!();
    println!("| scan | observations | obs/s | apply s | change events | batch p50 ms | batch max ms | last batch ms | generate s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!("{}", rate_row("1: first ingest", &first));
    println!("{}", rate_row("2: unchanged rescan", &second));
    println!("{}", rate_row("3: 1% versions bumped", &third));
    println!();
    println!(
        "The last batch of each scan completes it and sweeps the covered range for services \
         it did not see. Scan 3 bumped {} services ({:.2}% of observations): {} change \
         events on {} assets ({:.2} events per changed service: every differing fact is \
         an event).",
        thousands(third.bumped),
        100.0 * third.bumped as f64 / args.observations as f64,
        thousands(third.changes),
        thousands(feed.scan3_assets as u64),
        third.changes as f64 / third.bumped.max(1) as f64,
    );
    println!();
    println!("Change feed by scan and kind:");
    println!();
    println!("| scan | asset | change | events |");
    println!("|---|---|---|---|");
    for ((scan, asset, change), n) in &feed.by_kind {
        println!("| {scan} | {asset} | {change} | {} |", thousands(*n));
    }
    println!();
    println!(
        "## List pages ({} items, up to {} requests each)",
        args.page, args.requests
    );
    println!();
    println!("| listing | matching assets | pages | walk s | requests | p50 ms | p99 ms | max ms | items/page |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &list_runs {
        println!(
            "| {} | {}{} | {} | {:.2} | {} | {:.3} | {:.3} | {:.3} | {:.1} |",
            r.name,
            if r.walk_cut { "≥ " } else { "" },
            thousands(r.matching as u64),
            thousands(r.pages as u64),
            r.walk.as_secs_f64(),
            thousands(r.requests as u64),
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            r.mean_items,
        );
    }
    println!();
    println!(
        "Cursors come from walking each listing page by page (\"walk\"); requests then read \
         pages at random cursors from that walk. CIDR listings walk 64 random /24s of the \
         range. A walk or a sampling phase stops after {} s (\"≥\": the walk stopped short).",
        args.list_budget
    );
    println!();
    println!("## Disk");
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!("| `size_on_disk` | {:.1} MiB |", disk as f64 / 1048576.0);
    println!(
        "| store directory (apparent size) | {:.1} MiB |",
        dir_size as f64 / 1048576.0
    );
    println!(
        "| bytes per asset (`size_on_disk` / assets) | {:.0} |",
        disk as f64 / assets.max(1) as f64
    );
    println!(
        "| mean asset record, JSON (service / host) | {:.0} B / {:.0} B |",
        mean_record_bytes(&store, &tenant, AssetKind::Service)?,
        mean_record_bytes(&store, &tenant, AssetKind::Host)?,
    );
    println!(
        "| change feed | {} events, {:.1} MiB as JSON ({:.0} B/event), read in {:.2} s |",
        thousands(feed.events),
        feed.json_bytes as f64 / 1048576.0,
        feed.json_bytes as f64 / feed.events.max(1) as f64,
        feed_time.as_secs_f64()
    );
    println!();
    let worst = list_runs
        .iter()
        .max_by_key(|r| r.p99)
        .ok_or("no list runs")?;
    println!("## Against the targets");
    println!();
    println!("| figure | measured | target | |");
    println!("|---|---|---|---|");
    println!(
        "| first ingest | {} obs/s | ≥ 200,000 obs/s | {} |",
        thousands(first.rate() as u64),
        met(first.rate() >= TARGET_FIRST_INGEST)
    );
    println!(
        "| unchanged rescan | {} obs/s | ≥ 500,000 obs/s | {} |",
        thousands(second.rate() as u64),
        met(second.rate() >= TARGET_RESCAN)
    );
    println!(
        "| list page p99 (worst: {}) | {:.3} ms at {} assets | < 20 ms at 1M assets | {}{} |",
        worst.name,
        ms(worst.p99),
        thousands(assets),
        met(ms(worst.p99) < TARGET_P99_MS),
        if assets < 1_000_000 {
            " (fewer assets than the target's)"
        } else {
            ""
        }
    );
    Ok(())
}
