//! Domain enumeration: from seed zones to names, records and addresses, and the DNS
//! findings exposure reviews want (open zone transfers, dangling CNAMEs, wildcards).
//!
//! Sources of names, each recorded in `found_by`: the seed itself, the wordlist
//! (streamed), AXFR against every authoritative name server, certificate names from a
//! grab, CNAME targets, MX/NS/SRV targets, and PTR of addresses in scope. Names outside
//! every seed zone are kept as `related` and never scanned. Wordlist answers that only
//! echo a wildcard are filtered out.

pub mod answer;
pub mod axfr;
mod levels;
pub mod querier;
pub mod wordlist;

use aperture_fingerprints::dns::observation::{
    AxfrAttempt, DnsFinding, NameObservation, NameStatus, Source, ZoneObservation,
};
use aperture_fingerprints::dns::{join_txt_strings, parse_dmarc, parse_spf, DomainName};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use querier::{Querier, Reply};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Service names whose SRV records are looked up under every seed zone.
pub const SRV_SERVICES: &[&str] = &[
    "_sip._tcp",
    "_sip._udp",
    "_sips._tcp",
    "_xmpp-server._tcp",
    "_xmpp-client._tcp",
    "_ldap._tcp",
    "_kerberos._tcp",
    "_kerberos._udp",
    "_kpasswd._tcp",
    "_autodiscover._tcp",
    "_caldav._tcp",
    "_caldavs._tcp",
    "_carddav._tcp",
    "_carddavs._tcp",
    "_imap._tcp",
    "_imaps._tcp",
    "_pop3s._tcp",
    "_submission._tcp",
    "_gc._tcp",
    "_vlmcs._tcp",
    "_matrix._tcp",
    "_minecraft._tcp",
];

#[derive(Debug, Clone)]
pub enum Wordlist {
    Builtin,
    File(std::path::PathBuf),
    None,
}

#[derive(Debug, Clone)]
pub struct DomainOptions {
    pub resolvers: Vec<SocketAddr>,
    pub timeout: Duration,
    pub attempts: usize,
    pub concurrency: usize,
    pub qps: u64,
    pub wordlist: Wordlist,
    pub axfr: bool,
    /// Addresses whose PTR names are looked up (the scope's addresses).
    pub ptr_addresses: Vec<IpAddr>,
    /// Names seen in certificates (SANs, CNs) by a grab.
    pub certificate_names: Vec<String>,
    pub wildcard_probes: usize,
    /// At most this many levels (apexes included) are probed for wildcards.
    pub wildcard_levels: usize,
    /// Below-apex levels the wordlist's first labels are guessed under, and how many.
    pub sublevel_max: usize,
    pub sublevel_labels: usize,
    /// CNAME chains longer than this are reported, not followed.
    pub max_chain: usize,
    /// A port scan's coverage and open addresses: a name pointing at a covered address
    /// with no open port is a dangling record.
    pub scan: Option<ScanEvidence>,
}

/// What a port scan saw, for dangling-record checks.
#[derive(Debug, Clone, Default)]
pub struct ScanEvidence {
    /// Address ranges the scan covered (inclusive).
    pub covered: Vec<(IpAddr, IpAddr)>,
    /// Addresses with at least one open port.
    pub open: HashSet<IpAddr>,
}

impl ScanEvidence {
    fn covers(&self, a: IpAddr) -> bool {
        self.covered.iter().any(|&(lo, hi)| match (lo, hi, a) {
            (IpAddr::V4(l), IpAddr::V4(h), IpAddr::V4(x)) => l <= x && x <= h,
            (IpAddr::V6(l), IpAddr::V6(h), IpAddr::V6(x)) => l <= x && x <= h,
            _ => false,
        })
    }
}

impl Default for DomainOptions {
    fn default() -> Self {
        Self {
            resolvers: Vec::new(),
            timeout: Duration::from_millis(1500),
            attempts: 3,
            concurrency: 256,
            qps: 2000,
            wordlist: Wordlist::Builtin,
            axfr: true,
            ptr_addresses: Vec::new(),
            certificate_names: Vec::new(),
            wildcard_probes: 3,
            wildcard_levels: 64,
            sublevel_max: 16,
            sublevel_labels: 100,
            max_chain: 8,
            scan: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct Enumeration {
    pub zones: Vec<ZoneObservation>,
    pub names: Vec<NameObservation>,
    pub queries: u64,
    pub timeouts: u64,
}

fn hname(d: &DomainName) -> Option<Name> {
    Name::from_ascii(format!("{}.", d.ascii())).ok()
}

fn dname(n: &Name) -> Option<DomainName> {
    DomainName::parse(n.to_ascii().trim_end_matches('.')).ok()
}

/// Zone-file presentation without trailing dots on names; TXT strings joined.
fn present(data: &RData) -> String {
    match data {
        RData::TXT(txt) => {
            let parts: Vec<Vec<u8>> = txt.txt_data().iter().map(|p| p.to_vec()).collect();
            join_txt_strings(&parts)
        }
        RData::CNAME(n) => n.0.to_ascii().trim_end_matches('.').to_string(),
        RData::NS(n) => n.0.to_ascii().trim_end_matches('.').to_string(),
        RData::PTR(n) => n.0.to_ascii().trim_end_matches('.').to_string(),
        other => other.to_string(),
    }
}

/// Everything one name resolved to.
#[derive(Debug, Clone, Default)]
struct Resolution {
    status: Option<NameStatus>,
    records: BTreeMap<String, Vec<String>>,
    addresses: Vec<IpAddr>,
    chain: Vec<String>,
    findings: Vec<DnsFinding>,
    /// The zone cut a referral put the name at or below.
    delegated: Option<String>,
}

impl Resolution {
    fn answer_set(&self) -> BTreeSet<String> {
        let mut s: BTreeSet<String> = self.addresses.iter().map(|a| a.to_string()).collect();
        s.extend(self.chain.iter().cloned());
        s
    }
}

struct Run {
    q: Arc<Querier>,
    opts: DomainOptions,
    seeds: Vec<DomainName>,
    names: Mutex<BTreeMap<String, NameObservation>>,
    levels: levels::Levels,
}

impl Run {
    fn zone_of(&self, d: &DomainName) -> Option<DomainName> {
        d.zone_apex_of(&self.seeds).cloned()
    }

    /// Follows `name` through CNAMEs to its addresses, reporting loops, over-long chains
    /// and CNAMEs whose target does not exist. Every answer is read for what it holds,
    /// whatever its response code: `unknown` only when no server said anything usable.
    async fn resolve(&self, name: &DomainName) -> Resolution {
        let mut res = Resolution::default();
        let Some(start) = hname(name) else {
            res.status = Some(NameStatus::Unknown("not a valid DNS name".into()));
            return res;
        };
        let mut current = start.clone();
        let mut seen: HashSet<Name> = HashSet::from([start.clone()]);
        let mut reading;
        loop {
            let msg = match self.q.ask(&current, RecordType::A).await {
                Reply::Answer(m) => m,
                Reply::Unknown(why) if res.chain.is_empty() => {
                    res.status = Some(NameStatus::Unknown(why));
                    return res;
                }
                // The chain so far is what a server said: the name exists, and where it
                // leads could not be resolved here (often another server's zone, refused
                // by an authoritative-only server). The target is recorded on its own.
                Reply::Unknown(_) => {
                    res.records
                        .insert("CNAME".into(), vec![res.chain[0].clone()]);
                    res.status = Some(NameStatus::NoData);
                    return res;
                }
            };
            reading = answer::read(&msg, &current, RecordType::A);
            let mut looped = reading.looped;
            for target in &reading.chain {
                res.chain
                    .push(target.to_ascii().trim_end_matches('.').to_string());
                if !seen.insert(target.clone()) {
                    looped = true;
                    break;
                }
            }
            if looped {
                res.findings.push(DnsFinding::CnameLoop {
                    name: name.ascii().to_string(),
                    chain: res.chain.clone(),
                });
                res.status = Some(NameStatus::NoData);
                break;
            }
            if res.chain.len() > self.opts.max_chain {
                res.findings.push(DnsFinding::CnameTooLong {
                    name: name.ascii().to_string(),
                    chain: res.chain.clone(),
                });
                res.status = Some(NameStatus::NoData);
                break;
            }
            // The server stopped at a CNAME it could not or would not follow (or failed
            // on its target): ask on.
            let moved = reading.end != current;
            current = reading.end.clone();
            if moved
                && reading.data.is_empty()
                && reading.delegation.is_none()
                && reading.rcode != ResponseCode::NXDomain
            {
                continue;
            }
            break;
        }
        if !res.chain.is_empty() {
            res.records
                .insert("CNAME".into(), vec![res.chain[0].clone()]);
        }
        if res.status.is_some() {
            return res;
        }
        if reading.rcode == ResponseCode::NXDomain && reading.data.is_empty() {
            if let Some(target) = res.chain.last() {
                res.findings.push(DnsFinding::DanglingCname {
                    name: name.ascii().to_string(),
                    target: target.clone(),
                });
                res.status = Some(NameStatus::NoData);
            } else {
                res.status = Some(NameStatus::NxDomain);
            }
            return res;
        }
        let mut a_records = reading.data;
        let mut glue: Vec<IpAddr> = Vec::new();
        if let Some(d) = &reading.delegation {
            let zone = d.zone.to_ascii().trim_end_matches('.').to_string();
            res.delegated = Some(zone.clone());
            if d.zone == current && res.chain.is_empty() {
                res.records.insert(
                    "NS".into(),
                    d.ns.iter()
                        .map(|n| n.to_ascii().trim_end_matches('.').to_string())
                        .collect(),
                );
            } else if d.glue.is_empty() && res.chain.is_empty() {
                // Below a zone cut with no glue: only the child's servers know.
                res.status = Some(NameStatus::Unknown(format!("delegated to {zone}")));
                return res;
            }
            glue = d.glue.clone();
        } else if reading.upward || (reading.rcode != ResponseCode::NoError && a_records.is_empty())
        {
            if res.chain.is_empty() {
                let why = if reading.upward {
                    "referral to the root: the server does not serve this name".to_string()
                } else {
                    reading.rcode.to_string()
                };
                res.status = Some(NameStatus::Unknown(why));
            } else {
                res.status = Some(NameStatus::NoData);
            }
            return res;
        }
        // Glue is what the parent's server says the name server's address is.
        for g in &glue {
            if let IpAddr::V4(v4) = g {
                a_records.push(RData::A((*v4).into()));
            }
        }
        for d in &a_records {
            if let RData::A(a) = d {
                res.addresses.push(IpAddr::V4(a.0));
            }
        }
        if !a_records.is_empty() {
            res.records
                .insert("A".into(), a_records.iter().map(present).collect());
        }
        let mut aaaa: Vec<RData> = glue
            .iter()
            .filter_map(|g| match g {
                IpAddr::V6(v6) => Some(RData::AAAA((*v6).into())),
                IpAddr::V4(_) => None,
            })
            .collect();
        if res.delegated.is_none() {
            if let Reply::Answer(msg) = self.q.ask(&current, RecordType::AAAA).await {
                aaaa.extend(answer::read(&msg, &current, RecordType::AAAA).data);
            }
        }
        for d in &aaaa {
            if let RData::AAAA(a) = d {
                res.addresses.push(IpAddr::V6(a.0));
            }
        }
        if !aaaa.is_empty() {
            res.records
                .insert("AAAA".into(), aaaa.iter().map(present).collect());
        }
        res.status = Some(if res.addresses.is_empty() {
            NameStatus::NoData
        } else {
            NameStatus::Resolved
        });
        res
    }

    /// Adds or merges a name. Names outside every seed zone are kept as related.
    fn record(&self, name: &DomainName, source: Source, res: &Resolution) {
        let zone = self.zone_of(name);
        let Ok(mut names) = self.names.lock() else {
            return;
        };
        let entry = names
            .entry(name.ascii().to_string())
            .or_insert_with(|| NameObservation {
                kind: "name".into(),
                name: name.ascii().to_string(),
                unicode: name.unicode(),
                zone: zone.as_ref().map(|z| z.ascii().to_string()),
                related: zone.is_none(),
                status: res
                    .status
                    .clone()
                    .unwrap_or(NameStatus::Unknown("not resolved".into())),
                records: res.records.clone(),
                addresses: res.addresses.clone(),
                cname_chain: res.chain.clone(),
                found_by: BTreeSet::new(),
                findings: res.findings.clone(),
            });
        entry.found_by.insert(source);
        for (k, v) in &res.records {
            let slot = entry.records.entry(k.clone()).or_default();
            for x in v {
                if !slot.contains(x) {
                    slot.push(x.clone());
                }
            }
        }
    }

    fn known(&self, name: &DomainName) -> bool {
        self.names
            .lock()
            .map(|n| n.contains_key(name.ascii()))
            .unwrap_or(false)
    }

    /// Resolves and records a name found by `source`, then follows its CNAME chain.
    async fn discover(self: &Arc<Self>, name: DomainName, source: Source) {
        if self.known(&name) {
            self.record(&name, source, &Resolution::default());
            return;
        }
        let res = self.resolve(&name).await;
        if matches!(res.status, Some(NameStatus::NxDomain)) && source == Source::Wordlist {
            return;
        }
        self.record(&name, source, &res);
        self.follow_chain(&res).await;
    }

    /// CNAME targets are names too: record each one not seen yet.
    async fn follow_chain(&self, res: &Resolution) {
        for target in res.chain.iter().filter_map(|t| DomainName::parse(t).ok()) {
            if !self.known(&target) {
                let r = self.resolve(&target).await;
                self.record(&target, Source::Cname, &r);
            }
        }
    }

    async fn rrset(&self, name: &DomainName, rtype: RecordType) -> Vec<RData> {
        let Some(n) = hname(name) else {
            return Vec::new();
        };
        match self.q.ask(&n, rtype).await {
            Reply::Answer(m) => answer::read(&m, &n, rtype).data,
            Reply::Unknown(_) => Vec::new(),
        }
    }
}

/// The service's domain step, as the in-process pool and a remote worker both run it:
/// `domains` as a scan request names them (checked here, not trusted), through the given
/// resolvers at `qps`, everything else at its default. The caller picks the resolvers,
/// since only it knows the machine's configuration, and turns zones and names into
/// whatever it stores or sends.
pub async fn enumerate_domains(
    domains: &[String],
    resolvers: Vec<SocketAddr>,
    qps: u64,
) -> Result<Enumeration, crate::SpecError> {
    let seeds = domains
        .iter()
        .map(|d| {
            DomainName::parse(d)
                .map_err(|e| crate::SpecError::Invalid(format!("domain {d:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let opts = DomainOptions {
        resolvers,
        qps,
        ..DomainOptions::default()
    };
    enumerate(&seeds, opts).await
}

/// Enumerates every seed zone.
pub async fn enumerate(
    seeds: &[DomainName],
    opts: DomainOptions,
) -> Result<Enumeration, crate::SpecError> {
    let q = Querier::new(
        &opts.resolvers,
        opts.qps,
        opts.concurrency,
        opts.timeout,
        opts.attempts,
    )
    .await
    .map_err(|e| crate::SpecError::Invalid(format!("cannot set up DNS queries: {e}")))?;
    let run = Arc::new(Run {
        q: q.clone(),
        opts: opts.clone(),
        seeds: seeds.to_vec(),
        names: Mutex::new(BTreeMap::new()),
        levels: levels::Levels::default(),
    });
    let mut zones = Vec::new();
    for seed in seeds {
        zones.push(enumerate_zone(&run, seed).await?);
    }
    // Names from outside the zones themselves.
    for n in &opts.certificate_names {
        if let Ok(d) = DomainName::parse(n.trim_start_matches("*.")) {
            run.discover(d, Source::Certificate).await;
        }
    }
    for ip in &opts.ptr_addresses {
        let reverse = match ip {
            IpAddr::V4(a) => {
                let o = a.octets();
                format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
            }
            IpAddr::V6(a) => {
                let hex: String = a.octets().iter().map(|b| format!("{b:02x}")).collect();
                let nibbles: Vec<String> = hex.chars().rev().map(|c| c.to_string()).collect();
                format!("{}.ip6.arpa", nibbles.join("."))
            }
        };
        let Ok(rev) = DomainName::parse(&reverse) else {
            continue;
        };
        for d in run.rrset(&rev, RecordType::PTR).await {
            if let RData::PTR(p) = d {
                if let Some(name) = dname(&p.0) {
                    run.discover(name, Source::Ptr).await;
                }
            }
        }
    }
    // Wildcards below the apexes, under every level names were found at by now.
    levels::below_apex(&run, &mut zones).await?;
    let mut names: Vec<NameObservation> = run
        .names
        .lock()
        .map(|n| n.values().cloned().collect())
        .unwrap_or_default();
    names.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(scan) = &opts.scan {
        for n in names.iter_mut().filter(|n| !n.related) {
            let dangling: Vec<IpAddr> = n
                .addresses
                .iter()
                .copied()
                .filter(|&a| scan.covers(a) && !scan.open.contains(&a))
                .collect();
            for address in dangling {
                n.findings.push(DnsFinding::DanglingAddress {
                    name: n.name.clone(),
                    address,
                });
            }
        }
    }
    for z in &mut zones {
        z.names_found = names
            .iter()
            .filter(|n| n.zone.as_deref() == Some(z.zone.as_str()))
            .count();
        for n in names
            .iter()
            .filter(|n| n.zone.as_deref() == Some(z.zone.as_str()))
        {
            z.findings.extend(n.findings.iter().cloned());
        }
    }
    Ok(Enumeration {
        zones,
        names,
        queries: q.stats.sent.load(std::sync::atomic::Ordering::Relaxed),
        timeouts: q.stats.timeouts.load(std::sync::atomic::Ordering::Relaxed),
    })
}

async fn enumerate_zone(
    run: &Arc<Run>,
    seed: &DomainName,
) -> Result<ZoneObservation, crate::SpecError> {
    let mut zone = ZoneObservation {
        kind: "zone".into(),
        zone: seed.ascii().to_string(),
        unicode: seed.unicode(),
        records: BTreeMap::new(),
        spf: None,
        dmarc: None,
        axfr: Vec::new(),
        wildcards: BTreeMap::new(),
        findings: Vec::new(),
        names_found: 0,
        wildcard_filtered: 0,
        unknown: 0,
    };
    // The zone's own records.
    for rtype in [
        RecordType::SOA,
        RecordType::NS,
        RecordType::MX,
        RecordType::TXT,
        RecordType::CAA,
    ] {
        let data = run.rrset(seed, rtype).await;
        if !data.is_empty() {
            zone.records
                .insert(rtype.to_string(), data.iter().map(present).collect());
        }
    }
    zone.spf = zone
        .records
        .get("TXT")
        .and_then(|t| t.iter().find_map(|r| parse_spf(r)));
    if let Ok(dmarc_name) = seed.child("_dmarc") {
        let txt: Vec<String> = run
            .rrset(&dmarc_name, RecordType::TXT)
            .await
            .iter()
            .map(present)
            .collect();
        zone.dmarc = txt.iter().find_map(|r| parse_dmarc(r));
    }
    run.discover(seed.clone(), Source::Seed).await;

    // Wildcards at the apex decide what the wordlist may believe (levels below it are
    // probed once names are found under them: levels.rs).
    let apex_wildcard = run
        .level(seed)
        .await
        .map(|l| l.answers.clone())
        .unwrap_or_default();
    if !apex_wildcard.is_empty() {
        zone.wildcards.insert(
            seed.ascii().to_string(),
            apex_wildcard.iter().cloned().collect(),
        );
        zone.findings.push(DnsFinding::Wildcard {
            zone: seed.ascii().to_string(),
            answers: apex_wildcard.iter().cloned().collect(),
        });
    }

    // MX, NS and SRV targets are names too.
    let mut targets: Vec<(DomainName, Source)> = Vec::new();
    for (key, source) in [("MX", Source::Mx), ("NS", Source::Ns)] {
        for v in zone.records.get(key).into_iter().flatten() {
            let host = v
                .split_whitespace()
                .last()
                .unwrap_or("")
                .trim_end_matches('.');
            if let Ok(d) = DomainName::parse(host) {
                targets.push((d, source));
            }
        }
    }
    for srv in SRV_SERVICES {
        let Ok(name) = DomainName::parse(&format!("{srv}.{}", seed.ascii())) else {
            continue;
        };
        let data = run.rrset(&name, RecordType::SRV).await;
        if data.is_empty() {
            continue;
        }
        let values: Vec<String> = data.iter().map(present).collect();
        let res = Resolution {
            status: Some(NameStatus::NoData),
            records: BTreeMap::from([("SRV".to_string(), values)]),
            ..Resolution::default()
        };
        run.record(&name, Source::Srv, &res);
        for d in data {
            if let RData::SRV(s) = d {
                if let Some(t) = dname(s.target()) {
                    targets.push((t, Source::Srv));
                }
            }
        }
    }

    // Zone transfer against every authoritative server.
    if run.opts.axfr {
        let mut servers: BTreeSet<IpAddr> = BTreeSet::new();
        for ns in zone.records.get("NS").into_iter().flatten() {
            if let Ok(d) = DomainName::parse(ns) {
                let r = run.resolve(&d).await;
                servers.extend(r.addresses);
            }
        }
        let port = run.opts.resolvers.first().map(|s| s.port()).unwrap_or(53);
        for server in servers {
            let Some(zname) = hname(seed) else {
                continue;
            };
            let addr = SocketAddr::new(server, port);
            match axfr::axfr(addr, &zname, run.opts.timeout * 8).await {
                axfr::Transfer::Allowed(records) => {
                    zone.axfr.push(AxfrAttempt {
                        server: addr.to_string(),
                        result: "allowed".into(),
                        detail: None,
                        records: records.len(),
                    });
                    zone.findings.push(DnsFinding::OpenZoneTransfer {
                        zone: seed.ascii().to_string(),
                        server: addr.to_string(),
                        records: records.len(),
                    });
                    let mut owners = BTreeSet::new();
                    for r in &records {
                        let owner = r.name().to_ascii();
                        let owner = owner.trim_end_matches('.');
                        if let Some(level) = owner.strip_prefix("*.") {
                            if let Some(data) = r.data() {
                                zone.wildcards
                                    .entry(level.to_string())
                                    .or_default()
                                    .push(present(data));
                            }
                            continue;
                        }
                        if let Ok(d) = DomainName::parse(owner) {
                            owners.insert(d);
                        }
                    }
                    for d in owners {
                        if d != *seed {
                            targets.push((d, Source::Axfr));
                        }
                    }
                }
                axfr::Transfer::Refused(why) => zone.axfr.push(AxfrAttempt {
                    server: addr.to_string(),
                    result: "refused".into(),
                    detail: Some(why),
                    records: 0,
                }),
                axfr::Transfer::Failed(why) => zone.axfr.push(AxfrAttempt {
                    server: addr.to_string(),
                    result: "failed".into(),
                    detail: Some(why),
                    records: 0,
                }),
            }
        }
        for (level, answers) in &zone.wildcards {
            if level != seed.ascii() {
                zone.findings.push(DnsFinding::Wildcard {
                    zone: level.clone(),
                    answers: answers.clone(),
                });
            }
        }
    }
    for (d, source) in targets {
        run.discover(d, source).await;
    }

    // The wordlist, streamed, at most a few batches in flight.
    let labels: Box<dyn Iterator<Item = String> + Send> = match &run.opts.wordlist {
        Wordlist::Builtin => Box::new(wordlist::builtin()),
        Wordlist::File(p) => Box::new(wordlist::from_file(p)?),
        Wordlist::None => Box::new(std::iter::empty()),
    };
    let guessed = levels::guess(run, seed, labels, Arc::new(apex_wildcard)).await;
    zone.wildcard_filtered = guessed.filtered;
    zone.unknown = guessed.unknown;
    Ok(zone)
}
