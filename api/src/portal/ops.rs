//! The analyst's screens: the tenant's scope, launching a scan, and watching it (its
//! progress and shard map; the page refreshes itself with a meta refresh while the scan
//! runs, so no script is needed).

use super::assets::api_error;
use super::layout::{enc, page, respond, Tab};
use super::{Ctx, P};
use crate::serve::auth::ANALYSTS;
use crate::serve::error::ApiError;
use crate::serve::extract::{ApiJson, ApiPath};
use crate::serve::routes_scans::{self as api, ScanView};
use aperture_storage::access::{ScanRequest, Scope};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeSet;

fn name_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn lines(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', '\n', ' '])
        .map(str::trim)
        .filter(|x| !x.is_empty())
}

pub async fn scans(State(p): State<P>, ctx: Ctx, Path(tenant): Path<String>) -> Response {
    render_scans(&p, &ctx, &tenant, None, StatusCode::OK).await
}

async fn render_scans(
    p: &P,
    ctx: &Ctx,
    tenant: &str,
    problem: Option<ApiError>,
    status: StatusCode,
) -> Response {
    let l = ctx.lang;
    let st = || State(p.state.clone());
    let who = || Extension(ctx.caller.clone());
    let scope = match api::get_scope(st(), who(), ApiPath(tenant.to_owned())).await {
        Ok(axum::Json(s)) => s,
        Err(e) => return api_error(ctx, Some(tenant), e),
    };
    let list = match api::list_scans(st(), who(), ApiPath(tenant.to_owned())).await {
        Ok(axum::Json(s)) => s,
        Err(e) => return api_error(ctx, Some(tenant), e),
    };
    let may = ANALYSTS.contains(&ctx.caller.token.role);
    let t = enc(tenant);
    let join = |v: Vec<String>| v.join("\n");
    let body = html! {
        h1 { (l.t("scans")) " — " (tenant) }
        @if let Some(e) = &problem { p.problem role="alert" data-status=(e.status.as_u16()) { (e.detail) } }
        @if !e_refused(&problem).is_empty() {
            ul.problem { @for (target, why) in e_refused(&problem) { li { code { (target) } ": " (why) } } }
        }
        section.grid {
            div.card {
                h2 { (l.t("launch")) }
                @if may {
                    form.stack method="post" action=(format!("/t/{t}/scans")) {
                        input type="hidden" name="_csrf" value=(ctx.csrf);
                        label { (l.t("targets")) textarea #scan-targets name="targets" rows="3" placeholder="198.18.1.0/24" {} }
                        label { (l.t("ports")) input #scan-ports type="text" name="ports" placeholder="22,80,443"; }
                        label { (l.t("domains")) input type="text" name="domains" placeholder="example.com"; }
                        label { (l.t("rate")) input type="number" name="rate" min="1" placeholder="1000"; }
                        label.check { input type="checkbox" name="grab" value="true" checked; (l.t("grab")) }
                        button #launch type="submit" { (l.t("launch")) }
                    }
                } @else { p.muted { (l.t("read_only")) } }
            }
            div.card {
                h2 { (l.t("scope")) }
                dl {
                    dt { (l.t("cidrs")) } dd.text { (join(scope.cidrs.iter().map(|c| c.to_string()).collect())) }
                    dt { (l.t("domains")) } dd.text { (scope.domains.join(", ")) }
                    dt { (l.t("exclusions")) } dd.text { (join(scope.exclusions.iter().map(|c| c.to_string()).collect())) }
                }
                p { a #edit-scope href=(format!("/t/{t}/scope")) { @if may { (l.t("edit_scope")) } @else { (l.t("scope")) } } }
            }
        }
        table #scans.list {
            thead { tr { th { (l.t("scan")) } th { (l.t("state")) } th { (l.t("progress")) } th { (l.t("found")) } th { (l.t("requested")) } th { (l.t("by")) } } }
            tbody {
                @for s in &list {
                    tr {
                        td { a href=(format!("/t/{t}/scans/{}", enc(&s.job.id))) { (s.job.id) } @if let Some(pp) = &s.job.purpose { " " span.muted { (pp) } } }
                        td { span class=(format!("badge sc-{}", name_of(&s.job.state))) { (name_of(&s.job.state)) } }
                        td { (progress_bar(s)) }
                        td { (l.number(s.progress.found)) }
                        td.nowrap { (l.datetime(s.job.requested)) }
                        td { (s.job.requested_by) }
                    }
                }
                @if list.is_empty() { tr { td colspan="6" .muted { (l.t("no_data")) } } }
            }
        }
    };
    respond(
        status,
        page(ctx, Some(tenant), Tab::Scans, l.t("scans"), body),
    )
}

fn e_refused(e: &Option<ApiError>) -> Vec<(String, String)> {
    e.as_ref()
        .map(|e| {
            e.refused
                .iter()
                .map(|r| (r.target.clone(), r.reason.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn progress_bar(s: &ScanView) -> Markup {
    let total = s.progress.probes_total.max(1);
    let pct = (s.progress.probes_sent as f64 / total as f64 * 100.0).clamp(0.0, 100.0);
    html! {
        // SVG, not a style attribute: the CSP allows no inline styles.
        svg.progress width="100" height="10" viewBox="0 0 100 10" role="img" {
            title { (format!("{}/{}", s.progress.probes_sent, s.progress.probes_total)) }
            rect.track x="0" y="0" width="100" height="10" {}
            rect.fill x="0" y="0" width=(format!("{pct:.1}")) height="10" {}
        }
        " " (format!("{pct:.0}%"))
    }
}

pub async fn scan_page(
    State(p): State<P>,
    ctx: Ctx,
    Path((tenant, id)): Path<(String, String)>,
) -> Response {
    let l = ctx.lang;
    let s = match api::get_scan(
        State(p.state.clone()),
        Extension(ctx.caller.clone()),
        ApiPath((tenant.clone(), id.clone())),
    )
    .await
    {
        Ok(axum::Json(s)) => s,
        Err(e) => return api_error(&ctx, Some(&tenant), e),
    };
    let state = name_of(&s.job.state);
    let live = s.job.state.is_live();
    let done: BTreeSet<u32> = s.shards.iter().map(|r| r.shard).collect();
    let shown = s.progress.shards.min(4096);
    let t = enc(&tenant);
    let body = html! {
        h1 { (l.t("scan")) " " (s.job.id) }
        p { (l.t("state")) ": " span #scan-state class=(format!("badge sc-{state}")) { (state) }
            @if let Some(e) = &s.job.error { " " span.problem { (e) } } }
        section.tiles {
            div.tile { div.value { (progress_bar(&s)) } div.label { (l.number(s.progress.probes_sent)) " / " (l.number(s.progress.probes_total)) " " (l.t("probes")) } }
            div.tile { div.value #shards-done { (s.progress.shards_done) " / " (s.progress.shards) } div.label { (l.t("shards")) } }
            div.tile { div.value { (l.number(s.progress.found)) } div.label { (l.t("found")) } }
            div.tile { div.value { (format!("{:.0}", s.progress.rate)) "/s" } div.label { (l.t("rate")) } }
            div.tile { div.value { (s.progress.eta_secs.map(|e| format!("{e:.0} s")).unwrap_or_else(|| "—".into())) } div.label { (l.t("eta")) } }
        }
        section.card {
            h2 { (l.t("shard_map")) }
            div #shard-map.shards {
                @for i in 0..shown {
                    span class=(if done.contains(&i) { "shard done" } else if live { "shard pending" } else { "shard idle" }) title=(format!("shard {i}")) {}
                }
            }
        }
        section.card {
            h2 { (l.t("coverage")) }
            dl {
                dt { (l.t("targets")) } dd.text { (s.coverage.targets.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")) }
                dt { (l.t("ports")) } dd.text { (s.job.request.ports.as_deref().unwrap_or("—")) }
                dt { (l.t("domains")) } dd.text { (s.coverage.domains.join(", ")) }
                dt { (l.t("requested")) } dd { (l.datetime(s.job.requested)) " " (l.t("by")) " " (s.job.requested_by) }
                dt { (l.t("finished")) } dd { (s.job.finished.map(|f| l.datetime(f)).unwrap_or_else(|| "—".into())) }
            }
        }
        @if live && ANALYSTS.contains(&ctx.caller.token.role) {
            form method="post" action=(format!("/t/{t}/scans/{}/cancel", enc(&s.job.id))) {
                input type="hidden" name="_csrf" value=(ctx.csrf);
                button type="submit" { (l.t("cancel")) }
            }
        }
    };
    let mut resp = respond(
        StatusCode::OK,
        page(&ctx, Some(&tenant), Tab::Scans, &s.job.id, body),
    );
    if live {
        // Watching a running scan without script: the browser reloads the page.
        resp.headers_mut()
            .insert("refresh", axum::http::HeaderValue::from_static("2"));
    }
    resp
}

#[derive(Debug, Deserialize)]
pub struct LaunchForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    targets: Option<String>,
    ports: Option<String>,
    domains: Option<String>,
    rate: Option<String>,
    grab: Option<String>,
}

pub async fn launch(
    State(p): State<P>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    form: Result<Form<LaunchForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        let e = ApiError::bad_request("the form is not valid");
        return render_scans(&p, &ctx, &tenant, Some(e), StatusCode::BAD_REQUEST).await;
    };
    if let Some(r) = ctx.check_form(&headers, &f.csrf) {
        return r;
    }
    let rate = match f.rate.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => match r.parse::<u32>() {
            Ok(r) => Some(r),
            Err(_) => {
                let e = ApiError::bad_request(format!("rate={r:?}: give probes per second"));
                return render_scans(&p, &ctx, &tenant, Some(e), StatusCode::BAD_REQUEST).await;
            }
        },
    };
    let req = ScanRequest {
        targets: lines(f.targets.as_deref().unwrap_or(""))
            .map(str::to_owned)
            .collect(),
        ports: f
            .ports
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        top_ports: None,
        domains: lines(f.domains.as_deref().unwrap_or(""))
            .map(str::to_owned)
            .collect(),
        rate,
        grab: f.grab.as_deref() == Some("true"),
        probe: None,
        udp: None,
    };
    let result = api::create_scan(
        State(p.state.clone()),
        Extension(ctx.caller.clone()),
        ApiPath(tenant.clone()),
        ApiJson(req),
    )
    .await;
    let status = match &result {
        Ok(_) => StatusCode::SEE_OTHER,
        Err(e) => e.status,
    };
    if let Some(r) = ctx
        .audit(
            &p.state,
            Some(&tenant),
            format!("POST /t/{tenant}/scans"),
            status,
        )
        .await
    {
        return r;
    }
    match result {
        Ok((_, axum::Json(s))) => {
            Redirect::to(&format!("/t/{}/scans/{}", enc(&tenant), enc(&s.job.id))).into_response()
        }
        Err(e) if e.status == StatusCode::NOT_FOUND => api_error(&ctx, Some(&tenant), e),
        Err(e) => {
            let st = e.status;
            render_scans(&p, &ctx, &tenant, Some(e), st).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ScopeForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    cidrs: Option<String>,
    domains: Option<String>,
    exclusions: Option<String>,
    allow_special: Option<String>,
}

pub async fn save_scope(
    State(p): State<P>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    form: Result<Form<ScopeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        let e = ApiError::bad_request("the form is not valid: reload the page and try again");
        return super::settings::render_scope(&p, &ctx, &tenant, Some(e), None).await;
    };
    if let Some(r) = ctx.check_form(&headers, &f.csrf) {
        return r;
    }
    let typed = super::settings::ScopeText {
        cidrs: f.cidrs.clone().unwrap_or_default(),
        domains: f.domains.clone().unwrap_or_default(),
        exclusions: f.exclusions.clone().unwrap_or_default(),
        allow_special: f.allow_special.as_deref() == Some("true"),
    };
    let nets = |field: &str, v: &Option<String>| -> Result<Vec<ipnet::IpNet>, ApiError> {
        lines(v.as_deref().unwrap_or(""))
            .map(|n| {
                n.parse::<ipnet::IpNet>()
                    .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ApiError::bad_request(format!("{field}: {n:?} is not an address or CIDR"))
                    })
            })
            .collect()
    };
    let scope = nets("cidrs", &f.cidrs).and_then(|cidrs| {
        Ok(Scope {
            cidrs,
            domains: lines(f.domains.as_deref().unwrap_or(""))
                .map(str::to_owned)
                .collect(),
            exclusions: nets("exclusions", &f.exclusions)?,
            allow_special: f.allow_special.as_deref() == Some("true"),
        })
    });
    let result = match scope {
        Ok(s) => api::put_scope(
            State(p.state.clone()),
            Extension(ctx.caller.clone()),
            ApiPath(tenant.clone()),
            ApiJson(s),
        )
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    let status = result
        .as_ref()
        .map(|_| StatusCode::SEE_OTHER)
        .unwrap_or_else(|e| e.status);
    if let Some(r) = ctx
        .audit(
            &p.state,
            Some(&tenant),
            format!("POST /t/{tenant}/scope"),
            status,
        )
        .await
    {
        return r;
    }
    match result {
        Ok(()) => Redirect::to(&format!("/t/{}/scope", enc(&tenant))).into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND => api_error(&ctx, Some(&tenant), e),
        Err(e) => super::settings::render_scope(&p, &ctx, &tenant, Some(e), Some(typed)).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(rename = "_csrf")]
    csrf: String,
}

pub async fn cancel(
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
    let result = api::cancel_scan(
        State(p.state.clone()),
        Extension(ctx.caller.clone()),
        ApiPath((tenant.clone(), id.clone())),
    )
    .await;
    let status = result
        .as_ref()
        .map(|_| StatusCode::SEE_OTHER)
        .unwrap_or_else(|e| e.status);
    if let Some(r) = ctx
        .audit(
            &p.state,
            Some(&tenant),
            format!("POST /t/{tenant}/scans/{id}/cancel"),
            status,
        )
        .await
    {
        return r;
    }
    match result {
        Ok(_) => Redirect::to(&format!("/t/{}/scans/{}", enc(&tenant), enc(&id))).into_response(),
        Err(e) => api_error(&ctx, Some(&tenant), e),
    }
}
