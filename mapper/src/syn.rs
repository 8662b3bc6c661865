//! The stateless SYN engine: one thread sends templated probes in permuted order, one
//! thread drains replies and validates them by cookie. No table of outstanding probes
//! exists, so memory does not grow with the target space (only with open ports found).
//!
//! A run may cover several segments (a scan's shards) with one receiver: a reply is
//! routed to its segment by the position of the probe it answers, and a segment is done
//! once its last probe went out and its replies had their wait — while the next
//! segments are being sent. A scan of many shards waits for late replies once, not once
//! per shard.

use crate::engine::{Finished, Hit, HitSink, Progress, Segments, SendGuard, HOLD_BACK};
use crate::error::EngineError;
use crate::pace::{RateHandle, Throttle};
use crate::packet_io::{FrameReceiver, FrameSender, RecvBatch, SendBatch, MAX_BATCH};
use crate::permute::Permutation;
use crate::probe::{ProbeModule, Verdict};
use crate::space::{Locator, TargetSpace};
use aperture_fingerprints::PortState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone)]
pub struct SynRun<'a> {
    pub space: &'a TargetSpace,
    pub order: Permutation,
    /// Positions of the permuted order to probe, as ascending, disjoint ranges probed one
    /// after another: a shard, its unfinished tail, or the shards of a scan still to run.
    /// Results carry the number of their segment (see [`HitSink`]).
    pub segments: &'a [(u64, u64)],
    pub guard: &'a SendGuard,
    /// Extra passes over each segment; replies are de-duplicated.
    pub retries: u32,
    /// How long a segment's late replies are awaited after its last probe.
    pub wait: Duration,
    /// Probes per second; may change while the run goes on (0 pauses it).
    pub rate: RateHandle,
    /// At most this many probes a second to any one /24 (see [`Throttle`]).
    pub per_net_rate: Option<u32>,
    pub show_closed: bool,
    /// Without `show_closed`: report the first closed reply of each host per segment
    /// (evidence that the host answers; see `EngineSettings::closed_hosts`).
    pub closed_hosts: bool,
}

/// Runs a SYN scan to completion (or until `stop`), reporting results to `sink` as they
/// arrive and each segment when it is done.
pub fn run_syn<S: HitSink + ?Sized>(
    run: &SynRun<'_>,
    probe: &dyn ProbeModule,
    sender: &mut dyn FrameSender,
    receiver: impl FrameReceiver,
    progress: &Progress,
    stop: &AtomicBool,
    sink: &S,
) -> Result<Finished, EngineError> {
    let segments = Segments::new(run.segments, run.space.size())?;
    let passes = u64::from(run.retries) + 1;
    progress
        .total
        .store(segments.probes().saturating_mul(passes), Relaxed);
    progress.position.store(
        segments.ranges().first().map_or(0, |&(start, _)| start),
        Relaxed,
    );
    // Segments fully sent, with the instant their wait ends: sender → receiver.
    let (sent_tx, sent_rx) = mpsc::channel::<(usize, Instant)>();
    // When the receiver may stop: set once the sender is through.
    let until: Mutex<Option<Instant>> = Mutex::new(None);
    // Raised by the receiver when it failed or its consumer hung up: sending stops.
    let abort = AtomicBool::new(false);
    std::thread::scope(|s| {
        let rx = s.spawn(|| {
            let r = Receiving {
                probe,
                progress,
                show_closed: run.show_closed,
                closed_hosts: run.closed_hosts,
                sink,
                segments: &segments,
                // With one segment there is nothing to route.
                locator: (segments.ranges().len() > 1).then(|| Locator::new(run.space, run.order)),
            };
            let received = r.run(receiver, sent_rx, &until);
            if !matches!(received, Ok(true)) {
                abort.store(true, Relaxed);
            }
            received.map(|_| ())
        });
        let sending = Sending {
            run,
            segments: &segments,
            stop,
            abort: &abort,
        };
        let sent = sending.run(probe, sender, progress, sink, &sent_tx);
        progress.done_sending.store(true, Relaxed);
        // Late replies still count: the last segment's wait (cut short after an
        // interrupt, when only segments already through their wait are done).
        let cooldown = match &sent {
            Ok(f) if f.interrupted_at.is_some() => run.wait.min(Duration::from_secs(1)),
            Ok(_) => run.wait,
            Err(_) => Duration::ZERO,
        };
        *until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + cooldown);
        let received = rx
            .join()
            .unwrap_or_else(|_| Err(EngineError::Runtime("receive thread panicked".into())));
        let finished = sent?;
        received?;
        Ok(finished)
    })
}

struct Sending<'a, 'r> {
    run: &'a SynRun<'r>,
    segments: &'a Segments,
    stop: &'a AtomicBool,
    abort: &'a AtomicBool,
}

impl Sending<'_, '_> {
    fn halted(&self) -> bool {
        self.stop.load(Relaxed) || self.abort.load(Relaxed)
    }

    fn run<S: HitSink + ?Sized>(
        &self,
        probe: &dyn ProbeModule,
        sender: &mut dyn FrameSender,
        progress: &Progress,
        sink: &S,
        sent: &mpsc::Sender<(usize, Instant)>,
    ) -> Result<Finished, EngineError> {
        let run = self.run;
        let mut throttle = Throttle::new(run.rate.clone(), run.per_net_rate);
        // Room for the largest batch: the rate, and with it the batch size, may change.
        let mut batch = SendBatch::new(probe, MAX_BATCH);
        let halted = || self.halted();
        let began = Instant::now();
        // Time held back by the sink or paused, which is not sending time.
        let mut held = Duration::ZERO;
        let interrupted = |pos: u64, held: Duration, throttle: &Throttle| Finished {
            interrupted_at: Some(pos),
            send_time: began.elapsed().saturating_sub(held + throttle.paused()),
        };
        for (segment, &(start, end)) in self.segments.ranges().iter().enumerate() {
            if !sink.may_start(segment) {
                let since = Instant::now();
                while !sink.may_start(segment) {
                    if self.halted() {
                        return Ok(interrupted(start, held + since.elapsed(), &throttle));
                    }
                    std::thread::sleep(HOLD_BACK);
                }
                held += since.elapsed();
            }
            for _pass in 0..=run.retries {
                let mut pos = start;
                // A probe whose /24 was over its cap, admitted after the wait: it leads
                // the next batch (its position is `pos - 1`).
                let mut admitted: Option<(u32, u16)> = None;
                while pos < end || admitted.is_some() {
                    let first = pos - u64::from(admitted.is_some());
                    if self.halted() {
                        return Ok(interrupted(first, held, &throttle));
                    }
                    batch.clear();
                    if let Some((dst, port)) = admitted.take() {
                        batch.push(probe, dst, port);
                    }
                    let size = throttle.batch();
                    let mut over_cap = None;
                    while batch.len() < size && pos < end {
                        let index = run.order.at(pos);
                        match run.space.target_v4(index) {
                            Some((dst, port)) if run.guard.permits_v4(dst) => {
                                if !throttle.admit_v4(dst) {
                                    over_cap = Some((dst, port));
                                    break;
                                }
                                batch.push(probe, dst, port);
                            }
                            _ => {
                                progress.refused.fetch_add(1, Relaxed);
                            }
                        }
                        pos += 1;
                    }
                    if !batch.is_empty() {
                        if !throttle.wait(batch.len(), &halted) {
                            return Ok(interrupted(first, held, &throttle));
                        }
                        let n = sender.send(&batch)?;
                        progress.sent.fetch_add(n as u64, Relaxed);
                        progress.position.store(pos, Relaxed);
                    }
                    // What was admitted went out; the sender now waits for this /24
                    // rather than drop its probe.
                    if let Some((dst, port)) = over_cap {
                        if !throttle.wait_net(IpAddr::V4(Ipv4Addr::from(dst)), &halted) {
                            return Ok(interrupted(pos, held, &throttle));
                        }
                        admitted = Some((dst, port));
                        pos += 1;
                    }
                }
            }
            // Every pass of the segment is out: its replies have `wait` from now. The
            // receiver outlives the sender, so this send only fails if it is gone.
            let _ = sent.send((segment, Instant::now() + run.wait));
        }
        Ok(Finished {
            interrupted_at: None,
            send_time: began.elapsed().saturating_sub(held + throttle.paused()),
        })
    }
}

struct Receiving<'a, S: ?Sized> {
    probe: &'a dyn ProbeModule,
    progress: &'a Progress,
    show_closed: bool,
    closed_hosts: bool,
    sink: &'a S,
    segments: &'a Segments,
    locator: Option<Locator<'a>>,
}

impl<S: HitSink + ?Sized> Receiving<'_, S> {
    /// Receives until the sender is through and the last wait is over. `Ok(false)`: the
    /// consumer hung up.
    fn run(
        &self,
        mut receiver: impl FrameReceiver,
        sent: mpsc::Receiver<(usize, Instant)>,
        until: &Mutex<Option<Instant>>,
    ) -> Result<bool, EngineError> {
        let progress = self.progress;
        // Ports reported per segment still open, to drop duplicates (retries): only
        // results are remembered, and only for the segments in flight, so memory follows
        // the results of those segments, not the space.
        let mut seen: HashMap<usize, HashSet<u64>> = HashMap::new();
        let mut done = vec![false; self.segments.ranges().len()];
        // Segments fully sent, awaiting the end of their wait (in sending order).
        let mut waiting: VecDeque<(usize, Instant)> = VecDeque::new();
        let mut batch = RecvBatch::with_slot(receiver.slot());
        let repeats = self.probe.reports_repeats();
        loop {
            let now = Instant::now();
            waiting.extend(sent.try_iter());
            let until = *until.lock().unwrap_or_else(|p| p.into_inner());
            let n = receiver.recv(&mut batch)?;
            for i in 0..n {
                let r = match self.probe.validate(batch.packet(i)) {
                    Verdict::Reply(r) => r,
                    Verdict::Invalid => {
                        progress.invalid.fetch_add(1, Relaxed);
                        continue;
                    }
                    Verdict::NotOurs => continue,
                };
                let ip = IpAddr::V4(Ipv4Addr::from(r.ip));
                let segment = match &self.locator {
                    None => 0,
                    Some(locate) => match locate
                        .position(ip, r.port)
                        .and_then(|pos| self.segments.find(pos))
                    {
                        Some(segment) => segment,
                        // A valid cookie for a probe this run never sent.
                        None => {
                            progress.invalid.fetch_add(1, Relaxed);
                            continue;
                        }
                    },
                };
                if done.get(segment).is_none_or(|&d| d) {
                    progress.late.fetch_add(1, Relaxed);
                    continue;
                }
                let host_only = r.state != PortState::Open && !self.show_closed;
                if host_only && self.closed_hosts {
                    // The host's first closed reply in this segment is its evidence;
                    // the rest are counted, not reported. Bit 63 keeps these keys apart
                    // from (ip, port) ones, which use 48 bits.
                    let host = (1u64 << 63) | u64::from(r.ip);
                    progress.closed.fetch_add(1, Relaxed);
                    if !seen.entry(segment).or_default().insert(host) {
                        continue;
                    }
                    let hit = Hit {
                        ip,
                        port: r.port,
                        state: r.state,
                        reason: r.reason,
                        ttl: Some(r.ttl),
                        at: SystemTime::now(),
                        data: None,
                        reply_len: r.reply_len,
                    };
                    if !self.sink.hit(segment, hit) {
                        return Ok(false);
                    }
                    continue;
                }
                let reported = !host_only;
                let key = (u64::from(r.ip) << 16) | u64::from(r.port);
                let packet = batch.packet(i);
                let data = |r: &crate::probe::Reply| {
                    r.payload.and_then(|(at, n)| {
                        let (at, n) = (usize::from(at), usize::from(n));
                        packet.get(at..at + n).map(std::sync::Arc::from)
                    })
                };
                if reported && !seen.entry(segment).or_default().insert(key) {
                    progress.duplicates.fetch_add(1, Relaxed);
                    // UDP: every reply's bytes count towards the port's amplification.
                    if repeats && r.state == PortState::Open {
                        let hit = Hit {
                            ip,
                            port: r.port,
                            state: r.state,
                            reason: r.reason,
                            ttl: Some(r.ttl),
                            at: SystemTime::now(),
                            data: data(&r),
                            reply_len: r.reply_len,
                        };
                        if !self.sink.hit(segment, hit) {
                            return Ok(false);
                        }
                    }
                    continue;
                }
                match r.state {
                    PortState::Open => progress.open.fetch_add(1, Relaxed),
                    PortState::Closed | PortState::Filtered => {
                        progress.closed.fetch_add(1, Relaxed)
                    }
                };
                if reported {
                    let hit = Hit {
                        ip,
                        port: r.port,
                        state: r.state,
                        reason: r.reason,
                        ttl: Some(r.ttl),
                        at: SystemTime::now(),
                        data: data(&r),
                        reply_len: r.reply_len,
                    };
                    // The consumer hung up: it is shutting down; stop quietly.
                    if !self.sink.hit(segment, hit) {
                        return Ok(false);
                    }
                }
            }
            // A receive short of a full batch emptied the socket: every reply that
            // arrived before `now` has been read, so the segments whose wait ended by
            // then are done.
            if n < MAX_BATCH {
                while let Some(&(segment, deadline)) = waiting.front() {
                    if deadline > now {
                        break;
                    }
                    waiting.pop_front();
                    if let Some(d) = done.get_mut(segment) {
                        *d = true;
                    }
                    seen.remove(&segment);
                    self.sink.segment_done(segment);
                }
                if until.is_some_and(|u| u <= now) {
                    return Ok(true);
                }
            }
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
    use std::sync::atomic::AtomicU64;

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
        scan_with(net, space, (start, end), retries, closed, false)
    }

    fn scan_with(
        net: &SimNet,
        space: &TargetSpace,
        (start, end): (u64, u64),
        retries: u32,
        closed: bool,
        closed_hosts: bool,
    ) -> (Vec<Hit>, Progress, Finished) {
        let guard = SendGuard::default();
        let segments = [(start, end)];
        let run = SynRun {
            space,
            order: Permutation::new(space.size(), 5),
            segments: &segments,
            guard: &guard,
            retries,
            wait: Duration::from_millis(50),
            rate: RateHandle::new(1_000_000),
            per_net_rate: None,
            show_closed: closed,
            closed_hosts,
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
            &tx,
        )
        .expect("scan runs");
        drop(tx);
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
    fn closed_hosts_reports_one_closed_reply_per_host() {
        let space = space();
        let open = open_set(&space);
        let net = SimNet::new(open.clone(), 0, true);
        let (hits, progress, _) = scan_with(&net, &space, (0, space.size()), 1, false, true);
        assert_eq!(found(&hits), open, "every open port still reported");
        let closed: Vec<IpAddr> = hits
            .iter()
            .filter(|h| h.state == PortState::Closed)
            .map(|h| h.ip)
            .collect();
        let hosts: HashSet<IpAddr> = closed.iter().copied().collect();
        assert_eq!(closed.len(), hosts.len(), "one closed reply per host");
        let all_hosts: HashSet<u32> = (0..space.size())
            .filter_map(|i| space.target_v4(i).map(|(ip, _)| ip))
            .collect();
        assert_eq!(hosts.len(), all_hosts.len(), "every host answered closed");
        assert_eq!(
            Progress::get(&progress.closed),
            2 * (space.size() - open.len() as u64),
            "every closed reply of both passes counted"
        );
        assert_eq!(Progress::get(&progress.duplicates), open.len() as u64);
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

    /// Records what a multi-segment run reports, in order; optionally holds segments
    /// back until the previous ones are done.
    #[derive(Default)]
    struct Recorder {
        events: Mutex<Vec<Event>>,
        /// Segment k may start only once k - lag segments are done.
        lag: Option<usize>,
        asked: AtomicU64,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Event {
        Hit(usize, u32, u16),
        Done(usize),
    }

    impl Recorder {
        fn events(&self) -> Vec<Event> {
            self.events.lock().expect("lock").clone()
        }

        fn done(&self) -> Vec<usize> {
            self.events()
                .iter()
                .filter_map(|e| match e {
                    Event::Done(s) => Some(*s),
                    Event::Hit(..) => None,
                })
                .collect()
        }
    }

    impl HitSink for Recorder {
        fn hit(&self, segment: usize, hit: Hit) -> bool {
            let IpAddr::V4(a) = hit.ip else {
                return false;
            };
            self.events
                .lock()
                .expect("lock")
                .push(Event::Hit(segment, u32::from(a), hit.port));
            true
        }

        fn segment_done(&self, segment: usize) {
            self.events.lock().expect("lock").push(Event::Done(segment));
        }

        fn may_start(&self, segment: usize) -> bool {
            self.asked.fetch_add(1, Relaxed);
            match self.lag {
                None => true,
                Some(lag) => segment < self.done().len() + lag,
            }
        }
    }

    fn segmented(
        net: &SimNet,
        space: &TargetSpace,
        segments: &[(u64, u64)],
        sink: &Recorder,
        stop: &AtomicBool,
    ) -> (Progress, Finished) {
        let guard = SendGuard::default();
        let run = SynRun {
            space,
            order: Permutation::new(space.size(), 5),
            segments,
            guard: &guard,
            retries: 1,
            wait: Duration::from_millis(30),
            rate: RateHandle::new(1_000_000),
            per_net_rate: None,
            show_closed: false,
            closed_hosts: false,
        };
        let probe = TcpSyn::new(SRC, CookieKey::new(1, 2), 61000, 1024, 64);
        let progress = Progress::default();
        let mut sender = net.clone();
        let f = run_syn(
            &run,
            &probe,
            &mut sender,
            net.clone(),
            &progress,
            stop,
            sink,
        )
        .expect("scan runs");
        (progress, f)
    }

    #[test]
    fn one_run_over_many_segments_routes_each_reply_to_its_segment() {
        let space = space();
        let order = Permutation::new(space.size(), 5);
        let open = open_set(&space);
        let n = 7;
        // Shards 2 and 5 were stored before: the run covers the others.
        let segments: Vec<(u64, u64)> = (1..=n)
            .filter(|k| *k != 2 && *k != 5)
            .map(|k| crate::shard::ShardSelector { k, n }.range(space.size()))
            .collect();
        let net = SimNet::new(open.clone(), 0, true);
        let sink = Recorder::default();
        let (progress, f) = segmented(&net, &space, &segments, &sink, &AtomicBool::new(false));
        assert!(f.interrupted_at.is_none());
        let probes: u64 = segments.iter().map(|(s, e)| e - s).sum();
        assert_eq!(net.sent(), 2 * probes, "two passes over each segment");
        assert_eq!(Progress::get(&progress.total), 2 * probes);
        let events = sink.events();
        assert_eq!(
            sink.done(),
            (0..segments.len()).collect::<Vec<_>>(),
            "every segment done once, in order"
        );
        let mut expected: HashSet<(u32, u16)> = HashSet::new();
        for &(s, e) in &segments {
            expected.extend((s..e).filter_map(|p| {
                let t = space.target_v4(order.at(p))?;
                open.contains(&t).then_some(t)
            }));
        }
        let mut found = HashSet::new();
        for (i, e) in events.iter().enumerate() {
            let Event::Hit(segment, ip, port) = *e else {
                continue;
            };
            let (s, end) = segments[segment];
            let pos = Locator::new(&space, order)
                .position(IpAddr::V4(Ipv4Addr::from(ip)), port)
                .expect("in the space");
            assert!(
                (s..end).contains(&pos),
                "routed to the segment that sent it"
            );
            assert!(
                !events[..i].contains(&Event::Done(segment)),
                "no result after its segment is done"
            );
            assert!(
                found.insert((ip, port)),
                "reported once despite the retry pass"
            );
        }
        assert_eq!(
            found, expected,
            "every open port of the segments, nothing else"
        );
        assert_eq!(Progress::get(&progress.late), 0);
    }

    #[test]
    fn a_held_back_segment_waits_for_the_sink() {
        let space = space();
        let open = open_set(&space);
        let segments: Vec<(u64, u64)> = (1..=4)
            .map(|k| crate::shard::ShardSelector { k, n: 4 }.range(space.size()))
            .collect();
        let net = SimNet::new(open, 0, false);
        // Lag 1: a segment starts only once the one before it is done (its wait over).
        let sink = Recorder {
            lag: Some(1),
            ..Recorder::default()
        };
        let began = Instant::now();
        let (_, f) = segmented(&net, &space, &segments, &sink, &AtomicBool::new(false));
        assert!(f.interrupted_at.is_none());
        assert_eq!(sink.done(), vec![0, 1, 2, 3]);
        assert!(
            began.elapsed() >= Duration::from_millis(4 * 30),
            "four waits, one after another"
        );
        assert!(
            sink.asked.load(Relaxed) > 4,
            "segments were held back and asked again"
        );
    }

    #[test]
    fn a_stop_leaves_the_cut_segment_not_done() {
        let space = space();
        let open = open_set(&space);
        let segments: Vec<(u64, u64)> = (1..=4)
            .map(|k| crate::shard::ShardSelector { k, n: 4 }.range(space.size()))
            .collect();
        let net = SimNet::new(open, 0, false);
        let stop = AtomicBool::new(false);
        // Never lets segment 2 start, and stops once segment 0 is done.
        let sink = Recorder::default();
        struct Never<'a>(&'a Recorder, &'a AtomicBool);
        impl HitSink for Never<'_> {
            fn hit(&self, segment: usize, hit: Hit) -> bool {
                self.0.hit(segment, hit)
            }
            fn segment_done(&self, segment: usize) {
                self.0.segment_done(segment);
                self.1.store(true, Relaxed);
            }
            fn may_start(&self, segment: usize) -> bool {
                segment < 2
            }
        }
        let guard = SendGuard::default();
        let run = SynRun {
            space: &space,
            order: Permutation::new(space.size(), 5),
            segments: &segments,
            guard: &guard,
            retries: 0,
            wait: Duration::from_millis(30),
            rate: RateHandle::new(1_000_000),
            per_net_rate: None,
            show_closed: false,
            closed_hosts: false,
        };
        let probe = TcpSyn::new(SRC, CookieKey::new(1, 2), 61000, 1024, 64);
        let progress = Progress::default();
        let mut sender = net.clone();
        let f = run_syn(
            &run,
            &probe,
            &mut sender,
            net.clone(),
            &progress,
            &stop,
            &Never(&sink, &stop),
        )
        .expect("scan runs");
        assert!(
            f.interrupted_at
                .is_some_and(|p| p >= segments[1].0 && p <= segments[2].0),
            "stopped in segment 1 or before segment 2: {:?}",
            f.interrupted_at
        );
        let done = sink.done();
        assert!(
            done.first() == Some(&0) && !done.contains(&2) && !done.contains(&3),
            "only segments fully sent and through their wait are done: {done:?}"
        );
    }
}
