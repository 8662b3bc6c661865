//! The few W3C WebDriver commands the portal's browser test needs, over plain HTTP to
//! Debian's chromedriver driving Debian's chromium (headless, no network but loopback).
#![allow(dead_code)]

use base64::Engine;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Why the browser test cannot run here, if it cannot.
pub fn browser_missing() -> Option<String> {
    for p in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(p).exists() {
            return Some(format!(
                "{p} is missing: install Debian's chromium and chromium-driver (scripts/deps)"
            ));
        }
    }
    None
}

/// A chromedriver process and one browser session, both ended when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.send("DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    pub fn start(shots: PathBuf) -> Browser {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let profile = tempfile::tempdir().expect("profile dir");
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            agent,
            shots,
            _profile: profile,
        };
        let start = Instant::now();
        loop {
            if let Ok(v) = b.send("GET", "/status", None) {
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver not ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,1000".into(),
            format!("--user-data-dir={}", b._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let v = b
            .send("POST", "/session", Some(&caps))
            .expect("new session");
        b.session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        std::fs::create_dir_all(&b.shots).expect("screenshot dir");
        b
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = ureq::http::Request::builder().method(method).uri(&url);
        let result = match body {
            Some(b) => self.agent.run(
                req.header("Content-Type", "application/json")
                    .body(b.to_string().into_bytes())
                    .map_err(|e| e.to_string())?,
            ),
            None => self.agent.run(req.body(()).map_err(|e| e.to_string())?),
        };
        let mut resp = result.map_err(|e| format!("{method} {path}: {e}"))?;
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if resp.status().as_u16() >= 400 {
            return Err(format!("{method} {path}: {}", v["value"]));
        }
        Ok(v)
    }

    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{what}", self.session);
        self.send(method, &path, body.as_ref())
            .unwrap_or_else(|e| panic!("webdriver: {e}"))["value"]
            .clone()
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element matching a CSS selector, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let path = format!("/session/{}/element", self.session);
        let v = self
            .send(
                "POST",
                &path,
                Some(&json!({"using": "css selector", "value": css})),
            )
            .ok()?;
        v["value"]
            .as_object()?
            .values()
            .next()?
            .as_str()
            .map(str::to_owned)
    }

    /// The element matching `css`, waiting a little for a page still loading after a
    /// click.
    pub fn el(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(e) = self.find(css) {
                return e;
            }
            if start.elapsed() > Duration::from_secs(5) {
                let body = self
                    .find("body")
                    .map(|_| self.script("return document.body.innerText;"))
                    .unwrap_or_default();
                panic!("no element {css} on {}: {body}", self.url());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.el(css);
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn click(&self, css: &str) {
        let e = self.el(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    /// Clicks something that loads a new page, and waits until the new page is there.
    pub fn click_nav(&self, css: &str) {
        self.script("window.__navmark = 1; return null;");
        self.click(css);
        let start = Instant::now();
        loop {
            let v = self.script(
                "return typeof window.__navmark === 'undefined' && document.readyState === 'complete';",
            );
            if v == Value::Bool(true) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no new page after clicking {css} on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.el(css);
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Chooses the option of a <select> by its value.
    pub fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]"));
    }

    /// The visible text of the whole page.
    pub fn body(&self) -> String {
        self.text("body")
    }

    pub fn script(&self, js: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    pub fn cookie(&self, name: &str) -> Option<Value> {
        let path = format!("/session/{}/cookie/{name}", self.session);
        self.send("GET", &path, None)
            .ok()
            .map(|v| v["value"].clone())
    }

    /// Saves the page as `<shots>/<name>.png`.
    pub fn shot(&self, name: &str) -> PathBuf {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("screenshot written");
        path
    }

    /// Waits until `done` holds, reloading the page between tries.
    pub fn wait_for(&self, what: &str, limit: Duration, mut done: impl FnMut(&Browser) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what} on {}: {}",
                self.url(),
                self.body()
            );
            std::thread::sleep(Duration::from_millis(300));
            self.cmd("POST", "/refresh", Some(json!({})));
        }
    }
}
