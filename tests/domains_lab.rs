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

/// The ground truths of the lab's authoritative servers: knotd (25-dns.sh) and BIND 9
/// (26-bind.sh), each with zones of its own in the same schema. Every lab DNS test runs
/// against each, since the two answer the same shapes differently.
fn dns_truths() -> Vec<Value> {
    if let Some(why) = lab_unavailable() {
        eprintln!("skipped: {why}");
        return Vec::new();
    }
    let mut out = Vec::new();
    for file in ["dns-truth.json", "dns-bind-truth.json"] {
        let path = lab_dir().join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => out.push(serde_json::from_str(&text).expect("DNS truth parses")),
            Err(_) => {
                let why = format!("lab DNS is not up (no {})", path.display());
                if std::env::var("APERTURE_LAB_REQUIRED").as_deref() == Ok("1") {
                    panic!("APERTURE_LAB_REQUIRED=1 but {why}");
                }
                eprintln!("skipped: {why}");
                return Vec::new();
            }
        }
    }
    out
}

fn names_of(truth: &Value, zone: &str) -> BTreeMap<String, Value> {
    truth["zones"][zone]["names"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

/// (flavour, server, open zone, locked zone) of one truth.
fn roles(truth: &Value) -> (String, String, String, String) {
    let s = |k: &str| {
        truth[k]
            .as_str()
            .unwrap_or_else(|| panic!("truth has no {k}"))
    };
    (
        s("flavour").to_string(),
        s("server").to_string(),
        s("open_zone").to_string(),
        s("locked_zone").to_string(),
    )
}

#[test]
fn the_lab_zones_are_enumerated_to_their_ground_truth() {
    let truths = dns_truths();
    if truths.is_empty() {
        return;
    }
    let _serial = lab_lock();
    // Both servers at once: each run is paced by its own server's answers.
    let problems: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = truths
            .iter()
            .map(|t| s.spawn(move || enumeration_problems(t)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("enumeration thread"))
            .collect()
    });
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn enumeration_problems(truth: &Value) -> Vec<String> {
    let (flavour, server, open_zone, locked_zone) = roles(truth);
    let reverse_net = truth["reverse_net"].as_str().expect("reverse_net");
    let out = aperture_in_lab(&[
        "domains",
        &open_zone,
        &locked_zone,
        "--resolver",
        &server,
        "--ptr",
        reverse_net,
        "--qps",
        "3000",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{flavour}: {err}");
    eprintln!("{flavour}: {}", err.lines().last().unwrap_or(""));
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
    let mut problem = |p: String| problems.push(format!("{flavour} ({server}): {p}"));
    let tz = &truth["zones"][&open_zone];

    // Open transfer reported for the open zone, refused for the locked one.
    let kinds = |z: &str| -> BTreeSet<String> {
        zones[z]["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["kind"].as_str().map(String::from))
            .collect()
    };
    if !kinds(&open_zone).contains("open-zone-transfer") {
        problem(format!("open zone transfer of {open_zone} not reported"));
    }
    if kinds(&locked_zone).contains("open-zone-transfer") {
        problem(format!(
            "{locked_zone} refuses transfers but one was reported"
        ));
    }
    let open = names_of(truth, &open_zone);
    let locked = names_of(truth, &locked_zone);
    let delegated: Vec<String> = tz["delegations"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let below_cut = |n: &str| delegated.iter().any(|d| n.ends_with(&format!(".{d}")));
    // Every name of the transferable zone; every wordlist-reachable name of the other,
    // and the names below its wildcard level that answer differently.
    // Wildcard owners (*.x) are reported as the zone's wildcards, checked below.
    for name in open.keys().filter(|n| !n.starts_with("*.")) {
        if !found.contains_key(name) {
            problem(format!("{name} ({open_zone}, transferable) not found"));
        }
    }
    for (name, t) in &locked {
        if t["in_wordlist"] == true && !found.contains_key(name) {
            problem(format!("{name} ({locked_zone}, in the wordlist) not found"));
        }
    }
    let below = &truth["zones"][&locked_zone]["found_below_wildcard"];
    for (name, source) in below.as_object().into_iter().flatten() {
        let ok = found.get(name).is_some_and(|r| {
            r["status"] == "resolved"
                && r["found_by"].as_array().is_some_and(|f| f.contains(source))
        });
        if !ok {
            problem(format!(
                "{name} (below a wildcard level, answering differently) not found resolved by {source}: {:?}",
                found.get(name)
            ));
        }
    }
    // No invented names: everything resolved in a seed zone exists in the truth; and no
    // name a server answered plainly is reported unknown.
    for (name, r) in &found {
        let zone = r["zone"].as_str().unwrap_or("");
        let known = names_of(truth, zone);
        if r["status"] == "resolved" && !known.contains_key(name) && !zone.is_empty() {
            problem(format!(
                "{name}: reported but not in the zone (wildcard false positive?) {r}"
            ));
        }
        if r["status"] == "unknown" && !zone.is_empty() && !below_cut(name) {
            problem(format!("{name}: unknown, yet its server answered it: {r}"));
        }
        if let Some(t) = known.get(name) {
            let a = |v: &Value| -> BTreeSet<String> { strs(&v["A"]).into_iter().collect() };
            let (want, got) = (a(&t["records"]), a(&r["records"]));
            if !want.is_empty() && t["records"]["CNAME"].is_null() && want != got {
                problem(format!("{name}: A {got:?}, expected {want:?}"));
            }
        }
    }
    // Every wildcard level is seen, and guesses under it that only echo it are dropped.
    for z in [&open_zone, &locked_zone] {
        let levels = strs(&truth["zones"][z]["wildcard"]);
        for w in &levels {
            if zones[z]["wildcards"].get(w).is_none() {
                problem(format!(
                    "wildcard {w} not reported: {}",
                    zones[z]["wildcards"]
                ));
            }
        }
        if !levels.is_empty() && zones[z]["wildcard_filtered"].as_u64().unwrap_or(0) == 0 {
            problem(format!("{z}: no guess filtered as a wildcard echo"));
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
    for d in strs(&tz["dangling"]) {
        if !has(&d, "dangling-cname") {
            problem(format!("dangling CNAME {d} not reported"));
        }
    }
    for lp in tz["cname_loops"].as_array().into_iter().flatten() {
        if let Some(first) = lp.get(0).and_then(|v| v.as_str()) {
            if !has(first, "cname-loop") {
                problem(format!(
                    "CNAME loop at {first} not reported: {:?}",
                    found.get(first)
                ));
            }
        }
    }
    // A CNAME into the other server's zone: the CNAME is the answer, not "unknown".
    for (name, target) in tz["cross_zone"].as_object().into_iter().flatten() {
        match found.get(name) {
            Some(r) if r["cname_chain"].get(0) == Some(target) && r["status"] != "unknown" => {}
            other => problem(format!("{name} CNAME {target} not reported: {other:?}")),
        }
    }
    // A delegation: the cut is a name with its NS records; the glue gives addresses.
    for (cut, d) in tz["delegations"].as_object().into_iter().flatten() {
        let ns: BTreeSet<String> = strs(&d["ns"]).into_iter().collect();
        match found.get(cut) {
            Some(r)
                if strs(&r["records"]["NS"])
                    .into_iter()
                    .collect::<BTreeSet<_>>()
                    == ns => {}
            other => problem(format!(
                "delegation {cut} (NS {ns:?}) not reported: {other:?}"
            )),
        }
    }
    for (ascii, unicode) in tz["idn"].as_object().into_iter().flatten() {
        match found.get(ascii) {
            Some(r) if r["unicode"] == *unicode => {}
            other => problem(format!(
                "IDN {ascii}: expected unicode {unicode}, got {:?}",
                other.map(|r| &r["unicode"])
            )),
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
    for p in strs(&truth["ptr_only"]) {
        if !by(&p, "ptr") {
            problem(format!("{p} (only in PTR records) not found by ptr"));
        }
    }
    for rtype in ["SOA", "NS", "MX", "CAA", "TXT"] {
        if zones[&open_zone]["records"][rtype]
            .as_array()
            .is_none_or(|v| v.is_empty())
        {
            problem(format!(
                "{open_zone} {rtype} records missing: {}",
                zones[&open_zone]["records"]
            ));
        }
    }
    let sip = format!("_sip._tcp.{open_zone}");
    if !by(&sip, "srv")
        || found
            .get(&sip)
            .is_none_or(|r| r["records"]["SRV"].is_null())
    {
        problem(format!("SRV {sip} not found by srv: {:?}", found.get(&sip)));
    }
    if !by(&format!("www.{open_zone}"), "cname") {
        problem(format!(
            "www.{open_zone} (end of the a→b→c→www chain) not found by cname"
        ));
    }
    if !by(&format!("mail.{open_zone}"), "mx") {
        problem(format!("mail.{open_zone} (an MX target) not found by mx"));
    }
    if zones[&open_zone]["spf"]["all"] != "fail" || zones[&open_zone]["dmarc"]["p"] != "reject" {
        problem(format!(
            "SPF/DMARC of {open_zone}: {} / {}",
            zones[&open_zone]["spf"], zones[&open_zone]["dmarc"]
        ));
    }
    problems
}

#[test]
fn names_lead_to_ports() {
    let truths = dns_truths();
    let _serial = lab_lock();
    for truth in &truths {
        names_lead_to_ports_of(truth);
    }
}

fn names_lead_to_ports_of(truth: &Value) {
    let (flavour, server, zone, _) = roles(truth);
    let dir = std::env::temp_dir().join(format!("aperture-dom-{flavour}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("corp.jsonl");
    let out = aperture_in_lab(&[
        "domains",
        &zone,
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
        &zone,
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
    // --from-domains: www.<zone> points at the lab web server (198.19.1.10), and the
    // grab carries a name of the zone into SNI.
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
    let truths = dns_truths();
    if truths.is_empty() {
        return;
    }
    let _serial = lab_lock();
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

    for truth in &truths {
        let (flavour, server, zone, _) = roles(truth);
        let out = aperture_in_lab(&[
            "domains",
            &zone,
            "--resolver",
            &server,
            "--no-wordlist",
            "--from-scan",
            &path("scan.jsonl"),
            "--scanned",
            "198.19.1.0/24",
        ]);
        assert!(out.status.success(), "{flavour}: {}", stderr(&out));
        let rows: BTreeMap<String, Value> = stdout(&out)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "name")
            .map(|v| (v["name"].as_str().unwrap_or("").to_string(), v))
            .collect();
        let mut checked = 0;
        for (name, t) in names_of(truth, &zone) {
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
                "{flavour}: {name} -> {a}: dangling-address finding {flagged}, open {}",
                open.contains(a)
            );
            checked += 1;
        }
        assert!(
            checked >= 3,
            "{flavour}: only {checked} names pointed into the scanned range"
        );
    }

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
