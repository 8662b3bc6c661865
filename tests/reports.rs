//! Operations reports end to end: the real service on loopback scans listeners this test
//! opens (127.0.0.1 only), findings open, one is assigned; then reports are made in
//! English and Simplified Chinese, listed, and downloaded. The PDF is read back with
//! `pdftotext` (Debian's poppler-utils) and must carry the figures, the top risk with its
//! owner, and the language's own words; the HTML page must run nothing and show hostile
//! names as text.

mod common;

use common::nats::free_port;
use common::*;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Http {
    base: String,
    token: String,
}

impl Http {
    /// (status, body bytes, content type)
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Vec<u8>, String) {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(120)))
                .build(),
        );
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let resp = match (method, body) {
            ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
            ("PUT", Some(b)) => agent
                .put(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b.to_string().as_bytes()),
            (_, Some(b)) => agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b.to_string().as_bytes()),
            (_, None) => agent.post(&url).header("Authorization", &auth).send_empty(),
        };
        let mut resp = resp.expect("the service answers");
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap_or_default();
        (status, bytes, ctype)
    }

    fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, bytes, _) = self.call(method, path, body);
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }
}

fn tools_missing() -> Option<String> {
    for (tool, arg) in [("/usr/bin/chromium", "--version"), ("pdftotext", "-v")] {
        if Command::new(tool).arg(arg).output().is_err() {
            return Some(format!(
                "{tool} not found (scripts/deps installs chromium and poppler-utils)"
            ));
        }
    }
    None
}

fn start(data: &Path, port: u16) -> Service {
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .arg("--data")
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("APERTURE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("APERTURE_ENGINE", "connect")
        .env("APERTURE_SCHEDULER_SECS", "1");
    Service(cmd.spawn().expect("aperture serve starts"))
}

fn pdf_text(bytes: &[u8], dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("pdf written");
    let out = Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext runs");
    assert!(out.status.success(), "pdftotext: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn reports_in_both_languages_carry_the_figures_and_owners_as_html_and_pdf() {
    if let Some(why) = tools_missing() {
        assert!(
            std::env::var_os("APERTURE_LAB_REQUIRED").is_none(),
            "required in CI: {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    admin_cli(
        &data,
        &["tenant-create", "acme", "Acme <script>x</script> 集团"],
    );
    let (out, _) = admin_cli(
        &data,
        &["token-create", "--name", "root", "--role", "admin"],
    );
    let token = out
        .split_whitespace()
        .find(|w| w.starts_with("apt_"))
        .expect("token secret")
        .to_owned();
    let port = free_port();
    let _service = start(&data, port);
    let api = Http {
        base: format!("http://127.0.0.1:{port}"),
        token,
    };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the service never came up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let listeners: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let ports: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port().to_string())
        .collect();
    api.json(
        "PUT",
        "/v1/tenants/acme/scope",
        Some(&json!({"cidrs": ["127.0.0.0/24"], "allow_special": true})),
    );
    let scan = api.json(
        "POST",
        "/v1/tenants/acme/scans",
        Some(&json!({"targets": ["127.0.0.1"], "ports": ports.join(","), "grab": false})),
    );
    let id = scan["id"].as_str().expect("scan id").to_owned();
    let t0 = Instant::now();
    loop {
        let v = api.json("GET", &format!("/v1/tenants/acme/scans/{id}"), None);
        if v["state"] == "completed" {
            break;
        }
        assert_ne!(v["state"], "failed", "{v}");
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "scan never completed: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let findings = api.json("GET", "/v1/tenants/acme/findings?limit=100", None);
    let items = findings["items"].as_array().expect("items");
    assert_eq!(
        items.len(),
        2,
        "one finding per unsanctioned service: {findings}"
    );
    let first = items[0]["id"].as_str().expect("finding id");
    api.json(
        "POST",
        &format!("/v1/tenants/acme/findings/{first}/assign"),
        Some(&json!({"assignee": "alice@acme.example"})),
    );

    // Bad requests say what to fix and make nothing.
    for (body, needle) in [
        (json!({"period": "yearly"}), "period"),
        (json!({"period": "weekly", "lang": "fr"}), "lang"),
        (json!({"period": "weekly", "extra": 1}), "extra"),
    ] {
        let (status, bytes, _) = api.call("POST", "/v1/tenants/acme/reports", Some(&body));
        let text = String::from_utf8_lossy(&bytes);
        assert!((400..500).contains(&status), "{body}: {status} {text}");
        assert!(text.contains(needle), "{body}: {text}");
    }
    assert_eq!(
        api.json("GET", "/v1/tenants/acme/reports", None)["items"],
        json!([])
    );

    let en = api.json(
        "POST",
        "/v1/tenants/acme/reports",
        Some(&json!({"period": "weekly"})),
    );
    let zh = api.json(
        "POST",
        "/v1/tenants/acme/reports",
        Some(&json!({"period": "monthly", "lang": "zh-CN"})),
    );
    for r in [&en, &zh] {
        assert_eq!(r["pdf_error"], Value::Null, "{r}");
        assert!(r["pdf_bytes"].as_u64().unwrap_or(0) > 1000, "{r}");
    }
    let listed = api.json("GET", "/v1/tenants/acme/reports", None);
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    let (en_id, zh_id) = (
        en["id"].as_str().expect("id"),
        zh["id"].as_str().expect("id"),
    );
    assert_eq!(ids, vec![zh_id, en_id], "newest first");

    let (status, pdf, ctype) = api.call(
        "GET",
        &format!("/v1/tenants/acme/reports/{en_id}/pdf"),
        None,
    );
    assert_eq!((status, ctype.as_str()), (200, "application/pdf"));
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    let text = pdf_text(&pdf, dir.path(), "en.pdf");
    for needle in [
        "Exposure operations report",
        "Weekly",
        "Exposed services",
        "Top risks",
        "alice@acme.example",
        "unassigned",
        &format!("service:127.0.0.1:{}/tcp", ports[0]),
        "Acme <script>x</script>",
        "Candidates awaiting review (0)",
        "None awaiting review.",
    ] {
        assert!(
            text.contains(needle),
            "{needle:?} missing from the PDF:\n{text}"
        );
    }
    let (_, pdf, _) = api.call(
        "GET",
        &format!("/v1/tenants/acme/reports/{zh_id}/pdf"),
        None,
    );
    let text = pdf_text(&pdf, dir.path(), "zh.pdf");
    for needle in [
        "暴露面运营报告",
        "月报",
        "主要风险",
        "责任人",
        "高危",
        "集团",
    ] {
        assert!(
            text.contains(needle),
            "{needle:?} missing from the PDF:\n{text}"
        );
    }

    let (status, html, ctype) = api.call(
        "GET",
        &format!("/v1/tenants/acme/reports/{en_id}/html"),
        None,
    );
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    let html = String::from_utf8_lossy(&html);
    assert!(
        html.contains("Acme &lt;script&gt;x&lt;/script&gt;"),
        "escaped"
    );
    assert!(!html.contains("<script"), "no script in a report page");
    assert!(html.contains("<svg"), "the shrinkage chart");

    for bad in ["nope", "..%2F..%2Fetc", "r1-weekly-en"] {
        let (status, _, _) = api.call("GET", &format!("/v1/tenants/acme/reports/{bad}/pdf"), None);
        assert_eq!(status, 404, "{bad}");
    }

    // On schedule: a weekly report in Chinese is made at the scheduler's next pass, once.
    assert_eq!(
        api.json("GET", "/v1/tenants/acme/reports/schedule", None),
        json!({"daily": false, "weekly": false, "monthly": false, "lang": "en"})
    );
    for (body, needle) in [
        (json!({"weekly": true, "lang": "fr"}), "lang"),
        (json!({"weekly": true, "hourly": true}), "hourly"),
        (json!({"weekly": "yes"}), "weekly"),
    ] {
        let (status, bytes, _) = api.call("PUT", "/v1/tenants/acme/reports/schedule", Some(&body));
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(needle), "{body}: {text}");
    }
    let set = json!({"daily": false, "weekly": true, "monthly": false, "lang": "zh-CN"});
    assert_eq!(
        api.json("PUT", "/v1/tenants/acme/reports/schedule", Some(&set)),
        set
    );
    let scheduled = || -> Vec<Value> {
        api.json("GET", "/v1/tenants/acme/reports", None)["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|r| r["requested_by"] == "schedule")
            .cloned()
            .collect()
    };
    let t0 = Instant::now();
    while scheduled().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no scheduled report was made"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(3));
    let made = scheduled();
    assert_eq!(made.len(), 1, "made once, not at every pass: {made:?}");
    assert_eq!(made[0]["period"], "weekly");
    assert_eq!(made[0]["lang"], "zh-CN");
    assert_eq!(made[0]["pdf_error"], Value::Null, "{:?}", made[0]);
    let _keep = listeners;
}
