//! One port seen in one scan, as written to JSON Lines and later to the store.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

/// Version of the result schema; bumped only for incompatible changes, so users can pin it.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    Open,
    Closed,
    /// A router or firewall said the port is administratively prohibited (ICMP).
    Filtered,
}

/// How a result was produced: lets a consumer tell a raw SYN scan from a connect scan,
/// which matters later when deciding whether a scan "covered" an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    Syn,
    Connect,
    /// A protocol datagram over UDP (stateless, raw sockets).
    Udp,
}

/// The packet or event that decided the state (as masscan and nmap report a reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    SynAck,
    Rst,
    Connected,
    Refused,
    /// A UDP reply that echoed the probe's cookie.
    UdpResponse,
    /// ICMP port unreachable quoting our probe.
    PortUnreach,
    /// ICMP communication administratively prohibited quoting our probe.
    AdminProhibited,
}

/// One (address, port) result. Field order is the JSON field order: keep it stable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortObservation {
    pub ip: IpAddr,
    pub port: u16,
    pub proto: Proto,
    pub state: PortState,
    pub reason: Reason,
    /// IP TTL of the reply; `None` for connect probes, where the kernel hides it.
    pub ttl: Option<u8>,
    #[serde(with = "rfc3339")]
    pub timestamp: SystemTime,
    pub scan_id: String,
    pub probe: Probe,
    /// What a grab (`--grab`) learned; absent without one.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub service: Option<crate::report::ServiceReport>,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::SynAck => "syn-ack",
            Reason::Rst => "rst",
            Reason::Connected => "connected",
            Reason::Refused => "refused",
            Reason::UdpResponse => "udp-response",
            Reason::PortUnreach => "port-unreach",
            Reason::AdminProhibited => "admin-prohibited",
        })
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Probe::Syn => "syn",
            Probe::Connect => "connect",
            Probe::Udp => "udp",
        })
    }
}

/// Timestamps are RFC 3339 in UTC with milliseconds: sortable as text and unambiguous.
pub mod rfc3339 {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn json_schema_is_stable() {
        let obs = PortObservation {
            ip: "198.18.0.7".parse().expect("literal address"),
            port: 443,
            proto: Proto::Tcp,
            state: PortState::Open,
            reason: Reason::SynAck,
            ttl: Some(64),
            timestamp: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            scan_id: "s1".into(),
            probe: Probe::Syn,
            service: None,
        };
        let text = serde_json::to_string(&obs).expect("serialises");
        assert_eq!(
            text,
            r#"{"ip":"198.18.0.7","port":443,"proto":"tcp","state":"open","reason":"syn-ack","ttl":64,"timestamp":"2023-11-14T22:13:20.123Z","scan_id":"s1","probe":"syn"}"#
        );
        let back: PortObservation = serde_json::from_str(&text).expect("parses back");
        assert_eq!(back, obs);
    }
}
