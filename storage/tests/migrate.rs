//! A store written by the previous release opens and migrates in place, keeping
//! everything it held (its own export before and after), and works on.

mod common;
use aperture_storage::*;
use common::*;
use std::path::{Path, PathBuf};

fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-2.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("tar runs");
    assert!(status.success(), "unpacking {}", archive.display());
    let path = dir.path().join("store");
    (dir, path)
}

fn expected(tenant: &str) -> Vec<String> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/store-2-{tenant}.jsonl"));
    std::fs::read_to_string(file)
        .expect("fixture export")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn export(store: &Store, tenant: &str) -> Vec<String> {
    let mut out = Vec::new();
    store
        .export_tenant(&TenantId::new(tenant).expect("id"), &mut out)
        .expect("exports");
    String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The export of a migrated store equals the old release's, but for the header's schema
/// and the SIEM log's steps, rebuilt at open from the findings (one per transition).
fn assert_same_as_before(store: &Store) {
    for tenant in ["acme", "beta"] {
        let (want, all) = (expected(tenant), export(store, tenant));
        let (steps, got): (Vec<String>, Vec<String>) = all
            .into_iter()
            .partition(|l| l.starts_with(r#"{"type":"siem_step""#));
        let transitions: usize = got
            .iter()
            .filter(|l| l.starts_with(r#"{"type":"finding""#))
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json");
                v["transitions"].as_array().map_or(0, Vec::len)
            })
            .sum();
        assert_eq!(
            steps.len(),
            transitions,
            "{tenant}: a logged step per transition"
        );
        assert_eq!(
            got.first().map(String::as_str),
            Some(
                format!(r#"{{"type":"export","schema":"{STORE_SCHEMA}","tenant":"{tenant}"}}"#)
                    .as_str()
            )
        );
        assert_eq!(want.len(), got.len(), "{tenant}: line count");
        for (i, (w, g)) in want.iter().zip(&got).enumerate().skip(1) {
            assert_eq!(w, g, "{tenant}: line {}", i + 1);
        }
    }
}

#[test]
fn a_store_of_the_previous_release_migrates_in_place_and_keeps_everything() {
    let (_dir, path) = fixture_copy();
    let store = Store::open(&path).expect("opens and migrates");
    assert_same_as_before(&store);
    let t = TenantId::new("acme").expect("id");
    // The indexes were rebuilt: every filter finds what a full walk finds.
    let every = walk(&store, &t, &AssetFilter::default());
    assert!(every.len() > 40, "{}", every.len());
    for filter in [
        AssetFilter {
            product: Some("apache httpd".into()),
            ..Default::default()
        },
        AssetFilter {
            port: Some(443),
            ..Default::default()
        },
        AssetFilter {
            status: Some(AssetStatus::Absent),
            ..Default::default()
        },
        AssetFilter {
            risk: Some("cache".into()),
            ..Default::default()
        },
    ] {
        let by_index = walk(&store, &t, &filter);
        let by_hand: Vec<Asset> = every
            .iter()
            .filter(|a| {
                filter.port.is_none_or(|p| a.key.port() == Some(p))
                    && filter.status.is_none_or(|s| a.status == s)
                    && [("product", &filter.product), ("risk", &filter.risk)]
                        .iter()
                        .all(|(f, v)| {
                            v.as_ref().is_none_or(|v| {
                                a.fact(f).is_some_and(|x| x.eq_ignore_ascii_case(v))
                            })
                        })
            })
            .cloned()
            .collect();
        assert!(!by_index.is_empty(), "{filter:?}");
        assert_eq!(by_index, by_hand, "{filter:?}");
    }
    // The scan the old release left half done finishes here, and sweeps.
    let applied = store
        .apply(&t, &batch("s3", 1, T0 + 4 * HOUR, vec![]))
        .expect("second shard");
    assert!(applied.completed_scan);
    assert_eq!(
        store
            .asset(&t, &service("198.18.0.7", 443))
            .expect("asset")
            .status,
        AssetStatus::Present,
        "s3 did not see 198.18.0.7:443, but s2 did after s3 began"
    );
    let coverage = Coverage {
        targets: vec!["198.18.0.0/24".parse().expect("net")],
        ports: vec![(443, 443)],
        probes: ["syn".to_string()].into(),
        domains: vec![],
        udp_ports: Vec::new(),
    };
    store
        .begin_scan(&t, "s4", coverage, 1, None, T0 + 5 * HOUR)
        .expect("begins");
    let applied = store
        .apply(
            &t,
            &batch("s4", 0, T0 + 5 * HOUR, vec![closed("198.18.0.7", 443)]),
        )
        .expect("applies");
    assert!(applied.completed_scan);
    assert_eq!(
        store
            .asset(&t, &service("198.18.0.7", 443))
            .expect("asset")
            .status,
        AssetStatus::Absent,
        "s4 covered 198.18.0.7:443 and nobody saw it since s4 began"
    );
    drop(store);
    let store = Store::open(&path).expect("reopens");
    assert_eq!(
        store.scan(&t, "s3").expect("scan").state,
        ScanState::Completed
    );
}

#[test]
fn a_migration_cut_short_runs_again_to_the_same_result() {
    let (_dir, path) = fixture_copy();
    {
        let store = Store::open(&path).expect("migrates");
        // As if the process died before the last step: the schema still says migrating.
        store
            .overwrite_schema_for_test("aperture-store-2-to-3")
            .expect("writes");
    }
    let store = Store::open(&path).expect("migrates again");
    assert_same_as_before(&store);
}

fn walk(store: &Store, t: &TenantId, f: &AssetFilter) -> Vec<Asset> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = store
            .list_assets(t, f, cursor.as_deref(), 7)
            .expect("lists");
        out.extend(p.items);
        match p.next {
            Some(n) => cursor = Some(n),
            None => return out,
        }
    }
}
