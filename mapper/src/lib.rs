//! Discovery: what to probe (targets, ports, exclusions, the permuted index space and its
//! shards) and how (SYN over raw sockets, or connect), paced with governor.
//!
//! This crate never touches storage or HTTP. A scan is planned ([`plan::plan`]), cut into
//! [`shard::Shard`]s (plain data), and each shard run by an engine that reports
//! [`engine::Hit`]s on a channel.

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

pub use error::{EngineError, Failure, SpecError};
