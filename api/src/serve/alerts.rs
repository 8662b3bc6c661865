//! The alert sender: one thread that takes what the outbox has due, sends it (several
//! requests at once), and records the outcome — delivered (gone from the outbox), or
//! due again after an exponential, jittered delay, or, after `alert_max_attempts`, a
//! dead letter the API lists and can replay.
//!
//! A delivery leaves the outbox only after its receiver accepted it, in a durable
//! commit: a `kill -9` between the two sends it again after the restart, with the same
//! event id, which is what receivers de-duplicate on.

use super::state::{now_ms, SharedState};
use aperture_notify::channel::accepted;
use aperture_notify::{backoff_ms, Channel, Event, EventKind, Outgoing};
use aperture_storage::outbox::Delivery;
use aperture_storage::TenantId;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Deliveries read per pass.
const BATCH: usize = 512;
/// How often an idle sender looks for due deliveries.
const IDLE: Duration = Duration::from_millis(200);
/// How often findings past their deadline are looked for.
const OVERDUE_EVERY: Duration = Duration::from_secs(60);
/// Longest time a sent message waits for its outcome to be committed.
const FLUSH: Duration = Duration::from_millis(50);

/// One message: a single delivery, or the deliveries of one digest.
struct Message {
    tenant: TenantId,
    channel: String,
    id: String,
    deliveries: Vec<Delivery>,
}

fn agent_timeout(agent: &ureq::Agent) -> Duration {
    agent
        .config()
        .timeouts()
        .global
        .unwrap_or(Duration::from_secs(10))
}

pub fn agent(timeout_ms: u64) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(timeout_ms)))
        .http_status_as_error(false)
        // A receiver that redirects is misconfigured; following it could carry the
        // signed body somewhere nobody chose.
        .max_redirects(0)
        .build()
        .new_agent()
}

/// Sends one request; the receiver's status and (the start of) its answer.
pub fn send(agent: &ureq::Agent, out: &Outgoing) -> Result<(u16, String), String> {
    let mut req = agent.post(&out.url);
    for (k, v) in &out.headers {
        req = req.header(k, v);
    }
    let mut resp = req
        .send(&out.body[..])
        .map_err(|e| format!("cannot reach the receiver: {e}"))?;
    let status = resp.status().as_u16();
    let mut answer = Vec::new();
    let _ = resp
        .body_mut()
        .as_reader()
        .take(4096)
        .read_to_end(&mut answer);
    Ok((status, String::from_utf8_lossy(&answer).into_owned()))
}

/// Renders and sends `events` to `channel` as message `id`; Ok when the receiver took it.
pub fn deliver(
    agent: &ureq::Agent,
    channel: &Channel,
    id: &str,
    events: &[Event],
) -> Result<(u16, String), String> {
    if let Some(why) = channel.unusable() {
        return Err(why);
    }
    if let Some(settings) = &channel.email {
        return super::mail::send(settings, id, events, agent_timeout(agent));
    }
    let out = channel.render(id, events, now_ms());
    let (status, answer) = send(agent, &out)?;
    accepted(channel.kind, status, &answer).map(|()| (status, answer))
}

pub fn spawn(state: SharedState) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("alerts".into())
        .spawn(move || run(&state))
}

fn run(state: &SharedState) {
    let agent = agent(state.config.alert_timeout_ms);
    let mut overdue_pass = std::time::Instant::now();
    while !state.stopping.load(Ordering::SeqCst) {
        if overdue_pass.elapsed() >= OVERDUE_EVERY {
            overdue_pass = std::time::Instant::now();
            for t in state.store.tenants().unwrap_or_default() {
                if let Err(e) = state.store.enqueue_overdue(&t.id, now_ms()) {
                    eprintln!("alerts: overdue findings of {}: {e}", t.id);
                }
            }
        }
        match pass(state, &agent) {
            Ok(n) if n >= BATCH => {}
            Ok(_) => std::thread::sleep(IDLE),
            Err(e) => {
                eprintln!("alerts: {e}");
                std::thread::sleep(IDLE * 10);
            }
        }
    }
}

/// Sends what is due now; returns how many deliveries it handled.
fn pass(state: &SharedState, agent: &ureq::Agent) -> Result<usize, String> {
    let store = &state.store;
    let now = now_ms();
    let due = store
        .due_deliveries(now, BATCH)
        .map_err(|e| e.to_string())?;
    let handled = due.len();
    if due.is_empty() {
        return Ok(0);
    }
    let mut messages: BTreeMap<(TenantId, String, String), Message> = BTreeMap::new();
    for (tenant, d) in due {
        let id = match &d.group {
            Some(g) => format!("{tenant}.digest-{g}.{}", d.channel),
            None => d.id.clone(),
        };
        messages
            .entry((tenant.clone(), d.channel.clone(), id.clone()))
            .or_insert_with(|| Message {
                tenant,
                channel: d.channel.clone(),
                id,
                deliveries: Vec::new(),
            })
            .deliveries
            .push(d);
    }
    let messages: Vec<Message> = messages.into_values().collect();
    let mut channels: HashMap<(TenantId, String), Option<Channel>> = HashMap::new();
    for m in &messages {
        channels
            .entry((m.tenant.clone(), m.channel.clone()))
            .or_insert_with(|| store.channel(&m.tenant, &m.channel).ok());
    }
    // Outcomes are recorded as they come, a commit every FLUSH or every 64 of them: a
    // crash repeats only what was sent since the last commit, not a whole pass.
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<(), String>)>();
    let next = AtomicUsize::new(0);
    let workers = state.config.alert_concurrency.min(messages.len()).max(1);
    let mut result = Ok(());
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, messages, channels) = (&next, &messages, &channels);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(m) = messages.get(i) else { break };
                let outcome = match channels.get(&(m.tenant.clone(), m.channel.clone())) {
                    Some(Some(ch)) => {
                        let events: Vec<Event> =
                            m.deliveries.iter().map(|d| d.event.clone()).collect();
                        match events.as_slice() {
                            // A report's mail: the report's files, to its recipients.
                            [e] if e.kind == EventKind::Report => super::reports::mail::send(
                                &state.config.data_dir,
                                ch,
                                e,
                                agent_timeout(agent),
                            )
                            .map(|_| ()),
                            _ => deliver(agent, ch, &m.id, &events).map(|_| ()),
                        }
                    }
                    _ => Err(format!("channel {} no longer exists", m.channel)),
                };
                if tx.send((i, outcome)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending: Vec<(usize, Result<(), String>)> = Vec::new();
        let mut last = std::time::Instant::now();
        loop {
            let got = rx.recv_timeout(FLUSH);
            let finished = matches!(got, Err(std::sync::mpsc::RecvTimeoutError::Disconnected));
            if let Ok(o) = got {
                pending.push(o);
            }
            if finished || pending.len() >= 64 || last.elapsed() >= FLUSH {
                if let Err(e) = record(state, &messages, std::mem::take(&mut pending)) {
                    result = Err(e);
                }
                last = std::time::Instant::now();
            }
            if finished {
                break;
            }
        }
    });
    result.map(|()| handled)
}

/// Stores the outcomes of sent messages: delivered, or due again (or dead).
fn record(
    state: &SharedState,
    messages: &[Message],
    outcomes: Vec<(usize, Result<(), String>)>,
) -> Result<(), String> {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for (i, outcome) in outcomes {
        let Some(m) = messages.get(i) else { continue };
        for d in &m.deliveries {
            match &outcome {
                Ok(()) => done.push((m.tenant.clone(), d.clone())),
                Err(e) => {
                    let delay = backoff_ms(
                        d.attempts + 1,
                        state.config.alert_retry_base_ms,
                        state.config.alert_retry_cap_ms,
                        jitter(),
                    );
                    let next = now_ms() + delay as i64;
                    failed.push((m.tenant.clone(), d.clone(), e.clone(), next));
                }
            }
        }
    }
    state.metrics.alerts_delivered.inc_by(done.len() as u64);
    state.metrics.alerts_failed.inc_by(failed.len() as u64);
    state.store.delivered(&done).map_err(|e| e.to_string())?;
    let dead = state
        .store
        .failed(&failed, state.config.alert_max_attempts)
        .map_err(|e| e.to_string())?;
    state.metrics.alerts_dead.inc_by(dead as u64);
    Ok(())
}

/// A number in `[0, 1)` from the system's randomness.
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    if getrandom::getrandom(&mut b).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}
