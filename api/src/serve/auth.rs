//! Bearer tokens, who may touch which tenant, and the middleware that authenticates,
//! rate-limits, measures and audits every request.

use super::error::{ApiError, ApiResult};
use super::state::{now_ms, LatencyLabels, RouteLabels, SharedState};
use aperture_storage::access::{AuditRecord, Token};
use aperture_storage::policy::{Actor, Role};
use aperture_storage::TenantId;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::Instant;

/// Tokens start with this, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "apt_";

/// A new secret: 192 random bits, URL-safe. Returned once, stored only as its hash.
pub fn new_secret() -> Result<String, String> {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A token record for a fresh secret.
pub fn token_for(
    secret: &str,
    name: &str,
    role: Role,
    tenants: Vec<TenantId>,
    created_by: &str,
) -> Result<Token, String> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err("token name: give 1-100 characters".into());
    }
    let name = name.trim();
    if name.is_empty() {
        return Err("token name: give 1-100 characters".into());
    }
    let mut id_bytes = [0u8; 6];
    getrandom::getrandom(&mut id_bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(Token {
        id: format!(
            "tok-{}",
            id_bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
        name: name.to_owned(),
        role,
        tenants,
        prefix: secret.chars().take(TOKEN_PREFIX.len() + 6).collect(),
        sha256: hash_secret(secret),
        created: now_ms(),
        created_by: created_by.to_owned(),
        revoked: None,
    })
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: Token,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor::User {
            name: format!("{} ({})", self.token.name, self.token.id),
            role: self.token.role,
        }
    }

    pub fn name(&self) -> String {
        format!("{} ({})", self.token.name, self.token.id)
    }

    pub fn require_admin(&self) -> ApiResult<()> {
        if self.token.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs an admin token"))
        }
    }

    /// The tenant named in a path, if this caller may see it at all (else 404, so other
    /// tenants' names are not confirmed), and may act in one of `roles` (else 403).
    pub fn tenant(&self, state: &SharedState, id: &str, roles: &[Role]) -> ApiResult<TenantId> {
        let unknown = || ApiError::not_found(format!("tenant {id} not found"));
        let tenant = TenantId::new(id).map_err(|_| unknown())?;
        if !self.token.may_act_on(&tenant) {
            return Err(unknown());
        }
        state.store.tenant(&tenant).map_err(|_| unknown())?;
        if !roles.contains(&self.token.role) && self.token.role != Role::Admin {
            return Err(ApiError::forbidden(format!(
                "a {} token may not do this; it needs one of: {}",
                role_name(self.token.role),
                roles
                    .iter()
                    .map(|r| role_name(*r))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(tenant)
    }
}

pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Analyst => "analyst",
        Role::Remediator => "remediator",
        Role::Viewer => "viewer",
    }
}

pub const READERS: &[Role] = &[Role::Admin, Role::Analyst, Role::Remediator, Role::Viewer];
pub const ANALYSTS: &[Role] = &[Role::Admin, Role::Analyst];
pub const REMEDIATORS: &[Role] = &[Role::Admin, Role::Analyst, Role::Remediator];

fn public(path: &str, state: &SharedState) -> bool {
    path == "/healthz"
        || path == "/openapi.json"
        || (path == "/metrics" && state.config.metrics_public)
}

fn tenant_in_path(path: &str) -> Option<TenantId> {
    let rest = path.strip_prefix("/v1/tenants/")?;
    TenantId::new(rest.split('/').next()?).ok()
}

/// Authenticates, rate-limits, times and audits. Mutating calls are audited whatever
/// their outcome, unauthenticated ones included.
pub async fn middleware(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let began = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let mut caller: Option<Caller> = None;
    let response = if public(&path, &state) {
        next.run(req).await
    } else {
        match authenticate(&state, &req) {
            Ok(c) => {
                if state.limiter.check_key(&c.token.id).is_err() {
                    caller = Some(c);
                    ApiError::too_many("too many requests for this token: slow down and retry", 1)
                        .into_response()
                } else if let Some(t) = tenant_in_path(&path)
                    .filter(|t| !c.token.may_act_on(t) || state.store.tenant(t).is_err())
                {
                    // Before the body is read: a foreign or missing tenant is 404 whatever
                    // the request carries (a malformed body must not tell them apart).
                    caller = Some(c);
                    ApiError::not_found(format!("tenant {t} not found")).into_response()
                } else {
                    req.extensions_mut().insert(c.clone());
                    caller = Some(c);
                    next.run(req).await
                }
            }
            Err(e) => e.into_response(),
        }
    };
    let status = response.status();
    let mutating = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if mutating {
        let record = AuditRecord {
            seq: 0,
            at: now_ms(),
            actor: caller
                .as_ref()
                .map(Caller::name)
                .unwrap_or_else(|| "anonymous".into()),
            role: caller.as_ref().map(|c| c.token.role),
            tenant: tenant_in_path(&path),
            action: format!("{method} {path}"),
            status: status.as_u16(),
            outcome: if status.is_success() {
                "ok".into()
            } else if status.is_client_error() {
                "refused".into()
            } else {
                "failed".into()
            },
            source: peer.to_string(),
        };
        // The audit write waits for the store's writer, which a large shard may hold for
        // seconds: off the async workers.
        let store = state.store.clone();
        let written = tokio::task::spawn_blocking(move || store.audit(record)).await;
        let failure = match written {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(e) = failure {
            // An unrecorded change must not look like a recorded one.
            return ApiError::internal(format!("the audit log could not be written: {e}"))
                .into_response();
        }
    }
    state
        .metrics
        .requests
        .get_or_create(&RouteLabels {
            method: method.to_string(),
            route: route.clone(),
            status: status.as_u16(),
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&LatencyLabels {
            method: method.to_string(),
            route,
        })
        .observe(began.elapsed().as_secs_f64());
    response
}

fn authenticate(state: &SharedState, req: &Request) -> ApiResult<Caller> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized("send 'Authorization: Bearer apt_…' with an API token")
        })?
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    let secret = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|s| s.starts_with(TOKEN_PREFIX))
        .ok_or_else(|| {
            ApiError::unauthorized("use 'Authorization: Bearer apt_…' with an aperture token")
        })?;
    let token = state
        .store
        .token_by_hash(&hash_secret(secret))
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
    Ok(Caller { token })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_prefixed_and_stored_only_as_a_hash() {
        let a = new_secret().expect("secret");
        let b = new_secret().expect("secret");
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        // 24 random bytes in unpadded base64url: 32 characters, 192 bits.
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 32);
        let t = token_for(&a, "ci", Role::Viewer, vec![], "test").expect("token");
        assert_eq!(t.sha256, hash_secret(&a));
        assert_eq!(t.sha256.len(), 64);
        let stored = serde_json::to_string(&t).expect("json");
        assert!(
            !stored.contains(&a[TOKEN_PREFIX.len()..]),
            "the secret is not stored"
        );
        assert!(a.starts_with(&t.prefix) && t.prefix.len() < a.len() / 2);
        assert!(token_for(&a, " ", Role::Viewer, vec![], "test").is_err());
    }
}
