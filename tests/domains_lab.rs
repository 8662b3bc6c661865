//! `aperture domains` end to end: input checking on this host, and enumeration of the
//! lab's authoritative DNS server (scripts/lab.d/25-dns.sh) against its ground truth.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn bad_domains_input_is_refused_with_one_clear_line() {
    let long_label = format!("{}.example", "a".repeat(64));
    let long_name = format!("{}example", "abcdefghij.".repeat(24));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["domains"], "no seed domains"),
        (
            vec!["domains", &long_label, "--resolver", "127.0.0.1"],
            "63",
        ),
        (
            vec!["domains", &long_name, "--resolver", "127.0.0.1"],
            "253",
        ),
        (
            vec!["domains", "bad_host!.example", "--resolver", "127.0.0.1"],
            "invalid seed",
        ),
        (
            vec!["domains", "example.org", "--resolver", "not-an-ip"],
            "--resolver",
        ),
        (
            vec![
                "domains",
                "example.org",
                "--resolver",
                "127.0.0.1",
                "--wordlist",
                "/nonexistent/words",
            ],
            "cannot read wordlist",
        ),
        (
            vec![
                "domains",
                "example.org",
                "--resolver",
                "127.0.0.1",
                "--ptr",
                "10.0.0.0/8",
            ],
            "65536",
        ),
        (
            vec![
                "domains",
                "example.org",
                "--resolver",
                "127.0.0.1",
                "--qps",
                "0",
            ],
            "--qps",
        ),
    ];
    for (args, needle) in cases {
        let out = aperture(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: one line expected: {err}"
        );
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
        assert!(
            !err.contains("starting:"),
            "{args:?}: nothing may be queried"
        );
    }
}

/// A resolver that never answers (a closed port on loopback): names are unknown, never
/// gone, and the run still ends with its summary.
#[test]
fn a_silent_resolver_gives_unknown_not_gone() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let resolver = format!("127.0.0.1:{port}");
    let out = aperture(&[
        "domains",
        "example.test",
        "--resolver",
        &resolver,
        "--no-wordlist",
        "--no-axfr",
        "--timeout",
        "200",
        "--retries",
        "1",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let seed = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "name" && v["name"] == "example.test")
        .unwrap_or_else(|| panic!("seed not reported: {}", stdout(&out)));
    assert_eq!(seed["status"], "unknown", "{seed}");
    assert!(err.contains("done:"), "{err}");
}

fn dns_truth() -> Option<Value> {
    if let Some(why) = lab_unavailable() {
        eprintln!("skipped: {why}");
        return None;
    }
    let path = lab_dir().join("dns-truth.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        let why = format!("lab DNS is not up (no {})", path.display());
        if std::env::var("APERTURE_LAB_REQUIRED").as_deref() == Ok("1") {
            panic!("APERTURE_LAB_REQUIRED=1 but {why}");
        }
        eprintln!("skipped: {why}");
        return None;
    };
    Some(serde_json::from_str(&text).expect("dns-truth.json parses"))
}

fn names_of(truth: &Value, zone: &str) -> BTreeMap<String, Value> {
    truth["zones"][zone]["names"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

#[test]
fn the_lab_zones_are_enumerated_to_their_ground_truth() {
    let Some(truth) = dns_truth() else {
        return;
    };
    let _serial = lab_lock();
    let server = truth["server"].as_str().expect("server").to_string();
    let out = aperture_in_lab(&[
        "domains",
        "corp.test",
        "locked.test",
        "--resolver",
        &server,
        "--ptr",
        "198.19.3.0/24",
        "--qps",
        "3000",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let rows: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let zones: BTreeMap<String, &Value> = rows
        .iter()
        .filter(|r| r["type"] == "zone")
        .map(|r| (r["zone"].as_str().unwrap_or("").to_string(), r))
        .collect();
    let found: BTreeMap<String, &Value> = rows
        .iter()
        .filter(|r| r["type"] == "name")
        .map(|r| (r["name"].as_str().unwrap_or("").to_string(), r))
        .collect();
    let mut problems = Vec::new();

    // Open transfer reported for corp.test, refused for locked.test.
    let kinds = |z: &str| -> BTreeSet<String> {
        zones[z]["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["kind"].as_str().map(String::from))
            .collect()
    };
    if !kinds("corp.test").contains("open-zone-transfer") {
        problems.push("open zone transfer of corp.test not reported".to_string());
    }
    if kinds("locked.test").contains("open-zone-transfer") {
        problems.push("locked.test refuses transfers but one was reported".to_string());
    }
    let corp = names_of(&truth, "corp.test");
    let locked = names_of(&truth, "locked.test");
    // Every name of the transferable zone; every wordlist-reachable name of the other.
    // Wildcard owners (*.x) are reported as the zone's wildcards, checked below.
    for name in corp.keys().filter(|n| !n.starts_with("*.")) {
        if !found.contains_key(name) {
            problems.push(format!("{name} (corp.test, transferable) not found"));
        }
    }
    for (name, t) in &locked {
        if t["in_wordlist"] == true && !found.contains_key(name) {
            problems.push(format!("{name} (locked.test, in the wordlist) not found"));
        }
    }
    // No invented names: everything resolved in a seed zone exists in the truth.
    for (name, r) in &found {
        let zone = r["zone"].as_str().unwrap_or("");
        let known = names_of(&truth, zone);
        if r["status"] == "resolved" && !known.contains_key(name) && !zone.is_empty() {
            problems.push(format!(
                "{name}: reported but not in the zone (wildcard false positive?) {r}"
            ));
        }
        if let Some(t) = known.get(name) {
            let want: BTreeSet<&str> = t["records"]["A"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            let got: BTreeSet<&str> = r["records"]["A"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            if !want.is_empty() && t["records"]["CNAME"].is_null() && want != got {
                problems.push(format!("{name}: A {got:?}, expected {want:?}"));
            }
        }
    }
    // The wildcard is seen and nothing under it was taken for a real name.
    for w in truth["zones"]["corp.test"]["wildcard"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
    {
        if zones["corp.test"]["wildcards"].get(w).is_none() {
            problems.push(format!("wildcard {w} not reported"));
        }
    }
    let has = |name: &str, kind: &str| {
        found.get(name).is_some_and(|r| {
            r["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| f["kind"] == kind)
        })
    };
    for d in truth["zones"]["corp.test"]["dangling"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
    {
        if !has(d, "dangling-cname") {
            problems.push(format!("dangling CNAME {d} not reported"));
        }
    }
    for lp in truth["zones"]["corp.test"]["cname_loops"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(first) = lp.get(0).and_then(|v| v.as_str()) {
            if !has(first, "cname-loop") {
                problems.push(format!("CNAME loop at {first} not reported"));
            }
        }
    }
    for (ascii, unicode) in truth["zones"]["corp.test"]["idn"]
        .as_object()
        .into_iter()
        .flatten()
    {
        match found.get(ascii) {
            Some(r) if r["unicode"] == *unicode => {}
            other => problems.push(format!(
                "IDN {ascii}: expected unicode {unicode}, got {:?}",
                other.map(|r| &r["unicode"])
            )),
        }
    }
    for p in truth["ptr_only"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
    {
        let by_ptr = found.get(p).is_some_and(|r| {
            r["found_by"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s == "ptr")
        });
        if !by_ptr {
            problems.push(format!("{p} (only in PTR records) not found by ptr"));
        }
    }
    for rtype in ["SOA", "NS", "MX", "CAA", "TXT"] {
        if zones["corp.test"]["records"][rtype]
            .as_array()
            .is_none_or(|v| v.is_empty())
        {
            problems.push(format!(
                "corp.test {rtype} records missing: {}",
                zones["corp.test"]["records"]
            ));
        }
    }
    let by = |name: &str, source: &str| {
        found.get(name).is_some_and(|r| {
            r["found_by"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s == source)
        })
    };
    if !by("_sip._tcp.corp.test", "srv") || found["_sip._tcp.corp.test"]["records"]["SRV"].is_null()
    {
        problems.push(format!(
            "SRV _sip._tcp.corp.test not found by srv: {:?}",
            found.get("_sip._tcp.corp.test")
        ));
    }
    if !by("www.corp.test", "cname") {
        problems.push("www.corp.test (end of the a→b→c→www chain) not found by cname".to_string());
    }
    if !by("mail.corp.test", "mx") {
        problems.push("mail.corp.test (an MX target) not found by mx".to_string());
    }
    if zones["corp.test"]["spf"]["all"] != "fail" || zones["corp.test"]["dmarc"]["p"] != "reject" {
        problems.push(format!(
            "SPF/DMARC of corp.test: {} / {}",
            zones["corp.test"]["spf"], zones["corp.test"]["dmarc"]
        ));
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn names_lead_to_ports() {
    let Some(truth) = dns_truth() else {
        return;
    };
    let _serial = lab_lock();
    let server = truth["server"].as_str().expect("server").to_string();
    let dir = std::env::temp_dir().join(format!("aperture-dom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("corp.jsonl");
    let out = aperture_in_lab(&[
        "domains",
        "corp.test",
        "--resolver",
        &server,
        "--no-wordlist",
        "-o",
        file.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The plain address list feeds `scan -iL`.
    let addrs = dir.join("addresses.txt");
    let out = aperture_in_lab(&[
        "domains",
        "corp.test",
        "--resolver",
        &server,
        "--no-wordlist",
        "--format",
        "addresses",
        "-o",
        addrs.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = std::fs::read_to_string(&addrs).expect("addresses");
    assert!(
        listed
            .lines()
            .all(|l| l.parse::<std::net::IpAddr>().is_ok()),
        "{listed}"
    );
    let out = aperture_in_lab(&[
        "scan",
        "-iL",
        addrs.to_str().expect("utf8"),
        "-p",
        "80",
        "--allow-special",
        "--wait",
        "0.5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(open_set(&stdout(&out)).contains(&("198.19.1.10".parse().expect("ip"), 80)));
    // --from-domains: www.corp.test points at the lab web server (198.19.1.10), and the
    // grab carries a corp.test name into SNI.
    let out = aperture_in_lab(&[
        "scan",
        "--from-domains",
        file.to_str().expect("utf8"),
        "-p",
        "80",
        "--allow-special",
        "--wait",
        "0.5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let open = open_set(&stdout(&out));
    assert!(
        open.contains(&("198.19.1.10".parse().expect("ip"), 80)),
        "{open:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dangling_records_and_certificate_names() {
    let Some(truth) = dns_truth() else {
        return;
    };
    let _serial = lab_lock();
    let server = truth["server"].as_str().expect("server").to_string();
    let dir = std::env::temp_dir().join(format!("aperture-dangle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = |n: &str| dir.join(n).to_str().expect("utf8").to_string();

    // Which of 198.19.1.0/24 answers on 80 or 443, per a real scan.
    let out = aperture_in_lab(&[
        "scan",
        "198.19.1.0/24",
        "-p",
        "80,443",
        "--allow-special",
        "--wait",
        "1",
        "-o",
        &path("scan.jsonl"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let open: BTreeSet<String> = std::fs::read_to_string(path("scan.jsonl"))
        .expect("scan output")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["ip"].as_str().map(String::from))
        .collect();
    assert!(
        open.contains("198.19.1.10"),
        "the lab web server answers: {open:?}"
    );

    let out = aperture_in_lab(&[
        "domains",
        "corp.test",
        "--resolver",
        &server,
        "--no-wordlist",
        "--from-scan",
        &path("scan.jsonl"),
        "--scanned",
        "198.19.1.0/24",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: BTreeMap<String, Value> = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "name")
        .map(|v| (v["name"].as_str().unwrap_or("").to_string(), v))
        .collect();
    let mut checked = 0;
    for (name, t) in names_of(&truth, "corp.test") {
        let Some(a) = t["records"]["A"].get(0).and_then(|v| v.as_str()) else {
            continue;
        };
        if !a.starts_with("198.19.1.") || !t["records"]["CNAME"].is_null() {
            continue;
        }
        let Some(r) = rows.get(&name) else {
            continue;
        };
        let flagged = r["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["kind"] == "dangling-address");
        assert_eq!(
            flagged,
            !open.contains(a),
            "{name} -> {a}: dangling-address finding {flagged}, open {}",
            open.contains(a)
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "only {checked} names pointed into the scanned range"
    );

    // Certificate names from a grab become names of the zone they belong to.
    let out = aperture_in_lab(&[
        "scan",
        "198.19.1.10",
        "-p",
        "443",
        "--allow-special",
        "--grab",
        "--no-jarm",
        "--wait",
        "0.5",
        "-o",
        &path("grab.jsonl"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = aperture_in_lab(&[
        "domains",
        "lab.test",
        "--resolver",
        "198.19.1.53",
        "--no-wordlist",
        "--no-axfr",
        "--from-grab",
        &path("grab.jsonl"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let api = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["name"] == "api.lab.test");
    let by_cert = api.as_ref().is_some_and(|v| {
        v["found_by"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s == "certificate")
    });
    assert!(
        by_cert,
        "api.lab.test (a SAN of the lab certificate) not found by certificate: {api:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
