//! `kill -9` a writer at random points, at least 100 times, and check after each that
//! every acknowledged batch is there whole, no batch is there in part, and no change
//! event is duplicated — also across the writer's replays of batches it had applied.
//!
//! The writer is this test binary itself, re-run with `APERTURE_CRASH_DIR` set, so the
//! test needs nothing but cargo.

use aperture_fingerprints::{PortObservation, PortState, Probe, Proto, Reason};
use aperture_storage::*;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

const ROUNDS: u64 = 100;
const BATCHES: u64 = 400;
const SHARDS: u64 = 4;
const PORTS: u16 = 20;

fn tenant() -> TenantId {
    TenantId::new("crash").expect("id")
}

fn batch_host(k: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, (k / 250) as u8, (k % 250 + 1) as u8))
}

fn scan_id(k: u64) -> String {
    format!("scan-{}", k / SHARDS)
}

fn coverage(scan: u64) -> Coverage {
    Coverage {
        targets: (scan * SHARDS..(scan + 1) * SHARDS)
            .map(|k| ipnet::IpNet::from(batch_host(k)))
            .collect(),
        ports: vec![(1, PORTS)],
        probes: ["syn".to_string()].into(),
        domains: vec![],
        udp_ports: Vec::new(),
    }
}

fn batch(k: u64) -> Batch {
    let ip = batch_host(k);
    Batch {
        range: None,
        scan: scan_id(k),
        shard: (k % SHARDS) as u32,
        at: 1_795_000_000_000 + k as i64,
        observations: (1..=PORTS)
            .map(|port| {
                Observation::Port(PortObservation {
                    ip,
                    port,
                    proto: Proto::Tcp,
                    state: PortState::Open,
                    reason: Reason::SynAck,
                    ttl: Some(64),
                    timestamp: UNIX_EPOCH,
                    scan_id: scan_id(k),
                    probe: Probe::Syn,
                    service: None,
                })
            })
            .collect(),
    }
}

/// The writer: applies batches 0.. in order (replaying those already applied) and prints
/// `ACK k` after each `apply` returns.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os("APERTURE_CRASH_DIR") else {
        return;
    };
    let store = Store::open(std::path::Path::new(&dir)).expect("opens");
    let t = tenant();
    if store.tenant(&t).is_err() {
        store.create_tenant(&t, "Crash", 0).expect("tenant");
    }
    let mut out = std::io::stdout().lock();
    for k in 0..BATCHES {
        if k % SHARDS == 0 {
            store
                .begin_scan(
                    &t,
                    &scan_id(k),
                    coverage(k / SHARDS),
                    SHARDS as u32,
                    None,
                    0,
                )
                .expect("begins");
        }
        store.apply(&t, &batch(k)).expect("applies");
        writeln!(out, "ACK {k}").expect("stdout");
        out.flush().expect("stdout");
    }
}

/// xorshift: the kill points differ per round but repeat per run.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn kill_9_at_random_points_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut acked_ever: BTreeSet<u64> = BTreeSet::new();
    let mut kills = 0;
    // Rounds killed after some acknowledgements: the kill landed among writes.
    let mut killed_mid_run = 0u64;
    for round in 0..=ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("APERTURE_CRASH_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawns the writer");
        let stdout = child.stdout.take().expect("piped");
        let acks = Arc::new(AtomicU64::new(0));
        let acks_seen = Arc::clone(&acks);
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The harness may print "test crash_writer_child ... " on the same line.
                let k = line
                    .rsplit("ACK ")
                    .next()
                    .and_then(|k| k.trim().parse::<u64>().ok());
                if let (true, Some(k)) = (line.contains("ACK "), k) {
                    acked.push(k);
                    acks_seen.fetch_add(1, Ordering::SeqCst);
                }
            }
            acked
        });
        // The last round runs to the end. Odd rounds die 0-250 ms after the start (opening
        // and recovering the store, replays); even rounds 0-40 ms after the first
        // acknowledgement, among fresh writes.
        if round < ROUNDS {
            let mut start = Instant::now();
            let delay = if round % 2 == 1 {
                Duration::from_micros(next(&mut rng) % 250_000)
            } else {
                while acks.load(Ordering::SeqCst) == 0 && child.try_wait().expect("wait").is_none()
                {
                    std::thread::sleep(Duration::from_micros(200));
                }
                start = Instant::now();
                Duration::from_micros(next(&mut rng) % 40_000)
            };
            while start.elapsed() < delay {
                if child.try_wait().expect("wait").is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            // SIGKILL: no destructors, no flush — what `kill -9` does.
            let _ = child.kill();
            kills += 1;
        }
        let status = child.wait().expect("reaps");
        if round == ROUNDS {
            assert!(status.success(), "the final writer finishes");
        }
        let acked_now = reader.join().expect("reader");
        if acked_now.len() as u64 != BATCHES {
            killed_mid_run += u64::from(!acked_now.is_empty());
        }
        acked_ever.extend(acked_now);
        check(dir.path(), &acked_ever, round);
    }
    assert!(kills >= 100);
    eprintln!("{kills} kills, {killed_mid_run} of them among acknowledged writes");
    assert!(killed_mid_run >= 40, "half the kills land among writes");
    assert_eq!(
        acked_ever.len() as u64,
        BATCHES,
        "the final round completes the work"
    );
}

fn check(dir: &std::path::Path, acked: &BTreeSet<u64>, round: u64) {
    let store = Store::open(dir).expect("reopens after kill -9");
    let t = tenant();
    if store.tenant(&t).is_err() {
        assert!(
            acked.is_empty(),
            "round {round}: acknowledged batches but no tenant"
        );
        return;
    }
    let mut applied = 0u64;
    for k in 0..BATCHES {
        let b = batch(k);
        let receipt = store
            .scan(&t, &b.scan)
            .map(|s| s.shards_done.contains(&b.shard))
            .unwrap_or(false);
        let present = (1..=PORTS)
            .filter(|p| store.asset(&t, &AssetKey::tcp(batch_host(k), *p)).is_ok())
            .count() as u16;
        assert!(
            present == 0 || present == PORTS,
            "round {round}: batch {k} is torn ({present} of {PORTS} services)"
        );
        assert_eq!(
            receipt,
            present == PORTS,
            "round {round}: batch {k} receipt and contents disagree"
        );
        if acked.contains(&k) {
            assert!(receipt, "round {round}: acknowledged batch {k} lost");
        }
        if receipt {
            applied += 1;
        }
    }
    // Each applied batch made exactly 21 events: 20 services and their host appearing.
    let count = store.change_count(&t).expect("count");
    assert_eq!(
        count,
        applied * (u64::from(PORTS) + 1),
        "round {round}: change count"
    );
    let mut seen = BTreeSet::new();
    let mut cursor = None;
    let mut expected_seq = 0;
    loop {
        let page = store.changes_since(&t, cursor, MAX_PAGE).expect("feed");
        for c in &page.items {
            assert_eq!(
                c.seq, expected_seq,
                "round {round}: change numbers are dense"
            );
            expected_seq += 1;
            assert!(
                seen.insert((c.asset.to_string(), format!("{:?}", c.kind))),
                "round {round}: duplicate change {c:?}"
            );
        }
        match page.items.last() {
            Some(last) if page.next.is_some() => cursor = Some(last.seq),
            _ => break,
        }
    }
    assert_eq!(expected_seq, count, "round {round}: feed length");
}
