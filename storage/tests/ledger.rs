//! The asset ledger in the store: its records survive rescans and travel with a tenant's
//! export; an edit is stored whole or not at all; a finding's priority follows the
//! asset's criticality, and a service without levels takes its host's.

mod common;
use aperture_storage::findings::{FindingFilter, NewSanction};
use aperture_storage::ledger::{
    self, Attributes, AttributesPatch, Editor, LedgerChange, LedgerFilter,
};
use aperture_storage::policy::Severity;
use aperture_storage::*;
use common::*;

fn editor() -> Editor {
    Editor {
        actor: "test".into(),
    }
}

fn attrs(owner: &str, c: Option<u8>) -> Attributes {
    Attributes {
        owner: Some(owner.into()),
        confidentiality: c,
        tags: ["prod".to_string()].into(),
        ..Attributes::default()
    }
}

#[test]
fn attributes_survive_rescans_and_travel_with_the_tenant_export() {
    let (_dir, store, t) = fresh();
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![port("198.18.0.7", 22, Some(ssh("OpenSSH", "9.2")))],
    );
    let svc = service("198.18.0.7", 22);
    let unseen = domain("later.example.com");
    let sanction = NewSanction {
        matches: ledger::sanction_match(&svc).expect("a service can be sanctioned"),
        owner: "alice".into(),
        reason: "approved".into(),
        ticket: None,
        expires: None,
    };
    let r = store
        .edit_ledger(
            &t,
            vec![
                (svc.clone(), LedgerChange::Set(attrs("alice", Some(4)))),
                (unseen.clone(), LedgerChange::Set(attrs("bob", None))),
            ],
            vec![sanction],
            &editor(),
            "import",
            T0 + 1,
        )
        .expect("stored");
    assert_eq!((r.matched, r.changed, r.sanctions.len()), (2, 2, 1));
    // A rescan that changes the service keeps its attributes.
    scan_once(
        &store,
        &t,
        "s2",
        T0 + HOUR,
        vec![port("198.18.0.7", 22, Some(ssh("OpenSSH", "9.6")))],
    );
    assert_eq!(
        store
            .ledger_entry(&t, &svc)
            .expect("reads")
            .map(|e| e.attributes),
        Some(attrs("alice", Some(4)))
    );
    let mut out = Vec::new();
    store.export_tenant(&t, &mut out).expect("exports");
    let copy = TenantId::new("copy").expect("id");
    store
        .import_tenant(&mut out.as_slice(), Some(&copy))
        .expect("imports");
    for key in [&svc, &unseen] {
        assert_eq!(
            store.ledger_entry(&copy, key).expect("reads"),
            store.ledger_entry(&t, key).expect("reads"),
            "{key}"
        );
    }
    assert_eq!(
        store.sanctions(&copy).expect("reads"),
        store.sanctions(&t).expect("reads")
    );
    let described = store
        .ledger_entries(&copy, &LedgerFilter::default(), None, 100)
        .expect("lists");
    assert_eq!(described.items.len(), 2);
    let listed = store
        .list_described_assets(
            &copy,
            &AssetFilter::default(),
            &LedgerFilter {
                tag: Some("prod".into()),
                ..LedgerFilter::default()
            },
            None,
            100,
        )
        .expect("lists");
    let keys: Vec<AssetKey> = listed.items.into_iter().map(|a| a.key).collect();
    assert_eq!(keys, [svc], "only assets seen are listed");
}

#[test]
fn an_edit_with_one_bad_asset_stores_nothing() {
    let (_dir, store, t) = fresh();
    let a = host("198.18.0.1");
    let b = host("198.18.0.2");
    store
        .edit_ledger(
            &t,
            vec![(a.clone(), LedgerChange::Set(attrs("x", Some(2))))],
            vec![],
            &editor(),
            "set",
            T0,
        )
        .expect("stored");
    let before = store.ledger_entry(&t, &a).expect("reads");
    let too_many = AttributesPatch {
        add_tags: (0..70).map(|i| format!("t{i}")).collect(),
        ..AttributesPatch::default()
    };
    let err = store
        .edit_ledger(
            &t,
            vec![
                (
                    a.clone(),
                    LedgerChange::Patch(AttributesPatch {
                        owner: Some(Some("y".into())),
                        ..AttributesPatch::default()
                    }),
                ),
                (b.clone(), LedgerChange::Patch(too_many)),
            ],
            vec![],
            &editor(),
            "bulk edit",
            T0 + 1,
        )
        .expect_err("refused");
    assert!(err.to_string().contains("at most 64 tags"), "{err}");
    assert_eq!(store.ledger_entry(&t, &a).expect("reads"), before);
    assert_eq!(store.ledger_entry(&t, &b).expect("reads"), None);
    let bad_level = Attributes {
        availability: Some(6),
        ..Attributes::default()
    };
    let err = store
        .edit_ledger(
            &t,
            vec![(b.clone(), LedgerChange::Set(bad_level))],
            vec![],
            &editor(),
            "set",
            T0,
        )
        .expect_err("refused");
    assert!(
        err.to_string().contains("1 (very low) to 5 (very high)"),
        "{err}"
    );
}

#[test]
fn priority_is_severity_rank_times_criticality_with_the_host_as_fallback() {
    assert_eq!(ledger::priority(Severity::Info, None), 3);
    assert_eq!(ledger::priority(Severity::Critical, Some(5)), 25);
    assert_eq!(ledger::priority(Severity::High, Some(1)), 4);
    let (_dir, store, t) = fresh();
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![
            port("198.18.0.7", 22, Some(ssh("OpenSSH", "9.2"))),
            port("198.18.0.7", 80, Some(web("nginx"))),
            port("198.18.0.8", 22, Some(ssh("OpenSSH", "9.2"))),
        ],
    );
    store.sweep_policy(&t, T0 + 1).expect("policy runs");
    store
        .edit_ledger(
            &t,
            vec![
                (host("198.18.0.7"), LedgerChange::Set(attrs("ops", Some(5)))),
                (
                    service("198.18.0.7", 80),
                    LedgerChange::Set(attrs("web", Some(1))),
                ),
            ],
            vec![],
            &editor(),
            "set",
            T0 + 2,
        )
        .expect("stored");
    assert_eq!(
        store
            .criticality(&t, &service("198.18.0.7", 22))
            .expect("reads"),
        Some(5)
    );
    assert_eq!(
        store
            .criticality(&t, &service("198.18.0.7", 80))
            .expect("reads"),
        Some(1)
    );
    assert_eq!(
        store
            .criticality(&t, &service("198.18.0.8", 22))
            .expect("reads"),
        None
    );
    let filter = FindingFilter {
        rule: Some(aperture_storage::policy::Rule::Unsanctioned),
        ..FindingFilter::default()
    };
    let mut order = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .findings_by_priority(&t, &filter, cursor.as_deref(), 1)
            .expect("lists");
        order.extend(page.items.iter().map(|(f, p)| (f.asset.clone(), *p)));
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(
        order,
        [
            (service("198.18.0.7", 22), 20),
            (service("198.18.0.8", 22), 12),
            (service("198.18.0.7", 80), 4),
        ]
    );
}
