//! A tenant's settings: its scope, its scan schedules and its policy, each a page with
//! the form that changes it through the API's own handler.
//!
//! The schedule form is a list of fields turned into the API's JSON body
//! ([`ScheduleForm::body`]): a new kind of schedule (calendar windows, ...) is one more
//! field here and one more key there.

use super::assets::api_error;
use super::layout::{enc, page, respond, severity_badge, Tab};
use super::{Ctx, P};
use crate::serve::auth::ANALYSTS;
use crate::serve::error::ApiError;
use crate::serve::extract::{ApiJson, ApiPath};
use crate::serve::routes_assets as assets_api;
use crate::serve::routes_scans::{self as api, NewSchedule};
use aperture_storage::access::Scope;
use aperture_storage::policy::{PolicySettings, Rule, Severity};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Map, Value};

const SEVERITIES: [Severity; 5] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Info,
];

fn sev_name(s: Severity) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn lines(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', '\n', ' ', '\r'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
}

fn problem_box(problem: &Option<ApiError>) -> Markup {
    html! {
        @if let Some(e) = problem {
            p.problem role="alert" data-status=(e.status.as_u16()) { (e.detail) }
            @if !e.refused.is_empty() {
                ul.problem { @for r in &e.refused { li { code { (r.target) } ": " (r.reason) } } }
            }
        }
    }
}

fn status_of(problem: &Option<ApiError>) -> StatusCode {
    problem.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK)
}

/// Audits a portal action by its outcome; Some(page) when the audit log failed.
async fn audited<T>(
    p: &P,
    ctx: &Ctx,
    tenant: &str,
    action: String,
    result: &Result<T, ApiError>,
) -> Option<Response> {
    let status = match result {
        Ok(_) => StatusCode::SEE_OTHER,
        Err(e) => e.status,
    };
    ctx.audit(&p.state, Some(tenant), action, status).await
}

// ---- Scope -------------------------------------------------------------------------

/// The scope form's text, as typed.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ScopeText {
    pub cidrs: String,
    pub domains: String,
    pub exclusions: String,
    pub allow_special: bool,
}

impl ScopeText {
    fn of(s: &Scope) -> ScopeText {
        let join = |v: Vec<String>| v.join("\n");
        ScopeText {
            cidrs: join(s.cidrs.iter().map(|c| c.to_string()).collect()),
            domains: join(s.domains.clone()),
            exclusions: join(s.exclusions.iter().map(|c| c.to_string()).collect()),
            allow_special: s.allow_special,
        }
    }
}

pub async fn scope_page(State(p): State<P>, ctx: Ctx, Path(tenant): Path<String>) -> Response {
    render_scope(&p, &ctx, &tenant, None, None).await
}

pub async fn render_scope(
    p: &P,
    ctx: &Ctx,
    tenant: &str,
    problem: Option<ApiError>,
    edited: Option<ScopeText>,
) -> Response {
    let l = ctx.lang;
    let scope = match api::get_scope(
        State(p.state.clone()),
        Extension(ctx.caller.clone()),
        ApiPath(tenant.to_owned()),
    )
    .await
    {
        Ok(axum::Json(s)) => s,
        Err(e) => return api_error(ctx, Some(tenant), e),
    };
    let f = edited.unwrap_or_else(|| ScopeText::of(&scope));
    let may = ANALYSTS.contains(&ctx.caller.token.role);
    let t = enc(tenant);
    let body = html! {
        h1 { (l.t("scope")) " — " (tenant) }
        (problem_box(&problem))
        p.muted { (l.t("scope.help")) }
        @if may {
            form.stack.card #scope-form method="post" action=(format!("/t/{t}/scope")) {
                input type="hidden" name="_csrf" value=(ctx.csrf);
                label { (l.t("cidrs")) textarea #scope-cidrs name="cidrs" rows="4" { (f.cidrs) } }
                label { (l.t("domains")) textarea #scope-domains name="domains" rows="3" { (f.domains) } }
                label { (l.t("exclusions")) textarea #scope-exclusions name="exclusions" rows="3" { (f.exclusions) } }
                label.check { input type="checkbox" name="allow_special" value="true" checked[f.allow_special]; (l.t("allow_special")) }
                button #scope-save type="submit" { (l.t("save")) }
            }
        } @else {
            div.card {
                p.muted { (l.t("read_only")) }
                dl #scope-view {
                    dt { (l.t("cidrs")) } dd.text { (f.cidrs) }
                    dt { (l.t("domains")) } dd.text { (f.domains) }
                    dt { (l.t("exclusions")) } dd.text { (f.exclusions) }
                }
            }
        }
    };
    respond(
        status_of(&problem),
        page(ctx, Some(tenant), Tab::Scope, l.t("scope"), body),
    )
}

// ---- Schedules ---------------------------------------------------------------------

/// The schedule form's fields, as typed (a refused form comes back as it was).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ScheduleForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    targets: String,
    #[serde(default)]
    ports: String,
    #[serde(default)]
    domains: String,
    #[serde(default)]
    every: String,
    /// minutes, hours or days.
    #[serde(default)]
    unit: String,
    /// `YYYY-MM-DD`, optional: the first run at the start of that day, UTC.
    #[serde(default)]
    first_run: String,
    #[serde(default)]
    grab: Option<String>,
}

impl ScheduleForm {
    fn fresh() -> ScheduleForm {
        ScheduleForm {
            every: "1".into(),
            unit: "days".into(),
            grab: Some("true".into()),
            ..ScheduleForm::default()
        }
    }

    /// The API's request body. Built as JSON, the API's own input, so that fields the
    /// API gains with defaults need nothing here until the form offers them.
    fn body(&self) -> Result<NewSchedule, ApiError> {
        let every: u64 = self.every.trim().parse().map_err(|_| {
            ApiError::bad_request(format!("every={:?}: give a whole number", self.every))
        })?;
        let unit = match self.unit.as_str() {
            "minutes" => 60,
            "hours" => 3_600,
            "days" => 86_400,
            u => {
                return Err(ApiError::bad_request(format!(
                    "unit={u:?}: use minutes, hours or days"
                )))
            }
        };
        let mut request = Map::new();
        request.insert(
            "targets".into(),
            json!(lines(&self.targets).collect::<Vec<_>>()),
        );
        request.insert(
            "domains".into(),
            json!(lines(&self.domains).collect::<Vec<_>>()),
        );
        if !self.ports.trim().is_empty() {
            request.insert("ports".into(), json!(self.ports.trim()));
        }
        request.insert("grab".into(), json!(self.grab.as_deref() == Some("true")));
        let mut body = Map::new();
        body.insert("name".into(), json!(self.name.trim()));
        body.insert("request".into(), Value::Object(request));
        body.insert("interval_secs".into(), json!(every.saturating_mul(unit)));
        if !self.first_run.trim().is_empty() {
            body.insert(
                "first_run".into(),
                json!(format!("{}T00:00:00Z", self.first_run.trim())),
            );
        }
        serde_json::from_value(Value::Object(body))
            .map_err(|e| ApiError::bad_request(format!("the schedule is not valid: {e}")))
    }
}

/// Seconds as the largest whole unit: `90 min` → `1.5 h`; `86400` → `1 day`.
fn interval(l: super::i18n::Lang, secs: u64) -> String {
    if secs.is_multiple_of(86_400) {
        format!("{} {}", secs / 86_400, l.t("unit.days"))
    } else if secs.is_multiple_of(3_600) {
        format!("{} {}", secs / 3_600, l.t("unit.hours"))
    } else {
        format!("{} {}", secs / 60, l.t("unit.minutes"))
    }
}

fn schedule_form(ctx: &Ctx, tenant: &str, f: &ScheduleForm) -> Markup {
    let l = ctx.lang;
    html! {
        form.stack #schedule-form method="post" action=(format!("/t/{}/schedules", enc(tenant))) {
            input type="hidden" name="_csrf" value=(ctx.csrf);
            label { (l.t("name")) input #sch-name type="text" name="name" value=(f.name) required; }
            label { (l.t("targets")) textarea #sch-targets name="targets" rows="2" placeholder="198.18.1.0/24" { (f.targets) } }
            label { (l.t("ports")) input #sch-ports type="text" name="ports" value=(f.ports) placeholder="22,80,443"; }
            label { (l.t("domains")) input #sch-domains type="text" name="domains" value=(f.domains) placeholder="example.com"; }
            div.row {
                label { (l.t("every")) input #sch-every type="number" name="every" min="1" value=(f.every); }
                label { (l.t("unit")) select #sch-unit name="unit" {
                    @for u in ["minutes", "hours", "days"] {
                        option value=(u) selected[f.unit == u] { (l.t(match u { "minutes" => "unit.minutes", "hours" => "unit.hours", _ => "unit.days" })) }
                    }
                } }
                label { (l.t("first_run")) input #sch-first type="date" name="first_run" value=(f.first_run); }
            }
            label.check { input type="checkbox" name="grab" value="true" checked[f.grab.as_deref() == Some("true")]; (l.t("grab")) }
            button #sch-create type="submit" { (l.t("create")) }
        }
    }
}

pub async fn schedules(State(p): State<P>, ctx: Ctx, Path(tenant): Path<String>) -> Response {
    render_schedules(&p, &ctx, &tenant, None, &ScheduleForm::fresh()).await
}

async fn render_schedules(
    p: &P,
    ctx: &Ctx,
    tenant: &str,
    problem: Option<ApiError>,
    f: &ScheduleForm,
) -> Response {
    let l = ctx.lang;
    let list = match api::list_schedules(
        State(p.state.clone()),
        Extension(ctx.caller.clone()),
        ApiPath(tenant.to_owned()),
    )
    .await
    {
        Ok(axum::Json(s)) => s,
        Err(e) => return api_error(ctx, Some(tenant), e),
    };
    let may = ANALYSTS.contains(&ctx.caller.token.role);
    let t = enc(tenant);
    let body = html! {
        h1 { (l.t("schedules")) " — " (tenant) }
        (problem_box(&problem))
        table #schedules.list {
            thead { tr { th { (l.t("name")) } th { (l.t("targets")) } th { (l.t("ports")) } th { (l.t("every")) } th { (l.t("next_run")) } th { (l.t("last_scan")) } th { (l.t("by")) } @if may { th {} } } }
            tbody {
                @for s in &list {
                    tr {
                        td { strong { (s.name) } br; span.muted { (s.id) } }
                        td.text { (s.request.targets.join(", ")) @if !s.request.domains.is_empty() { " " (s.request.domains.join(", ")) } }
                        td.text { (s.request.ports.as_deref().unwrap_or("—")) }
                        td.nowrap {
                            @if let Some(secs) = s.interval_secs { (interval(l, secs)) }
                            @if let Some(w) = &s.window {
                                @if s.interval_secs.is_some() { " · " }
                                (w.cron) " +" (w.duration_mins) " min " (w.tz)
                            }
                        }
                        td.nowrap { (l.datetime(s.next_run)) }
                        td { @if let Some(id) = &s.last_scan { a href=(format!("/t/{t}/scans/{}", enc(id))) { (id) } } @else { "—" } }
                        td { (s.created_by) }
                        @if may {
                            td { form.inline method="post" action=(format!("/t/{t}/schedules/{}/delete", enc(&s.id))) {
                                input type="hidden" name="_csrf" value=(ctx.csrf);
                                button.danger type="submit" id=(format!("delete-{}", s.id)) { (l.t("delete")) }
                            } }
                        }
                    }
                }
                @if list.is_empty() { tr { td colspan="8" .muted { (l.t("no_data")) } } }
            }
        }
        section.card {
            h2 { (l.t("create_schedule")) }
            @if may { (schedule_form(ctx, tenant, f)) } @else { p.muted { (l.t("read_only")) } }
        }
    };
    respond(
        status_of(&problem),
        page(ctx, Some(tenant), Tab::Schedules, l.t("schedules"), body),
    )
}

pub async fn create_schedule(
    State(p): State<P>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    form: Result<Form<ScheduleForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        let e = ApiError::bad_request("the form is not valid: reload the page and try again");
        return render_schedules(&p, &ctx, &tenant, Some(e), &ScheduleForm::fresh()).await;
    };
    if let Some(r) = ctx.check_form(&headers, &f.csrf) {
        return r;
    }
    let result = match f.body() {
        Ok(body) => api::create_schedule(
            State(p.state.clone()),
            Extension(ctx.caller.clone()),
            ApiPath(tenant.clone()),
            ApiJson(body),
        )
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    let action = format!("POST /t/{tenant}/schedules");
    if let Some(r) = audited(&p, &ctx, &tenant, action, &result).await {
        return r;
    }
    match result {
        Ok(()) => Redirect::to(&format!("/t/{}/schedules", enc(&tenant))).into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND => api_error(&ctx, Some(&tenant), e),
        Err(e) => render_schedules(&p, &ctx, &tenant, Some(e), &f).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(rename = "_csrf")]
    csrf: String,
}

pub async fn delete_schedule(
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
    let result = api::delete_schedule(
        State(p.state.clone()),
        Extension(ctx.caller.clone()),
        ApiPath((tenant.clone(), id.clone())),
    )
    .await;
    let action = format!("POST /t/{tenant}/schedules/{id}/delete");
    if let Some(r) = audited(&p, &ctx, &tenant, action, &result).await {
        return r;
    }
    match result {
        Ok(_) => Redirect::to(&format!("/t/{}/schedules", enc(&tenant))).into_response(),
        Err(e) => api_error(&ctx, Some(&tenant), e),
    }
}

// ---- Policy ------------------------------------------------------------------------

pub async fn policy(State(p): State<P>, ctx: Ctx, Path(tenant): Path<String>) -> Response {
    render_policy(&p, &ctx, &tenant, None, None).await
}

async fn render_policy(
    p: &P,
    ctx: &Ctx,
    tenant: &str,
    problem: Option<ApiError>,
    edited: Option<PolicySettings>,
) -> Response {
    let l = ctx.lang;
    let current = match assets_api::get_policy(
        State(p.state.clone()),
        Extension(ctx.caller.clone()),
        ApiPath(tenant.to_owned()),
    )
    .await
    {
        Ok(axum::Json(s)) => s,
        Err(e) => return api_error(ctx, Some(tenant), e),
    };
    let s = edited.unwrap_or(current);
    let may = ANALYSTS.contains(&ctx.caller.token.role);
    let t = enc(tenant);
    let sev_select = |name: String, id: String, now: Severity| {
        html! {
            select name=(name) id=(id) disabled[!may] {
                @for v in SEVERITIES { option value=(sev_name(v)) selected[v == now] { (sev_name(v)) } }
            }
        }
    };
    let body = html! {
        h1 { (l.t("policy")) " — " (tenant) }
        (problem_box(&problem))
        @if !may { p.muted { (l.t("read_only")) } }
        form #policy-form method="post" action=(format!("/t/{t}/policy")) {
            input type="hidden" name="_csrf" value=(ctx.csrf);
            section.grid {
                div.card {
                    h2 { (l.t("sla")) }
                    p.muted { (l.t("sla.help")) }
                    dl {
                        @for sev in SEVERITIES {
                            dt { (severity_badge(sev)) }
                            dd { input type="number" min="0" max="36500" name=(format!("sla.{}", sev_name(sev))) id=(format!("sla-{}", sev_name(sev)))
                                value=(s.sla_days.get(&sev).map(|d| d.to_string()).unwrap_or_default()) disabled[!may]; " " (l.t("days")) }
                        }
                    }
                }
                div.card {
                    h2 { (l.t("thresholds")) }
                    dl {
                        dt { (l.t("zombie_days")) } dd { input #zombie-days type="number" min="0" max="36500" name="zombie_days" value=(s.zombie_days) disabled[!may]; " " (l.t("days")) }
                        dt { (l.t("expiring_days")) } dd { input #expiring-days type="number" min="0" max="36500" name="expiring_days" value=(s.expiring_days) disabled[!may]; " " (l.t("days")) }
                    }
                    label { (l.t("risky_classes")) br; textarea #risky-classes name="risky_classes" rows="4" disabled[!may] { (s.risky_classes.iter().cloned().collect::<Vec<_>>().join("\n")) } }
                    p { label.check { input type="checkbox" name="cleartext_auth_is_risky" value="true" checked[s.cleartext_auth_is_risky] disabled[!may]; (l.t("cleartext_risky")) } }
                    p { label.check { input #login-checks type="checkbox" name="login_checks" value="true" checked[s.login_checks] disabled[!may]; (l.t("login_checks")) } }
                }
            }
            section.grid {
                div.card {
                    h2 { (l.t("rule_severities")) }
                    table.list { tbody {
                        @for r in Rule::ALL {
                            tr { td { code { (r.name()) } } td { (sev_select(format!("rule.{}", r.name()), format!("rule-{}", r.name()), s.severity(r))) } }
                        }
                    } }
                }
                div.card {
                    h2 { (l.t("unauth_severities")) }
                    table.list { tbody {
                        @for (check, sev) in &s.unauth_severities {
                            tr { td { code { (check) } } td { (sev_select(format!("unauth.{check}"), format!("unauth-{check}"), *sev)) } }
                        }
                    } }
                }
            }
            @if may { button #policy-save type="submit" { (l.t("save")) } }
        }
    };
    respond(
        status_of(&problem),
        page(ctx, Some(tenant), Tab::Policy, l.t("policy"), body),
    )
}

/// The settings a policy form gives, over the current ones: every field the form shows
/// is read from it; what it does not show stays.
fn policy_of(
    current: &PolicySettings,
    pairs: &[(String, String)],
) -> Result<PolicySettings, ApiError> {
    let mut s = current.clone();
    s.sla_days.clear();
    s.risky_classes.clear();
    s.cleartext_auth_is_risky = false;
    s.login_checks = false;
    let days = |k: &str, v: &str| -> Result<u32, ApiError> {
        v.trim().parse::<u32>().map_err(|_| {
            ApiError::bad_request(format!(
                "{k}={v:?}: give a whole number of days, 0 to 36500"
            ))
        })
    };
    let sev = |k: &str, v: &str| -> Result<Severity, ApiError> {
        serde_json::from_value(json!(v)).map_err(|_| {
            ApiError::bad_request(format!(
                "{k}={v:?}: use critical, high, medium, low or info"
            ))
        })
    };
    for (k, v) in pairs {
        if let Some(name) = k.strip_prefix("sla.") {
            if v.trim().is_empty() {
                continue;
            }
            s.sla_days.insert(sev(k, name)?, days(k, v)?);
        } else if let Some(rule) = k.strip_prefix("rule.") {
            let rule: Rule = serde_json::from_value(json!(rule))
                .map_err(|_| ApiError::bad_request(format!("{k}: no such rule")))?;
            s.severities.insert(rule, sev(k, v)?);
        } else if let Some(check) = k.strip_prefix("unauth.") {
            s.unauth_severities.insert(check.to_owned(), sev(k, v)?);
        } else {
            match k.as_str() {
                "zombie_days" => s.zombie_days = days(k, v)?,
                "expiring_days" => s.expiring_days = days(k, v)?,
                "risky_classes" => {
                    s.risky_classes = lines(v).map(str::to_ascii_lowercase).collect()
                }
                "cleartext_auth_is_risky" => s.cleartext_auth_is_risky = v == "true",
                "login_checks" => s.login_checks = v == "true",
                _ => {}
            }
        }
    }
    Ok(s)
}

pub async fn save_policy(
    State(p): State<P>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    form: Result<Form<Vec<(String, String)>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(pairs)) = form else {
        let e = ApiError::bad_request("the form is not valid: reload the page and try again");
        return render_policy(&p, &ctx, &tenant, Some(e), None).await;
    };
    let csrf = pairs
        .iter()
        .find(|(k, _)| k == "_csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if let Some(r) = ctx.check_form(&headers, csrf) {
        return r;
    }
    let current = match assets_api::get_policy(
        State(p.state.clone()),
        Extension(ctx.caller.clone()),
        ApiPath(tenant.clone()),
    )
    .await
    {
        Ok(axum::Json(s)) => s,
        Err(e) => return api_error(&ctx, Some(&tenant), e),
    };
    let wanted = policy_of(&current, &pairs);
    let kept = wanted.as_ref().ok().cloned();
    let result = match wanted {
        Ok(s) => assets_api::put_policy(
            State(p.state.clone()),
            Extension(ctx.caller.clone()),
            ApiPath(tenant.clone()),
            ApiJson(s),
        )
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    let action = format!("POST /t/{tenant}/policy");
    if let Some(r) = audited(&p, &ctx, &tenant, action, &result).await {
        return r;
    }
    match result {
        Ok(()) => Redirect::to(&format!("/t/{}/policy", enc(&tenant))).into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND => api_error(&ctx, Some(&tenant), e),
        Err(e) => render_policy(&p, &ctx, &tenant, Some(e), kept).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_form_reads_every_field_it_shows_and_keeps_the_rest() {
        let cur = PolicySettings::default();
        let pairs: Vec<(String, String)> = [
            ("_csrf", "x"),
            ("sla.critical", "3"),
            ("sla.low", ""),
            ("zombie_days", "45"),
            ("expiring_days", "10"),
            ("risky_classes", "Database\nremote-administration"),
            ("rule.new-asset", "high"),
            ("login_checks", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = policy_of(&cur, &pairs).expect("valid");
        assert_eq!(s.sla_days.get(&Severity::Critical), Some(&3));
        assert_eq!(s.sla_days.get(&Severity::Low), None, "blank: no due date");
        assert_eq!((s.zombie_days, s.expiring_days), (45, 10));
        assert!(s.risky_classes.contains("database"));
        assert_eq!(s.severity(Rule::NewAsset), Severity::High);
        assert!(s.login_checks && !s.cleartext_auth_is_risky);
        assert_eq!(s.unauth_severities, cur.unauth_severities);
        let bad = vec![("zombie_days".to_owned(), "soon".to_owned())];
        let e = policy_of(&cur, &bad).expect_err("refused");
        assert!(e.detail.contains("zombie_days"), "{}", e.detail);
    }

    #[test]
    fn a_schedule_form_becomes_the_api_body() {
        let f = ScheduleForm {
            name: "nightly".into(),
            targets: "198.18.0.0/24\n198.18.1.1".into(),
            ports: "22,443".into(),
            every: "6".into(),
            unit: "hours".into(),
            first_run: "2026-12-08".into(),
            grab: Some("true".into()),
            ..ScheduleForm::default()
        };
        let b = f.body().expect("valid");
        assert_eq!(b.interval_secs, Some(6 * 3600));
        assert_eq!(b.request.targets.len(), 2);
        assert_eq!(b.request.ports.as_deref(), Some("22,443"));
        assert!(b.first_run.is_some());
        let bad = ScheduleForm {
            every: "x".into(),
            ..f.clone()
        };
        assert!(bad.body().is_err());
    }
}
