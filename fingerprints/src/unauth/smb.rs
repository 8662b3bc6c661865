//! SMB null session (opt-in: it logs in, anonymously). On one connection, from
//! [MS-SMB2]: NEGOTIATE (the grab's own request), SESSION_SETUP twice carrying the
//! anonymous NTLMSSP exchange ([`super::ntlm`]), TREE_CONNECT to `\\host\IPC$`, and, once
//! IPC$ is granted, CREATE on the `srvsvc` pipe and two FSCTL_PIPE_TRANSCEIVE IOCTLs —
//! the RPC bind and NetShareEnumAll ([`super::srvsvc`]) — for the share list. Seven
//! steps, within [`super::MAX_STEPS`]. The share list read without credentials is the
//! finding (what a null session gives away). A null session whose IPC$ is reachable but
//! whose pipe or enumeration is refused, as hardened servers do (Windows by default), is
//! recorded, not flagged. Nothing is opened but the pipe, nothing written to any share.

use super::ntlm::{self, Challenge};
use super::srvsvc::{self, Shares};
use super::{value, verdict, Check, Step};
use crate::proto::smb::negotiate_request;
use crate::reader::Reader;
use crate::session::Banner;

const CHECK: &str = "smb-null-session";
const MAGIC: &[u8; 4] = b"\xfeSMB";
const HEADER: usize = 64;
/// A reply's frame; share lists come in one RPC fragment of at most 4280 bytes.
const MAX_FRAME: usize = 32 * 1024;
/// Credits asked for with each request, so the next message id is always granted.
const CREDITS: u16 = 8;

const NEGOTIATE: u16 = 0;
const SESSION_SETUP: u16 = 1;
const TREE_CONNECT: u16 = 3;
const CREATE: u16 = 5;
const IOCTL: u16 = 11;

const STATUS_PENDING: u32 = 0x0000_0103;
const STATUS_BUFFER_OVERFLOW: u32 = 0x8000_0005;
const STATUS_MORE_PROCESSING_REQUIRED: u32 = 0xc000_0016;
const FSCTL_PIPE_TRANSCEIVE: u32 = 0x0011_c017;
const SESSION_FLAG_IS_GUEST: u16 = 0x0001;

pub(super) fn plan(banner: &Banner, host: &str) -> Option<Box<dyn Check>> {
    // Only servers that answered the grab's SMB2 NEGOTIATE with a dialect.
    let dialect = banner.fields.get("dialect")?;
    if !dialect.starts_with(['2', '3']) || banner.fields.contains_key("status") {
        return None;
    }
    Some(Box::new(SmbNull::new(server_name(host))))
}

/// The server part of `\\server\IPC$`: the grab's host without its port or brackets.
fn server_name(host: &str) -> String {
    if let Some(inner) = host.strip_prefix('[') {
        return inner.split(']').next().unwrap_or(inner).to_owned();
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            h.to_owned()
        }
        _ => host.to_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Negotiate,
    Challenge,
    Authenticate,
    Ipc,
    Create,
    Bind,
    Enumerate,
}

#[derive(Debug)]
pub(super) struct SmbNull {
    server: String,
    stage: Stage,
    next_id: u64,
    session: u64,
    tree: u32,
    file: [u8; 16],
    dialect: String,
    challenge: Challenge,
    guest: bool,
}

/// One SMB2 reply: the fixed header's fields and the whole message.
struct Reply<'a> {
    command: u16,
    status: u32,
    message_id: u64,
    tree: u32,
    session: u64,
    msg: &'a [u8],
}

impl Reply<'_> {
    fn body(&self) -> Reader<'_> {
        Reader::new(self.msg.get(HEADER..).unwrap_or_default())
    }

    /// The bytes at an offset counted from the SMB2 header, as the protocol counts them.
    fn at(&self, offset: usize, len: usize) -> Option<&[u8]> {
        self.msg.get(offset..offset.checked_add(len)?)
    }
}

/// The final (not interim) SMB2 replies among the whole frames in `data`; None when a
/// frame is not SMB2 or too long.
fn replies(data: &[u8]) -> Option<Vec<Reply<'_>>> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 4 {
        let len = usize::from(rest[1]) << 16 | usize::from(rest[2]) << 8 | usize::from(rest[3]);
        if rest[0] != 0 || !(HEADER..=MAX_FRAME).contains(&len) {
            return None;
        }
        let Some(msg) = rest.get(4..4 + len) else {
            break;
        };
        rest = &rest[4 + len..];
        let mut h = Reader::new(msg);
        let (magic, size) = (h.take(4)?, h.u16_le()?);
        h.skip(2)?;
        let status = h.u32_le()?;
        let command = h.u16_le()?;
        h.skip(2)?;
        let flags = h.u32_le()?;
        h.skip(4)?;
        let message_id = h.u64_le()?;
        h.skip(4)?;
        let tree = h.u32_le()?;
        let session = h.u64_le()?;
        if magic != MAGIC || size != 64 || flags & 1 == 0 {
            return None;
        }
        // An async interim reply says only that the final one will follow.
        if flags & 2 != 0 && status == STATUS_PENDING {
            continue;
        }
        out.push(Reply {
            command,
            status,
            message_id,
            tree,
            session,
            msg,
        });
    }
    Some(out)
}

fn status_text(status: u32) -> String {
    let name = match status {
        0xc000_000d => "STATUS_INVALID_PARAMETER",
        0xc000_0022 => "STATUS_ACCESS_DENIED",
        0xc000_0034 => "STATUS_OBJECT_NAME_NOT_FOUND",
        0xc000_006d => "STATUS_LOGON_FAILURE",
        0xc000_006e => "STATUS_ACCOUNT_RESTRICTION",
        0xc000_00bb => "STATUS_NOT_SUPPORTED",
        0xc000_00cc => "STATUS_BAD_NETWORK_NAME",
        0xc000_015b => "STATUS_LOGON_TYPE_NOT_GRANTED",
        0xc000_0203 => "STATUS_USER_SESSION_DELETED",
        _ => return format!("0x{status:08x}"),
    };
    format!("{name} 0x{status:08x}")
}

impl SmbNull {
    fn new(server: String) -> Self {
        Self {
            server,
            stage: Stage::Negotiate,
            next_id: 1,
            session: 0,
            tree: 0,
            file: [0; 16],
            dialect: String::new(),
            challenge: Challenge::default(),
            guest: false,
        }
    }

    /// A request after NEGOTIATE (message id 0): header, then `body`, framed.
    fn request(&mut self, command: u16, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0; 4];
        m.extend_from_slice(MAGIC);
        m.extend_from_slice(&64u16.to_le_bytes()); // StructureSize
        m.extend_from_slice(&0u16.to_le_bytes()); // CreditCharge: small messages
        m.extend_from_slice(&0u32.to_le_bytes()); // ChannelSequence, Reserved
        m.extend_from_slice(&command.to_le_bytes());
        m.extend_from_slice(&CREDITS.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes()); // Flags
        m.extend_from_slice(&0u32.to_le_bytes()); // NextCommand
        m.extend_from_slice(&self.next_id.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes()); // Reserved (ProcessId)
        m.extend_from_slice(&self.tree.to_le_bytes());
        m.extend_from_slice(&self.session.to_le_bytes());
        m.extend_from_slice(&[0; 16]); // Signature: nothing is signed
        m.extend_from_slice(body);
        let len = (m.len() - 4) as u32;
        m[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
        self.next_id += 1;
        m
    }

    fn session_setup(&mut self, token: &[u8]) -> Vec<u8> {
        let mut b = Vec::with_capacity(24 + token.len());
        b.extend_from_slice(&25u16.to_le_bytes()); // StructureSize
        b.push(0); // Flags
        b.push(1); // SecurityMode: signing enabled (not required)
        b.extend_from_slice(&0u32.to_le_bytes()); // Capabilities
        b.extend_from_slice(&0u32.to_le_bytes()); // Channel
        b.extend_from_slice(&((HEADER + 24) as u16).to_le_bytes());
        b.extend_from_slice(&(token.len() as u16).to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes()); // PreviousSessionId
        b.extend_from_slice(token);
        self.request(SESSION_SETUP, &b)
    }

    fn tree_connect(&mut self) -> Vec<u8> {
        let path: Vec<u8> = format!("\\\\{}\\IPC$", self.server)
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let mut b = Vec::with_capacity(8 + path.len());
        b.extend_from_slice(&9u16.to_le_bytes()); // StructureSize
        b.extend_from_slice(&0u16.to_le_bytes()); // Flags
        b.extend_from_slice(&((HEADER + 8) as u16).to_le_bytes());
        b.extend_from_slice(&(path.len() as u16).to_le_bytes());
        b.extend_from_slice(&path);
        self.request(TREE_CONNECT, &b)
    }

    /// CREATE of the `srvsvc` pipe, read and write (an RPC call is a write then a read).
    fn create_pipe(&mut self) -> Vec<u8> {
        let name: Vec<u8> = "srvsvc".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut b = Vec::with_capacity(56 + name.len());
        b.extend_from_slice(&57u16.to_le_bytes()); // StructureSize
        b.push(0); // SecurityFlags
        b.push(0); // RequestedOplockLevel: none
        b.extend_from_slice(&2u32.to_le_bytes()); // ImpersonationLevel: Impersonation
        b.extend_from_slice(&[0; 16]); // SmbCreateFlags, Reserved
        b.extend_from_slice(&0x0012_019fu32.to_le_bytes()); // DesiredAccess
        b.extend_from_slice(&0u32.to_le_bytes()); // FileAttributes
        b.extend_from_slice(&3u32.to_le_bytes()); // ShareAccess: read, write
        b.extend_from_slice(&1u32.to_le_bytes()); // CreateDisposition: FILE_OPEN
        b.extend_from_slice(&0u32.to_le_bytes()); // CreateOptions
        b.extend_from_slice(&((HEADER + 56) as u16).to_le_bytes());
        b.extend_from_slice(&(name.len() as u16).to_le_bytes());
        b.extend_from_slice(&[0; 8]); // CreateContexts: none
        b.extend_from_slice(&name);
        self.request(CREATE, &b)
    }

    fn transceive(&mut self, input: &[u8]) -> Vec<u8> {
        let mut b = Vec::with_capacity(56 + input.len());
        b.extend_from_slice(&57u16.to_le_bytes()); // StructureSize
        b.extend_from_slice(&0u16.to_le_bytes()); // Reserved
        b.extend_from_slice(&FSCTL_PIPE_TRANSCEIVE.to_le_bytes());
        b.extend_from_slice(&self.file);
        b.extend_from_slice(&((HEADER + 56) as u32).to_le_bytes()); // InputOffset
        b.extend_from_slice(&(input.len() as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // MaxInputResponse
        b.extend_from_slice(&0u32.to_le_bytes()); // OutputOffset
        b.extend_from_slice(&0u32.to_le_bytes()); // OutputCount
        b.extend_from_slice(&u32::from(srvsvc::MAX_FRAG).to_le_bytes()); // MaxOutputResponse
        b.extend_from_slice(&1u32.to_le_bytes()); // Flags: SMB2_0_IOCTL_IS_FSCTL
        b.extend_from_slice(&0u32.to_le_bytes()); // Reserved2
        b.extend_from_slice(input);
        self.request(IOCTL, &b)
    }

    /// The command and message id the reply must answer.
    fn expected(&self) -> (u16, u64) {
        let command = match self.stage {
            Stage::Negotiate => NEGOTIATE,
            Stage::Challenge | Stage::Authenticate => SESSION_SETUP,
            Stage::Ipc => TREE_CONNECT,
            Stage::Create => CREATE,
            Stage::Bind | Stage::Enumerate => IOCTL,
        };
        (command, self.next_id.saturating_sub(1))
    }

    fn answer<'a>(&self, reply: &'a [u8]) -> Option<Option<Reply<'a>>> {
        let (command, id) = self.expected();
        let all = replies(reply)?;
        Some(
            all.into_iter()
                .find(|r| r.command == command && r.message_id == id),
        )
    }

    fn who(&self) -> String {
        let mut parts = vec![format!("SMB {}", self.dialect)];
        if let Some(c) = &self.challenge.computer {
            parts.push(format!("server {}", value(c)));
        }
        if let Some(d) = &self.challenge.domain {
            parts.push(format!("domain {}", value(d)));
        }
        parts.join(", ")
    }

    fn accepted(&self) -> String {
        let guest = if self.guest { " as guest" } else { "" };
        format!("smb null session accepted{guest} ({})", self.who())
    }

    fn refused(&self, what: &str, status: u32) -> Step {
        verdict(
            CHECK,
            false,
            format!(
                "smb null session {what} ({}; {})",
                status_text(status),
                self.who()
            ),
            true,
        )
    }

    /// IPC$ was granted: the verdict, open when the share list was read, with what the
    /// pipe told (`more`).
    fn after_ipc(&self, open: bool, more: &str) -> Step {
        verdict(
            CHECK,
            open,
            format!("{}, IPC$ reachable, {more}", self.accepted()),
            true,
        )
    }

    /// The reply was cut short or not SMB2: after IPC$ that is recorded, not flagged.
    fn no_answer(&self) -> Step {
        match self.stage {
            Stage::Create | Stage::Bind | Stage::Enumerate => {
                self.after_ipc(false, "no share list (no answer)")
            }
            _ => Step::Done(None),
        }
    }
}

impl Check for SmbNull {
    fn name(&self) -> &'static str {
        CHECK
    }
    fn first(&mut self) -> Step {
        Step::Connect(negotiate_request())
    }
    fn complete(&self, reply: &[u8]) -> bool {
        !matches!(self.answer(reply), Some(None))
    }
    fn on_reply(&mut self, reply: &[u8]) -> Step {
        let Some(Some(r)) = self.answer(reply) else {
            return self.no_answer();
        };
        let ok = r.status == 0;
        match self.stage {
            Stage::Negotiate => {
                let mut b = r.body();
                let (Some(65), Some(_), Some(dialect)) = (b.u16_le(), b.u16_le(), b.u16_le())
                else {
                    return Step::Done(None);
                };
                if !ok {
                    return Step::Done(None);
                }
                self.dialect = match dialect {
                    0x0202 => "2.0.2".into(),
                    0x0210 => "2.1".into(),
                    0x0300 => "3.0".into(),
                    0x0302 => "3.0.2".into(),
                    0x0311 => "3.1.1".into(),
                    other => format!("0x{other:04x}"),
                };
                self.stage = Stage::Challenge;
                Step::Send(self.session_setup(&ntlm::negotiate_token()))
            }
            Stage::Challenge => {
                if r.status == 0 {
                    // Accepted without a second leg: an anonymous session all the same.
                    return self.authenticated(&r);
                }
                if r.status != STATUS_MORE_PROCESSING_REQUIRED {
                    return self.refused("refused at NTLMSSP negotiate", r.status);
                }
                let token = security_buffer(&r).unwrap_or_default();
                let Some(challenge) = ntlm::challenge(token) else {
                    return Step::Done(None);
                };
                self.session = r.session;
                self.challenge = challenge;
                self.stage = Stage::Authenticate;
                let token = ntlm::authenticate_token(self.challenge.flags);
                Step::Send(self.session_setup(&token))
            }
            Stage::Authenticate if ok => self.authenticated(&r),
            Stage::Authenticate => self.refused("refused", r.status),
            Stage::Ipc if ok => {
                self.tree = r.tree;
                self.stage = Stage::Create;
                Step::Send(self.create_pipe())
            }
            Stage::Ipc => verdict(
                CHECK,
                false,
                format!(
                    "{}, IPC$ refused ({})",
                    self.accepted(),
                    status_text(r.status)
                ),
                true,
            ),
            Stage::Create => {
                let mut b = r.body();
                let file = b.skip(64).and_then(|()| b.take(16));
                match (ok, file) {
                    (true, Some(f)) => {
                        self.file.copy_from_slice(f);
                        self.stage = Stage::Bind;
                        Step::Send(self.transceive(&srvsvc::bind()))
                    }
                    _ => self.after_ipc(
                        false,
                        &format!("srvsvc pipe not opened ({})", status_text(r.status)),
                    ),
                }
            }
            Stage::Bind => match ioctl_output(&r).map(srvsvc::bind_result) {
                Some(Ok(())) => {
                    self.stage = Stage::Enumerate;
                    Step::Send(self.transceive(&srvsvc::share_enum()))
                }
                Some(Err(why)) => self.after_ipc(false, &why),
                None => self.after_ipc(
                    false,
                    &format!("srvsvc bind failed ({})", status_text(r.status)),
                ),
            },
            Stage::Enumerate => match ioctl_output(&r).and_then(srvsvc::shares) {
                Some(Shares::Listed { names, count }) => {
                    let mut list: Vec<String> = names.iter().map(|n| value(n)).collect();
                    if (count as usize) > list.len() {
                        list.push("...".into());
                    }
                    self.after_ipc(
                        true,
                        &format!("NetShareEnumAll lists {count} shares ({})", list.join(", ")),
                    )
                }
                Some(Shares::Refused(why)) => self.after_ipc(false, &why),
                None => self.after_ipc(
                    false,
                    &format!("NetShareEnumAll unanswered ({})", status_text(r.status)),
                ),
            },
        }
    }
}

impl SmbNull {
    fn authenticated(&mut self, r: &Reply<'_>) -> Step {
        let mut b = r.body();
        let flags = b.skip(2).and_then(|()| b.u16_le()).unwrap_or(0);
        self.guest = flags & SESSION_FLAG_IS_GUEST != 0;
        self.session = r.session;
        self.stage = Stage::Ipc;
        Step::Send(self.tree_connect())
    }
}

/// A SESSION_SETUP response's security buffer (offsets count from the SMB2 header).
fn security_buffer<'a>(r: &'a Reply<'a>) -> Option<&'a [u8]> {
    let mut b = r.body();
    if b.u16_le()? != 9 {
        return None;
    }
    b.skip(2)?;
    let (at, len) = (usize::from(b.u16_le()?), usize::from(b.u16_le()?));
    r.at(at, len)
}

/// An IOCTL response's output (STATUS_BUFFER_OVERFLOW: the part that fit).
fn ioctl_output<'a>(r: &'a Reply<'a>) -> Option<&'a [u8]> {
    if r.status != 0 && r.status != STATUS_BUFFER_OVERFLOW {
        return None;
    }
    let mut b = r.body();
    if b.u16_le()? != 49 {
        return None;
    }
    b.skip(2 + 4 + 16 + 4 + 4)?; // Reserved, CtlCode, FileId, InputOffset, InputCount
    let (at, len) = (b.u32_le()? as usize, b.u32_le()? as usize);
    r.at(at, len)
}
