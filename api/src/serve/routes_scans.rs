//! Scope, scans and schedules of a tenant.

use super::auth::{Caller, ANALYSTS, READERS};
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiPath};
use super::jobs::submit;
use super::routes_admin::TenantPath;
use super::state::{now_ms, SharedState};
use aperture_mapper::engine::Progress;
use aperture_storage::access::{JobState, ScanJob, ScanRequest, Schedule, Scope};
use aperture_storage::TenantId;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use utoipa::ToSchema;

/// The tenant's authorised scope.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/scope", tag = "scope", security(("bearer" = [])),
    params(TenantPath),
    responses((status = 200, body = Scope), (status = 404, body = Problem)))]
pub async fn get_scope(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Scope>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(state.store.scope(&t)?))
}

/// Replaces the tenant's scope (admin, analyst).
#[utoipa::path(put, path = "/v1/tenants/{tenant}/scope", tag = "scope", security(("bearer" = [])),
    params(TenantPath), request_body = Scope,
    responses((status = 200, body = Scope), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn put_scope(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(scope): ApiJson<Scope>,
) -> ApiResult<Json<Scope>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    for d in &scope.domains {
        aperture_fingerprints::dns::DomainName::parse(d)
            .map_err(|e| ApiError::bad_request(format!("scope domain {d:?}: {e}")))?;
    }
    state.store.set_scope(&t, &scope)?;
    Ok(Json(scope))
}

/// Where a scan is.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanProgress {
    pub probes_sent: u64,
    pub probes_total: u64,
    pub shards_done: u32,
    pub shards: u32,
    /// Observations stored so far.
    pub found: u64,
    /// Probes per second over this run.
    pub rate: f64,
    /// Seconds left at that rate.
    pub eta_secs: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScanView {
    #[serde(flatten)]
    pub job: ScanJob,
    pub progress: ScanProgress,
    /// What the scan covers (addresses, ports, probes, domains): what its completion may
    /// mark gone.
    pub coverage: aperture_storage::Coverage,
    /// Shards stored: each one's permutation range, observations and change events.
    pub shards: Vec<aperture_storage::Receipt>,
    /// Hosts with services on record that never answered this scan (from some vantage):
    /// their services are `unknown`, not gone — silence is not closure.
    pub silent_hosts: u64,
    /// With remote workers: each shard's state (pending, running on W, done by W,
    /// failed), what each vantage saw, and the vantages flagged as blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<super::coordinator::ScanWorkers>,
}

pub(super) fn view(state: &SharedState, t: &TenantId, job: ScanJob) -> ApiResult<ScanView> {
    let scan = state.store.scan(t, &job.id)?;
    let shards = state.store.shards(t, &job.id)?;
    // A paused scan's run may linger a moment after it is recorded waiting: what it
    // has is what it stored.
    let run = state
        .run(t, &job.id)
        .filter(|_| job.state != JobState::Waiting);
    let (sent, found, rate) = match &run {
        Some(h) => {
            let sent_now = Progress::get(&h.progress.sent);
            let elapsed = h.started.elapsed().as_secs_f64().max(1e-3);
            (
                h.probes_before.load(Ordering::Relaxed) + sent_now,
                h.found.load(Ordering::Relaxed),
                sent_now as f64 / elapsed,
            )
        }
        None => {
            let done = if job.state == JobState::Completed {
                job.probes_total
            } else {
                // A paused (waiting) scan: the probes of the shards it stored.
                shards
                    .iter()
                    .filter_map(|r| r.range)
                    .map(|(a, b)| b.saturating_sub(a))
                    .sum()
            };
            (done, scan.observations, 0.0)
        }
    };
    let remaining = job.probes_total.saturating_sub(sent);
    let workers = state.bus.get().and_then(|b| b.scan_workers(t, &job.id));
    Ok(ScanView {
        coverage: scan.coverage.clone(),
        silent_hosts: scan.silent_hosts,
        shards,
        workers,
        progress: ScanProgress {
            probes_sent: sent.min(job.probes_total),
            probes_total: job.probes_total,
            shards_done: scan.shards_done.len() as u32,
            shards: scan.shards,
            found: found.max(scan.observations),
            rate,
            eta_secs: (rate > 0.0 && job.state.is_live()).then(|| remaining as f64 / rate),
        },
        job,
    })
}

/// The tenant's scans, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/scans", tag = "scans", security(("bearer" = [])),
    params(TenantPath),
    responses((status = 200, body = [ScanView]), (status = 404, body = Problem)))]
pub async fn list_scans(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Vec<ScanView>>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let mut jobs = state.store.jobs(&t)?;
    jobs.sort_by_key(|j| std::cmp::Reverse(j.requested));
    Ok(Json(
        jobs.into_iter()
            .map(|j| view(&state, &t, j))
            .collect::<ApiResult<_>>()?,
    ))
}

/// Starts a targeted scan (admin, analyst). Every target must be in the tenant's scope;
/// otherwise 403 lists each refused target and why, and nothing is queued.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/scans", tag = "scans", security(("bearer" = [])),
    params(TenantPath), request_body = ScanRequest,
    responses((status = 201, body = ScanView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn create_scan(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(req): ApiJson<ScanRequest>,
) -> ApiResult<(StatusCode, Json<ScanView>)> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let job = submit(&state, &t, req, &caller.name(), None).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &t, job)?)))
}

/// One scan with its progress.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/scans/{scan}", tag = "scans", security(("bearer" = [])),
    params(TenantPath, ("scan" = String, Path)),
    responses((status = 200, body = ScanView), (status = 404, body = Problem)))]
pub async fn get_scan(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, scan)): ApiPath<(String, String)>,
) -> ApiResult<Json<ScanView>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let job = state.store.job(&t, &scan)?;
    Ok(Json(view(&state, &t, job)?))
}

/// Cancels a queued or running scan (admin, analyst). What it stored stays; it marks
/// nothing gone.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/scans/{scan}/cancel", tag = "scans", security(("bearer" = [])),
    params(TenantPath, ("scan" = String, Path)),
    responses((status = 200, body = ScanView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel_scan(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, scan)): ApiPath<(String, String)>,
) -> ApiResult<Json<ScanView>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let mut job = state.store.job(&t, &scan)?;
    if !job.state.is_live() {
        return Err(ApiError::conflict(format!(
            "scan {scan} is {:?} already",
            job.state
        )));
    }
    if let Some(h) = state.run(&t, &scan) {
        h.stop.store(true, Ordering::SeqCst);
    }
    state.store.cancel_scan(&t, &scan)?;
    job.state = JobState::Cancelled;
    job.finished = Some(now_ms());
    state.store.put_job(&job)?;
    Ok(Json(view(&state, &t, job)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// Not blank.
    #[schema(pattern = r"\S")]
    pub name: String,
    pub request: ScanRequest,
    /// Seconds between runs: at least 60, at most a year. Give this, `window`, or both.
    #[serde(default)]
    #[schema(minimum = 60, maximum = 31_536_000)]
    pub interval_secs: Option<u64>,
    /// Calendar runs: a scan starts at each opening of this window (cron start, minutes
    /// open, IANA zone — e.g. `0 1 * * *`, 240, `Asia/Shanghai` for 01:00-05:00 there)
    /// and sends only while it is open, pausing at its end and resuming at the next.
    #[serde(default)]
    pub window: Option<aperture_storage::windows::Window>,
    /// First run: Unix milliseconds or RFC 3339; default: now.
    #[serde(default, deserialize_with = "aperture_storage::time::opt_millis")]
    #[schema(value_type = Option<aperture_storage::time::TimeInput>)]
    pub first_run: Option<i64>,
}

/// The tenant's recurring scans.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/schedules", tag = "schedules", security(("bearer" = [])),
    params(TenantPath),
    responses((status = 200, body = [Schedule]), (status = 404, body = Problem)))]
pub async fn list_schedules(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Vec<Schedule>>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(state.store.schedules(&t)?))
}

/// Adds a recurring scan (admin, analyst). Its request is checked against the scope now
/// and again at every run.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/schedules", tag = "schedules", security(("bearer" = [])),
    params(TenantPath), request_body = NewSchedule,
    responses((status = 201, body = Schedule), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_schedule(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<NewSchedule>,
) -> ApiResult<(StatusCode, Json<Schedule>)> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let scope = state.store.scope(&t)?;
    super::jobs::check_runnable(&state, &scope, &body.request).await?;
    if body.interval_secs.is_none() && body.window.is_none() {
        return Err(ApiError::bad_request(
            "a schedule needs interval_secs (seconds between runs), a window (calendar              times: cron, duration_mins, tz) or both",
        ));
    }
    if body
        .interval_secs
        .is_some_and(|i| !(60..=31_536_000).contains(&i))
    {
        return Err(ApiError::bad_request(
            "interval_secs: schedules run at most once a minute and at least once a year \
             (60 to 31536000)",
        ));
    }
    if body.name.trim().is_empty() {
        return Err(ApiError::bad_request("a schedule needs a name"));
    }
    let now = now_ms();
    let first_window = match &body.window {
        Some(w) => {
            let span = super::windows::check_schedule_window(&state, &t, w)?;
            // Open now: the first run starts now (and sends while it stays open).
            Some(if span.open_at(now) {
                now
            } else {
                super::windows::next_window_start(w, now).unwrap_or(now)
            })
        }
        None => None,
    };
    let n = state.store.next_number(&t, "schedule")?;
    let s = Schedule {
        id: format!("sch-{n}"),
        name: body.name,
        request: body.request,
        interval_secs: body.interval_secs,
        window: body.window,
        next_run: body.first_run.or(first_window).unwrap_or(now),
        created: now,
        created_by: caller.name(),
        last_scan: None,
    };
    state.store.put_schedule(&t, &s)?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// One schedule.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/schedules/{schedule}", tag = "schedules", security(("bearer" = [])),
    params(TenantPath, ("schedule" = String, Path)),
    responses((status = 200, body = Schedule), (status = 404, body = Problem)))]
pub async fn get_schedule(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Schedule>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(state.store.schedule(&t, &id)?))
}

/// Removes a schedule (admin, analyst); scans it started are kept.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/schedules/{schedule}", tag = "schedules", security(("bearer" = [])),
    params(TenantPath, ("schedule" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_schedule(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    state.store.delete_schedule(&t, &id)?;
    Ok(StatusCode::NO_CONTENT)
}
