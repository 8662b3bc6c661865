//! The unauthenticated-access rule over a real store: a grab's verdict becomes facts,
//! an open service a finding with its evidence and the policy table's severity, an
//! auth-required one none; a rescan that finds the door shut closes it, and a per-check
//! severity edit re-evaluates exactly those findings.

mod common;

use aperture_fingerprints::unauth::Unauth;
use aperture_storage::policy::*;
use aperture_storage::*;
use common::*;

fn find(store: &Store, t: &TenantId, asset: &AssetKey) -> Option<Finding> {
    store
        .findings_of(t, asset)
        .expect("findings")
        .into_iter()
        .find(|f| f.rule == Rule::UnauthenticatedAccess)
}

fn with(
    mut r: aperture_fingerprints::report::ServiceReport,
    check: &str,
    open: bool,
    evidence: &str,
) -> aperture_fingerprints::report::ServiceReport {
    r.unauth = Some(Unauth {
        check: check.into(),
        open,
        evidence: evidence.into(),
        login: false,
    });
    r
}

#[test]
fn open_services_are_findings_with_evidence_and_auth_required_ones_are_not() {
    let (_dir, store, t) = fresh();
    let open_redis = with(
        redis(),
        "redis",
        true,
        "redis INFO: redis_version 7.0.15, 3 keys in db0",
    );
    let shut_redis = with(
        redis(),
        "redis",
        false,
        "redis answers INFO with -NOAUTH: authentication required",
    );
    let listing = with(
        web("nginx"),
        "directory-listing",
        true,
        "directory listing at / (3 entries)",
    );
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![
            port("198.18.0.7", 6379, Some(open_redis.clone())),
            port("198.18.0.8", 6379, Some(shut_redis.clone())),
            port("198.18.0.9", 80, Some(listing)),
        ],
    );
    store.run_policy(&t, T0).expect("policy");

    let open = find(&store, &t, &service("198.18.0.7", 6379)).expect("open redis finding");
    assert_eq!(open.state, FindingState::Open);
    assert_eq!(
        open.severity,
        Severity::Critical,
        "open databases are critical"
    );
    assert_eq!(open.detail, "redis");
    assert_eq!(open.evidence["check"], "redis");
    assert_eq!(
        open.evidence["readable"],
        "redis INFO: redis_version 7.0.15, 3 keys in db0"
    );
    assert_eq!(open.due, Some(T0 + 7 * DAY), "critical: 7 days");
    assert!(
        open.title.contains("redis answers without authentication"),
        "{}",
        open.title
    );

    assert!(
        find(&store, &t, &service("198.18.0.8", 6379)).is_none(),
        "a redis that asks for a password is no finding"
    );
    let shut = store
        .asset(&t, &service("198.18.0.8", 6379))
        .expect("asset");
    assert_eq!(
        shut.fact("unauth.open"),
        Some("false"),
        "the refusal is recorded"
    );

    let dir = find(&store, &t, &service("198.18.0.9", 80)).expect("listing finding");
    assert_eq!(dir.severity, Severity::Medium, "per-check severity");

    // The password is set: the rescan sees the refusal and verifies the fix.
    scan_once(
        &store,
        &t,
        "s2",
        T0 + DAY,
        vec![
            port("198.18.0.7", 6379, Some(shut_redis)),
            port("198.18.0.8", 6379, Some(redis())),
        ],
    );
    store.run_policy(&t, T0 + DAY).expect("policy");
    let closed = find(&store, &t, &service("198.18.0.7", 6379)).expect("finding kept");
    assert_eq!(closed.state, FindingState::ClosedVerified);
    // A grab without any verdict (no check ran) opens nothing either.
    assert!(find(&store, &t, &service("198.18.0.8", 6379)).is_none());
}

#[test]
fn a_per_check_severity_edit_moves_only_those_findings() {
    let (_dir, store, t) = fresh();
    scan_once(
        &store,
        &t,
        "s1",
        T0,
        vec![
            port(
                "198.18.0.7",
                6379,
                Some(with(redis(), "redis", true, "redis INFO")),
            ),
            port(
                "198.18.0.9",
                80,
                Some(with(web("nginx"), "directory-listing", true, "listing")),
            ),
        ],
    );
    store.run_policy(&t, T0).expect("policy");
    let mut settings = store.policy_settings(&t).expect("settings");
    assert!(!settings.login_checks, "logging in is opt-in");
    settings
        .unauth_severities
        .insert("directory-listing".into(), Severity::High);
    store.set_policy_settings(&t, &settings).expect("sets");
    let run = store.run_queued_policy(&t, T0 + HOUR).expect("queued");
    assert_eq!((run.assets_evaluated, run.updated), (2, 1), "{run:?}");
    let dir = find(&store, &t, &service("198.18.0.9", 80)).expect("listing");
    assert_eq!(dir.severity, Severity::High);
    let redis = find(&store, &t, &service("198.18.0.7", 6379)).expect("redis");
    assert_eq!(redis.severity, Severity::Critical);

    // The opt-in alone changes no finding (the next scan does): nothing to evaluate.
    settings.login_checks = true;
    store.set_policy_settings(&t, &settings).expect("sets");
    let run = store.run_queued_policy(&t, T0 + 2 * HOUR).expect("queued");
    assert_eq!(run.assets_evaluated, 0, "{run:?}");
}
