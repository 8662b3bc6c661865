//! PostgreSQL: an SSLRequest first (its one-byte answer says whether TLS is offered),
//! then, if the server declined TLS, a StartupMessage whose answer (an authentication
//! request or an error) proves the protocol and tells how clients must authenticate.
//!
//! After `S` the session stops: the driver does not switch to TLS for this protocol,
//! and the fact that TLS is offered is what matters.

use crate::reader::{field_text, is_printable_ascii, Reader};
use crate::session::{printable, Action, Banner, Session};

/// `SSLRequest`: length 8, request code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
const USER: &str = "aperture";
const DATABASE: &str = "aperture";
/// Startup replies are small; an ErrorResponse is a few hundred bytes.
const MAX_MESSAGE: usize = 8192;
/// After AuthenticationOk the server sends about fifteen ParameterStatus messages, a
/// BackendKeyData and ReadyForQuery; stop reading well past that.
const MAX_MESSAGES: usize = 64;
const MAX_REPLY: usize = 32 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    SslReply,
    StartupReply,
    Finished(Action),
}

#[derive(Debug)]
pub struct PostgresSession {
    banner: Banner,
    phase: Phase,
    /// Bytes of the current reply already parsed (complete messages): the driver passes
    /// the whole reply each time, so only what follows needs looking at.
    consumed: usize,
    messages: usize,
    /// AuthenticationOk seen: PostgreSQL is identified, the rest is a bonus.
    authenticated: bool,
}

/// The StartupMessage for protocol 3.0.
pub fn startup_message() -> Vec<u8> {
    let mut body = 0x0003_0000u32.to_be_bytes().to_vec();
    for (key, value) in [("user", USER), ("database", DATABASE)] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// What one backend message meant for the session.
enum Step {
    /// Keep reading messages.
    Continue,
    /// Identified, nothing more to learn.
    Finish,
    /// Not PostgreSQL.
    Reject,
}

impl PostgresSession {
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            banner: Banner {
                protocol: "postgres".into(),
                ..Banner::default()
            },
            phase: Phase::SslReply,
            consumed: 0,
            messages: 0,
            authenticated: false,
        }
    }

    fn set(&mut self, key: &str, value: String) {
        self.banner.fields.insert(key.into(), value);
    }

    fn ssl_reply(&mut self, data: &[u8]) -> Action {
        match data {
            [] => Action::NeedMore,
            [b'S'] => {
                // SSLRequest is PostgreSQL's STARTTLS.
                self.banner.starttls = Some(true);
                self.set("ssl", "true".into());
                self.banner.text = "S".into();
                // Upgrade, then ask for a session over TLS: the answer (auth method or
                // error) is what proves PostgreSQL and names its authentication.
                Action::StartTls
            }
            [b'N'] => {
                self.banner.starttls = Some(false);
                self.set("ssl", "false".into());
                self.phase = Phase::StartupReply;
                self.consumed = 0;
                Action::Send(startup_message())
            }
            // A real server writes exactly one byte and waits for us; anything after it
            // is either another protocol or an attempt to inject data ahead of TLS.
            [b'S' | b'N', ..] => Action::NoMatch,
            // Servers too old for SSLRequest answer it with an ErrorResponse.
            [b'E', ..] => self.messages(data),
            _ => Action::NoMatch,
        }
    }

    /// Parses the complete messages not yet seen.
    fn messages(&mut self, data: &[u8]) -> Action {
        let identified = |s: &Self| {
            if s.authenticated {
                Action::Done
            } else {
                Action::NoMatch
            }
        };
        loop {
            if self.messages >= MAX_MESSAGES || self.consumed >= MAX_REPLY {
                return identified(self);
            }
            let mut r = Reader::new(data.get(self.consumed..).unwrap_or_default());
            let Some(kind) = r.u8() else {
                return Action::NeedMore;
            };
            let expected: &[u8] = if self.authenticated {
                b"SKZNEv"
            } else {
                b"REvN"
            };
            if !expected.contains(&kind) {
                return identified(self);
            }
            let Some(len) = r.u32_be() else {
                return Action::NeedMore;
            };
            let len = len as usize;
            if !(4..=MAX_MESSAGE).contains(&len) {
                return identified(self);
            }
            let Some(body) = r.take(len - 4) else {
                return Action::NeedMore;
            };
            let whole = data
                .get(self.consumed..self.consumed + 1 + len)
                .unwrap_or_default();
            self.consumed += 1 + len;
            self.messages += 1;
            let step = match kind {
                b'R' => self.authentication(body, whole),
                b'E' => self.error(body, whole),
                b'S' => self.parameter(body),
                b'Z' => Step::Finish,
                // NoticeResponse, BackendKeyData (a per-connection secret, never kept),
                // NegotiateProtocolVersion: nothing to record.
                _ => Step::Continue,
            };
            match step {
                Step::Continue => {}
                Step::Finish => return Action::Done,
                Step::Reject => return identified(self),
            }
        }
    }

    fn authentication(&mut self, body: &[u8], whole: &[u8]) -> Step {
        if self.authenticated {
            return Step::Reject;
        }
        let mut r = Reader::new(body);
        let Some(code) = r.u32_be() else {
            return Step::Reject;
        };
        let method = match (code, r.remaining()) {
            (0, 0) => "trust",
            (2, 0) => "kerberos_v5",
            (3, 0) => "cleartext",
            (5, 4) => "md5",
            (6, 0) => "scm_credential",
            (7, 0) => "gss",
            (9, 0) => "sspi",
            (10, _) => "sasl",
            _ => return Step::Reject,
        };
        if code == 10 {
            let mut mechanisms = Vec::new();
            loop {
                let Some(name) = r.cstr() else {
                    return Step::Reject;
                };
                if name.is_empty() {
                    break;
                }
                if !is_printable_ascii(name) || mechanisms.len() >= 16 {
                    return Step::Reject;
                }
                mechanisms.push(field_text(name, 64));
            }
            if mechanisms.is_empty() || !r.is_empty() {
                return Step::Reject;
            }
            self.set("sasl_mechanisms", mechanisms.join(","));
        }
        self.set("auth", method.into());
        self.set("auth_code", code.to_string());
        // The md5 request ends with a per-connection salt: keep it out of the text so
        // that rescans compare equal.
        let shown = if code == 5 {
            whole.get(..9).unwrap_or(whole)
        } else {
            whole
        };
        self.banner.text = printable(shown);
        if code == 0 {
            self.authenticated = true;
            Step::Continue
        } else {
            Step::Finish
        }
    }

    fn error(&mut self, body: &[u8], whole: &[u8]) -> Step {
        let mut r = Reader::new(body);
        let (mut severity, mut localized, mut code, mut message) = (None, None, None, None);
        for _ in 0..32 {
            let Some(field) = r.u8() else {
                return Step::Reject;
            };
            if field == 0 {
                break;
            }
            let Some(value) = r.cstr() else {
                return Step::Reject;
            };
            match field {
                b'V' => severity = Some(value),
                b'S' => localized = Some(value),
                b'C' => code = Some(value),
                b'M' => message = Some(value),
                _ => {}
            }
        }
        let severity = severity.or(localized);
        let sqlstate_ok =
            code.is_none_or(|c| c.len() == 5 && c.iter().all(u8::is_ascii_alphanumeric));
        let (Some(severity), Some(message)) = (severity, message) else {
            return Step::Reject;
        };
        if !sqlstate_ok || !is_printable_ascii(severity) {
            return Step::Reject;
        }
        self.set("severity", field_text(severity, 16));
        if let Some(c) = code {
            self.set("sqlstate", field_text(c, 5));
        }
        self.set("error", field_text(message, 256));
        if !self.authenticated {
            self.banner.text = printable(whole);
        }
        Step::Finish
    }

    fn parameter(&mut self, body: &[u8]) -> Step {
        let mut r = Reader::new(body);
        let (Some(name), Some(value)) = (r.cstr(), r.cstr()) else {
            return Step::Reject;
        };
        if name == b"server_version" {
            self.set("version", field_text(value, 128));
        }
        Step::Continue
    }
}

impl Session for PostgresSession {
    fn protocol(&self) -> &'static str {
        "postgres"
    }

    fn start(&mut self) -> Action {
        Action::Send(SSL_REQUEST.to_vec())
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        let action = match &self.phase {
            Phase::Finished(done) => return done.clone(),
            Phase::SslReply => self.ssl_reply(data),
            Phase::StartupReply => self.messages(data),
        };
        match action {
            Action::NoMatch => {
                self.banner.fields.clear();
                self.banner.text.clear();
                self.banner.starttls = None;
                self.phase = Phase::Finished(Action::NoMatch);
            }
            Action::Done => self.phase = Phase::Finished(Action::Done),
            _ => {}
        }
        action
    }

    fn after_tls(&mut self) -> Action {
        if self.banner.starttls != Some(true) {
            return Action::Done;
        }
        self.phase = Phase::StartupReply;
        self.consumed = 0;
        Action::Send(startup_message())
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

    /// Replies as they follow the SSLRequest ("S", "N") or the StartupMessage.
    pub(crate) fn fixtures() -> Vec<Vec<u8>> {
        vec![
            b"S".to_vec(),
            b"N".to_vec(),
            auth_sasl(),
            auth_md5(),
            no_hba_entry(),
            trust_no_database(),
            trust_ready(),
        ]
    }

    fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// PostgreSQL 15/16 default (`scram-sha-256` in pg_hba.conf), TLS off.
    fn auth_sasl() -> Vec<u8> {
        msg(b'R', b"\0\0\0\x0aSCRAM-SHA-256\0\0")
    }

    fn auth_md5() -> Vec<u8> {
        msg(b'R', &[0, 0, 0, 5, 0x9a, 0x31, 0x07, 0xe2])
    }

    /// A host without a pg_hba.conf line, as PostgreSQL 15 words it.
    fn no_hba_entry() -> Vec<u8> {
        msg(
            b'E',
            b"SFATAL\0VFATAL\0C28000\0Mno pg_hba.conf entry for host \"198.18.0.1\", user \"aperture\", database \"aperture\", no encryption\0Fauth.c\0L543\0RClientAuthentication\0\0",
        )
    }

    /// `trust` for an existing role, missing database: AuthenticationOk then the error,
    /// captured from PostgreSQL 15.18 (Debian 12) on loopback.
    fn trust_no_database() -> Vec<u8> {
        hex(concat!(
            "520000000800000000450000005d53464154414c0056464154414c00433344303030004d64617461",
            "62617365202261706572747572652220646f6573206e6f742065786973740046706f7374696e6974",
            "2e63004c3934380052496e6974506f7374677265730000",
        ))
    }

    /// `trust` with role and database present: the whole startup burst.
    fn trust_ready() -> Vec<u8> {
        let mut out = msg(b'R', &[0, 0, 0, 0]);
        out.extend(msg(b'S', b"application_name\0\0"));
        out.extend(msg(b'S', b"client_encoding\0UTF8\0"));
        out.extend(msg(
            b'S',
            b"server_version\x0016.4 (Debian 16.4-1.pgdg120+1)\0",
        ));
        out.extend(msg(b'S', b"server_encoding\0UTF8\0"));
        out.extend(msg(b'K', &[0, 0, 0x1c, 0x2a, 0xde, 0xad, 0xbe, 0xef]));
        out.extend(msg(b'Z', b"I"));
        out
    }

    /// Runs the N-then-startup exchange and returns the final action and banner.
    fn after_n(reply: &[u8]) -> (Action, Banner) {
        let mut s = PostgresSession::new(None);
        assert_eq!(s.start(), Action::Send(SSL_REQUEST.to_vec()));
        assert_eq!(s.on_data(b"N"), Action::Send(startup_message()));
        let a = s.on_data(reply);
        (a, s.banner())
    }

    #[test]
    fn startup_message_bytes() {
        let m = startup_message();
        assert_eq!(&m[..8], &[0, 0, 0, 41, 0, 3, 0, 0]);
        assert_eq!(&m[8..], b"user\0aperture\0database\0aperture\0\0");
    }

    #[test]
    fn ssl_offered() {
        let mut s = PostgresSession::new(None);
        assert_eq!(s.start(), Action::Send(SSL_REQUEST.to_vec()));
        assert_eq!(s.on_data(b""), Action::NeedMore);
        assert_eq!(s.on_data(b"S"), Action::StartTls);
        assert_eq!(s.banner().fields["ssl"], "true");
        assert_eq!(s.banner().starttls, Some(true));
        assert_eq!(s.banner().protocol, "postgres");
        // Over TLS: the startup message, answered by a SCRAM request.
        assert_eq!(s.after_tls(), Action::Send(startup_message()));
        let mut sasl = vec![b'R'];
        let body = b"\0\0\0\x0aSCRAM-SHA-256\0\0";
        sasl.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        sasl.extend_from_slice(body);
        assert_eq!(s.on_data(&sasl), Action::Done);
        assert_eq!(s.banner().fields["auth"], "sasl");
    }

    #[test]
    fn sasl_scram() {
        let reply = auth_sasl();
        let mut s = PostgresSession::new(None);
        let _ = s.start();
        assert_eq!(feed_bytewise(&mut s, b"N"), Action::Send(startup_message()));
        assert_eq!(feed_bytewise(&mut s, &reply), Action::Done);
        let b = s.banner();
        assert_eq!(b.fields["ssl"], "false");
        assert_eq!(b.starttls, Some(false));
        assert_eq!(b.fields["auth"], "sasl");
        assert_eq!(b.fields["auth_code"], "10");
        assert_eq!(b.fields["sasl_mechanisms"], "SCRAM-SHA-256");
        check_splits(|| PostgresSession::new(None), &[b"N"], &reply);
    }

    #[test]
    fn md5_salt_not_kept() {
        let (a, b) = after_n(&auth_md5());
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["auth"], "md5");
        assert_eq!(b.text, "R\\x00\\x00\\x00\\x0c\\x00\\x00\\x00\\x05");
    }

    #[test]
    fn hba_rejection() {
        let reply = no_hba_entry();
        let (a, b) = after_n(&reply);
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["severity"], "FATAL");
        assert_eq!(b.fields["sqlstate"], "28000");
        assert!(b.fields["error"].starts_with("no pg_hba.conf entry for host"));
        assert!(!b.fields.contains_key("auth"));
        check_splits(|| PostgresSession::new(None), &[b"N"], &reply);
    }

    #[test]
    fn trust_reads_server_version() {
        let reply = trust_no_database();
        let (a, b) = after_n(&reply);
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["auth"], "trust");
        assert_eq!(b.fields["sqlstate"], "3D000");
        assert_eq!(b.fields["error"], "database \"aperture\" does not exist");
        check_splits(|| PostgresSession::new(None), &[b"N"], &reply);

        let reply = trust_ready();
        let (a, b) = after_n(&reply);
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["version"], "16.4 (Debian 16.4-1.pgdg120+1)");
        check_splits(|| PostgresSession::new(None), &[b"N"], &reply);
    }

    #[test]
    fn trust_keeps_facts_while_waiting() {
        let mut s = PostgresSession::new(None);
        let _ = s.start();
        let _ = s.on_data(b"N");
        assert_eq!(s.on_data(&msg(b'R', &[0, 0, 0, 0])), Action::NeedMore);
        assert_eq!(s.banner().fields["auth"], "trust");
    }

    #[test]
    fn other_protocols_refused() {
        let mut s = PostgresSession::new(None);
        let _ = s.start();
        assert_eq!(s.on_data(SSH), Action::NoMatch);
        let mut s = PostgresSession::new(None);
        let _ = s.start();
        assert_eq!(s.on_data(HTTP), Action::NoMatch);
        // Bytes smuggled after the one-byte answer.
        let mut s = PostgresSession::new(None);
        let _ = s.start();
        assert_eq!(s.on_data(b"N\x16\x03\x01"), Action::NoMatch);
        for other in [
            SSH,
            HTTP,
            &msg(b'R', &[0, 0, 0, 42])[..],
            &msg(b'R', &[0, 0, 0, 5])[..],
        ] {
            assert_eq!(after_n(other).0, Action::NoMatch, "{}", printable(other));
            assert!(after_n(other).1.fields.is_empty());
        }
    }

    #[test]
    fn hostile_lengths() {
        assert_eq!(after_n(b"R\xff\xff\xff\xff").0, Action::NoMatch);
        assert_eq!(after_n(b"E\x00\x00\x00\x02").0, Action::NoMatch);
        assert_eq!(after_n(&msg(b'E', b"Mno severity\0\0")).0, Action::NoMatch);
        assert_eq!(
            after_n(&msg(b'R', b"\0\0\0\x0aSCRAM-SHA-256\0")).0,
            Action::NoMatch
        );
    }

    proptest! {
        #[test]
        fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let (_, b) = after_n(&bytes);
            assert_bounded(&b);
            let mut s = PostgresSession::new(None);
            let _ = s.start();
            let _ = s.on_data(&bytes);
            assert_bounded(&s.banner());
        }

        #[test]
        fn mutated(pos in any::<usize>(), byte in any::<u8>(), how in any::<u8>(), which in 0..5usize) {
            let valid = [auth_sasl(), auth_md5(), no_hba_entry(), trust_no_database(), trust_ready()];
            let (_, b) = after_n(&mutate(&valid[which], pos, byte, how));
            assert_bounded(&b);
        }

        #[test]
        fn incremental_equals_whole(cuts in proptest::collection::vec(0..200usize, 0..6), which in 0..5usize) {
            let valid = [auth_sasl(), auth_md5(), no_hba_entry(), trust_no_database(), trust_ready()];
            let reply = &valid[which];
            let (want, want_banner) = after_n(reply);
            let mut s = PostgresSession::new(None);
            let _ = s.start();
            let _ = s.on_data(b"N");
            let mut ends: Vec<usize> = cuts.into_iter().map(|c| c % reply.len()).collect();
            ends.sort_unstable();
            for end in ends {
                prop_assert_eq!(s.on_data(&reply[..end]), Action::NeedMore);
            }
            prop_assert_eq!(s.on_data(reply), want);
            prop_assert_eq!(s.banner(), want_banner);
        }
    }
}
