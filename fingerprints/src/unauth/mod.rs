//! Unauthenticated access: does a service hand out data to anyone who asks?
//!
//! After a grab has identified a port, [`plan`] picks the check that fits what the port
//! showed (a Redis `INFO` answer, an Elasticsearch banner, a directory index, an FTP
//! greeting, ...). A check is a small I/O-free state machine like a [`crate::session`]:
//! the driver (in `mapper`) opens the connections it asks for, sends its bytes, feeds it
//! the replies, and stores the verdict it ends with.
//!
//! Every check only reads what the protocol offers any client (an `INFO`, a version, a
//! listing or a count) and never writes. Checks that log in, even anonymously (FTP
//! `anonymous`, an LDAP anonymous bind, an SMB null session), run only when the tenant
//! opted in (`login_checks`).

mod ftp;
mod http;
mod kv;
mod ldap;
mod mongo;
mod ntlm;
mod smb;
mod srvsvc;

#[cfg(test)]
mod smb_tests;
#[cfg(test)]
mod tests;

use crate::session::Banner;
use serde::{Deserialize, Serialize};

/// Longest evidence kept, in characters.
pub const EVIDENCE_CAP: usize = 240;
/// Longest value quoted from a server inside evidence.
const VALUE_CAP: usize = 64;
/// Most steps a check may take (connections plus sends); a check past it is cut short.
pub const MAX_STEPS: usize = 8;

/// What a check found on one port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unauth {
    /// The check's name: `redis`, `memcached`, `elasticsearch`, `couchdb`, `etcd`,
    /// `docker`, `kubernetes`, `prometheus`, `grafana`, `directory-listing`, `mongodb`,
    /// `ftp-anonymous`, `ldap-anonymous`, `smb-null-session`.
    pub check: String,
    /// Data was readable without credentials (false: the service asked for them).
    pub open: bool,
    /// What was read (or what refused), escaped and capped at [`EVIDENCE_CAP`].
    pub evidence: String,
    /// The check logged in (anonymously): it runs only with the tenant's opt-in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub login: bool,
}

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Open a new connection to the port (TLS if the port is TLS), send these bytes (none:
    /// only read the greeting), and feed what comes back to [`Check::on_reply`].
    Connect(Vec<u8>),
    /// Send these bytes on the current connection, and feed the reply.
    Send(Vec<u8>),
    /// Over: the verdict, or None when the port turned out not to be what it seemed.
    Done(Option<Unauth>),
}

/// One check on one port.
pub trait Check: Send + std::fmt::Debug {
    fn name(&self) -> &'static str;
    fn first(&mut self) -> Step;
    /// Whether `reply` holds a whole answer to the last step, so the driver can stop
    /// reading (it also stops at end of stream, the deadline and the byte cap).
    fn complete(&self, reply: &[u8]) -> bool;
    /// Every byte received since the last step (hostile, possibly cut short).
    fn on_reply(&mut self, reply: &[u8]) -> Step;
}

/// What the grab learned, to choose a check from.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub banner: &'a Banner,
    /// The raw HTTP response to `GET /`, when the port spoke HTTP.
    pub http_response: Option<&'a [u8]>,
    /// The Host header value for HTTP follow-ups (`ip:port` or a name); SMB takes its
    /// host part for `\\host\IPC$`.
    pub host: &'a str,
    /// The tenant opted in to checks that log in.
    pub login_checks: bool,
}

/// The check that fits what the port showed, if any.
pub fn plan(seen: &Seen<'_>) -> Option<Box<dyn Check>> {
    match seen.banner.protocol.as_str() {
        "redis" => kv::redis(seen.banner),
        "memcached" => kv::memcached(seen.banner),
        "mongodb" => mongo::plan(seen.banner),
        "ftp" if seen.login_checks => Some(Box::new(ftp::FtpAnonymous::new())),
        "ldap" if seen.login_checks => ldap::plan(seen.banner),
        "smb" if seen.login_checks => smb::plan(seen.banner, seen.host),
        "http" => http::plan(seen.http_response?, seen.host),
        _ => None,
    }
}

/// A server's text made safe to show: anything but printable ASCII escaped (bidi
/// overrides and look-alikes too), capped.
pub fn escape(text: &str, cap: usize) -> String {
    let mut out = String::with_capacity(text.len().min(cap));
    for c in text.chars() {
        if out.chars().count() >= cap {
            out.push_str("...");
            break;
        }
        match c {
            ' '..='~' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
        }
    }
    out
}

/// A value quoted from a server (a version, a path), escaped and short.
fn value(text: &str) -> String {
    escape(text.trim(), VALUE_CAP)
}

fn verdict(check: &str, open: bool, evidence: String, login: bool) -> Step {
    Step::Done(Some(Unauth {
        check: check.to_owned(),
        open,
        evidence: escape(&evidence, EVIDENCE_CAP),
        login,
    }))
}

/// A check whose verdict is already known from the grab itself.
#[derive(Debug)]
struct Known(&'static str, Option<Unauth>);

impl Check for Known {
    fn name(&self) -> &'static str {
        self.0
    }
    fn first(&mut self) -> Step {
        Step::Done(self.1.take())
    }
    fn complete(&self, _: &[u8]) -> bool {
        true
    }
    fn on_reply(&mut self, _: &[u8]) -> Step {
        Step::Done(self.1.take())
    }
}

fn known(check: &'static str, open: bool, evidence: String) -> Option<Box<dyn Check>> {
    let Step::Done(v) = verdict(check, open, evidence, false) else {
        return None;
    };
    Some(Box::new(Known(check, v)))
}
