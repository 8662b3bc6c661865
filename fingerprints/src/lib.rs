//! The vocabulary of what Aperture observed.
//!
//! This crate is the leaf of the workspace: no sockets, no async runtime. Everything a
//! probe, the store or the API says about the world is expressed in these types, so they
//! are also the stable output contract (`docs` in the README describe the JSON schema).

pub mod observation;

pub use observation::{PortObservation, PortState, Probe, Proto, Reason, SCHEMA_VERSION};
pub mod cert;
pub mod dns;
pub mod http_facts;
pub mod identify;
pub mod proto;
pub mod reader;
pub mod report;
pub mod session;
pub mod tls;
pub mod udp;
pub mod unauth;
