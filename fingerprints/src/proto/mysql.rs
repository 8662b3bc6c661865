//! MySQL / MariaDB: the server speaks first with an Initial Handshake packet (protocol
//! 10), or with an ERR packet when it refuses the client's host outright.

use crate::reader::{field_text, is_printable_ascii, Reader};
use crate::session::{printable, Action, Banner, Session};
use std::collections::BTreeMap;

/// Real handshakes are about 80-120 bytes and ERR packets a few hundred; anything
/// announcing more than this is not a MySQL greeting and would only make us wait.
const MAX_PAYLOAD: usize = 2048;
const CLIENT_SSL: u32 = 0x0000_0800;
const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;

#[derive(Debug)]
pub struct MysqlSession {
    banner: Banner,
    outcome: Option<Action>,
}

impl MysqlSession {
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            banner: Banner {
                protocol: "mysql".into(),
                ..Banner::default()
            },
            outcome: None,
        }
    }

    fn parse(&mut self, data: &[u8]) -> Action {
        // The header is checked byte by byte as it arrives so that text protocols
        // ("SSH-", "HTTP", "220 ") are refused at once rather than read as a 3-byte
        // length of several megabytes.
        let max_len = MAX_PAYLOAD as u32;
        let plausible = match data {
            [] => true,
            [_] => true,
            [_, b1] => u32::from(*b1) << 8 <= max_len,
            [b0, b1, b2, rest @ ..] => {
                let len = u32::from_le_bytes([*b0, *b1, *b2, 0]);
                len >= 1 && len <= max_len && rest.first().is_none_or(|&seq| seq == 0)
            }
        };
        if !plausible {
            return Action::NoMatch;
        }
        let mut r = Reader::new(data);
        let (Some(len), Some(_seq)) = (r.u24_le(), r.u8()) else {
            return Action::NeedMore;
        };
        let avail = r.rest();
        match avail.first() {
            None => return Action::NeedMore,
            Some(10 | 0xff) => {}
            Some(_) => return Action::NoMatch,
        }
        if avail.first() == Some(&10)
            && !version_prefix_plausible(avail.get(1..).unwrap_or_default())
        {
            return Action::NoMatch;
        }
        let Some(payload) = avail.get(..len as usize) else {
            return Action::NeedMore;
        };
        let fields = match payload.first() {
            Some(10) => parse_handshake(payload),
            _ => parse_err(payload),
        };
        match fields {
            Some((fields, text)) => {
                // CLIENT_SSL is MySQL's STARTTLS: the client asks for TLS in its reply.
                self.banner.starttls = fields.get("ssl").map(|v| v == "true");
                self.banner.fields = fields;
                self.banner.text = text;
                Action::Done
            }
            None => Action::NoMatch,
        }
    }
}

/// The server version as far as it has arrived: starts with a digit, printable ASCII,
/// NUL-terminated within a sane length.
fn version_prefix_plausible(bytes: &[u8]) -> bool {
    let upto = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let version = bytes.get(..upto).unwrap_or_default();
    if upto > 128 || (upto == 0 && bytes.first() == Some(&0)) {
        return false;
    }
    version.first().is_none_or(u8::is_ascii_digit)
        && version.iter().all(|b| (0x20..=0x7e).contains(b))
}

type Parsed = (BTreeMap<String, String>, String);

fn parse_handshake(payload: &[u8]) -> Option<Parsed> {
    let mut r = Reader::new(payload);
    let protocol = r.u8()?;
    let version = r.cstr()?;
    if !is_printable_ascii(version) || !version.first()?.is_ascii_digit() {
        return None;
    }
    let connection_id = r.u32_le()?;
    r.skip(8)?; // auth-plugin-data part 1: a random nonce, never kept
    r.skip(1)?; // filler
    let mut caps = u32::from(r.u16_le()?);
    let mut plugin: Option<&[u8]> = None;
    // Everything after the low capability word is optional (pre-4.1 servers stop
    // here); what is present is read best-effort since the server is identified.
    if let (Some(_charset), Some(_status), Some(hi), Some(auth_len), Some(_reserved)) =
        (r.u8(), r.u16_le(), r.u16_le(), r.u8(), r.take(10))
    {
        caps |= u32::from(hi) << 16;
        if caps & CLIENT_SECURE_CONNECTION != 0 {
            r.take_up_to(usize::from(auth_len).saturating_sub(8).max(13));
        }
        if caps & CLIENT_PLUGIN_AUTH != 0 {
            // Some 5.5 releases omit the final NUL.
            plugin = Some(r.cstr().unwrap_or_else(|| r.rest()));
        }
    }
    let version_text = field_text(version, 128);
    let mut fields = BTreeMap::new();
    fields.insert("protocol_version".into(), protocol.to_string());
    fields.insert("connection_id".into(), connection_id.to_string());
    fields.insert("capabilities".into(), format!("0x{caps:08x}"));
    fields.insert("ssl".into(), (caps & CLIENT_SSL != 0).to_string());
    if let Some(p) = plugin.filter(|p| !p.is_empty()) {
        fields.insert("auth_plugin".into(), field_text(p, 64));
    }
    if version_text.contains("MariaDB") {
        fields.insert("flavor".into(), "mariadb".into());
    }
    fields.insert("version".into(), version_text);
    Some((fields, printable(version)))
}

fn parse_err(payload: &[u8]) -> Option<Parsed> {
    let mut r = Reader::new(payload);
    r.u8()?; // 0xff
    let code = r.u16_le()?;
    let mut sqlstate = None;
    if r.peek_u8() == Some(b'#') {
        r.skip(1)?;
        sqlstate = Some(r.take(5)?);
    }
    let message = r.rest();
    // Server error codes start at 1000; the message is human text. Both checks keep
    // arbitrary binary starting with 0xff from being taken for MySQL.
    let is_text = !message.is_empty() && message.iter().all(|&b| b >= 0x20 && b != 0x7f);
    if code < 1000 || !is_text {
        return None;
    }
    let mut fields = BTreeMap::new();
    fields.insert("error_code".into(), code.to_string());
    fields.insert("error".into(), field_text(message, 256));
    if let Some(state) = sqlstate {
        if !is_printable_ascii(state) {
            return None;
        }
        fields.insert("sqlstate".into(), field_text(state, 5));
    }
    Some((fields, printable(message)))
}

impl Session for MysqlSession {
    fn protocol(&self) -> &'static str {
        "mysql"
    }

    fn start(&mut self) -> Action {
        Action::NeedMore
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
            mariadb_10_11(),
            mysql_8_0(),
            host_not_allowed(),
            mariadb_live(),
        ]
    }

    /// Prefixes a payload with the 3-byte length and sequence 0.
    fn packet(payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_le_bytes()[..3].to_vec();
        out.push(0);
        out.extend_from_slice(payload);
        out
    }

    /// MariaDB 10.11.6 as packaged in Debian 12, default configuration (no TLS).
    fn mariadb_10_11() -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(b"5.5.5-10.11.6-MariaDB-0+deb12u1\0");
        p.extend_from_slice(&[0x1f, 0x00, 0x00, 0x00]); // connection id 31
        p.extend_from_slice(b"T|_9a;G~"); // scramble part 1
        p.push(0);
        p.extend_from_slice(&[0xfe, 0xf7]); // capabilities low
        p.push(0x2d); // utf8mb4_general_ci
        p.extend_from_slice(&[0x02, 0x00]); // SERVER_STATUS_AUTOCOMMIT
        p.extend_from_slice(&[0xff, 0x81]); // capabilities high
        p.push(21);
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x1d, 0, 0, 0]); // MariaDB extended caps
        p.extend_from_slice(b"k`L3%3o&Y]-T\0"); // scramble part 2
        p.extend_from_slice(b"mysql_native_password\0");
        packet(&p)
    }

    /// MySQL 8.0.36 with TLS available (auto-generated certificates).
    fn mysql_8_0() -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(b"8.0.36\0");
        p.extend_from_slice(&[0x0d, 0x00, 0x00, 0x00]);
        p.extend_from_slice(&[0x3a, 0x17, 0x2c, 0x5e, 0x11, 0x6f, 0x4d, 0x70]);
        p.push(0);
        p.extend_from_slice(&[0xff, 0xff]);
        p.push(0xff); // utf8mb4_0900_ai_ci
        p.extend_from_slice(&[0x02, 0x00]);
        p.extend_from_slice(&[0xff, 0xdf]);
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(&[
            0x01, 0x6b, 0x57, 0x3c, 0x22, 0x49, 0x0c, 0x5a, 0x5d, 0x1b, 0x6e, 0x41, 0x00,
        ]);
        p.extend_from_slice(b"caching_sha2_password\0");
        packet(&p)
    }

    fn host_not_allowed() -> Vec<u8> {
        let mut p = vec![0xff, 0x6a, 0x04];
        p.extend_from_slice(b"Host '198.18.0.1' is not allowed to connect to this MariaDB server");
        // An ERR before the handshake has sequence 0 like the handshake would.
        packet(&p)
    }

    /// Captured from MariaDB 10.11.19 (Debian 12 package, `--no-defaults`) on loopback.
    fn mariadb_live() -> Vec<u8> {
        hex(concat!(
            "640000000a352e352e352d31302e31312e31392d4d6172696144422d302b64656231327531000500",
            "0000437a5f4a366e475900fef7080200ff81150000000000001d00000069237030386b32573f7243",
            "36006d7973716c5f6e61746976655f70617373776f726400",
        ))
    }

    fn run(reply: &[u8]) -> (Action, Banner) {
        let mut s = MysqlSession::new(None);
        assert_eq!(s.start(), Action::NeedMore);
        let a = s.on_data(reply);
        (a, s.banner())
    }

    #[test]
    fn mariadb_handshake() {
        let reply = mariadb_10_11();
        assert_eq!(&reply[..5], &[0x63, 0, 0, 0, 10]);
        let mut s = MysqlSession::new(Some("db.example"));
        assert_eq!(s.start(), Action::NeedMore);
        assert_eq!(feed_bytewise(&mut s, &reply), Action::Done);
        let b = s.banner();
        assert_eq!(b.protocol, "mysql");
        assert_eq!(b.fields["version"], "5.5.5-10.11.6-MariaDB-0+deb12u1");
        assert_eq!(b.fields["flavor"], "mariadb");
        assert_eq!(b.fields["protocol_version"], "10");
        assert_eq!(b.fields["connection_id"], "31");
        assert_eq!(b.fields["auth_plugin"], "mysql_native_password");
        assert_eq!(b.fields["capabilities"], "0x81fff7fe");
        assert_eq!(b.fields["ssl"], "false");
        assert_eq!(b.starttls, Some(false));
        assert_eq!(b.text, "5.5.5-10.11.6-MariaDB-0+deb12u1");
        check_splits(|| MysqlSession::new(None), &[], &reply);
    }

    #[test]
    fn mysql8_handshake() {
        let (a, b) = run(&mysql_8_0());
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["version"], "8.0.36");
        assert_eq!(b.fields["auth_plugin"], "caching_sha2_password");
        assert_eq!(b.fields["ssl"], "true");
        assert_eq!(b.starttls, Some(true));
        assert!(!b.fields.contains_key("flavor"));
        check_splits(|| MysqlSession::new(None), &[], &mysql_8_0());
    }

    #[test]
    fn plugin_name_without_nul() {
        let mut reply = mysql_8_0();
        reply.pop();
        reply[0] -= 1;
        let (a, b) = run(&reply);
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["auth_plugin"], "caching_sha2_password");
    }

    #[test]
    fn pre_41_handshake() {
        let mut p = vec![10];
        p.extend_from_slice(b"4.0.27\0");
        p.extend_from_slice(&[1, 0, 0, 0]);
        p.extend_from_slice(b"abcdefgh\0");
        p.extend_from_slice(&[0x2c, 0x02]);
        let (a, b) = run(&packet(&p));
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["version"], "4.0.27");
        assert!(!b.fields.contains_key("auth_plugin"));
    }

    #[test]
    fn err_packet_identifies() {
        let reply = host_not_allowed();
        let (a, b) = run(&reply);
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["error_code"], "1130");
        assert!(b.fields["error"].contains("is not allowed to connect"));
        assert_eq!(b.starttls, None);
        check_splits(|| MysqlSession::new(None), &[], &reply);

        let mut p = vec![0xff, 0x10, 0x04];
        p.extend_from_slice(b"#08004Too many connections");
        let (a, b) = run(&packet(&p));
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["sqlstate"], "08004");
        assert_eq!(b.fields["error"], "Too many connections");
    }

    #[test]
    fn other_protocols_refused_fast() {
        for other in [
            SSH,
            HTTP,
            b"220 mail ESMTP Postfix\r\n".as_slice(),
            b"\x15\x03\x03\x00\x02\x02\x28",
        ] {
            let (a, _) = run(other);
            assert_eq!(a, Action::NoMatch, "{}", printable(other));
            // Refused from the first few bytes, not after waiting for a bogus length.
            let (a, _) = run(&other[..4]);
            assert_eq!(a, Action::NoMatch, "{}", printable(other));
        }
    }

    #[test]
    fn hostile_lengths_refused() {
        assert_eq!(run(&[0xff, 0xff, 0xff, 0x00]).0, Action::NoMatch);
        assert_eq!(run(&[0x00, 0x00, 0x00, 0x00]).0, Action::NoMatch);
        assert_eq!(run(&[0x05, 0x00, 0x00, 0x01]).0, Action::NoMatch);
        assert_eq!(run(&packet(&[10, b'x', 0])).0, Action::NoMatch);
        assert_eq!(
            run(&packet(&[0xff, 0x01, 0x00, b'h', b'i'])).0,
            Action::NoMatch
        );
    }

    #[test]
    fn verdict_is_sticky() {
        let mut s = MysqlSession::new(None);
        assert_eq!(s.on_data(&mysql_8_0()), Action::Done);
        assert_eq!(s.on_data(SSH), Action::Done);
        assert_eq!(s.banner().fields["version"], "8.0.36");
    }

    #[test]
    fn captured_mariadb() {
        let reply = mariadb_live();
        let (a, b) = run(&reply);
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["version"], "5.5.5-10.11.19-MariaDB-0+deb12u1");
        assert_eq!(b.fields["capabilities"], "0x81fff7fe");
        assert_eq!(b.fields["auth_plugin"], "mysql_native_password");
        check_splits(|| MysqlSession::new(None), &[], &reply);
    }

    proptest! {
        #[test]
        fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let (_, b) = run(&bytes);
            assert_bounded(&b);
        }

        #[test]
        fn mutated(pos in any::<usize>(), byte in any::<u8>(), how in any::<u8>(), which in 0..3usize) {
            let valid = [mariadb_10_11(), mysql_8_0(), host_not_allowed()];
            let bytes = mutate(&valid[which], pos, byte, how);
            let (_, b) = run(&bytes);
            assert_bounded(&b);
        }
    }
}
