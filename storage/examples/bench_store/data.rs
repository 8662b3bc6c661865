//! Synthetic estates: the product mix, where hosts sit, and observations generated one
//! batch at a time (deterministic from a seed, so every scan re-creates the same facts
//! without holding them in memory).
//!
//! Addresses: the first 131,072 hosts fill 198.18.0.0/15 (RFC 2544 benchmarking range);
//! hosts beyond it go to 240.0.0.0/4 (class E, reserved, never routed), in the smallest
//! power-of-two block that holds them. Nothing is ever contacted — the store opens no
//! socket; the addresses only shape the keys. Within each block a multiplication by an
//! odd constant permutes hosts, so they land scattered (and batches write all over the
//! key space) as a randomised scanner's results do.

use aperture_fingerprints::identify::RiskClass;
use aperture_fingerprints::report::{GrabStats, ServiceReport};
use aperture_fingerprints::session::Banner;
use aperture_fingerprints::{PortObservation, PortState, Probe, Proto, Reason};
use aperture_storage::{AssetKey, Batch, Coverage, Observation};
use ipnet::{IpNet, Ipv4Net};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, UNIX_EPOCH};

/// One product as the grabber would identify it.
pub struct Product {
    service: &'static str,
    pub product: &'static str,
    vendor: &'static str,
    protocol: &'static str,
    risk: RiskClass,
    /// Share of services, per mille; the table sums to 1000.
    share: u32,
    /// Where it usually listens, in order of preference.
    ports: &'static [u16],
    versions: &'static [&'static str],
    /// `{v}` is replaced by the version.
    banner: &'static str,
    cpe: &'static str,
    os: Option<&'static str>,
    cleartext_auth: bool,
}

/// Roughly the mix an internet-facing estate shows: web and ssh dominate, a long tail
/// of mail, databases and file transfer, and one rare product for a selective filter.
pub const PRODUCTS: &[Product] = &[
    Product {
        service: "http",
        product: "nginx",
        vendor: "F5",
        protocol: "http",
        risk: RiskClass::Web,
        share: 220,
        ports: &[80, 443, 8080, 8443],
        versions: &["1.18.0", "1.22.1", "1.24.0", "1.26.2"],
        banner: "HTTP/1.1 200 OK\\r\\nServer: nginx/{v}\\r\\nContent-Type: text/html",
        cpe: "cpe:/a:f5:nginx:",
        os: None,
        cleartext_auth: false,
    },
    Product {
        service: "ssh",
        product: "OpenSSH",
        vendor: "OpenBSD",
        protocol: "ssh",
        risk: RiskClass::RemoteAdministration,
        share: 200,
        ports: &[22, 2222],
        versions: &["8.2p1", "8.9p1", "9.2p1", "9.6p1"],
        banner: "SSH-2.0-OpenSSH_{v}",
        cpe: "cpe:/a:openbsd:openssh:",
        os: Some("Linux"),
        cleartext_auth: false,
    },
    Product {
        service: "http",
        product: "Apache httpd",
        vendor: "Apache",
        protocol: "http",
        risk: RiskClass::Web,
        share: 180,
        ports: &[80, 443, 8080],
        versions: &["2.4.41", "2.4.52", "2.4.57", "2.4.62"],
        banner: "HTTP/1.1 200 OK\\r\\nServer: Apache/{v} (Ubuntu)\\r\\nContent-Type: text/html",
        cpe: "cpe:/a:apache:http_server:",
        os: Some("Linux"),
        cleartext_auth: false,
    },
    Product {
        service: "http",
        product: "Microsoft IIS httpd",
        vendor: "Microsoft",
        protocol: "http",
        risk: RiskClass::Web,
        share: 80,
        ports: &[80, 443],
        versions: &["8.5", "10.0"],
        banner: "HTTP/1.1 200 OK\\r\\nServer: Microsoft-IIS/{v}\\r\\nX-Powered-By: ASP.NET",
        cpe: "cpe:/a:microsoft:internet_information_services:",
        os: Some("Windows"),
        cleartext_auth: false,
    },
    Product {
        service: "smtp",
        product: "Postfix smtpd",
        vendor: "Postfix",
        protocol: "smtp",
        risk: RiskClass::Mail,
        share: 70,
        ports: &[25, 587],
        versions: &["3.5.18", "3.7.11", "3.8.6"],
        banner: "220 mail.example.test ESMTP Postfix ({v})",
        cpe: "cpe:/a:postfix:postfix:",
        os: Some("Linux"),
        cleartext_auth: false,
    },
    Product {
        service: "mysql",
        product: "MySQL",
        vendor: "Oracle",
        protocol: "mysql",
        risk: RiskClass::Database,
        share: 60,
        ports: &[3306],
        versions: &["5.7.44", "8.0.36", "8.0.39"],
        banner: "{v}-0ubuntu0.22.04.1",
        cpe: "cpe:/a:oracle:mysql:",
        os: Some("Linux"),
        cleartext_auth: false,
    },
    Product {
        service: "smtp",
        product: "Exim smtpd",
        vendor: "Exim",
        protocol: "smtp",
        risk: RiskClass::Mail,
        share: 50,
        ports: &[25, 465],
        versions: &["4.95", "4.96", "4.97"],
        banner: "220 mx.example.test ESMTP Exim {v}",
        cpe: "cpe:/a:exim:exim:",
        os: Some("Linux"),
        cleartext_auth: false,
    },
    Product {
        service: "imap",
        product: "Dovecot imapd",
        vendor: "Dovecot",
        protocol: "imap",
        risk: RiskClass::Mail,
        share: 50,
        ports: &[143, 993],
        versions: &["2.3.16", "2.3.19", "2.3.21"],
        banner: "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.",
        cpe: "cpe:/a:dovecot:dovecot:",
        os: Some("Linux"),
        cleartext_auth: true,
    },
    Product {
        service: "postgresql",
        product: "PostgreSQL",
        vendor: "PostgreSQL",
        protocol: "postgresql",
        risk: RiskClass::Database,
        share: 30,
        ports: &[5432],
        versions: &["13.14", "15.6", "16.2"],
        banner: "SFATAL VFATAL C28000 Mno pg_hba.conf entry for host (PostgreSQL {v})",
        cpe: "cpe:/a:postgresql:postgresql:",
        os: None,
        cleartext_auth: false,
    },
    Product {
        service: "ftp",
        product: "vsftpd",
        vendor: "vsftpd",
        protocol: "ftp",
        risk: RiskClass::FileTransfer,
        share: 30,
        ports: &[21],
        versions: &["3.0.3", "3.0.5"],
        banner: "220 (vsFTPd {v})",
        cpe: "cpe:/a:beasts:vsftpd:",
        os: Some("Unix"),
        cleartext_auth: true,
    },
    Product {
        service: "redis",
        product: "Redis key-value store",
        vendor: "Redis",
        protocol: "redis",
        risk: RiskClass::Cache,
        share: 20,
        ports: &[6379],
        versions: &["6.2.14", "7.0.15", "7.2.4"],
        banner: "$3500\\r\\n# Server\\r\\nredis_version:{v}\\r\\nredis_mode:standalone",
        cpe: "cpe:/a:redis:redis:",
        os: None,
        cleartext_auth: false,
    },
    Product {
        service: "ssh",
        product: "Dropbear sshd",
        vendor: "Matt Johnston",
        protocol: "ssh",
        risk: RiskClass::RemoteAdministration,
        share: 10,
        ports: &[22, 2222],
        versions: &["2020.81", "2022.83"],
        banner: "SSH-2.0-dropbear_{v}",
        cpe: "cpe:/a:matt_johnston:dropbear_ssh_server:",
        os: Some("Linux"),
        cleartext_auth: false,
    },
];

/// Filters of the latency runs: the most common product and the rare one.
pub const COMMON_PRODUCT: &str = "nginx";
pub const RARE_PRODUCT: &str = "Dropbear sshd";
pub const FILTER_PORT: u16 = 22;
/// Where a host's service goes when its product's usual ports are taken on that host.
pub const SPARE_PORT_BASE: u16 = 10_000;

/// The service reports a grab would produce, one per (product, version), cloned into
/// observations so that generating a batch formats nothing.
pub fn templates() -> Vec<Vec<ServiceReport>> {
    PRODUCTS
        .iter()
        .map(|p| {
            p.versions
                .iter()
                .map(|v| {
                    let mut fields = BTreeMap::new();
                    fields.insert("version".to_owned(), (*v).to_owned());
                    ServiceReport {
                        service: Some(p.service.to_owned()),
                        product: Some(p.product.to_owned()),
                        version: Some((*v).to_owned()),
                        cpe: Some(format!("{}{v}", p.cpe)),
                        vendor: Some(p.vendor.to_owned()),
                        os: p.os.map(str::to_owned),
                        risk: Some(p.risk),
                        cleartext_auth: p.cleartext_auth,
                        confidence: Some(90),
                        rule: Some(format!("builtin:{}", p.protocol)),
                        banner: Some(Banner {
                            protocol: p.protocol.to_owned(),
                            text: p.banner.replace("{v}", v),
                            fields,
                            starttls: match p.protocol {
                                "smtp" | "imap" | "ftp" => Some(true),
                                _ => None,
                            },
                        }),
                        tls: None,
                        certificate: Vec::new(),
                        http: None,
                        unauth: None,
                        grab: GrabStats {
                            connections: 1,
                            silent: false,
                            millis: 40,
                        },
                        answers_every_port: None,
                        udp: None,
                    }
                })
                .collect()
        })
        .collect()
}

/// SplitMix64: deterministic per (host, slot) without a dependency or any state.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 198.18.0.0/15: the benchmarking range, filled first.
const BENCH_BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);
const BENCH_BITS: u32 = 17;
/// 240.0.0.0/4: class E, reserved; hosts beyond the /15 go here.
const CLASS_E_BASE: u32 = u32::from_be_bytes([240, 0, 0, 0]);
const CLASS_E_BITS: u32 = 28;
/// Odd, so multiplying by it permutes a power-of-two block.
const ADDRESS_STRIDE: u32 = 0x9e37_79b1;

/// One of the (at most two) address blocks hosts fill.
#[derive(Debug, Clone, Copy)]
struct Block {
    base: u32,
    bits: u32,
    /// Hosts in this block; the block's first host index is `first`.
    hosts: usize,
    first: usize,
}

impl Block {
    fn new(base: u32, max_bits: u32, hosts: usize, first: usize) -> Block {
        // The smallest power of two holding them, at least a /24.
        let bits = (usize::BITS - hosts.saturating_sub(1).leading_zeros()).clamp(8, max_bits);
        Block {
            base,
            bits,
            hosts,
            first,
        }
    }

    fn net(&self) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::from(self.base), (32 - self.bits) as u8)
            .expect("a prefix of 4-24 bits is valid")
    }

    fn ip(&self, h: usize) -> Ipv4Addr {
        let mask = if self.bits == 32 {
            u32::MAX
        } else {
            (1u32 << self.bits) - 1
        };
        let offset = ((h - self.first) as u32).wrapping_mul(ADDRESS_STRIDE) & mask;
        Ipv4Addr::from(self.base + offset)
    }
}

/// Product, port and version of one service.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub port: u16,
    pub product: usize,
    pub version: usize,
    /// The 1%-changed rescan bumps this service's version.
    pub bumped: bool,
    /// The rescan that leaves ~10% unseen does not see this service.
    pub missing: bool,
}

/// Where the synthetic services are: `hosts` hosts with `ports_per_host` services each.
#[derive(Debug, Clone)]
pub struct Layout {
    pub hosts: usize,
    pub ports_per_host: usize,
    pub seed: u64,
    blocks: Vec<Block>,
}

/// Most hosts the two blocks hold.
pub const MAX_HOSTS: usize = (1 << BENCH_BITS) + (1 << CLASS_E_BITS);

impl Layout {
    /// Enough hosts for `assets` assets (each host is one asset, each service another).
    pub fn for_assets(assets: usize, ports_per_host: usize, seed: u64) -> Result<Layout, String> {
        if assets == 0 || ports_per_host == 0 || ports_per_host > 64 {
            return Err("give at least one asset and 1-64 ports per host".into());
        }
        let hosts = assets.div_ceil(ports_per_host + 1);
        if hosts > MAX_HOSTS {
            return Err(format!(
                "{hosts} hosts do not fit in 198.18.0.0/15 + 240.0.0.0/4"
            ));
        }
        let first = hosts.min(1 << BENCH_BITS);
        let mut blocks = vec![Block::new(BENCH_BASE, BENCH_BITS, first, 0)];
        if hosts > first {
            blocks.push(Block::new(CLASS_E_BASE, CLASS_E_BITS, hosts - first, first));
        }
        Ok(Layout {
            hosts,
            ports_per_host,
            seed,
            blocks,
        })
    }

    pub fn services(&self) -> usize {
        self.hosts * self.ports_per_host
    }

    pub fn assets(&self) -> usize {
        self.hosts + self.services()
    }

    pub fn nets(&self) -> Vec<Ipv4Net> {
        self.blocks.iter().map(Block::net).collect()
    }

    pub fn host_ip(&self, h: usize) -> Ipv4Addr {
        let block = self
            .blocks
            .iter()
            .rev()
            .find(|b| h >= b.first)
            .unwrap_or(&self.blocks[0]);
        block.ip(h)
    }

    pub fn host_slots(&self, h: usize, out: &mut Vec<Slot>) {
        out.clear();
        for slot in 0..self.ports_per_host {
            let r = mix(self.seed ^ ((h as u64) << 16) ^ slot as u64);
            let pick = (r & 0xffff) as u32 % 1000;
            let mut acc = 0;
            let product = PRODUCTS
                .iter()
                .position(|p| {
                    acc += p.share;
                    pick < acc
                })
                .unwrap_or(0);
            let p = &PRODUCTS[product];
            let port = p
                .ports
                .iter()
                .copied()
                .find(|port| out.iter().all(|s| s.port != *port))
                .unwrap_or(SPARE_PORT_BASE + slot as u16);
            out.push(Slot {
                port,
                product,
                version: ((r >> 16) & 0xffff) as usize % p.versions.len(),
                bumped: ((r >> 32) & 0xffff).is_multiple_of(100),
                missing: ((r >> 48) & 0xffff).is_multiple_of(10),
            });
        }
    }

    /// What every scan covers: the blocks, every port a product or spare slot uses.
    pub fn coverage(&self) -> Coverage {
        let mut ports: BTreeSet<u16> = PRODUCTS.iter().flat_map(|p| p.ports).copied().collect();
        ports.extend((0..self.ports_per_host as u16).map(|s| SPARE_PORT_BASE + s));
        Coverage {
            targets: self.nets().into_iter().map(IpNet::V4).collect(),
            ports: ports.into_iter().map(|p| (p, p)).collect(),
            probes: ["syn".to_owned(), "grab".to_owned()].into(),
            domains: Vec::new(),
            udp_ports: Vec::new(),
        }
    }

    /// A net holding about `share` of the hosts (a power-of-two block inside the densest
    /// address block), with the number of hosts it holds.
    pub fn net_with_share(&self, share: f64) -> (Ipv4Net, usize) {
        let want = (self.hosts as f64 * share).max(1.0);
        let block = self
            .blocks
            .iter()
            .max_by(|a, b| {
                let da = a.hosts as f64 / (1u64 << a.bits) as f64;
                let db = b.hosts as f64 / (1u64 << b.bits) as f64;
                da.total_cmp(&db)
            })
            .unwrap_or(&self.blocks[0]);
        let density = block.hosts as f64 / (1u64 << block.bits) as f64;
        // The power of two of addresses nearest (in ratio) to want / density.
        let size = (want / density)
            .log2()
            .round()
            .clamp(0.0, block.bits as f64) as u32;
        let net = Ipv4Net::new(Ipv4Addr::from(block.base), (32 - size) as u8)
            .expect("a prefix of 0-32 bits is valid");
        let held = (block.first..block.first + block.hosts)
            .filter(|h| net.contains(&block.ip(*h)))
            .count();
        (net, held)
    }

    /// A random service (host, slot) that satisfies `want`, by rejection; None if 10,000
    /// tries found none.
    pub fn random_service(
        &self,
        rng: &mut u64,
        want: &dyn Fn(&Slot) -> bool,
        slots: &mut Vec<Slot>,
    ) -> Option<(usize, Slot)> {
        for _ in 0..10_000 {
            *rng = mix(*rng);
            let h = (*rng % self.hosts as u64) as usize;
            self.host_slots(h, slots);
            let s = slots[((*rng >> 40) % self.ports_per_host as u64) as usize];
            if want(&s) {
                return Some((h, s));
            }
        }
        None
    }

    pub fn service_key(&self, h: usize, port: u16) -> AssetKey {
        AssetKey::tcp(IpAddr::V4(self.host_ip(h)), port)
    }

    pub fn host_key(&self, h: usize) -> AssetKey {
        AssetKey::Host(IpAddr::V4(self.host_ip(h)))
    }
}

/// What a scan sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Every service, each at its version: the first ingest, and an unchanged rescan.
    Same,
    /// About 1% of services at another version.
    Bumped,
    /// About 10% of services not seen (the rest unchanged).
    TenPercentUnseen,
}

/// Per-product and per-port service counts of one estate, tallied while generating.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub products: BTreeMap<usize, u64>,
    pub ports: BTreeMap<u16, u64>,
}

/// Batch generator: walks services in host order, one host's layout at a time.
pub struct Generator<'a> {
    pub layout: &'a Layout,
    pub templates: &'a [Vec<ServiceReport>],
    pub variant: Variant,
    slots: Vec<Slot>,
    slots_host: Option<usize>,
    pub tally: Tally,
    /// Services generated at another version / left out.
    pub bumped: u64,
    pub missing: u64,
}

impl<'a> Generator<'a> {
    pub fn new(
        layout: &'a Layout,
        templates: &'a [Vec<ServiceReport>],
        variant: Variant,
    ) -> Generator<'a> {
        Generator {
            layout,
            templates,
            variant,
            slots: Vec::with_capacity(layout.ports_per_host),
            slots_host: None,
            tally: Tally::default(),
            bumped: 0,
            missing: 0,
        }
    }

    /// Refills `batch` with services `start..end` (in host order) as this variant sees
    /// them.
    pub fn fill(&mut self, batch: &mut Batch, start: usize, end: usize) {
        batch.observations.clear();
        let timestamp = UNIX_EPOCH + Duration::from_millis(batch.at as u64);
        let per_host = self.layout.ports_per_host;
        for j in start..end {
            let h = j / per_host;
            if self.slots_host != Some(h) {
                self.layout.host_slots(h, &mut self.slots);
                self.slots_host = Some(h);
            }
            let s = self.slots[j % per_host];
            *self.tally.products.entry(s.product).or_default() += 1;
            *self.tally.ports.entry(s.port).or_default() += 1;
            let versions = &self.templates[s.product];
            let version = match self.variant {
                Variant::Bumped if s.bumped => {
                    self.bumped += 1;
                    (s.version + 1) % versions.len()
                }
                Variant::TenPercentUnseen if s.missing => {
                    self.missing += 1;
                    continue;
                }
                _ => s.version,
            };
            batch.observations.push(Observation::Port(PortObservation {
                ip: IpAddr::V4(self.layout.host_ip(h)),
                port: s.port,
                proto: Proto::Tcp,
                state: PortState::Open,
                reason: Reason::SynAck,
                ttl: Some(54),
                timestamp,
                scan_id: batch.scan.clone(),
                probe: Probe::Syn,
                service: Some(versions[version].clone()),
            }));
        }
    }
}
