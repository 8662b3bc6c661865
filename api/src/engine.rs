//! Running one shard of a planned port scan — SYN or connect, then grabs on open ports —
//! and handing each observation to a sink. `aperture scan` sinks into its output
//! writer, the service's workers into a batch for the store: one engine path for both.

use aperture_fingerprints::identify::recog::load_recog_dir;
use aperture_fingerprints::identify::{CombineMode, Identifier};
use aperture_fingerprints::{PortObservation, PortState, Probe, Proto};
use aperture_mapper::connect::{run_connect, ConnectRun};
use aperture_mapper::cookie::CookieKey;
use aperture_mapper::engine::{Finished, Hit, Progress};
use aperture_mapper::grab::report::report;
use aperture_mapper::grab::tls::TlsClients;
use aperture_mapper::grab::{spawn_grab_pool, GrabOptions, GrabTarget, Grabber};
use aperture_mapper::permute::Permutation;
use aperture_mapper::plan::Plan;
use aperture_mapper::probe::TcpSyn;
use aperture_mapper::rawsock::{source_for, RawReceiver, RawSender};
use aperture_mapper::space::TargetSpace;
use aperture_mapper::syn::{run_syn, SynRun};
use aperture_mapper::{EngineError, SpecError};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Why a scan did not run: the user's input (exit 2 / HTTP 4xx), or the machine.
#[derive(Debug)]
pub enum Failure {
    BadInput(String),
    Failed(String),
}

impl From<SpecError> for Failure {
    fn from(e: SpecError) -> Self {
        Failure::BadInput(e.to_string())
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        Failure::Failed(e.to_string())
    }
}

pub fn bad(msg: impl Into<String>) -> Failure {
    Failure::BadInput(msg.into())
}

/// How to grab open ports.
#[derive(Debug, Clone)]
pub struct GrabSettings {
    pub deadline: Duration,
    pub banner_wait: Duration,
    pub byte_cap: usize,
    pub jarm: bool,
    pub favicon: bool,
    pub concurrency: usize,
    pub rate: u64,
    pub recog_dir: Option<PathBuf>,
    pub expiring_days: u32,
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
        }
    }
}

/// How to probe.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub scan_id: String,
    pub use_connect: bool,
    pub rate: u64,
    pub retries: u32,
    /// Connect engine: per-attempt time-out.
    pub timeout: Duration,
    pub concurrency: usize,
    pub show_closed: bool,
    /// SYN engine: how long to listen after the last probe.
    pub wait: Duration,
    pub source_ip: Option<Ipv4Addr>,
    pub source_ports: (u16, u16),
    pub ttl: u8,
    pub grab: Option<GrabSettings>,
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
    let (tx, rx) = mpsc::channel::<Hit>();
    let probe_kind = if s.use_connect {
        Probe::Connect
    } else {
        Probe::Syn
    };
    // Open ports go through the grab pool when asked; everything else straight out.
    let grab = match &s.grab {
        Some(g) => {
            let _inside = runtime.enter();
            Some(start_grabbing(g, plan, sink.clone())?)
        }
        None => None,
    };
    let grab_queue = grab.as_ref().map(|g| g.queue.clone());
    let scan_id = s.scan_id.clone();
    let dispatcher = std::thread::spawn(move || {
        for hit in rx {
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
                    if queue.blocking_send((target, obs)).is_err() {
                        break;
                    }
                }
                _ => {
                    if sink.send(obs).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let finished = if s.use_connect {
        let run = ConnectRun {
            space: space.clone(),
            order,
            start,
            end,
            guard: Arc::new(plan.guard.clone()),
            retries: s.retries,
            timeout: s.timeout,
            concurrency: s.concurrency,
            rate: s.rate,
            show_closed: s.show_closed,
        };
        Ok(runtime.block_on(run_connect(run, progress.clone(), stop.clone(), tx)))
    } else {
        run_syn_scan(s, plan, space, order, (start, end), progress, stop, tx)
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
fn run_syn_scan(
    s: &EngineSettings,
    plan: &Plan,
    space: &TargetSpace,
    order: Permutation,
    (start, end): (u64, u64),
    progress: &Progress,
    stop: &AtomicBool,
    tx: mpsc::Sender<Hit>,
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
        start,
        end,
        guard: &plan.guard,
        retries: s.retries,
        wait: s.wait,
        rate: s.rate,
        show_closed: s.show_closed,
    };
    Ok(run_syn(
        &run,
        &probe,
        &mut sender,
        receiver,
        progress,
        stop,
        tx,
    )?)
}

struct Grabbing {
    queue: tokio::sync::mpsc::Sender<(GrabTarget, PortObservation)>,
    pool: tokio::task::JoinHandle<()>,
    collector: std::thread::JoinHandle<()>,
}

/// Starts the grab pool (inside the runtime) and the thread that turns finished grabs
/// into reported observations.
fn start_grabbing(
    g: &GrabSettings,
    plan: &Plan,
    out: mpsc::Sender<PortObservation>,
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
    let (queue, targets) = tokio::sync::mpsc::channel::<(GrabTarget, PortObservation)>(4096);
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
        for (target, mut obs, grabbed) in done_rx {
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
            if out.send(obs).is_err() {
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
