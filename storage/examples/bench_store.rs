//! Storage benchmark of issue 10: ingest and rescan throughput, list-page latency, a
//! sanction edit, disk and memory per size; many tenants in one store; API mutations
//! while a scan completes; an export while ingest runs. Used by scripts/bench-store.
//!
//!     bench_store [--sizes "100k 1M"] [--tenants 100 --tenant-assets 100k] ...
//!
//! Each size, and the many-tenant run, is a stage in a child process of its own (this
//! binary with `--stage`) on a fresh store, so that each peak RSS (VmHWM, read at the
//! end of the stage) is that stage's alone. A stage prints its figures as JSON; the
//! driver prints them all as Markdown, with the targets beside them.
//!
//! The estate is synthetic: hosts with `--ports-per-host` services each, 12 products.
//! Addresses: 198.18.0.0/15 (the benchmarking range) holds only 131,072 hosts, so the
//! hosts of larger sizes go on into 240.0.0.0/4 (class E, reserved, never routed).
//! Nothing is ever contacted — the store opens no socket; addresses only shape keys.
//! Observations are generated one batch at a time, deterministically from `--seed`, so
//! every scan re-creates the same facts without holding them in memory. Only the store's
//! calls are timed; generation is reported apart.
//!
//! Markdown goes to stdout, progress to stderr. The run fails if an unchanged rescan
//! writes a change event; a missed target does not fail it.

// The service binary uses the same allocator: sled's copy-on-write leaves make glibc's
// malloc the hot spot (40% of cycles in a profile of this benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "bench_store/busy.rs"]
mod busy;
#[path = "bench_store/data.rs"]
mod data;
#[path = "bench_store/report.rs"]
mod report;
#[path = "bench_store/stages.rs"]
mod stages;
#[path = "bench_store/tenants.rs"]
mod tenants;

use clap::{Parser, ValueEnum};
use stages::{Common, Res, SizeResult};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tenants::TenantsResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Stage {
    Size,
    Tenants,
}

#[derive(Debug, Parser)]
#[command(about = "Benchmark the sled-backed asset store on synthetic observations")]
struct Args {
    /// Single-tenant sizes in assets (hosts + services), each in a fresh store:
    /// `100k`, `1M`, `10M` or a number, separated by spaces or commas.
    #[arg(long, default_value = "100k 1M")]
    sizes: String,
    /// Tenants in the many-tenant store (0: skip that stage).
    #[arg(long, default_value_t = 100)]
    tenants: usize,
    /// Assets of each of those tenants.
    #[arg(long, default_value = "100k")]
    tenant_assets: String,
    /// Assets of the small tenant whose listings are timed alone and among the others.
    #[arg(long, default_value = "10k")]
    small_assets: String,
    /// Skip API mutations during a scan's sweep and the export during ingest (both run
    /// at the largest size otherwise).
    #[arg(long)]
    no_busy: bool,
    /// Services per shard (one `Store::apply` each).
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Open ports (services) per host.
    #[arg(long, default_value_t = 8)]
    ports_per_host: usize,
    /// Timed list requests per listing.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Items per list page.
    #[arg(long, default_value_t = 100)]
    page: usize,
    /// sled page cache (StoreOptions::cache_bytes), MiB.
    #[arg(long, default_value_t = 256)]
    cache_mib: u64,
    /// zstd on sled's log for the new stores (StoreOptions::compression): on or off;
    /// the store's default when not given.
    #[arg(long, value_enum)]
    compression: Option<Switch>,
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Where the stores go, one directory per stage (each removed before and after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Leave the stores in place.
    #[arg(long)]
    keep: bool,
    /// Run one stage in this process and print its JSON (the driver does this).
    #[arg(long, value_enum, hide = true)]
    stage: Option<Stage>,
    /// The size stage's assets.
    #[arg(long, hide = true)]
    assets: Option<String>,
    /// The size stage also runs the busy measurements.
    #[arg(long, hide = true)]
    busy: bool,
}

impl Args {
    fn compression(&self) -> bool {
        match self.compression {
            Some(s) => s == Switch::On,
            None => aperture_storage::StoreOptions::default().compression,
        }
    }

    fn common(&self) -> Common {
        Common {
            batch: self.batch,
            ports_per_host: self.ports_per_host,
            cache_mib: self.cache_mib,
            compression: self.compression(),
            requests: self.requests,
            page: self.page,
            seed: self.seed,
        }
    }

    /// The flags a stage's process inherits.
    fn passed_on(&self) -> Vec<String> {
        let mut v = vec![
            format!("--batch={}", self.batch),
            format!("--ports-per-host={}", self.ports_per_host),
            format!("--requests={}", self.requests),
            format!("--page={}", self.page),
            format!("--cache-mib={}", self.cache_mib),
            format!("--seed={}", self.seed),
            format!("--tenants={}", self.tenants),
            format!("--tenant-assets={}", self.tenant_assets),
            format!("--small-assets={}", self.small_assets),
        ];
        if self.keep {
            v.push("--keep".to_owned());
        }
        v.push(format!(
            "--compression={}",
            if self.compression() { "on" } else { "off" }
        ));
        v
    }
}

/// `100k`, `1M`, `2.5M`, `10000`.
fn parse_count(s: &str) -> Res<usize> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1e3),
        Some((i, 'm' | 'M')) => (&s[..i], 1e6),
        Some((i, 'g' | 'G')) => (&s[..i], 1e9),
        _ => (s, 1.0),
    };
    let n: f64 = num
        .replace('_', "")
        .parse()
        .map_err(|_| format!("size {s:?}: write 100k, 1M, 10M or a number"))?;
    if n.is_nan() || n <= 0.0 {
        return Err(format!("size {s:?} must be positive").into());
    }
    Ok((n * mul).round() as usize)
}

fn parse_sizes(s: &str) -> Res<Vec<(String, usize)>> {
    s.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(|w| Ok((w.to_owned(), parse_count(w)?)))
        .collect()
}

fn main() {
    let args = Args::parse();
    let base = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("aperture-bench-store"));
    let result = match args.stage {
        Some(stage) => run_stage(&args, stage, &base),
        None => drive(&args, &base),
    };
    if let Err(e) = result {
        eprintln!("bench_store: {e}");
        std::process::exit(1);
    }
}

/// Runs one stage in `dir` (a store of its own) and prints its JSON.
fn run_stage(args: &Args, stage: Stage, dir: &Path) -> Res<()> {
    prepare_dir(dir)?;
    let common = args.common();
    let json = match stage {
        Stage::Size => parse_count(args.assets.as_deref().ok_or("--assets is needed")?)
            .and_then(|assets| stages::size_stage(&common, dir, assets, args.busy))
            .and_then(|r| Ok(serde_json::to_string(&r)?)),
        Stage::Tenants => parse_count(&args.tenant_assets)
            .and_then(|big| Ok((big, parse_count(&args.small_assets)?)))
            .and_then(|(big, small)| tenants::tenants_stage(&common, dir, args.tenants, big, small))
            .and_then(|r| Ok(serde_json::to_string(&r)?)),
    };
    if !args.keep && dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            eprintln!("bench_store: cannot remove {}: {e}", dir.display());
        }
    }
    println!("{}", json?);
    Ok(())
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

/// Runs this binary as one stage and reads back its figures.
fn child<T: serde::de::DeserializeOwned>(args: &Args, stage_args: &[String]) -> Res<T> {
    let exe = std::env::current_exe()?;
    let output = Command::new(exe)
        .args(args.passed_on())
        .args(stage_args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("stage {stage_args:?} failed ({})", output.status).into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn drive(args: &Args, base: &Path) -> Res<()> {
    if args.batch == 0 || args.requests == 0 || args.page == 0 {
        return Err("--batch, --requests and --page must be positive".into());
    }
    let sizes = parse_sizes(&args.sizes)?;
    for (_, n) in &sizes {
        data::Layout::for_assets(*n, args.ports_per_host, args.seed)?;
    }
    let largest = sizes.iter().map(|s| s.1).max();
    std::fs::create_dir_all(base)?;
    let started = std::time::Instant::now();
    let load = stages::load_average();
    let mut results: Vec<(String, SizeResult)> = Vec::new();
    let mut tenants: Option<TenantsResult> = None;
    let mut failure = None;
    for (label, n) in &sizes {
        let busy = !args.no_busy && Some(*n) == largest;
        let mut stage = vec![
            "--stage=size".to_owned(),
            format!("--assets={n}"),
            format!("--dir={}", base.join(format!("size-{n}")).display()),
        ];
        if busy {
            stage.push("--busy".to_owned());
        }
        eprintln!("bench_store: stage: {label} assets in one tenant");
        match child::<SizeResult>(args, &stage) {
            Ok(r) => results.push((label.clone(), r)),
            Err(e) => {
                failure = Some(format!("{label}: {e}"));
                break;
            }
        }
    }
    if failure.is_none() && args.tenants > 0 {
        eprintln!(
            "bench_store: stage: {} tenants × {} assets in one store",
            args.tenants, args.tenant_assets
        );
        let stage = vec![
            "--stage=tenants".to_owned(),
            format!("--dir={}", base.join("tenants").display()),
        ];
        match child::<TenantsResult>(args, &stage) {
            Ok(r) => tenants = Some(r),
            Err(e) => failure = Some(format!("tenants: {e}")),
        }
    }
    if !args.keep {
        // Only removes it if the stages left it empty.
        let _ = std::fs::remove_dir(base);
    }
    report::print(&report::Run {
        args_sizes: &args.sizes,
        ports_per_host: args.ports_per_host,
        batch: args.batch,
        cache_mib: args.cache_mib,
        compression: args.compression(),
        compression_is_default: args.compression()
            == aperture_storage::StoreOptions::default().compression,
        requests: args.requests,
        page: args.page,
        sizes: &results,
        tenants: tenants.as_ref(),
        wall_s: started.elapsed().as_secs_f64(),
        load_start: load,
        load_end: stages::load_average(),
    });
    match failure {
        Some(f) => Err(f.into()),
        None => Ok(()),
    }
}
