//! TLS handshakes with certificate summaries per second against one server, the way
//! `aperture scan --grab` does them (rustls, accept-any verifier, no resumption, a
//! summary of every certificate in the chain). Used by scripts/bench-grab.
//!
//!     tls_rate ADDRESS:PORT [SECONDS] [CONCURRENCY] [SNI]

use aperture_fingerprints::cert::summarize;
use aperture_mapper::grab::tls::{server_name, TlsClients};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn usage() -> ! {
    eprintln!("usage: tls_rate ADDRESS:PORT [SECONDS] [CONCURRENCY] [SNI]");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(addr) = args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()) else {
        usage()
    };
    let seconds: f64 = args
        .get(2)
        .map(|s| s.parse().unwrap_or_else(|_| usage()))
        .unwrap_or(10.0);
    let concurrency: usize = args
        .get(3)
        .map(|s| s.parse().unwrap_or_else(|_| usage()))
        .unwrap_or(64);
    let sni = args.get(4).cloned();
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        eprintln!("cannot start runtime");
        std::process::exit(1)
    };
    let Ok(clients) = TlsClients::new() else {
        eprintln!("cannot set up TLS");
        std::process::exit(1)
    };
    let ok = Arc::new(AtomicU64::new(0));
    let summaries = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..concurrency.max(1) {
            let (ok, summaries, errors, stop) =
                (ok.clone(), summaries.clone(), errors.clone(), stop.clone());
            let connector = TlsConnector::from(clients.observe.clone());
            let sni = sni.clone();
            tasks.push(tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    let attempt = async {
                        let tcp = TcpStream::connect(addr).await.ok()?;
                        let tls = connector
                            .connect(server_name(sni.as_deref(), addr.ip()), tcp)
                            .await
                            .ok()?;
                        let now = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map(|d| d.as_secs() as i64)
                            .unwrap_or(0);
                        let chain = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .map(|c| c.to_vec())
                            .unwrap_or_default();
                        let mut n = 0;
                        for (i, der) in chain.iter().enumerate() {
                            if summarize(der.as_ref(), i, now, sni.as_deref(), 30).is_ok() {
                                n += 1;
                            }
                        }
                        Some(n)
                    };
                    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                        Ok(Some(n)) => {
                            ok.fetch_add(1, Relaxed);
                            summaries.fetch_add(n, Relaxed);
                        }
                        _ => {
                            errors.fetch_add(1, Relaxed);
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        stop.store(true, Relaxed);
        for t in tasks {
            let _ = t.await;
        }
    });
    let elapsed = began.elapsed().as_secs_f64();
    let n = ok.load(Relaxed);
    println!(
        "handshakes={n} certificate_summaries={} errors={} seconds={elapsed:.2} rate={:.0}/s",
        summaries.load(Relaxed),
        errors.load(Relaxed),
        n as f64 / elapsed
    );
}
