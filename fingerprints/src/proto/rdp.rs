//! RDP: an X.224 Connection Request in TPKT carrying an RDP_NEG_REQ (no cookie); the
//! Connection Confirm says which security protocol the server picked, or why it
//! refused ([MS-RDPBCGR] 2.2.1.1-2.2.1.2).

use crate::reader::Reader;
use crate::session::{printable, Action, Banner, Session};

const PROTOCOL_SSL: u32 = 0x1;
const PROTOCOL_HYBRID: u32 = 0x2;
const PROTOCOL_HYBRID_EX: u32 = 0x8;
const TPKT_HEADER: usize = 4;
/// A Connection Confirm is 11 bytes, 19 with the negotiation response; anything much
/// longer is some other X.224 user.
const MAX_TPKT: usize = 512;

/// TPKT (version 3) + X.224 CR (LI 14, CR/CDT 0xe0, refs 0, class 0) + RDP_NEG_REQ
/// requesting TLS, CredSSP and CredSSP with Early User Authorization.
pub fn connection_request() -> Vec<u8> {
    let requested = PROTOCOL_SSL | PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX;
    let mut neg = vec![0x01, 0x00, 0x08, 0x00];
    neg.extend_from_slice(&requested.to_le_bytes());
    let mut x224 = vec![0xe0, 0x00, 0x00, 0x00, 0x00, 0x00];
    x224.extend_from_slice(&neg);
    let mut out = vec![0x03, 0x00];
    out.extend_from_slice(&((TPKT_HEADER + 1 + x224.len()) as u16).to_be_bytes());
    out.push(x224.len() as u8);
    out.extend_from_slice(&x224);
    out
}

/// Names of the bits of a `selectedProtocol`; 0 is standard RDP security.
fn protocol_names(p: u32) -> String {
    if p == 0 {
        return "rdp".into();
    }
    let names = [
        (0x01, "ssl"),
        (0x02, "hybrid"),
        (0x04, "rdstls"),
        (0x08, "hybrid_ex"),
        (0x10, "rdsaad"),
    ];
    let mut out: Vec<String> = names
        .iter()
        .filter(|(bit, _)| p & bit != 0)
        .map(|(_, n)| (*n).to_string())
        .collect();
    let unknown = p & !0x1f;
    if unknown != 0 {
        out.push(format!("0x{unknown:x}"));
    }
    out.join(",")
}

fn failure_name(code: u32) -> String {
    match code {
        1 => "ssl_required_by_server".into(),
        2 => "ssl_not_allowed_by_server".into(),
        3 => "ssl_cert_not_on_server".into(),
        4 => "inconsistent_flags".into(),
        5 => "hybrid_required_by_server".into(),
        6 => "ssl_with_user_auth_required_by_server".into(),
        other => other.to_string(),
    }
}

#[derive(Debug)]
pub struct RdpSession {
    banner: Banner,
    outcome: Option<Action>,
}

impl RdpSession {
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            banner: Banner {
                protocol: "rdp".into(),
                ..Banner::default()
            },
            outcome: None,
        }
    }

    fn parse(&mut self, data: &[u8]) -> Action {
        // TPKT version 3, reserved 0, then a length; checked as the bytes arrive.
        let early_ok = match data {
            [] => true,
            [v] => *v == 3,
            [v, res, rest @ ..] => {
                *v == 3
                    && *res == 0
                    && rest
                        .first()
                        .is_none_or(|&hi| usize::from(hi) << 8 <= MAX_TPKT)
            }
        };
        if !early_ok {
            return Action::NoMatch;
        }
        let mut r = Reader::new(data);
        let (Some(_), Some(_), Some(total)) = (r.u8(), r.u8(), r.u16_be()) else {
            return Action::NeedMore;
        };
        let total = usize::from(total);
        if !(TPKT_HEADER + 7..=MAX_TPKT).contains(&total) {
            return Action::NoMatch;
        }
        // X.224 length indicator counts the header bytes after itself, and for a CC
        // there is no user data: it must fill the TPKT exactly. The code must be CC.
        if let Some(&li) = data.get(4) {
            if usize::from(li) + 1 + TPKT_HEADER != total {
                return Action::NoMatch;
            }
        }
        if data.get(5).is_some_and(|&code| code != 0xd0) {
            return Action::NoMatch;
        }
        let Some(tpdu) = data.get(TPKT_HEADER..total) else {
            return Action::NeedMore;
        };
        let mut t = Reader::new(tpdu);
        // LI, code, DST-REF, SRC-REF, class option.
        if t.skip(1 + 1 + 2 + 2 + 1).is_none() {
            return Action::NoMatch;
        }
        let f = &mut self.banner.fields;
        match t.remaining() {
            // Pre-negotiation servers (Windows XP/2003 era): standard RDP security only.
            0 => {
                f.insert("selected_protocol".into(), "rdp".into());
                f.insert("negotiation".into(), "false".into());
            }
            8 => {
                let (Some(kind), Some(flags), Some(len), Some(value)) =
                    (t.u8(), t.u8(), t.u16_le(), t.u32_le())
                else {
                    return Action::NoMatch;
                };
                if len != 8 {
                    return Action::NoMatch;
                }
                match kind {
                    0x02 => {
                        f.insert("selected_protocol".into(), protocol_names(value));
                        f.insert("neg_flags".into(), format!("0x{flags:02x}"));
                    }
                    0x03 => {
                        f.insert("failure".into(), failure_name(value));
                        f.insert("failure_code".into(), value.to_string());
                    }
                    _ => return Action::NoMatch,
                }
                f.insert("negotiation".into(), "true".into());
            }
            // Parameters such as TPDU size: an ISO-TSAP service (S7 and friends), not RDP.
            _ => return Action::NoMatch,
        }
        self.banner.text = printable(data.get(..total).unwrap_or(data));
        Action::Done
    }
}

impl Session for RdpSession {
    fn protocol(&self) -> &'static str {
        "rdp"
    }

    fn start(&mut self) -> Action {
        Action::Send(connection_request())
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        let mut outcome = self.outcome.take();
        let action = crate::session::settle(&mut outcome, || self.parse(data));
        self.outcome = outcome;
        action
    }

    fn banner(&self) -> Banner {
        self.banner.clone()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::reader::test_support::*;
    use proptest::prelude::*;

    pub(crate) fn fixtures() -> Vec<Vec<u8>> {
        [NEG_RSP_HYBRID, NEG_RSP_SSL, NEG_FAILURE, LEGACY_CC, S7_CC]
            .iter()
            .map(|f| f.to_vec())
            .collect()
    }

    /// Windows Server 2019 with NLA: CC, RDP_NEG_RSP selecting HYBRID, flags 0x1f
    /// (extended client data, GFX, restricted admin, redirected auth, reserved).
    const NEG_RSP_HYBRID: &[u8] = &[
        0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00, 0x02, 0x1f, 0x08, 0x00,
        0x02, 0x00, 0x00, 0x00,
    ];
    /// xrdp configured for TLS.
    const NEG_RSP_SSL: &[u8] = &[
        0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x08, 0x00,
        0x01, 0x00, 0x00, 0x00,
    ];
    /// A server that only accepts standard RDP security refusing our TLS-only offer.
    const NEG_FAILURE: &[u8] = &[
        0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00, 0x03, 0x00, 0x08, 0x00,
        0x02, 0x00, 0x00, 0x00,
    ];
    const LEGACY_CC: &[u8] = &[
        0x03, 0x00, 0x00, 0x0b, 0x06, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00,
    ];
    /// Siemens S7 CC with a TPDU-size parameter: X.224 but not RDP.
    const S7_CC: &[u8] = &[
        0x03, 0x00, 0x00, 0x16, 0x11, 0xd0, 0x00, 0x01, 0x00, 0x02, 0x00, 0xc0, 0x01, 0x0a, 0xc1,
        0x02, 0x01, 0x00, 0xc2, 0x02, 0x01, 0x02,
    ];

    fn run(reply: &[u8]) -> (Action, Banner) {
        let mut s = RdpSession::new(None);
        assert_eq!(s.start(), Action::Send(connection_request()));
        let a = s.on_data(reply);
        (a, s.banner())
    }

    #[test]
    fn request_bytes() {
        assert_eq!(
            connection_request(),
            vec![
                0x03, 0x00, 0x00, 0x13, 0x0e, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x08,
                0x00, 0x0b, 0x00, 0x00, 0x00
            ]
        );
    }

    #[test]
    fn hybrid_selected() {
        let mut s = RdpSession::new(None);
        let _ = s.start();
        assert_eq!(feed_bytewise(&mut s, NEG_RSP_HYBRID), Action::Done);
        let b = s.banner();
        assert_eq!(b.protocol, "rdp");
        assert_eq!(b.fields["selected_protocol"], "hybrid");
        assert_eq!(b.fields["neg_flags"], "0x1f");
        assert_eq!(b.fields["negotiation"], "true");
        assert!(!b.fields.contains_key("failure"));
        check_splits(|| RdpSession::new(None), &[], NEG_RSP_HYBRID);
    }

    #[test]
    fn ssl_failure_and_legacy() {
        assert_eq!(run(NEG_RSP_SSL).1.fields["selected_protocol"], "ssl");
        let (a, b) = run(NEG_FAILURE);
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["failure"], "ssl_not_allowed_by_server");
        assert_eq!(b.fields["failure_code"], "2");
        let (a, b) = run(LEGACY_CC);
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["selected_protocol"], "rdp");
        assert_eq!(b.fields["negotiation"], "false");
        check_splits(|| RdpSession::new(None), &[], NEG_FAILURE);
        check_splits(|| RdpSession::new(None), &[], LEGACY_CC);
    }

    #[test]
    fn protocol_name_sets() {
        assert_eq!(protocol_names(0x0b), "ssl,hybrid,hybrid_ex");
        assert_eq!(protocol_names(0x100), "0x100");
    }

    #[test]
    fn refused() {
        for other in [
            SSH,
            HTTP,
            S7_CC,
            &[0x03, 0x00, 0xff, 0xff][..],
            &[0x03, 0x00, 0x00, 0x13, 0x0e, 0xe0],
        ] {
            assert_eq!(run(other).0, Action::NoMatch, "{}", printable(other));
        }
        // A TPKT holding a CC of the wrong length indicator.
        assert_eq!(run(&[0x03, 0x00, 0x00, 0x13, 0x0d]).0, Action::NoMatch);
    }

    proptest! {
        #[test]
        fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            assert_bounded(&run(&bytes).1);
        }

        #[test]
        fn mutated(pos in any::<usize>(), byte in any::<u8>(), how in any::<u8>(), which in 0..4usize) {
            let valid = [NEG_RSP_HYBRID, NEG_RSP_SSL, NEG_FAILURE, LEGACY_CC];
            assert_bounded(&run(&mutate(valid[which], pos, byte, how)).1);
        }
    }
}
