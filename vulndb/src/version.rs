//! Version ordering for the ranges NVD writes (`versionEndExcluding: "9.3p2"`) and the
//! versions banners give (`9.2p1`, `1.1.1k`, `2.4.62`, `8.0.0-rc1`).
//!
//! A version is cut into runs of digits and runs of letters; separators (`.`, `-`, `_`,
//! `+`, `~`) only separate. Digit runs compare as numbers, letter runs as lower-case
//! text, and a digit run sorts after a letter run in the same place. When one version
//! is a prefix of the other, the longer is newer (`9.3p1` > `9.3`, `1.1.1k` > `1.1.1`)
//! unless what follows is a pre-release word (`2.0.0-rc1` < `2.0.0`).

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part<'a> {
    Num(&'a str),
    Word(&'a str),
}

const PRE_RELEASE: &[&str] = &[
    "alpha", "beta", "rc", "pre", "preview", "dev", "snapshot", "a", "b", "m",
];

/// The digit and letter runs of a version, without allocating: comparisons run tens of
/// thousands of times per service against products with thousands of CVEs.
struct Parts<'a> {
    v: &'a str,
    at: usize,
}

impl<'a> Iterator for Parts<'a> {
    type Item = Part<'a>;
    fn next(&mut self) -> Option<Part<'a>> {
        let bytes = self.v.as_bytes();
        while let Some(b) = bytes.get(self.at) {
            if b.is_ascii_alphanumeric() {
                break;
            }
            self.at += 1;
        }
        let start = self.at;
        let first = *bytes.get(start)?;
        let digit = first.is_ascii_digit();
        while bytes.get(self.at).is_some_and(|b| {
            if digit {
                b.is_ascii_digit()
            } else {
                b.is_ascii_alphabetic()
            }
        }) {
            self.at += 1;
        }
        let run = self.v.get(start..self.at).unwrap_or_default();
        Some(if digit {
            Part::Num(run)
        } else {
            Part::Word(run)
        })
    }
}

fn parts(v: &str) -> Parts<'_> {
    Parts { v, at: 0 }
}

fn num_cmp(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn word_cmp(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

fn is_pre_release(p: &Part<'_>) -> bool {
    matches!(p, Part::Word(w) if PRE_RELEASE.iter().any(|x| x.eq_ignore_ascii_case(w)))
}

/// Orders two version strings (see the module's documentation).
pub fn compare(a: &str, b: &str) -> Ordering {
    let mut pa = parts(a);
    let mut pb = parts(b);
    loop {
        match (pa.next(), pb.next()) {
            (Some(x), Some(y)) => {
                let o = match (&x, &y) {
                    (Part::Num(x), Part::Num(y)) => num_cmp(x, y),
                    (Part::Word(x), Part::Word(y)) => word_cmp(x, y),
                    (Part::Num(_), Part::Word(_)) => Ordering::Greater,
                    (Part::Word(_), Part::Num(_)) => Ordering::Less,
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            (Some(x), None) => {
                return if is_pre_release(&x) {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (None, Some(y)) => {
                return if is_pre_release(&y) {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (None, None) => return Ordering::Equal,
        }
    }
}

/// A version as a banner gave it, cut into what upstream released and what a
/// distribution added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceVersion {
    /// The upstream version the ranges are compared with (`9.2p1`, `2.4.62`).
    pub upstream: String,
    /// The distribution that built it, when the version or the service says so: its
    /// package may carry fixes backported without a new upstream version.
    pub distribution: Option<String>,
}

/// Distributions known to backport security fixes into old upstream versions.
const BACKPORTING: &[&str] = &[
    "debian",
    "ubuntu",
    "raspbian",
    "red hat",
    "rhel",
    "centos",
    "rocky",
    "alma",
    "fedora",
    "suse",
    "amazon linux",
    "oracle linux",
    "alpine",
];

fn backporter(text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    BACKPORTING.iter().copied().find(|d| lower.contains(d))
}

/// Splits a service's version from its distribution's revision: `9.2p1 Debian-2+deb12u3`
/// → `9.2p1` built by Debian; `2.4.62-1~deb12u2` → `2.4.62` built by a distribution.
/// `os` is the operating system the identification named, if any (an OpenSSH banner's
/// `Debian-…` comment, Apache's `(Debian)`): packaged there, the same caveat holds.
pub fn split_distribution(version: &str, os: Option<&str>) -> ServiceVersion {
    let version = version.trim();
    let (head, comment) = match version.split_once(char::is_whitespace) {
        Some((h, c)) => (h, Some(c.trim())),
        None => (version, None),
    };
    let mut upstream = head;
    let mut distribution = comment.and_then(backporter).map(str::to_owned);
    // A Debian/RPM revision: `-<digits>` then optionally `~deb…`, `+deb…`, `ubuntu…`,
    // `.el9`: upstream pre-releases (`-rc1`, `-beta`) start with a letter and stay.
    if let Some((up, rev)) = head.split_once('-') {
        if rev.starts_with(|c: char| c.is_ascii_digit()) && !up.is_empty() {
            upstream = up;
            if distribution.is_none() {
                distribution = Some(
                    backporter(rev)
                        .map(str::to_owned)
                        .or_else(|| {
                            rev.contains("deb")
                                .then(|| "debian".to_owned())
                                .or_else(|| rev.contains(".el").then(|| "red hat".to_owned()))
                        })
                        .unwrap_or_else(|| "a distribution".to_owned()),
                );
            }
        }
    }
    if distribution.is_none() {
        distribution = os.and_then(backporter).map(str::to_owned);
    }
    ServiceVersion {
        upstream: upstream.to_owned(),
        distribution,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn orders_the_versions_banners_and_feeds_use() {
        for (a, b, o) in [
            ("9.2p1", "9.3", Less),
            ("9.3p1", "9.3", Greater),
            ("9.3p2", "9.3p10", Less),
            ("1.1.1k", "1.1.1", Greater),
            ("1.1.1k", "1.1.1l", Less),
            ("1.1.1w", "3.0.0", Less),
            ("2.4.62", "2.4.9", Greater),
            ("2.4.062", "2.4.62", Equal),
            ("8.0.0-rc1", "8.0.0", Less),
            ("8.0.0", "8.0.0-rc1", Greater),
            ("8.0.0-rc1", "8.0.0-rc2", Less),
            ("1.0", "1.0.0", Less),
            ("10.0", "9.99", Greater),
            ("1.2.3", "1.2.3", Equal),
            ("5.7.44", "5.7.44-log", Less),
            ("99999999999999999999999", "1", Greater),
        ] {
            assert_eq!(compare(a, b), o, "{a} vs {b}");
            assert_eq!(compare(b, a), o.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn separates_distribution_revisions() {
        let v = split_distribution("9.2p1 Debian-2+deb12u3", None);
        assert_eq!(v.upstream, "9.2p1");
        assert_eq!(v.distribution.as_deref(), Some("debian"));
        let v = split_distribution("2.4.62-1~deb12u2", None);
        assert_eq!(v.upstream, "2.4.62");
        assert_eq!(v.distribution.as_deref(), Some("debian"));
        let v = split_distribution("8.9p1", Some("Ubuntu"));
        assert_eq!(v.upstream, "8.9p1");
        assert_eq!(v.distribution.as_deref(), Some("ubuntu"));
        let v = split_distribution("1.24.0-2ubuntu7", None);
        assert_eq!(v.upstream, "1.24.0");
        assert_eq!(v.distribution.as_deref(), Some("ubuntu"));
        let v = split_distribution("2.4.37-62.el8", None);
        assert_eq!(v.distribution.as_deref(), Some("red hat"));
        let v = split_distribution("8.0.0-rc1", None);
        assert_eq!(v.upstream, "8.0.0-rc1");
        assert_eq!(v.distribution, None);
        let v = split_distribution("9.6", Some("FreeBSD"));
        assert_eq!(v.distribution, None);
    }

    proptest::proptest! {
        #[test]
        fn compare_is_antisymmetric_and_total(a in "[0-9a-z.~+-]{0,12}", b in "[0-9a-z.~+-]{0,12}") {
            proptest::prop_assert_eq!(compare(&a, &b), compare(&b, &a).reverse());
            proptest::prop_assert_eq!(compare(&a, &a), Equal);
        }
    }
}
