//! Results from workers: every part is checked against the shard it claims to belong to
//! (a compromised worker cannot inject assets into a tenant), the parts of one run are
//! put together, and a complete run is stored once per (scan, shard).
//!
//! Before a run is stored, the vantage check runs with it counted: a worker whose hit rate
//! falls far below its peers' is flagged, its stored shards are reopened and requeued for
//! the others, and its own run is not stored — so the batch that completes a scan (and
//! sweeps what it did not see) is never one a blocked vantage left short.

use super::dispatch::{close, publish_task};
use super::ledger::blocked_vantages;
use super::{audit, run_key, Coordinator, ShardState};
use crate::serve::state::{now_ms, SharedState, WorkerLabels};
use aperture_bus::async_nats::jetstream::{AckKind, Message};
use aperture_bus::futures_util::StreamExt;
use aperture_bus::wire::{decode, ResultPart, ShardTask, Work};
use aperture_bus::{worker_of_subject, COORDINATOR_CONSUMER, RESULTS_STREAM};
use aperture_fingerprints::PortState;
use aperture_storage::access::JobState;
use aperture_storage::{Batch, Observation, TenantId, Vantage};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The parts of one run received so far.
#[derive(Debug, Default)]
pub struct RunParts {
    worker: String,
    parts: BTreeMap<u32, ResultPart<Observation>>,
    messages: Vec<Message>,
    last: Option<u32>,
}

impl RunParts {
    fn complete(&self) -> bool {
        self.last
            .is_some_and(|last| (0..=last).all(|p| self.parts.contains_key(&p)))
    }
}

pub async fn results_loop(state: SharedState, coord: Arc<Coordinator>) {
    loop {
        let consumer = match coord
            .js
            .get_consumer_from_stream::<aperture_bus::async_nats::jetstream::consumer::pull::Config, _, _>(
                COORDINATOR_CONSUMER,
                RESULTS_STREAM,
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("bus: results consumer: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let batch = consumer
                .batch()
                .max_messages(16)
                .expires(Duration::from_secs(1))
                .messages()
                .await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("bus: pulling results: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            };
            // The whole batch first, then the store: the client ends a pull on its own
            // timer, and parts left unread behind a slow store would wait out the ack
            // wait (60 s) before coming back.
            let mut received = Vec::new();
            while let Some(msg) = batch.next().await {
                match msg {
                    Ok(msg) => received.push(msg),
                    Err(e) => {
                        eprintln!("bus: results: {e}");
                        break;
                    }
                }
            }
            for msg in received {
                on_part(&state, &coord, msg).await;
            }
        }
    }
}

async fn ack(msg: &Message) {
    let _ = msg.ack().await;
}

/// A part refused: audited, counted, dropped; its shard requeued if still undone.
async fn refuse(
    state: &SharedState,
    coord: &Coordinator,
    worker: &str,
    tenant: Option<&TenantId>,
    why: String,
    requeue: Option<ShardTask>,
) {
    eprintln!("bus: refused results from worker {worker}: {why}");
    audit(state, tenant, "results refused".into(), why, worker);
    state
        .metrics
        .worker_refusals
        .get_or_create(&WorkerLabels {
            worker: worker.to_owned(),
        })
        .inc();
    if let Some(w) = coord.inner().workers.get_mut(worker) {
        w.refusals += 1;
    }
    if let Some(task) = requeue {
        publish_task(coord, &task, None).await;
    }
}

async fn on_part(state: &SharedState, coord: &Coordinator, msg: Message) {
    let Some(worker) = worker_of_subject(&msg.subject).map(str::to_owned) else {
        ack(&msg).await;
        return;
    };
    let part: ResultPart<Observation> = match decode("results part", &msg.payload) {
        Ok(p) => p,
        Err(e) => {
            ack(&msg).await;
            refuse(state, coord, &worker, None, e.to_string(), None).await;
            return;
        }
    };
    let key = run_key(&part.tenant, &part.scan);
    let tenant = TenantId::new(&part.tenant).ok();
    // Checked under the lock; I/O after it.
    enum Next {
        Drop,
        Later,
        Refuse(String, Option<ShardTask>),
        Held,
        Complete(Box<RunParts>),
    }
    let next = {
        let mut inner = coord.inner();
        match inner.scans.get_mut(&key) {
            None => {
                let live = tenant
                    .as_ref()
                    .and_then(|t| state.store.job(t, &part.scan).ok())
                    .map(|j| j.state.is_live());
                match live {
                    Some(true) => Next::Later,
                    Some(false) => Next::Drop,
                    None => Next::Refuse(
                        format!("results for scan {}, which does not exist", key),
                        None,
                    ),
                }
            }
            Some(run) => match run.shards.get(part.shard as usize) {
                None => Next::Refuse(
                    format!(
                        "results for shard {} of {key}, which has {} shards",
                        part.shard,
                        run.shards.len()
                    ),
                    None,
                ),
                Some(ShardState::Done { .. }) => Next::Drop,
                Some(_) => match outside(run, &part) {
                    Some(why) => {
                        run.runs.remove(&(part.shard, part.run.clone()));
                        Next::Refuse(why, run.task(part.shard))
                    }
                    None => {
                        let entry = run
                            .runs
                            .entry((part.shard, part.run.clone()))
                            .or_insert_with(|| RunParts {
                                worker: worker.clone(),
                                ..RunParts::default()
                            });
                        if entry.worker != worker {
                            Next::Refuse(
                                format!(
                                    "run {} of {key} shard {} came from two workers",
                                    part.run, part.shard
                                ),
                                None,
                            )
                        } else {
                            if part.last {
                                entry.last = Some(part.part);
                            }
                            let (shard, run_id) = (part.shard, part.run.clone());
                            entry.parts.insert(part.part, part);
                            entry.messages.push(msg.clone());
                            if entry.complete() {
                                match run.runs.remove(&(shard, run_id)) {
                                    Some(parts) => Next::Complete(Box::new(parts)),
                                    None => Next::Held,
                                }
                            } else {
                                Next::Held
                            }
                        }
                    }
                },
            },
        }
    };
    match next {
        Next::Drop => ack(&msg).await,
        Next::Later => {
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
        Next::Refuse(why, requeue) => {
            ack(&msg).await;
            refuse(state, coord, &worker, tenant.as_ref(), why, requeue).await;
        }
        Next::Held => {}
        Next::Complete(parts) => {
            if let Some(tenant) = tenant {
                store_run(state, coord, &tenant, &key, *parts).await;
            }
        }
    }
}

/// Why a part does not belong to its shard, if it does not: every port observation must
/// be one of the shard's (address, port) positions, every name and zone under the
/// scan's domains; nothing else may come from a worker.
fn outside(run: &super::ScanRun, part: &ResultPart<Observation>) -> Option<String> {
    let what = |detail: String| {
        Some(format!(
            "shard {} of {}/{}: {detail}",
            part.shard, run.tenant, run.id
        ))
    };
    // Built once per part: the inverse permutation answers each result in a few steps.
    let spec = match run.specs.get(part.shard as usize).map(|s| s.membership()) {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => return what(format!("its shard does not build: {e}")),
        None => None,
    };
    let domains = match &run.domains {
        Some(Work::Domains { domains, .. }) => domains.as_slice(),
        _ => &[],
    };
    let under = |name: &str| {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        domains.iter().any(|d| {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            name == d || name.ends_with(&format!(".{d}"))
        })
    };
    let mut bad = 0usize;
    let mut example = None;
    for o in &part.observations {
        let ok = match (o, &spec) {
            (Observation::Port(p), Some(spec)) => spec.contains(p.ip, p.port),
            (Observation::Name(n), None) => n.related || under(&n.name),
            (Observation::Zone(z), None) => under(&z.zone),
            _ => false,
        };
        if !ok {
            bad += 1;
            example.get_or_insert_with(|| match o {
                Observation::Port(p) => format!("{}:{}", p.ip, p.port),
                Observation::Name(n) => n.name.clone(),
                Observation::Zone(z) => z.zone.clone(),
                Observation::Unknown { asset, .. } => format!("unknown {asset:?}"),
            });
        }
    }
    if bad == 0 {
        return None;
    }
    what(format!(
        "{bad} result(s) outside the shard's targets, e.g. {}",
        example.unwrap_or_default()
    ))
}

/// Stores a complete run (unless the vantage check flags its worker), then acks its parts.
async fn store_run(
    state: &SharedState,
    coord: &Coordinator,
    tenant: &TenantId,
    key: &str,
    parts: RunParts,
) {
    let worker = parts.worker.clone();
    let mut observations = Vec::new();
    let mut source = None;
    let mut probes = 0;
    let mut shard = 0;
    for (_, p) in parts.parts {
        source = p.source.or(source);
        probes = p.probes_sent;
        shard = p.shard;
        observations.extend(p.observations);
    }
    let open = observations
        .iter()
        .filter(|o| matches!(o, Observation::Port(p) if p.state == PortState::Open))
        .count() as u64;
    // The vantage check, with this run counted.
    let checked = {
        let mut inner = coord.inner();
        inner.scans.get_mut(key).map(|run| {
            // UDP shards answer at another rate than TCP ones (a sample of other
            // ports): only TCP shards are compared across vantages.
            let tcp_run = run
                .specs
                .get(shard as usize)
                .is_some_and(|s| s.udp.is_none());
            if tcp_run {
                let v = run.vantages.entry(worker.clone()).or_default();
                v.source = source.map(|s| s.to_string());
                v.probes += probes;
                v.open += open;
                v.shards += 1;
            }
            let newly = blocked_vantages(&run.vantages, &run.flagged);
            run.flagged.extend(newly.iter().cloned());
            let mut requeue = Vec::new();
            if run.flagged.contains(&worker) {
                requeue.push(shard);
            }
            let range = run
                .specs
                .get(shard as usize)
                .and_then(|s| s.segments.first().copied());
            (run.id.clone(), range, newly, requeue)
        })
    };
    let Some((scan_id, range, newly, requeue)) = checked else {
        for m in &parts.messages {
            ack(m).await;
        }
        return;
    };
    let mut requeue = requeue;
    for w in &newly {
        state
            .metrics
            .worker_flagged
            .get_or_create(&WorkerLabels { worker: w.clone() })
            .inc();
        audit(
            state,
            Some(tenant),
            "vantage flagged".into(),
            format!("worker {w} sees far fewer open ports than its peers on {scan_id}: its shards are rerun by others"),
            w,
        );
        // Its stored shards come back to run elsewhere.
        let mine: Vec<u32> = {
            let inner = coord.inner();
            inner
                .scans
                .get(key)
                .map(|run| {
                    run.shards
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| matches!(s, ShardState::Done { worker } if worker == w))
                        .map(|(i, _)| i as u32)
                        .collect()
                })
                .unwrap_or_default()
        };
        let store = state.store.clone();
        let (t, s) = (tenant.clone(), scan_id.clone());
        let reopened = tokio::task::spawn_blocking(move || store.reopen_shards(&t, &s, &mine))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match reopened {
            Ok(list) => requeue.extend(list),
            Err(e) => eprintln!("bus: reopening {w}'s shards of {scan_id}: {e}"),
        }
    }
    if !requeue.is_empty() {
        let tasks: Vec<ShardTask> = {
            let mut inner = coord.inner();
            match inner.scans.get_mut(key) {
                Some(run) => requeue
                    .iter()
                    .filter_map(|&s| {
                        if let Some(st) = run.shards.get_mut(s as usize) {
                            *st = ShardState::Pending;
                        }
                        run.task(s)
                    })
                    .collect(),
                None => Vec::new(),
            }
        };
        for t in &tasks {
            publish_task(coord, t, None).await;
        }
        if requeue.contains(&shard) {
            for m in &parts.messages {
                ack(m).await;
            }
            return;
        }
    }
    let batch = Batch {
        scan: scan_id.clone(),
        shard,
        at: now_ms(),
        range,
        observations,
    };
    let vantage = Vantage {
        worker: worker.clone(),
        source,
    };
    let n = batch.observations.len() as u64;
    let began = Instant::now();
    let store = state.store.clone();
    let t = tenant.clone();
    let applied = tokio::task::spawn_blocking(move || {
        let applied = store.apply_from(&t, &batch, Some(&vantage))?;
        store.run_policy(&t, now_ms())?;
        Ok::<_, aperture_storage::StoreError>(applied)
    })
    .await;
    let applied = match applied {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            // Refused by the store (the scan was cancelled meanwhile): nothing to redo.
            eprintln!("bus: storing shard {shard} of {key}: {e}");
            for m in &parts.messages {
                ack(m).await;
            }
            return;
        }
        // The blocking task died: leave the parts unacked, they come back.
        Err(_) => return,
    };
    let m = &state.metrics;
    m.ingest_batches.inc();
    m.results.inc_by(n);
    m.ingest_seconds.observe(began.elapsed().as_secs_f64());
    m.probes_sent.inc_by(probes);
    m.worker_shards
        .get_or_create(&WorkerLabels {
            worker: worker.clone(),
        })
        .inc();
    {
        let mut inner = coord.inner();
        if let Some(w) = inner.workers.get_mut(&worker) {
            w.stored_shards += 1;
        }
        if let Some(run) = inner.scans.get_mut(key) {
            if let Some(s) = run.shards.get_mut(shard as usize) {
                *s = ShardState::Done {
                    worker: worker.clone(),
                };
            }
            run.last_progress = Instant::now();
            // As the engine's own counter would: the scan view's rate and ETA follow.
            run.handle
                .progress
                .sent
                .fetch_add(probes, Ordering::Relaxed);
            run.handle.found.fetch_add(n, Ordering::Relaxed);
            // Other runs of the same shard are moot now.
            let moot: Vec<(u32, String)> = run
                .runs
                .keys()
                .filter(|(s, _)| *s == shard)
                .cloned()
                .collect();
            for k in moot {
                if let Some(p) = run.runs.remove(&k) {
                    for msg in p.messages {
                        tokio::spawn(async move { ack(&msg).await });
                    }
                }
            }
        }
    }
    for msg in &parts.messages {
        ack(msg).await;
    }
    if applied.completed_scan {
        if let Ok(mut job) = state.store.job(tenant, &scan_id) {
            job.state = JobState::Completed;
            job.finished = Some(now_ms());
            let _ = state.store.put_job(&job);
            state.metrics.scans_completed.inc();
        }
        close(state, coord, key);
    }
}
