//! The numbers a remediation review starts from: the summary report of the API and of
//! every generated report.

use crate::serve::error::ApiResult;
use aperture_storage::findings::FindingFilter;
use aperture_storage::model::{AssetStatus, DayCount, Millis};
use aperture_storage::policy::{Finding, FindingState};
use aperture_storage::{AssetFilter, AssetKind, Store, TenantId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The numbers a remediation review starts from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    pub exposed_hosts: u64,
    pub exposed_services: u64,
    /// Present services per risk class.
    pub services_by_risk: BTreeMap<String, u64>,
    /// Active findings per severity.
    pub open_findings_by_severity: BTreeMap<String, u64>,
    /// Active findings by age: 0-7d, 7-30d, 30-90d, 90d+.
    pub open_findings_by_age: BTreeMap<String, u64>,
    pub overdue: u64,
    pub closed_verified: u64,
    /// Findings claimed fixed whose last verification could not tell: the host did not
    /// answer the scan (unreachable from that vantage), so the claim stays unverified.
    pub verifications_inconclusive: u64,
    /// Mean hours from opening to verified closure.
    pub mean_time_to_remediate_hours: Option<f64>,
    /// Exposed hosts and services per day.
    pub shrinkage: Vec<DayCount>,
}

/// Walks the tenant's present services and its findings once.
pub fn compute(store: &Store, t: &TenantId, now: Millis) -> ApiResult<Summary> {
    compute_visiting(store, t, now, |_| {})
}

/// [`compute`], handing each finding to `visit` on the way: a report reads what else it
/// needs in the same walk (at a million findings each walk is tens of seconds).
pub fn compute_visiting(
    store: &Store,
    t: &TenantId,
    now: Millis,
    mut visit: impl FnMut(Finding),
) -> ApiResult<Summary> {
    let mut s = Summary::default();
    (s.exposed_hosts, s.exposed_services) = store.exposed_now(t)?;
    let services = AssetFilter {
        kind: Some(AssetKind::Service),
        status: Some(AssetStatus::Present),
        ..Default::default()
    };
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list_assets(t, &services, cursor.as_deref(), 1000)?;
        for a in &page.items {
            let class = a.fact("risk").unwrap_or("unknown").to_owned();
            *s.services_by_risk.entry(class).or_default() += 1;
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let mut cursor: Option<String> = None;
    let (mut total_ms, mut closed) = (0i64, 0u64);
    loop {
        let page = store.findings(t, &FindingFilter::default(), cursor.as_deref(), 1000)?;
        for f in page.items {
            if f.state.is_active() {
                let sev = serde_json::to_value(f.severity)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                *s.open_findings_by_severity.entry(sev).or_default() += 1;
                let days = (now - f.opened) / 86_400_000;
                let bucket = match days {
                    0..7 => "0-7d",
                    7..30 => "7-30d",
                    30..90 => "30-90d",
                    _ => "90d+",
                };
                *s.open_findings_by_age.entry(bucket.into()).or_default() += 1;
                s.overdue += u64::from(f.overdue(now));
            }
            if f.state == FindingState::Fixed && f.verification_inconclusive.is_some() {
                s.verifications_inconclusive += 1;
            }
            if f.state == FindingState::ClosedVerified {
                if let Some(closed_at) = f
                    .transitions
                    .iter()
                    .rev()
                    .find(|x| x.to == FindingState::ClosedVerified)
                {
                    total_ms += closed_at.at - f.opened;
                    closed += 1;
                }
            }
            visit(f);
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    s.closed_verified = closed;
    s.mean_time_to_remediate_hours =
        (closed > 0).then(|| total_ms as f64 / closed as f64 / 3_600_000.0);
    s.shrinkage = store.daily_counts(t)?;
    Ok(s)
}
