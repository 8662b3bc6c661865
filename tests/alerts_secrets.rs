//! Channel secrets are never returned by the API after creation — not in the answer to
//! the creation itself, the list, one channel, a change, nor the audit log — and a
//! secret is changed in place (`PUT …/alerts/channels/{id}`, also how secrets are given
//! again after a tenant's import): the next message is signed with the new one, and a
//! refused change leaves the channel as it was. The real `aperture serve` on loopback,
//! a webhook receiver this test runs.

mod common;
#[allow(dead_code)] // the receiver's other controls serve other tests
#[path = "common/receiver.rs"]
mod receiver;

use common::bin;
use hmac::{Hmac, Mac};
use receiver::{Received, Receiver};
use serde_json::{json, Value};
use sha2::Sha256;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const OLD: &str = "whsec-old-0123456789abcdef";
const NEW: &str = "whsec-new-fedcba9876543210";
const ROBOT_KEY: &str = "robot-key-5f1e";
const DING: &str = "SECding-secret-77";
const PASSWORD: &str = "relay-password-19";

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(data: &std::path::Path) -> (Service, String) {
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
    cmd.env("APERTURE_TOKEN_RATE", "10000");
    let mut child = cmd.spawn().expect("aperture serve starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("listening: ") {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("aperture serve prints its address");
    (Service(child), base)
}

struct Api {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let r = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("PUT", Some(b)) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .send_json(b),
            (_, Some(b)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(b),
            (_, None) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty(),
        };
        let mut r = r.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().unwrap_or_default())
    }

    /// The answer's text, which must be a success and carry no secret.
    fn clean(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, text) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {text}"
        );
        for secret in [OLD, NEW, ROBOT_KEY, DING, PASSWORD] {
            assert!(
                !text.contains(secret),
                "{method} {path} shows a secret: {text}"
            );
        }
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

fn signed_with(r: &Received, secret: &str) -> bool {
    let Some((t, v1)) = r
        .header("x-aperture-signature")
        .and_then(|s| s.split_once(",v1="))
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v)))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(&r.body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    v1 == want
}

#[test]
fn secrets_are_never_shown_and_are_changed_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::admin_cli(dir.path(), &["tenant-create", "acme", "Acme"]);
    let token = common::admin_cli(
        dir.path(),
        &["token-create", "--name", "t", "--role", "admin"],
    )
    .0
    .trim()
    .to_owned();
    let (_service, base) = start(dir.path());
    let api = Api {
        agent: ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .new_agent(),
        base,
        token,
    };
    let rx = Receiver::start();
    let hook = |secret: &str| json!({"id": "hook", "name": "hook", "kind": "webhook", "url": rx.url("/hook"), "secret": secret});
    let ch = "/v1/tenants/acme/alerts/channels";
    let made = api.clean("POST", ch, Some(&hook(OLD)));
    assert_eq!(made["has_secret"], true, "{made}");
    assert_eq!(made["needs_secret"], false, "{made}");
    api.clean(
        "POST",
        ch,
        Some(&json!({"id": "ding", "name": "ding", "kind": "dingtalk",
            "url": format!("https://oapi.dingtalk.com/robot/send?access_token={ROBOT_KEY}"), "secret": DING})),
    );
    api.clean(
        "POST",
        ch,
        Some(
            &json!({"id": "mail", "name": "mail", "kind": "email", "email": {
            "host": "127.0.0.1", "port": 1, "username": "u", "password": PASSWORD,
            "from": "a@example.com", "to": ["b@example.com"]}}),
        ),
    );
    let listed = api.clean("GET", ch, None);
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
    for id in ["hook", "ding", "mail"] {
        let one = api.clean("GET", &format!("{ch}/{id}"), None);
        assert_eq!(one["has_secret"], true, "{one}");
    }

    // The test message is signed with the secret the channel has.
    let test = format!("{ch}/hook/test");
    api.clean("POST", &test, None);
    let got = rx.to("/hook");
    assert!(got.len() == 1 && signed_with(&got[0], OLD) && !signed_with(&got[0], NEW));

    // Refused changes say what is wrong and change nothing.
    let mut renamed = hook(NEW);
    renamed["id"] = json!("other");
    for (path, body, status, want) in [
        (
            format!("{ch}/hook"),
            json!({"id": "hook", "name": "hook", "kind": "slack", "url": rx.url("/hook")}),
            409,
            "kind",
        ),
        (format!("{ch}/hook"), renamed.clone(), 409, "id"),
        (
            format!("{ch}/hook"),
            json!({"id": "hook", "name": "hook", "kind": "webhook", "url": rx.url("/hook"), "secret": "short"}),
            400,
            "secret",
        ),
        (
            format!("{ch}/nope"),
            json!({"id": "nope", "name": "n", "kind": "webhook", "url": rx.url("/x"), "secret": NEW}),
            404,
            "nope",
        ),
    ] {
        let (s, text) = api.call("PUT", &path, Some(&body));
        assert_eq!(s, status, "{path} {body}: {text}");
        assert!(text.contains(want), "{text} should mention {want}");
    }
    api.clean("POST", &test, None);
    assert!(
        signed_with(&rx.to("/hook")[1], OLD),
        "a refused change changed the secret"
    );

    // A new secret: shown as a flag only, and the next message is signed with it.
    let changed = api.clean("PUT", &format!("{ch}/hook"), Some(&hook(NEW)));
    assert_eq!(changed["has_secret"], true, "{changed}");
    api.clean("POST", &test, None);
    let got = rx.to("/hook");
    assert!(got.len() == 3 && signed_with(&got[2], NEW) && !signed_with(&got[2], OLD));

    // Nor does the audit log of all this carry one.
    let audit = api.clean("GET", "/v1/audit?limit=1000", None);
    assert!(
        audit
            .to_string()
            .contains("PUT /v1/tenants/acme/alerts/channels/hook"),
        "{audit}"
    );
}
