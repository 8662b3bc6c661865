//! Remote workers (with `bus_url`): who they are, and a scan's failed shards retried.

use super::auth::{Caller, ANALYSTS};
use super::coordinator::{dispatch_retry, WorkerView};
use super::error::{ApiError, ApiResult, Problem};
use super::extract::ApiPath;
use super::routes_admin::TenantPath;
use super::routes_scans::{view, ScanView};
use super::state::SharedState;
use axum::extract::State;
use axum::{Extension, Json};

fn no_bus() -> ApiError {
    ApiError::conflict(
        "this service runs its scans in-process (no bus_url is set): it has no remote workers",
    )
}

/// The remote workers this coordinator has heard from (admin): version, vantage, last
/// heartbeat, shards stored, probes and rate, scans on which their vantage is flagged.
#[utoipa::path(get, path = "/v1/workers", tag = "workers", security(("bearer" = [])),
    responses((status = 200, body = [WorkerView]), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn list_workers(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<WorkerView>>> {
    caller.require_admin()?;
    let bus = state.bus.get().ok_or_else(no_bus)?;
    Ok(Json(bus.workers()))
}

/// Puts a scan's failed shards (those workers gave up on) back in the queue (admin,
/// analyst).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/scans/{scan}/retry", tag = "scans", security(("bearer" = [])),
    params(TenantPath, ("scan" = String, Path)),
    responses((status = 200, body = ScanView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn retry_scan(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, scan)): ApiPath<(String, String)>,
) -> ApiResult<Json<ScanView>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let job = state.store.job(&t, &scan)?;
    let bus = state.bus.get().ok_or_else(no_bus)?;
    if !job.state.is_live() {
        return Err(ApiError::conflict(format!(
            "scan {scan} is {:?}: only a running scan's shards can be retried",
            job.state
        )));
    }
    if job.failed_shards.is_empty() {
        return Err(ApiError::conflict(format!(
            "scan {scan} has no failed shards"
        )));
    }
    dispatch_retry(&state, bus, &t, &scan)
        .await
        .map_err(ApiError::conflict)?;
    let job = state.store.job(&t, &scan)?;
    Ok(Json(view(&state, &t, job)?))
}
