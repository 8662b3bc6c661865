//! The messages on the bus, as JSON: readable with any NATS tool when something goes
//! wrong, and versioned by their fields (unknown fields are ignored, new ones default).

use crate::{BusError, MAX_PART_BYTES};
use aperture_fingerprints::dns::observation::{NameObservation, ZoneObservation};
use aperture_fingerprints::PortObservation;
use aperture_mapper::run::ShardSpec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::net::{IpAddr, SocketAddr};

/// One shard to run: the message on the shards stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardTask {
    pub tenant: String,
    pub scan: String,
    pub shard: u32,
    /// Vantages flagged as blocked on this scan when it was queued, for whoever reads
    /// the stream: the coordinator refuses them the shard with their rate grant.
    #[serde(default)]
    pub avoid: Vec<String>,
    pub work: Work,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Work {
    /// A range of the scan's permutation of addresses × ports.
    Ports(Box<ShardSpec>),
    /// DNS enumeration of the scan's domains.
    Domains {
        domains: Vec<String>,
        resolvers: Vec<SocketAddr>,
        qps: u32,
    },
}

/// What a worker observed, as the store takes it (`observation` names the kind).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "observation", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)]
pub enum WireObservation {
    Port(PortObservation),
    Name(NameObservation),
    Zone(ZoneObservation),
}

/// One part of the results of one run of one shard. `O` is what the parts carry: the
/// worker sends pre-encoded observations, the coordinator reads them as the store's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultPart<O> {
    pub tenant: String,
    pub scan: String,
    pub shard: u32,
    /// This run of the shard (random): parts of different runs never mix.
    pub run: String,
    /// 0, 1, … ; the run is complete when parts 0..=last are all in.
    pub part: u32,
    pub last: bool,
    /// The vantage's source address (the worker's name is the subject's).
    pub source: Option<IpAddr>,
    /// Probes the run sent, retries included (in every part: the same number).
    pub probes_sent: u64,
    pub observations: Vec<O>,
}

/// A worker's state, once a second; the reply is a [`Grant`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Heartbeat {
    pub version: String,
    pub source: Option<IpAddr>,
    /// The shard it runs or is about to run.
    pub running: Option<Running>,
    /// Shards it completed since it started.
    pub shards_done: u64,
    /// Probes it sent since it started.
    pub probes_sent: u64,
    /// Its send rate over the last few seconds.
    pub probes_per_sec: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    pub tenant: String,
    pub scan: String,
    pub shard: u32,
    /// The delivery's stream sequence: a refusal requeues a delivery once.
    #[serde(default)]
    pub stream_seq: u64,
}

/// The coordinator's answer: this worker's share of the running scan's rate, valid for
/// `lease_ms` from its receipt unless renewed. Rate 0: wait (the budget is taken).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Grant {
    pub rate: u64,
    /// Probes per second to any one /24 (IPv4) or /64 (IPv6), on top of `rate`.
    pub per_net_rate: Option<u32>,
    pub lease_ms: u64,
    /// Hand the shard back: this worker may not run this scan (say why).
    pub refuse: Option<String>,
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs to a Vec cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, BusError> {
    serde_json::from_slice(bytes).map_err(|e| BusError::Malformed {
        what,
        why: e.to_string(),
    })
}

/// The results of one run as parts of at most [`MAX_PART_BYTES`] each (one observation
/// alone may exceed it: grabs are capped far below the server's limit). A run with no
/// observations is one empty part: the coordinator still learns the shard is done.
pub fn split_parts(
    head: &ResultPart<()>,
    observations: &[WireObservation],
) -> Result<Vec<Vec<u8>>, BusError> {
    let mut encoded: Vec<Box<RawValue>> = Vec::with_capacity(observations.len());
    for o in observations {
        let text = serde_json::to_string(o).map_err(|e| BusError::Malformed {
            what: "observation",
            why: e.to_string(),
        })?;
        encoded.push(
            RawValue::from_string(text).map_err(|e| BusError::Malformed {
                what: "observation",
                why: e.to_string(),
            })?,
        );
    }
    let mut groups: Vec<Vec<Box<RawValue>>> = vec![Vec::new()];
    let mut size = 0usize;
    for raw in encoded {
        let len = raw.get().len() + 1;
        let full = groups.last().is_some_and(|g| !g.is_empty()) && size + len > MAX_PART_BYTES;
        if full {
            groups.push(Vec::new());
            size = 0;
        }
        size += len;
        if let Some(g) = groups.last_mut() {
            g.push(raw);
        }
    }
    let count = groups.len();
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(i, observations)| {
            encode(&ResultPart {
                tenant: head.tenant.clone(),
                scan: head.scan.clone(),
                shard: head.shard,
                run: head.run.clone(),
                part: i as u32,
                last: i + 1 == count,
                source: head.source,
                probes_sent: head.probes_sent,
                observations,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aperture_fingerprints::{PortState, Probe, Proto, Reason};

    fn port(i: u16) -> WireObservation {
        WireObservation::Port(PortObservation {
            ip: IpAddr::from([198, 18, 0, 1]),
            port: i,
            proto: Proto::Tcp,
            state: PortState::Open,
            reason: Reason::SynAck,
            ttl: Some(64),
            timestamp: std::time::SystemTime::UNIX_EPOCH,
            scan_id: "scan-1".into(),
            probe: Probe::Syn,
            service: None,
        })
    }

    #[test]
    fn parts_stay_under_the_limit_and_carry_every_observation_once() {
        let head = ResultPart {
            tenant: "acme".into(),
            scan: "scan-1".into(),
            shard: 3,
            run: "r".into(),
            part: 0,
            last: false,
            source: None,
            probes_sent: 9,
            observations: vec![],
        };
        let many: Vec<WireObservation> = (0..20_000).map(port).collect();
        let parts = split_parts(&head, &many).expect("split");
        assert!(parts.len() > 1, "20k observations need several parts");
        let mut ports = Vec::new();
        for (i, bytes) in parts.iter().enumerate() {
            assert!(
                bytes.len() <= MAX_PART_BYTES + 1024,
                "part {i}: {}",
                bytes.len()
            );
            let p: ResultPart<WireObservation> = decode("part", bytes).expect("decode");
            assert_eq!((p.part as usize, p.last), (i, i + 1 == parts.len()));
            for o in p.observations {
                if let WireObservation::Port(o) = o {
                    ports.push(o.port);
                }
            }
        }
        assert_eq!(ports, (0..20_000).collect::<Vec<u16>>());
        let empty = split_parts(&head, &[]).expect("split");
        assert_eq!(empty.len(), 1);
        let p: ResultPart<WireObservation> = decode("part", &empty[0]).expect("decode");
        assert!(p.last && p.observations.is_empty());
    }
}
