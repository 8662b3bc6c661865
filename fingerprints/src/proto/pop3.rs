//! POP3 (RFC 1939): server-first `+OK` greeting, `CAPA` (RFC 2449), and when `STLS`
//! (RFC 2595) is listed the upgrade and `CAPA` again over TLS.
//!
//! Fields: `greeting` (text after `+OK`/`-ERR`), `status` (`ok`, `err`), `apop` (`true`
//! when the greeting carries an APOP timestamp), `capa_status`, `capabilities` (one per
//! line), `capabilities_tls`, `stls_status`. `starttls` is `Some(listed)` once CAPA was
//! answered. A `-ERR` greeting (e.g. too many connections) still identifies POP3.

use super::lines::{
    clean, has_binary, join_list, split_line, ITEM_CAP, MAX_LINE, MAX_REPLY_LINES, TEXT_CAP,
};
use crate::session::{printable, Action, Banner, Session};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Capa { tls: bool },
    StlsReply,
    AwaitTls,
    Done,
    NoMatch,
}

/// POP3 banner grabber.
#[derive(Debug, Clone)]
pub struct Pop3Session {
    state: State,
    banner: Banner,
}

/// A status line: `+OK text` / `-ERR text`. `None` if it is neither.
fn status_line(line: &[u8]) -> Option<(bool, &[u8])> {
    for (word, ok) in [(&b"+OK"[..], true), (b"-ERR", false)] {
        if let Some(rest) = line.strip_prefix(word) {
            if rest.is_empty() || rest[0] == b' ' {
                return Some((ok, rest));
            }
        }
    }
    None
}

/// Whether a partial first line can still become a status line.
fn could_be_status(data: &[u8]) -> bool {
    [&b"+OK"[..], b"-ERR"]
        .iter()
        .any(|w| w.starts_with(&data[..data.len().min(w.len())]))
        && !has_binary(data)
        && data.len() <= MAX_LINE
}

/// The result of reading one single-line status reply.
enum Reply<'a> {
    Incomplete,
    Invalid,
    Status(bool, &'a [u8], &'a [u8]),
}

fn read_status(data: &[u8]) -> Reply<'_> {
    match split_line(data) {
        None if could_be_status(data) => Reply::Incomplete,
        None => Reply::Invalid,
        Some((line, rest)) => match status_line(line) {
            Some((ok, text)) if line.len() <= MAX_LINE && !has_binary(line) => {
                Reply::Status(ok, text, rest)
            }
            _ => Reply::Invalid,
        },
    }
}

/// The lines of a multi-line response body, up to the `.` terminator, dot-unstuffed.
/// `None` while the terminator has not arrived; `Some(Err(()))` on garbage.
fn read_multiline(mut data: &[u8]) -> Option<Result<Vec<&[u8]>, ()>> {
    let mut lines = Vec::new();
    loop {
        let Some((line, rest)) = split_line(data) else {
            return (data.len() > MAX_LINE).then_some(Err(()));
        };
        if line == b"." {
            return Some(Ok(lines));
        }
        if line.len() > MAX_LINE || lines.len() >= MAX_REPLY_LINES {
            return Some(Err(()));
        }
        lines.push(line.strip_prefix(b".").unwrap_or(line));
        data = rest;
    }
}

impl Pop3Session {
    /// `host` is unused (POP3 names no client before login); accepted so that every
    /// text session is built the same way.
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            state: State::Greeting,
            banner: Banner {
                protocol: "pop3".into(),
                ..Banner::default()
            },
        }
    }

    fn end(&mut self, action: Action) -> Action {
        self.state = match action {
            Action::Done => State::Done,
            Action::NoMatch => State::NoMatch,
            _ => self.state,
        };
        action
    }

    fn on_greeting(&mut self, data: &[u8]) -> Action {
        let (ok, text, rest) = match read_status(data) {
            Reply::Incomplete => return Action::NeedMore,
            Reply::Invalid => return self.end(Action::NoMatch),
            Reply::Status(ok, text, rest) => (ok, text, rest),
        };
        let line = &data[..data.len() - rest.len()];
        self.banner.text = printable(line);
        let f = &mut self.banner.fields;
        let greeting = clean(text, TEXT_CAP);
        // `<pid.clock@host>` (RFC 1939 §7): the server supports APOP.
        let apop = greeting
            .split_ascii_whitespace()
            .any(|w| w.starts_with('<') && w.ends_with('>') && w.contains('@'));
        if apop {
            f.insert("apop".into(), "true".into());
        }
        f.insert("greeting".into(), greeting);
        f.insert("status".into(), if ok { "ok" } else { "err" }.into());
        if !ok {
            return self.end(Action::Done);
        }
        self.state = State::Capa { tls: false };
        Action::Send(b"CAPA\r\n".to_vec())
    }

    fn on_capa(&mut self, data: &[u8], tls: bool) -> Action {
        let (ok, rest) = match read_status(data) {
            Reply::Incomplete => return Action::NeedMore,
            Reply::Invalid => return self.end(Action::Done),
            Reply::Status(ok, _, rest) => (ok, rest),
        };
        if !tls {
            self.banner
                .fields
                .insert("capa_status".into(), if ok { "ok" } else { "err" }.into());
        }
        let caps: Vec<String> = if ok {
            match read_multiline(rest) {
                None => return Action::NeedMore,
                Some(Err(())) => return self.end(Action::Done),
                Some(Ok(lines)) => lines.iter().map(|l| clean(l, ITEM_CAP)).collect(),
            }
        } else {
            Vec::new()
        };
        let key = if tls {
            "capabilities_tls"
        } else {
            "capabilities"
        };
        if !caps.is_empty() {
            self.banner.fields.insert(key.into(), join_list(&caps));
        }
        if tls {
            return self.end(Action::Done);
        }
        let offered = caps.iter().any(|c| c.eq_ignore_ascii_case("STLS"));
        self.banner.starttls = Some(offered);
        if offered {
            self.state = State::StlsReply;
            Action::Send(b"STLS\r\n".to_vec())
        } else {
            self.end(Action::Done)
        }
    }

    fn on_stls(&mut self, data: &[u8]) -> Action {
        match read_status(data) {
            Reply::Incomplete => Action::NeedMore,
            Reply::Invalid => self.end(Action::Done),
            Reply::Status(ok, _, _) => {
                self.banner
                    .fields
                    .insert("stls_status".into(), if ok { "ok" } else { "err" }.into());
                if ok {
                    self.state = State::AwaitTls;
                    Action::StartTls
                } else {
                    self.end(Action::Done)
                }
            }
        }
    }
}

impl Session for Pop3Session {
    fn protocol(&self) -> &'static str {
        "pop3"
    }

    fn start(&mut self) -> Action {
        Action::NeedMore
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        match self.state {
            State::Greeting => self.on_greeting(data),
            State::Capa { tls } => self.on_capa(data, tls),
            State::StlsReply => self.on_stls(data),
            State::AwaitTls => Action::StartTls,
            State::Done => Action::Done,
            State::NoMatch => Action::NoMatch,
        }
    }

    fn after_tls(&mut self) -> Action {
        if self.state == State::AwaitTls {
            self.state = State::Capa { tls: true };
            Action::Send(b"CAPA\r\n".to_vec())
        } else {
            Action::Done
        }
    }

    fn banner(&self) -> Banner {
        self.banner.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::lines::testkit::{converse, first, Step};
    use super::*;
    use proptest::prelude::*;

    fn send(b: &[u8]) -> Action {
        Action::Send(b.to_vec())
    }

    #[test]
    fn dovecot_with_stls() {
        let s = converse(
            || Pop3Session::new(None),
            Action::NeedMore,
            &[
                Step::Data(b"+OK Dovecot (Debian) ready.\r\n", send(b"CAPA\r\n")),
                Step::Data(
                    b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nUSER\r\nSASL\r\n.\r\n",
                    send(b"STLS\r\n"),
                ),
                Step::Data(b"+OK Begin TLS negotiation now.\r\n", Action::StartTls),
                Step::Tls(send(b"CAPA\r\n")),
                Step::Data(
                    b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n",
                    Action::Done,
                ),
            ],
        );
        let b = s.banner();
        assert_eq!(b.protocol, "pop3");
        assert_eq!(b.starttls, Some(true));
        assert_eq!(b.fields["greeting"], "Dovecot (Debian) ready.");
        assert_eq!(b.fields["status"], "ok");
        assert_eq!(
            b.fields["capabilities"],
            "CAPA\nTOP\nUIDL\nRESP-CODES\nPIPELINING\nAUTH-RESP-CODE\nSTLS\nUSER\nSASL"
        );
        assert!(b.fields["capabilities_tls"].ends_with("SASL PLAIN LOGIN"));
        assert_eq!(b.fields["stls_status"], "ok");
        assert_eq!(b.text, "+OK Dovecot (Debian) ready.\\r\\n");
    }

    #[test]
    fn old_server_without_capa_and_apop() {
        let s = converse(
            || Pop3Session::new(None),
            Action::NeedMore,
            &[
                Step::Data(
                    b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n",
                    send(b"CAPA\r\n"),
                ),
                Step::Data(b"-ERR unknown command\r\n", Action::Done),
            ],
        );
        let b = s.banner();
        assert_eq!(b.fields["apop"], "true");
        assert_eq!(b.fields["capa_status"], "err");
        assert_eq!(b.starttls, Some(false));
        let (a, s) = first(
            Pop3Session::new(None),
            b"-ERR [SYS/TEMP] Too many connections\r\n",
        );
        assert_eq!(a, Action::Done);
        assert_eq!(s.banner().fields["status"], "err");
    }

    #[test]
    fn dot_stuffed_lines_and_refused_stls() {
        let mut s = Pop3Session::new(None);
        s.start();
        s.on_data(b"+OK hi\r\n");
        assert_eq!(
            s.on_data(b"+OK\r\n..odd\r\nSTLS\r\n.\r\n"),
            send(b"STLS\r\n")
        );
        assert_eq!(s.banner().fields["capabilities"], ".odd\nSTLS");
        assert_eq!(s.on_data(b"-ERR not now\r\n"), Action::Done);
        assert_eq!(s.after_tls(), Action::Done);
    }

    #[test]
    fn other_protocols_do_not_match() {
        for greeting in [
            &b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"[..],
            b"220 (vsFTPd 3.0.3)\r\n",
            b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n",
            b"+OKAY\r\n",
            b"HTTP/1.1 400 Bad Request\r\n",
            b"\x16\x03\x03",
        ] {
            assert_eq!(
                first(Pop3Session::new(None), greeting).0,
                Action::NoMatch,
                "{greeting:?}"
            );
        }
        assert_eq!(first(Pop3Session::new(None), b"+O").0, Action::NeedMore);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            a in proptest::collection::vec(any::<u8>(), 0..1024),
            b in proptest::collection::vec(any::<u8>(), 0..4096),
        ) {
            let mut s = Pop3Session::new(None);
            s.start();
            s.on_data(&a);
            s.on_data(&b);
            let banner = s.banner();
            prop_assert!(banner.text.len() <= crate::session::BANNER_CAP + 4);
            prop_assert!(banner.fields.values().all(|v| v.len() <= 64 * 1024));
        }

        #[test]
        fn mutated_capa_never_panics(pos in 0usize..200, byte in any::<u8>()) {
            let mut capa = b"+OK\r\nTOP\r\nSTLS\r\nUSER\r\n.\r\n".to_vec();
            let p = pos % capa.len();
            capa[p] = byte;
            let mut s = Pop3Session::new(None);
            s.start();
            s.on_data(b"+OK ready\r\n");
            s.on_data(&capa);
            s.on_data(b"+OK go\r\n");
            s.after_tls();
            let _ = s.on_data(&capa);
        }
    }
}
