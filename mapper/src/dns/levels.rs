//! Wildcards at every level names are guessed or found under, not only at the seed
//! apex: `*.dev.example.com` below a plain `example.com` makes every guess under
//! `dev.example.com` answer. Each level is probed once (cached) and the number of levels
//! probed is capped; guesses under a level that only echo its wildcard are dropped,
//! names that answer differently are kept.
//!
//! Levels below the apex are the parents of the names found by any source (AXFR,
//! certificates, CNAME targets, PTR, the wordlist); under each (up to a cap) the first
//! labels of the wordlist are guessed once. Delegated levels are left alone: their
//! names are the child zone's servers' to answer.

use super::{Resolution, Run, Source, Wordlist};
use aperture_fingerprints::dns::observation::{DnsFinding, NameStatus, ZoneObservation};
use aperture_fingerprints::dns::{random_label, DomainName};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;
use tokio::task::JoinSet;

/// What random labels under one level answered.
#[derive(Debug, Default)]
pub(super) struct Level {
    /// Addresses and CNAME targets the probes got: non-empty means a wildcard.
    pub answers: BTreeSet<String>,
    /// The probes were referred to a child zone's servers.
    pub delegated: bool,
}

/// Probed levels, each probed once however many tasks ask at the same time.
#[derive(Debug, Default)]
pub(super) struct Levels {
    cells: Mutex<HashMap<String, Arc<OnceCell<Arc<Level>>>>>,
}

/// Guesses under one level: how many only echoed its wildcard, how many got no usable
/// answer.
#[derive(Debug, Default)]
pub(super) struct Guessed {
    pub filtered: u64,
    pub unknown: u64,
}

impl Run {
    /// The level's wildcard, probed on first use; `None` once `wildcard_levels` levels
    /// have been probed (a hostile zone can make names at any depth).
    pub(super) async fn level(&self, level: &DomainName) -> Option<Arc<Level>> {
        let cell = {
            let mut cells = self.levels.cells.lock().ok()?;
            match cells.get(level.ascii()) {
                Some(c) => c.clone(),
                None if cells.len() >= self.opts.wildcard_levels.max(1) => return None,
                None => cells.entry(level.ascii().to_string()).or_default().clone(),
            }
        };
        let got = cell
            .get_or_init(|| async {
                let mut l = Level::default();
                let salt = crate::entropy::random_u64();
                for i in 0..self.opts.wildcard_probes {
                    let Ok(probe) = level.child(&random_label(salt.wrapping_add(i as u64))) else {
                        continue;
                    };
                    let r = self.resolve(&probe).await;
                    l.delegated |= r.delegated.is_some();
                    l.answers.extend(r.answer_set());
                }
                Arc::new(l)
            })
            .await;
        Some(got.clone())
    }
}

/// Guesses `labels` under `level`, keeping names that exist and do not merely echo
/// `wildcard`, at most a few batches in flight.
pub(super) async fn guess(
    run: &Arc<Run>,
    level: &DomainName,
    labels: Box<dyn Iterator<Item = String> + Send>,
    wildcard: Arc<BTreeSet<String>>,
) -> Guessed {
    let filtered = Arc::new(AtomicU64::new(0));
    let unknown = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    let limit = run.opts.concurrency.max(1) * 2;
    for label in labels {
        let Ok(name) = level.child(&label) else {
            continue;
        };
        while tasks.len() >= limit {
            let _ = tasks.join_next().await;
        }
        let (run, filtered, unknown, wildcard) = (
            run.clone(),
            filtered.clone(),
            unknown.clone(),
            wildcard.clone(),
        );
        tasks.spawn(async move {
            if run.known(&name) {
                run.record(&name, Source::Wordlist, &Resolution::default());
                return;
            }
            let res = run.resolve(&name).await;
            match &res.status {
                Some(NameStatus::NxDomain) => {}
                Some(NameStatus::Unknown(_)) => {
                    unknown.fetch_add(1, Relaxed);
                }
                _ if !wildcard.is_empty() && res.answer_set().is_subset(&wildcard) => {
                    filtered.fetch_add(1, Relaxed);
                }
                _ => {
                    run.record(&name, Source::Wordlist, &res);
                    run.follow_chain(&res).await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Guessed {
        filtered: filtered.load(Relaxed),
        unknown: unknown.load(Relaxed),
    }
}

/// The first `n` wordlist labels, or none when there is no wordlist.
fn first_labels(
    wordlist: &Wordlist,
    n: usize,
) -> Result<Box<dyn Iterator<Item = String> + Send>, crate::SpecError> {
    Ok(match wordlist {
        Wordlist::Builtin => Box::new(super::wordlist::builtin().take(n)),
        Wordlist::File(p) => Box::new(super::wordlist::from_file(p)?.take(n)),
        Wordlist::None => Box::new(std::iter::empty()),
    })
}

/// Levels below each seed apex that found names live under: probed for wildcards
/// (reported in their zone), then guessed under with the first wordlist labels.
pub(super) async fn below_apex(
    run: &Arc<Run>,
    zones: &mut [ZoneObservation],
) -> Result<(), crate::SpecError> {
    for zone in zones.iter_mut() {
        let Ok(apex) = DomainName::parse(&zone.zone) else {
            continue;
        };
        let levels: BTreeSet<DomainName> = run
            .names
            .lock()
            .map(|names| {
                names
                    .values()
                    .filter(|n| !n.related && n.zone.as_deref() == Some(apex.ascii()))
                    .filter_map(|n| DomainName::parse(&n.name).ok()?.parent())
                    // Service labels (_tcp, _domainkey) are no host namespace.
                    .filter(|p| {
                        p != &apex && p.is_subdomain_of(&apex) && !p.ascii().starts_with('_')
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut guessed = 0;
        for level in levels {
            let Some(probed) = run.level(&level).await else {
                break;
            };
            if probed.delegated {
                continue;
            }
            if !probed.answers.is_empty() && !zone.wildcards.contains_key(level.ascii()) {
                let answers: Vec<String> = probed.answers.iter().cloned().collect();
                zone.wildcards
                    .insert(level.ascii().to_string(), answers.clone());
                zone.findings.push(DnsFinding::Wildcard {
                    zone: level.ascii().to_string(),
                    answers,
                });
            }
            if guessed >= run.opts.sublevel_max {
                continue;
            }
            guessed += 1;
            let labels = first_labels(&run.opts.wordlist, run.opts.sublevel_labels)?;
            let g = guess(run, &level, labels, Arc::new(probed.answers.clone())).await;
            zone.wildcard_filtered += g.filtered;
            zone.unknown += g.unknown;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{enumerate, DomainOptions};
    use super::*;
    use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
    use hickory_resolver::proto::rr::rdata::{A, CNAME};
    use hickory_resolver::proto::rr::{Name, RData, Record};
    use hickory_resolver::proto::serialize::binary::{BinDecodable, BinEncodable};
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::net::UdpSocket;

    /// A tiny authoritative server on loopback for x.test: `*.dev.x.test` below a plain
    /// apex, real names under dev that answer differently, `portal` leading there.
    async fn server() -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = sock.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let Ok(q) = Message::from_bytes(&buf[..n]) else {
                    continue;
                };
                let Some(query) = q.queries().first() else {
                    continue;
                };
                let qname = query.name().to_ascii().to_ascii_lowercase();
                let a = |ip: u8| RData::A(A::new(192, 0, 2, ip));
                let name = |s: &str| Name::from_ascii(s).expect("name");
                let mut answers = Vec::new();
                let mut rcode = ResponseCode::NoError;
                let is_a = query.query_type() == hickory_resolver::proto::rr::RecordType::A;
                match qname.as_str() {
                    "x.test." => {}
                    "dev.x.test." if is_a => {
                        answers.push(Record::from_rdata(name(&qname), 60, a(1)))
                    }
                    "api.dev.x.test." if is_a => {
                        answers.push(Record::from_rdata(name(&qname), 60, a(3)))
                    }
                    "app.dev.x.test." if is_a => {
                        answers.push(Record::from_rdata(name(&qname), 60, a(4)))
                    }
                    "portal.x.test." => {
                        answers.push(Record::from_rdata(
                            name(&qname),
                            60,
                            RData::CNAME(CNAME(name("app.dev.x.test."))),
                        ));
                        if is_a {
                            answers.push(Record::from_rdata(name("app.dev.x.test."), 60, a(4)));
                        }
                    }
                    q if q.ends_with(".dev.x.test.") => {
                        if is_a {
                            answers.push(Record::from_rdata(name(q), 60, a(2)));
                        }
                    }
                    q if q.ends_with(".x.test.") => rcode = ResponseCode::NXDomain,
                    _ => rcode = ResponseCode::Refused,
                }
                let mut m = Message::new();
                m.set_id(q.id())
                    .set_message_type(MessageType::Response)
                    .set_authoritative(true)
                    .set_response_code(rcode)
                    .add_queries(q.queries().to_vec())
                    .add_answers(answers);
                if let Ok(bytes) = m.to_bytes() {
                    let _ = sock.send_to(&bytes, from).await;
                }
            }
        });
        addr
    }

    async fn run(wildcard_levels: usize) -> super::super::Enumeration {
        let dir = std::env::temp_dir().join(format!(
            "aperture-levels-{}-{wildcard_levels}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let words = dir.join("words");
        std::fs::write(&words, "portal\ndev\napi\nwww\nmail\n").expect("wordlist");
        let opts = DomainOptions {
            resolvers: vec![server().await],
            timeout: Duration::from_millis(500),
            qps: 2000,
            wordlist: Wordlist::File(words),
            axfr: false,
            wildcard_levels,
            ..DomainOptions::default()
        };
        let seed = DomainName::parse("x.test").expect("seed");
        let out = enumerate(&[seed], opts).await.expect("enumerate");
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    #[tokio::test]
    async fn a_wildcard_below_a_plain_apex_filters_echoes_and_keeps_real_names() {
        let e = run(64).await;
        let names: BTreeSet<&str> = e.names.iter().map(|n| n.name.as_str()).collect();
        let zone = &e.zones[0];
        assert!(zone.wildcards.contains_key("dev.x.test"), "{zone:?}");
        assert!(!zone.wildcards.contains_key("x.test"), "the apex is plain");
        // api answers differently from the wildcard and app is where portal leads.
        assert!(
            names.contains("api.dev.x.test") && names.contains("app.dev.x.test"),
            "{names:?}"
        );
        // www and mail under dev only echo the wildcard.
        assert!(!names.contains("www.dev.x.test") && !names.contains("mail.dev.x.test"));
        assert!(zone.wildcard_filtered >= 2, "{zone:?}");
    }

    #[tokio::test]
    async fn the_number_of_levels_probed_is_capped() {
        // One level: the apex only, so dev's wildcard is neither probed nor guessed under.
        let e = run(1).await;
        let zone = &e.zones[0];
        assert!(zone.wildcards.is_empty(), "{zone:?}");
        assert!(!e.names.iter().any(|n| n.name == "api.dev.x.test"));
    }
}
