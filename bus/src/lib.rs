//! The work bus between the coordinator (`aperture serve` with `bus_url`) and remote probe
//! workers (`aperture worker`), on NATS JetStream.
//!
//! Two streams, both work queues on file storage, created by the coordinator:
//! - **shards** (`aperture.shard.<tenant>.<scan>.<shard>`): one message per shard to run;
//!   workers share one durable pull consumer and pull one message at a time, keep it
//!   with progress acks while they are really sending, and acknowledge it only once its
//!   results are stored in the results stream. A shard that is never acknowledged comes
//!   back to another worker after the ack wait.
//! - **results** (`aperture.res.<worker>.batch`): the results of one run of one shard, in
//!   parts under the server's payload limit. The worker's name in the subject is
//!   authentic: a worker's credential may publish under its own name only. The
//!   coordinator checks every part against the shard it claims to belong to and stores
//!   a complete run once per (scan, shard): delivery is at-least-once, the store makes it
//!   exactly-once.
//!
//! Plus one core-NATS request per second per worker (`aperture.res.<worker>.hb`): its
//! state, answered with its share of the running scan's rate, which expires unless
//! renewed — one rate budget per scan across all workers.
//!
//! This crate has no storage and no HTTP: a worker is the mapper plus this.

pub mod auth;
pub mod error;
pub mod lease;
pub mod setup;
pub mod wire;

pub use error::BusError;
// Re-exported so the coordinator and the worker use this crate's client.
pub use async_nats;
pub use futures_util;

/// The stream of shards to run.
pub const SHARDS_STREAM: &str = "APERTURE_SHARDS";
/// The workers' shared durable consumer on [`SHARDS_STREAM`].
pub const WORKERS_CONSUMER: &str = "workers";
/// The stream of results.
pub const RESULTS_STREAM: &str = "APERTURE_RESULTS";
/// The coordinator's durable consumer on [`RESULTS_STREAM`].
pub const COORDINATOR_CONSUMER: &str = "coordinator";

/// Results parts stay under this many bytes: the server's default max payload is 1 MiB,
/// and a message far below it never meets a smaller configured limit by surprise.
pub const MAX_PART_BYTES: usize = 512 * 1024;

/// The subject of one shard's message: per-shard subjects let the coordinator ask the
/// stream whether a shard is still waiting (last message for the subject).
pub fn shard_subject(tenant: &str, scan: &str, shard: u32) -> String {
    format!("aperture.shard.{tenant}.{scan}.{shard}")
}

/// Where worker `name` publishes its results.
pub fn results_subject(name: &str) -> String {
    format!("aperture.res.{name}.batch")
}

/// Where worker `name` sends its heartbeat requests.
pub fn heartbeat_subject(name: &str) -> String {
    format!("aperture.res.{name}.hb")
}

/// The inbox prefix of worker `name`: its credential may subscribe under it only.
pub fn inbox_prefix(name: &str) -> String {
    format!("_INBOX_{name}")
}

/// The worker name in a results or heartbeat subject (`aperture.res.<name>.…`).
pub fn worker_of_subject(subject: &str) -> Option<&str> {
    let rest = subject.strip_prefix("aperture.res.")?;
    let (name, _) = rest.split_once('.')?;
    valid_name(name).then_some(name)
}

/// Worker names, tenants and scan ids become subject tokens: letters, digits, `-`, `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_their_worker_and_nothing_else() {
        assert_eq!(worker_of_subject(&results_subject("w-1")), Some("w-1"));
        assert_eq!(worker_of_subject(&heartbeat_subject("w_2")), Some("w_2"));
        assert_eq!(worker_of_subject("aperture.res.*.batch"), None);
        assert_eq!(worker_of_subject("aperture.shard.t.s.1"), None);
        assert!(!valid_name("a.b") && !valid_name("") && !valid_name("a>"));
        assert_eq!(
            shard_subject("acme", "scan-3", 7),
            "aperture.shard.acme.scan-3.7"
        );
    }
}
