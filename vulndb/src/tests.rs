use crate::feed::build::{any_of, cve, kev, platform, running_on, vulnerable};
use crate::feed::{kev_json, nvd_json};
use crate::matching::{match_cve, Service};
use crate::*;
use serde_json::{json, Value};

const SSH_ANY: &str = "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*";
const TS: &str = "2026-12-01T00:00:00.000";

fn ssh(version: &str) -> Service {
    Service::from_facts(
        "cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*",
        Some(version),
        None,
    )
    .expect("service")
}

fn regresshion() -> Cve {
    // CVE-2024-6387's shape: 8.5p1 <= v < 9.8p1 (and old versions < 4.4p1).
    cve(
        "CVE-2024-6387",
        "2024-09-10T00:00:00.000",
        8.1,
        vec![any_of(vec![
            vulnerable(SSH_ANY, &["<4.4p1"]),
            vulnerable(SSH_ANY, &[">=8.5p1", "<9.8p1"]),
        ])],
    )
}

#[test]
fn a_written_feed_parses_back_to_the_same_records() {
    let mut with_v2 = cve("CVE-2010-0001", "2011-01-01T00:00:00", 5.0, vec![]);
    if let Some(c) = with_v2.cvss.as_mut() {
        c.version = CvssVersion::V2;
    }
    let cves = vec![
        regresshion(),
        with_v2,
        cve(
            "CVE-2023-99999",
            "2023-12-01T10:00:00.123",
            9.8,
            vec![running_on(
                vec![vulnerable(
                    r"cpe:2.3:a:nodejs:node\.js:*:*:*:*:*:*:*:*",
                    &[">18.0.0", "<=18.2.0"],
                )],
                vec![platform("cpe:2.3:o:microsoft:windows:-:*:*:*:*:*:*:*")],
            )],
        ),
    ];
    let Feed::Nvd {
        cves: back,
        timestamp,
    } = parse(nvd_json(&cves, TS).as_bytes()).expect("nvd")
    else {
        panic!("not detected as NVD")
    };
    assert_eq!(timestamp.as_deref(), Some(TS));
    assert_eq!(back, cves);
    let entries = vec![kev("CVE-2024-6387"), kev("CVE-2023-38408")];
    let Feed::Kev {
        entries: back,
        catalog_version,
    } = parse(kev_json(&entries, "2026.12.01").as_bytes()).expect("kev")
    else {
        panic!("not detected as KEV")
    };
    assert_eq!(catalog_version, "2026.12.01");
    assert_eq!(back, entries);
}

fn nvd_with(item: Value) -> String {
    json!({"resultsPerPage": 1, "startIndex": 0, "totalResults": 1, "format": "NVD_CVE",
           "version": "2.0", "timestamp": TS, "vulnerabilities": [item]})
    .to_string()
}

#[test]
fn tells_what_is_not_a_feed() {
    assert!(matches!(
        parse(b"{\"format\": "),
        Err(FeedError::NotJson(_))
    ));
    assert!(matches!(parse(b"[1, 2]"), Err(FeedError::UnknownFormat(_))));
    let gz = parse(&[0x1f, 0x8b, 8, 0]).expect_err("gzip");
    assert!(gz.to_string().contains("gunzip"), "{gz}");
    assert!(matches!(
        parse(b"{\"a\": 1}"),
        Err(FeedError::UnknownFormat(_))
    ));
    let old = json!({"CVE_data_type": "CVE", "format": "NVD_CVE", "version": "1.1", "vulnerabilities": []});
    let e = parse(old.to_string().as_bytes()).expect_err("1.1");
    assert!(e.to_string().contains("only 2.0"), "{e}");
}

#[test]
fn a_bad_record_is_named_by_position_and_id() {
    let good = feed::nvd_item(&regresshion());
    let mut bad_cpe = good.clone();
    bad_cpe["cve"]["id"] = json!("CVE-2024-0002");
    bad_cpe["cve"]["configurations"][0]["nodes"][0]["cpeMatch"][1]["criteria"] = json!("openssh");
    let text = json!({"resultsPerPage": 2, "format": "NVD_CVE", "version": "2.0",
                      "vulnerabilities": [good, bad_cpe]})
    .to_string();
    match parse(text.as_bytes()) {
        Err(e @ FeedError::Record { index: 1, .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("CVE-2024-0002") && msg.contains("cpeMatch 1"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A record of the wrong shape: named by position.
    let mut wrong = feed::nvd_item(&regresshion());
    wrong["cve"]["lastModified"] = json!(17);
    match parse(nvd_with(wrong).as_bytes()) {
        Err(FeedError::Record {
            index: 0, detail, ..
        }) => {
            assert!(detail.contains("invalid type"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    for (field, value, says) in [
        ("id", json!("CVE-24-1"), "not a CVE id"),
        ("lastModified", json!("yesterday"), "not a timestamp"),
    ] {
        let mut item = feed::nvd_item(&regresshion());
        item["cve"][field] = value;
        let e = parse(nvd_with(item).as_bytes()).expect_err(field);
        assert!(e.to_string().contains(says), "{e}");
    }
    let mut score = feed::nvd_item(&regresshion());
    score["cve"]["metrics"]["cvssMetricV31"][0]["cvssData"]["baseScore"] = json!(11.0);
    assert!(parse(nvd_with(score).as_bytes()).is_err());
    let mut both = feed::nvd_item(&regresshion());
    both["cve"]["configurations"][0]["nodes"][0]["cpeMatch"][0]["versionEndIncluding"] =
        json!("4.4");
    let e = parse(nvd_with(both).as_bytes()).expect_err("both ends");
    assert!(e.to_string().contains("both versionEnd"), "{e}");
}

#[test]
fn a_truncated_file_is_refused_and_a_shortened_whole_one_is_a_subset() {
    let text = nvd_json(&[regresshion()], TS);
    let cut = &text.as_bytes()[..text.len() / 2];
    assert!(matches!(
        parse(cut),
        Err(FeedError::NotJson(_)) | Err(FeedError::Header(_))
    ));
    // Whole JSON with fewer records than resultsPerPage (a file someone trimmed): the
    // records it holds are taken.
    let mut v: Value = serde_json::from_str(&text).expect("json");
    v["resultsPerPage"] = json!(2);
    assert_eq!(
        parse(v.to_string().as_bytes()).map(|f| f.len()).ok(),
        Some(1)
    );
    let mut k: Value = serde_json::from_str(&kev_json(&[kev("CVE-2024-6387")], "1")).expect("json");
    k["count"] = json!(1300);
    assert_eq!(
        parse(k.to_string().as_bytes()).map(|f| f.len()).ok(),
        Some(1)
    );
    k["vulnerabilities"][0]["dateAdded"] = json!("soon");
    let e = parse(k.to_string().as_bytes()).expect_err("date");
    assert!(e.to_string().contains("record 0 (CVE-2024-6387)"), "{e}");
}

#[test]
fn prefers_cvss_4_then_3_1_then_3_0_then_2_and_nvd_own_score() {
    let mut item = feed::nvd_item(&regresshion());
    let metric = |v: &str, score: f64, kind: &str| {
        json!([{"source": "x", "type": kind, "cvssData": {"version": v, "baseScore": score,
                 "vectorString": format!("CVSS:{v}/AV:N")}}])
    };
    item["cve"]["metrics"] = json!({
        "cvssMetricV2": metric("2.0", 10.0, "Primary"),
        "cvssMetricV30": metric("3.0", 7.5, "Primary"),
    });
    let Ok(Feed::Nvd { cves, .. }) = parse(nvd_with(item.clone()).as_bytes()) else {
        panic!("parse")
    };
    let s = cves[0].cvss.clone().expect("cvss");
    assert_eq!(
        (s.version, s.score_text()),
        (CvssVersion::V30, "7.5".to_owned())
    );
    let mut two = metric("3.1", 5.3, "Secondary");
    two.as_array_mut()
        .expect("array")
        .push(metric("3.1", 9.1, "Primary")[0].clone());
    item["cve"]["metrics"]["cvssMetricV31"] = two;
    item["cve"]["metrics"]["cvssMetricV40"] = metric("4.0", 8.7, "Secondary");
    let Ok(Feed::Nvd { cves, .. }) = parse(nvd_with(item).as_bytes()) else {
        panic!("parse")
    };
    let s = cves[0].cvss.clone().expect("cvss");
    assert_eq!((s.version, s.score_tenths), (CvssVersion::V40, 87));
}

#[test]
fn matches_version_ranges() {
    let c = regresshion();
    for (v, hit) in [
        ("9.2p1", true),
        ("8.5p1", true),
        ("8.4p1", false),
        ("9.8p1", false),
        ("9.9p1", false),
        ("4.3p2", true),
        ("4.4p1", false),
    ] {
        assert_eq!(match_cve(&c, &ssh(v)).is_some(), hit, "{v}");
    }
    let d = match_cve(&c, &ssh("9.2p1")).expect("match");
    assert_eq!(d.range, ">= 8.5p1, < 9.8p1");
    assert!(!d.platform_unchecked);
}

#[test]
fn matches_exact_versions_with_wildcards() {
    let exact = cve(
        "CVE-2023-0001",
        TS,
        5.0,
        vec![any_of(vec![
            vulnerable("cpe:2.3:a:openbsd:openssh:9.3:p1:*:*:*:*:*:*", &[]),
            vulnerable("cpe:2.3:a:openbsd:openssh:9.1:*:*:*:*:*:*:*", &[]),
            vulnerable("cpe:2.3:a:openbsd:openssh:8.0:-:*:*:*:*:*:*", &[]),
        ])],
    );
    for (v, hit) in [
        ("9.3p1", true),
        ("9.3p2", false),
        ("9.3", false),
        ("9.1", true),
        ("9.1p1", true),
        ("9.10p1", false),
        ("8.0", true),
        ("8.0p1", false),
    ] {
        assert_eq!(match_cve(&exact, &ssh(v)).is_some(), hit, "{v}");
    }
    let openssl = Service::from_facts("cpe:2.3:a:openssl:openssl:1.1.1k:*:*:*:*:*:*:*", None, None)
        .expect("service from cpe");
    let heartbleed_like = cve(
        "CVE-2023-0002",
        TS,
        7.5,
        vec![any_of(vec![vulnerable(
            "cpe:2.3:a:openssl:openssl:*:*:*:*:*:*:*:*",
            &[">=1.1.1", "<1.1.1l"],
        )])],
    );
    assert!(match_cve(&heartbleed_like, &openssl).is_some());
    let any = cve(
        "CVE-2023-0003",
        TS,
        5.0,
        vec![any_of(vec![vulnerable(SSH_ANY, &[])])],
    );
    assert!(match_cve(&any, &ssh("1.0")).is_some());
    let na = cve(
        "CVE-2023-0004",
        TS,
        5.0,
        vec![any_of(vec![vulnerable(
            "cpe:2.3:a:openbsd:openssh:-:*:*:*:*:*:*:*",
            &[],
        )])],
    );
    assert!(match_cve(&na, &ssh("9.2p1")).is_none());
    let other = cve(
        "CVE-2023-0005",
        TS,
        5.0,
        vec![any_of(vec![vulnerable(
            "cpe:2.3:a:openbsd:opensmtpd:*:*:*:*:*:*:*:*",
            &[],
        )])],
    );
    assert!(match_cve(&other, &ssh("9.2p1")).is_none());
}

#[test]
fn platform_conditions_lower_confidence_and_negation_excludes() {
    let on_windows = cve(
        "CVE-2023-0010",
        TS,
        7.0,
        vec![running_on(
            vec![vulnerable(SSH_ANY, &["<9.5"])],
            vec![platform("cpe:2.3:o:microsoft:windows:-:*:*:*:*:*:*:*")],
        )],
    );
    let d = match_cve(&on_windows, &ssh("9.2p1")).expect("unknown platform still matches");
    assert!(d.platform_unchecked);
    assert!(match_cve(&on_windows, &ssh("9.6p1")).is_none());
    // The service's product as a platform only: not vulnerable itself.
    let as_platform = cve(
        "CVE-2023-0011",
        TS,
        7.0,
        vec![running_on(
            vec![vulnerable("cpe:2.3:a:example:plugin:*:*:*:*:*:*:*:*", &[])],
            vec![platform(SSH_ANY)],
        )],
    );
    assert!(match_cve(&as_platform, &ssh("9.2p1")).is_none());
    // Every version below 9.5 except 9.3p1: an AND with a negated node.
    let mut except = any_of(vec![vulnerable(SSH_ANY, &["<9.5"])]);
    except.operator = Operator::And;
    except.nodes.push(Node {
        operator: Operator::Or,
        negate: true,
        matches: vec![vulnerable(
            "cpe:2.3:a:openbsd:openssh:9.3:p1:*:*:*:*:*:*",
            &[],
        )],
    });
    let except = cve("CVE-2023-0012", TS, 7.0, vec![except]);
    assert!(match_cve(&except, &ssh("9.2p1")).is_some_and(|d| !d.platform_unchecked));
    assert!(match_cve(&except, &ssh("9.3p1")).is_none());
    let mut rejected = regresshion();
    rejected.status = "Rejected".into();
    assert!(match_cve(&rejected, &ssh("9.2p1")).is_none());
}

#[test]
fn the_index_finds_by_product_and_keeps_the_newest() {
    let mut idx = Index::new();
    assert!(idx.insert(regresshion()));
    let mut older = regresshion();
    older.last_modified = "2024-07-01T00:00:00.000".into();
    older.configurations.clear();
    assert!(
        !idx.insert(older.clone()),
        "an older record replaces nothing"
    );
    assert!(!idx.insert(regresshion()), "the same record is a no-op");
    assert_eq!(idx.matches(&ssh("9.2p1")).len(), 1);
    let mut newer = older;
    newer.last_modified = "2025-01-01T00:00:00.000".into();
    assert!(idx.insert(newer));
    assert_eq!(idx.len(), 1);
    assert!(
        idx.matches(&ssh("9.2p1")).is_empty(),
        "the newer record names no product"
    );
    assert_eq!(idx.candidates("openbsd:openssh").count(), 0);
}

#[test]
fn assessment_scores_raises_for_kev_and_warns_of_distributions() {
    let low = cve(
        "CVE-2023-1000",
        TS,
        3.9,
        vec![any_of(vec![vulnerable(SSH_ANY, &[])])],
    );
    let high = regresshion();
    let svc = ssh("9.2p1");
    let m = |c: &Cve| (c.clone(), match_cve(c, &svc).expect("match"));
    let (a, b) = (m(&low), m(&high));
    let pairs = vec![(&a.0, a.1.clone()), (&b.0, b.1.clone())];
    let none = |_: &str| None;
    let r = assess(&svc, &pairs, none).expect("assessment");
    assert_eq!(r.severity, Severity::High);
    assert_eq!(r.cves, vec!["CVE-2024-6387", "CVE-2023-1000"]);
    assert_eq!(
        r.top.as_ref().map(|(id, s)| (id.as_str(), s.score_tenths)),
        Some(("CVE-2024-6387", 81))
    );
    assert_eq!(r.confidence, Confidence::High);
    let entry = kev("CVE-2024-6387");
    let r = assess(&svc, &pairs, |id| (id == "CVE-2024-6387").then_some(&entry)).expect("kev");
    assert_eq!(
        (r.severity, r.kev.clone()),
        (Severity::Critical, vec!["CVE-2024-6387".to_owned()])
    );
    let only_low = vec![(&a.0, a.1.clone())];
    assert_eq!(
        assess(&svc, &only_low, none).map(|r| r.severity),
        Some(Severity::Low)
    );
    for (t, s) in [
        (90, Severity::Critical),
        (89, Severity::High),
        (70, Severity::High),
        (40, Severity::Medium),
        (39, Severity::Low),
    ] {
        assert_eq!(Severity::from_score(t), s);
    }
    let debian = Service::from_facts(
        "cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*",
        Some("9.2p1"),
        Some("Debian"),
    )
    .expect("service");
    let r = assess(&debian, &pairs, none).expect("assessment");
    assert_eq!(r.confidence, Confidence::Lowered);
    assert!(
        r.caveats[0].contains("debian may have backported"),
        "{:?}",
        r.caveats
    );
    assert!(assess(&svc, &[], none).is_none());
}

#[test]
fn services_without_a_version_are_not_judged() {
    assert!(Service::from_facts(SSH_ANY, None, None).is_none());
    assert!(Service::from_facts(SSH_ANY, Some("unknown"), None).is_none());
    assert!(Service::from_facts("not a cpe", Some("1.0"), None).is_none());
    let s = Service::from_facts(
        "cpe:2.3:a:apache:http_server:2.4.62:*:*:*:*:*:*:*",
        Some("2.4.62-1~deb12u2"),
        None,
    )
    .expect("service");
    assert_eq!(
        (s.version.as_str(), s.distribution.as_deref()),
        ("2.4.62", Some("debian"))
    );
}
