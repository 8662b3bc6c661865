//! The service as an operator drives it: the real binary in the lab's scanner namespace,
//! spoken to over HTTP by curl in that namespace; and real daemons in the target one.

use super::curl_json;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Api {
    pub ns: String,
    pub port: u16,
}

impl Api {
    /// One request through curl inside the scanner namespace: (status, JSON body).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        curl_json(&self.ns, self.port, method, path, token, body)
    }

    pub fn ok(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.call(method, path, token, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {v}"
        );
        v
    }

    /// A new token of `role` for tenant acme, made by `admin`: its secret.
    pub fn token(&self, admin: &str, role: &str) -> String {
        let v = self.ok(
            "POST",
            "/v1/tokens",
            admin,
            Some(&serde_json::json!({"name": role, "role": role, "tenants": ["acme"]})),
        );
        v["secret"].as_str().expect("secret").to_owned()
    }

    pub fn wait_until(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    pub fn wait_scan(&self, token: &str, scan: &str) {
        let path = format!("/v1/tenants/acme/scans/{scan}");
        self.wait_until(&format!("scan {scan}"), Duration::from_secs(90), || {
            let v = self.ok("GET", &path, token, None);
            assert_ne!(v["state"], "failed", "scan failed: {v}");
            v["state"] == "completed"
        });
    }

    pub fn finding(&self, token: &str, rule: &str, asset: &str) -> Option<Value> {
        let v = self.ok(
            "GET",
            &format!("/v1/tenants/acme/findings?rule={rule}&limit=1000"),
            token,
            None,
        );
        v["items"]
            .as_array()?
            .iter()
            .find(|f| f["asset"] == asset)
            .cloned()
    }
}

/// A real redis-server bound to `ip`:6379 in namespace `ns`, ready when it answers PING.
pub fn start_redis(ns: &str, dir: &std::path::Path, ip: &str) -> Killed {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "redis-server",
            "--bind",
            ip,
            "--port",
            "6379",
        ])
        .args(["--protected-mode", "no", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    // Ready when it answers PING inside the target namespace.
    let start = Instant::now();
    loop {
        let pong = Command::new("ip")
            .args(["netns", "exec", ns, "redis-cli", "-h", ip, "ping"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
            .unwrap_or(false);
        if pong {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "redis did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Killed(child)
}

/// `aperture serve` on a fresh data directory under `dir`, in the lab's scanner
/// namespace, with a bootstrap admin token and `env` on top of fast-scan settings:
/// (the running service, its API, the admin token).
pub fn serve_in_lab(dir: &std::path::Path, env: &[(&str, &str)]) -> (Killed, Api, String) {
    let scan_ns = super::lab_env("LAB_SCAN_NS");
    let data = dir.join("data");
    let data_s = data.to_string_lossy().into_owned();
    let out = super::aperture(&[
        "admin",
        "--data",
        &data_s,
        "token-create",
        "--name",
        "root",
        "--role",
        "admin",
    ]);
    assert!(out.status.success(), "{}", super::stderr(&out));
    let admin = super::stdout(&out).trim().to_owned();
    let port = 20000 + (std::process::id() % 20000) as u16;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &scan_ns])
        .arg(super::bin())
        .args([
            "serve",
            "--data",
            &data_s,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("APERTURE_SCHEDULER_SECS", "1")
        .env("APERTURE_SYN_WAIT_SECS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let service = Killed(cmd.spawn().expect("service starts"));
    let api = Api { ns: scan_ns, port };
    api.wait_until("the service", Duration::from_secs(20), || {
        api.call("GET", "/healthz", "", None).0 == 200
    });
    (service, api, admin)
}
