//! Errors of the mapper. Bad input is a `SpecError`: its message is one line that says
//! what was wrong and what to do; the CLI prints it and exits 2 before sending anything.

use std::io;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A target token that is neither an address, a CIDR, a range nor a hostname.
    #[error("invalid target {input:?}: {reason}")]
    Target { input: String, reason: String },
    /// A port list that does not parse or names a port outside 1–65535.
    #[error("invalid port specification {input:?}: {reason}")]
    Ports { input: String, reason: String },
    /// An exclusion that does not parse.
    #[error("invalid exclusion {input:?}: {reason}")]
    Exclude { input: String, reason: String },
    /// A file named on the command line could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        #[source]
        source: io::Error,
    },
    /// A hostname target that did not resolve.
    #[error("cannot resolve {name:?}: {reason}")]
    Resolve { name: String, reason: String },
    /// No targets were given at all.
    #[error("no targets given: name addresses, CIDRs, ranges or hostnames, or use -iL FILE")]
    NoTargets,
    /// No ports were given.
    #[error("no ports given: use -p (e.g. -p 22,80,443 or -p-) or --top-ports N")]
    NoPorts,
    /// Every target falls in excluded space.
    #[error("nothing to scan: every target is excluded ({detail})")]
    AllExcluded { detail: String },
    /// The space is larger than the caller confirmed.
    #[error(
        "target space is {probes} probes, above 2^32; pass --confirm-large if that is intended"
    )]
    TooLarge { probes: u128 },
    /// A shard selector like `--shard 3/2`.
    #[error("invalid shard {input:?}: {reason}")]
    Shard { input: String, reason: String },
    /// A resume index outside the shard.
    #[error("--resume-index {index} is outside this shard's range {start}..{end}")]
    ResumeOutOfRange { index: u64, start: u64, end: u64 },
    /// Some option value is unusable (rate 0, IPv6 with the SYN engine, …).
    #[error("{0}")]
    Invalid(String),
}

/// Runtime failures of an engine (after the input was accepted).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Opening raw sockets failed because the process lacks CAP_NET_RAW.
    #[error("raw sockets are not permitted (run as root or grant CAP_NET_RAW): {0}")]
    NotPermitted(#[source] io::Error),
    #[error("packet I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("no route to {0}: cannot choose a source address (use --source-ip)")]
    NoSource(std::net::IpAddr),
    #[error("async runtime failed: {0}")]
    Runtime(String),
}

/// Why a scan did not run: the caller's input (the CLI exits 2, the API answers 4xx), or
/// the machine. The message is the whole story: it is shown as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Failed(String),
}

impl From<SpecError> for Failure {
    fn from(e: SpecError) -> Self {
        Failure::BadInput(e.to_string())
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        Failure::Failed(e.to_string())
    }
}
