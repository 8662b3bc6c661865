//! Domain names as users type them and zones contain them.
//!
//! A [`DomainName`] is always stored in its ASCII (punycode) form, lowercase, without
//! the trailing dot, so that two spellings of the same name (`Bücher.Example.`,
//! `xn--bcher-kva.example`) compare, hash and store identically. Unicode is only for
//! display ([`DomainName::unicode`]).

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Longest name on the wire (RFC 1035 §2.3.4: 255 octets including length bytes and the
/// root, which leaves 253 characters in dotted form without the trailing dot).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Input bytes looked at before IDNA processing. UTS 46 mapping can only shrink a name by
/// dropping ignored code points (soft hyphens, variation selectors…), so anything this
/// long is garbage; refusing it early bounds the work done on hostile input.
pub const MAX_INPUT_LEN: usize = 1024;
/// How much of an offending label an error message quotes.
const SHOWN_LABEL_CHARS: usize = 64;

/// Why a string is not an acceptable domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("domain name is empty (the root \".\" alone is not accepted)")]
    Empty,
    #[error("input is {len} bytes long; a domain name is at most {MAX_NAME_LEN} bytes (input limit {MAX_INPUT_LEN})")]
    InputTooLong { len: usize },
    #[error("label {position} is empty (a leading dot, or two dots in a row)")]
    EmptyLabel {
        /// 1-based, counted from the left.
        position: usize,
    },
    #[error("label {label:?} is {len} bytes long (at most {MAX_LABEL_LEN}, counted after IDNA conversion)")]
    LabelTooLong { label: String, len: usize },
    #[error("name is {len} bytes long (at most {MAX_NAME_LEN}, counted after IDNA conversion, without the trailing dot)")]
    NameTooLong { len: usize },
    #[error("label {label:?} contains {ch:?}; only letters, digits, hyphens and underscores are allowed")]
    InvalidCharacter { label: String, ch: char },
    #[error("label {label:?} starts or ends with a hyphen")]
    HyphenAtEdge { label: String },
    #[error("top-level label {label:?} is all digits (an IP address is not a domain name)")]
    NumericTld { label: String },
    #[error("{label:?} is not valid under the IDNA rules (UTS 46): disallowed code point, bad punycode, or mixed script direction")]
    Idna { label: String },
    #[error("{label:?} is not a single label")]
    NotALabel { label: String },
}

/// A validated domain name in lowercase ASCII form (punycode for IDNs), without the
/// trailing dot. Labels are letters, digits, hyphens (not at either end) and underscores
/// (service names such as `_dmarc`, `_sip._tcp`); see [`DomainName::is_hostname`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

impl DomainName {
    /// Parses a name as a user or a zone gives it: Unicode or ASCII, any case, with or
    /// without the trailing dot. Surrounding whitespace is an error, not trimmed, so
    /// that what is stored is exactly what was validated.
    pub fn parse(input: &str) -> Result<DomainName, NameError> {
        if input.is_empty() {
            return Err(NameError::Empty);
        }
        if input.len() > MAX_INPUT_LEN {
            return Err(NameError::InputTooLong { len: input.len() });
        }
        // Quoted as the user wrote it: after IDNA a label holding both a space and an
        // umlaut would be shown as punycode. The check on the ASCII result below still
        // catches punctuation that UTS 46 maps to from other scripts (full-width '＊').
        for label in input.split('.') {
            if let Some(ch) = label.chars().find(|c| c.is_ascii() && !allowed(*c)) {
                return Err(NameError::InvalidCharacter {
                    label: shown(label),
                    ch,
                });
            }
        }
        // No deny list and no hyphen or length checks in the IDNA step: those rules are
        // checked below on the ASCII result, where the error can say which label broke
        // which rule (idna's own errors carry no detail). Processing is always
        // non-transitional in idna 1.x, so `ß` stays `ß` (xn--) instead of becoming `ss`.
        let ascii = match Uts46::new().to_ascii(
            input.as_bytes(),
            AsciiDenyList::EMPTY,
            Hyphens::Allow,
            DnsLength::Ignore,
        ) {
            Ok(ascii) => ascii,
            Err(_) => {
                return Err(NameError::Idna {
                    label: culprit(input),
                })
            }
        };
        let name = ascii.strip_suffix('.').unwrap_or(&ascii);
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        let mut last = "";
        for (i, label) in name.split('.').enumerate() {
            check_label(label, i + 1)?;
            last = label;
        }
        if name.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong { len: name.len() });
        }
        if last.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NameError::NumericTld { label: shown(last) });
        }
        Ok(DomainName(name.to_owned()))
    }

    /// The stored form: lowercase ASCII, punycode for IDNs, no trailing dot.
    pub fn ascii(&self) -> &str {
        &self.0
    }

    /// The display form, punycode labels decoded. Falls back to the ASCII form if
    /// decoding fails, so the result is always safe to show.
    pub fn unicode(&self) -> String {
        let (text, result) =
            Uts46::new().to_unicode(self.0.as_bytes(), AsciiDenyList::EMPTY, Hyphens::Allow);
        match result {
            Ok(()) => text.into_owned(),
            Err(_) => self.0.clone(),
        }
    }

    /// Labels from the left (`www`, `corp`, `test`).
    pub fn labels(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.0.split('.')
    }

    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// The name with its leftmost label removed; `None` for a single-label name.
    pub fn parent(&self) -> Option<DomainName> {
        // A suffix of a valid name keeps every property `parse` checks (same labels,
        // same top-level label, shorter), so there is nothing to re-validate.
        self.0
            .split_once('.')
            .map(|(_, rest)| DomainName(rest.to_owned()))
    }

    /// Whether `self` is `other` or lies below it, compared label-wise:
    /// `a.corp.test` and `corp.test` are under `corp.test`; `notcorp.test` is not.
    /// A name counts as a subdomain of itself, as in RFC 8499.
    pub fn is_subdomain_of(&self, other: &DomainName) -> bool {
        match self.0.strip_suffix(other.0.as_str()) {
            Some("") => true,
            Some(prefix) => prefix.ends_with('.'),
            None => false,
        }
    }

    /// Prepends one label (Unicode or ASCII), validating the result as a whole.
    pub fn child(&self, label: &str) -> Result<DomainName, NameError> {
        // The full stops UTS 46 maps to '.', refused up front for a clear message; the
        // label count check below catches the rarer code points that map to "x."
        if label.contains(['.', '\u{3002}', '\u{FF0E}', '\u{FF61}']) {
            return Err(NameError::NotALabel {
                label: shown(label),
            });
        }
        if label.is_empty() {
            return Err(NameError::EmptyLabel { position: 1 });
        }
        let child = DomainName::parse(&format!("{label}.{}", self.0))?;
        if child.label_count() != self.label_count() + 1 {
            return Err(NameError::NotALabel {
                label: shown(label),
            });
        }
        Ok(child)
    }

    /// The longest of `zones` that `self` is in (itself or below it).
    pub fn zone_apex_of<'z>(&self, zones: &'z [DomainName]) -> Option<&'z DomainName> {
        zones
            .iter()
            .filter(|zone| self.is_subdomain_of(zone))
            .max_by_key(|zone| zone.0.len())
    }

    /// True when every label is letters, digits and hyphens only (RFC 952/1123 host
    /// names), i.e. no underscore labels like `_dmarc`.
    pub fn is_hostname(&self) -> bool {
        self.0
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    }
}

fn check_label(label: &str, position: usize) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel { position });
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(NameError::LabelTooLong {
            label: shown(label),
            len: label.len(),
        });
    }
    // The IDNA step lowercases ASCII and punycodes everything else, so any character
    // outside this set is ASCII punctuation, space or a control character.
    if let Some(ch) = label
        .chars()
        .find(|c| !allowed(*c) || c.is_ascii_uppercase())
    {
        return Err(NameError::InvalidCharacter {
            label: shown(label),
            ch,
        });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(NameError::HyphenAtEdge {
            label: shown(label),
        });
    }
    Ok(())
}

/// Letters, digits, hyphen (RFC 952/1123) and underscore (RFC 8552 service labels).
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The first label IDNA rejects on its own; the whole name when only the combination
/// fails (the bidi rule looks across labels).
fn culprit(input: &str) -> String {
    let uts46 = Uts46::new();
    input
        .split('.')
        .find(|label| {
            uts46
                .to_ascii(
                    label.as_bytes(),
                    AsciiDenyList::EMPTY,
                    Hyphens::Allow,
                    DnsLength::Ignore,
                )
                .is_err()
        })
        .map_or_else(|| shown(input), shown)
}

/// A label as quoted in an error message, cut so messages stay short.
fn shown(label: &str) -> String {
    if label.chars().count() <= SHOWN_LABEL_CHARS {
        return label.to_owned();
    }
    let mut out: String = label.chars().take(SHOWN_LABEL_CHARS).collect();
    out.push('…');
    out
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DomainName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DomainName::parse(s)
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for DomainName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Deserializing validates, so a stored or submitted name is never trusted as-is.
impl<'de> Deserialize<'de> for DomainName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DomainName::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A label of 12–16 lowercase letters and digits, starting with a letter, derived from
/// `seed` alone. Used to ask for a name that should not exist (wildcard detection); the
/// caller supplies the randomness so this stays deterministic and testable.
pub fn random_label(seed: u64) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = seed;
    let len = 12 + (splitmix64(&mut state) % 5) as usize;
    let mut out = String::with_capacity(len);
    // A leading letter keeps the label from looking numeric to anything downstream.
    out.push(LETTERS[(splitmix64(&mut state) % LETTERS.len() as u64) as usize] as char);
    while out.len() < len {
        out.push(ALPHABET[(splitmix64(&mut state) % ALPHABET.len() as u64) as usize] as char);
    }
    out
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, and consecutive seeds give unrelated
/// outputs, which a plain LCG would not.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
