//! The sled-backed store of assets, observations and their change history.
//!
//! Not built yet: it arrives with the storage issue. The crate exists now so the workspace
//! layout fixed by the design card is in place and dependencies already point one way
//! (`storage` → `fingerprints`, never → `mapper`).

pub use aperture_fingerprints::SCHEMA_VERSION as OBSERVATION_SCHEMA_VERSION;
