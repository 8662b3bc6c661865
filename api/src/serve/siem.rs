//! The SIEM exporter: one thread that keeps each destination's receiver fed from its
//! stored cursor — RFC 5424 syslog or OCSF JSON lines over TCP, optionally TLS.
//!
//! A batch is read from the cursor, written and flushed, and only then is the cursor
//! moved past it, in a durable commit. A `kill -9` or a broken connection between the two
//! sends the batch again after the restart or reconnect, with the same event ids, which
//! is what receivers de-duplicate on. Before each batch the connection is checked for a
//! receiver that went away meanwhile (its FIN already here), so a restarted receiver gets
//! a new connection instead of a write into a dead one. What plain TCP syslog cannot
//! tell — a receiver that dies after the bytes reached its kernel but before it stored
//! them — is its limit, not this exporter's (RFC 6587 has no acknowledgements).
//! A receiver that is down is retried with an exponential, jittered, capped delay.

use super::state::{now_ms, SharedState};
use aperture_notify::ocsf::{to_json, to_ocsf, SiemEvent};
use aperture_notify::syslog;
use aperture_storage::siem::{Feeds, SiemDestination, SiemFormat, SiemPosition};
use aperture_storage::TenantId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often an idle exporter looks for new events.
const IDLE: Duration = Duration::from_millis(200);
/// Most events one read of the store returns (its page cap).
const MAX_BATCH: usize = 1000;
/// Largest CA bundle a destination may carry, in characters (a handful of
/// certificates): with JSON's escapes a body at this size stays within body_limit.
pub const MAX_CA_CHARS: usize = 10_000;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The bytes of `events` as the destination's format writes them.
pub fn encode(d: &SiemDestination, events: &[SiemEvent], hostname: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        match d.format {
            SiemFormat::Syslog => out.extend_from_slice(&syslog::frame(&syslog::message(
                e, d.facility, hostname, VERSION,
            ))),
            SiemFormat::Ocsf => {
                out.extend_from_slice(to_json(&to_ocsf(e, VERSION)).as_bytes());
                out.push(b'\n');
            }
        }
    }
    out
}

/// The roots a TLS destination trusts: its CA PEM, or the system's. Err says what to fix.
pub fn roots(ca_pem: Option<&str>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            if pem.chars().count() > MAX_CA_CHARS {
                return Err(format!(
                    "ca_pem: give at most {MAX_CA_CHARS} characters of PEM (the receiver's CA, not a whole bundle)"
                ));
            }
            let mut found = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| format!("ca_pem: not readable PEM ({e}): give the CA certificate(s) as -----BEGIN CERTIFICATE----- blocks"))?;
                roots.add(cert).map_err(|e| {
                    format!("ca_pem: a certificate in it is not a usable CA certificate ({e})")
                })?;
                found += 1;
            }
            if found == 0 {
                return Err("ca_pem: no certificate in it: give the CA certificate(s) that signed the receiver's certificate, as -----BEGIN CERTIFICATE----- blocks".into());
            }
        }
        None => {
            let loaded = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 {
                return Err(
                    "the system has no CA certificates (ca-certificates): give ca_pem".into(),
                );
            }
        }
    }
    Ok(roots)
}

/// An open stream to a receiver.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref(),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
            Conn::Tls(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
        }
    }

    /// Whether the receiver is still there: no end of stream and no error waiting. What
    /// it sends (syslog receivers send nothing; TLS may send tickets) is read and dropped.
    fn alive(&mut self) -> bool {
        if self.tcp().set_nonblocking(true).is_err() {
            return false;
        }
        let mut buf = [0u8; 4096];
        // Bounded: a receiver that keeps talking cannot hold the exporter here.
        let mut reads = 0;
        let alive = loop {
            reads += 1;
            if reads > 64 {
                break true;
            }
            let got = match self {
                Conn::Plain(s) => s.read(&mut buf),
                Conn::Tls(s) => s.read(&mut buf),
            };
            match got {
                Ok(0) => break false,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                Err(_) => break false,
            }
        };
        alive && self.tcp().set_nonblocking(false).is_ok()
    }
}

fn connect(d: &SiemDestination, timeout: Duration) -> Result<Conn, String> {
    let addrs: Vec<_> = (d.host.as_str(), d.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", d.host))?
        .collect();
    let mut last = format!("{} has no address", d.host);
    let mut tcp = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect to {a}: {e}"),
        }
    }
    let tcp = tcp.ok_or(last)?;
    tcp.set_write_timeout(Some(timeout))
        .and_then(|()| tcp.set_read_timeout(Some(timeout)))
        .and_then(|()| tcp.set_nodelay(true))
        .map_err(|e| format!("socket options: {e}"))?;
    if !d.tls {
        return Ok(Conn::Plain(tcp));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots(d.ca_pem.as_deref())?)
    .with_no_client_auth();
    let name = ServerName::try_from(d.host.clone())
        .map_err(|e| format!("TLS server name {}: {e}", d.host))?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| format!("TLS: {e}"))?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    // The handshake now, so a certificate the CA does not vouch for is this attempt's
    // error, not a confusing failure of the first write.
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| format!("TLS handshake with {}:{}: {e}", d.host, d.port))?;
    }
    Ok(Conn::Tls(Box::new(stream)))
}

/// This machine's name for the syslog header.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

struct Link {
    dest: SiemDestination,
    conn: Conn,
}

pub fn spawn(state: SharedState) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("siem".into())
        .spawn(move || run(&state))
}

fn run(state: &SharedState) {
    let host = hostname();
    let mut links: HashMap<(TenantId, String), Link> = HashMap::new();
    let mut waits: HashMap<(TenantId, String), Instant> = HashMap::new();
    while !state.stopping.load(Ordering::SeqCst) {
        let mut busy = false;
        let mut seen = Vec::new();
        for t in state.store.tenants().unwrap_or_default() {
            let destinations = match state.store.siem_destinations(&t.id) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("siem: destinations of {}: {e}", t.id);
                    continue;
                }
            };
            for (d, p) in destinations {
                let key = (t.id.clone(), d.id.clone());
                seen.push(key.clone());
                if waits.get(&key).is_some_and(|w| Instant::now() < *w) {
                    continue;
                }
                match export(state, &t.id, &d, &p, links.remove(&key), &host) {
                    Ok((n, link)) => {
                        busy |= n >= batch(state);
                        waits.remove(&key);
                        if let Some(link) = link {
                            links.insert(key, link);
                        }
                    }
                    Err(e) => {
                        let failures = state
                            .store
                            .siem_failed(&t.id, &d.id, &e, now_ms())
                            .unwrap_or(1);
                        let delay = aperture_notify::backoff_ms(
                            failures.max(1),
                            state.config.alert_retry_base_ms,
                            state.config.alert_retry_cap_ms,
                            jitter(),
                        );
                        eprintln!("siem: {} of {}: {e}; retrying in {delay} ms", d.id, t.id);
                        waits.insert(key, Instant::now() + Duration::from_millis(delay));
                    }
                }
            }
        }
        links.retain(|k, _| seen.contains(k));
        waits.retain(|k, _| seen.contains(k));
        if !busy {
            std::thread::sleep(IDLE);
        }
    }
}

/// Sends one batch from the destination's cursor; the events sent and the connection
/// to keep.
fn export(
    state: &SharedState,
    t: &TenantId,
    d: &SiemDestination,
    p: &SiemPosition,
    link: Option<Link>,
    host: &str,
) -> Result<(usize, Option<Link>), String> {
    let feeds = Feeds {
        findings: d.findings,
        changes: d.changes,
    };
    let store = &state.store;
    let (events, next) = store
        .siem_events(t, p.cursor, batch(state), feeds)
        .map_err(|e| e.to_string())?;
    if events.is_empty() {
        // Nothing to send; a feed not chosen may still move the cursor to its end.
        if next != p.cursor {
            store
                .siem_sent(t, &d.id, p.cursor, next, 0, now_ms())
                .map_err(|e| e.to_string())?;
        }
        return Ok((0, link));
    }
    let timeout = Duration::from_millis(state.config.alert_timeout_ms);
    // A destination is never edited in place, but one deleted and created again under
    // its id must not inherit the old connection.
    let mut link = match link
        .filter(|l| l.dest == *d)
        .and_then(|mut l| l.conn.alive().then_some(l))
    {
        Some(l) => l,
        None => Link {
            dest: d.clone(),
            conn: connect(d, timeout)?,
        },
    };
    let bytes = encode(d, &events, host);
    link.conn
        .send(&bytes)
        .map_err(|e| format!("writing to {}:{}: {e}", d.host, d.port))?;
    let moved = store
        .siem_sent(t, &d.id, p.cursor, next, events.len() as u64, now_ms())
        .map_err(|e| e.to_string())?;
    Ok((events.len(), moved.then_some(link)))
}

fn batch(state: &SharedState) -> usize {
    state.config.siem_batch.clamp(1, MAX_BATCH)
}

/// A number in `[0, 1)` from the system's randomness.
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    if getrandom::getrandom(&mut b).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}
