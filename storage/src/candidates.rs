//! The discovery loop's records: candidates (what the loop met outside the tenant's
//! scope, with the chain of evidence that led to it, for an analyst to approve or
//! dismiss), how each asset was first found, and the loop's settings and state.
//!
//! A candidate is keyed by what it is (`address:198.19.6.140`, `name:shop.example.org`),
//! so meeting it again never proposes it twice, and a dismissed one stays dismissed.
//! Approving one adds it to the scope in the same commit as the decision.

use crate::error::{Result, StoreError};
use crate::keys::{self, AssetKey, Rec, TenantId};
use crate::model::Millis;
use crate::store::Store;
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Sub-record tags under `X` and `M`.
const CANDIDATE: u8 = b'c';
const PROVENANCE: u8 = b'p';
const SETTINGS: u8 = b's';
const STATE: u8 = b't';

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CandidateKind {
    Address,
    Name,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CandidateState {
    Open,
    Approved,
    Dismissed,
}

impl std::str::FromStr for CandidateState {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "open" => Ok(CandidateState::Open),
            "approved" => Ok(CandidateState::Approved),
            "dismissed" => Ok(CandidateState::Dismissed),
            _ => Err(StoreError::Invalid(format!(
                "candidate state {s:?}: use open, approved or dismissed"
            ))),
        }
    }
}

/// How the loop came to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FoundBy {
    Seed,
    Enumeration,
    Certificate,
    ReverseDns,
    /// An in-scope name's A/AAAA record.
    Resolution,
    /// An in-scope name's CNAME.
    Cname,
    CandidateApproval,
}

/// Something outside the scope that the loop's evidence ties to the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Candidate {
    /// `address:IP` or `name:NAME`.
    pub id: String,
    pub kind: CandidateKind,
    pub value: String,
    pub found_by: FoundBy,
    /// Steps from a seed to this candidate, e.g. `certificate on 198.19.1.11:443`,
    /// `SAN shop.example.org`, `A 203.0.113.7`.
    pub evidence: Vec<String>,
    /// The hosting or CDN provider a CNAME points into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub state: CandidateState,
    pub first_seen: Millis,
    pub last_seen: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Candidate {
    /// The evidence as one line: `certificate on … → SAN … → A …`.
    pub fn chain(&self) -> String {
        self.evidence.join(" → ")
    }
}

/// The id of a candidate for an address or a name, validated.
pub fn candidate_id(kind: CandidateKind, value: &str) -> Result<String> {
    match kind {
        CandidateKind::Address => {
            let ip: IpAddr = value.parse().map_err(|_| {
                StoreError::Invalid(format!("candidate address {value:?}: give an IP address"))
            })?;
            Ok(format!("address:{ip}"))
        }
        CandidateKind::Name => match AssetKey::domain(value)? {
            AssetKey::Domain(name) => Ok(format!("name:{name}")),
            _ => Err(StoreError::Invalid(format!("candidate name {value:?}"))),
        },
    }
}

/// An analyst's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Dismiss,
}

/// How an asset was first found, kept from its first sighting on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Provenance {
    pub asset: AssetKey,
    pub found_by: FoundBy,
    pub evidence: Vec<String>,
    /// The loop round and scan that found it.
    pub round: u32,
    pub scan: String,
    pub at: Millis,
}

/// What seeds the loop and what bounds it: set by the tenant's analysts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoverySettings {
    /// Zones to enumerate (each at or under a scope domain, else 409).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(inline, value_type = Vec<String>, format = "domain-name"))]
    pub domains: Vec<String>,
    /// Networks to sweep, each a /16 or smaller (IPv6: a /112 or smaller), inside the
    /// scope's CIDRs (else 409).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(inline, value_type = Vec<String>, format = "seed-cidr"))]
    pub cidrs: Vec<IpNet>,
    /// Host names to resolve (each at or under a scope domain, else 409).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(inline, value_type = Vec<String>, format = "domain-name"))]
    pub names: Vec<String>,
    /// Rounds (DNS, then ports and certificates) at most per loop.
    #[serde(default = "default_depth")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 32))]
    pub max_depth: u32,
    /// In-scope names and addresses each at most per loop; beyond, they are held back.
    #[serde(default = "default_count")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100000))]
    pub max_names: usize,
    #[serde(default = "default_count")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100000))]
    pub max_addresses: usize,
    /// Ports of the loop's scans (`aperture scan -p` syntax); default: the top 100.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = "port-list"))]
    pub ports: Option<String>,
    /// Probes per second of the loop's scans, at most the service's max_rate (100000
    /// unless configured lower); default: the service's.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100000))]
    pub rate: Option<u32>,
    /// Run again this many seconds after a loop ends; none: only on changes and request.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 60))]
    pub interval_secs: Option<u64>,
}

fn default_depth() -> u32 {
    8
}

fn default_count() -> usize {
    1000
}

/// Where the loop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LoopStatus {
    Idle,
    Running,
    /// Ended because a round found nothing new.
    Done,
    /// Ended at a depth or count limit.
    Limited,
    Failed,
}

/// One round of a loop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoundSummary {
    pub round: u32,
    pub dns_scan: Option<String>,
    pub port_scan: Option<String>,
    pub new_names: u64,
    pub new_addresses: u64,
    pub new_candidates: u64,
}

/// The loop's state, kept between ticks of the driver so a restart resumes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoopState {
    pub status: LoopStatus,
    pub round: u32,
    /// `dns` or `ports`, while running.
    pub phase: String,
    pub trigger: Option<String>,
    pub started: Option<Millis>,
    pub finished: Option<Millis>,
    pub next_run: Option<Millis>,
    pub stopped_by: Option<String>,
    pub error: Option<String>,
    pub rounds: Vec<RoundSummary>,
    /// The port scan the loop waits for.
    pub waiting_on: Option<String>,
    /// In-scope names and addresses met this loop, each with its evidence chain.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub names: std::collections::BTreeMap<String, (FoundBy, Vec<String>)>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub addresses: std::collections::BTreeMap<String, (FoundBy, Vec<String>)>,
    /// Names to resolve and addresses to look up (PTR) next round.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub pending_names: std::collections::BTreeMap<String, (FoundBy, Vec<String>)>,
    pub pending_ptr: Vec<String>,
    /// Addresses to scan this round, and the ones the running scan covers.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub queued: std::collections::BTreeMap<String, (FoundBy, Vec<String>)>,
    pub scanning: Vec<String>,
    /// Names and addresses not followed because a count limit was reached.
    pub held_back: u64,
    /// The scope and settings the last loop started from: a change starts a new one.
    pub mark: String,
}

impl Default for LoopState {
    fn default() -> Self {
        LoopState {
            status: LoopStatus::Idle,
            round: 0,
            phase: String::new(),
            trigger: None,
            started: None,
            finished: None,
            next_run: None,
            stopped_by: None,
            error: None,
            rounds: Vec::new(),
            waiting_on: None,
            names: Default::default(),
            addresses: Default::default(),
            pending_names: Default::default(),
            pending_ptr: Vec::new(),
            queued: Default::default(),
            scanning: Vec::new(),
            held_back: 0,
            mark: String::new(),
        }
    }
}

fn sub(rec: Rec, tenant: &TenantId, tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(rest.len() + 1);
    r.push(tag);
    r.extend_from_slice(rest);
    keys::key(rec, tenant, &r)
}

/// A candidate as the loop proposes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCandidate {
    pub kind: CandidateKind,
    pub value: String,
    pub found_by: FoundBy,
    pub evidence: Vec<String>,
    pub provider: Option<String>,
}

/// What a proposal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proposed {
    /// A new open candidate.
    New(Candidate),
    /// Known already (open, approved or dismissed): only its last sighting moved.
    Known(Candidate),
}

impl Store {
    fn read<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        self.get_json(key)
    }

    /// Records a candidate unless it is known; a dismissed one is never proposed again.
    pub fn propose_candidate(
        &self,
        tenant: &TenantId,
        new: NewCandidate,
        now: Millis,
    ) -> Result<Proposed> {
        let NewCandidate {
            kind,
            value,
            found_by,
            evidence,
            provider,
        } = new;
        let value = value.as_str();
        let id = candidate_id(kind, value)?;
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let key = sub(Rec::Candidate, tenant, CANDIDATE, id.as_bytes());
        let mut tx = self.tx();
        let out = match self.read::<Candidate>(&key)? {
            Some(mut c) => {
                c.last_seen = now;
                tx.put_json(key, &c)?;
                Proposed::Known(c)
            }
            None => {
                let value = id.split_once(':').map_or(value, |(_, v)| v).to_owned();
                let c = Candidate {
                    id,
                    kind,
                    value,
                    found_by,
                    evidence,
                    provider,
                    state: CandidateState::Open,
                    first_seen: now,
                    last_seen: now,
                    decided_by: None,
                    decided_at: None,
                    note: None,
                };
                tx.put_json(key, &c)?;
                Proposed::New(c)
            }
        };
        tx.commit()?;
        Ok(out)
    }

    /// Adds steps to an open candidate's evidence (a name's addresses, once resolved).
    pub fn extend_candidate_evidence(
        &self,
        tenant: &TenantId,
        id: &str,
        steps: &[String],
    ) -> Result<()> {
        let _w = self.write_lock();
        let key = sub(Rec::Candidate, tenant, CANDIDATE, id.as_bytes());
        let Some(mut c) = self.read::<Candidate>(&key)? else {
            return Ok(());
        };
        let before = c.evidence.len();
        for s in steps {
            if !c.evidence.contains(s) && c.evidence.len() < 64 {
                c.evidence.push(s.clone());
            }
        }
        if c.evidence.len() != before && c.state == CandidateState::Open {
            let mut tx = self.tx();
            tx.put_json(key, &c)?;
            tx.commit()?;
        }
        Ok(())
    }

    pub fn candidate(&self, tenant: &TenantId, id: &str) -> Result<Candidate> {
        self.require_tenant(tenant)?;
        self.read(&sub(Rec::Candidate, tenant, CANDIDATE, id.as_bytes()))?
            .ok_or_else(|| StoreError::NotFound(format!("candidate {id}")))
    }

    /// A tenant's candidates in id order, of one state if given.
    pub fn candidates(
        &self,
        tenant: &TenantId,
        state: Option<CandidateState>,
    ) -> Result<Vec<Candidate>> {
        self.require_tenant(tenant)?;
        let prefix = sub(Rec::Candidate, tenant, CANDIDATE, b"");
        let mut out = Vec::new();
        for item in self.data.scan_prefix(&prefix) {
            let c: Candidate = serde_json::from_slice(&item?.1)?;
            if state.is_none_or(|s| s == c.state) {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Approves (adding it to the scope, in the same commit) or dismisses a candidate.
    /// An approved candidate is final; a dismissed one may still be approved.
    pub fn decide_candidate(
        &self,
        tenant: &TenantId,
        id: &str,
        decision: Decision,
        by: &str,
        note: Option<String>,
        now: Millis,
    ) -> Result<Candidate> {
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let key = sub(Rec::Candidate, tenant, CANDIDATE, id.as_bytes());
        let mut c: Candidate = self
            .read(&key)?
            .ok_or_else(|| StoreError::NotFound(format!("candidate {id}")))?;
        match (c.state, decision) {
            (CandidateState::Approved, _) => {
                return Err(StoreError::Conflict(format!(
                    "candidate {id} was approved already: it is in the scope (edit the scope to remove it)"
                )))
            }
            (CandidateState::Dismissed, Decision::Dismiss) => {
                return Err(StoreError::Conflict(format!(
                    "candidate {id} was dismissed already"
                )))
            }
            _ => {}
        }
        let mut tx = self.tx();
        if decision == Decision::Approve {
            let scope_key = keys::key(Rec::Scope, tenant, b"");
            let mut scope: crate::access::Scope = self.read(&scope_key)?.unwrap_or_default();
            match c.kind {
                CandidateKind::Address => {
                    let ip: IpAddr = c.value.parse().map_err(|_| {
                        StoreError::Corrupt(format!("candidate {id}: address {:?}", c.value))
                    })?;
                    let net = IpNet::from(ip);
                    if !scope.cidrs.iter().any(|n| n.contains(&ip)) {
                        scope.cidrs.push(net);
                    }
                    scope.exclusions.retain(|n| *n != net);
                }
                CandidateKind::Name => {
                    if !scope
                        .domains
                        .iter()
                        .any(|d| d.eq_ignore_ascii_case(&c.value))
                    {
                        scope.domains.push(c.value.clone());
                    }
                }
            }
            tx.put_json(scope_key, &scope)?;
            c.state = CandidateState::Approved;
        } else {
            c.state = CandidateState::Dismissed;
        }
        c.decided_by = Some(by.to_owned());
        c.decided_at = Some(now);
        c.note = note;
        tx.put_json(key, &c)?;
        tx.commit()?;
        Ok(c)
    }

    /// Records how an asset was first found; later sightings keep the first.
    pub fn record_provenance(&self, tenant: &TenantId, p: &Provenance) -> Result<bool> {
        let _w = self.write_lock();
        let key = sub(
            Rec::Candidate,
            tenant,
            PROVENANCE,
            &p.asset.to_string().into_bytes(),
        );
        if self.data.get(&key)?.is_some() {
            return Ok(false);
        }
        let mut tx = self.tx();
        tx.put_json(key, p)?;
        tx.commit()?;
        Ok(true)
    }

    /// How an asset was first found; a service answers with its host's.
    pub fn provenance(&self, tenant: &TenantId, asset: &AssetKey) -> Result<Option<Provenance>> {
        let own = |k: &AssetKey| {
            self.read::<Provenance>(&sub(
                Rec::Candidate,
                tenant,
                PROVENANCE,
                &k.to_string().into_bytes(),
            ))
        };
        match (own(asset)?, asset) {
            (Some(p), _) => Ok(Some(p)),
            (None, AssetKey::Service(ip, ..)) => own(&AssetKey::Host(*ip)),
            (None, _) => Ok(None),
        }
    }

    pub fn provenances(&self, tenant: &TenantId) -> Result<Vec<Provenance>> {
        self.require_tenant(tenant)?;
        let prefix = sub(Rec::Candidate, tenant, PROVENANCE, b"");
        let mut out = Vec::new();
        for item in self.data.scan_prefix(&prefix) {
            out.push(serde_json::from_slice(&item?.1)?);
        }
        Ok(out)
    }

    pub fn discovery_settings(&self, tenant: &TenantId) -> Result<Option<DiscoverySettings>> {
        self.require_tenant(tenant)?;
        self.read(&sub(Rec::Loop, tenant, SETTINGS, b""))
    }

    pub fn set_discovery_settings(&self, tenant: &TenantId, s: &DiscoverySettings) -> Result<()> {
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let mut tx = self.tx();
        tx.put_json(sub(Rec::Loop, tenant, SETTINGS, b""), s)?;
        tx.commit()
    }

    pub fn loop_state(&self, tenant: &TenantId) -> Result<LoopState> {
        Ok(self
            .read(&sub(Rec::Loop, tenant, STATE, b""))?
            .unwrap_or_default())
    }

    pub fn put_loop_state(&self, tenant: &TenantId, s: &LoopState) -> Result<()> {
        let _w = self.write_lock();
        let mut tx = self.tx();
        tx.put_json(sub(Rec::Loop, tenant, STATE, b""), s)?;
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store, TenantId) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let t = TenantId::new("acme").expect("id");
        store.create_tenant(&t, "Acme", 1).expect("tenant");
        (dir, store, t)
    }

    fn nc(
        kind: CandidateKind,
        value: &str,
        found_by: FoundBy,
        evidence: Vec<String>,
        provider: Option<String>,
    ) -> NewCandidate {
        NewCandidate {
            kind,
            value: value.to_owned(),
            found_by,
            evidence,
            provider,
        }
    }

    fn ev(steps: &[&str]) -> Vec<String> {
        steps.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_candidate_is_proposed_once_and_a_dismissed_one_stays_dismissed() {
        let (_d, s, t) = store();
        let chain = ev(&["certificate on 198.19.6.10:443", "SAN shop.acme-shop.test"]);
        let first = s
            .propose_candidate(
                &t,
                nc(
                    CandidateKind::Name,
                    "Shop.Acme-Shop.test.",
                    FoundBy::Certificate,
                    chain.clone(),
                    None,
                ),
                5,
            )
            .expect("propose");
        let Proposed::New(c) = first else {
            panic!("first proposal is new: {first:?}")
        };
        assert_eq!(c.id, "name:shop.acme-shop.test");
        assert_eq!(
            c.chain(),
            "certificate on 198.19.6.10:443 → SAN shop.acme-shop.test"
        );
        s.extend_candidate_evidence(&t, &c.id, &ev(&["A 198.19.6.141"]))
            .expect("extend");
        let again = s
            .propose_candidate(
                &t,
                nc(
                    CandidateKind::Name,
                    "shop.acme-shop.test",
                    FoundBy::Certificate,
                    ev(&["other"]),
                    None,
                ),
                9,
            )
            .expect("again");
        let Proposed::Known(k) = again else {
            panic!("second proposal is known: {again:?}")
        };
        assert_eq!(
            k.evidence.last().map(String::as_str),
            Some("A 198.19.6.141")
        );
        assert_eq!((k.first_seen, k.last_seen), (5, 9));
        let d = s
            .decide_candidate(
                &t,
                &c.id,
                Decision::Dismiss,
                "ana",
                Some("not ours".into()),
                10,
            )
            .expect("dismiss");
        assert_eq!(d.state, CandidateState::Dismissed);
        assert!(s
            .decide_candidate(&t, &c.id, Decision::Dismiss, "ana", None, 11)
            .is_err());
        let after = s
            .propose_candidate(
                &t,
                nc(
                    CandidateKind::Name,
                    "shop.acme-shop.test",
                    FoundBy::Certificate,
                    chain,
                    None,
                ),
                12,
            )
            .expect("third");
        assert!(matches!(after, Proposed::Known(ref c) if c.state == CandidateState::Dismissed));
        assert!(
            s.scope(&t).expect("scope").domains.is_empty(),
            "dismissing changes no scope"
        );
        assert_eq!(
            s.candidates(&t, Some(CandidateState::Open))
                .expect("list")
                .len(),
            0
        );
    }

    #[test]
    fn approving_puts_the_candidate_in_scope_once() {
        let (_d, s, t) = store();
        let mut scope = crate::access::Scope {
            exclusions: vec!["198.19.6.140/32".parse().expect("net")],
            ..Default::default()
        };
        scope.cidrs.push("198.19.6.0/25".parse().expect("net"));
        s.set_scope(&t, &scope).expect("scope");
        s.propose_candidate(
            &t,
            nc(
                CandidateKind::Address,
                "198.19.6.140",
                FoundBy::Resolution,
                ev(&["mail.acme.test", "A 198.19.6.140"]),
                None,
            ),
            1,
        )
        .expect("propose");
        s.propose_candidate(
            &t,
            nc(
                CandidateKind::Name,
                "d3.cloudfront.net",
                FoundBy::Cname,
                ev(&["CNAME d3.cloudfront.net"]),
                Some("Amazon CloudFront".into()),
            ),
            1,
        )
        .expect("propose");
        let a = s
            .decide_candidate(
                &t,
                "address:198.19.6.140",
                Decision::Approve,
                "ana",
                None,
                2,
            )
            .expect("approve");
        assert_eq!(
            (a.state, a.decided_by.as_deref()),
            (CandidateState::Approved, Some("ana"))
        );
        s.decide_candidate(
            &t,
            "name:d3.cloudfront.net",
            Decision::Approve,
            "ana",
            None,
            2,
        )
        .expect("approve name");
        let scope = s.scope(&t).expect("scope");
        assert!(scope
            .cidrs
            .contains(&"198.19.6.140/32".parse().expect("net")));
        assert!(
            scope.exclusions.is_empty(),
            "an approval lifts its exact exclusion"
        );
        assert_eq!(scope.domains, vec!["d3.cloudfront.net".to_owned()]);
        let again = s.decide_candidate(
            &t,
            "address:198.19.6.140",
            Decision::Dismiss,
            "ana",
            None,
            3,
        );
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        assert!(matches!(
            s.decide_candidate(&t, "address:198.19.6.9", Decision::Approve, "ana", None, 3),
            Err(StoreError::NotFound(_))
        ));
        assert!(candidate_id(CandidateKind::Address, "not-an-ip").is_err());
        assert!(candidate_id(CandidateKind::Name, "a..b").is_err());
    }

    #[test]
    fn provenance_keeps_the_first_and_services_inherit_their_host() {
        let (_d, s, t) = store();
        let host: AssetKey = "host:198.19.6.11".parse().expect("key");
        let p = Provenance {
            asset: host.clone(),
            found_by: FoundBy::Certificate,
            evidence: ev(&[
                "certificate on 198.19.6.10:443",
                "SAN qx7-portal.acme.test",
                "A 198.19.6.11",
            ]),
            round: 2,
            scan: "scan-3".into(),
            at: 7,
        };
        assert!(s.record_provenance(&t, &p).expect("first"));
        let later = Provenance {
            found_by: FoundBy::ReverseDns,
            ..p.clone()
        };
        assert!(!s.record_provenance(&t, &later).expect("later"));
        let svc: AssetKey = "service:198.19.6.11:443/tcp".parse().expect("key");
        assert_eq!(s.provenance(&t, &svc).expect("read"), Some(p));
        assert_eq!(s.provenances(&t).expect("all").len(), 1);
        let other: AssetKey = "host:198.19.6.99".parse().expect("key");
        assert_eq!(s.provenance(&t, &other).expect("read"), None);
    }
}
