//! Every protocol session (and the legacy-hello TLS grab) driven the way the grabber's
//! `converse` drives it, against a peer whose bytes and read boundaries come from the
//! input: byte 0 picks the protocol, byte 1 the byte cap and host name, the rest is
//! the peer's reads (see `Reads`).
//!
//! Invariants: no panic; bounded banner and requests; a bounded number of requests per
//! connection; and the outcome depends only on the bytes, not on how they were split
//! into reads (replaying with each exchange's bytes in one read gives the same actions
//! and banner).
#![no_main]

use aperture_fingerprints::proto;
use aperture_fingerprints::session::{Action, Banner, Session};
use aperture_fingerprints::tls::grab::LegacyTlsSession;
use aperture_fingerprints_fuzz::{assert_banner_bounded, Reads};
use libfuzzer_sys::fuzz_target;

/// The grabber's default byte cap and smaller ones users may set.
const CAPS: [usize; 4] = [64 * 1024, 4096, 512, 64];
/// One `read_some` reads at most this much.
const READ_CHUNK: usize = 8192;
/// A session that keeps asking to send would hold a connection forever.
const MAX_SENDS: usize = 16;
const MAX_REQUEST: usize = 64 * 1024;

/// What the session was given, and what it answered.
#[derive(Debug, Clone)]
enum Event {
    Start,
    Data(Vec<u8>),
    AfterTls,
}

struct Peer<'a> {
    reads: Reads<'a>,
    pending: &'a [u8],
}

impl Peer<'_> {
    /// `read_some`: false on EOF (no more input) or when `buf` is full.
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

fn make(index: usize, host: Option<&str>) -> Box<dyn Session> {
    let protocols = proto::protocols();
    match protocols.get(index) {
        Some(p) => (p.make)(host),
        None => Box::new(LegacyTlsSession::new(host, [7; 32])),
    }
}

fn check_action(a: &Action) {
    if let Action::Send(bytes) = a {
        assert!(
            bytes.len() <= MAX_REQUEST,
            "request of {} bytes",
            bytes.len()
        );
    }
}

/// Runs the conversation; returns every event with the action it drew.
fn converse(session: &mut dyn Session, peer: &mut Peer, cap: usize) -> Vec<(Event, Action)> {
    let mut log = Vec::new();
    let mut buf = Vec::new();
    let mut action = session.start();
    log.push((Event::Start, action.clone()));
    let mut sends = 0;
    let mut upgraded = false;
    loop {
        check_action(&action);
        match action {
            Action::Send(_) => {
                sends += 1;
                assert!(sends <= MAX_SENDS, "more than {MAX_SENDS} requests");
                buf.clear();
                if !peer.read(&mut buf, cap) {
                    break;
                }
            }
            Action::NeedMore => {
                if !peer.read(&mut buf, cap) {
                    break;
                }
            }
            // The grabber upgrades once; a second STARTTLS ends the conversation.
            Action::StartTls if !upgraded => {
                upgraded = true;
                action = session.after_tls();
                log.push((Event::AfterTls, action.clone()));
                buf.clear();
                continue;
            }
            Action::StartTls | Action::Done | Action::NoMatch => break,
        }
        action = session.on_data(&buf);
        log.push((Event::Data(buf.clone()), action.clone()));
    }
    log
}

/// The same conversation with each exchange's bytes arriving in one read.
fn coalesce(log: &[(Event, Action)]) -> Vec<(Event, Action)> {
    let mut out: Vec<(Event, Action)> = Vec::new();
    for (event, action) in log {
        if let (Event::Data(_), Some((Event::Data(_), Action::NeedMore))) = (event, out.last()) {
            out.pop();
        }
        out.push((event.clone(), action.clone()));
    }
    out
}

fn replay(session: &mut dyn Session, events: &[(Event, Action)]) {
    for (i, (event, want)) in events.iter().enumerate() {
        let got = match event {
            Event::Start => session.start(),
            Event::Data(d) => session.on_data(d),
            Event::AfterTls => session.after_tls(),
        };
        assert_eq!(
            &got, want,
            "step {i} ({event:?}) answers differently when its bytes come in one read"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let [which, flags, rest @ ..] = data else {
        return;
    };
    let index = usize::from(*which) % (proto::protocols().len() + 1);
    let cap = CAPS[usize::from(flags & 3)];
    let mut reads = Reads::new(rest);
    let host_text;
    let host = match (flags >> 2) & 3 {
        0 => None,
        1 => Some("www.example.test"),
        2 => Some("192.0.2.1"),
        _ => {
            host_text = String::from_utf8_lossy(reads.next().unwrap_or_default()).into_owned();
            Some(host_text.as_str())
        }
    };

    let mut session = make(index, host);
    let mut peer = Peer {
        reads,
        pending: &[],
    };
    let log = converse(session.as_mut(), &mut peer, cap);
    let banner: Banner = session.banner();
    assert_banner_bounded(&banner);

    let mut again = make(index, host);
    replay(again.as_mut(), &coalesce(&log));
    assert_eq!(
        again.banner(),
        banner,
        "banner differs when each exchange comes in one read"
    );
});
