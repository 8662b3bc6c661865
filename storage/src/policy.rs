//! The exposure policy, as pure logic: which findings an asset deserves given the
//! tenant's sanctions and settings, how the system moves a finding when a scan shows
//! something new, and which transitions people may make.
//!
//! No storage here: [`crate::findings`] feeds these functions assets and findings and
//! stores what they return, so each rule and each transition is testable on its own.

use crate::error::{Result, StoreError};
use crate::keys::{AssetKey, AssetKind};
use crate::model::{Asset, AssetStatus, Millis};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

const DAY_MS: Millis = 86_400_000;

/// What a finding is about. Its kebab-case name is the user's word for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Rule {
    /// An observed service or domain no sanction covers.
    Unsanctioned,
    /// The sanction covering an exposure has expired and the exposure is still there.
    StaleSanction,
    /// A sanctioned asset not seen for the tenant's zombie period, or a sanctioned name
    /// that no longer resolves: an inventory entry to retire.
    Zombie,
    /// A service in a risky class, or one taking credentials in clear.
    RiskyExposure,
    CertificateExpired,
    CertificateExpiring,
    CertificateSelfSigned,
    CertificateHostnameMismatch,
    CertificateWeakKey,
    OpenZoneTransfer,
    DanglingCname,
    /// Informational: an asset that appeared after the tenant's first complete scan.
    NewAsset,
    /// A service that hands out data without credentials (an open database, container
    /// API, directory listing, anonymous FTP).
    UnauthenticatedAccess,
    /// A service whose product and version fall in the vulnerable configurations of
    /// CVEs of the imported vulnerability data (see [`crate::vulns`]).
    VulnerableVersion,
    /// A DNS server that offers recursion to the scanner: it resolves for anyone.
    OpenResolver,
    /// A UDP service whose replies are at least `amplifier_factor` times its request.
    Amplifier,
    /// SNMP that answers the default community `public`.
    SnmpDefaultCommunity,
}

impl Rule {
    pub const ALL: [Rule; 17] = [
        Rule::Unsanctioned,
        Rule::StaleSanction,
        Rule::Zombie,
        Rule::RiskyExposure,
        Rule::CertificateExpired,
        Rule::CertificateExpiring,
        Rule::CertificateSelfSigned,
        Rule::CertificateHostnameMismatch,
        Rule::CertificateWeakKey,
        Rule::OpenZoneTransfer,
        Rule::DanglingCname,
        Rule::NewAsset,
        Rule::UnauthenticatedAccess,
        Rule::VulnerableVersion,
        Rule::OpenResolver,
        Rule::Amplifier,
        Rule::SnmpDefaultCommunity,
    ];

    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// Per-tenant policy: severities per rule, remediation deadlines per severity, and the
/// thresholds of the time-based rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicySettings {
    pub severities: BTreeMap<Rule, Severity>,
    /// Days to remediate, per severity (0 to 36500); a severity without an entry has no
    /// due date.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<Severity, Days>))]
    pub sla_days: BTreeMap<Severity, u32>,
    /// A sanctioned asset unseen this long (days, 0 to 36500) is a zombie.
    #[cfg_attr(feature = "openapi", schema(value_type = Days))]
    pub zombie_days: u32,
    /// A certificate expiring within this many days (0 to 36500) is flagged.
    #[cfg_attr(feature = "openapi", schema(value_type = Days))]
    pub expiring_days: u32,
    /// Risk classes (kebab-case, as in observations) that make a risky exposure;
    /// a class given twice counts once.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub risky_classes: BTreeSet<String>,
    /// Credentials in clear make a risky exposure whatever the class.
    pub cleartext_auth_is_risky: bool,
    /// Severity of unauthenticated-access findings per check (`redis`, `etcd`,
    /// `directory-listing`, ...); a check not listed takes the rule's severity.
    #[serde(default = "default_unauth_severities")]
    pub unauth_severities: BTreeMap<String, Severity>,
    /// Opt-in: scans also run the checks that log in, anonymously (FTP `anonymous`, an
    /// LDAP anonymous bind, an SMB null session).
    /// Off by default; every change is audited.
    #[serde(default)]
    pub login_checks: bool,
    /// A UDP service whose replies carry at least this many times the bytes of its
    /// request (1 to 10000) is an amplifier.
    #[serde(default = "udp::default_amplifier_factor")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10000))]
    pub amplifier_factor: u32,
}

/// The most days a policy setting may give: a hundred years.
pub const MAX_DAYS: u32 = 36_500;

/// A number of days in the policy: 0 to [`MAX_DAYS`].
#[derive(Debug)]
pub struct Days;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Days {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(0))
            .maximum(Some(MAX_DAYS))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Days {}

impl PolicySettings {
    /// Refuses day counts beyond [`MAX_DAYS`] (the description's bound).
    pub fn validate(&self) -> Result<()> {
        let days = [
            ("zombie_days", self.zombie_days),
            ("expiring_days", self.expiring_days),
        ]
        .into_iter()
        .chain(self.sla_days.values().map(|d| ("sla_days", *d)));
        for (name, d) in days {
            if d > MAX_DAYS {
                return Err(StoreError::Invalid(format!(
                    "{name}: {d} days is beyond the limit of {MAX_DAYS}"
                )));
            }
        }
        if !(1..=udp::MAX_AMPLIFIER_FACTOR).contains(&self.amplifier_factor) {
            return Err(StoreError::Invalid(format!(
                "amplifier_factor: {} is not 1 to {}",
                self.amplifier_factor,
                udp::MAX_AMPLIFIER_FACTOR
            )));
        }
        Ok(())
    }
}

/// Open databases and container APIs take the rule's severity (critical); these checks
/// expose less.
fn default_unauth_severities() -> BTreeMap<String, Severity> {
    [
        ("directory-listing", Severity::Medium),
        ("ftp-anonymous", Severity::Medium),
        ("ldap-anonymous", Severity::Medium),
        ("smb-null-session", Severity::Medium),
        ("prometheus", Severity::High),
        ("grafana", Severity::High),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl Default for PolicySettings {
    fn default() -> Self {
        use Rule::*;
        use Severity::*;
        PolicySettings {
            severities: [
                (Unsanctioned, High),
                (StaleSanction, Medium),
                (Zombie, Low),
                (RiskyExposure, High),
                (CertificateExpired, High),
                (CertificateExpiring, Medium),
                (CertificateSelfSigned, Medium),
                (CertificateHostnameMismatch, Medium),
                (CertificateWeakKey, Medium),
                (OpenZoneTransfer, High),
                (DanglingCname, High),
                (NewAsset, Info),
                (UnauthenticatedAccess, Critical),
                // The CVSS score decides; this is for CVEs that carry none.
                (VulnerableVersion, Medium),
                // Each lends the host to attacks on others (reflection, spoofed
                // floods) or reads its configuration to anyone.
                (OpenResolver, High),
                (Amplifier, High),
                (SnmpDefaultCommunity, High),
            ]
            .into(),
            sla_days: [(Critical, 7), (High, 14), (Medium, 30), (Low, 90)].into(),
            zombie_days: 30,
            expiring_days: 30,
            risky_classes: [
                "remote-administration",
                "database",
                "cache",
                "message-broker",
                "directory",
                "industrial-control",
                "container-orchestration",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            cleartext_auth_is_risky: true,
            unauth_severities: default_unauth_severities(),
            login_checks: false,
            amplifier_factor: udp::DEFAULT_AMPLIFIER_FACTOR,
        }
    }
}

impl PolicySettings {
    pub fn severity(&self, rule: Rule) -> Severity {
        self.severities
            .get(&rule)
            .copied()
            .unwrap_or(Severity::Medium)
    }

    pub fn due(&self, severity: Severity, opened: Millis) -> Option<Millis> {
        self.sla_days
            .get(&severity)
            .map(|d| opened.saturating_add(Millis::from(*d) * DAY_MS))
    }
}

/// What a sanction matches. Every given part must match; a sanction with none matches
/// nothing (refused on input).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SanctionMatch {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = "cidr"))]
    pub net: Option<IpNet>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 65535))]
    pub port: Option<u16>,
    /// Only `tcp` so far.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^tcp$"))]
    pub proto: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S"))]
    pub service: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S"))]
    pub product: Option<String>,
    /// A name or a glob such as `*.shop.example.com` (case-insensitive).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = "domain-glob"))]
    pub domain: Option<String>,
}

/// An exposure the client has approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sanction {
    pub id: String,
    #[serde(rename = "match")]
    pub matches: SanctionMatch,
    pub owner: String,
    pub reason: String,
    pub ticket: Option<String>,
    /// For temporary publications; after it, the exposure is a stale sanction.
    pub expires: Option<Millis>,
    pub created: Millis,
    pub created_by: String,
}

impl SanctionMatch {
    /// Refuses sanctions that would match nothing or everything by accident.
    pub fn validate(&self) -> Result<()> {
        if self.net.is_none()
            && self.port.is_none()
            && self.service.is_none()
            && self.product.is_none()
            && self.domain.is_none()
        {
            return Err(StoreError::Invalid(
                "a sanction needs at least one of net, port, service, product or domain".into(),
            ));
        }
        if let Some(p) = &self.proto {
            if p != "tcp" {
                return Err(StoreError::Invalid(format!(
                    "sanction proto {p:?}: only tcp is scanned"
                )));
            }
        }
        for (name, value) in [
            ("service", &self.service),
            ("product", &self.product),
            ("domain", &self.domain),
        ] {
            if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
                return Err(StoreError::Invalid(format!(
                    "sanction {name} is empty: leave it out to match any {name}"
                )));
            }
        }
        if let Some(d) = &self.domain {
            glob(d)?;
            // Asset names are ASCII (punycode): a pattern of other characters would
            // silently match nothing.
            let labels_ok = d.len() <= 253
                && d.split('.').all(|l| {
                    (1..=63).contains(&l.len())
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*'))
                });
            if !labels_ok {
                return Err(StoreError::Invalid(format!(
                    "sanction domain {d:?}: give a name or a glob of dot-separated labels of ASCII letters, digits, '-', '_' or '*' (punycode for other scripts)"
                )));
            }
        }
        Ok(())
    }

    pub fn matches(&self, asset: &Asset) -> bool {
        let key = &asset.key;
        let eq = |want: &Option<String>, field: &str| match want {
            Some(w) => asset
                .facts
                .get(field)
                .is_some_and(|v| v.eq_ignore_ascii_case(w)),
            None => true,
        };
        let net_ok = match self.net {
            Some(net) => key.address().is_some_and(|ip| net.contains(&ip)),
            None => true,
        };
        let port_ok = match self.port {
            Some(p) => key.port() == Some(p),
            None => true,
        };
        let domain_ok = match (&self.domain, key) {
            (None, _) => true,
            (Some(pattern), AssetKey::Domain(name)) => {
                glob(pattern).is_ok_and(|g| g.is_match(name.as_str()))
            }
            (Some(_), _) => false,
        };
        net_ok
            && port_ok
            && domain_ok
            && eq(&self.service, "service")
            && eq(&self.product, "product")
    }
}

fn glob(pattern: &str) -> Result<globset::GlobMatcher> {
    // `*` already crosses dots in a name, so a run of them means one; globset would
    // refuse `**` that is not a whole path component, a rule names do not have.
    let mut one_star = String::with_capacity(pattern.len());
    for c in pattern.to_ascii_lowercase().chars() {
        if !(c == '*' && one_star.ends_with('*')) {
            one_star.push(c);
        }
    }
    globset::GlobBuilder::new(&one_star)
        .case_insensitive(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| {
            StoreError::Invalid(format!(
                "domain pattern {pattern:?}: {e}; write a name or a glob like *.example.com"
            ))
        })
}

/// A finding the policy says should exist for an asset now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub rule: Rule,
    /// Tells apart findings of one rule on one asset (a sanction id, a certificate).
    pub detail: String,
    pub severity: Severity,
    pub title: String,
    pub evidence: BTreeMap<String, String>,
}

/// What the policy needs to know besides the asset itself.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub now: Millis,
    pub settings: &'a PolicySettings,
    pub sanctions: &'a [Sanction],
    /// When the tenant's first complete scan finished; assets first seen after it are new.
    pub baseline: Option<Millis>,
    /// The certificate asset a service presents, when it has one.
    pub certificate: Option<&'a Asset>,
}

/// What the policy says of an asset at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Evaluation {
    /// Every finding the asset deserves now.
    pub expected: Vec<Expected>,
    /// The first instant after `now` at which the same asset, sanctions and settings
    /// would be judged differently by time alone: a matching sanction's expiry, the end
    /// of a sanctioned exposure's zombie period (`last_seen + zombie_days`), the start of
    /// its certificate's expiring window (`not_after - expiring_days`) and the
    /// certificate's end (`not_after`). None when time alone changes nothing. Every rule
    /// that reads `now` contributes here, so evaluating again at this instant (and not
    /// before) is enough to keep findings in step with the clock.
    pub next: Option<Millis>,
}

/// Every finding an asset deserves now, and when that could next change by time alone.
pub fn evaluate(asset: &Asset, cx: &Context<'_>) -> Evaluation {
    let mut next: Option<Millis> = None;
    let mut at = |t: Millis| {
        if t > cx.now {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
    };
    let mut out = Vec::new();
    // Unauthenticated-access findings take a per-check severity, so they are built
    // apart from `add` (which reads only the rule's); so are the UDP rules' (`udp`).
    let mut unauth: Vec<Expected> = Vec::new();
    let mut add = |rule: Rule, detail: String, title: String, evidence: &[(&str, String)]| {
        out.push(Expected {
            rule,
            detail,
            severity: cx.settings.severity(rule),
            title,
            evidence: evidence
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        });
    };
    let exposure = matches!(asset.kind, AssetKind::Service | AssetKind::Domain)
        && asset.fact("related") != Some("true");
    let present = asset.status != AssetStatus::Absent;
    let valid: Vec<&Sanction> = cx
        .sanctions
        .iter()
        .filter(|s| s.expires.is_none_or(|e| e > cx.now) && s.matches.matches(asset))
        .collect();
    let expired: Vec<&Sanction> = cx
        .sanctions
        .iter()
        .filter(|s| s.expires.is_some_and(|e| e <= cx.now) && s.matches.matches(asset))
        .collect();
    let label = asset.key.to_string();
    if exposure {
        // A matching sanction's expiry moves it from valid to expired: unsanctioned,
        // stale and zombie all read that.
        for s in cx.sanctions.iter().filter(|s| s.matches.matches(asset)) {
            if let Some(e) = s.expires {
                at(e);
            }
        }
    }

    if exposure && present && valid.is_empty() {
        if expired.is_empty() {
            add(
                Rule::Unsanctioned,
                String::new(),
                format!("{label} is exposed and no sanction covers it"),
                &[],
            );
        }
        for s in &expired {
            add(
                Rule::StaleSanction,
                s.id.clone(),
                format!("{label} is still exposed after sanction {} expired", s.id),
                &[
                    ("sanction", s.id.clone()),
                    ("owner", s.owner.clone()),
                    ("expired", s.expires.unwrap_or_default().to_string()),
                ],
            );
        }
    }
    if exposure && !valid.is_empty() {
        let unseen_days = (cx.now - asset.last_seen) / DAY_MS;
        let name_gone = asset.kind == AssetKind::Domain && asset.status == AssetStatus::Absent;
        let zombie_days = Millis::from(cx.settings.zombie_days);
        if name_gone || unseen_days >= zombie_days {
            // The title names the day it was last seen, not a count of days, so that it
            // does not change every day (a finding changes only when something happens).
            let why = if name_gone {
                "no longer resolves".to_owned()
            } else {
                format!(
                    "has not been seen since {} (zombie period: {} days)",
                    crate::model::day_string(asset.last_seen),
                    cx.settings.zombie_days
                )
            };
            for s in &valid {
                add(
                    Rule::Zombie,
                    s.id.clone(),
                    format!("{label} is sanctioned by {} but {why}", s.id),
                    &[("sanction", s.id.clone()), ("owner", s.owner.clone())],
                );
            }
        } else {
            // Unseen for `zombie_days` whole days: (now - last_seen) / DAY >= zombie_days.
            at(asset
                .last_seen
                .saturating_add(zombie_days.saturating_mul(DAY_MS)));
        }
    }
    if !present {
        return Evaluation {
            expected: out,
            next,
        };
    }
    if asset.kind == AssetKind::Service {
        if let Some(class) = asset
            .fact("risk")
            .filter(|c| cx.settings.risky_classes.contains(*c))
        {
            add(
                Rule::RiskyExposure,
                class.to_owned(),
                format!("{label} exposes a {class} service"),
                &[("risk", class.to_owned())],
            );
        }
        if cx.settings.cleartext_auth_is_risky && asset.fact("cleartext_auth") == Some("true") {
            add(
                Rule::RiskyExposure,
                CLEARTEXT_AUTH.into(),
                format!("{label} takes credentials in clear"),
                &[("cleartext_auth", "true".into())],
            );
        }
        if asset.fact("unauth.open") == Some("true") {
            let check = asset.fact("unauth.check").unwrap_or("unknown").to_owned();
            let readable = asset.fact("unauth.evidence").unwrap_or_default().to_owned();
            let mut e = Expected {
                rule: Rule::UnauthenticatedAccess,
                detail: check.clone(),
                severity: cx.settings.severity(Rule::UnauthenticatedAccess),
                title: format!("{label}: {check} answers without authentication"),
                evidence: [("check", check.clone()), ("readable", readable)]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            };
            if let Some(s) = cx.settings.unauth_severities.get(&check) {
                e.severity = *s;
            }
            unauth.push(e);
        }
        if asset.key.proto() == Some(crate::keys::Proto::Udp) {
            unauth.extend(udp::expected(asset, cx.settings, &label));
        }
        if let (Some(sha), Some(cert)) = (asset.fact("certificate"), cx.certificate) {
            let ev = |extra: (&'static str, String)| vec![("certificate", sha.to_owned()), extra];
            let not_after: Option<Millis> = cert
                .fact("not_after_unix")
                .and_then(|s| s.parse::<i64>().ok())
                .map(|s| s.saturating_mul(1000));
            if let Some(na) = not_after {
                let window = Millis::from(cx.settings.expiring_days).saturating_mul(DAY_MS);
                at(na.saturating_sub(window));
                at(na);
                let not_after_text = cert.fact("not_after").unwrap_or_default().to_owned();
                if na <= cx.now {
                    add(
                        Rule::CertificateExpired,
                        sha.to_owned(),
                        format!("{label} presents a certificate that expired {not_after_text}"),
                        &ev(("not_after", not_after_text.clone())),
                    );
                } else if na - cx.now <= window {
                    add(
                        Rule::CertificateExpiring,
                        sha.to_owned(),
                        format!("{label} presents a certificate expiring {not_after_text}"),
                        &ev(("not_after", not_after_text.clone())),
                    );
                }
            }
            if cert.fact("self_signed") == Some("true") {
                add(
                    Rule::CertificateSelfSigned,
                    sha.to_owned(),
                    format!("{label} presents a self-signed certificate"),
                    &ev(("issuer", cert.fact("issuer").unwrap_or_default().to_owned())),
                );
            }
            if cert.fact("weak_key") == Some("true") {
                add(
                    Rule::CertificateWeakKey,
                    sha.to_owned(),
                    format!("{label} presents a certificate with a weak key"),
                    &ev((
                        "key_bits",
                        cert.fact("key_bits").unwrap_or_default().to_owned(),
                    )),
                );
            }
            if asset.fact("certificate.hostname_mismatch") == Some("true") {
                add(
                    Rule::CertificateHostnameMismatch,
                    sha.to_owned(),
                    format!("{label} presents a certificate for other names"),
                    &ev(("sans", cert.fact("sans").unwrap_or_default().to_owned())),
                );
            }
        }
    }
    if asset.kind == AssetKind::Domain {
        if let Some(servers) = asset.fact("zone.axfr_open") {
            add(
                Rule::OpenZoneTransfer,
                String::new(),
                format!("{label}: anyone can transfer the zone from {servers}"),
                &[("servers", servers.to_owned())],
            );
        }
        if let Some(target) = asset.fact("dangling_cname") {
            add(
                Rule::DanglingCname,
                target.to_owned(),
                format!(
                    "{label} is a CNAME to {target}, which does not exist: it can be taken over"
                ),
                &[("target", target.to_owned())],
            );
        }
    }
    if exposure && cx.baseline.is_some_and(|b| asset.first_seen > b) {
        add(
            Rule::NewAsset,
            String::new(),
            format!("{label} appeared after the first complete scan"),
            &[("first_seen", asset.first_seen.to_string())],
        );
    }
    out.extend(unauth);
    Evaluation {
        expected: out,
        next,
    }
}

/// When the system must look at a finding again by time alone: the end of its risk
/// acceptance (it then reopens, or closes if the exposure has gone).
pub fn review_at(f: &Finding) -> Option<Millis> {
    if f.state == FindingState::RiskAccepted {
        f.risk_accepted_until
    } else {
        None
    }
}

/// The labels after the last one holding a glob character: the zone every name a domain
/// pattern matches lies in (`*.shop.example.com` → `shop.example.com`, a plain name →
/// itself). None when no such zone exists (`www.example.*`, `*`) or it is no valid name.
///
/// Why every match lies in it: the suffix is literal and preceded by a literal `.` (a dot
/// inside `[...]` or `{...}` would leave the closing bracket in a later label, which
/// would then hold a glob character), so a matching name ends with `.` and that suffix.
pub fn glob_apex(pattern: &str) -> Option<String> {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = pattern.split('.').collect();
    let special = |l: &&str| l.contains(['*', '?', '[', ']', '{', '}', '\\', ',', '!']);
    let first_plain = labels.iter().rposition(special).map_or(0, |i| i + 1);
    let apex = labels
        .get(first_plain..)
        .filter(|l| !l.is_empty())?
        .join(".");
    crate::keys::AssetKey::domain(&apex).ok().map(|_| apex)
}

/// A set of assets whose evaluation an edit of sanctions or settings can change, named
/// so that an index finds it (stored in the policy's work queue until it is done).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reach", rename_all = "kebab-case")]
pub enum Reach {
    /// The services and names a sanction's match covers; with `seen_within_days`, only
    /// those seen in that many days.
    Match {
        #[serde(rename = "match")]
        matches: SanctionMatch,
        #[serde(default)]
        seen_within_days: Option<u32>,
    },
    /// The assets with an active finding of a rule (of one detail, when given: a
    /// sanction's id, a risk class).
    Findings {
        rule: Rule,
        #[serde(default)]
        detail: Option<String>,
    },
    /// The services of one risk class.
    RiskClass { class: String },
    /// Every service: for the one setting no index narrows (credentials in clear).
    Services,
    /// The services presenting a certificate that has not expired.
    UnexpiredCertificates,
    /// The services whose CPE names one of these `vendor:product` pairs: an import of
    /// vulnerability data changed what is known of them.
    CpeProducts { products: Vec<String> },
}

/// What a sanction's creation (`old` none), change, or deletion (`new` none) can change.
///
/// A sanction enters [`evaluate`] only through the assets its match covers (valid or
/// expired, it decides unsanctioned, stale sanction and zombie for them, and nothing
/// for any other asset), and through its owner in the evidence of its stale and zombie
/// findings. So: the assets the old match covers (they may lose it), those the new
/// match covers (they may gain it), and the assets with active stale-sanction or zombie
/// findings naming it (they carry its owner and expiry; they are also inside the old
/// match unless a scan changed them since, and then the change feed re-evaluates them
/// anyway). An edit of only the reason or the ticket changes no finding.
pub fn sanction_reach(old: Option<&Sanction>, new: Option<&Sanction>) -> Vec<Reach> {
    let mut out = Vec::new();
    let coverage_changed = match (old, new) {
        (Some(o), Some(n)) => o.matches != n.matches || o.expires != n.expires,
        _ => true,
    };
    if coverage_changed {
        for s in [old, new].into_iter().flatten() {
            let reach = Reach::Match {
                matches: s.matches.clone(),
                seen_within_days: None,
            };
            if !out.contains(&reach) {
                out.push(reach);
            }
        }
    }
    let owner_changed = matches!((old, new), (Some(o), Some(n)) if o.owner != n.owner);
    if let Some(o) = old {
        if coverage_changed || owner_changed || new.is_none() {
            for rule in [Rule::StaleSanction, Rule::Zombie] {
                out.push(Reach::Findings {
                    rule,
                    detail: Some(o.id.clone()),
                });
            }
        }
    }
    out
}

/// What replacing the settings `old` by `new` can change, given the tenant's sanctions.
///
/// Each setting is read by [`evaluate`] or [`reconcile`] in one place only, so:
/// - a rule's severity: the severity of that rule's findings, nothing else (whether a
///   finding is expected never depends on severities) → the assets with active findings
///   of that rule;
/// - SLA days: the due date set when a finding opens or reopens; existing findings keep
///   theirs, as they always have → nothing;
/// - zombie days: whether a sanctioned exposure is a zombie, and when it becomes one →
///   the assets any sanction covers that were seen within the longer of the two periods
///   (those unseen for longer are zombies under both, and need nothing), and the assets
///   with active zombie findings;
/// - expiring days: whether a service's certificate is expiring, and when it becomes so
///   → the services presenting a certificate that has not expired, and the assets with
///   active certificate-expiring findings;
/// - risky classes: the risky-exposure findings of the classes added or removed → the
///   services of those classes, and the assets with active findings of those classes;
/// - credentials in clear: turned off → the assets with active cleartext-auth findings;
///   turned on → every service (no index holds the cleartext fact).
pub fn settings_reach(
    old: &PolicySettings,
    new: &PolicySettings,
    sanctions: &[Sanction],
) -> Vec<Reach> {
    let mut out = Vec::new();
    for rule in Rule::ALL {
        if old.severity(rule) != new.severity(rule) {
            out.push(Reach::Findings { rule, detail: None });
        }
    }
    if old.zombie_days != new.zombie_days {
        let within = old.zombie_days.max(new.zombie_days).saturating_add(1);
        for s in sanctions {
            let reach = Reach::Match {
                matches: s.matches.clone(),
                seen_within_days: Some(within),
            };
            if !out.contains(&reach) {
                out.push(reach);
            }
        }
        out.push(Reach::Findings {
            rule: Rule::Zombie,
            detail: None,
        });
    }
    if old.expiring_days != new.expiring_days {
        out.push(Reach::UnexpiredCertificates);
        out.push(Reach::Findings {
            rule: Rule::CertificateExpiring,
            detail: None,
        });
    }
    for class in old.risky_classes.symmetric_difference(&new.risky_classes) {
        out.push(Reach::RiskClass {
            class: class.clone(),
        });
        out.push(Reach::Findings {
            rule: Rule::RiskyExposure,
            detail: Some(class.clone()),
        });
    }
    // The rule's severity is covered above; a per-check one changes only those findings.
    // The login opt-in changes no finding by itself: the next scan does.
    if old.unauth_severities != new.unauth_severities {
        let reach = Reach::Findings {
            rule: Rule::UnauthenticatedAccess,
            detail: None,
        };
        if !out.contains(&reach) {
            out.push(reach);
        }
    }
    if old.amplifier_factor != new.amplifier_factor {
        // No index holds the ratio: every service is looked at again.
        out.push(Reach::Services);
    }
    if old.cleartext_auth_is_risky != new.cleartext_auth_is_risky {
        out.push(if new.cleartext_auth_is_risky {
            Reach::Services
        } else {
            Reach::Findings {
                rule: Rule::RiskyExposure,
                detail: Some(CLEARTEXT_AUTH.to_owned()),
            }
        });
    }
    out
}

/// The detail of the risky-exposure finding for credentials taken in clear.
pub const CLEARTEXT_AUTH: &str = "cleartext-auth";

/// Where a finding is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FindingState {
    Open,
    Acknowledged,
    InProgress,
    /// Someone says it is fixed; a verification scan will tell.
    Fixed,
    /// A scan that covered the asset no longer sees the exposure.
    ClosedVerified,
    /// A sanction now covers the exposure.
    ClosedSanctioned,
    /// The tenant's policy no longer flags it (a rule's settings changed).
    ClosedByPolicy,
    /// Accepted until an expiry, after which it reopens.
    RiskAccepted,
    FalsePositive,
}

impl FindingState {
    /// Counts against the surface: open, being worked on, or claimed but unverified.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            FindingState::Open
                | FindingState::Acknowledged
                | FindingState::InProgress
                | FindingState::Fixed
        )
    }

    pub fn is_closed(self) -> bool {
        matches!(
            self,
            FindingState::ClosedVerified
                | FindingState::ClosedSanctioned
                | FindingState::ClosedByPolicy
        )
    }

    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// The roles of the service. Which transitions each may make is decided here so the
/// service cannot forget a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    Admin,
    Analyst,
    Remediator,
    Viewer,
}

/// Who moves a finding: a person with a role, or the policy itself after a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Actor {
    User { name: String, role: Role },
    System,
}

impl Actor {
    pub fn name(&self) -> &str {
        match self {
            Actor::User { name, .. } => name,
            Actor::System => "aperture",
        }
    }
}

/// One step in a finding's life, kept forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transition {
    pub at: Millis,
    pub actor: Actor,
    pub from: Option<FindingState>,
    pub to: FindingState,
    pub comment: String,
}

/// A finding and its whole story.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Finding {
    pub id: String,
    pub rule: Rule,
    pub asset: AssetKey,
    pub detail: String,
    pub severity: Severity,
    pub title: String,
    pub evidence: BTreeMap<String, String>,
    pub state: FindingState,
    pub opened: Millis,
    pub updated: Millis,
    pub due: Option<Millis>,
    pub assignee: Option<String>,
    pub risk_accepted_until: Option<Millis>,
    /// When "fixed" was last claimed: a sighting after it disproves the claim.
    pub fixed_at: Option<Millis>,
    pub reopened: u32,
    pub transitions: Vec<Transition>,
    /// Comments and assignments, in order.
    pub notes: Vec<Note>,
    /// Why the last verification of a "fixed" claim could not tell (its host did not
    /// answer the scan): the claim stays unverified. Cleared by the next transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_inconclusive: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Note {
    pub at: Millis,
    pub actor: Actor,
    pub text: String,
}

impl Finding {
    pub fn overdue(&self, now: Millis) -> bool {
        self.state.is_active()
            && self.state != FindingState::Fixed
            && self.due.is_some_and(|d| now > d)
    }

    fn move_to(&mut self, to: FindingState, actor: Actor, comment: String, now: Millis) {
        self.transitions.push(Transition {
            at: now,
            actor,
            from: Some(self.state),
            to,
            comment,
        });
        self.state = to;
        self.updated = now;
        self.verification_inconclusive = None;
    }
}

/// Stable id of the finding of `rule` on `asset` for `detail`, so re-evaluation finds the
/// same finding instead of opening a second one.
pub fn finding_id(rule: Rule, asset: &AssetKey, detail: &str) -> String {
    use std::hash::Hasher;
    let mut h = siphasher::sip128::SipHasher13::new_with_keys(0x6170_6572_7475_7265, 0x6669_6e64);
    h.write(rule.name().as_bytes());
    h.write(&[0]);
    h.write(asset.to_string().as_bytes());
    h.write(&[0]);
    h.write(detail.as_bytes());
    use siphasher::sip128::Hasher128;
    format!("f-{:032x}", h.finish128().as_u128())
}

/// Opens a new finding.
pub fn open(asset: &AssetKey, e: &Expected, settings: &PolicySettings, now: Millis) -> Finding {
    Finding {
        id: finding_id(e.rule, asset, &e.detail),
        rule: e.rule,
        asset: asset.clone(),
        detail: e.detail.clone(),
        severity: e.severity,
        title: e.title.clone(),
        evidence: e.evidence.clone(),
        state: FindingState::Open,
        opened: now,
        updated: now,
        due: settings.due(e.severity, now),
        assignee: None,
        risk_accepted_until: None,
        fixed_at: None,
        reopened: 0,
        transitions: vec![Transition {
            at: now,
            actor: Actor::System,
            from: None,
            to: FindingState::Open,
            comment: e.title.clone(),
        }],
        notes: Vec::new(),
        verification_inconclusive: None,
    }
}

/// What the system does to an existing finding given the asset as it is now and whether
/// the policy still expects the finding. Returns whether the finding changed.
pub fn reconcile(
    f: &mut Finding,
    expected: Option<&Expected>,
    asset: &Asset,
    sanctioned: bool,
    settings: &PolicySettings,
    now: Millis,
) -> bool {
    use FindingState::*;
    if f.state == Fixed && asset.status == AssetStatus::Unknown {
        return inconclusive(f, asset, now);
    }
    if asset.status == AssetStatus::Unknown && expected.is_none() {
        // The last look could not tell: neither closes nor verifies anything.
        return false;
    }
    match (f.state, expected) {
        (FalsePositive, _) => false,
        (RiskAccepted, _) if f.risk_accepted_until.is_some_and(|u| u > now) => false,
        (RiskAccepted, Some(_)) => {
            f.move_to(Open, Actor::System, "risk acceptance expired".into(), now);
            f.risk_accepted_until = None;
            f.reopened += 1;
            f.due = settings.due(f.severity, now);
            true
        }
        (RiskAccepted, None) => {
            f.move_to(
                ClosedVerified,
                Actor::System,
                "risk acceptance expired and the exposure is gone".into(),
                now,
            );
            true
        }
        (Fixed, Some(e)) => {
            let seen_since_claim = f.fixed_at.is_some_and(|t| asset.last_seen > t);
            if seen_since_claim {
                f.move_to(
                    Open,
                    Actor::System,
                    format!("verification failed: a scan still sees it ({})", e.title),
                    now,
                );
                f.reopened += 1;
                true
            } else {
                false
            }
        }
        (state, None) if state.is_active() => {
            let (to, why) = closure(f, asset, sanctioned);
            f.move_to(to, Actor::System, why, now);
            true
        }
        (state, Some(e)) if state.is_closed() => {
            f.move_to(
                Open,
                Actor::System,
                format!("exposure is back: {}", e.title),
                now,
            );
            f.reopened += 1;
            f.severity = e.severity;
            f.title = e.title.clone();
            f.evidence = e.evidence.clone();
            f.due = settings.due(e.severity, now);
            true
        }
        (_, Some(e)) => {
            if f.severity != e.severity || f.evidence != e.evidence || f.title != e.title {
                f.severity = e.severity;
                f.evidence = e.evidence.clone();
                f.title = e.title.clone();
                f.updated = now;
                true
            } else {
                false
            }
        }
        (_, None) => false,
    }
}

/// A "fixed" claim whose asset the last scan could not judge (its host was silent): not
/// verified, and said so once per scan, with a note in the finding's story.
fn inconclusive(f: &mut Finding, asset: &Asset, now: Millis) -> bool {
    if asset.last_scan.is_empty() {
        return false;
    }
    let why = format!(
        "verification inconclusive: scan {} got no answer from the host (unreachable from \
         this vantage: a firewall may drop the scanner); the claim stays unverified",
        asset.last_scan
    );
    if f.verification_inconclusive.as_deref() == Some(why.as_str()) {
        return false;
    }
    f.notes.push(Note {
        at: now,
        actor: Actor::System,
        text: why.clone(),
    });
    f.verification_inconclusive = Some(why);
    f.updated = now;
    true
}

fn closure(f: &Finding, asset: &Asset, sanctioned: bool) -> (FindingState, String) {
    if asset.status == AssetStatus::Absent {
        return (
            FindingState::ClosedVerified,
            format!("scan {} covered it and no longer sees it", asset.last_scan),
        );
    }
    if f.rule == Rule::Unsanctioned && sanctioned {
        return (
            FindingState::ClosedSanctioned,
            "a sanction now covers it".into(),
        );
    }
    if asset.last_changed > f.updated || f.state == FindingState::Fixed {
        return (
            FindingState::ClosedVerified,
            format!("scan {} shows the exposure is gone", asset.last_scan),
        );
    }
    (
        FindingState::ClosedByPolicy,
        "the tenant's policy no longer flags it".into(),
    )
}

/// A person's request to move a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    pub to: FindingState,
    #[serde(default)]
    pub comment: String,
    /// Required for risk acceptance: Unix milliseconds or RFC 3339.
    #[serde(default, deserialize_with = "crate::time::opt_millis")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::time::TimeInput>))]
    pub until: Option<Millis>,
}

/// Whether a role may move findings to `to` at all (whatever the finding's state): the
/// API answers 403 when it may not.
pub fn role_may_move(role: Role, to: FindingState) -> bool {
    match role {
        Role::Admin | Role::Analyst => true,
        Role::Remediator => to != FindingState::RiskAccepted,
        Role::Viewer => false,
    }
}

/// Checks and applies a person's transition. Closing is never a person's to make: it
/// takes a scan.
pub fn transition(
    f: &mut Finding,
    actor: &Actor,
    req: &TransitionRequest,
    now: Millis,
) -> Result<()> {
    use FindingState::*;
    let role = match actor {
        Actor::User { role, .. } => *role,
        Actor::System => {
            return Err(StoreError::Refused(
                "the system moves findings by reconciling scans, not by request".into(),
            ))
        }
    };
    if !role_may_move(role, req.to) {
        return Err(StoreError::Refused(
            format!("a {role:?} may not move a finding to {}", req.to.name()).to_lowercase(),
        ));
    }
    if matches!(req.to, ClosedVerified | ClosedSanctioned | ClosedByPolicy) {
        return Err(StoreError::Refused(format!(
            "{} is set by the policy: mark the finding fixed and a verification scan will close it, \
             or add a sanction",
            req.to.name()
        )));
    }
    let ok = matches!(
        (f.state, req.to),
        (
            Open,
            Acknowledged | InProgress | Fixed | RiskAccepted | FalsePositive
        ) | (
            Acknowledged,
            InProgress | Fixed | RiskAccepted | FalsePositive
        ) | (
            InProgress,
            Acknowledged | Fixed | RiskAccepted | FalsePositive
        ) | (Fixed, InProgress)
            | (RiskAccepted | FalsePositive, Open)
    );
    if !ok {
        return Err(StoreError::Refused(format!(
            "a finding that is {} cannot be moved to {}",
            f.state.name(),
            req.to.name()
        )));
    }
    if req.to == RiskAccepted {
        match req.until {
            Some(u) if u > now => {}
            Some(_) => {
                return Err(StoreError::Refused(
                    "risk acceptance needs an expiry in the future".into(),
                ))
            }
            None => return Err(StoreError::Refused(
                "risk acceptance needs an expiry (until): acceptances are reviewed, not forever"
                    .into(),
            )),
        }
        if req.comment.trim().is_empty() {
            return Err(StoreError::Refused(
                "risk acceptance needs a comment saying why".into(),
            ));
        }
    }
    if req.to == FalsePositive && req.comment.trim().is_empty() {
        return Err(StoreError::Refused(
            "marking a false positive needs a comment saying why".into(),
        ));
    }
    f.risk_accepted_until = if req.to == RiskAccepted {
        req.until
    } else {
        None
    };
    // The claim time is what a later sighting disproves; no claim, no time.
    f.fixed_at = if req.to == Fixed { Some(now) } else { None };
    if req.to == Open {
        f.reopened += 1;
    }
    f.move_to(req.to, actor.clone(), req.comment.clone(), now);
    Ok(())
}

/// Whether a role may comment on or assign findings.
pub fn may_annotate(actor: &Actor) -> Result<()> {
    match actor {
        Actor::User {
            role: Role::Viewer, ..
        } => Err(StoreError::Refused(
            "a viewer may read findings but not comment on or assign them".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
mod udp;
