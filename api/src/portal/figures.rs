//! The dashboard's figures without a walk per page view.
//!
//! The summary (exposure by risk class, findings by severity and age, overdue, time to
//! remediate) reads every present service and every finding: milliseconds for a small
//! tenant, ~15 s for one with a million services. A tenant whose summary is cheap gets it
//! computed on every view, exactly as before. For one whose summary is expensive, the
//! last one is kept and shown with the moment it was computed; when it is older than
//! [`FRESH`] or the tenant's change feed has moved, the view still gets it at once and a
//! single background task computes the next one.

use super::P;
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::reports::summary::{compute, Summary};
use crate::serve::state::now_ms;
use aperture_storage::{Millis, TenantId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A summary that took less than this is computed on every view.
pub const CHEAP: Duration = Duration::from_millis(50);
/// How long an expensive summary is shown before a view starts the next one.
pub const FRESH: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct Figures {
    map: Mutex<HashMap<TenantId, Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    summary: Arc<Summary>,
    /// When it was computed (for the page) and how long it took (to tell cheap from
    /// expensive).
    at: Millis,
    taken: Instant,
    cost: Duration,
    /// The tenant's change count when it was computed.
    changes: u64,
    refreshing: bool,
}

/// The summary to show, and Some(when it was computed) when it is a kept one rather
/// than computed for this view.
pub type Shown = (Arc<Summary>, Option<Millis>);

fn run(p: &P, t: &TenantId) -> ApiResult<(Summary, Duration)> {
    let start = Instant::now();
    let s = compute(&p.state.store, t, now_ms())?;
    Ok((s, start.elapsed()))
}

impl Figures {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The figures of a tenant the caller has already been allowed to read.
    pub async fn summary(p: &P, t: &TenantId) -> ApiResult<Shown> {
        let changes = p.state.store.change_count(t)?;
        let kept = p.figures.lock().get(t).cloned();
        if let Some(e) = kept.filter(|e| e.cost >= CHEAP) {
            let stale = e.changes != changes || e.taken.elapsed() >= FRESH;
            if stale && !e.refreshing {
                if let Some(entry) = p.figures.lock().get_mut(t) {
                    entry.refreshing = true;
                }
                let (p, t) = (p.clone(), t.clone());
                tokio::task::spawn_blocking(move || {
                    let result = run(&p, &t);
                    let mut map = p.figures.lock();
                    match result {
                        Ok((s, cost)) => {
                            map.insert(t, Entry::new(s, cost, changes));
                        }
                        // Keep the old figures; the next view tries again.
                        Err(_) => {
                            if let Some(e) = map.get_mut(&t) {
                                e.refreshing = false;
                            }
                        }
                    }
                });
            }
            return Ok((e.summary, Some(e.at)));
        }
        let (p2, t2) = (p.clone(), t.clone());
        let (s, cost) = tokio::task::spawn_blocking(move || run(&p2, &t2))
            .await
            .map_err(|e| ApiError::internal(format!("summary task: {e}")))??;
        let entry = Entry::new(s, cost, changes);
        let summary = entry.summary.clone();
        p.figures.lock().insert(t.clone(), entry);
        Ok((summary, None))
    }
}

impl Entry {
    fn new(s: Summary, cost: Duration, changes: u64) -> Entry {
        Entry {
            summary: Arc::new(s),
            at: now_ms(),
            taken: Instant::now(),
            cost,
            changes,
            refreshing: false,
        }
    }
}
