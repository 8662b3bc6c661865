//! IMAP (RFC 9051 / 3501): server-first untagged greeting (`* OK`, `* PREAUTH`, `* BYE`),
//! `CAPABILITY`, and when `STARTTLS` is listed the upgrade and `CAPABILITY` again over
//! TLS (servers often add `AUTH=` mechanisms or drop `LOGINDISABLED` once encrypted).
//!
//! Fields: `greeting` (the greeting line after `* `), `status` (`ok`, `preauth`, `bye`),
//! `capabilities` (one atom per line), `capabilities_tls`, `starttls_status` (the tagged
//! answer to STARTTLS). `starttls` is `Some(listed)` once capabilities were learned.

use super::lines::{
    clean, has_binary, join_list, prefix_compatible, split_line, ITEM_CAP, MAX_LINE,
    MAX_REPLY_LINES, TEXT_CAP,
};
use crate::session::{printable, Action, Banner, Session};

const GREETINGS: [(&[u8], &str); 3] = [
    (b"* OK", "ok"),
    (b"* PREAUTH", "preauth"),
    (b"* BYE", "bye"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Capability { tls: bool },
    StartTlsReply,
    AwaitTls,
    Done,
    NoMatch,
}

/// IMAP banner grabber.
#[derive(Debug, Clone)]
pub struct ImapSession {
    state: State,
    /// Capabilities announced in the greeting's `[CAPABILITY ...]` response code, used
    /// if the CAPABILITY command itself fails.
    greeting_caps: Vec<String>,
    banner: Banner,
}

/// The outcome of reading up to a tagged completion.
enum Tagged {
    Incomplete,
    /// The tagged status word (upper-cased) and the untagged lines before it.
    Complete(String, Vec<Vec<u8>>),
    Garbage,
}

fn read_tagged(data: &[u8], tag: &[u8]) -> Tagged {
    let mut rest = data;
    let mut untagged = Vec::new();
    loop {
        let Some((line, after)) = split_line(rest) else {
            return if rest.len() > MAX_LINE {
                Tagged::Garbage
            } else {
                Tagged::Incomplete
            };
        };
        if line.len() > MAX_LINE || untagged.len() >= MAX_REPLY_LINES || has_binary(line) {
            return Tagged::Garbage;
        }
        if line.len() > tag.len() && line.starts_with(tag) && line[tag.len()] == b' ' {
            let status = line[tag.len() + 1..]
                .split(|&b| b == b' ')
                .next()
                .unwrap_or_default();
            return Tagged::Complete(clean(status, 16).to_ascii_uppercase(), untagged);
        }
        if !line.starts_with(b"* ") && !line.starts_with(b"+ ") {
            return Tagged::Garbage;
        }
        untagged.push(line.to_vec());
        rest = after;
    }
}

/// Atoms of a `* CAPABILITY a b c` line, or of a `[CAPABILITY a b c]` response code.
fn capability_atoms(text: &[u8]) -> Option<Vec<String>> {
    const WORD: &[u8] = b"CAPABILITY ";
    let at = text
        .windows(WORD.len())
        .position(|w| w.eq_ignore_ascii_case(WORD))?;
    let list = &text[at + WORD.len()..];
    let list = match list.iter().position(|&b| b == b']') {
        Some(end) => &list[..end],
        None => list,
    };
    Some(
        list.split(|&b| b == b' ')
            .map(|a| clean(a, ITEM_CAP))
            .filter(|a| !a.is_empty())
            .collect(),
    )
}

fn has_cap(caps: &[String], name: &str) -> bool {
    caps.iter().any(|c| c.eq_ignore_ascii_case(name))
}

impl ImapSession {
    /// `host` is unused (IMAP names no client before login); accepted so that every
    /// text session is built the same way.
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            state: State::Greeting,
            greeting_caps: Vec::new(),
            banner: Banner {
                protocol: "imap".into(),
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
        let Some((line, _)) = split_line(data) else {
            let could_be = GREETINGS.iter().any(|(g, _)| prefix_compatible(data, g));
            return if could_be && !has_binary(data) && data.len() <= MAX_LINE {
                Action::NeedMore
            } else {
                self.end(Action::NoMatch)
            };
        };
        let Some(status) = GREETINGS.iter().find_map(|(g, name)| {
            let word_ends = matches!(line.get(g.len()), None | Some(b' '));
            (prefix_compatible(line, g) && line.len() >= g.len() && word_ends).then_some(*name)
        }) else {
            return self.end(Action::NoMatch);
        };
        if has_binary(line) || line.len() > MAX_LINE {
            return self.end(Action::NoMatch);
        }
        self.banner.text = printable(line);
        let f = &mut self.banner.fields;
        f.insert("greeting".into(), clean(&line[2..], TEXT_CAP));
        f.insert("status".into(), status.into());
        if status == "bye" {
            return self.end(Action::Done);
        }
        self.greeting_caps = capability_atoms(line).unwrap_or_default();
        self.state = State::Capability { tls: false };
        Action::Send(b"a1 CAPABILITY\r\n".to_vec())
    }

    fn on_capability(&mut self, data: &[u8], tls: bool) -> Action {
        let tag: &[u8] = if tls { b"a3" } else { b"a1" };
        let untagged = match read_tagged(data, tag) {
            Tagged::Incomplete => return Action::NeedMore,
            Tagged::Garbage => return self.end(Action::Done),
            // Even a `NO`/`BAD` completion may follow an untagged CAPABILITY.
            Tagged::Complete(_, untagged) => untagged,
        };
        let mut caps: Vec<String> = untagged
            .iter()
            .filter(|l| l.len() > 2 && l[2..].to_ascii_uppercase().starts_with(b"CAPABILITY"))
            .filter_map(|l| capability_atoms(l))
            .flatten()
            .collect();
        if caps.is_empty() && !tls {
            caps = std::mem::take(&mut self.greeting_caps);
        }
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
        let offered = has_cap(&caps, "STARTTLS");
        self.banner.starttls = Some(offered);
        if offered {
            self.state = State::StartTlsReply;
            Action::Send(b"a2 STARTTLS\r\n".to_vec())
        } else {
            self.end(Action::Done)
        }
    }

    fn on_starttls(&mut self, data: &[u8]) -> Action {
        match read_tagged(data, b"a2") {
            Tagged::Incomplete => Action::NeedMore,
            Tagged::Garbage => self.end(Action::Done),
            Tagged::Complete(status, _) => {
                let ok = status == "OK";
                self.banner
                    .fields
                    .insert("starttls_status".into(), status.to_ascii_lowercase());
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

impl Session for ImapSession {
    fn protocol(&self) -> &'static str {
        "imap"
    }

    fn start(&mut self) -> Action {
        Action::NeedMore
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        match self.state {
            State::Greeting => self.on_greeting(data),
            State::Capability { tls } => self.on_capability(data, tls),
            State::StartTlsReply => self.on_starttls(data),
            State::AwaitTls => Action::StartTls,
            State::Done => Action::Done,
            State::NoMatch => Action::NoMatch,
        }
    }

    fn after_tls(&mut self) -> Action {
        if self.state == State::AwaitTls {
            self.state = State::Capability { tls: true };
            Action::Send(b"a3 CAPABILITY\r\n".to_vec())
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
    fn dovecot_with_starttls() {
        let s = converse(
            || ImapSession::new(None),
            Action::NeedMore,
            &[
                Step::Data(
                    b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED] Dovecot (Debian) ready.\r\n",
                    send(b"a1 CAPABILITY\r\n"),
                ),
                Step::Data(
                    b"* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED\r\na1 OK Pre-login capabilities listing follows.\r\n",
                    send(b"a2 STARTTLS\r\n"),
                ),
                Step::Data(b"a2 OK Begin TLS negotiation now.\r\n", Action::StartTls),
                Step::Tls(send(b"a3 CAPABILITY\r\n")),
                Step::Data(
                    b"* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN\r\na3 OK Pre-login capabilities listing follows.\r\n",
                    Action::Done,
                ),
            ],
        );
        let b = s.banner();
        assert_eq!(b.protocol, "imap");
        assert_eq!(b.starttls, Some(true));
        assert_eq!(b.fields["status"], "ok");
        assert!(b.fields["greeting"].ends_with("Dovecot (Debian) ready."));
        assert_eq!(
            b.fields["capabilities"],
            "IMAP4rev1\nSASL-IR\nLOGIN-REFERRALS\nID\nENABLE\nIDLE\nLITERAL+\nSTARTTLS\nLOGINDISABLED"
        );
        assert!(b.fields["capabilities_tls"].ends_with("AUTH=PLAIN"));
        assert_eq!(b.fields["starttls_status"], "ok");
    }

    #[test]
    fn imaps_style_server_without_starttls() {
        let s = converse(
            || ImapSession::new(None),
            Action::NeedMore,
            &[
                Step::Data(
                    b"* OK The Microsoft Exchange IMAP4 service is ready.\r\n",
                    send(b"a1 CAPABILITY\r\n"),
                ),
                Step::Data(
                    b"* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=NTLM UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+\r\na1 OK CAPABILITY completed.\r\n",
                    Action::Done,
                ),
            ],
        );
        assert_eq!(s.banner().starttls, Some(false));
        assert!(s.banner().fields["capabilities"].starts_with("IMAP4\nIMAP4rev1\nAUTH=PLAIN"));
    }

    #[test]
    fn bye_preauth_and_failed_commands() {
        let (a, s) = first(
            ImapSession::new(None),
            b"* BYE Too many connections from your IP\r\n",
        );
        assert_eq!(a, Action::Done);
        assert_eq!(s.banner().fields["status"], "bye");

        let (a, _) = first(
            ImapSession::new(None),
            b"* PREAUTH IMAP4rev1 server logged in as alice\r\n",
        );
        assert_eq!(a, send(b"a1 CAPABILITY\r\n"));

        // A failing CAPABILITY falls back on the greeting's response code.
        let mut s = ImapSession::new(None);
        s.start();
        s.on_data(b"* ok [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n");
        assert_eq!(s.on_data(b"a1 BAD no\r\n"), send(b"a2 STARTTLS\r\n"));
        assert_eq!(
            s.on_data(b"a2 NO [UNAVAILABLE] TLS broken\r\n"),
            Action::Done
        );
        assert_eq!(s.banner().fields["starttls_status"], "no");
        assert_eq!(s.after_tls(), Action::Done);
    }

    #[test]
    fn other_protocols_do_not_match() {
        for greeting in [
            &b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"[..],
            b"220 (vsFTPd 3.0.3)\r\n",
            b"+OK Dovecot ready.\r\n",
            b"* OKAY\r\n",
            b"HTTP/1.1 400 Bad Request\r\n",
            b"\x16\x03\x03",
            b"*",
        ] {
            let a = first(ImapSession::new(None), greeting).0;
            let want = if greeting == b"*" {
                Action::NeedMore
            } else {
                Action::NoMatch
            };
            assert_eq!(a, want, "{greeting:?}");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            a in proptest::collection::vec(any::<u8>(), 0..1024),
            b in proptest::collection::vec(any::<u8>(), 0..4096),
        ) {
            let mut s = ImapSession::new(None);
            s.start();
            s.on_data(&a);
            s.on_data(&b);
            let banner = s.banner();
            prop_assert!(banner.text.len() <= crate::session::BANNER_CAP + 4);
            prop_assert!(banner.fields.values().all(|v| v.len() <= 64 * 1024));
        }

        #[test]
        fn mutated_capability_never_panics(pos in 0usize..200, byte in any::<u8>()) {
            let mut caps = b"* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n".to_vec();
            let p = pos % caps.len();
            caps[p] = byte;
            let mut s = ImapSession::new(None);
            s.start();
            s.on_data(b"* OK [CAPABILITY IMAP4rev1] ready\r\n");
            s.on_data(&caps);
            s.on_data(b"a2 OK go\r\n");
            s.after_tls();
            let _ = s.on_data(&caps);
        }
    }
}
