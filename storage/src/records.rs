//! How assets sit on disk: one record per host holding the host and all its services,
//! one record per domain and per certificate.
//!
//! sled's cost is per key written (each write walks the tree and rewrites a leaf), so
//! the layout writes as few keys per observation as it can: a batch that sees eight
//! services of one host writes that host's record once. Inside a record the key and
//! kind of each asset are implied by where it sits, which keeps records small.
//!
//! Inside a host record each asset's facts stay encoded (postcard bytes) until someone
//! asks for the asset: a rescan that finds a service unchanged compares the encoded new
//! facts with the stored bytes and updates only the sighting (last seen, times seen,
//! last scan), so an unchanged rescan never decodes or re-encodes a fact.
//!
//! Keys: `A<tenant>\0H<16-byte address>` for a host record, `A<tenant>\0d<reversed
//! name>` for a domain and `A<tenant>\0c<sha256>` for a certificate. The host-record
//! tag `H` sorts before `c` and `d`; listings never rely on that, they walk each kind's
//! range on its own.

use crate::error::{Result, StoreError};
use crate::facts::Facts;
use crate::keys::{self, ip_bytes, AssetKey, Proto, Rec, TenantId};
use crate::model::{Asset, AssetStatus, Millis};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The tag of host records under the asset prefix.
pub(crate) const HOST_RECORD: u8 = b'H';

/// An asset's state without its key and kind, which its place in a record gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    status: AssetStatus,
    /// [`encode_facts`] of the facts (as bytes: one copy to decode, not a loop).
    #[serde(with = "serde_bytes")]
    facts: Vec<u8>,
    first_seen: Millis,
    last_seen: Millis,
    last_changed: Millis,
    times_seen: u64,
    last_scan: String,
    changes: Vec<u64>,
}

/// The stored form of facts; equal facts give equal bytes (the map is ordered).
pub(crate) fn encode_facts(facts: &Facts) -> Result<Vec<u8>> {
    // Sized up front: growing from empty was a tenth of ingest (reallocations).
    let size: usize = facts.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    postcard::to_extend(facts, Vec::with_capacity(size + 4))
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Stored {
    fn of(a: Asset) -> Result<Stored> {
        Ok(Stored {
            status: a.status,
            facts: encode_facts(&a.facts)?,
            first_seen: a.first_seen,
            last_seen: a.last_seen,
            last_changed: a.last_changed,
            times_seen: a.times_seen,
            last_scan: a.last_scan,
            changes: a.changes,
        })
    }

    fn asset(&self, key: AssetKey) -> Result<Asset> {
        let facts = postcard::from_bytes(&self.facts)
            .map_err(|e| StoreError::Corrupt(format!("facts of {key}: {e}")))?;
        Ok(Asset {
            kind: key.kind(),
            key,
            status: self.status,
            facts,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            last_changed: self.last_changed,
            times_seen: self.times_seen,
            last_scan: self.last_scan.clone(),
            changes: self.changes.clone(),
        })
    }
}

/// A host and its services: what one address exposes, in one value.
///
/// On disk: the postcard of (host, TCP services) exactly as records were before UDP,
/// followed — only when the host has any — by the postcard of its UDP services. A
/// record without UDP services is byte for byte what older versions wrote and read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostRecord {
    host: Option<Stored>,
    /// TCP services, sorted by port.
    services: Vec<(u16, Stored)>,
    /// UDP services, sorted by port.
    udp: Vec<(u16, Stored)>,
}

/// The part of a host record older versions wrote (and still the head of every record).
#[derive(Serialize, Deserialize)]
struct Head {
    host: Option<Stored>,
    services: Vec<(u16, Stored)>,
}

#[derive(Serialize)]
struct HeadRef<'a> {
    host: &'a Option<Stored>,
    services: &'a Vec<(u16, Stored)>,
}

impl HostRecord {
    pub fn decode(bytes: &[u8]) -> Result<HostRecord> {
        let corrupt = |e: postcard::Error| StoreError::Corrupt(format!("host record: {e}"));
        let (head, rest): (Head, &[u8]) = postcard::take_from_bytes(bytes).map_err(corrupt)?;
        let udp = if rest.is_empty() {
            Vec::new()
        } else {
            let (udp, tail): (Vec<(u16, Stored)>, &[u8]) =
                postcard::take_from_bytes(rest).map_err(corrupt)?;
            if !tail.is_empty() {
                return Err(StoreError::Corrupt(format!(
                    "host record: {} bytes after its UDP services",
                    tail.len()
                )));
            }
            udp
        };
        Ok(HostRecord {
            host: head.host,
            services: head.services,
            udp,
        })
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        let size: usize = self
            .host
            .iter()
            .chain(self.services.iter().chain(&self.udp).map(|(_, s)| s))
            .map(|s| s.facts.len() + s.last_scan.len() + 10 * s.changes.len() + 48)
            .sum();
        let head = HeadRef {
            host: &self.host,
            services: &self.services,
        };
        let out = postcard::to_extend(&head, Vec::with_capacity(size + 8))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if self.udp.is_empty() {
            return Ok(out);
        }
        postcard::to_extend(&self.udp, out).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    fn list(&self, proto: Proto) -> &Vec<(u16, Stored)> {
        match proto {
            Proto::Tcp => &self.services,
            Proto::Udp => &self.udp,
        }
    }

    fn list_mut(&mut self, proto: Proto) -> &mut Vec<(u16, Stored)> {
        match proto {
            Proto::Tcp => &mut self.services,
            Proto::Udp => &mut self.udp,
        }
    }

    /// The host or one of its services; `None` for keys of other kinds.
    pub fn get(&self, key: &AssetKey) -> Result<Option<Asset>> {
        match key {
            AssetKey::Host(_) => self.host.as_ref().map(|s| s.asset(key.clone())).transpose(),
            AssetKey::Service(_, port, proto) => {
                let list = self.list(*proto);
                list.binary_search_by_key(port, |(p, _)| *p)
                    .ok()
                    .and_then(|i| list.get(i))
                    .map(|(_, s)| s.asset(key.clone()))
                    .transpose()
            }
            _ => Ok(None),
        }
    }

    /// Records that a present service was seen again with the same facts (`facts`:
    /// their [`encode_facts`], or `None` when the observation brought no facts), as
    /// `Ingest::see` would, without decoding anything. Returns false when that is not
    /// the case (absent, unknown, new, or facts differ): the caller takes the slow way.
    pub fn seen_unchanged(
        &mut self,
        port: u16,
        proto: Proto,
        facts: Option<&[u8]>,
        scan: &str,
        at: Millis,
    ) -> bool {
        let list = self.list_mut(proto);
        let Ok(i) = list.binary_search_by_key(&port, |(p, _)| *p) else {
            return false;
        };
        let Some((_, s)) = list.get_mut(i) else {
            return false;
        };
        if s.status != AssetStatus::Present || facts.is_some_and(|f| f != s.facts.as_slice()) {
            return false;
        }
        if s.last_scan != scan {
            s.times_seen += 1;
            s.last_scan = scan.to_owned();
        }
        s.last_seen = s.last_seen.max(at);
        true
    }

    /// Puts the host or one of its services (other kinds are ignored).
    pub fn set(&mut self, asset: Asset) -> Result<()> {
        match asset.key {
            AssetKey::Host(_) => self.host = Some(Stored::of(asset)?),
            AssetKey::Service(_, port, proto) => {
                let stored = Stored::of(asset)?;
                let list = self.list_mut(proto);
                match list.binary_search_by_key(&port, |(p, _)| *p) {
                    Ok(i) => {
                        if let Some(slot) = list.get_mut(i) {
                            slot.1 = stored;
                        }
                    }
                    Err(i) => list.insert(i, (port, stored)),
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub fn host(&self, ip: IpAddr) -> Result<Option<Asset>> {
        self.host
            .as_ref()
            .map(|s| s.asset(AssetKey::Host(ip)))
            .transpose()
    }

    /// The services in key order: by port, TCP before UDP on the same port.
    pub fn services(&self, ip: IpAddr) -> impl Iterator<Item = Result<Asset>> + '_ {
        self.entries()
            .map(move |(port, proto, s)| s.asset(AssetKey::Service(ip, port, proto)))
    }

    fn entries(&self) -> impl Iterator<Item = (u16, Proto, &Stored)> + '_ {
        let mut tcp = self.services.iter().peekable();
        let mut udp = self.udp.iter().peekable();
        std::iter::from_fn(move || {
            let take_tcp = match (tcp.peek(), udp.peek()) {
                (Some((pt, _)), Some((pu, _))) => pt <= pu,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return None,
            };
            if take_tcp {
                tcp.next().map(|(p, s)| (*p, Proto::Tcp, s))
            } else {
                udp.next().map(|(p, s)| (*p, Proto::Udp, s))
            }
        })
    }

    /// Ports and transports of services, with the status of each and the scan that
    /// last saw it: what a completing scan needs, without cloning facts.
    pub fn service_states(&self) -> impl Iterator<Item = (u16, Proto, AssetStatus, &str)> + '_ {
        self.entries()
            .map(|(p, proto, s)| (p, proto, s.status, s.last_scan.as_str()))
    }
}

pub(crate) fn host_record_key(tenant: &TenantId, ip: IpAddr) -> Vec<u8> {
    let mut rest = Vec::with_capacity(17);
    rest.push(HOST_RECORD);
    rest.extend_from_slice(&ip_bytes(ip));
    keys::key(Rec::Asset, tenant, &rest)
}

/// The address of a host record's key (the key with its tenant prefix removed).
pub(crate) fn host_record_ip(rest: &[u8]) -> Result<IpAddr> {
    match rest.split_first() {
        Some((&HOST_RECORD, ip)) => keys::ip_from(ip)
            .ok_or_else(|| StoreError::Corrupt(format!("host record key {rest:02x?}"))),
        _ => Err(StoreError::Corrupt(format!("host record key {rest:02x?}"))),
    }
}

/// The key range of host records whose address is in `[lo, hi]`.
pub(crate) fn host_record_range(tenant: &TenantId, lo: IpAddr, hi: IpAddr) -> (Vec<u8>, Vec<u8>) {
    let mut end = host_record_key(tenant, hi);
    end.push(0);
    (host_record_key(tenant, lo), end)
}

/// Every host record of a tenant.
pub(crate) fn host_record_prefix(tenant: &TenantId) -> Vec<u8> {
    keys::key(Rec::Asset, tenant, &[HOST_RECORD])
}

/// The stored key of an asset that has a record of its own (domains, certificates).
pub(crate) fn own_record_key(tenant: &TenantId, key: &AssetKey) -> Vec<u8> {
    keys::asset(tenant, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(key: AssetKey, version: &str) -> Asset {
        Asset {
            kind: key.kind(),
            key,
            status: AssetStatus::Present,
            facts: [("version".to_owned(), version.to_owned())].into(),
            first_seen: 1,
            last_seen: 2,
            last_changed: 1,
            times_seen: 1,
            last_scan: "s1".into(),
            changes: vec![0, 7],
        }
    }

    #[test]
    fn a_host_record_holds_the_host_and_its_services_in_port_order() {
        let ip: IpAddr = "198.18.0.7".parse().expect("ip");
        let mut r = HostRecord::default();
        for port in [443, 22, 8080, 22] {
            r.set(asset(AssetKey::tcp(ip, port), &port.to_string()))
                .expect("sets");
        }
        r.set(asset(AssetKey::Host(ip), "-")).expect("sets");
        let mut back = HostRecord::decode(&r.encode().expect("encodes")).expect("decodes");
        assert_eq!(back, r);
        let ports: Vec<u16> = back
            .services(ip)
            .filter_map(|a| a.ok().and_then(|a| a.key.port()))
            .collect();
        assert_eq!(ports, vec![22, 443, 8080]);
        let key = AssetKey::tcp(ip, 443);
        let s = back.get(&key).expect("decodes").expect("service");
        assert_eq!(s, asset(key.clone(), "443"));
        assert!(back
            .get(&AssetKey::tcp(ip, 444))
            .expect("decodes")
            .is_none());
        assert_eq!(
            back.host(ip).expect("decodes"),
            back.get(&AssetKey::Host(ip)).expect("decodes")
        );
        assert!(HostRecord::decode(b"\xff\xff\xff").is_err());
        // A sighting with the same facts touches only the sighting fields.
        let same = encode_facts(&s.facts).expect("encodes");
        assert!(back.seen_unchanged(443, Proto::Tcp, Some(&same), "s2", 9));
        assert!(back.seen_unchanged(443, Proto::Tcp, None, "s2", 8));
        assert!(!back.seen_unchanged(443, Proto::Udp, None, "s2", 8));
        let again = back.get(&key).expect("decodes").expect("service");
        assert_eq!(
            (again.times_seen, again.last_seen, again.last_scan.as_str()),
            (2, 9, "s2")
        );
        assert_eq!(again.facts, s.facts);
        let other = encode_facts(&Facts::new()).expect("encodes");
        assert!(!back.seen_unchanged(443, Proto::Tcp, Some(&other), "s3", 10));
        assert!(!back.seen_unchanged(444, Proto::Tcp, None, "s3", 10));
    }

    #[test]
    fn udp_services_ride_after_the_old_layout() {
        let ip: IpAddr = "198.18.0.7".parse().expect("ip");
        let mut r = HostRecord::default();
        r.set(asset(AssetKey::Host(ip), "-")).expect("sets");
        r.set(asset(AssetKey::tcp(ip, 53), "t")).expect("sets");
        let tcp_only = r.encode().expect("encodes");
        // What a record was before UDP: (host, services) and nothing after.
        let old = postcard::to_allocvec(&Head {
            host: r.host.clone(),
            services: r.services.clone(),
        })
        .expect("encodes");
        assert_eq!(tcp_only, old);
        r.set(asset(AssetKey::udp(ip, 53), "u")).expect("sets");
        r.set(asset(AssetKey::udp(ip, 161), "s")).expect("sets");
        let back = HostRecord::decode(&r.encode().expect("encodes")).expect("decodes");
        assert_eq!(back, r);
        let keys: Vec<String> = back
            .services(ip)
            .map(|a| a.expect("decodes").key.to_string())
            .collect();
        assert_eq!(
            keys,
            [
                "service:198.18.0.7:53/tcp",
                "service:198.18.0.7:53/udp",
                "service:198.18.0.7:161/udp"
            ]
        );
        let tcp = back.get(&AssetKey::tcp(ip, 53)).expect("ok").expect("tcp");
        let udp = back.get(&AssetKey::udp(ip, 53)).expect("ok").expect("udp");
        assert_eq!(
            (tcp.fact("version"), udp.fact("version")),
            (Some("t"), Some("u"))
        );
        let mut garbage = r.encode().expect("encodes");
        garbage.push(0xff);
        assert!(HostRecord::decode(&garbage).is_err());
    }

    #[test]
    fn host_record_keys_give_back_their_address() {
        let t = TenantId::new("acme").expect("id");
        let ip: IpAddr = "2001:2::9".parse().expect("ip");
        let k = host_record_key(&t, ip);
        let plen = keys::prefix(Rec::Asset, &t).len();
        assert_eq!(
            host_record_ip(k.get(plen..).unwrap_or_default()).expect("ip"),
            ip
        );
        assert!(host_record_ip(b"d\x01").is_err());
        assert!(k.starts_with(&host_record_prefix(&t)));
    }
}
