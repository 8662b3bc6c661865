//! The store of assets, observations and their change history, and the exposure policy
//! that judges them against what each tenant has sanctioned.
//!
//! sled-backed, no sockets: the mapper produces observations, this crate keeps them, and
//! the service reads them. Start at [`Store::open`], [`Store::apply`] and
//! [`Store::list_assets`]; the policy is in [`policy`] (pure rules and lifecycle) and
//! [`findings`] (their records).

pub mod access;
pub mod candidates;
pub mod error;
mod evidence;
pub mod facts;
pub mod findings;
mod ingest;
pub mod keys;
pub mod ledger;
mod migrate;
pub mod model;
pub mod outbox;
pub mod policy;
mod postings;
mod query;
mod records;
pub mod reporting;
pub mod siem;
mod store;
pub mod time;
pub mod transfer;
pub mod vulns;
pub mod windows;

pub use aperture_fingerprints::SCHEMA_VERSION as OBSERVATION_SCHEMA_VERSION;
pub use error::StoreError;
pub use keys::{AssetKey, AssetKind, Proto, TenantId};
pub use model::*;
pub use query::{AssetFilter, MAX_PAGE};
pub use store::{Store, StoreOptions, PREVIOUS_SCHEMA, STORE_SCHEMA};
