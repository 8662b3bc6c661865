//! The dashboard, the inventory with its exports, one asset's page and the change feed.
//! Each calls the API handler of the same data, so the checks and errors are the API's.

use super::i18n::Lang;
use super::layout::{self, bars, enc, error, page, query, respond, Tab};
use super::{Ctx, P};
use crate::serve::auth::READERS;
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::extract::{ApiPath, ApiQuery};
use crate::serve::routes_assets::{self as api, AssetQuery, ChangesQuery};
use aperture_storage::{Asset, AssetKey, Change, ChangeKind, TenantId};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

/// A page's answer to an API error: the API's message on the page.
pub fn api_error(ctx: &Ctx, tenant: Option<&str>, e: ApiError) -> Response {
    // A tenant the caller may not see gets no tenant navigation either.
    let tenant = tenant.filter(|_| e.status != StatusCode::NOT_FOUND);
    error(ctx, tenant, e.status, &e.detail)
}

fn ext(ctx: &Ctx) -> Extension<crate::serve::auth::Caller> {
    Extension(ctx.caller.clone())
}

pub async fn dashboard(State(p): State<P>, ctx: Ctx, Path(tenant): Path<String>) -> Response {
    let l = ctx.lang;
    // The API's check of the summary route, then its figures (kept ones for a big
    // tenant: super::figures).
    let t = match ctx.caller.tenant(&p.state, &tenant, READERS) {
        Ok(t) => t,
        Err(e) => return api_error(&ctx, Some(&tenant), e),
    };
    let (s, as_of) = match super::figures::Figures::summary(&p, &t).await {
        Ok(s) => s,
        Err(e) => return api_error(&ctx, Some(&tenant), e),
    };
    let s = (*s).clone();
    let count = p.state.store.change_count(&t).unwrap_or(0);
    let before = p.sessions.saw_changes(&ctx.caller.token.id, &tenant, count);
    let new_since = before.map(|b| count.saturating_sub(b));
    let risk: Vec<(String, u64)> = s.services_by_risk.into_iter().collect();
    let sev_order = ["critical", "high", "medium", "low", "info"];
    let sev: Vec<(String, u64)> = sev_order
        .iter()
        .filter_map(|k| {
            s.open_findings_by_severity
                .get(*k)
                .map(|n| (k.to_string(), *n))
        })
        .collect();
    let age: Vec<(String, u64)> = ["0-7d", "7-30d", "30-90d", "90d+"]
        .iter()
        .filter_map(|k| s.open_findings_by_age.get(*k).map(|n| (k.to_string(), *n)))
        .collect();
    let t = enc(&tenant);
    let body = html! {
        h1 { (l.t("dashboard")) " — " (tenant) }
        @if let Some(at) = as_of {
            p.muted #figures-as-of { (l.t("figures_as_of")) " " (l.datetime(at)) }
        }
        section.tiles {
            (tile(l.t("exposed_hosts"), l.number(s.exposed_hosts), None))
            (tile(l.t("exposed_services"), l.number(s.exposed_services), Some(format!("/t/{t}/assets?kind=service&status=present"))))
            (tile(l.t("overdue"), l.number(s.overdue), Some(format!("/t/{t}/findings?overdue=true"))))
            (tile(l.t("mttr"), s.mean_time_to_remediate_hours.map(|h| l.hours(h)).unwrap_or_else(|| "—".into()), None))
            (tile(l.t("closed_verified"), l.number(s.closed_verified), Some(format!("/t/{t}/findings?state=closed-verified"))))
            (tile(l.t("new_since"), new_since.map(|n| l.number(n)).unwrap_or_else(|| "—".into()), Some(format!("/t/{t}/changes"))))
        }
        section.grid {
            div.card { h2 { (l.t("by_risk")) } (bars(l, &risk, "risk")) }
            div.card { h2 { (l.t("by_severity")) } (bars(l, &sev, "sev")) }
            div.card { h2 { (l.t("by_age")) } (bars(l, &age, "age")) }
        }
        section.card {
            h2 { (l.t("shrinkage")) }
            (layout::shrinkage(l, &s.shrinkage))
        }
    };
    respond(
        StatusCode::OK,
        page(&ctx, Some(&tenant), Tab::Dashboard, l.t("dashboard"), body),
    )
}

fn tile(label: &str, value: String, href: Option<String>) -> Markup {
    html! {
        div.tile {
            div.value {
                @if let Some(h) = href { a href=(h) { (value) } } @else { (value) }
            }
            div.label { (label) }
        }
    }
}

/// The inventory's query string: every API filter, as a form sends them (empty fields
/// mean "any").
#[derive(Debug, Default, Deserialize)]
pub struct InvQuery {
    kind: Option<String>,
    net: Option<String>,
    port: Option<String>,
    protocol: Option<String>,
    service: Option<String>,
    product: Option<String>,
    risk: Option<String>,
    domain: Option<String>,
    status: Option<String>,
    first_seen_from: Option<String>,
    first_seen_to: Option<String>,
    last_seen_from: Option<String>,
    last_seen_to: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
    sort: Option<String>,
    format: Option<String>,
}

fn some(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

impl InvQuery {
    fn api(&self) -> ApiResult<AssetQuery> {
        let num = |field: &str, v: &Option<String>| -> ApiResult<Option<usize>> {
            match some(v) {
                None => Ok(None),
                Some(s) => s.parse().map(Some).map_err(|_| {
                    ApiError::bad_request(format!("{field}={s:?}: give a whole number"))
                }),
            }
        };
        let port = match num("port", &self.port)? {
            None => None,
            Some(p) => Some(u16::try_from(p).map_err(|_| {
                ApiError::bad_request(format!("port={p}: give a port from 0 to 65535"))
            })?),
        };
        Ok(AssetQuery {
            kind: some(&self.kind),
            net: some(&self.net),
            port,
            protocol: some(&self.protocol),
            service: some(&self.service),
            product: some(&self.product),
            risk: some(&self.risk),
            domain: some(&self.domain),
            status: some(&self.status),
            first_seen_from: some(&self.first_seen_from),
            first_seen_to: some(&self.first_seen_to),
            last_seen_from: some(&self.last_seen_from),
            last_seen_to: some(&self.last_seen_to),
            cursor: some(&self.cursor),
            limit: num("limit", &self.limit)?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            sort: some(&self.sort),
        })
    }

    /// The filters (no cursor) as a query string, with `extra` pairs after them.
    fn qs(&self, extra: &[(&str, Option<&str>)]) -> String {
        let mut pairs: Vec<(&str, Option<&str>)> = vec![
            ("kind", self.kind.as_deref()),
            ("net", self.net.as_deref()),
            ("port", self.port.as_deref()),
            ("protocol", self.protocol.as_deref()),
            ("service", self.service.as_deref()),
            ("product", self.product.as_deref()),
            ("risk", self.risk.as_deref()),
            ("domain", self.domain.as_deref()),
            ("status", self.status.as_deref()),
            ("first_seen_from", self.first_seen_from.as_deref()),
            ("first_seen_to", self.first_seen_to.as_deref()),
            ("last_seen_from", self.last_seen_from.as_deref()),
            ("last_seen_to", self.last_seen_to.as_deref()),
            ("limit", self.limit.as_deref()),
            ("sort", self.sort.as_deref()),
        ];
        pairs.extend_from_slice(extra);
        query(&pairs)
    }
}

pub async fn inventory(
    State(p): State<P>,
    ctx: Ctx,
    Path(tenant): Path<String>,
    Query(q): Query<InvQuery>,
) -> Response {
    let l = ctx.lang;
    let result = match q.api() {
        Ok(aq) => api::list_assets(
            State(p.state.clone()),
            ext(&ctx),
            ApiPath(tenant.clone()),
            ApiQuery(aq),
        )
        .await
        .map(|j| j.0),
        Err(e) => Err(e),
    };
    let (items, next, problem) = match result {
        Ok(page) => (page.items, page.next, None),
        Err(e) if e.status == StatusCode::BAD_REQUEST => (Vec::new(), None, Some(e.detail)),
        Err(e) => return api_error(&ctx, Some(&tenant), e),
    };
    let t = enc(&tenant);
    let select = |name: &'static str, options: &[&'static str], current: &Option<String>| {
        html! {
            select name=(name) id=(format!("f-{name}")) {
                option value="" { (l.t("any")) }
                @for o in options {
                    option value=(o) selected[current.as_deref() == Some(*o)] { (o) }
                }
            }
        }
    };
    let text = |name: &'static str, v: &Option<String>, ph: &'static str| {
        html! { input type="text" name=(name) id=(format!("f-{name}")) value=(v.as_deref().unwrap_or("")) placeholder=(ph); }
    };
    let body = html! {
        h1 { (l.t("inventory")) " — " (tenant) }
        form.filters method="get" action=(format!("/t/{t}/assets")) {
            label { (l.t("kind")) (select("kind", &["host", "service", "domain", "certificate"], &q.kind)) }
            label { (l.t("status")) (select("status", &["present", "absent", "unknown"], &q.status)) }
            label { (l.t("net")) (text("net", &q.net, "198.18.0.0/16")) }
            label { (l.t("port")) (text("port", &q.port, "443")) }
            label { (l.t("protocol")) (select("protocol", &["tcp", "udp"], &q.protocol)) }
            label { (l.t("service")) (text("service", &q.service, "ssh")) }
            label { (l.t("product")) (text("product", &q.product, "nginx")) }
            label { (l.t("risk")) (text("risk", &q.risk, "database")) }
            label { (l.t("domain")) (text("domain", &q.domain, "example.com")) }
            label { (l.t("first_seen_from")) (text("first_seen_from", &q.first_seen_from, "2026-11-24T10:00:00Z")) }
            label { (l.t("last_seen_from")) (text("last_seen_from", &q.last_seen_from, "2026-11-24T10:00:00Z")) }
            label { (l.t("per_page")) (select("limit", &["50", "100", "500", "1000"], &q.limit)) }
            label { (l.t("sort")) select name="sort" id="f-sort" {
                @for (v, key) in [("key", "sort.key"), ("-key", "sort.-key")] {
                    option value=(v) selected[q.sort.as_deref().unwrap_or("key") == v] { (l.t(key)) }
                }
            } }
            div.actions {
                button type="submit" id="filter" { (l.t("filter")) }
                a href=(format!("/t/{t}/assets")) { (l.t("clear")) }
            }
        }
        @if let Some(pr) = &problem {
            p.problem role="alert" { (pr) }
        }
        p.exports {
            a #export-csv href=(format!("/t/{t}/export{}", q.qs(&[("format", Some("csv"))]))) { (l.t("export_csv")) }
            " · "
            a #export-jsonl href=(format!("/t/{t}/export{}", q.qs(&[("format", Some("jsonl"))]))) { (l.t("export_jsonl")) }
            " " span.muted { (l.t("export.help")) }
        }
        table #assets.list {
            thead { tr {
                th { (l.t("asset")) } th { (l.t("status")) } th { (l.t("service")) }
                th { (l.t("product")) } th { (l.t("risk")) } th { (l.t("http_title")) " / " (l.t("banner")) }
                th { (l.t("last_seen")) }
            } }
            tbody {
                @for a in &items { (asset_row(l, &tenant, a)) }
                @if items.is_empty() { tr { td colspan="7" .muted { (l.t("no_data")) } } }
            }
        }
        nav.pager {
            @if q.cursor.is_some() { a href=(format!("/t/{t}/assets{}", q.qs(&[]))) { (l.t("first_page")) } }
            @if let Some(n) = &next {
                " " a #next-page href=(format!("/t/{t}/assets{}", q.qs(&[("cursor", Some(n.as_str()))]))) { (l.t("next_page")) " →" }
            }
        }
    };
    respond(
        if problem.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        page(&ctx, Some(&tenant), Tab::Inventory, l.t("inventory"), body),
    )
}

fn asset_link(tenant: &str, key: &AssetKey) -> Markup {
    let k = key.to_string();
    html! { a.asset href=(format!("/t/{}/asset?key={}", enc(tenant), enc(&k))) { (k) } }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut c: String = s.chars().take(n).collect();
        c.push('…');
        c
    }
}

fn asset_row(l: Lang, tenant: &str, a: &Asset) -> Markup {
    let f = |k: &str| a.fact(k).unwrap_or("");
    let shown = [f("http.title"), f("banner")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" · ");
    html! {
        tr {
            td { (asset_link(tenant, &a.key)) }
            td { span class=(format!("badge as-{}", a.status.as_str())) { (a.status.as_str()) } }
            td { (f("service")) }
            td { (f("product")) " " (f("version")) }
            td { (f("risk")) }
            td.text { (clip(&shown, 120)) }
            td.nowrap { (l.datetime(a.last_seen)) }
        }
    }
}

/// Every asset matching the filters, streamed by the API's export as an attachment.
pub async fn export(
    State(p): State<P>,
    ctx: Ctx,
    Path(tenant): Path<String>,
    Query(q): Query<InvQuery>,
) -> Response {
    let aq = match q.api() {
        Ok(aq) => aq,
        Err(e) => return api_error(&ctx, Some(&tenant), e),
    };
    let format = some(&q.format);
    let jsonl = format.as_deref() == Some("jsonl");
    let eq = api::ExportQuery {
        kind: aq.kind,
        net: aq.net,
        port: aq.port,
        protocol: aq.protocol,
        service: aq.service,
        product: aq.product,
        risk: aq.risk,
        domain: aq.domain,
        status: aq.status,
        first_seen_from: aq.first_seen_from,
        first_seen_to: aq.first_seen_to,
        last_seen_from: aq.last_seen_from,
        last_seen_to: aq.last_seen_to,
        format,
    };
    match api::export_assets(
        State(p.state.clone()),
        ext(&ctx),
        ApiPath(tenant.clone()),
        ApiQuery(eq),
    )
    .await
    {
        Ok(mut resp) => {
            let name = format!(
                "attachment; filename=\"assets-{}.{}\"",
                tenant,
                if jsonl { "jsonl" } else { "csv" }
            );
            if let Ok(v) = HeaderValue::from_str(&name) {
                resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            resp
        }
        Err(e) => api_error(&ctx, Some(&tenant), e),
    }
}

#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    key: Option<String>,
}

pub async fn asset_page(
    State(p): State<P>,
    ctx: Ctx,
    Path(tenant): Path<String>,
    Query(q): Query<KeyQuery>,
) -> Response {
    let l = ctx.lang;
    let d = match api::get_asset(
        State(p.state.clone()),
        ext(&ctx),
        ApiPath((tenant.clone(), q.key.clone().unwrap_or_default())),
    )
    .await
    {
        Ok(axum::Json(d)) => d,
        Err(e) => return api_error(&ctx, Some(&tenant), e),
    };
    let a = &d.asset;
    // The certificate this service presented, when the store has it as an asset.
    let cert: Option<Asset> = d
        .links
        .iter()
        .find(|k| k.to_string().starts_with("certificate:"))
        .and_then(|k| {
            TenantId::new(&tenant)
                .ok()
                .and_then(|t| p.state.store.asset(&t, k).ok())
        });
    let cert = cert.or_else(|| {
        a.key
            .to_string()
            .starts_with("certificate:")
            .then(|| a.clone())
    });
    let body = html! {
        h1.asset-key { (a.key) }
        p {
            span class=(format!("badge as-{}", a.status.as_str())) { (a.status.as_str()) }
            " " (l.t("first_seen")) ": " (l.datetime(a.first_seen))
            " · " (l.t("last_seen")) ": " (l.datetime(a.last_seen))
            " · " (l.t("times_seen")) ": " (l.number(a.times_seen))
        }
        section.card.highlights {
            dl {
                dt { (l.t("banner")) } dd #banner.text { (a.fact("banner").unwrap_or("—")) }
                dt { (l.t("http_title")) } dd #http-title.text { (a.fact("http.title").unwrap_or("—")) }
                dt { (l.t("favicon")) } dd.text { (a.fact("http.favicon_hash").unwrap_or("—")) }
            }
        }
        @if let Some(c) = &cert { (cert_card(l, &tenant, c)) }
        section.card {
            h2 { (l.t("facts")) }
            table #facts.kv {
                thead { tr { th { (l.t("field")) } th { (l.t("value")) } } }
                tbody { @for (k, v) in &a.facts { tr { td { (k) } td.text { (v) } } } }
            }
        }
        section.card {
            h2 { (l.t("links")) }
            @if d.links.is_empty() { p.muted { (l.t("none")) } }
            ul { @for k in &d.links { li { (asset_link(&tenant, k)) } } }
        }
        section.card {
            h2 { (l.t("findings")) }
            @if d.findings.is_empty() { p.muted { (l.t("none")) } }
            table.list { tbody {
                @for f in &d.findings {
                    tr {
                        td { (layout::severity_badge(f.severity)) }
                        td { a href=(format!("/t/{}/findings/{}", enc(&tenant), enc(&f.id))) { (f.title) } }
                        td { (layout::state_badge(f.state)) }
                        td.nowrap { (l.datetime(f.opened)) }
                    }
                }
            } }
        }
        section.card {
            h2 { (l.t("history")) }
            (timeline(l, &tenant, &d.history, false))
        }
    };
    respond(
        StatusCode::OK,
        page(
            &ctx,
            Some(&tenant),
            Tab::Inventory,
            &a.key.to_string(),
            body,
        ),
    )
}

fn cert_card(l: Lang, tenant: &str, c: &Asset) -> Markup {
    let flags: Vec<&str> = [
        ("self_signed", "self-signed"),
        ("weak_key", "weak key"),
        ("certificate.hostname_mismatch", "hostname mismatch"),
    ]
    .into_iter()
    .filter(|(k, _)| c.fact(k) == Some("true"))
    .map(|(_, label)| label)
    .collect();
    html! {
        section.card #certificate {
            h2 { (l.t("certificate")) " " (asset_link(tenant, &c.key)) }
            @for f in &flags { span.badge.flag { (f) } " " }
            dl {
                @for k in ["subject", "issuer", "sans", "not_before", "not_after", "key_algorithm", "key_bits", "signature_algorithm", "serial"] {
                    @if let Some(v) = c.fact(k) { dt { (k) } dd.text { (v) } }
                }
            }
        }
    }
}

/// Change events as a timeline, newest first, each field change as old → new.
pub fn timeline(l: Lang, tenant: &str, changes: &[Change], with_asset: bool) -> Markup {
    if changes.is_empty() {
        return html! { p.muted { (l.t("no_data")) } };
    }
    html! {
        ol.timeline {
            @for c in changes.iter().rev() {
                li {
                    span.when { (l.datetime(c.at)) }
                    @if with_asset { " " (asset_link(tenant, &c.asset)) }
                    " "
                    @match &c.kind {
                        ChangeKind::Appeared => span.ev.appeared { (l.t("appeared")) },
                        ChangeKind::Disappeared => span.ev.disappeared { (l.t("disappeared")) },
                        ChangeKind::Changed { field, old, new } => {
                            span.ev.changed { (l.t("changed")) } " " code { (field) } ": "
                            del.old title=(l.t("old")) { (old.as_deref().unwrap_or("∅")) }
                            " → "
                            ins.new title=(l.t("new")) { (new.as_deref().unwrap_or("∅")) }
                        }
                    }
                    span.muted { " · " (l.t("scan")) " " (c.scan) " · #" (c.seq) }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    since: Option<String>,
}

const FEED_PAGE: u64 = 100;

pub async fn change_feed(
    State(p): State<P>,
    ctx: Ctx,
    Path(tenant): Path<String>,
    Query(q): Query<FeedQuery>,
) -> Response {
    let l = ctx.lang;
    let count = TenantId::new(&tenant)
        .ok()
        .and_then(|t| p.state.store.change_count(&t).ok())
        .unwrap_or(0);
    // Without a cursor: the latest page. `since` is the last number already read.
    let since = match q.since.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => count.checked_sub(FEED_PAGE + 1),
        Some(s) => match s.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                let e = ApiError::bad_request(format!("since={s:?}: give a change number"));
                return api_error(&ctx, Some(&tenant), e);
            }
        },
    };
    let page_ = match api::changes(
        State(p.state.clone()),
        ext(&ctx),
        ApiPath(tenant.clone()),
        ApiQuery(ChangesQuery {
            since: since.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            limit: Some(FEED_PAGE as u32),
        }),
    )
    .await
    {
        Ok(axum::Json(pg)) => pg,
        Err(e) => return api_error(&ctx, Some(&tenant), e),
    };
    let t = enc(&tenant);
    let older = since.map(|s| s.saturating_sub(FEED_PAGE));
    let body = html! {
        h1 { (l.t("change_feed")) " — " (tenant) }
        nav.pager {
            @if let Some(o) = older.filter(|_| since.is_some_and(|s| s > 0)) {
                a href=(format!("/t/{t}/changes?since={o}")) { "← " (l.t("older")) }
            }
            @if let Some(n) = &page_.next {
                " " a href=(format!("/t/{t}/changes?since={}", enc(n))) { (l.t("newer")) " →" }
            }
        }
        (timeline(l, &tenant, &page_.items, true))
    };
    respond(
        StatusCode::OK,
        page(&ctx, Some(&tenant), Tab::Changes, l.t("changes"), body),
    )
}
