//! `--format xml`: results in nmap's XML shape (nmap.dtd, xmloutputversion 1.05), so the
//! tools that already import nmap output — Metasploit's `db_import`, python-libnmap,
//! Nessus and Faraday importers, `xsltproc nmap.xsl` — read ours.
//!
//! nmap groups ports under their host, and a host's ports arrive in probe order (random,
//! by design), so results are held per host and the document is written when the scan
//! ends. Held are only the reported ports (open, and closed with `--show-closed`), never
//! probes. The DTD fixes `scanner="nmap"`: the comment on the second line and
//! `profile_name` say who wrote the file.
//!
//! Everything a host sent (banners are not written; product, version, CPE are) is
//! escaped for XML attributes and text.

use aperture_fingerprints::{PortObservation, PortState};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the document says about the run itself.
#[derive(Debug, Clone)]
pub struct XmlRun {
    /// The command line, as typed.
    pub args: String,
    pub started: SystemTime,
    /// Per protocol: nmap's scan type name (`syn`, `connect`, `udp`), the protocol, and
    /// the ports probed.
    pub scans: Vec<(&'static str, &'static str, Vec<u16>)>,
}

impl XmlRun {
    pub fn new(scans: Vec<(&'static str, &'static str, Vec<u16>)>) -> Self {
        XmlRun {
            args: std::env::args().collect::<Vec<_>>().join(" "),
            started: SystemTime::now(),
            scans,
        }
    }
}

/// Reported ports, per host, until the run ends.
#[derive(Debug, Default)]
pub struct XmlHosts {
    hosts: BTreeMap<IpAddr, Vec<PortObservation>>,
}

impl XmlHosts {
    pub fn add(&mut self, o: &PortObservation) {
        self.hosts.entry(o.ip).or_default().push(o.clone());
    }

    pub fn write(&mut self, out: &mut dyn Write, run: &XmlRun) -> io::Result<()> {
        let start = secs(run.started);
        writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
        writeln!(out, "<!DOCTYPE nmaprun>")?;
        writeln!(
            out,
            "<!-- Aperture {} scan results in nmap's XML format (nmap.dtd) -->",
            env!("CARGO_PKG_VERSION")
        )?;
        writeln!(
            out,
            r#"<nmaprun scanner="nmap" profile_name="aperture" args="{}" start="{start}" startstr="{}" version="{}" xmloutputversion="1.05">"#,
            esc(&run.args),
            esc(&humantime::format_rfc3339_seconds(run.started).to_string()),
            env!("CARGO_PKG_VERSION")
        )?;
        for (kind, proto, ports) in &run.scans {
            writeln!(
                out,
                r#"<scaninfo type="{kind}" protocol="{proto}" numservices="{}" services="{}"/>"#,
                ports.len(),
                port_ranges(ports)
            )?;
        }
        writeln!(out, r#"<verbose level="0"/>"#)?;
        writeln!(out, r#"<debugging level="0"/>"#)?;
        let mut up = 0u64;
        for (ip, ports) in &mut self.hosts {
            ports.sort_by_key(|o| (o.port, o.timestamp));
            ports.dedup_by_key(|o| o.port);
            up += 1;
            write_host(out, *ip, ports)?;
        }
        let end = SystemTime::now();
        let elapsed = end
            .duration_since(run.started)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        writeln!(out, "<runstats>")?;
        writeln!(
            out,
            r#"<finished time="{}" timestr="{}" elapsed="{elapsed:.2}" summary="Aperture done: {up} hosts with reported ports in {elapsed:.2} seconds" exit="success"/>"#,
            secs(end),
            esc(&humantime::format_rfc3339_seconds(end).to_string()),
        )?;
        // Hosts that never answered are not known to this stateless scan: nmap's `down`
        // would claim more than was seen, so only the hosts reported are counted.
        writeln!(out, r#"<hosts up="{up}" down="0" total="{up}"/>"#)?;
        writeln!(out, "</runstats>")?;
        writeln!(out, "</nmaprun>")
    }
}

fn write_host(out: &mut dyn Write, ip: IpAddr, ports: &[PortObservation]) -> io::Result<()> {
    let first = ports
        .iter()
        .map(|o| o.timestamp)
        .min()
        .unwrap_or(UNIX_EPOCH);
    let last = ports
        .iter()
        .map(|o| o.timestamp)
        .max()
        .unwrap_or(UNIX_EPOCH);
    let (reason, ttl) = ports
        .iter()
        .find(|o| o.state == PortState::Open)
        .or(ports.first())
        .map(|o| (o.reason.to_string(), o.ttl.map(u32::from).unwrap_or(0)))
        .unwrap_or_default();
    writeln!(
        out,
        r#"<host starttime="{}" endtime="{}"><status state="up" reason="{reason}" reason_ttl="{ttl}"/>"#,
        secs(first),
        secs(last)
    )?;
    let kind = if ip.is_ipv4() { "ipv4" } else { "ipv6" };
    writeln!(out, r#"<address addr="{ip}" addrtype="{kind}"/>"#)?;
    writeln!(out, "<hostnames>\n</hostnames>")?;
    writeln!(out, "<ports>")?;
    for o in ports {
        write_port(out, o)?;
    }
    writeln!(out, "</ports>")?;
    writeln!(out, "</host>")
}

fn write_port(out: &mut dyn Write, o: &PortObservation) -> io::Result<()> {
    write!(
        out,
        r#"<port protocol="{}" portid="{}"><state state="{}" reason="{}" reason_ttl="{}"/>"#,
        o.proto,
        o.port,
        o.state,
        o.reason,
        o.ttl.map(u32::from).unwrap_or(0)
    )?;
    if let Some(s) = &o.service {
        if let Some(name) = &s.service {
            write!(
                out,
                r#"<service name="{}" method="probed" conf="{}""#,
                esc(&nmap_service_name(name, s.tls.is_some())),
                s.confidence.map(|c| (c / 10).min(10)).unwrap_or(3)
            )?;
            if let Some(p) = &s.product {
                write!(out, r#" product="{}""#, esc(p))?;
            }
            if let Some(v) = &s.version {
                write!(out, r#" version="{}""#, esc(v))?;
            }
            if let Some(os) = &s.os {
                write!(out, r#" ostype="{}""#, esc(os))?;
            }
            if s.tls.is_some() {
                write!(out, r#" tunnel="ssl""#)?;
            }
            match s.cpe.as_deref().and_then(cpe_uri) {
                Some(cpe) => write!(out, "><cpe>{}</cpe></service>", esc(&cpe))?,
                None => write!(out, "/>")?,
            }
        }
    }
    writeln!(out, "</port>")
}

/// nmap names a TLS-wrapped HTTP service `http` with `tunnel="ssl"`; so do we, and the
/// rest of our service names (`ssh`, `smtp`, `mysql`…) are the IANA names nmap uses too.
fn nmap_service_name(name: &str, tls: bool) -> String {
    match name {
        "https" if tls => "http".to_owned(),
        other => other.to_owned(),
    }
}

/// nmap writes CPE 2.2 URIs (`cpe:/a:vendor:product:version`); CPE 2.3 formatted strings
/// are turned into one (unset `*` and not-applicable `-` trailing fields dropped).
fn cpe_uri(cpe: &str) -> Option<String> {
    if cpe.starts_with("cpe:/") {
        return Some(cpe.to_owned());
    }
    let rest = cpe.strip_prefix("cpe:2.3:")?;
    let fields: Vec<&str> = rest.split(':').take(5).collect();
    let keep = fields
        .iter()
        .rposition(|f| *f != "*" && *f != "-" && !f.is_empty())?;
    let parts: Vec<String> = fields[..=keep]
        .iter()
        .map(|f| {
            if *f == "*" {
                String::new()
            } else {
                f.replace('\\', "")
            }
        })
        .collect();
    Some(format!("cpe:/{}", parts.join(":")))
}

/// `22,80,443,8000-8100`, as nmap writes `services`.
fn port_ranges(ports: &[u16]) -> String {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    out.join(",")
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Escapes for both attribute values and text; control characters (never valid in
/// XML 1.0) become U+FFFD so a hostile product string cannot break the document.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push_str(&format!("&#{};", c as u32)),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_are_written_as_nmap_does() {
        assert_eq!(port_ranges(&[443, 22, 80, 81, 82, 22]), "22,80-82,443");
        assert_eq!(port_ranges(&[]), "");
    }

    #[test]
    fn cpe_23_becomes_a_22_uri() {
        assert_eq!(
            cpe_uri("cpe:2.3:a:openbsd:openssh:9.2p1:*:*:*:*:*:*:*").as_deref(),
            Some("cpe:/a:openbsd:openssh:9.2p1")
        );
        assert_eq!(
            cpe_uri("cpe:2.3:a:nginx:nginx:*:*:*:*:*:*:*:*").as_deref(),
            Some("cpe:/a:nginx:nginx")
        );
        assert_eq!(
            cpe_uri("cpe:/a:lab:lab:7").as_deref(),
            Some("cpe:/a:lab:lab:7")
        );
        assert_eq!(cpe_uri("garbage"), None);
    }

    #[test]
    fn hostile_text_cannot_break_the_document() {
        let s = esc("\"/><script>&\u{1}x\u{ffff}");
        assert_eq!(s, "&quot;/&gt;&lt;script&gt;&amp;\u{fffd}x\u{fffd}");
        let doc = format!(r#"<a b="{s}">{s}</a>"#);
        let parsed = roxmltree::Document::parse(&doc).expect("well-formed");
        assert_eq!(
            parsed.root_element().attribute("b"),
            Some("\"/><script>&\u{fffd}x\u{fffd}")
        );
    }
}
