//! Changing an alert channel in place: new settings for the same id and kind. This is
//! how secrets are given again after a tenant's import (exports never carry them), and
//! how a rotated robot URL, signing secret or relay password is set without deleting
//! the rules and report settings that name the channel. The answer shows the channel
//! as every other route does: never its URL's path, secret or password.

use super::auth::{Caller, ANALYSTS};
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiPath};
use super::routes_alerts::{ChannelView, NewChannel};
use super::state::{now_ms, SharedState};
use aperture_notify::{Channel, ChannelKind};
use axum::extract::State;
use axum::{Extension, Json};

/// Replaces a channel's settings (analyst or admin): the whole body as on creation,
/// with the path's id and the channel's kind. A channel imported without its secrets
/// (`needs_secret`) sends again from then on.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/alerts/channels/{channel}", tag = "alerts", security(("bearer" = [])),
    params(("tenant" = String, Path), ("channel" = String, Path)), request_body = NewChannel,
    responses((status = 200, body = ChannelView), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The body's id or kind differs from the stored channel's.")))]
pub async fn put_channel(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<NewChannel>,
) -> ApiResult<Json<ChannelView>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    // A channel that is not there is that, whatever the body says.
    state.store.channel(&t, &id)?;
    // 409, not 400: the body is well formed, but this channel's id is the path's.
    if body.id != id {
        return Err(ApiError::conflict(
            "id: the body's id differs from the path's; a channel's id cannot change (create a new channel instead)",
        ));
    }
    let kind = ChannelKind::parse(&body.kind).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let channel = Channel {
        id,
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
    let stored = tokio::task::spawn_blocking(move || store.replace_channel(&t, &channel))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(stored.into()))
}
