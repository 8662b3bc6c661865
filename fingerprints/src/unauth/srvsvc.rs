//! The share list of an SMB null session: DCE/RPC over the `srvsvc` named pipe, written
//! from C706 (connection-oriented PDUs), [MS-RPCE] (NDR little-endian) and [MS-SRVS]
//! 3.1.4.8 NetrShareEnum (opnum 15, `NetShareEnumAll` in most tools) at level 1:
//! share names, types and remarks — the same list `net view` shows.

use super::ntlm::utf16;
use crate::reader::Reader;

const PTYPE_REQUEST: u8 = 0;
const PTYPE_RESPONSE: u8 = 2;
const PTYPE_FAULT: u8 = 3;
const PTYPE_BIND: u8 = 11;
const PTYPE_BIND_ACK: u8 = 12;
const PTYPE_BIND_NAK: u8 = 13;
const PFC_FIRST_LAST: u8 = 0x03;
const PFC_LAST_FRAG: u8 = 0x02;
/// Little-endian integers, ASCII, IEEE floats.
const DREP: [u8; 4] = [0x10, 0, 0, 0];
/// The fragment size offered both ways: what Windows clients use.
pub(super) const MAX_FRAG: u16 = 4280;
/// srvsvc 4b324fc8-1670-01d3-1278-5a47bf6ee188 v3.0, in its wire order.
const SRVSVC: [u8; 16] = [
    0xc8, 0x4f, 0x32, 0x4b, 0x70, 0x16, 0xd3, 0x01, 0x12, 0x78, 0x5a, 0x47, 0xbf, 0x6e, 0xe1, 0x88,
];
/// NDR transfer syntax 8a885d04-1ceb-11c9-9fe8-08002b104860 v2.
const NDR: [u8; 16] = [
    0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60,
];
const OPNUM_SHARE_ENUM: u16 = 15;
/// Share names kept; the count covers all of them.
pub(super) const MAX_NAMES: usize = 16;

fn header(ptype: u8, call_id: u32, body: &[u8]) -> Vec<u8> {
    let mut p = vec![5, 0, ptype, PFC_FIRST_LAST];
    p.extend_from_slice(&DREP);
    p.extend_from_slice(&((16 + body.len()) as u16).to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes()); // auth_length
    p.extend_from_slice(&call_id.to_le_bytes());
    p.extend_from_slice(body);
    p
}

/// A bind to srvsvc v3.0 with NDR, one presentation context.
pub(super) fn bind() -> Vec<u8> {
    let mut b = Vec::with_capacity(56);
    b.extend_from_slice(&MAX_FRAG.to_le_bytes()); // max_xmit_frag
    b.extend_from_slice(&MAX_FRAG.to_le_bytes()); // max_recv_frag
    b.extend_from_slice(&0u32.to_le_bytes()); // assoc_group_id
    b.extend_from_slice(&[1, 0, 0, 0]); // n_context_elem, reserved
    b.extend_from_slice(&0u16.to_le_bytes()); // p_cont_id
    b.extend_from_slice(&[1, 0]); // n_transfer_syn, reserved
    b.extend_from_slice(&SRVSVC);
    b.extend_from_slice(&3u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&NDR);
    b.extend_from_slice(&2u32.to_le_bytes());
    header(PTYPE_BIND, 1, &b)
}

/// NetrShareEnum at level 1, no server name (the server ignores it, [MS-SRVS]), an
/// empty container to fill, no preferred maximum, resume handle 0.
pub(super) fn share_enum() -> Vec<u8> {
    let words: [u32; 9] = [
        0,           // ServerName: null unique pointer
        1,           // InfoStruct.Level
        1,           // union discriminant
        0x0002_0000, // referent of the SHARE_INFO_1_CONTAINER
        0,           // EntriesRead
        0,           // Buffer: null
        u32::MAX,    // PreferedMaximumLength
        0x0002_0004, // referent of ResumeHandle
        0,           // ResumeHandle
    ];
    let stub: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut b = Vec::with_capacity(8 + stub.len());
    b.extend_from_slice(&(stub.len() as u32).to_le_bytes()); // alloc_hint
    b.extend_from_slice(&0u16.to_le_bytes()); // p_cont_id
    b.extend_from_slice(&OPNUM_SHARE_ENUM.to_le_bytes());
    b.extend_from_slice(&stub);
    header(PTYPE_REQUEST, 2, &b)
}

/// The common header: (ptype, flags, the PDU cut to its frag_length). None when not a
/// little-endian DCE/RPC 5.0 PDU.
fn pdu(data: &[u8]) -> Option<(u8, u8, &[u8])> {
    let mut r = Reader::new(data);
    let (vers, minor, ptype, flags) = (r.u8()?, r.u8()?, r.u8()?, r.u8()?);
    let drep = r.take(4)?;
    let frag = usize::from(r.u16_le()?);
    if vers != 5 || minor != 0 || drep[0] & 0xf0 != 0x10 || frag < 16 {
        return None;
    }
    Some((ptype, flags, data.get(..frag).unwrap_or(data)))
}

/// Whether the bind was accepted; Err says why not.
pub(super) fn bind_result(data: &[u8]) -> Result<(), String> {
    let Some((ptype, _, p)) = pdu(data) else {
        return Err("srvsvc bind answered with no DCE/RPC PDU".into());
    };
    // Alignment counts from the PDU's start; 16 keeps it.
    let mut r = Reader::new(p.get(16..).unwrap_or_default());
    match ptype {
        PTYPE_BIND_ACK => {
            let mut parse = || -> Option<u16> {
                r.skip(8)?; // max_xmit_frag, max_recv_frag, assoc_group_id
                let addr = usize::from(r.u16_le()?);
                r.skip(addr)?;
                r.skip((4 - r.position() % 4) % 4)?;
                if r.u8()? == 0 {
                    return None;
                }
                r.skip(3)?;
                r.u16_le()
            };
            match parse() {
                Some(0) => Ok(()),
                Some(result) => Err(format!("srvsvc bind rejected (result {result})")),
                None => Err("srvsvc bind_ack unreadable".into()),
            }
        }
        PTYPE_BIND_NAK => Err(format!(
            "srvsvc bind refused (reason {})",
            r.u16_le().unwrap_or(0)
        )),
        other => Err(format!("srvsvc bind answered with PDU type {other}")),
    }
}

/// What NetrShareEnum answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Shares {
    Listed {
        /// Names in the server's order, at most [`MAX_NAMES`].
        names: Vec<String>,
        /// Entries the server reported (EntriesRead); more than names when cut.
        count: u32,
    },
    Refused(String),
}

/// The share list of a NetrShareEnum response (its first fragment; names that did not
/// fit in it are counted but not named).
pub(super) fn shares(data: &[u8]) -> Option<Shares> {
    let (ptype, flags, p) = pdu(data)?;
    let stub = p.get(24..)?;
    match ptype {
        PTYPE_FAULT => {
            let status = Reader::new(stub).u32_le()?;
            Some(Shares::Refused(format!(
                "srvsvc NetShareEnumAll fault 0x{status:08x}"
            )))
        }
        PTYPE_RESPONSE => {
            let complete = flags & PFC_LAST_FRAG != 0;
            share_list(stub, complete)
        }
        _ => None,
    }
}

fn share_list(stub: &[u8], complete: bool) -> Option<Shares> {
    let mut r = Reader::new(stub);
    let _level = r.u32_le()?;
    let _arm = r.u32_le()?;
    if r.u32_le()? == 0 {
        return status_only(&mut r, complete);
    }
    let count = r.u32_le()?;
    let buffer = r.u32_le()?;
    let mut names = Vec::new();
    if buffer != 0 {
        let max = r.u32_le()? as usize;
        // Each entry takes 12 bytes: more than the data holds is a lie.
        if max > r.remaining() / 12 {
            return None;
        }
        let mut pointers = Vec::with_capacity(max);
        for _ in 0..max {
            let (name, _type, remark) = (r.u32_le()?, r.u32_le()?, r.u32_le()?);
            pointers.push((name != 0, remark != 0));
        }
        // The strings follow in order; each read takes at least 12 bytes, so this ends.
        for (name, remark) in pointers {
            if name {
                let Some(n) = string(&mut r) else { break };
                if names.len() < MAX_NAMES {
                    names.push(n.unwrap_or_default());
                }
            }
            if remark && string(&mut r).is_none() {
                break;
            }
        }
    }
    if complete {
        // TotalEntries, ResumeHandle, then the result: a refusal may come with no list.
        let status = r.u32_le().and_then(|_| {
            if r.u32_le()? != 0 {
                r.skip(4)?;
            }
            r.u32_le()
        });
        if let Some(s) = status.filter(|s| *s != 0) {
            return Some(refused(s));
        }
    }
    Some(Shares::Listed { names, count })
}

fn status_only(r: &mut Reader<'_>, complete: bool) -> Option<Shares> {
    if !complete {
        return None;
    }
    r.skip(4)?;
    if r.u32_le()? != 0 {
        r.skip(4)?;
    }
    Some(refused(r.u32_le()?))
}

fn refused(status: u32) -> Shares {
    let name = match status {
        5 => " (ERROR_ACCESS_DENIED)",
        _ => "",
    };
    Shares::Refused(format!(
        "srvsvc NetShareEnumAll refused: WERR 0x{status:08x}{name}"
    ))
}

/// A conformant varying UTF-16 string (max_count, offset, actual_count, units, pad to 4):
/// Some(None) when it is empty.
fn string(r: &mut Reader<'_>) -> Option<Option<String>> {
    let _max = r.u32_le()?;
    let _offset = r.u32_le()?;
    let actual = r.u32_le()? as usize;
    let bytes = r.take(actual.checked_mul(2)?)?;
    let pad = (4 - r.position() % 4) % 4;
    r.take_up_to(pad);
    Some(utf16(bytes))
}
