//! The connect engine: full TCP handshakes through the kernel, for hosts where raw
//! sockets are not allowed and for IPv6. Bounded concurrency, a per-attempt timeout,
//! the same permutation, shards and pacing as the SYN engine.

use crate::engine::{Finished, Hit, HitSink, Progress, Segments, SendGuard, HOLD_BACK};
use crate::error::EngineError;
use crate::pace::{RateHandle, Throttle};
use crate::permute::Permutation;
use crate::space::TargetSpace;
use aperture_fingerprints::{PortState, Reason};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Debug, Clone)]
pub struct ConnectRun {
    pub space: Arc<TargetSpace>,
    pub order: Permutation,
    /// Positions of the permuted order to probe, as ascending, disjoint ranges probed one
    /// after another (see [`crate::syn::SynRun::segments`]).
    pub segments: Vec<(u64, u64)>,
    pub guard: Arc<SendGuard>,
    pub retries: u32,
    pub timeout: Duration,
    pub concurrency: usize,
    /// Attempts per second; may change while the run goes on (0 pauses it).
    pub rate: RateHandle,
    /// At most this many attempts a second to any one IPv4 /24 or IPv6 /64.
    pub per_net_rate: Option<u32>,
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

/// Per segment: attempts still running, and whether all of them were started.
#[derive(Debug, Default)]
struct Tally {
    running: usize,
    all_started: bool,
    done: bool,
}

/// Which segments are through: a segment is done when its last attempt has ended.
#[derive(Debug)]
struct Book(Mutex<Vec<Tally>>);

impl Book {
    fn change(&self, segment: usize, f: impl FnOnce(&mut Tally)) -> bool {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = all.get_mut(segment) else {
            return false;
        };
        f(t);
        // Reported once, by whoever sees the segment finish.
        let now_done = !t.done && t.all_started && t.running == 0;
        t.done |= now_done;
        now_done
    }
}

pub async fn run_connect<S: HitSink + Send + 'static>(
    run: ConnectRun,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    sink: Arc<S>,
) -> Result<Finished, EngineError> {
    let segments = Segments::new(&run.segments, run.space.size())?;
    progress.total.store(segments.probes(), Relaxed);
    progress.position.store(
        segments.ranges().first().map_or(0, |&(start, _)| start),
        Relaxed,
    );
    let book = Arc::new(Book(Mutex::new(
        segments.ranges().iter().map(|_| Tally::default()).collect(),
    )));
    let mut throttle = Throttle::new(run.rate.clone(), run.per_net_rate);
    let slots = Arc::new(Semaphore::new(run.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let began = Instant::now();
    let mut held = Duration::ZERO;
    let mut interrupted_at = None;
    'segments: for (segment, &(start, end)) in segments.ranges().iter().enumerate() {
        if !sink.may_start(segment) {
            let since = Instant::now();
            while !sink.may_start(segment) {
                if stop.load(Relaxed) {
                    interrupted_at = Some(start);
                    break 'segments;
                }
                tokio::time::sleep(HOLD_BACK).await;
            }
            held += since.elapsed();
        }
        for pos in start..end {
            if stop.load(Relaxed) {
                interrupted_at = Some(pos);
                break 'segments;
            }
            let Some((ip, port)) = run.space.target(run.order.at(pos)) else {
                continue;
            };
            if !run.guard.permits(ip) {
                progress.refused.fetch_add(1, Relaxed);
                continue;
            }
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break 'segments;
            };
            // A network over its cap, or a pause, holds the next attempt back here.
            if !throttle.ready(ip, &stop).await {
                interrupted_at = Some(pos);
                break 'segments;
            }
            book.change(segment, |t| t.running += 1);
            let (task_progress, sink, book, timeout, retries, show_closed) = (
                progress.clone(),
                sink.clone(),
                book.clone(),
                run.timeout,
                run.retries,
                run.show_closed,
            );
            tasks.spawn(async move {
                let progress = task_progress;
                let _permit = permit;
                let addr = SocketAddr::new(ip, port);
                let mut answered = false;
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
                        let _ = sink.hit(
                            segment,
                            Hit {
                                ip,
                                port,
                                state,
                                reason,
                                ttl: None,
                                at: SystemTime::now(),
                                data: None,
                                reply_len: 0,
                            },
                        );
                    }
                    answered = true;
                    break;
                }
                if !answered {
                    progress.timeouts.fetch_add(1, Relaxed);
                }
                // After the result went out: a segment is done after its results.
                if book.change(segment, |t| t.running -= 1) {
                    sink.segment_done(segment);
                }
            });
            while tasks.try_join_next().is_some() {}
            progress.position.store(pos + 1, Relaxed);
        }
        if book.change(segment, |t| t.all_started = true) {
            sink.segment_done(segment);
        }
    }
    while tasks.join_next().await.is_some() {}
    progress.done_sending.store(true, Relaxed);
    Ok(Finished {
        interrupted_at,
        send_time: began.elapsed().saturating_sub(held + throttle.paused()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intervals::IntervalSet;
    use std::net::{Ipv4Addr, TcpListener};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Event {
        Hit(usize, u16, PortState),
        Done(usize),
    }

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<Event>>);

    impl HitSink for Recorder {
        fn hit(&self, segment: usize, hit: Hit) -> bool {
            self.0
                .lock()
                .expect("lock")
                .push(Event::Hit(segment, hit.port, hit.state));
            true
        }

        fn segment_done(&self, segment: usize) {
            self.0.lock().expect("lock").push(Event::Done(segment));
        }
    }

    /// Loopback only: listeners of this test on 127.0.0.1, and ports of closed ones.
    #[test]
    fn each_segment_is_done_once_after_its_results() {
        let open: Vec<TcpListener> = (0..6)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let closed: Vec<u16> = (0..6)
            .map(|_| {
                let l = TcpListener::bind("127.0.0.1:0").expect("bind");
                l.local_addr().expect("addr").port()
            })
            .collect();
        let open_ports: Vec<u16> = open
            .iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect();
        let mut ports: Vec<u16> = open_ports.iter().chain(&closed).copied().collect();
        ports.sort_unstable();
        let lo = u32::from(Ipv4Addr::LOCALHOST);
        let space = Arc::new(
            TargetSpace::new(
                IntervalSet::from_ranges([(lo, lo)]),
                IntervalSet::new(),
                ports,
            )
            .expect("space"),
        );
        let run = ConnectRun {
            space: space.clone(),
            order: Permutation::new(space.size(), 3),
            // The middle third was done before: the run covers the rest.
            segments: vec![(0, 4), (8, 10), (10, 12)],
            guard: Arc::new(SendGuard::default()),
            retries: 0,
            timeout: Duration::from_secs(2),
            concurrency: 4,
            rate: RateHandle::new(10_000),
            per_net_rate: None,
            show_closed: true,
        };
        let order = run.order;
        let segments = run.segments.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let sink = Arc::new(Recorder::default());
        let progress = Arc::new(Progress::default());
        let f = rt
            .block_on(run_connect(
                run,
                progress.clone(),
                Arc::new(AtomicBool::new(false)),
                sink.clone(),
            ))
            .expect("runs");
        assert!(f.interrupted_at.is_none());
        let events = sink.0.lock().expect("lock").clone();
        let done: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                Event::Done(s) => Some(*s),
                Event::Hit(..) => None,
            })
            .collect();
        let mut sorted = done.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2], "every segment done once");
        for (i, e) in events.iter().enumerate() {
            let Event::Hit(segment, port, state) = *e else {
                continue;
            };
            let (start, end) = segments[segment];
            let pos = (start..end)
                .find(|&p| space.target(order.at(p)).map(|(_, q)| q) == Some(port))
                .expect("a result of one of its segment's probes");
            assert!(pos < end);
            assert!(
                !events[..i].contains(&Event::Done(segment)),
                "no result after its segment is done"
            );
            assert_eq!(state == PortState::Open, open_ports.contains(&port));
        }
        let hits = events.len() - done.len();
        assert_eq!(hits, 8, "every probe of the segments answered");
        assert_eq!(Progress::get(&progress.total), 8);
    }
}
