//! Provider routes of the vulnerability data (admin tokens only): what is imported, and
//! an import of one feed file, for when the service runs (`aperture admin vulndb import`
//! needs the data directory to itself).

use super::auth::Caller;
use super::error::{ApiError, ApiResult, Problem};
use super::extract::ApiQuery;
use super::state::{now_ms, SharedState};
use aperture_storage::vulns::{VulnDbStatus, VulnImport};
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::IntoParams;

/// The largest feed file a request may carry. NVD's yearly 2.0 files are tens to a few
/// hundred MiB uncompressed; the whole body is held while it is validated.
pub const VULNDB_BODY_LIMIT: usize = 1 << 30;

/// What vulnerability data the store holds (admin).
#[utoipa::path(get, path = "/v1/vulndb", tag = "vulndb", security(("bearer" = [])),
    responses((status = 200, body = VulnDbStatus), (status = 403, body = Problem)))]
pub async fn vulndb_status(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<VulnDbStatus>> {
    caller.require_admin()?;
    Ok(Json(state.store.vulndb_status()?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// The file's name, for the report and for error messages.
    pub name: Option<String>,
}

/// Imports one feed file, sent as the body: an NVD CVE JSON 2.0 feed
/// (`nvdcve-2.0-*.json`) or CISA's KEV catalogue (`known_exploited_vulnerabilities.json`),
/// told apart by content (admin). Validated whole: one bad record and nothing is stored
/// (400 naming the record). A CVE replaces the stored one only if its `lastModified` is
/// newer, so importing the same file again changes nothing. Services whose CPE names a
/// product with changed CVEs are re-evaluated in the background.
#[utoipa::path(post, path = "/v1/vulndb/imports", tag = "vulndb", security(("bearer" = [])),
    params(ImportParams),
    request_body(content = String, content_type = "application/json",
        description = "an NVD CVE JSON 2.0 feed file or the CISA KEV catalogue"),
    responses((status = 200, body = VulnImport), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 413, body = Problem)))]
pub async fn import_vulndb(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<ImportParams>,
    body: Body,
) -> ApiResult<Json<VulnImport>> {
    caller.require_admin()?;
    let bytes = axum::body::to_bytes(body, VULNDB_BODY_LIMIT)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the feed could not be read whole ({e}): at most {VULNDB_BODY_LIMIT} bytes a \
                     request; split the data, or import with `aperture admin vulndb import` while \
                     the service is stopped"
                ),
            )
        })?;
    let name = params
        .name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "the request body".to_owned());
    let store = state.store.clone();
    let report = tokio::task::spawn_blocking(move || {
        store.import_vulndb([(name, Ok(bytes.to_vec()))], now_ms())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    if report.tenants_queued > 0 {
        for t in state.store.tenants()? {
            let _ = state.sweeps.send(t.id);
        }
    }
    Ok(Json(report))
}
