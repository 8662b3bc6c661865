//! The coordinator of remote workers (`aperture serve` with `bus_url`): it publishes each
//! scan's shards to the shards stream, shares each scan's rate among the workers running
//! it, checks and stores the results they send back, and keeps its store and the stream
//! in agreement across crashes of any process.
//!
//! Who owns what: the store is the truth of which shards are done (one receipt per
//! (scan, shard), so a second run of a shard stores nothing twice); the stream holds the
//! shards still to run; the results stream holds runs not yet stored. At any moment a
//! shard not done is in one of the two streams — unless nats-server lost it (a `kill -9`
//! before its fsync), which the reconciliation finds and republishes.

mod dispatch;
pub use dispatch::retry as dispatch_retry;
pub mod ledger;
mod results;
mod verify;
pub use verify::verify_elsewhere;

use super::state::{now_ms, RunHandle, SharedState, WorkerLabels};
use aperture_bus::auth::{connect, BusAuth};
use aperture_bus::setup::{ensure_streams, LeaseSettings};
use aperture_bus::wire::{Grant, Heartbeat, Running, ShardTask, Work};
use aperture_mapper::run::ShardSpec;
use aperture_storage::access::AuditRecord;
use aperture_storage::{Millis, TenantId};
use ledger::{Ledger, VantageStats};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// How long a rate share lasts without renewal (workers renew every second).
const GRANT_LEASE: Duration = Duration::from_secs(5);
/// A worker silent this long is not live.
const LIVE_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Coordinator {
    pub js: aperture_bus::async_nats::jetstream::Context,
    pub client: aperture_bus::async_nats::Client,
    pub lease: LeaseSettings,
    inner: Mutex<Inner>,
    /// Wakes the dispatcher when a scan is queued or retried.
    pub wake: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Inner {
    workers: BTreeMap<String, WorkerInfo>,
    /// Scans dispatched by this process, by `tenant/scan`.
    scans: HashMap<String, ScanRun>,
    /// Deliveries (stream sequences) already refused and requeued.
    refused: HashSet<u64>,
    /// The distribution of scans closed lately (completed, cancelled), newest last.
    closed: std::collections::VecDeque<(String, ScanWorkers)>,
}

/// Closed scans whose shard map and vantages are still shown.
const CLOSED_KEPT: usize = 256;

#[derive(Debug, Clone)]
struct WorkerInfo {
    version: String,
    source: Option<String>,
    first_seen: Millis,
    last_heartbeat: Millis,
    seen: Instant,
    running: Option<Running>,
    reported_shards: u64,
    stored_shards: u64,
    probes_sent: u64,
    probes_per_sec: f64,
    refusals: u64,
}

/// Where one shard is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ShardState {
    /// Waiting in the stream.
    Pending,
    Running {
        worker: String,
    },
    Done {
        worker: String,
    },
    Failed {
        why: String,
    },
}

/// A dispatched scan.
#[derive(Debug)]
struct ScanRun {
    tenant: TenantId,
    id: String,
    rate: u64,
    /// One per port shard, in shard order.
    specs: Vec<ShardSpec>,
    /// The DNS shard's work, when the scan has domains (shard number `specs.len()`).
    domains: Option<Work>,
    shards: Vec<ShardState>,
    ledger: Ledger,
    vantages: BTreeMap<String, VantageStats>,
    flagged: BTreeSet<String>,
    /// Parts of runs not yet complete, by (shard, run).
    runs: HashMap<(u32, String), results::RunParts>,
    last_progress: Instant,
    handle: Arc<RunHandle>,
}

impl ScanRun {
    fn summary(&self) -> ScanWorkers {
        ScanWorkers {
            shard_map: self.shards.clone(),
            vantages: self.vantages.clone(),
            flagged: self.flagged.iter().cloned().collect(),
        }
    }

    fn task(&self, shard: u32) -> Option<ShardTask> {
        let work = match self.specs.get(shard as usize) {
            Some(spec) => Work::Ports(Box::new(spec.clone())),
            None => self
                .domains
                .clone()
                .filter(|_| shard as usize == self.specs.len())?,
        };
        Some(ShardTask {
            tenant: self.tenant.to_string(),
            scan: self.id.clone(),
            shard,
            avoid: self.flagged.iter().cloned().collect(),
            work,
        })
    }
}

fn run_key(tenant: &str, scan: &str) -> String {
    format!("{tenant}/{scan}")
}

/// A worker, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerView {
    pub name: String,
    pub version: String,
    /// The source address of its probes (its vantage).
    pub source: Option<String>,
    pub first_seen: Millis,
    pub last_heartbeat: Millis,
    /// Heard from within the last 10 s.
    pub live: bool,
    /// `tenant/scan#shard` it runs now.
    pub running: Option<String>,
    /// Shards of it the coordinator stored.
    pub shards_done: u64,
    pub probes_sent: u64,
    pub probes_per_sec: f64,
    /// Scans on which its vantage is flagged as blocked.
    pub flagged: Vec<String>,
    /// Result batches of it refused (outside their shard, malformed).
    pub refusals: u64,
}

/// A scan's distribution over workers, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScanWorkers {
    pub shard_map: Vec<ShardState>,
    pub vantages: BTreeMap<String, VantageStats>,
    /// Vantages whose hit rate fell far below their peers': their shards were rerun
    /// by other workers.
    pub flagged: Vec<String>,
}

impl Coordinator {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Workers heard from recently.
    pub fn live_workers(&self) -> usize {
        self.inner()
            .workers
            .values()
            .filter(|w| w.seen.elapsed() < LIVE_WITHIN)
            .count()
    }

    pub fn workers(&self) -> Vec<WorkerView> {
        let inner = self.inner();
        inner
            .workers
            .iter()
            .map(|(name, w)| WorkerView {
                name: name.clone(),
                version: w.version.clone(),
                source: w.source.clone(),
                first_seen: w.first_seen,
                last_heartbeat: w.last_heartbeat,
                live: w.seen.elapsed() < LIVE_WITHIN,
                running: w
                    .running
                    .as_ref()
                    .map(|r| format!("{}/{}#{}", r.tenant, r.scan, r.shard)),
                shards_done: w.stored_shards,
                probes_sent: w.probes_sent,
                probes_per_sec: w.probes_per_sec,
                flagged: inner
                    .scans
                    .iter()
                    .filter(|(_, s)| s.flagged.contains(name))
                    .map(|(k, _)| k.clone())
                    .chain(
                        inner
                            .closed
                            .iter()
                            .filter(|(_, s)| s.flagged.contains(name))
                            .map(|(k, _)| k.clone()),
                    )
                    .collect(),
                refusals: w.refusals,
            })
            .collect()
    }

    /// The shard map and vantages of a scan this process dispatched.
    pub fn scan_workers(&self, tenant: &TenantId, scan: &str) -> Option<ScanWorkers> {
        let inner = self.inner();
        let key = run_key(tenant.as_str(), scan);
        match inner.scans.get(&key) {
            Some(run) => Some(run.summary()),
            None => inner
                .closed
                .iter()
                .rev()
                .find(|(k, _)| *k == key)
                .map(|(_, s)| s.clone()),
        }
    }
}

/// Connects to the bus, makes the streams, and starts the coordinator's tasks on the
/// service's runtime.
pub async fn start(state: &SharedState) -> Result<(), String> {
    let c = &state.config;
    let Some(url) = c.bus_url.clone() else {
        return Ok(());
    };
    let auth = BusAuth {
        nkey_file: c.bus_nkey.clone(),
        user: c.bus_user.clone(),
        password: c.bus_password.clone(),
        ca_file: c.bus_ca.clone(),
    };
    let client = connect(&url, &auth, "aperture-coordinator", None)
        .await
        .map_err(|e| e.to_string())?;
    let js = aperture_bus::async_nats::jetstream::new(client.clone());
    let lease = LeaseSettings {
        ack_wait: Duration::from_secs(c.bus_ack_wait_secs),
        max_deliver: i64::from(c.bus_max_deliver),
    };
    ensure_streams(&js, &lease)
        .await
        .map_err(|e| e.to_string())?;
    let coord = Arc::new(Coordinator {
        js,
        client,
        lease,
        inner: Mutex::new(Inner::default()),
        wake: tokio::sync::Notify::new(),
    });
    state
        .bus
        .set(coord.clone())
        .map_err(|_| "the coordinator was started twice".to_owned())?;
    let heartbeats = coord
        .client
        .subscribe("aperture.res.*.hb")
        .await
        .map_err(|e| format!("bus: {e}"))?;
    let advisories = coord
        .client
        .subscribe(aperture_bus::setup::max_deliveries_advisory())
        .await
        .map_err(|e| format!("bus: {e}"))?;
    tokio::spawn(heartbeat_loop(state.clone(), coord.clone(), heartbeats));
    tokio::spawn(dispatch::advisory_loop(
        state.clone(),
        coord.clone(),
        advisories,
    ));
    tokio::spawn(dispatch::dispatch_loop(state.clone(), coord.clone()));
    tokio::spawn(results::results_loop(state.clone(), coord.clone()));
    Ok(())
}

/// Writes an audit record of the coordinator's own (worker registration, refusals).
fn audit(
    state: &SharedState,
    tenant: Option<&TenantId>,
    action: String,
    outcome: String,
    worker: &str,
) {
    let record = AuditRecord {
        seq: 0,
        at: now_ms(),
        actor: format!("worker {worker}"),
        role: None,
        tenant: tenant.cloned(),
        action,
        status: 0,
        outcome,
        source: "bus".into(),
    };
    if let Err(e) = state.store.audit(record) {
        eprintln!("audit: {e}");
    }
}

async fn heartbeat_loop(
    state: SharedState,
    coord: Arc<Coordinator>,
    mut beats: aperture_bus::async_nats::Subscriber,
) {
    use aperture_bus::futures_util::StreamExt;
    while let Some(msg) = beats.next().await {
        let Some(worker) = aperture_bus::worker_of_subject(&msg.subject).map(str::to_owned) else {
            continue;
        };
        let Ok(beat) = aperture_bus::wire::decode::<Heartbeat>("heartbeat", &msg.payload) else {
            continue;
        };
        let version = beat.version.clone();
        let (grant, requeue, new) = on_heartbeat(&state, &coord, &worker, beat);
        if new {
            let outcome = format!("version {version}");
            audit(&state, None, "worker registered".into(), outcome, &worker);
        }
        if let Some(reply) = msg.reply {
            let _ = coord
                .client
                .publish(reply, aperture_bus::wire::encode(&grant).into())
                .await;
        }
        if let Some(task) = requeue {
            dispatch::publish_task(&coord, &task, None).await;
        }
    }
}

/// Records a worker's state and answers with its share of the scan it runs — or a
/// refusal (cancelled scan, flagged vantage), with the shard to requeue if any; and
/// whether this was the worker's first heartbeat.
fn on_heartbeat(
    state: &SharedState,
    coord: &Coordinator,
    worker: &str,
    beat: Heartbeat,
) -> (Grant, Option<ShardTask>, bool) {
    let now = Instant::now();
    let labels = WorkerLabels {
        worker: worker.to_owned(),
    };
    let m = &state.metrics;
    m.worker_probes
        .get_or_create(&labels)
        .set(i64::try_from(beat.probes_sent).unwrap_or(i64::MAX));
    m.worker_probe_rate
        .get_or_create(&labels)
        .set(beat.probes_per_sec as i64);
    m.worker_heartbeat
        .get_or_create(&labels)
        .set(now_ms() / 1000);
    let mut inner = coord.inner();
    let new = !inner.workers.contains_key(worker);
    let info = inner
        .workers
        .entry(worker.to_owned())
        .or_insert_with(|| WorkerInfo {
            version: String::new(),
            source: None,
            first_seen: now_ms(),
            last_heartbeat: 0,
            seen: now,
            running: None,
            reported_shards: 0,
            stored_shards: 0,
            probes_sent: 0,
            probes_per_sec: 0.0,
            refusals: 0,
        });
    info.version = beat.version.clone();
    if let Some(s) = beat.source {
        info.source = Some(s.to_string());
    }
    info.last_heartbeat = now_ms();
    info.seen = now;
    info.running = beat.running.clone();
    info.reported_shards = beat.shards_done;
    info.probes_sent = beat.probes_sent;
    info.probes_per_sec = beat.probes_per_sec;
    let running_key = beat.running.as_ref().map(|r| run_key(&r.tenant, &r.scan));
    // Shares of scans it no longer runs are free at once.
    for (key, run) in inner.scans.iter_mut() {
        if Some(key) != running_key.as_ref() {
            run.ledger.release(worker);
        }
    }
    let per_net_rate = Some(state.config.per_net_rate);
    let lease_ms = GRANT_LEASE.as_millis() as u64;
    let wait = Grant {
        rate: 0,
        per_net_rate,
        lease_ms,
        refuse: None,
    };
    let (Some(r), Some(key)) = (beat.running, running_key) else {
        return (wait, None, new);
    };
    let refuse = |why: String| Grant {
        rate: 0,
        per_net_rate,
        lease_ms,
        refuse: Some(why),
    };
    let inner = &mut *inner;
    let out = match inner.scans.get_mut(&key) {
        None => {
            let live = TenantId::new(&r.tenant)
                .ok()
                .and_then(|t| state.store.job(&t, &r.scan).ok())
                .is_some_and(|j| j.state.is_live());
            if live {
                // Not dispatched by this process yet (it just started): wait.
                (wait, None)
            } else {
                (refuse(format!("scan {} is not running", r.scan)), None)
            }
        }
        Some(run) if run.flagged.contains(worker) => {
            let requeue = (r.stream_seq == 0 || inner.refused.insert(r.stream_seq))
                .then(|| run.task(r.shard))
                .flatten();
            (
                refuse(format!(
                    "this vantage is flagged as blocked on scan {}: other workers run it",
                    r.scan
                )),
                requeue,
            )
        }
        Some(run) => {
            // The scan's share of its tenant's cap (`windows::rebalance`); none while its
            // window is closed: its workers hold their shards paused.
            let total = if run.handle.paused.load(std::sync::atomic::Ordering::SeqCst) {
                0
            } else {
                run.handle.rate.get().min(run.rate)
            };
            let rate = run.ledger.grant(worker, total, GRANT_LEASE, now);
            if let Some(s) = run.shards.get_mut(r.shard as usize) {
                if matches!(s, ShardState::Pending) {
                    *s = ShardState::Running {
                        worker: worker.to_owned(),
                    };
                }
            }
            (
                Grant {
                    rate,
                    per_net_rate,
                    lease_ms,
                    refuse: None,
                },
                None,
            )
        }
    };
    (out.0, out.1, new)
}
