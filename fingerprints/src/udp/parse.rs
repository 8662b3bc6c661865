//! What a UDP reply says: service, product and version where the protocol tells them,
//! and facts for the exposure policy (recursion offered, community accepted, …).
//! Every reply is hostile: parsing is bounded by the datagram, every index checked,
//! every string escaped and capped.

use super::UdpProto;
use crate::unauth::escape;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long a quoted value may be.
const CAP: usize = 200;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpFacts {
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
}

impl UdpFacts {
    fn new(service: &str) -> Self {
        UdpFacts {
            service: service.into(),
            ..Self::default()
        }
    }

    fn fact(&mut self, key: &str, value: impl AsRef<str>) {
        self.facts.insert(key.into(), escape(value.as_ref(), CAP));
    }

    fn product(&mut self, product: &str, version: Option<&str>) {
        self.product = Some(escape(product, 64));
        self.version = version.filter(|v| !v.is_empty()).map(|v| escape(v, 64));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses a reply to a probe of `proto` (already validated as ours).
pub fn parse_reply(proto: UdpProto, m: &[u8]) -> UdpFacts {
    let mut f = UdpFacts::new(proto.name());
    match proto {
        UdpProto::Dns => dns(&mut f, m, true),
        UdpProto::Mdns => dns(&mut f, m, false),
        UdpProto::NetbiosNs => netbios(&mut f, m),
        UdpProto::Ntp => ntp(&mut f, m),
        UdpProto::NtpControl => {
            f.fact("control_reply_bytes", m.len().to_string());
        }
        UdpProto::Snmp1 | UdpProto::Snmp2c => snmp(&mut f, m),
        UdpProto::Ssdp => ssdp(&mut f, m),
        UdpProto::Memcached => memcached(&mut f, m),
        UdpProto::Coap => coap(&mut f, m),
        UdpProto::Ipmi => ipmi(&mut f, m),
        UdpProto::Stun => stun(&mut f, m),
        UdpProto::Sip => sip(&mut f, m),
        UdpProto::Quic => quic(&mut f, m),
        UdpProto::Ike => ike(&mut f, m),
        UdpProto::Wsd => wsd(&mut f, m),
        UdpProto::Tftp => tftp(&mut f, m),
    }
    f
}

/// Skips a (possibly compressed) DNS name; returns the offset after it.
fn skip_name(m: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *m.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
    None
}

/// Reads a DNS name (following pointers a bounded number of times).
fn read_name(m: &[u8], mut at: usize) -> Option<String> {
    let mut out = String::new();
    for _ in 0..64 {
        let len = *m.get(at)?;
        match len {
            0 => return Some(out),
            l if l & 0xc0 == 0xc0 => {
                at = usize::from(l & 0x3f) << 8 | usize::from(*m.get(at + 1)?);
            }
            l if l & 0xc0 == 0 => {
                let label = m.get(at + 1..at + 1 + usize::from(l))?;
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&text(label));
                if out.len() > 255 {
                    return None;
                }
                at += 1 + usize::from(l);
            }
            _ => return None,
        }
    }
    None
}

fn dns(f: &mut UdpFacts, m: &[u8], unicast_dns: bool) {
    let (Some(flags), Some(qd), Some(an)) = (
        m.get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]])),
        m.get(4..6).map(|b| u16::from_be_bytes([b[0], b[1]])),
        m.get(6..8).map(|b| u16::from_be_bytes([b[0], b[1]])),
    ) else {
        return;
    };
    let rcode = flags & 0x0f;
    let rcodes = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
    ];
    f.fact(
        "rcode",
        rcodes
            .get(usize::from(rcode))
            .map_or_else(|| rcode.to_string(), |s| s.to_string()),
    );
    if unicast_dns {
        f.fact("recursion_available", (flags & 0x0080 != 0).to_string());
        f.fact("authoritative", (flags & 0x0400 != 0).to_string());
    }
    let mut at = 12;
    for _ in 0..qd.min(4) {
        let Some(next) = skip_name(m, at) else {
            return;
        };
        at = next + 4;
    }
    let mut names = Vec::new();
    for _ in 0..an.min(32) {
        let Some(next) = skip_name(m, at) else {
            return;
        };
        let Some(h) = m.get(next..next + 10) else {
            return;
        };
        let (rtype, rdlen) = (
            u16::from_be_bytes([h[0], h[1]]),
            usize::from(u16::from_be_bytes([h[8], h[9]])),
        );
        let rdata_at = next + 10;
        let Some(rdata) = m.get(rdata_at..rdata_at + rdlen) else {
            return;
        };
        match rtype {
            16 if unicast_dns => {
                // TXT: the first character-string is the version text.
                if let Some(&l) = rdata.first() {
                    if let Some(s) = rdata.get(1..1 + usize::from(l)) {
                        let v = text(s);
                        f.fact("version_bind", &v);
                        dns_product(f, &v);
                    }
                }
            }
            12 => {
                if let Some(n) = read_name(m, rdata_at) {
                    names.push(n);
                }
            }
            _ => {}
        }
        at = rdata_at + rdlen;
    }
    if !names.is_empty() {
        f.fact("services", names.join(" "));
    }
}

/// Known `version.bind` texts: BIND prints a bare version, the others their name.
fn dns_product(f: &mut UdpFacts, v: &str) {
    let lower = v.to_ascii_lowercase();
    let word_after = |name: &str| {
        lower
            .find(name)
            .and_then(|i| v.get(i + name.len()..))
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_string)
    };
    for (needle, product) in [
        ("unbound", "Unbound"),
        ("nsd", "NSD"),
        ("knot dns", "Knot DNS"),
        ("powerdns", "PowerDNS"),
        ("dnsmasq-", "dnsmasq"),
    ] {
        if lower.contains(needle) {
            let version = word_after(needle).map(|s| s.trim_start_matches('-').to_string());
            let version = version.filter(|s| s.starts_with(|c: char| c.is_ascii_digit()));
            f.product(product, version.as_deref());
            return;
        }
    }
    if v.starts_with(|c: char| c.is_ascii_digit()) && v.contains('.') {
        let version = v.split(['-', ' ']).next().unwrap_or(v);
        f.product("BIND", Some(version));
    }
}

fn netbios(f: &mut UdpFacts, m: &[u8]) {
    // Header, the question name echoed in the answer (34 bytes), type/class/ttl/rdlength.
    let Some(after) = skip_name(m, 12) else {
        return;
    };
    let Some(&count) = m.get(after + 10) else {
        return;
    };
    let mut names = Vec::new();
    for i in 0..usize::from(count).min(64) {
        let at = after + 11 + i * 18;
        let Some(e) = m.get(at..at + 18) else {
            break;
        };
        let name = text(&e[..15]).trim_end().to_string();
        let (suffix, group) = (e[15], e[16] & 0x80 != 0);
        if suffix == 0 && !group && !f.facts.contains_key("netbios_name") {
            f.fact("netbios_name", &name);
        }
        if suffix == 0 && group && !f.facts.contains_key("workgroup") {
            f.fact("workgroup", &name);
        }
        names.push(format!("{name}<{suffix:02x}>"));
    }
    if !names.is_empty() {
        f.fact("names", names.join(" "));
    }
    let mac_at = after + 11 + usize::from(count) * 18;
    if let Some(mac) = m.get(mac_at..mac_at + 6) {
        let mac: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
        f.fact("mac", mac.join(":"));
    }
}

fn ntp(f: &mut UdpFacts, m: &[u8]) {
    let (Some(&b0), Some(&stratum), Some(refid)) = (m.first(), m.get(1), m.get(12..16)) else {
        return;
    };
    f.fact("version", ((b0 >> 3) & 7).to_string());
    f.fact("stratum", stratum.to_string());
    let refid = if stratum <= 1 {
        text(refid).trim_end_matches('\0').to_string()
    } else {
        format!("{}.{}.{}.{}", refid[0], refid[1], refid[2], refid[3])
    };
    f.fact("refid", refid);
}

/// A bounded BER reader (definite lengths only, as SNMP uses).
pub(super) struct Ber<'a> {
    m: &'a [u8],
}

impl<'a> Ber<'a> {
    pub(super) fn new(m: &'a [u8]) -> Self {
        Ber { m }
    }

    /// The next TLV: its tag and contents.
    pub(super) fn any(&mut self) -> Option<(u8, Ber<'a>)> {
        let tag = *self.m.first()?;
        let first = *self.m.get(1)?;
        let (len, head) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 3 {
                return None;
            }
            let bytes = self.m.get(2..2 + n)?;
            (
                bytes.iter().fold(0usize, |a, b| a << 8 | usize::from(*b)),
                2 + n,
            )
        };
        let body = self.m.get(head..head.checked_add(len)?)?;
        self.m = &self.m[head + len..];
        Some((tag, Ber { m: body }))
    }

    pub(super) fn enter(&mut self, tag: u8) -> Option<Ber<'a>> {
        let (t, b) = self.any()?;
        (t == tag).then_some(b)
    }

    pub(super) fn take(&mut self, tag: u8) -> Option<&'a [u8]> {
        self.enter(tag).map(|b| b.m)
    }

    pub(super) fn skip(&mut self, tag: u8) -> Option<()> {
        self.enter(tag).map(|_| ())
    }
}

fn snmp(f: &mut UdpFacts, m: &[u8]) {
    let parsed = (|| {
        let mut msg = Ber::new(m).enter(0x30)?;
        let version = msg.take(0x02)?;
        let community = msg.take(0x04)?;
        let (tag, mut pdu) = msg.any()?;
        pdu.skip(0x02)?;
        let status = pdu.take(0x02)?;
        pdu.skip(0x02)?;
        let mut list = pdu.enter(0x30)?;
        let mut bind = list.enter(0x30)?;
        bind.skip(0x06)?;
        let (vtag, value) = bind.any()?;
        Some((version.to_vec(), community, tag, status, vtag, value.m))
    })();
    let Some((version, community, tag, status, vtag, value)) = parsed else {
        return;
    };
    f.fact(
        "snmp_version",
        match version.as_slice() {
            [0] => "1",
            [1] => "2c",
            [3] => "3",
            _ => "other",
        },
    );
    f.fact("community", text(community));
    if tag == 0xa2 && status.iter().all(|b| *b == 0) && vtag == 0x04 {
        // A GetResponse with no error and a string: the community was accepted.
        f.fact("community_accepted", "true");
        let descr = text(value);
        f.fact("sys_descr", descr.trim());
        let first = descr.split_whitespace().next().unwrap_or("");
        if first == "Linux" {
            // net-snmp's sysDescr: "Linux <host> <kernel> ...".
            let kernel = descr.split_whitespace().nth(2);
            f.fact("os", "Linux");
            if let Some(k) = kernel {
                f.fact("kernel", k);
            }
        }
    }
}

/// Header lines of an HTTP-like (SSDP, SIP) message: (status line, headers).
fn http_like(m: &[u8]) -> (String, Vec<(String, String)>) {
    let head = &m[..m
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(m.len())];
    let head = text(head);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("").to_string();
    let headers = lines
        .take(64)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

/// `Name/1.2.3` tokens: the last that is not a protocol or OS names the product.
fn product_token(f: &mut UdpFacts, server: &str) {
    let skip = ["upnp", "linux", "http", "dlnadoc", "windows", "sip"];
    let token = server
        .split_whitespace()
        .filter_map(|t| t.split_once('/'))
        .rfind(|(name, _)| !skip.contains(&name.to_ascii_lowercase().as_str()));
    if let Some((name, version)) = token {
        f.product(name, Some(version.trim_end_matches(',')));
    }
}

fn ssdp(f: &mut UdpFacts, m: &[u8]) {
    let (status, headers) = http_like(m);
    f.fact("status", &status);
    for (k, v) in headers {
        match k.as_str() {
            "server" => {
                f.fact("server", &v);
                product_token(f, &v);
            }
            "location" | "st" | "usn" => f.fact(&k, &v),
            _ => {}
        }
    }
}

fn memcached(f: &mut UdpFacts, m: &[u8]) {
    let body = text(m.get(8..).unwrap_or_default());
    if let Some(v) = body.strip_prefix("VERSION ") {
        f.product("memcached", v.lines().next());
    }
}

fn coap(f: &mut UdpFacts, m: &[u8]) {
    let (Some(&b0), Some(&code)) = (m.first(), m.get(1)) else {
        return;
    };
    f.fact("code", format!("{}.{:02}", code >> 5, code & 31));
    let mut at = 4 + usize::from(b0 & 0x0f);
    // Options up to the payload marker; extended deltas/lengths (RFC 7252 §3.1).
    for _ in 0..64 {
        let Some(&b) = m.get(at) else {
            return;
        };
        if b == 0xff {
            let links = text(m.get(at + 1..).unwrap_or_default());
            f.fact("resources", links);
            return;
        }
        let ext = |n: u8, at: &mut usize| -> Option<usize> {
            match n {
                0..=12 => Some(usize::from(n)),
                13 => {
                    *at += 1;
                    Some(usize::from(*m.get(*at)?) + 13)
                }
                14 => {
                    *at += 2;
                    let b = m.get(*at - 1..=*at)?;
                    Some(usize::from(u16::from_be_bytes([b[0], b[1]])) + 269)
                }
                _ => None,
            }
        };
        let mut p = at;
        let (Some(_), Some(len)) = (ext(b >> 4, &mut p), ext(b & 15, &mut p)) else {
            return;
        };
        at = p + 1 + len;
    }
}

fn ipmi(f: &mut UdpFacts, m: &[u8]) {
    // RMCP 4, session header 10, then rqAddr netFn sum rsAddr seq cmd, completion code.
    let (Some(&cmd), Some(&cc)) = (m.get(19), m.get(20)) else {
        return;
    };
    if cmd != 0x38 {
        return;
    }
    f.fact("completion_code", format!("{cc:#04x}"));
    let (Some(&auth), Some(&status)) = (m.get(22), m.get(23)) else {
        return;
    };
    f.fact("ipmi_2_0", (auth & 0x80 != 0).to_string());
    f.fact("anonymous_login", (status & 0x04 != 0).to_string());
    f.fact("null_user", (status & 0x02 != 0).to_string());
}

fn stun(f: &mut UdpFacts, m: &[u8]) {
    let Some(t) = m.get(0..2) else { return };
    f.fact(
        "class",
        match u16::from_be_bytes([t[0], t[1]]) {
            0x0101 => "success",
            0x0111 => "error",
            _ => "other",
        },
    );
    let mut at = 20;
    for _ in 0..32 {
        let Some(h) = m.get(at..at + 4) else { break };
        let (kind, len) = (
            u16::from_be_bytes([h[0], h[1]]),
            usize::from(u16::from_be_bytes([h[2], h[3]])),
        );
        let Some(value) = m.get(at + 4..at + 4 + len) else {
            break;
        };
        if kind == 0x8022 {
            // SOFTWARE, e.g. "Coturn-4.6.1 'Gorst'".
            let sw = text(value);
            f.fact("software", &sw);
            let first = sw.split_whitespace().next().unwrap_or("");
            match first.rsplit_once(['-', '/']) {
                Some((name, ver)) if ver.starts_with(|c: char| c.is_ascii_digit()) => {
                    f.product(name, Some(ver))
                }
                _ => f.product(first, None),
            }
        }
        at += 4 + len.div_ceil(4) * 4;
    }
}

fn sip(f: &mut UdpFacts, m: &[u8]) {
    let (status, headers) = http_like(m);
    f.fact("status", &status);
    for (k, v) in headers {
        if k == "server" || k == "user-agent" {
            f.fact("server", &v);
            // "kamailio (5.6.3 (x86_64/linux))", "Asterisk PBX 18", "repro/1.12".
            let mut words = v.split(|c: char| c.is_whitespace() || c == '(' || c == ')');
            let name = words.next().unwrap_or("");
            let ver = words.find(|w| w.starts_with(|c: char| c.is_ascii_digit()));
            match name.split_once('/') {
                Some((n, ver)) => f.product(n, Some(ver)),
                None => f.product(name, ver),
            }
        }
        if k == "allow" {
            f.fact("allow", &v);
        }
    }
}

fn quic(f: &mut UdpFacts, m: &[u8]) {
    let Some(&dlen) = m.get(5) else { return };
    let Some(&slen) = m.get(6 + usize::from(dlen)) else {
        return;
    };
    let at = 7 + usize::from(dlen) + usize::from(slen);
    let versions: Vec<String> = m
        .get(at..)
        .unwrap_or_default()
        .chunks_exact(4)
        .take(32)
        .map(|v| format!("{:#010x}", u32::from_be_bytes([v[0], v[1], v[2], v[3]])))
        .collect();
    f.fact("versions", versions.join(" "));
}

fn ike(f: &mut UdpFacts, m: &[u8]) {
    let (Some(&first), Some(&flags)) = (m.get(16), m.get(19)) else {
        return;
    };
    f.fact("response", (flags & 0x20 != 0).to_string());
    // Walk the payload chain: notify types and vendor ids say the most.
    let (mut next, mut at) = (first, 28);
    let mut notes = Vec::new();
    for _ in 0..16 {
        let Some(h) = m.get(at..at + 4) else { break };
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if len < 4 {
            break;
        }
        match next {
            41 => {
                if let Some(t) = m.get(at + 6..at + 8) {
                    notes.push(format!("notify:{}", u16::from_be_bytes([t[0], t[1]])));
                }
            }
            43 => notes.push("vendor-id".into()),
            33 => notes.push("sa".into()),
            34 => notes.push("ke".into()),
            _ => {}
        }
        next = h[0];
        at += len;
        if next == 0 {
            break;
        }
    }
    f.fact("payloads", notes.join(" "));
}

fn wsd(f: &mut UdpFacts, m: &[u8]) {
    let t = text(m);
    for (tag, key) in [("Types>", "types"), ("XAddrs>", "xaddrs")] {
        if let Some(i) = t.find(tag) {
            let rest = &t[i + tag.len()..];
            let value = rest.split('<').next().unwrap_or("");
            f.fact(key, value.trim());
        }
    }
}

fn tftp(f: &mut UdpFacts, m: &[u8]) {
    match m.get(0..2) {
        Some([0, 3]) => f.fact("reply", "data"),
        Some([0, 5]) => {
            f.fact("reply", "error");
            if let Some(c) = m.get(2..4) {
                f.fact("error_code", u16::from_be_bytes([c[0], c[1]]).to_string());
            }
            let msg = m.get(4..).unwrap_or_default();
            let msg = &msg[..msg.iter().position(|b| *b == 0).unwrap_or(msg.len())];
            f.fact("error", text(msg));
        }
        _ => {}
    }
}
