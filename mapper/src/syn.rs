//! The stateless SYN engine: one thread sends templated probes in permuted order, one
//! thread drains replies and validates them by cookie. No table of outstanding probes
//! exists, so memory does not grow with the target space (only with open ports found).

use crate::engine::{Finished, Hit, Progress, SendGuard};
use crate::error::EngineError;
use crate::pace::Pacer;
use crate::packet_io::{FrameReceiver, FrameSender, RecvBatch, SendBatch};
use crate::permute::Permutation;
use crate::probe::{ProbeModule, Verdict};
use crate::space::TargetSpace;
use aperture_fingerprints::PortState;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone)]
pub struct SynRun<'a> {
    pub space: &'a TargetSpace,
    pub order: Permutation,
    /// Positions `[start, end)` of the permuted order: a shard, or its unfinished tail.
    pub start: u64,
    pub end: u64,
    pub guard: &'a SendGuard,
    /// Extra passes over the range; replies are de-duplicated.
    pub retries: u32,
    /// Cooldown after the last probe, for late replies.
    pub wait: Duration,
    pub rate: u64,
    pub show_closed: bool,
}

/// Runs a SYN scan to completion (or until `stop`), sending hits as they arrive.
pub fn run_syn(
    run: &SynRun<'_>,
    probe: &dyn ProbeModule,
    sender: &mut dyn FrameSender,
    receiver: impl FrameReceiver,
    progress: &Progress,
    stop: &AtomicBool,
    hits: mpsc::Sender<Hit>,
) -> Result<Finished, EngineError> {
    let per_pass = run.end.saturating_sub(run.start);
    progress
        .total
        .store(per_pass.saturating_mul(u64::from(run.retries) + 1), Relaxed);
    progress.position.store(run.start, Relaxed);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let rx = s.spawn(|| receive_loop(receiver, probe, progress, run.show_closed, &hits, &done));
        let sent = send_loop(run, probe, sender, progress, stop);
        progress.done_sending.store(true, Relaxed);
        // Late replies still count: wait the cooldown (cut short after an interrupt).
        let cooldown = match &sent {
            Ok(f) if f.interrupted_at.is_some() => run.wait.min(Duration::from_secs(1)),
            Ok(_) => run.wait,
            Err(_) => Duration::ZERO,
        };
        let until = Instant::now() + cooldown;
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        done.store(true, Relaxed);
        let received = rx
            .join()
            .unwrap_or_else(|_| Err(EngineError::Runtime("receive thread panicked".into())));
        let finished = sent?;
        received?;
        Ok(finished)
    })
}

fn send_loop(
    run: &SynRun<'_>,
    probe: &dyn ProbeModule,
    sender: &mut dyn FrameSender,
    progress: &Progress,
    stop: &AtomicBool,
) -> Result<Finished, EngineError> {
    let pacer = Pacer::new(run.rate);
    let mut batch = SendBatch::new(probe, pacer.batch());
    let began = Instant::now();
    for _pass in 0..=run.retries {
        let mut pos = run.start;
        while pos < run.end {
            if stop.load(Relaxed) {
                return Ok(Finished {
                    interrupted_at: Some(pos),
                    send_time: began.elapsed(),
                });
            }
            batch.clear();
            while !batch.is_full() && pos < run.end {
                let index = run.order.at(pos);
                pos += 1;
                match run.space.target_v4(index) {
                    Some((dst, port)) if run.guard.permits_v4(dst) => batch.push(probe, dst, port),
                    _ => {
                        progress.refused.fetch_add(1, Relaxed);
                    }
                }
            }
            if batch.is_empty() {
                continue;
            }
            pacer.wait(batch.len());
            let n = sender.send(&batch)?;
            progress.sent.fetch_add(n as u64, Relaxed);
            progress.position.store(pos, Relaxed);
        }
    }
    Ok(Finished {
        interrupted_at: None,
        send_time: began.elapsed(),
    })
}

fn receive_loop(
    mut receiver: impl FrameReceiver,
    probe: &dyn ProbeModule,
    progress: &Progress,
    show_closed: bool,
    hits: &mpsc::Sender<Hit>,
    done: &AtomicBool,
) -> Result<(), EngineError> {
    // Only reported ports are remembered, so this grows with results, not with the space.
    let mut seen: HashSet<u64> = HashSet::with_capacity(4096);
    let mut batch = RecvBatch::default();
    loop {
        let finishing = done.load(Relaxed);
        let n = receiver.recv(&mut batch)?;
        for i in 0..n {
            let r = match probe.validate(batch.packet(i)) {
                Verdict::Reply(r) => r,
                Verdict::Invalid => {
                    progress.invalid.fetch_add(1, Relaxed);
                    continue;
                }
                Verdict::NotOurs => continue,
            };
            let reported = r.state == PortState::Open || show_closed;
            if reported && !seen.insert((u64::from(r.ip) << 16) | u64::from(r.port)) {
                progress.duplicates.fetch_add(1, Relaxed);
                continue;
            }
            match r.state {
                PortState::Open => progress.open.fetch_add(1, Relaxed),
                PortState::Closed => progress.closed.fetch_add(1, Relaxed),
            };
            if reported {
                let hit = Hit {
                    ip: IpAddr::V4(Ipv4Addr::from(r.ip)),
                    port: r.port,
                    state: r.state,
                    reason: r.reason,
                    ttl: Some(r.ttl),
                    at: SystemTime::now(),
                };
                // The consumer hung up: it is shutting down; stop reporting quietly.
                if hits.send(hit).is_err() {
                    return Ok(());
                }
            }
        }
        if n == 0 && finishing {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cookie::CookieKey;
    use crate::intervals::IntervalSet;
    use crate::probe::TcpSyn;
    use crate::sim::SimNet;

    const SRC: u32 = 0xC613_FF01;

    fn space() -> TargetSpace {
        // 198.18.0.0/22 × 5 ports
        TargetSpace::new(
            IntervalSet::from_ranges([(0xC612_0000u32, 0xC612_03FF)]),
            IntervalSet::new(),
            vec![22, 80, 443, 8080, 9999],
        )
        .expect("space")
    }

    fn open_set(space: &TargetSpace) -> HashSet<(u32, u16)> {
        (0..space.size())
            .step_by(37)
            .filter_map(|i| space.target_v4(i))
            .collect()
    }

    fn scan(
        net: &SimNet,
        space: &TargetSpace,
        start: u64,
        end: u64,
        retries: u32,
        closed: bool,
    ) -> (Vec<Hit>, Progress, Finished) {
        let guard = SendGuard::default();
        let run = SynRun {
            space,
            order: Permutation::new(space.size(), 5),
            start,
            end,
            guard: &guard,
            retries,
            wait: Duration::from_millis(50),
            rate: 1_000_000,
            show_closed: closed,
        };
        let probe = TcpSyn::new(SRC, CookieKey::new(1, 2), 61000, 1024, 64);
        let progress = Progress::default();
        let (tx, rx) = mpsc::channel();
        let mut sender = net.clone();
        let f = run_syn(
            &run,
            &probe,
            &mut sender,
            net.clone(),
            &progress,
            &AtomicBool::new(false),
            tx,
        )
        .expect("scan runs");
        (rx.into_iter().collect(), progress, f)
    }

    fn found(hits: &[Hit]) -> HashSet<(u32, u16)> {
        hits.iter()
            .filter(|h| h.state == PortState::Open)
            .map(|h| match h.ip {
                IpAddr::V4(a) => (u32::from(a), h.port),
                IpAddr::V6(_) => (0, 0),
            })
            .collect()
    }

    #[test]
    fn finds_exactly_the_open_ports_and_counts_forgeries() {
        let space = space();
        let open = open_set(&space);
        let net = SimNet::new(open.clone(), 0, true);
        let (hits, progress, f) = scan(&net, &space, 0, space.size(), 0, false);
        assert!(f.interrupted_at.is_none());
        assert_eq!(found(&hits), open);
        assert_eq!(
            hits.len(),
            open.len(),
            "no duplicates, no closed ports reported"
        );
        assert_eq!(Progress::get(&progress.sent), space.size());
        assert_eq!(
            Progress::get(&progress.closed),
            space.size() - open.len() as u64
        );
        assert_eq!(
            Progress::get(&progress.invalid),
            space.size(),
            "every forged reply counted"
        );
    }

    #[test]
    fn retries_recover_losses_without_duplicates() {
        let space = space();
        let open = open_set(&space);
        let lossy = SimNet::new(open.clone(), 3, false);
        let (once, _, _) = scan(&lossy, &space, 0, space.size(), 0, false);
        assert!(found(&once).len() < open.len(), "a third of probes dropped");
        let lossy = SimNet::new(open.clone(), 3, false);
        let (hits, progress, _) = scan(&lossy, &space, 0, space.size(), 2, false);
        assert_eq!(found(&hits), open);
        assert_eq!(hits.len(), open.len());
        assert!(Progress::get(&progress.duplicates) > 0);
    }

    #[test]
    fn shards_add_up_to_the_whole_scan() {
        let space = space();
        let open = open_set(&space);
        let mut union = HashSet::new();
        let n = 3;
        for k in 1..=n {
            let (s, e) = crate::shard::ShardSelector { k, n }.range(space.size());
            let net = SimNet::new(open.clone(), 0, false);
            let (hits, _, _) = scan(&net, &space, s, e, 0, true);
            assert_eq!(net.sent(), e - s);
            for h in hits {
                assert!(union.insert((h.ip, h.port)), "probe answered in two shards");
            }
        }
        assert_eq!(
            union.len() as u64,
            space.size(),
            "closed shown: every probe answered once"
        );
    }
}
