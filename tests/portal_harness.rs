//! What the portal's browser tests share: the real `aperture serve` on loopback, plain
//! HTTP beside the browser, signing in and out, and the check that no payload ran.
#![allow(dead_code)]

use super::common;
use super::webdriver::Browser;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Elements and attributes that would exist only if a payload had been parsed as HTML.
pub const INERT_JS: &str = "return [document.documentElement.dataset.pwned || null, \
    document.querySelectorAll('script, img, iframe, [onerror], [onload]').length, \
    typeof window.__pwned];";

pub struct Service {
    child: Child,
    pub base: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn start_service(data: &Path) -> Service {
    start_service_with(data, &[])
}

/// The service with more settings in its environment (`APERTURE_…`).
pub fn start_service_with(data: &Path, env: &[(&str, &str)]) -> Service {
    let port = free_port();
    let mut cmd = Command::new(common::bin());
    cmd.args(["serve", "--data"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("APERTURE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("APERTURE_ENGINE", "connect")
        .env("APERTURE_SCHEDULER_SECS", "1")
        .env("APERTURE_TOKEN_RATE", "10000");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("aperture serve starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("listening:") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the service says it is listening");
    Service {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// Plain HTTP with optional bearer token and cookie; redirects are not followed.
pub struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    pub fn new(base: &str) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Http {
            agent,
            base: base.to_owned(),
        }
    }

    /// (status, headers as "name: value" lines, body).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> (u16, String, String) {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let result = match body {
            Some((ct, b)) => self
                .agent
                .run(req.header("Content-Type", ct).body(b).expect("request")),
            None => self.agent.run(req.body(()).expect("request")),
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let head = resp
            .headers()
            .iter()
            .map(|(k, v)| format!("{}: {}", k, v.to_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("\n");
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (resp.status().as_u16(), head, text)
    }

    pub fn api(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let auth = format!("Bearer {token}");
        let (status, _, text) = self.send(
            method,
            path,
            &[("Authorization", &auth)],
            body.map(|b| ("application/json", b.to_string().into_bytes())),
        );
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

pub fn shots_dir() -> PathBuf {
    if let Ok(d) = std::env::var("APERTURE_UI_SHOTS") {
        return PathBuf::from(d);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("ui-shots")
}

pub fn assert_inert(b: &Browser, page: &str) {
    let v = b.script(INERT_JS);
    assert_eq!(
        v,
        json!([null, 0, "undefined"]),
        "{page}: a payload ran or became markup ({})",
        b.url()
    );
}

pub fn wait_scan(http: &Http, token: &str, tenant: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = http.api(
            token,
            "GET",
            &format!("/v1/tenants/{tenant}/scans/{id}"),
            None,
        );
        match v["state"].as_str().unwrap_or("") {
            "completed" => return,
            "failed" | "cancelled" => panic!("scan {id}: {v}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "scan {id} did not finish: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn sign_in(b: &Browser, base: &str, token: &str, then: &str) {
    b.goto(&format!("{base}{then}"));
    assert!(
        b.url().contains("/signin"),
        "unsigned visit goes to sign-in: {}",
        b.url()
    );
    b.type_into("#token", token);
    b.click_nav("#signin");
    assert!(
        b.url().ends_with(then),
        "signed in, back at {then}: {} {}",
        b.url(),
        b.body()
    );
}

pub fn sign_out(b: &Browser) {
    b.click_nav("#signout");
    let start = Instant::now();
    while !(b.url().contains("/signin") && b.find("#token").is_some()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "signed out: {}",
            b.url()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
