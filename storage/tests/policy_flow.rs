//! The exposure policy over a real store: findings open from scans, close by sanction or
//! verified rescan, reopen when the exposure returns, and people's transitions are
//! checked.

mod common;

use aperture_storage::findings::{FindingFilter, NewSanction};
use aperture_storage::policy::*;
use aperture_storage::*;
use common::*;

fn analyst() -> Actor {
    Actor::User {
        name: "ana".into(),
        role: Role::Analyst,
    }
}

fn remediator() -> Actor {
    Actor::User {
        name: "rem".into(),
        role: Role::Remediator,
    }
}

fn find(store: &Store, t: &TenantId, rule: Rule, asset: &AssetKey) -> Option<Finding> {
    store
        .findings_of(t, asset)
        .expect("findings")
        .into_iter()
        .find(|f| f.rule == rule)
}

fn sanction(net: &str, port: Option<u16>, expires: Option<Millis>) -> NewSanction {
    NewSanction {
        matches: SanctionMatch {
            net: Some(net.parse().expect("net")),
            port,
            ..Default::default()
        },
        owner: "web team".into(),
        reason: "public site".into(),
        ticket: Some("CHG-1".into()),
        expires,
    }
}

#[test]
fn unsanctioned_exposure_closes_as_sanctioned_and_reopens_when_the_sanction_goes() {
    let (_dir, store, t) = fresh();
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![port("198.18.0.7", 80, Some(web("nginx")))],
    );
    store.run_policy(&t, T0).expect("policy");
    let web80 = service("198.18.0.7", 80);
    let f = find(&store, &t, Rule::Unsanctioned, &web80).expect("unsanctioned finding");
    assert_eq!(f.state, FindingState::Open);
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.due, Some(T0 + 14 * DAY));
    assert!(
        find(&store, &t, Rule::RiskyExposure, &web80).is_none(),
        "web is not risky"
    );
    assert!(find(&store, &t, Rule::Unsanctioned, &host("198.18.0.7")).is_none());

    let s = store
        .create_sanction(&t, sanction("198.18.0.7/32", Some(80), None), "ana", T0 + 1)
        .expect("sanctions");
    store.sweep_policy(&t, T0 + 2).expect("sweep");
    let f = store.finding(&t, &f.id).expect("finding");
    assert_eq!(f.state, FindingState::ClosedSanctioned);
    assert_eq!(f.transitions.last().map(|x| &x.actor), Some(&Actor::System));

    store.delete_sanction(&t, &s.id).expect("deletes");
    store.sweep_policy(&t, T0 + 3).expect("sweep");
    let f = store.finding(&t, &f.id).expect("finding");
    assert_eq!(f.state, FindingState::Open);
    assert_eq!(f.reopened, 1);
    // Re-running changes nothing and opens no duplicate.
    let run = store.sweep_policy(&t, T0 + 4).expect("sweep");
    assert_eq!((run.opened, run.closed, run.reopened), (0, 0, 0));
    assert_eq!(store.findings_of(&t, &web80).expect("findings").len(), 1);
}

#[test]
fn fixed_is_closed_only_by_a_scan_that_no_longer_sees_it_and_reopens_when_it_returns() {
    let (_dir, store, t) = fresh();
    let redis_key = service("198.18.0.7", 6379);
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![
            port("198.18.0.7", 6379, Some(redis())),
            port("198.18.0.7", 22, None),
        ],
    );
    store.run_policy(&t, T0).expect("policy");
    let risky = find(&store, &t, Rule::RiskyExposure, &redis_key).expect("risky finding");
    assert_eq!(risky.detail, "cache");

    // Closing by hand is refused: it takes a scan.
    let close = TransitionRequest {
        to: FindingState::ClosedVerified,
        comment: "done".into(),
        until: None,
    };
    let r = store.transition_finding(&t, &risky.id, &remediator(), &close, T0 + 1);
    assert!(
        matches!(&r, Err(StoreError::Refused(m)) if m.contains("verification")),
        "{r:?}"
    );

    let fixed = TransitionRequest {
        to: FindingState::Fixed,
        comment: "firewalled".into(),
        until: None,
    };
    let (f, verification) = store
        .transition_finding(&t, &risky.id, &remediator(), &fixed, T0 + 2)
        .expect("claims fixed");
    assert_eq!(f.state, FindingState::Fixed);
    let v = verification.expect("a verification scan is requested");
    assert_eq!(v.asset, redis_key);
    assert_eq!(v.coverage.ports, vec![(6379, 6379)]);
    assert!(v
        .coverage
        .covers_service("198.18.0.7".parse().expect("ip"), 6379));
    assert_eq!(
        store.pending_verifications(&t, T0).expect("pending").len(),
        1
    );
    // Exactly one starter gets it; a released claim, or one that lapsed (its starter
    // died), can be taken again.
    assert!(store.claim_verification(&t, &v.id, T0).expect("claim"));
    assert!(!store.claim_verification(&t, &v.id, T0 + 1).expect("claim"));
    assert!(store
        .pending_verifications(&t, T0 + 1)
        .expect("pending")
        .is_empty());
    store.release_verification(&t, &v.id).expect("release");
    assert!(store.claim_verification(&t, &v.id, T0 + 2).expect("claim"));
    assert_eq!(
        store
            .pending_verifications(&t, T0 + 2 + 61_000)
            .expect("pending")
            .len(),
        1
    );
    assert!(store
        .claim_verification(&t, &v.id, T0 + 2 + 61_000)
        .expect("lapsed claim"));
    store
        .verification_started(&t, &v.id, "verify-1")
        .expect("started");
    assert!(store
        .pending_verifications(&t, T0)
        .expect("pending")
        .is_empty());

    // The verification scan still sees it, unchanged: the claim fails.
    scan_once(
        &store,
        &t,
        "verify-1",
        T0 + HOUR,
        vec![
            port("198.18.0.7", 6379, Some(redis())),
            port("198.18.0.7", 22, None),
        ],
    );
    store.run_policy(&t, T0 + HOUR).expect("policy");
    let f = store.finding(&t, &risky.id).expect("finding");
    assert_eq!(f.state, FindingState::Open);
    assert!(f
        .transitions
        .last()
        .is_some_and(|x| x.comment.contains("verification failed")));

    // Fixed for real: a scan covering it no longer sees it.
    store
        .transition_finding(&t, &risky.id, &remediator(), &fixed, T0 + 2 * HOUR)
        .expect("claims fixed");
    scan_once(
        &store,
        &t,
        "verify-2",
        T0 + 3 * HOUR,
        vec![port("198.18.0.7", 22, None)],
    );
    store.run_policy(&t, T0 + 3 * HOUR).expect("policy");
    let f = store.finding(&t, &risky.id).expect("finding");
    assert_eq!(f.state, FindingState::ClosedVerified);
    let unsanctioned = find(&store, &t, Rule::Unsanctioned, &redis_key).expect("finding");
    assert_eq!(unsanctioned.state, FindingState::ClosedVerified);

    // The service comes back: both reopen.
    scan_once(
        &store,
        &t,
        "s4",
        T0 + 4 * HOUR,
        vec![
            port("198.18.0.7", 6379, Some(redis())),
            port("198.18.0.7", 22, None),
        ],
    );
    store.run_policy(&t, T0 + 4 * HOUR).expect("policy");
    let f = store.finding(&t, &risky.id).expect("finding");
    assert_eq!(f.state, FindingState::Open);
    assert_eq!(f.reopened, 2);
    let states: Vec<FindingState> = f.transitions.iter().map(|x| x.to).collect();
    assert_eq!(
        states,
        vec![
            FindingState::Open,
            FindingState::Fixed,
            FindingState::Open,
            FindingState::Fixed,
            FindingState::ClosedVerified,
            FindingState::Open
        ]
    );
}

#[test]
fn a_targeted_scan_of_something_else_verifies_nothing() {
    let (_dir, store, t) = fresh();
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![
            port("198.18.0.7", 6379, Some(redis())),
            port("198.18.0.8", 22, None),
        ],
    );
    store.run_policy(&t, T0).expect("policy");
    let risky = find(
        &store,
        &t,
        Rule::RiskyExposure,
        &service("198.18.0.7", 6379),
    )
    .expect("risky");
    let fixed = TransitionRequest {
        to: FindingState::Fixed,
        comment: String::new(),
        until: None,
    };
    store
        .transition_finding(&t, &risky.id, &remediator(), &fixed, T0 + 1)
        .expect("fixed");
    begin(&store, &t, "other", &["198.18.0.8/32"], &[22], 1);
    store
        .apply(
            &t,
            &batch("other", 0, T0 + HOUR, vec![port("198.18.0.8", 22, None)]),
        )
        .expect("applies");
    store.run_policy(&t, T0 + HOUR).expect("policy");
    assert_eq!(
        store.finding(&t, &risky.id).expect("f").state,
        FindingState::Fixed
    );
    // The claim stands; its verification can be asked for again, not for other states.
    let before = store.pending_verifications(&t, T0).expect("pending").len();
    let v = store
        .request_verification(&t, &risky.id, &remediator(), T0 + 2 * HOUR)
        .expect("asked again");
    assert_eq!(v.finding, risky.id);
    assert_eq!(
        store.pending_verifications(&t, T0).expect("pending").len(),
        before + 1
    );
    let open = find(&store, &t, Rule::Unsanctioned, &service("198.18.0.7", 6379)).expect("f");
    assert!(matches!(
        store.request_verification(&t, &open.id, &remediator(), T0),
        Err(StoreError::Refused(_))
    ));
}

#[test]
fn expired_sanctions_become_stale_and_sanctioned_assets_become_zombies() {
    let (_dir, store, t) = fresh();
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![
            port("198.18.0.7", 443, Some(web("nginx"))),
            port("198.18.0.9", 80, Some(web("nginx"))),
        ],
    );
    let temp = store
        .create_sanction(
            &t,
            sanction("198.18.0.7/32", None, Some(T0 + DAY)),
            "ana",
            T0,
        )
        .expect("sanction");
    store
        .create_sanction(&t, sanction("198.18.0.9/32", None, None), "ana", T0)
        .expect("sanction");
    store.run_policy(&t, T0).expect("policy");
    assert!(find(&store, &t, Rule::Unsanctioned, &service("198.18.0.7", 443)).is_none());
    // Two days later: the temporary publication is still up.
    store.sweep_policy(&t, T0 + 2 * DAY).expect("sweep");
    let stale = find(&store, &t, Rule::StaleSanction, &service("198.18.0.7", 443)).expect("stale");
    assert_eq!(stale.detail, temp.id);
    assert_eq!(stale.state, FindingState::Open);
    assert!(find(&store, &t, Rule::Unsanctioned, &service("198.18.0.7", 443)).is_none());
    // .9 unseen for longer than the zombie period (30 days by default).
    store.sweep_policy(&t, T0 + 31 * DAY).expect("sweep");
    let zombie = find(&store, &t, Rule::Zombie, &service("198.18.0.9", 80)).expect("zombie");
    assert!(
        zombie.title.contains("not been seen for 31 days"),
        "{}",
        zombie.title
    );
    // Renewing the sanction closes the stale finding.
    store
        .update_sanction(
            &t,
            &temp.id,
            sanction("198.18.0.7/32", None, Some(T0 + 90 * DAY)),
        )
        .expect("renews");
    store.sweep_policy(&t, T0 + 31 * DAY).expect("sweep");
    assert!(
        find(&store, &t, Rule::StaleSanction, &service("198.18.0.7", 443))
            .is_some_and(|f| f.state.is_closed())
    );
}

#[test]
fn certificate_and_dns_rules_open_findings() {
    let (_dir, store, t) = fresh();
    let expired = certificate("www.example.test", true);
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![port("198.18.0.7", 443, Some(https(&expired)))],
    );
    begin_dns(&store, &t, "d1", "example.test");
    let mut dangling = name("shop.example.test", None, Status::Resolved);
    if let Observation::Name(n) = &mut dangling {
        n.findings.push(
            aperture_fingerprints::dns::observation::DnsFinding::DanglingCname {
                name: "shop.example.test".into(),
                target: "gone.cloud.test".into(),
            },
        );
    }
    store
        .apply(
            &t,
            &batch("d1", 0, T0, vec![zone("example.test", true), dangling]),
        )
        .expect("applies");
    store.run_policy(&t, T0).expect("policy");
    let svc = service("198.18.0.7", 443);
    for rule in [Rule::CertificateExpired, Rule::CertificateSelfSigned] {
        let f = find(&store, &t, rule, &svc).unwrap_or_else(|| panic!("{rule:?}"));
        assert_eq!(f.detail, expired.sha256);
    }
    assert!(find(&store, &t, Rule::CertificateHostnameMismatch, &svc).is_none());
    assert!(find(&store, &t, Rule::OpenZoneTransfer, &domain("example.test")).is_some());
    let d = find(
        &store,
        &t,
        Rule::DanglingCname,
        &domain("shop.example.test"),
    )
    .expect("dangling");
    assert_eq!(d.detail, "gone.cloud.test");
    // A renewed, valid certificate: the expiry finding closes, verified by that scan.
    let renewed = certificate("www.example.test", false);
    scan_once(
        &store,
        &t,
        "s2",
        T0 + HOUR,
        vec![port("198.18.0.7", 443, Some(https(&renewed)))],
    );
    store.run_policy(&t, T0 + HOUR).expect("policy");
    let old = store
        .finding(
            &t,
            &finding_id(Rule::CertificateExpired, &svc, &expired.sha256),
        )
        .expect("finding");
    assert_eq!(old.state, FindingState::ClosedVerified);
    let self_signed_new = find(&store, &t, Rule::CertificateSelfSigned, &svc)
        .into_iter()
        .chain(store.findings_of(&t, &svc).expect("all"))
        .find(|f| f.rule == Rule::CertificateSelfSigned && f.detail == renewed.sha256);
    assert!(self_signed_new.is_some_and(|f| f.state == FindingState::Open));
}

#[test]
fn new_assets_after_the_baseline_are_reported() {
    let (_dir, store, t) = fresh();
    scan_once(&store, &t, "s1", T0, vec![port("198.18.0.7", 22, None)]);
    store.run_policy(&t, T0).expect("policy");
    assert!(find(&store, &t, Rule::NewAsset, &service("198.18.0.7", 22)).is_none());
    scan_once(
        &store,
        &t,
        "s2",
        T0 + HOUR,
        vec![port("198.18.0.7", 22, None), port("198.18.0.7", 8080, None)],
    );
    store.run_policy(&t, T0 + HOUR).expect("policy");
    let f = find(&store, &t, Rule::NewAsset, &service("198.18.0.7", 8080)).expect("new asset");
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(f.due, None);
}

#[test]
fn risk_acceptance_needs_an_expiry_and_reopens_after_it() {
    let (_dir, store, t) = fresh();
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![port("198.18.0.7", 22, Some(ssh("OpenSSH", "9.2p1")))],
    );
    store.run_policy(&t, T0).expect("policy");
    let f = find(&store, &t, Rule::RiskyExposure, &service("198.18.0.7", 22)).expect("risky");
    let mut accept = TransitionRequest {
        to: FindingState::RiskAccepted,
        comment: "bastion host".into(),
        until: None,
    };
    let r = store.transition_finding(&t, &f.id, &analyst(), &accept, T0);
    assert!(
        matches!(&r, Err(StoreError::Refused(m)) if m.contains("expiry")),
        "{r:?}"
    );
    accept.until = Some(T0 + 7 * DAY);
    let r = store.transition_finding(&t, &f.id, &remediator(), &accept, T0);
    assert!(
        matches!(r, Err(StoreError::Refused(_))),
        "remediators do not accept risk"
    );
    let viewer = Actor::User {
        name: "vic".into(),
        role: Role::Viewer,
    };
    assert!(store
        .transition_finding(&t, &f.id, &viewer, &accept, T0)
        .is_err());
    assert!(store.comment_finding(&t, &f.id, &viewer, "hi", T0).is_err());
    assert_eq!(
        store.finding(&t, &f.id).expect("f").transitions.len(),
        1,
        "refusals store nothing"
    );
    store
        .transition_finding(&t, &f.id, &analyst(), &accept, T0)
        .expect("accepted");
    store.sweep_policy(&t, T0 + 6 * DAY).expect("sweep");
    assert_eq!(
        store.finding(&t, &f.id).expect("f").state,
        FindingState::RiskAccepted
    );
    store.sweep_policy(&t, T0 + 8 * DAY).expect("sweep");
    let f = store.finding(&t, &f.id).expect("f");
    assert_eq!(f.state, FindingState::Open);
    assert_eq!(
        f.transitions.last().map(|x| x.comment.as_str()),
        Some("risk acceptance expired")
    );
}

#[test]
fn assignment_comments_due_dates_and_filters() {
    let (_dir, store, t) = fresh();
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![
            port("198.18.0.7", 22, Some(ssh("OpenSSH", "9.2p1"))),
            port("198.18.0.8", 80, Some(web("nginx"))),
        ],
    );
    store.run_policy(&t, T0).expect("policy");
    let all = store
        .findings(&t, &FindingFilter::default(), None, 1000)
        .expect("list")
        .items;
    assert_eq!(
        all.len(),
        3,
        "ssh unsanctioned + ssh risky + web unsanctioned"
    );
    let f = &all[0];
    store
        .assign_finding(&t, &f.id, &analyst(), Some("rem".into()), T0 + 1)
        .expect("assigns");
    let f = store
        .comment_finding(&t, &f.id, &remediator(), "looking", T0 + 2)
        .expect("comments");
    assert_eq!(f.assignee.as_deref(), Some("rem"));
    assert_eq!(f.notes.len(), 2);
    let mine = FindingFilter {
        assignee: Some("rem".into()),
        ..Default::default()
    };
    assert_eq!(
        store
            .findings(&t, &mine, None, 10)
            .expect("list")
            .items
            .len(),
        1
    );
    let overdue = FindingFilter {
        overdue_at: Some(T0 + 15 * DAY),
        ..Default::default()
    };
    assert_eq!(
        store
            .findings(&t, &overdue, None, 10)
            .expect("list")
            .items
            .len(),
        3
    );
    let not_yet = FindingFilter {
        overdue_at: Some(T0 + DAY),
        ..Default::default()
    };
    assert!(store
        .findings(&t, &not_yet, None, 10)
        .expect("list")
        .items
        .is_empty());
    // Paging: two pages of two and one.
    let p1 = store
        .findings(&t, &FindingFilter::default(), None, 2)
        .expect("p1");
    let p2 = store
        .findings(&t, &FindingFilter::default(), p1.next.as_deref(), 2)
        .expect("p2");
    assert_eq!(p1.items.len() + p2.items.len(), 3);
    assert!(p2.next.is_none());
    // Another tenant sees none of it.
    let other = TenantId::new("other").expect("id");
    store.create_tenant(&other, "Other", T0).expect("tenant");
    assert!(store
        .findings(&other, &FindingFilter::default(), None, 10)
        .expect("list")
        .items
        .is_empty());
    assert!(matches!(
        store.finding(&other, &all[0].id),
        Err(StoreError::NotFound(_))
    ));
    let r = store.transition_finding(
        &other,
        &all[0].id,
        &analyst(),
        &TransitionRequest {
            to: FindingState::Acknowledged,
            comment: String::new(),
            until: None,
        },
        T0,
    );
    assert!(matches!(r, Err(StoreError::NotFound(_))));
}

#[test]
fn bad_sanctions_are_refused_with_what_to_fix() {
    let (_dir, store, t) = fresh();
    let mut s = sanction("198.18.0.7/32", None, None);
    s.matches = SanctionMatch::default();
    let err = store
        .create_sanction(&t, s, "ana", T0)
        .expect_err("empty match");
    assert!(err.to_string().contains("at least one"), "{err}");
    let mut s = sanction("198.18.0.7/32", None, None);
    s.owner = " ".into();
    assert!(store.create_sanction(&t, s, "ana", T0).is_err());
    let mut s = sanction("198.18.0.7/32", None, None);
    s.matches.domain = Some("a[".into());
    let err = store
        .create_sanction(&t, s, "ana", T0)
        .expect_err("bad glob");
    assert!(err.to_string().contains("domain pattern"), "{err}");
    let body = r#"{"match":{"net":"198.18.0.0/24","colour":"red"},"owner":"x","reason":"y"}"#;
    let err = serde_json::from_str::<NewSanction>(body).expect_err("unknown field");
    assert!(err.to_string().contains("colour"), "{err}");
    assert!(store.sanctions(&t).expect("list").is_empty());
}
