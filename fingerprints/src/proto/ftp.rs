//! FTP (RFC 959): server-first `220` greeting, then `FEAT` (RFC 2389) to learn the
//! extensions and whether explicit TLS (`AUTH TLS`, RFC 4217) is offered. No upgrade is
//! attempted: learning that it is offered is enough.
//!
//! Fields: `greeting` (text of the greeting, lines newline-separated), `greeting_code`,
//! `refused` (a 4xx/5xx greeting: its code and first line), `feat_code` (when FEAT was
//! answered), `features` (one per line). `starttls` is
//! `Some(true)` when FEAT lists `AUTH TLS`, `Some(false)` when FEAT was answered without it.

use super::lines::{
    clean, contains_ci, final_numeric_reply, has_enhanced_status, join_list, numeric_reply,
    Numeric, ITEM_CAP, TEXT_CAP,
};
use crate::session::{printable, Action, Banner, Session};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Feat,
    Done,
    NoMatch,
}

/// FTP banner grabber.
#[derive(Debug, Clone)]
pub struct FtpSession {
    state: State,
    banner: Banner,
}

impl FtpSession {
    /// `host` is unused (FTP has no client name in its greeting exchange); accepted so
    /// that every text session is built the same way.
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            state: State::Greeting,
            banner: Banner {
                protocol: "ftp".into(),
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
        let (code, lines, raw) = match final_numeric_reply(data) {
            Numeric::Incomplete => return Action::NeedMore,
            Numeric::Invalid => return self.end(Action::NoMatch),
            Numeric::Complete {
                code, lines, raw, ..
            } => (code, lines, raw),
        };
        let greeting = lines
            .iter()
            .map(|l| clean(l, ITEM_CAP))
            .collect::<Vec<_>>()
            .join("\n");
        // SMTP greets with the same `220`; a greeting that names SMTP and not FTP is a
        // mail server, and FEAT would only earn a `502`.
        if contains_ci(&greeting, "SMTP") && !contains_ci(&greeting, "FTP") {
            return self.end(Action::NoMatch);
        }
        if (300..400).contains(&code) {
            return self.end(Action::NoMatch);
        }
        self.banner.text = printable(raw);
        let f = &mut self.banner.fields;
        f.insert("greeting".into(), greeting.chars().take(TEXT_CAP).collect());
        f.insert("greeting_code".into(), code.to_string());
        if code == 220 {
            self.state = State::Feat;
            Action::Send(b"FEAT\r\n".to_vec())
        } else {
            // `421 Too many connections`, `530 Access denied`: the reply's shape proves
            // FTP, but nothing more is learned, and the words name no product.
            if code >= 400 {
                let first = lines
                    .first()
                    .map(|l| clean(l, ITEM_CAP))
                    .unwrap_or_default();
                f.insert(
                    "refused".into(),
                    format!("{code} {first}").trim_end().into(),
                );
            }
            self.end(Action::Done)
        }
    }

    fn on_feat(&mut self, data: &[u8]) -> Action {
        let (code, lines) = match numeric_reply(data) {
            Numeric::Incomplete => return Action::NeedMore,
            // The greeting already identified FTP; an unreadable FEAT answer only ends it.
            Numeric::Invalid => return self.end(Action::Done),
            Numeric::Complete { code, lines, .. } => (code, lines),
        };
        // An SMTP server whose greeting did not name itself answers with an RFC 3463
        // enhanced status (`502 5.5.2 Error`), which FTP servers never use.
        if code >= 500 && lines.iter().any(|l| has_enhanced_status(l)) {
            self.banner.fields.clear();
            self.banner.text.clear();
            return self.end(Action::NoMatch);
        }
        self.banner
            .fields
            .insert("feat_code".into(), code.to_string());
        let features: Vec<String> = if code == 211 && lines.len() > 2 {
            lines[1..lines.len() - 1]
                .iter()
                .map(|l| clean(l, ITEM_CAP))
                .collect()
        } else {
            Vec::new()
        };
        let tls = features.iter().any(|f| {
            let mut words = f.split_ascii_whitespace();
            words.next().is_some_and(|w| w.eq_ignore_ascii_case("AUTH"))
                && words.any(|w| {
                    w.split(';')
                        .any(|m| m.eq_ignore_ascii_case("TLS") || m.eq_ignore_ascii_case("TLS-C"))
                })
        });
        if !features.is_empty() {
            self.banner
                .fields
                .insert("features".into(), join_list(&features));
        }
        self.banner.starttls = Some(tls);
        self.end(Action::Done)
    }
}

impl Session for FtpSession {
    fn protocol(&self) -> &'static str {
        "ftp"
    }

    fn start(&mut self) -> Action {
        Action::NeedMore
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        match self.state {
            State::Greeting => self.on_greeting(data),
            State::Feat => self.on_feat(data),
            State::Done => Action::Done,
            State::NoMatch => Action::NoMatch,
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
    fn vsftpd() {
        let s = converse(
            || FtpSession::new(None),
            Action::NeedMore,
            &[
                Step::Data(b"220 (vsFTPd 3.0.3)\r\n", send(b"FEAT\r\n")),
                Step::Data(
                    b"211-Features:\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n UTF8\r\n211 End\r\n",
                    Action::Done,
                ),
            ],
        );
        let b = s.banner();
        assert_eq!(b.protocol, "ftp");
        assert_eq!(b.fields["greeting"], "(vsFTPd 3.0.3)");
        assert_eq!(b.fields["greeting_code"], "220");
        assert_eq!(b.fields["feat_code"], "211");
        assert_eq!(
            b.fields["features"],
            "EPRT\nEPSV\nMDTM\nPASV\nREST STREAM\nSIZE\nTVFS\nUTF8"
        );
        assert_eq!(b.starttls, Some(false));
        assert_eq!(b.text, "220 (vsFTPd 3.0.3)\\r\\n");
    }

    #[test]
    fn proftpd_with_auth_tls_and_multiline_greeting() {
        let s = converse(
            || FtpSession::new(Some("ftp.example.com")),
            Action::NeedMore,
            &[
                Step::Data(
                    b"220-Welcome to example.com\r\n220-Authorised users only\r\n220 ProFTPD Server (Debian) [::ffff:192.0.2.10]\r\n",
                    send(b"FEAT\r\n"),
                ),
                Step::Data(
                    b"211-Features:\r\n AUTH TLS\r\n CCC\r\n LANG en-US*\r\n MDTM\r\n MFF modify;UNIX.group;UNIX.mode;\r\n PBSZ\r\n PROT\r\n SIZE\r\n UTF8\r\n211 End\r\n",
                    Action::Done,
                ),
            ],
        );
        let b = s.banner();
        assert_eq!(
            b.fields["greeting"],
            "Welcome to example.com\nAuthorised users only\nProFTPD Server (Debian) [::ffff:192.0.2.10]"
        );
        assert_eq!(b.starttls, Some(true));
        assert!(b.fields["features"].contains("AUTH TLS\nCCC"));
    }

    #[test]
    fn pure_ftpd_dashed_greeting() {
        let s = converse(
            || FtpSession::new(None),
            Action::NeedMore,
            &[
                Step::Data(
                    b"220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------\r\n220-You are user number 1 of 50 allowed.\r\n220-Local time is now 10:00. Server port: 21.\r\n220 You will be disconnected after 15 minutes of inactivity.\r\n",
                    send(b"FEAT\r\n"),
                ),
                Step::Data(
                    b"211-Extensions supported:\r\n UTF8\r\n EPRT\r\n IDLE\r\n MDTM\r\n SIZE\r\n MFMT\r\n REST STREAM\r\n MLST type*;size*;sizd*;modify*;UNIX.mode*;UNIX.uid*;UNIX.gid*;unique*;\r\n MLSD\r\n PRET\r\n AUTH TLS\r\n PBSZ\r\n PROT\r\n TVFS\r\n ESTA\r\n PASV\r\n EPSV\r\n211 End.\r\n",
                    Action::Done,
                ),
            ],
        );
        let b = s.banner();
        assert!(b.fields["greeting"].starts_with("--------- Welcome to Pure-FTPd [privsep] [TLS]"));
        assert_eq!(b.starttls, Some(true));
        assert_eq!(b.fields["features"].lines().count(), 17);
    }

    #[test]
    fn feat_unsupported_and_busy_servers() {
        let s = converse(
            || FtpSession::new(None),
            Action::NeedMore,
            &[
                Step::Data(b"220 Microsoft FTP Service\r\n", send(b"FEAT\r\n")),
                Step::Data(b"500 'FEAT': command not understood\r\n", Action::Done),
            ],
        );
        assert_eq!(s.banner().fields["feat_code"], "500");
        assert_eq!(s.banner().starttls, Some(false));
        let (a, s) = first(
            FtpSession::new(None),
            b"421 There are too many connected users, please try later.\r\n",
        );
        assert_eq!(a, Action::Done);
        assert_eq!(s.banner().fields["greeting_code"], "421");
        assert_eq!(s.banner().starttls, None);
        // `120` is followed by the real greeting.
        let (a, _) = first(
            FtpSession::new(None),
            b"120 Service ready in 1 minutes.\r\n220 ready\r\n",
        );
        assert_eq!(a, send(b"FEAT\r\n"));
    }

    #[test]
    fn other_protocols_do_not_match() {
        for greeting in [
            &b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"[..],
            b"220 mx.example.com ESMTP Postfix (Debian/GNU)\r\n",
            b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n",
            b"+OK Dovecot ready.\r\n",
            b"HTTP/1.1 400 Bad Request\r\n",
            b"\x16\x03\x03",
        ] {
            assert_eq!(first(FtpSession::new(None), greeting).0, Action::NoMatch);
        }
        // An SMTP server that hides its name is caught by its enhanced status codes.
        let mut s = FtpSession::new(None);
        s.start();
        assert_eq!(s.on_data(b"220 mail.example.com\r\n"), send(b"FEAT\r\n"));
        assert_eq!(
            s.on_data(b"502 5.5.2 Error: command not recognized\r\n"),
            Action::NoMatch
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            a in proptest::collection::vec(any::<u8>(), 0..1024),
            b in proptest::collection::vec(any::<u8>(), 0..4096),
        ) {
            let mut s = FtpSession::new(None);
            s.start();
            s.on_data(&a);
            s.on_data(&b);
            let banner = s.banner();
            prop_assert!(banner.text.len() <= crate::session::BANNER_CAP + 4);
            prop_assert!(banner.fields.values().all(|v| v.len() <= 64 * 1024));
        }

        #[test]
        fn mutated_feat_never_panics(pos in 0usize..200, byte in any::<u8>()) {
            let mut feat = b"211-Features:\r\n AUTH TLS\r\n MDTM\r\n SIZE\r\n211 End\r\n".to_vec();
            let p = pos % feat.len();
            feat[p] = byte;
            let mut s = FtpSession::new(None);
            s.start();
            s.on_data(b"220 ready\r\n");
            let _ = s.on_data(&feat);
        }
    }
}
