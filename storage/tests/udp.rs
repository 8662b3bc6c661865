//! UDP services in the store: a UDP port is an asset of its own beside the TCP one on
//! the same number, with the probe's facts; ICMP port unreachable makes it absent (and
//! closes its findings as verified), silence only unknown; the three UDP rules; an
//! export carries UDP services to another store.

mod common;

use aperture_fingerprints::report::{ServiceReport, UdpReport};
use aperture_fingerprints::{PortObservation, PortState, Probe, Proto, Reason};
use aperture_storage::policy::{FindingState, Rule};
use aperture_storage::*;
use common::*;
use std::time::{Duration, UNIX_EPOCH};

fn udp(ip: &str, port: u16, state: PortState, report: Option<ServiceReport>) -> Observation {
    Observation::Port(PortObservation {
        ip: ip.parse().expect("ip"),
        port,
        proto: Proto::Udp,
        state,
        reason: match state {
            PortState::Open => Reason::UdpResponse,
            PortState::Closed => Reason::PortUnreach,
            PortState::Filtered => Reason::AdminProhibited,
        },
        ttl: Some(64),
        timestamp: UNIX_EPOCH + Duration::from_millis(T0 as u64),
        scan_id: "s".into(),
        probe: Probe::Udp,
        service: report,
    })
}

fn report(
    service: &str,
    product: Option<&str>,
    x100: u32,
    facts: &[(&str, &str)],
) -> Option<ServiceReport> {
    Some(ServiceReport {
        service: Some(service.into()),
        product: product.map(str::to_owned),
        udp: Some(UdpReport {
            protocol: service.into(),
            request_bytes: 30,
            reply_bytes: 30 * x100 / 100,
            replies: 1,
            amplification_x100: x100,
            facts: facts
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }),
        ..ServiceReport::default()
    })
}

fn begin_udp(store: &Store, t: &TenantId, id: &str, at: Millis) {
    let coverage = Coverage {
        targets: vec!["198.18.0.0/24".parse().expect("net")],
        ports: vec![(53, 53)],
        probes: ["syn", "udp"].iter().map(|s| s.to_string()).collect(),
        domains: vec![],
        udp_ports: vec![(53, 53), (161, 161), (1900, 1900)],
    };
    store
        .begin_scan(t, id, coverage, 1, None, at)
        .expect("begins");
}

fn states(store: &Store, t: &TenantId, key: &AssetKey) -> Vec<(Rule, FindingState)> {
    store
        .findings_of(t, key)
        .expect("findings")
        .into_iter()
        .filter(|f| f.rule != Rule::Unsanctioned)
        .map(|f| (f.rule, f.state))
        .collect()
}

#[test]
fn udp_services_are_their_own_assets_and_close_only_on_port_unreachable() {
    let (_dir, store, t) = fresh();
    let dns = report(
        "dns",
        Some("Unbound"),
        190,
        &[("recursion_available", "true"), ("rcode", "NOERROR")],
    );
    let snmp = report(
        "snmp",
        None,
        234,
        &[("community", "public"), ("community_accepted", "true")],
    );
    let ssdp = report("ssdp", Some("ApertureLab"), 3344, &[]);
    begin_udp(&store, &t, "s1", T0);
    store
        .apply(
            &t,
            &batch(
                "s1",
                0,
                T0,
                vec![
                    port("198.18.0.5", 53, None),
                    udp("198.18.0.5", 53, PortState::Open, dns.clone()),
                    udp("198.18.0.6", 161, PortState::Open, snmp.clone()),
                    udp("198.18.0.7", 1900, PortState::Open, ssdp.clone()),
                ],
            ),
        )
        .expect("applies");
    store.run_policy(&t, T0).expect("policy");
    let tcp53 = AssetKey::tcp("198.18.0.5".parse().expect("ip"), 53);
    let udp53: AssetKey = "service:198.18.0.5:53/udp".parse().expect("key");
    let snmp161: AssetKey = "service:198.18.0.6:161/udp".parse().expect("key");
    let ssdp1900: AssetKey = "service:198.18.0.7:1900/udp".parse().expect("key");
    let a = store.asset(&t, &udp53).expect("udp 53");
    let b = store.asset(&t, &tcp53).expect("tcp 53");
    assert_eq!(
        (
            a.fact("product"),
            a.fact("protocol"),
            a.fact("amplification")
        ),
        (Some("Unbound"), Some("dns"), Some("1.90"))
    );
    assert_eq!(a.fact("udp.recursion_available"), Some("true"));
    assert!(
        b.facts.is_empty(),
        "the TCP twin keeps its own facts: {b:?}"
    );
    assert_eq!(
        store
            .asset(&t, &AssetKey::Host("198.18.0.5".parse().expect("ip")))
            .expect("host")
            .fact("open_ports"),
        Some("53 53/udp")
    );
    let udp_only = AssetFilter {
        protocol: Some(Proto::Udp),
        ..AssetFilter::default()
    };
    let listed: Vec<String> = store
        .list_assets(&t, &udp_only, None, 100)
        .expect("lists")
        .items
        .iter()
        .map(|a| a.key.to_string())
        .collect();
    assert_eq!(
        listed,
        [
            "service:198.18.0.5:53/udp",
            "service:198.18.0.6:161/udp",
            "service:198.18.0.7:1900/udp"
        ]
    );
    assert_eq!(
        states(&store, &t, &udp53),
        [(Rule::OpenResolver, FindingState::Open)]
    );
    assert_eq!(
        states(&store, &t, &snmp161),
        [(Rule::SnmpDefaultCommunity, FindingState::Open)]
    );
    assert_eq!(
        states(&store, &t, &ssdp1900),
        [(Rule::Amplifier, FindingState::Open)]
    );
    assert!(states(&store, &t, &tcp53).is_empty());

    // The rescan: DNS silent, SNMP port unreachable, SSDP no longer amplifying.
    begin_udp(&store, &t, "s2", T0 + HOUR);
    store
        .apply(
            &t,
            &batch(
                "s2",
                0,
                T0 + HOUR,
                vec![
                    port("198.18.0.5", 53, None),
                    udp("198.18.0.6", 161, PortState::Closed, None),
                    udp(
                        "198.18.0.7",
                        1900,
                        PortState::Open,
                        report("ssdp", Some("ApertureLab"), 420, &[]),
                    ),
                ],
            ),
        )
        .expect("applies");
    store.run_policy(&t, T0 + HOUR).expect("policy");
    assert_eq!(
        store.asset(&t, &udp53).expect("udp 53").status,
        AssetStatus::Unknown,
        "silence is not gone"
    );
    assert_eq!(
        store.asset(&t, &tcp53).expect("tcp 53").status,
        AssetStatus::Present
    );
    assert_eq!(
        states(&store, &t, &udp53),
        [(Rule::OpenResolver, FindingState::Open)]
    );
    assert_eq!(
        store.asset(&t, &snmp161).expect("snmp").status,
        AssetStatus::Absent
    );
    assert_eq!(
        states(&store, &t, &snmp161),
        [(Rule::SnmpDefaultCommunity, FindingState::ClosedVerified)]
    );
    assert_eq!(
        states(&store, &t, &ssdp1900),
        [(Rule::Amplifier, FindingState::ClosedVerified)]
    );
    let changes = store.changes_since(&t, None, 1000).expect("changes");
    let gone: Vec<String> = changes
        .items
        .iter()
        .filter(|c| matches!(c.kind, ChangeKind::Disappeared))
        .map(|c| c.asset.to_string())
        .collect();
    assert_eq!(gone, ["service:198.18.0.6:161/udp", "host:198.18.0.6"]);

    // An export carries them to another store, keys and facts intact.
    let mut out = Vec::new();
    store.export_tenant(&t, &mut out).expect("exports");
    let dir = tempfile::tempdir().expect("tempdir");
    let other = Store::open(dir.path()).expect("opens");
    other
        .import_tenant(&mut out.as_slice(), None)
        .expect("imports");
    for key in [&udp53, &tcp53, &snmp161, &ssdp1900] {
        assert_eq!(
            other.asset(&t, key).expect("imported"),
            store.asset(&t, key).expect("original"),
            "{key}"
        );
    }
}
