//! What both engines share: progress counters, hits and where they go, segments, the
//! send-path guard.

use crate::error::EngineError;
use crate::intervals::IntervalSet;
use aperture_fingerprints::{PortState, Reason};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
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
    /// Replies that came after their segment was done (its wait over): not reported.
    pub late: AtomicU64,
    pub done_sending: AtomicBool,
}

impl Progress {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }
}

/// One result as an engine reports it; the caller adds scan id and formats it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub ip: IpAddr,
    pub port: u16,
    pub state: PortState,
    pub reason: Reason,
    pub ttl: Option<u8>,
    pub at: SystemTime,
    /// A UDP reply's payload (as captured, capped), for the caller to parse.
    pub data: Option<std::sync::Arc<[u8]>>,
    /// The reply's payload size on the wire (UDP length minus header), captured or not.
    pub reply_len: u32,
}

/// Where an engine's results go. A run probes one or more *segments* (ranges of
/// positions, e.g. a scan's shards, in the order given); each result carries the number
/// of the segment whose probe it answers, and the sink hears when a segment is done, so
/// a consumer can store shard by shard while the next shards are being probed.
pub trait HitSink: Sync {
    /// A result for a probe of segment `segment`. False: the consumer hung up (the run
    /// stops reporting).
    fn hit(&self, segment: usize, hit: Hit) -> bool;

    /// Every probe of `segment` was sent (every pass) and answered or given its wait:
    /// no result for it follows. Called at most once per segment, never for a segment
    /// cut short by a stop. Segments may finish out of order (connect time-outs).
    fn segment_done(&self, _segment: usize) {}

    /// Asked before `segment` starts: false holds it back (the consumer is behind) and
    /// the engine asks again a few milliseconds later, or stops if told to meanwhile.
    /// Must not block.
    fn may_start(&self, _segment: usize) -> bool {
        true
    }
}

/// The plain sink: every result into a channel, segments ignored.
impl HitSink for mpsc::Sender<Hit> {
    fn hit(&self, _segment: usize, hit: Hit) -> bool {
        self.send(hit).is_ok()
    }
}

/// How long an engine sleeps before asking [`HitSink::may_start`] again.
pub const HOLD_BACK: Duration = Duration::from_millis(5);

/// A run's segments: ascending, disjoint position ranges inside the space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments(Vec<(u64, u64)>);

impl Segments {
    /// Checks that `ranges` are ascending, disjoint and inside `0..size`.
    pub fn new(ranges: &[(u64, u64)], size: u64) -> Result<Self, EngineError> {
        let mut floor = 0;
        for &(start, end) in ranges {
            if start < floor || end < start || end > size {
                return Err(EngineError::Runtime(format!(
                    "segments must be ascending, disjoint ranges inside 0..{size}: {ranges:?}"
                )));
            }
            floor = end;
        }
        Ok(Self(ranges.to_vec()))
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Probes in all segments (one pass).
    pub fn probes(&self) -> u64 {
        self.0.iter().map(|&(s, e)| e - s).sum()
    }

    /// The segment holding `position`.
    pub fn find(&self, position: u64) -> Option<usize> {
        let i = self.0.partition_point(|&(_, end)| end <= position);
        self.0
            .get(i)
            .is_some_and(|&(start, _)| start <= position)
            .then_some(i)
    }
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
    fn segments_are_checked_and_found() {
        let s = Segments::new(&[(0, 10), (10, 12), (20, 30)], 30).expect("valid");
        assert_eq!(s.probes(), 22);
        assert_eq!(s.find(0), Some(0));
        assert_eq!(s.find(9), Some(0));
        assert_eq!(s.find(10), Some(1));
        assert_eq!(s.find(12), None, "a gap: a shard already stored");
        assert_eq!(s.find(29), Some(2));
        assert_eq!(s.find(30), None);
        assert!(Segments::new(&[(5, 10), (0, 4)], 30).is_err(), "descending");
        assert!(
            Segments::new(&[(0, 10), (9, 12)], 30).is_err(),
            "overlapping"
        );
        assert!(Segments::new(&[(0, 31)], 30).is_err(), "outside the space");
        assert!(Segments::new(&[(4, 3)], 30).is_err(), "inverted");
        assert!(Segments::new(&[], 0).is_ok_and(|s| s.probes() == 0));
    }

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
