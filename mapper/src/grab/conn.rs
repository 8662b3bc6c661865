//! Byte plumbing for grabbing: one connection type over plain TCP or TLS, bounded reads,
//! and the loop that runs a `Session` on a connection.

use aperture_fingerprints::session::{Action, Session};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::client::TlsStream;

/// A connection that may have been upgraded to TLS (directly or by STARTTLS).
#[allow(missing_debug_implementations)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, data),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Data,
    /// The byte cap is reached: stop reading, decide with what is there.
    Full,
    Eof,
    TimedOut,
}

/// Reads what is available (at least one byte) into `buf`, never past `cap`.
pub async fn read_some<R: AsyncRead + Unpin>(
    conn: &mut R,
    buf: &mut Vec<u8>,
    until: Instant,
    cap: usize,
) -> Read {
    if buf.len() >= cap {
        return Read::Full;
    }
    let mut chunk = [0u8; 8192];
    let want = chunk.len().min(cap - buf.len());
    match timeout_at(until, conn.read(&mut chunk[..want])).await {
        Err(_) => Read::TimedOut,
        Ok(Ok(0)) | Ok(Err(_)) => Read::Eof,
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            Read::Data
        }
    }
}

/// How a conversation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The session recognised its protocol and finished.
    Done,
    /// The session recognised its protocol; the peer stopped early (EOF, deadline or
    /// cap) but what was learned stands.
    Partial,
    /// STARTTLS accepted: upgrade, then continue with `after_tls`.
    StartTls,
    NoMatch,
    /// Nothing came back at all before the deadline.
    Silent,
    /// The peer closed without a byte: it reacted to our hello (a server of another
    /// client-first protocol does that), so the port is not silent.
    Closed,
}

/// Runs `session` from `action`; `buf` holds bytes already received and not yet shown
/// to the session (the sniffed banner of a server-first protocol). On return `buf`
/// holds the last reply (for callers that parse it further, like HTTP facts).
pub async fn converse<R: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut R,
    session: &mut dyn Session,
    mut action: Action,
    buf: &mut Vec<u8>,
    until: Instant,
    cap: usize,
) -> Ended {
    let mut heard = !buf.is_empty();
    if action == Action::NeedMore && !buf.is_empty() {
        action = session.on_data(buf);
    }
    loop {
        match action {
            Action::Send(bytes) => {
                // TLS buffers writes: flush so the request actually leaves.
                let sent = async {
                    conn.write_all(&bytes).await?;
                    conn.flush().await
                };
                match timeout_at(until, sent).await {
                    Ok(Ok(())) => {}
                    _ => return if heard { Ended::Partial } else { Ended::Silent },
                }
                buf.clear();
                match read_some(conn, buf, until, cap).await {
                    Read::Data | Read::Full => {
                        heard = true;
                        action = session.on_data(buf);
                    }
                    Read::Eof if !heard => return Ended::Closed,
                    Read::Eof | Read::TimedOut => {
                        return if heard { Ended::Partial } else { Ended::Silent }
                    }
                }
            }
            Action::NeedMore => match read_some(conn, buf, until, cap).await {
                Read::Data => {
                    heard = true;
                    action = session.on_data(buf);
                }
                Read::Full => return Ended::Partial,
                Read::Eof | Read::TimedOut => {
                    return if heard { Ended::Partial } else { Ended::Silent }
                }
            },
            Action::StartTls => return Ended::StartTls,
            Action::Done => return Ended::Done,
            Action::NoMatch => return Ended::NoMatch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aperture_fingerprints::session::Banner;
    use std::time::Duration;
    use tokio::io::duplex;

    /// A server-first toy protocol: greeting line starting "HI", then "VER?" → "V 1.2".
    struct Toy {
        greeted: bool,
        version: Option<String>,
    }

    impl Session for Toy {
        fn protocol(&self) -> &'static str {
            "toy"
        }
        fn start(&mut self) -> Action {
            Action::NeedMore
        }
        fn on_data(&mut self, data: &[u8]) -> Action {
            if !self.greeted {
                if !b"HI".starts_with(&data[..data.len().min(2)]) {
                    return Action::NoMatch;
                }
                if !data.ends_with(b"\n") {
                    return Action::NeedMore;
                }
                self.greeted = true;
                return Action::Send(b"VER?\n".to_vec());
            }
            match data.strip_suffix(b"\n") {
                Some(line) => {
                    self.version = Some(String::from_utf8_lossy(line).into_owned());
                    Action::Done
                }
                None => Action::NeedMore,
            }
        }
        fn banner(&self) -> Banner {
            Banner {
                protocol: "toy".into(),
                text: self.version.clone().unwrap_or_default(),
                ..Banner::default()
            }
        }
    }

    fn toy() -> Toy {
        Toy {
            greeted: false,
            version: None,
        }
    }

    #[tokio::test]
    async fn a_conversation_in_fragments() {
        let (mut client, mut server) = duplex(1024);
        tokio::spawn(async move {
            for b in b"HI there\n" {
                let _ = server.write_all(&[*b]).await;
            }
            let mut q = [0u8; 5];
            let _ = server.read_exact(&mut q).await;
            let _ = server.write_all(b"V 1.").await;
            let _ = server.write_all(b"2\n").await;
        });
        let mut s = toy();
        let mut buf = Vec::new();
        let until = Instant::now() + Duration::from_secs(2);
        let ended = converse(&mut client, &mut s, Action::NeedMore, &mut buf, until, 1024).await;
        assert_eq!(ended, Ended::Done);
        assert_eq!(s.banner().text, "V 1.2");
    }

    #[tokio::test]
    async fn other_protocols_are_refused_at_once() {
        let (mut client, mut server) = duplex(1024);
        tokio::spawn(async move {
            let _ = server.write_all(b"SSH-2.0-x\r\n").await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let mut buf = Vec::new();
        let until = Instant::now() + Duration::from_secs(3);
        let t0 = Instant::now();
        let ended = converse(
            &mut client,
            &mut toy(),
            Action::NeedMore,
            &mut buf,
            until,
            1024,
        )
        .await;
        assert_eq!(ended, Ended::NoMatch);
        assert!(t0.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test]
    async fn silent_and_dripping_peers_end_at_the_deadline() {
        let (mut client, _server_kept_open) = duplex(1024);
        let deadline = Duration::from_millis(300);
        let t0 = Instant::now();
        let ended = converse(
            &mut client,
            &mut toy(),
            Action::NeedMore,
            &mut Vec::new(),
            t0 + deadline,
            1024,
        )
        .await;
        assert_eq!(ended, Ended::Silent);
        assert!(t0.elapsed() < deadline + Duration::from_millis(200));

        let (mut client, mut server) = duplex(1024);
        tokio::spawn(async move {
            for b in b"HI drip drip drip" {
                if server.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let t0 = Instant::now();
        let ended = converse(
            &mut client,
            &mut toy(),
            Action::NeedMore,
            &mut Vec::new(),
            t0 + deadline,
            1024,
        )
        .await;
        assert_eq!(ended, Ended::Partial);
        assert!(t0.elapsed() < deadline + Duration::from_millis(200));
    }

    #[tokio::test]
    async fn an_endless_stream_stops_at_the_byte_cap() {
        let (mut client, mut server) = duplex(64 * 1024);
        tokio::spawn(async move {
            let _ = server.write_all(b"HI").await;
            let chunk = [b'x'; 4096];
            while server.write_all(&chunk).await.is_ok() {}
        });
        let mut buf = Vec::new();
        let until = Instant::now() + Duration::from_secs(5);
        let ended = converse(
            &mut client,
            &mut toy(),
            Action::NeedMore,
            &mut buf,
            until,
            16 * 1024,
        )
        .await;
        assert_eq!(ended, Ended::Partial);
        assert_eq!(buf.len(), 16 * 1024, "never more than the cap");
    }
}
