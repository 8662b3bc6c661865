//! `aperture serve`: the HTTP API, the in-process scan workers, the scheduler and the
//! policy's background runs, over one sled directory.

pub mod alerts;
pub mod auth;
pub mod config;
pub mod contract;
pub mod contract_bodies;
pub mod coordinator;
pub mod discovery;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod ledger_csv;
pub mod mail;
pub mod patterns;
pub mod reports;
pub mod routes_admin;
pub mod routes_alerts;
pub mod routes_assets;
pub mod routes_channels;
pub mod routes_discovery;
pub mod routes_ledger;
pub mod routes_reports;
pub mod routes_scans;
pub mod routes_siem;
pub mod routes_vulndb;
pub mod routes_windows;
pub mod routes_workers;
pub mod siem;
pub mod state;
pub mod windows;

use crate::cli::ServeArgs;
use crate::{EXIT_BAD_INPUT, EXIT_FAILED};
use aperture_storage::{Store, StoreOptions, TenantId};
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use config::Config;
use state::{now_ms, AppState, SharedState};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Aperture API", version = "1", description = "Exposure-surface mapping: tenants, scans, assets, findings.\n\n\
Authentication: `Authorization: Bearer apt_…` with an API token, on every operation but /healthz and /openapi.json.\n\n\
Times: a request may give any time (body fields and query filters) as Unix milliseconds (an integer) or as an RFC 3339 date-time (`2026-12-07T06:39:45Z`); every time in a response is Unix milliseconds.\n\n\
Errors: every error is an RFC 9457 problem document (`application/problem+json`) whose `detail` says what was wrong and what to do."),
    modifiers(&Bearer),
    components(schemas(error::Problem))
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The routes and the OpenAPI document describing exactly them.
pub fn router(state: SharedState) -> (Router, utoipa::openapi::OpenApi) {
    use routes_admin as a;
    use routes_assets as s;
    use routes_discovery as d;
    use routes_ledger as l;
    use routes_reports as r;
    use routes_scans as c;
    use routes_vulndb as v;
    use routes_workers as w;
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(a::health))
        .routes(routes!(a::metrics))
        .routes(routes!(a::list_tenants, a::create_tenant))
        .routes(routes!(a::get_tenant))
        .routes(routes!(a::list_tokens, a::create_token))
        .routes(routes!(a::revoke_token))
        .routes(routes!(a::audit_log))
        .routes(routes!(c::get_scope, c::put_scope))
        .routes(routes!(c::list_scans, c::create_scan))
        .routes(routes!(c::get_scan))
        .routes(routes!(c::cancel_scan))
        .routes(routes!(w::retry_scan))
        .routes(routes!(w::list_workers))
        .routes(routes!(c::list_schedules, c::create_schedule))
        .routes(routes!(c::get_schedule, c::delete_schedule))
        .routes(routes!(
            routes_windows::get_windows,
            routes_windows::put_windows
        ))
        .routes(routes!(routes_windows::override_windows))
        .routes(routes!(l::list_assets))
        .routes(routes!(ledger_csv::export_assets))
        .routes(routes!(s::get_asset))
        .routes(routes!(s::changes))
        .routes(routes!(s::list_sanctions, s::create_sanction))
        .routes(routes!(
            s::get_sanction,
            s::update_sanction,
            s::delete_sanction
        ))
        .routes(routes!(s::get_policy, s::put_policy))
        .routes(routes!(l::list_findings))
        .routes(routes!(s::get_finding))
        .routes(routes!(s::transition))
        .routes(routes!(s::assign))
        .routes(routes!(s::comment))
        .routes(routes!(s::verify))
        .routes(routes!(s::summary))
        .routes(routes!(r::list_reports, r::create_report))
        .routes(routes!(r::get_report_schedule, r::put_report_schedule))
        .routes(routes!(r::get_report))
        .routes(routes!(r::report_html))
        .routes(routes!(r::report_pdf))
        .routes(routes!(v::vulndb_status))
        .routes(routes!(v::import_vulndb))
        .routes(routes!(
            routes_alerts::list_channels,
            routes_alerts::create_channel
        ))
        .routes(routes!(
            routes_alerts::get_channel,
            routes_alerts::delete_channel,
            routes_channels::put_channel
        ))
        .routes(routes!(routes_alerts::test_channel))
        .routes(routes!(
            routes_alerts::list_rules,
            routes_alerts::create_rule
        ))
        .routes(routes!(
            routes_alerts::get_rule,
            routes_alerts::put_rule,
            routes_alerts::delete_rule
        ))
        .routes(routes!(routes_alerts::outbox))
        .routes(routes!(routes_alerts::dead_letters))
        .routes(routes!(routes_alerts::replay))
        .routes(routes!(d::get_discovery, d::put_discovery))
        .routes(routes!(d::run_discovery))
        .routes(routes!(d::list_candidates))
        .routes(routes!(d::get_candidate))
        .routes(routes!(d::approve_candidate))
        .routes(routes!(d::dismiss_candidate))
        .routes(routes!(d::provenance))
        .routes(routes!(
            routes_siem::list_destinations,
            routes_siem::create_destination
        ))
        .routes(routes!(
            routes_siem::get_destination,
            routes_siem::delete_destination
        ))
        .routes(routes!(routes_siem::events))
        .routes(routes!(
            l::get_attributes,
            l::put_attributes,
            l::patch_attributes
        ))
        .routes(routes!(l::bulk_attributes))
        .routes(routes!(l::import_ledger))
        .routes(routes!(l::list_ledger))
        .split_for_parts();
    let mut api = api;
    // After the routes: it completes each operation the router added.
    contract::Contract.modify(&mut api);
    // Serialized once: the description does not change while the service runs.
    let doc =
        axum::body::Bytes::from(serde_json::to_vec(&contract::served(&api)).unwrap_or_default());
    let router = router
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc,
                    )
                }
            }),
        )
        .fallback(|| async { error::ApiError::not_found("no such route: see /openapi.json") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::middleware,
        ))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .with_state(state.clone());
    // The portal's pages authenticate by session, not bearer token: beside the API's
    // middleware, not under it. The OpenAPI document stays the API's alone.
    let router = crate::portal::router(state).merge(router);
    (router, api)
}

pub fn run(args: ServeArgs) -> ExitCode {
    let mut config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aperture: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    if let Some(d) = args.data {
        config.data_dir = d;
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aperture: cannot start async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aperture: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let options = StoreOptions {
        compression: config.store_compression,
        ..StoreOptions::default()
    };
    let store = Store::open_with(&config.data_dir, &options).map_err(|e| {
        format!(
            "cannot open the data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let store = Arc::new(store);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("listener address: {e}"))?;
    let (edits_tx, edits_rx) = tokio::sync::mpsc::unbounded_channel();
    let state: SharedState = Arc::new(AppState::new(store, config, edits_tx));
    // With a bus, remote workers run the scans; without, threads of this process do.
    let workers = if state.config.bus_url.is_some() {
        coordinator::start(&state).await?;
        Vec::new()
    } else {
        jobs::spawn_workers(&state)
    };
    let background = tokio::spawn(background(state.clone(), edits_rx));
    alerts::spawn(state.clone()).map_err(|e| format!("cannot start the alert sender: {e}"))?;
    siem::spawn(state.clone()).map_err(|e| format!("cannot start the SIEM exporter: {e}"))?;
    let discovery = discovery::start(&state);
    let (app, _) = router(state.clone());
    // One line for scripts to wait on.
    match &state.config.bus_url {
        Some(bus) => eprintln!(
            "listening: http://{local} data={} coordinator of the workers on {bus}",
            state.config.data_dir.display(),
        ),
        None => eprintln!(
            "listening: http://{local} data={} workers={}",
            state.config.data_dir.display(),
            state.config.workers
        ),
    }
    let shutdown_state = state.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        eprintln!("stopping: running shards stop and stay resumable");
        stop_workers(&shutdown_state);
    })
    .await
    .map_err(|e| format!("server: {e}"))?;
    stop_workers(&state);
    background.abort();
    discovery.abort();
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    let deadline = std::time::Instant::now() + grace;
    for w in workers {
        while !w.is_finished() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if w.is_finished() {
            let _ = w.join();
        }
    }
    state.store.flush().map_err(|e| e.to_string())?;
    eprintln!("stopped");
    Ok(())
}

fn stop_workers(state: &SharedState) {
    state.stopping.store(true, Ordering::SeqCst);
    for h in state
        .runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
    {
        h.shutdown.store(true, Ordering::SeqCst);
        h.stop.store(true, Ordering::SeqCst);
    }
    state.wake.notify_waiters();
}

/// The scheduler (due schedules, pending verifications, then the policy's due entries
/// and queued work), the re-evaluations that sanction and policy edits queue (woken by
/// the edit's request, so findings follow within moments), and the policy's consistency
/// check (every `sweep_secs`, daily by default).
async fn background(state: SharedState, mut edits: tokio::sync::mpsc::UnboundedReceiver<TenantId>) {
    let mut tick = tokio::time::interval(Duration::from_secs(state.config.scheduler_secs));
    // Not at start: the indexes a check would repair are built by the first tick when a
    // tenant never had them (`ensure_policy_indexes`).
    let every = Duration::from_secs(state.config.sweep_secs);
    let mut check = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                schedule_pass(&state).await;
                policy_pass(&state).await;
                reports::run_scheduled(&state);
            }
            _ = check.tick() => {
                if let Ok(tenants) = state.store.tenants() {
                    for t in tenants {
                        consistency_check(&state, t.id).await;
                    }
                }
            }
            Some(t) = edits.recv() => queued_policy(&state, t).await,
        }
    }
}

/// Per tenant: builds the policy's indexes if it never had them, then runs what edits
/// queued and what time made due. Each is a few index reads when there is nothing to do.
async fn policy_pass(state: &SharedState) {
    let store = state.store.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let Ok(tenants) = store.tenants() else {
            return;
        };
        for t in tenants {
            let now = now_ms();
            let result = store
                .ensure_policy_indexes(&t.id, now)
                .and_then(|_| store.run_queued_policy(&t.id, now))
                .and_then(|_| store.run_due_policy(&t.id, now));
            if let Err(e) = result {
                eprintln!("policy of {}: {e}", t.id);
            }
        }
    })
    .await;
}

async fn queued_policy(state: &SharedState, tenant: TenantId) {
    let store = state.store.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = store.run_queued_policy(&tenant, now_ms()) {
            eprintln!("policy of {tenant} after an edit: {e}");
        }
    })
    .await;
}

/// The full walk: re-evaluates everything and rewrites the policy's indexes. Findings do
/// not need it to be right; it repairs what anything outside the service did.
async fn consistency_check(state: &SharedState, tenant: TenantId) {
    let store = state.store.clone();
    let _ = tokio::task::spawn_blocking(move || match store.sweep_policy(&tenant, now_ms()) {
        Ok(run) => {
            let repaired = run.opened + run.closed + run.reopened + run.updated;
            if repaired > 0 {
                eprintln!(
                    "policy check of {tenant}: {repaired} findings repaired \
                     ({} assets evaluated)",
                    run.assets_evaluated
                );
            }
        }
        Err(e) => eprintln!("policy check of {tenant}: {e}"),
    })
    .await;
}

async fn schedule_pass(state: &SharedState) {
    let Ok(tenants) = state.store.tenants() else {
        return;
    };
    let now = now_ms();
    for t in tenants {
        for mut s in state.store.schedules(&t.id).unwrap_or_default() {
            if s.next_run > now {
                continue;
            }
            // A calendar run still waiting or running (a long scan goes on in the next
            // window) is not started a second time.
            let previous_live = s.window.is_some()
                && s.last_scan
                    .as_ref()
                    .and_then(|id| state.store.job(&t.id, id).ok())
                    .is_some_and(|j| j.state.is_live());
            if previous_live {
                s.next_run = s
                    .window
                    .as_ref()
                    .and_then(|w| windows::next_window_start(w, now))
                    .unwrap_or(now + windows::LOOK_AHEAD_MS);
                let _ = state.store.put_schedule(&t.id, &s);
                continue;
            }
            let purpose = Some(format!("schedule {}", s.id));
            let submitted = jobs::submit_windowed(
                state,
                &t.id,
                s.request.clone(),
                &s.created_by,
                purpose,
                Vec::new(),
                s.window.clone(),
            )
            .await;
            match submitted {
                Ok(job) => s.last_scan = Some(job.id),
                Err(e) => eprintln!("schedule {} of {}: {}", s.id, t.id, e.detail),
            }
            // Next run from now, not from the missed time: a stopped service does not
            // come back to a burst of catch-up scans.
            s.next_run = match (s.interval_secs, &s.window) {
                (Some(i), _) => now + (i as i64) * 1000,
                (None, Some(w)) => {
                    windows::next_window_start(w, now).unwrap_or(now + windows::LOOK_AHEAD_MS)
                }
                // Neither (not accepted): once a day rather than on every tick.
                (None, None) => now + 86_400_000,
            };
            let _ = state.store.put_schedule(&t.id, &s);
        }
        for v in state
            .store
            .pending_verifications(&t.id, now)
            .unwrap_or_default()
        {
            routes_assets::start_verification(state, &t.id, &v).await;
        }
        if let Some(bus) = state.bus.get() {
            coordinator::verify_elsewhere(state, bus, &t.id).await;
        }
    }
}
