//! Writes records back in the feeds' own formats: NVD CVE JSON 2.0 and the CISA KEV
//! catalogue. For tests and benchmarks, which need feeds of any shape and size and
//! must not fetch the real ones; a written feed parses back to the same records.

use crate::{Bound, Configuration, Cve, CvssVersion, KevEntry, Operator};
use serde_json::{json, Value};

fn severity_word(version: CvssVersion, tenths: u8) -> &'static str {
    match (version, tenths) {
        (_, 0) => "NONE",
        (CvssVersion::V2, 70..) => "HIGH",
        (CvssVersion::V2, 40..) => "MEDIUM",
        (CvssVersion::V2, _) => "LOW",
        (_, 90..) => "CRITICAL",
        (_, 70..) => "HIGH",
        (_, 40..) => "MEDIUM",
        _ => "LOW",
    }
}

fn op(o: Operator) -> &'static str {
    match o {
        Operator::And => "AND",
        Operator::Or => "OR",
    }
}

/// The escaped CPE 2.3 formatted string of a stored match's CPE.
fn criteria(c: &crate::Cpe) -> String {
    let esc = |s: &str| {
        if s == "*" || s == "-" {
            return s.to_owned();
        }
        let mut out = String::with_capacity(s.len());
        for ch in s.chars() {
            if !(ch.is_ascii_alphanumeric() || ch == '_') {
                out.push('\\');
            }
            out.push(ch);
        }
        out
    };
    format!(
        "cpe:2.3:{}:{}:{}:{}:{}:*:*:*:*:*:*",
        c.part,
        esc(&c.vendor),
        esc(&c.product),
        esc(&c.version),
        esc(&c.update)
    )
}

fn configuration(c: &Configuration, seed: &mut u64) -> Value {
    let nodes: Vec<Value> = c
        .nodes
        .iter()
        .map(|n| {
            let matches: Vec<Value> = n
                .matches
                .iter()
                .map(|m| {
                    *seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let mut v = json!({
                        "vulnerable": m.vulnerable,
                        "criteria": criteria(&m.cpe),
                        "matchCriteriaId": format!(
                            "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
                            *seed >> 32, (*seed >> 16) & 0xffff, *seed & 0xffff,
                            (*seed >> 48) & 0xffff, *seed & 0xffff_ffff_ffff
                        ),
                    });
                    let put = |v: &mut Value, b: &Option<Bound>, incl: &str, excl: &str| {
                        if let Some(b) = b {
                            let k = if b.inclusive { incl } else { excl };
                            v[k] = Value::String(b.version.clone());
                        }
                    };
                    put(
                        &mut v,
                        &m.start,
                        "versionStartIncluding",
                        "versionStartExcluding",
                    );
                    put(&mut v, &m.end, "versionEndIncluding", "versionEndExcluding");
                    v
                })
                .collect();
            json!({"operator": op(n.operator), "negate": n.negate, "cpeMatch": matches})
        })
        .collect();
    let mut v = json!({ "nodes": nodes });
    if c.nodes.len() > 1 || c.operator == Operator::And {
        v["operator"] = json!(op(c.operator));
        v["negate"] = json!(c.negate);
    }
    v
}

/// One CVE as an item of an NVD 2.0 feed's `vulnerabilities`.
pub fn nvd_item(c: &Cve) -> Value {
    let mut seed = c.id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    let mut metrics = json!({});
    if let Some(s) = &c.cvss {
        let key = match s.version {
            CvssVersion::V40 => "cvssMetricV40",
            CvssVersion::V31 => "cvssMetricV31",
            CvssVersion::V30 => "cvssMetricV30",
            CvssVersion::V2 => "cvssMetricV2",
        };
        let score = f64::from(s.score_tenths) / 10.0;
        let word = severity_word(s.version, s.score_tenths);
        let mut data = json!({
            "version": s.version.as_str(),
            "vectorString": s.vector,
            "baseScore": score,
        });
        let mut metric = json!({
            "source": "nvd@nist.gov",
            "type": "Primary",
            "cvssData": data.clone(),
        });
        if s.version == CvssVersion::V2 {
            metric["baseSeverity"] = json!(word);
            metric["exploitabilityScore"] = json!(10.0);
            metric["impactScore"] = json!(6.4);
        } else {
            data["baseSeverity"] = json!(word);
            metric["cvssData"] = data;
            metric["exploitabilityScore"] = json!(3.9);
            metric["impactScore"] = json!(5.9);
        }
        metrics[key] = json!([metric]);
    }
    let configurations: Vec<Value> = c
        .configurations
        .iter()
        .map(|x| configuration(x, &mut seed))
        .collect();
    json!({"cve": {
        "id": c.id,
        "sourceIdentifier": "cve@mitre.org",
        "published": c.published,
        "lastModified": c.last_modified,
        "vulnStatus": c.status,
        "cveTags": [],
        "descriptions": [
            {"lang": "en", "value": c.summary},
            {"lang": "es", "value": "Descripción en español."}
        ],
        "metrics": metrics,
        "weaknesses": [{"source": "nvd@nist.gov", "type": "Primary",
            "description": [{"lang": "en", "value": "CWE-787"}]}],
        "configurations": configurations,
        "references": [
            {"url": format!("https://example.org/advisories/{}", c.id), "source": "cve@mitre.org",
             "tags": ["Vendor Advisory"]},
            {"url": format!("https://example.net/security/{}.html", c.id), "source": "cve@mitre.org"}
        ]
    }})
}

/// A whole NVD CVE 2.0 feed file (`nvdcve-2.0-YYYY.json`).
pub fn nvd_json(cves: &[Cve], timestamp: &str) -> String {
    let items: Vec<Value> = cves.iter().map(nvd_item).collect();
    json!({
        "resultsPerPage": cves.len(),
        "startIndex": 0,
        "totalResults": cves.len(),
        "format": "NVD_CVE",
        "version": "2.0",
        "timestamp": timestamp,
        "vulnerabilities": items,
    })
    .to_string()
}

/// A KEV catalogue (`known_exploited_vulnerabilities.json`).
pub fn kev_json(entries: &[KevEntry], catalog_version: &str) -> String {
    let items: Vec<Value> = entries
        .iter()
        .map(|k| {
            json!({
                "cveID": k.cve_id,
                "vendorProject": k.vendor_project,
                "product": k.product,
                "vulnerabilityName": k.name,
                "dateAdded": k.date_added,
                "shortDescription": "A flaw that attackers have used.",
                "requiredAction": k.required_action,
                "dueDate": k.due_date,
                "knownRansomwareCampaignUse": if k.ransomware { "Known" } else { "Unknown" },
                "notes": format!("https://nvd.nist.gov/vuln/detail/{}", k.cve_id),
                "cwes": ["CWE-787"],
            })
        })
        .collect();
    json!({
        "title": "CISA Catalog of Known Exploited Vulnerabilities",
        "catalogVersion": catalog_version,
        "dateReleased": "2026-12-01T15:00:00.000Z",
        "count": entries.len(),
        "vulnerabilities": items,
    })
    .to_string()
}

/// Builders of records for tests.
pub mod build {
    use crate::{
        Bound, Configuration, Cpe, CpeMatch, Cve, Cvss, CvssVersion, KevEntry, Node, Operator,
    };

    /// A vulnerable match of `criteria` (a CPE 2.3 string) with optional bounds written
    /// as `">=1.0"`, `">1.0"`, `"<=2.0"`, `"<2.0"`.
    pub fn vulnerable(criteria: &str, bounds: &[&str]) -> CpeMatch {
        matcher(true, criteria, bounds)
    }

    /// A platform condition (`vulnerable: false`).
    pub fn platform(criteria: &str) -> CpeMatch {
        matcher(false, criteria, &[])
    }

    fn matcher(vulnerable: bool, criteria: &str, bounds: &[&str]) -> CpeMatch {
        let mut m = CpeMatch {
            vulnerable,
            cpe: Cpe::parse(criteria).unwrap_or_else(|e| panic!("{criteria}: {e}")),
            start: None,
            end: None,
        };
        for b in bounds {
            let (slot, inclusive, v) = if let Some(v) = b.strip_prefix(">=") {
                (&mut m.start, true, v)
            } else if let Some(v) = b.strip_prefix('>') {
                (&mut m.start, false, v)
            } else if let Some(v) = b.strip_prefix("<=") {
                (&mut m.end, true, v)
            } else if let Some(v) = b.strip_prefix('<') {
                (&mut m.end, false, v)
            } else {
                panic!("bound {b:?}")
            };
            *slot = Some(Bound {
                version: v.to_owned(),
                inclusive,
            });
        }
        m
    }

    /// One OR node of matches.
    pub fn any_of(matches: Vec<CpeMatch>) -> Configuration {
        Configuration {
            operator: Operator::Or,
            negate: false,
            nodes: vec![Node {
                operator: Operator::Or,
                negate: false,
                matches,
            }],
        }
    }

    /// "`app` running on `platform`": an AND of two OR nodes.
    pub fn running_on(app: Vec<CpeMatch>, platform: Vec<CpeMatch>) -> Configuration {
        let node = |matches| Node {
            operator: Operator::Or,
            negate: false,
            matches,
        };
        Configuration {
            operator: Operator::And,
            negate: false,
            nodes: vec![node(app), node(platform)],
        }
    }

    pub fn cve(
        id: &str,
        last_modified: &str,
        score: f32,
        configurations: Vec<Configuration>,
    ) -> Cve {
        Cve {
            id: id.to_owned(),
            published: "2023-07-20T03:15:10.170".into(),
            last_modified: last_modified.to_owned(),
            status: "Analyzed".into(),
            summary: format!("A test vulnerability {id}."),
            cvss: Some(Cvss {
                version: CvssVersion::V31,
                score_tenths: (score * 10.0).round() as u8,
                vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".into(),
            }),
            configurations,
        }
    }

    pub fn kev(id: &str) -> KevEntry {
        KevEntry {
            cve_id: id.to_owned(),
            vendor_project: "OpenBSD".into(),
            product: "OpenSSH".into(),
            name: format!("Test vulnerability {id}"),
            date_added: "2024-07-01".into(),
            due_date: "2024-07-22".into(),
            required_action: "Apply mitigations per vendor instructions.".into(),
            ransomware: false,
        }
    }
}
