//! The grabber against loopback peers that misbehave in the ways the issue names: a
//! protocol is reported only when its session recognised the bytes, whatever the port.

use super::*;
use crate::grab::report::report;
use aperture_fingerprints::identify::{Identifier, RiskClass};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// What the fake server does with each connection.
#[derive(Clone, Copy)]
enum Peer {
    /// Sends these bytes at once, then closes.
    SendClose(&'static [u8]),
    /// Sends these bytes at once and keeps the connection open a while.
    SendHold(&'static [u8]),
    /// Waits for the client's first bytes, answers, closes.
    Answer(&'static [u8]),
}

async fn serve(peer: Peer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                match peer {
                    Peer::SendClose(b) => {
                        let _ = s.write_all(b).await;
                    }
                    Peer::SendHold(b) => {
                        let _ = s.write_all(b).await;
                        tokio::time::sleep(Duration::from_millis(700)).await;
                    }
                    Peer::Answer(b) => {
                        let mut q = [0u8; 2048];
                        if matches!(s.read(&mut q).await, Ok(n) if n > 0) {
                            let _ = s.write_all(b).await;
                        }
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// Grabs the peer as if it listened on `hint` (only the order of hellos depends on it).
async fn grab_as(peer: Peer, hint: u16) -> (Grabbed, aperture_fingerprints::report::ServiceReport) {
    let addr = serve(peer).await;
    let grabber = Grabber {
        opts: GrabOptions {
            deadline: Duration::from_millis(1500),
            banner_wait: Duration::from_millis(300),
            jarm: false,
            favicon: false,
            ..GrabOptions::default()
        },
        tls: TlsClients::new().expect("tls clients"),
    };
    let target = GrabTarget {
        ip: addr.ip(),
        port: addr.port(),
        hostname: None,
    };
    HINT_PORT.with(|h| h.set(Some(hint)));
    let g = grabber.grab(&target).await;
    HINT_PORT.with(|h| h.set(None));
    let ids = Identifier::builtin().expect("builtin rules");
    let r = report(&g, &target, 1_800_000_000, 30, Some(&ids));
    (g, r)
}

fn assert_unknown(r: &aperture_fingerprints::report::ServiceReport, text: &str) {
    let b = r.banner.as_ref().expect("the bytes are kept");
    assert_eq!(b.protocol, "unknown", "{r:?}");
    assert_eq!(b.text, text);
    assert_eq!(r.service, None, "{r:?}");
    assert_eq!(r.product, None, "{r:?}");
    assert_eq!(r.risk, None, "no risk class from a guess: {r:?}");
}

#[tokio::test]
async fn a_peer_that_closes_while_the_session_waits_is_unknown() {
    // Half an SSH identification, then EOF: SSH was hoped for, never recognised.
    let (_, r) = grab_as(Peer::SendClose(b"SSH-2.0-Open"), 22).await;
    assert_unknown(&r, "SSH-2.0-Open");
    // Half a MySQL handshake packet on the MySQL port.
    let (_, r) = grab_as(Peer::SendClose(b"\x4a\x00\x00\x00\x0a5.7"), 3306).await;
    assert_unknown(&r, "J\\x00\\x00\\x00\\n5.7");
}

#[tokio::test]
async fn unknown_text_on_a_well_known_port_is_unknown() {
    for port in [21, 22, 25, 110, 143, 3306] {
        let (_, r) = grab_as(Peer::SendHold(b"hello there\r\n"), port).await;
        assert_unknown(&r, "hello there\\r\\n");
    }
}

#[tokio::test]
async fn http_on_port_22_is_http() {
    let page: &[u8] = b"HTTP/1.1 403 Forbidden\r\nServer: nginx/1.22.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let (_, r) = grab_as(Peer::Answer(page), 22).await;
    assert_eq!(r.banner.as_ref().map(|b| b.protocol.as_str()), Some("http"));
    assert_eq!(r.product.as_deref(), Some("nginx"));
    assert_eq!(r.version.as_deref(), Some("1.22.1"));
    assert_eq!(r.risk, Some(RiskClass::Web));
}

#[tokio::test]
async fn ssh_on_port_443_is_ssh() {
    let (_, r) = grab_as(
        Peer::SendHold(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"),
        443,
    )
    .await;
    assert_eq!(r.service.as_deref(), Some("ssh"));
    assert_eq!(r.product.as_deref(), Some("OpenSSH"));
    assert_eq!(r.risk, Some(RiskClass::RemoteAdministration));
    assert!(r.tls.is_none());
}

#[tokio::test]
async fn a_reply_no_session_knows_is_kept_but_not_named() {
    // A client-first port (Redis's) answering every hello with the same opaque bytes.
    let (g, r) = grab_as(Peer::Answer(b"\x00\x01ZZ?\xff"), 6379).await;
    assert!(!g.silent);
    assert_unknown(&r, "\\x00\\x01ZZ?\\xff");
}

#[tokio::test]
async fn a_tls_alert_is_still_tls() {
    // handshake_failure (40) to every ClientHello, ours and rustls' alike.
    let alert: &[u8] = b"\x15\x03\x03\x00\x02\x02\x28";
    let (_, r) = grab_as(Peer::Answer(alert), 443).await;
    let b = r.banner.as_ref().expect("banner");
    assert_eq!(b.protocol, "tls", "{r:?}");
    assert_eq!(
        b.fields.get("alert").map(String::as_str),
        Some("handshake_failure")
    );
    assert_eq!(r.service.as_deref(), Some("tls"));
    assert_eq!(r.product, None);
    assert!(r.tls.as_ref().and_then(|t| t.error.as_deref()).is_some());
}

/// A memcached-like peer on an unusual port: "ERROR" to every line it does not know
/// (our TLS and HTTP hellos included), its version to `version`.
async fn memcached_like() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while let Ok(n) = s.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=i).collect();
                        let reply: &[u8] = if line.starts_with(b"version") {
                            b"VERSION 1.6.18\r\n"
                        } else {
                            b"ERROR\r\n"
                        };
                        if s.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn memcached_on_an_unusual_port_is_reached() {
    let addr = memcached_like().await;
    let grabber = Grabber {
        opts: GrabOptions {
            deadline: Duration::from_millis(1500),
            banner_wait: Duration::from_millis(300),
            jarm: false,
            favicon: false,
            ..GrabOptions::default()
        },
        tls: TlsClients::new().expect("tls clients"),
    };
    let target = GrabTarget {
        ip: addr.ip(),
        port: addr.port(),
        hostname: None,
    };
    HINT_PORT.with(|h| h.set(Some(21211)));
    let g = grabber.grab(&target).await;
    HINT_PORT.with(|h| h.set(None));
    let b = g.banner.expect("banner");
    assert_eq!(
        b.protocol, "memcached",
        "{b:?} after {} attempts",
        g.attempts
    );
}

#[tokio::test]
async fn refusing_greetings_are_ftp_or_smtp_with_no_product() {
    for (greeting, port, service, refused) in [
        (
            &b"421 Too many connections\r\n"[..],
            21,
            "ftp",
            "421 Too many connections",
        ),
        (b"530 Access denied\r\n", 21, "ftp", "530 Access denied"),
        (
            b"554 No SMTP service here\r\n",
            25,
            "smtp",
            "554 No SMTP service here",
        ),
        // No port to suggest either: the words decide (SMTP named), else FTP's shape.
        (
            b"554 No SMTP service here\r\n",
            2121,
            "smtp",
            "554 No SMTP service here",
        ),
        (b"530 Access denied\r\n", 2121, "ftp", "530 Access denied"),
    ] {
        let peer = Peer::SendClose(greeting);
        let (g, r) = grab_as(peer, port).await;
        let what = format!("{greeting:?} on {port}: {r:?}");
        assert_eq!(r.service.as_deref(), Some(service), "{what}");
        assert_eq!(r.product, None, "{what}");
        assert_eq!(r.version, None, "{what}");
        let b = g.banner.expect("banner");
        assert_eq!(b.fields.get("refused").map(String::as_str), Some(refused));
        assert_eq!(g.attempts, 1, "the greeting was enough: {what}");
    }
}
