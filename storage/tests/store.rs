//! The store against a real sled directory: ingest, diffs, absence rules, queries, schema
//! and transfer.

mod common;

use aperture_storage::transfer::ExportLine;
use aperture_storage::*;
use common::*;
use std::collections::BTreeSet;

#[test]
fn first_ingest_records_assets_links_and_appeared_changes() {
    let (_dir, store, t) = fresh();
    begin(&store, &t, "s1", &["198.18.0.0/24"], &[22, 443], 1);
    let cert = certificate("www.example.test", false);
    let applied = store
        .apply(
            &t,
            &batch(
                "s1",
                0,
                T0,
                vec![
                    port("198.18.0.7", 22, Some(ssh("OpenSSH", "9.2p1"))),
                    port("198.18.0.7", 443, Some(https(&cert))),
                ],
            ),
        )
        .expect("applies");
    assert!(applied.fresh && applied.completed_scan);
    let svc = store
        .asset(&t, &service("198.18.0.7", 22))
        .expect("ssh stored");
    assert_eq!(svc.status, AssetStatus::Present);
    assert_eq!(svc.fact("product"), Some("OpenSSH"));
    assert_eq!(svc.fact("version"), Some("9.2p1"));
    assert_eq!(svc.first_seen, T0);
    assert_eq!(svc.times_seen, 1);
    let host = store.asset(&t, &host("198.18.0.7")).expect("host stored");
    assert_eq!(host.fact("open_ports"), Some("22 443"));
    let cert_key = AssetKey::Certificate(cert.sha256.clone());
    let c = store.asset(&t, &cert_key).expect("certificate stored");
    assert_eq!(c.fact("subject_cn"), Some("www.example.test"));
    assert_eq!(
        store.links(&t, &service("198.18.0.7", 443)).expect("links"),
        vec![cert_key.clone()]
    );
    // certificate → the service presenting it and the names it is for.
    assert_eq!(
        store.links(&t, &cert_key).expect("links"),
        vec![domain("www.example.test"), service("198.18.0.7", 443)]
    );
    let feed = store.changes_since(&t, None, 100).expect("feed");
    let appeared: BTreeSet<String> = feed
        .items
        .iter()
        .filter(|c| c.kind == ChangeKind::Appeared)
        .map(|c| c.asset.to_string())
        .collect();
    assert_eq!(appeared.len(), 4, "{appeared:?}");
    let seqs: Vec<u64> = feed.items.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(store.exposed_now(&t).expect("counts"), (1, 2));
}

#[test]
fn replaying_a_batch_changes_nothing() {
    let (_dir, store, t) = fresh();
    begin(&store, &t, "s1", &["198.18.0.0/24"], &[22], 2);
    let b = batch(
        "s1",
        0,
        T0,
        vec![port("198.18.0.7", 22, Some(ssh("OpenSSH", "9.2p1")))],
    );
    assert!(store.apply(&t, &b).expect("first").fresh);
    let before = store.change_count(&t).expect("count");
    let again = store.apply(&t, &b).expect("replay");
    assert!(!again.fresh);
    let mut second = batch("s1", 1, T0, vec![]);
    second.range = Some((10, 20));
    store.apply(&t, &second).expect("second shard");
    let shards = store.shards(&t, "s1").expect("shards");
    assert_eq!(shards.len(), 2);
    assert_eq!((shards[0].shard, shards[0].observations), (0, 1));
    assert_eq!((shards[1].shard, shards[1].range), (1, Some((10, 20))));
    assert_eq!(store.change_count(&t).expect("count"), before);
    assert_eq!(
        store
            .asset(&t, &service("198.18.0.7", 22))
            .expect("asset")
            .times_seen,
        1
    );
}

#[test]
fn rescans_record_field_changes_and_count_sightings() {
    let (_dir, store, t) = fresh();
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![port("198.18.0.7", 22, Some(ssh("OpenSSH", "9.2p1")))],
    );
    let before = store.change_count(&t).expect("count");
    // Unchanged rescan: sightings, no events.
    scan_once(
        &store,
        &t,
        "s2",
        T0 + HOUR,
        vec![port("198.18.0.7", 22, Some(ssh("OpenSSH", "9.2p1")))],
    );
    assert_eq!(store.change_count(&t).expect("count"), before);
    let a = store.asset(&t, &service("198.18.0.7", 22)).expect("asset");
    assert_eq!(
        (a.times_seen, a.last_seen, a.last_changed),
        (2, T0 + HOUR, T0)
    );
    // A version bump: one event naming the field, old and new.
    scan_once(
        &store,
        &t,
        "s3",
        T0 + 2 * HOUR,
        vec![port("198.18.0.7", 22, Some(ssh("OpenSSH", "9.6p1")))],
    );
    let history = store
        .history(&t, &service("198.18.0.7", 22))
        .expect("history");
    let last = history.last().expect("events");
    let versions: Vec<&Change> = history
        .iter()
        .filter(|c| matches!(&c.kind, ChangeKind::Changed { field, .. } if field == "version"))
        .collect();
    assert_eq!(versions.len(), 1);
    assert_eq!(
        versions[0].kind,
        ChangeKind::Changed {
            field: "version".into(),
            old: Some("9.2p1".into()),
            new: Some("9.6p1".into())
        }
    );
    assert_eq!(last.scan, "s3");
    // The banner changed with the version, as its own field.
    assert!(history.iter().any(|c| matches!(&c.kind,
        ChangeKind::Changed { field, old: Some(o), new: Some(n) }
            if field == "banner" && o.ends_with("9.2p1") && n.ends_with("9.6p1"))));
    assert_eq!(
        history.first().map(|c| &c.kind),
        Some(&ChangeKind::Appeared)
    );
    // A port seen without a grab keeps what the grab knew.
    scan_once(
        &store,
        &t,
        "s4",
        T0 + 3 * HOUR,
        vec![port("198.18.0.7", 22, None)],
    );
    let a = store.asset(&t, &service("198.18.0.7", 22)).expect("asset");
    assert_eq!(a.fact("version"), Some("9.6p1"));
    assert_eq!(a.times_seen, 4);
}

#[test]
fn only_a_completed_scan_that_covered_an_asset_marks_it_gone() {
    let (_dir, store, t) = fresh();
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![
            port("198.18.0.7", 22, Some(ssh("OpenSSH", "9.2p1"))),
            port("198.18.0.7", 80, None),
            port("198.18.0.8", 22, None),
        ],
    );
    let ssh7 = service("198.18.0.7", 22);
    // A targeted scan of another address covers nothing of .7.
    begin(&store, &t, "other", &["198.18.0.8/32"], &[22, 80], 1);
    store
        .apply(
            &t,
            &batch("other", 0, T0 + 1, vec![port("198.18.0.8", 22, None)]),
        )
        .expect("applies");
    assert_eq!(
        store.asset(&t, &ssh7).expect("asset").status,
        AssetStatus::Present
    );
    // A scan of .7 on port 443 only does not cover port 22.
    begin(&store, &t, "p443", &["198.18.0.7/32"], &[443], 1);
    store
        .apply(&t, &batch("p443", 0, T0 + 2, vec![]))
        .expect("applies");
    assert_eq!(
        store.asset(&t, &ssh7).expect("asset").status,
        AssetStatus::Present
    );
    // An unfinished scan (one of two shards) marks nothing yet; the one that says
    // "unknown" keeps the asset; the cancelled one marks nothing.
    begin(&store, &t, "half", &["198.18.0.0/24"], &[22, 80], 2);
    store
        .apply(&t, &batch("half", 0, T0 + 3, vec![]))
        .expect("applies");
    assert_eq!(
        store.asset(&t, &ssh7).expect("asset").status,
        AssetStatus::Present
    );
    store.cancel_scan(&t, "half").expect("cancels");
    let late = store.apply(&t, &batch("half", 1, T0 + 4, vec![]));
    assert!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");
    assert_eq!(
        store.asset(&t, &ssh7).expect("asset").status,
        AssetStatus::Present
    );
    begin(&store, &t, "unsure", &["198.18.0.0/24"], &[22, 80], 1);
    store
        .apply(
            &t,
            &batch(
                "unsure",
                0,
                T0 + 5,
                vec![
                    Observation::Unknown {
                        asset: ssh7.clone(),
                        reason: "grab timed out".into(),
                    },
                    port("198.18.0.7", 80, None),
                    port("198.18.0.8", 22, None),
                ],
            ),
        )
        .expect("applies");
    assert_eq!(
        store.asset(&t, &ssh7).expect("asset").status,
        AssetStatus::Unknown
    );
    // A completed scan that covered it and did not see it: gone, with its host port.
    scan_once(
        &store,
        &t,
        "full",
        T0 + 6,
        vec![port("198.18.0.7", 80, None), port("198.18.0.8", 22, None)],
    );
    let a = store.asset(&t, &ssh7).expect("asset");
    assert_eq!(a.status, AssetStatus::Absent);
    let last = store.history(&t, &ssh7).expect("history");
    assert_eq!(last.last().map(|c| &c.kind), Some(&ChangeKind::Disappeared));
    assert_eq!(last.last().map(|c| c.scan.as_str()), Some("full"));
    assert_eq!(
        store
            .asset(&t, &host("198.18.0.7"))
            .expect("host")
            .fact("open_ports"),
        Some("80")
    );
    assert_eq!(store.exposed_now(&t).expect("counts"), (2, 2));
    // The whole host goes when its last port does; and comes back.
    scan_once(
        &store,
        &t,
        "empty7",
        T0 + 7,
        vec![port("198.18.0.8", 22, None), closed("198.18.0.7", 80)],
    );
    assert_eq!(
        store.asset(&t, &host("198.18.0.7")).expect("host").status,
        AssetStatus::Absent
    );
    assert_eq!(store.exposed_now(&t).expect("counts"), (1, 1));
    scan_once(
        &store,
        &t,
        "back",
        T0 + 8,
        vec![port("198.18.0.7", 22, None), port("198.18.0.8", 22, None)],
    );
    let a = store.asset(&t, &ssh7).expect("asset");
    assert_eq!(a.status, AssetStatus::Present);
    assert_eq!(
        store.history(&t, &ssh7).expect("h").last().map(|c| &c.kind),
        Some(&ChangeKind::Appeared)
    );
    assert_eq!(
        store
            .asset(&t, &host("198.18.0.7"))
            .expect("host")
            .fact("open_ports"),
        Some("22")
    );
}

#[test]
fn a_replaced_certificate_disappears_when_nothing_presents_it() {
    let (_dir, store, t) = fresh();
    let old = certificate("www.example.test", false);
    let new = certificate("www.example.test", false);
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![port("198.18.0.7", 443, Some(https(&old)))],
    );
    scan_once(
        &store,
        &t,
        "s2",
        T0 + HOUR,
        vec![port("198.18.0.7", 443, Some(https(&new)))],
    );
    let old_key = AssetKey::Certificate(old.sha256.clone());
    assert_eq!(
        store.asset(&t, &old_key).expect("old").status,
        AssetStatus::Absent
    );
    assert_eq!(
        store
            .asset(&t, &AssetKey::Certificate(new.sha256.clone()))
            .expect("new")
            .status,
        AssetStatus::Present
    );
    let history = store
        .history(&t, &service("198.18.0.7", 443))
        .expect("history");
    assert!(history.iter().any(|c| matches!(&c.kind,
        ChangeKind::Changed { field, old: Some(o), new: Some(n) }
            if field == "certificate" && *o == old.sha256 && *n == new.sha256)));
}

#[test]
fn names_resolve_vanish_and_stay_when_unknown() {
    let (_dir, store, t) = fresh();
    begin_dns(&store, &t, "d1", "example.test");
    store
        .apply(
            &t,
            &batch(
                "d1",
                0,
                T0,
                vec![
                    name("www.example.test", Some("198.18.0.7"), Status::Resolved),
                    name("old.example.test", Some("198.18.0.9"), Status::Resolved),
                    name("flaky.example.test", Some("198.18.0.10"), Status::Resolved),
                    zone("example.test", true),
                ],
            ),
        )
        .expect("applies");
    let apex = store.asset(&t, &domain("example.test")).expect("zone apex");
    assert_eq!(apex.fact("zone.axfr_open"), Some("198.18.0.53"));
    assert_eq!(
        store.links(&t, &domain("www.example.test")).expect("links"),
        vec![host("198.18.0.7")]
    );
    begin_dns(&store, &t, "d2", "example.test");
    store
        .apply(
            &t,
            &batch(
                "d2",
                0,
                T0 + HOUR,
                vec![
                    name("www.example.test", Some("198.18.0.8"), Status::Resolved),
                    name("old.example.test", None, Status::NxDomain),
                    name("flaky.example.test", None, Status::Unknown),
                ],
            ),
        )
        .expect("applies");
    assert_eq!(
        store.links(&t, &domain("www.example.test")).expect("links"),
        vec![host("198.18.0.8")],
        "the old address is unlinked"
    );
    // A DNS record set that changed is one event with the old and new sets.
    assert!(store
        .history(&t, &domain("www.example.test"))
        .expect("history")
        .iter()
        .any(|c| c.kind
            == ChangeKind::Changed {
                field: "dns.A".into(),
                old: Some("198.18.0.7".into()),
                new: Some("198.18.0.8".into()),
            }));
    assert_eq!(
        store
            .asset(&t, &domain("old.example.test"))
            .expect("old")
            .status,
        AssetStatus::Absent
    );
    let flaky = store
        .asset(&t, &domain("flaky.example.test"))
        .expect("flaky");
    assert_eq!(flaky.status, AssetStatus::Unknown);
    assert_eq!(
        flaky.fact("addresses"),
        Some("198.18.0.10"),
        "unknown keeps facts"
    );
    assert!(store
        .history(&t, &domain("flaky.example.test"))
        .expect("history")
        .iter()
        .all(|c| c.kind == ChangeKind::Appeared));
}

#[test]
fn listings_filter_and_page_through_every_asset_once() {
    let (_dir, store, t) = fresh();
    let mut obs = Vec::new();
    for i in 0..60u8 {
        let ip = format!("198.18.{}.{}", i / 20, i % 20 + 1);
        obs.push(port(&ip, 22, Some(ssh("OpenSSH", "9.2p1"))));
        if i % 3 == 0 {
            obs.push(port(&ip, 6379, Some(redis())));
        }
    }
    scan_once(&store, &t, "s1", T0, obs);
    let all = walk(&store, &t, &AssetFilter::default(), 7);
    assert_eq!(all.len(), 60 + 20 + 60, "hosts + redis + ssh services");
    let unique: BTreeSet<String> = all.iter().map(|a| a.key.to_string()).collect();
    assert_eq!(unique.len(), all.len(), "no asset twice across pages");

    let by = |f: AssetFilter| walk(&store, &t, &f, 5);
    assert_eq!(
        by(AssetFilter {
            product: Some("redis".into()),
            ..Default::default()
        })
        .len(),
        20
    );
    assert_eq!(
        by(AssetFilter {
            service: Some("redis".into()),
            ..Default::default()
        })
        .len(),
        20
    );
    assert_eq!(
        by(AssetFilter {
            risk: Some("cache".into()),
            ..Default::default()
        })
        .len(),
        20
    );
    assert_eq!(
        by(AssetFilter {
            port: Some(22),
            ..Default::default()
        })
        .len(),
        60
    );
    let net = AssetFilter {
        net: Some("198.18.1.0/24".parse().expect("net")),
        kind: Some(AssetKind::Service),
        ..Default::default()
    };
    let in_net = by(net);
    assert_eq!(in_net.len(), 20 + 7);
    assert!(in_net
        .iter()
        .all(|a| a.key.to_string().starts_with("service:198.18.1.")));
    assert_eq!(
        by(AssetFilter {
            net: Some("198.18.1.0/24".parse().expect("net")),
            ..Default::default()
        })
        .len(),
        20 + 20 + 7
    );
    assert_eq!(
        by(AssetFilter {
            last_seen_from: Some(T0 + 1),
            ..Default::default()
        })
        .len(),
        0
    );
    assert_eq!(
        by(AssetFilter {
            first_seen_to: Some(T0),
            kind: Some(AssetKind::Host),
            ..Default::default()
        })
        .len(),
        60
    );
    // Absent through the status index, after a scan without the redis ports.
    let ssh_only: Vec<Observation> = (0..60u8)
        .map(|i| port(&format!("198.18.{}.{}", i / 20, i % 20 + 1), 22, None))
        .collect();
    scan_once(&store, &t, "s2", T0 + HOUR, ssh_only);
    let absent = by(AssetFilter {
        status: Some(AssetStatus::Absent),
        ..Default::default()
    });
    assert_eq!(absent.len(), 20);
    assert!(absent.iter().all(|a| a.key.port() == Some(6379)));
    assert_eq!(
        by(AssetFilter {
            status: Some(AssetStatus::Present),
            port: Some(6379),
            ..Default::default()
        })
        .len(),
        0
    );
    let bad = store.list_assets(&t, &AssetFilter::default(), Some("nonsense"), 10);
    assert!(matches!(bad, Err(StoreError::Invalid(m)) if m.contains("cursor")));
}

#[test]
fn the_domain_filter_finds_names_and_what_they_point_at() {
    let (_dir, store, t) = fresh();
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![port("198.18.0.7", 443, None), port("198.18.0.9", 22, None)],
    );
    begin_dns(&store, &t, "d1", "example.test");
    store
        .apply(
            &t,
            &batch(
                "d1",
                0,
                T0,
                vec![name(
                    "www.example.test",
                    Some("198.18.0.7"),
                    Status::Resolved,
                )],
            ),
        )
        .expect("applies");
    let found = walk(
        &store,
        &t,
        &AssetFilter {
            domain: Some("example.test".into()),
            ..Default::default()
        },
        10,
    );
    let keys: BTreeSet<String> = found.iter().map(|a| a.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "domain:www.example.test",
            "host:198.18.0.7",
            "service:198.18.0.7:443/tcp"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
}

#[test]
fn tenants_see_only_their_own_records() {
    let (_dir, store, a) = fresh();
    let b = TenantId::new("other").expect("id");
    store.create_tenant(&b, "Other", T0).expect("creates");
    scan_once(
        &store,
        &a,
        "s1",
        T0,
        vec![port("198.18.0.7", 22, Some(ssh("OpenSSH", "9.2p1")))],
    );
    assert!(matches!(
        store.asset(&b, &service("198.18.0.7", 22)),
        Err(StoreError::NotFound(_))
    ));
    assert!(store
        .list_assets(&b, &AssetFilter::default(), None, 100)
        .expect("lists")
        .items
        .is_empty());
    assert!(store
        .changes_since(&b, None, 100)
        .expect("feed")
        .items
        .is_empty());
    assert!(matches!(store.scan(&b, "s1"), Err(StoreError::NotFound(_))));
    // A batch for a scan registered by another tenant is refused.
    let r = store.apply(&b, &batch("s1", 0, T0, vec![]));
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    assert!(matches!(
        store.create_tenant(&a, "again", T0),
        Err(StoreError::Conflict(_))
    ));
}

#[test]
fn bad_batches_are_refused_and_change_nothing() {
    let (_dir, store, t) = fresh();
    begin(&store, &t, "s1", &["198.18.0.0/24"], &[22], 2);
    let r = store.apply(&t, &batch("s1", 5, T0, vec![]));
    assert!(
        matches!(&r, Err(StoreError::Invalid(m)) if m.contains("shards 0-1")),
        "{r:?}"
    );
    let r = store.apply(&t, &batch("nope", 0, T0, vec![]));
    assert!(
        matches!(&r, Err(StoreError::NotFound(m)) if m.contains("begin_scan")),
        "{r:?}"
    );
    let r = store.apply(&t, &batch("bad id!", 0, T0, vec![]));
    assert!(matches!(r, Err(StoreError::Invalid(_))));
    let r = store.begin_scan(&t, "s1", Default::default(), 3, None, T0);
    assert!(matches!(r, Err(StoreError::Conflict(_))));
    assert_eq!(store.change_count(&t).expect("count"), 0);
}

#[test]
fn a_store_of_another_schema_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("opens");
        store
            .overwrite_schema_for_test("aperture-store-0")
            .expect("writes");
    }
    let err = Store::open(dir.path()).expect_err("refused").to_string();
    assert!(err.contains("schema version aperture-store-0"), "{err}");
    assert!(err.contains("export"), "{err}");
    // A sled database that is not ours.
    let other = tempfile::tempdir().expect("tempdir");
    {
        let db = sled::open(other.path()).expect("sled");
        db.insert("x", "y").expect("insert");
        db.flush().expect("flush");
    }
    let err = Store::open(other.path()).expect_err("refused").to_string();
    assert!(err.contains("not an aperture store"), "{err}");
}

#[test]
fn a_store_reopens_at_once_and_a_held_one_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Dropped and reopened at once, again and again: sled's threads of the dropped
    // store may still hold the lock for a moment, which the open waits out.
    for i in 0..20 {
        let store = Store::open(dir.path()).expect("reopens");
        let t = TenantId::new(&format!("t{i}")).expect("id");
        store.create_tenant(&t, "T", T0).expect("writes");
    }
    let store = Store::open(dir.path()).expect("opens");
    assert_eq!(store.tenants().expect("tenants").len(), 20);
    // Held for real: refused once the wait runs out, saying what to do.
    let options = StoreOptions {
        lock_wait: std::time::Duration::from_millis(200),
        ..StoreOptions::default()
    };
    let err = Store::open_with(dir.path(), &options)
        .expect_err("held")
        .to_string();
    assert!(err.contains("in use by another process"), "{err}");
    assert!(err.contains("another data directory"), "{err}");
}

#[test]
fn export_and_import_round_trip_a_tenant() {
    let (dir, store, t) = fresh();
    let cert = certificate("www.example.test", true);
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![
            port("198.18.0.7", 22, Some(ssh("OpenSSH", "9.2p1"))),
            port("198.18.0.7", 443, Some(https(&cert))),
        ],
    );
    scan_once(
        &store,
        &t,
        "s2",
        T0 + HOUR,
        vec![port("198.18.0.7", 443, Some(https(&cert)))],
    );
    store.run_policy(&t, T0 + HOUR).expect("policy");
    let windows = aperture_storage::windows::TenantWindows {
        windows: vec![aperture_storage::windows::Window {
            cron: "0 1 * * *".into(),
            duration_mins: 240,
            tz: "Asia/Shanghai".into(),
        }],
        blackouts: Vec::new(),
        max_rate: Some(500),
    };
    store.set_tenant_windows(&t, &windows).expect("windows");
    let mut out = Vec::new();
    let lines = store.export_tenant(&t, &mut out).expect("exports");
    assert!(lines > 10);
    let copy = TenantId::new("copy").expect("id");
    let imported = store
        .import_tenant(&mut out.as_slice(), Some(&copy))
        .expect("imports");
    assert_eq!(imported.tenant.as_ref(), Some(&copy));
    assert_eq!(store.tenant_windows(&copy).expect("windows"), windows);
    let list = |t: &TenantId| walk(&store, t, &AssetFilter::default(), 100);
    assert_eq!(list(&t), list(&copy));
    assert_eq!(
        store.changes_since(&t, None, 1000).expect("feed").items,
        store.changes_since(&copy, None, 1000).expect("feed").items
    );
    let f = |t: &TenantId| {
        store
            .findings(t, &Default::default(), None, 1000)
            .expect("findings")
            .items
    };
    assert_eq!(f(&t), f(&copy));
    assert!(!f(&t).is_empty());
    assert_eq!(
        store.exposed_now(&t).expect("n"),
        store.exposed_now(&copy).expect("n")
    );
    for key in [
        AssetKey::Certificate(cert.sha256.clone()),
        domain("www.example.test"),
        service("198.18.0.7", 443),
    ] {
        let links = store.links(&t, &key).expect("links");
        assert!(!links.is_empty(), "{key}");
        assert_eq!(links, store.links(&copy, &key).expect("links"), "{key}");
    }
    let absent = AssetFilter {
        status: Some(AssetStatus::Absent),
        ..Default::default()
    };
    assert_eq!(
        walk(&store, &t, &absent, 10),
        walk(&store, &copy, &absent, 10)
    );
    // Importing over an existing tenant, or a damaged file, changes nothing.
    let again = store.import_tenant(&mut out.as_slice(), Some(&copy));
    assert!(matches!(again, Err(StoreError::Conflict(_))));
    let mut damaged = out.clone();
    damaged.extend_from_slice(b"{\"type\":\"asset\",\"broken\n");
    let third = TenantId::new("third").expect("id");
    let r = store.import_tenant(&mut damaged.as_slice(), Some(&third));
    assert!(
        matches!(&r, Err(StoreError::Invalid(m)) if m.contains("nothing was imported")),
        "{r:?}"
    );
    assert!(matches!(store.tenant(&third), Err(StoreError::NotFound(_))));
    // Every line is typed.
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        serde_json::from_slice::<ExportLine>(line).expect("typed line");
    }
    drop(dir);
}

#[test]
fn daily_counts_trace_the_shrinking_surface() {
    let (_dir, store, t) = fresh();
    let day = 86_400_000;
    scan_once(
        &store,
        &t,
        "d1",
        T0,
        vec![port("198.18.0.7", 22, None), port("198.18.0.8", 22, None)],
    );
    scan_once(
        &store,
        &t,
        "d2",
        T0 + day,
        vec![port("198.18.0.7", 22, None), closed("198.18.0.8", 22)],
    );
    let counts = store.daily_counts(&t).expect("counts");
    assert_eq!(counts.len(), 2);
    assert_eq!((counts[0].hosts, counts[0].services), (2, 2));
    assert_eq!((counts[1].hosts, counts[1].services), (1, 1));
    assert!(counts[0].day < counts[1].day);
}

fn walk(store: &Store, t: &TenantId, f: &AssetFilter, page: usize) -> Vec<Asset> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = store
            .list_assets(t, f, cursor.as_deref(), page)
            .expect("lists");
        assert!(p.items.len() <= page);
        out.extend(p.items);
        match p.next {
            Some(n) => cursor = Some(n),
            None => return out,
        }
    }
}

mod import_of_damaged_files {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    /// One store with one exported tenant, shared by every case.
    fn fixture() -> &'static (tempfile::TempDir, Store, Vec<u8>) {
        static F: OnceLock<(tempfile::TempDir, Store, Vec<u8>)> = OnceLock::new();
        F.get_or_init(|| {
            let (dir, store, t) = fresh();
            scan_once(
                &store,
                &t,
                "s1",
                T0,
                vec![port("198.18.0.7", 22, Some(ssh("OpenSSH", "9.2p1")))],
            );
            store.run_policy(&t, T0).expect("policy");
            let mut out = Vec::new();
            store.export_tenant(&t, &mut out).expect("exports");
            (dir, store, out)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Cut, flipped or spliced exports: an import either succeeds whole or leaves no
        /// trace of the tenant; it never panics.
        #[test]
        fn all_or_nothing(cut in 0usize..4000, flip in 0usize..4000, byte: u8, junk in proptest::collection::vec(any::<u8>(), 0..64)) {
            let (_dir, store, export) = fixture();
            let mut damaged = export.clone();
            if !damaged.is_empty() {
                let at = flip % damaged.len();
                damaged[at] ^= byte | 1;
            }
            damaged.truncate(cut.min(damaged.len()));
            damaged.extend_from_slice(&junk);
            // A fresh id per case, so a case never meets a tenant an earlier one imported.
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let id = TenantId::new(&format!("t{n}")).expect("id");
            match store.import_tenant(&mut damaged.as_slice(), Some(&id)) {
                Ok(done) => prop_assert_eq!(done.tenant, Some(id)),
                Err(_) => {
                    prop_assert!(store.tenant(&id).is_err());
                    prop_assert!(store.list_assets(&id, &AssetFilter::default(), None, 10).expect("lists").items.is_empty());
                }
            }
        }
    }

    #[test]
    fn an_endless_line_is_refused_without_reading_it_all() {
        let (_dir, store, _) = fixture();
        let mut endless = std::io::BufReader::new(std::io::repeat(b'x'));
        let id = TenantId::new("endless").expect("id");
        let err = store
            .import_tenant(&mut endless, Some(&id))
            .expect_err("refused");
        assert!(err.to_string().contains("longer than"), "{err}");
    }
}

#[test]
fn a_sweep_over_many_hosts_runs_in_chunks_and_marks_exactly_the_unseen() {
    let (_dir, store, t) = fresh();
    let ip = |n: u32| format!("198.18.{}.{}", n / 250, n % 250 + 1);
    let all: Vec<Observation> = (0..5000).map(|n| port(&ip(n), 80, None)).collect();
    scan_once(&store, &t, "s1", T0, all);
    // Seen again: all but every fifth host, so the sweep crosses two chunk borders. Of
    // those, every other one answers closed (the port was shut); the rest are silent.
    let seen: Vec<Observation> = (0..5000)
        .filter_map(|n| match n % 10 {
            0 => Some(closed(&ip(n), 80)),
            5 => None,
            _ => Some(port(&ip(n), 80, None)),
        })
        .collect();
    scan_once(&store, &t, "s2", T0 + HOUR, seen);
    let with_status = |status| {
        walk(
            &store,
            &t,
            &AssetFilter {
                status: Some(status),
                kind: Some(AssetKind::Service),
                ..Default::default()
            },
            500,
        )
    };
    let every = |step: usize, from: usize| {
        move |a: &Asset| {
            a.key.address().is_some_and(|x| {
                (from..5000)
                    .step_by(step)
                    .any(|n| ip(n as u32).parse() == Ok(x))
            })
        }
    };
    let gone = with_status(AssetStatus::Absent);
    assert_eq!(gone.len(), 500);
    assert!(gone.iter().all(every(10, 0)), "only hosts that answered");
    let unknown = with_status(AssetStatus::Unknown);
    assert_eq!(unknown.len(), 500, "silence is not closure");
    assert!(unknown.iter().all(every(10, 5)));
    // Unknown still counts as exposed: nothing shows it is gone.
    assert_eq!(store.exposed_now(&t).expect("counts"), (4500, 4500));
    let s2 = store.scan(&t, "s2").expect("scan");
    assert_eq!(s2.state, ScanState::Completed);
    assert_eq!(s2.silent_hosts, 500);
}

#[test]
fn a_host_must_answer_every_vantage_of_a_scan_before_its_ports_are_gone() {
    let (_dir, store, t) = fresh();
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![port("198.18.0.7", 22, None), port("198.18.0.8", 22, None)],
    );
    begin(&store, &t, "s2", &["198.18.0.0/24"], &[22, 80], 2);
    let from = |worker: &str| Vantage {
        worker: worker.into(),
        source: None,
    };
    // w1 hears both hosts answer closed; w2 (its probes dropped at the target's edge
    // for .7) hears only .8.
    store
        .apply_from(
            &t,
            &batch(
                "s2",
                0,
                T0 + HOUR,
                vec![closed("198.18.0.7", 80), closed("198.18.0.8", 80)],
            ),
            Some(&from("w1")),
        )
        .expect("applies");
    let done = store
        .apply_from(
            &t,
            &batch("s2", 1, T0 + HOUR, vec![closed("198.18.0.8", 22)]),
            Some(&from("w2")),
        )
        .expect("applies");
    assert!(done.completed_scan);
    assert_eq!(
        store
            .asset(&t, &service("198.18.0.7", 22))
            .expect("a")
            .status,
        AssetStatus::Unknown
    );
    assert_eq!(
        store
            .asset(&t, &service("198.18.0.8", 22))
            .expect("a")
            .status,
        AssetStatus::Absent
    );
    assert_eq!(store.scan(&t, "s2").expect("scan").silent_hosts, 1);
}

#[test]
fn a_compressed_store_reopens_whatever_the_options_say() {
    let dir = tempfile::tempdir().expect("tempdir");
    let compressed = StoreOptions {
        compression: true,
        ..StoreOptions::default()
    };
    let t = TenantId::new("acme").expect("id");
    {
        let store = Store::open_with(dir.path(), &compressed).expect("opens");
        store.create_tenant(&t, "Acme", T0).expect("writes");
    }
    // The default says uncompressed; the directory was made compressed: it opens as is.
    let store = Store::open(dir.path()).expect("reopens");
    assert_eq!(store.tenant(&t).expect("tenant").name, "Acme");
}

#[test]
fn a_shard_from_a_blocked_vantage_is_reopened_and_its_rerun_adds_what_it_missed() {
    let (_dir, store, t) = fresh();
    begin(&store, &t, "s1", &["198.18.0.0/24"], &[22], 2);
    let blocked = Vantage {
        worker: "w2".into(),
        source: Some("198.19.252.6".parse().expect("ip")),
    };
    // The blocked vantage saw nothing in shard 0.
    let empty = batch("s1", 0, T0, vec![]);
    assert!(
        store
            .apply_from(&t, &empty, Some(&blocked))
            .expect("apply")
            .fresh
    );
    let receipts = store.shards(&t, "s1").expect("shards");
    assert_eq!(receipts[0].vantage.as_ref(), Some(&blocked));
    assert_eq!(
        store.reopen_shards(&t, "s1", &[0, 1]).expect("reopen"),
        vec![0]
    );
    assert!(store.shards(&t, "s1").expect("shards").is_empty());
    let good = Vantage {
        worker: "w1".into(),
        source: Some("198.19.252.2".parse().expect("ip")),
    };
    let seen = batch("s1", 0, T0 + 1, vec![port("198.18.0.7", 22, None)]);
    let applied = store.apply_from(&t, &seen, Some(&good)).expect("rerun");
    assert!(applied.fresh && !applied.completed_scan);
    let asset = store.asset(&t, &service("198.18.0.7", 22)).expect("asset");
    assert_eq!(asset.status, AssetStatus::Present);
    let done = store
        .apply(&t, &batch("s1", 1, T0 + 2, vec![]))
        .expect("last shard");
    assert!(done.completed_scan);
    assert_eq!(
        store.shards(&t, "s1").expect("shards")[0].vantage.as_ref(),
        Some(&good)
    );
    // Once the scan completed (its sweep ran), nothing can be reopened.
    let late = store.reopen_shards(&t, "s1", &[0]).expect_err("completed");
    assert!(late.to_string().contains("no longer be rerun"), "{late}");
}
