//! The service's settings: defaults, then a TOML file, then `APERTURE_*` environment
//! variables, then command-line flags. Every setting is listed in the README.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Which probe engine workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// SYN when raw sockets are permitted, connect otherwise.
    Auto,
    Syn,
    Connect,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port the HTTP API listens on.
    pub listen: SocketAddr,
    /// sled data directory.
    pub data_dir: PathBuf,
    /// Scans run at the same time across all tenants.
    pub workers: usize,
    pub engine: EngineChoice,
    /// Probes per second when a request gives no rate.
    pub default_rate: u32,
    /// Highest rate a request may ask for.
    pub max_rate: u32,
    /// Probes per port-scan shard: the unit that is committed, and redone after a crash.
    pub shard_probes: u64,
    /// Connect engine: per-attempt time-out, milliseconds.
    pub connect_timeout_ms: u64,
    /// SYN engine: seconds to listen for late replies after a shard's last probe.
    pub syn_wait_secs: f64,
    /// Grab: per-connection deadline, seconds.
    pub grab_timeout_secs: f64,
    pub grab_concurrency: usize,
    /// DNS resolvers for domain enumeration (`IP` or `IP:PORT`); empty: the system's.
    pub resolvers: Vec<String>,
    pub dns_qps: u64,
    /// Scans of one tenant queued or running at once.
    pub tenant_scan_cap: usize,
    /// Requests per second per token (burst: the same number).
    pub token_rate: u32,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Largest page a listing returns.
    pub page_cap: usize,
    /// Seconds between scheduler passes (due schedules, verification requests).
    pub scheduler_secs: u64,
    /// Seconds between the policy's consistency checks: a full re-evaluation that also
    /// rebuilds the policy's indexes. Findings do not wait for it (edits, scans and
    /// expiries each re-evaluate what they touch); it repairs what was changed from
    /// outside the service.
    pub sweep_secs: u64,
    /// Serve /metrics without a token (for a Prometheus on a private network).
    pub metrics_public: bool,
    /// Compress a new store's log with zstd: about a fifth of the disk, at up to 2.5×
    /// the ingest time. A store keeps the choice it was created with.
    pub store_compression: bool,
    /// Seconds a graceful shutdown waits for running shards to finish.
    pub shutdown_grace_secs: u64,
    /// The NATS server of remote workers (`nats://HOST:4222`, `tls://…`): set, this
    /// service becomes their coordinator and runs no probes itself; unset, scans run
    /// in-process.
    pub bus_url: Option<String>,
    /// The coordinator's nkey seed file (`coordinator.nk` from `aperture bus init`).
    pub bus_nkey: Option<PathBuf>,
    /// Or a user and password on the bus.
    pub bus_user: Option<String>,
    pub bus_password: Option<String>,
    /// CA bundle for a TLS bus.
    pub bus_ca: Option<PathBuf>,
    /// Seconds a worker may hold a shard without a progress ack before it goes to
    /// another worker.
    pub bus_ack_wait_secs: u64,
    /// Deliveries of a shard before it is marked failed (shown on the scan, retryable).
    pub bus_max_deliver: u32,
    /// Shards per live worker a scan is cut into at least, so slow workers balance.
    pub shards_per_worker: u64,
    /// Probes per second to any one /24 (IPv4) or /64 (IPv6), on top of a scan's rate.
    pub per_net_rate: u32,
    /// The Chromium that prints reports to PDF (Debian's `chromium`).
    pub report_chromium: PathBuf,
    /// Alerts: the first retry's delay, milliseconds; each next one doubles (jittered).
    pub alert_retry_base_ms: u64,
    /// Alerts: the longest delay between two attempts, milliseconds.
    pub alert_retry_cap_ms: u64,
    /// Alerts: attempts before a delivery becomes a dead letter.
    pub alert_max_attempts: u32,
    /// Alerts: requests in flight at once, and each one's time-out in milliseconds.
    pub alert_concurrency: usize,
    pub alert_timeout_ms: u64,
    /// SIEM export: events per write to a receiver; the cursor is committed after each.
    pub siem_batch: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8477)),
            data_dir: PathBuf::from("aperture-data"),
            workers: 2,
            engine: EngineChoice::Auto,
            default_rate: 1000,
            max_rate: 100_000,
            shard_probes: 4096,
            connect_timeout_ms: 1000,
            syn_wait_secs: 1.0,
            grab_timeout_secs: 5.0,
            grab_concurrency: 128,
            resolvers: Vec::new(),
            dns_qps: 500,
            tenant_scan_cap: 4,
            token_rate: 100,
            body_limit: 64 * 1024,
            page_cap: 1000,
            scheduler_secs: 5,
            sweep_secs: 86_400,
            metrics_public: true,
            store_compression: false,
            shutdown_grace_secs: 30,
            bus_url: None,
            bus_nkey: None,
            bus_user: None,
            bus_password: None,
            bus_ca: None,
            bus_ack_wait_secs: 30,
            bus_max_deliver: 5,
            shards_per_worker: 20,
            per_net_rate: 2000,
            report_chromium: PathBuf::from("/usr/bin/chromium"),
            alert_retry_base_ms: 2000,
            alert_retry_cap_ms: 600_000,
            alert_max_attempts: 10,
            alert_concurrency: 16,
            alert_timeout_ms: 10_000,
            siem_batch: 500,
        }
    }
}

impl Config {
    /// Defaults, overlaid by the file (if any), then by the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, String> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        fn parse<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
            v.trim()
                .parse()
                .map_err(|_| format!("environment variable {key}={v:?} is not a valid value"))
        }
        macro_rules! env {
            ($key:literal, $field:expr) => {
                if let Some(v) = get($key) {
                    $field = parse($key, &v)?;
                }
            };
        }
        env!("APERTURE_LISTEN", self.listen);
        env!("APERTURE_DATA_DIR", self.data_dir);
        env!("APERTURE_WORKERS", self.workers);
        env!("APERTURE_DEFAULT_RATE", self.default_rate);
        env!("APERTURE_MAX_RATE", self.max_rate);
        env!("APERTURE_SHARD_PROBES", self.shard_probes);
        env!("APERTURE_CONNECT_TIMEOUT_MS", self.connect_timeout_ms);
        env!("APERTURE_SYN_WAIT_SECS", self.syn_wait_secs);
        env!("APERTURE_GRAB_TIMEOUT_SECS", self.grab_timeout_secs);
        env!("APERTURE_GRAB_CONCURRENCY", self.grab_concurrency);
        env!("APERTURE_DNS_QPS", self.dns_qps);
        env!("APERTURE_TENANT_SCAN_CAP", self.tenant_scan_cap);
        env!("APERTURE_TOKEN_RATE", self.token_rate);
        env!("APERTURE_BODY_LIMIT", self.body_limit);
        env!("APERTURE_PAGE_CAP", self.page_cap);
        env!("APERTURE_SCHEDULER_SECS", self.scheduler_secs);
        env!("APERTURE_SWEEP_SECS", self.sweep_secs);
        env!("APERTURE_METRICS_PUBLIC", self.metrics_public);
        env!("APERTURE_STORE_COMPRESSION", self.store_compression);
        env!("APERTURE_SHUTDOWN_GRACE_SECS", self.shutdown_grace_secs);
        env!("APERTURE_REPORT_CHROMIUM", self.report_chromium);
        env!("APERTURE_BUS_ACK_WAIT_SECS", self.bus_ack_wait_secs);
        env!("APERTURE_BUS_MAX_DELIVER", self.bus_max_deliver);
        env!("APERTURE_SHARDS_PER_WORKER", self.shards_per_worker);
        env!("APERTURE_PER_NET_RATE", self.per_net_rate);
        env!("APERTURE_ALERT_RETRY_BASE_MS", self.alert_retry_base_ms);
        env!("APERTURE_ALERT_RETRY_CAP_MS", self.alert_retry_cap_ms);
        env!("APERTURE_ALERT_MAX_ATTEMPTS", self.alert_max_attempts);
        env!("APERTURE_ALERT_CONCURRENCY", self.alert_concurrency);
        env!("APERTURE_ALERT_TIMEOUT_MS", self.alert_timeout_ms);
        env!("APERTURE_SIEM_BATCH", self.siem_batch);
        for (key, field) in [
            ("APERTURE_BUS_URL", &mut self.bus_url),
            ("APERTURE_BUS_USER", &mut self.bus_user),
            ("APERTURE_BUS_PASSWORD", &mut self.bus_password),
        ] {
            if let Some(v) = get(key) {
                *field = Some(v.trim().to_owned()).filter(|v| !v.is_empty());
            }
        }
        for (key, field) in [
            ("APERTURE_BUS_NKEY", &mut self.bus_nkey),
            ("APERTURE_BUS_CA", &mut self.bus_ca),
        ] {
            if let Some(v) = get(key) {
                *field = Some(PathBuf::from(v.trim())).filter(|p| !p.as_os_str().is_empty());
            }
        }
        if let Some(v) = get("APERTURE_ENGINE") {
            self.engine = match v.trim() {
                "auto" => EngineChoice::Auto,
                "syn" => EngineChoice::Syn,
                "connect" => EngineChoice::Connect,
                _ => return Err(format!("APERTURE_ENGINE={v:?}: use auto, syn or connect")),
            };
        }
        if let Some(v) = get("APERTURE_RESOLVERS") {
            self.resolvers = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), String> {
        let positive = [
            ("workers", self.workers as u64),
            ("default_rate", u64::from(self.default_rate)),
            ("max_rate", u64::from(self.max_rate)),
            ("shard_probes", self.shard_probes),
            ("grab_concurrency", self.grab_concurrency as u64),
            ("dns_qps", self.dns_qps),
            ("tenant_scan_cap", self.tenant_scan_cap as u64),
            ("token_rate", u64::from(self.token_rate)),
            ("page_cap", self.page_cap as u64),
            ("scheduler_secs", self.scheduler_secs),
            ("sweep_secs", self.sweep_secs),
            ("bus_ack_wait_secs", self.bus_ack_wait_secs),
            ("bus_max_deliver", u64::from(self.bus_max_deliver)),
            ("shards_per_worker", self.shards_per_worker),
            ("per_net_rate", u64::from(self.per_net_rate)),
            ("alert_retry_base_ms", self.alert_retry_base_ms),
            ("alert_retry_cap_ms", self.alert_retry_cap_ms),
            ("alert_max_attempts", u64::from(self.alert_max_attempts)),
            ("alert_concurrency", self.alert_concurrency as u64),
            ("alert_timeout_ms", self.alert_timeout_ms),
            ("siem_batch", self.siem_batch as u64),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("setting {name} must be at least 1"));
            }
        }
        if self.default_rate > self.max_rate {
            return Err("default_rate must not exceed max_rate".into());
        }
        if self.bus_url.is_some()
            && self.bus_nkey.is_none()
            && (self.bus_user.is_none() || self.bus_password.is_none())
        {
            return Err("bus_url needs a credential: bus_nkey (coordinator.nk from `aperture bus init`) or bus_user and bus_password".into());
        }
        if self.body_limit < 1024 {
            return Err("body_limit must be at least 1024 bytes".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        let mut c: Config = toml::from_str("workers = 3\nengine = \"connect\"").expect("toml");
        assert_eq!((c.workers, c.engine), (3, EngineChoice::Connect));
        c.apply_env(|k| (k == "APERTURE_WORKERS").then(|| "5".to_owned()))
            .expect("env");
        assert_eq!(c.workers, 5);
        let err = c
            .apply_env(|k| (k == "APERTURE_TOKEN_RATE").then(|| "lots".to_owned()))
            .expect_err("bad value");
        assert!(err.contains("APERTURE_TOKEN_RATE"), "{err}");
        assert!(
            toml::from_str::<Config>("wrkers = 3").is_err(),
            "typos are refused"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("aperture.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nworkers = 4\n").expect("write");
        let loaded = Config::load(Some(&file)).expect("loads");
        assert_eq!(loaded.listen.port(), 9000);
        let missing = Config::load(Some(&dir.path().join("nope.toml"))).expect_err("missing");
        assert!(missing.contains("cannot read config file"), "{missing}");
        let zero = Config {
            workers: 0,
            ..Config::default()
        };
        assert!(zero.validate().is_err());
    }
}
