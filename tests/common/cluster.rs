//! A coordinator, its nats-server and its workers in the lab, as an operator runs them:
//! the real binary in the lab's namespaces, driven over HTTP (see tests/workers_lab.rs).

use super::nats::{free_port, nats_unavailable, NatsServer};
use super::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Killed(pub Option<Child>);

impl Killed {
    /// Sends a signal by PID (`kill -STOP`, `-CONT`, `-TERM`).
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.0 {
            let s = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(s.success(), "kill {sig}");
        }
    }

    /// Waits for the process to end by itself; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let c = self.0.as_mut()?;
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = c.try_wait() {
                self.0 = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// kill -9, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One coordinator, its nats-server and its workers, in the lab.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub bus: PathBuf,
    pub nats: NatsServer,
    pub serve: Killed,
    pub serve_env: Vec<(String, String)>,
    pub workers: BTreeMap<usize, Killed>,
    pub port: u16,
    pub token: String,
    pub ns: String,
}

pub fn lab_ready() -> bool {
    if let Some(why) = lab_unavailable().or_else(nats_unavailable) {
        if std::env::var_os("APERTURE_LAB_REQUIRED").is_some() {
            panic!("lab required: {why}");
        }
        eprintln!("skipped: {why}");
        return false;
    }
    let workers: usize = lab_env("LAB_WORKERS").parse().unwrap_or(0);
    assert!(
        workers >= 3,
        "the lab needs 3 worker namespaces (APERTURE_LAB_WORKERS)"
    );
    true
}

impl Cluster {
    pub fn new(extra_env: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().expect("tmp");
        let bus = dir.path().join("bus");
        let init = Command::new(bin())
            .args([
                "bus",
                "init",
                "--workers",
                "w1,w2,w3",
                "--listen",
                "0.0.0.0:4222",
                "--dir",
            ])
            .arg(&bus)
            .output()
            .expect("bus init runs");
        assert!(init.status.success(), "bus init: {}", stderr(&init));
        let ns = lab_env("LAB_SCAN_NS");
        let nats = NatsServer::start(
            &bus.join("nats-server.conf"),
            "0.0.0.0",
            free_port(),
            Some(&ns),
        );
        let data = dir.path().join("data");
        admin_cli(&data, &["tenant-create", "acme", "Acme"]);
        let (out, _) = admin_cli(&data, &["token-create", "--name", "ops", "--role", "admin"]);
        let token = out.lines().last().expect("token").trim().to_owned();
        let mut serve_env: Vec<(String, String)> = vec![
            (
                "APERTURE_BUS_URL".into(),
                format!("nats://127.0.0.1:{}", nats.port),
            ),
            (
                "APERTURE_BUS_NKEY".into(),
                bus.join("coordinator.nk").display().to_string(),
            ),
            ("APERTURE_BUS_ACK_WAIT_SECS".into(), "5".into()),
            ("APERTURE_SYN_WAIT_SECS".into(), "0.5".into()),
            ("APERTURE_ENGINE".into(), "syn".into()),
            ("APERTURE_PER_NET_RATE".into(), "100000".into()),
            ("APERTURE_SCHEDULER_SECS".into(), "1".into()),
            ("APERTURE_RESOLVERS".into(), lab_dns_server()),
        ];
        for (k, v) in extra_env {
            serve_env.push(((*k).into(), (*v).into()));
        }
        let mut c = Cluster {
            port: free_port(),
            dir,
            bus,
            nats,
            serve: Killed(None),
            serve_env,
            workers: BTreeMap::new(),
            token,
            ns,
        };
        c.start_serve();
        c.api_ok(
            "PUT",
            "/v1/tenants/acme/scope",
            Some(&json!({"cidrs": ["198.18.0.0/16"], "domains": ["corp.test"], "allow_special": true})),
        );
        c
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn start_serve(&mut self) {
        let log = self.dir.path().join("serve.log");
        let before = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("listening:")
            .count();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(bin())
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--data",
            ])
            .arg(self.data())
            .envs(self.serve_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("APERTURE_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("serve starts");
        self.serve = Killed(Some(child));
        wait_for(&log, "listening:", before + 1);
    }

    pub fn start_worker(&mut self, n: usize, extra: &[&str]) {
        let log = self.dir.path().join(format!("w{n}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let url = format!(
            "nats://{}:{}",
            lab_env(&format!("LAB_WORKER_BUS_{n}")),
            self.nats.port
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &lab_env(&format!("LAB_WORKER_NS_{n}"))])
            .arg(bin())
            .args([
                "worker",
                "--bus",
                &url,
                "--name",
                &format!("w{n}"),
                "--nkey",
            ])
            .arg(self.bus.join(format!("worker-w{n}.nk")))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("worker starts");
        self.workers.insert(n, Killed(Some(child)));
        wait_for(&log, "connected to", 1);
    }

    pub fn w1(&mut self) -> &mut Killed {
        self.workers.get_mut(&1).expect("w1")
    }

    pub fn worker_log(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("w{n}.log"))).unwrap_or_default()
    }

    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        curl_json(&self.ns, self.port, method, path, &self.token, body)
    }

    pub fn api_ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    pub fn scan(&self, net: &str, rate: u32) -> String {
        let v = self.api_ok(
            "POST",
            "/v1/tenants/acme/scans",
            Some(&json!({"targets": [net], "ports": lab_env("LAB_PORTS"), "rate": rate, "grab": false, "probe": "syn"})),
        );
        v["id"].as_str().expect("scan id").to_owned()
    }

    pub fn scan_view(&self, id: &str) -> Value {
        self.api_ok("GET", &format!("/v1/tenants/acme/scans/{id}"), None)
    }

    pub fn wait(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}\nserve log:\n{}",
                std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn wait_completed(&self, id: &str) -> Value {
        let mut last = Value::Null;
        self.wait(
            &format!("scan {id} to complete"),
            Duration::from_secs(150),
            || {
                last = self.scan_view(id);
                assert_ne!(last["state"], "failed", "{last}");
                last["state"] == "completed"
            },
        );
        last
    }

    /// The services stored as present.
    pub fn services(&self) -> BTreeSet<String> {
        self.present("service")
    }

    /// The assets of one kind stored as present.
    pub fn present(&self, kind: &str) -> BTreeSet<String> {
        let path = format!("/v1/tenants/acme/assets?kind={kind}&limit=1000");
        let v = self.api_ok("GET", &path, None);
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|a| a["status"] == "present")
            .filter_map(|a| a["key"].as_str().map(str::to_owned))
            .collect()
    }

    /// Change events per (asset, what changed): nothing stored twice means every count is 1.
    pub fn changes(&self) -> BTreeMap<(String, String), usize> {
        let v = self.api_ok("GET", "/v1/tenants/acme/changes?limit=1000", None);
        let mut out = BTreeMap::new();
        for c in v["items"].as_array().expect("items") {
            // The event without its number, time and scan: the same twice is a duplicate.
            let key = (
                c["asset"].as_str().unwrap_or_default().to_owned(),
                json!([c["change"], c["field"], c["old"], c["new"]]).to_string(),
            );
            *out.entry(key).or_default() += 1;
        }
        out
    }
}

pub fn wait_for(log: &Path, text: &str, count: usize) {
    let start = Instant::now();
    loop {
        let s = std::fs::read_to_string(log).unwrap_or_default();
        if s.matches(text).count() >= count {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never said {text:?}:\n{s}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ground truth inside `net` (an IPv4 CIDR), as service asset keys.
pub fn truth_in(net: &str) -> BTreeSet<String> {
    let net: ipnet::Ipv4Net = net.parse().expect("cidr");
    let ports: BTreeSet<u16> = lab_env("LAB_PORTS")
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    ground_truth()
        .into_iter()
        .filter(|(ip, port)| matches!(ip, IpAddr::V4(a) if net.contains(a)) && ports.contains(port))
        .map(|(ip, port)| format!("service:{ip}:{port}/tcp"))
        .collect()
}

/// SYNs the lab's target namespace has counted from each worker's source.
pub fn probe_counters() -> [u64; 3] {
    let tgt = lab_env("LAB_TGT_NS");
    let mut out = [0; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &tgt,
                "nft",
                "-j",
                "list",
                "counter",
                "inet",
                "aplab_workers",
            ])
            .arg(format!("probes_w{}", i + 1))
            .output()
            .expect("nft runs");
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        *slot = v["nftables"]
            .as_array()
            .and_then(|a| a.iter().find_map(|e| e["counter"]["packets"].as_u64()))
            .unwrap_or(0);
    }
    out
}

pub fn assert_each_once(changes: &BTreeMap<(String, String), usize>) {
    let twice: Vec<_> = changes.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "change events stored twice: {twice:?}");
}
