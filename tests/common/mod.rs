//! Helpers shared by the end-to-end tests: run the real `aperture` binary, read its
//! JSON Lines, find the lab.
#![allow(dead_code)]

pub mod cluster;
pub mod nats;
pub mod serve;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_aperture"))
}

pub fn aperture(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the aperture binary runs")
}

pub fn is_root() -> bool {
    // SAFETY-free check: /proc/self/status carries the effective uid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// (ip, port, state) of every JSON line.
pub fn results(text: &str) -> Vec<(IpAddr, u16, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}"));
            let ip = v["ip"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("ip field");
            let port = v["port"].as_u64().expect("port field") as u16;
            let state = v["state"].as_str().expect("state field").to_string();
            (ip, port, state)
        })
        .collect()
}

pub fn open_set(text: &str) -> BTreeSet<(IpAddr, u16)> {
    results(text)
        .into_iter()
        .filter(|(_, _, s)| s == "open")
        .map(|(ip, port, _)| (ip, port))
        .collect()
}

/// Where the lab keeps its state (see scripts/lab).
pub fn lab_dir() -> PathBuf {
    PathBuf::from(std::env::var("APERTURE_LAB_DIR").unwrap_or_else(|_| "/tmp/aperture-lab".into()))
}

/// `Some(reason)` when the lab tests cannot run here. With APERTURE_LAB_REQUIRED=1 (set
/// by scripts/test as root, i.e. in CI) a missing lab is a failure, not a skip.
pub fn lab_unavailable() -> Option<String> {
    let reason = if !is_root() {
        Some("needs root (raw sockets and network namespaces)".to_string())
    } else if !lab_dir().join("ground-truth.jsonl").exists() {
        Some(format!(
            "lab is not up (no {}/ground-truth.jsonl); run scripts/lab up",
            lab_dir().display()
        ))
    } else {
        None
    };
    if let Some(r) = &reason {
        if std::env::var("APERTURE_LAB_REQUIRED").as_deref() == Ok("1") {
            panic!("APERTURE_LAB_REQUIRED=1 but {r}");
        }
    }
    reason
}

pub fn lab_env(key: &str) -> String {
    let text = std::fs::read_to_string(lab_dir().join("lab.env")).expect("lab.env readable");
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim().trim_start_matches("export ") == key)
        .map(|(_, v)| v.trim().trim_matches('"').trim_matches('\'').to_string())
        .unwrap_or_else(|| panic!("{key} missing from lab.env"))
}

pub fn ground_truth() -> BTreeSet<(IpAddr, u16)> {
    let text = std::fs::read_to_string(lab_dir().join("ground-truth.jsonl"))
        .expect("ground truth readable");
    open_set(&text)
}

/// Runs aperture inside the lab's scanner namespace.
pub fn aperture_in_lab(args: &[&str]) -> Output {
    let ns = lab_env("LAB_SCAN_NS");
    Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ip netns exec runs")
}

/// Lab scans share two cores and one veth pair: run them one at a time, so a scan's
/// recall never depends on what another test is doing.
pub fn lab_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `aperture admin --data DIR ARGS...`, which must succeed: (stdout, stderr).
pub fn admin_cli(data: &std::path::Path, args: &[&str]) -> (String, String) {
    let out = Command::new(bin())
        .arg("admin")
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("APERTURE_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("aperture admin runs");
    assert!(
        out.status.success(),
        "aperture admin {args:?}: {}",
        stderr(&out)
    );
    (stdout(&out), stderr(&out))
}

/// The lab's authoritative DNS server (scripts/lab.d/25-dns.sh writes dns.env).
pub fn lab_dns_server() -> String {
    let text = std::fs::read_to_string(lab_dir().join("dns.env")).expect("dns.env readable");
    text.lines()
        .find_map(|l| l.strip_prefix("LAB_DNS_ENUM_SERVER="))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .expect("LAB_DNS_ENUM_SERVER in dns.env")
}

/// One API request through curl inside network namespace `ns` (where the service
/// listens on 127.0.0.1:`port`), as an operator there would: (status, JSON body; null
/// when the body is not JSON).
pub fn curl_json(
    ns: &str,
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "curl", "-s", "-m", "20", "-X", method])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-w", "\n%{http_code}"]);
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "-d", &b.to_string()]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    let status: u16 = code.trim().parse().unwrap_or(0);
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status, json)
}
