//! Alert routes: a tenant's channels (whose URLs and secrets are never shown again after
//! creation), its rules, a channel test, and the outbox's waiting deliveries and dead
//! letters (replayable). Every change is audited by the middleware like any other.

use super::alerts;
use super::auth::{Caller, ANALYSTS, READERS};
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiPath};
use super::state::{now_ms, SharedState};
use aperture_notify::channel::redact_url;
use aperture_notify::rule::parse_events;
use aperture_notify::{
    AlertRule, Channel, ChannelKind, EmailSettings, Event, EventKind, QuietHours, Severity,
};
use aperture_storage::outbox::{validate_id, Delivery};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// 1-64 of letters, digits, '-', '_'.
    pub id: String,
    pub name: String,
    /// webhook, slack, teams, dingtalk, wecom, feishu or email.
    pub kind: String,
    /// The receiver's URL (a chat robot's webhook URL); not for email.
    #[serde(default)]
    pub url: String,
    /// webhook: the HMAC-SHA256 key (16+ characters); dingtalk, feishu: the robot's
    /// signing secret, if it has one.
    #[serde(default)]
    pub secret: Option<String>,
    /// For kind email: the SMTP relay and the addresses.
    #[serde(default)]
    pub email: Option<EmailSettings>,
}

/// A channel as shown: the URL cut to its host, the secret only as a flag.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    pub id: String,
    pub name: String,
    pub kind: ChannelKind,
    pub url: String,
    pub has_secret: bool,
    /// An email channel's recipients.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Imported without its URL, secret or password: nothing is sent through it until
    /// they are given again with `PUT …/alerts/channels/{channel}`.
    pub needs_secret: bool,
    pub created: i64,
    pub created_by: String,
}

impl From<Channel> for ChannelView {
    fn from(c: Channel) -> Self {
        ChannelView {
            id: c.id,
            name: c.name,
            kind: c.kind,
            url: match &c.email {
                Some(e) => format!("smtp://{}:{}", e.host, e.port),
                None => redact_url(&c.url),
            },
            has_secret: c.secret.is_some()
                || c.email.as_ref().is_some_and(|e| e.password.is_some()),
            recipients: c.email.map(|e| e.to).unwrap_or_default(),
            needs_secret: c.needs_secret,
            created: c.created,
            created_by: c.created_by,
        }
    }
}

/// A rule as written by users.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// Required on create; on replace, the path's id.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    /// finding.opened, asset.new, finding.overdue, verification.result,
    /// certificate.expiring, scan.failed.
    pub events: Vec<String>,
    #[serde(default)]
    pub min_severity: Option<Severity>,
    #[serde(default)]
    pub within_days: Option<u32>,
    pub channels: Vec<String>,
    #[serde(default)]
    pub digest_minutes: Option<u32>,
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl RuleBody {
    fn into_rule(self, id: String) -> ApiResult<AlertRule> {
        let events =
            parse_events(&self.events).map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(AlertRule {
            id,
            name: self.name,
            events,
            min_severity: self.min_severity,
            within_days: self.within_days,
            channels: self.channels,
            digest_minutes: self.digest_minutes,
            quiet_hours: self.quiet_hours,
            enabled: self.enabled,
        })
    }
}

/// The answer to a channel test.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestReport {
    pub delivered: bool,
    /// The id the test message carried.
    pub event_id: String,
    /// The receiver's HTTP status (0: no HTTP answer) and (the start of) its answer, or
    /// why it was not delivered.
    pub status: u16,
    pub answer: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Outbox {
    pub waiting: usize,
    /// The first 100 by due time.
    pub deliveries: Vec<Delivery>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}

/// The tenant's channels.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/alerts/channels", tag = "alerts", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, body = [ChannelView]), (status = 404, body = Problem)))]
pub async fn list_channels(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Vec<ChannelView>>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(
        state
            .store
            .channels(&t)?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Creates a channel. Its URL and secret are not shown again.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/alerts/channels", tag = "alerts", security(("bearer" = [])),
    params(("tenant" = String, Path)), request_body = NewChannel,
    responses((status = 201, body = ChannelView), (status = 400, body = Problem), (status = 409, body = Problem)))]
pub async fn create_channel(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<NewChannel>,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let kind = ChannelKind::parse(&body.kind).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let channel = Channel {
        id: body.id,
        name: body.name.trim().to_owned(),
        kind,
        url: body.url,
        secret: body.secret,
        email: body.email,
        created: now_ms(),
        created_by: caller.name(),
        needs_secret: false,
    };
    let store = state.store.clone();
    let stored = channel.clone();
    blocking(move || Ok(store.create_channel(&t, &stored)?)).await?;
    Ok((StatusCode::CREATED, Json(channel.into())))
}

/// One channel.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/alerts/channels/{channel}", tag = "alerts", security(("bearer" = [])),
    params(("tenant" = String, Path), ("channel" = String, Path)),
    responses((status = 200, body = ChannelView), (status = 404, body = Problem)))]
pub async fn get_channel(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<ChannelView>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(state.store.channel(&t, &id)?.into()))
}

/// Deletes a channel no rule uses.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/alerts/channels/{channel}", tag = "alerts", security(("bearer" = [])),
    params(("tenant" = String, Path), ("channel" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_channel(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let store = state.store.clone();
    blocking(move || Ok(store.delete_channel(&t, &id)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a test event to the channel now and reports the receiver's answer: `delivered`
/// says whether it took the message, `answer` what it said (or why it could not be
/// reached, and what to check). The test itself succeeds either way (200).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/alerts/channels/{channel}/test", tag = "alerts", security(("bearer" = [])),
    params(("tenant" = String, Path), ("channel" = String, Path)),
    responses((status = 200, body = TestReport), (status = 404, body = Problem)))]
pub async fn test_channel(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<TestReport>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let channel = state.store.channel(&t, &id)?;
    let now = now_ms();
    let event = Event {
        id: format!("{t}.test-{id}-{now}"),
        kind: EventKind::Test,
        tenant: t.to_string(),
        at: now,
        title: format!("test of channel {id}, asked by {}", caller.name()),
        severity: None,
        asset: None,
        finding: None,
        detail: BTreeMap::new(),
    };
    let timeout = state.config.alert_timeout_ms;
    blocking(move || {
        let agent = alerts::agent(timeout);
        match alerts::deliver(&agent, &channel, &event.id, std::slice::from_ref(&event)) {
            Ok((status, answer)) => Ok(Json(TestReport {
                delivered: true,
                event_id: event.id,
                status,
                answer: answer.chars().take(500).collect(),
            })),
            Err(e) => Ok(Json(TestReport {
                delivered: false,
                event_id: event.id,
                status: 0,
                answer: format!("the test message was not delivered: {e}. Check the channel's URL and secret (PUT the channel again to change them) and that the receiver is up"),
            })),
        }
    })
    .await
}

/// The tenant's rules.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/alerts/rules", tag = "alerts", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, body = [AlertRule]), (status = 404, body = Problem)))]
pub async fn list_rules(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Vec<AlertRule>>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(state.store.alert_rules(&t)?))
}

/// Creates a rule.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/alerts/rules", tag = "alerts", security(("bearer" = [])),
    params(("tenant" = String, Path)), request_body = RuleBody,
    responses((status = 201, body = AlertRule), (status = 400, body = Problem), (status = 409, body = Problem)))]
pub async fn create_rule(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<RuleBody>,
) -> ApiResult<(StatusCode, Json<AlertRule>)> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let id = body.id.clone().ok_or_else(|| {
        ApiError::bad_request("id: give the new rule an id (1-64 of letters, digits, '-', '_')")
    })?;
    validate_id("rule", &id)?;
    let rule = body.into_rule(id)?;
    let store = state.store.clone();
    let stored = rule.clone();
    blocking(move || Ok(store.put_alert_rule(&t, &stored, true)?)).await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

/// One rule.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/alerts/rules/{rule}", tag = "alerts", security(("bearer" = [])),
    params(("tenant" = String, Path), ("rule" = String, Path)),
    responses((status = 200, body = AlertRule), (status = 404, body = Problem)))]
pub async fn get_rule(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<AlertRule>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(state.store.alert_rule(&t, &id)?))
}

/// Replaces a rule.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/alerts/rules/{rule}", tag = "alerts", security(("bearer" = [])),
    params(("tenant" = String, Path), ("rule" = String, Path)), request_body = RuleBody,
    responses((status = 200, body = AlertRule), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn put_rule(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RuleBody>,
) -> ApiResult<Json<AlertRule>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    // A rule that is not there is that, whatever the body says.
    state.store.alert_rule(&t, &id)?;
    // 409, not 400: the body is well formed, but this rule's id is the path's.
    if body.id.as_deref().is_some_and(|b| b != id) {
        return Err(ApiError::conflict(
            "id: the body's id differs from the path's; a rule's id cannot change (create a new rule instead)",
        ));
    }
    let rule = body.into_rule(id)?;
    let store = state.store.clone();
    let stored = rule.clone();
    blocking(move || Ok(store.put_alert_rule(&t, &stored, false)?)).await?;
    Ok(Json(rule))
}

/// Deletes a rule. Deliveries it already queued are still sent.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/alerts/rules/{rule}", tag = "alerts", security(("bearer" = [])),
    params(("tenant" = String, Path), ("rule" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_rule(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let store = state.store.clone();
    blocking(move || Ok(store.delete_alert_rule(&t, &id)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deliveries waiting to be sent (due now, retrying, or gathering into a digest).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/alerts/outbox", tag = "alerts", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, body = Outbox), (status = 404, body = Problem)))]
pub async fn outbox(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Outbox>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let mut all = state.store.pending_deliveries(&t)?;
    let waiting = all.len();
    all.truncate(100);
    Ok(Json(Outbox {
        waiting,
        deliveries: all,
    }))
}

/// Deliveries that ran out of attempts, with their last error.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/alerts/dead-letters", tag = "alerts", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, body = [Delivery]), (status = 404, body = Problem)))]
pub async fn dead_letters(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Vec<Delivery>>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(state.store.dead_letters(&t)?))
}

/// Puts a dead letter back in the outbox, due now, with fresh attempts.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/alerts/dead-letters/{letter}/replay", tag = "alerts", security(("bearer" = [])),
    params(("tenant" = String, Path), ("letter" = String, Path)),
    responses((status = 200, body = Delivery), (status = 404, body = Problem)))]
pub async fn replay(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Delivery>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let store = state.store.clone();
    let d = blocking(move || Ok(store.replay_dead_letter(&t, &id, now_ms())?)).await?;
    Ok(Json(d))
}
