use super::*;
use etherparse::{PacketBuilder, UdpHeaderSlice};
use proptest::prelude::*;

const SRC: u32 = 0xC613_FF01; // 198.19.255.1
const DST: u32 = 0xC612_0105; // 198.18.1.5

fn probe() -> UdpProbe {
    UdpProbe::new(
        SRC,
        CookieKey::new(3, 4),
        (61000, 4096),
        64,
        &[53, 69, 123, 5300, 9999],
        &BTreeMap::from([(5300, UdpProto::Dns)]),
    )
}

fn made(p: &UdpProbe, dst: u32, port: u16) -> Vec<u8> {
    let mut buf = vec![0u8; p.packet_len()];
    p.prepare(&mut buf);
    p.make(&mut buf, dst, port);
    buf.truncate(p.len_for(port));
    buf
}

/// A datagram from `from:sport` to the probe's source port.
fn datagram(probe_pkt: &[u8], sport: u16, payload: &[u8]) -> Vec<u8> {
    let ip = Ipv4HeaderSlice::from_slice(probe_pkt).expect("ip");
    let udp = UdpHeaderSlice::from_slice(&probe_pkt[20..]).expect("udp");
    let mut out = Vec::new();
    PacketBuilder::ipv4(ip.destination(), ip.source(), 55)
        .udp(sport, udp.source_port())
        .write(&mut out, payload)
        .expect("write");
    out
}

/// The DNS answer a server gives: the query with QR set.
fn dns_echo(probe_pkt: &[u8]) -> Vec<u8> {
    let mut q = probe_pkt[28..].to_vec();
    q[2] |= 0x80;
    q
}

fn icmp(probe_pkt: &[u8], code: u8) -> Vec<u8> {
    let ip = Ipv4HeaderSlice::from_slice(probe_pkt).expect("ip");
    let mut body = vec![3, code, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(probe_pkt);
    let mut out = Vec::new();
    let h = etherparse::Ipv4Header::new(
        body.len() as u16,
        60,
        IpNumber::ICMP,
        ip.destination(),
        ip.source(),
    )
    .expect("header");
    h.write(&mut out).expect("write");
    out.extend(body);
    out
}

#[test]
fn probes_are_valid_udp_with_correct_checksums_and_per_port_payloads() {
    let p = probe();
    for port in [53u16, 69, 123, 5300, 9999] {
        let pkt = made(&p, DST, port);
        let ip = Ipv4HeaderSlice::from_slice(&pkt).expect("ip");
        let h = ip.to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(usize::from(ip.total_len()), pkt.len());
        let udp = UdpHeaderSlice::from_slice(&pkt[20..]).expect("udp");
        assert_eq!(udp.destination_port(), port);
        assert_eq!(usize::from(udp.length()), pkt.len() - 20);
        let want = udp
            .to_header()
            .calc_checksum_ipv4(&h, &pkt[28..])
            .expect("checksum");
        assert_eq!(udp.checksum(), want, "udp checksum on {port}");
    }
    assert_eq!(made(&p, DST, 123).len(), 28 + 48);
    assert_eq!(made(&p, DST, 9999).len(), 28, "no protocol: empty datagram");
    assert_eq!(p.protocol(5300), Some(UdpProto::Dns), "the user's mapping");
    assert_eq!(
        made(&p, DST, 5300)[28 + 12..28 + 20],
        *b"\x07version",
        "DNS on an unusual port"
    );
}

#[test]
fn a_reply_must_match_port_cookie_and_echoed_token() {
    let p = probe();
    let pkt = made(&p, DST, 53);
    let answer = dns_echo(&pkt);
    match p.validate(&datagram(&pkt, 53, &answer)) {
        Verdict::Reply(r) => {
            assert_eq!((r.ip, r.port, r.state), (DST, 53, PortState::Open));
            let (at, n) = r.payload.expect("payload");
            let got = datagram(&pkt, 53, &answer);
            assert_eq!(&got[usize::from(at)..usize::from(at + n)], &answer[..]);
            assert_eq!(r.reply_len as usize, answer.len());
        }
        other => panic!("expected open, got {other:?}"),
    }
    // Right port cookie, wrong DNS id: a blind spoof that guessed the port.
    let mut forged = answer.clone();
    forged[0] ^= 1;
    assert_eq!(p.validate(&datagram(&pkt, 53, &forged)), Verdict::Invalid);
    // Another run's key.
    let other = UdpProbe::new(
        SRC,
        CookieKey::new(9, 9),
        (61000, 4096),
        64,
        &[53],
        &BTreeMap::new(),
    );
    assert!(matches!(
        other.validate(&datagram(&pkt, 53, &answer)),
        Verdict::Invalid | Verdict::NotOurs
    ));
    // From another port than probed: not an answer to this flow.
    assert_eq!(p.validate(&datagram(&pkt, 54, &answer)), Verdict::Invalid);
    // Our own probe seen on the way out.
    assert_eq!(p.validate(&pkt), Verdict::NotOurs);
}

#[test]
fn tftp_answers_from_a_new_port() {
    let p = probe();
    let pkt = made(&p, DST, 69);
    let err = b"\x00\x05\x00\x01File not found\x00";
    match p.validate(&datagram(&pkt, 40123, err)) {
        Verdict::Reply(r) => assert_eq!((r.port, r.state), (69, PortState::Open)),
        other => panic!("expected open tftp, got {other:?}"),
    }
    assert_eq!(
        p.validate(&datagram(&pkt, 40123, b"\x00\x09junk")),
        Verdict::Invalid
    );
}

#[test]
fn icmp_unreachable_quoting_our_probe_closes_or_filters() {
    let p = probe();
    let pkt = made(&p, DST, 123);
    match p.validate(&icmp(&pkt, 3)) {
        Verdict::Reply(r) => assert_eq!(
            (r.ip, r.port, r.state, r.reason),
            (DST, 123, PortState::Closed, Reason::PortUnreach)
        ),
        other => panic!("expected closed, got {other:?}"),
    }
    match p.validate(&icmp(&pkt, 13)) {
        Verdict::Reply(r) => assert_eq!(r.state, PortState::Filtered),
        other => panic!("expected filtered, got {other:?}"),
    }
    assert_eq!(
        p.validate(&icmp(&pkt, 1)),
        Verdict::NotOurs,
        "host unreachable"
    );
    // A quote whose payload is not what we sent (token changed): refused.
    let mut changed = pkt.clone();
    changed[28 + 40] ^= 0xff;
    assert_eq!(p.validate(&icmp(&changed, 3)), Verdict::Invalid);
    // A quote of a probe to another port than its cookie's.
    let mut moved = pkt.clone();
    moved[22..24].copy_from_slice(&124u16.to_be_bytes());
    assert_eq!(p.validate(&icmp(&moved, 3)), Verdict::Invalid);
    // Truncated quotes (8 bytes of UDP only) still carry the port cookie.
    let short = icmp(&pkt[..28], 3);
    assert!(matches!(p.validate(&short), Verdict::Reply(_)));
}

proptest! {
    #[test]
    fn validate_never_panics_on_hostile_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = probe().validate(&bytes);
    }

    #[test]
    fn validate_never_panics_on_mutated_replies(idx in 0usize..120, val in any::<u8>(), cut in 0usize..120, which in 0usize..2) {
        let p = probe();
        let pkt = made(&p, DST, 53);
        let mut r = if which == 0 { datagram(&pkt, 53, &dns_echo(&pkt)) } else { icmp(&pkt, 3) };
        let n = r.len();
        r[idx % n] = val;
        r.truncate(n - cut.min(n));
        let _ = p.validate(&r);
    }
}
