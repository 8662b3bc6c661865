//! `aperture admin vulndb` end to end with the real binary: feeds in the NVD CVE 2.0 and
//! CISA KEV formats, written by the test, imported into a fresh data directory; exit
//! codes and messages for bad files, idempotent re-imports.

mod common;

use aperture_vulndb::feed::build::{any_of, cve, kev, vulnerable};
use aperture_vulndb::feed::{kev_json, nvd_json};
use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn admin(data: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("admin")
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("APERTURE_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("aperture admin runs")
}

fn status(data: &Path) -> String {
    admin_cli(data, &["vulndb", "status"]).0
}

fn refused(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "exit 2 expected; stderr: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in {err:?}");
    }
}

#[test]
fn imports_feeds_and_refuses_bad_files_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let ssh = "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*";
    let cves = vec![
        cve(
            "CVE-2023-38408",
            "2024-01-01T00:00:00.000",
            9.8,
            vec![any_of(vec![vulnerable(ssh, &["<9.3p2"])])],
        ),
        cve(
            "CVE-2024-6387",
            "2024-09-10T00:00:00.000",
            8.1,
            vec![any_of(vec![vulnerable(ssh, &[">=8.5p1", "<9.8p1"])])],
        ),
    ];
    let nvd = dir.path().join("nvdcve-2.0-2024.json");
    std::fs::write(&nvd, nvd_json(&cves, "2024-09-11T00:00:00")).expect("write");
    let kev_file = dir.path().join("known_exploited_vulnerabilities.json");
    std::fs::write(&kev_file, kev_json(&[kev("CVE-2024-6387")], "2024.09.11")).expect("write");
    let mut broken: serde_json::Value =
        serde_json::from_str(&nvd_json(&cves, "2024-09-11T00:00:00")).expect("json");
    broken["vulnerabilities"][1]["cve"]["configurations"][0]["nodes"][0]["operator"] =
        serde_json::json!("XOR");
    let bad = dir.path().join("nvdcve-2.0-2025.json");
    std::fs::write(&bad, broken.to_string()).expect("write");
    let gz = dir.path().join("nvdcve-2.0-2023.json.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0]).expect("write");
    let p = |x: &Path| x.to_str().expect("utf-8 path").to_owned();

    // The good file first, then a bad one: nothing at all is stored.
    let out = admin(&data, &["vulndb", "import", &p(&nvd), &p(&bad)]);
    refused(
        &out,
        &[
            "nvdcve-2.0-2025.json",
            "record 1 (CVE-2024-6387)",
            "XOR",
            "nothing was imported",
        ],
    );
    assert!(status(&data).contains("cves\t0\n"), "{}", status(&data));
    refused(
        &admin(&data, &["vulndb", "import", &p(&gz)]),
        &["json.gz", "gunzip"],
    );
    refused(
        &admin(&data, &["vulndb", "import", "/nonexistent/nvd.json"]),
        &["/nonexistent/nvd.json", "cannot read"],
    );
    refused(&admin(&data, &["vulndb", "import"]), &["FILE"]);

    let out = admin(&data, &["vulndb", "import", &p(&nvd), &p(&kev_file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("nvdcve-2.0-2024.json: 2 CVE records"),
        "{text}"
    );
    assert!(
        text.contains("known_exploited_vulnerabilities.json: 1 KEV entries"),
        "{text}"
    );
    assert!(
        text.contains(
            "CVEs: 2 added, 0 updated, 0 unchanged; KEV entries: 1 added, 0 updated, 0 unchanged"
        ),
        "{text}"
    );
    let s = status(&data);
    assert!(
        s.contains("cves\t2\n") && s.contains("kev_entries\t1\n"),
        "{s}"
    );
    assert!(s.contains("kev_catalog_version\t2024.09.11"), "{s}");

    // Again: nothing changes.
    let out = admin(&data, &["vulndb", "import", &p(&nvd), &p(&kev_file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "CVEs: 0 added, 0 updated, 2 unchanged; KEV entries: 0 added, 0 updated, 1 unchanged"
        ),
        "{}",
        stdout(&out)
    );
    assert!(status(&data).contains("cves\t2\n"));
}
