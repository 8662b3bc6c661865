//! The coordinator's streams and consumers, made with the plain JetStream API calls that
//! nats-server 2.9 (Debian bookworm) understands — no key-value buckets, whose client
//! side needs a newer server.

use crate::{BusError, COORDINATOR_CONSUMER, RESULTS_STREAM, SHARDS_STREAM, WORKERS_CONSUMER};
use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::Context;
use std::time::Duration;

/// How shards are leased.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// A shard not acknowledged, nor progressed, for this long goes to another worker.
    pub ack_wait: Duration,
    /// Deliveries before a shard is given up as failed (shown on the scan, retryable).
    pub max_deliver: i64,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        LeaseSettings {
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
        }
    }
}

/// The advisory the server sends when a shard ran out of deliveries.
pub fn max_deliveries_advisory() -> String {
    format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{SHARDS_STREAM}.{WORKERS_CONSUMER}")
}

/// Creates the two streams and their consumers when absent; a consumer whose lease
/// settings changed is made again (its messages stay in the work-queue stream).
pub async fn ensure_streams(js: &Context, lease: &LeaseSettings) -> Result<(), BusError> {
    for (name, subjects) in [
        (SHARDS_STREAM, vec!["aperture.shard.>".to_string()]),
        (RESULTS_STREAM, vec!["aperture.res.*.batch".to_string()]),
    ] {
        js.get_or_create_stream(stream::Config {
            name: name.to_owned(),
            subjects,
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::js(format!("stream {name}"), e))?;
    }
    let workers = pull::Config {
        durable_name: Some(WORKERS_CONSUMER.to_owned()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: lease.ack_wait,
        max_deliver: lease.max_deliver,
        max_ack_pending: 10_000,
        ..Default::default()
    };
    ensure_consumer(js, SHARDS_STREAM, workers).await?;
    let coordinator = pull::Config {
        durable_name: Some(COORDINATOR_CONSUMER.to_owned()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(60),
        max_deliver: -1,
        max_ack_pending: 100_000,
        ..Default::default()
    };
    ensure_consumer(js, RESULTS_STREAM, coordinator).await
}

async fn ensure_consumer(js: &Context, stream: &str, want: pull::Config) -> Result<(), BusError> {
    let name = want.durable_name.clone().unwrap_or_default();
    let what = || format!("consumer {stream}/{name}");
    let s = js
        .get_stream(stream)
        .await
        .map_err(|e| BusError::js(what(), e))?;
    if let Ok(mut existing) = s.get_consumer::<pull::Config>(&name).await {
        let info = existing.info().await.map_err(|e| BusError::js(what(), e))?;
        let c = &info.config;
        if c.ack_wait == want.ack_wait && c.max_deliver == want.max_deliver {
            return Ok(());
        }
        s.delete_consumer(&name)
            .await
            .map_err(|e| BusError::js(what(), e))?;
    }
    s.create_consumer(want)
        .await
        .map_err(|e| BusError::js(what(), e))?;
    Ok(())
}
