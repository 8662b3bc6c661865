//! Running the UDP part of a scan: the stateless engine with the UDP probe module, and
//! a sink that parses each port's first reply into facts and adds up every reply's
//! bytes until the port's segment is done (its wait over): the amplification a
//! reflector would give, measured rather than assumed.

use super::{bad, EngineSettings, PortSink};
use crate::cookie::CookieKey;
use crate::engine::{Finished, Hit, HitSink, Progress};
use crate::permute::Permutation;
use crate::plan::{Plan, UdpPlan};
use crate::rawsock::{source_for, RawReceiver, RawSender};
use crate::syn::{run_syn, SynRun};
use crate::udp::UdpProbe;
use crate::{EngineError, Failure};
use aperture_fingerprints::report::{ServiceReport, UdpReport};
use aperture_fingerprints::udp::parse_reply;
use aperture_fingerprints::{PortObservation, PortState, Probe, Proto};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// Open UDP ports of one segment, with their replies so far.
type OpenPorts = HashMap<(IpAddr, u16), PortObservation>;

/// Open UDP ports of the segments in flight.
struct Collect<'a, O> {
    probe: &'a UdpProbe,
    scan_id: String,
    /// Probes sent to each port (retries + 1): the requests the replies answer.
    passes: u32,
    out: Arc<O>,
    open: Mutex<HashMap<usize, OpenPorts>>,
}

impl<O: PortSink> Collect<'_, O> {
    fn observation(&self, hit: &Hit) -> PortObservation {
        PortObservation {
            ip: hit.ip,
            port: hit.port,
            proto: Proto::Udp,
            state: hit.state,
            reason: hit.reason,
            ttl: hit.ttl,
            timestamp: hit.at,
            scan_id: self.scan_id.clone(),
            probe: Probe::Udp,
            service: None,
        }
    }

    fn report(&self, hit: &Hit) -> Option<ServiceReport> {
        let proto = self.probe.protocol(hit.port)?;
        let facts = parse_reply(proto, hit.data.as_deref().unwrap_or_default());
        let request = self.probe.request_bytes(hit.port).saturating_sub(28) as u32;
        Some(ServiceReport {
            service: Some(facts.service),
            product: facts.product,
            version: facts.version,
            udp: Some(UdpReport {
                protocol: proto.name().to_string(),
                request_bytes: request,
                reply_bytes: 0,
                replies: 0,
                amplification_x100: 0,
                facts: facts.facts,
            }),
            ..ServiceReport::default()
        })
    }

    /// Hands a segment's open ports on, with their totals. False: the consumer hung up.
    fn flush(&self, segment: usize) -> bool {
        let ports = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&segment)
            .unwrap_or_default();
        let mut ports: Vec<PortObservation> = ports.into_values().collect();
        ports.sort_by_key(|o| (o.ip, o.port));
        for mut obs in ports {
            if let Some(u) = obs.service.as_mut().and_then(|s| s.udp.as_mut()) {
                let sent = u64::from(u.request_bytes) * u64::from(self.passes.max(1));
                // An empty probe (no protocol for the port) has no ratio: 0.
                if let Some(x100) = (u64::from(u.reply_bytes) * 100).checked_div(sent) {
                    u.amplification_x100 = u32::try_from(x100).unwrap_or(u32::MAX);
                }
            }
            if !self.out.observation(segment, obs) {
                return false;
            }
        }
        true
    }

    fn segments(&self) -> Vec<usize> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut s: Vec<usize> = open.keys().copied().collect();
        s.sort_unstable();
        s
    }
}

impl<O: PortSink> HitSink for Collect<'_, O> {
    fn hit(&self, segment: usize, hit: Hit) -> bool {
        if hit.state != PortState::Open {
            return self.out.observation(segment, self.observation(&hit));
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let obs = open
            .entry(segment)
            .or_default()
            .entry((hit.ip, hit.port))
            .or_insert_with(|| {
                let mut obs = self.observation(&hit);
                obs.service = self.report(&hit);
                obs
            });
        if let Some(u) = obs.service.as_mut().and_then(|s| s.udp.as_mut()) {
            u.reply_bytes = u.reply_bytes.saturating_add(hit.reply_len);
            u.replies = u.replies.saturating_add(1);
        }
        true
    }

    fn segment_done(&self, segment: usize) {
        if self.flush(segment) {
            self.out.segment_done(segment);
        }
    }

    fn may_start(&self, segment: usize) -> bool {
        self.out.may_start(segment)
    }
}

/// Runs the given segments of the UDP space of `plan` with raw sockets, every
/// observation (open, and closed/filtered when asked) to `out`.
#[allow(clippy::too_many_arguments)]
pub fn run_udp_segments<O: PortSink>(
    s: &EngineSettings,
    plan: &Plan,
    udp: &UdpPlan,
    order: Permutation,
    segments: &[(u64, u64)],
    progress: &Progress,
    stop: &AtomicBool,
    out: Arc<O>,
) -> Result<Finished, Failure> {
    let first = udp
        .space
        .v4()
        .nth(0)
        .map(Ipv4Addr::from)
        .ok_or_else(|| bad("UDP probes need IPv4 targets"))?;
    let source = match s.source_ip {
        Some(ip) => ip,
        None => source_for(first).ok_or(EngineError::NoSource(IpAddr::V4(first)))?,
    };
    let probe = UdpProbe::new(
        u32::from(source),
        CookieKey::random(),
        s.source_ports,
        s.ttl,
        udp.space.ports(),
        &udp.protocols,
    );
    let receiver = RawReceiver::open_udp()?;
    let mut sender = RawSender::open()?;
    let run = SynRun {
        space: &udp.space,
        order,
        segments,
        guard: &plan.guard,
        retries: s.retries,
        wait: s.wait,
        rate: s.rate.clone(),
        per_net_rate: s.per_net_rate,
        show_closed: s.show_closed,
        closed_hosts: s.closed_hosts,
    };
    let sink = Collect {
        probe: &probe,
        scan_id: s.scan_id.clone(),
        passes: s.retries.saturating_add(1),
        out,
        open: Mutex::default(),
    };
    let finished = run_syn(&run, &probe, &mut sender, receiver, progress, stop, &sink)?;
    // A stopped run: what its cut segments found still goes out (not marked done).
    for segment in sink.segments() {
        if !sink.flush(segment) {
            break;
        }
    }
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aperture_fingerprints::udp::UdpProto;
    use aperture_fingerprints::Reason;
    use std::collections::BTreeMap;
    use std::sync::mpsc;
    use std::time::SystemTime;

    fn hit(ip: &str, port: u16, data: &[u8], reply_len: u32) -> Hit {
        Hit {
            ip: ip.parse().expect("ip"),
            port,
            state: PortState::Open,
            reason: Reason::UdpResponse,
            ttl: Some(64),
            at: SystemTime::UNIX_EPOCH,
            data: Some(Arc::from(data)),
            reply_len,
        }
    }

    #[test]
    fn every_reply_of_a_port_adds_to_its_amplification_once_the_segment_is_done() {
        let probe = UdpProbe::new(
            0xC613_FF01,
            CookieKey::new(1, 2),
            (61000, 16),
            64,
            &[11211],
            &BTreeMap::from([(11211, UdpProto::Memcached)]),
        );
        let (tx, rx) = mpsc::channel();
        let sink = Collect {
            probe: &probe,
            scan_id: "s".into(),
            passes: 2,
            out: Arc::new(tx),
            open: Mutex::default(),
        };
        let reply = b"\0\0\0\0\0\x01\0\0VERSION 1.6.18\r\n";
        assert!(sink.hit(0, hit("198.18.0.9", 11211, reply, 1700)));
        assert!(sink.hit(0, hit("198.18.0.9", 11211, b"garbage", 1700)));
        assert!(rx.try_recv().is_err(), "held until the segment is done");
        sink.segment_done(0);
        let obs = rx.try_recv().expect("reported");
        assert_eq!((obs.proto, obs.probe), (Proto::Udp, Probe::Udp));
        let service = obs.service.expect("facts");
        assert_eq!(service.product.as_deref(), Some("memcached"));
        assert_eq!(
            service.version.as_deref(),
            Some("1.6.18"),
            "from the first reply"
        );
        let udp = service.udp.expect("udp report");
        // The probe's payload is 17 bytes (8 of frame header, `version\r\n`).
        assert_eq!(
            (udp.request_bytes, udp.replies, udp.reply_bytes),
            (17, 2, 3400)
        );
        // Two passes sent two probes: the replies answer 34 bytes.
        assert_eq!(udp.amplification_x100, 3400 * 100 / 34);
        assert!(rx.try_recv().is_err(), "one observation per port");
    }
}
