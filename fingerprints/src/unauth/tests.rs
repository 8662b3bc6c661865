//! Replies written byte for byte from each product's protocol or API documentation (and,
//! for the Debian daemons the lab runs, as those daemons send them).

use super::*;
use proptest::prelude::*;

fn banner(protocol: &str, fields: &[(&str, &str)]) -> Banner {
    Banner {
        protocol: protocol.into(),
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Banner::default()
    }
}

fn http(status_line: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "{status_line}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn json(body: &str) -> Vec<u8> {
    http(
        "HTTP/1.1 200 OK",
        "Content-Type: application/json\r\n",
        body,
    )
}

/// Plans from `seen`, then answers each step with the next reply; returns the requests
/// sent and the verdict.
fn run(seen: Seen<'_>, replies: &[&[u8]]) -> (Vec<Vec<u8>>, Option<Unauth>) {
    let mut check = plan(&seen).expect("a check fits");
    let mut sent = Vec::new();
    let mut step = check.first();
    let mut replies = replies.iter();
    loop {
        match step {
            Step::Done(v) => return (sent, v),
            Step::Connect(b) | Step::Send(b) => {
                sent.push(b);
                let r = replies.next().expect("a reply for every request");
                assert!(
                    check.complete(r),
                    "complete: {:?}",
                    String::from_utf8_lossy(r)
                );
                step = check.on_reply(r);
            }
        }
    }
}

fn seen_http<'a>(b: &'a Banner, first: &'a [u8]) -> Seen<'a> {
    Seen {
        banner: b,
        http_response: Some(first),
        host: "198.19.1.190:2379",
        login_checks: false,
    }
}

fn open(v: Option<Unauth>, check: &str) -> String {
    let v = v.expect("a verdict");
    assert_eq!(v.check, check);
    assert!(v.open, "{v:?}");
    v.evidence
}

fn closed(v: Option<Unauth>, check: &str) -> String {
    let v = v.expect("a verdict");
    assert_eq!(v.check, check);
    assert!(!v.open, "{v:?}");
    v.evidence
}

#[test]
fn redis_open_counts_keys() {
    let b = banner("redis", &[("redis_version", "7.0.15")]);
    let payload = "# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n";
    let reply = format!("${}\r\n{payload}\r\n", payload.len());
    let seen = Seen {
        banner: &b,
        http_response: None,
        host: "",
        login_checks: false,
    };
    let (sent, v) = run(seen, &[reply.as_bytes()]);
    assert_eq!(sent, vec![b"INFO keyspace\r\n".to_vec()]);
    assert_eq!(
        open(v, "redis"),
        "redis INFO: redis_version 7.0.15, 3 keys in db0"
    );
    // An empty keyspace section: open, no keys.
    let (_, v) = run(seen, &[b"$12\r\n# Keyspace\r\n\r\n"]);
    assert_eq!(
        open(v, "redis"),
        "redis INFO: redis_version 7.0.15, no keys"
    );
}

/// Found by the `unauth` fuzz target: a keyspace answer whose bulk length is more than
/// what has arrived (a reply split over reads) panicked `complete` instead of waiting.
#[test]
fn redis_reply_cut_short_waits_for_the_rest() {
    let b = banner("redis", &[("redis_version", "7.0.15")]);
    let seen = Seen {
        banner: &b,
        http_response: None,
        host: "",
        login_checks: false,
    };
    let mut check = plan(&seen).expect("redis check");
    check.first();
    let whole = b"$44\r\n# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n\r\n";
    for cut in 0..whole.len() - 2 {
        assert!(!check.complete(&whole[..cut]), "{cut} bytes");
    }
    assert!(check.complete(whole));
    // Cut short for good (the deadline): still open, keys unknown.
    let Step::Done(Some(v)) = check.on_reply(b"$44\r\n# Keyspace\r\n\x0f") else {
        panic!("a verdict");
    };
    assert_eq!(v.evidence, "redis INFO: redis_version 7.0.15");
}

#[test]
fn redis_noauth_is_closed_without_a_request() {
    let b = banner(
        "redis",
        &[
            ("error", "NOAUTH Authentication required."),
            ("auth_required", "true"),
        ],
    );
    let seen = Seen {
        banner: &b,
        http_response: None,
        host: "",
        login_checks: true,
    };
    let (sent, v) = run(seen, &[]);
    assert!(sent.is_empty());
    assert!(closed(v, "redis").contains("-NOAUTH"));
}

#[test]
fn memcached_stats() {
    let b = banner("memcached", &[("version", "1.6.18")]);
    let seen = Seen {
        banner: &b,
        http_response: None,
        host: "",
        login_checks: false,
    };
    let reply = b"STAT pid 4242\r\nSTAT uptime 12\r\nSTAT version 1.6.18\r\nSTAT curr_connections 2\r\nSTAT curr_items 3\r\nSTAT total_items 3\r\nEND\r\n";
    let mut check = plan(&seen).expect("memcached check");
    assert_eq!(check.first(), Step::Connect(b"stats\r\n".to_vec()));
    assert!(!check.complete(&reply[..30]));
    assert!(check.complete(reply));
    let Step::Done(v) = check.on_reply(reply) else {
        panic!("done")
    };
    assert_eq!(
        open(v, "memcached"),
        "memcached stats: version 1.6.18, 3 items stored"
    );
}

// Elasticsearch reference, "Root API" and "cat indices API" (format=json).
const ES_ROOT: &str = r#"{
  "name" : "node-1",
  "cluster_name" : "shop-search",
  "cluster_uuid" : "OZ0-4qhPQJ-Ho2p_M6uxsA",
  "version" : {
    "number" : "8.13.0",
    "build_flavor" : "default",
    "lucene_version" : "9.10.0"
  },
  "tagline" : "You Know, for Search"
}"#;

#[test]
fn elasticsearch_open_and_secured() {
    let b = banner("http", &[]);
    let first = json(ES_ROOT);
    let (sent, v) = run(
        seen_http(&b, &first),
        &[&json(r#"[{"index":"orders"},{"index":"customers"}]"#)],
    );
    assert!(sent[0].starts_with(
        b"GET /_cat/indices?format=json&h=index HTTP/1.1\r\nHost: 198.19.1.190:2379\r\n"
    ));
    assert_eq!(
        open(v, "elasticsearch"),
        "elasticsearch GET / readable (version 8.13.0, cluster shop-search), /_cat/indices lists 2 indices"
    );
    let secured = http(
        "HTTP/1.1 401 Unauthorized",
        "WWW-Authenticate: Basic realm=\"security\" charset=\"UTF-8\"\r\ncontent-type: application/json\r\n",
        r#"{"error":{"type":"security_exception"},"status":401}"#,
    );
    let (sent, v) = run(seen_http(&b, &secured), &[]);
    assert!(sent.is_empty());
    closed(v, "elasticsearch");
}

#[test]
fn couchdb_all_dbs() {
    let b = banner("http", &[]);
    // CouchDB 3.3 API reference, GET /.
    let first = json(
        r#"{"couchdb":"Welcome","version":"3.3.3","git_sha":"40afbcfc7","uuid":"0ae5d1a72d60e4b1a2c2e0f6f4b9c2a3","features":["access-ready","partitioned","pluggable-storage-engines","reshard","scheduler"],"vendor":{"name":"The Apache Software Foundation"}}"#,
    );
    let (sent, v) = run(
        seen_http(&b, &first),
        &[&json(r#"["_replicator","_users","shop"]"#)],
    );
    assert!(sent[0].starts_with(b"GET /_all_dbs HTTP/1.1\r\n"));
    assert_eq!(open(v, "couchdb"), "couchdb /_all_dbs lists 3 databases");
    let refused = http(
        "HTTP/1.1 401 Unauthorized",
        "Content-Type: application/json\r\n",
        r#"{"error":"unauthorized","reason":"You are not a server admin."}"#,
    );
    let (_, v) = run(seen_http(&b, &first), &[&refused]);
    closed(v, "couchdb");
}

const GO_404: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: Mon, 07 Dec 2026 13:00:00 GMT\r\nContent-Length: 19\r\n\r\n404 page not found\n";

#[test]
fn etcd_counts_keys_or_is_refused() {
    let b = banner("http", &[]);
    let version = json(r#"{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}"#);
    let counted = json(
        r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"5","raft_term":"2"},"count":"4"}"#,
    );
    let (sent, v) = run(seen_http(&b, GO_404), &[&version, &counted]);
    assert!(sent[0].starts_with(b"GET /version HTTP/1.1\r\n"));
    let post = String::from_utf8_lossy(&sent[1]);
    assert!(post.starts_with("POST /v3/kv/range HTTP/1.1\r\n"), "{post}");
    assert!(post.ends_with(r#"{"key":"AA==","range_end":"AA==","count_only":true}"#));
    assert_eq!(
        open(v, "etcd"),
        "etcd /version readable (3.4.23), v3 range over all keys counts 4 keys"
    );
    // etcd 3.4.23 with auth enabled, as captured in the lab (gRPC gateway, chunked).
    let refused = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nTrailer: Grpc-Trailer-Content-Type\r\nDate: Mon, 07 Dec 2026 13:22:46 GMT\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5e\r\n{\"error\":\"etcdserver: user name is empty\",\"message\":\"etcdserver: user name is empty\",\"code\":3}\r\n0\r\nGrpc-Trailer-Content-Type: application/grpc\r\n\r\n";
    let (_, v) = run(seen_http(&b, GO_404), &[&version, refused]);
    assert_eq!(
        closed(v, "etcd"),
        "etcd /version readable (3.4.23), etcd refuses key reads (etcdserver: user name is empty)"
    );
    // Some other Go server: /version is no etcd answer, no verdict.
    let (_, v) = run(seen_http(&b, GO_404), &[GO_404]);
    assert_eq!(v, None);
}

#[test]
fn docker_engine_api() {
    let b = banner("http", &[]);
    let first = http(
        "HTTP/1.1 404 Not Found",
        "Api-Version: 1.41\r\nContent-Type: application/json\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\n",
        "{\"message\":\"page not found\"}\n",
    );
    let version = json(
        r#"{"Platform":{"Name":""},"Version":"20.10.24+dfsg1","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}"#,
    );
    let (sent, v) = run(
        seen_http(&b, &first),
        &[
            &version,
            &json(r#"[{"Id":"8dfafdbc3a40","Names":["/web"],"Image":"nginx"}]"#),
        ],
    );
    assert!(sent[1].starts_with(b"GET /containers/json?all=1 HTTP/1.1\r\n"));
    assert_eq!(
        open(v, "docker"),
        "docker /version: 20.10.24+dfsg1 (API 1.41), /containers/json lists 1 containers"
    );
}

#[test]
fn kubernetes_api() {
    let b = banner("http", &[]);
    let first =
        json(r#"{"paths":["/api","/api/v1","/apis","/healthz","/livez","/readyz","/version"]}"#);
    let version = json(
        r#"{"major":"1","minor":"29","gitVersion":"v1.29.2","gitCommit":"4b8e819355d791d96b7e9d9efe4cbafae2311c88","platform":"linux/amd64"}"#,
    );
    let (_, v) = run(seen_http(&b, &first), &[&version]);
    assert_eq!(
        open(v, "kubernetes"),
        "kubernetes GET / lists API paths, /version readable (v1.29.2)"
    );
    let forbidden = http(
        "HTTP/1.1 401 Unauthorized",
        "Content-Type: application/json\r\n",
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#,
    );
    let (sent, v) = run(seen_http(&b, &forbidden), &[]);
    assert!(sent.is_empty());
    closed(v, "kubernetes");
}

#[test]
fn prometheus_and_grafana() {
    let b = banner("http", &[]);
    let first = http(
        "HTTP/1.1 302 Found",
        "Content-Type: text/html; charset=utf-8\r\nLocation: /graph\r\n",
        "<a href=\"/graph\">Found</a>.\n\n",
    );
    let build = json(
        r#"{"status":"success","data":{"version":"2.42.0+ds","revision":"","branch":"debian/sid","buildUser":"team+pkg-go@tracker.debian.org","buildDate":"20230817","goVersion":"go1.19.8"}}"#,
    );
    let targets = json(
        r#"{"status":"success","data":{"activeTargets":[{"labels":{"job":"prometheus"},"health":"up"}],"droppedTargets":[]}}"#,
    );
    let (sent, v) = run(seen_http(&b, &first), &[&build, &targets]);
    assert!(sent[0].starts_with(b"GET /api/v1/status/buildinfo HTTP/1.1\r\n"));
    assert_eq!(
        open(v, "prometheus"),
        "prometheus buildinfo readable (2.42.0+ds), /api/v1/targets lists 1 active targets"
    );

    // Debian 12's prometheus 2.42 (classic UI only), as captured in the lab.
    let debian = b"HTTP/1.1 302 Found\r\nContent-Type: text/html; charset=utf-8\r\nLocation: /classic/graph\r\nDate: Mon, 07 Dec 2026 13:22:46 GMT\r\nContent-Length: 37\r\nConnection: close\r\n\r\n<a href=\"/classic/graph\">Found</a>.\n\n";
    let (_, v) = run(seen_http(&b, debian), &[&build, &targets]);
    open(v, "prometheus");

    let login = http(
        "HTTP/1.1 302 Found",
        "Cache-Control: no-store\r\nContent-Type: text/html; charset=utf-8\r\nLocation: /login\r\n",
        "<a href=\"/login\">Found</a>.\n\n",
    );
    let health = json(r#"{"commit":"2d4dbb9b3e","database":"ok","version":"10.4.1"}"#);
    let unauthorized = http(
        "HTTP/1.1 401 Unauthorized",
        "Content-Type: application/json\r\n",
        r#"{"message":"Unauthorized"}"#,
    );
    let (_, v) = run(seen_http(&b, &login), &[&health, &unauthorized]);
    assert_eq!(
        closed(v, "grafana"),
        "grafana 10.4.1, /api/search answers 401: login required"
    );
    let (_, v) = run(seen_http(&b, &login), &[&health, &json("[]")]);
    assert_eq!(
        open(v, "grafana"),
        "grafana 10.4.1, /api/search lists 0 dashboards without login"
    );
    // A plain /login redirect that is no Grafana: no verdict.
    let (_, v) = run(seen_http(&b, &login), &[GO_404]);
    assert_eq!(v, None);
}

#[test]
fn directory_listings() {
    let b = banner("http", &[]);
    // nginx autoindex.
    let nginx = http(
        "HTTP/1.1 200 OK",
        "Server: nginx/1.22.1\r\nContent-Type: text/html\r\n",
        "<html>\r\n<head><title>Index of /</title></head>\r\n<body>\r\n<h1>Index of /</h1><hr><pre><a href=\"../\">../</a>\r\n<a href=\"backup/\">backup/</a>                                            07-Dec-2026 13:00       -\r\n<a href=\"db.sql\">db.sql</a>                                             07-Dec-2026 13:00      14\r\n</pre><hr></body>\r\n</html>\r\n",
    );
    let (_, v) = run(seen_http(&b, &nginx), &[]);
    assert_eq!(
        open(v, "directory-listing"),
        "directory listing at / (2 entries)"
    );
    // Apache mod_autoindex, with its sort links and parent directory.
    let apache = http(
        "HTTP/1.1 200 OK",
        "Server: Apache/2.4.57 (Debian)\r\nContent-Type: text/html;charset=UTF-8\r\n",
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<html>\n <head>\n  <title>Index of /</title>\n </head>\n <body>\n<h1>Index of /</h1>\n  <table>\n   <tr><th><a href=\"?C=N;O=D\">Name</a></th><th><a href=\"?C=M;O=A\">Last modified</a></th></tr>\n<tr><td><a href=\"notes.txt\">notes.txt</a></td></tr>\n</table>\n</body></html>\n",
    );
    let (_, v) = run(seen_http(&b, &apache), &[]);
    assert_eq!(
        open(v, "directory-listing"),
        "directory listing at / (1 entries)"
    );
    // autoindex off: 403, no check at all.
    let forbidden = http(
        "HTTP/1.1 403 Forbidden",
        "Content-Type: text/html\r\n",
        "<html><head><title>403 Forbidden</title></head></html>",
    );
    assert!(plan(&seen_http(&b, &forbidden)).is_none());
}

const VSFTPD_GREETING: &[u8] = b"220 (vsFTPd 3.0.3)\r\n";

#[test]
fn ftp_anonymous_only_with_opt_in() {
    let b = banner("ftp", &[("version", "3.0.3")]);
    let mut seen = Seen {
        banner: &b,
        http_response: None,
        host: "",
        login_checks: false,
    };
    assert!(plan(&seen).is_none(), "logging in needs the opt-in");
    seen.login_checks = true;
    let (sent, v) = run(
        seen,
        &[
            VSFTPD_GREETING,
            b"331 Please specify the password.\r\n",
            b"230 Login successful.\r\n",
            b"257 \"/\" is the current directory\r\n",
            b"213-Status follows:\r\ndrwxr-xr-x    3 0        0            4096 Dec 07 13:00 .\r\ndrwxr-xr-x    3 0        0            4096 Dec 07 13:00 ..\r\ndrwxr-xr-x    2 0        0            4096 Dec 07 13:00 pub\r\n-rw-r--r--    1 0        0              12 Dec 07 13:00 readme.txt\r\n213 End of status\r\n",
        ],
    );
    assert_eq!(
        sent,
        vec![
            b"".to_vec(),
            b"USER anonymous\r\n".to_vec(),
            b"PASS aperture@example.invalid\r\n".to_vec(),
            b"PWD\r\n".to_vec(),
            b"STAT .\r\n".to_vec(),
        ]
    );
    let v = v.expect("verdict");
    assert!(v.login);
    assert_eq!(
        open(Some(v), "ftp-anonymous"),
        "ftp anonymous login accepted (230), PWD \"/\", STAT . lists 2 entries"
    );
    let (_, v) = run(
        seen,
        &[
            VSFTPD_GREETING,
            b"331 Please specify the password.\r\n",
            b"530 Login incorrect.\r\n",
        ],
    );
    assert_eq!(
        closed(v, "ftp-anonymous"),
        "ftp anonymous login refused: 530 Login incorrect."
    );
}

#[test]
fn evidence_is_escaped_and_capped() {
    assert_eq!(
        escape("a\r\nb\x1b[31m\u{202e}", 100),
        "a\\r\\nb\\u{1b}[31m\\u{202e}"
    );
    let long = "x".repeat(1000);
    assert_eq!(escape(&long, 10), format!("{}...", "x".repeat(10)));
    let b = banner("redis", &[("redis_version", "7\r\n\x1b[2J")]);
    let seen = Seen {
        banner: &b,
        http_response: None,
        host: "",
        login_checks: false,
    };
    let (_, v) = run(seen, &[b"-ERR nope\r\n"]);
    assert_eq!(
        open(v, "redis"),
        "redis INFO: redis_version 7\\r\\n\\u{1b}[2J"
    );
}

proptest! {
    #[test]
    fn hostile_replies_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let banners = [
            banner("redis", &[("redis_version", "7.0.15")]),
            banner("memcached", &[("version", "1.6.18")]),
            banner("ftp", &[]),
            banner("mongodb", &[("max_wire_version", "21")]),
            banner("ldap", &[("naming_contexts", "dc=lab,dc=test")]),
        ];
        for b in &banners {
            let seen = Seen { banner: b, http_response: None, host: "h", login_checks: true };
            if let Some(mut c) = plan(&seen) {
                c.first();
                let _ = c.complete(&data);
                let _ = c.on_reply(&data);
            }
        }
        let b = banner("http", &[]);
        for first in [GO_404.to_vec(), json(ES_ROOT), json(r#"{"couchdb":"Welcome"}"#)] {
            if let Some(mut c) = plan(&seen_http(&b, &first)) {
                c.first();
                let _ = c.complete(&data);
                if let Step::Done(Some(v)) = c.on_reply(&data) {
                    prop_assert!(v.evidence.chars().count() <= EVIDENCE_CAP + 3);
                }
            }
        }
        let _ = plan(&seen_http(&b, &data));
    }
}

// BSON built element by element (bsonspec.org), for MongoDB replies.
fn bdoc(elems: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = elems.concat();
    let mut d = ((body.len() + 5) as i32).to_le_bytes().to_vec();
    d.extend_from_slice(&body);
    d.push(0);
    d
}
fn elem(tag: u8, key: &str, value: &[u8]) -> Vec<u8> {
    [&[tag][..], key.as_bytes(), b"\0", value].concat()
}
fn e_str(key: &str, v: &str) -> Vec<u8> {
    let mut b = ((v.len() + 1) as i32).to_le_bytes().to_vec();
    b.extend_from_slice(v.as_bytes());
    b.push(0);
    elem(0x02, key, &b)
}
fn e_f64(key: &str, v: f64) -> Vec<u8> {
    elem(0x01, key, &v.to_le_bytes())
}

#[test]
fn mongodb_open_and_access_controlled() {
    use crate::proto::mongodb::tests::reply;
    let b = banner(
        "mongodb",
        &[("max_wire_version", "21"), ("ismaster", "true")],
    );
    let seen = Seen {
        banner: &b,
        http_response: None,
        host: "",
        login_checks: false,
    };
    // OP_MSG 2013 replies, as mongod 7.0 answers buildInfo and listDatabases.
    let build = reply(
        2013,
        1,
        &bdoc(&[
            e_str("version", "7.0.5"),
            e_str("gitVersion", "7809d71e84e314b497f282ea8aa06d7ded3eb205"),
            e_f64("ok", 1.0),
        ]),
    );
    let names = ["admin", "config", "local", "shop"];
    let list: Vec<Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| elem(0x03, &i.to_string(), &bdoc(&[e_str("name", n)])))
        .collect();
    let dbs = reply(
        2013,
        2,
        &bdoc(&[elem(0x04, "databases", &bdoc(&list)), e_f64("ok", 1.0)]),
    );
    let (sent, v) = run(seen, &[&build, &dbs]);
    // OP_MSG: opCode 2013, flagBits 0, section kind 0, {buildInfo: 1, $db: "admin"}.
    assert_eq!(&sent[0][12..16], &2013i32.to_le_bytes());
    assert_eq!(&sent[0][16..21], &[0, 0, 0, 0, 0]);
    assert!(sent[0].windows(10).any(|w| w == b"buildInfo\0"));
    assert!(sent[1].windows(9).any(|w| w == b"nameOnly\0"));
    assert_eq!(
        open(v, "mongodb"),
        "mongodb 7.0.5, listDatabases lists 4 databases (admin, config, local, ...)"
    );
    let refused = reply(
        2013,
        2,
        &bdoc(&[
            e_f64("ok", 0.0),
            e_str("errmsg", "Command listDatabases requires authentication"),
            elem(0x10, "code", &13i32.to_le_bytes()),
            e_str("codeName", "Unauthorized"),
        ]),
    );
    let (_, v) = run(seen, &[&build, &refused]);
    assert_eq!(
        closed(v, "mongodb"),
        "mongodb 7.0.5, listDatabases refused: Command listDatabases requires authentication"
    );
    // A 3.4 server (wire 5): legacy OP_QUERY on admin.$cmd, OP_REPLY back.
    let old = banner("mongodb", &[("max_wire_version", "5")]);
    let seen = Seen {
        banner: &old,
        ..seen
    };
    let build = reply(1, 1, &bdoc(&[e_str("version", "3.4.24"), e_f64("ok", 1.0)]));
    let dbs = reply(
        1,
        2,
        &bdoc(&[elem(0x04, "databases", &bdoc(&[])), e_f64("ok", 1.0)]),
    );
    let (sent, v) = run(seen, &[&build, &dbs]);
    assert_eq!(&sent[0][12..16], &2004i32.to_le_bytes());
    assert!(sent[0].windows(11).any(|w| w == b"admin.$cmd\0"));
    assert_eq!(
        open(v, "mongodb"),
        "mongodb 3.4.24, listDatabases lists 0 databases ()"
    );
}

#[test]
fn ldap_anonymous_bind_only_with_opt_in() {
    use crate::reader::ber::{encode, ENUMERATED, INTEGER, OCTET_STRING, SEQUENCE};
    let msg = |id: u8, op: Vec<u8>| encode(SEQUENCE, &[encode(INTEGER, &[id]), op].concat());
    let result = |tag: u8, code: u8, text: &str| {
        encode(
            tag,
            &[
                encode(ENUMERATED, &[code]),
                encode(OCTET_STRING, b""),
                encode(OCTET_STRING, text.as_bytes()),
            ]
            .concat(),
        )
    };
    let entry = |dn: &str| {
        msg(
            2,
            encode(
                0x64,
                &[encode(OCTET_STRING, dn.as_bytes()), encode(SEQUENCE, b"")].concat(),
            ),
        )
    };
    let b = banner("ldap", &[("naming_contexts", "dc=lab,dc=test")]);
    let mut seen = Seen {
        banner: &b,
        http_response: None,
        host: "",
        login_checks: false,
    };
    assert!(plan(&seen).is_none(), "binding needs the opt-in");
    seen.login_checks = true;
    let bound = msg(1, result(0x61, 0, ""));
    let listing = [
        entry("ou=people,dc=lab,dc=test"),
        entry("ou=groups,dc=lab,dc=test"),
        entry("cn=reader,dc=lab,dc=test"),
        msg(2, result(0x65, 0, "")),
    ]
    .concat();
    let (sent, v) = run(seen, &[&bound, &listing]);
    // BindRequest v3, empty name, simple "" (RFC 4511 §4.2).
    assert_eq!(
        sent[0],
        b"\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x80\x00".to_vec()
    );
    assert!(sent[1].windows(14).any(|w| w == b"dc=lab,dc=test"));
    let v = v.expect("verdict");
    assert!(v.login);
    assert_eq!(
        open(Some(v), "ldap-anonymous"),
        "ldap anonymous bind accepted, one-level search under dc=lab,dc=test returns 3 entries"
    );
    // slapd with `disallow bind_anon`.
    let refused = msg(1, result(0x61, 48, "anonymous bind disallowed"));
    let (_, v) = run(seen, &[&refused]);
    assert_eq!(
        closed(v, "ldap-anonymous"),
        "ldap anonymous bind refused (48 inappropriateAuthentication): anonymous bind disallowed"
    );
    // Bound, but the ACLs show nothing.
    let nothing = msg(2, result(0x65, 32, ""));
    let (_, v) = run(seen, &[&bound, &nothing]);
    assert_eq!(
        closed(v, "ldap-anonymous"),
        "ldap anonymous bind accepted, nothing readable under dc=lab,dc=test (32 noSuchObject)"
    );
}
