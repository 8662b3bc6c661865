//! UDP probes and what their replies say: payloads written from the protocol
//! specifications (cited per protocol), the field each reply must echo back, and the
//! facts a reply carries. Pure bytes in, bytes out: the engine in `mapper` puts these in
//! packets and hands replies back.
//!
//! A probe is a template plus a *token*: bytes derived from a keyed hash of the flow that
//! the engine writes into the fields the protocol echoes (DNS id, SNMP request-id, NTP
//! transmit time, STUN transaction id, QUIC connection ids, IKE SPI, …). A reply is
//! believed only when its echoed field equals the token for its flow, on top of the
//! source-port cookie: a spoofed or stray datagram must guess both.

mod parse;
mod templates;

pub use parse::{parse_reply, UdpFacts};

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Bytes of token a probe can carry at most (WS-Discovery's and QUIC's 16).
pub const TOKEN_LEN: usize = 16;

/// The UDP protocols Aperture speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum UdpProto {
    /// RFC 1035 query for `version.bind` TXT in class CHAOS, recursion desired: the
    /// answer names the server and its RA bit says whether it recurses for us.
    Dns,
    /// RFC 5905 mode 3 (client) request.
    Ntp,
    /// RFC 1157 GetRequest sysDescr.0, community `public`.
    Snmp1,
    /// RFC 3416 (v2c) GetRequest sysDescr.0, community `public`.
    Snmp2c,
    /// UPnP Device Architecture M-SEARCH, `ssdp:all`.
    Ssdp,
    /// RFC 1002 node status request (NBSTAT for `*`).
    NetbiosNs,
    /// RFC 6762 §6.7 legacy unicast query for `_services._dns-sd._udp.local` PTR.
    Mdns,
    /// memcached protocol.txt: UDP frame header and `version`.
    Memcached,
    /// RFC 7252 confirmable GET /.well-known/core.
    Coap,
    /// IPMI v1.5 over RMCP: Get Channel Authentication Capabilities.
    Ipmi,
    /// RFC 8489 Binding request.
    Stun,
    /// RFC 3261 OPTIONS (with RFC 3581 `rport`, so the answer comes to our port).
    Sip,
    /// RFC 9000 long-header packet of a reserved version: the server must answer with
    /// Version Negotiation. Padded to 1200 bytes (§14.1).
    Quic,
    /// RFC 7296 IKE_SA_INIT offering AES-CBC-256/SHA-256/MODP-2048.
    Ike,
    /// WS-Discovery 1.0 Probe (SOAP over UDP).
    Wsd,
    /// RFC 1350 read request; the reply comes from a new port of the server.
    Tftp,
    /// NTP mode 6 (control) READVAR: opt-in only, its replies amplify.
    NtpControl,
}

/// Every protocol, in the order `--udp all` lists them.
pub const ALL: &[UdpProto] = &[
    UdpProto::Dns,
    UdpProto::Ntp,
    UdpProto::Snmp2c,
    UdpProto::Ssdp,
    UdpProto::NetbiosNs,
    UdpProto::Mdns,
    UdpProto::Memcached,
    UdpProto::Coap,
    UdpProto::Ipmi,
    UdpProto::Stun,
    UdpProto::Sip,
    UdpProto::Quic,
    UdpProto::Ike,
    UdpProto::Wsd,
    UdpProto::Tftp,
];

impl UdpProto {
    pub fn name(self) -> &'static str {
        match self {
            UdpProto::Dns => "dns",
            UdpProto::Ntp => "ntp",
            UdpProto::Snmp1 => "snmp1",
            UdpProto::Snmp2c => "snmp",
            UdpProto::Ssdp => "ssdp",
            UdpProto::NetbiosNs => "netbios",
            UdpProto::Mdns => "mdns",
            UdpProto::Memcached => "memcached",
            UdpProto::Coap => "coap",
            UdpProto::Ipmi => "ipmi",
            UdpProto::Stun => "stun",
            UdpProto::Sip => "sip",
            UdpProto::Quic => "quic",
            UdpProto::Ike => "ike",
            UdpProto::Wsd => "wsd",
            UdpProto::Tftp => "tftp",
            UdpProto::NtpControl => "ntp-control",
        }
    }

    pub fn from_name(name: &str) -> Option<UdpProto> {
        let all = ALL
            .iter()
            .copied()
            .chain([UdpProto::Snmp1, UdpProto::NtpControl]);
        let lower = name.trim().to_ascii_lowercase();
        let lower = match lower.as_str() {
            "snmp2c" | "snmpv2c" => "snmp",
            "snmpv1" => "snmp1",
            "nbns" | "netbios-ns" => "netbios",
            "ikev2" | "isakmp" => "ike",
            "ws-discovery" => "wsd",
            "rmcp" => "ipmi",
            other => other,
        };
        all.into_iter().find(|p| p.name() == lower)
    }

    /// The port the protocol is registered on (IANA).
    pub fn default_port(self) -> u16 {
        match self {
            UdpProto::Dns => 53,
            UdpProto::Ntp | UdpProto::NtpControl => 123,
            UdpProto::Snmp1 | UdpProto::Snmp2c => 161,
            UdpProto::Ssdp => 1900,
            UdpProto::NetbiosNs => 137,
            UdpProto::Mdns => 5353,
            UdpProto::Memcached => 11211,
            UdpProto::Coap => 5683,
            UdpProto::Ipmi => 623,
            UdpProto::Stun => 3478,
            UdpProto::Sip => 5060,
            UdpProto::Quic => 443,
            UdpProto::Ike => 500,
            UdpProto::Wsd => 3702,
            UdpProto::Tftp => 69,
        }
    }

    /// The protocol probed on `port` when the user did not name one.
    pub fn for_port(port: u16) -> Option<UdpProto> {
        ALL.iter().copied().find(|p| p.default_port() == port)
    }

    /// Whether the reply answers from another port than the one probed (TFTP).
    pub fn replies_from_new_port(self) -> bool {
        self == UdpProto::Tftp
    }
}

/// A probe: bytes to send with the token's spans still zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub proto: UdpProto,
    pub payload: Vec<u8>,
    /// Where the token goes: (offset in payload, token bytes, written as hex text?).
    spans: Vec<Span>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    at: usize,
    from: usize,
    len: usize,
    hex: bool,
}

impl Template {
    /// The probe for `proto` sent from `src` (SIP names it in Via, for the answer).
    pub fn new(proto: UdpProto, src: Ipv4Addr) -> Template {
        templates::build(proto, src)
    }

    /// How many token bytes the reply echoes (0: none; only the port cookie checks it).
    pub fn token_len(&self) -> usize {
        self.spans.iter().map(|s| s.from + s.len).max().unwrap_or(0)
    }

    /// Writes `token` into a copy of the payload in `buf` (at least `payload.len()`).
    pub fn write(&self, buf: &mut [u8], token: &[u8; TOKEN_LEN]) {
        let n = self.payload.len().min(buf.len());
        buf[..n].copy_from_slice(&self.payload[..n]);
        let token = self.fix(token);
        for s in &self.spans {
            let bytes = &token[s.from..s.from + s.len];
            if s.hex {
                for (i, b) in bytes.iter().enumerate() {
                    let at = s.at + 2 * i;
                    if let Some(d) = buf.get_mut(at..at + 2) {
                        d[0] = HEX[usize::from(b >> 4)];
                        d[1] = HEX[usize::from(b & 15)];
                    }
                }
            } else if let Some(d) = buf.get_mut(s.at..s.at + s.len) {
                d.copy_from_slice(bytes);
            }
        }
    }

    /// The token as actually sent: some fields constrain their bytes.
    fn fix(&self, token: &[u8; TOKEN_LEN]) -> [u8; TOKEN_LEN] {
        let mut t = *token;
        if matches!(self.proto, UdpProto::Snmp1 | UdpProto::Snmp2c) {
            // A positive request-id whose 4-byte BER encoding is minimal.
            t[0] = 0x40 | (t[0] & 0x3f);
        }
        t
    }

    /// Whether `reply` echoes the token this flow's probe carried. True when the
    /// protocol echoes nothing (the port cookie is then the only check).
    pub fn echo_matches(&self, reply: &[u8], token: &[u8; TOKEN_LEN]) -> bool {
        let want = self.token_len();
        if want == 0 {
            return true;
        }
        let t = self.fix(token);
        templates::echoed(self.proto, reply).is_some_and(|got| got.get(..want) == t.get(..want))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests;
