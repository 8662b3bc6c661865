//! A shard as plain data: everything a worker needs to run a range of a planned scan
//! with no access to the service that planned it, and the one call that runs it.
//!
//! The coordinator plans a scan (targets checked against the tenant's scope, exclusions
//! applied), cuts the permuted order into segments and sends each worker a
//! [`ShardSpec`]. The worker rebuilds the space, the order and the send-path guard from
//! it — refusing a spec that does not hold together — and runs it with [`run_shard`].
//! On the way back, [`ShardSpec::contains`] tells the coordinator whether a result
//! answers a probe of that shard at all.

use super::{run_segments, EngineSettings, Failure, PortSink};
use crate::engine::{Finished, Progress, SendGuard};
use crate::intervals::IntervalSet;
use crate::permute::Permutation;
use crate::plan::{Plan, UdpPlan};
use crate::shard::ScanSpec;
use crate::space::TargetSpace;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Address ranges (inclusive), written as addresses: IPv6 as text, since JSON numbers do
/// not carry 128 bits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRanges {
    pub v4: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub v6: Vec<(Ipv6Addr, Ipv6Addr)>,
}

impl AddressRanges {
    pub fn from_sets(v4: &IntervalSet<u32>, v6: &IntervalSet<u128>) -> Self {
        Self {
            v4: v4
                .ranges()
                .iter()
                .map(|&(a, b)| (a.into(), b.into()))
                .collect(),
            v6: v6
                .ranges()
                .iter()
                .map(|&(a, b)| (a.into(), b.into()))
                .collect(),
        }
    }

    pub fn to_sets(&self) -> (IntervalSet<u32>, IntervalSet<u128>) {
        (
            IntervalSet::from_ranges(self.v4.iter().map(|&(a, b)| (u32::from(a), u32::from(b)))),
            IntervalSet::from_ranges(self.v6.iter().map(|&(a, b)| (u128::from(a), u128::from(b)))),
        )
    }
}

/// The send-path guard of a planned scan: what is never probed (special-purpose ranges
/// unless opted in, the user's and the tenant's exclusions), and the tenant's scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardSpec {
    pub excluded: AddressRanges,
    /// Only these addresses may be probed; `None`: no tenant (the CLI).
    pub allowed: Option<AddressRanges>,
}

impl GuardSpec {
    pub fn from_guard(guard: &SendGuard) -> Self {
        Self {
            excluded: AddressRanges::from_sets(&guard.excluded_v4, &guard.excluded_v6),
            allowed: guard
                .allowed
                .as_ref()
                .map(|(v4, v6)| AddressRanges::from_sets(v4, v6)),
        }
    }

    pub fn guard(&self) -> SendGuard {
        let (excluded_v4, excluded_v6) = self.excluded.to_sets();
        SendGuard {
            excluded_v4,
            excluded_v6,
            allowed: self.allowed.as_ref().map(AddressRanges::to_sets),
        }
    }
}

/// One shard of a planned scan, self-contained. Serializes to JSON as plain data:
/// durations as integer milliseconds (`*_ms`), addresses as text, the rate as a number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardSpec {
    /// The scan's id, target space (address ranges with exclusions already applied,
    /// ports) and the seed of its permuted order.
    pub scan: ScanSpec,
    /// The positions of the scan's permuted order this shard probes: ascending,
    /// disjoint ranges `[start, end)`. Observations carry the index of their segment.
    pub segments: Vec<(u64, u64)>,
    pub guard: GuardSpec,
    /// Host names the scan's targets named, with their addresses: the grabs' SNI, Host
    /// and EHLO names.
    pub resolved: Vec<(String, Vec<IpAddr>)>,
    pub settings: EngineSettings,
    /// Set for a shard of a scan's UDP space (its ports are UDP ports), with the
    /// protocol the user chose for some of them; absent for TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<std::collections::BTreeMap<u16, aperture_fingerprints::udp::UdpProto>>,
}

fn inconsistent(scan: &str, why: String) -> Failure {
    Failure::BadInput(format!(
        "shard of scan {scan} does not hold together: {why}"
    ))
}

impl ShardSpec {
    /// The shard of `plan` (ordered by `seed`) made of `segments`, run with `settings`;
    /// the scan id is the settings'.
    pub fn from_plan(
        plan: &Plan,
        seed: u64,
        segments: Vec<(u64, u64)>,
        settings: EngineSettings,
    ) -> Self {
        Self {
            scan: ScanSpec::from_space(settings.scan_id.clone(), &plan.space, seed),
            segments,
            guard: GuardSpec::from_guard(&plan.guard),
            resolved: plan.resolved.clone(),
            settings,
            udp: None,
        }
    }

    /// The shard of the UDP space of `plan` (ordered by `seed`) made of `segments`.
    pub fn from_udp_plan(
        plan: &Plan,
        udp: &UdpPlan,
        seed: u64,
        segments: Vec<(u64, u64)>,
        settings: EngineSettings,
    ) -> Self {
        Self {
            scan: ScanSpec::from_space(settings.scan_id.clone(), &udp.space, seed),
            segments,
            guard: GuardSpec::from_guard(&plan.guard),
            resolved: Vec::new(),
            settings,
            udp: Some(udp.protocols.clone()),
        }
    }

    /// Rebuilds the plan and the permuted order exactly as the coordinator had them.
    /// Refuses (as bad input) a spec that does not hold together: two scan ids,
    /// segments out of order, overlapping or beyond the space, a space reaching into
    /// excluded addresses or out of the allowed scope.
    pub fn build(&self) -> Result<(Plan, Permutation), Failure> {
        let id = &self.scan.scan_id;
        if self.settings.scan_id != *id {
            return Err(inconsistent(
                id,
                format!("its settings name scan {}", self.settings.scan_id),
            ));
        }
        let space = self
            .scan
            .space()
            .map_err(|e| inconsistent(id, format!("its target space: {e}")))?;
        check_segments(&self.segments, space.size()).map_err(|why| inconsistent(id, why))?;
        let guard = self.guard.guard();
        check_guard(&space, &guard).map_err(|why| inconsistent(id, why))?;
        let order = self.scan.permutation(&space);
        if self.udp.is_some() && !space.v6().is_empty() {
            return Err(inconsistent(
                id,
                "its UDP space holds IPv6 addresses".into(),
            ));
        }
        let udp = self.udp.as_ref().map(|protocols| UdpPlan {
            space: space.clone(),
            protocols: protocols.clone(),
        });
        let plan = Plan {
            space,
            guard,
            notes: Vec::new(),
            resolved: self.resolved.clone(),
            tcp: udp.is_none(),
            udp,
        };
        Ok((plan, order))
    }

    /// Probes in all segments (one pass).
    pub fn probes(&self) -> u64 {
        self.segments
            .iter()
            .map(|&(s, e)| e.saturating_sub(s))
            .sum()
    }

    /// Whether `ip:port` is probed by this shard: the position of that probe in the
    /// scan's order, found through the inverse of the permutation (no enumeration), lies
    /// in one of the segments. False for a spec that does not build. Rebuilds the space
    /// on every call; to check many results, build a [`Membership`] once.
    pub fn contains(&self, ip: IpAddr, port: u16) -> bool {
        self.membership().is_ok_and(|m| m.contains(ip, port))
    }

    /// The shard's membership test, built once.
    pub fn membership(&self) -> Result<Membership, Failure> {
        let (plan, order) = self.build()?;
        let mut ports: Vec<(u16, u64)> = plan
            .space
            .ports()
            .iter()
            .enumerate()
            .map(|(i, &p)| (p, i as u64))
            .collect();
        // A port listed twice answers to its first index, as the engines' locator does.
        ports.sort_by_key(|&(p, i)| (p, i));
        ports.dedup_by_key(|&mut (p, _)| p);
        Ok(Membership {
            space: plan.space,
            order,
            segments: self.segments.clone(),
            ports,
        })
    }
}

/// Ascending, disjoint and inside the space: what the engines assume of segments.
fn check_segments(segments: &[(u64, u64)], size: u64) -> Result<(), String> {
    if segments.is_empty() {
        return Err("it has no segments".into());
    }
    let mut floor = 0;
    for (i, &(start, end)) in segments.iter().enumerate() {
        if end < start {
            return Err(format!(
                "segment {i} ({start}..{end}) ends before it starts"
            ));
        }
        if end > size {
            return Err(format!(
                "segment {i} ({start}..{end}) reaches beyond the scan's {size} positions"
            ));
        }
        if start < floor {
            return Err(format!(
                "segment {i} ({start}..{end}) overlaps or precedes the one before it"
            ));
        }
        floor = end;
    }
    Ok(())
}

/// Every address of the space passes the guard: the planner subtracts exclusions and
/// the service checks the scope before any shard exists, so a space that fails here
/// was not planned for this guard.
fn check_guard(space: &TargetSpace, guard: &SendGuard) -> Result<(), String> {
    let first_v4 = |set: &IntervalSet<u32>| set.nth(0).map(|a| IpAddr::V4(Ipv4Addr::from(a)));
    let first_v6 = |set: &IntervalSet<u128>| set.nth(0).map(|a| IpAddr::V6(Ipv6Addr::from(a)));
    let excluded = first_v4(&space.v4().intersect(&guard.excluded_v4))
        .or_else(|| first_v6(&space.v6().intersect(&guard.excluded_v6)));
    if let Some(ip) = excluded {
        return Err(format!("its target space holds {ip}, which is excluded"));
    }
    if let Some((v4, v6)) = &guard.allowed {
        let outside =
            first_v4(&space.v4().subtract(v4)).or_else(|| first_v6(&space.v6().subtract(v6)));
        if let Some(ip) = outside {
            return Err(format!(
                "its target space holds {ip}, which is outside the allowed scope"
            ));
        }
    }
    Ok(())
}

/// Which probes a shard holds, for checking many results against it.
#[derive(Debug, Clone)]
pub struct Membership {
    space: TargetSpace,
    order: Permutation,
    segments: Vec<(u64, u64)>,
    /// Port → its index in the space's port list, sorted by port.
    ports: Vec<(u16, u64)>,
}

impl Membership {
    /// O(log ranges + log ports), plus the inverse permutation's few rounds.
    pub fn contains(&self, ip: IpAddr, port: u16) -> bool {
        let Ok(at) = self.ports.binary_search_by_key(&port, |&(p, _)| p) else {
            return false;
        };
        let Some(&(_, port_index)) = self.ports.get(at) else {
            return false;
        };
        let Some(index) = self.space.index_of(ip, port_index) else {
            return false;
        };
        if index >= self.order.len() {
            return false;
        }
        let position = self.order.position_of(index);
        let i = self.segments.partition_point(|&(_, end)| end <= position);
        self.segments
            .get(i)
            .is_some_and(|&(start, _)| start <= position)
    }
}

/// Runs one shard: rebuilds it ([`ShardSpec::build`]) and runs its segments in one
/// engine run ([`run_segments`]), observations to `sink` with the index of their
/// segment. The rate is the settings' handle: keep a clone of `spec.settings.rate` to
/// change it while the shard runs.
pub fn run_shard<O: PortSink>(
    runtime: &tokio::runtime::Runtime,
    spec: &ShardSpec,
    progress: &Arc<Progress>,
    stop: &Arc<AtomicBool>,
    sink: Arc<O>,
) -> Result<Finished, Failure> {
    let (plan, order) = spec.build()?;
    if let Some(udp) = &plan.udp {
        return super::udp::run_udp_segments(
            &spec.settings,
            &plan,
            udp,
            order,
            &spec.segments,
            progress,
            stop,
            sink,
        );
    }
    let space = Arc::new(plan.space.clone());
    run_segments(
        runtime,
        &spec.settings,
        &plan,
        &space,
        order,
        &spec.segments,
        progress,
        stop,
        sink,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pace::RateHandle;
    use crate::plan::{plan, TargetRequest};
    use crate::run::GrabSettings;
    use std::time::Duration;

    /// IPv4 and IPv6 targets with exclusions inside them, a name for SNI, and a tenant
    /// scope, as the service plans them.
    fn planned() -> Plan {
        let req = TargetRequest {
            targets: vec!["198.18.0.0/27".into(), "2001:2::/123".into()],
            excludes: vec![
                "198.18.0.3".into(),
                "198.18.0.16-198.18.0.19".into(),
                "2001:2::5-2001:2::9".into(),
            ],
            ports: Some("22,80,443,8443".into()),
            allow_special: true,
            ipv6: true,
            named: vec![(
                "www.corp.test".into(),
                vec!["198.18.0.9".parse().expect("ip")],
            )],
            ..TargetRequest::default()
        };
        let mut p = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(plan(&req))
            .expect("plan");
        p.guard.allowed = Some((
            IntervalSet::from_ranges([(0xC612_0000u32, 0xC612_00FF)]),
            IntervalSet::from_ranges([(0x2001_0002u128 << 96, (0x2001_0002u128 << 96) + 0xFFFF)]),
        ));
        p
    }

    fn settings(scan_id: &str) -> EngineSettings {
        EngineSettings {
            scan_id: scan_id.into(),
            use_connect: true,
            rate: RateHandle::new(2_500),
            per_net_rate: Some(200),
            retries: 1,
            timeout: Duration::from_millis(1_500),
            concurrency: 64,
            show_closed: false,
            closed_hosts: false,
            wait: Duration::from_secs(3),
            source_ip: None,
            source_ports: (61000, 4096),
            ttl: 64,
            grab: Some(GrabSettings::default()),
        }
    }

    #[test]
    fn a_spec_survives_json_and_rebuilds_the_same_probes() {
        let p = planned();
        let size = p.space.size();
        assert!(p.space.has_v6() && size > 100, "a mixed space: {size}");
        let seed = 0xfeed_beef_dead_cafe;
        let spec = ShardSpec::from_plan(&p, seed, vec![(0, 10), (40, size)], settings("scan-7"));
        let json = serde_json::to_string(&spec).expect("json");
        for field in [
            "\"timeout_ms\":1500",
            "\"wait_ms\":3000",
            "\"rate\":2500",
            "2001:2::",
        ] {
            assert!(json.contains(field), "{field} in {json}");
        }
        let back: ShardSpec = serde_json::from_str(&json).expect("parse");
        let (rebuilt, order) = back.build().expect("consistent");
        let original = Permutation::new(size, seed);
        assert_eq!(rebuilt.space, p.space);
        for pos in 0..size {
            assert_eq!(
                rebuilt.space.target(order.at(pos)),
                p.space.target(original.at(pos)),
                "position {pos}"
            );
        }
        assert_eq!(rebuilt.guard.excluded_v4, p.guard.excluded_v4);
        assert_eq!(rebuilt.guard.excluded_v6, p.guard.excluded_v6);
        assert_eq!(rebuilt.guard.allowed, p.guard.allowed);
        assert_eq!(rebuilt.resolved, p.resolved);
        assert_eq!(back.segments, spec.segments);
        let s = &back.settings;
        assert_eq!(
            (s.rate.get(), s.per_net_rate, s.retries),
            (2_500, Some(200), 1)
        );
        assert_eq!(
            (s.timeout, s.wait),
            (Duration::from_millis(1_500), Duration::from_secs(3))
        );
        let grab = s.grab.as_ref().expect("grab settings");
        assert_eq!(grab.deadline, GrabSettings::default().deadline);
        assert_eq!(back.probes(), size - 30);
    }

    #[test]
    fn a_udp_shard_survives_json_and_names_its_protocols() {
        let req = TargetRequest {
            targets: vec!["198.18.0.0/28".into()],
            ports: Some("T:53,U:53,161,5300=dns".into()),
            allow_special: true,
            udp: true,
            ..TargetRequest::default()
        };
        let p = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(plan(&req))
            .expect("plan");
        let udp = p.udp.as_ref().expect("a UDP space");
        let size = udp.space.size();
        assert_eq!(size, 16 * 3);
        let spec = ShardSpec::from_udp_plan(&p, udp, 9, vec![(0, size)], settings("scan-u"));
        let json = serde_json::to_string(&spec).expect("json");
        assert!(json.contains("\"udp\":{\"5300\":\"dns\"}"), "{json}");
        let back: ShardSpec = serde_json::from_str(&json).expect("parse");
        let (rebuilt, _) = back.build().expect("consistent");
        assert!(!rebuilt.tcp);
        let again = rebuilt.udp.as_ref().expect("a UDP plan");
        assert_eq!(again.space, udp.space);
        assert_eq!(again.protocols, udp.protocols);
        let m = back.membership().expect("membership");
        let ip: IpAddr = "198.18.0.3".parse().expect("ip");
        assert!(m.contains(ip, 161) && m.contains(ip, 5300) && !m.contains(ip, 443));
        // A TCP spec stays as it was: no `udp` field.
        let tcp = ShardSpec::from_plan(&p, 9, vec![(0, 1)], settings("scan-t"));
        assert!(!serde_json::to_string(&tcp)
            .expect("json")
            .contains("\"udp\""));
    }

    #[test]
    fn the_login_opt_in_reaches_the_worker() {
        let mut on = settings("s");
        if let Some(g) = on.grab.as_mut() {
            g.login_checks = true;
        }
        let spec = ShardSpec::from_plan(&planned(), 1, vec![(0, 1)], on);
        let json = serde_json::to_string(&spec).expect("json");
        assert!(json.contains("\"login_checks\":true"), "{json}");
        let back: ShardSpec = serde_json::from_str(&json).expect("parse");
        assert!(back.settings.grab.as_ref().is_some_and(|g| g.login_checks));
        // A spec from a coordinator that predates the opt-in: off.
        let old = json
            .replace("\"login_checks\":true,", "")
            .replace(",\"login_checks\":true", "");
        assert!(!old.contains("login_checks"));
        let back: ShardSpec = serde_json::from_str(&old).expect("parse");
        assert!(back.settings.grab.as_ref().is_some_and(|g| !g.login_checks));
    }

    #[test]
    fn the_widest_addresses_survive_json() {
        let mut spec = ShardSpec::from_plan(&planned(), 1, vec![(0, 1)], settings("s"));
        spec.guard
            .excluded
            .v6
            .push((Ipv6Addr::UNSPECIFIED, Ipv6Addr::from(u128::MAX)));
        spec.guard
            .excluded
            .v4
            .push((Ipv4Addr::from(0), Ipv4Addr::BROADCAST));
        let back: ShardSpec =
            serde_json::from_str(&serde_json::to_string(&spec).expect("json")).expect("parse");
        assert_eq!(back.guard, spec.guard);
        let (v4, v6) = back.guard.excluded.to_sets();
        assert_eq!(v4.ranges(), [(0, u32::MAX)]);
        assert_eq!(v6.ranges(), [(0, u128::MAX)]);
    }

    #[test]
    fn membership_is_the_segments_positions() {
        let p = planned();
        let size = p.space.size();
        let segments = vec![(3, 20), (50, 51), (size - 7, size)];
        let spec = ShardSpec::from_plan(&p, 42, segments.clone(), settings("s"));
        let order = Permutation::new(size, 42);
        let m = spec.membership().expect("builds");
        for pos in 0..size {
            let (ip, port) = p.space.target(order.at(pos)).expect("in the space");
            let inside = segments.iter().any(|&(s, e)| (s..e).contains(&pos));
            assert_eq!(m.contains(ip, port), inside, "{ip}:{port} at {pos}");
        }
        assert!(spec.contains(
            p.space.target(order.at(3)).expect("probe").0,
            p.space.target(order.at(3)).expect("probe").1
        ));
        let excluded: IpAddr = "198.18.0.3".parse().expect("ip");
        let outside: IpAddr = "198.18.1.1".parse().expect("ip");
        for port in [22, 80, 443, 8443] {
            assert!(!m.contains(excluded, port), "excluded address");
            assert!(!m.contains(outside, port), "outside the space");
        }
        let (ip, _) = p.space.target(order.at(3)).expect("probe");
        assert!(!m.contains(ip, 23), "a port the scan does not probe");
    }

    #[test]
    fn an_inconsistent_spec_is_refused_with_its_reason() {
        let p = planned();
        let size = p.space.size();
        let refusal = |spec: &ShardSpec| match spec.build() {
            Err(Failure::BadInput(why)) => why,
            other => panic!("refused as bad input, got {other:?}"),
        };
        let mut spec = ShardSpec::from_plan(&p, 1, vec![(0, size + 1)], settings("s"));
        let why = refusal(&spec);
        assert!(
            why.contains("beyond the scan's") && why.contains("scan s"),
            "{why}"
        );
        assert!(!spec.contains(p.space.target(0).expect("probe").0, 22));
        spec.segments = vec![(10, 20), (15, 30)];
        assert!(refusal(&spec).contains("overlaps"));
        spec.segments = vec![(20, 10)];
        assert!(refusal(&spec).contains("ends before"));
        spec.segments = Vec::new();
        assert!(refusal(&spec).contains("no segments"));
        spec.segments = vec![(0, size)];
        spec.settings.scan_id = "other".into();
        assert!(refusal(&spec).contains("settings name scan other"));
        spec.settings.scan_id = "s".into();
        assert!(spec.build().is_ok());
        // A scope that no longer covers the space.
        spec.guard.allowed = Some(AddressRanges {
            v4: vec![(
                "198.18.0.0".parse().expect("ip"),
                "198.18.0.7".parse().expect("ip"),
            )],
            v6: spec
                .guard
                .allowed
                .as_ref()
                .map(|a| a.v6.clone())
                .unwrap_or_default(),
        });
        let why = refusal(&spec);
        assert!(
            why.contains("198.18.0.8") && why.contains("outside the allowed scope"),
            "{why}"
        );
        spec.guard.allowed = None;
        spec.guard.excluded.v6.push((
            "2001:2::1".parse().expect("ip"),
            "2001:2::1".parse().expect("ip"),
        ));
        let why = refusal(&spec);
        assert!(
            why.contains("2001:2::1") && why.contains("excluded"),
            "{why}"
        );
        spec.guard = GuardSpec::from_guard(&p.guard);
        spec.scan.ports.clear();
        assert!(refusal(&spec).contains("target space"));
    }
}
