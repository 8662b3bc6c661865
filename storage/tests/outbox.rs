//! The alert outbox in a real store: events become deliveries in the same commit as
//! their cause (a new asset, a failed scan), once per happening and channel; retries
//! move them, too many make them dead letters, a replay brings them back; all of it
//! survives reopening the store.

mod common;

use aperture_notify::{AlertRule, Channel, ChannelKind, EventKind};
use aperture_storage::access::{JobState, ScanJob};
use aperture_storage::*;
use common::*;

fn channel(id: &str) -> Channel {
    Channel {
        id: id.into(),
        name: id.into(),
        kind: ChannelKind::Webhook,
        url: "http://127.0.0.1:9/hook".into(),
        secret: Some("0123456789abcdef".into()),
        email: None,
        created: T0,
        created_by: "test".into(),
        needs_secret: false,
    }
}

fn rule(id: &str, events: Vec<EventKind>, channels: &[&str]) -> AlertRule {
    AlertRule {
        id: id.into(),
        name: id.into(),
        events,
        min_severity: None,
        within_days: None,
        channels: channels.iter().map(|c| c.to_string()).collect(),
        digest_minutes: None,
        quiet_hours: None,
        enabled: true,
    }
}

fn failed_job(t: &TenantId, id: &str) -> ScanJob {
    let mut job: ScanJob = serde_json::from_value(serde_json::json!({
        "id": id, "tenant": t.as_str(), "request": {"targets": ["198.18.0.0/24"]},
        "seed": 1, "port_shards": 1, "probes_total": 1, "state": "running",
        "requested": T0, "requested_by": "test", "started": T0, "finished": null,
        "error": null, "purpose": null
    }))
    .expect("job");
    job.state = JobState::Failed;
    job.finished = Some(T0 + 1000);
    job.error = Some("the scanner could not open a raw socket".into());
    job
}

#[test]
fn deliveries_are_written_with_their_cause_once_per_channel() {
    let (dir, store, t) = fresh();
    // Without rules, nothing is queued.
    store.put_job(&failed_job(&t, "s0")).expect("job");
    assert!(store.pending_deliveries(&t).expect("pending").is_empty());

    store.create_channel(&t, &channel("a")).expect("channel a");
    store.create_channel(&t, &channel("b")).expect("channel b");
    store
        .put_alert_rule(
            &t,
            &rule("r1", vec![EventKind::ScanFailed], &["a", "b"]),
            true,
        )
        .expect("rule 1");
    // A second rule naming channel a again does not send it twice.
    store
        .put_alert_rule(
            &t,
            &rule(
                "r2",
                vec![EventKind::ScanFailed, EventKind::AssetNew],
                &["a"],
            ),
            true,
        )
        .expect("rule 2");
    store.put_job(&failed_job(&t, "s1")).expect("job");
    // Storing the failed job again is no new happening.
    store.put_job(&failed_job(&t, "s1")).expect("job again");
    let mut ids: Vec<String> = store
        .pending_deliveries(&t)
        .expect("pending")
        .into_iter()
        .map(|d| d.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["acme.sf-s1.a", "acme.sf-s1.b"]);

    // New assets: one event per asset, in the ingest's own commit.
    begin(&store, &t, "scan1", &["198.18.0.0/24"], &[22], 1);
    store
        .apply(
            &t,
            &batch("scan1", 0, T0, vec![port("198.18.0.7", 22, None)]),
        )
        .expect("applies");
    let news: Vec<_> = store
        .pending_deliveries(&t)
        .expect("pending")
        .into_iter()
        .filter(|d| d.event.kind == EventKind::AssetNew)
        .collect();
    let assets: std::collections::BTreeSet<String> =
        news.iter().filter_map(|d| d.event.asset.clone()).collect();
    assert!(assets.contains("service:198.18.0.7:22/tcp"), "{assets:?}");
    assert!(news.iter().all(|d| d.channel == "a"), "{news:?}");

    // It is all durable: the same after reopening.
    let before = store.pending_deliveries(&t).expect("pending");
    drop(store);
    let store = Store::open(dir.path()).expect("reopens");
    assert_eq!(store.pending_deliveries(&t).expect("pending"), before);
}

#[test]
fn failures_retry_then_die_and_a_replay_brings_them_back() {
    let (_dir, store, t) = fresh();
    store.create_channel(&t, &channel("a")).expect("channel");
    store
        .put_alert_rule(&t, &rule("r", vec![EventKind::ScanFailed], &["a"]), true)
        .expect("rule");
    store.put_job(&failed_job(&t, "s1")).expect("job");
    let now = T0 + 1000;
    let mut due = store.due_deliveries(now, 10).expect("due");
    assert_eq!(due.len(), 1);
    for attempt in 1..=3u32 {
        let (tenant, d) = due.remove(0);
        let next = now + i64::from(attempt) * 1000;
        let died = store
            .failed(&[(tenant, d, format!("HTTP 503 #{attempt}"), next)], 3)
            .expect("recorded");
        assert_eq!(died, usize::from(attempt == 3));
        if attempt < 3 {
            // Not due before its next time.
            assert!(store.due_deliveries(next - 1, 10).expect("due").is_empty());
            due = store.due_deliveries(next, 10).expect("due");
            assert_eq!(due[0].1.attempts, attempt);
        }
    }
    assert!(store.pending_deliveries(&t).expect("pending").is_empty());
    let dead = store.dead_letters(&t).expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 503 #3"));
    let replayed = store
        .replay_dead_letter(&t, &dead[0].id, now + 10_000)
        .expect("replay");
    assert_eq!(replayed.attempts, 0);
    assert!(store.dead_letters(&t).expect("dead").is_empty());
    let due = store.due_deliveries(now + 10_000, 10).expect("due");
    assert_eq!(due.len(), 1);
    store.delivered(&due).expect("delivered");
    assert!(store.pending_deliveries(&t).expect("pending").is_empty());
    assert!(matches!(
        store.replay_dead_letter(&t, "nope", now),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn rules_need_their_channels_and_channels_in_use_stay() {
    let (_dir, store, t) = fresh();
    store.create_channel(&t, &channel("a")).expect("channel");
    let err = store
        .put_alert_rule(
            &t,
            &rule("r", vec![EventKind::AssetNew], &["a", "ghost"]),
            true,
        )
        .expect_err("unknown channel");
    assert!(err.to_string().contains("ghost"), "{err}");
    assert!(store.alert_rules(&t).expect("rules").is_empty());
    store
        .put_alert_rule(&t, &rule("r", vec![EventKind::AssetNew], &["a"]), true)
        .expect("rule");
    assert!(matches!(
        store.delete_channel(&t, "a"),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_channel(&t, &channel("a")),
        Err(StoreError::Conflict(_))
    ));
    store.delete_alert_rule(&t, "r").expect("rule deleted");
    store.delete_channel(&t, "a").expect("channel deleted");
    assert!(store.channels(&t).expect("channels").is_empty());
}

#[test]
fn overdue_findings_are_alerted_once_per_deadline() {
    let (_dir, store, t) = fresh();
    store.create_channel(&t, &channel("a")).expect("channel");
    // Without a rule asking for it, nothing.
    begin(&store, &t, "scan1", &["198.18.0.0/24"], &[6379], 1);
    store
        .apply(
            &t,
            &batch("scan1", 0, T0, vec![port("198.18.0.9", 6379, None)]),
        )
        .expect("applies");
    store.run_policy(&t, T0).expect("policy");
    let findings = store
        .findings_of(&t, &AssetKey::tcp("198.18.0.9".parse().expect("ip"), 6379))
        .expect("findings");
    let due = findings
        .iter()
        .filter_map(|f| f.due)
        .min()
        .expect("a finding with a deadline");
    assert_eq!(store.enqueue_overdue(&t, due + DAY).expect("pass"), 0);
    store
        .put_alert_rule(
            &t,
            &rule("late", vec![EventKind::FindingOverdue], &["a"]),
            true,
        )
        .expect("rule");
    // Not yet overdue.
    assert_eq!(store.enqueue_overdue(&t, due - 1).expect("pass"), 0);
    let n = store.enqueue_overdue(&t, due + DAY).expect("pass");
    assert!(n >= 1);
    let overdue: Vec<_> = store
        .pending_deliveries(&t)
        .expect("pending")
        .into_iter()
        .filter(|d| d.event.kind == EventKind::FindingOverdue)
        .collect();
    assert_eq!(overdue.len(), n);
    assert!(overdue
        .iter()
        .all(|d| d.event.id.contains(".od-") && d.event.severity.is_some()));
    // The next pass finds them alerted already.
    assert_eq!(store.enqueue_overdue(&t, due + 2 * DAY).expect("pass"), 0);
}

#[test]
fn verification_results_and_reopenings_are_alerted() {
    use aperture_storage::policy::{Actor, FindingState, Role, Rule, TransitionRequest};
    let (_dir, store, t) = fresh();
    store.create_channel(&t, &channel("a")).expect("channel");
    store
        .put_alert_rule(
            &t,
            &rule(
                "r",
                vec![EventKind::VerificationResult, EventKind::FindingOpened],
                &["a"],
            ),
            true,
        )
        .expect("rule");
    let key = service("198.18.0.7", 6379);
    let seen = || {
        vec![
            port("198.18.0.7", 6379, Some(redis())),
            port("198.18.0.7", 22, None),
        ]
    };
    scan_once(&store, &t, "s1", T0, seen());
    store.run_policy(&t, T0).expect("policy");
    let risky = store
        .findings_of(&t, &key)
        .expect("findings")
        .into_iter()
        .find(|f| f.rule == Rule::RiskyExposure)
        .expect("risky finding");
    let kinds = |store: &Store| -> Vec<(EventKind, String)> {
        let mut v: Vec<_> = store
            .pending_deliveries(&t)
            .expect("pending")
            .into_iter()
            .filter(|d| d.event.finding.as_deref() == Some(risky.id.as_str()))
            .map(|d| {
                (
                    d.event.kind,
                    d.event.detail.get("result").cloned().unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(kinds(&store), [(EventKind::FindingOpened, String::new())]);
    let fixed = TransitionRequest {
        to: FindingState::Fixed,
        comment: "firewalled".into(),
        until: None,
    };
    let rem = Actor::User {
        name: "rem".into(),
        role: Role::Remediator,
    };
    store
        .transition_finding(&t, &risky.id, &rem, &fixed, T0 + 1)
        .expect("claims fixed");
    // The verification still sees it: disproved.
    scan_once(&store, &t, "verify-1", T0 + HOUR, seen());
    store.run_policy(&t, T0 + HOUR).expect("policy");
    // Fixed for real this time: confirmed.
    store
        .transition_finding(&t, &risky.id, &rem, &fixed, T0 + 2 * HOUR)
        .expect("claims fixed");
    scan_once(
        &store,
        &t,
        "verify-2",
        T0 + 3 * HOUR,
        vec![port("198.18.0.7", 22, None)],
    );
    store.run_policy(&t, T0 + 3 * HOUR).expect("policy");
    // It comes back: opened again.
    scan_once(&store, &t, "s4", T0 + 4 * HOUR, seen());
    store.run_policy(&t, T0 + 4 * HOUR).expect("policy");
    assert_eq!(
        kinds(&store),
        [
            (EventKind::FindingOpened, String::new()),
            (EventKind::FindingOpened, String::new()),
            (EventKind::VerificationResult, "fixed".to_owned()),
            (EventKind::VerificationResult, "still-exposed".to_owned()),
        ]
    );
}

/// Export and import carry a tenant's channels, rules and report settings; secrets stay
/// behind, and an imported channel that lost one sends nothing until it is given again.
#[test]
fn channels_rules_and_report_settings_travel_without_their_secrets() {
    use aperture_notify::{EmailSettings, QuietHours};
    use aperture_storage::reporting::ReportSchedule;
    let (_dir, store, t) = fresh();
    let hook = channel("hook");
    let mut robot = channel("ding");
    robot.kind = ChannelKind::DingTalk;
    robot.url = "https://oapi.dingtalk.com/robot/send?access_token=tok-0123".into();
    robot.secret = Some("SEC-ding-secret".into());
    let email = |id: &str, login: bool| {
        let mut c = channel(id);
        c.kind = ChannelKind::Email;
        c.url = String::new();
        c.secret = None;
        c.email = Some(EmailSettings {
            host: "smtp.example.com".into(),
            port: 587,
            starttls: true,
            username: login.then(|| "reports".into()),
            password: login.then(|| "mail-password-42".into()),
            from: "reports@example.com".into(),
            to: vec!["soc@example.com".into()],
            ca_pem: None,
        });
        c
    };
    for c in [&hook, &robot, &email("mail", true), &email("relay", false)] {
        store.create_channel(&t, c).expect("channel");
    }
    let mut night = rule("night", vec![EventKind::FindingOpened], &["hook", "ding"]);
    night.quiet_hours = Some(QuietHours {
        start: "22:00".into(),
        end: "07:00".into(),
        utc_offset: "Z".into(),
        tz: Some("Asia/Shanghai".into()),
    });
    store.put_alert_rule(&t, &night, true).expect("rule");
    let reports = ReportSchedule {
        weekly: true,
        lang: "zh-CN".into(),
        recipients: vec!["ciso@example.com".into()],
        channel: Some("mail".into()),
        ..ReportSchedule::default()
    };
    store.set_report_schedule(&t, &reports).expect("settings");

    let mut out = Vec::new();
    store.export_tenant(&t, &mut out).expect("export");
    let text = String::from_utf8(out.clone()).expect("utf-8");
    for secret in [
        "0123456789abcdef",
        "tok-0123",
        "SEC-ding-secret",
        "mail-password-42",
    ] {
        assert!(!text.contains(secret), "the export carries {secret}");
    }
    let copy = TenantId::new("copy").expect("id");
    store
        .import_tenant(&mut out.as_slice(), Some(&copy))
        .expect("import");
    let by_id = |id: &str| store.channel(&copy, id).expect("imported channel");
    assert!(by_id("hook").needs_secret && by_id("hook").secret.is_none());
    assert_eq!(by_id("ding").url, "https://oapi.dingtalk.com/…");
    assert!(by_id("ding").needs_secret);
    let mail = by_id("mail");
    assert!(mail.needs_secret);
    assert_eq!(mail.email.as_ref().and_then(|e| e.password.clone()), None);
    assert_eq!(
        mail.email.as_ref().map(|e| e.to.clone()),
        Some(vec!["soc@example.com".to_owned()])
    );
    // Nothing was secret: usable as it is.
    assert!(!by_id("relay").needs_secret);
    assert_eq!(store.alert_rules(&copy).expect("rules"), vec![night]);
    assert_eq!(store.report_schedule(&copy).expect("settings"), reports);

    // The secret given again: usable; the kind cannot change on the way.
    let mut again = hook.clone();
    again.created = 0;
    let fixed = store.replace_channel(&copy, &again).expect("replaced");
    assert!(!fixed.needs_secret);
    assert_eq!(fixed.created, T0, "a channel keeps its creation time");
    assert_eq!(by_id("hook").secret.as_deref(), Some("0123456789abcdef"));
    let mut other = email("hook", false);
    other.id = "hook".into();
    let e = store.replace_channel(&copy, &other).expect_err("kind");
    assert!(e.to_string().contains("kind"), "{e}");
    assert!(store.replace_channel(&copy, &email("nope", false)).is_err());

    // A channel the report settings use stays until they name another.
    let e = store.delete_channel(&copy, "mail").expect_err("in use");
    assert!(e.to_string().contains("reports"), "{e}");
}

/// A report's mail is queued (durably) before the report is printed, due later; made
/// due once the report exists. Either way it survives a restart, and only an e-mail
/// channel of the tenant can carry it.
#[test]
fn report_mail_waits_in_the_outbox_across_a_restart() {
    use aperture_notify::EmailSettings;
    use aperture_storage::reporting::report_event;
    let (dir, store, t) = fresh();
    let mut mail = channel("mail");
    mail.kind = ChannelKind::Email;
    mail.url = String::new();
    mail.secret = None;
    mail.email = Some(EmailSettings {
        host: "smtp.example.com".into(),
        port: 587,
        starttls: true,
        username: None,
        password: None,
        from: "reports@example.com".into(),
        to: vec!["soc@example.com".into()],
        ca_pem: None,
    });
    store.create_channel(&t, &mail).expect("mail channel");
    store.create_channel(&t, &channel("hook")).expect("hook");
    let to = vec!["ciso@example.com".to_owned(), "soc@example.com".to_owned()];
    let event = report_event(&t, "r1795000000000-weekly-zh", "weekly", &to, T0);
    assert_eq!(event.id, "acme.report-r1795000000000-weekly-zh");
    for wrong in ["hook", "nope"] {
        let e = store
            .enqueue_report_mail(&t, wrong, &event, T0, T0)
            .expect_err("not an e-mail channel");
        assert!(e.to_string().contains("e-mail channel"), "{e}");
    }
    let d = store
        .enqueue_report_mail(&t, "mail", &event, T0 + 150_000, T0)
        .expect("queued");
    assert!(store.due_deliveries(T0 + 1000, 10).expect("due").is_empty());
    drop(store);
    let store = Store::open(dir.path()).expect("reopens");
    let waiting = store.pending_deliveries(&t).expect("pending");
    assert_eq!(waiting, vec![d.clone()]);
    assert_eq!(
        waiting[0].event.detail["to"],
        "ciso@example.com, soc@example.com"
    );
    assert!(store.delivery_due_now(&t, &d, T0 + 2000).expect("moved"));
    let due = store.due_deliveries(T0 + 2000, 10).expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1.id, "acme.report-r1795000000000-weekly-zh.mail");
    // Already moved (or sent): nothing to move.
    assert!(!store.delivery_due_now(&t, &d, T0 + 3000).expect("gone"));
}
