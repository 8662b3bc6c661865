//! The page shell, the navigation and the small pieces every screen uses. maud escapes
//! every `(value)` it writes; nothing here writes unescaped text.

use super::i18n::Lang;
use super::Ctx;
use aperture_storage::policy::{FindingState, Severity};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

/// Which tab of the navigation is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Home,
    Dashboard,
    Inventory,
    Changes,
    Findings,
    Scans,
    Schedules,
    Sanctions,
    Scope,
    Policy,
    Admin,
}

/// A whole page for a signed-in user.
pub fn page(ctx: &Ctx, tenant: Option<&str>, tab: Tab, title: &str, body: Markup) -> Markup {
    let l = ctx.lang;
    let link = |t: Tab, href: String, key: &'static str| {
        html! {
            a href=(href) class=@if t == tab { "current" } { (l.t(key)) }
        }
    };
    let nav = html! {
        nav.top {
            a.brand href="/" { (l.t("app")) }
            @if let Some(t) = tenant {
                span.tenant { (l.t("tenant")) ": " strong { (t) } }
                (link(Tab::Dashboard, format!("/t/{}", enc(t)), "dashboard"))
                (link(Tab::Inventory, format!("/t/{}/assets", enc(t)), "inventory"))
                (link(Tab::Changes, format!("/t/{}/changes", enc(t)), "changes"))
                (link(Tab::Findings, format!("/t/{}/findings", enc(t)), "findings"))
                (link(Tab::Scans, format!("/t/{}/scans", enc(t)), "scans"))
                (link(Tab::Schedules, format!("/t/{}/schedules", enc(t)), "schedules"))
                (link(Tab::Sanctions, format!("/t/{}/sanctions", enc(t)), "sanctions"))
                (link(Tab::Scope, format!("/t/{}/scope", enc(t)), "scope"))
                (link(Tab::Policy, format!("/t/{}/policy", enc(t)), "policy"))
            }
            (link(Tab::Home, "/".into(), "tenants"))
            @if ctx.caller.token.role == aperture_storage::policy::Role::Admin {
                (link(Tab::Admin, "/admin".into(), "admin"))
            }
            span.spacer {}
            (lang_switch(l, &ctx.path))
            span.who title=(l.t("signed_in_as")) {
                (ctx.caller.token.name) " · " (super::role_label(l, ctx.caller.token.role))
            }
            form.inline method="post" action="/signout" {
                input type="hidden" name="_csrf" value=(ctx.csrf);
                button type="submit" id="signout" { (l.t("signout")) }
            }
        }
    };
    shell(l, title, nav, body)
}

/// A page without a session (sign-in, errors before sign-in).
pub fn bare(lang: Lang, path: &str, title: &str, body: Markup) -> Markup {
    let nav = html! {
        nav.top {
            a.brand href="/" { (lang.t("app")) }
            span.spacer {}
            (lang_switch(lang, path))
        }
    };
    shell(lang, title, nav, body)
}

fn shell(lang: Lang, title: &str, nav: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.html_lang()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — " (lang.t("app")) }
                link rel="stylesheet" href="/static/app.css";
                link rel="icon" href="/static/favicon.svg" type="image/svg+xml";
            }
            body {
                (nav)
                main { (body) }
            }
        }
    }
}

fn lang_switch(lang: Lang, path: &str) -> Markup {
    html! {
        span.lang title=(lang.t("language")) {
            @for (code, label) in [("en", "English"), ("zh", "中文")] {
                @if code == lang.code() {
                    strong { (label) }
                } @else {
                    a href=(format!("/lang/{code}?next={}", enc(path))) hreflang=(code) id=(format!("lang-{code}")) { (label) }
                }
                " "
            }
        }
    }
}

/// An HTML response with a status.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A readable error for a signed-in user: the API's own message, escaped.
pub fn error(ctx: &Ctx, tenant: Option<&str>, status: StatusCode, detail: &str) -> Response {
    let l = ctx.lang;
    let heading = heading_of(l, status);
    respond(
        status,
        page(
            ctx,
            tenant,
            Tab::Home,
            heading,
            html! {
                h1 { (heading) }
                p.problem role="alert" data-status=(status.as_u16()) { (detail) }
                p { a href="/" { (l.t("back")) } }
            },
        ),
    )
}

pub fn heading_of(l: Lang, status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => l.t("not_found"),
        StatusCode::FORBIDDEN => l.t("forbidden"),
        _ => l.t("error"),
    }
}

/// Percent-encoding of a path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from pairs, empty values left out.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", enc(v)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

pub fn severity_badge(s: Severity) -> Markup {
    let name = serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    html! { span class=(format!("badge sev-{name}")) { (name) } }
}

pub fn state_badge(s: FindingState) -> Markup {
    let name = s.name();
    html! { span class=(format!("badge st-{name}")) { (name) } }
}

/// A horizontal bar chart of (label, count), drawn on the server as SVG.
pub fn bars(lang: Lang, rows: &[(String, u64)], class: &str) -> Markup {
    if rows.is_empty() {
        return html! { p.muted { (lang.t("no_data")) } };
    }
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let row_h = 22;
    let height = rows.len() * row_h;
    html! {
        svg class=(format!("bars {class}")) viewBox=(format!("0 0 400 {height}")) width="100%" role="img" {
            @for (i, (label, n)) in rows.iter().enumerate() {
                @let y = i * row_h;
                @let w = (*n as f64 / max as f64 * 220.0).max(1.0);
                text x="0" y=(y + 15) class="label" { (label) }
                rect x="140" y=(y + 4) width=(format!("{w:.1}")) height="14" class=(format!("bar b-{}", label.replace(|c: char| !c.is_ascii_alphanumeric(), "-"))) {}
                text x=(format!("{:.1}", 146.0 + w)) y=(y + 15) class="num" { (lang.number(*n)) }
            }
        }
    }
}

/// The shrinkage curve: exposed hosts and services per day, as two SVG polylines.
pub fn shrinkage(lang: Lang, days: &[aperture_storage::DayCount]) -> Markup {
    if days.is_empty() {
        return html! { p.muted { (lang.t("no_data")) } };
    }
    let (w, h, pad) = (600.0f64, 200.0f64, 30.0f64);
    let max = days
        .iter()
        .map(|d| d.hosts.max(d.services))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let n = days.len();
    let x = |i: usize| {
        if n == 1 {
            w / 2.0
        } else {
            pad + i as f64 * (w - 2.0 * pad) / (n - 1) as f64
        }
    };
    let y = |v: u64| h - pad - v as f64 / max * (h - 2.0 * pad);
    let line = |f: &dyn Fn(&aperture_storage::DayCount) -> u64| {
        days.iter()
            .enumerate()
            .map(|(i, d)| format!("{:.1},{:.1}", x(i), y(f(d))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let first = days.first().map(|d| d.day.as_str()).unwrap_or("");
    let last = days.last().map(|d| d.day.as_str()).unwrap_or("");
    html! {
        svg.chart id="shrinkage" viewBox=(format!("0 0 {w} {h}")) width="100%" role="img" {
            line x1=(pad) y1=(h - pad) x2=(w - pad) y2=(h - pad) class="axis" {}
            line x1=(pad) y1=(pad) x2=(pad) y2=(h - pad) class="axis" {}
            text x=(pad) y=(h - 8.0) class="label" { (lang.short_day(first)) }
            text x=(w - pad) y=(h - 8.0) class="label end" { (lang.short_day(last)) }
            text x="2" y=(pad) class="label" { (lang.number(max as u64)) }
            polyline points=(line(&|d| d.services)) class="services" {}
            polyline points=(line(&|d| d.hosts)) class="hosts" {}
            @for (i, d) in days.iter().enumerate() {
                circle cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(d.services))) r="3" class="services" {
                    title { (d.day) ": " (lang.number(d.services)) " " (lang.t("services")) ", " (lang.number(d.hosts)) " " (lang.t("hosts")) }
                }
                circle cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(d.hosts))) r="3" class="hosts" {}
            }
        }
        p.legend {
            span.key.services {} (lang.t("services")) " "
            span.key.hosts {} (lang.t("hosts"))
        }
    }
}
