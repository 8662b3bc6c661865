//! What every handler and worker shares: the store, the settings, the metrics, the
//! per-token rate limiter, and the scans running now.

use super::config::Config;
use aperture_mapper::engine::Progress;
use aperture_mapper::pace::RateHandle;
use aperture_storage::{Millis, Store, TenantId};
use governor::{DefaultKeyedRateLimiter, Quota};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub type SharedState = Arc<AppState>;

#[derive(Debug)]
pub struct AppState {
    pub store: Arc<Store>,
    pub config: Config,
    pub metrics: Metrics,
    pub limiter: DefaultKeyedRateLimiter<String>,
    /// Scans running now, by `tenant/scan`.
    pub runs: Mutex<HashMap<String, Arc<RunHandle>>>,
    /// Wakes the worker pool when a scan is queued.
    pub wake: tokio::sync::Notify,
    /// Tenants whose queued policy work (a sanction or settings edit) should run now.
    pub sweeps: tokio::sync::mpsc::UnboundedSender<TenantId>,
    /// Set on SIGTERM/SIGINT: workers finish their shard and take no more.
    pub stopping: Arc<AtomicBool>,
    /// With `bus_url`: the coordinator of the remote workers (no in-process workers).
    pub bus: std::sync::OnceLock<Arc<super::coordinator::Coordinator>>,
}

/// A running scan, for progress and cancel.
#[derive(Debug)]
pub struct RunHandle {
    pub progress: Arc<Progress>,
    pub stop: Arc<AtomicBool>,
    /// Set with `stop` when the service shuts down (the job stays resumable).
    pub shutdown: AtomicBool,
    pub started: Instant,
    /// Probes of shards committed before this run began (a resumed scan).
    pub probes_before: AtomicU64,
    /// Observations stored so far.
    pub found: AtomicU64,
    /// The rate the scan asks for, and the one it gets (the tenant's cap shared among
    /// its running scans: `windows::rebalance`). The engine follows `rate` as it changes.
    pub wants: AtomicU64,
    pub rate: RateHandle,
    /// Set with `stop` when the scan's window closed: it waits for the next one.
    pub paused: AtomicBool,
}

impl RunHandle {
    /// A run starting now, with `found` observations stored before it.
    pub fn starting(found: u64) -> Arc<RunHandle> {
        Arc::new(RunHandle {
            progress: Arc::new(Progress::default()),
            stop: Arc::new(AtomicBool::new(false)),
            shutdown: AtomicBool::new(false),
            started: Instant::now(),
            probes_before: AtomicU64::new(0),
            found: AtomicU64::new(found),
            wants: AtomicU64::new(0),
            rate: RateHandle::new(0),
            paused: AtomicBool::new(false),
        })
    }
}

impl AppState {
    pub fn new(
        store: Arc<Store>,
        config: Config,
        sweeps: tokio::sync::mpsc::UnboundedSender<TenantId>,
    ) -> AppState {
        let per_token = NonZeroU32::new(config.token_rate).unwrap_or(NonZeroU32::MIN);
        AppState {
            store,
            metrics: Metrics::new(),
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(per_token)),
            config,
            runs: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            sweeps,
            stopping: Arc::new(AtomicBool::new(false)),
            bus: std::sync::OnceLock::new(),
        }
    }

    pub fn run(&self, tenant: &TenantId, scan: &str) -> Option<Arc<RunHandle>> {
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&format!("{tenant}/{scan}"))
            .cloned()
    }
}

pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub method: String,
    pub route: String,
}

/// Prometheus metrics of scans, ingest and the API.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub scans_started: Counter,
    pub scans_completed: Counter,
    pub scans_failed: Counter,
    pub scans_running: Gauge,
    pub probes_sent: Counter,
    pub results: Counter,
    pub ingest_batches: Counter,
    pub ingest_seconds: Histogram,
    pub requests: Family<RouteLabels, Counter>,
    pub latency: Family<LatencyLabels, Histogram>,
    /// Per remote worker (with `bus_url`).
    pub worker_probes: Family<WorkerLabels, Gauge>,
    pub worker_probe_rate: Family<WorkerLabels, Gauge>,
    pub worker_shards: Family<WorkerLabels, Counter>,
    pub worker_heartbeat: Family<WorkerLabels, Gauge>,
    pub worker_flagged: Family<WorkerLabels, Gauge>,
    pub worker_refusals: Family<WorkerLabels, Counter>,
    pub alerts_delivered: Counter,
    pub alerts_failed: Counter,
    pub alerts_dead: Counter,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    pub worker: String,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("aperture");
        let m = Metrics {
            scans_started: Counter::default(),
            scans_completed: Counter::default(),
            scans_failed: Counter::default(),
            scans_running: Gauge::default(),
            probes_sent: Counter::default(),
            results: Counter::default(),
            ingest_batches: Counter::default(),
            ingest_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            requests: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 18))
            }),
            registry: Registry::default(),
            worker_probes: Family::default(),
            worker_probe_rate: Family::default(),
            worker_shards: Family::default(),
            worker_heartbeat: Family::default(),
            worker_flagged: Family::default(),
            worker_refusals: Family::default(),
            alerts_delivered: Counter::default(),
            alerts_failed: Counter::default(),
            alerts_dead: Counter::default(),
        };
        registry.register(
            "alerts_delivered",
            "Alert deliveries a receiver accepted",
            m.alerts_delivered.clone(),
        );
        registry.register(
            "alerts_failed",
            "Alert delivery attempts that failed (retried later)",
            m.alerts_failed.clone(),
        );
        registry.register(
            "alerts_dead",
            "Alert deliveries that became dead letters",
            m.alerts_dead.clone(),
        );
        registry.register(
            "worker_probes_sent",
            "Probes a remote worker says it sent since it started",
            m.worker_probes.clone(),
        );
        registry.register(
            "worker_probes_per_second",
            "A remote worker's send rate at its last heartbeat",
            m.worker_probe_rate.clone(),
        );
        registry.register(
            "worker_shards_stored",
            "Shards of a remote worker stored",
            m.worker_shards.clone(),
        );
        registry.register(
            "worker_last_heartbeat_timestamp_seconds",
            "When a remote worker last reported",
            m.worker_heartbeat.clone(),
        );
        registry.register(
            "worker_flagged",
            "Scans on which a remote worker's vantage is flagged as blocked",
            m.worker_flagged.clone(),
        );
        registry.register(
            "worker_refusals",
            "Result batches of a remote worker refused (outside their shard, malformed)",
            m.worker_refusals.clone(),
        );
        registry.register("scans_started", "Scans started", m.scans_started.clone());
        registry.register(
            "scans_completed",
            "Scans that completed",
            m.scans_completed.clone(),
        );
        registry.register("scans_failed", "Scans that failed", m.scans_failed.clone());
        registry.register(
            "scans_running",
            "Scans running now",
            m.scans_running.clone(),
        );
        registry.register("probes_sent", "Probes sent", m.probes_sent.clone());
        registry.register("results", "Observations stored", m.results.clone());
        registry.register(
            "ingest_batches",
            "Batches applied to the store",
            m.ingest_batches.clone(),
        );
        registry.register(
            "ingest_seconds",
            "Time to apply one batch",
            m.ingest_seconds.clone(),
        );
        registry.register("http_requests", "API requests", m.requests.clone());
        registry.register(
            "http_request_seconds",
            "API request latency",
            m.latency.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
