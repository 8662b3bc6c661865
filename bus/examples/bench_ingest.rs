//! Fake workers for `scripts/bench-workers`: they take a real coordinator's shards off the
//! bus and answer each with synthetic results, so the coordinator's ingest (results
//! stream → checks → store) runs as fast as it can, with no probe engine in the way.
//!
//!   bench_ingest --bus nats://127.0.0.1:4222 --keys DIR --workers w1,w2,w3 \
//!       [--open-every 4] [--first-secs 30] [--idle-secs 2] [--max-secs 120] \
//!       [--shards-out FILE]
//!
//! Each worker connects with its own key from `aperture bus init` (DIR/worker-NAME.nk),
//! pulls one shard at a time exactly as `aperture worker` does (lease, results in parts,
//! double-acked finish), and publishes an open port for the shard's probes picked by a
//! fixed hash of their index in the scan's space: one probe in `--open-every` (0: none,
//! an empty run), the same probes on every scan of the same targets, so a rescan is
//! unchanged. Every result is one of the shard's own positions, so the coordinator
//! accepts it. No packet is sent to any target: the only socket is the bus connection.
//!
//! It stops when no shard came for `--idle-secs` after the first (or none within
//! `--first-secs`), or after `--max-secs`. It prints one JSON summary on stdout; with
//! `--shards-out`, one JSON line per shard (times in ms since the Unix epoch, and the
//! durations of its pull, result building, publishing and ack in ms).
//!
//! Heartbeats are not sent: grants only pace a real engine, and the coordinator stores
//! results from a worker it has not heard from.
//!
//!   bench_ingest --watch-acks FILE --bus URL --nkey DIR/coordinator.nk [--max-secs S]
//!
//! Instead of playing workers, watches real ones: turns on the server's ack sampling
//! (`sample_freq` 100%) on the shared shards consumer and writes one JSON line per shard
//! acknowledged — the server's own time from delivering it (or from its last progress
//! ack) to the ack, in ms — until SIGTERM or `--max-secs`.

use aperture_bus::auth::{connect, BusAuth};
use aperture_bus::lease::{publish_parts, ShardQueue};
use aperture_bus::wire::{split_parts, ResultPart, WireObservation, Work};
use aperture_bus::{inbox_prefix, BusError, SHARDS_STREAM, WORKERS_CONSUMER};
use aperture_fingerprints::{PortObservation, PortState, Probe, Proto, Reason};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
struct Args {
    bus: String,
    keys: PathBuf,
    workers: Vec<String>,
    open_every: u64,
    first: Duration,
    idle: Duration,
    max: Duration,
    shards_out: Option<PathBuf>,
    watch_acks: Option<PathBuf>,
    nkey: Option<PathBuf>,
}

fn usage(why: &str) -> ! {
    eprintln!("bench_ingest: {why}");
    eprintln!(
        "usage: bench_ingest --bus URL --keys DIR --workers w1,w2 [--open-every N] \
         [--first-secs S] [--idle-secs S] [--max-secs S] [--shards-out FILE]\n       \
         bench_ingest --watch-acks FILE --bus URL --nkey coordinator.nk [--max-secs S]"
    );
    std::process::exit(2)
}

fn args() -> Args {
    let mut a = Args {
        bus: String::new(),
        keys: PathBuf::new(),
        workers: Vec::new(),
        open_every: 1,
        first: Duration::from_secs(30),
        idle: Duration::from_secs(2),
        max: Duration::from_secs(120),
        shards_out: None,
        watch_acks: None,
        nkey: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else {
            usage(&format!("{flag} needs a value"))
        };
        let secs = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .unwrap_or_else(|| usage(&format!("{flag} {v}: a number of seconds")))
        };
        match flag.as_str() {
            "--bus" => a.bus = value,
            "--keys" => a.keys = PathBuf::from(value),
            "--workers" => {
                a.workers = value
                    .split(',')
                    .filter(|w| !w.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "--open-every" => {
                a.open_every = value
                    .parse()
                    .unwrap_or_else(|_| usage("--open-every: a whole number"))
            }
            "--first-secs" => a.first = secs(&value),
            "--idle-secs" => a.idle = secs(&value),
            "--max-secs" => a.max = secs(&value),
            "--shards-out" => a.shards_out = Some(PathBuf::from(value)),
            "--watch-acks" => a.watch_acks = Some(PathBuf::from(value)),
            "--nkey" => a.nkey = Some(PathBuf::from(value)),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    if a.watch_acks.is_some() {
        if a.bus.is_empty() || a.nkey.is_none() {
            usage("--watch-acks needs --bus and --nkey");
        }
    } else if a.bus.is_empty() || a.workers.is_empty() || a.keys.as_os_str().is_empty() {
        usage("--bus, --keys and --workers are required");
    }
    a
}

/// What one shard cost, as seen by the worker that ran it.
#[derive(Debug, Clone, serde::Serialize)]
struct ShardTiming {
    worker: String,
    scan: String,
    shard: u32,
    delivered: i64,
    observations: usize,
    parts: usize,
    bytes: usize,
    /// When the pull returned it, when its last part was confirmed stored in the results
    /// stream, when the server confirmed the ack (ms since the epoch).
    pulled_at_ms: u64,
    published_at_ms: u64,
    acked_at_ms: u64,
    pull_ms: f64,
    build_ms: f64,
    publish_ms: f64,
    ack_ms: f64,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A fixed hash of a probe's index in the scan's space (splitmix64's finaliser).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The open ports this fake worker reports for a shard: positions of its own segments.
fn synthetic(
    spec: &aperture_mapper::run::ShardSpec,
    every: u64,
) -> Result<Vec<WireObservation>, String> {
    let (plan, order) = spec.build().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    if every == 0 {
        return Ok(out);
    }
    let now = SystemTime::now();
    for &(start, end) in &spec.segments {
        for pos in start..end {
            let index = order.at(pos);
            if !mix(index).is_multiple_of(every) {
                continue;
            }
            let Some((ip, port)) = plan.space.target(index) else {
                continue;
            };
            out.push(WireObservation::Port(PortObservation {
                ip,
                port,
                proto: Proto::Tcp,
                state: PortState::Open,
                reason: Reason::SynAck,
                ttl: Some(64),
                timestamp: now,
                scan_id: spec.settings.scan_id.clone(),
                probe: Probe::Syn,
                service: None,
            }));
        }
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct Shared {
    timings: Mutex<Vec<ShardTiming>>,
    /// When the last shard was pulled by any worker (None: none yet).
    last_pull: Mutex<Option<Instant>>,
    errors: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn fake_worker(
    name: String,
    a: Args,
    shared: Arc<Shared>,
    began: Instant,
) -> Result<(), BusError> {
    let auth = BusAuth {
        nkey_file: Some(a.keys.join(format!("worker-{name}.nk"))),
        ..BusAuth::default()
    };
    let client = connect(&a.bus, &auth, &name, Some(&inbox_prefix(&name))).await?;
    let js = aperture_bus::async_nats::jetstream::new(client.clone());
    let queue = ShardQueue::open(&js).await?;
    loop {
        if began.elapsed() > a.max {
            break;
        }
        let idle_since = *lock(&shared.last_pull);
        match idle_since {
            None if began.elapsed() > a.first => break,
            Some(at) if at.elapsed() > a.idle => break,
            _ => {}
        }
        let t0 = Instant::now();
        let Some(lease) = queue.next(Duration::from_millis(500)).await? else {
            continue;
        };
        let pulled = Instant::now();
        let pulled_at_ms = epoch_ms();
        *lock(&shared.last_pull) = Some(pulled);
        let task = match &lease.task {
            Ok(t) => t.clone(),
            Err(e) => {
                lock(&shared.errors).push(format!("{name}: unreadable shard: {e}"));
                lease.reject().await?;
                continue;
            }
        };
        let Work::Ports(spec) = &task.work else {
            lock(&shared.errors).push(format!("{name}: a DNS shard, handed back"));
            lease.release(None).await?;
            continue;
        };
        let observations = match synthetic(spec, a.open_every) {
            Ok(o) => o,
            Err(e) => {
                lock(&shared.errors).push(format!("{name}: shard {}: {e}", task.shard));
                lease.release(None).await?;
                continue;
            }
        };
        let head = ResultPart {
            tenant: task.tenant.clone(),
            scan: task.scan.clone(),
            shard: task.shard,
            run: format!("bench-{name}-{}-{}", task.shard, lease.delivered),
            part: 0,
            last: false,
            source: None,
            probes_sent: spec.probes(),
            observations: vec![],
        };
        let parts = split_parts(&head, &observations)?;
        let (n_parts, bytes) = (parts.len(), parts.iter().map(Vec::len).sum());
        let built = Instant::now();
        publish_parts(&js, &name, parts).await?;
        let published = Instant::now();
        let published_at_ms = epoch_ms();
        lease.finish().await?;
        let acked = Instant::now();
        lock(&shared.timings).push(ShardTiming {
            worker: name.clone(),
            scan: task.scan.clone(),
            shard: task.shard,
            delivered: lease.delivered,
            observations: observations.len(),
            parts: n_parts,
            bytes,
            pulled_at_ms,
            published_at_ms,
            acked_at_ms: epoch_ms(),
            pull_ms: ms(pulled - t0),
            build_ms: ms(built - pulled),
            publish_ms: ms(published - built),
            ack_ms: ms(acked - published),
        });
        *lock(&shared.last_pull) = Some(Instant::now());
    }
    client.flush().await.ok();
    Ok(())
}

/// The server's ack metrics of the shards consumer, one JSON line each, into `out`.
async fn watch_acks(a: &Args, out: &std::path::Path) -> Result<usize, String> {
    use aperture_bus::async_nats::jetstream::consumer::{Config, Consumer};
    use aperture_bus::futures_util::StreamExt;
    let auth = BusAuth {
        nkey_file: a.nkey.clone(),
        ..BusAuth::default()
    };
    let client = connect(&a.bus, &auth, "bench-ack-watch", None)
        .await
        .map_err(|e| e.to_string())?;
    let js = aperture_bus::async_nats::jetstream::new(client.clone());
    let subject = format!("$JS.EVENT.METRIC.CONSUMER.ACK.{SHARDS_STREAM}.{WORKERS_CONSUMER}");
    let mut metrics = client.subscribe(subject).await.map_err(|e| e.to_string())?;
    // The coordinator made the consumer; sampling is one of the settings a durable
    // consumer may change in place (create-or-update with the same name).
    let stream = js
        .get_stream(SHARDS_STREAM)
        .await
        .map_err(|e| format!("stream {SHARDS_STREAM}: {e}"))?;
    let mut consumer: Consumer<Config> = stream
        .get_consumer(WORKERS_CONSUMER)
        .await
        .map_err(|e| format!("consumer {WORKERS_CONSUMER}: {e}"))?;
    let mut config = consumer
        .info()
        .await
        .map_err(|e| e.to_string())?
        .config
        .clone();
    config.sample_frequency = 100;
    stream
        .create_consumer(config)
        .await
        .map_err(|e| format!("turning on ack sampling: {e}"))?;
    let mut file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let deadline = tokio::time::sleep(a.max);
    tokio::pin!(deadline);
    eprintln!("bench_ingest: watching acks");
    let mut seen = 0;
    loop {
        let msg = tokio::select! {
            m = metrics.next() => m,
            _ = term.recv() => None,
            _ = &mut deadline => None,
        };
        let Some(msg) = msg else { break };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&msg.payload) else {
            continue;
        };
        let line = serde_json::json!({
            "stream_seq": v["stream_seq"],
            "deliveries": v["deliveries"],
            "ack_ms": v["ack_time"].as_f64().unwrap_or(f64::NAN) / 1e6,
            "at_ms": epoch_ms(),
        });
        writeln!(file, "{line}")
            .and_then(|()| file.flush())
            .map_err(|e| e.to_string())?;
        seen += 1;
    }
    Ok(seen)
}

/// User and system CPU seconds of this process (Linux: /proc/self/stat, in clock ticks
/// of 1/100 s, the kernel's USER_HZ on every Linux this runs on).
fn cpu_secs() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    (tick(11), tick(12))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let a = args();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench_ingest: runtime: {e}");
            std::process::exit(1)
        }
    };
    if let Some(out) = a.watch_acks.clone() {
        match rt.block_on(watch_acks(&a, &out)) {
            Ok(n) => {
                println!("{}", serde_json::json!({ "acks": n }));
                return;
            }
            Err(e) => {
                eprintln!("bench_ingest: {e}");
                std::process::exit(1)
            }
        }
    }
    let shared = Arc::new(Shared::default());
    let began = Instant::now();
    let failures: Vec<String> = rt.block_on(async {
        let handles: Vec<_> = a
            .workers
            .iter()
            .map(|w| tokio::spawn(fake_worker(w.clone(), a.clone(), shared.clone(), began)))
            .collect();
        let mut failures = Vec::new();
        for (w, h) in a.workers.iter().zip(handles) {
            match h.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("{w}: {e}")),
                Err(e) => failures.push(format!("{w}: {e}")),
            }
        }
        failures
    });
    let timings = std::mem::take(&mut *lock(&shared.timings));
    let errors = std::mem::take(&mut *lock(&shared.errors));
    if let Some(path) = &a.shards_out {
        let written = std::fs::File::create(path).and_then(|mut f| {
            for t in &timings {
                writeln!(f, "{}", serde_json::to_string(t).unwrap_or_default())?;
            }
            Ok(())
        });
        if let Err(e) = written {
            eprintln!("bench_ingest: writing {}: {e}", path.display());
        }
    }
    let mut bus: Vec<f64> = timings
        .iter()
        .map(|t| t.pull_ms + t.publish_ms + t.ack_ms)
        .collect();
    bus.sort_by(f64::total_cmp);
    let (user, system) = cpu_secs();
    let first = timings.iter().map(|t| t.pulled_at_ms).min().unwrap_or(0);
    let last = timings.iter().map(|t| t.acked_at_ms).max().unwrap_or(0);
    let summary = serde_json::json!({
        "workers": a.workers.len(),
        "shards": timings.len(),
        "redeliveries": timings.iter().filter(|t| t.delivered > 1).count(),
        "observations": timings.iter().map(|t| t.observations).sum::<usize>(),
        "parts": timings.iter().map(|t| t.parts).sum::<usize>(),
        "bytes": timings.iter().map(|t| t.bytes).sum::<usize>(),
        "first_pull_ms": first,
        "last_ack_ms": last,
        "bus_ms_p50": percentile(&bus, 50.0),
        "bus_ms_p99": percentile(&bus, 99.0),
        "cpu_user_s": user,
        "cpu_system_s": system,
        "errors": errors.iter().chain(failures.iter()).collect::<Vec<_>>(),
    });
    println!("{summary}");
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
