//! A shard as a remote worker gets it: planned elsewhere, sent as JSON, rebuilt and run
//! with `run_shard`. Connect engine, 127.0.0.1 only: listeners of this test, and ports
//! that were bound a moment ago and are closed now.

use aperture_fingerprints::{PortObservation, PortState};
use aperture_mapper::engine::Progress;
use aperture_mapper::pace::RateHandle;
use aperture_mapper::plan::{plan, TargetRequest};
use aperture_mapper::run::{run_shard, EngineSettings, PortSink, ShardSpec};
use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Collected {
    observations: Mutex<Vec<(usize, PortObservation)>>,
    done: Mutex<Vec<usize>>,
}

impl PortSink for Collected {
    fn observation(&self, segment: usize, obs: PortObservation) -> bool {
        self.observations.lock().expect("lock").push((segment, obs));
        true
    }

    fn segment_done(&self, segment: usize) {
        self.done.lock().expect("lock").push(segment);
    }
}

#[test]
fn a_shard_sent_as_json_runs_where_it_lands() {
    let open: Vec<TcpListener> = (0..4)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let mut ports: Vec<u16> = open
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect();
    let closed: Vec<TcpListener> = (0..8)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    ports.extend(closed.iter().map(|l| l.local_addr().expect("addr").port()));
    drop(closed);
    let open_ports: HashSet<u16> = ports[..4].iter().copied().collect();
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let planned = runtime
        .block_on(plan(&TargetRequest {
            targets: vec!["127.0.0.1".into()],
            ports: Some(list.join(",")),
            allow_special: true,
            ipv6: true,
            ..TargetRequest::default()
        }))
        .expect("plan");
    let size = planned.space.size();
    let settings = EngineSettings {
        scan_id: "scan-1".into(),
        use_connect: true,
        rate: RateHandle::new(1_000),
        per_net_rate: Some(500),
        retries: 0,
        timeout: Duration::from_secs(2),
        concurrency: 8,
        show_closed: true,
        closed_hosts: false,
        wait: Duration::from_millis(100),
        source_ip: None,
        source_ports: (61000, 4096),
        ttl: 64,
        grab: None,
    };
    // The coordinator's side: two segments of the scan, the rest left to others.
    let sent = ShardSpec::from_plan(&planned, 9, vec![(1, 5), (8, size)], settings);
    let json = serde_json::to_vec(&sent).expect("json");

    // The worker's side.
    let spec: ShardSpec = serde_json::from_slice(&json).expect("parse");
    let sink = Arc::new(Collected::default());
    let finished = run_shard(
        &runtime,
        &spec,
        &Arc::new(Progress::default()),
        &Arc::new(AtomicBool::new(false)),
        sink.clone(),
    )
    .expect("runs");
    assert!(finished.interrupted_at.is_none());

    let observations = sink.observations.lock().expect("lock").clone();
    assert_eq!(
        observations.len() as u64,
        spec.probes(),
        "every probe answered"
    );
    let member = sent.membership().expect("builds");
    let mut seen = HashSet::new();
    for (segment, obs) in &observations {
        assert!(*segment < 2);
        assert_eq!(obs.scan_id, "scan-1");
        assert!(member.contains(obs.ip, obs.port), "{}:{}", obs.ip, obs.port);
        assert_eq!(
            obs.state == PortState::Open,
            open_ports.contains(&obs.port),
            "port {}",
            obs.port
        );
        assert!(seen.insert(obs.port), "one observation per probe");
    }
    let outside = ports
        .iter()
        .filter(|p| !member.contains("127.0.0.1".parse().expect("ip"), **p))
        .count() as u64;
    assert_eq!(
        outside,
        size - spec.probes(),
        "the other positions are not this shard's"
    );
    let mut done = sink.done.lock().expect("lock").clone();
    done.sort_unstable();
    assert_eq!(done, vec![0, 1], "each segment reported done once");
    drop(open);
}
