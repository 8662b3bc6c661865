//! Every unauthenticated-access check (`aperture_fingerprints::unauth`) driven the way
//! the grabber's `unauth` driver drives it, against a peer whose bytes and read
//! boundaries come from the input: byte 0 picks the check (and so which reply parsers
//! run), byte 1 the byte cap, whether the grab's banner field comes from the input, and
//! the host; the rest is the peer's reads (see `Reads`). For the HTTP checks the first
//! read is the grab's `GET /` response the check is planned from.
//!
//! Invariants: no panic; bounded requests; a verdict names the check that gave it, and
//! its evidence is printable ASCII within the cap.
#![no_main]

use aperture_fingerprints::session::Banner;
use aperture_fingerprints::unauth::{plan, Seen, Step, EVIDENCE_CAP, MAX_STEPS};
use aperture_fingerprints_fuzz::Reads;
use libfuzzer_sys::fuzz_target;

/// The grabber's default byte cap and smaller ones users may set.
const CAPS: [usize; 4] = [64 * 1024, 4096, 512, 64];
/// One `read_some` reads at most this much.
const READ_CHUNK: usize = 8192;
const MAX_REQUEST: usize = 64 * 1024;

/// (protocol, banner field the plan reads, its usual value).
const CHECKS: [(&str, &str, &str); 9] = [
    ("redis", "redis_version", "7.0.15"),
    ("redis", "error", "NOAUTH Authentication required."),
    ("memcached", "version", "1.6.18"),
    ("mongodb", "max_wire_version", "17"),
    ("mongodb", "max_wire_version", "5"),
    ("ftp", "greeting_code", "220"),
    ("ldap", "naming_contexts", "dc=lab,dc=test"),
    ("http", "status", "200"),
    ("smb", "dialect", "3.1.1"),
];

struct Peer<'a> {
    reads: Reads<'a>,
    pending: &'a [u8],
}

impl Peer<'_> {
    /// `read_some`: false on end of stream (no more input) or when `buf` is full.
    fn read(&mut self, buf: &mut Vec<u8>, cap: usize) -> bool {
        if buf.len() >= cap {
            return false;
        }
        if self.pending.is_empty() {
            match self.reads.next() {
                Some(r) => self.pending = r,
                None => return false,
            }
        }
        let n = self.pending.len().min(READ_CHUNK).min(cap - buf.len());
        buf.extend_from_slice(&self.pending[..n]);
        self.pending = &self.pending[n..];
        true
    }
}

fuzz_target!(|data: &[u8]| {
    let [which, flags, rest @ ..] = data else {
        return;
    };
    let (protocol, field, usual) = CHECKS[usize::from(*which) % CHECKS.len()];
    let cap = CAPS[usize::from(flags & 3)];
    let mut reads = Reads::new(rest);
    let hostile_field;
    let value = if flags & 4 != 0 {
        hostile_field = String::from_utf8_lossy(reads.next().unwrap_or_default()).into_owned();
        hostile_field.as_str()
    } else {
        usual
    };
    let host = match (flags >> 3) & 3 {
        0 => "198.19.1.240:445",
        1 => "[2001:2::5]:8080",
        2 => "files.lab.test",
        _ => "",
    };
    let first_response = if protocol == "http" {
        reads.next()
    } else {
        None
    };
    let banner = Banner {
        protocol: protocol.into(),
        fields: [(field.to_owned(), value.to_owned())].into(),
        ..Banner::default()
    };
    let seen = Seen {
        banner: &banner,
        http_response: first_response,
        host,
        login_checks: true,
    };
    let Some(mut check) = plan(&seen) else {
        return;
    };
    let name = check.name();
    let mut peer = Peer {
        reads,
        pending: &[],
    };
    let mut step = check.first();
    for _ in 0..MAX_STEPS {
        let bytes = match step {
            Step::Done(Some(v)) => {
                assert_eq!(v.check, name, "verdict of another check");
                assert!(
                    v.evidence.chars().count() <= EVIDENCE_CAP + 3,
                    "evidence of {} characters",
                    v.evidence.chars().count()
                );
                assert!(
                    v.evidence.chars().all(|c| (' '..='~').contains(&c)),
                    "unescaped evidence {:?}",
                    v.evidence
                );
                return;
            }
            Step::Done(None) => return,
            Step::Connect(b) | Step::Send(b) => b,
        };
        assert!(
            bytes.len() <= MAX_REQUEST,
            "request of {} bytes",
            bytes.len()
        );
        let mut reply = Vec::new();
        while !check.complete(&reply) {
            if !peer.read(&mut reply, cap) {
                break;
            }
        }
        step = check.on_reply(&reply);
    }
});
