//! `aperture scan`: plan (all input checked, nothing sent yet), then run one engine over
//! the selected shard, streaming results to the chosen format.

use crate::cli::ScanArgs;
use crate::output::ResultWriter;
use crate::output_xml::XmlRun;
use crate::status::StatusReporter;
use crate::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED};
use aperture_fingerprints::PortObservation;
use aperture_mapper::engine::Finished;
use aperture_mapper::engine::Progress;
use aperture_mapper::pace::RateHandle;
use aperture_mapper::permute::Permutation;
use aperture_mapper::plan::{plan, Plan, TargetRequest};
use aperture_mapper::rawsock::raw_sockets_permitted;
use aperture_mapper::run::udp::run_udp_segments;
use aperture_mapper::run::{bad, run_ports, EngineSettings, Failure, GrabSettings};
use aperture_mapper::shard::ShardSelector;
use aperture_mapper::SpecError;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

pub fn run(args: ScanArgs) -> ExitCode {
    match execute(args) {
        Ok(code) => code,
        Err(Failure::BadInput(msg)) => {
            eprintln!("aperture: {msg}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(failed) => {
            eprintln!("aperture: scan failed: {failed}");
            ExitCode::from(EXIT_FAILED)
        }
    }
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
    if args.dry_run && args.format == crate::cli::Format::Xml {
        return Err(bad(
            "--format xml describes results, and a dry run has none: use --format jsonl, csv or list to see the probes",
        ));
    }
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
        udp: true,
        udp_presets: args.udp.clone(),
    };
    let plan: Plan = runtime.block_on(plan(&request))?;
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    if plan.udp.is_some() && !args.dry_run {
        if args.connect {
            return Err(bad(
                "UDP ports need raw sockets, not the connect engine: drop --connect or the UDP ports",
            ));
        }
        if use_connect {
            return Err(bad(
                "UDP probes need raw sockets: run as root or with CAP_NET_RAW",
            ));
        }
    }
    if plan.tcp && plan.udp.is_some() && args.resume_index.is_some() {
        return Err(bad(
            "--resume-index applies to one protocol: resume a TCP+UDP scan as two scans (-p T:… and -p U:…)",
        ));
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
    // What nmap's XML calls the scan types: one <scaninfo> per protocol.
    let mut scans = Vec::new();
    if plan.tcp {
        let kind = if use_connect { "connect" } else { "syn" };
        scans.push((kind, "tcp", space.ports().to_vec()));
    }
    if let Some(u) = &plan.udp {
        scans.push(("udp", "udp", u.space.ports().to_vec()));
    }
    let mut writer = ResultWriter::new(out, args.format).with_run(XmlRun::new(scans));

    if args.dry_run {
        let io_err = |e: io::Error| Failure::Failed(format!("writing output: {e}"));
        writer.begin_probes().map_err(io_err)?;
        let tcp_range = if plan.tcp { start..end } else { 0..0 };
        for pos in tcp_range {
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
        if let Some(udp) = &plan.udp {
            let (s, e) = if plan.tcp {
                shard.range(udp.space.size())
            } else {
                (start, end)
            };
            let order = Permutation::new(udp.space.size(), seed);
            for pos in s..e {
                if let Some((ip, port)) = udp.space.target(order.at(pos)) {
                    let proto = aperture_mapper::udp::protocol_of(port, &udp.protocols)
                        .map_or("empty", |p| p.name());
                    if let Err(e) = writer.write_udp_probe(pos, ip, port, proto) {
                        if e.kind() == io::ErrorKind::BrokenPipe {
                            return Ok(ExitCode::SUCCESS);
                        }
                        return Err(io_err(e));
                    }
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

    // A TCP+UDP scan runs the UDP space after the TCP one, over the same shard.
    let (udp_probes, udp_ports) = match &plan.udp {
        Some(u) if plan.tcp => {
            let (s, e) = shard.range(u.space.size());
            (e - s, format!(" udp_ports={}", u.space.ports().len()))
        }
        Some(u) => (0, format!(" udp_ports={}", u.space.ports().len())),
        None => (0, String::new()),
    };
    let engine = match (plan.tcp, plan.udp.is_some(), use_connect) {
        (false, true, _) => "udp",
        (true, true, _) => "syn+udp",
        (_, _, true) => "connect",
        _ => "syn",
    };
    eprintln!(
        "starting: scan_id={scan_id} engine={engine} probes={} addresses={} ports={}{udp_ports} seed={seed} shard={}/{} positions={start}..{end} rate={}",
        end - start + udp_probes,
        space.addresses(),
        if plan.tcp { space.ports().len() } else { 0 },
        shard.k,
        shard.n,
        args.rate
    );

    let progress = Arc::new(Progress::default());
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
    let grab = if args.grab {
        Some(GrabSettings {
            deadline: seconds("--grab-timeout", args.grab_timeout)?,
            banner_wait: seconds("--banner-wait", args.banner_wait)?,
            byte_cap: args.byte_cap,
            jarm: !args.no_jarm,
            favicon: !args.no_favicon,
            concurrency: args.grab_concurrency,
            rate: args.grab_rate,
            recog_dir: args.recog_dir.clone(),
            expiring_days: args.expiring_days,
            login_checks: args.login_checks,
        })
    } else {
        None
    };
    let settings = EngineSettings {
        scan_id: scan_id.clone(),
        use_connect,
        rate: RateHandle::new(args.rate),
        per_net_rate: None,
        retries: args.retries,
        timeout: Duration::from_millis(args.timeout),
        concurrency: args.concurrency,
        show_closed: args.show_closed,
        closed_hosts: false,
        wait,
        source_ip: args.source_ip,
        source_ports: (port_base, port_count),
        ttl: args.ttl,
        grab,
    };
    let reporter = StatusReporter::start(progress.clone(), interval, args.quiet);
    let began = Instant::now();
    let mut finished = if plan.tcp {
        run_ports(
            &runtime,
            &settings,
            &plan,
            &space,
            order,
            (start, end),
            &progress,
            &stop,
            out_tx.clone(),
        )
    } else {
        Ok(Finished {
            interrupted_at: None,
            send_time: Duration::ZERO,
        })
    };
    if let (Some(udp), Ok(tcp)) = (&plan.udp, &finished) {
        if tcp.interrupted_at.is_none() {
            let (s, e) = if plan.tcp {
                shard.range(udp.space.size())
            } else {
                (start, end)
            };
            let udp_order = Permutation::new(udp.space.size(), seed);
            let tcp_time = tcp.send_time;
            finished = run_udp_segments(
                &settings,
                &plan,
                udp,
                udp_order,
                &[(s, e)],
                &progress,
                &stop,
                Arc::new(out_tx.clone()),
            )
            .map(|f| Finished {
                interrupted_at: f.interrupted_at,
                send_time: f.send_time + tcp_time,
            });
        }
    }
    drop(out_tx);
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
        if plan.tcp && plan.udp.is_some() {
            eprintln!("interrupted: a TCP+UDP scan resumes as two scans (-p T:… and -p U:…, --seed {seed}{shard_arg})");
        } else {
            eprintln!("interrupted: resume with --seed {seed}{shard_arg} --resume-index {pos} (same targets and ports)");
        }
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    Ok(ExitCode::SUCCESS)
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
