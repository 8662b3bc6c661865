//! `aperture scan` against the lab (scripts/lab): real raw sockets in a network
//! namespace, 198.18.0.0/16 answering on the far side of a veth pair, and listeners on a
//! seeded random set of (address, port) pairs. Results must equal the ground truth.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::{Command, Stdio};

fn in_slash18(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V4(a) if a.octets()[0] == 198 && a.octets()[1] == 18 && a.octets()[2] < 64)
}

fn compare(found: &BTreeSet<(IpAddr, u16)>, expected: &BTreeSet<(IpAddr, u16)>, what: &str) {
    let missing: Vec<_> = expected.difference(found).collect();
    let extra: Vec<_> = found.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, false positives {extra:?}"
    );
}

#[test]
fn syn_scan_of_the_lab_equals_the_ground_truth() {
    if let Some(why) = lab_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = lab_lock();
    let truth = ground_truth();
    assert!(truth.len() >= 100, "lab should have listeners");
    let ports = lab_env("LAB_PORTS");
    let out = aperture_in_lab(&[
        "scan",
        "198.18.0.0/16",
        "-p",
        &ports,
        "--allow-special",
        "--rate",
        "100000",
        "--wait",
        "2",
        "--retries",
        "1",
        "--seed",
        "21",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("engine=syn"), "raw SYN engine expected: {err}");
    compare(
        &open_set(&stdout(&out)),
        &truth,
        "SYN scan of 198.18.0.0/16",
    );
}

#[test]
fn connect_scan_of_the_lab_equals_the_ground_truth() {
    if let Some(why) = lab_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = lab_lock();
    let truth: BTreeSet<_> = ground_truth()
        .into_iter()
        .filter(|(ip, _)| in_slash18(ip))
        .collect();
    let ports = lab_env("LAB_PORTS");
    let out = aperture_in_lab(&[
        "scan",
        "198.18.0.0/18",
        "-p",
        &ports,
        "--allow-special",
        "--connect",
        "--rate",
        "20000",
        "--concurrency",
        "1024",
        "--timeout",
        "1000",
        "--retries",
        "1",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("engine=connect"), "{err}");
    compare(
        &open_set(&stdout(&out)),
        &truth,
        "connect scan of 198.18.0.0/18",
    );
}

#[test]
fn shards_of_a_lab_scan_add_up_to_the_ground_truth() {
    if let Some(why) = lab_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = lab_lock();
    let truth: BTreeSet<_> = ground_truth()
        .into_iter()
        .filter(|(ip, _)| in_slash18(ip))
        .collect();
    let ports = lab_env("LAB_PORTS");
    let mut union = BTreeSet::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = aperture_in_lab(&[
            "scan",
            "198.18.0.0/18",
            "-p",
            &ports,
            "--allow-special",
            "--rate",
            "100000",
            "--wait",
            "1",
            "--retries",
            "1",
            "--seed",
            "99",
            "--shard",
            &shard,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        for hit in open_set(&stdout(&out)) {
            assert!(union.insert(hit), "{hit:?} found by two shards");
        }
    }
    compare(&union, &truth, "union of 3 shards");
}

#[test]
fn the_lab_is_isolated() {
    if let Some(why) = lab_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = lab_lock();
    let ns = lab_env("LAB_SCAN_NS");
    let routes = std::process::Command::new("ip")
        .args(["netns", "exec", &ns, "ip", "route", "show"])
        .output()
        .expect("ip route");
    let text = stdout(&routes);
    assert!(
        !text.contains("default"),
        "scanner namespace must have no default route: {text}"
    );
}

/// A host that accepts on every port and never speaks (here: an nft rule in the target
/// namespace sends every port of TARPIT to one silent listener, as a SYN proxy would):
/// recognised from the scan's own replies and reported once, not grabbed port by port;
/// an ordinary host scanned beside it keeps its grabs.
#[test]
fn a_host_open_on_every_port_is_reported_once_not_grabbed_port_by_port() {
    const TARPIT: &str = "198.18.77.60";
    const TABLE: &str = "aperture_tarpit";
    if let Some(why) = lab_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = lab_lock();
    let tgt = lab_env("LAB_TGT_NS");
    let nft = |args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &tgt, "nft"])
            .args(args)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    // Accepts, holds every connection, never sends a byte; killed on drop.
    let listener = Command::new("ip")
        .args(["netns", "exec", &tgt, "python3", "-c"])
        .arg(format!(
            "import socket\n\
             s = socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('{TARPIT}', 9))\n\
             s.listen(4096)\n\
             held = []\n\
             while True:\n    held.append(s.accept()[0])\n"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("listener starts");
    struct Cleanup<F: FnMut()>(F);
    impl<F: FnMut()> Drop for Cleanup<F> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let mut listener = Some(listener);
    let _cleanup = Cleanup(|| {
        if let Some(mut l) = listener.take() {
            let _ = l.kill();
            let _ = l.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "exec", &lab_env("LAB_TGT_NS"), "nft"])
            .args(["delete", "table", "ip", TABLE])
            .stderr(Stdio::null())
            .status();
    });
    let _ = nft(&["delete", "table", "ip", TABLE]);
    assert!(nft(&[
        &format!(
            "add table ip {TABLE}; \
             add chain ip {TABLE} pre {{ type nat hook prerouting priority dstnat; policy accept; }}; \
             add rule ip {TABLE} pre ip daddr {TARPIT} tcp dport != 9 dnat to {TARPIT}:9"
        )
    ]));
    // Ready when a connection to any port is accepted.
    let ns = lab_env("LAB_SCAN_NS");
    let mut tries = 0;
    while !Command::new("ip")
        .args(["netns", "exec", &ns, "python3", "-c"])
        .arg(format!(
            "import socket; socket.create_connection(('{TARPIT}', 4321), timeout=1).close()"
        ))
        .status()
        .is_ok_and(|s| s.success())
    {
        tries += 1;
        assert!(tries < 50, "the tarpit does not accept");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let nginx = "198.19.1.10";
    let out = aperture_in_lab(&[
        "scan",
        TARPIT,
        nginx,
        "-p",
        "1-1024",
        "--allow-special",
        "--grab",
        "--rate",
        "20000",
        "--wait",
        "1",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let tarpit: Vec<&serde_json::Value> = lines.iter().filter(|l| l["ip"] == TARPIT).collect();
    assert_eq!(tarpit.len(), 1, "one report for the whole host: {tarpit:?}");
    let report = tarpit[0];
    assert!(
        report["answers_every_port"]
            .as_u64()
            .is_some_and(|n| n >= 128),
        "{report}"
    );
    assert_eq!(report["grab"]["connections"], 0, "not grabbed: {report}");
    let web: BTreeSet<u64> = lines
        .iter()
        .filter(|l| l["ip"] == nginx && l["service"] == "http")
        .filter_map(|l| l["port"].as_u64())
        .collect();
    assert!(
        web.contains(&80),
        "the ordinary host is still grabbed: {lines:?}"
    );
}
