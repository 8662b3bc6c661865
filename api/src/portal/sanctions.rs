//! Sanctions: the exposures a client has approved. The list (those expiring soon first),
//! what each one covers (the assets its match finds, counted and linked), and the forms
//! that create, edit and withdraw them through the API's own handlers.

use super::assets::api_error;
use super::layout::{enc, page, query, respond, Tab};
use super::{Ctx, P};
use crate::serve::auth::ANALYSTS;
use crate::serve::error::ApiError;
use crate::serve::extract::{ApiJson, ApiPath};
use crate::serve::routes_assets as api;
use aperture_storage::findings::{match_filter, NewSanction};
use aperture_storage::policy::{glob_apex, Sanction, SanctionMatch};
use aperture_storage::{AssetKey, AssetKind, Millis, TenantId};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{html, Markup};
use serde::Deserialize;

const DAY_MS: Millis = 86_400_000;
/// A sanction lapsing within this many days is listed as expiring soon.
pub const SOON_DAYS: i64 = 30;
/// Candidates read per sanction to count what it covers: the count is exact below it and
/// "at least" above, so a page of many sanctions stays cheap on a tenant of millions.
const COVER_BUDGET: usize = 5_000;
/// Covered assets named on a sanction's own page.
const COVER_SHOWN: usize = 50;

/// What a sanction's match covers now.
#[derive(Debug, Default)]
pub struct Cover {
    pub count: usize,
    /// The count is a lower bound: the budget ran out.
    pub more: bool,
    pub keys: Vec<AssetKey>,
}

/// The assets a match covers, as the policy finds them (the same listing, then the
/// match itself on each), within [`COVER_BUDGET`] candidates.
fn cover(p: &P, tenant: &TenantId, m: &SanctionMatch, shown: usize) -> Result<Cover, String> {
    let mut out = Cover::default();
    let Some(filter) = match_filter(m) else {
        return Ok(out);
    };
    let mut cursor: Option<String> = None;
    let mut read = 0usize;
    loop {
        let page = p
            .state
            .store
            .list_assets(tenant, &filter, cursor.as_deref(), 1000)
            .map_err(|e| e.to_string())?;
        read += page.items.len();
        for a in &page.items {
            if matches!(a.kind, AssetKind::Service | AssetKind::Domain) && m.matches(a) {
                out.count += 1;
                if out.keys.len() < shown {
                    out.keys.push(a.key.clone());
                }
            }
        }
        match page.next {
            Some(n) if read < COVER_BUDGET => cursor = Some(n),
            Some(_) => {
                out.more = true;
                return Ok(out);
            }
            None => return Ok(out),
        }
    }
}

/// The inventory filtered as near the match as its filters go (a domain glob becomes its
/// zone).
pub fn inventory_link(tenant: &str, m: &SanctionMatch) -> String {
    let net = m.net.map(|n| n.to_string());
    let port = m.port.map(|p| p.to_string());
    let domain = m.domain.as_deref().and_then(glob_apex);
    let kind = if m.domain.is_some() {
        "domain"
    } else {
        "service"
    };
    format!(
        "/t/{}/assets{}",
        enc(tenant),
        query(&[
            ("kind", Some(kind)),
            ("net", net.as_deref()),
            ("port", port.as_deref()),
            ("service", m.service.as_deref()),
            ("product", m.product.as_deref()),
            ("domain", domain.as_deref()),
        ])
    )
}

fn describe(m: &SanctionMatch) -> String {
    let mut parts = Vec::new();
    if let Some(n) = m.net {
        parts.push(format!("net={n}"));
    }
    if let Some(p) = m.port {
        parts.push(format!("port={p}"));
    }
    for (k, v) in [
        ("service", &m.service),
        ("product", &m.product),
        ("domain", &m.domain),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    }
    parts.join(" ")
}

/// The form's fields, kept as typed so a refused form comes back as it was.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct SanctionForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    net: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    ticket: String,
    /// `YYYY-MM-DD`: the sanction lapses at the end of that day, UTC.
    #[serde(default)]
    expires: String,
}

fn some(s: &str) -> Option<String> {
    Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// `YYYY-MM-DD` → the last millisecond of that day, UTC.
pub fn end_of_day(field: &str, d: &str) -> Result<Millis, ApiError> {
    humantime::parse_rfc3339_weak(&format!("{}T00:00:00Z", d.trim()))
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|t| t.as_millis() as i64 + DAY_MS - 1)
        .ok_or_else(|| ApiError::bad_request(format!("{field}={d:?}: give a date, YYYY-MM-DD")))
}

/// The day of a moment, `YYYY-MM-DD`, for a date input.
fn day_of(at: Millis) -> String {
    aperture_fingerprints::cert::rfc3339(at.div_euclid(1000))
        .get(0..10)
        .unwrap_or("")
        .to_owned()
}

impl SanctionForm {
    fn of(s: &Sanction) -> SanctionForm {
        let m = &s.matches;
        SanctionForm {
            csrf: String::new(),
            net: m.net.map(|n| n.to_string()).unwrap_or_default(),
            port: m.port.map(|p| p.to_string()).unwrap_or_default(),
            service: m.service.clone().unwrap_or_default(),
            product: m.product.clone().unwrap_or_default(),
            domain: m.domain.clone().unwrap_or_default(),
            owner: s.owner.clone(),
            reason: s.reason.clone(),
            ticket: s.ticket.clone().unwrap_or_default(),
            expires: s.expires.map(day_of).unwrap_or_default(),
        }
    }

    fn to_new(&self) -> Result<NewSanction, ApiError> {
        let net = match some(&self.net) {
            None => None,
            Some(n) => Some(
                n.parse::<ipnet::IpNet>()
                    .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ApiError::bad_request(format!("net={n:?}: give an address or a CIDR"))
                    })?,
            ),
        };
        let port = match some(&self.port) {
            None => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| {
                ApiError::bad_request(format!("port={p:?}: give a port, 0 to 65535"))
            })?),
        };
        let expires = match some(&self.expires) {
            None => None,
            Some(d) => Some(end_of_day("expires", &d)?),
        };
        Ok(NewSanction {
            matches: SanctionMatch {
                net,
                port,
                proto: None,
                service: some(&self.service),
                product: some(&self.product),
                domain: some(&self.domain),
            },
            owner: self.owner.trim().to_owned(),
            reason: self.reason.trim().to_owned(),
            ticket: some(&self.ticket),
            expires,
        })
    }
}

fn form(ctx: &Ctx, action: &str, f: &SanctionForm, submit: &'static str) -> Markup {
    let l = ctx.lang;
    html! {
        form.stack #sanction-form method="post" action=(action) {
            input type="hidden" name="_csrf" value=(ctx.csrf);
            p.muted { (l.t("sanction.match_help")) }
            div.grid {
                label { (l.t("net")) input #s-net type="text" name="net" value=(f.net) placeholder="198.18.0.0/24"; }
                label { (l.t("port")) input #s-port type="text" name="port" value=(f.port) placeholder="443"; }
                label { (l.t("service")) input #s-service type="text" name="service" value=(f.service) placeholder="https"; }
                label { (l.t("product")) input #s-product type="text" name="product" value=(f.product); }
                label { (l.t("domain")) input #s-domain type="text" name="domain" value=(f.domain) placeholder="*.shop.example.com"; }
            }
            div.grid {
                label { (l.t("owner")) input #s-owner type="text" name="owner" value=(f.owner) required; }
                label { (l.t("reason")) input #s-reason type="text" name="reason" value=(f.reason) required; }
                label { (l.t("ticket")) input #s-ticket type="text" name="ticket" value=(f.ticket); }
                label { (l.t("expires")) input #s-expires type="date" name="expires" value=(f.expires); }
            }
            button #s-save type="submit" { (l.t(submit)) }
        }
    }
}

fn expiry_badge(ctx: &Ctx, expires: Option<Millis>, now: Millis) -> Markup {
    let l = ctx.lang;
    html! {
        @match expires {
            None => span.muted { (l.t("never")) },
            Some(e) if e <= now => { (l.datetime(e)) " " span.badge.flag { (l.t("expired")) } },
            Some(e) if e - now <= SOON_DAYS * DAY_MS => { (l.datetime(e)) " " span.badge.soon { (l.t("expiring_soon")) } },
            Some(e) => (l.datetime(e)),
        }
    }
}

pub async fn list(State(p): State<P>, ctx: Ctx, Path(tenant): Path<String>) -> Response {
    render_list(&p, &ctx, &tenant, None, &SanctionForm::default()).await
}

async fn render_list(
    p: &P,
    ctx: &Ctx,
    tenant: &str,
    problem: Option<ApiError>,
    f: &SanctionForm,
) -> Response {
    let l = ctx.lang;
    let mut list = match api::list_sanctions(
        State(p.state.clone()),
        Extension(ctx.caller.clone()),
        ApiPath(tenant.to_owned()),
    )
    .await
    {
        Ok(axum::Json(s)) => s,
        Err(e) => return api_error(ctx, Some(tenant), e),
    };
    let now = crate::serve::state::now_ms();
    // Soonest to lapse first, those without an end last.
    list.sort_by_key(|s| (s.expires.unwrap_or(Millis::MAX), s.id.clone()));
    let Ok(t) = TenantId::new(tenant) else {
        return api_error(ctx, Some(tenant), ApiError::not_found("no such tenant"));
    };
    let covers = {
        let p = p.clone();
        let list = list.clone();
        tokio::task::spawn_blocking(move || {
            list.iter()
                .map(|s| cover(&p, &t, &s.matches, 0))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default()
    };
    let soon: Vec<&Sanction> = list
        .iter()
        .filter(|s| s.expires.is_some_and(|e| e - now <= SOON_DAYS * DAY_MS))
        .collect();
    let may = ANALYSTS.contains(&ctx.caller.token.role);
    let te = enc(tenant);
    let status = problem.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let body = html! {
        h1 { (l.t("sanctions")) " — " (tenant) }
        @if let Some(e) = &problem { p.problem role="alert" data-status=(e.status.as_u16()) { (e.detail) } }
        section.card #expiring {
            h2 { (l.t("expiring_soon")) " (" (SOON_DAYS) " " (l.t("days")) ")" }
            @if soon.is_empty() { p.muted { (l.t("none")) } } @else {
                ul { @for s in &soon {
                    li { a href=(format!("/t/{te}/sanctions/{}", enc(&s.id))) { (s.id) } " " span.text { (describe(&s.matches)) } " — " (expiry_badge(ctx, s.expires, now)) }
                } }
            }
        }
        table #sanctions.list {
            thead { tr { th { (l.t("sanction")) } th { (l.t("match")) } th { (l.t("covers")) } th { (l.t("owner")) } th { (l.t("reason")) } th { (l.t("expires")) } } }
            tbody {
                @for (s, c) in list.iter().zip(covers.iter()) {
                    tr {
                        td { a href=(format!("/t/{te}/sanctions/{}", enc(&s.id))) { (s.id) } }
                        td.text { (describe(&s.matches)) }
                        td { @match c {
                            Ok(c) => a.covers href=(inventory_link(tenant, &s.matches)) { (l.number(c.count as u64)) @if c.more { "+" } " " (l.t("assets")) },
                            Err(e) => span.problem { (e) },
                        } }
                        td { (s.owner) }
                        td.text { (s.reason) @if let Some(tk) = &s.ticket { " " span.muted { "(" (tk) ")" } } }
                        td.nowrap { (expiry_badge(ctx, s.expires, now)) }
                    }
                }
                @if list.is_empty() { tr { td colspan="6" .muted { (l.t("no_data")) } } }
            }
        }
        section.card {
            h2 { (l.t("create_sanction")) }
            @if may { (form(ctx, &format!("/t/{te}/sanctions"), f, "create")) }
            @else { p.muted { (l.t("read_only")) } }
        }
    };
    respond(
        status,
        page(ctx, Some(tenant), Tab::Sanctions, l.t("sanctions"), body),
    )
}

pub async fn detail(
    State(p): State<P>,
    ctx: Ctx,
    Path((tenant, id)): Path<(String, String)>,
) -> Response {
    render_detail(&p, &ctx, &tenant, &id, None, None).await
}

async fn render_detail(
    p: &P,
    ctx: &Ctx,
    tenant: &str,
    id: &str,
    problem: Option<ApiError>,
    edited: Option<&SanctionForm>,
) -> Response {
    let l = ctx.lang;
    let s = match api::get_sanction(
        State(p.state.clone()),
        Extension(ctx.caller.clone()),
        ApiPath((tenant.to_owned(), id.to_owned())),
    )
    .await
    {
        Ok(axum::Json(s)) => s,
        Err(e) => return api_error(ctx, Some(tenant), e),
    };
    let Ok(t) = TenantId::new(tenant) else {
        return api_error(ctx, Some(tenant), ApiError::not_found("no such tenant"));
    };
    let c = {
        let p = p.clone();
        let m = s.matches.clone();
        tokio::task::spawn_blocking(move || cover(&p, &t, &m, COVER_SHOWN))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    };
    let now = crate::serve::state::now_ms();
    let te = enc(tenant);
    let f = edited.cloned().unwrap_or_else(|| SanctionForm::of(&s));
    let may = ANALYSTS.contains(&ctx.caller.token.role);
    let status = problem.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let body = html! {
        h1 { (l.t("sanction")) " " (s.id) }
        @if let Some(e) = &problem { p.problem role="alert" data-status=(e.status.as_u16()) { (e.detail) } }
        section.grid {
            div.card {
                dl {
                    dt { (l.t("match")) } dd.text #sanction-match { (describe(&s.matches)) }
                    dt { (l.t("owner")) } dd { (s.owner) }
                    dt { (l.t("reason")) } dd.text { (s.reason) }
                    dt { (l.t("ticket")) } dd { (s.ticket.as_deref().unwrap_or("—")) }
                    dt { (l.t("expires")) } dd #sanction-expires { (expiry_badge(ctx, s.expires, now)) }
                    dt { (l.t("created")) } dd { (l.datetime(s.created)) " " (l.t("by")) " " (s.created_by) }
                }
            }
            div.card #covered {
                h2 { (l.t("covers")) }
                @match &c {
                    Ok(c) => {
                        p { a.covers href=(inventory_link(tenant, &s.matches)) { (l.number(c.count as u64)) @if c.more { "+" } " " (l.t("assets")) } }
                        @if c.keys.is_empty() { p.muted { (l.t("covers_nothing")) } }
                        ul { @for k in &c.keys {
                            li { a.asset-key href=(format!("/t/{te}/asset?key={}", enc(&k.to_string()))) { (k.to_string()) } }
                        } }
                        @if c.count > c.keys.len() { p.muted { (l.t("more_in_inventory")) } }
                    },
                    Err(e) => p.problem { (e) },
                }
            }
        }
        @if may {
            section.card {
                h2 { (l.t("edit")) }
                (form(ctx, &format!("/t/{te}/sanctions/{}", enc(&s.id)), &f, "save"))
            }
            form method="post" action=(format!("/t/{te}/sanctions/{}/delete", enc(&s.id))) {
                input type="hidden" name="_csrf" value=(ctx.csrf);
                button #s-delete.danger type="submit" { (l.t("withdraw")) }
            }
        }
        p { a href=(format!("/t/{te}/sanctions")) { (l.t("back")) } }
    };
    respond(status, page(ctx, Some(tenant), Tab::Sanctions, &s.id, body))
}

async fn audited(
    p: &P,
    ctx: &Ctx,
    tenant: &str,
    action: String,
    result: &Result<(), ApiError>,
) -> Option<Response> {
    let status = match result {
        Ok(()) => StatusCode::SEE_OTHER,
        Err(e) => e.status,
    };
    ctx.audit(&p.state, Some(tenant), action, status).await
}

pub async fn create(
    State(p): State<P>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    form: Result<Form<SanctionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        let e = ApiError::bad_request("the form is not valid: reload the page and try again");
        return render_list(&p, &ctx, &tenant, Some(e), &SanctionForm::default()).await;
    };
    if let Some(r) = ctx.check_form(&headers, &f.csrf) {
        return r;
    }
    let mut created = None;
    let result = match f.to_new() {
        Ok(new) => api::create_sanction(
            State(p.state.clone()),
            Extension(ctx.caller.clone()),
            ApiPath(tenant.clone()),
            ApiJson(new),
        )
        .await
        .map(|(_, axum::Json(s))| created = Some(s.id)),
        Err(e) => Err(e),
    };
    if let Some(r) = audited(
        &p,
        &ctx,
        &tenant,
        format!("POST /t/{tenant}/sanctions"),
        &result,
    )
    .await
    {
        return r;
    }
    match result {
        Ok(()) => Redirect::to(&format!(
            "/t/{}/sanctions/{}",
            enc(&tenant),
            enc(&created.unwrap_or_default())
        ))
        .into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND => api_error(&ctx, Some(&tenant), e),
        Err(e) => render_list(&p, &ctx, &tenant, Some(e), &f).await,
    }
}

pub async fn update(
    State(p): State<P>,
    ctx: Ctx,
    headers: HeaderMap,
    Path((tenant, id)): Path<(String, String)>,
    form: Result<Form<SanctionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        let e = ApiError::bad_request("the form is not valid: reload the page and try again");
        return render_detail(&p, &ctx, &tenant, &id, Some(e), None).await;
    };
    if let Some(r) = ctx.check_form(&headers, &f.csrf) {
        return r;
    }
    let result = match f.to_new() {
        Ok(new) => api::update_sanction(
            State(p.state.clone()),
            Extension(ctx.caller.clone()),
            ApiPath((tenant.clone(), id.clone())),
            ApiJson(new),
        )
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    if let Some(r) = audited(
        &p,
        &ctx,
        &tenant,
        format!("POST /t/{tenant}/sanctions/{id}"),
        &result,
    )
    .await
    {
        return r;
    }
    match result {
        Ok(()) => {
            Redirect::to(&format!("/t/{}/sanctions/{}", enc(&tenant), enc(&id))).into_response()
        }
        Err(e) if e.status == StatusCode::NOT_FOUND => api_error(&ctx, Some(&tenant), e),
        Err(e) => render_detail(&p, &ctx, &tenant, &id, Some(e), Some(&f)).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(rename = "_csrf")]
    csrf: String,
}

pub async fn delete(
    State(p): State<P>,
    ctx: Ctx,
    headers: HeaderMap,
    Path((tenant, id)): Path<(String, String)>,
    form: Result<Form<CsrfOnly>, axum::extract::rejection::FormRejection>,
) -> Response {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Some(r) = ctx.check_form(&headers, &csrf) {
        return r;
    }
    let result = api::delete_sanction(
        State(p.state.clone()),
        Extension(ctx.caller.clone()),
        ApiPath((tenant.clone(), id.clone())),
    )
    .await
    .map(|_| ());
    if let Some(r) = audited(
        &p,
        &ctx,
        &tenant,
        format!("POST /t/{tenant}/sanctions/{id}/delete"),
        &result,
    )
    .await
    {
        return r;
    }
    match result {
        Ok(()) => Redirect::to(&format!("/t/{}/sanctions", enc(&tenant))).into_response(),
        Err(e) => api_error(&ctx, Some(&tenant), e),
    }
}
