//! Unauthenticated-access findings end to end: `aperture serve` in the lab's scanner
//! namespace scans the open services of `scripts/lab.d/23-open.sh` and
//! `scripts/lab.d/29-smb.sh` (198.19.1.180-250: each open service beside a twin that
//! asks for credentials) for two tenants, one that opted in to the checks that log in
//! and one that did not, and the findings are compared with the hooks' ground truth
//! (`open.jsonl`, `smb.jsonl`), service by service.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
}

impl Api {
    fn call(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
        curl_json(&self.ns, self.port, method, path, token, body)
    }

    fn ok(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.call(method, path, token, body);
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
}

/// The hooks' ground truth (23-open.sh's, then 29-smb.sh's), or why the test cannot run.
fn truth() -> Result<Vec<Value>, String> {
    if let Some(why) = lab_unavailable() {
        return Err(why);
    }
    let mut rows = Vec::new();
    for file in ["open.jsonl", "smb.jsonl"] {
        let path = lab_dir().join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => rows.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str::<Value>(l).expect("a ground-truth line")),
            ),
            Err(e) => {
                let why = format!("lab open services are not up ({}: {e})", path.display());
                assert!(
                    std::env::var("APERTURE_LAB_REQUIRED").as_deref() != Ok("1"),
                    "APERTURE_LAB_REQUIRED=1 but {why}"
                );
                return Err(why);
            }
        }
    }
    Ok(rows)
}

/// The severity the default policy gives each check.
fn severity(check: &str) -> &'static str {
    match check {
        "directory-listing" | "ftp-anonymous" | "ldap-anonymous" | "smb-null-session" => "medium",
        "prometheus" | "grafana" => "high",
        _ => "critical",
    }
}

#[test]
fn open_services_become_findings_and_login_checks_need_the_opt_in() {
    let truth = match truth() {
        Ok(t) => t,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let _lock = lab_lock();
    let scan_ns = lab_env("LAB_SCAN_NS");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (admin, _) = admin_cli(
        &data,
        &["token-create", "--name", "root", "--role", "admin"],
    );
    let admin = admin.trim().to_owned();

    let port = 20000 + (std::process::id() % 20000) as u16;
    let service = Command::new("ip")
        .args(["netns", "exec", &scan_ns])
        .arg(bin())
        .args(["serve", "--data"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("APERTURE_SCHEDULER_SECS", "1")
        .env("APERTURE_SYN_WAIT_SECS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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

    for tenant in ["optin", "plain"] {
        api.ok(
            "POST",
            "/v1/tenants",
            &admin,
            Some(&json!({"id": tenant, "name": tenant})),
        );
        api.ok(
            "PUT",
            &format!("/v1/tenants/{tenant}/scope"),
            &admin,
            Some(&json!({"cidrs": ["198.19.1.0/24"], "allow_special": true})),
        );
    }
    // The opt-in: off by default, turned on through the policy, audited by name.
    let mut policy = api.ok("GET", "/v1/tenants/optin/policy", &admin, None);
    assert_eq!(policy["login_checks"], false, "{policy}");
    assert_eq!(policy["severities"]["unauthenticated-access"], "critical");
    policy["login_checks"] = json!(true);
    api.ok("PUT", "/v1/tenants/optin/policy", &admin, Some(&policy));
    let audit = api.ok("GET", "/v1/audit?limit=1000", &admin, None);
    let opt_in: Vec<&Value> = audit["items"]
        .as_array()
        .expect("audit items")
        .iter()
        .filter(|r| r["action"] == "login checks enabled for tenant optin")
        .collect();
    assert_eq!(opt_in.len(), 1, "one audit record of the opt-in: {audit}");
    assert_eq!(opt_in[0]["tenant"], "optin");
    assert!(
        opt_in[0]["actor"]
            .as_str()
            .is_some_and(|a| a.contains("root")),
        "{}",
        opt_in[0]
    );

    let mut ports: Vec<u64> = truth.iter().filter_map(|t| t["port"].as_u64()).collect();
    ports.sort_unstable();
    ports.dedup();
    let ports: Vec<String> = ports.iter().map(u64::to_string).collect();
    let request = json!({
        "targets": ["198.19.1.180-198.19.1.250"],
        "ports": ports.join(","),
        "rate": 2000,
        "grab": true,
    });
    let mut scans = BTreeMap::new();
    for tenant in ["optin", "plain"] {
        let scan = api.ok(
            "POST",
            &format!("/v1/tenants/{tenant}/scans"),
            &admin,
            Some(&request),
        );
        scans.insert(tenant, scan["id"].as_str().expect("scan id").to_owned());
    }
    for (tenant, id) in &scans {
        let path = format!("/v1/tenants/{tenant}/scans/{id}");
        api.wait_until(&format!("scan {id}"), Duration::from_secs(120), || {
            let v = api.ok("GET", &path, &admin, None);
            assert_ne!(v["state"], "failed", "scan failed: {v}");
            v["state"] == "completed"
        });
    }

    let mut problems = Vec::new();
    for tenant in ["optin", "plain"] {
        let findings = api.ok(
            "GET",
            &format!("/v1/tenants/{tenant}/findings?rule=unauthenticated-access&limit=1000"),
            &admin,
            None,
        );
        let by_asset: BTreeMap<String, &Value> = findings["items"]
            .as_array()
            .expect("findings")
            .iter()
            .filter_map(|f| {
                let key = f["asset"].as_str()?;
                Some((key.strip_suffix("/tcp").unwrap_or(key).to_owned(), f))
            })
            .collect();
        for t in &truth {
            let (ip, port) = (
                t["ip"].as_str().expect("ip"),
                t["port"].as_u64().expect("port"),
            );
            let check = t["check"].as_str().expect("check");
            let login = t["login"] == true;
            let asset = format!("service:{ip}:{port}");
            let ran = !login || tenant == "optin";
            let expect_finding = t["open"] == true && ran;
            let facts = api.ok(
                "GET",
                &format!("/v1/tenants/{tenant}/assets/{asset}"),
                &admin,
                None,
            )["asset"]["facts"]
                .clone();
            match (expect_finding, by_asset.get(&asset)) {
                (true, Some(f)) => {
                    eprintln!(
                        "{tenant} {asset}: {} [{}]",
                        f["evidence"]["readable"], f["severity"]
                    );
                    let readable = f["evidence"]["readable"].as_str().unwrap_or_default();
                    let want = t["evidence"].as_str().unwrap_or_default();
                    if f["evidence"]["check"] != check
                        || !readable.contains(want)
                        || f["severity"] != severity(check)
                        || f["state"] != "open"
                    {
                        problems.push(format!(
                            "{tenant} {asset}: want {check} with {want:?} ({}), got {f}",
                            severity(check)
                        ));
                    }
                }
                (true, None) => problems.push(format!(
                    "{tenant} {asset}: no {check} finding; facts {facts}"
                )),
                (false, Some(f)) => {
                    problems.push(format!("{tenant} {asset}: unexpected finding {f}"))
                }
                (false, None) => {}
            }
            // What the check saw, as facts: a refusal is recorded as such, a login check
            // that did not run left nothing.
            let saw = facts["unauth.open"].as_str();
            let want_saw = match (ran, t["open"].as_bool(), check) {
                (false, _, _) => None,
                // autoindex off is a plain 403 page: nothing to check.
                (true, Some(false), "directory-listing") => None,
                (true, Some(open), _) => Some(if open { "true" } else { "false" }),
                (true, None, _) => None,
            };
            if saw != want_saw {
                problems.push(format!(
                    "{tenant} {asset}: fact unauth.open {saw:?}, want {want_saw:?}; facts {facts}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
