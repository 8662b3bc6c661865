//! Bounds-checked reading of hostile bytes.
//!
//! Every accessor returns `None` (or an error) instead of panicking or reading past the
//! end, so a protocol parser can be written as a straight line of `?` and a lying
//! length field can only ever make it fail, never make it allocate or index out of
//! bounds. `ber` adds the same discipline for the BER subset LDAP and SPNEGO use.

/// A cursor over a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes, or `None` (consuming nothing) if fewer remain.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// At most `n` bytes: what remains if fewer do. For fields that real servers are
    /// known to truncate.
    pub fn take_up_to(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.remaining());
        self.take(n).unwrap_or_default()
    }

    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    /// A sub-reader over the next `n` bytes (a length-delimited structure).
    pub fn sub(&mut self, n: usize) -> Option<Reader<'a>> {
        self.take(n).map(Reader::new)
    }

    /// Everything that remains.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        out
    }

    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    pub fn u16_be(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub fn u16_le(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    pub fn u24_be(&mut self) -> Option<u32> {
        self.array::<3>()
            .map(|[a, b, c]| u32::from_be_bytes([0, a, b, c]))
    }

    pub fn u24_le(&mut self) -> Option<u32> {
        self.array::<3>()
            .map(|[a, b, c]| u32::from_le_bytes([a, b, c, 0]))
    }

    pub fn u32_be(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub fn u32_le(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub fn u64_le(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// Bytes up to the next NUL; the NUL is consumed but not returned. `None` if no NUL
    /// remains.
    pub fn cstr(&mut self) -> Option<&'a [u8]> {
        let rest = self.buf.get(self.pos..)?;
        let nul = rest.iter().position(|&b| b == 0)?;
        let out = self.take(nul)?;
        self.pos += 1;
        Some(out)
    }
}

/// Received bytes rendered for a `Banner` field: UTF-8 where valid, control characters
/// escaped, at most `max_chars` characters, so a hostile server cannot make a field
/// large or smuggle terminal escapes into a report.
pub fn field_text(bytes: &[u8], max_chars: usize) -> String {
    // Four bytes per character at most: never decode more than could be kept.
    let window = bytes.get(..max_chars.saturating_mul(4)).unwrap_or(bytes);
    let mut out = String::new();
    for (kept, c) in String::from_utf8_lossy(window).chars().enumerate() {
        if kept >= max_chars {
            break;
        }
        if c.is_control() {
            let code = u32::from(c);
            if code <= 0xff {
                out.push_str(&format!("\\x{code:02x}"));
            } else {
                out.push_str(&format!("\\u{{{code:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether a slice is non-empty printable ASCII (space to tilde).
pub fn is_printable_ascii(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|b| (0x20..=0x7e).contains(b))
}

/// A minimal, bounded BER (X.690) reader: single-byte tags, definite lengths only.
///
/// Nesting depth is bounded by the callers, which walk fixed ASN.1 structures rather
/// than recursing over whatever the peer sends; the number of siblings visited is
/// bounded by `children`.
pub mod ber {
    use thiserror::Error;

    /// Largest value accepted: the driver never passes more than 64 KiB anyway.
    pub const MAX_LEN: usize = 64 * 1024;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
    #[non_exhaustive]
    pub enum BerError {
        /// The element continues beyond the bytes available (may still arrive).
        #[error("BER element truncated")]
        Incomplete,
        /// Not acceptable BER: multi-byte tag, indefinite or oversized length.
        #[error("invalid BER element")]
        Invalid,
    }

    pub const INTEGER: u8 = 0x02;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const ENUMERATED: u8 = 0x0a;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;

    /// One tag-length-value element.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Tlv<'a> {
        pub tag: u8,
        pub value: &'a [u8],
    }

    /// The tag, header length and content length of the element at the start of `buf`,
    /// from its first bytes only: lets a framer refuse garbage before the content
    /// arrives.
    pub fn header(buf: &[u8]) -> Result<(u8, usize, usize), BerError> {
        let (&tag, rest) = buf.split_first().ok_or(BerError::Incomplete)?;
        if tag & 0x1f == 0x1f {
            return Err(BerError::Invalid);
        }
        let (&first, rest) = rest.split_first().ok_or(BerError::Incomplete)?;
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            // 0x80 is the indefinite form (not allowed by LDAP's DER-ish BER), and
            // more than four length octets cannot describe anything we would accept.
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(BerError::Invalid);
            }
            let octets = rest.get(..n).ok_or(BerError::Incomplete)?;
            let len = octets
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, 2 + n)
        };
        if len > MAX_LEN {
            return Err(BerError::Invalid);
        }
        Ok((tag, header, len))
    }

    /// Parses the element at the start of `buf`; returns it and the bytes it spans.
    pub fn parse(buf: &[u8]) -> Result<(Tlv<'_>, usize), BerError> {
        let (tag, header, len) = self::header(buf)?;
        let end = header + len;
        let value = buf.get(header..end).ok_or(BerError::Incomplete)?;
        Ok((Tlv { tag, value }, end))
    }

    /// Parses an element that must fill `buf` exactly with the given tag.
    pub fn expect(buf: &[u8], tag: u8) -> Option<Tlv<'_>> {
        let (tlv, used) = parse(buf).ok()?;
        (tlv.tag == tag && used == buf.len()).then_some(tlv)
    }

    /// The elements inside a constructed value, at most `max` of them (iteration then
    /// stops silently: callers keep what they got). Truncation inside a complete
    /// parent is malformation, so it is reported as `Invalid`.
    pub fn children(value: &[u8], max: usize) -> Children<'_> {
        Children {
            rest: value,
            left: max,
        }
    }

    #[derive(Debug, Clone)]
    pub struct Children<'a> {
        rest: &'a [u8],
        left: usize,
    }

    impl<'a> Iterator for Children<'a> {
        type Item = Result<Tlv<'a>, BerError>;

        fn next(&mut self) -> Option<Self::Item> {
            if self.rest.is_empty() || self.left == 0 {
                return None;
            }
            self.left -= 1;
            match parse(self.rest) {
                Ok((tlv, used)) => {
                    self.rest = self.rest.get(used..).unwrap_or_default();
                    Some(Ok(tlv))
                }
                Err(_) => {
                    self.rest = &[];
                    self.left = 0;
                    Some(Err(BerError::Invalid))
                }
            }
        }
    }

    /// A signed INTEGER or ENUMERATED value of at most eight octets.
    pub fn integer(value: &[u8]) -> Option<i64> {
        if value.is_empty() || value.len() > 8 {
            return None;
        }
        let negative = value.first().is_some_and(|b| b & 0x80 != 0);
        let start = if negative { -1i64 } else { 0 };
        Some(
            value
                .iter()
                .fold(start, |acc, &b| (acc << 8) | i64::from(b)),
        )
    }

    /// Dotted rendering of an OBJECT IDENTIFIER, `None` if malformed or absurdly long.
    pub fn oid(value: &[u8]) -> Option<String> {
        if value.is_empty() || value.len() > 64 {
            return None;
        }
        let mut arcs: Vec<u64> = Vec::new();
        let mut acc: u64 = 0;
        for &b in value {
            if acc > (u64::MAX >> 7) {
                return None;
            }
            acc = (acc << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                arcs.push(acc);
                acc = 0;
            }
        }
        if value.last().is_some_and(|b| b & 0x80 != 0) {
            return None;
        }
        let (&first, rest) = arcs.split_first()?;
        let (a, b) = match first {
            0..=39 => (0, first),
            40..=79 => (1, first - 40),
            _ => (2, first - 80),
        };
        let mut out = format!("{a}.{b}");
        for arc in rest {
            out.push('.');
            out.push_str(&arc.to_string());
        }
        Some(out)
    }

    /// Encodes one element (definite length, minimal form): used to build requests.
    pub fn encode(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(value.len() + 6);
        out.push(tag);
        let len = value.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = (len as u32).to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            let significant = bytes.get(skip..).unwrap_or_default();
            out.push(0x80 | significant.len() as u8);
            out.extend_from_slice(significant);
        }
        out.extend_from_slice(value);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::ber::{self, BerError};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reader_reads_and_refuses() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5, b'a', 0, 9]);
        assert_eq!(r.u8(), Some(1));
        assert_eq!(r.u16_be(), Some(0x0203));
        assert_eq!(r.u16_le(), Some(0x0504));
        assert_eq!(r.cstr(), Some(&b"a"[..]));
        assert_eq!(r.u32_le(), None);
        assert_eq!(r.position(), 7);
        assert_eq!(r.take(usize::MAX), None);
        assert_eq!(r.rest(), &[9]);
        assert!(r.is_empty());
        assert_eq!(r.cstr(), None);
        assert_eq!(Reader::new(&[1, 2, 3]).u24_le(), Some(0x030201));
        assert_eq!(Reader::new(&[1, 2, 3]).u24_be(), Some(0x010203));
    }

    #[test]
    fn field_text_escapes_and_caps() {
        assert_eq!(field_text(b"a\r\n\x1b[31m", 100), "a\\x0d\\x0a\\x1b[31m");
        assert_eq!(field_text("éé".as_bytes(), 1), "é");
        assert_eq!(field_text(&[0xff, b'x'], 10), "\u{fffd}x");
    }

    #[test]
    fn ber_lengths() {
        assert_eq!(
            ber::parse(&[0x04, 0x01, b'a']).map(|(t, n)| (t.value, n)),
            Ok((&b"a"[..], 3))
        );
        assert_eq!(ber::parse(&[0x04, 0x02, b'a']), Err(BerError::Incomplete));
        assert_eq!(ber::parse(&[0x04, 0x80]), Err(BerError::Invalid));
        assert_eq!(ber::parse(&[0x1f, 0x01]), Err(BerError::Invalid));
        assert_eq!(
            ber::parse(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff]),
            Err(BerError::Invalid)
        );
        // Active Directory always uses the four-octet long form.
        assert_eq!(
            ber::parse(&[0x04, 0x84, 0, 0, 0, 1, b'z']).map(|(_, n)| n),
            Ok(7)
        );
        let long = ber::encode(0x04, &[7u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(ber::parse(&long).map(|(t, _)| t.value.len()), Ok(300));
    }

    #[test]
    fn ber_values() {
        assert_eq!(ber::integer(&[0x01, 0x00]), Some(256));
        assert_eq!(ber::integer(&[0xff]), Some(-1));
        assert_eq!(ber::integer(&[]), None);
        assert_eq!(
            ber::oid(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a]).as_deref(),
            Some("1.3.6.1.4.1.311.2.2.10")
        );
        assert_eq!(ber::oid(&[0x2b, 0x86]), None);
        assert_eq!(ber::oid(&[0xff; 20]), None);
    }

    proptest! {
        #[test]
        fn ber_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok((tlv, used)) = ber::parse(&bytes) {
                prop_assert!(used <= bytes.len());
                prop_assert_eq!(ber::children(tlv.value, 8).take(100).count() <= 8, true);
            }
            let _ = ber::oid(&bytes);
            let _ = ber::integer(&bytes);
            prop_assert!(field_text(&bytes, 16).chars().count() <= 16 * 10);
        }
    }
}

/// Helpers shared by the protocol tests.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::session::{Action, Banner, Session};

    pub const SSH: &[u8] = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";
    pub const HTTP: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 0\r\n\r\n";

    /// Feeds every prefix of `reply` in turn, as a driver does when the reply arrives one
    /// byte per read: every proper prefix must ask for more, the whole must decide.
    pub fn feed_bytewise(s: &mut dyn Session, reply: &[u8]) -> Action {
        for end in 0..reply.len() {
            let got = s.on_data(&reply[..end]);
            assert_eq!(got, Action::NeedMore, "prefix of {end} bytes");
        }
        s.on_data(reply)
    }

    /// Every way to split `reply` into two reads, on fresh sessions from `make`, must give
    /// the same outcome and banner as one read.
    pub fn check_splits<S: Session>(make: impl Fn() -> S, prime: &[&[u8]], reply: &[u8]) {
        let primed = || {
            let mut s = make();
            let _ = s.start();
            for p in prime {
                let _ = s.on_data(p);
            }
            s
        };
        let mut whole = primed();
        let want = whole.on_data(reply);
        let want_banner: Banner = whole.banner();
        for cut in 0..reply.len() {
            let mut s = primed();
            let first = s.on_data(&reply[..cut]);
            assert_eq!(first, Action::NeedMore, "cut at {cut}");
            assert_eq!(s.on_data(reply), want, "cut at {cut}");
            assert_eq!(s.banner(), want_banner, "cut at {cut}");
        }
    }

    /// Bytes from a hex dump (captures of real servers on loopback).
    pub fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| {
                let text = std::str::from_utf8(pair).expect("ascii");
                u8::from_str_radix(text, 16).expect("hex digit pair")
            })
            .collect()
    }

    /// Output bounds every session must respect whatever it was fed.
    pub fn assert_bounded(b: &Banner) {
        assert!(b.fields.len() <= 32, "{} fields", b.fields.len());
        assert!(b.text.len() <= 4 * crate::session::BANNER_CAP);
        for (k, v) in &b.fields {
            assert!(k.len() <= 40, "key {k}");
            assert!(v.len() <= 8192, "value of {k}: {} bytes", v.len());
        }
    }

    /// Mutations of a valid reply: flipped bytes, hostile lengths, truncation, insertion.
    pub fn mutate(valid: &[u8], pos: usize, byte: u8, how: u8) -> Vec<u8> {
        let mut v = valid.to_vec();
        if v.is_empty() {
            return vec![byte];
        }
        let at = pos % v.len();
        match how % 5 {
            0 => v[at] = byte,
            1 => {
                for (i, b) in [0xff, 0xff, 0xff, 0xff].iter().enumerate() {
                    if let Some(slot) = v.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            2 => v.truncate(at),
            3 => v.insert(at, byte),
            _ => {
                v[at] ^= byte;
                v.extend_from_slice(&[byte; 7]);
            }
        }
        v
    }
}

/// Every protocol's realistic replies fed to every other protocol's session: none may
/// be taken for a foreign protocol.
#[cfg(test)]
mod cross_protocol {
    use crate::proto::{dns_tcp, ldap, mqtt, mysql, postgres, rdp, smb};
    use crate::session::{Action, Session};

    type Make = fn() -> Box<dyn Session>;

    fn sessions() -> Vec<(&'static str, Make, Vec<Vec<u8>>)> {
        vec![
            (
                "mysql",
                || Box::new(mysql::MysqlSession::new(None)),
                mysql::tests::fixtures(),
            ),
            (
                "postgres",
                || Box::new(postgres::PostgresSession::new(None)),
                postgres::tests::fixtures(),
            ),
            (
                "mqtt",
                || Box::new(mqtt::MqttSession::new(None)),
                mqtt::tests::fixtures(),
            ),
            (
                "dns",
                || Box::new(dns_tcp::DnsTcpSession::new(None)),
                dns_tcp::tests::fixtures(),
            ),
            (
                "rdp",
                || Box::new(rdp::RdpSession::new(None)),
                rdp::tests::fixtures(),
            ),
            (
                "smb",
                || Box::new(smb::SmbSession::new(None)),
                smb::tests::fixtures(),
            ),
            (
                "ldap",
                || Box::new(ldap::LdapSession::new(None)),
                ldap::tests::fixtures(),
            ),
        ]
    }

    /// Primes a fresh session the way the driver would before `reply` arrives.
    fn primed(name: &str, make: Make, reply: &[u8]) -> Box<dyn Session> {
        let mut s = make();
        let _ = s.start();
        if name == "postgres" && !matches!(reply, [b'S' | b'N', ..]) {
            let _ = s.on_data(b"N");
        }
        s
    }

    proptest::proptest! {
        /// Reading a reply in pieces decides exactly as reading it at once, for valid and
        /// mutated replies alike (an early refusal must be one the whole would give).
        #[test]
        fn pieces_decide_like_the_whole(
            which in 0..7usize,
            fixture in proptest::prelude::any::<usize>(),
            pos in proptest::prelude::any::<usize>(),
            byte in proptest::prelude::any::<u8>(),
            how in proptest::prelude::any::<u8>(),
            mutate_it in proptest::prelude::any::<bool>(),
            cuts in proptest::collection::vec(proptest::prelude::any::<usize>(), 0..8),
        ) {
            let all = sessions();
            let (name, make, replies) = &all[which];
            let valid = &replies[fixture % replies.len()];
            let reply = if mutate_it {
                super::test_support::mutate(valid, pos, byte, how)
            } else {
                valid.clone()
            };
            // PostgreSQL's first answer is one byte, so "S" followed by anything is
            // decided on the "S" alone when it arrives first: inherent, not a bug.
            proptest::prop_assume!(!(*name == "postgres" && reply.len() > 1 && matches!(reply[0], b'S' | b'N')));
            let mut whole = primed(name, *make, &reply);
            let want = whole.on_data(&reply);
            let want_banner = whole.banner();
            let mut s = primed(name, *make, &reply);
            let mut ends: Vec<usize> = cuts.iter().map(|c| c % (reply.len() + 1)).collect();
            ends.sort_unstable();
            let mut got = Action::NeedMore;
            for end in ends.into_iter().chain([reply.len()]) {
                got = s.on_data(&reply[..end]);
                if got != Action::NeedMore {
                    break;
                }
            }
            proptest::prop_assert_eq!(&got, &want, "{} {:?}", name, reply);
            if got != Action::NoMatch {
                proptest::prop_assert_eq!(s.banner(), want_banner);
            }
        }
    }

    #[test]
    fn no_session_accepts_another_protocols_reply() {
        let all = sessions();
        for (name, make, _) in &all {
            for (other, _, replies) in &all {
                if name == other {
                    continue;
                }
                for reply in replies {
                    let mut s = make();
                    assert_eq!(s.protocol(), *name);
                    let _ = s.start();
                    let got = s.on_data(reply);
                    assert_ne!(got, Action::Done, "{name} took a {other} reply");
                    // Postgres's second phase, after the server declined TLS.
                    if *name == "postgres" {
                        let mut s = make();
                        let _ = s.start();
                        let _ = s.on_data(b"N");
                        let got = s.on_data(reply);
                        assert_ne!(got, Action::Done, "postgres took a {other} reply after N");
                    }
                }
            }
        }
    }
}
