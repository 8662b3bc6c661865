use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn builtin() -> Identifier {
    Identifier::builtin().expect("builtin rules parse")
}

fn text_banner(protocol: &str, text: &str) -> Banner {
    Banner {
        protocol: protocol.into(),
        text: text.into(),
        ..Banner::default()
    }
}

fn field_banner(protocol: &str, field: &str, value: &str) -> Banner {
    let mut b = text_banner(protocol, "");
    b.fields.insert(field.into(), value.into());
    b
}

/// The banner a rule's example stands for.
fn example_banner(rule: &Rule) -> Banner {
    let example = rule.example().unwrap_or_default();
    match rule.source() {
        Source::Text => text_banner(rule.protocol(), example),
        Source::Field(f) => field_banner(rule.protocol(), f, example),
    }
}

/// Splits a CPE 2.3 formatted string on the colons that are not escaped.
fn cpe_components(cpe: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = cpe.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let last = parts.last_mut().expect("non-empty");
                last.push('\\');
                if let Some(n) = chars.next() {
                    last.push(n);
                }
            }
            ':' => parts.push(String::new()),
            _ => parts.last_mut().expect("non-empty").push(c),
        }
    }
    parts
}

#[test]
fn builtin_rules_parse() {
    let id = Identifier::builtin();
    assert!(id.is_ok(), "{:?}", id.err());
}

#[test]
fn every_rule_example_yields_its_expected_version() {
    let ids = builtin();
    for rule in ids.rules() {
        let example = rule
            .example()
            .unwrap_or_else(|| panic!("rule {} has no example", rule.id()));
        let want = rule
            .expect_version()
            .unwrap_or_else(|| panic!("rule {} has no expect_version", rule.id()));
        let m = rule
            .apply_example()
            .unwrap_or_else(|| panic!("rule {}: example {example:?} does not match", rule.id()));
        let want = Some(want.to_string()).filter(|w| !w.is_empty());
        assert_eq!(m.version, want, "rule {}", rule.id());
        assert_eq!(
            rule.apply(&example_banner(rule)),
            Some(m),
            "rule {}",
            rule.id()
        );
    }
}

#[test]
fn every_example_identifies_as_its_own_product() {
    // Through the whole rule set: no other rule may outrank a rule on its own example
    // with a different product.
    let ids = builtin();
    for rule in ids.rules() {
        let got = ids
            .identify(&example_banner(rule))
            .unwrap_or_else(|| panic!("rule {}: no identification", rule.id()));
        assert_eq!(
            got.product.as_deref(),
            rule.product(),
            "rule {} -> {got:?}",
            rule.id()
        );
        assert_eq!(got.origin, Origin::Rule);
    }
}

#[test]
fn rule_set_size_ids_risk_and_cpes() {
    let ids = builtin();
    let rules = ids.rules();
    let unique: BTreeSet<&str> = rules.iter().map(|r| r.id()).collect();
    assert_eq!(unique.len(), rules.len(), "ids must be unique");
    let products: BTreeSet<&str> = rules.iter().filter_map(|r| r.product()).collect();
    assert!(rules.len() >= 70, "{} rules", rules.len());
    assert!(products.len() >= 60, "{} products", products.len());
    for rule in rules {
        assert_ne!(
            rule.risk(),
            RiskClass::Unknown,
            "rule {} needs a risk class",
            rule.id()
        );
        assert!(
            rule.product().is_some(),
            "rule {} names no product",
            rule.id()
        );
        let m = rule.apply_example().expect("checked above");
        if let Some(cpe) = m.cpe {
            assert!(
                cpe.starts_with("cpe:2.3:a:") || cpe.starts_with("cpe:2.3:o:"),
                "{cpe}"
            );
            assert_eq!(cpe_components(&cpe).len(), 13, "rule {}: {cpe}", rule.id());
            assert!(!cpe.contains('$'), "rule {}: {cpe}", rule.id());
        }
        for v in [m.version, m.os].into_iter().flatten() {
            assert!(
                !v.contains('$'),
                "rule {}: unfilled template {v}",
                rule.id()
            );
        }
    }
}

#[test]
fn openssh_debian_and_ubuntu() {
    let ids = builtin();
    let id = ids
        .identify(&text_banner(
            "ssh",
            "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3",
        ))
        .expect("id");
    assert_eq!(id.product.as_deref(), Some("OpenSSH"));
    assert_eq!(id.version.as_deref(), Some("9.2p1"));
    assert_eq!(id.os.as_deref(), Some("Debian"));
    assert_eq!(
        id.cpe.as_deref(),
        Some("cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*")
    );
    assert_eq!(id.risk, RiskClass::RemoteAdministration);
    assert_eq!(id.rule_id.as_deref(), Some("ssh-openssh-debian"));
    assert!(!id.cleartext_auth);

    // Pre-2010 Ubuntu spelled its packages "Debian-...ubuntu...": the more specific rule wins.
    let id = ids
        .identify(&text_banner(
            "ssh",
            "SSH-2.0-OpenSSH_5.3p1 Debian-3ubuntu7.1",
        ))
        .expect("id");
    assert_eq!(id.os.as_deref(), Some("Ubuntu"));

    let id = ids
        .identify(&text_banner("ssh", "SSH-2.0-OpenSSH_7.4"))
        .expect("id");
    assert_eq!(id.os, None);
    assert_eq!(
        id.cpe.as_deref(),
        Some("cpe:2.3:a:openbsd:openssh:7.4:*:*:*:*:*:*:*")
    );
}

#[test]
fn missing_capture_leaves_fields_empty() {
    let ids = builtin();
    let id = ids
        .identify(&field_banner("http", "server", "nginx"))
        .expect("nginx");
    assert_eq!(id.product.as_deref(), Some("nginx"));
    assert_eq!(id.version, None);
    assert_eq!(id.cpe, None, "a CPE without its version capture is dropped");
    let id = ids
        .identify(&text_banner(
            "ftp",
            "220 ProFTPD Server (ProFTPD Default Installation) [198.18.0.3]\\r\\n",
        ))
        .expect("proftpd");
    assert_eq!(id.product.as_deref(), Some("ProFTPD"));
    assert_eq!(id.os, None);
}

#[test]
fn ftp_and_mail_cleartext_flags() {
    let ids = builtin();
    let mut b = text_banner("ftp", "220 (vsFTPd 3.0.3)\\r\\n");
    let id = ids.identify(&b).expect("vsftpd");
    assert_eq!(id.product.as_deref(), Some("vsftpd"));
    assert_eq!(
        id.cpe.as_deref(),
        Some("cpe:2.3:a:beasts:vsftpd:3.0.3:*:*:*:*:*:*:*")
    );
    assert_eq!(id.risk, RiskClass::FileTransfer);
    assert!(id.cleartext_auth, "no AUTH TLS offered");
    b.starttls = Some(true);
    assert!(!ids.identify(&b).expect("vsftpd").cleartext_auth);

    let mut imap = text_banner(
        "imap",
        "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] Dovecot ready.\\r\\n",
    );
    imap.starttls = Some(false);
    let id = ids.identify(&imap).expect("dovecot");
    assert_eq!(id.product.as_deref(), Some("Dovecot"));
    assert_eq!(id.os, None);
    assert!(id.cleartext_auth);
}

#[test]
fn databases_caches_and_dns() {
    let ids = builtin();
    let id = ids
        .identify(&field_banner(
            "mysql",
            "version",
            "5.5.5-10.11.6-MariaDB-0+deb12u1",
        ))
        .expect("mariadb");
    assert_eq!(
        (
            id.product.as_deref(),
            id.version.as_deref(),
            id.os.as_deref()
        ),
        (Some("MariaDB"), Some("10.11.6"), Some("Debian"))
    );
    let id = ids
        .identify(&field_banner("mysql", "version", "8.0.36"))
        .expect("mysql");
    assert_eq!(id.product.as_deref(), Some("MySQL"));
    assert_eq!(id.risk, RiskClass::Database);

    let id = ids
        .identify(&field_banner("dns", "version", "9.18.28-1~deb12u2-Debian"))
        .expect("bind");
    assert_eq!(id.product.as_deref(), Some("BIND"));
    assert_eq!(id.version.as_deref(), Some("9.18.28"));
    assert_eq!(id.risk, RiskClass::NameService);
    let id = ids
        .identify(&field_banner("dns", "version", "9.11.5-P4"))
        .expect("bind");
    assert_eq!(
        id.cpe.as_deref(),
        Some("cpe:2.3:a:isc:bind:9.11.5:p4:*:*:*:*:*:*")
    );

    let mut redis = field_banner("redis", "redis_version", "7.2.4");
    redis.fields.insert("valkey_version".into(), "8.0.1".into());
    let id = ids.identify(&redis).expect("valkey");
    assert_eq!(id.product.as_deref(), Some("Valkey"));
    assert_eq!(id.risk, RiskClass::Cache);
}

#[test]
fn http_application_outranks_server_and_identify_all_lists_both() {
    let ids = builtin();
    let mut b = text_banner(
        "http",
        "HTTP/1.1 200 OK\\r\\nServer: nginx/1.22.1\\r\\nX-Jenkins: 2.440.3\\r\\n\\r\\n",
    );
    b.fields.insert("server".into(), "nginx/1.22.1".into());
    b.fields.insert("x-jenkins".into(), "2.440.3".into());
    let id = ids.identify(&b).expect("jenkins");
    assert_eq!(id.product.as_deref(), Some("Jenkins"));
    assert_eq!(id.service, "jenkins");
    assert_eq!(id.risk, RiskClass::RemoteAdministration);
    let all = ids.identify_all(&b);
    let products: Vec<_> = all.iter().filter_map(|i| i.product.as_deref()).collect();
    assert_eq!(products, vec!["Jenkins", "nginx"]);

    let docker = field_banner("http", "server", "Docker/24.0.7 (linux)");
    let id = ids.identify(&docker).expect("docker");
    assert_eq!(id.risk, RiskClass::ContainerOrchestration);
    assert_eq!(id.service, "docker");
}

#[test]
fn protocol_fallback_when_nothing_matches() {
    let ids = builtin();
    let id = ids
        .identify(&text_banner("ssh", "SSH-2.0-SomethingNew_1.0"))
        .expect("fallback");
    assert_eq!(id.service, "ssh");
    assert_eq!(id.product, None);
    assert_eq!(id.rule_id, None);
    assert_eq!(id.origin, Origin::Protocol);
    assert_eq!(id.risk, RiskClass::RemoteAdministration);
    assert_eq!(id.confidence, PROTOCOL_FALLBACK_CONFIDENCE);

    let id = ids
        .identify(&text_banner("telnet", "login: "))
        .expect("fallback");
    assert!(id.cleartext_auth);
    let id = ids
        .identify(&field_banner("modbus", "unit", "1"))
        .expect("fallback");
    assert_eq!(id.risk, RiskClass::IndustrialControl);
    let id = ids
        .identify(&field_banner("tls", "handshake", "complete"))
        .expect("fallback");
    assert_eq!(id.risk, RiskClass::Unknown);
    assert_eq!(ids.identify(&text_banner("gopher", "hello")), None);
    assert_eq!(ids.identify_all(&text_banner("gopher", "hello")), vec![]);
}

#[test]
fn ranking_confidence_then_captures_then_order() {
    let toml = r#"
[[rule]]
id = "few"
protocol = "x"
pattern = 'v(\d+)'
service = "x"
product = "Few"
confidence = 50
risk = "web"
[[rule]]
id = "many"
protocol = "x"
pattern = 'v(\d+)\.(\d+)'
service = "x"
product = "Many"
confidence = 50
risk = "web"
[[rule]]
id = "sure"
protocol = "x"
pattern = 'sure'
service = "x"
product = "Sure"
confidence = 60
risk = "web"
[[rule]]
id = "later-same"
protocol = "x"
pattern = 'v(\d+)'
service = "x"
product = "Later"
confidence = 50
risk = "web"
"#;
    let ids = Identifier::from_toml_str(toml).expect("parses");
    let pick = |t: &str| ids.identify(&text_banner("x", t)).and_then(|i| i.rule_id);
    assert_eq!(pick("v1.2").as_deref(), Some("many"));
    assert_eq!(pick("v1.2 sure").as_deref(), Some("sure"));
    assert_eq!(pick("v1").as_deref(), Some("few"), "ties keep file order");
    // Unknown protocol "x" has no fallback.
    assert_eq!(pick("nothing"), None);
}

#[test]
fn extend_rejects_duplicate_ids_and_adds_rules() {
    let mut ids = builtin();
    let before = ids.rules().len();
    let dup = "[[rule]]\nid='ssh-openssh'\nprotocol='ssh'\npattern='x'\nservice='ssh'\nconfidence=1\nrisk='web'\n";
    assert!(matches!(
        ids.extend_from_toml_str(dup),
        Err(RuleError::DuplicateId { .. })
    ));
    let extra = "[[rule]]\nid='site-app'\nprotocol='http'\nsource='title'\npattern='^Intranet$'\nservice='intranet'\nproduct='Intranet'\nconfidence=99\nrisk='web'\n";
    ids.extend_from_toml_str(extra).expect("adds");
    assert_eq!(ids.rules().len(), before + 1);
    let id = ids
        .identify(&field_banner("http", "title", "Intranet"))
        .expect("site rule");
    assert_eq!(id.product.as_deref(), Some("Intranet"));
}

#[test]
fn combined_with_recog() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recog");
    let db = load_recog_dir(&dir).expect("fixture");
    let ours_first = builtin().with_recog(db.clone(), CombineMode::OursFirst);
    let best = builtin().with_recog(db, CombineMode::BestConfidence);

    // Only Recog knows LabFTPd: used as the fallback in both modes.
    let lab = text_banner("ftp", "220 LabFTPd v1.4.2 ready.\\r\\n");
    for ids in [&ours_first, &best] {
        let id = ids.identify(&lab).expect("recog");
        assert_eq!(id.origin, Origin::Recog);
        assert_eq!(id.product.as_deref(), Some("LabFTPd"));
    }

    // Both know Dropbear: ours (92) beats Recog's default (70) either way.
    let dropbear = text_banner("ssh", "SSH-2.0-dropbear_2022.83");
    assert_eq!(
        ours_first.identify(&dropbear).map(|i| i.origin),
        Some(Origin::Rule)
    );
    assert_eq!(
        best.identify(&dropbear).map(|i| i.origin),
        Some(Origin::Rule)
    );

    // Generic OpenSSH rule (85) vs the fixture's Debian fingerprint (certainty 0.9 = 90)
    // on a banner our Debian rule is kept away from via a custom rule set.
    let generic_only = Identifier::from_toml_str(
        "[[rule]]\nid='g'\nprotocol='ssh'\npattern='OpenSSH_([\\d.]+p?\\d*)'\nservice='ssh'\nproduct='OpenSSH'\nversion='$1'\nconfidence=85\nrisk='remote-administration'\n",
    )
    .expect("parses");
    let db = load_recog_dir(&dir).expect("fixture");
    let deb = text_banner("ssh", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3");
    let of = generic_only
        .clone()
        .with_recog(db.clone(), CombineMode::OursFirst);
    let bc = generic_only.with_recog(db, CombineMode::BestConfidence);
    assert_eq!(of.identify(&deb).map(|i| i.origin), Some(Origin::Rule));
    let id = bc.identify(&deb).expect("recog wins on confidence");
    assert_eq!(id.origin, Origin::Recog);
    assert_eq!(id.os.as_deref(), Some("Debian"));
}

#[test]
fn identification_serializes_with_kebab_case_enums() {
    let id = builtin()
        .identify(&text_banner("ssh", "SSH-2.0-dropbear_2022.83"))
        .expect("id");
    let json = serde_json::to_value(&id).expect("json");
    assert_eq!(json["risk"], "remote-administration");
    assert_eq!(json["origin"], "rule");
    assert_eq!(json["version"], "2022.83");
}

// ------------------------------------------------------------------ property tests

const PROTOCOLS: &[&str] = &[
    "ssh",
    "ftp",
    "smtp",
    "imap",
    "pop3",
    "http",
    "tls",
    "redis",
    "memcached",
    "mysql",
    "postgres",
    "mqtt",
    "dns",
    "rdp",
    "smb",
    "ldap",
    "telnet",
    "vnc",
    "mongodb",
    "mssql",
    "nats",
    "gopher",
    "",
];
const FIELDS: &[&str] = &[
    "server",
    "x-jenkins",
    "via",
    "x-generator",
    "extensions",
    "x-powered-by",
    "title",
    "version",
    "redis_version",
    "valkey_version",
    "error",
    "auth",
    "ssl",
    "selected_protocol",
    "native_lm",
    "native_os",
    "vendorname",
    "vendorversion",
    "tls",
];

fn arb_banner() -> impl Strategy<Value = Banner> {
    (
        proptest::sample::select(PROTOCOLS),
        "\\PC{0,600}",
        proptest::collection::btree_map(proptest::sample::select(FIELDS), "\\PC{0,200}", 0..6),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(p, text, fields, starttls)| Banner {
            protocol: p.to_string(),
            text,
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            starttls,
        })
}

fn check_bounded(id: &Identification) {
    for v in [&id.version, &id.os].into_iter().flatten() {
        assert!(v.chars().count() <= rules::MAX_TEMPLATE_LEN + 4 * rules::MAX_CAPTURE_FILL);
        assert!(!v.chars().any(char::is_control));
    }
    if let Some(cpe) = &id.cpe {
        assert!(cpe.len() <= rules::MAX_TEMPLATE_LEN + 8 * rules::MAX_CAPTURE_FILL);
    }
    assert!(id.confidence <= 100);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn identify_never_panics_on_random_banners(b in arb_banner()) {
        let ids = builtin();
        if let Some(id) = ids.identify(&b) {
            check_bounded(&id);
        }
        for id in ids.identify_all(&b) {
            check_bounded(&id);
        }
    }

    #[test]
    fn identify_never_panics_on_printable_bytes(
        p in proptest::sample::select(PROTOCOLS),
        bytes in proptest::collection::vec(any::<u8>(), 0..3000),
    ) {
        let b = text_banner(p, &crate::session::printable(&bytes));
        if let Some(id) = builtin().identify(&b) {
            check_bounded(&id);
        }
    }

    #[test]
    fn mutated_examples_never_panic(
        idx in any::<proptest::sample::Index>(),
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<char>(), 0u8..3), 0..8),
        long_tail in "\\PC{0,200}",
    ) {
        let ids = builtin();
        let rule = idx.get(ids.rules());
        let mut chars: Vec<char> = rule.example().unwrap_or_default().chars().collect();
        for (pos, c, op) in edits {
            let at = if chars.is_empty() { 0 } else { pos.index(chars.len()) };
            match op {
                0 => chars.insert(at, c),
                1 if !chars.is_empty() => { chars.remove(at); }
                _ if !chars.is_empty() => chars[at] = c,
                _ => chars.push(c),
            }
        }
        let mut text: String = chars.into_iter().collect();
        text.push_str(&long_tail);
        let mut b = example_banner(rule);
        match rule.source() {
            Source::Text => b.text = text,
            Source::Field(f) => { b.fields.insert(f.clone(), text); }
        }
        if let Some(id) = ids.identify(&b) {
            check_bounded(&id);
        }
    }

    #[test]
    fn rules_parser_never_panics(text in "\\PC{0,400}") {
        let _ = Identifier::from_toml_str(&text);
    }

    #[test]
    fn rules_parser_never_panics_on_mutated_rules(
        pattern in "\\PC{0,40}",
        version in "\\PC{0,20}",
        cpe in "\\PC{0,20}",
        example in "\\PC{0,40}",
        confidence in 0u32..300,
    ) {
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let toml = format!(
            "[[rule]]\nid = \"p\"\nprotocol = \"ssh\"\npattern = \"{}\"\nservice = \"ssh\"\nversion = \"{}\"\ncpe = \"{}\"\nexample = \"{}\"\nconfidence = {confidence}\nrisk = \"web\"\n",
            esc(&pattern), esc(&version), esc(&cpe), esc(&example)
        );
        if let Ok(ids) = Identifier::from_toml_str(&toml) {
            // Whatever was accepted must behave on hostile input too.
            let _ = ids.identify(&text_banner("ssh", &example));
        }
    }

    #[test]
    fn recog_loader_never_panics(xml in "\\PC{0,400}") {
        let mut db = RecogDb::new();
        let _ = db.add_xml("fuzz.xml", &xml);
        let _ = db.identify(&text_banner("ssh", "SSH-2.0-x"));
    }

    #[test]
    fn recog_loader_never_panics_on_mutated_fixture(
        pattern in "\\PC{0,40}",
        pos in 0u32..5,
        value in "[a-z.{}]{0,20}",
        banner in "\\PC{0,80}",
    ) {
        let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;");
        let xml = format!(
            "<fingerprints matches=\"ssh.banner\"><fingerprint pattern=\"{}\" flags=\"REG_ICASE\"><description>d</description><example service.version=\"1\">{}</example><param pos=\"{pos}\" name=\"service.version\"/><param pos=\"0\" name=\"service.cpe23\" value=\"{}\"/></fingerprint></fingerprints>",
            esc(&pattern), esc(&banner), esc(&value)
        );
        let mut db = RecogDb::new();
        if db.add_xml("m.xml", &xml).is_ok() {
            let _ = db.verify_examples();
            if let Some(id) = db.identify(&text_banner("ssh", &format!("SSH-2.0-{banner}"))) {
                check_bounded(&id);
            }
        }
    }
}

const REQUIRED: &[&str] = &["id", "protocol", "pattern", "service", "confidence", "risk"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn capture_references_are_checked_against_the_pattern(groups in 0usize..6, reference in 0usize..10, braced in any::<bool>()) {
        let pattern = "(a)".repeat(groups);
        let pattern = if pattern.is_empty() { "a".to_string() } else { pattern };
        let tref = if braced { format!("${{{reference}}}") } else { format!("${reference}") };
        let toml = format!(
            "[[rule]]\nid='r'\nprotocol='ssh'\npattern='{pattern}'\nservice='ssh'\nversion='{tref}'\nconfidence=1\nrisk='web'\n"
        );
        match Identifier::from_toml_str(&toml) {
            Ok(_) => prop_assert!(reference <= groups),
            Err(RuleError::CaptureOutOfRange { group, available, field, .. }) => {
                prop_assert!(reference > groups);
                prop_assert_eq!((group, available, field), (reference, groups, "version"));
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn a_missing_required_field_is_named_in_the_error(which in 0usize..6) {
        let missing = REQUIRED[which];
        let all = [
            ("id", "'r'"), ("protocol", "'ssh'"), ("pattern", "'a'"), ("service", "'ssh'"),
            ("confidence", "1"), ("risk", "'web'"),
        ];
        let body: String = all
            .iter()
            .filter(|(k, _)| *k != missing)
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect();
        let err = Identifier::from_toml_str(&format!("[[rule]]\n{body}")).expect_err("must fail");
        prop_assert!(matches!(err, RuleError::Toml { .. }), "{}", err);
        prop_assert!(err.to_string().contains(missing), "{}", err);
    }

    #[test]
    fn bad_patterns_are_rejected_not_panicking(pattern in "[()\\[\\]{}*+?|\\\\a-c0-9^$.]{1,16}") {
        let esc = pattern.replace('\\', "\\\\").replace('"', "\\\"");
        let toml = format!(
            "[[rule]]\nid='r'\nprotocol='ssh'\npattern=\"{esc}\"\nservice='ssh'\nconfidence=1\nrisk='web'\n"
        );
        match (Identifier::from_toml_str(&toml), rules::build_regex(&pattern, false, false, false)) {
            (Ok(_), Ok(_)) => {}
            (Err(RuleError::Pattern { id, message }), Err(_)) => {
                prop_assert_eq!(id, "r");
                prop_assert!(!message.is_empty());
            }
            (got, re) => prop_assert!(false, "rules: {:?}, regex: {:?}", got.err(), re.err()),
        }
    }
}

/// A protocol name with nothing the session recognised behind it (the port's guess,
/// or the session that was waiting when the peer closed) names no service.
#[test]
fn a_protocol_name_alone_is_a_guess_and_identifies_nothing() {
    let ids = builtin();
    for protocol in ["ssh", "mysql", "http", "redis", "modbus", "tls"] {
        let guess = text_banner(protocol, "");
        assert_eq!(ids.identify(&guess), None, "{protocol}");
        assert_eq!(ids.identify_all(&guess), vec![], "{protocol}");
        assert_eq!(protocol_fallback(&text_banner(protocol, "  ")), None);
    }
}

/// Bytes no session recognised keep their text (escaped, capped) and get no service,
/// product or risk class, whatever they say and whatever port they came from.
#[test]
fn unknown_bytes_are_kept_and_never_classified() {
    let ids = builtin();
    let hostile = b"SSH-2.0-OpenSSH_9.2p1 \x1b[31m\0\xff".repeat(200);
    let b = crate::session::unknown_banner(&hostile).expect("bytes kept");
    assert_eq!(b.protocol, "unknown");
    assert!(b.text.len() <= crate::session::BANNER_CAP + 4);
    assert!(b
        .text
        .chars()
        .all(|c| c == '\t' || (' '..='~').contains(&c)));
    let n = hostile.len().to_string();
    assert_eq!(b.fields.get("bytes"), Some(&n));
    assert_eq!(ids.identify(&b), None);
    assert_eq!(crate::session::unknown_banner(b""), None);
    let text = crate::session::unknown_banner(b"hello there\r\n").expect("kept");
    assert_eq!(text.text, "hello there\\r\\n");
    assert_eq!(ids.identify(&text), None);
}

/// Greetings that turn us away, as servers send them: the reply's shape proves the
/// protocol, the words name no product, so none is claimed; the refusal is kept.
#[test]
fn refusal_greetings_name_the_protocol_and_no_product() {
    use crate::proto::{ftp::FtpSession, smtp::SmtpSession};
    use crate::session::Session;
    let ids = builtin();
    let ftp: &[(&[u8], &str)] = &[
        (
            b"421 There are too many connected users, please try later.\r\n",
            "421 There are too many connected users, please try later.",
        ),
        (b"421 Too many connections\r\n", "421 Too many connections"),
        (b"530 Access denied\r\n", "530 Access denied"),
        (
            b"530-Access denied\r\n530 Go away.\r\n",
            "530 Access denied",
        ),
        (b"421\r\n", "421"),
    ];
    let smtp: &[(&[u8], &str)] = &[
        (b"554 No SMTP service here\r\n", "554 No SMTP service here"),
        (
            b"421 4.3.2 Service not available, closing transmission channel\r\n",
            "421 4.3.2 Service not available, closing transmission channel",
        ),
        (
            b"554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked\r\n",
            "554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked",
        ),
    ];
    let cases = ftp
        .iter()
        .map(|c| ("ftp", c))
        .chain(smtp.iter().map(|c| ("smtp", c)));
    for (protocol, (greeting, refused)) in cases {
        let mut s: Box<dyn Session> = if protocol == "ftp" {
            Box::new(FtpSession::new(None))
        } else {
            Box::new(SmtpSession::new(None))
        };
        s.start();
        assert_eq!(s.on_data(greeting), crate::session::Action::Done);
        let b = s.banner();
        assert_eq!(b.protocol, protocol);
        assert_eq!(b.fields.get("refused").map(String::as_str), Some(*refused));
        let all = ids.identify_all(&b);
        assert_eq!(all.len(), 1, "{all:?}");
        let id = &all[0];
        assert_eq!(id.service, protocol, "{greeting:?}");
        assert_eq!(id.product, None, "{greeting:?}: {id:?}");
        assert_eq!((id.version.as_ref(), id.cpe.as_ref()), (None, None));
        assert_eq!(id.origin, Origin::Protocol);
    }
    // A welcome is no refusal.
    let mut s = FtpSession::new(None);
    s.start();
    s.on_data(b"220 (vsFTPd 3.0.3)\r\n");
    assert!(!s.banner().fields.contains_key("refused"));
}
