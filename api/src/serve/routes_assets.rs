//! What a tenant has and what is wrong with it: assets, changes, sanctions, policy,
//! findings and reports.

use super::auth::{Caller, ANALYSTS, READERS, REMEDIATORS};
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::jobs::submit_avoiding;
use super::reports::summary::Summary;
use super::routes_admin::TenantPath;
use super::state::{now_ms, SharedState};
use aperture_storage::access::ScanRequest;
use aperture_storage::findings::{NewSanction, VerificationRequest};
use aperture_storage::policy::{
    self, Finding, FindingState, PolicySettings, Rule, Sanction, Severity, TransitionRequest,
};
use aperture_storage::time::TimeInput;
use aperture_storage::{
    Asset, AssetFilter, AssetKey, AssetKind, AssetStatus, Change, Millis, Page, Proto, TenantId,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A time filter: Unix milliseconds or RFC 3339, the one rule of every time a request
/// gives ([`aperture_storage::time`]).
fn time(field: &str, v: &Option<String>) -> ApiResult<Option<Millis>> {
    let Some(v) = v else { return Ok(None) };
    aperture_storage::time::parse(v)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

/// The filters of the asset listing and of the export.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssetQuery {
    /// host, service, domain or certificate.
    #[param(pattern = "^(host|service|domain|certificate)$")]
    pub kind: Option<String>,
    /// Address or CIDR.
    #[param(format = "ip-or-cidr")]
    pub net: Option<String>,
    #[param(minimum = 0, maximum = 65535)]
    pub port: Option<u16>,
    /// tcp or udp: services of that transport only.
    #[param(pattern = "^(tcp|udp)$")]
    pub protocol: Option<String>,
    pub service: Option<String>,
    pub product: Option<String>,
    /// Risk class, e.g. remote-administration, database.
    pub risk: Option<String>,
    /// A zone: its names and what they resolve to.
    #[param(
        pattern = r"^[A-Za-z0-9_*-]{1,63}(\.[A-Za-z0-9_*-]{1,63})*$",
        max_length = 253
    )]
    pub domain: Option<String>,
    /// present, absent or unknown.
    #[param(pattern = "^(present|absent|unknown)$")]
    pub status: Option<String>,
    #[param(value_type = Option<TimeInput>)]
    pub first_seen_from: Option<String>,
    #[param(value_type = Option<TimeInput>)]
    pub first_seen_to: Option<String>,
    #[param(value_type = Option<TimeInput>)]
    pub last_seen_from: Option<String>,
    #[param(value_type = Option<TimeInput>)]
    pub last_seen_to: Option<String>,
    /// The `next` of the previous page: an asset key.
    #[param(format = "asset-key")]
    pub cursor: Option<String>,
    /// Items per page (the service caps it at its page_cap).
    #[param(minimum = 1, maximum = 100000)]
    pub limit: Option<u32>,
    /// `key` (default): ascending asset key (certificates, domains, hosts, services; by
    /// address and port, or name). `-key`: the reverse, for the kind, net, domain,
    /// present status and time filters (the service, product, risk, port and
    /// absent/unknown status indexes read in ascending order only). No time order: no
    /// index keeps assets by time, and sorting by it would read the whole tenant.
    #[param(pattern = "^-?key$")]
    pub sort: Option<String>,
}

/// The export's filters: those of the listing, without paging, and the format.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// host, service, domain or certificate.
    #[param(pattern = "^(host|service|domain|certificate)$")]
    pub kind: Option<String>,
    /// Address or CIDR.
    #[param(format = "ip-or-cidr")]
    pub net: Option<String>,
    #[param(minimum = 0, maximum = 65535)]
    pub port: Option<u16>,
    /// tcp or udp: services of that transport only.
    #[param(pattern = "^(tcp|udp)$")]
    pub protocol: Option<String>,
    pub service: Option<String>,
    pub product: Option<String>,
    /// Risk class, e.g. remote-administration, database.
    pub risk: Option<String>,
    /// A zone: its names and what they resolve to.
    #[param(
        pattern = r"^[A-Za-z0-9_*-]{1,63}(\.[A-Za-z0-9_*-]{1,63})*$",
        max_length = 253
    )]
    pub domain: Option<String>,
    /// present, absent or unknown.
    #[param(pattern = "^(present|absent|unknown)$")]
    pub status: Option<String>,
    #[param(value_type = Option<TimeInput>)]
    pub first_seen_from: Option<String>,
    #[param(value_type = Option<TimeInput>)]
    pub first_seen_to: Option<String>,
    #[param(value_type = Option<TimeInput>)]
    pub last_seen_from: Option<String>,
    #[param(value_type = Option<TimeInput>)]
    pub last_seen_to: Option<String>,
    /// csv (default) or jsonl.
    #[param(pattern = "^(csv|jsonl)$")]
    pub format: Option<String>,
}

/// A DNS name or glob: dot-separated labels of 1-63 letters, digits, '-', '_' or '*',
/// at most 253 characters; the `domain` filter's pattern in the description says the same.
pub fn domain_ok(d: &str) -> bool {
    d.len() <= 253
        && d.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*'))
        })
}

impl AssetQuery {
    pub(crate) fn filter(&self) -> ApiResult<AssetFilter> {
        let net = match &self.net {
            Some(n) => Some(
                n.parse::<ipnet::IpNet>()
                    .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ApiError::bad_request(format!("net={n:?}: give an address or a CIDR"))
                    })?,
            ),
            None => None,
        };
        let status = match self.status.as_deref() {
            None => None,
            Some("present") => Some(AssetStatus::Present),
            Some("absent") => Some(AssetStatus::Absent),
            Some("unknown") => Some(AssetStatus::Unknown),
            Some(s) => {
                return Err(ApiError::bad_request(format!(
                    "status={s:?}: use present, absent or unknown"
                )))
            }
        };
        Ok(AssetFilter {
            kind: match &self.kind {
                Some(k) => Some(k.parse::<AssetKind>()?),
                None => None,
            },
            net,
            port: self.port,
            protocol: match self.protocol.as_deref() {
                None => None,
                Some("tcp") => Some(Proto::Tcp),
                Some("udp") => Some(Proto::Udp),
                Some(p) => {
                    return Err(ApiError::bad_request(format!(
                        "protocol={p:?}: use tcp or udp"
                    )))
                }
            },
            service: self.service.clone(),
            product: self.product.clone(),
            risk: self.risk.clone(),
            domain: match &self.domain {
                // Checked here, before an export's body starts: the store would refuse it
                // only once the stream has begun.
                Some(d) if domain_ok(d) => Some(d.clone()),
                Some(d) => {
                    return Err(ApiError::bad_request(format!(
                        "domain={d:?}: give a name of dot-separated labels (letters, digits, '-', '_', '*')"
                    )))
                }
                None => None,
            },
            status,
            first_seen_from: time("first_seen_from", &self.first_seen_from)?,
            first_seen_to: time("first_seen_to", &self.first_seen_to)?,
            last_seen_from: time("last_seen_from", &self.last_seen_from)?,
            last_seen_to: time("last_seen_to", &self.last_seen_to)?,
        })
    }
}

/// The tenant's assets with filters, one page at a time: the portal's call. The API's
/// operation, with the ledger's filters and attributes, is `routes_ledger::list_assets`.
pub async fn list_assets(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(q): ApiQuery<AssetQuery>,
) -> ApiResult<Json<Page<Asset>>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let filter = q.filter()?;
    let limit = page_size(&state, q.limit)?;
    let page = match q.sort.as_deref() {
        None | Some("key") => state
            .store
            .list_assets(&t, &filter, q.cursor.as_deref(), limit)?,
        Some("-key") => state
            .store
            .list_assets_desc(&t, &filter, q.cursor.as_deref(), limit)?,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "sort={o:?}: use key (ascending) or -key (descending)"
            )))
        }
    };
    Ok(Json(page))
}

/// The most a `limit` may ask for; the service returns at most its page_cap.
pub const MAX_LIMIT: u32 = 100_000;

/// A page's size: the asked one (default 100, 1 to [`MAX_LIMIT`]), capped at the
/// service's page_cap.
pub fn page_size(state: &SharedState, limit: Option<u32>) -> ApiResult<usize> {
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit={limit}: give 1 to {MAX_LIMIT} (pages hold at most {})",
            state.config.page_cap
        )));
    }
    Ok((limit as usize).min(state.config.page_cap.max(1)))
}

/// Every asset matching the filters as CSV or JSON Lines, streamed with the ledger's
/// attributes: the portal's call of the API's `ledger_csv::export_assets`.
pub async fn export_assets(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    super::ledger_csv::export_assets(
        State(state),
        Extension(caller),
        ApiPath(tenant),
        ApiQuery(q.into()),
    )
    .await
}

/// One asset with its history, links and findings.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetDetail {
    pub asset: Asset,
    pub history: Vec<Change>,
    pub links: Vec<AssetKey>,
    pub findings: Vec<Finding>,
    /// What the client's ledger says about the asset, and its latest edits.
    pub ledger: Option<aperture_storage::ledger::LedgerEntry>,
}

/// One asset. A service key has a '/' (`service:198.18.1.20:22/tcp`,
/// `service:198.18.1.20:53/udp`): percent-encode it (`%2F`), or leave `/tcp` out.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/assets/{asset}", tag = "assets", security(("bearer" = [])),
    params(TenantPath, ("asset" = String, Path, format = "asset-key",
        description = "`host:ADDR`, `service:ADDR:PORT/tcp` (or `/udp`), `domain:NAME` or `certificate:SHA256`")),
    responses((status = 200, body = AssetDetail), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_asset(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, key)): ApiPath<(String, String)>,
) -> ApiResult<Json<AssetDetail>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let key: AssetKey = key.parse()?;
    Ok(Json(AssetDetail {
        asset: state.store.asset(&t, &key)?,
        history: state.store.history(&t, &key)?,
        links: state.store.links(&t, &key)?,
        findings: state.store.findings_of(&t, &key)?,
        ledger: state.store.ledger_entry(&t, &key)?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// The last change number already read; absent: from the start.
    #[param(minimum = 0)]
    pub since: Option<i64>,
    /// Items per page (the service caps it at its page_cap).
    #[param(minimum = 1, maximum = 100000)]
    pub limit: Option<u32>,
}

/// The change feed: every appeared, changed and disappeared event after `since`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/changes", tag = "assets", security(("bearer" = [])),
    params(TenantPath, ChangesQuery),
    responses((status = 200, body = Page<Change>), (status = 404, body = Problem)))]
pub async fn changes(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> ApiResult<Json<Page<Change>>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let limit = page_size(&state, q.limit)?;
    let since = match q.since {
        Some(n) => Some(u64::try_from(n).map_err(|_| {
            ApiError::bad_request(format!("since={n}: give a change number, 0 or more"))
        })?),
        None => None,
    };
    Ok(Json(state.store.changes_since(&t, since, limit)?))
}

/// Wakes the background run of what a sanction or policy edit queued (the store queued
/// it with the edit: the assets the edit can change, found through indexes). Without
/// the wake-up, the next scheduler pass runs it.
fn reevaluate(state: &SharedState, t: &TenantId) {
    let _ = state.sweeps.send(t.clone());
}

/// The tenant's sanctioned exposures.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/sanctions", tag = "sanctions", security(("bearer" = [])),
    params(TenantPath),
    responses((status = 200, body = [Sanction]), (status = 404, body = Problem)))]
pub async fn list_sanctions(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Vec<Sanction>>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(state.store.sanctions(&t)?))
}

/// Sanctions an exposure (admin, analyst); findings it covers close as sanctioned.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/sanctions", tag = "sanctions", security(("bearer" = [])),
    params(TenantPath), request_body = NewSanction,
    responses((status = 201, body = Sanction), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_sanction(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<NewSanction>,
) -> ApiResult<(StatusCode, Json<Sanction>)> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let s = state
        .store
        .create_sanction(&t, body, &caller.name(), now_ms())?;
    reevaluate(&state, &t);
    Ok((StatusCode::CREATED, Json(s)))
}

/// One sanction.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/sanctions/{sanction}", tag = "sanctions", security(("bearer" = [])),
    params(TenantPath, ("sanction" = String, Path)),
    responses((status = 200, body = Sanction), (status = 404, body = Problem)))]
pub async fn get_sanction(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Sanction>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(state.store.sanction(&t, &id)?))
}

/// Replaces a sanction (admin, analyst); what its old and new match cover is judged again.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/sanctions/{sanction}", tag = "sanctions", security(("bearer" = [])),
    params(TenantPath, ("sanction" = String, Path)), request_body = NewSanction,
    responses((status = 200, body = Sanction), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn update_sanction(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<NewSanction>,
) -> ApiResult<Json<Sanction>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let s = state.store.update_sanction(&t, &id, body)?;
    reevaluate(&state, &t);
    Ok(Json(s))
}

/// Withdraws a sanction (admin, analyst); what it covered is flagged again.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/sanctions/{sanction}", tag = "sanctions", security(("bearer" = [])),
    params(TenantPath, ("sanction" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_sanction(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    state.store.delete_sanction(&t, &id)?;
    reevaluate(&state, &t);
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's policy: severities, SLAs and thresholds.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/policy", tag = "findings", security(("bearer" = [])),
    params(TenantPath),
    responses((status = 200, body = PolicySettings), (status = 404, body = Problem)))]
pub async fn get_policy(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<PolicySettings>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(state.store.policy_settings(&t)?))
}

/// Replaces the tenant's policy (admin, analyst); findings the changed settings touch follow.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/policy", tag = "findings", security(("bearer" = [])),
    params(TenantPath), request_body = PolicySettings,
    responses((status = 200, body = PolicySettings), (status = 400, body = Problem)))]
pub async fn put_policy(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<PolicySettings>,
) -> ApiResult<Json<PolicySettings>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let before = state.store.policy_settings(&t)?.login_checks;
    state.store.set_policy_settings(&t, &body)?;
    if before != body.login_checks {
        // Logging in to scanned hosts is a consent of its own: recorded by name, beside
        // the generic record of the call.
        let record = aperture_storage::access::AuditRecord {
            seq: 0,
            at: now_ms(),
            actor: caller.name(),
            role: Some(caller.token.role),
            tenant: Some(t.clone()),
            action: format!(
                "login checks {} for tenant {t}",
                if body.login_checks {
                    "enabled"
                } else {
                    "disabled"
                }
            ),
            status: 200,
            outcome: "ok".into(),
            source: "policy".into(),
        };
        state.store.audit(record)?;
    }
    reevaluate(&state, &t);
    Ok(Json(body))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FindingQuery {
    /// open, acknowledged, in-progress, fixed, closed-verified, closed-sanctioned,
    /// closed-by-policy, risk-accepted, false-positive.
    pub state: Option<FindingState>,
    /// Open, acknowledged, in progress, or fixed awaiting verification.
    pub active: Option<bool>,
    pub severity: Option<Severity>,
    pub rule: Option<Rule>,
    /// An asset key: `host:ADDR`, `service:ADDR:PORT/tcp` (or `/udp`), `domain:NAME` or
    /// `certificate:SHA256`.
    #[param(format = "asset-key")]
    pub asset: Option<String>,
    pub assignee: Option<String>,
    /// Only findings past their due date.
    pub overdue: Option<bool>,
    /// The `next` of the previous page: a finding id.
    #[param(pattern = "^f-[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
    /// Items per page (the service caps it at its page_cap).
    #[param(minimum = 1, maximum = 100000)]
    pub limit: Option<u32>,
}

/// The tenant's findings with filters: the portal's call of the API's
/// `routes_ledger::list_findings` (by id).
pub async fn list_findings(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(q): ApiQuery<FindingQuery>,
) -> ApiResult<Json<Page<FindingView>>> {
    super::routes_ledger::list_findings(
        State(state),
        Extension(caller),
        ApiPath(tenant),
        ApiQuery(q.into()),
    )
    .await
}

/// A finding with its overdue flag as of now and its priority.
#[derive(Debug, Serialize, ToSchema)]
pub struct FindingView {
    #[serde(flatten)]
    pub finding: Finding,
    pub overdue: bool,
    /// Severity rank (info 1, low 2, medium 3, high 4, critical 5) times the asset's
    /// criticality in the ledger (the highest of C/I/A, 1-5; a service without levels
    /// takes its host's; 3 when none is given): 1 to 25, higher first.
    #[schema(minimum = 1, maximum = 25)]
    pub priority: u32,
}

impl FindingView {
    pub(crate) fn ranked(finding: Finding, now: Millis, priority: u32) -> Self {
        FindingView {
            overdue: finding.overdue(now),
            priority,
            finding,
        }
    }

    fn of(state: &SharedState, t: &TenantId, finding: Finding, now: Millis) -> Self {
        // A store that cannot read the ledger ranks the finding by severity alone.
        let p = state
            .store
            .finding_priority(t, &finding)
            .unwrap_or_else(|_| aperture_storage::ledger::priority(finding.severity, None));
        FindingView::ranked(finding, now, p)
    }
}

/// One finding with its whole story.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/findings/{finding}", tag = "findings", security(("bearer" = [])),
    params(TenantPath, ("finding" = String, Path)),
    responses((status = 200, body = FindingView), (status = 404, body = Problem)))]
pub async fn get_finding(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<FindingView>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    Ok(Json(FindingView::of(
        &state,
        &t,
        state.store.finding(&t, &id)?,
        now_ms(),
    )))
}

/// The finding after a transition, and the verification scan a "fixed" claim started.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionResult {
    pub finding: FindingView,
    pub verification: Option<VerificationRequest>,
    /// The scan running the verification, when it could start now.
    pub verification_scan: Option<String>,
}

/// Starts the scan a verification request asks for; leaves it pending (the scheduler
/// retries) when the tenant's scan cap is reached.
pub async fn start_verification(
    state: &SharedState,
    t: &TenantId,
    v: &VerificationRequest,
) -> Option<String> {
    let list = |ranges: &[(u16, u16)]| {
        ranges
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut ports = list(&v.coverage.ports);
    if !v.coverage.udp_ports.is_empty() {
        // `U:` switches the rest of the list to UDP.
        let udp = format!("U:{}", list(&v.coverage.udp_ports));
        ports = if ports.is_empty() {
            udp
        } else {
            format!("{ports},{udp}")
        };
    }
    let req = ScanRequest {
        targets: v.coverage.targets.iter().map(|n| n.to_string()).collect(),
        ports: (!ports.is_empty()).then_some(ports),
        top_ports: None,
        domains: v.coverage.domains.clone(),
        rate: None,
        grab: v.coverage.probes.contains("grab"),
        // The probe the claim is checked with is the service's; the scan that found the
        // exposure may have used either.
        probe: None,
        udp: None,
    };
    // One starter per request: the "fixed" handler and the scheduler may both see it.
    if !state.store.claim_verification(t, &v.id, now_ms()).ok()? {
        return None;
    }
    let job = match submit_avoiding(
        state,
        t,
        req,
        &format!("verification for {}", v.requested_by),
        Some(format!("verify {}", v.finding)),
        v.avoid.clone(),
    )
    .await
    {
        Ok(job) => job,
        Err(_) => {
            let _ = state.store.release_verification(t, &v.id);
            return None;
        }
    };
    state.store.verification_started(t, &v.id, &job.id).ok()?;
    Some(job.id)
}

/// Moves a finding (admin, analyst, remediator; risk acceptance: admin, analyst).
/// "fixed" starts a verification scan; only a scan can close a finding.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/findings/{finding}/transitions", tag = "findings", security(("bearer" = [])),
    params(TenantPath, ("finding" = String, Path)), request_body = TransitionRequest,
    responses((status = 200, body = TransitionResult), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn transition(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<TransitionRequest>,
) -> ApiResult<Json<TransitionResult>> {
    let t = caller.tenant(&state, &tenant, REMEDIATORS)?;
    if !policy::role_may_move(caller.token.role, body.to) {
        // A matter of role, like every other refusal of one: 403, not a lifecycle 409.
        return Err(ApiError::forbidden(format!(
            "a {} token may not move a finding to {}; it needs an admin or analyst token",
            super::auth::role_name(caller.token.role),
            body.to.name()
        )));
    }
    let (finding, verification) =
        state
            .store
            .transition_finding(&t, &id, &caller.actor(), &body, now_ms())?;
    let verification_scan = match &verification {
        Some(v) => start_verification(&state, &t, v).await,
        None => None,
    };
    Ok(Json(TransitionResult {
        finding: FindingView::of(&state, &t, finding, now_ms()),
        verification,
        verification_scan,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// Who works on it (1-200 characters, not blank); null to unassign.
    #[schema(pattern = r"\S", max_length = 200)]
    pub assignee: Option<String>,
}

/// Assigns a finding (admin, analyst, remediator).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/findings/{finding}/assign", tag = "findings", security(("bearer" = [])),
    params(TenantPath, ("finding" = String, Path)), request_body = Assignment,
    responses((status = 200, body = FindingView), (status = 404, body = Problem)))]
pub async fn assign(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<Assignment>,
) -> ApiResult<Json<FindingView>> {
    let t = caller.tenant(&state, &tenant, REMEDIATORS)?;
    if body
        .assignee
        .as_ref()
        .is_some_and(|a| a.trim().is_empty() || a.chars().count() > 200)
    {
        return Err(ApiError::bad_request("assignee: 1-200 characters, or null"));
    }
    let f = state
        .store
        .assign_finding(&t, &id, &caller.actor(), body.assignee, now_ms())?;
    Ok(Json(FindingView::of(&state, &t, f, now_ms())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Comment {
    /// Not blank; at most 10000 characters.
    #[schema(pattern = r"\S", max_length = 10000)]
    pub text: String,
}

/// Comments on a finding (admin, analyst, remediator).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/findings/{finding}/comments", tag = "findings", security(("bearer" = [])),
    params(TenantPath, ("finding" = String, Path)), request_body = Comment,
    responses((status = 200, body = FindingView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn comment(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<Comment>,
) -> ApiResult<Json<FindingView>> {
    let t = caller.tenant(&state, &tenant, REMEDIATORS)?;
    if body.text.chars().count() > 10_000 {
        return Err(ApiError::bad_request(
            "a comment is at most 10000 characters",
        ));
    }
    let f = state
        .store
        .comment_finding(&t, &id, &caller.actor(), &body.text, now_ms())?;
    Ok(Json(FindingView::of(&state, &t, f, now_ms())))
}

/// Runs the verification scan of a finding claimed fixed again.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/findings/{finding}/verify", tag = "findings", security(("bearer" = [])),
    params(TenantPath, ("finding" = String, Path)),
    responses((status = 200, body = TransitionResult), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn verify(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<TransitionResult>> {
    let t = caller.tenant(&state, &tenant, REMEDIATORS)?;
    let pending = state
        .store
        .pending_verifications(&t, now_ms())?
        .into_iter()
        .find(|v| v.finding == id);
    let v = match pending {
        Some(v) => v,
        None => state
            .store
            .request_verification(&t, &id, &caller.actor(), now_ms())?,
    };
    let scan = start_verification(&state, &t, &v).await;
    Ok(Json(TransitionResult {
        finding: FindingView::of(&state, &t, state.store.finding(&t, &id)?, now_ms()),
        verification: Some(v),
        verification_scan: scan,
    }))
}

/// Exposure by risk class, open findings by severity and age, time to remediate, and
/// the shrinkage curve.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/reports/summary", tag = "reports", security(("bearer" = [])),
    params(TenantPath),
    responses((status = 200, body = Summary), (status = 404, body = Problem)))]
pub async fn summary(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Summary>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let store = state.store.clone();
    let s =
        tokio::task::spawn_blocking(move || super::reports::summary::compute(&store, &t, now_ms()))
            .await
            .map_err(|e| ApiError::internal(format!("report task: {e}")))??;
    Ok(Json(s))
}
