//! Redis and memcached: the grab's own hello already tells whether the server answers
//! without credentials (`INFO server` answered vs `-NOAUTH`; `version` answered); one
//! more read says what is stored (`INFO keyspace`, `stats`), as counts only.

use super::{known, value, verdict, Check, Step};
use crate::session::Banner;

/// Databases named in the evidence; the rest are summed.
const MAX_DBS: usize = 4;

pub(super) fn redis(banner: &Banner) -> Option<Box<dyn Check>> {
    let f = &banner.fields;
    if let Some(v) = f.get("redis_version") {
        return Some(Box::new(Redis { version: value(v) }));
    }
    if f.get("auth_required").map(String::as_str) == Some("true") {
        return known(
            "redis",
            false,
            "redis answers INFO with -NOAUTH: authentication required".into(),
        );
    }
    let error = f.get("error")?;
    known(
        "redis",
        false,
        format!("redis refuses INFO: {}", value(error)),
    )
}

/// `INFO keyspace` after an answered `INFO server`.
#[derive(Debug)]
struct Redis {
    version: String,
}

/// A RESP bulk string's payload once it is all there; Err for anything else complete
/// (an error line), None while incomplete.
fn bulk(data: &[u8]) -> Option<Result<&[u8], ()>> {
    let nl = data.iter().position(|&b| b == b'\n')?;
    let head = data[..nl].strip_suffix(b"\r").unwrap_or(&data[..nl]);
    let Some(digits) = head.strip_prefix(b"$") else {
        return Some(Err(()));
    };
    let Some(len) = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<usize>().ok())
        .filter(|&n| n <= 64 * 1024)
    else {
        return Some(Err(()));
    };
    // `get`, not `then_some(&body[..len])`: that slices before it checks (found by the
    // `unauth` fuzz target on a reply cut short).
    data[nl + 1..].get(..len).map(Ok)
}

impl Check for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn first(&mut self) -> Step {
        Step::Connect(b"INFO keyspace\r\n".to_vec())
    }
    fn complete(&self, reply: &[u8]) -> bool {
        bulk(reply).is_some()
    }
    fn on_reply(&mut self, reply: &[u8]) -> Step {
        let head = format!("redis INFO: redis_version {}", self.version);
        let Some(Ok(payload)) = bulk(reply) else {
            // INFO server was answered; the keyspace may be cut off by an ACL.
            return verdict("redis", true, head, false);
        };
        let text = String::from_utf8_lossy(payload);
        let mut dbs = Vec::new();
        let mut total: u64 = 0;
        for line in text.lines() {
            let Some((db, rest)) = line.trim().split_once(':') else {
                continue;
            };
            if !db.starts_with("db") || !db[2..].bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let keys = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("keys="))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            total = total.saturating_add(keys);
            if dbs.len() < MAX_DBS {
                dbs.push(format!("{keys} keys in {}", value(db)));
            }
        }
        let keys = match dbs.len() {
            0 => "no keys".to_owned(),
            n if n < MAX_DBS => dbs.join(", "),
            _ => format!("{} ({total} keys in all)", dbs.join(", ")),
        };
        verdict("redis", true, format!("{head}, {keys}"), false)
    }
}

pub(super) fn memcached(banner: &Banner) -> Option<Box<dyn Check>> {
    let version = value(banner.fields.get("version")?);
    Some(Box::new(Memcached { version }))
}

/// `stats` after an answered `version`.
#[derive(Debug)]
struct Memcached {
    version: String,
}

impl Check for Memcached {
    fn name(&self) -> &'static str {
        "memcached"
    }
    fn first(&mut self) -> Step {
        Step::Connect(b"stats\r\n".to_vec())
    }
    fn complete(&self, reply: &[u8]) -> bool {
        reply.ends_with(b"END\r\n")
            || reply.starts_with(b"ERROR")
            || reply.starts_with(b"CLIENT_ERROR")
            || reply.starts_with(b"SERVER_ERROR")
    }
    fn on_reply(&mut self, reply: &[u8]) -> Step {
        let head = format!("memcached answers version {}", self.version);
        let text = String::from_utf8_lossy(reply);
        let stat = |name: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix("STAT ")
                    .and_then(|r| r.strip_prefix(name))
                    .and_then(|r| r.strip_prefix(' '))
                    .map(|v| v.trim().to_owned())
                    .filter(|v| v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty())
            })
        };
        let evidence = match stat("curr_items") {
            Some(items) => format!(
                "memcached stats: version {}, {items} items stored",
                self.version
            ),
            None => head,
        };
        verdict("memcached", true, evidence, false)
    }
}
