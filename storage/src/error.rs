//! What can go wrong in the store. Each variant says what to do about it, because these
//! messages reach users through the CLI and the API.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// sled failed (I/O error, disk full, or its own corruption check).
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// The directory holds a store of another schema version.
    #[error(
        "the store at {path} has schema version {found}, this aperture reads version {expected}: \
         export the data with the aperture that wrote it and import it here"
    )]
    SchemaMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
    /// Another process (or another open store in this one) holds the directory.
    #[error(
        "the store at {0} is in use by another process (an aperture serve or admin command \
         still running?): stop it, or give another data directory"
    )]
    InUse(PathBuf),
    /// The directory holds a sled database that is not an aperture store.
    #[error("{0} holds data that is not an aperture store: give an empty or new directory")]
    NotAStore(PathBuf),
    /// A record could not be decoded: the store was changed by something else.
    #[error("corrupt record in the store: {0}")]
    Corrupt(String),
    /// Bad input from a caller; the message says what was wrong and how to fix it.
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with what is stored (exists already, scan finished...).
    #[error("{0}")]
    Conflict(String),
    /// A finding transition the lifecycle does not allow.
    #[error("{0}")]
    Refused(String),
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
