//! The SIEM export's feeds in a real store: every finding step is logged with the
//! finding, the two feeds read side by side from a cursor with stable event ids, a
//! destination's cursor moves only forward from where it is, and a tenant's export and
//! import carry the log and the destinations with their cursors.

mod common;

use aperture_notify::ocsf::SiemBody;
use aperture_storage::policy::*;
use aperture_storage::siem::{Cursor, Feeds, SiemDestination, SiemFormat};
use aperture_storage::*;
use common::*;

const BOTH: Feeds = Feeds {
    findings: true,
    changes: true,
};

fn destination(id: &str) -> SiemDestination {
    SiemDestination {
        id: id.into(),
        name: id.into(),
        host: "127.0.0.1".into(),
        port: 6514,
        tls: false,
        ca_pem: None,
        format: SiemFormat::Syslog,
        facility: 13,
        findings: true,
        changes: true,
        created: T0,
        created_by: "test".into(),
    }
}

fn steps(events: &[aperture_notify::ocsf::SiemEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            SiemBody::Finding(f) => Some((f.finding.clone(), f.state.clone())),
            SiemBody::Change(_) => None,
        })
        .collect()
}

#[test]
fn finding_steps_and_changes_read_from_a_cursor_with_stable_ids() {
    let (_dir, store, t) = fresh();
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![port("198.18.0.9", 6379, Some(redis()))],
    );
    store.run_policy(&t, T0).expect("policy");
    let (all, end) = store
        .siem_events(&t, Cursor::default(), 1000, BOTH)
        .expect("events");
    assert_eq!(end, store.siem_end(&t).expect("end"));
    let opened = steps(&all);
    assert!(!opened.is_empty(), "the scan opened findings");
    assert!(opened.iter().all(|(_, s)| s == "open"), "{opened:?}");
    let changes = all
        .iter()
        .filter(|e| matches!(e.body, SiemBody::Change(_)))
        .count() as u64;
    assert_eq!(changes, store.change_count(&t).expect("count"));
    assert!(all.windows(2).all(|w| w[0].at <= w[1].at), "merged by time");
    // Read again in pages of 2: the same events, the same ids, in the same order.
    let mut paged = Vec::new();
    let mut cursor = Cursor::default();
    loop {
        let (page, next) = store.siem_events(&t, cursor, 2, BOTH).expect("page");
        if page.is_empty() {
            assert_eq!(next, cursor, "an empty page does not move the cursor");
            break;
        }
        paged.extend(page);
        cursor = next;
    }
    assert_eq!(paged, all);
    // Only findings: the change part of the cursor jumps to the end.
    let (only, next) = store
        .siem_events(
            &t,
            Cursor::default(),
            1000,
            Feeds {
                findings: true,
                changes: false,
            },
        )
        .expect("findings only");
    assert_eq!(steps(&only), opened);
    assert_eq!(next, end);

    // A person's step and the policy's close are logged as they happen.
    let (first, _) = &opened[0];
    let actor = Actor::User {
        name: "ana".into(),
        role: Role::Analyst,
    };
    store
        .transition_finding(
            &t,
            first,
            &actor,
            &TransitionRequest {
                to: FindingState::Acknowledged,
                comment: "looking\n]\"".into(),
                until: None,
            },
            T0 + HOUR,
        )
        .expect("acknowledged");
    scan_once(&store, &t, "s2", T0 + DAY, vec![closed("198.18.0.9", 1)]);
    store.run_policy(&t, T0 + DAY).expect("policy");
    let (later, _) = store.siem_events(&t, end, 1000, BOTH).expect("later");
    let later_steps = steps(&later);
    assert_eq!(later_steps[0], (first.clone(), "acknowledged".to_owned()));
    assert!(
        later_steps.iter().any(|(_, s)| s.starts_with("closed")),
        "{later_steps:?}"
    );
    let SiemBody::Finding(ack) = &later
        .iter()
        .find(|e| matches!(&e.body, SiemBody::Finding(f) if f.state == "acknowledged"))
        .expect("the acknowledgement")
        .body
    else {
        unreachable!()
    };
    assert_eq!(
        (ack.actor.as_str(), ack.from.as_deref()),
        ("ana", Some("open"))
    );
    assert!(later.iter().all(|e| e.id.starts_with("acme.")));
}

#[test]
fn every_policy_state_has_an_ocsf_status() {
    use aperture_notify::ocsf::status;
    for state in [
        FindingState::Open,
        FindingState::Acknowledged,
        FindingState::InProgress,
        FindingState::Fixed,
        FindingState::ClosedVerified,
        FindingState::ClosedSanctioned,
        FindingState::ClosedByPolicy,
        FindingState::RiskAccepted,
        FindingState::FalsePositive,
    ] {
        let (id, _) = status(&state.name());
        assert_ne!(id, 99, "{} has no OCSF status", state.name());
        let closing = state.is_closed() || state == FindingState::FalsePositive;
        assert_eq!(
            id >= 3,
            closing || state == FindingState::RiskAccepted,
            "{}",
            state.name()
        );
    }
}

#[test]
fn cursors_move_forward_only_and_travel_with_the_tenant() {
    let (_dir, store, t) = fresh();
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![port("198.18.0.9", 6379, Some(redis()))],
    );
    store.run_policy(&t, T0).expect("policy");
    let start = store
        .create_siem_destination(&t, &destination("soc"), false)
        .expect("created");
    assert_eq!(start.cursor, Cursor::default());
    let late = store
        .create_siem_destination(&t, &destination("late"), true)
        .expect("created from now");
    let end = store.siem_end(&t).expect("end");
    assert_eq!(late.cursor, end);
    assert_eq!(
        store.siem_backlog(&t, late.cursor, BOTH).expect("backlog"),
        0
    );
    assert!(store.siem_backlog(&t, start.cursor, BOTH).expect("backlog") > 0);
    assert!(matches!(
        store.create_siem_destination(&t, &destination("soc"), false),
        Err(StoreError::Conflict(_))
    ));
    let mut bad = destination("x");
    bad.host = "a b".into();
    assert!(matches!(
        store.create_siem_destination(&t, &bad, false),
        Err(StoreError::Invalid(_))
    ));

    let half = Cursor {
        changes: 1,
        steps: 0,
    };
    assert!(store
        .siem_sent(&t, "soc", Cursor::default(), half, 1, T0)
        .expect("sent"));
    // A writer that read an older position cannot move it back or skip.
    assert!(!store
        .siem_sent(&t, "soc", Cursor::default(), end, 5, T0)
        .expect("refused"));
    assert_eq!(
        store.siem_failed(&t, "soc", "refused", T0).expect("failed"),
        1
    );
    let (_, p) = store.siem_destination(&t, "soc").expect("soc");
    assert_eq!((p.cursor, p.sent, p.failures), (half, 1, 1));
    assert_eq!(p.last_error.as_deref(), Some("refused"));

    let mut out = Vec::new();
    store.export_tenant(&t, &mut out).expect("exports");
    let target = tempfile::tempdir().expect("tempdir");
    let restored = Store::open(target.path()).expect("opens");
    restored
        .import_tenant(&mut out.as_slice(), None)
        .expect("imports");
    assert_eq!(restored.siem_end(&t).expect("end"), end);
    assert_eq!(
        restored
            .siem_events(&t, Cursor::default(), 1000, BOTH)
            .expect("events"),
        store
            .siem_events(&t, Cursor::default(), 1000, BOTH)
            .expect("events")
    );
    assert_eq!(
        restored.siem_destinations(&t).expect("destinations"),
        store.siem_destinations(&t).expect("destinations")
    );
    // An export of before the log (no steps in it): the import rebuilds them from the
    // findings, the same steps.
    let old: Vec<u8> = String::from_utf8(out.clone())
        .expect("utf-8")
        .lines()
        .filter(|l| !l.contains("\"type\":\"siem_step\""))
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    assert!(old.len() < out.len(), "the export had steps");
    let older = tempfile::tempdir().expect("tempdir");
    let rebuilt = Store::open(older.path()).expect("opens");
    rebuilt
        .import_tenant(&mut old.as_slice(), None)
        .expect("imports");
    let as_set = |s: &Store| {
        let (events, _) = s
            .siem_events(&t, Cursor::default(), 1000, BOTH)
            .expect("events");
        let mut v: Vec<(String, String, i64)> = events
            .iter()
            .filter_map(|e| match &e.body {
                SiemBody::Finding(f) => Some((f.finding.clone(), f.state.clone(), e.at)),
                SiemBody::Change(_) => None,
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(as_set(&rebuilt), as_set(&store));
    assert!(!as_set(&store).is_empty());
    store.delete_siem_destination(&t, "soc").expect("deleted");
    assert!(matches!(
        store.siem_destination(&t, "soc"),
        Err(StoreError::NotFound(_))
    ));
    assert!(!store.siem_sent(&t, "soc", half, end, 1, T0).expect("gone"));
}
