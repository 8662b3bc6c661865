//! Closed-verified means closed: a verification — and any scan that marks an asset gone —
//! needs positive evidence from the target. Against the lab, with real redis servers
//! and the real binary: a redis the target's firewall hides from the scanner (nft drop,
//! the server still running) is not verified and the finding says why; a redis really
//! shut (its port answers RST) is verified; a whole host silenced leaves its assets
//! unknown, not gone; and when the firewall lets the scanner in again, the claim that
//! was never verified is disproved.

mod common;

use common::serve::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// Addresses the lab's target namespace answers for (198.18.0.0/16 is local there).
const HIDDEN: &str = "198.18.77.51";
const SHUT: &str = "198.18.77.52";
const SILENCED: &str = "198.18.77.53";
const TABLE: &str = "aperture_verify";

/// An nft table in the target namespace that drops what the scanner sends to the
/// addresses in its set — what a client's firewall blocking the provider does. Deleted
/// on drop.
struct Firewall {
    ns: String,
}

impl Firewall {
    fn new(ns: &str, scanner: &str) -> Firewall {
        let rules = format!(
            "table inet {TABLE} {{\n\
               set silenced {{ type ipv4_addr; }}\n\
               chain pre {{ type filter hook prerouting priority raw; policy accept;\n\
                 ip saddr {scanner} ip daddr @silenced counter drop\n\
               }}\n\
             }}\n"
        );
        let fw = Firewall { ns: ns.to_owned() };
        let _ = fw.nft(&["delete", "table", "inet", TABLE]);
        let path = std::env::temp_dir().join(format!("aperture-verify-{}.nft", std::process::id()));
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
            // A table not there yet is not an error worth printing.
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn silence(&self, ip: &str, on: bool) {
        let verb = if on { "add" } else { "delete" };
        let set = format!("{{ {ip} }}");
        assert!(self.nft(&[verb, "element", "inet", TABLE, "silenced", &set]));
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        let _ = self.nft(&["delete", "table", "inet", TABLE]);
    }
}

/// The redis service asset on `ip`.
fn asset(api: &Api, token: &str, ip: &str) -> Value {
    api.ok(
        "GET",
        &format!("/v1/tenants/acme/assets/service:{ip}:6379"),
        token,
        None,
    )["asset"]
        .clone()
}

fn scan(api: &Api, analyst: &str, targets: &[&str]) -> Value {
    let req = json!({"targets": targets, "ports": "6379", "rate": 500, "grab": true});
    let v = api.ok("POST", "/v1/tenants/acme/scans", analyst, Some(&req));
    let id = v["id"].as_str().expect("scan id").to_owned();
    api.wait_scan(analyst, &id);
    api.ok(
        "GET",
        &format!("/v1/tenants/acme/scans/{id}"),
        analyst,
        None,
    )
}

/// Claims the redis finding on `ip` fixed and waits for its verification scan: the
/// finding as it stands after it.
fn claim_fixed(api: &Api, remediator: &str, viewer: &str, ip: &str) -> (Value, Value) {
    let key = format!("service:{ip}:6379/tcp");
    let f = api
        .finding(viewer, "risky-exposure", &key)
        .unwrap_or_else(|| panic!("a risky-exposure finding on {key}"));
    let id = f["id"].as_str().expect("id").to_owned();
    let fixed = api.ok(
        "POST",
        &format!("/v1/tenants/acme/findings/{id}/transitions"),
        remediator,
        Some(&json!({"to": "fixed", "comment": "closed"})),
    );
    let verify = fixed["verification_scan"]
        .as_str()
        .unwrap_or_else(|| panic!("a verification scan: {fixed}"))
        .to_owned();
    api.wait_scan(viewer, &verify);
    let scan = api.ok(
        "GET",
        &format!("/v1/tenants/acme/scans/{verify}"),
        viewer,
        None,
    );
    // The policy runs right after the scan's last batch; give it its moment.
    let mut after = Value::Null;
    api.wait_until(
        "the verification's verdict",
        Duration::from_secs(20),
        || {
            after = api.ok(
                "GET",
                &format!("/v1/tenants/acme/findings/{id}"),
                viewer,
                None,
            );
            after["state"] != "fixed" || after["verification_inconclusive"].is_string()
        },
    );
    (after, scan)
}

#[test]
fn silence_is_not_closure_and_a_shut_port_is() {
    if let Some(why) = lab_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let _lock = lab_lock();
    let tgt_ns = lab_env("LAB_TGT_NS");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut redis = Vec::new();
    for ip in [HIDDEN, SHUT, SILENCED] {
        let d = dir.path().join(ip);
        std::fs::create_dir_all(&d).expect("redis dir");
        redis.push(Some(start_redis(&tgt_ns, &d, ip)));
    }
    let firewall = Firewall::new(&tgt_ns, &lab_env("LAB_SCAN_IP"));
    let (_service, api, admin) = serve_in_lab(dir.path(), &[]);
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
        Some(&json!({"cidrs": ["198.18.77.0/24"], "allow_special": true})),
    );
    let token = |role: &str| api.token(&admin, role);
    let (analyst, viewer, remediator) = (token("analyst"), token("viewer"), token("remediator"));

    let first = scan(&api, &analyst, &[HIDDEN, SHUT, SILENCED]);
    assert_eq!(first["silent_hosts"], 0, "{first}");
    for ip in [HIDDEN, SHUT, SILENCED] {
        assert_eq!(asset(&api, &viewer, ip)["status"], "present", "{ip}");
    }

    // The client's firewall drops the scanner's packets to HIDDEN; redis still runs
    // there. The "fixed" claim is not verified, and the finding says why.
    firewall.silence(HIDDEN, true);
    let (hidden, verify) = claim_fixed(&api, &remediator, &viewer, HIDDEN);
    assert_eq!(hidden["state"], "fixed", "{hidden}");
    let why = hidden["verification_inconclusive"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("unreachable from this vantage"), "{hidden}");
    assert!(
        why.contains(verify["id"].as_str().unwrap_or("?")),
        "names its scan: {why}"
    );
    assert_eq!(verify["silent_hosts"], 1, "{verify}");
    assert_eq!(asset(&api, &viewer, HIDDEN)["status"], "unknown");
    let summary = api.ok("GET", "/v1/tenants/acme/reports/summary", &viewer, None);
    assert_eq!(summary["verifications_inconclusive"], 1, "{summary}");
    assert_eq!(summary["closed_verified"], 0, "{summary}");

    // SHUT's redis really stops: its port answers RST, which verifies the claim.
    redis[1] = None;
    let (shut, verify) = claim_fixed(&api, &remediator, &viewer, SHUT);
    assert_eq!(shut["state"], "closed-verified", "{shut}");
    assert_eq!(verify["silent_hosts"], 0, "{verify}");
    assert_eq!(asset(&api, &viewer, SHUT)["status"], "absent");

    // A whole host silenced in a routine scan: unknown, not gone.
    firewall.silence(SILENCED, true);
    let routine = scan(&api, &analyst, &[HIDDEN, SHUT, SILENCED]);
    assert_eq!(routine["silent_hosts"], 2, "{routine}");
    assert_eq!(asset(&api, &viewer, SILENCED)["status"], "unknown");
    assert_eq!(asset(&api, &viewer, HIDDEN)["status"], "unknown");
    let changes = api.ok("GET", "/v1/tenants/acme/changes?limit=1000", &viewer, None);
    let disappeared: Vec<&str> = changes["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|c| c["change"] == "disappeared")
        .filter_map(|c| c["asset"].as_str())
        .filter(|a| a.starts_with("service:"))
        .collect();
    assert_eq!(
        disappeared,
        vec![format!("service:{SHUT}:6379/tcp").as_str()],
        "only the shut redis is gone: {changes}"
    );

    // The firewall lets the scanner in again: HIDDEN's redis was never shut, and the
    // claim that was never verified is disproved.
    firewall.silence(HIDDEN, false);
    firewall.silence(SILENCED, false);
    let back = scan(&api, &analyst, &[HIDDEN, SHUT, SILENCED]);
    assert_eq!(back["silent_hosts"], 0, "{back}");
    assert_eq!(asset(&api, &viewer, HIDDEN)["status"], "present");
    assert_eq!(asset(&api, &viewer, SILENCED)["status"], "present");
    let reopened = api
        .finding(
            &viewer,
            "risky-exposure",
            &format!("service:{HIDDEN}:6379/tcp"),
        )
        .expect("finding");
    assert_eq!(reopened["state"], "open", "{reopened}");
    assert!(
        reopened.get("verification_inconclusive").is_none(),
        "{reopened}"
    );
}

/// With workers, an inconclusive verification is asked again from another vantage: the
/// client's firewall drops w1 (the only worker at first); its verification hears
/// nothing; once w2 is live the scheduler asks again, never from w1, and w2 — which the
/// firewall lets through — finds the redis still running: the claim is disproved.
#[test]
fn an_inconclusive_verification_is_asked_again_from_another_vantage() {
    use common::cluster::*;
    const REDIS: &str = "198.18.77.54";
    if !lab_ready() {
        return;
    }
    let _lock = lab_lock();
    let tgt = lab_env("LAB_TGT_NS");
    let dir = tempfile::tempdir().expect("tempdir");
    let _redis = start_redis(&tgt, dir.path(), REDIS);
    let w1_source = lab_env("LAB_WORKER_SRC_1");
    let block = |op: &str| {
        Command::new("ip")
            .args(["netns", "exec", &tgt, "nft", op, "element", "inet"])
            .args(["aplab_workers", "blocked"])
            .arg(format!("{{ {w1_source} }}"))
            .status()
            .is_ok_and(|s| s.success())
    };
    struct Unblock<F: FnMut() -> bool>(F);
    impl<F: FnMut() -> bool> Drop for Unblock<F> {
        fn drop(&mut self) {
            let _ = (self.0)();
        }
    }
    let _unblock = Unblock(|| block("delete"));

    let mut c = Cluster::new(&[]);
    c.start_worker(1, &[]);
    let scan = c.api_ok(
        "POST",
        "/v1/tenants/acme/scans",
        Some(&json!({"targets": [REDIS], "ports": "6379", "rate": 500, "grab": true, "probe": "syn"})),
    );
    c.wait_completed(scan["id"].as_str().expect("id"));
    let findings = c.api_ok(
        "GET",
        "/v1/tenants/acme/findings?rule=risky-exposure&limit=100",
        None,
    );
    let id = findings["items"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|f| f["asset"] == format!("service:{REDIS}:6379/tcp").as_str())
        })
        .and_then(|f| f["id"].as_str())
        .unwrap_or_else(|| panic!("a risky-exposure finding on the redis: {findings}"))
        .to_owned();

    assert!(block("add"), "w1 blocked at the target");
    let fixed = c.api_ok(
        "POST",
        &format!("/v1/tenants/acme/findings/{id}/transitions"),
        Some(&json!({"to": "fixed", "comment": "firewalled"})),
    );
    let first = fixed["verification_scan"]
        .as_str()
        .expect("verification scan")
        .to_owned();
    let done = c.wait_completed(&first);
    assert_eq!(done["silent_hosts"], 1, "{done}");
    let finding = |c: &Cluster| c.api_ok("GET", &format!("/v1/tenants/acme/findings/{id}"), None);
    c.wait(
        "the first verification's verdict",
        Duration::from_secs(30),
        || finding(&c)["verification_inconclusive"].is_string(),
    );
    assert_eq!(finding(&c)["state"], "fixed");

    // Another vantage comes: the scheduler asks it, and only it.
    c.start_worker(2, &[]);
    c.wait(
        "the verification from w2 to disprove the claim",
        Duration::from_secs(90),
        || finding(&c)["state"] == "open",
    );
    let f = finding(&c);
    let notes: Vec<&str> = f["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|n| n["text"].as_str())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("another vantage (not w1)")),
        "{f}"
    );
    let last = f["transitions"]
        .as_array()
        .and_then(|t| t.last())
        .cloned()
        .unwrap_or_default();
    assert!(
        last["comment"]
            .as_str()
            .unwrap_or_default()
            .contains("verification failed"),
        "{last}"
    );
    let scans = c.api_ok("GET", "/v1/tenants/acme/scans", None);
    let verifying: Vec<&Value> = scans
        .as_array()
        .expect("scans")
        .iter()
        .filter(|s| s["purpose"] == format!("verify {id}").as_str())
        .collect();
    assert_eq!(verifying.len(), 2, "{scans}");
    let second = verifying
        .iter()
        .find(|s| s["id"] != first.as_str())
        .expect("the second verification");
    assert_eq!(second["avoid"], json!(["w1"]), "{second}");
    let vantages: BTreeSet<&str> = second["shards"]
        .as_array()
        .expect("receipts")
        .iter()
        .filter_map(|r| r["vantage"]["worker"].as_str())
        .collect();
    assert_eq!(vantages, BTreeSet::from(["w2"]), "{second}");
    let audit = c.api_ok("GET", "/v1/audit?limit=1000", None);
    assert!(
        audit["items"].as_array().is_some_and(|a| a
            .iter()
            .any(|r| r["action"] == "verification from another vantage")),
        "{audit}"
    );
}
