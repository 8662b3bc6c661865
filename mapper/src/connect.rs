//! The connect engine: full TCP handshakes through the kernel, for hosts where raw
//! sockets are not allowed and for IPv6. Bounded concurrency, a per-attempt timeout,
//! the same permutation, shards and pacing as the SYN engine.

use crate::engine::{Finished, Hit, Progress, SendGuard};
use crate::pace::Pacer;
use crate::permute::Permutation;
use crate::space::TargetSpace;
use aperture_fingerprints::{PortState, Reason};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Debug, Clone)]
pub struct ConnectRun {
    pub space: Arc<TargetSpace>,
    pub order: Permutation,
    pub start: u64,
    pub end: u64,
    pub guard: Arc<SendGuard>,
    pub retries: u32,
    pub timeout: Duration,
    pub concurrency: usize,
    pub rate: u64,
    pub show_closed: bool,
}

enum Outcome {
    Open,
    Closed,
    NoAnswer,
}

async fn attempt(addr: SocketAddr, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            // Close with RST: no TIME_WAIT pile-up on our side, no lingering on theirs.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            Outcome::Open
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Outcome::Closed,
        _ => Outcome::NoAnswer,
    }
}

pub async fn run_connect(
    run: ConnectRun,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    hits: mpsc::Sender<Hit>,
) -> Finished {
    progress
        .total
        .store(run.end.saturating_sub(run.start), Relaxed);
    progress.position.store(run.start, Relaxed);
    let pacer = Arc::new(Pacer::new(run.rate));
    let slots = Arc::new(Semaphore::new(run.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let began = Instant::now();
    let mut interrupted_at = None;
    for pos in run.start..run.end {
        if stop.load(Relaxed) {
            interrupted_at = Some(pos);
            break;
        }
        let Some((ip, port)) = run.space.target(run.order.at(pos)) else {
            continue;
        };
        if !run.guard.permits(ip) {
            progress.refused.fetch_add(1, Relaxed);
            continue;
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        pacer.ready().await;
        let (task_progress, hits, timeout, retries, show_closed) = (
            progress.clone(),
            hits.clone(),
            run.timeout,
            run.retries,
            run.show_closed,
        );
        tasks.spawn(async move {
            let progress = task_progress;
            let _permit = permit;
            let addr = SocketAddr::new(ip, port);
            for _ in 0..=retries {
                progress.sent.fetch_add(1, Relaxed);
                let (state, reason) = match attempt(addr, timeout).await {
                    Outcome::Open => (PortState::Open, Reason::Connected),
                    Outcome::Closed => (PortState::Closed, Reason::Refused),
                    Outcome::NoAnswer => continue,
                };
                let counter = if state == PortState::Open {
                    &progress.open
                } else {
                    &progress.closed
                };
                counter.fetch_add(1, Relaxed);
                if state == PortState::Open || show_closed {
                    let _ = hits.send(Hit {
                        ip,
                        port,
                        state,
                        reason,
                        ttl: None,
                        at: SystemTime::now(),
                    });
                }
                return;
            }
            progress.timeouts.fetch_add(1, Relaxed);
        });
        while tasks.try_join_next().is_some() {}
        progress.position.store(pos + 1, Relaxed);
    }
    while tasks.join_next().await.is_some() {}
    progress.done_sending.store(true, Relaxed);
    Finished {
        interrupted_at,
        send_time: began.elapsed(),
    }
}
