//! Reading a tenant's assets, their history, the change feed and the daily counts.
//!
//! Every query takes the tenant and reads only keys under that tenant's prefix.

use crate::error::{Result, StoreError};
use crate::ingest::{change_block_key, counter_key, index_prefix, link_prefix};
use crate::keys::{self, ip_bytes, AssetKey, AssetKind, Rec, TenantId};
use crate::model::{Asset, AssetStatus, Change, DayCount, Millis, Page};
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

/// How a listing walks the keys: an index prefix or a key range of the asset records.
enum Walk {
    Index(Vec<u8>),
    Range(Vec<u8>, Vec<u8>),
}

impl Store {
    pub fn asset(&self, tenant: &TenantId, key: &AssetKey) -> Result<Asset> {
        self.get_asset(&keys::asset(tenant, key))?
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

    /// One page of a tenant's assets in key order (kind, then address and port, or name).
    /// `cursor` is the `next` of the previous page.
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
        let after: Option<Vec<u8>> = cursor.map(parse_cursor).transpose()?.map(|k| k.to_bytes());
        let domain_scope = match &filter.domain {
            Some(d) => Some(self.domain_scope(tenant, d)?),
            None => None,
        };
        let asset_prefix = keys::prefix(Rec::Asset, tenant);
        let walk = self.plan(tenant, filter, &asset_prefix);
        let mut items = Vec::new();
        let mut last: Option<AssetKey> = None;
        let (lo, hi, from_index) = match &walk {
            Walk::Index(prefix) => (prefix.clone(), keys::prefix_end(prefix), Some(prefix.len())),
            Walk::Range(lo, hi) => (lo.clone(), hi.clone(), None),
        };
        let start = match (&after, from_index) {
            (Some(a), Some(_)) => {
                let mut s = lo.clone();
                s.extend_from_slice(a);
                s.push(0);
                s
            }
            (Some(a), None) => {
                let mut s = asset_prefix.clone();
                s.extend_from_slice(a);
                s.push(0);
                s.max(lo.clone())
            }
            (None, _) => lo.clone(),
        };
        if start >= hi {
            return Ok(Page { items, next: None });
        }
        let mut more = false;
        for item in self.data.range(start..hi) {
            let (k, v) = item?;
            let asset: Asset = match from_index {
                Some(plen) => {
                    let key = AssetKey::from_bytes(k.get(plen..).unwrap_or_default())?;
                    match self.get_asset(&keys::asset(tenant, &key))? {
                        Some(a) => a,
                        None => continue,
                    }
                }
                None => Asset::decode(&v)?,
            };
            if !matches(&asset, filter, domain_scope.as_ref()) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            last = Some(asset.key.clone());
            items.push(asset);
        }
        Ok(Page {
            items,
            next: if more {
                last.map(|k| k.to_string())
            } else {
                None
            },
        })
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

    /// Picks the narrowest walk the filter allows.
    fn plan(&self, tenant: &TenantId, f: &AssetFilter, asset_prefix: &[u8]) -> Walk {
        if let Some(s @ (AssetStatus::Absent | AssetStatus::Unknown)) = f.status {
            return Walk::Index(index_prefix(tenant, "status", s.as_str()));
        }
        for (field, value) in [
            ("product", &f.product),
            ("service", &f.service),
            ("risk", &f.risk),
        ] {
            if let Some(v) = value {
                return Walk::Index(index_prefix(tenant, field, v));
            }
        }
        if let Some(port) = f.port {
            return Walk::Index(index_prefix(tenant, "port", &port.to_string()));
        }
        let range_of = |tag: u8, lo_rest: &[u8], hi_rest: &[u8]| {
            let mut lo = asset_prefix.to_vec();
            lo.push(tag);
            lo.extend_from_slice(lo_rest);
            let mut hi = asset_prefix.to_vec();
            hi.push(tag);
            hi.extend_from_slice(hi_rest);
            hi.extend_from_slice(&[0xff, 0xff, 0xff]);
            (lo, hi)
        };
        if let Some(net) = f.net {
            let lo = ip_bytes(net.network());
            let hi = ip_bytes(net.broadcast());
            return match f.kind {
                Some(AssetKind::Host) => {
                    let (l, h) = range_of(b'h', &lo, &hi);
                    Walk::Range(l, h)
                }
                Some(AssetKind::Service) => {
                    let (l, h) = range_of(b's', &lo, &hi);
                    Walk::Range(l, h)
                }
                // Other kinds have no address: nothing in a net.
                _ => Walk::Range(Vec::new(), Vec::new()),
            };
        }
        if let Some(kind) = f.kind {
            let tag = match kind {
                AssetKind::Host => b'h',
                AssetKind::Service => b's',
                AssetKind::Domain => b'd',
                AssetKind::Certificate => b'c',
            };
            let mut lo = asset_prefix.to_vec();
            lo.push(tag);
            return Walk::Range(lo.clone(), keys::prefix_end(&lo));
        }
        Walk::Range(asset_prefix.to_vec(), keys::prefix_end(asset_prefix))
    }

    /// Names at or under `domain` and the addresses they resolve to.
    fn domain_scope(&self, tenant: &TenantId, domain: &str) -> Result<DomainScope> {
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

/// An asset listing's cursor: the key of the last asset of the previous page.
fn parse_cursor(c: &str) -> Result<AssetKey> {
    c.parse::<AssetKey>().map_err(|_| {
        StoreError::Invalid(format!(
            "cursor {c:?} is not one this listing gave: start without a cursor"
        ))
    })
}

struct DomainScope {
    apex: String,
    addresses: BTreeSet<IpAddr>,
}

fn under(name: &str, apex: &str) -> bool {
    name == apex
        || name
            .strip_suffix(apex)
            .is_some_and(|head| head.ends_with('.'))
}

fn matches(a: &Asset, f: &AssetFilter, domain: Option<&DomainScope>) -> bool {
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
