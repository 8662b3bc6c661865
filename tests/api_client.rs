//! The Rust client generated from the description (`aperture-client`, progenitor) drives
//! the real binary on 127.0.0.1: it lists, filters and pages assets a loopback connect scan
//! stored. Proof that the description is usable, not only valid.

mod common;

use aperture_client::types;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn call(base: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json");
    let body = body
        .map(|b| serde_json::to_vec(&b).expect("JSON"))
        .unwrap_or_default();
    let mut resp = agent
        .run(req.body(body).expect("request"))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[test]
fn the_generated_client_lists_filters_and_pages_assets() {
    let data = tempfile::tempdir().expect("temp dir");
    let (out, _) = common::admin_cli(
        data.path(),
        &["token-create", "--name", "admin", "--role", "admin"],
    );
    let token = out.trim().to_owned();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = Command::new(common::bin());
    cmd.args(["serve", "--data"])
        .arg(data.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("APERTURE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("APERTURE_ENGINE", "connect");
    let mut child = cmd.spawn().expect("aperture serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let _service = Killed(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("listening:") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the service listens");
    let base = format!("http://127.0.0.1:{port}");

    // Three services on loopback, found by a connect scan of exactly their ports.
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("listener"))
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().expect("address").port())
        .collect();
    call(
        &base,
        &token,
        "POST",
        "/v1/tenants",
        Some(json!({"id": "acme", "name": "Acme"})),
    );
    call(
        &base,
        &token,
        "PUT",
        "/v1/tenants/acme/scope",
        Some(json!({"cidrs": ["127.0.0.1/32"], "allow_special": true})),
    );
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let ports_text = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let scan = call(
        &base,
        &token,
        "POST",
        "/v1/tenants/acme/scans",
        Some(
            json!({"targets": ["127.0.0.1"], "ports": ports_text, "probe": "connect", "grab": false, "rate": 100}),
        ),
    );
    let id = scan["id"].as_str().expect("scan id").to_owned();
    let start = Instant::now();
    loop {
        let v = call(
            &base,
            &token,
            "GET",
            &format!("/v1/tenants/acme/scans/{id}"),
            None,
        );
        assert_ne!(v["state"], "failed", "{v}");
        if v["state"] == "completed" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "scan {id}: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Now only the generated client.
    let mut headers = aperture_client::reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let http = aperture_client::reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("reqwest client");
    let api = aperture_client::Client::new_with_client(&base, http);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let tenant: types::ListAssetsTenant = "acme".parse().expect("tenant id");
        let service: types::ListAssetsKind = "service".parse().expect("kind");
        // A time as the generated client writes it (chrono's RFC 3339, nanoseconds).
        let since = types::TimeInput::DateTime(
            aperture_client::chrono::DateTime::from_timestamp_millis(before - 60_000)
                .expect("a time"),
        );
        // Page through the services one at a time.
        let mut seen = Vec::new();
        let mut cursor: Option<types::ListAssetsCursor> = None;
        loop {
            let page = api
                .list_assets(
                    &tenant,
                    None,
                    cursor.as_ref(),
                    None,
                    Some(&since),
                    None,
                    Some(&service),
                    None,
                    None,
                    NonZeroU32::new(1),
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                )
                .await
                .expect("list_assets")
                .into_inner();
            assert!(page.items.len() <= 1, "a page of one");
            seen.extend(page.items.iter().map(|a| a.key.to_string()));
            match page.next {
                Some(n) => cursor = Some(n.parse().expect("cursor")),
                None => break,
            }
        }
        let mut want: Vec<String> = ports
            .iter()
            .map(|p| format!("service:127.0.0.1:{p}/tcp"))
            .collect();
        want.sort();
        seen.sort();
        assert_eq!(seen, want, "every service, each on one page");

        // A filter: one port, one service.
        let one = api
            .list_assets(
                &tenant,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                Some(i32::from(ports[1])),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            )
            .await
            .expect("list_assets by port")
            .into_inner();
        let keys: Vec<String> = one.items.iter().map(|a| a.key.to_string()).collect();
        assert_eq!(keys, [format!("service:127.0.0.1:{}/tcp", ports[1])]);

        // A filter that matches nothing is an empty page, not an error.
        let later = types::TimeInput::Int64(before + 3_600_000);
        let none = api
            .list_assets(
                &tenant,
                None,
                None,
                None,
                Some(&later),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            )
            .await
            .expect("list_assets from the future")
            .into_inner();
        assert!(none.items.is_empty() && none.next.is_none());

        // A body time as the generated client writes it: taken, and answered in ms.
        let expires_ms = before + 86_400_000;
        let sanction = types::NewSanction {
            expires: Some(types::TimeInput::DateTime(
                aperture_client::chrono::DateTime::from_timestamp_millis(expires_ms)
                    .expect("a time"),
            )),
            match_: serde_json::from_value(serde_json::json!({"port": ports[0]})).expect("a match"),
            owner: "ops".parse().expect("owner"),
            reason: "the test's own listener".parse().expect("reason"),
            ticket: None,
        };
        let made = api
            .create_sanction(&"acme".parse().expect("tenant id"), &sanction)
            .await
            .expect("create_sanction with an RFC 3339 expiry")
            .into_inner();
        assert_eq!(made.expires.map(|e| *e), Some(expires_ms));

        // Errors come back typed as the description says (problem documents).
        let missing: types::ListAssetsTenant = "nobody".parse().expect("tenant id");
        let err = api
            .list_assets(
                &missing, None, None, None, None, None, None, None, None, None, None, None, None,
                None, None, None, None, None, None, None, None,
            )
            .await
            .expect_err("no such tenant");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(404), "{err}");
    });
    drop(listeners);
}
