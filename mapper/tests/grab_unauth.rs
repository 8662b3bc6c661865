//! The unauthenticated-access driver over real sockets on 127.0.0.1 (no lab, no root):
//! a small Redis-speaking server answers the grab's `INFO server` and the check's
//! `INFO keyspace` on separate connections (keeping each open, as Redis does), and an
//! FTP one accepts `anonymous` — which only a grab with the login opt-in tries.

use aperture_mapper::grab::tls::TlsClients;
use aperture_mapper::grab::{GrabOptions, GrabTarget, Grabber};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

fn bulk(payload: &str) -> Vec<u8> {
    format!("${}\r\n{payload}\r\n", payload.len()).into_bytes()
}

/// Per connection: its last line, and how long after the answer to it the client hung up.
type Hangups = Arc<Mutex<Vec<(String, Duration)>>>;

/// A line server on 127.0.0.1: answers each line with `reply(line)` (None: say
/// nothing), never closes first. Returns its port, the count of lines seen, and the
/// hang-ups.
async fn serve(
    greeting: &'static [u8],
    reply: fn(&str) -> Option<Vec<u8>>,
) -> (u16, Arc<AtomicUsize>, Hangups) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let port = listener.local_addr().expect("addr").port();
    let lines = Arc::new(AtomicUsize::new(0));
    let hangups: Hangups = Arc::default();
    let (seen, hung) = (lines.clone(), hangups.clone());
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (seen, hung) = (seen.clone(), hung.clone());
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                if !greeting.is_empty() && w.write_all(greeting).await.is_err() {
                    return;
                }
                let mut r = BufReader::new(r);
                let mut line = String::new();
                let (mut last, mut answered) = (String::new(), Instant::now());
                while matches!(r.read_line(&mut line).await, Ok(n) if n > 0) {
                    seen.fetch_add(1, Ordering::SeqCst);
                    last = line.trim_end().to_owned();
                    if let Some(out) = reply(&last) {
                        if w.write_all(&out).await.is_err() {
                            return;
                        }
                        answered = Instant::now();
                    }
                    line.clear();
                }
                if let Ok(mut h) = hung.lock() {
                    h.push((last, answered.elapsed()));
                }
            });
        }
    });
    (port, lines, hangups)
}

fn grabber(login_checks: bool) -> Grabber {
    Grabber {
        opts: GrabOptions {
            deadline: Duration::from_secs(3),
            banner_wait: Duration::from_millis(600),
            jarm: false,
            favicon: false,
            // A random port suggests no protocol: let the grab reach Redis's hello.
            max_silent: 4,
            login_checks,
            ..GrabOptions::default()
        },
        tls: TlsClients::new().expect("tls clients"),
    }
}

fn target(port: u16) -> GrabTarget {
    GrabTarget {
        ip: "127.0.0.1".parse().expect("ip"),
        port,
        hostname: None,
    }
}

#[tokio::test]
async fn redis_without_a_password_is_reported_with_its_keyspace() {
    let (port, _, hangups) = serve(b"", |line| match line {
        "INFO server" => Some(bulk(
            "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n",
        )),
        "INFO keyspace" => Some(bulk("# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n")),
        // Silent to other hellos (TLS, HTTP), so that the grab goes on to Redis's.
        _ => None,
    })
    .await;
    let g = grabber(false).grab(&target(port)).await;
    let u = g
        .unauth
        .clone()
        .unwrap_or_else(|| panic!("a verdict: {g:?}"));
    assert_eq!((u.check.as_str(), u.open), ("redis", true));
    assert_eq!(
        u.evidence,
        "redis INFO: redis_version 7.0.15, 3 keys in db0"
    );
    assert_eq!(g.extra_connections, 1, "one follow-up connection");
    // The check's reply was judged complete as it arrived: the connection was closed
    // long before its 3 s deadline.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let h = hangups.lock().expect("lock").clone();
    let keyspace = h
        .iter()
        .find(|(l, _)| l == "INFO keyspace")
        .expect("the check's connection");
    assert!(keyspace.1 < Duration::from_millis(1500), "{h:?}");
}

#[tokio::test]
async fn redis_asking_for_a_password_is_recorded_closed() {
    let (port, _, _) = serve(b"", |line| {
        line.starts_with("INFO")
            .then(|| b"-NOAUTH Authentication required.\r\n".to_vec())
    })
    .await;
    let g = grabber(false).grab(&target(port)).await;
    let u = g
        .unauth
        .clone()
        .unwrap_or_else(|| panic!("a verdict: {g:?}"));
    assert_eq!((u.check.as_str(), u.open), ("redis", false));
    assert_eq!(
        g.extra_connections, 0,
        "no request beyond the grab's: {g:?}"
    );
}

fn ftp_reply(line: &str) -> Option<Vec<u8>> {
    let out: &[u8] = match line.split(' ').next().unwrap_or_default() {
        "USER" => b"331 Please specify the password.\r\n",
        "PASS" => b"230 Login successful.\r\n",
        "PWD" => b"257 \"/\" is the current directory\r\n",
        "STAT" => b"213-Status follows:\r\n-rw-r--r--    1 0 0 12 Dec 07 13:00 readme.txt\r\n213 End of status\r\n",
        "FEAT" => b"211-Features:\r\n PASV\r\n211 End\r\n",
        _ => b"500 Unknown command.\r\n",
    };
    Some(out.to_vec())
}

#[tokio::test]
async fn anonymous_ftp_is_tried_only_with_the_opt_in() {
    let (port, lines, _) = serve(b"220 (vsFTPd 3.0.3)\r\n", ftp_reply).await;
    let g = grabber(false).grab(&target(port)).await;
    assert_eq!(g.banner.map(|b| b.protocol), Some("ftp".to_owned()));
    assert!(g.unauth.is_none(), "no login without the opt-in");
    let before = lines.load(Ordering::SeqCst);

    let g = grabber(true).grab(&target(port)).await;
    let u = g.unauth.expect("a verdict");
    assert_eq!(
        (u.check.as_str(), u.open, u.login),
        ("ftp-anonymous", true, true)
    );
    assert_eq!(
        u.evidence,
        "ftp anonymous login accepted (230), PWD \"/\", STAT . lists 1 entries"
    );
    assert!(
        lines.load(Ordering::SeqCst) >= before + 4,
        "USER, PASS, PWD, STAT sent"
    );
}
