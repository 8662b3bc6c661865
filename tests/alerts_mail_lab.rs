//! Alert e-mail through a real relay: the lab's Postfix (scripts/lab.d/35-mail.sh) in the
//! target namespace, STARTTLS and SASL required, delivering to a Maildir this test reads.
//! `aperture serve` runs in the scanner namespace; the mail carries the event id as its
//! Message-ID and in a header, arrives over TLS with authentication, and bad settings
//! (wrong password, untrusted certificate, no relay at the address) are refused by the
//! channel test with what went wrong.

mod common;

use common::serve::{serve_in_lab, Api};
use common::{lab_dir, lab_unavailable};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn mail_env() -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(lab_dir().join("mail.env")).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect(),
    )
}

/// Every mail in the Maildir: (file, headers by lowercase name, body).
fn mails(maildir: &Path) -> Vec<(PathBuf, BTreeMap<String, Vec<String>>, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(maildir.join("new")) else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut last: Option<String> = None;
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(k) = &last {
                    if let Some(v) = headers.get_mut(k).and_then(|v| v.last_mut()) {
                        v.push(' ');
                        v.push_str(line.trim());
                    }
                }
            } else if let Some((k, v)) = line.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                headers
                    .entry(k.clone())
                    .or_default()
                    .push(v.trim().to_owned());
                last = Some(k);
            }
        }
        out.push((entry.path(), headers, body.to_owned()));
    }
    out
}

fn wait_mail(
    maildir: &Path,
    what: &str,
    find: impl Fn(&BTreeMap<String, Vec<String>>, &str) -> bool,
) -> (BTreeMap<String, Vec<String>>, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((_, h, b)) = mails(maildir).into_iter().find(|(_, h, b)| find(h, b)) {
            return (h, b);
        }
        assert!(Instant::now() < deadline, "no mail with {what} within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn first<'a>(h: &'a BTreeMap<String, Vec<String>>, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.first())
        .map(String::as_str)
        .unwrap_or_default()
}

fn channel(api: &Api, admin: &str, id: &str, email: Value) -> (u16, Value) {
    api.call(
        "POST",
        "/v1/tenants/acme/alerts/channels",
        admin,
        Some(&json!({"id": id, "name": id, "kind": "email", "email": email})),
    )
}

#[test]
fn alert_mail_goes_through_postfix_with_starttls_and_auth() {
    if let Some(reason) = lab_unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let Some(env) = mail_env() else {
        assert!(
            std::env::var("APERTURE_LAB_REQUIRED").as_deref() != Ok("1"),
            "APERTURE_LAB_REQUIRED=1 but the lab has no mail relay (scripts/lab.d/35-mail.sh)"
        );
        eprintln!("skipped: the lab has no mail relay (mail.env; scripts/lab.d/35-mail.sh)");
        return;
    };
    let _lab = common::lab_lock();
    let maildir = PathBuf::from(&env["LAB_MAIL_MAILDIR"]);
    let ca = std::fs::read_to_string(&env["LAB_MAIL_CA"]).expect("the relay's certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_service, api, admin) =
        serve_in_lab(dir.path(), &[("APERTURE_ALERT_RETRY_BASE_MS", "300")]);
    api.ok(
        "POST",
        "/v1/tenants",
        &admin,
        Some(&json!({"id": "acme", "name": "Acme"})),
    );
    let port: u16 = env["LAB_MAIL_PORT"].parse().expect("port");
    let settings = json!({
        "host": env["LAB_MAIL_HOST"],
        "port": port,
        "username": env["LAB_MAIL_USER"],
        "password": env["LAB_MAIL_PASSWORD"],
        "from": "alerts@aperture.lab.test",
        "to": [env["LAB_MAIL_TO"]],
        "ca_pem": ca,
    });
    let (status, v) = channel(&api, &admin, "mail", settings.clone());
    assert_eq!(status, 201, "{v}");
    let listed = api
        .ok("GET", "/v1/tenants/acme/alerts/channels", &admin, None)
        .to_string();
    assert!(
        !listed.contains(&env["LAB_MAIL_PASSWORD"]),
        "the password is never shown: {listed}"
    );

    // The test message: delivered, and the mail says so.
    let report = api.ok(
        "POST",
        "/v1/tenants/acme/alerts/channels/mail/test",
        &admin,
        None,
    );
    assert_eq!(report["delivered"], true, "{report}");
    assert_eq!(report["status"], 250, "{report}");
    let id = report["event_id"].as_str().expect("event id").to_owned();
    let (h, body) = wait_mail(&maildir, "the test event id", |h, _| {
        first(h, "x-aperture-event-id") == id
    });
    assert_eq!(first(&h, "message-id"), format!("<{id}@aperture.invalid>"));
    assert!(first(&h, "subject").starts_with("[Aperture]"), "{h:?}");
    assert!(
        first(&h, "from").contains("alerts@aperture.lab.test"),
        "{h:?}"
    );
    assert!(first(&h, "to").contains(&env["LAB_MAIL_TO"]), "{h:?}");
    // Postfix's own trace: TLS and an authenticated submission ("ESMTPSA").
    let received = h.get("received").cloned().unwrap_or_default().join("\n");
    assert!(
        received.contains("ESMTPSA"),
        "not authenticated over TLS: {received}"
    );
    assert!(
        body.contains(&format!("event id: {id}")) && body.contains("test"),
        "{body}"
    );

    // Wrong settings: each test says what failed; nothing is delivered.
    let before = mails(&maildir).len();
    let refused = |id: &str, email: Value, want: &str| {
        let (status, v) = channel(&api, &admin, id, email);
        assert_eq!(status, 201, "{v}");
        let (status, v) = api.call(
            "POST",
            &format!("/v1/tenants/acme/alerts/channels/{id}/test"),
            &admin,
            None,
        );
        assert_eq!(status, 200, "{id}: {v}");
        assert_eq!(v["delivered"], false, "{id}: {v}");
        let detail = v["answer"].as_str().unwrap_or_default();
        assert!(
            detail.contains(want),
            "{id}: {detail:?} should mention {want:?}"
        );
        api.ok(
            "DELETE",
            &format!("/v1/tenants/acme/alerts/channels/{id}"),
            &admin,
            None,
        );
    };
    let mut wrong = settings.clone();
    wrong["password"] = json!("not-the-password");
    refused("wrongpass", wrong, "535");
    let mut untrusted = settings.clone();
    untrusted.as_object_mut().expect("object").remove("ca_pem");
    refused("untrusted", untrusted, "cannot deliver to the SMTP relay");
    let mut nowhere = settings.clone();
    nowhere["host"] = json!("198.19.35.99");
    refused("nowhere", nowhere, "198.19.35.99:587");
    // Bad input is refused before anything is stored.
    let (status, v) = channel(
        &api,
        &admin,
        "bad",
        json!({"host": "smtp.example", "from": "nobody", "to": ["soc@x.test"]}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("email.from"),
        "{v}"
    );
    assert_eq!(
        mails(&maildir).len(),
        before,
        "no mail from refused settings"
    );

    // A real event: a new service found by a scan, mailed by a rule.
    api.ok(
        "PUT",
        "/v1/tenants/acme/scope",
        &admin,
        Some(&json!({"cidrs": ["198.19.35.0/24"], "allow_special": true})),
    );
    api.ok(
        "POST",
        "/v1/tenants/acme/alerts/rules",
        &admin,
        Some(&json!({"id": "new", "name": "new services", "events": ["asset.new"], "channels": ["mail"]})),
    );
    let scan = api.ok(
        "POST",
        "/v1/tenants/acme/scans",
        &admin,
        Some(&json!({"targets": [env["LAB_MAIL_HOST"]], "ports": port.to_string(), "grab": false})),
    );
    assert!(scan["id"].is_string(), "{scan}");
    let service = format!("service:{}:{port}/tcp", env["LAB_MAIL_HOST"]);
    let (h, body) = wait_mail(&maildir, &service, |h, b| {
        first(h, "subject").contains("asset.new") && b.contains(&service)
    });
    assert!(
        first(&h, "x-aperture-event-id").starts_with("acme.an-"),
        "{h:?}"
    );
    assert!(body.contains("scan:"), "{body}");
    api.wait_until("an empty outbox", Duration::from_secs(30), || {
        api.ok("GET", "/v1/tenants/acme/alerts/outbox", &admin, None)["waiting"] == 0
    });
}
