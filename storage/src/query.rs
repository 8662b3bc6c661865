//! Reading a tenant's assets, their history, the change feed and the daily counts.
//!
//! Every query takes the tenant and reads only keys under that tenant's prefix.

use crate::error::{Result, StoreError};
use crate::ingest::{change_block_key, counter_key, link_prefix};
use crate::keys::{self, AssetKey, AssetKind, Proto, Rec, TenantId};
use crate::model::{Asset, AssetStatus, Change, DayCount, Millis, Page};
use crate::postings;
use crate::records::{self, HostRecord};
use crate::store::Store;
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Largest page a listing returns.
pub const MAX_PAGE: usize = 1000;

/// Filters of an asset listing; every given filter must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetFilter {
    pub kind: Option<AssetKind>,
    /// Address or CIDR (an address is a /32 or /128).
    pub net: Option<IpNet>,
    pub port: Option<u16>,
    /// Services of this transport only (other kinds never match).
    pub protocol: Option<Proto>,
    pub service: Option<String>,
    pub product: Option<String>,
    /// Risk class in its kebab-case name (`remote-administration`, `database`...).
    pub risk: Option<String>,
    /// A domain: the name and the names under it, and hosts and services at the
    /// addresses those names resolve to.
    pub domain: Option<String>,
    pub status: Option<AssetStatus>,
    pub first_seen_from: Option<Millis>,
    pub first_seen_to: Option<Millis>,
    pub last_seen_from: Option<Millis>,
    pub last_seen_to: Option<Millis>,
}

impl Store {
    pub fn asset(&self, tenant: &TenantId, key: &AssetKey) -> Result<Asset> {
        self.load_asset(tenant, key)?
            .ok_or_else(|| StoreError::NotFound(format!("asset {key}")))
    }

    /// Assets linked to this one (service → certificate, domain → hosts, and back).
    pub fn links(&self, tenant: &TenantId, key: &AssetKey) -> Result<Vec<AssetKey>> {
        let prefix = link_prefix(tenant, key);
        let mut out = Vec::new();
        for item in self.data.scan_prefix(&prefix) {
            let (k, _) = item?;
            out.push(AssetKey::from_bytes(
                k.get(prefix.len()..).unwrap_or_default(),
            )?);
        }
        Ok(out)
    }

    /// One page of a tenant's assets in key order (kind — certificates, domains, hosts,
    /// services — then address and port, or name). `cursor` is the `next` of the
    /// previous page.
    pub fn list_assets(
        &self,
        tenant: &TenantId,
        filter: &AssetFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Asset>> {
        let limit = limit.clamp(1, MAX_PAGE);
        if let (Some(_), None) = (filter.net, filter.kind) {
            return self.list_hosts_then_services(tenant, filter, cursor, limit);
        }
        let after: Option<AssetKey> = cursor.map(parse_cursor).transpose()?;
        let domain_scope = match &filter.domain {
            Some(d) => Some(self.domain_scope(tenant, d)?),
            None => None,
        };
        let mut items = Vec::new();
        let mut more = false;
        let mut take = |asset: Asset| {
            if !matches(&asset, filter, domain_scope.as_ref()) {
                return true;
            }
            if items.len() == limit {
                more = true;
                return false;
            }
            items.push(asset);
            true
        };
        match index_term(tenant, filter) {
            Some(term) => {
                let _gate = self.postings_gate.read().unwrap_or_else(|p| p.into_inner());
                let after = after.as_ref().map(AssetKey::to_bytes);
                for key in postings::candidates(&self.data, &term, after.as_deref())? {
                    let key = AssetKey::from_bytes(&key?)?;
                    if let Some(asset) = self.load_asset(tenant, &key)? {
                        if !take(asset) {
                            break;
                        }
                    }
                }
            }
            None => {
                // Kinds before the cursor's are done (listing order is KIND_ORDER's).
                let start = after
                    .as_ref()
                    .and_then(|a| KIND_ORDER.iter().position(|k| *k == a.kind()))
                    .unwrap_or(0);
                for kind in KIND_ORDER.into_iter().skip(start) {
                    if filter.kind.is_some_and(|k| k != kind) {
                        continue;
                    }
                    let from = after.as_ref().filter(|a| a.kind() == kind);
                    if !self.walk_kind(tenant, kind, filter.net, from, &mut take)? {
                        break;
                    }
                }
            }
        }
        let next = if more {
            items.last().map(|a| a.key.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Calls `f` on every asset of one kind in key order, after `after` (of that kind),
    /// within `net` for hosts and services, until `f` says stop. Returns false if it did.
    pub(crate) fn walk_kind(
        &self,
        tenant: &TenantId,
        kind: AssetKind,
        net: Option<IpNet>,
        after: Option<&AssetKey>,
        f: &mut dyn FnMut(Asset) -> bool,
    ) -> Result<bool> {
        let asset_prefix = keys::prefix(Rec::Asset, tenant);
        match kind {
            AssetKind::Host | AssetKind::Service => {
                let (mut lo, hi) = match net {
                    Some(n) => records::host_record_range(tenant, n.network(), n.broadcast()),
                    None => {
                        let p = records::host_record_prefix(tenant);
                        let end = keys::prefix_end(&p);
                        (p, end)
                    }
                };
                if let Some(ip) = after.and_then(AssetKey::address) {
                    let mut from = records::host_record_key(tenant, ip);
                    if kind == AssetKind::Host {
                        from.push(0);
                    }
                    lo = lo.max(from);
                }
                if lo >= hi {
                    return Ok(true);
                }
                let plen = asset_prefix.len();
                for item in self.data.range(lo..hi) {
                    let (k, v) = item?;
                    let ip = records::host_record_ip(k.get(plen..).unwrap_or_default())?;
                    let record = HostRecord::decode(&v)?;
                    if kind == AssetKind::Host {
                        if let Some(h) = record.host(ip)? {
                            if !f(h) {
                                return Ok(false);
                            }
                        }
                        continue;
                    }
                    for s in record.services(ip) {
                        let s = s?;
                        if after.is_some_and(|a| s.key <= *a) {
                            continue;
                        }
                        if !f(s) {
                            return Ok(false);
                        }
                    }
                }
                Ok(true)
            }
            AssetKind::Domain | AssetKind::Certificate => {
                if net.is_some() {
                    // No address: nothing of these kinds is in a net.
                    return Ok(true);
                }
                let tag = if kind == AssetKind::Domain {
                    b'd'
                } else {
                    b'c'
                };
                let mut lo = asset_prefix.clone();
                lo.push(tag);
                let hi = keys::prefix_end(&lo);
                if let Some(a) = after {
                    let mut from = keys::asset(tenant, a);
                    from.push(0);
                    lo = lo.max(from);
                }
                for item in self.data.range(lo..hi) {
                    let (_, v) = item?;
                    if !f(Asset::decode(&v)?) {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }

    /// One page of a tenant's assets in descending key order (services, hosts, domains,
    /// certificates; within each, the reverse of [`Store::list_assets`]'s order). `cursor`
    /// is the `next` of the previous page.
    ///
    /// Served by reading the same key ranges backwards, so a page costs what an
    /// ascending one does. The posting indexes (service, product, risk, port, absent or
    /// unknown status) read forward only: those filters are refused here rather than
    /// answered by a walk of the whole tenant.
    pub fn list_assets_desc(
        &self,
        tenant: &TenantId,
        filter: &AssetFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Asset>> {
        if index_term(tenant, filter).is_some() {
            return Err(StoreError::Invalid(
                "descending order is served for the kind, address, domain, present status and \
                 time filters only: the service, product, risk, port and absent/unknown \
                 status indexes read in ascending order; sort by key instead"
                    .into(),
            ));
        }
        let limit = limit.clamp(1, MAX_PAGE);
        let before: Option<AssetKey> = cursor.map(parse_cursor).transpose()?;
        let domain_scope = match &filter.domain {
            Some(d) => Some(self.domain_scope(tenant, d)?),
            None => None,
        };
        let mut items = Vec::new();
        let mut more = false;
        let mut take = |asset: Asset| {
            if !matches(&asset, filter, domain_scope.as_ref()) {
                return true;
            }
            if items.len() == limit {
                more = true;
                return false;
            }
            items.push(asset);
            true
        };
        // Kinds after the cursor's (in ascending order) are done.
        let start = before
            .as_ref()
            .and_then(|b| KIND_ORDER.iter().rev().position(|k| *k == b.kind()))
            .unwrap_or(0);
        for kind in KIND_ORDER.into_iter().rev().skip(start) {
            if filter.kind.is_some_and(|k| k != kind) {
                continue;
            }
            let from = before.as_ref().filter(|b| b.kind() == kind);
            if !self.walk_kind_desc(tenant, kind, filter.net, from, &mut take)? {
                break;
            }
        }
        let next = if more {
            items.last().map(|a| a.key.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// [`Store::walk_kind`] backwards: every asset of one kind before `before` (of that
    /// kind), in descending key order.
    fn walk_kind_desc(
        &self,
        tenant: &TenantId,
        kind: AssetKind,
        net: Option<IpNet>,
        before: Option<&AssetKey>,
        f: &mut dyn FnMut(Asset) -> bool,
    ) -> Result<bool> {
        let asset_prefix = keys::prefix(Rec::Asset, tenant);
        match kind {
            AssetKind::Host | AssetKind::Service => {
                let (lo, mut hi) = match net {
                    Some(n) => records::host_record_range(tenant, n.network(), n.broadcast()),
                    None => {
                        let p = records::host_record_prefix(tenant);
                        let end = keys::prefix_end(&p);
                        (p, end)
                    }
                };
                if let Some(ip) = before.and_then(AssetKey::address) {
                    // A host cursor: that record is done. A service cursor: that record
                    // still holds the services of lower ports.
                    let mut to = records::host_record_key(tenant, ip);
                    if kind == AssetKind::Service {
                        to.push(0);
                    }
                    hi = hi.min(to);
                }
                if lo >= hi {
                    return Ok(true);
                }
                let plen = asset_prefix.len();
                for item in self.data.range(lo..hi).rev() {
                    let (k, v) = item?;
                    let ip = records::host_record_ip(k.get(plen..).unwrap_or_default())?;
                    let record = HostRecord::decode(&v)?;
                    if kind == AssetKind::Host {
                        if let Some(h) = record.host(ip)? {
                            if !f(h) {
                                return Ok(false);
                            }
                        }
                        continue;
                    }
                    let services: Vec<Asset> = record.services(ip).collect::<Result<_>>()?;
                    for s in services.into_iter().rev() {
                        if before.is_some_and(|b| s.key >= *b) {
                            continue;
                        }
                        if !f(s) {
                            return Ok(false);
                        }
                    }
                }
                Ok(true)
            }
            AssetKind::Domain | AssetKind::Certificate => {
                if net.is_some() {
                    return Ok(true);
                }
                let tag = if kind == AssetKind::Domain {
                    b'd'
                } else {
                    b'c'
                };
                let mut lo = asset_prefix.clone();
                lo.push(tag);
                let mut hi = keys::prefix_end(&lo);
                if let Some(b) = before {
                    hi = hi.min(keys::asset(tenant, b));
                }
                if lo >= hi {
                    return Ok(true);
                }
                for item in self.data.range(lo..hi).rev() {
                    let (_, v) = item?;
                    if !f(Asset::decode(&v)?) {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }

    /// An address filter over both kinds: the net's hosts, then the net's services, each
    /// a key range of its own (one range from the first host to the last service would
    /// cross every other host and service in between).
    fn list_hosts_then_services(
        &self,
        tenant: &TenantId,
        filter: &AssetFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Asset>> {
        let cursor_kind = cursor.map(parse_cursor).transpose()?.map(|k| k.kind());
        let of_kind = |kind| AssetFilter {
            kind: Some(kind),
            ..filter.clone()
        };
        let mut items = Vec::new();
        if cursor_kind.is_none() || cursor_kind == Some(AssetKind::Host) {
            let hosts = self.list_assets(tenant, &of_kind(AssetKind::Host), cursor, limit)?;
            if hosts.next.is_some() {
                return Ok(hosts);
            }
            items = hosts.items;
        }
        if items.len() == limit {
            // Full with hosts: the next page starts with the services.
            let next = items.last().map(|a: &Asset| a.key.to_string());
            return Ok(Page { items, next });
        }
        let service_cursor = cursor.filter(|_| cursor_kind == Some(AssetKind::Service));
        let services = self.list_assets(
            tenant,
            &of_kind(AssetKind::Service),
            service_cursor,
            limit - items.len(),
        )?;
        items.extend(services.items);
        Ok(Page {
            items,
            next: services.next,
        })
    }

    /// Names at or under `domain` and the addresses they resolve to.
    pub(crate) fn domain_scope(&self, tenant: &TenantId, domain: &str) -> Result<DomainScope> {
        let apex = AssetKey::domain(domain)?;
        let apex_name = match &apex {
            AssetKey::Domain(n) => n.clone(),
            _ => String::new(),
        };
        let mut addresses = BTreeSet::new();
        let prefix = keys::asset(tenant, &apex);
        for item in self.data.scan_prefix(&prefix) {
            let (_, v) = item?;
            let asset = Asset::decode(&v)?;
            let AssetKey::Domain(name) = &asset.key else {
                continue;
            };
            if !under(name, &apex_name) {
                continue;
            }
            for link in self.links(tenant, &asset.key)? {
                if let AssetKey::Host(ip) = link {
                    addresses.insert(ip);
                }
            }
        }
        Ok(DomainScope {
            apex: apex_name,
            addresses,
        })
    }

    /// One asset's change events, oldest first.
    pub fn history(&self, tenant: &TenantId, key: &AssetKey) -> Result<Vec<Change>> {
        let asset = self.asset(tenant, key)?;
        let mut out = Vec::with_capacity(asset.changes.len());
        let mut block: Vec<Change> = Vec::new();
        for seq in asset.changes {
            if !block.iter().any(|c| c.seq == seq) {
                block = self.change_block(tenant, seq)?;
            }
            if let Some(c) = block.iter().find(|c| c.seq == seq) {
                out.push(c.clone());
            }
        }
        Ok(out)
    }

    /// The stored block holding change `seq`.
    fn change_block(&self, tenant: &TenantId, seq: u64) -> Result<Vec<Change>> {
        let prefix = keys::prefix(Rec::Changes, tenant);
        let upto = change_block_key(tenant, seq);
        match self.data.range(prefix.clone()..=upto).next_back() {
            Some(item) => {
                let (_, v) = item?;
                Ok(serde_json::from_slice(&v)?)
            }
            None => Ok(Vec::new()),
        }
    }

    /// Change events after `cursor` (a change number; none: from the start), in order.
    pub fn changes_since(
        &self,
        tenant: &TenantId,
        cursor: Option<u64>,
        limit: usize,
    ) -> Result<Page<Change>> {
        let limit = limit.clamp(1, MAX_PAGE);
        let from = cursor.map_or(0, |c| c.saturating_add(1));
        let prefix = keys::prefix(Rec::Changes, tenant);
        let first_block = {
            let upto = change_block_key(tenant, from);
            match self.data.range(prefix.clone()..=upto).next_back() {
                Some(item) => item?.0.to_vec(),
                None => prefix.clone(),
            }
        };
        let mut items = Vec::new();
        'blocks: for item in self.data.range(first_block..keys::prefix_end(&prefix)) {
            let (_, v) = item?;
            let block: Vec<Change> = serde_json::from_slice(&v)?;
            for c in block {
                if c.seq < from {
                    continue;
                }
                if items.len() == limit {
                    break 'blocks;
                }
                items.push(c);
            }
        }
        let total = self.change_count(tenant)?;
        let next = match items.last() {
            Some(last) if last.seq + 1 < total => Some(last.seq.to_string()),
            _ => None,
        };
        Ok(Page { items, next })
    }

    /// How many change events the tenant has (the next change's number).
    pub fn change_count(&self, tenant: &TenantId) -> Result<u64> {
        self.counter(tenant, "changes")
    }

    pub(crate) fn counter(&self, tenant: &TenantId, name: &str) -> Result<u64> {
        Ok(match self.data.get(counter_key(tenant, name))? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("counter".into()))?,
            ),
            None => 0,
        })
    }

    /// Hosts and services exposed now.
    pub fn exposed_now(&self, tenant: &TenantId) -> Result<(u64, u64)> {
        Ok((
            self.counter(tenant, "hosts")?,
            self.counter(tenant, "services")?,
        ))
    }

    /// Exposed hosts and services per day, oldest first: the shrinkage curve.
    pub fn daily_counts(&self, tenant: &TenantId) -> Result<Vec<DayCount>> {
        let mut out = Vec::new();
        for item in self.data.scan_prefix(keys::prefix(Rec::Day, tenant)) {
            let (_, v) = item?;
            out.push(serde_json::from_slice(&v)?);
        }
        Ok(out)
    }
}

/// Kinds in listing (key) order.
pub(crate) const KIND_ORDER: [AssetKind; 4] = [
    AssetKind::Certificate,
    AssetKind::Domain,
    AssetKind::Host,
    AssetKind::Service,
];

/// The index term that narrows a listing most, if the filter names one.
fn index_term(tenant: &TenantId, f: &AssetFilter) -> Option<Vec<u8>> {
    if let Some(s @ (AssetStatus::Absent | AssetStatus::Unknown)) = f.status {
        return Some(postings::term_prefix(tenant, "status", s.as_str()));
    }
    for (field, value) in [
        ("product", &f.product),
        ("service", &f.service),
        ("risk", &f.risk),
    ] {
        if let Some(v) = value {
            return Some(postings::term_prefix(tenant, field, v));
        }
    }
    f.port
        .map(|port| postings::term_prefix(tenant, "port", &port.to_string()))
}

/// An asset listing's cursor: the key of the last asset of the previous page.
fn parse_cursor(c: &str) -> Result<AssetKey> {
    c.parse::<AssetKey>().map_err(|_| {
        StoreError::Invalid(format!(
            "cursor {c:?} is not one this listing gave: start without a cursor"
        ))
    })
}

pub(crate) struct DomainScope {
    apex: String,
    addresses: BTreeSet<IpAddr>,
}

fn under(name: &str, apex: &str) -> bool {
    name == apex
        || name
            .strip_suffix(apex)
            .is_some_and(|head| head.ends_with('.'))
}

pub(crate) fn matches(a: &Asset, f: &AssetFilter, domain: Option<&DomainScope>) -> bool {
    let lower_eq = |field: &str, want: &Option<String>| match want {
        Some(w) => a
            .facts
            .get(field)
            .is_some_and(|v| v.eq_ignore_ascii_case(w)),
        None => true,
    };
    let in_range = |t: Millis, lo: Option<Millis>, hi: Option<Millis>| {
        lo.is_none_or(|lo| t >= lo) && hi.is_none_or(|hi| t <= hi)
    };
    f.kind.is_none_or(|k| a.kind == k)
        && f.net
            .is_none_or(|net| a.key.address().is_some_and(|ip| net.contains(&ip)))
        && f.port.is_none_or(|p| a.key.port() == Some(p))
        && f.protocol.is_none_or(|p| a.key.proto() == Some(p))
        && lower_eq("service", &f.service)
        && lower_eq("product", &f.product)
        && lower_eq("risk", &f.risk)
        && f.status.is_none_or(|s| a.status == s)
        && in_range(a.first_seen, f.first_seen_from, f.first_seen_to)
        && in_range(a.last_seen, f.last_seen_from, f.last_seen_to)
        && domain.is_none_or(|d| match &a.key {
            AssetKey::Domain(name) => under(name, &d.apex),
            other => other.address().is_some_and(|ip| d.addresses.contains(&ip)),
        })
}
