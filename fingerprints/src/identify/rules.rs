//! Our own identification rule format (TOML) and its compiled form.
//!
//! ```toml
//! [[rule]]
//! id = "ssh-openssh-debian"
//! protocol = "ssh"                 # Banner.protocol this rule applies to
//! source = "text"                  # "text" (Banner.text) or a Banner.fields key; default "text"
//! pattern = '^SSH-[\d.]+-OpenSSH_((\d+\.\d+)(p\d+)?) Debian-'
//! service = "ssh"
//! product = "OpenSSH"
//! vendor = "OpenBSD"
//! version = "$1"                   # templates: $1, ${1}, ${name}, ${2:-*}, $$
//! cpe = "cpe:2.3:a:openbsd:openssh:$2:${3:-*}:*:*:*:*:*:*"
//! os = "Debian"
//! confidence = 90                  # 0..=100
//! risk = "remote-administration"
//! example = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
//! expect_version = "9.2p1"         # "" = the example yields no version
//! ```
//!
//! Templates are filled only from captures: a referenced group that did not take part
//! in the match (or matched the empty string) makes the whole field `None`, unless the
//! reference carries a default (`${3:-*}`, handy for CPE fields). Captured text placed
//! into a CPE is escaped per CPE 2.3 formatted-string rules; literal template text is not.
//!
//! Every rule file is checked when loaded: patterns compile under a size limit, every
//! template reference exists in the pattern, ids are unique, and each `example` must
//! match its own pattern and yield `expect_version`.

use super::risk::RiskClass;
use crate::session::Banner;
use regex::{Captures, Regex, RegexBuilder};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};

/// The rules shipped with Aperture.
pub const BUILTIN_RULES: &str = include_str!("../../rules/services.toml");

/// Rule files larger than this are refused before parsing.
pub const MAX_RULES_TEXT: usize = 4 << 20;
/// At most this many rules per file.
pub const MAX_RULES: usize = 10_000;
/// Longest pattern source accepted.
pub const MAX_PATTERN_LEN: usize = 4096;
/// Compiled-program and lazy-DFA budget per pattern, so a hostile rule cannot make
/// the regex engine allocate without bound.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Longest template accepted.
pub const MAX_TEMPLATE_LEN: usize = 512;
/// Captured text copied into an output field is cut to this many characters.
pub const MAX_CAPTURE_FILL: usize = 128;
/// Only this many bytes of a banner text or field are searched.
pub const MAX_HAYSTACK: usize = 8192;

/// Why a rule file was refused. Messages name the rule id so a bad rule is easy to find.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    #[error("rules file is {size} bytes, limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("rules file has {count} rules, limit is {limit}")]
    TooManyRules { count: usize, limit: usize },
    /// Syntax errors, missing required keys, unknown keys, unknown risk classes.
    #[error("rules file is not valid: {message}")]
    Toml { message: String },
    #[error("rule #{index}: `{field}` must not be empty")]
    Empty { index: usize, field: &'static str },
    #[error("duplicate rule id `{id}`")]
    DuplicateId { id: String },
    #[error("rule `{id}`: pattern is {len} characters, limit is {limit}")]
    PatternTooLong {
        id: String,
        len: usize,
        limit: usize,
    },
    #[error("rule `{id}`: pattern does not compile: {message}")]
    Pattern { id: String, message: String },
    #[error("rule `{id}`: confidence {value} is above 100")]
    Confidence { id: String, value: u32 },
    #[error("rule `{id}`: `{field}` template is malformed: {reason}")]
    Template {
        id: String,
        field: &'static str,
        reason: String,
    },
    #[error("rule `{id}`: `{field}` references capture group {group}, but the pattern has only {available} group(s)")]
    CaptureOutOfRange {
        id: String,
        field: &'static str,
        group: usize,
        available: usize,
    },
    #[error(
        "rule `{id}`: `{field}` references capture `{name}`, which the pattern does not define"
    )]
    UnknownCaptureName {
        id: String,
        field: &'static str,
        name: String,
    },
    #[error("rule `{id}`: `expect_version` given without an `example`")]
    ExpectWithoutExample { id: String },
    #[error("rule `{id}`: example {example:?} does not match the pattern")]
    ExampleNoMatch { id: String, example: String },
    #[error("rule `{id}`: example yields version {got:?}, expected {want:?}")]
    ExampleVersion {
        id: String,
        got: Option<String>,
        want: Option<String>,
    },
}

// ---------------------------------------------------------------------------------
// File format (serde side)

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    /// Format version, for a future incompatible change; only 1 exists.
    #[serde(default)]
    format: Option<u32>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    protocol: String,
    #[serde(default)]
    source: Option<String>,
    pattern: String,
    #[serde(default)]
    case_insensitive: bool,
    service: String,
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    vendor: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    cpe: Option<String>,
    #[serde(default)]
    os: Option<String>,
    confidence: u32,
    risk: RiskClass,
    #[serde(default)]
    example: Option<String>,
    #[serde(default)]
    expect_version: Option<String>,
}

// ---------------------------------------------------------------------------------
// Templates

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Lit(String),
    Cap {
        group: usize,
        default: Option<String>,
    },
}

/// A parsed `$1`/`${name}` template, with names already resolved to group indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    segments: Vec<Segment>,
}

/// How captured text is treated before it is spliced into a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    Plain,
    Cpe,
}

impl Template {
    /// Parses `text` against `re`'s capture groups. Errors carry a reason string; the
    /// caller adds the rule id and field name.
    pub(crate) fn parse(text: &str, re: &Regex) -> Result<Template, TemplateError> {
        if text.len() > MAX_TEMPLATE_LEN {
            return Err(TemplateError::Malformed(format!(
                "{} characters, limit is {MAX_TEMPLATE_LEN}",
                text.len()
            )));
        }
        let mut segments = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            if c != '$' {
                lit.push(c);
                continue;
            }
            let (group, default) = match chars.peek().map(|&(_, c)| c) {
                Some('$') => {
                    chars.next();
                    lit.push('$');
                    continue;
                }
                Some(d) if d.is_ascii_digit() => {
                    let mut digits = String::new();
                    while let Some(&(_, d)) = chars.peek() {
                        if !d.is_ascii_digit() {
                            break;
                        }
                        digits.push(d);
                        chars.next();
                    }
                    (resolve(&digits, re)?, None)
                }
                Some('{') => {
                    chars.next();
                    let mut inner = String::new();
                    let mut closed = false;
                    for (_, d) in chars.by_ref() {
                        if d == '}' {
                            closed = true;
                            break;
                        }
                        inner.push(d);
                    }
                    if !closed {
                        return Err(TemplateError::Malformed("unclosed `${`".into()));
                    }
                    let (name, default) = match inner.split_once(":-") {
                        Some((n, d)) => (n, Some(d.to_string())),
                        None => (inner.as_str(), None),
                    };
                    (resolve(name, re)?, default)
                }
                _ => {
                    return Err(TemplateError::Malformed(
                        "`$` must be followed by digits, `{name}` or `$`".into(),
                    ))
                }
            };
            if !lit.is_empty() {
                segments.push(Segment::Lit(std::mem::take(&mut lit)));
            }
            segments.push(Segment::Cap { group, default });
        }
        if !lit.is_empty() {
            segments.push(Segment::Lit(lit));
        }
        Ok(Template { segments })
    }

    /// Fills the template; `None` when a referenced capture is missing or empty and
    /// has no default, or when the result is empty.
    pub(crate) fn render(&self, caps: &Captures<'_>, fill: Fill) -> Option<String> {
        let mut out = String::new();
        for seg in &self.segments {
            match seg {
                Segment::Lit(s) => out.push_str(s),
                Segment::Cap { group, default } => {
                    match caps
                        .get(*group)
                        .map(|m| m.as_str())
                        .filter(|s| !s.is_empty())
                    {
                        Some(text) => push_capture(&mut out, text, fill),
                        None => out.push_str(default.as_deref()?),
                    }
                }
            }
        }
        let trimmed = out.trim();
        (!trimmed.is_empty()).then(|| trimmed.to_string())
    }

    /// Group indices this template reads (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn groups(&self) -> Vec<usize> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Cap { group, .. } => Some(*group),
                Segment::Lit(_) => None,
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplateError {
    Malformed(String),
    OutOfRange { group: usize, available: usize },
    UnknownName(String),
}

fn resolve(name: &str, re: &Regex) -> Result<usize, TemplateError> {
    // Groups other than 0 (the whole match) are what a rule author counts.
    let available = re.captures_len().saturating_sub(1);
    if name.is_empty() {
        return Err(TemplateError::Malformed("empty capture reference".into()));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        let group: usize = name
            .parse()
            .map_err(|_| TemplateError::Malformed(format!("group number `{name}` too large")))?;
        if group > available {
            return Err(TemplateError::OutOfRange { group, available });
        }
        return Ok(group);
    }
    re.capture_names()
        .position(|n| n == Some(name))
        .ok_or_else(|| TemplateError::UnknownName(name.to_string()))
}

/// Copies at most `MAX_CAPTURE_FILL` characters of captured text, dropping control
/// characters (fields from other parsers may carry them) and, for CPEs, escaping what
/// CPE 2.3 formatted strings reserve so a hostile banner cannot add CPE components.
fn push_capture(out: &mut String, text: &str, fill: Fill) {
    for c in text
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_CAPTURE_FILL)
    {
        match fill {
            Fill::Plain => out.push(c),
            Fill::Cpe => {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                    out.push(c.to_ascii_lowercase());
                } else if c.is_ascii() {
                    out.push('\\');
                    out.push(c);
                }
                // Non-ASCII has no place in a CPE name; dropped.
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Compiled rules

/// Where a rule looks in a banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `Banner.text`.
    Text,
    /// `Banner.fields[name]`; the rule is skipped when the field is absent.
    Field(String),
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    id: String,
    protocol: String,
    source: Source,
    regex: Regex,
    service: String,
    product: Option<String>,
    vendor: Option<String>,
    version: Option<Template>,
    cpe: Option<Template>,
    os: Option<Template>,
    confidence: u8,
    risk: RiskClass,
    example: Option<String>,
    expect_version: Option<String>,
}

/// What one rule extracted from one banner; the caller picks the best and adds
/// banner-derived facts (cleartext authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleMatch {
    pub(crate) product: Option<String>,
    pub(crate) vendor: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) cpe: Option<String>,
    pub(crate) os: Option<String>,
    /// Capture groups that took part in the match with non-empty text.
    pub(crate) filled: usize,
}

impl Rule {
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn protocol(&self) -> &str {
        &self.protocol
    }
    pub fn source(&self) -> &Source {
        &self.source
    }
    pub fn pattern(&self) -> &str {
        self.regex.as_str()
    }
    pub fn service(&self) -> &str {
        &self.service
    }
    pub fn product(&self) -> Option<&str> {
        self.product.as_deref()
    }
    pub fn vendor(&self) -> Option<&str> {
        self.vendor.as_deref()
    }
    pub fn confidence(&self) -> u8 {
        self.confidence
    }
    pub fn risk(&self) -> RiskClass {
        self.risk
    }
    pub fn example(&self) -> Option<&str> {
        self.example.as_deref()
    }
    /// `Some("")` means the example is expected to yield no version.
    pub fn expect_version(&self) -> Option<&str> {
        self.expect_version.as_deref()
    }

    /// The string this rule searches in `banner`, cut to `MAX_HAYSTACK` bytes.
    fn haystack<'b>(&self, banner: &'b Banner) -> Option<&'b str> {
        let s = match &self.source {
            Source::Text => banner.text.as_str(),
            Source::Field(name) => banner.fields.get(name)?.as_str(),
        };
        Some(cap_str(s, MAX_HAYSTACK))
    }

    pub(crate) fn apply(&self, banner: &Banner) -> Option<RuleMatch> {
        let hay = self.haystack(banner)?;
        self.apply_str(hay)
    }

    fn apply_str(&self, hay: &str) -> Option<RuleMatch> {
        let caps = self.regex.captures(hay)?;
        let filled = caps
            .iter()
            .skip(1)
            .filter(|m| m.is_some_and(|m| !m.as_str().is_empty()))
            .count();
        let render = |t: &Option<Template>, fill| t.as_ref().and_then(|t| t.render(&caps, fill));
        Some(RuleMatch {
            product: self.product.clone(),
            vendor: self.vendor.clone(),
            version: render(&self.version, Fill::Plain),
            cpe: render(&self.cpe, Fill::Cpe),
            os: render(&self.os, Fill::Plain),
            filled,
        })
    }

    /// Runs the rule on its own example (None when it has none or it does not match).
    pub(crate) fn apply_example(&self) -> Option<RuleMatch> {
        self.apply_str(self.example.as_deref()?)
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub(crate) fn cap_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Compiles a pattern with the memory budget every rule source shares.
pub(crate) fn build_regex(
    pattern: &str,
    case_insensitive: bool,
    multi_line: bool,
    dot_all: bool,
) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .multi_line(multi_line)
        .dot_matches_new_line(dot_all)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(64)
        .build()
}

/// The first line of a (possibly multi-line) regex error: the rest is an ASCII-art
/// pointer that is noise in a log line.
pub(crate) fn short_regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(limit) => {
            format!("compiled pattern exceeds the {limit}-byte size limit")
        }
        other => {
            let text = other.to_string();
            let msg = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .unwrap_or_else(|| text.lines().next().unwrap_or_default());
            msg.to_string()
        }
    }
}

/// Parses and checks a rules file.
pub(crate) fn parse_rules(text: &str) -> Result<Vec<Rule>, RuleError> {
    if text.len() > MAX_RULES_TEXT {
        return Err(RuleError::TooLarge {
            size: text.len(),
            limit: MAX_RULES_TEXT,
        });
    }
    let file: RulesFile = toml::from_str(text).map_err(|e| RuleError::Toml {
        message: e.to_string().trim().to_string(),
    })?;
    if let Some(v) = file.format {
        if v != 1 {
            return Err(RuleError::Toml {
                message: format!("unsupported rules format {v} (this build reads format 1)"),
            });
        }
    }
    if file.rule.len() > MAX_RULES {
        return Err(RuleError::TooManyRules {
            count: file.rule.len(),
            limit: MAX_RULES,
        });
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(file.rule.len());
    for (index, raw) in file.rule.into_iter().enumerate() {
        let rule = compile(index, raw)?;
        if !seen.insert(rule.id.clone()) {
            return Err(RuleError::DuplicateId { id: rule.id });
        }
        out.push(rule);
    }
    Ok(out)
}

fn non_empty(index: usize, field: &'static str, v: String) -> Result<String, RuleError> {
    let v = v.trim().to_string();
    if v.is_empty() {
        Err(RuleError::Empty { index, field })
    } else {
        Ok(v)
    }
}

fn compile(index: usize, raw: RawRule) -> Result<Rule, RuleError> {
    let id = non_empty(index, "id", raw.id)?;
    let protocol = non_empty(index, "protocol", raw.protocol)?.to_ascii_lowercase();
    let service = non_empty(index, "service", raw.service)?;
    if raw.pattern.is_empty() {
        return Err(RuleError::Empty {
            index,
            field: "pattern",
        });
    }
    if raw.pattern.len() > MAX_PATTERN_LEN {
        return Err(RuleError::PatternTooLong {
            id,
            len: raw.pattern.len(),
            limit: MAX_PATTERN_LEN,
        });
    }
    if raw.confidence > 100 {
        return Err(RuleError::Confidence {
            id,
            value: raw.confidence,
        });
    }
    let confidence = u8::try_from(raw.confidence).unwrap_or(100);
    let source = match raw.source.as_deref().map(str::trim) {
        None | Some("text") => Source::Text,
        Some("") => {
            return Err(RuleError::Empty {
                index,
                field: "source",
            })
        }
        Some(field) => Source::Field(field.to_string()),
    };
    // Our rules see escaped single-line text, so `^`/`$` keep their plain meaning.
    let regex = build_regex(&raw.pattern, raw.case_insensitive, false, false).map_err(|e| {
        RuleError::Pattern {
            id: id.clone(),
            message: short_regex_error(&e),
        }
    })?;
    let template =
        |field: &'static str, t: Option<String>| -> Result<Option<Template>, RuleError> {
            let Some(t) = t else { return Ok(None) };
            Template::parse(&t, &regex).map(Some).map_err(|e| match e {
                TemplateError::Malformed(reason) => RuleError::Template {
                    id: id.clone(),
                    field,
                    reason,
                },
                TemplateError::OutOfRange { group, available } => RuleError::CaptureOutOfRange {
                    id: id.clone(),
                    field,
                    group,
                    available,
                },
                TemplateError::UnknownName(name) => RuleError::UnknownCaptureName {
                    id: id.clone(),
                    field,
                    name,
                },
            })
        };
    let version = template("version", raw.version)?;
    let cpe = template("cpe", raw.cpe)?;
    let os = template("os", raw.os)?;
    let clean = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let rule = Rule {
        id: id.clone(),
        protocol,
        source,
        regex,
        service,
        product: clean(raw.product),
        vendor: clean(raw.vendor),
        version,
        cpe,
        os,
        confidence,
        risk: raw.risk,
        example: raw.example,
        expect_version: raw.expect_version,
    };
    check_example(&rule)?;
    Ok(rule)
}

/// A rule that ships an example must prove it on load: the example matches, and if
/// `expect_version` is given, the version comes out as stated.
fn check_example(rule: &Rule) -> Result<(), RuleError> {
    let Some(example) = &rule.example else {
        return match rule.expect_version {
            Some(_) => Err(RuleError::ExpectWithoutExample {
                id: rule.id.clone(),
            }),
            None => Ok(()),
        };
    };
    let Some(m) = rule.apply_example() else {
        return Err(RuleError::ExampleNoMatch {
            id: rule.id.clone(),
            example: example.clone(),
        });
    };
    if let Some(want) = &rule.expect_version {
        let want = Some(want.clone()).filter(|w| !w.is_empty());
        if m.version != want {
            return Err(RuleError::ExampleVersion {
                id: rule.id.clone(),
                got: m.version,
                want,
            });
        }
    }
    Ok(())
}

/// Index of rule positions by protocol, so a banner only meets its own rules.
pub(crate) fn index_by_protocol(rules: &[Rule]) -> BTreeMap<String, Vec<usize>> {
    let mut map: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        map.entry(r.protocol.clone()).or_default().push(i);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(body: &str) -> Result<Vec<Rule>, RuleError> {
        parse_rules(&format!("[[rule]]\n{body}"))
    }

    const BASE: &str = r#"
id = "t"
protocol = "ssh"
service = "ssh"
confidence = 50
risk = "remote-administration"
"#;

    #[test]
    fn minimal_rule_parses() {
        let rules = one(&format!("{BASE}pattern = 'x'\n")).expect("parses");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].source(), &Source::Text);
    }

    #[test]
    fn bad_regex_is_rejected_with_rule_id() {
        let err = one(&format!("{BASE}pattern = '(unclosed'\n")).expect_err("must fail");
        assert!(
            matches!(err, RuleError::Pattern { ref id, .. } if id == "t"),
            "{err}"
        );
        assert!(err.to_string().contains("rule `t`"), "{err}");
    }

    #[test]
    fn lookaround_is_rejected() {
        let err = one(&format!("{BASE}pattern = 'a(?=b)'\n")).expect_err("must fail");
        assert!(matches!(err, RuleError::Pattern { .. }), "{err}");
    }

    #[test]
    fn missing_field_is_rejected() {
        let err = parse_rules(
            "[[rule]]\nid = 'a'\nprotocol = 'ssh'\npattern = 'x'\nconfidence = 1\nrisk = 'web'\n",
        )
        .expect_err("service missing");
        assert!(matches!(err, RuleError::Toml { .. }), "{err}");
        assert!(err.to_string().contains("service"), "{err}");
    }

    #[test]
    fn unknown_key_and_risk_are_rejected() {
        let err = one(&format!("{BASE}pattern = 'x'\nprodcut = 'typo'\n")).expect_err("typo");
        assert!(err.to_string().contains("prodcut"), "{err}");
        let err = parse_rules(
            "[[rule]]\nid='a'\nprotocol='ssh'\nservice='ssh'\npattern='x'\nconfidence=1\nrisk='scary'\n",
        )
        .expect_err("bad risk");
        assert!(err.to_string().contains("scary"), "{err}");
    }

    #[test]
    fn capture_beyond_groups_is_rejected() {
        let err = one(&format!("{BASE}pattern = 'v(\\d+)'\nversion = '$2'\n")).expect_err("oob");
        assert_eq!(
            err,
            RuleError::CaptureOutOfRange {
                id: "t".into(),
                field: "version",
                group: 2,
                available: 1
            }
        );
        let err = one(&format!(
            "{BASE}pattern = 'v'\ncpe = 'cpe:2.3:a:x:y:${{1}}'\n"
        ))
        .expect_err("oob");
        assert!(
            matches!(err, RuleError::CaptureOutOfRange { field: "cpe", .. }),
            "{err}"
        );
    }

    #[test]
    fn unknown_named_capture_and_bad_template_rejected() {
        let err = one(&format!(
            "{BASE}pattern = 'v(?P<ver>\\d+)'\nversion = '${{vers}}'\n"
        ))
        .expect_err("unknown name");
        assert!(matches!(err, RuleError::UnknownCaptureName { .. }), "{err}");
        let err = one(&format!("{BASE}pattern = 'v(\\d+)'\nversion = '$x'\n")).expect_err("bad $");
        assert!(matches!(err, RuleError::Template { .. }), "{err}");
        let err =
            one(&format!("{BASE}pattern = 'v(\\d+)'\nversion = '${{1'\n")).expect_err("unclosed");
        assert!(matches!(err, RuleError::Template { .. }), "{err}");
    }

    #[test]
    fn confidence_and_duplicates_and_empty() {
        let body = BASE.replace("confidence = 50", "confidence = 101");
        let err = one(&format!("{body}pattern = 'x'\n")).expect_err("confidence");
        assert!(
            matches!(err, RuleError::Confidence { value: 101, .. }),
            "{err}"
        );
        let twice = format!("[[rule]]\n{BASE}pattern = 'x'\n[[rule]]\n{BASE}pattern = 'y'\n");
        let err = parse_rules(&twice).expect_err("dup");
        assert!(matches!(err, RuleError::DuplicateId { .. }), "{err}");
        let body = BASE.replace("id = \"t\"", "id = \"  \"");
        let err = one(&format!("{body}pattern = 'x'\n")).expect_err("empty id");
        assert!(matches!(err, RuleError::Empty { field: "id", .. }), "{err}");
    }

    #[test]
    fn example_is_checked_on_load() {
        let err =
            one(&format!("{BASE}pattern = '^v(\\d+)'\nexample = 'nope'\n")).expect_err("no match");
        assert!(matches!(err, RuleError::ExampleNoMatch { .. }), "{err}");
        let err = one(&format!(
            "{BASE}pattern = '^v(\\d+)'\nversion = '$1'\nexample = 'v7'\nexpect_version = '8'\n"
        ))
        .expect_err("wrong version");
        assert!(matches!(err, RuleError::ExampleVersion { .. }), "{err}");
        let err = one(&format!("{BASE}pattern = 'v'\nexpect_version = '8'\n")).expect_err("orphan");
        assert!(
            matches!(err, RuleError::ExpectWithoutExample { .. }),
            "{err}"
        );
    }

    #[test]
    fn oversized_regex_is_rejected() {
        // Nested counted repetition compiles to far more than the budget.
        let err = one(&format!("{BASE}pattern = '(?:\\w{{100}}){{100}}'\n")).expect_err("too big");
        assert!(matches!(err, RuleError::Pattern { .. }), "{err}");
    }

    #[test]
    fn templates_fill_only_from_captures() {
        let re = Regex::new(r"^x(\d+)?(?:-(?P<tag>\w+))?").expect("re");
        let t = Template::parse("$1", &re).expect("t");
        let caps = re.captures("x").expect("caps");
        assert_eq!(
            t.render(&caps, Fill::Plain),
            None,
            "missing capture must not leak `$1`"
        );
        let caps = re.captures("x12-beta").expect("caps");
        assert_eq!(t.render(&caps, Fill::Plain).as_deref(), Some("12"));
        let t = Template::parse("v${1}.${tag}", &re).expect("t");
        assert_eq!(t.render(&caps, Fill::Plain).as_deref(), Some("v12.beta"));
        assert_eq!(t.groups(), vec![1, 2]);
        let t = Template::parse("a:$1:${tag:-*}:$$", &re).expect("t");
        let caps = re.captures("x7").expect("caps");
        assert_eq!(t.render(&caps, Fill::Cpe).as_deref(), Some("a:7:*:$"));
    }

    #[test]
    fn cpe_fill_escapes_reserved_characters() {
        let re = Regex::new(r"^(.*)$").expect("re");
        let t = Template::parse("cpe:2.3:a:x:y:$1:*", &re).expect("t");
        let caps = re.captures("1.2:*+Deb ü").expect("caps");
        assert_eq!(
            t.render(&caps, Fill::Cpe).as_deref(),
            Some(r"cpe:2.3:a:x:y:1.2\:\*\+deb\ :*")
        );
    }

    #[test]
    fn cap_str_respects_char_boundaries() {
        assert_eq!(cap_str("héllo", 2), "h");
        assert_eq!(cap_str("abc", 10), "abc");
    }
}
