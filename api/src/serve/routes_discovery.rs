//! The discovery loop's API: its settings (seeds and limits) and state, the candidates
//! it proposes (approve puts one in scope, dismiss keeps it out for good), and how each
//! asset was first found.

use super::auth::{Caller, ANALYSTS, READERS};
use super::discovery::{address_in_scope, name_in_scope, request_run};
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::state::{now_ms, SharedState};
use aperture_storage::candidates::{
    Candidate, CandidateState, Decision, DiscoverySettings, LoopState, Provenance,
};
use aperture_storage::AssetKey;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The loop's settings (none until set) and where it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveryView {
    pub settings: Option<DiscoverySettings>,
    pub state: LoopState,
    /// Candidates waiting for a decision.
    pub open_candidates: usize,
}

fn view(state: &SharedState, t: &aperture_storage::TenantId) -> ApiResult<DiscoveryView> {
    Ok(DiscoveryView {
        settings: state.store.discovery_settings(t)?,
        state: state.store.loop_state(t)?,
        open_candidates: state.store.candidates(t, Some(CandidateState::Open))?.len(),
    })
}

/// The discovery loop's settings and state.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/discovery", tag = "discovery", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, body = DiscoveryView), (status = 404, body = Problem)))]
pub async fn get_discovery(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<DiscoveryView>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(view(&state, &t)?))
}

/// Why settings were refused: their shape (400), or seeds the tenant's scope does not
/// cover (409: the settings are valid, the scope has to change first).
enum Refusal {
    Bad(String),
    OutOfScope(String),
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Bad(d) => ApiError::bad_request(d),
            Refusal::OutOfScope(d) => ApiError::conflict(d),
        }
    }
}

/// What is wrong with settings, if anything: seeds inside the scope, sane limits.
fn check_settings(
    scope: &aperture_storage::access::Scope,
    s: &DiscoverySettings,
) -> Result<(), Refusal> {
    if s.domains.is_empty() && s.cidrs.is_empty() && s.names.is_empty() {
        return Err(Refusal::Bad(
            "give at least one seed: 'domains' (zones), 'cidrs' or 'names'".into(),
        ));
    }
    for d in s.domains.iter().chain(&s.names) {
        aperture_fingerprints::dns::DomainName::parse(d)
            .map_err(|e| Refusal::Bad(format!("seed {d:?}: {e}")))?;
        if !name_in_scope(scope, d) {
            return Err(Refusal::OutOfScope(format!(
                "seed {d:?} is not at or under a domain of the tenant's scope: add its zone to the scope first"
            )));
        }
    }
    for net in &s.cidrs {
        if net.prefix_len() + 16 < net.max_prefix_len() {
            return Err(Refusal::Bad(format!(
                "seed network {net} is larger than a /16 (or /112): give smaller networks"
            )));
        }
        let all_in =
            address_in_scope(scope, net.network()) && address_in_scope(scope, net.broadcast());
        let req = aperture_storage::access::ScanRequest {
            targets: vec![net.to_string()],
            ports: None,
            top_ports: None,
            domains: Vec::new(),
            rate: None,
            grab: true,
            probe: None,
            udp: None,
        };
        if !all_in || super::jobs::check_scope(scope, &req).is_err() {
            return Err(Refusal::OutOfScope(format!(
                "seed network {net} is not inside the tenant's scope (its CIDRs minus exclusions, special ranges only with allow_special)"
            )));
        }
    }
    if !(1..=32).contains(&s.max_depth) {
        return Err(Refusal::Bad(format!(
            "max_depth {}: give 1 to 32 rounds",
            s.max_depth
        )));
    }
    for (what, n) in [
        ("max_names", s.max_names),
        ("max_addresses", s.max_addresses),
    ] {
        if !(1..=100_000).contains(&n) {
            return Err(Refusal::Bad(format!("{what} {n}: give 1 to 100000")));
        }
    }
    if let Some(p) = &s.ports {
        aperture_mapper::ports::parse_ports(p)
            .map_err(|e| Refusal::Bad(format!("ports {p:?}: {e}")))?;
    }
    if s.rate == Some(0) {
        return Err(Refusal::Bad(
            "rate 0: give a positive number of probes per second".into(),
        ));
    }
    if s.interval_secs.is_some_and(|i| i < 60) {
        return Err(Refusal::Bad(
            "interval_secs: give at least 60 (or leave it out to run on changes only)".into(),
        ));
    }
    Ok(())
}

/// Sets the loop's seeds and limits (admin, analyst); a loop starts with the new settings.
/// At least one of `domains`, `cidrs` and `names` must be given (networks at most a /16),
/// and `ports` must be `aperture scan -p` syntax: a 400 says which. Every seed must lie
/// in the tenant's scope (domains at or under a scope domain, networks inside its CIDRs):
/// a 409 names the one that does not, and the scope must grow first.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/discovery", tag = "discovery", security(("bearer" = [])),
    params(("tenant" = String, Path)), request_body = DiscoverySettings,
    responses((status = 200, body = DiscoveryView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "A seed lies outside the tenant's scope: `detail` names it.")))]
pub async fn put_discovery(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(settings): ApiJson<DiscoverySettings>,
) -> ApiResult<Json<DiscoveryView>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let scope = state.store.scope(&t)?;
    check_settings(&scope, &settings)?;
    if let Some(rate) = settings.rate {
        if rate > state.config.max_rate {
            return Err(ApiError::bad_request(format!(
                "rate {rate}: give 1 to {} probes per second",
                state.config.max_rate
            )));
        }
    }
    state.store.set_discovery_settings(&t, &settings)?;
    Ok(Json(view(&state, &t)?))
}

/// Runs the loop now (or right after the running one ends).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/discovery/run", tag = "discovery", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 202, body = DiscoveryView), (status = 409, body = Problem), (status = 404, body = Problem)))]
pub async fn run_discovery(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<DiscoveryView>)> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    if state.store.discovery_settings(&t)?.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the loop has no seeds yet: PUT /v1/tenants/{tenant}/discovery first",
        ));
    }
    request_run(&t);
    Ok((StatusCode::ACCEPTED, Json(view(&state, &t)?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CandidateQuery {
    /// open, approved or dismissed; all when absent.
    #[param(pattern = "^(open|approved|dismissed)$")]
    pub state: Option<String>,
}

/// The review queue: what the loop found outside the scope, with its evidence.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/candidates", tag = "discovery", security(("bearer" = [])),
    params(("tenant" = String, Path), CandidateQuery),
    responses((status = 200, body = [Candidate]), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn list_candidates(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(q): ApiQuery<CandidateQuery>,
) -> ApiResult<Json<Vec<Candidate>>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let filter = q.state.as_deref().map(str::parse).transpose()?;
    Ok(Json(state.store.candidates(&t, filter)?))
}

/// One candidate.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/candidates/{candidate}", tag = "discovery", security(("bearer" = [])),
    params(("tenant" = String, Path), ("candidate" = String, Path, description = "address:IP or name:NAME")),
    responses((status = 200, body = Candidate), (status = 404, body = Problem)))]
pub async fn get_candidate(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Candidate>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(state.store.candidate(&t, &id)?))
}

/// An analyst's reason, kept with the decision.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[serde(default)]
    pub note: Option<String>,
}

async fn decide(
    state: SharedState,
    caller: Caller,
    tenant: String,
    id: String,
    decision: Decision,
    body: axum::body::Bytes,
) -> ApiResult<Json<Candidate>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    // The body is optional: none, `null`, or {"note": "..."}.
    let body: DecisionBody = if body.iter().all(u8::is_ascii_whitespace) {
        DecisionBody::default()
    } else {
        serde_json::from_slice::<Option<DecisionBody>>(&body)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the request body is not valid: {e}; send nothing or {{\"note\": \"why\"}}"
                ))
            })?
            .unwrap_or_default()
    };
    let note = body.note;
    if note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(ApiError::bad_request("note: keep it to 2000 characters"));
    }
    let store = state.store.clone();
    let by = caller.name();
    let c = tokio::task::spawn_blocking(move || {
        store.decide_candidate(&t, &id, decision, &by, note, now_ms())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(c))
}

/// Approves a candidate: it joins the scope (an address as a /32 or /128, a name as a
/// domain) and the next loop scans it.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/candidates/{candidate}/approve", tag = "discovery", security(("bearer" = [])),
    params(("tenant" = String, Path), ("candidate" = String, Path)), request_body(content = Option<DecisionBody>),
    responses((status = 200, body = Candidate), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn approve_candidate(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Candidate>> {
    decide(state, caller, tenant, id, Decision::Approve, body).await
}

/// Dismisses a candidate: it stays out of scope and is never proposed again.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/candidates/{candidate}/dismiss", tag = "discovery", security(("bearer" = [])),
    params(("tenant" = String, Path), ("candidate" = String, Path)), request_body(content = Option<DecisionBody>),
    responses((status = 200, body = Candidate), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn dismiss_candidate(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Candidate>> {
    decide(state, caller, tenant, id, Decision::Dismiss, body).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceQuery {
    /// One asset (`host:ADDR`, `service:ADDR:PORT/tcp` or `/udp`, `domain:NAME`); all when
    /// absent.
    #[param(format = "asset-key")]
    pub asset: Option<String>,
}

/// How assets were first found: seed, enumeration, certificate, reverse DNS, candidate
/// approval, with the evidence chain — why Aperture believes they are the tenant's.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/provenance", tag = "discovery", security(("bearer" = [])),
    params(("tenant" = String, Path), ProvenanceQuery),
    responses((status = 200, body = [Provenance]), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn provenance(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(q): ApiQuery<ProvenanceQuery>,
) -> ApiResult<Json<Vec<Provenance>>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    match q.asset {
        Some(a) => {
            let key: AssetKey = a.parse()?;
            let p = state.store.provenance(&t, &key)?.ok_or_else(|| {
                ApiError::not_found(format!(
                    "no discovery record of {key}: the loop did not find it"
                ))
            })?;
            Ok(Json(vec![p]))
        }
        None => Ok(Json(state.store.provenances(&t)?)),
    }
}
