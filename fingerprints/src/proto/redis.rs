//! Redis (RESP): client-first `INFO server` as an inline command; the answer is a bulk
//! string (`$<len>\r\n<payload>\r\n`) of `key:value` lines. Servers that refuse (`-NOAUTH`,
//! protected mode's `-DENIED`, a renamed command's `-ERR unknown command`) still speak RESP
//! and so still identify Redis (and its forks: Valkey, KeyDB, Dragonfly answer alike).
//!
//! Fields: every `key:value` of the reply under its own key (`redis_version`,
//! `redis_mode`, `os`, `arch_bits`, `tcp_port`, ...; capped), or `error` (the error line)
//! and `auth_required` (`true` for `-NOAUTH`).

use super::lines::{clean, has_binary, split_line, ITEM_CAP, MAX_LINE, TEXT_CAP};
use crate::session::{printable, Action, Banner, Session};

/// `INFO server` returns about 1 KiB; a bulk string announcing far more is not a reply to
/// it (and the driver would never pass it whole anyway).
const MAX_BULK: usize = 60 * 1024;
/// Most `key:value` pairs kept: a banner holds at most 32 fields (the session contract),
/// and `INFO server` has about 20 that do not change between polls.
const MAX_KEYS: usize = 30;
/// Longest key kept (the field-name bound of the session contract): real ones are under
/// 20 characters, and a longer one cut short would be a made-up name.
const MAX_KEY_LEN: usize = 40;
/// Fields that change on every poll and would make each scan look like a change.
const VOLATILE: [&str; 6] = [
    "uptime_in_seconds",
    "uptime_in_days",
    "lru_clock",
    "server_time_usec",
    "hz",
    "configured_hz",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Done,
    NoMatch,
}

/// Redis banner grabber.
#[derive(Debug, Clone)]
pub struct RedisSession {
    state: State,
    banner: Banner,
}

/// The reply so far: a bulk string header, an error line, or neither.
enum Reply<'a> {
    Incomplete,
    Invalid,
    /// Payload received so far and whether it is all there.
    Bulk(&'a [u8], bool),
    Error(&'a [u8]),
}

fn read_reply(data: &[u8]) -> Reply<'_> {
    match data.first() {
        None => Reply::Incomplete,
        Some(b'$') => read_bulk(&data[1..]),
        Some(b'-') => match split_line(data) {
            Some((line, _)) => {
                let word = line[1..].split(|&b| b == b' ').next().unwrap_or_default();
                // Redis error replies start with an upper-case code word (`ERR`,
                // `NOAUTH`, `DENIED`, `NOPERM`, `WRONGPASS`).
                if !word.is_empty()
                    && word.iter().all(|b| b.is_ascii_uppercase())
                    && !has_binary(line)
                    && line.len() <= MAX_LINE
                {
                    Reply::Error(&line[1..])
                } else {
                    Reply::Invalid
                }
            }
            None if data.len() <= MAX_LINE && !has_binary(data) => {
                let word = data[1..].split(|&b| b == b' ').next().unwrap_or_default();
                if word.iter().all(|b| b.is_ascii_uppercase()) {
                    Reply::Incomplete
                } else {
                    Reply::Invalid
                }
            }
            None => Reply::Invalid,
        },
        Some(_) => Reply::Invalid,
    }
}

fn read_bulk(data: &[u8]) -> Reply<'_> {
    let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > 5 {
        return Reply::Invalid;
    }
    let after = &data[digits..];
    // `$-1` (a nil reply) is RESP, but not an answer to INFO.
    match after {
        [] => return Reply::Incomplete,
        [b'\r'] => {
            return if digits == 0 {
                Reply::Invalid
            } else {
                Reply::Incomplete
            }
        }
        [b'\r', b'\n', ..] if digits > 0 => {}
        _ => return Reply::Invalid,
    }
    let len = data[..digits]
        .iter()
        .fold(0usize, |acc, &b| acc * 10 + usize::from(b - b'0'));
    if len > MAX_BULK {
        return Reply::Invalid;
    }
    let body = &after[2..];
    if body.len() < len + 2 {
        return Reply::Bulk(&body[..body.len().min(len)], false);
    }
    if &body[len..len + 2] != b"\r\n" {
        return Reply::Invalid;
    }
    Reply::Bulk(&body[..len], true)
}

impl RedisSession {
    /// `host` is unused (RESP has no client name); accepted so that every text session is
    /// built the same way.
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            state: State::Waiting,
            banner: Banner {
                protocol: "redis".into(),
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

    /// Keeps the facts current even mid-payload, since the driver may stop at a deadline.
    fn record_info(&mut self, payload: &[u8]) {
        self.banner.text = printable(payload);
        let mut rest = payload;
        let fields = &mut self.banner.fields;
        fields.clear();
        while let Some((line, after)) = split_line(rest) {
            rest = after;
            if fields.len() >= MAX_KEYS {
                break;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let raw_key = line[..colon].trim_ascii();
            let key = clean(raw_key, MAX_KEY_LEN).to_ascii_lowercase();
            let valid_key = !key.is_empty()
                && raw_key.len() <= MAX_KEY_LEN
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_key || line.starts_with(b"#") || VOLATILE.contains(&key.as_str()) {
                continue;
            }
            fields.insert(key, clean(&line[colon + 1..], ITEM_CAP));
        }
    }
}

impl Session for RedisSession {
    fn protocol(&self) -> &'static str {
        "redis"
    }

    fn start(&mut self) -> Action {
        Action::Send(b"INFO server\r\n".to_vec())
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        match self.state {
            State::Done => return Action::Done,
            State::NoMatch => return Action::NoMatch,
            State::Waiting => {}
        }
        match read_reply(data) {
            Reply::Incomplete => Action::NeedMore,
            Reply::Invalid => {
                self.banner.fields.clear();
                self.banner.text.clear();
                self.end(Action::NoMatch)
            }
            Reply::Bulk(payload, complete) => {
                self.record_info(payload);
                if complete {
                    self.end(Action::Done)
                } else {
                    Action::NeedMore
                }
            }
            Reply::Error(line) => {
                self.banner.text = printable(line);
                let f = &mut self.banner.fields;
                f.insert("error".into(), clean(line, TEXT_CAP));
                if line.starts_with(b"NOAUTH") {
                    f.insert("auth_required".into(), "true".into());
                }
                self.end(Action::Done)
            }
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

    fn info_reply() -> Vec<u8> {
        let payload = "# Server\r\nredis_version:7.2.4\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:b8c5c4ae4f4f5d67\r\nredis_mode:standalone\r\nos:Linux 6.1.0-18-amd64 x86_64\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\ngcc_version:12.2.0\r\nprocess_id:1\r\nprocess_supervised:no\r\nrun_id:3a7c3e5f0f6e7c9a2c0b9d8e7f6a5b4c3d2e1f00\r\ntcp_port:6379\r\nserver_time_usec:1715000000123456\r\nuptime_in_seconds:86400\r\nuptime_in_days:1\r\nhz:10\r\nconfigured_hz:10\r\nlru_clock:1234567\r\nexecutable:/data/redis-server\r\nconfig_file:\r\nio_threads_active:0\r\n";
        let mut v = format!("${}\r\n", payload.len()).into_bytes();
        v.extend_from_slice(payload.as_bytes());
        v.extend_from_slice(b"\r\n");
        v
    }

    #[test]
    fn redis7_info() {
        let reply = info_reply();
        let s = converse(
            || RedisSession::new(None),
            Action::Send(b"INFO server\r\n".to_vec()),
            &[Step::Data(&reply, Action::Done)],
        );
        let b = s.banner();
        assert_eq!(b.protocol, "redis");
        assert_eq!(b.fields["redis_version"], "7.2.4");
        assert_eq!(b.fields["redis_mode"], "standalone");
        assert_eq!(b.fields["os"], "Linux 6.1.0-18-amd64 x86_64");
        assert_eq!(b.fields["tcp_port"], "6379");
        assert!(!b.fields.contains_key("uptime_in_seconds"));
        assert!(!b.fields.contains_key("auth_required"));
        assert_eq!(b.starttls, None);
    }

    #[test]
    fn partial_payload_keeps_facts() {
        let reply = info_reply();
        let mut s = RedisSession::new(None);
        s.start();
        assert_eq!(s.on_data(&reply[..60]), Action::NeedMore);
        assert_eq!(s.banner().fields["redis_version"], "7.2.4");
    }

    #[test]
    fn errors_still_identify_redis() {
        let (a, s) = first(
            RedisSession::new(None),
            b"-NOAUTH Authentication required.\r\n",
        );
        assert_eq!(a, Action::Done);
        assert_eq!(s.banner().fields["auth_required"], "true");
        assert_eq!(
            s.banner().fields["error"],
            "NOAUTH Authentication required."
        );
        let (a, s) = first(
            RedisSession::new(None),
            b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user.\r\n",
        );
        assert_eq!(a, Action::Done);
        assert!(s.banner().fields["error"].starts_with("DENIED"));
        let (a, _) = first(
            RedisSession::new(None),
            b"-ERR unknown command 'INFO', with args beginning with: 'server' \r\n",
        );
        assert_eq!(a, Action::Done);
        for cut in 0..10 {
            assert_eq!(
                first(
                    RedisSession::new(None),
                    &b"-NOAUTH Authentication required.\r\n"[..cut]
                )
                .0,
                Action::NeedMore
            );
        }
    }

    #[test]
    fn non_resp_does_not_match() {
        for reply in [
            &b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"[..],
            b"220 (vsFTPd 3.0.3)\r\n",
            b"+OK Dovecot ready.\r\n",
            b"-err lower case is POP3-ish\r\n",
            b"HTTP/1.1 400 Bad Request\r\n",
            b"ERROR\r\n",
            b"$-1\r\n",
            b"$99999999\r\n",
            b"$5\r\nhelloXX",
            b"$x",
        ] {
            assert_eq!(
                first(RedisSession::new(None), reply).0,
                Action::NoMatch,
                "{reply:?}"
            );
        }
    }

    /// Found by the `session` fuzz target: 64-character keys and 64 pairs were kept,
    /// past the bounds every session keeps (32 fields, 40-character names).
    #[test]
    fn long_keys_and_many_pairs_stay_within_the_session_bounds() {
        let mut payload = format!("{}:long\r\n", "x".repeat(64));
        payload.push_str(&format!("{}:kept\r\n", "k".repeat(40)));
        for i in 0..100 {
            payload.push_str(&format!("key_{i}:v\r\n"));
        }
        let mut reply = format!("${}\r\n{payload}\r\n", payload.len()).into_bytes();
        let (a, s) = first(RedisSession::new(None), &reply);
        assert_eq!(a, Action::Done);
        let b = s.banner();
        crate::reader::test_support::assert_bounded(&b);
        assert!(!b.fields.keys().any(|k| k.starts_with('x')), "a cut key");
        assert_eq!(b.fields[&"k".repeat(40)], "kept");
        reply.truncate(200);
        let (_, s) = first(RedisSession::new(None), &reply);
        crate::reader::test_support::assert_bounded(&s.banner());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let (_, s) = first(RedisSession::new(None), &data);
            let b = s.banner();
            prop_assert!(b.fields.len() <= MAX_KEYS + 2);
            prop_assert!(b.text.len() <= crate::session::BANNER_CAP + 4);
        }

        #[test]
        fn mutated_info_never_panics(pos in 0usize..2000, byte in any::<u8>()) {
            let mut reply = info_reply();
            let p = pos % reply.len();
            reply[p] = byte;
            let _ = first(RedisSession::new(None), &reply);
        }
    }
}
