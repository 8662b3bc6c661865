//! UDP probes of `aperture scan` against real Debian daemons in the lab
//! (scripts/lab.d/27-udp.sh): every service the hook started is found open, nothing
//! else is, each is named with the product and version it reveals, a port with no
//! daemon is closed by ICMP, and bad UDP input is refused before anything is sent.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The hook's truth: (ip, port) → the row.
fn udp_truth() -> Option<BTreeMap<(IpAddr, u16), Value>> {
    let text = std::fs::read_to_string(lab_dir().join("udp-truth.jsonl")).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("truth line is JSON");
                let ip = v["ip"].as_str().and_then(|s| s.parse().ok()).expect("ip");
                let port = v["port"].as_u64().expect("port") as u16;
                ((ip, port), v)
            })
            .collect(),
    )
}

fn udp_env(key: &str) -> String {
    let text = std::fs::read_to_string(lab_dir().join("udp.env")).expect("udp.env readable");
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("{key} missing from udp.env"))
}

/// The truth when the UDP lab is up; `None` (skip) otherwise, a failure when required.
fn lab() -> Option<BTreeMap<(IpAddr, u16), Value>> {
    if let Some(why) = lab_unavailable() {
        eprintln!("skipped: {why}");
        return None;
    }
    let truth = udp_truth();
    if truth.is_none() {
        let why = "the UDP lab hook did not run (no udp-truth.jsonl; APERTURE_LAB_UDP=0?)";
        if std::env::var("APERTURE_LAB_REQUIRED").as_deref() == Ok("1")
            && std::env::var("APERTURE_LAB_UDP").as_deref() != Ok("0")
        {
            panic!("APERTURE_LAB_REQUIRED=1 but {why}");
        }
        eprintln!("skipped: {why}");
    }
    truth
}

fn lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
        .collect()
}

fn key(v: &Value) -> (IpAddr, u16) {
    (
        v["ip"].as_str().and_then(|s| s.parse().ok()).expect("ip"),
        v["port"].as_u64().expect("port") as u16,
    )
}

#[test]
fn udp_scan_finds_every_daemon_and_nothing_else() {
    let Some(truth) = lab() else { return };
    let _serial = lab_lock();
    let net = udp_env("LAB_UDP_NET");
    let ports = udp_env("LAB_UDP_PORTS");
    let tgt = lab_env("LAB_TGT_IP");
    let out = aperture_in_lab(&[
        "scan",
        &net,
        &tgt,
        "-p",
        &ports,
        "--allow-special",
        "--rate",
        "2000",
        "--wait",
        "2",
        "--retries",
        "1",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("engine=udp"), "{err}");
    let found = lines(&stdout(&out));
    let open: BTreeSet<(IpAddr, u16)> = found
        .iter()
        .filter(|v| v["state"] == "open")
        .map(key)
        .collect();
    let expected: BTreeSet<(IpAddr, u16)> = truth.keys().copied().collect();
    let missing: Vec<_> = expected.difference(&open).collect();
    let extra: Vec<_> = open.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "recall/precision: missing {missing:?}, false positives {extra:?}\n{err}"
    );
    assert_eq!(
        found.len(),
        open.len(),
        "one line per open port, no closed ones"
    );
    for v in &found {
        let t = &truth[&key(v)];
        let at = format!("{}:{}", t["ip"], t["port"]);
        assert_eq!(v["proto"], "udp", "{at}");
        assert_eq!(v["reason"], "udp-response", "{at}");
        assert_eq!(v["service"], t["service"], "{at}: {v}");
        if !t["product"].is_null() {
            assert_eq!(v["product"], t["product"], "{at}: {v}");
        }
        if !t["version"].is_null() {
            assert_eq!(v["version"], t["version"], "{at}: {v}");
        }
        let udp = &v["udp"];
        assert!(udp["request_bytes"].as_u64() > Some(0), "{at}: {v}");
        assert!(udp["reply_bytes"].as_u64() > Some(0), "{at}: {v}");
        assert!(udp["amplification_x100"].as_u64() > Some(0), "{at}: {v}");
    }
    let fact = |ip: &str, port: u16, name: &str| -> String {
        let k = (ip.parse().expect("ip"), port);
        let v = found.iter().find(|v| key(v) == k).expect("found");
        v["udp"]["facts"][name].as_str().unwrap_or("").to_string()
    };
    // The open resolver offers recursion; the authoritative server does not.
    assert_eq!(fact("198.19.5.53", 53, "recursion_available"), "true");
    assert_eq!(fact("198.19.5.54", 53, "recursion_available"), "false");
    // snmpd took the default community and told what it runs on.
    assert_eq!(fact("198.19.5.161", 161, "community_accepted"), "true");
    assert!(fact("198.19.5.161", 1161, "sys_descr").starts_with("Linux"));
    assert_eq!(fact("198.19.5.137", 137, "netbios_name"), "APLABNB");
    assert_eq!(fact("198.19.5.137", 137, "workgroup"), "APERTURE");
    assert!(fact(&tgt, 5353, "services").contains("_workstation._tcp.local"));
    // tftpd answered from a new port; the reply still counts for port 69.
    assert_eq!(fact("198.19.5.69", 69, "reply"), "error");
}

#[test]
fn a_port_without_a_daemon_is_closed_by_icmp_and_tcp_and_udp_mix() {
    let Some(truth) = lab() else { return };
    let _serial = lab_lock();
    let closed = udp_env("LAB_UDP_CLOSED");
    let out = aperture_in_lab(&[
        "scan",
        &closed,
        "-p",
        "U:53,123",
        "--allow-special",
        "--show-closed",
        "--rate",
        "200",
        "--wait",
        "1",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let found = lines(&stdout(&out));
    assert_eq!(found.len(), 2, "{found:?}");
    for v in &found {
        assert_eq!(
            (
                v["state"].as_str(),
                v["reason"].as_str(),
                v["proto"].as_str()
            ),
            (Some("closed"), Some("port-unreach"), Some("udp")),
            "{v}"
        );
    }
    // One scan of a TCP listener of the lab and the resolver's UDP port.
    let (tcp_ip, tcp_port) = *ground_truth().iter().next().expect("a TCP listener");
    assert!(truth.contains_key(&("198.19.5.53".parse().expect("ip"), 53)));
    let spec = format!("T:{tcp_port},U:53");
    let out = aperture_in_lab(&[
        "scan",
        &tcp_ip.to_string(),
        "198.19.5.53",
        "-p",
        &spec,
        "--allow-special",
        "--rate",
        "200",
        "--wait",
        "1",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("engine=syn+udp"), "{err}");
    let got: BTreeSet<(String, IpAddr, u16)> = lines(&stdout(&out))
        .iter()
        .map(|v| {
            (
                v["proto"].as_str().unwrap_or("").to_string(),
                key(v).0,
                key(v).1,
            )
        })
        .collect();
    let want = BTreeSet::from([
        ("tcp".to_string(), tcp_ip, tcp_port),
        ("udp".to_string(), "198.19.5.53".parse().expect("ip"), 53),
    ]);
    assert_eq!(got, want);
}

#[test]
fn bad_udp_input_is_refused_before_anything_is_sent() {
    for (args, needle) in [
        (&["-p", "U:0"][..], "port 0"),
        (&["-p", "U:53,T:0"][..], "port 0"),
        (&["-p", "U:70000"][..], "above 65535"),
        (&["-p", "U:53=gopher"][..], "unknown UDP protocol"),
        (&["--udp", "dns,nope"][..], "unknown UDP preset"),
        (&["--udp", "dns", "--connect"][..], "raw sockets"),
    ] {
        let mut all = vec!["scan", "198.18.0.1", "--allow-special"];
        all.extend_from_slice(args);
        let out = aperture(&all);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(
            !err.contains("starting:"),
            "{args:?}: nothing may be sent: {err}"
        );
    }
    // A dry run lists UDP probes with the protocol each port will speak.
    let out = aperture(&[
        "scan",
        "198.18.0.1",
        "--allow-special",
        "--dry-run",
        "-p",
        "U:5300=dns",
        "--udp",
        "ntp",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let probes = lines(&stdout(&out));
    let protocols: BTreeSet<(u64, String)> = probes
        .iter()
        .map(|v| {
            (
                v["port"].as_u64().expect("port"),
                v["protocol"].as_str().expect("protocol").to_string(),
            )
        })
        .collect();
    assert_eq!(
        protocols,
        BTreeSet::from([(123, "ntp".to_string()), (5300, "dns".to_string())])
    );
}
