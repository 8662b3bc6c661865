//! A keyed pseudo-random full-cycle permutation of `0..n`, in O(1) memory.
//!
//! A balanced Feistel network over the smallest even number of bits that covers `n`,
//! with cycle-walking to stay inside `0..n` (Black & Rogaway). Unlike zmap's cyclic
//! group walk, any position maps to its index directly, so a shard or a resume point is
//! just a position range: no state to carry, nothing to replay. The round function is a
//! keyed 64-bit mixer, not a cipher: the goal is spreading load, not secrecy.

const ROUNDS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    mask: u64,
    keys: [u64; ROUNDS],
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline(always)]
fn round(x: u64, key: u64) -> u64 {
    let mut z = (x ^ key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z ^= z >> 29;
    z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 32)
}

impl Permutation {
    /// A permutation of `0..n` (n ≥ 1) chosen by `seed`.
    pub fn new(n: u64, seed: u64) -> Self {
        let n = n.max(1);
        let bits = if n <= 4 {
            2
        } else {
            64 - (n - 1).leading_zeros()
        };
        let bits = bits + (bits & 1);
        let half_bits = bits / 2;
        let mut state = seed;
        let keys = [(); ROUNDS].map(|_| splitmix(&mut state));
        Self {
            n,
            half_bits,
            mask: (1u64 << half_bits) - 1,
            keys,
        }
    }

    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    #[inline(always)]
    fn forward(&self, x: u64) -> u64 {
        let (mut l, mut r) = (x >> self.half_bits, x & self.mask);
        for &k in &self.keys {
            (l, r) = (r, l ^ (round(r, k) & self.mask));
        }
        (l << self.half_bits) | r
    }

    #[inline(always)]
    fn backward(&self, x: u64) -> u64 {
        let (mut l, mut r) = (x >> self.half_bits, x & self.mask);
        for &k in self.keys.iter().rev() {
            (l, r) = (r ^ (round(l, k) & self.mask), l);
        }
        (l << self.half_bits) | r
    }

    /// The index visited at `position` (both in `0..n`).
    #[inline]
    pub fn at(&self, position: u64) -> u64 {
        debug_assert!(position < self.n);
        let mut x = self.forward(position);
        // Domain is < 4n, so the expected number of walks is below 4.
        while x >= self.n {
            x = self.forward(x);
        }
        x
    }

    /// The position at which `index` is visited: the inverse of [`Permutation::at`].
    pub fn position_of(&self, index: u64) -> u64 {
        let mut x = self.backward(index);
        while x >= self.n {
            x = self.backward(x);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn assert_bijection(n: u64, seed: u64) {
        let p = Permutation::new(n, seed);
        let mut seen = vec![false; n as usize];
        for pos in 0..n {
            let i = p.at(pos);
            assert!(i < n, "n={n}: {i} out of range");
            assert!(!seen[i as usize], "n={n} seed={seed}: {i} visited twice");
            seen[i as usize] = true;
            assert_eq!(p.position_of(i), pos);
        }
    }

    #[test]
    fn bijection_on_awkward_sizes() {
        for n in [
            1, 2, 3, 4, 5, 7, 8, 16, 17, 31, 64, 65, 127, 256, 257, 1000, 1021, 4096, 65521, 65536,
            65537,
        ] {
            for seed in [0, 1, 0xdead_beef] {
                assert_bijection(n, seed);
            }
        }
    }

    #[test]
    fn seeds_change_the_order() {
        let a: Vec<u64> = (0..64).map(|i| Permutation::new(1000, 1).at(i)).collect();
        let b: Vec<u64> = (0..64).map(|i| Permutation::new(1000, 2).at(i)).collect();
        assert_ne!(a, b);
        let sorted: Vec<u64> = (0..64).collect();
        assert_ne!(a, sorted, "order should not be the identity");
    }

    proptest! {
        #[test]
        fn bijection_on_random_sizes(n in 1u64..20_000, seed in any::<u64>()) {
            assert_bijection(n, seed);
        }

        /// Spaces above 2^32 are too big to enumerate: check the structure instead —
        /// in range, and inverted exactly by position_of (so no two positions collide).
        #[test]
        fn structure_on_huge_sizes(n in (1u64 << 32)..u64::MAX, seed in any::<u64>(), probes in prop::collection::vec(any::<u64>(), 64)) {
            let p = Permutation::new(n, seed);
            for raw in probes {
                let pos = raw % n;
                let i = p.at(pos);
                prop_assert!(i < n);
                prop_assert_eq!(p.position_of(i), pos);
            }
        }
    }

    #[test]
    fn largest_space_edges() {
        let n = u64::MAX;
        let p = Permutation::new(n, 9);
        for pos in [0, 1, n - 1, n / 2] {
            let i = p.at(pos);
            assert!(i < n);
            assert_eq!(p.position_of(i), pos);
        }
    }
}
