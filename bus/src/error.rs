//! What can go wrong on the bus, in words an operator can act on.

use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BusError {
    /// The server could not be reached or refused the credential.
    #[error("cannot connect to the bus at {url}: {why} (is nats-server running there, and is the credential one its config lists?)")]
    Connect { url: String, why: String },
    /// A credential file is missing or not a NATS user seed.
    #[error("credential {path}: {why}")]
    Credential { path: String, why: String },
    /// Setting up or reading a stream or consumer failed.
    #[error("JetStream {what}: {why}")]
    JetStream { what: String, why: String },
    /// A message that is not what its subject promises.
    #[error("malformed {what}: {why}")]
    Malformed { what: &'static str, why: String },
    /// Bad input to a command (a worker name, a directory).
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl BusError {
    pub fn js(what: impl Into<String>, why: impl std::fmt::Display) -> Self {
        BusError::JetStream {
            what: what.into(),
            why: why.to_string(),
        }
    }
}
