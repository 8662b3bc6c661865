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
