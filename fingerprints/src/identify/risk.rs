//! Why an exposed service matters: a coarse class per service, plus the derived
//! "credentials cross the wire in clear" flag.

use crate::session::Banner;
use serde::{Deserialize, Serialize};

/// The kind of exposure a service represents. The exposure policy turns these into
/// severities; identification only says which class a service falls in.
///
/// Cleartext authentication is deliberately *not* a variant: it is a property of how a
/// service is configured (FTP is file-transfer whether or not it offers AUTH TLS), so it
/// is computed separately by [`cleartext_auth`] and carried next to the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RiskClass {
    /// Interactive control of a host (ssh, rdp, telnet, vnc, winrm, admin consoles that
    /// execute code such as Jenkins or Webmin): one guessed or stolen password, or one
    /// pre-auth bug, is full compromise; these are the first thing brute-forcers hit.
    RemoteAdministration,
    /// A database listener (mysql, postgres, mongodb, mssql, oracle, elasticsearch,
    /// couchdb...): the organisation's data one query away; many ship without
    /// authentication or with default accounts, and they are mass-scanned for ransom wipes.
    Database,
    /// An in-memory cache (redis, memcached): usually unauthenticated by design, leaks
    /// session tokens and cached data, and (redis) can be turned into code execution;
    /// memcached over UDP is also a DDoS amplifier.
    Cache,
    /// A message broker (mqtt, amqp, kafka, nats): anyone who can connect may read or
    /// inject the messages that drive other systems, often devices.
    MessageBroker,
    /// File or object transfer and sharing (ftp, tftp, smb, nfs, rsync, sftp-only
    /// servers, object stores): bulk data exposure; smb is also the classic wormable
    /// attack surface.
    FileTransfer,
    /// Mail transport and access (smtp, imap, pop3): credential-stuffing target, open
    /// relays, user enumeration; also the servers that parse the most hostile input.
    Mail,
    /// A web server or application (http): the broadest surface; specific applications
    /// behind it get a more specific class when a rule recognises them.
    Web,
    /// A directory service (ldap, active directory): anonymous binds leak the whole
    /// organisation chart and account names; it is the keys to the domain.
    Directory,
    /// A name server (dns): zone transfers leak internal names, open resolvers are
    /// amplifiers, and version strings map directly to known CVEs.
    NameService,
    /// Industrial control protocols (modbus, s7, bacnet, dnp3, ethernet/ip...): no
    /// authentication in the protocol at all; a write moves physical equipment.
    IndustrialControl,
    /// Container engines and orchestrators (docker api, kubernetes api, kubelet, etcd,
    /// registries): an unauthenticated docker socket is root on the host, a cluster API
    /// is every workload in it.
    ContainerOrchestration,
    /// Monitoring and observability (snmp, prometheus, grafana, kibana, splunk): leaks
    /// internal topology, hostnames and metrics; SNMP v1/v2c community strings are
    /// passwords sent in clear.
    Monitoring,
    /// Not recognised, or a transport without a service class of its own (bare tls).
    Unknown,
}

impl RiskClass {
    /// The kebab-case name, as serialised (without going through serde).
    pub fn as_str(self) -> &'static str {
        match self {
            RiskClass::RemoteAdministration => "remote-administration",
            RiskClass::Database => "database",
            RiskClass::Cache => "cache",
            RiskClass::MessageBroker => "message-broker",
            RiskClass::FileTransfer => "file-transfer",
            RiskClass::Mail => "mail",
            RiskClass::Web => "web",
            RiskClass::Directory => "directory",
            RiskClass::NameService => "name-service",
            RiskClass::IndustrialControl => "industrial-control",
            RiskClass::ContainerOrchestration => "container-orchestration",
            RiskClass::Monitoring => "monitoring",
            RiskClass::Unknown => "unknown",
        }
    }

    /// The class implied by a wire protocol alone, before any product is recognised.
    pub fn from_protocol(protocol: &str) -> RiskClass {
        match protocol.to_ascii_lowercase().as_str() {
            "ssh" | "rdp" | "telnet" | "vnc" | "rfb" | "winrm" | "x11" | "rlogin" | "rsh"
            | "rexec" | "ipmi" => RiskClass::RemoteAdministration,
            "mysql" | "postgres" | "postgresql" | "mongodb" | "mssql" | "oracle" | "tns"
            | "elasticsearch" | "couchdb" | "cassandra" | "db2" | "influxdb" | "clickhouse"
            | "neo4j" => RiskClass::Database,
            "redis" | "memcached" => RiskClass::Cache,
            "mqtt" | "amqp" | "kafka" | "nats" | "stomp" => RiskClass::MessageBroker,
            "ftp" | "ftps" | "tftp" | "smb" | "nfs" | "rsync" | "afp" => RiskClass::FileTransfer,
            "smtp" | "submission" | "smtps" | "imap" | "imaps" | "pop3" | "pop3s" => {
                RiskClass::Mail
            }
            "http" | "https" => RiskClass::Web,
            "ldap" | "ldaps" | "kerberos" => RiskClass::Directory,
            "dns" | "mdns" => RiskClass::NameService,
            "modbus" | "s7" | "bacnet" | "dnp3" | "ethernetip" | "iec104" | "fins" | "fox" => {
                RiskClass::IndustrialControl
            }
            "docker" | "kubernetes" | "kubelet" | "etcd" => RiskClass::ContainerOrchestration,
            "snmp" | "prometheus" => RiskClass::Monitoring,
            _ => RiskClass::Unknown,
        }
    }
}

/// Protocols whose mere presence is an identification (the protocol-level fallback).
/// `tls` is known but has no class of its own.
pub(crate) fn is_known_protocol(protocol: &str) -> bool {
    protocol.eq_ignore_ascii_case("tls") || RiskClass::from_protocol(protocol) != RiskClass::Unknown
}

/// Whether a client logging in to this service would send its credentials in clear.
///
/// Derived from the wire protocol and what the server offered, not from the product:
/// - telnet: always;
/// - imap: as below, but LOGINDISABLED also clears it, and a greeting's capability
///   list counts as an offer when no CAPABILITY exchange happened;
/// - ftp, imap, pop3, ldap: unless the server offered an upgrade (`starttls == Some(true)`:
///   AUTH TLS / STARTTLS / the LDAP StartTLS extended operation). An unknown offer
///   (`None`) counts as cleartext, because the policy should flag what it cannot clear;
/// - smtp: only when AUTH is advertised (the EHLO `extensions` field, or `250-AUTH` in
///   the text) without STARTTLS; plain relaying carries no password;
/// - postgres: when the server asked for a cleartext password and refused SSL.
///
/// A `tls` field that is true ("the session already ran inside TLS", e.g. ldaps, ftps)
/// clears the flag for every protocol.
pub fn cleartext_auth(banner: &Banner) -> bool {
    if banner.fields.get("tls").is_some_and(|v| truthy(v)) {
        return false;
    }
    let upgraded = banner.starttls == Some(true);
    match banner.protocol.to_ascii_lowercase().as_str() {
        "telnet" => true,
        "ftp" | "pop3" | "ldap" => !upgraded,
        "imap" => {
            // The greeting often carries the capability list, so the answer may be known
            // before (or without) a CAPABILITY exchange; LOGINDISABLED means the server
            // refuses plaintext LOGIN until TLS is up.
            let offered = upgraded || (banner.starttls.is_none() && imap_lists(banner, "STARTTLS"));
            !offered && !imap_lists(banner, "LOGINDISABLED")
        }
        "smtp" => !upgraded && advertises_smtp_auth(banner),
        "postgres" | "postgresql" => {
            let asks_cleartext = banner.fields.get("auth").is_some_and(|a| {
                let a = a.to_ascii_lowercase();
                a.contains("cleartext") || a == "password" || a == "3"
            });
            let ssl = banner.fields.get("ssl").is_some_and(|v| truthy(v));
            asks_cleartext && !ssl
        }
        _ => false,
    }
}

/// An IMAP capability atom in the `capabilities` field (one per line) or in the
/// greeting's `[CAPABILITY ...]` response code.
fn imap_lists(banner: &Banner, atom: &str) -> bool {
    let in_field = banner
        .fields
        .get("capabilities")
        .is_some_and(|c| c.lines().any(|l| l.trim().eq_ignore_ascii_case(atom)));
    let in_greeting = banner
        .text
        .find("[CAPABILITY ")
        .and_then(|start| {
            let rest = banner.text.get(start..)?;
            rest.get(..rest.find(']')?)
        })
        .is_some_and(|caps| {
            caps.split_ascii_whitespace()
                .any(|w| w.eq_ignore_ascii_case(atom))
        });
    in_field || in_greeting
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "1" | "s" | "on" | "supported"
    )
}

/// The SMTP session lists EHLO extensions one per line in `extensions`
/// (`AUTH PLAIN LOGIN`, or the pre-RFC `AUTH=LOGIN`); raw EHLO text has them as
/// `250-AUTH ...` with line breaks escaped.
fn advertises_smtp_auth(banner: &Banner) -> bool {
    let listed = banner.fields.get("extensions").is_some_and(|ext| {
        ext.lines().any(|l| {
            let word = l.trim_start().get(..4).unwrap_or_default();
            word.eq_ignore_ascii_case("AUTH")
                && matches!(
                    l.trim_start().as_bytes().get(4),
                    None | Some(b' ') | Some(b'=')
                )
        })
    });
    let upper = banner.text.to_ascii_uppercase();
    listed || upper.contains("250-AUTH") || upper.contains("250 AUTH")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serialised_names() {
        use RiskClass::*;
        for r in [
            RemoteAdministration,
            Database,
            Cache,
            MessageBroker,
            FileTransfer,
            Mail,
            Web,
            Directory,
            NameService,
            IndustrialControl,
            ContainerOrchestration,
            Monitoring,
            Unknown,
        ] {
            assert_eq!(
                serde_json::to_value(r).expect("serialises"),
                serde_json::Value::String(r.as_str().to_owned())
            );
        }
    }

    fn banner(protocol: &str, starttls: Option<bool>) -> Banner {
        Banner {
            protocol: protocol.into(),
            starttls,
            ..Banner::default()
        }
    }

    #[test]
    fn serde_names_are_kebab_case() {
        let s = serde_json::to_string(&RiskClass::RemoteAdministration).unwrap_or_default();
        assert_eq!(s, "\"remote-administration\"");
        let s = serde_json::to_string(&RiskClass::ContainerOrchestration).unwrap_or_default();
        assert_eq!(s, "\"container-orchestration\"");
        let back: RiskClass =
            serde_json::from_str("\"industrial-control\"").unwrap_or(RiskClass::Unknown);
        assert_eq!(back, RiskClass::IndustrialControl);
    }

    #[test]
    fn protocol_classes() {
        assert_eq!(
            RiskClass::from_protocol("ssh"),
            RiskClass::RemoteAdministration
        );
        assert_eq!(RiskClass::from_protocol("MySQL"), RiskClass::Database);
        assert_eq!(RiskClass::from_protocol("redis"), RiskClass::Cache);
        assert_eq!(RiskClass::from_protocol("mqtt"), RiskClass::MessageBroker);
        assert_eq!(RiskClass::from_protocol("ftp"), RiskClass::FileTransfer);
        assert_eq!(RiskClass::from_protocol("smb"), RiskClass::FileTransfer);
        assert_eq!(RiskClass::from_protocol("pop3"), RiskClass::Mail);
        assert_eq!(RiskClass::from_protocol("http"), RiskClass::Web);
        assert_eq!(RiskClass::from_protocol("ldap"), RiskClass::Directory);
        assert_eq!(RiskClass::from_protocol("dns"), RiskClass::NameService);
        assert_eq!(
            RiskClass::from_protocol("modbus"),
            RiskClass::IndustrialControl
        );
        assert_eq!(RiskClass::from_protocol("tls"), RiskClass::Unknown);
        assert_eq!(RiskClass::from_protocol("gopher"), RiskClass::Unknown);
        assert!(is_known_protocol("tls"));
        assert!(!is_known_protocol("gopher"));
    }

    #[test]
    fn cleartext_flags() {
        assert!(cleartext_auth(&banner("telnet", None)));
        assert!(cleartext_auth(&banner("ftp", Some(false))));
        assert!(cleartext_auth(&banner("ftp", None)));
        assert!(!cleartext_auth(&banner("ftp", Some(true))));
        assert!(cleartext_auth(&banner("imap", Some(false))));
        assert!(!cleartext_auth(&banner("pop3", Some(true))));
        assert!(cleartext_auth(&banner("ldap", None)));

        let mut imap = banner("imap", None);
        imap.text =
            "* OK [CAPABILITY IMAP4rev1 LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.".into();
        assert!(!cleartext_auth(&imap), "offered in the greeting");
        imap.starttls = Some(false);
        assert!(
            cleartext_auth(&imap),
            "the CAPABILITY answer wins over the greeting"
        );
        imap.fields
            .insert("capabilities".into(), "IMAP4rev1\nLOGINDISABLED".into());
        assert!(!cleartext_auth(&imap), "plaintext LOGIN refused");
        assert!(!cleartext_auth(&banner("ssh", None)));
        assert!(!cleartext_auth(&banner("http", None)));

        let mut ldaps = banner("ldap", None);
        ldaps.fields.insert("tls".into(), "true".into());
        assert!(!cleartext_auth(&ldaps));

        let mut smtp = banner("smtp", Some(false));
        smtp.text =
            "220 mx ESMTP\\r\\n250-mx\\r\\n250-AUTH PLAIN LOGIN\\r\\n250 8BITMIME\\r\\n".into();
        assert!(cleartext_auth(&smtp));
        smtp.starttls = Some(true);
        assert!(!cleartext_auth(&smtp));
        let mut fields_only = banner("smtp", Some(false));
        fields_only.text = "220 mx ESMTP Postfix\\r\\n".into();
        fields_only.fields.insert(
            "extensions".into(),
            "PIPELINING\nSIZE 10240000\nAUTH PLAIN LOGIN".into(),
        );
        assert!(cleartext_auth(&fields_only));
        fields_only.fields.insert(
            "extensions".into(),
            "PIPELINING\nAUTHORITY\n8BITMIME".into(),
        );
        assert!(!cleartext_auth(&fields_only));
        let relay_only = Banner {
            protocol: "smtp".into(),
            text: "220 mx ESMTP\\r\\n250-mx\\r\\n250 8BITMIME\\r\\n".into(),
            starttls: Some(false),
            ..Banner::default()
        };
        assert!(!cleartext_auth(&relay_only));

        let mut pg = banner("postgres", None);
        pg.fields.insert("auth".into(), "cleartext".into());
        pg.fields.insert("ssl".into(), "false".into());
        assert!(cleartext_auth(&pg));
        pg.fields.insert("ssl".into(), "true".into());
        assert!(!cleartext_auth(&pg));
    }
}
