//! The ledger's files: the client's inventory read from CSV (checked whole, every bad
//! line reported, before anything is stored), and the asset export written with the
//! ledger's columns.

use super::auth::{Caller, READERS};
use super::error::{ApiError, ApiResult, Problem, RefusedTarget};
use super::extract::{ApiPath, ApiQuery};
use super::routes_admin::TenantPath;
use super::routes_assets::AssetQuery;
use super::routes_assets::ExportQuery;
use super::routes_ledger::{export_page, AssetListQuery, AssetView};
use super::state::SharedState;
use aperture_storage::findings::NewSanction;
use aperture_storage::ledger::{self, Attributes, AttributesPatch, LedgerChange, LedgerFilter};
use aperture_storage::time::TimeInput;
use aperture_storage::{AssetKey, TenantId};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use utoipa::IntoParams;

/// The largest inventory one request may carry.
pub const IMPORT_LIMIT: usize = 4 << 20;
/// Bad lines listed in one refusal; the count says how many more there were.
const ERRORS_SHOWN: usize = 200;

/// The columns an inventory may have; `asset` is the one it must.
pub const COLUMNS: [&str; 11] = [
    "asset",
    "owner",
    "business_system",
    "confidentiality",
    "integrity",
    "availability",
    "location",
    "tags",
    "notes",
    "sanction_reason",
    "sanction_expires",
];

/// What a checked file asks for.
#[derive(Debug)]
pub struct Rows {
    pub edits: Vec<(AssetKey, LedgerChange)>,
    pub sanctions: Vec<NewSanction>,
}

fn refusal(total_rows: usize, errors: Vec<(u64, String)>) -> ApiError {
    let n = errors.len();
    let mut detail = format!(
        "{n} bad line{} in the inventory ({total_rows} rows read); nothing was imported — fix them and send the whole file again:",
        if n == 1 { "" } else { "s" }
    );
    let mut refused = Vec::new();
    for (line, why) in errors.iter().take(ERRORS_SHOWN) {
        detail.push_str(&format!("\nline {line}: {why}"));
        refused.push(RefusedTarget {
            target: format!("line {line}"),
            reason: why.clone(),
        });
    }
    if n > ERRORS_SHOWN {
        detail.push_str(&format!("\n… and {} more", n - ERRORS_SHOWN));
    }
    let mut e = ApiError::bad_request(detail);
    e.refused = refused;
    e
}

/// `host:ADDR` … as the API writes keys, or a bare address for its host.
fn asset_key(cell: &str) -> Result<AssetKey, String> {
    if let Ok(ip) = cell.parse::<std::net::IpAddr>() {
        return Ok(AssetKey::Host(ip));
    }
    cell.parse::<AssetKey>().map_err(|e| e.to_string())
}

fn level(field: &str, cell: &str) -> Result<Option<u8>, String> {
    if cell.is_empty() {
        return Ok(None);
    }
    match cell.parse::<u8>() {
        Ok(v) if (ledger::LEVEL_MIN..=ledger::LEVEL_MAX).contains(&v) => Ok(Some(v)),
        _ => Err(format!(
            "{field} {cell:?}: give a level from 1 (very low) to 5 (very high), or leave the cell empty"
        )),
    }
}

/// Reads and checks a whole inventory; a refusal lists every bad line.
pub fn parse(bytes: &[u8]) -> ApiResult<Rows> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the file is not UTF-8 (at byte {}): save it as CSV UTF-8; nothing was imported",
            e.valid_up_to()
        ))
    })?;
    // Spreadsheets write a byte-order mark first.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        None => {
            return Err(ApiError::bad_request(format!(
                "the file is empty: give a header row ({}) and one row per asset",
                COLUMNS.join(",")
            )))
        }
        Some(Err(e)) => return Err(refusal(0, vec![(1, format!("not CSV: {e}"))])),
        Some(Ok(h)) => h,
    };
    let mut columns: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut errors = Vec::new();
    for (i, name) in header.iter().enumerate() {
        let name = name.trim().to_ascii_lowercase();
        match COLUMNS.iter().find(|c| **c == name) {
            Some(c) if columns.contains_key(c) => {
                errors.push((1, format!("column {c} is named twice")));
            }
            Some(c) => {
                columns.insert(c, i);
            }
            None => errors.push((
                1,
                format!(
                    "unknown column {name:?}: the header names columns of {}",
                    COLUMNS.join(", ")
                ),
            )),
        }
    }
    if !columns.contains_key("asset") {
        errors.push((
            1,
            "no asset column: the header needs one (host:ADDR, service:ADDR:PORT/tcp, domain:NAME, certificate:SHA256, or an address)".into(),
        ));
    }
    if columns.contains_key("sanction_expires") && !columns.contains_key("sanction_reason") {
        errors.push((1, "sanction_expires needs a sanction_reason column".into()));
    }
    if !errors.is_empty() {
        return Err(refusal(0, errors));
    }
    let width = header.len();
    let mut rows = Rows {
        edits: Vec::new(),
        sanctions: Vec::new(),
    };
    let mut lines_of: BTreeMap<AssetKey, u64> = BTreeMap::new();
    let mut total = 0usize;
    for record in records {
        total += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push((line, format!("not CSV: {e}")));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if total > ledger::MAX_EDIT {
            errors.push((
                line,
                format!("more than {} rows: split the file", ledger::MAX_EDIT),
            ));
            break;
        }
        if record.len() != width {
            errors.push((
                line,
                format!(
                    "{} fields, the header has {width}: quote cells that hold a comma",
                    record.len()
                ),
            ));
            continue;
        }
        match row(&record, &columns) {
            Ok((key, patch, sanction)) => {
                if let Some(first) = lines_of.get(&key) {
                    errors.push((
                        line,
                        format!("{key} is also on line {first}: one row per asset"),
                    ));
                    continue;
                }
                lines_of.insert(key.clone(), line);
                rows.edits.push((key, LedgerChange::Patch(patch)));
                rows.sanctions.extend(sanction);
            }
            Err(why) => errors.push((line, why.join("; "))),
        }
    }
    if !errors.is_empty() {
        return Err(refusal(total, errors));
    }
    if rows.edits.is_empty() {
        return Err(ApiError::bad_request(
            "no rows after the header: give one row per asset",
        ));
    }
    Ok(rows)
}

type Row = (AssetKey, AttributesPatch, Option<NewSanction>);

/// One row: its asset, the patch its cells make, and its sanction; or everything wrong
/// with it.
fn row(
    record: &csv::StringRecord,
    columns: &BTreeMap<&'static str, usize>,
) -> Result<Row, Vec<String>> {
    let cell = |name: &str| -> Option<&str> {
        columns
            .get(name)
            .map(|i| record.get(*i).unwrap_or_default().trim())
    };
    let mut why = Vec::new();
    let key = match cell("asset").unwrap_or_default() {
        "" => {
            why.push("the asset cell is empty".to_owned());
            None
        }
        a => match asset_key(a) {
            Ok(k) => Some(k),
            Err(e) => {
                why.push(e);
                None
            }
        },
    };
    let text = |name: &str| cell(name).map(|v| (!v.is_empty()).then(|| v.to_owned()));
    let mut lvl = |name: &str| match cell(name) {
        None => None,
        Some(v) => match level(name, v) {
            Ok(l) => Some(l),
            Err(e) => {
                why.push(e);
                None
            }
        },
    };
    let confidentiality = lvl("confidentiality");
    let integrity = lvl("integrity");
    let availability = lvl("availability");
    let tags = cell("tags").map(|v| {
        let set: BTreeSet<String> = v
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        (!set.is_empty()).then_some(set)
    });
    let patch = AttributesPatch {
        owner: text("owner"),
        business_system: text("business_system"),
        confidentiality,
        integrity,
        availability,
        location: text("location"),
        tags,
        notes: text("notes"),
        add_tags: Vec::new(),
        remove_tags: Vec::new(),
    };
    // The cells' own faults (length, control characters, tags) before any store read.
    if let Err(e) = patch.apply(&Attributes::default()) {
        why.push(e.to_string());
    }
    let reason = cell("sanction_reason").unwrap_or_default();
    let expires = cell("sanction_expires").unwrap_or_default();
    let mut sanction = None;
    if reason.is_empty() && !expires.is_empty() {
        why.push(
            "sanction_expires without a sanction_reason: say why the exposure is approved".into(),
        );
    }
    if !reason.is_empty() {
        let owner = cell("owner").unwrap_or_default();
        if owner.is_empty() {
            why.push("a sanction needs the row's owner: who answers for the exposure".into());
        }
        let expires = match expires {
            "" => None,
            e => match aperture_storage::time::parse(e) {
                Ok(t) => Some(t),
                Err(err) => {
                    why.push(format!("sanction_expires: {err}"));
                    None
                }
            },
        };
        if let Some(k) = &key {
            match ledger::sanction_match(k) {
                Ok(matches) => {
                    let s = NewSanction {
                        matches,
                        owner: owner.to_owned(),
                        reason: reason.to_owned(),
                        ticket: None,
                        expires,
                    };
                    match s.validate() {
                        Ok(()) => sanction = Some(s),
                        Err(e) if !owner.is_empty() => why.push(e.to_string()),
                        Err(_) => {}
                    }
                }
                Err(e) => why.push(e.to_string()),
            }
        }
    }
    match key {
        Some(k) if why.is_empty() => Ok((k, patch, sanction)),
        _ => Err(why),
    }
}

/// The export's columns after the asset's own.
const LEDGER_COLUMNS: [&str; 8] = [
    "owner",
    "business_system",
    "confidentiality",
    "integrity",
    "availability",
    "location",
    "tags",
    "notes",
];

fn csv_chunk(items: &[AssetView], header_row: bool) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let e = |e: csv::Error| e.to_string();
    if header_row {
        let mut head = vec![
            "asset",
            "kind",
            "status",
            "first_seen",
            "last_seen",
            "last_changed",
            "times_seen",
            "service",
            "product",
            "version",
            "risk",
            "facts",
        ];
        head.extend(LEDGER_COLUMNS);
        w.write_record(head).map_err(e)?;
    }
    let empty = Attributes::default();
    for v in items {
        let a = &v.asset;
        let fact = |k: &str| a.fact(k).unwrap_or_default().to_owned();
        let l = v.attributes.as_ref().unwrap_or(&empty);
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let num = |v: Option<u8>| v.map(|v| v.to_string()).unwrap_or_default();
        w.write_record([
            a.key.to_string(),
            a.kind.as_str().to_owned(),
            a.status.as_str().to_owned(),
            a.first_seen.to_string(),
            a.last_seen.to_string(),
            a.last_changed.to_string(),
            a.times_seen.to_string(),
            fact("service"),
            fact("product"),
            fact("version"),
            fact("risk"),
            serde_json::to_string(&a.facts).unwrap_or_default(),
            text(&l.owner),
            text(&l.business_system),
            num(l.confidentiality),
            num(l.integrity),
            num(l.availability),
            text(&l.location),
            l.tags.iter().cloned().collect::<Vec<_>>().join(";"),
            text(&l.notes),
        ])
        .map_err(e)?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// Channel-fed response body: the export is written while it is read.
struct Chunks(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Streams every matching asset with its attributes; the filters were checked already.
pub fn export(
    state: SharedState,
    t: TenantId,
    q: AssetQuery,
    ledger: LedgerFilter,
    csv: bool,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let mut cursor: Option<String> = None;
        let mut first = true;
        loop {
            let page = match export_page(&state, &t, &q, &ledger, cursor.as_deref()) {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.detail)));
                    return;
                }
            };
            let chunk = if csv {
                csv_chunk(&page.items, first)
            } else {
                let mut out = Vec::new();
                for a in &page.items {
                    if serde_json::to_writer(&mut out, a).is_ok() {
                        out.push(b'\n');
                    }
                }
                Ok(out)
            };
            first = false;
            let chunk = chunk.map(Bytes::from).map_err(std::io::Error::other);
            if tx.blocking_send(chunk).is_err() {
                return;
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => return,
            }
        }
    });
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(Chunks(rx)),
    )
        .into_response()
}

/// The export's filters: the listing's and the ledger's, without paging, and the format.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssetExportQuery {
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
    /// csv (default) or jsonl.
    #[param(pattern = "^(csv|jsonl)$")]
    pub format: Option<String>,
}

impl From<ExportQuery> for AssetExportQuery {
    fn from(q: ExportQuery) -> Self {
        AssetExportQuery {
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
            format: q.format,
            ..AssetExportQuery::default()
        }
    }
}

impl AssetExportQuery {
    fn split(self) -> ApiResult<(AssetQuery, LedgerFilter, Option<String>)> {
        let format = self.format.clone();
        let (q, l) = AssetListQuery {
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
            owner: self.owner,
            business_system: self.business_system,
            tag: self.tag,
            min_criticality: self.min_criticality,
            cursor: None,
            limit: None,
            sort: None,
        }
        .split()?;
        Ok((q, l, format))
    }
}

/// Every asset matching the filters as CSV or JSON Lines, streamed, with the ledger's
/// attributes (CSV: columns owner … notes; JSON Lines: `attributes`).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/exports/assets", tag = "assets", security(("bearer" = [])),
    operation_id = "export_assets",
    params(TenantPath, AssetExportQuery),
    responses((status = 200, description = "Every matching asset: CSV with a header row, or one JSON asset per line",
            content((String = "text/csv"), (String = "application/x-ndjson"))),
        (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn export_assets(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(q): ApiQuery<AssetExportQuery>,
) -> ApiResult<Response> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let (q, ledger, format) = q.split()?;
    // The whole filter is checked before the body starts: once the status line is sent,
    // an error can only cut the stream.
    q.filter()?;
    let csv = match format.as_deref() {
        None | Some("csv") => true,
        Some("jsonl") => false,
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "format={f:?}: use csv or jsonl"
            )))
        }
    };
    Ok(export(state, t, q, ledger, csv))
}
