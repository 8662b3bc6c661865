//! The probe payloads, each written from its specification, and where a reply echoes
//! the probe's token. Offsets are those of the specs' wire formats.

use super::{Span, Template, UdpProto, HEX};
use std::net::Ipv4Addr;

fn span(at: usize, from: usize, len: usize) -> Span {
    Span {
        at,
        from,
        len,
        hex: false,
    }
}

fn hex_span(at: usize, from: usize, len: usize) -> Span {
    Span {
        at,
        from,
        len,
        hex: true,
    }
}

/// DNS name in wire form (RFC 1035 §3.1).
fn dns_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// A one-question DNS message: id 0 (the token goes there), `flags`.
fn dns_query(flags: u16, name: &str, qtype: u16, qclass: u16) -> Vec<u8> {
    let mut m = vec![0, 0];
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    dns_name(&mut m, name);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&qclass.to_be_bytes());
    m
}

/// SNMP GetRequest for sysDescr.0 (1.3.6.1.2.1.1.1.0), community `public`, with a
/// 4-byte request-id at offset 17 (RFC 1157 §4.1.2, RFC 3416 §4.2.1).
fn snmp_get(version: u8) -> Vec<u8> {
    let mut m = vec![0x30, 0x29, 0x02, 0x01, version, 0x04, 0x06];
    m.extend_from_slice(b"public");
    m.extend_from_slice(&[0xa0, 0x1c, 0x02, 0x04, 0, 0, 0, 0]);
    m.extend_from_slice(&[0x02, 0x01, 0x00, 0x02, 0x01, 0x00]);
    m.extend_from_slice(&[0x30, 0x0e, 0x30, 0x0c, 0x06, 0x08]);
    m.extend_from_slice(&[0x2b, 6, 1, 2, 1, 1, 1, 0, 0x05, 0x00]);
    m
}

/// RFC 1002 §4.1.1 first-level encoding of a NetBIOS name (16 bytes → 32 letters).
fn netbios_name(name: &[u8; 16]) -> Vec<u8> {
    let mut out = vec![32];
    for b in name {
        out.push(b'A' + (b >> 4));
        out.push(b'A' + (b & 15));
    }
    out.push(0);
    out
}

fn ipmi_get_channel_auth() -> Vec<u8> {
    // RMCP (DMTF ASF): version 6, reserved, sequence 0xff (no ACK), class IPMI.
    let mut m = vec![0x06, 0x00, 0xff, 0x07];
    // IPMI v1.5 session header: no auth, sequence 0, session 0, message length 9.
    m.extend_from_slice(&[0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x09]);
    // rsAddr BMC, netFn App (6) << 2, checksum; rqAddr, rqSeq, cmd 0x38;
    // channel 0x0e (this one) with bit 7 (IPMI 2.0 data wanted), privilege admin (4).
    let (rs, netfn) = (0x20u8, 0x06u8 << 2);
    let sum1 = 0u8.wrapping_sub(rs.wrapping_add(netfn));
    let body = [0x81u8, 0x00, 0x38, 0x8e, 0x04];
    let sum2 = 0u8.wrapping_sub(body.iter().fold(0u8, |a, b| a.wrapping_add(*b)));
    m.extend_from_slice(&[rs, netfn, sum1]);
    m.extend_from_slice(&body);
    m.push(sum2);
    m
}

fn ike_sa_init() -> Vec<u8> {
    let mut m = vec![0u8; 16]; // SPIi (token) and SPIr (zero)
    m.extend_from_slice(&[33, 0x20, 34, 0x08, 0, 0, 0, 0]);
    m.extend_from_slice(&376u32.to_be_bytes());
    // SA payload: next KE (34), length 48; one proposal of 4 transforms.
    m.extend_from_slice(&[34, 0, 0, 48]);
    m.extend_from_slice(&[0, 0, 0, 44, 1, 1, 0, 4]);
    m.extend_from_slice(&[3, 0, 0, 12, 1, 0, 0, 12, 0x80, 0x0e, 0x01, 0x00]); // ENCR AES-CBC 256
    m.extend_from_slice(&[3, 0, 0, 8, 2, 0, 0, 5]); // PRF HMAC-SHA2-256
    m.extend_from_slice(&[3, 0, 0, 8, 3, 0, 0, 12]); // INTEG HMAC-SHA2-256-128
    m.extend_from_slice(&[0, 0, 0, 8, 4, 0, 0, 14]); // D-H group 14
                                                     // KE payload: next Nonce (40), length 264, group 14, 256 bytes of public value.
    m.extend_from_slice(&[40, 0, 0x01, 0x08, 0, 14, 0, 0]);
    m.extend((0..256u32).map(|i| (i.wrapping_mul(167) ^ 0x5a) as u8 | 1));
    // Nonce payload: last, length 36.
    m.extend_from_slice(&[0, 0, 0, 36]);
    m.extend((0..32u32).map(|i| (i.wrapping_mul(97) ^ 0xa5) as u8));
    m
}

const WSD_HEAD: &str = concat!(
    r#"<?xml version="1.0" encoding="utf-8"?>"#,
    r#"<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" "#,
    r#"xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" "#,
    r#"xmlns:wsd="http://schemas.xmlsoap.org/ws/2005/04/discovery">"#,
    "<soap:Header><wsa:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To>",
    "<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</wsa:Action>",
    "<wsa:MessageID>urn:uuid:"
);
const WSD_TAIL: &str =
    "</wsa:MessageID></soap:Header><soap:Body><wsd:Probe/></soap:Body></soap:Envelope>";

pub(super) fn build(proto: UdpProto, src: Ipv4Addr) -> Template {
    let (payload, spans) = match proto {
        UdpProto::Dns => (
            dns_query(0x0100, "version.bind", 16, 3),
            vec![span(0, 0, 2)],
        ),
        UdpProto::Mdns => (
            dns_query(0x0000, "_services._dns-sd._udp.local", 12, 1),
            vec![span(0, 0, 2)],
        ),
        UdpProto::NetbiosNs => {
            let mut m = vec![0, 0, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
            let mut name = [0u8; 16];
            name[0] = b'*';
            m.extend(netbios_name(&name));
            m.extend_from_slice(&[0x00, 0x21, 0x00, 0x01]);
            (m, vec![span(0, 0, 2)])
        }
        UdpProto::Ntp => {
            let mut m = vec![0u8; 48];
            m[0] = 0x23; // LI 0, version 4, mode 3
            m[2] = 6; // poll 2^6 s
            m[3] = 0xec; // precision 2^-20 s
            (m, vec![span(40, 0, 8)])
        }
        UdpProto::NtpControl => {
            // RFC 1305 appendix B / RFC 9327: version 2, mode 6, READVAR (2), seq token.
            (
                vec![0x16, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                vec![span(2, 0, 2)],
            )
        }
        UdpProto::Snmp1 => (snmp_get(0), vec![span(17, 0, 4)]),
        UdpProto::Snmp2c => (snmp_get(1), vec![span(17, 0, 4)]),
        UdpProto::Ssdp => (
            b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n"
                .to_vec(),
            vec![],
        ),
        UdpProto::Memcached => {
            let mut m = vec![0, 0, 0, 0, 0, 1, 0, 0];
            m.extend_from_slice(b"version\r\n");
            (m, vec![span(0, 0, 2)])
        }
        UdpProto::Coap => {
            let mut m = vec![0x44, 0x01, 0, 0, 0, 0, 0, 0];
            m.push(0xbb);
            m.extend_from_slice(b".well-known");
            m.push(0x04);
            m.extend_from_slice(b"core");
            (m, vec![span(2, 0, 6)])
        }
        UdpProto::Ipmi => (ipmi_get_channel_auth(), vec![]),
        UdpProto::Stun => {
            let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
            m.extend_from_slice(&[0u8; 12]);
            (m, vec![span(8, 0, 12)])
        }
        UdpProto::Sip => {
            let head = format!(
                "OPTIONS sip:aperture@aperture.invalid SIP/2.0\r\nVia: SIP/2.0/UDP {src};rport;branch=z9hG4bK"
            );
            let mid = "\r\nMax-Forwards: 70\r\nFrom: <sip:aperture@aperture.invalid>;tag=ap\r\nTo: <sip:aperture@aperture.invalid>\r\nCall-ID: ";
            let tail = format!(
                "@aperture\r\nCSeq: 1 OPTIONS\r\nContact: <sip:aperture@{src}>\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n"
            );
            let branch = head.len();
            let call_id = branch + 16 + mid.len();
            let mut m = head.into_bytes();
            m.extend_from_slice(&[b'0'; 16]);
            m.extend_from_slice(mid.as_bytes());
            m.extend_from_slice(&[b'0'; 16]);
            m.extend_from_slice(tail.as_bytes());
            (m, vec![hex_span(branch, 0, 8), hex_span(call_id, 0, 8)])
        }
        UdpProto::Quic => {
            // Long header, Initial, version 0x1a2a3a4a (reserved for negotiation,
            // RFC 9000 §15), DCID and SCID of 8 bytes, empty token, padded to 1200.
            let mut m = vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 8];
            m.extend_from_slice(&[0u8; 8]);
            m.push(8);
            m.extend_from_slice(&[0u8; 8]);
            m.push(0);
            let rest = 1200 - m.len() - 2;
            m.extend_from_slice(&(0x4000u16 | rest as u16).to_be_bytes());
            m.resize(1200, 0);
            (m, vec![span(6, 0, 8), span(15, 8, 8)])
        }
        UdpProto::Ike => (ike_sa_init(), vec![span(0, 0, 8)]),
        UdpProto::Wsd => {
            let at = WSD_HEAD.len();
            let mut m = WSD_HEAD.as_bytes().to_vec();
            m.extend_from_slice(b"00000000-0000-0000-0000-000000000000");
            m.extend_from_slice(WSD_TAIL.as_bytes());
            let spans = vec![
                hex_span(at, 0, 4),
                hex_span(at + 9, 4, 2),
                hex_span(at + 14, 6, 2),
                hex_span(at + 19, 8, 2),
                hex_span(at + 24, 10, 6),
            ];
            (m, spans)
        }
        UdpProto::Tftp => {
            let mut m = vec![0, 1];
            m.extend_from_slice(b"aperture-probe.txt\0octet\0");
            (m, vec![])
        }
    };
    Template {
        proto,
        payload,
        spans,
    }
}

fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    let val = |c: u8| HEX.iter().position(|h| *h == c.to_ascii_lowercase());
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|p| Some((val(p[0])? as u8) << 4 | val(p[1])? as u8))
        .collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The SNMP request-id of a reply, as the 4 bytes we sent.
fn snmp_request_id(m: &[u8]) -> Option<Vec<u8>> {
    let mut r = super::parse::Ber::new(m);
    let mut msg = r.enter(0x30)?;
    msg.skip(0x02)?; // version
    msg.skip(0x04)?; // community
    let (_, mut pdu) = msg.any()?;
    let id = pdu.take(0x02)?;
    if id.is_empty() || id.len() > 4 {
        return None;
    }
    let mut out = vec![0u8; 4 - id.len()];
    out.extend_from_slice(id);
    Some(out)
}

/// What `reply` echoes of the token, in token order (None: no such field).
pub(super) fn echoed(proto: UdpProto, m: &[u8]) -> Option<Vec<u8>> {
    match proto {
        UdpProto::Dns | UdpProto::Mdns | UdpProto::NetbiosNs | UdpProto::Memcached => {
            // A response (QR set) for DNS-shaped messages.
            if proto != UdpProto::Memcached && m.get(2)? & 0x80 == 0 {
                return None;
            }
            Some(m.get(0..2)?.to_vec())
        }
        UdpProto::Ntp => {
            // A server (4) or symmetric passive (2) reply: origin = our transmit time.
            if !matches!(m.first()? & 7, 2 | 4) || m.len() < 48 {
                return None;
            }
            Some(m.get(24..32)?.to_vec())
        }
        UdpProto::NtpControl => {
            if m.first()? & 7 != 6 || m.get(1)? & 0x80 == 0 {
                return None;
            }
            Some(m.get(2..4)?.to_vec())
        }
        UdpProto::Snmp1 | UdpProto::Snmp2c => snmp_request_id(m),
        UdpProto::Coap => {
            let tkl = usize::from(m.first()? & 0x0f);
            if m.first()? >> 6 != 1 || tkl != 4 {
                return None;
            }
            Some(m.get(2..8)?.to_vec())
        }
        UdpProto::Stun => {
            if m.get(4..8)? != [0x21, 0x12, 0xa4, 0x42] || m.first()? & 0xc0 != 0 {
                return None;
            }
            Some(m.get(8..20)?.to_vec())
        }
        UdpProto::Sip => {
            let head_end = find(m, b"\r\n\r\n").unwrap_or(m.len());
            let head = &m[..head_end];
            if !head.starts_with(b"SIP/2.0 ") {
                return None;
            }
            let at = find(head, b"branch=z9hG4bK")? + 14;
            unhex(head.get(at..at + 16)?)
        }
        UdpProto::Quic => {
            // Version Negotiation: long form, version 0; its DCID is our SCID and its
            // SCID our DCID (RFC 9000 §17.2.1).
            if m.first()? & 0x80 == 0 || m.get(1..5)? != [0, 0, 0, 0] {
                return None;
            }
            let dlen = usize::from(*m.get(5)?);
            let dcid = m.get(6..6 + dlen)?;
            let slen = usize::from(*m.get(6 + dlen)?);
            let scid = m.get(7 + dlen..7 + dlen + slen)?;
            if dlen != 8 || slen != 8 {
                return None;
            }
            let mut out = scid.to_vec();
            out.extend_from_slice(dcid);
            Some(out)
        }
        UdpProto::Ike => {
            if m.len() < 28 || m.get(18)? != &34 || m.get(19)? & 0x20 == 0 {
                return None;
            }
            Some(m.get(0..8)?.to_vec())
        }
        UdpProto::Wsd => {
            let at = find(m, b"RelatesTo")?;
            let rest = m.get(at..)?;
            let at = find(rest, b"urn:uuid:")? + 9;
            let uuid: Vec<u8> = rest
                .get(at..at + 36)?
                .iter()
                .copied()
                .filter(|c| *c != b'-')
                .collect();
            unhex(&uuid)
        }
        UdpProto::Ssdp | UdpProto::Ipmi | UdpProto::Tftp => None,
    }
}
