//! What the loop's findings mean: which names and addresses are in the tenant's scope
//! (the same check a scan request gets), the evidence chain of each, and what outside
//! the scope becomes a candidate — with CNAMEs into known hosting and CDN providers
//! labelled.

use super::Chain;
use crate::serve::jobs::check_scope;
use aperture_fingerprints::dns::observation::{NameObservation, NameStatus, Source};
use aperture_fingerprints::dns::DomainName;
use aperture_storage::access::{ScanRequest, Scope};
use aperture_storage::candidates::{CandidateKind, FoundBy};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Known hosting and CDN providers, by the suffix their customers' CNAMEs point to.
const PROVIDERS: &[(&str, &str)] = &[
    ("cloudfront.net", "Amazon CloudFront"),
    ("elb.amazonaws.com", "Amazon Elastic Load Balancing"),
    ("s3.amazonaws.com", "Amazon S3"),
    ("amazonaws.com", "Amazon Web Services"),
    ("akamaiedge.net", "Akamai"),
    ("akamaized.net", "Akamai"),
    ("edgekey.net", "Akamai"),
    ("edgesuite.net", "Akamai"),
    ("azureedge.net", "Azure CDN"),
    ("azurewebsites.net", "Azure App Service"),
    ("cloudapp.azure.com", "Azure"),
    ("trafficmanager.net", "Azure Traffic Manager"),
    ("blob.core.windows.net", "Azure Blob Storage"),
    ("cdn.cloudflare.net", "Cloudflare"),
    ("fastly.net", "Fastly"),
    ("fastlylb.net", "Fastly"),
    ("github.io", "GitHub Pages"),
    ("herokuapp.com", "Heroku"),
    ("herokudns.com", "Heroku"),
    ("netlify.app", "Netlify"),
    ("vercel-dns.com", "Vercel"),
    ("googlehosted.com", "Google"),
    ("appspot.com", "Google App Engine"),
    ("ghs.googlehosted.com", "Google"),
    ("shopify.com", "Shopify"),
    ("myshopify.com", "Shopify"),
    ("zendesk.com", "Zendesk"),
    ("wpengine.com", "WP Engine"),
    ("pantheonsite.io", "Pantheon"),
    ("b-cdn.net", "Bunny CDN"),
    ("impervadns.net", "Imperva"),
    ("incapdns.net", "Imperva"),
];

/// The provider a name belongs to, when it is a known hosting or CDN one.
pub fn provider_of(name: &str) -> Option<&'static str> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    PROVIDERS
        .iter()
        .filter(|(suffix, _)| under(&name, suffix))
        .max_by_key(|(suffix, _)| suffix.len())
        .map(|&(_, p)| p)
}

fn under(name: &str, zone: &str) -> bool {
    name == zone
        || name
            .strip_suffix(zone)
            .is_some_and(|head| head.ends_with('.'))
}

pub(super) fn request(targets: Vec<String>, domains: Vec<String>) -> ScanRequest {
    ScanRequest {
        targets,
        ports: None,
        top_ports: None,
        domains,
        rate: None,
        grab: true,
        probe: None,
        udp: None,
    }
}

/// A name the tenant's scope lets the loop enumerate.
pub fn name_in_scope(scope: &Scope, name: &str) -> bool {
    check_scope(scope, &request(Vec::new(), vec![name.to_owned()])).is_ok()
}

/// An address the tenant's scope lets the loop scan (CIDRs minus exclusions, and
/// special-purpose ranges only with the opt-in): the same check a scan request gets.
pub fn address_in_scope(scope: &Scope, ip: IpAddr) -> bool {
    check_scope(scope, &request(vec![ip.to_string()], Vec::new())).is_ok()
}

/// A candidate the loop proposes.
pub use aperture_storage::candidates::NewCandidate as Proposal;

/// What one DNS pass means for the loop.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DnsOutcome {
    /// In-scope names met for the first time this loop.
    pub names: BTreeMap<String, Chain>,
    /// In-scope addresses to scan.
    pub addresses: BTreeMap<IpAddr, Chain>,
    pub proposals: Vec<Proposal>,
    /// Addresses an out-of-scope name (already a candidate) resolves to: its evidence grows.
    pub extend: Vec<(String, Vec<String>)>,
}

fn how(found_by: &BTreeSet<Source>) -> &'static str {
    let order = [
        (Source::Seed, "seed"),
        (Source::Axfr, "zone transfer"),
        (Source::Mx, "MX"),
        (Source::Ns, "NS"),
        (Source::Srv, "SRV"),
        (Source::Cname, "CNAME"),
        (Source::Ptr, "PTR"),
        (Source::Certificate, "certificate"),
        // Last: a record that names it says more than a guess that hit.
        (Source::Wordlist, "wordlist"),
    ];
    order
        .iter()
        .find(|(s, _)| found_by.contains(s))
        .map_or("enumeration", |&(_, h)| h)
}

/// Classifies a DNS pass: which names are in scope (and how the loop came to them),
/// which of their addresses to scan, and what outside the scope to propose.
/// `asked`: names the loop asked for, with their chains (certificate and PTR names);
/// `zones`: each enumerated zone's chain; `known`: names met earlier this loop.
pub fn classify_names(
    scope: &Scope,
    observations: &[NameObservation],
    asked: &BTreeMap<String, Chain>,
    zones: &BTreeMap<String, Chain>,
    known: &BTreeMap<String, Chain>,
) -> DnsOutcome {
    let mut out = DnsOutcome::default();
    for n in observations {
        if matches!(n.status, NameStatus::NxDomain | NameStatus::Unknown(_)) && n.records.is_empty()
        {
            continue;
        }
        let inside = name_in_scope(scope, &n.name);
        let chain: Chain = if let Some(c) = known.get(&n.name).or_else(|| asked.get(&n.name)) {
            c.clone()
        } else if let Some((_, zone_chain)) = n
            .zone
            .as_ref()
            .and_then(|z| zones.get_key_value(z.as_str()))
        {
            let (by, steps) = zone_chain.clone();
            let mut steps = steps;
            if n.found_by.contains(&Source::Seed) {
                (by, steps)
            } else {
                steps.push(format!("{} {}", how(&n.found_by), n.name));
                let by = if by == FoundBy::Seed {
                    FoundBy::Enumeration
                } else {
                    by
                };
                (by, steps)
            }
        } else {
            // Outside every zone and not asked for (a CNAME target): its in-scope owner
            // proposes it below.
            continue;
        };
        if !inside {
            // A name the loop asked to resolve (a certificate's, a PTR's): its candidate
            // exists; what it resolves to extends the evidence, and an address inside
            // the scope may still be scanned.
            let steps: Vec<String> = n.addresses.iter().map(|a| record(*a)).collect();
            if !steps.is_empty() {
                out.extend.push((format!("name:{}", n.name), steps));
            }
            for a in &n.addresses {
                if address_in_scope(scope, *a) {
                    let mut s = chain.1.clone();
                    s.push(record(*a));
                    out.addresses.entry(*a).or_insert((chain.0, s));
                }
            }
            continue;
        }
        if !known.contains_key(&n.name) {
            out.names.entry(n.name.clone()).or_insert(chain.clone());
        }
        for a in &n.addresses {
            let mut steps = chain.1.clone();
            steps.push(record(*a));
            if address_in_scope(scope, *a) {
                let by = match chain.0 {
                    FoundBy::Seed => FoundBy::Enumeration,
                    other => other,
                };
                out.addresses.entry(*a).or_insert((by, steps));
            } else {
                out.proposals.push(Proposal {
                    kind: CandidateKind::Address,
                    value: a.to_string(),
                    found_by: FoundBy::Resolution,
                    evidence: steps,
                    provider: None,
                });
            }
        }
        let mut targets: Vec<&String> = n.records.get("CNAME").into_iter().flatten().collect();
        targets.extend(n.cname_chain.iter());
        let mut seen = BTreeSet::new();
        for t in targets {
            let t = t.trim_end_matches('.').to_ascii_lowercase();
            if !seen.insert(t.clone()) || name_in_scope(scope, &t) {
                continue;
            }
            let mut steps = chain.1.clone();
            steps.push(format!("CNAME {t}"));
            out.proposals.push(Proposal {
                kind: CandidateKind::Name,
                provider: provider_of(&t).map(str::to_owned),
                value: t,
                found_by: FoundBy::Cname,
                evidence: steps,
            });
        }
    }
    out
}

fn record(a: IpAddr) -> String {
    match a {
        IpAddr::V4(_) => format!("A {a}"),
        IpAddr::V6(_) => format!("AAAA {a}"),
    }
}

/// What a certificate on an in-scope service says: in-scope names to resolve next
/// round, and candidates for the names under other domains.
pub fn classify_certificate(
    scope: &Scope,
    service: (IpAddr, u16),
    names: &[String],
    via: &Chain,
    known: &BTreeMap<String, Chain>,
) -> (BTreeMap<String, Chain>, Vec<Proposal>) {
    let mut inside = BTreeMap::new();
    let mut proposals = Vec::new();
    let at = match service.0 {
        IpAddr::V4(ip) => format!("{ip}:{}", service.1),
        IpAddr::V6(ip) => format!("[{ip}]:{}", service.1),
    };
    let mut seen = BTreeSet::new();
    for raw in names {
        let name = raw.trim_end_matches('.').to_ascii_lowercase();
        // A wildcard names no host; its zone is the certificate holder's.
        let Some(name) = (!name.starts_with("*."))
            .then_some(name)
            .filter(|n| DomainName::parse(n).is_ok())
        else {
            continue;
        };
        if !seen.insert(name.clone()) || known.contains_key(&name) {
            continue;
        }
        let mut steps = via.1.clone();
        steps.push(format!("certificate on {at}"));
        steps.push(format!("SAN {name}"));
        if name_in_scope(scope, &name) {
            inside.insert(name, (FoundBy::Certificate, steps));
        } else {
            proposals.push(Proposal {
                kind: CandidateKind::Name,
                value: name,
                found_by: FoundBy::Certificate,
                evidence: steps,
                provider: None,
            });
        }
    }
    (inside, proposals)
}
