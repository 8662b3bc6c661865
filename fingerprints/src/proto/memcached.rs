//! memcached text protocol: client-first `version`, answered by `VERSION x.y.z`.
//! A bare `ERROR` is what many line protocols say to an unknown word, so it proves nothing.
//!
//! Fields: `version`.

use super::lines::{clean, has_binary, split_line, ITEM_CAP};
use crate::session::{printable, Action, Banner, Session};

/// A version line is short; anything longer is not one.
const MAX_VERSION_LINE: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Done,
    NoMatch,
}

/// memcached banner grabber.
#[derive(Debug, Clone)]
pub struct MemcachedSession {
    state: State,
    banner: Banner,
}

impl MemcachedSession {
    /// `host` is unused; accepted so that every text session is built the same way.
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            state: State::Waiting,
            banner: Banner {
                protocol: "memcached".into(),
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
}

impl Session for MemcachedSession {
    fn protocol(&self) -> &'static str {
        "memcached"
    }

    fn start(&mut self) -> Action {
        Action::Send(b"version\r\n".to_vec())
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        match self.state {
            State::Done => return Action::Done,
            State::NoMatch => return Action::NoMatch,
            State::Waiting => {}
        }
        const WORD: &[u8] = b"VERSION ";
        // memcached answers in upper case exactly; a case-insensitive match would let
        // other servers' echoes through.
        let n = data.len().min(WORD.len());
        let exact_prefix = data[..n] == WORD[..n];
        if !exact_prefix || has_binary(data) {
            return self.end(Action::NoMatch);
        }
        let Some((line, _)) = split_line(data) else {
            return if data.len() > MAX_VERSION_LINE {
                self.end(Action::NoMatch)
            } else {
                Action::NeedMore
            };
        };
        let version = clean(&line[line.len().min(WORD.len())..], ITEM_CAP);
        let plausible = line.len() <= MAX_VERSION_LINE
            && !version.is_empty()
            && version.starts_with(|c: char| c.is_ascii_digit());
        if !plausible {
            return self.end(Action::NoMatch);
        }
        self.banner.text = printable(line);
        self.banner.fields.insert("version".into(), version);
        self.end(Action::Done)
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

    #[test]
    fn memcached_1_6() {
        let s = converse(
            || MemcachedSession::new(None),
            Action::Send(b"version\r\n".to_vec()),
            &[Step::Data(b"VERSION 1.6.21\r\n", Action::Done)],
        );
        let b = s.banner();
        assert_eq!(b.protocol, "memcached");
        assert_eq!(b.fields["version"], "1.6.21");
        assert_eq!(b.text, "VERSION 1.6.21");
    }

    #[test]
    fn other_replies_do_not_match() {
        for reply in [
            &b"ERROR\r\n"[..],
            b"CLIENT_ERROR bad command line format\r\n",
            b"SERVER_ERROR out of memory\r\n",
            b"VERSION \r\n",
            b"version 1.2.3\r\n",
            b"VERSION abc\r\n",
            b"SSH-2.0-OpenSSH_9.2p1\r\n",
            b"220 (vsFTPd 3.0.3)\r\n",
            b"-ERR unknown command 'version'\r\n",
            b"HTTP/1.1 400 Bad Request\r\n",
        ] {
            assert_eq!(
                first(MemcachedSession::new(None), reply).0,
                Action::NoMatch,
                "{reply:?}"
            );
        }
        assert_eq!(
            first(MemcachedSession::new(None), b"VERSION 1.").0,
            Action::NeedMore
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let (_, s) = first(MemcachedSession::new(None), &data);
            prop_assert!(s.banner().fields.values().all(|v| v.len() <= 4 * ITEM_CAP));
        }

        #[test]
        fn version_suffixes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut data = b"VERSION 1".to_vec();
            data.extend(tail);
            let _ = first(MemcachedSession::new(None), &data);
        }
    }
}
