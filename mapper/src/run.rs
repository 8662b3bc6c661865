//! Running a planned port scan — one range of positions, or a scan's remaining shards
//! in one run — SYN or connect, then grabs on open ports, handing each observation to a
//! sink. `aperture scan` sinks into its output writer, the service's in-process workers
//! into per-shard batches for the store, a remote worker into the bus: one engine path
//! for all of them, so it lives here and a worker needs nothing of the service.

use crate::connect::{run_connect, ConnectRun};
use crate::cookie::CookieKey;
use crate::engine::{Finished, Hit, HitSink, Progress};
use crate::grab::report::report;
use crate::grab::tls::TlsClients;
use crate::grab::{spawn_grab_pool, GrabOptions, GrabTarget, Grabber};
use crate::pace::RateHandle;
use crate::permute::Permutation;
use crate::plan::Plan;
use crate::probe::TcpSyn;
use crate::rawsock::{source_for, RawReceiver, RawSender};
use crate::space::TargetSpace;
use crate::syn::{run_syn, SynRun};
use crate::EngineError;
use aperture_fingerprints::identify::recog::load_recog_dir;
use aperture_fingerprints::identify::{CombineMode, Identifier};
use aperture_fingerprints::{PortObservation, PortState, Probe, Proto};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub mod shard;

pub use crate::error::Failure;
pub use shard::{run_shard, AddressRanges, GuardSpec, Membership, ShardSpec};

/// A [`Failure::BadInput`] with this message.
pub fn bad(msg: impl Into<String>) -> Failure {
    Failure::BadInput(msg.into())
}

/// Durations on the wire as whole milliseconds: plain JSON numbers any consumer reads
/// the same way (a fraction of a millisecond is dropped).
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// How to grab open ports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrabSettings {
    #[serde(rename = "deadline_ms", with = "millis")]
    pub deadline: Duration,
    #[serde(rename = "banner_wait_ms", with = "millis")]
    pub banner_wait: Duration,
    pub byte_cap: usize,
    pub jarm: bool,
    pub favicon: bool,
    pub concurrency: usize,
    pub rate: u64,
    /// A directory on the machine that runs the grabs.
    pub recog_dir: Option<PathBuf>,
    pub expiring_days: u32,
    /// Unauthenticated-access checks that log in (FTP anonymous) run: the tenant's
    /// opt-in, carried to whoever runs the grabs.
    #[serde(default)]
    pub login_checks: bool,
}

impl Default for GrabSettings {
    fn default() -> Self {
        let o = GrabOptions::default();
        GrabSettings {
            deadline: o.deadline,
            banner_wait: o.banner_wait,
            byte_cap: o.byte_cap,
            jarm: o.jarm,
            favicon: o.favicon,
            concurrency: 256,
            rate: 500,
            recog_dir: None,
            expiring_days: 30,
            login_checks: o.login_checks,
        }
    }
}

/// How to probe. Plain data a coordinator can send to a worker (see [`ShardSpec`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineSettings {
    pub scan_id: String,
    pub use_connect: bool,
    /// Probes per second. A handle, so that whoever started the run can change the rate
    /// while it goes on (0 pauses it); clones of these settings share it.
    pub rate: RateHandle,
    /// At most this many probes a second to any one IPv4 /24 or IPv6 /64, on top of
    /// `rate`: a network over it makes the sender wait, nothing is dropped.
    #[serde(default)]
    pub per_net_rate: Option<u32>,
    pub retries: u32,
    /// Connect engine: per-attempt time-out.
    #[serde(rename = "timeout_ms", with = "millis")]
    pub timeout: Duration,
    pub concurrency: usize,
    pub show_closed: bool,
    /// SYN engine: how long to listen after the last probe.
    #[serde(rename = "wait_ms", with = "millis")]
    pub wait: Duration,
    pub source_ip: Option<Ipv4Addr>,
    pub source_ports: (u16, u16),
    pub ttl: u8,
    pub grab: Option<GrabSettings>,
}

/// Where a run's observations go: the CLI's writer, or the service's shard store.
/// Observations carry the number of their segment (see [`run_segments`]).
pub trait PortSink: Send + Sync + 'static {
    /// False: the consumer hung up; the run stops.
    fn observation(&self, segment: usize, obs: PortObservation) -> bool;

    /// Every observation of `segment` has been handed over (its probes sent, its
    /// replies waited for, its grabs finished). Never called for a segment cut short.
    fn segment_done(&self, _segment: usize) {}

    /// Asked before `segment` starts: false holds it back (back-pressure); must not
    /// block (see [`HitSink::may_start`]).
    fn may_start(&self, _segment: usize) -> bool {
        true
    }
}

/// The CLI's sink: observations in order of arrival, segments ignored.
impl PortSink for mpsc::Sender<PortObservation> {
    fn observation(&self, _segment: usize, obs: PortObservation) -> bool {
        self.send(obs).is_ok()
    }
}

/// Runs positions `[start, end)` of `order` over `plan`, sending every observation to
/// `sink`. Returns when the range is done or `stop` was raised (then `interrupted_at`
/// says where to resume).
#[allow(clippy::too_many_arguments)]
pub fn run_ports(
    runtime: &tokio::runtime::Runtime,
    s: &EngineSettings,
    plan: &Plan,
    space: &Arc<TargetSpace>,
    order: Permutation,
    (start, end): (u64, u64),
    progress: &Arc<Progress>,
    stop: &Arc<AtomicBool>,
    sink: mpsc::Sender<PortObservation>,
) -> Result<Finished, Failure> {
    run_segments(
        runtime,
        s,
        plan,
        space,
        order,
        &[(start, end)],
        progress,
        stop,
        Arc::new(sink),
    )
}

/// What the engine's receive side hands to the dispatcher.
enum Event {
    Hit(usize, Hit),
    Done(usize),
}

/// The engine's sink: results go to the dispatcher thread (never blocking the engine's
/// receiver); the start of a segment is the consumer's decision.
struct Relay<O> {
    events: mpsc::Sender<Event>,
    out: Arc<O>,
}

impl<O: PortSink> HitSink for Relay<O> {
    fn hit(&self, segment: usize, hit: Hit) -> bool {
        self.events.send(Event::Hit(segment, hit)).is_ok()
    }

    fn segment_done(&self, segment: usize) {
        let _ = self.events.send(Event::Done(segment));
    }

    fn may_start(&self, segment: usize) -> bool {
        self.out.may_start(segment)
    }
}

/// Grabs still running per segment, and the segments whose probing is done: a segment
/// is done for the consumer once both are over.
#[derive(Debug, Default)]
struct GrabBook {
    running: HashMap<usize, usize>,
    probed: HashSet<usize>,
}

impl GrabBook {
    fn started(&mut self, segment: usize) {
        *self.running.entry(segment).or_default() += 1;
    }

    /// A grab of `segment` ended: true when that finished the segment.
    fn ended(&mut self, segment: usize) -> bool {
        let running = self.running.entry(segment).or_default();
        *running = running.saturating_sub(1);
        if *running > 0 {
            return false;
        }
        self.running.remove(&segment);
        self.probed.remove(&segment)
    }

    /// The probing of `segment` is done: true when no grab of it is running.
    fn probed(&mut self, segment: usize) -> bool {
        if self.running.contains_key(&segment) {
            self.probed.insert(segment);
            false
        } else {
            true
        }
    }
}

fn lock(book: &Mutex<GrabBook>) -> std::sync::MutexGuard<'_, GrabBook> {
    book.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the given segments (ascending, disjoint position ranges of `order`, e.g. a
/// scan's shards still to run) over `plan` in one engine run: one receiver, one
/// cooldown at the end rather than one per segment. Every observation goes to `out`
/// with its segment, and `out` hears when a segment is complete, while the next ones
/// are still being probed. Returns when all are done or `stop` was raised (then
/// `interrupted_at` says where the run stopped).
#[allow(clippy::too_many_arguments)]
pub fn run_segments<O: PortSink>(
    runtime: &tokio::runtime::Runtime,
    s: &EngineSettings,
    plan: &Plan,
    space: &Arc<TargetSpace>,
    order: Permutation,
    segments: &[(u64, u64)],
    progress: &Arc<Progress>,
    stop: &Arc<AtomicBool>,
    out: Arc<O>,
) -> Result<Finished, Failure> {
    let (tx, rx) = mpsc::channel::<Event>();
    let probe_kind = if s.use_connect {
        Probe::Connect
    } else {
        Probe::Syn
    };
    let book = Arc::new(Mutex::new(GrabBook::default()));
    // Open ports go through the grab pool when asked; everything else straight out.
    let grab = match &s.grab {
        Some(g) => {
            let _inside = runtime.enter();
            let (out, book) = (out.clone(), book.clone());
            Some(start_grabbing(g, plan, move |segment, obs| {
                if !out.observation(segment, obs) {
                    return false;
                }
                // Under the lock: the segment's end is told after its last result.
                let mut book = lock(&book);
                if book.ended(segment) {
                    out.segment_done(segment);
                }
                true
            })?)
        }
        None => None,
    };
    let grab_queue = grab.as_ref().map(|g| g.queue.clone());
    let scan_id = s.scan_id.clone();
    let dispatch_out = out.clone();
    let dispatcher = std::thread::spawn(move || {
        let out = dispatch_out;
        for event in rx {
            let (segment, hit) = match event {
                Event::Hit(segment, hit) => (segment, hit),
                Event::Done(segment) => {
                    let mut book = lock(&book);
                    if book.probed(segment) {
                        out.segment_done(segment);
                    }
                    continue;
                }
            };
            let obs = PortObservation {
                ip: hit.ip,
                port: hit.port,
                proto: Proto::Tcp,
                state: hit.state,
                reason: hit.reason,
                ttl: hit.ttl,
                timestamp: hit.at,
                scan_id: scan_id.clone(),
                probe: probe_kind,
                service: None,
            };
            match &grab_queue {
                Some(queue) if obs.state == PortState::Open => {
                    let target = GrabTarget {
                        ip: obs.ip,
                        port: obs.port,
                        hostname: None,
                    };
                    lock(&book).started(segment);
                    if queue.blocking_send((target, (segment, obs))).is_err() {
                        break;
                    }
                }
                _ => {
                    if !out.observation(segment, obs) {
                        break;
                    }
                }
            }
        }
    });
    let relay = Relay { events: tx, out };
    let finished = if s.use_connect {
        let run = ConnectRun {
            space: space.clone(),
            order,
            segments: segments.to_vec(),
            guard: Arc::new(plan.guard.clone()),
            retries: s.retries,
            timeout: s.timeout,
            concurrency: s.concurrency,
            rate: s.rate.clone(),
            per_net_rate: s.per_net_rate,
            show_closed: s.show_closed,
        };
        runtime
            .block_on(run_connect(
                run,
                progress.clone(),
                stop.clone(),
                Arc::new(relay),
            ))
            .map_err(Failure::from)
    } else {
        run_syn_scan(s, plan, space, order, segments, progress, stop, relay)
    };
    let _ = dispatcher.join();
    if let Some(g) = grab {
        drop(g.queue);
        let _ = runtime.block_on(g.pool);
        let _ = g.collector.join();
    }
    finished
}

#[allow(clippy::too_many_arguments)]
fn run_syn_scan<S: HitSink>(
    s: &EngineSettings,
    plan: &Plan,
    space: &TargetSpace,
    order: Permutation,
    segments: &[(u64, u64)],
    progress: &Progress,
    stop: &AtomicBool,
    sink: S,
) -> Result<Finished, Failure> {
    let first = space
        .v4()
        .nth(0)
        .map(Ipv4Addr::from)
        .ok_or_else(|| bad("the SYN engine needs IPv4 targets"))?;
    let source = match s.source_ip {
        Some(ip) => ip,
        None => source_for(first).ok_or(EngineError::NoSource(IpAddr::V4(first)))?,
    };
    let (port_base, port_count) = s.source_ports;
    let probe = TcpSyn::new(
        u32::from(source),
        CookieKey::random(),
        port_base,
        port_count,
        s.ttl,
    );
    // Receiver first, so no reply to the first probes is missed.
    let receiver = RawReceiver::open()?;
    let mut sender = RawSender::open()?;
    let run = SynRun {
        space,
        order,
        segments,
        guard: &plan.guard,
        retries: s.retries,
        wait: s.wait,
        rate: s.rate.clone(),
        per_net_rate: s.per_net_rate,
        show_closed: s.show_closed,
    };
    // `sink` is dropped on return: the dispatcher then sees the end of the results.
    Ok(run_syn(
        &run,
        &probe,
        &mut sender,
        receiver,
        progress,
        stop,
        &sink,
    )?)
}

struct Grabbing {
    queue: tokio::sync::mpsc::Sender<(GrabTarget, (usize, PortObservation))>,
    pool: tokio::task::JoinHandle<()>,
    collector: std::thread::JoinHandle<()>,
}

/// Starts the grab pool (inside the runtime) and the thread that turns finished grabs
/// into reported observations, handed to `out` with their segment (false: stop).
fn start_grabbing(
    g: &GrabSettings,
    plan: &Plan,
    mut out: impl FnMut(usize, PortObservation) -> bool + Send + 'static,
) -> Result<Grabbing, Failure> {
    if g.concurrency == 0 || g.rate == 0 || g.byte_cap < 1024 {
        return Err(bad(
            "--grab-concurrency and --grab-rate must be at least 1, --byte-cap at least 1024",
        ));
    }
    let opts = GrabOptions {
        deadline: g.deadline.max(Duration::from_millis(100)),
        banner_wait: g.banner_wait,
        byte_cap: g.byte_cap,
        jarm: g.jarm,
        favicon: g.favicon,
        login_checks: g.login_checks,
        ..GrabOptions::default()
    };
    let tls = TlsClients::new().map_err(|e| Failure::Failed(format!("cannot set up TLS: {e}")))?;
    let mut identifier = Identifier::builtin()
        .map_err(|e| Failure::Failed(format!("built-in identification rules: {e}")))?;
    if let Some(dir) = &g.recog_dir {
        let db = load_recog_dir(dir).map_err(|e| {
            bad(format!(
                "cannot load Recog fingerprints from {}: {e}",
                dir.display()
            ))
        })?;
        identifier = identifier.with_recog(db, CombineMode::default());
    }
    let expiring_days = g.expiring_days;
    let grabber = Arc::new(Grabber { opts, tls });
    // A target named by host name gets that name for SNI, Host and EHLO.
    let names: HashMap<IpAddr, String> = plan
        .resolved
        .iter()
        .flat_map(|(name, ips)| ips.iter().map(move |ip| (*ip, name.clone())))
        .collect();
    let (queue, targets) =
        tokio::sync::mpsc::channel::<(GrabTarget, (usize, PortObservation))>(4096);
    let (done_tx, done_rx) = mpsc::channel();
    let (named_tx, named_rx) = tokio::sync::mpsc::channel(4096);
    // Fill in names on the way in: the dispatcher does not know them.
    tokio::spawn(async move {
        let mut targets = targets;
        while let Some((mut t, obs)) = targets.recv().await {
            t.hostname = names.get(&t.ip).cloned();
            if named_tx.send((t, obs)).await.is_err() {
                break;
            }
        }
    });
    let pool = spawn_grab_pool(grabber, g.concurrency, g.rate, named_rx, done_tx);
    let collector = std::thread::spawn(move || {
        for (target, (segment, mut obs), grabbed) in done_rx {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            obs.service = Some(report(
                &grabbed,
                &target,
                now,
                expiring_days,
                Some(&identifier),
            ));
            if !out(segment, obs) {
                break;
            }
        }
    });
    Ok(Grabbing {
        queue,
        pool,
        collector,
    })
}
