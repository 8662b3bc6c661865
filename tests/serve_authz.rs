//! The authorisation matrix of `aperture serve`, against the real binary.
//!
//! Every route × method of the router, for every kind of caller (admin, analyst,
//! remediator, viewer of each tenant, no token, a revoked token, garbage tokens), on the
//! caller's own tenant, on the other tenant, on a tenant that does not exist, and with the
//! other tenant's object ids in the caller's own tenant. The expected outcome of each cell
//! comes from the policy table below ([`ROUTES`]), not from the service.
//!
//! Besides the status of each cell it checks that
//! - refused requests change nothing (the store, read through the admin API, is the same
//!   before and after them) and leak nothing (no body names another tenant's objects);
//! - a foreign tenant answers exactly like a tenant that does not exist;
//! - every mutating request, refused ones included, is in the audit log with its status,
//!   outcome and source address;
//! - bad input is a 4xx problem document that says what was wrong and changes nothing;
//! - the per-token rate limit answers 429 with Retry-After.
//!
//! Only 127.0.0.1 is contacted: the service itself, and the scans it runs probe
//! 127.0.0.1 only, on the service's port, a listener of this test and three released
//! (closed) ephemeral ports.

mod common;

use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------
// The policy under test.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Admin,
    Analyst,
    Remediator,
    Viewer,
}

use Role::*;

/// Every role of a tenant may read it.
const READ: &[Role] = &[Admin, Analyst, Remediator, Viewer];
/// Scope, sanctions, scans, schedules, policy: admin and analyst.
const WRITE: &[Role] = &[Admin, Analyst];
/// Finding transitions, assignment, comments, verification: also remediators.
const REMEDIATE: &[Role] = &[Admin, Analyst, Remediator];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// No token needed; a bad one is ignored.
    Public,
    /// Any valid token.
    AnyToken,
    /// Admin tokens only (403 for the others).
    AdminOnly,
    /// A tenant route: 404 for a tenant the token is not bound to, 403 for a role not
    /// listed, then the handler.
    Tenant(&'static [Role]),
}

#[derive(Debug)]
struct Route {
    method: &'static str,
    path: &'static str,
    access: Access,
    /// The status an allowed caller gets with the valid request this test sends.
    ok: u16,
}

const fn route(method: &'static str, path: &'static str, access: Access, ok: u16) -> Route {
    Route {
        method,
        path,
        access,
        ok,
    }
}

/// Every route of `api/src/serve/mod.rs`. [`openapi_lists_exactly_the_matrix`] checks this
/// against the service's own OpenAPI document, so a new route cannot escape the matrix.
const ROUTES: &[Route] = &[
    route("GET", "/healthz", Access::Public, 200),
    route("GET", "/metrics", Access::Public, 200),
    route("GET", "/openapi.json", Access::Public, 200),
    route("GET", "/v1/tenants", Access::AnyToken, 200),
    route("POST", "/v1/tenants", Access::AdminOnly, 201),
    route("GET", "/v1/tenants/{tenant}", Access::Tenant(READ), 200),
    route("GET", "/v1/tokens", Access::AdminOnly, 200),
    route("POST", "/v1/tokens", Access::AdminOnly, 201),
    route("DELETE", "/v1/tokens/{id}", Access::AdminOnly, 200),
    route("GET", "/v1/audit", Access::AdminOnly, 200),
    route("GET", "/v1/workers", Access::AdminOnly, 409),
    route(
        "GET",
        "/v1/tenants/{tenant}/scope",
        Access::Tenant(READ),
        200,
    ),
    route(
        "PUT",
        "/v1/tenants/{tenant}/scope",
        Access::Tenant(WRITE),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/scans",
        Access::Tenant(READ),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/scans",
        Access::Tenant(WRITE),
        201,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/scans/{scan}",
        Access::Tenant(READ),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/scans/{scan}/cancel",
        Access::Tenant(WRITE),
        200,
    ),
    // Remote workers: this service runs its scans in-process, so an allowed caller is
    // told there are none (409) — after the same authorisation as everywhere.
    route(
        "POST",
        "/v1/tenants/{tenant}/scans/{scan}/retry",
        Access::Tenant(WRITE),
        409,
    ),
    // A scan may be let out of the windows only when it verifies a finding: the
    // tenant's plain scan is refused (409) after the same authorisation as everywhere.
    route(
        "POST",
        "/v1/tenants/{tenant}/scans/{scan}/override-windows",
        Access::Tenant(WRITE),
        409,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/windows",
        Access::Tenant(READ),
        200,
    ),
    route(
        "PUT",
        "/v1/tenants/{tenant}/windows",
        Access::Tenant(WRITE),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/schedules",
        Access::Tenant(READ),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/schedules",
        Access::Tenant(WRITE),
        201,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/schedules/{schedule}",
        Access::Tenant(READ),
        200,
    ),
    route(
        "DELETE",
        "/v1/tenants/{tenant}/schedules/{schedule}",
        Access::Tenant(WRITE),
        204,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/assets",
        Access::Tenant(READ),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/exports/assets",
        Access::Tenant(READ),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/assets/{asset}",
        Access::Tenant(READ),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/changes",
        Access::Tenant(READ),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/sanctions",
        Access::Tenant(READ),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/sanctions",
        Access::Tenant(WRITE),
        201,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/sanctions/{sanction}",
        Access::Tenant(READ),
        200,
    ),
    route(
        "PUT",
        "/v1/tenants/{tenant}/sanctions/{sanction}",
        Access::Tenant(WRITE),
        200,
    ),
    route(
        "DELETE",
        "/v1/tenants/{tenant}/sanctions/{sanction}",
        Access::Tenant(WRITE),
        204,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/discovery",
        Access::Tenant(READ),
        200,
    ),
    // Seedless settings (see discovery_body): refused by validation, so no loop runs.
    route(
        "PUT",
        "/v1/tenants/{tenant}/discovery",
        Access::Tenant(WRITE),
        400,
    ),
    // No settings, so nothing to run: 409 once authorised.
    route(
        "POST",
        "/v1/tenants/{tenant}/discovery/run",
        Access::Tenant(WRITE),
        409,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/candidates",
        Access::Tenant(READ),
        200,
    ),
    // No candidate exists here (the discovery lab test decides real ones): no cells.
    route(
        "GET",
        "/v1/tenants/{tenant}/candidates/{candidate}",
        Access::Tenant(READ),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/candidates/{candidate}/approve",
        Access::Tenant(WRITE),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/candidates/{candidate}/dismiss",
        Access::Tenant(WRITE),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/provenance",
        Access::Tenant(READ),
        200,
    ),
    // The asset ledger: edited by who edits sanctions, read by every role. The matrix
    // sends JSON, so an allowed import is told to send CSV (415); tests/ledger.rs
    // covers imports.
    route(
        "GET",
        "/v1/tenants/{tenant}/assets/{asset}/attributes",
        Access::Tenant(READ),
        200,
    ),
    route(
        "PUT",
        "/v1/tenants/{tenant}/assets/{asset}/attributes",
        Access::Tenant(WRITE),
        200,
    ),
    route(
        "PATCH",
        "/v1/tenants/{tenant}/assets/{asset}/attributes",
        Access::Tenant(WRITE),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/assets/attributes",
        Access::Tenant(WRITE),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/ledger/import",
        Access::Tenant(WRITE),
        415,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/ledger",
        Access::Tenant(READ),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/policy",
        Access::Tenant(READ),
        200,
    ),
    route(
        "PUT",
        "/v1/tenants/{tenant}/policy",
        Access::Tenant(WRITE),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/findings",
        Access::Tenant(READ),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/findings/{finding}",
        Access::Tenant(READ),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/findings/{finding}/transitions",
        Access::Tenant(REMEDIATE),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/findings/{finding}/assign",
        Access::Tenant(REMEDIATE),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/findings/{finding}/comments",
        Access::Tenant(REMEDIATE),
        200,
    ),
    // Allowed, but the lifecycle refuses: only a finding claimed fixed is verified, and
    // this test never claims a fix (that would start a verification scan).
    route(
        "POST",
        "/v1/tenants/{tenant}/findings/{finding}/verify",
        Access::Tenant(REMEDIATE),
        409,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/reports/summary",
        Access::Tenant(READ),
        200,
    ),
    // Generated reports: analysts make them and set the schedule, every role reads.
    route(
        "GET",
        "/v1/tenants/{tenant}/reports",
        Access::Tenant(READ),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/reports",
        Access::Tenant(WRITE),
        201,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/reports/schedule",
        Access::Tenant(READ),
        200,
    ),
    route(
        "PUT",
        "/v1/tenants/{tenant}/reports/schedule",
        Access::Tenant(WRITE),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/reports/{report}",
        Access::Tenant(READ),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/reports/{report}/html",
        Access::Tenant(READ),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/reports/{report}/pdf",
        Access::Tenant(READ),
        200,
    ),
    // The vulnerability data is the provider's, shared by every tenant.
    route("GET", "/v1/vulndb", Access::AdminOnly, 200),
    route("POST", "/v1/vulndb/imports", Access::AdminOnly, 200),
    // Alerts: channels and rules are the analysts'. The channels' receiver is a closed
    // port, so an allowed test reports it was not delivered (200, delivered: false); no
    // dead letter exists, so an allowed replay finds none (404).
    route(
        "GET",
        "/v1/tenants/{tenant}/alerts/channels",
        Access::Tenant(READ),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/alerts/channels",
        Access::Tenant(WRITE),
        201,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/alerts/channels/{channel}",
        Access::Tenant(READ),
        200,
    ),
    route(
        "PUT",
        "/v1/tenants/{tenant}/alerts/channels/{channel}",
        Access::Tenant(WRITE),
        200,
    ),
    route(
        "DELETE",
        "/v1/tenants/{tenant}/alerts/channels/{channel}",
        Access::Tenant(WRITE),
        204,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/alerts/channels/{channel}/test",
        Access::Tenant(WRITE),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/alerts/rules",
        Access::Tenant(READ),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/alerts/rules",
        Access::Tenant(WRITE),
        201,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/alerts/rules/{rule}",
        Access::Tenant(READ),
        200,
    ),
    route(
        "PUT",
        "/v1/tenants/{tenant}/alerts/rules/{rule}",
        Access::Tenant(WRITE),
        200,
    ),
    route(
        "DELETE",
        "/v1/tenants/{tenant}/alerts/rules/{rule}",
        Access::Tenant(WRITE),
        204,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/alerts/outbox",
        Access::Tenant(READ),
        200,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/alerts/dead-letters",
        Access::Tenant(READ),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/alerts/dead-letters/{letter}/replay",
        Access::Tenant(WRITE),
        404,
    ),
    // SIEM export: destinations are the analysts' (their receiver is a closed port of
    // this machine); the export itself is readable like the change feed.
    route(
        "GET",
        "/v1/tenants/{tenant}/siem/destinations",
        Access::Tenant(READ),
        200,
    ),
    route(
        "POST",
        "/v1/tenants/{tenant}/siem/destinations",
        Access::Tenant(WRITE),
        201,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/siem/destinations/{destination}",
        Access::Tenant(READ),
        200,
    ),
    route(
        "DELETE",
        "/v1/tenants/{tenant}/siem/destinations/{destination}",
        Access::Tenant(WRITE),
        204,
    ),
    route(
        "GET",
        "/v1/tenants/{tenant}/siem/events",
        Access::Tenant(READ),
        200,
    ),
];

const TENANTS: [&str; 2] = ["alpha", "beta"];
/// A well-formed tenant id that does not exist.
const GHOST: &str = "ghost";
const DAY_MS: i64 = 86_400_000;

// ---------------------------------------------------------------------------------------
// The service under test.

/// A running `aperture serve`, killed (by its PID) when dropped, also on panic.
struct Service {
    child: Child,
    base: String,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("service stderr:\n{}", self.stderr().join("\n"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn start(data: &Path, env: &[(&str, &str)]) -> Service {
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
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("aperture serve starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.starts_with("listening:") {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let service = Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            log,
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => assert!(
                line.contains(&format!("127.0.0.1:{port}")),
                "listening on the asked port: {line}"
            ),
            Err(_) => panic!("no 'listening:' line; stderr: {:?}", service.stderr()),
        }
        service
    }

    fn stderr(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local address")
        .port()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

fn admin_cli(data: &Path, args: &[&str]) -> (String, String) {
    common::admin_cli(data, args)
}

/// (token id, secret) of a new token.
fn cli_token(data: &Path, name: &str, role: &str, tenant: Option<&str>) -> (String, String) {
    let mut args = vec!["token-create", "--name", name, "--role", role];
    if let Some(t) = tenant {
        args.extend(["--tenant", t]);
    }
    let (out, err) = admin_cli(data, &args);
    let id = err
        .split_whitespace()
        .find(|w| w.starts_with("tok-"))
        .unwrap_or_else(|| panic!("token id in {err:?}"))
        .to_owned();
    let secret = out.trim().to_owned();
    assert!(secret.starts_with("apt_"), "secret on stdout: {out:?}");
    (id, secret)
}

// ---------------------------------------------------------------------------------------
// HTTP.

#[derive(Debug, Clone)]
struct Resp {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("JSON body ({e}): {}", self.body))
    }
}

/// One mutating request as sent, for the audit check.
#[derive(Debug, Clone)]
struct Sent {
    action: String,
    status: u16,
    /// Token id, or `anonymous`.
    actor: String,
}

enum Body<'a> {
    None,
    Json(&'a Value),
    Raw(&'a [u8]),
    /// Not JSON at all (text/plain).
    Text(&'a str),
}

struct Client {
    agent: ureq::Agent,
    base: String,
    journal: RefCell<Vec<Sent>>,
}

impl Client {
    fn new(base: &str) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            // A fresh connection per request: the service closes a connection whose
            // request body it refused unread, and a pooled one would then fail the next
            // request.
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build()
            .into();
        Client {
            agent,
            base: base.to_owned(),
            journal: RefCell::new(Vec::new()),
        }
    }

    fn send(&self, method: &str, path: &str, auth: Option<&Principal>, body: Body<'_>) -> Resp {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(h) = auth.and_then(|p| p.header.as_deref()) {
            req = req.header("Authorization", h);
        }
        let result = match body {
            Body::None if matches!(method, "GET" | "DELETE") => {
                self.agent.run(req.body(()).expect("request"))
            }
            // POST without a body: an explicit empty one (Content-Length: 0).
            Body::None => self.agent.run(req.body(Vec::new()).expect("request")),
            Body::Json(v) => self.agent.run(
                req.header("Content-Type", "application/json")
                    .body(serde_json::to_vec(v).expect("JSON"))
                    .expect("request"),
            ),
            Body::Raw(b) => self.agent.run(
                req.header("Content-Type", "application/json")
                    .body(b.to_vec())
                    .expect("request"),
            ),
            Body::Text(t) => self.agent.run(
                req.header("Content-Type", "text/plain")
                    .body(t.to_owned())
                    .expect("request"),
            ),
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let status = resp.status().as_u16();
        // Binary bodies (a report's PDF) are read lossily: what matters is that they
        // name nothing of another tenant.
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap_or_else(|e| panic!("{method} {path}: body: {e}"));
        let body = String::from_utf8_lossy(&bytes).into_owned();
        if method != "GET" {
            self.journal.borrow_mut().push(Sent {
                action: format!("{method} {}", path.split('?').next().unwrap_or(path)),
                status,
                actor: auth
                    .and_then(|p| p.token_id.clone())
                    .unwrap_or_else(|| "anonymous".into()),
            });
        }
        Resp {
            status,
            content_type,
            retry_after,
            body,
        }
    }

    fn get(&self, p: &Principal, path: &str) -> Resp {
        self.send("GET", path, Some(p), Body::None)
    }

    /// A request that must answer `status`; its JSON body (Null when empty).
    fn expect(
        &self,
        p: &Principal,
        method: &str,
        path: &str,
        body: Option<&Value>,
        status: u16,
    ) -> Value {
        let r = self.send(method, path, Some(p), body.map_or(Body::None, Body::Json));
        assert_eq!(
            r.status, status,
            "{method} {path} as {}: {}",
            p.label, r.body
        );
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    /// Every item of a paged listing (`cursor`/`next`, or `since`/`next` for changes).
    fn all_pages(&self, p: &Principal, path: &str, cursor_param: &str) -> Vec<Value> {
        self.pages_after(p, path, cursor_param, None)
    }

    /// The items after cursor `from` (None: from the start).
    fn pages_after(
        &self,
        p: &Principal,
        path: &str,
        cursor_param: &str,
        from: Option<String>,
    ) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next: Option<String> = from;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &next {
                Some(n) => format!("{path}{sep}{cursor_param}={n}"),
                None => path.to_owned(),
            };
            let page = self.expect(p, "GET", &url, None, 200);
            out.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next"].as_str() {
                Some(n) => next = Some(enc(n)),
                None => return out,
            }
        }
    }
}

/// Percent-encodes what may not stand in a path segment or a query value.
fn enc(s: &str) -> String {
    s.replace('%', "%25")
        .replace('/', "%2F")
        .replace(':', "%3A")
        .replace('?', "%3F")
        .replace('&', "%26")
        .replace('[', "%5B")
        .replace(']', "%5D")
}

/// The inverse of [`enc`].
fn dec(s: &str) -> String {
    s.replace("%2F", "/")
        .replace("%3A", ":")
        .replace("%3F", "?")
        .replace("%26", "&")
        .replace("%5B", "[")
        .replace("%5D", "]")
        .replace("%25", "%")
}

/// A problem document with a useful detail.
fn assert_problem(r: &Resp, status: u16, what: &str) -> String {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert!(
        r.content_type.starts_with("application/problem+json"),
        "{what}: content type {:?}",
        r.content_type
    );
    let v = r.json();
    assert_eq!(v["status"], status, "{what}: {}", r.body);
    let detail = v["detail"].as_str().unwrap_or_default().to_owned();
    assert!(detail.len() >= 10, "{what}: a helpful detail: {}", r.body);
    detail
}

// ---------------------------------------------------------------------------------------
// Who calls.

#[derive(Debug, Clone)]
struct Principal {
    label: String,
    /// The Authorization header, if any.
    header: Option<String>,
    /// None: not authenticated (401 everywhere but public routes).
    role: Option<Role>,
    /// The tenant a non-admin token is bound to.
    tenant: Option<&'static str>,
    token_id: Option<String>,
}

impl Principal {
    fn token(
        label: &str,
        id: String,
        secret: &str,
        role: Role,
        tenant: Option<&'static str>,
    ) -> Self {
        Principal {
            label: label.to_owned(),
            header: Some(format!("Bearer {secret}")),
            role: Some(role),
            tenant,
            token_id: Some(id),
        }
    }

    /// A caller the service must not authenticate (audited as anonymous).
    fn unauthenticated(label: &str, header: Option<&str>) -> Self {
        Principal {
            label: label.to_owned(),
            header: header.map(str::to_owned),
            role: None,
            tenant: None,
            token_id: None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// What each tenant has.

/// Ids of one tenant's objects.
#[derive(Debug, Clone, Default)]
struct Objects {
    scan: String,
    sanction: String,
    schedule: String,
    finding: String,
    /// Asset key of the tenant's service, e.g. `service:127.0.0.1:40000/tcp`.
    asset: String,
    /// The port of that service.
    port: u16,
    /// The sanction as created (PUT sends it back unchanged).
    sanction_body: Value,
    /// An alert channel and a rule using it.
    channel: String,
    rule: String,
    /// A generated report.
    report: String,
    /// A SIEM destination.
    destination: String,
}

fn destination_body(id: &str) -> Value {
    // Port 9 (discard) of this machine: nothing listens, the exporter is refused.
    json!({"id": id, "name": id, "address": "127.0.0.1:9"})
}

fn channel_body(id: &str) -> Value {
    // Port 9 (discard) of this machine: nothing listens, a test is refused at once.
    json!({"id": id, "name": id, "kind": "webhook", "url": "http://127.0.0.1:9/hook",
        "secret": "authz-test-secret-0123"})
}

fn rule_body(id: &str, channel: &str) -> Value {
    json!({"id": id, "name": id, "events": ["asset.new"], "channels": [channel]})
}

/// Strings of a tenant nobody else may see.
fn secrets_of(tenant: &str, fx: &Fixture) -> Vec<String> {
    let mut s = vec![
        format!("\"{tenant}\""),
        fx.names[tenant].clone(),
        format!("owner-{tenant}-q7"),
        format!("{tenant} approved exposure"),
        format!("{tenant} nightly"),
        format!("127.0.0.1:{}", fx.own[tenant].port),
    ];
    // Hash-like ids only: numbered ones (s-2, scan-2) are reused by every tenant.
    s.push(fx.own[tenant].finding.clone());
    s.push(fx.own[tenant].asset.clone());
    for p in &fx.principals {
        if p.tenant == Some(tenant) {
            s.extend(p.token_id.clone());
        }
    }
    s
}

struct Fixture {
    names: BTreeMap<&'static str, String>,
    own: BTreeMap<&'static str, Objects>,
    /// Ids that exist only in this tenant (for the foreign-id cells), by path parameter.
    foreign: BTreeMap<&'static str, BTreeMap<&'static str, String>>,
    principals: Vec<Principal>,
    admin: Principal,
    /// A live token the refused cells try to revoke and the admin cell revokes.
    spare_token: String,
    policy: Value,
    /// Closed ports of this machine, for slow scans the cancel cells stop.
    closed_ports: Vec<u16>,
}

fn sanction_body(tenant: &str, n: usize) -> Value {
    json!({
        "match": {"net": "192.0.2.0/24", "port": 1000 + n},
        "owner": format!("owner-{tenant}-q7"),
        "reason": format!("{tenant} approved exposure {n}"),
        "ticket": format!("T-{n}"),
    })
}

fn scan_body(port: u16) -> Value {
    json!({"targets": ["127.0.0.1"], "ports": port.to_string(), "grab": false})
}

fn schedule_body(tenant: &str, port: u16, n: usize) -> Value {
    json!({
        "name": format!("{tenant} nightly {n}"),
        "request": scan_body(port),
        "interval_secs": 3600,
        "first_run": now_ms() + DAY_MS,
    })
}

/// Discovery settings without a seed: an allowed caller gets the validation's 400 (a
/// valid one would start a loop, whose scans change the store behind the matrix's
/// back); the discovery lab test covers the successful calls.
fn discovery_body() -> Value {
    json!({"max_depth": 1})
}

fn scope_body() -> Value {
    json!({"cidrs": ["127.0.0.0/24"], "allow_special": true})
}

/// Polls a scan until it is no longer queued or running; its final state.
fn wait_scan(c: &Client, admin: &Principal, tenant: &str, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = c.expect(
            admin,
            "GET",
            &format!("/v1/tenants/{tenant}/scans/{id}"),
            None,
            200,
        );
        let state = v["state"].as_str().unwrap_or_default().to_owned();
        if state != "queued" && state != "running" {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "scan {tenant}/{id} still {state}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until no scan of these tenants is queued or running, and no worker is still
/// winding one down (a cancelled scan's worker writes its last record when it stops).
fn wait_idle(c: &Client, admin: &Principal, tenants: &[&str]) {
    for t in tenants {
        let scans = c.expect(admin, "GET", &format!("/v1/tenants/{t}/scans"), None, 200);
        for s in scans.as_array().expect("scan list") {
            let id = s["id"].as_str().expect("scan id");
            wait_scan(c, admin, t, id);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = c.expect(admin, "GET", "/healthz", None, 200);
        if h["scans_running"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "workers still busy: {h}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Everything a refused request could change, read through the admin API.
fn snapshot(c: &Client, admin: &Principal, tenants: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(
        "tenants".into(),
        c.expect(admin, "GET", "/v1/tenants", None, 200),
    );
    out.insert(
        "tokens".into(),
        c.expect(admin, "GET", "/v1/tokens", None, 200),
    );
    for t in tenants {
        let base = format!("/v1/tenants/{t}");
        let mut m = serde_json::Map::new();
        for part in ["scope", "scans", "schedules", "sanctions", "policy"] {
            m.insert(
                part.into(),
                c.expect(admin, "GET", &format!("{base}/{part}"), None, 200),
            );
        }
        let findings = c.all_pages(admin, &format!("{base}/findings"), "cursor");
        m.insert(
            "transition_counts".into(),
            findings
                .iter()
                .map(|f| json!([f["id"], f["transitions"].as_array().map_or(0, Vec::len)]))
                .collect(),
        );
        m.insert("findings".into(), Value::Array(findings));
        m.insert(
            "assets".into(),
            Value::Array(c.all_pages(admin, &format!("{base}/assets"), "cursor")),
        );
        m.insert(
            "changes".into(),
            Value::Array(c.all_pages(admin, &format!("{base}/changes"), "since")),
        );
        out.insert((*t).to_owned(), Value::Object(m));
    }
    Value::Object(out)
}

/// The audit records after `after` (a seq), oldest first; and the last seq.
fn audit_after(c: &Client, admin: &Principal, after: Option<u64>) -> Vec<Value> {
    c.pages_after(admin, "/v1/audit", "cursor", after.map(|s| s.to_string()))
}

fn last_seq(c: &Client, admin: &Principal) -> Option<u64> {
    audit_after(c, admin, None)
        .last()
        .and_then(|r| r["seq"].as_u64())
}

/// The audit log holds one record per mutating request of `sent`, in order.
fn assert_audited(records: &[Value], sent: &[Sent], what: &str) {
    assert_eq!(
        records.len(),
        sent.len(),
        "{what}: one audit record per mutating request; records: {records:#?}"
    );
    for (r, s) in records.iter().zip(sent) {
        let outcome = if (200..300).contains(&s.status) {
            "ok"
        } else if (400..500).contains(&s.status) {
            "refused"
        } else {
            "failed"
        };
        assert_eq!(r["action"], s.action.as_str(), "{what}: {r}");
        assert_eq!(r["status"], s.status, "{what}: {r}");
        assert_eq!(r["outcome"], outcome, "{what}: {r}");
        assert!(
            r["actor"].as_str().unwrap_or_default().contains(&s.actor),
            "{what}: actor {} for {}",
            r["actor"],
            s.actor
        );
        assert!(
            r["source"]
                .as_str()
                .unwrap_or_default()
                .starts_with("127.0.0.1:"),
            "{what}: source address: {r}"
        );
        let tenant = s
            .action
            .split('/')
            .nth(3)
            .filter(|_| s.action.contains("/v1/tenants/"));
        if let Some(t) = tenant {
            assert_eq!(r["tenant"], t, "{what}: tenant of {r}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The matrix.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// The target tenant's own objects.
    Own,
    /// Object ids (path or query) of the other tenant, under the target tenant's path.
    ForeignIds,
}

#[derive(Debug, Clone)]
struct Cell {
    route: usize,
    principal: usize,
    /// The tenant in the path, if the route has one.
    tenant: Option<&'static str>,
    variant: Variant,
    path: String,
    expect: u16,
    /// The policy allows the caller (expect is the handler's answer).
    allowed: bool,
}

fn other(t: &str) -> &'static str {
    if t == "alpha" {
        "beta"
    } else {
        "alpha"
    }
}

/// The path of a route for a tenant, with ids of `ids` (None: a parameter with no id of
/// that kind, so the cell does not exist).
fn fill(path: &str, tenant: &str, ids: &BTreeMap<&'static str, String>) -> Option<String> {
    let mut out = path.replace("{tenant}", tenant);
    for param in [
        "id",
        "scan",
        "schedule",
        "asset",
        "sanction",
        "finding",
        "channel",
        "rule",
        "letter",
        "candidate",
        "report",
        "destination",
    ] {
        let hole = format!("{{{param}}}");
        if out.contains(&hole) {
            out = out.replace(&hole, &enc(ids.get(param)?));
        }
    }
    Some(out)
}

fn has_object_id(path: &str) -> bool {
    [
        "{scan}",
        "{schedule}",
        "{asset}",
        "{sanction}",
        "{finding}",
        "{channel}",
        "{rule}",
        "{letter}",
        "{report}",
        "{destination}",
    ]
    .iter()
    .any(|p| path.contains(p))
}

fn own_ids(fx: &Fixture, tenant: &str) -> BTreeMap<&'static str, String> {
    let o = &fx.own[if tenant == GHOST { "alpha" } else { tenant }];
    BTreeMap::from([
        ("id", fx.spare_token.clone()),
        ("scan", o.scan.clone()),
        ("schedule", o.schedule.clone()),
        ("asset", o.asset.clone()),
        ("sanction", o.sanction.clone()),
        ("finding", o.finding.clone()),
        ("channel", o.channel.clone()),
        ("destination", o.destination.clone()),
        ("rule", o.rule.clone()),
        ("letter", format!("{}.none.{}", o.finding, o.channel)),
        ("report", o.report.clone()),
    ])
}

fn expectation(
    route: &Route,
    p: &Principal,
    tenant: Option<&str>,
    variant: Variant,
) -> (u16, bool) {
    let Some(role) = p.role else {
        return if route.access == Access::Public {
            (route.ok, true)
        } else {
            (401, false)
        };
    };
    match route.access {
        Access::Public | Access::AnyToken => (route.ok, true),
        Access::AdminOnly => {
            if role == Admin {
                (route.ok, true)
            } else {
                (403, false)
            }
        }
        Access::Tenant(roles) => {
            let tenant = tenant.expect("tenant route");
            let visible = role == Admin || p.tenant == Some(tenant);
            if !visible || tenant == GHOST {
                (404, false)
            } else if !roles.contains(&role) {
                (403, false)
            } else if variant == Variant::ForeignIds {
                (404, false)
            } else {
                (route.ok, true)
            }
        }
    }
}

fn cells(fx: &Fixture) -> Vec<Cell> {
    let mut out = Vec::new();
    for (ri, r) in ROUTES.iter().enumerate() {
        let tenants: Vec<Option<&'static str>> = if r.path.contains("{tenant}") {
            vec![Some("alpha"), Some("beta"), Some(GHOST)]
        } else {
            vec![None]
        };
        for (pi, p) in fx.principals.iter().enumerate() {
            for &t in &tenants {
                let mut variants = vec![(Variant::Own, own_ids(fx, t.unwrap_or("alpha")))];
                if let Some(t) = t.filter(|t| *t != GHOST) {
                    let mut ids = own_ids(fx, t);
                    ids.retain(|k, _| *k == "id");
                    ids.extend(fx.foreign[other(t)].clone());
                    variants.push((Variant::ForeignIds, ids));
                }
                for (variant, ids) in variants {
                    if variant == Variant::ForeignIds && !has_object_id(r.path) {
                        // No object id in this route: the Own cell covers it.
                        continue;
                    }
                    let Some(path) = fill(r.path, t.unwrap_or(""), &ids) else {
                        continue;
                    };
                    let (expect, allowed) = expectation(r, p, t, variant);
                    out.push(Cell {
                        route: ri,
                        principal: pi,
                        tenant: t,
                        variant,
                        path,
                        expect,
                        allowed,
                    });
                }
            }
        }
    }
    out
}

/// The valid body a cell sends (refused cells send the same valid body, so a refusal can
/// only be the authorisation's).
fn body_for(
    route: &Route,
    tenant: Option<&str>,
    p: &Principal,
    fx: &Fixture,
    n: usize,
) -> Option<Value> {
    let t = tenant.unwrap_or("alpha");
    let own = &fx.own[if t == GHOST { "alpha" } else { t }];
    Some(match (route.method, route.path) {
        ("POST", "/v1/tenants") => json!({"id": "gamma", "name": "Gamma Test"}),
        ("POST", "/v1/tokens") => {
            json!({"name": "made-by-test", "role": "viewer", "tenants": ["alpha"]})
        }
        ("PUT", x) if x.ends_with("/scope") => scope_body(),
        ("PUT", x) if x.ends_with("/discovery") => discovery_body(),
        // No windows, no cap: the other cells' scans run as before.
        ("PUT", x) if x.ends_with("/windows") => json!({}),
        ("POST", x) if x.ends_with("/override-windows") => json!({"reason": "authz test"}),
        ("POST", x) if x.ends_with("/reports") => json!({"period": "daily", "lang": "zh-CN"}),
        ("PUT", x) if x.ends_with("/reports/schedule") => {
            json!({"daily": false, "weekly": false, "monthly": false, "lang": "en"})
        }
        ("POST", x) if x.ends_with("/scans") => scan_body(own.port),
        ("POST", x) if x.ends_with("/schedules") => schedule_body(t, own.port, 100 + n),
        ("POST", x) if x.ends_with("/sanctions") => sanction_body(t, 100 + n),
        ("PUT", x) if x.ends_with("/{sanction}") => own.sanction_body.clone(),
        ("PUT", x) if x.ends_with("/policy") => fx.policy.clone(),
        ("PUT", x) if x.ends_with("/attributes") => {
            json!({"owner": "ledger-owner", "tags": ["authz"]})
        }
        ("PATCH", x) if x.ends_with("/attributes") => json!({"add_tags": ["patched"]}),
        ("POST", x) if x.ends_with("/assets/attributes") => json!({"add_tags": ["bulk"]}),
        ("POST", x) if x.ends_with("/ledger/import") => json!({"asset": "host:127.0.0.1"}),
        ("POST", x) if x.ends_with("/transitions") => {
            // Allowed callers walk the finding open → acknowledged → in-progress →
            // acknowledged, one valid step each (admin, analyst, remediator in that order).
            let to = if p.role == Some(Analyst) {
                "in-progress"
            } else {
                "acknowledged"
            };
            json!({"to": to, "comment": "step by the authz test"})
        }
        ("POST", x) if x.ends_with("/alerts/channels") => channel_body(&format!("ch-{n}")),
        ("POST", x) if x.ends_with("/alerts/rules") => rule_body(&format!("r-{n}"), &own.channel),
        ("POST", x) if x.ends_with("/siem/destinations") => destination_body(&format!("d-{n}")),
        ("PUT", x) if x.ends_with("/{rule}") => rule_body(&own.rule, &own.channel),
        ("PUT", x) if x.ends_with("/alerts/channels/{channel}") => channel_body(&own.channel),
        ("POST", x) if x.ends_with("/assign") => json!({"assignee": "remediation-team"}),
        ("POST", x) if x.ends_with("/comments") => json!({"text": "checked by the authz test"}),
        // A KEV catalogue: importing it again is a no-op, so every allowed cell gets 200.
        ("POST", "/v1/vulndb/imports") => json!({
            "title": "CISA Catalog of Known Exploited Vulnerabilities",
            "catalogVersion": "2026.12.01", "dateReleased": "2026-12-01T00:00:00.000Z",
            "count": 1,
            "vulnerabilities": [{"cveID": "CVE-2024-6387", "vendorProject": "OpenBSD",
                "product": "OpenSSH", "vulnerabilityName": "OpenSSH signal handler race",
                "dateAdded": "2024-07-01", "shortDescription": "test", "requiredAction": "patch",
                "dueDate": "2024-07-22", "knownRansomwareCampaignUse": "Unknown", "notes": "",
                "cwes": ["CWE-364"]}]
        }),
        _ => return None,
    })
}

/// No body of `r` names a secret of another tenant, unless the request itself did.
fn assert_no_leak(r: &Resp, request: &str, secrets: &[String], what: &str) {
    for s in secrets {
        if request.contains(s.as_str()) {
            continue;
        }
        assert!(
            !r.body.contains(s.as_str()),
            "{what}: the response names {s:?} of another tenant: {}",
            r.body
        );
    }
}

/// Secrets a principal must never see: the other tenant's, or both for the
/// unauthenticated; none for an admin.
fn secrets_for(p: &Principal, fx: &Fixture) -> Vec<String> {
    match (p.role, p.tenant) {
        (Some(Admin), _) => Vec::new(),
        (Some(_), Some(t)) => secrets_of(other(t), fx),
        _ => TENANTS.iter().flat_map(|t| secrets_of(t, fx)).collect(),
    }
}

/// An object an allowed destructive cell consumes, made by the admin just before.
fn fresh_object(
    c: &Client,
    fx: &Fixture,
    route: &Route,
    tenant: &str,
    n: usize,
) -> Option<(&'static str, String)> {
    let admin = &fx.admin;
    let base = format!("/v1/tenants/{tenant}");
    let own = &fx.own[tenant];
    let id = |v: Value| v["id"].as_str().expect("id").to_owned();
    match (route.method, route.path) {
        ("DELETE", x) if x.ends_with("/{sanction}") => {
            let body = sanction_body(tenant, 200 + n);
            let v = c.expect(
                admin,
                "POST",
                &format!("{base}/sanctions"),
                Some(&body),
                201,
            );
            Some(("sanction", id(v)))
        }
        ("DELETE", x) if x.ends_with("/{schedule}") => {
            let body = schedule_body(tenant, own.port, 200 + n);
            let v = c.expect(
                admin,
                "POST",
                &format!("{base}/schedules"),
                Some(&body),
                201,
            );
            Some(("schedule", id(v)))
        }
        ("DELETE", x) if x.ends_with("/{channel}") => {
            let ch = format!("del-ch-{n}");
            c.expect(
                admin,
                "POST",
                &format!("{base}/alerts/channels"),
                Some(&channel_body(&ch)),
                201,
            );
            Some(("channel", ch))
        }
        ("DELETE", x) if x.ends_with("/{destination}") => {
            let d = format!("del-d-{n}");
            c.expect(
                admin,
                "POST",
                &format!("{base}/siem/destinations"),
                Some(&destination_body(&d)),
                201,
            );
            Some(("destination", d))
        }
        ("DELETE", x) if x.ends_with("/{rule}") => {
            let r = format!("del-r-{n}");
            let body = rule_body(&r, &own.channel);
            c.expect(
                admin,
                "POST",
                &format!("{base}/alerts/rules"),
                Some(&body),
                201,
            );
            Some(("rule", r))
        }
        ("POST", x) if x.ends_with("/cancel") => {
            // One probe a second over a few ports of this machine: still running when
            // the cancel arrives.
            let mut ports = vec![own.port.to_string()];
            ports.extend(fx.closed_ports.iter().map(u16::to_string));
            let body = json!({
                "targets": ["127.0.0.1"], "ports": ports.join(","), "grab": false, "rate": 1
            });
            let v = c.expect(admin, "POST", &format!("{base}/scans"), Some(&body), 201);
            Some(("scan", id(v)))
        }
        _ => None,
    }
}

fn setup(c: &Client, fx: &mut Fixture, beta_port: u16, service_port: u16) {
    let admin = fx.admin.clone();
    let ports = [("alpha", service_port), ("beta", beta_port)];
    let mut scans = Vec::new();
    for (t, port) in ports {
        let base = format!("/v1/tenants/{t}");
        c.expect(
            &admin,
            "PUT",
            &format!("{base}/scope"),
            Some(&scope_body()),
            200,
        );
        // Beta gets one more of each numbered object than alpha: its extra ids exist only
        // in beta, for the cells that put them under alpha's path.
        let extra = usize::from(t == "beta");
        let mut o = Objects {
            port,
            asset: format!("service:127.0.0.1:{port}/tcp"),
            ..Objects::default()
        };
        for n in 1..=1 + extra {
            let body = sanction_body(t, n);
            let v = c.expect(
                &admin,
                "POST",
                &format!("{base}/sanctions"),
                Some(&body),
                201,
            );
            if n == 1 {
                o.sanction = v["id"].as_str().expect("sanction id").to_owned();
                o.sanction_body = body;
            } else {
                fx.foreign
                    .entry(t)
                    .or_default()
                    .insert("sanction", v["id"].as_str().expect("id").to_owned());
            }
        }
        for n in 1..=1 + extra {
            let v = c.expect(
                &admin,
                "POST",
                &format!("{base}/scans"),
                Some(&scan_body(port)),
                201,
            );
            let id = v["id"].as_str().expect("scan id").to_owned();
            scans.push((t, id.clone()));
            if n == 1 {
                o.scan = id;
            } else {
                fx.foreign.entry(t).or_default().insert("scan", id);
            }
        }
        for n in 1..=1 + extra {
            let body = schedule_body(t, port, n);
            let v = c.expect(
                &admin,
                "POST",
                &format!("{base}/schedules"),
                Some(&body),
                201,
            );
            let id = v["id"].as_str().expect("schedule id").to_owned();
            assert!(v["next_run"].as_i64().expect("next_run") > now_ms() + DAY_MS / 2);
            if n == 1 {
                o.schedule = id;
            } else {
                fx.foreign.entry(t).or_default().insert("schedule", id);
            }
        }
        // Reports: made by the admin, one each (beta's extra one is foreign to alpha).
        for n in 1..=1 + extra {
            let v = c.expect(
                &admin,
                "POST",
                &format!("{base}/reports"),
                Some(&json!({"period": "daily"})),
                201,
            );
            let id = v["id"].as_str().expect("report id").to_owned();
            if n == 1 {
                o.report = id;
            } else {
                fx.foreign.entry(t).or_default().insert("report", id);
            }
        }
        // Alert channel and rule ids are the tenant's own names: beta's extra ones are
        // named so that alpha has none of them.
        for n in 1..=1 + extra {
            let (ch, r) = (format!("{t}-ch{n}"), format!("{t}-r{n}"));
            c.expect(
                &admin,
                "POST",
                &format!("{base}/alerts/channels"),
                Some(&channel_body(&ch)),
                201,
            );
            c.expect(
                &admin,
                "POST",
                &format!("{base}/alerts/rules"),
                Some(&rule_body(&r, &ch)),
                201,
            );
            let d = format!("{t}-d{n}");
            c.expect(
                &admin,
                "POST",
                &format!("{base}/siem/destinations"),
                Some(&destination_body(&d)),
                201,
            );
            if n == 1 {
                (o.channel, o.rule, o.destination) = (ch, r, d);
            } else {
                let foreign = fx.foreign.entry(t).or_default();
                foreign.insert("channel", ch);
                foreign.insert("rule", r);
                foreign.insert("destination", d);
            }
        }
        fx.own.insert(t, o);
    }
    for (t, id) in &scans {
        assert_eq!(
            wait_scan(c, &admin, t, id),
            "completed",
            "setup scan {t}/{id}"
        );
    }
    for t in TENANTS {
        let o = fx.own.get_mut(t).expect("objects");
        let assets = c.all_pages(&admin, &format!("/v1/tenants/{t}/assets"), "cursor");
        assert!(
            assets.iter().any(|a| a["key"] == o.asset.as_str()),
            "{t} has its service {}: {assets:?}",
            o.asset
        );
        let findings = c.all_pages(&admin, &format!("/v1/tenants/{t}/findings"), "cursor");
        let f = findings
            .iter()
            .find(|f| f["rule"] == "unsanctioned" && f["asset"] == o.asset.as_str())
            .unwrap_or_else(|| panic!("{t}: an unsanctioned finding on {}: {findings:?}", o.asset));
        assert_eq!(f["state"], "open");
        o.finding = f["id"].as_str().expect("finding id").to_owned();
        let mine = fx.foreign.entry(t).or_default();
        mine.insert("finding", o.finding.clone());
        mine.insert("asset", o.asset.clone());
    }
    assert_ne!(fx.own["alpha"].finding, fx.own["beta"].finding);
    fx.policy = c.expect(&admin, "GET", "/v1/tenants/alpha/policy", None, 200);
}

/// Runs cells, checking status, problem documents and leaks; the bodies by cell index.
fn run_cells(
    c: &Client,
    fx: &Fixture,
    all: &[Cell],
    pick: impl Fn(&Cell) -> bool,
) -> BTreeMap<usize, Resp> {
    let mut out = BTreeMap::new();
    for (i, cell) in all.iter().enumerate().filter(|(_, c)| pick(c)) {
        let route = &ROUTES[cell.route];
        let p = &fx.principals[cell.principal];
        let mut path = cell.path.clone();
        if cell.allowed {
            if let Some(t) = cell.tenant {
                if let Some((param, id)) = fresh_object(c, fx, route, t, i) {
                    let mut ids = own_ids(fx, t);
                    ids.insert(param, id);
                    path = fill(route.path, t, &ids).expect("path");
                }
            }
        }
        let body = body_for(route, cell.tenant, p, fx, i);
        let r = c.send(
            route.method,
            &path,
            Some(p),
            body.as_ref().map_or(Body::None, Body::Json),
        );
        let what = format!(
            "{} {path} as {} ({:?}, {})",
            route.method,
            p.label,
            cell.variant,
            if cell.allowed { "allowed" } else { "refused" }
        );
        assert_eq!(r.status, cell.expect, "{what}: {}", r.body);
        if r.status >= 400 {
            assert_problem(&r, cell.expect, &what);
        }
        let request = format!(
            "{} {}",
            dec(&path),
            body.map(|b| b.to_string()).unwrap_or_default()
        );
        assert_no_leak(&r, &request, &secrets_for(p, fx), &what);
        out.insert(i, r);
    }
    out
}

/// A tenant the caller may not see answers exactly like one that does not exist.
fn assert_no_existence_oracle(fx: &Fixture, all: &[Cell], got: &BTreeMap<usize, Resp>) -> usize {
    let mut compared = 0;
    for (i, cell) in all.iter().enumerate() {
        let p = &fx.principals[cell.principal];
        let (Some(t), Some(bound), Some(role)) = (cell.tenant, p.tenant, p.role) else {
            continue;
        };
        if role == Admin || t == GHOST || t == bound || cell.variant != Variant::Own {
            continue;
        }
        let ghost = all.iter().position(|g| {
            g.principal == cell.principal
                && g.route == cell.route
                && g.tenant == Some(GHOST)
                && g.variant == Variant::Own
        });
        let (Some(foreign), Some(ghost)) = (got.get(&i), ghost.and_then(|g| got.get(&g))) else {
            continue;
        };
        assert_eq!(
            (foreign.status, foreign.body.replace(t, GHOST)),
            (ghost.status, ghost.body.clone()),
            "{} {} as {}: a foreign tenant must look like a missing one",
            ROUTES[cell.route].method,
            cell.path,
            p.label
        );
        compared += 1;
    }
    compared
}

/// Query strings naming the other tenant's objects answer with nothing of it.
fn foreign_queries(c: &Client, fx: &Fixture) -> usize {
    let mut n = 0;
    for p in &fx.principals {
        let (Some(_), Some(t)) = (p.role, p.tenant) else {
            continue;
        };
        let theirs = &fx.own[other(t)];
        let mine = &fx.own[t];
        let secrets = secrets_for(p, fx);
        for (path, own_path) in [
            (
                format!("/v1/tenants/{t}/findings?asset={}", enc(&theirs.asset)),
                format!("/v1/tenants/{t}/findings?asset={}", enc(&mine.asset)),
            ),
            (
                format!("/v1/tenants/{t}/assets?port={}", theirs.port),
                format!("/v1/tenants/{t}/assets?port={}", mine.port),
            ),
            (
                format!(
                    "/v1/tenants/{t}/assets?kind=service&net=127.0.0.1&port={}",
                    theirs.port
                ),
                format!(
                    "/v1/tenants/{t}/assets?kind=service&net=127.0.0.1&port={}",
                    mine.port
                ),
            ),
        ] {
            let r = c.get(p, &path);
            assert_eq!(r.status, 200, "{path} as {}: {}", p.label, r.body);
            assert_eq!(r.json()["items"], json!([]), "{path} as {}", p.label);
            assert_no_leak(&r, &dec(&path), &secrets, &path);
            // The same filter on the caller's own object finds it: the filter works.
            let mine_r = c.get(p, &own_path);
            assert_eq!(mine_r.status, 200, "{own_path}: {}", mine_r.body);
            assert_eq!(
                mine_r.json()["items"].as_array().map(Vec::len),
                Some(1),
                "{own_path}"
            );
            n += 2;
        }
        let path = format!(
            "/v1/tenants/{t}/exports/assets?port={}&format=jsonl",
            theirs.port
        );
        let r = c.get(p, &path);
        assert_eq!((r.status, r.body.as_str()), (200, ""), "{path}");
        let path = format!("/v1/tenants/{t}/exports/assets");
        let r = c.get(p, &path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(
            r.body.contains(&mine.asset),
            "{path}: own export: {}",
            r.body
        );
        assert_no_leak(&r, &path, &secrets, &path);
        // The tenant list of a bound token names its tenant only.
        let r = c.get(p, "/v1/tenants");
        let list = r.json();
        let ids: BTreeSet<String> = list
            .as_array()
            .expect("tenant list")
            .iter()
            .filter_map(|x| x["id"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            ids,
            BTreeSet::from([t.to_owned()]),
            "tenants seen by {}",
            p.label
        );
        n += 3;
    }
    n
}

/// The OpenAPI document lists exactly the routes of the matrix (less itself).
fn openapi_lists_exactly_the_matrix(c: &Client, anyone: &Principal) {
    let doc = c.expect(anyone, "GET", "/openapi.json", None, 200);
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("path item") {
            let m = method.to_ascii_uppercase();
            if [
                "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE",
            ]
            .contains(&m.as_str())
            {
                documented.insert((m, path.clone()));
            }
        }
    }
    let matrix: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|r| r.path != "/openapi.json")
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(
        documented, matrix,
        "the router's routes and the matrix differ: add the new route to ROUTES with its policy"
    );
}

/// Bad input: a 4xx problem document whose detail says what was wrong; nothing changes.
fn bad_input(c: &Client, fx: &Fixture) -> usize {
    let admin = &fx.admin;
    let analyst = fx
        .principals
        .iter()
        .find(|p| p.label == "alpha-analyst")
        .expect("alpha analyst");
    // gamma (made by the admin cell of POST /v1/tenants) has not opted in to
    // special-purpose ranges.
    c.expect(
        admin,
        "PUT",
        "/v1/tenants/gamma/scope",
        Some(&json!({"cidrs": ["127.0.0.0/24"]})),
        200,
    );
    let tenants = ["alpha", "beta", "gamma"];
    let before = snapshot(c, admin, &tenants);
    let seq = last_seq(c, admin);
    let mark = c.journal.borrow().len();
    let a = "/v1/tenants/alpha";
    let port = fx.own["alpha"].port;
    let mut n = 0;
    let mut check =
        |p: &Principal, method: &str, path: &str, body: Body<'_>, status: u16, needle: &str| {
            let r = c.send(method, path, Some(p), body);
            let detail = assert_problem(&r, status, &format!("{method} {path}"));
            assert!(
                detail.to_lowercase().contains(&needle.to_lowercase()),
                "{method} {path}: the detail should mention {needle:?}: {detail}"
            );
            n += 1;
            r
        };
    let scope = format!("{a}/scope");
    check(
        analyst,
        "PUT",
        &scope,
        Body::Raw(b"{\"cidrs\": ["),
        400,
        "JSON",
    );
    check(
        analyst,
        "PUT",
        &scope,
        Body::Raw(b"\"all of it\""),
        400,
        "expected struct Scope",
    );
    check(
        analyst,
        "PUT",
        &scope,
        Body::Json(&json!({"cidrs": ["127.0.0.0/24"], "colour": "blue"})),
        400,
        "colour",
    );
    check(
        analyst,
        "PUT",
        &scope,
        Body::Json(&json!({"cidrs": ["127.0.0.0/33"]})),
        400,
        "cidrs",
    );
    check(
        analyst,
        "PUT",
        &scope,
        Body::Json(&json!({"domains": ["exa mple.com"]})),
        400,
        "exa mple.com",
    );
    check(
        analyst,
        "PUT",
        &scope,
        Body::Text("cidrs=127.0.0.0/24"),
        415,
        "application/json",
    );
    let mut huge = sanction_body("alpha", 999);
    huge["reason"] = json!("x".repeat(70 * 1024));
    check(
        analyst,
        "POST",
        &format!("{a}/sanctions"),
        Body::Json(&huge),
        413,
        "body_limit",
    );
    check(
        analyst,
        "POST",
        &format!("{a}/sanctions"),
        Body::Json(&json!({"match": {}, "owner": "o", "reason": "r"})),
        400,
        "at least one of",
    );
    check(
        analyst,
        "POST",
        &format!("{a}/sanctions"),
        Body::Json(&json!({"match": {"port": 22, "proto": "udp"}, "owner": "o", "reason": "r"})),
        400,
        "tcp",
    );
    let r = check(
        analyst,
        "POST",
        &format!("{a}/scans"),
        Body::Json(
            &json!({"targets": ["127.0.0.1", "127.0.1.1"], "ports": port.to_string(), "grab": false}),
        ),
        403,
        "not authorised",
    );
    let refused = r.json()["refused"].clone();
    assert_eq!(refused.as_array().map(Vec::len), Some(1), "{refused}");
    assert_eq!(refused[0]["target"], "127.0.1.1", "{refused}");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("outside"),
        "{refused}"
    );
    let r = check(
        admin,
        "POST",
        "/v1/tenants/gamma/scans",
        Body::Json(&scan_body(port)),
        403,
        "not authorised",
    );
    let refused = r.json()["refused"].clone();
    assert_eq!(refused[0]["target"], "127.0.0.1", "{refused}");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("special-purpose"),
        "{refused}"
    );
    check(
        analyst,
        "POST",
        &format!("{a}/scans"),
        Body::Json(&json!({"targets": [], "grab": false})),
        400,
        "targets",
    );
    check(
        analyst,
        "POST",
        &format!("{a}/scans"),
        Body::Json(&json!({"targets": ["127.0.0.1"], "ports": port.to_string(), "rate": 0})),
        400,
        "rate",
    );
    check(
        analyst,
        "POST",
        &format!("{a}/scans"),
        Body::Json(&json!({"targets": ["127.0.0.1"], "ports": "99999"})),
        400,
        "99999",
    );
    let mut sched = schedule_body("alpha", port, 900);
    sched["interval_secs"] = json!(10);
    check(
        analyst,
        "POST",
        &format!("{a}/schedules"),
        Body::Json(&sched),
        400,
        "interval_secs",
    );
    let mut sched = schedule_body("alpha", port, 901);
    sched["request"]["targets"] = json!(["127.0.1.1"]);
    check(
        analyst,
        "POST",
        &format!("{a}/schedules"),
        Body::Json(&sched),
        403,
        "not authorised",
    );
    let mut sched = schedule_body("alpha", port, 902);
    sched["request"]["targets"] = json!([]);
    check(
        analyst,
        "POST",
        &format!("{a}/schedules"),
        Body::Json(&sched),
        400,
        "targets",
    );
    let mut sched = schedule_body("alpha", port, 903);
    sched["request"]["rate"] = json!(0);
    check(
        analyst,
        "POST",
        &format!("{a}/schedules"),
        Body::Json(&sched),
        400,
        "rate",
    );
    let mut sched = schedule_body("alpha", port, 904);
    sched["request"]["ports"] = json!("99999");
    check(
        analyst,
        "POST",
        &format!("{a}/schedules"),
        Body::Json(&sched),
        400,
        "99999",
    );
    let finding = format!("{a}/findings/{}", fx.own["alpha"].finding);
    check(
        analyst,
        "POST",
        &format!("{finding}/transitions"),
        Body::Json(&json!({"to": "closed-verified"})),
        409,
        "verification",
    );
    check(
        analyst,
        "POST",
        &format!("{finding}/transitions"),
        Body::Json(&json!({"to": "risk-accepted", "comment": "fine"})),
        409,
        "expiry",
    );
    check(
        analyst,
        "POST",
        &format!("{finding}/transitions"),
        Body::Json(&json!({"to": "gone"})),
        400,
        "to",
    );
    check(
        analyst,
        "POST",
        &format!("{finding}/assign"),
        Body::Json(&json!({"assignee": " "})),
        400,
        "assignee",
    );
    check(
        analyst,
        "POST",
        &format!("{finding}/comments"),
        Body::Json(&json!({"text": ""})),
        400,
        "text",
    );
    check(
        admin,
        "POST",
        "/v1/tenants",
        Body::Json(&json!({"id": "Bad Id", "name": "x"})),
        400,
        "tenant id",
    );
    check(
        admin,
        "POST",
        "/v1/tenants",
        Body::Json(&json!({"id": "alpha", "name": "again"})),
        409,
        "exists",
    );
    check(
        admin,
        "POST",
        "/v1/tokens",
        Body::Json(&json!({"name": "nobody", "role": "viewer"})),
        400,
        "tenant",
    );
    check(
        admin,
        "POST",
        "/v1/tokens",
        Body::Json(&json!({"name": "x", "role": "viewer", "tenants": ["nowhere"]})),
        // A well-formed id of no tenant: the request is valid, the tenant is not there.
        404,
        "nowhere",
    );
    check(
        admin,
        "POST",
        "/v1/tokens",
        Body::Json(&json!({"name": "x", "role": "root"})),
        400,
        "role",
    );
    check(
        admin,
        "DELETE",
        "/v1/tokens/tok-000000000000",
        Body::None,
        404,
        "tok-000000000000",
    );
    // Reads.
    let reads: [(&Principal, String, u16, &str); 16] = [
        (analyst, format!("{a}/assets?cursor=garbage"), 400, "cursor"),
        (admin, "/v1/audit?cursor=garbage".into(), 400, "cursor"),
        (
            analyst,
            format!("{a}/findings?cursor=garbage"),
            400,
            "cursor",
        ),
        (analyst, format!("{a}/assets?colour=red"), 400, "colour"),
        (analyst, format!("{a}/findings?colour=red"), 400, "colour"),
        (admin, "/v1/audit?colour=red".into(), 400, "colour"),
        (
            analyst,
            format!("{a}/changes?since=yesterday"),
            400,
            "since",
        ),
        (analyst, format!("{a}/assets?status=maybe"), 400, "status"),
        (analyst, format!("{a}/assets?net=300.1.1.1"), 400, "net"),
        (analyst, format!("{a}/assets?limit=-1"), 400, "limit"),
        (analyst, format!("{a}/findings?state=solved"), 400, "state"),
        (
            analyst,
            format!("{a}/exports/assets?format=xml"),
            400,
            "format",
        ),
        (analyst, format!("{a}/assets?format=csv"), 400, "exports"),
        (analyst, format!("{a}/assets/not-a-key"), 400, "host:ADDR"),
        (analyst, "/v1/tenants/ALPHA".into(), 404, "ALPHA"),
        (analyst, "/v1/nothing-here".into(), 404, "openapi"),
    ];
    for (p, path, status, needle) in &reads {
        check(p, "GET", path, Body::None, *status, needle);
    }
    // A feed with one bad record: refused whole, naming the file and the record.
    let vulndb_before = c.expect(admin, "GET", "/v1/vulndb", None, 200);
    check(
        admin,
        "POST",
        "/v1/vulndb/imports?name=kev.json",
        Body::Raw(
            br#"{"catalogVersion": "2", "count": 2, "vulnerabilities": [
                {"cveID": "CVE-2024-0001", "dateAdded": "2024-01-01"},
                {"cveID": "CVE-1", "dateAdded": "2024-01-01"}]}"#,
        ),
        400,
        "kev.json: record 1 (CVE-1)",
    );
    check(
        admin,
        "POST",
        "/v1/vulndb/imports",
        Body::Raw(b"{\"format\": \"NVD_CVE\", \"version\": \"1.1\"}"),
        400,
        "only 2.0",
    );
    assert_eq!(
        c.expect(admin, "GET", "/v1/vulndb", None, 200),
        vulndb_before,
        "a refused import stored something"
    );
    // A page above the cap is clamped, not refused.
    let cap = c.expect(admin, "GET", "/v1/audit?limit=100000", None, 200);
    assert_eq!(
        cap["items"].as_array().map(Vec::len),
        Some(PAGE_CAP),
        "audit page clamped to the cap"
    );
    assert!(cap["next"].is_string(), "more after a clamped page");
    let r = c.expect(
        analyst,
        "GET",
        &format!("{a}/assets?limit=100000"),
        None,
        200,
    );
    assert!(r["items"]
        .as_array()
        .is_some_and(|i| !i.is_empty() && i.len() <= PAGE_CAP));
    let r = c.expect(
        analyst,
        "GET",
        &format!("{a}/findings?limit=100000"),
        None,
        200,
    );
    assert!(r["items"]
        .as_array()
        .is_some_and(|i| !i.is_empty() && i.len() <= PAGE_CAP));
    n += 3;

    let after = snapshot(c, admin, &tenants);
    assert!(
        before == after,
        "bad input changed the store:\nbefore {before:#}\nafter {after:#}"
    );
    let sent: Vec<Sent> = c.journal.borrow()[mark..].to_vec();
    assert_audited(&audit_after(c, admin, seq), &sent, "bad input");
    n
}

/// The main instance's page cap (small, so clamping is visible).
const PAGE_CAP: usize = 50;

#[test]
fn authorisation_matrix() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    admin_cli(&data, &["tenant-create", "alpha", "Alpha Industries"]);
    admin_cli(&data, &["tenant-create", "beta", "Beta Logistics"]);
    let (admin_id, admin_secret) = cli_token(&data, "admin", "admin", None);
    let admin = Principal::token("admin", admin_id, &admin_secret, Admin, None);
    let mut principals = vec![admin.clone()];
    for t in TENANTS {
        for (role, name) in [
            (Analyst, "analyst"),
            (Remediator, "remediator"),
            (Viewer, "viewer"),
        ] {
            let label = format!("{t}-{name}");
            let (id, secret) = cli_token(&data, &label, name, Some(t));
            principals.push(Principal::token(&label, id, &secret, role, Some(t)));
        }
    }
    let (revoked_id, revoked_secret) = cli_token(&data, "alpha-revoked", "analyst", Some("alpha"));
    let (spare_id, _) = cli_token(&data, "alpha-spare", "viewer", Some("alpha"));
    principals.push(Principal::unauthenticated("anonymous", None));
    principals.push(Principal::unauthenticated(
        "revoked",
        Some(&format!("Bearer {revoked_secret}")),
    ));
    principals.push(Principal::unauthenticated(
        "garbage",
        Some("Bearer apt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ));
    principals.push(Principal::unauthenticated(
        "not-bearer",
        Some("Basic YWRtaW46YWRtaW4="),
    ));
    principals.push(Principal::unauthenticated(
        "no-prefix",
        Some(&format!("Bearer {}", &admin_secret[4..])),
    ));

    // Beta's service: a listener of this test. Closed ports: bound once, then released.
    let beta_service = TcpListener::bind("127.0.0.1:0").expect("beta's listener");
    let beta_port = beta_service.local_addr().expect("addr").port();
    let closed_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();

    let svc = Service::start(
        &data,
        &[
            ("APERTURE_ENGINE", "connect"),
            ("APERTURE_TOKEN_RATE", "100000"),
            ("APERTURE_TENANT_SCAN_CAP", "32"),
            ("APERTURE_PAGE_CAP", &PAGE_CAP.to_string()),
            ("APERTURE_CONNECT_TIMEOUT_MS", "300"),
        ],
    );
    let c = Client::new(&svc.base);
    let mut fx = Fixture {
        names: BTreeMap::from([
            ("alpha", "Alpha Industries".to_owned()),
            ("beta", "Beta Logistics".to_owned()),
        ]),
        own: BTreeMap::new(),
        foreign: BTreeMap::new(),
        principals,
        admin: admin.clone(),
        spare_token: spare_id,
        policy: Value::Null,
        closed_ports,
    };
    setup(&c, &mut fx, beta_port, svc.port);
    c.expect(
        &admin,
        "DELETE",
        &format!("/v1/tokens/{revoked_id}"),
        None,
        200,
    );
    let setup_done = started.elapsed();

    let all = cells(&fx);
    let refused = all.iter().filter(|c| !c.allowed).count();

    // Phase A: every refused cell. Nothing may change but the audit log.
    let before = snapshot(&c, &admin, &TENANTS);
    let seq = last_seq(&c, &admin);
    let mark = c.journal.borrow().len();
    let mut got = run_cells(&c, &fx, &all, |cell| !cell.allowed);
    // A remediator may move findings, but not accept their risk.
    let remediator = fx
        .principals
        .iter()
        .find(|p| p.label == "alpha-remediator")
        .expect("remediator");
    let r = c.send(
        "POST",
        &format!("/v1/tenants/alpha/findings/{}/transitions", fx.own["alpha"].finding),
        Some(remediator),
        Body::Json(&json!({"to": "risk-accepted", "comment": "we live with it", "until": now_ms() + DAY_MS})),
    );
    assert_problem(&r, 403, "risk acceptance by a remediator");
    let after = snapshot(&c, &admin, &TENANTS);
    assert!(
        before == after,
        "refused requests changed the store:\nbefore {before:#}\nafter {after:#}"
    );
    let sent: Vec<Sent> = c.journal.borrow()[mark..].to_vec();
    assert!(
        sent.iter().all(|s| matches!(s.status, 401 | 403 | 404)),
        "{sent:?}"
    );
    let records = audit_after(&c, &admin, seq);
    assert_audited(&records, &sent, "refused requests");
    let refused_writes = sent.len();
    let oracle = assert_no_existence_oracle(&fx, &all, &got);

    // Phase B: every allowed cell, with fresh objects for the destructive ones.
    let seq = last_seq(&c, &admin);
    let mark = c.journal.borrow().len();
    got.extend(run_cells(&c, &fx, &all, |cell| cell.allowed));
    let allowed = all.len() - refused;
    let queries = foreign_queries(&c, &fx);
    wait_idle(&c, &admin, &["alpha", "beta"]);
    let sent: Vec<Sent> = c.journal.borrow()[mark..].to_vec();
    assert_audited(&audit_after(&c, &admin, seq), &sent, "allowed requests");
    // The walk the allowed transition cells made, and nothing else.
    for t in TENANTS {
        let f = c.expect(
            &admin,
            "GET",
            &format!("/v1/tenants/{t}/findings/{}", fx.own[t].finding),
            None,
            200,
        );
        let states: Vec<&str> = f["transitions"]
            .as_array()
            .expect("transitions")
            .iter()
            .filter_map(|x| x["to"].as_str())
            .collect();
        assert_eq!(
            states,
            ["open", "acknowledged", "in-progress", "acknowledged"],
            "{t}: {f}"
        );
        assert_eq!(f["assignee"], "remediation-team");
    }

    openapi_lists_exactly_the_matrix(&c, &fx.principals[fx.principals.len() - 1]);
    let bad = bad_input(&c, &fx);

    let stderr = svc.stderr();
    assert!(
        !stderr.iter().any(|l| l.contains("panicked")),
        "the service panicked: {stderr:#?}"
    );
    let tenant_cells = all.iter().filter(|c| c.tenant.is_some()).count();
    let foreign_tenant = all
        .iter()
        .filter(|c| {
            let p = &fx.principals[c.principal];
            p.role.is_some_and(|r| r != Admin) && c.tenant.is_some_and(|t| Some(t) != p.tenant)
        })
        .count();
    let foreign_ids = all
        .iter()
        .filter(|c| c.variant == Variant::ForeignIds)
        .count();
    let by_status = all.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry(c.expect).or_insert(0usize) += 1;
        m
    });
    eprintln!(
        "matrix: {} routes x {} principals: {} cells ({allowed} allowed, {refused} refused; \
         {tenant_cells} on tenant paths, {foreign_tenant} on a foreign or missing tenant, \
         {foreign_ids} with foreign ids); by status {by_status:?}; {refused_writes} refused \
         writes audited and changed nothing; {oracle} foreign-vs-missing comparisons; \
         {queries} foreign-id query checks; {bad} bad-input checks; setup {setup_done:?}, \
         total {:?}",
        ROUTES.len(),
        fx.principals.len(),
        all.len(),
        started.elapsed()
    );
    drop(beta_service);
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    admin_cli(&data, &["tenant-create", "solo", "Solo"]);
    let (id, secret) = cli_token(&data, "admin", "admin", None);
    let admin = Principal::token("admin", id, &secret, Admin, None);
    let svc = Service::start(
        &data,
        &[("APERTURE_ENGINE", "connect"), ("APERTURE_TOKEN_RATE", "2")],
    );
    let c = Client::new(&svc.base);
    let burst: Vec<Resp> = (0..8).map(|_| c.get(&admin, "/v1/tenants")).collect();
    assert_eq!(
        burst[0].status, 200,
        "the first of a burst passes: {}",
        burst[0].body
    );
    let limited: Vec<&Resp> = burst.iter().filter(|r| r.status == 429).collect();
    assert!(
        limited.len() >= 4,
        "a burst of 8 at 2/s is limited: {:?}",
        burst.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in &limited {
        assert_problem(r, 429, "rate limited");
        let secs: u64 = r
            .retry_after
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("Retry-After in seconds: {:?}", r.retry_after));
        assert!(secs >= 1);
    }
    // A limited write is still audited; a public route is not limited.
    let write = c.send(
        "POST",
        "/v1/tenants",
        Some(&admin),
        Body::Json(&json!({"id": "other", "name": "Other"})),
    );
    assert!(matches!(write.status, 201 | 429), "{}", write.body);
    assert_eq!(c.get(&admin, "/healthz").status, 200);
    // The limit refills.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = c.get(&admin, "/v1/audit");
        if r.status == 200 {
            let last = r.json()["items"]
                .as_array()
                .and_then(|i| i.last().cloned())
                .expect("audit record");
            assert_eq!(last["action"], "POST /v1/tenants");
            assert_eq!(last["status"], write.status);
            break;
        }
        assert_eq!(r.status, 429);
        assert!(Instant::now() < deadline, "the limit never refilled");
        std::thread::sleep(Duration::from_millis(100));
    }
}
