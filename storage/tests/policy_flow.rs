//! The exposure policy over a real store: findings open from scans, close by sanction or
//! verified rescan, reopen when the exposure returns, and people's transitions are
//! checked.

mod common;

use aperture_storage::findings::{FindingFilter, NewSanction, PolicyRun, SanctionEdit};
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
    assert_eq!(store.queued_policy_work(&t).expect("queue").len(), 1);
    let run = store.run_queued_policy(&t, T0 + 2).expect("queued policy");
    assert_eq!((run.assets_evaluated, run.closed), (1, 1));
    assert!(store.queued_policy_work(&t).expect("queue").is_empty());
    let f = store.finding(&t, &f.id).expect("finding");
    assert_eq!(f.state, FindingState::ClosedSanctioned);
    assert_eq!(f.transitions.last().map(|x| &x.actor), Some(&Actor::System));

    store.delete_sanction(&t, &s.id).expect("deletes");
    store.run_queued_policy(&t, T0 + 3).expect("queued policy");
    let f = store.finding(&t, &f.id).expect("finding");
    assert_eq!(f.state, FindingState::Open);
    assert_eq!(f.reopened, 1);
    // Nothing left to do; the full consistency check agrees and opens no duplicate.
    let run = store.run_queued_policy(&t, T0 + 4).expect("queued policy");
    assert_eq!(run, PolicyRun::default());
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
    store.run_queued_policy(&t, T0).expect("queued policy");
    assert!(find(&store, &t, Rule::Unsanctioned, &service("198.18.0.7", 443)).is_none());
    // Two days later: the temporary publication is still up. The time index brings
    // back that one asset, and nothing else.
    let run = store.run_due_policy(&t, T0 + 2 * DAY).expect("due policy");
    assert_eq!((run.assets_evaluated, run.opened), (1, 1));
    let stale = find(&store, &t, Rule::StaleSanction, &service("198.18.0.7", 443)).expect("stale");
    assert_eq!(stale.detail, temp.id);
    assert_eq!(stale.state, FindingState::Open);
    assert!(find(&store, &t, Rule::Unsanctioned, &service("198.18.0.7", 443)).is_none());
    // .9 unseen for longer than the zombie period (30 days by default).
    store.run_due_policy(&t, T0 + 31 * DAY).expect("due policy");
    let zombie = find(&store, &t, Rule::Zombie, &service("198.18.0.9", 80)).expect("zombie");
    assert!(
        zombie.title.contains("not been seen since 2026-11-18"),
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
    store
        .run_queued_policy(&t, T0 + 31 * DAY)
        .expect("queued policy");
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
    assert_eq!(store.next_policy_due(&t).expect("due"), Some(T0 + 7 * DAY));
    let run = store.run_due_policy(&t, T0 + 6 * DAY).expect("due policy");
    assert_eq!(run.assets_evaluated, 0, "nothing is due yet");
    assert_eq!(
        store.finding(&t, &f.id).expect("f").state,
        FindingState::RiskAccepted
    );
    let run = store.run_due_policy(&t, T0 + 8 * DAY).expect("due policy");
    assert_eq!((run.assets_evaluated, run.reopened), (1, 1));
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

/// 10,000 web services on 198.18.{0..99}.{0..99}:80, every hundredth a Redis on 6379
/// instead, scanned and judged once: every one unsanctioned.
fn ten_thousand(store: &Store, t: &TenantId) -> Vec<AssetKey> {
    let mut obs = Vec::with_capacity(10_000);
    let mut keys = Vec::with_capacity(10_000);
    for i in 0..10_000u32 {
        let ip = format!("198.18.{}.{}", i / 100, i % 100);
        if i % 100 == 42 {
            obs.push(port(&ip, 6379, Some(redis())));
            keys.push(service(&ip, 6379));
        } else {
            obs.push(port(&ip, 80, Some(web("nginx"))));
            keys.push(service(&ip, 80));
        }
    }
    scan_once(store, t, "big", T0, obs);
    store.run_policy(t, T0).expect("policy");
    keys
}

fn state_of(store: &Store, t: &TenantId, rule: Rule, asset: &AssetKey) -> Option<FindingState> {
    find(store, t, rule, asset).map(|f| f.state)
}

#[test]
fn a_sanction_edit_re_evaluates_only_the_assets_it_covers() {
    let (_dir, store, t) = fresh();
    ten_thousand(&store, &t);
    let inside = service("198.18.5.7", 80);
    let next_net = service("198.18.6.7", 80);
    let elsewhere = service("198.18.70.7", 80);
    for k in [&inside, &next_net, &elsewhere] {
        assert_eq!(
            state_of(&store, &t, Rule::Unsanctioned, k),
            Some(FindingState::Open)
        );
    }

    // 1% of the services: 198.18.5.0/24.
    let (s, run) = store
        .apply_sanction_edit(
            &t,
            SanctionEdit::Create(sanction("198.18.5.0/24", None, None)),
            "ana",
            T0 + HOUR,
        )
        .expect("sanctions");
    let s = s.expect("created");
    assert_eq!(run.assets_evaluated, 100, "{run:?}");
    assert_eq!((run.closed, run.opened, run.reopened), (100, 0, 0));
    assert_eq!(
        state_of(&store, &t, Rule::Unsanctioned, &inside),
        Some(FindingState::ClosedSanctioned)
    );
    assert_eq!(
        state_of(&store, &t, Rule::Unsanctioned, &next_net),
        Some(FindingState::Open)
    );

    // Moved to the next /24: the old net's 100 reopen, the new net's 100 close.
    let (_, run) = store
        .apply_sanction_edit(
            &t,
            SanctionEdit::Update {
                id: s.id.clone(),
                new: sanction("198.18.6.0/24", None, None),
            },
            "ana",
            T0 + 2 * HOUR,
        )
        .expect("moves");
    assert_eq!(run.assets_evaluated, 200, "{run:?}");
    assert_eq!((run.closed, run.reopened), (100, 100));
    assert_eq!(
        state_of(&store, &t, Rule::Unsanctioned, &inside),
        Some(FindingState::Open)
    );
    assert_eq!(
        state_of(&store, &t, Rule::Unsanctioned, &next_net),
        Some(FindingState::ClosedSanctioned)
    );

    // Only the owner changes: nothing it covers is judged differently, and only the
    // findings naming it (none here) are looked at.
    let mut reworded = sanction("198.18.6.0/24", None, None);
    reworded.owner = "shop team".into();
    let (_, run) = store
        .apply_sanction_edit(
            &t,
            SanctionEdit::Update {
                id: s.id.clone(),
                new: reworded,
            },
            "ana",
            T0 + 3 * HOUR,
        )
        .expect("rewords");
    assert_eq!(run, PolicyRun::default());

    // A port-only sanction: the index on ports finds the hundred Redis services.
    let (_, run) = store
        .apply_sanction_edit(
            &t,
            SanctionEdit::Create(NewSanction {
                matches: SanctionMatch {
                    port: Some(6379),
                    ..Default::default()
                },
                owner: "cache team".into(),
                reason: "shared cache".into(),
                ticket: None,
                expires: None,
            }),
            "ana",
            T0 + 4 * HOUR,
        )
        .expect("sanctions");
    // The Redis of 198.18.6.0/24 was covered already.
    assert_eq!((run.assets_evaluated, run.closed), (100, 99));

    // Withdrawn: what it covered is flagged again, nothing else is read.
    let (_, run) = store
        .apply_sanction_edit(
            &t,
            SanctionEdit::Delete { id: s.id.clone() },
            "ana",
            T0 + 5 * HOUR,
        )
        .expect("deletes");
    // The Redis of 198.18.6.0/24 stays covered by the port sanction.
    assert_eq!((run.assets_evaluated, run.reopened), (100, 99));
    assert_eq!(
        state_of(&store, &t, Rule::Unsanctioned, &next_net),
        Some(FindingState::Open)
    );
    assert_eq!(
        state_of(&store, &t, Rule::Unsanctioned, &elsewhere),
        Some(FindingState::Open)
    );
    assert!(store.queued_policy_work(&t).expect("queue").is_empty());

    // The consistency check finds everything already right.
    let run = store.sweep_policy(&t, T0 + 5 * HOUR).expect("sweep");
    assert_eq!(run.assets_evaluated, 20_000, "services and hosts");
    assert_eq!(
        (run.opened, run.updated, run.closed, run.reopened),
        (0, 0, 0, 0)
    );
}

#[test]
fn a_settings_edit_re_evaluates_only_what_the_changed_setting_reads() {
    let (_dir, store, t) = fresh();
    ten_thousand(&store, &t);
    let redis_key = service("198.18.3.42", 6379);
    assert_eq!(
        state_of(&store, &t, Rule::RiskyExposure, &redis_key),
        Some(FindingState::Open)
    );

    // A severity: the findings of that rule, found in the findings-by-rule index.
    let mut settings = store.policy_settings(&t).expect("settings");
    settings
        .severities
        .insert(Rule::RiskyExposure, Severity::Critical);
    store.set_policy_settings(&t, &settings).expect("sets");
    let run = store.run_queued_policy(&t, T0 + HOUR).expect("queued");
    assert_eq!((run.assets_evaluated, run.updated), (100, 100), "{run:?}");
    let f = find(&store, &t, Rule::RiskyExposure, &redis_key).expect("risky");
    assert_eq!(f.severity, Severity::Critical);

    // SLA days: due dates are set when findings open; nothing to evaluate.
    settings.sla_days.insert(Severity::High, 3);
    store.set_policy_settings(&t, &settings).expect("sets");
    let run = store.run_queued_policy(&t, T0 + HOUR).expect("queued");
    assert_eq!(run.assets_evaluated, 0);

    // A risky class removed: the services of that class (found by the risk index).
    assert!(settings.risky_classes.remove("cache"));
    store.set_policy_settings(&t, &settings).expect("sets");
    let run = store.run_queued_policy(&t, T0 + 2 * HOUR).expect("queued");
    assert_eq!((run.assets_evaluated, run.closed), (100, 100), "{run:?}");
    assert_eq!(
        state_of(&store, &t, Rule::RiskyExposure, &redis_key),
        Some(FindingState::ClosedByPolicy)
    );
    // ...and added back.
    settings.risky_classes.insert("cache".into());
    store.set_policy_settings(&t, &settings).expect("sets");
    let run = store.run_queued_policy(&t, T0 + 3 * HOUR).expect("queued");
    assert_eq!((run.assets_evaluated, run.reopened), (100, 100), "{run:?}");
}

#[test]
fn a_domain_pattern_sanction_reads_only_the_names_in_its_zone() {
    let (_dir, store, t) = fresh();
    begin_dns(&store, &t, "d1", "example.test");
    let mut names = Vec::new();
    for i in 0..20 {
        names.push(name(
            &format!("n{i}.shop.example.test"),
            None,
            Status::Resolved,
        ));
        names.push(name(
            &format!("n{i}.www.example.test"),
            None,
            Status::Resolved,
        ));
    }
    store
        .apply(&t, &batch("d1", 0, T0, names))
        .expect("applies");
    store.run_policy(&t, T0).expect("policy");
    let mut glob = sanction("198.18.0.0/24", None, None);
    glob.matches = SanctionMatch {
        domain: Some("*.shop.example.test".into()),
        ..Default::default()
    };
    let (_, run) = store
        .apply_sanction_edit(&t, SanctionEdit::Create(glob), "ana", T0 + 1)
        .expect("sanctions");
    assert_eq!((run.assets_evaluated, run.closed), (20, 20), "{run:?}");
    assert_eq!(
        state_of(
            &store,
            &t,
            Rule::Unsanctioned,
            &domain("n3.shop.example.test")
        ),
        Some(FindingState::ClosedSanctioned)
    );
    assert_eq!(
        state_of(
            &store,
            &t,
            Rule::Unsanctioned,
            &domain("n3.www.example.test")
        ),
        Some(FindingState::Open)
    );
}

/// A self-signed certificate for `cn` valid until the given day (UTC midnight).
fn certificate_until(cn: &str, y: i32, m: u8, d: u8) -> aperture_fingerprints::cert::CertSummary {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let der = params.self_signed(&key).expect("cert").der().to_vec();
    aperture_fingerprints::cert::summarize(&der, 0, T0 / 1000, Some(cn), 30).expect("summary")
}

#[test]
fn time_based_rules_fire_from_the_index_at_their_instant_without_a_sweep() {
    let (_dir, store, t) = fresh();
    // Fifty bystanders no time-based rule concerns, a temporarily sanctioned service,
    // a sanctioned one that will stop being seen, and one presenting a certificate
    // that ends 2026-12-25 (T0 is 2026-11-18).
    let cert = certificate_until("www.example.test", 2026, 12, 25);
    let not_after = cert.not_after_unix * 1000;
    let mut obs: Vec<Observation> = (0..50)
        .map(|i| port(&format!("198.19.0.{i}"), 22, None))
        .collect();
    obs.push(port("198.18.0.7", 443, Some(web("nginx"))));
    obs.push(port("198.18.0.9", 80, Some(web("nginx"))));
    obs.push(port("198.18.0.20", 443, Some(https(&cert))));
    scan_once(&store, &t, "s1", T0, obs);
    store
        .create_sanction(
            &t,
            sanction("198.18.0.7/32", None, Some(T0 + 10 * DAY)),
            "ana",
            T0,
        )
        .expect("sanction");
    store
        .create_sanction(&t, sanction("198.18.0.9/32", None, None), "ana", T0)
        .expect("sanction");
    store.run_policy(&t, T0).expect("policy");
    store.run_queued_policy(&t, T0).expect("queued");
    let temp = service("198.18.0.7", 443);
    let kept = service("198.18.0.9", 80);
    let tls = service("198.18.0.20", 443);
    // The .9 service is seen again on day 5 (scans of other things leave it be).
    scan_once(
        &store,
        &t,
        "s2",
        T0 + 5 * DAY,
        vec![
            port("198.18.0.9", 80, Some(web("nginx"))),
            port("198.18.0.7", 443, Some(web("nginx"))),
            port("198.18.0.20", 443, Some(https(&cert))),
        ],
    );
    store.run_policy(&t, T0 + 5 * DAY).expect("policy");

    // Expiring window of the certificate: 30 days before its end.
    let expiring_at = not_after - 30 * DAY;
    assert!(expiring_at > T0 + 5 * DAY && expiring_at < T0 + 10 * DAY);
    assert_eq!(store.next_policy_due(&t).expect("due"), Some(expiring_at));
    assert_eq!(
        store
            .run_due_policy(&t, expiring_at - 1)
            .expect("due")
            .assets_evaluated,
        0
    );
    assert!(find(&store, &t, Rule::CertificateExpiring, &tls).is_none());
    let run = store.run_due_policy(&t, expiring_at).expect("due");
    assert_eq!((run.assets_evaluated, run.opened), (1, 1), "{run:?}");
    assert!(find(&store, &t, Rule::CertificateExpiring, &tls)
        .is_some_and(|f| f.state == FindingState::Open));

    // The temporary sanction expires: stale, from the index, at that instant.
    assert_eq!(store.next_policy_due(&t).expect("due"), Some(T0 + 10 * DAY));
    let run = store.run_due_policy(&t, T0 + 10 * DAY).expect("due");
    assert_eq!(run.assets_evaluated, 1, "{run:?}");
    assert!(
        find(&store, &t, Rule::StaleSanction, &temp).is_some_and(|f| f.state == FindingState::Open)
    );

    // A sighting that changes nothing makes no change event, so .9 still comes due 30
    // days after its first sighting: judged again, not a zombie, due again 30 days after
    // it was last seen (day 5). One evaluation per zombie period, not one per scan.
    assert_eq!(store.next_policy_due(&t).expect("due"), Some(T0 + 30 * DAY));
    let run = store.run_due_policy(&t, T0 + 30 * DAY).expect("due");
    assert_eq!((run.assets_evaluated, run.opened), (1, 0), "{run:?}");
    let zombie_at = T0 + 5 * DAY + 30 * DAY;
    assert_eq!(store.next_policy_due(&t).expect("due"), Some(zombie_at));
    let run = store.run_due_policy(&t, zombie_at - 1).expect("due");
    assert_eq!(run.assets_evaluated, 0, "{run:?}");
    assert!(find(&store, &t, Rule::Zombie, &kept).is_none());
    let run = store.run_due_policy(&t, zombie_at).expect("due");
    assert_eq!((run.assets_evaluated, run.opened), (1, 1), "{run:?}");
    assert!(find(&store, &t, Rule::Zombie, &kept).is_some());

    // The certificate's end: expiring gives way to expired.
    assert!(not_after > zombie_at);
    assert_eq!(store.next_policy_due(&t).expect("due"), Some(not_after));
    let run = store.run_due_policy(&t, not_after).expect("due");
    assert_eq!(
        (run.assets_evaluated, run.opened, run.closed),
        (1, 1, 1),
        "{run:?}"
    );
    assert!(find(&store, &t, Rule::CertificateExpired, &tls)
        .is_some_and(|f| f.state == FindingState::Open));
    assert!(find(&store, &t, Rule::CertificateExpiring, &tls).is_some_and(|f| f.state.is_closed()));

    // Nothing is left to come due; running again does nothing.
    let run = store
        .run_due_policy(&t, zombie_at + 365 * DAY)
        .expect("due");
    assert_eq!(run.assets_evaluated, 0);
    assert_eq!(store.next_policy_due(&t).expect("due"), None);
}

#[test]
fn a_shorter_zombie_period_is_applied_at_once_and_rescheduled() {
    let (_dir, store, t) = fresh();
    let mut obs: Vec<Observation> = (0..20)
        .map(|i| port(&format!("198.18.0.{i}"), 80, Some(web("nginx"))))
        .collect();
    obs.extend((0..20).map(|i| port(&format!("198.19.0.{i}"), 80, Some(web("nginx")))));
    scan_once(&store, &t, "s1", T0, obs);
    store
        .create_sanction(&t, sanction("198.18.0.0/24", None, None), "ana", T0)
        .expect("sanction");
    store.run_policy(&t, T0).expect("policy");
    store.run_queued_policy(&t, T0).expect("queued");
    assert_eq!(store.next_policy_due(&t).expect("due"), Some(T0 + 30 * DAY));

    // Ten days on, the period becomes 7 days: the sanctioned twenty are zombies now.
    let mut settings = store.policy_settings(&t).expect("settings");
    settings.zombie_days = 7;
    store.set_policy_settings(&t, &settings).expect("sets");
    let run = store.run_queued_policy(&t, T0 + 10 * DAY).expect("queued");
    assert_eq!((run.assets_evaluated, run.opened), (20, 20), "{run:?}");
    assert!(find(&store, &t, Rule::Zombie, &service("198.18.0.3", 80)).is_some());
    assert!(find(&store, &t, Rule::Zombie, &service("198.19.0.3", 80)).is_none());

    // Back to 30 days: those zombies are no longer (the findings-by-rule index finds
    // them) and come due again at day 30.
    settings.zombie_days = 30;
    store.set_policy_settings(&t, &settings).expect("sets");
    let run = store.run_queued_policy(&t, T0 + 11 * DAY).expect("queued");
    assert_eq!((run.assets_evaluated, run.closed), (20, 20), "{run:?}");
    assert_eq!(store.next_policy_due(&t).expect("due"), Some(T0 + 30 * DAY));
    let run = store.run_due_policy(&t, T0 + 30 * DAY).expect("due");
    assert_eq!((run.assets_evaluated, run.reopened), (20, 20), "{run:?}");
}

#[test]
fn indexes_are_built_once_for_a_tenant_that_never_had_them() {
    let (_dir, store, t) = fresh();
    scan_once(&store, &t, "s1", T0, vec![port("198.18.0.7", 22, None)]);
    let first = store.ensure_policy_indexes(&t, T0).expect("builds");
    assert!(first.is_some_and(|r| r.assets_evaluated == 2 && r.opened == 1));
    assert!(store
        .ensure_policy_indexes(&t, T0)
        .expect("built")
        .is_none());
    let nobody = TenantId::new("nobody").expect("id");
    assert!(matches!(
        store.ensure_policy_indexes(&nobody, T0),
        Err(StoreError::NotFound(_))
    ));
}
