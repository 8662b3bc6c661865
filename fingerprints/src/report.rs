//! What a grab adds to a port observation: the service behind it, and the TLS,
//! certificate and HTTP facts exposure reviews live on. Part of the JSONL contract.

use crate::cert::CertSummary;
use crate::http_facts::HttpFacts;
use crate::identify::RiskClass;
use crate::session::Banner;
use serde::{Deserialize, Serialize};

/// TLS as negotiated (or, for servers rustls cannot talk to, as read from our own
/// legacy handshake).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// The certificate came from our own ClientHello (old versions or ciphers).
    pub legacy: bool,
    /// Reached through STARTTLS on a cleartext protocol.
    pub starttls: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jarm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Certificates of the chain that could not be parsed (malformed DER).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_errors: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpReport {
    #[serde(flatten)]
    pub facts: HttpFacts,
    /// Shodan-compatible favicon hash (mmh3 of the base64 with newlines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub favicon_hash: Option<i32>,
}

/// Everything a grab learned about one open port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// What kind of exposure this is, for the exposure policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskClass>,
    /// Credentials would cross the network in clear.
    pub cleartext_auth: bool,
    /// 0–100: how sure the identification is; absent when nothing was identified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
    /// The rule or fingerprint that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner: Option<Banner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsReport>,
    /// The certificate chain as presented, leaf first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate: Vec<CertSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpReport>,
    /// What an unauthenticated-access check read (or saw refused) on this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unauth: Option<crate::unauth::Unauth>,
    /// Connections the grab opened (each under its own deadline), and whether the port
    /// never answered a hello.
    pub grab: GrabStats,
    /// Set when this port's host answered on at least this many of the ports probed in
    /// one run — a SYN proxy, tarpit or firewall that accepts everything, not that many
    /// services. This one report stands for all of them: none was grabbed or reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers_every_port: Option<u32>,
    /// What a UDP probe's replies said, and how much they amplified it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<UdpReport>,
}

/// A UDP port's replies: the protocol's facts and the amplification they measure
/// (bytes of every valid reply within the wait, over the bytes of every probe sent to
/// the port: one per pass). Sizes are UDP payloads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpReport {
    pub protocol: String,
    /// Bytes of one probe's payload.
    pub request_bytes: u32,
    pub reply_bytes: u32,
    pub replies: u32,
    /// reply_bytes / (request_bytes × probes sent), in hundredths (an integer keeps the
    /// schema exact).
    pub amplification_x100: u32,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub facts: std::collections::BTreeMap<String, String>,
}

impl UdpReport {
    pub fn amplification(&self) -> f64 {
        f64::from(self.amplification_x100) / 100.0
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrabStats {
    pub connections: u32,
    pub silent: bool,
    pub millis: u64,
}
