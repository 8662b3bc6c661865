//! A webhook receiver for alert tests, on 127.0.0.1: records every request, answers with
//! a status the test chooses (after a delay it chooses), and can go down (its listening
//! socket closed, so connections are refused) and come back on the same port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Received {
    /// Path and query.
    pub target: String,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body to {} is not JSON ({e}): {}",
                self.target,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Debug, Default)]
struct Shared {
    got: Mutex<Vec<Received>>,
    status: AtomicU16,
    delay_ms: AtomicU64,
    down: AtomicBool,
    stop: AtomicBool,
}

#[derive(Debug)]
pub struct Receiver {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("receiver binds");
        let port = listener.local_addr().expect("bound").port();
        let shared = Arc::new(Shared::default());
        shared.status.store(200, Ordering::SeqCst);
        let s = shared.clone();
        std::thread::spawn(move || serve(listener, port, &s));
        Receiver { port, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn got(&self) -> Vec<Received> {
        self.shared
            .got
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn to(&self, path: &str) -> Vec<Received> {
        self.got()
            .into_iter()
            .filter(|r| r.target.split('?').next() == Some(path))
            .collect()
    }

    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    pub fn set_delay(&self, ms: u64) {
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Closes the listening socket (connections are refused) or opens it again.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
        // The accept loop polls every 10 ms.
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(listener: TcpListener, port: u16, shared: &Arc<Shared>) {
    let mut listener = Some(listener);
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.down.load(Ordering::SeqCst) {
            listener = None;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        if listener.is_none() {
            listener = TcpListener::bind(("127.0.0.1", port)).ok();
        }
        let Some(l) = &listener else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = l.set_nonblocking(true);
        match l.accept() {
            Ok((conn, _)) => {
                let s = shared.clone();
                std::thread::spawn(move || {
                    let _ = handle(conn, &s);
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn handle(conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
            if k == "content-length" {
                length = v.parse().unwrap_or(0);
            }
            headers.push((k, v));
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        std::thread::sleep(Duration::from_millis(delay));
    }
    let status = shared.status.load(Ordering::SeqCst);
    // Recorded only when answered: a request the service gave up on (time-out) was not
    // taken, as with a real receiver that failed mid-way.
    let answer = if status == 200 {
        r#"{"errcode":0,"errmsg":"ok","code":0}"#
    } else {
        r#"{"error":"unavailable"}"#
    };
    let mut out = conn;
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    )?;
    out.flush()?;
    if status == 200 {
        shared
            .got
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Received {
                target,
                headers,
                body,
            });
    }
    Ok(())
}
