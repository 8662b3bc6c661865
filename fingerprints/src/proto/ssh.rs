//! SSH identification string (RFC 4253 §4.2): server-first, one line, nothing sent.
//!
//! Fields: `protocol_version` (`2.0`, `1.99`), `software` (`OpenSSH_9.2p1`), `comments`
//! (`Debian-2+deb12u3`, only when present), `preamble` (lines the server sent before the
//! identification, newline-separated, only when present).

use super::lines::{clean, has_binary, join_list, looks_like, split_line, ITEM_CAP, MAX_LINE};
use crate::session::{printable, Action, Banner, Session};
use std::collections::BTreeMap;

/// RFC 4253 lets a server send other lines first; a real one sends a few at most, and a
/// tarpit sends them forever, so both the count and the bytes are capped.
const MAX_PREAMBLE_LINES: usize = 20;
const MAX_PREAMBLE_BYTES: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Done,
    NoMatch,
}

/// SSH banner grabber.
#[derive(Debug, Clone)]
pub struct SshSession {
    state: State,
    banner: Banner,
}

impl SshSession {
    /// `host` is unused (SSH sends nothing before the server's identification); it is
    /// accepted so that every text session is built the same way.
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            state: State::Waiting,
            banner: Banner {
                protocol: "ssh".into(),
                ..Banner::default()
            },
        }
    }

    fn finish(&mut self, action: Action) -> Action {
        self.state = match action {
            Action::Done => State::Done,
            Action::NoMatch => State::NoMatch,
            _ => self.state,
        };
        action
    }

    fn record(&mut self, line: &[u8], preamble: &[&[u8]]) {
        let mut fields = BTreeMap::new();
        let body = &line[4.min(line.len())..];
        let (proto, after) = match body.iter().position(|&b| b == b'-') {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        fields.insert("protocol_version".into(), clean(proto, ITEM_CAP));
        if let Some(after) = after {
            let (software, comments) = match after.iter().position(|&b| b == b' ') {
                Some(i) => (&after[..i], Some(&after[i + 1..])),
                None => (after, None),
            };
            fields.insert("software".into(), clean(software, ITEM_CAP));
            if let Some(c) = comments
                .map(|c| clean(c, ITEM_CAP))
                .filter(|c| !c.is_empty())
            {
                fields.insert("comments".into(), c);
            }
        }
        if !preamble.is_empty() {
            fields.insert(
                "preamble".into(),
                join_list(preamble.iter().map(|l| clean(l, ITEM_CAP))),
            );
        }
        self.banner.text = printable(line);
        self.banner.fields = fields;
    }
}

/// Whether a non-`SSH-` line can be preamble. The first line of another protocol's
/// greeting (`220 `, `+OK`, `HTTP/`...) or anything binary means this is not SSH.
fn plausible_preamble(line: &[u8]) -> bool {
    !has_binary(line) && looks_like(line).is_none()
}

impl Session for SshSession {
    fn protocol(&self) -> &'static str {
        "ssh"
    }

    fn start(&mut self) -> Action {
        Action::NeedMore
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        match self.state {
            State::Done => return Action::Done,
            State::NoMatch => return Action::NoMatch,
            State::Waiting => {}
        }
        let mut rest = data;
        let mut preamble: Vec<&[u8]> = Vec::new();
        loop {
            if preamble.len() > MAX_PREAMBLE_LINES || data.len() - rest.len() > MAX_PREAMBLE_BYTES {
                return self.finish(Action::NoMatch);
            }
            match split_line(rest) {
                Some((line, _)) if line.starts_with(b"SSH-") => {
                    let line = &line[..line.len().min(MAX_LINE)];
                    self.record(line, &preamble);
                    return self.finish(Action::Done);
                }
                Some((line, after)) => {
                    // The identification must come first if nothing precedes it that a
                    // server would plausibly print as preamble.
                    if !plausible_preamble(line) {
                        return self.finish(Action::NoMatch);
                    }
                    preamble.push(line);
                    rest = after;
                }
                None if rest.starts_with(b"SSH-") => {
                    if rest.len() > MAX_LINE {
                        // An endless identification line is still SSH; keep the start.
                        self.record(&rest[..MAX_LINE], &preamble);
                        return self.finish(Action::Done);
                    }
                    return Action::NeedMore;
                }
                None => {
                    let partial_ok = b"SSH-".starts_with(rest) || plausible_preamble(rest);
                    if !partial_ok || rest.len() > MAX_LINE {
                        return self.finish(Action::NoMatch);
                    }
                    return Action::NeedMore;
                }
            }
        }
    }

    fn banner(&self) -> Banner {
        self.banner.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OPENSSH: &[u8] = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";

    fn feed(data: &[u8]) -> (Action, SshSession) {
        let mut s = SshSession::new(None);
        assert_eq!(s.start(), Action::NeedMore);
        let a = s.on_data(data);
        (a, s)
    }

    #[test]
    fn openssh_debian() {
        // The key exchange init often arrives in the same segment: it must be ignored.
        let mut data = OPENSSH.to_vec();
        data.extend_from_slice(b"\x00\x00\x05\xdc\x0a\x14binary kexinit");
        let (a, s) = feed(&data);
        assert_eq!(a, Action::Done);
        let b = s.banner();
        assert_eq!(b.protocol, "ssh");
        assert_eq!(b.fields["protocol_version"], "2.0");
        assert_eq!(b.fields["software"], "OpenSSH_9.2p1");
        assert_eq!(b.fields["comments"], "Debian-2+deb12u3");
        assert_eq!(b.text, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3");
        assert_eq!(b.starttls, None);
    }

    #[test]
    fn every_split_point() {
        for cut in 0..OPENSSH.len() {
            let mut s = SshSession::new(None);
            s.start();
            assert_eq!(s.on_data(&OPENSSH[..cut]), Action::NeedMore, "cut {cut}");
            assert_eq!(s.on_data(OPENSSH), Action::Done);
            assert_eq!(s.banner().fields["software"], "OpenSSH_9.2p1");
        }
    }

    #[test]
    fn other_implementations() {
        let (a, s) = feed(b"SSH-2.0-dropbear_2022.83\r\n");
        assert_eq!(a, Action::Done);
        assert_eq!(s.banner().fields["software"], "dropbear_2022.83");
        assert!(!s.banner().fields.contains_key("comments"));
        let (_, s) = feed(b"SSH-1.99-Cisco-1.25\n");
        assert_eq!(s.banner().fields["protocol_version"], "1.99");
        assert_eq!(s.banner().fields["software"], "Cisco-1.25");
        let (_, s) = feed(b"SSH-2.0-RomSShell_5.40\r\n");
        assert_eq!(s.banner().fields["software"], "RomSShell_5.40");
    }

    #[test]
    fn preamble_lines_are_allowed() {
        let data = b"Welcome to the jump host\r\nAuthorised use only\r\nSSH-2.0-OpenSSH_8.0\r\n";
        let (a, s) = feed(data);
        assert_eq!(a, Action::Done);
        assert_eq!(s.banner().fields["software"], "OpenSSH_8.0");
        assert_eq!(
            s.banner().fields["preamble"],
            "Welcome to the jump host\nAuthorised use only"
        );
        for cut in 0..data.len() {
            let mut s = SshSession::new(None);
            assert_eq!(s.on_data(&data[..cut]), Action::NeedMore, "cut {cut}");
        }
    }

    #[test]
    fn tarpit_preamble_is_capped() {
        let data = b"x\r\n".repeat(100);
        assert_eq!(feed(&data).0, Action::NoMatch);
    }

    #[test]
    fn other_protocols_do_not_match() {
        for greeting in [
            &b"220 (vsFTPd 3.0.3)\r\n"[..],
            b"220 mx.example.com ESMTP Postfix (Debian/GNU)\r\n",
            b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n",
            b"+OK Dovecot ready.\r\n",
            b"HTTP/1.1 400 Bad Request\r\n",
            b"RFB 003.008\n",
            b"\x16\x03\x03\x00\x2a",
            b"\x00\x00\x00\x01",
        ] {
            assert_eq!(feed(greeting).0, Action::NoMatch, "{greeting:?}");
        }
        // Decided before the line is even complete.
        assert_eq!(feed(b"220 ").0, Action::NoMatch);
    }

    #[test]
    fn terminal_states_stick() {
        let (_, mut s) = feed(OPENSSH);
        assert_eq!(s.on_data(b"garbage"), Action::Done);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let (_, s) = feed(&data);
            let b = s.banner();
            prop_assert!(b.text.len() <= crate::session::BANNER_CAP + 4);
            prop_assert!(b.fields.values().all(|v| v.len() <= 64 * 1024));
        }

        #[test]
        fn mutated_banners_never_panic(
            pos in 0usize..64, byte in any::<u8>(), tail in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            let mut data = OPENSSH.to_vec();
            let p = pos % data.len();
            data[p] = byte;
            data.extend(tail);
            let _ = feed(&data);
        }
    }
}
