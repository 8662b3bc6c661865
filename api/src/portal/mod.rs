//! The portal: a web UI served by `aperture serve` itself under `/` (the API stays
//! under `/v1`). Server-rendered pages (maud escapes everything), no inline script, one
//! embedded stylesheet, charts drawn as SVG on the server.
//!
//! Every page and action authenticates through its session to the same token record the
//! API uses and then calls the API's own handlers, so the role and tenant checks, the
//! validation and the error messages are the API's, not a copy of them.

pub mod admin;
pub mod assets;
pub mod figures;
pub mod findings;
pub mod i18n;
pub mod layout;
pub mod ops;
pub mod sanctions;
pub mod session;
pub mod settings;

use crate::serve::auth::{hash_secret, Caller, TOKEN_PREFIX};
use crate::serve::state::{now_ms, SharedState};
use aperture_storage::access::AuditRecord;
use aperture_storage::policy::Role;
use aperture_storage::TenantId;
use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use i18n::Lang;
use layout::{bare, enc, respond, Tab};
use maud::html;
use serde::Deserialize;
use session::{cookie, over_tls, set_cookie, Sessions, LANG_COOKIE, PRE_COOKIE, SESSION_COOKIE};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug)]
pub struct Portal {
    pub state: SharedState,
    pub sessions: Sessions,
    pub figures: figures::Figures,
}

pub type P = Arc<Portal>;

const CSS: &str = include_str!("static/app.css");
const FAVICON: &str = include_str!("static/favicon.svg");

/// No script runs but our own files (there are none inline), nothing frames the portal,
/// and forms post only to it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The portal's routes, to merge beside the API's.
pub fn router(state: SharedState) -> Router {
    let portal = Arc::new(Portal {
        state,
        sessions: Sessions::default(),
        figures: figures::Figures::default(),
    });
    Router::new()
        .route("/", get(home))
        .route("/signin", get(signin_page).post(signin))
        .route("/signout", post(signout))
        .route("/lang/{code}", get(switch_lang))
        .route(
            "/static/app.css",
            get(|| static_file(CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/static/favicon.svg",
            get(|| static_file(FAVICON, "image/svg+xml")),
        )
        .route("/t/{tenant}", get(assets::dashboard))
        .route("/t/{tenant}/assets", get(assets::inventory))
        .route("/t/{tenant}/export", get(assets::export))
        .route("/t/{tenant}/asset", get(assets::asset_page))
        .route("/t/{tenant}/changes", get(assets::change_feed))
        .route("/t/{tenant}/findings", get(findings::board))
        .route("/t/{tenant}/findings/bulk", post(findings::bulk))
        .route("/t/{tenant}/findings/{id}", get(findings::detail))
        .route("/t/{tenant}/findings/{id}/act", post(findings::act))
        .route("/t/{tenant}/scans", get(ops::scans).post(ops::launch))
        .route("/t/{tenant}/scans/{id}", get(ops::scan_page))
        .route("/t/{tenant}/scans/{id}/cancel", post(ops::cancel))
        .route(
            "/t/{tenant}/scope",
            get(settings::scope_page).post(ops::save_scope),
        )
        .route(
            "/t/{tenant}/schedules",
            get(settings::schedules).post(settings::create_schedule),
        )
        .route(
            "/t/{tenant}/schedules/{id}/delete",
            post(settings::delete_schedule),
        )
        .route(
            "/t/{tenant}/policy",
            get(settings::policy).post(settings::save_policy),
        )
        .route(
            "/t/{tenant}/sanctions",
            get(sanctions::list).post(sanctions::create),
        )
        .route(
            "/t/{tenant}/sanctions/{id}",
            get(sanctions::detail).post(sanctions::update),
        )
        .route("/t/{tenant}/sanctions/{id}/delete", post(sanctions::delete))
        .route("/admin", get(admin::admin))
        .route("/admin/tenants", post(admin::create_tenant))
        .route("/admin/tokens", post(admin::create_token))
        .route("/admin/tokens/{id}/revoke", post(admin::revoke_token))
        .layer(axum::middleware::from_fn(headers))
        .with_state(portal)
}

async fn static_file(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Security headers on every portal response; pages are never cached (they carry
/// a tenant's data and a CSRF token).
async fn headers(req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/static/");
    let start = std::time::Instant::now();
    let mut resp = next.run(req).await;
    let took = start.elapsed().as_secs_f64() * 1000.0;
    let h = resp.headers_mut();
    // The page's server time (render included: maud has written the whole body by
    // now), for the browser's developer tools and scripts/bench-portal.
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={took:.2}")) {
        h.insert("server-timing", v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_static {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The language of a request: its cookie, else the browser's first choice.
pub fn lang_of(headers: &HeaderMap) -> Lang {
    if let Some(l) = cookie(headers, LANG_COOKIE).and_then(|c| Lang::parse(&c)) {
        return l;
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.trim_start().to_ascii_lowercase().starts_with("zh") {
        Lang::Zh
    } else {
        Lang::En
    }
}

pub fn role_label(l: Lang, r: Role) -> &'static str {
    match (l, r) {
        (Lang::En, r) => crate::serve::auth::role_name(r),
        (Lang::Zh, Role::Admin) => "管理员",
        (Lang::Zh, Role::Analyst) => "分析员",
        (Lang::Zh, Role::Remediator) => "修复员",
        (Lang::Zh, Role::Viewer) => "查看者",
    }
}

/// A signed-in request: who, in which language, with which CSRF token.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Lang,
    pub caller: Caller,
    pub sid: String,
    pub csrf: String,
    /// This page's path and query, to come back to after a language switch.
    pub path: String,
    pub peer: String,
}

impl Ctx {
    /// Refuses a state-changing form that another site could have sent: a foreign
    /// Origin, or a CSRF token that is not this session's.
    /// Some(the refusal page) when refused.
    pub fn check_form(&self, headers: &HeaderMap, csrf: &str) -> Option<Response> {
        if session::same_origin(headers) && session::same(csrf, &self.csrf) {
            None
        } else {
            Some(layout::error(
                self,
                None,
                StatusCode::FORBIDDEN,
                self.lang.t("csrf"),
            ))
        }
    }

    /// Records a portal action in the audit log, as the API's middleware does for its
    /// calls.
    pub async fn audit(
        &self,
        state: &SharedState,
        tenant: Option<&str>,
        action: String,
        status: StatusCode,
    ) -> Option<Response> {
        let record = AuditRecord {
            seq: 0,
            at: now_ms(),
            actor: self.caller.name(),
            role: Some(self.caller.token.role),
            tenant: tenant.and_then(|t| TenantId::new(t).ok()),
            action,
            status: status.as_u16(),
            outcome: if status.is_success() || status.is_redirection() {
                "ok".into()
            } else if status.is_client_error() {
                "refused".into()
            } else {
                "failed".into()
            },
            source: self.peer.clone(),
        };
        let store = state.store.clone();
        match tokio::task::spawn_blocking(move || store.audit(record)).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(self.fail(format!("the audit log could not be written: {e}"))),
            Err(e) => Some(self.fail(format!("the audit log could not be written: {e}"))),
        }
    }

    fn fail(&self, detail: String) -> Response {
        layout::error(self, None, StatusCode::INTERNAL_SERVER_ERROR, &detail)
    }
}

impl FromRequestParts<P> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, portal: &P) -> Result<Self, Self::Rejection> {
        let lang = lang_of(&parts.headers);
        // Where a language switch comes back to: this page, or for a form's answer the
        // start page (the form's path takes no GET).
        let path = match parts.method {
            Method::GET => parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into()),
            _ => "/".into(),
        };
        let to_signin = || {
            if parts.method == Method::GET {
                Redirect::to(&format!("/signin?next={}", enc(&path))).into_response()
            } else {
                respond(
                    StatusCode::UNAUTHORIZED,
                    bare(
                        lang,
                        "/signin",
                        lang.t("signin"),
                        html! { p.problem role="alert" { (lang.t("signin.expired")) } p { a href="/signin" { (lang.t("signin")) } } },
                    ),
                )
            }
        };
        let Some(sid) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_signin());
        };
        let Some(s) = portal.sessions.get(&sid) else {
            return Err(to_signin());
        };
        let state = &portal.state;
        let token = match state.store.token_by_hash(&s.token_sha256) {
            Ok(Some(t)) if t.revoked.is_none() => t,
            _ => {
                portal.sessions.remove(&sid);
                return Err(to_signin());
            }
        };
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_default();
        let ctx = Ctx {
            lang,
            caller: Caller { token },
            sid,
            csrf: s.csrf,
            path,
            peer,
        };
        if state.limiter.check_key(&ctx.caller.token.id).is_err() {
            return Err(layout::error(
                &ctx,
                None,
                StatusCode::TOO_MANY_REQUESTS,
                lang.t("rate_limited"),
            ));
        }
        Ok(ctx)
    }
}

/// The tenants this token may see; straight to the dashboard when there is one.
async fn home(State(p): State<P>, ctx: Ctx) -> Response {
    let l = ctx.lang;
    let tenants = match p.state.store.tenants() {
        Ok(ts) => ts
            .into_iter()
            .filter(|t| ctx.caller.token.may_act_on(&t.id))
            .collect::<Vec<_>>(),
        Err(e) => {
            return layout::error(
                &ctx,
                None,
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
            )
        }
    };
    if tenants.len() == 1 && ctx.caller.token.role != Role::Admin {
        return Redirect::to(&format!("/t/{}", enc(tenants[0].id.as_str()))).into_response();
    }
    let body = html! {
        h1 { (l.t("choose_tenant")) }
        @if tenants.is_empty() {
            p.muted { (l.t("no_tenants")) }
        } @else {
            ul.tenants {
                @for t in &tenants {
                    li { a href=(format!("/t/{}", enc(t.id.as_str()))) { strong { (t.id) } " — " (t.name) } }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        layout::page(&ctx, None, Tab::Home, l.t("tenants"), body),
    )
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn signin_page(headers: HeaderMap, Query(q): Query<NextQuery>) -> Response {
    signin_form(&headers, q.next.as_deref(), None, StatusCode::OK)
}

fn signin_form(
    headers: &HeaderMap,
    next: Option<&str>,
    problem: Option<&str>,
    status: StatusCode,
) -> Response {
    let lang = lang_of(headers);
    let pre = match session::random_id() {
        Ok(p) => p,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    };
    let next = session::local_path(next);
    let here = format!("/signin?next={}", enc(&next));
    let body = html! {
        section.signin {
            h1 { (lang.t("signin")) }
            @if let Some(p) = problem {
                p.problem role="alert" { (p) }
            }
            form method="post" action="/signin" {
                input type="hidden" name="_csrf" value=(pre);
                input type="hidden" name="next" value=(next);
                label for="token" { (lang.t("token")) }
                input #token type="password" name="token" autocomplete="off" required placeholder="apt_…";
                p.muted { (lang.t("signin.help")) }
                button #signin type="submit" { (lang.t("signin")) }
            }
        }
    };
    let mut resp = respond(status, bare(lang, &here, lang.t("signin"), body));
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(PRE_COOKIE, &pre, Some(900), true, over_tls(headers)),
    );
    resp
}

#[derive(Debug, Deserialize)]
struct SigninForm {
    token: String,
    #[serde(rename = "_csrf")]
    csrf: String,
    next: Option<String>,
}

async fn signin(
    State(p): State<P>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<SigninForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = lang_of(&headers);
    let Ok(Form(form)) = form else {
        return signin_form(
            &headers,
            None,
            Some(lang.t("signin.bad")),
            StatusCode::BAD_REQUEST,
        );
    };
    // Login CSRF: the form must come from our own sign-in page (double-submit cookie).
    let pre = cookie(&headers, PRE_COOKIE).unwrap_or_default();
    if !session::same_origin(&headers) || pre.is_empty() || !session::same(&pre, &form.csrf) {
        return signin_form(
            &headers,
            form.next.as_deref(),
            Some(lang.t("csrf")),
            StatusCode::FORBIDDEN,
        );
    }
    let secret = form.token.trim();
    let token = if secret.starts_with(TOKEN_PREFIX) {
        p.state
            .store
            .token_by_hash(&hash_secret(secret))
            .ok()
            .flatten()
    } else {
        None
    };
    let Some(token) = token.filter(|t| t.revoked.is_none()) else {
        let record = AuditRecord {
            seq: 0,
            at: now_ms(),
            actor: "anonymous".into(),
            role: None,
            tenant: None,
            action: "POST /signin".into(),
            status: 401,
            outcome: "refused".into(),
            source: peer.to_string(),
        };
        let _ = p.state.store.audit(record);
        return signin_form(
            &headers,
            form.next.as_deref(),
            Some(lang.t("signin.bad")),
            StatusCode::UNAUTHORIZED,
        );
    };
    let (sid, _) = match p.sessions.create(&token.sha256) {
        Ok(s) => s,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    };
    let record = AuditRecord {
        seq: 0,
        at: now_ms(),
        actor: Caller {
            token: token.clone(),
        }
        .name(),
        role: Some(token.role),
        tenant: None,
        action: "POST /signin".into(),
        status: 303,
        outcome: "ok".into(),
        source: peer.to_string(),
    };
    let _ = p.state.store.audit(record);
    let tls = over_tls(&headers);
    let mut resp = Redirect::to(&session::local_path(form.next.as_deref())).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &sid, None, true, tls),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(PRE_COOKIE, "", Some(0), true, tls),
    );
    resp
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(rename = "_csrf")]
    csrf: String,
}

async fn signout(
    State(p): State<P>,
    ctx: Ctx,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Some(r) = ctx.check_form(&headers, &csrf) {
        return r;
    }
    p.sessions.remove(&ctx.sid);
    let _ = ctx
        .audit(
            &p.state,
            None,
            "POST /signout".into(),
            StatusCode::SEE_OTHER,
        )
        .await;
    let mut resp = Redirect::to("/signin").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Some(0), true, over_tls(&headers)),
    );
    resp
}

/// Sets the language cookie and goes back. Not a state change of the service: a
/// preference of this browser only.
async fn switch_lang(
    axum::extract::Path(code): axum::extract::Path<String>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let lang = Lang::parse(&code).unwrap_or(Lang::En);
    let mut resp = Redirect::to(&session::local_path(q.next.as_deref())).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            LANG_COOKIE,
            lang.code(),
            Some(365 * 86_400),
            false,
            over_tls(&headers),
        ),
    );
    resp
}
