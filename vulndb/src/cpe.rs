//! CPE names: the 2.3 formatted string NVD and our identification rules write
//! (`cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*`) and the older URI form Recog data
//! gives (`cpe:/a:openbsd:openssh:9.2p1`). Only what matching reads is kept: part,
//! vendor, product, version and update.

use serde::{Deserialize, Serialize};

/// The fields of a CPE name that matching reads, unescaped and lower-case. `*` is ANY
/// and `-` is NA (not applicable), as in the CPE 2.3 specification.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cpe {
    /// `a` application, `o` operating system, `h` hardware.
    pub part: String,
    pub vendor: String,
    pub product: String,
    pub version: String,
    pub update: String,
}

pub const ANY: &str = "*";
pub const NA: &str = "-";

/// Splits at `:` not escaped by a backslash.
fn components(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                // An escaped character stands for itself.
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ':' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c.to_ascii_lowercase()),
        }
    }
    out.push(cur);
    out
}

impl Cpe {
    /// Parses a CPE 2.3 formatted string, or the 2.2 URI form. Returns a message saying
    /// what is wrong otherwise.
    pub fn parse(s: &str) -> Result<Cpe, String> {
        if s.chars().count() > 1024 {
            return Err("longer than 1024 characters".into());
        }
        if let Some(rest) = s.strip_prefix("cpe:2.3:") {
            let c = components(rest);
            if c.len() != 11 {
                return Err(format!(
                    "{} components after cpe:2.3: where 11 belong",
                    c.len()
                ));
            }
            return Cpe::from_parts(&c[0], &c[1], &c[2], &c[3], &c[4]);
        }
        if let Some(rest) = s.strip_prefix("cpe:/") {
            let c = components(rest);
            let get = |i: usize| c.get(i).map(String::as_str).filter(|v| !v.is_empty());
            return Cpe::from_parts(
                get(0).unwrap_or(""),
                get(1).unwrap_or(ANY),
                get(2).unwrap_or(ANY),
                get(3).unwrap_or(ANY),
                get(4).unwrap_or(ANY),
            );
        }
        Err("not a CPE name (cpe:2.3:… or cpe:/…)".into())
    }

    fn from_parts(
        part: &str,
        vendor: &str,
        product: &str,
        version: &str,
        update: &str,
    ) -> Result<Cpe, String> {
        if !matches!(part, "a" | "o" | "h" | "*") {
            return Err(format!("part {part:?}: use a, o or h"));
        }
        if vendor.is_empty() || product.is_empty() {
            return Err("vendor and product must not be empty".into());
        }
        Ok(Cpe {
            part: part.to_owned(),
            vendor: vendor.to_owned(),
            product: product.to_owned(),
            version: version.to_owned(),
            update: update.to_owned(),
        })
    }

    /// `vendor:product`, the key of the index and of the store's term.
    pub fn product_key(&self) -> String {
        product_key(&self.vendor, &self.product)
    }
}

/// `vendor:product`, lower-case.
pub fn product_key(vendor: &str, product: &str) -> String {
    format!(
        "{}:{}",
        vendor.to_ascii_lowercase(),
        product.to_ascii_lowercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_formatted_strings_with_escapes() {
        let c = Cpe::parse("cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*").expect("cpe");
        assert_eq!(
            (c.part.as_str(), c.vendor.as_str(), c.product.as_str()),
            ("a", "openbsd", "openssh")
        );
        assert_eq!((c.version.as_str(), c.update.as_str()), ("9.2", "p1"));
        let c = Cpe::parse(r"cpe:2.3:a:nodejs:node\.js:18.0.0:*:*:*:*:*:*:*").expect("cpe");
        assert_eq!(c.product, "node.js");
        let c = Cpe::parse(r"cpe:2.3:a:vendor:with\:colon:1:*:*:*:*:*:*:*").expect("cpe");
        assert_eq!(c.product, "with:colon");
        assert_eq!(c.product_key(), "vendor:with:colon");
    }

    #[test]
    fn parses_the_uri_form() {
        let c = Cpe::parse("cpe:/a:Apache:HTTP_Server:2.4.62").expect("cpe");
        assert_eq!(c.product_key(), "apache:http_server");
        assert_eq!((c.version.as_str(), c.update.as_str()), ("2.4.62", "*"));
    }

    #[test]
    fn refuses_what_is_no_cpe() {
        for bad in [
            "openssh 9.2",
            "cpe:2.3:a:openbsd:openssh",
            "cpe:2.3:x:openbsd:openssh:9.2:*:*:*:*:*:*:*",
            "cpe:2.3:a::openssh:9.2:*:*:*:*:*:*:*",
        ] {
            assert!(Cpe::parse(bad).is_err(), "{bad}");
        }
    }
}
