//! The asset ledger's API (资产台账): the client's attributes of its assets — set per
//! asset, in bulk by the asset listing's filters, or by importing the client's
//! inventory as CSV — and the operations that show them: the asset listing and export
//! with the ledger's filters and columns, and the findings listing ordered by priority.
//!
//! Who may edit the ledger is who may edit sanctions (admin, analyst); every role that
//! reads the tenant reads it. Every edit is one transaction; each changed entry records
//! who changed what (its `history`), and the audit log has the call.

use super::auth::{Caller, ANALYSTS, READERS};
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::ledger_csv;
use super::routes_admin::TenantPath;
use super::routes_assets::{page_size, AssetQuery, FindingQuery, FindingView};
use super::state::{now_ms, SharedState};
use aperture_storage::findings::FindingFilter;
use aperture_storage::ledger::{
    Attributes, AttributesPatch, Editor, LedgerChange, LedgerEdit, LedgerEntry, LedgerFilter,
    LedgerResult, MAX_EDIT,
};
use aperture_storage::policy::{FindingState, Rule, Severity};
use aperture_storage::time::TimeInput;
use aperture_storage::{Asset, AssetKey, Millis, Page, TenantId};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The ledger's filters, shared by the listing, the export, the bulk edit and the
/// ledger's own listing.
fn ledger_filter(
    owner: &Option<String>,
    business_system: &Option<String>,
    tag: &Option<String>,
    min_criticality: Option<u8>,
) -> ApiResult<LedgerFilter> {
    if let Some(c) = min_criticality {
        aperture_storage::ledger::check_level("min_criticality", c)?;
    }
    let text = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_owned());
    Ok(LedgerFilter {
        owner: text(owner),
        business_system: text(business_system),
        tag: text(tag),
        min_criticality,
    })
}

/// The asset listing's filters, the ledger's, and paging.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssetListQuery {
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
    /// Ledger: the owner (ignoring ASCII case).
    pub owner: Option<String>,
    /// Ledger: the business system (ignoring ASCII case).
    pub business_system: Option<String>,
    /// Ledger: assets carrying this tag.
    pub tag: Option<String>,
    /// Ledger: assets whose highest of confidentiality, integrity and availability is
    /// at least this (1-5).
    #[param(minimum = 1, maximum = 5)]
    pub min_criticality: Option<u8>,
    /// The `next` of the previous page: an asset key.
    #[param(format = "asset-key")]
    pub cursor: Option<String>,
    /// Items per page (the service caps it at its page_cap).
    #[param(minimum = 1, maximum = 100000)]
    pub limit: Option<u32>,
    /// `key` (the default) or `-key` (descending), with the key and present status and
    /// time filters (the service, product, risk, port and absent/unknown status indexes
    /// read in ascending order only). No time order: no index keeps assets by time.
    #[param(pattern = "^-?key$")]
    pub sort: Option<String>,
}

impl AssetListQuery {
    pub(crate) fn split(self) -> ApiResult<(AssetQuery, LedgerFilter)> {
        let ledger = ledger_filter(
            &self.owner,
            &self.business_system,
            &self.tag,
            self.min_criticality,
        )?;
        Ok((
            AssetQuery {
                kind: self.kind,
                net: self.net,
                port: self.port,
                protocol: self.protocol,
                service: self.service,
                product: self.product,
                risk: self.risk,
                domain: self.domain,
                status: self.status,
                first_seen_from: self.first_seen_from,
                first_seen_to: self.first_seen_to,
                last_seen_from: self.last_seen_from,
                last_seen_to: self.last_seen_to,
                cursor: self.cursor,
                limit: self.limit,
                sort: self.sort,
            },
            ledger,
        ))
    }
}

/// An asset as observed, with what the client says about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetView {
    #[serde(flatten)]
    pub asset: Asset,
    /// The ledger's attributes; absent when the asset has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Attributes>,
}

/// One page of assets, both filters applied: the ledger's narrow the walk to described
/// assets.
fn assets_page(
    state: &SharedState,
    t: &TenantId,
    q: &AssetQuery,
    ledger: &LedgerFilter,
    cursor: Option<&str>,
    limit: usize,
) -> ApiResult<Page<AssetView>> {
    let filter = q.filter()?;
    let descending = match q.sort.as_deref() {
        None | Some("key") => false,
        Some("-key") => true,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "sort={o:?}: use key (ascending) or -key (descending)"
            )))
        }
    };
    let page = match (ledger.is_empty(), descending) {
        (true, false) => state.store.list_assets(t, &filter, cursor, limit)?,
        (true, true) => state.store.list_assets_desc(t, &filter, cursor, limit)?,
        (false, false) => state
            .store
            .list_described_assets(t, &filter, ledger, cursor, limit)?,
        (false, true) => return Err(ApiError::bad_request(
            "sort=-key with the ledger's filters (owner, business_system, tag, min_criticality): \
                 leave sort out, or the ledger's filters",
        )),
    };
    let mut items = Vec::with_capacity(page.items.len());
    for asset in page.items {
        let attributes = state
            .store
            .ledger_entry(t, &asset.key)?
            .map(|e| e.attributes)
            .filter(|a| !a.is_empty());
        items.push(AssetView { asset, attributes });
    }
    Ok(Page {
        items,
        next: page.next,
    })
}

/// The tenant's assets with filters (the ledger's among them), one page at a time; each
/// carries its ledger attributes.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/assets", tag = "assets", security(("bearer" = [])),
    operation_id = "list_assets",
    params(TenantPath, AssetListQuery),
    responses((status = 200, body = Page<AssetView>), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn list_assets(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(q): ApiQuery<AssetListQuery>,
) -> ApiResult<Json<Page<AssetView>>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let (q, ledger) = q.split()?;
    let limit = page_size(&state, q.limit)?;
    let cursor = q.cursor.clone();
    Ok(Json(assets_page(
        &state,
        &t,
        &q,
        &ledger,
        cursor.as_deref(),
        limit,
    )?))
}

/// One page for the export's writer (see `ledger_csv::export`).
pub(crate) fn export_page(
    state: &SharedState,
    t: &TenantId,
    q: &AssetQuery,
    ledger: &LedgerFilter,
    cursor: Option<&str>,
) -> ApiResult<Page<AssetView>> {
    assets_page(state, t, q, ledger, cursor, 1000)
}

/// How the findings listing is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FindingSort {
    /// Finding id (the default).
    Id,
    /// Highest priority first, then severity, then the oldest.
    Priority,
}

/// The findings listing's filters, paging and order.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FindingListQuery {
    /// open, acknowledged, in-progress, fixed, closed-verified, closed-sanctioned,
    /// closed-by-policy, risk-accepted, false-positive.
    pub state: Option<FindingState>,
    /// Open, acknowledged, in progress, or fixed awaiting verification.
    pub active: Option<bool>,
    pub severity: Option<Severity>,
    pub rule: Option<Rule>,
    /// An asset key: `host:ADDR`, `service:ADDR:PORT/tcp`, `domain:NAME` or
    /// `certificate:SHA256`.
    #[param(format = "asset-key")]
    pub asset: Option<String>,
    pub assignee: Option<String>,
    /// Only findings past their due date.
    pub overdue: Option<bool>,
    /// `id` (default) or `priority`: severity rank (info 1 … critical 5) times the
    /// asset's criticality (1-5, 3 when the ledger gives none), highest first.
    #[param(inline)]
    pub sort: Option<FindingSort>,
    /// The `next` of the previous page: a finding id.
    #[param(pattern = "^f-[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
    /// Items per page (the service caps it at its page_cap).
    #[param(minimum = 1, maximum = 100000)]
    pub limit: Option<u32>,
}

impl From<FindingQuery> for FindingListQuery {
    fn from(q: FindingQuery) -> Self {
        FindingListQuery {
            state: q.state,
            active: q.active,
            severity: q.severity,
            rule: q.rule,
            asset: q.asset,
            assignee: q.assignee,
            overdue: q.overdue,
            sort: None,
            cursor: q.cursor,
            limit: q.limit,
        }
    }
}

/// The tenant's findings with filters, by id or by priority; each with its priority.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/findings", tag = "findings", security(("bearer" = [])),
    operation_id = "list_findings",
    params(TenantPath, FindingListQuery),
    responses((status = 200, body = Page<FindingView>), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn list_findings(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(q): ApiQuery<FindingListQuery>,
) -> ApiResult<Json<Page<FindingView>>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let now = now_ms();
    let filter = FindingFilter {
        state: q.state,
        active: q.active,
        severity: q.severity,
        rule: q.rule,
        asset: match &q.asset {
            Some(a) => Some(a.parse()?),
            None => None,
        },
        assignee: q.assignee.clone(),
        overdue_at: q.overdue.filter(|o| *o).map(|_| now),
    };
    let limit = page_size(&state, q.limit)?;
    let store = state.store.clone();
    let cursor = q.cursor.clone();
    let by_priority = q.sort == Some(FindingSort::Priority);
    // Ordering by priority reads every matching finding: off the async threads.
    let page = tokio::task::spawn_blocking(move || -> ApiResult<Page<FindingView>> {
        let ranked = if by_priority {
            store.findings_by_priority(&t, &filter, cursor.as_deref(), limit)?
        } else {
            let page = store.findings(&t, &filter, cursor.as_deref(), limit)?;
            let mut items = Vec::with_capacity(page.items.len());
            for f in page.items {
                let p = store.finding_priority(&t, &f)?;
                items.push((f, p));
            }
            Page {
                items,
                next: page.next,
            }
        };
        Ok(Page {
            items: ranked
                .items
                .into_iter()
                .map(|(f, p)| FindingView::ranked(f, now, p))
                .collect(),
            next: ranked.next,
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("findings task: {e}")))??;
    Ok(Json(page))
}

/// An asset's ledger record: its attributes and their latest edits.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetAttributes {
    pub asset: AssetKey,
    pub attributes: Attributes,
    /// When they were last edited (absent: never).
    pub updated: Option<Millis>,
    pub updated_by: Option<String>,
    /// The latest edits, oldest first (at most 50): who, how, `field: old → new`.
    pub history: Vec<LedgerEdit>,
}

impl AssetAttributes {
    fn of(asset: AssetKey, e: Option<LedgerEntry>) -> Self {
        match e {
            Some(e) => AssetAttributes {
                asset,
                attributes: e.attributes,
                updated: Some(e.updated),
                updated_by: Some(e.updated_by),
                history: e.history,
            },
            None => AssetAttributes {
                asset,
                attributes: Attributes::default(),
                updated: None,
                updated_by: None,
                history: Vec::new(),
            },
        }
    }
}

fn editor(caller: &Caller) -> Editor {
    Editor {
        actor: caller.name(),
    }
}

/// The per-asset routes take an asset the scanner has seen or the ledger describes;
/// assets not seen yet are described by importing them.
fn known(state: &SharedState, t: &TenantId, key: &AssetKey) -> ApiResult<()> {
    if state.store.ledger_entry(t, key)?.is_some() {
        return Ok(());
    }
    match state.store.asset(t, key) {
        Ok(_) => Ok(()),
        Err(aperture_storage::StoreError::NotFound(_)) => Err(ApiError::not_found(format!(
            "asset {key} not found: describe assets no scan has seen yet by importing them (POST /v1/tenants/{t}/ledger/import)"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Runs a ledger edit off the async threads (it may touch thousands of entries).
async fn edit(
    state: &SharedState,
    t: &TenantId,
    edits: Vec<(AssetKey, LedgerChange)>,
    sanctions: Vec<aperture_storage::findings::NewSanction>,
    editor: Editor,
    what: String,
) -> ApiResult<LedgerResult> {
    let store = state.store.clone();
    let t2 = t.clone();
    let result = tokio::task::spawn_blocking(move || {
        store.edit_ledger(&t2, edits, sanctions, &editor, &what, now_ms())
    })
    .await
    .map_err(|e| ApiError::internal(format!("ledger task: {e}")))??;
    if !result.sanctions.is_empty() {
        // The sanctions' re-evaluations were queued with them: wake their run.
        let _ = state.sweeps.send(t.clone());
    }
    Ok(result)
}

/// An asset key in the path: `service:ADDR:PORT/tcp` needs its '/' percent-encoded, or
/// `/tcp` left out.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AssetPath {
    /// 1-63 of a-z, 0-9 and '-', not starting with '-'.
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub tenant: String,
    /// `host:ADDR`, `service:ADDR:PORT/tcp`, `domain:NAME` or `certificate:SHA256`.
    #[param(format = "asset-key")]
    pub asset: String,
}

/// An asset's ledger attributes (empty when the ledger says nothing about it), of an
/// asset seen by a scan or described by the ledger.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/assets/{asset}/attributes", tag = "ledger", security(("bearer" = [])),
    params(AssetPath),
    responses((status = 200, body = AssetAttributes), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_attributes(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(p): ApiPath<AssetPath>,
) -> ApiResult<Json<AssetAttributes>> {
    let t = caller.tenant(&state, &p.tenant, READERS)?;
    let key: AssetKey = p.asset.parse()?;
    known(&state, &t, &key)?;
    let e = state.store.ledger_entry(&t, &key)?;
    Ok(Json(AssetAttributes::of(key, e)))
}

/// Replaces an asset's attributes (admin, analyst): fields left out are unset; `{}`
/// removes them all. The asset is one a scan has seen or the ledger describes (assets
/// not seen yet are described by an import). The entry records the edit.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/assets/{asset}/attributes", tag = "ledger", security(("bearer" = [])),
    params(AssetPath), request_body = Attributes,
    responses((status = 200, body = AssetAttributes), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn put_attributes(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(p): ApiPath<AssetPath>,
    ApiJson(body): ApiJson<Attributes>,
) -> ApiResult<Json<AssetAttributes>> {
    let t = caller.tenant(&state, &p.tenant, ANALYSTS)?;
    let key: AssetKey = p.asset.parse()?;
    known(&state, &t, &key)?;
    let what = "set".to_owned();
    let edits = vec![(key.clone(), LedgerChange::Set(body))];
    edit(&state, &t, edits, Vec::new(), editor(&caller), what).await?;
    let e = state.store.ledger_entry(&t, &key)?;
    Ok(Json(AssetAttributes::of(key, e)))
}

/// Changes some of an asset's attributes (admin, analyst): a field left out stays,
/// `null` unsets it; `add_tags` / `remove_tags` edit the tag set. The entry records
/// the edit.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/assets/{asset}/attributes", tag = "ledger", security(("bearer" = [])),
    params(AssetPath), request_body = AttributesPatch,
    responses((status = 200, body = AssetAttributes), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn patch_attributes(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(p): ApiPath<AssetPath>,
    ApiJson(body): ApiJson<AttributesPatch>,
) -> ApiResult<Json<AssetAttributes>> {
    let t = caller.tenant(&state, &p.tenant, ANALYSTS)?;
    let key: AssetKey = p.asset.parse()?;
    known(&state, &t, &key)?;
    let what = "patch".to_owned();
    let edits = vec![(key.clone(), LedgerChange::Patch(body))];
    edit(&state, &t, edits, Vec::new(), editor(&caller), what).await?;
    let e = state.store.ledger_entry(&t, &key)?;
    Ok(Json(AssetAttributes::of(key, e)))
}

/// The bulk edit's filters: the asset listing's and the ledger's.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BulkQuery {
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
    /// Ledger: the owner (ignoring ASCII case).
    pub owner: Option<String>,
    /// Ledger: the business system (ignoring ASCII case).
    pub business_system: Option<String>,
    /// Ledger: assets carrying this tag.
    pub tag: Option<String>,
    /// Ledger: highest of C/I/A at least this (1-5).
    #[param(minimum = 1, maximum = 5)]
    pub min_criticality: Option<u8>,
}

/// Changes the attributes of every asset the filters match — the asset listing's
/// filters, as query parameters; none: every asset seen — with one patch (admin,
/// analyst). At most 10000 assets, in one transaction; each changed entry records
/// the edit.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/assets/attributes", tag = "ledger", security(("bearer" = [])),
    params(TenantPath, BulkQuery), request_body = AttributesPatch,
    responses((status = 200, body = LedgerResult), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn bulk_attributes(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(q): ApiQuery<BulkQuery>,
    ApiJson(body): ApiJson<AttributesPatch>,
) -> ApiResult<Json<LedgerResult>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let (aq, ledger) = AssetListQuery {
        kind: q.kind,
        net: q.net,
        port: q.port,
        protocol: q.protocol,
        service: q.service,
        product: q.product,
        risk: q.risk,
        domain: q.domain,
        status: q.status,
        first_seen_from: q.first_seen_from,
        first_seen_to: q.first_seen_to,
        last_seen_from: q.last_seen_from,
        last_seen_to: q.last_seen_to,
        owner: q.owner,
        business_system: q.business_system,
        tag: q.tag,
        min_criticality: q.min_criticality,
        cursor: None,
        limit: None,
        sort: None,
    }
    .split()?;
    // Checks the patch on its own before anything is read: a bad value is a 400 even
    // when the filter matches nothing.
    body.apply(&Attributes::default())?;
    let st = state.clone();
    let t2 = t.clone();
    let keys = tokio::task::spawn_blocking(move || -> ApiResult<Vec<AssetKey>> {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = assets_page(&st, &t2, &aq, &ledger, cursor.as_deref(), 1000)?;
            keys.extend(page.items.into_iter().map(|a| a.asset.key));
            if keys.len() > MAX_EDIT {
                return Err(ApiError::bad_request(format!(
                    "more than {MAX_EDIT} assets match: a bulk edit changes at most {MAX_EDIT}; narrow the filter"
                )));
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => return Ok(keys),
            }
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("ledger task: {e}")))??;
    let what = "bulk edit".to_owned();
    let edits = keys
        .into_iter()
        .map(|k| (k, LedgerChange::Patch(body.clone())))
        .collect();
    let result = edit(&state, &t, edits, Vec::new(), editor(&caller), what).await?;
    Ok(Json(result))
}

/// Imports the client's inventory (admin, analyst): CSV, `Content-Type: text/csv`,
/// UTF-8, at most 4 MiB and 10000 rows. The header names the columns, `asset` first
/// and any of owner, business_system, confidentiality, integrity, availability,
/// location, tags (separated by ';'), notes, sanction_reason, sanction_expires after
/// it. A column left out leaves that attribute as it is; an empty cell unsets it. A
/// row with a sanction_reason also sanctions the asset's exposure (its owner is the
/// row's). Rows may name assets no scan has seen yet. The whole file is checked first:
/// any bad row and nothing is stored (400, every bad line listed in `refused`).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/ledger/import", tag = "ledger", security(("bearer" = [])),
    params(TenantPath),
    request_body(content = String, content_type = "text/csv",
        description = "the inventory: a header row, then one asset a row"),
    responses((status = 200, body = LedgerResult), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem),
        (status = 415, description = "The body is not sent as 'Content-Type: text/csv'.", body = Problem)))]
pub async fn import_ledger(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<LedgerResult>> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = ctype.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("text/csv") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the inventory as CSV with 'Content-Type: text/csv'",
        ));
    }
    let bytes = axum::body::to_bytes(body, ledger_csv::IMPORT_LIMIT)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the file could not be read whole ({e}): at most {} bytes a request; split it",
                    ledger_csv::IMPORT_LIMIT
                ),
            )
        })?;
    let rows = ledger_csv::parse(&bytes)?;
    let what = "import".to_owned();
    let result = edit(
        &state,
        &t,
        rows.edits,
        rows.sanctions,
        editor(&caller),
        what,
    )
    .await?;
    Ok(Json(result))
}

/// The ledger's own listing's filters and paging.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    /// The owner (ignoring ASCII case).
    pub owner: Option<String>,
    pub business_system: Option<String>,
    pub tag: Option<String>,
    /// Highest of C/I/A at least this (1-5).
    #[param(minimum = 1, maximum = 5)]
    pub min_criticality: Option<u8>,
    /// The `next` of the previous page: an asset key.
    #[param(format = "asset-key")]
    pub cursor: Option<String>,
    /// Items per page (the service caps it at its page_cap).
    #[param(minimum = 1, maximum = 100000)]
    pub limit: Option<u32>,
}

/// The ledger: every described asset, also those no scan has seen yet, in asset-key
/// order.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/ledger", tag = "ledger", security(("bearer" = [])),
    params(TenantPath, LedgerQuery),
    responses((status = 200, body = Page<LedgerEntry>), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn list_ledger(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(q): ApiQuery<LedgerQuery>,
) -> ApiResult<Json<Page<LedgerEntry>>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let filter = ledger_filter(&q.owner, &q.business_system, &q.tag, q.min_criticality)?;
    let limit = page_size(&state, q.limit)?;
    let cursor = match &q.cursor {
        Some(c) => Some(c.parse::<AssetKey>().map_err(|_| {
            ApiError::bad_request(format!(
                "cursor {c:?} is not one this listing gave: start without a cursor"
            ))
        })?),
        None => None,
    };
    Ok(Json(state.store.ledger_entries(
        &t,
        &filter,
        cursor.as_ref(),
        limit,
    )?))
}
