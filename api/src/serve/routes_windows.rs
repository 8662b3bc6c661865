//! A tenant's scan windows, blackouts and rate cap, and the analyst's override that lets
//! a verification scan run outside them.

use super::auth::{Caller, ANALYSTS, READERS};
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiPath};
use super::routes_admin::TenantPath;
use super::routes_scans::{view, ScanView};
use super::state::{now_ms, SharedState};
use super::windows::{self, Gate};
use aperture_storage::access::{AuditRecord, JobState};
use aperture_storage::windows::{TenantWindows, Window};
use aperture_storage::{Millis, TenantId};
use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The tenant's settings, and where they stand now.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowsView {
    /// Scans send only inside one of these; none: at any time.
    pub windows: Vec<Window>,
    /// Never inside one of these, whatever the windows say.
    pub blackouts: Vec<Window>,
    /// Packets per second of all the tenant's scans together; none: no cap.
    pub max_rate: Option<u64>,
    /// Whether the tenant's scans may send now (its windows and blackouts alone; a
    /// scheduled scan also waits for its schedule's window).
    pub open: bool,
    /// When that changes (Unix ms); none within the look-ahead.
    pub until: Option<Millis>,
}

fn windows_view(settings: TenantWindows, rules: &windows::Rules) -> WindowsView {
    let (open, until) = match rules.gate(now_ms()) {
        Gate::Open(u) => (true, u),
        Gate::Closed(u) => (false, u),
    };
    WindowsView {
        windows: settings.windows,
        blackouts: settings.blackouts,
        max_rate: settings.max_rate,
        open,
        until,
    }
}

/// The tenant's scan windows, blackouts and rate cap.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/windows", tag = "schedules", security(("bearer" = [])),
    params(TenantPath),
    responses((status = 200, body = WindowsView), (status = 404, body = Problem)))]
pub async fn get_windows(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<WindowsView>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let settings = state.store.tenant_windows(&t)?;
    let rules = windows::check_tenant(&settings, u32::MAX).unwrap_or_default();
    Ok(Json(windows_view(settings, &rules)))
}

/// Replaces the tenant's scan windows, blackouts and rate cap (admin, analyst). Scans
/// send only inside a window (none: at any time) and outside every blackout; the cap
/// binds all the tenant's scans together. Waiting scans are re-timed, running ones
/// pause within a second when a blackout now covers them.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/windows", tag = "schedules", security(("bearer" = [])),
    params(TenantPath), request_body = TenantWindows,
    responses((status = 200, body = WindowsView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn put_windows(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<TenantWindows>,
) -> ApiResult<Json<WindowsView>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let rules = windows::check_tenant(&body, state.config.max_rate)?;
    state.store.set_tenant_windows(&t, &body)?;
    windows::rebalance(&state, &t);
    retime_waiting(&state, &t)?;
    Ok(Json(windows_view(body, &rules)))
}

/// Waiting scans of the tenant, timed again by the settings now stored.
fn retime_waiting(state: &SharedState, t: &TenantId) -> ApiResult<()> {
    for job in state.store.jobs(t)? {
        if job.state != JobState::Waiting {
            continue;
        }
        let gate = windows::job_rules(state, &job).gate(now_ms());
        state.store.update_live_job(t, &job.id, |j| match gate {
            Gate::Open(_) => {
                j.state = JobState::Queued;
                j.until = None;
            }
            Gate::Closed(u) => j.until = u,
        })?;
    }
    state.wake.notify_waiters();
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowOverride {
    /// Why this verification may not wait for the window (kept in the audit log).
    #[schema(pattern = r"\S", max_length = 500)]
    pub reason: String,
}

/// Lets a verification scan run outside the tenant's windows and blackouts (admin,
/// analyst): it starts now if it was waiting. The override and its reason are written to
/// the audit log. Only verification scans may be overridden; the rate cap still binds.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/scans/{scan}/override-windows", tag = "scans", security(("bearer" = [])),
    params(TenantPath, ("scan" = String, Path)), request_body = WindowOverride,
    responses((status = 200, body = ScanView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn override_windows(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, scan)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<WindowOverride>,
) -> ApiResult<Json<ScanView>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::bad_request(
            "reason: say in 1 to 500 characters why the verification may not wait for the \
             window",
        ));
    }
    let job = state.store.job(&t, &scan)?;
    if !job
        .purpose
        .as_deref()
        .is_some_and(|p| p.starts_with("verify "))
    {
        return Err(ApiError::conflict(format!(
            "scan {scan} is not a verification scan: only verification scans may run \
             outside the tenant's windows"
        )));
    }
    let who = format!("{}: {reason}", caller.name());
    let updated = state.store.update_live_job(&t, &scan, |j| {
        j.windows_overridden_by = Some(who.clone());
        if j.state == JobState::Waiting {
            j.state = JobState::Queued;
            j.until = None;
        }
    })?;
    let Some(job) = updated else {
        return Err(ApiError::conflict(format!(
            "scan {scan} is {:?} already",
            job.state
        )));
    };
    // Besides the request's own audit line: what was overridden, by whom, and why.
    state.store.audit(AuditRecord {
        seq: 0,
        at: now_ms(),
        actor: caller.name(),
        role: Some(caller.token.role),
        tenant: Some(t.clone()),
        action: format!(
            "override scan windows for {scan} ({})",
            job.purpose.as_deref().unwrap_or("")
        ),
        status: 200,
        outcome: format!("reason: {reason}"),
        source: "api".into(),
    })?;
    state.wake.notify_waiters();
    if let Some(bus) = state.bus.get() {
        bus.wake.notify_one();
    }
    Ok(Json(view(&state, &t, job)?))
}
