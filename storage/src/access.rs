//! What the service keeps besides observations: API tokens, each tenant's authorised
//! scope, scan jobs and schedules, and the append-only audit log.
//!
//! Tokens and the audit log belong to the provider, not to one tenant, so their keys have
//! no tenant part; everything else is tenant-scoped like the rest of the store.

use crate::error::{Result, StoreError};
use crate::ingest::read_counter;
use crate::keys::{self, Rec, TenantId};
use crate::model::{Millis, Page};
use crate::policy::Role;
use crate::query::MAX_PAGE;
use crate::store::Store;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Global record tags (no tenant part). Lowercase, so they never meet a tenant record.
const TOKEN: u8 = b'k';
const AUDIT: u8 = b'u';
const GLOBAL_COUNTER: u8 = b'n';

/// An API token as stored: only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Token {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Tenants a non-admin token may act on; admins act on all.
    pub tenants: Vec<TenantId>,
    /// The first characters of the secret, so a user can tell tokens apart.
    pub prefix: String,
    pub sha256: String,
    pub created: Millis,
    pub created_by: String,
    pub revoked: Option<Millis>,
}

impl Token {
    pub fn may_act_on(&self, tenant: &TenantId) -> bool {
        self.role == Role::Admin || self.tenants.contains(tenant)
    }
}

/// Where a tenant has authorised scanning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Scope {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, format = "cidr"))]
    pub cidrs: Vec<IpNet>,
    /// Zones the tenant owns; names at or under them may be enumerated and scanned.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, format = "domain-name"))]
    pub domains: Vec<String>,
    /// Inside the CIDRs but never to be touched.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, format = "cidr"))]
    pub exclusions: Vec<IpNet>,
    /// The tenant's opt-in to special-purpose ranges (RFC 6890) inside its CIDRs.
    #[serde(default)]
    pub allow_special: bool,
}

/// What an analyst asks to scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScanRequest {
    /// Addresses, CIDRs or ranges.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(inline, value_type = Vec<String>, format = "scan-target"))]
    pub targets: Vec<String>,
    /// Ports as `aperture scan -p` takes them (`22,80,443`, `1-1024`); `U:` makes the
    /// ports after it UDP and `T:` TCP again (`T:22,443,U:53,161`, `U:5300=dns`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = "port-list"))]
    pub ports: Option<String>,
    /// Or the N most common ports of our own ranking.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 65535))]
    pub top_ports: Option<u16>,
    /// Zones to enumerate (and whose names' addresses to scan, when in scope).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(inline, value_type = Vec<String>, format = "domain-name"))]
    pub domains: Vec<String>,
    /// Probes per second, at most the service's max_rate (100000 unless configured lower).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100000))]
    pub rate: Option<u32>,
    /// Grab banners, TLS and HTTP on open ports.
    #[serde(default = "yes")]
    pub grab: bool,
    /// The port probe: `syn` (raw sockets) or `connect`; default: the service's engine.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^(syn|connect)$"))]
    pub probe: Option<aperture_fingerprints::Probe>,
    /// UDP presets as `aperture scan --udp` takes them: `common`, `amplifiers` or
    /// protocol names (`dns,snmp,ntp`), comma-separated. UDP needs raw sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = "^(common|all|amplifiers|dns|ntp|ntp-control|snmp|snmp1|snmp2c|snmpv2c|snmpv1|ssdp|netbios|netbios-ns|nbns|mdns|memcached|coap|ipmi|rmcp|stun|sip|quic|ike|ikev2|isakmp|wsd|ws-discovery|tftp)(,(common|all|amplifiers|dns|ntp|ntp-control|snmp|snmp1|snmp2c|snmpv2c|snmpv1|ssdp|netbios|netbios-ns|nbns|mdns|memcached|coap|ipmi|rmcp|stun|sip|quic|ike|ikev2|isakmp|wsd|ws-discovery|tftp))*$"
        )
    )]
    pub udp: Option<String>,
}

fn yes() -> bool {
    true
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobState {
    Queued,
    /// Outside its scan window (or in a blackout): it runs, or resumes, at `until`.
    Waiting,
    Running,
    Completed,
    Cancelled,
    Failed,
}

impl JobState {
    pub fn is_live(self) -> bool {
        matches!(
            self,
            JobState::Queued | JobState::Waiting | JobState::Running
        )
    }
}

/// A scan job: the request, the plan fixed when it was accepted (so a restart runs the
/// same shards), and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScanJob {
    pub id: String,
    pub tenant: TenantId,
    pub request: ScanRequest,
    /// Permutation seed: the same on every run of the job.
    pub seed: u64,
    /// Port-probe shards; a DNS enumeration, if any, is one more shard after them.
    pub port_shards: u32,
    /// How many of the port shards (the last ones) probe the scan's UDP ports.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub udp_shards: u32,
    pub probes_total: u64,
    pub state: JobState,
    pub requested: Millis,
    pub requested_by: String,
    pub started: Option<Millis>,
    pub finished: Option<Millis>,
    pub error: Option<String>,
    /// A verification scan names the finding it checks; a scheduled one its schedule.
    pub purpose: Option<String>,
    /// Shards remote workers gave up on (each ran out of deliveries): the scan waits
    /// for them until they are retried (`POST …/scans/{id}/retry`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub failed_shards: BTreeSet<u32>,
    /// Workers that may not run its shards (a verification asked again from another
    /// vantage than the ones that heard nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub avoid: Vec<String>,
    /// While `waiting`: when its window next opens (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Millis>,
    /// The window of the schedule that started it: it sends only inside it (and inside
    /// the tenant's windows, outside its blackouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<crate::windows::Window>,
    /// An analyst let this verification scan run outside the tenant's windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_overridden_by: Option<String>,
}

/// A recurring scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    pub id: String,
    pub name: String,
    pub request: ScanRequest,
    /// Seconds between runs, when it recurs by interval.
    pub interval_secs: Option<u64>,
    /// When it recurs by calendar: a run starts at each opening of this window and
    /// sends only while it is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<crate::windows::Window>,
    pub next_run: Millis,
    pub created: Millis,
    pub created_by: String,
    pub last_scan: Option<String>,
}

/// One audited call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    pub seq: u64,
    pub at: Millis,
    /// Token id and name, or `anonymous`.
    pub actor: String,
    pub role: Option<Role>,
    pub tenant: Option<TenantId>,
    /// `POST /v1/tenants/acme/scans`.
    pub action: String,
    /// HTTP status.
    pub status: u16,
    pub outcome: String,
    pub source: String,
}

fn global_key(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(rest.len() + 1);
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

impl Store {
    /// Stores a token; the caller made the secret and shows it once.
    pub fn put_token(&self, token: &Token) -> Result<()> {
        if token.role != Role::Admin && token.tenants.is_empty() {
            return Err(StoreError::Invalid(
                "a non-admin token needs at least one tenant".into(),
            ));
        }
        let _w = self.write_lock();
        for t in &token.tenants {
            self.require_tenant(t)?;
        }
        let mut tx = self.tx();
        tx.put_json(global_key(TOKEN, token.sha256.as_bytes()), token)?;
        tx.commit()
    }

    /// The live token with this secret hash.
    pub fn token_by_hash(&self, sha256: &str) -> Result<Option<Token>> {
        Ok(self
            .get_json::<Token>(&global_key(TOKEN, sha256.as_bytes()))?
            .filter(|t| t.revoked.is_none()))
    }

    pub fn tokens(&self) -> Result<Vec<Token>> {
        let mut out = Vec::new();
        for item in self.data.scan_prefix([TOKEN]) {
            out.push(serde_json::from_slice(&item?.1)?);
        }
        Ok(out)
    }

    pub fn revoke_token(&self, id: &str, now: Millis) -> Result<Token> {
        let _w = self.write_lock();
        let mut token = self
            .tokens()?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("token {id}")))?;
        if token.revoked.is_none() {
            // Without an admin token nobody can create tokens or tenants again through
            // the API: the provider would be locked out of its own service.
            let other_admins = self
                .tokens()?
                .iter()
                .filter(|t| t.role == Role::Admin && t.revoked.is_none() && t.id != token.id)
                .count();
            if token.role == Role::Admin && other_admins == 0 {
                return Err(StoreError::Refused(format!(
                    "token {id} is the last active admin token: revoking it would lock every \
                     admin out. Create another admin token first (POST /v1/tokens with \
                     role admin, or `aperture admin token-create --role admin`), then revoke this one"
                )));
            }
            token.revoked = Some(now);
            let mut tx = self.tx();
            tx.put_json(global_key(TOKEN, token.sha256.as_bytes()), &token)?;
            tx.commit()?;
        }
        Ok(token)
    }

    pub fn scope(&self, tenant: &TenantId) -> Result<Scope> {
        self.require_tenant(tenant)?;
        Ok(self
            .get_json(&keys::key(Rec::Scope, tenant, b""))?
            .unwrap_or_default())
    }

    pub fn set_scope(&self, tenant: &TenantId, scope: &Scope) -> Result<()> {
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let mut tx = self.tx();
        tx.put_json(keys::key(Rec::Scope, tenant, b""), scope)?;
        tx.commit()
    }

    pub fn put_job(&self, job: &ScanJob) -> Result<()> {
        let _w = self.write_lock();
        self.require_tenant(&job.tenant)?;
        let mut tx = self.tx();
        let key = keys::key(Rec::Job, &job.tenant, job.id.as_bytes());
        if job.state == JobState::Failed
            && tx.get_json::<ScanJob>(&key)?.map(|j| j.state) != Some(JobState::Failed)
        {
            let at = job.finished.unwrap_or(job.requested);
            let error = job.error.as_deref().unwrap_or("no reason given");
            crate::outbox::scan_failed(&mut tx, &job.tenant, &job.id, error, at)?;
        }
        tx.put_json(key, job)?;
        tx.commit()
    }

    pub fn job(&self, tenant: &TenantId, id: &str) -> Result<ScanJob> {
        self.get_json(&keys::key(Rec::Job, tenant, id.as_bytes()))?
            .ok_or_else(|| StoreError::NotFound(format!("scan {id}")))
    }

    /// Changes a job that is still live (queued, waiting, running), under the writer, so
    /// a cancel that came first stays a cancel. `Ok(None)`: it is no longer live.
    pub fn update_live_job(
        &self,
        tenant: &TenantId,
        id: &str,
        change: impl FnOnce(&mut ScanJob),
    ) -> Result<Option<ScanJob>> {
        let _w = self.write_lock();
        let key = keys::key(Rec::Job, tenant, id.as_bytes());
        let mut tx = self.tx();
        let Some(mut job) = tx.get_json::<ScanJob>(&key)? else {
            return Err(StoreError::NotFound(format!("scan {id}")));
        };
        if !job.state.is_live() {
            return Ok(None);
        }
        let before = job.clone();
        change(&mut job);
        if job != before {
            tx.put_json(key, &job)?;
            tx.commit()?;
        }
        Ok(Some(job))
    }

    pub fn jobs(&self, tenant: &TenantId) -> Result<Vec<ScanJob>> {
        let mut out = Vec::new();
        for item in self.data.scan_prefix(keys::prefix(Rec::Job, tenant)) {
            out.push(serde_json::from_slice(&item?.1)?);
        }
        Ok(out)
    }

    /// Queued and running jobs of every tenant: what a (re)started worker pool picks up.
    pub fn live_jobs(&self) -> Result<Vec<ScanJob>> {
        let mut out = Vec::new();
        for item in self.data.scan_prefix([b'J']) {
            let job: ScanJob = serde_json::from_slice(&item?.1)?;
            if job.state.is_live() {
                out.push(job);
            }
        }
        out.sort_by_key(|j| j.requested);
        Ok(out)
    }

    /// Next number of a per-tenant sequence (schedule ids, scan ids).
    pub fn next_number(&self, tenant: &TenantId, name: &str) -> Result<u64> {
        let _w = self.write_lock();
        let key = crate::ingest::counter_key(tenant, name);
        let mut tx = self.tx();
        let n = read_counter(&tx, &key)? + 1;
        tx.put(key, n.to_be_bytes().to_vec());
        tx.commit()?;
        Ok(n)
    }

    pub fn put_schedule(&self, tenant: &TenantId, s: &Schedule) -> Result<()> {
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let mut tx = self.tx();
        tx.put_json(keys::key(Rec::Schedule, tenant, s.id.as_bytes()), s)?;
        tx.commit()
    }

    pub fn schedule(&self, tenant: &TenantId, id: &str) -> Result<Schedule> {
        self.get_json(&keys::key(Rec::Schedule, tenant, id.as_bytes()))?
            .ok_or_else(|| StoreError::NotFound(format!("schedule {id}")))
    }

    pub fn schedules(&self, tenant: &TenantId) -> Result<Vec<Schedule>> {
        let mut out = Vec::new();
        for item in self.data.scan_prefix(keys::prefix(Rec::Schedule, tenant)) {
            out.push(serde_json::from_slice(&item?.1)?);
        }
        Ok(out)
    }

    pub fn delete_schedule(&self, tenant: &TenantId, id: &str) -> Result<()> {
        let _w = self.write_lock();
        self.schedule(tenant, id)?;
        let mut tx = self.tx();
        tx.delete(keys::key(Rec::Schedule, tenant, id.as_bytes()));
        tx.commit()
    }

    /// Appends to the audit log; records are never changed or removed.
    pub fn audit(&self, mut record: AuditRecord) -> Result<AuditRecord> {
        let _w = self.write_lock();
        let counter = global_key(GLOBAL_COUNTER, b"audit");
        let mut tx = self.tx();
        let seq = read_counter(&tx, &counter)?;
        tx.put(counter, (seq + 1).to_be_bytes().to_vec());
        record.seq = seq;
        tx.put_json(global_key(AUDIT, &seq.to_be_bytes()), &record)?;
        tx.commit()?;
        Ok(record)
    }

    /// Audit records after `cursor`, oldest first.
    pub fn audit_log(&self, cursor: Option<u64>, limit: usize) -> Result<Page<AuditRecord>> {
        let limit = limit.clamp(1, MAX_PAGE);
        let from = cursor.map_or(0, |c| c.saturating_add(1));
        let mut items = Vec::new();
        let mut more = false;
        for item in self
            .data
            .range(global_key(AUDIT, &from.to_be_bytes())..global_key(AUDIT + 1, b""))
        {
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(serde_json::from_slice::<AuditRecord>(&item?.1)?);
        }
        let next = if more {
            items.last().map(|r| r.seq.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }
}

/// Tenants a set of tokens covers, for listings.
pub fn tenants_of(token: &Token) -> BTreeSet<TenantId> {
    token.tenants.iter().cloned().collect()
}
