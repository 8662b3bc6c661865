//! The worker's side of the shards stream: one shard at a time, held with progress acks,
//! finished only once its results are stored in the results stream.
//!
//! Pulls ask for one message with a short expiry: the client's default stream of pulls
//! prefetches hundreds of messages with their ack timers running, which would starve
//! the other workers and lose the shards to redelivery.

use crate::wire::{decode, ShardTask};
use crate::{results_subject, BusError, SHARDS_STREAM, WORKERS_CONSUMER};
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Context, Message};
use futures_util::StreamExt;
use std::time::Duration;

/// The shared consumer, as a worker sees it.
#[derive(Debug)]
pub struct ShardQueue {
    consumer: PullConsumer,
}

/// One delivered shard.
#[derive(Debug)]
pub struct Lease {
    msg: Message,
    /// The task, or why it could not be read (such a shard is terminated, not retried).
    pub task: Result<ShardTask, BusError>,
    /// How many times the server delivered it (1 the first time). Informational only:
    /// a late ack of an earlier delivery is accepted, so it fences nothing.
    pub delivered: i64,
    /// The message's sequence in the stream.
    pub stream_seq: u64,
}

impl ShardQueue {
    pub async fn open(js: &Context) -> Result<Self, BusError> {
        let consumer = js
            .get_consumer_from_stream(WORKERS_CONSUMER, SHARDS_STREAM)
            .await
            .map_err(|e| {
                BusError::js(
                    format!("consumer {SHARDS_STREAM}/{WORKERS_CONSUMER} (has the coordinator started?)"),
                    e,
                )
            })?;
        Ok(ShardQueue { consumer })
    }

    /// The next shard, or `None` when none came within `wait`.
    pub async fn next(&self, wait: Duration) -> Result<Option<Lease>, BusError> {
        let mut batch = self
            .consumer
            .batch()
            .max_messages(1)
            .expires(wait)
            .messages()
            .await
            .map_err(|e| BusError::js("pull", e))?;
        match batch.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(BusError::js("pull", e)),
            Some(Ok(msg)) => {
                let (delivered, stream_seq) = msg
                    .info()
                    .map(|i| (i.delivered, i.stream_sequence))
                    .unwrap_or((1, 0));
                let task = decode::<ShardTask>("shard task", &msg.payload);
                Ok(Some(Lease {
                    msg,
                    task,
                    delivered,
                    stream_seq,
                }))
            }
        }
    }
}

impl Lease {
    /// Still working on it: the ack wait starts again.
    pub async fn progress(&self) -> Result<(), BusError> {
        self.msg
            .ack_with(AckKind::Progress)
            .await
            .map_err(|e| BusError::js("progress", e))
    }

    /// Hands it back for another worker (after `delay`).
    pub async fn release(&self, delay: Option<Duration>) -> Result<(), BusError> {
        self.msg
            .ack_with(AckKind::Nak(delay))
            .await
            .map_err(|e| BusError::js("release", e))
    }

    /// Done: the results are in the results stream. Waits for the server to confirm.
    pub async fn finish(&self) -> Result<(), BusError> {
        self.msg
            .double_ack()
            .await
            .map_err(|e| BusError::js("ack", e))
    }

    /// Never to run again (an unreadable task).
    pub async fn reject(&self) -> Result<(), BusError> {
        self.msg
            .ack_with(AckKind::Term)
            .await
            .map_err(|e| BusError::js("terminate", e))
    }
}

/// Publishes a run's parts as worker `name`, each confirmed stored by the server before
/// the next; retried a few times across a server restart.
pub async fn publish_parts(js: &Context, name: &str, parts: Vec<Vec<u8>>) -> Result<(), BusError> {
    let subject = results_subject(name);
    for part in parts {
        publish_stored(js, &subject, None, part, 30, Duration::from_secs(1)).await?;
    }
    Ok(())
}

/// Publishes one message to a stream and waits for the server's confirmation that it is
/// stored, retrying `tries` times `pause` apart (a restarting server answers nothing).
pub async fn publish_stored(
    js: &Context,
    subject: &str,
    headers: Option<async_nats::HeaderMap>,
    payload: Vec<u8>,
    tries: u32,
    pause: Duration,
) -> Result<(), BusError> {
    let mut last = String::new();
    for _ in 0..tries.max(1) {
        let payload = bytes::Bytes::from(payload.clone());
        let sent = async {
            let ack = match &headers {
                Some(h) => {
                    js.publish_with_headers(subject.to_owned(), h.clone(), payload)
                        .await
                }
                None => js.publish(subject.to_owned(), payload).await,
            };
            ack.map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match sent {
            Ok(_) => return Ok(()),
            Err(e) => {
                last = e;
                tokio::time::sleep(pause).await;
            }
        }
    }
    Err(BusError::js(format!("publishing to {subject}"), last))
}
