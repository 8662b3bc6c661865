//! Runs the unauthenticated-access check that fits what the grab identified
//! (`aperture_fingerprints::unauth`): opens the connections it asks for, sends its
//! bytes, reads each reply until the check calls it complete (or end of stream, the
//! deadline, the byte cap), and keeps its verdict. Each connection has its own deadline
//! and counts as an extra connection of the grab.

use super::conn::{read_some, Conn, Read};
use super::{connect, handshake, session_host, GrabTarget, Grabbed, Grabber, TlsAttempt};
use aperture_fingerprints::unauth::{plan, Seen, Step, MAX_STEPS};
use std::net::{IpAddr, SocketAddr};
use tokio::io::AsyncWriteExt;
use tokio::time::{timeout_at, Instant};

impl Grabber {
    pub(super) async fn unauth(&self, t: &GrabTarget, out: &mut Grabbed) {
        let Some(banner) = out.banner.as_ref() else {
            return;
        };
        // Ports reached only through our legacy TLS hello or STARTTLS are left alone:
        // a follow-up could not speak to them the same way.
        let tls = match &out.tls {
            None => false,
            Some(s) if s.legacy || s.starttls || s.error.is_some() => return,
            Some(_) => true,
        };
        let host = session_host("http", t).unwrap_or_else(|| match t.ip {
            IpAddr::V6(a) => format!("[{a}]"),
            IpAddr::V4(a) => a.to_string(),
        });
        let seen = Seen {
            banner,
            http_response: out.http_response.as_deref(),
            host: &host,
            login_checks: self.opts.login_checks,
        };
        let Some(mut check) = plan(&seen) else {
            return;
        };
        let mut step = check.first();
        let mut conn: Option<(Conn, Instant)> = None;
        for _ in 0..MAX_STEPS {
            let (bytes, fresh) = match step {
                Step::Done(verdict) => {
                    out.unauth = verdict;
                    break;
                }
                Step::Connect(b) => (b, true),
                Step::Send(b) => (b, false),
            };
            if fresh {
                if let Some((mut c, _)) = conn.take() {
                    let _ = c.shutdown().await;
                }
                out.extra_connections += 1;
                let until = self.until();
                let Some(c) = self.open(t, tls, until).await else {
                    break;
                };
                conn = Some((c, until));
            }
            let Some((c, until)) = conn.as_mut() else {
                break;
            };
            let until = *until;
            if !bytes.is_empty() {
                let sent = async {
                    c.write_all(&bytes).await?;
                    c.flush().await
                };
                if !matches!(timeout_at(until, sent).await, Ok(Ok(()))) {
                    break;
                }
            }
            let mut reply = Vec::new();
            while !check.complete(&reply) {
                if read_some(c, &mut reply, until, self.opts.byte_cap).await != Read::Data {
                    break;
                }
            }
            step = check.on_reply(&reply);
        }
        if let Some((mut c, _)) = conn {
            let _ = c.shutdown().await;
        }
    }

    async fn open(&self, t: &GrabTarget, tls: bool, until: Instant) -> Option<Conn> {
        let tcp = connect(SocketAddr::new(t.ip, t.port), until).await?;
        if !tls {
            return Some(Conn::Plain(tcp));
        }
        match handshake(
            tcp,
            self.tls.http1.clone(),
            t.hostname.as_deref(),
            t.ip,
            until,
        )
        .await
        {
            TlsAttempt::Up(s, _) => Some(Conn::Tls(s)),
            _ => None,
        }
    }
}
