//! SMB: an SMB2 NEGOTIATE over the direct-TCP NetBIOS framing, offering 2.0.2 to 3.1.1
//! (with the 3.1.1 negotiate contexts); the response tells dialect, signing policy,
//! server GUID, capabilities and the SPNEGO mechanisms. An SMB1 reply is understood too.

use crate::reader::{ber, Reader};
use crate::session::{Action, Banner, Session};
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

const SMB2_MAGIC: &[u8; 4] = b"\xfeSMB";
const SMB1_MAGIC: &[u8; 4] = b"\xffSMB";
const SMB2_HEADER: usize = 64;
const SMB1_HEADER: usize = 32;
/// Negotiate responses are a few hundred bytes (the SPNEGO blob dominates).
const MAX_FRAME: usize = 16 * 1024;
const MAX_CONTEXTS: usize = 16;
const DIALECTS: [u16; 5] = [0x0202, 0x0210, 0x0300, 0x0302, 0x0311];
/// Fixed so that the request is deterministic; it names the scanner in packet dumps.
const CLIENT_GUID: &[u8; 16] = b"aperture-scanner";
const PREAUTH_SALT: [u8; 32] = *b"aperture-preauth-integrity-salt!";
/// Seconds between 1601-01-01 (FILETIME epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET: u64 = 11_644_473_600;

/// Negotiate contexts start on 8-byte boundaries counted from the SMB2 header.
fn pad8(buf: &mut Vec<u8>) {
    buf.resize(buf.len().div_ceil(8) * 8, 0);
}

/// NetBIOS session header + SMB2 header + NEGOTIATE request with two negotiate
/// contexts (preauth integrity SHA-512; encryption AES-128/256 GCM/CCM).
pub fn negotiate_request() -> Vec<u8> {
    let mut m = Vec::with_capacity(192);
    m.extend_from_slice(SMB2_MAGIC);
    m.extend_from_slice(&64u16.to_le_bytes()); // StructureSize
    m.extend_from_slice(&0u16.to_le_bytes()); // CreditCharge
    m.extend_from_slice(&0u32.to_le_bytes()); // Status
    m.extend_from_slice(&0u16.to_le_bytes()); // Command: NEGOTIATE
    m.extend_from_slice(&1u16.to_le_bytes()); // CreditRequest
    m.extend_from_slice(&0u32.to_le_bytes()); // Flags
    m.extend_from_slice(&0u32.to_le_bytes()); // NextCommand
    m.extend_from_slice(&0u64.to_le_bytes()); // MessageId
    m.extend_from_slice(&0u32.to_le_bytes()); // Reserved (ProcessId)
    m.extend_from_slice(&0u32.to_le_bytes()); // TreeId
    m.extend_from_slice(&0u64.to_le_bytes()); // SessionId
    m.extend_from_slice(&[0; 16]); // Signature

    let contexts_at = SMB2_HEADER + 36 + DIALECTS.len() * 2;
    let contexts_at = contexts_at.div_ceil(8) * 8;
    m.extend_from_slice(&36u16.to_le_bytes()); // StructureSize
    m.extend_from_slice(&(DIALECTS.len() as u16).to_le_bytes());
    m.extend_from_slice(&1u16.to_le_bytes()); // SecurityMode: signing enabled
    m.extend_from_slice(&0u16.to_le_bytes()); // Reserved
    m.extend_from_slice(&0x7fu32.to_le_bytes()); // Capabilities: DFS..ENCRYPTION
    m.extend_from_slice(CLIENT_GUID);
    m.extend_from_slice(&(contexts_at as u32).to_le_bytes());
    m.extend_from_slice(&2u16.to_le_bytes()); // NegotiateContextCount
    m.extend_from_slice(&0u16.to_le_bytes()); // Reserved2
    for d in DIALECTS {
        m.extend_from_slice(&d.to_le_bytes());
    }
    pad8(&mut m);

    // SMB2_PREAUTH_INTEGRITY_CAPABILITIES: one hash (SHA-512), 32-byte salt.
    let mut preauth = Vec::new();
    preauth.extend_from_slice(&1u16.to_le_bytes());
    preauth.extend_from_slice(&(PREAUTH_SALT.len() as u16).to_le_bytes());
    preauth.extend_from_slice(&1u16.to_le_bytes());
    preauth.extend_from_slice(&PREAUTH_SALT);
    // SMB2_ENCRYPTION_CAPABILITIES: AES-128-GCM, AES-128-CCM, AES-256-GCM, AES-256-CCM.
    let mut encryption = Vec::new();
    encryption.extend_from_slice(&4u16.to_le_bytes());
    for c in [2u16, 1, 4, 3] {
        encryption.extend_from_slice(&c.to_le_bytes());
    }
    for (i, (kind, data)) in [(1u16, preauth), (2u16, encryption)]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            pad8(&mut m);
        }
        m.extend_from_slice(&kind.to_le_bytes());
        m.extend_from_slice(&(data.len() as u16).to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&data);
    }

    let mut out = vec![0x00];
    out.extend_from_slice(&(m.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&m);
    out
}

fn dialect_name(d: u16) -> String {
    match d {
        0x0202 => "2.0.2".into(),
        0x0210 => "2.1".into(),
        0x0300 => "3.0".into(),
        0x0302 => "3.0.2".into(),
        0x0311 => "3.1.1".into(),
        0x02ff => "2.x".into(),
        other => format!("0x{other:04x}"),
    }
}

/// The GUID in its usual text form (first three groups little-endian).
fn guid(b: &[u8]) -> Option<String> {
    let mut r = Reader::new(b);
    let (d1, d2, d3, d4) = (r.u32_le()?, r.u16_le()?, r.u16_le()?, r.take(8)?);
    let tail: String = d4.get(2..)?.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{d1:08x}-{d2:04x}-{d3:04x}-{:02x}{:02x}-{tail}",
        d4.first()?,
        d4.get(1)?
    ))
}

/// A FILETIME as RFC 3339 UTC, `None` for 0 (Samba's "unknown") and absurd values.
fn filetime(ft: u64) -> Option<String> {
    let secs = (ft / 10_000_000).checked_sub(FILETIME_UNIX_OFFSET)?;
    // humantime cannot format year 10000 and beyond.
    if ft == 0 || secs >= 253_402_300_800 {
        return None;
    }
    Some(humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string())
}

fn mechanism_name(oid: &str) -> String {
    match oid {
        "1.3.6.1.4.1.311.2.2.10" => "ntlmssp".into(),
        "1.2.840.113554.1.2.2" => "kerberos".into(),
        "1.2.840.48018.1.2.2" => "ms-kerberos".into(),
        "1.2.840.113554.1.2.2.3" => "kerberos-u2u".into(),
        "1.3.6.1.4.1.311.2.2.30" => "negoex".into(),
        other => other.into(),
    }
}

/// The mechTypes of a SPNEGO NegTokenInit (RFC 4178) wrapped in a GSS-API
/// InitialContextToken (RFC 2743 3.1): `60 { OID spnego, A0 { 30 { A0 { 30 { OID* }}}}}`.
fn spnego_mechanisms(blob: &[u8]) -> Option<Vec<String>> {
    const SPNEGO_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
    let (token, _) = ber::parse(blob).ok()?;
    if token.tag != 0x60 {
        return None;
    }
    let mut parts = ber::children(token.value, 2);
    let oid = parts.next()?.ok()?;
    if oid.tag != ber::OID || oid.value != SPNEGO_OID {
        return None;
    }
    let init = parts.next()?.ok()?;
    if init.tag != 0xa0 {
        return None;
    }
    let seq = ber::expect(init.value, ber::SEQUENCE)?;
    let mech_types = ber::children(seq.value, 8)
        .filter_map(Result::ok)
        .find(|t| t.tag == 0xa0)?;
    let list = ber::expect(mech_types.value, ber::SEQUENCE)?;
    let names: Vec<String> = ber::children(list.value, 16)
        .filter_map(Result::ok)
        .filter(|t| t.tag == ber::OID)
        .filter_map(|t| ber::oid(t.value))
        .map(|o| mechanism_name(&o))
        .collect();
    (!names.is_empty()).then_some(names)
}

type Fields = BTreeMap<String, String>;

fn bool_field(f: &mut Fields, key: &str, v: bool) {
    f.insert(key.into(), v.to_string());
}

/// SMB2 NEGOTIATE response ([MS-SMB2] 2.2.4), or an SMB2 error response.
fn parse_smb2(msg: &[u8]) -> Option<(Fields, String)> {
    let mut h = Reader::new(msg);
    h.skip(4)?;
    let structure = h.u16_le()?;
    h.skip(2)?;
    let status = h.u32_le()?;
    let command = h.u16_le()?;
    h.skip(2)?;
    let flags = h.u32_le()?;
    if structure != 64 || command != 0 || flags & 1 == 0 {
        return None;
    }
    let body = msg.get(SMB2_HEADER..)?;
    let mut f = Fields::new();
    let mut r = Reader::new(body);
    if status != 0 {
        // Error response: StructureSize 9. Still an SMB2 server.
        if r.u16_le()? != 9 {
            return None;
        }
        f.insert("status".into(), format!("0x{status:08x}"));
        return Some((f, format!("SMB2 error 0x{status:08x}")));
    }
    if r.u16_le()? != 65 {
        return None;
    }
    let security_mode = r.u16_le()?;
    let dialect = r.u16_le()?;
    let context_count = r.u16_le()?;
    let server_guid = r.take(16)?;
    let capabilities = r.u32_le()?;
    let max_transact = r.u32_le()?;
    let max_read = r.u32_le()?;
    let max_write = r.u32_le()?;
    let system_time = r.u64_le()?;
    let start_time = r.u64_le()?;
    let sec_offset = usize::from(r.u16_le()?);
    let sec_len = usize::from(r.u16_le()?);
    let context_offset = r.u32_le()? as usize;

    let dialect = dialect_name(dialect);
    f.insert("dialect".into(), dialect.clone());
    bool_field(&mut f, "signing_enabled", security_mode & 1 != 0);
    bool_field(&mut f, "signing_required", security_mode & 2 != 0);
    f.insert("server_guid".into(), guid(server_guid)?);
    f.insert("capabilities".into(), format!("0x{capabilities:08x}"));
    f.insert("max_transact_size".into(), max_transact.to_string());
    f.insert("max_read_size".into(), max_read.to_string());
    f.insert("max_write_size".into(), max_write.to_string());
    if let Some(t) = filetime(system_time) {
        f.insert("system_time".into(), t);
    }
    if let Some(t) = filetime(start_time) {
        f.insert("server_start_time".into(), t);
    }
    // Offsets count from the SMB2 header; everything below is best-effort since the
    // fixed part already identified the server.
    if let Some(blob) = msg.get(sec_offset..sec_offset.saturating_add(sec_len)) {
        if let Some(mechs) = spnego_mechanisms(blob) {
            f.insert("security_mechanisms".into(), mechs.join(","));
        }
    }
    if dialect == "3.1.1" {
        contexts(msg, context_offset, usize::from(context_count), &mut f);
    }
    let signing = if security_mode & 2 != 0 {
        "required"
    } else {
        "not required"
    };
    Some((f, format!("SMB {dialect}, signing {signing}")))
}

/// The 3.1.1 negotiate contexts the server chose: preauth hash and cipher.
fn contexts(msg: &[u8], mut offset: usize, count: usize, f: &mut Fields) {
    for _ in 0..count.min(MAX_CONTEXTS) {
        let Some(mut r) = msg.get(offset..).map(Reader::new) else {
            return;
        };
        let (Some(kind), Some(len), Some(_)) = (r.u16_le(), r.u16_le(), r.u32_le()) else {
            return;
        };
        let Some(mut data) = r.sub(usize::from(len)) else {
            return;
        };
        let first_of_list = |d: &mut Reader<'_>, skip: usize| -> Option<u16> {
            let n = d.u16_le()?;
            d.skip(skip)?;
            (n >= 1).then_some(())?;
            d.u16_le()
        };
        match kind {
            1 => {
                if let Some(alg) = first_of_list(&mut data, 2) {
                    let name = if alg == 1 {
                        "sha-512".into()
                    } else {
                        format!("0x{alg:04x}")
                    };
                    f.insert("preauth_hash".into(), name);
                }
            }
            2 => {
                if let Some(c) = first_of_list(&mut data, 0) {
                    let name = match c {
                        0 => "none".into(),
                        1 => "aes-128-ccm".into(),
                        2 => "aes-128-gcm".into(),
                        3 => "aes-256-ccm".into(),
                        4 => "aes-256-gcm".into(),
                        other => format!("0x{other:04x}"),
                    };
                    f.insert("encryption_cipher".into(), name);
                }
            }
            _ => {}
        }
        offset = (offset + 8 + usize::from(len)).div_ceil(8) * 8;
    }
}

/// UTF-16LE up to a NUL, bounded.
fn utf16z(r: &mut Reader<'_>, max_chars: usize) -> Option<String> {
    let mut units = Vec::new();
    loop {
        let u = r.u16_le()?;
        if u == 0 {
            break;
        }
        if units.len() >= max_chars {
            return None;
        }
        units.push(u);
    }
    let s: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    Some(crate::reader::field_text(s.as_bytes(), max_chars))
}

/// SMB1 reply ([MS-CIFS] 2.2.3.1): a NT LM 0.12 negotiate response gives the signing
/// policy and, without extended security, the domain and server names.
fn parse_smb1(msg: &[u8]) -> Option<(Fields, String)> {
    let mut h = Reader::new(msg);
    h.skip(4)?;
    let command = h.u8()?;
    let status = h.u32_le()?;
    let flags = h.u8()?;
    let flags2 = h.u16_le()?;
    if flags & 0x80 == 0 {
        return None;
    }
    h.skip(SMB1_HEADER - h.position())?;
    let word_count = usize::from(h.u8()?);
    let mut words = h.sub(word_count * 2)?;
    let byte_count = usize::from(h.u16_le()?);
    let mut bytes = Reader::new(h.take_up_to(byte_count));
    let mut f = Fields::new();
    if status != 0 {
        f.insert("status".into(), format!("0x{status:08x}"));
    }
    if command != 0x72 || word_count != 17 {
        f.insert("dialect".into(), "smb1".into());
        return Some((f, "SMB1".into()));
    }
    let _dialect_index = words.u16_le()?;
    let security_mode = words.u8()?;
    words.skip(2 + 2 + 4 + 4 + 4)?; // MaxMpxCount, MaxNumberVcs, MaxBufferSize, MaxRawSize, SessionKey
    let capabilities = words.u32_le()?;
    let system_time = words.u64_le()?;
    words.skip(2)?; // ServerTimeZone
    let challenge_len = usize::from(words.u8()?);
    f.insert("dialect".into(), "NT LM 0.12".into());
    bool_field(&mut f, "signing_enabled", security_mode & 0x04 != 0);
    bool_field(&mut f, "signing_required", security_mode & 0x08 != 0);
    f.insert("capabilities".into(), format!("0x{capabilities:08x}"));
    if let Some(t) = filetime(system_time) {
        f.insert("system_time".into(), t);
    }
    const CAP_EXTENDED_SECURITY: u32 = 0x8000_0000;
    if capabilities & CAP_EXTENDED_SECURITY != 0 {
        if let Some(g) = bytes.take(16).and_then(guid) {
            f.insert("server_guid".into(), g);
        }
        if let Some(m) = spnego_mechanisms(bytes.rest()) {
            f.insert("security_mechanisms".into(), m.join(","));
        }
    } else if bytes.skip(challenge_len).is_some() {
        let names = if flags2 & 0x8000 != 0 {
            (utf16z(&mut bytes, 64), utf16z(&mut bytes, 64))
        } else {
            let mut oem = || bytes.cstr().map(|s| crate::reader::field_text(s, 64));
            (oem(), oem())
        };
        if let Some(d) = names.0.filter(|s| !s.is_empty()) {
            f.insert("domain".into(), d);
        }
        if let Some(s) = names.1.filter(|s| !s.is_empty()) {
            f.insert("server_name".into(), s);
        }
    }
    let signing = if security_mode & 0x08 != 0 {
        "required"
    } else {
        "not required"
    };
    Some((f, format!("SMB1 NT LM 0.12, signing {signing}")))
}

#[derive(Debug)]
pub struct SmbSession {
    banner: Banner,
    outcome: Option<Action>,
}

impl SmbSession {
    pub fn new(_host: Option<&str>) -> Self {
        Self {
            banner: Banner {
                protocol: "smb".into(),
                ..Banner::default()
            },
            outcome: None,
        }
    }

    fn parse(&mut self, data: &[u8]) -> Action {
        // Session message type 0, then a 24-bit length, then one of the two magics:
        // checked on whatever prefix has arrived.
        if data.first().is_some_and(|&t| t != 0) {
            return Action::NoMatch;
        }
        if data
            .get(1)
            .is_some_and(|&hi| usize::from(hi) << 16 > MAX_FRAME)
        {
            return Action::NoMatch;
        }
        let magic = data.get(4..data.len().min(8)).unwrap_or_default();
        if !SMB2_MAGIC.starts_with(magic) && !SMB1_MAGIC.starts_with(magic) {
            return Action::NoMatch;
        }
        let mut r = Reader::new(data);
        let (Some(_), Some(len)) = (r.u8(), r.u24_be()) else {
            return Action::NeedMore;
        };
        let len = len as usize;
        if !(SMB1_HEADER + 3..=MAX_FRAME).contains(&len) {
            return Action::NoMatch;
        }
        let Some(msg) = r.take(len) else {
            return Action::NeedMore;
        };
        let parsed = if msg.starts_with(SMB2_MAGIC) {
            parse_smb2(msg)
        } else {
            parse_smb1(msg)
        };
        match parsed {
            Some((fields, text)) => {
                self.banner.fields = fields;
                self.banner.text = text;
                Action::Done
            }
            None => Action::NoMatch,
        }
    }
}

impl Session for SmbSession {
    fn protocol(&self) -> &'static str {
        "smb"
    }

    fn start(&mut self) -> Action {
        Action::Send(negotiate_request())
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
    use crate::reader::ber::encode;
    use crate::reader::test_support::*;
    use proptest::prelude::*;

    pub(crate) fn fixtures() -> Vec<Vec<u8>> {
        vec![
            samba_311(),
            windows_dc_311(),
            smb21(),
            smb2_error(),
            smb1_negotiate(),
            samba_live(),
        ]
    }

    /// 2024-06-01T12:00:00Z as a FILETIME.
    const FT: u64 = (1_717_243_200 + FILETIME_UNIX_OFFSET) * 10_000_000;

    fn oid_bytes(dotted: &str) -> Vec<u8> {
        let arcs: Vec<u64> = dotted.split('.').filter_map(|a| a.parse().ok()).collect();
        let mut out = vec![(arcs[0] * 40 + arcs[1]) as u8];
        for &arc in &arcs[2..] {
            let mut groups = vec![(arc & 0x7f) as u8];
            let mut rest = arc >> 7;
            while rest > 0 {
                groups.push(0x80 | (rest & 0x7f) as u8);
                rest >>= 7;
            }
            groups.reverse();
            out.extend(groups);
        }
        encode(ber::OID, &out)
    }

    /// A GSS-API wrapped NegTokenInit with mechTypes and the Samba/Windows negHints.
    fn spnego(mechs: &[&str]) -> Vec<u8> {
        let list: Vec<u8> = mechs.iter().flat_map(|m| oid_bytes(m)).collect();
        let mech_types = encode(0xa0, &encode(ber::SEQUENCE, &list));
        let hint = encode(
            0xa3,
            &encode(
                ber::SEQUENCE,
                &encode(0xa0, &encode(0x1b, b"not_defined_in_RFC4178@please_ignore")),
            ),
        );
        let init = encode(0xa0, &encode(ber::SEQUENCE, &[mech_types, hint].concat()));
        encode(0x60, &[oid_bytes("1.3.6.1.5.5.2"), init].concat())
    }

    fn smb2_header(status: u32) -> Vec<u8> {
        let mut h = SMB2_MAGIC.to_vec();
        h.extend_from_slice(&64u16.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&status.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes()); // SMB2_FLAGS_SERVER_TO_REDIR
        h.extend_from_slice(&[0; 4 + 8 + 4 + 4 + 8 + 16]);
        h
    }

    fn netbios(msg: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(msg.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(msg);
        out
    }

    const SAMBA_GUID: [u8; 16] = [
        0x73, 0x61, 0x6d, 0x62, 0x61, 0x2d, 0x34, 0x2e, 0x31, 0x37, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01,
    ];

    /// Negotiate response body for `dialect`; 3.1.1 gets preauth + encryption contexts.
    fn negotiate_response(security_mode: u16, dialect: u16, caps: u32, mechs: &[&str]) -> Vec<u8> {
        let blob = spnego(mechs);
        let mut m = smb2_header(0);
        let contexts = dialect == 0x0311;
        m.extend_from_slice(&65u16.to_le_bytes());
        m.extend_from_slice(&security_mode.to_le_bytes());
        m.extend_from_slice(&dialect.to_le_bytes());
        m.extend_from_slice(&(if contexts { 2u16 } else { 0 }).to_le_bytes());
        m.extend_from_slice(&SAMBA_GUID);
        m.extend_from_slice(&caps.to_le_bytes());
        for size in [8_388_608u32; 3] {
            m.extend_from_slice(&size.to_le_bytes());
        }
        m.extend_from_slice(&FT.to_le_bytes());
        m.extend_from_slice(&0u64.to_le_bytes());
        m.extend_from_slice(&128u16.to_le_bytes());
        m.extend_from_slice(&(blob.len() as u16).to_le_bytes());
        let ctx_at = (128 + blob.len()).div_ceil(8) * 8;
        m.extend_from_slice(&(if contexts { ctx_at as u32 } else { 0 }).to_le_bytes());
        assert_eq!(m.len(), 128);
        m.extend_from_slice(&blob);
        if contexts {
            pad8(&mut m);
            // Preauth: SHA-512 with the server's 32-byte salt.
            m.extend_from_slice(&[1, 0, 38, 0, 0, 0, 0, 0, 1, 0, 32, 0, 1, 0]);
            m.extend_from_slice(&[0x5a; 32]);
            pad8(&mut m);
            // Encryption: AES-128-GCM chosen.
            m.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 1, 0, 2, 0]);
        }
        netbios(&m)
    }

    /// Samba 4.17 standalone file server: 3.1.1, signing enabled not required.
    fn samba_311() -> Vec<u8> {
        negotiate_response(0x01, 0x0311, 0x0000_000f, &["1.3.6.1.4.1.311.2.2.10"])
    }

    /// A Windows domain controller: signing required, Kerberos first.
    fn windows_dc_311() -> Vec<u8> {
        negotiate_response(
            0x03,
            0x0311,
            0x0000_002f,
            &[
                "1.3.6.1.4.1.311.2.2.30",
                "1.2.840.48018.1.2.2",
                "1.2.840.113554.1.2.2",
                "1.2.840.113554.1.2.2.3",
                "1.3.6.1.4.1.311.2.2.10",
            ],
        )
    }

    fn smb21() -> Vec<u8> {
        negotiate_response(0x01, 0x0210, 0x0000_0007, &["1.3.6.1.4.1.311.2.2.10"])
    }

    fn smb2_error() -> Vec<u8> {
        let mut m = smb2_header(0xc000_00bb);
        m.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0, 0]);
        netbios(&m)
    }

    /// An old Samba answering in SMB1 without extended security.
    fn smb1_negotiate() -> Vec<u8> {
        let mut m = SMB1_MAGIC.to_vec();
        m.push(0x72);
        m.extend_from_slice(&0u32.to_le_bytes());
        m.push(0x88);
        m.extend_from_slice(&0xc001u16.to_le_bytes());
        m.extend_from_slice(&[0; 2 + 8 + 2 + 2]);
        m.extend_from_slice(&0xfeffu16.to_le_bytes());
        m.extend_from_slice(&[0; 4]);
        m.push(17);
        m.extend_from_slice(&0u16.to_le_bytes());
        m.push(0x03);
        m.extend_from_slice(&50u16.to_le_bytes());
        m.extend_from_slice(&1u16.to_le_bytes());
        m.extend_from_slice(&16644u32.to_le_bytes());
        m.extend_from_slice(&65536u32.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&0x0000_e3fdu32.to_le_bytes());
        m.extend_from_slice(&FT.to_le_bytes());
        m.extend_from_slice(&0u16.to_le_bytes());
        m.push(8);
        let mut bytes = vec![0x11; 8];
        for s in ["WORKGROUP", "FILESRV"] {
            for u in s.encode_utf16().chain([0]) {
                bytes.extend_from_slice(&u.to_le_bytes());
            }
        }
        m.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        m.extend_from_slice(&bytes);
        netbios(&m)
    }

    /// Captured from Samba 4.17.12 (Debian 12 package, standalone) on loopback.
    fn samba_live() -> Vec<u8> {
        hex(concat!(
            "0000010cfe534d424000000000000000000001000100000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000004100010011030200766d0000",
            "0000000000000000000000000f0000000000800000008000000080007682476ae67bdd0100000000",
            "0000000080004a00d0000000604806062b0601050502a03e303ca00e300c060a2b06010401823702",
            "020aa32a3028a0261b246e6f745f646566696e65645f696e5f5246433431373840706c656173655f",
            "69676e6f72650000000000000100260000000000010020000100abfa5f7eff5368220873fcd4a2a3",
            "5c99d2e2903f6ca3e464786131595c9518720000020004000000000001000200",
        ))
    }

    fn run(reply: &[u8]) -> (Action, Banner) {
        let mut s = SmbSession::new(None);
        assert_eq!(s.start(), Action::Send(negotiate_request()));
        let a = s.on_data(reply);
        (a, s.banner())
    }

    #[test]
    fn request_layout() {
        let q = negotiate_request();
        assert_eq!(&q[..4], &[0, 0, 0, 178]);
        let m = &q[4..];
        assert_eq!(m.len(), 178);
        assert_eq!(&m[..4], SMB2_MAGIC);
        // Dialects right after the 36-byte fixed part.
        assert_eq!(
            &m[100..110],
            &[0x02, 0x02, 0x10, 0x02, 0x00, 0x03, 0x02, 0x03, 0x11, 0x03]
        );
        // NegotiateContextOffset = 112 and the first context sits there, 8-aligned.
        assert_eq!(&m[64 + 28..64 + 34], &[112, 0, 0, 0, 2, 0]);
        assert_eq!(&m[112..116], &[1, 0, 38, 0]);
        // Second context at the next multiple of 8 after 112 + 8 + 38.
        assert_eq!(&m[158..160], &[0, 0]);
        assert_eq!(&m[160..164], &[2, 0, 10, 0]);
        assert_eq!(&m[168..], &[4, 0, 2, 0, 1, 0, 4, 0, 3, 0]);
    }

    #[test]
    fn samba_311_negotiate() {
        let reply = samba_311();
        let mut s = SmbSession::new(None);
        let _ = s.start();
        assert_eq!(feed_bytewise(&mut s, &reply), Action::Done);
        let b = s.banner();
        assert_eq!(b.protocol, "smb");
        assert_eq!(b.fields["dialect"], "3.1.1");
        assert_eq!(b.fields["signing_enabled"], "true");
        assert_eq!(b.fields["signing_required"], "false");
        assert_eq!(
            b.fields["server_guid"],
            "626d6173-2d61-2e34-3137-000000000001"
        );
        assert_eq!(b.fields["capabilities"], "0x0000000f");
        assert_eq!(b.fields["max_read_size"], "8388608");
        assert_eq!(b.fields["system_time"], "2024-06-01T12:00:00Z");
        assert!(!b.fields.contains_key("server_start_time"));
        assert_eq!(b.fields["security_mechanisms"], "ntlmssp");
        assert_eq!(b.fields["preauth_hash"], "sha-512");
        assert_eq!(b.fields["encryption_cipher"], "aes-128-gcm");
        assert_eq!(b.text, "SMB 3.1.1, signing not required");
        check_splits(|| SmbSession::new(None), &[], &reply);
    }

    #[test]
    fn windows_dc() {
        let (a, b) = run(&windows_dc_311());
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["signing_required"], "true");
        assert_eq!(
            b.fields["security_mechanisms"],
            "negoex,ms-kerberos,kerberos,kerberos-u2u,ntlmssp"
        );
    }

    #[test]
    fn smb21_and_error() {
        let (a, b) = run(&smb21());
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["dialect"], "2.1");
        assert!(!b.fields.contains_key("encryption_cipher"));
        let (a, b) = run(&smb2_error());
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["status"], "0xc00000bb");
        check_splits(|| SmbSession::new(None), &[], &smb2_error());
    }

    #[test]
    fn smb1_reply() {
        let reply = smb1_negotiate();
        let (a, b) = run(&reply);
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["dialect"], "NT LM 0.12");
        assert_eq!(b.fields["domain"], "WORKGROUP");
        assert_eq!(b.fields["server_name"], "FILESRV");
        assert_eq!(b.fields["signing_required"], "false");
        assert_eq!(b.fields["system_time"], "2024-06-01T12:00:00Z");
        check_splits(|| SmbSession::new(None), &[], &reply);
    }

    #[test]
    fn refused() {
        for other in [
            SSH,
            HTTP,
            &[0x82, 0, 0, 0][..],
            &[0, 0xff, 0xff, 0xff],
            &[0, 0, 0, 0x40, 0xfe, b'X'],
        ] {
            assert_eq!(
                run(other).0,
                Action::NoMatch,
                "{}",
                crate::session::printable(other)
            );
        }
        // A request echoed back (no SERVER_TO_REDIR flag) is not a server.
        assert_eq!(run(&negotiate_request()).0, Action::NoMatch);
    }

    #[test]
    fn filetime_bounds() {
        assert_eq!(filetime(0), None);
        assert_eq!(filetime(u64::MAX), None);
        assert_eq!(filetime(1), None);
    }

    #[test]
    fn captured_samba() {
        let reply = samba_live();
        let (a, b) = run(&reply);
        assert_eq!(a, Action::Done);
        assert_eq!(b.fields["dialect"], "3.1.1");
        assert_eq!(b.fields["signing_required"], "false");
        assert_eq!(b.fields["security_mechanisms"], "ntlmssp");
        assert_eq!(b.fields["encryption_cipher"], "aes-128-gcm");
        assert_eq!(b.fields["preauth_hash"], "sha-512");
        assert_eq!(b.fields["capabilities"], "0x0000000f");
        assert!(b.fields["system_time"].starts_with("20"));
        check_splits(|| SmbSession::new(None), &[], &reply);
    }

    proptest! {
        #[test]
        fn random_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..2048), framed in any::<bool>(), smb1 in any::<bool>()) {
            if framed && bytes.len() >= 8 {
                let len = (bytes.len() - 4) as u32;
                bytes[..4].copy_from_slice(&len.to_be_bytes());
                bytes[4..8].copy_from_slice(if smb1 { SMB1_MAGIC } else { SMB2_MAGIC });
            }
            assert_bounded(&run(&bytes).1);
        }

        #[test]
        fn mutated(pos in any::<usize>(), byte in any::<u8>(), how in any::<u8>(), which in 0..5usize) {
            let valid = [samba_311(), windows_dc_311(), smb21(), smb2_error(), smb1_negotiate()];
            assert_bounded(&run(&mutate(&valid[which], pos, byte, how)).1);
        }

        #[test]
        fn spnego_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = spnego_mechanisms(&bytes);
        }
    }
}
