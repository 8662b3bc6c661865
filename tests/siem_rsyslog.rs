//! SIEM export end to end: the real `aperture serve` on loopback, findings and changes
//! from a scan of listeners this test opens on 127.0.0.1, and Debian's rsyslogd — started
//! by this test as its own child, with only a TCP input on a free loopback port writing to
//! a file here — as the receiver. The test reads that file: every finding and change
//! arrived once, as a well-formed RFC 5424 message carrying OCSF JSON. The receiver is
//! down for a while (retries, then delivered), the service is killed with SIGKILL
//! mid-export (nothing lost, a repeat only with its event id), TLS goes through rsyslog's
//! gtls driver with a CA this test makes, and bad input is refused with what to fix.

mod common;

use common::bin;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TENANT: &str = "acme";
const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// rsyslogd or a reason to skip (a failure when `APERTURE_LAB_REQUIRED=1`, as in CI,
/// where `scripts/deps` installs it).
fn have_rsyslogd() -> bool {
    if Path::new(RSYSLOGD).exists() {
        return true;
    }
    assert!(
        std::env::var("APERTURE_LAB_REQUIRED").as_deref() != Ok("1"),
        "{RSYSLOGD} is missing: install rsyslog and rsyslog-gnutls (scripts/deps)"
    );
    eprintln!("skipped: {RSYSLOGD} is missing (apt-get install rsyslog rsyslog-gnutls)");
    false
}

/// A TLS identity for the receiver: its CA (PEM), certificate and key files.
struct Tls {
    ca_pem: String,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_ca(dir: &Path, name: &str) -> Tls {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} test CA"));
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &ca).expect("signed");
    let write = |file: &str, text: &str| {
        let p = dir.join(format!("{name}-{file}"));
        std::fs::write(&p, text).expect("write");
        p
    };
    Tls {
        ca_pem: ca.pem(),
        ca: write("ca.pem", &ca.pem()),
        cert: write("cert.pem", &cert.pem()),
        key: write("key.pem", &key.serialize_pem()),
    }
}

/// Debian's rsyslogd, this test's child: a TCP (or TLS) input on `port`, every message's
/// raw form as one line of `out`.
struct Rsyslog {
    child: Child,
}

impl Rsyslog {
    fn start(dir: &Path, port: u16, tls: Option<&Tls>) -> Rsyslog {
        let work = dir.join(format!("rsyslog-{port}"));
        std::fs::create_dir_all(&work).expect("work dir");
        let out = dir.join("received.log");
        let (global_tls, input) = match tls {
            Some(t) => (
                format!(
                    " DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{}\" \
                     DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
                    t.ca.display(),
                    t.cert.display(),
                    t.key.display()
                ),
                "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" \
                 StreamDriver.AuthMode=\"anon\")"
                    .to_owned(),
            ),
            None => (String::new(), "module(load=\"imtcp\")".to_owned()),
        };
        let conf = format!(
            "global(workDirectory=\"{work}\" maxMessageSize=\"64k\"{global_tls})\n\
             {input}\n\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             ruleset(name=\"out\") {{ action(type=\"omfile\" file=\"{out}\" template=\"raw\") }}\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"out\")\n",
            work = work.display(),
            out = out.display(),
        );
        let conf_path = work.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).expect("config");
        let log = std::fs::File::create(work.join("rsyslogd.stderr")).expect("log");
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(work.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("rsyslogd starts");
        let mut r = Rsyslog { child };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = r.child.try_wait() {
                let err = std::fs::read_to_string(work.join("rsyslogd.stderr")).unwrap_or_default();
                panic!("rsyslogd exited ({status}): {err}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "rsyslogd does not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// One received message: its event id (from the structured data) and OCSF object.
#[derive(Debug, Clone, PartialEq)]
struct Message {
    id: String,
    line: String,
    ocsf: Value,
}

/// Every line rsyslog wrote, each checked as one RFC 5424 message of ours.
fn received(dir: &Path) -> Vec<Message> {
    let text = std::fs::read_to_string(dir.join("received.log")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (pri, rest) = line
                .strip_prefix('<')
                .and_then(|l| l.split_once(">1 "))
                .unwrap_or_else(|| panic!("not RFC 5424: {line}"));
            let pri: u8 = pri.parse().expect("PRI");
            assert_eq!(pri / 8, 13, "facility log audit: {line}");
            let fields: Vec<&str> = rest.splitn(6, ' ').collect();
            assert_eq!(fields.len(), 6, "{line}");
            assert_eq!(fields[2], "aperture", "APP-NAME: {line}");
            assert!(["finding", "change"].contains(&fields[4]), "MSGID: {line}");
            let sd = fields[5];
            let (sd, msg) = sd.split_once("] ").expect("structured data, then message");
            assert!(
                sd.starts_with("[aperture@32473 tenant=\"acme\" event=\""),
                "{sd}"
            );
            let id = sd
                .split("event=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .expect("event id")
                .to_owned();
            let ocsf: Value = serde_json::from_str(msg)
                .unwrap_or_else(|e| panic!("MSG is not JSON ({e}): {msg}"));
            assert_eq!(ocsf["metadata"]["uid"], id.as_str());
            let class = ocsf["class_uid"].as_u64().expect("class");
            assert!(sd.ends_with(&format!("class=\"{class}\"")), "{sd}");
            assert_eq!(class == 2004, fields[4] == "finding", "{line}");
            Message {
                id,
                line: line.to_owned(),
                ocsf,
            }
        })
        .collect()
}

struct Service {
    child: Child,
    base: String,
}

impl Service {
    fn start(data: &Path, batch: usize) -> Service {
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
            .env("APERTURE_TOKEN_RATE", "10000")
            .env("APERTURE_SCHEDULER_SECS", "1")
            .env("APERTURE_ALERT_RETRY_BASE_MS", "300")
            .env("APERTURE_ALERT_RETRY_CAP_MS", "1500")
            .env("APERTURE_ALERT_TIMEOUT_MS", "3000")
            .env("APERTURE_SIEM_BATCH", batch.to_string());
        let mut child = cmd.spawn().expect("aperture serve starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
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
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("aperture serve prints its address");
        Service { child, base }
    }

    fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL delivered");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Api {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let r = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .call(),
            ("PUT", Some(b)) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .send_json(b),
            (_, Some(b)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(b),
            (_, None) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty(),
        };
        let mut r = r.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    fn siem(&self, rest: &str) -> String {
        format!("/v1/tenants/{TENANT}/siem{rest}")
    }

    /// Every event the export has now, by the pull form: id → OCSF object.
    fn all_events(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let mut cursor = "0.0".to_owned();
        loop {
            let page = self.ok(
                "GET",
                &self.siem(&format!("/events?cursor={cursor}&limit=1000")),
                None,
            );
            for e in page["events"].as_array().expect("events") {
                let id = e["metadata"]["uid"].as_str().expect("uid").to_owned();
                assert!(out.insert(id, e.clone()).is_none(), "an event twice");
            }
            cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
            if page["backlog"] == 0 {
                return out;
            }
        }
    }

    fn destination(&self, id: &str) -> Value {
        self.ok("GET", &self.siem(&format!("/destinations/{id}")), None)
    }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `n` listeners on 127.0.0.1 (kept open for the test): the services a scan finds.
fn listeners(n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| {
            let l = TcpListener::bind("127.0.0.1:0").expect("listener");
            let port = l.local_addr().expect("bound").port();
            std::thread::spawn(move || {
                for c in l.incoming() {
                    drop(c);
                }
            });
            port
        })
        .collect()
}

fn setup(data: &Path, batch: usize) -> (Service, Api) {
    common::admin_cli(data, &["tenant-create", TENANT, "Acme"]);
    let token = common::admin_cli(
        data,
        &["token-create", "--name", "siem-test", "--role", "admin"],
    )
    .0
    .trim()
    .to_owned();
    let service = Service::start(data, batch);
    let api = Api {
        agent: ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .new_agent(),
        base: service.base.clone(),
        token,
    };
    api.ok(
        "PUT",
        &format!("/v1/tenants/{TENANT}/scope"),
        Some(&json!({"cidrs": ["127.0.0.0/24"], "allow_special": true})),
    );
    (service, api)
}

/// Scans the ports and waits until the scan is done and its findings are open.
fn scan(api: &Api, ports: &[u16]) {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let v = api.ok(
        "POST",
        &format!("/v1/tenants/{TENANT}/scans"),
        Some(&json!({"targets": ["127.0.0.1"], "ports": list.join(","), "rate": 2000, "grab": false})),
    );
    let id = v["id"].as_str().expect("scan id").to_owned();
    wait_for("the scan", Duration::from_secs(60), || {
        let s = api.ok("GET", &format!("/v1/tenants/{TENANT}/scans/{id}"), None);
        assert_ne!(s["state"], "failed", "{s}");
        s["state"] == "completed"
    });
    wait_for("findings of every port", Duration::from_secs(30), || {
        let f = api.ok(
            "GET",
            &format!("/v1/tenants/{TENANT}/findings?limit=1000"),
            None,
        );
        let assets: BTreeSet<&str> = f["items"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["asset"].as_str()).collect())
            .unwrap_or_default();
        ports
            .iter()
            .all(|p| assets.contains(format!("service:127.0.0.1:{p}/tcp").as_str()))
    });
}

/// Waits until the destination's backlog is empty and rsyslog has written every event
/// the export has; returns what it received.
fn drained(api: &Api, dir: &Path, dest: &str) -> (BTreeMap<String, Value>, Vec<Message>) {
    let mut got = Vec::new();
    let mut all = BTreeMap::new();
    wait_for(
        "every event in rsyslog's file",
        Duration::from_secs(60),
        || {
            if api.destination(dest)["backlog"] != 0 {
                return false;
            }
            all = api.all_events();
            got = received(dir);
            let ids: BTreeSet<&str> = got.iter().map(|m| m.id.as_str()).collect();
            all.keys().all(|k| ids.contains(k.as_str()))
        },
    );
    (all, got)
}

/// Every finding of the tenant arrived as a Create event carrying its id.
fn check_findings(api: &Api, got: &[Message]) {
    let findings = api.ok(
        "GET",
        &format!("/v1/tenants/{TENANT}/findings?limit=1000"),
        None,
    );
    let items = findings["items"].as_array().expect("items");
    assert!(!items.is_empty());
    let created: BTreeSet<&str> = got
        .iter()
        .filter(|m| m.ocsf["class_uid"] == 2004 && m.ocsf["activity_id"] == 1)
        .filter_map(|m| m.ocsf["finding_info"]["uid"].as_str())
        .collect();
    for f in items {
        let id = f["id"].as_str().expect("id");
        assert!(created.contains(id), "finding {id} never arrived: {f}");
    }
}

fn new_destination(id: &str, port: u16) -> Value {
    json!({"id": id, "name": "SOC", "address": format!("127.0.0.1:{port}")})
}

#[test]
fn every_finding_and_change_reaches_rsyslog_once_and_bad_input_changes_nothing() {
    if !have_rsyslogd() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (_service, api) = setup(&data, 500);
    let port = free_port();
    let _rsyslog = Rsyslog::start(dir.path(), port, None);
    let ports = listeners(3);
    scan(&api, &ports);
    let created = api.ok(
        "POST",
        &api.siem("/destinations"),
        Some(&new_destination("soc", port)),
    );
    assert_eq!(created["format"], "syslog", "{created}");
    assert_eq!(created["state"]["cursor"], "0.0", "{created}");
    let (all, got) = drained(&api, dir.path(), "soc");
    // Once each: no id twice, no line we did not expect.
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &got {
        *count.entry(m.id.as_str()).or_default() += 1;
    }
    assert!(count.values().all(|&n| n == 1), "repeats: {count:?}");
    assert_eq!(count.len(), all.len());
    for m in &got {
        assert_eq!(&m.ocsf, &all[&m.id], "the pushed and pulled forms agree");
    }
    check_findings(&api, &got);
    for class in [2004, 5001] {
        if let Some(m) = got.iter().find(|m| m.ocsf["class_uid"] == class) {
            eprintln!("as rsyslog wrote it: {}", m.line);
        }
    }
    for p in &ports {
        let asset = format!("service:127.0.0.1:{p}/tcp");
        assert!(
            got.iter().any(|m| m.ocsf["class_uid"] == 5001
                && m.ocsf["unmapped"]["asset"] == asset.as_str()
                && m.ocsf["unmapped"]["change"] == "appeared"),
            "{asset} appeared"
        );
    }
    let state = api.destination("soc");
    assert_eq!(state["state"]["sent"], all.len() as u64, "{state}");
    assert!(state["state"]["last_error"].is_null(), "{state}");

    // New findings later follow on the same connection, once each.
    let more = listeners(1);
    scan(&api, &more);
    let (all, got) = drained(&api, dir.path(), "soc");
    assert_eq!(got.len(), all.len(), "each event once");
    check_findings(&api, &got);

    // The pull form pages the same events, and refuses a cursor it did not give.
    let first = api.ok("GET", &api.siem("/events?limit=2"), None);
    assert_eq!(first["events"].as_array().map(Vec::len), Some(2));
    let next = first["next_cursor"].as_str().expect("cursor");
    let second = api.ok(
        "GET",
        &api.siem(&format!("/events?limit=2&cursor={next}")),
        None,
    );
    assert_ne!(first["events"][0], second["events"][0]);
    let (status, v) = api.call("GET", &api.siem("/events?cursor=12"), None);
    assert_eq!(status, 400, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("next_cursor"),
        "{v}"
    );

    // Bad input: a 400 that names the field and what to write; nothing stored changes.
    let before = api.ok("GET", &api.siem("/destinations"), None);
    for (body, says) in [
        (
            json!({"id": "x", "name": "x", "address": "127.0.0.1"}),
            "host:port",
        ),
        (
            json!({"id": "x", "name": "x", "address": "127.0.0.1:99999"}),
            "host:port",
        ),
        (
            json!({"id": "x", "name": "x", "address": "[::1]"}),
            "host:port",
        ),
        (
            json!({"id": "x", "name": "x", "address": "bad host:514"}),
            "host",
        ),
        (
            json!({"id": "x", "name": "x", "address": "h:514", "format": "cef"}),
            "format",
        ),
        (
            json!({"id": "x", "name": "x", "address": "h:514", "tls": true, "ca_pem": "not a certificate"}),
            "ca_pem",
        ),
        (
            json!({"id": "x", "name": "x", "address": "h:514", "ca_pem": "x"}),
            "ca_pem",
        ),
        (
            json!({"id": "x", "name": "x", "address": "h:514", "facility": 99}),
            "facilit",
        ),
        (
            json!({"id": "x", "name": "x", "address": "h:514", "findings": false, "changes": false}),
            "choose",
        ),
        (json!({"id": "x y", "name": "x", "address": "h:514"}), "id"),
        (
            json!({"id": "x", "name": "x", "address": "h:514", "colour": "red"}),
            "colour",
        ),
    ] {
        let (status, v) = api.call("POST", &api.siem("/destinations"), Some(&body));
        assert_eq!(status, 400, "{body}: {v}");
        let detail = v["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{body}: {detail}");
    }
    let (status, v) = api.call(
        "POST",
        &api.siem("/destinations"),
        Some(&new_destination("soc", port)),
    );
    assert_eq!(status, 409, "{v}");
    let after = api.ok("GET", &api.siem("/destinations"), None);
    assert_eq!(
        before.as_array().map(Vec::len),
        after.as_array().map(Vec::len)
    );
    assert_eq!(before[0]["created"], after[0]["created"]);
    let (status, _) = api.call("GET", &api.siem("/destinations/nope"), None);
    assert_eq!(status, 404);
    api.ok("DELETE", &api.siem("/destinations/soc"), None);
    let (status, _) = api.call("GET", &api.siem("/destinations/soc"), None);
    assert_eq!(status, 404);
}

#[test]
fn a_receiver_down_gets_everything_when_back_and_kill_9_loses_nothing() {
    if !have_rsyslogd() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // One event per write and commit: the export takes long enough to be cut.
    let (mut service, mut api) = setup(&data, 1);
    let ports = listeners(40);
    scan(&api, &ports);
    // The receiver is not there yet: attempts fail, are recorded and retried.
    let port = free_port();
    api.ok(
        "POST",
        &api.siem("/destinations"),
        Some(&new_destination("soc", port)),
    );
    wait_for("failed attempts", Duration::from_secs(30), || {
        let d = api.destination("soc");
        d["state"]["failures"].as_u64().unwrap_or(0) >= 2
    });
    let d = api.destination("soc");
    let error = d["state"]["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("cannot connect"), "{d}");
    assert_eq!(d["state"]["cursor"], "0.0", "nothing counted as sent: {d}");
    let total = d["backlog"].as_u64().expect("backlog");
    assert!(
        total >= 80,
        "a backlog to cut (40 services, their host, their findings): {d}"
    );

    // It comes up; the service is killed once part of the backlog arrived.
    let mut rsyslog = Rsyslog::start(dir.path(), port, None);
    let start = Instant::now();
    loop {
        let n = received(dir.path()).len() as u64;
        if n >= 10 {
            service.kill9();
            assert!(n < total, "killed before the end ({n} of {total} arrived)");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "nothing arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    service = Service::start(&data, 1);
    api.base = service.base.clone();
    let (all, got) = drained(&api, dir.path(), "soc");
    // Nothing lost; a repeat is the same message with the same id.
    let mut by_id: BTreeMap<&str, Vec<&Message>> = BTreeMap::new();
    for m in &got {
        by_id.entry(m.id.as_str()).or_default().push(m);
    }
    assert!(all.keys().all(|k| by_id.contains_key(k.as_str())));
    for (id, copies) in &by_id {
        assert!(
            copies.iter().all(|c| c.line == copies[0].line),
            "{id}: repeats differ"
        );
    }
    let repeats = got.len() - by_id.len();
    eprintln!("{} messages for {} events", got.len(), by_id.len());
    assert!(repeats <= 2, "{repeats} repeats with one event per commit");
    check_findings(&api, &got);

    // Down again (its connection breaks): new events wait and arrive when it is back.
    rsyslog.stop();
    let more = listeners(2);
    scan(&api, &more);
    wait_for(
        "a failure while it is down",
        Duration::from_secs(30),
        || {
            api.destination("soc")["state"]["failures"]
                .as_u64()
                .unwrap_or(0)
                >= 1
        },
    );
    let _rsyslog = Rsyslog::start(dir.path(), port, None);
    let (all, got) = drained(&api, dir.path(), "soc");
    let ids: BTreeSet<&str> = got.iter().map(|m| m.id.as_str()).collect();
    assert!(all.keys().all(|k| ids.contains(k.as_str())), "nothing lost");
    assert!(
        got.len() - ids.len() <= repeats + 1,
        "at most the event in flight repeats"
    );
    check_findings(&api, &got);
    assert!(api.destination("soc")["state"]["last_error"].is_null());
}

#[test]
fn tls_to_rsyslog_gtls_with_the_receivers_ca_and_never_with_another() {
    if !have_rsyslogd() {
        return;
    }
    let gtls = std::fs::read_dir("/usr/lib")
        .map(|dirs| {
            dirs.flatten()
                .any(|d| d.path().join("rsyslog/lmnsd_gtls.so").exists())
        })
        .unwrap_or(false);
    if !gtls && std::env::var("APERTURE_LAB_REQUIRED").as_deref() != Ok("1") {
        eprintln!("skipped: rsyslog's gtls driver is missing (apt-get install rsyslog-gnutls)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (_service, api) = setup(&data, 500);
    let tls = make_ca(dir.path(), "receiver");
    let other = make_ca(dir.path(), "other");
    let port = free_port();
    let _rsyslog = Rsyslog::start(dir.path(), port, Some(&tls));
    let ports = listeners(2);
    scan(&api, &ports);
    // A CA that did not sign the receiver's certificate: refused at the handshake.
    let mut wrong = new_destination("wrong", port);
    wrong["tls"] = json!(true);
    wrong["ca_pem"] = json!(other.ca_pem);
    api.ok("POST", &api.siem("/destinations"), Some(&wrong));
    wait_for("the handshake refused", Duration::from_secs(30), || {
        let d = api.destination("wrong");
        d["state"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("TLS handshake"))
    });
    assert_eq!(api.destination("wrong")["state"]["sent"], 0);
    api.ok("DELETE", &api.siem("/destinations/wrong"), None);
    assert!(
        received(dir.path()).is_empty(),
        "nothing went to an unverified receiver"
    );

    let mut good = new_destination("soc", port);
    good["tls"] = json!(true);
    good["ca_pem"] = json!(tls.ca_pem);
    let created = api.ok("POST", &api.siem("/destinations"), Some(&good));
    assert_eq!(created["custom_ca"], true, "{created}");
    assert!(!created.to_string().contains("BEGIN CERTIFICATE"));
    let (all, got) = drained(&api, dir.path(), "soc");
    assert_eq!(got.len(), all.len(), "each event once");
    check_findings(&api, &got);
}
