//! Sanctions, policy settings and findings as stored records, and the runs of the policy
//! that keep findings in step with assets, with sanctions and settings, and with time.
//!
//! The policy evaluates an asset when something it reads may have changed, and only
//! then; three paths find those assets through indexes, none walks the tenant:
//!
//! - **Scans.** [`Store::run_policy`] reads the change feed from its own cursor, so it
//!   runs after ingest rather than inside it: a batch is acknowledged as soon as its
//!   facts are safe, and the policy catches up in chunks, each chunk's findings
//!   committed together with the cursor that says it was done.
//! - **Edits.** A sanction or settings edit queues, in the same transaction as the edit,
//!   what it can change ([`policy::sanction_reach`], [`policy::settings_reach`]: the
//!   assets a sanction's match covers, the active findings of a rule...);
//!   [`Store::run_queued_policy`] evaluates exactly those, chunk by chunk, each chunk
//!   committed with the queue's progress.
//! - **Time.** Each evaluation records the next instant at which time alone would change
//!   the asset's judgement (a sanction's expiry, a zombie period's end, a certificate's
//!   expiring window and end, a risk acceptance's end) in a time-ordered index;
//!   [`Store::run_due_policy`] evaluates the entries that are due.
//!
//! A crash between a chunk's evaluation and its commit repeats the chunk, and
//! re-evaluating an asset is idempotent (finding ids are derived from rule, asset and
//! detail). [`Store::sweep_policy`], the full walk, is kept as a consistency check that
//! also rebuilds the indexes (after an import or an upgrade); it is not needed for
//! findings to be right.

use crate::error::{Result, StoreError};
use crate::ingest::{counter_key, link_prefix, read_counter};
use crate::keys::{self, AssetKey, AssetKind, Rec, TenantId};
use crate::model::{Asset, Coverage, Millis, Page, ScanState};
use crate::policy::{
    self, Actor, Context, Finding, FindingState, Note, PolicySettings, Reach, Rule, Sanction,
    SanctionMatch, Severity, TransitionRequest,
};
use crate::query::{AssetFilter, MAX_PAGE};
use crate::store::{Store, Tx};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Assets evaluated per committed chunk of a policy run.
const POLICY_CHUNK: usize = 2000;

/// A sanction as a user writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewSanction {
    #[serde(rename = "match")]
    pub matches: SanctionMatch,
    /// Who answers for this exposure (not blank).
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S"))]
    pub owner: String,
    /// Why it is approved (not blank).
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S"))]
    pub reason: String,
    #[serde(default)]
    pub ticket: Option<String>,
    /// When the sanction lapses: Unix milliseconds or RFC 3339.
    #[serde(default, deserialize_with = "crate::time::opt_millis")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::time::TimeInput>))]
    pub expires: Option<Millis>,
}

impl NewSanction {
    pub fn validate(&self) -> Result<()> {
        self.matches.validate()?;
        if self.owner.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a sanction needs an owner: who answers for this exposure".into(),
            ));
        }
        if self.reason.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a sanction needs a reason: why this exposure is approved".into(),
            ));
        }
        Ok(())
    }
}

/// One edit of a tenant's sanctions, for [`Store::apply_sanction_edit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SanctionEdit {
    Create(NewSanction),
    Update { id: String, new: NewSanction },
    Delete { id: String },
}

/// A scan a "fixed" claim asks for: the asset and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerificationRequest {
    pub id: String,
    pub finding: String,
    pub asset: AssetKey,
    pub coverage: Coverage,
    pub requested: Millis,
    pub requested_by: String,
    /// The scan the service started for it, once it has.
    pub scan: Option<String>,
    /// When a starter claimed it (see [`Store::claim_verification`]).
    #[serde(default)]
    pub claimed: Option<Millis>,
    /// Vantages (workers) not to run it from: those whose earlier verification of the
    /// same claim heard nothing from the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub avoid: Vec<String>,
}

/// A claim not turned into a scan within this long (the starter died) lapses.
const CLAIM_LAPSE_MS: Millis = 60_000;

/// What a policy run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyRun {
    pub assets_evaluated: u64,
    pub opened: u64,
    pub updated: u64,
    pub closed: u64,
    pub reopened: u64,
}

/// Filters of a findings listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingFilter {
    pub state: Option<FindingState>,
    /// Open, acknowledged, in progress or fixed-awaiting-verification.
    pub active: Option<bool>,
    pub severity: Option<Severity>,
    pub rule: Option<Rule>,
    pub asset: Option<AssetKey>,
    pub assignee: Option<String>,
    /// Overdue as of this time.
    pub overdue_at: Option<Millis>,
}

impl Store {
    pub fn policy_settings(&self, tenant: &TenantId) -> Result<PolicySettings> {
        self.require_tenant(tenant)?;
        Ok(self
            .get_json(&keys::key(Rec::Settings, tenant, b""))?
            .unwrap_or_default())
    }

    /// Replaces the tenant's settings, and queues the re-evaluation of what the change
    /// can touch ([`policy::settings_reach`] says what, and why that is all of it); run
    /// it with [`Store::run_queued_policy`].
    pub fn set_policy_settings(&self, tenant: &TenantId, settings: &PolicySettings) -> Result<()> {
        settings.validate()?;
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let old = self.policy_settings(tenant)?;
        let sanctions = self.sanctions(tenant)?;
        let mut tx = self.tx();
        tx.put_json(keys::key(Rec::Settings, tenant, b""), settings)?;
        for reach in policy::settings_reach(&old, settings, &sanctions) {
            queue(&mut tx, tenant, reach)?;
        }
        tx.commit()
    }

    pub fn sanctions(&self, tenant: &TenantId) -> Result<Vec<Sanction>> {
        let mut out = Vec::new();
        for item in self.data.scan_prefix(keys::prefix(Rec::Sanction, tenant)) {
            let (_, v) = item?;
            out.push(serde_json::from_slice(&v)?);
        }
        Ok(out)
    }

    pub fn sanction(&self, tenant: &TenantId, id: &str) -> Result<Sanction> {
        self.get_json(&keys::key(Rec::Sanction, tenant, id.as_bytes()))?
            .ok_or_else(|| StoreError::NotFound(format!("sanction {id}")))
    }

    /// Adds a sanction, and queues the re-evaluation of the assets its match covers
    /// ([`policy::sanction_reach`]); findings follow when [`Store::run_queued_policy`]
    /// runs.
    pub fn create_sanction(
        &self,
        tenant: &TenantId,
        new: NewSanction,
        created_by: &str,
        now: Millis,
    ) -> Result<Sanction> {
        new.validate()?;
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let mut tx = self.tx();
        let counter = counter_key(tenant, "sanctions");
        let n = read_counter(&tx, &counter)? + 1;
        tx.put(counter, n.to_be_bytes().to_vec());
        let sanction = Sanction {
            id: format!("s-{n}"),
            matches: new.matches,
            owner: new.owner,
            reason: new.reason,
            ticket: new.ticket,
            expires: new.expires,
            created: now,
            created_by: created_by.to_owned(),
        };
        tx.put_json(
            keys::key(Rec::Sanction, tenant, sanction.id.as_bytes()),
            &sanction,
        )?;
        for reach in policy::sanction_reach(None, Some(&sanction)) {
            queue(&mut tx, tenant, reach)?;
        }
        tx.commit()?;
        Ok(sanction)
    }

    /// Replaces a sanction, and queues the re-evaluation of what its old and new match
    /// cover and of the findings naming it ([`policy::sanction_reach`]).
    pub fn update_sanction(
        &self,
        tenant: &TenantId,
        id: &str,
        new: NewSanction,
    ) -> Result<Sanction> {
        new.validate()?;
        let _w = self.write_lock();
        let old = self.sanction(tenant, id)?;
        let mut sanction = old.clone();
        sanction.matches = new.matches;
        sanction.owner = new.owner;
        sanction.reason = new.reason;
        sanction.ticket = new.ticket;
        sanction.expires = new.expires;
        let mut tx = self.tx();
        tx.put_json(keys::key(Rec::Sanction, tenant, id.as_bytes()), &sanction)?;
        for reach in policy::sanction_reach(Some(&old), Some(&sanction)) {
            queue(&mut tx, tenant, reach)?;
        }
        tx.commit()?;
        Ok(sanction)
    }

    /// Withdraws a sanction, and queues the re-evaluation of what it covered and of the
    /// findings naming it ([`policy::sanction_reach`]).
    pub fn delete_sanction(&self, tenant: &TenantId, id: &str) -> Result<()> {
        let _w = self.write_lock();
        let old = self.sanction(tenant, id)?;
        let mut tx = self.tx();
        tx.delete(keys::key(Rec::Sanction, tenant, id.as_bytes()));
        for reach in policy::sanction_reach(Some(&old), None) {
            queue(&mut tx, tenant, reach)?;
        }
        tx.commit()
    }

    /// Applies a sanction edit and the re-evaluation it queued, before returning: what
    /// the service does in two steps (the request, then its background task), as one
    /// call for tools and benchmarks. The run also drains anything queued before.
    pub fn apply_sanction_edit(
        &self,
        tenant: &TenantId,
        edit: SanctionEdit,
        by: &str,
        now: Millis,
    ) -> Result<(Option<Sanction>, PolicyRun)> {
        let sanction = match edit {
            SanctionEdit::Create(new) => Some(self.create_sanction(tenant, new, by, now)?),
            SanctionEdit::Update { id, new } => Some(self.update_sanction(tenant, &id, new)?),
            SanctionEdit::Delete { id } => {
                self.delete_sanction(tenant, &id)?;
                None
            }
        };
        let run = self.run_queued_policy(tenant, now)?;
        Ok((sanction, run))
    }

    pub fn finding(&self, tenant: &TenantId, id: &str) -> Result<Finding> {
        self.get_json(&keys::key(Rec::Finding, tenant, id.as_bytes()))?
            .ok_or_else(|| StoreError::NotFound(format!("finding {id}")))
    }

    /// One page of findings in id order.
    pub fn findings(
        &self,
        tenant: &TenantId,
        filter: &FindingFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Finding>> {
        let limit = limit.clamp(1, MAX_PAGE);
        // A cursor is the id of the last finding of a page (`f-` and 32 hex digits); any
        // other would silently answer an empty last page.
        if let Some(c) = cursor {
            let id_like = c
                .strip_prefix("f-")
                .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            if !id_like {
                return Err(StoreError::Invalid(format!(
                    "cursor {c:?} is not one this listing gave: start without a cursor"
                )));
            }
        }
        let candidates: Box<dyn Iterator<Item = Result<Finding>>> = match &filter.asset {
            Some(asset) => Box::new(self.findings_of(tenant, asset)?.into_iter().map(Ok)),
            None => {
                let prefix = keys::prefix(Rec::Finding, tenant);
                let start = match cursor {
                    Some(c) => {
                        let mut k = keys::key(Rec::Finding, tenant, c.as_bytes());
                        k.push(0);
                        k
                    }
                    None => prefix.clone(),
                };
                Box::new(self.data.range(start..keys::prefix_end(&prefix)).map(
                    |item| -> Result<Finding> {
                        let (_, v) = item?;
                        Ok(serde_json::from_slice(&v)?)
                    },
                ))
            }
        };
        let mut items = Vec::new();
        let mut more = false;
        for f in candidates {
            let f = f?;
            if filter.asset.is_some() && cursor.is_some_and(|c| f.id.as_str() <= c) {
                continue;
            }
            let keep = filter.state.is_none_or(|s| f.state == s)
                && filter.active.is_none_or(|a| f.state.is_active() == a)
                && filter.severity.is_none_or(|s| f.severity == s)
                && filter.rule.is_none_or(|r| f.rule == r)
                && filter
                    .assignee
                    .as_ref()
                    .is_none_or(|a| f.assignee.as_ref() == Some(a))
                && filter.overdue_at.is_none_or(|now| f.overdue(now));
            if !keep {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(f);
        }
        let next = if more {
            items.last().map(|f: &Finding| f.id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Every finding of one asset, in id order.
    pub fn findings_of(&self, tenant: &TenantId, asset: &AssetKey) -> Result<Vec<Finding>> {
        let prefix = by_asset_prefix(tenant, asset);
        let mut out = Vec::new();
        for item in self.data.scan_prefix(&prefix) {
            let (k, _) = item?;
            let id =
                String::from_utf8_lossy(k.get(prefix.len()..).unwrap_or_default()).into_owned();
            if let Some(f) = self.get_json(&keys::key(Rec::Finding, tenant, id.as_bytes()))? {
                out.push(f);
            }
        }
        out.sort_by(|a: &Finding, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// A person moves a finding. Claiming "fixed" returns the verification scan to run.
    pub fn transition_finding(
        &self,
        tenant: &TenantId,
        id: &str,
        actor: &Actor,
        request: &TransitionRequest,
        now: Millis,
    ) -> Result<(Finding, Option<VerificationRequest>)> {
        let _w = self.write_lock();
        let mut finding = self.finding(tenant, id)?;
        let steps = finding.transitions.len();
        policy::transition(&mut finding, actor, request, now)?;
        let mut tx = self.tx();
        crate::siem::log_steps(&mut tx, tenant, &finding, steps)?;
        let verification = if finding.state == FindingState::Fixed {
            let v = verification_for(&finding, actor, now);
            tx.put_json(keys::key(Rec::Verification, tenant, v.id.as_bytes()), &v)?;
            tx.put(
                keys::key(Rec::Awaiting, tenant, finding.id.as_bytes()),
                Vec::new(),
            );
            Some(v)
        } else {
            tx.delete(keys::key(Rec::Awaiting, tenant, finding.id.as_bytes()));
            None
        };
        // An acceptance ends on its own: the time index brings the asset back then.
        if let Some(until) = policy::review_at(&finding) {
            schedule_by(&mut tx, tenant, &finding.asset, until)?;
        }
        index_finding(&mut tx, tenant, &finding);
        tx.put_json(keys::key(Rec::Finding, tenant, id.as_bytes()), &finding)?;
        tx.commit()?;
        Ok((finding, verification))
    }

    /// Asks again for the verification scan of a finding claimed fixed (the first scan
    /// could not start, or its result is in doubt). Recorded as a note.
    pub fn request_verification(
        &self,
        tenant: &TenantId,
        id: &str,
        actor: &Actor,
        now: Millis,
    ) -> Result<VerificationRequest> {
        policy::may_annotate(actor)?;
        let _w = self.write_lock();
        let mut finding = self.finding(tenant, id)?;
        if finding.state != FindingState::Fixed {
            return Err(StoreError::Refused(format!(
                "finding {id} is {}: only a finding claimed fixed is verified; move it to fixed",
                finding.state.name()
            )));
        }
        finding.notes.push(Note {
            at: now,
            actor: actor.clone(),
            text: "verification requested again".into(),
        });
        let mut v = verification_for(&finding, actor, now);
        v.id = format!("{}-n{}", finding.id, finding.notes.len());
        let mut tx = self.tx();
        tx.put_json(keys::key(Rec::Verification, tenant, v.id.as_bytes()), &v)?;
        tx.put_json(keys::key(Rec::Finding, tenant, id.as_bytes()), &finding)?;
        tx.commit()?;
        Ok(v)
    }

    /// The latest verification asked for a finding, if any.
    pub fn last_verification(
        &self,
        tenant: &TenantId,
        finding: &str,
    ) -> Result<Option<VerificationRequest>> {
        let mut prefix = keys::prefix(Rec::Verification, tenant);
        prefix.extend_from_slice(finding.as_bytes());
        prefix.push(b'-');
        let mut last: Option<VerificationRequest> = None;
        for item in self.data.scan_prefix(&prefix) {
            let (_, v) = item?;
            let v: VerificationRequest = serde_json::from_slice(&v)?;
            if last.as_ref().is_none_or(|l| v.requested >= l.requested) {
                last = Some(v);
            }
        }
        Ok(last)
    }

    /// Asks again, from a vantage not in `avoid`, for the verification of a "fixed" claim
    /// whose last verification heard nothing from its host. `None` when the claim is no
    /// longer awaiting such a verification.
    pub fn verify_elsewhere(
        &self,
        tenant: &TenantId,
        id: &str,
        avoid: Vec<String>,
        now: Millis,
    ) -> Result<Option<VerificationRequest>> {
        let _w = self.write_lock();
        let mut finding = self.finding(tenant, id)?;
        if finding.state != FindingState::Fixed || finding.verification_inconclusive.is_none() {
            return Ok(None);
        }
        finding.notes.push(Note {
            at: now,
            actor: Actor::System,
            text: format!(
                "verification asked again from another vantage (not {})",
                avoid.join(", ")
            ),
        });
        let mut v = verification_for(&finding, &Actor::System, now);
        v.id = format!("{}-n{}", finding.id, finding.notes.len());
        v.avoid = avoid;
        let mut tx = self.tx();
        tx.put_json(keys::key(Rec::Verification, tenant, v.id.as_bytes()), &v)?;
        tx.put_json(keys::key(Rec::Finding, tenant, id.as_bytes()), &finding)?;
        tx.commit()?;
        Ok(Some(v))
    }

    /// Sets or clears the assignee; recorded as a note.
    pub fn assign_finding(
        &self,
        tenant: &TenantId,
        id: &str,
        actor: &Actor,
        assignee: Option<String>,
        now: Millis,
    ) -> Result<Finding> {
        policy::may_annotate(actor)?;
        self.annotate(tenant, id, actor, now, |f| {
            let text = match &assignee {
                Some(a) => format!("assigned to {a}"),
                None => "unassigned".to_owned(),
            };
            f.assignee = assignee.clone();
            text
        })
    }

    pub fn comment_finding(
        &self,
        tenant: &TenantId,
        id: &str,
        actor: &Actor,
        text: &str,
        now: Millis,
    ) -> Result<Finding> {
        policy::may_annotate(actor)?;
        if text.trim().is_empty() {
            return Err(StoreError::Invalid("a comment needs text".into()));
        }
        self.annotate(tenant, id, actor, now, |_| text.to_owned())
    }

    fn annotate(
        &self,
        tenant: &TenantId,
        id: &str,
        actor: &Actor,
        now: Millis,
        change: impl FnOnce(&mut Finding) -> String,
    ) -> Result<Finding> {
        let _w = self.write_lock();
        let mut finding = self.finding(tenant, id)?;
        let text = change(&mut finding);
        finding.notes.push(Note {
            at: now,
            actor: actor.clone(),
            text,
        });
        finding.updated = now;
        let mut tx = self.tx();
        tx.put_json(keys::key(Rec::Finding, tenant, id.as_bytes()), &finding)?;
        tx.commit()?;
        Ok(finding)
    }

    /// Verification scans asked for and not yet started.
    /// Verification scans asked for and not started, nor being started (a live claim).
    pub fn pending_verifications(
        &self,
        tenant: &TenantId,
        now: Millis,
    ) -> Result<Vec<VerificationRequest>> {
        let mut out = Vec::new();
        for item in self
            .data
            .scan_prefix(keys::prefix(Rec::Verification, tenant))
        {
            let (_, v) = item?;
            let v: VerificationRequest = serde_json::from_slice(&v)?;
            let claim_live = v.claimed.is_some_and(|at| now - at < CLAIM_LAPSE_MS);
            if v.scan.is_none() && !claim_live {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Takes a pending verification for starting: true for exactly one caller until the
    /// claim lapses or is released, so the "fixed" handler and the scheduler never both
    /// start a scan for it.
    pub fn claim_verification(&self, tenant: &TenantId, id: &str, now: Millis) -> Result<bool> {
        let _w = self.write_lock();
        let key = keys::key(Rec::Verification, tenant, id.as_bytes());
        let mut v: VerificationRequest = self
            .get_json(&key)?
            .ok_or_else(|| StoreError::NotFound(format!("verification {id}")))?;
        let live = v.claimed.is_some_and(|at| now - at < CLAIM_LAPSE_MS);
        if v.scan.is_some() || live {
            return Ok(false);
        }
        v.claimed = Some(now);
        let mut tx = self.tx();
        tx.put_json(key, &v)?;
        tx.commit()?;
        Ok(true)
    }

    /// Gives a claim back (the scan could not start now); the scheduler retries.
    pub fn release_verification(&self, tenant: &TenantId, id: &str) -> Result<()> {
        let _w = self.write_lock();
        let key = keys::key(Rec::Verification, tenant, id.as_bytes());
        let mut v: VerificationRequest = self
            .get_json(&key)?
            .ok_or_else(|| StoreError::NotFound(format!("verification {id}")))?;
        v.claimed = None;
        let mut tx = self.tx();
        tx.put_json(key, &v)?;
        tx.commit()
    }

    /// Records which scan verifies a request.
    pub fn verification_started(&self, tenant: &TenantId, id: &str, scan: &str) -> Result<()> {
        let _w = self.write_lock();
        let key = keys::key(Rec::Verification, tenant, id.as_bytes());
        let mut v: VerificationRequest = self
            .get_json(&key)?
            .ok_or_else(|| StoreError::NotFound(format!("verification {id}")))?;
        v.scan = Some(scan.to_owned());
        let mut tx = self.tx();
        tx.put_json(key, &v)?;
        tx.commit()
    }

    /// Brings findings up to date with the changes since the last run, and checks every
    /// "fixed" claim against the latest sightings.
    pub fn run_policy(&self, tenant: &TenantId, now: Millis) -> Result<PolicyRun> {
        let mut run = PolicyRun::default();
        let cursor_key = counter_key(tenant, "policy");
        loop {
            let _w = self.write_lock();
            let from = read_counter(&self.tx(), &cursor_key)?;
            let page = self.changes_since(tenant, from.checked_sub(1), MAX_PAGE)?;
            if page.items.is_empty() {
                break;
            }
            let mut assets = BTreeSet::new();
            let mut last = from;
            for c in &page.items {
                assets.insert(c.asset.clone());
                last = c.seq + 1;
            }
            let mut tx = self.tx();
            self.evaluate_assets(&mut tx, tenant, &assets, now, &mut run, false)?;
            tx.put(cursor_key.clone(), last.to_be_bytes().to_vec());
            tx.commit()?;
        }
        // Claims of "fixed" are checked even when the rescan changed nothing.
        let _w = self.write_lock();
        let mut awaiting = BTreeSet::new();
        let prefix = keys::prefix(Rec::Awaiting, tenant);
        for item in self.data.scan_prefix(&prefix) {
            let (k, _) = item?;
            let id =
                String::from_utf8_lossy(k.get(prefix.len()..).unwrap_or_default()).into_owned();
            if let Ok(f) = self.finding(tenant, &id) {
                awaiting.insert(f.asset);
            }
        }
        let mut tx = self.tx();
        self.evaluate_assets(&mut tx, tenant, &awaiting, now, &mut run, false)?;
        tx.commit()?;
        Ok(run)
    }

    /// Evaluates the assets that sanction and settings edits queued (oldest edit first),
    /// each asset once per run however many edits reach it. Each chunk is committed with
    /// the queue's progress, so a crash repeats at most one chunk.
    pub fn run_queued_policy(&self, tenant: &TenantId, now: Millis) -> Result<PolicyRun> {
        let mut run = PolicyRun::default();
        let mut done: BTreeSet<AssetKey> = BTreeSet::new();
        let prefix = work_prefix(tenant);
        loop {
            let _w = self.write_lock();
            let Some(item) = self.data.scan_prefix(&prefix).next() else {
                break;
            };
            let (key, value) = item?;
            let mut work: Work = serde_json::from_slice(&value)?;
            let (found, more) = self.reach_page(tenant, &mut work, now)?;
            let fresh: BTreeSet<AssetKey> = found
                .into_iter()
                .filter(|k| done.insert(k.clone()))
                .collect();
            let mut tx = self.tx();
            self.evaluate_assets(&mut tx, tenant, &fresh, now, &mut run, false)?;
            if more {
                tx.put_json(key.to_vec(), &work)?;
            } else {
                tx.delete(key.to_vec());
            }
            tx.commit()?;
        }
        Ok(run)
    }

    /// Edits whose re-evaluation is queued and not finished.
    pub fn queued_policy_work(&self, tenant: &TenantId) -> Result<Vec<Reach>> {
        let mut out = Vec::new();
        for item in self.data.scan_prefix(work_prefix(tenant)) {
            let (_, v) = item?;
            out.push(serde_json::from_slice::<Work>(&v)?.reach);
        }
        Ok(out)
    }

    /// Evaluates the assets whose time-index entry is due (at or before `now`): the
    /// expiry-driven rules without a scan of everything. Each evaluation records the
    /// asset's next instant, always after `now`, so this ends.
    pub fn run_due_policy(&self, tenant: &TenantId, now: Millis) -> Result<PolicyRun> {
        let mut run = PolicyRun::default();
        let prefix = keys::key(Rec::PolicyDue, tenant, DUE_TIME);
        let mut end = prefix.clone();
        end.extend_from_slice(&instant_bytes(now.saturating_add(1)));
        loop {
            let _w = self.write_lock();
            let mut tx = self.tx();
            let mut due = BTreeSet::new();
            for item in self.data.range(prefix.clone()..end.clone()) {
                let (k, _) = item?;
                let rest = k.get(prefix.len()..).unwrap_or_default();
                let (at, asset) = rest.split_at_checked(8).ok_or_else(|| {
                    StoreError::Corrupt(format!("policy time index entry {k:02x?}"))
                })?;
                let asset = AssetKey::from_bytes(asset)?;
                tx.delete(k.to_vec());
                let pointer = due_pointer(tenant, &asset);
                if tx.get(&pointer)?.as_deref() == Some(at) {
                    tx.delete(pointer);
                }
                due.insert(asset);
                if due.len() == POLICY_CHUNK {
                    break;
                }
            }
            if due.is_empty() {
                break;
            }
            self.evaluate_assets(&mut tx, tenant, &due, now, &mut run, false)?;
            tx.commit()?;
        }
        Ok(run)
    }

    /// The next instant at which time alone changes a finding of the tenant's, if any.
    pub fn next_policy_due(&self, tenant: &TenantId) -> Result<Option<Millis>> {
        let prefix = keys::key(Rec::PolicyDue, tenant, DUE_TIME);
        match self.data.scan_prefix(&prefix).next() {
            Some(item) => {
                let (k, _) = item?;
                Ok(k.get(prefix.len()..).and_then(instant_from))
            }
            None => Ok(None),
        }
    }

    /// Re-evaluates every asset and every finding, and rewrites the policy's indexes
    /// (time index, active findings by rule) on the way: a consistency check and repair,
    /// for after an import or an upgrade, or to prove nothing was missed. Findings are
    /// kept right without it (see the module's documentation).
    pub fn sweep_policy(&self, tenant: &TenantId, now: Millis) -> Result<PolicyRun> {
        let mut run = PolicyRun::default();
        let mut cursor: Option<String> = None;
        loop {
            let _w = self.write_lock();
            let page =
                self.list_assets(tenant, &AssetFilter::default(), cursor.as_deref(), MAX_PAGE)?;
            let chunk: BTreeSet<AssetKey> = page.items.into_iter().map(|a| a.key).collect();
            let mut tx = self.tx();
            self.evaluate_assets(&mut tx, tenant, &chunk, now, &mut run, true)?;
            tx.commit()?;
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(run)
    }

    /// Builds the policy's indexes with one [`Store::sweep_policy`] if this tenant's
    /// were never built (a store written before they existed, or an imported tenant);
    /// nothing otherwise. Returns the sweep's run when there was one.
    pub fn ensure_policy_indexes(
        &self,
        tenant: &TenantId,
        now: Millis,
    ) -> Result<Option<PolicyRun>> {
        let marker = keys::key(Rec::PolicyWork, tenant, INDEXES_BUILT);
        if self.data.contains_key(&marker)? {
            return Ok(None);
        }
        self.require_tenant(tenant)?;
        let run = self.sweep_policy(tenant, now)?;
        let _w = self.write_lock();
        let mut tx = self.tx();
        tx.put(marker, b"1".to_vec());
        tx.commit()?;
        Ok(Some(run))
    }

    /// One chunk of the assets a queued edit reaches, in the order of the index that
    /// finds them, and whether more follow (`work` then holds where to go on).
    fn reach_page(
        &self,
        tenant: &TenantId,
        work: &mut Work,
        now: Millis,
    ) -> Result<(Vec<AssetKey>, bool)> {
        let listed = |filter: &AssetFilter, cursor: &mut Option<String>| -> Result<_> {
            let page = self.list_assets(tenant, filter, cursor.as_deref(), MAX_PAGE)?;
            let more = page.next.is_some();
            *cursor = page.next;
            Ok((page.items, more))
        };
        match &work.reach {
            Reach::Match {
                matches,
                seen_within_days,
            } => {
                let Some(mut filter) = match_filter(matches) else {
                    return Ok((Vec::new(), false));
                };
                filter.last_seen_from = seen_within_days
                    .map(|d| now.saturating_sub(Millis::from(d).saturating_mul(DAY_MS)));
                let (items, more) = listed(&filter, &mut work.cursor)?;
                // Only exposures read sanctions, and only those the match covers.
                let keys = items
                    .into_iter()
                    .filter(|a| matches!(a.kind, AssetKind::Service | AssetKind::Domain))
                    .filter(|a| matches.matches(a))
                    .map(|a| a.key)
                    .collect();
                Ok((keys, more))
            }
            Reach::RiskClass { class } => {
                let filter = AssetFilter {
                    kind: Some(AssetKind::Service),
                    risk: Some(class.clone()),
                    ..AssetFilter::default()
                };
                let (items, more) = listed(&filter, &mut work.cursor)?;
                Ok((items.into_iter().map(|a| a.key).collect(), more))
            }
            Reach::Services => {
                let filter = AssetFilter {
                    kind: Some(AssetKind::Service),
                    ..AssetFilter::default()
                };
                let (items, more) = listed(&filter, &mut work.cursor)?;
                Ok((items.into_iter().map(|a| a.key).collect(), more))
            }
            Reach::UnexpiredCertificates => {
                let filter = AssetFilter {
                    kind: Some(AssetKind::Certificate),
                    ..AssetFilter::default()
                };
                let (items, more) = listed(&filter, &mut work.cursor)?;
                // Certificate keys: the evaluation turns them into the services
                // presenting them.
                let keys = items
                    .into_iter()
                    .filter(|c| not_after(c).is_some_and(|na| na > now))
                    .map(|c| c.key)
                    .collect();
                Ok((keys, more))
            }
            Reach::CpeProducts { products } => {
                crate::vulns::reach_page(self, tenant, products, &mut work.after, POLICY_CHUNK)
            }
            Reach::Findings { rule, detail } => {
                let prefix = rule_index_prefix(tenant, *rule, detail.as_deref());
                let start = match &work.after {
                    Some(after) => {
                        let mut k = prefix.clone();
                        k.extend_from_slice(after);
                        k.push(0);
                        k
                    }
                    None => prefix.clone(),
                };
                let mut keys = Vec::new();
                let mut more = false;
                for item in self.data.range(start..keys::prefix_end(&prefix)) {
                    let (k, _) = item?;
                    if keys.len() == POLICY_CHUNK {
                        more = true;
                        break;
                    }
                    let rest = k.get(prefix.len()..).unwrap_or_default();
                    keys.push(rule_index_asset(rest, detail.is_none())?);
                    work.after = Some(rest.to_vec());
                }
                Ok((keys, more))
            }
        }
    }

    /// Evaluates assets (a certificate stands for the services presenting it) and
    /// reconciles their findings; records each one's next due instant; with `repair`,
    /// rewrites the index entries of every finding it reads.
    fn evaluate_assets(
        &self,
        tx: &mut Tx<'_>,
        tenant: &TenantId,
        assets: &BTreeSet<AssetKey>,
        now: Millis,
        run: &mut PolicyRun,
        repair: bool,
    ) -> Result<()> {
        if assets.is_empty() {
            return Ok(());
        }
        let settings = self.policy_settings(tenant)?;
        let sanctions = self.sanctions(tenant)?;
        let baseline = self.baseline(tenant)?;
        // A certificate's change concerns the services presenting it.
        let mut targets = BTreeSet::new();
        for key in assets {
            if key.kind() == AssetKind::Certificate {
                let prefix = link_prefix(tenant, key);
                for (k, _) in tx.scan_prefix(&prefix)? {
                    if let Ok(svc) = AssetKey::from_bytes(k.get(prefix.len()..).unwrap_or_default())
                    {
                        if svc.kind() == AssetKind::Service {
                            targets.insert(svc);
                        }
                    }
                }
            } else {
                targets.insert(key.clone());
            }
        }
        // CVEs of a product are decoded once per call, however many services run it.
        let mut vuln_cache = crate::vulns::Cache::default();
        // Targets come in key order, so a host's services are next to each other: its
        // record is decoded once for all of them.
        let mut host: Option<(std::net::IpAddr, Option<crate::records::HostRecord>)> = None;
        for key in &targets {
            let stored = match key.address() {
                Some(ip) => {
                    if host.as_ref().is_none_or(|(at, _)| *at != ip) {
                        host = Some((ip, tx.host_record(tenant, ip)?));
                    }
                    match host.as_ref().and_then(|(_, r)| r.as_ref()) {
                        Some(r) => r.get(key)?,
                        None => None,
                    }
                }
                None => tx.asset(tenant, key)?,
            };
            let Some(asset) = stored else {
                continue;
            };
            let certificate = match asset.fact("certificate") {
                Some(sha) if asset.kind == AssetKind::Service => {
                    tx.asset(tenant, &AssetKey::Certificate(sha.to_owned()))?
                }
                _ => None,
            };
            let cx = Context {
                now,
                settings: &settings,
                sanctions: &sanctions,
                baseline,
                certificate: certificate.as_ref(),
            };
            let mut evaluation = policy::evaluate(&asset, &cx);
            // Known-vulnerable versions read the global vulnerability data, which the
            // pure policy does not hold.
            if let Some(e) = self.vulnerable_version(&asset, &settings, &mut vuln_cache)? {
                evaluation.expected.push(e);
            }
            let sanctioned = sanctions
                .iter()
                .any(|s| s.expires.is_none_or(|e| e > now) && s.matches.matches(&asset));
            run.assets_evaluated += 1;
            let review = self.reconcile_asset(
                tx,
                tenant,
                &asset,
                &evaluation.expected,
                sanctioned,
                &settings,
                now,
                run,
                repair,
            )?;
            let next = [evaluation.next, review]
                .into_iter()
                .flatten()
                .filter(|t| *t > now)
                .min();
            schedule(tx, tenant, &asset.key, next)?;
        }
        Ok(())
    }

    /// Brings an asset's findings in line with what the policy expects; returns the
    /// first instant after `now` at which one of them must be looked at again (a risk
    /// acceptance ending).
    #[allow(clippy::too_many_arguments)]
    fn reconcile_asset(
        &self,
        tx: &mut Tx<'_>,
        tenant: &TenantId,
        asset: &Asset,
        expected: &[policy::Expected],
        sanctioned: bool,
        settings: &PolicySettings,
        now: Millis,
        run: &mut PolicyRun,
        repair: bool,
    ) -> Result<Option<Millis>> {
        let mut existing: BTreeMap<String, Finding> = BTreeMap::new();
        let prefix = by_asset_prefix(tenant, &asset.key);
        for (k, _) in tx.scan_prefix(&prefix)? {
            let id =
                String::from_utf8_lossy(k.get(prefix.len()..).unwrap_or_default()).into_owned();
            if let Some(f) =
                tx.get_json::<Finding>(&keys::key(Rec::Finding, tenant, id.as_bytes()))?
            {
                existing.insert(id, f);
            }
        }
        let mut wanted = BTreeSet::new();
        for e in expected {
            let id = policy::finding_id(e.rule, &asset.key, &e.detail);
            wanted.insert(id.clone());
            match existing.get_mut(&id) {
                Some(f) => {
                    let (was, steps) = (f.state, f.transitions.len());
                    if policy::reconcile(f, Some(e), asset, sanctioned, settings, now) {
                        count(run, was, f.state);
                        crate::outbox::finding_moved(tx, tenant, was, f, now)?;
                        crate::siem::log_steps(tx, tenant, f, steps)?;
                        self.put_finding(tx, tenant, f)?;
                    } else if repair {
                        index_finding(tx, tenant, f);
                    }
                }
                None => {
                    let f = policy::open(&asset.key, e, settings, now);
                    run.opened += 1;
                    crate::outbox::finding_opened(tx, tenant, &f, now)?;
                    crate::siem::log_steps(tx, tenant, &f, 0)?;
                    tx.put(by_asset_key(tenant, &asset.key, &f.id), Vec::new());
                    self.put_finding(tx, tenant, &f)?;
                }
            }
        }
        for (id, f) in existing.iter_mut() {
            if wanted.contains(id) {
                continue;
            }
            let (was, steps) = (f.state, f.transitions.len());
            if policy::reconcile(f, None, asset, sanctioned, settings, now) {
                count(run, was, f.state);
                crate::outbox::finding_moved(tx, tenant, was, f, now)?;
                crate::siem::log_steps(tx, tenant, f, steps)?;
                self.put_finding(tx, tenant, f)?;
            } else if repair {
                index_finding(tx, tenant, f);
            }
        }
        Ok(existing
            .values()
            .filter_map(policy::review_at)
            .filter(|t| *t > now)
            .min())
    }

    fn put_finding(&self, tx: &mut Tx<'_>, tenant: &TenantId, f: &Finding) -> Result<()> {
        let awaiting = keys::key(Rec::Awaiting, tenant, f.id.as_bytes());
        if f.state == FindingState::Fixed {
            tx.put(awaiting, Vec::new());
        } else if tx.get(&awaiting)?.is_some() {
            // Only a key that exists is deleted: a removal in a sled batch costs a tree
            // walk like a write, and almost no finding is awaiting a verification.
            tx.delete(awaiting);
        }
        index_finding(tx, tenant, f);
        tx.put_json(keys::key(Rec::Finding, tenant, f.id.as_bytes()), f)
    }

    /// When the tenant's first complete scan finished.
    fn baseline(&self, tenant: &TenantId) -> Result<Option<Millis>> {
        Ok(self
            .scans(tenant)?
            .iter()
            .filter(|s| s.state == ScanState::Completed)
            .filter_map(|s| s.completed)
            .min())
    }
}

const DAY_MS: Millis = 86_400_000;

/// Sub-spaces of the policy's record types. `E<tenant>\0t<instant><asset>`: the time
/// index, in time order; `E<tenant>\0a<asset>` → instant: each asset's one entry, so a
/// re-evaluation moves it instead of leaving stale ones behind.
const DUE_TIME: &[u8] = b"t";
const DUE_POINTER: &[u8] = b"a";
/// `Q<tenant>\0w<seq>` → [`Work`]: re-evaluations queued by edits, oldest first.
const WORK: &[u8] = b"w";
/// `Q<tenant>\0r<len><rule><len16><detail><asset>`: the active findings by rule and
/// detail, so an edit finds the findings it touches without reading them all.
const BY_RULE: &[u8] = b"r";
/// `Q<tenant>\0v`: the tenant's indexes have been built (see
/// [`Store::ensure_policy_indexes`]).
const INDEXES_BUILT: &[u8] = b"v";

/// A queued re-evaluation and how far it got.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Work {
    reach: Reach,
    /// The asset listing's cursor, for reaches found by listing assets.
    #[serde(default)]
    cursor: Option<String>,
    /// The last index entry done, for reaches found in the findings-by-rule index.
    #[serde(default)]
    after: Option<Vec<u8>>,
}

fn work_prefix(tenant: &TenantId) -> Vec<u8> {
    keys::key(Rec::PolicyWork, tenant, WORK)
}

/// Queues a re-evaluation, in the edit's own transaction: an edit committed is an edit
/// whose findings will follow, even across a crash.
pub(crate) fn queue(tx: &mut Tx<'_>, tenant: &TenantId, reach: Reach) -> Result<()> {
    let counter = counter_key(tenant, "policy-work");
    let n = read_counter(tx, &counter)?;
    tx.put(counter, (n + 1).to_be_bytes().to_vec());
    let mut key = work_prefix(tenant);
    key.extend_from_slice(&n.to_be_bytes());
    tx.put_json(
        key,
        &Work {
            reach,
            cursor: None,
            after: None,
        },
    )
}

/// Times ordered as bytes (the sign bit flipped, big-endian).
fn instant_bytes(at: Millis) -> [u8; 8] {
    ((at as u64) ^ (1 << 63)).to_be_bytes()
}

fn instant_from(bytes: &[u8]) -> Option<Millis> {
    let b: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(b) ^ (1 << 63)) as Millis)
}

fn due_key(tenant: &TenantId, at: Millis, asset: &AssetKey) -> Vec<u8> {
    let mut k = keys::key(Rec::PolicyDue, tenant, DUE_TIME);
    k.extend_from_slice(&instant_bytes(at));
    k.extend_from_slice(&asset.to_bytes());
    k
}

fn due_pointer(tenant: &TenantId, asset: &AssetKey) -> Vec<u8> {
    let mut k = keys::key(Rec::PolicyDue, tenant, DUE_POINTER);
    k.extend_from_slice(&asset.to_bytes());
    k
}

/// Sets the asset's next due instant (none: nothing will come due), replacing the one
/// it had.
fn schedule(
    tx: &mut Tx<'_>,
    tenant: &TenantId,
    asset: &AssetKey,
    next: Option<Millis>,
) -> Result<()> {
    let pointer = due_pointer(tenant, asset);
    let old = tx.get(&pointer)?.and_then(|v| instant_from(&v));
    if old == next {
        return Ok(());
    }
    if let Some(old) = old {
        tx.delete(due_key(tenant, old, asset));
    }
    match next {
        Some(at) => {
            tx.put(due_key(tenant, at, asset), Vec::new());
            tx.put(pointer, instant_bytes(at).to_vec());
        }
        None => tx.delete(pointer),
    }
    Ok(())
}

/// Makes the asset come due at `at` at the latest (an earlier entry stays: coming due
/// early only re-evaluates, which then records the right instant).
fn schedule_by(tx: &mut Tx<'_>, tenant: &TenantId, asset: &AssetKey, at: Millis) -> Result<()> {
    let old = tx
        .get(&due_pointer(tenant, asset))?
        .and_then(|v| instant_from(&v));
    if old.is_some_and(|o| o <= at) {
        return Ok(());
    }
    schedule(tx, tenant, asset, Some(at))
}

fn rule_index_prefix(tenant: &TenantId, rule: Rule, detail: Option<&str>) -> Vec<u8> {
    let name = rule.name();
    let mut rest = BY_RULE.to_vec();
    rest.push(name.len() as u8);
    rest.extend_from_slice(name.as_bytes());
    if let Some(d) = detail {
        let d = d.as_bytes();
        let d = d.get(..usize::from(u16::MAX)).unwrap_or(d);
        rest.extend_from_slice(&(d.len() as u16).to_be_bytes());
        rest.extend_from_slice(d);
    }
    keys::key(Rec::PolicyWork, tenant, &rest)
}

/// The asset of a findings-by-rule entry, from what follows the rule (`with_detail`:
/// the detail comes first) or the rule and detail.
fn rule_index_asset(rest: &[u8], with_detail: bool) -> Result<AssetKey> {
    let bad = || StoreError::Corrupt(format!("findings-by-rule entry {rest:02x?}"));
    let asset = if with_detail {
        let (len, tail) = rest.split_at_checked(2).ok_or_else(bad)?;
        let len = usize::from(u16::from_be_bytes(len.try_into().map_err(|_| bad())?));
        tail.get(len..).ok_or_else(bad)?
    } else {
        rest
    };
    AssetKey::from_bytes(asset)
}

/// Keeps a finding's findings-by-rule entry: there while it is active, gone otherwise.
fn index_finding(tx: &mut Tx<'_>, tenant: &TenantId, f: &Finding) {
    let mut key = rule_index_prefix(tenant, f.rule, Some(&f.detail));
    key.extend_from_slice(&f.asset.to_bytes());
    if f.state.is_active() {
        tx.put(key, Vec::new());
    } else {
        tx.delete(key);
    }
}

/// The asset listing that holds every exposure a sanction's match covers (and maybe
/// more; each is checked against the match). None: the match covers nothing (a domain
/// pattern with an address or port).
pub fn match_filter(m: &SanctionMatch) -> Option<AssetFilter> {
    let mut f = AssetFilter {
        service: m.service.clone(),
        product: m.product.clone(),
        ..AssetFilter::default()
    };
    if let Some(pattern) = &m.domain {
        if m.net.is_some() || m.port.is_some() {
            return None;
        }
        f.kind = Some(AssetKind::Domain);
        // The pattern's zone when it has one; otherwise every name.
        f.domain = policy::glob_apex(pattern);
        return Some(f);
    }
    if m.net.is_some() {
        // Hosts are in the net too, but no rule about hosts reads sanctions.
        f.kind = Some(AssetKind::Service);
    }
    f.net = m.net;
    f.port = m.port;
    Some(f)
}

/// A certificate's end, in milliseconds.
fn not_after(cert: &Asset) -> Option<Millis> {
    cert.fact("not_after_unix")
        .and_then(|s| s.parse::<i64>().ok())
        .map(|s| s.saturating_mul(1000))
}

fn count(run: &mut PolicyRun, was: FindingState, now: FindingState) {
    if now == was {
        run.updated += 1;
    } else if now.is_closed() || (was == FindingState::RiskAccepted && now.is_closed()) {
        run.closed += 1;
    } else if now == FindingState::Open {
        run.reopened += 1;
    } else {
        run.updated += 1;
    }
}

fn by_asset_prefix(tenant: &TenantId, asset: &AssetKey) -> Vec<u8> {
    let a = asset.to_bytes();
    let mut rest = Vec::with_capacity(a.len() + 1);
    rest.push(a.len() as u8);
    rest.extend_from_slice(&a);
    keys::key(Rec::FindingByAsset, tenant, &rest)
}

fn by_asset_key(tenant: &TenantId, asset: &AssetKey, id: &str) -> Vec<u8> {
    let mut k = by_asset_prefix(tenant, asset);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The narrowest scan that proves a claim: the service's address and port, or the name.
fn verification_for(f: &Finding, actor: &Actor, now: Millis) -> VerificationRequest {
    let mut coverage = Coverage::default();
    match &f.asset {
        AssetKey::Service(ip, port, crate::keys::Proto::Tcp) => {
            coverage.targets = vec![IpNet::from(*ip)];
            coverage.ports = vec![(*port, *port)];
            coverage.probes = ["syn", "grab"].iter().map(|s| (*s).to_owned()).collect();
        }
        AssetKey::Service(ip, port, crate::keys::Proto::Udp) => {
            coverage.targets = vec![IpNet::from(*ip)];
            coverage.udp_ports = vec![(*port, *port)];
            coverage.probes = ["udp"].iter().map(|s| (*s).to_owned()).collect();
        }
        AssetKey::Host(ip) => {
            coverage.targets = vec![IpNet::from(*ip)];
            coverage.probes = ["syn"].iter().map(|s| (*s).to_owned()).collect();
        }
        AssetKey::Domain(name) => {
            coverage.domains = vec![name.clone()];
            coverage.probes = ["dns"].iter().map(|s| (*s).to_owned()).collect();
        }
        AssetKey::Certificate(_) => {}
    }
    VerificationRequest {
        id: format!("{}-{}", f.id, f.transitions.len()),
        finding: f.id.clone(),
        asset: f.asset.clone(),
        coverage,
        requested: now,
        requested_by: actor.name().to_owned(),
        scan: None,
        claimed: None,
        avoid: Vec::new(),
    }
}
