//! The anonymous NTLMSSP exchange of an SMB null session, in SPNEGO (RFC 4178) tokens.
//!
//! Written from [MS-NLMP]: a NEGOTIATE_MESSAGE (2.2.1.1) naming no domain or workstation,
//! the server's CHALLENGE_MESSAGE (2.2.1.2), and an AUTHENTICATE_MESSAGE (2.2.1.3) for
//! the anonymous user (3.1.5.1.2): user, domain and workstation empty,
//! NtChallengeResponse empty, LmChallengeResponse a single zero byte, and
//! NTLMSSP_ANONYMOUS set. No key is derived and nothing is signed: an anonymous session
//! has no session key to sign with.

use crate::reader::ber::{self, encode, OCTET_STRING, OID, SEQUENCE};
use crate::reader::Reader;

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
/// 1.3.6.1.5.5.2
const OID_SPNEGO: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
/// 1.3.6.1.4.1.311.2.2.10
const OID_NTLMSSP: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];

const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
const REQUEST_TARGET: u32 = 0x0000_0004;
const NEGOTIATE_SIGN: u32 = 0x0000_0010;
const NEGOTIATE_NTLM: u32 = 0x0000_0200;
const ANONYMOUS: u32 = 0x0000_0800;
const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
const EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
const NEGOTIATE_128: u32 = 0x2000_0000;
const NEGOTIATE_56: u32 = 0x8000_0000;

/// What we offer. Not KEY_EXCH: it would need an encrypted session key, and an
/// anonymous session has none.
const FLAGS: u32 = NEGOTIATE_UNICODE
    | REQUEST_TARGET
    | NEGOTIATE_SIGN
    | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN
    | EXTENDED_SESSIONSECURITY
    | NEGOTIATE_TARGET_INFO
    | NEGOTIATE_128
    | NEGOTIATE_56;

/// Most AV pairs read from a CHALLENGE's target info.
const MAX_AV_PAIRS: usize = 32;
/// Longest NetBIOS name kept (they are at most 15 characters; DNS names are longer).
const NAME_CHARS: usize = 64;

/// The first session setup's token: a GSS-API InitialContextToken holding a SPNEGO
/// NegTokenInit that offers NTLMSSP only, with the NEGOTIATE_MESSAGE as its mechToken.
pub(super) fn negotiate_token() -> Vec<u8> {
    let mut msg = SIGNATURE.to_vec();
    msg.extend_from_slice(&1u32.to_le_bytes()); // MessageType: NEGOTIATE
    msg.extend_from_slice(&FLAGS.to_le_bytes());
    msg.extend_from_slice(&[0; 16]); // DomainNameFields, WorkstationFields: empty
    let mech_types = encode(0xa0, &encode(SEQUENCE, &encode(OID, OID_NTLMSSP)));
    let mech_token = encode(0xa2, &encode(OCTET_STRING, &msg));
    let init = encode(0xa0, &encode(SEQUENCE, &[mech_types, mech_token].concat()));
    encode(0x60, &[encode(OID, OID_SPNEGO), init].concat())
}

/// The second session setup's token: a SPNEGO NegTokenResp whose responseToken is the
/// anonymous AUTHENTICATE_MESSAGE, with the flags the server agreed to (of ours).
pub(super) fn authenticate_token(server_flags: u32) -> Vec<u8> {
    let flags = (server_flags & FLAGS) | ANONYMOUS | NEGOTIATE_UNICODE | NEGOTIATE_NTLM;
    // Fixed part (64 bytes, no Version or MIC), then the payload: the LM response.
    let lm_at: u32 = 64;
    let end = lm_at + 1;
    let mut msg = SIGNATURE.to_vec();
    msg.extend_from_slice(&3u32.to_le_bytes()); // MessageType: AUTHENTICATE
    let field = |m: &mut Vec<u8>, len: u16, at: u32| {
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&at.to_le_bytes());
    };
    field(&mut msg, 1, lm_at); // LmChallengeResponse: Z(1)
    for _ in 0..5 {
        // NtChallengeResponse, DomainName, UserName, Workstation, session key: empty.
        field(&mut msg, 0, end);
    }
    msg.extend_from_slice(&flags.to_le_bytes());
    msg.push(0);
    encode(
        0xa1,
        &encode(SEQUENCE, &encode(0xa2, &encode(OCTET_STRING, &msg))),
    )
}

/// What a CHALLENGE_MESSAGE tells anyone who asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Challenge {
    pub flags: u32,
    /// MsvAvNbComputerName.
    pub computer: Option<String>,
    /// MsvAvNbDomainName.
    pub domain: Option<String>,
}

/// The CHALLENGE_MESSAGE in the server's token: a SPNEGO NegTokenResp's responseToken,
/// or a bare NTLMSSP message.
pub(super) fn challenge(token: &[u8]) -> Option<Challenge> {
    let msg = if token.starts_with(SIGNATURE) {
        token
    } else {
        response_token(token)?
    };
    let mut r = Reader::new(msg);
    if r.take(8)? != SIGNATURE || r.u32_le()? != 2 {
        return None;
    }
    r.skip(8)?; // TargetNameFields
    let flags = r.u32_le()?;
    r.skip(16)?; // ServerChallenge, Reserved
    let info_len = usize::from(r.u16_le()?);
    r.skip(2)?;
    let info_at = r.u32_le()? as usize;
    let mut out = Challenge {
        flags,
        ..Challenge::default()
    };
    // Names are a bonus: the message already proved the server speaks NTLMSSP.
    if let Some(info) = msg.get(info_at..info_at.saturating_add(info_len)) {
        let mut r = Reader::new(info);
        for _ in 0..MAX_AV_PAIRS {
            let (Some(id), Some(len)) = (r.u16_le(), r.u16_le()) else {
                break;
            };
            let Some(value) = r.take(usize::from(len)) else {
                break;
            };
            match id {
                0 => break, // MsvAvEOL
                1 => out.computer = utf16(value),
                2 => out.domain = utf16(value),
                _ => {}
            }
        }
    }
    Some(out)
}

/// The responseToken of a NegTokenResp: `A1 { 30 { ..., A2 { 04 token } } }`.
fn response_token(blob: &[u8]) -> Option<&[u8]> {
    let (resp, _) = ber::parse(blob).ok()?;
    if resp.tag != 0xa1 {
        return None;
    }
    let seq = ber::expect(resp.value, SEQUENCE)?;
    let tok = ber::children(seq.value, 8)
        .filter_map(Result::ok)
        .find(|t| t.tag == 0xa2)?;
    Some(ber::expect(tok.value, OCTET_STRING)?.value)
}

/// UTF-16LE text, bounded and made printable; None when empty.
pub(super) fn utf16(bytes: &[u8]) -> Option<String> {
    let units = bytes
        .chunks_exact(2)
        .take(NAME_CHARS)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    let s: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    let s = s.trim_end_matches('\0');
    (!s.is_empty()).then(|| crate::reader::field_text(s.as_bytes(), NAME_CHARS))
}
