//! Benchmark of the vulnerability data (issue 16): import of NVD CVE 2.0 feeds of a
//! realistic size and the KEV catalogue, an unchanged re-import, an incremental
//! "modified" feed, and matching services against the full database. Used by
//! scripts/bench-vulndb.
//!
//!     bench_vulndb [--cves 220000] [--kev 1300] [--services 20000] [--dir DIR]
//!
//! The feeds are synthetic, written in the real formats by `aperture_vulndb::feed`, one
//! file per year like NVD's `nvdcve-2.0-YYYY.json`, with a mix of configurations modelled
//! on NVD's: version ranges of one product, lists of exact versions, applications
//! running on a platform (AND with `vulnerable: false` nodes), firmware on hardware, and
//! records awaiting analysis or rejected (no configuration). Products follow a skewed
//! distribution: a few dozen popular server products hold hundreds of CVEs each, a long
//! tail of ~25,000 products a few each. Each measured step runs in a child process of
//! its own (this binary with `--stage`), so each peak RSS (VmHWM) is that step's alone.
//! Nothing is contacted: addresses in 198.18.0.0/15 only shape keys.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use aperture_fingerprints::report::ServiceReport;
use aperture_fingerprints::{PortObservation, PortState, Probe, Proto, Reason};
use aperture_storage::{Batch, Coverage, Observation, Store, TenantId};
use aperture_vulndb::feed::build::{any_of, cve, kev, platform, running_on, vulnerable};
use aperture_vulndb::matching::Service;
use aperture_vulndb::{Cve, CvssVersion, Feed, Index};
use clap::Parser;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, UNIX_EPOCH};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 220_000)]
    cves: usize,
    #[arg(long, default_value_t = 1_300)]
    kev: usize,
    #[arg(long, default_value_t = 20_000)]
    services: usize,
    /// Records of the incremental ("modified") feed.
    #[arg(long, default_value_t = 5_000)]
    modified: usize,
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long, hide = true)]
    stage: Option<String>,
}

/// splitmix64: deterministic, so every stage regenerates the same estate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Popular server products: (part, vendor, product, p-style versions like OpenSSH's).
const POPULAR: &[(&str, &str, &str, bool)] = &[
    ("a", "openbsd", "openssh", true),
    ("a", "apache", "http_server", false),
    ("a", "f5", "nginx", false),
    ("a", "openssl", "openssl", false),
    ("a", "php", "php", false),
    ("a", "oracle", "mysql", false),
    ("a", "postgresql", "postgresql", false),
    ("a", "isc", "bind", false),
    ("a", "exim", "exim", false),
    ("a", "postfix", "postfix", false),
    ("a", "dovecot", "dovecot", false),
    ("a", "proftpd", "proftpd", false),
    ("a", "samba", "samba", false),
    ("a", "redis", "redis", false),
    ("a", "elastic", "elasticsearch", false),
    ("a", "apache", "tomcat", false),
    ("a", "jenkins", "jenkins", false),
    ("a", "gitlab", "gitlab", false),
    ("a", "wordpress", "wordpress", false),
    ("a", "grafana", "grafana", false),
    ("a", "mongodb", "mongodb", false),
    ("a", "haproxy", "haproxy", false),
    ("a", "squid-cache", "squid", false),
    ("a", "nodejs", "node.js", false),
    ("a", "atlassian", "confluence_server", false),
    ("a", "microsoft", "exchange_server", false),
    ("a", "vmware", "vcenter_server", false),
    ("o", "cisco", "ios_xe", false),
    ("o", "fortinet", "fortios", false),
    ("o", "paloaltonetworks", "pan-os", false),
    ("o", "linux", "linux_kernel", false),
    ("o", "microsoft", "windows_server_2019", false),
];
const TAIL: u64 = 25_000;

/// A product: popular ones for `popular` percent of draws (CVEs: ~10%, as NVD's most
/// named server products hold a few hundred to a few thousand CVEs each; services:
/// more, as exposed estates run those products).
fn product(r: &mut Rng, popular: u64) -> (String, String, String, bool) {
    if r.chance(popular) {
        // Skewed toward the first entries.
        let n = POPULAR.len() as u64;
        let i = (r.below(n) * r.below(n) / n) as usize;
        let (p, v, x, s) = POPULAR[i];
        return (p.into(), v.into(), x.into(), s);
    }
    // A long tail, skewed (squared uniform) toward low numbers.
    let u = r.below(TAIL);
    let i = u * r.below(TAIL) / TAIL;
    let part = if i.is_multiple_of(17) { "o" } else { "a" };
    (
        part.into(),
        format!("vendor{}", i / 3),
        format!("product_{i}"),
        false,
    )
}

fn version(r: &mut Rng, p_style: bool) -> String {
    if p_style {
        format!("{}.{}p{}", 3 + r.below(7), r.below(10), 1 + r.below(2))
    } else {
        format!("{}.{}.{}", r.below(12), r.below(20), r.below(40))
    }
}

fn criteria(part: &str, vendor: &str, product: &str, v: &str) -> String {
    let esc = |s: &str| s.replace('.', "\\.");
    format!("cpe:2.3:{part}:{vendor}:{}:{v}:*:*:*:*:*:*:*", esc(product))
}

fn record(r: &mut Rng, year: u32, seq: usize) -> Cve {
    let id = format!("CVE-{year}-{:05}", 1000 + seq);
    let modified = format!(
        "{}-{:02}-{:02}T{:02}:{:02}:00.000",
        year.max(2018) + r.below(2) as u32,
        1 + r.below(12),
        1 + r.below(28),
        r.below(24),
        r.below(60)
    );
    let (part, vendor, prod, p_style) = product(r, 10);
    let any = criteria(&part, &vendor, &prod, "*");
    let kind = r.below(100);
    let configurations = match kind {
        0..=7 => Vec::new(),
        8..=62 => {
            let n = 1 + r.below(4);
            let matches = (0..n)
                .map(|_| {
                    let lo = version(r, p_style);
                    let hi = version(r, p_style);
                    let (lo, hi) = if aperture_vulndb::version::compare(&lo, &hi).is_le() {
                        (lo, hi)
                    } else {
                        (hi, lo)
                    };
                    match r.below(4) {
                        0 => vulnerable(&any, &[&format!("<{hi}")]),
                        1 => vulnerable(&any, &[&format!("<={hi}")]),
                        2 => vulnerable(&any, &[&format!(">={lo}"), &format!("<{hi}")]),
                        _ => vulnerable(&any, &[&format!(">{lo}"), &format!("<={hi}")]),
                    }
                })
                .collect();
            vec![any_of(matches)]
        }
        63..=77 => {
            let n = 3 + r.below(38);
            let matches = (0..n)
                .map(|_| vulnerable(&criteria(&part, &vendor, &prod, &version(r, false)), &[]))
                .collect();
            vec![any_of(matches)]
        }
        78..=89 => {
            let hi = version(r, p_style);
            let oses = (0..1 + r.below(5))
                .map(|i| {
                    platform(&format!(
                        "cpe:2.3:o:osvendor{i}:os_{}:-:*:*:*:*:*:*:*",
                        r.below(50)
                    ))
                })
                .collect();
            vec![running_on(
                vec![vulnerable(&any, &[&format!("<{hi}")])],
                oses,
            )]
        }
        _ => {
            let fw = format!("cpe:2.3:o:{vendor}:{prod}_firmware:*:*:*:*:*:*:*:*");
            let hw = (0..1 + r.below(8))
                .map(|i| platform(&format!("cpe:2.3:h:{vendor}:model_{i}:-:*:*:*:*:*:*:*")))
                .collect();
            vec![running_on(
                vec![vulnerable(&fw, &[&format!("<{}", version(r, false))])],
                hw,
            )]
        }
    };
    let mut c = cve(&id, &modified, (r.below(100) as f32) / 10.0, configurations);
    c.published = format!("{year}-03-01T00:00:00.000");
    c.summary = format!(
        "A vulnerability in {vendor} {prod} allows a remote attacker to cause a denial of \
         service or execute code via crafted input to an unspecified component; versions \
         before the fixed release are affected. Identifier {id}, synthetic record {seq}."
    );
    if kind <= 7 {
        c.status = if r.chance(20) {
            "Rejected"
        } else {
            "Awaiting Analysis"
        }
        .into();
        c.cvss = None;
    } else if let Some(s) = c.cvss.as_mut() {
        s.version = match (year, r.below(100)) {
            (..=2015, _) => CvssVersion::V2,
            (_, 0..=14) => CvssVersion::V40,
            (_, 15..=19) => CvssVersion::V30,
            _ => CvssVersion::V31,
        };
    }
    c
}

/// Records per year, growing like NVD's (a few hundred in 1999, ~40k in 2024).
fn years(total: usize) -> Vec<(u32, usize)> {
    let weights: Vec<(u32, f64)> = (1999..=2026)
        .map(|y| (y, 1.19f64.powi((y - 1999) as i32)))
        .collect();
    let sum: f64 = weights.iter().map(|(_, w)| w).sum();
    let mut out: Vec<(u32, usize)> = weights
        .iter()
        .map(|(y, w)| (*y, ((w / sum) * total as f64) as usize))
        .collect();
    let given: usize = out.iter().map(|(_, n)| n).sum();
    if let Some(last) = out.last_mut() {
        last.1 += total - given;
    }
    out
}

fn write_feed(path: &Path, records: impl Iterator<Item = Cve>, n: usize) -> std::io::Result<u64> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    write!(
        f,
        "{{\"resultsPerPage\":{n},\"startIndex\":0,\"totalResults\":{n},\"format\":\"NVD_CVE\",\
         \"version\":\"2.0\",\"timestamp\":\"2026-12-01T00:00:00.000\",\"vulnerabilities\":["
    )?;
    for (i, c) in records.enumerate() {
        if i > 0 {
            f.write_all(b",")?;
        }
        serde_json::to_writer(&mut f, &aperture_vulndb::feed::nvd_item(&c))?;
    }
    f.write_all(b"]}")?;
    f.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

fn feed_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("feeds"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or_default()
        / 1024.0
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            total += if path.is_dir() {
                dir_size(&path)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            };
        }
    }
    total
}

fn import(store: &Store, files: &[PathBuf]) -> aperture_storage::vulns::VulnImport {
    let reading = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read(f)));
    store
        .import_vulndb(reading, 1_795_000_000_000)
        .expect("import")
}

fn services(n: usize) -> Vec<Observation> {
    let mut r = Rng(42);
    (0..n)
        .map(|i| {
            let (part, vendor, prod, p) = product(&mut r, 60);
            let v = version(&mut r, p);
            let cpe = criteria(&part, &vendor, &prod, &v);
            let os = if r.chance(30) {
                Some("Debian".to_owned())
            } else {
                None
            };
            Observation::Port(PortObservation {
                ip: IpAddr::V4(Ipv4Addr::from(
                    u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (i / 4) as u32,
                )),
                port: [22, 80, 443, 8080][i % 4],
                proto: Proto::Tcp,
                state: PortState::Open,
                reason: Reason::SynAck,
                ttl: Some(54),
                timestamp: UNIX_EPOCH + Duration::from_millis(1_795_000_000_000),
                scan_id: "bench".into(),
                probe: Probe::Syn,
                service: Some(ServiceReport {
                    service: Some("http".into()),
                    product: Some(prod.clone()),
                    version: Some(v),
                    cpe: Some(cpe),
                    os,
                    ..Default::default()
                }),
            })
        })
        .collect()
}

fn stage(args: &Args, name: &str, dir: &Path) -> serde_json::Value {
    let store_dir = dir.join("store");
    let mut out = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        out.insert(k.into(), v);
    };
    match name {
        "import" | "reimport" => {
            let store = Store::open(&store_dir).expect("store");
            let mut files = feed_files(dir);
            files.push(dir.join("known_exploited_vulnerabilities.json"));
            let t = Instant::now();
            let r = import(&store, &files);
            let secs = t.elapsed().as_secs_f64();
            let records = r.files.iter().map(|f| f.records).sum::<u64>();
            put("secs", secs.into());
            put("records", records.into());
            put("added", (r.cves_added + r.kev_added).into());
            put("updated", (r.cves_updated + r.kev_updated).into());
            put("unchanged", (r.cves_unchanged + r.kev_unchanged).into());
            put("products_changed", r.products_changed.into());
            drop(store);
            put(
                "store_mib",
                (dir_size(&store_dir) as f64 / 1048576.0).into(),
            );
        }
        "match" => {
            let store = Store::open(&store_dir).expect("store");
            let t = TenantId::new("bench").expect("tenant");
            let _ = store.create_tenant(&t, "Bench", 1_795_000_000_000);
            let coverage = Coverage {
                targets: vec!["198.18.0.0/15".parse().expect("net")],
                ports: vec![(1, 65535)],
                probes: ["syn", "grab"].iter().map(|s| s.to_string()).collect(),
                domains: vec![],
                udp_ports: Vec::new(),
            };
            store
                .begin_scan(&t, "s1", coverage, 1, None, 1_795_000_000_000)
                .expect("scan");
            let obs = services(args.services);
            let clock = Instant::now();
            store
                .apply(
                    &t,
                    &Batch {
                        range: None,
                        scan: "s1".into(),
                        shard: 0,
                        at: 1_795_000_000_000,
                        observations: obs,
                    },
                )
                .expect("apply");
            put("ingest_secs", clock.elapsed().as_secs_f64().into());
            let clock = Instant::now();
            let run = store.run_policy(&t, 1_795_000_000_001).expect("policy");
            let secs = clock.elapsed().as_secs_f64();
            put("policy_secs", secs.into());
            put("assets_evaluated", run.assets_evaluated.into());
            let filter = aperture_storage::findings::FindingFilter {
                rule: Some(aperture_storage::policy::Rule::VulnerableVersion),
                ..Default::default()
            };
            let (mut vulnerable, mut cursor) = (0usize, None::<String>);
            loop {
                let page = store
                    .findings(&t, &filter, cursor.as_deref(), 1000)
                    .expect("findings");
                vulnerable += page.items.len();
                match page.next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            put("vulnerable_services", vulnerable.into());
            // The incremental feed: records of the popular products, newer.
            let modified = dir.join("nvdcve-2.0-modified.json");
            let clock = Instant::now();
            let r = import(&store, &[modified]);
            put("modified_import_secs", clock.elapsed().as_secs_f64().into());
            put("modified_updated", r.cves_updated.into());
            put("modified_added", r.cves_added.into());
            put("modified_products", r.products_changed.into());
            let clock = Instant::now();
            let run = store
                .run_queued_policy(&t, 1_795_000_000_002)
                .expect("queued");
            put("requeue_secs", clock.elapsed().as_secs_f64().into());
            put("requeue_evaluated", run.assets_evaluated.into());
        }
        "memory" => {
            // The pure index, in memory: the crate's own match throughput.
            let clock = Instant::now();
            let mut idx = Index::new();
            for f in feed_files(dir) {
                let bytes = std::fs::read(&f).expect("read");
                if let Ok(Feed::Nvd { cves, .. }) = aperture_vulndb::parse(&bytes) {
                    for c in cves {
                        idx.insert(c);
                    }
                }
            }
            put("index_secs", clock.elapsed().as_secs_f64().into());
            let svcs: Vec<Service> = services(args.services)
                .into_iter()
                .filter_map(|o| match o {
                    Observation::Port(p) => p.service.and_then(|s| {
                        Service::from_facts(
                            s.cpe.as_deref()?,
                            s.version.as_deref(),
                            s.os.as_deref(),
                        )
                    }),
                    _ => None,
                })
                .collect();
            let clock = Instant::now();
            let mut hits = 0usize;
            for s in &svcs {
                hits += usize::from(!idx.matches(s).is_empty());
            }
            put("match_secs", clock.elapsed().as_secs_f64().into());
            put("services", svcs.len().into());
            put("vulnerable_services", hits.into());
        }
        _ => panic!("stage {name}"),
    }
    put("peak_rss_mib", peak_rss_mib().into());
    serde_json::Value::Object(out)
}

fn main() {
    let args = Args::parse();
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("aperture-bench-vulndb"));
    if let Some(name) = &args.stage {
        println!("{}", stage(&args, name, &dir));
        return;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("feeds")).expect("dir");
    let clock = Instant::now();
    let mut r = Rng(7);
    let mut feed_bytes = 0;
    let mut ids: Vec<String> = Vec::new();
    for (year, n) in years(args.cves) {
        let recs: Vec<Cve> = (0..n).map(|i| record(&mut r, year, i)).collect();
        for c in recs.iter().filter(|c| !c.configurations.is_empty()) {
            if r.below(args.cves as u64) < (args.kev as u64) * 12 / 10 && ids.len() < args.kev {
                ids.push(c.id.clone());
            }
        }
        feed_bytes += write_feed(
            &dir.join(format!("feeds/nvdcve-2.0-{year}.json")),
            recs.into_iter(),
            n,
        )
        .expect("write feed");
    }
    // The modified feed: newer records of the popular products.
    let mut m = Rng(9);
    let modified: Vec<Cve> = (0..args.modified)
        .map(|i| {
            // Ids of records the 2025 file holds: updates, as NVD's modified feed.
            let mut c = record(&mut m, 2025, i);
            c.last_modified = "2026-12-01T00:00:00.000".into();
            c
        })
        .collect();
    write_feed(
        &dir.join("nvdcve-2.0-modified.json"),
        modified.into_iter(),
        args.modified,
    )
    .expect("write");
    let entries: Vec<_> = ids.iter().map(|id| kev(id)).collect();
    std::fs::write(
        dir.join("known_exploited_vulnerabilities.json"),
        aperture_vulndb::feed::kev_json(&entries, "2026.12.01"),
    )
    .expect("write kev");
    eprintln!(
        "generated {} CVEs in {} files ({:.0} MiB) and {} KEV entries in {:.1} s",
        args.cves,
        feed_files(&dir).len(),
        feed_bytes as f64 / 1048576.0,
        entries.len(),
        clock.elapsed().as_secs_f64()
    );
    let exe = std::env::current_exe().expect("exe");
    let run = |name: &str| -> serde_json::Value {
        eprintln!("stage {name}…");
        let out = Command::new(&exe)
            .args([
                "--stage",
                name,
                "--services",
                &args.services.to_string(),
                "--dir",
            ])
            .arg(&dir)
            .output()
            .expect("stage runs");
        assert!(
            out.status.success(),
            "stage {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("stage output")
    };
    let first = run("import");
    let again = run("reimport");
    let matched = run("match");
    let memory = run("memory");
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or_default();
    println!("| step | figure |");
    println!("|---|---|");
    println!(
        "| feeds | {} CVE records in {} yearly files, {:.0} MiB of JSON; KEV {} entries |",
        args.cves,
        feed_files(&dir).len(),
        feed_bytes as f64 / 1048576.0,
        entries.len()
    );
    println!(
        "| first import | {:.1} s, {:.0} records/s, peak RSS {:.0} MiB, store {:.0} MiB ({} added) |",
        f(&first, "secs"), f(&first, "records") / f(&first, "secs"), f(&first, "peak_rss_mib"), f(&first, "store_mib"), first["added"]
    );
    println!(
        "| unchanged re-import | {:.1} s, {:.0} records/s, peak RSS {:.0} MiB ({} unchanged, {} products changed) |",
        f(&again, "secs"), f(&again, "records") / f(&again, "secs"), f(&again, "peak_rss_mib"), again["unchanged"], again["products_changed"]
    );
    println!(
        "| ingest of {} services (CPE + version) | {:.1} s |",
        args.services,
        f(&matched, "ingest_secs")
    );
    println!(
        "| policy run over them, all rules + vulndb | {:.2} s, {:.0} services/s, {} vulnerable-version findings |",
        f(&matched, "policy_secs"), f(&matched, "assets_evaluated") / f(&matched, "policy_secs"), matched["vulnerable_services"]
    );
    println!(
        "| modified feed of {} records | import {:.2} s ({} updated, {} added, {} products); re-evaluation {:.2} s of {} services |",
        args.modified, f(&matched, "modified_import_secs"), matched["modified_updated"], matched["modified_added"], matched["modified_products"], f(&matched, "requeue_secs"), matched["requeue_evaluated"]
    );
    println!(
        "| peak RSS of the match step | {:.0} MiB |",
        f(&matched, "peak_rss_mib")
    );
    println!(
        "| in-memory index (crate) | built in {:.1} s, {:.0} services matched/s, peak RSS {:.0} MiB ({} of {} vulnerable) |",
        f(&memory, "index_secs"), f(&memory, "services") / f(&memory, "match_secs"), f(&memory, "peak_rss_mib"), memory["vulnerable_services"], memory["services"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
