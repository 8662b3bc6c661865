//! The bus against a real nats-server (Debian's 2.9): streams made by the coordinator's
//! credential, a worker's lease/progress/results/ack cycle, and the permissions that keep
//! a worker to its own subjects.

#[path = "../../tests/common/nats.rs"]
mod nats;

use aperture_bus::auth::{connect, write_server_config, BusAuth};
use aperture_bus::lease::{publish_parts, ShardQueue};
use aperture_bus::setup::{ensure_streams, LeaseSettings};
use aperture_bus::wire::{decode, encode, split_parts, ResultPart, ShardTask, Work};
use aperture_bus::*;
use futures_util::StreamExt;
use nats::{free_port, nats_unavailable, NatsServer};
use std::time::Duration;

struct Bus {
    _dir: tempfile::TempDir,
    server: NatsServer,
    files: aperture_bus::auth::ServerFiles,
}

fn bus() -> Option<Bus> {
    if let Some(why) = nats_unavailable() {
        if std::env::var_os("APERTURE_LAB_REQUIRED").is_some() {
            panic!("{why}");
        }
        eprintln!("skipped: {why}");
        return None;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let workers = vec!["w1".to_string(), "w2".to_string()];
    let files = write_server_config(
        dir.path(),
        "127.0.0.1:4222",
        &dir.path().join("js"),
        &workers,
    )
    .expect("init");
    let server = NatsServer::start(&files.config, "127.0.0.1", free_port(), None);
    Some(Bus {
        _dir: dir,
        server,
        files,
    })
}

fn auth(path: &std::path::Path) -> BusAuth {
    BusAuth {
        nkey_file: Some(path.to_owned()),
        ..BusAuth::default()
    }
}

fn task(shard: u32) -> ShardTask {
    ShardTask {
        tenant: "acme".into(),
        scan: "scan-1".into(),
        shard,
        avoid: vec![],
        work: Work::Domains {
            domains: vec!["lab.test".into()],
            resolvers: vec![],
            qps: 10,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_leases_one_shard_stores_its_results_and_acks_it() {
    let Some(b) = bus() else { return };
    let url = b.server.url("127.0.0.1");
    let coord = connect(&url, &auth(&b.files.coordinator_seed), "coordinator", None)
        .await
        .expect("coordinator connects");
    let cjs = async_nats::jetstream::new(coord.clone());
    let lease = LeaseSettings {
        ack_wait: Duration::from_secs(2),
        max_deliver: 3,
    };
    ensure_streams(&cjs, &lease).await.expect("streams");
    // Twice: idempotent, and a changed ack wait is taken.
    ensure_streams(
        &cjs,
        &LeaseSettings {
            ack_wait: Duration::from_secs(3),
            ..lease.clone()
        },
    )
    .await
    .expect("streams again");
    for shard in 0..2 {
        cjs.publish(
            shard_subject("acme", "scan-1", shard),
            encode(&task(shard)).into(),
        )
        .await
        .expect("publish")
        .await
        .expect("stored");
    }

    let (w1_name, w1_seed) = &b.files.worker_seeds[0];
    let w1 = connect(&url, &auth(w1_seed), w1_name, Some(&inbox_prefix(w1_name)))
        .await
        .expect("worker connects");
    let wjs = async_nats::jetstream::new(w1.clone());
    let queue = ShardQueue::open(&wjs).await.expect("queue");
    let first = queue
        .next(Duration::from_secs(2))
        .await
        .expect("pull")
        .expect("a shard");
    let t = first.task.as_ref().expect("task reads");
    assert_eq!((t.shard, first.delivered), (0, 1));
    // Held past the ack wait by progress acks: not redelivered to anybody.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        first.progress().await.expect("progress");
    }
    let second = queue
        .next(Duration::from_secs(2))
        .await
        .expect("pull")
        .expect("shard 1");
    assert_eq!(
        second.task.as_ref().expect("task").shard,
        1,
        "one at a time, in order"
    );
    // Shard 1 is released: it comes back.
    second.release(None).await.expect("release");
    let again = queue
        .next(Duration::from_secs(2))
        .await
        .expect("pull")
        .expect("shard 1 again");
    assert_eq!(
        (again.task.as_ref().expect("task").shard, again.delivered),
        (1, 2)
    );

    let head = ResultPart {
        tenant: "acme".into(),
        scan: "scan-1".into(),
        shard: 0,
        run: "run-a".into(),
        part: 0,
        last: false,
        source: None,
        probes_sent: 0,
        observations: vec![],
    };
    publish_parts(&wjs, w1_name, split_parts(&head, &[]).expect("parts"))
        .await
        .expect("results stored");
    first.finish().await.expect("acked");

    // The coordinator reads the part under w1's subject.
    let results = cjs
        .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
            COORDINATOR_CONSUMER,
            RESULTS_STREAM,
        )
        .await
        .expect("coordinator consumer");
    let mut batch = results
        .batch()
        .max_messages(10)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .expect("pull results");
    let msg = batch.next().await.expect("one part").expect("message");
    assert_eq!(worker_of_subject(&msg.subject), Some("w1"));
    let part: ResultPart<serde_json::Value> = decode("part", &msg.payload).expect("part");
    assert_eq!((part.shard, part.last), (0, true));
    msg.ack().await.expect("ack");
    // Shard 0 is gone from the work queue; shard 1 is still there (leased).
    let stream = cjs.get_stream(SHARDS_STREAM).await.expect("stream");
    assert!(stream
        .get_last_raw_message_by_subject(&shard_subject("acme", "scan-1", 0))
        .await
        .is_err());
    assert!(stream
        .get_last_raw_message_by_subject(&shard_subject("acme", "scan-1", 1))
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_is_kept_to_its_own_subjects_and_a_wrong_key_is_refused() {
    let Some(b) = bus() else { return };
    let url = b.server.url("127.0.0.1");
    let coord = connect(&url, &auth(&b.files.coordinator_seed), "coordinator", None)
        .await
        .expect("coordinator connects");
    let cjs = async_nats::jetstream::new(coord.clone());
    ensure_streams(&cjs, &LeaseSettings::default())
        .await
        .expect("streams");

    let (w1_name, w1_seed) = &b.files.worker_seeds[0];
    let (w2_name, w2_seed) = &b.files.worker_seeds[1];
    let w1 = connect(&url, &auth(w1_seed), w1_name, Some(&inbox_prefix(w1_name)))
        .await
        .expect("w1");
    let w2 = connect(&url, &auth(w2_seed), w2_name, Some(&inbox_prefix(w2_name)))
        .await
        .expect("w2");
    // w1 tries to read w2's results: the server refuses the subscription.
    let mut spy = w1
        .subscribe(results_subject(w2_name))
        .await
        .expect("sub sent");
    w1.flush().await.expect("flush");
    let w2js = async_nats::jetstream::new(w2.clone());
    publish_parts(&w2js, w2_name, vec![b"{\"probe\":1}".to_vec()])
        .await
        .expect("w2 publishes its own");
    let got = tokio::time::timeout(Duration::from_secs(2), spy.next()).await;
    assert!(
        !matches!(got, Ok(Some(_))),
        "w1 read a message of w2's results subject"
    );
    // w1 publishing as w2 (or as the coordinator's shard queue) is not stored.
    let w1js = async_nats::jetstream::new(w1.clone());
    let forged = w1js
        .publish(results_subject(w2_name), b"forged".to_vec().into())
        .await;
    let stored = match forged {
        Ok(ack) => tokio::time::timeout(Duration::from_secs(3), ack).await,
        Err(_) => Ok(Err(async_nats::jetstream::context::PublishError::new(
            async_nats::jetstream::context::PublishErrorKind::Other,
        ))),
    };
    assert!(!matches!(stored, Ok(Ok(_))), "a forged result was stored");
    let forged_shard = w1js
        .publish(shard_subject("acme", "scan-9", 0), b"{}".to_vec().into())
        .await;
    if let Ok(ack) = forged_shard {
        let r = tokio::time::timeout(Duration::from_secs(3), ack).await;
        assert!(!matches!(r, Ok(Ok(_))), "a worker queued a shard");
    }
    let info = cjs
        .get_stream(RESULTS_STREAM)
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .state
        .messages;
    assert_eq!(info, 1, "only w2's own part is in the results stream");

    // A key the server does not list is refused.
    let stranger = tempfile::tempdir().expect("tmp");
    let other = write_server_config(stranger.path(), "x:1", stranger.path(), &["w1".into()])
        .expect("other keys");
    let refused = connect(
        &url,
        &auth(&other.worker_seeds[0].1),
        "w1",
        Some("_INBOX_w1"),
    )
    .await;
    assert!(refused.is_err(), "a worker with a wrong key connected");
}
