//! `aperture serve` survives being stopped mid-scan: killed with SIGKILL or stopped with
//! SIGTERM, then started again on the same data directory, it resumes the scan at the
//! first shard not stored and ends with exactly the results of an uninterrupted run —
//! the same assets with the same facts, one "appeared" event per service, a dense
//! change feed.
//!
//! Everything runs on loopback with the connect engine (no privilege needed): the
//! services to find are TCP listeners this test opens on 127.0.0.1, and every scan
//! targets 127.0.0.1 only, over a bounded port window, rate limited.

mod common;

use common::bin;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const TENANT: &str = "acme";
/// Ports scanned: one window, every listener inside it.
const WINDOW: u16 = 4000;
/// 4000 probes in shards of 200: 20 shards of a quarter second each at 800/s, so a
/// poll every few milliseconds catches the scan between its 3rd shard and its last.
const SHARD_PROBES: u64 = 200;
const RATE: u32 = 800;
const LISTENERS: u16 = 6;
const GRACE_SECS: u64 = 15;

/// (kind, status, facts) of every asset, by key.
type Assets = BTreeMap<String, (String, String, BTreeMap<String, String>)>;

/// (rule, asset, state, severity) of every finding, sorted: a duplicate shows twice.
type Findings = Vec<(String, String, String, String)>;

/// What a finished run left behind.
#[derive(Debug)]
struct Snapshot {
    assets: Assets,
    changes: Vec<Value>,
    findings: Findings,
}

/// The listeners (kept open for the whole test process) and the uninterrupted run both
/// interrupted runs are compared with.
struct Fixture {
    ports: Vec<u16>,
    range: (u16, u16),
    reference: Snapshot,
}

/// The interrupted runs are timing-sensitive (they stop the service between two
/// shards): one at a time, so they never compete with each other for the two cores.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (ports, range) = open_listeners();
        let reference = uninterrupted_run(range);
        Fixture {
            ports,
            range,
            reference,
        }
    })
}

/// Ephemeral (client) ports of this host, from the kernel's setting.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// Opens the services to find: LISTENERS listeners spread over a window of WINDOW ports
/// that lies outside the ephemeral range. Outside it, no client socket of this host
/// (the scanner's own connects, the HTTP client, the service's API port, which binds
/// port 0) can land in the window, and the scanner can never connect to itself.
fn open_listeners() -> (Vec<u16>, (u16, u16)) {
    let (eph_lo, eph_hi) = ephemeral_range();
    let candidates: Vec<(u32, u32)> = [
        (10_000u32, u32::from(eph_lo)),
        (u32::from(eph_hi) + 1, 65_536),
    ]
    .into_iter()
    .filter(|(lo, hi)| hi.saturating_sub(*lo) > u32::from(WINDOW) * 2)
    .collect();
    let (lo, hi) = *candidates
        .first()
        .expect("a window of ports outside the ephemeral range");
    // Another copy of this test on the same host picks another window (most likely).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed = std::process::id().wrapping_mul(2_654_435_761) ^ nanos;
    let span = hi - lo - u32::from(WINDOW);
    let base = u16::try_from(lo + seed % span).expect("window inside the port space");
    let end = base + WINDOW - 1;
    let step = WINDOW / LISTENERS;
    let mut ports = Vec::new();
    for i in 0..LISTENERS {
        // From a slot's start, the first free port (someone else may hold one).
        let slot = base + 7 + i * step;
        let listener = (slot..slot + step - 14)
            .find_map(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .expect("a free port in each slot of the window");
        ports.push(listener.local_addr().expect("bound").port());
        std::thread::spawn(move || {
            // Accept and drop: an open port is all the connect engine looks for.
            for conn in listener.incoming() {
                drop(conn);
            }
        });
    }
    (ports, (base, end))
}

fn scan_request(range: (u16, u16)) -> Value {
    json!({
        "targets": ["127.0.0.1"],
        "ports": format!("{}-{}", range.0, range.1),
        "rate": RATE,
        // No grab: open ports carry no banner facts, so two runs are byte-for-byte
        // comparable.
        "grab": false,
    })
}

/// A running `aperture serve`, killed (and reaped) when dropped, so a failing
/// assertion never leaves one behind.
struct Service {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Service {
    fn start(data: &Path) -> Service {
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("--data")
            .arg(data)
            // Port 0: an ephemeral port, hence outside the scanned window.
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Only this test's settings: nothing inherited from the caller's environment.
        for (k, _) in std::env::vars() {
            if k.starts_with("APERTURE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("APERTURE_ENGINE", "connect")
            .env("APERTURE_SHARD_PROBES", SHARD_PROBES.to_string())
            .env("APERTURE_TOKEN_RATE", "10000")
            .env("APERTURE_SHUTDOWN_GRACE_SECS", GRACE_SECS.to_string());
        let mut child = cmd.spawn().expect("aperture serve starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        // Reads stderr to the end (a full pipe would block the service) and hands over
        // the address from the "listening:" line.
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("listening: ") {
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(url.to_owned());
                }
                let mut l = sink.lock().unwrap_or_else(|p| p.into_inner());
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut service = Service {
            child,
            base: String::new(),
            log,
            reader: Some(reader),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => service.base = url,
            Err(_) => panic!(
                "aperture serve did not print its address within 60 s; stderr:\n{}",
                service.log()
            ),
        }
        service
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown path runs, whatever the service was doing.
    fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL delivered");
        self.child.wait().expect("killed service reaped");
    }

    /// Waits for the process to exit by itself; its stderr, read to the end, with it.
    fn wait_exit(mut self, within: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return (status, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the service did not exit within {within:?}; stderr:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The API as the admin token sees it.
struct Api {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl Api {
    fn new(base: &str, token: &str) -> Api {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(20)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Api {
            agent,
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn check(what: &str, r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Value {
        let mut r = r.unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = r.status();
        let body: Value = r
            .body_mut()
            .read_json()
            .unwrap_or_else(|e| panic!("{what}: HTTP {status}, body is not JSON: {e}"));
        assert!(status.is_success(), "{what}: HTTP {status}: {body}");
        body
    }

    fn get(&self, path: &str) -> Value {
        let r = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", self.auth())
            .call();
        Api::check(&format!("GET {path}"), r)
    }

    fn send(&self, method: &str, path: &str, body: &Value) -> Value {
        let url = format!("{}{path}", self.base);
        let r = match method {
            "PUT" => self.agent.put(url),
            _ => self.agent.post(url),
        }
        .header("Authorization", self.auth())
        .send_json(body);
        Api::check(&format!("{method} {path}"), r)
    }

    fn scan(&self, id: &str) -> Value {
        self.get(&format!("/v1/tenants/{TENANT}/scans/{id}"))
    }

    /// Every asset, all pages.
    fn assets(&self) -> Assets {
        let mut out = Assets::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/tenants/{TENANT}/assets?limit=1000");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", encode(c)));
            }
            let page = self.get(&path);
            for a in page["items"].as_array().expect("items") {
                let facts = a["facts"]
                    .as_object()
                    .expect("facts")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let key = a["key"].as_str().expect("key").to_owned();
                let row = (
                    a["kind"].as_str().expect("kind").to_owned(),
                    a["status"].as_str().expect("status").to_owned(),
                    facts,
                );
                assert!(out.insert(key.clone(), row).is_none(), "{key} listed twice");
            }
            match page["next"].as_str() {
                Some(n) => cursor = Some(n.to_owned()),
                None => return out,
            }
        }
    }

    /// The whole change feed, oldest first.
    fn changes(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut since: Option<String> = None;
        loop {
            let mut path = format!("/v1/tenants/{TENANT}/changes?limit=1000");
            if let Some(s) = &since {
                path.push_str(&format!("&since={s}"));
            }
            let page = self.get(&path);
            out.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next"].as_str() {
                Some(n) => since = Some(n.to_owned()),
                None => return out,
            }
        }
    }

    /// Every finding, all pages.
    fn findings(&self) -> Findings {
        let mut out = Findings::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/tenants/{TENANT}/findings?limit=1000");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", encode(c)));
            }
            let page = self.get(&path);
            for f in page["items"].as_array().expect("items") {
                let text = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
                out.push((text("rule"), text("asset"), text("state"), text("severity")));
            }
            match page["next"].as_str() {
                Some(n) => cursor = Some(n.to_owned()),
                None => break,
            }
        }
        out.sort();
        out
    }

    /// Probes this process has sent (all scans), from /metrics.
    fn probes_sent_metric(&self) -> u64 {
        let mut r = self
            .agent
            .get(format!("{}/metrics", self.base))
            .call()
            .expect("GET /metrics");
        let text = r.body_mut().read_to_string().expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix("aperture_probes_sent_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no aperture_probes_sent_total in:\n{text}"))
    }
}

/// Percent-encodes what a cursor (an asset key: `service:127.0.0.1:22/tcp`) may hold.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn admin(data: &Path, args: &[&str]) -> String {
    common::admin_cli(data, args).0.trim().to_owned()
}

/// A fresh data directory with the tenant and an admin token; the service started on it,
/// the tenant's scope set to loopback, the scan submitted. Returns the scan id.
fn setup(data: &Path, range: (u16, u16)) -> (Service, Api, String) {
    admin(data, &["tenant-create", TENANT, "Acme"]);
    let token = admin(
        data,
        &["token-create", "--name", "restart-test", "--role", "admin"],
    );
    assert!(token.starts_with("apt_"), "token secret: {token:?}");
    let service = Service::start(data);
    let api = Api::new(&service.base, &token);
    api.send(
        "PUT",
        &format!("/v1/tenants/{TENANT}/scope"),
        &json!({"cidrs": ["127.0.0.0/24"], "allow_special": true}),
    );
    let scan = api.send(
        "POST",
        &format!("/v1/tenants/{TENANT}/scans"),
        &scan_request(range),
    );
    let id = scan["id"].as_str().expect("scan id").to_owned();
    assert_eq!(
        scan["progress"]["probes_total"].as_u64(),
        Some(u64::from(WINDOW)),
        "one probe per port of the window: {scan}"
    );
    assert_eq!(
        scan["progress"]["shards"].as_u64(),
        Some(u64::from(WINDOW) / SHARD_PROBES),
        "{scan}"
    );
    (service, api, id)
}

fn wait_until(api: &Api, id: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let scan = api.scan(id);
        if done(&scan) {
            return scan;
        }
        assert!(
            Instant::now() < deadline,
            "scan {id}: still waiting after {within:?}: {scan}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn shards(scan: &Value) -> (u64, u64) {
    (
        scan["progress"]["shards_done"]
            .as_u64()
            .expect("shards_done"),
        scan["progress"]["shards"].as_u64().expect("shards"),
    )
}

/// Polls until between 3 and all-but-one shards are stored, so the stop lands
/// mid-scan with shards on both sides of it. Returns shards_done at that moment.
fn wait_mid_scan(api: &Api, id: &str) -> u64 {
    let scan = wait_until(api, id, Duration::from_secs(120), |s| {
        let (done, total) = shards(s);
        let state = s["state"].as_str().unwrap_or_default();
        assert!(
            state == "queued" || state == "running",
            "scan ended before it could be interrupted: {s}"
        );
        done >= 3 && done < total
    });
    shards(&scan).0
}

/// Waits for completion and checks the scan's own record of it.
fn wait_completed(api: &Api, id: &str) -> Value {
    let scan = wait_until(api, id, Duration::from_secs(180), |s| {
        let state = s["state"].as_str().unwrap_or_default();
        assert!(
            state != "failed" && state != "cancelled",
            "the resumed scan must complete: {s}"
        );
        state == "completed"
    });
    let (done, total) = shards(&scan);
    assert_eq!(done, total, "every shard stored: {scan}");
    assert_eq!(
        scan["progress"]["probes_sent"], scan["progress"]["probes_total"],
        "every probe sent: {scan}"
    );
    scan
}

fn snapshot(api: &Api) -> Snapshot {
    Snapshot {
        assets: api.assets(),
        changes: api.changes(),
        findings: api.findings(),
    }
}

fn uninterrupted_run(range: (u16, u16)) -> Snapshot {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_service, api, id) = setup(dir.path(), range);
    wait_completed(&api, &id);
    let s = snapshot(&api);
    // Otherwise the findings comparison below would compare nothing.
    assert!(!s.findings.is_empty(), "the policy opened findings: {s:?}");
    s
}

fn services(a: &Assets) -> Assets {
    a.iter()
        .filter(|(_, (kind, _, _))| kind == "service")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The interrupted run's results are the uninterrupted run's, and its change feed has
/// no trace of the interruption.
fn assert_same_results(fx: &Fixture, run: &Snapshot, label: &str) {
    let want = services(&fx.reference.assets);
    let got = services(&run.assets);
    for port in &fx.ports {
        let key = format!("service:127.0.0.1:{port}/tcp");
        assert!(
            want.get(&key)
                .is_some_and(|(_, status, _)| status == "present"),
            "uninterrupted run: listener {key} not found present in {want:?}"
        );
    }
    assert_eq!(got, want, "{label}: service assets (key, status, facts)");
    assert_eq!(
        run.assets, fx.reference.assets,
        "{label}: every asset (the host's open_ports too)"
    );
    // Change numbers are dense from 0: nothing was lost or written twice.
    for (i, c) in run.changes.iter().enumerate() {
        assert_eq!(
            c["seq"].as_u64(),
            Some(i as u64),
            "{label}: change feed {c}"
        );
    }
    let mut appeared: BTreeMap<String, usize> = BTreeMap::new();
    for c in &run.changes {
        let asset = c["asset"].as_str().expect("change asset").to_owned();
        assert_ne!(c["change"], "disappeared", "{label}: {c}");
        if c["change"] == "appeared" {
            *appeared.entry(asset).or_default() += 1;
        }
    }
    for key in got.keys() {
        assert_eq!(
            appeared.get(key),
            Some(&1),
            "{label}: {key} must have exactly one 'appeared' change; feed: {:?}",
            run.changes
        );
    }
    // The policy ran after every stored shard, across the interruption too: the same
    // findings, none twice.
    assert_eq!(
        run.findings, fx.reference.findings,
        "{label}: findings (rule, asset, state, severity)"
    );
    let reference_appeared: Vec<&str> = fx
        .reference
        .changes
        .iter()
        .filter(|c| c["change"] == "appeared")
        .filter_map(|c| c["asset"].as_str())
        .collect();
    assert_eq!(
        appeared.len(),
        reference_appeared.len(),
        "{label}: as many assets appeared as in the uninterrupted run"
    );
}

#[test]
fn sigkill_mid_scan_then_restart_gives_the_uninterrupted_results() {
    let _serial = serial();
    let fx = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut service, api, id) = setup(dir.path(), fx.range);
    let at_kill = wait_mid_scan(&api, &id);
    let total = u64::from(WINDOW) / SHARD_PROBES;
    service.kill9();
    assert!(
        at_kill > 0 && at_kill < total,
        "killed mid-scan: {at_kill} of {total} shards stored"
    );

    let service = Service::start(dir.path());
    let api = Api::new(&service.base, &api.token);
    // The shards stored before the kill are still there. A reader sees a batch in
    // sled's memory as soon as it is applied, a moment before its commit's flush
    // returns (commits are serialised, so at most one shard is in that state); a kill
    // in that moment loses that one unacknowledged shard, and the resumed scan runs it
    // again. Every acknowledged one survives.
    let resumed = api.scan(&id);
    assert!(
        shards(&resumed).0 + 1 >= at_kill,
        "stored shards survive the kill ({at_kill} seen before, at most the last one unacknowledged): {resumed}"
    );
    let scan = wait_completed(&api, &id);
    assert_eq!(scan["id"].as_str(), Some(id.as_str()));
    // Resumed, not restarted: this process probed at most the shards not stored.
    let sent = api.probes_sent_metric();
    assert!(
        sent <= u64::from(WINDOW) - at_kill * SHARD_PROBES,
        "the restarted service sent {sent} probes; {at_kill} shards of {SHARD_PROBES} were stored before the kill"
    );
    assert!(sent > 0, "the restarted service ran the rest of the scan");
    let after = snapshot(&api);
    eprintln!(
        "SIGKILL at {at_kill}/{total} shards; the restarted service sent {sent} probes; {} assets, {} changes",
        after.assets.len(),
        after.changes.len()
    );
    assert_same_results(fx, &after, "after SIGKILL and restart");
}

#[test]
fn sigterm_mid_scan_stops_cleanly_and_the_restart_completes_the_scan() {
    let _serial = serial();
    let fx = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, api, id) = setup(dir.path(), fx.range);
    let at_stop = wait_mid_scan(&api, &id);
    let total = u64::from(WINDOW) / SHARD_PROBES;
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(service.pid().to_string())
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -TERM delivered");
    let (status, log) = service.wait_exit(Duration::from_secs(GRACE_SECS + 30));
    assert!(
        status.success(),
        "graceful stop exits 0, got {status}; stderr:\n{log}"
    );
    assert!(
        log.contains("stopping"),
        "says it is stopping; stderr:\n{log}"
    );
    assert!(log.contains("stopped"), "says it stopped; stderr:\n{log}");

    let service = Service::start(dir.path());
    let api = Api::new(&service.base, &api.token);
    let resumed = api.scan(&id);
    let state = resumed["state"].as_str().unwrap_or_default();
    // A shutdown is not a cancel: the job stays resumable unless it had just finished.
    assert!(
        state == "running" || state == "completed",
        "after a graceful stop the scan is resumable: {resumed}"
    );
    assert!(
        at_stop < total && shards(&resumed).0 >= at_stop,
        "stopped mid-scan ({at_stop} of {total} shards) and kept what it stored: {resumed}"
    );
    wait_completed(&api, &id);
    let after = snapshot(&api);
    eprintln!(
        "SIGTERM at {at_stop}/{total} shards, {} stored at restart; {} assets, {} changes",
        shards(&resumed).0,
        after.assets.len(),
        after.changes.len()
    );
    assert_same_results(fx, &after, "after SIGTERM and restart");
}

#[test]
fn sigkill_three_times_in_one_scan_still_gives_the_uninterrupted_results() {
    let _serial = serial();
    let fx = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let total = u64::from(WINDOW) / SHARD_PROBES;
    let (mut service, mut api, id) = setup(dir.path(), fx.range);
    let mut kills = Vec::new();
    // Each restart must get a few shards further before the next kill: progress is
    // kept across every restart, not only the first.
    for target in [3, 8, 13] {
        let scan = wait_until(&api, &id, Duration::from_secs(120), |s| {
            let (done, all) = shards(s);
            assert_eq!(
                s["state"], "running",
                "the scan runs until the last kill: {s}"
            );
            done >= target && done < all
        });
        let done = shards(&scan).0;
        service.kill9();
        kills.push(done);
        service = Service::start(dir.path());
        api = Api::new(&service.base, &api.token);
        let resumed = api.scan(&id);
        assert!(
            shards(&resumed).0 >= done,
            "{done} shards were stored before kill {}: {resumed}",
            kills.len()
        );
    }
    assert!(
        kills.iter().all(|&k| k > 0 && k < total),
        "every kill landed mid-scan: {kills:?} of {total}"
    );
    wait_completed(&api, &id);
    let after = snapshot(&api);
    eprintln!(
        "SIGKILL at {kills:?} of {total} shards; {} assets, {} changes, {} findings",
        after.assets.len(),
        after.changes.len(),
        after.findings.len()
    );
    assert_same_results(fx, &after, "after three SIGKILLs and restarts");
}
