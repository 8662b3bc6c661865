//! The text rules of channels and rules, as patterns: the validators below use them
//! and the API's description publishes them, so what a client reads as valid is what is
//! accepted. Written in the regular-expression subset JSON Schema (ECMA 262), Python and
//! the `regex` crate read alike.

use regex::Regex;
use std::sync::LazyLock;

/// IPv4 as Rust's parser takes it: four decimal octets, no leading zeros.
#[macro_export]
macro_rules! ipv4_text {
    () => {
        r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
    };
}

/// IPv6 as Rust's parser takes it (RFC 4291 2.2): eight groups of one to four hex
/// digits, `::` for one or more zero groups, and a trailing dotted IPv4 in place of the
/// last two groups — after six groups, or anywhere after `::` that leaves room.
#[macro_export]
macro_rules! ipv6_text {
    () => {
        concat!(
            r"(([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}",
            r"|([0-9a-fA-F]{1,4}:){1,7}:",
            r"|([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}",
            r"|([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}",
            r"|([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}",
            r"|([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}",
            r"|([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}",
            r"|[0-9a-fA-F]{1,4}:(:[0-9a-fA-F]{1,4}){1,6}",
            r"|:((:[0-9a-fA-F]{1,4}){1,7}|:)",
            r"|([0-9a-fA-F]{1,4}:){6}",
            $crate::ipv4_text!(),
            r"|::([0-9a-fA-F]{1,4}:){0,5}",
            $crate::ipv4_text!(),
            r"|([0-9a-fA-F]{1,4}:){1}:([0-9a-fA-F]{1,4}:){0,4}",
            $crate::ipv4_text!(),
            r"|([0-9a-fA-F]{1,4}:){2}:([0-9a-fA-F]{1,4}:){0,3}",
            $crate::ipv4_text!(),
            r"|([0-9a-fA-F]{1,4}:){3}:([0-9a-fA-F]{1,4}:){0,2}",
            $crate::ipv4_text!(),
            r"|([0-9a-fA-F]{1,4}:){4}:([0-9a-fA-F]{1,4}:){0,1}",
            $crate::ipv4_text!(),
            r"|([0-9a-fA-F]{1,4}:){5}:",
            $crate::ipv4_text!(),
            r")"
        )
    };
}

/// An id of a channel or rule.
pub const ID: &str = r"^[A-Za-z0-9_-]{1,64}$";

/// Not blank: at least one character that is not white space (Rust's `char::is_whitespace`).
pub const NOT_BLANK: &str =
    r"[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// A receiver's URL: http or https, a host (name or `[v6]`), an optional port 1-65535,
/// no credentials, nothing blank or a control character anywhere.
pub const URL: &str = concat!(
    r"^https?://([A-Za-z0-9._~!$&'()*+,;=%-]+|\[",
    crate::ipv6_text!(),
    r"\])",
    r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    r"([/?#][^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*)?$"
);

/// One plain e-mail address: printable ASCII without `<>()[],;:\"`, an `@`, a domain with
/// a dot (at most 254 characters, said as maxLength).
pub const ADDRESS: &str =
    r"^[!#-'*+\-./0-9=?@A-Z^-~]+@[!#-'*+\-./0-9=?A-Z^-~]*\.[!#-'*+\-./0-9=?A-Z^-~]*$";

/// An SMTP relay's host name or address.
pub const HOST: &str = r"^[A-Za-z0-9.:-]{1,253}$";

/// A time of day, `HH:MM`.
pub const CLOCK: &str = r"^([01][0-9]|2[0-3]):[0-5][0-9]$";

/// A UTC offset up to ±14:00, or `Z` / `UTC`.
pub const OFFSET: &str = r"^(Z|UTC|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$";

/// What a PEM certificate holds somewhere.
pub const PEM: &str = "-----BEGIN CERTIFICATE-----";

fn compiled(p: &'static str) -> Regex {
    // Constants, compiled by the tests below: a failure here is a bug, not input.
    Regex::new(p).expect("a constant pattern compiles")
}

static URL_RE: LazyLock<Regex> = LazyLock::new(|| compiled(URL));
static ADDRESS_RE: LazyLock<Regex> = LazyLock::new(|| compiled(ADDRESS));

pub fn is_url(s: &str) -> bool {
    URL_RE.is_match(s)
}

pub fn is_address(s: &str) -> bool {
    ADDRESS_RE.is_match(s) && s.len() <= 254
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles_and_says_what_it_means() {
        for p in [ID, NOT_BLANK, URL, ADDRESS, HOST, CLOCK, OFFSET, PEM] {
            Regex::new(p).expect("compiles");
        }
        for ok in [
            "https://hooks.example.com/x?y=1#z",
            "http://127.0.0.1:8080/hook",
            "http://[::1]:65535",
            "http://[64:ff9b::192.0.2.1]/",
            "https://oapi.dingtalk.com/robot/send?access_token=abc",
        ] {
            assert!(is_url(ok), "{ok}");
        }
        for bad in [
            "ftp://x",
            "http://",
            "http://u:p@host/",
            "http://host:0/",
            "http://host:65536/",
            "http://host/a b",
            "http://host:+80/",
            "http://[::1]x/",
            "http://[::.]/",
            "http://[1.2.3.4]/",
        ] {
            assert!(!is_url(bad), "{bad}");
        }
        assert!(is_address("soc@example.com") && is_address("a@b@c.d"));
        assert!(!is_address("soc@localhost") && !is_address("<soc@example.com>"));
        let blank = Regex::new(NOT_BLANK).expect("compiles");
        for (s, want) in [(" \t\u{3000}", false), (" x ", true), ("\u{1c}", true)] {
            assert_eq!(blank.is_match(s), want, "{s:?}");
            assert_eq!(!s.trim().is_empty(), want, "{s:?}: trim agrees");
        }
    }
}
