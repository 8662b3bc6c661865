//! What an HTTP/1.x response says about the server: pure functions over received bytes,
//! shared by the plain-HTTP session and the HTTPS grabber (which parses decrypted bytes).
//!
//! Everything is bounded: the head is parsed by `httparse` into a fixed header array,
//! the body kept is at most [`BODY_CAP`] bytes (chunked bodies are decoded into that
//! cap), and each derived string is capped.

use crate::session::printable;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Most headers parsed; a response with more is rejected by `httparse`.
pub const MAX_HEADERS: usize = 128;
/// Most headers kept in [`HttpFacts::headers`].
pub const KEPT_HEADERS: usize = 64;
/// Longest header name / value kept, in characters.
pub const HEADER_NAME_CAP: usize = 128;
pub const HEADER_VALUE_CAP: usize = 1024;
/// Largest head accepted while it is still incomplete.
pub const MAX_HEAD: usize = 32 * 1024;
/// Most body bytes kept (and hashed): once reached, the response counts as complete.
pub const BODY_CAP: usize = 64 * 1024;
/// Longest title kept, in characters.
pub const TITLE_CAP: usize = 256;
/// Most bytes of a title's raw text examined (entities and whitespace shrink it).
const TITLE_SCAN: usize = 4096;
/// Longest `Location` / favicon path kept, in characters.
pub const URL_CAP: usize = 1024;
/// Interim (1xx) responses skipped before the final one.
const MAX_INTERIM: usize = 8;
/// Most `<link>` tags examined for a favicon.
const MAX_LINK_TAGS: usize = 256;

/// Facts of one HTTP response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpFacts {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// Headers in received order and case (order and case identify servers too);
    /// at most [`KEPT_HEADERS`], names and values capped.
    pub headers: Vec<(String, String)>,
    /// `<title>` text: entities decoded, whitespace collapsed, capped at [`TITLE_CAP`].
    pub title: Option<String>,
    /// The `Location` header.
    pub redirect: Option<String>,
    /// SHA-256 (lower-case hex) of the body bytes kept.
    pub body_sha256: String,
    /// Length of the body bytes kept (decoded when chunked).
    pub body_length: usize,
    /// Whether the body is cut short: [`BODY_CAP`] reached or bad chunk framing.
    pub body_truncated: bool,
    /// `href` of the first `<link rel="icon">` / `rel="shortcut icon"`.
    pub favicon_path: Option<String>,
    /// Status line and headers as received, non-printable bytes escaped, capped.
    pub head_text: String,
    /// The body's visible text (tags, styles and scripts dropped, whitespace
    /// collapsed, controls replaced), capped at [`BODY_TEXT_CAP`]: error pages name
    /// their product there (Tomcat, HAProxy, Squid). A banner field, not stored twice.
    #[serde(skip)]
    pub body_text: String,
}

/// Characters of visible body text kept for identification.
pub const BODY_TEXT_CAP: usize = 1024;

/// Visible text of an HTML (or plain) body, for rules to read. Bounded: one pass over
/// at most the body kept, output capped.
pub fn body_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(BODY_TEXT_CAP.min(text.len()));
    let mut chars = 0usize;
    let mut i = 0usize;
    let mut space = false;
    while i < text.len() && chars < BODY_TEXT_CAP {
        let rest = &lower[i..];
        if rest.starts_with('<') {
            // Skip the tag; the contents of style and script elements too.
            let skip_to = if rest.starts_with("<style") {
                rest.find("</style>").map(|e| e + "</style>".len())
            } else if rest.starts_with("<script") {
                rest.find("</script>").map(|e| e + "</script>".len())
            } else {
                rest.find('>').map(|e| e + 1)
            };
            i += skip_to.unwrap_or(rest.len());
            space = true;
            continue;
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        i += c.len_utf8();
        if c.is_whitespace() || c.is_control() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            // The separator and the character after it both fit, or neither is written.
            if chars + 2 > BODY_TEXT_CAP {
                break;
            }
            out.push(' ');
            chars += 1;
        }
        space = false;
        out.push(c);
        chars += 1;
    }
    out
}

impl HttpFacts {
    /// First header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header of that name, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Headers whose values identify software or configuration and are stable across
/// requests (per-request ids, dates and cache states would make every scan a change).
pub const IDENTIFYING_HEADERS: [&str; 20] = [
    "server",
    "x-powered-by",
    "content-type",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-generator",
    "x-jenkins",
    "x-hudson",
    "x-redirect-by",
    "x-pingback",
    "x-mod-pagespeed",
    "x-owa-version",
    "microsoftsharepointteamservices",
    "ms-author-via",
    "x-powered-cms",
    "x-turbo-charged-by",
    "x-application-context",
    "liferay-portal",
    "via",
    "x-backend-server",
];

impl HttpFacts {
    /// Banner fields under stable lower-case keys: `status`, `reason`, `version`, each
    /// of [`IDENTIFYING_HEADERS`] present (first value), `location`, `www-authenticate`
    /// and its `realm`, `cookies` (Set-Cookie names only, one per line: values are
    /// session secrets), `title`, `favicon_path`, `body_sha256`, `body_length`,
    /// `body_truncated` when set, and `body` (visible text, see [`body_text`]).
    pub fn fields(&self) -> BTreeMap<String, String> {
        let mut f = BTreeMap::new();
        f.insert("status".into(), self.status.to_string());
        f.insert("version".into(), self.version.clone());
        if !self.reason.is_empty() {
            f.insert("reason".into(), self.reason.clone());
        }
        for name in IDENTIFYING_HEADERS {
            if let Some(v) = self.header(name).filter(|v| !v.trim().is_empty()) {
                f.insert(name.into(), v.trim().to_string());
            }
        }
        if let Some(location) = &self.redirect {
            f.insert("location".into(), location.clone());
        }
        if let Some(auth) = self.header("www-authenticate") {
            f.insert("www-authenticate".into(), auth.to_string());
            if let Some(realm) = realm(auth) {
                f.insert("realm".into(), realm);
            }
        }
        let mut cookies: Vec<&str> = Vec::new();
        for c in self.headers_named("set-cookie") {
            let name = c.split(['=', ';']).next().unwrap_or_default().trim();
            if !name.is_empty() && !cookies.contains(&name) && cookies.len() < 32 {
                cookies.push(name);
            }
        }
        if !cookies.is_empty() {
            f.insert("cookies".into(), cookies.join("\n"));
        }
        if let Some(title) = &self.title {
            f.insert("title".into(), title.clone());
        }
        if let Some(icon) = &self.favicon_path {
            f.insert("favicon_path".into(), icon.clone());
        }
        f.insert("body_sha256".into(), self.body_sha256.clone());
        f.insert("body_length".into(), self.body_length.to_string());
        if self.body_truncated {
            f.insert("body_truncated".into(), "true".into());
        }
        if !self.body_text.is_empty() {
            f.insert("body".into(), self.body_text.clone());
        }
        f
    }
}

/// `realm="..."` (or unquoted) from a WWW-Authenticate challenge.
fn realm(challenge: &str) -> Option<String> {
    let lower = challenge.to_ascii_lowercase();
    let at = lower.find("realm=")? + "realm=".len();
    let rest = &challenge[at..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or_default(),
        None => rest.split([',', ' ']).next().unwrap_or_default(),
    };
    Some(value.chars().take(URL_CAP).collect())
}

/// The outcome of [`parse_response`] on the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed. Once the head is complete, `partial` holds the facts over
    /// the body received so far: what to report if the connection ends now (a body
    /// delimited by the connection's close only ever ends that way).
    Incomplete { partial: Option<HttpFacts> },
    /// The response is complete (or its body reached [`BODY_CAP`]); `consumed` bytes
    /// of the input belong to it.
    Complete { facts: HttpFacts, consumed: usize },
}

/// Why bytes are not an HTTP/1.x response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error("not an HTTP/1.x response")]
    NotHttp,
    #[error("malformed response head: {0}")]
    Malformed(String),
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("more than {MAX_INTERIM} interim responses")]
    TooManyInterim,
}

/// Parses an HTTP/1.x response (skipping interim 1xx responses) from the bytes received
/// so far. Head problems are errors; body framing problems are not (the server spoke
/// HTTP): the facts cover what was decoded and `body_truncated` is set.
pub fn parse_response(bytes: &[u8]) -> Result<Parsed, HttpError> {
    parse_response_body(bytes).map(|(parsed, _)| parsed)
}

/// [`parse_response`], and the body decoded so far (at most [`BODY_CAP`] bytes): what
/// follow-up checks read (a JSON document, a directory index).
pub fn parse_response_body(bytes: &[u8]) -> Result<(Parsed, Vec<u8>), HttpError> {
    let mut offset = 0;
    for _ in 0..=MAX_INTERIM {
        let buf = &bytes[offset..];
        let n = buf.len().min(5);
        if buf[..n] != b"HTTP/"[..n] {
            return Err(HttpError::NotHttp);
        }
        let mut header_buf = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut header_buf);
        let status = httparse::ParserConfig::default()
            .allow_spaces_after_header_name_in_responses(true)
            .allow_obsolete_multiline_headers_in_responses(true)
            .allow_multiple_spaces_in_response_status_delimiters(true)
            // A banner grabber wants the other headers of a server that sends one
            // broken header, not nothing.
            .ignore_invalid_headers_in_responses(true)
            .parse_response(&mut response, buf)
            .map_err(|e| HttpError::Malformed(e.to_string()))?;
        let head_len = match status {
            httparse::Status::Partial if buf.len() > MAX_HEAD => {
                return Err(HttpError::HeadTooLarge)
            }
            httparse::Status::Partial => {
                return Ok((Parsed::Incomplete { partial: None }, Vec::new()))
            }
            httparse::Status::Complete(head_len) => head_len,
        };
        let code = response.code.unwrap_or_default();
        if (100..200).contains(&code) && code != 101 {
            offset += head_len;
            continue;
        }
        let head = Head::new(&response, &buf[..head_len]);
        let body_bytes = &buf[head_len..];
        let framing = if code == 101 || code == 204 || code == 304 {
            Framing::Empty
        } else if head.chunked {
            Framing::Chunked
        } else if let Some(len) = head.content_length {
            Framing::Length(len)
        } else {
            Framing::Close
        };
        let body = read_body(framing, body_bytes);
        let facts = head.into_facts(&body.data, body.truncated);
        let parsed = match body.end {
            Some(used) => Parsed::Complete {
                facts,
                consumed: offset + head_len + used,
            },
            None => Parsed::Incomplete {
                partial: Some(facts),
            },
        };
        return Ok((parsed, body.data));
    }
    Err(HttpError::TooManyInterim)
}

/// What the head says, before the body is known.
struct Head {
    version: String,
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    chunked: bool,
    content_length: Option<usize>,
    head_text: String,
}

impl Head {
    fn new(response: &httparse::Response<'_, '_>, raw: &[u8]) -> Self {
        let mut chunked = false;
        let mut content_length = None;
        let mut headers = Vec::new();
        for h in response.headers.iter() {
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // Chunked applies when it is the final coding (RFC 9112 §6.3).
                chunked = String::from_utf8_lossy(h.value)
                    .rsplit(',')
                    .next()
                    .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
            } else if h.name.eq_ignore_ascii_case("content-length") && content_length.is_none() {
                // An unreadable length leaves the body delimited by the close, which is
                // what a lenient client does too.
                content_length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok());
            }
            if headers.len() < KEPT_HEADERS {
                headers.push((
                    cap_chars(h.name.as_bytes(), HEADER_NAME_CAP),
                    cap_chars(h.value, HEADER_VALUE_CAP),
                ));
            }
        }
        Self {
            version: format!("HTTP/1.{}", response.version.unwrap_or(1)),
            status: response.code.unwrap_or_default(),
            reason: cap_chars(
                response.reason.unwrap_or_default().as_bytes(),
                HEADER_VALUE_CAP,
            ),
            headers,
            chunked,
            content_length,
            head_text: printable(raw),
        }
    }

    fn into_facts(self, body: &[u8], truncated: bool) -> HttpFacts {
        let redirect = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.chars().take(URL_CAP).collect());
        HttpFacts {
            version: self.version,
            status: self.status,
            reason: self.reason,
            headers: self.headers,
            title: title(body),
            redirect,
            body_sha256: format!("{:x}", Sha256::digest(body)),
            body_length: body.len(),
            body_truncated: truncated,
            favicon_path: favicon_path(body),
            head_text: self.head_text,
            body_text: body_text(body),
        }
    }
}

/// Lossy UTF-8 with controls replaced, capped in characters.
fn cap_chars(bytes: &[u8], cap: usize) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(cap)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    Close,
}

/// The body kept so far, and where the response ends (None: not yet).
struct Body {
    data: Vec<u8>,
    truncated: bool,
    end: Option<usize>,
}

fn read_body(framing: Framing, bytes: &[u8]) -> Body {
    match framing {
        Framing::Empty => Body {
            data: Vec::new(),
            truncated: false,
            end: Some(0),
        },
        Framing::Length(len) if bytes.len() >= len && len <= BODY_CAP => Body {
            data: bytes[..len].to_vec(),
            truncated: false,
            end: Some(len),
        },
        Framing::Length(_) | Framing::Close if bytes.len() >= BODY_CAP => Body {
            data: bytes[..BODY_CAP].to_vec(),
            truncated: true,
            end: Some(BODY_CAP),
        },
        Framing::Length(_) | Framing::Close => Body {
            data: bytes.to_vec(),
            truncated: false,
            end: None,
        },
        Framing::Chunked => dechunk(bytes),
    }
}

/// Longest chunk-size line (size plus extensions) accepted.
const MAX_CHUNK_LINE: usize = 1024;

/// Decodes a chunked body (RFC 9112 §7.1) into at most [`BODY_CAP`] bytes.
fn dechunk(bytes: &[u8]) -> Body {
    let mut data = Vec::new();
    let mut pos = 0;
    // Bad framing or the cap: keep what was decoded and stop reading.
    let cut_short = |data: Vec<u8>, pos: usize| Body {
        data,
        truncated: true,
        end: Some(pos),
    };
    loop {
        let rest = &bytes[pos..];
        let Some(nl) = rest.iter().take(MAX_CHUNK_LINE).position(|&b| b == b'\n') else {
            if rest.len() >= MAX_CHUNK_LINE {
                return cut_short(data, pos);
            }
            return Body {
                data,
                truncated: false,
                end: None,
            };
        };
        let line = &rest[..nl];
        let size_text = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if size_text.is_empty()
            || size_text.len() > 8
            || !size_text.iter().all(u8::is_ascii_hexdigit)
        {
            return cut_short(data, pos);
        }
        let size = size_text.iter().fold(0usize, |acc, &b| {
            let digit = (b as char).to_digit(16).unwrap_or_default();
            acc * 16 + digit as usize
        });
        let data_start = pos + nl + 1;
        if size == 0 {
            return match trailers_end(&bytes[data_start..]) {
                Some(used) => Body {
                    data,
                    truncated: false,
                    end: Some(data_start + used),
                },
                None => Body {
                    data,
                    truncated: false,
                    end: None,
                },
            };
        }
        let available = &bytes[data_start..];
        let room = BODY_CAP - data.len();
        if available.len() < size {
            data.extend_from_slice(&available[..available.len().min(room)]);
            if data.len() >= BODY_CAP {
                return cut_short(data, bytes.len());
            }
            return Body {
                data,
                truncated: false,
                end: None,
            };
        }
        data.extend_from_slice(&available[..size.min(room)]);
        if size >= room {
            return cut_short(data, data_start + size.min(available.len()));
        }
        let after = &available[size..];
        pos = data_start + size;
        match after {
            [] | [b'\r'] => {
                return Body {
                    data,
                    truncated: false,
                    end: None,
                }
            }
            [b'\r', b'\n', ..] => pos += 2,
            [b'\n', ..] => pos += 1,
            _ => return cut_short(data, pos),
        }
    }
}

/// Where the trailer section after the last chunk ends (just past its empty line).
fn trailers_end(bytes: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let nl = bytes[pos..].iter().position(|&b| b == b'\n')?;
        let line = &bytes[pos..pos + nl];
        pos += nl + 1;
        if line.is_empty() || line == b"\r" {
            return Some(pos);
        }
    }
}

/// Case-insensitive search for an ASCII needle from `from`.
fn find_ci(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() || needle.is_empty() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| p + from)
}

/// Position just after `<name` where `name` is a whole tag name, from `from`.
fn find_tag(body: &[u8], name: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let p = find_ci(body, name, at)?;
        let end = p + name.len();
        match body.get(end) {
            Some(b) if b.is_ascii_whitespace() || *b == b'>' || *b == b'/' => return Some(end),
            None => return None,
            _ => at = end,
        }
    }
}

fn title(body: &[u8]) -> Option<String> {
    let open = find_tag(body, b"<title", 0)?;
    let start = open + body[open..].iter().position(|&b| b == b'>')? + 1;
    // A body cut short (partial read) may end inside the title: take what is there.
    let end = find_ci(body, b"</title", start).unwrap_or(body.len());
    let raw = &body[start..end.min(start + TITLE_SCAN)];
    let text = decode_entities(&String::from_utf8_lossy(raw));
    let collapsed: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .take(TITLE_CAP)
        .collect();
    Some(collapsed)
}

/// Decodes the named entities titles commonly use and numeric references.
fn decode_entities(text: &str) -> String {
    const NAMED: [(&str, char); 9] = [
        ("amp", '&'),
        ("lt", '<'),
        ("gt", '>'),
        ("quot", '"'),
        ("apos", '\''),
        ("nbsp", ' '),
        ("copy", '©'),
        ("reg", '®'),
        ("mdash", '—'),
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let name = &after[..semi];
            let c = if let Some(num) = name.strip_prefix('#') {
                let value = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => num.parse::<u32>().ok(),
                };
                value.and_then(char::from_u32)
            } else {
                NAMED.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
            };
            c.map(|c| (c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Attributes of a tag's inside (`rel="icon" href=/f.ico`), names lower-cased.
fn attributes(tag: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = tag.len();
    while i < n && out.len() < 32 {
        while i < n && (tag[i].is_ascii_whitespace() || tag[i] == b'/') {
            i += 1;
        }
        let name_start = i;
        while i < n && !tag[i].is_ascii_whitespace() && !matches!(tag[i], b'=' | b'/') {
            i += 1;
        }
        let name = String::from_utf8_lossy(&tag[name_start..i]).to_ascii_lowercase();
        while i < n && tag[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < n && tag[i] == b'=' {
            i += 1;
            while i < n && tag[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < n && matches!(tag[i], b'"' | b'\'') {
                let quote = tag[i];
                let start = i + 1;
                let end = tag[start..]
                    .iter()
                    .position(|&b| b == quote)
                    .map_or(n, |p| start + p);
                value = String::from_utf8_lossy(&tag[start..end]).into_owned();
                i = (end + 1).min(n);
            } else {
                let start = i;
                while i < n && !tag[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = String::from_utf8_lossy(&tag[start..i]).into_owned();
            }
        }
        if name.is_empty() {
            // A stray `=` or quote: step over it so the loop always advances.
            i += 1;
        } else {
            out.push((name, value));
        }
    }
    out
}

fn favicon_path(body: &[u8]) -> Option<String> {
    let mut from = 0;
    for _ in 0..MAX_LINK_TAGS {
        let start = find_tag(body, b"<link", from)?;
        let len = body[start..].iter().take(4096).position(|&b| b == b'>')?;
        let attrs = attributes(&body[start..start + len]);
        from = start + len;
        let is_icon = attrs.iter().any(|(n, v)| {
            n == "rel"
                && v.split_ascii_whitespace()
                    .any(|t| t.eq_ignore_ascii_case("icon"))
        });
        if let Some((_, href)) = attrs.iter().find(|(n, _)| n == "href").filter(|_| is_icon) {
            let href = decode_entities(href.trim());
            if !href.is_empty() {
                return Some(href.chars().take(URL_CAP).collect());
            }
        }
    }
    None
}

/// MurmurHash3 x86 32-bit, seed 0, as a signed integer (Python `mmh3.hash`).
pub fn mmh3_32(bytes: &[u8]) -> i32 {
    // Reading from a slice cannot fail, so the error arm is unreachable in practice.
    murmur3::murmur3_32(&mut std::io::Cursor::new(bytes), 0)
        .map_or(0, |h| i32::from_ne_bytes(h.to_ne_bytes()))
}

/// Shodan's `http.favicon.hash`: [`mmh3_32`] of the icon's base64 text as Python's
/// `base64.encodebytes` writes it (a newline after every 76 characters and at the end).
pub fn favicon_hash(bytes: &[u8]) -> i32 {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut text = Vec::with_capacity(b64.len() + b64.len() / 76 + 1);
    for line in b64.as_bytes().chunks(76) {
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    mmh3_32(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn body_text_drops_markup_styles_and_scripts_and_is_capped() {
        let page = b"<html><head><title>HTTP Status 404</title><style>h1 {color:red}</style>\
<script>var x = '<b>';</script></head><body><h1>Not   Found</h1>\n\t<hr/>\
<h3>Apache Tomcat/10.1.60 (Debian)</h3>\x01</body></html>";
        assert_eq!(
            body_text(page),
            "HTTP Status 404 Not Found Apache Tomcat/10.1.60 (Debian)"
        );
        let long = "x ".repeat(5000);
        assert!(body_text(long.as_bytes()).chars().count() <= BODY_TEXT_CAP);
        assert_eq!(body_text(b"<unterminated"), "");
        assert_eq!(body_text(b"\xff\xfe plain"), "\u{fffd}\u{fffd} plain");
        let (f, _) = complete(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 107\r\n\r\n<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n");
        assert_eq!(
            f.fields().get("body").map(String::as_str),
            Some("503 Service Unavailable No server is available to handle this request.")
        );
    }

    fn complete(bytes: &[u8]) -> (HttpFacts, usize) {
        match parse_response(bytes) {
            Ok(Parsed::Complete { facts, consumed }) => (facts, consumed),
            other => panic!("not complete: {other:?}"),
        }
    }

    const NGINX_CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 06 May 2024 10:00:00 GMT\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
19\r\n<html><head><title>Welcom\r\n\
6d\r\ne to nginx!</title>\n<link rel=\"shortcut icon\" href=\"/static/fav.ico?v=1&amp;x=2\">\n</head><body></body></html>\r\n\
0\r\n\r\n";

    #[test]
    fn chunked_nginx() {
        let (f, consumed) = complete(NGINX_CHUNKED);
        assert_eq!(consumed, NGINX_CHUNKED.len());
        assert_eq!(f.status, 200);
        assert_eq!(f.reason, "OK");
        assert_eq!(f.version, "HTTP/1.1");
        assert_eq!(f.header("server"), Some("nginx/1.22.1"));
        assert_eq!(f.title.as_deref(), Some("Welcome to nginx!"));
        assert_eq!(f.favicon_path.as_deref(), Some("/static/fav.ico?v=1&x=2"));
        let body = b"<html><head><title>Welcome to nginx!</title>\n<link rel=\"shortcut icon\" href=\"/static/fav.ico?v=1&amp;x=2\">\n</head><body></body></html>";
        assert_eq!(f.body_length, body.len());
        assert_eq!(f.body_sha256, format!("{:x}", Sha256::digest(body)));
        assert!(!f.body_truncated);
        assert!(f
            .head_text
            .starts_with("HTTP/1.1 200 OK\\r\\nServer: nginx/1.22.1"));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for cut in 0..NGINX_CHUNKED.len() {
            match parse_response(&NGINX_CHUNKED[..cut]) {
                Ok(Parsed::Incomplete { .. }) => {}
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn content_length_and_redirect() {
        let resp = b"HTTP/1.1 301 Moved Permanently\r\nDate: Mon, 06 May 2024 10:00:00 GMT\r\nServer: Apache/2.4.57 (Debian)\r\nLocation: https://www.example.com/\r\nContent-Length: 232\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>301 Moved Permanently</title>\n</head><body>\n<h1>Moved Permanently</h1>\n<p>The document has moved <a href=\"https://www.example.com/\">here</a>.</p>\n</body></html>\nEXTRA";
        let (f, consumed) = complete(resp);
        assert_eq!(consumed, resp.len() - 5);
        assert_eq!(f.body_length, 232);
        assert_eq!(f.redirect.as_deref(), Some("https://www.example.com/"));
        assert_eq!(f.title.as_deref(), Some("301 Moved Permanently"));
        assert_eq!(f.favicon_path, None);
    }

    #[test]
    fn close_delimited_body_is_partial_until_the_end() {
        let resp = b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.11.2\r\n\r\n<title>Directory listing for /</title>";
        match parse_response(resp) {
            Ok(Parsed::Incomplete { partial: Some(f) }) => {
                assert_eq!(f.version, "HTTP/1.0");
                assert_eq!(f.title.as_deref(), Some("Directory listing for /"));
            }
            other => panic!("{other:?}"),
        }
        // The cap ends it.
        let mut big = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        big.resize(big.len() + BODY_CAP + 10, b'a');
        let (f, _) = complete(&big);
        assert!(f.body_truncated);
        assert_eq!(f.body_length, BODY_CAP);
    }

    #[test]
    fn interim_and_bodiless_responses() {
        let resp = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 204 No Content\r\nServer: x\r\n\r\n";
        let (f, consumed) = complete(resp);
        assert_eq!((f.status, consumed), (204, resp.len()));
        let (f, _) = complete(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n");
        assert_eq!(f.body_length, 0);
        // Missing reason phrase.
        let (f, _) = complete(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
        assert_eq!((f.status, f.reason.as_str()), (200, ""));
    }

    #[test]
    fn sloppy_heads_are_tolerated() {
        let (f, _) = complete(
            b"HTTP/1.1  200  OK\r\nServer : Boa/0.94.14rc21\r\nBad Header\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nhi",
        );
        assert_eq!(f.status, 200);
        assert_eq!(f.header("server"), Some("Boa/0.94.14rc21"));
        assert_eq!(f.body_length, 2);
        let fields = f.fields();
        assert_eq!(fields["server"], "Boa/0.94.14rc21");
        assert_eq!(fields["body_length"], "2");
    }

    #[test]
    fn realm_and_cookie_names() {
        assert_eq!(
            realm("Digest realm=\"NETGEAR R7000\", nonce=\"x\"").as_deref(),
            Some("NETGEAR R7000")
        );
        assert_eq!(realm("Basic Realm=router").as_deref(), Some("router"));
        assert_eq!(realm("Bearer"), None);
    }

    #[test]
    fn bad_chunks_keep_what_was_decoded() {
        let (f, _) =
            complete(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloZZ\r\n");
        assert!(f.body_truncated);
        assert_eq!(f.body_length, 5);
        let (f, _) = complete(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnot-hex\r\n");
        assert!(f.body_truncated);
        // A huge announced chunk is bounded by the cap, not allocated.
        let r =
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\nabc");
        assert!(matches!(r, Ok(Parsed::Incomplete { partial: Some(ref f) }) if f.body_length == 3));
    }

    #[test]
    fn non_http_is_an_error() {
        for bytes in [
            &b"SSH-2.0-OpenSSH_9.2p1\r\n"[..],
            b"220 (vsFTPd 3.0.3)\r\n",
            b"\x15\x03\x01\x00\x02\x02\x46",
            b"HTTP/9.9 200 OK\r\n\r\n",
            b"HTTX",
        ] {
            assert!(parse_response(bytes).is_err(), "{bytes:?}");
        }
        assert_eq!(
            parse_response(b"HTT"),
            Ok(Parsed::Incomplete { partial: None })
        );
    }

    #[test]
    fn titles_and_entities() {
        assert_eq!(
            title(b"<TITLE lang=en>\n  Caf&eacute; &amp; Bar &#8212; &#x41;&lt;b&gt; &nbsp; x\n</TITLE>").as_deref(),
            Some("Caf&eacute; & Bar \u{2014} A<b> x")
        );
        assert_eq!(title(b"<titles>no</titles>"), None);
        assert_eq!(title(b"<title>cut sho").as_deref(), Some("cut sho"));
        let long = format!("<title>{}</title>", "x".repeat(1000));
        assert_eq!(
            title(long.as_bytes()).map(|t| t.chars().count()),
            Some(TITLE_CAP)
        );
    }

    #[test]
    fn favicon_links() {
        assert_eq!(
            favicon_path(
                b"<link rel=stylesheet href=a.css><LINK href='/f.png' REL='Icon' type=image/png>"
            )
            .as_deref(),
            Some("/f.png")
        );
        assert_eq!(
            favicon_path(b"<link rel=\"apple-touch-icon\" href=\"/t.png\">"),
            None
        );
        assert_eq!(favicon_path(b"<link rel=icon>"), None);
    }

    #[test]
    fn mmh3_known_vectors() {
        // Values computed with Python's mmh3 5.x: mmh3.hash(x).
        assert_eq!(mmh3_32(b""), 0);
        assert_eq!(mmh3_32(b"hello"), 613_153_351);
        assert_eq!(mmh3_32(b"Hello, world!"), -1_070_186_941);
        assert_eq!(
            mmh3_32(b"The quick brown fox jumps over the lazy dog"),
            776_992_547
        );
    }

    #[test]
    fn favicon_hash_matches_python() {
        // python3 -c 'import mmh3,base64; print(mmh3.hash(base64.encodebytes(DATA)))'
        let data: Vec<u8> = (0u8..=255).cycle().take(300).collect();
        assert_eq!(favicon_hash(&data), FAVICON_300);
        assert_eq!(
            favicon_hash(b"\x00\x00\x01\x00\x01\x00\x10\x10"),
            FAVICON_ICO_HEADER
        );
        assert_eq!(favicon_hash(b""), 0);
    }

    const FAVICON_300: i32 = -2_057_641_710;
    const FAVICON_ICO_HEADER: i32 = 1_661_453_573;

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = parse_response(&data);
            let _ = title(&data);
            let _ = favicon_path(&data);
        }

        #[test]
        fn random_bodies_are_bounded(body in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            resp.extend_from_slice(&body);
            if let Ok(Parsed::Complete { facts, .. } | Parsed::Incomplete { partial: Some(facts) }) = parse_response(&resp) {
                prop_assert!(facts.body_length <= body.len());
                prop_assert!(facts.title.map_or(0, |t| t.chars().count()) <= TITLE_CAP);
            }
        }

        #[test]
        fn mutated_responses_never_panic(pos in 0usize..400, byte in any::<u8>()) {
            let mut resp = NGINX_CHUNKED.to_vec();
            let p = pos % resp.len();
            resp[p] = byte;
            let _ = parse_response(&resp);
        }

        #[test]
        fn html_bodies_never_panic(body in "(<title>|</title>|<link |rel=|icon|href=|['\" =>&#;x0-9a-z]){0,64}") {
            let _ = title(body.as_bytes());
            let _ = favicon_path(body.as_bytes());
        }
    }
}
