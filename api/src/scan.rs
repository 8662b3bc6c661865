//! `aperture scan`: plan (all input checked, nothing sent yet), then run one engine over
//! the selected shard, streaming results to the chosen format.

use crate::cli::ScanArgs;
use crate::output::ResultWriter;
use crate::status::StatusReporter;
use crate::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED};
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
use aperture_mapper::plan::{plan, Plan, TargetRequest};
use aperture_mapper::probe::TcpSyn;
use aperture_mapper::rawsock::{raw_sockets_permitted, source_for, RawReceiver, RawSender};
use aperture_mapper::shard::ShardSelector;
use aperture_mapper::syn::{run_syn, SynRun};
use aperture_mapper::{EngineError, SpecError};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

enum Failure {
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

pub fn run(args: ScanArgs) -> ExitCode {
    match execute(args) {
        Ok(code) => code,
        Err(Failure::BadInput(msg)) => {
            eprintln!("aperture: {msg}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(Failure::Failed(msg)) => {
            eprintln!("aperture: scan failed: {msg}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn bad(msg: impl Into<String>) -> Failure {
    Failure::BadInput(msg.into())
}

fn source_ports(spec: Option<&str>) -> Result<(u16, u16), Failure> {
    let Some(spec) = spec else {
        return Ok((61000, 4096));
    };
    let parse = |t: &str| {
        t.trim()
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| {
                bad(format!(
                    "invalid --source-port {spec:?}: {t:?} is not a port from 1 to 65535"
                ))
            })
    };
    let (base, last) = match spec.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let base = parse(spec)?;
            (base, base)
        }
    };
    if last < base {
        return Err(bad(format!(
            "invalid --source-port {spec:?}: range starts after it ends"
        )));
    }
    Ok((base, last - base + 1))
}

fn seconds(name: &str, v: f64) -> Result<Duration, Failure> {
    if v.is_finite() && (0.0..=86_400.0).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(bad(format!(
            "{name} must be a number of seconds from 0 to 86400, not {v}"
        )))
    }
}

fn execute(args: ScanArgs) -> Result<ExitCode, Failure> {
    if args.rate == 0 {
        return Err(bad("--rate must be at least 1 probe per second"));
    }
    if args.concurrency == 0 {
        return Err(bad("--concurrency must be at least 1"));
    }
    if args.timeout == 0 {
        return Err(bad("--timeout must be at least 1 millisecond"));
    }
    let wait = seconds("--wait", args.wait)?;
    let interval = seconds("--status-interval", args.status_interval)?;
    let (port_base, port_count) = source_ports(args.source_port.as_deref())?;
    let shard = match &args.shard {
        Some(s) => ShardSelector::parse(s)?,
        None => ShardSelector::WHOLE,
    };

    // Engine first: it decides whether IPv6 targets are acceptable.
    let use_connect = if args.connect {
        true
    } else if args.dry_run || raw_sockets_permitted() {
        false
    } else {
        eprintln!(
            "notice: raw sockets are not permitted (need root or CAP_NET_RAW); using connect scan"
        );
        true
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Failed(format!("cannot start async runtime: {e}")))?;
    let named = match &args.from_domains {
        Some(path) => domain_addresses(path)?,
        None => Vec::new(),
    };
    let request = TargetRequest {
        targets: args.targets.clone(),
        target_files: args.input_list.clone(),
        excludes: args.exclude.clone(),
        exclude_files: args.exclude_file.clone(),
        ports: args.ports.clone(),
        top_ports: args.top_ports,
        allow_special: args.allow_special,
        confirm_large: args.confirm_large,
        ipv6: use_connect || args.dry_run,
        named,
    };
    let plan: Plan = runtime.block_on(plan(&request))?;
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    let space = Arc::new(plan.space.clone());
    let (mut start, end) = shard.range(space.size());
    if let Some(i) = args.resume_index {
        if i < start || i > end {
            return Err(SpecError::ResumeOutOfRange {
                index: i,
                start,
                end,
            }
            .into());
        }
        start = i;
    }
    let seed = args
        .seed
        .unwrap_or_else(aperture_mapper::entropy::random_u64);
    let order = Permutation::new(space.size(), seed);
    let scan_id = args
        .scan_id
        .clone()
        .unwrap_or_else(|| format!("{:012x}", aperture_mapper::entropy::random_u64() >> 16));

    let out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(BufWriter::new(File::create(path).map_err(|e| {
            bad(format!("cannot write output file {}: {e}", path.display()))
        })?)),
        None => Box::new(BufWriter::new(io::stdout())),
    };
    let mut writer = ResultWriter::new(out, args.format);

    if args.dry_run {
        let io_err = |e: io::Error| Failure::Failed(format!("writing output: {e}"));
        writer.begin_probes().map_err(io_err)?;
        for pos in start..end {
            if let Some((ip, port)) = space.target(order.at(pos)) {
                if let Err(e) = writer.write_probe(pos, ip, port) {
                    // A closed pipe (`| head`) is the reader being done, not a failure.
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        return Ok(ExitCode::SUCCESS);
                    }
                    return Err(io_err(e));
                }
            }
        }
        writer.finish_probes().map_err(io_err)?;
        eprintln!(
            "dry run: {} probes (positions {start}..{end} of {}), seed={seed}; nothing sent",
            end - start,
            space.size()
        );
        return Ok(ExitCode::SUCCESS);
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| Failure::Failed(format!("cannot install signal handler: {e}")))?;
    }

    let engine = if use_connect { "connect" } else { "syn" };
    eprintln!(
        "starting: scan_id={scan_id} engine={engine} probes={} addresses={} ports={} seed={seed} shard={}/{} positions={start}..{end} rate={}",
        end - start,
        space.addresses(),
        space.ports().len(),
        shard.k,
        shard.n,
        args.rate
    );

    let progress = Arc::new(Progress::default());
    let (tx, rx) = mpsc::channel::<Hit>();
    let probe_kind = if use_connect {
        Probe::Connect
    } else {
        Probe::Syn
    };
    let writer_scan_id = scan_id.clone();
    let (out_tx, out_rx) = mpsc::channel::<PortObservation>();
    let writer_thread = std::thread::spawn(move || -> io::Result<u64> {
        writer.begin()?;
        let mut n = 0;
        for obs in out_rx {
            writer.write(&obs)?;
            n += 1;
        }
        writer.finish()?;
        Ok(n)
    });
    // Open ports go through the grab pool when asked; everything else straight out.
    let grab = if args.grab {
        let _inside = runtime.enter();
        Some(start_grabbing(&args, &plan, out_tx.clone())?)
    } else {
        None
    };
    let grab_queue = grab.as_ref().map(|g| g.queue.clone());
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
                scan_id: writer_scan_id.clone(),
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
                    if out_tx.send(obs).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let reporter = StatusReporter::start(progress.clone(), interval, args.quiet);
    let began = Instant::now();

    let finished: Result<Finished, Failure> = if use_connect {
        let run = ConnectRun {
            space: space.clone(),
            order,
            start,
            end,
            guard: Arc::new(plan.guard.clone()),
            retries: args.retries,
            timeout: Duration::from_millis(args.timeout),
            concurrency: args.concurrency,
            rate: args.rate,
            show_closed: args.show_closed,
        };
        Ok(runtime.block_on(run_connect(run, progress.clone(), stop.clone(), tx)))
    } else {
        run_syn_scan(
            &args,
            &plan,
            &space,
            order,
            (start, end),
            wait,
            (port_base, port_count),
            &progress,
            &stop,
            tx,
        )
    };
    let _ = dispatcher.join();
    if let Some(g) = grab {
        drop(g.queue);
        let _ = runtime.block_on(g.pool);
        let _ = g.collector.join();
    }
    reporter.finish();
    let written = writer_thread
        .join()
        .map_err(|_| Failure::Failed("output thread panicked".into()))?
        .map_err(|e| Failure::Failed(format!("writing results: {e}")))?;
    let finished = finished?;

    let elapsed = began.elapsed();
    let sent = Progress::get(&progress.sent);
    let send_rate = sent as f64 / finished.send_time.as_secs_f64().max(1e-6);
    eprintln!(
        "done: scan_id={scan_id} engine={engine} sent={sent} open={} closed={} results={written} invalid={} duplicates={} timeouts={} refused={} elapsed={:.2}s send_rate={send_rate:.0}pps",
        Progress::get(&progress.open),
        Progress::get(&progress.closed),
        Progress::get(&progress.invalid),
        Progress::get(&progress.duplicates),
        Progress::get(&progress.timeouts),
        Progress::get(&progress.refused),
        elapsed.as_secs_f64(),
    );
    if let Some(pos) = finished.interrupted_at {
        let shard_arg = args
            .shard
            .as_deref()
            .map(|s| format!(" --shard {s}"))
            .unwrap_or_default();
        eprintln!("interrupted: resume with --seed {seed}{shard_arg} --resume-index {pos} (same targets and ports)");
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
fn run_syn_scan(
    args: &ScanArgs,
    plan: &Plan,
    space: &aperture_mapper::space::TargetSpace,
    order: Permutation,
    (start, end): (u64, u64),
    wait: Duration,
    (port_base, port_count): (u16, u16),
    progress: &Progress,
    stop: &AtomicBool,
    tx: mpsc::Sender<Hit>,
) -> Result<Finished, Failure> {
    let first = space
        .v4()
        .nth(0)
        .map(Ipv4Addr::from)
        .ok_or_else(|| bad("the SYN engine needs IPv4 targets"))?;
    let source = match args.source_ip {
        Some(ip) => ip,
        None => source_for(first).ok_or(EngineError::NoSource(IpAddr::V4(first)))?,
    };
    let probe = TcpSyn::new(
        u32::from(source),
        CookieKey::random(),
        port_base,
        port_count,
        args.ttl,
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
        retries: args.retries,
        wait,
        rate: args.rate,
        show_closed: args.show_closed,
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
    args: &ScanArgs,
    plan: &Plan,
    out: mpsc::Sender<PortObservation>,
) -> Result<Grabbing, Failure> {
    if args.grab_concurrency == 0 || args.grab_rate == 0 || args.byte_cap < 1024 {
        return Err(bad(
            "--grab-concurrency and --grab-rate must be at least 1, --byte-cap at least 1024",
        ));
    }
    let opts = GrabOptions {
        deadline: seconds("--grab-timeout", args.grab_timeout)?.max(Duration::from_millis(100)),
        banner_wait: seconds("--banner-wait", args.banner_wait)?,
        byte_cap: args.byte_cap,
        jarm: !args.no_jarm,
        favicon: !args.no_favicon,
        ..GrabOptions::default()
    };
    let tls = TlsClients::new().map_err(|e| Failure::Failed(format!("cannot set up TLS: {e}")))?;
    let mut identifier = Identifier::builtin()
        .map_err(|e| Failure::Failed(format!("built-in identification rules: {e}")))?;
    if let Some(dir) = &args.recog_dir {
        let db = load_recog_dir(dir).map_err(|e| {
            bad(format!(
                "cannot load Recog fingerprints from {}: {e}",
                dir.display()
            ))
        })?;
        identifier = identifier.with_recog(db, CombineMode::default());
    }
    let expiring_days = args.expiring_days;
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
    let pool = spawn_grab_pool(
        grabber,
        args.grab_concurrency,
        args.grab_rate,
        named_rx,
        done_tx,
    );
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

/// In-zone, resolved names and their addresses from an `aperture domains` JSONL file.
fn domain_addresses(path: &std::path::Path) -> Result<Vec<(String, Vec<IpAddr>)>, Failure> {
    use std::io::BufRead;
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f =
            File::open(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut out = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
            bad(format!(
                "{}:{}: not an aperture domains JSON line: {e}",
                path.display(),
                n + 1
            ))
        })?;
        if v["type"] != "name" || v["related"] == true || v["status"] != "resolved" {
            continue;
        }
        let (Some(name), Some(addrs)) = (v["name"].as_str(), v["addresses"].as_array()) else {
            continue;
        };
        let ips: Vec<IpAddr> = addrs
            .iter()
            .filter_map(|a| a.as_str()?.parse().ok())
            .collect();
        if !ips.is_empty() {
            out.push((name.to_string(), ips));
        }
    }
    if out.is_empty() {
        return Err(bad(format!(
            "{}: no resolved in-zone names with addresses",
            path.display()
        )));
    }
    Ok(out)
}
