//! Generated operations reports: made on demand (and on schedule), kept, listed and
//! downloaded as HTML or PDF.

use super::auth::{Caller, ANALYSTS, READERS};
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiPath};
use super::reports::{self, Lang, Period, ReportMeta};
use super::state::SharedState;
use aperture_storage::reporting::ReportSchedule;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    pub period: Period,
    /// `en` (the default) or `zh-CN`.
    #[serde(default)]
    pub lang: Lang,
    /// Also mail it to the recipients of the tenant's report settings (`recipients`
    /// and `channel` of `PUT …/reports/schedule`), through the alert outbox.
    #[serde(default)]
    pub mail: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportList {
    pub items: Vec<ReportMeta>,
}

/// Makes a report now: the numbers, the HTML page and its PDF (analyst or admin). Takes
/// a few seconds: the PDF is printed by headless Chromium. When it cannot print,
/// the report is still kept, with `pdf_error` saying why. With `mail: true` it is also
/// mailed to the report settings' recipients (400 when there are none); `mail` in the
/// answer is its delivery in the alert outbox.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/reports", tag = "reports", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    request_body = ReportRequest,
    responses((status = 201, body = ReportMeta), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn create_report(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(req): ApiJson<ReportRequest>,
) -> ApiResult<(StatusCode, Json<ReportMeta>)> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let who = caller.name();
    let st = state.clone();
    let meta = tokio::task::spawn_blocking(move || {
        reports::make(&st, &t, req.period, req.lang, &who, req.mail)
    })
    .await
    .map_err(|e| ApiError::internal(format!("report task: {e}")))??;
    Ok((StatusCode::CREATED, Json(meta)))
}

/// The tenant's kept reports, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/reports", tag = "reports", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, body = ReportList), (status = 404, body = Problem)))]
pub async fn list_reports(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<ReportList>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let items = reports::list(&state.config.data_dir, &t);
    Ok(Json(ReportList { items }))
}

/// One kept report's metadata.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/reports/{report}", tag = "reports", security(("bearer" = [])),
    params(("tenant" = String, Path), ("report" = String, Path)),
    responses((status = 200, body = ReportMeta), (status = 404, body = Problem)))]
pub async fn get_report(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<ReportMeta>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(reports::meta(&state.config.data_dir, &t, &id)?))
}

/// The report as a page. It runs no script and loads nothing; the header says so too.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/reports/{report}/html", tag = "reports", security(("bearer" = [])),
    params(("tenant" = String, Path), ("report" = String, Path)),
    responses((status = 200, content_type = "text/html", body = String), (status = 404, body = Problem)))]
pub async fn report_html(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let bytes = reports::file(&state.config.data_dir, &t, &id, "html")?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
}

/// The report as PDF.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/reports/{report}/pdf", tag = "reports", security(("bearer" = [])),
    params(("tenant" = String, Path), ("report" = String, Path)),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>), (status = 404, body = Problem)))]
pub async fn report_pdf(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let bytes = reports::file(&state.config.data_dir, &t, &id, "pdf")?;
    let disposition = format!("attachment; filename=\"aperture-{tenant}-{id}.pdf\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// Which reports the tenant gets on schedule, and in which language.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/reports/schedule", tag = "reports", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, body = ReportSchedule), (status = 404, body = Problem)))]
pub async fn get_report_schedule(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<ReportSchedule>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(state.store.report_schedule(&t)?))
}

/// Sets the schedule (analyst or admin). A report that is on and has never been made
/// is made at the scheduler's next pass; then once per day, 7 days or 30 days. With
/// `recipients` and `channel` (an e-mail alert channel of the tenant), every scheduled
/// report is mailed to them; a malformed address or a channel that is unknown or not
/// e-mail is refused (400) and nothing changes.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/reports/schedule", tag = "reports", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    request_body = ReportSchedule,
    responses((status = 200, body = ReportSchedule), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn put_report_schedule(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(schedule): ApiJson<ReportSchedule>,
) -> ApiResult<Json<ReportSchedule>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    state.store.set_report_schedule(&t, &schedule)?;
    Ok(Json(state.store.report_schedule(&t)?))
}
