//! The two judgements the coordinator makes about workers, kept free of I/O so they can
//! be tested alone: how a scan's rate is shared, and whether a vantage is blocked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// A granted share outlives the worker's view of it by this much, so the coordinator never
/// hands out budget a worker may still be using.
const GRANT_MARGIN: Duration = Duration::from_secs(1);

/// One scan's rate budget across workers. The sum of shares that may be in use never
/// exceeds the scan's rate: a newcomer gets what is free now, and the others give their
/// excess back at their next renewal (within a second), so shares converge to equal.
#[derive(Debug, Default)]
pub struct Ledger {
    grants: HashMap<String, (u64, Instant)>,
}

impl Ledger {
    /// The share of `worker`, valid for `lease` (the worker pauses if it is not renewed).
    pub fn grant(&mut self, worker: &str, total: u64, lease: Duration, now: Instant) -> u64 {
        self.grants.retain(|_, (_, until)| *until > now);
        let holders = self.grants.len() as u64 + u64::from(!self.grants.contains_key(worker));
        let fair = total / holders.max(1);
        // Too little rate to go round: the first come keep one probe/s each.
        let fair = fair.max(u64::from(total > 0).min(total));
        let others: u64 = self
            .grants
            .iter()
            .filter(|(w, _)| w.as_str() != worker)
            .map(|(_, (rate, _))| *rate)
            .sum();
        let share = fair.min(total.saturating_sub(others));
        self.grants
            .insert(worker.to_owned(), (share, now + lease + GRANT_MARGIN));
        share
    }

    /// The worker stopped running this scan: its share is free at once.
    pub fn release(&mut self, worker: &str) {
        self.grants.remove(worker);
    }

    /// Shares that may be in use now.
    #[cfg(test)]
    pub fn in_use(&self, now: Instant) -> u64 {
        self.grants
            .values()
            .filter(|(_, until)| *until > now)
            .map(|(rate, _)| rate)
            .sum()
    }
}

/// What one vantage saw of one scan.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct VantageStats {
    pub source: Option<String>,
    pub shards: u64,
    pub probes: u64,
    pub open: u64,
}

/// Probes a vantage must have sent before its hit rate is judged.
pub const MIN_PROBES: u64 = 5_000;
/// Open ports its peers' rate predicts before a shortfall means anything.
pub const MIN_EXPECTED_OPEN: f64 = 20.0;
/// Seeing less than this fraction of what the peers predict: blocked.
pub const BLOCKED_FRACTION: f64 = 0.25;

/// Vantages (not yet in `flagged`) whose open-port hit rate on a scan falls far below
/// their peers'. Shards are uniform samples of one permutation, so every vantage should
/// see the same rate; one that sees a quarter of it or less is being filtered.
pub fn blocked_vantages(
    stats: &BTreeMap<String, VantageStats>,
    flagged: &BTreeSet<String>,
) -> Vec<String> {
    let judged: Vec<(&String, &VantageStats)> = stats
        .iter()
        .filter(|(w, s)| s.probes >= MIN_PROBES && !flagged.contains(*w))
        .collect();
    let mut out = Vec::new();
    for (w, s) in &judged {
        let (probes, open) = judged
            .iter()
            .filter(|(peer, _)| peer != w)
            .fold((0u64, 0u64), |(p, o), (_, st)| (p + st.probes, o + st.open));
        if probes == 0 {
            continue;
        }
        let expected = open as f64 / probes as f64 * s.probes as f64;
        if expected >= MIN_EXPECTED_OPEN && (s.open as f64) < BLOCKED_FRACTION * expected {
            out.push((*w).clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_never_sum_above_the_rate_and_converge_to_equal() {
        let mut l = Ledger::default();
        let lease = Duration::from_secs(5);
        let t0 = Instant::now();
        assert_eq!(l.grant("w1", 3000, lease, t0), 3000);
        // A newcomer waits for w1 to give back its excess.
        assert_eq!(l.grant("w2", 3000, lease, t0), 0);
        assert!(l.in_use(t0) <= 3000);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.grant("w1", 3000, lease, t1), 1500);
        assert_eq!(l.grant("w2", 3000, lease, t1), 1500);
        assert_eq!(l.grant("w3", 3000, lease, t1), 0);
        let t2 = t1 + Duration::from_secs(1);
        for w in ["w1", "w2", "w3", "w1", "w2", "w3"] {
            l.grant(w, 3000, lease, t2);
            assert!(l.in_use(t2) <= 3000, "{}", l.in_use(t2));
        }
        assert_eq!(l.grant("w3", 3000, lease, t2), 1000);
        // A silent worker's share expires (lease + margin) and goes round again.
        let t3 = t2 + Duration::from_secs(7);
        assert_eq!(l.grant("w1", 3000, lease, t3), 3000);
        l.release("w1");
        assert_eq!(l.in_use(t3), 0);
    }

    #[test]
    fn only_a_vantage_far_below_its_peers_is_flagged() {
        let st = |probes, open| VantageStats {
            probes,
            open,
            ..VantageStats::default()
        };
        let mut stats = BTreeMap::new();
        stats.insert("w1".to_string(), st(80_000, 80));
        stats.insert("w2".to_string(), st(80_000, 3));
        stats.insert("w3".to_string(), st(80_000, 75));
        let none = BTreeSet::new();
        assert_eq!(blocked_vantages(&stats, &none), vec!["w2".to_string()]);
        // Noise is not a block: 60 where 80 were expected.
        stats.insert("w2".to_string(), st(80_000, 60));
        assert!(blocked_vantages(&stats, &none).is_empty());
        // Too few probes, or too few expected opens, judge nothing.
        stats.insert("w2".to_string(), st(1_000, 0));
        assert!(blocked_vantages(&stats, &none).is_empty());
        let sparse: BTreeMap<String, VantageStats> = [
            ("a".to_string(), st(10_000, 2)),
            ("b".to_string(), st(10_000, 0)),
        ]
        .into();
        assert!(blocked_vantages(&sparse, &none).is_empty());
        // Already flagged: not again.
        stats.insert("w2".to_string(), st(80_000, 0));
        let flagged: BTreeSet<String> = ["w2".to_string()].into();
        assert!(blocked_vantages(&stats, &flagged).is_empty());
    }
}
