//! Which hosts answered a running scan, and from which vantage.
//!
//! A port that a scan covered and no longer saw open is gone only when the scan has
//! positive evidence from its host: the port answered closed, or the host answered on
//! other ports. Silence proves nothing — a client's firewall that drops the provider's
//! scanner looks exactly like a shut service from the scanner's side. So each batch
//! notes the hosts that sent it anything (an open port, or the first closed reply the
//! engine reports per host), with the vantage (worker) that heard them, and a completing
//! scan's sweep calls a silent port gone only on a host every vantage of the scan heard;
//! elsewhere its services become `unknown`, not gone.
//!
//! Keys: `H<tenant>\0<scan>\0<ip: 16 bytes>` → the vantages that heard the host, as a
//! JSON list of worker names (`""`: the service's own engine). Deleted when the scan's
//! sweep is over.

use crate::error::Result;
use crate::ingest::receipt_key;
use crate::keys::{self, ip_bytes, Rec, TenantId};
use crate::model::{Receipt, Vantage};
use crate::store::Tx;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The vantage name of the service's own (in-process) engine.
pub(crate) const IN_PROCESS: &str = "";

pub(crate) fn vantage_name(v: Option<&Vantage>) -> String {
    v.map_or_else(|| IN_PROCESS.to_owned(), |v| v.worker.clone())
}

fn prefix(tenant: &TenantId, scan: &str) -> Vec<u8> {
    let mut rest = scan.as_bytes().to_vec();
    rest.push(0);
    keys::key(Rec::Heard, tenant, &rest)
}

fn key(tenant: &TenantId, scan: &str, ip: IpAddr) -> Vec<u8> {
    let mut k = prefix(tenant, scan);
    k.extend_from_slice(&ip_bytes(ip));
    k
}

/// Notes that `vantage` heard each of `hosts` during `scan`.
pub(crate) fn note(
    tx: &mut Tx<'_>,
    tenant: &TenantId,
    scan: &str,
    hosts: &BTreeSet<IpAddr>,
    vantage: &str,
) -> Result<()> {
    for &ip in hosts {
        let k = key(tenant, scan, ip);
        let mut heard: Vec<String> = tx.get_json(&k)?.unwrap_or_default();
        if heard.iter().any(|v| v == vantage) {
            continue;
        }
        heard.push(vantage.to_owned());
        tx.put_json(k, &heard)?;
    }
    Ok(())
}

/// The vantages that heard `ip` during `scan`.
pub(crate) fn heard_by(
    tx: &Tx<'_>,
    tenant: &TenantId,
    scan: &str,
    ip: IpAddr,
) -> Result<BTreeSet<String>> {
    let heard: Vec<String> = tx.get_json(&key(tenant, scan, ip))?.unwrap_or_default();
    Ok(heard.into_iter().collect())
}

/// The vantages whose shards make up `scan` (from the receipts of its `shards`).
pub(crate) fn scan_vantages(
    tx: &Tx<'_>,
    tenant: &TenantId,
    scan: &str,
    shards: u32,
) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for shard in 0..shards {
        if let Some(r) = tx.get_json::<Receipt>(&receipt_key(tenant, scan, shard))? {
            out.insert(vantage_name(r.vantage.as_ref()));
        }
    }
    Ok(out)
}

/// Whether `heard` is evidence enough: every vantage of the scan heard the host. A
/// host heard by one worker but not another (whose probes the client's firewall may
/// drop) proves nothing about the ports only the other one probed.
pub(crate) fn conclusive(heard: &BTreeSet<String>, vantages: &BTreeSet<String>) -> bool {
    !heard.is_empty() && vantages.iter().all(|v| heard.contains(v))
}

/// Drops the scan's notes once its sweep is over.
pub(crate) fn forget(tx: &mut Tx<'_>, tenant: &TenantId, scan: &str) -> Result<()> {
    for (k, _) in tx.scan_prefix(&prefix(tenant, scan))? {
        tx.delete(k);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_host_must_be_heard_by_every_vantage_of_the_scan() {
        assert!(conclusive(&set(&[""]), &set(&[""])));
        assert!(
            !conclusive(&set(&[]), &set(&[""])),
            "silence is not closure"
        );
        assert!(conclusive(&set(&["w1", "w2"]), &set(&["w1", "w2"])));
        assert!(
            !conclusive(&set(&["w1"]), &set(&["w1", "w2"])),
            "w2 may be blocked"
        );
    }
}
