//! `aperture domains`: seed zones in, names, records, addresses and findings out.

use crate::cli::{DomainsArgs, DomainsFormat};
use crate::{EXIT_BAD_INPUT, EXIT_FAILED};
use aperture_fingerprints::dns::observation::NameStatus;
use aperture_fingerprints::dns::DomainName;
use aperture_mapper::dns::{enumerate, DomainOptions, ScanEvidence, Wordlist};
use aperture_mapper::targets::{parse_targets, Target};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn bad(msg: String) -> ExitCode {
    eprintln!("aperture: {msg}");
    ExitCode::from(EXIT_BAD_INPUT)
}

pub(crate) fn resolver_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Ok(sa);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("invalid --resolver {text:?}: expected IP or IP:PORT (e.g. 198.51.100.53 or [2001:db8::53]:5353)"))
}

pub(crate) fn system_resolvers() -> Result<Vec<SocketAddr>, String> {
    let (config, _) = hickory_resolver::system_conf::read_system_conf().map_err(|e| {
        format!(
            "no resolver given and the system configuration is unusable ({e}); pass --resolver IP"
        )
    })?;
    let mut out: Vec<SocketAddr> = config
        .name_servers()
        .iter()
        .map(|ns| ns.socket_addr)
        .collect();
    out.dedup();
    Ok(out)
}

/// Names in certificates found by a grab: the SANs and CNs of every chain's leaf.
fn certificate_names(path: &std::path::Path) -> Result<Vec<String>, String> {
    let f = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(leaf) = v["certificate"].get(0) {
            out.extend(
                leaf["sans"]["dns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(String::from)),
            );
            if let Some(cn) = leaf["subject_cn"].as_str() {
                out.push(cn.to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Open addresses from scan results, and the ranges that scan covered.
fn scan_evidence(files: &[std::path::PathBuf], scanned: &[String]) -> Result<ScanEvidence, String> {
    let mut evidence = ScanEvidence::default();
    for s in scanned {
        for t in parse_targets(s).map_err(|e| format!("--scanned: {e}"))? {
            match t {
                Target::V4(a, b) => evidence
                    .covered
                    .push((Ipv4Addr::from(a).into(), Ipv4Addr::from(b).into())),
                Target::V6(a, b) => evidence
                    .covered
                    .push((Ipv6Addr::from(a).into(), Ipv6Addr::from(b).into())),
                Target::Host(h) => {
                    return Err(format!(
                        "--scanned takes addresses or CIDRs, not host names ({h})"
                    ))
                }
            }
        }
    }
    for path in files {
        let f = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for line in BufReader::new(f).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["state"] == "open" {
                if let Some(ip) = v["ip"].as_str().and_then(|s| s.parse().ok()) {
                    evidence.open.insert(ip);
                }
            }
        }
    }
    Ok(evidence)
}

fn ptr_addresses(cidrs: &[String]) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for c in cidrs {
        for t in parse_targets(c).map_err(|e| e.to_string())? {
            match t {
                Target::V4(a, b) => {
                    if u64::from(b - a) + out.len() as u64 >= 65536 {
                        return Err(format!("--ptr {c}: more than 65536 addresses in all"));
                    }
                    out.extend((a..=b).map(|x| IpAddr::V4(Ipv4Addr::from(x))));
                }
                Target::V6(a, b) => {
                    if b - a + out.len() as u128 >= 65536 {
                        return Err(format!("--ptr {c}: more than 65536 addresses in all"));
                    }
                    out.extend((a..=b).map(|x| IpAddr::V6(Ipv6Addr::from(x))));
                }
                Target::Host(h) => {
                    return Err(format!(
                        "--ptr takes addresses or CIDRs, not host names ({h})"
                    ))
                }
            }
        }
    }
    Ok(out)
}

pub fn run(args: DomainsArgs) -> ExitCode {
    if args.seeds.is_empty() {
        return bad(
            "no seed domains given: name one or more zones, e.g. aperture domains example.org"
                .into(),
        );
    }
    let mut seeds = Vec::new();
    for s in &args.seeds {
        match DomainName::parse(s.trim()) {
            Ok(d) => seeds.push(d),
            Err(e) => return bad(format!("invalid seed domain {s:?}: {e}")),
        }
    }
    if args.qps == 0 || args.concurrency == 0 || args.timeout == 0 {
        return bad("--qps, --concurrency and --timeout must be at least 1".into());
    }
    let resolvers = if args.resolver.is_empty() {
        match system_resolvers() {
            Ok(r) => r,
            Err(e) => return bad(e),
        }
    } else {
        match args
            .resolver
            .iter()
            .map(|r| resolver_addr(r))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(r) => r,
            Err(e) => return bad(e),
        }
    };
    let wordlist = match (&args.wordlist, args.no_wordlist) {
        (_, true) => Wordlist::None,
        (Some(p), false) => {
            if let Err(e) = File::open(p) {
                return bad(format!("cannot read wordlist {}: {e}", p.display()));
            }
            Wordlist::File(p.clone())
        }
        (None, false) => Wordlist::Builtin,
    };
    let mut cert_names = Vec::new();
    for f in &args.from_grab {
        match certificate_names(f) {
            Ok(n) => cert_names.extend(n),
            Err(e) => return bad(e),
        }
    }
    let ptr = match ptr_addresses(&args.ptr) {
        Ok(p) => p,
        Err(e) => return bad(e),
    };
    let scan = if args.from_scan.is_empty() {
        None
    } else {
        match scan_evidence(&args.from_scan, &args.scanned) {
            Ok(e) => Some(e),
            Err(e) => return bad(e),
        }
    };
    let out: Box<dyn Write> = match &args.output {
        Some(p) => match File::create(p) {
            Ok(f) => Box::new(BufWriter::new(f)),
            Err(e) => return bad(format!("cannot write output file {}: {e}", p.display())),
        },
        None => Box::new(BufWriter::new(io::stdout())),
    };
    let opts = DomainOptions {
        resolvers,
        timeout: Duration::from_millis(args.timeout),
        attempts: args.retries + 1,
        concurrency: args.concurrency,
        qps: args.qps,
        wordlist,
        axfr: !args.no_axfr,
        ptr_addresses: ptr,
        certificate_names: cert_names,
        scan,
        ..DomainOptions::default()
    };
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        eprintln!("aperture: cannot start async runtime");
        return ExitCode::from(EXIT_FAILED);
    };
    let began = Instant::now();
    eprintln!(
        "starting: seeds={} resolvers={:?} qps={}",
        args.seeds.join(","),
        opts.resolvers,
        opts.qps
    );
    let result = match runtime.block_on(enumerate(&seeds, opts)) {
        Ok(r) => r,
        Err(e) => return bad(e.to_string()),
    };
    if let Err(e) = write(out, &args, &result) {
        eprintln!("aperture: writing output: {e}");
        return ExitCode::from(EXIT_FAILED);
    }
    let elapsed = began.elapsed().as_secs_f64();
    let findings: usize = result.zones.iter().map(|z| z.findings.len()).sum();
    eprintln!(
        "done: zones={} names={} findings={findings} queries={} timeouts={} elapsed={elapsed:.2}s qps={:.0}",
        result.zones.len(),
        result.names.len(),
        result.queries,
        result.timeouts,
        result.queries as f64 / elapsed.max(1e-6)
    );
    ExitCode::SUCCESS
}

fn write(
    mut out: Box<dyn Write>,
    args: &DomainsArgs,
    r: &aperture_mapper::dns::Enumeration,
) -> io::Result<()> {
    match args.format {
        DomainsFormat::Jsonl => {
            for z in &r.zones {
                serde_json::to_writer(&mut out, z)?;
                out.write_all(b"\n")?;
            }
            for n in &r.names {
                serde_json::to_writer(&mut out, n)?;
                out.write_all(b"\n")?;
            }
        }
        DomainsFormat::Addresses => {
            let mut seen = std::collections::BTreeSet::new();
            for n in r
                .names
                .iter()
                .filter(|n| !n.related && n.status == NameStatus::Resolved)
            {
                for a in &n.addresses {
                    if seen.insert(*a) {
                        writeln!(out, "{a}")?;
                    }
                }
            }
        }
    }
    out.flush()
}
