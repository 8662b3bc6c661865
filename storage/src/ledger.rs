//! The asset ledger (资产台账): what the client says about its assets — owner, business
//! system, criticality, location, tags, notes.
//!
//! These attributes are the client's, not the scanner's: they live in records of their
//! own (`Rec::Ledger`, keyed by the asset's byte key), which no scan writes, so a rescan,
//! an asset going absent and coming back, or a restart leaves them as they were. An
//! entry may name an asset no scan has seen yet: the ledger describes what the client
//! owns, and the attributes show on the asset once the scanner finds it.
//!
//! Criticality is three levels, confidentiality / integrity / availability, each an
//! integer from 1 (very low) to 5 (very high), as in the usual asset valuation of
//! ISO/IEC 27005 and GB/T 20984; any may be unset.

use crate::error::{Result, StoreError};
use crate::findings::NewSanction;
use crate::ingest::{counter_key, read_counter};
use crate::keys::{self, AssetKey, Rec, TenantId};
use crate::model::{Asset, Millis, Page};
use crate::policy::{self, Finding, Sanction, SanctionMatch, Severity};
use crate::query::{AssetFilter, MAX_PAGE};
use crate::store::{Store, Tx};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Lowest and highest criticality level.
pub const LEVEL_MIN: u8 = 1;
pub const LEVEL_MAX: u8 = 5;
/// The criticality an asset without levels counts as in a finding's priority: the
/// middle, so an undescribed asset neither rises nor sinks.
pub const DEFAULT_CRITICALITY: u8 = 3;
/// Edits of one asset kept on its entry: who changed what, when (the audit log has
/// every call, with who made it).
pub const HISTORY_KEPT: usize = 50;
/// Assets one bulk edit or import may change: one transaction, bounded.
pub const MAX_EDIT: usize = 10_000;
/// Tags an asset may carry; one request gives at most 32 in each list.
pub const MAX_TAGS: usize = 64;
pub const MAX_TEXT: usize = 200;
pub const MAX_TAG: usize = 64;
pub const MAX_NOTES: usize = 4000;

/// What the client says about one asset. Every field may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attributes {
    /// Who answers for the asset (责任人): 1-200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 200))]
    pub owner: Option<String>,
    /// The business system it serves: 1-200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 200))]
    pub business_system: Option<String>,
    /// 1 (very low) to 5 (very high).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 5))]
    pub confidentiality: Option<u8>,
    /// 1 (very low) to 5 (very high).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 5))]
    pub integrity: Option<u8>,
    /// 1 (very low) to 5 (very high).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 5))]
    pub availability: Option<u8>,
    /// Where it is (site, room, cloud region): 1-200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 200))]
    pub location: Option<String>,
    /// At most 32 tags of 1-64 characters without ',' or ';' (surrounding spaces are
    /// dropped); an asset carries at most 64.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 32, value_type = Vec<Tag>))]
    pub tags: BTreeSet<String>,
    /// Free text, at most 4000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 4000))]
    pub notes: Option<String>,
}

/// A tag in the description: 1-64 characters, not only spaces, without ',' or ';'.
#[cfg(feature = "openapi")]
#[derive(Debug)]
pub struct Tag;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Tag {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A tag: 1-64 characters, not only spaces, without ',' or ';' (surrounding spaces are dropped).",
            ))
            .pattern(Some(r"^[^,;]*[^\s,;][^,;]*$"))
            .min_length(Some(1))
            .max_length(Some(MAX_TAG))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Tag {}

fn bad(what: &str, why: &str) -> StoreError {
    StoreError::Invalid(format!("{what}: {why}"))
}

/// Space as the description's `\S` means it (Python's and ECMAScript's `\s`), which
/// counts the information separators U+001C-U+001F that Rust's `trim` keeps.
fn is_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}')
}

fn check_text(field: &str, v: &str, max: usize) -> Result<()> {
    if v.chars().all(is_space) {
        return Err(bad(
            field,
            "give some text, or leave the field out to unset it",
        ));
    }
    if v.chars().count() > max {
        return Err(bad(field, &format!("at most {max} characters")));
    }
    Ok(())
}

/// A tag as stored: without surrounding spaces.
pub fn normal_tag(tag: &str) -> String {
    tag.trim_matches(is_space).to_owned()
}

/// Checks one tag (after [`normal_tag`]).
pub fn check_tag(tag: &str) -> Result<()> {
    let what = format!("tag {tag:?}");
    if tag.is_empty() {
        return Err(bad(&what, "give 1-64 characters, not only spaces"));
    }
    if tag.chars().count() > MAX_TAG {
        return Err(bad(&what, "at most 64 characters"));
    }
    if tag.contains([',', ';']) {
        return Err(bad(
            &what,
            "',' and ';' separate tags: they cannot be in one",
        ));
    }
    Ok(())
}

/// Checks one criticality level.
pub fn check_level(field: &str, v: u8) -> Result<()> {
    if (LEVEL_MIN..=LEVEL_MAX).contains(&v) {
        Ok(())
    } else {
        Err(bad(
            field,
            &format!("{v} is not a level: give 1 (very low) to 5 (very high), or leave it out"),
        ))
    }
}

impl Attributes {
    /// Tags without their surrounding spaces, as stored.
    pub fn normalized(mut self) -> Attributes {
        self.tags = self.tags.iter().map(|t| normal_tag(t)).collect();
        self
    }

    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("owner", &self.owner),
            ("business_system", &self.business_system),
            ("location", &self.location),
        ] {
            if let Some(v) = v {
                check_text(field, v, MAX_TEXT)?;
            }
        }
        if let Some(n) = &self.notes {
            check_text("notes", n, MAX_NOTES)?;
        }
        for (field, v) in [
            ("confidentiality", self.confidentiality),
            ("integrity", self.integrity),
            ("availability", self.availability),
        ] {
            if let Some(v) = v {
                check_level(field, v)?;
            }
        }
        if self.tags.len() > MAX_TAGS {
            return Err(bad("tags", &format!("at most {MAX_TAGS} tags")));
        }
        for t in &self.tags {
            check_tag(t)?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == Attributes::default()
    }

    /// The highest of the three levels, if any is set.
    pub fn criticality(&self) -> Option<u8> {
        [self.confidentiality, self.integrity, self.availability]
            .into_iter()
            .flatten()
            .max()
    }

    /// `field: old → new` for every field that differs, for the audit.
    pub fn diff(&self, new: &Attributes) -> Vec<String> {
        fn show<T: std::fmt::Debug>(v: &Option<T>) -> String {
            v.as_ref().map_or("unset".to_owned(), |v| format!("{v:?}"))
        }
        let mut out = Vec::new();
        let mut text = |f: &str, a: &Option<String>, b: &Option<String>| {
            if a != b {
                out.push(format!("{f}: {} → {}", show(a), show(b)));
            }
        };
        text("owner", &self.owner, &new.owner);
        text(
            "business_system",
            &self.business_system,
            &new.business_system,
        );
        text("location", &self.location, &new.location);
        text("notes", &self.notes, &new.notes);
        for (f, a, b) in [
            ("confidentiality", self.confidentiality, new.confidentiality),
            ("integrity", self.integrity, new.integrity),
            ("availability", self.availability, new.availability),
        ] {
            if a != b {
                out.push(format!("{f}: {} → {}", show(&a), show(&b)));
            }
        }
        if self.tags != new.tags {
            out.push(format!("tags: {:?} → {:?}", self.tags, new.tags));
        }
        out
    }
}

/// A change to some attributes: a field left out stays, `null` unsets it, a value sets
/// it. `add_tags` and `remove_tags` change the tag set without replacing it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttributesPatch {
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = r"\S", max_length = 200))]
    pub owner: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = r"\S", max_length = 200))]
    pub business_system: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u8>, minimum = 1, maximum = 5))]
    pub confidentiality: Option<Option<u8>>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u8>, minimum = 1, maximum = 5))]
    pub integrity: Option<Option<u8>>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u8>, minimum = 1, maximum = 5))]
    pub availability: Option<Option<u8>>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = r"\S", max_length = 200))]
    pub location: Option<Option<String>>,
    /// Replaces the tag set (null or [] empties it).
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Tag>>, max_items = 32))]
    pub tags: Option<Option<BTreeSet<String>>>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 4000))]
    pub notes: Option<Option<String>>,
    /// Tags added to the set.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Tag>, max_items = 32))]
    pub add_tags: Vec<String>,
    /// Tags taken out of the set.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Tag>, max_items = 32))]
    pub remove_tags: Vec<String>,
}

/// A field given (even as null) is `Some`, so null can mean "unset".
fn present<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl AttributesPatch {
    pub fn apply(&self, to: &Attributes) -> Result<Attributes> {
        let mut a = to.clone();
        fn set<T: Clone>(field: &mut Option<T>, v: &Option<Option<T>>) {
            if let Some(v) = v {
                *field = v.clone();
            }
        }
        set(&mut a.owner, &self.owner);
        set(&mut a.business_system, &self.business_system);
        set(&mut a.confidentiality, &self.confidentiality);
        set(&mut a.integrity, &self.integrity);
        set(&mut a.availability, &self.availability);
        set(&mut a.location, &self.location);
        set(&mut a.notes, &self.notes);
        if let Some(tags) = &self.tags {
            a.tags = tags.clone().unwrap_or_default();
        }
        let mut a = a.normalized();
        for t in self.add_tags.iter().chain(&self.remove_tags) {
            check_tag(&normal_tag(t))?;
        }
        a.tags.extend(self.add_tags.iter().map(|t| normal_tag(t)));
        for t in &self.remove_tags {
            a.tags.remove(&normal_tag(t));
        }
        a.validate()?;
        Ok(a)
    }

    pub fn is_empty(&self) -> bool {
        *self == AttributesPatch::default()
    }
}

/// One edit on an entry: when, by whom, what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerEdit {
    pub at: Millis,
    /// The token that made it.
    pub by: String,
    /// How: `set`, `patch`, `bulk edit`, `import`.
    pub via: String,
    /// `field: old → new`, one per changed field.
    pub changed: Vec<String>,
}

/// The ledger's record of one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerEntry {
    pub asset: AssetKey,
    pub attributes: Attributes,
    pub updated: Millis,
    pub updated_by: String,
    /// The latest edits, oldest first (at most 50).
    #[serde(default)]
    pub history: Vec<LedgerEdit>,
}

/// Filters on the ledger's attributes; every given one must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerFilter {
    /// Equal, ignoring ASCII case.
    pub owner: Option<String>,
    pub business_system: Option<String>,
    /// The tag set holds it.
    pub tag: Option<String>,
    /// The highest of C/I/A is at least this.
    pub min_criticality: Option<u8>,
}

impl LedgerFilter {
    pub fn is_empty(&self) -> bool {
        *self == LedgerFilter::default()
    }

    pub fn matches(&self, a: &Attributes) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| match want {
            Some(w) => have.as_ref().is_some_and(|h| h.eq_ignore_ascii_case(w)),
            None => true,
        };
        eq(&self.owner, &a.owner)
            && eq(&self.business_system, &a.business_system)
            && self.tag.as_ref().is_none_or(|t| a.tags.contains(t))
            && self
                .min_criticality
                .is_none_or(|m| a.criticality().is_some_and(|c| c >= m))
    }
}

/// What to do to one asset's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerChange {
    /// Replace them (empty: remove the entry).
    Set(Attributes),
    /// Change the fields the patch names.
    Patch(AttributesPatch),
}

/// Who makes an edit, for the entries' history.
#[derive(Debug, Clone)]
pub struct Editor {
    pub actor: String,
}

/// What an edit did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerResult {
    /// Assets the edit named or its filter matched.
    pub matched: u64,
    /// Of those, the ones whose attributes changed.
    pub changed: u64,
    /// Sanctions an import created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sanctions: Vec<Sanction>,
}

pub(crate) fn entry_key(tenant: &TenantId, asset: &AssetKey) -> Vec<u8> {
    keys::key(Rec::Ledger, tenant, &asset.to_bytes())
}

/// A finding's priority: severity rank (info 1, low 2, medium 3, high 4, critical 5)
/// times the asset's criticality (1-5; [`DEFAULT_CRITICALITY`] when unknown), 1 to 25.
pub fn priority(severity: Severity, criticality: Option<u8>) -> u32 {
    let rank = match severity {
        Severity::Info => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    };
    rank * u32::from(criticality.unwrap_or(DEFAULT_CRITICALITY))
}

/// The sanction an import row asks for: the asset's own exposure.
pub fn sanction_match(asset: &AssetKey) -> Result<SanctionMatch> {
    let m = match asset {
        AssetKey::Host(ip) => SanctionMatch {
            net: Some(ipnet::IpNet::from(*ip)),
            ..SanctionMatch::default()
        },
        AssetKey::Service(ip, port, aperture_fingerprints::Proto::Tcp) => SanctionMatch {
            net: Some(ipnet::IpNet::from(*ip)),
            port: Some(*port),
            proto: Some("tcp".into()),
            ..SanctionMatch::default()
        },
        AssetKey::Service(_, _, _) => {
            return Err(StoreError::Invalid(format!(
                "{asset}: sanctions match TCP services only so far; leave sanction_reason empty for UDP rows"
            )))
        }
        AssetKey::Domain(name) => SanctionMatch {
            domain: Some(name.clone()),
            ..SanctionMatch::default()
        },
        AssetKey::Certificate(_) => {
            return Err(StoreError::Invalid(
                "a certificate cannot be sanctioned: sanction the service that presents it".into(),
            ))
        }
    };
    Ok(m)
}

impl Store {
    pub fn ledger_entry(&self, tenant: &TenantId, asset: &AssetKey) -> Result<Option<LedgerEntry>> {
        self.get_json(&entry_key(tenant, asset))
    }

    /// The ledger's entries in asset-key order (also those of assets not seen yet).
    pub fn ledger_entries(
        &self,
        tenant: &TenantId,
        filter: &LedgerFilter,
        cursor: Option<&AssetKey>,
        limit: usize,
    ) -> Result<Page<LedgerEntry>> {
        self.require_tenant(tenant)?;
        let limit = limit.clamp(1, MAX_PAGE);
        let prefix = keys::prefix(Rec::Ledger, tenant);
        let start = match cursor {
            Some(c) => {
                let mut k = entry_key(tenant, c);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut items = Vec::new();
        let mut more = false;
        for item in self.data.range(start..keys::prefix_end(&prefix)) {
            let e: LedgerEntry = serde_json::from_slice(&item?.1)?;
            if e.attributes.is_empty() || !filter.matches(&e.attributes) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(e);
        }
        let next = if more {
            items.last().map(|e: &LedgerEntry| e.asset.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// A page of the assets the scanner has seen that match both filters, in listing
    /// order: the ledger's keys sort like the listing, so the ledger is walked and each
    /// described asset checked.
    pub fn list_described_assets(
        &self,
        tenant: &TenantId,
        filter: &AssetFilter,
        ledger: &LedgerFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Asset>> {
        self.require_tenant(tenant)?;
        let limit = limit.clamp(1, MAX_PAGE);
        let after = cursor
            .map(|c| {
                c.parse::<AssetKey>().map_err(|_| {
                    StoreError::Invalid(format!(
                        "cursor {c:?} is not one this listing gave: start without a cursor"
                    ))
                })
            })
            .transpose()?;
        let scope = match &filter.domain {
            Some(d) => Some(self.domain_scope(tenant, d)?),
            None => None,
        };
        let prefix = keys::prefix(Rec::Ledger, tenant);
        let start = match &after {
            Some(a) => {
                let mut k = entry_key(tenant, a);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut items = Vec::new();
        let mut more = false;
        for item in self.data.range(start..keys::prefix_end(&prefix)) {
            let e: LedgerEntry = serde_json::from_slice(&item?.1)?;
            if !ledger.matches(&e.attributes) {
                continue;
            }
            let Some(asset) = self.load_asset(tenant, &e.asset)? else {
                continue;
            };
            if !crate::query::matches(&asset, filter, scope.as_ref()) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(asset);
        }
        let next = if more {
            items.last().map(|a: &Asset| a.key.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// The criticality a finding on `asset` counts with: the asset's own, else (for a
    /// service) its host's.
    pub fn criticality(&self, tenant: &TenantId, asset: &AssetKey) -> Result<Option<u8>> {
        if let Some(c) = self
            .ledger_entry(tenant, asset)?
            .and_then(|e| e.attributes.criticality())
        {
            return Ok(Some(c));
        }
        match asset {
            AssetKey::Service(ip, _, _) => Ok(self
                .ledger_entry(tenant, &AssetKey::Host(*ip))?
                .and_then(|e| e.attributes.criticality())),
            _ => Ok(None),
        }
    }

    pub fn finding_priority(&self, tenant: &TenantId, f: &Finding) -> Result<u32> {
        Ok(priority(f.severity, self.criticality(tenant, &f.asset)?))
    }

    /// Changes the attributes of each named asset and creates the sanctions, in one
    /// transaction: everything is stored, or nothing. Each changed entry records the
    /// edit (who, how, `field: old → new`). `what` says how (`set`, `import`...).
    pub fn edit_ledger(
        &self,
        tenant: &TenantId,
        edits: Vec<(AssetKey, LedgerChange)>,
        sanctions: Vec<NewSanction>,
        editor: &Editor,
        what: &str,
        now: Millis,
    ) -> Result<LedgerResult> {
        if edits.len() > MAX_EDIT {
            return Err(StoreError::Invalid(format!(
                "{} assets in one edit: at most {MAX_EDIT}; narrow the filter or split the file",
                edits.len()
            )));
        }
        for (k, change) in &edits {
            if let LedgerChange::Set(a) = change {
                a.clone()
                    .normalized()
                    .validate()
                    .map_err(|e| StoreError::Invalid(format!("{k}: {e}")))?;
            }
        }
        for s in &sanctions {
            s.validate()?;
        }
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let mut tx = self.tx();
        let mut result = LedgerResult {
            matched: edits.iter().map(|(k, _)| k).collect::<BTreeSet<_>>().len() as u64,
            ..LedgerResult::default()
        };
        // In order, each reading what the ones before staged: a later edit of the same
        // asset applies on top of the earlier one.
        for (key, change) in edits {
            let k = entry_key(tenant, &key);
            let old: Option<LedgerEntry> = tx.get_json(&k)?;
            let before = old
                .as_ref()
                .map(|e| e.attributes.clone())
                .unwrap_or_default();
            let attrs = match change {
                LedgerChange::Set(a) => a.normalized(),
                LedgerChange::Patch(p) => p
                    .apply(&before)
                    .map_err(|e| StoreError::Invalid(format!("{key}: {e}")))?,
            };
            let changed = before.diff(&attrs);
            if changed.is_empty() {
                continue;
            }
            result.changed += 1;
            // An entry emptied stays, with its history: the removal is an edit too.
            let mut history = old.map(|e| e.history).unwrap_or_default();
            history.push(LedgerEdit {
                at: now,
                by: editor.actor.clone(),
                via: what.to_owned(),
                changed,
            });
            if history.len() > HISTORY_KEPT {
                history.drain(..history.len() - HISTORY_KEPT);
            }
            let entry = LedgerEntry {
                asset: key,
                attributes: attrs,
                updated: now,
                updated_by: editor.actor.clone(),
                history,
            };
            tx.put_json(k, &entry)?;
        }
        let mut existing = self.sanctions(tenant)?;
        for new in sanctions {
            // Importing the same inventory again must not sanction the same thing twice.
            let same = |s: &Sanction| {
                s.matches == new.matches
                    && s.owner == new.owner
                    && s.reason == new.reason
                    && s.expires == new.expires
            };
            if existing.iter().any(same) {
                continue;
            }
            let s = self.stage_sanction(&mut tx, tenant, new, &editor.actor, now)?;
            existing.push(s.clone());
            result.sanctions.push(s);
        }
        tx.commit()?;
        Ok(result)
    }

    /// A sanction staged in `tx`, its re-evaluation queued: [`Store::create_sanction`]
    /// inside a larger transaction.
    fn stage_sanction(
        &self,
        tx: &mut Tx<'_>,
        tenant: &TenantId,
        new: NewSanction,
        created_by: &str,
        now: Millis,
    ) -> Result<Sanction> {
        let counter = counter_key(tenant, "sanctions");
        let n = read_counter(tx, &counter)? + 1;
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
            crate::findings::queue(tx, tenant, reach)?;
        }
        Ok(sanction)
    }

    /// Findings matching `filter`, highest priority first (then severity, then oldest),
    /// one page after `cursor` (a finding id of the previous page). Every matching
    /// finding is read to order them: a tenant's findings, not its observations.
    pub fn findings_by_priority(
        &self,
        tenant: &TenantId,
        filter: &crate::findings::FindingFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<(Finding, u32)>> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut all = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self.findings(tenant, filter, next.as_deref(), MAX_PAGE)?;
            all.extend(page.items);
            match page.next {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        let mut crit: BTreeMap<AssetKey, Option<u8>> = BTreeMap::new();
        let mut ranked = Vec::with_capacity(all.len());
        for f in all {
            let c = match crit.get(&f.asset) {
                Some(c) => *c,
                None => {
                    let c = self.criticality(tenant, &f.asset)?;
                    crit.insert(f.asset.clone(), c);
                    c
                }
            };
            let p = priority(f.severity, c);
            ranked.push((f, p));
        }
        let order = |f: &Finding, p: u32| {
            (
                std::cmp::Reverse(p),
                std::cmp::Reverse(f.severity),
                f.opened,
                f.id.clone(),
            )
        };
        ranked.sort_by_key(|(f, p)| order(f, *p));
        let start = match cursor {
            None => 0,
            Some(c) => {
                // A cursor is a finding of the previous page; an id of none cannot say
                // where that page ended.
                let at = self.finding(tenant, c).map_err(|_| {
                    StoreError::NotFound(format!(
                        "finding {c} (the cursor): start without a cursor"
                    ))
                })?;
                let p = self.finding_priority(tenant, &at)?;
                let key = order(&at, p);
                ranked.partition_point(|(f, p)| order(f, *p) <= key)
            }
        };
        let rest = ranked.len().saturating_sub(start);
        let items: Vec<(Finding, u32)> = ranked.into_iter().skip(start).take(limit).collect();
        let next = if rest > limit {
            items.last().map(|(f, _)| f.id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }
}
