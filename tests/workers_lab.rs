//! Distributed workers end to end: a real nats-server with the config `aperture bus init`
//! writes, the real binary as coordinator (in the lab's scanner namespace) and as three
//! workers (each in its own namespace, with its own source address into the lab), driven
//! over HTTP as an operator would. What reaches the targets is counted at the target side
//! (nft counters per worker source), not by the workers.
//!
//! - three workers scan the lab: the assets and change events equal the ground truth and
//!   an in-process run of the same scan; the aggregate rate stays within the scan's;
//! - a worker, nats-server, or the coordinator is killed (-9) mid-scan, a worker hangs
//!   (SIGSTOP) or is stopped (SIGTERM): the scan completes with the same results,
//!   nothing lost, nothing stored twice;
//! - a blocked vantage is flagged, and its shards rerun elsewhere recover what it missed;
//! - a shard every delivery of which fails is marked failed, and a retry completes it.

mod common;

use common::cluster::*;
use common::nats::{free_port, nats_unavailable, NatsServer};
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn three_workers_scan_the_lab_like_one_process_within_one_rate() {
    if !lab_ready() {
        return;
    }
    let _lab = lab_lock();
    const NET: &str = "198.18.0.0/19";
    const RATE: u32 = 9000;
    let mut c = Cluster::new(&[]);
    for n in 1..=3 {
        c.start_worker(n, &[]);
    }
    let truth = truth_in(NET);
    assert!(
        truth.len() >= 50,
        "{} ground-truth services in {NET}",
        truth.len()
    );
    let before = probe_counters();
    let id = c.scan(NET, RATE);
    // The aggregate rate at the target side, sampled while the scan runs.
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let done = {
        let start = Instant::now();
        loop {
            samples.push((Instant::now(), probe_counters().iter().sum()));
            let last = c.scan_view(&id);
            if last["state"] == "completed" {
                break last;
            }
            assert_ne!(last["state"], "failed", "{last}");
            assert!(
                start.elapsed() < Duration::from_secs(150),
                "scan never completed: {last}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    let after = probe_counters();
    let window = Duration::from_secs(5);
    let mut worst = 0.0f64;
    for (i, &(t0, n0)) in samples.iter().enumerate() {
        if let Some(&(t1, n1)) = samples[i..]
            .iter()
            .find(|(t, _)| t.duration_since(t0) >= window)
        {
            let rate = (n1 - n0) as f64 / t1.duration_since(t0).as_secs_f64();
            worst = worst.max(rate);
        }
    }
    assert!(worst > 0.0, "no 5 s window was sampled: {samples:?}");
    assert!(
        worst <= 1.1 * f64::from(RATE),
        "aggregate {worst:.0} probes/s in a 5 s window, over 1.1 × {RATE}"
    );
    let total = done["progress"]["probes_total"].as_u64().expect("total");
    let sent: u64 = after.iter().zip(before).map(|(a, b)| a - b).sum();
    assert!(
        sent >= total,
        "the target side counted {sent} SYNs of {total} probes"
    );
    // Every worker took part, each from its own source address.
    let receipts = done["shards"].as_array().expect("receipts");
    assert_eq!(
        receipts.len() as u64,
        done["progress"]["shards"].as_u64().expect("shards")
    );
    let mut by_worker: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in receipts {
        let w = r["vantage"]["worker"].as_str().expect("vantage").to_owned();
        let s = r["vantage"]["source"].as_str().expect("source").to_owned();
        by_worker.entry(w).or_default().insert(s);
    }
    for n in 1..=3 {
        let sources = by_worker
            .get(&format!("w{n}"))
            .unwrap_or_else(|| panic!("w{n} ran no shard: {by_worker:?}"));
        assert_eq!(
            sources,
            &BTreeSet::from([lab_env(&format!("LAB_WORKER_SRC_{n}"))])
        );
        assert!(after[n - 1] > before[n - 1], "nothing counted from w{n}");
    }
    let distributed = c.services();
    assert_eq!(
        distributed, truth,
        "stored services against the ground truth"
    );
    let changes = c.changes();
    assert_each_once(&changes);
    let workers = c.api_ok("GET", "/v1/workers", None);
    assert_eq!(workers.as_array().map(Vec::len), Some(3), "{workers}");
    // Each worker as the API shows it: its version, vantage, heartbeat and work, and its
    // registration in the audit log.
    let audit = c.api_ok("GET", "/v1/audit?limit=1000", None);
    for n in 1..=3 {
        let name = format!("w{n}");
        let w = workers
            .as_array()
            .and_then(|a| a.iter().find(|w| w["name"] == name.as_str()))
            .unwrap_or_else(|| panic!("{name} missing: {workers}"));
        assert_eq!(w["version"], env!("CARGO_PKG_VERSION"), "{w}");
        assert_eq!(
            w["source"],
            lab_env(&format!("LAB_WORKER_SRC_{n}")).as_str(),
            "{w}"
        );
        assert_eq!(w["live"], true, "{w}");
        assert!(w["last_heartbeat"].as_i64().unwrap_or(0) > 0, "{w}");
        assert!(w["shards_done"].as_u64().unwrap_or(0) > 0, "{w}");
        assert!(w["probes_sent"].as_u64().unwrap_or(0) > 0, "{w}");
        assert_eq!(w["flagged"], json!([]), "{w}");
        let registered = audit["items"].as_array().is_some_and(|a| {
            a.iter().any(|r| {
                r["action"] == "worker registered" && r["actor"] == format!("worker {name}")
            })
        });
        assert!(registered, "{name}'s registration is audited: {audit}");
    }
    let metrics = Command::new("ip")
        .args(["netns", "exec", &c.ns, "curl", "-s", "-m", "10"])
        .arg(format!("http://127.0.0.1:{}/metrics", c.port))
        .output()
        .expect("curl");
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    for n in 1..=3 {
        assert!(
            metrics.contains(&format!(
                "aperture_worker_shards_stored_total{{worker=\"w{n}\"}}"
            )),
            "per-worker metrics: {metrics}"
        );
    }

    // The same scan in one process (no bus) stores the same assets and change events.
    let mut alone = Cluster::new(&[]);
    alone.serve.kill();
    alone
        .serve_env
        .retain(|(k, _)| k != "APERTURE_BUS_URL" && k != "APERTURE_BUS_NKEY");
    alone.start_serve();
    let id = alone.scan(NET, 50_000);
    alone.wait_completed(&id);
    assert_eq!(
        alone.services(),
        distributed,
        "in-process against distributed"
    );
    // What changed, and to what. The value before a change is left out: a host whose
    // services fall in two shards passes through one of them first, in shard order. And
    // which of a new host's ports share a shard depends on the shard count (60 here, 16
    // in one process), so a host that appeared in this scan may show a `changed` on its
    // way to its final ports in one run and not the other: those steps are left out too
    // (the final ports were compared above, in the services).
    let kinds = |m: &BTreeMap<(String, String), usize>| -> BTreeSet<(String, String)> {
        let parse = |what: &str| -> Vec<Value> { serde_json::from_str(what).unwrap_or_default() };
        let appeared: BTreeSet<&String> = m
            .keys()
            .filter(|(_, what)| parse(what).first() == Some(&json!("appeared")))
            .map(|(asset, _)| asset)
            .collect();
        m.keys()
            .filter_map(|(asset, what)| {
                let v = parse(what);
                let at = |i: usize| v.get(i).cloned().unwrap_or(Value::Null);
                let step = at(0) == json!("changed") && appeared.contains(asset);
                (!step).then(|| (asset.clone(), json!([at(0), at(1), at(3)]).to_string()))
            })
            .collect()
    };
    let (one, many) = (kinds(&alone.changes()), kinds(&changes));
    assert_eq!(
        one.symmetric_difference(&many).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "change events, in-process against distributed"
    );

    // DNS enumeration through a worker (its resolver is the lab's, reached from the
    // worker's namespace) finds the names one process finds.
    let names = |cl: &Cluster| {
        let v = cl.api_ok(
            "POST",
            "/v1/tenants/acme/scans",
            Some(&json!({"domains": ["corp.test"]})),
        );
        cl.wait_completed(v["id"].as_str().expect("id"));
        cl.present("domain")
    };
    let remote = names(&c);
    assert!(
        remote.len() >= 100,
        "{} names of corp.test through a worker",
        remote.len()
    );
    assert_eq!(
        names(&alone),
        remote,
        "names, in-process against distributed"
    );
}

#[test]
fn killing_a_worker_nats_or_the_coordinator_mid_scan_loses_nothing() {
    kill_mid_scan(&["worker", "nats", "coordinator"]);
}

#[test]
fn a_hung_worker_loses_its_shard_and_a_stopped_one_hands_it_back() {
    kill_mid_scan(&["hung", "sigterm"]);
}

fn kill_mid_scan(victims: &[&str]) {
    if !lab_ready() {
        return;
    }
    let _lab = lab_lock();
    const NET: &str = "198.18.32.0/19";
    let truth = truth_in(NET);
    for &victim in victims {
        let mut c = Cluster::new(&[]);
        for n in 1..=3 {
            c.start_worker(n, &[]);
        }
        let id = c.scan(NET, 10_000);
        // Mid-scan: some shards stored, w1 running one.
        c.wait(
            &format!("{victim}: the scan under way"),
            Duration::from_secs(60),
            || {
                let v = c.scan_view(&id);
                let done = v["progress"]["shards_done"].as_u64().unwrap_or(0);
                let running = c.api_ok("GET", "/v1/workers", None);
                let w1_busy = running.as_array().is_some_and(|a| {
                    a.iter()
                        .any(|w| w["name"] == "w1" && !w["running"].is_null())
                });
                done >= 5 && w1_busy
            },
        );
        match victim {
            "worker" => c.w1().kill(),
            // No progress acks from a stopped process: its shard goes to another worker
            // after the ack wait, and what it sends when it wakes up is stored never.
            "hung" => c.w1().signal("-STOP"),
            "sigterm" => {
                // Right as w1 starts a shard (it logs each), so it holds one to hand back.
                let started = |c: &Cluster| c.worker_log(1).matches(": running ").count();
                let before = started(&c);
                c.wait("w1 to start a shard", Duration::from_secs(30), || {
                    started(&c) > before
                });
                c.w1().signal("-TERM");
                let code = c.w1().wait_exit(Duration::from_secs(20));
                assert_eq!(code, Some(0), "{}", c.worker_log(1));
                assert!(
                    c.worker_log(1).contains("handing back"),
                    "{}",
                    c.worker_log(1)
                );
            }
            "nats" => {
                c.nats.kill();
                std::thread::sleep(Duration::from_secs(1));
                c.nats.restart();
            }
            _ => {
                c.serve.kill();
                std::thread::sleep(Duration::from_secs(1));
                c.start_serve();
            }
        }
        let done = c.wait_completed(&id);
        if victim == "hung" {
            c.w1().signal("-CONT");
            std::thread::sleep(Duration::from_secs(4));
        }
        assert_eq!(c.services(), truth, "after killing the {victim}");
        assert_each_once(&c.changes());
        let receipts = done["shards"].as_array().expect("receipts");
        let shards: BTreeSet<u64> = receipts
            .iter()
            .filter_map(|r| r["shard"].as_u64())
            .collect();
        assert_eq!(
            shards.len(),
            receipts.len(),
            "a shard stored twice after killing the {victim}"
        );
        assert_eq!(
            shards.len() as u64,
            done["progress"]["shards"].as_u64().expect("shards")
        );
        if victim == "worker" {
            // w1's running shard went to another worker; w1 stored nothing after its death.
            let others = receipts
                .iter()
                .filter(|r| r["vantage"]["worker"] != "w1")
                .count();
            assert!(others > 0, "{done}");
        }
    }
}

#[test]
fn a_blocked_vantage_is_flagged_and_its_shards_rerun_elsewhere() {
    if !lab_ready() {
        return;
    }
    let _lab = lab_lock();
    const NET: &str = "198.18.64.0/18";
    let truth = truth_in(NET);
    let mut c = Cluster::new(&[]);
    for n in 1..=3 {
        c.start_worker(n, &[]);
    }
    let tgt = lab_env("LAB_TGT_NS");
    let blocked = lab_env("LAB_WORKER_SRC_2");
    let nft = |op: &str| {
        let s = Command::new("ip")
            .args([
                "netns",
                "exec",
                &tgt,
                "nft",
                op,
                "element",
                "inet",
                "aplab_workers",
                "blocked",
            ])
            .arg(format!("{{ {blocked} }}"))
            .status()
            .expect("nft runs");
        assert!(s.success(), "nft {op} element");
    };
    nft("add");
    struct Unblock<F: FnMut()>(F);
    impl<F: FnMut()> Drop for Unblock<F> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    let _unblock = Unblock(|| {
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &tgt,
                "nft",
                "delete",
                "element",
                "inet",
                "aplab_workers",
                "blocked",
            ])
            .arg(format!("{{ {blocked} }}"))
            .status();
    });
    let id = c.scan(NET, 30_000);
    let done = c.wait_completed(&id);
    assert_eq!(
        done["workers"]["flagged"],
        json!(["w2"]),
        "the blocked vantage is flagged: {}",
        done["workers"]
    );
    assert_eq!(
        c.services(),
        truth,
        "its shards rerun elsewhere recover what it missed"
    );
    assert_each_once(&c.changes());
    // No receipt of the finished scan is w2's: every one it stored was reopened and rerun.
    let w2 = done["shards"]
        .as_array()
        .expect("receipts")
        .iter()
        .filter(|r| r["vantage"]["worker"] == "w2")
        .count();
    assert_eq!(w2, 0, "{}", done["shards"]);
    let workers = c.api_ok("GET", "/v1/workers", None);
    let flagged = workers
        .as_array()
        .and_then(|a| a.iter().find(|w| w["name"] == "w2"))
        .map(|w| w["flagged"].clone());
    assert_eq!(flagged, Some(json!([format!("acme/{id}")])), "{workers}");
    let audit = c.api_ok("GET", "/v1/audit?limit=1000", None);
    let said = audit["items"].as_array().is_some_and(|a| {
        a.iter()
            .any(|r| r["action"] == "vantage flagged" && r["actor"] == "worker w2")
    });
    assert!(said, "the flag is audited: {audit}");
}

#[test]
fn a_shard_no_worker_can_run_fails_visibly_and_a_retry_completes_it() {
    if !lab_ready() {
        return;
    }
    let _lab = lab_lock();
    const NET: &str = "198.18.128.0/22";
    let mut c = Cluster::new(&[("APERTURE_BUS_MAX_DELIVER", "2")]);
    // The only worker runs connect probes only: every SYN shard comes back.
    c.start_worker(1, &["--no-syn"]);
    let id = c.scan(NET, 20_000);
    let mut failed = Value::Null;
    c.wait(
        "failed shards shown on the scan",
        Duration::from_secs(60),
        || {
            failed = c.scan_view(&id);
            let map = failed["workers"]["shard_map"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            !map.is_empty() && map.iter().all(|s| s["state"] == "failed")
        },
    );
    assert!(
        failed["failed_shards"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{failed}"
    );
    assert_eq!(
        failed["state"], "running",
        "a scan with failed shards waits: {failed}"
    );
    assert!(c.worker_log(1).contains("--no-syn"), "{}", c.worker_log(1));
    let (status, _) = c.call("POST", "/v1/tenants/acme/scans/scan-999/retry", None);
    assert_eq!(status, 404);
    // The operator replaces the worker that cannot run SYN with one that can.
    if let Some(w) = c.workers.get_mut(&1) {
        w.kill();
    }
    c.start_worker(2, &[]);
    c.api_ok("POST", &format!("/v1/tenants/acme/scans/{id}/retry"), None);
    c.wait_completed(&id);
    assert_eq!(c.services(), truth_in(NET));
    let (status, body) = c.call("POST", &format!("/v1/tenants/acme/scans/{id}/retry"), None);
    assert_eq!(status, 409, "{body}");
}

/// Not a lab test: a worker's credential and what it publishes, on the loopback.
#[test]
fn a_wrong_key_is_refused_and_results_outside_the_shard_are_refused_and_audited() {
    if let Some(why) = nats_unavailable() {
        if std::env::var_os("APERTURE_LAB_REQUIRED").is_some() {
            panic!("{why}");
        }
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let bus = dir.path().join("bus");
    let init = Command::new(bin())
        .args(["bus", "init", "--workers", "w1", "--dir"])
        .arg(&bus)
        .output()
        .expect("bus init");
    assert!(init.status.success(), "{}", stderr(&init));
    let nats = NatsServer::start(
        &bus.join("nats-server.conf"),
        "127.0.0.1",
        free_port(),
        None,
    );
    let url = nats.url("127.0.0.1");
    // A key the server does not list: the worker stops at once and says why.
    let other = dir.path().join("other");
    let o = Command::new(bin())
        .args(["bus", "init", "--workers", "w1", "--dir"])
        .arg(&other)
        .output()
        .expect("bus init");
    assert!(o.status.success());
    let started = Instant::now();
    let refused = Command::new(bin())
        .args(["worker", "--bus", &url, "--name", "w1", "--nkey"])
        .arg(other.join("worker-w1.nk"))
        .output()
        .expect("worker runs");
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("refused the credential"),
        "{}",
        stderr(&refused)
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    let bad = Command::new(bin())
        .args(["worker", "--bus", &url, "--name", "w.1"])
        .output()
        .expect("worker runs");
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));

    // A coordinator on the loopback, a scan of listeners this test opens.
    let data = dir.path().join("data");
    admin_cli(&data, &["tenant-create", "acme", "Acme"]);
    let (out, _) = admin_cli(&data, &["token-create", "--name", "ops", "--role", "admin"]);
    let token = out.lines().last().expect("token").trim().to_owned();
    let port = free_port();
    let log = dir.path().join("serve.log");
    let file = std::fs::File::create(&log).expect("log");
    let _serve = Killed(Some(
        Command::new(bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(&data)
            .env("APERTURE_BUS_URL", &url)
            .env("APERTURE_BUS_NKEY", bus.join("coordinator.nk"))
            .env("APERTURE_ENGINE", "connect")
            .env_remove("APERTURE_DATA_DIR")
            .stderr(file)
            .spawn()
            .expect("serve"),
    ));
    wait_for(&log, "listening:", 1);
    let agent = ureq::Agent::new_with_defaults();
    let api = |method: &str, path: &str, body: Option<Value>| -> Value {
        let url = format!("http://127.0.0.1:{port}{path}");
        let auth = format!("Bearer {token}");
        let r = match (method, body) {
            ("PUT", Some(b)) => agent.put(&url).header("Authorization", &auth).send_json(b),
            ("POST", Some(b)) => agent.post(&url).header("Authorization", &auth).send_json(b),
            _ => agent.get(&url).header("Authorization", &auth).call(),
        };
        r.expect("request").body_mut().read_json().expect("json")
    };
    api(
        "PUT",
        "/v1/tenants/acme/scope",
        Some(json!({"cidrs": ["127.0.0.0/30"], "allow_special": true})),
    );
    let scan = api(
        "POST",
        "/v1/tenants/acme/scans",
        Some(json!({"targets": ["127.0.0.1"], "ports": "1-100", "rate": 1000, "probe": "connect"})),
    );
    let id = scan["id"].as_str().expect("id").to_owned();
    // w1's key, used by this test as a compromised worker would: a result for an
    // address of another tenant, under shard 0 of this scan.
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        use aperture_bus::auth::{connect, BusAuth};
        use aperture_bus::wire::{split_parts, ResultPart, WireObservation};
        let auth = BusAuth {
            nkey_file: Some(bus.join("worker-w1.nk")),
            ..BusAuth::default()
        };
        let client = connect(&url, &auth, "w1", Some("_INBOX_w1"))
            .await
            .expect("w1 connects");
        let js = aperture_bus::async_nats::jetstream::new(client);
        let forged: WireObservation = serde_json::from_value(json!({
            "observation": "port", "ip": "203.0.113.9", "port": 22, "proto": "tcp",
            "state": "open", "reason": "syn-ack", "ttl": 64,
            "timestamp": "2026-12-07T00:00:00Z", "scan_id": id, "probe": "syn"
        }))
        .expect("observation");
        let head = ResultPart {
            tenant: "acme".into(),
            scan: id.clone(),
            shard: 0,
            run: "forged".into(),
            part: 0,
            last: true,
            source: None,
            probes_sent: 1,
            observations: vec![],
        };
        let parts = split_parts(&head, &[forged]).expect("parts");
        aperture_bus::lease::publish_parts(&js, "w1", parts)
            .await
            .expect("published");
    });
    let start = Instant::now();
    loop {
        let audit = api("GET", "/v1/audit?limit=1000", None);
        let refused = audit["items"].as_array().and_then(|a| {
            a.iter()
                .find(|r| r["action"] == "results refused" && r["actor"] == "worker w1")
                .cloned()
        });
        if let Some(r) = refused {
            assert!(
                r["outcome"]
                    .as_str()
                    .is_some_and(|o| o.contains("203.0.113.9")),
                "{r}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no refusal audited: {audit}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let assets = api("GET", "/v1/tenants/acme/assets?limit=1000", None);
    let injected = assets["items"].as_array().is_some_and(|a| {
        a.iter()
            .any(|x| x["key"].as_str().is_some_and(|k| k.contains("203.0.113.9")))
    });
    assert!(!injected, "a forged result became an asset: {assets}");
}
