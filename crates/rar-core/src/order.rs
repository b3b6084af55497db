//! Per-sample factorisation orders for training (paper §3.2, Eq. 5).
//!
//! For every sample of every optimizer step, draw `u ~ U[0, 1)`; if `u < r` the sample's order
//! is a uniformly random permutation of the `N` token positions, otherwise the base scan order
//! (raster for RAR). `r` comes from [`crate::RandomnessSchedule`].
//!
//! Reproducibility: each sample's draw uses its own generator derived from
//! `(seed, step, sample_key)` ([`Xoshiro256PlusPlus::for_stream`]). The result therefore does not
//! depend on which thread draws it, in which sequence, or how a batch is split across
//! devices — only on the seed, the optimizer step and the key. Use the sample's index within
//! the global batch (or its dataset index) as the key.

use crate::rng::Xoshiro256PlusPlus;
use crate::scan::{ScanOrder, validate_permutation};
use crate::{CoreError, Result};

/// One sample's order: `order[k]` is the raster position of the `k`-th generated token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledOrder {
    /// The generation order (a permutation of `0..N`).
    pub order: Vec<usize>,
    /// Whether this is a random permutation (`true`) or the base scan order (`false`).
    pub is_random: bool,
}

/// Draws per-sample orders: random with probability `r`, the base scan order otherwise.
///
/// The sampler is immutable (`Send + Sync`), so one instance can be shared by data-loader
/// threads; all randomness comes from the `(seed, step, key)` triple of each call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSampler {
    seed: u64,
    base: Vec<usize>,
}

impl OrderSampler {
    /// A sampler whose non-random order is `base` (must be a permutation of `0..base.len()`).
    pub fn new(seed: u64, base: Vec<usize>) -> Result<Self> {
        if base.is_empty() {
            return Err(CoreError::NotAPermutation {
                len: 0,
                reason: "an order needs at least one token".into(),
            });
        }
        validate_permutation(&base, base.len())?;
        Ok(Self { seed, base })
    }

    /// A sampler over `num_tokens` tokens whose non-random order is raster (RAR's setting).
    pub fn raster(seed: u64, num_tokens: usize) -> Result<Self> {
        Self::new(seed, (0..num_tokens).collect())
    }

    /// A sampler whose non-random order is `scan` on the square grid of `num_tokens` tokens
    /// (for models meant to converge to another scan order, paper Table 3).
    pub fn with_scan(seed: u64, scan: ScanOrder, num_tokens: usize) -> Result<Self> {
        Self::new(seed, scan.positions_for_tokens(num_tokens)?)
    }

    /// Number of tokens `N` per order.
    pub fn num_tokens(&self) -> usize {
        self.base.len()
    }

    /// The base (non-random) order.
    pub fn base_order(&self) -> &[usize] {
        &self.base
    }

    /// The seed all orders derive from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The order of sample `sample_key` at optimizer step `step` with random-order
    /// probability `ratio` (values outside `[0, 1]` act as 0 or 1; NaN acts as 0).
    pub fn sample(&self, step: u64, sample_key: u64, ratio: f64) -> SampledOrder {
        let mut rng = Xoshiro256PlusPlus::for_stream(self.seed, &[step, sample_key]);
        let u = rng.next_f64();
        if u < ratio {
            let mut order: Vec<usize> = (0..self.base.len()).collect();
            rng.shuffle(&mut order);
            SampledOrder {
                order,
                is_random: true,
            }
        } else {
            SampledOrder {
                order: self.base.clone(),
                is_random: false,
            }
        }
    }

    /// Orders for `batch_size` consecutive keys starting at `first_key`.
    pub fn sample_batch(
        &self,
        step: u64,
        first_key: u64,
        batch_size: usize,
        ratio: f64,
    ) -> Vec<SampledOrder> {
        (0..batch_size as u64)
            .map(|i| self.sample(step, first_key + i, ratio))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_extremes() {
        let s = OrderSampler::raster(3, 16).unwrap();
        for key in 0..50 {
            let raster = s.sample(0, key, 0.0);
            assert!(!raster.is_random);
            assert_eq!(raster.order, (0..16).collect::<Vec<_>>());
            assert!(s.sample(0, key, 1.0).is_random);
        }
    }

    #[test]
    fn half_ratio_gives_about_half_random() {
        let s = OrderSampler::raster(11, 4).unwrap();
        let random = (0..10_000)
            .filter(|&k| s.sample(5, k, 0.5).is_random)
            .count();
        assert!((4_700..5_300).contains(&random), "{random}");
    }

    #[test]
    fn permutations_are_uniform() {
        // All 3! = 6 permutations of 3 tokens should be equally likely.
        let s = OrderSampler::raster(1, 3).unwrap();
        let mut counts = std::collections::HashMap::new();
        for k in 0..60_000 {
            *counts.entry(s.sample(0, k, 1.0).order).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 6);
        for (perm, c) in counts {
            assert!((9_400..10_600).contains(&c), "{perm:?}: {c}");
        }
    }

    #[test]
    fn same_seed_same_orders_across_threads() {
        let s = OrderSampler::raster(42, 256).unwrap();
        let sequential = s.sample_batch(7, 0, 64, 0.6);
        let threaded: Vec<SampledOrder> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..64u64)
                .rev()
                .map(|k| {
                    let s = &s;
                    scope.spawn(move || (k, s.sample(7, k, 0.6)))
                })
                .collect();
            let mut got: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            got.sort_by_key(|(k, _)| *k);
            got.into_iter().map(|(_, o)| o).collect()
        });
        assert_eq!(sequential, threaded);
        assert_ne!(sequential, s.sample_batch(8, 0, 64, 0.6));
    }

    #[test]
    fn base_orders_are_validated() {
        assert!(OrderSampler::new(0, vec![0, 0]).is_err());
        assert!(OrderSampler::new(0, vec![]).is_err());
        assert!(OrderSampler::new(0, vec![1, 2]).is_err());
        let spiral = OrderSampler::with_scan(0, ScanOrder::SpiralIn, 16).unwrap();
        assert_eq!(spiral.sample(0, 0, 0.0).order, spiral.base_order());
    }
}
