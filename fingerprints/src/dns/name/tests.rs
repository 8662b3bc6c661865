use super::*;
use proptest::prelude::*;

fn name(s: &str) -> DomainName {
    DomainName::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn err(s: &str) -> NameError {
    match DomainName::parse(s) {
        Ok(n) => panic!("{s:?} should not parse, got {n}"),
        Err(e) => e,
    }
}

#[test]
fn ascii_names_are_lowercased_and_lose_the_trailing_dot() {
    assert_eq!(name("WWW.Corp.Test.").ascii(), "www.corp.test");
    assert_eq!(name("localhost").ascii(), "localhost");
    assert_eq!(name("a-b--c.corp.test").ascii(), "a-b--c.corp.test");
    assert_eq!(name("1.2.3.4.in-addr.arpa").ascii(), "1.2.3.4.in-addr.arpa");
    assert_eq!(name("www.corp.test"), name("www.corp.test."));
}

#[test]
fn idn_round_trips() {
    let cases = [
        ("bücher.example", "xn--bcher-kva.example"),
        ("Bücher.Example.", "xn--bcher-kva.example"),
        ("café.example", "xn--caf-dma.example"),
        ("例子.测试", "xn--fsqu00a.xn--0zwm56d"),
        ("пример.испытание", "xn--e1afmkfd.xn--80akhbyknj4f"),
        ("президент.рф", "xn--d1abbgf6aiiy.xn--p1ai"),
    ];
    for (unicode, ascii) in cases {
        let n = name(unicode);
        assert_eq!(n.ascii(), ascii, "{unicode}");
        assert_eq!(n.unicode(), unicode.to_lowercase().trim_end_matches('.'));
        assert_eq!(name(ascii), n, "the punycode form parses to the same name");
        assert!(n.is_hostname());
    }
}

#[test]
fn idn_processing_is_non_transitional() {
    // Transitional processing (IDNA 2003) would turn ß into ss: a different domain.
    assert_eq!(name("faß.de").ascii(), "xn--fa-hia.de");
    assert_eq!(name("faß.de").unicode(), "faß.de");
}

#[test]
fn uts46_mapping_applies() {
    // Full-width letters and the ideographic full stop, as typed with a CJK IME.
    assert_eq!(name("ｅｘａｍｐｌｅ．ｃｏｍ").ascii(), "example.com");
    assert_eq!(name("例子。测试").ascii(), "xn--fsqu00a.xn--0zwm56d");
}

#[test]
fn unicode_falls_back_to_ascii_for_plain_names() {
    assert_eq!(name("www.corp.test").unicode(), "www.corp.test");
    assert_eq!(name("_dmarc.corp.test").unicode(), "_dmarc.corp.test");
}

#[test]
fn underscore_labels_are_names_but_not_hostnames() {
    for s in [
        "_dmarc.corp.test",
        "_sip._tcp.corp.test",
        "sel1._domainkey.corp.test",
    ] {
        let n = name(s);
        assert_eq!(n.ascii(), s);
        assert!(!n.is_hostname(), "{s}");
    }
    assert!(name("mail-1.corp.test").is_hostname());
}

#[test]
fn error_empty() {
    assert_eq!(err(""), NameError::Empty);
    assert_eq!(err("."), NameError::Empty);
    assert!(err("").to_string().contains("empty"));
}

#[test]
fn error_input_too_long() {
    let long = "a.".repeat(600);
    assert_eq!(err(&long), NameError::InputTooLong { len: 1200 });
    assert!(err(&long).to_string().contains("1200 bytes"));
}

#[test]
fn error_empty_label() {
    assert_eq!(err("a..b"), NameError::EmptyLabel { position: 2 });
    assert_eq!(err(".corp.test"), NameError::EmptyLabel { position: 1 });
    // Only one trailing dot is the root; a second one is an empty label.
    assert_eq!(err("corp.test.."), NameError::EmptyLabel { position: 3 });
    assert!(err("a..b").to_string().contains("label 2 is empty"));
}

#[test]
fn error_label_too_long() {
    let label = "a".repeat(64);
    let e = err(&format!("{label}.corp.test"));
    assert_eq!(
        e,
        NameError::LabelTooLong {
            label: label.clone(),
            len: 64
        }
    );
    let message = e.to_string();
    assert!(
        message.contains("64 bytes") && message.contains(&label),
        "{message}"
    );
    // 63 is the limit, inclusive.
    assert!(DomainName::parse(&format!("{}.corp.test", "a".repeat(63))).is_ok());
}

#[test]
fn error_label_too_long_after_punycode() {
    // 30 distinct CJK characters: 30 characters, 90 bytes of UTF-8, and more than 63
    // bytes of punycode.
    let label: String = (0..30u32)
        .filter_map(|i| char::from_u32(0x4E00 + i * 97))
        .collect();
    let e = err(&format!("{label}.example"));
    match e {
        NameError::LabelTooLong { label, len } => {
            assert!(label.starts_with("xn--"));
            assert!(len > 63);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_name_too_long() {
    let label = "a".repeat(63);
    let ok = format!("{label}.{label}.{label}.{}", "b".repeat(61)); // 253 bytes
    assert_eq!(ok.len(), 253);
    assert_eq!(name(&ok).ascii().len(), 253);
    assert_eq!(name(&format!("{ok}.")).ascii().len(), 253);
    let too_long = format!("{label}.{label}.{label}.{}", "b".repeat(62));
    assert_eq!(err(&too_long), NameError::NameTooLong { len: 254 });
    assert!(err(&too_long).to_string().contains("254 bytes"));
}

#[test]
fn error_invalid_character() {
    assert_eq!(
        err("a b.corp.test"),
        NameError::InvalidCharacter {
            label: "a b".into(),
            ch: ' '
        }
    );
    assert_eq!(
        err("*.corp.test"),
        NameError::InvalidCharacter {
            label: "*".into(),
            ch: '*'
        }
    );
    assert!(matches!(
        err("user@corp.test"),
        NameError::InvalidCharacter { ch: '@', .. }
    ));
    assert!(matches!(
        err("corp.test/path"),
        NameError::InvalidCharacter { ch: '/', .. }
    ));
    assert!(matches!(
        err(" corp.test"),
        NameError::InvalidCharacter { ch: ' ', .. }
    ));
    assert!(matches!(
        err("corp.test\n"),
        NameError::InvalidCharacter { ch: '\n', .. }
    ));
    // Quoted as typed, not as punycode.
    assert_eq!(
        err("bü cher.example"),
        NameError::InvalidCharacter {
            label: "bü cher".into(),
            ch: ' '
        }
    );
    // Full-width punctuation maps to ASCII under UTS 46 and is caught after mapping.
    assert!(matches!(
        err("＊.corp.test"),
        NameError::InvalidCharacter { ch: '*', .. }
    ));
    let message = err("a b.corp.test").to_string();
    assert!(
        message.contains("\"a b\"") && message.contains("' '"),
        "{message}"
    );
}

#[test]
fn error_hyphen_at_edge() {
    assert_eq!(
        err("-www.corp.test"),
        NameError::HyphenAtEdge {
            label: "-www".into()
        }
    );
    assert_eq!(
        err("www.corp-.test"),
        NameError::HyphenAtEdge {
            label: "corp-".into()
        }
    );
}

#[test]
fn error_numeric_tld() {
    assert_eq!(
        err("192.0.2.1"),
        NameError::NumericTld { label: "1".into() }
    );
    assert!(matches!(err("12345"), NameError::NumericTld { .. }));
    assert!(err("192.0.2.1").to_string().contains("IP address"));
}

#[test]
fn error_idna() {
    // A label may not start with a combining mark (UTS 46 §4.1 criterion 5).
    let e = err("\u{0301}x.corp.test");
    assert_eq!(
        e,
        NameError::Idna {
            label: "\u{0301}x".into()
        }
    );
    // Punycode that does not decode.
    assert!(matches!(err("xn--a.corp.test"), NameError::Idna { label } if label == "xn--a"));
    // ZERO WIDTH JOINER outside the contexts where it is allowed (CONTEXTJ).
    assert!(matches!(err("a\u{200D}b.test"), NameError::Idna { .. }));
}

#[test]
fn error_not_a_label() {
    let parent = name("corp.test");
    assert_eq!(
        parent.child("a.b"),
        Err(NameError::NotALabel {
            label: "a.b".into()
        })
    );
    assert!(matches!(
        parent.child("a。b"),
        Err(NameError::NotALabel { .. })
    ));
    assert!(matches!(
        parent.child("www."),
        Err(NameError::NotALabel { .. })
    ));
}

#[test]
fn error_messages_quote_bounded_labels() {
    let e = err(&format!("{}.test", "x".repeat(500)));
    assert!(e.to_string().len() < 200, "{e}");
}

#[test]
fn labels_and_parent() {
    let n = name("www.eu.corp.test");
    assert_eq!(
        n.labels().collect::<Vec<_>>(),
        ["www", "eu", "corp", "test"]
    );
    assert_eq!(n.labels().next_back(), Some("test"));
    assert_eq!(n.label_count(), 4);
    let parent = n.parent();
    assert_eq!(parent, Some(name("eu.corp.test")));
    assert_eq!(name("test").parent(), None);
    assert_eq!(name("corp.test").parent(), Some(name("test")));
}

#[test]
fn subdomains_are_compared_label_wise() {
    let corp = name("corp.test");
    assert!(name("www.corp.test").is_subdomain_of(&corp));
    assert!(name("a.b.corp.test").is_subdomain_of(&corp));
    assert!(corp.is_subdomain_of(&corp));
    assert!(!name("notcorp.test").is_subdomain_of(&corp));
    assert!(!name("corp.test.evil").is_subdomain_of(&corp));
    assert!(!name("test").is_subdomain_of(&corp));
    assert!(name("Bücher.corp.test").is_subdomain_of(&corp));
}

#[test]
fn child_prepends_and_validates() {
    let corp = name("corp.test");
    assert_eq!(corp.child("www"), Ok(name("www.corp.test")));
    assert_eq!(corp.child("_dmarc"), Ok(name("_dmarc.corp.test")));
    assert_eq!(corp.child("Bücher"), Ok(name("xn--bcher-kva.corp.test")));
    assert_eq!(corp.child("123"), Ok(name("123.corp.test")));
    assert_eq!(corp.child(""), Err(NameError::EmptyLabel { position: 1 }));
    assert!(matches!(
        corp.child("-x"),
        Err(NameError::HyphenAtEdge { .. })
    ));
    assert!(matches!(
        corp.child(&"a".repeat(64)),
        Err(NameError::LabelTooLong { .. })
    ));
    assert!(matches!(
        corp.child("a b"),
        Err(NameError::InvalidCharacter { .. })
    ));
    let long = name(&format!(
        "{0}.{0}.{0}.{1}.test",
        "a".repeat(63),
        "c".repeat(50)
    ));
    assert_eq!(long.ascii().len(), 247);
    assert!(matches!(
        long.child("abcdef"),
        Err(NameError::NameTooLong { .. })
    ));
}

#[test]
fn zone_apex_is_the_longest_match() {
    let zones = [
        name("test"),
        name("corp.test"),
        name("eu.corp.test"),
        name("notcorp.test"),
    ];
    let apex = |s: &str| name(s).zone_apex_of(&zones).map(DomainName::ascii);
    assert_eq!(apex("www.eu.corp.test"), Some("eu.corp.test"));
    assert_eq!(apex("eu.corp.test"), Some("eu.corp.test"));
    assert_eq!(apex("www.corp.test"), Some("corp.test"));
    assert_eq!(apex("other.test"), Some("test"));
    assert_eq!(apex("www.notcorp.test"), Some("notcorp.test"));
    assert_eq!(apex("corp.example"), None);
    assert_eq!(name("www.corp.test").zone_apex_of(&[]), None);
}

#[test]
fn serde_uses_the_ascii_string_and_validates() {
    let n = name("Bücher.Example");
    let json = serde_json::to_string(&n).unwrap_or_default();
    assert_eq!(json, "\"xn--bcher-kva.example\"");
    let back: DomainName = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, n);
    assert!(serde_json::from_str::<DomainName>("\"a..b\"").is_err());
    assert_eq!(n.to_string(), "xn--bcher-kva.example");
    assert_eq!("corp.test".parse::<DomainName>(), Ok(name("corp.test")));
}

#[test]
fn random_labels_are_valid_and_deterministic() {
    let parent = name("corp.test");
    let mut seen = std::collections::HashSet::new();
    for seed in 0..500u64 {
        let label = random_label(seed);
        assert_eq!(label, random_label(seed));
        assert!((12..=16).contains(&label.len()), "{label}");
        assert!(label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert!(label.as_bytes()[0].is_ascii_lowercase());
        assert!(parent.child(&label).is_ok());
        seen.insert(label);
    }
    assert_eq!(seen.len(), 500, "consecutive seeds give distinct labels");
    let lengths: std::collections::HashSet<usize> =
        (0..200).map(|s| random_label(s).len()).collect();
    assert_eq!(lengths.len(), 5, "every length from 12 to 16 occurs");
}

fn check_invariants(input: &str) -> Result<(), TestCaseError> {
    if let Ok(n) = DomainName::parse(input) {
        let ascii = n.ascii();
        prop_assert!(ascii.len() <= MAX_NAME_LEN);
        prop_assert!(ascii.is_ascii());
        prop_assert!(!ascii.ends_with('.'));
        for label in n.labels() {
            prop_assert!(!label.is_empty() && label.len() <= MAX_LABEL_LEN);
        }
        prop_assert_eq!(DomainName::parse(ascii), Ok(n.clone()));
        prop_assert_eq!(DomainName::parse(&n.unicode()), Ok(n.clone()));
        if let Some(parent) = n.parent() {
            prop_assert!(n.is_subdomain_of(&parent));
            prop_assert_eq!(DomainName::parse(parent.ascii()), Ok(parent.clone()));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_string_never_panics(input in any::<String>()) {
        check_invariants(&input)?;
    }

    #[test]
    fn ascii_like_names(input in "[a-zA-Z0-9_.*-]{0,300}") {
        check_invariants(&input)?;
    }

    #[test]
    fn unicode_like_names(
        labels in prop::collection::vec("[a-zßüéа-я一-龥ـا-ي\u{0300}\u{200D}0-9_-]{0,30}", 1..8),
        dot in prop::sample::select(vec![".", "。", "．"]),
        trailing in any::<bool>(),
    ) {
        let mut input = labels.join(dot);
        if trailing {
            input.push('.');
        }
        check_invariants(&input)?;
    }

    #[test]
    fn child_of_valid_name(label in any::<String>(), seed in any::<u64>()) {
        let parent = DomainName::parse("corp.test").map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Ok(child) = parent.child(&label) {
            prop_assert_eq!(child.parent(), Some(parent.clone()));
            check_invariants(child.ascii())?;
        }
        prop_assert!(parent.child(&random_label(seed)).is_ok());
    }
}
