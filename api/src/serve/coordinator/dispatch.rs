//! Getting shards to workers: a scan's shards are published when it is taken up, purged
//! when it is cancelled, marked failed when the server gives up on one, and republished
//! when reconciliation finds one in neither stream.

use super::{run_key, Coordinator, ScanRun, ShardState};
use crate::serve::jobs::{port_work, scope_problem};
use crate::serve::state::{now_ms, RunHandle, SharedState};
use crate::serve::windows;
use aperture_bus::wire::{encode, ShardTask, Work};
use aperture_bus::{shard_subject, COORDINATOR_CONSUMER, RESULTS_STREAM, SHARDS_STREAM};
use aperture_storage::access::{JobState, ScanJob};
use aperture_storage::TenantId;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Publishes one shard. `msg_id` lets the server drop a second copy published within its
/// duplicate window (a coordinator restarting right after publishing).
pub async fn publish_task(coord: &Coordinator, task: &ShardTask, msg_id: Option<String>) -> bool {
    let subject = shard_subject(&task.tenant, &task.scan, task.shard);
    let mut headers = aperture_bus::async_nats::HeaderMap::new();
    if let Some(id) = msg_id {
        headers.insert("Nats-Msg-Id", id.as_str());
    }
    let sent = aperture_bus::lease::publish_stored(
        &coord.js,
        &subject,
        Some(headers),
        encode(task),
        10,
        Duration::from_millis(500),
    )
    .await;
    match sent {
        Ok(()) => true,
        Err(e) => {
            eprintln!("bus: {e}");
            false
        }
    }
}

/// Whether a shard's message is still in the shards stream.
async fn waiting(coord: &Coordinator, tenant: &str, scan: &str, shard: u32) -> Option<bool> {
    let stream = coord.js.get_stream(SHARDS_STREAM).await.ok()?;
    match stream
        .get_last_raw_message_by_subject(&shard_subject(tenant, scan, shard))
        .await
    {
        Ok(_) => Some(true),
        Err(e)
            if e.kind()
                == aperture_bus::async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
        {
            Some(false)
        }
        Err(_) => None,
    }
}

/// Once a second (and when woken): takes up new scans, notices cancelled and completed
/// ones, and reconciles stalled ones with the stream.
pub async fn dispatch_loop(state: SharedState, coord: Arc<Coordinator>) {
    let mut reconciled = Instant::now();
    let mut first = true;
    loop {
        if let Ok(jobs) = state.store.live_jobs() {
            let now = now_ms();
            for job in jobs {
                let key = run_key(job.tenant.as_str(), &job.id);
                if coord.inner().scans.contains_key(&key) || !windows::due(&job, now) {
                    continue;
                }
                // Outside its window: recorded as waiting, taken up when it opens.
                if !matches!(
                    windows::gate_job(&state, &job),
                    Some(windows::Gate::Open(_))
                ) {
                    continue;
                }
                take_up(&state, &coord, job).await;
            }
        }
        check_runs(&state, &coord).await;
        pause_runs(&state, &coord);
        let every = coord.lease.ack_wait.max(Duration::from_secs(5));
        if first || reconciled.elapsed() > every {
            reconcile(&coord, first).await;
            reconciled = Instant::now();
            first = false;
        }
        let wake = coord.wake.notified();
        let _ = tokio::time::timeout(Duration::from_secs(1), wake).await;
    }
}

/// Plans a live scan and publishes the shards it still needs. A scan that was running
/// before this process started has its shards published only where the stream lost them.
async fn take_up(state: &SharedState, coord: &Coordinator, mut job: ScanJob) {
    // Started before (this process's predecessor ran it, or it paused for its window):
    // some of its shards may wait in the stream already.
    let resumed = job.state == JobState::Running || job.started.is_some();
    let prepared = prepare(state, &job).await;
    let (specs, domains) = match prepared {
        Ok(p) => p,
        Err(why) => {
            let _ = state.store.cancel_scan(&job.tenant, &job.id);
            job.state = JobState::Failed;
            job.error = Some(why);
            job.finished = Some(now_ms());
            let _ = state.store.put_job(&job);
            state.metrics.scans_failed.inc();
            return;
        }
    };
    let Ok(scan) = state.store.scan(&job.tenant, &job.id) else {
        return;
    };
    if job.state != JobState::Running {
        let running = state.store.update_live_job(&job.tenant, &job.id, |j| {
            j.state = JobState::Running;
            j.until = None;
            j.started.get_or_insert_with(now_ms);
        });
        match running {
            Ok(Some(j)) => job = j,
            _ => return,
        }
    }
    let total = specs.len() + usize::from(domains.is_some());
    let shards: Vec<ShardState> = (0..total as u32)
        .map(|s| {
            if scan.shards_done.contains(&s) {
                ShardState::Done {
                    worker: String::new(),
                }
            } else if job.failed_shards.contains(&s) {
                ShardState::Failed {
                    why: "ran out of deliveries".into(),
                }
            } else {
                ShardState::Pending
            }
        })
        .collect();
    let handle = RunHandle::starting(scan.observations);
    let wants = u64::from(job.request.rate.unwrap_or(state.config.default_rate));
    handle.wants.store(wants, Ordering::Relaxed);
    handle.rate.set(wants);
    let key = run_key(job.tenant.as_str(), &job.id);
    state
        .runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone(), handle.clone());
    windows::rebalance(state, &job.tenant);
    state.metrics.scans_running.inc();
    let run = ScanRun {
        tenant: job.tenant.clone(),
        id: job.id.clone(),
        rate: u64::from(job.request.rate.unwrap_or(state.config.default_rate)),
        specs,
        domains,
        shards,
        ledger: Default::default(),
        vantages: BTreeMap::new(),
        // Vantages a verification must not come from again (see `verify`).
        flagged: job.avoid.iter().cloned().collect(),
        runs: Default::default(),
        last_progress: Instant::now(),
        handle,
    };
    let tasks: Vec<ShardTask> = run
        .shards
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, ShardState::Pending))
        .filter_map(|(i, _)| run.task(i as u32))
        .collect();
    coord.inner().scans.insert(key, run);
    for task in tasks {
        if resumed
            && waiting(coord, &task.tenant, &task.scan, task.shard)
                .await
                .unwrap_or(true)
        {
            continue;
        }
        let id = format!("{}/{}/{}", task.tenant, task.scan, task.shard);
        publish_task(coord, &task, Some(id)).await;
    }
}

/// The shard specs of a scan's port shards and its DNS work: the same plan the
/// in-process workers make, checked against the tenant's scope as it is now.
async fn prepare(
    state: &SharedState,
    job: &ScanJob,
) -> Result<(Vec<aperture_mapper::run::ShardSpec>, Option<Work>), String> {
    let scope = state.store.scope(&job.tenant).map_err(|e| e.to_string())?;
    scope_problem(&scope, job)?;
    let specs = match port_work(state, job, &scope).await? {
        Some(work) => (0..job.port_shards)
            .map(|k| work.spec(k))
            .collect::<Result<Vec<_>, String>>()?,
        None => Vec::new(),
    };
    let domains = (!job.request.domains.is_empty()).then(|| Work::Domains {
        domains: job.request.domains.clone(),
        resolvers: state
            .config
            .resolvers
            .iter()
            .filter_map(|r| crate::domains::resolver_addr(r).ok())
            .collect(),
        qps: u32::try_from(state.config.dns_qps).unwrap_or(u32::MAX),
    });
    Ok((specs, domains))
}

/// Cancelled scans: their waiting shards are purged and their workers refused. Completed
/// ones (the store completed them with their last shard) are closed.
async fn check_runs(state: &SharedState, coord: &Coordinator) {
    let keys: Vec<(String, TenantId, String, bool)> = coord
        .inner()
        .scans
        .iter()
        .map(|(k, r)| {
            (
                k.clone(),
                r.tenant.clone(),
                r.id.clone(),
                r.handle.stop.load(Ordering::SeqCst),
            )
        })
        .collect();
    for (key, tenant, id, stopped) in keys {
        let job = match state.store.job(&tenant, &id) {
            Ok(j) => j,
            Err(_) => continue,
        };
        if job.state.is_live() && !stopped {
            continue;
        }
        if job.state == JobState::Cancelled || stopped {
            if let Ok(stream) = coord.js.get_stream(SHARDS_STREAM).await {
                let _ = stream
                    .purge()
                    .filter(format!("aperture.shard.{tenant}.{id}.>"))
                    .await;
            }
        }
        close(state, coord, &key);
    }
}

/// Dispatched scans whose window closed stop getting rate (their workers hold their
/// shards, paused) and are shown waiting; they get rate again when it reopens.
fn pause_runs(state: &SharedState, coord: &Coordinator) {
    let runs: Vec<(TenantId, String, Arc<RunHandle>)> = coord
        .inner()
        .scans
        .values()
        .map(|r| (r.tenant.clone(), r.id.clone(), r.handle.clone()))
        .collect();
    for (tenant, id, handle) in runs {
        let Ok(job) = state.store.job(&tenant, &id) else {
            continue;
        };
        let open = windows::job_rules(state, &job).open_at(now_ms());
        let paused = handle.paused.load(Ordering::SeqCst);
        if !open && !paused {
            handle.paused.store(true, Ordering::SeqCst);
            let _ = windows::gate_job(state, &job);
        } else if open && paused {
            handle.paused.store(false, Ordering::SeqCst);
            let _ = state.store.update_live_job(&tenant, &id, |j| {
                j.state = JobState::Running;
                j.until = None;
            });
        }
    }
}

/// Forgets a dispatched scan (completed, cancelled or failed).
pub(super) fn close(state: &SharedState, coord: &Coordinator, key: &str) {
    let tenant = coord.inner().scans.get(key).map(|r| r.tenant.clone());
    {
        let mut inner = coord.inner();
        if let Some(run) = inner.scans.remove(key) {
            state.metrics.scans_running.dec();
            inner.closed.push_back((key.to_owned(), run.summary()));
            if inner.closed.len() > super::CLOSED_KEPT {
                inner.closed.pop_front();
            }
        }
    }
    state
        .runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(key);
    if let Some(t) = tenant {
        windows::rebalance(state, &t);
    }
}

/// Republishes shards that are neither done, nor waiting in the shards stream, nor on
/// their way in the results stream — what a nats-server crash can lose. Runs only when
/// every result the stream holds has reached this process, so a run in flight is never
/// mistaken for a lost shard; a shard published twice is stored once anyway.
async fn reconcile(coord: &Coordinator, at_start: bool) {
    let pending = match coord
        .js
        .get_consumer_from_stream::<aperture_bus::async_nats::jetstream::consumer::pull::Config, _, _>(
            COORDINATOR_CONSUMER,
            RESULTS_STREAM,
        )
        .await
    {
        Ok(mut c) => match c.info().await {
            Ok(i) => i.num_pending,
            Err(_) => return,
        },
        Err(_) => return,
    };
    if pending > 0 {
        return;
    }
    let stalled_for = coord.lease.ack_wait * 2;
    let candidates: Vec<(String, String, u32, bool)> = {
        let inner = coord.inner();
        inner
            .scans
            .values()
            .filter(|r| at_start || r.last_progress.elapsed() > stalled_for)
            .flat_map(|r| {
                r.shards.iter().enumerate().filter_map(move |(i, s)| {
                    let open = matches!(s, ShardState::Pending | ShardState::Running { .. });
                    let assembling = r.runs.keys().any(|(shard, _)| *shard == i as u32);
                    (open && !assembling)
                        .then(|| (r.tenant.to_string(), r.id.clone(), i as u32, false))
                })
            })
            .collect()
    };
    for (tenant, scan, shard, _) in candidates {
        if waiting(coord, &tenant, &scan, shard).await != Some(false) {
            continue;
        }
        let task = {
            let mut inner = coord.inner();
            let Some(run) = inner.scans.get_mut(&run_key(&tenant, &scan)) else {
                continue;
            };
            run.last_progress = Instant::now();
            run.task(shard)
        };
        if let Some(task) = task {
            eprintln!(
                "bus: shard {shard} of {tenant}/{scan} was in neither stream: published again"
            );
            publish_task(coord, &task, None).await;
        }
    }
}

/// Shards the server gave up on (max deliveries) are marked failed on their scan and
/// taken out of the stream; `retry` puts them back.
pub async fn advisory_loop(
    state: SharedState,
    coord: Arc<Coordinator>,
    mut advisories: aperture_bus::async_nats::Subscriber,
) {
    use aperture_bus::futures_util::StreamExt;
    #[derive(serde::Deserialize)]
    struct Advisory {
        stream_seq: u64,
        deliveries: Option<u64>,
    }
    while let Some(msg) = advisories.next().await {
        let Ok(a) = serde_json::from_slice::<Advisory>(&msg.payload) else {
            continue;
        };
        let Ok(stream) = coord.js.get_stream(SHARDS_STREAM).await else {
            continue;
        };
        let Ok(raw) = stream.get_raw_message(a.stream_seq).await else {
            continue;
        };
        let Ok(task) = aperture_bus::wire::decode::<ShardTask>("shard task", &raw.payload) else {
            continue;
        };
        let _ = stream.delete_message(a.stream_seq).await;
        let why = format!(
            "given up after {} deliveries (workers crashed, hung or failed on it)",
            a.deliveries.unwrap_or(0)
        );
        mark_failed(&state, &coord, &task, why);
    }
}

fn mark_failed(state: &SharedState, coord: &Coordinator, task: &ShardTask, why: String) {
    let Ok(tenant) = TenantId::new(&task.tenant) else {
        return;
    };
    if let Ok(mut job) = state.store.job(&tenant, &task.scan) {
        job.failed_shards.insert(task.shard);
        job.error = Some(format!(
            "shard {}: {why}; retry it with POST …/retry",
            task.shard
        ));
        let _ = state.store.put_job(&job);
    }
    let mut inner = coord.inner();
    if let Some(run) = inner.scans.get_mut(&run_key(&task.tenant, &task.scan)) {
        if let Some(s) = run.shards.get_mut(task.shard as usize) {
            if !matches!(s, ShardState::Done { .. }) {
                *s = ShardState::Failed { why };
            }
        }
    }
}

/// Puts a scan's failed shards back in the stream. Returns how many.
pub async fn retry(
    state: &SharedState,
    coord: &Coordinator,
    tenant: &TenantId,
    scan: &str,
) -> Result<usize, String> {
    let mut job = state.store.job(tenant, scan).map_err(|e| e.to_string())?;
    let failed: Vec<u32> = job.failed_shards.iter().copied().collect();
    job.failed_shards.clear();
    job.error = None;
    state.store.put_job(&job).map_err(|e| e.to_string())?;
    let tasks: Vec<ShardTask> = {
        let mut inner = coord.inner();
        let Some(run) = inner.scans.get_mut(&run_key(tenant.as_str(), scan)) else {
            return Ok(0);
        };
        for &s in &failed {
            if let Some(st) = run.shards.get_mut(s as usize) {
                if matches!(st, ShardState::Failed { .. }) {
                    *st = ShardState::Pending;
                }
            }
        }
        failed.iter().filter_map(|&s| run.task(s)).collect()
    };
    for t in &tasks {
        publish_task(coord, t, None).await;
    }
    Ok(tasks.len())
}
