//! The provider's screen (admin tokens only, as in the API): tenants, tokens (a new
//! secret shown once), the audit log and the workers.

use super::layout::{enc, error, page, respond, Tab};
use super::{role_label, Ctx, P};
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::extract::{ApiJson, ApiPath, ApiQuery};
use crate::serve::routes_admin::{self as api, CursorQuery, NewTenant, NewToken};
use crate::serve::routes_workers;
use aperture_storage::policy::Role;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct AdminQuery {
    cursor: Option<String>,
}

pub async fn admin(State(p): State<P>, ctx: Ctx, Query(q): Query<AdminQuery>) -> Response {
    render(&p, &ctx, q.cursor, None, None, StatusCode::OK).await
}

async fn render(
    p: &P,
    ctx: &Ctx,
    cursor: Option<String>,
    secret: Option<(String, String)>,
    problem: Option<ApiError>,
    status: StatusCode,
) -> Response {
    let l = ctx.lang;
    if let Err(e) = ctx.caller.require_admin() {
        return error(ctx, None, e.status, &e.detail);
    }
    let st = || State(p.state.clone());
    let who = || Extension(ctx.caller.clone());
    let tenants = match api::list_tenants(st(), who()).await {
        Ok(axum::Json(t)) => t,
        Err(e) => return error(ctx, None, e.status, &e.detail),
    };
    let tokens = match api::list_tokens(st(), who()).await {
        Ok(axum::Json(t)) => t,
        Err(e) => return error(ctx, None, e.status, &e.detail),
    };
    let audit = match api::audit_log(
        st(),
        who(),
        ApiQuery(CursorQuery {
            cursor: cursor.clone(),
            limit: Some(100),
        }),
    )
    .await
    {
        Ok(axum::Json(a)) => a,
        Err(e) => return error(ctx, None, e.status, &e.detail),
    };
    // Without remote workers this answers with the API's own explanation.
    let workers = routes_workers::list_workers(st(), who()).await.map(|j| j.0);
    let body = html! {
        h1 { (l.t("admin")) }
        @if let Some(e) = &problem { p.problem role="alert" data-status=(e.status.as_u16()) { (e.detail) } }
        @if let Some((name, s)) = &secret {
            section.card.notice #new-token {
                p { (l.t("secret_once")) " (" (name) ")" }
                code #new-secret { (s) }
            }
        }
        section.grid {
            div.card {
                h2 { (l.t("tenants")) }
                ul #tenant-list { @for t in &tenants { li { a href=(format!("/t/{}", enc(t.id.as_str()))) { (t.id) } " — " (t.name) } } }
                h2 { (l.t("create_tenant")) }
                form.stack method="post" action="/admin/tenants" {
                    input type="hidden" name="_csrf" value=(ctx.csrf);
                    label { (l.t("tenant_id")) input #tenant-id type="text" name="id" required maxlength="63"; }
                    label { (l.t("name")) input #tenant-name type="text" name="name" required maxlength="200"; }
                    button #create-tenant type="submit" { (l.t("create")) }
                }
            }
            div.card {
                h2 { (l.t("create_token")) }
                form.stack method="post" action="/admin/tokens" {
                    input type="hidden" name="_csrf" value=(ctx.csrf);
                    label { (l.t("name")) input #token-name type="text" name="name" required maxlength="100"; }
                    label { (l.t("role")) select #token-role name="role" {
                        @for r in [Role::Viewer, Role::Remediator, Role::Analyst, Role::Admin] {
                            option value=(crate::serve::auth::role_name(r)) { (role_label(l, r)) }
                        }
                    } }
                    label { (l.t("tenants")) input #token-tenants type="text" name="tenants" placeholder="acme, beta"; }
                    button #create-token type="submit" { (l.t("create")) }
                }
            }
        }
        section.card {
            h2 { (l.t("tokens")) }
            table #tokens.list {
                thead { tr { th { "id" } th { (l.t("name")) } th { (l.t("role")) } th { (l.t("tenants")) } th { (l.t("prefix")) } th { (l.t("created")) } th {} } }
                tbody { @for t in &tokens {
                    tr {
                        td { code { (t.id) } } td { (t.name) } td { (role_label(l, t.role)) }
                        td { (t.tenants.join(", ")) } td { code { (t.prefix) "…" } }
                        td.nowrap { (l.datetime(t.created)) }
                        td { @if let Some(r) = t.revoked { (l.t("revoked")) " " (l.datetime(r)) } @else {
                            form.inline method="post" action=(format!("/admin/tokens/{}/revoke", enc(&t.id))) {
                                input type="hidden" name="_csrf" value=(ctx.csrf);
                                button type="submit" { (l.t("revoke")) }
                            }
                        } }
                    }
                } }
            }
        }
        section.card {
            h2 { (l.t("workers")) }
            @match &workers {
                Ok(ws) => {
                    table.list { tbody { @for w in ws { tr { td { (w.name) } td { (w.source.as_deref().unwrap_or("—")) } td { (if w.live { "live" } else { "—" }) } td { (w.running.as_deref().unwrap_or("")) } td { (l.number(w.shards_done)) } } } } }
                }
                Err(e) => { p.muted { (e.detail) } }
            }
        }
        section.card {
            h2 { (l.t("audit")) }
            table #audit.list {
                thead { tr { th { (l.t("when")) } th { (l.t("actor")) } th { (l.t("tenant")) } th { (l.t("action")) } th { (l.t("status")) } th { (l.t("outcome")) } th { (l.t("source")) } } }
                tbody { @for a in &audit.items {
                    tr {
                        td.nowrap { (l.datetime(a.at)) } td { (a.actor) }
                        td { (a.tenant.as_ref().map(|t| t.as_str()).unwrap_or("")) }
                        td.text { (a.action) } td { (a.status) } td { (a.outcome) } td { (a.source) }
                    }
                } }
            }
            nav.pager { @if let Some(n) = &audit.next { a href=(format!("/admin?cursor={}", enc(n))) { (l.t("next_page")) " →" } } }
        }
    };
    respond(status, page(ctx, None, Tab::Admin, l.t("admin"), body))
}

/// The common end of an admin action: audit, then back to the page or its error.
async fn finish(
    p: &P,
    ctx: &Ctx,
    action: String,
    result: ApiResult<Option<(String, String)>>,
) -> Response {
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status,
    };
    if let Some(r) = ctx.audit(&p.state, None, action, status).await {
        return r;
    }
    match result {
        // The secret is rendered into this one response, never into a URL or the store.
        Ok(Some(secret)) => render(p, ctx, None, Some(secret), None, StatusCode::CREATED).await,
        Ok(None) => Redirect::to("/admin").into_response(),
        Err(e) => {
            let st = e.status;
            render(p, ctx, None, None, Some(e), st).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct TenantForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    id: String,
    name: String,
}

pub async fn create_tenant(
    State(p): State<P>,
    ctx: Ctx,
    headers: HeaderMap,
    form: Result<Form<TenantForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        let e = Err(ApiError::bad_request("give an id and a name"));
        return finish(&p, &ctx, "POST /admin/tenants".into(), e).await;
    };
    if let Some(r) = ctx.check_form(&headers, &f.csrf) {
        return r;
    }
    let result = api::create_tenant(
        State(p.state.clone()),
        Extension(ctx.caller.clone()),
        ApiJson(NewTenant {
            id: f.id.trim().to_owned(),
            name: f.name.trim().to_owned(),
        }),
    )
    .await
    .map(|_| None);
    finish(&p, &ctx, "POST /admin/tenants".into(), result).await
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    role: String,
    tenants: Option<String>,
}

pub async fn create_token(
    State(p): State<P>,
    ctx: Ctx,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        let e = Err(ApiError::bad_request("give a name and a role"));
        return finish(&p, &ctx, "POST /admin/tokens".into(), e).await;
    };
    if let Some(r) = ctx.check_form(&headers, &f.csrf) {
        return r;
    }
    let role =
        serde_json::from_value::<Role>(serde_json::Value::String(f.role.clone())).map_err(|_| {
            ApiError::bad_request(format!(
                "role={:?}: use admin, analyst, remediator or viewer",
                f.role
            ))
        });
    let result = match role {
        Ok(role) => api::create_token(
            State(p.state.clone()),
            Extension(ctx.caller.clone()),
            ApiJson(NewToken {
                name: f.name.clone(),
                role,
                tenants: f
                    .tenants
                    .as_deref()
                    .unwrap_or("")
                    .split([',', ' '])
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            }),
        )
        .await
        .map(|(_, axum::Json(c))| Some((c.token.name, c.secret))),
        Err(e) => Err(e),
    };
    finish(&p, &ctx, "POST /admin/tokens".into(), result).await
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(rename = "_csrf")]
    csrf: String,
}

pub async fn revoke_token(
    State(p): State<P>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfOnly>, axum::extract::rejection::FormRejection>,
) -> Response {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Some(r) = ctx.check_form(&headers, &csrf) {
        return r;
    }
    let result = api::revoke_token(
        State(p.state.clone()),
        Extension(ctx.caller.clone()),
        ApiPath(id.clone()),
    )
    .await
    .map(|_| None);
    finish(&p, &ctx, format!("POST /admin/tokens/{id}/revoke"), result).await
}
