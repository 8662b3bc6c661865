//! HTTP over TLS 1.0/1.1 for servers rustls will not talk to. rustls has no such old
//! protocol versions (by design), so this one path uses the system OpenSSL at security
//! level 0; everything else is rustls. Blocking I/O on a blocking thread, every read and
//! write under the deadline and the byte cap.

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn exchange(
    addr: SocketAddr,
    sni: Option<&str>,
    request: &[u8],
    deadline: Duration,
    cap: usize,
) -> Option<Vec<u8>> {
    let until = Instant::now() + deadline;
    let mut builder = SslConnector::builder(SslMethod::tls_client()).ok()?;
    builder.set_verify(SslVerifyMode::NONE);
    builder.set_security_level(0);
    builder.set_min_proto_version(Some(SslVersion::TLS1)).ok()?;
    builder.set_cipher_list("ALL:@SECLEVEL=0").ok()?;
    let connector = builder.build();
    let tcp = TcpStream::connect_timeout(&addr, deadline).ok()?;
    let left = || {
        until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    tcp.set_read_timeout(Some(left())).ok()?;
    tcp.set_write_timeout(Some(left())).ok()?;
    let mut config = connector.configure().ok()?;
    config.set_verify_hostname(false);
    config.set_use_server_name_indication(sni.is_some());
    let mut tls = config.connect(sni.unwrap_or("localhost"), tcp).ok()?;
    tls.write_all(request).ok()?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    while out.len() < cap && Instant::now() < until {
        let _ = tls.get_ref().set_read_timeout(Some(left()));
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n.min(cap - out.len())]),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Sends `request` over legacy TLS and returns the raw answer (capped), if any.
pub async fn legacy_tls_request(
    addr: SocketAddr,
    sni: Option<String>,
    request: Vec<u8>,
    deadline: Duration,
    cap: usize,
) -> Option<Vec<u8>> {
    tokio::task::spawn_blocking(move || exchange(addr, sni.as_deref(), &request, deadline, cap))
        .await
        .ok()
        .flatten()
}
