//! The feeds [`crate::parse`] takes, as a JSON Schema (2020-12, the dialect of OpenAPI
//! 3.1) for the API's description: exactly the rules the parser enforces, so a document
//! the schema accepts is imported and one it refuses is not. Fields the parser does not
//! read are allowed and ignored, as in NVD's and CISA's own files.

use serde_json::{json, Value};

/// `CVE-YYYY-NNNN…` ([`crate::is_cve_id`]).
const CVE_ID: &str = r"^CVE-[0-9]{4}-[0-9]{4,19}$";
/// `YYYY-MM-…`, 10 to 40 characters (`is_timestamp` in parse.rs).
const TIMESTAMP: &str = r"^[0-9]{4}-[\s\S]{2}-[\s\S]{2,32}$";
/// A component of a CPE name: characters other than `:` and `\`, or `\` and any one.
macro_rules! cpe_unit {
    () => {
        r"(\\[\s\S]|[^:\\])"
    };
}
/// CPE 2.3 formatted strings (part a/o/h/* and a non-empty vendor and product, then
/// eight more components) or the 2.2 URI form (`cpe:/a:vendor:product…`), as
/// [`crate::Cpe::parse`] reads them.
const CPE: &str = concat!(
    r"^(cpe:2\.3:(\\?[aoh*]|[AOH]):",
    cpe_unit!(),
    "+:",
    cpe_unit!(),
    "+(:",
    cpe_unit!(),
    r"*){8}\\?|cpe:/(\\?[aoh*]|[AOH])(:",
    cpe_unit!(),
    r"*)*\\?)$"
);

fn text() -> Value {
    json!({"type": "string"})
}

/// A version bound (or null: none): not blank (spaces, tabs, line breaks only), at most
/// 100 characters.
fn bound() -> Value {
    json!({"type": ["string", "null"], "pattern": "[^ \\t\\n\\r]", "maxLength": 100})
}

/// Both bounds of one end given (as strings): the parser refuses that.
fn both(a: &str, b: &str) -> Value {
    json!({"required": [a, b], "properties": {a: {"type": "string"}, b: {"type": "string"}}})
}

fn metrics() -> Value {
    let list = json!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["cvssData"],
            "properties": {
                "type": text(),
                "cvssData": {
                    "type": "object",
                    "required": ["baseScore"],
                    "properties": {
                        "baseScore": {"type": "number", "minimum": 0, "maximum": 10},
                        "vectorString": text(),
                    }
                }
            }
        }
    });
    json!({
        "type": "object",
        "properties": {
            "cvssMetricV40": list, "cvssMetricV31": list,
            "cvssMetricV30": list, "cvssMetricV2": list,
        }
    })
}

fn cpe_match() -> Value {
    json!({
        "type": "object",
        "required": ["vulnerable", "criteria"],
        "properties": {
            "vulnerable": {"type": "boolean"},
            "criteria": {"type": "string", "pattern": CPE, "maxLength": 1024},
            "versionStartIncluding": bound(),
            "versionStartExcluding": bound(),
            "versionEndIncluding": bound(),
            "versionEndExcluding": bound(),
        },
        "not": {"anyOf": [
            both("versionStartIncluding", "versionStartExcluding"),
            both("versionEndIncluding", "versionEndExcluding"),
        ]}
    })
}

fn configuration() -> Value {
    let operator = json!({"type": "string", "enum": ["AND", "OR"]});
    let node = json!({
        "type": "object",
        "required": ["operator", "cpeMatch"],
        "properties": {
            "operator": operator,
            "negate": {"type": "boolean"},
            "cpeMatch": {"type": "array", "items": cpe_match()}
        }
    });
    json!({
        "type": "object",
        "required": ["nodes"],
        "properties": {
            "operator": {"anyOf": [operator, {"type": "null"}]},
            "negate": {"type": "boolean"},
            "nodes": {"type": "array", "items": node}
        }
    })
}

fn cve() -> Value {
    let description = json!({
        "type": "object",
        "required": ["lang", "value"],
        "properties": {"lang": text(), "value": text()}
    });
    json!({
        "type": "object",
        "required": ["id", "lastModified"],
        "properties": {
            "id": {"type": "string", "pattern": CVE_ID},
            "published": text(),
            "lastModified": {"type": "string", "pattern": TIMESTAMP},
            "vulnStatus": text(),
            "descriptions": {"type": "array", "items": description},
            "metrics": metrics(),
            "configurations": {"type": "array", "items": configuration()}
        }
    })
}

fn nvd() -> Value {
    let item = json!({"type": "object", "required": ["cve"], "properties": {"cve": cve()}});
    json!({
        "title": "NVD CVE JSON 2.0 feed",
        "type": "object",
        "required": ["format", "version", "vulnerabilities"],
        "properties": {
            "format": {"const": "NVD_CVE"},
            "version": {"const": "2.0"},
            "timestamp": {"type": ["string", "null"]},
            "vulnerabilities": {"type": "array", "items": item}
        }
    })
}

fn kev() -> Value {
    json!({
        "title": "CISA Known Exploited Vulnerabilities catalogue",
        "type": "object",
        "required": ["catalogVersion", "vulnerabilities"],
        // A document that says it is an NVD 2.0 feed is read as one.
        "not": {
            "required": ["format", "version"],
            "properties": {"format": {"const": "NVD_CVE"}, "version": {"const": "2.0"}}
        },
        "properties": {
            "catalogVersion": text(),
            "vulnerabilities": {"type": "array", "items": {
                "type": "object",
                "required": ["cveID", "dateAdded"],
                "properties": {
                    "cveID": {"type": "string", "pattern": CVE_ID},
                    "dateAdded": {"type": "string", "pattern": TIMESTAMP},
                    "vendorProject": text(),
                    "product": text(),
                    "vulnerabilityName": text(),
                    "dueDate": text(),
                    "requiredAction": text(),
                    "knownRansomwareCampaignUse": text(),
                }
            }}
        }
    })
}

/// The schema of an import's body: an NVD feed or the KEV catalogue.
pub fn feed_schema() -> Value {
    json!({
        "description": "An NVD CVE JSON 2.0 feed file or the CISA KEV catalogue, told apart by \
            `format`/`version` (NVD) or `catalogVersion` (KEV). `resultsPerPage` and `count` \
            are not read (a file cut short does not parse).",
        "oneOf": [nvd(), kev()]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(p: &str) -> regex::Regex {
        regex::Regex::new(p).expect("pattern compiles")
    }

    #[test]
    fn the_cpe_pattern_is_what_the_parser_takes() {
        let pat = re(CPE);
        for s in [
            "cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*",
            "cpe:2.3:A:openbsd:openssh:9.2:p1:*:*:*:*:*:*",
            "cpe:2.3:\\a:openbsd:openssh:9.2:p1:*:*:*:*:*:*",
            "cpe:2.3:a:open\\:bsd:openssh:*:*:*:*:*:*:*:*",
            "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*\\",
            "cpe:2.3:a::openssh:*:*:*:*:*:*:*:*",
            "cpe:2.3:x:openbsd:openssh:*:*:*:*:*:*:*:*",
            "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*",
            "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*:*",
            "cpe:2.3:\\A:openbsd:openssh:*:*:*:*:*:*:*:*",
            "cpe:/a:openbsd:openssh:9.2p1",
            "cpe:/a",
            "cpe:/",
            "cpe:/x:y",
            "cpe:/a::",
            "cpe:2.3:",
            "nope",
        ] {
            assert_eq!(
                pat.is_match(s),
                crate::Cpe::parse(s).is_ok(),
                "{s:?}: pattern and parser disagree"
            );
        }
    }

    #[test]
    fn the_id_and_time_patterns_are_what_the_parser_takes() {
        let id = re(CVE_ID);
        for s in [
            "CVE-2024-6387",
            "CVE-2024-123",
            "CVE-24-1234",
            "cve-2024-6387",
            "CVE-2024-12345678901234567890",
        ] {
            assert_eq!(id.is_match(s), crate::is_cve_id(s), "{s:?}");
        }
        let ts = re(TIMESTAMP);
        for s in [
            "2024-07-01",
            "2024-07-01T12:00:00.000",
            "2024-7-1",
            "2024-07-0",
            "20240701xx",
            "2024-é1-01",
        ] {
            let c: Vec<char> = s.chars().collect();
            let parser = (10..=40).contains(&c.len())
                && c.iter().take(4).all(char::is_ascii_digit)
                && c.get(4) == Some(&'-')
                && c.get(7) == Some(&'-');
            assert_eq!(ts.is_match(s), parser, "{s:?}");
        }
    }
}
