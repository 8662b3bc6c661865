//! The API's description tells the truth, against the real binary on 127.0.0.1: query
//! parameters are in the query, errors are documented problem documents, request times
//! take both forms, documented bounds are enforced, a bad export filter is refused before
//! the stream starts, and the last admin token cannot be revoked.
//! (`scripts/api-fuzz` checks the rest with schemathesis.)

mod common;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Service {
    child: Child,
    base: String,
    _data: tempfile::TempDir,
    admin: String,
    admin_id: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Service {
    let data = tempfile::tempdir().expect("temp dir");
    let (out, err) = common::admin_cli(
        data.path(),
        &["token-create", "--name", "admin", "--role", "admin"],
    );
    let admin = out.trim().to_owned();
    let admin_id = err
        .split_whitespace()
        .find(|w| w.starts_with("tok-"))
        .expect("token id")
        .to_owned();
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
    cmd.env("APERTURE_TOKEN_RATE", "10000");
    let mut child = cmd.spawn().expect("aperture serve starts");
    let stderr = child.stderr.take().expect("stderr");
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
    Service {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _data: data,
        admin,
        admin_id,
    }
}

struct Resp {
    status: u16,
    content_type: String,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("JSON ({e}): {}", self.body))
    }
}

impl Service {
    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.admin));
        let result = match body {
            Some(b) => agent.run(
                req.header("Content-Type", "application/json")
                    .body(serde_json::to_vec(b).expect("JSON"))
                    .expect("request"),
            ),
            None if method == "GET" || method == "DELETE" => {
                agent.run(req.body(()).expect("request"))
            }
            None => agent.run(req.body(Vec::new()).expect("request")),
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Resp {
            status: resp.status().as_u16(),
            content_type,
            body: resp.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let r = self.send(method, path, body);
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    fn problem(&self, method: &str, path: &str, body: Option<&Value>, status: u16) -> String {
        let r = self.send(method, path, body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        assert!(
            r.content_type.starts_with("application/problem+json"),
            "{method} {path}: content type {}",
            r.content_type
        );
        r.json()["detail"].as_str().expect("detail").to_owned()
    }
}

fn with_tenant() -> Service {
    let s = start();
    s.ok(
        "POST",
        "/v1/tenants",
        Some(&json!({"id": "acme", "name": "Acme"})),
    );
    s
}

#[test]
fn listing_parameters_are_query_parameters_and_errors_are_problem_documents() {
    let s = start();
    let doc = s.ok("GET", "/openapi.json", None);
    let mut query = 0;
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("path item") {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().expect("name");
                let placeholder = format!("{{{name}}}");
                match p["in"].as_str() {
                    Some("path") => assert!(
                        path.contains(&placeholder),
                        "{method} {path}: {name} is said to be in the path"
                    ),
                    Some("query") => {
                        query += 1;
                        assert_eq!(p["required"], false, "{method} {path} {name}");
                    }
                    other => panic!("{method} {path} {name}: in {other:?}"),
                }
            }
            for (code, r) in op["responses"].as_object().expect("responses") {
                if code.starts_with('4') {
                    let content = r["content"].as_object().expect("content");
                    assert_eq!(
                        content.keys().collect::<Vec<_>>(),
                        ["application/problem+json"],
                        "{method} {path} {code}"
                    );
                }
            }
            if op.get("security").is_some() {
                assert!(op["responses"].get("401").is_some(), "{method} {path}: 401");
            }
            if op.get("requestBody").is_some() {
                for code in ["400", "413", "415"] {
                    assert!(
                        op["responses"].get(code).is_some(),
                        "{method} {path}: {code}"
                    );
                }
            }
        }
    }
    // The five listings' filters and paging, the import's name.
    assert!(query >= 41, "{query} query parameters");
    let assets = &doc["paths"]["/v1/tenants/{tenant}/assets"]["get"]["parameters"];
    let names: Vec<&str> = assets
        .as_array()
        .expect("parameters")
        .iter()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .collect();
    for n in [
        "kind",
        "net",
        "domain",
        "first_seen_from",
        "cursor",
        "limit",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    assert!(!names.contains(&"format"), "format is the export's only");
    // What the description says is what the server does: a 415 is a problem document.
    s.problem("POST", "/v1/tenants", Some(&json!([])), 400);
    let r = s.send("POST", "/v1/tenants", None);
    assert_eq!(r.status, 415);
    assert!(r.content_type.starts_with("application/problem+json"));
}

#[test]
fn a_bad_export_filter_is_refused_before_the_stream_starts() {
    let s = with_tenant();
    for q in [
        "domain=",
        "domain=a..b",
        "net=nonsense",
        "first_seen_from=yesterday",
    ] {
        for route in ["assets", "exports/assets"] {
            let detail = s.problem("GET", &format!("/v1/tenants/acme/{route}?{q}"), None, 400);
            let field = q.split('=').next().expect("field");
            assert!(detail.contains(field), "{route}?{q}: {detail}");
        }
    }
    let r = s.send(
        "GET",
        "/v1/tenants/acme/exports/assets?domain=example.com&format=jsonl",
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.content_type.starts_with("application/x-ndjson"));
    s.problem("GET", "/v1/tenants/acme/assets?format=csv", None, 400);
    s.problem("GET", "/v1/tenants/acme/assets?limit=0", None, 400);
    s.problem(
        "GET",
        "/v1/tenants/acme/changes?since=9223372036854775808",
        None,
        400,
    );
    s.problem("GET", "/v1/tenants/acme/changes?since=-1", None, 400);
}

#[test]
fn request_times_take_unix_milliseconds_and_rfc3339_and_come_back_as_milliseconds() {
    let s = with_tenant();
    let body = |expires: Value| json!({"match": {"port": 22}, "owner": "ops", "reason": "bastion", "expires": expires});
    let a = s.ok(
        "POST",
        "/v1/tenants/acme/sanctions",
        Some(&body(json!("2026-12-07T06:39:45Z"))),
    );
    assert_eq!(a["expires"], 1_796_625_585_000i64);
    let b = s.ok(
        "POST",
        "/v1/tenants/acme/sanctions",
        Some(&body(json!(1_796_625_585_000i64))),
    );
    assert_eq!(b["expires"], 1_796_625_585_000i64);
    let c = s.ok(
        "POST",
        "/v1/tenants/acme/sanctions",
        Some(&body(json!("2026-12-07T07:39:45+01:00"))),
    );
    assert_eq!(c["expires"], 1_796_625_585_000i64);
    let d = s.ok(
        "POST",
        "/v1/tenants/acme/sanctions",
        Some(&body(json!(1.796625585e12))),
    );
    assert_eq!(
        d["expires"], 1_796_625_585_000i64,
        "a whole number written as a float"
    );
    let detail = s.problem(
        "POST",
        "/v1/tenants/acme/sanctions",
        Some(&body(json!("next tuesday"))),
        400,
    );
    assert!(detail.contains("RFC 3339"), "{detail}");
    s.ok(
        "GET",
        "/v1/tenants/acme/assets?first_seen_from=2026-12-07T06:39:45Z",
        None,
    );
    s.ok(
        "GET",
        "/v1/tenants/acme/assets?first_seen_from=1796625585000",
        None,
    );
}

#[test]
fn documented_bounds_are_enforced() {
    let s = with_tenant();
    let mut policy = s.ok("GET", "/v1/tenants/acme/policy", None);
    policy["zombie_days"] = json!(36_500);
    s.ok("PUT", "/v1/tenants/acme/policy", Some(&policy));
    for bad in [json!(36_501), json!(2_147_483_648u64), json!(-1)] {
        policy["zombie_days"] = bad.clone();
        let detail = s.problem("PUT", "/v1/tenants/acme/policy", Some(&policy), 400);
        assert!(detail.contains("zombie_days"), "{bad}: {detail}");
    }
    let doc = s.ok("GET", "/openapi.json", None);
    let days = &doc["components"]["schemas"]["PolicySettings"]["properties"]["zombie_days"];
    let days = if days.get("$ref").is_some() {
        &doc["components"]["schemas"]["Days"]
    } else {
        days
    };
    assert_eq!(days["maximum"], 36_500, "{days}");
    // A sanction must match something; the description says so too.
    let detail = s.problem(
        "POST",
        "/v1/tenants/acme/sanctions",
        Some(&json!({"match": {}, "owner": "ops", "reason": "r"})),
        400,
    );
    assert!(detail.contains("at least one"), "{detail}");
    assert!(doc["components"]["schemas"]["SanctionMatch"]["allOf"].is_array());
}

#[test]
fn the_last_admin_token_cannot_be_revoked() {
    let s = start();
    let detail = s.problem("DELETE", &format!("/v1/tokens/{}", s.admin_id), None, 409);
    assert!(
        detail.contains("Create another admin token first"),
        "{detail}"
    );
    // Still works, and the attempt is on record.
    let audit = s.ok("GET", "/v1/audit?limit=1000", None);
    let refused = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|r| r["action"] == format!("DELETE /v1/tokens/{}", s.admin_id))
        .unwrap_or_else(|| panic!("the attempt is audited: {audit}"));
    assert_eq!(refused["status"], 409);
    assert_eq!(refused["outcome"], "refused");
    // With a second admin token, the first may go.
    let second = s.ok(
        "POST",
        "/v1/tokens",
        Some(&json!({"name": "second", "role": "admin"})),
    );
    let second_id = second["token"]["id"].as_str().expect("id").to_owned();
    let gone = s.ok("DELETE", &format!("/v1/tokens/{}", s.admin_id), None);
    assert!(gone["revoked"].is_i64());
    let mut s = s;
    s.admin = second["secret"].as_str().expect("secret").to_owned();
    s.problem("DELETE", &format!("/v1/tokens/{second_id}"), None, 409);
}

/// `api/openapi.json` is the description the server generates, byte for byte in meaning:
/// integrators (and client generators) can read it from the repository without running
/// the service. `APERTURE_WRITE_OPENAPI=1` rewrites it after a change of the API.
#[test]
fn the_committed_description_is_the_generated_one() {
    let s = start();
    let served = s.ok("GET", "/openapi.json", None);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    if std::env::var_os("APERTURE_WRITE_OPENAPI").is_some() {
        let text = serde_json::to_string_pretty(&served).expect("JSON") + "\n";
        std::fs::write(&path, text).expect("write api/openapi.json");
    }
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).expect("api/openapi.json is committed"),
    )
    .expect("api/openapi.json is JSON");
    assert!(
        committed == served,
        "api/openapi.json differs from what the server generates: \
         run APERTURE_WRITE_OPENAPI=1 cargo test -p aperture-api --test api_contract"
    );
}

/// Every link of the description names an operation that exists, fills every path
/// parameter that operation has from a pointer into a documented response, and every
/// operation that takes an object id has a link that yields it: a client (or a fuzzer's
/// stateful phase) can chain create → get → change → delete without guessing ids.
#[test]
fn links_connect_every_object_id_to_the_operations_that_take_it() {
    let s = start();
    let doc = s.ok("GET", "/openapi.json", None);
    let mut ops = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if let Some(id) = op["operationId"].as_str() {
                ops.insert(id.to_owned(), (path.clone(), method.clone(), op.clone()));
            }
        }
    }
    let mut linked: std::collections::BTreeSet<(String, String)> = Default::default();
    for (producer, (_, _, op)) in &ops {
        for (status, resp) in op["responses"].as_object().expect("responses") {
            let Some(links) = resp["links"].as_object() else {
                continue;
            };
            assert!(status.starts_with('2'), "{producer}: links on a {status}");
            for (name, link) in links {
                let target = link["operationId"].as_str().expect("operationId");
                let (path, _, _) = ops
                    .get(target)
                    .unwrap_or_else(|| panic!("{producer} link {name}: no operation {target}"));
                let params = link["parameters"].as_object().expect("parameters");
                for seg in path.split('/').filter(|s| s.starts_with('{')) {
                    let p = seg.trim_matches(|c| c == '{' || c == '}');
                    let expr = params[p]
                        .as_str()
                        .unwrap_or_else(|| panic!("{producer} link {name}: {p} not filled"));
                    assert!(
                        expr.starts_with("$response.body#/") || expr == "$request.path.tenant",
                        "{producer} link {name}: {p} = {expr}"
                    );
                    linked.insert((target.to_owned(), p.to_owned()));
                }
            }
        }
    }
    for (id, (path, _, _)) in &ops {
        for seg in path.split('/').filter(|s| s.starts_with('{')) {
            let p = seg.trim_matches(|c| c == '{' || c == '}');
            // The tenant is the caller's own (it names it in every path); ids of objects
            // the API creates or lists must come from a link.
            if p != "tenant" {
                assert!(
                    linked.contains(&(id.clone(), p.to_owned())),
                    "{id} ({path}) takes {p} but no response links to it"
                );
            }
        }
    }
}
