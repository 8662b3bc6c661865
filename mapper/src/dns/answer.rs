//! Reading one DNS answer for what it says about one name, whatever its response code:
//! the CNAME chain from the question, the records owned by the chain's end, and a
//! referral (NS in the authority section, glue in the additional one) when the server
//! delegates instead of answering. Records about other owners are not the name's, and
//! are ignored rather than believed.
//!
//! Servers differ: Knot answers a CNAME loop NOERROR, BIND SERVFAIL with the same CNAMEs;
//! an authoritative-only server answers a CNAME into a zone it does not serve with the
//! CNAME alone and refuses the target; a dangling CNAME comes as NXDOMAIN with the CNAME.
//! The caller decides what each shape means; this only reads.

use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use std::collections::HashSet;
use std::net::IpAddr;

/// A delegation: the server does not hold the name, `zone`'s name servers do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    pub zone: Name,
    pub ns: Vec<Name>,
    /// Addresses the additional section gives for the name read (when it is one of the
    /// delegation's name servers).
    pub glue: Vec<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct Reading {
    pub rcode: ResponseCode,
    /// CNAME targets in the order followed from the question's name.
    pub chain: Vec<Name>,
    /// The chain came back to a name already on it (its last entry).
    pub looped: bool,
    /// Where the chain ends: the question's name when there is no CNAME.
    pub end: Name,
    /// Records of the asked type owned by `end`.
    pub data: Vec<RData>,
    /// A referral to a child zone for `end`, when the answer has nothing for it.
    pub delegation: Option<Delegation>,
    /// A referral to the root: the server does not serve `end` at all.
    pub upward: bool,
}

impl Reading {
    /// Anything at all about the name: a CNAME, records, a delegation.
    pub fn usable(&self) -> bool {
        !self.chain.is_empty() || !self.data.is_empty() || self.delegation.is_some()
    }
}

/// Reads `msg` as the answer to `qname` `rtype`.
pub fn read(msg: &Message, qname: &Name, rtype: RecordType) -> Reading {
    let mut chain = Vec::new();
    let mut looped = false;
    let mut end = qname.clone();
    let mut seen: HashSet<Name> = HashSet::from([qname.clone()]);
    if rtype != RecordType::CNAME {
        // Each step consumes one answer record, so the walk is bounded by the answer.
        while chain.len() < msg.answers().len() {
            let next = msg.answers().iter().find_map(|r| match r.data() {
                Some(RData::CNAME(t)) if r.name() == &end => Some(t.0.clone()),
                _ => None,
            });
            let Some(target) = next else { break };
            chain.push(target.clone());
            if !seen.insert(target.clone()) {
                looped = true;
                break;
            }
            end = target;
        }
    }
    let data: Vec<RData> = if looped {
        Vec::new()
    } else {
        msg.answers()
            .iter()
            .filter(|r| r.record_type() == rtype && r.name() == &end)
            .filter_map(|r| r.data().cloned())
            .collect()
    };
    let mut delegation = None;
    let mut upward = false;
    let has_soa = msg
        .name_servers()
        .iter()
        .any(|r| r.record_type() == RecordType::SOA);
    if data.is_empty() && !looped && !has_soa {
        let ns: Vec<(Name, Name)> = msg
            .name_servers()
            .iter()
            .filter_map(|r| match r.data() {
                Some(RData::NS(n)) => Some((r.name().clone(), n.0.clone())),
                _ => None,
            })
            .collect();
        // The deepest zone cut that holds `end`; NS records about other names are noise.
        let zone = ns
            .iter()
            .map(|(owner, _)| owner)
            .filter(|owner| owner.zone_of(&end))
            .max_by_key(|owner| owner.num_labels())
            .cloned();
        if let Some(zone) = zone {
            if zone.is_root() {
                upward = true;
            } else {
                let ns: Vec<Name> = ns
                    .iter()
                    .filter(|(owner, _)| owner == &zone)
                    .map(|(_, n)| n.clone())
                    .collect();
                let glue = msg
                    .additionals()
                    .iter()
                    .filter(|r| r.name() == &end && ns.contains(r.name()))
                    .filter_map(|r| match r.data() {
                        Some(RData::A(a)) => Some(IpAddr::V4(a.0)),
                        Some(RData::AAAA(a)) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    })
                    .collect();
                delegation = Some(Delegation { zone, ns, glue });
            }
        }
    }
    Reading {
        rcode: msg.response_code(),
        chain,
        looped,
        end,
        data,
        delegation,
        upward,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::{MessageType, Query};
    use hickory_resolver::proto::rr::rdata::{A, CNAME, NS, SOA};
    use hickory_resolver::proto::rr::Record;
    use hickory_resolver::proto::serialize::binary::{BinDecodable, BinEncodable};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    fn a(owner: &str, ip: [u8; 4]) -> Record {
        Record::from_rdata(n(owner), 300, RData::A(A::new(ip[0], ip[1], ip[2], ip[3])))
    }

    fn cname(owner: &str, target: &str) -> Record {
        Record::from_rdata(n(owner), 300, RData::CNAME(CNAME(n(target))))
    }

    fn ns(owner: &str, host: &str) -> Record {
        Record::from_rdata(n(owner), 300, RData::NS(NS(n(host))))
    }

    fn soa(owner: &str) -> Record {
        let s = SOA::new(
            n(&format!("ns1.{owner}")),
            n(&format!("hostmaster.{owner}")),
            1,
            3600,
            900,
            604_800,
            300,
        );
        Record::from_rdata(n(owner), 300, RData::SOA(s))
    }

    /// A message as a server would send it, through the wire format and back: what the
    /// querier gets is what the decoder makes of bytes.
    fn msg(
        q: &str,
        rcode: ResponseCode,
        answers: Vec<Record>,
        authority: Vec<Record>,
        additional: Vec<Record>,
    ) -> Message {
        let mut m = Message::new();
        m.set_id(7)
            .set_message_type(MessageType::Response)
            .set_response_code(rcode)
            .add_query(Query::query(n(q), RecordType::A));
        m.add_answers(answers);
        m.add_name_servers(authority);
        m.add_additionals(additional);
        let bytes = m.to_bytes().expect("encode");
        Message::from_bytes(&bytes).expect("decode")
    }

    fn ip4(d: &RData) -> String {
        d.to_string()
    }

    #[test]
    fn a_plain_answer_ignores_records_about_other_owners() {
        let m = msg(
            "www.x.test.",
            ResponseCode::NoError,
            vec![
                a("www.x.test.", [198, 51, 100, 1]),
                a("evil.y.test.", [203, 0, 113, 9]),
            ],
            vec![ns("x.test.", "ns1.x.test.")],
            vec![a("ns1.x.test.", [198, 51, 100, 53])],
        );
        let r = read(&m, &n("www.x.test."), RecordType::A);
        assert_eq!(r.data.iter().map(ip4).collect::<Vec<_>>(), ["198.51.100.1"]);
        assert!(r.chain.is_empty() && r.delegation.is_none() && !r.upward);
    }

    #[test]
    fn a_cname_loop_answered_servfail_is_still_a_loop() {
        // BIND: SERVFAIL, both CNAMEs in the answer.
        let m = msg(
            "loop1.x.test.",
            ResponseCode::ServFail,
            vec![
                cname("loop1.x.test.", "loop2.x.test."),
                cname("loop2.x.test.", "loop1.x.test."),
            ],
            vec![],
            vec![],
        );
        let r = read(&m, &n("loop1.x.test."), RecordType::A);
        assert!(r.looped);
        assert_eq!(r.chain, [n("loop2.x.test."), n("loop1.x.test.")]);
        assert!(r.usable());
        assert_eq!(r.rcode, ResponseCode::ServFail);
    }

    #[test]
    fn a_cname_with_nxdomain_or_servfail_for_its_target_keeps_the_cname() {
        for rcode in [
            ResponseCode::NXDomain,
            ResponseCode::ServFail,
            ResponseCode::Refused,
        ] {
            let m = msg(
                "old.x.test.",
                rcode,
                vec![cname("old.x.test.", "gone.y.test.")],
                vec![soa("x.test.")],
                vec![],
            );
            let r = read(&m, &n("old.x.test."), RecordType::A);
            assert_eq!(r.chain, [n("gone.y.test.")], "{rcode}");
            assert_eq!(r.end, n("gone.y.test."));
            assert!(r.data.is_empty() && r.delegation.is_none() && r.usable());
        }
    }

    #[test]
    fn a_chain_is_followed_in_any_record_order_and_ends_at_its_records() {
        let m = msg(
            "a.x.test.",
            ResponseCode::NoError,
            vec![
                a("www.x.test.", [198, 51, 100, 10]),
                cname("c.x.test.", "www.x.test."),
                cname("a.x.test.", "b.x.test."),
                a("b.x.test.", [203, 0, 113, 66]),
                cname("b.x.test.", "c.x.test."),
            ],
            vec![],
            vec![],
        );
        let r = read(&m, &n("a.x.test."), RecordType::A);
        assert_eq!(r.chain.len(), 3);
        assert_eq!(r.end, n("www.x.test."));
        // b's stray A is not www's.
        assert_eq!(
            r.data.iter().map(ip4).collect::<Vec<_>>(),
            ["198.51.100.10"]
        );
    }

    #[test]
    fn a_referral_names_the_child_zone_and_its_glue() {
        let referral = |q: &str| {
            msg(
                q,
                ResponseCode::NoError,
                vec![],
                vec![
                    ns("child.x.test.", "ns.child.x.test."),
                    ns("x.test.", "ns1.x.test."),
                ],
                vec![a("ns.child.x.test.", [198, 51, 100, 54])],
            )
        };
        let r = read(
            &referral("www.child.x.test."),
            &n("www.child.x.test."),
            RecordType::A,
        );
        let d = r.delegation.expect("delegation");
        assert_eq!(d.zone, n("child.x.test."));
        assert_eq!(d.ns, [n("ns.child.x.test.")]);
        assert!(d.glue.is_empty(), "glue is the name server's, not www's");
        let r = read(
            &referral("ns.child.x.test."),
            &n("ns.child.x.test."),
            RecordType::A,
        );
        let d = r.delegation.clone().expect("delegation");
        assert_eq!(d.glue, [IpAddr::from([198, 51, 100, 54])]);
        assert!(r.usable());
    }

    #[test]
    fn nodata_with_soa_is_no_referral_and_a_root_referral_is_upward() {
        let m = msg(
            "txt-only.x.test.",
            ResponseCode::NoError,
            vec![],
            vec![soa("x.test.")],
            vec![],
        );
        let r = read(&m, &n("txt-only.x.test."), RecordType::A);
        assert!(r.delegation.is_none() && !r.upward && !r.usable());
        let m = msg(
            "www.other.test.",
            ResponseCode::NoError,
            vec![],
            vec![ns(".", "a.root-servers.net.")],
            vec![],
        );
        let r = read(&m, &n("www.other.test."), RecordType::A);
        assert!(r.upward && r.delegation.is_none() && !r.usable());
        // NS records about an unrelated zone are no referral for this name.
        let m = msg(
            "www.x.test.",
            ResponseCode::NoError,
            vec![],
            vec![ns("y.test.", "ns.y.test.")],
            vec![],
        );
        let r = read(&m, &n("www.x.test."), RecordType::A);
        assert!(r.delegation.is_none() && !r.upward);
    }

    #[test]
    fn a_hostile_answer_of_many_cnames_is_read_in_bounded_steps() {
        let answers: Vec<Record> = (0..300)
            .map(|i| cname(&format!("h{i}.x.test."), &format!("h{}.x.test.", i + 1)))
            .collect();
        let m = msg("h0.x.test.", ResponseCode::NoError, answers, vec![], vec![]);
        let r = read(&m, &n("h0.x.test."), RecordType::A);
        assert_eq!(r.chain.len(), 300);
        assert!(!r.looped);
    }
}
