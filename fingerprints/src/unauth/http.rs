//! HTTP APIs that answer without a login, chosen by what `GET /` showed: a directory
//! index, Elasticsearch/OpenSearch's banner, CouchDB's welcome, Kubernetes' path list,
//! Docker's `Server` header or JSON 404, etcd's plain Go 404, Prometheus' redirect to
//! `/graph` (`/classic/graph` in Debian), Grafana's `/login` or title. Each follow-up is a `GET` of a documented
//! read-only endpoint (etcd's v3 count is a `POST` of a read: `count_only`, no values),
//! on its own connection, and reads counts and versions only.

use super::{known, value, verdict, Check, Step};
use crate::http_facts::{parse_response_body, HttpFacts, Parsed};
use crate::proto::lines::safe_host;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Product {
    Elasticsearch,
    CouchDb,
    Kubernetes,
    Docker,
    Etcd,
    Prometheus,
    Grafana,
}

impl Product {
    fn check(self) -> &'static str {
        match self {
            Product::Elasticsearch => "elasticsearch",
            Product::CouchDb => "couchdb",
            Product::Kubernetes => "kubernetes",
            Product::Docker => "docker",
            Product::Etcd => "etcd",
            Product::Prometheus => "prometheus",
            Product::Grafana => "grafana",
        }
    }
}

/// A response: facts and JSON body (Null when the body is no JSON).
struct Reply {
    facts: HttpFacts,
    json: Value,
}

fn read(raw: &[u8]) -> Option<(HttpFacts, Vec<u8>)> {
    match parse_response_body(raw).ok()? {
        (Parsed::Complete { facts, .. }, body) => Some((facts, body)),
        (Parsed::Incomplete { partial }, body) => partial.map(|f| (f, body)),
    }
}

fn reply(raw: &[u8]) -> Option<Reply> {
    let (facts, body) = read(raw)?;
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Some(Reply { facts, json })
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

pub(super) fn plan(raw: &[u8], host: &str) -> Option<Box<dyn Check>> {
    let (facts, body) = read(raw)?;
    if let Some(n) = directory_listing(&facts, &body) {
        return known(
            "directory-listing",
            true,
            format!("directory listing at / ({n} entries)"),
        );
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = facts.status;
    let product = if text(&json, &["tagline"])
        .is_some_and(|t| t.contains("You Know, for Search") || t.contains("OpenSearch"))
    {
        Product::Elasticsearch
    } else if status == 401
        && facts
            .headers_named("www-authenticate")
            .any(|h| h.contains("realm=\"security\""))
    {
        return known(
            "elasticsearch",
            false,
            "elasticsearch answers 401 with realm \"security\": authentication required".into(),
        );
    } else if text(&json, &["couchdb"]) == Some("Welcome") {
        Product::CouchDb
    } else if json
        .get("paths")
        .and_then(Value::as_array)
        .is_some_and(|p| p.iter().any(|x| x.as_str() == Some("/api")))
    {
        Product::Kubernetes
    } else if matches!(status, 401 | 403) && text(&json, &["kind"]) == Some("Status") {
        return known(
            "kubernetes",
            false,
            format!("kubernetes answers GET / with {status}: authentication required"),
        );
    } else if facts
        .header("server")
        .is_some_and(|s| s.starts_with("Docker/"))
        || text(&json, &["message"]) == Some("page not found")
    {
        Product::Docker
    } else if status == 404 && body.starts_with(b"404 page not found") {
        Product::Etcd
    } else if facts
        .redirect
        .as_deref()
        // Debian's build has only the classic UI.
        .is_some_and(|r| r == "/graph" || r == "/classic/graph")
        || facts
            .title
            .as_deref()
            .is_some_and(|t| t.contains("Prometheus"))
    {
        Product::Prometheus
    } else if facts.redirect.as_deref() == Some("/login")
        || facts
            .title
            .as_deref()
            .is_some_and(|t| t.contains("Grafana"))
    {
        Product::Grafana
    } else {
        return None;
    };
    let mut chain = Chain {
        product,
        host: safe_host(Some(host)),
        stage: 0,
        notes: Vec::new(),
        readable: false,
    };
    if product == Product::Elasticsearch {
        let version = text(&json, &["version", "number"]).map(value);
        let cluster = text(&json, &["cluster_name"]).map(value);
        chain.readable = true;
        chain.notes.push(format!(
            "GET / readable (version {}, cluster {})",
            version.as_deref().unwrap_or("?"),
            cluster.as_deref().unwrap_or("?")
        ));
    }
    if product == Product::Kubernetes {
        chain.readable = true;
        chain.notes.push("GET / lists API paths".into());
    }
    Some(Box::new(chain))
}

/// An autoindex page (Apache, nginx, lighttpd): "Index of /" title, its entries counted
/// (the parent link and Apache's sort links left out).
fn directory_listing(facts: &HttpFacts, body: &[u8]) -> Option<usize> {
    if facts.status != 200 || !facts.title.as_deref()?.starts_with("Index of /") {
        return None;
    }
    let body = String::from_utf8_lossy(body);
    let lower = body.to_ascii_lowercase();
    let entries = lower
        .match_indices("<a href=\"")
        .map(|(i, m)| {
            let rest = &lower[i + m.len()..];
            &rest[..rest.find('"').unwrap_or(rest.len())]
        })
        .filter(|href| {
            !href.is_empty()
                && !href.starts_with('?')
                && !href.starts_with('/')
                && *href != "../"
                && *href != ".."
        })
        .count();
    Some(entries)
}

/// One product's follow-up requests.
#[derive(Debug)]
struct Chain {
    product: Product,
    host: String,
    stage: u8,
    notes: Vec<String>,
    /// Something only a login should show was read already.
    readable: bool,
}

/// What one reply says.
enum Judged {
    /// Note it and go on to the next request; `true`: what was read is already data
    /// anyone should not read (else it is public by design, like a health check).
    Next(String, Request, bool),
    Open(String),
    Closed(String),
    /// Not this product after all.
    NotIt,
}

enum Request {
    Get(&'static str),
    /// etcd v3 gateway: a range over every key, counting only.
    EtcdCount,
}

fn count(v: &Value) -> Option<usize> {
    v.as_array().map(Vec::len)
}

impl Chain {
    fn request(&self, r: &Request) -> Vec<u8> {
        let host = &self.host;
        match r {
            Request::Get(path) => format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Aperture\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
            )
            .into_bytes(),
            Request::EtcdCount => {
                // key "\0" with range_end "\0": every key (etcd API reference, KV.Range).
                let body = r#"{"key":"AA==","range_end":"AA==","count_only":true}"#;
                format!(
                    "POST /v3/kv/range HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Aperture\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
        }
    }

    fn first_request(&self) -> Request {
        match self.product {
            Product::Elasticsearch => Request::Get("/_cat/indices?format=json&h=index"),
            Product::CouchDb => Request::Get("/_all_dbs"),
            Product::Kubernetes | Product::Docker | Product::Etcd => Request::Get("/version"),
            Product::Prometheus => Request::Get("/api/v1/status/buildinfo"),
            Product::Grafana => Request::Get("/api/health"),
        }
    }

    fn judge(&self, r: &Reply) -> Judged {
        let ok = r.facts.status == 200;
        let j = &r.json;
        let status = r.facts.status;
        match (self.product, self.stage) {
            (Product::Elasticsearch, _) => match count(j) {
                Some(n) if ok => Judged::Open(format!("/_cat/indices lists {n} indices")),
                // The banner was readable: that alone is open, whatever the list says.
                _ => Judged::Open(String::new()),
            },
            (Product::CouchDb, _) => match count(j) {
                Some(n) if ok => Judged::Open(format!("couchdb /_all_dbs lists {n} databases")),
                _ if matches!(status, 401 | 403) => Judged::Closed(format!(
                    "couchdb answers /_all_dbs with {status}: authentication required"
                )),
                _ => Judged::NotIt,
            },
            (Product::Kubernetes, _) => match text(j, &["gitVersion"]) {
                Some(v) if ok => Judged::Open(format!("/version readable ({})", value(v))),
                _ => Judged::Open(String::new()),
            },
            (Product::Docker, 0) => match (text(j, &["Version"]), text(j, &["ApiVersion"])) {
                (Some(v), Some(api)) if ok => Judged::Next(
                    format!("docker /version: {} (API {})", value(v), value(api)),
                    Request::Get("/containers/json?all=1"),
                    true,
                ),
                _ if matches!(status, 401 | 403) => Judged::Closed(format!(
                    "docker answers /version with {status}: authentication required"
                )),
                _ => Judged::NotIt,
            },
            (Product::Docker, _) => match count(j) {
                Some(n) if ok => Judged::Open(format!("/containers/json lists {n} containers")),
                _ => Judged::Open(String::new()),
            },
            (Product::Etcd, 0) => match text(j, &["etcdserver"]) {
                Some(v) if ok => Judged::Next(
                    format!("etcd /version readable ({})", value(v)),
                    Request::EtcdCount,
                    false,
                ),
                _ => Judged::NotIt,
            },
            (Product::Etcd, _) => {
                if ok && j.get("header").is_some() {
                    // proto3 JSON leaves a zero count out; int64 is a string.
                    let n = text(j, &["count"]).map_or_else(|| "0".to_owned(), value);
                    Judged::Open(format!("v3 range over all keys counts {n} keys"))
                } else {
                    let why = text(j, &["message"])
                        .or_else(|| text(j, &["error"]))
                        .map(value)
                        .unwrap_or_else(|| status.to_string());
                    Judged::Closed(format!("etcd refuses key reads ({why})"))
                }
            }
            (Product::Prometheus, 0) => match text(j, &["data", "version"]) {
                Some(v) if ok && text(j, &["status"]) == Some("success") => Judged::Next(
                    format!("prometheus buildinfo readable ({})", value(v)),
                    Request::Get("/api/v1/targets?state=active"),
                    true,
                ),
                _ if matches!(status, 401 | 403) => Judged::Closed(format!(
                    "prometheus answers with {status}: authentication required"
                )),
                _ => Judged::NotIt,
            },
            (Product::Prometheus, _) => {
                match j
                    .get("data")
                    .and_then(|d| d.get("activeTargets"))
                    .and_then(count)
                {
                    Some(n) if ok => {
                        Judged::Open(format!("/api/v1/targets lists {n} active targets"))
                    }
                    _ => Judged::Open(String::new()),
                }
            }
            (Product::Grafana, 0) => match (j.get("database"), text(j, &["version"])) {
                (Some(_), v) if ok => Judged::Next(
                    format!("grafana {}", v.map(value).unwrap_or_default()),
                    Request::Get("/api/search?limit=100"),
                    false,
                ),
                _ => Judged::NotIt,
            },
            (Product::Grafana, _) => match count(j) {
                Some(n) if ok => {
                    Judged::Open(format!("/api/search lists {n} dashboards without login"))
                }
                _ if matches!(status, 401 | 403) => {
                    Judged::Closed(format!("/api/search answers {status}: login required"))
                }
                _ => Judged::NotIt,
            },
        }
    }
}

impl Check for Chain {
    fn name(&self) -> &'static str {
        self.product.check()
    }
    fn first(&mut self) -> Step {
        Step::Connect(self.request(&self.first_request()))
    }
    fn complete(&self, reply: &[u8]) -> bool {
        !matches!(
            parse_response_body(reply),
            Ok((Parsed::Incomplete { .. }, _))
        )
    }
    fn on_reply(&mut self, raw: &[u8]) -> Step {
        let check = self.product.check();
        let Some(r) = reply(raw) else {
            return self.finish(None);
        };
        match self.judge(&r) {
            Judged::Next(note, next, readable) => {
                self.notes.push(note);
                self.readable |= readable;
                self.stage += 1;
                Step::Connect(self.request(&next))
            }
            Judged::Open(note) => {
                if !note.is_empty() {
                    self.notes.push(note);
                }
                self.finish(Some(true))
            }
            Judged::Closed(note) => {
                self.notes.push(note);
                verdict(check, false, self.notes.join(", "), false)
            }
            Judged::NotIt => self.finish(None),
        }
    }
}

impl Chain {
    /// Open when told so, or when an earlier step already read something.
    fn finish(&self, open: Option<bool>) -> Step {
        if open == Some(true) || self.readable {
            verdict(self.product.check(), true, self.evidence(), false)
        } else {
            Step::Done(None)
        }
    }

    fn evidence(&self) -> String {
        let mut notes = self.notes.clone();
        if let Some(first) = notes.first_mut() {
            if !first.starts_with(self.product.check()) {
                *first = format!("{} {first}", self.product.check());
            }
        }
        notes.join(", ")
    }
}
