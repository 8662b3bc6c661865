//! Scan jobs: accepting a request (scope first, then the plan, nothing queued unless both
//! pass), and the in-process workers that run jobs shard by shard into the store.
//!
//! A scan's port shards still to run go through the engine in one run (one receiver,
//! one wait for late replies at the end), and a thread of the job's own stores each
//! shard's batch, in shard order, as soon as the shard is complete, while the next
//! shards are probed. A shard's observations are stored only when all its probes were
//! sent and its replies had their wait; a shard cut short by a cancel, a shutdown or a
//! crash is run again from its start, and its batch key (scan, shard) makes the second
//! run's results replace nothing twice.

use super::config::EngineChoice;
use super::error::{ApiError, ApiResult, RefusedTarget};
use super::state::{now_ms, RunHandle, SharedState};
use super::windows;
use aperture_fingerprints::dns::DomainName;
use aperture_fingerprints::{PortObservation, Probe};
use aperture_mapper::engine::Finished;
use aperture_mapper::engine::Progress;
use aperture_mapper::intervals::{IntervalSet, Point};
use aperture_mapper::pace::RateHandle;
use aperture_mapper::permute::Permutation;
use aperture_mapper::plan::{plan, Plan, TargetRequest};
use aperture_mapper::rawsock::raw_sockets_permitted;
use aperture_mapper::run::udp::run_udp_segments;
use aperture_mapper::run::{
    run_segments, EngineSettings, Failure, GrabSettings, PortSink, ShardSpec,
};
use aperture_mapper::shard::ShardSelector;
use aperture_mapper::special::{describe_v4, describe_v6, special_v4, special_v6};
use aperture_mapper::targets::{parse_targets, Target};
use aperture_storage::access::{JobState, ScanJob, ScanRequest, Scope};
use aperture_storage::{Batch, Coverage, Observation, TenantId};
use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tenant's scope as address sets (CIDRs minus exclusions).
fn scope_sets(scope: &Scope) -> (IntervalSet<u32>, IntervalSet<u128>) {
    let mut v4 = IntervalSet::new();
    let mut v6 = IntervalSet::new();
    let mut x4 = IntervalSet::new();
    let mut x6 = IntervalSet::new();
    for (nets, s4, s6) in [
        (&scope.cidrs, &mut v4, &mut v6),
        (&scope.exclusions, &mut x4, &mut x6),
    ] {
        for net in nets {
            match net {
                IpNet::V4(n) => s4.insert(u32::from(n.network()), u32::from(n.broadcast())),
                IpNet::V6(n) => s6.insert(u128::from(n.network()), u128::from(n.broadcast())),
            }
        }
    }
    (v4.subtract(&x4), v6.subtract(&x6))
}

fn under_zone(name: &str, zone: &str) -> bool {
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    name == zone
        || name
            .strip_suffix(&zone)
            .is_some_and(|head| head.ends_with('.'))
}

/// Why a target range may not be scanned for this tenant, if it may not: its first
/// address outside the scope, or (without the opt-in) its first special-purpose one.
fn range_refusal<T: Point>(
    (lo, hi): (T, T),
    allowed: &IntervalSet<T>,
    special: &IntervalSet<T>,
    scope: &Scope,
    show: impl Fn(T) -> (String, Option<(&'static str, &'static str)>),
) -> Option<String> {
    let range = IntervalSet::from_ranges([(lo, hi)]);
    if let Some(first) = range.subtract(allowed).nth(0) {
        let (a, _) = show(first);
        return Some(format!(
            "{a} is outside the tenant's scope (its CIDRs minus exclusions)"
        ));
    }
    if scope.allow_special {
        return None;
    }
    let inside = range.subtract(&range.subtract(special));
    inside.nth(0).map(|first| {
        let (a, what) = show(first);
        let (name, rfc) = what.unwrap_or(("special-purpose", ""));
        format!(
            "{a} is in a special-purpose range ({name} {rfc}) and the tenant has not opted in (scope allow_special)"
        )
    })
}

/// Every target and domain of a request inside the tenant's scope, and no special-purpose
/// address without the tenant's opt-in. Returns each refused target with its reason.
pub fn check_scope(scope: &Scope, req: &ScanRequest) -> ApiResult<()> {
    let (allowed4, allowed6) = scope_sets(scope);
    let mut refused = Vec::new();
    let mut refuse = |target: &str, reason: String| {
        refused.push(RefusedTarget {
            target: target.to_owned(),
            reason,
        })
    };
    for t in &req.targets {
        let parsed = parse_targets(t).map_err(|e| ApiError::bad_request(e.to_string()))?;
        for target in parsed {
            match target {
                Target::Host(name) => refuse(
                    t,
                    format!("{name} is a host name: list zones under 'domains', addresses under 'targets'"),
                ),
                Target::V4(lo, hi) => {
                    let why = range_refusal((lo, hi), &allowed4, &special_v4(), scope, |a| {
                        let ip = Ipv4Addr::from(a);
                        (ip.to_string(), describe_v4(ip))
                    });
                    if let Some(why) = why {
                        refuse(t, why);
                    }
                }
                Target::V6(lo, hi) => {
                    let why = range_refusal((lo, hi), &allowed6, &special_v6(), scope, |a| {
                        let ip = Ipv6Addr::from(a);
                        (ip.to_string(), describe_v6(ip))
                    });
                    if let Some(why) = why {
                        refuse(t, why);
                    }
                }
            }
        }
    }
    for d in &req.domains {
        let name = DomainName::parse(d)
            .map_err(|e| ApiError::bad_request(format!("domain {d:?}: {e}")))?;
        let ascii = name.ascii().to_owned();
        if !scope.domains.iter().any(|z| under_zone(&ascii, z)) {
            refuse(d, "not at or under a domain of the tenant's scope".into());
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        let mut e = ApiError::forbidden(format!(
            "{} target(s) are not authorised for this tenant; nothing was queued",
            refused.len()
        ));
        e.refused = refused;
        Err(e)
    }
}

fn target_request(req: &ScanRequest, scope: &Scope, ipv6: bool) -> TargetRequest {
    TargetRequest {
        targets: req.targets.clone(),
        target_files: Vec::new(),
        excludes: scope.exclusions.iter().map(|n| n.to_string()).collect(),
        exclude_files: Vec::new(),
        ports: req.ports.clone(),
        top_ports: match (&req.ports, req.top_ports, &req.udp) {
            (None, None, None) => Some(100),
            (_, t, _) => t.map(usize::from),
        },
        allow_special: scope.allow_special,
        confirm_large: true,
        ipv6,
        named: Vec::new(),
        // `U:` in ports and UDP presets plan a UDP space beside the TCP one; whether
        // this service may probe it is `check_udp`'s to say.
        udp: true,
        udp_presets: req.udp.clone(),
    }
}

/// UDP probes are raw datagrams with our own cookies: they need raw sockets whatever
/// the TCP probe is.
fn check_udp(p: &Plan) -> ApiResult<()> {
    if p.udp.is_some() && !raw_sockets_permitted() {
        return Err(ApiError::bad_request(
            "UDP ports need raw sockets, which this service may not open (run it as root or \
             with CAP_NET_RAW); leave out the U: ports and udp presets",
        ));
    }
    Ok(())
}

/// Probes of a plan: its TCP space (when it probes TCP) and its UDP space.
fn plan_sizes(p: &Plan) -> (u64, u64) {
    (
        if p.tcp { p.space.size() } else { 0 },
        p.udp.as_ref().map_or(0, |u| u.space.size()),
    )
}

fn use_connect(state: &SharedState, req: &ScanRequest) -> bool {
    match req.probe {
        Some(Probe::Connect) => return true,
        Some(Probe::Syn) | Some(Probe::Udp) => return false,
        None => {}
    }
    match state.config.engine {
        EngineChoice::Connect => true,
        EngineChoice::Syn => false,
        EngineChoice::Auto => !raw_sockets_permitted(),
    }
}

/// What a request must be to ever run: targets or domains, a rate the service allows.
fn check_request(state: &SharedState, req: &ScanRequest) -> ApiResult<()> {
    if req.targets.is_empty() && req.domains.is_empty() {
        return Err(ApiError::bad_request(
            "a scan needs targets (addresses, CIDRs, ranges) or domains",
        ));
    }
    let rate = req.rate.unwrap_or(state.config.default_rate);
    if rate == 0 || rate > state.config.max_rate {
        return Err(ApiError::bad_request(format!(
            "rate {rate}: give 1 to {} probes per second",
            state.config.max_rate
        )));
    }
    if req.probe == Some(Probe::Udp) {
        return Err(ApiError::bad_request(
            "probe picks the TCP probe (syn or connect); UDP ports are asked for with U: in \
             ports (`T:443,U:53,161`) or with udp presets (`common`, `amplifiers`, `dns,snmp`)",
        ));
    }
    if req.probe == Some(Probe::Syn) && !raw_sockets_permitted() {
        return Err(ApiError::bad_request(
            "probe syn needs raw sockets, which this service may not open (run it as root or \
             with CAP_NET_RAW); ask for probe connect",
        ));
    }
    Ok(())
}

/// The checks `submit` makes, for a request stored to run later (a schedule): valid,
/// in scope, and plannable (ports), so it is refused now rather than failing every run.
pub async fn check_runnable(
    state: &SharedState,
    scope: &Scope,
    req: &ScanRequest,
) -> ApiResult<()> {
    check_request(state, req)?;
    check_scope(scope, req)?;
    if !req.targets.is_empty() {
        let p = plan(&target_request(req, scope, use_connect(state, req)))
            .await
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        check_udp(&p)?;
    }
    Ok(())
}

/// Accepts a scan for a tenant: scope, rate and the tenant's concurrent-scan cap are
/// checked and the plan is made before anything is stored or queued.
pub async fn submit(
    state: &SharedState,
    tenant: &TenantId,
    req: ScanRequest,
    requested_by: &str,
    purpose: Option<String>,
) -> ApiResult<ScanJob> {
    submit_avoiding(state, tenant, req, requested_by, purpose, Vec::new()).await
}

/// [`submit`], with workers that may not run the scan's shards.
pub async fn submit_avoiding(
    state: &SharedState,
    tenant: &TenantId,
    req: ScanRequest,
    requested_by: &str,
    purpose: Option<String>,
    avoid: Vec<String>,
) -> ApiResult<ScanJob> {
    submit_windowed(state, tenant, req, requested_by, purpose, avoid, None).await
}

/// [`submit_avoiding`], for a scan that sends only inside `window` (a schedule's) as
/// well as inside the tenant's windows. Outside them it is accepted as `waiting`.
pub async fn submit_windowed(
    state: &SharedState,
    tenant: &TenantId,
    req: ScanRequest,
    requested_by: &str,
    purpose: Option<String>,
    avoid: Vec<String>,
    window: Option<aperture_storage::windows::Window>,
) -> ApiResult<ScanJob> {
    check_request(state, &req)?;
    let scope = state.store.scope(tenant)?;
    check_scope(&scope, &req)?;
    let live = state
        .store
        .jobs(tenant)?
        .iter()
        .filter(|j| j.state.is_live())
        .count();
    if live >= state.config.tenant_scan_cap {
        return Err(ApiError::too_many(
            format!(
                "this tenant has {live} scans queued or running (the cap is {}): wait for one to finish",
                state.config.tenant_scan_cap
            ),
            30,
        ));
    }
    let connect = use_connect(state, &req);
    let mut tcp_shards = 0u32;
    let mut udp_shards = 0u32;
    let (coverage_targets, ports, udp_ports, probes_total) = if req.targets.is_empty() {
        (Vec::new(), Vec::new(), Vec::new(), 0)
    } else {
        let p = plan(&target_request(&req, &scope, connect))
            .await
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        check_udp(&p)?;
        let (tcp_total, udp_total) = plan_sizes(&p);
        let cut = |total: u64| -> u32 {
            if total == 0 {
                return 0;
            }
            let mut shards = total.div_ceil(state.config.shard_probes).max(1);
            if let Some(bus) = state.bus.get() {
                // Many small shards per live worker, so a slow worker holds up little.
                let at_least = state.config.shards_per_worker * bus.live_workers().max(1) as u64;
                shards = shards.max(at_least).min(total.max(1));
            }
            u32::try_from(shards).unwrap_or(u32::MAX)
        };
        tcp_shards = cut(tcp_total);
        udp_shards = cut(udp_total);
        (
            covered_nets(&p),
            if p.tcp {
                port_ranges(p.space.ports())
            } else {
                Vec::new()
            },
            p.udp
                .as_ref()
                .map(|u| port_ranges(u.space.ports()))
                .unwrap_or_default(),
            tcp_total + udp_total,
        )
    };
    let port_shards = tcp_shards + udp_shards;
    let mut probes: BTreeSet<String> = BTreeSet::new();
    if tcp_shards > 0 {
        probes.insert(if connect { "connect" } else { "syn" }.to_owned());
        if req.grab {
            probes.insert("grab".to_owned());
        }
    }
    if udp_shards > 0 {
        probes.insert("udp".to_owned());
    }
    if !req.domains.is_empty() {
        probes.insert("dns".to_owned());
    }
    let coverage = Coverage {
        targets: coverage_targets,
        ports,
        probes,
        domains: req.domains.clone(),
        udp_ports,
    };
    let n = state.store.next_number(tenant, "scan")?;
    let id = format!("scan-{n}");
    let shards = port_shards + u32::from(!req.domains.is_empty());
    let now = now_ms();
    state
        .store
        .begin_scan(tenant, &id, coverage, shards, purpose.clone(), now)?;
    let mut job = ScanJob {
        id,
        tenant: tenant.clone(),
        request: req,
        seed: aperture_mapper::entropy::random_u64(),
        port_shards,
        udp_shards,
        probes_total,
        state: JobState::Queued,
        requested: now,
        requested_by: requested_by.to_owned(),
        started: None,
        finished: None,
        error: None,
        purpose,
        failed_shards: BTreeSet::new(),
        avoid,
        until: None,
        window,
        windows_overridden_by: None,
    };
    if let super::windows::Gate::Closed(until) = windows::job_rules(state, &job).gate(now) {
        job.state = JobState::Waiting;
        job.until = until;
    }
    state.store.put_job(&job)?;
    state.metrics.scans_started.inc();
    state.wake.notify_waiters();
    if let Some(bus) = state.bus.get() {
        bus.wake.notify_one();
    }
    Ok(job)
}

/// The address ranges a plan will probe, as CIDRs: what the scan covers.
fn covered_nets(p: &Plan) -> Vec<IpNet> {
    let mut out = Vec::new();
    for &(lo, hi) in p.space.v4().ranges() {
        out.extend(Ipv4Subnets::new(Ipv4Addr::from(lo), Ipv4Addr::from(hi), 0).map(IpNet::V4));
    }
    for &(lo, hi) in p.space.v6().ranges() {
        out.extend(Ipv6Subnets::new(Ipv6Addr::from(lo), Ipv6Addr::from(hi), 0).map(IpNet::V6));
    }
    out
}

fn port_ranges(ports: &[u16]) -> Vec<(u16, u16)> {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for p in sorted {
        match out.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(p) => *hi = p,
            _ => out.push((p, p)),
        }
    }
    out
}

/// Starts the worker threads. Each runs one job at a time, in its own small runtime.
pub fn spawn_workers(state: &SharedState) -> Vec<std::thread::JoinHandle<()>> {
    (0..state.config.workers)
        .map(|i| {
            let state = state.clone();
            std::thread::Builder::new()
                .name(format!("scan-worker-{i}"))
                .spawn(move || worker_loop(state))
                .unwrap_or_else(|e| panic!("cannot start a scan worker thread: {e}"))
        })
        .collect()
}

fn worker_loop(state: SharedState) {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        eprintln!("aperture: a scan worker could not start its runtime");
        return;
    };
    while !state.stopping.load(Ordering::SeqCst) {
        match claim(&state) {
            Some((job, handle)) => {
                run_job(&state, &rt, job.clone(), &handle);
                state
                    .runs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&format!("{}/{}", job.tenant, job.id));
                state.metrics.scans_running.dec();
                windows::rebalance(&state, &job.tenant);
            }
            None => {
                let wake = state.wake.notified();
                let _ = rt.block_on(async {
                    tokio::time::timeout(Duration::from_millis(500), wake).await
                });
            }
        }
    }
}

/// The oldest live job no worker has and whose window is open, registered as running.
fn claim(state: &SharedState) -> Option<(ScanJob, Arc<RunHandle>)> {
    let jobs = state.store.live_jobs().ok()?;
    let now = now_ms();
    for job in jobs {
        let key = format!("{}/{}", job.tenant, job.id);
        if state.run(&job.tenant, &job.id).is_some() || !windows::due(&job, now) {
            continue;
        }
        if !matches!(windows::gate_job(state, &job), Some(windows::Gate::Open(_))) {
            continue;
        }
        let handle = RunHandle::starting(0);
        let wants = u64::from(job.request.rate.unwrap_or(state.config.default_rate));
        handle.wants.store(wants, Ordering::Relaxed);
        handle.rate.set(wants);
        {
            let mut runs = state.runs.lock().unwrap_or_else(|p| p.into_inner());
            if runs.contains_key(&key) {
                continue;
            }
            runs.insert(key, handle.clone());
        }
        state.metrics.scans_running.inc();
        windows::rebalance(state, &job.tenant);
        return Some((job, handle));
    }
    None
}

/// Pauses the run when its window closes (or a blackout begins): checked twice a second,
/// against the tenant's settings as they are then.
fn watch_window(
    state: &SharedState,
    job: &ScanJob,
    h: &Arc<RunHandle>,
) -> tokio::task::AbortHandle {
    let (state, job, h) = (state.clone(), job.clone(), h.clone());
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if !windows::job_rules(&state, &job).open_at(now_ms()) {
                h.paused.store(true, Ordering::SeqCst);
                h.stop.store(true, Ordering::SeqCst);
                return;
            }
        }
    });
    task.abort_handle()
}

fn run_job(state: &SharedState, rt: &tokio::runtime::Runtime, job: ScanJob, h: &Arc<RunHandle>) {
    let running = state.store.update_live_job(&job.tenant, &job.id, |j| {
        j.state = JobState::Running;
        j.until = None;
        j.started.get_or_insert_with(now_ms);
    });
    let mut job = match running {
        Ok(Some(j)) => j,
        _ => return,
    };
    let watcher = {
        let _guard = rt.enter();
        watch_window(state, &job, h)
    };
    let outcome = run_shards(state, rt, &job, h);
    watcher.abort();
    let stopped_by_shutdown = state.stopping.load(Ordering::SeqCst);
    match outcome {
        Ok(true) => {
            job.state = JobState::Completed;
            job.finished = Some(now_ms());
            state.metrics.scans_completed.inc();
        }
        Ok(false) if stopped_by_shutdown && !h.stop_requested_by_user() => {
            // Left running: the next start resumes at the first shard not stored.
            return;
        }
        Ok(false) if h.paused.load(Ordering::SeqCst) => {
            // Its window closed: what was stored stays, the shards not stored run when
            // it opens again (a cancel meanwhile stays a cancel).
            let _ = windows::gate_job(state, &job);
            return;
        }
        Ok(false) => {
            let _ = state.store.cancel_scan(&job.tenant, &job.id);
            job.state = JobState::Cancelled;
            job.finished = Some(now_ms());
        }
        Err(e) => {
            // A failed scan covers nothing: cancelling its record keeps it from marking
            // anything gone.
            let _ = state.store.cancel_scan(&job.tenant, &job.id);
            job.state = JobState::Failed;
            job.error = Some(e);
            job.finished = Some(now_ms());
            state.metrics.scans_failed.inc();
        }
    }
    // Another writer (a cancel request) may have changed the job meanwhile; the state
    // decided here wins, except that a cancel stays a cancel.
    if let Ok(current) = state.store.job(&job.tenant, &job.id) {
        if current.state == JobState::Cancelled && job.state != JobState::Completed {
            job.state = JobState::Cancelled;
        }
    }
    let _ = state.store.put_job(&job);
}

impl RunHandle {
    fn stop_requested_by_user(&self) -> bool {
        self.stop.load(Ordering::SeqCst) && !self.shutdown.load(Ordering::SeqCst)
    }
}

/// Why a job may no longer run for its tenant, if it may not: the scope is checked again
/// when a scan is taken up, as it may have shrunk since the request.
pub(super) fn scope_problem(scope: &Scope, job: &ScanJob) -> Result<(), String> {
    check_scope(scope, &job.request).map_err(|e| {
        let why: Vec<String> = e
            .refused
            .iter()
            .map(|r| format!("{}: {}", r.target, r.reason))
            .collect();
        format!("no longer in scope: {} {}", e.detail, why.join("; "))
    })
}

/// A job's port probing, planned: the same plan, order and settings whoever runs it —
/// the in-process workers, or remote ones through the shards they are sent.
pub(super) struct PortWork {
    pub plan: Plan,
    pub settings: EngineSettings,
    /// The UDP probes' settings: every ICMP port unreachable is reported, as it is the
    /// only evidence that a UDP service is gone.
    pub udp_settings: EngineSettings,
    seed: u64,
    shards: u32,
    udp_shards: u32,
}

impl PortWork {
    fn tcp_shards(&self) -> u32 {
        self.shards.saturating_sub(self.udp_shards)
    }

    /// The positions of port shard `k` in its space's order: shards `0..tcp` cut the
    /// TCP space, the rest the UDP space.
    fn range(&self, k: u32) -> Result<(u64, u64), String> {
        let tcp = self.tcp_shards();
        if k < tcp {
            return Ok(ShardSelector {
                k: u64::from(k) + 1,
                n: u64::from(tcp),
            }
            .range(self.plan.space.size()));
        }
        let udp = self
            .plan
            .udp
            .as_ref()
            .ok_or("the scan's UDP space is gone")?;
        Ok(ShardSelector {
            k: u64::from(k - tcp) + 1,
            n: u64::from(self.udp_shards),
        }
        .range(udp.space.size()))
    }

    /// Shard `k` as a remote worker gets it.
    pub fn spec(&self, k: u32) -> Result<ShardSpec, String> {
        let range = self.range(k)?;
        if k < self.tcp_shards() {
            return Ok(ShardSpec::from_plan(
                &self.plan,
                self.seed,
                vec![range],
                self.settings.clone(),
            ));
        }
        let udp = self
            .plan
            .udp
            .as_ref()
            .ok_or("the scan's UDP space is gone")?;
        Ok(ShardSpec::from_udp_plan(
            &self.plan,
            udp,
            self.seed,
            vec![range],
            self.udp_settings.clone(),
        ))
    }
}

/// Plans a job's port probing (none without targets), refusing a plan that no longer
/// matches what was accepted.
pub(super) async fn port_work(
    state: &SharedState,
    job: &ScanJob,
    scope: &Scope,
) -> Result<Option<PortWork>, String> {
    if job.port_shards == 0 {
        return Ok(None);
    }
    let connect = use_connect(state, &job.request);
    let mut p = plan(&target_request(&job.request, scope, connect))
        .await
        .map_err(|e| e.to_string())?;
    p.guard.allowed = Some(scope_sets(scope));
    let (tcp_total, udp_total) = plan_sizes(&p);
    if tcp_total + udp_total != job.probes_total {
        return Err("the plan changed since the scan was accepted (scope exclusions?)".into());
    }
    let remote = state.config.bus_url.is_some();
    // The tenant's opt-in as it stands when the scan starts; it travels in the shard
    // spec to whichever worker runs the grabs.
    let login_checks = state
        .store
        .policy_settings(&job.tenant)
        .map_err(|e| e.to_string())?
        .login_checks;
    let settings = EngineSettings {
        scan_id: job.id.clone(),
        use_connect: connect,
        rate: RateHandle::new(u64::from(
            job.request.rate.unwrap_or(state.config.default_rate),
        )),
        per_net_rate: remote.then_some(state.config.per_net_rate),
        retries: 1,
        timeout: Duration::from_millis(state.config.connect_timeout_ms),
        concurrency: 512,
        show_closed: false,
        // Evidence that a host still answers: without it nothing is called gone.
        closed_hosts: true,
        wait: Duration::from_secs_f64(state.config.syn_wait_secs.clamp(0.0, 60.0)),
        source_ip: None,
        source_ports: (61000, 4096),
        ttl: 64,
        grab: job.request.grab.then(|| GrabSettings {
            deadline: Duration::from_secs_f64(state.config.grab_timeout_secs.clamp(0.1, 120.0)),
            concurrency: state.config.grab_concurrency,
            login_checks,
            ..GrabSettings::default()
        }),
    };
    let udp_settings = EngineSettings {
        // Raw datagrams whatever the TCP probe: a worker that cannot open raw sockets
        // hands the shard back, as it does a SYN shard.
        use_connect: false,
        show_closed: true,
        grab: None,
        ..settings.clone()
    };
    Ok(Some(PortWork {
        plan: p,
        settings,
        udp_settings,
        seed: job.seed,
        shards: job.port_shards,
        udp_shards: job.udp_shards,
    }))
}

/// Runs every shard not yet stored. `Ok(true)`: all done; `Ok(false)`: stopped.
fn run_shards(
    state: &SharedState,
    rt: &tokio::runtime::Runtime,
    job: &ScanJob,
    h: &RunHandle,
) -> Result<bool, String> {
    let store = &state.store;
    let scope = store.scope(&job.tenant).map_err(|e| e.to_string())?;
    scope_problem(&scope, job)?;
    let scan = store
        .scan(&job.tenant, &job.id)
        .map_err(|e| e.to_string())?;
    if let Some(work) = rt.block_on(port_work(state, job, &scope))? {
        let mut work = work;
        // The handle the tenant's rate cap adjusts while the scan runs (TCP and UDP).
        work.settings.rate = h.rate.clone();
        work.udp_settings.rate = h.rate.clone();
        let work = work;
        let tcp = work.tcp_shards();
        let remaining = |shards: std::ops::Range<u32>| -> Result<Vec<_>, String> {
            let mut out = Vec::new();
            for shard in shards {
                let (start, end) = work.range(shard)?;
                if scan.shards_done.contains(&shard) {
                    h.probes_before.fetch_add(end - start, Ordering::Relaxed);
                } else {
                    out.push((shard, (start, end)));
                }
            }
            Ok(out)
        };
        let p = &work.plan;
        let tcp_left = remaining(0..tcp)?;
        if p.tcp && !tcp_left.is_empty() {
            if h.stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            let space = Arc::new(p.space.clone());
            let order = Permutation::new(space.size(), job.seed);
            let engine = |segments: &[(u64, u64)], sink: Arc<ShardSink>| {
                run_segments(
                    rt,
                    &work.settings,
                    p,
                    &space,
                    order,
                    segments,
                    &h.progress,
                    &h.stop,
                    sink,
                )
            };
            if !run_port_shards(state, job, h, &engine, tcp_left)? {
                return Ok(false);
            }
        }
        let udp_left = remaining(tcp..job.port_shards)?;
        if let (Some(udp), false) = (&p.udp, udp_left.is_empty()) {
            if h.stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            let order = Permutation::new(udp.space.size(), job.seed);
            let engine = |segments: &[(u64, u64)], sink: Arc<ShardSink>| {
                run_udp_segments(
                    &work.udp_settings,
                    p,
                    udp,
                    order,
                    segments,
                    &h.progress,
                    &h.stop,
                    sink,
                )
            };
            if !run_port_shards(state, job, h, &engine, udp_left)? {
                return Ok(false);
            }
        }
    }
    if !job.request.domains.is_empty() && !scan.shards_done.contains(&job.port_shards) {
        if h.stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let observations = rt.block_on(enumerate_domains(state, &job.request.domains))?;
        store_batch(state, job, (job.port_shards, None), observations, h)?;
    }
    Ok(true)
}

/// One engine run over the given segments of a planned space (TCP or UDP).
type Engine<'a> = dyn Fn(&[(u64, u64)], Arc<ShardSink>) -> Result<Finished, Failure> + 'a;

/// Results of at most this many probes (under 1 KiB each) are held between the wire and
/// the store: the engine holds back a shard that would go beyond, unless it is one of
/// the next two to store. 16 shards of the default size: more than a second of probes
/// at the highest rate, so the wait for late replies does not hold the sender back.
const IN_FLIGHT_PROBES: u64 = 1 << 16;

/// What a port run hands to the store thread.
enum ShardEvent {
    Observation(usize, Box<PortObservation>),
    /// Segment complete: its observations all came before this.
    Done(usize),
}

/// The service's sink: observations go, by their shard, to the store thread; a shard
/// may start while fewer than `ahead` shards are sent but not yet stored.
struct ShardSink {
    events: std::sync::mpsc::Sender<ShardEvent>,
    /// Segments of this run stored so far (stored in order: 0..stored).
    stored: Arc<AtomicUsize>,
    ahead: usize,
    state: SharedState,
    progress: Arc<Progress>,
    /// Probes already counted into the probes-sent metric.
    counted: AtomicU64,
}

impl ShardSink {
    /// Brings the probes-sent metric up to the engine's counter.
    fn count_probes(&self) {
        let sent = Progress::get(&self.progress.sent);
        let before = self.counted.swap(sent, Ordering::Relaxed);
        self.state
            .metrics
            .probes_sent
            .inc_by(sent.saturating_sub(before));
    }
}

impl PortSink for ShardSink {
    fn observation(&self, segment: usize, obs: PortObservation) -> bool {
        self.events
            .send(ShardEvent::Observation(segment, Box::new(obs)))
            .is_ok()
    }

    fn segment_done(&self, segment: usize) {
        let _ = self.events.send(ShardEvent::Done(segment));
    }

    fn may_start(&self, segment: usize) -> bool {
        self.count_probes();
        segment < self.stored.load(Ordering::Acquire) + self.ahead
    }
}

/// Runs the port shards not yet stored (`remaining`: shard number and range) in one
/// engine run, so late replies are waited for once for the scan instead of once per
/// shard, and stores each shard's batch on a thread of its own — in shard order, once
/// all its probes were sent, its replies had their wait and its grabs finished — while
/// the next shards are probed. `Ok(false)`: stopped (what was stored stays).
fn run_port_shards(
    state: &SharedState,
    job: &ScanJob,
    h: &RunHandle,
    engine: &Engine<'_>,
    remaining: Vec<(u32, (u64, u64))>,
) -> Result<bool, String> {
    let shard_probes = state.config.shard_probes.max(1);
    let ahead = usize::try_from(IN_FLIGHT_PROBES / shard_probes)
        .unwrap_or(usize::MAX)
        .max(2);
    let (tx, rx) = std::sync::mpsc::channel();
    let stored = Arc::new(AtomicUsize::new(0));
    let sink = Arc::new(ShardSink {
        events: tx,
        stored: stored.clone(),
        ahead,
        state: state.clone(),
        progress: h.progress.clone(),
        counted: AtomicU64::new(Progress::get(&h.progress.sent)),
    });
    let segments: Vec<(u64, u64)> = remaining.iter().map(|&(_, range)| range).collect();
    let finished = std::thread::scope(|scope| {
        let store = std::thread::Builder::new()
            .name(format!("store-{}", job.id))
            .spawn_scoped(scope, || {
                store_shards(state, job, h, &remaining, rx, &stored)
            })
            .map_err(|e| format!("cannot start the store thread: {e}"))?;
        let finished = engine(&segments, sink.clone());
        sink.count_probes();
        // The last sender goes: the store thread stores what is complete and ends.
        drop(sink);
        let stored = store
            .join()
            .map_err(|_| "the store thread panicked".to_owned())?;
        stored?;
        finished.map_err(|e| e.to_string())
    })?;
    if finished.interrupted_at.is_some() {
        return if h.stop.load(Ordering::SeqCst) {
            Ok(false)
        } else {
            // Nobody asked to stop: the results had nowhere to go.
            Err("the scan stopped early: its results could not be handed to the store".into())
        };
    }
    let done = stored.load(Ordering::Acquire);
    if done == remaining.len() {
        Ok(true)
    } else if h.stop.load(Ordering::SeqCst) {
        // Stopped after the last probe: the shards not yet stored run again.
        Ok(false)
    } else {
        Err(format!(
            "shard {} was probed but its results never completed",
            remaining.get(done).map_or(0, |&(shard, _)| shard)
        ))
    }
}

/// The store thread: batches observations per shard and stores each complete shard,
/// in order, with the policy run after it. Stores nothing more once the run is stopped
/// (the shards not stored run again on resume).
fn store_shards(
    state: &SharedState,
    job: &ScanJob,
    h: &RunHandle,
    shards: &[(u32, (u64, u64))],
    events: std::sync::mpsc::Receiver<ShardEvent>,
    stored: &AtomicUsize,
) -> Result<(), String> {
    let mut batches: HashMap<usize, Vec<Observation>> = HashMap::new();
    let mut complete: BTreeSet<usize> = BTreeSet::new();
    let mut next = 0;
    for event in events {
        match event {
            ShardEvent::Observation(segment, obs) => {
                batches
                    .entry(segment)
                    .or_default()
                    .push(Observation::Port(*obs));
            }
            ShardEvent::Done(segment) => {
                complete.insert(segment);
            }
        }
        while complete.first() == Some(&next) {
            complete.remove(&next);
            let Some(&(shard, range)) = shards.get(next) else {
                break;
            };
            if h.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let observations = batches.remove(&next).unwrap_or_default();
            if let Err(e) = store_batch(state, job, (shard, Some(range)), observations, h) {
                // Stopping the run too; after a stop (a cancel marks the scan
                // cancelled) a refused batch is no failure.
                let stopped = h.stop.swap(true, Ordering::SeqCst);
                return if stopped { Ok(()) } else { Err(e) };
            }
            next += 1;
            stored.store(next, Ordering::Release);
        }
    }
    Ok(())
}

fn store_batch(
    state: &SharedState,
    job: &ScanJob,
    (shard, range): (u32, Option<(u64, u64)>),
    observations: Vec<Observation>,
    h: &RunHandle,
) -> Result<(), String> {
    let began = Instant::now();
    let n = observations.len() as u64;
    let batch = Batch {
        scan: job.id.clone(),
        shard,
        range,
        at: now_ms(),
        observations,
    };
    state
        .store
        .apply(&job.tenant, &batch)
        .map_err(|e| format!("storing shard {shard}: {e}"))?;
    state.metrics.ingest_batches.inc();
    state.metrics.results.inc_by(n);
    state
        .metrics
        .ingest_seconds
        .observe(began.elapsed().as_secs_f64());
    h.found.fetch_add(n, Ordering::Relaxed);
    state
        .store
        .run_policy(&job.tenant, now_ms())
        .map_err(|e| format!("policy after shard {shard}: {e}"))?;
    Ok(())
}

async fn enumerate_domains(
    state: &SharedState,
    domains: &[String],
) -> Result<Vec<Observation>, String> {
    let resolvers = if state.config.resolvers.is_empty() {
        crate::domains::system_resolvers()?
    } else {
        state
            .config
            .resolvers
            .iter()
            .map(|r| crate::domains::resolver_addr(r))
            .collect::<Result<Vec<_>, _>>()?
    };
    let result = aperture_mapper::dns::enumerate_domains(domains, resolvers, state.config.dns_qps)
        .await
        .map_err(|e| e.to_string())?;
    let mut out: Vec<Observation> = result.zones.into_iter().map(Observation::Zone).collect();
    out.extend(result.names.into_iter().map(Observation::Name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(cidrs: &[&str], domains: &[&str], special: bool) -> Scope {
        Scope {
            cidrs: cidrs.iter().map(|c| c.parse().expect("net")).collect(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            exclusions: vec!["198.18.1.128/25".parse().expect("net")],
            allow_special: special,
        }
    }

    fn req(targets: &[&str], domains: &[&str]) -> ScanRequest {
        ScanRequest {
            targets: targets.iter().map(|t| t.to_string()).collect(),
            ports: None,
            top_ports: None,
            domains: domains.iter().map(|d| d.to_string()).collect(),
            rate: None,
            grab: true,
            probe: None,
            udp: None,
        }
    }

    #[test]
    fn scope_refuses_each_target_with_its_reason() {
        let s = scope(&["198.18.1.0/24"], &["corp.test"], false);
        let e = check_scope(&s, &req(&["198.18.1.5"], &[])).expect_err("special range");
        assert_eq!(e.status.as_u16(), 403);
        assert!(
            e.refused[0].reason.contains("special-purpose"),
            "{:?}",
            e.refused
        );
        let s = scope(&["198.18.1.0/24"], &["corp.test"], true);
        assert!(check_scope(
            &s,
            &req(&["198.18.1.0/25", "198.18.1.9"], &["www.corp.test"])
        )
        .is_ok());
        let e = check_scope(
            &s,
            &req(
                &["198.18.1.0/24", "198.18.2.1", "example.org"],
                &["corp.test.evil", "corp.test"],
            ),
        )
        .expect_err("outside");
        let targets: Vec<&str> = e.refused.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(
            targets,
            vec![
                "198.18.1.0/24",
                "198.18.2.1",
                "example.org",
                "corp.test.evil"
            ]
        );
        assert!(
            e.refused[0].reason.contains("198.18.1.128"),
            "the excluded half: {:?}",
            e.refused[0]
        );
        let bad = check_scope(&s, &req(&["198.18.1.0/33"], &[])).expect_err("bad cidr");
        assert_eq!(bad.status.as_u16(), 400);
    }

    #[test]
    fn port_lists_become_ranges() {
        assert_eq!(
            port_ranges(&[443, 22, 80, 81, 82]),
            vec![(22, 22), (80, 82), (443, 443)]
        );
        assert_eq!(port_ranges(&[65535, 65534]), vec![(65534, 65535)]);
    }
}
