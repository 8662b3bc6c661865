//! Known-vulnerable versions over a real store: feeds in the real NVD 2.0 and KEV
//! formats are imported, services scanned with a CPE and version get a
//! `vulnerable-version` finding with the CVEs, CVSS and KEV flag, a rescan at a fixed
//! version closes it verified, new data re-evaluates exactly the services it concerns,
//! and a bad file stores nothing.

mod common;

use aperture_fingerprints::report::ServiceReport;
use aperture_storage::policy::*;
use aperture_storage::vulns::VulnDbStatus;
use aperture_storage::*;
use aperture_vulndb::feed::build::{any_of, cve, kev, vulnerable};
use aperture_vulndb::feed::{kev_json, nvd_json};
use aperture_vulndb::Cve;
use common::*;

const SSH_ANY: &str = "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*";

fn openssh(version: &str, os: Option<&str>) -> ServiceReport {
    let (base, update) = match version.split_once('p') {
        Some((b, u)) => (b.to_owned(), format!("p{u}")),
        None => (version.to_owned(), "*".to_owned()),
    };
    ServiceReport {
        cpe: Some(format!(
            "cpe:2.3:a:openbsd:openssh:{base}:{update}:*:*:*:*:*:*"
        )),
        vendor: Some("OpenBSD".into()),
        os: os.map(str::to_owned),
        ..ssh("OpenSSH", version)
    }
}

fn feed_2023() -> Vec<Cve> {
    vec![
        // CVE-2023-38408's shape: every version before 9.3p2.
        cve(
            "CVE-2023-38408",
            "2024-01-01T00:00:00.000",
            9.8,
            vec![any_of(vec![vulnerable(SSH_ANY, &["<9.3p2"])])],
        ),
        cve(
            "CVE-2023-99001",
            "2024-01-01T00:00:00.000",
            5.3,
            vec![any_of(vec![vulnerable(
                "cpe:2.3:a:f5:nginx:*:*:*:*:*:*:*:*",
                &["<1.25.0"],
            )])],
        ),
    ]
}

fn feed_2024() -> Vec<Cve> {
    vec![cve(
        "CVE-2024-6387",
        "2024-09-10T00:00:00.000",
        8.1,
        vec![any_of(vec![vulnerable(SSH_ANY, &[">=8.5p1", "<9.8p1"])])],
    )]
}

fn files(list: &[(&str, String)]) -> Vec<(String, std::io::Result<Vec<u8>>)> {
    list.iter()
        .map(|(n, t)| (n.to_string(), Ok(t.as_bytes().to_vec())))
        .collect()
}

fn vuln_finding(store: &Store, t: &TenantId, key: &AssetKey) -> Option<Finding> {
    store
        .findings_of(t, key)
        .expect("findings")
        .into_iter()
        .find(|f| f.rule == Rule::VulnerableVersion)
}

#[test]
fn imported_cves_make_findings_that_follow_versions_and_data() {
    let (_dir, store, t) = fresh();
    let import = store
        .import_vulndb(
            files(&[
                (
                    "nvdcve-2.0-2023.json",
                    nvd_json(&feed_2023(), "2024-01-02T00:00:00"),
                ),
                (
                    "nvdcve-2.0-2024.json",
                    nvd_json(&feed_2024(), "2024-09-11T00:00:00"),
                ),
                (
                    "known_exploited_vulnerabilities.json",
                    kev_json(&[kev("CVE-2024-6387")], "2024.09.11"),
                ),
            ]),
            T0,
        )
        .expect("imports");
    assert_eq!(
        (import.cves_added, import.cves_updated, import.kev_added),
        (3, 0, 1)
    );
    assert_eq!(
        import
            .files
            .iter()
            .map(|f| f.format.as_str())
            .collect::<Vec<_>>(),
        ["nvd", "nvd", "kev"]
    );
    assert_eq!(import.tenants_queued, 0, "no service of these products yet");
    let status = store.vulndb_status().expect("status");
    assert_eq!(
        (status.cves, status.kev_entries, status.interrupted),
        (3, 1, false)
    );

    let old = service("198.18.0.7", 22);
    let mid = service("198.18.0.8", 22);
    let debian = service("198.18.0.9", 22);
    let web80 = service("198.18.0.7", 80);
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![
            port("198.18.0.7", 22, Some(openssh("9.2p1", None))),
            port("198.18.0.8", 22, Some(openssh("9.5p1", None))),
            port("198.18.0.9", 22, Some(openssh("9.2p1", Some("Debian")))),
            port("198.18.0.7", 80, Some(web("nginx"))),
        ],
    );
    store.run_policy(&t, T0).expect("policy");

    let f = vuln_finding(&store, &t, &old).expect("9.2p1 is vulnerable");
    assert_eq!(f.state, FindingState::Open);
    assert_eq!(f.severity, Severity::Critical, "CVSS 9.8");
    assert_eq!(f.evidence["cves"], "CVE-2023-38408, CVE-2024-6387");
    assert_eq!(f.evidence["cvss"], "9.8");
    assert_eq!(f.evidence["cvss_version"], "3.1");
    assert_eq!(f.evidence["top_cve"], "CVE-2023-38408");
    assert_eq!(f.evidence["kev"], "true");
    assert_eq!(f.evidence["kev_cves"], "CVE-2024-6387");
    assert_eq!(f.evidence["confidence"], "high");
    assert!(
        f.title.contains("CVE-2023-38408") && f.title.contains("known exploited"),
        "{}",
        f.title
    );

    let f = vuln_finding(&store, &t, &mid).expect("9.5p1 is in regreSSHion's range");
    assert_eq!(f.evidence["cves"], "CVE-2024-6387");
    assert_eq!(f.evidence["cvss"], "8.1");
    assert_eq!(
        f.severity,
        Severity::Critical,
        "high (8.1), raised one step by KEV"
    );

    let f = vuln_finding(&store, &t, &debian).expect("Debian's 9.2p1 matches upstream");
    assert_eq!(f.evidence["confidence"], "lowered");
    assert!(
        f.evidence["caveat"].contains("debian may have backported the fix"),
        "{:?}",
        f.evidence
    );
    assert!(
        vuln_finding(&store, &t, &web80).is_none(),
        "nginx without a version is not judged"
    );

    // The service is upgraded: the rescan closes its finding, verified.
    scan_once(
        &store,
        &t,
        "s2",
        T0 + HOUR,
        vec![
            port("198.18.0.7", 22, Some(openssh("9.8p1", None))),
            port("198.18.0.8", 22, Some(openssh("9.5p1", None))),
            port("198.18.0.9", 22, Some(openssh("9.2p1", Some("Debian")))),
            port("198.18.0.7", 80, Some(web("nginx"))),
        ],
    );
    store.run_policy(&t, T0 + HOUR).expect("policy");
    let f = vuln_finding(&store, &t, &old).expect("finding kept");
    assert_eq!(f.state, FindingState::ClosedVerified, "{:?}", f.transitions);
    assert_eq!(
        vuln_finding(&store, &t, &mid).map(|f| f.state),
        Some(FindingState::Open)
    );

    // Re-importing the same feeds, or an older record, changes nothing and queues nothing.
    let again = store
        .import_vulndb(
            files(&[
                (
                    "nvdcve-2.0-2024.json",
                    nvd_json(&feed_2024(), "2024-09-11T00:00:00"),
                ),
                (
                    "known_exploited_vulnerabilities.json",
                    kev_json(&[kev("CVE-2024-6387")], "2024.09.11"),
                ),
            ]),
            T0 + 2 * HOUR,
        )
        .expect("re-imports");
    assert_eq!(
        (again.cves_added, again.cves_updated, again.cves_unchanged),
        (0, 0, 1)
    );
    assert_eq!(
        (again.kev_added, again.kev_updated, again.kev_unchanged),
        (0, 0, 1)
    );
    assert_eq!((again.products_changed, again.tenants_queued), (0, 0));
    let mut older = feed_2024();
    older[0].last_modified = "2024-07-01T00:00:00.000".into();
    older[0].configurations.clear();
    let stale = store
        .import_vulndb(
            files(&[("old.json", nvd_json(&older, "2024-07-02T00:00:00"))]),
            T0 + 2 * HOUR,
        )
        .expect("imports");
    assert_eq!(stale.cves_unchanged, 1);
    assert!(store.queued_policy_work(&t).expect("queue").is_empty());

    // A newer record of regreSSHion that also covers 9.8p1: only the OpenSSH services are
    // re-evaluated, and the upgraded one is vulnerable again.
    let mut newer = feed_2024();
    newer[0].last_modified = "2025-01-01T00:00:00.000".into();
    newer[0].configurations = vec![any_of(vec![vulnerable(SSH_ANY, &[">=8.5p1", "<9.9p1"])])];
    let update = store
        .import_vulndb(
            files(&[(
                "nvdcve-2.0-modified.json",
                nvd_json(&newer, "2025-01-02T00:00:00"),
            )]),
            T0 + 3 * HOUR,
        )
        .expect("imports");
    assert_eq!(
        (
            update.cves_updated,
            update.products_changed,
            update.tenants_queued
        ),
        (1, 1, 1)
    );
    assert_eq!(
        store.queued_policy_work(&t).expect("queue"),
        vec![Reach::CpeProducts {
            products: vec!["openbsd:openssh".into()]
        }]
    );
    let run = store
        .run_queued_policy(&t, T0 + 3 * HOUR)
        .expect("queued policy");
    assert_eq!(
        run.assets_evaluated, 3,
        "the three OpenSSH services, not the web server"
    );
    let f = vuln_finding(&store, &t, &old).expect("finding");
    assert_eq!(f.state, FindingState::Open);
    assert_eq!(f.evidence["cves"], "CVE-2024-6387");
    assert_eq!(store.vulndb_status().expect("status").cves, 3);
}

#[test]
fn a_bad_file_stores_nothing_and_names_the_record() {
    let (_dir, store, _t) = fresh();
    let good = nvd_json(&feed_2023(), "2024-01-02T00:00:00");
    let mut bad: serde_json::Value =
        serde_json::from_str(&nvd_json(&feed_2024(), "x")).expect("json");
    bad["vulnerabilities"][0]["cve"]["configurations"][0]["nodes"][0]["cpeMatch"][0]["criteria"] =
        serde_json::json!("cpe:2.3:a:openbsd");
    let err = store
        .import_vulndb(
            files(&[
                ("good.json", good.clone()),
                ("nvdcve-2.0-2024.json", bad.to_string()),
            ]),
            T0,
        )
        .expect_err("refused");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(
        msg.contains("nvdcve-2.0-2024.json")
            && msg.contains("record 0 (CVE-2024-6387)")
            && msg.contains("nothing was imported"),
        "{msg}"
    );
    assert_eq!(
        store.vulndb_status().expect("status"),
        VulnDbStatus::default()
    );
    let err = store
        .import_vulndb(files(&[("notes.txt", "hello".into())]), T0)
        .expect_err("refused");
    assert!(err.to_string().starts_with("notes.txt: not JSON"), "{err}");
    // The good file alone is taken.
    let ok = store
        .import_vulndb(files(&[("good.json", good)]), T0)
        .expect("imports");
    assert_eq!(ok.cves_added, 2);
}
