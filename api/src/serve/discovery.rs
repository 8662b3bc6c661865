//! The discovery loop: a tenant's seeds grow into its whole surface, round by round —
//! zones → names → addresses → ports and grabs → certificates → names — inside scope
//! only, until a round finds nothing new or a limit of the tenant's settings is reached.
//!
//! A round is a DNS pass (run here: seed zones, names met since, PTR of the addresses
//! scanned last round) stored as a scan of its own, then a port scan of the new in-scope
//! addresses through the ordinary job queue (so scope checks, the change feed and the
//! policy are the same as for any scan), then the certificates those scans grabbed.
//! Nothing outside scope is ever handed to a scan: it becomes a candidate with the
//! evidence that led to it. Every scan request is also checked by `jobs::submit`.
//!
//! The driver is one task ticking with the scheduler; its state is in the store, so a
//! restart resumes a loop where it was.

use super::error::ApiError;
use super::jobs::submit;
use super::state::{now_ms, SharedState};
use aperture_fingerprints::dns::observation::{NameObservation, NameStatus, Source};
use aperture_fingerprints::dns::DomainName;
use aperture_mapper::dns::{enumerate, DomainOptions, Wordlist};
use aperture_storage::access::{JobState, ScanJob, Scope};
use aperture_storage::candidates::{
    CandidateKind, CandidateState, DiscoverySettings, FoundBy, LoopState, LoopStatus, Proposed,
    Provenance, RoundSummary,
};
use aperture_storage::{AssetFilter, AssetKey, AssetKind, Batch, Coverage, Observation, TenantId};
use classify::request;
pub use classify::{
    address_in_scope, classify_certificate, classify_names, name_in_scope, Proposal,
};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// An evidence chain and how its head was found.
pub type Chain = (FoundBy, Vec<String>);

/// Tenants whose analysts asked for a loop now.
static RUN_NOW: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

pub fn request_run(tenant: &TenantId) {
    RUN_NOW
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(tenant.to_string());
}

fn take_run_request(tenant: &TenantId) -> bool {
    RUN_NOW
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(tenant.as_str())
}

fn mark(scope: &Scope, settings: &DiscoverySettings) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(scope)
        .unwrap_or_default()
        .hash(&mut h);
    serde_json::to_string(settings)
        .unwrap_or_default()
        .hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Starts the driver.
pub fn start(state: &SharedState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let every = Duration::from_secs(state.config.scheduler_secs.max(1));
        loop {
            tokio::time::sleep(every).await;
            if state.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let Ok(tenants) = state.store.tenants() else {
                continue;
            };
            for t in tenants {
                if let Err(e) = tick(&state, &t.id).await {
                    eprintln!("discovery of {}: {e}", t.id);
                    if let Ok(mut s) = state.store.loop_state(&t.id) {
                        s.status = LoopStatus::Failed;
                        s.error = Some(e);
                        s.finished = Some(now_ms());
                        s.waiting_on = None;
                        let _ = state.store.put_loop_state(&t.id, &s);
                    }
                }
            }
        }
    })
}

/// One step of a tenant's loop: start one if due, or move the running one on.
async fn tick(state: &SharedState, tenant: &TenantId) -> Result<(), String> {
    let store = &state.store;
    let Some(settings) = store
        .discovery_settings(tenant)
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let scope = store.scope(tenant).map_err(|e| e.to_string())?;
    let mut s = store.loop_state(tenant).map_err(|e| e.to_string())?;
    let now = now_ms();
    if s.status != LoopStatus::Running {
        let m = mark(&scope, &settings);
        let trigger = if take_run_request(tenant) {
            Some("requested")
        } else if m != s.mark {
            Some(if s.mark.is_empty() {
                "settings set"
            } else {
                "scope or settings changed"
            })
        } else if s.next_run.is_some_and(|t| t <= now) {
            Some("schedule")
        } else {
            None
        };
        let Some(trigger) = trigger else {
            return Ok(());
        };
        s = LoopState {
            status: LoopStatus::Running,
            round: 1,
            phase: "dns".into(),
            trigger: Some(trigger.into()),
            started: Some(now),
            mark: m,
            ..LoopState::default()
        };
        for net in &settings.cidrs {
            s.queued.insert(
                net.to_string(),
                (FoundBy::Seed, vec![format!("seed network {net}")]),
            );
        }
        store
            .put_loop_state(tenant, &s)
            .map_err(|e| e.to_string())?;
    }
    if s.phase == "dns" {
        dns_round(state, tenant, &scope, &settings, &mut s).await?;
        s.phase = "ports".into();
        store
            .put_loop_state(tenant, &s)
            .map_err(|e| e.to_string())?;
    }
    if s.phase == "ports" {
        ports_round(state, tenant, &scope, &settings, &mut s).await?;
        store
            .put_loop_state(tenant, &s)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Zones the loop enumerates: the seed zones and approved name candidates, each with
/// the chain that puts it there.
fn zones(
    state: &SharedState,
    tenant: &TenantId,
    settings: &DiscoverySettings,
) -> Result<BTreeMap<String, Chain>, String> {
    let mut out = BTreeMap::new();
    for d in &settings.domains {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        out.insert(d.clone(), (FoundBy::Seed, vec![format!("seed zone {d}")]));
    }
    for c in approved(state, tenant, CandidateKind::Name)? {
        out.entry(c.0).or_insert(c.1);
    }
    Ok(out)
}

fn approved(
    state: &SharedState,
    tenant: &TenantId,
    kind: CandidateKind,
) -> Result<Vec<(String, Chain)>, String> {
    let list = state
        .store
        .candidates(tenant, Some(CandidateState::Approved))
        .map_err(|e| e.to_string())?;
    Ok(list
        .into_iter()
        .filter(|c| c.kind == kind)
        .map(|c| {
            let mut steps = c.evidence.clone();
            steps.push(format!(
                "approved by {}",
                c.decided_by.as_deref().unwrap_or("an analyst")
            ));
            (c.value, (FoundBy::CandidateApproval, steps))
        })
        .collect())
}

fn resolvers(state: &SharedState) -> Result<Vec<std::net::SocketAddr>, String> {
    if state.config.resolvers.is_empty() {
        crate::domains::system_resolvers()
    } else {
        state
            .config
            .resolvers
            .iter()
            .map(|r| crate::domains::resolver_addr(r))
            .collect()
    }
}

async fn dns_round(
    state: &SharedState,
    tenant: &TenantId,
    scope: &Scope,
    settings: &DiscoverySettings,
    s: &mut LoopState,
) -> Result<(), String> {
    let store = &state.store;
    let zones = zones(state, tenant, settings)?;
    let first = s.round == 1;
    let mut asked: BTreeMap<String, Chain> = std::mem::take(&mut s.pending_names);
    if first {
        for n in &settings.names {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            asked.insert(n.clone(), (FoundBy::Seed, vec![format!("seed name {n}")]));
        }
    }
    let opts = |certificate_names: Vec<String>, ptr: Vec<IpAddr>, full: bool| DomainOptions {
        resolvers: Vec::new(),
        qps: state.config.dns_qps,
        wordlist: if full {
            Wordlist::Builtin
        } else {
            Wordlist::None
        },
        axfr: full,
        certificate_names,
        ptr_addresses: ptr,
        ..DomainOptions::default()
    };
    let resolvers = resolvers(state)?;
    // PTR one address at a time, so each name carries the address that named it.
    for ip in std::mem::take(&mut s.pending_ptr) {
        let Ok(addr) = ip.parse::<IpAddr>() else {
            continue;
        };
        let via = s
            .addresses
            .get(&ip)
            .cloned()
            .unwrap_or((FoundBy::Enumeration, Vec::new()));
        let o = DomainOptions {
            resolvers: resolvers.clone(),
            ..opts(Vec::new(), vec![addr], false)
        };
        let found = enumerate(&[], o).await.map_err(|e| e.to_string())?;
        for n in found
            .names
            .iter()
            .filter(|n| n.found_by.contains(&Source::Ptr))
        {
            if s.names.contains_key(&n.name) || asked.contains_key(&n.name) {
                continue;
            }
            let mut steps = via.1.clone();
            steps.push(format!("PTR {}", n.name));
            if name_in_scope(scope, &n.name) {
                asked.insert(n.name.clone(), (FoundBy::ReverseDns, steps));
            } else {
                propose(
                    state,
                    tenant,
                    Proposal {
                        kind: CandidateKind::Name,
                        value: n.name.clone(),
                        found_by: FoundBy::ReverseDns,
                        evidence: steps,
                        provider: None,
                    },
                )?;
            }
        }
    }
    let seeds: Vec<DomainName> = zones
        .keys()
        .filter_map(|z| DomainName::parse(z).ok())
        .collect();
    let o = DomainOptions {
        resolvers,
        ..opts(asked.keys().cloned().collect(), Vec::new(), first)
    };
    let result = enumerate(&seeds, o).await.map_err(|e| e.to_string())?;
    let outcome = classify_names(scope, &result.names, &asked, &zones, &s.names);
    let mut summary = RoundSummary {
        round: s.round,
        ..RoundSummary::default()
    };
    for p in outcome.proposals {
        summary.new_candidates += u64::from(propose(state, tenant, p)?);
    }
    for (id, steps) in &outcome.extend {
        store
            .extend_candidate_evidence(tenant, id, steps)
            .map_err(|e| e.to_string())?;
    }
    // Only what the scope covers is the tenant's: names outside it stay candidates.
    let mut observations: Vec<Observation> = result
        .zones
        .into_iter()
        .filter(|z| name_in_scope(scope, &z.zone))
        .map(Observation::Zone)
        .collect();
    let stored: Vec<&NameObservation> = result
        .names
        .iter()
        .filter(|n| name_in_scope(scope, &n.name))
        .collect();
    observations.extend(stored.iter().map(|n| Observation::Name((*n).clone())));
    let scan = store_dns(
        state,
        tenant,
        s.round,
        zones.keys().cloned().collect(),
        observations,
    )?;
    summary.dns_scan = Some(scan.clone());
    let now = now_ms();
    for (name, chain) in outcome.names {
        if s.names.len() >= settings.max_names {
            s.held_back += 1;
            continue;
        }
        let exists = stored.iter().any(|n| {
            n.name == name && matches!(n.status, NameStatus::Resolved | NameStatus::NoData)
        });
        if exists {
            if let Ok(asset) = AssetKey::domain(&name) {
                provenance(state, tenant, asset, &chain, s.round, &scan, now)?;
            }
        }
        summary.new_names += 1;
        s.names.insert(name, chain);
    }
    let approved: BTreeMap<String, Chain> = approved(state, tenant, CandidateKind::Address)?
        .into_iter()
        .collect();
    for (ip, chain) in outcome.addresses {
        let key = ip.to_string();
        if s.addresses.contains_key(&key) || s.queued.contains_key(&key) {
            continue;
        }
        if s.addresses.len() + s.queued.len() >= settings.max_addresses {
            s.held_back += 1;
            continue;
        }
        // An address an analyst approved carries the approval's chain.
        let chain = approved.get(&key).cloned().unwrap_or(chain);
        s.queued.insert(key, chain);
    }
    s.rounds.push(summary);
    Ok(())
}

fn propose(state: &SharedState, tenant: &TenantId, p: Proposal) -> Result<bool, String> {
    let done = state
        .store
        .propose_candidate(tenant, p, now_ms())
        .map_err(|e| e.to_string())?;
    Ok(matches!(done, Proposed::New(_)))
}

fn provenance(
    state: &SharedState,
    tenant: &TenantId,
    asset: AssetKey,
    chain: &Chain,
    round: u32,
    scan: &str,
    at: i64,
) -> Result<(), String> {
    state
        .store
        .record_provenance(
            tenant,
            &Provenance {
                asset,
                found_by: chain.0,
                evidence: chain.1.clone(),
                round,
                scan: scan.to_owned(),
                at,
            },
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Stores a DNS pass as a scan of its own. It covers no domain: a name the pass did not
/// ask about again is not gone (the full enumerations of ordinary scans judge that).
fn store_dns(
    state: &SharedState,
    tenant: &TenantId,
    round: u32,
    zones: Vec<String>,
    observations: Vec<Observation>,
) -> Result<String, String> {
    let store = &state.store;
    let n = store
        .next_number(tenant, "scan")
        .map_err(|e| e.to_string())?;
    let id = format!("scan-{n}");
    let purpose = Some(format!("discovery round {round}: names"));
    let coverage = Coverage {
        probes: ["dns".to_owned()].into(),
        ..Coverage::default()
    };
    let now = now_ms();
    store
        .begin_scan(tenant, &id, coverage, 1, purpose.clone(), now)
        .map_err(|e| e.to_string())?;
    let batch = Batch {
        scan: id.clone(),
        shard: 0,
        range: None,
        at: now,
        observations,
    };
    store.apply(tenant, &batch).map_err(|e| e.to_string())?;
    store
        .run_policy(tenant, now_ms())
        .map_err(|e| e.to_string())?;
    let job = ScanJob {
        id: id.clone(),
        tenant: tenant.clone(),
        request: request(Vec::new(), zones),
        seed: 0,
        port_shards: 0,
        udp_shards: 0,
        probes_total: 0,
        state: JobState::Completed,
        requested: now,
        requested_by: "discovery loop".into(),
        started: Some(now),
        finished: Some(now_ms()),
        error: None,
        purpose,
        failed_shards: BTreeSet::new(),
        avoid: Vec::new(),
        until: None,
        window: None,
        windows_overridden_by: None,
    };
    store.put_job(&job).map_err(|e| e.to_string())?;
    Ok(id)
}

async fn ports_round(
    state: &SharedState,
    tenant: &TenantId,
    scope: &Scope,
    settings: &DiscoverySettings,
    s: &mut LoopState,
) -> Result<(), String> {
    let store = &state.store;
    if let Some(job_id) = s.waiting_on.clone() {
        let job = store.job(tenant, &job_id).map_err(|e| e.to_string())?;
        match job.state {
            JobState::Queued | JobState::Waiting | JobState::Running => return Ok(()),
            JobState::Completed => {}
            other => {
                return Err(format!(
                    "the loop's scan {job_id} ended {other:?}: {}",
                    job.error.unwrap_or_default()
                ))
            }
        }
        s.waiting_on = None;
        after_scan(state, tenant, scope, s, &job_id)?;
    } else if !s.queued.is_empty() {
        let targets: Vec<String> = s.queued.keys().cloned().collect();
        let mut req = request(targets, Vec::new());
        req.ports = settings.ports.clone();
        req.rate = settings.rate;
        let purpose = Some(format!("discovery round {}: ports", s.round));
        match submit(state, tenant, req, "discovery loop", purpose).await {
            Ok(job) => {
                s.waiting_on = Some(job.id.clone());
                if let Some(r) = s.rounds.last_mut() {
                    r.port_scan = Some(job.id);
                    r.new_addresses = s.queued.len() as u64;
                }
                let queued = std::mem::take(&mut s.queued);
                s.scanning = queued.keys().cloned().collect();
                s.addresses.extend(queued);
                return Ok(());
            }
            // The tenant's scan cap: try again next tick.
            Err(ApiError { status, .. }) if status.as_u16() == 429 => return Ok(()),
            Err(e) => return Err(format!("the loop's scan was refused: {}", e.detail)),
        }
    }
    // The round is over.
    s.scanning.clear();
    if s.pending_names.is_empty() && s.pending_ptr.is_empty() {
        finish(s, settings, LoopStatus::Done, None);
    } else if s.round >= settings.max_depth {
        let left = s.pending_names.len() + s.pending_ptr.len();
        s.held_back += left as u64;
        finish(
            s,
            settings,
            LoopStatus::Limited,
            Some(format!(
                "depth limit {} reached with {left} names and addresses left to follow",
                settings.max_depth
            )),
        );
    } else {
        s.round += 1;
        s.phase = "dns".into();
    }
    if s.status != LoopStatus::Running && s.held_back > 0 && s.stopped_by.is_none() {
        s.status = LoopStatus::Limited;
        s.stopped_by = Some(format!(
            "count limits (max_names {}, max_addresses {}) held back {}",
            settings.max_names, settings.max_addresses, s.held_back
        ));
    }
    Ok(())
}

fn finish(
    s: &mut LoopState,
    settings: &DiscoverySettings,
    status: LoopStatus,
    why: Option<String>,
) {
    let now = now_ms();
    s.status = status;
    s.stopped_by = why;
    s.phase.clear();
    s.finished = Some(now);
    s.next_run = settings
        .interval_secs
        .map(|secs| now.saturating_add(secs.saturating_mul(1000) as i64));
}

/// After a round's port scan: provenance of what it found, PTR of its addresses next
/// round, and the certificates' names.
fn after_scan(
    state: &SharedState,
    tenant: &TenantId,
    scope: &Scope,
    s: &mut LoopState,
    scan: &str,
) -> Result<(), String> {
    let store = &state.store;
    let now = now_ms();
    let mut new_candidates = 0;
    for target in s.scanning.clone() {
        let Ok(net) = target
            .parse::<IpNet>()
            .or_else(|_| target.parse::<IpAddr>().map(IpNet::from))
        else {
            continue;
        };
        let via = s
            .addresses
            .get(&target)
            .cloned()
            .unwrap_or((FoundBy::Enumeration, Vec::new()));
        let filter = AssetFilter {
            kind: Some(AssetKind::Service),
            net: Some(net),
            ..AssetFilter::default()
        };
        let services = store
            .list_assets(tenant, &filter, None, aperture_storage::MAX_PAGE)
            .map_err(|e| e.to_string())?;
        let mut hosts = BTreeSet::new();
        for svc in services.items {
            let (Some(ip), Some(port)) = (svc.key.address(), svc.key.port()) else {
                continue;
            };
            hosts.insert(ip);
            // A host of a seed network carries its own address in its chain.
            let host_chain = if net.prefix_len() == net.max_prefix_len() {
                via.clone()
            } else {
                let mut steps = via.1.clone();
                steps.push(format!("host {ip}"));
                (via.0, steps)
            };
            let Some(cert) = svc
                .fact("certificate")
                .and_then(|c| AssetKey::certificate(c).ok())
            else {
                continue;
            };
            let Ok(cert) = store.asset(tenant, &cert) else {
                continue;
            };
            let mut names: Vec<String> = cert
                .fact("sans")
                .unwrap_or_default()
                .split(' ')
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
            names.extend(cert.fact("subject_cn").map(str::to_owned));
            let mut known = s.names.clone();
            known.extend(s.pending_names.clone());
            let (inside, proposals) =
                classify_certificate(scope, (ip, port), &names, &host_chain, &known);
            for p in proposals {
                // Resolved next round, so its evidence shows where it points.
                s.pending_names
                    .entry(p.value.clone())
                    .or_insert((p.found_by, p.evidence.clone()));
                new_candidates += u64::from(propose(state, tenant, p)?);
            }
            s.pending_names.extend(inside);
        }
        for ip in hosts {
            let chain = if net.prefix_len() == net.max_prefix_len() {
                via.clone()
            } else {
                let mut steps = via.1.clone();
                steps.push(format!("host {ip}"));
                (via.0, steps)
            };
            provenance(
                state,
                tenant,
                AssetKey::Host(ip),
                &chain,
                s.round,
                scan,
                now,
            )?;
            s.addresses.entry(ip.to_string()).or_insert(chain);
            if net.prefix_len() != net.max_prefix_len() {
                s.pending_ptr.push(ip.to_string());
            }
        }
        // Reverse DNS of every single address scanned, open ports or not; of a seed
        // network, only of the hosts that answered.
        if net.prefix_len() == net.max_prefix_len() {
            s.pending_ptr.push(net.addr().to_string());
        }
    }
    if let Some(r) = s.rounds.last_mut() {
        r.new_candidates += new_candidates;
    }
    Ok(())
}

mod classify;
#[cfg(test)]
mod tests;
