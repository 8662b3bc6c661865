//! Discovery: what to probe (targets, ports, exclusions, the permuted index space and its
//! shards) and how (SYN over raw sockets, or connect), paced with governor.
//!
//! This crate never touches storage or HTTP. A scan is planned ([`plan::plan`]), cut into
//! shards of plain data ([`run::ShardSpec`]), and each shard run by [`run::run_shard`]
//! (or [`run::run_segments`] on a plan at hand): an engine, paced by [`pace::Throttle`],
//! then grabs on open ports. The CLI, the service's in-process pool and a remote worker
//! all run shards through that one call.

pub mod connect;
pub mod cookie;
pub mod dns;
pub mod engine;
pub mod entropy;
pub mod error;
pub mod grab;
pub mod intervals;
pub mod pace;
pub mod packet_io;
pub mod permute;
pub mod plan;
pub mod ports;
pub mod probe;
#[allow(unsafe_code)]
pub mod rawsock;
pub mod resolve;
pub mod run;
pub mod shard;
pub mod sim;
pub mod space;
pub mod special;
pub mod syn;
pub mod targets;
pub mod udp;

pub use error::{EngineError, Failure, SpecError};
