//! LDAP anonymous bind (opt-in: it binds). RFC 4513 §5.1.1: a simple bind with an empty
//! name and password, then a one-level search under the first naming context the
//! grab's rootDSE read found, asking for no attributes (`1.1`) and at most ten entries:
//! whether the directory's contents are readable to anyone, counted, not read.

use super::{value, verdict, Check, Step};
use crate::proto::ldap::result_name;
use crate::reader::ber::{self, encode, ENUMERATED, INTEGER, OCTET_STRING, SEQUENCE};
use crate::session::Banner;

const CHECK: &str = "ldap-anonymous";
const SIZE_LIMIT: u8 = 10;
/// Most LDAP messages examined in one reply.
const MAX_MESSAGES: usize = 64;

pub(super) fn plan(banner: &Banner) -> Option<Box<dyn Check>> {
    let base = banner
        .fields
        .get("naming_contexts")?
        .split(';')
        .map(str::trim)
        .find(|c| !c.is_empty())?
        .to_owned();
    Some(Box::new(LdapAnonymous {
        base,
        searching: false,
    }))
}

#[derive(Debug)]
struct LdapAnonymous {
    base: String,
    searching: bool,
}

/// BindRequest: version 3, empty name, simple authentication with an empty password.
fn bind_request() -> Vec<u8> {
    let bind = [
        encode(INTEGER, &[3]),
        encode(OCTET_STRING, b""),
        encode(0x80, b""),
    ]
    .concat();
    encode(
        SEQUENCE,
        &[encode(INTEGER, &[1]), encode(0x60, &bind)].concat(),
    )
}

/// SearchRequest: singleLevel under `base`, `(objectClass=*)`, attribute `1.1` (none).
fn search_request(base: &str) -> Vec<u8> {
    let search = [
        encode(OCTET_STRING, base.as_bytes()),
        encode(ENUMERATED, &[1]),
        encode(ENUMERATED, &[0]),
        encode(INTEGER, &[SIZE_LIMIT]),
        encode(INTEGER, &[5]),
        encode(0x01, &[0xff]),
        encode(0x87, b"objectClass"),
        encode(SEQUENCE, &encode(OCTET_STRING, b"1.1")),
    ]
    .concat();
    encode(
        SEQUENCE,
        &[encode(INTEGER, &[2]), encode(0x63, &search)].concat(),
    )
}

/// The protocol operations (tag, value) of the whole messages in `data`; None on
/// malformed BER.
fn operations(data: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && out.len() < MAX_MESSAGES {
        let (msg, used) = match ber::parse(rest) {
            Ok(x) => x,
            Err(ber::BerError::Incomplete) => break,
            Err(_) => return None,
        };
        if msg.tag != SEQUENCE {
            return None;
        }
        let mut parts = ber::children(msg.value, 3);
        let _id = parts.next()?.ok()?;
        let op = parts.next()?.ok()?;
        out.push((op.tag, op.value));
        rest = &rest[used..];
    }
    Some(out)
}

/// The resultCode and diagnostic message of an LDAPResult.
fn result(value: &[u8]) -> Option<(i64, String)> {
    let mut parts = ber::children(value, 3);
    let code = ber::integer(parts.next()?.ok()?.value)?;
    let _dn = parts.next();
    let msg = parts
        .next()
        .and_then(Result::ok)
        .map(|t| value_text(t.value))
        .unwrap_or_default();
    Some((code, msg))
}

fn value_text(bytes: &[u8]) -> String {
    value(&String::from_utf8_lossy(bytes))
}

fn code_text(code: i64) -> String {
    match result_name(code) {
        Some(name) => format!("{code} {name}"),
        None => code.to_string(),
    }
}

impl Check for LdapAnonymous {
    fn name(&self) -> &'static str {
        CHECK
    }
    fn first(&mut self) -> Step {
        Step::Connect(bind_request())
    }
    fn complete(&self, reply: &[u8]) -> bool {
        let want = if self.searching { 0x65 } else { 0x61 };
        match operations(reply) {
            None => true,
            Some(ops) => ops.iter().any(|(tag, _)| *tag == want || *tag == 0x78),
        }
    }
    fn on_reply(&mut self, reply: &[u8]) -> Step {
        let Some(ops) = operations(reply) else {
            return Step::Done(None);
        };
        if !self.searching {
            let Some((code, msg)) = ops
                .iter()
                .find(|(t, _)| *t == 0x61)
                .and_then(|(_, v)| result(v))
            else {
                return Step::Done(None);
            };
            if code != 0 {
                let why = if msg.is_empty() {
                    String::new()
                } else {
                    format!(": {msg}")
                };
                return verdict(
                    CHECK,
                    false,
                    format!("ldap anonymous bind refused ({}){why}", code_text(code)),
                    true,
                );
            }
            self.searching = true;
            return Step::Send(search_request(&self.base));
        }
        let entries = ops.iter().filter(|(t, _)| *t == 0x64).count();
        let done = ops
            .iter()
            .find(|(t, _)| *t == 0x65)
            .and_then(|(_, v)| result(v));
        let base = value(&self.base);
        // sizeLimitExceeded (4): more entries than asked for.
        let plus = if done.as_ref().is_some_and(|(c, _)| *c == 4) {
            "+"
        } else {
            ""
        };
        if entries > 0 {
            verdict(
                CHECK,
                true,
                format!("ldap anonymous bind accepted, one-level search under {base} returns {entries}{plus} entries"),
                true,
            )
        } else {
            let code = done.map_or_else(|| "no result".to_owned(), |(c, _)| code_text(c));
            verdict(
                CHECK,
                false,
                format!("ldap anonymous bind accepted, nothing readable under {base} ({code})"),
                true,
            )
        }
    }
}
