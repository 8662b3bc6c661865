//! Framing shared by the line-oriented text protocols (FTP, SMTP, IMAP, POP3, SSH).
//!
//! Every session re-parses the whole accumulated buffer on each `on_data` call (the driver
//! passes all bytes since the last send, capped at 64 KiB), so these helpers are pure and
//! linear in the input: no state survives between calls except what a session keeps.
//!
//! List-valued banner fields (features, extensions, capabilities, cookie names) hold one
//! item per line, joined with [`LIST_SEP`], so an item may contain spaces unambiguously.

/// Longest line accepted before the peer is judged not to speak a line protocol.
pub(crate) const MAX_LINE: usize = 4096;
/// Most lines accepted in one reply (a FEAT/EHLO/CAPA list is a few dozen at most).
pub(crate) const MAX_REPLY_LINES: usize = 256;
/// Most items kept in one list field.
pub(crate) const MAX_ITEMS: usize = 64;
/// Longest single item or short field value kept, in characters.
pub(crate) const ITEM_CAP: usize = 256;
/// Longest free-text field (a greeting) kept, in characters.
pub(crate) const TEXT_CAP: usize = 1024;
/// Separator of list-valued fields.
pub(crate) const LIST_SEP: &str = "\n";
/// EHLO / Host name used when the caller gives none (or an unusable one): `.invalid` is
/// reserved (RFC 2606), so it can never be mistaken for a real client name.
pub(crate) const DEFAULT_HOST: &str = "aperture.invalid";

/// Splits off the first line. The terminator is LF (a preceding CR is dropped too): RFC
/// says CRLF, but bare-LF servers exist and would otherwise never complete.
pub(crate) fn split_line(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let nl = data.iter().position(|&b| b == b'\n')?;
    let line = &data[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, &data[nl + 1..]))
}

/// Lossy UTF-8 with control characters turned into spaces, trimmed and capped, so a
/// field can be shown and compared without escaping surprises.
pub(crate) fn clean(bytes: &[u8], cap: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len().min(cap));
    for (n, c) in text.chars().enumerate() {
        if n >= cap {
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out.trim().to_string()
}

/// Joins list items, skipping empty ones and capping count and item length.
pub(crate) fn join_list<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::new();
    let mut n = 0;
    for item in items {
        let item = item.as_ref().trim();
        if item.is_empty() {
            continue;
        }
        if n == MAX_ITEMS {
            break;
        }
        if n > 0 {
            out.push_str(LIST_SEP);
        }
        out.extend(item.chars().take(ITEM_CAP));
        n += 1;
    }
    out
}

/// Case-insensitive ASCII substring test.
pub(crate) fn contains_ci(haystack: &str, needle: &str) -> bool {
    let needle = needle.as_bytes();
    !needle.is_empty()
        && haystack
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Whether the bytes received so far could still grow into `expected` (ASCII case-insensitive),
/// or already start with it.
pub(crate) fn prefix_compatible(data: &[u8], expected: &[u8]) -> bool {
    let n = data.len().min(expected.len());
    data[..n].eq_ignore_ascii_case(&expected[..n])
}

/// A host name safe to put in `EHLO` or `Host:`: only name / address characters, so a
/// caller-supplied string can never inject CRLF or a second command.
pub(crate) fn safe_host(host: Option<&str>) -> String {
    match host {
        Some(h)
            if !h.is_empty()
                && h.len() <= 255
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
                }) =>
        {
            h.to_string()
        }
        _ => DEFAULT_HOST.to_string(),
    }
}

/// One FTP/SMTP-style numeric reply (RFC 959 §4.2, RFC 5321 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Numeric<'a> {
    /// A valid prefix; more bytes are needed.
    Incomplete,
    /// Not a numeric reply (or an unreasonably long one).
    Invalid,
    Complete {
        code: u16,
        /// Each line's text, with the `ddd-`/`ddd ` prefix removed where present.
        lines: Vec<&'a [u8]>,
        /// The reply as received, terminators included.
        raw: &'a [u8],
        /// Bytes after the reply.
        rest: &'a [u8],
    },
}

/// Whether `line` (or the part received so far) begins like `ddd`, `ddd ` or `ddd-`
/// with a first digit 1-5, so garbage is rejected after at most four bytes.
fn numeric_prefix_ok(line: &[u8]) -> bool {
    line.iter().take(4).enumerate().all(|(i, &b)| match i {
        0 => (b'1'..=b'5').contains(&b),
        1 | 2 => b.is_ascii_digit(),
        _ => matches!(b, b' ' | b'-' | b'\r' | b'\n' | b'\t'),
    })
}

fn code_of(line: &[u8]) -> u16 {
    line.iter()
        .take(3)
        .fold(0u16, |acc, &b| acc * 10 + u16::from(b.saturating_sub(b'0')))
}

/// Parses the numeric reply at the start of `data`. Continuation lines of a multi-line
/// reply need not carry the code (RFC 959 allows free text, which FEAT uses), and the
/// reply ends at the first line that is `ddd` or `ddd ` with the opening code.
pub(crate) fn numeric_reply(data: &[u8]) -> Numeric<'_> {
    if !numeric_prefix_ok(data) {
        return Numeric::Invalid;
    }
    let Some((first, mut rest)) = split_line(data) else {
        return if data.len() > MAX_LINE {
            Numeric::Invalid
        } else {
            Numeric::Incomplete
        };
    };
    if first.len() < 3 || first.len() > MAX_LINE {
        return Numeric::Invalid;
    }
    let code = code_of(first);
    let strip = |line: &'_ [u8]| -> usize {
        if line.len() >= 3
            && line[..3].iter().all(u8::is_ascii_digit)
            && code_of(line) == code
            && (line.len() == 3 || matches!(line[3], b' ' | b'-'))
        {
            line.len().min(4)
        } else {
            0
        }
    };
    let mut lines = vec![&first[first.len().min(4)..]];
    if first.get(3) != Some(&b'-') {
        let used = data.len() - rest.len();
        return Numeric::Complete {
            code,
            lines,
            raw: &data[..used],
            rest,
        };
    }
    loop {
        let Some((line, after)) = split_line(rest) else {
            return if rest.len() > MAX_LINE {
                Numeric::Invalid
            } else {
                Numeric::Incomplete
            };
        };
        if line.len() > MAX_LINE || lines.len() >= MAX_REPLY_LINES {
            return Numeric::Invalid;
        }
        let cut = strip(line);
        lines.push(&line[cut..]);
        rest = after;
        if cut > 0 && line.get(3) != Some(&b'-') {
            let used = data.len() - rest.len();
            return Numeric::Complete {
                code,
                lines,
                raw: &data[..used],
                rest,
            };
        }
    }
}

/// Parses consecutive numeric replies, skipping RFC 959's `120 ready in nnn minutes`
/// preliminaries, and returns the first definitive one.
pub(crate) fn final_numeric_reply(data: &[u8]) -> Numeric<'_> {
    let mut rest = data;
    for _ in 0..8 {
        match numeric_reply(rest) {
            Numeric::Complete {
                code, rest: after, ..
            } if (100..200).contains(&code) => {
                rest = after;
            }
            other => return other,
        }
    }
    Numeric::Invalid
}

/// Whether reply text starts with an RFC 3463 enhanced status code (`5.5.2 ...`), which
/// SMTP servers use and FTP servers never do.
pub(crate) fn has_enhanced_status(text: &[u8]) -> bool {
    let word = text.split(|&b| b == b' ').next().unwrap_or_default();
    let parts: Vec<&[u8]> = word.split(|&b| b == b'.').collect();
    parts.len() == 3
        && matches!(parts[0], b"2" | b"4" | b"5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.iter().all(u8::is_ascii_digit))
}

/// What another protocol's first line looks like, so a session can give up at once
/// instead of waiting for a timeout. Works on partial lines (checks what is there).
pub(crate) fn looks_like(line: &[u8]) -> Option<&'static str> {
    let starts = |p: &[u8]| line.len() >= p.len() && line[..p.len()].eq_ignore_ascii_case(p);
    if starts(b"SSH-") {
        Some("ssh")
    } else if starts(b"HTTP/") {
        Some("http")
    } else if starts(b"+OK") || starts(b"-ERR") {
        Some("pop3")
    } else if starts(b"* OK") || starts(b"* PREAUTH") || starts(b"* BYE") {
        Some("imap")
    } else if starts(b"RFB ") {
        Some("vnc")
    } else if line.len() >= 4 && numeric_prefix_ok(line) {
        Some("numeric")
    } else {
        None
    }
}

/// Whether the bytes contain anything a text greeting never would (NUL, other C0
/// controls besides tab/CR/LF, DEL).
pub(crate) fn has_binary(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .any(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n')) || b == 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line_replies() {
        let Numeric::Complete {
            code, lines, rest, ..
        } = numeric_reply(b"220 hi\r\nX")
        else {
            panic!("incomplete");
        };
        assert_eq!((code, lines, rest), (220, vec![&b"hi"[..]], &b"X"[..]));
        let data = b"211-Features:\r\n MDTM\r\n SIZE\r\n211 End\r\n";
        let Numeric::Complete { code, lines, .. } = numeric_reply(data) else {
            panic!("incomplete");
        };
        assert_eq!(code, 211);
        assert_eq!(lines, vec![&b"Features:"[..], b" MDTM", b" SIZE", b"End"]);
        assert_eq!(numeric_reply(b"220"), Numeric::Incomplete);
        assert_eq!(numeric_reply(b"22x"), Numeric::Invalid);
        assert_eq!(numeric_reply(b"SSH-2.0"), Numeric::Invalid);
        assert_eq!(numeric_reply(b"220-a\r\n220-b\r\n"), Numeric::Incomplete);
        // A different code on a line does not end the reply.
        assert_eq!(numeric_reply(b"220-a\r\n230 b\r\n"), Numeric::Incomplete);
    }

    #[test]
    fn preliminary_replies_are_skipped() {
        let Numeric::Complete { code, .. } =
            final_numeric_reply(b"120 wait 1 minute\r\n220 ready\r\n")
        else {
            panic!("incomplete");
        };
        assert_eq!(code, 220);
    }

    /// The driver passes up to 64 KiB: every session must answer such buffers of
    /// pathological shapes quickly and with bounded output.
    #[test]
    fn hostile_64k_buffers() {
        use super::super::{
            ftp::FtpSession, http::HttpSession, imap::ImapSession, memcached::MemcachedSession,
            pop3::Pop3Session, redis::RedisSession, smtp::SmtpSession, ssh::SshSession,
        };
        use crate::session::Session;
        const N: usize = 64 * 1024;
        let fill = |unit: &[u8], prefix: &[u8]| {
            let mut v = prefix.to_vec();
            while v.len() < N {
                v.extend_from_slice(unit);
            }
            v.truncate(N);
            v
        };
        let inputs = [
            fill(b"a", b""),
            fill(b"x\r\n", b""),
            fill(b"220-x\r\n", b""),
            fill(b" x\r\n", b"220-"),
            fill(b"* CAPABILITY A B C\r\n", b"* OK hi\r\n"),
            fill(b"CAPA\r\n", b"+OK\r\n"),
            fill(b"k:v\r\n", b"$60000\r\n"),
            fill(b"<link rel=icon <title ", b"HTTP/1.1 200 OK\r\n\r\n"),
            fill(
                b"1\r\na\r\n",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
            fill(b"X-A: b\r\n", b"HTTP/1.1 200 OK\r\n"),
            fill(b"SSH-", b""),
        ];
        let started = std::time::Instant::now();
        for input in &inputs {
            let sessions: Vec<Box<dyn Session>> = vec![
                Box::new(FtpSession::new(None)),
                Box::new(HttpSession::new(None)),
                Box::new(ImapSession::new(None)),
                Box::new(MemcachedSession::new(None)),
                Box::new(Pop3Session::new(None)),
                Box::new(RedisSession::new(None)),
                Box::new(SmtpSession::new(None)),
                Box::new(SshSession::new(None)),
            ];
            for mut s in sessions {
                s.start();
                // Twice: the second call replays the same (now stale) buffer.
                s.on_data(input);
                s.on_data(input);
                let b = s.banner();
                assert!(b.text.len() <= crate::session::BANNER_CAP + 4);
                assert!(b.fields.values().map(String::len).sum::<usize>() < 64 * 1024);
            }
        }
        // Generous for a debug build on a busy machine; quadratic code would take minutes.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn helpers() {
        assert!(has_enhanced_status(b"5.5.2 Error"));
        assert!(!has_enhanced_status(b"Unknown command"));
        assert_eq!(safe_host(Some("mx.example.com")), "mx.example.com");
        assert_eq!(safe_host(Some("a\r\nRCPT")), DEFAULT_HOST);
        assert_eq!(join_list(["a", "", " b "]), "a\nb");
        assert_eq!(clean(b" a\x00b \r", 10), "a b");
        assert!(contains_ci("220 mx ESMTP", "smtp"));
        assert!(prefix_compatible(b"* o", b"* OK"));
        assert_eq!(looks_like(b"SSH-2.0-x"), Some("ssh"));
        assert_eq!(looks_like(b"hello"), None);
    }
}

/// Scripted exchanges for the session tests.
#[cfg(test)]
pub(crate) mod testkit {
    use crate::session::{Action, Session};

    /// One step of a conversation as the driver sees it.
    #[derive(Debug, Clone)]
    pub(crate) enum Step<'a> {
        /// The peer's bytes since the last send, and what the session must answer once
        /// all of them are in.
        Data(&'a [u8], Action),
        /// The TLS upgrade succeeded: `after_tls` must answer this.
        Tls(Action),
    }

    fn replay(s: &mut dyn Session, steps: &[Step<'_>]) {
        for (n, step) in steps.iter().enumerate() {
            match step {
                Step::Data(bytes, want) => assert_eq!(&s.on_data(bytes), want, "step {n}"),
                Step::Tls(want) => assert_eq!(&s.after_tls(), want, "step {n}"),
            }
        }
    }

    /// Plays the conversation, then replays it once for every step and every byte
    /// boundary inside that step's data: each strict prefix must ask for more (the
    /// driver then passes the grown buffer), and the full data must give the same answer.
    /// Returns the session after the complete conversation.
    pub(crate) fn converse<S: Session>(
        make: impl Fn() -> S,
        start: Action,
        steps: &[Step<'_>],
    ) -> S {
        let mut whole = make();
        assert_eq!(whole.start(), start);
        replay(&mut whole, steps);
        for (i, step) in steps.iter().enumerate() {
            let Step::Data(bytes, want) = step else {
                continue;
            };
            for cut in 0..bytes.len() {
                let mut s = make();
                s.start();
                replay(&mut s, &steps[..i]);
                assert_eq!(
                    s.on_data(&bytes[..cut]),
                    Action::NeedMore,
                    "step {i} cut {cut} of {:?}",
                    String::from_utf8_lossy(bytes)
                );
                assert_eq!(&s.on_data(bytes), want, "step {i} after cut {cut}");
                let rest = &steps[i + 1..];
                replay(&mut s, rest);
                assert_eq!(s.banner(), whole.banner(), "step {i} cut {cut}");
            }
        }
        whole
    }

    /// Feeds one buffer to a fresh session after `start`.
    pub(crate) fn first<S: Session>(mut s: S, data: &[u8]) -> (Action, S) {
        s.start();
        let a = s.on_data(data);
        (a, s)
    }
}
