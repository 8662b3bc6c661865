//! From what a user asked to what may be probed: the one place where targets, ports,
//! exclusions and size limits are checked, before anything is sent. The CLI calls it
//! today; the service will call it for API scan requests.

use crate::engine::SendGuard;
use crate::error::SpecError;
use crate::intervals::IntervalSet;
use crate::ports::{add_udp_preset, parse_port_spec, parse_ports, top_ports, PortSpec};
use crate::resolve::resolve_hosts;
use crate::space::TargetSpace;
use crate::special::{describe_v4, describe_v6, special_v4, special_v6};
use crate::targets::{parse_targets, read_target_list, Target, TargetSet};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// Above this many probes a scan must be confirmed (`--confirm-large`).
pub const LARGE_SCAN: u64 = 1 << 32;

#[derive(Debug, Clone, Default)]
pub struct TargetRequest {
    pub targets: Vec<String>,
    /// Files of targets; `-` is standard input.
    pub target_files: Vec<PathBuf>,
    pub excludes: Vec<String>,
    pub exclude_files: Vec<PathBuf>,
    pub ports: Option<String>,
    pub top_ports: Option<usize>,
    pub allow_special: bool,
    pub confirm_large: bool,
    /// Whether the chosen engine can probe IPv6 (the connect engine can, SYN cannot).
    pub ipv6: bool,
    /// Names already resolved elsewhere (`aperture domains`), with their addresses: treated
    /// exactly like host-name targets, and kept for SNI/Host.
    pub named: Vec<(String, Vec<IpAddr>)>,
    /// Whether UDP ports (`U:` in `ports`, `udp_presets`) may be asked for: the CLI's
    /// raw-socket engine probes them; elsewhere they are refused with a reason.
    pub udp: bool,
    /// `--udp` presets (comma-separated).
    pub udp_presets: Option<String>,
}

/// The UDP part of a scan: its own space (same addresses, the UDP ports) and the
/// protocol the user chose for some ports.
#[derive(Debug, Clone)]
pub struct UdpPlan {
    pub space: TargetSpace,
    pub protocols: std::collections::BTreeMap<u16, aperture_fingerprints::udp::UdpProto>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub space: TargetSpace,
    pub guard: SendGuard,
    /// Things the user should know but that are not errors (excluded counts, dropped v6).
    pub notes: Vec<String>,
    pub resolved: Vec<(String, Vec<IpAddr>)>,
    /// Whether TCP ports are probed (`space` holds them). False for a UDP-only scan,
    /// whose `space` is then the UDP space.
    pub tcp: bool,
    pub udp: Option<UdpPlan>,
}

fn read_list(path: &PathBuf) -> Result<Vec<Target>, SpecError> {
    let origin = path.display().to_string();
    if origin == "-" {
        return read_target_list(std::io::stdin().lock(), "<stdin>");
    }
    let f = File::open(path).map_err(|source| SpecError::File {
        path: origin.clone(),
        source,
    })?;
    read_target_list(f, &origin)
}

fn ports_of(req: &TargetRequest) -> Result<PortSpec, SpecError> {
    if !req.udp && req.udp_presets.is_some() {
        return Err(SpecError::Invalid(
            "UDP presets are for `aperture scan` only".into(),
        ));
    }
    let mut spec = match (&req.ports, req.top_ports) {
        (Some(_), Some(_)) => {
            return Err(SpecError::Invalid(
                "give either -p/--ports or --top-ports, not both".into(),
            ))
        }
        (Some(p), None) if req.udp => parse_port_spec(p)?,
        (Some(p), None) => PortSpec {
            tcp: parse_ports(p)?,
            ..PortSpec::default()
        },
        (None, Some(n)) => PortSpec {
            tcp: top_ports(n)?,
            ..PortSpec::default()
        },
        (None, None) if req.udp_presets.is_some() => PortSpec::default(),
        (None, None) => return Err(SpecError::NoPorts),
    };
    if let Some(preset) = &req.udp_presets {
        add_udp_preset(&mut spec, preset)?;
    }
    Ok(spec)
}

fn exclusions(req: &TargetRequest) -> Result<TargetSet, SpecError> {
    let mut set = TargetSet::default();
    let mut items = Vec::new();
    for e in &req.excludes {
        items.extend(parse_targets(e).map_err(|err| SpecError::Exclude {
            input: e.clone(),
            reason: err.to_string(),
        })?);
    }
    for f in &req.exclude_files {
        items.extend(read_list(f)?);
    }
    for t in items {
        if let Target::Host(h) = t {
            return Err(SpecError::Exclude {
                input: h,
                reason: "exclusions must be addresses, CIDRs or ranges, not host names".into(),
            });
        }
        set.add(t);
    }
    Ok(set)
}

pub async fn plan(req: &TargetRequest) -> Result<Plan, SpecError> {
    let mut wanted = TargetSet::default();
    for t in &req.targets {
        for target in parse_targets(t)? {
            wanted.add(target);
        }
    }
    // IPv6 lines in a list (often another tool's output) are skipped for the SYN
    // engine with a note; an IPv6 address typed on the command line is refused below.
    let mut listed_v6_skipped = 0u64;
    for f in &req.target_files {
        for target in read_list(f)? {
            match target {
                Target::V6(..) if !req.ipv6 => listed_v6_skipped += 1,
                t => wanted.add(t),
            }
        }
    }
    if wanted.is_empty()
        && req.named.iter().all(|(_, ips)| ips.is_empty())
        && listed_v6_skipped == 0
    {
        return Err(SpecError::NoTargets);
    }
    let ports = ports_of(req)?;
    if !ports.udp.is_empty() && !wanted.v6.is_empty() {
        return Err(SpecError::Invalid(
            "UDP probes are IPv4 only: leave IPv6 targets out of a scan with UDP ports".into(),
        ));
    }
    let user_excluded = exclusions(req)?;
    let mut notes = Vec::new();
    if listed_v6_skipped > 0 {
        notes.push(format!(
            "skipped {listed_v6_skipped} IPv6 target(s) from target lists; the SYN engine is IPv4-only (use --connect)"
        ));
    }

    if !wanted.v6.is_empty() && !req.ipv6 {
        return Err(SpecError::Invalid(
            "IPv6 targets need the connect engine: add --connect".into(),
        ));
    }
    let mut resolved = resolve_hosts(&wanted.hosts).await?;
    resolved.extend(req.named.iter().cloned());
    for (name, ips) in &resolved {
        let mut skipped_v6 = 0;
        for &ip in ips {
            if ip.is_ipv6() && !req.ipv6 {
                skipped_v6 += 1;
            } else {
                wanted.add_ip(ip);
            }
        }
        if skipped_v6 > 0 {
            notes.push(format!(
                "{name}: skipped {skipped_v6} IPv6 address(es); the SYN engine is IPv4-only (use --connect)"
            ));
        }
    }

    let mut excl_v4 = user_excluded.v4.clone();
    let mut excl_v6 = user_excluded.v6.clone();
    if !req.allow_special {
        excl_v4 = union(&excl_v4, &special_v4());
        excl_v6 = union(&excl_v6, &special_v6());
    }
    let v4 = wanted.v4.subtract(&excl_v4);
    let v6 = wanted.v6.subtract(&excl_v6);
    let dropped = (wanted.v4.count() - v4.count()) + (wanted.v6.count() - v6.count());
    if v4.is_empty() && v6.is_empty() {
        return Err(SpecError::AllExcluded {
            detail: why_excluded(&wanted, &user_excluded, req.allow_special),
        });
    }
    if dropped > 0 {
        let why = if req.allow_special {
            "by --exclude".to_string()
        } else {
            "as special-purpose or by --exclude; --allow-special includes special-purpose ranges"
                .to_string()
        };
        notes.push(format!(
            "{dropped} of {} addresses excluded {why}",
            wanted.v4.count() + wanted.v6.count()
        ));
    }
    let udp = if ports.udp.is_empty() {
        None
    } else {
        Some(UdpPlan {
            space: TargetSpace::new(v4.clone(), IntervalSet::new(), ports.udp.clone())?,
            protocols: ports.udp_protocols.clone(),
        })
    };
    let tcp = !ports.tcp.is_empty();
    let space = match &udp {
        Some(u) if !tcp => u.space.clone(),
        _ => TargetSpace::new(v4, v6, ports.tcp)?,
    };
    let probes = u128::from(if tcp { space.size() } else { 0 })
        + udp.as_ref().map_or(0, |u| u128::from(u.space.size()));
    if probes > u128::from(LARGE_SCAN) && !req.confirm_large {
        return Err(SpecError::TooLarge { probes });
    }
    Ok(Plan {
        space,
        guard: SendGuard {
            excluded_v4: excl_v4,
            excluded_v6: excl_v6,
            allowed: None,
        },
        notes,
        resolved,
        tcp,
        udp,
    })
}

fn union<T: crate::intervals::Point>(a: &IntervalSet<T>, b: &IntervalSet<T>) -> IntervalSet<T> {
    IntervalSet::from_ranges(a.ranges().iter().chain(b.ranges()).copied())
}

fn why_excluded(wanted: &TargetSet, user: &TargetSet, allow_special: bool) -> String {
    let reason_v4 = |a: u32| {
        let ip = Ipv4Addr::from(a);
        match describe_v4(ip) {
            Some((net, what)) if !allow_special && !user.v4.contains(a) => {
                format!("{ip} is in {net} ({what}); pass --allow-special to scan special-purpose ranges")
            }
            _ => format!("{ip} is excluded by --exclude/--exclude-file"),
        }
    };
    let reason_v6 = |a: u128| {
        let ip = Ipv6Addr::from(a);
        match describe_v6(ip) {
            Some((net, what)) if !allow_special && !user.v6.contains(a) => {
                format!("{ip} is in {net} ({what}); pass --allow-special to scan special-purpose ranges")
            }
            _ => format!("{ip} is excluded by --exclude/--exclude-file"),
        }
    };
    let mut parts: Vec<String> = wanted
        .v4
        .ranges()
        .iter()
        .take(3)
        .map(|&(a, _)| reason_v4(a))
        .collect();
    parts.extend(
        wanted
            .v6
            .ranges()
            .iter()
            .take(3)
            .map(|&(a, _)| reason_v6(a)),
    );
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(targets: &[&str], ports: &str) -> TargetRequest {
        TargetRequest {
            targets: targets.iter().map(|s| s.to_string()).collect(),
            ports: Some(ports.into()),
            ..Default::default()
        }
    }

    fn run(r: &TargetRequest) -> Result<Plan, SpecError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(plan(r))
    }

    #[test]
    fn special_ranges_are_cut_out_and_named() {
        let e = run(&req(&["10.0.0.0/8"], "80")).expect_err("private");
        let text = e.to_string();
        assert!(
            text.contains("10.0.0.0/8") && text.contains("--allow-special"),
            "{text}"
        );
        let mut r = req(&["10.0.0.0/30"], "80");
        r.allow_special = true;
        assert_eq!(run(&r).expect("allowed").space.size(), 4);
        // A public range that straddles a special one loses only the special part.
        let p = run(&req(&["100.63.255.254-100.64.0.1"], "80")).expect("partly public");
        assert_eq!(p.space.addresses(), 2);
        assert!(p.notes.iter().any(|n| n.contains("2 of 4")));
        assert!(!p.guard.permits_v4(u32::from(Ipv4Addr::new(100, 64, 0, 0))));
    }

    #[test]
    fn user_exclusions_apply_by_index_not_by_skip() {
        let mut r = req(&["198.18.0.0/29"], "1-2");
        r.allow_special = true;
        r.excludes = vec!["198.18.0.2-198.18.0.3".into()];
        let p = run(&r).expect("plan");
        assert_eq!(p.space.size(), 12);
        let mut seen: Vec<_> = (0..p.space.size())
            .filter_map(|i| p.space.target(i))
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 12);
        assert!(seen
            .iter()
            .all(|(ip, _)| !matches!(ip.to_string().as_str(), "198.18.0.2" | "198.18.0.3")));
        r.excludes = vec!["198.18.0.0/24".into()];
        assert!(run(&r)
            .expect_err("all excluded")
            .to_string()
            .contains("--exclude"));
    }

    #[test]
    fn size_limits_and_conflicts() {
        let mut r = req(&["1.0.0.0/8"], "-");
        assert!(matches!(run(&r), Err(SpecError::TooLarge { .. })));
        r.confirm_large = true;
        assert!(run(&r).is_ok());
        r.top_ports = Some(10);
        assert!(run(&r).expect_err("both").to_string().contains("not both"));
        assert!(matches!(run(&req(&[], "80")), Err(SpecError::NoTargets)));
        let mut v6 = req(&["2606:4700::/126"], "443");
        assert!(run(&v6)
            .expect_err("v6 needs connect")
            .to_string()
            .contains("--connect"));
        v6.ipv6 = true;
        assert_eq!(run(&v6).expect("v6 ok").space.size(), 4);
        // In a list file, IPv6 lines are skipped for the SYN engine, with a note.
        let list = std::env::temp_dir().join(format!("aperture-plan-{}.txt", std::process::id()));
        std::fs::write(&list, "2001:db8::1\n198.18.0.1\n").expect("write list");
        let mut listed = TargetRequest {
            target_files: vec![list.clone()],
            ports: Some("80".into()),
            allow_special: true,
            ..Default::default()
        };
        let p = run(&listed).expect("v4 part planned");
        assert_eq!(p.space.size(), 1);
        assert!(
            p.notes.iter().any(|n| n.contains("skipped 1 IPv6")),
            "{:?}",
            p.notes
        );
        listed.ipv6 = true;
        assert_eq!(run(&listed).expect("both").space.size(), 2);
        let _ = std::fs::remove_file(&list);
    }
}
