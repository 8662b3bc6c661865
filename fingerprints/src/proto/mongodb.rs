//! MongoDB wire protocol: client-first legacy `OP_QUERY` `isMaster` on `admin.$cmd`,
//! which every server version answers (5.1+ keep `OP_QUERY` for exactly the handshake),
//! answered by `OP_REPLY` holding one BSON document. Servers answer it without
//! authentication. Newer commands go in `OP_MSG` (3.6+, `maxWireVersion` >= 6).
//!
//! Fields: `max_wire_version`, `min_wire_version`, `ismaster` (true/false), `msg`
//! (`isdbgrid` for mongos), `set_name` (a replica set's name).

use crate::session::{Action, Banner, Session};

pub(crate) const OP_REPLY: i32 = 1;
pub(crate) const OP_QUERY: i32 = 2004;
pub(crate) const OP_MSG: i32 = 2013;
/// Largest reply accepted (a handshake or a name-only database list is a few KiB).
const MAX_MESSAGE: usize = 48 * 1024;
/// Deepest nesting and most elements parsed in a document.
const MAX_DEPTH: usize = 6;
const MAX_ELEMENTS: usize = 4096;

/// A BSON value, as much as the checks read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bson {
    Double(f64),
    Str(String),
    Doc(Vec<(String, Bson)>),
    Array(Vec<Bson>),
    Bool(bool),
    Int(i64),
    Other,
}

impl Bson {
    pub(crate) fn get(&self, key: &str) -> Option<&Bson> {
        match self {
            Bson::Doc(d) => d.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub(crate) fn str(&self) -> Option<&str> {
        match self {
            Bson::Str(s) => Some(s),
            _ => None,
        }
    }
    pub(crate) fn int(&self) -> Option<i64> {
        match self {
            Bson::Int(i) => Some(*i),
            // `ok: 1.0` and counts come as doubles from older servers.
            Bson::Double(d) if d.fract() == 0.0 && d.abs() < 1e15 => Some(*d as i64),
            _ => None,
        }
    }
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Bson::Bool(b) => *b,
            other => other.int().is_some_and(|i| i != 0),
        }
    }
}

/// A BSON document of (key, value) with int32, string and bool values.
pub(crate) enum Arg<'a> {
    Int(i32),
    Str(&'a str),
    Bool(bool),
}

pub(crate) fn document(items: &[(&str, Arg<'_>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, value) in items {
        let (tag, bytes): (u8, Vec<u8>) = match value {
            Arg::Int(i) => (0x10, i.to_le_bytes().to_vec()),
            Arg::Bool(b) => (0x08, vec![u8::from(*b)]),
            Arg::Str(s) => {
                let mut v = ((s.len() + 1) as i32).to_le_bytes().to_vec();
                v.extend_from_slice(s.as_bytes());
                v.push(0);
                (0x02, v)
            }
        };
        body.push(tag);
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(&bytes);
    }
    let mut doc = ((body.len() + 5) as i32).to_le_bytes().to_vec();
    doc.extend_from_slice(&body);
    doc.push(0);
    doc
}

fn message(request_id: i32, opcode: i32, payload: &[u8]) -> Vec<u8> {
    let mut m = ((payload.len() + 16) as i32).to_le_bytes().to_vec();
    m.extend_from_slice(&request_id.to_le_bytes());
    m.extend_from_slice(&0i32.to_le_bytes());
    m.extend_from_slice(&opcode.to_le_bytes());
    m.extend_from_slice(payload);
    m
}

/// `OP_QUERY` of a command document on `admin.$cmd`, one document back.
pub(crate) fn op_query(request_id: i32, command: &[u8]) -> Vec<u8> {
    let mut p = 0i32.to_le_bytes().to_vec();
    p.extend_from_slice(b"admin.$cmd\0");
    p.extend_from_slice(&0i32.to_le_bytes());
    p.extend_from_slice(&(-1i32).to_le_bytes());
    p.extend_from_slice(command);
    message(request_id, OP_QUERY, &p)
}

/// `OP_MSG` with no flags and one body section (kind 0); the command names its `$db`.
pub(crate) fn op_msg(request_id: i32, command: &[u8]) -> Vec<u8> {
    let mut p = 0u32.to_le_bytes().to_vec();
    p.push(0);
    p.extend_from_slice(command);
    message(request_id, OP_MSG, &p)
}

fn le_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A reply: Ok(None) while incomplete, Err when it is no MongoDB reply.
pub(crate) fn read_reply(data: &[u8], request_id: i32) -> Result<Option<Bson>, ()> {
    if data.len() < 16 {
        // The length prefix alone can already tell nonsense apart.
        if data.len() >= 4 {
            let len = le_i32(data, 0).ok_or(())?;
            if len < 16 || len as usize > MAX_MESSAGE {
                return Err(());
            }
        }
        return Ok(None);
    }
    let len = le_i32(data, 0).ok_or(())?;
    if len < 21 || len as usize > MAX_MESSAGE {
        return Err(());
    }
    let (response_to, opcode) = (le_i32(data, 8).ok_or(())?, le_i32(data, 12).ok_or(())?);
    if response_to != request_id || !(opcode == OP_REPLY || opcode == OP_MSG) {
        return Err(());
    }
    let len = len as usize;
    if data.len() < len {
        return Ok(None);
    }
    let body = &data[16..len];
    let doc = match opcode {
        // responseFlags, cursorID, startingFrom, numberReturned, then the documents.
        OP_REPLY => body.get(20..).ok_or(())?,
        // flagBits, then a kind-0 section.
        _ => match body.get(4) {
            Some(0) => &body[5..],
            _ => return Err(()),
        },
    };
    parse_document(doc, 0).map(|(d, _)| Some(d)).ok_or(())
}

fn cstring(b: &[u8]) -> Option<(&[u8], usize)> {
    let end = b.iter().position(|&c| c == 0)?;
    Some((&b[..end], end + 1))
}

/// One document at the start of `b`: the value and its length.
fn parse_document(b: &[u8], depth: usize) -> Option<(Bson, usize)> {
    if depth > MAX_DEPTH {
        return None;
    }
    let len = usize::try_from(le_i32(b, 0)?).ok()?;
    if len < 5 || len > b.len() || b[len - 1] != 0 {
        return None;
    }
    let mut at = 4;
    let mut items = Vec::new();
    while at < len - 1 {
        if items.len() >= MAX_ELEMENTS {
            return None;
        }
        let tag = b[at];
        let (key, used) = cstring(&b[at + 1..len])?;
        let key = String::from_utf8_lossy(key).into_owned();
        at += 1 + used;
        // A key whose NUL is the document's last byte leaves no room for its value.
        let rest = b.get(at..len - 1)?;
        let fixed = |n: usize| (rest.len() >= n).then_some(n);
        let (value, used) = match tag {
            0x01 => (
                Bson::Double(f64::from_le_bytes(rest.get(..8)?.try_into().ok()?)),
                8,
            ),
            0x02 => {
                let n = usize::try_from(le_i32(rest, 0)?).ok()?;
                let s = rest.get(4..4 + n)?;
                let text = s.strip_suffix(&[0])?;
                (Bson::Str(String::from_utf8_lossy(text).into_owned()), 4 + n)
            }
            0x03 | 0x04 => {
                let (doc, n) = parse_document(rest, depth + 1)?;
                let value = match (tag, doc) {
                    (0x04, Bson::Doc(items)) => {
                        Bson::Array(items.into_iter().map(|(_, v)| v).collect())
                    }
                    (_, d) => d,
                };
                (value, n)
            }
            0x05 => (Bson::Other, 5 + usize::try_from(le_i32(rest, 0)?).ok()?),
            0x07 => (Bson::Other, fixed(12)?),
            0x08 => (Bson::Bool(*rest.first()? != 0), 1),
            0x09 | 0x11 => (Bson::Other, fixed(8)?),
            0x0A | 0x7F | 0xFF => (Bson::Other, 0),
            0x10 => (Bson::Int(i64::from(le_i32(rest, 0)?)), 4),
            0x12 => (
                Bson::Int(i64::from_le_bytes(rest.get(..8)?.try_into().ok()?)),
                8,
            ),
            0x13 => (Bson::Other, fixed(16)?),
            _ => return None,
        };
        if used > rest.len() {
            return None;
        }
        at += used;
        items.push((key, value));
    }
    Some((Bson::Doc(items), len))
}

const REQUEST_ID: i32 = 0x4150;

/// The hello: `{isMaster: 1}` as `OP_QUERY`.
pub fn hello() -> Vec<u8> {
    op_query(REQUEST_ID, &document(&[("isMaster", Arg::Int(1))]))
}

/// MongoDB banner grabber.
#[derive(Debug, Clone)]
pub struct MongoSession {
    outcome: Option<Action>,
    banner: Banner,
}

impl MongoSession {
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            outcome: None,
            banner: Banner {
                protocol: "mongodb".into(),
                ..Banner::default()
            },
        }
    }
}

impl Session for MongoSession {
    fn protocol(&self) -> &'static str {
        "mongodb"
    }
    fn start(&mut self) -> Action {
        Action::Send(hello())
    }
    fn on_data(&mut self, data: &[u8]) -> Action {
        let banner = &mut self.banner;
        crate::session::settle(&mut self.outcome, || match read_reply(data, REQUEST_ID) {
            Err(()) => Action::NoMatch,
            Ok(None) => Action::NeedMore,
            Ok(Some(doc)) => {
                let wire = doc.get("maxWireVersion").and_then(Bson::int);
                let ismaster = doc.get("ismaster").or_else(|| doc.get("isWritablePrimary"));
                let (Some(wire), Some(ismaster)) = (wire, ismaster) else {
                    return Action::NoMatch;
                };
                let f = &mut banner.fields;
                f.insert("max_wire_version".into(), wire.to_string());
                if let Some(min) = doc.get("minWireVersion").and_then(Bson::int) {
                    f.insert("min_wire_version".into(), min.to_string());
                }
                f.insert("ismaster".into(), ismaster.truthy().to_string());
                for (key, field) in [("msg", "msg"), ("setName", "set_name")] {
                    if let Some(v) = doc.get(key).and_then(Bson::str) {
                        f.insert(field.into(), super::lines::clean(v.as_bytes(), 128));
                    }
                }
                banner.text = format!("isMaster: maxWireVersion {wire}");
                Action::Done
            }
        })
    }
    fn banner(&self) -> Banner {
        self.banner.clone()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Found by the `unauth` fuzz target (the MongoDB check reads replies with this
    /// parser): an element whose key ends on the document's closing byte sliced past
    /// the end.
    #[test]
    fn a_key_that_ends_the_document_is_malformed_not_a_panic() {
        assert!(parse_document(&[6, 0, 0, 0, 0x10, 0], 0).is_none());
        assert!(parse_document(&[7, 0, 0, 0, 0x02, b'a', 0], 0).is_none());
        let doc = reply(OP_MSG, 1, &[6, 0, 0, 0, 0x10, 0]);
        assert_eq!(read_reply(&doc, 1), Err(()));
    }

    /// A server's reply to `request`: an `OP_REPLY` (legacy) or `OP_MSG` around `doc`.
    pub(crate) fn reply(opcode: i32, response_to: i32, doc: &[u8]) -> Vec<u8> {
        let mut payload = Vec::new();
        if opcode == OP_REPLY {
            payload.extend_from_slice(&8i32.to_le_bytes()); // AwaitCapable
            payload.extend_from_slice(&0i64.to_le_bytes());
            payload.extend_from_slice(&0i32.to_le_bytes());
            payload.extend_from_slice(&1i32.to_le_bytes());
        } else {
            payload.extend_from_slice(&0u32.to_le_bytes());
            payload.push(0);
        }
        payload.extend_from_slice(doc);
        let mut m = ((payload.len() + 16) as i32).to_le_bytes().to_vec();
        m.extend_from_slice(&77i32.to_le_bytes());
        m.extend_from_slice(&response_to.to_le_bytes());
        m.extend_from_slice(&opcode.to_le_bytes());
        m.extend_from_slice(&payload);
        m
    }

    #[test]
    fn hello_bytes_follow_the_spec() {
        // OP_QUERY: length, requestID, responseTo 0, opCode 2004, flags 0,
        // "admin.$cmd\0", skip 0, return -1, {isMaster: int32 1}.
        let want: Vec<u8> = [
            &58i32.to_le_bytes()[..],
            &0x4150i32.to_le_bytes(),
            &0i32.to_le_bytes(),
            &2004i32.to_le_bytes(),
            &0i32.to_le_bytes(),
            b"admin.$cmd\0",
            &0i32.to_le_bytes(),
            &(-1i32).to_le_bytes(),
            &19i32.to_le_bytes(),
            b"\x10isMaster\0",
            &1i32.to_le_bytes(),
            b"\0",
        ]
        .concat();
        assert_eq!(hello(), want);
    }

    #[test]
    fn mongodb_7_handshake() {
        let doc = document(&[
            ("ismaster", Arg::Bool(true)),
            ("topologyVersion", Arg::Int(0)),
            ("maxBsonObjectSize", Arg::Int(16_777_216)),
            ("maxWireVersion", Arg::Int(21)),
            ("minWireVersion", Arg::Int(0)),
            ("readOnly", Arg::Bool(false)),
        ]);
        let mut d = doc.clone();
        // ok: 1.0 as a double, as servers send it.
        d.truncate(d.len() - 1);
        d.push(0x01);
        d.extend_from_slice(b"ok\0");
        d.extend_from_slice(&1.0f64.to_le_bytes());
        d.push(0);
        let n = d.len() as i32;
        d[..4].copy_from_slice(&n.to_le_bytes());
        let r = reply(OP_REPLY, REQUEST_ID, &d);
        let mut s = MongoSession::new(None);
        s.start();
        assert_eq!(s.on_data(&r[..20]), Action::NeedMore);
        assert_eq!(s.on_data(&r), Action::Done);
        let b = s.banner();
        assert_eq!(b.fields["max_wire_version"], "21");
        assert_eq!(b.fields["ismaster"], "true");
    }

    #[test]
    fn other_protocols_do_not_match() {
        for reply in [
            &b"HTTP/1.1 400 Bad Request\r\n\r\n"[..],
            b"-ERR unknown command\r\n",
            b"\x15\x03\x01\x00\x02\x02\x46",
            b"SSH-2.0-OpenSSH_9.2p1\r\n",
        ] {
            let mut s = MongoSession::new(None);
            s.start();
            assert_eq!(s.on_data(reply), Action::NoMatch, "{reply:?}");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut s = MongoSession::new(None);
            s.start();
            let _ = s.on_data(&data);
            let _ = parse_document(&data, 0);
        }
    }
}
