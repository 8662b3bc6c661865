//! Replies built byte by byte from the specifications (not captured from any tool), so
//! each echo rule and parser is checked against the wire format it claims to read.

use super::*;
use proptest::prelude::*;

const SRC: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 1);
const TOKEN: [u8; TOKEN_LEN] = [
    0x91, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xf0, 0x01,
];
const OTHER: [u8; TOKEN_LEN] = [7; TOKEN_LEN];

fn sent(proto: UdpProto) -> (Template, Vec<u8>) {
    let t = Template::new(proto, SRC);
    let mut buf = vec![0u8; t.payload.len()];
    t.write(&mut buf, &TOKEN);
    (t, buf)
}

fn check(proto: UdpProto, reply: &[u8]) -> UdpFacts {
    let (t, _) = sent(proto);
    assert!(t.echo_matches(reply, &TOKEN), "{proto:?} echo accepted");
    if t.token_len() > 0 {
        assert!(
            !t.echo_matches(reply, &OTHER),
            "{proto:?} wrong token refused"
        );
    }
    parse_reply(proto, reply)
}

fn dns_answer(query: &[u8], flags: u16, answers: &[(u16, u16, Vec<u8>)]) -> Vec<u8> {
    let mut r = query.to_vec();
    r[2..4].copy_from_slice(&flags.to_be_bytes());
    r[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
    for (rtype, class, rdata) in answers {
        r.extend_from_slice(&[0xc0, 12]);
        r.extend_from_slice(&rtype.to_be_bytes());
        r.extend_from_slice(&class.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 0]);
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(rdata);
    }
    r
}

#[test]
fn dns_version_bind_names_the_server_and_recursion() {
    let (_, q) = sent(UdpProto::Dns);
    assert_eq!(&q[0..2], &TOKEN[0..2]);
    assert_eq!(&q[12..26], b"\x07version\x04bind\x00");
    let mut txt = vec![24];
    txt.extend_from_slice(b"9.18.28-1~deb12u2-Debian");
    let f = check(UdpProto::Dns, &dns_answer(&q, 0x8580, &[(16, 3, txt)]));
    assert_eq!(f.product.as_deref(), Some("BIND"));
    assert_eq!(f.version.as_deref(), Some("9.18.28"));
    assert_eq!(f.facts["recursion_available"], "true");
    let mut txt = vec![14];
    txt.extend_from_slice(b"unbound 1.17.1");
    let f = check(UdpProto::Dns, &dns_answer(&q, 0x8500, &[(16, 3, txt)]));
    assert_eq!(
        (f.product.as_deref(), f.version.as_deref()),
        (Some("Unbound"), Some("1.17.1"))
    );
    assert_eq!(f.facts["recursion_available"], "false");
    // REFUSED still proves a DNS server.
    let f = check(UdpProto::Dns, &dns_answer(&q, 0x8105, &[]));
    assert_eq!(f.facts["rcode"], "REFUSED");
    // Our own query (QR clear) reflected back is not an answer.
    assert!(!Template::new(UdpProto::Dns, SRC).echo_matches(&q, &TOKEN));
}

#[test]
fn mdns_lists_service_types() {
    let (_, q) = sent(UdpProto::Mdns);
    let mut name = Vec::new();
    name.extend_from_slice(b"\x05_http\x04_tcp\x05local\x00");
    let f = check(UdpProto::Mdns, &dns_answer(&q, 0x8400, &[(12, 1, name)]));
    assert_eq!(f.facts["services"], "_http._tcp.local");
}

#[test]
fn netbios_node_status_names_host_and_workgroup() {
    let (_, q) = sent(UdpProto::NetbiosNs);
    // RFC 1002 §4.2.18: header, RR_NAME, NBSTAT, IN, TTL 0, RDLENGTH, NUM_NAMES, names.
    assert_eq!(&q[13..15], b"CK");
    let mut r = q[..12].to_vec();
    r[2..4].copy_from_slice(&0x8400u16.to_be_bytes());
    r[4..6].copy_from_slice(&[0, 0]);
    r[6..8].copy_from_slice(&[0, 1]);
    r.extend_from_slice(&q[12..46]);
    r.extend_from_slice(&[0, 0x21, 0, 1, 0, 0, 0, 0, 0, 65, 2]);
    let entry = |name: &str, suffix: u8, flags: u8| {
        let mut e = format!("{name:<15}").into_bytes();
        e.push(suffix);
        e.extend_from_slice(&[flags, 0]);
        e
    };
    r.extend(entry("LABHOST", 0, 0x04));
    r.extend(entry("WORKGROUP", 0, 0x84));
    r.extend_from_slice(&[0, 0x11, 0x22, 0x33, 0x44, 0x55]);
    let f = check(UdpProto::NetbiosNs, &r);
    assert_eq!(f.facts["netbios_name"], "LABHOST");
    assert_eq!(f.facts["workgroup"], "WORKGROUP");
    assert_eq!(f.facts["mac"], "00:11:22:33:44:55");
}

#[test]
fn ntp_server_reply_echoes_the_transmit_time_as_origin() {
    let (_, q) = sent(UdpProto::Ntp);
    assert_eq!((q.len(), q[0]), (48, 0x23));
    let mut r = vec![0u8; 48];
    r[0] = 0x24; // version 4, mode 4
    r[1] = 2;
    r[12..16].copy_from_slice(&[198, 18, 0, 1]);
    r[24..32].copy_from_slice(&q[40..48]);
    let f = check(UdpProto::Ntp, &r);
    assert_eq!(
        (f.facts["stratum"].as_str(), f.facts["refid"].as_str()),
        ("2", "198.18.0.1")
    );
    r[0] = 0x23; // a client request echoing is not a server reply
    assert!(!Template::new(UdpProto::Ntp, SRC).echo_matches(&r, &TOKEN));
}

#[test]
fn snmp_get_response_with_public_is_a_default_community() {
    for (proto, version) in [(UdpProto::Snmp2c, 1u8), (UdpProto::Snmp1, 0)] {
        let (_, q) = sent(proto);
        assert_eq!(q[4], version);
        assert_eq!(q[17] & 0xc0, 0x40, "positive, minimal request-id");
        let descr = b"Linux lab 6.1.0-28-amd64 #1 SMP x86_64";
        let mut vb = vec![
            0x06,
            0x08,
            0x2b,
            6,
            1,
            2,
            1,
            1,
            1,
            0,
            0x04,
            descr.len() as u8,
        ];
        vb.extend_from_slice(descr);
        let mut bind = vec![0x30, vb.len() as u8];
        bind.extend(vb);
        let mut list = vec![0x30, bind.len() as u8];
        list.extend(bind);
        let mut pdu = vec![0x02, 0x04];
        pdu.extend_from_slice(&q[17..21]);
        pdu.extend_from_slice(&[0x02, 0x01, 0x00, 0x02, 0x01, 0x00]);
        pdu.extend(list);
        let mut body = vec![0x02, 0x01, version, 0x04, 0x06];
        body.extend_from_slice(b"public");
        body.push(0xa2);
        body.push(pdu.len() as u8);
        body.extend(pdu);
        let mut r = vec![0x30, 0x81, body.len() as u8];
        r.extend(body);
        let f = check(proto, &r);
        assert_eq!(f.facts["community_accepted"], "true");
        assert_eq!(f.facts["os"], "Linux");
        assert_eq!(f.facts["kernel"], "6.1.0-28-amd64");
    }
}

#[test]
fn ssdp_server_header_names_the_product() {
    let r = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: upnp:rootdevice\r\nUSN: uuid:1::upnp:rootdevice\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.3\r\nLOCATION: http://198.18.0.9:5000/rootDesc.xml\r\n\r\n";
    let f = check(UdpProto::Ssdp, r);
    assert_eq!(
        (f.product.as_deref(), f.version.as_deref()),
        (Some("MiniUPnPd"), Some("2.3.3"))
    );
    assert_eq!(f.facts["location"], "http://198.18.0.9:5000/rootDesc.xml");
}

#[test]
fn memcached_version_over_udp() {
    let (_, q) = sent(UdpProto::Memcached);
    let mut r = q[..8].to_vec();
    r.extend_from_slice(b"VERSION 1.6.18\r\n");
    let f = check(UdpProto::Memcached, &r);
    assert_eq!(
        (f.product.as_deref(), f.version.as_deref()),
        (Some("memcached"), Some("1.6.18"))
    );
}

#[test]
fn coap_ack_lists_resources() {
    let (_, q) = sent(UdpProto::Coap);
    assert_eq!(&q[8..20], b"\xbb.well-known");
    // ACK (type 2), 2.05 Content, same MID and token, Content-Format 40, payload.
    let mut r = vec![0x64, 0x45];
    r.extend_from_slice(&q[2..8]);
    r.extend_from_slice(&[0xc1, 40, 0xff]);
    r.extend_from_slice(b"</sensors/temp>;rt=\"t\"");
    let f = check(UdpProto::Coap, &r);
    assert_eq!(f.facts["code"], "2.05");
    assert_eq!(f.facts["resources"], "</sensors/temp>;rt=\"t\"");
}

#[test]
fn ipmi_auth_capabilities() {
    let (_, q) = sent(UdpProto::Ipmi);
    // Both IPMI checksums make their bytes sum to zero (IPMI v1.5 §13.8).
    assert_eq!(q[14..17].iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
    assert_eq!(q[17..23].iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
    let mut r = q[..14].to_vec();
    r[13] = 16;
    r.extend_from_slice(&[
        0x81, 0x1c, 0x63, 0x20, 0x00, 0x38, 0x00, 0x01, 0x97, 0x04, 0x03, 0, 0, 0, 0,
    ]);
    let f = check(UdpProto::Ipmi, &r);
    assert_eq!(f.facts["ipmi_2_0"], "true");
    assert_eq!(f.facts["anonymous_login"], "true");
}

#[test]
fn stun_software_attribute() {
    let (_, q) = sent(UdpProto::Stun);
    let sw = b"Coturn-4.6.1 'Gorst'";
    let mut r = vec![0x01, 0x01, 0, 0];
    r.extend_from_slice(&q[4..20]);
    r.extend_from_slice(&[0x80, 0x22, 0, sw.len() as u8]);
    r.extend_from_slice(sw);
    let n = (r.len() - 20) as u16;
    r[2..4].copy_from_slice(&n.to_be_bytes());
    let f = check(UdpProto::Stun, &r);
    assert_eq!(
        (f.product.as_deref(), f.version.as_deref()),
        (Some("Coturn"), Some("4.6.1"))
    );
}

#[test]
fn sip_answer_echoes_the_branch() {
    let (_, q) = sent(UdpProto::Sip);
    let text = String::from_utf8(q.clone()).expect("ascii");
    assert!(text.contains("branch=z9hG4bK9122334455667788"), "{text}");
    assert!(text.contains("Call-ID: 9122334455667788@aperture"));
    let via = text.lines().nth(1).expect("via");
    let r = format!("SIP/2.0 200 OK\r\n{via};received=198.19.255.1;rport=61000\r\nServer: kamailio (5.6.3 (x86_64/linux))\r\nAllow: OPTIONS, INVITE\r\n\r\n");
    let f = check(UdpProto::Sip, r.as_bytes());
    assert_eq!(
        (f.product.as_deref(), f.version.as_deref()),
        (Some("kamailio"), Some("5.6.3"))
    );
}

#[test]
fn quic_version_negotiation_swaps_connection_ids() {
    let (_, q) = sent(UdpProto::Quic);
    assert_eq!(q.len(), 1200);
    let mut r = vec![0x80, 0, 0, 0, 0, 8];
    r.extend_from_slice(&q[15..23]);
    r.push(8);
    r.extend_from_slice(&q[6..14]);
    r.extend_from_slice(&[0, 0, 0, 1, 0x6b, 0x33, 0x43, 0xcf]);
    let f = check(UdpProto::Quic, &r);
    assert_eq!(f.facts["versions"], "0x00000001 0x6b3343cf");
    // Ids not swapped: not an answer to us.
    let mut wrong = r.clone();
    wrong[6..14].copy_from_slice(&q[6..14]);
    wrong[15..23].copy_from_slice(&q[15..23]);
    assert!(!Template::new(UdpProto::Quic, SRC).echo_matches(&wrong, &TOKEN));
}

#[test]
fn ike_reply_echoes_the_initiator_spi() {
    let (_, q) = sent(UdpProto::Ike);
    assert_eq!(q.len(), 376);
    assert_eq!(u32::from_be_bytes([q[24], q[25], q[26], q[27]]), 376);
    let mut r = q[..8].to_vec();
    r.extend_from_slice(&[1; 8]);
    r.extend_from_slice(&[41, 0x20, 34, 0x20, 0, 0, 0, 0, 0, 0, 0, 38]);
    r.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0, 17, 0, 14]);
    let f = check(UdpProto::Ike, &r);
    assert_eq!(f.facts["payloads"], "notify:17");
}

#[test]
fn wsd_probe_matches_relate_to_our_message() {
    let (_, q) = sent(UdpProto::Wsd);
    let text = String::from_utf8(q).expect("ascii");
    assert!(text.contains("urn:uuid:91223344-5566-7788-99aa-bbccddeef001"));
    let r = "<s:Envelope><s:Header><a:RelatesTo>urn:uuid:91223344-5566-7788-99aa-bbccddeef001</a:RelatesTo></s:Header><s:Body><d:ProbeMatches><d:ProbeMatch><d:Types>dn:NetworkVideoTransmitter</d:Types><d:XAddrs>http://198.18.0.5/onvif</d:XAddrs></d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>";
    let f = check(UdpProto::Wsd, r.as_bytes());
    assert_eq!(f.facts["types"], "dn:NetworkVideoTransmitter");
}

#[test]
fn tftp_error_reply() {
    let f = check(UdpProto::Tftp, b"\x00\x05\x00\x01File not found\x00");
    assert_eq!(
        (f.facts["reply"].as_str(), f.facts["error"].as_str()),
        ("error", "File not found")
    );
}

#[test]
fn names_and_ports() {
    for p in ALL {
        assert_eq!(UdpProto::from_name(p.name()), Some(*p));
        assert_eq!(UdpProto::for_port(p.default_port()), Some(*p));
    }
    assert_eq!(UdpProto::from_name("SNMPv1"), Some(UdpProto::Snmp1));
    assert_eq!(UdpProto::from_name("gopher"), None);
    assert_eq!(UdpProto::for_port(9), None);
}

#[test]
fn escaped_text_from_hostile_replies() {
    let r = b"HTTP/1.1 200 OK\r\nSERVER: Evil/1.0\x1b[31m \xe2\x80\xae\r\n\r\n";
    let f = parse_reply(UdpProto::Ssdp, r);
    assert!(f.facts["server"].chars().all(|c| (' '..='~').contains(&c)));
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), which in 0usize..17) {
        let all: Vec<UdpProto> = ALL.iter().copied().chain([UdpProto::Snmp1, UdpProto::NtpControl]).collect();
        let proto = all[which % all.len()];
        let _ = parse_reply(proto, &bytes);
        let _ = Template::new(proto, SRC).echo_matches(&bytes, &TOKEN);
    }

    #[test]
    fn truncated_replies_never_panic(cut in 0usize..400) {
        for p in ALL {
            let (_, q) = sent(*p);
            let n = q.len().min(cut);
            let _ = parse_reply(*p, &q[..n]);
            let _ = Template::new(*p, SRC).echo_matches(&q[..n], &TOKEN);
        }
    }
}
