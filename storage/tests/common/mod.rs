//! Builders shared by the store's tests: observations as the mapper makes them, and
//! certificates made by rcgen and summarised by our own parser.
#![allow(dead_code)]

use aperture_fingerprints::cert::{summarize, CertSummary};
use aperture_fingerprints::dns::observation::{
    AxfrAttempt, NameObservation, NameStatus, Source, ZoneObservation,
};
use aperture_fingerprints::identify::RiskClass;
use aperture_fingerprints::report::{ServiceReport, TlsReport};
use aperture_fingerprints::session::Banner;
use aperture_fingerprints::{PortObservation, PortState, Probe, Proto, Reason};
use aperture_storage::*;
use std::time::{Duration, UNIX_EPOCH};

/// 2026-11-18T11:06:40Z.
pub const T0: Millis = 1_795_000_000_000;
pub const HOUR: Millis = 3_600_000;
pub const DAY: Millis = 86_400_000;

pub fn fresh() -> (tempfile::TempDir, Store, TenantId) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("opens");
    let t = TenantId::new("acme").expect("id");
    store.create_tenant(&t, "Acme", T0).expect("creates");
    (dir, store, t)
}

pub fn begin(store: &Store, t: &TenantId, id: &str, nets: &[&str], ports: &[u16], shards: u32) {
    let coverage = Coverage {
        targets: nets.iter().map(|n| n.parse().expect("net")).collect(),
        ports: ports.iter().map(|p| (*p, *p)).collect(),
        probes: ["syn", "grab"].iter().map(|s| s.to_string()).collect(),
        domains: vec![],
        udp_ports: Vec::new(),
    };
    store
        .begin_scan(t, id, coverage, shards, None, T0)
        .expect("begins");
}

pub fn begin_dns(store: &Store, t: &TenantId, id: &str, zone: &str) {
    let coverage = Coverage {
        probes: ["dns".to_string()].into(),
        domains: vec![zone.to_string()],
        ..Default::default()
    };
    store
        .begin_scan(t, id, coverage, 1, None, T0)
        .expect("begins");
}

/// One complete single-shard scan of 198.18.0.0/15, every port.
pub fn scan_once(store: &Store, t: &TenantId, id: &str, at: Millis, obs: Vec<Observation>) {
    let coverage = Coverage {
        targets: vec!["198.18.0.0/15".parse().expect("net")],
        ports: vec![(1, 65535)],
        probes: ["syn", "grab"].iter().map(|s| s.to_string()).collect(),
        domains: vec![],
        udp_ports: Vec::new(),
    };
    store
        .begin_scan(t, id, coverage, 1, None, at)
        .expect("begins");
    let applied = store.apply(t, &batch(id, 0, at, obs)).expect("applies");
    assert!(applied.completed_scan);
}

pub fn batch(scan: &str, shard: u32, at: Millis, observations: Vec<Observation>) -> Batch {
    Batch {
        range: None,
        scan: scan.into(),
        shard,
        at,
        observations,
    }
}

pub fn port(ip: &str, port: u16, service: Option<ServiceReport>) -> Observation {
    Observation::Port(PortObservation {
        ip: ip.parse().expect("ip"),
        port,
        proto: Proto::Tcp,
        state: PortState::Open,
        reason: Reason::SynAck,
        ttl: Some(64),
        timestamp: UNIX_EPOCH + Duration::from_millis(T0 as u64),
        scan_id: "s".into(),
        probe: Probe::Syn,
        service,
    })
}

/// The closed reply (RST) the engine reports once per host: the evidence that lets a
/// completing scan call the host's silent ports gone.
pub fn closed(ip: &str, port: u16) -> Observation {
    Observation::Port(PortObservation {
        ip: ip.parse().expect("ip"),
        port,
        proto: Proto::Tcp,
        state: PortState::Closed,
        reason: Reason::Rst,
        ttl: Some(64),
        timestamp: UNIX_EPOCH + Duration::from_millis(T0 as u64),
        scan_id: "s".into(),
        probe: Probe::Syn,
        service: None,
    })
}

pub fn ssh(product: &str, version: &str) -> ServiceReport {
    ServiceReport {
        service: Some("ssh".into()),
        product: Some(product.into()),
        version: Some(version.into()),
        risk: Some(RiskClass::RemoteAdministration),
        banner: Some(Banner {
            protocol: "ssh".into(),
            text: format!("SSH-2.0-{product}_{version}"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn redis() -> ServiceReport {
    ServiceReport {
        service: Some("redis".into()),
        product: Some("Redis".into()),
        version: Some("7.0.15".into()),
        risk: Some(RiskClass::Cache),
        ..Default::default()
    }
}

pub fn web(product: &str) -> ServiceReport {
    ServiceReport {
        service: Some("http".into()),
        product: Some(product.into()),
        risk: Some(RiskClass::Web),
        ..Default::default()
    }
}

pub fn https(cert: &CertSummary) -> ServiceReport {
    ServiceReport {
        service: Some("https".into()),
        product: Some("nginx".into()),
        risk: Some(RiskClass::Web),
        tls: Some(TlsReport {
            version: Some("TLSv1.3".into()),
            ..Default::default()
        }),
        certificate: vec![cert.clone()],
        ..Default::default()
    }
}

/// A fresh self-signed certificate for `cn` (a new key each time, so a new SHA-256);
/// `expired` puts its end in 2025.
pub fn certificate(cn: &str, expired: bool) -> CertSummary {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = if expired {
        rcgen::date_time_ymd(2025, 1, 1)
    } else {
        rcgen::date_time_ymd(2030, 1, 1)
    };
    let der = params.self_signed(&key).expect("cert").der().to_vec();
    summarize(&der, 0, T0 / 1000, Some(cn), 30).expect("summarises")
}

pub fn service(ip: &str, port: u16) -> AssetKey {
    AssetKey::tcp(ip.parse().expect("ip"), port)
}

pub fn host(ip: &str) -> AssetKey {
    AssetKey::Host(ip.parse().expect("ip"))
}

pub fn domain(name: &str) -> AssetKey {
    AssetKey::domain(name).expect("name")
}

pub enum Status {
    Resolved,
    NxDomain,
    Unknown,
}

pub fn name(n: &str, address: Option<&str>, status: Status) -> Observation {
    let addresses: Vec<std::net::IpAddr> = address.iter().map(|a| a.parse().expect("ip")).collect();
    let mut records = std::collections::BTreeMap::new();
    if let Some(a) = address {
        records.insert("A".to_string(), vec![a.to_string()]);
    }
    Observation::Name(NameObservation {
        kind: "name".into(),
        name: n.into(),
        unicode: n.into(),
        zone: Some("example.test".into()),
        related: false,
        status: match status {
            Status::Resolved => NameStatus::Resolved,
            Status::NxDomain => NameStatus::NxDomain,
            Status::Unknown => NameStatus::Unknown("SERVFAIL".into()),
        },
        records,
        addresses,
        cname_chain: vec![],
        found_by: [Source::Wordlist].into(),
        findings: vec![],
    })
}

pub fn zone(apex: &str, axfr_open: bool) -> Observation {
    Observation::Zone(ZoneObservation {
        kind: "zone".into(),
        zone: apex.into(),
        unicode: apex.into(),
        records: [("NS".to_string(), vec![format!("ns1.{apex}.")])].into(),
        spf: None,
        dmarc: None,
        axfr: vec![AxfrAttempt {
            server: "198.18.0.53".into(),
            result: if axfr_open { "allowed" } else { "refused" }.into(),
            detail: None,
            records: if axfr_open { 5 } else { 0 },
        }],
        wildcards: Default::default(),
        findings: vec![],
        names_found: 3,
        wildcard_filtered: 0,
        unknown: 0,
    })
}
