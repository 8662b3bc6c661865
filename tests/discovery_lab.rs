//! The discovery loop end to end, against the lab's organisation (scripts/lab.d/28-org.sh):
//! the real binary, one seed zone in, the loop finds every in-scope service of acme.test
//! through enumeration, certificates and reverse DNS, proposes exactly the out-of-scope
//! addresses and names as candidates with their evidence, and sends no packet outside
//! the scope — counted at the lab's edge by nft in the target namespace, not by Aperture.
//! Approving a candidate puts it in scope and the next loop scans it; a dismissed one
//! stays out.

mod common;

use common::serve::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// Packets an nft counter of 28-org.sh's table has seen.
fn counter(tgt_ns: &str, name: &str) -> u64 {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            tgt_ns,
            "nft",
            "-j",
            "list",
            "counter",
            "inet",
            "aplab_org",
            name,
        ])
        .output()
        .expect("nft runs");
    assert!(
        out.status.success(),
        "nft list counter {name}: {}",
        stderr(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("nft JSON");
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|o| o["counter"]["packets"].as_u64()))
        .unwrap_or_else(|| panic!("no counter {name} in {v}"))
}

fn set(v: &Value, field: &str) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x[field].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The loop's state once a loop that started after `after` has ended.
fn wait_loop(api: &Api, token: &str, after: i64) -> Value {
    let mut last = Value::Null;
    api.wait_until("the discovery loop", Duration::from_secs(180), || {
        last = api.ok("GET", "/v1/tenants/acme/discovery", token, None);
        let s = &last["state"];
        assert_ne!(s["status"], "failed", "the loop failed: {last}");
        s["started"].as_i64().is_some_and(|t| t > after)
            && s["status"] != "running"
            && s["status"] != "idle"
    });
    last
}

fn services(api: &Api, token: &str) -> BTreeSet<String> {
    let v = api.ok(
        "GET",
        "/v1/tenants/acme/assets?kind=service&limit=1000",
        token,
        None,
    );
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|a| a["status"] == "present")
        .filter_map(|a| a["key"].as_str().map(str::to_owned))
        .collect()
}

fn found_by(api: &Api, token: &str, asset: &str) -> Value {
    let v = api.ok(
        "GET",
        &format!("/v1/tenants/acme/provenance?asset={asset}"),
        token,
        None,
    );
    v[0].clone()
}

#[test]
fn one_seed_finds_the_organisation_and_proposes_only_what_lies_outside() {
    if let Some(why) = lab_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    if !lab_dir().join("org.env").exists() {
        assert_ne!(
            std::env::var("APERTURE_LAB_REQUIRED").as_deref(),
            Ok("1"),
            "APERTURE_LAB_REQUIRED=1 but the lab has no organisation (scripts/lab.d/28-org.sh)"
        );
        eprintln!("skipped: the lab has no organisation (28-org.sh did not run)");
        return;
    }
    let _lock = lab_lock();
    let tgt_ns = lab_env("LAB_TGT_NS");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_service, api, admin) = serve_in_lab(
        dir.path(),
        &[
            ("APERTURE_RESOLVERS", "198.19.7.53"),
            ("APERTURE_DNS_QPS", "3000"),
        ],
    );
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
        Some(&json!({"cidrs": ["198.19.6.0/25"], "domains": ["acme.test"], "allow_special": true})),
    );
    let analyst = api.token(&admin, "analyst");
    let viewer = api.token(&admin, "viewer");
    let edge = |name: &str| counter(&tgt_ns, name);
    let before: Vec<u64> = [
        "org_in",
        "org_out",
        "org_140",
        "org_dns_other",
        "org_unnamed",
    ]
    .iter()
    .map(|c| edge(c))
    .collect();

    // Bad input says what to fix.
    // Seeds the scope does not cover: valid settings, but the scope must grow first.
    for (body, want) in [
        (json!({"domains": ["other.test"]}), "scope"),
        (
            json!({"cidrs": ["198.19.6.128/25"]}),
            "not inside the tenant's scope",
        ),
    ] {
        let (status, v) = api.call("PUT", "/v1/tenants/acme/discovery", &analyst, Some(&body));
        assert_eq!(status, 409, "{body}: {v}");
        assert!(
            v["detail"].as_str().unwrap_or_default().contains(want),
            "{body}: {v}"
        );
    }
    for (body, want) in [
        (json!({}), "at least one seed"),
        (
            json!({"domains": ["acme.test"], "max_depth": 0}),
            "max_depth",
        ),
        (json!({"domains": ["acme.test"], "ports": "99999"}), "ports"),
        (
            json!({"domains": ["acme.test"], "seeds": []}),
            "unknown field",
        ),
    ] {
        let (status, v) = api.call("PUT", "/v1/tenants/acme/discovery", &analyst, Some(&body));
        assert_eq!(status, 400, "{body}: {v}");
        assert!(
            v["detail"].as_str().unwrap_or_default().contains(want),
            "{body}: {v}"
        );
    }
    let (status, v) = api.call("POST", "/v1/tenants/acme/discovery/run", &analyst, None);
    assert_eq!(status, 409, "no seeds yet: {v}");
    let (status, _) = api.call(
        "GET",
        "/v1/tenants/acme/candidates?state=maybe",
        &viewer,
        None,
    );
    assert_eq!(status, 400);
    let (status, _) = api.call(
        "POST",
        "/v1/tenants/acme/candidates/address:198.19.6.99/approve",
        &analyst,
        None,
    );
    assert_eq!(status, 404);
    let (status, _) = api.call(
        "PUT",
        "/v1/tenants/acme/discovery",
        &viewer,
        Some(&json!({"domains": ["acme.test"]})),
    );
    assert_eq!(status, 403, "a viewer sets no seeds");

    // One seed in.
    api.ok(
        "PUT",
        "/v1/tenants/acme/discovery",
        &analyst,
        Some(&json!({"domains": ["acme.test"], "ports": "22,80,443", "max_depth": 8})),
    );
    let first = wait_loop(&api, &viewer, 0);
    assert_eq!(first["state"]["status"], "done", "{first}");
    let want: BTreeSet<String> = [
        "service:198.19.6.10:80/tcp",
        "service:198.19.6.10:443/tcp",
        "service:198.19.6.11:443/tcp",
        "service:198.19.6.12:443/tcp",
        "service:198.19.6.13:80/tcp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        services(&api, &viewer),
        want,
        "every in-scope service, no other: {first}"
    );

    let open = api.ok(
        "GET",
        "/v1/tenants/acme/candidates?state=open",
        &viewer,
        None,
    );
    let ids = set(&open, "id");
    let want_candidates: BTreeSet<String> = [
        "address:198.19.6.140",
        "address:198.19.7.53",
        "name:d3f8k2x9.cloudfront.net",
        "name:partner.acme-partner.test",
        "name:shop.acme-shop.test",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        ids, want_candidates,
        "exactly the out-of-scope ones: {open}"
    );
    let chain = |id: &str| -> String {
        let c = api.ok(
            "GET",
            &format!("/v1/tenants/acme/candidates/{id}"),
            &viewer,
            None,
        );
        c["evidence"]
            .as_array()
            .expect("evidence")
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" → ")
    };
    assert_eq!(
        chain("address:198.19.6.140"),
        "seed zone acme.test → MX mail.acme.test → A 198.19.6.140"
    );
    assert!(
        chain("name:shop.acme-shop.test").ends_with(
            "A 198.19.6.10 → certificate on 198.19.6.10:443 → SAN shop.acme-shop.test → A 198.19.6.141"
        ),
        "{}",
        chain("name:shop.acme-shop.test")
    );
    assert!(
        chain("name:partner.acme-partner.test")
            .ends_with("SAN qx7-portal.acme.test → A 198.19.6.11 → certificate on 198.19.6.11:443 → SAN partner.acme-partner.test"),
        "{}",
        chain("name:partner.acme-partner.test")
    );
    let cdn = api.ok(
        "GET",
        "/v1/tenants/acme/candidates/name:d3f8k2x9.cloudfront.net",
        &viewer,
        None,
    );
    assert_eq!(cdn["provider"], "Amazon CloudFront", "{cdn}");
    assert_eq!(cdn["found_by"], "cname", "{cdn}");

    // Why each asset is believed to be the tenant's.
    assert_eq!(
        found_by(&api, &viewer, "host:198.19.6.10")["found_by"],
        "enumeration"
    );
    assert_eq!(
        found_by(&api, &viewer, "service:198.19.6.11:443/tcp")["found_by"],
        "certificate"
    );
    assert_eq!(
        found_by(&api, &viewer, "domain:qx7-portal.acme.test")["found_by"],
        "certificate"
    );
    let legacy = found_by(&api, &viewer, "host:198.19.6.13");
    assert_eq!(legacy["found_by"], "reverse_dns", "{legacy}");
    assert!(
        legacy["evidence"]
            .to_string()
            .contains("PTR kb4-legacy.acme.test"),
        "{legacy}"
    );
    let (status, _) = api.call(
        "GET",
        "/v1/tenants/acme/provenance?asset=host:198.19.6.20",
        &viewer,
        None,
    );
    assert_eq!(status, 404, "the unnamed host was never found");

    // Looped assets are in the change feed like any other.
    let feed = api.ok("GET", "/v1/tenants/acme/changes?limit=1000", &viewer, None);
    let appeared: BTreeSet<String> = feed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|c| c["change"] == "appeared")
        .filter_map(|c| c["asset"].as_str().map(str::to_owned))
        .collect();
    for a in [
        "service:198.19.6.12:443/tcp",
        "domain:kb4-legacy.acme.test",
        "host:198.19.6.13",
    ] {
        assert!(
            appeared.contains(a),
            "{a} appeared in the feed: {appeared:?}"
        );
    }

    // Nothing outside the scope was probed: counted at the target's edge.
    let after: Vec<u64> = [
        "org_in",
        "org_out",
        "org_140",
        "org_dns_other",
        "org_unnamed",
    ]
    .iter()
    .map(|c| edge(c))
    .collect();
    assert!(
        after[0] > before[0],
        "the in-scope hosts were probed (the counters count)"
    );
    assert_eq!(after[1], before[1], "no packet to 198.19.6.128/25");
    assert_eq!(
        after[2], before[2],
        "no packet to 198.19.6.140 before its approval"
    );
    assert_eq!(after[3], before[3], "nothing but DNS to the name server");
    assert_eq!(
        after[4], before[4],
        "the loop follows evidence, it does not sweep the scope"
    );

    // Review: a viewer may not decide; an analyst dismisses one and approves another.
    let (status, _) = api.call(
        "POST",
        "/v1/tenants/acme/candidates/address:198.19.6.140/approve",
        &viewer,
        None,
    );
    assert_eq!(status, 403);
    let (status, v) = api.call(
        "POST",
        "/v1/tenants/acme/candidates/name:partner.acme-partner.test/dismiss",
        &analyst,
        Some(&json!({"note": "a partner's host", "extra": 1})),
    );
    assert_eq!(status, 400, "an unknown field is refused: {v}");
    let d = api.ok(
        "POST",
        "/v1/tenants/acme/candidates/name:partner.acme-partner.test/dismiss",
        &analyst,
        Some(&json!({"note": "a partner's host"})),
    );
    assert_eq!(d["state"], "dismissed");
    let a = api.ok(
        "POST",
        "/v1/tenants/acme/candidates/address:198.19.6.140/approve",
        &analyst,
        None,
    );
    assert_eq!(a["state"], "approved");
    let (status, _) = api.call(
        "POST",
        "/v1/tenants/acme/candidates/address:198.19.6.140/approve",
        &analyst,
        None,
    );
    assert_eq!(status, 409, "approved once");
    let scope = api.ok("GET", "/v1/tenants/acme/scope", &viewer, None);
    assert!(
        scope["cidrs"].to_string().contains("198.19.6.140/32"),
        "{scope}"
    );
    let audit = api.ok("GET", "/v1/audit?limit=1000", &admin, None);
    assert!(
        audit
            .to_string()
            .contains("candidates/address:198.19.6.140/approve"),
        "audited: {audit}"
    );

    // The scope changed: the next loop scans the approved address.
    let started = first["state"]["started"].as_i64().expect("started");
    let second = wait_loop(&api, &viewer, started);
    assert_eq!(second["state"]["status"], "done", "{second}");
    let mut want2 = want.clone();
    want2.insert("service:198.19.6.140:443/tcp".into());
    assert_eq!(services(&api, &viewer), want2, "{second}");
    let mail = found_by(&api, &viewer, "host:198.19.6.140");
    assert_eq!(mail["found_by"], "candidate_approval", "{mail}");
    let open = api.ok(
        "GET",
        "/v1/tenants/acme/candidates?state=open",
        &viewer,
        None,
    );
    let ids = set(&open, "id");
    assert!(
        !ids.contains("name:partner.acme-partner.test"),
        "dismissed stays dismissed: {open}"
    );
    assert!(!ids.contains("address:198.19.6.140"));
    assert_eq!(ids.len(), 3, "{open}");
    let partner = api.ok(
        "GET",
        "/v1/tenants/acme/candidates/name:partner.acme-partner.test",
        &viewer,
        None,
    );
    assert_eq!(partner["state"], "dismissed", "{partner}");
    assert!(
        partner["last_seen"].as_i64() > partner["decided_at"].as_i64(),
        "met again, not proposed again: {partner}"
    );
    let end: Vec<u64> = [
        "org_in",
        "org_out",
        "org_140",
        "org_dns_other",
        "org_unnamed",
    ]
    .iter()
    .map(|c| edge(c))
    .collect();
    assert!(end[2] > after[2], "the approved address was scanned");
    assert_eq!(
        end[1], before[1],
        "still nothing to the rest of 198.19.6.128/25"
    );
    assert_eq!(end[3], before[3]);
    assert_eq!(end[4], before[4]);

    // The operations report lists what awaits review, with how each was found.
    let report = api.ok(
        "POST",
        "/v1/tenants/acme/reports",
        &analyst,
        Some(&json!({"period": "weekly"})),
    );
    let id = report["id"].as_str().expect("report id");
    let page = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab_env("LAB_SCAN_NS"),
            "curl",
            "-s",
            "-m",
            "20",
        ])
        .args(["-H", &format!("Authorization: Bearer {viewer}")])
        .arg(format!(
            "http://127.0.0.1:{}/v1/tenants/acme/reports/{id}/html",
            api.port
        ))
        .output()
        .expect("curl runs");
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(
        page.contains("Candidates awaiting review (3)"),
        "the count: {page}"
    );
    for c in [
        "shop.acme-shop.test",
        "d3f8k2x9.cloudfront.net",
        "198.19.7.53",
    ] {
        assert!(page.contains(c), "{c} is listed: {page}");
    }
    assert!(page.contains("SAN shop.acme-shop.test"), "its evidence");
    assert!(
        !page.contains("partner.acme-partner.test"),
        "a dismissed candidate is not awaiting review"
    );
}
