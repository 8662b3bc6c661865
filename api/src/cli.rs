//! Command-line surface. Flags follow masscan and nmap where they overlap, so users
//! bring their habits: `-p-`, `--top-ports`, `-iL`, `--rate`, `--shard`, `--resume-index`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "aperture",
    version,
    about = "Map an organisation's Internet exposure surface"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find open TCP and UDP ports: stateless SYN and UDP probes over raw sockets, or
    /// connect scan.
    Scan(Box<ScanArgs>),
    /// Enumerate names, records and addresses under seed domains, with DNS findings.
    Domains(Box<DomainsArgs>),
    /// Run the service: HTTP API, scan workers, scheduler, over one data directory.
    Serve(ServeArgs),
    /// Bootstrap a data directory: tenants and tokens, before the service runs.
    Admin(AdminArgs),
    /// Run as a remote probe worker of a coordinator (`aperture serve` with bus_url):
    /// pulls one shard at a time over NATS JetStream, runs it, sends its results back.
    Worker(Box<WorkerArgs>),
    /// Set up the bus of a coordinator and its workers (nats-server config and keys).
    Bus(BusArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DomainsFormat {
    /// One JSON object per zone and per name (the default; the stable schema).
    Jsonl,
    /// In-zone addresses only, one per line: ready for `aperture scan -iL -`.
    Addresses,
}

#[derive(Debug, Args)]
pub struct DomainsArgs {
    /// Seed zones (IDN accepted: bücher.example).
    pub seeds: Vec<String>,

    /// Resolver to ask, IP or IP:PORT (repeatable; default: the system's).
    #[arg(long, value_name = "IP[:PORT]")]
    pub resolver: Vec<String>,

    /// Wordlist file, one label per line, streamed (default: Aperture's own list).
    #[arg(long, value_name = "FILE")]
    pub wordlist: Option<PathBuf>,

    /// Skip wordlist guessing.
    #[arg(long)]
    pub no_wordlist: bool,

    /// Skip zone-transfer attempts.
    #[arg(long)]
    pub no_axfr: bool,

    /// Look up PTR names of the addresses in these CIDRs (at most 65536 addresses).
    #[arg(long, value_name = "CIDR")]
    pub ptr: Vec<String>,

    /// Take certificate names (SANs, CNs) from an `aperture scan --grab` JSONL file.
    #[arg(long = "from-grab", value_name = "FILE")]
    pub from_grab: Vec<PathBuf>,

    /// Results of `aperture scan` (JSONL): names pointing at an address in --scanned with
    /// no open port in these results are reported as dangling records.
    #[arg(long = "from-scan", value_name = "FILE", requires = "scanned")]
    pub from_scan: Vec<PathBuf>,

    /// Address ranges the --from-scan scan covered (CIDRs, ranges, addresses).
    #[arg(long, value_name = "TARGETS")]
    pub scanned: Vec<String>,

    /// Per-query timeout in milliseconds.
    #[arg(long, default_value_t = 1500, value_name = "MS")]
    pub timeout: u64,

    /// Extra attempts after a time-out, SERVFAIL or REFUSED.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub retries: usize,

    /// Queries in flight at once.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub concurrency: usize,

    /// Queries per second.
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub qps: u64,

    #[arg(long, value_enum, default_value_t = DomainsFormat::Jsonl)]
    pub format: DomainsFormat,

    /// Write to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per result (the default; the stable schema).
    Jsonl,
    Csv,
    /// nmap-style grepable lines.
    Grepable,
    /// masscan-style list lines.
    List,
    /// nmap's XML (nmap.dtd), for tools that import nmap results; written when the scan
    /// ends.
    Xml,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Targets: IPv4/IPv6 addresses, CIDRs (198.18.0.0/16), ranges (a-b), host names.
    pub targets: Vec<String>,

    /// Scan the in-zone addresses of an `aperture domains` JSONL file ('-' for standard
    /// input); their names are used for SNI and Host when grabbing.
    #[arg(long = "from-domains", value_name = "FILE")]
    pub from_domains: Option<PathBuf>,

    /// Read targets from FILE ('-' for standard input). Also spelled -iL.
    #[arg(long = "input-list", value_name = "FILE")]
    pub input_list: Vec<PathBuf>,

    /// Ports: 22,80,443 or 1-1024 or - (all). Also -p-. UDP with nmap's prefixes:
    /// U:53,161,T:22 (a prefix holds until the next); U:5300=dns probes an unusual
    /// port with a named protocol.
    #[arg(
        short = 'p',
        long = "ports",
        value_name = "PORTS",
        allow_hyphen_values = true
    )]
    pub ports: Option<String>,

    /// UDP presets, comma-separated: common (every protocol on its port), amplifiers,
    /// or protocols: dns, ntp, snmp, snmp1, ssdp, netbios, mdns, memcached, coap, ipmi,
    /// stun, sip, quic, ike, wsd, tftp, ntp-control (opt-in: mode 6 amplifies).
    #[arg(long = "udp", value_name = "PRESETS")]
    pub udp: Option<String>,

    /// The N most often exposed ports, from Aperture's own ranking.
    #[arg(long = "top-ports", value_name = "N")]
    pub top_ports: Option<usize>,

    /// Addresses, CIDRs or ranges never to probe (repeatable, comma-separated).
    #[arg(long, value_name = "TARGETS")]
    pub exclude: Vec<String>,

    /// File of exclusions, one or more per line, '#' comments.
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,

    /// Include IANA special-purpose ranges (private, loopback, benchmarking, …).
    #[arg(long)]
    pub allow_special: bool,

    /// Allow a scan of more than 2^32 probes.
    #[arg(long)]
    pub confirm_large: bool,

    /// Packets (SYN) or connection attempts (connect) per second.
    #[arg(long, default_value_t = 10_000, value_name = "PPS")]
    pub rate: u64,

    /// Extra passes over the targets; replies are de-duplicated.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub retries: u32,

    /// Seconds to wait for late replies after the last probe (SYN engine).
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS")]
    pub wait: f64,

    /// Use the connect engine (no raw sockets; required for IPv6).
    #[arg(long)]
    pub connect: bool,

    /// Connect engine: per-attempt timeout in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub timeout: u64,

    /// Connect engine: connections in flight at once.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub concurrency: usize,

    /// Report closed ports (RST / refused) as well as open ones.
    #[arg(long)]
    pub show_closed: bool,

    /// Seed of the probe order; the same seed, targets and ports give the same order.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Run only shard K of N (1-based), e.g. 2/4. Shards partition the probes exactly.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,

    /// Continue an interrupted run from this position (printed on Ctrl-C).
    #[arg(long = "resume-index", value_name = "I")]
    pub resume_index: Option<u64>,

    /// Print the probes that would be sent, in order, and send nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,

    /// Write results to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Source address of SYN probes (default: the route's address toward the targets).
    #[arg(long = "source-ip", value_name = "IP")]
    pub source_ip: Option<std::net::Ipv4Addr>,

    /// Source ports of SYN probes: BASE or BASE-LAST (default 61000-65095, outside
    /// Linux's ephemeral range).
    #[arg(long = "source-port", value_name = "PORTS")]
    pub source_port: Option<String>,

    /// IP TTL of SYN probes.
    #[arg(long, default_value_t = 64)]
    pub ttl: u8,

    /// Scan identifier written into every result (default: random).
    #[arg(long = "scan-id", value_name = "ID")]
    pub scan_id: Option<String>,

    /// Identify what listens on each open port: banners, TLS and certificates, HTTP,
    /// product and version.
    #[arg(long)]
    pub grab: bool,

    /// Grab: deadline of each connection, in seconds.
    #[arg(long = "grab-timeout", default_value_t = 5.0, value_name = "SECONDS")]
    pub grab_timeout: f64,

    /// Grab: how long to listen for a server-first greeting, in seconds.
    #[arg(long = "banner-wait", default_value_t = 1.5, value_name = "SECONDS")]
    pub banner_wait: f64,

    /// Grab: ports being identified at once.
    #[arg(long = "grab-concurrency", default_value_t = 256, value_name = "N")]
    pub grab_concurrency: usize,

    /// Grab: new connections per second.
    #[arg(long = "grab-rate", default_value_t = 1000, value_name = "N")]
    pub grab_rate: u64,

    /// Grab: bytes read at most from one connection.
    #[arg(long = "byte-cap", default_value_t = 65536, value_name = "BYTES")]
    pub byte_cap: usize,

    /// Grab: also identify with Rapid7 Recog XML fingerprints from DIR (not shipped;
    /// our own rules decide first, Recog fills in where they find nothing).
    #[arg(long = "recog-dir", value_name = "DIR")]
    pub recog_dir: Option<PathBuf>,

    /// Grab: days before expiry at which a certificate counts as expiring soon.
    #[arg(long = "expiring-days", default_value_t = 30, value_name = "DAYS")]
    pub expiring_days: u32,

    /// Grab: skip the JARM fingerprint of TLS services (saves ten connections a port).
    #[arg(long = "no-jarm")]
    pub no_jarm: bool,

    /// Grab: skip fetching /favicon.ico from web services.
    #[arg(long = "no-favicon")]
    pub no_favicon: bool,

    /// Grab: also run the unauthenticated-access checks that log in, anonymously
    /// (FTP `anonymous`, LDAP anonymous bind, SMB null session). Only against hosts you
    /// are authorised to log in to.
    #[arg(long = "login-checks")]
    pub login_checks: bool,

    /// Seconds between status lines when standard error is not a terminal.
    #[arg(
        long = "status-interval",
        default_value_t = 5.0,
        value_name = "SECONDS"
    )]
    pub status_interval: f64,

    /// No progress or status lines (the final summary is still printed).
    #[arg(short, long)]
    pub quiet: bool,
}

/// Accepts the spellings masscan and nmap users type that clap cannot express:
/// `-iL FILE` and `-p-`.
pub fn normalise_args(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    args.map(|a| match a.to_str() {
        Some("-iL") => OsString::from("--input-list"),
        Some("-p-") => OsString::from("--ports=-"),
        _ => a,
    })
    .collect()
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML settings file (every key is listed in the README); APERTURE_* environment
    /// variables override it, and these flags override both.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// sled data directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Address and port to listen on (default 127.0.0.1:8477).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The service's data directory (the service must not be running: sled allows one
    /// process per directory; with the service up, use the API with an admin token).
    #[arg(long, value_name = "DIR", env = "APERTURE_DATA_DIR", global = true)]
    pub data: Option<PathBuf>,

    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a tenant: aperture admin tenant-create ID "Name".
    TenantCreate { id: String, name: String },
    /// List tenants.
    TenantList,
    /// Create a token; its secret is printed once, on standard output.
    TokenCreate {
        /// A name saying whose token it is.
        #[arg(long)]
        name: String,
        /// admin, analyst, remediator or viewer.
        #[arg(long)]
        role: String,
        /// Tenant the token may act on (repeatable; not for admin).
        #[arg(long)]
        tenant: Vec<String>,
    },
    /// List tokens (never their secrets).
    TokenList,
    /// Revoke a token by id.
    TokenRevoke { id: String },
    /// Vulnerability data (NVD CVE feeds, CISA KEV): import and status.
    #[command(subcommand)]
    Vulndb(VulndbCommand),
}

#[derive(Debug, Subcommand)]
pub enum VulndbCommand {
    /// Import NVD CVE JSON 2.0 feed files (nvdcve-2.0-*.json) and the CISA KEV catalogue
    /// (known_exploited_vulnerabilities.json), told apart by content. All files are
    /// validated before anything is stored; records older than those stored are skipped.
    Import {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// What is imported: CVE and KEV counts, the newest feed, the last import.
    Status,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// TOML settings file with any of: bus, name, nkey, user, password, ca, source_ip,
    /// no_syn. APERTURE_* environment variables override it, and these flags both.
    #[arg(long, value_name = "FILE", env = "APERTURE_WORKER_CONFIG")]
    pub config: Option<PathBuf>,

    /// The coordinator's NATS server, e.g. nats://10.0.0.5:4222 (tls://… for TLS).
    #[arg(long, value_name = "URL", env = "APERTURE_BUS_URL")]
    pub bus: Option<String>,

    /// This worker's name, as `aperture bus init --workers` listed it (letters, digits,
    /// '-', '_'): the server lets it publish under this name only.
    #[arg(long, value_name = "NAME", env = "APERTURE_WORKER_NAME")]
    pub name: Option<String>,

    /// Its nkey seed file (`worker-NAME.nk` from `aperture bus init`).
    #[arg(long, value_name = "FILE", env = "APERTURE_WORKER_NKEY")]
    pub nkey: Option<PathBuf>,

    /// Or a user and password, when the server lists users that way.
    #[arg(long, env = "APERTURE_BUS_USER")]
    pub user: Option<String>,
    #[arg(long, env = "APERTURE_BUS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// CA bundle to check the server's TLS certificate with (TLS is then required).
    #[arg(long, value_name = "FILE", env = "APERTURE_BUS_CA")]
    pub ca: Option<PathBuf>,

    /// Source address of SYN probes (default: the route's source to the targets).
    #[arg(long, value_name = "IP", env = "APERTURE_WORKER_SOURCE_IP")]
    pub source_ip: Option<std::net::Ipv4Addr>,

    /// Never run SYN shards (no raw sockets here): hand them back to other workers.
    #[arg(long, env = "APERTURE_WORKER_NO_SYN")]
    pub no_syn: bool,

    /// Stop after this many shards (for trials and benchmarks).
    #[arg(long, value_name = "N")]
    pub max_shards: Option<u64>,
}

#[derive(Debug, Args)]
pub struct BusArgs {
    #[command(subcommand)]
    pub command: BusCommand,
}

#[derive(Debug, Subcommand)]
pub enum BusCommand {
    /// Write DIR/nats-server.conf (JetStream on file storage, one nkey per process and
    /// the least each may do) and the keys: DIR/coordinator.nk, DIR/worker-NAME.nk.
    /// Rerun with more workers to add them (existing keys are kept).
    Init {
        /// Where to write the config and keys.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Worker names, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        workers: Vec<String>,
        /// Where nats-server listens.
        #[arg(long, default_value = "0.0.0.0:4222", value_name = "ADDR:PORT")]
        listen: String,
        /// JetStream's store directory (default DIR/jetstream).
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
    },
}
