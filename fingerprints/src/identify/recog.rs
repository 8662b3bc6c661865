//! Loader for Rapid7 Recog fingerprint databases (XML, BSD-2 licensed data that users
//! download themselves; Aperture does not ship it).
//!
//! A Recog file looks like
//!
//! ```xml
//! <fingerprints matches="ssh.banner" protocol="ssh" priority="20">
//!   <fingerprint pattern="^dropbear_(\d{4}\.\d+)$" flags="REG_ICASE">
//!     <description>Dropbear SSH</description>
//!     <example service.version="2022.83">dropbear_2022.83</example>
//!     <param pos="0" name="service.product" value="Dropbear SSH"/>
//!     <param pos="1" name="service.version"/>
//!     <param pos="0" name="service.cpe23" value="cpe:/a:dropbear_ssh_project:dropbear_ssh:{service.version}"/>
//!   </fingerprint>
//! </fingerprints>
//! ```
//!
//! `matches` names what the patterns are run against; [`map_matches`] maps the keys we
//! can feed from a [`Banner`] (e.g. `ssh.banner` is the SSH identification string after
//! `SSH-2.0-`, `ftp.banner` the greeting after the `220 ` code, `http_header.server` the
//! `server` field). Files with other keys are skipped and listed in [`RecogStats`].
//!
//! Recog patterns are Ruby regexes. We translate the little that differs (`^`/`$` are
//! always line anchors in Ruby, `(?m)` means dot-all, `\h` is a hex digit) and compile
//! the rest with the `regex` crate under the same size limit as our own rules. Patterns
//! it cannot express (look-around, back-references, atomic groups, possessive
//! quantifiers) are skipped and counted, never fatal.
//!
//! Within one file the first matching fingerprint wins (Recog's own semantics, so file
//! order is meaningful); files are tried by ascending `priority` (default 100), then in
//! load order. A fingerprint whose certainty is 0 asserts nothing: it stops the search in
//! its file without producing an identification.

use super::risk::{cleartext_auth, RiskClass};
use super::rules::{build_regex, cap_str, short_regex_error, MAX_CAPTURE_FILL, MAX_HAYSTACK};
use super::{Identification, Origin};
use crate::session::Banner;
use regex::Regex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest fingerprint file read (the biggest upstream file is a few MiB).
pub const MAX_RECOG_FILE: u64 = 16 << 20;
/// At most this many `*.xml` files per directory.
pub const MAX_RECOG_FILES: usize = 1024;
/// XML node budget per file (elements, attributes' text, comments...).
pub const MAX_XML_NODES: u32 = 2_000_000;
/// Fingerprints per file, and in a whole database.
pub const MAX_FINGERPRINTS_PER_FILE: usize = 50_000;
pub const MAX_FINGERPRINTS_TOTAL: usize = 200_000;
/// Params and examples kept per fingerprint.
pub const MAX_PARAMS: usize = 64;
pub const MAX_EXAMPLES: usize = 64;
/// Longest pattern accepted (longer ones are skipped and counted).
pub const MAX_RECOG_PATTERN: usize = 8192;
/// Skipped-pattern details kept in [`RecogStats::skipped`] (the count is exact).
pub const MAX_SKIP_DETAILS: usize = 256;
/// Confidence of a Recog match that states no certainty: below our curated rules
/// (typically 80-95), above the protocol fallback.
pub const DEFAULT_RECOG_CONFIDENCE: u8 = 70;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecogError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a directory")]
    NotADirectory { path: PathBuf },
    #[error("more than {limit} XML files in the fingerprint directory")]
    TooManyFiles { limit: usize },
    #[error("{file}: larger than {limit} bytes")]
    FileTooLarge { file: String, limit: u64 },
    #[error("{file}: not UTF-8")]
    NotUtf8 { file: String },
    #[error("{file}: malformed XML: {message}")]
    Xml { file: String, message: String },
    #[error("{file}: root element is <{found}>, expected <fingerprints>")]
    NotFingerprints { file: String, found: String },
    #[error("{file}: more than {limit} fingerprints")]
    TooManyFingerprints { file: String, limit: usize },
}

/// A file that loaded but that we cannot use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedFile {
    pub file: String,
    pub reason: String,
}

/// A fingerprint that was dropped (usually a regex feature Rust's engine lacks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedPattern {
    pub file: String,
    /// Position of the `<fingerprint>` in its file, from 0.
    pub index: usize,
    /// The pattern, cut to 200 bytes.
    pub pattern: String,
    pub reason: String,
}

/// What loading did, for logs and for the user to judge coverage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecogStats {
    pub files_loaded: usize,
    pub files_skipped: Vec<SkippedFile>,
    pub fingerprints_loaded: usize,
    /// Exact number of fingerprints dropped.
    pub patterns_skipped: usize,
    /// The first [`MAX_SKIP_DETAILS`] of them, with reasons.
    pub skipped: Vec<SkippedPattern>,
}

/// An `<example>` that did not come out as its attributes say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExampleFailure {
    pub file: String,
    pub index: usize,
    pub example: String,
    pub reason: String,
}

/// How the string a Recog file expects is cut out of one of our banners.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecogInput {
    /// SSH identification line without `SSH-x.y-` ("software version SP comments").
    SshIdent,
    /// First line of an FTP/SMTP reply without its 3-digit code and separator.
    ReplyLine,
    /// First line of an IMAP greeting without `* OK `.
    ImapGreeting,
    /// First line of a POP3 greeting without `+OK `.
    PopGreeting,
    /// The whole banner text.
    Text,
    /// A field of the banner.
    Field(String),
}

/// Maps a Recog `matches` key (or, when the attribute is absent, the file stem, as
/// Recog itself does) to our protocol name and banner input.
pub fn map_matches(matches: &str) -> Option<(&'static str, RecogInput)> {
    let m = matches.trim().to_ascii_lowercase();
    let mapped = match m.as_str() {
        "ssh.banner" | "ssh_banners" => ("ssh", RecogInput::SshIdent),
        "ftp.banner" | "ftp_banners" => ("ftp", RecogInput::ReplyLine),
        "smtp.banner" | "smtp_banners" => ("smtp", RecogInput::ReplyLine),
        "imap4.banner" | "imap.banner" | "imap_banners" => ("imap", RecogInput::ImapGreeting),
        "pop.banner" | "pop3.banner" | "pop_banners" => ("pop3", RecogInput::PopGreeting),
        "telnet.banner" | "telnet_banners" => ("telnet", RecogInput::Text),
        "html_title" | "html.title" => ("http", RecogInput::Field("title".into())),
        "http_servers" => ("http", RecogInput::Field("server".into())),
        "http_xpoweredby" => ("http", RecogInput::Field("x-powered-by".into())),
        "dns.versionbind" | "dns_versionbind" => ("dns", RecogInput::Field("version".into())),
        "mysql.banners" | "mysql.banner" | "mysql_banners" => {
            ("mysql", RecogInput::Field("version".into()))
        }
        "smb.native_os" | "smb_native_os" => ("smb", RecogInput::Field("native_os".into())),
        "smb.native_lm" | "smb_native_lm" => ("smb", RecogInput::Field("native_lm".into())),
        other => {
            let header = other.strip_prefix("http_header.")?;
            if header.is_empty() || !header.bytes().all(|b| b.is_ascii_graphic()) {
                return None;
            }
            ("http", RecogInput::Field(header.to_string()))
        }
    };
    Some(mapped)
}

impl RecogInput {
    fn extract<'b>(&self, banner: &'b Banner) -> Option<&'b str> {
        let text = cap_str(&banner.text, MAX_HAYSTACK);
        let out = match self {
            RecogInput::SshIdent => {
                let line = first_line(text);
                let rest = line.strip_prefix("SSH-")?;
                let (_, software) = rest.split_once('-')?;
                software
            }
            RecogInput::ReplyLine => {
                let line = first_line(text);
                let code = line.get(..3)?;
                if !code.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let rest = line.get(3..)?;
                rest.strip_prefix(' ')
                    .or_else(|| rest.strip_prefix('-'))
                    .unwrap_or(rest)
            }
            RecogInput::ImapGreeting => {
                let line = first_line(text);
                line.strip_prefix("* OK ")
                    .or_else(|| line.strip_prefix("* PREAUTH "))
                    .unwrap_or(line)
            }
            RecogInput::PopGreeting => {
                let line = first_line(text);
                line.strip_prefix("+OK ").unwrap_or(line)
            }
            RecogInput::Text => text,
            RecogInput::Field(name) => cap_str(banner.fields.get(name)?, MAX_HAYSTACK),
        };
        Some(out.trim())
    }
}

/// Banner text has CR and LF escaped as the two characters `\r` / `\n`.
fn first_line(text: &str) -> &str {
    let end = [text.find("\\r"), text.find("\\n")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(text.len());
    text.get(..end).unwrap_or(text)
}

#[derive(Debug, Clone)]
struct Param {
    pos: usize,
    name: String,
    value: Option<String>,
}

#[derive(Debug, Clone)]
struct Example {
    text: String,
    expect: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Fingerprint {
    index: usize,
    regex: Regex,
    description: String,
    certainty: Option<f64>,
    params: Vec<Param>,
    examples: Vec<Example>,
}

#[derive(Debug, Clone)]
struct FingerprintSet {
    file: String,
    protocol: &'static str,
    input: RecogInput,
    priority: i64,
    fingerprints: Vec<Fingerprint>,
}

/// A loaded Recog database.
#[derive(Debug, Clone, Default)]
pub struct RecogDb {
    sets: Vec<FingerprintSet>,
    stats: RecogStats,
}

/// Reads every `*.xml` file of `dir` (not recursive, in name order).
pub fn load_recog_dir(dir: impl AsRef<Path>) -> Result<RecogDb, RecogError> {
    let dir = dir.as_ref();
    let io = |source| RecogError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.is_dir() {
        return Err(RecogError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let is_xml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("xml"));
        if is_xml && path.is_file() {
            if files.len() >= MAX_RECOG_FILES {
                return Err(RecogError::TooManyFiles {
                    limit: MAX_RECOG_FILES,
                });
            }
            files.push(path);
        }
    }
    files.sort();
    let mut db = RecogDb::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = read_bounded(&path, &name)?;
        db.add_xml(&name, &text)?;
    }
    Ok(db)
}

fn read_bounded(path: &Path, name: &str) -> Result<String, RecogError> {
    let io = |source| RecogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    // Read one byte past the limit so an oversized file is detected without trusting
    // metadata (which a growing file or a FIFO would get wrong).
    file.take(MAX_RECOG_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_RECOG_FILE {
        return Err(RecogError::FileTooLarge {
            file: name.to_string(),
            limit: MAX_RECOG_FILE,
        });
    }
    String::from_utf8(bytes).map_err(|_| RecogError::NotUtf8 {
        file: name.to_string(),
    })
}

impl RecogDb {
    pub fn new() -> RecogDb {
        RecogDb::default()
    }

    /// Parses one XML document; `file` names it in ids, stats and errors (and stands
    /// in for a missing `matches` attribute, minus its extension).
    pub fn add_xml(&mut self, file: &str, xml: &str) -> Result<(), RecogError> {
        let ferr = |message: String| RecogError::Xml {
            file: file.to_string(),
            message,
        };
        if xml.len() as u64 > MAX_RECOG_FILE {
            return Err(RecogError::FileTooLarge {
                file: file.to_string(),
                limit: MAX_RECOG_FILE,
            });
        }
        let opts = roxmltree::ParsingOptions {
            // No DTD: no entity expansion games; Recog files have none.
            allow_dtd: false,
            nodes_limit: MAX_XML_NODES,
            ..roxmltree::ParsingOptions::default()
        };
        let doc =
            roxmltree::Document::parse_with_options(xml, opts).map_err(|e| ferr(e.to_string()))?;
        let root = doc.root_element();
        if root.tag_name().name() != "fingerprints" {
            return Err(RecogError::NotFingerprints {
                file: file.to_string(),
                found: cap_str(root.tag_name().name(), 64).to_string(),
            });
        }
        let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
        let matches = root.attribute("matches").unwrap_or(stem);
        let Some((protocol, input)) = map_matches(matches) else {
            self.stats.files_skipped.push(SkippedFile {
                file: file.to_string(),
                reason: format!(
                    "matches=\"{}\" has no banner equivalent",
                    cap_str(matches, 100)
                ),
            });
            return Ok(());
        };
        let priority = root
            .attribute("priority")
            .and_then(|p| p.trim().parse::<i64>().ok())
            .unwrap_or(100);

        let mut fingerprints = Vec::new();
        let elements = root
            .children()
            .filter(|n| n.is_element() && n.tag_name().name() == "fingerprint");
        for (index, node) in elements.enumerate() {
            if index >= MAX_FINGERPRINTS_PER_FILE
                || self.stats.fingerprints_loaded + fingerprints.len() >= MAX_FINGERPRINTS_TOTAL
            {
                return Err(RecogError::TooManyFingerprints {
                    file: file.to_string(),
                    limit: MAX_FINGERPRINTS_PER_FILE.min(MAX_FINGERPRINTS_TOTAL),
                });
            }
            match parse_fingerprint(index, node) {
                Ok(fp) => fingerprints.push(fp),
                Err((pattern, reason)) => self.skip(file, index, &pattern, reason),
            }
        }
        self.stats.files_loaded += 1;
        self.stats.fingerprints_loaded += fingerprints.len();
        self.sets.push(FingerprintSet {
            file: file.to_string(),
            protocol,
            input,
            priority,
            fingerprints,
        });
        // Stable: equal priorities keep load order.
        self.sets.sort_by_key(|s| s.priority);
        Ok(())
    }

    fn skip(&mut self, file: &str, index: usize, pattern: &str, reason: String) {
        self.stats.patterns_skipped += 1;
        if self.stats.skipped.len() < MAX_SKIP_DETAILS {
            self.stats.skipped.push(SkippedPattern {
                file: file.to_string(),
                index,
                pattern: cap_str(pattern, 200).to_string(),
                reason,
            });
        }
    }

    pub fn stats(&self) -> &RecogStats {
        &self.stats
    }

    /// Number of usable fingerprints.
    pub fn len(&self) -> usize {
        self.stats.fingerprints_loaded
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// First matching fingerprint for the banner's protocol, as described in the module
    /// documentation.
    pub fn identify(&self, banner: &Banner) -> Option<Identification> {
        let protocol = banner.protocol.to_ascii_lowercase();
        for set in self.sets.iter().filter(|s| s.protocol == protocol) {
            let Some(hay) = set.input.extract(banner) else {
                continue;
            };
            let Some((fp, caps)) = set
                .fingerprints
                .iter()
                .find_map(|fp| fp.regex.captures(hay).map(|c| (fp, c)))
            else {
                continue;
            };
            let params = fp.extract(&caps);
            let Some(confidence) = fp.confidence(&params) else {
                continue;
            };
            let get = |k: &str| params.get(k).cloned();
            return Some(Identification {
                service: set.protocol.to_string(),
                product: get("service.product").or_else(|| get("service.family")),
                vendor: get("service.vendor"),
                version: get("service.version"),
                cpe: get("service.cpe23"),
                os: os_hint(&params),
                confidence,
                risk: RiskClass::from_protocol(set.protocol),
                cleartext_auth: cleartext_auth(banner),
                rule_id: Some(format!("recog:{}:{}", set.file, fp.index)),
                origin: Origin::Recog,
            });
        }
        None
    }

    /// Runs every `<example>` against its own fingerprint and compares the extracted
    /// params with the example's attributes (Recog's own regression check). Examples
    /// given in another encoding (`_encoding`) or in external files are not checked.
    pub fn verify_examples(&self) -> Vec<ExampleFailure> {
        let mut failures = Vec::new();
        for set in &self.sets {
            for fp in &set.fingerprints {
                for ex in &fp.examples {
                    let fail = |reason: String| ExampleFailure {
                        file: set.file.clone(),
                        index: fp.index,
                        example: cap_str(&ex.text, 200).to_string(),
                        reason,
                    };
                    let Some(caps) = fp.regex.captures(&ex.text) else {
                        failures.push(fail(format!("does not match ({})", fp.description)));
                        continue;
                    };
                    let params = fp.extract(&caps);
                    for (key, want) in &ex.expect {
                        let got = params.get(key).map(String::as_str).unwrap_or("");
                        if got != want {
                            failures.push(fail(format!("{key} = {got:?}, expected {want:?}")));
                        }
                    }
                }
            }
        }
        failures
    }
}

impl Fingerprint {
    /// Param values: captures for `pos > 0`, fixed values for `pos = 0`, then
    /// `{name}` references in fixed values filled from the others. A value whose
    /// capture is missing or whose reference cannot be filled is left out.
    fn extract(&self, caps: &regex::Captures<'_>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for p in &self.params {
            if p.pos == 0 {
                continue;
            }
            if let Some(m) = caps.get(p.pos) {
                let v: String = m
                    .as_str()
                    .trim()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_CAPTURE_FILL)
                    .collect();
                if !v.is_empty() {
                    out.insert(p.name.clone(), v);
                }
            }
        }
        let fixed: Vec<(String, String)> = self
            .params
            .iter()
            .filter(|p| p.pos == 0)
            .filter_map(|p| {
                let v = interpolate(p.value.as_deref()?, &out)?;
                Some((p.name.clone(), v))
            })
            .collect();
        for (k, v) in fixed {
            if !v.is_empty() {
                out.insert(k, v);
            }
        }
        out
    }

    /// `None` when the fingerprint asserts nothing (certainty 0).
    fn confidence(&self, params: &BTreeMap<String, String>) -> Option<u8> {
        let certainty = self.certainty.or_else(|| {
            params
                .get("service.certainty")
                .and_then(|c| c.trim().parse::<f64>().ok())
        });
        match certainty {
            None => Some(DEFAULT_RECOG_CONFIDENCE),
            Some(c) if !c.is_finite() || c <= 0.0 => None,
            Some(c) => Some((c.min(1.0) * 100.0).round() as u8),
        }
    }
}

/// Recog describes an OS as vendor + product; we keep one name, preferring the
/// distribution ("Debian") over a generic kernel name ("Linux").
fn os_hint(params: &BTreeMap<String, String>) -> Option<String> {
    let vendor = params.get("os.vendor");
    let product = params.get("os.product").or_else(|| params.get("os.family"));
    match (vendor, product) {
        (Some(v), Some(p)) if p.eq_ignore_ascii_case("linux") => Some(v.clone()),
        (_, Some(p)) => Some(p.clone()),
        (Some(v), None) => Some(v.clone()),
        (None, None) => None,
    }
}

/// Replaces `{name}` with `values[name]`; `None` if a reference is unknown.
fn interpolate(value: &str, values: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find('{') {
        out.push_str(rest.get(..start)?);
        let after = rest.get(start + 1..)?;
        let Some(end) = after.find('}') else {
            out.push_str(rest.get(start..)?);
            return Some(out);
        };
        let key = after.get(..end)?;
        out.push_str(values.get(key)?);
        rest = after.get(end + 1..)?;
    }
    out.push_str(rest);
    Some(out)
}

type SkipReason = (String, String);

fn parse_fingerprint(
    index: usize,
    node: roxmltree::Node<'_, '_>,
) -> Result<Fingerprint, SkipReason> {
    let Some(pattern) = node.attribute("pattern") else {
        return Err((String::new(), "no pattern attribute".into()));
    };
    let fail = |reason: String| (pattern.to_string(), reason);
    if pattern.len() > MAX_RECOG_PATTERN {
        return Err(fail(format!(
            "pattern longer than {MAX_RECOG_PATTERN} bytes"
        )));
    }
    let mut case_insensitive = false;
    let mut dot_all = false;
    for flag in node
        .attribute("flags")
        .unwrap_or("")
        .split(|c: char| c == ',' || c == '|' || c.is_whitespace())
        .filter(|f| !f.is_empty())
    {
        match flag {
            "REG_ICASE" => case_insensitive = true,
            "REG_DOT_NEWLINE" | "REG_LINE_ANY_CRLF" | "REG_MULTILINE" => dot_all = true,
            other => return Err(fail(format!("unsupported flag {}", cap_str(other, 40)))),
        }
    }
    let translated = ruby_to_rust(pattern);
    // Ruby's ^ and $ always match at line boundaries.
    let regex = build_regex(&translated, case_insensitive, true, dot_all)
        .map_err(|e| fail(short_regex_error(&e)))?;
    let groups = regex.captures_len().saturating_sub(1);
    let certainty = node
        .attribute("certainty")
        .and_then(|c| c.trim().parse::<f64>().ok());

    let mut description = String::new();
    let mut params = Vec::new();
    let mut examples = Vec::new();
    for child in node.children().filter(|n| n.is_element()) {
        match child.tag_name().name() {
            "description" => {
                description = cap_str(child.text().unwrap_or("").trim(), 500).to_string();
            }
            "param" if params.len() < MAX_PARAMS => {
                let Some(name) = child.attribute("name") else {
                    continue;
                };
                let pos = child
                    .attribute("pos")
                    .and_then(|p| p.trim().parse::<usize>().ok())
                    .ok_or_else(|| fail(format!("param {name}: bad pos")))?;
                if pos > groups {
                    return Err(fail(format!(
                        "param {name} uses group {pos}, pattern has {groups}"
                    )));
                }
                params.push(Param {
                    pos,
                    name: name.to_string(),
                    value: child.attribute("value").map(str::to_string),
                });
            }
            "example" if examples.len() < MAX_EXAMPLES => {
                if child.attributes().any(|a| a.name().starts_with('_')) {
                    // `_encoding`/`_filename` examples need data we do not load.
                    continue;
                }
                let expect = child
                    .attributes()
                    .map(|a| (a.name().to_string(), a.value().to_string()))
                    .collect();
                examples.push(Example {
                    text: cap_str(child.text().unwrap_or(""), MAX_HAYSTACK).to_string(),
                    expect,
                });
            }
            _ => {}
        }
    }
    Ok(Fingerprint {
        index,
        regex,
        description,
        certainty,
        params,
        examples,
    })
}

/// Rewrites the Ruby-only spellings Recog uses into `regex` syntax. Anything else
/// that differs is left for the compiler to reject (and us to count).
fn ruby_to_rust(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut class_depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('h') => out.push_str("[0-9a-fA-F]"),
                Some('H') => out.push_str("[^0-9a-fA-F]"),
                Some('Z') if class_depth == 0 => out.push_str(r"(?:\n?\z)"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' => {
                class_depth += 1;
                out.push('[');
                // A `]` right after `[` or `[^` is a literal in both dialects.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(']');
            }
            '(' if class_depth == 0 && chars.peek() == Some(&'?') => {
                out.push('(');
                out.push('?');
                chars.next();
                // Inline flags: Ruby `m` is dot-all, which `regex` spells `s`.
                let mut flags = String::new();
                while let Some(&f) = chars.peek() {
                    if f.is_ascii_alphabetic() || f == '-' {
                        flags.push(f);
                        chars.next();
                    } else {
                        break;
                    }
                }
                let is_flag_group = !flags.is_empty()
                    && flags.chars().all(|f| "imx-".contains(f))
                    && matches!(chars.peek(), Some(')') | Some(':'));
                if is_flag_group {
                    out.extend(flags.chars().map(|f| if f == 'm' { 's' } else { f }));
                } else {
                    out.push_str(&flags);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recog")
    }

    fn banner(protocol: &str, text: &str) -> Banner {
        Banner {
            protocol: protocol.into(),
            text: text.into(),
            ..Banner::default()
        }
    }

    #[test]
    fn fixture_loads_examples_verify_and_lookahead_is_counted() {
        let db = load_recog_dir(fixture_dir()).expect("fixture loads");
        let stats = db.stats();
        assert_eq!(stats.files_loaded, 2, "{stats:?}");
        assert_eq!(stats.files_skipped.len(), 1, "{stats:?}");
        assert_eq!(stats.patterns_skipped, 1, "{stats:?}");
        assert!(stats.skipped[0].reason.contains("look-around"), "{stats:?}");
        assert_eq!(stats.fingerprints_loaded, 4, "{stats:?}");
        let failures = db.verify_examples();
        assert!(failures.is_empty(), "{failures:?}");
    }

    #[test]
    fn fixture_identifies_banners() {
        let db = load_recog_dir(fixture_dir()).expect("fixture loads");
        let id = db
            .identify(&banner("ssh", "SSH-2.0-dropbear_2022.83\\r\\n"))
            .expect("dropbear");
        assert_eq!(id.product.as_deref(), Some("Dropbear SSH"));
        assert_eq!(id.version.as_deref(), Some("2022.83"));
        assert_eq!(
            id.cpe.as_deref(),
            Some("cpe:/a:dropbear_ssh_project:dropbear_ssh:2022.83")
        );
        assert_eq!(id.origin, Origin::Recog);
        assert_eq!(id.risk, RiskClass::RemoteAdministration);
        assert_eq!(id.rule_id.as_deref(), Some("recog:lab_ssh_banners.xml:0"));

        let id = db
            .identify(&banner("ssh", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"))
            .expect("openssh");
        assert_eq!(id.version.as_deref(), Some("9.2p1"));
        assert_eq!(id.os.as_deref(), Some("Debian"));
        assert_eq!(id.confidence, 90);

        let id = db
            .identify(&banner("ftp", "220 labftpd V1.4.2 ready.\\r\\n"))
            .expect("ftp, case-insensitive");
        assert_eq!(id.version.as_deref(), Some("1.4.2"));
        assert!(id.cleartext_auth);

        // The "assert nothing" fingerprint stops the search without an answer.
        assert_eq!(db.identify(&banner("ftp", "220 none\\r\\n")), None);
        // The skipped look-ahead pattern cannot match anything.
        assert_eq!(db.identify(&banner("ssh", "SSH-2.0-LabSSH_7")), None);
        // Other protocols are not consulted.
        assert_eq!(db.identify(&banner("smtp", "220 dropbear_2022.83")), None);
    }

    #[test]
    fn structural_errors_are_reported() {
        let mut db = RecogDb::new();
        let err = db.add_xml("x.xml", "<nope/>").expect_err("wrong root");
        assert!(matches!(err, RecogError::NotFingerprints { .. }), "{err}");
        let err = db
            .add_xml("x.xml", "<fingerprints>")
            .expect_err("truncated");
        assert!(matches!(err, RecogError::Xml { .. }), "{err}");
        let dtd =
            "<!DOCTYPE fingerprints [<!ENTITY a \"aaaa\">]><fingerprints matches=\"ssh.banner\"/>";
        let err = db.add_xml("x.xml", dtd).expect_err("dtd refused");
        assert!(matches!(err, RecogError::Xml { .. }), "{err}");
        assert!(matches!(
            load_recog_dir("/nonexistent/recog"),
            Err(RecogError::NotADirectory { .. })
        ));
    }

    #[test]
    fn missing_matches_uses_file_stem_and_bad_params_are_skipped() {
        let mut db = RecogDb::new();
        let xml = r#"<fingerprints>
  <fingerprint pattern="^Lab/(\d+)$"><description>d</description>
    <param pos="2" name="service.version"/></fingerprint>
  <fingerprint pattern="^Lab/(\d+)$" flags="REG_WHATEVER"><description>d</description></fingerprint>
  <fingerprint pattern="^Lab/(\d+)$"><description>d</description>
    <param pos="0" name="service.product" value="Lab"/>
    <param pos="1" name="service.version"/>
    <param pos="0" name="service.cpe23" value="cpe:/a:lab:lab:{service.version}"/>
    <param pos="0" name="service.note" value="{no.such.param}"/></fingerprint>
</fingerprints>"#;
        db.add_xml("http_servers.xml", xml).expect("loads");
        assert_eq!(db.stats().patterns_skipped, 2);
        assert_eq!(db.len(), 1);
        let mut b = banner("http", "HTTP/1.1 200 OK");
        b.fields.insert("server".into(), "Lab/7".into());
        let id = db.identify(&b).expect("match");
        assert_eq!(id.version.as_deref(), Some("7"));
        assert_eq!(id.cpe.as_deref(), Some("cpe:/a:lab:lab:7"));
        assert_eq!(id.confidence, DEFAULT_RECOG_CONFIDENCE);
    }

    #[test]
    fn ruby_translation() {
        assert_eq!(ruby_to_rust(r"^a\h+$"), r"^a[0-9a-fA-F]+$");
        assert_eq!(ruby_to_rust(r"(?mi)a.b"), r"(?si)a.b");
        assert_eq!(ruby_to_rust(r"(?m-i:x)"), r"(?s-i:x)");
        assert_eq!(ruby_to_rust(r"(?<name>x)"), r"(?<name>x)");
        assert_eq!(ruby_to_rust(r"[]a]"), r"[\]a]");
        assert_eq!(ruby_to_rust(r"[(?m)]"), r"[(?m)]");
        assert_eq!(ruby_to_rust(r"x\Z"), r"x(?:\n?\z)");
        assert_eq!(ruby_to_rust(r"\\h"), r"\\h");
        for p in [r"^a\h+$", r"(?mi)a.b", r"x\Z", r"[]a]"] {
            assert!(
                build_regex(&ruby_to_rust(p), false, true, false).is_ok(),
                "{p}"
            );
        }
    }

    #[test]
    fn input_extraction() {
        let ex =
            |input: RecogInput, text: &str| input.extract(&banner("x", text)).map(str::to_string);
        assert_eq!(
            ex(RecogInput::SshIdent, "SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n").as_deref(),
            Some("OpenSSH_9.2p1 Debian-2")
        );
        assert_eq!(ex(RecogInput::SshIdent, "HTTP/1.1 200"), None);
        assert_eq!(
            ex(
                RecogInput::ReplyLine,
                "220-FileZilla Server 1.8.1\\r\\n220 bye"
            )
            .as_deref(),
            Some("FileZilla Server 1.8.1")
        );
        assert_eq!(ex(RecogInput::ReplyLine, "hi"), None);
        assert_eq!(
            ex(RecogInput::ImapGreeting, "* OK Dovecot ready.\\r\\n").as_deref(),
            Some("Dovecot ready.")
        );
        assert_eq!(
            ex(RecogInput::PopGreeting, "+OK Dovecot ready.\\r\\n").as_deref(),
            Some("Dovecot ready.")
        );
        assert_eq!(
            map_matches("http_header.x-powered-by"),
            Some(("http", RecogInput::Field("x-powered-by".into())))
        );
        assert_eq!(map_matches("snmp.sys_description"), None);
        assert_eq!(map_matches("http_header."), None);
    }
}
