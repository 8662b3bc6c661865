//! The findings board and one finding's page: evidence, lifecycle, comments, and the
//! forms that move it (the API's transition, assignment, comment and verification).

use super::assets::api_error;
use super::layout::{enc, page, query, respond, severity_badge, state_badge, Tab};
use super::{Ctx, P};
use crate::serve::auth::REMEDIATORS;
use crate::serve::error::ApiError;
use crate::serve::extract::{ApiJson, ApiPath, ApiQuery};
use crate::serve::routes_assets::{self as api, Assignment, Comment, FindingQuery};
use aperture_storage::policy::{
    self, Actor, FindingState, Role, Rule, Severity, TransitionRequest,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use serde::de::DeserializeOwned;
use serde::Deserialize;

const STATES: [&str; 9] = [
    "open",
    "acknowledged",
    "in-progress",
    "fixed",
    "closed-verified",
    "closed-sanctioned",
    "closed-by-policy",
    "risk-accepted",
    "false-positive",
];
/// Where a person may move a finding (closing takes a scan).
const MOVES: [&str; 5] = [
    "acknowledged",
    "in-progress",
    "fixed",
    "risk-accepted",
    "false-positive",
];
const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

/// A kebab-case name as the API's enum, or a 400 that says which values there are.
fn parse<T: DeserializeOwned>(field: &str, v: &str, allowed: &[&str]) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(v.to_owned())).map_err(|_| {
        ApiError::bad_request(format!("{field}={v:?}: use one of {}", allowed.join(", ")))
    })
}

fn opt(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

#[derive(Debug, Default, Deserialize)]
pub struct BoardQuery {
    state: Option<String>,
    severity: Option<String>,
    rule: Option<String>,
    assignee: Option<String>,
    asset: Option<String>,
    active: Option<String>,
    overdue: Option<String>,
    cursor: Option<String>,
    /// After a bulk action: how many moved.
    moved: Option<String>,
}

impl BoardQuery {
    fn api(&self) -> Result<FindingQuery, ApiError> {
        let rules: Vec<String> = Rule::ALL.iter().map(|r| r.name()).collect();
        let rule_names: Vec<&str> = rules.iter().map(String::as_str).collect();
        Ok(FindingQuery {
            state: opt(&self.state)
                .map(|s| parse::<FindingState>("state", s, &STATES))
                .transpose()?,
            severity: opt(&self.severity)
                .map(|s| parse::<Severity>("severity", s, &SEVERITIES))
                .transpose()?,
            rule: opt(&self.rule)
                .map(|s| parse::<Rule>("rule", s, &rule_names))
                .transpose()?,
            asset: opt(&self.asset).map(str::to_owned),
            assignee: opt(&self.assignee).map(str::to_owned),
            active: opt(&self.active).map(|v| v == "true"),
            overdue: opt(&self.overdue).map(|v| v == "true"),
            cursor: opt(&self.cursor).map(str::to_owned),
            limit: Some(100),
        })
    }

    fn qs(&self, cursor: Option<&str>) -> String {
        query(&[
            ("state", self.state.as_deref()),
            ("severity", self.severity.as_deref()),
            ("rule", self.rule.as_deref()),
            ("assignee", self.assignee.as_deref()),
            ("asset", self.asset.as_deref()),
            ("active", self.active.as_deref()),
            ("overdue", self.overdue.as_deref()),
            ("cursor", cursor),
        ])
    }
}

pub async fn board(
    State(p): State<P>,
    ctx: Ctx,
    Path(tenant): Path<String>,
    Query(q): Query<BoardQuery>,
) -> Response {
    let l = ctx.lang;
    let result = match q.api() {
        Ok(fq) => api::list_findings(
            State(p.state.clone()),
            Extension(ctx.caller.clone()),
            ApiPath(tenant.clone()),
            ApiQuery(fq),
        )
        .await
        .map(|j| j.0),
        Err(e) => Err(e),
    };
    let (items, next, problem) = match result {
        Ok(pg) => (pg.items, pg.next, None),
        Err(e) if e.status == StatusCode::BAD_REQUEST => (Vec::new(), None, Some(e.detail)),
        Err(e) => return api_error(&ctx, Some(&tenant), e),
    };
    let rules: Vec<String> = Rule::ALL.iter().map(|r| r.name()).collect();
    let t = enc(&tenant);
    let sel = |name: &'static str, options: &[&str], cur: &Option<String>| {
        html! {
            select name=(name) id=(format!("f-{name}")) {
                option value="" { (l.t("any")) }
                @for o in options { option value=(o) selected[cur.as_deref() == Some(*o)] { (o) } }
            }
        }
    };
    let rule_opts: Vec<&str> = rules.iter().map(String::as_str).collect();
    let role = ctx.caller.token.role;
    let may_act = REMEDIATORS.contains(&role);
    let body = html! {
        h1 { (l.t("findings")) " — " (tenant) }
        form.filters method="get" action=(format!("/t/{t}/findings")) {
            label { (l.t("state")) (sel("state", &STATES, &q.state)) }
            label { (l.t("severity")) (sel("severity", &SEVERITIES, &q.severity)) }
            label { (l.t("rule")) (sel("rule", &rule_opts, &q.rule)) }
            label { (l.t("assignee")) input type="text" name="assignee" value=(q.assignee.as_deref().unwrap_or("")); }
            label { (l.t("asset")) input type="text" name="asset" value=(q.asset.as_deref().unwrap_or("")); }
            label.check { input type="checkbox" name="active" value="true" checked[q.active.as_deref() == Some("true")]; (l.t("active_only")) }
            label.check { input type="checkbox" name="overdue" value="true" checked[q.overdue.as_deref() == Some("true")]; (l.t("overdue_only")) }
            div.actions {
                button type="submit" { (l.t("filter")) }
                a href=(format!("/t/{t}/findings")) { (l.t("clear")) }
            }
        }
        @if let Some(pr) = &problem { p.problem role="alert" { (pr) } }
        @if let Some(n) = q.moved.as_deref().and_then(|m| m.parse::<u64>().ok()) { p.notice role="status" { (l.t("moved")) ": " (l.number(n)) } }
        @if may_act {
            // The row checkboxes belong to this form through their form= attribute.
            form #bulk.filters method="post" action=(format!("/t/{t}/findings/bulk")) {
                input type="hidden" name="_csrf" value=(ctx.csrf);
                label { (l.t("move_selected")) select name="to" id="bulk-to" {
                    @for m in MOVES {
                        @if parse::<FindingState>("to", m, &MOVES).map(|s| policy::role_may_move(role, s)).unwrap_or(false) { option value=(m) { (m) } }
                    }
                } }
                label { (l.t("comment")) input type="text" name="comment" id="bulk-comment" maxlength="10000"; }
                div.actions { button #bulk-apply type="submit" { (l.t("apply")) } }
            }
        }
        table #findings.list {
            thead { tr {
                @if may_act { th {} }
                th { (l.t("severity")) } th { (l.t("title")) } th { (l.t("asset")) } th { (l.t("state")) }
                th { (l.t("assignee")) } th { (l.t("opened")) } th { (l.t("due")) }
            } }
            tbody {
                @for v in &items {
                    @let f = &v.finding;
                    tr.overdue[v.overdue] {
                        @if may_act { td { input.pick type="checkbox" name="id" value=(f.id) form="bulk" aria-label=(f.title); } }
                        td { (severity_badge(f.severity)) }
                        td { a href=(format!("/t/{t}/findings/{}", enc(&f.id))) { (f.title) } }
                        td { a href=(format!("/t/{t}/asset?key={}", enc(&f.asset.to_string()))) { (f.asset) } }
                        td { (state_badge(f.state)) }
                        td { (f.assignee.as_deref().unwrap_or("—")) }
                        td.nowrap { (l.datetime(f.opened)) }
                        td.nowrap { @if let Some(d) = f.due { (l.datetime(d)) @if v.overdue { " " span.badge.flag { (l.t("overdue")) } } } @else { "—" } }
                    }
                }
                @if items.is_empty() { tr { td colspan="7" .muted { (l.t("no_data")) } } }
            }
        }
        nav.pager {
            @if q.cursor.is_some() { a href=(format!("/t/{t}/findings{}", q.qs(None))) { (l.t("first_page")) } }
            @if let Some(n) = &next { " " a href=(format!("/t/{t}/findings{}", q.qs(Some(n)))) { (l.t("next_page")) " →" } }
        }
    };
    respond(
        if problem.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        page(&ctx, Some(&tenant), Tab::Findings, l.t("findings"), body),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    done: Option<String>,
}

pub async fn detail(
    State(p): State<P>,
    ctx: Ctx,
    Path((tenant, id)): Path<(String, String)>,
    Query(q): Query<DetailQuery>,
) -> Response {
    let notice = q.done.is_some().then(|| ctx.lang.t("saved").to_owned());
    render_detail(&p, &ctx, &tenant, &id, notice, None).await
}

async fn render_detail(
    p: &P,
    ctx: &Ctx,
    tenant: &str,
    id: &str,
    notice: Option<String>,
    problem: Option<ApiError>,
) -> Response {
    let l = ctx.lang;
    let v = match api::get_finding(
        State(p.state.clone()),
        Extension(ctx.caller.clone()),
        ApiPath((tenant.to_owned(), id.to_owned())),
    )
    .await
    {
        Ok(axum::Json(v)) => v,
        Err(e) => return api_error(ctx, Some(tenant), e),
    };
    let f = &v.finding;
    let role = ctx.caller.token.role;
    let may_act = REMEDIATORS.contains(&role);
    let t = enc(tenant);
    let action = format!("/t/{t}/findings/{}/act", enc(&f.id));
    let actor = |a: &Actor| a.name().to_owned();
    let status = problem.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let body = html! {
        h1 { (severity_badge(f.severity)) " " (f.title) }
        @if let Some(n) = &notice { p.notice role="status" { (n) } }
        @if let Some(e) = &problem { p.problem role="alert" data-status=(e.status.as_u16()) { (e.detail) } }
        p {
            (l.t("state")) ": " span #finding-state { (state_badge(f.state)) }
            " · " (l.t("rule")) ": " code { (f.rule.name()) }
            " · " (l.t("asset")) ": " a href=(format!("/t/{t}/asset?key={}", enc(&f.asset.to_string()))) { (f.asset) }
        }
        p {
            (l.t("opened")) ": " (l.datetime(f.opened))
            " · " (l.t("due")) ": " (f.due.map(|d| l.datetime(d)).unwrap_or_else(|| "—".into()))
            @if v.overdue { " " span.badge.flag { (l.t("overdue")) } }
            " · " (l.t("assignee")) ": " (f.assignee.as_deref().unwrap_or("—"))
        }
        p.text { (f.detail) }
        @if let Some(why) = &f.verification_inconclusive { p.problem { (why) } }
        section.card {
            h2 { (l.t("evidence")) }
            table.kv { tbody { @for (k, val) in &f.evidence { tr { td { (k) } td.text { (val) } } } } }
        }
        @if may_act {
            section.card.actions #act {
                form method="post" action=(action) {
                    input type="hidden" name="_csrf" value=(ctx.csrf);
                    input type="hidden" name="action" value="transition";
                    label { (l.t("move_to")) select name="to" id="move-to" {
                        @for m in MOVES {
                            @let allowed = parse::<FindingState>("to", m, &MOVES).map(|s| policy::role_may_move(role, s)).unwrap_or(false);
                            @if allowed { option value=(m) { (m) } }
                        }
                    } }
                    label { (l.t("comment")) input type="text" name="comment" id="move-comment" maxlength="10000"; }
                    @if matches!(role, Role::Admin | Role::Analyst) {
                        label { (l.t("until")) input type="date" name="until"; }
                    }
                    button type="submit" id="move" { (l.t("apply")) }
                }
                form method="post" action=(action) {
                    input type="hidden" name="_csrf" value=(ctx.csrf);
                    input type="hidden" name="action" value="assign";
                    label { (l.t("assignee")) input type="text" name="assignee" value=(f.assignee.as_deref().unwrap_or("")) maxlength="200"; }
                    button type="submit" { (l.t("assign")) }
                }
                form method="post" action=(action) {
                    input type="hidden" name="_csrf" value=(ctx.csrf);
                    input type="hidden" name="action" value="comment";
                    label { (l.t("comment")) input type="text" name="comment" maxlength="10000" required; }
                    button type="submit" { (l.t("add_comment")) }
                }
                @if f.state == FindingState::Fixed {
                    form method="post" action=(action) {
                        input type="hidden" name="_csrf" value=(ctx.csrf);
                        input type="hidden" name="action" value="verify";
                        button type="submit" id="verify" { (l.t("request_verify")) }
                    }
                }
            }
        } @else {
            p.muted { (l.t("read_only")) }
        }
        section.card {
            h2 { (l.t("lifecycle")) }
            ol.timeline #lifecycle {
                @for tr in f.transitions.iter().rev() {
                    li {
                        span.when { (l.datetime(tr.at)) } " "
                        @if let Some(from) = tr.from { (state_badge(from)) " → " }
                        (state_badge(tr.to))
                        " " span.muted { (l.t("by")) " " (actor(&tr.actor)) }
                        @if !tr.comment.is_empty() { " — " span.text { (tr.comment) } }
                    }
                }
            }
        }
        section.card {
            h2 { (l.t("notes")) }
            @if f.notes.is_empty() { p.muted { (l.t("none")) } }
            ol.timeline { @for n in f.notes.iter().rev() {
                li { span.when { (l.datetime(n.at)) } " " span.muted { (actor(&n.actor)) } ": " span.text { (n.text) } }
            } }
        }
    };
    respond(
        status,
        page(ctx, Some(tenant), Tab::Findings, &f.title, body),
    )
}

#[derive(Debug, Deserialize)]
pub struct ActForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    action: String,
    to: Option<String>,
    comment: Option<String>,
    /// `YYYY-MM-DD`: risk accepted until the start of that day, UTC.
    until: Option<String>,
    assignee: Option<String>,
}

/// One action on a finding from its page: the API's handler does it, and the page shows
/// what it answered (303 back on success, the message on failure).
pub async fn act(
    State(p): State<P>,
    ctx: Ctx,
    headers: HeaderMap,
    Path((tenant, id)): Path<(String, String)>,
    form: Result<Form<ActForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let action_path = format!("POST /t/{tenant}/findings/{id}/act");
    let form = match form {
        Ok(Form(f)) => f,
        Err(e) => {
            let _ = ctx
                .audit(
                    &p.state,
                    Some(&tenant),
                    action_path,
                    StatusCode::BAD_REQUEST,
                )
                .await;
            let err = ApiError::bad_request(format!("the form is not valid: {}", e.body_text()));
            return render_detail(&p, &ctx, &tenant, &id, None, Some(err)).await;
        }
    };
    if let Some(r) = ctx.check_form(&headers, &form.csrf) {
        let _ = ctx
            .audit(&p.state, Some(&tenant), action_path, StatusCode::FORBIDDEN)
            .await;
        return r;
    }
    let action_path = format!("{action_path} ({})", form.action);
    let result = run_action(&p, &ctx, &tenant, &id, &form).await;
    let status = match &result {
        Ok(()) => StatusCode::SEE_OTHER,
        Err(e) => e.status,
    };
    if let Some(r) = ctx
        .audit(&p.state, Some(&tenant), action_path, status)
        .await
    {
        return r;
    }
    match result {
        Ok(()) => Redirect::to(&format!("/t/{}/findings/{}?done=1", enc(&tenant), enc(&id)))
            .into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND => api_error(&ctx, Some(&tenant), e),
        Err(e) => render_detail(&p, &ctx, &tenant, &id, None, Some(e)).await,
    }
}

async fn run_action(
    p: &P,
    ctx: &Ctx,
    tenant: &str,
    id: &str,
    form: &ActForm,
) -> Result<(), ApiError> {
    let state = || State(p.state.clone());
    let caller = || Extension(ctx.caller.clone());
    let path = || ApiPath((tenant.to_owned(), id.to_owned()));
    match form.action.as_str() {
        "transition" => {
            let to = parse::<FindingState>("to", opt(&form.to).unwrap_or(""), &MOVES)?;
            let until = match opt(&form.until) {
                None => None,
                Some(d) => Some(
                    humantime::parse_rfc3339_weak(&format!("{d}T00:00:00Z"))
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_millis() as i64)
                        .ok_or_else(|| {
                            ApiError::bad_request(format!("until={d:?}: give a date, YYYY-MM-DD"))
                        })?,
                ),
            };
            let req = TransitionRequest {
                to,
                comment: form.comment.clone().unwrap_or_default(),
                until,
            };
            let _ = api::transition(state(), caller(), path(), ApiJson(req)).await?;
        }
        "assign" => {
            let body = Assignment {
                assignee: opt(&form.assignee).map(str::to_owned),
            };
            let _ = api::assign(state(), caller(), path(), ApiJson(body)).await?;
        }
        "comment" => {
            let text = opt(&form.comment).unwrap_or("").to_owned();
            if text.is_empty() {
                return Err(ApiError::bad_request("write a comment first"));
            }
            let _ = api::comment(state(), caller(), path(), ApiJson(Comment { text })).await?;
        }
        "verify" => {
            let _ = api::verify(state(), caller(), path()).await?;
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "action={other:?}: use transition, assign, comment or verify"
            )))
        }
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` pairs, repeated keys kept (axum's Form has no
/// sequences). Bounded by the service's body limit.
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    match u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// At most this many findings per bulk action.
const BULK_MAX: usize = 500;

/// One transition for every selected finding, each through the API's handler; the
/// board shows how many moved, or every refusal with its finding.
pub async fn bulk(
    State(p): State<P>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let pairs = form_pairs(&body);
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if let Some(r) = ctx.check_form(&headers, &get("_csrf").unwrap_or_default()) {
        let _ = ctx
            .audit(
                &p.state,
                Some(&tenant),
                format!("POST /t/{tenant}/findings/bulk"),
                StatusCode::FORBIDDEN,
            )
            .await;
        return r;
    }
    let ids: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| v.clone())
        .take(BULK_MAX)
        .collect();
    let comment = get("comment").unwrap_or_default();
    let to = match parse::<FindingState>("to", get("to").as_deref().unwrap_or(""), &MOVES) {
        Ok(t) => t,
        Err(e) => return api_error(&ctx, Some(&tenant), e),
    };
    if ids.is_empty() {
        let e = ApiError::bad_request("select at least one finding");
        return api_error(&ctx, Some(&tenant), e);
    }
    let mut moved = 0u64;
    let mut failed: Vec<(String, ApiError)> = Vec::new();
    for id in &ids {
        let req = TransitionRequest {
            to,
            comment: comment.clone(),
            until: None,
        };
        let r = api::transition(
            State(p.state.clone()),
            Extension(ctx.caller.clone()),
            ApiPath((tenant.clone(), id.clone())),
            ApiJson(req),
        )
        .await;
        let status = match &r {
            Ok(_) => StatusCode::OK,
            Err(e) => e.status,
        };
        if let Some(resp) = ctx
            .audit(
                &p.state,
                Some(&tenant),
                format!("POST /t/{tenant}/findings/bulk ({id} to {})", to.name()),
                status,
            )
            .await
        {
            return resp;
        }
        match r {
            Ok(_) => moved += 1,
            Err(e) => failed.push((id.clone(), e)),
        }
    }
    if failed.is_empty() {
        return Redirect::to(&format!("/t/{}/findings?moved={moved}", enc(&tenant)))
            .into_response();
    }
    let l = ctx.lang;
    let status = failed
        .first()
        .map(|(_, e)| e.status)
        .unwrap_or(StatusCode::BAD_REQUEST);
    let body = html! {
        h1 { (l.t("findings")) " — " (tenant) }
        p.notice { (l.t("moved")) ": " (l.number(moved)) }
        ul.problem role="alert" {
            @for (id, e) in &failed {
                li { a href=(format!("/t/{}/findings/{}", enc(&tenant), enc(id))) { (id) } ": " (e.detail) }
            }
        }
        p { a href=(format!("/t/{}/findings", enc(&tenant))) { (l.t("back")) } }
    };
    respond(
        status,
        page(&ctx, Some(&tenant), Tab::Findings, l.t("findings"), body),
    )
}

#[cfg(test)]
mod tests {
    use super::form_pairs;

    #[test]
    fn form_bodies_keep_repeated_keys_and_decode() {
        let p = form_pairs(b"_csrf=a%2Bb&id=f-1&id=f-2&comment=two+words%21&bad=%zz&end=%4");
        let v = |k: &str| {
            p.iter()
                .filter(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(v("_csrf"), ["a+b"]);
        assert_eq!(v("id"), ["f-1", "f-2"]);
        assert_eq!(v("comment"), ["two words!"]);
        assert_eq!(v("bad"), ["%zz"]);
        assert_eq!(v("end"), ["%4"]);
    }
}
