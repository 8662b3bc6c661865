//! Scans as plain data, and shards: the unit a worker runs, leases and resumes.

use crate::error::SpecError;
use crate::intervals::IntervalSet;
use crate::permute::Permutation;
use crate::space::TargetSpace;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Everything a worker needs to rebuild a scan's index space and order exactly.
/// Exclusions are already applied to the address ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSpec {
    pub scan_id: String,
    pub v4: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub v6: Vec<(Ipv6Addr, Ipv6Addr)>,
    pub ports: Vec<u16>,
    pub seed: u64,
}

impl ScanSpec {
    pub fn from_space(scan_id: String, space: &TargetSpace, seed: u64) -> Self {
        Self {
            scan_id,
            v4: space
                .v4()
                .ranges()
                .iter()
                .map(|&(a, b)| (a.into(), b.into()))
                .collect(),
            v6: space
                .v6()
                .ranges()
                .iter()
                .map(|&(a, b)| (a.into(), b.into()))
                .collect(),
            ports: space.ports().to_vec(),
            seed,
        }
    }

    pub fn space(&self) -> Result<TargetSpace, SpecError> {
        TargetSpace::new(
            IntervalSet::from_ranges(self.v4.iter().map(|&(a, b)| (u32::from(a), u32::from(b)))),
            IntervalSet::from_ranges(self.v6.iter().map(|&(a, b)| (u128::from(a), u128::from(b)))),
            self.ports.clone(),
        )
    }

    pub fn permutation(&self, space: &TargetSpace) -> Permutation {
        Permutation::new(space.size(), self.seed)
    }
}

/// A contiguous range of positions in the scan's permuted order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub spec: ScanSpec,
    pub start: u64,
    pub end: u64,
}

/// `k/n`: the k-th (1-based, as masscan) of n equal shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSelector {
    pub k: u64,
    pub n: u64,
}

impl ShardSelector {
    pub const WHOLE: Self = Self { k: 1, n: 1 };

    pub fn parse(input: &str) -> Result<Self, SpecError> {
        let err = |reason: &str| SpecError::Shard {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let (k, n) = input
            .split_once('/')
            .ok_or_else(|| err("expected K/N, e.g. 1/4"))?;
        let k: u64 = k.trim().parse().map_err(|_| err("K is not a number"))?;
        let n: u64 = n.trim().parse().map_err(|_| err("N is not a number"))?;
        if n == 0 {
            return Err(err("N must be at least 1"));
        }
        if k == 0 || k > n {
            return Err(err("K must be from 1 to N"));
        }
        Ok(Self { k, n })
    }

    /// Positions `[start, end)` of this shard in a space of `total` probes. The n ranges
    /// tile `0..total` exactly; sizes differ by at most one.
    pub fn range(&self, total: u64) -> (u64, u64) {
        let at = |i: u64| (u128::from(total) * u128::from(i) / u128::from(self.n)) as u64;
        (at(self.k - 1), at(self.k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_refusals() {
        for bad in ["0/4", "5/4", "1/0", "1", "a/2", "1/b"] {
            assert!(ShardSelector::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ShardSelector::parse("2/3").expect("ok"),
            ShardSelector { k: 2, n: 3 }
        );
    }

    fn check_tiling(total: u64, n: u64) -> Result<(), TestCaseError> {
        let mut next = 0;
        for k in 1..=n {
            let (s, e) = ShardSelector { k, n }.range(total);
            prop_assert_eq!(s, next, "shards must be contiguous");
            prop_assert!(e >= s);
            prop_assert!(e - s <= total / n + 1);
            next = e;
        }
        prop_assert_eq!(next, total);
        Ok(())
    }

    proptest! {
        #[test]
        fn shards_tile_small_spaces(total in 0u64..100_000, n in 1u64..64) {
            check_tiling(total, n)?;
        }

        #[test]
        fn shards_tile_huge_spaces(total in (1u64 << 32)..u64::MAX, n in 1u64..1000) {
            check_tiling(total, n)?;
        }

        /// Every probe lands in exactly one shard: enumerate the permuted space per shard.
        #[test]
        fn every_probe_in_exactly_one_shard(total in 1u64..3000, n in 1u64..9, seed in any::<u64>()) {
            let p = Permutation::new(total, seed);
            let mut hits = vec![0u8; total as usize];
            for k in 1..=n {
                let (s, e) = ShardSelector { k, n }.range(total);
                for pos in s..e {
                    hits[p.at(pos) as usize] += 1;
                }
            }
            prop_assert!(hits.iter().all(|&h| h == 1));
        }
    }

    #[test]
    fn spec_round_trips_through_json() {
        let space = TargetSpace::new(
            IntervalSet::from_ranges([(10u32, 20u32)]),
            IntervalSet::from_ranges([(1u128, 2u128)]),
            vec![22, 80],
        )
        .expect("space");
        let spec = ScanSpec::from_space("s".into(), &space, 7);
        let shard = Shard {
            spec: spec.clone(),
            start: 3,
            end: 9,
        };
        let json = serde_json::to_string(&shard).expect("json");
        let back: Shard = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, shard);
        assert_eq!(back.spec.space().expect("space"), space);
    }
}
