//! `aperture scan` against the lab (scripts/lab): real raw sockets in a network
//! namespace, 198.18.0.0/16 answering on the far side of a veth pair, and listeners on a
//! seeded random set of (address, port) pairs. Results must equal the ground truth.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::net::IpAddr;

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
