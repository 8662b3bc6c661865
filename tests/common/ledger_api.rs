//! The service and its API as tests/ledger.rs drives them: the real binary on loopback,
//! a ureq client, listeners on 127.0.0.1 for scans to find.
#![allow(dead_code)]

use crate::common::bin;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const T: &str = "acme";

pub struct Service {
    pub child: Child,
    pub base: String,
}

impl Service {
    pub fn start(data: &Path) -> Service {
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("APERTURE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("APERTURE_ENGINE", "connect")
            .env("APERTURE_TOKEN_RATE", "10000")
            .env("APERTURE_SCHEDULER_SECS", "1");
        let mut child = cmd.spawn().expect("aperture serve starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("listening: ") {
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("aperture serve prints its address");
        Service { child, base }
    }

    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Api {
    pub agent: ureq::Agent,
    pub base: String,
    pub token: String,
}

pub struct Resp {
    pub status: u16,
    pub ctype: String,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl Api {
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            agent: self.agent.clone(),
            base: self.base.clone(),
            token: token.to_owned(),
        }
    }

    pub fn send(&self, method: &str, path: &str, ctype: Option<&str>, body: Vec<u8>) -> Resp {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", format!("Bearer {}", self.token));
        if let Some(c) = ctype {
            req = req.header("Content-Type", c);
        }
        let r = if method == "GET" {
            self.agent.run(req.body(()).expect("request"))
        } else {
            self.agent.run(req.body(body).expect("request"))
        };
        let mut r = r.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap_or_default();
        Resp {
            status,
            ctype,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let r = match body {
            Some(b) => self.send(
                method,
                path,
                Some("application/json"),
                b.to_string().into_bytes(),
            ),
            None => self.send(method, path, None, Vec::new()),
        };
        (r.status, r.json())
    }

    pub fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    pub fn csv(&self, text: &str) -> Resp {
        self.send(
            "POST",
            &format!("/v1/tenants/{T}/ledger/import"),
            Some("text/csv"),
            text.as_bytes().to_vec(),
        )
    }

    /// Every item of a paged listing.
    pub fn all(&self, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let p = match &cursor {
                Some(c) => format!("{path}{sep}cursor={}", enc(c)),
                None => path.to_owned(),
            };
            let v = self.ok("GET", &p, None);
            out.extend(v["items"].as_array().cloned().unwrap_or_default());
            match v["next"].as_str() {
                Some(n) => cursor = Some(n.to_owned()),
                None => return out,
            }
        }
    }

    /// Asset key → its attributes (Null when it has none), of the listing with `query`.
    pub fn attributes(&self, query: &str) -> BTreeMap<String, Value> {
        self.all(&format!("/v1/tenants/{T}/assets?limit=2{query}"))
            .into_iter()
            .map(|a| {
                (
                    a["key"].as_str().unwrap_or_default().to_owned(),
                    a["attributes"].clone(),
                )
            })
            .collect()
    }

    pub fn keys(&self, query: &str) -> BTreeSet<String> {
        self.attributes(query).into_keys().collect()
    }
}

pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn attrs_path(key: &str) -> String {
    format!("/v1/tenants/{T}/assets/{}/attributes", enc(key))
}

pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `n` listeners on 127.0.0.1 (kept open for the test): the services a scan finds.
pub fn listeners(n: usize) -> Vec<u16> {
    let mut ports: Vec<u16> = (0..n)
        .map(|_| {
            let l = TcpListener::bind("127.0.0.1:0").expect("listener");
            let port = l.local_addr().expect("bound").port();
            std::thread::spawn(move || {
                for c in l.incoming() {
                    drop(c);
                }
            });
            port
        })
        .collect();
    ports.sort_unstable();
    ports
}

pub fn svc(port: u16) -> String {
    format!("service:127.0.0.1:{port}/tcp")
}

/// A data directory with the tenant and an admin token; the service; scope loopback.
pub fn setup(data: &Path) -> (Service, Api) {
    crate::common::admin_cli(data, &["tenant-create", T, "Acme"]);
    let token = crate::common::admin_cli(
        data,
        &["token-create", "--name", "ledger-admin", "--role", "admin"],
    )
    .0
    .trim()
    .to_owned();
    let service = Service::start(data);
    let api = Api {
        agent: ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .new_agent(),
        base: service.base.clone(),
        token,
    };
    api.ok(
        "PUT",
        &format!("/v1/tenants/{T}/scope"),
        Some(&json!({"cidrs": ["127.0.0.0/24"], "allow_special": true})),
    );
    (service, api)
}

pub fn token(api: &Api, name: &str, role: &str) -> Api {
    let v = api.ok(
        "POST",
        "/v1/tokens",
        Some(&json!({"name": name, "role": role, "tenants": [T]})),
    );
    api.with_token(v["secret"].as_str().expect("secret"))
}

pub fn scan(api: &Api, ports: &[u16]) {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let v = api.ok(
        "POST",
        &format!("/v1/tenants/{T}/scans"),
        Some(&json!({"targets": ["127.0.0.1"], "ports": list.join(","), "rate": 2000, "grab": false})),
    );
    let id = v["id"].as_str().expect("scan id").to_owned();
    wait_for(&format!("scan {id}"), Duration::from_secs(90), || {
        let v = api.ok("GET", &format!("/v1/tenants/{T}/scans/{id}"), None);
        assert_ne!(v["state"], "failed", "scan failed: {v}");
        v["state"] == "completed"
    });
}
