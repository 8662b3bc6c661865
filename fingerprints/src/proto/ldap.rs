//! LDAP: an anonymous (unbound) search of the root DSE. OpenLDAP and 389 DS answer it
//! with their naming contexts and versions; Active Directory adds its DNS host name and
//! functional levels. A SearchResultDone (or a notice of disconnection) ends it.

use crate::reader::ber::{self, BerError};
use crate::reader::field_text;
use crate::session::{Action, Banner, Session, BANNER_CAP};

const MESSAGE_ID: u8 = 1;
/// Requested root DSE attributes and the field each one lands in.
const ATTRIBUTES: [(&str, &str); 11] = [
    ("namingContexts", "naming_contexts"),
    // OpenLDAP names itself only here (OpenLDAProotDSE).
    ("objectClass", "object_class"),
    ("supportedLDAPVersion", "supported_ldap_version"),
    ("vendorName", "vendor_name"),
    ("vendorVersion", "vendor_version"),
    ("supportedSASLMechanisms", "supported_sasl_mechanisms"),
    ("dnsHostName", "dns_host_name"),
    ("defaultNamingContext", "default_naming_context"),
    ("domainFunctionality", "domain_functionality"),
    ("forestFunctionality", "forest_functionality"),
    ("supportedExtension", "supported_extensions"),
];
/// The StartTLS extended operation (RFC 4511 4.14).
const STARTTLS_OID: &str = "1.3.6.1.4.1.1466.20037";
const MAX_MESSAGES: usize = 16;
const MAX_ATTRIBUTES: usize = 64;
const MAX_VALUES: usize = 64;
const MAX_VALUE_CHARS: usize = 256;
const MAX_FIELD_CHARS: usize = 2048;

/// SearchRequest: base "", scope baseObject, never deref, no limits, types and values,
/// filter `(objectClass=*)`, the attributes above.
pub fn search_request() -> Vec<u8> {
    use ber::{encode, ENUMERATED, INTEGER, OCTET_STRING, SEQUENCE};
    let attrs: Vec<u8> = ATTRIBUTES
        .iter()
        .flat_map(|(a, _)| encode(OCTET_STRING, a.as_bytes()))
        .collect();
    let search = [
        encode(OCTET_STRING, b""),
        encode(ENUMERATED, &[0]),
        encode(ENUMERATED, &[0]),
        encode(INTEGER, &[0]),
        encode(INTEGER, &[0]),
        encode(0x01, &[0x00]),
        encode(0x87, b"objectClass"),
        encode(SEQUENCE, &attrs),
    ]
    .concat();
    encode(
        SEQUENCE,
        &[encode(INTEGER, &[MESSAGE_ID]), encode(0x63, &search)].concat(),
    )
}

pub(crate) fn result_name(code: i64) -> Option<&'static str> {
    Some(match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Reading,
    Finished(Action),
}

#[derive(Debug)]
pub struct LdapSession {
    banner: Banner,
    phase: Phase,
    /// Bytes of the reply already parsed as complete LDAPMessages.
    consumed: usize,
    messages: usize,
    /// A SearchResultEntry arrived: LDAP is identified even if Done never does.
    entry_seen: bool,
}

/// What one LDAPMessage meant.
enum Step {
    Continue,
    Finish,
    Reject,
}

impl LdapSession {
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            banner: Banner {
                protocol: "ldap".into(),
                ..Banner::default()
            },
            phase: Phase::Reading,
            consumed: 0,
            messages: 0,
            entry_seen: false,
        }
    }

    fn verdict_without_end(&self) -> Action {
        if self.entry_seen {
            Action::Done
        } else {
            Action::NoMatch
        }
    }

    fn parse(&mut self, data: &[u8]) -> Action {
        loop {
            if self.messages >= MAX_MESSAGES {
                return self.verdict_without_end();
            }
            let buf = data.get(self.consumed..).unwrap_or_default();
            if buf.is_empty() {
                return Action::NeedMore;
            }
            // Refuse as early as the bytes allow: LDAPMessage is a SEQUENCE whose first
            // element is the INTEGER messageID.
            if buf.first() != Some(&ber::SEQUENCE) {
                return self.verdict_without_end();
            }
            match ber::header(buf) {
                Err(BerError::Incomplete) => return Action::NeedMore,
                Err(_) => return self.verdict_without_end(),
                Ok((_, header_len, _)) => {
                    if buf.get(header_len).is_some_and(|&t| t != ber::INTEGER) {
                        return self.verdict_without_end();
                    }
                }
            }
            let (message, used) = match ber::parse(buf) {
                Ok(ok) => ok,
                Err(BerError::Incomplete) => return Action::NeedMore,
                Err(_) => return self.verdict_without_end(),
            };
            self.consumed += used;
            self.messages += 1;
            match self.message(message.value) {
                Step::Continue => {}
                Step::Finish => return Action::Done,
                Step::Reject => return self.verdict_without_end(),
            }
        }
    }

    fn message(&mut self, value: &[u8]) -> Step {
        let mut parts = ber::children(value, 3);
        let (Some(Ok(id)), Some(Ok(op))) = (parts.next(), parts.next()) else {
            return Step::Reject;
        };
        let Some(id) = (id.tag == ber::INTEGER)
            .then(|| ber::integer(id.value))
            .flatten()
        else {
            return Step::Reject;
        };
        match (id, op.tag) {
            (1, 0x64) => self.entry(op.value),
            (1, 0x73) => Step::Continue, // SearchResultReference
            (1, 0x65) | (0, 0x78) => self.result(op.value),
            _ => Step::Reject,
        }
    }

    /// SearchResultEntry: objectName, then SEQUENCE OF { type, SET OF value }.
    fn entry(&mut self, value: &[u8]) -> Step {
        let mut parts = ber::children(value, 2);
        let (Some(Ok(name)), Some(Ok(attrs))) = (parts.next(), parts.next()) else {
            return Step::Reject;
        };
        if name.tag != ber::OCTET_STRING || attrs.tag != ber::SEQUENCE {
            return Step::Reject;
        }
        let mut text = Vec::new();
        for attr in ber::children(attrs.value, MAX_ATTRIBUTES) {
            let Ok(attr) = attr else {
                return Step::Reject;
            };
            let mut ab = ber::children(attr.value, 2);
            let (Some(Ok(kind)), Some(Ok(vals))) = (ab.next(), ab.next()) else {
                return Step::Reject;
            };
            if attr.tag != ber::SEQUENCE || kind.tag != ber::OCTET_STRING || vals.tag != ber::SET {
                return Step::Reject;
            }
            let values: Vec<String> = ber::children(vals.value, MAX_VALUES)
                .filter_map(Result::ok)
                .filter(|v| v.tag == ber::OCTET_STRING)
                .map(|v| field_text(v.value, MAX_VALUE_CHARS))
                .collect();
            let name = field_text(kind.value, 64);
            let Some((_, key)) = ATTRIBUTES
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(&name))
            else {
                continue;
            };
            if *key == "supported_extensions" {
                self.banner.starttls = Some(values.iter().any(|v| v == STARTTLS_OID));
            }
            // DNs contain commas, so DN lists are separated by semicolons instead.
            let sep = if *key == "naming_contexts" { ";" } else { "," };
            let joined: String = field_text(values.join(sep).as_bytes(), MAX_FIELD_CHARS);
            text.push(format!("{name}: {}", values.join(" | ")));
            self.banner.fields.insert((*key).into(), joined);
        }
        self.entry_seen = true;
        let mut text = text.join("; ");
        if text.len() > BANNER_CAP {
            let cut = (0..=BANNER_CAP)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            text.truncate(cut);
        }
        self.banner.text = text;
        Step::Continue
    }

    /// LDAPResult: resultCode, matchedDN, diagnosticMessage.
    fn result(&mut self, value: &[u8]) -> Step {
        let mut parts = ber::children(value, 3);
        let (Some(Ok(code)), Some(Ok(matched)), Some(Ok(diag))) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Step::Reject;
        };
        if code.tag != ber::ENUMERATED
            || matched.tag != ber::OCTET_STRING
            || diag.tag != ber::OCTET_STRING
        {
            return Step::Reject;
        }
        let Some(code) = ber::integer(code.value).filter(|c| (0..=0xffff).contains(c)) else {
            return Step::Reject;
        };
        let f = &mut self.banner.fields;
        f.insert("result_code".into(), code.to_string());
        if let Some(name) = result_name(code) {
            f.insert("result".into(), name.into());
        }
        if !diag.value.is_empty() {
            f.insert("diagnostic".into(), field_text(diag.value, MAX_VALUE_CHARS));
            if self.banner.text.is_empty() {
                self.banner.text = field_text(diag.value, MAX_VALUE_CHARS);
            }
        }
        Step::Finish
    }
}

impl Session for LdapSession {
    fn protocol(&self) -> &'static str {
        "ldap"
    }

    fn start(&mut self) -> Action {
        Action::Send(search_request())
    }

    fn on_data(&mut self, data: &[u8]) -> Action {
        if let Phase::Finished(done) = &self.phase {
            return done.clone();
        }
        let action = self.parse(data);
        match action {
            Action::NoMatch => {
                self.banner.fields.clear();
                self.banner.text.clear();
                self.banner.starttls = None;
                self.phase = Phase::Finished(Action::NoMatch);
            }
            Action::Done => self.phase = Phase::Finished(Action::Done),
            _ => {}
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
    use crate::reader::ber::{encode, ENUMERATED, INTEGER, OCTET_STRING, SEQUENCE, SET};
    use crate::reader::test_support::*;
    use proptest::prelude::*;

    pub(crate) fn fixtures() -> Vec<Vec<u8>> {
        vec![
            openldap(),
            active_directory(),
            refused_rootdse(),
            notice_of_disconnection(),
            slapd_live(),
        ]
    }

    /// Active Directory writes lengths in the four-octet form (slapd uses the minimal
    /// form, as its capture below shows); both must parse.
    fn encode4(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![tag, 0x84];
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    fn entry(attrs: &[(&str, &[&str])]) -> Vec<u8> {
        let list: Vec<u8> = attrs
            .iter()
            .flat_map(|(name, vals)| {
                let set: Vec<u8> = vals
                    .iter()
                    .flat_map(|v| encode(OCTET_STRING, v.as_bytes()))
                    .collect();
                encode4(
                    SEQUENCE,
                    &[encode(OCTET_STRING, name.as_bytes()), encode4(SET, &set)].concat(),
                )
            })
            .collect();
        let op = encode4(
            0x64,
            &[encode(OCTET_STRING, b""), encode4(SEQUENCE, &list)].concat(),
        );
        encode4(SEQUENCE, &[encode(INTEGER, &[1]), op].concat())
    }

    fn done(code: u8, diag: &str) -> Vec<u8> {
        let op = encode4(
            0x65,
            &[
                encode(ENUMERATED, &[code]),
                encode(OCTET_STRING, b""),
                encode(OCTET_STRING, diag.as_bytes()),
            ]
            .concat(),
        );
        encode4(SEQUENCE, &[encode(INTEGER, &[1]), op].concat())
    }

    /// slapd 2.5 on Debian 12 with a `dc=example,dc=org` database, hand-built (and in
    /// the four-octet length form, to cover it with slapd-shaped content too).
    fn openldap() -> Vec<u8> {
        let mut out = entry(&[
            ("namingContexts", &["dc=example,dc=org"]),
            (
                "supportedSASLMechanisms",
                &["DIGEST-MD5", "CRAM-MD5", "NTLM"],
            ),
            ("supportedLDAPVersion", &["3"]),
            (
                "supportedExtension",
                &[
                    "1.3.6.1.4.1.4203.1.11.1",
                    "1.3.6.1.4.1.4203.1.11.3",
                    "1.3.6.1.1.8",
                ],
            ),
        ]);
        out.extend(done(0, ""));
        out
    }

    fn active_directory() -> Vec<u8> {
        let mut out = entry(&[
            ("defaultNamingContext", &["DC=corp,DC=example,DC=com"]),
            (
                "namingContexts",
                &[
                    "DC=corp,DC=example,DC=com",
                    "CN=Configuration,DC=corp,DC=example,DC=com",
                    "CN=Schema,CN=Configuration,DC=corp,DC=example,DC=com",
                    "DC=DomainDnsZones,DC=corp,DC=example,DC=com",
                    "DC=ForestDnsZones,DC=corp,DC=example,DC=com",
                ],
            ),
            ("supportedLDAPVersion", &["3", "2"]),
            (
                "supportedSASLMechanisms",
                &["GSSAPI", "GSS-SPNEGO", "EXTERNAL", "DIGEST-MD5"],
            ),
            ("dnsHostName", &["dc01.corp.example.com"]),
            ("domainFunctionality", &["7"]),
            ("forestFunctionality", &["7"]),
            (
                "supportedExtension",
                &[
                    "1.3.6.1.4.1.1466.20037",
                    "1.3.6.1.4.1.1466.101.119.1",
                    "1.2.840.113556.1.4.1781",
                    "1.3.6.1.4.1.4203.1.11.3",
                ],
            ),
        ]);
        out.extend(done(0, ""));
        out
    }

    /// A server that refuses anonymous reads of the root DSE.
    fn refused_rootdse() -> Vec<u8> {
        done(50, "anonymous access not allowed")
    }

    /// Unsolicited notice of disconnection (messageID 0).
    fn notice_of_disconnection() -> Vec<u8> {
        let op = encode(
            0x78,
            &[
                encode(ENUMERATED, &[2]),
                encode(OCTET_STRING, b""),
                encode(OCTET_STRING, b"unsupported extended operation"),
                encode(0x8a, b"1.3.6.1.4.1.1466.20036"),
            ]
            .concat(),
        );
        encode(SEQUENCE, &[encode(INTEGER, &[0]), op].concat())
    }

    /// Captured from slapd 2.5.13 (Debian 12 package, one mdb database) on loopback.
    fn slapd_live() -> Vec<u8> {
        hex(concat!(
            "3082014b0201016482014404003082013e3025040e6e616d696e67436f6e74657874733113041164",
            "633d6578616d706c652c64633d6f726730750412737570706f72746564457874656e73696f6e315f",
            "0417312e332e362e312e342e312e343230332e312e31312e310417312e332e362e312e342e312e34",
            "3230332e312e31312e33040b312e332e362e312e312e38040e312e332e362e312e312e32312e3304",
            "0e312e332e362e312e312e32312e31301b0414737570706f727465644c44415056657273696f6e31",
            "030401333081800417737570706f727465645341534c4d656368616e69736d733165040d53435241",
            "4d2d5348412d353132040d534352414d2d5348412d333834040d534352414d2d5348412d32353604",
            "0d534352414d2d5348412d323234040b534352414d2d5348412d31040a4449474553542d4d443504",
            "084352414d2d4d443504044e544c4d300c02010165070a010004000400",
        ))
    }

    fn run(reply: &[u8]) -> (Action, Banner) {
        let mut s = LdapSession::new(None);
        assert_eq!(s.start(), Action::Send(search_request()));
        let a = s.on_data(reply);
        (a, s.banner())
    }

    #[test]
    fn request_bytes() {
        let q = search_request();
        // SEQUENCE, long-form length, messageID 1, [APPLICATION 3].
        assert_eq!(&q[..2], &[0x30, 0x81]);
        assert_eq!(usize::from(q[2]) + 3, q.len());
        assert_eq!(&q[3..6], &[0x02, 0x01, 0x01]);
        assert_eq!(q[6], 0x63);
        let filter = b"\x87\x0bobjectClass";
        assert!(q.windows(filter.len()).any(|w| w == filter));
        let (msg, used) = ber::parse(&q).expect("request parses");
        assert_eq!(used, q.len());
        assert_eq!(ber::children(msg.value, 4).count(), 2);
    }

    #[test]
    fn openldap_rootdse() {
        let reply = openldap();
        let mut s = LdapSession::new(None);
        let _ = s.start();
        assert_eq!(feed_bytewise(&mut s, &reply), Action::Done);
        let b = s.banner();
        assert_eq!(b.protocol, "ldap");
        assert_eq!(b.fields["naming_contexts"], "dc=example,dc=org");
        assert_eq!(
            b.fields["supported_sasl_mechanisms"],
            "DIGEST-MD5,CRAM-MD5,NTLM"
        );
        assert_eq!(b.fields["supported_ldap_version"], "3");
        assert_eq!(b.fields["result_code"], "0");
        assert_eq!(b.fields["result"], "success");
        assert!(!b.fields.contains_key("dns_host_name"));
        assert_eq!(b.starttls, Some(false));
        assert!(b.text.starts_with("namingContexts: dc=example,dc=org; "));
        check_splits(|| LdapSession::new(None), &[], &reply);
    }

    #[test]
    fn active_directory_rootdse() {
        let (a, b) = run(&active_directory());
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["dns_host_name"], "dc01.corp.example.com");
        assert_eq!(b.fields["domain_functionality"], "7");
        assert_eq!(b.fields["forest_functionality"], "7");
        assert_eq!(
            b.fields["default_naming_context"],
            "DC=corp,DC=example,DC=com"
        );
        assert_eq!(b.fields["supported_ldap_version"], "3,2");
        assert_eq!(b.fields["naming_contexts"].split(';').count(), 5);
        assert_eq!(b.starttls, Some(true));
        assert!(b.fields["supported_extensions"].starts_with("1.3.6.1.4.1.1466.20037,"));
    }

    #[test]
    fn entry_then_silence_keeps_facts() {
        let mut s = LdapSession::new(None);
        let _ = s.start();
        let e = entry(&[
            ("vendorName", &["389 Project"]),
            ("vendorVersion", &["389-Directory/2.3.4 B2024.010.0000"]),
        ]);
        assert_eq!(s.on_data(&e), Action::NeedMore);
        assert_eq!(s.banner().fields["vendor_name"], "389 Project");
        assert_eq!(s.banner().starttls, None);
        // Then something that is not LDAP: we already know it is.
        let mut more = e.clone();
        more.extend_from_slice(b"garbage");
        assert_eq!(s.on_data(&more), Action::Done);
        assert_eq!(
            s.banner().fields["vendor_version"],
            "389-Directory/2.3.4 B2024.010.0000"
        );
    }

    #[test]
    fn refusals_identify() {
        let (a, b) = run(&refused_rootdse());
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["result_code"], "50");
        assert_eq!(b.fields["diagnostic"], "anonymous access not allowed");
        let (a, b) = run(&notice_of_disconnection());
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["result"], "protocolError");
        check_splits(|| LdapSession::new(None), &[], &notice_of_disconnection());
    }

    #[test]
    fn refused() {
        for other in [
            SSH,
            HTTP,
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[0x30, 0x80],
            &[0x30, 0x05, 0x04],
            b"0 garbage",
        ] {
            assert_eq!(
                run(other).0,
                Action::NoMatch,
                "{}",
                crate::session::printable(other)
            );
        }
        // Wrong message id.
        let mut other = done(0, "");
        other[8] = 7;
        assert_eq!(run(&other).0, Action::NoMatch);
    }

    #[test]
    fn captured_slapd() {
        let reply = slapd_live();
        let (a, b) = run(&reply);
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["naming_contexts"], "dc=example,dc=org");
        assert!(b.fields["supported_sasl_mechanisms"].starts_with("SCRAM-SHA-512,"));
        assert_eq!(b.starttls, Some(false));
        check_splits(|| LdapSession::new(None), &[], &reply);
    }

    proptest! {
        #[test]
        fn random_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..2048), framed in any::<bool>()) {
            if framed && bytes.len() >= 8 {
                let len = (bytes.len() - 6) as u32;
                bytes[0] = 0x30;
                bytes[1] = 0x84;
                bytes[2..6].copy_from_slice(&len.to_be_bytes());
                bytes[6] = 0x02;
            }
            assert_bounded(&run(&bytes).1);
        }

        #[test]
        fn mutated(pos in any::<usize>(), byte in any::<u8>(), how in any::<u8>(), which in 0..4usize) {
            let valid = [openldap(), active_directory(), refused_rootdse(), notice_of_disconnection()];
            assert_bounded(&run(&mutate(&valid[which], pos, byte, how)).1);
        }

        #[test]
        fn many_values_bounded(n in 0..400usize) {
            let vals: Vec<String> = (0..n).map(|i| format!("dc=x{i},dc=example")).collect();
            let refs: Vec<&str> = vals.iter().map(String::as_str).collect();
            let mut reply = entry(&[("namingContexts", &refs)]);
            reply.extend(done(0, ""));
            let (a, b) = run(&reply);
            prop_assert_eq!(a, Action::Done);
            assert_bounded(&b);
        }
    }
}
