//! SIEM export routes: a tenant's destinations (syslog or OCSF JSON lines over TCP or
//! TLS, each with its cursor, backlog and last error), and the same export as pages
//! for SIEMs that poll. Changes are audited by the middleware like any other.

use super::auth::{Caller, ANALYSTS, READERS};
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::siem::{roots, MAX_CA_CHARS, VERSION};
use super::state::{now_ms, SharedState};
use aperture_notify::ocsf::to_ocsf;
use aperture_storage::siem::{
    validate_destination, Cursor, Feeds, SiemDestination, SiemFormat, SiemPosition,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDestination {
    /// 1-64 of letters, digits, '-', '_'.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    /// The receiver as `host:port`: a host name or an IPv4 address, or an IPv6 address
    /// in brackets (`[2001:db8::1]:6514`).
    #[schema(
        format = "host-port",
        max_length = 300,
        example = "siem.example.net:6514"
    )]
    pub address: String,
    /// Speak TLS (RFC 5425) to the receiver.
    #[serde(default)]
    pub tls: bool,
    /// With TLS: the CA certificate(s), PEM, the receiver's certificate must chain to;
    /// absent: the system's roots.
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub ca_pem: Option<String>,
    /// `syslog` (RFC 5424 with the OCSF JSON as message, octet-counted; the default) or
    /// `ocsf` (one OCSF JSON object per line).
    #[serde(default)]
    pub format: Option<SiemFormat>,
    /// The syslog facility; default 13 (log audit).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 23)]
    pub facility: Option<u8>,
    /// Send finding events (default true).
    #[serde(default = "yes")]
    pub findings: bool,
    /// Send change events (default true).
    #[serde(default = "yes")]
    pub changes: bool,
    /// Where the export starts: at the beginning of the tenant's history (the default:
    /// every finding and change it has), or now.
    #[serde(default)]
    pub start: Option<Start>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    Beginning,
    Now,
}

fn yes() -> bool {
    true
}

/// A destination and where its export stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationView {
    pub id: String,
    pub name: String,
    pub address: String,
    pub tls: bool,
    /// Whether it trusts its own CA (else the system's roots).
    pub custom_ca: bool,
    pub format: SiemFormat,
    pub facility: u8,
    pub findings: bool,
    pub changes: bool,
    pub created: i64,
    pub created_by: String,
    pub state: SiemPosition,
    /// Events after the cursor not yet written.
    pub backlog: u64,
}

fn address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn view(
    state: &SharedState,
    t: &aperture_storage::TenantId,
    d: SiemDestination,
    p: SiemPosition,
) -> ApiResult<DestinationView> {
    let backlog = state.store.siem_backlog(
        t,
        p.cursor,
        Feeds {
            findings: d.findings,
            changes: d.changes,
        },
    )?;
    Ok(DestinationView {
        address: address(&d.host, d.port),
        id: d.id,
        name: d.name,
        tls: d.tls,
        custom_ca: d.ca_pem.is_some(),
        format: d.format,
        facility: d.facility,
        findings: d.findings,
        changes: d.changes,
        created: d.created,
        created_by: d.created_by,
        state: p,
        backlog,
    })
}

/// `host:port` → (host, port); Err says how to write it.
pub fn parse_address(text: &str) -> Result<(String, u16), String> {
    let bad = || {
        format!(
            "address {text:?}: write host:port, e.g. siem.example.net:6514, 198.51.100.7:514 or [2001:db8::1]:6514"
        )
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        (h, p)
    } else {
        let (h, p) = text.rsplit_once(':').ok_or_else(bad)?;
        if h.contains(':') {
            return Err(bad());
        }
        (h, p)
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 || host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_ascii_lowercase(), port))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}

/// The tenant's SIEM destinations with their cursors, backlogs and last errors.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/siem/destinations", tag = "siem", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, body = [DestinationView]), (status = 404, body = Problem)))]
pub async fn list_destinations(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<Json<Vec<DestinationView>>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let mut out = Vec::new();
    for (d, p) in state.store.siem_destinations(&t)? {
        out.push(view(&state, &t, d, p)?);
    }
    Ok(Json(out))
}

/// Adds a SIEM destination; the exporter starts feeding it at once, from the beginning
/// of the tenant's history unless `start` is `now`.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/siem/destinations", tag = "siem", security(("bearer" = [])),
    params(("tenant" = String, Path)), request_body = NewDestination,
    responses((status = 201, body = DestinationView), (status = 400, body = Problem), (status = 409, body = Problem)))]
pub async fn create_destination(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<NewDestination>,
) -> ApiResult<(StatusCode, Json<DestinationView>)> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    if body.address.chars().count() > 300 {
        return Err(ApiError::bad_request(
            "address: give host:port in at most 300 characters",
        ));
    }
    let (host, port) = parse_address(&body.address).map_err(ApiError::bad_request)?;
    if let Some(pem) = &body.ca_pem {
        if pem.chars().count() > MAX_CA_CHARS {
            return Err(ApiError::bad_request(format!(
                "ca_pem: give at most {MAX_CA_CHARS} characters of PEM (the receiver's CA, not a whole bundle)"
            )));
        }
    }
    let d = SiemDestination {
        id: body.id,
        name: body.name.trim().to_owned(),
        host,
        port,
        tls: body.tls,
        ca_pem: body.ca_pem,
        format: body.format.unwrap_or(SiemFormat::Syslog),
        facility: body.facility.unwrap_or(13),
        findings: body.findings,
        changes: body.changes,
        created: now_ms(),
        created_by: caller.name(),
    };
    validate_destination(&d)?;
    if d.tls {
        // Checked now, so a CA that cannot work is refused instead of failing forever
        // in the background.
        roots(d.ca_pem.as_deref()).map_err(ApiError::bad_request)?;
        rustls::pki_types::ServerName::try_from(d.host.as_str()).map_err(|e| {
            ApiError::bad_request(format!("address: {} is no TLS server name ({e})", d.host))
        })?;
    }
    let from_now = matches!(body.start, Some(Start::Now));
    let store = state.store.clone();
    let stored = d.clone();
    let t2 = t.clone();
    let p = blocking(move || Ok(store.create_siem_destination(&t2, &stored, from_now)?)).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &t, d, p)?)))
}

/// One destination and where its export stands.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/siem/destinations/{destination}", tag = "siem", security(("bearer" = [])),
    params(("tenant" = String, Path), ("destination" = String, Path)),
    responses((status = 200, body = DestinationView), (status = 404, body = Problem)))]
pub async fn get_destination(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<DestinationView>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let (d, p) = state.store.siem_destination(&t, &id)?;
    Ok(Json(view(&state, &t, d, p)?))
}

/// Deletes a destination; its export stops.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/siem/destinations/{destination}", tag = "siem", security(("bearer" = [])),
    params(("tenant" = String, Path), ("destination" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_destination(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let t = caller.tenant(&state, &tenant, ANALYSTS)?;
    let store = state.store.clone();
    blocking(move || Ok(store.delete_siem_destination(&t, &id)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The `next_cursor` of the previous page; absent: from the beginning.
    #[param(pattern = r"^[0-9]{1,19}\.[0-9]{1,19}$")]
    pub cursor: Option<String>,
    /// Events per page (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Include finding events (default true).
    pub findings: Option<bool>,
    /// Include change events (default true).
    pub changes: Option<bool>,
}

/// A page of the export.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    /// OCSF objects, oldest first: Detection Finding (2004) for finding events, Device
    /// Inventory Info (5001) for changes; `metadata.uid` is the stable event id.
    pub events: Vec<serde_json::Value>,
    /// Where the next page starts; equal to the asked cursor when nothing is new.
    pub next_cursor: String,
    /// Events after `next_cursor` (0: this page reached the end).
    pub backlog: u64,
}

/// The SIEM export as pages, for SIEMs that poll: OCSF events after a cursor. Keep the
/// `next_cursor` and ask again with it; an event is never skipped, and a page asked
/// again returns the same events with the same ids.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/siem/events", tag = "siem", security(("bearer" = [])),
    params(("tenant" = String, Path), EventsQuery),
    responses((status = 200, body = EventsPage), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn events(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Json<EventsPage>> {
    let t = caller.tenant(&state, &tenant, READERS)?;
    let cursor: Cursor = match &q.cursor {
        Some(c) => c.parse()?,
        None => Cursor::default(),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit={limit}: give 1 to 1000"
        )));
    }
    let feeds = Feeds {
        findings: q.findings.unwrap_or(true),
        changes: q.changes.unwrap_or(true),
    };
    let store = state.store.clone();
    blocking(move || {
        let (events, next) = store.siem_events(&t, cursor, limit as usize, feeds)?;
        let backlog = store.siem_backlog(&t, next, feeds)?;
        Ok(Json(EventsPage {
            events: events.iter().map(|e| to_ocsf(e, VERSION)).collect(),
            next_cursor: next.to_string(),
            backlog,
        }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_or_say_how_to_write_them() {
        assert_eq!(
            parse_address("SIEM.example.net:6514"),
            Ok(("siem.example.net".into(), 6514))
        );
        assert_eq!(
            parse_address("127.0.0.1:514"),
            Ok(("127.0.0.1".into(), 514))
        );
        assert_eq!(
            parse_address("[2001:db8::1]:6514"),
            Ok(("2001:db8::1".into(), 6514))
        );
        for bad in [
            "",
            "host",
            "host:",
            ":514",
            "host:0",
            "host:65536",
            "host:+1",
            "2001:db8::1:514",
            "[nope]:1",
            "[::1]514",
        ] {
            let e = parse_address(bad).expect_err(bad);
            assert!(e.contains("write host:port"), "{e}");
        }
    }
}
