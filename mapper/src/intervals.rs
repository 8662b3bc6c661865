//! Sorted, disjoint, inclusive intervals of addresses, with "n-th member" lookup.
//!
//! Exclusions are applied by subtracting intervals and then mapping an index to the n-th
//! allowed address (as zmap's blocklist does), never by skipping at send time: the index
//! space then has no holes, so permutation, shards and resume all stay exact.

use std::fmt::Debug;

/// A point type: IPv4 as u32, IPv6 as u128.
pub trait Point: Copy + Ord + Debug {
    /// `self - base` as a count; callers guarantee it fits in u64.
    fn offset_from(self, base: Self) -> u64;
    fn plus(self, n: u64) -> Self;
    fn succ(self) -> Option<Self>;
    fn pred(self) -> Option<Self>;
}

impl Point for u32 {
    fn offset_from(self, base: Self) -> u64 {
        u64::from(self - base)
    }
    fn plus(self, n: u64) -> Self {
        // n < count of the interval, so the sum stays inside it.
        self.wrapping_add(n as u32)
    }
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn pred(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

impl Point for u128 {
    fn offset_from(self, base: Self) -> u64 {
        u64::try_from(self - base).unwrap_or(u64::MAX)
    }
    fn plus(self, n: u64) -> Self {
        self.wrapping_add(u128::from(n))
    }
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn pred(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntervalSet<T: Point> {
    ranges: Vec<(T, T)>,
    /// `starts[i]` = number of members before `ranges[i]` (prefix sums for `nth`).
    starts: Vec<u64>,
    total: u128,
}

impl<T: Point> IntervalSet<T> {
    pub fn new() -> Self {
        Self {
            ranges: Vec::new(),
            starts: Vec::new(),
            total: 0,
        }
    }

    pub fn from_ranges(ranges: impl IntoIterator<Item = (T, T)>) -> Self {
        let mut set = Self::new();
        set.ranges = ranges.into_iter().filter(|(a, b)| a <= b).collect();
        set.normalise();
        set
    }

    pub fn insert(&mut self, lo: T, hi: T) {
        if lo <= hi {
            self.ranges.push((lo, hi));
            self.normalise();
        }
    }

    pub fn ranges(&self) -> &[(T, T)] {
        &self.ranges
    }

    /// Number of members (u128: a full IPv6 prefix can exceed u64).
    pub fn count(&self) -> u128 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, p: T) -> bool {
        let i = self.ranges.partition_point(|&(_, hi)| hi < p);
        self.ranges.get(i).is_some_and(|&(lo, _)| lo <= p)
    }

    /// The n-th member in ascending order; `None` past the end. O(log ranges).
    pub fn nth(&self, n: u64) -> Option<T> {
        if u128::from(n) >= self.total {
            return None;
        }
        let i = self.starts.partition_point(|&s| s <= n) - 1;
        let (lo, _) = self.ranges[i];
        Some(lo.plus(n - self.starts[i]))
    }

    /// How many members lie below `p`, when `p` is a member: the inverse of `nth`.
    /// O(log ranges).
    pub fn rank(&self, p: T) -> Option<u64> {
        let i = self.ranges.partition_point(|&(_, hi)| hi < p);
        let &(lo, _) = self.ranges.get(i)?;
        (lo <= p).then(|| self.starts[i] + p.offset_from(lo))
    }

    /// Members of `self` not in `other`.
    pub fn subtract(&self, other: &Self) -> Self {
        let mut out = Vec::with_capacity(self.ranges.len());
        let mut j = 0;
        for &(lo, hi) in &self.ranges {
            let mut cur = Some(lo);
            while j < other.ranges.len() && other.ranges[j].1 < lo {
                j += 1;
            }
            let mut k = j;
            while let Some(start) = cur {
                if start > hi {
                    break;
                }
                match other.ranges.get(k) {
                    Some(&(olo, ohi)) if olo <= hi => {
                        if olo > start {
                            if let Some(end) = olo.pred() {
                                out.push((start, end.min(hi)));
                            }
                        }
                        cur = if ohi >= start {
                            ohi.succ()
                        } else {
                            Some(start)
                        };
                        k += 1;
                    }
                    _ => {
                        out.push((start, hi));
                        cur = None;
                    }
                }
            }
        }
        Self::from_ranges(out)
    }

    /// Members of both.
    pub fn intersect(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.ranges.len() && j < other.ranges.len() {
            let (a, b) = self.ranges[i];
            let (c, d) = other.ranges[j];
            let lo = a.max(c);
            let hi = b.min(d);
            if lo <= hi {
                out.push((lo, hi));
            }
            if b < d {
                i += 1;
            } else {
                j += 1;
            }
        }
        Self::from_ranges(out)
    }

    fn normalise(&mut self) {
        self.ranges.sort_unstable();
        let mut merged: Vec<(T, T)> = Vec::with_capacity(self.ranges.len());
        for &(lo, hi) in &self.ranges {
            match merged.last_mut() {
                Some(last) if last.1.succ().is_none_or(|next| lo <= next) => {
                    if hi > last.1 {
                        last.1 = hi;
                    }
                }
                _ => merged.push((lo, hi)),
            }
        }
        self.ranges = merged;
        self.starts.clear();
        let mut acc: u128 = 0;
        for &(lo, hi) in &self.ranges {
            self.starts.push(u64::try_from(acc).unwrap_or(u64::MAX));
            acc += u128::from(hi.offset_from(lo)) + 1;
        }
        self.total = acc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(set: &IntervalSet<u32>) -> Vec<u32> {
        set.ranges().iter().flat_map(|&(a, b)| a..=b).collect()
    }

    proptest! {
        #[test]
        fn nth_walks_members_in_order(ranges in prop::collection::vec((0u32..2000, 0u32..50), 0..12)) {
            let set = IntervalSet::from_ranges(ranges.iter().map(|&(a, l)| (a, a + l)));
            let all = members(&set);
            prop_assert_eq!(set.count(), all.len() as u128);
            for (n, &m) in all.iter().enumerate() {
                prop_assert_eq!(set.nth(n as u64), Some(m));
                prop_assert!(set.contains(m));
                prop_assert_eq!(set.rank(m), Some(n as u64));
            }
            for p in 0u32..2100 {
                prop_assert_eq!(set.rank(p).is_some(), set.contains(p));
            }
            prop_assert_eq!(set.nth(all.len() as u64), None);
        }

        #[test]
        fn subtract_and_intersect_match_sets(
            a in prop::collection::vec((0u32..500, 0u32..40), 0..8),
            b in prop::collection::vec((0u32..500, 0u32..40), 0..8),
        ) {
            let sa = IntervalSet::from_ranges(a.iter().map(|&(x, l)| (x, x + l)));
            let sb = IntervalSet::from_ranges(b.iter().map(|&(x, l)| (x, x + l)));
            let ma: std::collections::BTreeSet<u32> = members(&sa).into_iter().collect();
            let mb: std::collections::BTreeSet<u32> = members(&sb).into_iter().collect();
            let diff: Vec<u32> = ma.difference(&mb).copied().collect();
            let both: Vec<u32> = ma.intersection(&mb).copied().collect();
            prop_assert_eq!(members(&sa.subtract(&sb)), diff);
            prop_assert_eq!(members(&sa.intersect(&sb)), both);
        }
    }

    #[test]
    fn edges_of_the_address_space() {
        let all = IntervalSet::from_ranges([(0u32, u32::MAX)]);
        assert_eq!(all.count(), 1u128 << 32);
        assert_eq!(all.nth(u64::from(u32::MAX)), Some(u32::MAX));
        let hole = IntervalSet::from_ranges([(0u32, 0), (u32::MAX, u32::MAX)]);
        let rest = all.subtract(&hole);
        assert_eq!(rest.ranges(), &[(1, u32::MAX - 1)]);
        assert!(all.subtract(&all).is_empty());
    }
}
