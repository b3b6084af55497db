//! A small, fully specified random generator for reproducible orders.
//!
//! Orders must be the same for the same seed on every machine, thread count and dependency
//! version. General-purpose crates reserve the right to change how they map random bits to
//! ranges or shuffles between releases, so rar-core fixes the whole chain itself:
//!
//! * [`SplitMix64`] (Steele, Lea & Flood 2014) expands seeds;
//! * [`Xoshiro256PlusPlus`] (Blackman & Vigna 2019) produces the stream; both follow the
//!   authors' reference C code bit for bit (tested against an independent implementation);
//! * [`Xoshiro256PlusPlus::below`] draws an unbiased integer in `0..n` with Lemire's
//!   multiply-and-reject method, [`Xoshiro256PlusPlus::next_f64`] a uniform `[0, 1)` double
//!   from the top 53 bits;
//! * [`Xoshiro256PlusPlus::for_stream`] derives an independent generator for a tuple of
//!   integers (seed, step, sample index, …), so a data loader can draw any sample's order on
//!   any thread, in any sequence, and get the same answer.

/// SplitMix64: a 64-bit state seed expander (used to initialise xoshiro and to hash stream
/// keys).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }
}

/// SplitMix64's output finaliser: a bijective 64-bit mixing function.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256++ 1.0: fast, 256-bit state, passes BigCrush; not cryptographic.
#[derive(Debug, Clone)]
pub struct Xoshiro256PlusPlus {
    s: [u64; 4],
}

impl Xoshiro256PlusPlus {
    /// A generator with the raw 256-bit state `s` (must not be all zero; an all-zero state
    /// is replaced by the state seeded from 0).
    pub fn from_state(s: [u64; 4]) -> Self {
        if s == [0; 4] {
            return Self::seed_from_u64(0);
        }
        Self { s }
    }

    /// Seeds the state with four outputs of [`SplitMix64`] started at `seed` (the seeding the
    /// xoshiro authors recommend).
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut sm = SplitMix64::new(seed);
        Self {
            s: [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()],
        }
    }

    /// An independent generator for the stream named by `seed` and `keys` (e.g.
    /// `[step, sample_index]`). Different key tuples give statistically independent streams;
    /// the mapping is fixed (version 1) and will not change.
    pub fn for_stream(seed: u64, keys: &[u64]) -> Self {
        let mut h = mix64(seed ^ 0x5241_5221_0000_0001); // "RAR!" + version 1
        for &k in keys {
            h = mix64(h ^ mix64(k.wrapping_add(0x9E37_79B9_7F4A_7C15)));
        }
        Self::seed_from_u64(h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = (s[0].wrapping_add(s[3])).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform double in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// An unbiased uniform integer in `0..n` (Lemire 2019, "Fast random integer generation in
    /// an interval"). `n` must be non-zero.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no valid result");
        let mut m = (self.next_u64() as u128) * (n as u128);
        let mut low = m as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = (self.next_u64() as u128) * (n as u128);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }

    /// Shuffles `items` uniformly in place (Fisher–Yates, drawing from the back).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_implementation() {
        // Independent reference: the rand_xoshiro crate (a port of the authors' C code).
        use rand_xoshiro::rand_core::{Rng, SeedableRng};
        for seed in [0u64, 1, 42, u64::MAX] {
            let mut ours = Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut theirs = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
            for _ in 0..1000 {
                assert_eq!(ours.next_u64(), theirs.next_u64());
            }
        }
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[rng.below(6) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn streams_differ_and_repeat() {
        let a = Xoshiro256PlusPlus::for_stream(1, &[2, 3]).next_u64();
        assert_eq!(a, Xoshiro256PlusPlus::for_stream(1, &[2, 3]).next_u64());
        assert_ne!(a, Xoshiro256PlusPlus::for_stream(1, &[3, 2]).next_u64());
        assert_ne!(a, Xoshiro256PlusPlus::for_stream(2, &[2, 3]).next_u64());
    }
}
