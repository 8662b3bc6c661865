//! Scan windows, blackouts and the tenant's rate cap, through the real binary.
//!
//! A scan requested outside its tenant's window waits and says until when; a scan that
//! crosses the end of its window pauses, waits for the next one and completes with the
//! same stored results as an uninterrupted run — a service that closed is marked gone
//! only by the completed scan, never while it waits; a verification scan runs outside
//! the windows only when an analyst overrides, and the override is audited; malformed
//! settings are refused with a 4xx that says what to fix, changing nothing.
//!
//! Loopback only: the services are listeners this test opens on 127.0.0.1, every scan
//! targets 127.0.0.1 over a bounded port range with the connect engine. Times are
//! computed from the clock: the window `*/2 * * * *` (one minute long) is read in UTC or
//! in Asia/Kathmandu (UTC+05:45, an odd number of minutes), whichever makes it open in
//! the current minute.

mod common;

use common::bin;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TENANT: &str = "acme";
const PORTS: u16 = 3000;
const LISTENERS: u16 = 4;
const SHARD_PROBES: u64 = 100;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A range of PORTS ports outside the ephemeral range (no client socket of this host
/// lands in it), chosen per process, and listeners spread over it (kept open).
fn port_range() -> (u16, u16) {
    let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    let (a, b) = if lo > 10_000 + u32::from(PORTS) * 2 {
        (10_000, lo)
    } else {
        (hi + 1, 65_536)
    };
    let span = b - a - u32::from(PORTS);
    let seed = std::process::id().wrapping_mul(2_654_435_761) ^ (now_ms() as u32);
    let base = u16::try_from(a + seed % span).expect("inside the port space");
    (base, base + PORTS - 1)
}

fn listen_in(range: (u16, u16), slot: u16) -> TcpListener {
    let step = PORTS / (LISTENERS + 1);
    let from = range.0 + 5 + slot * step;
    (from..from + step - 10)
        .find_map(|p| TcpListener::bind(("127.0.0.1", p)).ok())
        .expect("a free port in the slot")
}

/// Keeps a listener open, accepting and dropping (an open port is all that is looked for).
fn serve_forever(l: TcpListener) -> u16 {
    let port = l.local_addr().expect("bound").port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            drop(c);
        }
    });
    port
}

struct Service {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Service {
    fn start(data: &Path) -> Service {
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("APERTURE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("APERTURE_ENGINE", "connect")
            .env("APERTURE_SHARD_PROBES", SHARD_PROBES.to_string())
            .env("APERTURE_TOKEN_RATE", "10000")
            .env("APERTURE_SCHEDULER_SECS", "1");
        let mut child = cmd.spawn().expect("aperture serve starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("listening: ") {
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
                let mut l = sink.lock().unwrap_or_else(|p| p.into_inner());
                l.push_str(&line);
                l.push('\n');
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no address within 60 s:\n{}", log.lock().expect("log")));
        Service { child, base, log }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "service stderr:\n{}",
                self.log.lock().unwrap_or_else(|p| p.into_inner())
            );
        }
    }
}

struct Api {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl Api {
    /// A fresh store with the tenant, its loopback scope, an admin token; the service on it.
    fn start(data: &Path) -> (Service, Api) {
        common::admin_cli(data, &["tenant-create", TENANT, "Acme"]);
        let token = common::admin_cli(
            data,
            &["token-create", "--name", "windows-test", "--role", "admin"],
        )
        .0
        .trim()
        .to_owned();
        assert!(token.starts_with("apt_"), "token: {token:?}");
        let service = Service::start(data);
        let api = Api {
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(20)))
                .http_status_as_error(false)
                .build()
                .new_agent(),
            base: service.base.clone(),
            token,
        };
        let (status, body) = api.call(
            "PUT",
            "/scope",
            Some(&json!({"cidrs": ["127.0.0.0/24"], "allow_special": true})),
        );
        assert_eq!(status, 200, "{body}");
        (service, api)
    }

    /// (status, JSON body) of a call under the tenant (`path` starting with `/`), or
    /// of a global path when it starts with `//`.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = match path.strip_prefix("//") {
            Some(p) => format!("{}/{p}", self.base),
            None => format!("{}/v1/tenants/{TENANT}{path}", self.base),
        };
        let auth = format!("Bearer {}", self.token);
        let r = match (method, body) {
            ("GET", _) => self.agent.get(url).header("Authorization", auth).call(),
            ("PUT", Some(b)) => self
                .agent
                .put(url)
                .header("Authorization", auth)
                .send_json(b),
            (_, Some(b)) => self
                .agent
                .post(url)
                .header("Authorization", auth)
                .send_json(b),
            (_, None) => self
                .agent
                .post(url)
                .header("Authorization", auth)
                .send_empty(),
        };
        let mut r = r.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status}: {v}"
        );
        v
    }

    fn scan(&self, req: &Value) -> String {
        let v = self.ok("POST", "/scans", Some(req));
        v["id"].as_str().expect("scan id").to_owned()
    }

    fn wait(&self, id: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let s = self.ok("GET", &format!("/scans/{id}"), None);
            if done(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "scan {id} after {within:?}: {s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn completed(&self, id: &str, within: Duration) -> Value {
        self.wait(id, within, |s| {
            let st = s["state"].as_str().unwrap_or_default();
            assert!(st != "failed" && st != "cancelled", "{s}");
            st == "completed"
        })
    }

    /// Every asset by key: (kind, status, facts).
    fn assets(&self) -> BTreeMap<String, Value> {
        let page = self.ok("GET", "/assets?limit=1000", None);
        assert!(page["next"].is_null(), "one page: {page}");
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|a| {
                (
                    a["key"].as_str().expect("key").to_owned(),
                    json!([a["kind"], a["status"], a["facts"]]),
                )
            })
            .collect()
    }

    /// (asset, change) of the whole feed, counted. A host's `changed` events are left
    /// out: each scan's permutation seed is its own, so how its open ports fall into
    /// shards (one change of the host's port list per shard that moved it) differs
    /// between two scans of the same ports; the host's final record is compared instead.
    fn changes(&self) -> BTreeMap<(String, String), usize> {
        let page = self.ok("GET", "/changes?limit=1000", None);
        assert!(page["next"].is_null(), "one page: {page}");
        let mut out = BTreeMap::new();
        for c in page["items"].as_array().expect("items") {
            let k = (
                c["asset"].as_str().unwrap_or_default().to_owned(),
                c["change"].as_str().unwrap_or_default().to_owned(),
            );
            if k.0.starts_with("host:") && k.1 == "changed" {
                continue;
            }
            *out.entry(k).or_insert(0) += 1;
        }
        out
    }
}

fn request(range: (u16, u16), rate: u32) -> Value {
    json!({"targets": ["127.0.0.1"], "ports": format!("{}-{}", range.0, range.1), "rate": rate, "grab": false})
}

/// What two runs must agree on.
#[derive(Debug, PartialEq)]
struct Results {
    assets: BTreeMap<String, Value>,
    changes: BTreeMap<(String, String), usize>,
}

/// Scan 1 finds every listener and the doomed one; the doomed one closes; `before`
/// prepares scan 2, `during` watches it; its completion marks the doomed one gone.
/// Returns what the store holds then.
fn two_scans<T>(
    api: &Api,
    range: (u16, u16),
    doomed_port: u16,
    before: impl FnOnce(&Api) -> T,
    during: impl FnOnce(&Api, &str, T),
) -> Results {
    let doomed = TcpListener::bind(("127.0.0.1", doomed_port)).expect("the doomed port again");
    let first = api.scan(&request(range, 5000));
    api.completed(&first, Duration::from_secs(60));
    drop(doomed);
    let key = format!("service:127.0.0.1:{doomed_port}/tcp");
    assert_eq!(api.assets()[&key][1], "present", "scan 1 found {key}");
    let prepared = before(api);
    let id = api.scan(&request(range, 5000));
    during(api, &id, prepared);
    let done = api.completed(&id, Duration::from_secs(150));
    assert_eq!(
        done["progress"]["shards_done"], done["progress"]["shards"],
        "{done}"
    );
    assert_eq!(
        api.assets()[&key][1],
        "absent",
        "the completed scan 2 marked {key} gone"
    );
    Results {
        assets: api.assets(),
        changes: api.changes(),
    }
}

/// The current minute, once at least 25 s of it are left.
fn fresh_minute() -> (i64, i64) {
    loop {
        let now = now_ms();
        let left = 60_000 - now % 60_000;
        if left >= 25_000 {
            return (now / 60_000, left);
        }
        std::thread::sleep(Duration::from_millis(left as u64 + 200));
    }
}

#[test]
fn a_scan_crossing_its_window_pauses_and_completes_with_the_uninterrupted_results() {
    let range = port_range();
    let ports: Vec<u16> = (0..LISTENERS)
        .map(|i| serve_forever(listen_in(range, i)))
        .collect();
    let doomed_port = listen_in(range, LISTENERS)
        .local_addr()
        .expect("bound")
        .port();

    let dir = tempfile::tempdir().expect("tempdir");
    let reference = {
        let (_service, api) = Api::start(dir.path());
        two_scans(&api, range, doomed_port, |_| (), |_, _, ()| ())
    };
    for p in &ports {
        let key = format!("service:127.0.0.1:{p}/tcp");
        assert_eq!(reference.assets[&key][1], "present", "{key}");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let (_service, api) = Api::start(dir.path());
    let doomed_key = format!("service:127.0.0.1:{doomed_port}/tcp");
    let windowed = two_scans(
        &api,
        range,
        doomed_port,
        |api| {
            let (minute, left) = fresh_minute();
            // `*/2` opens on even local minutes: in Kathmandu (UTC+05:45) those are the
            // odd UTC minutes. Whichever zone makes this minute open.
            let tz = if minute % 2 == 0 {
                "UTC"
            } else {
                "Asia/Kathmandu"
            };
            // The cap lets the scan send for what is left of this minute plus ~12 s:
            // asked at 5000/s, it could only cross the window's end if the cap binds.
            let cap = u64::from(PORTS) * 1000 / (left as u64 + 12_000);
            let settings = json!({
                "windows": [{"cron": "*/2 * * * *", "duration_mins": 1, "tz": tz}],
                "max_rate": cap,
            });
            let v = api.ok("PUT", "/windows", Some(&settings));
            assert_eq!(v["open"], true, "{tz} minute {minute}: {v}");
            assert_eq!(v["until"], (minute + 1) * 60_000, "{v}");
            (minute, cap)
        },
        |api, id, (minute, cap)| {
            let s = api.ok("GET", &format!("/scans/{id}"), None);
            assert!(
                s["state"] == "queued" || s["state"] == "running",
                "inside its window it starts: {s}"
            );
            let paused = api.wait(id, Duration::from_secs(75), |s| {
                assert_ne!(s["state"], "completed", "the cap of {cap}/s must bind: {s}");
                s["state"] == "waiting"
            });
            let at = now_ms();
            assert!(
                at >= (minute + 1) * 60_000 && at < (minute + 1) * 60_000 + 10_000,
                "paused at the window's end (minute {minute}), not at {at}: {paused}"
            );
            assert_eq!(paused["until"], (minute + 2) * 60_000, "{paused}");
            let stored = paused["progress"]["shards_done"].as_u64().expect("done");
            assert!(
                stored > 0 && stored < paused["progress"]["shards"].as_u64().expect("n"),
                "paused between its first and last shard: {paused}"
            );
            assert_eq!(
                paused["progress"]["probes_sent"].as_u64(),
                Some(stored * SHARD_PROBES),
                "a paused scan counts the probes of its stored shards: {paused}"
            );
            // Waiting: nothing is sent or stored, and nothing is marked gone by a scan
            // that has not completed.
            std::thread::sleep(Duration::from_secs(3));
            let later = api.ok("GET", &format!("/scans/{id}"), None);
            assert_eq!(later["state"], "waiting", "{later}");
            assert_eq!(later["progress"]["shards_done"], stored, "{later}");
            assert_eq!(api.assets()[&doomed_key][1], "present");
            assert!(
                !api.changes().keys().any(|(_, c)| c == "disappeared"),
                "no disappearance before the covering scan completes"
            );
            // Resumes when the next window opens.
            let resumed = api.wait(id, Duration::from_secs(70), |s| s["state"] != "waiting");
            assert!(
                now_ms() >= (minute + 2) * 60_000,
                "resumed at the next opening: {resumed}"
            );
        },
    );
    assert_eq!(windowed, reference, "paused and resumed = uninterrupted");
    assert_eq!(
        windowed
            .changes
            .get(&(doomed_key.clone(), "disappeared".into())),
        Some(&1),
        "{:?}",
        windowed.changes
    );
}

/// The next hh:00 UTC twelve hours from now, and that hour.
fn half_a_day_away() -> (u32, i64) {
    let now = now_ms();
    let hour = ((now / 3_600_000 + 12) % 24) as u32;
    let start = (now / 3_600_000 + 12) * 3_600_000;
    (hour, start)
}

#[test]
fn outside_its_window_a_scan_waits_and_only_an_audited_override_runs_a_verification() {
    let range = port_range();
    serve_forever(listen_in(range, 0));
    let dir = tempfile::tempdir().expect("tempdir");
    let (_service, api) = Api::start(dir.path());
    let small = (range.0, range.0 + 299);
    let first = api.scan(&request(small, 5000));
    api.completed(&first, Duration::from_secs(60));

    let (hour, opens) = half_a_day_away();
    let settings = json!({
        "windows": [{"cron": format!("0 {hour} * * *"), "duration_mins": 60, "tz": "UTC"}],
        "blackouts": [{"cron": "0 0 1 1 *", "duration_mins": 1440, "tz": "Asia/Shanghai"}],
        "max_rate": 2000,
    });
    let v = api.ok("PUT", "/windows", Some(&settings));
    assert_eq!(
        (v["open"].clone(), v["until"].clone()),
        (json!(false), json!(opens)),
        "{v}"
    );

    // A scan requested now waits, saying until when.
    let (status, scan) = api.call("POST", "/scans", Some(&request(small, 100)));
    assert_eq!(status, 201, "{scan}");
    assert_eq!(scan["state"], "waiting", "{scan}");
    assert_eq!(scan["until"], opens, "{scan}");
    let id = scan["id"].as_str().expect("id").to_owned();
    std::thread::sleep(Duration::from_secs(2));
    let still = api.ok("GET", &format!("/scans/{id}"), None);
    assert_eq!(
        (
            still["state"].clone(),
            still["progress"]["shards_done"].clone()
        ),
        (json!("waiting"), json!(0)),
        "{still}"
    );
    // Only verification scans may be let out of the window.
    let (status, v) = api.call(
        "POST",
        &format!("/scans/{id}/override-windows"),
        Some(&json!({"reason": "urgent"})),
    );
    assert_eq!(status, 409, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("verification"),
        "{v}"
    );
    let v = api.ok("POST", &format!("/scans/{id}/cancel"), None);
    assert_eq!(v["state"], "cancelled", "{v}");

    // A verification follows the windows too...
    let findings = api.ok("GET", "/findings?limit=10", None);
    let finding = findings["items"][0]["id"]
        .as_str()
        .expect("a finding")
        .to_owned();
    let moved = api.ok(
        "POST",
        &format!("/findings/{finding}/transitions"),
        Some(&json!({"to": "fixed", "comment": "closed the port"})),
    );
    let check = moved["verification_scan"]
        .as_str()
        .expect("a verification scan")
        .to_owned();
    let waiting = api.ok("GET", &format!("/scans/{check}"), None);
    assert_eq!(
        (waiting["state"].clone(), waiting["until"].clone()),
        (json!("waiting"), json!(opens)),
        "{waiting}"
    );
    // ...until an analyst overrides, with a reason, which the audit log keeps.
    let (status, v) = api.call(
        "POST",
        &format!("/scans/{check}/override-windows"),
        Some(&json!({"reason": " "})),
    );
    assert_eq!(status, 400, "a blank reason: {v}");
    let v = api.ok(
        "POST",
        &format!("/scans/{check}/override-windows"),
        Some(&json!({"reason": "client asked for proof today (ticket 4711)"})),
    );
    assert!(
        v["windows_overridden_by"]
            .as_str()
            .unwrap_or_default()
            .contains("ticket 4711"),
        "{v}"
    );
    let done = api.completed(&check, Duration::from_secs(60));
    assert!(done["until"].is_null(), "{done}");
    let audit = api.ok("GET", "//v1/audit?limit=1000", None);
    let items = audit["items"].as_array().expect("audit items");
    let record = items
        .iter()
        .find(|r| {
            r["action"]
                .as_str()
                .is_some_and(|a| a.starts_with(&format!("override scan windows for {check}")))
        })
        .unwrap_or_else(|| panic!("the override in the audit log: {audit}"));
    assert!(
        record["outcome"]
            .as_str()
            .unwrap_or_default()
            .contains("ticket 4711"),
        "{record}"
    );
    assert!(
        record["actor"]
            .as_str()
            .unwrap_or_default()
            .contains("windows-test"),
        "{record}"
    );
    assert!(
        items.iter().any(|r| r["action"]
            == format!("POST /v1/tenants/{TENANT}/scans/{check}/override-windows")
            && r["status"] == 200),
        "the request itself is audited too: {audit}"
    );
}

#[test]
fn bad_windows_and_schedules_are_refused_saying_what_to_fix_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_service, api) = Api::start(dir.path());
    let good = json!({
        "windows": [{"cron": "0 1 * * *", "duration_mins": 240, "tz": "Asia/Shanghai"}],
        "max_rate": 500,
    });
    api.ok("PUT", "/windows", Some(&good));
    let stored = api.ok("GET", "/windows", None);
    let w =
        |cron: &str, mins: i64, tz: &str| json!({"cron": cron, "duration_mins": mins, "tz": tz});
    let cases = [
        (
            json!({"windows": [w("0 1 * * *", 60, "Asia/Shangahi")]}),
            "unknown time zone",
        ),
        (
            json!({"windows": [w("0 25 * * *", 60, "UTC")]}),
            "does not parse",
        ),
        (json!({"windows": [w("0 1 * *", 60, "UTC")]}), "5 fields"),
        (
            json!({"windows": [w("0 0 30 2 *", 60, "UTC")]}),
            "never opens",
        ),
        (
            json!({"windows": [w("0 1 * * *", 60, "UTC")], "blackouts": [w("0 0 * * *", 1440, "Europe/London")]}),
            "never open",
        ),
        (
            json!({"windows": [w("0 1 * * *", 0, "UTC")]}),
            "duration_mins",
        ),
        (
            json!({"windows": [w("0 1 * * *", -5, "UTC")]}),
            "duration_mins",
        ),
        (json!({"max_rate": 0}), "max_rate"),
    ];
    for (body, hint) in &cases {
        let (status, v) = api.call("PUT", "/windows", Some(body));
        assert!((400..500).contains(&status), "{body}: HTTP {status} {v}");
        assert!(
            v["detail"].as_str().unwrap_or_default().contains(hint),
            "{body}: the error names what to fix ({hint}): {v}"
        );
    }
    assert_eq!(api.ok("GET", "/windows", None), stored, "nothing changed");

    let req = json!({"targets": ["127.0.0.1"], "ports": "80"});
    let bad_schedules = [
        (json!({"name": "n", "request": req}), "interval_secs"),
        (
            json!({"name": "n", "request": req, "window": w("0 1 * * *", 60, "Nowhere/City")}),
            "unknown time zone",
        ),
        (
            json!({"name": "n", "request": req, "window": w("0 0 31 4 *", 60, "UTC")}),
            "never opens",
        ),
        // 06:00-07:00 Shanghai never meets the tenant's 01:00-05:00 there.
        (
            json!({"name": "n", "request": req, "window": w("0 6 * * *", 60, "Asia/Shanghai")}),
            "never overlaps",
        ),
    ];
    for (body, hint) in &bad_schedules {
        let (status, v) = api.call("POST", "/schedules", Some(body));
        assert_eq!(status, 400, "{body}: {v}");
        assert!(
            v["detail"].as_str().unwrap_or_default().contains(hint),
            "{body}: ({hint}) {v}"
        );
    }
    assert_eq!(
        api.ok("GET", "/schedules", None),
        json!([]),
        "no schedule stored"
    );

    // Calendar schedules: the first run at the window's next opening (01:00 Shanghai is
    // 17:00 UTC), or now when it is open; interval schedules as before.
    let s = api.ok(
        "POST",
        "/schedules",
        Some(&json!({"name": "nightly", "request": req, "window": w("0 1 * * *", 240, "Asia/Shanghai")})),
    );
    let now = now_ms();
    let (day, hour) = (now / 86_400_000 * 86_400_000, 3_600_000);
    let in_day = now - day;
    let next = if (17 * hour..21 * hour).contains(&in_day) {
        None
    } else if in_day < 17 * hour {
        Some(day + 17 * hour)
    } else {
        Some(day + 86_400_000 + 17 * hour)
    };
    match next {
        Some(at) => assert_eq!(s["next_run"], at, "{s}"),
        None => assert!(
            (s["next_run"].as_i64().unwrap_or(0) - now).abs() < 5_000,
            "open now: {s}"
        ),
    }
    let s = api.ok(
        "POST",
        "/schedules",
        Some(&json!({"name": "hourly", "request": req, "interval_secs": 3600, "first_run": now + 3_600_000})),
    );
    assert_eq!(s["interval_secs"], 3600, "{s}");
    assert_eq!(
        api.ok("GET", "/schedules", None).as_array().map(Vec::len),
        Some(2)
    );
}
