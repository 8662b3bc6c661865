//! `aperture worker`: a remote probe worker. It is the mapper plus a bus client — no store,
//! no HTTP: it pulls one shard at a time, runs it with the same engines as `aperture scan`
//! and the service, sends the results back in parts, and acknowledges the shard only once
//! the results are stored on the bus.
//!
//! While a shard runs, the worker asks the coordinator once a second for its share of the
//! scan's rate (a lease: not renewed in time, the engine pauses), and keeps the shard with
//! progress acks only while the engine really makes progress — a hung worker loses it.
//! SIGTERM stops the running shard and hands it back at once; `kill -9` loses nothing
//! either: the shard comes back to another worker after the ack wait.

use crate::cli::WorkerArgs;
use crate::{EXIT_BAD_INPUT, EXIT_FAILED};
use aperture_bus::auth::{connect, BusAuth};
use aperture_bus::lease::{publish_parts, Lease, ShardQueue};
use aperture_bus::wire::{
    decode, encode, split_parts, Grant, Heartbeat, ResultPart, Running, ShardTask, WireObservation,
    Work,
};
use aperture_bus::{heartbeat_subject, inbox_prefix, valid_name, BusError};
use aperture_fingerprints::PortObservation;
use aperture_mapper::engine::Progress;
use aperture_mapper::pace::RateHandle;
use aperture_mapper::run::{run_shard, Failure, PortSink};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Settings from the worker's TOML file; flags and environment override them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkerFile {
    bus: Option<String>,
    name: Option<String>,
    nkey: Option<PathBuf>,
    user: Option<String>,
    password: Option<String>,
    ca: Option<PathBuf>,
    source_ip: Option<Ipv4Addr>,
    no_syn: Option<bool>,
}

/// A worker's settings, resolved.
#[derive(Debug)]
struct Settings {
    url: String,
    name: String,
    auth: BusAuth,
    source_ip: Option<Ipv4Addr>,
    no_syn: bool,
    max_shards: Option<u64>,
}

fn settings(args: WorkerArgs) -> Result<Settings, String> {
    let file: WorkerFile = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("worker config {}: {e}", path.display()))?;
            toml::from_str(&text).map_err(|e| format!("worker config {}: {e}", path.display()))?
        }
        None => WorkerFile::default(),
    };
    let url = args
        .bus
        .or(file.bus)
        .ok_or("give the coordinator's bus: --bus nats://HOST:4222 (or APERTURE_BUS_URL)")?;
    let name = args
        .name
        .or(file.name)
        .ok_or("give this worker's name: --name W (as `aperture bus init --workers` listed it)")?;
    if !valid_name(&name) {
        return Err(format!(
            "worker name {name:?}: use letters, digits, '-' and '_' (at most 64)"
        ));
    }
    let auth = BusAuth {
        nkey_file: args.nkey.or(file.nkey),
        user: args.user.or(file.user),
        password: args.password.or(file.password),
        ca_file: args.ca.or(file.ca),
    };
    if auth.nkey_file.is_none() && (auth.user.is_none() || auth.password.is_none()) {
        return Err(
            "give a credential: --nkey worker-NAME.nk (from `aperture bus init`) or --user and --password"
                .into(),
        );
    }
    Ok(Settings {
        url,
        name,
        auth,
        source_ip: args.source_ip.or(file.source_ip),
        no_syn: args.no_syn || file.no_syn.unwrap_or(false),
        max_shards: args.max_shards,
    })
}

pub fn run(args: WorkerArgs) -> ExitCode {
    let s = match settings(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("aperture: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("aperture: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("aperture: cannot handle signals: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    }
    match rt.block_on(work(&rt, s, stop)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aperture: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// What the heartbeat task and the shard loop share.
#[derive(Debug, Default)]
struct Shared {
    running: Mutex<Option<Running>>,
    source: Mutex<Option<IpAddr>>,
    grant: Mutex<Option<(Grant, Instant)>>,
    /// The running shard's engine progress, for probes/s and the progress acks.
    progress: Mutex<Option<Arc<Progress>>>,
    shards_done: AtomicU64,
    probes_before: AtomicU64,
    /// (when, probes sent) at the last heartbeat: the rate between two.
    last_beat: Mutex<Option<(Instant, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn probes_sent(&self) -> u64 {
        let now = lock(&self.progress)
            .as_ref()
            .map_or(0, |p| Progress::get(&p.sent));
        self.probes_before.load(Ordering::Relaxed) + now
    }

    /// The granted rate if the lease is still valid (0: wait).
    fn rate(&self) -> u64 {
        match &*lock(&self.grant) {
            Some((g, at)) if at.elapsed() < Duration::from_millis(g.lease_ms) => g.rate,
            _ => 0,
        }
    }
}

async fn work(
    rt: &tokio::runtime::Runtime,
    s: Settings,
    stop: Arc<AtomicBool>,
) -> Result<(), BusError> {
    let client = connect(&s.url, &s.auth, &s.name, Some(&inbox_prefix(&s.name))).await?;
    let js = aperture_bus::async_nats::jetstream::new(client.clone());
    // The coordinator makes the streams: wait for it rather than fail.
    let queue = loop {
        match ShardQueue::open(&js).await {
            Ok(q) => break q,
            Err(e) if stop.load(Ordering::SeqCst) => return Err(e),
            Err(e) => {
                eprintln!(
                    "aperture worker {}: waiting for the coordinator: {e}",
                    s.name
                );
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    eprintln!("aperture worker {}: connected to {}", s.name, s.url);
    let shared = Arc::new(Shared::default());
    let beat = tokio::spawn(heartbeats(client.clone(), s.name.clone(), shared.clone()));
    let mut done = 0u64;
    while !stop.load(Ordering::SeqCst) && s.max_shards.is_none_or(|m| done < m) {
        // Bounded: while the server is unreachable a pull can wait for the reconnection
        // for ever, and a SIGTERM must still end the worker.
        let pulled =
            tokio::time::timeout(Duration::from_secs(5), queue.next(Duration::from_secs(2))).await;
        let lease = match pulled.unwrap_or(Ok(None)) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("aperture worker {}: {e}", s.name);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if run_lease(rt, &s, &js, &client, &shared, &lease, &stop).await? {
            done += 1;
            shared.shards_done.fetch_add(1, Ordering::Relaxed);
        }
        *lock(&shared.running) = None;
    }
    beat.abort();
    // Tell the coordinator at once that this worker's share is free.
    let _ = send_heartbeat(&client, &s.name, &shared).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    Ok(())
}

/// Runs one leased shard. `Ok(true)`: done and acknowledged.
async fn run_lease(
    rt: &tokio::runtime::Runtime,
    s: &Settings,
    js: &aperture_bus::async_nats::jetstream::Context,
    client: &aperture_bus::async_nats::Client,
    shared: &Arc<Shared>,
    lease: &Lease,
    stop: &Arc<AtomicBool>,
) -> Result<bool, BusError> {
    let task = match &lease.task {
        Ok(t) => t.clone(),
        Err(e) => {
            eprintln!(
                "aperture worker {}: dropping an unreadable shard: {e}",
                s.name
            );
            lease.reject().await?;
            return Ok(false);
        }
    };
    let release = |why: &str| {
        eprintln!(
            "aperture worker {}: handing back {}/{} shard {}: {why}",
            s.name, task.tenant, task.scan, task.shard
        )
    };
    if let Work::Ports(spec) = &task.work {
        if !spec.settings.use_connect && s.no_syn {
            release("a SYN shard, and this worker runs connect only (--no-syn)");
            lease.release(Some(Duration::from_secs(1))).await?;
            return Ok(false);
        }
    }
    *lock(&shared.source) = vantage_source(s, &task);
    *lock(&shared.running) = Some(Running {
        tenant: task.tenant.clone(),
        scan: task.scan.clone(),
        shard: task.shard,
        stream_seq: lease.stream_seq,
    });
    // A share of the scan's rate first: the coordinator may say wait, or not this worker.
    let rate = RateHandle::new(0);
    let started = Instant::now();
    loop {
        if let Some(grant) = send_heartbeat(client, &s.name, shared).await {
            if let Some(why) = &grant.refuse {
                // The coordinator requeued the shard for others (or it is moot): this
                // delivery ends here, and this worker pauses so the others take it.
                release(why);
                lease.reject().await?;
                tokio::time::sleep(Duration::from_secs(2)).await;
                return Ok(false);
            }
            if grant.rate > 0 {
                break;
            }
        }
        if stop.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(10) {
            release("no share of the scan's rate was granted");
            lease.release(None).await?;
            return Ok(false);
        }
        lease.progress().await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    rate.set(shared.rate());
    eprintln!(
        "aperture worker {}: running {}/{} shard {} (delivery {})",
        s.name, task.tenant, task.scan, task.shard, lease.delivered
    );
    let progress = Arc::new(Progress::default());
    *lock(&shared.progress) = Some(progress.clone());
    let halt = Arc::new(AtomicBool::new(false));
    let sink = Arc::new(Collector::default());
    let engine = {
        let (task, rate, progress, halt, sink) = (
            task.clone(),
            rate.clone(),
            progress.clone(),
            halt.clone(),
            sink.clone(),
        );
        let handle = rt.handle().clone();
        let source_ip = s.source_ip;
        tokio::task::spawn_blocking(move || {
            run_work(&handle, task, source_ip, rate, &progress, &halt, sink)
        })
    };
    let outcome = keep_lease(lease, shared, &rate, &progress, &halt, stop, engine).await?;
    let probes = Progress::get(&progress.sent);
    shared.probes_before.fetch_add(probes, Ordering::Relaxed);
    *lock(&shared.progress) = None;
    match outcome {
        Ok(()) if !halt.load(Ordering::SeqCst) => {}
        Ok(()) if refused(shared) => {
            release("the coordinator refused this worker the scan");
            lease.reject().await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Ok(false);
        }
        Ok(()) => {
            release("stopping");
            lease.release(None).await?;
            return Ok(false);
        }
        Err(Failure::BadInput(why)) | Err(Failure::Failed(why)) => {
            release(&why);
            lease.release(Some(Duration::from_secs(2))).await?;
            return Ok(false);
        }
        Err(e) => {
            release(&e.to_string());
            lease.release(Some(Duration::from_secs(2))).await?;
            return Ok(false);
        }
    }
    let observations = sink.take();
    let head = ResultPart {
        tenant: task.tenant.clone(),
        scan: task.scan.clone(),
        shard: task.shard,
        run: run_id(),
        part: 0,
        last: false,
        source: *lock(&shared.source),
        probes_sent: probes,
        observations: vec![],
    };
    let parts = split_parts(&head, &observations)?;
    publish_parts(js, &s.name, parts).await?;
    // Stored on the bus: now the shard is done. A failed ack (the lease went to another
    // worker meanwhile) is harmless — the coordinator stores one run per shard.
    if let Err(e) = lease.finish().await {
        eprintln!(
            "aperture worker {}: ack of shard {}: {e}",
            s.name, task.shard
        );
    }
    Ok(true)
}

/// Holds the lease while the engine runs: renews the rate from the grants, and sends a
/// progress ack only while the engine makes progress (or is in its bounded final wait).
async fn keep_lease(
    lease: &Lease,
    shared: &Shared,
    rate: &RateHandle,
    progress: &Progress,
    halt: &AtomicBool,
    stop: &AtomicBool,
    mut engine: tokio::task::JoinHandle<Result<(), Failure>>,
) -> Result<Result<(), Failure>, BusError> {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut last_seen = (u64::MAX, u64::MAX);
    let mut last_change = Instant::now();
    let mut last_ack = Instant::now();
    loop {
        tokio::select! {
            joined = &mut engine => {
                return Ok(joined.unwrap_or_else(|e| Err(Failure::Failed(format!("the engine panicked: {e}")))));
            }
            _ = tick.tick() => {}
        }
        if stop.load(Ordering::SeqCst) || refused(shared) {
            halt.store(true, Ordering::SeqCst);
        }
        rate.set(shared.rate());
        let seen = (
            Progress::get(&progress.sent),
            Progress::get(&progress.open) + Progress::get(&progress.closed),
        );
        if seen != last_seen {
            last_seen = seen;
            last_change = Instant::now();
        }
        // Waiting for a grant is progress too: the budget is busy, the worker is not hung.
        let waiting = rate.get() == 0;
        if (last_change.elapsed() < Duration::from_secs(10) || waiting)
            && last_ack.elapsed() >= Duration::from_secs(2)
        {
            lease.progress().await?;
            last_ack = Instant::now();
        }
    }
}

fn refused(shared: &Shared) -> bool {
    lock(&shared.grant)
        .as_ref()
        .is_some_and(|(g, _)| g.refuse.is_some())
}

/// Runs the task's work on this (blocking) thread, into `sink`.
fn run_work(
    rt: &tokio::runtime::Handle,
    task: ShardTask,
    source_ip: Option<Ipv4Addr>,
    rate: RateHandle,
    progress: &Arc<Progress>,
    halt: &Arc<AtomicBool>,
    sink: Arc<Collector>,
) -> Result<(), Failure> {
    match task.work {
        Work::Ports(spec) => {
            let mut spec = *spec;
            spec.settings.rate = rate;
            if source_ip.is_some() {
                spec.settings.source_ip = source_ip;
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| Failure::Failed(format!("cannot start a runtime: {e}")))?;
            run_shard(&runtime, &spec, progress, halt, sink)?;
            Ok(())
        }
        Work::Domains {
            domains,
            resolvers,
            qps,
        } => rt.block_on(async move {
            let resolvers = if resolvers.is_empty() {
                crate::domains::system_resolvers().map_err(Failure::Failed)?
            } else {
                resolvers
            };
            let result =
                aperture_mapper::dns::enumerate_domains(&domains, resolvers, u64::from(qps))
                    .await
                    .map_err(|e| Failure::BadInput(e.to_string()))?;
            let mut out = lock(&sink.observations);
            out.extend(result.zones.into_iter().map(WireObservation::Zone));
            out.extend(result.names.into_iter().map(WireObservation::Name));
            Ok(())
        }),
    }
}

/// The run's observations, kept until the shard is done (a shard is small).
#[derive(Debug, Default)]
struct Collector {
    observations: Mutex<Vec<WireObservation>>,
}

impl Collector {
    fn take(&self) -> Vec<WireObservation> {
        std::mem::take(&mut *lock(&self.observations))
    }
}

impl PortSink for Collector {
    fn observation(&self, _segment: usize, obs: PortObservation) -> bool {
        lock(&self.observations).push(WireObservation::Port(obs));
        true
    }
}

/// The address this worker's probes of `task` leave from: what its vantage is.
fn vantage_source(s: &Settings, task: &ShardTask) -> Option<IpAddr> {
    if let Some(ip) = s.source_ip {
        return Some(IpAddr::V4(ip));
    }
    match &task.work {
        Work::Ports(spec) => spec
            .build()
            .ok()
            .and_then(|(plan, _)| plan.space.v4().nth(0))
            .map(Ipv4Addr::from)
            .and_then(aperture_mapper::rawsock::source_for)
            .map(IpAddr::V4),
        Work::Domains { .. } => None,
    }
}

fn run_id() -> String {
    format!("{:016x}", aperture_mapper::entropy::random_u64())
}

/// Once a second: the worker's state to the coordinator, its grant back.
async fn heartbeats(client: aperture_bus::async_nats::Client, name: String, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let _ = send_heartbeat(&client, &name, &shared).await;
    }
}

async fn send_heartbeat(
    client: &aperture_bus::async_nats::Client,
    name: &str,
    shared: &Shared,
) -> Option<Grant> {
    let sent = shared.probes_sent();
    let rate = {
        let mut last = lock(&shared.last_beat);
        let now = Instant::now();
        let rate = match *last {
            Some((at, before)) => {
                sent.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64().max(1e-3)
            }
            None => 0.0,
        };
        *last = Some((now, sent));
        rate
    };
    let beat = Heartbeat {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        source: *lock(&shared.source),
        running: lock(&shared.running).clone(),
        shards_done: shared.shards_done.load(Ordering::Relaxed),
        probes_sent: sent,
        probes_per_sec: rate,
    };
    let reply = tokio::time::timeout(
        Duration::from_secs(2),
        client.request(heartbeat_subject(name), encode(&beat).into()),
    )
    .await
    .ok()?
    .ok()?;
    let grant: Grant = decode("grant", &reply.payload).ok()?;
    *lock(&shared.grant) = Some((grant.clone(), Instant::now()));
    Some(grant)
}
