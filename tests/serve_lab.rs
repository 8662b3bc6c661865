//! The service end to end, against the lab: the real binary runs in the lab's scanner
//! namespace and is driven over HTTP by curl in that namespace, as an operator would.
//!
//! An admin creates a tenant, its scope and the other roles' tokens; an analyst scans;
//! a viewer sees the assets and an unsanctioned finding; a sanction closes it; a real
//! redis the test controls is shut, a remediator claims the fix, the verification scan
//! closes the finding as verified; redis comes back and the finding reopens; the change
//! feed shows each step.

mod common;

use common::serve::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An address the lab's target namespace answers for (198.18.0.0/16 is local there).
const REDIS_IP: &str = "198.18.77.30";
/// The lab's nginx (see scripts/lab.d/20-services.sh).
const NGINX_IP: &str = "198.19.1.10";
/// Probes per stored shard in this service: small, so that scans have many shards.
const SHARD_PROBES: u64 = 1024;
/// The many-shard scan's block: 1024 addresses of the lab's ground truth, no others'.
const BLOCK: (&str, [u8; 4], u32) = ("198.18.80.0/22", [198, 18, 80, 0], 1024);

#[test]
fn tenant_scan_findings_sanction_verification_and_reopening() {
    if let Some(why) = lab_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let _lock = lab_lock();
    let scan_ns = lab_env("LAB_SCAN_NS");
    let tgt_ns = lab_env("LAB_TGT_NS");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_s = data.to_string_lossy().into_owned();

    // Bootstrap: the first admin token, written before the service starts.
    let out = aperture(&[
        "admin",
        "--data",
        &data_s,
        "token-create",
        "--name",
        "root",
        "--role",
        "admin",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let admin = stdout(&out).trim().to_owned();
    assert!(
        admin.starts_with("apt_") && admin.len() >= 4 + 32,
        "{admin}"
    );

    let port = 20000 + (std::process::id() % 20000) as u16;
    let service = Command::new("ip")
        .args(["netns", "exec", &scan_ns])
        .arg(bin())
        .args([
            "serve",
            "--data",
            &data_s,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("APERTURE_SCHEDULER_SECS", "1")
        .env("APERTURE_SYN_WAIT_SECS", "1")
        .env("APERTURE_SHARD_PROBES", SHARD_PROBES.to_string())
        .env("APERTURE_RESOLVERS", lab_dns_server())
        .env("APERTURE_DNS_QPS", "5000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("service starts");
    let _service = Killed(service);
    let api = Api {
        ns: scan_ns.clone(),
        port,
    };
    api.wait_until("the service", Duration::from_secs(20), || {
        api.call("GET", "/healthz", "", None).0 == 200
    });

    // Admin: tenant, scope (with the special-range opt-in the lab needs), tokens.
    api.ok(
        "POST",
        "/v1/tenants",
        &admin,
        Some(&json!({"id": "acme", "name": "Acme"})),
    );
    api.ok(
        "PUT",
        "/v1/tenants/acme/scope",
        &admin,
        Some(&json!({"cidrs": ["198.19.1.0/24", "198.18.77.0/24"], "domains": ["corp.test"], "allow_special": true})),
    );
    let token = |role: &str| api.token(&admin, role);
    let (analyst, viewer, remediator) = (token("analyst"), token("viewer"), token("remediator"));

    // A viewer may not scan; an out-of-scope target is refused before anything runs.
    let req = json!({"targets": [NGINX_IP, REDIS_IP], "ports": "80,6379", "rate": 500});
    assert_eq!(
        api.call("POST", "/v1/tenants/acme/scans", &viewer, Some(&req))
            .0,
        403
    );
    let (status, refused) = api.call(
        "POST",
        "/v1/tenants/acme/scans",
        &analyst,
        Some(&json!({"targets": ["198.19.2.1"], "ports": "80"})),
    );
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["refused"][0]["target"], "198.19.2.1");

    // The per-tenant cap (4 queued or running): a fifth scan is refused with 429; the
    // four are cancelled and mark nothing.
    let slow = json!({"targets": [NGINX_IP], "ports": "1-2000", "rate": 1, "grab": false});
    let slow_ids: Vec<String> = (0..4)
        .map(|_| {
            api.ok("POST", "/v1/tenants/acme/scans", &analyst, Some(&slow))["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    // Progress of a running scan: probes sent of total, rate and time left.
    api.wait_until(
        "a slow scan to report progress",
        Duration::from_secs(20),
        || {
            slow_ids.iter().any(|id| {
                let v = api.ok(
                    "GET",
                    &format!("/v1/tenants/acme/scans/{id}"),
                    &viewer,
                    None,
                );
                let p = &v["progress"];
                v["state"] == "running"
                    && p["probes_total"] == 2000
                    && p["probes_sent"].as_u64().is_some_and(|n| n >= 1)
                    && p["rate"].as_f64().is_some_and(|r| r > 0.0)
                    && p["eta_secs"].as_f64().is_some_and(|e| e > 100.0)
            })
        },
    );
    let (status, capped) = api.call("POST", "/v1/tenants/acme/scans", &analyst, Some(&slow));
    assert_eq!(status, 429, "{capped}");
    assert!(
        capped["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("cap"),
        "{capped}"
    );
    for id in &slow_ids {
        let v = api.ok(
            "POST",
            &format!("/v1/tenants/acme/scans/{id}/cancel"),
            &analyst,
            None,
        );
        assert_eq!(v["state"], "cancelled", "{v}");
    }

    many_shards_one_wait(&api, &admin);

    let redis_dir = dir.path().join("redis");
    std::fs::create_dir_all(&redis_dir).expect("redis dir");
    let redis = start_redis(&tgt_ns, &redis_dir, REDIS_IP);

    // What the service sets is never taken from a body: the tenant, a scan's state, a
    // sanction's id.
    for (path, body) in [
        (
            "/v1/tenants/acme/scans",
            json!({"targets": [NGINX_IP], "ports": "80", "tenant": "other"}),
        ),
        (
            "/v1/tenants/acme/scans",
            json!({"targets": [NGINX_IP], "ports": "80", "state": "completed"}),
        ),
        (
            "/v1/tenants/acme/sanctions",
            json!({"id": "s-9", "match": {"port": 80}, "owner": "x", "reason": "y"}),
        ),
    ] {
        let (status, v) = api.call("POST", path, &analyst, Some(&body));
        assert_eq!(status, 400, "{body} -> {v}");
        assert!(
            v["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("unknown field"),
            "{v}"
        );
    }

    // Analyst scans; viewer sees the assets.
    let scan = api.ok("POST", "/v1/tenants/acme/scans", &analyst, Some(&req));
    let scan1 = scan["id"].as_str().expect("scan id").to_owned();
    api.wait_scan(&analyst, &scan1);
    let done = api.ok(
        "GET",
        &format!("/v1/tenants/acme/scans/{scan1}"),
        &viewer,
        None,
    );
    assert_eq!(
        done["coverage"]["ports"],
        json!([[80, 80], [6379, 6379]]),
        "{done}"
    );
    let shards = done["shards"].as_array().expect("shards");
    assert_eq!(
        shards.len() as u64,
        done["progress"]["shards"].as_u64().unwrap_or(0)
    );
    assert!(shards.iter().all(|s| s["range"].is_array()), "{done}");
    let nginx = format!("service:{NGINX_IP}:80/tcp");
    let redis_key = format!("service:{REDIS_IP}:6379/tcp");
    let assets = api.ok("GET", "/v1/tenants/acme/assets?kind=service", &viewer, None);
    let items = assets["items"].as_array().expect("items");
    let product = |key: &str| {
        items
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["facts"]["product"].clone())
    };
    assert_eq!(product(&nginx), Some(json!("nginx")), "{assets}");
    assert_eq!(product(&redis_key), Some(json!("Redis")), "{assets}");

    // Unsanctioned nginx: open. The analyst sanctions it: closed as sanctioned.
    let f = api
        .finding(&viewer, "unsanctioned", &nginx)
        .expect("unsanctioned finding");
    assert_eq!(f["state"], "open");
    let fid = f["id"].as_str().expect("id").to_owned();
    api.ok(
        "POST",
        "/v1/tenants/acme/sanctions",
        &analyst,
        Some(&json!({"match": {"net": format!("{NGINX_IP}/32"), "port": 80}, "owner": "web team", "reason": "public site", "ticket": "CHG-7"})),
    );
    api.wait_until(
        "the sanction to close the finding",
        Duration::from_secs(20),
        || {
            api.ok(
                "GET",
                &format!("/v1/tenants/acme/findings/{fid}"),
                &viewer,
                None,
            )["state"]
                == "closed-sanctioned"
        },
    );

    // Redis is risky. It is shut; the remediator claims the fix; the verification scan
    // no longer sees it: closed as verified.
    let risky = api
        .finding(&viewer, "risky-exposure", &redis_key)
        .expect("risky finding");
    let rid = risky["id"].as_str().expect("id").to_owned();
    drop(redis);
    let (status, refused) = api.call(
        "POST",
        &format!("/v1/tenants/acme/findings/{rid}/transitions"),
        &remediator,
        Some(&json!({"to": "closed-verified", "comment": "trust me"})),
    );
    assert_eq!(status, 409, "closing without a scan is refused: {refused}");
    let fixed = api.ok(
        "POST",
        &format!("/v1/tenants/acme/findings/{rid}/transitions"),
        &remediator,
        Some(&json!({"to": "fixed", "comment": "redis removed"})),
    );
    let verify_scan = fixed["verification_scan"]
        .as_str()
        .unwrap_or_else(|| panic!("a verification scan started: {fixed}"))
        .to_owned();
    api.wait_scan(&analyst, &verify_scan);
    // One verification scan, though the handler and the scheduler both see the request.
    std::thread::sleep(Duration::from_millis(1500));
    let scans = api.ok("GET", "/v1/tenants/acme/scans", &viewer, None);
    let verifying = scans
        .as_array()
        .expect("scans")
        .iter()
        .filter(|s| s["purpose"] == format!("verify {rid}").as_str())
        .count();
    assert_eq!(verifying, 1, "{scans}");
    let v = api.ok(
        "GET",
        &format!("/v1/tenants/acme/scans/{verify_scan}"),
        &viewer,
        None,
    );
    assert_eq!(
        v["request"]["targets"],
        json!([format!("{REDIS_IP}/32")]),
        "{v}"
    );
    api.wait_until("closed-verified", Duration::from_secs(20), || {
        api.ok(
            "GET",
            &format!("/v1/tenants/acme/findings/{rid}"),
            &viewer,
            None,
        )["state"]
            == "closed-verified"
    });

    // Redis comes back; the next scan reopens the finding.
    let _redis = start_redis(&tgt_ns, &redis_dir, REDIS_IP);
    // This time with the connect probe instead of the service's SYN engine.
    let mut connect_req = req.clone();
    connect_req["probe"] = json!("connect");
    let scan = api.ok(
        "POST",
        "/v1/tenants/acme/scans",
        &analyst,
        Some(&connect_req),
    );
    assert_eq!(scan["request"]["probe"], "connect", "{scan}");
    let scan3 = scan["id"].as_str().expect("scan id").to_owned();
    api.wait_scan(&analyst, &scan3);
    let back = api.ok(
        "GET",
        &format!("/v1/tenants/acme/findings/{rid}"),
        &viewer,
        None,
    );
    assert_eq!(back["state"], "open", "{back}");
    assert!(back["reopened"].as_u64().unwrap_or(0) >= 1, "{back}");
    let steps: Vec<&str> = back["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .filter_map(|t| t["to"].as_str())
        .collect();
    assert_eq!(steps, vec!["open", "fixed", "closed-verified", "open"]);

    // The change feed tells the redis story in order: appeared, gone, appeared.
    let feed = api.ok("GET", "/v1/tenants/acme/changes?limit=1000", &viewer, None);
    let redis_events: Vec<(String, String)> = feed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|c| c["asset"] == redis_key.as_str() && c["change"] != "changed")
        .map(|c| {
            (
                c["change"].as_str().unwrap_or_default().to_owned(),
                c["scan"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        redis_events,
        vec![
            ("appeared".to_owned(), scan1.clone()),
            ("disappeared".to_owned(), verify_scan.clone()),
            ("appeared".to_owned(), scan3.clone()),
        ]
    );
    // Nginx stayed: one appearance, no disappearance.
    let nginx_events = feed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|c| c["asset"] == nginx.as_str() && c["change"] != "changed")
        .count();
    assert_eq!(nginx_events, 1);

    // The audit log holds every mutating call, the refused ones too.
    let audit = api.ok("GET", "/v1/audit?limit=1000", &admin, None);
    let actions: Vec<(String, u64)> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or_default().to_owned(),
                r["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(
        actions.contains(&("POST /v1/tenants/acme/scans".into(), 403)),
        "{actions:?}"
    );
    assert!(actions.contains(&(
        format!("POST /v1/tenants/acme/findings/{rid}/transitions"),
        409
    )));
    let report = api.ok("GET", "/v1/tenants/acme/reports/summary", &viewer, None);
    assert_eq!(
        report["closed_verified"].as_u64(),
        Some(0),
        "reopened since: {report}"
    );
    assert!(
        report["services_by_risk"]["cache"].as_u64() >= Some(1),
        "{report}"
    );

    // DNS enumeration through the service, against the lab's Knot: names become domain
    // assets, and the open zone transfer and dangling CNAMEs become findings.
    let dns = api.ok(
        "POST",
        "/v1/tenants/acme/scans",
        &analyst,
        Some(&json!({"domains": ["corp.test"]})),
    );
    let dns_scan = dns["id"].as_str().expect("id").to_owned();
    api.wait_scan(&analyst, &dns_scan);
    let names = api.ok(
        "GET",
        "/v1/tenants/acme/assets?kind=domain&limit=1000",
        &viewer,
        None,
    );
    let count = names["items"].as_array().map_or(0, Vec::len);
    assert!(count >= 100, "{count} domain assets from corp.test");
    let axfr = api.finding(&viewer, "open-zone-transfer", "domain:corp.test");
    assert!(
        axfr.is_some_and(|f| f["state"] == "open"),
        "open zone transfer finding"
    );
    let dangling = api.ok(
        "GET",
        "/v1/tenants/acme/findings?rule=dangling-cname&limit=1000",
        &viewer,
        None,
    );
    assert!(
        !dangling["items"].as_array().is_none_or(Vec::is_empty),
        "dangling CNAME findings: {dangling}"
    );

    // A recurring scan: the scheduler starts it when due and records it.
    let sched = api.ok(
        "POST",
        "/v1/tenants/acme/schedules",
        &analyst,
        Some(&json!({"name": "hourly nginx", "request": {"targets": [NGINX_IP], "ports": "80"}, "interval_secs": 3600})),
    );
    let sid = sched["id"].as_str().expect("id").to_owned();
    let mut scheduled = String::new();
    api.wait_until(
        "the scheduler to start the schedule",
        Duration::from_secs(30),
        || {
            let s = api.ok(
                "GET",
                &format!("/v1/tenants/acme/schedules/{sid}"),
                &viewer,
                None,
            );
            scheduled = s["last_scan"].as_str().unwrap_or_default().to_owned();
            !scheduled.is_empty() && s["next_run"].as_i64() > sched["next_run"].as_i64()
        },
    );
    api.wait_scan(&analyst, &scheduled);
    let run = api.ok(
        "GET",
        &format!("/v1/tenants/acme/scans/{scheduled}"),
        &viewer,
        None,
    );
    assert_eq!(run["purpose"], format!("schedule {sid}"), "{run}");

    // Prometheus metrics: scans, probes, results, ingest, API latency.
    let out = Command::new("ip")
        .args(["netns", "exec", &api.ns, "curl", "-s", "-m", "20"])
        .arg(format!("http://127.0.0.1:{}/metrics", api.port))
        .output()
        .expect("curl runs");
    let metrics = String::from_utf8_lossy(&out.stdout);
    for name in [
        "aperture_scans_started_total",
        "aperture_scans_completed_total",
        "aperture_probes_sent_total",
        "aperture_results_total",
        "aperture_ingest_batches_total",
        "aperture_ingest_seconds_bucket",
        "aperture_http_request_seconds_bucket",
    ] {
        let value = metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, f64::max);
        assert!(value > 0.0, "{name} missing or zero in:\n{metrics}");
    }
}

/// A scan by the admin for tenant "beta", waited for: (its final view, POST to
/// "completed").
fn beta_scan(api: &Api, admin: &str, body: &Value) -> (Value, Duration) {
    let began = Instant::now();
    let scan = api.ok("POST", "/v1/tenants/beta/scans", admin, Some(body));
    let id = scan["id"].as_str().expect("scan id").to_owned();
    let path = format!("/v1/tenants/beta/scans/{id}");
    let mut done = Value::Null;
    api.wait_until(&format!("scan {id}"), Duration::from_secs(90), || {
        done = api.ok("GET", &path, admin, None);
        assert_ne!(done["state"], "failed", "scan failed: {done}");
        done["state"] == "completed"
    });
    (done, began.elapsed())
}

/// A completed multi-shard scan of `space` stored every shard once, each receipt with
/// exactly its shard's range of the permutation and exactly the `open` ports whose
/// probes lie in that range: the replies of one engine run over all shards were routed
/// to the shards that sent their probes. Returns the number of shards.
fn assert_shard_receipts(
    done: &Value,
    space: &aperture_mapper::space::TargetSpace,
    open: &[(std::net::IpAddr, u16)],
) -> u64 {
    use aperture_mapper::permute::Permutation;
    use aperture_mapper::space::Locator;

    let total = space.size();
    let progress = &done["progress"];
    assert_eq!(progress["probes_total"].as_u64(), Some(total), "{done}");
    assert_eq!(progress["probes_sent"].as_u64(), Some(total), "{done}");
    let n = total.div_ceil(SHARD_PROBES);
    assert_eq!(progress["shards"].as_u64(), Some(n), "{done}");
    assert_eq!(progress["shards_done"].as_u64(), Some(n), "{done}");
    let order = Permutation::new(total, done["seed"].as_u64().expect("seed"));
    let locate = Locator::new(space, order);
    let range = |k: u64| (total * k / n, total * (k + 1) / n);
    let mut expected = vec![0u64; n as usize];
    for &(ip, port) in open {
        let pos = locate.position(ip, port).expect("in the space");
        let k = (0..n).find(|&k| (range(k).0..range(k).1).contains(&pos));
        expected[k.expect("in a shard") as usize] += 1;
    }
    let mut receipts: Vec<&Value> = done["shards"].as_array().expect("shards").iter().collect();
    receipts.sort_by_key(|r| r["shard"].as_u64());
    assert_eq!(receipts.len() as u64, n, "one receipt per shard: {done}");
    for (k, r) in receipts.iter().enumerate() {
        let (start, end) = range(k as u64);
        assert_eq!(r["shard"].as_u64(), Some(k as u64), "{r}");
        assert_eq!(r["range"], json!([start, end]), "shard {k}: its range");
        assert_eq!(
            r["observations"].as_u64(),
            Some(expected[k]),
            "shard {k}: the open ports probed in its range"
        );
    }
    n
}

/// Scans of many shards through the service, for a tenant of its own ("beta").
///
/// SYN, no grabs, over a block of the lab's ground truth: it completes with every shard
/// stored once with its exact range and exactly its open ports (see
/// [`assert_shard_receipts`]), the block's services and nothing else — and late replies
/// were waited for once for the scan, not once per shard (16 shards x 1 s).
///
/// With grabs, over the lab's real services: the same receipts (a shard is stored only
/// once the grabs of its open ports are over), and the services identified.
fn many_shards_one_wait(api: &Api, admin: &str) {
    use aperture_mapper::intervals::IntervalSet;
    use aperture_mapper::space::TargetSpace;
    use std::net::{IpAddr, Ipv4Addr};

    let (net, first, count) = BLOCK;
    api.ok(
        "POST",
        "/v1/tenants",
        admin,
        Some(&json!({"id": "beta", "name": "Beta"})),
    );
    api.ok(
        "PUT",
        "/v1/tenants/beta/scope",
        admin,
        Some(&json!({"cidrs": [net, "198.19.1.0/24"], "allow_special": true})),
    );
    let ports = lab_env("LAB_PORTS");
    let (done, took) = beta_scan(
        api,
        admin,
        &json!({"targets": [net], "ports": ports, "rate": 50000, "grab": false, "probe": "syn"}),
    );
    let mut port_list: Vec<u16> = ports
        .split(',')
        .map(|p| p.trim().parse().expect("a lab port"))
        .collect();
    port_list.sort_unstable();
    let lo = u32::from(Ipv4Addr::from(first));
    let space = TargetSpace::new(
        IntervalSet::from_ranges([(lo, lo + count - 1)]),
        IntervalSet::new(),
        port_list,
    )
    .expect("the scan's space");
    let truth: Vec<(IpAddr, u16)> = ground_truth()
        .into_iter()
        .filter(|&(ip, port)| {
            space.ports().contains(&port)
                && matches!(ip, IpAddr::V4(a) if (lo..lo + count).contains(&u32::from(a)))
        })
        .collect();
    assert!(truth.len() >= 4, "ground truth in {net}: {truth:?}");
    let n = assert_shard_receipts(&done, &space, &truth);
    assert!(n >= 16, "{n} shards");
    // One shard after another, each with its own 1 s wait, took at least n seconds.
    assert!(
        took < Duration::from_secs(n / 2),
        "{n} shards took {took:?}: late replies must be waited for once per scan"
    );
    let assets = api.ok(
        "GET",
        "/v1/tenants/beta/assets?kind=service&limit=1000",
        admin,
        None,
    );
    let found: BTreeSet<String> = assets["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["key"].as_str().map(str::to_owned))
        .collect();
    let want: BTreeSet<String> = truth
        .iter()
        .map(|(ip, port)| format!("service:{ip}:{port}/tcp"))
        .collect();
    assert_eq!(found, want, "the block's services, nothing else");

    // With grabs: the lab's real services (198.19.1.0/24, scripts/lab.d/20-services.sh,
    // and, when those hooks ran, 22-products.sh's, 24-more.sh's, 23-open.sh's and
    // 29-smb.sh's: the same ip/port/proto keys, open ports of this scan too).
    let mut text =
        std::fs::read_to_string(lab_dir().join("services.jsonl")).expect("services.jsonl");
    for more in ["products.jsonl", "more.jsonl", "open.jsonl", "smb.jsonl"] {
        text.push('\n');
        text.push_str(&std::fs::read_to_string(lab_dir().join(more)).unwrap_or_default());
    }
    // TCP services, each (address, port) once (DNS is listed for UDP too).
    let services: BTreeSet<(IpAddr, u16)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).expect("a services.jsonl line");
            let ip = v["ip"].as_str().and_then(|s| s.parse().ok()).expect("ip");
            let port = v["port"].as_u64().expect("port") as u16;
            (v["proto"] == "tcp").then_some((ip, port))
        })
        .collect();
    let mut service_ports: Vec<u16> = services.iter().map(|&(_, p)| p).collect();
    service_ports.sort_unstable();
    service_ports.dedup();
    let services_lo = u32::from(Ipv4Addr::new(198, 19, 1, 0));
    let space = TargetSpace::new(
        IntervalSet::from_ranges([(services_lo, services_lo + 255)]),
        IntervalSet::new(),
        service_ports.clone(),
    )
    .expect("the services' space");
    let inside: Vec<(IpAddr, u16)> = services
        .iter()
        .copied()
        .filter(|&(ip, _)| match ip {
            IpAddr::V4(a) => (services_lo..=services_lo + 255).contains(&u32::from(a)),
            IpAddr::V6(_) => false,
        })
        .collect();
    let list: Vec<String> = service_ports.iter().map(u16::to_string).collect();
    let (done, _) = beta_scan(
        api,
        admin,
        &json!({"targets": ["198.19.1.0/24"], "ports": list.join(","), "rate": 20000, "grab": true, "probe": "syn"}),
    );
    let assets = api.ok(
        "GET",
        "/v1/tenants/beta/assets?kind=service&net=198.19.1.0/24&limit=1000",
        admin,
        None,
    );
    let found: BTreeSet<String> = assets["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["key"].as_str().map(str::to_owned))
        .collect();
    let want: BTreeSet<String> = inside
        .iter()
        .map(|(ip, port)| format!("service:{ip}:{port}/tcp"))
        .collect();
    assert_eq!(found, want, "the lab's services: {done}");
    let n = assert_shard_receipts(&done, &space, &inside);
    assert!(n >= 3, "{n} shards");
    let nginx = api.ok(
        "GET",
        &format!("/v1/tenants/beta/assets/service:{NGINX_IP}:80"),
        admin,
        None,
    );
    assert_eq!(nginx["asset"]["facts"]["product"], "nginx", "{nginx}");
}
