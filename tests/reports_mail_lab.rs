//! Operations reports by mail through a real relay: the lab's Postfix
//! (scripts/lab.d/35-mail.sh, STARTTLS and SASL required) delivers to a Maildir this
//! test reads. `aperture serve` runs in the scanner namespace; a report made on demand
//! with `mail: true` (English) and a scheduled one (Simplified Chinese) arrive as
//! multipart mails: the headers (Subject with the period, RFC 2047-encoded for CJK;
//! Message-ID from the report id), the summary body in the report's language, and the
//! PDF attached, whose text `pdftotext` reads. Bad report settings are refused with what
//! to fix and change nothing; a relay that refuses ends as a visible dead letter.

mod common;

use base64::Engine;
use common::serve::serve_in_lab;
use common::{lab_dir, lab_unavailable};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

type Headers = BTreeMap<String, Vec<String>>;

fn mail_env() -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(lab_dir().join("mail.env")).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect(),
    )
}

fn headers(head: &str) -> Headers {
    let mut out: Headers = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(v) = last
                .as_ref()
                .and_then(|k| out.get_mut(k))
                .and_then(|v| v.last_mut())
            {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            out.entry(k.clone()).or_default().push(v.trim().to_owned());
            last = Some(k);
        }
    }
    out
}

fn first<'a>(h: &'a Headers, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.first())
        .map(String::as_str)
        .unwrap_or_default()
}

/// One leaf of a MIME tree: its headers and its decoded body.
struct Part {
    headers: Headers,
    body: Vec<u8>,
}

impl Part {
    fn ctype(&self) -> String {
        first(&self.headers, "content-type").to_ascii_lowercase()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn split_head(raw: &str) -> (&str, &str) {
    raw.split_once("\r\n\r\n")
        .or_else(|| raw.split_once("\n\n"))
        .unwrap_or((raw, ""))
}

/// The leaves of a (multipart) entity, bodies decoded from base64 or quoted-printable.
fn leaves(raw: &str) -> Vec<Part> {
    let (head, body) = split_head(raw);
    let h = headers(head);
    let ctype = first(&h, "content-type").to_owned();
    if ctype.to_ascii_lowercase().starts_with("multipart/") {
        let boundary = ctype
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("boundary="))
            .map(|b| b.trim_matches('"').to_owned())
            .next()
            .expect("a multipart has a boundary");
        let delimiter = format!("--{boundary}");
        return body
            .split(delimiter.as_str())
            .skip(1)
            .take_while(|p| !p.starts_with("--"))
            .flat_map(|p| leaves(p.trim_start_matches(['\r', '\n'])))
            .collect();
    }
    let encoding = first(&h, "content-transfer-encoding").to_ascii_lowercase();
    let body = match encoding.as_str() {
        "base64" => {
            let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(clean)
                .expect("valid base64")
        }
        "quoted-printable" => {
            quoted_printable::decode(body.as_bytes(), quoted_printable::ParseMode::Robust)
                .expect("valid quoted-printable")
        }
        _ => body.as_bytes().to_vec(),
    };
    vec![Part { headers: h, body }]
}

/// An RFC 2047 header value as text (B and Q encoded words, adjacent ones joined).
fn decode_header(v: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut previous_encoded = false;
    for word in v.split_whitespace() {
        let encoded = word
            .strip_prefix("=?")
            .and_then(|w| w.strip_suffix("?="))
            .and_then(|w| {
                let mut it = w.splitn(3, '?');
                Some((it.next()?, it.next()?, it.next()?))
            });
        match encoded {
            Some((_charset, enc, text)) => {
                if !previous_encoded && !out.is_empty() {
                    out.push(' ');
                }
                if enc.eq_ignore_ascii_case("b") {
                    pending.extend(
                        base64::engine::general_purpose::STANDARD
                            .decode(text)
                            .expect("base64 word"),
                    );
                } else {
                    let q = text.replace('_', " ");
                    pending.extend(
                        quoted_printable::decode(q.as_bytes(), quoted_printable::ParseMode::Robust)
                            .expect("Q word"),
                    );
                }
                previous_encoded = true;
            }
            None => {
                out.push_str(&String::from_utf8_lossy(&std::mem::take(&mut pending)));
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(word);
                previous_encoded = false;
            }
        }
    }
    out.push_str(&String::from_utf8_lossy(&pending));
    out
}

/// The first mail in the Maildir whose headers satisfy `find`: (raw text, headers).
fn wait_mail(maildir: &Path, what: &str, find: impl Fn(&Headers) -> bool) -> (String, Headers) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(dir) = std::fs::read_dir(maildir.join("new")) {
            for entry in dir.flatten() {
                let Ok(raw) = std::fs::read_to_string(entry.path()) else {
                    continue;
                };
                let h = headers(split_head(&raw).0);
                if find(&h) {
                    return (raw, h);
                }
            }
        }
        assert!(Instant::now() < deadline, "no mail with {what} within 90 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pdf_text(bytes: &[u8], path: &Path) -> String {
    std::fs::write(path, bytes).expect("pdf written");
    let out = Command::new("pdftotext")
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext runs");
    assert!(
        out.status.success(),
        "pdftotext failed on {}",
        path.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where a person can look at what was mailed: the .eml and the PDF's first page as PNG.
fn keep_for_eyes(name: &str, raw: &str, pdf: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("reports-mail");
    std::fs::create_dir_all(&dir).expect("target dir");
    std::fs::write(dir.join(format!("{name}.eml")), raw).expect("eml");
    let pdf_path = dir.join(format!("{name}.pdf"));
    std::fs::write(&pdf_path, pdf).expect("pdf");
    let _ = Command::new("pdftoppm")
        .args(["-png", "-r", "70", "-f", "1", "-l", "1"])
        .arg(&pdf_path)
        .arg(dir.join(name))
        .output();
    dir
}

/// Checks one report mail end to end and returns the PDF's text.
fn check_mail(
    raw: &str,
    h: &Headers,
    report: &Value,
    env: &BTreeMap<String, String>,
    summary: &Value,
    scratch: &Path,
) -> (String, String) {
    let id = report["id"].as_str().expect("report id");
    let period = report["period"].as_str().expect("period");
    assert_eq!(
        first(h, "message-id"),
        format!("<acme.report-{id}@aperture.invalid>"),
        "the Message-ID follows from the report id"
    );
    assert!(
        first(h, "from").contains("reports@aperture.lab.test"),
        "{h:?}"
    );
    assert!(first(h, "to").contains(&env["LAB_MAIL_TO"]), "{h:?}");
    assert!(!first(h, "date").is_empty(), "a Date header: {h:?}");
    assert!(
        first(h, "subject").is_ascii(),
        "the subject is MIME-encoded where it is not ASCII: {h:?}"
    );
    let received = h.get("received").cloned().unwrap_or_default().join("\n");
    assert!(
        received.contains("ESMTPSA"),
        "not over TLS with login: {received}"
    );
    let parts = leaves(raw);
    let find = |t: &str| {
        parts
            .iter()
            .find(|p| p.ctype().starts_with(t))
            .unwrap_or_else(|| panic!("no {t} part in the mail"))
    };
    let text = find("text/plain").text();
    let html = find("text/html").text();
    let pdf = find("application/pdf");
    assert!(
        first(&pdf.headers, "content-disposition")
            .starts_with(&format!("attachment; filename=\"report-{period}-20")),
        "{:?}",
        pdf.headers
    );
    assert!(pdf.body.starts_with(b"%PDF"), "the attachment is a PDF");
    assert_eq!(
        Some(pdf.body.len() as u64),
        report["pdf_bytes"].as_u64(),
        "the attached PDF is the kept one"
    );
    let attached_page = parts
        .iter()
        .filter(|p| p.ctype().starts_with("text/html"))
        .find(|p| first(&p.headers, "content-disposition").starts_with("attachment"))
        .expect("the report page attached as HTML");
    assert_eq!(
        Some(attached_page.body.len() as u64),
        report["html_bytes"].as_u64()
    );
    let services = summary["exposed_services"].as_u64().expect("services");
    assert!(services >= 1, "the scan found the relay: {summary}");
    assert!(text.contains(id), "{text}");
    assert!(html.contains(id), "{html}");
    let pdf_text = pdf_text(&pdf.body, &scratch.join(format!("{id}.pdf")));
    (text.replace("\r\n", "\n"), pdf_text)
}

#[test]
fn reports_are_mailed_through_postfix_with_the_pdf_attached() {
    if let Some(reason) = lab_unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let required = std::env::var("APERTURE_LAB_REQUIRED").as_deref() == Ok("1");
    let Some(env) = mail_env() else {
        assert!(
            !required,
            "APERTURE_LAB_REQUIRED=1 but the lab has no mail relay (scripts/lab.d/35-mail.sh)"
        );
        eprintln!("skipped: the lab has no mail relay (mail.env; scripts/lab.d/35-mail.sh)");
        return;
    };
    for (tool, arg) in [("/usr/bin/chromium", "--version"), ("pdftotext", "-v")] {
        if Command::new(tool).arg(arg).output().is_err() {
            assert!(!required, "APERTURE_LAB_REQUIRED=1 but {tool} is missing");
            eprintln!("skipped: {tool} not found (scripts/deps installs chromium, poppler-utils)");
            return;
        }
    }
    let _lab = common::lab_lock();
    let maildir = PathBuf::from(&env["LAB_MAIL_MAILDIR"]);
    let ca = std::fs::read_to_string(&env["LAB_MAIL_CA"]).expect("the relay's certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_service, api, admin) = serve_in_lab(
        dir.path(),
        &[
            ("APERTURE_ALERT_RETRY_BASE_MS", "200"),
            ("APERTURE_ALERT_MAX_ATTEMPTS", "2"),
        ],
    );
    let t = |p: &str| format!("/v1/tenants/acme{p}");
    api.ok(
        "POST",
        "/v1/tenants",
        &admin,
        Some(&json!({"id": "acme", "name": "Acme 华东"})),
    );
    let port: u16 = env["LAB_MAIL_PORT"].parse().expect("port");
    let email = json!({
        "host": env["LAB_MAIL_HOST"],
        "port": port,
        "username": env["LAB_MAIL_USER"],
        "password": env["LAB_MAIL_PASSWORD"],
        "from": "reports@aperture.lab.test",
        "to": [env["LAB_MAIL_TO"]],
        "ca_pem": ca,
    });
    let channel = |id: &str, body: Value| {
        let mut body = body;
        body["id"] = json!(id);
        body["name"] = json!(id);
        api.ok("POST", &t("/alerts/channels"), &admin, Some(&body));
    };
    channel("mail", json!({"kind": "email", "email": email}));
    channel(
        "hook",
        json!({"kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef"}),
    );

    // Bad settings: 400 naming what to fix, and the settings stay as they were.
    let before = api.ok("GET", &t("/reports/schedule"), &admin, None);
    for (body, want) in [
        (
            json!({"recipients": ["ciso at example.com"], "channel": "mail"}),
            "recipients",
        ),
        (
            json!({"recipients": [env["LAB_MAIL_TO"]], "channel": "nope"}),
            "no channel \"nope\"",
        ),
        (
            json!({"recipients": [env["LAB_MAIL_TO"]], "channel": "hook"}),
            "kind email",
        ),
        (json!({"recipients": [env["LAB_MAIL_TO"]]}), "channel"),
    ] {
        let (status, v) = api.call("PUT", &t("/reports/schedule"), &admin, Some(&body));
        assert_eq!(status, 400, "{body}: {v}");
        let detail = v["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(want),
            "{body}: {detail:?} should say {want:?}"
        );
        assert_eq!(api.ok("GET", &t("/reports/schedule"), &admin, None), before);
    }
    // Mail asked for with no recipients: refused before anything is made.
    let (status, v) = api.call(
        "POST",
        &t("/reports"),
        &admin,
        Some(&json!({"period": "weekly", "mail": true})),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("recipients"),
        "{v}"
    );
    assert_eq!(
        api.ok("GET", &t("/reports"), &admin, None)["items"],
        json!([])
    );

    // Something to report: the relay itself, found by a scan.
    api.ok(
        "PUT",
        &t("/scope"),
        &admin,
        Some(&json!({"cidrs": ["198.19.35.0/24"], "allow_special": true})),
    );
    let scan = api.ok(
        "POST",
        &t("/scans"),
        &admin,
        Some(&json!({"targets": [env["LAB_MAIL_HOST"]], "ports": port.to_string(), "grab": false})),
    );
    api.wait_scan(&admin, scan["id"].as_str().expect("scan id"));
    let summary = api.ok("GET", &t("/reports/summary"), &admin, None);

    let settings = json!({"recipients": [env["LAB_MAIL_TO"]], "channel": "mail", "lang": "en"});
    let stored = api.ok("PUT", &t("/reports/schedule"), &admin, Some(&settings));
    assert_eq!(stored["recipients"], settings["recipients"], "{stored}");
    assert_eq!(stored["channel"], "mail", "{stored}");
    // The channel that mails reports cannot be deleted from under them.
    let (status, v) = api.call("DELETE", &t("/alerts/channels/mail"), &admin, None);
    assert_eq!(status, 409, "{v}");

    // On demand, in English.
    let scratch = tempfile::tempdir().expect("scratch");
    let report = api.ok(
        "POST",
        &t("/reports"),
        &admin,
        Some(&json!({"period": "weekly", "lang": "en", "mail": true})),
    );
    let id = report["id"].as_str().expect("id").to_owned();
    assert_eq!(report["mail"], format!("acme.report-{id}.mail"), "{report}");
    let (raw, h) = wait_mail(&maildir, &id, |h| first(h, "x-aperture-report") == id);
    let (text, pdf) = check_mail(&raw, &h, &report, &env, &summary, scratch.path());
    let subject = decode_header(first(&h, "subject"));
    assert!(
        subject.starts_with("[Aperture] Weekly exposure operations report for Acme 华东:"),
        "{subject}"
    );
    let services = summary["exposed_services"].as_u64().expect("n");
    assert!(
        text.contains(&format!("Exposed services: {services}"))
            && text.contains("Findings opened in the period:"),
        "{text}"
    );
    assert!(
        pdf.contains("Exposure operations report") && pdf.contains("Acme"),
        "{pdf}"
    );
    let eyes = keep_for_eyes(
        "report-en",
        &raw,
        &leaves(&raw)
            .into_iter()
            .find(|p| p.ctype().starts_with("application/pdf"))
            .map(|p| p.body)
            .unwrap_or_default(),
    );
    eprintln!("the English mail and its first page: {}", eyes.display());

    // On schedule, in Simplified Chinese: the scheduler makes the weekly report and mails it.
    let mut zh = settings.clone();
    zh["lang"] = json!("zh-CN");
    zh["weekly"] = json!(true);
    api.ok("PUT", &t("/reports/schedule"), &admin, Some(&zh));
    let mut scheduled = Value::Null;
    api.wait_until("the scheduled report", Duration::from_secs(120), || {
        let items = api.ok("GET", &t("/reports"), &admin, None)["items"].clone();
        match items
            .as_array()
            .and_then(|a| a.iter().find(|r| r["requested_by"] == "schedule"))
        {
            Some(r) => {
                scheduled = r.clone();
                true
            }
            None => false,
        }
    });
    let zid = scheduled["id"].as_str().expect("id").to_owned();
    assert!(zid.ends_with("-weekly-zh"), "{scheduled}");
    let (raw, h) = wait_mail(&maildir, &zid, |h| first(h, "x-aperture-report") == zid);
    let (text, pdf) = check_mail(&raw, &h, &scheduled, &env, &summary, scratch.path());
    let subject = decode_header(first(&h, "subject"));
    assert!(
        subject.contains("Acme 华东 暴露面运营周报"),
        "the subject in Chinese: {subject}"
    );
    assert!(
        text.contains(&format!("暴露服务: {services}")) && text.contains("本期新发现问题"),
        "{text}"
    );
    assert!(pdf.contains("暴露面运营报告"), "{pdf}");
    keep_for_eyes(
        "report-zh",
        &raw,
        &leaves(&raw)
            .into_iter()
            .find(|p| p.ctype().starts_with("application/pdf"))
            .map(|p| p.body)
            .unwrap_or_default(),
    );
    api.wait_until("an empty outbox", Duration::from_secs(30), || {
        api.ok("GET", &t("/alerts/outbox"), &admin, None)["waiting"] == 0
    });
    assert_eq!(
        api.ok("GET", &t("/alerts/dead-letters"), &admin, None),
        json!([])
    );

    // A relay that is not there: retried, then a dead letter that says why.
    let mut nowhere = email.clone();
    nowhere["host"] = json!("198.19.35.99");
    channel("nowhere", json!({"kind": "email", "email": nowhere}));
    let mut off = settings.clone();
    off["channel"] = json!("nowhere");
    api.ok("PUT", &t("/reports/schedule"), &admin, Some(&off));
    let lost = api.ok(
        "POST",
        &t("/reports"),
        &admin,
        Some(&json!({"period": "daily", "mail": true})),
    );
    let delivery = lost["mail"].as_str().expect("queued").to_owned();
    let mut dead = Value::Null;
    api.wait_until("the dead letter", Duration::from_secs(60), || {
        dead = api.ok("GET", &t("/alerts/dead-letters"), &admin, None);
        dead.as_array()
            .is_some_and(|a| a.iter().any(|d| d["id"] == delivery))
    });
    let letter = dead
        .as_array()
        .and_then(|a| a.iter().find(|d| d["id"] == delivery))
        .cloned()
        .unwrap_or_default();
    assert_eq!(letter["event"]["kind"], "report", "{letter}");
    assert!(
        letter["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("198.19.35.99:587"),
        "{letter}"
    );
}
