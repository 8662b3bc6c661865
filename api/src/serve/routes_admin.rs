//! Provider routes: health, metrics, tenants, tokens and the audit log.

use super::auth::{new_secret, token_for, Caller, READERS};
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::state::{now_ms, SharedState};
use aperture_storage::access::{AuditRecord, Token};
use aperture_storage::policy::Role;
use aperture_storage::{Page, Tenant, TenantId};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub scans_running: usize,
}

/// Liveness: the store answers.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, body = Health)))]
pub async fn health(State(state): State<SharedState>) -> ApiResult<Json<Health>> {
    state.store.tenants()?;
    let running = state.runs.lock().unwrap_or_else(|p| p.into_inner()).len();
    Ok(Json(Health {
        status: "ok".into(),
        scans_running: running,
    }))
}

/// Prometheus metrics: scans, probes, results, ingest, API latencies.
#[utoipa::path(get, path = "/metrics", tag = "service", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(
    State(state): State<SharedState>,
    caller: Option<Extension<Caller>>,
) -> ApiResult<impl IntoResponse> {
    if !state.config.metrics_public {
        caller
            .ok_or_else(|| ApiError::unauthorized("metrics need a token"))?
            .require_admin()?;
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// 1-63 of a-z, 0-9, '-', not starting with '-'.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub id: String,
    /// 1-200 characters, not blank.
    #[schema(pattern = r"\S", max_length = 200)]
    pub name: String,
}

/// Tenants this token may see (all, for an admin).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", security(("bearer" = [])),
    responses((status = 200, body = [Tenant]), (status = 401, body = Problem)))]
pub async fn list_tenants(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<Tenant>>> {
    let all = state.store.tenants()?;
    Ok(Json(
        all.into_iter()
            .filter(|t| caller.token.may_act_on(&t.id))
            .collect(),
    ))
}

/// Creates a tenant (admin).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", security(("bearer" = [])),
    request_body = NewTenant,
    responses((status = 201, body = Tenant), (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn create_tenant(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewTenant>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    caller.require_admin()?;
    let id = TenantId::new(&body.id)?;
    let t = state.store.create_tenant(&id, &body.name, now_ms())?;
    Ok((StatusCode::CREATED, Json(t)))
}

/// One tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants", security(("bearer" = [])),
    params(TenantPath),
    responses((status = 200, body = Tenant), (status = 404, body = Problem)))]
pub async fn get_tenant(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Tenant>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(state.store.tenant(&t)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// 1-100 characters, not blank.
    #[schema(pattern = r"\S", max_length = 100)]
    pub name: String,
    pub role: Role,
    /// Tenants the token may act on (not for admin tokens, which act on all): ids of
    /// existing tenants.
    #[serde(default)]
    #[schema(inline, value_type = Vec<String>, pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub tenants: Vec<String>,
}

/// A token as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub tenants: Vec<String>,
    pub prefix: String,
    pub created: i64,
    pub created_by: String,
    pub revoked: Option<i64>,
}

impl From<Token> for TokenView {
    fn from(t: Token) -> Self {
        TokenView {
            id: t.id,
            name: t.name,
            role: t.role,
            tenants: t.tenants.into_iter().map(String::from).collect(),
            prefix: t.prefix,
            created: t.created,
            created_by: t.created_by,
            revoked: t.revoked,
        }
    }
}

/// A new token's secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub secret: String,
    pub token: TokenView,
}

/// All tokens (admin).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = [TokenView]), (status = 403, body = Problem)))]
pub async fn list_tokens(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<TokenView>>> {
    caller.require_admin()?;
    Ok(Json(
        state
            .store
            .tokens()?
            .into_iter()
            .map(TokenView::from)
            .collect(),
    ))
}

/// Creates a token (admin); the secret is in this response only.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", security(("bearer" = [])),
    request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, description = "A tenant listed does not exist", body = Problem)))]
pub async fn create_token(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    caller.require_admin()?;
    if body.role == Role::Admin && !body.tenants.is_empty() {
        return Err(ApiError::bad_request(
            "admin tokens act on every tenant: leave 'tenants' out",
        ));
    }
    let tenants = body
        .tenants
        .iter()
        .map(|t| TenantId::new(t))
        .collect::<Result<Vec<_>, _>>()?;
    for t in &tenants {
        state
            .store
            .tenant(t)
            .map_err(|_| ApiError::not_found(format!("tenant {t} does not exist")))?;
    }
    let secret = new_secret().map_err(ApiError::internal)?;
    let token = token_for(&secret, &body.name, body.role, tenants, &caller.name())
        .map_err(ApiError::bad_request)?;
    state.store.put_token(&token)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            secret,
            token: token.into(),
        }),
    ))
}

/// Revokes a token (admin). Requests with it fail from now on.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = TokenView), (status = 404, body = Problem)))]
pub async fn revoke_token(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TokenView>> {
    caller.require_admin()?;
    Ok(Json(state.store.revoke_token(&id, now_ms())?.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CursorQuery {
    /// The `next` of the previous page.
    #[param(pattern = "^[0-9]{1,19}$")]
    pub cursor: Option<String>,
    /// Items per page (the service caps it at its page_cap).
    #[param(minimum = 1, maximum = 100000)]
    pub limit: Option<u32>,
}

/// A tenant's id in a path: its description only (handlers take the path as a string
/// and answer 404 for an id that is not a tenant's).
#[derive(Debug, IntoParams)]
#[allow(dead_code)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// 1-63 of a-z, 0-9 and '-', not starting with '-'.
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub tenant: String,
}

/// The audit log, oldest first (admin).
#[utoipa::path(get, path = "/v1/audit", tag = "audit", security(("bearer" = [])),
    params(CursorQuery),
    responses((status = 200, body = Page<AuditRecord>), (status = 403, body = Problem)))]
pub async fn audit_log(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<CursorQuery>,
) -> ApiResult<Json<Page<AuditRecord>>> {
    caller.require_admin()?;
    let cursor =
        match q.cursor {
            Some(c) => Some(c.parse::<u64>().map_err(|_| {
                ApiError::bad_request("cursor: give the 'next' of the previous page")
            })?),
            None => None,
        };
    let limit = super::routes_assets::page_size(&state, q.limit)?;
    Ok(Json(state.store.audit_log(cursor, limit)?))
}
