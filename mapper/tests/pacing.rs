//! The engines' pacing seen from outside: a rate changed while a run goes on, a pause
//! and its end, and the per-network politeness cap. The SYN engine runs against the
//! simulated network; the connect engine against closed ports on 127.0.0.1 only.

use aperture_fingerprints::PortState;
use aperture_mapper::connect::{run_connect, ConnectRun};
use aperture_mapper::cookie::CookieKey;
use aperture_mapper::engine::{Finished, Hit, Progress, SendGuard};
use aperture_mapper::intervals::IntervalSet;
use aperture_mapper::pace::RateHandle;
use aperture_mapper::permute::Permutation;
use aperture_mapper::probe::TcpSyn;
use aperture_mapper::sim::SimNet;
use aperture_mapper::space::TargetSpace;
use aperture_mapper::syn::{run_syn, SynRun};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const SRC: u32 = 0xC613_FF01;
const NET: u32 = 0xC612_0000; // 198.18.0.0

struct SynOutcome {
    finished: Finished,
    hits: Vec<Hit>,
    progress: Progress,
    elapsed: Duration,
}

/// Runs the SYN engine over `segments` of `space` against `net`, on the calling thread.
fn syn(
    net: &SimNet,
    space: &TargetSpace,
    segments: &[(u64, u64)],
    rate: RateHandle,
    per_net_rate: Option<u32>,
    stop: &AtomicBool,
) -> SynOutcome {
    let guard = SendGuard::default();
    let run = SynRun {
        space,
        order: Permutation::new(space.size(), 17),
        segments,
        guard: &guard,
        retries: 0,
        wait: Duration::from_millis(30),
        rate,
        per_net_rate,
        show_closed: false,
        closed_hosts: false,
    };
    let probe = TcpSyn::new(SRC, CookieKey::new(3, 4), 61000, 1024, 64);
    let progress = Progress::default();
    let (tx, rx) = mpsc::channel();
    let mut sender = net.clone();
    let began = Instant::now();
    let finished = run_syn(&run, &probe, &mut sender, net.clone(), &progress, stop, &tx)
        .expect("the run ends without an error");
    let elapsed = began.elapsed();
    drop(tx);
    SynOutcome {
        finished,
        hits: rx.into_iter().collect(),
        progress,
        elapsed,
    }
}

fn open_ports(hits: &[Hit]) -> HashSet<(u32, u16)> {
    hits.iter()
        .filter(|h| h.state == PortState::Open)
        .filter_map(|h| match h.ip {
            IpAddr::V4(a) => Some((u32::from(a), h.port)),
            IpAddr::V6(_) => None,
        })
        .collect()
}

#[test]
fn a_syn_run_follows_its_rate_through_a_pause_to_the_end() {
    // 198.18.0.0/16 on one port: 65,536 probes.
    let space = TargetSpace::new(
        IntervalSet::from_ranges([(NET, NET + 0xFFFF)]),
        IntervalSet::new(),
        vec![443],
    )
    .expect("space");
    let open: HashSet<(u32, u16)> = (0..space.size())
        .step_by(101)
        .filter_map(|i| space.target_v4(i))
        .collect();
    let net = SimNet::new(open.clone(), 0, false);
    let rate = RateHandle::new(2_000);
    let stop = AtomicBool::new(false);
    let outcome = std::thread::scope(|s| {
        let run = s.spawn(|| {
            syn(
                &net,
                &space,
                &[(0, 30_000), (30_000, space.size())],
                rate.clone(),
                None,
                &stop,
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        let slow = net.sent();
        rate.set(20_000);
        std::thread::sleep(Duration::from_millis(500));
        let fast = net.sent() - slow;
        rate.set(0);
        // The pause is seen within the engine's rate step plus one batch.
        std::thread::sleep(Duration::from_millis(50));
        let paused_at = net.sent();
        std::thread::sleep(Duration::from_millis(300));
        let during_pause = net.sent() - paused_at;
        rate.set(1_000_000);
        let outcome = run.join().expect("the run thread");
        (slow, fast, during_pause, outcome)
    });
    let (slow, fast, during_pause, outcome) = outcome;
    assert!(
        (500..=1_500).contains(&slow),
        "about 1,000 probes in half a second at 2,000/s: {slow}"
    );
    assert!(
        (5_000..=12_000).contains(&fast),
        "about 10,000 probes in half a second at 20,000/s: {fast}"
    );
    assert_eq!(during_pause, 0, "nothing is sent while paused");
    assert!(
        outcome.finished.interrupted_at.is_none(),
        "a pause is not an interruption"
    );
    assert_eq!(net.sent(), space.size(), "every probe sent once");
    assert_eq!(Progress::get(&outcome.progress.sent), space.size());
    assert_eq!(
        open_ports(&outcome.hits),
        open,
        "every reply heard, the pause notwithstanding"
    );
    assert!(
        outcome.finished.send_time + Duration::from_millis(250) < outcome.elapsed,
        "the pause is not counted as sending time: {:?} of {:?}",
        outcome.finished.send_time,
        outcome.elapsed
    );
}

#[test]
fn a_stop_ends_a_paused_syn_run_where_it_was() {
    let space = TargetSpace::new(
        IntervalSet::from_ranges([(NET, NET + 255)]),
        IntervalSet::new(),
        vec![22, 80],
    )
    .expect("space");
    let net = SimNet::new(HashSet::new(), 0, false);
    let stop = AtomicBool::new(false);
    let outcome = std::thread::scope(|s| {
        let run = s.spawn(|| syn(&net, &space, &[(100, 300)], RateHandle::new(0), None, &stop));
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Relaxed);
        run.join().expect("the run thread")
    });
    assert_eq!(outcome.finished.interrupted_at, Some(100));
    assert_eq!(net.sent(), 0);
    assert!(
        outcome.elapsed < Duration::from_secs(2),
        "{:?}",
        outcome.elapsed
    );
}

#[test]
fn the_per_network_cap_slows_one_slash_24_and_not_many() {
    let never = AtomicBool::new(false);
    // 600 probes into 198.18.0.0/24 (256 addresses × 3 ports, the first 600 positions).
    let one = TargetSpace::new(
        IntervalSet::from_ranges([(NET, NET + 255)]),
        IntervalSet::new(),
        vec![22, 80, 443],
    )
    .expect("one /24");
    let net = SimNet::new(HashSet::new(), 0, false);
    let capped = syn(
        &net,
        &one,
        &[(0, 600)],
        RateHandle::new(1_000_000),
        Some(200),
        &never,
    );
    assert_eq!(net.sent(), 600, "held back, never dropped");
    assert!(capped.finished.interrupted_at.is_none());
    assert!(
        capped.elapsed >= Duration::from_millis(2_500),
        "600 probes at 200/s to one /24: {:?}",
        capped.elapsed
    );
    // 600 probes, one into each of 600 different /24s.
    let many = TargetSpace::new(
        IntervalSet::from_ranges((0..600u32).map(|i| (NET + (i << 8) + 1, NET + (i << 8) + 1))),
        IntervalSet::new(),
        vec![443],
    )
    .expect("600 /24s");
    let net = SimNet::new(HashSet::new(), 0, false);
    let spread = syn(
        &net,
        &many,
        &[(0, 600)],
        RateHandle::new(1_000_000),
        Some(200),
        &never,
    );
    assert_eq!(net.sent(), 600);
    assert!(
        spread.elapsed < Duration::from_millis(1_000),
        "no /24 is over its cap: {:?}",
        spread.elapsed
    );
}

/// Ports on 127.0.0.1 that were bound a moment ago and are closed now.
fn closed_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let mut ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

fn connect_run(ports: Vec<u16>, rate: RateHandle, per_net_rate: Option<u32>) -> ConnectRun {
    let lo = u32::from(Ipv4Addr::LOCALHOST);
    let space = Arc::new(
        TargetSpace::new(
            IntervalSet::from_ranges([(lo, lo)]),
            IntervalSet::new(),
            ports,
        )
        .expect("space"),
    );
    ConnectRun {
        order: Permutation::new(space.size(), 5),
        segments: vec![(0, space.size())],
        space,
        guard: Arc::new(SendGuard::default()),
        retries: 0,
        timeout: Duration::from_secs(2),
        concurrency: 8,
        rate,
        per_net_rate,
        show_closed: true,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_paused_connect_run_resumes_and_completes() {
    let ports = closed_ports(40);
    let n = ports.len() as u64;
    let rate = RateHandle::new(0);
    let run = connect_run(ports, rate.clone(), None);
    let progress = Arc::new(Progress::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Hit>();
    let finished = std::thread::scope(|s| {
        let running = s.spawn(|| {
            runtime().block_on(run_connect(
                run,
                progress.clone(),
                stop.clone(),
                Arc::new(tx),
            ))
        });
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(Progress::get(&progress.sent), 0, "paused from the start");
        rate.set(1_000);
        running.join().expect("the run thread")
    })
    .expect("the run ends without an error");
    assert!(finished.interrupted_at.is_none());
    assert_eq!(Progress::get(&progress.sent), n);
    assert_eq!(
        rx.into_iter().count() as u64,
        n,
        "every closed port answered"
    );

    // A stop while paused ends the run at its first position.
    let run = connect_run(closed_ports(4), RateHandle::new(0), None);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, _rx) = mpsc::channel::<Hit>();
    let finished = std::thread::scope(|s| {
        let running = s.spawn(|| {
            runtime().block_on(run_connect(
                run,
                Arc::new(Progress::default()),
                stop.clone(),
                Arc::new(tx),
            ))
        });
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Relaxed);
        running.join().expect("the run thread")
    })
    .expect("the run ends without an error");
    assert_eq!(finished.interrupted_at, Some(0));
}

#[test]
fn the_per_network_cap_holds_connect_attempts_back() {
    // 60 attempts into 127.0.0.0/24 at 20 a second (bursts of 2): about three seconds.
    let ports = closed_ports(60);
    let n = ports.len() as u64;
    let run = connect_run(ports, RateHandle::new(10_000), Some(20));
    let progress = Arc::new(Progress::default());
    let (tx, rx) = mpsc::channel::<Hit>();
    let began = Instant::now();
    let finished = runtime()
        .block_on(run_connect(
            run,
            progress.clone(),
            Arc::new(AtomicBool::new(false)),
            Arc::new(tx),
        ))
        .expect("the run ends without an error");
    assert!(finished.interrupted_at.is_none());
    assert_eq!(Progress::get(&progress.sent), n);
    assert_eq!(rx.into_iter().count() as u64, n);
    let expected = Duration::from_millis((n.saturating_sub(2) * 1000 / 20) * 9 / 10);
    assert!(
        began.elapsed() >= expected,
        "{n} attempts at 20/s: {:?}",
        began.elapsed()
    );
}
