//! Scan windows in time: whether a tenant's scan may send now, until when, and when it
//! may next; and the tenant's rate cap shared among its running scans.
//!
//! A window opens at each start its cron expression names (read in its IANA zone, so
//! daylight-saving changes move it as the local clock does) and stays open for its
//! duration. A scan may send when the instant is inside one of the tenant's windows (or
//! the tenant has none), inside its schedule's window (if it has one), and inside no
//! blackout. Everything is computed from the records on demand: nothing to keep in step.

use super::error::{ApiError, ApiResult};
use super::state::{now_ms, SharedState};
use aperture_storage::access::ScanJob;
use aperture_storage::windows::{TenantWindows, Window};
use aperture_storage::{Millis, TenantId};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use std::sync::atomic::Ordering;

/// How far ahead a window must open to be accepted: four years and two days, so a
/// window on 29 February is found.
pub const LOOK_AHEAD_MS: i64 = (4 * 365 + 3) * 86_400_000;
/// Changes of state walked before giving up on finding an opening (or a closing).
const MAX_STEPS: usize = 20_000;
/// At most this many windows and blackouts each.
pub const MAX_WINDOWS: usize = 32;
const MAX_DURATION_MINS: u32 = 366 * 24 * 60;

/// A window, parsed.
#[derive(Debug, Clone)]
pub struct Span {
    cron: Cron,
    tz: Tz,
    duration_ms: i64,
}

/// Why a window is refused, in words for the caller.
fn parse(what: &str, w: &Window) -> Result<Span, String> {
    let tz: Tz = w.tz.trim().parse().map_err(|_| {
        format!(
            "{what}: unknown time zone {:?}: give an IANA name such as Asia/Shanghai, \
             Europe/Berlin or UTC",
            w.tz
        )
    })?;
    if w.cron.split_whitespace().count() != 5 {
        return Err(format!(
            "{what}: cron {:?} must have 5 fields (minute hour day-of-month month \
             day-of-week), e.g. \"0 1 * * *\" for 01:00 every day",
            w.cron
        ));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(&w.cron)
        .map_err(|e| format!("{what}: cron {:?} does not parse: {e}", w.cron))?;
    if w.duration_mins == 0 || w.duration_mins > MAX_DURATION_MINS {
        return Err(format!(
            "{what}: duration_mins {} must be 1 to {MAX_DURATION_MINS} (366 days)",
            w.duration_mins
        ));
    }
    Ok(Span {
        cron,
        tz,
        duration_ms: i64::from(w.duration_mins) * 60_000,
    })
}

fn at(tz: Tz, ms: Millis) -> Option<DateTime<Tz>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.with_timezone(&tz))
}

impl Span {
    /// The latest start at or before `t`.
    fn last_start(&self, t: Millis) -> Option<Millis> {
        let now = at(self.tz, t)?;
        self.cron
            .find_previous_occurrence(&now, true)
            .ok()
            .map(|s| s.timestamp_millis())
            .filter(|s| *s > t - self.duration_ms)
    }

    /// The first start after `t`, within the look-ahead.
    fn next_start(&self, t: Millis) -> Option<Millis> {
        let now = at(self.tz, t)?;
        self.cron
            .find_next_occurrence(&now, false)
            .ok()
            .map(|s| s.timestamp_millis())
            .filter(|s| *s <= t + LOOK_AHEAD_MS)
    }

    /// Whether `t` is inside one of its openings.
    pub fn open_at(&self, t: Millis) -> bool {
        self.last_start(t).is_some()
    }

    /// The end of the opening that holds `t`, if one does.
    fn open_until(&self, t: Millis) -> Option<Millis> {
        self.last_start(t).map(|s| s + self.duration_ms)
    }

    /// The next instant after `t` at which this span opens or closes.
    fn next_change(&self, t: Millis) -> Option<Millis> {
        let end = self.open_until(t);
        let start = self.next_start(t);
        match (end, start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What restricts one scan in time.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Any of these (none: always).
    windows: Vec<Span>,
    /// And this one, when the scan came from a windowed schedule.
    schedule: Option<Span>,
    /// And none of these.
    blackouts: Vec<Span>,
}

/// Where a scan stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// It may send; until then (`None`: no closing within the look-ahead).
    Open(Option<Millis>),
    /// It may not; it may from then (`None`: not within the look-ahead).
    Closed(Option<Millis>),
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.schedule.is_none() && self.blackouts.is_empty()
    }

    /// Whether a scan may send at `t`: a few cron look-ups, cheap enough to ask often.
    pub fn open_at(&self, t: Millis) -> bool {
        (self.windows.is_empty() || self.windows.iter().any(|w| w.open_until(t).is_some()))
            && self
                .schedule
                .as_ref()
                .is_none_or(|w| w.open_until(t).is_some())
            && !self.blackouts.iter().any(|b| b.open_until(t).is_some())
    }

    fn next_change(&self, t: Millis) -> Option<Millis> {
        self.windows
            .iter()
            .chain(self.schedule.iter())
            .chain(self.blackouts.iter())
            .filter_map(|s| s.next_change(t))
            .filter(|c| *c > t)
            .min()
    }

    /// Whether a scan may send at `t`, and until when (or from when). Walks up to
    /// `steps` changes: the closing of an open scan is only shown, so it needs fewer.
    pub fn gate(&self, t: Millis) -> Gate {
        self.gate_within(t, if self.open_at(t) { 500 } else { MAX_STEPS })
    }

    fn gate_within(&self, t: Millis, steps: usize) -> Gate {
        if self.is_empty() {
            return Gate::Open(None);
        }
        let open = self.open_at(t);
        let mut now = t;
        for _ in 0..steps {
            let Some(next) = self.next_change(now) else {
                break;
            };
            if next > t + LOOK_AHEAD_MS {
                break;
            }
            if self.open_at(next) != open {
                return if open {
                    Gate::Open(Some(next))
                } else {
                    Gate::Closed(Some(next))
                };
            }
            now = next;
        }
        if open {
            Gate::Open(None)
        } else {
            Gate::Closed(None)
        }
    }
}

/// Parses and checks a tenant's settings: every window and blackout well-formed, a rate
/// cap of at least 1, and (with windows or blackouts) an opening within the look-ahead.
pub fn check_tenant(w: &TenantWindows, max_rate: u32) -> ApiResult<Rules> {
    if w.windows.len() > MAX_WINDOWS || w.blackouts.len() > MAX_WINDOWS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_WINDOWS} windows and {MAX_WINDOWS} blackouts"
        )));
    }
    if let Some(r) = w.max_rate {
        if r == 0 || r > u64::from(max_rate) {
            return Err(ApiError::bad_request(format!(
                "max_rate {r}: give 1 to {max_rate} packets per second (the service's \
                 max_rate), or leave it out for no cap"
            )));
        }
    }
    let rules = tenant_rules(w).map_err(ApiError::bad_request)?;
    for (i, s) in rules.windows.iter().enumerate() {
        if s.next_start(now_ms()).is_none() {
            return Err(ApiError::bad_request(format!(
                "windows[{i}]: cron {:?} never opens within four years (a date that does \
                 not exist, such as 30 February?)",
                w.windows[i].cron
            )));
        }
    }
    if !rules.is_empty() {
        if let Gate::Closed(None) = rules.gate(now_ms()) {
            return Err(ApiError::bad_request(
                "these windows never open within four years once the blackouts are taken \
                 out: shorten or remove a blackout, or add a window",
            ));
        }
    }
    Ok(rules)
}

fn tenant_rules(w: &TenantWindows) -> Result<Rules, String> {
    let windows = w
        .windows
        .iter()
        .enumerate()
        .map(|(i, w)| parse(&format!("windows[{i}]"), w))
        .collect::<Result<Vec<_>, _>>()?;
    let blackouts = w
        .blackouts
        .iter()
        .enumerate()
        .map(|(i, w)| parse(&format!("blackouts[{i}]"), w))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rules {
        windows,
        schedule: None,
        blackouts,
    })
}

/// Checks a schedule's window: well-formed, opening within the look-ahead, and
/// overlapping the tenant's windows outside its blackouts at least once.
pub fn check_schedule_window(state: &SharedState, t: &TenantId, w: &Window) -> ApiResult<Span> {
    let span = parse("window", w).map_err(ApiError::bad_request)?;
    if span.next_start(now_ms()).is_none() {
        return Err(ApiError::bad_request(format!(
            "window: cron {:?} never opens within four years (a date that does not exist, \
             such as 30 February?)",
            w.cron
        )));
    }
    let tenant = state.store.tenant_windows(t)?;
    let mut rules = tenant_rules(&tenant).map_err(ApiError::bad_request)?;
    rules.schedule = Some(span.clone());
    if let Gate::Closed(None) = rules.gate(now_ms()) {
        return Err(ApiError::bad_request(
            "window: it never overlaps the tenant's scan windows outside its blackouts \
             within four years (GET …/windows shows them): pick another time",
        ));
    }
    Ok(span)
}

/// The next start of a schedule's window after `t`.
pub fn next_window_start(w: &Window, t: Millis) -> Option<Millis> {
    parse("window", w).ok()?.next_start(t)
}

/// The rules a job follows now (the tenant's as stored; none when overridden, apart
/// from its schedule's window). Stored windows were checked when they were set.
pub fn job_rules(state: &SharedState, job: &ScanJob) -> Rules {
    let mut rules = if job.windows_overridden_by.is_some() {
        Rules::default()
    } else {
        state
            .store
            .tenant_windows(&job.tenant)
            .ok()
            .and_then(|w| tenant_rules(&w).ok())
            .unwrap_or_default()
    };
    if job.windows_overridden_by.is_none() {
        rules.schedule = job.window.as_ref().and_then(|w| parse("window", w).ok());
    }
    rules
}

/// Whether a job is worth timing again: a waiting one only once its `until` has come
/// (one that never opens within the look-ahead waits for a settings change).
pub fn due(job: &ScanJob, now: Millis) -> bool {
    job.state != aperture_storage::access::JobState::Waiting || job.until.is_some_and(|u| u <= now)
}

/// Whether a job may send now, recording `waiting` (with `until`) when it may not and
/// it was not already. `None`: the job is no longer live.
pub fn gate_job(state: &SharedState, job: &ScanJob) -> Option<Gate> {
    let gate = job_rules(state, job).gate(now_ms());
    if let Gate::Closed(until) = gate {
        let updated = state
            .store
            .update_live_job(&job.tenant, &job.id, |j| {
                j.state = aperture_storage::access::JobState::Waiting;
                j.until = until;
            })
            .ok()
            .flatten();
        updated.as_ref()?;
    }
    Some(gate)
}

/// Shares the tenant's rate cap among its running scans (in-process and dispatched to
/// workers alike): each gets what it asks for if all fit, otherwise the cap is filled
/// evenly, a scan asking less than its even share leaving the rest to the others.
pub fn rebalance(state: &SharedState, tenant: &TenantId) {
    let cap = state
        .store
        .tenant_windows(tenant)
        .ok()
        .and_then(|w| w.max_rate);
    let prefix = format!("{tenant}/");
    let runs: Vec<_> = state
        .runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(_, h)| h.clone())
        .collect();
    let wants: Vec<u64> = runs
        .iter()
        .map(|h| h.wants.load(Ordering::Relaxed))
        .collect();
    for (h, rate) in runs.iter().zip(share(cap, &wants)) {
        h.rate.set(rate);
    }
}

/// Water-filling of `cap` over what each asks (at least 1 each).
pub fn share(cap: Option<u64>, wants: &[u64]) -> Vec<u64> {
    let Some(cap) = cap else {
        return wants.to_vec();
    };
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by_key(|&i| wants[i]);
    let mut out = vec![0; wants.len()];
    let mut left = cap;
    for (n, &i) in order.iter().enumerate() {
        let even = left / (wants.len() - n) as u64;
        let r = wants[i].min(even).max(1);
        out[i] = r;
        left = left.saturating_sub(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(cron: &str, mins: u32, tz: &str) -> Window {
        Window {
            cron: cron.into(),
            duration_mins: mins,
            tz: tz.into(),
        }
    }

    fn ms(s: &str) -> Millis {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .timestamp_millis()
    }

    #[test]
    fn a_daily_window_in_shanghai_opens_and_closes_at_local_times() {
        let rules = tenant_rules(&TenantWindows {
            windows: vec![w("0 1 * * *", 240, "Asia/Shanghai")],
            ..Default::default()
        })
        .expect("rules");
        // 01:00-05:00 in Shanghai is 17:00-21:00 UTC the day before.
        assert_eq!(
            rules.gate(ms("2026-12-07T16:00:00Z")),
            Gate::Closed(Some(ms("2026-12-07T17:00:00Z")))
        );
        assert_eq!(
            rules.gate(ms("2026-12-07T18:30:00Z")),
            Gate::Open(Some(ms("2026-12-07T21:00:00Z")))
        );
    }

    #[test]
    fn blackouts_cut_windows_and_can_close_them_for_good() {
        let mut tw = TenantWindows {
            windows: vec![w("0 1 * * *", 240, "UTC")],
            blackouts: vec![w("0 2 * * *", 60, "UTC")],
            max_rate: None,
        };
        let rules = tenant_rules(&tw).expect("rules");
        assert_eq!(
            rules.gate(ms("2026-12-07T01:30:00Z")),
            Gate::Open(Some(ms("2026-12-07T02:00:00Z")))
        );
        assert_eq!(
            rules.gate(ms("2026-12-07T02:10:00Z")),
            Gate::Closed(Some(ms("2026-12-07T03:00:00Z")))
        );
        tw.blackouts = vec![w("0 0 * * *", 1440, "UTC")];
        assert!(check_tenant(&tw, 1000).is_err(), "blackout over every day");
        tw.blackouts.clear();
        tw.windows = vec![w("0 0 30 2 *", 60, "UTC")];
        let e = check_tenant(&tw, 1000).expect_err("30 February");
        assert!(e.detail.contains("never opens"), "{}", e.detail);
        tw.windows = vec![w("0 0 29 2 *", 60, "UTC")];
        assert!(check_tenant(&tw, 1000).is_ok(), "29 February opens");
    }

    #[test]
    fn bad_windows_say_what_to_fix() {
        for (win, needle) in [
            (w("0 1 * * *", 60, "Mars/Olympus"), "unknown time zone"),
            (w("0 1 * *", 60, "UTC"), "5 fields"),
            (w("0 1 * * * *", 60, "UTC"), "5 fields"),
            (w("61 1 * * *", 60, "UTC"), "does not parse"),
            (w("0 1 * * *", 0, "UTC"), "duration_mins"),
        ] {
            let tw = TenantWindows {
                windows: vec![win],
                ..Default::default()
            };
            let e = check_tenant(&tw, 1000).expect_err(needle);
            assert!(e.detail.contains(needle), "{needle}: {}", e.detail);
        }
        let e = check_tenant(
            &TenantWindows {
                max_rate: Some(0),
                ..Default::default()
            },
            1000,
        )
        .expect_err("rate 0");
        assert!(e.detail.contains("max_rate"), "{}", e.detail);
    }

    #[test]
    fn the_cap_is_shared_by_water_filling() {
        assert_eq!(share(None, &[10, 20]), vec![10, 20]);
        assert_eq!(share(Some(100), &[10, 500, 500]), vec![10, 45, 45]);
        assert_eq!(share(Some(100), &[30, 30]), vec![30, 30]);
        assert_eq!(share(Some(1), &[5, 5]), vec![1, 1]);
    }
}
