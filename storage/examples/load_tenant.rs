//! Fills a data directory with a tenant of N services, as if one complete scan had found
//! them, then runs the exposure policy so findings exist too: the data set behind
//! `scripts/bench-api`.
//!
//!   cargo run --release -p aperture-storage --example load_tenant -- \
//!       --dir DIR --tenant acme --services 100000 [--batch 5000] [--seed 1]
//!
//! Addresses are in 198.18.0.0/15 (RFC 2544 benchmarking space), then, for estates
//! larger than its 131,072 hosts, 240.0.0.0/4 (class E, reserved): this writes records,
//! it never contacts anything. The mix of products, versions and risk classes is
//! generated from a seed, so two loads of the same size are the same data.

use aperture_fingerprints::identify::RiskClass;
use aperture_fingerprints::report::ServiceReport;
use aperture_fingerprints::session::Banner;
use aperture_fingerprints::{PortObservation, PortState, Probe, Proto, Reason};
use aperture_storage::{Batch, Coverage, Observation, Store, StoreError, TenantId};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One kind of service a host may run: its port, what a grab would report, and how
/// common it is (relative weight).
struct Profile {
    port: u16,
    service: &'static str,
    products: &'static [(&'static str, &'static [&'static str])],
    risk: RiskClass,
    banner: Option<&'static str>,
    weight: u32,
}

/// Roughly what an Internet-facing estate looks like: mostly web and SSH, a long tail
/// of mail, databases, caches, brokers and consoles.
const PROFILES: &[Profile] = &[
    Profile {
        port: 443,
        service: "https",
        products: &[
            ("nginx", &["1.18.0", "1.22.1", "1.24.0", "1.26.2"]),
            ("Apache httpd", &["2.4.41", "2.4.57", "2.4.62"]),
            ("Microsoft IIS httpd", &["10.0"]),
        ],
        risk: RiskClass::Web,
        banner: None,
        weight: 30,
    },
    Profile {
        port: 80,
        service: "http",
        products: &[
            ("nginx", &["1.18.0", "1.22.1", "1.24.0"]),
            ("Apache httpd", &["2.4.41", "2.4.57"]),
            ("lighttpd", &["1.4.69"]),
        ],
        risk: RiskClass::Web,
        banner: None,
        weight: 25,
    },
    Profile {
        port: 22,
        service: "ssh",
        products: &[
            ("OpenSSH", &["7.4", "8.2p1", "8.9p1", "9.2p1", "9.6p1"]),
            ("Dropbear sshd", &["2020.81", "2022.83"]),
        ],
        risk: RiskClass::RemoteAdministration,
        banner: Some("ssh"),
        weight: 18,
    },
    Profile {
        port: 8080,
        service: "http",
        products: &[
            ("Apache Tomcat", &["9.0.83", "10.1.16"]),
            ("Jetty", &["9.4.53", "11.0.18"]),
            ("Jenkins", &["2.426.1"]),
        ],
        risk: RiskClass::Web,
        banner: None,
        weight: 6,
    },
    Profile {
        port: 25,
        service: "smtp",
        products: &[("Postfix smtpd", &[""]), ("Exim smtpd", &["4.96", "4.97"])],
        risk: RiskClass::Mail,
        banner: Some("smtp"),
        weight: 5,
    },
    Profile {
        port: 3306,
        service: "mysql",
        products: &[("MySQL", &["5.7.44", "8.0.35"]), ("MariaDB", &["10.6.16"])],
        risk: RiskClass::Database,
        banner: None,
        weight: 3,
    },
    Profile {
        port: 5432,
        service: "postgresql",
        products: &[("PostgreSQL", &["13.13", "15.5", "16.1"])],
        risk: RiskClass::Database,
        banner: None,
        weight: 2,
    },
    Profile {
        port: 6379,
        service: "redis",
        products: &[("Redis", &["6.2.14", "7.0.15", "7.2.3"])],
        risk: RiskClass::Cache,
        banner: None,
        weight: 2,
    },
    Profile {
        port: 3389,
        service: "rdp",
        products: &[("Microsoft Terminal Services", &[""])],
        risk: RiskClass::RemoteAdministration,
        banner: None,
        weight: 3,
    },
    Profile {
        port: 21,
        service: "ftp",
        products: &[("vsftpd", &["3.0.3", "3.0.5"]), ("ProFTPD", &["1.3.8"])],
        risk: RiskClass::FileTransfer,
        banner: Some("ftp"),
        weight: 2,
    },
    Profile {
        port: 5672,
        service: "amqp",
        products: &[("RabbitMQ", &["3.12.10"])],
        risk: RiskClass::MessageBroker,
        banner: None,
        weight: 1,
    },
    Profile {
        port: 9100,
        service: "http",
        products: &[("Prometheus node_exporter", &["1.7.0"])],
        risk: RiskClass::Monitoring,
        banner: None,
        weight: 2,
    },
    Profile {
        port: 6443,
        service: "https",
        products: &[("Kubernetes API server", &["1.28.4"])],
        risk: RiskClass::ContainerOrchestration,
        banner: None,
        weight: 1,
    },
];

/// splitmix64: small, seedable, good enough to spread a synthetic estate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Args {
    dir: PathBuf,
    tenant: String,
    services: u64,
    batch: usize,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: PathBuf::new(),
        tenant: "acme".into(),
        services: 100_000,
        batch: 5000,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value()?),
            "--tenant" => args.tenant = value()?,
            "--services" => args.services = num(&flag, &value()?)?,
            "--batch" => args.batch = num(&flag, &value()?)?,
            "--seed" => args.seed = num(&flag, &value()?)?,
            "-h" | "--help" => {
                return Err(
                    "usage: load_tenant --dir DIR [--tenant acme] [--services 100000] [--batch 5000] [--seed 1]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if args.dir.as_os_str().is_empty() {
        return Err("give the data directory: --dir DIR".into());
    }
    if args.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    Ok(args)
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag} {v:?}: not a valid number"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The services, host by host: each host of 198.18.0.0/15, then of 240.0.0.0/4, gets
/// 1-7 services of distinct profiles, until `count` services exist.
fn estate(count: u64, seed: u64) -> Result<Vec<PortObservation>, String> {
    let mut rng = Rng(seed);
    let total_weight: u32 = PROFILES.iter().map(|p| p.weight).sum();
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let class_e = u32::from(Ipv4Addr::new(240, 0, 0, 0));
    let hosts_available = (1u64 << 17) + (1u64 << 28);
    let mut out = Vec::with_capacity(count as usize);
    let mut host = 0u64;
    while (out.len() as u64) < count {
        if host >= hosts_available {
            return Err(format!(
                "{count} services do not fit in 198.18.0.0/15 and 240.0.0.0/4 at this density"
            ));
        }
        let ip = if host < 1 << 17 {
            IpAddr::V4(Ipv4Addr::from(base + host as u32))
        } else {
            IpAddr::V4(Ipv4Addr::from(class_e + (host - (1 << 17)) as u32))
        };
        host += 1;
        let wanted = 1 + rng.below(7);
        let mut used = Vec::new();
        for _ in 0..wanted {
            if out.len() as u64 == count {
                break;
            }
            let mut pick = rng.below(u64::from(total_weight)) as u32;
            let profile = PROFILES
                .iter()
                .find(|p| {
                    if pick < p.weight {
                        true
                    } else {
                        pick -= p.weight;
                        false
                    }
                })
                .unwrap_or(&PROFILES[0]);
            if used.contains(&profile.port) {
                continue;
            }
            used.push(profile.port);
            out.push(observation(ip, profile, &mut rng));
        }
    }
    Ok(out)
}

fn observation(ip: IpAddr, p: &Profile, rng: &mut Rng) -> PortObservation {
    let (product, versions) = p.products[rng.below(p.products.len() as u64) as usize];
    let version = versions[rng.below(versions.len() as u64) as usize];
    let banner = p.banner.map(|protocol| Banner {
        protocol: protocol.into(),
        text: match protocol {
            "ssh" => format!("SSH-2.0-{}_{version}", product.replace(' ', "_")),
            "smtp" => format!("220 mail.example ESMTP {product}"),
            _ => format!("220 ({product} {version})"),
        },
        ..Default::default()
    });
    PortObservation {
        ip,
        port: p.port,
        proto: Proto::Tcp,
        state: PortState::Open,
        reason: Reason::SynAck,
        ttl: Some(52 + rng.below(12) as u8),
        timestamp: SystemTime::now(),
        scan_id: "load".into(),
        probe: Probe::Syn,
        service: Some(ServiceReport {
            service: Some(p.service.into()),
            product: Some(product.into()),
            version: (!version.is_empty()).then(|| version.into()),
            risk: Some(p.risk),
            // FTP and plain SMTP AUTH send credentials in clear: the policy flags it.
            cleartext_auth: matches!(p.service, "ftp"),
            confidence: Some(90),
            banner,
            ..Default::default()
        }),
    }
}

fn run(args: Args) -> Result<(), String> {
    let began = Instant::now();
    let store =
        Store::open(&args.dir).map_err(|e| format!("cannot open {}: {e}", args.dir.display()))?;
    let tenant = TenantId::new(&args.tenant).map_err(|e| e.to_string())?;
    match store.create_tenant(&tenant, &args.tenant, now_ms()) {
        // A second load into the same tenant adds another scan's worth: allowed.
        Ok(_) | Err(StoreError::Conflict(_)) => {}
        Err(e) => return Err(e.to_string()),
    }
    let services = estate(args.services, args.seed)?;
    let chunks: Vec<&[PortObservation]> = services.chunks(args.batch).collect();
    let mut ports: Vec<(u16, u16)> = PROFILES.iter().map(|p| (p.port, p.port)).collect();
    ports.sort_unstable();
    let coverage = Coverage {
        targets: ["198.18.0.0/15", "240.0.0.0/4"]
            .iter()
            .map(|n| n.parse().map_err(|e| format!("net: {e}")))
            .collect::<Result<_, _>>()?,
        ports,
        probes: ["syn".to_owned(), "grab".to_owned()].into(),
        domains: Vec::new(),
        udp_ports: Vec::new(),
    };
    let scan = format!("load-{}", now_ms());
    store
        .begin_scan(
            &tenant,
            &scan,
            coverage,
            chunks.len().max(1) as u32,
            Some("synthetic load (load_tenant example)".into()),
            now_ms(),
        )
        .map_err(|e| e.to_string())?;
    let mut changes = 0;
    for (shard, chunk) in chunks.iter().enumerate() {
        let batch = Batch {
            range: None,
            scan: scan.clone(),
            shard: shard as u32,
            at: now_ms(),
            observations: chunk.iter().cloned().map(Observation::Port).collect(),
        };
        let applied = store.apply(&tenant, &batch).map_err(|e| e.to_string())?;
        changes += applied.changes;
    }
    let loaded = began.elapsed();
    let policy = store
        .run_policy(&tenant, now_ms())
        .map_err(|e| e.to_string())?;
    store.flush().map_err(|e| e.to_string())?;
    let (hosts, present) = store.exposed_now(&tenant).map_err(|e| e.to_string())?;
    eprintln!(
        "load_tenant: tenant {tenant}: {present} services on {hosts} hosts present \
         ({changes} change events, {} batches, {:.1}s); policy opened {} findings over {} assets ({:.1}s)",
        chunks.len(),
        loaded.as_secs_f64(),
        policy.opened,
        policy.assets_evaluated,
        began.elapsed().as_secs_f64() - loaded.as_secs_f64(),
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load_tenant: {e}");
            ExitCode::FAILURE
        }
    }
}
