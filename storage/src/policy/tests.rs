use super::*;
use crate::keys::AssetKey;
use crate::model::{Asset, AssetStatus};
use proptest::prelude::*;
use std::net::IpAddr;

const NOW: Millis = 1_700_000_000_000;
const HOUR: Millis = 3_600_000;
const DAY: Millis = 86_400_000;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address parses")
}

fn sha() -> String {
    "ab".repeat(32)
}

/// A present asset, first seen long ago, seen an hour ago, unchanged for long.
fn asset(key: AssetKey, facts: &[(&str, &str)]) -> Asset {
    Asset {
        kind: key.kind(),
        key,
        status: AssetStatus::Present,
        facts: facts
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        first_seen: NOW - 100 * DAY,
        last_seen: NOW - HOUR,
        last_changed: NOW - 100 * DAY,
        times_seen: 10,
        last_scan: "scan-1".into(),
        changes: Vec::new(),
    }
}

fn service(addr: &str, port: u16, facts: &[(&str, &str)]) -> Asset {
    asset(AssetKey::tcp(ip(addr), port), facts)
}

fn domain(name: &str, facts: &[(&str, &str)]) -> Asset {
    asset(AssetKey::domain(name).expect("test domain is valid"), facts)
}

fn host(addr: &str) -> Asset {
    asset(AssetKey::Host(ip(addr)), &[])
}

fn certificate(facts: &[(&str, &str)]) -> Asset {
    asset(
        AssetKey::certificate(&sha()).expect("test sha is valid"),
        facts,
    )
}

fn absent(mut a: Asset) -> Asset {
    a.status = AssetStatus::Absent;
    a
}

fn last_seen_days_ago(mut a: Asset, days: Millis) -> Asset {
    a.last_seen = NOW - days * DAY;
    a
}

fn sanction(id: &str, matches: SanctionMatch, expires: Option<Millis>) -> Sanction {
    Sanction {
        id: id.into(),
        matches,
        owner: "alice@example.com".into(),
        reason: "public web shop".into(),
        ticket: Some("CHG-1".into()),
        expires,
        created: NOW - 200 * DAY,
        created_by: "alice".into(),
    }
}

fn by_net(net: &str) -> SanctionMatch {
    SanctionMatch {
        net: Some(net.parse().expect("test net parses")),
        ..SanctionMatch::default()
    }
}

fn by_domain(pattern: &str) -> SanctionMatch {
    SanctionMatch {
        domain: Some(pattern.into()),
        ..SanctionMatch::default()
    }
}

fn cx<'a>(settings: &'a PolicySettings, sanctions: &'a [Sanction]) -> Context<'a> {
    Context {
        now: NOW,
        settings,
        sanctions,
        baseline: None,
        certificate: None,
    }
}

/// The findings [`evaluate`] expects (its next instant is tested on its own below).
fn expectations(a: &Asset, cx: &Context<'_>) -> Vec<Expected> {
    evaluate(a, cx).expected
}

/// Evaluates with default settings, no baseline, no certificate.
fn eval(a: &Asset, sanctions: &[Sanction]) -> Vec<Expected> {
    let settings = PolicySettings::default();
    expectations(a, &cx(&settings, sanctions))
}

fn eval_cert(a: &Asset, cert: &Asset) -> Vec<Expected> {
    let settings = PolicySettings::default();
    let sanctions = [sanction("s-all", by_net("0.0.0.0/0"), None)];
    expectations(
        a,
        &Context {
            certificate: Some(cert),
            ..cx(&settings, &sanctions)
        },
    )
}

fn rules(out: &[Expected]) -> Vec<Rule> {
    out.iter().map(|e| e.rule).collect()
}

fn find(out: &[Expected], rule: Rule) -> &Expected {
    out.iter()
        .find(|e| e.rule == rule)
        .unwrap_or_else(|| panic!("no {rule:?} in {out:#?}"))
}

fn expected(rule: Rule, detail: &str, severity: Severity) -> Expected {
    Expected {
        rule,
        detail: detail.into(),
        severity,
        title: format!("{rule:?} {detail}"),
        evidence: [("k".to_owned(), "v".to_owned())].into(),
    }
}

/// A finding opened 10 days ago on a service, then put in `state` (directly).
fn finding(rule: Rule, state: FindingState) -> (Finding, Asset) {
    let a = service("198.18.0.7", 443, &[]);
    let settings = PolicySettings::default();
    let e = expected(rule, "", settings.severity(rule));
    let mut f = open(&a.key, &e, &settings, NOW - 10 * DAY);
    f.state = state;
    (f, a)
}

fn user(role: Role) -> Actor {
    Actor::User {
        name: format!("{role:?}").to_lowercase(),
        role,
    }
}

fn req(to: FindingState, comment: &str, until: Option<Millis>) -> TransitionRequest {
    TransitionRequest {
        to,
        comment: comment.into(),
        until,
    }
}

/// A request to `to` that satisfies every content requirement (until, comment).
fn good_req(to: FindingState) -> TransitionRequest {
    req(to, "because", Some(NOW + 30 * DAY))
}

fn refusal(r: Result<()>) -> String {
    match r {
        Err(StoreError::Refused(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn invalid(r: Result<()>) -> String {
    match r {
        Err(StoreError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

const ALL_STATES: [FindingState; 9] = [
    FindingState::Open,
    FindingState::Acknowledged,
    FindingState::InProgress,
    FindingState::Fixed,
    FindingState::ClosedVerified,
    FindingState::ClosedSanctioned,
    FindingState::ClosedByPolicy,
    FindingState::RiskAccepted,
    FindingState::FalsePositive,
];

const ACTIVE: [FindingState; 3] = [
    FindingState::Open,
    FindingState::Acknowledged,
    FindingState::InProgress,
];

const CLOSED: [FindingState; 3] = [
    FindingState::ClosedVerified,
    FindingState::ClosedSanctioned,
    FindingState::ClosedByPolicy,
];

// ---------------------------------------------------------------------------------------
// evaluate: unsanctioned and stale sanctions
// ---------------------------------------------------------------------------------------

#[test]
fn unsanctioned_service_is_flagged() {
    let a = service("198.18.0.7", 443, &[("service", "https")]);
    let out = eval(&a, &[]);
    assert_eq!(rules(&out), vec![Rule::Unsanctioned]);
    let e = &out[0];
    assert_eq!(e.detail, "");
    assert_eq!(e.severity, Severity::High);
    assert!(
        e.title.contains("service:198.18.0.7:443/tcp"),
        "{}",
        e.title
    );
    assert!(e.evidence.is_empty());
}

#[test]
fn unsanctioned_domain_is_flagged() {
    let out = eval(&domain("www.example.com", &[]), &[]);
    assert_eq!(rules(&out), vec![Rule::Unsanctioned]);
    assert!(out[0].title.contains("domain:www.example.com"));
}

#[test]
fn hosts_and_certificates_are_never_unsanctioned() {
    assert!(eval(&host("198.18.0.7"), &[]).is_empty());
    assert!(eval(&certificate(&[("self_signed", "true")]), &[]).is_empty());
}

#[test]
fn related_domains_are_not_exposures() {
    let settings = PolicySettings::default();
    let mut a = domain("cdn.example.net", &[("related", "true")]);
    a.first_seen = NOW - HOUR;
    let out = expectations(
        &a,
        &Context {
            baseline: Some(NOW - DAY),
            ..cx(&settings, &[])
        },
    );
    assert!(out.is_empty(), "{out:#?}");
    // "related" must be exactly true to exempt.
    let out = eval(&domain("cdn.example.net", &[("related", "false")]), &[]);
    assert_eq!(rules(&out), vec![Rule::Unsanctioned]);
}

#[test]
fn a_valid_sanction_suppresses_unsanctioned() {
    let a = service("198.18.0.7", 443, &[]);
    for expires in [None, Some(NOW + 1), Some(NOW + 365 * DAY)] {
        let s = [sanction("s-1", by_net("198.18.0.0/24"), expires)];
        assert!(eval(&a, &s).is_empty(), "expires {expires:?}");
    }
    let d = domain("www.example.com", &[]);
    let s = [sanction("s-d", by_domain("www.example.com"), None)];
    assert!(eval(&d, &s).is_empty());
}

#[test]
fn a_sanction_that_does_not_match_does_not_help() {
    let a = service("198.18.0.7", 443, &[]);
    let s = [sanction("s-1", by_net("198.18.1.0/24"), None)];
    assert_eq!(rules(&eval(&a, &s)), vec![Rule::Unsanctioned]);
}

#[test]
fn only_expired_sanctions_make_a_stale_sanction() {
    let a = service("198.18.0.7", 443, &[]);
    // Expiry exactly now counts as expired.
    for expires in [NOW - DAY, NOW] {
        let s = [sanction("s-old", by_net("198.18.0.0/24"), Some(expires))];
        let out = eval(&a, &s);
        assert_eq!(rules(&out), vec![Rule::StaleSanction], "expires {expires}");
        let e = &out[0];
        assert_eq!(e.detail, "s-old");
        assert_eq!(e.severity, Severity::Medium);
        assert_eq!(e.evidence["sanction"], "s-old");
        assert_eq!(e.evidence["owner"], "alice@example.com");
        assert_eq!(e.evidence["expired"], expires.to_string());
        assert!(e.title.contains("s-old"));
    }
}

#[test]
fn each_expired_sanction_gets_its_own_stale_finding() {
    let a = service("198.18.0.7", 443, &[]);
    let s = [
        sanction("s-a", by_net("198.18.0.0/24"), Some(NOW - DAY)),
        sanction("s-b", by_net("198.18.0.7/32"), Some(NOW - 2 * DAY)),
        sanction("s-other", by_net("10.0.0.0/8"), Some(NOW - DAY)),
    ];
    let out = eval(&a, &s);
    assert_eq!(rules(&out), vec![Rule::StaleSanction, Rule::StaleSanction]);
    let details: Vec<&str> = out.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["s-a", "s-b"]);
}

#[test]
fn an_expired_sanction_beside_a_valid_one_is_not_stale() {
    let a = service("198.18.0.7", 443, &[]);
    let s = [
        sanction("s-old", by_net("198.18.0.0/24"), Some(NOW - DAY)),
        sanction("s-new", by_net("198.18.0.0/24"), Some(NOW + DAY)),
    ];
    assert!(eval(&a, &s).is_empty());
}

// ---------------------------------------------------------------------------------------
// evaluate: zombies
// ---------------------------------------------------------------------------------------

#[test]
fn a_sanctioned_asset_unseen_for_the_zombie_period_is_a_zombie() {
    let s = [sanction("s-1", by_net("198.18.0.0/24"), None)];
    for days in [30, 31, 400] {
        let a = last_seen_days_ago(service("198.18.0.7", 443, &[]), days);
        let out = eval(&a, &s);
        assert_eq!(rules(&out), vec![Rule::Zombie], "{days} days");
        let e = &out[0];
        assert_eq!(e.detail, "s-1");
        assert_eq!(e.severity, Severity::Low);
        assert_eq!(e.evidence["sanction"], "s-1");
        assert_eq!(e.evidence["owner"], "alice@example.com");
        let since = crate::model::day_string(a.last_seen);
        assert!(
            e.title.contains(&format!("not been seen since {since}")),
            "{}",
            e.title
        );
    }
}

#[test]
fn a_recently_seen_sanctioned_asset_is_not_a_zombie() {
    let s = [sanction("s-1", by_net("198.18.0.0/24"), None)];
    for days in [0, 1, 29] {
        let a = last_seen_days_ago(service("198.18.0.7", 443, &[]), days);
        assert!(eval(&a, &s).is_empty(), "{days} days");
    }
    // Absent but recently seen service: not yet a zombie.
    let a = absent(service("198.18.0.7", 443, &[]));
    assert!(eval(&a, &s).is_empty());
}

#[test]
fn zombie_period_comes_from_settings() {
    let settings = PolicySettings {
        zombie_days: 5,
        ..PolicySettings::default()
    };
    let s = [sanction("s-1", by_net("198.18.0.0/24"), None)];
    let a = last_seen_days_ago(service("198.18.0.7", 443, &[]), 6);
    assert_eq!(
        rules(&expectations(&a, &cx(&settings, &s))),
        vec![Rule::Zombie]
    );
    let a = last_seen_days_ago(service("198.18.0.7", 443, &[]), 4);
    assert!(expectations(&a, &cx(&settings, &s)).is_empty());
}

#[test]
fn a_sanctioned_name_that_no_longer_resolves_is_a_zombie() {
    let s = [sanction("s-d", by_domain("*.example.com"), None)];
    let a = absent(domain("old.example.com", &[]));
    let out = eval(&a, &s);
    assert_eq!(rules(&out), vec![Rule::Zombie]);
    assert!(
        out[0].title.contains("no longer resolves"),
        "{}",
        out[0].title
    );
    assert_eq!(out[0].detail, "s-d");
}

#[test]
fn an_unsanctioned_asset_is_never_a_zombie() {
    let a = last_seen_days_ago(service("198.18.0.7", 443, &[]), 100);
    assert_eq!(rules(&eval(&a, &[])), vec![Rule::Unsanctioned]);
    assert!(eval(&absent(a), &[]).is_empty());
    assert!(eval(&absent(domain("old.example.com", &[])), &[]).is_empty());
}

#[test]
fn hosts_are_never_zombies() {
    let s = [sanction("s-1", by_net("198.18.0.0/24"), None)];
    let a = last_seen_days_ago(host("198.18.0.7"), 100);
    assert!(eval(&a, &s).is_empty());
}

#[test]
fn an_absent_asset_covered_only_by_an_expired_sanction_gets_nothing() {
    let s = [sanction("s-old", by_net("198.18.0.0/24"), Some(NOW - DAY))];
    let a = absent(last_seen_days_ago(service("198.18.0.7", 443, &[]), 100));
    assert!(eval(&a, &s).is_empty());
}

// ---------------------------------------------------------------------------------------
// evaluate: risky exposure
// ---------------------------------------------------------------------------------------

fn sanctioned_eval(a: &Asset) -> Vec<Expected> {
    let s = [
        sanction("s-all", by_net("0.0.0.0/0"), None),
        sanction("s-names", by_domain("*"), None),
    ];
    eval(a, &s)
}

#[test]
fn a_risky_class_is_a_risky_exposure() {
    let a = service("198.18.0.7", 22, &[("risk", "remote-administration")]);
    let out = sanctioned_eval(&a);
    assert_eq!(rules(&out), vec![Rule::RiskyExposure]);
    let e = &out[0];
    assert_eq!(e.detail, "remote-administration");
    assert_eq!(e.severity, Severity::High);
    assert_eq!(e.evidence["risk"], "remote-administration");
    assert!(e.title.contains("remote-administration"));
}

#[test]
fn web_is_not_risky_by_default_but_can_be_made_so() {
    let a = service("198.18.0.7", 443, &[("risk", "web")]);
    assert!(sanctioned_eval(&a).is_empty());
    let mut settings = PolicySettings::default();
    settings.risky_classes.insert("web".into());
    let s = [sanction("s-all", by_net("0.0.0.0/0"), None)];
    let out = expectations(&a, &cx(&settings, &s));
    assert_eq!(rules(&out), vec![Rule::RiskyExposure]);
    assert_eq!(out[0].detail, "web");
}

#[test]
fn removing_a_class_from_settings_stops_flagging_it() {
    let a = service("198.18.0.7", 6379, &[("risk", "cache")]);
    assert_eq!(rules(&sanctioned_eval(&a)), vec![Rule::RiskyExposure]);
    let mut settings = PolicySettings::default();
    assert!(settings.risky_classes.remove("cache"));
    let s = [sanction("s-all", by_net("0.0.0.0/0"), None)];
    assert!(expectations(&a, &cx(&settings, &s)).is_empty());
}

#[test]
fn cleartext_credentials_are_a_risky_exposure() {
    let a = service("198.18.0.7", 21, &[("cleartext_auth", "true")]);
    let out = sanctioned_eval(&a);
    assert_eq!(rules(&out), vec![Rule::RiskyExposure]);
    assert_eq!(out[0].detail, "cleartext-auth");
    assert_eq!(out[0].evidence["cleartext_auth"], "true");

    let a = service("198.18.0.7", 21, &[("cleartext_auth", "false")]);
    assert!(sanctioned_eval(&a).is_empty());

    let settings = PolicySettings {
        cleartext_auth_is_risky: false,
        ..PolicySettings::default()
    };
    let s = [sanction("s-all", by_net("0.0.0.0/0"), None)];
    let a = service("198.18.0.7", 21, &[("cleartext_auth", "true")]);
    assert!(expectations(&a, &cx(&settings, &s)).is_empty());
}

#[test]
fn a_risky_class_with_cleartext_auth_gives_two_findings() {
    let a = service(
        "198.18.0.7",
        23,
        &[
            ("risk", "remote-administration"),
            ("cleartext_auth", "true"),
        ],
    );
    let out = sanctioned_eval(&a);
    let details: Vec<(Rule, &str)> = out.iter().map(|e| (e.rule, e.detail.as_str())).collect();
    assert_eq!(
        details,
        [
            (Rule::RiskyExposure, "remote-administration"),
            (Rule::RiskyExposure, "cleartext-auth")
        ]
    );
}

#[test]
fn risk_facts_on_domains_and_hosts_are_ignored() {
    let d = domain(
        "www.example.com",
        &[
            ("risk", "remote-administration"),
            ("cleartext_auth", "true"),
        ],
    );
    assert!(sanctioned_eval(&d).is_empty());
    let mut h = host("198.18.0.7");
    h.facts.insert("risk".into(), "database".into());
    assert!(sanctioned_eval(&h).is_empty());
}

#[test]
fn unsanctioned_and_risky_are_both_reported() {
    let a = service("198.18.0.7", 22, &[("risk", "remote-administration")]);
    assert_eq!(
        rules(&eval(&a, &[])),
        vec![Rule::Unsanctioned, Rule::RiskyExposure]
    );
}

// ---------------------------------------------------------------------------------------
// evaluate: certificates
// ---------------------------------------------------------------------------------------

fn tls_service(extra: &[(&str, &str)]) -> Asset {
    let sha = sha();
    let mut facts = vec![("certificate", sha.as_str())];
    facts.extend_from_slice(extra);
    service("198.18.0.7", 443, &facts)
}

/// A certificate asset whose not_after is `now + offset` (milliseconds), stored in
/// seconds as the fact requires.
fn cert_expiring_in(offset: Millis) -> Asset {
    let secs = ((NOW + offset) / 1000).to_string();
    certificate(&[
        ("not_after_unix", secs.as_str()),
        ("not_after", "2023-12-01T00:00:00Z"),
    ])
}

#[test]
fn an_expired_certificate_is_flagged() {
    for offset in [-DAY, -1000, 0] {
        let out = eval_cert(&tls_service(&[]), &cert_expiring_in(offset));
        assert_eq!(
            rules(&out),
            vec![Rule::CertificateExpired],
            "offset {offset}"
        );
        let e = &out[0];
        assert_eq!(e.detail, sha());
        assert_eq!(e.severity, Severity::High);
        assert_eq!(e.evidence["certificate"], sha());
        assert_eq!(e.evidence["not_after"], "2023-12-01T00:00:00Z");
        assert!(e.title.contains("2023-12-01T00:00:00Z"));
    }
}

#[test]
fn a_certificate_expiring_soon_is_flagged() {
    for offset in [1000, DAY, 29 * DAY, 30 * DAY] {
        let out = eval_cert(&tls_service(&[]), &cert_expiring_in(offset));
        assert_eq!(
            rules(&out),
            vec![Rule::CertificateExpiring],
            "offset {offset}"
        );
        assert_eq!(out[0].detail, sha());
        assert_eq!(out[0].severity, Severity::Medium);
    }
}

#[test]
fn a_certificate_valid_beyond_the_window_is_fine() {
    for offset in [30 * DAY + 1000, 31 * DAY, 365 * DAY] {
        let out = eval_cert(&tls_service(&[]), &cert_expiring_in(offset));
        assert!(out.is_empty(), "offset {offset}: {out:#?}");
    }
    // The window comes from settings.
    let settings = PolicySettings {
        expiring_days: 60,
        ..PolicySettings::default()
    };
    let cert = cert_expiring_in(45 * DAY);
    let out = expectations(
        &tls_service(&[]),
        &Context {
            certificate: Some(&cert),
            ..cx(&settings, &[sanction("s", by_net("0.0.0.0/0"), None)])
        },
    );
    assert_eq!(rules(&out), vec![Rule::CertificateExpiring]);
}

#[test]
fn not_after_unix_is_in_seconds() {
    // A value in seconds a year ahead: not expired, not expiring. Misreading it as
    // milliseconds would put it in 1970 and flag it expired.
    let secs = ((NOW + 365 * DAY) / 1000).to_string();
    let cert = certificate(&[("not_after_unix", secs.as_str())]);
    assert!(eval_cert(&tls_service(&[]), &cert).is_empty());
    // Unparsable: no time-based finding.
    let cert = certificate(&[("not_after_unix", "soon")]);
    assert!(eval_cert(&tls_service(&[]), &cert).is_empty());
}

#[test]
fn self_signed_weak_key_and_mismatched_certificates_are_flagged() {
    let cert = certificate(&[
        ("self_signed", "true"),
        ("issuer", "CN=me"),
        ("weak_key", "true"),
        ("key_bits", "1024"),
        ("sans", "other.example.com"),
    ]);
    let a = tls_service(&[("certificate.hostname_mismatch", "true")]);
    let out = eval_cert(&a, &cert);
    assert_eq!(
        rules(&out),
        vec![
            Rule::CertificateSelfSigned,
            Rule::CertificateWeakKey,
            Rule::CertificateHostnameMismatch
        ]
    );
    for e in &out {
        assert_eq!(e.detail, sha());
        assert_eq!(e.evidence["certificate"], sha());
        assert_eq!(e.severity, Severity::Medium);
    }
    assert_eq!(
        find(&out, Rule::CertificateSelfSigned).evidence["issuer"],
        "CN=me"
    );
    assert_eq!(
        find(&out, Rule::CertificateWeakKey).evidence["key_bits"],
        "1024"
    );
    assert_eq!(
        find(&out, Rule::CertificateHostnameMismatch).evidence["sans"],
        "other.example.com"
    );
}

#[test]
fn certificate_flags_must_be_true() {
    let cert = certificate(&[("self_signed", "false"), ("weak_key", "no")]);
    let a = tls_service(&[("certificate.hostname_mismatch", "false")]);
    assert!(eval_cert(&a, &cert).is_empty());
}

#[test]
fn certificate_rules_need_both_the_fact_and_the_certificate() {
    let cert = certificate(&[("self_signed", "true")]);
    // No certificate asset in the context.
    let a = tls_service(&[("certificate.hostname_mismatch", "true")]);
    assert!(sanctioned_eval(&a).is_empty());
    // A certificate asset, but the service does not say it presents one.
    let plain = service(
        "198.18.0.7",
        443,
        &[("certificate.hostname_mismatch", "true")],
    );
    assert!(eval_cert(&plain, &cert).is_empty());
    // Certificate facts on a domain do nothing.
    let sha = sha();
    let d = domain("www.example.com", &[("certificate", sha.as_str())]);
    let settings = PolicySettings::default();
    let s = [sanction("s", by_domain("*"), None)];
    let out = expectations(
        &d,
        &Context {
            certificate: Some(&cert),
            ..cx(&settings, &s)
        },
    );
    assert!(out.is_empty(), "{out:#?}");
}

// ---------------------------------------------------------------------------------------
// evaluate: DNS rules, new assets, absence
// ---------------------------------------------------------------------------------------

#[test]
fn an_open_zone_transfer_is_flagged() {
    let d = domain("example.com", &[("zone.axfr_open", "ns1.example.com")]);
    let out = sanctioned_eval(&d);
    assert_eq!(rules(&out), vec![Rule::OpenZoneTransfer]);
    let e = &out[0];
    assert_eq!(e.detail, "");
    assert_eq!(e.severity, Severity::High);
    assert_eq!(e.evidence["servers"], "ns1.example.com");
    assert!(e.title.contains("ns1.example.com"));
}

#[test]
fn a_dangling_cname_is_flagged() {
    let d = domain(
        "old.example.com",
        &[("dangling_cname", "gone.herokuapp.com")],
    );
    let out = sanctioned_eval(&d);
    assert_eq!(rules(&out), vec![Rule::DanglingCname]);
    let e = &out[0];
    assert_eq!(e.detail, "gone.herokuapp.com");
    assert_eq!(e.severity, Severity::High);
    assert_eq!(e.evidence["target"], "gone.herokuapp.com");
}

#[test]
fn dns_facts_on_services_are_ignored() {
    let a = service(
        "198.18.0.7",
        53,
        &[("zone.axfr_open", "x"), ("dangling_cname", "y")],
    );
    assert!(sanctioned_eval(&a).is_empty());
}

#[test]
fn assets_first_seen_after_the_baseline_are_new() {
    let settings = PolicySettings::default();
    let s = [
        sanction("s-all", by_net("0.0.0.0/0"), None),
        sanction("s-names", by_domain("*"), None),
    ];
    let with = |a: &Asset, baseline: Option<Millis>| {
        expectations(
            a,
            &Context {
                baseline,
                ..cx(&settings, &s)
            },
        )
    };
    let mut a = service("198.18.0.7", 443, &[]);
    a.first_seen = NOW - DAY;
    let out = with(&a, Some(NOW - 2 * DAY));
    assert_eq!(rules(&out), vec![Rule::NewAsset]);
    assert_eq!(out[0].severity, Severity::Info);
    assert_eq!(out[0].detail, "");
    assert_eq!(out[0].evidence["first_seen"], (NOW - DAY).to_string());
    // Before or at the baseline: not new.
    assert!(with(&a, Some(NOW - DAY)).is_empty());
    assert!(with(&a, Some(NOW)).is_empty());
    // No baseline yet: nothing is new.
    assert!(with(&a, None).is_empty());
    // Domains too, but not hosts.
    let mut d = domain("new.example.com", &[]);
    d.first_seen = NOW - DAY;
    assert_eq!(rules(&with(&d, Some(NOW - 2 * DAY))), vec![Rule::NewAsset]);
    let mut h = host("198.18.0.7");
    h.first_seen = NOW - DAY;
    assert!(with(&h, Some(NOW - 2 * DAY)).is_empty());
}

#[test]
fn absent_assets_get_no_exposure_findings_except_zombie() {
    let settings = PolicySettings::default();
    let cert = certificate(&[("self_signed", "true"), ("weak_key", "true")]);
    let mut a = tls_service(&[
        ("risk", "remote-administration"),
        ("cleartext_auth", "true"),
        ("certificate.hostname_mismatch", "true"),
    ]);
    a.first_seen = NOW - 2 * DAY;
    a.last_seen = NOW - 2 * DAY;
    let a = absent(a);
    let ctx = |sanctions| Context {
        baseline: Some(NOW - 3 * DAY),
        certificate: Some(&cert),
        ..cx(&settings, sanctions)
    };
    // Unsanctioned: nothing at all.
    assert!(expectations(&a, &ctx(&[])).is_empty());
    // Sanctioned but recently seen: nothing.
    let s = [sanction("s-all", by_net("0.0.0.0/0"), None)];
    assert!(expectations(&a, &ctx(&s)).is_empty());
    // Sanctioned and unseen for long: only the zombie.
    let old = last_seen_days_ago(a, 60);
    assert_eq!(rules(&expectations(&old, &ctx(&s))), vec![Rule::Zombie]);

    // Same for names.
    let d = absent(domain(
        "gone.example.com",
        &[
            ("zone.axfr_open", "ns1"),
            ("dangling_cname", "x.example.net"),
        ],
    ));
    assert!(expectations(&d, &ctx(&[])).is_empty());
    let s = [sanction("s-d", by_domain("*.example.com"), None)];
    assert_eq!(rules(&expectations(&d, &ctx(&s))), vec![Rule::Zombie]);
}

#[test]
fn unknown_assets_are_evaluated_like_present_ones() {
    let mut a = service("198.18.0.7", 22, &[("risk", "remote-administration")]);
    a.status = AssetStatus::Unknown;
    assert_eq!(
        rules(&eval(&a, &[])),
        vec![Rule::Unsanctioned, Rule::RiskyExposure]
    );
}

// ---------------------------------------------------------------------------------------
// Sanction matching and validation
// ---------------------------------------------------------------------------------------

#[test]
fn net_matches_addresses_in_the_cidr() {
    let m = by_net("198.18.0.0/24");
    assert!(m.matches(&service("198.18.0.7", 443, &[])));
    assert!(m.matches(&service("198.18.0.255", 22, &[])));
    assert!(m.matches(&host("198.18.0.1")));
    assert!(!m.matches(&service("198.18.1.7", 443, &[])));
    assert!(!m.matches(&domain("www.example.com", &[])));
    assert!(!m.matches(&certificate(&[])));
    let v6 = by_net("2001:db8::/32");
    assert!(v6.matches(&service("2001:db8::1", 443, &[])));
    assert!(!v6.matches(&service("2001:db9::1", 443, &[])));
    assert!(!v6.matches(&service("198.18.0.7", 443, &[])));
}

#[test]
fn port_matches_the_service_port() {
    let m = SanctionMatch {
        port: Some(443),
        ..SanctionMatch::default()
    };
    assert!(m.matches(&service("198.18.0.7", 443, &[])));
    assert!(m.matches(&service("203.0.113.1", 443, &[])));
    assert!(!m.matches(&service("198.18.0.7", 8443, &[])));
    assert!(!m.matches(&host("198.18.0.7")));
    assert!(!m.matches(&domain("www.example.com", &[])));
}

#[test]
fn service_and_product_match_case_insensitively() {
    let m = SanctionMatch {
        service: Some("SSH".into()),
        ..SanctionMatch::default()
    };
    assert!(m.matches(&service("198.18.0.7", 22, &[("service", "ssh")])));
    assert!(m.matches(&service("198.18.0.7", 2222, &[("service", "Ssh")])));
    assert!(!m.matches(&service("198.18.0.7", 22, &[("service", "https")])));
    assert!(!m.matches(&service("198.18.0.7", 22, &[])));
    // A prefix is not a match.
    assert!(!m.matches(&service("198.18.0.7", 22, &[("service", "sshd")])));

    let m = SanctionMatch {
        product: Some("nginx".into()),
        ..SanctionMatch::default()
    };
    assert!(m.matches(&service("198.18.0.7", 443, &[("product", "NGINX")])));
    assert!(!m.matches(&service("198.18.0.7", 443, &[("product", "apache")])));
    assert!(!m.matches(&service("198.18.0.7", 443, &[("service", "nginx")])));
}

#[test]
fn domain_globs_match_names_under_them_only() {
    let m = by_domain("*.shop.example.com");
    assert!(m.matches(&domain("www.shop.example.com", &[])));
    assert!(m.matches(&domain("a.b.shop.example.com", &[])));
    assert!(!m.matches(&domain("shop.example.com", &[])), "apex");
    assert!(!m.matches(&domain("www.example.com", &[])));
    assert!(!m.matches(&domain("evilshop.example.com", &[])));
    assert!(!m.matches(&domain("www.shop.example.com.evil.net", &[])));
    assert!(!m.matches(&domain("www.shop.example.org", &[])));
    assert!(!m.matches(&service("198.18.0.7", 443, &[])));
    // Case-insensitive patterns.
    let upper = by_domain("*.SHOP.Example.COM");
    assert!(upper.matches(&domain("www.shop.example.com", &[])));
    // A plain name matches itself only.
    let exact = by_domain("shop.example.com");
    assert!(exact.matches(&domain("shop.example.com", &[])));
    assert!(exact.matches(&domain("SHOP.example.com", &[])));
    assert!(!exact.matches(&domain("www.shop.example.com", &[])));
}

#[test]
fn every_part_of_a_match_must_match() {
    let m = SanctionMatch {
        net: Some("198.18.0.0/24".parse().expect("net")),
        port: Some(443),
        proto: Some("tcp".into()),
        service: Some("https".into()),
        product: Some("nginx".into()),
        domain: None,
    };
    let full = [("service", "https"), ("product", "nginx")];
    assert!(m.matches(&service("198.18.0.7", 443, &full)));
    assert!(!m.matches(&service("198.18.1.7", 443, &full)), "net");
    assert!(!m.matches(&service("198.18.0.7", 8443, &full)), "port");
    assert!(
        !m.matches(&service(
            "198.18.0.7",
            443,
            &[("service", "http"), ("product", "nginx")]
        )),
        "service"
    );
    assert!(
        !m.matches(&service(
            "198.18.0.7",
            443,
            &[("service", "https"), ("product", "apache")]
        )),
        "product"
    );
    // Domain plus net can never match: domains have no address.
    let impossible = SanctionMatch {
        net: Some("0.0.0.0/0".parse().expect("net")),
        domain: Some("*".into()),
        ..SanctionMatch::default()
    };
    assert!(!impossible.matches(&domain("www.example.com", &[])));
    assert!(!impossible.matches(&service("198.18.0.7", 443, &[])));
    // Domain plus service fact.
    let named = SanctionMatch {
        domain: Some("*.example.com".into()),
        service: Some("web".into()),
        ..SanctionMatch::default()
    };
    assert!(named.matches(&domain("www.example.com", &[("service", "web")])));
    assert!(!named.matches(&domain("www.example.com", &[])));
}

#[test]
fn validate_accepts_real_matches() {
    for m in [
        by_net("198.18.0.0/24"),
        by_domain("*.shop.example.com"),
        by_domain("www.example.com"),
        SanctionMatch {
            port: Some(443),
            proto: Some("tcp".into()),
            ..SanctionMatch::default()
        },
        SanctionMatch {
            service: Some("ssh".into()),
            ..SanctionMatch::default()
        },
        SanctionMatch {
            product: Some("nginx".into()),
            ..SanctionMatch::default()
        },
    ] {
        m.validate().unwrap_or_else(|e| panic!("{m:?}: {e}"));
    }
}

#[test]
fn validate_refuses_an_empty_match() {
    let msg = invalid(SanctionMatch::default().validate());
    assert!(msg.contains("at least one"), "{msg}");
    // proto alone is still empty.
    let msg = invalid(
        SanctionMatch {
            proto: Some("tcp".into()),
            ..SanctionMatch::default()
        }
        .validate(),
    );
    assert!(msg.contains("at least one"), "{msg}");
}

#[test]
fn validate_refuses_other_protocols() {
    for proto in ["udp", "TCP", "sctp", ""] {
        let msg = invalid(
            SanctionMatch {
                port: Some(53),
                proto: Some(proto.into()),
                ..SanctionMatch::default()
            }
            .validate(),
        );
        assert!(msg.contains("only tcp"), "{proto}: {msg}");
        assert!(msg.contains(&format!("{proto:?}")), "{proto}: {msg}");
    }
}

#[test]
fn validate_refuses_a_bad_glob_with_advice() {
    let msg = invalid(by_domain("a[").validate());
    assert!(msg.contains("\"a[\""), "{msg}");
    assert!(msg.contains("*.example.com"), "{msg}");
    // And a bad glob matches nothing rather than panicking.
    assert!(!by_domain("a[").matches(&domain("a.example.com", &[])));
}

// ---------------------------------------------------------------------------------------
// Severities, due dates, ids, names
// ---------------------------------------------------------------------------------------

#[test]
fn severity_comes_from_the_settings_table() {
    let mut settings = PolicySettings::default();
    settings
        .severities
        .insert(Rule::Unsanctioned, Severity::Critical);
    settings
        .severities
        .insert(Rule::RiskyExposure, Severity::Low);
    let a = service("198.18.0.7", 22, &[("risk", "remote-administration")]);
    let out = expectations(&a, &cx(&settings, &[]));
    assert_eq!(find(&out, Rule::Unsanctioned).severity, Severity::Critical);
    assert_eq!(find(&out, Rule::RiskyExposure).severity, Severity::Low);
    // A rule missing from the table defaults to medium.
    settings.severities.remove(&Rule::Unsanctioned);
    assert_eq!(settings.severity(Rule::Unsanctioned), Severity::Medium);
    let out = expectations(&a, &cx(&settings, &[]));
    assert_eq!(find(&out, Rule::Unsanctioned).severity, Severity::Medium);
}

#[test]
fn default_settings_give_every_rule_a_severity() {
    let settings = PolicySettings::default();
    for rule in Rule::ALL {
        assert!(settings.severities.contains_key(&rule), "{rule:?}");
    }
    assert_eq!(settings.severity(Rule::NewAsset), Severity::Info);
    assert_eq!(settings.severity(Rule::Zombie), Severity::Low);
}

#[test]
fn due_dates_come_from_sla_days() {
    let settings = PolicySettings::default();
    assert_eq!(settings.due(Severity::Critical, NOW), Some(NOW + 7 * DAY));
    assert_eq!(settings.due(Severity::High, NOW), Some(NOW + 14 * DAY));
    assert_eq!(settings.due(Severity::Medium, NOW), Some(NOW + 30 * DAY));
    assert_eq!(settings.due(Severity::Low, NOW), Some(NOW + 90 * DAY));
    assert_eq!(settings.due(Severity::Info, NOW), None);
    let mut custom = settings.clone();
    custom.sla_days.insert(Severity::Info, 365);
    custom.sla_days.remove(&Severity::High);
    assert_eq!(custom.due(Severity::Info, NOW), Some(NOW + 365 * DAY));
    assert_eq!(custom.due(Severity::High, NOW), None);
    // No overflow near the end of time.
    assert_eq!(settings.due(Severity::Low, Millis::MAX), Some(Millis::MAX));
}

#[test]
fn open_starts_a_finding() {
    let a = service("198.18.0.7", 443, &[]);
    let settings = PolicySettings::default();
    let e = expected(Rule::Unsanctioned, "", Severity::High);
    let f = open(&a.key, &e, &settings, NOW);
    assert_eq!(f.id, finding_id(Rule::Unsanctioned, &a.key, ""));
    assert_eq!(f.state, FindingState::Open);
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.title, e.title);
    assert_eq!(f.evidence, e.evidence);
    assert_eq!((f.opened, f.updated), (NOW, NOW));
    assert_eq!(f.due, Some(NOW + 14 * DAY));
    assert_eq!(f.reopened, 0);
    assert_eq!(f.fixed_at, None);
    assert_eq!(f.risk_accepted_until, None);
    assert_eq!(
        f.transitions,
        vec![Transition {
            at: NOW,
            actor: Actor::System,
            from: None,
            to: FindingState::Open,
            comment: e.title.clone(),
        }]
    );
    // Info findings have no due date by default.
    let info = open(
        &a.key,
        &expected(Rule::NewAsset, "", Severity::Info),
        &settings,
        NOW,
    );
    assert_eq!(info.due, None);
}

#[test]
fn finding_ids_are_stable_and_distinct() {
    let svc = AssetKey::tcp(ip("198.18.0.7"), 443);
    let other = AssetKey::tcp(ip("198.18.0.7"), 8443);
    let id = finding_id(Rule::StaleSanction, &svc, "s-1");
    assert_eq!(id, finding_id(Rule::StaleSanction, &svc, "s-1"));
    assert!(id.starts_with("f-"));
    assert_eq!(id.len(), 2 + 32);
    assert!(id[2..]
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_ne!(id, finding_id(Rule::Zombie, &svc, "s-1"), "rule");
    assert_ne!(id, finding_id(Rule::StaleSanction, &other, "s-1"), "asset");
    assert_ne!(id, finding_id(Rule::StaleSanction, &svc, "s-2"), "detail");
    assert_ne!(
        id,
        finding_id(Rule::StaleSanction, &svc, ""),
        "empty detail"
    );
    // Every rule gives its own id.
    let ids: BTreeSet<String> = Rule::ALL.iter().map(|r| finding_id(*r, &svc, "")).collect();
    assert_eq!(ids.len(), Rule::ALL.len());
}

#[test]
fn finding_ids_do_not_change_between_releases() {
    // Stored findings are found again by id: this value must never change.
    let svc = AssetKey::tcp(ip("198.18.0.7"), 443);
    assert_eq!(
        finding_id(Rule::Unsanctioned, &svc, ""),
        finding_id(
            Rule::Unsanctioned,
            &"service:198.18.0.7:443/tcp".parse().expect("key"),
            ""
        )
    );
    assert_eq!(finding_id(Rule::Unsanctioned, &svc, ""), PINNED_ID);
}

const PINNED_ID: &str = "f-a141b50072c597b89d17f20d3de1d20d";

#[test]
fn names_are_kebab_case() {
    assert_eq!(Rule::Unsanctioned.name(), "unsanctioned");
    assert_eq!(
        Rule::CertificateHostnameMismatch.name(),
        "certificate-hostname-mismatch"
    );
    assert_eq!(Rule::NewAsset.name(), "new-asset");
    assert_eq!(FindingState::ClosedVerified.name(), "closed-verified");
    assert_eq!(FindingState::InProgress.name(), "in-progress");
    assert_eq!(FindingState::RiskAccepted.name(), "risk-accepted");
    let names: BTreeSet<String> = Rule::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(names.len(), Rule::ALL.len());
    assert!(names.iter().all(|n| !n.is_empty()));
}

#[test]
fn state_classes() {
    for s in ALL_STATES {
        assert!(!(s.is_active() && s.is_closed()), "{s:?}");
    }
    let active: Vec<_> = ALL_STATES.into_iter().filter(|s| s.is_active()).collect();
    assert_eq!(
        active,
        [
            FindingState::Open,
            FindingState::Acknowledged,
            FindingState::InProgress,
            FindingState::Fixed
        ]
    );
    let closed: Vec<_> = ALL_STATES.into_iter().filter(|s| s.is_closed()).collect();
    assert_eq!(closed, CLOSED);
}

// ---------------------------------------------------------------------------------------
// reconcile
// ---------------------------------------------------------------------------------------

fn assert_system_step(f: &Finding, before: &Finding, to: FindingState) {
    assert_eq!(f.state, to);
    assert_eq!(f.transitions.len(), before.transitions.len() + 1);
    let t = f.transitions.last().expect("a transition");
    assert_eq!(t.actor, Actor::System);
    assert_eq!(t.from, Some(before.state));
    assert_eq!(t.to, to);
    assert_eq!(t.at, NOW);
    assert_eq!(f.updated, NOW);
    assert_eq!(
        f.transitions[..before.transitions.len()],
        before.transitions[..]
    );
}

#[test]
fn an_expected_finding_that_was_closed_reopens() {
    let settings = PolicySettings::default();
    for closed in CLOSED {
        let (mut f, a) = finding(Rule::RiskyExposure, closed);
        f.due = Some(NOW - 5 * DAY);
        let before = f.clone();
        let e = expected(Rule::RiskyExposure, "", Severity::Critical);
        assert!(reconcile(&mut f, Some(&e), &a, false, &settings, NOW));
        assert_system_step(&f, &before, FindingState::Open);
        assert_eq!(f.reopened, 1);
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.evidence, e.evidence);
        assert_eq!(f.due, Some(NOW + 7 * DAY), "due recomputed from now");
        let t = f.transitions.last().expect("transition");
        assert!(t.comment.contains("back"), "{}", t.comment);
        // Reopening again counts again.
        f.state = closed;
        assert!(reconcile(&mut f, Some(&e), &a, false, &settings, NOW));
        assert_eq!(f.reopened, 2);
    }
}

#[test]
fn an_active_finding_closes_verified_when_the_asset_is_gone() {
    let settings = PolicySettings::default();
    for state in ACTIVE.into_iter().chain([FindingState::Fixed]) {
        for rule in [Rule::Unsanctioned, Rule::RiskyExposure] {
            let (mut f, a) = finding(rule, state);
            let a = absent(a);
            let before = f.clone();
            // Even when sanctioned: gone is gone.
            assert!(reconcile(&mut f, None, &a, true, &settings, NOW));
            assert_system_step(&f, &before, FindingState::ClosedVerified);
            let t = f.transitions.last().expect("transition");
            assert!(t.comment.contains("scan-1"), "{}", t.comment);
            assert_eq!(f.reopened, 0);
        }
    }
}

#[test]
fn an_unsanctioned_finding_closes_sanctioned_when_a_sanction_covers_it() {
    let settings = PolicySettings::default();
    for state in ACTIVE {
        let (mut f, a) = finding(Rule::Unsanctioned, state);
        let before = f.clone();
        assert!(reconcile(&mut f, None, &a, true, &settings, NOW));
        assert_system_step(&f, &before, FindingState::ClosedSanctioned);
    }
}

#[test]
fn sanctioned_only_closes_unsanctioned_findings_as_sanctioned() {
    let settings = PolicySettings::default();
    let (mut f, a) = finding(Rule::RiskyExposure, FindingState::Open);
    assert!(reconcile(&mut f, None, &a, true, &settings, NOW));
    assert_eq!(f.state, FindingState::ClosedByPolicy);
}

#[test]
fn an_active_finding_closes_verified_when_the_asset_changed() {
    let settings = PolicySettings::default();
    for state in ACTIVE {
        let (mut f, mut a) = finding(Rule::RiskyExposure, state);
        a.last_changed = f.updated + 1;
        let before = f.clone();
        assert!(reconcile(&mut f, None, &a, false, &settings, NOW));
        assert_system_step(&f, &before, FindingState::ClosedVerified);
    }
}

#[test]
fn an_active_finding_closes_by_policy_when_nothing_changed() {
    let settings = PolicySettings::default();
    for state in ACTIVE {
        for last_changed_offset in [-DAY, 0] {
            let (mut f, mut a) = finding(Rule::Unsanctioned, state);
            a.last_changed = f.updated + last_changed_offset;
            let before = f.clone();
            assert!(reconcile(&mut f, None, &a, false, &settings, NOW));
            assert_system_step(&f, &before, FindingState::ClosedByPolicy);
        }
    }
}

#[test]
fn a_fixed_claim_on_a_silent_host_stays_unverified_and_says_why_once() {
    let settings = PolicySettings::default();
    for still_expected in [false, true] {
        let (mut f, mut a) = finding(Rule::Unsanctioned, FindingState::Fixed);
        let e = expected(Rule::Unsanctioned, "", f.severity);
        f.fixed_at = Some(NOW - DAY);
        a.status = AssetStatus::Unknown;
        a.last_seen = NOW - 2 * DAY;
        a.last_scan = "verify-1".into();
        let e = still_expected.then_some(&e);
        assert!(reconcile(&mut f, e, &a, true, &settings, NOW));
        assert_eq!(f.state, FindingState::Fixed, "silence verifies nothing");
        let why = f.verification_inconclusive.clone().expect("a reason");
        assert!(
            why.contains("verify-1") && why.contains("unreachable"),
            "{why}"
        );
        assert_eq!(f.notes.last().map(|n| n.text.as_str()), Some(why.as_str()));
        let once = f.clone();
        assert!(!reconcile(&mut f, e, &a, true, &settings, NOW + 1));
        assert_eq!(f, once, "the same scan is not noted twice");
        // The next look that hears the host and no longer sees the port verifies it.
        a.status = AssetStatus::Absent;
        a.last_scan = "verify-2".into();
        assert!(reconcile(&mut f, None, &a, true, &settings, NOW + 2));
        assert_eq!(f.state, FindingState::ClosedVerified);
        assert_eq!(
            f.verification_inconclusive, None,
            "cleared by the transition"
        );
    }
}

#[test]
fn an_unknown_asset_without_expectation_changes_nothing() {
    let settings = PolicySettings::default();
    for state in ALL_STATES {
        if state == FindingState::Fixed {
            continue; // see the next test
        }
        let (mut f, mut a) = finding(Rule::Unsanctioned, state);
        f.risk_accepted_until = Some(NOW - DAY);
        f.fixed_at = Some(NOW - DAY);
        a.status = AssetStatus::Unknown;
        a.last_changed = NOW;
        let before = f.clone();
        assert!(
            !reconcile(&mut f, None, &a, true, &settings, NOW),
            "{state:?}"
        );
        assert_eq!(f, before, "{state:?}");
    }
}

#[test]
fn an_unknown_asset_with_an_expectation_still_reopens() {
    let settings = PolicySettings::default();
    let (mut f, mut a) = finding(Rule::Unsanctioned, FindingState::ClosedByPolicy);
    a.status = AssetStatus::Unknown;
    let e = expected(Rule::Unsanctioned, "", Severity::High);
    assert!(reconcile(&mut f, Some(&e), &a, false, &settings, NOW));
    assert_eq!(f.state, FindingState::Open);
}

#[test]
fn a_false_positive_never_changes() {
    let settings = PolicySettings::default();
    let e = expected(Rule::Unsanctioned, "", Severity::Critical);
    for exp in [None, Some(&e)] {
        for status in [AssetStatus::Present, AssetStatus::Absent] {
            for sanctioned in [false, true] {
                let (mut f, mut a) = finding(Rule::Unsanctioned, FindingState::FalsePositive);
                a.status = status;
                a.last_changed = NOW;
                let before = f.clone();
                assert!(!reconcile(&mut f, exp, &a, sanctioned, &settings, NOW));
                assert_eq!(f, before);
            }
        }
    }
}

#[test]
fn risk_acceptance_holds_until_it_expires() {
    let settings = PolicySettings::default();
    let e = expected(Rule::RiskyExposure, "", Severity::High);
    for exp in [None, Some(&e)] {
        for status in [AssetStatus::Present, AssetStatus::Absent] {
            let (mut f, mut a) = finding(Rule::RiskyExposure, FindingState::RiskAccepted);
            f.risk_accepted_until = Some(NOW + 1);
            a.status = status;
            let before = f.clone();
            assert!(!reconcile(&mut f, exp, &a, false, &settings, NOW));
            assert_eq!(f, before);
        }
    }
}

#[test]
fn expired_risk_acceptance_reopens_an_expected_finding() {
    let settings = PolicySettings::default();
    // Expiry exactly now is expired.
    for until in [NOW - DAY, NOW] {
        let (mut f, a) = finding(Rule::RiskyExposure, FindingState::RiskAccepted);
        f.risk_accepted_until = Some(until);
        f.due = Some(NOW - 5 * DAY);
        let before = f.clone();
        let e = expected(Rule::RiskyExposure, "", Severity::High);
        assert!(reconcile(&mut f, Some(&e), &a, false, &settings, NOW));
        assert_system_step(&f, &before, FindingState::Open);
        assert_eq!(f.reopened, 1);
        assert_eq!(f.due, Some(NOW + 14 * DAY));
        let t = f.transitions.last().expect("transition");
        assert!(t.comment.contains("expired"), "{}", t.comment);
        assert!(!f.overdue(NOW));
    }
}

#[test]
fn expired_risk_acceptance_closes_a_finding_no_longer_expected() {
    let settings = PolicySettings::default();
    let (mut f, a) = finding(Rule::RiskyExposure, FindingState::RiskAccepted);
    f.risk_accepted_until = Some(NOW - DAY);
    let before = f.clone();
    assert!(reconcile(&mut f, None, &a, false, &settings, NOW));
    assert_system_step(&f, &before, FindingState::ClosedVerified);
    assert_eq!(f.reopened, 0);
}

#[test]
fn a_fix_disproved_by_a_later_sighting_reopens() {
    let settings = PolicySettings::default();
    let (mut f, mut a) = finding(Rule::RiskyExposure, FindingState::Fixed);
    f.fixed_at = Some(NOW - DAY);
    a.last_seen = NOW - DAY + 1;
    let before = f.clone();
    let e = expected(Rule::RiskyExposure, "", Severity::High);
    assert!(reconcile(&mut f, Some(&e), &a, false, &settings, NOW));
    assert_system_step(&f, &before, FindingState::Open);
    assert_eq!(f.reopened, 1);
    let t = f.transitions.last().expect("transition");
    assert!(t.comment.contains("verification failed"), "{}", t.comment);
    assert!(t.comment.contains(&e.title), "{}", t.comment);
}

#[test]
fn a_fix_not_yet_checked_stays_fixed() {
    let settings = PolicySettings::default();
    let e = expected(Rule::RiskyExposure, "", Severity::Critical);
    for last_seen in [NOW - 2 * DAY, NOW - DAY] {
        let (mut f, mut a) = finding(Rule::RiskyExposure, FindingState::Fixed);
        f.fixed_at = Some(NOW - DAY);
        a.last_seen = last_seen;
        let before = f.clone();
        assert!(!reconcile(&mut f, Some(&e), &a, false, &settings, NOW));
        assert_eq!(f, before);
    }
    // A Fixed finding without a claim time is never disproved.
    let (mut f, a) = finding(Rule::RiskyExposure, FindingState::Fixed);
    f.fixed_at = None;
    let before = f.clone();
    assert!(!reconcile(&mut f, Some(&e), &a, false, &settings, NOW));
    assert_eq!(f, before);
}

#[test]
fn a_fix_no_longer_expected_is_verified() {
    let settings = PolicySettings::default();
    // Asset present and unchanged since the finding was updated: still verified,
    // because someone claimed the fix.
    let (mut f, mut a) = finding(Rule::RiskyExposure, FindingState::Fixed);
    f.fixed_at = Some(NOW - DAY);
    f.updated = NOW - DAY;
    a.last_changed = NOW - 50 * DAY;
    let before = f.clone();
    assert!(reconcile(&mut f, None, &a, false, &settings, NOW));
    assert_system_step(&f, &before, FindingState::ClosedVerified);
}

#[test]
fn an_expected_active_finding_follows_the_expectation_quietly() {
    let settings = PolicySettings::default();
    let (mut f, a) = finding(Rule::RiskyExposure, FindingState::Acknowledged);
    let same = Expected {
        rule: f.rule,
        detail: f.detail.clone(),
        severity: f.severity,
        title: f.title.clone(),
        evidence: f.evidence.clone(),
    };
    let before = f.clone();
    assert!(!reconcile(&mut f, Some(&same), &a, false, &settings, NOW));
    assert_eq!(f, before);

    let changed = Expected {
        severity: Severity::Critical,
        title: "new title".into(),
        ..same
    };
    assert!(reconcile(&mut f, Some(&changed), &a, false, &settings, NOW));
    assert_eq!(f.state, FindingState::Acknowledged);
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.title, "new title");
    assert_eq!(f.updated, NOW);
    assert_eq!(
        f.transitions, before.transitions,
        "no state change, no transition"
    );
    assert_eq!(f.due, before.due);
}

#[test]
fn system_changes_always_leave_a_transition() {
    let settings = PolicySettings::default();
    let e = expected(Rule::RiskyExposure, "", Severity::High);
    for state in ALL_STATES {
        for exp in [None, Some(&e)] {
            for status in [AssetStatus::Present, AssetStatus::Absent] {
                let (mut f, mut a) = finding(Rule::RiskyExposure, state);
                f.risk_accepted_until = Some(NOW - 1);
                f.fixed_at = Some(NOW - DAY);
                a.status = status;
                let before = f.clone();
                let changed = reconcile(&mut f, exp, &a, false, &settings, NOW);
                assert_eq!(changed, f != before, "{state:?} {exp:?} {status:?}");
                if f.state != before.state {
                    assert_system_step(&f, &before, f.state);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// transition (people)
// ---------------------------------------------------------------------------------------

fn allowed_edge(from: FindingState, to: FindingState) -> bool {
    use FindingState::*;
    matches!(
        (from, to),
        (
            Open,
            Acknowledged | InProgress | Fixed | RiskAccepted | FalsePositive
        ) | (
            Acknowledged,
            InProgress | Fixed | RiskAccepted | FalsePositive
        ) | (
            InProgress,
            Acknowledged | Fixed | RiskAccepted | FalsePositive
        ) | (Fixed, InProgress)
            | (RiskAccepted | FalsePositive, Open)
    )
}

#[test]
fn the_transition_graph_for_analysts() {
    for role in [Role::Admin, Role::Analyst] {
        for from in ALL_STATES {
            for to in ALL_STATES {
                let (mut f, _) = finding(Rule::Unsanctioned, from);
                let before = f.clone();
                let r = transition(&mut f, &user(role), &good_req(to), NOW);
                if allowed_edge(from, to) {
                    r.unwrap_or_else(|e| panic!("{role:?} {from:?} -> {to:?}: {e}"));
                    assert_eq!(f.state, to);
                } else {
                    let msg = refusal(r);
                    if to.is_closed() {
                        assert!(msg.contains("set by the policy"), "{msg}");
                    } else {
                        assert!(msg.contains("cannot be moved"), "{msg}");
                    }
                    assert_eq!(f, before, "{from:?} -> {to:?}");
                }
            }
        }
    }
}

#[test]
fn the_happy_path_records_every_step() {
    use FindingState::*;
    let (mut f, _) = finding(Rule::RiskyExposure, Open);
    let bob = user(Role::Remediator);
    let steps = [Acknowledged, InProgress, Fixed, InProgress, Fixed];
    for (i, to) in steps.into_iter().enumerate() {
        let at = NOW + i as Millis * HOUR;
        let from = f.state;
        transition(&mut f, &bob, &req(to, &format!("step {i}"), None), at)
            .unwrap_or_else(|e| panic!("{from:?} -> {to:?}: {e}"));
        let t = f.transitions.last().expect("transition");
        assert_eq!(t.actor, bob);
        assert_eq!(t.from, Some(from));
        assert_eq!(t.to, to);
        assert_eq!(t.comment, format!("step {i}"));
        assert_eq!(t.at, at);
        assert_eq!(f.updated, at);
    }
    assert_eq!(f.transitions.len(), 1 + steps.len());
    // fixed_at is the latest claim.
    assert_eq!(f.fixed_at, Some(NOW + 4 * HOUR));
    assert_eq!(f.reopened, 0);
}

#[test]
fn marking_fixed_sets_fixed_at() {
    let (mut f, _) = finding(Rule::RiskyExposure, FindingState::InProgress);
    assert_eq!(f.fixed_at, None);
    transition(
        &mut f,
        &user(Role::Remediator),
        &req(FindingState::Fixed, "", None),
        NOW,
    )
    .expect("a remediator may mark fixed without a comment");
    assert_eq!(f.fixed_at, Some(NOW));
    assert_eq!(f.state, FindingState::Fixed);
}

#[test]
fn no_person_may_close_a_finding() {
    for role in [Role::Admin, Role::Analyst, Role::Remediator] {
        for from in ALL_STATES {
            for to in CLOSED {
                let (mut f, _) = finding(Rule::Unsanctioned, from);
                let before = f.clone();
                let msg = refusal(transition(&mut f, &user(role), &good_req(to), NOW));
                assert!(msg.contains("set by the policy"), "{msg}");
                assert!(msg.contains("verification scan"), "{msg}");
                assert_eq!(f, before);
            }
        }
    }
}

#[test]
fn a_closed_finding_cannot_be_reopened_by_a_person() {
    for from in CLOSED {
        for to in ALL_STATES {
            let (mut f, _) = finding(Rule::Unsanctioned, from);
            let before = f.clone();
            assert!(transition(&mut f, &user(Role::Admin), &good_req(to), NOW).is_err());
            assert_eq!(f, before);
        }
    }
}

#[test]
fn fixed_cannot_go_back_to_acknowledged() {
    let (mut f, _) = finding(Rule::Unsanctioned, FindingState::Fixed);
    let before = f.clone();
    let msg = refusal(transition(
        &mut f,
        &user(Role::Admin),
        &good_req(FindingState::Acknowledged),
        NOW,
    ));
    assert!(
        msg.contains("fixed") && msg.contains("acknowledged"),
        "{msg}"
    );
    assert_eq!(f, before);
}

#[test]
fn risk_acceptance_needs_a_future_expiry_and_a_comment() {
    let analyst = user(Role::Analyst);
    let cases: [(TransitionRequest, &str); 6] = [
        (req(FindingState::RiskAccepted, "ok", None), "expiry"),
        (
            req(FindingState::RiskAccepted, "ok", Some(NOW - DAY)),
            "future",
        ),
        (req(FindingState::RiskAccepted, "ok", Some(NOW)), "future"),
        (
            req(FindingState::RiskAccepted, "", Some(NOW + DAY)),
            "comment",
        ),
        (
            req(FindingState::RiskAccepted, "  \n\t", Some(NOW + DAY)),
            "comment",
        ),
        (req(FindingState::RiskAccepted, "", None), "expiry"),
    ];
    for (r, why) in cases {
        let (mut f, _) = finding(Rule::RiskyExposure, FindingState::Open);
        let before = f.clone();
        let msg = refusal(transition(&mut f, &analyst, &r, NOW));
        assert!(msg.contains(why), "{r:?}: {msg}");
        assert_eq!(f, before);
    }
    let (mut f, _) = finding(Rule::RiskyExposure, FindingState::Open);
    let r = req(
        FindingState::RiskAccepted,
        "compensating control",
        Some(NOW + 1),
    );
    transition(&mut f, &analyst, &r, NOW).expect("valid acceptance");
    assert_eq!(f.state, FindingState::RiskAccepted);
    assert_eq!(f.risk_accepted_until, Some(NOW + 1));
}

#[test]
fn leaving_risk_acceptance_clears_its_expiry_and_counts_a_reopening() {
    let admin = user(Role::Admin);
    let (mut f, _) = finding(Rule::RiskyExposure, FindingState::Open);
    transition(
        &mut f,
        &admin,
        &req(FindingState::RiskAccepted, "why", Some(NOW + DAY)),
        NOW,
    )
    .expect("accept");
    transition(&mut f, &admin, &req(FindingState::Open, "", None), NOW + 1).expect("reopen");
    assert_eq!(f.state, FindingState::Open);
    assert_eq!(f.risk_accepted_until, None);
    assert_eq!(f.reopened, 1);
}

#[test]
fn a_false_positive_needs_a_comment() {
    for comment in ["", "   "] {
        let (mut f, _) = finding(Rule::Unsanctioned, FindingState::Open);
        let before = f.clone();
        let msg = refusal(transition(
            &mut f,
            &user(Role::Analyst),
            &req(FindingState::FalsePositive, comment, None),
            NOW,
        ));
        assert!(msg.contains("comment"), "{msg}");
        assert_eq!(f, before);
    }
    let (mut f, _) = finding(Rule::Unsanctioned, FindingState::Open);
    transition(
        &mut f,
        &user(Role::Remediator),
        &req(FindingState::FalsePositive, "scanner saw a honeypot", None),
        NOW,
    )
    .expect("with a comment");
    assert_eq!(f.state, FindingState::FalsePositive);
    transition(
        &mut f,
        &user(Role::Analyst),
        &req(FindingState::Open, "", None),
        NOW,
    )
    .expect("back to open");
    assert_eq!(f.reopened, 1);
}

#[test]
fn viewers_may_do_nothing() {
    for from in ALL_STATES {
        for to in ALL_STATES {
            let (mut f, _) = finding(Rule::Unsanctioned, from);
            let before = f.clone();
            let msg = refusal(transition(&mut f, &user(Role::Viewer), &good_req(to), NOW));
            assert!(msg.contains("viewer may not"), "{msg}");
            assert_eq!(f, before);
        }
    }
}

#[test]
fn remediators_may_not_accept_risk() {
    for from in ACTIVE {
        let (mut f, _) = finding(Rule::Unsanctioned, from);
        let before = f.clone();
        let msg = refusal(transition(
            &mut f,
            &user(Role::Remediator),
            &good_req(FindingState::RiskAccepted),
            NOW,
        ));
        assert!(msg.contains("remediator"), "{msg}");
        assert!(msg.contains("risk-accepted"), "{msg}");
        assert_eq!(f, before);
    }
    // But may do every other allowed move.
    for from in ALL_STATES {
        for to in ALL_STATES {
            if to == FindingState::RiskAccepted || !allowed_edge(from, to) {
                continue;
            }
            let (mut f, _) = finding(Rule::Unsanctioned, from);
            transition(&mut f, &user(Role::Remediator), &good_req(to), NOW)
                .unwrap_or_else(|e| panic!("{from:?} -> {to:?}: {e}"));
        }
    }
}

#[test]
fn the_system_may_not_request_transitions() {
    for to in ALL_STATES {
        let (mut f, _) = finding(Rule::Unsanctioned, FindingState::Open);
        let before = f.clone();
        let msg = refusal(transition(&mut f, &Actor::System, &good_req(to), NOW));
        assert!(msg.contains("reconciling"), "{msg}");
        assert_eq!(f, before);
    }
}

#[test]
fn viewers_may_not_annotate() {
    let msg = refusal(may_annotate(&user(Role::Viewer)));
    assert!(msg.contains("viewer"), "{msg}");
    for role in [Role::Admin, Role::Analyst, Role::Remediator] {
        may_annotate(&user(role)).unwrap_or_else(|e| panic!("{role:?}: {e}"));
    }
    may_annotate(&Actor::System).expect("the system annotates");
    assert_eq!(Actor::System.name(), "aperture");
    assert_eq!(user(Role::Viewer).name(), "viewer");
}

#[test]
fn overdue_is_for_active_unfixed_findings_past_due() {
    use FindingState::*;
    let (mut f, _) = finding(Rule::Unsanctioned, Open);
    f.due = Some(NOW);
    assert!(!f.overdue(NOW), "due exactly now is not yet overdue");
    assert!(f.overdue(NOW + 1));
    for state in ALL_STATES {
        f.state = state;
        let want = matches!(state, Open | Acknowledged | InProgress);
        assert_eq!(f.overdue(NOW + 1), want, "{state:?}");
    }
    f.state = Open;
    f.due = None;
    assert!(!f.overdue(Millis::MAX));
}

#[test]
fn a_finding_round_trips_through_json() {
    let (mut f, _) = finding(Rule::CertificateHostnameMismatch, FindingState::Open);
    transition(
        &mut f,
        &user(Role::Analyst),
        &req(FindingState::RiskAccepted, "why", Some(NOW + DAY)),
        NOW,
    )
    .expect("accept");
    let json = serde_json::to_value(&f).expect("serializes");
    assert_eq!(json["rule"], "certificate-hostname-mismatch");
    assert_eq!(json["state"], "risk-accepted");
    assert_eq!(json["transitions"][1]["actor"]["type"], "user");
    assert_eq!(json["transitions"][1]["actor"]["role"], "analyst");
    assert_eq!(json["transitions"][0]["actor"]["type"], "system");
    let back: Finding = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, f);
}

// ---------------------------------------------------------------------------------------
// End to end: evaluate, open, reconcile
// ---------------------------------------------------------------------------------------

#[test]
fn a_sanction_closes_an_unsanctioned_finding_and_its_expiry_makes_it_stale() {
    let settings = PolicySettings::default();
    let a = service("198.18.0.7", 443, &[]);
    let out = expectations(&a, &cx(&settings, &[]));
    let e = find(&out, Rule::Unsanctioned);
    let mut f = open(&a.key, e, &settings, NOW - DAY);

    // A sanction arrives: the finding is no longer expected, and closes as sanctioned.
    let s = [sanction("s-1", by_net("198.18.0.0/24"), Some(NOW + DAY))];
    let out = expectations(&a, &cx(&settings, &s));
    assert!(out.is_empty());
    let sanctioned = s.iter().any(|s| s.matches.matches(&a));
    assert!(reconcile(&mut f, None, &a, sanctioned, &settings, NOW));
    assert_eq!(f.state, FindingState::ClosedSanctioned);

    // Two days later the sanction has expired: a stale-sanction finding, not the old one.
    let later = Context {
        now: NOW + 2 * DAY,
        ..cx(&settings, &s)
    };
    let out = expectations(&a, &later);
    assert_eq!(rules(&out), vec![Rule::StaleSanction]);
    let stale = open(&a.key, &out[0], &settings, later.now);
    assert_ne!(stale.id, f.id);
    assert_eq!(stale.id, finding_id(Rule::StaleSanction, &a.key, "s-1"));
}

// ---------------------------------------------------------------------------------------
// Property: people can never close findings, and refusals change nothing
// ---------------------------------------------------------------------------------------

fn arb_actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        Just(Actor::System),
        prop::sample::select(vec![
            Role::Admin,
            Role::Analyst,
            Role::Remediator,
            Role::Viewer
        ])
        .prop_map(user),
    ]
}

fn arb_request() -> impl Strategy<Value = TransitionRequest> {
    (
        prop::sample::select(ALL_STATES.to_vec()),
        prop::option::of(-2 * DAY..2 * DAY),
        prop::sample::select(vec!["", " ", "because", "compensating control"]),
    )
        .prop_map(|(to, until, comment)| TransitionRequest {
            to,
            comment: comment.to_owned(),
            until: until.map(|u| NOW + u),
        })
}

fn role_of(actor: &Actor) -> Option<Role> {
    match actor {
        Actor::User { role, .. } => Some(*role),
        Actor::System => None,
    }
}

proptest! {
    #[test]
    fn people_never_close_findings(
        start in prop::sample::select(vec![
            FindingState::Open,
            FindingState::Acknowledged,
            FindingState::InProgress,
            FindingState::Fixed,
            FindingState::RiskAccepted,
            FindingState::FalsePositive,
        ]),
        steps in prop::collection::vec((arb_actor(), arb_request(), 0..HOUR), 0..40),
    ) {
        let (mut f, _) = finding(Rule::RiskyExposure, start);
        if start == FindingState::RiskAccepted {
            f.risk_accepted_until = Some(NOW + DAY);
        }
        let mut now = NOW;
        for (actor, r, dt) in steps {
            now += dt;
            let before = f.clone();
            match transition(&mut f, &actor, &r, now) {
                Ok(()) => {
                    prop_assert!(!f.state.is_closed());
                    prop_assert_eq!(f.state, r.to);
                    prop_assert_eq!(f.transitions.len(), before.transitions.len() + 1);
                    prop_assert_eq!(&f.transitions[..before.transitions.len()], &before.transitions[..]);
                    let t = f.transitions.last().expect("a transition");
                    prop_assert_eq!(&t.actor, &actor);
                    prop_assert_eq!(t.from, Some(before.state));
                    prop_assert_eq!(t.to, r.to);
                    prop_assert_eq!(&t.comment, &r.comment);
                    prop_assert_eq!(t.at, now);
                    prop_assert!(allowed_edge(before.state, r.to));
                    prop_assert!(actor != Actor::System);
                    prop_assert!(role_of(&actor) != Some(Role::Viewer));
                    if r.to == FindingState::RiskAccepted {
                        prop_assert!(role_of(&actor) != Some(Role::Remediator));
                        prop_assert!(r.until.is_some_and(|u| u > now));
                        prop_assert!(!r.comment.trim().is_empty());
                        prop_assert_eq!(f.risk_accepted_until, r.until);
                    } else {
                        prop_assert_eq!(f.risk_accepted_until, None);
                    }
                    if r.to == FindingState::FalsePositive {
                        prop_assert!(!r.comment.trim().is_empty());
                    }
                    if r.to == FindingState::Fixed {
                        prop_assert_eq!(f.fixed_at, Some(now));
                    }
                }
                Err(e) => {
                    prop_assert!(matches!(e, StoreError::Refused(_)), "{e:?}");
                    prop_assert_eq!(&f, &before);
                }
            }
        }
        prop_assert!(!f.state.is_closed());
    }
}

// ---------------------------------------------------------------------------------------
// evaluate: the next instant at which time alone changes the judgement
// ---------------------------------------------------------------------------------------

fn at(now: Millis, settings: &PolicySettings, sanctions: &[Sanction]) -> Context<'static> {
    // Leaked: tiny, test-only, and lets contexts at several instants share one helper.
    let settings: &'static PolicySettings = Box::leak(Box::new(settings.clone()));
    let sanctions: &'static [Sanction] = Box::leak(sanctions.to_vec().into_boxed_slice());
    Context {
        now,
        settings,
        sanctions,
        baseline: None,
        certificate: None,
    }
}

#[test]
fn next_instant_of_a_sanction_is_its_expiry() {
    let settings = PolicySettings::default();
    let a = service("198.18.0.7", 443, &[]);
    let expires = NOW + 3 * DAY;
    let s = [sanction("s-1", by_net("198.18.0.0/24"), Some(expires))];
    let ev = evaluate(&a, &at(NOW, &settings, &s));
    assert!(ev.expected.is_empty());
    assert_eq!(ev.next, Some(expires));
    assert!(expectations(&a, &at(expires - 1, &settings, &s)).is_empty());
    let after = evaluate(&a, &at(expires, &settings, &s));
    assert_eq!(rules(&after.expected), vec![Rule::StaleSanction]);
    // Expired: nothing more comes from it (the zombie period needs a valid sanction).
    assert_eq!(after.next, None);
    // A sanction that does not cover the asset, or one already expired, sets nothing.
    let other = [
        sanction("s-2", by_net("198.19.0.0/24"), Some(NOW + DAY)),
        sanction("s-3", by_net("198.18.0.0/24"), Some(NOW - DAY)),
    ];
    assert_eq!(evaluate(&a, &at(NOW, &settings, &other)).next, None);
    // Hosts read no sanction: no instant for them.
    let h = host("198.18.0.7");
    assert_eq!(evaluate(&h, &at(NOW, &settings, &s)).next, None);
}

#[test]
fn next_instant_of_a_sanctioned_exposure_is_the_end_of_its_zombie_period() {
    let settings = PolicySettings {
        zombie_days: 30,
        ..PolicySettings::default()
    };
    let s = [sanction("s-1", by_net("198.18.0.0/24"), None)];
    let a = last_seen_days_ago(service("198.18.0.7", 443, &[]), 10);
    let ev = evaluate(&a, &at(NOW, &settings, &s));
    let end = a.last_seen + 30 * DAY;
    assert_eq!(ev.next, Some(end));
    assert!(expectations(&a, &at(end - 1, &settings, &s)).is_empty());
    let zombie = evaluate(&a, &at(end, &settings, &s));
    assert_eq!(rules(&zombie.expected), vec![Rule::Zombie]);
    assert_eq!(
        zombie.next, None,
        "a zombie stays one until something is seen"
    );
    // The title does not count days, so it does not change every day.
    let later = expectations(&a, &at(end + 40 * DAY, &settings, &s));
    assert_eq!(later, zombie.expected);
    // Unsanctioned exposures are never zombies: no instant.
    assert_eq!(evaluate(&a, &at(NOW, &settings, &[])).next, None);
    // A name that no longer resolves is a zombie at once.
    let d = absent(domain("old.example.com", &[]));
    let names = [sanction("s-d", by_domain("*.example.com"), None)];
    let ev = evaluate(&d, &at(NOW, &settings, &names));
    assert_eq!(rules(&ev.expected), vec![Rule::Zombie]);
    assert_eq!(ev.next, None);
}

#[test]
fn next_instants_of_a_certificate_are_its_expiring_window_then_its_end() {
    let settings = PolicySettings {
        expiring_days: 30,
        zombie_days: 365,
        ..PolicySettings::default()
    };
    let s = [sanction("s-all", by_net("0.0.0.0/0"), None)];
    let cert = cert_expiring_in(45 * DAY);
    let na = NOW + 45 * DAY;
    let svc = tls_service(&[]);
    let ctx = |now| Context {
        certificate: Some(&cert),
        ..at(now, &settings, &s)
    };
    let ev = evaluate(&svc, &ctx(NOW));
    assert!(ev.expected.is_empty());
    assert_eq!(ev.next, Some(na - 30 * DAY));
    assert!(expectations(&svc, &ctx(na - 30 * DAY - 1)).is_empty());
    let expiring = evaluate(&svc, &ctx(na - 30 * DAY));
    assert_eq!(rules(&expiring.expected), vec![Rule::CertificateExpiring]);
    assert_eq!(expiring.next, Some(na));
    let expired = evaluate(&svc, &ctx(na));
    assert_eq!(rules(&expired.expected), vec![Rule::CertificateExpired]);
    // Sanctioned without expiry: what is left is the end of its zombie period.
    assert_eq!(expired.next, Some(svc.last_seen + 365 * DAY));
    // An absent service presents nothing.
    let gone = absent(tls_service(&[]));
    let ev = evaluate(
        &gone,
        &Context {
            certificate: Some(&cert),
            ..at(NOW, &settings, &[])
        },
    );
    assert_eq!(ev.next, None);
}

#[test]
fn the_next_instant_is_the_earliest_of_them() {
    let settings = PolicySettings::default();
    let cert = cert_expiring_in(40 * DAY);
    let svc = tls_service(&[]);
    let s = [sanction(
        "s-1",
        by_net("198.18.0.0/24"),
        Some(NOW + 5 * DAY),
    )];
    let ev = evaluate(
        &svc,
        &Context {
            certificate: Some(&cert),
            ..at(NOW, &settings, &s)
        },
    );
    assert_eq!(ev.next, Some(NOW + 5 * DAY));
    let ev = evaluate(
        &svc,
        &Context {
            certificate: Some(&cert),
            ..at(NOW + 6 * DAY, &settings, &s)
        },
    );
    // The sanction has expired; next: the certificate's window (40 - 30 days).
    assert_eq!(rules(&ev.expected), vec![Rule::StaleSanction]);
    assert_eq!(ev.next, Some(NOW + 10 * DAY));
}

#[test]
fn rules_that_do_not_read_the_clock_set_no_instant() {
    let settings = PolicySettings::default();
    for a in [
        service(
            "198.18.0.7",
            22,
            &[
                ("risk", "remote-administration"),
                ("cleartext_auth", "true"),
            ],
        ),
        domain(
            "www.example.com",
            &[
                ("zone.axfr_open", "ns1"),
                ("dangling_cname", "x.example.net"),
            ],
        ),
        host("198.18.0.7"),
        certificate(&[("not_after_unix", "1")]),
    ] {
        let ev = evaluate(
            &a,
            &Context {
                baseline: Some(NOW - 200 * DAY),
                ..at(NOW, &settings, &[])
            },
        );
        assert_eq!(ev.next, None, "{}", a.key);
    }
}

#[test]
fn a_risk_acceptance_is_reviewed_when_it_ends() {
    let (mut f, _) = finding(Rule::RiskyExposure, FindingState::RiskAccepted);
    f.risk_accepted_until = Some(NOW + 7 * DAY);
    assert_eq!(review_at(&f), Some(NOW + 7 * DAY));
    for state in ALL_STATES
        .into_iter()
        .filter(|s| *s != FindingState::RiskAccepted)
    {
        f.state = state;
        assert_eq!(review_at(&f), None, "{state:?}");
    }
}

proptest! {
    /// Nothing changes by time alone before the instant evaluate names: evaluating at any
    /// moment in between gives what evaluating now gave. (Whatever the asset, sanctions,
    /// certificate and thresholds.)
    #[test]
    fn nothing_changes_before_the_next_instant(
        seen_ago in 0..60 * DAY,
        present in any::<bool>(),
        is_domain in any::<bool>(),
        expiry in prop::option::of(-10 * DAY..60 * DAY),
        sanctioned in any::<bool>(),
        cert_in in prop::option::of(-10 * DAY..90 * DAY),
        zombie_days in 0u32..45,
        expiring_days in 0u32..45,
        probes in prop::collection::vec(0.0f64..1.0, 1..6),
    ) {
        let settings = PolicySettings { zombie_days, expiring_days, ..PolicySettings::default() };
        let mut a = if is_domain {
            domain("www.example.com", &[])
        } else {
            tls_service(&[])
        };
        a.last_seen = NOW - seen_ago;
        if !present {
            a = absent(a);
        }
        let s: Vec<Sanction> = if sanctioned {
            vec![
                sanction("s-n", by_net("198.18.0.0/24"), expiry.map(|e| NOW + e)),
                sanction("s-d", by_domain("*.example.com"), expiry.map(|e| NOW + e)),
            ]
        } else {
            Vec::new()
        };
        let cert = cert_in.map(cert_expiring_in);
        let ctx = |now| Context { certificate: cert.as_ref(), ..at(now, &settings, &s) };
        let ev = evaluate(&a, &ctx(NOW));
        let horizon = ev.next.unwrap_or(NOW + 3650 * DAY);
        prop_assert!(horizon > NOW);
        for p in probes {
            let t = NOW + ((horizon - 1 - NOW) as f64 * p) as Millis;
            prop_assert_eq!(&expectations(&a, &ctx(t)), &ev.expected, "at {}", t - NOW);
        }
        prop_assert_eq!(&expectations(&a, &ctx(horizon - 1)), &ev.expected);
    }
}

// ---------------------------------------------------------------------------------------
// What an edit reaches
// ---------------------------------------------------------------------------------------

#[test]
fn a_glob_lies_in_the_zone_after_its_last_pattern_label() {
    for (pattern, apex) in [
        ("*.shop.example.com", Some("shop.example.com")),
        ("*shop.example.com", Some("example.com")),
        ("WWW.Example.COM.", Some("www.example.com")),
        ("a.{b,c.d}.example.com", Some("example.com")),
        ("[.]com", None),
        ("www.example.*", None),
        ("*", None),
        ("", None),
        ("a.b!.com", Some("com")),
    ] {
        assert_eq!(glob_apex(pattern).as_deref(), apex, "{pattern}");
    }
    // Every name the glob matches is in its zone.
    for (pattern, name) in [
        ("*.shop.example.com", "a.b.shop.example.com"),
        ("a.{b,c.d}.example.com", "a.c.d.example.com"),
    ] {
        let apex = glob_apex(pattern).expect("apex");
        assert!(by_domain(pattern).matches(&domain(name, &[])));
        assert!(name.ends_with(&format!(".{apex}")), "{name} under {apex}");
    }
}

#[test]
fn a_sanction_edit_reaches_its_old_and_new_match_and_the_findings_naming_it() {
    let old = sanction("s-1", by_net("198.18.0.0/24"), Some(NOW + DAY));
    let m = |s: &Sanction| Reach::Match {
        matches: s.matches.clone(),
        seen_within_days: None,
    };
    let named = |id: &str| {
        vec![
            Reach::Findings {
                rule: Rule::StaleSanction,
                detail: Some(id.into()),
            },
            Reach::Findings {
                rule: Rule::Zombie,
                detail: Some(id.into()),
            },
        ]
    };
    assert_eq!(sanction_reach(None, Some(&old)), vec![m(&old)]);
    let mut deleted = vec![m(&old)];
    deleted.extend(named("s-1"));
    assert_eq!(sanction_reach(Some(&old), None), deleted);
    // Reason and ticket reach nothing; the owner is in the findings' evidence.
    let mut wording = old.clone();
    wording.reason = "another reason".into();
    wording.ticket = None;
    assert!(sanction_reach(Some(&old), Some(&wording)).is_empty());
    let mut owner = old.clone();
    owner.owner = "bob".into();
    assert_eq!(sanction_reach(Some(&old), Some(&owner)), named("s-1"));
    // A new expiry: the same match once, and its findings.
    let mut renewed = old.clone();
    renewed.expires = Some(NOW + 90 * DAY);
    let mut want = vec![m(&old)];
    want.extend(named("s-1"));
    assert_eq!(sanction_reach(Some(&old), Some(&renewed)), want);
    // A new match: both.
    let mut moved = old.clone();
    moved.matches = by_domain("*.example.com");
    let mut want = vec![m(&old), m(&moved)];
    want.extend(named("s-1"));
    assert_eq!(sanction_reach(Some(&old), Some(&moved)), want);
}

#[test]
fn a_settings_edit_reaches_only_what_the_changed_settings_read() {
    let base = PolicySettings::default();
    let s = [
        sanction("s-1", by_net("198.18.0.0/24"), None),
        sanction("s-2", by_domain("*.example.com"), None),
    ];
    assert!(settings_reach(&base, &base, &s).is_empty());

    let mut sla = base.clone();
    sla.sla_days.insert(Severity::High, 3);
    assert!(
        settings_reach(&base, &sla, &s).is_empty(),
        "due dates are set when findings open"
    );

    let mut sev = base.clone();
    sev.severities.insert(Rule::NewAsset, Severity::Low);
    assert_eq!(
        settings_reach(&base, &sev, &s),
        vec![Reach::Findings {
            rule: Rule::NewAsset,
            detail: None
        }]
    );

    let mut zombie = base.clone();
    zombie.zombie_days = 10;
    let reach = settings_reach(&base, &zombie, &s);
    assert_eq!(
        reach,
        vec![
            Reach::Match {
                matches: s[0].matches.clone(),
                seen_within_days: Some(31)
            },
            Reach::Match {
                matches: s[1].matches.clone(),
                seen_within_days: Some(31)
            },
            Reach::Findings {
                rule: Rule::Zombie,
                detail: None
            },
        ]
    );

    let mut expiring = base.clone();
    expiring.expiring_days = 60;
    assert_eq!(
        settings_reach(&base, &expiring, &s),
        vec![
            Reach::UnexpiredCertificates,
            Reach::Findings {
                rule: Rule::CertificateExpiring,
                detail: None
            }
        ]
    );

    let mut classes = base.clone();
    classes.risky_classes.remove("cache");
    classes.risky_classes.insert("web".into());
    let reach = settings_reach(&base, &classes, &s);
    for class in ["cache", "web"] {
        assert!(reach.contains(&Reach::RiskClass {
            class: class.into()
        }));
        assert!(reach.contains(&Reach::Findings {
            rule: Rule::RiskyExposure,
            detail: Some(class.into())
        }));
    }
    assert_eq!(reach.len(), 4);

    let mut clear = base.clone();
    clear.cleartext_auth_is_risky = false;
    assert_eq!(
        settings_reach(&base, &clear, &s),
        vec![Reach::Findings {
            rule: Rule::RiskyExposure,
            detail: Some("cleartext-auth".into())
        }]
    );
    assert_eq!(settings_reach(&clear, &base, &s), vec![Reach::Services]);
}

#[test]
fn reaches_round_trip_as_stored() {
    let r = Reach::Match {
        matches: by_domain("*.example.com"),
        seen_within_days: Some(3),
    };
    let json = serde_json::to_string(&r).expect("serializes");
    assert!(json.contains("\"reach\":\"match\""), "{json}");
    assert_eq!(serde_json::from_str::<Reach>(&json).expect("parses"), r);
}
