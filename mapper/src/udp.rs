//! The UDP probe module: one protocol datagram per (address, port), in the same
//! stateless engine as SYN. A reply is believed only when it comes back to the keyed
//! source port of its flow *and* echoes the keyed token the protocol carries (DNS id,
//! SNMP request-id, NTP origin time, STUN transaction id, QUIC connection ids, IKE SPI,
//! …). An ICMP port unreachable quoting our probe says closed; administratively
//! prohibited says filtered.

use crate::cookie::{Cookie, CookieKey};
use crate::probe::{fold, sum_words, ProbeModule, Reply, Verdict};
use aperture_fingerprints::udp::{Template, UdpProto, TOKEN_LEN};
use aperture_fingerprints::{PortState, Reason};
use etherparse::{IpNumber, Ipv4HeaderSlice};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

const IP_LEN: usize = 20;
const UDP_LEN: usize = 8;

/// Which protocol each UDP port of a scan is probed with: the user's choice
/// (`U:5300=dns`), else the port's registered protocol, else an empty datagram.
pub fn protocol_of(port: u16, assigned: &BTreeMap<u16, UdpProto>) -> Option<UdpProto> {
    assigned
        .get(&port)
        .copied()
        .or_else(|| UdpProto::for_port(port))
}

#[derive(Debug, Clone)]
pub struct UdpProbe {
    src: u32,
    key: CookieKey,
    ports_base: u16,
    ports_count: u16,
    ttl: u8,
    templates: HashMap<u16, Template>,
    /// For ports with no protocol: an empty datagram (only ICMP can answer it usefully).
    empty: Template,
    /// Ports probed with TFTP, whose replies come from a new server port.
    tftp: Vec<u16>,
    max_len: usize,
}

impl UdpProbe {
    pub fn new(
        src: u32,
        key: CookieKey,
        (ports_base, ports_count): (u16, u16),
        ttl: u8,
        ports: &[u16],
        assigned: &BTreeMap<u16, UdpProto>,
    ) -> Self {
        let from = Ipv4Addr::from(src);
        let templates: HashMap<u16, Template> = ports
            .iter()
            .filter_map(|&p| Some((p, Template::new(protocol_of(p, assigned)?, from))))
            .collect();
        let tftp = templates
            .iter()
            .filter(|(_, t)| t.proto.replies_from_new_port())
            .map(|(p, _)| *p)
            .collect();
        let mut empty = Template::new(UdpProto::Tftp, from);
        empty.payload.clear();
        let max_len = templates
            .values()
            .map(|t| t.payload.len())
            .max()
            .unwrap_or(0)
            + IP_LEN
            + UDP_LEN;
        Self {
            src,
            key,
            ports_base,
            ports_count: ports_count.max(1),
            ttl,
            templates,
            empty,
            tftp,
            max_len,
        }
    }

    fn template(&self, port: u16) -> &Template {
        self.templates.get(&port).unwrap_or(&self.empty)
    }

    /// The protocol `port` is probed with.
    pub fn protocol(&self, port: u16) -> Option<UdpProto> {
        self.templates.get(&port).map(|t| t.proto)
    }

    /// Bytes of the probe to `port` (IP and UDP headers included).
    pub fn request_bytes(&self, port: u16) -> usize {
        IP_LEN + UDP_LEN + self.template(port).payload.len()
    }

    fn cookie(&self, dst: u32, dport: u16) -> Cookie {
        self.key
            .cookie(self.src, dst, dport, self.ports_base, self.ports_count)
    }

    fn token(&self, dst: u32, dport: u16) -> [u8; TOKEN_LEN] {
        self.key.token(self.src, dst, dport)
    }

    /// A UDP datagram to us: ours if it comes to the flow's port and echoes its token.
    fn udp_reply(&self, ip: &Ipv4HeaderSlice<'_>, at: usize, packet: &[u8]) -> Verdict {
        let Some(h) = packet.get(at..at + UDP_LEN) else {
            return Verdict::NotOurs;
        };
        let (sport, dport) = (
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
        );
        if dport.wrapping_sub(self.ports_base) >= self.ports_count {
            return Verdict::NotOurs;
        }
        let wire_len = usize::from(u16::from_be_bytes([h[4], h[5]])).saturating_sub(UDP_LEN);
        let start = at + UDP_LEN;
        let captured = packet.len().saturating_sub(start).min(wire_len);
        let payload = &packet[start..start + captured];
        let from = u32::from(ip.source_addr());
        let reply = |port: u16| {
            Verdict::Reply(Reply {
                ip: from,
                port,
                state: PortState::Open,
                reason: Reason::UdpResponse,
                ttl: ip.ttl(),
                payload: Some((start as u16, captured as u16)),
                reply_len: wire_len as u32,
            })
        };
        let probed = |port: u16| {
            self.templates.contains_key(&port)
                && self.cookie(from, port).source_port == dport
                && self
                    .template(port)
                    .echo_matches(payload, &self.token(from, port))
        };
        if probed(sport) {
            return reply(sport);
        }
        // TFTP answers from a new port (RFC 1350 §4): DATA or ERROR to our flow's port.
        if matches!(payload.get(0..2), Some([0, 3]) | Some([0, 5])) {
            if let Some(&port) = self.tftp.iter().find(|&&p| probed(p)) {
                return reply(port);
            }
        }
        Verdict::Invalid
    }

    /// An ICMP destination unreachable quoting one of our probes.
    fn icmp_reply(&self, ip: &Ipv4HeaderSlice<'_>, at: usize, packet: &[u8]) -> Verdict {
        let Some(&[kind, code]) = packet.get(at..at + 2) else {
            return Verdict::NotOurs;
        };
        if kind != 3 {
            return Verdict::NotOurs;
        }
        let (state, reason) = match code {
            3 => (PortState::Closed, Reason::PortUnreach),
            9 | 10 | 13 => (PortState::Filtered, Reason::AdminProhibited),
            _ => return Verdict::NotOurs,
        };
        let quoted = packet.get(at + 8..).unwrap_or_default();
        let Ok(q) = Ipv4HeaderSlice::from_slice(quoted) else {
            return Verdict::NotOurs;
        };
        if q.protocol() != IpNumber::UDP || u32::from(q.source_addr()) != self.src {
            return Verdict::NotOurs;
        }
        let qat = q.slice().len();
        let Some(h) = quoted.get(qat..qat + UDP_LEN) else {
            return Verdict::NotOurs;
        };
        let (sport, dport) = (
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
        );
        if sport.wrapping_sub(self.ports_base) >= self.ports_count {
            return Verdict::NotOurs;
        }
        let dst = u32::from(q.destination_addr());
        if self.cookie(dst, dport).source_port != sport {
            return Verdict::Invalid;
        }
        // What the message quotes of our payload must be what we sent (token included).
        let sent = quoted.get(qat + UDP_LEN..).unwrap_or_default();
        let template = self.template(dport);
        let mut expected = vec![0u8; template.payload.len()];
        template.write(&mut expected, &self.token(dst, dport));
        let n = sent.len().min(expected.len());
        if sent[..n] != expected[..n] {
            return Verdict::Invalid;
        }
        Verdict::Reply(Reply {
            ip: dst,
            port: dport,
            state,
            reason,
            ttl: ip.ttl(),
            payload: None,
            reply_len: 0,
        })
    }
}

impl ProbeModule for UdpProbe {
    fn packet_len(&self) -> usize {
        self.max_len
    }

    fn prepare(&self, buf: &mut [u8]) {
        buf.fill(0);
        buf[0] = 0x45;
        buf[8] = self.ttl;
        buf[9] = 17;
        buf[12..16].copy_from_slice(&self.src.to_be_bytes());
    }

    fn len_for(&self, dport: u16) -> usize {
        self.request_bytes(dport)
    }

    fn make(&self, buf: &mut [u8], dst: u32, dport: u16) {
        let template = self.template(dport);
        let total = self.request_bytes(dport).min(buf.len());
        let udp_len = (total - IP_LEN) as u16;
        let c = self.cookie(dst, dport);
        buf[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        buf[4..6].copy_from_slice(&((c.seq >> 16) as u16).to_be_bytes());
        buf[10..12].copy_from_slice(&[0, 0]);
        buf[16..20].copy_from_slice(&dst.to_be_bytes());
        let ip_sum = fold(sum_words(&buf[..IP_LEN]));
        buf[10..12].copy_from_slice(&ip_sum.to_be_bytes());
        let (_, udp) = buf.split_at_mut(IP_LEN);
        udp[0..2].copy_from_slice(&c.source_port.to_be_bytes());
        udp[2..4].copy_from_slice(&dport.to_be_bytes());
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        udp[6..8].copy_from_slice(&[0, 0]);
        template.write(
            &mut udp[UDP_LEN..usize::from(udp_len)],
            &self.token(dst, dport),
        );
        let pseudo = sum_words(&self.src.to_be_bytes())
            + sum_words(&dst.to_be_bytes())
            + 17
            + u32::from(udp_len);
        let mut sum = fold(pseudo + sum_words(&udp[..usize::from(udp_len)]));
        if sum == 0 {
            sum = 0xffff; // RFC 768: zero means "no checksum".
        }
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
    }

    fn validate(&self, packet: &[u8]) -> Verdict {
        let Ok(ip) = Ipv4HeaderSlice::from_slice(packet) else {
            return Verdict::NotOurs;
        };
        if u32::from(ip.destination_addr()) != self.src || ip.is_fragmenting_payload() {
            return Verdict::NotOurs;
        }
        let at = ip.slice().len();
        match ip.protocol() {
            IpNumber::UDP => self.udp_reply(&ip, at, packet),
            IpNumber::ICMP => self.icmp_reply(&ip, at, packet),
            _ => Verdict::NotOurs,
        }
    }

    fn reports_repeats(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
