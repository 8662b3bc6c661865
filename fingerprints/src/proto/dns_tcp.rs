//! DNS over TCP: a `version.bind. CH TXT` query. Any well-formed answer to our query id
//! (including REFUSED or NOTIMP) identifies a DNS server; a TXT answer usually names
//! its software and version.

use crate::reader::{field_text, Reader};
use crate::session::{printable, Action, Banner, Session};

/// Fixed so that an answer can be matched without per-connection state.
pub const QUERY_ID: u16 = 0x4150;
const TYPE_TXT: u16 = 16;
const CLASS_CH: u16 = 3;
const HEADER_LEN: usize = 12;
/// Bounds on what is walked: far above what a version.bind answer contains.
const MAX_QUESTIONS: u16 = 4;
const MAX_RECORDS: usize = 32;
const MAX_POINTER_HOPS: usize = 16;
const MAX_NAME_LEN: usize = 255;
const MAX_VERSION_CHARS: usize = 512;

/// The query with its two-byte TCP length prefix: id, no flags (recursion not
/// desired), one question.
pub fn query() -> Vec<u8> {
    let mut msg = Vec::with_capacity(32);
    msg.extend_from_slice(&QUERY_ID.to_be_bytes());
    msg.extend_from_slice(&[0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
    msg.extend_from_slice(b"\x07version\x04bind\x00");
    msg.extend_from_slice(&TYPE_TXT.to_be_bytes());
    msg.extend_from_slice(&CLASS_CH.to_be_bytes());
    let mut out = (msg.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&msg);
    out
}

#[derive(Debug)]
pub struct DnsTcpSession {
    banner: Banner,
    outcome: Option<Action>,
}

fn rcode_name(rcode: u16) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        6 => "YXDOMAIN".into(),
        7 => "YXRRSET".into(),
        8 => "NXRRSET".into(),
        9 => "NOTAUTH".into(),
        10 => "NOTZONE".into(),
        other => other.to_string(),
    }
}

/// Reads the (possibly compressed) name at `start`; returns it in dotted form and the
/// offset just past it in the record. Pointers are followed at most
/// `MAX_POINTER_HOPS` times, so a loop cannot hold us.
pub fn read_name(msg: &[u8], start: usize) -> Option<(String, usize)> {
    let mut pos = start;
    let mut resume = None;
    let mut hops = 0;
    let mut wire_len = 0;
    let mut name = String::new();
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                pos += 1;
                break;
            }
            0x00 => {
                let label = msg.get(pos + 1..pos + 1 + usize::from(len))?;
                wire_len += label.len() + 1;
                if wire_len > MAX_NAME_LEN {
                    return None;
                }
                if !name.is_empty() {
                    name.push('.');
                }
                name.push_str(&field_text(label, 63));
                pos += 1 + label.len();
            }
            0xc0 => {
                let low = *msg.get(pos + 1)?;
                resume.get_or_insert(pos + 2);
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return None;
                }
                pos = usize::from(len & 0x3f) << 8 | usize::from(low);
            }
            // 0x40 and 0x80 (extended label types) are obsolete.
            _ => return None,
        }
    }
    Some((name, resume.unwrap_or(pos)))
}

/// What a complete DNS message told us.
struct Answer {
    rcode: u16,
    authoritative: bool,
    recursion_available: bool,
    txt: Vec<String>,
}

fn parse_message(msg: &[u8]) -> Option<Answer> {
    let mut r = Reader::new(msg);
    let id = r.u16_be()?;
    let flags = r.u16_be()?;
    let qdcount = r.u16_be()?;
    let ancount = r.u16_be()?;
    let _nscount = r.u16_be()?;
    let _arcount = r.u16_be()?;
    if id != QUERY_ID || flags & 0x8000 == 0 || (flags >> 11) & 0xf != 0 || qdcount > MAX_QUESTIONS
    {
        return None;
    }
    let mut pos = HEADER_LEN;
    for _ in 0..qdcount {
        let (_, next) = read_name(msg, pos)?;
        pos = next.checked_add(4)?;
        if pos > msg.len() {
            return None;
        }
    }
    let mut answer = Answer {
        rcode: flags & 0xf,
        authoritative: flags & 0x0400 != 0,
        recursion_available: flags & 0x0080 != 0,
        txt: Vec::new(),
    };
    // The header and question already prove DNS; a damaged answer section only costs
    // the version string.
    let mut chars = 0;
    for _ in 0..usize::from(ancount).min(MAX_RECORDS) {
        let Some((_, next)) = read_name(msg, pos) else {
            break;
        };
        let mut rr = Reader::new(msg.get(next..).unwrap_or_default());
        let (Some(rtype), Some(_class), Some(_ttl), Some(rdlen)) =
            (rr.u16_be(), rr.u16_be(), rr.u32_be(), rr.u16_be())
        else {
            break;
        };
        let Some(rdata) = rr.take(usize::from(rdlen)) else {
            break;
        };
        pos = next + rr.position();
        if rtype != TYPE_TXT {
            continue;
        }
        let mut strings = Reader::new(rdata);
        let mut text = Vec::new();
        while let Some(len) = strings.u8() {
            let Some(s) = strings.take(usize::from(len)) else {
                break;
            };
            text.extend_from_slice(s);
        }
        if chars < MAX_VERSION_CHARS {
            let t = field_text(&text, MAX_VERSION_CHARS - chars);
            chars += t.chars().count();
            answer.txt.push(t);
        }
    }
    Some(answer)
}

impl DnsTcpSession {
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            banner: Banner {
                protocol: "dns".into(),
                ..Banner::default()
            },
            outcome: None,
        }
    }

    fn parse(&mut self, data: &[u8]) -> Action {
        // Refuse early on what has arrived: the length must cover a header, the id must
        // be ours, and the first flags byte must say "response to a standard query".
        let mut r = Reader::new(data);
        if let Some(len) = r.u16_be() {
            if usize::from(len) < HEADER_LEN {
                return Action::NoMatch;
            }
        }
        let prefix_id = data.get(2..4.min(data.len())).unwrap_or_default();
        if !QUERY_ID.to_be_bytes().starts_with(prefix_id) {
            return Action::NoMatch;
        }
        if data
            .get(4)
            .is_some_and(|&f| f & 0x80 == 0 || (f >> 3) & 0xf != 0)
        {
            return Action::NoMatch;
        }
        let mut r = Reader::new(data);
        let Some(len) = r.u16_be() else {
            return Action::NeedMore;
        };
        let Some(msg) = r.take(usize::from(len)) else {
            return Action::NeedMore;
        };
        let Some(answer) = parse_message(msg) else {
            return Action::NoMatch;
        };
        let f = &mut self.banner.fields;
        f.insert("rcode".into(), rcode_name(answer.rcode));
        f.insert("authoritative".into(), answer.authoritative.to_string());
        f.insert(
            "recursion_available".into(),
            answer.recursion_available.to_string(),
        );
        let version = answer.txt.join(",");
        self.banner.text = if version.is_empty() {
            printable(msg)
        } else {
            version.clone()
        };
        if !version.is_empty() {
            f.insert("version".into(), version);
        }
        Action::Done
    }
}

impl Session for DnsTcpSession {
    fn protocol(&self) -> &'static str {
        "dns"
    }

    fn start(&mut self) -> Action {
        Action::Send(query())
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        let mut outcome = self.outcome.take();
        let action = crate::session::settle(&mut outcome, || self.parse(data));
        self.outcome = outcome;
        action
    }

    fn banner(&self) -> Banner {
        self.banner.clone()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::reader::test_support::*;
    use proptest::prelude::*;

    pub(crate) fn fixtures() -> Vec<Vec<u8>> {
        vec![
            bind_reply(),
            refused_reply(),
            notimp_reply(),
            unbound_reply(),
            bind_live(),
        ]
    }

    const QUESTION: &[u8] = b"\x07version\x04bind\x00\x00\x10\x00\x03";

    fn framed(msg: &[u8]) -> Vec<u8> {
        let mut out = (msg.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(msg);
        out
    }

    fn txt_rr(owner: &[u8], text: &[u8]) -> Vec<u8> {
        let mut rr = owner.to_vec();
        rr.extend_from_slice(&[0x00, 0x10, 0x00, 0x03, 0, 0, 0, 0]);
        rr.extend_from_slice(&((text.len() + 1) as u16).to_be_bytes());
        rr.push(text.len() as u8);
        rr.extend_from_slice(text);
        rr
    }

    /// BIND 9.18 on Debian 12: authoritative CH answer plus the `version.bind CH NS`
    /// authority record, everything compressed to offset 12.
    fn bind_reply() -> Vec<u8> {
        let mut m = vec![0x41, 0x50, 0x84, 0x00, 0, 1, 0, 1, 0, 1, 0, 0];
        m.extend_from_slice(QUESTION);
        m.extend(txt_rr(&[0xc0, 0x0c], b"9.18.28-1~deb12u2-Debian"));
        m.extend_from_slice(&[
            0xc0, 0x0c, 0x00, 0x02, 0x00, 0x03, 0, 0, 0, 0, 0, 2, 0xc0, 0x0c,
        ]);
        framed(&m)
    }

    /// `version none;` / an ACL: REFUSED, question echoed.
    fn refused_reply() -> Vec<u8> {
        let mut m = vec![0x41, 0x50, 0x80, 0x05, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(QUESTION);
        framed(&m)
    }

    /// A server that does not implement CHAOS and drops the question section.
    fn notimp_reply() -> Vec<u8> {
        framed(&[0x41, 0x50, 0x80, 0x04, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    /// Unbound as a recursive resolver (RA set), uncompressed owner name, two strings.
    fn unbound_reply() -> Vec<u8> {
        let mut m = vec![0x41, 0x50, 0x84, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(QUESTION);
        let mut rr = b"\x07version\x04bind\x00\x00\x10\x00\x03\x00\x00\x00\x00".to_vec();
        rr.extend_from_slice(&[0, 15, 8]);
        rr.extend_from_slice(b"unbound ");
        rr.push(5);
        rr.extend_from_slice(b"1.17.");
        m.extend(rr);
        framed(&m)
    }

    /// Captured from BIND 9.18.49 (Debian 12 package) on loopback.
    fn bind_live() -> Vec<u8> {
        hex(concat!(
            "00514150840000010001000100000776657273696f6e0462696e640000100003c00c001000030000",
            "0000001918392e31382e34392d317e646562313275332d44656269616ec00c000200030000000000",
            "02c00c",
        ))
    }

    fn run(reply: &[u8]) -> (Action, Banner) {
        let mut s = DnsTcpSession::new(None);
        assert_eq!(s.start(), Action::Send(query()));
        let a = s.on_data(reply);
        (a, s.banner())
    }

    #[test]
    fn query_bytes() {
        let q = query();
        assert_eq!(&q[..2], &[0, 30]);
        assert_eq!(&q[2..14], &[0x41, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[14..], QUESTION);
    }

    #[test]
    fn bind_version() {
        let reply = bind_reply();
        let mut s = DnsTcpSession::new(None);
        let _ = s.start();
        assert_eq!(feed_bytewise(&mut s, &reply), Action::Done);
        let b = s.banner();
        assert_eq!(b.protocol, "dns");
        assert_eq!(b.fields["version"], "9.18.28-1~deb12u2-Debian");
        assert_eq!(b.fields["rcode"], "NOERROR");
        assert_eq!(b.fields["authoritative"], "true");
        assert_eq!(b.fields["recursion_available"], "false");
        assert_eq!(b.text, "9.18.28-1~deb12u2-Debian");
        check_splits(|| DnsTcpSession::new(None), &[], &reply);
    }

    #[test]
    fn refused_and_notimp_identify() {
        for (reply, rcode) in [(refused_reply(), "REFUSED"), (notimp_reply(), "NOTIMP")] {
            let (a, b) = run(&reply);
            assert_eq!(a, Action::Done);
            assert_eq!(b.fields["rcode"], rcode);
            assert!(!b.fields.contains_key("version"));
            check_splits(|| DnsTcpSession::new(None), &[], &reply);
        }
    }

    #[test]
    fn unbound_multi_string() {
        let (a, b) = run(&unbound_reply());
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["version"], "unbound 1.17.");
        assert_eq!(b.fields["recursion_available"], "true");
    }

    #[test]
    fn pointer_loop_is_bounded() {
        let mut m = vec![0x41, 0x50, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(QUESTION);
        // Answer owner points at itself.
        let here = m.len() as u8;
        m.extend(txt_rr(&[0xc0, here], b"loop"));
        let (a, b) = run(&framed(&m));
        assert_eq!(a, Action::Done);
        assert!(!b.fields.contains_key("version"));
        // A question name that loops is not a DNS answer.
        let mut m = vec![0x41, 0x50, 0x84, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 3]);
        assert_eq!(run(&framed(&m)).0, Action::NoMatch);
        assert_eq!(read_name(&[0xc0, 0x00], 0), None);
    }

    #[test]
    fn read_name_follows_pointers() {
        let msg = b"\x03www\x07example\x03com\x00\x04mail\xc0\x04";
        assert_eq!(read_name(msg, 0), Some(("www.example.com".into(), 17)));
        assert_eq!(read_name(msg, 17), Some(("mail.example.com".into(), 24)));
    }

    #[test]
    fn refused_fast() {
        for other in [
            SSH,
            HTTP,
            &framed(&[0x12, 0x34, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0])[..],
            &[0x00, 0x05],
            &framed(&[0x41, 0x50, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ] {
            assert_eq!(run(other).0, Action::NoMatch, "{}", printable(other));
            assert_eq!(
                run(&other[..other.len().min(5)]).0,
                Action::NoMatch,
                "{}",
                printable(other)
            );
        }
    }

    #[test]
    fn captured_bind() {
        let reply = bind_live();
        let (a, b) = run(&reply);
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["version"], "9.18.49-1~deb12u3-Debian");
        check_splits(|| DnsTcpSession::new(None), &[], &reply);
    }

    proptest! {
        #[test]
        fn random_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..2048), id in any::<bool>()) {
            // Half the cases get a plausible prefix so the parser is exercised deeply.
            if id && bytes.len() >= 5 {
                let len = (bytes.len() - 2) as u16;
                bytes[..2].copy_from_slice(&len.to_be_bytes());
                bytes[2..4].copy_from_slice(&QUERY_ID.to_be_bytes());
                bytes[4] = 0x84;
            }
            assert_bounded(&run(&bytes).1);
        }

        #[test]
        fn mutated(pos in any::<usize>(), byte in any::<u8>(), how in any::<u8>(), which in 0..4usize) {
            let valid = [bind_reply(), refused_reply(), notimp_reply(), unbound_reply()];
            assert_bounded(&run(&mutate(&valid[which], pos, byte, how)).1);
        }
    }
}
