use super::*;
use proptest::prelude::*;

fn spf(txt: &str) -> Spf {
    parse_spf(txt).unwrap_or_else(|| panic!("{txt:?} should be SPF"))
}

fn dmarc(txt: &str) -> Dmarc {
    parse_dmarc(txt).unwrap_or_else(|| panic!("{txt:?} should be DMARC"))
}

fn has_error(errors: &[String], needle: &str) -> bool {
    errors.iter().any(|e| e.contains(needle))
}

#[test]
fn google_style_spf() {
    let s = spf("v=spf1 include:_spf.google.com ~all");
    assert_eq!(s.includes, ["_spf.google.com"]);
    assert_eq!(s.all, Some(SpfQualifier::SoftFail));
    assert!(!s.permissive);
    assert_eq!(s.lookup_count, 1);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(
        s.terms[0],
        SpfTerm {
            qualifier: Some(SpfQualifier::Pass),
            kind: SpfKind::Include,
            value: Some("_spf.google.com".into()),
            cidr: None,
        }
    );
}

#[test]
fn microsoft_style_spf() {
    let s = spf("v=spf1 include:spf.protection.outlook.com -all");
    assert_eq!(s.includes, ["spf.protection.outlook.com"]);
    assert_eq!(s.all, Some(SpfQualifier::Fail));
    assert!(s.errors.is_empty());
}

#[test]
fn mixed_spf_keeps_order_and_networks() {
    let s = spf(
        "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.7 ip6:2001:db8::/32 a mx:mail.corp.test/24 \
                 a/24//64 include:_spf.google.com include:mailgun.org ptr ?all",
    );
    let kinds: Vec<SpfKind> = s.terms.iter().map(|t| t.kind).collect();
    use SpfKind::*;
    assert_eq!(kinds, [Ip4, Ip4, Ip6, A, Mx, A, Include, Include, Ptr, All]);
    assert_eq!(s.ip4, ["192.0.2.0/24", "198.51.100.7"]);
    assert_eq!(s.ip6, ["2001:db8::/32"]);
    assert_eq!(s.terms[4].value.as_deref(), Some("mail.corp.test"));
    assert_eq!(s.terms[4].cidr.as_deref(), Some("/24"));
    assert_eq!(s.terms[5].value, None);
    assert_eq!(s.terms[5].cidr.as_deref(), Some("/24//64"));
    assert_eq!(s.includes, ["_spf.google.com", "mailgun.org"]);
    assert_eq!(s.all, Some(SpfQualifier::Neutral));
    // a, mx, a, include, include, ptr
    assert_eq!(s.lookup_count, 6);
    assert!(!s.too_many_lookups);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
}

#[test]
fn plus_all_is_permissive() {
    for txt in ["v=spf1 +all", "v=spf1 all", "v=spf1 ip4:192.0.2.1 +all"] {
        let s = spf(txt);
        assert_eq!(s.all, Some(SpfQualifier::Pass), "{txt}");
        assert!(s.permissive, "{txt}");
    }
    assert!(!spf("v=spf1 ?all").permissive);
}

#[test]
fn case_insensitive_version_and_names() {
    let s = spf("V=SPF1 INCLUDE:_spf.example.COM -ALL");
    assert_eq!(s.all, Some(SpfQualifier::Fail));
    assert_eq!(s.includes, ["_spf.example.COM"]);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
}

#[test]
fn not_spf() {
    for txt in [
        "",
        "v=spf",
        "v=spf10 -all",
        "v=spf1-all",
        " v=spf1 -all",
        "google-site-verification=abcdefghijklmnop",
        "v=DMARC1; p=reject",
        "spf2.0/pra include:spf.example.com -all",
    ] {
        assert_eq!(parse_spf(txt), None, "{txt:?}");
    }
}

#[test]
fn bare_version_has_no_policy() {
    let s = spf("v=spf1");
    assert_eq!(s.all, None);
    assert!(s.terms.is_empty());
    assert!(s.errors.is_empty());
}

#[test]
fn redirect_and_exp() {
    let s = spf("v=spf1 mx redirect=_spf.corp.test exp=explain._spf.%{d}");
    assert_eq!(s.redirect.as_deref(), Some("_spf.corp.test"));
    assert_eq!(s.exp.as_deref(), Some("explain._spf.%{d}"));
    assert_eq!(s.all, None);
    assert_eq!(s.lookup_count, 2, "mx and redirect");
    assert_eq!(s.terms[1].qualifier, None);
    assert_eq!(s.terms[1].kind, SpfKind::Redirect);
    assert!(s.errors.is_empty(), "{:?}", s.errors);

    let s = spf("v=spf1 redirect=a.corp.test redirect=b.corp.test -all");
    assert!(has_error(&s.errors, "redirect appears more than once"));
    assert!(has_error(&s.errors, "redirect is ignored"));
    assert_eq!(s.redirect.as_deref(), Some("a.corp.test"));

    let s = spf("v=spf1 -redirect=a.corp.test exp=");
    assert!(has_error(&s.errors, "takes no qualifier"));
    assert!(has_error(&s.errors, "exp needs a domain"));
}

#[test]
fn duplicate_all() {
    let s = spf("v=spf1 -all ~all");
    assert_eq!(s.all, Some(SpfQualifier::Fail), "the first one counts");
    assert!(has_error(&s.errors, "more than one all"));
}

#[test]
fn bad_networks() {
    let s = spf(
        "v=spf1 ip4:192.0.2.300 ip4:192.0.2.0/33 ip4:192.0.2.0/024 ip4 ip4:2001:db8::1 \
                 ip6:2001:db8::/129 ip6:zz:: ip6:2001:db8::/48 ip4:192.0.2.0/0 -all",
    );
    assert_eq!(s.ip4, ["192.0.2.0/0"]);
    assert_eq!(s.ip6, ["2001:db8::/48"]);
    assert!(has_error(
        &s.errors,
        "\"ip4:192.0.2.300\": not an IPv4 address"
    ));
    assert!(has_error(
        &s.errors,
        "\"ip4:192.0.2.0/33\": bad prefix length"
    ));
    assert!(has_error(
        &s.errors,
        "\"ip4:192.0.2.0/024\": bad prefix length"
    ));
    assert!(has_error(&s.errors, "\"ip4\": ip4 needs a network"));
    assert!(has_error(
        &s.errors,
        "\"ip4:2001:db8::1\": not an IPv4 address"
    ));
    assert!(has_error(
        &s.errors,
        "\"ip6:2001:db8::/129\": bad prefix length"
    ));
    assert!(has_error(&s.errors, "\"ip6:zz::\": not an IPv6 address"));
    assert_eq!(s.terms.len(), 10, "broken terms are still listed");
}

#[test]
fn bad_mechanism_arguments() {
    let s = spf(
        "v=spf1 include include:bad..name exists:%{i}._spf.%{d} include:x.test/24 a/33 \
                 mx//129 a: all:x ptr/24 -all",
    );
    assert!(has_error(&s.errors, "\"include\": include needs a domain"));
    assert!(has_error(
        &s.errors,
        "\"include:bad..name\": bad domain: label 2 is empty"
    ));
    assert!(
        !has_error(&s.errors, "exists"),
        "macros are accepted: {:?}",
        s.errors
    );
    assert!(has_error(&s.errors, "include takes no CIDR length"));
    assert!(has_error(&s.errors, "\"a/33\": bad CIDR length"));
    assert!(has_error(&s.errors, "\"mx//129\": bad CIDR length"));
    assert!(has_error(&s.errors, "\"a:\": empty domain"));
    assert!(has_error(&s.errors, "all takes no argument"));
    assert!(has_error(&s.errors, "ptr takes no CIDR length"));
}

#[test]
fn too_many_lookups() {
    let includes: Vec<String> = (0..11).map(|i| format!("include:s{i}.corp.test")).collect();
    let s = spf(&format!("v=spf1 {} -all", includes.join(" ")));
    assert_eq!(s.lookup_count, 11);
    assert!(s.too_many_lookups);
    assert!(has_error(&s.errors, "limit 10"));

    let s = spf(
        "v=spf1 a mx ptr exists:%{i}.x.test include:a.test include:b.test include:c.test \
                 include:d.test include:e.test redirect=f.test",
    );
    assert_eq!(s.lookup_count, 10);
    assert!(!s.too_many_lookups, "10 is allowed");
    let s = spf("v=spf1 ip4:192.0.2.1 ip6:2001:db8::1 -all");
    assert_eq!(s.lookup_count, 0);
}

#[test]
fn unknown_terms_are_kept() {
    let s = spf("v=spf1 moo=cow foo:bar include:x.test 1bad=x ~all");
    assert_eq!(s.unknown, ["moo=cow", "foo:bar", "1bad=x"]);
    assert!(has_error(&s.errors, "unknown mechanism \"foo:bar\""));
    assert!(has_error(&s.errors, "malformed term \"1bad=x\""));
    assert!(!has_error(&s.errors, "moo"), "unknown modifiers are legal");
    assert_eq!(s.terms.len(), 2);
}

#[test]
fn spf_is_bounded() {
    let many = "ip4:192.0.2.1 ".repeat(300);
    let s = spf(&format!("v=spf1 {many}-all"));
    assert!(s.truncated);
    assert!(s.terms.len() <= MAX_TERMS);
    assert_eq!(s.all, None, "the all after the cut was never seen");

    let long = format!("v=spf1 include:{}.test", "a".repeat(5000));
    let s = spf(&long);
    assert!(s.truncated);
    assert!(has_error(&s.errors, "5020 bytes"));

    let wide = format!("v=spf1 {}", "a ".repeat(3000));
    let s = spf(&wide);
    assert!(s.truncated);
    assert_eq!(s.terms.len(), MAX_TERMS);
}

#[test]
fn spf_serde_round_trip() {
    let s = spf("v=spf1 ip4:192.0.2.0/24 include:_spf.google.com ~all");
    let json = serde_json::to_string(&s).unwrap_or_default();
    assert!(json.contains("\"all\":\"softfail\""), "{json}");
    assert!(json.contains("\"kind\":\"ip4\""), "{json}");
    let back: Spf = serde_json::from_str(&json).unwrap_or_default();
    assert_eq!(back, s);
}

#[test]
fn dmarc_full_record() {
    let d = dmarc("v=DMARC1; p=reject; sp=quarantine; pct=100; rua=mailto:dmarc@corp.test,mailto:agg@vendor.test!10m; \
                   ruf=mailto:forensic@corp.test; adkim=s; aspf=r; fo=1:d; ri=3600");
    assert_eq!(d.p, Some(DmarcPolicy::Reject));
    assert_eq!(d.sp, Some(DmarcPolicy::Quarantine));
    assert_eq!(d.subdomain_policy(), Some(DmarcPolicy::Quarantine));
    assert_eq!(d.pct, Some(100));
    assert_eq!(
        d.rua,
        ["mailto:dmarc@corp.test", "mailto:agg@vendor.test!10m"]
    );
    assert_eq!(d.ruf, ["mailto:forensic@corp.test"]);
    assert_eq!(d.adkim, Some(Alignment::Strict));
    assert_eq!(d.aspf, Some(Alignment::Relaxed));
    assert_eq!(d.fo.as_deref(), Some("1:d"));
    assert_eq!(d.ri, Some(3600));
    assert!(d.enforcing);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
}

#[test]
fn dmarc_monitoring_only() {
    let d = dmarc("v=DMARC1; p=none; rua=mailto:dmarc_agg@vali.email");
    assert_eq!(d.p, Some(DmarcPolicy::None));
    assert_eq!(d.subdomain_policy(), Some(DmarcPolicy::None));
    assert!(!d.enforcing);
    assert!(d.errors.is_empty());
}

#[test]
fn dmarc_partial_pct_does_not_enforce() {
    let d = dmarc("v=DMARC1; p=quarantine; pct=25");
    assert_eq!(d.pct, Some(25));
    assert!(!d.enforcing);
    assert!(
        dmarc("v=DMARC1; p=quarantine").enforcing,
        "pct defaults to 100"
    );
    let d = dmarc("v=DMARC1; p=reject; pct=150");
    assert!(!d.enforcing);
    assert!(has_error(&d.errors, "pct \"150\""));
}

#[test]
fn dmarc_lenient_spelling() {
    let d = dmarc("v = dmarc1 ; P = Reject ;; ADKIM=S;");
    assert_eq!(d.p, Some(DmarcPolicy::Reject));
    assert_eq!(d.adkim, Some(Alignment::Strict));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
}

#[test]
fn dmarc_missing_or_invalid_p() {
    let d = dmarc("v=DMARC1; rua=mailto:d@corp.test");
    assert_eq!(d.p, None);
    assert!(!d.enforcing);
    assert!(has_error(&d.errors, "no p tag"));

    let d = dmarc("v=DMARC1; p=block");
    assert_eq!(d.p, None);
    assert!(has_error(
        &d.errors,
        "p \"block\" is not none, quarantine or reject"
    ));
    assert!(!d.enforcing);
}

#[test]
fn dmarc_broken_tags() {
    let d = dmarc(
        "v=DMARC1; p=reject; p=none; adkim=x; fo=2; ri=daily; rua=dmarc@corp.test; ruf=; \
                   garbage; np=reject; t=y; v=DMARC1",
    );
    assert_eq!(d.p, Some(DmarcPolicy::Reject), "the first p counts");
    assert!(has_error(&d.errors, "tag \"p\" appears more than once"));
    assert!(has_error(&d.errors, "adkim \"x\" is not r or s"));
    assert!(has_error(&d.errors, "fo \"2\""));
    assert!(has_error(&d.errors, "ri \"daily\""));
    assert!(has_error(
        &d.errors,
        "rua entry \"dmarc@corp.test\" is not a URI"
    ));
    assert!(has_error(&d.errors, "ruf is empty"));
    assert!(has_error(&d.errors, "malformed tag \"garbage\""));
    assert!(has_error(&d.errors, "v appears again"));
    assert_eq!(
        d.unknown,
        [
            ("np".to_owned(), "reject".to_owned()),
            ("t".to_owned(), "y".to_owned())
        ]
    );
    assert!(d.enforcing, "broken optional tags don't undo p=reject");
}

#[test]
fn not_dmarc() {
    for txt in [
        "",
        "v=spf1 -all",
        "p=reject; v=DMARC1",
        "v=DMARC2; p=reject",
        "v=DMARC1p=reject",
        "DMARC1; p=reject",
    ] {
        assert_eq!(parse_dmarc(txt), None, "{txt:?}");
    }
}

#[test]
fn dmarc_is_bounded() {
    let many = "x=y; ".repeat(400);
    let d = dmarc(&format!("v=DMARC1; {many}p=reject"));
    assert!(d.truncated);
    assert!(d.unknown.len() <= MAX_TERMS);
    let long = format!("v=DMARC1; p=reject; rua={}", "mailto:a@b.test,".repeat(400));
    let d = dmarc(&long);
    assert!(d.truncated);
    assert_eq!(d.p, Some(DmarcPolicy::Reject));
}

#[test]
fn dmarc_serde_round_trip() {
    let d = dmarc("v=DMARC1; p=quarantine; adkim=s; np=reject");
    let json = serde_json::to_string(&d).unwrap_or_default();
    assert!(json.contains("\"p\":\"quarantine\""), "{json}");
    let back: Dmarc = serde_json::from_str(&json).unwrap_or_default();
    assert_eq!(back, d);
}

#[test]
fn join_concatenates_without_separator() {
    let parts = vec![
        b"v=spf1 include:_spf.google.com".to_vec(),
        b" ~all".to_vec(),
    ];
    assert_eq!(
        join_txt_strings(&parts),
        "v=spf1 include:_spf.google.com ~all"
    );
    // A long record split mid-token, as DNS hosting panels do at 255 bytes.
    let parts = vec![b"v=spf1 ip4:192.0".to_vec(), b".2.1 -all".to_vec()];
    assert_eq!(spf(&join_txt_strings(&parts)).ip4, ["192.0.2.1"]);
    assert_eq!(join_txt_strings(&[]), "");
}

#[test]
fn join_escapes_like_zone_files() {
    let parts = vec![b"a\x00b\xffc\\d\"e\tf".to_vec(), "ü".as_bytes().to_vec()];
    assert_eq!(
        join_txt_strings(&parts),
        "a\\000b\\255c\\\\d\"e\\009f\\195\\188"
    );
}

#[test]
fn join_is_capped() {
    let parts = vec![vec![b'a'; 3000]; 3];
    assert_eq!(join_txt_strings(&parts).len(), MAX_TXT_LEN);
    // 4096 is not a multiple of 4: the last escape that would not fit is dropped whole.
    let parts = vec![vec![0xffu8; 1025]; 2];
    let joined = join_txt_strings(&parts);
    assert_eq!(joined.len(), 4096);
    assert!(joined.ends_with("\\255"));
    let parts = vec![b"x".to_vec(), vec![0u8; 2000]];
    let joined = join_txt_strings(&parts);
    assert_eq!(joined.len(), 4093);
}

/// Inverse of the escaping, for checking that nothing is lost or invented.
fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
            } else {
                let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("x");
                out.push(
                    digits
                        .parse::<u8>()
                        .unwrap_or_else(|_| panic!("bad escape in {text}")),
                );
                i += 4;
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// A generous ceiling on what a parse result can weigh, whatever the input.
const MAX_RESULT_JSON: usize = 64 * MAX_TXT_LEN;

fn check_spf(input: &str) -> Result<(), TestCaseError> {
    if let Some(s) = parse_spf(input) {
        prop_assert!(s.terms.len() <= MAX_TERMS);
        prop_assert!(s.unknown.len() <= MAX_TERMS);
        prop_assert!(s.terms.len() + s.unknown.len() <= MAX_TERMS);
        prop_assert!(s.includes.len() + s.ip4.len() + s.ip6.len() <= MAX_TERMS);
        prop_assert_eq!(s.permissive, s.all == Some(SpfQualifier::Pass));
        prop_assert_eq!(s.too_many_lookups, s.lookup_count > SPF_LOOKUP_LIMIT);
        let json = serde_json::to_string(&s).unwrap_or_default();
        prop_assert!(json.len() <= MAX_RESULT_JSON, "{} bytes", json.len());
    }
    Ok(())
}

fn check_dmarc(input: &str) -> Result<(), TestCaseError> {
    if let Some(d) = parse_dmarc(input) {
        prop_assert!(d.unknown.len() <= MAX_TERMS);
        prop_assert!(d.rua.len() + d.ruf.len() <= MAX_TXT_LEN);
        if d.enforcing {
            prop_assert!(matches!(
                d.p,
                Some(DmarcPolicy::Quarantine | DmarcPolicy::Reject)
            ));
        }
        let json = serde_json::to_string(&d).unwrap_or_default();
        prop_assert!(json.len() <= MAX_RESULT_JSON, "{} bytes", json.len());
    }
    Ok(())
}

const SPF_SEEDS: &[&str] = &[
    "v=spf1 include:_spf.google.com ~all",
    "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx:mail.corp.test/24//64 ptr exists:%{i}.x.test ?all",
    "v=spf1 redirect=_spf.corp.test exp=explain.corp.test",
];

const DMARC_SEEDS: &[&str] = &[
    "v=DMARC1; p=reject; sp=none; pct=50; rua=mailto:a@corp.test!10m; ruf=mailto:b@corp.test",
    "v=DMARC1; p=quarantine; adkim=s; aspf=r; fo=0:1:d:s; ri=86400; np=reject",
];

/// A seed record with a few random edits: the shapes parsers mostly see, slightly off.
fn mutated(seeds: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        prop::sample::select(seeds),
        prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 0..8),
    )
        .prop_map(|(seed, edits)| {
            let mut chars: Vec<char> = seed.chars().collect();
            for (at, op, ch) in edits {
                if chars.is_empty() {
                    chars.push(ch);
                    continue;
                }
                let i = at.index(chars.len());
                match op {
                    0 => chars.insert(i, ch),
                    1 => {
                        chars.remove(i);
                    }
                    _ => chars[i] = ch,
                }
            }
            chars.into_iter().collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn spf_never_panics_on_any_string(input in any::<String>()) {
        check_spf(&input)?;
        check_spf(&format!("v=spf1 {input}"))?;
    }

    #[test]
    fn spf_never_panics_on_mutated_records(input in mutated(SPF_SEEDS)) {
        check_spf(&input)?;
    }

    #[test]
    fn dmarc_never_panics_on_any_string(input in any::<String>()) {
        check_dmarc(&input)?;
        check_dmarc(&format!("v=DMARC1; {input}"))?;
    }

    #[test]
    fn dmarc_never_panics_on_mutated_records(input in mutated(DMARC_SEEDS)) {
        check_dmarc(&input)?;
    }
}

// Fewer cases for the big generated inputs: each is hundreds of terms or kilobytes, and
// every case already goes past the term or byte limits.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn spf_never_panics_on_term_soup(
        terms in prop::collection::vec("[-+~?]?[a-z0-9]{0,8}[:=/]?[a-z0-9.:/%{}_-]{0,20}", 0..400)
    ) {
        check_spf(&format!("v=spf1 {}", terms.join(" ")))?;
    }

    #[test]
    fn dmarc_never_panics_on_tag_soup(
        tags in prop::collection::vec("[a-zA-Z ]{0,6}=?[a-z0-9:@.,!_ -]{0,20}", 0..400)
    ) {
        check_dmarc(&format!("v=DMARC1; {}", tags.join(";")))?;
    }

    #[test]
    fn huge_records_stay_bounded(unit in "[ -~]{1,12}", repeat in 300usize..3000) {
        let body = unit.repeat(repeat);
        check_spf(&format!("v=spf1 {body}"))?;
        check_dmarc(&format!("v=DMARC1; {body}"))?;
    }

    #[test]
    fn join_is_bounded_printable_and_lossless(
        parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..1500), 0..8)
    ) {
        let joined = join_txt_strings(&parts);
        prop_assert!(joined.len() <= MAX_TXT_LEN);
        prop_assert!(joined.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        let all: Vec<u8> = parts.concat();
        let back = unescape(&joined);
        prop_assert!(all.starts_with(&back), "the output decodes to a prefix of the input");
        // Only cut when the next byte's escape would not have fitted.
        if back.len() < all.len() {
            prop_assert!(joined.len() > MAX_TXT_LEN - 4);
        }
    }
}
