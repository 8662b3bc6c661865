//! Sanctions, policy settings and findings as stored records, and the runs of the policy
//! that keep findings in step with assets.
//!
//! The policy reads the change feed from its own cursor, so it runs after ingest rather
//! than inside it: a batch is acknowledged as soon as its facts are safe, and the policy
//! catches up in chunks, each chunk's findings committed together with the cursor that
//! says it was done. A crash between the two simply repeats the chunk, and re-evaluating
//! an asset is idempotent (finding ids are derived from rule, asset and detail).

use crate::error::{Result, StoreError};
use crate::ingest::{counter_key, link_prefix, read_counter};
use crate::keys::{self, AssetKey, AssetKind, Rec, TenantId};
use crate::model::{Asset, Coverage, Millis, Page, ScanState};
use crate::policy::{
    self, Actor, Context, Finding, FindingState, Note, PolicySettings, Rule, Sanction,
    SanctionMatch, Severity, TransitionRequest,
};
use crate::query::MAX_PAGE;
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
    pub owner: String,
    pub reason: String,
    #[serde(default)]
    pub ticket: Option<String>,
    #[serde(default)]
    pub expires: Option<Millis>,
}

impl NewSanction {
    fn validate(&self) -> Result<()> {
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

    pub fn set_policy_settings(&self, tenant: &TenantId, settings: &PolicySettings) -> Result<()> {
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let mut tx = self.tx();
        tx.put_json(keys::key(Rec::Settings, tenant, b""), settings)?;
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

    /// Adds a sanction. Findings follow on the next [`Store::sweep_policy`].
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
        tx.commit()?;
        Ok(sanction)
    }

    pub fn update_sanction(
        &self,
        tenant: &TenantId,
        id: &str,
        new: NewSanction,
    ) -> Result<Sanction> {
        new.validate()?;
        let _w = self.write_lock();
        let mut sanction = self.sanction(tenant, id)?;
        sanction.matches = new.matches;
        sanction.owner = new.owner;
        sanction.reason = new.reason;
        sanction.ticket = new.ticket;
        sanction.expires = new.expires;
        let mut tx = self.tx();
        tx.put_json(keys::key(Rec::Sanction, tenant, id.as_bytes()), &sanction)?;
        tx.commit()?;
        Ok(sanction)
    }

    pub fn delete_sanction(&self, tenant: &TenantId, id: &str) -> Result<()> {
        let _w = self.write_lock();
        self.sanction(tenant, id)?;
        let mut tx = self.tx();
        tx.delete(keys::key(Rec::Sanction, tenant, id.as_bytes()));
        tx.commit()
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
        policy::transition(&mut finding, actor, request, now)?;
        let mut tx = self.tx();
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
            self.evaluate_assets(&mut tx, tenant, &assets, now, &mut run)?;
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
        self.evaluate_assets(&mut tx, tenant, &awaiting, now, &mut run)?;
        tx.commit()?;
        Ok(run)
    }

    /// Re-evaluates every asset and every finding: after sanctions or settings change, and
    /// periodically for the time-based rules (expiry, zombies, risk acceptances).
    pub fn sweep_policy(&self, tenant: &TenantId, now: Millis) -> Result<PolicyRun> {
        let mut run = PolicyRun::default();
        let prefix = keys::prefix(Rec::Asset, tenant);
        let mut start = prefix.clone();
        loop {
            let _w = self.write_lock();
            let mut chunk = BTreeSet::new();
            let mut last = None;
            for item in self.data.range(start.clone()..keys::prefix_end(&prefix)) {
                let (k, _) = item?;
                chunk.insert(AssetKey::from_bytes(
                    k.get(prefix.len()..).unwrap_or_default(),
                )?);
                last = Some(k.to_vec());
                if chunk.len() == POLICY_CHUNK {
                    break;
                }
            }
            if chunk.is_empty() {
                break;
            }
            let mut tx = self.tx();
            self.evaluate_assets(&mut tx, tenant, &chunk, now, &mut run)?;
            tx.commit()?;
            match last {
                Some(mut k) => {
                    k.push(0);
                    start = k;
                }
                None => break,
            }
        }
        Ok(run)
    }

    fn evaluate_assets(
        &self,
        tx: &mut Tx<'_>,
        tenant: &TenantId,
        assets: &BTreeSet<AssetKey>,
        now: Millis,
        run: &mut PolicyRun,
    ) -> Result<()> {
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
                        targets.insert(svc);
                    }
                }
            } else {
                targets.insert(key.clone());
            }
        }
        for key in &targets {
            let Some(asset) = tx.asset(tenant, key)? else {
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
            let expected = policy::evaluate(&asset, &cx);
            let sanctioned = sanctions
                .iter()
                .any(|s| s.expires.is_none_or(|e| e > now) && s.matches.matches(&asset));
            run.assets_evaluated += 1;
            self.reconcile_asset(
                tx, tenant, &asset, &expected, sanctioned, &settings, now, run,
            )?;
        }
        Ok(())
    }

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
    ) -> Result<()> {
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
                    let was = f.state;
                    if policy::reconcile(f, Some(e), asset, sanctioned, settings, now) {
                        count(run, was, f.state);
                        self.put_finding(tx, tenant, f)?;
                    }
                }
                None => {
                    let f = policy::open(&asset.key, e, settings, now);
                    run.opened += 1;
                    tx.put(by_asset_key(tenant, &asset.key, &f.id), Vec::new());
                    self.put_finding(tx, tenant, &f)?;
                }
            }
        }
        for (id, f) in existing.iter_mut() {
            if wanted.contains(id) {
                continue;
            }
            let was = f.state;
            if policy::reconcile(f, None, asset, sanctioned, settings, now) {
                count(run, was, f.state);
                self.put_finding(tx, tenant, f)?;
            }
        }
        Ok(())
    }

    fn put_finding(&self, tx: &mut Tx<'_>, tenant: &TenantId, f: &Finding) -> Result<()> {
        let awaiting = keys::key(Rec::Awaiting, tenant, f.id.as_bytes());
        if f.state == FindingState::Fixed {
            tx.put(awaiting, Vec::new());
        } else {
            tx.delete(awaiting);
        }
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
        AssetKey::Service(ip, port) => {
            coverage.targets = vec![IpNet::from(*ip)];
            coverage.ports = vec![(*port, *port)];
            coverage.probes = ["syn", "grab"].iter().map(|s| (*s).to_owned()).collect();
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
    }
}
