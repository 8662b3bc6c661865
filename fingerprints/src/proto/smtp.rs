//! SMTP (RFC 5321): server-first `220` greeting, `EHLO`, and when `STARTTLS` (RFC 3207)
//! is offered, the upgrade and a second `EHLO` over TLS (servers often advertise more,
//! e.g. `AUTH`, only once encrypted).
//!
//! Fields: `greeting`, `greeting_code`, `refused` (a 4xx/5xx greeting: its code and
//! first line), `ehlo_code`, `ehlo_greeting` (the first EHLO line, normally the server's
//! name), `extensions` (one per line), `starttls_code` (the answer to STARTTLS),
//! `extensions_tls` (after the upgrade). `starttls` is `Some(offered)` once EHLO was
//! answered. A `421`/`554` greeting still identifies SMTP.

use super::lines::{
    clean, contains_ci, join_list, numeric_reply, safe_host, Numeric, ITEM_CAP, TEXT_CAP,
};
use crate::session::{printable, Action, Banner, Session};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Ehlo { tls: bool },
    StartTlsReply,
    AwaitTls,
    Done,
    NoMatch,
}

/// SMTP banner grabber.
#[derive(Debug, Clone)]
pub struct SmtpSession {
    state: State,
    ehlo: Vec<u8>,
    greeting_names_smtp: bool,
    banner: Banner,
}

impl SmtpSession {
    /// `host`: the name announced in `EHLO` (`aperture.invalid` when absent or unusable).
    pub fn new(host: Option<&str>) -> Self {
        Self {
            state: State::Greeting,
            ehlo: format!("EHLO {}\r\n", safe_host(host)).into_bytes(),
            greeting_names_smtp: false,
            banner: Banner {
                protocol: "smtp".into(),
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
        let (code, lines, raw) = match numeric_reply(data) {
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
        self.greeting_names_smtp = contains_ci(&greeting, "SMTP");
        // FTP greets with the same `220`; one that names FTP and not SMTP is FTP.
        let ftp = contains_ci(&greeting, "FTP") && !self.greeting_names_smtp;
        if ftp || !matches!(code / 100, 2 | 4 | 5) {
            return self.end(Action::NoMatch);
        }
        self.banner.text = printable(raw);
        let f = &mut self.banner.fields;
        f.insert("greeting".into(), greeting.chars().take(TEXT_CAP).collect());
        f.insert("greeting_code".into(), code.to_string());
        if code == 220 {
            self.state = State::Ehlo { tls: false };
            Action::Send(self.ehlo.clone())
        } else {
            // `421 busy` / `554 No SMTP service here`: a mail server that will not talk
            // (RFC 5321 3.1), and whose words name no product.
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

    fn on_ehlo(&mut self, data: &[u8], tls: bool) -> Action {
        let (code, lines) = match numeric_reply(data) {
            Numeric::Incomplete => return Action::NeedMore,
            Numeric::Invalid => return self.end(Action::Done),
            Numeric::Complete { code, lines, .. } => (code, lines),
        };
        if !tls {
            // A `500 command not understood` to EHLO from a server that never called
            // itself SMTP is some other `220` greeter (an FTP server without its name).
            if matches!(code, 500 | 502) && !self.greeting_names_smtp {
                self.banner.fields.clear();
                self.banner.text.clear();
                return self.end(Action::NoMatch);
            }
            self.banner
                .fields
                .insert("ehlo_code".into(), code.to_string());
        }
        if code != 250 {
            if !tls {
                self.banner.starttls = Some(false);
            }
            return self.end(Action::Done);
        }
        let extensions: Vec<String> = lines.iter().skip(1).map(|l| clean(l, ITEM_CAP)).collect();
        let offered = extensions.iter().any(|e| {
            e.split_ascii_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("STARTTLS"))
        });
        let key = if tls { "extensions_tls" } else { "extensions" };
        if !extensions.is_empty() {
            self.banner
                .fields
                .insert(key.into(), join_list(&extensions));
        }
        if tls {
            return self.end(Action::Done);
        }
        if let Some(name) = lines.first().map(|l| clean(l, ITEM_CAP)) {
            self.banner.fields.insert("ehlo_greeting".into(), name);
        }
        self.banner.starttls = Some(offered);
        if offered {
            self.state = State::StartTlsReply;
            Action::Send(b"STARTTLS\r\n".to_vec())
        } else {
            self.end(Action::Done)
        }
    }

    fn on_starttls(&mut self, data: &[u8]) -> Action {
        match numeric_reply(data) {
            Numeric::Incomplete => Action::NeedMore,
            Numeric::Invalid => self.end(Action::Done),
            Numeric::Complete { code, .. } => {
                self.banner
                    .fields
                    .insert("starttls_code".into(), code.to_string());
                if code == 220 {
                    self.state = State::AwaitTls;
                    Action::StartTls
                } else {
                    self.end(Action::Done)
                }
            }
        }
    }
}

impl Session for SmtpSession {
    fn protocol(&self) -> &'static str {
        "smtp"
    }

    fn start(&mut self) -> Action {
        Action::NeedMore
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        match self.state {
            State::Greeting => self.on_greeting(data),
            State::Ehlo { tls } => self.on_ehlo(data, tls),
            State::StartTlsReply => self.on_starttls(data),
            // Nothing may arrive between `220 go ahead` and the handshake; the driver
            // should be upgrading, so just keep asking for it.
            State::AwaitTls => Action::StartTls,
            State::Done => Action::Done,
            State::NoMatch => Action::NoMatch,
        }
    }

    fn after_tls(&mut self) -> Action {
        if self.state == State::AwaitTls {
            self.state = State::Ehlo { tls: true };
            Action::Send(self.ehlo.clone())
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
    fn postfix_with_starttls() {
        let s = converse(
            || SmtpSession::new(Some("scanner.example.net")),
            Action::NeedMore,
            &[
                Step::Data(
                    b"220 mx.example.com ESMTP Postfix (Debian/GNU)\r\n",
                    send(b"EHLO scanner.example.net\r\n"),
                ),
                Step::Data(
                    b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
                    send(b"STARTTLS\r\n"),
                ),
                Step::Data(b"220 2.0.0 Ready to start TLS\r\n", Action::StartTls),
                Step::Tls(send(b"EHLO scanner.example.net\r\n")),
                Step::Data(
                    b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n",
                    Action::Done,
                ),
            ],
        );
        let b = s.banner();
        assert_eq!(b.protocol, "smtp");
        assert_eq!(b.starttls, Some(true));
        assert_eq!(
            b.fields["greeting"],
            "mx.example.com ESMTP Postfix (Debian/GNU)"
        );
        assert_eq!(b.fields["greeting_code"], "220");
        assert_eq!(b.fields["ehlo_greeting"], "mx.example.com");
        assert_eq!(b.fields["starttls_code"], "220");
        assert!(b.fields["extensions"].starts_with("PIPELINING\nSIZE 10240000\nVRFY"));
        assert!(b.fields["extensions"].contains("\nSTARTTLS\n"));
        assert!(b.fields["extensions_tls"].contains("AUTH PLAIN LOGIN"));
        assert!(!b.fields["extensions_tls"].contains("STARTTLS"));
    }

    #[test]
    fn opensmtpd_multiline_greeting_without_starttls() {
        let s = converse(
            || SmtpSession::new(None),
            Action::NeedMore,
            &[
                Step::Data(
                    b"220-mail.example.org ESMTP OpenSMTPD\r\n220 No UCE\r\n",
                    send(b"EHLO aperture.invalid\r\n"),
                ),
                Step::Data(
                    b"250-mail.example.org Hello aperture.invalid [192.0.2.7], pleased to meet you\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SIZE 36700160\r\n250-DSN\r\n250 HELP\r\n",
                    Action::Done,
                ),
            ],
        );
        let b = s.banner();
        assert_eq!(
            b.fields["greeting"],
            "mail.example.org ESMTP OpenSMTPD\nNo UCE"
        );
        assert_eq!(b.starttls, Some(false));
        assert_eq!(
            b.fields["extensions"],
            "8BITMIME\nENHANCEDSTATUSCODES\nSIZE 36700160\nDSN\nHELP"
        );
    }

    #[test]
    fn refused_starttls_and_rejecting_greetings() {
        let mut s = SmtpSession::new(None);
        s.start();
        s.on_data(b"220 mx ESMTP\r\n");
        assert_eq!(
            s.on_data(b"250-mx\r\n250 STARTTLS\r\n"),
            send(b"STARTTLS\r\n")
        );
        assert_eq!(s.on_data(b"454 4.7.0 TLS not available\r\n"), Action::Done);
        assert_eq!(s.banner().fields["starttls_code"], "454");
        assert_eq!(s.after_tls(), Action::Done);

        for (greeting, code) in [
            (
                &b"421 4.3.2 Service not available, closing transmission channel\r\n"[..],
                "421",
            ),
            (b"554 5.7.1 Your IP is listed\r\n", "554"),
        ] {
            let (a, s) = first(SmtpSession::new(None), greeting);
            assert_eq!(a, Action::Done);
            assert_eq!(s.banner().fields["greeting_code"], code);
        }
    }

    #[test]
    fn exchange_greets_with_esmtp() {
        let (a, _) = first(
            SmtpSession::new(None),
            b"220 EXCH01.corp.example.com Microsoft ESMTP MAIL Service ready at Mon, 6 May 2024 10:00:00 +0000\r\n",
        );
        assert_eq!(a, send(b"EHLO aperture.invalid\r\n"));
    }

    #[test]
    fn host_cannot_inject_commands() {
        let mut s = SmtpSession::new(Some("x\r\nMAIL FROM:<a@b>"));
        s.start();
        assert_eq!(
            s.on_data(b"220 mx ESMTP\r\n"),
            send(b"EHLO aperture.invalid\r\n")
        );
    }

    #[test]
    fn other_protocols_do_not_match() {
        for greeting in [
            &b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"[..],
            b"220 (vsFTPd 3.0.3)\r\n",
            b"220 ProFTPD Server (Debian) [::ffff:192.0.2.1]\r\n",
            b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n",
            b"+OK Dovecot ready.\r\n",
            b"HTTP/1.1 400 Bad Request\r\n",
            b"\x00\x00",
        ] {
            assert_eq!(first(SmtpSession::new(None), greeting).0, Action::NoMatch);
        }
        // A 220 greeter that does not name itself is unmasked by its answer to EHLO.
        let mut s = SmtpSession::new(None);
        s.start();
        s.on_data(b"220 FileZilla Server 1.8.0\r\n");
        assert_eq!(s.on_data(b"500 Wrong command.\r\n"), Action::NoMatch);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            a in proptest::collection::vec(any::<u8>(), 0..1024),
            b in proptest::collection::vec(any::<u8>(), 0..4096),
        ) {
            let mut s = SmtpSession::new(None);
            s.start();
            s.on_data(&a);
            s.on_data(&b);
            let banner = s.banner();
            prop_assert!(banner.text.len() <= crate::session::BANNER_CAP + 4);
            prop_assert!(banner.fields.values().all(|v| v.len() <= 64 * 1024));
        }

        #[test]
        fn mutated_ehlo_never_panics(pos in 0usize..200, byte in any::<u8>()) {
            let mut ehlo = b"250-mx.example.com\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 CHUNKING\r\n".to_vec();
            let p = pos % ehlo.len();
            ehlo[p] = byte;
            let mut s = SmtpSession::new(None);
            s.start();
            s.on_data(b"220 mx ESMTP\r\n");
            s.on_data(&ehlo);
            s.on_data(b"220 go ahead\r\n");
            s.after_tls();
            let _ = s.on_data(&ehlo);
        }
    }
}
