//! TXT record content: joining the character-strings, and reading SPF (RFC 7208) and
//! DMARC (RFC 7489) policies out of them.
//!
//! Everything here parses data from someone else's zone, so it is hostile input:
//! parsers look at no more than [`MAX_TXT_LEN`] bytes and [`MAX_TERMS`] terms, never
//! fail, and report what was wrong in an `errors` list instead. A record that is not
//! SPF (or DMARC) at all gives `None`.

use super::name::DomainName;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Bytes of record text kept and parsed. Far above real records (Google's SPF is ~100
/// bytes); a DNS message can carry up to 64 KiB of TXT.
pub const MAX_TXT_LEN: usize = 4096;
/// Terms (SPF) or tags (DMARC) parsed before giving up.
pub const MAX_TERMS: usize = 256;
/// RFC 7208 §4.6.4: at most 10 terms that cause DNS lookups.
pub const SPF_LOOKUP_LIMIT: usize = 10;
/// How much of an offending term an error message quotes.
const SHOWN_TERM_CHARS: usize = 80;

/// Joins a TXT record's character-strings the way SPF and DMARC read them (RFC 7208
/// §3.3: concatenated with nothing in between) and escapes what is not printable ASCII
/// as zone files do: `\DDD` (decimal) for each such byte, and `\\` for a backslash so
/// that the escapes stay unambiguous. The result is capped at [`MAX_TXT_LEN`] bytes,
/// never cutting an escape in half.
pub fn join_txt_strings(parts: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for &byte in parts.iter().flatten() {
        let width = match byte {
            b'\\' => 2,
            0x20..=0x7e => 1,
            _ => 4,
        };
        if out.len() + width > MAX_TXT_LEN {
            break;
        }
        match byte {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                out.push('\\');
                out.push(char::from(b'0' + byte / 100));
                out.push(char::from(b'0' + byte / 10 % 10));
                out.push(char::from(b'0' + byte % 10));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// SPF
// ---------------------------------------------------------------------------------

/// The result a mechanism gives when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfQualifier {
    /// `+` (also the default when no qualifier is written).
    Pass,
    /// `-`
    Fail,
    /// `~`
    SoftFail,
    /// `?`
    Neutral,
}

impl SpfQualifier {
    fn from_char(c: char) -> Option<SpfQualifier> {
        match c {
            '+' => Some(SpfQualifier::Pass),
            '-' => Some(SpfQualifier::Fail),
            '~' => Some(SpfQualifier::SoftFail),
            '?' => Some(SpfQualifier::Neutral),
            _ => None,
        }
    }

    pub fn as_char(self) -> char {
        match self {
            SpfQualifier::Pass => '+',
            SpfQualifier::Fail => '-',
            SpfQualifier::SoftFail => '~',
            SpfQualifier::Neutral => '?',
        }
    }
}

/// Mechanisms and the two modifiers RFC 7208 defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SpfKind {
    All,
    Include,
    A,
    Mx,
    Ptr,
    Ip4,
    Ip6,
    Exists,
    /// `redirect=` modifier.
    Redirect,
    /// `exp=` modifier.
    Exp,
}

impl SpfKind {
    fn mechanism(name: &str) -> Option<SpfKind> {
        let kind = match name.to_ascii_lowercase().as_str() {
            "all" => SpfKind::All,
            "include" => SpfKind::Include,
            "a" => SpfKind::A,
            "mx" => SpfKind::Mx,
            "ptr" => SpfKind::Ptr,
            "ip4" => SpfKind::Ip4,
            "ip6" => SpfKind::Ip6,
            "exists" => SpfKind::Exists,
            _ => return None,
        };
        Some(kind)
    }

    pub fn name(self) -> &'static str {
        match self {
            SpfKind::All => "all",
            SpfKind::Include => "include",
            SpfKind::A => "a",
            SpfKind::Mx => "mx",
            SpfKind::Ptr => "ptr",
            SpfKind::Ip4 => "ip4",
            SpfKind::Ip6 => "ip6",
            SpfKind::Exists => "exists",
            SpfKind::Redirect => "redirect",
            SpfKind::Exp => "exp",
        }
    }

    pub fn is_modifier(self) -> bool {
        matches!(self, SpfKind::Redirect | SpfKind::Exp)
    }

    /// Whether evaluating this term costs a DNS lookup (RFC 7208 §4.6.4).
    pub fn counts_as_lookup(self) -> bool {
        matches!(
            self,
            SpfKind::Include
                | SpfKind::A
                | SpfKind::Mx
                | SpfKind::Ptr
                | SpfKind::Exists
                | SpfKind::Redirect
        )
    }
}

/// One recognised term, in record order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpfTerm {
    /// `None` for the modifiers (`redirect=`, `exp=`), which take no qualifier.
    pub qualifier: Option<SpfQualifier>,
    pub kind: SpfKind,
    /// The domain-spec (`include:`, `a:`, `redirect=`…) or network (`ip4:`, `ip6:`),
    /// as written.
    pub value: Option<String>,
    /// The CIDR length(s) of `a` / `mx`, as written: `/24`, `//64`, `/24//64`.
    pub cidr: Option<String>,
}

/// A parsed SPF record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spf {
    /// Mechanisms and known modifiers in record order.
    pub terms: Vec<SpfTerm>,
    /// The qualifier of the (first) `all`: the policy for mail from anywhere else.
    /// `None` when there is no `all` (the result is then neutral, or whatever a
    /// `redirect=` target says).
    pub all: Option<SpfQualifier>,
    /// `+all`: anyone may send as this domain.
    pub permissive: bool,
    pub includes: Vec<String>,
    pub redirect: Option<String>,
    pub exp: Option<String>,
    /// Valid `ip4:` networks as written (`192.0.2.0/24`, `198.51.100.7`).
    pub ip4: Vec<String>,
    /// Valid `ip6:` networks as written.
    pub ip6: Vec<String>,
    /// Terms in this record that cost a DNS lookup. Includes are not followed, so the
    /// real count can only be higher.
    pub lookup_count: usize,
    /// `lookup_count` alone already exceeds [`SPF_LOOKUP_LIMIT`]: receivers return
    /// permerror and the record protects nothing.
    pub too_many_lookups: bool,
    /// Terms not recognised: unknown modifiers (legal, ignored by receivers) and unknown
    /// mechanisms (a permerror, also listed in `errors`).
    pub unknown: Vec<String>,
    /// What is wrong with the record, one human-readable line each.
    pub errors: Vec<String>,
    /// The record was longer than [`MAX_TXT_LEN`] bytes or [`MAX_TERMS`] terms and
    /// only its beginning was parsed.
    pub truncated: bool,
}

/// Parses an SPF record; `None` when `txt` does not start with `v=spf1` (any case)
/// followed by a space or the end.
pub fn parse_spf(txt: &str) -> Option<Spf> {
    let mut spf = Spf::default();
    let text = bounded(txt, b' ', &mut spf.truncated, &mut spf.errors);
    let version = text.get(..6)?;
    if !version.eq_ignore_ascii_case("v=spf1") {
        return None;
    }
    let body = &text[6..];
    if !(body.is_empty() || body.starts_with(' ')) {
        return None;
    }
    // RFC 7208 separates terms by SP only; tabs and other whitespace are tolerated here
    // because receivers in the wild do too.
    for (index, term) in body.split_ascii_whitespace().enumerate() {
        if index == MAX_TERMS {
            spf.truncated = true;
            spf.errors.push(format!(
                "more than {MAX_TERMS} terms; the rest was not parsed"
            ));
            break;
        }
        spf_term(&mut spf, term);
    }
    finish_spf(&mut spf);
    Some(spf)
}

fn spf_term(spf: &mut Spf, term: &str) {
    let (qualifier, rest) = match term.chars().next().and_then(SpfQualifier::from_char) {
        Some(q) => (Some(q), &term[1..]),
        None => (None, term),
    };
    // A modifier is `name=value`; a mechanism's own separators (':' '/') come first
    // in it if at all, so whichever separator comes first decides.
    let split = rest.find([':', '/', '=']);
    if let Some(at) = split.filter(|&at| rest.as_bytes()[at] == b'=') {
        spf_modifier(spf, term, qualifier, &rest[..at], &rest[at + 1..]);
        return;
    }
    let (name, args) = rest.split_at(split.unwrap_or(rest.len()));
    let Some(kind) = SpfKind::mechanism(name) else {
        spf.unknown.push(term.to_owned());
        spf.errors
            .push(format!("unknown mechanism {:?}", shown(term)));
        return;
    };
    let (value, cidr) = match args.strip_prefix(':') {
        // In ip4/ip6 the '/' belongs to the network; elsewhere it starts a CIDR length
        // (only legal for a and mx, checked below).
        Some(spec) if !matches!(kind, SpfKind::Ip4 | SpfKind::Ip6) => match spec.find('/') {
            Some(slash) => (Some(&spec[..slash]), Some(&spec[slash..])),
            None => (Some(spec), None),
        },
        Some(spec) => (Some(spec), None),
        None if args.is_empty() => (None, None),
        None => (None, Some(args)),
    };
    let problem = match kind {
        SpfKind::All if value.is_some() || cidr.is_some() => {
            Some("all takes no argument".to_owned())
        }
        SpfKind::All => None,
        SpfKind::Include | SpfKind::Exists => match (value, cidr) {
            (_, Some(_)) => Some(format!("{} takes no CIDR length", kind.name())),
            (None, None) => Some(format!("{} needs a domain", kind.name())),
            (Some(spec), None) => check_domain_spec(spec).err(),
        },
        SpfKind::Ptr => match (value, cidr) {
            (_, Some(_)) => Some("ptr takes no CIDR length".to_owned()),
            (Some(spec), None) => check_domain_spec(spec).err(),
            (None, None) => None,
        },
        SpfKind::A | SpfKind::Mx => {
            let spec = value.and_then(|spec| check_domain_spec(spec).err());
            spec.or_else(|| cidr.and_then(|c| check_dual_cidr(c).err()))
        }
        SpfKind::Ip4 | SpfKind::Ip6 => match value {
            None => Some(format!("{} needs a network", kind.name())),
            Some(net) => match check_network(net, kind == SpfKind::Ip6) {
                Ok(()) => {
                    let list = if kind == SpfKind::Ip4 {
                        &mut spf.ip4
                    } else {
                        &mut spf.ip6
                    };
                    list.push(net.to_owned());
                    None
                }
                Err(e) => Some(e),
            },
        },
        SpfKind::Redirect | SpfKind::Exp => None,
    };
    if let Some(problem) = problem {
        spf.errors.push(format!("{:?}: {problem}", shown(term)));
    }
    match kind {
        SpfKind::All => match spf.all {
            None => spf.all = Some(qualifier.unwrap_or(SpfQualifier::Pass)),
            Some(_) => spf.errors.push(format!(
                "{:?}: more than one all mechanism (only the first counts)",
                shown(term)
            )),
        },
        SpfKind::Include => {
            if let Some(spec) = value {
                spf.includes.push(spec.to_owned());
            }
        }
        _ => {}
    }
    spf.terms.push(SpfTerm {
        qualifier: Some(qualifier.unwrap_or(SpfQualifier::Pass)),
        kind,
        value: value.map(str::to_owned),
        cidr: cidr.map(str::to_owned),
    });
}

fn spf_modifier(
    spf: &mut Spf,
    term: &str,
    qualifier: Option<SpfQualifier>,
    name: &str,
    value: &str,
) {
    let kind = if name.eq_ignore_ascii_case("redirect") {
        SpfKind::Redirect
    } else if name.eq_ignore_ascii_case("exp") {
        SpfKind::Exp
    } else {
        spf.unknown.push(term.to_owned());
        // RFC 7208 §12: unknown modifiers are ignored, but only if well formed.
        let well_formed = qualifier.is_none()
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !well_formed {
            spf.errors.push(format!("malformed term {:?}", shown(term)));
        }
        return;
    };
    if qualifier.is_some() {
        spf.errors
            .push(format!("{:?}: a modifier takes no qualifier", shown(term)));
    }
    let slot = if kind == SpfKind::Redirect {
        &mut spf.redirect
    } else {
        &mut spf.exp
    };
    if value.is_empty() {
        spf.errors
            .push(format!("{:?}: {} needs a domain", shown(term), kind.name()));
    } else if slot.is_some() {
        spf.errors.push(format!(
            "{:?}: {} appears more than once (a permerror)",
            shown(term),
            kind.name()
        ));
    } else {
        if let Err(problem) = check_domain_spec(value) {
            spf.errors.push(format!("{:?}: {problem}", shown(term)));
        }
        *slot = Some(value.to_owned());
    }
    spf.terms.push(SpfTerm {
        qualifier: None,
        kind,
        value: (!value.is_empty()).then(|| value.to_owned()),
        cidr: None,
    });
}

fn finish_spf(spf: &mut Spf) {
    spf.permissive = spf.all == Some(SpfQualifier::Pass);
    spf.lookup_count = spf
        .terms
        .iter()
        .filter(|t| t.kind.counts_as_lookup())
        .count();
    spf.too_many_lookups = spf.lookup_count > SPF_LOOKUP_LIMIT;
    if spf.too_many_lookups {
        spf.errors.push(format!(
            "{} terms need DNS lookups (limit {SPF_LOOKUP_LIMIT}): receivers return permerror",
            spf.lookup_count
        ));
    }
    if spf.all.is_some() && spf.redirect.is_some() {
        spf.errors
            .push("redirect is ignored because the record has an all mechanism".to_owned());
    }
}

/// A domain-spec may hold macros (`%{i}._spf.%{d}`), which only a receiver can expand;
/// those are accepted as they are. A plain name must be a valid domain name.
fn check_domain_spec(spec: &str) -> Result<(), String> {
    if spec.is_empty() {
        return Err("empty domain".to_owned());
    }
    if spec.contains('%') {
        return Ok(());
    }
    DomainName::parse(spec)
        .map(|_| ())
        .map_err(|e| format!("bad domain: {e}"))
}

fn check_network(net: &str, v6: bool) -> Result<(), String> {
    let (addr, len) = match net.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (net, None),
    };
    let (addr_ok, max) = if v6 {
        (addr.parse::<Ipv6Addr>().is_ok(), 128)
    } else {
        (addr.parse::<Ipv4Addr>().is_ok(), 32)
    };
    if !addr_ok {
        return Err(format!("not an IPv{} address", if v6 { 6 } else { 4 }));
    }
    match len {
        Some(len) if !valid_prefix(len, max) => Err(format!("bad prefix length (0-{max})")),
        _ => Ok(()),
    }
}

/// `/n`, `//m` or `/n//m` (RFC 7208 §5.6 dual-cidr-length).
fn check_dual_cidr(cidr: &str) -> Result<(), String> {
    let (v4, v6) = match cidr.strip_prefix("//") {
        Some(v6) => (None, Some(v6)),
        None => {
            let rest = cidr.strip_prefix('/').unwrap_or(cidr);
            match rest.split_once("//") {
                Some((v4, v6)) => (Some(v4), Some(v6)),
                None => (Some(rest), None),
            }
        }
    };
    if v4.is_some_and(|n| !valid_prefix(n, 32)) || v6.is_some_and(|n| !valid_prefix(n, 128)) {
        return Err("bad CIDR length (ip4 0-32, ip6 0-128)".to_owned());
    }
    Ok(())
}

/// RFC 7208 writes prefix lengths without leading zeros.
fn valid_prefix(text: &str, max: u8) -> bool {
    !text.is_empty()
        && text.len() <= 3
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
        && text.parse::<u8>().is_ok_and(|n| n <= max)
}

// ---------------------------------------------------------------------------------
// DMARC
// ---------------------------------------------------------------------------------

/// What receivers should do with mail failing DMARC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcPolicy {
    None,
    Quarantine,
    Reject,
}

/// Identifier alignment mode (`adkim`, `aspf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Alignment {
    /// `r` (the default): organisational domains must match.
    Relaxed,
    /// `s`: exact domains must match.
    Strict,
}

/// A parsed DMARC record. Tags are named as in RFC 7489; absent tags are `None` (their
/// defaults: `sp` = `p`, `pct` = 100, `adkim`/`aspf` = relaxed, `fo` = 0, `ri` = 86400).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dmarc {
    pub p: Option<DmarcPolicy>,
    pub sp: Option<DmarcPolicy>,
    pub pct: Option<u8>,
    /// Aggregate report URIs as written (`mailto:dmarc@example.com!10m`).
    pub rua: Vec<String>,
    /// Failure report URIs as written.
    pub ruf: Vec<String>,
    pub adkim: Option<Alignment>,
    pub aspf: Option<Alignment>,
    pub fo: Option<String>,
    pub ri: Option<u32>,
    /// `p` is quarantine or reject and applies to all mail (pct 100): spoofed mail
    /// is actually stopped, not just reported.
    pub enforcing: bool,
    /// Tags RFC 7489 does not define (`np`, `t`, `psd` from DMARCbis, typos…), lowercased
    /// name and value as written.
    pub unknown: Vec<(String, String)>,
    /// What is wrong with the record, one human-readable line each.
    pub errors: Vec<String>,
    /// The record was longer than [`MAX_TXT_LEN`] bytes or [`MAX_TERMS`] tags and only
    /// its beginning was parsed.
    pub truncated: bool,
}

impl Dmarc {
    /// `sp`, or `p` when `sp` is absent.
    pub fn subdomain_policy(&self) -> Option<DmarcPolicy> {
        self.sp.or(self.p)
    }
}

/// Parses a DMARC record; `None` unless its first tag is `v=DMARC1` (any case,
/// whitespace around `=` allowed, as the RFC's grammar does).
pub fn parse_dmarc(txt: &str) -> Option<Dmarc> {
    let mut dmarc = Dmarc::default();
    let body = bounded(txt, b';', &mut dmarc.truncated, &mut dmarc.errors);
    let mut tags = body.split(';');
    let (name, value) = tags.next()?.split_once('=')?;
    if !(name.trim().eq_ignore_ascii_case("v") && value.trim().eq_ignore_ascii_case("DMARC1")) {
        return None;
    }
    let mut seen: Vec<String> = Vec::new();
    let mut pct_ok = true;
    for (index, tag) in tags.map(str::trim).filter(|t| !t.is_empty()).enumerate() {
        if index == MAX_TERMS {
            dmarc.truncated = true;
            dmarc.errors.push(format!(
                "more than {MAX_TERMS} tags; the rest was not parsed"
            ));
            break;
        }
        let Some((name, value)) = tag.split_once('=') else {
            dmarc
                .errors
                .push(format!("malformed tag {:?} (no '=')", shown(tag)));
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        if seen.contains(&name) {
            dmarc.errors.push(format!(
                "tag {:?} appears more than once (only the first counts)",
                shown(&name)
            ));
            continue;
        }
        seen.push(name.clone());
        match name.as_str() {
            "p" => dmarc.p = dmarc_policy(value, "p", &mut dmarc.errors),
            "sp" => dmarc.sp = dmarc_policy(value, "sp", &mut dmarc.errors),
            "pct" => match value.parse::<u8>() {
                Ok(n) if n <= 100 => dmarc.pct = Some(n),
                _ => {
                    pct_ok = false;
                    dmarc.errors.push(format!(
                        "pct {:?} is not a number from 0 to 100",
                        shown(value)
                    ));
                }
            },
            "rua" => dmarc.rua = dmarc_uris(value, "rua", &mut dmarc.errors),
            "ruf" => dmarc.ruf = dmarc_uris(value, "ruf", &mut dmarc.errors),
            "adkim" => dmarc.adkim = alignment(value, "adkim", &mut dmarc.errors),
            "aspf" => dmarc.aspf = alignment(value, "aspf", &mut dmarc.errors),
            "fo" => {
                let options_ok = value
                    .split(':')
                    .map(str::trim)
                    .all(|o| matches!(o, "0" | "1" | "d" | "s"));
                if !options_ok {
                    dmarc.errors.push(format!(
                        "fo {:?} is not a ':'-separated list of 0, 1, d, s",
                        shown(value)
                    ));
                }
                dmarc.fo = Some(value.to_owned());
            }
            "ri" => match value.parse::<u32>() {
                Ok(n) => dmarc.ri = Some(n),
                Err(_) => dmarc
                    .errors
                    .push(format!("ri {:?} is not a number of seconds", shown(value))),
            },
            "v" => dmarc
                .errors
                .push("v appears again after the first tag".to_owned()),
            _ => dmarc.unknown.push((name, value.to_owned())),
        }
    }
    if !seen.iter().any(|n| n == "p") {
        dmarc
            .errors
            .push("no p tag: the record sets no policy".to_owned());
    }
    dmarc.enforcing = matches!(dmarc.p, Some(DmarcPolicy::Quarantine | DmarcPolicy::Reject))
        && pct_ok
        && dmarc.pct.unwrap_or(100) == 100;
    Some(dmarc)
}

fn dmarc_policy(value: &str, tag: &str, errors: &mut Vec<String>) -> Option<DmarcPolicy> {
    match value.to_ascii_lowercase().as_str() {
        "none" => Some(DmarcPolicy::None),
        "quarantine" => Some(DmarcPolicy::Quarantine),
        "reject" => Some(DmarcPolicy::Reject),
        _ => {
            errors.push(format!(
                "{tag} {:?} is not none, quarantine or reject",
                shown(value)
            ));
            None
        }
    }
}

fn alignment(value: &str, tag: &str, errors: &mut Vec<String>) -> Option<Alignment> {
    match value {
        "r" | "R" => Some(Alignment::Relaxed),
        "s" | "S" => Some(Alignment::Strict),
        _ => {
            errors.push(format!("{tag} {:?} is not r or s", shown(value)));
            None
        }
    }
}

fn dmarc_uris(value: &str, tag: &str, errors: &mut Vec<String>) -> Vec<String> {
    let mut uris = Vec::new();
    for uri in value.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let scheme_ok = uri.split_once(':').is_some_and(|(scheme, rest)| {
            !rest.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        });
        if !scheme_ok {
            errors.push(format!(
                "{tag} entry {:?} is not a URI (mailto:…)",
                shown(uri)
            ));
        }
        uris.push(uri.to_owned());
    }
    if uris.is_empty() {
        errors.push(format!("{tag} is empty"));
    }
    uris
}

// ---------------------------------------------------------------------------------
// shared
// ---------------------------------------------------------------------------------

/// At most [`MAX_TXT_LEN`] bytes of `text`, cut at the last `separator` before the
/// limit so that no term is parsed half; records the truncation.
fn bounded<'a>(
    text: &'a str,
    separator: u8,
    truncated: &mut bool,
    errors: &mut Vec<String>,
) -> &'a str {
    if text.len() <= MAX_TXT_LEN {
        return text;
    }
    *truncated = true;
    errors.push(format!(
        "record is {} bytes long; only its first {MAX_TXT_LEN} bytes (up to the last whole term) were parsed",
        text.len()
    ));
    let mut end = MAX_TXT_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    match head.bytes().rposition(|b| b == separator) {
        Some(cut) => &head[..cut],
        None => head,
    }
}

/// A term as quoted in an error message, cut so messages stay short.
fn shown(term: &str) -> String {
    if term.chars().count() <= SHOWN_TERM_CHARS {
        return term.to_owned();
    }
    let mut out: String = term.chars().take(SHOWN_TERM_CHARS).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests;
