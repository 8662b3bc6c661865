//! Alert delivery throughput: events through the durable outbox of a real
//! `aperture serve` to a webhook receiver on 127.0.0.1 (run by scripts/bench-alerts).
//!
//! Fills a fresh store with a tenant, a signed webhook channel, a rule and `--events`
//! queued `asset.new` events, starts the service on it, and times until the receiver
//! (this program, HTTP/1.1 with keep-alive) has every event; then checks that each
//! arrived once with a valid signature.

use aperture_notify::sign::verify_webhook;
use aperture_notify::{AlertRule, Channel, ChannelKind, Event, EventKind};
use aperture_storage::{Store, TenantId};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "bench-secret-0123456789";

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

#[derive(Default)]
struct Got {
    ids: BTreeSet<String>,
    requests: u64,
    bad_signatures: u64,
}

fn serve_conn(conn: TcpStream, got: &Mutex<Got>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let (mut length, mut sig, mut close) = (0usize, String::new(), false);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.trim_end().split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "x-aperture-signature" => sig = v.trim().to_owned(),
                    "connection" => close = v.trim().eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; length.min(1 << 20)];
        reader.read_exact(&mut body)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        {
            let mut g = got.lock().unwrap_or_else(|p| p.into_inner());
            g.requests += 1;
            if !verify_webhook(SECRET, &sig, &body, now, 300) {
                g.bad_signatures += 1;
            }
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                if let Some(id) = v["id"].as_str() {
                    g.ids.insert(id.to_owned());
                }
            }
        }
        out.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}",
        )?;
        out.flush()?;
        if close {
            return Ok(());
        }
    }
}

fn main() {
    let bin = arg("--bin", "target/release/aperture");
    let events: usize = arg("--events", "5000").parse().expect("--events: a number");
    let concurrency = arg("--concurrency", "16");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");

    let listener = TcpListener::bind("127.0.0.1:0").expect("receiver binds");
    let port = listener.local_addr().expect("bound").port();
    let got = Arc::new(Mutex::new(Got::default()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let g = g.clone();
            std::thread::spawn(move || {
                let _ = serve_conn(conn, &g);
            });
        }
    });

    let fill = Instant::now();
    {
        let store = Store::open(&data).expect("store");
        let t = TenantId::new("acme").expect("tenant id");
        store.create_tenant(&t, "Acme", 0).expect("tenant");
        let channel = Channel {
            id: "hook".into(),
            name: "bench".into(),
            kind: ChannelKind::Webhook,
            url: format!("http://127.0.0.1:{port}/hook"),
            secret: Some(SECRET.into()),
            email: None,
            created: 0,
            created_by: "bench".into(),
            needs_secret: false,
        };
        store.create_channel(&t, &channel).expect("channel");
        let rule = AlertRule {
            id: "all".into(),
            name: "all".into(),
            events: vec![EventKind::AssetNew],
            min_severity: None,
            within_days: None,
            channels: vec!["hook".into()],
            digest_minutes: None,
            quiet_hours: None,
            enabled: true,
        };
        store.put_alert_rule(&t, &rule, true).expect("rule");
        for i in 0..events {
            let e = Event {
                id: format!("acme.bench-{i}"),
                kind: EventKind::AssetNew,
                tenant: "acme".into(),
                at: 0,
                title: "new service".into(),
                severity: None,
                asset: Some(format!("service:198.18.{}.{}:443/tcp", i / 250, i % 250)),
                finding: None,
                detail: Default::default(),
            };
            store.enqueue_event(&t, &e, 0).expect("enqueue");
        }
        store.flush().expect("flush");
    }
    eprintln!(
        "bench-alerts: {events} events queued in {:.1} s",
        fill.elapsed().as_secs_f64()
    );

    let mut child = Command::new(&bin)
        .args(["serve", "--data"])
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .env("APERTURE_ALERT_CONCURRENCY", &concurrency)
        .env("APERTURE_WORKERS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("aperture serve starts");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(600);
    loop {
        let n = got.lock().unwrap_or_else(|p| p.into_inner()).ids.len();
        if n >= events || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let g = got.lock().unwrap_or_else(|p| p.into_inner());
    println!(
        "alerts: {} of {events} events delivered in {secs:.2} s (service start included): {:.0} events/s; {} requests, {} bad signatures; concurrency {concurrency}",
        g.ids.len(),
        g.ids.len() as f64 / secs,
        g.requests,
        g.bad_signatures,
    );
    if g.ids.len() < events || g.bad_signatures > 0 {
        std::process::exit(1);
    }
}
