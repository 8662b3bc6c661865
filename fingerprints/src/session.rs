//! The grabber contract (masscan's hello-then-parse banner protocols, without the I/O).
//!
//! A `Session` is a small state machine for one protocol on one connection. The driver
//! (in `mapper`, with tokio) connects, calls `start`, sends what it is told, and feeds
//! every byte received since the last send to `on_data`. The session never blocks,
//! never allocates without bound (the driver caps the bytes it passes), and never
//! panics on hostile input.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes, then feed the reply to `on_data` (the buffer restarts empty).
    Send(Vec<u8>),
    /// Wait for more bytes (the buffer passed next time includes what was passed now).
    NeedMore,
    /// Upgrade the connection to TLS now (STARTTLS accepted); then call `after_tls`.
    StartTls,
    /// Finished: `facts()` holds what was learned.
    Done,
    /// These bytes are not this protocol; try another.
    NoMatch,
}

/// What a session learned. `fields` holds protocol specifics under stable keys
/// (`version`, `capabilities`, `auth`, …) that identification rules and users read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Banner {
    /// Protocol name: `ssh`, `ftp`, `smtp`, `http`, `tls`, …
    pub protocol: String,
    /// The identifying text as received, non-printable bytes escaped, capped.
    pub text: String,
    pub fields: BTreeMap<String, String>,
    /// Whether the server offered STARTTLS (None: protocol has no STARTTLS).
    pub starttls: Option<bool>,
}

/// How many bytes of banner text are kept.
pub const BANNER_CAP: usize = 2048;

/// Printable rendering of received bytes, capped at `BANNER_CAP` characters.
pub fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().min(BANNER_CAP));
    for &b in bytes {
        if out.len() >= BANNER_CAP {
            break;
        }
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push('\t'),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

pub trait Session: Send {
    fn protocol(&self) -> &'static str;
    /// Right after connect: `Send(hello)`, or `NeedMore` for server-first protocols.
    fn start(&mut self) -> Action;
    /// Every byte received since the last `Send` (or since `start`), accumulated.
    fn on_data(&mut self, data: &[u8]) -> Action;
    /// After a successful STARTTLS upgrade: what to send over TLS (e.g. EHLO again).
    fn after_tls(&mut self) -> Action {
        Action::Done
    }
    fn banner(&self) -> Banner;
    /// Whether the bytes seen so far positively matched this protocol's framing (an
    /// SSH identification line, a MySQL handshake or error packet, an HTTP status line).
    /// A session still waiting for its first complete greeting has recognised nothing:
    /// when the peer closes then, the grabber reports `unknown` with the raw bytes,
    /// never the protocol it was hoping for. Sessions record `text` or `fields` only
    /// once they have matched, which is what the default relies on.
    fn recognised(&self) -> bool {
        let b = self.banner();
        !b.text.is_empty() || !b.fields.is_empty()
    }
}

/// Protocol name of a banner no session recognised.
pub const UNKNOWN: &str = "unknown";

/// A banner for bytes no session recognised: kept (escaped, capped at [`BANNER_CAP`])
/// so a person can judge them, with the protocol `unknown` so nothing is derived from
/// a guess. `None` when there are no bytes to keep.
pub fn unknown_banner(bytes: &[u8]) -> Option<Banner> {
    if bytes.is_empty() {
        return None;
    }
    let mut fields = BTreeMap::new();
    fields.insert("bytes".to_string(), bytes.len().to_string());
    Some(Banner {
        protocol: UNKNOWN.into(),
        text: printable(bytes),
        fields,
        starttls: None,
    })
}

/// Runs `parse` until it gives a final answer, then keeps giving that answer: a session
/// fed more bytes after deciding must not change its mind.
pub fn settle(outcome: &mut Option<Action>, parse: impl FnOnce() -> Action) -> Action {
    if let Some(done) = outcome {
        return done.clone();
    }
    let action = parse();
    if action != Action::NeedMore {
        *outcome = Some(action.clone());
    }
    action
}
