use super::classify::provider_of;
use super::*;
use aperture_fingerprints::dns::observation::NameObservation;

fn scope() -> Scope {
    Scope {
        cidrs: vec!["198.19.6.0/25".parse().expect("net")],
        domains: vec!["acme.test".into()],
        exclusions: vec!["198.19.6.100/32".parse().expect("net")],
        allow_special: true,
    }
}

fn name(
    n: &str,
    zone: Option<&str>,
    by: Source,
    addrs: &[&str],
    cname: &[&str],
) -> NameObservation {
    let mut records = BTreeMap::new();
    if !cname.is_empty() {
        records.insert(
            "CNAME".to_owned(),
            cname.iter().map(|c| format!("{c}.")).collect(),
        );
    }
    let addresses: Vec<IpAddr> = addrs.iter().map(|a| a.parse().expect("ip")).collect();
    if !addresses.is_empty() {
        records.insert(
            "A".to_owned(),
            addrs.iter().map(|a| a.to_string()).collect(),
        );
    }
    NameObservation {
        kind: "name".into(),
        name: n.into(),
        unicode: n.into(),
        zone: zone.map(str::to_owned),
        related: zone.is_none(),
        status: NameStatus::Resolved,
        records,
        addresses,
        cname_chain: Vec::new(),
        found_by: [by].into(),
        findings: Vec::new(),
    }
}

fn seed_zones() -> BTreeMap<String, Chain> {
    [(
        "acme.test".to_owned(),
        (FoundBy::Seed, vec!["seed zone acme.test".to_owned()]),
    )]
    .into()
}

#[test]
fn names_in_scope_are_followed_and_what_lies_outside_becomes_candidates() {
    // Found by both the wordlist and the zone's MX: the record is the better evidence.
    let mut mail = name(
        "mail.acme.test",
        Some("acme.test"),
        Source::Mx,
        &["198.19.6.140"],
        &[],
    );
    mail.found_by.insert(Source::Wordlist);
    let obs = vec![
        name(
            "www.acme.test",
            Some("acme.test"),
            Source::Wordlist,
            &["198.19.6.10"],
            &[],
        ),
        mail,
        name(
            "old.acme.test",
            Some("acme.test"),
            Source::Wordlist,
            &["198.19.6.100"],
            &[],
        ),
        name(
            "shop.acme.test",
            Some("acme.test"),
            Source::Wordlist,
            &[],
            &["d3f8k2x9.cloudfront.net"],
        ),
        // The CNAME target itself, resolved by the enumeration: its owner proposes it.
        name("d3f8k2x9.cloudfront.net", None, Source::Cname, &[], &[]),
    ];
    let out = classify_names(
        &scope(),
        &obs,
        &BTreeMap::new(),
        &seed_zones(),
        &BTreeMap::new(),
    );
    let names: Vec<&str> = out.names.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "mail.acme.test",
            "old.acme.test",
            "shop.acme.test",
            "www.acme.test"
        ]
    );
    let www = &out.names["www.acme.test"];
    assert_eq!(www.0, FoundBy::Enumeration);
    assert_eq!(www.1, ["seed zone acme.test", "wordlist www.acme.test"]);
    let scan: Vec<String> = out.addresses.keys().map(|a| a.to_string()).collect();
    assert_eq!(
        scan,
        ["198.19.6.10"],
        "the excluded and the outside address are not scanned"
    );
    let addr = &out.addresses[&"198.19.6.10".parse::<IpAddr>().expect("ip")];
    assert_eq!(addr.1.last().map(String::as_str), Some("A 198.19.6.10"));
    let mut got: Vec<(String, Option<String>, String)> = out
        .proposals
        .iter()
        .map(|p| (p.value.clone(), p.provider.clone(), p.evidence.join(" → ")))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "198.19.6.100".to_owned(),
                None,
                "seed zone acme.test → wordlist old.acme.test → A 198.19.6.100".to_owned()
            ),
            (
                "198.19.6.140".to_owned(),
                None,
                "seed zone acme.test → MX mail.acme.test → A 198.19.6.140".to_owned()
            ),
            (
                "d3f8k2x9.cloudfront.net".to_owned(),
                Some("Amazon CloudFront".to_owned()),
                "seed zone acme.test → wordlist shop.acme.test → CNAME d3f8k2x9.cloudfront.net"
                    .to_owned()
            ),
        ]
    );
}

#[test]
fn names_the_loop_asked_for_keep_their_chain_and_known_names_are_not_new() {
    let chain = |steps: &[&str]| steps.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let asked: BTreeMap<String, Chain> = [
        (
            "qx7-portal.acme.test".to_owned(),
            (
                FoundBy::Certificate,
                chain(&[
                    "seed zone acme.test",
                    "wordlist www.acme.test",
                    "A 198.19.6.10",
                    "certificate on 198.19.6.10:443",
                    "SAN qx7-portal.acme.test",
                ]),
            ),
        ),
        (
            "shop.acme-shop.test".to_owned(),
            (
                FoundBy::Certificate,
                chain(&["certificate on 198.19.6.10:443", "SAN shop.acme-shop.test"]),
            ),
        ),
    ]
    .into();
    let known: BTreeMap<String, Chain> = [(
        "www.acme.test".to_owned(),
        (FoundBy::Enumeration, chain(&["x"])),
    )]
    .into();
    let obs = vec![
        name(
            "qx7-portal.acme.test",
            Some("acme.test"),
            Source::Certificate,
            &["198.19.6.11"],
            &[],
        ),
        name(
            "shop.acme-shop.test",
            None,
            Source::Certificate,
            &["198.19.6.141"],
            &[],
        ),
        name(
            "www.acme.test",
            Some("acme.test"),
            Source::Wordlist,
            &["198.19.6.10"],
            &[],
        ),
    ];
    let out = classify_names(&scope(), &obs, &asked, &seed_zones(), &known);
    assert_eq!(out.names.len(), 1);
    let portal = &out.names["qx7-portal.acme.test"];
    assert_eq!(portal.0, FoundBy::Certificate);
    let a11 = &out.addresses[&"198.19.6.11".parse::<IpAddr>().expect("ip")];
    assert_eq!(
        a11.1.join(" → "),
        "seed zone acme.test → wordlist www.acme.test → A 198.19.6.10 → certificate on 198.19.6.10:443 → SAN qx7-portal.acme.test → A 198.19.6.11"
    );
    assert_eq!(a11.0, FoundBy::Certificate);
    assert!(out.proposals.is_empty(), "{:?}", out.proposals);
    assert_eq!(
        out.extend,
        vec![(
            "name:shop.acme-shop.test".to_owned(),
            vec!["A 198.19.6.141".to_owned()]
        )],
        "an outside name's address extends its candidate's evidence, and is not scanned"
    );
    assert!(!out
        .addresses
        .contains_key(&"198.19.6.141".parse::<IpAddr>().expect("ip")));
}

#[test]
fn certificate_names_split_into_scope_and_candidates() {
    let via: Chain = (
        FoundBy::Enumeration,
        vec!["seed zone acme.test".into(), "A 198.19.6.10".into()],
    );
    let names: Vec<String> = [
        "www.acme.test",
        "QX7-Portal.acme.test.",
        "*.acme.test",
        "shop.acme-shop.test",
        "shop.acme-shop.test",
        "not a name",
        "acme.test.evil",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let known: BTreeMap<String, Chain> = [(
        "www.acme.test".to_owned(),
        (FoundBy::Enumeration, Vec::new()),
    )]
    .into();
    let ip: IpAddr = "198.19.6.10".parse().expect("ip");
    let (inside, proposals) = classify_certificate(&scope(), (ip, 443), &names, &via, &known);
    assert_eq!(inside.keys().collect::<Vec<_>>(), ["qx7-portal.acme.test"]);
    assert_eq!(
        inside["qx7-portal.acme.test"].1.join(" → "),
        "seed zone acme.test → A 198.19.6.10 → certificate on 198.19.6.10:443 → SAN qx7-portal.acme.test"
    );
    let got: Vec<&str> = proposals.iter().map(|p| p.value.as_str()).collect();
    assert_eq!(got, ["shop.acme-shop.test", "acme.test.evil"]);
    assert!(proposals
        .iter()
        .all(|p| p.found_by == FoundBy::Certificate && p.kind == CandidateKind::Name));
    let v6: IpAddr = "2001:2::5".parse().expect("ip");
    let (_, p6) = classify_certificate(&scope(), (v6, 8443), &names[3..4], &via, &known);
    assert!(p6[0]
        .evidence
        .contains(&"certificate on [2001:2::5]:8443".to_owned()));
}

#[test]
fn providers_by_longest_suffix_and_scope_checks_match_scans() {
    assert_eq!(
        provider_of("d3f8k2x9.cloudfront.net."),
        Some("Amazon CloudFront")
    );
    assert_eq!(provider_of("x.s3.amazonaws.com"), Some("Amazon S3"));
    assert_eq!(
        provider_of("ec2.amazonaws.com"),
        Some("Amazon Web Services")
    );
    assert_eq!(provider_of("notcloudfront.net"), None);
    assert_eq!(provider_of("shop.acme-shop.test"), None);
    let s = scope();
    assert!(name_in_scope(&s, "a.b.acme.test"));
    assert!(!name_in_scope(&s, "acme.test.evil"));
    assert!(address_in_scope(&s, "198.19.6.1".parse().expect("ip")));
    assert!(
        !address_in_scope(&s, "198.19.6.100".parse().expect("ip")),
        "excluded"
    );
    assert!(!address_in_scope(&s, "198.19.6.200".parse().expect("ip")));
    let no_special = Scope {
        allow_special: false,
        ..s
    };
    assert!(
        !address_in_scope(&no_special, "198.19.6.1".parse().expect("ip")),
        "special range without the opt-in"
    );
}
