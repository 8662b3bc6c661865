//! What both engines share: progress counters, hits, the send-path guard.

use crate::intervals::IntervalSet;
use aperture_fingerprints::{PortState, Reason};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

/// Live counters, shared with whoever shows progress. Counters, not errors, on the hot
/// path: a malformed reply is a number going up, never a failed scan.
#[derive(Debug, Default)]
pub struct Progress {
    /// Probes this run will send, retries included.
    pub total: AtomicU64,
    pub sent: AtomicU64,
    /// Next position (in the permuted order) of the current pass.
    pub position: AtomicU64,
    pub open: AtomicU64,
    pub closed: AtomicU64,
    /// Replies to our source ports with a wrong cookie.
    pub invalid: AtomicU64,
    /// Repeated replies for a port already reported.
    pub duplicates: AtomicU64,
    /// Probes the send-path guard refused (should stay 0: the space excludes them).
    pub refused: AtomicU64,
    /// Connect probes that got no answer in time (filtered).
    pub timeouts: AtomicU64,
    pub done_sending: AtomicBool,
}

impl Progress {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }
}

/// One result as an engine reports it; the caller adds scan id and formats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub ip: IpAddr,
    pub port: u16,
    pub state: PortState,
    pub reason: Reason,
    pub ttl: Option<u8>,
    pub at: SystemTime,
}

/// How a run ended.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    /// Set when stopped early: the position to pass as `--resume-index`.
    pub interrupted_at: Option<u64>,
    /// Time spent sending (the denominator of the achieved rate).
    pub send_time: Duration,
}

/// The last check before a packet leaves: excluded space, again, independently of how
/// the target space was built; and, when the scan runs for a tenant, the tenant's
/// authorised scope.
#[derive(Debug, Clone, Default)]
pub struct SendGuard {
    pub excluded_v4: IntervalSet<u32>,
    pub excluded_v6: IntervalSet<u128>,
    /// When set, only these addresses may be sent to.
    pub allowed: Option<(IntervalSet<u32>, IntervalSet<u128>)>,
}

impl SendGuard {
    #[inline]
    pub fn permits_v4(&self, addr: u32) -> bool {
        !self.excluded_v4.contains(addr)
            && self
                .allowed
                .as_ref()
                .is_none_or(|(v4, _)| v4.contains(addr))
    }

    pub fn permits(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.permits_v4(a.into()),
            IpAddr::V6(a) => {
                let a = u128::from(a);
                !self.excluded_v6.contains(a)
                    && self.allowed.as_ref().is_none_or(|(_, v6)| v6.contains(a))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn a_tenant_scope_limits_the_send_path() {
        let v4 = |a: [u8; 4]| u32::from(Ipv4Addr::from(a));
        let mut guard = SendGuard {
            excluded_v4: IntervalSet::from_ranges([(v4([198, 18, 0, 5]), v4([198, 18, 0, 5]))]),
            ..SendGuard::default()
        };
        assert!(
            guard.permits_v4(v4([198, 18, 9, 9])),
            "no scope: only exclusions"
        );
        guard.allowed = Some((
            IntervalSet::from_ranges([(v4([198, 18, 0, 0]), v4([198, 18, 0, 255]))]),
            IntervalSet::new(),
        ));
        assert!(guard.permits_v4(v4([198, 18, 0, 9])));
        assert!(
            !guard.permits_v4(v4([198, 18, 0, 5])),
            "excluded inside the scope"
        );
        assert!(!guard.permits_v4(v4([198, 18, 1, 9])), "outside the scope");
        assert!(
            !guard.permits(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            "no IPv6 in this scope"
        );
        assert!(guard.permits(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 200))));
    }
}
