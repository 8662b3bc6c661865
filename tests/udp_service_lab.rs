//! UDP through the service: `aperture serve` in the lab's scanner namespace runs a scan
//! with TCP and UDP ports (`T:53,U:…`) over the real Debian UDP daemons of
//! `scripts/lab.d/27-udp.sh`, and stores each as a UDP service beside the TCP ones (NSD
//! answers DNS on TCP 53 and UDP 53: two assets). The UDP rules raise their findings on
//! the daemons so configured (unbound recursing for anyone, snmpd with `public`, the
//! SSDP gateway answering one search with eight replies) and on no other. A rescan
//! behind a firewall then shows the two closing rules: ICMP port unreachable is a UDP
//! service gone (its finding closed as verified), silence is only "unknown".

mod common;

use common::cluster::{lab_ready, Cluster};
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TENANT: &str = "udp";
const TABLE: &str = "aperture_udp_service";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Api {
    ns: String,
    port: u16,
    token: String,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        curl_json(&self.ns, self.port, method, path, &self.token, body)
    }

    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {v}"
        );
        v
    }

    fn wait_until(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn scan(&self, request: &Value) -> Value {
        let v = self.ok(
            "POST",
            &format!("/v1/tenants/{TENANT}/scans"),
            Some(request),
        );
        let id = v["id"].as_str().expect("scan id").to_owned();
        let path = format!("/v1/tenants/{TENANT}/scans/{id}");
        let mut last = Value::Null;
        self.wait_until(&format!("scan {id}"), Duration::from_secs(120), || {
            last = self.ok("GET", &path, None);
            assert_ne!(last["state"], "failed", "scan failed: {last}");
            last["state"] == "completed"
        });
        last
    }

    /// An asset by key (the '/' of a service key percent-encoded).
    fn asset(&self, key: &str) -> Value {
        self.ok(
            "GET",
            &format!("/v1/tenants/{TENANT}/assets/{}", key.replace('/', "%2F")),
            None,
        )["asset"]
            .clone()
    }

    fn keys(&self, query: &str) -> BTreeSet<String> {
        let v = self.ok(
            "GET",
            &format!("/v1/tenants/{TENANT}/assets?{query}&limit=1000"),
            None,
        );
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|a| a["key"].as_str().map(str::to_owned))
            .collect()
    }

    /// The findings of a rule, by asset.
    fn findings(&self, rule: &str) -> BTreeMap<String, Value> {
        let v = self.ok(
            "GET",
            &format!("/v1/tenants/{TENANT}/findings?rule={rule}&limit=1000"),
            None,
        );
        v["items"]
            .as_array()
            .expect("findings")
            .iter()
            .filter_map(|f| Some((f["asset"].as_str()?.to_owned(), f.clone())))
            .collect()
    }
}

/// An nft table in the target namespace: UDP to one port rejected with ICMP port
/// unreachable (what a host with the daemon stopped says), to another dropped (a
/// firewall that stays silent). Deleted on drop.
struct Firewall {
    ns: String,
}

impl Firewall {
    fn new(ns: &str, reject: (&str, u16), drop: (&str, u16)) -> Firewall {
        let rules = format!(
            "table inet {TABLE} {{\n\
               chain input {{ type filter hook input priority -10; policy accept;\n\
                 ip daddr {} udp dport {} reject with icmp type port-unreachable\n\
                 ip daddr {} udp dport {} drop\n\
               }}\n\
             }}\n",
            reject.0, reject.1, drop.0, drop.1
        );
        let fw = Firewall { ns: ns.to_owned() };
        let _ = fw.nft(&["delete", "table", "inet", TABLE]);
        let path = std::env::temp_dir().join(format!("aperture-udp-{}.nft", std::process::id()));
        std::fs::write(&path, rules).expect("nft rules written");
        let ok = fw.nft(&["-f", &path.to_string_lossy()]);
        let _ = std::fs::remove_file(&path);
        assert!(ok, "nft table loads in {ns}");
        fw
    }

    fn nft(&self, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, "nft"])
            .args(args)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        let _ = self.nft(&["delete", "table", "inet", TABLE]);
    }
}

/// 27-udp.sh's ground truth, or why the test cannot run.
fn truth() -> Result<Vec<Value>, String> {
    if let Some(why) = lab_unavailable() {
        return Err(why);
    }
    let path = lab_dir().join("udp-truth.jsonl");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str::<Value>(l).expect("a ground-truth line"))
            .collect()),
        Err(e) => {
            let why = format!("the UDP lab hook did not run ({}: {e})", path.display());
            assert!(
                std::env::var("APERTURE_LAB_REQUIRED").as_deref() != Ok("1")
                    || std::env::var("APERTURE_LAB_UDP").as_deref() == Ok("0"),
                "APERTURE_LAB_REQUIRED=1 but {why}"
            );
            Err(why)
        }
    }
}

fn udp_env(key: &str) -> String {
    let text = std::fs::read_to_string(lab_dir().join("udp.env")).expect("udp.env readable");
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("{key} missing from udp.env"))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn the_service_stores_udp_services_and_judges_them() {
    let truth = match truth() {
        Ok(t) => t,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let _lock = lab_lock();
    let scan_ns = lab_env("LAB_SCAN_NS");
    let tgt = lab_env("LAB_TGT_IP");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (admin, _) = admin_cli(
        &data,
        &["token-create", "--name", "root", "--role", "admin"],
    );
    let port = 20000 + (std::process::id() % 20000) as u16;
    let service = Command::new("ip")
        .args(["netns", "exec", &scan_ns])
        .arg(bin())
        .args(["serve", "--data"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("APERTURE_SCHEDULER_SECS", "1")
        // SSDP answers within the search's MX (1 s): its replies are all counted.
        .env("APERTURE_SYN_WAIT_SECS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("service starts");
    let _service = Killed(service);
    let api = Api {
        ns: scan_ns,
        port,
        token: admin.trim().to_owned(),
    };
    api.wait_until("the service", Duration::from_secs(20), || {
        api.call("GET", "/healthz", None).0 == 200
    });
    api.ok(
        "POST",
        "/v1/tenants",
        Some(&json!({"id": TENANT, "name": "UDP lab"})),
    );
    let net = udp_env("LAB_UDP_NET");
    api.ok(
        "PUT",
        &format!("/v1/tenants/{TENANT}/scope"),
        Some(&json!({"cidrs": [net, format!("{tgt}/32")], "allow_special": true})),
    );
    let policy = api.ok("GET", &format!("/v1/tenants/{TENANT}/policy"), None);
    assert_eq!(policy["amplifier_factor"], 10, "{policy}");
    for rule in ["open-resolver", "amplifier", "snmp-default-community"] {
        assert_eq!(policy["severities"][rule], "high", "{rule}: {policy}");
    }

    // Bad UDP input is refused before anything is queued.
    for (body, needle) in [
        (json!({"targets": [tgt], "ports": "U:0"}), "port 0"),
        (
            json!({"targets": [tgt], "udp": "gopher"}),
            "unknown UDP preset",
        ),
        (
            json!({"targets": [tgt], "ports": "U:53=nope"}),
            "unknown UDP protocol",
        ),
    ] {
        let (status, v) = api.call("POST", &format!("/v1/tenants/{TENANT}/scans"), Some(&body));
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v.to_string().contains(needle), "{body}: {v}");
    }

    // TCP 53 and the lab's UDP ports (its unusual ones named), one scan.
    let ports = format!("T:53,{}", udp_env("LAB_UDP_PORTS"));
    let scan = api.scan(&json!({
        "targets": [net, tgt],
        "ports": ports,
        "rate": 2000,
        "grab": false,
    }));
    let probes: BTreeSet<&str> = scan["coverage"]["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(probes.contains("udp") && probes.contains("syn"), "{scan}");

    let mut problems = Vec::new();
    for t in &truth {
        let key = format!(
            "service:{}:{}/udp",
            t["ip"].as_str().expect("ip"),
            t["port"]
        );
        let (status, v) = api.call(
            "GET",
            &format!("/v1/tenants/{TENANT}/assets/{}", key.replace('/', "%2F")),
            None,
        );
        let a = &v["asset"];
        if status != 200 || a["status"] != "present" {
            problems.push(format!("{key}: {status} {v}"));
            continue;
        }
        for field in ["service", "product", "version"] {
            if !t[field].is_null() && a["facts"][field] != t[field] {
                problems.push(format!(
                    "{key}: {field} {} want {}",
                    a["facts"][field], t[field]
                ));
            }
        }
        let ratio: f64 = a["facts"]["amplification"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0.0);
        if ratio <= 0.0 {
            problems.push(format!("{key}: no amplification measured: {a}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The listing tells the transports apart.
    let udp = api.keys("kind=service&protocol=udp");
    let want: BTreeSet<String> = truth
        .iter()
        .map(|t| {
            format!(
                "service:{}:{}/udp",
                t["ip"].as_str().expect("ip"),
                t["port"]
            )
        })
        .collect();
    assert_eq!(udp, want, "every UDP service and nothing else");
    let tcp = api.keys("kind=service&protocol=tcp");
    assert!(
        tcp.contains("service:198.19.5.54:53/tcp") && tcp.iter().all(|k| k.ends_with("/tcp")),
        "{tcp:?}"
    );
    let (status, _) = api.call(
        "GET",
        &format!("/v1/tenants/{TENANT}/assets?protocol=sctp"),
        None,
    );
    assert_eq!(status, 400);
    // NSD on one address: DNS over TCP and over UDP, two assets with their own facts.
    let nsd = api.keys("kind=service&net=198.19.5.54");
    assert_eq!(
        nsd,
        set(&["service:198.19.5.54:53/tcp", "service:198.19.5.54:53/udp"])
    );
    let nsd_udp = api.asset("service:198.19.5.54:53/udp");
    let nsd_tcp = api.asset("service:198.19.5.54:53");
    assert_eq!(nsd_tcp["key"], "service:198.19.5.54:53/tcp");
    assert_eq!(nsd_udp["facts"]["udp.recursion_available"], "false");
    assert!(nsd_tcp["facts"]["udp.rcode"].is_null(), "{nsd_tcp}");
    assert_eq!(
        api.asset("host:198.19.5.54")["facts"]["open_ports"],
        "53 53/udp"
    );

    // The findings: on the daemons so configured, and on no other service.
    let open_findings = |rule: &str| -> BTreeSet<String> {
        api.findings(rule)
            .into_iter()
            .filter(|(_, f)| f["state"] == "open")
            .map(|(k, _)| k)
            .collect()
    };
    assert_eq!(
        open_findings("open-resolver"),
        set(&["service:198.19.5.53:53/udp", "service:198.19.5.53:5300/udp"])
    );
    assert_eq!(
        open_findings("snmp-default-community"),
        set(&[
            "service:198.19.5.161:161/udp",
            "service:198.19.5.161:1161/udp"
        ])
    );
    let ssdp = format!("service:{tgt}:1900/udp");
    assert_eq!(open_findings("amplifier"), set(&[ssdp.as_str()]));
    let amp = &api.findings("amplifier")[&ssdp];
    let ratio: f64 = amp["evidence"]["amplification"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0.0);
    assert!(ratio >= 10.0, "{amp}");
    assert_eq!(amp["severity"], "high");
    let snmp = &api.findings("snmp-default-community")["service:198.19.5.161:161/udp"];
    assert!(
        snmp["evidence"]["sys_descr"]
            .as_str()
            .is_some_and(|d| d.starts_with("Linux")),
        "{snmp}"
    );

    // The change feed names UDP services by their own keys.
    let feed = api.ok(
        "GET",
        &format!("/v1/tenants/{TENANT}/changes?limit=1000"),
        None,
    );
    let appeared: BTreeSet<String> = feed["items"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["change"] == "appeared")
        .filter_map(|c| c["asset"].as_str().map(str::to_owned))
        .collect();
    assert!(appeared.is_superset(&want), "{appeared:?}");
    let since = feed["items"]
        .as_array()
        .and_then(|i| i.last())
        .and_then(|c| c["seq"].as_u64())
        .expect("a change");

    // A rescan behind a firewall: snmpd's second port rejected with ICMP port
    // unreachable, memcached dropped in silence.
    let ns = lab_env("LAB_TGT_NS");
    let _fw = Firewall::new(&ns, ("198.19.5.161", 1161), ("198.19.5.211", 11211));
    api.scan(&json!({
        "targets": ["198.19.5.161", "198.19.5.211"],
        "ports": "U:161,1161=snmp,11211",
        "rate": 500,
    }));
    let closed = api.asset("service:198.19.5.161:1161/udp");
    assert_eq!(
        closed["status"], "absent",
        "port unreachable is gone: {closed}"
    );
    let silent = api.asset("service:198.19.5.211:11211/udp");
    assert_eq!(silent["status"], "unknown", "silence is not gone: {silent}");
    assert_eq!(
        api.asset("service:198.19.5.161:161/udp")["status"],
        "present"
    );
    assert_eq!(
        api.asset("host:198.19.5.161")["facts"]["open_ports"],
        "161/udp"
    );
    let snmp = api.findings("snmp-default-community");
    assert_eq!(
        snmp["service:198.19.5.161:1161/udp"]["state"], "closed-verified",
        "{snmp:?}"
    );
    assert_eq!(snmp["service:198.19.5.161:161/udp"]["state"], "open");
    let feed = api.ok(
        "GET",
        &format!("/v1/tenants/{TENANT}/changes?since={since}&limit=1000"),
        None,
    );
    let gone: BTreeSet<String> = feed["items"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["change"] == "disappeared")
        .filter_map(|c| c["asset"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(gone, set(&["service:198.19.5.161:1161/udp"]), "{feed}");
}

/// The distributed path: a remote worker (its own namespace and source address) runs
/// the UDP shards of a scan the coordinator cut, and the coordinator stores them as
/// UDP services with their facts and findings.
#[test]
fn a_remote_worker_runs_the_udp_shards() {
    if truth().is_err() || !lab_ready() {
        return;
    }
    let _lab = lab_lock();
    let mut c = Cluster::new(&[]);
    c.start_worker(1, &[]);
    c.api_ok(
        "PUT",
        "/v1/tenants/acme/scope",
        Some(&json!({"cidrs": ["198.18.0.0/16", udp_env("LAB_UDP_NET")], "allow_special": true})),
    );
    let v = c.api_ok(
        "POST",
        "/v1/tenants/acme/scans",
        Some(&json!({
            "targets": ["198.19.5.48/28", "198.19.5.160/30"],
            "ports": "T:53,U:53,161,1161=snmp",
            "rate": 2000,
            "grab": false,
        })),
    );
    let id = v["id"].as_str().expect("scan id").to_owned();
    let done = c.wait_completed(&id);
    assert!(
        done["workers"]["shard_map"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "the worker ran it: {done}"
    );
    let services = c.services();
    let want = set(&[
        "service:198.19.5.53:53/udp",
        "service:198.19.5.54:53/tcp",
        "service:198.19.5.54:53/udp",
        "service:198.19.5.161:161/udp",
        "service:198.19.5.161:1161/udp",
    ]);
    assert_eq!(services, want);
    let resolver = c.api_ok(
        "GET",
        "/v1/tenants/acme/findings?rule=open-resolver&limit=100",
        None,
    );
    let keys: BTreeSet<&str> = resolver["items"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["asset"].as_str())
        .collect();
    assert_eq!(keys, BTreeSet::from(["service:198.19.5.53:53/udp"]));
}
