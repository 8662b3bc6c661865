//! The probe contract (after zmap's `probe_modules.h`): build a packet template once,
//! write only per-target fields for each probe, and validate replies with no state.
//!
//! `TcpSyn` is the one module today; UDP and ICMP modules would implement the same trait.

use crate::cookie::{Cookie, CookieKey};
use aperture_fingerprints::{PortState, Reason};
use etherparse::{IpNumber, Ipv4HeaderSlice, TcpHeaderSlice};

/// What a valid reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub ip: u32,
    pub port: u16,
    pub state: PortState,
    pub reason: Reason,
    pub ttl: u8,
    /// Where the reply's payload sits in the packet (offset, captured length), if any.
    pub payload: Option<(u16, u16)>,
    /// The payload's size on the wire.
    pub reply_len: u32,
}

/// Why a received packet was not a reply to us (the engine counts these; it never fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Reply(Reply),
    /// Not for this scan at all (another flow, another protocol): ignored silently.
    NotOurs,
    /// Addressed to our source port range but the cookie is wrong: spoofed, stale or
    /// from another run. Counted as invalid.
    Invalid,
}

pub trait ProbeModule: Send + Sync {
    /// Bytes per probe packet.
    fn packet_len(&self) -> usize;
    /// Writes the template into `buf` (len = `packet_len`), once per buffer slot.
    fn prepare(&self, buf: &mut [u8]);
    /// Writes the per-target fields of an already prepared slot.
    fn make(&self, buf: &mut [u8], dst: u32, dport: u16);
    /// Classifies a received IPv4 packet without any per-target state.
    fn validate(&self, packet: &[u8]) -> Verdict;
    /// Bytes of the probe to `dport` (≤ `packet_len`): UDP payloads differ per port.
    fn len_for(&self, _dport: u16) -> usize {
        self.packet_len()
    }
    /// Whether repeated replies of a port are reported too (UDP: they are counted for
    /// amplification); the first still comes first.
    fn reports_repeats(&self) -> bool {
        false
    }
}

/// A TCP SYN with an MSS option (hosts that drop option-less SYNs still answer).
#[derive(Debug, Clone)]
pub struct TcpSyn {
    src: u32,
    key: CookieKey,
    ports_base: u16,
    ports_count: u16,
    template: Vec<u8>,
    /// One's-complement sum of the TCP pseudo header and template, with the per-target
    /// fields zeroed: each probe only adds its own words (RFC 1624 style).
    tcp_partial: u32,
    ip_partial: u32,
}

const IP_LEN: usize = 20;
const TCP_LEN: usize = 24;
const MSS: u16 = 1460;

pub(crate) fn sum_words(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

#[inline(always)]
pub(crate) fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

impl TcpSyn {
    pub fn new(src: u32, key: CookieKey, ports_base: u16, ports_count: u16, ttl: u8) -> Self {
        let mut t = vec![0u8; IP_LEN + TCP_LEN];
        // IPv4: version 4, IHL 5, total length, DF clear, TTL, protocol TCP.
        t[0] = 0x45;
        t[2..4].copy_from_slice(&((IP_LEN + TCP_LEN) as u16).to_be_bytes());
        t[8] = ttl;
        t[9] = 6;
        t[12..16].copy_from_slice(&src.to_be_bytes());
        // TCP: data offset 6 words, SYN, window 1024, MSS option.
        let tcp = &mut t[IP_LEN..];
        tcp[12] = 6 << 4;
        tcp[13] = 0x02;
        tcp[14..16].copy_from_slice(&1024u16.to_be_bytes());
        tcp[20] = 2;
        tcp[21] = 4;
        tcp[22..24].copy_from_slice(&MSS.to_be_bytes());
        let ip_partial = sum_words(&t[..IP_LEN]);
        let pseudo = sum_words(&src.to_be_bytes()) + 6 + TCP_LEN as u32;
        let tcp_partial = pseudo + sum_words(&t[IP_LEN..]);
        Self {
            src,
            key,
            ports_base,
            ports_count,
            template: t,
            tcp_partial,
            ip_partial,
        }
    }

    fn cookie(&self, dst: u32, dport: u16) -> Cookie {
        self.key
            .cookie(self.src, dst, dport, self.ports_base, self.ports_count)
    }

    pub fn source_ports(&self) -> (u16, u16) {
        (self.ports_base, self.ports_count)
    }
}

impl ProbeModule for TcpSyn {
    fn packet_len(&self) -> usize {
        self.template.len()
    }

    fn prepare(&self, buf: &mut [u8]) {
        buf[..self.template.len()].copy_from_slice(&self.template);
    }

    #[inline]
    fn make(&self, buf: &mut [u8], dst: u32, dport: u16) {
        let c = self.cookie(dst, dport);
        let id = (c.seq >> 16) as u16;
        let dst_b = dst.to_be_bytes();
        buf[4..6].copy_from_slice(&id.to_be_bytes());
        buf[16..20].copy_from_slice(&dst_b);
        let dst_words = (dst >> 16) + (dst & 0xffff);
        let ip_sum = self.ip_partial + u32::from(id) + dst_words;
        buf[10..12].copy_from_slice(&fold(ip_sum).to_be_bytes());
        let tcp = &mut buf[IP_LEN..];
        tcp[0..2].copy_from_slice(&c.source_port.to_be_bytes());
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
        tcp[4..8].copy_from_slice(&c.seq.to_be_bytes());
        let tcp_sum = self.tcp_partial
            + dst_words
            + u32::from(c.source_port)
            + u32::from(dport)
            + (c.seq >> 16)
            + (c.seq & 0xffff);
        tcp[16..18].copy_from_slice(&fold(tcp_sum).to_be_bytes());
    }

    fn validate(&self, packet: &[u8]) -> Verdict {
        let Ok(ip) = Ipv4HeaderSlice::from_slice(packet) else {
            return Verdict::NotOurs;
        };
        if ip.protocol() != IpNumber::TCP || u32::from(ip.destination_addr()) != self.src {
            return Verdict::NotOurs;
        }
        if ip.is_fragmenting_payload() {
            return Verdict::NotOurs;
        }
        let Some(rest) = packet.get(ip.slice().len()..) else {
            return Verdict::NotOurs;
        };
        let Ok(tcp) = TcpHeaderSlice::from_slice(rest) else {
            return Verdict::NotOurs;
        };
        let dport = tcp.destination_port();
        if dport.wrapping_sub(self.ports_base) >= self.ports_count {
            return Verdict::NotOurs;
        }
        let from = u32::from(ip.source_addr());
        let c = self.cookie(from, tcp.source_port());
        if dport != c.source_port
            || !tcp.ack()
            || tcp.acknowledgment_number() != c.seq.wrapping_add(1)
        {
            return Verdict::Invalid;
        }
        let (state, reason) = if tcp.syn() && !tcp.rst() {
            (PortState::Open, Reason::SynAck)
        } else if tcp.rst() {
            (PortState::Closed, Reason::Rst)
        } else {
            return Verdict::Invalid;
        };
        Verdict::Reply(Reply {
            ip: from,
            port: tcp.source_port(),
            state,
            reason,
            ttl: ip.ttl(),
            payload: None,
            reply_len: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Ipv4Header, PacketBuilder};
    use proptest::prelude::*;

    const SRC: u32 = 0xC613_FF01; // 198.19.255.1
    const DST: u32 = 0xC612_0105; // 198.18.1.5

    fn probe() -> TcpSyn {
        TcpSyn::new(SRC, CookieKey::new(11, 22), 61000, 4096, 64)
    }

    fn made(p: &TcpSyn, dst: u32, port: u16) -> Vec<u8> {
        let mut buf = vec![0u8; p.packet_len()];
        p.prepare(&mut buf);
        p.make(&mut buf, dst, port);
        buf
    }

    /// A reply as the target's kernel would send it.
    fn reply(p: &TcpSyn, probe_pkt: &[u8], syn: bool, rst: bool, ack_delta: u32) -> Vec<u8> {
        let ip = Ipv4HeaderSlice::from_slice(probe_pkt).expect("ip");
        let tcp = TcpHeaderSlice::from_slice(&probe_pkt[20..]).expect("tcp");
        let mut b = PacketBuilder::ipv4(ip.destination(), ip.source(), 57)
            .tcp(tcp.destination_port(), tcp.source_port(), 777, 65535)
            .ack(tcp.sequence_number().wrapping_add(ack_delta));
        if syn {
            b = b.syn();
        }
        if rst {
            b = b.rst();
        }
        let mut out = Vec::new();
        b.write(&mut out, &[]).expect("write");
        let _ = p;
        out
    }

    #[test]
    fn template_probe_is_a_valid_syn_with_correct_checksums() {
        let p = probe();
        for (dst, port) in [(DST, 80u16), (0xffff_ffff, 65535), (1, 1)] {
            let pkt = made(&p, dst, port);
            let ip = Ipv4HeaderSlice::from_slice(&pkt).expect("ip parses");
            let header = ip.to_header();
            assert_eq!(header.header_checksum, header.calc_header_checksum());
            assert_eq!(u32::from(ip.destination_addr()), dst);
            let tcp = TcpHeaderSlice::from_slice(&pkt[20..]).expect("tcp parses");
            assert!(tcp.syn() && !tcp.ack());
            assert_eq!(tcp.destination_port(), port);
            let expected = tcp
                .to_header()
                .calc_checksum_ipv4(&Ipv4Header::from_slice(&pkt).expect("hdr").0, &[])
                .expect("checksum");
            assert_eq!(tcp.checksum(), expected, "tcp checksum for {dst:x}:{port}");
        }
    }

    #[test]
    fn replies_are_classified_statelessly() {
        let p = probe();
        let pkt = made(&p, DST, 443);
        match p.validate(&reply(&p, &pkt, true, false, 1)) {
            Verdict::Reply(r) => {
                assert_eq!(
                    (r.ip, r.port, r.state, r.ttl),
                    (DST, 443, PortState::Open, 57)
                );
            }
            other => panic!("expected open, got {other:?}"),
        }
        match p.validate(&reply(&p, &pkt, false, true, 1)) {
            Verdict::Reply(r) => assert_eq!(r.state, PortState::Closed),
            other => panic!("expected closed, got {other:?}"),
        }
        assert_eq!(
            p.validate(&reply(&p, &pkt, true, false, 2)),
            Verdict::Invalid
        );
        let other_run = TcpSyn::new(SRC, CookieKey::new(99, 22), 61000, 4096, 64);
        assert_eq!(
            other_run.validate(&reply(&p, &pkt, true, false, 1)),
            Verdict::Invalid
        );
        // Our own outgoing SYN (seen on loopback) is not a reply.
        assert_eq!(p.validate(&pkt), Verdict::NotOurs);
    }

    proptest! {
        #[test]
        fn validate_never_panics_on_hostile_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = probe().validate(&bytes);
        }

        #[test]
        fn validate_never_panics_on_mutated_replies(idx in 0usize..64, val in any::<u8>(), cut in 0usize..64) {
            let p = probe();
            let mut r = reply(&p, &made(&p, DST, 22), true, false, 1);
            let n = r.len();
            r[idx % n] = val;
            r.truncate(n - cut.min(n));
            let _ = p.validate(&r);
        }
    }
}
