//! Result formats. JSON Lines is the contract (schema in the README); the others are for
//! people and for tools that already read masscan's or nmap's output.

use crate::cli::Format;
use crate::output_xml::{XmlHosts, XmlRun};
use aperture_fingerprints::PortObservation;
use std::io::{self, Write};
use std::time::UNIX_EPOCH;

pub struct ResultWriter {
    out: Box<dyn Write + Send>,
    format: Format,
    /// `--format xml`: the run's description and the ports held until it ends.
    xml: Option<(XmlRun, XmlHosts)>,
}

impl ResultWriter {
    pub fn new(out: Box<dyn Write + Send>, format: Format) -> Self {
        Self {
            out,
            format,
            xml: None,
        }
    }

    /// What an XML document says about the run (ignored by the other formats).
    pub fn with_run(mut self, run: XmlRun) -> Self {
        if self.format == Format::Xml {
            self.xml = Some((run, XmlHosts::default()));
        }
        self
    }

    pub fn begin(&mut self) -> io::Result<()> {
        match self.format {
            Format::Csv => writeln!(
                self.out,
                "ip,port,proto,state,reason,ttl,timestamp,scan_id,probe"
            ),
            Format::List => writeln!(self.out, "#aperture list v1"),
            Format::Grepable => writeln!(self.out, "# aperture grepable v1"),
            Format::Jsonl | Format::Xml => Ok(()),
        }
    }

    pub fn write(&mut self, o: &PortObservation) -> io::Result<()> {
        match self.format {
            Format::Xml => {
                if let Some((_, hosts)) = &mut self.xml {
                    hosts.add(o);
                }
                Ok(())
            }
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, o)?;
                self.out.write_all(b"\n")
            }
            Format::Csv => writeln!(
                self.out,
                "{},{},{},{},{},{},{},{},{}",
                o.ip,
                o.port,
                o.proto,
                o.state,
                o.reason,
                o.ttl.map(|t| t.to_string()).unwrap_or_default(),
                humantime::format_rfc3339_millis(o.timestamp),
                csv_field(&o.scan_id),
                o.probe
            ),
            Format::Grepable => writeln!(
                self.out,
                "Host: {} ()\tPorts: {}/{}/{}//{}//",
                o.ip, o.port, o.state, o.proto, o.reason
            ),
            Format::List => writeln!(
                self.out,
                "{} {} {} {} {}",
                o.state,
                o.proto,
                o.port,
                o.ip,
                o.timestamp
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            ),
        }
    }

    /// One probe of a dry run.
    pub fn write_probe(
        &mut self,
        position: u64,
        ip: std::net::IpAddr,
        port: u16,
    ) -> io::Result<()> {
        match self.format {
            Format::Jsonl => writeln!(
                self.out,
                r#"{{"position":{position},"ip":"{ip}","port":{port}}}"#
            ),
            Format::Csv => writeln!(self.out, "{position},{ip},{port}"),
            Format::Grepable | Format::List | Format::Xml => writeln!(self.out, "{ip} {port}"),
        }
    }

    /// One UDP probe of a dry run, with the protocol its payload speaks.
    pub fn write_udp_probe(
        &mut self,
        position: u64,
        ip: std::net::IpAddr,
        port: u16,
        protocol: &str,
    ) -> io::Result<()> {
        match self.format {
            Format::Jsonl => writeln!(
                self.out,
                r#"{{"position":{position},"ip":"{ip}","port":{port},"proto":"udp","protocol":"{protocol}"}}"#
            ),
            Format::Csv => writeln!(self.out, "{position},{ip},U:{port}"),
            Format::Grepable | Format::List | Format::Xml => {
                writeln!(self.out, "{ip} U:{port} {protocol}")
            }
        }
    }

    pub fn begin_probes(&mut self) -> io::Result<()> {
        match self.format {
            Format::Csv => writeln!(self.out, "position,ip,port"),
            _ => Ok(()),
        }
    }

    /// Ends a dry run: no results footer, the lines are probes.
    pub fn finish_probes(mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn finish(mut self) -> io::Result<()> {
        if self.format == Format::List {
            writeln!(self.out, "# end")?;
        }
        if let Some((run, hosts)) = &mut self.xml {
            hosts.write(&mut self.out, run)?;
        }
        self.out.flush()
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
