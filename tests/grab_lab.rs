//! `aperture scan --grab` against the lab's real Debian services (scripts/lab.d):
//! every service identified with the right product (and version where its banner
//! shows one), the products hook's refusing and unusual-port configurations with
//! product and risk class and never a guess, certificate facts equal to the generated certificates, and hostile
//! hosts (silent, dripping, endless, stalling, malformed) ending within their deadlines
//! with bounded memory.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Instant;

fn jsonl(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(lab_dir().join(name)).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("{name}: bad line {l:?}: {e}"))
        })
        // Grabbing is TCP; the lab also lists UDP (DNS).
        .filter(|v| v["proto"].as_str().unwrap_or("tcp") == "tcp")
        .collect()
}

fn services_unavailable() -> Option<String> {
    if let Some(why) = lab_unavailable() {
        return Some(why);
    }
    if !lab_dir().join("services.jsonl").exists() {
        let why = "lab services are not up (no services.jsonl)".to_string();
        if std::env::var("APERTURE_LAB_REQUIRED").as_deref() == Ok("1") {
            panic!("APERTURE_LAB_REQUIRED=1 but {why}");
        }
        return Some(why);
    }
    None
}

fn norm(s: &str) -> String {
    s.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn key(v: &Value) -> (String, u64) {
    (
        v["ip"].as_str().unwrap_or_default().to_string(),
        v["port"].as_u64().unwrap_or_default(),
    )
}

/// Runs a grab scan of these (ip, port) pairs in the scanner namespace, under
/// /usr/bin/time when present so peak memory can be checked.
fn grab(rows: &[Value], extra: &[&str]) -> (BTreeMap<(String, u64), Value>, Option<u64>, f64) {
    let ips: BTreeSet<String> = rows.iter().map(|r| key(r).0).collect();
    let ports: BTreeSet<u64> = rows.iter().map(|r| key(r).1).collect();
    let ports = ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let ns = lab_env("LAB_SCAN_NS");
    let timed = std::path::Path::new("/usr/bin/time").exists();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns]);
    if timed {
        cmd.args(["/usr/bin/time", "-f", "MAXRSS_KB=%M"]);
    }
    cmd.arg(bin())
        .args([
            "scan",
            "-p",
            &ports,
            "--allow-special",
            "--grab",
            "--rate",
            "5000",
            "--wait",
            "1",
            "-q",
        ])
        .args(ips.iter())
        .args(extra)
        .stdin(Stdio::null());
    let started = Instant::now();
    let out = cmd.output().expect("ip netns exec runs");
    let elapsed = started.elapsed().as_secs_f64();
    let err = stderr(&out);
    assert!(out.status.success(), "grab scan failed: {err}");
    let rss = err
        .lines()
        .find_map(|l| l.strip_prefix("MAXRSS_KB="))
        .and_then(|v| v.trim().parse().ok());
    let mut found = BTreeMap::new();
    for line in stdout(&out).lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        found.insert(key(&v), v);
    }
    (found, rss, elapsed)
}

#[test]
fn lab_services_are_identified_with_their_certificates() {
    if let Some(why) = services_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = lab_lock();
    let truth = jsonl("services.jsonl");
    assert!(
        truth.len() >= 10,
        "the lab should run at least ten services"
    );
    let (found, _, _) = grab(&truth, &[]);
    let mut problems = Vec::new();
    for t in &truth {
        let (ip, port) = key(t);
        let Some(r) = found.get(&(ip.clone(), port)) else {
            problems.push(format!("{ip}:{port} ({}) not found open", t["service"]));
            continue;
        };
        let want_product = t["product"].as_str().unwrap_or_default();
        let got_product = r["product"].as_str().unwrap_or_default();
        let (want_n, got_n) = (norm(want_product), norm(got_product));
        let same = !got_n.is_empty() && (got_n.contains(&want_n) || want_n.contains(&got_n));
        if !want_n.is_empty() && !same {
            problems.push(format!(
                "{ip}:{port}: product {got_product:?}, expected {want_product:?} (banner {})",
                r["banner"]
            ));
        }
        if let Some(want) = t["version"].as_str() {
            let got = r["version"].as_str().unwrap_or_default();
            if got != want {
                problems.push(format!(
                    "{ip}:{port} {want_product}: version {got:?}, expected {want:?}"
                ));
            }
        }
        if r["risk"].as_str().is_none_or(|k| k == "unknown") || r["service"].is_null() {
            problems.push(format!(
                "{ip}:{port}: no service or risk class ({} / {})",
                r["service"], r["risk"]
            ));
        }
        if let Some(title) = t["http"]["title"].as_str() {
            if r["http"]["title"].as_str() != Some(title) {
                problems.push(format!(
                    "{ip}:{port}: HTTP title {}, expected {title:?}",
                    r["http"]["title"]
                ));
            }
        }
        if t["tls"].as_bool() == Some(true) {
            let tls = &r["tls"];
            let version = tls["version"].as_str().unwrap_or_default();
            let spoken: Vec<&str> = t["tls_versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            // The truth says "TLSv1" where we say "TLSv1.0".
            if !spoken.is_empty()
                && !spoken
                    .iter()
                    .any(|v| version.trim_end_matches(".0") == v.trim_end_matches(".0"))
            {
                problems.push(format!(
                    "{ip}:{port}: TLS version {version:?}, server speaks {spoken:?}"
                ));
            }
            if tls["cipher"].as_str().unwrap_or_default().is_empty() {
                problems.push(format!("{ip}:{port}: no cipher recorded ({tls})"));
            }
            let legacy_only = !spoken.is_empty()
                && spoken.iter().all(|v| {
                    v.starts_with("TLSv1") && !v.starts_with("TLSv1.2") && !v.starts_with("TLSv1.3")
                });
            if tls["legacy"].as_bool() != Some(legacy_only) {
                problems.push(format!(
                    "{ip}:{port}: legacy {} but server speaks {spoken:?}",
                    tls["legacy"]
                ));
            }
            let jarm = tls["jarm"].as_str().unwrap_or_default();
            if jarm.len() != 62
                || !jarm.chars().all(|c| c.is_ascii_hexdigit())
                || jarm.chars().all(|c| c == '0')
            {
                problems.push(format!(
                    "{ip}:{port}: JARM {jarm:?} is not a 62-hex-digit fingerprint"
                ));
            }
            // Reached by address: a certificate naming that address matches, one that
            // does not (the self-signed one has no IP SAN) is a mismatch.
            let names_ip = t["cert"]["sans"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v.as_str() == Some(ip.as_str()));
            if r["certificate"][0]["hostname_mismatch"].as_bool() != Some(!names_ip) {
                problems.push(format!(
                    "{ip}:{port}: hostname_mismatch {}, IP in SANs {names_ip}",
                    r["certificate"][0]["hostname_mismatch"]
                ));
            }
        }
        if t["service"] == "http" && port == 80 && r["http"]["favicon_hash"].as_i64().is_none() {
            problems.push(format!("{ip}:{port}: no favicon hash ({})", r["http"]));
        }
        if t["starttls"].as_bool() == Some(true) && r["tls"]["starttls"].as_bool() != Some(true) {
            problems.push(format!("{ip}:{port}: STARTTLS not followed ({})", r["tls"]));
        }
        if t["tls"].as_bool() == Some(true) || t["cert"].is_object() {
            let Some(leaf) = r["certificate"].get(0) else {
                problems.push(format!("{ip}:{port}: no certificate ({})", r["tls"]));
                continue;
            };
            let c = &t["cert"];
            for (ours, theirs) in [
                ("subject_cn", "subject_cn"),
                ("issuer_cn", "issuer_cn"),
                ("sha256", "sha256"),
                ("expired", "expired"),
                ("self_signed", "self_signed"),
                ("weak_key", "weak_key"),
                ("key_bits", "key_bits"),
            ] {
                if !c[theirs].is_null() && leaf[ours] != c[theirs] {
                    problems.push(format!(
                        "{ip}:{port}: certificate {ours} = {}, expected {}",
                        leaf[ours], c[theirs]
                    ));
                }
            }
            if let Some(sans) = c["sans"].as_array() {
                let got: BTreeSet<String> = leaf["sans"]["dns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(leaf["sans"]["ip"].as_array().into_iter().flatten())
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                for san in sans.iter().filter_map(|s| s.as_str()) {
                    if !got.contains(san) {
                        problems.push(format!("{ip}:{port}: SAN {san} missing from {got:?}"));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The products hook (scripts/lab.d/22-products.sh): more Debian daemons, and second
/// configurations that refuse us, want a password or sit on unusual ports. For every
/// (ip, port) the protocol, product, version and risk class are exactly the ground
/// truth's; where the truth names no product (what the port says names none) nothing
/// may be claimed: a wrong product is worse than none.
#[test]
fn lab_products_and_refusals_are_identified_without_guessing() {
    products_are_identified("products.jsonl", "APERTURE_LAB_PRODUCTS", 10);
}

/// The more-products hook (scripts/lab.d/24-more.sh): Unbound, NSD and dnsmasq telling
/// their version to a version.bind query over TCP, mini_httpd, Caddy and Varnish; checked like
/// the products hook's. With it the live lab runs at least thirty distinct products.
#[test]
fn lab_more_products_are_identified_without_guessing() {
    if !products_are_identified("more.jsonl", "APERTURE_LAB_MORE", 5) {
        return;
    }
    let all: BTreeSet<String> = ["services.jsonl", "products.jsonl", "more.jsonl"]
        .into_iter()
        .flat_map(jsonl)
        .filter_map(|t| {
            t["actual"]
                .as_str()
                .or_else(|| t["product"].as_str())
                .map(norm)
        })
        .collect();
    // One product under two names (Mosquitto, Eclipse Mosquitto) counts once.
    let all: BTreeSet<&String> = all
        .iter()
        .filter(|p| !all.iter().any(|q| q != *p && q.contains(p.as_str())))
        .collect();
    if !jsonl("products.jsonl").is_empty() {
        assert!(
            all.len() >= 30,
            "the live lab should run at least thirty distinct products, has {}: {all:?}",
            all.len()
        );
    }
}

/// Grabs every TCP row of the lab file `file` and checks protocol, product, version and
/// risk class against it. False (after saying why) when the hook is not up and need not
/// be: `skip_var`=0 turned it off, or the lab is not required.
fn products_are_identified(file: &str, skip_var: &str, min_products: usize) -> bool {
    if let Some(why) = services_unavailable() {
        eprintln!("skipped: {why}");
        return false;
    }
    let truth = jsonl(file);
    if truth.is_empty() {
        let why = format!("the hook is not up (no {file})");
        if std::env::var("APERTURE_LAB_REQUIRED").as_deref() == Ok("1")
            && std::env::var(skip_var).as_deref() != Ok("0")
        {
            panic!("APERTURE_LAB_REQUIRED=1 but {why}");
        }
        eprintln!("skipped: {why}");
        return false;
    }
    let _serial = lab_lock();
    let products: BTreeSet<String> = truth
        .iter()
        .filter_map(|t| t["product"].as_str().map(norm))
        .collect();
    assert!(
        products.len() >= min_products,
        "{file} should name at least {min_products} products, has {products:?}"
    );
    let (found, _, _) = grab(&truth, &[]);
    let mut problems = Vec::new();
    for t in &truth {
        let (ip, port) = key(t);
        let config = t["config"].as_str().unwrap_or_default();
        let Some(r) = found.get(&(ip.clone(), port)) else {
            problems.push(format!("{ip}:{port} ({config}) not found open"));
            continue;
        };
        let got_protocol = r["banner"]["protocol"].as_str().unwrap_or("none");
        if Some(got_protocol) != t["service"].as_str() {
            problems.push(format!(
                "{ip}:{port} ({config}): protocol {got_protocol}, expected {} (banner {})",
                t["service"], r["banner"]
            ));
        }
        let got = r["product"].as_str();
        match (t["product"].as_str(), got) {
            (Some(want), Some(got)) if norm(want) == norm(got) => {}
            (None, None) => {}
            (want, got) => problems.push(format!(
                "{ip}:{port} ({config}): product {got:?}, expected {want:?} (banner {})",
                r["banner"]
            )),
        }
        if let Some(want) = t["version"].as_str() {
            if r["version"].as_str() != Some(want) {
                problems.push(format!(
                    "{ip}:{port} ({config}): version {}, expected {want:?}",
                    r["version"]
                ));
            }
        }
        if r["risk"] != t["risk"] {
            problems.push(format!(
                "{ip}:{port} ({config}): risk {}, expected {}",
                r["risk"], t["risk"]
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems in {} ports of {file}:\n{}",
        problems.len(),
        truth.len(),
        problems.join("\n")
    );
    true
}

#[test]
fn hostile_hosts_end_within_their_deadlines_with_bounded_memory() {
    if let Some(why) = services_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = lab_lock();
    let hostile = jsonl("hostile.jsonl");
    if hostile.is_empty() {
        panic!("hostile.jsonl is empty: the lab should run hostile hosts");
    }
    let deadline_ms = 2000u64;
    let (found, rss, elapsed) = grab(&hostile, &["--grab-timeout", "2", "--banner-wait", "1"]);
    for h in &hostile {
        let (ip, port) = key(h);
        let Some(r) = found.get(&(ip.clone(), port)) else {
            panic!("{ip}:{port} ({}) not found open", h["behaviour"]);
        };
        let stats = &r["grab"];
        let (conns, millis) = (
            stats["connections"].as_u64().unwrap_or(0),
            stats["millis"].as_u64().unwrap_or(0),
        );
        // Every connection (hellos, JARM, favicon) runs under its own deadline, one after
        // another: the whole grab ends within that many deadlines plus a second.
        let budget = conns.max(1) * deadline_ms + 1000;
        assert!(
            millis <= budget,
            "{ip}:{port} {}: {millis} ms over {budget} ms ({stats})",
            h["behaviour"]
        );
        if let Some(banner) = r["banner"]["text"].as_str() {
            assert!(
                banner.len() <= 8 * 1024,
                "{ip}:{port}: banner not capped ({} bytes)",
                banner.len()
            );
        }
    }
    if let Some(kb) = rss {
        assert!(
            kb < 200 * 1024,
            "peak RSS {kb} KiB: grabbing must stay bounded"
        );
    }
    assert!(elapsed < 120.0, "the hostile scan took {elapsed:.0}s");
}
