//! The hostile services of the portal's browser test: loopback listeners whose HTTP
//! title, Server header, banner and certificate subject/SAN are HTML/script payloads,
//! and a page of another origin that posts a forged form at the portal.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the hostile HTTP service puts in its <title> and Server header. If any of it
/// ran, it would set `data-pwned` on the document element; if it were parsed as markup,
/// the page would gain a <script> or <img> element.
pub const TITLE: &str = "<script>document.documentElement.dataset.pwned='title'</script><img src=x onerror=\"document.documentElement.dataset.pwned='img'\">";
pub const SERVER: &str = "<svg/onload=document.documentElement.dataset.pwned='server'>";
/// The first line the hostile banner service sends.
pub const BANNER: &str = "220 <iframe src=javascript:parent.document.documentElement.dataset.pwned='banner'></iframe> ready";

/// A loopback listener answering every connection with `answer(request)`, until stopped.
pub struct Listener {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Listener {
    pub fn start(answer: fn(&str, u16) -> Vec<u8>, read_first: bool) -> Listener {
        Self::with(move |s, port| serve_one(s, answer, read_first, port))
    }

    pub fn with(handle: impl Fn(TcpStream, u16) + Send + Sync + Copy + 'static) -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        l.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        std::thread::spawn(move || handle(s, port));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Listener { port, stop }
    }

    /// Closes the port: connections are refused from now on.
    pub fn close(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "port {} still open", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

pub fn serve_one(mut s: TcpStream, answer: fn(&str, u16) -> Vec<u8>, read_first: bool, port: u16) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let mut req = String::new();
    if read_first {
        let mut buf = [0u8; 8192];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < buf.len() {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        req = String::from_utf8_lossy(&got).into_owned();
    }
    let _ = s.write_all(&answer(&req, port));
    let _ = s.flush();
}

/// The subject CN and a DNS SAN of the hostile TLS service's certificate.
pub const CERT_CN: &str = "<script>document.documentElement.dataset.pwned='cn'</script>";
pub const CERT_SAN: &str = "<b onmouseover=alert(1)>x</b>.example";

static TLS: std::sync::OnceLock<Arc<rustls::ServerConfig>> = std::sync::OnceLock::new();

pub fn tls_config() -> Arc<rustls::ServerConfig> {
    TLS.get_or_init(|| {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec![CERT_SAN.to_owned()]).expect("cert params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, CERT_CN);
        let cert = params.self_signed(&key).expect("certificate");
        let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)
        .expect("server config");
        Arc::new(config)
    })
    .clone()
}

/// TLS with the hostile certificate, then a plain HTTP answer.
pub fn hostile_tls(s: TcpStream, port: u16) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let Ok(conn) = rustls::ServerConnection::new(tls_config()) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, s);
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < buf.len() {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let body = format!("<html><head><title>tls {port}</title></head></html>");
    let _ = write!(
        tls,
        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

pub fn hostile_http(req: &str, _: u16) -> Vec<u8> {
    if req.starts_with("GET /favicon.ico") {
        return b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec();
    }
    let body = format!("<html><head><title>{TITLE}</title></head><body>hi</body></html>");
    format!(
        "HTTP/1.0 200 OK\r\nServer: {SERVER}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub fn hostile_banner(_: &str, _: u16) -> Vec<u8> {
    format!("{BANNER}\r\n").into_bytes()
}

pub fn other_tenant_http(_: &str, _: u16) -> Vec<u8> {
    let body = "<html><head><title>other tenant secret</title></head></html>";
    format!(
        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A page of another origin that posts a form at the portal as soon as it loads.
pub fn attacker_page(_: &str, _: u16) -> Vec<u8> {
    let target = ATTACK_TARGET.get().cloned().unwrap_or_default();
    let body = format!(
        "<html><body><form id=f method=post action=\"{target}\">\
         <input type=hidden name=_csrf value=guessed>\
         <input type=hidden name=action value=comment>\
         <input type=hidden name=comment value=\"forged by another site\"></form>\
         <script>document.getElementById('f').submit()</script></body></html>"
    );
    format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub static ATTACK_TARGET: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The zone the hostile DNS responder serves, and the TXT record its apex and `www`
/// carry: if it ran it would set `data-pwned`; parsed as markup, it would add elements.
pub const DNS_ZONE: &str = "hostile.test";
pub const TXT_PAYLOAD: &str = "<script>document.documentElement.dataset.pwned='txt'</script><img src=x onerror=\"document.documentElement.dataset.pwned='txt-img'\">";

/// A DNS responder on 127.0.0.1 (UDP) for [`DNS_ZONE`]: the apex and `www` have an A
/// record (127.0.0.3) and the hostile TXT; every other name is NXDOMAIN. Stops when
/// dropped.
pub struct DnsResponder {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl DnsResponder {
    pub fn start() -> DnsResponder {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind dns");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let port = sock.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !halt.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(answer) = dns_answer(buf.get(..n).unwrap_or_default()) {
                    let _ = sock.send_to(&answer, from);
                }
            }
        });
        DnsResponder { port, stop }
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
    use hickory_resolver::proto::rr::rdata::{A, TXT};
    use hickory_resolver::proto::rr::{RData, Record, RecordType};
    use hickory_resolver::proto::serialize::binary::{BinDecodable, BinEncodable};
    let req = Message::from_bytes(query).ok()?;
    let q = req.queries().first()?.clone();
    let name = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let mut resp = Message::new();
    resp.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(req.op_code())
        .set_recursion_desired(req.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    resp.add_query(q.clone());
    if name != DNS_ZONE && name != format!("www.{DNS_ZONE}") {
        resp.set_response_code(ResponseCode::NXDomain);
        return resp.to_bytes().ok();
    }
    let rdata = match q.query_type() {
        RecordType::A => Some(RData::A(A::new(127, 0, 0, 3))),
        RecordType::TXT => Some(RData::TXT(TXT::new(vec![TXT_PAYLOAD.to_owned()]))),
        _ => None,
    };
    if let Some(r) = rdata {
        resp.add_answer(Record::from_rdata(q.name().clone(), 60, r));
    }
    resp.to_bytes().ok()
}
