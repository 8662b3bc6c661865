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
use aperture_fingerprints::report::ServiceReport;
use aperture_fingerprints::{PortObservation, PortState, Probe, Proto};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub mod shard;
pub mod udp;

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
    /// Report the first closed reply (RST, refused) of each host per segment, even
    /// when closed ports are not shown: the positive evidence that a host still
    /// answers, without which a port no longer seen open may not be called gone
    /// (a silent host is a blocked vantage as often as a shut service).
    #[serde(default)]
    pub closed_hosts: bool,
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
    // Only one closed reply per host and segment is wanted (see `closed_hosts`); the
    // connect engine reports them all, the SYN engine already only the first.
    let one_closed_per_host = s.closed_hosts && !s.show_closed;
    // Only a scan of many ports per host can tell a host that accepts everything.
    let mut everywhere =
        (space.ports().len() >= ANSWERS_EVERYWHERE as usize).then(AnswersEverywhere::default);
    let dispatcher = std::thread::spawn(move || {
        let out = dispatch_out;
        let mut closed_hosts: HashMap<usize, HashSet<IpAddr>> = HashMap::new();
        // Hands an open port on: to the grabs, or straight out (also the one report of
        // a host that accepts everything: it is not grabbed). False: stop.
        let pass = |segment: usize, obs: PortObservation| -> bool {
            match &grab_queue {
                Some(queue) if obs.state == PortState::Open && obs.service.is_none() => {
                    let target = GrabTarget {
                        ip: obs.ip,
                        port: obs.port,
                        hostname: None,
                    };
                    lock(&book).started(segment);
                    queue.blocking_send((target, (segment, obs))).is_ok()
                }
                _ => out.observation(segment, obs),
            }
        };
        for event in rx {
            let (segment, hit) = match event {
                Event::Hit(segment, hit) => (segment, hit),
                Event::Done(segment) => {
                    closed_hosts.remove(&segment);
                    // Ports held back in case their host accepted everything: it did not
                    // (or not yet, in this segment): they are ordinary open ports.
                    let held = everywhere
                        .as_mut()
                        .map(|e| e.release(segment))
                        .unwrap_or_default();
                    if !held.into_iter().all(|obs| pass(segment, obs)) {
                        break;
                    }
                    let mut book = lock(&book);
                    if book.probed(segment) {
                        out.segment_done(segment);
                    }
                    continue;
                }
            };
            if one_closed_per_host
                && hit.state == PortState::Closed
                && !closed_hosts.entry(segment).or_default().insert(hit.ip)
            {
                continue;
            }
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
            let verdict = match &mut everywhere {
                Some(e) if obs.state == PortState::Open => e.open(segment, obs),
                _ => Some(obs),
            };
            if let Some(obs) = verdict {
                if !pass(segment, obs) {
                    break;
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
            show_closed: s.show_closed || s.closed_hosts,
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

/// Open ports of one host in one run from which it is taken for a host that accepts on
/// every port (a SYN proxy, tarpit or firewall), not a host with that many services:
/// real hosts with more than a hundred open TCP ports are vanishingly rare, while such
/// a host costs one grab time-out per port (4,096 ports × 5 s / 128 in flight ≈ 160 s).
pub const ANSWERS_EVERYWHERE: u32 = 128;

/// Open ports held back per segment until their host is judged: either it reaches
/// [`ANSWERS_EVERYWHERE`] open ports in this run — then one report stands for all of
/// them (on the lowest of its open ports held) and the rest are dropped
/// — or the segment ends and they go on as ordinary open ports. Memory follows the open
/// ports of the segments in flight.
#[derive(Debug, Default)]
struct AnswersEverywhere {
    open: HashMap<IpAddr, u32>,
    flagged: HashSet<IpAddr>,
    held: HashMap<usize, Vec<PortObservation>>,
}

impl AnswersEverywhere {
    /// An open port: `Some` to hand on now (the one report of a host just judged), or
    /// `None` (held back, or dropped as one more port of a judged host).
    fn open(&mut self, segment: usize, obs: PortObservation) -> Option<PortObservation> {
        if self.flagged.contains(&obs.ip) {
            return None;
        }
        let n = self.open.entry(obs.ip).or_default();
        *n += 1;
        if *n < ANSWERS_EVERYWHERE {
            self.held.entry(segment).or_default().push(obs);
            return None;
        }
        let ip = obs.ip;
        self.flagged.insert(ip);
        self.open.remove(&ip);
        let mut lowest = obs;
        for list in self.held.values_mut() {
            list.retain(|o| {
                if o.ip != ip {
                    return true;
                }
                if o.port < lowest.port {
                    lowest.port = o.port;
                }
                false
            });
        }
        lowest.service = Some(ServiceReport {
            answers_every_port: Some(ANSWERS_EVERYWHERE),
            ..ServiceReport::default()
        });
        Some(lowest)
    }

    /// The segment is probed: what it held goes on.
    fn release(&mut self, segment: usize) -> Vec<PortObservation> {
        self.held.remove(&segment).unwrap_or_default()
    }
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
        closed_hosts: s.closed_hosts,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn open(ip: &str, port: u16) -> PortObservation {
        PortObservation {
            ip: ip.parse().expect("ip"),
            port,
            proto: Proto::Tcp,
            state: PortState::Open,
            reason: aperture_fingerprints::Reason::SynAck,
            ttl: Some(64),
            timestamp: SystemTime::UNIX_EPOCH,
            scan_id: "s".into(),
            probe: Probe::Syn,
            service: None,
        }
    }

    #[test]
    fn a_host_open_everywhere_is_reported_once_and_others_are_held_until_their_segment_ends() {
        let mut e = AnswersEverywhere::default();
        // A real host with many services: held, then all released.
        for port in 1..ANSWERS_EVERYWHERE as u16 {
            assert!(e.open(0, open("198.18.0.1", port)).is_none());
        }
        // A tarpit across two segments: the port that reaches the mark reports it, on
        // the lowest port held, and nothing of it is released later.
        for port in 0..ANSWERS_EVERYWHERE as u16 - 1 {
            assert!(e
                .open(port as usize % 2, open("198.18.0.2", 1000 - port))
                .is_none());
        }
        let one = e.open(1, open("198.18.0.2", 2000)).expect("judged");
        assert_eq!(one.port, 1000 - (ANSWERS_EVERYWHERE as u16 - 2));
        assert_eq!(
            one.service.as_ref().and_then(|s| s.answers_every_port),
            Some(ANSWERS_EVERYWHERE)
        );
        assert!(e.open(0, open("198.18.0.2", 7)).is_none(), "dropped");
        let zero = e.release(0);
        assert_eq!(zero.len(), ANSWERS_EVERYWHERE as usize - 1);
        assert!(zero.iter().all(|o| o.ip.to_string() == "198.18.0.1"));
        assert!(e.release(1).is_empty());
    }
}
