//! A "fixed" claim whose verification heard nothing from its host (a firewall may drop
//! the worker that ran it) is verified again from another vantage: the next
//! verification may not run on any worker that already heard nothing, and is asked for
//! only while some other worker is live. When every live worker was tried, the claim
//! stays unverified, with its reason, until a vantage comes that was not.

use super::{audit, Coordinator};
use crate::serve::state::{now_ms, SharedState};
use aperture_storage::findings::FindingFilter;
use aperture_storage::policy::FindingState;
use aperture_storage::TenantId;
use std::collections::BTreeSet;

/// Findings of `tenant` claimed fixed whose last verification was inconclusive.
fn inconclusive(state: &SharedState, tenant: &TenantId) -> Vec<String> {
    let filter = FindingFilter {
        state: Some(FindingState::Fixed),
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let Ok(page) = state
            .store
            .findings(tenant, &filter, cursor.as_deref(), 500)
        else {
            return out;
        };
        out.extend(
            page.items
                .into_iter()
                .filter(|f| f.verification_inconclusive.is_some())
                .map(|f| f.id),
        );
        match page.next {
            Some(n) => cursor = Some(n),
            None => return out,
        }
    }
}

/// One pass of the scheduler: asks again, from another live vantage, for the
/// verifications that heard nothing.
pub async fn verify_elsewhere(state: &SharedState, coord: &Coordinator, tenant: &TenantId) {
    let live: BTreeSet<String> = coord
        .workers()
        .into_iter()
        .filter(|w| w.live)
        .map(|w| w.name)
        .collect();
    if live.is_empty() {
        return;
    }
    for id in inconclusive(state, tenant) {
        let Ok(Some(last)) = state.store.last_verification(tenant, &id) else {
            continue;
        };
        // Still to run, or running: its answer comes first.
        let Some(scan) = last.scan else { continue };
        if state
            .store
            .job(tenant, &scan)
            .is_ok_and(|j| j.state.is_live())
        {
            continue;
        }
        let mut tried: BTreeSet<String> = last.avoid.into_iter().collect();
        for r in state.store.shards(tenant, &scan).unwrap_or_default() {
            if let Some(v) = r.vantage {
                tried.insert(v.worker);
            }
        }
        if live.iter().all(|w| tried.contains(w)) {
            continue;
        }
        let avoid: Vec<String> = tried.into_iter().collect();
        if let Ok(Some(v)) = state
            .store
            .verify_elsewhere(tenant, &id, avoid.clone(), now_ms())
        {
            audit(
                state,
                Some(tenant),
                "verification from another vantage".into(),
                format!(
                    "finding {id}: {} heard nothing from the host; verification {} runs on \
                     another worker",
                    avoid.join(", "),
                    v.id
                ),
                &avoid.join(","),
            );
        }
    }
}
