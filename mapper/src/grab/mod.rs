//! Grabbing: after a port is found open, connect and find out what speaks there.
//!
//! Order of play on one port (each connection under its own deadline, every read
//! under the byte cap):
//! 1. Connect and listen briefly: a server-first protocol (SSH, FTP, SMTP, …) greets
//!    us, and the greeting is matched against those protocols' sessions.
//! 2. A silent port gets client-first hellos, the port's likely protocol first, then
//!    TLS, HTTP and the rest, a fresh connection for each (a wrong hello can poison one).
//! 3. Inside TLS the same two steps run again (IMAPS greets, HTTPS waits for a request).
//!    STARTTLS upgrades in place when a session asks for it.
//!
//! The parsing is all in `fingerprints`; this module only moves bytes.

pub mod conn;
pub mod legacy;
pub mod report;
pub mod tls;
mod unauth;

use crate::pace::Pacer;
use aperture_fingerprints::proto::{self, Candidate};
use aperture_fingerprints::session::{unknown_banner, Action, Banner, Session};
use aperture_fingerprints::tls::hello::legacy_hello;
use aperture_fingerprints::tls::jarm::{
    jarm_answer_complete, jarm_hash, jarm_probes, jarm_read_server_hello, JARM_RECV_LIMIT,
};
use aperture_fingerprints::tls::record::{
    alert_name, parse_server_flight, partial_server_flight, Flight, ServerFlight,
};
use aperture_fingerprints::tls::version_name as tls_version_name;
use conn::{converse, read_some, Conn, Ended, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tls::{server_name, TlsClients};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{timeout_at, Instant};
use tokio_rustls::TlsConnector;

#[derive(Debug, Clone)]
pub struct GrabOptions {
    /// Deadline of each connection, from connect to close.
    pub deadline: Duration,
    /// How long a fresh connection waits for a server-first greeting.
    pub banner_wait: Duration,
    /// Bytes read at most from one connection.
    pub byte_cap: usize,
    /// Connections tried per port to identify it (JARM and favicon not counted).
    pub max_attempts: usize,
    /// Stop after this many hellos drew no byte at all: the port is silent.
    pub max_silent: usize,
    pub jarm: bool,
    pub favicon: bool,
    /// Run the unauthenticated-access checks that log in (FTP anonymous, LDAP anonymous
    /// bind, SMB null session): only with the tenant's opt-in. The read-only checks
    /// always run.
    pub login_checks: bool,
}

impl Default for GrabOptions {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(5),
            banner_wait: Duration::from_millis(1500),
            byte_cap: 64 * 1024,
            // Peers that close on a wrong hello cost one fast connection each: enough
            // to reach every client-first protocol on an unusual port.
            max_attempts: 12,
            max_silent: 2,
            jarm: true,
            favicon: true,
            login_checks: false,
        }
    }
}

/// One open port to look at.
#[derive(Debug, Clone)]
pub struct GrabTarget {
    pub ip: IpAddr,
    pub port: u16,
    /// A name for SNI, Host and EHLO, when the target came from one.
    pub hostname: Option<String>,
}

/// TLS as observed on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSeen {
    pub version: Option<String>,
    pub cipher: Option<String>,
    pub alpn: Option<String>,
    pub sni: Option<String>,
    /// DER certificates, leaf first, as the server sent them.
    pub chain: Vec<Vec<u8>>,
    /// Got by our own ClientHello because rustls could not talk to the server.
    pub legacy: bool,
    /// Reached through STARTTLS.
    pub starttls: bool,
    pub error: Option<String>,
}

/// Everything learned about one port, still raw: `fingerprints` turns it into facts.
#[derive(Debug, Clone, Default)]
pub struct Grabbed {
    pub banner: Option<Banner>,
    pub tls: Option<TlsSeen>,
    /// The HTTP response (capped) when the port spoke HTTP.
    pub http_response: Option<Vec<u8>>,
    /// The raw response to the favicon request.
    pub favicon_response: Option<Vec<u8>>,
    /// JARM fingerprint of a TLS port.
    pub jarm: Option<String>,
    /// What the unauthenticated-access check found.
    pub unauth: Option<aperture_fingerprints::unauth::Unauth>,
    pub attempts: u32,
    /// Connections beyond identification: JARM probes, favicon, legacy-TLS requests.
    pub extra_connections: u32,
    pub silent: bool,
    pub elapsed: Duration,
}

/// Shared, read-only state of a grabbing run.
#[derive(Debug, Clone)]
pub struct Grabber {
    pub opts: GrabOptions,
    pub tls: TlsClients,
}

/// What JARM reports when the server did not answer every probe.
const JARM_ZERO: &str = "00000000000000000000000000000000000000000000000000000000000000";

fn seen_from_flight(f: &ServerFlight) -> TlsSeen {
    TlsSeen {
        version: f.version_name.map(str::to_string),
        cipher: f
            .cipher_name
            .map(str::to_string)
            .or_else(|| Some(format!("0x{:04x}", f.cipher_suite))),
        alpn: f.alpn.clone(),
        chain: f.certificates.clone(),
        ..TlsSeen::default()
    }
}

/// A TLS banner: what the handshake showed, so that it is evidence and not a name.
fn tls_banner(how: &str) -> Banner {
    let mut b = Banner {
        protocol: "tls".into(),
        text: format!("TLS handshake: {how}"),
        ..Banner::default()
    };
    b.fields.insert("handshake".into(), how.to_string());
    b
}

#[cfg(test)]
thread_local! {
    /// Tests dial loopback listeners on ephemeral ports but need the port's guesses of
    /// a well-known port (HTTP on 22, SSH on 443): this stands in for that port.
    static HINT_PORT: std::cell::Cell<Option<u16>> = const { std::cell::Cell::new(None) };
}

/// The port whose usual protocols are tried first. Only an order: nothing is ever
/// claimed because of it.
fn hint_port(t: &GrabTarget) -> u16 {
    #[cfg(test)]
    if let Some(p) = HINT_PORT.with(|h| h.get()) {
        return p;
    }
    t.port
}

/// The name a session puts in Host headers and greetings: the target's name, or for
/// HTTP the address and port (a Host header must not be empty).
fn session_host(protocol: &str, t: &GrabTarget) -> Option<String> {
    match (&t.hostname, protocol) {
        (Some(h), _) => Some(h.clone()),
        (None, "http") => Some(match t.ip {
            IpAddr::V6(a) => format!("[{a}]:{}", t.port),
            IpAddr::V4(a) => format!("{a}:{}", t.port),
        }),
        _ => None,
    }
}

async fn connect(addr: SocketAddr, until: Instant) -> Option<TcpStream> {
    match timeout_at(until, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Some(s)
        }
        _ => None,
    }
}

enum TlsAttempt {
    Up(Box<tokio_rustls::client::TlsStream<TcpStream>>, TlsSeen),
    /// TLS, but rustls would not finish the handshake (old versions, odd server).
    Failed(String),
    TimedOut,
}

async fn handshake(
    tcp: TcpStream,
    cfg: Arc<rustls::ClientConfig>,
    host: Option<&str>,
    ip: IpAddr,
    until: Instant,
) -> TlsAttempt {
    let connector = TlsConnector::from(cfg);
    match timeout_at(until, connector.connect(server_name(host, ip), tcp)).await {
        Err(_) => TlsAttempt::TimedOut,
        Ok(Err(e)) => TlsAttempt::Failed(e.to_string()),
        Ok(Ok(stream)) => {
            let (_, c) = stream.get_ref();
            let seen = TlsSeen {
                version: c
                    .protocol_version()
                    .and_then(|v| tls_version_name(u16::from(v)))
                    .map(str::to_string),
                cipher: c
                    .negotiated_cipher_suite()
                    .and_then(|s| s.suite().as_str())
                    .map(str::to_string),
                alpn: c
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
                sni: host.map(str::to_string),
                chain: c
                    .peer_certificates()
                    .map(|certs| certs.iter().map(|d| d.as_ref().to_vec()).collect())
                    .unwrap_or_default(),
                ..TlsSeen::default()
            };
            TlsAttempt::Up(Box::new(stream), seen)
        }
    }
}

impl Grabber {
    fn until(&self) -> Instant {
        Instant::now() + self.opts.deadline
    }

    /// Identifies one open port. Never fails: what could not be learned is left empty.
    pub async fn grab(&self, target: &GrabTarget) -> Grabbed {
        let started = Instant::now();
        let mut out = Grabbed::default();
        self.identify(target, &mut out).await;
        self.unauth(target, &mut out).await;
        out.elapsed = started.elapsed();
        out
    }

    async fn identify(&self, t: &GrabTarget, out: &mut Grabbed) {
        let addr = SocketAddr::new(t.ip, t.port);
        let until = self.until();
        out.attempts += 1;
        let Some(tcp) = connect(addr, until).await else {
            return;
        };
        let mut conn = Conn::Plain(tcp);
        let mut sniff = Vec::new();
        // Where the port suggests a client-first protocol, listen only briefly: a
        // server-first service there still shows itself in answer to the wrong hello.
        let listen = if proto::client_first_hinted(hint_port(t)) {
            self.opts.banner_wait / 6
        } else {
            self.opts.banner_wait
        };
        let wait = (Instant::now() + listen).min(until);
        if read_some(&mut conn, &mut sniff, wait, self.opts.byte_cap).await == Read::Data {
            self.server_first(conn, t, sniff, until, out).await;
            return;
        }

        // Silent so far: client-first hellos. The first reuses this connection.
        let mut reuse = Some(conn);
        let mut silent = 0;
        // The first reply no session recognised: kept for a person to judge if no
        // later hello identifies the port either.
        let mut unrecognised: Option<Vec<u8>> = None;
        for candidate in proto::client_first(hint_port(t)) {
            if out.attempts as usize >= self.opts.max_attempts || silent >= self.opts.max_silent {
                break;
            }
            // The first hello reuses the sniffing connection, and its deadline with it,
            // unless listening used up most of that deadline.
            if until.saturating_duration_since(Instant::now()) < self.opts.deadline / 2 {
                reuse = None;
            }
            let fresh = reuse.is_none();
            let until = if fresh { self.until() } else { until };
            let conn = match reuse.take() {
                Some(c) => c,
                None => {
                    out.attempts += 1;
                    match connect(addr, until).await {
                        Some(tcp) => Conn::Plain(tcp),
                        None => return,
                    }
                }
            };
            let Conn::Plain(tcp) = conn else {
                return;
            };
            match candidate {
                Candidate::Tls => match self.tls_port(tcp, t, until, out).await {
                    Some(true) => return,
                    Some(false) => silent += 1,
                    None => {}
                },
                Candidate::Session(p) => {
                    let mut session = (p.make)(session_host(p.name, t).as_deref());
                    let mut conn = Conn::Plain(tcp);
                    let mut buf = Vec::new();
                    let action = session.start();
                    let ended = converse(
                        &mut conn,
                        session.as_mut(),
                        action,
                        &mut buf,
                        until,
                        self.opts.byte_cap,
                    )
                    .await;
                    match ended {
                        Ended::Silent => silent += 1,
                        Ended::Closed => {}
                        // The wrong hello drew a greeting: a server-first protocol?
                        Ended::NoMatch if !buf.is_empty() && self.claimed(&buf, hint_port(t)) => {
                            let kept = buf.clone();
                            if self.server_first(conn, t, buf, until, out).await {
                                return;
                            }
                            // Claimed at first sight, recognised by none: go on.
                            out.banner = None;
                            if unrecognised.is_none() {
                                unrecognised = Some(kept);
                            }
                        }
                        Ended::NoMatch => {
                            if unrecognised.is_none() && !buf.is_empty() {
                                unrecognised = Some(buf);
                            }
                        }
                        // The peer answered something, then went away before the session
                        // recognised it: not this protocol as far as we know.
                        Ended::Partial if !session.recognised() => {
                            if unrecognised.is_none() && !buf.is_empty() {
                                unrecognised = Some(buf);
                            }
                        }
                        _ => {
                            self.finish_session(conn, session, ended, buf, t, until, out)
                                .await;
                            return;
                        }
                    }
                }
            }
        }
        if out.banner.is_none() {
            out.banner = unrecognised.as_deref().and_then(unknown_banner);
        }
        out.silent = out.banner.is_none() && out.tls.is_none();
    }

    /// Whether some server-first protocol recognises these bytes as its greeting.
    fn claimed(&self, greeting: &[u8], port: u16) -> bool {
        proto::server_first(port).iter().any(|p| {
            let mut s = (p.make)(None);
            let _ = s.start();
            // A recognised greeting: finished, or answered with the next command.
            // Waiting for more is no claim (SSH waits through any text line).
            matches!(
                s.on_data(greeting),
                Action::Done | Action::Send(_) | Action::StartTls
            )
        })
    }

    /// A greeting arrived: find the server-first protocol it belongs to.
    /// Returns whether a protocol recognised it (else `out.banner` keeps the bytes as
    /// `unknown`).
    async fn server_first(
        &self,
        mut conn: Conn,
        t: &GrabTarget,
        mut sniff: Vec<u8>,
        until: Instant,
        out: &mut Grabbed,
    ) -> bool {
        let host = t.hostname.as_deref();
        for p in proto::server_first(hint_port(t)) {
            let mut session = (p.make)(host);
            let action = session.start();
            let mut buf = sniff.clone();
            let ended = converse(
                &mut conn,
                session.as_mut(),
                action,
                &mut buf,
                until,
                self.opts.byte_cap,
            )
            .await;
            // Still waiting when the peer stopped: not this protocol as far as we
            // know (SSH accepts preamble lines); the others may recognise the bytes.
            if ended == Ended::Partial && !session.recognised() {
                if buf.starts_with(&sniff) {
                    sniff = buf;
                }
                continue;
            }
            if ended != Ended::NoMatch {
                self.finish_session(conn, session, ended, buf, t, until, out)
                    .await;
                return true;
            }
        }
        // Some client-first servers speak before our hello when they refuse us (Redis
        // in protected mode sends -DENIED at once): a client-first parser that fully
        // recognises the unsolicited bytes claims them; nothing is sent.
        // Only text protocols whose framing is unambiguous on its own: a binary reply
        // (DNS, SMB, LDAP, MQTT) means something only as the answer to our request.
        let unsolicited = ["redis", "memcached", "http"];
        for p in proto::protocols()
            .iter()
            .filter(|p| !p.server_first && unsolicited.contains(&p.name))
        {
            let mut session = (p.make)(host);
            let _ = session.start();
            if session.on_data(&sniff) == Action::Done && session.recognised() {
                let mut b = session.banner();
                b.fields.insert("unsolicited".into(), "true".into());
                out.banner = Some(b);
                return true;
            }
        }
        // Nobody claims it: keep the greeting for a person to judge.
        out.banner = unknown_banner(&sniff);
        false
    }

    /// A session recognised the port; follow STARTTLS, keep HTTP bytes, fetch extras.
    #[allow(clippy::too_many_arguments)]
    async fn finish_session(
        &self,
        mut conn: Conn,
        mut session: Box<dyn Session>,
        mut ended: Ended,
        mut buf: Vec<u8>,
        t: &GrabTarget,
        until: Instant,
        out: &mut Grabbed,
    ) {
        if ended == Ended::StartTls {
            if let Conn::Plain(tcp) = conn {
                match handshake(
                    tcp,
                    self.tls.observe.clone(),
                    t.hostname.as_deref(),
                    t.ip,
                    until,
                )
                .await
                {
                    TlsAttempt::Up(stream, mut seen) => {
                        seen.starttls = true;
                        out.tls = Some(seen);
                        let mut tls_conn = Conn::Tls(stream);
                        let action = session.after_tls();
                        buf.clear();
                        ended = converse(
                            &mut tls_conn,
                            session.as_mut(),
                            action,
                            &mut buf,
                            until,
                            self.opts.byte_cap,
                        )
                        .await;
                        conn = tls_conn;
                    }
                    TlsAttempt::Failed(e) => {
                        out.tls = Some(TlsSeen {
                            starttls: true,
                            error: Some(e),
                            ..TlsSeen::default()
                        });
                        return self.record(session, out);
                    }
                    TlsAttempt::TimedOut => {
                        out.tls = Some(TlsSeen {
                            starttls: true,
                            error: Some("handshake timed out".into()),
                            ..TlsSeen::default()
                        });
                        return self.record(session, out);
                    }
                }
            } else {
                return self.record(session, out);
            }
        }
        let _ = conn.shutdown().await;
        // Waiting for more when the peer closed (or the deadline came): unless the
        // session had already matched its protocol's framing, all we know is the bytes.
        if ended == Ended::Partial && !session.recognised() {
            out.banner = unknown_banner(&buf);
            return;
        }
        let is_http = session.protocol() == "http";
        if is_http {
            out.http_response = Some(buf);
        }
        self.record(session, out);
        if is_http && self.opts.favicon {
            out.extra_connections += 1;
            out.favicon_response = self.fetch(t, out.tls.is_some(), b"/favicon.ico").await;
        }
    }

    fn record(&self, session: Box<dyn Session>, out: &mut Grabbed) {
        out.banner = Some(session.banner());
    }

    /// TLS on a client-first port. Some(true): identified; Some(false): silent; None: not TLS.
    async fn tls_port(
        &self,
        tcp: TcpStream,
        t: &GrabTarget,
        until: Instant,
        out: &mut Grabbed,
    ) -> Option<bool> {
        let host = t.hostname.as_deref();
        let addr = SocketAddr::new(t.ip, t.port);
        match handshake(tcp, self.tls.observe.clone(), host, t.ip, until).await {
            TlsAttempt::TimedOut => Some(false),
            TlsAttempt::Failed(error) => {
                // Maybe TLS that rustls will not speak: ask with our own legacy hello.
                out.attempts += 1;
                let until = self.until();
                let tcp = connect(addr, until).await?;
                match self.legacy_flight(tcp, host, until).await {
                    Some(Ok(mut seen)) => {
                        seen.legacy = true;
                        seen.error = Some(error);
                        seen.sni = host.map(str::to_string);
                        out.tls = Some(seen);
                        out.banner = Some(tls_banner("legacy"));
                        self.http_over_legacy_tls(t, out).await;
                        self.jarm(t, out).await;
                        Some(true)
                    }
                    // A server that answers our ClientHello with an alert speaks TLS,
                    // even if it will not finish a handshake with us.
                    Some(Err(alert)) if alert.starts_with("alert ") => {
                        out.tls = Some(TlsSeen {
                            error: Some(format!("{error}; legacy hello: {alert}")),
                            sni: host.map(str::to_string),
                            ..TlsSeen::default()
                        });
                        let mut b = tls_banner("alert");
                        b.fields.insert(
                            "alert".into(),
                            alert.trim_start_matches("alert ").to_string(),
                        );
                        out.banner = Some(b);
                        Some(true)
                    }
                    _ => None,
                }
            }
            TlsAttempt::Up(stream, seen) => {
                let h2 = seen.alpn.as_deref() == Some("h2");
                out.tls = Some(seen);
                self.inside_tls(Conn::Tls(stream), t, h2, until, out).await;
                self.jarm(t, out).await;
                Some(true)
            }
        }
    }

    /// Web servers behind TLS 1.0/1.1 only: ask over the legacy path what they serve.
    async fn http_over_legacy_tls(&self, t: &GrabTarget, out: &mut Grabbed) {
        let Some(http) = proto::by_name("http") else {
            return;
        };
        let addr = SocketAddr::new(t.ip, t.port);
        let mut session = (http.make)(session_host("http", t).as_deref());
        let aperture_fingerprints::session::Action::Send(request) = session.start() else {
            return;
        };
        out.attempts += 1;
        let sni = t.hostname.clone();
        let Some(reply) = legacy::legacy_tls_request(
            addr,
            sni.clone(),
            request,
            self.opts.deadline,
            self.opts.byte_cap,
        )
        .await
        else {
            return;
        };
        if session.on_data(&reply) == aperture_fingerprints::session::Action::NoMatch {
            return;
        }
        out.banner = Some(session.banner());
        out.http_response = Some(reply);
        if self.opts.favicon {
            out.extra_connections += 1;
            let host = session_host("http", t).unwrap_or_default();
            let req = format!("GET /favicon.ico HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Aperture\r\nAccept: */*\r\nConnection: close\r\n\r\n");
            out.favicon_response = legacy::legacy_tls_request(
                addr,
                sni,
                req.into_bytes(),
                self.opts.deadline,
                self.opts.byte_cap,
            )
            .await;
        }
    }

    /// The protocol inside a TLS connection: greeting first, else an HTTP request.
    async fn inside_tls(
        &self,
        mut conn: Conn,
        t: &GrabTarget,
        h2: bool,
        until: Instant,
        out: &mut Grabbed,
    ) {
        let mut sniff = Vec::new();
        let wait = (Instant::now() + self.opts.banner_wait / 3).min(until);
        if read_some(&mut conn, &mut sniff, wait, self.opts.byte_cap).await == Read::Data {
            self.server_first(conn, t, sniff, until, out).await;
            return;
        }
        let Some(http) = proto::by_name("http") else {
            return;
        };
        if h2 {
            // The server chose HTTP/2: ask again offering only HTTP/1.1.
            out.attempts += 1;
            let until = self.until();
            let Some(tcp) = connect(SocketAddr::new(t.ip, t.port), until).await else {
                return;
            };
            match handshake(
                tcp,
                self.tls.http1.clone(),
                t.hostname.as_deref(),
                t.ip,
                until,
            )
            .await
            {
                TlsAttempt::Up(stream, _) => conn = Conn::Tls(stream),
                _ => return,
            }
        }
        let mut session = (http.make)(session_host("http", t).as_deref());
        let mut buf = Vec::new();
        let action = session.start();
        let ended = converse(
            &mut conn,
            session.as_mut(),
            action,
            &mut buf,
            until,
            self.opts.byte_cap,
        )
        .await;
        if !matches!(ended, Ended::NoMatch | Ended::Silent | Ended::Closed) {
            self.finish_session(conn, session, ended, buf, t, until, out)
                .await;
        } else {
            out.banner = Some(tls_banner("complete"));
        }
    }

    /// Our own ClientHello (TLS 1.0–1.2, old ciphers too) and the plaintext server
    /// flight it draws: the certificate of servers rustls will not talk to.
    async fn legacy_flight(
        &self,
        mut tcp: TcpStream,
        host: Option<&str>,
        until: Instant,
    ) -> Option<Result<TlsSeen, String>> {
        let hello = legacy_hello(host, crate::entropy::random_bytes());
        timeout_at(until, tcp.write_all(&hello)).await.ok()?.ok()?;
        let mut buf = Vec::new();
        loop {
            let read = read_some(&mut tcp, &mut buf, until, self.opts.byte_cap).await;
            match parse_server_flight(&buf) {
                Flight::Complete(f) => return Some(Ok(seen_from_flight(&f))),
                Flight::Incomplete if read == Read::Data => continue,
                Flight::Incomplete => {
                    // Cut short (deadline, cap, EOF): keep whatever certificates arrived.
                    return partial_server_flight(&buf)
                        .filter(|f| !f.certificates.is_empty())
                        .map(|f| Ok(seen_from_flight(&f)));
                }
                Flight::Alert { description, .. } => {
                    return Some(Err(format!(
                        "alert {}",
                        alert_name(description).unwrap_or("unknown")
                    )))
                }
                Flight::NotTls => return Some(Err("not TLS".into())),
                Flight::Malformed(e) => {
                    return match partial_server_flight(&buf).filter(|f| !f.certificates.is_empty())
                    {
                        Some(f) => Some(Ok(seen_from_flight(&f))),
                        None => Some(Err(format!("malformed TLS: {e}"))),
                    }
                }
                _ => return Some(Err("unrecognised TLS answer".into())),
            }
        }
    }

    /// JARM: ten crafted ClientHellos, one connection each, the answers hashed. As in
    /// the reference implementation, a probe that times out voids the whole hash.
    async fn jarm(&self, t: &GrabTarget, out: &mut Grabbed) {
        if !self.opts.jarm {
            return;
        }
        let host = t.hostname.clone().unwrap_or_else(|| t.ip.to_string());
        let probes = jarm_probes(&host, t.port, &crate::entropy::random_bytes());
        let mut components: [String; 10] = Default::default();
        for (hello, component) in probes.iter().zip(components.iter_mut()) {
            let until = self.until();
            out.extra_connections += 1;
            let Some(mut tcp) = connect(SocketAddr::new(t.ip, t.port), until).await else {
                out.jarm = Some(JARM_ZERO.to_string());
                return;
            };
            if !matches!(timeout_at(until, tcp.write_all(hello)).await, Ok(Ok(()))) {
                out.jarm = Some(JARM_ZERO.to_string());
                return;
            }
            let mut reply = Vec::new();
            loop {
                match read_some(&mut tcp, &mut reply, until, JARM_RECV_LIMIT).await {
                    Read::Data if !jarm_answer_complete(&reply) => continue,
                    Read::TimedOut if reply.is_empty() => {
                        out.jarm = Some(JARM_ZERO.to_string());
                        return;
                    }
                    _ => break,
                }
            }
            *component = jarm_read_server_hello(&reply);
        }
        out.jarm = Some(jarm_hash(&components));
    }

    /// A plain GET on a new connection (TLS if the port was TLS), raw response back.
    async fn fetch(&self, t: &GrabTarget, tls: bool, path: &[u8]) -> Option<Vec<u8>> {
        let until = self.until();
        let tcp = connect(SocketAddr::new(t.ip, t.port), until).await?;
        let mut conn = if tls {
            match handshake(
                tcp,
                self.tls.http1.clone(),
                t.hostname.as_deref(),
                t.ip,
                until,
            )
            .await
            {
                TlsAttempt::Up(s, _) => Conn::Tls(s),
                _ => return None,
            }
        } else {
            Conn::Plain(tcp)
        };
        let host = t.hostname.clone().unwrap_or_else(|| match t.ip {
            IpAddr::V6(a) => format!("[{a}]"),
            IpAddr::V4(a) => a.to_string(),
        });
        let mut req = Vec::with_capacity(128);
        req.extend_from_slice(b"GET ");
        req.extend_from_slice(path);
        req.extend_from_slice(format!(" HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Aperture\r\nAccept: */*\r\nConnection: close\r\n\r\n").as_bytes());
        let sent = async {
            conn.write_all(&req).await?;
            conn.flush().await
        };
        timeout_at(until, sent).await.ok()?.ok()?;
        let mut buf = Vec::new();
        while read_some(&mut conn, &mut buf, until, self.opts.byte_cap).await == Read::Data {}
        (!buf.is_empty()).then_some(buf)
    }
}

/// Grabs many ports with bounded concurrency and paced connection starts, streaming
/// each result (with the caller's payload) as it completes.
pub fn spawn_grab_pool<T: Send + 'static>(
    grabber: Arc<Grabber>,
    concurrency: usize,
    rate: u64,
    mut targets: mpsc::Receiver<(GrabTarget, T)>,
    results: std::sync::mpsc::Sender<(GrabTarget, T, Grabbed)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        let pacer = Arc::new(Pacer::new(rate));
        let mut tasks = tokio::task::JoinSet::new();
        while let Some((target, payload)) = targets.recv().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            pacer.ready().await;
            let (grabber, results) = (grabber.clone(), results.clone());
            tasks.spawn(async move {
                let _permit = permit;
                let grabbed = grabber.grab(&target).await;
                let _ = results.send((target, payload, grabbed));
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    })
}

#[cfg(test)]
mod tests;
