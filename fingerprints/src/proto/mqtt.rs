//! MQTT: an anonymous CONNECT (3.1.1, clean session); the CONNACK return code says
//! whether the broker lets anyone in.

use crate::reader::Reader;
use crate::session::{printable, Action, Banner, Session};

const CLIENT_ID: &[u8] = b"aperture";
const KEEPALIVE_SECS: u16 = 30;
/// A 3.1.1 CONNACK is 4 bytes; an MQTT 5 one carries properties (a few dozen bytes).
const MAX_REMAINING: usize = 1024;

/// The CONNECT packet: protocol "MQTT" level 4, flags = clean session only (no
/// username, password or will), keepalive, client identifier.
pub fn connect_packet() -> Vec<u8> {
    let mut var = vec![0x00, 0x04];
    var.extend_from_slice(b"MQTT");
    var.push(0x04);
    var.push(0x02);
    var.extend_from_slice(&KEEPALIVE_SECS.to_be_bytes());
    var.extend_from_slice(&(CLIENT_ID.len() as u16).to_be_bytes());
    var.extend_from_slice(CLIENT_ID);
    let mut out = vec![0x10, var.len() as u8];
    out.extend_from_slice(&var);
    out
}

/// Mosquitto (and some others) publish their version here to anyone allowed to
/// subscribe; an anonymous broker thereby names itself.
const VERSION_TOPIC: &[u8] = b"$SYS/broker/version";

/// SUBSCRIBE (packet id 1, QoS 0) to the broker's version topic.
pub fn subscribe_packet() -> Vec<u8> {
    let mut body = vec![0x00, 0x01];
    body.extend_from_slice(&(VERSION_TOPIC.len() as u16).to_be_bytes());
    body.extend_from_slice(VERSION_TOPIC);
    body.push(0x00);
    let mut out = vec![0x82, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

#[derive(Debug)]
pub struct MqttSession {
    banner: Banner,
    outcome: Option<Action>,
    /// CONNACK accepted and the version topic subscribed: now reading SUBACK/PUBLISH.
    subscribed: bool,
}

/// The meaning of a 3.1.1 CONNACK return code.
fn meaning_v3(rc: u8) -> Option<&'static str> {
    Some(match rc {
        0 => "accepted",
        1 => "unacceptable protocol version",
        2 => "identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        _ => return None,
    })
}

/// The meaning of an MQTT 5 CONNACK reason code (brokers that answer a 3.1.1 CONNECT
/// in the 5.0 format exist in the wild).
fn meaning_v5(rc: u8) -> Option<&'static str> {
    Some(match rc {
        0x00 => "accepted",
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x83 => "implementation specific error",
        0x84 => "unsupported protocol version",
        0x85 => "client identifier not valid",
        0x86 => "bad user name or password",
        0x87 => "not authorized",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8a => "banned",
        0x8c => "bad authentication method",
        0x90 => "topic name invalid",
        0x95 => "packet too large",
        0x97 => "quota exceeded",
        0x99 => "payload format invalid",
        0x9a => "retain not supported",
        0x9b => "qos not supported",
        0x9c => "use another server",
        0x9d => "server moved",
        0x9f => "connection rate exceeded",
        _ => return None,
    })
}

impl MqttSession {
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            banner: Banner {
                protocol: "mqtt".into(),
                ..Banner::default()
            },
            outcome: None,
            subscribed: false,
        }
    }

    /// After SUBSCRIBE: SUBACK, then (if allowed) the retained PUBLISH of the version.
    fn parse_sys(&mut self, data: &[u8]) -> Action {
        let mut r = Reader::new(data);
        // A handful of packets at most; anything else ends the session with what we have.
        for _ in 0..8 {
            let Some(kind) = r.u8() else {
                return Action::NeedMore;
            };
            let mut remaining = 0usize;
            let mut shift = 0;
            loop {
                let Some(b) = r.u8() else {
                    return Action::NeedMore;
                };
                remaining |= usize::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    break;
                }
                shift += 7;
                if shift > 21 || remaining > MAX_REMAINING {
                    return Action::Done;
                }
            }
            let Some(body) = r.take(remaining) else {
                return Action::NeedMore;
            };
            match kind & 0xf0 {
                // SUBACK: 0x80 means the broker refused the subscription.
                0x90 => {
                    if body.get(2) == Some(&0x80) {
                        return Action::Done;
                    }
                }
                0x30 => {
                    let mut b = Reader::new(body);
                    let topic = b.u16_be().and_then(|n| b.take(usize::from(n)));
                    if kind & 0x06 != 0 {
                        // QoS > 0 carries a packet id before the payload.
                        let _ = b.u16_be();
                    }
                    if topic == Some(VERSION_TOPIC) {
                        let payload = b.rest();
                        self.banner
                            .fields
                            .insert("version".into(), crate::reader::field_text(payload, 128));
                        return Action::Done;
                    }
                }
                _ => return Action::Done,
            }
        }
        Action::Done
    }

    fn parse(&mut self, data: &[u8]) -> Action {
        let mut r = Reader::new(data);
        match r.u8() {
            None => return Action::NeedMore,
            // CONNACK with its reserved flag bits zero, as the spec requires.
            Some(0x20) => {}
            Some(_) => return Action::NoMatch,
        }
        // Remaining Length: variable-length integer, at most four bytes.
        let mut remaining = 0usize;
        let mut shift = 0;
        loop {
            let Some(b) = r.u8() else {
                return Action::NeedMore;
            };
            remaining |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 21 || remaining > MAX_REMAINING {
                return Action::NoMatch;
            }
        }
        if !(2..=MAX_REMAINING).contains(&remaining) {
            return Action::NoMatch;
        }
        // Check the flags byte as soon as it arrives.
        if r.peek_u8().is_some_and(|f| f & 0xfe != 0) {
            return Action::NoMatch;
        }
        let Some(body) = r.take(remaining) else {
            return Action::NeedMore;
        };
        let mut b = Reader::new(body);
        let (Some(flags), Some(rc)) = (b.u8(), b.u8()) else {
            return Action::NoMatch;
        };
        let v5 = remaining > 2;
        let meaning = if v5 { meaning_v5(rc) } else { meaning_v3(rc) };
        let Some(meaning) = meaning else {
            return Action::NoMatch;
        };
        let f = &mut self.banner.fields;
        f.insert("return_code".into(), rc.to_string());
        f.insert("meaning".into(), meaning.into());
        f.insert("anonymous".into(), (rc == 0).to_string());
        f.insert("session_present".into(), (flags & 1 != 0).to_string());
        f.insert("protocol_level".into(), if v5 { "5" } else { "4" }.into());
        self.banner.text = printable(data.get(..r.position()).unwrap_or(data));
        if rc == 0 && !v5 {
            self.subscribed = true;
            return Action::Send(subscribe_packet());
        }
        Action::Done
    }
}

impl Session for MqttSession {
    fn protocol(&self) -> &'static str {
        "mqtt"
    }

    fn start(&mut self) -> Action {
        Action::Send(connect_packet())
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        if let Some(done) = &self.outcome {
            return done.clone();
        }
        if self.subscribed {
            let action = self.parse_sys(data);
            if action == Action::Done {
                self.outcome = Some(Action::Done);
            }
            return action;
        }
        let action = self.parse(data);
        if !matches!(action, Action::NeedMore | Action::Send(_)) {
            self.outcome = Some(action.clone());
        }
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
        vec![
            ACCEPTED.to_vec(),
            NOT_AUTHORIZED.to_vec(),
            V5_NOT_AUTHORIZED.to_vec(),
        ]
    }

    const ACCEPTED: &[u8] = &[0x20, 0x02, 0x00, 0x00];
    const NOT_AUTHORIZED: &[u8] = &[0x20, 0x02, 0x00, 0x05];
    /// An MQTT 5 shaped CONNACK: reason 0x87 (not authorized) with a Reason String
    /// property.
    const V5_NOT_AUTHORIZED: &[u8] = &[
        0x20, 0x0a, 0x00, 0x87, 0x07, 0x1f, 0x00, 0x04, b'd', b'e', b'n', b'y',
    ];

    fn run(reply: &[u8]) -> (Action, Banner) {
        let mut s = MqttSession::new(None);
        assert_eq!(s.start(), Action::Send(connect_packet()));
        let a = s.on_data(reply);
        (a, s.banner())
    }

    #[test]
    fn connect_bytes() {
        assert_eq!(
            connect_packet(),
            b"\x10\x14\x00\x04MQTT\x04\x02\x00\x1e\x00\x08aperture".to_vec()
        );
    }

    #[test]
    fn mosquitto_anonymous_allowed() {
        let mut s = MqttSession::new(None);
        let _ = s.start();
        assert_eq!(
            feed_bytewise(&mut s, ACCEPTED),
            Action::Send(subscribe_packet())
        );
        let b = s.banner();
        assert_eq!(b.protocol, "mqtt");
        assert_eq!(b.fields["return_code"], "0");
        assert_eq!(b.fields["meaning"], "accepted");
        assert_eq!(b.fields["anonymous"], "true");
        assert_eq!(b.fields["session_present"], "false");
        check_splits(|| MqttSession::new(None), &[], ACCEPTED);
    }

    #[test]
    fn anonymous_broker_names_its_version() {
        let mut s = MqttSession::new(None);
        let _ = s.start();
        assert_eq!(s.on_data(ACCEPTED), Action::Send(subscribe_packet()));
        let mut reply = vec![0x90, 0x03, 0x00, 0x01, 0x00];
        let topic = b"$SYS/broker/version";
        let payload = b"mosquitto version 2.0.11";
        reply.push(0x31);
        reply.push((2 + topic.len() + payload.len()) as u8);
        reply.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        reply.extend_from_slice(topic);
        reply.extend_from_slice(payload);
        for cut in 0..reply.len() {
            let mut fresh = MqttSession::new(None);
            let _ = fresh.start();
            let _ = fresh.on_data(ACCEPTED);
            assert_eq!(fresh.on_data(&reply[..cut]), Action::NeedMore, "cut {cut}");
        }
        assert_eq!(s.on_data(&reply), Action::Done);
        assert_eq!(s.banner().fields["version"], "mosquitto version 2.0.11");
        // A refused subscription ends the session with the CONNACK facts.
        let mut s = MqttSession::new(None);
        let _ = s.start();
        let _ = s.on_data(ACCEPTED);
        assert_eq!(s.on_data(&[0x90, 0x03, 0x00, 0x01, 0x80]), Action::Done);
        assert_eq!(s.banner().fields["anonymous"], "true");
    }

    #[test]
    fn mosquitto_not_authorized() {
        // mosquitto 2.x with `allow_anonymous false`.
        let (a, b) = run(NOT_AUTHORIZED);
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["return_code"], "5");
        assert_eq!(b.fields["meaning"], "not authorized");
        assert_eq!(b.fields["anonymous"], "false");
        check_splits(|| MqttSession::new(None), &[], NOT_AUTHORIZED);
    }

    #[test]
    fn v5_shaped_connack() {
        let (a, b) = run(V5_NOT_AUTHORIZED);
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["meaning"], "not authorized");
        assert_eq!(b.fields["protocol_level"], "5");
        check_splits(|| MqttSession::new(None), &[], V5_NOT_AUTHORIZED);
    }

    #[test]
    fn refused() {
        for other in [
            SSH,
            HTTP,
            &[0x20, 0x02, 0x02, 0x00][..],
            &[0x20, 0x02, 0x00, 0x06],
            &[0x21, 0x02, 0, 0],
            &[0x20, 0x01, 0x00],
            &[0x20, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert_eq!(run(other).0, Action::NoMatch, "{}", printable(other));
        }
    }

    proptest! {
        #[test]
        fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            assert_bounded(&run(&bytes).1);
        }

        #[test]
        fn mutated(pos in any::<usize>(), byte in any::<u8>(), how in any::<u8>(), which in 0..3usize) {
            let valid = [ACCEPTED, NOT_AUTHORIZED, V5_NOT_AUTHORIZED];
            assert_bounded(&run(&mutate(valid[which], pos, byte, how)).1);
        }
    }
}
